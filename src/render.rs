//! Text and JSON for people and scripts: the listings and reports the commands print,
//! written to any `Write`, so that tests and fuzz targets check exactly what the binary prints.

use std::borrow::Cow;
use std::io::{self, Write};

use serde::Serialize;

use crate::error::{Error, Reporting, Result};
use crate::format::{DiffInfo, Format, Record, Stored, Totals};
use crate::ops::inspect::Listing;
use crate::ops::verify::{ChainFindings, DiffFindings, State, TargetFindings, VerifyReport};
use crate::units::{human_bytes, utc_timestamp};

pub mod files;
pub use files::{write_files, write_files_failure};

/// `text` as it may be shown on a terminal: every character that could end a line, move the
/// cursor, recolor or reorder what follows is written as its Rust escape (`\n`, `\r`, `\t`,
/// `\u{1b}`, `\u{202e}`). A diff is outside data: its tool version could otherwise print a
/// forged line (`image blake3: ...`) or take over the terminal with escape sequences; a path
/// or a mount point can hold the same characters. Everything else, backslashes included, is
/// left as it is, so that ordinary text reads unchanged. JSON output escapes by itself.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unprintable) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for character in text.chars() {
        if is_unprintable(character) {
            escaped.extend(character.escape_default());
        } else {
            escaped.push(character);
        }
    }
    Cow::Owned(escaped)
}

/// Control characters (C0 with tab and newline, DEL, C1), the Unicode line and paragraph
/// separators, and the bidirectional marks, embeddings, overrides and isolates, which make a
/// terminal show text in another order than it is written (CVE-2021-42574).
fn is_unprintable(character: char) -> bool {
    character.is_control()
        || matches!(
            character,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// How a listing or report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// For people.
    Text,
    /// For people, with every hash.
    VerboseText,
    /// One JSON document on one line, with every field.
    Json,
}

/// Writes the listing of a diff to `out`, as far as the diff can be read: a fault in the diff
/// is returned after everything before it was written (and, in JSON, an `error` field that
/// keeps the document well-formed).
pub fn write_listing(listing: &mut Listing<'_>, style: Style, out: &mut dyn Write) -> Result<()> {
    write_listing_ending(listing, style, b"\n", out)
}

/// [`write_listing`], the JSON document ended with `end`: a line's end when it stands alone,
/// nothing when it is a value inside another document.
fn write_listing_ending(
    listing: &mut Listing<'_>,
    style: Style,
    end: &'static [u8],
    out: &mut dyn Write,
) -> Result<()> {
    let mut style: Box<dyn ListingStyle> = match style {
        Style::Json => Box::new(JsonListing {
            extents_listed: 0,
            end,
        }),
        Style::Text => Box::new(TableListing { hashes: false }),
        Style::VerboseText => Box::new(TableListing { hashes: true }),
    };
    let style = style.as_mut();
    let written = |result: io::Result<()>| {
        result.map_err(|source| Error::Output {
            what: "the listing",
            source,
        })
    };
    let info = listing.info().clone();
    let path = listing.diff().path.to_string_lossy().into_owned();
    written(style.header(out, &path, &info))?;
    let ended = loop {
        match listing.next_extent() {
            Ok(Some(extent)) => written(style.extent(out, &info, &extent))?,
            Ok(None) => break listing.totals(),
            Err(error) => break Err(error),
        }
    };
    match ended {
        Ok(totals) => written(style.summary(out, &info, &totals)),
        Err(error) => {
            // The listing names the diff already.
            written(style.failure(out, &error.reason()))?;
            Err(error)
        }
    }
}

/// One way of printing a listing; called in order: header, extents, then summary or failure.
trait ListingStyle {
    fn header(&mut self, out: &mut dyn Write, path: &str, info: &DiffInfo) -> io::Result<()>;
    fn extent(&mut self, out: &mut dyn Write, info: &DiffInfo, record: &Record) -> io::Result<()>;
    fn summary(&mut self, out: &mut dyn Write, info: &DiffInfo, totals: &Totals) -> io::Result<()>;
    fn failure(&mut self, out: &mut dyn Write, reason: &str) -> io::Result<()>;
}

/// A number's decimal digits, without allocating.
struct Decimal {
    digits: [u8; 20],
    start: usize,
}

impl Decimal {
    fn new(mut number: u64) -> Decimal {
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (number % 10) as u8;
            number /= 10;
            if number == 0 {
                return Decimal { digits, start };
            }
        }
    }
}

impl std::ops::Deref for Decimal {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.digits[self.start..]
    }
}

