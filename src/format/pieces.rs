//! A record's data read from its diff in pieces, front to back: how a record longer than
//! [`LONG_RECORD`] is checked, written and laid over an image, in memory that does not grow
//! with its length. A diff with sectors of 1 GiB holds records of 1 GiB, which may even be
//! stored in a few bytes (a zero record, a compressed one); such a record is never held whole.
//!
//! Shorter records are held whole where that is faster (runs on the pool, the overlay's loaded
//! records): at most [`LONG_RECORD`] bytes each, a constant.

use super::{v3, Record, Stored};
use crate::device::OpenFile;
use crate::error::{Error, Result};

/// Records longer than this are read in pieces, never held whole: every record diff-dd writes
/// at sectors of up to 4 MiB is at most this long.
pub const LONG_RECORD: u64 = 4 << 20;

/// The most one piece of a long record takes in memory, where a caller needs a buffer for one.
pub const PIECE: u64 = 1 << 20;

/// How much of a compressed record's frame is read from the file at once.
const FRAME_READ: usize = 64 << 10;

/// A record's decoded data, handed out front to back. After its last byte, its hash (when it
/// has one) has been checked, and a compressed record's frame was found to end exactly where
/// its stored bytes do; a fault is an [`Error::InvalidDiff`] naming the record.
///
/// Pieces handed out before the last are not checked yet: a caller acts on them only where
/// the diff was checked whole before and cannot have changed since (a private copy, see
/// `device::private_copy`), or where what it does is undone unless the check passes.
pub struct RecordPieces<'d> {
    diff: &'d OpenFile,
    record: Record,
    /// Decoded bytes handed out so far.
    position: u64,
    hasher: blake3::Hasher,
    zstd: Option<ZstdInput>,
}

/// A compressed record's decoder, and the bytes of its frame read from the file.
struct ZstdInput {
    decoder: zstd::stream::raw::Decoder<'static>,
    input: Vec<u8>,
    /// How much of `input` the decoder has taken.
    taken: usize,
    /// Bytes of the frame read from the file so far.
    read: u64,
    stored_length: u64,
    ended: bool,
}

impl<'d> RecordPieces<'d> {
    /// Opens `record`, a record of `diff` whose header was checked, at its first byte.
    pub fn new(diff: &'d OpenFile, record: &Record) -> Result<RecordPieces<'d>> {
        let invalid = |reason: String| Error::invalid_diff(&diff.path, Some(record.index), reason);
        super::require_data_in_file(diff, record)?;
        let zstd = match record.stored {
            Stored::Zstd { stored_length } => {
                // The frame's rules that its first bytes show (one plain frame, no dictionary,
                // a window within the cap): checked before anything is decoded.
                let mut start = [0u8; v3::MAX_ZSTD_FRAME_HEADER];
                let start =
                    &mut start[..stored_length.min(v3::MAX_ZSTD_FRAME_HEADER as u64) as usize];
                diff.read_at(record.data_at, start)?;
                v3::check_zstd_frame_header(start, record.length).map_err(|reason| {
                    invalid(format!(
                        "record {} (offset {}): {reason}",
                        record.index, record.offset
                    ))
                })?;
                let decoder = new_decoder().map_err(|reason| invalid(reason.to_string()))?;
                Some(ZstdInput {
                    decoder,
                    input: Vec::new(),
                    taken: 0,
                    read: 0,
                    stored_length,
                    ended: false,
                })
            }
            Stored::Raw | Stored::Zero => None,
        };
        Ok(RecordPieces {
            diff,
            record: record.clone(),
            position: 0,
            hasher: blake3::Hasher::new(),
            zstd,
        })
    }

    pub fn record(&self) -> &Record {
        &self.record
    }

    /// Decoded bytes handed out so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Fills `out` with the record's next `out.len()` bytes, which it must hold.
    pub fn read(&mut self, out: &mut [u8]) -> Result<()> {
        let record = &self.record;
        if out.len() as u64 > record.length - self.position {
            return Err(Error::Internal("a record was asked for more than it holds"));
        }
        match (&mut self.zstd, record.stored) {
            (Some(zstd), _) => zstd
                .decode(self.diff, record, out)
                .map_err(|reason| self.invalid(reason))?,
            (None, Stored::Zero) => out.fill(0),
            (None, _) => self.diff.read_at(record.data_at + self.position, out)?,
        }
        self.hasher.update(out);
        self.position += out.len() as u64;
        if self.position == record.length {
            self.finish()?;
        }
        Ok(())
    }

    /// BLAKE3 of the data handed out so far: of the whole record, once it is all read.
    pub fn data_hash(&self) -> blake3::Hash {
        self.hasher.finalize()
    }

    /// Moves past `count` bytes, read (and hashed) through `scratch`.
    pub fn skip(&mut self, mut count: u64, scratch: &mut [u8]) -> Result<()> {
        if scratch.is_empty() && count > 0 {
            return Err(Error::Internal("a record was skipped through no buffer"));
        }
        while count > 0 {
            let piece = count.min(scratch.len() as u64) as usize;
            self.read(&mut scratch[..piece])?;
            count -= piece as u64;
        }
        Ok(())
    }

    /// After the last byte: the frame ends here, and the data matches the record's hash.
    fn finish(&mut self) -> Result<()> {
        if let Some(zstd) = &mut self.zstd {
            let record = &self.record;
            zstd.end(self.diff, record).map_err(|reason| {
                Error::invalid_diff(&self.diff.path, Some(record.index), reason)
            })?;
        }
        match self.record.hashes {
            Some(hashes) if self.hasher.finalize() != hashes.new => Err(self.invalid(format!(
                "record {} (offset {}): its data does not match its BLAKE3 hash",
                self.record.index, self.record.offset
            ))),
            _ => Ok(()),
        }
    }

    fn invalid(&self, reason: String) -> Error {
        Error::invalid_diff(&self.diff.path, Some(self.record.index), reason)
    }
}

/// A decoder that refuses frames asking for a window over 2^[`v3::MAX_ZSTD_WINDOW_LOG`] bytes.
fn new_decoder() -> std::io::Result<zstd::stream::raw::Decoder<'static>> {
    let mut decoder = zstd::stream::raw::Decoder::new()?;
    decoder.set_parameter(zstd::stream::raw::DParameter::WindowLogMax(
        v3::MAX_ZSTD_WINDOW_LOG,
    ))?;
    Ok(decoder)
}

