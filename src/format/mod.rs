//! Diff formats: recognizing a diff from its first bytes, and the one reader interface that
//! every command uses whatever the format.
//!
//! - v3, the native format (`v3.rs`, documented byte by byte in man/diff-dd.5): headers,
//!   per-record hashes, a trailer with whole-image and whole-diff hashes.
//! - v2 and v1, written by the original C++ and C diff-dd (`legacy.rs`): bare records, no
//!   hashes. They can be read, and v1 written, for people who already hold such diffs.
//!
//! Readers check everything they can as they go and report the first fault as an
//! [`Error::InvalidDiff`] naming where in the diff it is; they never allocate by a length read
//! from the diff beyond the limits checked first.

pub mod digest;
pub mod legacy;
mod pieces;
pub mod v3;

pub use pieces::{RecordPieces, LONG_RECORD, PIECE};

use std::cell::Cell;
use std::path::Path;

use crate::device::OpenFile;
use crate::engine::pool::{self, Pool};
use crate::engine::{self, IoBuffer, StreamHasher};
use crate::error::{Error, Result};
use crate::units;

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
    /// How the writer stored record data (`raw`, `zstd`); None for legacy formats.
    pub data_encoding: Option<&'static str>,
}

/// What a native record's data and the bytes it replaces must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHashes {
    /// BLAKE3 of the record's data: the new bytes, from INFILE.
    pub new: blake3::Hash,
    /// What the base-image bytes the data replaces hash to.
    pub base: BaseHash,
}

/// What the base-image bytes a record replaces hash to, and how they are hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseHash {
    pub value: blake3::Hash,
    pub hashing: BaseHashing,
}

impl BaseHash {
    /// The BLAKE3 of the bytes themselves: what a backup against REFFILE records.
    pub fn of_bytes(value: blake3::Hash) -> BaseHash {
        BaseHash {
            value,
            hashing: BaseHashing::Bytes,
        }
    }
}

/// How a record's base hash is taken over the base image's bytes (man/diff-dd.5, Records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseHashing {
    /// BLAKE3 of the bytes.
    Bytes,
    /// BLAKE3 of the block values, one after the other, of the blocks of `block_size` the
    /// record covers: each block's BLAKE3 chaining value at its position in the image, as a
    /// digest holds them (for an image of one block, its root hash). What a backup from a
    /// digest records, since a digest holds those values and not the bytes.
    Blocks { block_size: u64 },
}

impl BaseHashing {
    /// The block size of a hash over blocks.
    pub fn block_size(self) -> Option<u64> {
        match self {
            BaseHashing::Bytes => None,
            BaseHashing::Blocks { block_size } => Some(block_size),
        }
    }
}

/// How a record's data is held in the diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// As it is.
    Raw,
    /// Not at all: the data is zeros.
    Zero,
    /// As one zstd frame of `stored_length` bytes.
    Zstd { stored_length: u64 },
}

impl Stored {
    /// The bytes the data of a record of `length` takes in the file.
    pub fn bytes_in_file(self, length: u64) -> u64 {
        match self {
            Stored::Raw => length,
            Stored::Zero => 0,
            Stored::Zstd { stored_length } => stored_length,
        }
    }
}

/// One record's header: where its data goes and, in the native format, what it hashes to.
#[derive(Debug, Clone)]
pub struct Record {
    /// Counting from 0, in file order.
    pub index: u64,
    pub offset: u64,
    pub length: u64,
    /// None in the original tool's formats, which hold no hashes.
    pub hashes: Option<RecordHashes>,
    /// Always `Raw` in the original tool's formats.
    pub stored: Stored,
    /// Where in the diff file its stored data starts.
    pub data_at: u64,
}

/// What the two whole images of a native diff hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHashes {
    /// BLAKE3 of the whole base image (REFFILE): what a target ready for restore hashes to.
    pub base: blake3::Hash,
    /// BLAKE3 of the whole new image (INFILE): what a restored target hashes to.
    pub image: blake3::Hash,
}

