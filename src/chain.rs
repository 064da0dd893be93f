//! Chains of diffs, each made against the image the one before it gives: checking that they
//! link, and the overlay, the image a base gives with the records of a chain laid over it.
//!
//! The overlay is what `backup --on` compares INFILE with and what one-pass restore copies
//! into its target. The engine reads it like any image ([`Layer`]): nothing is materialized,
//! and memory does not grow with the image nor with the number of diffs (each reading thread
//! keeps one small reader per diff and the data of two records).

use std::collections::HashMap;
use std::sync::Mutex;
use std::thread::{self, ThreadId};

use crate::device::OpenFile;
use crate::engine::{self, Layer, NoProgress, Progress, Stage};
use crate::error::{Error, Result};
use crate::format::{
    self, v3, DiffReader, Format, ImageHashes, ReadOptions, Record, RecordPieces, Scan,
};
use crate::units;

/// A diff of a chain, read and checked in full.
pub struct Link<'a> {
    pub diff: &'a OpenFile,
    pub scan: Scan,
    /// The diff's base and image hashes (native diffs hold them; a chain has no others).
    pub hashes: ImageHashes,
}

impl<'a> Link<'a> {
    /// `diff` as a link of a chain, `scan` what checking it in full found: refused unless it
    /// is a native diff, the only kind that holds the hashes a chain is checked by.
    pub fn new(diff: &'a OpenFile, scan: Scan) -> Result<Link<'a>> {
        match (scan.info.format, scan.totals.hashes) {
            (Format::V3, Some(hashes)) => Ok(Link { diff, scan, hashes }),
            (format, _) => Err(Error::unusable(
                "refusing the diff",
                &diff.path,
                format!(
                    "it is a {} diff ({}): chains and one-pass restore are checked by the hashes that only native diffs hold",
                    format.name(),
                    format.origin()
                ),
            )),
        }
    }
}

/// Diffs in chain order, each checked in full and each made against the image the one
/// before it gives: checked by hashes alone, before any image is read.
pub struct Chain<'a> {
    pub links: Vec<Link<'a>>,
}

