//! The sector engine: every byte diff-dd reads from an image or a target is read here.
//!
//! It reads in buffers of the user's buffer size (never more than a few at once, so memory is
//! bounded by the buffer size and not by the image), compares images sector by sector into
//! extents, hashes with BLAKE3 and drives the progress bars. Commands compose it; none has a
//! read loop of its own.

pub mod compare;
pub mod progress;

use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread;

use anyhow::{anyhow, bail, Context, Result};

use crate::device::Image;
pub use compare::{ChangedExtent, ExtentFinder};
pub use progress::Progress;

/// Reads exactly `buffer.len()` bytes at `offset`. A file that ends early changed size while
/// it was being read, which is an error, never a short result.
pub fn read_at(image: &Image, offset: u64, buffer: &mut [u8]) -> Result<()> {
    image
        .file
        .read_exact_at(buffer, offset)
        .map_err(|error| match error.kind() {
            std::io::ErrorKind::UnexpectedEof => anyhow!(
                "it ended before byte {} (did it change size while being read?)",
                offset + buffer.len() as u64
            ),
            _ => anyhow!(error).context(format!("at byte {offset}")),
        })
        .with_context(|| image.describe("cannot read"))
}

/// Writes all of `data` at `offset`.
pub fn write_at(image: &Image, offset: u64, data: &[u8]) -> Result<()> {
    image
        .file
        .write_all_at(data, offset)
        .with_context(|| format!("at byte {offset}"))
        .with_context(|| image.describe("cannot write"))
}

/// BLAKE3 of `length` bytes at `offset`, read through `scratch` (which bounds the memory).
pub fn hash_range(
    image: &Image,
    offset: u64,
    length: u64,
    scratch: &mut [u8],
) -> Result<blake3::Hash> {
    if scratch.is_empty() && length > 0 {
        bail!("no buffer to read {} with", image.path.display());
    }
    let mut hasher = blake3::Hasher::new();
    let mut position = offset;
    let end = offset + length;
    while position < end {
        let piece = scratch.len().min((end - position) as usize);
        read_at(image, position, &mut scratch[..piece])?;
        hasher.update(&scratch[..piece]);
        position += piece as u64;
    }
    Ok(hasher.finalize())
}

/// Two images can be compared only when they have the same size.
pub fn require_same_size(new: &Image, base: &Image) -> Result<()> {
    if new.size != base.size {
        bail!(
            "{} {} has {} bytes but {} {} has {}: they must be the same size",
            new.role,
            new.path.display(),
            new.size,
            base.role,
            base.path.display(),
            base.size
        );
    }
    Ok(())
}

/// How to read and compare.
#[derive(Debug, Clone, Copy)]
pub struct CompareSettings {
    pub sector_size: u64,
    pub buffer_size: u64,
    /// The largest extent handed to the sink; a multiple of the sector size.
    pub record_limit: u64,
}

/// What a whole comparison found, besides the extents it handed out.
#[derive(Debug, Clone, Copy)]
pub struct CompareTotals {
    pub new_hash: blake3::Hash,
    pub base_hash: blake3::Hash,
}

/// Reads `new` and `base` side by side (they must have the same size), hands every extent of
/// changed sectors to `sink` in order, and hashes both whole images with BLAKE3.
///
/// Each image is read and hashed on a thread of its own, so the two hashes run in parallel
/// with each other and with the comparison. Each thread owns two buffers: it fills one while
/// the comparison looks at the other, so memory stays at four buffers plus one record.
pub fn compare_images(
    new: &Image,
    base: &Image,
    settings: CompareSettings,
    progress: &Progress,
    sink: &mut impl FnMut(ChangedExtent<'_>) -> Result<()>,
) -> Result<CompareTotals> {
    require_same_size(new, base)?;
    let buffer_size = settings.buffer_size as usize;
    thread::scope(|scope| {
        let (new_chunks, new_free, new_reader) = start_reader(scope, new, buffer_size);
        let (base_chunks, base_free, base_reader) = start_reader(scope, base, buffer_size);
        let mut finder = ExtentFinder::new(
            settings.sector_size as usize,
            settings.record_limit as usize,
        );
        let compared = (|| -> Result<()> {
            // Both readers cover the same offsets in the same order, so chunks pair up.
            while let Ok(new_chunk) = new_chunks.recv() {
                let new_chunk = new_chunk?;
                let base_chunk = base_chunks
                    .recv()
                    .map_err(|_| anyhow!("the reader of {} stopped early", base.role))??;
                finder.feed(new_chunk.offset, new_chunk.data(), base_chunk.data(), sink)?;
                progress.advance(new_chunk.length as u64);
                // A reader that has already finished no longer takes buffers back.
                let _ = new_free.send(new_chunk.buffer);
                let _ = base_free.send(base_chunk.buffer);
            }
            // The INFILE reader's channel closed: it finished or failed; a failure was sent.
            if let Ok(base_chunk) = base_chunks.recv() {
                base_chunk?;
            }
            finder.finish(sink)
        })();
        // Closing the channels stops readers that are still going after a failure.
        drop((new_chunks, new_free, base_chunks, base_free));
        let new_hash = join_reader(new_reader);
        let base_hash = join_reader(base_reader);
        compared?;
        Ok(CompareTotals {
            new_hash: new_hash?,
            base_hash: base_hash?,
        })
    })
}

/// A filled buffer from a reader thread.
struct Chunk {
    offset: u64,
    length: usize,
    buffer: Vec<u8>,
}

impl Chunk {
    fn data(&self) -> &[u8] {
        &self.buffer[..self.length]
    }
}

/// How much a reader reads before hashing it: small enough that the bytes are still in the
/// CPU cache when BLAKE3 reads them.
const HASH_SLICE: usize = 256 << 10;

type ReaderParts<'scope> = (
    Receiver<Result<Chunk>>,
    SyncSender<Vec<u8>>,
    thread::ScopedJoinHandle<'scope, Result<blake3::Hash>>,
);

