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

/// verify --digest DIGEST TARGET: prints what was found (also, with --json, when a file could
/// not be opened or the digest is damaged, so that a script always gets a document).
pub fn run_digest(
    digest: &Path,
    target: &Path,
    spool: &Path,
    buffer_size: u64,
    printing: Printing,
) -> Result<()> {
    let checked = super::open_digest(digest, spool).and_then(|digest_file| {
        let target = device::open_input(target, Role::Target)?;
        let bars = Bars::new(!printing.quiet && !printing.json);
        ops::verify_digest(&digest_file, &target, buffer_size, &bars)
    });
    let failure = match &checked {
        Ok(check) if check.holds_image() => None,
        Ok(check) => Some(Error::UnexpectedTarget {
            path: target.to_path_buf(),
            reason: differences(check),
        }),
        Err(_) => None,
    };
    let check = match checked {
        Ok(check) => check,
        Err(error) if printing.json => {
            let document = serde_json::json!({
                "digest": { "path": render::printable(&digest.to_string_lossy()) },
                "target": { "path": render::printable(&target.to_string_lossy()) },
                "ok": false,
                "exit_code": error.exit_code(diff_dd::error::Reporting::Check),
                "error": error.to_string(),
            });
            write_document(&document)?;
            return Err(error);
        }
        Err(error) => return Err(error),
    };
    let state = match check.holds_image() {
        true => "holds_image",
        false => "differs",
    };
    if printing.json {
        let document = serde_json::json!({
            "digest": {
                "path": render::printable(&digest.to_string_lossy()),
                "image_size": check.image_size,
                "block_size": check.block_size,
                "block_count": check.block_count,
                "image_blake3": check.image_hash.to_hex().as_str(),
            },
            "target": {
                "path": render::printable(&target.to_string_lossy()),
                "size": check.target_size,
                "state": state,
                "differing_blocks": check.differing_blocks,
                "first_differing_offsets": check.first_differing,
            },
            "ok": failure.is_none(),
            "exit_code": failure.as_ref().map_or(diff_dd::error::SUCCESS, |error| {
                error.exit_code(diff_dd::error::Reporting::Check)
            }),
            "error": failure.as_ref().map(ToString::to_string),
        });
        write_document(&document)?;
    } else if !printing.quiet {
        let mut out = std::io::stdout().lock();
        let mut text = format!(
            "digest: {}: an image of {} in {} of {}\n",
            render::printable(&digest.to_string_lossy()),
            diff_dd::units::human_bytes(check.image_size),
            render::count(check.block_count, "block"),
            diff_dd::units::human_bytes(check.block_size),
        );
        if printing.verbose {
            text.push_str(&format!("digest: image blake3 {}\n", check.image_hash));
        }
        text.push_str(&format!(
            "target: {}: {}\n",
            render::printable(&target.to_string_lossy()),
            match check.holds_image() {
                true => "holds_image: it holds the image the digest describes".to_string(),
                false => format!("differs: {}", differences(&check)),
            }
        ));
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(super::output_failed("the report"))?;
    }
    match failure {
        Some(failure) => Err(failure),
        None => Ok(()),
    }
}

/// How a target differs from the image a digest describes, in words.
fn differences(check: &ops::DigestCheck) -> String {
    if check.target_size != check.image_size {
        return format!(
            "it has {} bytes, but the digest describes an image of {} bytes",
            check.target_size, check.image_size
        );
    }
    let offsets: Vec<String> = check
        .first_differing
        .iter()
        .map(ToString::to_string)
        .collect();
    let more = match check.differing_blocks > offsets.len() as u64 {
        true => ", ...",
        false => "",
    };
    format!(
        "{} of {} blocks of {} bytes differ from the digest's, at bytes {}{more}",
        check.differing_blocks,
        check.block_count,
        check.block_size,
        offsets.join(", ")
    )
}

fn write_document(document: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, document)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(out))
        .and_then(|()| out.flush())
        .map_err(super::output_failed("the report"))
}
