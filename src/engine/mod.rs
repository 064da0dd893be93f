//! The sector engine: the compare-and-hash pipeline every image diff-dd reads goes through.
//!
//! It reads in pieces of about the user's buffer size (never more than a few at once, so memory
//! is bounded by the buffer size and not by the image), compares images sector by sector into
//! extents, hashes with BLAKE3 and reports progress. The positional reads themselves are the
//! device's ([`OpenFile::read_at`]).

mod blocks;
mod buffer;
pub mod compare;
pub mod pool;
pub mod progress;
mod tree_hash;

use std::sync::mpsc;
use std::thread;

use blake3::hazmat::ChainingValue;

use crate::device::{self, OpenFile};
use crate::error::{Error, Result};
pub use blocks::{block_values, compare_with_values, BlockSink, ExpectedValues, ValueWindow};
pub use buffer::IoBuffer;
pub use compare::{ChangedExtent, Changes, ExtentFinder};
pub use progress::{NoProgress, Progress, Stage};
use tree_hash::{piece_value, PiecePlan};
pub use tree_hash::{BlockHasher, StreamHasher, TreeMerger};

/// BLAKE3 of `length` bytes at `offset`, read through `scratch` (which bounds the memory).
pub fn hash_range(
    image: &OpenFile,
    offset: u64,
    length: u64,
    scratch: &mut [u8],
) -> Result<blake3::Hash> {
    if scratch.is_empty() {
        return hash_range(image, offset, length, &mut [0u8; 4096]);
    }
    let mut hasher = blake3::Hasher::new();
    let mut position = offset;
    let end = offset + length;
    while position < end {
        let piece = scratch.len().min((end - position) as usize);
        image.read_at(position, &mut scratch[..piece])?;
        hasher.update(&scratch[..piece]);
        position += piece as u64;
    }
    Ok(hasher.finalize())
}

/// BLAKE3 of `length` bytes at `offset`, and the hash a record's base check takes of them: the
/// same, or with `block_size`, the BLAKE3 of the blocks' values one after the other (each as
/// [`BlockHasher`] gives it: what a digest holds). One read through `scratch`, which bounds
/// the memory; `offset` and `length` are whole blocks of the image, or end at its end.
pub fn hash_range_and_blocks(
    image: &OpenFile,
    offset: u64,
    length: u64,
    block_size: Option<u64>,
    scratch: &mut [u8],
) -> Result<(blake3::Hash, blake3::Hash)> {
    if scratch.is_empty() {
        return hash_range_and_blocks(image, offset, length, block_size, &mut [0u8; 4096]);
    }
    let mut hasher = RangeHasher::new(image.size, offset, block_size);
    let end = offset + length;
    let mut position = offset;
    while position < end {
        let piece = scratch.len().min((end - position) as usize);
        image.read_at(position, &mut scratch[..piece])?;
        hasher.update(&scratch[..piece]);
        position += piece as u64;
    }
    Ok(hasher.finalize())
}

/// [`hash_range_and_blocks`] for a caller that reads the bytes itself: they are fed in
/// order, in pieces of any size, from the range's first byte on.
pub struct RangeHasher {
    bytes: blake3::Hasher,
    /// With a block size: the blocks' values so far, the block being hashed, and where the
    /// next block begins.
    blocks: Option<Blocks>,
}

struct Blocks {
    image_size: u64,
    block_size: u64,
    values: blake3::Hasher,
    current: Option<BlockHasher>,
    position: u64,
    next_block: u64,
}

impl RangeHasher {
    /// For the range that begins at `offset` of an image of `image_size`.
    pub fn new(image_size: u64, offset: u64, block_size: Option<u64>) -> RangeHasher {
        RangeHasher {
            bytes: blake3::Hasher::new(),
            blocks: block_size.map(|block_size| Blocks {
                image_size,
                block_size,
                values: blake3::Hasher::new(),
                current: None,
                position: offset,
                next_block: offset,
            }),
        }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        self.bytes.update(bytes);
        let Some(blocks) = self.blocks.as_mut() else {
            return;
        };
        while !bytes.is_empty() {
            if blocks.position == blocks.next_block {
                if let Some(done) = blocks.current.take() {
                    blocks.values.update(&done.value());
                }
                blocks.current = Some(BlockHasher::new(
                    blocks.image_size,
                    blocks.block_size,
                    blocks.position,
                ));
                blocks.next_block = blocks.position.saturating_add(blocks.block_size);
            }
            let take = bytes
                .len()
                .min(usize::try_from(blocks.next_block - blocks.position).unwrap_or(usize::MAX));
            if let Some(block) = blocks.current.as_mut() {
                block.update(&bytes[..take]);
            }
            blocks.position += take as u64;
            bytes = &bytes[take..];
        }
    }

