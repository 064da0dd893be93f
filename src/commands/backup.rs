//! backup: open INFILE and REFFILE (or DIGEST), refuse an OUTFILE (or standard output) or NEXT
//! that is one of them or of the --on diffs, write the diff.

use std::path::{Path, PathBuf};
use std::time::Instant;

use diff_dd::cli::Printing;
use diff_dd::device::{self, OpenFile, Output};
use diff_dd::error::{Result, Role};
use diff_dd::format::digest;
use diff_dd::ops::{self, BackupOptions, BackupSummary};
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
    let base = ops::backup::Base::Image {
        reffile: &base,
        on: &chain,
    };
    let summary = ops::backup(&new, base, output, options, &bars)?;
    drop(bars);
    print_summary(&summary, started, printing);
    Ok(())
}

/// backup --digest DIGEST [--digest-out NEXT] INFILE OUTFILE. DIGEST from standard input is
/// copied into $TMPDIR first, so that it is checked whole (its size, block size and footer)
/// before INFILE is read or OUTFILE created.
pub fn run_from_digest(
    infile: &Path,
    digest_path: &Path,
    next: Option<&Path>,
    outfile: &Path,
    options: &BackupOptions,
    printing: Printing,
) -> Result<()> {
    let started = Instant::now();
    let mut new = match super::is_dash(infile) {
        true => OpenFile::stdin(Role::Infile)?,
        false => device::open_input(infile, Role::Infile)?,
    };
    let digest_file = super::open_digest(digest_path, &std::env::temp_dir())?;
    // Opened once: its whole hash is checked here, and it is read again in step with INFILE.
    let digest = digest::Reader::open(&digest_file)?;
    new.expect_stream_size(
        digest.header().image_size,
        "the image size DIGEST describes: the images must be the same size",
    );
    ops::backup::check_digest(&new, &digest, options)?;
    if !options.force {
        device::refuse_read_write_mount(&new)?;
    }
    let inputs = [&new, &digest_file];
    let next = match next {
        Some(next) => {
            let next = device::follow_links(next)?;
            device::refuse_alias(&next, Role::Next, &inputs)?;
            ops::digest::check_outfile(&next, options.force, Role::Next)?;
            Some(next)
        }
        None => None,
    };
    let output = if super::is_dash(outfile) {
        Output::stdout(&inputs)?
    } else {
        let outfile = device::follow_links(outfile)?;
        device::refuse_alias(&outfile, Role::Outfile, &inputs)?;
        ops::backup::check_outfile(&outfile, options.force, options.sector_size)?;
        Output::create(&outfile, options.force)?
    };
    let next = match next {
        Some(next) => {
            let next = Output::create_as(&next, options.force, Role::Next)?;
            output.refuse_same_destination(&next)?;
            Some(next)
        }
        None => None,
    };
    let bars = Bars::new(!printing.quiet);
    let base = ops::backup::Base::Digest {
        digest: Box::new(digest),
        next,
    };
    let summary = ops::backup(&new, base, output, options, &bars)?;
    drop(bars);
    print_summary(&summary, started, printing);
    Ok(())
}

fn print_summary(summary: &BackupSummary, started: Instant, printing: Printing) {
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
}