/// Writes `text` right-aligned in `width` columns.
fn write_column(out: &mut dyn Write, text: &[u8], width: usize) -> io::Result<()> {
    const SPACES: &[u8; 32] = &[b' '; 32];
    out.write_all(&SPACES[..width.saturating_sub(text.len()).min(SPACES.len())])?;
    out.write_all(text)
}

fn sectors(info: &DiffInfo, length: u64) -> Option<u64> {
    info.sector_size
        .map(|sector_size| length.div_ceil(sector_size))
}

fn share_of_image(info: &DiffInfo, changed_bytes: u64) -> Option<f64> {
    match info.image_size {
        Some(0) => Some(0.0),
        Some(image_size) => Some(changed_bytes as f64 * 100.0 / image_size as f64),
        None => None,
    }
}

fn hex(hash: Option<blake3::Hash>) -> Option<String> {
    hash.map(|hash| hash.to_hex().to_string())
}

/// What a legacy diff does not record, in the table.
const NOT_RECORDED: &str = "not recorded";

/// The human-readable listing: a few header lines, a table (with `hashes`, each extent's new
/// and base BLAKE3, abbreviated), a summary.
struct TableListing {
    hashes: bool,
}

/// The first 16 hex digits of a hash, enough to tell hashes apart in a table.
fn short_hex(hash: blake3::Hash) -> [u8; 16] {
    let mut short = [0u8; 16];
    short.copy_from_slice(&hash.to_hex().as_bytes()[..16]);
    short
}

impl ListingStyle for TableListing {
    fn header(&mut self, out: &mut dyn Write, path: &str, info: &DiffInfo) -> io::Result<()> {
        let or_not_recorded = |value: Option<String>| value.unwrap_or_else(|| NOT_RECORDED.into());
        writeln!(out, "diff:              {}", printable(path))?;
        writeln!(
            out,
            "format:            {} ({})",
            info.format.name(),
            info.format.origin()
        )?;
        let sector_size = match (info.format, info.sector_size) {
            (Format::V1, Some(size)) => format!("{size} bytes (from -s; v1 does not record it)"),
            (_, Some(size)) => format!("{size} bytes"),
            (_, None) => "none (byte-granular records)".to_string(),
        };
        writeln!(out, "sector size:       {sector_size}")?;
        let image_size = info
            .image_size
            .map(|size| format!("{size} bytes ({})", human_bytes(size)));
        writeln!(out, "image size:        {}", or_not_recorded(image_size))?;
        if info.format == Format::V3 {
            let limit = info.record_size_limit.map(|limit| format!("{limit} bytes"));
            writeln!(out, "record size limit: {}", or_not_recorded(limit))?;
            let encoding = info.data_encoding.map(|encoding| match encoding {
                "zstd" => "zstd (records compressed where it saves space; zeros stored as none)",
                _ => "raw (zeros stored as none)",
            });
            writeln!(
                out,
                "data encoding:     {}",
                encoding.unwrap_or(NOT_RECORDED)
            )?;
        }
        let created = info.created_unix_seconds.map(utc_timestamp);
        writeln!(out, "created:           {}", or_not_recorded(created))?;
        let tool = info
            .tool_version
            .as_ref()
            .map(|version| format!("diff-dd {}", printable(version)));
        writeln!(out, "tool version:      {}", or_not_recorded(tool))?;
        writeln!(out)?;
        writeln!(
            out,
            "{:>10} {:>20} {:>14} {:>12} {:>14}{}",
            "extent",
            "offset",
            "bytes",
            "sectors",
            "stored",
            if self.hashes {
                "  new blake3        base blake3"
            } else {
                ""
            }
        )
    }

    fn extent(&mut self, out: &mut dyn Write, info: &DiffInfo, record: &Record) -> io::Result<()> {
        // By hand rather than with `{:>20}`: a diff can hold millions of extents, and std's
        // padding writes one character at a time.
        write_column(out, &Decimal::new(record.index), 10)?;
        write_column(out, &Decimal::new(record.offset), 21)?;
        write_column(out, &Decimal::new(record.length), 15)?;
        match sectors(info, record.length) {
            Some(count) => write_column(out, &Decimal::new(count), 13)?,
            None => write_column(out, b"-", 13)?,
        }
        match record.stored {
            Stored::Zero => write_column(out, b"zero", 15)?,
            stored => write_column(out, &Decimal::new(stored.bytes_in_file(record.length)), 15)?,
        }
        if self.hashes {
            match record.hashes {
                Some(hashes) => {
                    out.write_all(b"  ")?;
                    out.write_all(&short_hex(hashes.new))?;
                    out.write_all(b"  ")?;
                    out.write_all(&short_hex(hashes.base.value))?;
                    if let Some(block_size) = hashes.base.hashing.block_size() {
                        write!(out, "  over blocks of {}", human_bytes(block_size))?;
                    }
                }
                None => out.write_all(b"  -                 -")?,
            }
        }
        out.write_all(b"\n")
    }

