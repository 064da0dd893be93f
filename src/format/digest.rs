//! The digest format: the size of an image and one BLAKE3 value per block of it, with no image
//! bytes. man/diff-dd.5 (DIGEST) is its specification; this file is the one implementation.
//!
//! ```text
//! signature   "diff-dd digest" 0x01                                  15 bytes
//! header      u32 LE length, bincode Header                          framed
//! blocks      u32 LE length, bincode BlockFrame (up to 127 values)   framed, repeated
//! trailer     u32 LE length, bincode Trailer                         framed
//! footer      u64 LE trailer offset, BLAKE3 of the trailer frame,
//!             "ddigest" 0x01                                         48 bytes
//! ```
//!
//! Framed with the same bincode configuration as the v3 diff. A block's value is its BLAKE3
//! chaining value at its position in the image (a complete subtree, since blocks are aligned
//! powers of two of at least one BLAKE3 chunk), so that the values merge exactly into the
//! image's own BLAKE3: the trailer's `image_blake3` is checked to be that merge, and is what
//! `b3sum` prints for the image. An image of one block has no subtree below the root, so its
//! one value is the root hash itself.
//!
//! Every byte is covered: the signature and footer by exact checks, the header and block
//! frames by `digest_blake3` in the trailer, the trailer by the hash in the footer. The reader
//! holds one frame at a time, whatever the image size.

use std::io::{self, Write};

use blake3::hazmat::ChainingValue;
use serde::{Deserialize, Serialize};

use super::v3::{self, Digest};
use super::{DiffSource, Part};
use crate::device::OpenFile;
use crate::engine::{StreamHasher, TreeMerger};
use crate::error::{Error, Result};
use crate::units;

/// The 14 bytes that open every digest; a version byte follows.
pub const SIGNATURE: &[u8; 14] = b"diff-dd digest";
pub const VERSION: u8 = 1;
pub const FOOTER_LEN: u64 = 48;
pub const END_MARK: &[u8; 8] = b"ddigest\x01";
/// The most values in one block frame: 127 of 32 bytes, with the first block and the count,
/// stay within the frame limit the v3 reader enforces (4096 bytes).
pub const VALUES_PER_FRAME: usize = 127;
pub const MIN_BLOCK_SIZE: u64 = 4 << 10;
pub const MAX_BLOCK_SIZE: u64 = 4 << 20;
/// 16 KiB: the digest is 0.2% of the image, and hashing it costs as much as b3sum (4 KiB
/// blocks cost 1.5 times as much: a 4-chunk subtree fills half of AVX2's lanes).
pub const DEFAULT_BLOCK_SIZE: u64 = 16 << 10;
/// `hash_kind` 0: each block's chaining value at its position (non-root), or for an image of
/// one block, its root hash.
pub const HASH_KIND_POSITIONAL: u32 = 0;

const LEAD_LEN: u64 = SIGNATURE.len() as u64 + 1;

/// The framed header after the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub image_size: u64,
    pub block_size: u64,
    pub created_unix_seconds: i64,
    pub tool_version: String,
    pub hash_kind: u32,
}

impl Header {
    pub fn of_this_version(image_size: u64, block_size: u64, created_unix_seconds: i64) -> Header {
        Header {
            image_size,
            block_size,
            created_unix_seconds,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            hash_kind: HASH_KIND_POSITIONAL,
        }
    }

    /// How many blocks the image has: the last one may be short.
    pub fn block_count(&self) -> u64 {
        self.image_size.div_ceil(self.block_size)
    }
}

/// Whether `block_size` is one a digest may have: a power of two from 4 KiB to 4 MiB.
pub fn check_block_size(block_size: u64) -> std::result::Result<(), String> {
    if block_size.is_power_of_two() && (MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
        return Ok(());
    }
    Err(format!(
        "a block size of {} is not a power of two from 4K to 4M",
        units::size(block_size)
    ))
}

