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

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cli::RestoreArgs;
use crate::device::{self, Image};
use crate::engine::{self, Progress};
use crate::format::{self, DataMode};
use crate::units::human_bytes;

pub fn run(args: &RestoreArgs) -> Result<()> {
    let options = &args.options;
    let started = Instant::now();
    let diff = device::open_input(&args.difffile, "diff")?;

    let progress = Progress::new(!options.quiet, diff.size, "checking diff");
    let scan = format::scan(&diff, DataMode::Check, |record| {
        progress.advance(record.length)
    })
    .with_context(|| invalid(&diff))?;
    drop(progress);

    device::refuse_alias(&args.outfile, "target", &[&diff])?;
    let target = device::open_target(&args.outfile)?;
    require_image_size(&target, scan.info.image_size, &diff.path)?;

    // Hashing the target needs a buffer no larger than the -b the user allowed; writing
    // needs one record, which the diff's own limits bound (and the scan measured).
    let mut pass = Pass {
        diff: &diff,
        target: &target,
        scratch: vec![0u8; options.buffer_size.min(scan.longest_record) as usize],
        record_data: Vec::new(),
    };
    let progress = Progress::new(!options.quiet, scan.totals.changed_bytes, "checking target");
    let planned = pass.run(false, &progress)?;
    drop(progress);

    if planned.to_write > 0 {
        pass.record_data = vec![0u8; scan.longest_record as usize];
        let progress = Progress::new(!options.quiet, scan.totals.changed_bytes, "restoring");
        pass.run(true, &progress)?;
        drop(progress);
        target
            .file
            .sync_all()
            .with_context(|| target.describe("cannot sync"))?;
    }

    if options.verbose {
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

fn require_image_size(target: &Image, image_size: u64, diff_path: &Path) -> Result<()> {
    if target.size != image_size {
        bail!(
            "wrong target: {}: it has {} bytes but the diff {} was made from an image of {} bytes",
            target.path.display(),
            target.size,
            diff_path.display(),
            image_size
        );
    }
    Ok(())
}

/// One pass over the diff against the target: a dry run that only checks, or the writing run.
struct Pass<'a> {
    diff: &'a Image,
    target: &'a Image,
    scratch: Vec<u8>,
    /// One record's data; empty in the dry run, which does not read data.
    record_data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Planned {
    to_write: u64,
    bytes_to_write: u64,
    already_restored: u64,
}

impl Pass<'_> {
    fn run(&mut self, write: bool, progress: &Progress) -> Result<Planned> {
        let mode = if write {
            DataMode::Check
        } else {
            DataMode::SkipData
        };
        let mut reader =
            format::open_reader(self.diff, mode).with_context(|| invalid(self.diff))?;
        let mut planned = Planned::default();
        while let Some(record) = reader.next_record().with_context(|| invalid(self.diff))? {
            let target_hash =
                engine::hash_range(self.target, record.offset, record.length, &mut self.scratch)?;
            progress.advance(record.length);
            if target_hash == record.new_hash {
                planned.already_restored += 1;
                continue;
            }
            if target_hash != record.base_hash {
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
                );
            }
            planned.to_write += 1;
            planned.bytes_to_write += record.length;
            if write {
                let data = &mut self.record_data[..record.length as usize];
                reader.read_data(data).with_context(|| invalid(self.diff))?;
                engine::write_at(self.target, record.offset, data)?;
            }
        }
        Ok(planned)
    }
}
