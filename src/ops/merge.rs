//! merge: one diff equal to a chain of diffs applied in order, against the first one's base
//! (`merge [--base FULL] DIFF... OUTFILE`).
//!
//! Its records are the segments of the chain's records (each byte from the diff that gives it
//! last), each with its data hash and the hash of the base image's bytes it replaces, so that
//! restore's dry run works on it as on a diff made by backup. A segment that is a whole record
//! of a diff no earlier diff touches there has that record's base hash; any other segment's
//! base bytes are in no diff, and merge reads them from FULL (`--base`), only there. Its image
//! hashes are the first diff's base and the last diff's image hash. Before it is committed
//! under its name, the merged diff is read back and checked whole, as restore would check it.

use std::fs::File;
use std::io::BufWriter;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::chain::{self, Chain, Ranges, Segment};
use crate::device::{self, OpenFile, Output};
use crate::engine::{self, Progress, Stage};
use crate::error::{Action, Error, Result, Role};
use crate::format::v3::{self, Header};
use crate::format::{self, BaseHash, Format, ImageHashes, ReadOptions, Record};

#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// The zstd level record data is compressed at, or None for raw data.
    pub compression: Option<i32>,
    /// Seconds since 1970-01-01 UTC recorded in the header.
    pub created_unix_seconds: i64,
    pub buffer_size: u64,
    /// Replace an existing OUTFILE that is not this merge's result (and, for the command,
    /// read FULL from a device mounted read-write).
    pub force: bool,
}

/// What a merge wrote.
#[derive(Debug, Clone)]
pub struct MergeSummary {
    pub diff_count: u64,
    pub extent_count: u64,
    pub changed_bytes: u64,
    pub stored_bytes: u64,
    /// Bytes of FULL read for base hashes.
    pub base_bytes_read: u64,
    pub hashes: ImageHashes,
}

/// Refuses to replace an existing OUTFILE (`path`, links followed) unless it is empty or a diff
/// of exactly this merge's images (`merged`): a rerun of the same merge. Anything else is lost
/// if replaced: an image or other file, a diff of another chain, or (the likeliest slip) the
/// chain's own last diff, with OUTFILE left out, which another diff may have been made on.
/// Diffs of the original formats hold no hashes to tell, so they are refused too.
pub fn check_outfile(path: &Path, merged: &ImageHashes) -> Result<()> {
    // What is not a diff at all is refused as backup refuses it.
    super::backup::check_outfile(path, false, 512)?;
    let is_regular_file = std::fs::metadata(path).is_ok_and(|metadata| metadata.is_file());
    if !is_regular_file {
        return Ok(()); // Nothing there, or a device: Output::create decides.
    }
    let existing = device::open_input(path, Role::Outfile)?;
    if existing.size == 0 {
        return Ok(());
    }
    let refuse = |reason: String| {
        Err(Error::unusable(
            "refusing to replace OUTFILE",
            path,
            format!("{reason}; give --force to replace it"),
        ))
    };
    let held = match format::detect(&existing) {
        Ok(Format::V3) => format::scan(&existing, &ReadOptions::headers(512, None), |_| {})
            .ok()
            .and_then(|scan| scan.totals.hashes),
        Ok(format) => {
            return refuse(format!(
                "it is a {} diff, which holds no hashes to show that it is this merge's result",
                format.name()
            ))
        }
        Err(_) => None,
    };
    match held {
        Some(held) if held == *merged => Ok(()),
        Some(held) => refuse(format!(
            "it is a diff of other images ({}... -> {}...) than the merge gives ({}... -> {}...), as the chain's last diff is when OUTFILE is left out",
            chain::short(held.base),
            chain::short(held.image),
            chain::short(merged.base),
            chain::short(merged.image),
        )),
        None => refuse("it is a damaged diff, which cannot show that it is this merge's result".into()),
    }
}

