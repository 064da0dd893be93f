//! BLAKE3 of a whole image, put together from the hashes of its pieces, so that pieces can be
//! hashed on different threads while their bytes are still in the CPU cache.
//!
//! BLAKE3 is a tree hash: a piece whose size is a power of two of 1 KiB chunks, starting at a
//! multiple of that size, is a complete subtree. Its chaining value can be computed on its own
//! (`set_input_offset`, `finalize_non_root`) and the values merged, in order, exactly as the
//! BLAKE3 hasher merges its chunks. The result equals `blake3::hash` of the whole image; the
//! tests below check that for many sizes.

use blake3::hazmat::{
    merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

/// How an image is cut into pieces for hashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PiecePlan {
    pub piece_size: u64,
    /// True when pieces are hashed independently and merged; false when one hasher runs over
    /// the whole image in order (one worker).
    pub independent: bool,
}

impl PiecePlan {
    /// Pieces as large as the buffer allows. They can be hashed independently when they are a
    /// power-of-two number of BLAKE3 chunks, hold whole sectors (so a sector never straddles
    /// two pieces), and there is more than one of them.
    pub fn new(image_size: u64, buffer_size: u64, sector_size: u64) -> PiecePlan {
        let power_of_two = 1u64 << buffer_size.ilog2();
        let independent = power_of_two >= blake3::CHUNK_LEN as u64
            && power_of_two.is_multiple_of(sector_size)
            && image_size > power_of_two;
        PiecePlan {
            piece_size: if independent {
                power_of_two
            } else {
                buffer_size
            },
            independent,
        }
    }

    pub fn piece_count(&self, image_size: u64) -> u64 {
        image_size.div_ceil(self.piece_size)
    }

    /// A hasher for the piece at `offset`: a subtree hasher when pieces are independent.
    pub fn piece_hasher(&self, offset: u64) -> blake3::Hasher {
        let mut hasher = blake3::Hasher::new();
        if self.independent {
            hasher.set_input_offset(offset);
        }
        hasher
    }
}

/// BLAKE3 of a stream that comes in small pieces, such as a diff's headers and records.
///
/// The hasher hashes many chunks at once with SIMD only when it is handed a whole subtree:
/// a run of chunks that starts at a multiple of its own size. Pieces that start inside a
/// chunk go through it block by block, several times slower (a third of restore's check of a
/// diff of 4 KiB records went there). So pieces are gathered and handed over in runs of
/// [`StreamHasher::RUN`] bytes, each starting at a multiple of that size; the hash is the
/// same as that of the bytes handed over at once.
#[derive(Clone, Default)]
pub struct StreamHasher {
    hasher: blake3::Hasher,
    /// Bytes not yet handed over, fewer than `RUN`: everything before them was, in runs.
    gathered: Vec<u8>,
}

impl StreamHasher {
    pub const RUN: usize = 64 << 10;

    pub fn new() -> StreamHasher {
        StreamHasher::default()
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.gathered.is_empty() && bytes.len() >= Self::RUN {
                let runs = bytes.len() - bytes.len() % Self::RUN;
                self.hasher.update(&bytes[..runs]);
                bytes = &bytes[runs..];
                continue;
            }
            if self.gathered.capacity() == 0 {
                self.gathered.reserve_exact(Self::RUN);
            }
            let taken = bytes.len().min(Self::RUN - self.gathered.len());
            self.gathered.extend_from_slice(&bytes[..taken]);
            bytes = &bytes[taken..];
            if self.gathered.len() == Self::RUN {
                self.hasher.update(&self.gathered);
                self.gathered.clear();
            }
        }
    }

    pub fn finalize(&self) -> blake3::Hash {
        let mut hasher = self.hasher.clone();
        hasher.update(&self.gathered);
        hasher.finalize()
    }
}

/// The chaining value of an independently hashed piece.
pub fn piece_value(hasher: &blake3::Hasher) -> ChainingValue {
    hasher.finalize_non_root()
}

/// The value a digest holds for one block ([`crate::format::digest`], hash kind 0): the
/// block's chaining value at its position in the image, or, for an image of one block, which
/// has no subtree below the root, its root hash.
pub struct BlockHasher {
    hasher: blake3::Hasher,
    root: bool,
}

impl BlockHasher {
    /// For the block at `offset` (a multiple of `block_size`, a power of two of at least one
    /// BLAKE3 chunk) of an image of `image_size`.
    pub fn new(image_size: u64, block_size: u64, offset: u64) -> BlockHasher {
        let root = image_size <= block_size;
        let mut hasher = blake3::Hasher::new();
        if !root {
            hasher.set_input_offset(offset);
        }
        BlockHasher { hasher, root }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    pub fn value(&self) -> ChainingValue {
        match self.root {
            true => *self.hasher.finalize().as_bytes(),
            false => self.hasher.finalize_non_root(),
        }
    }
}

/// Merges piece values, given in order, into the hash of the whole image.
#[derive(Debug, Default)]
pub struct TreeMerger {
    /// Roots of complete subtrees, left to right, each at least twice the next.
    stack: Vec<ChainingValue>,
    /// The newest value: kept aside until it is known whether it is the last, because the
    /// very last merge is the root and is computed differently.
    newest: Option<ChainingValue>,
    pushed: u64,
}

impl TreeMerger {
    pub fn push(&mut self, value: ChainingValue) {
        if let Some(mut subtree) = self.newest.replace(value) {
            self.pushed += 1;
            // As in BLAKE3's own hasher: each trailing zero of the count closes a subtree.
            let mut count = self.pushed;
            while count & 1 == 0 {
                if let Some(left) = self.stack.pop() {
                    subtree = merge_subtrees_non_root(&left, &subtree, Mode::Hash);
                }
                count >>= 1;
            }
            self.stack.push(subtree);
        }
    }

