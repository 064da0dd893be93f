//! One-pass restore: the full image with a chain of diffs laid over it, written into a target
//! once (`restore --base FULL DIFF... TARGET`).
//!
//! The guarantee, in order:
//! 1. Every diff is read and checked in full, and the chain by hashes alone (each diff's base
//!    hash is the image hash of the one before), before anything is written.
//! 2. FULL is read front to back once, with the chain's records laid over it
//!    ([`crate::chain::Overlay`]), and what that gives is written into the target. Both are
//!    hashed as they go: FULL's hash must be the first diff's base hash, and the result's
//!    the last diff's image hash.
//! 3. A new file is written unnamed and appears under its name only when both hashes
//!    matched and it is on disk; where the result is zeros it is left sparse. An existing
//!    file, a device or a stream is written in place, so an error once it is written (a
//!    mismatch, a failed read or write) says what it holds ([`TargetState`]).
//!
//! An existing regular file is overwritten only with `force`, unless it holds the chain's
//! image already (what a finished earlier run leaves: then nothing is written). A file that an
//! interrupted run left written in part cannot be told from any other file, so it too needs
//! `force`; a run into a new file never leaves one under the name. Block devices are written
//! as they are: they are opened exclusively, and hold nothing but images.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::chain::{self, Chain};
use crate::device::{OpenFile, Output, Writeback};
use crate::engine::{self, Copier, CopyTotals, Progress, Stage};
use crate::error::{Action, Error, Holds, Result, Role, TargetState};
use crate::ops::restore::require_size;

#[derive(Debug, Clone)]
pub struct OnePassOptions {
    /// How much of FULL is read at once.
    pub buffer_size: u64,
    /// Overwrite an existing regular file that does not hold the chain's image already (and,
    /// for the command, read FULL from a device mounted read-write).
    pub force: bool,
}

/// Where a one-pass restore writes.
pub enum OnePassTarget<'a> {
    /// A file that did not exist: written unnamed, sparse where the image is zeros, and put
    /// under its name once it holds the image.
    New(Output),
    /// An existing file or a block device, opened exclusively and locked: written in place.
    InPlace(&'a OpenFile),
    /// Standard output, written front to back.
    Stream(Output),
}

/// What a one-pass restore did.
#[derive(Debug, Clone)]
pub struct OnePassSummary {
    pub diff_count: u64,
    pub image_size: u64,
    /// Bytes the chain's records changed in FULL (counted per diff, so overlaps count twice).
    pub changed_bytes: u64,
    /// Bytes written into the target: less than the image for a sparse new file.
    pub bytes_written: u64,
    pub image_hash: blake3::Hash,
}

