//! The formats of the original diff-dd, read for the diffs people already hold, and v1
//! written on request for scripts that expect its bytes.
//!
//! - v1 (C diff-dd 1.0): no header; records of a u64 little-endian byte offset followed by
//!   exactly one sector of new data. The sector size is not recorded: it comes from `-s`.
//! - v2 (C++ diff-dd 3.0.0-prealpha): the signature `diff-dd image`, the version byte 2, then
//!   records of a u64 big-endian offset, a u32 big-endian size (at least 1) and that many bytes.
//!
//! Neither holds a hash or the image size, so a reader can check only structure: order, no
//! overlap, bounds against the target (when known), and that the file ends exactly after a
//! record.

use std::io::{self, Write};

use super::{
    DiffInfo, DiffReader, DiffSource, Format, Part, ReadOptions, Record, Totals, SIGNATURE,
};
use crate::error::Result;

pub const V2_VERSION: u8 = 2;

/// No record of a v1 or v2 diff ends further into the image (offset + length) than this,
/// target or not: 2^63-1, the largest size a file or device can have (an off_t), as for a
/// native diff's image_size. Without a target it is the only bound.
pub const MAX_END: u64 = i64::MAX as u64;

/// Reads a v1 or v2 diff. See [`DiffReader`].
pub struct Reader<'a> {
    source: DiffSource<'a>,
    /// Every byte is read (see [`super::ReadOptions::check_data`]).
    check_data: bool,
    info: DiffInfo,
    /// Records must end within this: the target's size, when known.
    bound: Option<u64>,
    next_index: u64,
    previous_end: u64,
    changed_bytes: u64,
    /// Data of the current record not read yet.
    remaining: u64,
    totals: Option<Totals>,
}

/// The error for a file that has no v2 or v3 signature and cannot be a v1 diff at the given
/// sector size: it says first that it is no diff-dd diff, what it seems to be, and the sector
/// sizes (if any) at which it would be a valid v1 diff.
fn not_a_diff(source: &DiffSource<'_>, sector_size: u64) -> crate::error::Error {
    let size = source.size();
    let fitting: Vec<String> = (8..=16)
        .map(|power| 1u64 << power)
        .filter(|&other| other != sector_size && size > 0 && size.is_multiple_of(8 + other))
        .filter(|&other| {
            super::scan(
                source.diff,
                &super::ReadOptions::headers(other, None),
                |_| {},
            )
            .is_ok()
        })
        .map(|other| format!("-s {other}"))
        .collect();
    let hint = if fitting.is_empty() {
        format!("; it seems to be {}", super::describe_contents(source.diff))
    } else {
        format!("; it is a valid v1 diff with {}", fitting.join(" or "))
    };
    source.invalid(
        None,
        format!(
            "it is not a diff-dd diff: it has no v2 or v3 signature, and it is not a v1 diff with {sector_size}-byte sectors (its size {size} is not a non-zero multiple of 8 + {sector_size}){hint}"
        ),
    )
}

impl<'a> Reader<'a> {
    /// `source` is at the start of the diff; `format` is V1 or V2.
    pub fn new(
        mut source: DiffSource<'a>,
        format: Format,
        options: &ReadOptions,
    ) -> Result<Reader<'a>> {
        let sector_size = match format {
            Format::V1 => {
                let sector_size = options.v1_sector_size;
                let record_size = 8 + sector_size;
                if source.size() == 0 || !source.size().is_multiple_of(record_size) {
                    return Err(not_a_diff(&source, sector_size));
                }
                Some(sector_size)
            }
            _ => {
                let mut signature = [0u8; SIGNATURE.len() + 1];
                source.read_exact(&mut signature, Part::Signature)?;
                if signature[..SIGNATURE.len()] != SIGNATURE[..]
                    || signature[SIGNATURE.len()] != V2_VERSION
                {
                    return Err(source.invalid(
                        None,
                        "it does not start with the signature of a version 2 diff",
                    ));
                }
                None
            }
        };
        Ok(Reader {
            source,
            check_data: options.check_data,
            info: DiffInfo {
                format,
                sector_size,
                image_size: None,
                record_size_limit: sector_size,
                created_unix_seconds: None,
                tool_version: None,
                data_encoding: None,
            },
            bound: options.target_size,
            next_index: 0,
            previous_end: 0,
            changed_bytes: 0,
            remaining: 0,
            totals: None,
        })
    }

    /// Reads the next record's offset and length.
    fn read_record_header(&mut self, what: Part) -> Result<(u64, u64)> {
        match self.info.sector_size {
            Some(sector_size) => {
                let mut offset = [0u8; 8];
                self.source.read_exact(&mut offset, what)?;
                Ok((u64::from_le_bytes(offset), sector_size))
            }
            None => {
                let mut header = [0u8; 12];
                self.source.read_exact(&mut header, what)?;
                let (offset, size) = header.split_at(8);
                let offset = u64::from_be_bytes([
                    offset[0], offset[1], offset[2], offset[3], offset[4], offset[5], offset[6],
                    offset[7],
                ]);
                let size = u32::from_be_bytes([size[0], size[1], size[2], size[3]]);
                Ok((offset, u64::from(size)))
            }
        }
    }

    fn check_record(&self, index: u64, offset: u64, length: u64) -> Result<()> {
        let fault = |reason: String| -> Result<()> {
            Err(self.source.invalid(
                Some(index),
                format!("record {index} (offset {offset}, {length} bytes): {reason}"),
            ))
        };
        if length == 0 {
            return fault("it is empty".into());
        }
        if index > 0 && offset < self.previous_end {
            return fault(format!(
                "offsets must increase without overlap, but the previous record ends at byte {}",
                self.previous_end
            ));
        }
        let end = offset.checked_add(length);
        if let Some(bound) = self.bound {
            if end.is_none_or(|end| end > bound) {
                return fault(format!(
                    "it ends past the end of the target ({bound} bytes)"
                ));
            }
        }
        if end.is_none_or(|end| end > MAX_END) {
            return fault(format!(
                "its offset + length is past 2^63-1 ({MAX_END}), beyond any device"
            ));
        }
        let left_in_file = self.source.size() - self.source.position();
        if length > left_in_file {
            return fault(format!(
                "truncated: the file ends {left_in_file} bytes into its data"
            ));
        }
        Ok(())
    }
}

