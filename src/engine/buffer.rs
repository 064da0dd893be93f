//! Buffers that file bytes are read into and written from: the engine's, the diff source's and
//! restore's, placed in the page where the kernel copies into and out of them fastest.

/// Where in a page a buffer starts: half a page past a page boundary.
///
/// The kernel copies file bytes between its cache, whose pages start at page boundaries, and
/// these buffers. On the AMD EPYC the benchmarks ran on, those copies were at times several
/// times slower when the buffer started 16 bytes into a page, where `vec!` puts a large one:
/// writing 2 GiB from a 4 MiB buffer took 1.7-2.9 times as long as `cp` 16 bytes in, and
/// 0.7-1.0 times 2048 bytes in, in the same rounds; at a page boundary it was slow in some
/// runs and fast in others, and 128 to 2048 bytes in was never slow. (Loads 4 KiB away from
/// recent stores look to the CPU as if they might depend on them; that may be the reason.)
/// Half a page is as far from both page boundaries as a buffer can be, and keeps it aligned
/// to cache lines.
const PAGE: usize = 4096;
const START_IN_PAGE: usize = PAGE / 2;

/// A byte buffer that starts [`START_IN_PAGE`] bytes into a page, for the bytes the kernel
/// copies in and out. It grows like a `Vec` given zeros (`resize`), moving to new storage
/// when it must so that it still starts there.
#[derive(Default)]
pub struct IoBuffer {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl IoBuffer {
    /// `len` zeros.
    pub fn new(len: usize) -> IoBuffer {
        let storage = vec![0u8; len + PAGE];
        // The storage is never grown in place, so its address, and with it the start, stay
        // put.
        let address = storage.as_ptr() as usize;
        let start = (START_IN_PAGE + PAGE - address % PAGE) % PAGE;
        IoBuffer {
            storage,
            start,
            len,
        }
    }

    /// Makes the buffer `len` bytes long: those it held up to there stay, any new ones are
    /// zeros.
    pub fn resize(&mut self, len: usize) {
        if len > self.storage.len().saturating_sub(self.start) {
            let mut grown = IoBuffer::new(len);
            grown[..self.len].copy_from_slice(self);
            *self = grown;
        } else if len > self.len {
            self.storage[self.start + self.len..self.start + len].fill(0);
        }
        self.len = len;
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl std::ops::Deref for IoBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl std::ops::DerefMut for IoBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_starts_half_a_page_in_and_holds_its_length_of_zeros() {
        for len in [0, 1, 4095, 4096, 65536, 1 << 22] {
            let buffer = IoBuffer::new(len);
            assert_eq!(buffer.len(), len);
            assert_eq!(buffer.as_ptr() as usize % PAGE, START_IN_PAGE);
            assert!(buffer.iter().all(|&byte| byte == 0));
        }
    }

    #[test]
    fn a_resized_buffer_keeps_its_bytes_and_its_place_in_the_page() {
        let mut buffer = IoBuffer::default();
        assert!(buffer.is_empty());
        let mut expected = Vec::new();
        // Shrinking and growing again within the room it has must keep the bytes too.
        for len in [10, 3, 5000, 4999, 70_000, 0, 20, 100, 40, 90] {
            buffer.resize(len);
            expected.resize(len, 0);
            assert_eq!(&buffer[..], &expected[..]);
            if len > 0 {
                assert_eq!(buffer.as_ptr() as usize % PAGE, START_IN_PAGE);
            }
            // Bytes written now must survive the next resize, up to its length.
            for (index, byte) in buffer.iter_mut().enumerate() {
                *byte = index as u8 | 1;
            }
            for (index, byte) in expected.iter_mut().enumerate() {
                *byte = index as u8 | 1;
            }
        }
        buffer.clear();
        assert!(buffer.is_empty());
    }
}