impl<'a> Chain<'a> {
    /// Reads and checks every diff in full (structure, every record hash, the whole-diff
    /// hash, as restore does before it writes), then the links: all are of one image size,
    /// and each one's base hash is the image hash of the one before. A diff that does not
    /// link is refused naming it and the one before.
    pub fn check(diffs: &[&'a OpenFile], progress: &dyn Progress) -> Result<Chain<'a>> {
        let mut links: Vec<Link<'a>> = Vec::with_capacity(diffs.len());
        for &diff in diffs {
            progress.start(Stage::CheckingDiff, diff.size);
            // With the file's own hash, so that what was checked can be told from what is
            // there later ([`Chain::check_unchanged`]).
            let options = ReadOptions {
                hash_file: true,
                ..ReadOptions::checked(512, None)
            };
            let scan = format::scan(diff, &options, |record| {
                progress.advance(record.stored.bytes_in_file(record.length))
            })?;
            let link = Link::new(diff, scan)?;
            if let Some(previous) = links.last() {
                check_link(previous, &link)?;
            }
            links.push(link);
        }
        Chain::linked(links)
    }

    /// The chain of `links`, diffs read and checked in full already (verify reads each
    /// twice): refused, as by [`Chain::check`], unless each links to the one before.
    pub fn of_checked(links: Vec<Link<'a>>) -> Result<Chain<'a>> {
        for pair in links.windows(2) {
            check_link(&pair[0], &pair[1])?;
        }
        Chain::linked(links)
    }

    fn linked(links: Vec<Link<'a>>) -> Result<Chain<'a>> {
        if links.is_empty() {
            return Err(Error::Usage("a chain needs at least one diff".into()));
        }
        Ok(Chain { links })
    }

    /// The size of the image every diff of the chain is of.
    pub fn image_size(&self) -> u64 {
        self.links[0].scan.info.image_size.unwrap_or(0)
    }

    /// What the image the chain starts from hashes to: the first diff's base hash.
    pub fn base_hash(&self) -> blake3::Hash {
        self.links[0].hashes.base
    }

    /// What the image the chain ends with hashes to: the last diff's image hash.
    pub fn image_hash(&self) -> blake3::Hash {
        self.links[self.links.len() - 1].hashes.image
    }

    /// The bytes the chain's records hold, diff by diff (overlapping records count twice).
    pub fn changed_bytes(&self) -> u64 {
        self.links
            .iter()
            .map(|link| link.scan.totals.changed_bytes)
            .sum()
    }

    pub fn first(&self) -> &Link<'a> {
        &self.links[0]
    }

    pub fn last(&self) -> &Link<'a> {
        &self.links[self.links.len() - 1]
    }

    /// Fails unless every diff still holds the bytes that were checked: the overlay reads the
    /// diffs again (checking each record's data against its header, but not the headers
    /// against what was checked), so a command that wrote through it checks this after.
    pub fn check_unchanged(&self, buffer_size: u64) -> Result<()> {
        // A private copy cannot change: only the others are read again.
        for link in self.links.iter().filter(|link| !link.diff.is_private()) {
            let now = engine::hash_image(link.diff, buffer_size, false, &NoProgress)?;
            if Some(now) != link.scan.file_hash {
                return Err(Error::unusable(
                    "a diff changed while it was used",
                    &link.diff.path,
                    "its bytes are not those that were checked before the first write",
                ));
            }
        }
        Ok(())
    }

    /// Refuses `image` (named `what`: FULL, IMAGE), read whole with the BLAKE3 `read_hash`,
    /// unless it is the image the chain starts from.
    pub fn require_base(
        &self,
        image: &OpenFile,
        what: &str,
        read_hash: blake3::Hash,
    ) -> Result<()> {
        if read_hash == self.base_hash() {
            return Ok(());
        }
        Err(Error::unusable(
            format!("refusing {what}"),
            &image.path,
            format!(
                "its BLAKE3 is {}..., but {} was made against an image with BLAKE3 {}...: it is not the full image the chain starts from",
                short(read_hash),
                self.first().diff.path.display(),
                short(self.base_hash()),
            ),
        ))
    }

    /// Refuses a FULL (the image the chain starts from) that is not of the chain's size.
    pub fn check_full_size(&self, full: &OpenFile) -> Result<()> {
        if full.size == self.image_size() {
            return Ok(());
        }
        Err(Error::unusable(
            "refusing FULL",
            &full.path,
            format!(
                "it has {}, but {} is of an image of {}; nothing was written",
                units::size(full.size),
                self.first().diff.path.display(),
                units::size(self.image_size())
            ),
        ))
    }

    /// The chain as a layer over its base image.
    pub fn overlay(&self) -> Overlay<'_> {
        Overlay {
            diffs: self.links.iter().map(|link| link.diff).collect(),
            cursors: Mutex::new(HashMap::new()),
        }
    }
}

/// The first 16 hex digits of a hash, as inspect shows them.
pub fn short(hash: blake3::Hash) -> String {
    hash.to_hex()[..16].to_string()
}

fn check_link(previous: &Link<'_>, link: &Link<'_>) -> Result<()> {
    let (size, previous_size) = (link.scan.info.image_size, previous.scan.info.image_size);
    if size != previous_size {
        return Err(Error::unusable(
            "refusing the chain",
            &link.diff.path,
            format!(
                "it is of an image of {}, but {}, the diff before it, is of one of {}",
                units::size(size.unwrap_or(0)),
                previous.diff.path.display(),
                units::size(previous_size.unwrap_or(0))
            ),
        ));
    }
    if link.hashes.base != previous.hashes.image {
        return Err(Error::unusable(
            "refusing the chain",
            &link.diff.path,
            format!(
                "it was made against an image with BLAKE3 {}..., but {}, the diff before it, gives one with BLAKE3 {}...: the diffs are out of order, one is missing between them, or they are of different disks",
                short(link.hashes.base),
                previous.diff.path.display(),
                short(previous.hashes.image)
            ),
        ));
    }
    Ok(())
}

/// The records of a chain's diffs laid over an image: where records of several diffs cover a
/// byte, the later diff's wins. Each reading thread goes through the diffs with its own
/// cursor, front to back; a record's data is read, decoded and checked against its hash
/// again when it is laid (the diffs were checked whole before, but may have changed since).
/// A record longer than [`format::LONG_RECORD`] is laid in pieces, each handed out before
/// the record's hash is checked at its last byte (and never, when a later diff covers its
/// tail): what is laid is then vouched for by the whole-image hash every command checks
/// (one-pass restore's result, backup --on's base, merge's read-back), and restore reads a
/// private copy of each diff that was checked whole and cannot change.
pub struct Overlay<'a> {
    diffs: Vec<&'a OpenFile>,
    cursors: Mutex<HashMap<ThreadId, Cursor<'a>>>,
}