/// What a whole diff holds: counted while reading and, in the native format, checked
/// against its trailer.
#[derive(Debug, Clone)]
pub struct Totals {
    pub extent_count: u64,
    pub changed_bytes: u64,
    /// What the records' data takes in the file: less than changed_bytes when records are
    /// compressed or zero.
    pub stored_bytes: u64,
    /// None in the original tool's formats, which hold no hashes.
    pub hashes: Option<ImageHashes>,
}

/// How to read a diff.
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Read every byte: each record's data is checked against its hash, and the whole-diff
    /// hash against the trailer. Otherwise data is skipped unless read with
    /// [`DiffReader::read_record`] (which still checks that record's hash), and the
    /// whole-diff hash is not checked.
    pub check_data: bool,
    /// Also BLAKE3 every byte of the file (with `check_data`), so that two reads can be
    /// compared: only verify needs it.
    pub hash_file: bool,
    /// The sector size of a v1 diff, which does not record it.
    pub v1_sector_size: u64,
    /// The size of the target the diff is for, when known: legacy diffs do not record their
    /// image size, so their records are bounded by the target instead.
    pub target_size: Option<u64>,
}

impl ReadOptions {
    /// Headers only, every record's data skipped.
    pub fn headers(v1_sector_size: u64, target_size: Option<u64>) -> ReadOptions {
        ReadOptions {
            check_data: false,
            hash_file: false,
            v1_sector_size,
            target_size,
        }
    }

    /// Every byte read and checked.
    pub fn checked(v1_sector_size: u64, target_size: Option<u64>) -> ReadOptions {
        ReadOptions {
            check_data: true,
            ..ReadOptions::headers(v1_sector_size, target_size)
        }
    }
}

/// Reads a diff record by record. After `next_record` returns a record, its data may be read;
/// data not read is skipped (or, with `check_data`, read and checked) by the next call to
/// `next_record`.
pub trait DiffReader {
    fn info(&self) -> &DiffInfo;
    fn next_record(&mut self) -> Result<Option<Record>>;
    /// Reads the next `out.len()` bytes of the open record's data. The record's hash, if it
    /// has one, is checked when its last byte is read: the bytes of earlier pieces are not
    /// checked yet, so data is acted on only through [`DiffReader::read_record`], or when the
    /// record has no hash to check.
    fn read_data(&mut self, out: &mut [u8]) -> Result<()>;
    /// The diff's totals, once `next_record` has returned `None`.
    fn totals(&self) -> Option<&Totals>;
    /// BLAKE3 of every byte of the file, once it has all been read with `hash_file`: what
    /// lets two reads of the same diff be compared.
    fn file_hash(&self) -> Option<blake3::Hash>;
    /// Fails, naming the truncation, unless the rest of the file can hold `record`'s data.
    fn require_data(&self, record: &Record) -> Result<()>;

    /// Appends the open record's data as the diff stores it (its raw bytes, its zstd frame, or
    /// nothing for a zero record) to `out` and moves past it, so that it can be decoded and
    /// checked on another thread ([`StoredRecords`]). Nothing of it is checked yet; with
    /// `check_data` its bytes go into the whole-diff hash. Nothing is allocated for a record
    /// that the rest of the file cannot hold.
    fn take_stored(&mut self, record: &Record, out: &mut Vec<u8>) -> Result<()> {
        self.require_data(record)?;
        let start = out.len();
        out.resize(
            start + usize::try_from(record.length).unwrap_or(usize::MAX),
            0,
        );
        self.read_data(&mut out[start..])
    }

    /// The whole data of `record`, the open record, in `buffer`: handed out only after it
    /// matched the record's hash (when it has one). Nothing is allocated for a record that
    /// the rest of the file cannot hold.
    fn read_record<'b>(&mut self, record: &Record, buffer: &'b mut Vec<u8>) -> Result<&'b [u8]> {
        self.require_data(record)?;
        let length = usize::try_from(record.length).unwrap_or(usize::MAX);
        buffer.resize(length, 0);
        self.read_data(buffer)?;
        Ok(buffer)
    }
}

