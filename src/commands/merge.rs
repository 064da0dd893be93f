//! merge: open the chain (and FULL), refuse an OUTFILE that is one of them, write the merged
//! diff (which refuses an existing OUTFILE that is not its result, once it knows the chain).

use std::path::{Path, PathBuf};

use diff_dd::cli::Printing;
use diff_dd::device::{self, OpenFile, Output};
use diff_dd::error::{Result, Role};
use diff_dd::ops::{self, MergeOptions};
use diff_dd::render::{self, count};
use diff_dd::units::human_bytes;

use super::progress::Bars;

pub fn run(
    difffiles: &[PathBuf],
    full: Option<&Path>,
    outfile: &Path,
    options: &MergeOptions,
    printing: Printing,
) -> Result<()> {
    let diffs = difffiles
        .iter()
        .map(|path| device::open_input(path, Role::Diff))
        .collect::<Result<Vec<OpenFile>>>()?;
    let full = full
        .map(|path| device::open_input(path, Role::Full))
        .transpose()?;
    if let (Some(full), false) = (&full, options.force) {
        device::refuse_read_write_mount(full)?;
    }
    let mut inputs: Vec<&OpenFile> = diffs.iter().collect();
    let diffs = inputs.clone();
    inputs.extend(&full);
    let outfile = device::follow_links(outfile)?;
    device::refuse_alias(&outfile, Role::Outfile, &inputs)?;
    let output = Output::create(&outfile, options.force)?;
    let bars = Bars::new(!printing.quiet);
    let summary = ops::merge(&diffs, full.as_ref(), output, options, &bars)?;
    drop(bars);
    if printing.verbose {
        super::summary(
            "merge",
            format_args!(
                "{} merged: {}, {} changed, stored in {} ({}), {} of FULL read",
                count(summary.diff_count, "diff"),
                count(summary.extent_count, "extent"),
                human_bytes(summary.changed_bytes),
                human_bytes(summary.stored_bytes),
                render::percent(summary.stored_bytes, summary.changed_bytes),
                human_bytes(summary.base_bytes_read),
            ),
        );
    }
    Ok(())
}