/// `record (offset): ` before a reason about a compressed record.
fn about(record: &Record) -> String {
    format!("record {} (offset {})", record.index, record.offset)
}

impl ZstdInput {
    /// Decodes exactly `out.len()` bytes into `out`, reading the frame as needed.
    fn decode(&mut self, diff: &OpenFile, record: &Record, out: &mut [u8]) -> Result<(), String> {
        let mut filled = 0;
        while filled < out.len() {
            if self.ended {
                return Err(format!(
                    "{}: its zstd frame decodes to fewer bytes than its length {}",
                    about(record),
                    record.length
                ));
            }
            self.fill(diff, record)?;
            let (_, produced) = self.step(record, &mut out[filled..])?;
            filled += produced;
        }
        Ok(())
    }

    /// Reads more of the frame when the decoder has taken all it was given.
    fn fill(&mut self, diff: &OpenFile, record: &Record) -> Result<(), String> {
        if self.taken < self.input.len() || self.read == self.stored_length {
            return Ok(());
        }
        let length = (self.stored_length - self.read).min(FRAME_READ as u64) as usize;
        self.input.resize(length, 0);
        diff.read_at(record.data_at + self.read, &mut self.input)
            .map_err(|error| error.reason())?;
        self.read += length as u64;
        self.taken = 0;
        Ok(())
    }

    /// Once the record's length is decoded: the frame must end there, with nothing after it.
    fn end(&mut self, diff: &OpenFile, record: &Record) -> Result<(), String> {
        let mut extra = [0u8; 1];
        while !self.ended {
            self.fill(diff, record)?;
            let (_, produced) = self.step(record, &mut extra)?;
            if produced > 0 {
                return Err(format!(
                    "{}: its zstd frame decodes to more bytes than its length {}",
                    about(record),
                    record.length
                ));
            }
        }
        if self.taken < self.input.len() || self.read < self.stored_length {
            return Err(format!(
                "{}: bytes follow its zstd frame within its stored length",
                about(record)
            ));
        }
        Ok(())
    }

    /// One call of the decoder on what is read of the frame, into `out`: what it took and
    /// produced. A call that does neither, with the whole frame read, means the frame is cut
    /// short.
    fn step(&mut self, record: &Record, out: &mut [u8]) -> Result<(usize, usize), String> {
        use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
        let mut input = InBuffer::around(&self.input[self.taken..]);
        let mut output = OutBuffer::around(out);
        let hint = self.decoder.run(&mut input, &mut output).map_err(|error| {
            format!(
                "{}: its zstd data cannot be decoded: {error}",
                about(record)
            )
        })?;
        let (taken, produced) = (input.pos(), output.pos());
        self.taken += taken;
        if hint == 0 {
            self.ended = true;
        } else if taken == 0 && produced == 0 {
            return Err(format!("{}: its zstd frame is cut short", about(record)));
        }
        Ok((taken, produced))
    }
}