    /// The BLAKE3 of the bytes, and the hash a record's base check takes of them.
    pub fn finalize(self) -> (blake3::Hash, blake3::Hash) {
        let bytes = self.bytes.finalize();
        match self.blocks {
            None => (bytes, bytes),
            Some(mut blocks) => {
                if let Some(done) = blocks.current.take() {
                    blocks.values.update(&done.value());
                }
                (bytes, blocks.values.finalize())
            }
        }
    }
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
    /// BLAKE3 of the whole new image.
    pub image_hash: blake3::Hash,
    /// BLAKE3 of the whole base image.
    pub base_hash: blake3::Hash,
    /// With a layer over the base image: BLAKE3 of the base image itself.
    pub under_layer_hash: Option<blake3::Hash>,
}

/// Bytes laid over an image as it is read: the image seen through it is another image of the
/// same size. The overlay of a chain of diffs is one ([`crate::chain::Overlay`]); the engine
/// reads it like any image and does not need to know what it is.
pub trait Layer: Sync {
    /// Lays the layer's bytes for `offset..offset + slice.len()` over `slice`, which holds the
    /// image's bytes there; false when the layer has none there. Each reading thread asks for
    /// increasing offsets.
    fn lay_over(&self, offset: u64, slice: &mut [u8]) -> Result<bool>;
}

