//! restore: apply a diff to a target that holds the base image.
//!
//! The guarantee, in order:
//! 1. The whole diff is read and checked (structure, order, bounds, every record hash, the
//!    whole-diff hash) before the target is opened for writing.
//! 2. The target must have the image's size, and is opened exclusively and locked.
//! 3. A dry run reads the target at every extent: each must hold the base data (to be
//!    written) or the new data (written already, skipped). Anything else stops the restore
//!    with nothing written, naming the first bad offset. So the wrong target and a diff
//!    applied twice are caught, and an interrupted restore is finished by running it again.
//! 4. Only then is the diff read a second time, each record checked against its hash again
//!    before it is written, and the target synced before exit.
//!
//! Diffs of the original tool (v1, v2) hold no hashes and no image size: for them, step 1
//! checks structure and bounds against the target's size, and steps 3 and 4 cannot check
//! the target's contents or the data.

use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cli::RestoreArgs;
use crate::device::{self, Image};
use crate::engine::{self, Progress};
use crate::format::{self, DataMode, ReadOptions, Record};
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
    };
    let progress = Progress::new(!options.quiet, scan.totals.changed_bytes, "checking target");
    let planned = pass.run(&read_options(DataMode::SkipData), false, &progress)?;
    drop(progress);

    if planned.to_write > 0 {
        let progress = Progress::new(!options.quiet, scan.totals.changed_bytes, "restoring");
        pass.run(&read_options(DataMode::Check), true, &progress)?;
        drop(progress);
        target
            .file
            .sync_all()
            .with_context(|| target.describe("cannot sync"))?;
    }

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
            "diff-dd: restore: {} extents, {} written, {} already restored; {} in {:.2}s",
            scan.totals.extent_count,
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
}

#[derive(Debug, Default)]
struct Planned {
    to_write: u64,
    bytes_to_write: u64,
    already_restored: u64,
}

/// What the target holds where a record goes.
enum Found {
    Base,
    New,
}

impl Pass<'_> {
    fn run(&mut self, options: &ReadOptions, write: bool, progress: &Progress) -> Result<Planned> {
        let invalid = || invalid(self.diff);
        let mut reader = format::open_reader(self.diff, options).with_context(invalid)?;
        let mut planned = Planned::default();
        while let Some(record) = reader.next_record().with_context(invalid)? {
            progress.advance(record.length);
            if let Found::New = self.check_target(&record, write)? {
                planned.already_restored += 1;
                continue;
            }
            planned.to_write += 1;
            planned.bytes_to_write += record.length;
            if write {
                // A record with a hash is read whole and checked before any of it is written
                // (it is at most the diff's record size limit, which the scan measured); one
                // without is streamed in buffers.
                let piece_limit = match record.new_hash {
                    Some(_) => record.length,
                    None => self.buffer_size.min(record.length),
                };
                self.scratch
                    .resize(self.scratch.len().max(piece_limit as usize), 0);
                let mut written = 0;
                while written < record.length {
                    let piece = piece_limit.min(record.length - written) as usize;
                    let data = &mut self.scratch[..piece];
                    reader.read_data(data).with_context(invalid)?;
                    engine::write_at(self.target, record.offset + written, data)?;
                    written += piece as u64;
                }
            }
        }
        Ok(planned)
    }

    /// Reads the target where `record` goes. Without hashes (legacy diffs) nothing can be
    /// told, and the record is written.
    fn check_target(&mut self, record: &Record, write: bool) -> Result<Found> {
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
        if found == new_hash {
            return Ok(Found::New);
        }
        if found == base_hash {
            return Ok(Found::Base);
        }
        let consequence = if write {
            "it changed since it was checked; restore stopped"
        } else {
            "nothing was written"
        };
        bail!(
            "wrong target: {}: at byte {} (extent {}) it holds neither the base data the diff replaces nor the new data; {consequence}",
            self.target.path.display(),
            record.offset,
            record.index
        )
    }
}
