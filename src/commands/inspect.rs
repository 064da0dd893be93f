//! inspect: list what a diff holds from its frame headers, skipping the data.
//!
//! The listing is streamed as the headers are read, so memory stays bounded whatever the
//! number of extents, and a corrupt diff shows everything up to the fault before the error.
//! A v1 diff stores one record per sector; adjacent ones are listed as one extent.

use std::io::{self, BufWriter, Write};

use anyhow::{anyhow, Context, Result};
use serde::Serialize;

use crate::cli::{InspectArgs, DEFAULT_SECTOR_SIZE};
use crate::device::{self, Image};
use crate::exit::{self, with_code};
use crate::format::{self, DataMode, DiffInfo, Format, ReadOptions, Record, Totals};
use crate::units::{human_bytes, utc_timestamp};

pub fn run(args: &InspectArgs) -> Result<()> {
    let diff = device::open_input(&args.difffile, "diff")?;
    let read_options = ReadOptions {
        mode: DataMode::SkipData,
        v1_sector_size: args.sector_size.unwrap_or(DEFAULT_SECTOR_SIZE),
        target_size: None,
    };
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let listed = write_listing(&diff, &read_options, args.json, &mut out);
    let flushed = out.flush().context("cannot write the listing to stdout");
    listed?;
    flushed
}

/// Writes the listing of `diff` (a table, or with `json` one JSON document) to `out`.
pub fn write_listing(
    diff: &Image,
    read_options: &ReadOptions,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut listing: Box<dyn Listing> = if json {
        Box::new(JsonListing { extents_listed: 0 })
    } else {
        Box::new(TableListing)
    };
    list(diff, read_options, listing.as_mut(), out)
}

fn list(
    diff: &Image,
    read_options: &ReadOptions,
    listing: &mut dyn Listing,
    out: &mut dyn Write,
) -> Result<()> {
    let invalid = |error: anyhow::Error| {
        with_code(
            exit::DIFF_INVALID,
            error.context(format!("invalid diff: {}", diff.path.display())),
        )
    };
    let written = |result: io::Result<()>| result.context("cannot write the listing to stdout");
    let mut reader = format::open_reader(diff, read_options).map_err(invalid)?;
    let info = reader.info().clone();
    written(listing.header(out, diff, &info))?;
    let mut extents = Extents {
        join_adjacent: info.format == Format::V1,
        pending: None,
        listed: 0,
    };
    loop {
        match reader.next_record() {
            Ok(Some(record)) => {
                if let Some(extent) = extents.add(record) {
                    written(listing.extent(out, &info, &extent))?;
                }
            }
            Ok(None) => break,
            Err(error) => {
                if let Some(extent) = extents.finish() {
                    written(listing.extent(out, &info, &extent))?;
                }
                written(listing.failure(out, &format!("{error:#}")))?;
                return Err(invalid(error));
            }
        }
    }
    if let Some(extent) = extents.finish() {
        written(listing.extent(out, &info, &extent))?;
    }
    let mut totals = reader
        .totals()
        .cloned()
        .ok_or_else(|| invalid(anyhow!("the diff ended without a trailer")))?;
    totals.extent_count = extents.listed;
    written(listing.summary(out, &info, &totals))
}

/// Turns records into listed extents: one each, or for v1 one per run of adjacent records.
struct Extents {
    join_adjacent: bool,
    pending: Option<Record>,
    listed: u64,
}

impl Extents {
    /// Takes the next record; returns an extent that is complete.
    fn add(&mut self, record: Record) -> Option<Record> {
        if let Some(pending) = &mut self.pending {
            if self.join_adjacent && pending.offset + pending.length == record.offset {
                pending.length += record.length;
                return None;
            }
        }
        let complete = self.finish();
        self.pending = Some(Record {
            index: self.listed,
            ..record
        });
        complete
    }

    fn finish(&mut self) -> Option<Record> {
        let complete = self.pending.take()?;
        self.listed += 1;
        Some(complete)
    }
}

/// One way of printing a listing; called in order: header, extents, then summary or failure.
trait Listing {
    fn header(&mut self, out: &mut dyn Write, diff: &Image, info: &DiffInfo) -> io::Result<()>;
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

/// The human-readable listing: a few header lines, a table, a summary.
struct TableListing;

impl Listing for TableListing {
    fn header(&mut self, out: &mut dyn Write, diff: &Image, info: &DiffInfo) -> io::Result<()> {
        let or_not_recorded = |value: Option<String>| value.unwrap_or_else(|| NOT_RECORDED.into());
        writeln!(out, "diff:              {}", diff.path.display())?;
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
        }
        let created = info.created_unix_seconds.map(utc_timestamp);
        writeln!(out, "created:           {}", or_not_recorded(created))?;
        let tool = info
            .tool_version
            .as_ref()
            .map(|version| format!("diff-dd {version}"));
        writeln!(out, "tool version:      {}", or_not_recorded(tool))?;
        writeln!(out)?;
        writeln!(
            out,
            "{:>10} {:>20} {:>14} {:>12}",
            "extent", "offset", "bytes", "sectors"
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
        let no_hashes = "none: this format holds no hashes";
        let base = hex(totals.base_hash).unwrap_or_else(|| no_hashes.into());
        let image = hex(totals.image_hash).unwrap_or_else(|| no_hashes.into());
        writeln!(out, "base blake3:       {base}")?;
        writeln!(out, "image blake3:      {image}")
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
}

#[derive(Serialize)]
struct JsonExtent {
    index: u64,
    offset: u64,
    length: u64,
    sectors: Option<u64>,
    new_blake3: Option<String>,
    base_blake3: Option<String>,
}

#[derive(Serialize)]
struct JsonTotals {
    extent_count: u64,
    changed_bytes: u64,
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

/// Closes the extents list, then writes the fields of `value` and closes the document.
fn close_object(out: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    let text = serde_json::to_string(value)?;
    out.write_all(b"],")?;
    out.write_all(&text.as_bytes()[1..])?; // past the opening brace
    out.write_all(b"\n")
}

impl Listing for JsonListing {
    fn header(&mut self, out: &mut dyn Write, diff: &Image, info: &DiffInfo) -> io::Result<()> {
        let path = diff.path.to_string_lossy();
        open_object(
            out,
            &JsonHeader {
                path: &path,
                format: info.format.name(),
                sector_size: info.sector_size,
                image_size: info.image_size,
                record_size_limit: info.record_size_limit,
                created_unix_seconds: info.created_unix_seconds,
                tool_version: info.tool_version.as_deref(),
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
            new_blake3: hex(record.new_hash),
            base_blake3: hex(record.base_hash),
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
                share_of_image_percent: share_of_image(info, totals.changed_bytes),
                base_blake3: hex(totals.base_hash),
                image_blake3: hex(totals.image_hash),
            },
        )
    }

    fn failure(&mut self, out: &mut dyn Write, reason: &str) -> io::Result<()> {
        close_object(out, &serde_json::json!({ "error": reason }))
    }
}