/// Reads `new` and `base` side by side (they must have the same size), hands every extent of
/// changed sectors to `sink` in order, and hashes both whole images with BLAKE3. With
/// `base_layer`, `new` is compared with `base` seen through it, and `base_hash` is that
/// image's; the hash of `base` itself is `under_layer_hash`.
pub fn compare_images(
    new: &OpenFile,
    base: &OpenFile,
    base_layer: Option<&dyn Layer>,
    settings: CompareSettings,
    progress: &dyn Progress,
    sink: &mut impl FnMut(ChangedExtent<'_>) -> Result<()>,
) -> Result<CompareTotals> {
    device::require_same_size(new, base)?;
    let mut finder = ExtentFinder::new(
        settings.sector_size as usize,
        settings.record_limit as usize,
    );
    let reading = Reading {
        images: &[new, base],
        layer: base_layer,
        compare: true,
        copy: None,
        in_order: false,
        block_size: None,
        block_values: None,
        expected: None,
    };
    let hashes = read_pieces(
        &reading,
        settings.sector_size,
        settings.buffer_size,
        progress,
        |changes| {
            for (offset, new_run, base_run) in changes.iter() {
                finder.add_run(offset, new_run, base_run, sink)?;
            }
            Ok(())
        },
    )?;
    finder.finish(sink)?;
    Ok(CompareTotals {
        image_hash: hashes[0],
        base_hash: *hashes.last().unwrap_or(&hashes[0]),
        under_layer_hash: base_layer.map(|_| hashes[1]),
    })
}

/// Where [`copy_image`] puts what it reads: called on the reading threads, with the offset of
/// each piece of the image (the buffer size), in increasing order per thread but not overall.
pub type CopyTo<'a> = &'a Copier<'a>;

/// What takes the pieces [`copy_image`] reads.
pub type Copier<'a> = dyn Fn(u64, &[u8]) -> Result<()> + Sync + 'a;

/// What [`copy_image`] read.
#[derive(Debug, Clone, Copy)]
pub struct CopyTotals {
    /// BLAKE3 of the image read.
    pub image_hash: blake3::Hash,
    /// BLAKE3 of the image seen through the layer: what was copied.
    pub copied_hash: blake3::Hash,
}

/// Reads `image` seen through `layer` front to back in buffers and hands every slice of it to
/// `copy`, hashing both the image and what was copied. `in_order` keeps to one reading thread,
/// so that `copy` gets the slices in order (for a stream).
pub fn copy_image(
    image: &OpenFile,
    layer: &dyn Layer,
    buffer_size: u64,
    in_order: bool,
    progress: &dyn Progress,
    copy: CopyTo<'_>,
) -> Result<CopyTotals> {
    let reading = Reading {
        images: &[image],
        layer: Some(layer),
        compare: false,
        copy: Some(copy),
        in_order,
        block_size: None,
        block_values: None,
        expected: None,
    };
    let hashes = read_pieces(&reading, 1, buffer_size, progress, |_| Ok(()))?;
    Ok(CopyTotals {
        image_hash: hashes[0],
        copied_hash: hashes[1],
    })
}

/// A layer that lays nothing: the image as it is.
struct NoLayer;

impl Layer for NoLayer {
    fn lay_over(&self, _offset: u64, _slice: &mut [u8]) -> Result<bool> {
        Ok(false)
    }
}

/// BLAKE3 of a whole image, read in buffers of `buffer_size`. With `from_device`, the pages
/// the kernel has cached for it are dropped first, so the bytes come from the device itself
/// (dirty pages cannot be dropped, so they are flushed before).
pub fn hash_image(
    image: &OpenFile,
    buffer_size: u64,
    from_device: bool,
    progress: &dyn Progress,
) -> Result<blake3::Hash> {
    if from_device {
        image.drop_cached_pages()?;
    }
    let reading = Reading {
        images: &[image],
        layer: None,
        compare: false,
        copy: None,
        in_order: false,
        block_size: None,
        block_values: None,
        expected: None,
    };
    let hashes = read_pieces(&reading, 1, buffer_size, progress, |_| Ok(()))?;
    Ok(hashes[0])
}

/// How much of a piece is read before it is hashed and compared: small enough that both
/// images' bytes are still in the CPU cache for BLAKE3 and the comparison (64 KiB measured
/// fastest, by a little, among 32 KiB to 1 MiB with bench/run.sh).
const SLICE: u64 = 64 << 10;

/// What a worker hands over, in order: a piece's changes in batches, then the end of the piece.
enum Found {
    /// Changed sectors of the current piece, at most [`BATCH`] new bytes of them.
    Batch(Changes),
    /// The piece is over: the last of its changes and, per image, the piece's BLAKE3 chaining
    /// value when pieces are hashed independently.
    PieceEnd(Changes, Vec<ChainingValue>),
}

/// The most changed bytes per image a worker gathers before handing them over. Changes cross
/// between threads in batches of this size rather than a whole piece at a time, so the bytes
/// in flight (a few batches per worker) do not grow with the buffer size: with 4 MiB pieces of
/// which every sector changed, whole pieces in flight took 48 MiB on two workers.
const BATCH: usize = 512 << 10;

/// The most worker threads: each holds a few batches of changed bytes, so memory grows with
/// them, and past a few cores the reads, not the hashing, set the pace.
const MAX_WORKERS: u64 = 4;

/// One worker per core, up to [`MAX_WORKERS`].
pub fn worker_count() -> u64 {
    let cores = thread::available_parallelism().map_or(1, |cores| cores.get() as u64);
    cores.clamp(1, MAX_WORKERS)
}

/// What one read of images of equal size does with each slice.
struct Reading<'a> {
    /// Read and hashed.
    images: &'a [&'a OpenFile],
    /// Laid over the last image, which gives one more image, hashed too.
    layer: Option<&'a dyn Layer>,
    /// Compare the first image with the last one (seen through the layer, if any).
    compare: bool,
    /// Gets the last image (seen through the layer, if any).
    copy: Option<CopyTo<'a>>,
    /// One worker, so that the slices come in order.
    in_order: bool,
    /// Slices of this size (a power of two of BLAKE3 chunks dividing the piece size) instead
    /// of [`SLICE`], hashed as subtrees: their values are the digest's block values.
    block_size: Option<u64>,
    /// Gets the values of the last image's blocks (seen through the layer), a piece at a time
    /// with the piece's offset; with `block_size`.
    block_values: Option<&'a BlockValuesTo<'a>>,
    /// Compare the last image's block values with these, and hand on the blocks that differ
    /// ([`Changes::add_block`]); with `block_size`.
    expected: Option<&'a dyn ExpectedValues>,
}

