//! restore: apply a diff to a target that holds the base image.
//!
//! The guarantee, in order:
//! 1. The whole diff is read and checked (structure, order, bounds, every record hash, the
//!    whole-diff hash) before the target is opened for writing.
//! 2. The target must have the image's size, and is opened exclusively and locked.
//! 3. A dry run reads the target at every extent: each must hold the base data (to be
//!    written) or the new data (written already, skipped). Anything else stops the restore
//!    with nothing written, naming the first bad offset. So the wrong target and a diff
//!    applied twice are caught, and an interrupted restore is finished by running it again
//!    (the one record a killed restore may have left half-written is recognized by where it
//!    is and by its contents: see `Frontier`).
//! 4. Only then is the diff read a second time, each record checked against its hash again
//!    before it is written, and the target synced before exit.
//!
//! Diffs of the original tool (v1, v2) hold no hashes and no image size: for them, step 1
//! checks structure and bounds against the target's size, and steps 3 and 4 cannot check
//! the target's contents or the data.

use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};

use crate::cli::RestoreArgs;
use crate::device::{self, Image};
use crate::engine::{self, Progress};
use crate::format::{self, DataMode, DiffReader, ReadOptions, Record};
use crate::units::human_bytes;

pub fn run(args: &RestoreArgs) -> Result<()> {
    let options = &args.options;
    let started = Instant::now();
    let diff = device::open_input(&args.difffile, "diff")?;
    device::refuse_alias(&args.outfile, "target", &[&diff])?;
    // Legacy diffs are bounded by the target's size, so learn it before checking the diff;
    // reading it is harmless, writing waits until the diff has passed.
    let target_size = device::open_input(&args.outfile, "target")?.size;
    let read_options = |mode| ReadOptions {
        mode,
        v1_sector_size: options.sector_size(),
        target_size: Some(target_size),
    };

    let progress = Progress::new(!options.quiet, diff.size, "checking diff");
    let scan = format::scan(&diff, &read_options(DataMode::Check), |record| {
        progress.advance(record.length)
    })
    .with_context(|| invalid(&diff))?;
    drop(progress);

    let target = device::open_target(&args.outfile)?;
    let image_size = scan.info.image_size.unwrap_or(target_size);
    if target.size != image_size {
        bail!(
            "wrong target: {}: it has {} bytes but the diff {} was made from an image of {} bytes",
            target.path.display(),
            target.size,
            diff.path.display(),
            image_size
        );
    }

    let mut pass = Pass {
        diff: &diff,
        target: &target,
        buffer_size: options.buffer_size,
        scratch: Vec::new(),
        record_data: Vec::new(),
    };
    let progress = Progress::new(!options.quiet, scan.totals.changed_bytes, "checking target");
    let planned = pass.run(&read_options(DataMode::SkipData), false, &progress)?;
    drop(progress);

    if planned.to_write > 0 {
        let progress = Progress::new(!options.quiet, scan.totals.changed_bytes, "restoring");
        pass.run(&read_options(DataMode::Check), true, &progress)?;
        drop(progress);
    }
    // Also when nothing was left to write: a restore killed after its last write but before
    // this sync may have left the data in the page cache only, and a rerun that reports
    // success must have it on the device.
    target
        .file
        .sync_all()
        .with_context(|| target.describe("cannot sync"))?;

    if options.verbose {
        let format = scan.info.format;
        if scan.totals.image_hash.is_none() {
            eprintln!(
                "diff-dd: restore: {} is a {} diff ({}): it holds no hashes, so only its structure and bounds were checked, not its data or the target's contents",
                diff.path.display(),
                format.name(),
                format.origin()
            );
        }
        eprintln!(
            "diff-dd: restore: {}, {} written, {} already restored; {} in {:.2}s",
            super::count(scan.totals.extent_count, "extent"),
            planned.to_write,
            planned.already_restored,
            human_bytes(planned.bytes_to_write),
            started.elapsed().as_secs_f64(),
        );
    }
    Ok(())
}

/// The context for any fault found in the diff itself.
fn invalid(diff: &Image) -> String {
    format!("invalid diff: {}", diff.path.display())
}

/// One pass over the diff against the target: a dry run that only checks, or the writing run.
struct Pass<'a> {
    diff: &'a Image,
    target: &'a Image,
    buffer_size: u64,
    scratch: Vec<u8>,
    /// One whole record's data, for records that carry a hash (bounded by the diff's record
    /// size limit, and by what the diff holds: the scan measured the longest record).
    record_data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Planned {
    to_write: u64,
    bytes_to_write: u64,
    already_restored: u64,
}

/// What the target holds where a record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// The data the diff replaces (or, for a legacy diff without hashes, anything).
    Base,
    /// The data the diff writes: restored already.
    New,
    /// Neither: the wrong target, or the record a killed restore was writing.
    Neither,
}

/// Restore writes records in order, and the kernel writes a file page by page, so a restore
/// that was killed leaves records holding new data, then at most one torn record (new data up
/// to a page boundary, base data after), then records holding base data. A record in neither
/// state is written only in that position, and only if it starts with its new data up to a
/// page boundary; anywhere else it means the wrong target.
#[derive(Debug, Default)]
struct Frontier {
    passed_base: bool,
    torn: bool,
}

