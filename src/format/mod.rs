//! Diff formats: recognizing a diff from its first bytes, and the one reader interface that
//! every command uses whatever the format.
//!
//! - v3, the native format (`v3.rs`, documented byte by byte in man/diff-dd.5): headers,
//!   per-record hashes, a trailer with whole-image and whole-diff hashes.
//! - v2 and v1, written by the original C++ and C diff-dd (`legacy.rs`): bare records, no
//!   hashes. They can be read, and v1 written, for people who already hold such diffs.
//!
//! Readers check everything they can as they go and report the first fault as an error naming
//! where in the diff it is; they never allocate by a length read from the diff beyond the
//! limits checked first.

pub mod legacy;
pub mod v3;

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};

use crate::device::Image;

/// The 13 bytes that open every diff-dd image since the original C++ tool; a version byte
/// follows.
pub const SIGNATURE: &[u8; 13] = b"diff-dd image";

/// Which member of the diff-dd family a diff is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The original C diff-dd 1.0: records of a u64 LE offset and one sector.
    V1,
    /// The original C++ diff-dd 3.0.0-prealpha: a signature, then u64 BE offset, u32 BE size.
    V2,
    /// The native format: headers, per-record hashes, a trailer.
    V3,
}

impl Format {
    /// The short name used in listings and JSON: `v1`, `v2`, `v3`.
    pub fn name(self) -> &'static str {
        match self {
            Format::V1 => "v1",
            Format::V2 => "v2",
            Format::V3 => "v3",
        }
    }

    /// Which tool writes this format.
    pub fn origin(self) -> &'static str {
        match self {
            Format::V1 => "original diff-dd 1.0, no hashes",
            Format::V2 => "original C++ diff-dd, no hashes",
            Format::V3 => "diff-dd native",
        }
    }
}

/// What a diff says about itself before its records. Legacy formats say little: what they
/// do not record is `None`.
#[derive(Debug, Clone)]
pub struct DiffInfo {
    pub format: Format,
    /// None for v2, whose records are byte-granular.
    pub sector_size: Option<u64>,
    pub image_size: Option<u64>,
    /// No record is longer than this.
    pub record_size_limit: Option<u64>,
    pub created_unix_seconds: Option<i64>,
    pub tool_version: Option<String>,
}

/// One record's header: where its data goes and, in the native format, what it must hash to.
#[derive(Debug, Clone)]
pub struct Record {
    /// Counting from 0, in file order.
    pub index: u64,
    pub offset: u64,
    pub length: u64,
    /// BLAKE3 of the record's data (the new bytes).
    pub new_hash: Option<blake3::Hash>,
    /// BLAKE3 of the base-image bytes the data replaces.
    pub base_hash: Option<blake3::Hash>,
}

/// What a whole diff holds: counted while reading and, in the native format, checked
/// against its trailer.
#[derive(Debug, Clone)]
pub struct Totals {
    pub extent_count: u64,
    pub changed_bytes: u64,
    /// BLAKE3 of the whole base image (REFFILE).
    pub base_hash: Option<blake3::Hash>,
    /// BLAKE3 of the whole new image (INFILE): what a restored target hashes to.
    pub image_hash: Option<blake3::Hash>,
}

/// Whether record data is read (and checked against its hash) or skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMode {
    /// Every byte of the diff is read and checked, the whole-diff hash included.
    Check,
    /// Record data is skipped unless read with `read_data`; the whole-diff hash cannot be
    /// checked, everything else is.
    SkipData,
}

/// How to read a diff.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    pub mode: DataMode,
    /// The sector size of a v1 diff, which does not record it.
    pub v1_sector_size: u64,
    /// The size of the target the diff is for, when known: legacy diffs do not record their
    /// image size, so their records are bounded by the target instead.
    pub target_size: Option<u64>,
}

/// Reads a diff record by record. After `next_record` returns a record, its data may be read
/// with `read_data` in pieces; data not read is skipped (or, in `DataMode::Check`, read and
/// checked) by the next call to `next_record`. When the data of a record has been read to its
/// end, `read_data` has checked it against the record's hash, if it has one.
pub trait DiffReader {
    fn info(&self) -> &DiffInfo;
    fn next_record(&mut self) -> Result<Option<Record>>;
    fn read_data(&mut self, out: &mut [u8]) -> Result<()>;
    /// The diff's totals, once `next_record` has returned `None`.
    fn totals(&self) -> Option<&Totals>;
    /// BLAKE3 of every byte of the file, once it has all been read in `DataMode::Check`:
    /// what lets two reads of the same diff be compared.
    fn file_hash(&self) -> Option<blake3::Hash>;
}

/// Tells the format from the first 14 bytes: the signature and version 3 is native, the
/// signature and version 2 is v2, no signature is v1.
pub fn detect(diff: &Image) -> Result<Format> {
    if diff.size == 0 {
        bail!("it is empty");
    }
    let mut start = [0u8; SIGNATURE.len() + 1];
    let available = start.len().min(diff.size as usize);
    diff.file
        .read_exact_at(&mut start[..available], 0)
        .with_context(|| diff.describe("cannot read"))?;
    if &start[..SIGNATURE.len()] != SIGNATURE {
        return Ok(Format::V1);
    }
    match start[SIGNATURE.len()] {
        v3::VERSION => Ok(Format::V3),
        legacy::V2_VERSION => Ok(Format::V2),
        other => bail!("it is a diff-dd image of version {other}, which this version cannot read"),
    }
}