    /// The chaining value of the subtree the values make, when they are the parts of one
    /// piece (not the root): merged as [`TreeMerger::finish`] merges, without finalizing.
    pub fn finish_non_root(mut self) -> Option<ChainingValue> {
        let mut right = self.newest?;
        while let Some(left) = self.stack.pop() {
            right = merge_subtrees_non_root(&left, &right, Mode::Hash);
        }
        Some(right)
    }

    /// The root hash. Needs at least two values: a single piece is the whole image, whose
    /// hash its own hasher gives with `finalize`.
    pub fn finish(mut self) -> Option<blake3::Hash> {
        let mut right = self.newest?;
        let mut left = self.stack.pop()?;
        while let Some(next_left) = self.stack.pop() {
            right = merge_subtrees_non_root(&left, &right, Mode::Hash);
            left = next_left;
        }
        Some(merge_subtrees_root(&left, &right, Mode::Hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_hashes_as_its_bytes_at_once() {
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
        // Pieces of every kind of size: inside a chunk, across runs, whole runs and more.
        for pieces in [
            &[1usize, 100, 4096, 77][..],
            &[65_536, 3],
            &[200_000],
            &[70_000, 1],
        ] {
            let mut stream = StreamHasher::new();
            let (mut at, mut turn) = (0, 0);
            while at < bytes.len() {
                let piece = pieces[turn % pieces.len()].min(bytes.len() - at);
                stream.update(&bytes[at..at + piece]);
                at += piece;
                turn += 1;
                assert_eq!(stream.finalize(), blake3::hash(&bytes[..at]), "{pieces:?}");
            }
        }
        assert_eq!(StreamHasher::new().finalize(), blake3::hash(b""));
    }

    fn tree_hash(data: &[u8], plan: PiecePlan) -> blake3::Hash {
        if !plan.independent {
            return blake3::hash(data);
        }
        let mut merger = TreeMerger::default();
        for (index, piece) in data.chunks(plan.piece_size as usize).enumerate() {
            let mut hasher = plan.piece_hasher(index as u64 * plan.piece_size);
            hasher.update(piece);
            merger.push(piece_value(&hasher));
        }
        merger.finish().unwrap()
    }

    /// Slices hashed apart and merged into their piece give the piece's value.
    #[test]
    fn merged_slices_equal_the_piece_value() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let plan = PiecePlan::new(1 << 20, 65_536, 512);
        for (offset, length) in [
            (0, 65_536),
            (65_536, 65_536),
            (131_072, 131_072),
            (131_072, 100_000),
            (196_608, 1536),
            (0, 300_000),
        ] {
            let piece = &data[offset..offset + length];
            let mut whole = plan.piece_hasher(offset as u64);
            whole.update(piece);
            for slice_size in [1024, 4096, 65_536] {
                let mut slices = TreeMerger::default();
                for (index, slice) in piece.chunks(slice_size).enumerate() {
                    let mut hasher = plan.piece_hasher((offset + index * slice_size) as u64);
                    hasher.update(slice);
                    slices.push(piece_value(&hasher));
                }
                assert!(
                    slices.finish_non_root() == Some(piece_value(&whole)),
                    "offset {offset} length {length} slices {slice_size}"
                );
            }
        }
    }

    #[test]
    fn merged_pieces_equal_the_plain_hash() {
        let data: Vec<u8> = (0..200_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for size in [
            1025, 2048, 2049, 3072, 5000, 8191, 8192, 8193, 65_536, 100_000, 131_073, 200_000,
        ] {
            for buffer in [1024, 1536, 2048, 4096, 16_384] {
                let plan = PiecePlan::new(size as u64, buffer, 512);
                assert_eq!(
                    plan.independent,
                    size as u64 > plan.piece_size,
                    "size {size} buffer {buffer}"
                );
                assert_eq!(
                    tree_hash(&data[..size], plan),
                    blake3::hash(&data[..size]),
                    "size {size} buffer {buffer}"
                );
            }
        }
    }

    #[test]
    fn plans() {
        // Too small, a single piece, or sectors that do not divide a power of two: one hasher.
        assert!(!PiecePlan::new(1 << 20, 512, 512).independent);
        assert!(!PiecePlan::new(4 << 20, 4 << 20, 512).independent);
        assert!(!PiecePlan::new(1 << 20, 3000, 1000).independent);
        assert_eq!(PiecePlan::new(1 << 20, 3000, 1000).piece_size, 3000);
        // 3 MiB buffers hash in 2 MiB pieces.
        assert_eq!(
            PiecePlan::new(1 << 30, 3 << 20, 512),
            PiecePlan {
                piece_size: 2 << 20,
                independent: true
            }
        );
    }
}
