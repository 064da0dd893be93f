//! verify: open the diff and the target, check them, print the report (also when a check
//! failed, so that a script reading JSON always gets a document).

use std::io::Write;
use std::path::Path;

use diff_dd::cli::Printing;
use diff_dd::device;
use diff_dd::error::{Result, Role};
use diff_dd::ops::{self, VerifyOptions};
use diff_dd::render;

use super::progress::Bars;

pub fn run(
    difffile: &Path,
    target: Option<&Path>,
    options: &VerifyOptions,
    printing: Printing,
) -> Result<()> {
    let diff = device::open_input(difffile, Role::Diff)?;
    let target = match target {
        Some(path) => Some(device::open_input(path, Role::Target)?),
        None => None,
    };
    let bars = Bars::new(!printing.quiet && !printing.json);
    let report = ops::verify(&diff, target.as_ref(), options, &bars);
    drop(bars);
    let mut out = std::io::stdout().lock();
    if printing.json {
        render::write_verify_json(&report, &mut out)?;
    } else if !printing.quiet {
        render::write_verify_text(&report, &mut out)?;
    }
    out.flush().map_err(super::output_failed("the report"))?;
    match report.failure {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}
