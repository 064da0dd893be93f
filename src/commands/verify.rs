//! verify: open the diffs and the target, check them, print the report (also when a check
//! failed, and with --json also when a file could not be opened, so that a script reading
//! JSON always gets a document).

use std::io::Write;
use std::path::{Path, PathBuf};

use diff_dd::cli::Printing;
use diff_dd::device::{self, OpenFile};
use diff_dd::error::{Error, Result, Role};
use diff_dd::format::{self, Format};
use diff_dd::ops::{self, State, VerifyOptions, VerifyReport};
use diff_dd::render;

use super::progress::Bars;

pub fn run(
    difffiles: &[PathBuf],
    target: Option<&Path>,
    spool: &Path,
    options: &VerifyOptions,
    printing: Printing,
) -> Result<()> {
    let opened = difffiles
        .iter()
        .map(|path| super::open_diff(path, spool))
        .collect::<Result<Vec<OpenFile>>>()
        .and_then(|diffs| {
            let target = target
                .map(|path| device::open_input(path, Role::Target))
                .transpose()?;
            Ok((diffs, target))
        });
    let report = match opened {
        Ok((diffs, target)) => {
            let bars = Bars::new(!printing.quiet && !printing.json);
            let diffs: Vec<&OpenFile> = diffs.iter().collect();
            let mut report = ops::verify(&diffs, target.as_ref(), options, &bars);
            if let Some(target) = &target {
                point_out_a_diff_as_target(&mut report, target);
            }
            report
        }
        Err(error) if printing.json => {
            let paths: Vec<&Path> = difffiles.iter().map(PathBuf::as_path).collect();
            VerifyReport::unopened(&paths, options.expect, error)
        }
        Err(error) => return Err(error),
    };
    if printing.json || !printing.quiet {
        let mut out = std::io::stdout().lock();
        render::write_verify_report(&report, printing.style(), &mut out)?;
        out.flush().map_err(super::output_failed("the report"))?;
    }
    match report.failure {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

/// Of two paths the second is TARGET, so `verify a.diff b.diff` checks b.diff as an image. A
/// TARGET in neither state that is itself a diff says how to check the chain instead.
fn point_out_a_diff_as_target(report: &mut VerifyReport, target: &OpenFile) {
    let neither = report
        .target
        .as_ref()
        .is_some_and(|found| found.state == Some(State::Neither));
    if !neither || !matches!(format::detect(target), Ok(Format::V3 | Format::V2)) {
        return;
    }
    if let Some(Error::UnexpectedTarget { reason, .. }) = &mut report.failure {
        reason.push_str(
            "; TARGET is itself a diff: to check the diffs as a chain without a target, give --no-target",
        );
    }
}