/// Consecutive block values. bincode writes the Vec's length as a u64: the count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct BlockFrame {
    first_block: u64,
    values: Vec<Digest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Trailer {
    block_count: u64,
    image_blake3: Digest,
    /// BLAKE3 of every byte of the digest before the trailer frame.
    digest_blake3: Digest,
}

/// Merges block values as they come into the whole image's BLAKE3.
#[derive(Default)]
struct ImageHash {
    merger: TreeMerger,
    only: Option<ChainingValue>,
    count: u64,
}

impl ImageHash {
    fn push(&mut self, value: ChainingValue) {
        self.count += 1;
        self.only = Some(value);
        self.merger.push(value);
    }

    fn finish(self) -> Option<blake3::Hash> {
        match self.count {
            0 => Some(blake3::hash(b"")),
            1 => self.only.map(blake3::Hash::from_bytes),
            _ => self.merger.finish(),
        }
    }
}

/// Writes a digest: `new`, every block's value in order with `push`, then `finish`.
pub struct Writer<W: Write> {
    out: W,
    header: Header,
    hasher: StreamHasher,
    position: u64,
    frame: Vec<Digest>,
    pushed: u64,
    image_hash: ImageHash,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W, header: Header) -> io::Result<Writer<W>> {
        check_block_size(header.block_size).map_err(io::Error::other)?;
        let mut writer = Writer {
            out,
            header,
            hasher: StreamHasher::new(),
            position: 0,
            frame: Vec::with_capacity(VALUES_PER_FRAME),
            pushed: 0,
            image_hash: ImageHash::default(),
        };
        writer.put_hashed(SIGNATURE)?;
        writer.put_hashed(&[VERSION])?;
        let header = v3::frame(&writer.header)?;
        writer.put_hashed(&header)?;
        Ok(writer)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.position += bytes.len() as u64;
        Ok(())
    }

    fn put_hashed(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hasher.update(bytes);
        self.put(bytes)
    }

    /// The value of the next block.
    pub fn push(&mut self, value: ChainingValue) -> io::Result<()> {
        if self.pushed == self.header.block_count() {
            return Err(io::Error::other(
                "more block values than the image has blocks",
            ));
        }
        self.pushed += 1;
        self.image_hash.push(value);
        self.frame.push(Digest(value));
        if self.frame.len() == VALUES_PER_FRAME {
            self.write_frame()?;
        }
        Ok(())
    }

    fn write_frame(&mut self) -> io::Result<()> {
        let values = std::mem::take(&mut self.frame);
        let frame = BlockFrame {
            first_block: self.pushed - values.len() as u64,
            values,
        };
        let framed = v3::frame(&frame)?;
        self.put_hashed(&framed)?;
        self.frame = frame.values;
        self.frame.clear();
        Ok(())
    }

    /// Writes the last block frame, the trailer and the footer, and returns the whole image's
    /// BLAKE3 as the values merge into. Fails unless every block's value was pushed.
    pub fn finish(mut self) -> io::Result<(W, blake3::Hash)> {
        if self.pushed != self.header.block_count() {
            return Err(io::Error::other(
                "fewer block values than the image has blocks",
            ));
        }
        if !self.frame.is_empty() {
            self.write_frame()?;
        }
        let image_hash = std::mem::take(&mut self.image_hash)
            .finish()
            .ok_or_else(|| io::Error::other("block values that do not merge"))?;
        let trailer = Trailer {
            block_count: self.pushed,
            image_blake3: Digest::from(image_hash),
            digest_blake3: Digest::from(self.hasher.finalize()),
        };
        let trailer_offset = self.position;
        let framed = v3::frame(&trailer)?;
        self.put(&framed)?;
        let mut footer = Vec::with_capacity(FOOTER_LEN as usize);
        footer.extend_from_slice(&trailer_offset.to_le_bytes());
        footer.extend_from_slice(blake3::hash(&framed).as_bytes());
        footer.extend_from_slice(END_MARK);
        self.put(&footer)?;
        self.out.flush()?;
        Ok((self.out, image_hash))
    }
}