/// Tells the format (man/diff-dd.5, DETECTION): the signature and version 3 is native, the
/// signature and version 2 is v2, the signature and any other version is refused. A file
/// without the signature is v1 unless it bears the marks of a native diff, in which case it
/// is a native diff whose signature was damaged: refused, never read as v1.
pub fn detect(diff: &OpenFile) -> Result<Format> {
    let invalid = |reason: String| Error::invalid_diff(&diff.path, None, reason);
    if diff.size == 0 {
        return Err(invalid("it is empty".into()));
    }
    let mut start = [0u8; SIGNATURE.len() + 1];
    let available = start.len().min(diff.size as usize);
    diff.read_at(0, &mut start[..available])?;
    // Too short for the version byte, and nothing but the signature's first bytes: what a
    // native or v2 diff cut short leaves. Read as v1 it could pass: at -s 1, "diff-dd i" is
    // a record at an offset of about 2^61.
    if available <= SIGNATURE.len() && start[..available] == SIGNATURE[..available] {
        return Err(invalid(format!(
            "it is {available} bytes long, all of them the start of the signature \"diff-dd image\", and has no version byte: a diff cut short"
        )));
    }
    if available > SIGNATURE.len() && digest::has_signature(&start[..available]) {
        return Err(invalid(
            "it is a diff-dd digest (block hashes of an image, made by diff-dd digest), not a diff"
                .into(),
        ));
    }
    if &start[..SIGNATURE.len()] != SIGNATURE {
        return match v3::native_marks(diff, &start[..available])? {
            Some(mark) => Err(invalid(format!(
                "it does not start with the signature \"diff-dd image\", but {mark}: a native diff whose signature is damaged"
            ))),
            None => Ok(Format::V1),
        };
    }
    match start[SIGNATURE.len()] {
        v3::VERSION => Ok(Format::V3),
        legacy::V2_VERSION => Ok(Format::V2),
        other => Err(invalid(format!(
            "it is a diff-dd image of version {other}, which this version cannot read"
        ))),
    }
}

/// Opens a diff of any supported format, positioned at its first record.
pub fn open_reader<'a>(
    diff: &'a OpenFile,
    options: &ReadOptions,
) -> Result<Box<dyn DiffReader + Send + 'a>> {
    let format = detect(diff)?;
    let hash_file = options.check_data && options.hash_file;
    // A native reader that checks data hashes every byte before the trailer already: it
    // derives the file's hash from that, rather than the source hashing every byte again.
    let source = DiffSource::new(diff, hash_file && format != Format::V3)?;
    Ok(match format {
        Format::V3 => Box::new(v3::Reader::new(source, options.check_data, hash_file)?),
        Format::V2 | Format::V1 => Box::new(legacy::Reader::new(source, format, options)?),
    })
}

/// What a file that is not a diff seems to hold, for a message that refuses to replace it:
/// a few signatures that a disk image or a mistyped name commonly has.
pub fn describe_contents(file: &OpenFile) -> String {
    let mut start = vec![0u8; file.size.min(4096) as usize];
    if file.read_at(0, &mut start).is_err() {
        return format!("{} bytes that cannot be read", file.size);
    }
    let at = |offset: usize, signature: &[u8]| {
        start.get(offset..offset + signature.len()) == Some(signature)
    };
    let what = if at(1080, &[0x53, 0xef]) {
        "an ext2/3/4 filesystem"
    } else if at(0, b"XFSB") {
        "an XFS filesystem"
    } else if at(3, b"NTFS    ") {
        "an NTFS filesystem"
    } else if at(512, b"EFI PART") {
        "a disk image with a GPT partition table"
    } else if at(510, &[0x55, 0xaa]) {
        "a disk image or FAT filesystem (boot signature)"
    } else if at(0, digest::SIGNATURE) {
        "a diff-dd digest"
    } else if at(0, b"diff-dd image") {
        "a diff-dd image of a version this diff-dd cannot read"
    } else if at(0, &[0x1f, 0x8b]) || at(0, &[0x28, 0xb5, 0x2f, 0xfd]) || at(0, b"\xfd7zXZ\0") {
        "compressed data"
    } else if is_text(&start) {
        "text"
    } else {
        "data diff-dd does not recognize"
    };
    format!("{what}, {}", units::size(file.size))
}

