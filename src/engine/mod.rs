//! The sector engine: every byte diff-dd reads from an image or a target is read here.
//!
//! It reads in pieces of about the user's buffer size (never more than a few at once, so memory
//! is bounded by the buffer size and not by the image), compares images sector by sector into
//! extents, hashes with BLAKE3 and drives the progress bars. Commands compose it; none has a
//! read loop of its own.

pub mod compare;
pub mod progress;
mod tree_hash;

use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::thread;

use blake3::hazmat::ChainingValue;

use anyhow::{anyhow, bail, Context, Result};

use crate::device::Image;
pub use compare::{ChangedExtent, Changes, ExtentFinder};
pub use progress::Progress;
use tree_hash::{piece_value, PiecePlan, TreeMerger};

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
pub fn compare_images(
    new: &Image,
    base: &Image,
    settings: CompareSettings,
    progress: &Progress,
    sink: &mut impl FnMut(ChangedExtent<'_>) -> Result<()>,
) -> Result<CompareTotals> {
    require_same_size(new, base)?;
    let mut finder = ExtentFinder::new(
        settings.sector_size as usize,
        settings.record_limit as usize,
    );
    let hashes = read_pieces(
        &[new, base],
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
        new_hash: hashes[0],
        base_hash: hashes[1],
    })
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
    let hashes = read_pieces(&[image], 1, buffer_size, progress, |_| Ok(()))?;
    Ok(hashes[0])
}

/// How much of a piece is read before it is hashed and compared: small enough that both
/// images' bytes are still in the CPU cache for BLAKE3 and the comparison (64 KiB measured
/// fastest, by a little, among 32 KiB to 1 MiB with bench/run.sh).
const SLICE: u64 = 64 << 10;

/// What a worker found in one piece.
struct Piece {
    /// Per image: the piece's BLAKE3 chaining value, when pieces are hashed independently.
    values: Vec<ChainingValue>,
    changes: Changes,
}

/// Reads one or two images of equal size in pieces of about the buffer size, on one worker
/// thread per core. Each worker reads its pieces of all images slice by slice, hashes each
/// slice and (for two images) compares it while the bytes are still in cache: the images are
/// read once and nothing crosses between cores but the changed sectors. `on_piece` receives
/// each piece's changes in order; the whole-image hashes come back in the images' order.
///
/// Memory: per worker, one slice per image and the changed bytes of at most two pieces.
fn read_pieces(
    images: &[&Image],
    sector_size: u64,
    buffer_size: u64,
    progress: &Progress,
    mut on_piece: impl FnMut(&Changes) -> Result<()>,
) -> Result<Vec<blake3::Hash>> {
    let image_size = images[0].size;
    let plan = PiecePlan::new(image_size, buffer_size, sector_size);
    let piece_count = plan.piece_count(image_size);
    let workers = if plan.independent { 2 } else { 1 };
    thread::scope(|scope| {
        let mut results = Vec::new();
        let mut handles = Vec::new();
        for worker in 0..workers {
            let (sender, receiver) = mpsc::sync_channel::<Result<Piece>>(1);
            results.push(receiver);
            handles.push(scope.spawn(move || {
                read_pieces_of_worker(images, sector_size, plan, worker, workers, sender)
            }));
        }
        let mut mergers: Vec<TreeMerger> = images.iter().map(|_| TreeMerger::default()).collect();
        let gathered = (|| -> Result<()> {
            for index in 0..piece_count {
                // Workers take pieces in turn, so taking results in turn keeps them in order.
                let piece = results[(index % workers) as usize]
                    .recv()
                    .map_err(|_| anyhow!("a reader thread stopped early"))??;
                for (merger, value) in mergers.iter_mut().zip(piece.values) {
                    merger.push(value);
                }
                on_piece(&piece.changes)?;
                progress.advance(plan.piece_size.min(image_size - index * plan.piece_size));
            }
            Ok(())
        })();
        drop(results); // Stops workers that are still going after a failure.
        let mut whole_hashes = None;
        for handle in handles {
            let hashes = handle
                .join()
                .map_err(|_| anyhow!("a reader thread failed unexpectedly"))?;
            whole_hashes = whole_hashes.or(hashes);
        }
        gathered?;
        if plan.independent {
            mergers
                .into_iter()
                .map(|merger| merger.finish().context("too few pieces to merge"))
                .collect()
        } else {
            whole_hashes.context("the reader thread returned no hash")
        }
    })
}

/// One worker: the pieces `worker`, `worker + workers`, ... of every image. With a single
/// worker the pieces come in order, and its hashers run over the whole images and are
/// returned at the end; otherwise each piece is hashed as a subtree and sent with its value.
fn read_pieces_of_worker(
    images: &[&Image],
    sector_size: u64,
    plan: PiecePlan,
    worker: u64,
    workers: u64,
    results: mpsc::SyncSender<Result<Piece>>,
) -> Option<Vec<blake3::Hash>> {
    let image_size = images[0].size;
    // Whole sectors per slice, so a sector never straddles two slices.
    let slice_size = (SLICE / sector_size).max(1) * sector_size;
    let mut slices: Vec<Vec<u8>> = images
        .iter()
        .map(|_| vec![0u8; slice_size.min(plan.piece_size) as usize])
        .collect();
    let mut hashers: Vec<blake3::Hasher> = images.iter().map(|_| plan.piece_hasher(0)).collect();
    for index in (worker..plan.piece_count(image_size)).step_by(workers as usize) {
        let offset = index * plan.piece_size;
        let length = plan.piece_size.min(image_size - offset);
        if plan.independent {
            hashers = images.iter().map(|_| plan.piece_hasher(offset)).collect();
        }
        let mut changes = Changes::default();
        let mut read = Ok(());
        let mut position = offset;
        'slices: while position < offset + length {
            let piece = slice_size.min(offset + length - position) as usize;
            for ((image, slice), hasher) in images.iter().zip(&mut slices).zip(&mut hashers) {
                read = read_at(image, position, &mut slice[..piece]);
                if read.is_err() {
                    break 'slices;
                }
                hasher.update(&slice[..piece]);
            }
            if let [new, base] = &slices[..] {
                changes.compare(
                    position,
                    &new[..piece],
                    &base[..piece],
                    sector_size as usize,
                );
            }
            position += piece as u64;
        }
        let failed = read.is_err();
        let piece = read.map(|()| Piece {
            values: if plan.independent {
                hashers.iter().map(piece_value).collect()
            } else {
                Vec::new()
            },
            changes,
        });
        if results.send(piece).is_err() || failed {
            return None; // The result was handed over, or nobody is listening any more.
        }
    }
    (!plan.independent).then(|| hashers.iter().map(|hasher| hasher.finalize()).collect())
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