/// Writes `full` with the chain `diffs` laid over it into `target`. FULL can be standard
/// input: it must then hold exactly the chain's image size, and is read on one thread.
pub fn restore_one_pass(
    full: &mut OpenFile,
    diffs: &[&OpenFile],
    target: OnePassTarget<'_>,
    options: &OnePassOptions,
    progress: &dyn Progress,
) -> Result<OnePassSummary> {
    let chain = Chain::check(diffs, progress)?;
    let image_size = chain.image_size();
    full.expect_stream_size(image_size, "the size of the image the diffs were made of");
    let full = &*full;
    chain.check_full_size(full)?;
    let target_path = match &target {
        OnePassTarget::New(output) | OnePassTarget::Stream(output) => output.path().to_path_buf(),
        OnePassTarget::InPlace(file) => {
            require_size(file, image_size, || "the chain gives".into())?;
            if !options.force && is_regular_file(file)? {
                progress.start(Stage::CheckingTarget, image_size);
                let held = engine::hash_image(file, options.buffer_size, false, progress)?;
                if held != chain.image_hash() {
                    return Err(Error::unusable(
                        "refusing to overwrite target",
                        &file.path,
                        format!(
                            "it exists and does not hold the image the chain gives (its BLAKE3 is {}..., the image of {} is {}...); give --force to overwrite it (also to finish a run into it that was interrupted); nothing was written",
                            chain::short(held),
                            chain.last().diff.path.display(),
                            chain::short(chain.image_hash()),
                        ),
                    ));
                }
                // A finished earlier run: nothing to write, but it may not have been synced.
                file.sync()?;
                return Ok(OnePassSummary {
                    diff_count: chain.links.len() as u64,
                    image_size,
                    changed_bytes: chain.changed_bytes(),
                    bytes_written: 0,
                    image_hash: held,
                });
            }
            file.path.clone()
        }
    };

    let overlay = chain.overlay();
    // The reading threads write in turn: writes to one file from several threads at once
    // contend for its inode lock in the kernel, which spins (measured: 22% of the CPU time).
    // The writer whose turn it is also asks the kernel to write to the device as it goes.
    let one_writer = Mutex::new(Writeback::default());
    let written = AtomicU64::new(0);
    let count = |bytes: usize| {
        written.fetch_add(bytes as u64, Ordering::Relaxed);
    };
    // Whether anything went out to standard output (a file in place tells it itself).
    let streamed = AtomicBool::new(false);
    progress.start(Stage::Restoring, image_size);
    let failed_write = |offset: u64, source: std::io::Error| Error::Io {
        action: Action::Write,
        role: Role::Target,
        path: target_path.clone(),
        at: Some(offset),
        source,
    };
    // How each piece reaches the target: on the reading threads, which take turns (the
    // stream in order, from one thread).
    let write: Box<Copier<'_>> = match &target {
        OnePassTarget::New(output) => {
            let file = output.file();
            // The length first: what is never written reads back as zeros.
            file.set_len(image_size)
                .map_err(|error| Error::io(Action::Write, Role::Target, &target_path, error))?;
            Box::new(move |offset, bytes| {
                let mut writeback = take_turn(&one_writer)?;
                for (at, run) in nonzero_runs(bytes) {
                    let at_offset = offset + at as u64;
                    file.write_all_at(run, at_offset)
                        .map_err(|error| failed_write(at_offset, error))?;
                    writeback.wrote(file, at_offset, run.len() as u64);
                    count(run.len());
                }
                Ok(())
            })
        }
        OnePassTarget::InPlace(file) => Box::new(move |offset, bytes| {
            let mut writeback = take_turn(&one_writer)?;
            file.write_at(offset, bytes)?;
            writeback.wrote(&file.file, offset, bytes.len() as u64);
            count(bytes.len());
            Ok(())
        }),
        OnePassTarget::Stream(output) => {
            let stream = Mutex::new(output.file());
            let streamed = &streamed;
            Box::new(move |offset, bytes| {
                let mut stream = stream
                    .lock()
                    .map_err(|_| Error::Internal("a writer of standard output failed"))?;
                // Call by call, to know whether a failed write had sent part of `bytes`.
                let mut done = 0;
                while done < bytes.len() {
                    match stream.write(&bytes[done..]) {
                        Ok(0) => {
                            let error = std::io::Error::from(std::io::ErrorKind::WriteZero);
                            return Err(failed_write(offset + done as u64, error));
                        }
                        Ok(sent) => {
                            streamed.store(true, Ordering::Relaxed);
                            done += sent;
                        }
                        Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(error) => return Err(failed_write(offset + done as u64, error)),
                    }
                }
                count(bytes.len());
                Ok(())
            })
        }
    };
    let in_order = matches!(target, OnePassTarget::Stream(_));
    let copied = engine::copy_image(
        full,
        &overlay,
        options.buffer_size,
        in_order,
        progress,
        &*write,
    );
    drop(write);
    // What the target holds when the restore stops short, given what was written into it.
    let left = |holds: Holds| match &target {
        OnePassTarget::New(_) => TargetState::NotLinked,
        OnePassTarget::InPlace(file) if !file.was_written() => TargetState::Untouched,
        OnePassTarget::InPlace(_) => TargetState::InPlace(holds),
        OnePassTarget::Stream(_) if !streamed.load(Ordering::Relaxed) => TargetState::Untouched,
        OnePassTarget::Stream(_) => TargetState::Streamed(holds),
    };
    let stopped = |error: Error, holds| error.after_writing(&target_path, left(holds));
    // A FULL from standard input that ends early, or a failed read or write, stops the copy
    // with part of an existing target written.
    let totals = copied.map_err(|error| stopped(error, Holds::Part))?;
    check_hashes(&chain, full, &target_path, &totals)
        .map_err(|error| stopped(error, Holds::OtherImage))?;
    // A FULL from standard input that goes on past the image is not the full image either,
    // though what was written is the image the diffs give (and is on the device, for a
    // target written in place).
    if let Err(error) = full.finish_stream() {
        if let OnePassTarget::InPlace(file) = &target {
            file.sync().map_err(|error| stopped(error, Holds::Part))?;
        }
        return Err(stopped(error, Holds::Image));
    }
    // Written whole, but not known to have reached the device (a new file is then not
    // linked, and its own error says so).
    let unsynced = left(Holds::Part);
    let unsynced = |error: Error| error.after_writing(&target_path, unsynced);
    match target {
        OnePassTarget::New(output) => output.commit()?,
        OnePassTarget::Stream(output) => output.commit().map_err(unsynced)?,
        OnePassTarget::InPlace(file) => file.sync().map_err(unsynced)?,
    }
    Ok(OnePassSummary {
        diff_count: chain.links.len() as u64,
        image_size,
        changed_bytes: chain.changed_bytes(),
        bytes_written: written.into_inner(),
        image_hash: totals.copied_hash,
    })
}