/// A record's data, decoded and checked, with which diff's and which record it is.
type LoadedRecord = (Option<(usize, u64)>, Vec<u8>);

/// One thread's place in every diff of the chain.
struct Cursor<'a> {
    /// Where the last slice it laid ended: it serves slices from here on.
    at: u64,
    /// Per diff, its reader (headers only) and its first record that ends after `at`.
    layers: Vec<(Box<dyn DiffReader + Send + 'a>, Option<Record>)>,
    /// The data of the last two records laid, decoded and checked, with which diff's and
    /// which record each is: two, so that small records of a later diff inside a long one of
    /// an earlier diff do not have the long one read and decoded again after each of them.
    loaded: [LoadedRecord; 2],
    /// Which of the two was used last.
    newest: usize,
    stored: Vec<u8>,
    decoder: v3::Decoder,
    /// A record longer than [`format::LONG_RECORD`], which diffs with large sectors hold:
    /// never loaded whole but read front to back, a piece of at most [`format::PIECE`] bytes
    /// at a time into `piece`; with which diff's and which record it is.
    long: Option<(usize, u64, RecordPieces<'a>)>,
    piece: Vec<u8>,
}

impl<'a> Overlay<'a> {
    fn take_cursor(&self, offset: u64) -> Result<Cursor<'a>> {
        let found = self
            .cursors
            .lock()
            .map_err(|_| Error::Internal("a thread reading the overlay failed"))?
            .remove(&thread::current().id());
        match found {
            Some(cursor) if cursor.at <= offset => Ok(cursor),
            // A thread that went back starts again from the front.
            _ => self.new_cursor(),
        }
    }

    fn new_cursor(&self) -> Result<Cursor<'a>> {
        let mut layers = Vec::with_capacity(self.diffs.len());
        for &diff in &self.diffs {
            let mut reader = format::open_reader(diff, &ReadOptions::headers(512, None))?;
            let first = reader.next_record()?;
            layers.push((reader, first));
        }
        Ok(Cursor {
            at: 0,
            layers,
            loaded: Default::default(),
            newest: 0,
            stored: Vec::new(),
            decoder: v3::Decoder::default(),
            long: None,
            piece: Vec::new(),
        })
    }
}

impl Overlay<'_> {
    /// Drops the reading threads' cursors (and the record data they hold), once a read
    /// through the overlay is over.
    pub fn forget_cursors(&self) {
        if let Ok(mut cursors) = self.cursors.lock() {
            cursors.clear();
        }
    }
}