/// What takes the block values of a piece read with [`Reading::block_size`]: the piece's
/// offset and the values of its blocks, called on the reading threads.
type BlockValuesTo<'a> = dyn Fn(u64, &[ChainingValue]) -> Result<()> + Sync + 'a;

impl Reading<'_> {
    /// How many images are hashed: those read, and the one the layer gives.
    fn hashed(&self) -> usize {
        self.images.len() + usize::from(self.layer.is_some())
    }
}

/// Reads images of equal size in pieces of about the buffer size, on one worker thread per
/// core (up to [`MAX_WORKERS`]). Each worker reads its pieces of all images slice by slice,
/// hashes each slice and compares or copies it as `reading` says while the bytes are still in
/// cache: the images are read once and nothing crosses between cores but the changed sectors.
/// `on_piece` receives each piece's changes in order; the whole-image hashes come back in the
/// images' order, the layer's last.
///
/// Memory: per worker, one slice per image (a piece, for an image that is copied; the layer is
/// laid in place) and at most three batches of changed bytes (one being gathered, one
/// waiting, one being taken).
fn read_pieces(
    reading: &Reading<'_>,
    sector_size: u64,
    buffer_size: u64,
    progress: &dyn Progress,
    mut on_piece: impl FnMut(&Changes) -> Result<()>,
) -> Result<Vec<blake3::Hash>> {
    let images = reading.images;
    let image_size = images[0].size;
    let plan = PiecePlan::new(image_size, buffer_size, sector_size);
    let piece_count = plan.piece_count(image_size);
    // Standard input can only be read front to back, by one worker.
    let streaming = images.iter().any(|image| image.is_stream());
    let workers = if plan.independent && !streaming && !reading.in_order {
        worker_count()
    } else {
        1
    };
    thread::scope(|scope| {
        let mut results = Vec::new();
        let mut used_batches = Vec::new();
        let mut handles = Vec::new();
        for worker in 0..workers {
            let (sender, receiver) = mpsc::sync_channel::<Result<Found>>(1);
            // Batches go back to their worker to be filled again, so that the same few buffers
            // circulate: allocated on one thread and freed on another, fresh ones made the
            // allocator hold tens of MB more than was in use.
            let (give_back, given_back) = mpsc::sync_channel::<Changes>(2);
            results.push(receiver);
            used_batches.push(give_back);
            let channels = WorkerChannels {
                results: sender,
                used_batches: given_back,
            };
            handles.push(scope.spawn(move || {
                read_pieces_of_worker(reading, sector_size, plan, worker, workers, channels)
            }));
        }
        let mut mergers: Vec<TreeMerger> = (0..reading.hashed())
            .map(|_| TreeMerger::default())
            .collect();
        let gathered = (|| -> Result<()> {
            for index in 0..piece_count {
                // Workers take pieces in turn, so taking results in turn keeps them in order.
                let worker = (index % workers) as usize;
                loop {
                    let found = results[worker]
                        .recv()
                        .map_err(|_| Error::Internal("a reader thread stopped early"))??;
                    let (changes, values) = match found {
                        Found::Batch(changes) => (changes, None),
                        Found::PieceEnd(changes, values) => (changes, Some(values)),
                    };
                    on_piece(&changes)?;
                    // If the worker has enough already, this one is dropped.
                    let _ = used_batches[worker].try_send(changes);
                    if let Some(values) = values {
                        for (merger, value) in mergers.iter_mut().zip(values) {
                            merger.push(value);
                        }
                        break;
                    }
                }
                progress.advance(plan.piece_size.min(image_size - index * plan.piece_size));
            }
            Ok(())
        })();
        drop(results); // Stops workers that are still going after a failure.
        drop(used_batches);
        let mut whole_hashes = None;
        for handle in handles {
            let hashes = handle
                .join()
                .map_err(|_| Error::Internal("a reader thread failed unexpectedly"))?;
            whole_hashes = whole_hashes.or(hashes);
        }
        gathered?;
        if plan.independent {
            mergers
                .into_iter()
                .map(|merger| {
                    merger
                        .finish()
                        .ok_or(Error::Internal("too few pieces to merge"))
                })
                .collect()
        } else {
            whole_hashes.ok_or(Error::Internal("the reader thread returned no hash"))
        }
    })
}