impl DiffReader for Reader<'_> {
    fn info(&self) -> &DiffInfo {
        &self.info
    }

    fn next_record(&mut self) -> Result<Option<Record>> {
        if self.totals.is_some() {
            return Ok(None);
        }
        if self.remaining > 0 {
            let what = Part::RecordData(self.next_index - 1);
            if self.check_data {
                self.source.read_through(self.remaining, what, |_| {})?;
            } else {
                self.source.skip(self.remaining, what)?;
            }
            self.remaining = 0;
        }
        if self.source.position() == self.source.size() {
            self.totals = Some(Totals {
                stored_bytes: self.changed_bytes,
                extent_count: self.next_index,
                changed_bytes: self.changed_bytes,
                hashes: None,
            });
            return Ok(None);
        }
        let index = self.next_index;
        let (offset, length) = self.read_record_header(Part::RecordHeader(index))?;
        self.check_record(index, offset, length)?;
        self.next_index += 1;
        self.previous_end = offset + length;
        self.changed_bytes += length;
        self.remaining = length;
        Ok(Some(Record {
            index,
            offset,
            length,
            hashes: None,
            stored: super::Stored::Raw,
            data_at: self.source.position(),
        }))
    }

    fn read_data(&mut self, out: &mut [u8]) -> Result<()> {
        if self.next_index == 0 || out.len() as u64 > self.remaining {
            let record = self.next_index.checked_sub(1);
            return Err(self
                .source
                .invalid(record, "asked for more data than the record holds"));
        }
        self.source
            .read_exact(out, Part::RecordData(self.next_index - 1))?;
        self.remaining -= out.len() as u64;
        Ok(())
    }

    fn totals(&self) -> Option<&Totals> {
        self.totals.as_ref()
    }

    fn file_hash(&self) -> Option<blake3::Hash> {
        self.source.file_hash()
    }

    fn require_data(&self, record: &Record) -> Result<()> {
        self.source
            .require(record.length, Part::RecordData(record.index))
    }
}

/// Writes a v1 diff, byte for byte what the original diff-dd 1.0 wrote: for every changed
/// sector, in order, its u64 LE offset and its data.
pub struct V1Writer<W: Write> {
    out: W,
    sector_size: usize,
}

impl<W: Write> V1Writer<W> {
    pub fn new(out: W, sector_size: u64) -> V1Writer<W> {
        V1Writer {
            out,
            sector_size: sector_size as usize,
        }
    }

    /// Writes a run of changed sectors as one record per sector. Every sector must be whole:
    /// v1 cannot hold a short last sector (backup refuses such images beforehand).
    pub fn write_extent(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut sector_offset = offset;
        for sector in data.chunks(self.sector_size) {
            if sector.len() != self.sector_size {
                return Err(io::Error::other(format!(
                    "v1 cannot hold the short sector at byte {sector_offset}"
                )));
            }
            self.out.write_all(&sector_offset.to_le_bytes())?;
            self.out.write_all(sector)?;
            sector_offset += self.sector_size as u64;
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}
