//! The native diff format, version 3 of the diff-dd image family. man/diff-dd.5 is its
//! specification; this file is the one implementation, and the golden vectors in tests/ pin it.
//!
//! ```text
//! signature   "diff-dd image" 0x03                                  14 bytes
//! header      u32 LE length, bincode Header                         framed
//! records     u32 LE length, bincode Entry::Record; then the data   framed, repeated
//! trailer     u32 LE length, bincode Entry::Trailer                 framed
//! footer      u64 LE trailer offset, BLAKE3 of the trailer frame,
//!             "diff-dd" 0x03                                        48 bytes
//! ```
//!
//! bincode 2 with fixed-width little-endian integers: enum variants are u32, strings a u64
//! length and UTF-8 bytes, hashes 32 plain bytes. Every byte is covered: the signature and the
//! footer by exact checks, the header and records by the whole-diff hash in the trailer (and
//! record data by its own hash too), the trailer by the hash in the footer.

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use super::{
    BaseHash, BaseHashing, DiffInfo, DiffReader, DiffSource, Format, ImageHashes, Part, Record,
    RecordHashes, Stored, Totals, SIGNATURE,
};
use crate::device::OpenFile;
use crate::engine::StreamHasher;
use crate::error::{Error, Result};

pub const VERSION: u8 = 3;

/// No header, record header or trailer frame is longer; checked before anything is allocated.
pub const MAX_FRAME: u32 = 4096;
/// The longest tool version string a writer puts in the header.
pub const MAX_TOOL_VERSION: usize = 256;
pub const FOOTER_LEN: usize = 48;
pub const END_MARK: &[u8; 8] = b"diff-dd\x03";
/// The largest sector size and record size limit a header may state. The format's own limit,
/// apart from what the command line accepts, so that no change to the command line can make
/// an existing diff unreadable.
pub const MAX_RECORD_SIZE: u64 = 1 << 30;

/// The record size limit diff-dd writes: whole sectors up to 4 MiB (one sector when a sector
/// is larger). It depends on the sector size alone, never on the read buffer, so that `-b`
/// cannot change a diff; and a record always fits in a small buffer to be checked before it
/// is written.
pub fn record_size_limit(sector_size: u64) -> u64 {
    const TARGET: u64 = 4 << 20;
    (TARGET / sector_size).max(1) * sector_size
}

/// The framed header after the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub sector_size: u64,
    pub image_size: u64,
    pub record_size_limit: u64,
    /// Seconds since 1970-01-01 UTC (SOURCE_DATE_EPOCH when set, for reproducible diffs).
    pub created_unix_seconds: i64,
    pub tool_version: String,
    pub data_encoding: DataEncoding,
}

impl Header {
    /// The header this version of diff-dd writes, its version as the tool's; record data
    /// compressed with zstd, or raw.
    pub fn of_this_version(
        sector_size: u64,
        image_size: u64,
        record_size_limit: u64,
        created_unix_seconds: i64,
        compressed: bool,
    ) -> Header {
        Header {
            sector_size,
            image_size,
            record_size_limit,
            created_unix_seconds,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            data_encoding: match compressed {
                true => DataEncoding::Zstd,
                false => DataEncoding::Raw,
            },
        }
    }
}

/// How the writer stored record data: `Raw` diffs hold raw and zero records only; `Zstd`
/// diffs may also hold records compressed with zstd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataEncoding {
    Raw,
    Zstd,
}

impl DataEncoding {
    pub fn name(self) -> &'static str {
        match self {
            DataEncoding::Raw => "raw",
            DataEncoding::Zstd => "zstd",
        }
    }
}