/// Merges the chain `diffs` into `output`; `full`, when given, is the image the first diff
/// was made against, read where the diffs alone do not give a base hash.
pub fn merge(
    diffs: &[&OpenFile],
    full: Option<&OpenFile>,
    output: Output,
    options: &MergeOptions,
    progress: &dyn Progress,
) -> Result<MergeSummary> {
    let chain = Chain::check(diffs, progress)?;
    let first = chain.first();
    let sector_size = first.scan.info.sector_size.unwrap_or(512);
    for link in &chain.links[1..] {
        let other = link.scan.info.sector_size.unwrap_or(512);
        if other != sector_size {
            return Err(Error::unusable(
                "refusing to merge",
                &link.diff.path,
                format!(
                    "its sector size is {other}, but {} has {sector_size}: merge needs diffs of one sector size",
                    first.diff.path.display()
                ),
            ));
        }
    }
    if let Some(full) = full {
        chain.check_full_size(full)?;
    }
    let hashes = ImageHashes {
        base: chain.base_hash(),
        image: chain.image_hash(),
    };
    if !options.force {
        check_outfile(output.path(), &hashes)?;
    }
    let header = Header::of_this_version(
        sector_size,
        chain.image_size(),
        v3::record_size_limit(sector_size),
        options.created_unix_seconds,
        options.compression.is_some(),
    );
    let write_failed =
        |error: std::io::Error| Error::io(Action::Write, Role::Outfile, output.path(), error);
    let buffered = BufWriter::with_capacity(1 << 20, output.file());
    let mut writer = v3::Writer::new(buffered, &header, options.compression.unwrap_or(0))
        .map_err(write_failed)?;

    let mut merged = Merged {
        full,
        limit: header.record_size_limit as usize,
        pending_offset: 0,
        pending: Vec::new(),
        scratch: vec![0u8; options.buffer_size.min(1 << 20) as usize],
        summary: MergeSummary {
            diff_count: chain.links.len() as u64,
            extent_count: 0,
            changed_bytes: 0,
            stored_bytes: 0,
            base_bytes_read: 0,
            hashes,
        },
    };
    progress.start(Stage::Merging, chain.image_size());
    let overlay = chain.overlay();
    if header.record_size_limit > format::LONG_RECORD {
        // Records of one sector longer than any held whole: each sector the chain touches
        // (found from the records' headers) is a record, written in two passes over the
        // overlay, the first hashing it and the second writing it, each with a cursor that
        // goes on from the sector before.
        let image_size = chain.image_size();
        let mut passes = LongPasses {
            finding: overlay.ranges()?,
            hashing: overlay.ranges()?,
            writing: overlay.ranges()?,
        };
        let mut position = 0;
        while let Some(covered) = passes.finding.next_covered(position)? {
            let sector = covered / sector_size * sector_size;
            let length = sector_size.min(image_size - sector);
            merged.long_record(
                &chain,
                &mut passes,
                sector,
                length,
                &mut writer,
                &write_failed,
            )?;
            progress.advance(length);
            position = sector + length;
        }
    } else {
        overlay.segments(&mut |segment| {
            progress.advance(segment.data.len() as u64);
            merged.add(&chain, &segment, &mut |offset, data, base_hash| {
                writer
                    .write_record(offset, data, base_hash)
                    .map_err(write_failed)
            })
        })?;
    }
    merged.flush(&mut |offset, data, base_hash| {
        writer
            .write_record(offset, data, base_hash)
            .map_err(write_failed)
    })?;
    writer.finish(hashes).map_err(write_failed)?;
    check_merged(&output, &merged.summary)?;
    chain.check_unchanged(options.buffer_size)?;
    output.commit()?;
    Ok(merged.summary)
}

/// The records being made, gathered from the segments.
struct Merged<'a> {
    full: Option<&'a OpenFile>,
    limit: usize,
    /// With FULL, adjacent segments are joined into records of up to `limit` bytes: their
    /// base hash is read from FULL either way.
    pending_offset: u64,
    pending: Vec<u8>,
    scratch: Vec<u8>,
    summary: MergeSummary,
}

/// Writes one record: offset, data, base hash; returns the bytes its data takes.
/// The readers of the overlay that merging records of long sectors goes through, each
/// front to back: one finds the sectors the chain touches, one hashes each, one writes it.
struct LongPasses<'o, 'a> {
    finding: Ranges<'o, 'a>,
    hashing: Ranges<'o, 'a>,
    writing: Ranges<'o, 'a>,
}