/// Whether a file starts with the digest signature (damaged or not beyond it).
pub fn has_signature(start: &[u8]) -> bool {
    start.starts_with(SIGNATURE)
}

/// Reads a digest block by block, in bounded memory. `open` checks the signature, the
/// header, the trailer and the footer, that the counts agree, and the whole digest's hash (so
/// that a damaged header is reported as damage); `next_value` gives the values in order;
/// `finish` checks the whole-digest hash again, over the bytes `next_value` read (the file may
/// have changed since `open`), and that the values merge into the image's BLAKE3. Until
/// `finish` succeeds nothing read may be trusted.
pub struct Reader<'a> {
    path: std::path::PathBuf,
    source: DiffSource<'a>,
    header: Header,
    trailer: Trailer,
    trailer_offset: u64,
    hasher: StreamHasher,
    frame: Vec<Digest>,
    taken: usize,
    next_block: u64,
    image_hash: ImageHash,
}

impl<'a> Reader<'a> {
    pub fn open(file: &'a OpenFile) -> Result<Reader<'a>> {
        let invalid = |reason: String| Error::invalid_digest(&file.path, reason);
        let size = file.size;
        let mut lead = [0u8; LEAD_LEN as usize];
        let available = lead.len().min(size as usize);
        file.read_at(0, &mut lead[..available])?;
        if size == 0 {
            return Err(invalid(
                "it is empty: a digest holds at least its signature, a header and a footer".into(),
            ));
        }
        if available < SIGNATURE.len() || !has_signature(&lead[..available]) {
            if available > 0 && SIGNATURE.starts_with(&lead[..available]) {
                return Err(invalid(format!(
                    "truncated: it is {available} bytes long, the start of the signature \"diff-dd digest\""
                )));
            }
            return Err(invalid(format!(
                "it does not start with the signature \"diff-dd digest\": it seems to be {}",
                what_it_is(file)
            )));
        }
        if available < lead.len() {
            return Err(invalid("truncated: it ends before its version byte".into()));
        }
        if lead[SIGNATURE.len()] != VERSION {
            return Err(invalid(format!(
                "it is a digest of version {}, which this version cannot read",
                lead[SIGNATURE.len()]
            )));
        }
        if size < LEAD_LEN + FOOTER_LEN {
            return Err(invalid(format!(
                "truncated: it is {size} bytes long, too short to hold a header and a footer"
            )));
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        file.read_at(size - FOOTER_LEN, &mut footer)?;
        if &footer[40..] != END_MARK {
            return Err(invalid(
                "it does not end with the footer's end mark: it is truncated, or bytes were added after its end".into(),
            ));
        }
        let trailer_offset = u64::from_le_bytes(footer[..8].try_into().unwrap_or_default());
        let trailer_end = size - FOOTER_LEN;
        let trailer_length = trailer_end.checked_sub(trailer_offset).filter(|&length| {
            length >= 4 && length <= 4 + u64::from(v3::MAX_FRAME) && trailer_offset >= LEAD_LEN
        });
        let Some(trailer_length) = trailer_length else {
            return Err(invalid(format!(
                "the footer places the trailer at byte {trailer_offset}, which cannot hold it in a file of {size} bytes"
            )));
        };
        let mut framed = vec![0u8; trailer_length as usize];
        file.read_at(trailer_offset, &mut framed)?;
        if blake3::hash(&framed).as_bytes() != &footer[8..40] {
            return Err(invalid(
                "the trailer does not match its hash in the footer: it is damaged".into(),
            ));
        }
        let mut source = DiffSource::new(file, false)?;
        source.skip(trailer_offset, Part::Header)?;
        let (trailer, _) = v3::read_frame::<Trailer>(&mut source, Part::FrameAt(trailer_offset))
            .map_err(|error| as_digest_error(file, error))?;
        if source.position() != trailer_end {
            return Err(invalid(
                "the trailer frame does not end where the footer begins".into(),
            ));
        }

        // The whole digest is checked against its hash before its header is believed, so
        // that damage anywhere is reported as damage, not as a digest of another image. It
        // is read again, and hashed again, as it is used (see `finish`): what is used is what
        // was checked, even if the file changes meanwhile.
        let mut source = DiffSource::new(file, false)?;
        let mut whole = StreamHasher::new();
        source.read_through(trailer_offset, Part::Signature, |bytes| whole.update(bytes))?;
        if whole.finalize() != blake3::Hash::from(trailer.digest_blake3) {
            return Err(invalid(
                "its bytes do not match the digest hash in its trailer: it is damaged".into(),
            ));
        }
        let mut source = DiffSource::new(file, false)?;
        let mut hasher = StreamHasher::new();
        source.read_through(LEAD_LEN, Part::Signature, |bytes| hasher.update(bytes))?;
        let (header, framed) = v3::read_frame::<Header>(&mut source, Part::Header)
            .map_err(|error| as_digest_error(file, error))?;
        hasher.update(&framed);
        if header.hash_kind != HASH_KIND_POSITIONAL {
            return Err(invalid(format!(
                "its values are of hash kind {}, which this version cannot read",
                header.hash_kind
            )));
        }
        check_block_size(header.block_size)
            .map_err(|reason| invalid(format!("its header is damaged: {reason}")))?;
        if header.tool_version.len() > v3::MAX_TOOL_VERSION {
            return Err(invalid(
                "its header is damaged: the tool version is longer than 256 bytes".into(),
            ));
        }
        let block_count = header.block_count();
        if trailer.block_count != block_count {
            return Err(invalid(format!(
                "its trailer counts {} blocks, but an image of {} in blocks of {} has {block_count}",
                trailer.block_count,
                units::size(header.image_size),
                units::size(header.block_size)
            )));
        }
        // Every frame but the last is full: the block frames end at a byte the counts fix.
        let frames = u128::from(block_count.div_ceil(VALUES_PER_FRAME as u64));
        let blocks_end = u128::from(source.position()) + frames * 20 + u128::from(block_count) * 32;
        if blocks_end != u128::from(trailer_offset) {
            return Err(invalid(format!(
                "{block_count} blocks in frames of {VALUES_PER_FRAME} end at byte {blocks_end}, but the trailer is at byte {trailer_offset}"
            )));
        }
        Ok(Reader {
            path: file.path.clone(),
            source,
            header,
            trailer,
            trailer_offset,
            hasher,
            frame: Vec::new(),
            taken: 0,
            next_block: 0,
            image_hash: ImageHash::default(),
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn invalid(&self, reason: String) -> Error {
        Error::invalid_digest(&self.path, reason)
    }

    /// The value of the next block, or None after the last.
    pub fn next_value(&mut self) -> Result<Option<ChainingValue>> {
        if self.taken == self.frame.len() {
            if self.next_block == self.header.block_count() {
                return Ok(None);
            }
            let at = self.source.position();
            let (frame, framed) = v3::read_frame::<BlockFrame>(&mut self.source, Part::FrameAt(at))
                .map_err(|error| self.as_digest_error(error))?;
            self.hasher.update(&framed);
            let left = self.header.block_count() - self.next_block;
            let expected = left.min(VALUES_PER_FRAME as u64);
            if frame.first_block != self.next_block || frame.values.len() as u64 != expected {
                return Err(self.invalid(format!(
                    "the frame at byte {at} holds {} values from block {}, where {expected} from block {} belong",
                    frame.values.len(),
                    frame.first_block,
                    self.next_block
                )));
            }
            self.frame = frame.values;
            self.taken = 0;
        }
        let value = self.frame[self.taken].0;
        self.taken += 1;
        self.next_block += 1;
        self.image_hash.push(value);
        Ok(Some(value))
    }

    /// Once every value was read: checks the whole-digest hash and that the values merge into
    /// the image hash the trailer states, and returns that hash, the image's BLAKE3.
    pub fn finish(mut self) -> Result<blake3::Hash> {
        while self.next_value()?.is_some() {}
        if self.source.position() != self.trailer_offset {
            return Err(self.invalid("its block frames do not end at the trailer".into()));
        }
        if self.hasher.finalize() != blake3::Hash::from(self.trailer.digest_blake3) {
            return Err(self.invalid(
                "its bytes do not match the digest hash in its trailer: it is damaged".into(),
            ));
        }
        let stated = blake3::Hash::from(self.trailer.image_blake3);
        let merged = std::mem::take(&mut self.image_hash).finish();
        if merged != Some(stated) {
            return Err(self.invalid(
                "its block values do not merge into the image hash in its trailer: it is damaged"
                    .into(),
            ));
        }
        Ok(stated)
    }

    fn as_digest_error(&self, error: Error) -> Error {
        match error {
            Error::InvalidDiff { reason, .. } => self.invalid(reason),
            other => other,
        }
    }
}

fn as_digest_error(file: &OpenFile, error: Error) -> Error {
    match error {
        Error::InvalidDiff { reason, .. } => Error::invalid_digest(&file.path, reason),
        other => other,
    }
}

/// What a file that is not a digest seems to be, for the message that refuses it.
pub fn what_it_is(file: &OpenFile) -> String {
    match super::detect(file) {
        Ok(super::Format::V3 | super::Format::V2) => {
            format!("a diff-dd diff, {}", units::size(file.size))
        }
        _ => super::describe_contents(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Role;

    fn digest_of(image: &[u8], block_size: u64) -> Vec<u8> {
        let header = Header::of_this_version(image.len() as u64, block_size, 0);
        let mut writer = Writer::new(Vec::new(), header).unwrap();
        let blocks: Vec<&[u8]> = image.chunks(block_size as usize).collect();
        for (index, block) in blocks.iter().enumerate() {
            let value = if blocks.len() == 1 {
                *blake3::hash(block).as_bytes()
            } else {
                let mut hasher = blake3::Hasher::new();
                blake3::hazmat::HasherExt::set_input_offset(&mut hasher, index as u64 * block_size);
                hasher.update(block);
                blake3::hazmat::HasherExt::finalize_non_root(&hasher)
            };
            writer.push(value).unwrap();
        }
        let (bytes, hash) = writer.finish().unwrap();
        assert_eq!(hash, blake3::hash(image));
        bytes
    }

    fn open(bytes: &[u8]) -> OpenFile {
        let file = tempfile::tempfile().unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, bytes, 0).unwrap();
        OpenFile::from_file(file, "d", Role::Digest).unwrap()
    }

    fn read(bytes: &[u8]) -> Result<(Vec<ChainingValue>, blake3::Hash)> {
        let file = open(bytes);
        let mut reader = Reader::open(&file)?;
        let mut values = Vec::new();
        while let Some(value) = reader.next_value()? {
            values.push(value);
        }
        Ok((values, reader.finish()?))
    }

    #[test]
    fn digests_read_back_and_merge_into_the_image_hash() {
        let image: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for size in [0usize, 1, 4096, 4097, 16_384, 16_385, 200_000, 300_000] {
            for block_size in [4096u64, 16_384] {
                let bytes = digest_of(&image[..size], block_size);
                let (values, hash) = read(&bytes).unwrap();
                assert_eq!(values.len() as u64, (size as u64).div_ceil(block_size));
                assert_eq!(hash, blake3::hash(&image[..size]), "{size} {block_size}");
            }
        }
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_refused() {
        let image: Vec<u8> = (0..600_000u32).map(|i| (i * 13 % 253) as u8).collect();
        let bytes = digest_of(&image, 4096); // 147 blocks: two frames
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(read(&damaged).is_err(), "flip at {at}");
            assert!(read(&bytes[..at]).is_err(), "truncated to {at}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read(&longer).is_err());
    }
}