/// Opens a diff of any supported format, positioned at its first record.
pub fn open_reader<'a>(diff: &'a Image, options: &ReadOptions) -> Result<Box<dyn DiffReader + 'a>> {
    let format = detect(diff)?;
    let source = DiffSource::new(diff, options.mode == DataMode::Check)?;
    Ok(match format {
        Format::V3 => Box::new(v3::Reader::new(source, options.mode)?),
        Format::V2 | Format::V1 => Box::new(legacy::Reader::new(source, format, options)?),
    })
}

/// A part of a diff, as errors name it. Formatted only when an error needs it: a diff can
/// hold millions of records.
#[derive(Debug, Clone, Copy)]
pub enum Part {
    Signature,
    Header,
    Footer,
    FrameAt(u64),
    RecordHeader(u64),
    RecordData(u64),
}

impl std::fmt::Display for Part {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Part::Signature => write!(formatter, "the signature"),
            Part::Header => write!(formatter, "the header"),
            Part::Footer => write!(formatter, "the footer"),
            Part::FrameAt(offset) => write!(formatter, "the frame at byte {offset}"),
            Part::RecordHeader(index) => write!(formatter, "the header of record {index}"),
            Part::RecordData(index) => write!(formatter, "the data of record {index}"),
        }
    }
}

/// Sequential reading of a diff, with its position and size, so that a short file is
/// reported as truncated at a named place.
pub struct DiffSource<'a> {
    reader: BufReader<&'a File>,
    position: u64,
    size: u64,
    /// Hashes every byte read, while no byte has been skipped.
    file_hasher: Option<blake3::Hasher>,
}

impl<'a> DiffSource<'a> {
    pub fn new(diff: &'a Image, hash_file: bool) -> Result<DiffSource<'a>> {
        let mut file = &diff.file;
        file.seek(SeekFrom::Start(0))
            .with_context(|| diff.describe("cannot read"))?;
        Ok(DiffSource {
            reader: BufReader::with_capacity(64 << 10, file),
            position: 0,
            size: diff.size,
            file_hasher: hash_file.then(blake3::Hasher::new),
        })
    }

    /// BLAKE3 of the whole file, when every byte of it was read and none skipped.
    pub fn file_hash(&self) -> Option<blake3::Hash> {
        let hasher = self.file_hasher.as_ref()?;
        (self.position == self.size).then(|| hasher.finalize())
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Reads `out.len()` bytes of `what` (named in the error when the diff ends first).
    pub fn read_exact(&mut self, out: &mut [u8], what: Part) -> Result<()> {
        if self.size - self.position < out.len() as u64 {
            bail!("truncated: it ends at byte {} inside {what}", self.size);
        }
        self.reader
            .read_exact(out)
            .with_context(|| format!("reading {what} at byte {}", self.position))?;
        if let Some(hasher) = &mut self.file_hasher {
            hasher.update(out);
        }
        self.position += out.len() as u64;
        Ok(())
    }

    /// Moves past `length` bytes of `what` without reading them.
    pub fn skip(&mut self, length: u64, what: Part) -> Result<()> {
        if self.size - self.position < length {
            bail!("truncated: it ends at byte {} inside {what}", self.size);
        }
        let step = i64::try_from(length).context("a skip beyond any file size")?;
        self.reader.seek_relative(step)?;
        self.position += length;
        self.file_hasher = None;
        Ok(())
    }

    /// Moves past `length` bytes of `what`: reads them in `DataMode::Check` (so the file hash
    /// covers them), skips them otherwise.
    pub fn pass_over(&mut self, length: u64, what: Part, mode: DataMode) -> Result<()> {
        if mode == DataMode::SkipData {
            return self.skip(length, what);
        }
        let mut scratch = vec![0u8; length.min(64 << 10) as usize];
        let mut remaining = length;
        while remaining > 0 {
            let piece = scratch.len().min(remaining as usize);
            self.read_exact(&mut scratch[..piece], what)?;
            remaining -= piece as u64;
        }
        Ok(())
    }
}

/// What a full pass over a diff found.
#[derive(Debug, Clone)]
pub struct Scan {
    pub info: DiffInfo,
    pub totals: Totals,
    /// The longest record: what a restore needs to hold one record in memory.
    pub longest_record: u64,
    /// BLAKE3 of the whole file, when the scan read every byte (`DataMode::Check`).
    pub file_hash: Option<blake3::Hash>,
}

/// Reads a whole diff, checking everything the options allow, and calls `on_record` for each
/// record header in order. Errors are about the diff's contents; the caller names the file.
pub fn scan(
    diff: &Image,
    options: &ReadOptions,
    mut on_record: impl FnMut(&Record),
) -> Result<Scan> {
    let mut reader = open_reader(diff, options)?;
    let mut longest_record = 0;
    while let Some(record) = reader.next_record()? {
        longest_record = longest_record.max(record.length);
        on_record(&record);
    }
    let totals = reader
        .totals()
        .cloned()
        .context("the diff ended without a trailer")?;
    Ok(Scan {
        info: reader.info().clone(),
        totals,
        longest_record,
        file_hash: reader.file_hash(),
    })
}