    fn summary(&mut self, out: &mut dyn Write, info: &DiffInfo, totals: &Totals) -> io::Result<()> {
        writeln!(out)?;
        writeln!(out, "extents:           {}", totals.extent_count)?;
        let share = share_of_image(info, totals.changed_bytes)
            .map(|percent| format!(", {percent:.2}% of the image"))
            .unwrap_or_default();
        writeln!(
            out,
            "changed bytes:     {} ({}{share})",
            totals.changed_bytes,
            human_bytes(totals.changed_bytes),
        )?;
        if totals.stored_bytes != totals.changed_bytes {
            writeln!(
                out,
                "stored bytes:      {} ({}, {} of the changed bytes)",
                totals.stored_bytes,
                human_bytes(totals.stored_bytes),
                percent(totals.stored_bytes, totals.changed_bytes)
            )?;
        }
        let no_hashes = "none: this format holds no hashes";
        let base = hex(totals.hashes.map(|hashes| hashes.base));
        let image = hex(totals.hashes.map(|hashes| hashes.image));
        let base = base.unwrap_or_else(|| no_hashes.into());
        let image = image.unwrap_or_else(|| no_hashes.into());
        writeln!(out, "base blake3:       {base}")?;
        writeln!(out, "image blake3:      {image}")?;
        // Where it sits in a chain: the diff before it gives the image with the first hash,
        // and the diff after it must be made against the image with the second.
        if let Some(hashes) = totals.hashes {
            writeln!(
                out,
                "chain link:        {}... -> {}...",
                String::from_utf8_lossy(&short_hex(hashes.base)),
                String::from_utf8_lossy(&short_hex(hashes.image))
            )?;
        }
        Ok(())
    }

    fn failure(&mut self, _out: &mut dyn Write, _reason: &str) -> io::Result<()> {
        Ok(()) // The error line on stderr says it; the table simply stops.
    }
}

/// One JSON document, streamed: the header fields, the `extents` list, then the totals (or an
/// `error` field when the diff is corrupt, so the document is still well-formed). What a
/// format does not record is null.
struct JsonListing {
    extents_listed: u64,
    /// What follows the closing brace.
    end: &'static [u8],
}

#[derive(Serialize)]
struct JsonHeader<'a> {
    path: &'a str,
    format: &'a str,
    sector_size: Option<u64>,
    image_size: Option<u64>,
    record_size_limit: Option<u64>,
    created_unix_seconds: Option<i64>,
    tool_version: Option<&'a str>,
    data_encoding: Option<&'a str>,
}

#[derive(Serialize)]
struct JsonExtent {
    index: u64,
    offset: u64,
    length: u64,
    sectors: Option<u64>,
    stored_bytes: u64,
    zero: bool,
    new_blake3: Option<String>,
    base_blake3: Option<String>,
    /// For a record made from a digest: the size of the blocks its base hash is taken over
    /// (man/diff-dd.5, Records); absent when it is the BLAKE3 of the bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    base_block_size: Option<u64>,
}

#[derive(Serialize)]
struct JsonTotals {
    extent_count: u64,
    changed_bytes: u64,
    stored_bytes: u64,
    share_of_image_percent: Option<f64>,
    base_blake3: Option<String>,
    image_blake3: Option<String>,
}

/// Writes the fields of `value` (a JSON object) without its closing brace, so more fields can
/// follow.
fn open_object(out: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    let mut text = serde_json::to_string(value)?;
    text.pop(); // the closing brace
    out.write_all(text.as_bytes())
}

/// Closes the extents list, then writes the fields of `value`, closes the document and writes
/// `end`.
fn close_object(out: &mut dyn Write, value: &impl Serialize, end: &[u8]) -> io::Result<()> {
    let text = serde_json::to_string(value)?;
    out.write_all(b"],")?;
    out.write_all(&text.as_bytes()[1..])?; // past the opening brace
    out.write_all(end)
}

