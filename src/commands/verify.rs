//! verify: check a diff, and a target before or after a restore, by reading each twice.
//!
//! Like b3sum's check, this is a safety tool: better to fail a check that should pass than to
//! pass one that should fail. What it checks, and what it cannot know, is written down in
//! README.md ("What verify checks").
//!
//! 1. The diff is read twice in full. Each read checks its structure, every record hash and the
//!    whole-diff hash; both reads must give the same BLAKE3 of the whole file.
//! 2. The target, if given, is hashed twice in full, each time after dropping its cached pages
//!    so the bytes come from the device; both hashes must agree, and equal the diff's base
//!    hash (state `base`) or image hash (state `restored`).
//! 3. Between the two, each extent of the target is classed as base data, new data or neither,
//!    which shows how far an interrupted restore got.

use std::io::Write;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use crate::cli::{TargetState, VerifyArgs};
use crate::device::{self, Image};
use crate::engine::{self, Progress};
use crate::exit::{self, with_code};
use crate::format::{self, DataMode, ReadOptions, Scan};
use crate::units::human_bytes;

pub fn run(args: &VerifyArgs) -> Result<()> {
    let options = &args.options;
    let show_progress = !options.quiet && !args.json;
    let diff = device::open_input(&args.difffile, "diff")?;
    let target = match &args.target {
        Some(path) => Some(device::open_input(path, "target")?),
        None => None,
    };
    let read_options = |mode| ReadOptions {
        mode,
        v1_sector_size: options.sector_size(),
        // Legacy diffs have no image size; their records are bounded by the target's.
        target_size: target.as_ref().map(|target| target.size),
    };
    let mut report = Report::new(&diff.path, args.expect);

    let scan = match check_diff_twice(
        &diff,
        &read_options(DataMode::Check),
        show_progress,
        &mut report.diff,
    ) {
        Ok(scan) => scan,
        Err(failure) => return report.fail(failure, args),
    };
    if let Some(target) = &target {
        let checked = check_target(
            target,
            &diff,
            &scan,
            &read_options(DataMode::SkipData),
            options.buffer_size,
            show_progress,
        );
        match checked {
            Ok(target_report) => report.target = Some(target_report),
            Err(failure) => return report.fail(failure, args),
        }
    }
    if let Some(failure) = report.expectation_failure() {
        return report.fail(failure, args);
    }
    report.print(args)
}

/// A reason to fail, with its exit code, found while checking.
struct Failure {
    code: u8,
    error: anyhow::Error,
}

fn failure(code: u8, error: anyhow::Error) -> Failure {
    Failure { code, error }
}

fn check_diff_twice(
    diff: &Image,
    read_options: &ReadOptions,
    show_progress: bool,
    report: &mut DiffReport,
) -> Result<Scan, Failure> {
    let invalid = || format!("invalid diff: {}", diff.path.display());
    let first = scan_with_progress(diff, read_options, show_progress, "checking diff")
        .with_context(invalid)
        .map_err(|error| failure(exit::DIFF_INVALID, error))?;
    report.fill(&first);
    let second = scan_with_progress(diff, read_options, show_progress, "re-reading diff");
    let reads_agree = matches!(&second, Ok(again) if again.file_hash == first.file_hash);
    report.reads_agree = Some(reads_agree);
    if !reads_agree {
        let detail = match second {
            Err(error) => format!(": the second read failed: {error:#}"),
            Ok(_) => String::new(),
        };
        return Err(failure(
            exit::UNSTABLE,
            anyhow!(
                "unstable read: {}: two reads of the diff gave different bytes{detail}",
                diff.path.display()
            ),
        ));
    }
    report.intact = true;
    Ok(first)
}

fn scan_with_progress(
    diff: &Image,
    read_options: &ReadOptions,
    show_progress: bool,
    label: &str,
) -> Result<Scan> {
    let progress = Progress::new(show_progress, diff.size, label);
    format::scan(diff, read_options, |record| progress.advance(record.length))
}

