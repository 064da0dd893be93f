//! Stage 1 of the audit ([`super`]): FULL and the image the chain gives, read side by side
//! within the chain's records only, once. What FULL holds there is checked against the first
//! diff (a wrong FULL would have the audit name another image's files), and compared with
//! what the chain lays over it, sector by sector: the sectors that differ are what the audit
//! explains, the records alone are not (a diff made from a digest records whole blocks, and
//! a later diff of a chain may set bytes back to the base's).

use crate::chain::Chain;
use crate::device::OpenFile;
use crate::engine::{Progress, RangeHasher, Stage};
use crate::error::{Error, Result};
use crate::format::{self, DiffReader, ReadOptions, Record};
use crate::fs::{self, Span};

/// The most read of each image at a time.
const PIECE: u64 = 1 << 20;

/// What reading FULL and the chain's image within the records found.
pub(super) struct Compared {
    /// The union of the chain's records, sorted and merged.
    pub covered: Vec<Span>,
    /// The sectors, cut to the records, whose bytes differ; sorted and merged.
    pub differing: Vec<Span>,
    /// The unit compared: the first diff's sector size.
    pub sector_size: u64,
}

/// Checks FULL at the first diff's extents and finds where the chain's image differs from it.
pub(super) fn compare(
    chain: &Chain<'_>,
    full: &OpenFile,
    progress: &dyn Progress,
) -> Result<Compared> {
    let covered = covered_spans(chain)?;
    // Links are native diffs, which all have one; 512 is what a sector is elsewhere.
    let sector_size = chain.first().scan.info.sector_size.unwrap_or(512).max(1);
    let mut check = FullCheck::new(chain, full)?;
    let overlay = chain.overlay();
    let mut ranges = overlay.ranges()?;
    let mut base = vec![0u8; PIECE as usize];
    let mut new = vec![0u8; PIECE as usize];
    let mut differing: Vec<Span> = Vec::new();
    progress.start(Stage::ComparingFull, fs::total(&covered));
    for span in &covered {
        let mut at = span.start;
        while at < span.end {
            // Pieces end on a sector boundary when one is in reach, so that a sector is
            // compared whole unless it is larger than a piece.
            let mut end = span.end.min(at + PIECE);
            if end < span.end && end / sector_size * sector_size > at {
                end = end / sector_size * sector_size;
            }
            let length = (end - at) as usize;
            let (base, new) = (&mut base[..length], &mut new[..length]);
            full.read_at(at, base)?;
            check.feed(at, base)?;
            new.copy_from_slice(base);
            ranges.segments(at, end, &mut |segment| {
                let into = (segment.offset - at) as usize;
                new[into..into + segment.data.len()].copy_from_slice(segment.data);
                Ok(())
            })?;
            let mut sector = at;
            while sector < end {
                let sector_start = sector / sector_size * sector_size;
                let sector_end = sector_start.saturating_add(sector_size);
                let until = sector_end.min(end);
                let (from, to) = ((sector - at) as usize, (until - at) as usize);
                if base[from..to] != new[from..to] {
                    push_merged(
                        &mut differing,
                        sector_start.max(span.start)..sector_end.min(span.end),
                    );
                }
                sector = until;
            }
            progress.advance(length as u64);
            at = end;
        }
    }
    check.finish()?;
    Ok(Compared {
        covered,
        differing,
        sector_size,
    })
}

/// Adds `span` (starting at or after the last one's start) to `spans`, merged with the last
/// one when they overlap or touch: a sector larger than a piece is found differing once per
/// piece.
fn push_merged(spans: &mut Vec<Span>, span: Span) {
    match spans.last_mut() {
        Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
        _ => spans.push(span),
    }
}

/// The union of the chain's records, sorted and merged.
fn covered_spans(chain: &Chain<'_>) -> Result<Vec<Span>> {
    let mut spans = Vec::new();
    for link in &chain.links {
        let mut reader = format::open_reader(link.diff, &ReadOptions::headers(512, None))?;
        while let Some(record) = reader.next_record()? {
            spans.push(record.offset..record.offset + record.length);
        }
    }
    fs::merge(&mut spans);
    Ok(spans)
}

/// Refuses a FULL that does not hold, at every extent of the first diff, the bytes the diff
/// replaced (the hashes each record holds of them): then it is not the image the chain starts
/// from, and the files named would be another image's. Fed FULL's bytes in order; the first
/// diff's records lie within the chain's, so each is fed whole.
struct FullCheck<'a> {
    full: &'a OpenFile,
    diff: &'a OpenFile,
    reader: Box<dyn DiffReader + Send + 'a>,
    /// The record being hashed, and its hasher.
    current: Option<(Record, RangeHasher)>,
}

impl<'a> FullCheck<'a> {
    fn new(chain: &Chain<'a>, full: &'a OpenFile) -> Result<FullCheck<'a>> {
        let diff = chain.first().diff;
        Ok(FullCheck {
            full,
            diff,
            reader: format::open_reader(diff, &ReadOptions::headers(512, None))?,
            current: None,
        })
    }

    /// The next record that holds the hash of the bytes it replaced, with a hasher for it.
    fn next_hashed(&mut self) -> Result<Option<(Record, RangeHasher)>> {
        while let Some(record) = self.reader.next_record()? {
            if let Some(hashes) = record.hashes {
                let block_size = hashes.base.hashing.block_size();
                let hasher = RangeHasher::new(self.full.size, record.offset, block_size);
                return Ok(Some((record, hasher)));
            }
        }
        Ok(None)
    }

    /// FULL's `bytes` at `offset`: the pieces come in order, and together they hold every
    /// byte of every record of the first diff.
    fn feed(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        let end = offset + bytes.len() as u64;
        loop {
            if self.current.is_none() {
                self.current = self.next_hashed()?;
            }
            let Some((record, hasher)) = self.current.as_mut() else {
                return Ok(());
            };
            let record_end = record.offset + record.length;
            let (from, to) = (record.offset.max(offset), record_end.min(end));
            if from < to {
                hasher.update(&bytes[(from - offset) as usize..(to - offset) as usize]);
            }
            if record_end > end {
                // It goes on in the next piece.
                return Ok(());
            }
            let Some((record, hasher)) = self.current.take() else {
                return Ok(());
            };
            self.check(&record, hasher)?;
        }
    }

    fn check(&self, record: &Record, hasher: RangeHasher) -> Result<()> {
        let (_, held) = hasher.finalize();
        if record
            .hashes
            .is_some_and(|hashes| hashes.base.value == held)
        {
            return Ok(());
        }
        Err(Error::unusable(
            "refusing FULL",
            &self.full.path,
            format!(
                "at byte {} ({} bytes) it does not hold what {} replaced there: it is not the full image the chain starts from",
                record.offset,
                record.length,
                self.diff.path.display()
            ),
        ))
    }

    /// Fails unless every record was fed whole and checked.
    fn finish(mut self) -> Result<()> {
        if self.current.is_some() || self.next_hashed()?.is_some() {
            return Err(Error::Internal(
                "a record of the first diff lies outside the chain's records",
            ));
        }
        Ok(())
    }
}
