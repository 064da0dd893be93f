//! verify: open the diff and the target, check them, print the report (also when a check
//! failed, and with --json also when a file could not be opened, so that a script reading
//! JSON always gets a document).

use std::io::Write;
use std::path::Path;

use diff_dd::cli::Printing;
use diff_dd::device;
use diff_dd::error::{Result, Role};
use diff_dd::ops::{self, VerifyOptions, VerifyReport};
use diff_dd::render;

use super::progress::Bars;

pub fn run(
    difffile: &Path,
    target: Option<&Path>,
    spool: &Path,
    options: &VerifyOptions,
    printing: Printing,
) -> Result<()> {
    let opened = super::open_diff(difffile, spool).and_then(|diff| {
        let target = target
            .map(|path| device::open_input(path, Role::Target))
            .transpose()?;
        Ok((diff, target))
    });
    let report = match opened {
        Ok((diff, target)) => {
            let bars = Bars::new(!printing.quiet && !printing.json);
            ops::verify(&diff, target.as_ref(), options, &bars)
        }
        Err(error) if printing.json => VerifyReport::unopened(difffile, options.expect, error),
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