fn start_reader<'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    image: &'scope Image,
    buffer_size: usize,
) -> ReaderParts<'scope> {
    const BUFFERS: usize = 2;
    let (chunk_sender, chunks) = mpsc::sync_channel::<Result<Chunk>>(BUFFERS);
    let (free, free_buffers) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    let handle = scope.spawn(move || {
        let mut hasher = blake3::Hasher::new();
        let mut offset = 0u64;
        let mut allocated = 0;
        while offset < image.size {
            let mut buffer = if allocated < BUFFERS {
                allocated += 1;
                vec![0u8; buffer_size]
            } else {
                match free_buffers.recv() {
                    Ok(buffer) => buffer,
                    Err(_) => bail!("stopped"), // The comparison ended early and said why.
                }
            };
            let length = buffer_size.min((image.size - offset) as usize);
            let mut read = Ok(());
            for start in (0..length).step_by(HASH_SLICE) {
                let slice = &mut buffer[start..length.min(start + HASH_SLICE)];
                read = read_at(image, offset + start as u64, slice);
                if read.is_err() {
                    break;
                }
                hasher.update(slice);
            }
            let failed = read.is_err();
            let chunk = read.map(|()| Chunk {
                offset,
                length,
                buffer,
            });
            if chunk_sender.send(chunk).is_err() || failed {
                bail!("stopped");
            }
            offset += length as u64;
        }
        Ok(hasher.finalize())
    });
    (chunks, free, handle)
}

fn join_reader(handle: thread::ScopedJoinHandle<'_, Result<blake3::Hash>>) -> Result<blake3::Hash> {
    handle
        .join()
        .map_err(|_| anyhow!("a reader thread failed unexpectedly"))?
}

/// BLAKE3 of a whole image, read in buffers of `buffer_size`. With `from_device`, the pages
/// the kernel has cached for it are dropped first, so the bytes come from the device itself
/// (dirty pages cannot be dropped, so they are flushed before).
pub fn hash_image(
    image: &Image,
    buffer_size: u64,
    from_device: bool,
    progress: &Progress,
) -> Result<blake3::Hash> {
    if from_device {
        drop_cached_pages(image)?;
    }
    thread::scope(|scope| {
        let (chunks, free, reader) = start_reader(scope, image, buffer_size as usize);
        let drained = (|| -> Result<()> {
            while let Ok(chunk) = chunks.recv() {
                let chunk = chunk?;
                progress.advance(chunk.length as u64);
                let _ = free.send(chunk.buffer);
            }
            Ok(())
        })();
        drop((chunks, free));
        let hash = join_reader(reader);
        drained?;
        hash
    })
}

fn drop_cached_pages(image: &Image) -> Result<()> {
    use std::os::unix::io::AsRawFd;
    image
        .file
        .sync_data()
        .with_context(|| image.describe("cannot flush"))?;
    // SAFETY: a plain system call on a descriptor this process owns.
    let result =
        unsafe { libc::posix_fadvise(image.file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if result != 0 {
        return Err(std::io::Error::from_raw_os_error(result))
            .context("cannot drop its cached pages")
            .with_context(|| image.describe("cannot read"));
    }
    Ok(())
}