type WriteRecord<'w> = dyn FnMut(u64, &[u8], BaseHash) -> Result<u64> + 'w;

impl Merged<'_> {
    fn add(
        &mut self,
        chain: &Chain<'_>,
        segment: &Segment<'_>,
        write: &mut WriteRecord<'_>,
    ) -> Result<()> {
        if let Some(full) = self.full {
            // Where the diffs know FULL's bytes (a whole record no earlier diff touches), FULL
            // must hold them: a FULL that is not the chain's base is refused rather than
            // written into the merged diff's base hashes.
            let record = segment.record;
            let whole =
                segment.offset == record.offset && segment.data.len() as u64 == record.length;
            if let (Some(hashes), true, false) = (record.hashes, whole, segment.over_earlier) {
                let (_, held) = engine::hash_range_and_blocks(
                    full,
                    record.offset,
                    record.length,
                    hashes.base.hashing.block_size(),
                    &mut self.scratch,
                )?;
                if held != hashes.base.value {
                    return Err(self.full_is_not_the_base(chain, segment.link, record));
                }
            }
            // A segment is never longer than its record; a record of a diff made with another
            // limit is cut.
            let mut at = segment.offset;
            for piece in segment.data.chunks(self.limit) {
                let adjacent = self.pending_offset + self.pending.len() as u64 == at;
                if !adjacent || self.pending.len() + piece.len() > self.limit {
                    self.flush(write)?;
                    self.pending_offset = at;
                }
                self.pending.extend_from_slice(piece);
                at += piece.len() as u64;
            }
            return Ok(());
        }
        let record = segment.record;
        let whole = segment.offset == record.offset && segment.data.len() as u64 == record.length;
        let base_hash = match record.hashes {
            Some(hashes) if whole && !segment.over_earlier && segment.data.len() <= self.limit => {
                hashes.base
            }
            _ => {
                return Err(Error::unusable(
                    "cannot merge without FULL",
                    &chain.links[segment.link].diff.path,
                    format!(
                        "the bytes at offset {} (of its record {}) {}, so the base bytes they replace are in no diff: give the full image the chain starts from with --base FULL",
                        segment.offset,
                        record.index,
                        if whole { "lie over a record of an earlier diff" } else { "are only part of that record, the rest given by another diff" }
                    ),
                ))
            }
        };
        self.record(segment.offset, segment.data, base_hash, write)
    }

    /// Writes the sector at `offset`, of `length` bytes, as one record in pieces: a first pass
    /// over the overlay hashes it, finds whether it is all zeros and whether it is one whole
    /// record of one diff with nothing earlier under it (whose base hash then serves); the
    /// base hash is otherwise FULL's there. A second pass writes it.
    fn long_record<W: std::io::Write>(
        &mut self,
        chain: &Chain<'_>,
        passes: &mut LongPasses<'_, '_>,
        offset: u64,
        length: u64,
        writer: &mut v3::Writer<W>,
        write_failed: &dyn Fn(std::io::Error) -> Error,
    ) -> Result<()> {
        let end = offset + length;
        let mut hasher = blake3::Hasher::new();
        let (mut covered, mut zero) = (0, true);
        // The one record that gives the whole sector, if one does.
        let mut whole: Option<(usize, Record)> = None;
        let mut single = true;
        passes.hashing.segments(offset, end, &mut |segment| {
            hasher.update(segment.data);
            zero = zero && segment.data.iter().all(|&byte| byte == 0);
            covered += segment.data.len() as u64;
            let record = segment.record;
            let same = whole
                .as_ref()
                .is_none_or(|(link, held)| *link == segment.link && held.index == record.index);
            single = single
                && same
                && !segment.over_earlier
                && record.offset == offset
                && record.length == length;
            whole = Some((segment.link, record.clone()));
            Ok(())
        })?;
        if covered != length {
            return Err(Error::Internal(
                "a merged sector is not covered by the chain",
            ));
        }
        let whole = whole.filter(|_| single);
        let known_base = whole
            .as_ref()
            .and_then(|(_, record)| record.hashes)
            .map(|hashes| hashes.base);
        let base_hash = match (self.full, known_base) {
            (Some(full), known) => {
                // The merged record's base hash is of FULL's bytes; the one FULL must match
                // there is taken as the record that gives the sector took it.
                let known_blocks = known.and_then(|known| known.hashing.block_size());
                let (held, held_as_known) = engine::hash_range_and_blocks(
                    full,
                    offset,
                    length,
                    known_blocks,
                    &mut self.scratch,
                )?;
                self.summary.base_bytes_read += length;
                if let (Some(known), Some((link, record))) = (known, &whole) {
                    if held_as_known != known.value {
                        return Err(self.full_is_not_the_base(chain, *link, record));
                    }
                }
                BaseHash::of_bytes(held)
            }
            (None, Some(known)) => known,
            (None, None) => {
                return Err(Error::unusable(
                    "cannot merge without FULL",
                    &chain.first().diff.path,
                    format!(
                        "the sector at offset {offset} is not one whole record of one diff with nothing under it, so the base bytes it replaces are in no diff: give the full image the chain starts from with --base FULL"
                    ),
                ))
            }
        };
        writer
            .begin_long_record(offset, length, hasher.finalize(), base_hash, zero)
            .map_err(write_failed)?;
        if !zero {
            passes.writing.segments(offset, end, &mut |segment| {
                writer.put_long_data(segment.data).map_err(write_failed)
            })?;
        }
        let stored = writer.end_long_record().map_err(write_failed)?;
        self.summary.extent_count += 1;
        self.summary.changed_bytes += length;
        self.summary.stored_bytes += stored;
        Ok(())
    }

    /// Writes the joined segments, their base hash read from FULL.
    fn flush(&mut self, write: &mut WriteRecord<'_>) -> Result<()> {
        let Some(full) = self.full else {
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        let length = self.pending.len() as u64;
        let base_hash = BaseHash::of_bytes(engine::hash_range(
            full,
            self.pending_offset,
            length,
            &mut self.scratch,
        )?);
        self.summary.base_bytes_read += length;
        let data = std::mem::take(&mut self.pending);
        // A record whose data equals FULL's bytes is kept: dropping it would trust FULL to be
        // the chain's base where nothing but its size was checked.
        let written = self.record(self.pending_offset, &data, base_hash, write);
        self.pending = data;
        self.pending.clear();
        written
    }

    /// The refusal of a FULL that does not hold, at `record` of diff `link`, the bytes that
    /// record replaced.
    fn full_is_not_the_base(&self, chain: &Chain<'_>, link: usize, record: &Record) -> Error {
        let full_path = self.full.map(|full| full.path.clone()).unwrap_or_default();
        Error::unusable(
            "refusing FULL",
            &full_path,
            format!(
                "at offset {} it does not hold what {} was made against (its record {}): it is not the full image the chain starts from",
                record.offset,
                chain.links[link].diff.path.display(),
                record.index
            ),
        )
    }

    fn record(
        &mut self,
        offset: u64,
        data: &[u8],
        base_hash: BaseHash,
        write: &mut WriteRecord<'_>,
    ) -> Result<()> {
        let stored = write(offset, data, base_hash)?;
        self.summary.extent_count += 1;
        self.summary.changed_bytes += data.len() as u64;
        self.summary.stored_bytes += stored;
        Ok(())
    }
}

/// Reads the merged diff back, before it has a name, and checks it whole as restore would:
/// structure, every record hash, the whole-diff hash; and that it holds what was written, with
/// the chain's image hashes.
fn check_merged(output: &Output, summary: &MergeSummary) -> Result<()> {
    let path = output.path();
    // The unnamed file is reached through its descriptor.
    let reopened = File::open(format!("/proc/self/fd/{}", output.file().as_raw_fd()))
        .map_err(|error| Error::io(Action::Read, Role::Outfile, path, error))?;
    let written = OpenFile::from_file(reopened, path, Role::Outfile)?;
    let scan = format::scan(&written, &ReadOptions::checked(512, None), |_| {})?;
    let as_made = scan.totals.extent_count == summary.extent_count
        && scan.totals.changed_bytes == summary.changed_bytes
        && scan.totals.hashes == Some(summary.hashes);
    if !as_made {
        return Err(Error::Internal(
            "the merged diff read back does not hold what was written",
        ));
    }
    Ok(())
}