/// A frame after the header: a record (followed by what it stores) or the trailer (last).
/// The variants' numbers are their order: new kinds of record come last, so that every diff
/// written before still reads the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Entry {
    /// 0: `length` bytes of raw data follow.
    Record(RecordHeader),
    /// 1: the last frame.
    Trailer(Trailer),
    /// 2: nothing follows; the data is `length` zero bytes.
    ZeroRecord(RecordHeader),
    /// 3: `stored_length` bytes of one zstd frame follow, which decode to `length` bytes.
    ZstdRecord(ZstdRecordHeader),
    /// 4 to 6: records 0, 2 and 3 whose base hash is taken over blocks
    /// ([`BaseHashing::Blocks`]), as a backup from a digest writes them.
    BlockRecord(BlockRecordHeader),
    BlockZeroRecord(BlockRecordHeader),
    BlockZstdRecord(BlockZstdRecordHeader),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BlockRecordHeader {
    offset: u64,
    length: u64,
    block_size: u64,
    new_blake3: Digest,
    base_blake3: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BlockZstdRecordHeader {
    offset: u64,
    length: u64,
    stored_length: u64,
    block_size: u64,
    new_blake3: Digest,
    base_blake3: Digest,
}

/// What every kind of record frame says, whatever its variant.
#[derive(Debug, Clone, Copy)]
struct RecordParts {
    offset: u64,
    length: u64,
    stored: Stored,
    new_blake3: Digest,
    base: BaseHash,
}

impl RecordParts {
    /// The frame that says this.
    fn entry(self) -> Entry {
        let (offset, length, new_blake3) = (self.offset, self.length, self.new_blake3);
        let base_blake3 = Digest::from(self.base.value);
        match (self.base.hashing, self.stored) {
            (BaseHashing::Bytes, stored) => {
                let header = RecordHeader {
                    offset,
                    length,
                    new_blake3,
                    base_blake3,
                };
                match stored {
                    Stored::Raw => Entry::Record(header),
                    Stored::Zero => Entry::ZeroRecord(header),
                    Stored::Zstd { stored_length } => Entry::ZstdRecord(ZstdRecordHeader {
                        offset,
                        length,
                        stored_length,
                        new_blake3,
                        base_blake3,
                    }),
                }
            }
            (BaseHashing::Blocks { block_size }, stored) => {
                let header = BlockRecordHeader {
                    offset,
                    length,
                    block_size,
                    new_blake3,
                    base_blake3,
                };
                match stored {
                    Stored::Raw => Entry::BlockRecord(header),
                    Stored::Zero => Entry::BlockZeroRecord(header),
                    Stored::Zstd { stored_length } => {
                        Entry::BlockZstdRecord(BlockZstdRecordHeader {
                            offset,
                            length,
                            stored_length,
                            block_size,
                            new_blake3,
                            base_blake3,
                        })
                    }
                }
            }
        }
    }

    /// What a record frame says; None for the trailer.
    fn of(entry: &Entry) -> Option<RecordParts> {
        let bytes = |header: &RecordHeader, stored| RecordParts {
            offset: header.offset,
            length: header.length,
            stored,
            new_blake3: header.new_blake3,
            base: BaseHash::of_bytes(header.base_blake3.into()),
        };
        let blocks = |header: &BlockRecordHeader, stored| RecordParts {
            offset: header.offset,
            length: header.length,
            stored,
            new_blake3: header.new_blake3,
            base: BaseHash {
                value: header.base_blake3.into(),
                hashing: BaseHashing::Blocks {
                    block_size: header.block_size,
                },
            },
        };
        Some(match entry {
            Entry::Record(header) => bytes(header, Stored::Raw),
            Entry::ZeroRecord(header) => bytes(header, Stored::Zero),
            Entry::ZstdRecord(header) => RecordParts {
                offset: header.offset,
                length: header.length,
                stored: Stored::Zstd {
                    stored_length: header.stored_length,
                },
                new_blake3: header.new_blake3,
                base: BaseHash::of_bytes(header.base_blake3.into()),
            },
            Entry::BlockRecord(header) => blocks(header, Stored::Raw),
            Entry::BlockZeroRecord(header) => blocks(header, Stored::Zero),
            Entry::BlockZstdRecord(header) => RecordParts {
                offset: header.offset,
                length: header.length,
                stored: Stored::Zstd {
                    stored_length: header.stored_length,
                },
                new_blake3: header.new_blake3,
                base: BaseHash {
                    value: header.base_blake3.into(),
                    hashing: BaseHashing::Blocks {
                        block_size: header.block_size,
                    },
                },
            },
            Entry::Trailer(_) => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ZstdRecordHeader {
    offset: u64,
    length: u64,
    stored_length: u64,
    new_blake3: Digest,
    base_blake3: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RecordHeader {
    offset: u64,
    length: u64,
    new_blake3: Digest,
    base_blake3: Digest,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Trailer {
    extent_count: u64,
    changed_bytes: u64,
    base_blake3: Digest,
    image_blake3: Digest,
    /// BLAKE3 of every byte of the diff before the trailer frame.
    diff_blake3: Digest,
}

/// A BLAKE3 hash in a frame: its 32 bytes as they are. Serialized as four little-endian u64,
/// which bincode writes as exactly the same 32 bytes: serde hands bincode a `[u8; 32]` one
/// byte at a time, which made listing a million records three times slower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Digest(pub(super) [u8; 32]);

impl From<blake3::Hash> for Digest {
    fn from(hash: blake3::Hash) -> Digest {
        Digest(*hash.as_bytes())
    }
}

impl From<Digest> for blake3::Hash {
    fn from(digest: Digest) -> blake3::Hash {
        blake3::Hash::from_bytes(digest.0)
    }
}

impl Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut words = [0u64; 4];
        for (word, bytes) in words.iter_mut().zip(self.0.chunks_exact(8)) {
            *word = u64::from_le_bytes(bytes.try_into().unwrap_or_default()); // chunks_exact(8): always 8
        }
        words.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let words = <[u64; 4]>::deserialize(deserializer)?;
        let mut bytes = [0u8; 32];
        for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        Ok(Digest(bytes))
    }
}

pub(super) fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
        .with_limit::<{ MAX_FRAME as usize }>()
}

/// A value framed as its u32 LE length and its bincode bytes.
pub(super) fn frame<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let payload =
        bincode::serde::encode_to_vec(value, bincode_config()).map_err(io::Error::other)?;
    // MAX_FRAME, the encoder's limit, fits a u32.
    let length = payload.len() as u32;
    let mut framed = Vec::with_capacity(4 + payload.len());
    framed.extend_from_slice(&length.to_le_bytes());
    framed.extend_from_slice(&payload);
    Ok(framed)
}

/// Decides how each record is stored and compresses it: the part of writing a record that
/// needs no place in the file, so that records can be encoded on several threads
/// ([`crate::engine::pool`]) and written in order by one [`Writer`].
pub struct Encoder {
    /// Set for a `Zstd` diff.
    compressor: Option<zstd::bulk::Compressor<'static>>,
}

/// How one record is stored, as [`Encoder::encode`] decided: written by
/// [`Writer::write_encoded`] with the data and the compressed bytes it was encoded from.
#[derive(Debug)]
pub struct EncodedRecord {
    parts: RecordParts,
}

impl EncodedRecord {
    /// The length of its data.
    pub fn length(&self) -> u64 {
        self.parts.length
    }

    /// The compressed bytes it stores (appended by [`Encoder::encode`]).
    pub fn compressed_bytes(&self) -> u64 {
        match self.parts.stored {
            Stored::Zstd { stored_length } => stored_length,
            _ => 0,
        }
    }
}

impl Encoder {
    /// An encoder for diffs of `encoding`; a `Zstd` diff is compressed at zstd's `level`.
    pub fn new(encoding: DataEncoding, level: i32) -> io::Result<Encoder> {
        let compressor = match encoding {
            DataEncoding::Raw => None,
            DataEncoding::Zstd => Some(zstd::bulk::Compressor::new(level)?),
        };
        Ok(Encoder { compressor })
    }

    /// Encodes the record of `data` at `offset`: a zero record when `data` is all zeros,
    /// compressed when the diff is and that saves space (its compressed bytes appended to
    /// `compressed`), raw otherwise.
    pub fn encode(
        &mut self,
        offset: u64,
        data: &[u8],
        base: BaseHash,
        compressed: &mut Vec<u8>,
    ) -> io::Result<EncodedRecord> {
        let length = data.len() as u64;
        let mut parts = RecordParts {
            offset,
            length,
            stored: Stored::Raw,
            new_blake3: Digest::from(blake3::hash(data)),
            base,
        };
        if data.iter().all(|&byte| byte == 0) {
            parts.stored = Stored::Zero;
            return Ok(EncodedRecord { parts });
        }
        if let Some(compressor) = &mut self.compressor {
            let start = compressed.len();
            compressed.reserve(zstd::zstd_safe::compress_bound(data.len()));
            // A cursor at the end appends (zstd's WriteBuf for a Vec writes from its start).
            let mut cursor = io::Cursor::new(&mut *compressed);
            cursor.set_position(start as u64);
            let stored = compressor.compress_to_buffer(data, &mut cursor)?;
            // Only when it saves space: a record never stores more than its data. And only a
            // frame the reader takes: levels 1 to 19 always make one, but should a zstd
            // release not, the record is stored raw rather than the diff refused.
            if (stored as u64) < length
                && check_zstd_frame_header(&compressed[start..], length).is_ok()
            {
                parts.stored = Stored::Zstd {
                    stored_length: stored as u64,
                };
                return Ok(EncodedRecord { parts });
            }
            compressed.truncate(start);
        }
        Ok(EncodedRecord { parts })
    }
}

/// Writes a native diff: `new`, then one record per extent in order (`write_record`, or
/// `write_encoded` for records encoded elsewhere), then `finish`.
pub struct Writer<W: Write> {
    out: W,
    /// For `write_record`.
    encoder: Encoder,
    compressed: Vec<u8>,
    position: u64,
    diff_hasher: StreamHasher,
    extent_count: u64,
    changed_bytes: u64,
    /// The long record being written in pieces, if any.
    long: Option<LongRecord>,
}

/// A record written in pieces ([`Writer::begin_long_record`]).
struct LongRecord {
    length: u64,
    data_left: u64,
    hasher: blake3::Hasher,
    expected: blake3::Hash,
    zero: bool,
}

impl<W: Write> Writer<W> {
    /// A writer for `header`; a `Zstd` diff is compressed at zstd's `level`.
    pub fn new(out: W, header: &Header, level: i32) -> io::Result<Writer<W>> {
        let mut writer = Writer {
            out,
            encoder: Encoder::new(header.data_encoding, level)?,
            compressed: Vec::new(),
            position: 0,
            diff_hasher: StreamHasher::new(),
            extent_count: 0,
            changed_bytes: 0,
            long: None,
        };
        writer.put(SIGNATURE)?;
        writer.put(&[VERSION])?;
        writer.put(&frame(header)?)?;
        Ok(writer)
    }

    /// Encodes and writes one record (see [`Encoder::encode`]). Returns the bytes its data
    /// takes in the diff.
    pub fn write_record(&mut self, offset: u64, data: &[u8], base: BaseHash) -> io::Result<u64> {
        let mut compressed = std::mem::take(&mut self.compressed);
        compressed.clear();
        let written = self
            .encoder
            .encode(offset, data, base, &mut compressed)
            .and_then(|record| self.write_encoded(&record, data, &compressed));
        self.compressed = compressed;
        written
    }

    /// Writes the next record, `record` as encoded from `data` into `compressed`. Returns the
    /// bytes its data takes in the diff.
    pub fn write_encoded(
        &mut self,
        record: &EncodedRecord,
        data: &[u8],
        compressed: &[u8],
    ) -> io::Result<u64> {
        let length = record.parts.length;
        let stored = match record.parts.stored {
            Stored::Raw => data,
            Stored::Zero => &[][..],
            Stored::Zstd { stored_length } => {
                compressed.get(..stored_length as usize).ok_or_else(|| {
                    io::Error::other("a record was written without its compressed bytes")
                })?
            }
        };
        if length != data.len() as u64 {
            return Err(io::Error::other(
                "a record was written with other data than it was encoded from",
            ));
        }
        self.no_long_record_open()?;
        self.extent_count += 1;
        self.changed_bytes += length;
        self.put(&frame(&record.parts.entry())?)?;
        self.put(stored)?;
        Ok(stored.len() as u64)
    }

    /// Begins a record too long to be held whole ([`super::LONG_RECORD`]), from what the
    /// caller computed over its data in a first pass: its hash, the base hash, and whether it
    /// is all zeros (then it is a zero record and takes no data). A raw one's data follows in
    /// pieces ([`Writer::put_long_data`]), hashed again as it goes and compared at
    /// [`Writer::end_long_record`], so that a second pass that read other bytes than the
    /// first is an error, never a record that does not match its hash.
    pub fn begin_long_record(
        &mut self,
        offset: u64,
        length: u64,
        new_hash: blake3::Hash,
        base: BaseHash,
        zero: bool,
    ) -> io::Result<()> {
        self.no_long_record_open()?;
        let (stored, data_left) = match zero {
            true => (Stored::Zero, 0),
            false => (Stored::Raw, length),
        };
        let parts = RecordParts {
            offset,
            length,
            stored,
            new_blake3: Digest::from(new_hash),
            base,
        };
        self.extent_count += 1;
        self.changed_bytes += length;
        self.put(&frame(&parts.entry())?)?;
        self.long = Some(LongRecord {
            length,
            data_left,
            hasher: blake3::Hasher::new(),
            expected: new_hash,
            zero,
        });
        Ok(())
    }

    /// The next piece of the long record begun last.
    pub fn put_long_data(&mut self, piece: &[u8]) -> io::Result<()> {
        let long = self
            .long
            .as_mut()
            .filter(|long| piece.len() as u64 <= long.data_left && !long.zero)
            .ok_or_else(|| io::Error::other("a long record was given more data than it holds"))?;
        long.data_left -= piece.len() as u64;
        long.hasher.update(piece);
        self.put(piece)
    }

    /// Ends the long record begun last. Returns the bytes its data takes in the diff.
    pub fn end_long_record(&mut self) -> io::Result<u64> {
        let long = self.long.take();
        match long {
            Some(long) if long.zero => Ok(0),
            Some(long) if long.data_left == 0 && long.hasher.finalize() == long.expected => {
                Ok(long.length)
            }
            _ => Err(io::Error::other(
                "a long record's data changed between the pass that hashed it and the one that wrote it",
            )),
        }
    }

    /// Writes the trailer and footer, flushes, and hands back the output.
    pub fn finish(mut self, hashes: ImageHashes) -> io::Result<W> {
        self.no_long_record_open()?;
        let trailer_offset = self.position;
        let trailer = frame(&Entry::Trailer(Trailer {
            extent_count: self.extent_count,
            changed_bytes: self.changed_bytes,
            base_blake3: Digest::from(hashes.base),
            image_blake3: Digest::from(hashes.image),
            diff_blake3: Digest::from(self.diff_hasher.finalize()),
        }))?;
        self.out.write_all(&trailer)?;
        let mut footer = Vec::with_capacity(FOOTER_LEN);
        footer.extend_from_slice(&trailer_offset.to_le_bytes());
        footer.extend_from_slice(blake3::hash(&trailer).as_bytes());
        footer.extend_from_slice(END_MARK);
        self.out.write_all(&footer)?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Fails while a long record is open: nothing else may come between its pieces.
    fn no_long_record_open(&self) -> io::Result<()> {
        match self.long {
            Some(_) => Err(io::Error::other("a long record was left open")),
            None => Ok(()),
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.diff_hasher.update(bytes);
        self.position += bytes.len() as u64;
        Ok(())
    }
}

/// What marks `diff`, whose first bytes `start` are not the signature, as a native diff all the
/// same, if anything: the footer's end mark in its last 8 bytes; a footer whose trailer offset
/// points at a frame that ends right at the footer and holds a trailer; or a start within 8
/// bits of the signature. A v1 diff has these only by a coincidence of its sector data, or
/// (the last) with a first offset of more than two exabytes, beyond any real device.
pub fn native_marks(diff: &OpenFile, start: &[u8]) -> Result<Option<&'static str>> {
    let near_signature = start.len() >= SIGNATURE.len()
        && SIGNATURE
            .iter()
            .zip(start)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum::<u32>()
            <= 8;
    if near_signature {
        return Ok(Some("its first bytes are within a few bits of it"));
    }
    let footer_len = FOOTER_LEN as u64;
    if diff.size < SIGNATURE.len() as u64 + 1 + footer_len {
        return Ok(None);
    }
    let footer_at = diff.size - footer_len;
    let mut footer = [0u8; FOOTER_LEN];
    diff.read_at(footer_at, &mut footer)?;
    if &footer[FOOTER_LEN - END_MARK.len()..] == END_MARK {
        return Ok(Some("it ends with the native footer's end mark"));
    }
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&footer[..8]);
    let trailer_at = u64::from_le_bytes(offset);
    if trailer_at >= footer_at || footer_at - trailer_at < 8 {
        return Ok(None);
    }
    let mut frame_start = [0u8; 8];
    diff.read_at(trailer_at, &mut frame_start)?;
    let length = u32::from_le_bytes([
        frame_start[0],
        frame_start[1],
        frame_start[2],
        frame_start[3],
    ]);
    let variant = u32::from_le_bytes([
        frame_start[4],
        frame_start[5],
        frame_start[6],
        frame_start[7],
    ]);
    let ends_at_footer = trailer_at + 4 + u64::from(length) == footer_at;
    Ok((ends_at_footer && variant == 1 && length <= MAX_FRAME)
        .then_some("its footer points at a trailer frame"))
}

/// Reads and checks a native diff. See [`DiffReader`].
pub struct Reader<'a> {
    source: DiffSource<'a>,
    /// Every byte is read and checked (see [`super::ReadOptions::check_data`]).
    check_data: bool,
    info: DiffInfo,
    header: Header,
    diff_hasher: StreamHasher,
    /// A compressed record's frame, and what it decodes to (reused from record to record).
    stored_frame: Vec<u8>,
    decoded: Vec<u8>,
    decoder: Decoder,
    next_index: u64,
    previous_end: u64,
    changed_bytes: u64,
    stored_bytes: u64,
    open_record: Option<OpenRecord>,
    totals: Option<Totals>,
    /// Keep the whole file's hash: the hash of the bytes before the trailer, which a read that
    /// checks data computes anyway, continued over the trailer and the footer.
    hash_file: bool,
    file_hash: Option<blake3::Hash>,
}

/// The record whose data is being read.
struct OpenRecord {
    index: u64,
    offset: u64,
    length: u64,
    /// Data not handed out yet.
    remaining: u64,
    stored: Stored,
    /// Bytes of the file this record still has to be read or skipped: for a raw record its
    /// unread data, for a compressed one its whole frame until it is decoded.
    stored_left: u64,
    hasher: blake3::Hasher,
    expected: blake3::Hash,
}

impl OpenRecord {
    /// Once all its data has been read: whether it matched the record's hash.
    fn check_hash(&self, source: &DiffSource<'_>) -> Result<()> {
        if self.remaining == 0 && self.hasher.finalize() != self.expected {
            return Err(source.invalid(
                Some(self.index),
                format!(
                    "record {} (offset {}): its data does not match its BLAKE3 hash",
                    self.index, self.offset
                ),
            ));
        }
        Ok(())
    }
}

/// How the open record is stored, if one is open.
fn record_stored(record: &Option<OpenRecord>) -> Option<Stored> {
    record.as_ref().map(|record| record.stored)
}

/// BLAKE3 of `length` zero bytes, without allocating them.
fn zeros_hash(length: u64) -> blake3::Hash {
    const ZEROS: [u8; 16 << 10] = [0; 16 << 10];
    let mut hasher = blake3::Hasher::new();
    let mut left = length;
    while left > 0 {
        let piece = left.min(ZEROS.len() as u64) as usize;
        hasher.update(&ZEROS[..piece]);
        left -= piece as u64;
    }
    hasher.finalize()
}

/// The magic number that opens a zstd frame of data (RFC 8878), read little-endian.
const ZSTD_FRAME_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames (RFC 8878) have any of these 16 magic numbers: the last 4 bits are free.
const ZSTD_SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
/// The largest window a compressed record's frame may ask for, 8 MiB: what zstd's levels 1 to
/// 19, all that diff-dd writes, use at most. It bounds what a decoder must hold, whatever a
/// crafted frame asks.
pub const MAX_ZSTD_WINDOW_LOG: u32 = 23;
/// The longest zstd frame header with its magic number: magic 4, descriptor 1, window 1,
/// dictionary ID 4, content size 8. [`check_zstd_frame_header`] needs no more.
pub const MAX_ZSTD_FRAME_HEADER: usize = 18;

/// What is wrong with the frame header at `frame_start`, the start of the stored bytes of a
/// compressed record of `length` bytes, if anything: the rules of man/diff-dd.5 (Records)
/// that the first bytes decide. The frame must be a zstd frame of data, not a skippable one;
/// need no dictionary; ask for a window of at most 8 MiB; and state no content size, or
/// `length`. It reads at most [`MAX_ZSTD_FRAME_HEADER`] bytes, so that a decoder that
/// streams the frame can check it before decoding any of it. That the stored bytes hold one
/// frame and nothing after it is checked by [`Decoder::decode_zstd`], which has them all.
pub fn check_zstd_frame_header(frame_start: &[u8], length: u64) -> Result<(), String> {
    let cut_short = || "its zstd frame header is cut short".to_string();
    let magic = match frame_start.first_chunk::<4>() {
        Some(magic) => u32::from_le_bytes(*magic),
        None => return Err(cut_short()),
    };
    if magic & !0xF == ZSTD_SKIPPABLE_MAGIC {
        return Err(
            "its stored bytes start with a zstd skippable frame, not with the frame of its data"
                .into(),
        );
    }
    if magic != ZSTD_FRAME_MAGIC {
        return Err(format!(
            "its stored bytes do not start with the zstd frame magic number 0xFD2FB528 but {magic:#010X}"
        ));
    }
    let descriptor = *frame_start.get(4).ok_or_else(cut_short)?;
    // RFC 8878, 3.1.1.1.1: content size flag (2 bits), single segment, unused, reserved,
    // checksum, dictionary ID flag (2 bits).
    let single_segment = descriptor & 0x20 != 0;
    if descriptor & 0x08 != 0 {
        return Err("its zstd frame header sets the reserved bit".into());
    }
    let window_bytes = usize::from(!single_segment);
    let dictionary_bytes = [0, 1, 2, 4][usize::from(descriptor & 0x03)];
    let content_size_bytes = match descriptor >> 6 {
        0 => usize::from(single_segment),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let header = frame_start
        .get(5..5 + window_bytes + dictionary_bytes + content_size_bytes)
        .ok_or_else(cut_short)?;
    let (window_descriptor, rest) = header.split_at(window_bytes);
    let (dictionary_id, content_size) = rest.split_at(dictionary_bytes);
    let little_endian = |bytes: &[u8]| {
        bytes
            .iter()
            .rev()
            .fold(0u64, |value, &byte| value << 8 | u64::from(byte))
    };
    let dictionary_id = little_endian(dictionary_id);
    if dictionary_id != 0 {
        return Err(format!(
            "its zstd frame needs dictionary {dictionary_id}; diff-dd uses none"
        ));
    }
    let content_size = match content_size.len() {
        0 => None,
        // A 2-byte field counts from 256 (RFC 8878, 3.1.1.1.4).
        2 => Some(little_endian(content_size) + 256),
        _ => Some(little_endian(content_size)),
    };
    if let Some(size) = content_size.filter(|&size| size != length) {
        return Err(format!(
            "its zstd frame states a content size of {size} bytes, not its length {length}"
        ));
    }
    // RFC 8878, 3.1.1.1.2: a single-segment frame's window is its content, which it states.
    let window = match window_descriptor.first() {
        Some(&byte) => {
            let base = 1u64 << (10 + (byte >> 3));
            base + base / 8 * u64::from(byte & 0x07)
        }
        None => content_size.unwrap_or(length),
    };
    if window > 1 << MAX_ZSTD_WINDOW_LOG {
        return Err(format!(
            "its zstd frame asks for a window of {window} bytes, more than 8 MiB"
        ));
    }
    Ok(())
}

/// Decodes compressed records: one per thread, its zstd context made when first needed.
#[derive(Default)]
pub struct Decoder {
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl Decoder {
    /// Decodes `frame`, the zstd frame of record `index` at `offset`, into `out`, which it must
    /// fill exactly: `out` has the record's checked length, so a frame that decodes to more is
    /// an error, never a larger allocation. The reason is returned for the caller to name the
    /// diff.
    pub fn decode_zstd(
        &mut self,
        index: u64,
        offset: u64,
        frame: &[u8],
        out: &mut [u8],
    ) -> std::result::Result<(), String> {
        let length = out.len();
        let fault = |reason: String| format!("record {index} (offset {offset}): {reason}");
        check_zstd_frame_header(frame, length as u64).map_err(fault)?;
        // zstd decodes frame after frame, skipping skippable ones: only the end of the first
        // frame tells one frame from several.
        match zstd::zstd_safe::find_frame_compressed_size(frame) {
            Ok(size) if size == frame.len() => {}
            Ok(size) => {
                return Err(fault(format!(
                    "{} bytes follow its zstd frame ({size} bytes) in its stored bytes",
                    frame.len() - size
                )))
            }
            Err(code) => {
                return Err(fault(format!(
                    "its zstd frame cannot be delimited: {}",
                    zstd::zstd_safe::get_error_name(code)
                )))
            }
        }
        let decompressor = match &mut self.decompressor {
            Some(decompressor) => decompressor,
            None => {
                let mut decompressor =
                    zstd::bulk::Decompressor::new().map_err(|error| error.to_string())?;
                // Checked above already; zstd holds to it as well.
                decompressor
                    .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(
                        MAX_ZSTD_WINDOW_LOG,
                    ))
                    .map_err(|error| error.to_string())?;
                self.decompressor.insert(decompressor)
            }
        };
        let decoded = decompressor
            .decompress_to_buffer(frame, out)
            .map_err(|error| {
                format!("record {index} (offset {offset}): its zstd data cannot be decoded to {length} bytes: {error}")
            })?;
        if decoded != length {
            return Err(format!(
                "record {index} (offset {offset}): its zstd data decodes to {decoded} bytes, not {length}"
            ));
        }
        Ok(())
    }
}

impl<'a> Reader<'a> {
    /// Reads the signature and the header; `source` is at the start of the diff.
    /// With `check_data`, every byte is read and checked; with `hash_file` too, the hash of
    /// the whole file is kept for [`DiffReader::file_hash`].
    pub fn new(
        mut source: DiffSource<'a>,
        check_data: bool,
        hash_file: bool,
    ) -> Result<Reader<'a>> {
        let mut signature = [0u8; SIGNATURE.len() + 1];
        source.read_exact(&mut signature, Part::Signature)?;
        if signature[..SIGNATURE.len()] != SIGNATURE[..] || signature[SIGNATURE.len()] != VERSION {
            return Err(source.invalid(
                None,
                "it does not start with the signature of a version 3 diff",
            ));
        }
        let mut diff_hasher = StreamHasher::new();
        diff_hasher.update(&signature);
        let (header, framed) = read_frame::<Header>(&mut source, Part::Header)?;
        diff_hasher.update(&framed);
        check_header(&header).map_err(|reason| source.invalid(None, reason))?;
        let info = DiffInfo {
            format: Format::V3,
            sector_size: Some(header.sector_size),
            image_size: Some(header.image_size),
            record_size_limit: Some(header.record_size_limit),
            created_unix_seconds: Some(header.created_unix_seconds),
            tool_version: Some(header.tool_version.clone()),
            data_encoding: Some(header.data_encoding.name()),
        };
        Ok(Reader {
            source,
            check_data,
            hash_file: check_data && hash_file,
            file_hash: None,
            info,
            diff_hasher,
            stored_frame: Vec::new(),
            decoded: Vec::new(),
            decoder: Decoder::default(),
            next_index: 0,
            previous_end: 0,
            changed_bytes: 0,
            stored_bytes: 0,
            header,
            open_record: None,
            totals: None,
        })
    }

    /// Reads (and checks) or skips what is left of the open record's data.
    fn close_record(&mut self) -> Result<()> {
        let Some(record) = self.open_record.as_ref() else {
            return Ok(());
        };
        let what = Part::RecordData(record.index);
        match record.stored {
            // Zero and compressed records are checked whole when their data is first read.
            Stored::Zero | Stored::Zstd { .. } if record.remaining < record.length => {}
            Stored::Zero | Stored::Zstd { .. } if self.check_data => self.check_whole_record()?,
            Stored::Zero => {}
            Stored::Zstd { .. } => self.source.skip(record.stored_left, what)?,
            Stored::Raw if record.remaining == 0 => {}
            Stored::Raw if !self.check_data => self.source.skip(record.remaining, what)?,
            Stored::Raw => {
                let Some(record) = self.open_record.as_mut() else {
                    return Ok(());
                };
                let diff_hasher = &mut self.diff_hasher;
                self.source.read_through(record.remaining, what, |bytes| {
                    record.hasher.update(bytes);
                    diff_hasher.update(bytes);
                })?;
                record.remaining = 0;
                record.check_hash(&self.source)?;
            }
        }
        self.open_record = None;
        Ok(())
    }

    /// For a zero or compressed record whose data has not been read: reads its frame (if
    /// any), decodes it, and checks the whole data against the record's hash, so that no
    /// piece of it is handed out unchecked.
    fn check_whole_record(&mut self) -> Result<()> {
        let Some(record) = self.open_record.as_ref() else {
            return Ok(());
        };
        let (index, offset, length) = (record.index, record.offset, record.length);
        let found = match record.stored {
            Stored::Raw => return Ok(()),
            Stored::Zero => zeros_hash(length),
            Stored::Zstd { stored_length } if length > super::LONG_RECORD => {
                // Too long to hold whole: its frame goes into the whole-diff hash as it is
                // read (only a reader that checks data comes here: see close_record), and is
                // decoded in pieces from the file, which reads the frame a second time.
                let what = Part::RecordData(index);
                let diff_hasher = &mut self.diff_hasher;
                self.source
                    .read_through(stored_length, what, |bytes| diff_hasher.update(bytes))?;
                let record = Record {
                    index,
                    offset,
                    length,
                    hashes: None,
                    stored: Stored::Zstd { stored_length },
                    data_at: self.source.position() - stored_length,
                };
                let mut pieces = super::RecordPieces::new(self.source.diff, &record)?;
                let mut piece = vec![0u8; super::PIECE as usize];
                pieces.skip(length, &mut piece)?;
                pieces.data_hash()
            }
            Stored::Zstd { stored_length } => {
                self.stored_frame.resize(stored_length as usize, 0);
                self.source
                    .read_exact(&mut self.stored_frame, Part::RecordData(index))?;
                if self.check_data {
                    self.diff_hasher.update(&self.stored_frame);
                }
                self.decoded.resize(length as usize, 0);
                self.decoder
                    .decode_zstd(index, offset, &self.stored_frame, &mut self.decoded)
                    .map_err(|reason| self.source.invalid(Some(index), reason))?;
                blake3::hash(&self.decoded)
            }
        };
        if let Some(record) = self.open_record.as_mut() {
            record.stored_left = 0;
            if found != record.expected {
                return Err(self.source.invalid(
                    Some(index),
                    format!(
                        "record {index} (offset {offset}): its data does not match its BLAKE3 hash"
                    ),
                ));
            }
        }
        Ok(())
    }

    fn check_record(&self, index: u64, header: &RecordParts) -> Result<()> {
        let stored = header.stored;
        let info = &self.header;
        let fault = |reason: String| -> Result<()> {
            Err(self.source.invalid(
                Some(index),
                format!(
                    "record {index} (offset {}, {} bytes): {reason}",
                    header.offset, header.length
                ),
            ))
        };
        if header.length == 0 {
            return fault("it is empty".into());
        }
        if header.length > info.record_size_limit {
            return fault(format!(
                "longer than the record size limit {}",
                info.record_size_limit
            ));
        }
        if !header.offset.is_multiple_of(info.sector_size) {
            return fault(format!(
                "not aligned to the sector size {}",
                info.sector_size
            ));
        }
        if header.offset < self.previous_end {
            return fault(format!(
                "it starts before the end of the previous record (byte {})",
                self.previous_end
            ));
        }
        let Some(end) = header
            .offset
            .checked_add(header.length)
            .filter(|&end| end <= info.image_size)
        else {
            return fault(format!("it ends past the image size {}", info.image_size));
        };
        if !header.length.is_multiple_of(info.sector_size) && end != info.image_size {
            return fault(format!(
                "not a whole number of sectors of {} bytes, and not the image's last sector",
                info.sector_size
            ));
        }
        if let BaseHashing::Blocks { block_size } = header.base.hashing {
            if let Err(reason) = super::digest::check_block_size(block_size) {
                return fault(format!("its base hash is over blocks, and {reason}"));
            }
            if !block_size.is_multiple_of(info.sector_size) {
                return fault(format!(
                    "its base hash is over blocks of {block_size} bytes, not a multiple of the sector size {}",
                    info.sector_size
                ));
            }
            let whole_blocks = header.length.is_multiple_of(block_size) || end == info.image_size;
            if !header.offset.is_multiple_of(block_size) || !whole_blocks {
                return fault(format!(
                    "its base hash is over blocks of {block_size} bytes, but it is not whole blocks"
                ));
            }
        }
        if stored != Stored::Raw {
            // Its data is made in memory, not read: bounded by what diff-dd writes, whatever
            // limit the header states.
            let limit = record_size_limit(info.sector_size);
            if header.length > limit {
                return fault(format!(
                    "a zero or compressed record longer than {limit} bytes, the most diff-dd writes"
                ));
            }
        }
        if let Stored::Zstd { stored_length } = stored {
            if info.data_encoding != DataEncoding::Zstd {
                return fault("a compressed record in a diff whose header says raw".into());
            }
            if stored_length == 0 || stored_length >= header.length {
                return fault(format!(
                    "it stores {stored_length} compressed bytes, which must be at least 1 and fewer than its length"
                ));
            }
        }
        Ok(())
    }

    fn finish(&mut self, trailer: Trailer, trailer_offset: u64, framed: &[u8]) -> Result<()> {
        let invalid = |reason: String| Err(self.source.invalid(None, reason));
        if trailer.extent_count != self.next_index {
            return invalid(format!(
                "the trailer counts {} extents but the diff holds {}",
                trailer.extent_count, self.next_index
            ));
        }
        if trailer.changed_bytes != self.changed_bytes {
            return invalid(format!(
                "the trailer counts {} changed bytes but the records hold {}",
                trailer.changed_bytes, self.changed_bytes
            ));
        }
        // Only a read that checks data hashes every byte before the trailer (and skips none).
        // Otherwise nothing after the header is hashed, even when every byte happens to be
        // read: restore's dry run reads the data of a torn record, which can be the only one.
        if self.check_data && Digest::from(self.diff_hasher.finalize()) != trailer.diff_blake3 {
            return invalid(
                "the diff's bytes before the trailer do not match the BLAKE3 hash in the trailer"
                    .into(),
            );
        }
        let mut footer = [0u8; FOOTER_LEN];
        self.source.read_exact(&mut footer, Part::Footer)?;
        let invalid = |reason: String| Err(self.source.invalid(None, reason));
        let (stated_offset, rest) = footer.split_at(8);
        let (trailer_hash, end_mark) = rest.split_at(32);
        if end_mark != END_MARK {
            return invalid("the footer does not end with the mark \"diff-dd\\x03\"".into());
        }
        if stated_offset != trailer_offset.to_le_bytes() {
            return invalid(format!(
                "the footer does not point at the trailer (byte {trailer_offset})"
            ));
        }
        if trailer_hash != blake3::hash(framed).as_bytes() {
            return invalid("the trailer does not match the BLAKE3 hash in the footer".into());
        }
        if self.source.position() != self.source.size() {
            return invalid(format!(
                "{} unexpected bytes follow the footer",
                self.source.size() - self.source.position()
            ));
        }
        if self.hash_file {
            let mut whole_file = self.diff_hasher.clone();
            whole_file.update(framed);
            whole_file.update(&footer);
            self.file_hash = Some(whole_file.finalize());
        }
        self.totals = Some(Totals {
            stored_bytes: self.stored_bytes,
            extent_count: trailer.extent_count,
            changed_bytes: trailer.changed_bytes,
            hashes: Some(ImageHashes {
                base: trailer.base_blake3.into(),
                image: trailer.image_blake3.into(),
            }),
        });
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
        self.close_record()?;
        let frame_offset = self.source.position();
        let (entry, framed) = read_frame::<Entry>(&mut self.source, Part::FrameAt(frame_offset))?;
        let header = match (RecordParts::of(&entry), entry) {
            (Some(parts), _) => parts,
            (None, Entry::Trailer(trailer)) => {
                self.finish(trailer, frame_offset, &framed)?;
                return Ok(None);
            }
            (None, _) => return Err(Error::Internal("a record frame without its parts")),
        };
        let stored = header.stored;
        let index = self.next_index;
        self.check_record(index, &header)?;
        if self.check_data {
            self.diff_hasher.update(&framed);
        }
        self.next_index += 1;
        self.previous_end = header.offset + header.length;
        self.changed_bytes += header.length;
        self.stored_bytes += stored.bytes_in_file(header.length);
        let hashes = RecordHashes {
            new: header.new_blake3.into(),
            base: header.base,
        };
        self.open_record = Some(OpenRecord {
            index,
            offset: header.offset,
            length: header.length,
            remaining: header.length,
            stored,
            stored_left: stored.bytes_in_file(header.length),
            hasher: blake3::Hasher::new(),
            expected: hashes.new,
        });
        Ok(Some(Record {
            index,
            offset: header.offset,
            length: header.length,
            hashes: Some(hashes),
            stored,
            data_at: self.source.position(),
        }))
    }

    fn read_data(&mut self, out: &mut [u8]) -> Result<()> {
        let Some(record) = self.open_record.as_mut() else {
            return Err(self.source.invalid(None, "no record is open for reading"));
        };
        if out.len() as u64 > record.remaining {
            let index = record.index;
            return Err(self.source.invalid(
                Some(index),
                format!("record {index}: asked for more data than it holds"),
            ));
        }
        let done = record.length - record.remaining;
        match record.stored {
            Stored::Raw => {
                self.source
                    .read_exact(out, Part::RecordData(record.index))?;
                record.hasher.update(out);
                if self.check_data {
                    self.diff_hasher.update(out);
                }
                record.remaining -= out.len() as u64;
                record.stored_left = record.remaining;
                return record.check_hash(&self.source);
            }
            Stored::Zstd { .. } if record.length > super::LONG_RECORD => {
                return Err(Error::Internal(
                    "a long compressed record is read in pieces, not through the reader",
                ))
            }
            Stored::Zero | Stored::Zstd { .. } => {
                if done == 0 {
                    self.check_whole_record()?;
                }
                match record_stored(&self.open_record) {
                    Some(Stored::Zstd { .. }) => {
                        out.copy_from_slice(&self.decoded[done as usize..][..out.len()]);
                    }
                    _ => out.fill(0),
                }
            }
        }
        if let Some(record) = self.open_record.as_mut() {
            record.remaining -= out.len() as u64;
        }
        Ok(())
    }

    fn totals(&self) -> Option<&Totals> {
        self.totals.as_ref()
    }

    fn file_hash(&self) -> Option<blake3::Hash> {
        self.file_hash
    }

    fn require_data(&self, record: &Record) -> Result<()> {
        let in_file = record.stored.bytes_in_file(record.length);
        self.source.require(in_file, Part::RecordData(record.index))
    }

    fn take_stored(&mut self, record: &Record, out: &mut Vec<u8>) -> Result<()> {
        let Some(open) = self.open_record.as_mut() else {
            return Err(self.source.invalid(None, "no record is open for reading"));
        };
        if open.index != record.index || open.remaining != open.length {
            let index = open.index;
            return Err(self.source.invalid(
                Some(index),
                format!("record {index}: its data was read in part already"),
            ));
        }
        let in_file = open.stored_left;
        self.source.require(in_file, Part::RecordData(open.index))?;
        let start = out.len();
        // Within the file, whose size the file system gave: fits memory as the file does.
        out.resize(start + in_file as usize, 0);
        self.source
            .read_exact(&mut out[start..], Part::RecordData(open.index))?;
        if self.check_data {
            self.diff_hasher.update(&out[start..]);
        }
        // Handed over: its data is checked where it is decoded (format::StoredRecords::check).
        open.remaining = 0;
        open.stored_left = 0;
        self.open_record = None;
        Ok(())
    }
}

/// What is wrong with a header, if anything.
fn check_header(header: &Header) -> Result<(), String> {
    let sector_size = header.sector_size;
    if sector_size == 0 || sector_size > MAX_RECORD_SIZE {
        return Err(format!(
            "the header's sector size {sector_size} is outside 1..=1GiB"
        ));
    }
    let limit = header.record_size_limit;
    if limit < sector_size || limit > MAX_RECORD_SIZE || !limit.is_multiple_of(sector_size) {
        return Err(format!("the header's record size limit {limit} is not a multiple of the sector size within 1GiB"));
    }
    if header.image_size > i64::MAX as u64 {
        return Err(format!(
            "the header's image size {} is beyond any device",
            header.image_size
        ));
    }
    if header.tool_version.len() > MAX_TOOL_VERSION {
        return Err(format!(
            "the header's tool version is longer than {MAX_TOOL_VERSION} bytes"
        ));
    }
    Ok(())
}

/// Reads one frame: a u32 LE length no larger than [`MAX_FRAME`], then exactly that many bytes
/// of bincode. Returns the value and the frame's bytes (for hashing).
pub(super) fn read_frame<T: serde::de::DeserializeOwned>(
    source: &mut DiffSource<'_>,
    what: Part,
) -> Result<(T, Vec<u8>)> {
    let mut framed = vec![0u8; 4];
    source.read_exact(&mut framed, what)?;
    let length = u32::from_le_bytes([framed[0], framed[1], framed[2], framed[3]]);
    if length > MAX_FRAME {
        return Err(source.invalid(
            what.record(),
            format!("{what} claims {length} bytes, more than the limit of {MAX_FRAME}"),
        ));
    }
    framed.resize(4 + length as usize, 0);
    source.read_exact(&mut framed[4..], what)?;
    let (value, used) =
        match bincode::serde::decode_from_slice::<T, _>(&framed[4..], bincode_config()) {
            Ok(decoded) => decoded,
            Err(error) => {
                return Err(
                    source.invalid(what.record(), format!("{what} cannot be decoded: {error}"))
                )
            }
        };
    if used != length as usize {
        return Err(source.invalid(
            what.record(),
            format!(
                "{what} has {} bytes more than it encodes",
                length as usize - used
            ),
        ));
    }
    Ok((value, framed))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::device::OpenFile;
    use crate::error::{Error, Role};
    use crate::format::{open_reader, ReadOptions};

    fn header() -> Header {
        Header {
            sector_size: 4,
            image_size: 30,
            record_size_limit: 8,
            created_unix_seconds: 0,
            tool_version: "test".into(),
            data_encoding: DataEncoding::Raw,
        }
    }

    const HASHES: ImageHashes = ImageHashes {
        base: blake3::Hash::from_bytes([1; 32]),
        image: blake3::Hash::from_bytes([2; 32]),
    };

    /// (offset, data) of each record.
    fn records() -> Vec<(u64, Vec<u8>)> {
        vec![(0, vec![7; 8]), (8, vec![8; 4]), (28, vec![9; 2])]
    }

    fn written() -> Vec<u8> {
        let mut writer = Writer::new(Vec::new(), &header(), 3).unwrap();
        for (offset, data) in records() {
            let base_hash = blake3::hash(&[offset as u8]);
            writer
                .write_record(offset, &data, BaseHash::of_bytes(base_hash))
                .unwrap();
        }
        writer.finish(HASHES).unwrap()
    }

    fn image(bytes: &[u8]) -> OpenFile {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        OpenFile::from_file(file, "test.diff", Role::Diff).unwrap()
    }

    /// A zstd diff of one compressed record that claims 100 bytes of ones, whose frame
    /// decodes to `decoded` bytes of ones. The frame states no content size, which would
    /// give it away before decoding.
    fn compressed_record_decoding_to(decoded: usize) -> Vec<u8> {
        let mut compressor = zstd::bulk::Compressor::new(3).unwrap();
        compressor
            .set_parameter(zstd::zstd_safe::CParameter::ContentSizeFlag(false))
            .unwrap();
        compressed_record_storing(compressor.compress(&vec![1u8; decoded]).unwrap())
    }

    /// A zstd diff of one compressed record that claims 100 bytes of ones and stores
    /// `stored` (the diff ends after it).
    fn compressed_record_storing(stored: Vec<u8>) -> Vec<u8> {
        let header = Header {
            image_size: 4096,
            record_size_limit: 4096,
            data_encoding: DataEncoding::Zstd,
            ..header()
        };
        let mut bytes = SIGNATURE.to_vec();
        bytes.push(VERSION);
        bytes.extend(frame(&header).unwrap());
        let record = Entry::ZstdRecord(ZstdRecordHeader {
            offset: 0,
            length: 100,
            stored_length: stored.len() as u64,
            new_blake3: Digest::from(blake3::hash(&[1u8; 100])),
            base_blake3: Digest::from(blake3::hash(b"")),
        });
        bytes.extend(frame(&record).unwrap());
        bytes.extend(stored);
        bytes
    }

    #[test]
    fn a_compressed_record_must_decode_to_exactly_its_length() {
        // A frame that decodes to more (a bomb, in the large) stops at the declared length;
        // one that decodes to less is refused too. Neither allocates beyond the length.
        for (decoded, reason) in [
            (1 << 20, "cannot be decoded to 100 bytes"),
            (50, "decodes to 50 bytes, not 100"),
        ] {
            let diff = image(&compressed_record_decoding_to(decoded));
            let mut reader = open_reader(&diff, &ReadOptions::checked(512, None)).unwrap();
            let record = reader.next_record().unwrap().unwrap();
            let mut buffer = Vec::new();
            let refused = reader.read_record(&record, &mut buffer);
            match refused {
                Err(Error::InvalidDiff {
                    record: Some(0),
                    reason: why,
                    ..
                }) => {
                    assert!(why.contains(reason), "{why}")
                }
                other => panic!("{decoded}: {other:?}"),
            }
        }
        // Decoding to exactly the length passes the record (the diff then ends early).
        let diff = image(&compressed_record_decoding_to(100));
        let mut reader = open_reader(&diff, &ReadOptions::checked(512, None)).unwrap();
        let record = reader.next_record().unwrap().unwrap();
        let mut buffer = Vec::new();
        assert_eq!(
            reader.read_record(&record, &mut buffer).unwrap(),
            &[1u8; 100][..]
        );
    }

    /// 100 ones as one zstd frame, compressed with `parameters`.
    fn ones_frame(parameters: &[zstd::zstd_safe::CParameter]) -> Vec<u8> {
        let mut compressor = zstd::bulk::Compressor::new(3).unwrap();
        for &parameter in parameters {
            compressor.set_parameter(parameter).unwrap();
        }
        compressor.compress(&[1u8; 100]).unwrap()
    }

    /// Reads the one record of a diff storing `stored` for 100 ones: its data, or why not.
    fn read_ones(stored: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
        let diff = image(&compressed_record_storing(stored));
        let mut reader = open_reader(&diff, &ReadOptions::checked(512, None)).unwrap();
        let record = reader.next_record().unwrap().unwrap();
        let mut buffer = Vec::new();
        match reader.read_record(&record, &mut buffer) {
            Ok(data) => Ok(data.to_vec()),
            Err(Error::InvalidDiff {
                record: Some(0),
                reason,
                ..
            }) => Err(reason),
            Err(other) => panic!("not refused as an invalid record: {other:?}"),
        }
    }

    /// What `read_ones` refuses `stored` for, which must name `why`.
    fn assert_refused_for(stored: Vec<u8>, why: &str) {
        match read_ones(stored) {
            Err(reason) => assert!(reason.contains(why), "{why}: refused for {reason}"),
            Ok(_) => panic!("{why}: read"),
        }
    }

    use zstd::zstd_safe::CParameter::{ChecksumFlag, ContentSizeFlag};

    #[test]
    fn a_compressed_record_stores_one_zstd_frame_and_nothing_else() {
        let ones = ones_frame(&[]);
        // The frame alone, with or without a content size or a checksum, is read.
        for stored in [
            ones.clone(),
            ones_frame(&[ContentSizeFlag(false)]),
            ones_frame(&[ChecksumFlag(true)]),
        ] {
            assert_eq!(read_ones(stored).unwrap(), [1u8; 100]);
        }
        // A skippable frame (magic 0x184D2A5?, a 4-byte length, that many bytes) first.
        for magic in [0x184D_2A50u32, 0x184D_2A5F] {
            let mut stored = magic.to_le_bytes().to_vec();
            stored.extend(4u32.to_le_bytes());
            stored.extend(b"skip");
            stored.extend(&ones);
            assert_refused_for(stored, "skippable frame");
        }
        // Two frames that decode to the 100 bytes together: the data is right, the form not.
        let half = {
            let mut compressor = zstd::bulk::Compressor::new(3).unwrap();
            compressor.set_parameter(ContentSizeFlag(false)).unwrap();
            compressor.compress(&[1u8; 50]).unwrap()
        };
        assert_refused_for([&half[..], &half].concat(), "follow its zstd frame");
        // The frame, then an empty frame.
        let empty = zstd::bulk::compress(&[], 3).unwrap();
        assert_refused_for([&ones[..], &empty].concat(), "follow its zstd frame");
        // A frame of a format before zstd 1.0 (v0.7's magic number).
        let mut old = ones.clone();
        old[0] = 0x27;
        assert_refused_for(old, "magic number");
        // The header cut short.
        assert_refused_for(ones[..5].to_vec(), "cut short");
    }

    /// `frame` with a dictionary ID field of `bytes` (1, 2 or 4) holding `id`.
    fn with_dictionary_id(frame: &[u8], bytes: usize, id: u32) -> Vec<u8> {
        let descriptor = frame[4];
        assert_eq!(
            descriptor & 0x03,
            0,
            "the frame has a dictionary ID already"
        );
        let flag = match bytes {
            1 => 1,
            2 => 2,
            _ => 3,
        };
        // The ID follows the descriptor and the window descriptor, if any.
        let at = 5 + usize::from(descriptor & 0x20 == 0);
        let mut edited = frame[..at].to_vec();
        edited[4] |= flag;
        edited.extend(&id.to_le_bytes()[..bytes]);
        edited.extend(&frame[at..]);
        edited
    }

    #[test]
    fn a_compressed_record_needs_no_dictionary() {
        let ones = ones_frame(&[]);
        for bytes in [1, 2, 4] {
            assert_refused_for(with_dictionary_id(&ones, bytes, 7), "dictionary 7");
            // An ID of 0 is no dictionary (RFC 8878): the same frame.
            let no_dictionary = with_dictionary_id(&ones, bytes, 0);
            assert_eq!(read_ones(no_dictionary).unwrap(), [1u8; 100]);
        }
    }

    #[test]
    fn a_compressed_record_asks_for_a_window_of_at_most_8_mib() {
        // Without a content size the frame is not single-segment: it has a window descriptor
        // (exponent in bits 3 to 7, counting from 2^10; eighths of that in bits 0 to 2),
        // right after the frame header descriptor.
        let frame = ones_frame(&[ContentSizeFlag(false)]);
        assert_eq!(frame[4] & 0x20, 0, "a single-segment frame");
        let with_window = |descriptor: u8| {
            let mut edited = frame.clone();
            edited[5] = descriptor;
            edited
        };
        // 2^23 is 8 MiB; 2^23 + 2^20 and 2^24 are more.
        assert_eq!(read_ones(with_window(13 << 3)).unwrap(), [1u8; 100]);
        assert_refused_for(with_window(13 << 3 | 1), "window of 9437184 bytes");
        assert_refused_for(with_window(14 << 3), "window of 16777216 bytes");
        // A single-segment frame's window is its content size.
        let mut single_segment = ZSTD_FRAME_MAGIC.to_le_bytes().to_vec();
        single_segment.extend([0xa0]);
        single_segment.extend(((8 << 20) + 1u32).to_le_bytes());
        assert_eq!(
            check_zstd_frame_header(&single_segment, (8 << 20) + 1),
            Err("its zstd frame asks for a window of 8388609 bytes, more than 8 MiB".into())
        );
        single_segment[5..].copy_from_slice(&(8u32 << 20).to_le_bytes());
        assert_eq!(check_zstd_frame_header(&single_segment, 8 << 20), Ok(()));
        // So does zstd itself, with a window log of 24 and no content size to shrink it to.
        let mut compressor = zstd::stream::raw::Encoder::new(3).unwrap();
        use zstd::stream::raw::Operation;
        compressor
            .set_parameter(zstd::zstd_safe::CParameter::WindowLog(24))
            .unwrap();
        let mut output = vec![0u8; 1024];
        let mut out = zstd::stream::raw::OutBuffer::around(&mut output[..]);
        let mut input = zstd::stream::raw::InBuffer::around(&[1u8; 100][..]);
        compressor.run(&mut input, &mut out).unwrap();
        compressor.finish(&mut out, true).unwrap();
        let written = out.pos();
        assert_refused_for(output[..written].to_vec(), "window of 16777216 bytes");
    }

    #[test]
    fn a_compressed_record_states_no_content_size_or_its_length() {
        // 100 ones at level 3: a single-segment frame whose content size is one byte.
        let ones = ones_frame(&[]);
        assert_eq!((ones[4], ones[5]), (0x20, 100));
        let mut other_size = ones.clone();
        other_size[5] = 99;
        assert_refused_for(other_size, "content size of 99 bytes, not its length 100");
        let mut reserved = ones;
        reserved[4] |= 0x08;
        assert_refused_for(reserved, "reserved bit");
    }

    #[test]
    fn every_level_diff_dd_writes_makes_frames_the_reader_takes() {
        // Past 8 MiB, where zstd no longer fits the window to the data: each level's own
        // window, which must be at most 8 MiB.
        let data: Vec<u8> = (0..(8 << 20) + 4096)
            .map(|i: u32| (i % 251) as u8)
            .collect();
        for level in 1..=19 {
            let mut encoder = Encoder::new(DataEncoding::Zstd, level).unwrap();
            let mut stored = Vec::new();
            let record = encoder
                .encode(0, &data, BaseHash::of_bytes(blake3::hash(b"")), &mut stored)
                .unwrap();
            assert!(
                matches!(record.parts.entry(), Entry::ZstdRecord(_)),
                "level {level}: stored raw"
            );
            check_zstd_frame_header(&stored, data.len() as u64)
                .unwrap_or_else(|reason| panic!("level {level}: {reason}"));
        }
    }

    #[test]
    fn the_zstd_library_holds_no_decoder_of_the_formats_before_zstd_1_0() {
        // zstd v0.1 to v0.7 framed data under these magic numbers; diff-dd never wrote them.
        // With their decoders linked, zstd takes such a start for a frame (of unknown size);
        // without, for no frame at all.
        for magic in [
            0x1EB5_2FFDu32,
            0xFD2F_B522,
            0xFD2F_B523,
            0xFD2F_B524,
            0xFD2F_B525,
            0xFD2F_B526,
            0xFD2F_B527,
        ] {
            let mut start = magic.to_le_bytes().to_vec();
            start.extend([0u8; 14]);
            let size = zstd::zstd_safe::get_frame_content_size(&start);
            assert!(size.is_err(), "{magic:#x}: {size:?}");
        }
    }

    #[test]
    fn the_header_payload_is_44_bytes_and_the_tool_version() {
        for version in ["", "0.1.0", "a longer version string"] {
            let header = Header {
                tool_version: version.into(),
                ..header()
            };
            let framed = frame(&header).unwrap();
            assert_eq!(framed.len(), 4 + 44 + version.len(), "{version:?}");
            assert_eq!(&framed[..4], &(44 + version.len() as u32).to_le_bytes());
        }
    }

    #[test]
    fn what_the_writer_writes_the_reader_reads() {
        let bytes = written();
        let diff = image(&bytes);
        let options = ReadOptions {
            hash_file: true,
            ..ReadOptions::checked(512, None)
        };
        let mut reader = open_reader(&diff, &options).unwrap();
        assert_eq!(reader.info().image_size, Some(30));
        let mut buffer = Vec::new();
        for (index, (offset, data)) in records().into_iter().enumerate() {
            let record = reader.next_record().unwrap().unwrap();
            assert_eq!((record.index, record.offset), (index as u64, offset));
            let hashes = record.hashes.unwrap();
            assert_eq!(hashes.new, blake3::hash(&data));
            assert_eq!(
                hashes.base,
                BaseHash::of_bytes(blake3::hash(&[offset as u8]))
            );
            assert_eq!(reader.read_record(&record, &mut buffer).unwrap(), &data[..]);
        }
        assert!(reader.next_record().unwrap().is_none());
        let totals = reader.totals().unwrap();
        assert_eq!((totals.extent_count, totals.changed_bytes), (3, 14));
        assert_eq!(totals.hashes, Some(HASHES));
        assert_eq!(reader.file_hash(), Some(blake3::hash(&bytes)));
    }

    #[test]
    fn a_record_whose_data_changed_is_refused_before_it_is_handed_out() {
        let mut bytes = written();
        // The footer starts with the trailer's offset; the last record's data precedes it.
        let footer = bytes.len() - FOOTER_LEN;
        let trailer_offset = u64::from_le_bytes(bytes[footer..][..8].try_into().unwrap());
        bytes[trailer_offset as usize - 1] ^= 1;
        let diff = image(&bytes);
        let mut reader = open_reader(&diff, &ReadOptions::headers(512, None)).unwrap();
        let mut buffer = Vec::new();
        for _ in 0..2 {
            let record = reader.next_record().unwrap().unwrap();
            reader.read_record(&record, &mut buffer).unwrap();
        }
        let record = reader.next_record().unwrap().unwrap();
        let refused = reader.read_record(&record, &mut buffer);
        assert!(
            matches!(
                refused,
                Err(Error::InvalidDiff {
                    record: Some(2),
                    ..
                })
            ),
            "{refused:?}"
        );
    }

    /// Records whose base hash is over blocks (variants 4 to 6) read back with their block
    /// size, raw, zero and compressed; and are refused unless they are whole blocks that are
    /// whole sectors, of a block size a digest may have.
    #[test]
    fn records_over_blocks_read_back_and_must_be_whole_blocks() {
        let header = |image_size: u64, sector_size: u64| Header {
            sector_size,
            image_size,
            record_size_limit: 4 << 20,
            created_unix_seconds: 0,
            tool_version: "test".into(),
            data_encoding: DataEncoding::Zstd,
        };
        let over = |block_size: u64| BaseHash {
            value: blake3::Hash::from_bytes([3; 32]),
            hashing: BaseHashing::Blocks { block_size },
        };
        let read = |header: &Header, records: &[(u64, Vec<u8>, BaseHash)]| {
            let mut writer = Writer::new(Vec::new(), header, 3).unwrap();
            for (offset, data, base) in records {
                writer.write_record(*offset, data, *base).unwrap();
            }
            let diff = image(&writer.finish(HASHES).unwrap());
            let options = ReadOptions::checked(512, None);
            let mut reader = open_reader(&diff, &options)?;
            let mut found = Vec::new();
            while let Some(record) = reader.next_record()? {
                found.push((record.offset, record.stored, record.hashes.map(|h| h.base)));
            }
            Ok::<_, Error>(found)
        };
        let mut noise = vec![0u8; 8192];
        blake3::Hasher::new().finalize_xof().fill(&mut noise);
        let found = read(
            &header(40_000, 512),
            &[
                (0, vec![0; 4096], over(4096)),
                (8192, vec![5; 8192], over(4096)),
                (16_384, noise.clone(), over(8192)),
                (32_768, noise[..7232].to_vec(), over(4096)),
            ],
        )
        .unwrap();
        assert_eq!(found.len(), 4);
        assert_eq!(found[0].1, Stored::Zero);
        assert!(matches!(found[1].1, Stored::Zstd { .. }));
        assert_eq!(found[2].1, Stored::Raw);
        assert_eq!(found[2].2, Some(over(8192)));

        let refused = [
            (header(40_000, 512), 2048, 4096, 4096, "not whole blocks"),
            (header(40_000, 512), 4096, 2048, 4096, "not whole blocks"),
            (header(40_000, 512), 0, 4096, 2048, "power of two"),
            (header(40_000, 512), 0, 6144, 6144, "power of two"),
            (header(40_000, 8192), 0, 8192, 4096, "sector size"),
        ];
        for (header, offset, length, block_size, reason) in refused {
            let error =
                read(&header, &[(offset, vec![1; length], over(block_size))]).expect_err(reason);
            assert!(error.to_string().contains(reason), "{error}");
        }
    }
}