fn check_target(
    target: &Image,
    diff: &Image,
    scan: &Scan,
    read_options: &ReadOptions,
    buffer_size: u64,
    show_progress: bool,
) -> Result<TargetReport, Failure> {
    let mut report = TargetReport {
        path: target.path.to_string_lossy().into_owned(),
        size: target.size,
        state: None,
        blake3: None,
        reads_agree: None,
        extents: None,
    };
    let (Some(image_size), Some(base_hash), Some(image_hash)) = (
        scan.info.image_size,
        scan.totals.base_hash,
        scan.totals.image_hash,
    ) else {
        // A legacy diff: its records were checked against the target's size, and there are
        // no hashes to tell its contents by.
        return Ok(report);
    };
    if target.size != image_size {
        // It can hash to neither image, and extents past its end cannot be read.
        report.state = Some(State::Neither);
        return Ok(report);
    }
    let io_failure = |error| failure(exit::FAILURE, error);
    let hash_pass = |label| {
        let progress = Progress::new(show_progress, target.size, label);
        engine::hash_image(target, buffer_size, true, &progress)
    };
    let first = hash_pass("reading target").map_err(io_failure)?;
    report.extents =
        Some(classify_extents(target, diff, read_options, buffer_size, scan).map_err(io_failure)?);
    let second = hash_pass("re-reading target").map_err(io_failure)?;
    report.reads_agree = Some(first == second);
    report.blake3 = Some(first.to_hex().to_string());
    if first != second {
        return Err(failure(
            exit::UNSTABLE,
            anyhow!(
                "unstable read: {}: two reads of the target from the device gave different bytes",
                target.path.display()
            ),
        ));
    }
    report.state = Some(if first == base_hash {
        State::Base
    } else if first == image_hash {
        State::Restored
    } else {
        State::Neither
    });
    Ok(report)
}

/// Counts the extents whose target bytes are the base data, the new data, or neither.
fn classify_extents(
    target: &Image,
    diff: &Image,
    read_options: &ReadOptions,
    buffer_size: u64,
    scan: &Scan,
) -> Result<ExtentCounts> {
    let mut counts = ExtentCounts::default();
    let mut scratch = vec![0u8; buffer_size.min(scan.longest_record) as usize];
    let mut reader = format::open_reader(diff, read_options)?;
    while let Some(record) = reader.next_record()? {
        let hash = Some(engine::hash_range(
            target,
            record.offset,
            record.length,
            &mut scratch,
        )?);
        if hash == record.base_hash {
            counts.base += 1;
        } else if hash == record.new_hash {
            counts.restored += 1;
        } else {
            counts.neither += 1;
        }
    }
    Ok(counts)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Base,
    Restored,
    Neither,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Base => "base",
            State::Restored => "restored",
            State::Neither => "neither",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            State::Base => "base: it holds the image the diff was made against, ready for restore",
            State::Restored => "restored: it holds the image the diff was made from",
            State::Neither => "neither: it holds neither the base image nor the restored image",
        }
    }
}

/// Everything verify found: printed as text or as one JSON document.
#[derive(Debug, Serialize)]
struct Report {
    diff: DiffReport,
    target: Option<TargetReport>,
    expect: Option<State>,
    ok: bool,
    exit_code: u8,
    error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct DiffReport {
    path: String,
    format: Option<&'static str>,
    intact: bool,
    /// False for the original tool's formats: only structure and bounds could be checked.
    holds_hashes: Option<bool>,
    reads_agree: Option<bool>,
    blake3: Option<String>,
    sector_size: Option<u64>,
    image_size: Option<u64>,
    extent_count: Option<u64>,
    changed_bytes: Option<u64>,
    base_blake3: Option<String>,
    image_blake3: Option<String>,
}

#[derive(Debug, Serialize)]
struct TargetReport {
    path: String,
    size: u64,
    state: Option<State>,
    blake3: Option<String>,
    reads_agree: Option<bool>,
    extents: Option<ExtentCounts>,
}

#[derive(Debug, Default, Serialize)]
struct ExtentCounts {
    base: u64,
    restored: u64,
    neither: u64,
}

impl DiffReport {
    fn fill(&mut self, scan: &Scan) {
        self.format = Some(scan.info.format.name());
        self.holds_hashes = Some(scan.totals.image_hash.is_some());
        self.blake3 = scan.file_hash.map(|hash| hash.to_hex().to_string());
        self.sector_size = scan.info.sector_size;
        self.image_size = scan.info.image_size;
        self.extent_count = Some(scan.totals.extent_count);
        self.changed_bytes = Some(scan.totals.changed_bytes);
        self.base_blake3 = scan.totals.base_hash.map(|hash| hash.to_hex().to_string());
        self.image_blake3 = scan.totals.image_hash.map(|hash| hash.to_hex().to_string());
    }
}

impl Report {
    fn new(diff_path: &Path, expect: Option<TargetState>) -> Report {
        Report {
            diff: DiffReport {
                path: diff_path.to_string_lossy().into_owned(),
                ..DiffReport::default()
            },
            target: None,
            expect: expect.map(|state| match state {
                TargetState::Base => State::Base,
                TargetState::Restored => State::Restored,
            }),
            ok: true,
            exit_code: exit::SUCCESS,
            error: None,
        }
    }

