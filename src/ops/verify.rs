//! verify: check a diff (or a chain of diffs), and a target before or after a restore, by
//! reading each twice.
//!
//! Like b3sum's check, this is a safety tool: better to fail a check that should pass than to
//! pass one that should fail. What it checks, and what it cannot know, is written down in
//! README.md ("What verify checks").
//!
//! 1. The diff is read twice in full. Each read checks its structure, every record hash and the
//!    whole-diff hash; both reads must give the same BLAKE3 of the whole file.
//! 2. The target, if given, is read twice in full, each time after dropping its cached pages
//!    so the bytes come from the device; both hashes must agree, and equal the diff's base
//!    hash (state `base`) or image hash (state `restored`). The first read also hashes the
//!    target with the diff's records laid over it (the image restore would leave), as the
//!    restore of a chain does.
//! 3. Between the two, restore's own decisions are made at every extent ([`Review`]): what
//!    the target holds there (base data, new data or neither), and whether restore would take
//!    it. The target is `partly_restored`, and verify advises running restore again, exactly
//!    when restore would take it and the diff laid over it hashes to the image hash: then
//!    the rerun finishes it, and gives the image. Anything else is `neither`, with the reason.
//!
//! A chain (`verify DIFF... TARGET`) is checked as its restore in place checks it
//! ([`super::restore_chain`]): every diff read twice as above, the links by hashes
//! ([`Chain::of_checked`]), and the target by one hash: the first diff's base hash (`base`),
//! the last one's image hash (`restored`), or, with the chain laid over it, the last one's
//! image hash (`partly_restored`, which a rerun of that restore finishes).

use std::path::PathBuf;

use serde::Serialize;

use crate::chain::{self, Chain, Link};
use crate::device::OpenFile;
use crate::engine::{self, Progress, Stage};
use crate::error::{Error, Result};
use crate::format::{self, ReadOptions, Scan};
use crate::units;

use super::restore::{Found, Review};

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The sector size of a v1 diff, which does not record it.
    pub v1_sector_size: u64,
    /// How much of the target is read at once.
    pub buffer_size: u64,
    /// Fail unless the target is in this state (`Base` or `Restored`).
    pub expect: Option<State>,
    /// Which diff (counting from 0) came from a stream, which cannot be read a second time:
    /// it is read once.
    pub stream_diff: Option<usize>,
}

/// The states a target can be found in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// It holds the image the diff was made against: ready for restore.
    Base,
    /// It holds the image the diff was made from.
    Restored,
    /// What an interrupted restore leaves, which running restore again finishes: restore
    /// would take it, and the diff laid over it gives the image it was made from.
    PartlyRestored,
    /// It holds neither.
    Neither,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Base => "base",
            State::Restored => "restored",
            State::PartlyRestored => "partly restored",
            State::Neither => "neither",
        }
    }

    /// The state in words, of a target checked against one diff, or against a `chain`.
    pub fn describe(self, chain: bool) -> &'static str {
        match (self, chain) {
            (State::Base, false) => {
                "base: it holds the image the diff was made against, ready for restore"
            }
            (State::Base, true) => {
                "base: it holds the image the first diff was made against, ready for restore"
            }
            (State::Restored, false) => "restored: it holds the image the diff was made from",
            (State::Restored, true) => "restored: it holds the image the last diff was made from",
            (State::PartlyRestored, _) => "partly restored: an interrupted restore left it",
            (State::Neither, false) => {
                "neither: it holds neither the base image nor the restored image"
            }
            (State::Neither, true) => {
                "neither: it holds neither the image the chain starts from nor the one it ends with"
            }
        }
    }
}

/// Everything verify found, as far as it got; `failure` says why it stopped or failed.
#[derive(Debug)]
pub struct VerifyReport {
    /// One per diff given, in order: a chain when more than one.
    pub diffs: Vec<DiffFindings>,
    /// For a chain, once its diffs were found to link.
    pub chain: Option<ChainFindings>,
    pub target: Option<TargetFindings>,
    pub expect: Option<State>,
    /// None when the diff is intact and the target (if any) in a known or the expected state.
    pub failure: Option<Error>,
}

