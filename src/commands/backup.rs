//! backup: open INFILE and REFFILE, refuse an OUTFILE (or standard output) that is one of them
//! or of the --on diffs, write the diff.

use std::path::{Path, PathBuf};
use std::time::Instant;

use diff_dd::cli::Printing;
use diff_dd::device::{self, OpenFile, Output};
use diff_dd::error::{Result, Role};
use diff_dd::ops::{self, BackupOptions};
use diff_dd::render::{self, count};
use diff_dd::units::human_bytes;

use super::progress::Bars;

pub fn run(
    infile: &Path,
    reffile: &Path,
    outfile: &Path,
    on: &[PathBuf],
    options: &BackupOptions,
    printing: Printing,
) -> Result<()> {
    let started = Instant::now();
    let open = |path: &Path, role| match super::is_dash(path) {
        true => OpenFile::stdin(role),
        false => device::open_input(path, role),
    };
    let mut new = open(infile, Role::Infile)?;
    let mut base = open(reffile, Role::Reffile)?;
    // Standard input must turn out to be as long as the other image.
    const OTHER: &str = "the size of the other image: the images must be the same size";
    new.expect_stream_size(base.size, OTHER);
    base.expect_stream_size(new.size, OTHER);
    ops::backup::check_inputs(&new, &base, options)?;
    let chain = on
        .iter()
        .map(|path| device::open_input(path, Role::Diff))
        .collect::<Result<Vec<OpenFile>>>()?;
    let chain: Vec<&OpenFile> = chain.iter().collect();
    let inputs: Vec<&OpenFile> = [&new, &base]
        .into_iter()
        .chain(chain.iter().copied())
        .collect();
    let output = if super::is_dash(outfile) {
        Output::stdout(&inputs)?
    } else {
        let outfile = device::follow_links(outfile)?;
        device::refuse_alias(&outfile, Role::Outfile, &inputs)?;
        ops::backup::check_outfile(&outfile, options.force, options.sector_size)?;
        Output::create(&outfile, options.force)?
    };
    let bars = Bars::new(!printing.quiet);
    let summary = ops::backup(&new, &base, &chain, output, options, &bars)?;
    drop(bars);
    if printing.verbose {
        super::summary(
            "backup",
            format_args!(
                "{}, {} changed ({} of {} image), stored in {} ({}), {}",
                count(summary.extent_count, "extent"),
                human_bytes(summary.changed_bytes),
                super::share(summary.changed_bytes, summary.image_size),
                human_bytes(summary.image_size),
                human_bytes(summary.stored_bytes),
                render::percent(summary.stored_bytes, summary.changed_bytes),
                super::throughput(summary.image_size, started.elapsed()),
            ),
        );
    }
    Ok(())
}