    /// The failure when the target is in no known state, or not in the expected one.
    fn expectation_failure(&self) -> Option<Failure> {
        let target = self.target.as_ref()?;
        let size_differs = self.diff.image_size.is_some_and(|size| size != target.size);
        let problem = match (target.state, self.expect) {
            // Only a legacy diff leaves the state unknown; no expectation can be met then.
            (None, Some(expected)) => format!(
                "the diff holds no hashes, so it cannot be known to be {}",
                expected.name()
            ),
            (Some(state), Some(expected)) if state != expected => {
                format!("it is {}, not {} as expected", state.name(), expected.name())
            }
            (Some(State::Neither), None) if size_differs => format!(
                "it has {} bytes but the image has {}: it is neither the base nor the restored image",
                target.size,
                self.diff.image_size.unwrap_or(0)
            ),
            (Some(State::Neither), None) => {
                "it holds neither the base image nor the restored image".to_string()
            }
            _ => return None,
        };
        Some(failure(
            exit::TARGET_UNEXPECTED,
            anyhow!("unexpected target: {}: {problem}", target.path),
        ))
    }

    /// Prints what was found, then fails with the failure's code and one line on stderr.
    fn fail(mut self, failure: Failure, args: &VerifyArgs) -> Result<()> {
        self.ok = false;
        self.exit_code = failure.code;
        self.error = Some(format!("{:#}", failure.error));
        self.print(args)?;
        Err(with_code(failure.code, failure.error))
    }

    fn print(&self, args: &VerifyArgs) -> Result<()> {
        let mut out = std::io::stdout().lock();
        let written = if args.json {
            serde_json::to_writer_pretty(&mut out, self)
                .map_err(std::io::Error::from)
                .and_then(|()| writeln!(out))
        } else if args.options.quiet {
            Ok(())
        } else {
            self.print_text(&mut out)
        };
        written
            .and_then(|()| out.flush())
            .context("cannot write the report to stdout")
    }

    fn print_text(&self, out: &mut impl Write) -> std::io::Result<()> {
        let diff = &self.diff;
        if diff.intact && diff.holds_hashes == Some(false) {
            writeln!(
                out,
                "diff: {}: a {} diff of the original diff-dd, with {} records; it holds no hashes to check, but its structure{} sound; read twice, identical",
                diff.path,
                diff.format.unwrap_or("?"),
                diff.extent_count.unwrap_or(0),
                if self.target.is_some() { " and bounds are" } else { " is" },
            )?;
        } else if diff.intact {
            writeln!(
                out,
                "diff: {}: intact ({}, {}, {} changed); read twice, identical",
                diff.path,
                diff.format.unwrap_or("?"),
                super::count(diff.extent_count.unwrap_or(0), "extent"),
                human_bytes(diff.changed_bytes.unwrap_or(0)),
            )?;
        } else {
            writeln!(out, "diff: {}: NOT intact", diff.path)?;
        }
        if let Some(target) = &self.target {
            match target.state {
                Some(state) => writeln!(out, "target: {}: {}", target.path, state.describe())?,
                None => writeln!(
                    out,
                    "target: {}: fits every record; its contents cannot be checked without hashes",
                    target.path
                )?,
            }
            match target.reads_agree {
                Some(true) => writeln!(out, "target: read twice from the device, identical")?,
                Some(false) => writeln!(out, "target: two reads from the device DIFFER")?,
                None => {}
            }
            if let Some(extents) = &target.extents {
                writeln!(
                    out,
                    "extents: {} hold base data, {} new data, {} neither",
                    extents.base, extents.restored, extents.neither
                )?;
            }
        }
        Ok(())
    }
}