/// UTF-8 without control characters but white space (the last character may be cut off).
fn is_text(start: &[u8]) -> bool {
    let valid = match std::str::from_utf8(start) {
        Ok(text) => text,
        Err(error) if start.len() - error.valid_up_to() < 4 && error.error_len().is_none() => {
            std::str::from_utf8(&start[..error.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return false,
    };
    !valid.is_empty()
        && valid
            .chars()
            .all(|char| !char.is_control() || char.is_ascii_whitespace())
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

impl Part {
    /// The record this part belongs to, if any.
    fn record(self) -> Option<u64> {
        match self {
            Part::RecordHeader(index) | Part::RecordData(index) => Some(index),
            _ => None,
        }
    }
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
/// reported as truncated at a named place. Reads are positional (through its own buffer, not
/// the file's offset), so that several readers of one diff can go through it at once: the
/// overlay of a chain keeps one per reading thread.
pub struct DiffSource<'a> {
    diff: &'a OpenFile,
    /// Bytes of the file from `buffer_start`, read ahead.
    buffer: IoBuffer,
    buffer_start: u64,
    /// How much the next read takes: it grows while reading goes on where the last read ended
    /// and falls back after a skip, so that a reader of headers alone holds little memory.
    read_size: u64,
    position: u64,
    /// Hashes every byte read, while no byte has been skipped.
    file_hasher: Option<StreamHasher>,
}

/// The most a [`DiffSource`] reads at once, and the least.
const SOURCE_BUFFER: u64 = 64 << 10;
const SOURCE_FIRST_READ: u64 = 4 << 10;

impl<'a> DiffSource<'a> {
    pub fn new(diff: &'a OpenFile, hash_file: bool) -> Result<DiffSource<'a>> {
        Ok(DiffSource {
            diff,
            buffer: IoBuffer::default(),
            buffer_start: 0,
            read_size: SOURCE_FIRST_READ,
            position: 0,
            file_hasher: hash_file.then(StreamHasher::new),
        })
    }

    /// BLAKE3 of the whole file, when every byte of it was read and none skipped.
    pub fn file_hash(&self) -> Option<blake3::Hash> {
        let hasher = self.file_hasher.as_ref()?;
        (self.position == self.size()).then(|| hasher.finalize())
    }

    pub fn position(&self) -> u64 {
        self.position
    }

    pub fn size(&self) -> u64 {
        self.diff.size
    }

    /// The error for a fault in the diff, in `record` when it is one record's.
    pub fn invalid(&self, record: Option<u64>, reason: impl Into<String>) -> Error {
        Error::invalid_diff(&self.diff.path, record, reason)
    }

    fn require(&self, length: u64, what: Part) -> Result<()> {
        if self.size() - self.position < length {
            return Err(self.invalid(
                what.record(),
                format!("truncated: it ends at byte {} inside {what}", self.size()),
            ));
        }
        Ok(())
    }

    /// Where in the buffer the position is, reading more when nothing is buffered there: the
    /// buffer never ends at the position before the end of the file (which
    /// [`DiffSource::require`] has ruled out).
    fn fill(&mut self) -> Result<usize> {
        let buffer_end = self.buffer_start + self.buffer.len() as u64;
        if self.position < self.buffer_start || self.position >= buffer_end {
            self.read_size = if self.position == buffer_end {
                (self.read_size * 2).min(SOURCE_BUFFER)
            } else {
                SOURCE_FIRST_READ
            };
            let length = self.read_size.min(self.size() - self.position) as usize;
            self.buffer.resize(length);
            self.buffer_start = self.position;
            if let Err(error) = self.diff.read_at(self.position, &mut self.buffer) {
                self.buffer.clear();
                return Err(error);
            }
        }
        Ok((self.position - self.buffer_start) as usize)
    }

    /// Reads `out.len()` bytes of `what` (named in the error when the diff ends first).
    pub fn read_exact(&mut self, out: &mut [u8], what: Part) -> Result<()> {
        let mut filled = 0;
        self.read_through(out.len() as u64, what, |bytes| {
            out[filled..filled + bytes.len()].copy_from_slice(bytes);
            filled += bytes.len();
        })
    }

    /// Reads `length` bytes of `what` and hands them to `visit` in the pieces the buffer
    /// holds, without copying them anywhere first.
    pub fn read_through(
        &mut self,
        length: u64,
        what: Part,
        mut visit: impl FnMut(&[u8]),
    ) -> Result<()> {
        self.require(length, what)?;
        let mut remaining = length;
        while remaining > 0 {
            let from = self.fill()?;
            let buffered = &self.buffer[from..];
            let piece = &buffered[..buffered.len().min(remaining as usize)];
            visit(piece);
            if let Some(hasher) = &mut self.file_hasher {
                hasher.update(piece);
            }
            let taken = piece.len() as u64;
            self.position += taken;
            remaining -= taken;
        }
        Ok(())
    }

    /// Moves past `length` bytes of `what` without reading them.
    pub fn skip(&mut self, length: u64, what: Part) -> Result<()> {
        self.require(length, what)?;
        self.position += length;
        self.file_hasher = None;
        Ok(())
    }
}

/// What a full pass over a diff found.
#[derive(Debug, Clone)]
pub struct Scan {
    pub info: DiffInfo,
    pub totals: Totals,
    /// The longest record: no buffer for one record needs more.
    pub longest_record: u64,
    /// BLAKE3 of the whole file, when the scan read every byte with `hash_file`.
    pub file_hash: Option<blake3::Hash>,
}

/// Reads a whole diff, checking everything the options allow, and calls `on_record` for each
/// record header in order. With `check_data`, a native diff's records are decoded and checked
/// on the engine's pool while the next ones are read; a fault is still reported at the first
/// place it is, as a reading in order would.
pub fn scan(
    diff: &OpenFile,
    options: &ReadOptions,
    mut on_record: impl FnMut(&Record),
) -> Result<Scan> {
    let mut reader = open_reader(diff, options)?;
    let mut longest_record = 0;
    let mut on_record = |record: &Record| {
        longest_record = longest_record.max(record.length);
        on_record(record);
    };
    if options.check_data && reader.info().format == Format::V3 {
        check_on_pool(diff, reader.as_mut(), &mut on_record)?;
    } else {
        while let Some(record) = reader.next_record()? {
            on_record(&record);
        }
    }
    let totals = reader
        .totals()
        .cloned()
        .ok_or_else(|| Error::invalid_diff(&diff.path, None, "it ended without a trailer"))?;
    Ok(Scan {
        info: reader.info().clone(),
        totals,
        longest_record,
        file_hash: reader.file_hash(),
    })
}

/// Reads every record of `reader` and checks its data on the pool.
fn check_on_pool(
    diff: &OpenFile,
    reader: &mut dyn DiffReader,
    on_record: &mut dyn FnMut(&Record),
) -> Result<()> {
    let path = diff.path.as_path();
    // The buffers of the run checked last, for the next run.
    let spare = Cell::new(None);
    pool::scoped(
        engine::worker_count() as usize,
        StoredRecords::IN_FLIGHT,
        v3::Decoder::default,
        |decoder, mut records: StoredRecords| (records.check(path, decoder), records),
        |pool| {
            let mut take = |(checked, records): (Result<()>, StoredRecords)| {
                spare.set(Some(records));
                checked
            };
            give_runs(reader, pool, on_record, &spare, &mut take)?;
            pool.finish(&mut take)
        },
    )
}

/// Reads the rest of `reader`'s records in runs and gives each run to `pool` as it fills,
/// then the last; `take` gets the pool's results in order, as `give` hands them over, and puts
/// each run it is done with in `spare` for its buffers. A fault in reading is returned after
/// the runs before it are taken, so that a fault in them, which comes first, is the error.
pub fn give_runs<R>(
    reader: &mut dyn DiffReader,
    pool: &mut Pool<StoredRecords, R>,
    on_record: &mut dyn FnMut(&Record),
    spare: &Cell<Option<StoredRecords>>,
    take: &mut impl FnMut(R) -> Result<()>,
) -> Result<()> {
    let mut records = StoredRecords::default();
    loop {
        let taken = reader.next_record().and_then(|record| match record {
            Some(record) => {
                on_record(&record);
                records.take(reader, record).map(|()| true)
            }
            None => Ok(false),
        });
        match taken {
            Ok(true) if records.is_full() => {
                let full = std::mem::take(&mut records);
                pool.give(full, take)?;
                records = spare.take().map(StoredRecords::emptied).unwrap_or_default();
            }
            Ok(true) => {}
            Ok(false) => break,
            Err(error) => {
                // The records before the fault, checked first: one of them may hold an
                // earlier fault (a damaged record makes the whole-diff hash fail too).
                if !records.records.is_empty() {
                    pool.give(records, take)?;
                }
                return Err(pool.finish_after(error, take));
            }
        }
    }
    if !records.records.is_empty() {
        pool.give(records, take)?;
    }
    Ok(())
}

/// A run of records taken from a reader with their data as stored, to be decoded and checked
/// together on another thread: records cross between threads in runs of up to
/// [`StoredRecords::SIZE`] bytes of data, not one by one. Their data is had only through
/// [`StoredRecords::data`], once [`StoredRecords::check`] has checked all of it.
#[derive(Default)]
pub struct StoredRecords {
    pub records: Vec<Record>,
    /// Their data as stored, back to back.
    stored: Vec<u8>,
    /// The decoded data of the zero and compressed ones, back to back.
    plain: Vec<u8>,
    /// Per record, once checked: where its data is (in `plain` or else in `stored`), or None
    /// for a long record, whose data is not held.
    checked: Vec<Option<(bool, std::ops::Range<usize>)>>,
    length: u64,
}

impl StoredRecords {
    /// A run is full once its records hold this much data, decoded: so a run's buffers hold
    /// at most this much beside one record. Small enough that a diff of a few tens of MB is
    /// cut into enough runs to keep both threads busy (4 MiB runs left restore's check of a
    /// 21 MB diff waiting on its first and last runs: 47-56 ms against 34-46 ms).
    pub const SIZE: u64 = 1 << 20;
    /// Runs on the pool at once: one per thread on two cores.
    pub const IN_FLIGHT: u64 = 2;

    /// This run's buffers, for a new run.
    pub fn emptied(mut self) -> StoredRecords {
        self.records.clear();
        self.stored.clear();
        self.plain.clear();
        self.checked.clear();
        self.length = 0;
        self
    }

    /// Takes `record`, the reader's open record, and its data as stored. A record longer than
    /// [`LONG_RECORD`] is taken without its data, which is never held whole: the reader
    /// checks it in pieces as it moves past it (when it checks data), and whoever acts on it
    /// reads it in pieces ([`RecordPieces`]).
    pub fn take(&mut self, reader: &mut dyn DiffReader, record: Record) -> Result<()> {
        if record.length > LONG_RECORD {
            self.records.push(record);
            self.length = self.length.max(Self::SIZE);
            return Ok(());
        }
        reader.take_stored(&record, &mut self.stored)?;
        self.length += record.length;
        self.records.push(record);
        Ok(())
    }

    pub fn is_full(&self) -> bool {
        self.length >= Self::SIZE
    }

    /// Decodes every record and checks it against its hash (for records that have one), in
    /// order; the first fault is the error. `diff` names the diff in it.
    pub fn check(&mut self, diff: &Path, decoder: &mut v3::Decoder) -> Result<()> {
        self.checked.clear();
        self.plain.clear();
        let mut at = 0;
        for record in &self.records {
            if record.length > LONG_RECORD {
                // Checked in pieces by the reader; its data is not here.
                self.checked.push(None);
                continue;
            }
            let in_file = record.stored.bytes_in_file(record.length) as usize;
            let stored = at..at + in_file;
            at += in_file;
            let invalid = |reason: String| Error::invalid_diff(diff, Some(record.index), reason);
            let (decoded, range) = match record.stored {
                Stored::Raw => (false, stored),
                Stored::Zero => {
                    let start = self.plain.len();
                    self.plain.resize(start + record.length as usize, 0);
                    (true, start..self.plain.len())
                }
                Stored::Zstd { .. } => {
                    let start = self.plain.len();
                    self.plain.resize(start + record.length as usize, 0);
                    decoder
                        .decode_zstd(
                            record.index,
                            record.offset,
                            &self.stored[stored],
                            &mut self.plain[start..],
                        )
                        .map_err(invalid)?;
                    (true, start..self.plain.len())
                }
            };
            let data = if decoded {
                &self.plain[range.clone()]
            } else {
                &self.stored[range.clone()]
            };
            check_record_data(diff, record, data)?;
            self.checked.push(Some((decoded, range)));
        }
        Ok(())
    }

    /// The data of the `position`th record of the run, once the run is checked: `Held` for a
    /// record held whole, `Long` for one that is read in pieces ([`RecordPieces`]).
    pub fn data(&self, position: usize) -> Option<RecordData<'_>> {
        let Some((decoded, range)) = self.checked.get(position)? else {
            return Some(RecordData::Long);
        };
        Some(RecordData::Held(if *decoded {
            &self.plain[range.clone()]
        } else {
            &self.stored[range.clone()]
        }))
    }
}

/// Where a checked record's data is.
#[derive(Debug, Clone, Copy)]
pub enum RecordData<'a> {
    /// In memory, whole.
    Held(&'a [u8]),
    /// Only in the diff: a record longer than [`LONG_RECORD`], read in pieces.
    Long,
}

/// The data of `record`, a native record of `diff`, read where the diff stores it (whatever
/// any reader of the diff is doing meanwhile), decoded and checked against its hash, into
/// `out`; `stored` holds a compressed record's frame on the way. So a record can be read
/// again, or out of turn, by the overlay of a chain.
pub fn load_record(
    diff: &OpenFile,
    record: &Record,
    decoder: &mut v3::Decoder,
    stored: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let invalid = |reason: String| Error::invalid_diff(&diff.path, Some(record.index), reason);
    require_data_in_file(diff, record)?;
    let length = usize::try_from(record.length).unwrap_or(usize::MAX);
    out.clear();
    match record.stored {
        Stored::Raw => {
            out.resize(length, 0);
            diff.read_at(record.data_at, out)?;
        }
        Stored::Zero => out.resize(length, 0),
        Stored::Zstd { stored_length } => {
            stored.resize(stored_length as usize, 0);
            diff.read_at(record.data_at, stored)?;
            out.resize(length, 0);
            decoder
                .decode_zstd(record.index, record.offset, stored, out)
                .map_err(invalid)?;
        }
    }
    check_record_data(&diff.path, record, out)
}

/// Fails, naming the record, unless `diff` holds all of `record`'s stored data where the
/// record says it is: checked before a record is read out of turn, by where its data lies.
fn require_data_in_file(diff: &OpenFile, record: &Record) -> Result<()> {
    let in_file = record.stored.bytes_in_file(record.length);
    if record
        .data_at
        .checked_add(in_file)
        .is_none_or(|end| end > diff.size)
    {
        return Err(Error::invalid_diff(
            &diff.path,
            Some(record.index),
            format!(
                "record {}: its data lies past the end of the file (byte {})",
                record.index, diff.size
            ),
        ));
    }
    Ok(())
}

/// Fails, naming the record, unless `data` (decoded) matches `record`'s hash, when it has one.
fn check_record_data(diff: &Path, record: &Record, data: &[u8]) -> Result<()> {
    match record.hashes {
        Some(hashes) if blake3::hash(data) != hashes.new => Err(Error::invalid_diff(
            diff,
            Some(record.index),
            format!(
                "record {} (offset {}): its data does not match its BLAKE3 hash",
                record.index, record.offset
            ),
        )),
        _ => Ok(()),
    }
}