/// A worker's ends of its channels: what it found goes out, used batches come back.
struct WorkerChannels {
    results: mpsc::SyncSender<Result<Found>>,
    used_batches: mpsc::Receiver<Changes>,
}

/// One worker: the pieces `worker`, `worker + workers`, ... of every image. With a single
/// worker the pieces come in order, and its hashers run over the whole images and are
/// returned at the end; otherwise each piece is hashed as a subtree and sent with its value.
fn read_pieces_of_worker(
    reading: &Reading<'_>,
    sector_size: u64,
    plan: PiecePlan,
    worker: u64,
    workers: u64,
    channels: WorkerChannels,
) -> Option<Vec<blake3::Hash>> {
    let WorkerChannels {
        results,
        used_batches,
    } = channels;
    let new_batch = || {
        let mut batch = used_batches.try_recv().unwrap_or_default();
        batch.clear();
        batch
    };
    let images = reading.images;
    let image_size = images[0].size;
    let hashed = reading.hashed();
    // Whole sectors per slice, so a sector never straddles two slices.
    let slice_size = reading
        .block_size
        .unwrap_or((SLICE / sector_size).max(1) * sector_size);
    // Images are read a slice at a time, so that the bytes are still in the CPU cache when
    // they are hashed and compared. An image that is copied is read, and handed to the copy,
    // a whole piece at a time instead: one-pass restore into a new file reading and writing
    // 64 KiB at a time took 1.3-1.7 times as long as with whole pieces (the slices are still
    // hashed and laid one by one), and 3.7 times once the buffers were placed in the page as
    // IoBuffer places them; a bare program doing only that reading, hashing and writing
    // showed the same.
    let span_size = match reading.copy {
        Some(_) => plan.piece_size,
        None => slice_size.max(SLICE).min(plan.piece_size),
    }
    .min(image_size.max(1));
    let mut buffers: Vec<IoBuffer> = images
        .iter()
        .map(|_| IoBuffer::new(span_size as usize))
        .collect();
    let mut hashers: Vec<blake3::Hasher> = (0..hashed).map(|_| plan.piece_hasher(0)).collect();
    // With a layer, each slice is hashed as a subtree of its own (a power of two of BLAKE3
    // chunks at a multiple of its size), so that a slice the layer leaves as it is takes the
    // value of the slice under it rather than being hashed again: the image seen through a
    // chain is hashed at the cost of the bytes the chain changes, not of the whole image.
    let slice_values = reading.layer.is_some()
        && plan.independent
        && slice_size.is_power_of_two()
        && slice_size >= blake3::CHUNK_LEN as u64;
    let mut slice_mergers: Vec<TreeMerger> = Vec::new();
    let mut piece_block_values: Vec<ChainingValue> = Vec::new();
    let mut piece_expected: Vec<ChainingValue> = Vec::new();
    for index in (worker..plan.piece_count(image_size)).step_by(workers as usize) {
        let offset = index * plan.piece_size;
        let length = plan.piece_size.min(image_size - offset);
        if plan.independent {
            hashers = (0..hashed).map(|_| plan.piece_hasher(offset)).collect();
        }
        if slice_values {
            slice_mergers = (0..hashed).map(|_| TreeMerger::default()).collect();
        }
        let mut changes = new_batch();
        piece_block_values.clear();
        piece_expected.clear();
        let mut read = match (reading.expected, reading.block_size) {
            (Some(expected), Some(block_size)) => expected.values_of(
                offset / block_size,
                length.div_ceil(block_size),
                &mut piece_expected,
            ),
            _ => Ok(()),
        };
        let mut position = offset;
        'spans: while read.is_ok() && position < offset + length {
            let span = span_size.min(offset + length - position) as usize;
            for (image, buffer) in images.iter().zip(&mut buffers) {
                read = image.read_at(position, &mut buffer[..span]);
                if read.is_err() {
                    break 'spans;
                }
            }
            for slice_start in (0..span).step_by(slice_size as usize) {
                let slice_position = position + slice_start as u64;
                let slice_range = slice_start..span.min(slice_start + slice_size as usize);
                // Each image's slice is hashed; then the layer is laid over the last one in
                // place, and the result hashed as the image seen through the layer.
                let mut under = None;
                for (index, buffer) in buffers.iter().enumerate() {
                    let merger = slice_mergers.get_mut(index);
                    let slice = &buffer[slice_range.clone()];
                    under = hash_slice(plan, slice_position, slice, &mut hashers[index], merger);
                }
                if let (Some(layer), Some(buffer)) = (reading.layer, buffers.last_mut()) {
                    let slice = &mut buffer[slice_range.clone()];
                    let laid = match layer.lay_over(slice_position, slice) {
                        Ok(laid) => laid,
                        Err(error) => {
                            read = Err(error);
                            break 'spans;
                        }
                    };
                    let laid_image = images.len();
                    match (under, slice_mergers.get_mut(laid_image)) {
                        // Left as it was: the value of the slice under it.
                        (Some(value), Some(merger)) if !laid => {
                            merger.push(value);
                            piece_block_values.push(value);
                        }
                        (_, merger) => {
                            let hasher = &mut hashers[laid_image];
                            let value = hash_slice(plan, slice_position, slice, hasher, merger);
                            piece_block_values.extend(value);
                        }
                    }
                }
                if reading.expected.is_some() {
                    // The slice is a block, whose value was just taken.
                    let block = piece_block_values.len().wrapping_sub(1);
                    match (piece_block_values.get(block), piece_expected.get(block)) {
                        (Some(value), Some(expected)) if value != expected => {
                            changes.add_block(slice_position, &buffers[0][slice_range], *expected)
                        }
                        (Some(_), Some(_)) => {}
                        _ => {
                            read = Err(Error::Internal("a block compared without its values"));
                            break 'spans;
                        }
                    }
                } else if reading.compare {
                    if let (Some(new), Some(base)) = (buffers.first(), buffers.last()) {
                        changes.compare(
                            slice_position,
                            &new[slice_range.clone()],
                            &base[slice_range],
                            sector_size as usize,
                        );
                    }
                }
                // Only comparing gathers changes; hand them over a batch at a time.
                if changes.new_data.len() >= BATCH {
                    let batch = std::mem::replace(&mut changes, new_batch());
                    if results.send(Ok(Found::Batch(batch))).is_err() {
                        return None; // Nobody is listening any more.
                    }
                }
            }
            if let (Some(copy), Some(last)) = (reading.copy, buffers.last()) {
                read = copy(position, &last[..span]);
                if read.is_err() {
                    break;
                }
            }
            position += span as u64;
        }
        if let (Ok(()), Some(block_values)) = (&read, reading.block_values) {
            read = block_values(offset, &piece_block_values);
        }
        let failed = read.is_err();
        let found = read.and_then(|()| {
            let values = if slice_values {
                std::mem::take(&mut slice_mergers)
                    .into_iter()
                    .map(|merger| {
                        merger
                            .finish_non_root()
                            .ok_or(Error::Internal("a piece without slices"))
                    })
                    .collect::<Result<Vec<_>>>()?
            } else if plan.independent {
                hashers.iter().map(piece_value).collect()
            } else {
                Vec::new()
            };
            Ok(Found::PieceEnd(changes, values))
        });
        if results.send(found).is_err() || failed {
            return None; // The result was handed over, or nobody is listening any more.
        }
    }
    (!plan.independent).then(|| hashers.iter().map(|hasher| hasher.finalize()).collect())
}