/// What verify found of the diff. Fields are None when verify did not get that far.
#[derive(Debug, Default, Serialize)]
pub struct DiffFindings {
    pub path: String,
    pub format: Option<&'static str>,
    pub intact: bool,
    /// False for the original tool's formats: only structure and bounds could be checked.
    pub holds_hashes: Option<bool>,
    pub reads_agree: Option<bool>,
    /// BLAKE3 of the whole diff file.
    pub blake3: Option<String>,
    pub sector_size: Option<u64>,
    pub image_size: Option<u64>,
    pub extent_count: Option<u64>,
    pub changed_bytes: Option<u64>,
    pub base_blake3: Option<String>,
    pub image_blake3: Option<String>,
}

/// What verify found of a chain: its diffs link, each made against the image the one before
/// gives.
#[derive(Debug, Serialize)]
pub struct ChainFindings {
    pub image_size: u64,
    /// The image the chain starts from: the first diff's base hash.
    pub base_blake3: String,
    /// The image the chain ends with: the last diff's image hash.
    pub image_blake3: String,
}

/// What verify found of the target.
#[derive(Debug, Serialize)]
pub struct TargetFindings {
    pub path: String,
    pub size: u64,
    /// None for a diff without hashes: the contents cannot be told.
    pub state: Option<State>,
    pub blake3: Option<String>,
    /// BLAKE3 of the target with the diff's (or the chain's) records laid over it: what
    /// restoring onto it would give, if restore took it.
    pub laid_over_blake3: Option<String>,
    pub reads_agree: Option<bool>,
    pub extents: Option<ExtentCounts>,
    /// For `partly_restored`, how far the restore got and what to do; for `neither`, why.
    #[serde(skip)]
    pub detail: Option<String>,
}

/// How many extents of the target hold the base data, the new data, or neither.
#[derive(Debug, Default, Serialize)]
pub struct ExtentCounts {
    pub base: u64,
    pub restored: u64,
    pub neither: u64,
}

impl ExtentCounts {
    fn add(&mut self, found: Found) {
        match found {
            Found::Base => self.base += 1,
            Found::New => self.restored += 1,
            Found::Neither => self.neither += 1,
        }
    }

    /// `18 of 30 extents hold new data, 12 base data; run restore again to finish`: said only
    /// of a target restore would take, where the one extent in neither state is torn.
    pub fn how_far(&self) -> String {
        let total = self.base + self.restored + self.neither;
        let torn = if self.neither > 0 {
            format!(", {} torn mid-write", self.neither)
        } else {
            String::new()
        };
        format!(
            "{} of {total} extents hold new data, {} base data{torn}; run restore again to finish",
            self.restored, self.base
        )
    }
}

fn hex(hash: blake3::Hash) -> String {
    hash.to_hex().to_string()
}

impl VerifyReport {
    /// The report before anything was checked: the paths of the diffs.
    fn new(diff_paths: &[&std::path::Path], expect: Option<State>) -> VerifyReport {
        VerifyReport {
            diffs: diff_paths
                .iter()
                .map(|path| DiffFindings {
                    path: path.to_string_lossy().into_owned(),
                    ..DiffFindings::default()
                })
                .collect(),
            chain: None,
            target: None,
            expect,
            failure: None,
        }
    }

    /// The report when a diff or the target could not even be opened.
    pub fn unopened(
        diff_paths: &[&std::path::Path],
        expect: Option<State>,
        error: Error,
    ) -> VerifyReport {
        VerifyReport {
            failure: Some(error),
            ..VerifyReport::new(diff_paths, expect)
        }
    }

    /// True when a chain of diffs was given.
    pub fn is_chain(&self) -> bool {
        self.diffs.len() > 1
    }
}

/// Checks `diffs` (one diff, or a chain in order), and `target` against them when given.
/// Never fails outright: what went wrong is the report's `failure`, beside everything found
/// up to then.
pub fn verify(
    diffs: &[&OpenFile],
    target: Option<&OpenFile>,
    options: &VerifyOptions,
    progress: &dyn Progress,
) -> VerifyReport {
    let paths: Vec<&std::path::Path> = diffs.iter().map(|diff| diff.path.as_path()).collect();
    let mut report = VerifyReport::new(&paths, options.expect);
    let checked = check(diffs, target, options, progress, &mut report);
    report.failure = checked.and_then(|()| expectation(&report)).err();
    report
}

