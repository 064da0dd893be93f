//! restore: open the diff, then the target exclusively, and apply one to the other.

use std::path::Path;
use std::time::Instant;

use diff_dd::cli::Printing;
use diff_dd::device;
use diff_dd::error::{Result, Role};
use diff_dd::ops::{self, RestoreOptions};
use diff_dd::render::count;
use diff_dd::units::human_bytes;

use super::progress::Bars;

pub fn run(
    difffile: &Path,
    target: &Path,
    spool: &Path,
    options: &RestoreOptions,
    printing: Printing,
) -> Result<()> {
    let started = Instant::now();
    let diff = super::open_diff(difffile, spool)?;
    device::refuse_alias(target, Role::Target, &[&diff])?;
    let target = device::open_target(target)?;
    let bars = Bars::new(!printing.quiet);
    let summary = ops::restore(&diff, &target, options, &bars)?;
    drop(bars);
    if printing.verbose {
        if !summary.holds_hashes {
            super::summary(
                "restore",
                format_args!(
                    "{} is a {} diff ({}): it holds no hashes, so only its structure and bounds were checked, not its data or the target's contents",
                    diff.path.display(),
                    summary.format.name(),
                    summary.format.origin()
                ),
            );
        }
        super::summary(
            "restore",
            format_args!(
                "{}, {} written, {} already restored; {} in {:.2}s",
                count(summary.extent_count, "extent"),
                summary.written,
                summary.already_restored,
                human_bytes(summary.bytes_written),
                started.elapsed().as_secs_f64(),
            ),
        );
    }
    Ok(())
}