impl ListingStyle for JsonListing {
    fn header(&mut self, out: &mut dyn Write, path: &str, info: &DiffInfo) -> io::Result<()> {
        open_object(
            out,
            &JsonHeader {
                path,
                format: info.format.name(),
                sector_size: info.sector_size,
                image_size: info.image_size,
                record_size_limit: info.record_size_limit,
                created_unix_seconds: info.created_unix_seconds,
                tool_version: info.tool_version.as_deref(),
                data_encoding: info.data_encoding,
            },
        )?;
        out.write_all(b",\"extents\":[")
    }

    fn extent(&mut self, out: &mut dyn Write, info: &DiffInfo, record: &Record) -> io::Result<()> {
        if self.extents_listed > 0 {
            out.write_all(b",")?;
        }
        self.extents_listed += 1;
        let extent = JsonExtent {
            index: record.index,
            offset: record.offset,
            length: record.length,
            sectors: sectors(info, record.length),
            stored_bytes: record.stored.bytes_in_file(record.length),
            zero: record.stored == Stored::Zero,
            new_blake3: hex(record.hashes.map(|hashes| hashes.new)),
            base_blake3: hex(record.hashes.map(|hashes| hashes.base.value)),
            base_block_size: record
                .hashes
                .and_then(|hashes| hashes.base.hashing.block_size()),
        };
        serde_json::to_writer(&mut *out, &extent)?;
        Ok(())
    }

    fn summary(&mut self, out: &mut dyn Write, info: &DiffInfo, totals: &Totals) -> io::Result<()> {
        close_object(
            out,
            &JsonTotals {
                extent_count: totals.extent_count,
                changed_bytes: totals.changed_bytes,
                stored_bytes: totals.stored_bytes,
                share_of_image_percent: share_of_image(info, totals.changed_bytes),
                base_blake3: hex(totals.hashes.map(|hashes| hashes.base)),
                image_blake3: hex(totals.hashes.map(|hashes| hashes.image)),
            },
            self.end,
        )
    }

    fn failure(&mut self, out: &mut dyn Write, reason: &str) -> io::Result<()> {
        close_object(out, &serde_json::json!({ "error": reason }), self.end)
    }
}

/// `12.5%`: `part` as a share of `whole`.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".to_string();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

/// `1 extent`, `2 extents`.
pub fn count(number: u64, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{number} {noun}s")
    }
}

/// verify's report as one JSON document: the findings, then whether it passed. One diff is
/// `diff`; a chain is `diffs`, in order, and `chain` (null unless they link).
#[derive(Serialize)]
struct JsonReport<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    diff: Option<&'a DiffFindings>,
    #[serde(skip_serializing_if = "Option::is_none")]
    diffs: Option<&'a [DiffFindings]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chain: Option<Option<&'a ChainFindings>>,
    target: Option<&'a TargetFindings>,
    expect: Option<State>,
    ok: bool,
    exit_code: u8,
    error: Option<String>,
}

/// Writes verify's report in `style`.
pub fn write_verify_report(report: &VerifyReport, style: Style, out: &mut dyn Write) -> Result<()> {
    match style {
        Style::Json => write_verify_json(report, out),
        Style::Text | Style::VerboseText => verify_text(report, style == Style::VerboseText, out)
            .map_err(|source| Error::Output {
                what: "the report",
                source,
            }),
    }
}

/// Writes verify's report as one JSON document, on one line as inspect's.
fn write_verify_json(report: &VerifyReport, out: &mut dyn Write) -> Result<()> {
    let document = JsonReport {
        diff: report.diffs.first().filter(|_| !report.is_chain()),
        diffs: report.is_chain().then_some(&report.diffs[..]),
        chain: report.is_chain().then_some(report.chain.as_ref()),
        target: report.target.as_ref(),
        expect: report.expect,
        ok: report.failure.is_none(),
        exit_code: report
            .failure
            .as_ref()
            .map_or(crate::error::SUCCESS, |error| {
                error.exit_code(Reporting::Check)
            }),
        error: report.failure.as_ref().map(ToString::to_string),
    };
    serde_json::to_writer(&mut *out, &document)
        .map_err(io::Error::from)
        .and_then(|()| writeln!(out))
        .map_err(|source| Error::Output {
            what: "the report",
            source,
        })
}