impl Layer for Overlay<'_> {
    fn lay_over(&self, offset: u64, slice: &mut [u8]) -> Result<bool> {
        let mut cursor = self.take_cursor(offset)?;
        let end = offset + slice.len() as u64;
        let mut laid = false;
        cursor.walk(&self.diffs, offset, end, &mut |segment| {
            let into = (segment.offset - offset) as usize;
            slice[into..into + segment.data.len()].copy_from_slice(segment.data);
            laid = true;
            Ok(())
        })?;
        self.cursors
            .lock()
            .map_err(|_| Error::Internal("a thread reading the overlay failed"))?
            .insert(thread::current().id(), cursor);
        Ok(laid)
    }
}

/// A run of bytes of the overlay that one record of one diff gives.
pub struct Segment<'d> {
    pub offset: u64,
    /// Its bytes: the record's data there, decoded (and checked, but for a piece of a long
    /// record: see [`Overlay`]).
    pub data: &'d [u8],
    /// Which diff of the chain it comes from (counting from 0), and its record.
    pub link: usize,
    pub record: &'d Record,
    /// Whether a record of an earlier diff covers any of it: if not, the base image's bytes
    /// there are the bytes the record replaced, and the record's base hash is theirs when the
    /// segment is the whole record.
    pub over_earlier: bool,
}