fn check(
    diffs: &[&OpenFile],
    target: Option<&OpenFile>,
    options: &VerifyOptions,
    progress: &dyn Progress,
    report: &mut VerifyReport,
) -> Result<()> {
    let read_options = ReadOptions {
        check_data: true,
        hash_file: true,
        v1_sector_size: options.v1_sector_size,
        // Legacy diffs have no image size; their records are bounded by the target's.
        target_size: target.map(|target| target.size),
    };
    let mut scans = Vec::with_capacity(diffs.len());
    for (index, (&diff, findings)) in diffs.iter().zip(&mut report.diffs).enumerate() {
        let read_once = options.stream_diff == Some(index);
        scans.push(check_diff_twice(
            diff,
            &read_options,
            read_once,
            progress,
            findings,
        )?);
    }
    if let [scan] = scans.as_slice() {
        if scan.totals.hashes.is_none() {
            // A legacy diff: its records were checked against the target's size, and there
            // are no hashes to tell the target's contents by.
            report.target = target.map(TargetFindings::unknown);
            return Ok(());
        }
    }
    let links = diffs
        .iter()
        .zip(scans)
        .map(|(&diff, scan)| Link::new(diff, scan))
        .collect::<Result<Vec<Link<'_>>>>()?;
    // A single diff is a chain of one: its overlay is the target with every extent replaced
    // by the diff's data.
    let chain = Chain::of_checked(links)?;
    if report.is_chain() {
        report.chain = Some(ChainFindings {
            image_size: chain.image_size(),
            base_blake3: hex(chain.base_hash()),
            image_blake3: hex(chain.image_hash()),
        });
    }
    if let Some(target) = target {
        report.target = Some(check_target(target, &chain, options, progress)?);
    }
    Ok(())
}

fn check_diff_twice(
    diff: &OpenFile,
    read_options: &ReadOptions,
    read_once: bool,
    progress: &dyn Progress,
    findings: &mut DiffFindings,
) -> Result<Scan> {
    let scan = |stage| super::scan_diff(diff, read_options, stage, progress);
    let first = scan(Stage::CheckingDiff)?;
    findings.format = Some(first.info.format.name());
    findings.holds_hashes = Some(first.totals.hashes.is_some());
    findings.blake3 = first.file_hash.map(hex);
    findings.sector_size = first.info.sector_size;
    findings.image_size = first.info.image_size;
    findings.extent_count = Some(first.totals.extent_count);
    findings.changed_bytes = Some(first.totals.changed_bytes);
    findings.base_blake3 = first.totals.hashes.map(|hashes| hex(hashes.base));
    findings.image_blake3 = first.totals.hashes.map(|hashes| hex(hashes.image));

    if read_once {
        // From a stream: `reads_agree` stays unknown, and the report says why.
        findings.intact = true;
        return Ok(first);
    }
    let second = scan(Stage::RereadingDiff);
    let reads_agree = matches!(&second, Ok(again) if again.file_hash == first.file_hash);
    findings.reads_agree = Some(reads_agree);
    if !reads_agree {
        let detail = match second {
            Err(error) => format!(": the second read failed: {}", error.reason()),
            Ok(_) => String::new(),
        };
        return Err(Error::UnstableRead {
            path: diff.path.clone(),
            reason: format!("two reads of the diff gave different bytes{detail}"),
        });
    }
    findings.intact = true;
    Ok(first)
}

impl TargetFindings {
    /// The target found, nothing known yet of what it holds.
    fn unknown(target: &OpenFile) -> TargetFindings {
        TargetFindings {
            path: target.path.to_string_lossy().into_owned(),
            size: target.size,
            state: None,
            blake3: None,
            laid_over_blake3: None,
            reads_agree: None,
            extents: None,
            detail: None,
        }
    }
}