impl Pass<'_> {
    fn run(&mut self, options: &ReadOptions, write: bool, progress: &Progress) -> Result<Planned> {
        let invalid = || invalid(self.diff);
        let mut reader = format::open_reader(self.diff, options).with_context(invalid)?;
        let mut planned = Planned::default();
        let mut frontier = Frontier::default();
        while let Some(record) = reader.next_record().with_context(invalid)? {
            progress.advance(record.length);
            let found = self.look_at_target(&record)?;
            let in_order = match found {
                Found::New => !frontier.torn,
                Found::Base => {
                    frontier.passed_base = true;
                    true
                }
                Found::Neither => !frontier.passed_base && !frontier.torn,
            };
            if found == Found::New && in_order {
                planned.already_restored += 1;
                continue;
            }
            if found == Found::Neither && in_order {
                frontier.torn = true;
                self.load_record(reader.as_mut(), &record)?;
                let data = &self.record_data[..record.length as usize];
                if !starts_torn(self.target, &record, data, &mut self.scratch)? {
                    return Err(self.wrong_target(&record, write));
                }
            } else if !in_order {
                return Err(self.wrong_target(&record, write));
            }
            planned.to_write += 1;
            planned.bytes_to_write += record.length;
            if write {
                self.write_record(reader.as_mut(), &record, found == Found::Neither)?;
            }
        }
        Ok(planned)
    }

    /// Reads the target where `record` goes. A legacy record has no hashes to tell by, so it
    /// counts as base data and is written.
    fn look_at_target(&mut self, record: &Record) -> Result<Found> {
        let (Some(new_hash), Some(base_hash)) = (record.new_hash, record.base_hash) else {
            return Ok(Found::Base);
        };
        let scratch_len = self.buffer_size.min(record.length) as usize;
        self.scratch.resize(self.scratch.len().max(scratch_len), 0);
        let found = engine::hash_range(
            self.target,
            record.offset,
            record.length,
            &mut self.scratch[..scratch_len],
        )?;
        Ok(if found == new_hash {
            Found::New
        } else if found == base_hash {
            Found::Base
        } else {
            Found::Neither
        })
    }

    /// Reads a whole record's data; the reader has checked it against its hash once this
    /// returns.
    fn load_record(&mut self, reader: &mut dyn DiffReader, record: &Record) -> Result<()> {
        let length = record.length as usize;
        self.record_data
            .resize(self.record_data.len().max(length), 0);
        let data = &mut self.record_data[..length];
        reader.read_data(data).with_context(|| invalid(self.diff))
    }

    /// Writes a record. One with a hash is read whole and checked before any of it is
    /// written; one without (legacy) is streamed in buffers.
    fn write_record(
        &mut self,
        reader: &mut dyn DiffReader,
        record: &Record,
        loaded: bool,
    ) -> Result<()> {
        if record.new_hash.is_some() {
            if !loaded {
                self.load_record(reader, record)?;
            }
            let data = &self.record_data[..record.length as usize];
            return engine::write_at(self.target, record.offset, data);
        }
        let piece_limit = self.buffer_size.min(record.length);
        self.scratch
            .resize(self.scratch.len().max(piece_limit as usize), 0);
        let mut written = 0;
        while written < record.length {
            let piece = piece_limit.min(record.length - written) as usize;
            let data = &mut self.scratch[..piece];
            reader.read_data(data).with_context(|| invalid(self.diff))?;
            engine::write_at(self.target, record.offset + written, data)?;
            written += piece as u64;
        }
        Ok(())
    }

    fn wrong_target(&self, record: &Record, write: bool) -> anyhow::Error {
        let consequence = if write {
            "it changed since it was checked; restore stopped"
        } else {
            "nothing was written"
        };
        anyhow!(
            "wrong target: {}: at byte {} (extent {}) it holds neither the base data the diff replaces nor the new data; {consequence}",
            self.target.path.display(),
            record.offset,
            record.index
        )
    }
}

/// The page size of the page cache, which a killed write tears at.
const PAGE_SIZE: u64 = 4096;

/// True when the target holds `new_data` at least up to the first page boundary inside the
/// record, but not all of it: what a restore killed while writing this record leaves.
fn starts_torn(
    target: &Image,
    record: &Record,
    new_data: &[u8],
    scratch: &mut [u8],
) -> Result<bool> {
    let first_page_end = (PAGE_SIZE - record.offset % PAGE_SIZE).min(record.length);
    let mut matching = 0u64;
    while matching < record.length {
        let piece = (scratch.len() as u64).min(record.length - matching) as usize;
        let held = &mut scratch[..piece];
        engine::read_at(target, record.offset + matching, held)?;
        let expected = &new_data[matching as usize..][..piece];
        match held.iter().zip(expected).position(|(a, b)| a != b) {
            Some(first_difference) => {
                matching += first_difference as u64;
                break;
            }
            None => matching += piece as u64,
        }
    }
    Ok(matching >= first_page_end && matching < record.length)
}
