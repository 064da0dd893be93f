//! Diff formats: recognizing a diff from its first bytes, and the one reader interface that
//! every command uses whatever the format.
//!
//! The native format is version 3 of the diff-dd image family (`v3.rs`, documented byte by
//! byte in man/diff-dd.5). Readers check everything they can as they go and report the first
//! fault as an error naming where in the diff it is; they never allocate by a length read from
//! the diff beyond the limits checked first.

pub mod v3;

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};

use anyhow::{bail, Context, Result};

use crate::device::Image;

/// The 13 bytes that open every diff-dd image since the original C++ tool; a version byte
/// follows.
pub const SIGNATURE: &[u8; 13] = b"diff-dd image";

/// Which member of the diff-dd family a diff is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The native format: headers, per-record hashes, a trailer.
    V3,
}

impl Format {
    /// The short name used in listings and JSON: `v3`.
    pub fn name(self) -> &'static str {
        match self {
            Format::V3 => "v3",
        }
    }

    /// Which tool writes this format.
    pub fn origin(self) -> &'static str {
        match self {
            Format::V3 => "diff-dd native",
        }
    }
}

/// What a diff says about itself before its records.
#[derive(Debug, Clone)]
pub struct DiffInfo {
    pub format: Format,
    pub sector_size: u64,
    pub image_size: u64,
    /// No record is longer than this.
    pub record_size_limit: u64,
    pub created_unix_seconds: i64,
    pub tool_version: String,
}

/// One record's header: where its data goes and what it must hash to.
#[derive(Debug, Clone)]
pub struct Record {
    /// Counting from 0, in file order.
    pub index: u64,
    pub offset: u64,
    pub length: u64,
    /// BLAKE3 of the record's data (the new bytes).
    pub new_hash: blake3::Hash,
    /// BLAKE3 of the base-image bytes the data replaces.
    pub base_hash: blake3::Hash,
}

/// What a diff's trailer states about the whole diff, checked against what was read.
#[derive(Debug, Clone)]
pub struct Totals {
    pub extent_count: u64,
    pub changed_bytes: u64,
    /// BLAKE3 of the whole base image (REFFILE).
    pub base_hash: blake3::Hash,
    /// BLAKE3 of the whole new image (INFILE): what a restored target hashes to.
    pub image_hash: blake3::Hash,
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

/// Reads a diff record by record. After `next_record` returns a record, its data may be read
/// with `read_data` in pieces; data not read is skipped (or, in `DataMode::Check`, read and
/// checked) by the next call to `next_record`. When the data of a record has been read to its
/// end, `read_data` has checked it against the record's hash.
pub trait DiffReader {
    fn info(&self) -> &DiffInfo;
    fn next_record(&mut self) -> Result<Option<Record>>;
    fn read_data(&mut self, out: &mut [u8]) -> Result<()>;
    /// The trailer's totals, once `next_record` has returned `None`.
    fn totals(&self) -> Option<&Totals>;
    /// BLAKE3 of every byte of the file, once it has all been read in `DataMode::Check`:
    /// what lets two reads of the same diff be compared.
    fn file_hash(&self) -> Option<blake3::Hash>;
}

/// Opens a diff of any supported format, positioned at its first record.
pub fn open_reader<'a>(diff: &'a Image, mode: DataMode) -> Result<Box<dyn DiffReader + 'a>> {
    let mut source = DiffSource::new(diff, mode == DataMode::Check)?;
    if diff.size == 0 {
        bail!("it is empty");
    }
    let mut signature = [0u8; SIGNATURE.len() + 1];
    let available = signature.len().min(diff.size as usize);
    source.read_exact(&mut signature[..available], "the signature")?;
    if &signature[..SIGNATURE.len()] != SIGNATURE {
        bail!("it does not start with the signature \"diff-dd image\": not a diff-dd diff");
    }
    match signature[SIGNATURE.len()] {
        v3::VERSION => Ok(Box::new(v3::Reader::new(source, signature, mode)?)),
        2 => bail!(
            "it is a version 2 diff (original C++ diff-dd), which this version cannot read yet"
        ),
        other => bail!("it is a diff-dd image of version {other}, which this version cannot read"),
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
    skipped: bool,
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
            skipped: false,
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

    /// True once any byte was skipped rather than read.
    pub fn skipped(&self) -> bool {
        self.skipped
    }

    /// Reads `out.len()` bytes of `what` (named in the error when the diff ends first).
    pub fn read_exact(&mut self, out: &mut [u8], what: &str) -> Result<()> {
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
    pub fn skip(&mut self, length: u64, what: &str) -> Result<()> {
        if self.size - self.position < length {
            bail!("truncated: it ends at byte {} inside {what}", self.size);
        }
        let step = i64::try_from(length).context("a skip beyond any file size")?;
        self.reader.seek_relative(step)?;
        self.position += length;
        self.file_hasher = None;
        self.skipped |= length > 0;
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

/// Reads a whole diff, checking everything `mode` allows, and calls `on_record` for each
/// record header in order. Errors are about the diff's contents; the caller names the file.
pub fn scan(diff: &Image, mode: DataMode, mut on_record: impl FnMut(&Record)) -> Result<Scan> {
    let mut reader = open_reader(diff, mode)?;
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
