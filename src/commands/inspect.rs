//! inspect: list what a diff holds from its frame headers, skipping the data.
//!
//! The listing is streamed as the headers are read, so memory stays bounded whatever the
//! number of extents, and a corrupt diff shows everything up to the fault before the error.

use std::io::{self, BufWriter, Write};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::cli::InspectArgs;
use crate::device::{self, Image};
use crate::exit::{self, with_code};
use crate::format::{self, DataMode, DiffInfo, Record, Totals};
use crate::units::{human_bytes, utc_timestamp};

pub fn run(args: &InspectArgs) -> Result<()> {
    let diff = device::open_input(&args.difffile, "diff")?;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut listing: Box<dyn Listing> = if args.json {
        Box::new(JsonListing { extents_listed: 0 })
    } else {
        Box::new(TableListing)
    };
    let listed = list(&diff, listing.as_mut(), &mut out);
    let flushed = out.flush().context("cannot write the listing to stdout");
    listed?;
    flushed
}

fn list(diff: &Image, listing: &mut dyn Listing, out: &mut dyn Write) -> Result<()> {
    let invalid = |error: anyhow::Error| {
        with_code(
            exit::DIFF_INVALID,
            error.context(format!("invalid diff: {}", diff.path.display())),
        )
    };
    let written = |result: io::Result<()>| result.context("cannot write the listing to stdout");
    let mut reader = format::open_reader(diff, DataMode::SkipData).map_err(invalid)?;
    let info = reader.info().clone();
    written(listing.header(out, diff, &info))?;
    loop {
        match reader.next_record() {
            Ok(Some(record)) => written(listing.extent(out, &info, &record))?,
            Ok(None) => break,
            Err(error) => {
                written(listing.failure(out, &format!("{error:#}")))?;
                return Err(invalid(error));
            }
        }
    }
    match reader.totals() {
        Some(totals) => written(listing.summary(out, &info, totals)),
        None => Err(invalid(anyhow::anyhow!("the diff ended without a trailer"))),
    }
}

/// One way of printing a listing; called in order: header, extents, then summary or failure.
trait Listing {
    fn header(&mut self, out: &mut dyn Write, diff: &Image, info: &DiffInfo) -> io::Result<()>;
    fn extent(&mut self, out: &mut dyn Write, info: &DiffInfo, record: &Record) -> io::Result<()>;
    fn summary(&mut self, out: &mut dyn Write, info: &DiffInfo, totals: &Totals) -> io::Result<()>;
    fn failure(&mut self, out: &mut dyn Write, reason: &str) -> io::Result<()>;
}

fn sectors(info: &DiffInfo, length: u64) -> u64 {
    length.div_ceil(info.sector_size)
}

fn share_of_image(info: &DiffInfo, changed_bytes: u64) -> f64 {
    if info.image_size == 0 {
        return 0.0;
    }
    changed_bytes as f64 * 100.0 / info.image_size as f64
}

/// The human-readable listing: a few header lines, a table, a summary.
struct TableListing;

impl Listing for TableListing {
    fn header(&mut self, out: &mut dyn Write, diff: &Image, info: &DiffInfo) -> io::Result<()> {
        writeln!(out, "diff:              {}", diff.path.display())?;
        writeln!(
            out,
            "format:            {} ({})",
            info.format.name(),
            info.format.origin()
        )?;
        writeln!(out, "sector size:       {} bytes", info.sector_size)?;
        writeln!(
            out,
            "image size:        {} bytes ({})",
            info.image_size,
            human_bytes(info.image_size)
        )?;
        writeln!(out, "record size limit: {} bytes", info.record_size_limit)?;
        writeln!(
            out,
            "created:           {}",
            utc_timestamp(info.created_unix_seconds)
        )?;
        writeln!(out, "tool version:      diff-dd {}", info.tool_version)?;
        writeln!(out)?;
        writeln!(
            out,
            "{:>10} {:>20} {:>14} {:>12}",
            "extent", "offset", "bytes", "sectors"
        )
    }

    fn extent(&mut self, out: &mut dyn Write, info: &DiffInfo, record: &Record) -> io::Result<()> {
        writeln!(
            out,
            "{:>10} {:>20} {:>14} {:>12}",
            record.index,
            record.offset,
            record.length,
            sectors(info, record.length)
        )
    }

    fn summary(&mut self, out: &mut dyn Write, info: &DiffInfo, totals: &Totals) -> io::Result<()> {
        writeln!(out)?;
        writeln!(out, "extents:           {}", totals.extent_count)?;
        writeln!(
            out,
            "changed bytes:     {} ({}, {:.2}% of the image)",
            totals.changed_bytes,
            human_bytes(totals.changed_bytes),
            share_of_image(info, totals.changed_bytes)
        )?;
        writeln!(out, "base blake3:       {}", totals.base_hash.to_hex())?;
        writeln!(out, "image blake3:      {}", totals.image_hash.to_hex())
    }

    fn failure(&mut self, _out: &mut dyn Write, _reason: &str) -> io::Result<()> {
        Ok(()) // The error line on stderr says it; the table simply stops.
    }
}

/// One JSON document, streamed: the header fields, the `extents` list, then the totals (or an
/// `error` field when the diff is corrupt, so the document is still well-formed).
struct JsonListing {
    extents_listed: u64,
}

#[derive(Serialize)]
struct JsonHeader<'a> {
    path: &'a str,
    format: &'a str,
    sector_size: u64,
    image_size: u64,
    record_size_limit: u64,
    created_unix_seconds: i64,
    tool_version: &'a str,
}

#[derive(Serialize)]
struct JsonExtent {
    index: u64,
    offset: u64,
    length: u64,
    sectors: u64,
    new_blake3: String,
    base_blake3: String,
}

#[derive(Serialize)]
struct JsonTotals {
    extent_count: u64,
    changed_bytes: u64,
    share_of_image_percent: f64,
    base_blake3: String,
    image_blake3: String,
}

/// Writes the fields of `value` (a JSON object) without its closing brace, so more fields can
/// follow.
fn open_object(out: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    let mut text = serde_json::to_string(value)?;
    text.pop(); // the closing brace
    out.write_all(text.as_bytes())
}

/// Writes the fields of `value` after others, closing the enclosing object.
fn close_object(out: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    let text = serde_json::to_string(value)?;
    out.write_all(b"],")?;
    out.write_all(&text.as_bytes()[1..])?;
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
                tool_version: &info.tool_version,
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
            new_blake3: record.new_hash.to_hex().to_string(),
            base_blake3: record.base_hash.to_hex().to_string(),
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
                base_blake3: totals.base_hash.to_hex().to_string(),
                image_blake3: totals.image_hash.to_hex().to_string(),
            },
        )
    }

    fn failure(&mut self, out: &mut dyn Write, reason: &str) -> io::Result<()> {
        close_object(out, &serde_json::json!({ "error": reason }))
    }
}
