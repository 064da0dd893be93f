//! digest: open IMAGE and the diffs, refuse an OUTFILE (or standard output) that is one of
//! them, write the digest.

use std::path::{Path, PathBuf};
use std::time::Instant;

use diff_dd::cli::Printing;
use diff_dd::device::{self, OpenFile, Output};
use diff_dd::error::{Result, Role};
use diff_dd::ops::{self, DigestOptions};
use diff_dd::render::count;
use diff_dd::units::human_bytes;

use super::progress::Bars;

pub fn run(
    image: &Path,
    difffiles: &[PathBuf],
    outfile: &Path,
    options: &DigestOptions,
    printing: Printing,
) -> Result<()> {
    let started = Instant::now();
    let image = device::open_input(image, Role::Image)?;
    let diffs = difffiles
        .iter()
        .map(|path| device::open_input(path, Role::Diff))
        .collect::<Result<Vec<OpenFile>>>()?;
    let diffs: Vec<&OpenFile> = diffs.iter().collect();
    let inputs: Vec<&OpenFile> = [&image].into_iter().chain(diffs.iter().copied()).collect();
    let output = if super::is_dash(outfile) {
        Output::stdout(&inputs)?
    } else {
        let outfile = device::follow_links(outfile)?;
        device::refuse_alias(&outfile, Role::Outfile, &inputs)?;
        ops::digest::check_outfile(&outfile, options.force, Role::Outfile)?;
        Output::create(&outfile, options.force)?
    };
    let bars = Bars::new(!printing.quiet);
    let summary = ops::digest(&image, &diffs, output, options, &bars)?;
    drop(bars);
    if printing.verbose {
        super::summary(
            "digest",
            format_args!(
                "{} of {} of an image of {}{}, blake3 {}, {}",
                count(summary.block_count, "block"),
                human_bytes(summary.block_size),
                human_bytes(summary.image_size),
                match summary.diff_count {
                    0 => String::new(),
                    diffs => format!(" with {} laid over it", count(diffs, "diff")),
                },
                summary.image_hash,
                super::throughput(summary.image_size, started.elapsed()),
            ),
        );
    }
    Ok(())
}