fn is_regular_file(file: &OpenFile) -> Result<bool> {
    let metadata = file
        .file
        .metadata()
        .map_err(|error| file.error(Action::Open, None, error))?;
    Ok(metadata.is_file())
}

/// The turn at writing the target, with its writeback.
fn take_turn(one_writer: &Mutex<Writeback>) -> Result<std::sync::MutexGuard<'_, Writeback>> {
    one_writer
        .lock()
        .map_err(|_| Error::Internal("a writer of the target failed"))
}

/// FULL must be the chain's base, and then what was written is the chain's image, unless a
/// diff changed since it was checked.
fn check_hashes(
    chain: &Chain<'_>,
    full: &OpenFile,
    target: &std::path::Path,
    totals: &CopyTotals,
) -> Result<()> {
    chain.require_base(full, "FULL", totals.image_hash)?;
    if totals.copied_hash != chain.image_hash() {
        return Err(Error::unusable(
            "restore failed",
            target,
            format!(
                "what was written has BLAKE3 {}..., not {}..., the image hash of {}",
                chain::short(totals.copied_hash),
                chain::short(chain.image_hash()),
                chain.last().diff.path.display()
            ),
        ));
    }
    Ok(())
}

/// The runs of `bytes` that hold anything but zeros, in blocks of 4 KiB (the page and the
/// usual filesystem block): a new file is left sparse where the image is zeros.
fn nonzero_runs(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    const BLOCK: usize = 4096;
    let blocks = bytes.len().div_ceil(BLOCK);
    let is_zero = move |block: usize| {
        bytes[block * BLOCK..((block + 1) * BLOCK).min(bytes.len())]
            .iter()
            .all(|&byte| byte == 0)
    };
    let mut block = 0;
    std::iter::from_fn(move || {
        while block < blocks && is_zero(block) {
            block += 1;
        }
        if block == blocks {
            return None;
        }
        let start = block;
        while block < blocks && !is_zero(block) {
            block += 1;
        }
        let (from, to) = (start * BLOCK, (block * BLOCK).min(bytes.len()));
        Some((from, &bytes[from..to]))
    })
}

#[cfg(test)]
mod tests {
    use super::nonzero_runs;

    #[test]
    fn nonzero_runs_skip_whole_zero_blocks_only() {
        let mut bytes = vec![0u8; 4096 * 5 + 100];
        bytes[4096 + 7] = 1; // block 1
        bytes[4096 * 2] = 2; // block 2, joined with 1
        bytes[4096 * 5 + 99] = 3; // the short last block
        let runs: Vec<(usize, usize)> = nonzero_runs(&bytes)
            .map(|(at, run)| (at, run.len()))
            .collect();
        assert_eq!(runs, vec![(4096, 8192), (4096 * 5, 100)]);
        assert_eq!(nonzero_runs(&[0u8; 10_000]).count(), 0);
    }
}
