//! restore: open the diff, then the target exclusively, and apply one to the other; or, with
//! --base, open FULL and the chain, and write the image they give into a new or existing
//! target or standard output.

use std::path::{Path, PathBuf};
use std::time::Instant;

use diff_dd::cli::Printing;
use diff_dd::device::{self, OpenFile, Output};
use diff_dd::error::{Result, Role};
use diff_dd::ops::{self, OnePassOptions, OnePassTarget, RestoreOptions};
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
    let target = open_target_in_place(target, &[&diff])?;
    let diff = device::private_copy(diff, spool)?;
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

pub fn run_one_pass(
    full: &Path,
    difffiles: &[PathBuf],
    target: &Path,
    spool: &Path,
    options: &OnePassOptions,
    printing: Printing,
) -> Result<()> {
    let started = Instant::now();
    let mut full = match super::is_dash(full) {
        true => OpenFile::stdin(Role::Full)?,
        false => device::open_input(full, Role::Full)?,
    };
    if !options.force {
        device::refuse_read_write_mount(&full)?;
    }
    let diffs = difffiles
        .iter()
        .map(|path| super::open_diff(path, spool))
        .collect::<Result<Vec<OpenFile>>>()?;
    let inputs: Vec<&OpenFile> = diffs.iter().chain([&full]).collect();
    let in_place;
    let target = if super::is_dash(target) {
        OnePassTarget::Stream(Output::stdout(&inputs)?)
    } else {
        let target = device::follow_links(target)?;
        if target.exists() {
            in_place = open_target_in_place(&target, &inputs)?;
            OnePassTarget::InPlace(&in_place)
        } else {
            OnePassTarget::New(Output::create(&target, false)?)
        }
    };
    let diffs = super::private_copies(diffs, spool)?;
    let diffs: Vec<&OpenFile> = diffs.iter().collect();
    let bars = Bars::new(!printing.quiet);
    let summary = ops::restore_one_pass(&mut full, &diffs, target, options, &bars)?;
    drop(bars);
    if printing.verbose {
        super::summary(
            "restore",
            format_args!(
                "{} laid over {}: {} image, {} written, image BLAKE3 {}; {}",
                count(summary.diff_count, "diff"),
                full.path.display(),
                human_bytes(summary.image_size),
                human_bytes(summary.bytes_written),
                summary.image_hash.to_hex(),
                super::throughput(summary.image_size, started.elapsed()),
            ),
        );
    }
    Ok(())
}

pub fn run_chain(
    difffiles: &[PathBuf],
    target: &Path,
    spool: &Path,
    buffer_size: u64,
    printing: Printing,
) -> Result<()> {
    let started = Instant::now();
    let diffs = difffiles
        .iter()
        .map(|path| super::open_diff(path, spool))
        .collect::<Result<Vec<OpenFile>>>()?;
    let target = open_target_in_place(target, &diffs.iter().collect::<Vec<_>>())?;
    let diffs = super::private_copies(diffs, spool)?;
    let diffs: Vec<&OpenFile> = diffs.iter().collect();
    let bars = Bars::new(!printing.quiet);
    let summary = ops::restore_chain(&diffs, &target, buffer_size, &bars)?;
    drop(bars);
    if printing.verbose {
        super::summary(
            "restore",
            format_args!(
                "{}: {}, {} written, {} already restored; {} in {:.2}s",
                count(diffs.len() as u64, "diff"),
                count(summary.extent_count, "segment"),
                summary.written,
                summary.already_restored,
                human_bytes(summary.bytes_written),
                started.elapsed().as_secs_f64(),
            ),
        );
    }
    Ok(())
}

/// Opens a target that exists, to be written in place (every form of restore): refused when it
/// is one of `inputs` under any name, or a diff, before it is opened for writing.
fn open_target_in_place(target: &Path, inputs: &[&OpenFile]) -> Result<OpenFile> {
    device::refuse_alias(target, Role::Target, inputs)?;
    refuse_a_diff_as_target(target)?;
    device::open_target(target)
}

/// A diff as the target is the likeliest slip of all: the last of the diffs, with OUTFILE left
/// out. Written over, it would be lost, and so would every later diff of its chain; refused
/// whatever the form of restore (in place it would be refused later anyway, for its size, but
/// without naming the slip).
fn refuse_a_diff_as_target(target: &Path) -> Result<()> {
    let is_regular_file = std::fs::metadata(target).is_ok_and(|metadata| metadata.is_file());
    if !is_regular_file {
        return Ok(());
    }
    let existing = device::open_input(target, Role::Target)?;
    if matches!(
        diff_dd::format::detect(&existing),
        Ok(diff_dd::format::Format::V2 | diff_dd::format::Format::V3)
    ) {
        return Err(diff_dd::error::Error::unusable(
            "refusing to write target",
            target,
            "it is a diff, not an image to restore onto: was OUTFILE left out? nothing was written",
        ));
    }
    Ok(())
}