/// verify's report for people: a line on each diff (up to the first that is not intact) and
/// on the chain they form, then on the target and its extents; with `hashes`, the hashes each
/// was checked by.
fn verify_text(report: &VerifyReport, hashes: bool, out: &mut dyn Write) -> io::Result<()> {
    for diff in &report.diffs {
        verify_diff_text(diff, report.target.is_some(), hashes, out)?;
        if !diff.intact {
            break; // The diffs after it were not read.
        }
    }
    if let Some(chain) = &report.chain {
        writeln!(
            out,
            "chain: {} diffs of an image of {}, each made against the image the one before gives",
            report.diffs.len(),
            human_bytes(chain.image_size)
        )?;
        if hashes {
            writeln!(out, "chain: base image blake3 {}", chain.base_blake3)?;
            writeln!(out, "chain: image blake3 {}", chain.image_blake3)?;
        }
    }
    if let Some(target) = &report.target {
        verify_target_text(target, report.is_chain(), hashes, out)?;
    }
    Ok(())
}

/// The line on one diff, with its hashes when `hashes`.
fn verify_diff_text(
    diff: &DiffFindings,
    target_given: bool,
    hashes: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    let reads = match diff.reads_agree {
        Some(_) => "read twice, identical",
        None => "read once: from a stream, a second read was impossible",
    };
    if diff.intact && diff.holds_hashes == Some(false) {
        writeln!(
            out,
            "diff: {}: a {} diff of the original diff-dd, with {} records; it holds no hashes to check, but its structure{} sound; {reads}",
            printable(&diff.path),
            diff.format.unwrap_or("?"),
            diff.extent_count.unwrap_or(0),
            if target_given { " and bounds are" } else { " is" },
        )?;
    } else if diff.intact {
        writeln!(
            out,
            "diff: {}: intact ({}, {}, {} changed); {reads}",
            printable(&diff.path),
            diff.format.unwrap_or("?"),
            count(diff.extent_count.unwrap_or(0), "extent"),
            human_bytes(diff.changed_bytes.unwrap_or(0)),
        )?;
    } else {
        writeln!(out, "diff: {}: NOT intact", printable(&diff.path))?;
    }
    if hashes {
        let or_none = |hash: &Option<String>| hash.clone().unwrap_or_else(|| "none".into());
        writeln!(out, "diff: blake3 of the file {}", or_none(&diff.blake3))?;
        writeln!(
            out,
            "diff: base image blake3 {}",
            or_none(&diff.base_blake3)
        )?;
        writeln!(out, "diff: image blake3 {}", or_none(&diff.image_blake3))?;
    }
    Ok(())
}

/// The lines on the target, checked against one diff or a chain.
fn verify_target_text(
    target: &TargetFindings,
    chain: bool,
    hashes: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    match (target.state, &target.detail) {
        // How far a restore got, or why it is neither: the same words as the error.
        (Some(state), Some(detail)) => writeln!(
            out,
            "target: {}: {}: {}",
            printable(&target.path),
            state.name(),
            printable(detail)
        )?,
        (Some(state), None) => writeln!(
            out,
            "target: {}: {}",
            printable(&target.path),
            state.describe(chain)
        )?,
        (None, _) => writeln!(
            out,
            "target: {}: fits every record; its contents cannot be checked without hashes",
            printable(&target.path)
        )?,
    }
    match target.reads_agree {
        Some(true) => writeln!(out, "target: read twice from the device, identical")?,
        Some(false) => writeln!(out, "target: two reads from the device DIFFER")?,
        None => {}
    }
    if let (true, Some(blake3)) = (hashes, &target.blake3) {
        writeln!(out, "target: blake3 {blake3}")?;
    }
    if let (true, Some(blake3)) = (hashes, &target.laid_over_blake3) {
        let laid = if chain { "the chain" } else { "the diff" };
        writeln!(out, "target: with {laid} laid over it, blake3 {blake3}")?;
    }
    if let Some(extents) = &target.extents {
        writeln!(
            out,
            "extents: {} hold base data, {} new data, {} neither",
            extents.base, extents.restored, extents.neither
        )?;
    }
    Ok(())
}

/// Writes the JSON document of a listing that could not even begin (the diff could not be
/// opened, or its header read): the path, no extents, and the error.
pub fn write_listing_failure(
    path: &std::path::Path,
    error: &Error,
    out: &mut dyn Write,
) -> Result<()> {
    #[derive(Serialize)]
    struct Unlisted<'a> {
        path: &'a str,
        extents: [(); 0],
        error: String,
    }
    let path = path.to_string_lossy();
    let document = Unlisted {
        path: &path,
        extents: [],
        error: error.reason(),
    };
    serde_json::to_writer(&mut *out, &document)
        .map_err(io::Error::from)
        .and_then(|()| writeln!(out))
        .map_err(|source| Error::Output {
            what: "the listing",
            source,
        })
}