/// Hashes one slice of an image: into the piece's hasher, or, when slices are hashed on their
/// own (`merger`), as a subtree whose value goes to the piece's merger and is returned.
fn hash_slice(
    plan: PiecePlan,
    position: u64,
    slice: &[u8],
    hasher: &mut blake3::Hasher,
    merger: Option<&mut TreeMerger>,
) -> Option<ChainingValue> {
    match merger {
        Some(merger) => {
            let mut subtree = plan.piece_hasher(position);
            subtree.update(slice);
            let value = piece_value(&subtree);
            merger.push(value);
            Some(value)
        }
        None => {
            hasher.update(slice);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::error::Role;

    #[test]
    fn range_hasher_is_the_same_in_any_pieces() {
        // Three blocks of 1 KiB and a short one, at block 2 of an image of 8 KiB.
        let bytes: Vec<u8> = (0..3500u32).map(|i| (i * 7 % 251) as u8).collect();
        let whole = |block_size| {
            let mut hasher = RangeHasher::new(8192, 2048, block_size);
            hasher.update(&bytes);
            hasher.finalize()
        };
        for block_size in [None, Some(1024)] {
            let mut hasher = RangeHasher::new(8192, 2048, block_size);
            for piece in bytes.chunks(333) {
                hasher.update(piece);
            }
            assert_eq!(hasher.finalize(), whole(block_size));
        }
        let (plain, blocks) = whole(Some(1024));
        assert_eq!(plain, blake3::hash(&bytes));
        let mut values = blake3::Hasher::new();
        for (index, block) in bytes.chunks(1024).enumerate() {
            let mut hasher = BlockHasher::new(8192, 1024, 2048 + 1024 * index as u64);
            hasher.update(block);
            values.update(&hasher.value());
        }
        assert_eq!(blocks, values.finalize());
    }

    /// A layer of runs of bytes that do not overlap, sorted by offset.
    struct Runs(Vec<(u64, Vec<u8>)>);

    impl Layer for Runs {
        fn lay_over(&self, offset: u64, slice: &mut [u8]) -> Result<bool> {
            let end = offset + slice.len() as u64;
            let mut laid = false;
            for (at, bytes) in &self.0 {
                let (from, to) = ((*at).max(offset), (at + bytes.len() as u64).min(end));
                if from < to {
                    slice[(from - offset) as usize..(to - offset) as usize]
                        .copy_from_slice(&bytes[(from - at) as usize..(to - at) as usize]);
                    laid = true;
                }
            }
            Ok(laid)
        }
    }

    /// copy_image gives the image with the layer laid over it, and both hashes, whatever the
    /// image size and the buffer size (powers of two or not, pieces shorter than a slice, a
    /// short last piece), in order or not.
    #[test]
    fn copy_image_copies_the_image_seen_through_the_layer() {
        for image_size in [1u64, 4095, 65_537, (1 << 20) + 4095, 3_000_001] {
            let image: Vec<u8> = (0..image_size).map(|i| (i * 13 % 251) as u8).collect();
            let file = tempfile::tempfile().unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, &image, 0).unwrap();
            let image_file = OpenFile::from_file(file, "image", Role::Reffile).unwrap();
            // Runs across slice and piece boundaries, and one at the very end.
            let layer = Runs(
                [0, 60_000, 1_048_000, 2_999_990]
                    .into_iter()
                    .filter(|&at| at < image_size)
                    .map(|at| {
                        let length = 9_000.min(image_size - at);
                        (at, vec![0xa5; length as usize])
                    })
                    .collect(),
            );
            let mut expected = image.clone();
            layer.lay_over(0, &mut expected).unwrap();
            for buffer_size in [512u64, 3000, 100_000, 1 << 20] {
                for in_order in [false, true] {
                    let copied = Mutex::new(vec![0u8; image_size as usize]);
                    let copy = |offset: u64, bytes: &[u8]| {
                        copied.lock().unwrap()[offset as usize..][..bytes.len()]
                            .copy_from_slice(bytes);
                        Ok(())
                    };
                    let totals = copy_image(
                        &image_file,
                        &layer,
                        buffer_size,
                        in_order,
                        &NoProgress,
                        &copy,
                    )
                    .unwrap();
                    let case = format!("image {image_size}, buffer {buffer_size}, {in_order}");
                    assert!(copied.into_inner().unwrap() == expected, "{case}");
                    assert_eq!(totals.image_hash, blake3::hash(&image), "{case}");
                    assert_eq!(totals.copied_hash, blake3::hash(&expected), "{case}");
                }
            }
        }
    }
}