fn check_target(
    target: &OpenFile,
    chain: &Chain<'_>,
    options: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<TargetFindings> {
    let mut findings = TargetFindings::unknown(target);
    let image_size = chain.image_size();
    if target.size != image_size {
        // It can hash to neither image, and extents past its end cannot be read.
        findings.state = Some(State::Neither);
        findings.detail = Some(format!(
            "it has {} but the image has {}: it is neither the base nor the restored image",
            units::size(target.size),
            units::size(image_size)
        ));
        return Ok(findings);
    }
    // The first read hashes the target and, in the same pass, the target seen through the
    // diffs: the image restore would leave.
    target.drop_cached_pages()?;
    progress.start(Stage::ReadingTarget, target.size);
    let overlay = chain.overlay();
    let first = engine::copy_image(
        target,
        &overlay,
        options.buffer_size,
        false,
        progress,
        &|_, _| Ok(()),
    )?;
    overlay.forget_cursors();
    // A single diff is restored extent by extent, each checked: so is it reviewed. A chain is
    // restored by the one hash above.
    let reviewed = match chain.links.as_slice() {
        [link] => Some(review_extents(target, link.diff, options)?),
        _ => None,
    };
    progress.start(Stage::RereadingTarget, target.size);
    let second = engine::hash_image(target, options.buffer_size, true, progress)?;
    findings.reads_agree = Some(first.image_hash == second);
    findings.blake3 = Some(hex(first.image_hash));
    findings.laid_over_blake3 = Some(hex(first.copied_hash));
    if first.image_hash != second {
        return Err(Error::UnstableRead {
            path: target.path.clone(),
            reason: "two reads of the target from the device gave different bytes".into(),
        });
    }
    let (extents, refused) = match reviewed {
        Some((extents, refused)) => (Some(extents), refused),
        None => (None, None),
    };
    let neither = match &extents {
        Some(_) => "it holds neither the base image nor the restored image",
        None => "it holds neither the image the chain starts from nor the one it ends with",
    };
    let (state, detail) = if first.image_hash == chain.base_hash() {
        (State::Base, None)
    } else if first.image_hash == chain.image_hash() {
        (State::Restored, None)
    } else if let Some((_, why)) = refused {
        let why = format!("{neither}, and restore would refuse it: {why}");
        (State::Neither, Some(why))
    } else if first.copied_hash != chain.image_hash() && extents.is_some() {
        let why = format!(
            "{neither}, and restore would take it but not give the restored image: outside the diff's extents it differs from the image the diff was made against (laid over it, the diff gives an image with BLAKE3 {}..., not {}...)",
            chain::short(first.copied_hash),
            chain::short(chain.image_hash())
        );
        (State::Neither, Some(why))
    } else if first.copied_hash != chain.image_hash() {
        let why = format!(
            "{neither}, and restore would refuse it: where the chain leaves it as it is, it does not hold the image {} was made against (laid over it, the chain gives an image with BLAKE3 {}..., not {}..., the image hash of {})",
            chain.first().diff.path.display(),
            chain::short(first.copied_hash),
            chain::short(chain.image_hash()),
            chain.last().diff.path.display()
        );
        (State::Neither, Some(why))
    } else {
        let how_far = match &extents {
            Some(extents) => extents.how_far(),
            None => "laid over it, the chain gives the image the last diff was made from; run restore again with the same diffs to finish".to_string(),
        };
        (State::PartlyRestored, Some(how_far))
    };
    findings.state = Some(state);
    findings.detail = detail;
    findings.extents = extents;
    Ok(findings)
}

/// What the target holds at each extent, and where restore would refuse it, if anywhere: by
/// restore's own decisions ([`Review`]).
fn review_extents(
    target: &OpenFile,
    diff: &OpenFile,
    options: &VerifyOptions,
) -> Result<(ExtentCounts, Option<(u64, String)>)> {
    let mut counts = ExtentCounts::default();
    let mut review = Review::new(diff, target, options.buffer_size);
    let headers = ReadOptions::headers(options.v1_sector_size, Some(target.size));
    let mut reader = format::open_reader(diff, &headers)?;
    while let Some(record) = reader.next_record()? {
        counts.add(review.look(&record)?);
    }
    Ok((counts, review.refused().cloned()))
}

/// The failure when the target is in no known state, or not in the expected one.
fn expectation(report: &VerifyReport) -> Result<()> {
    let Some(target) = &report.target else {
        return Ok(());
    };
    let detail = || target.detail.clone().unwrap_or_default();
    let problem = match (target.state, report.expect) {
        (Some(State::PartlyRestored), Some(expected)) => {
            format!(
                "it is partly restored, not {}: {}",
                expected.name(),
                detail()
            )
        }
        (Some(State::PartlyRestored), None) => format!("partly restored: {}", detail()),
        // Only a legacy diff leaves the state unknown; no expectation can be met then.
        (None, Some(expected)) => format!(
            "the diff holds no hashes, so it cannot be known to be {}",
            expected.name()
        ),
        (Some(state), Some(expected)) if state != expected => {
            let why = match &target.detail {
                Some(detail) => format!(": {detail}"),
                None => String::new(),
            };
            format!(
                "it is {}, not {} as expected{why}",
                state.name(),
                expected.name()
            )
        }
        (Some(State::Neither), None) => detail(),
        _ => return Ok(()),
    };
    Err(Error::UnexpectedTarget {
        path: PathBuf::from(&target.path),
        reason: problem,
    })
}