impl<'a> Overlay<'a> {
    /// Every segment of the chain's records, front to back: where no diff has a record, the
    /// base image shows through and there is no segment.
    pub fn segments(&self, on_segment: &mut dyn FnMut(Segment<'_>) -> Result<()>) -> Result<()> {
        self.segments_within(0, u64::MAX, on_segment)
    }

    /// The segments between bytes `start` and `end` (cut there), front to back, read by a
    /// cursor of their own: so a range can be read again while [`Overlay::segments`] goes on.
    pub fn segments_within(
        &self,
        start: u64,
        end: u64,
        on_segment: &mut dyn FnMut(Segment<'_>) -> Result<()>,
    ) -> Result<()> {
        self.ranges()?.segments(start, end, on_segment)
    }

    /// A reader of ranges of the overlay with a cursor of its own, for ranges read in
    /// increasing order: each goes on through the diffs from where the last one ended.
    pub fn ranges(&self) -> Result<Ranges<'_, 'a>> {
        Ok(Ranges {
            overlay: self,
            cursor: self.new_cursor()?,
        })
    }
}

/// Ranges of an overlay read front to back ([`Overlay::ranges`]).
pub struct Ranges<'o, 'a> {
    overlay: &'o Overlay<'a>,
    cursor: Cursor<'a>,
}

impl Ranges<'_, '_> {
    /// The segments between bytes `start` and `end`; a range before the last one read makes
    /// the cursor start again from the front.
    pub fn segments(
        &mut self,
        start: u64,
        end: u64,
        on_segment: &mut dyn FnMut(Segment<'_>) -> Result<()>,
    ) -> Result<()> {
        if start < self.cursor.at {
            self.cursor = self.overlay.new_cursor()?;
        }
        self.cursor
            .walk(&self.overlay.diffs, start, end, on_segment)
    }

    /// The first byte at or after `from` that a record of the chain covers, if any, found
    /// from the records' headers alone; `from` must not go back.
    pub fn next_covered(&mut self, from: u64) -> Result<Option<u64>> {
        self.cursor.pass_records_ending_by(from)?;
        self.cursor.at = self.cursor.at.max(from);
        Ok(self
            .cursor
            .layers
            .iter()
            .filter_map(|(_, record)| record.as_ref().map(|record| record.offset.max(from)))
            .min())
    }
}

impl<'a> Cursor<'a> {
    /// Hands `on_segment` every segment between `offset` and `end`, in order.
    fn walk(
        &mut self,
        diffs: &[&'a OpenFile],
        offset: u64,
        end: u64,
        on_segment: &mut dyn FnMut(Segment<'_>) -> Result<()>,
    ) -> Result<()> {
        self.pass_records_ending_by(offset)?;
        let mut position = offset;
        while position < end {
            // Every current record ends after `position`: the winner is the last diff's that
            // has begun, and it wins until it ends or a later diff's record begins.
            let winner = self
                .layers
                .iter()
                .rposition(|(_, record)| record.as_ref().is_some_and(|r| r.offset <= position));
            let later = winner.map_or(0, |winner| winner + 1);
            let next_start = self.layers[later..]
                .iter()
                .filter_map(|(_, record)| record.as_ref().map(|record| record.offset))
                .min();
            let Some(winner) = winner else {
                // Nothing here: on to where the next record begins, if any does.
                match next_start {
                    Some(start) if start < end => position = start,
                    _ => break,
                }
                continue;
            };
            let record = self.layers[winner]
                .1
                .clone()
                .ok_or(Error::Internal("the overlay lost the record it lays"))?;
            let long = record.length > format::LONG_RECORD;
            let mut until = (record.offset + record.length)
                .min(next_start.unwrap_or(u64::MAX))
                .min(end);
            if long {
                until = until.min(position + format::PIECE);
            }
            let over_earlier = self.layers[..winner]
                .iter()
                .any(|(_, earlier)| earlier.as_ref().is_some_and(|r| r.offset < until));
            let from = position - record.offset;
            // Where the segment's bytes are: a piece of a long record, or a loaded record.
            let data: &[u8] = if long {
                self.read_long(diffs[winner], winner, &record, from, until - position)?;
                &self.piece[..(until - position) as usize]
            } else {
                let slot = self.load(diffs[winner], winner, &record)?;
                &self.loaded[slot].1[from as usize..][..(until - position) as usize]
            };
            on_segment(Segment {
                offset: position,
                data,
                link: winner,
                record: &record,
                over_earlier,
            })?;
            position = until;
            self.pass_records_ending_by(position)?;
        }
        self.at = end;
        Ok(())
    }

    /// Which of the two loaded records holds `record` of diff `link`, loading it (decoded and
    /// checked) into the one used longer ago when neither does.
    fn load(&mut self, diff: &OpenFile, link: usize, record: &Record) -> Result<usize> {
        let key = Some((link, record.index));
        let slot = match self.loaded.iter().position(|(loaded, _)| *loaded == key) {
            Some(slot) => slot,
            None => {
                let slot = 1 - self.newest;
                let (loaded, data) = &mut self.loaded[slot];
                *loaded = None;
                format::load_record(diff, record, &mut self.decoder, &mut self.stored, data)?;
                *loaded = key;
                slot
            }
        };
        self.newest = slot;
        Ok(slot)
    }

    /// Reads `length` bytes of the long record `record` of diff `link` from byte `from` of its
    /// data into `piece`, going on from where the last read of it ended (reading it again
    /// from its start only when a thread went back). The record's hash is checked when its
    /// last byte is read: the diffs were checked whole before, and a restore reads private
    /// copies of them that cannot change.
    fn read_long(
        &mut self,
        diff: &'a OpenFile,
        link: usize,
        record: &Record,
        from: u64,
        length: u64,
    ) -> Result<()> {
        let reusable = matches!(&self.long, Some((held_link, index, pieces))
            if *held_link == link && *index == record.index && pieces.position() <= from);
        if !reusable {
            self.long = Some((link, record.index, RecordPieces::new(diff, record)?));
        }
        let Some((_, _, pieces)) = self.long.as_mut() else {
            return Err(Error::Internal("the overlay lost the long record it reads"));
        };
        self.piece.resize(format::PIECE as usize, 0);
        pieces.skip(from - pieces.position(), &mut self.piece)?;
        pieces.read(&mut self.piece[..length as usize])
    }

    /// Moves every diff on to its first record that ends after `position`.
    fn pass_records_ending_by(&mut self, position: u64) -> Result<()> {
        for (reader, record) in &mut self.layers {
            while record
                .as_ref()
                .is_some_and(|record| record.offset + record.length <= position)
            {
                *record = reader.next_record()?;
            }
        }
        Ok(())
    }
}
