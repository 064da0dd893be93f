//! restore: apply a diff to a target that holds the base image.
//!
//! The guarantee, in order:
//! 1. The whole diff is read and checked (structure, order, bounds, every record hash, the
//!    whole-diff hash) before anything is written.
//! 2. The target must have the image's size (the caller opened it exclusively and locked).
//! 3. A dry run reads the target at every extent: each must hold the base data (to be
//!    written) or the new data (written already, skipped). Anything else stops the restore
//!    with nothing written, naming the first bad offset. So the wrong target and a diff
//!    applied twice are caught, and an interrupted restore is finished by running it again
//!    (the one record a killed restore may have left half-written is recognized by where it
//!    is and by its contents: see [`Frontier`]).
//! 4. Only then is the diff read a second time, each record's data checked against its hash
//!    before it is written and the target checked again at the extent, and the target synced.
//!    An error from the first write on says what the target holds ([`stopped_writing`]).
//!
//! For a native diff steps 1 and 3 are one pass ([`Pass::native`]): each run of records is
//! checked and looked up in the target on the pool, and a wrong target is reported only once
//! the whole diff, to its trailer, was found valid, so the order of the guarantees holds.
//!
//! Diffs of the original tool (v1, v2) hold no hashes and no image size: for them, step 1
//! checks structure and bounds against the target's size, and steps 3 and 4 cannot check
//! the target's contents or the data.

use std::cell::Cell;

use crate::device::{OpenFile, Writeback};
use crate::engine::{self, pool, IoBuffer, Progress, Stage};
use crate::error::{Error, Holds, Result, TargetState, Written};
use crate::format::v3::Decoder;
use crate::format::{
    self, DiffInfo, DiffReader, Format, ReadOptions, Record, RecordData, RecordHashes,
    RecordPieces, StoredRecords, Totals, PIECE,
};
use crate::units;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The sector size of a v1 diff, which does not record it.
    pub v1_sector_size: u64,
    /// The most bytes of the target read at once while checking it.
    pub buffer_size: u64,
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreSummary {
    pub format: Format,
    /// False for the original tool's formats: only structure and bounds could be checked.
    pub holds_hashes: bool,
    pub extent_count: u64,
    /// Extents written by this run.
    pub written: u64,
    pub bytes_written: u64,
    /// Extents that held their new data already (a rerun after an interrupted restore).
    pub already_restored: u64,
}

/// Applies `diff` to `target`, which holds the image the diff was made against (or, after an
/// interrupted restore, part of the new image).
pub fn restore(
    diff: &OpenFile,
    target: &OpenFile,
    options: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    // Legacy diffs record no image size: their records are bounded by the target's.
    let read_options = |check_data| ReadOptions {
        check_data,
        hash_file: false,
        v1_sector_size: options.v1_sector_size,
        target_size: Some(target.size),
    };

    let format = format::detect(diff)?;
    let mut pass = Pass {
        diff,
        target,
        buffer_size: options.buffer_size,
        scratch: IoBuffer::default(),
        record_data: Vec::new(),
    };
    let (checked, planned) = if format == Format::V3 {
        // One pass checks the whole diff and looks at the target at every extent, the records
        // decoded, checked and looked up on the pool; a wrong target is reported only once
        // the whole diff is known to be valid.
        progress.start(Stage::CheckingDiff, diff.size);
        pass.native(&read_options(true), Written::Nothing, progress)?
    } else {
        let scan = super::scan_diff(diff, &read_options(true), Stage::CheckingDiff, progress)?;
        check_size(diff, target, &scan.info)?;
        // The dry run need not check the whole diff again: each record's data is checked
        // against its hash before use, and the target at each extent against its hashes.
        progress.start(Stage::CheckingTarget, scan.totals.changed_bytes);
        let planned = pass.run(&read_options(false), Written::Nothing, progress)?;
        ((scan.info, scan.totals), planned)
    };
    let (info, totals) = checked;
    if planned.written > 0 {
        progress.start(Stage::Restoring, totals.changed_bytes);
        let writing = match format {
            Format::V3 => pass
                .native(&read_options(false), Written::Partly, progress)
                .map(drop),
            _ => pass
                .run(&read_options(false), Written::Partly, progress)
                .map(drop),
        };
        writing.map_err(|error| stopped_writing(error, target))?;
    }
    // Also when nothing was left to write: a restore killed after its last write but before
    // this sync may have left the data in the page cache only, and a rerun that reports
    // success must have it on the device.
    target
        .sync()
        .map_err(|error| stopped_writing(error, target))?;

    Ok(RestoreSummary {
        format: info.format,
        holds_hashes: totals.hashes.is_some(),
        extent_count: totals.extent_count,
        written: planned.written,
        bytes_written: planned.bytes_written,
        already_restored: planned.already_restored,
    })
}

/// The target must have the size of the image the diff was made from (legacy diffs, which do
/// not record it, were bounded by the target's size instead).
fn check_size(diff: &OpenFile, target: &OpenFile, info: &DiffInfo) -> Result<()> {
    let image_size = info.image_size.unwrap_or(target.size);
    require_size(target, image_size, || {
        format!("the diff {} was made from", diff.path.display())
    })
}

/// Refuses a target that is not `image_size` bytes, saying whose image that is (`whose`,
/// e.g. "the diff D was made from"): nothing was written.
pub(super) fn require_size(
    target: &OpenFile,
    image_size: u64,
    whose: impl FnOnce() -> String,
) -> Result<()> {
    if target.size == image_size {
        return Ok(());
    }
    Err(Error::WrongTarget {
        path: target.path.clone(),
        extent: None,
        offset: None,
        written: Written::Nothing,
        reason: format!(
            "it has {} but {} an image of {}; nothing was written",
            units::size(target.size),
            whose(),
            units::size(image_size)
        ),
    })
}

/// `error`, which stopped a restore in place in its writing run, with what it left in
/// `target`. A rerun checks the target again and finishes what was written in part, unless
/// the target was found changed since it was checked.
pub(super) fn stopped_writing(error: Error, target: &OpenFile) -> Error {
    let state = match (&error, target.was_written()) {
        (_, false) => TargetState::Untouched,
        // The target changed since the dry run, or the copy of the diff read back otherwise
        // than when it was checked (failing storage): a rerun may refuse either.
        (Error::WrongTarget { .. } | Error::InvalidDiff { .. }, true) => {
            TargetState::InPlace(Holds::PartChangedSince)
        }
        (_, true) => TargetState::InPlace(Holds::Part),
    };
    error.after_writing(&target.path, state)
}

/// One pass over the diff against the target: a dry run that only checks, or the writing run.
struct Pass<'a> {
    diff: &'a OpenFile,
    target: &'a OpenFile,
    buffer_size: u64,
    scratch: IoBuffer,
    /// One whole record's data, for records that carry a hash (bounded by the diff's record
    /// size limit, and by what the diff holds: the diff was checked whole before).
    record_data: Vec<u8>,
}

/// What the target holds where a record goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The data the diff replaces (or, for a legacy diff without hashes, anything).
    Base,
    /// The data the diff writes: restored already.
    New,
    /// Neither: the wrong target, or the record a killed restore was writing.
    Neither,
}

/// What restore does with one record, given what the target holds there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It holds the base data: write the record.
    Write,
    /// It holds the new data already: skip it.
    AlreadyRestored,
    /// It may be the record a killed restore tore: write it if the target holds the record's
    /// new data up to at least the first page boundary within it (see [`starts_torn`]).
    WriteIfTorn,
    /// The wrong target: stop.
    Wrong(Fault),
}

/// Why a target is the wrong one, at the record where that became clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The record holds neither its base data nor its new data, and cannot be the one a
    /// killed restore tore (one came before it, or a record before it holds base data).
    Neither,
    /// The record holds its new data, but the extent `torn` before it holds neither: a killed
    /// restore leaves only base data after the record it tore, so that one is not torn but
    /// wrong.
    NewAfterTorn { torn: u64, torn_offset: u64 },
}

/// Restore writes records in order, and the kernel writes a file page by page, so a restore
/// that was killed leaves records holding new data or base data in any mix, with at most one
/// torn record (new data up to a page boundary, base data after) before the first record
/// still holding base data and after none. A record in neither state is written only in that
/// position, and only if it is torn that way; anywhere else it means the wrong target.
#[derive(Debug, Default)]
pub struct Frontier {
    passed_base: bool,
    /// The extent taken for the torn one and its offset, once there is one.
    torn: Option<(u64, u64)>,
}

impl Frontier {
    /// The decision for the next record in diff order, `record`.
    pub fn decide(&mut self, record: &Record, found: Found) -> Decision {
        match (found, self.torn) {
            (Found::Base, _) => {
                self.passed_base = true;
                Decision::Write
            }
            (Found::New, None) => Decision::AlreadyRestored,
            (Found::New, Some((torn, torn_offset))) => {
                Decision::Wrong(Fault::NewAfterTorn { torn, torn_offset })
            }
            (Found::Neither, None) if !self.passed_base => {
                self.torn = Some((record.index, record.offset));
                Decision::WriteIfTorn
            }
            (Found::Neither, _) => Decision::Wrong(Fault::Neither),
        }
    }
}

/// Restore's decisions for a target, record by record in diff order, made as its dry run
/// makes them (what the target holds at each extent, [`Frontier::decide`], the torn check)
/// and with nothing written: so that verify says "run restore again" exactly when restore
/// would take the target. Each record is looked at even after the first refusal, so that
/// every extent is counted.
pub(super) struct Review<'a> {
    diff: &'a OpenFile,
    target: &'a OpenFile,
    buffer_size: u64,
    frontier: Frontier,
    scratch: IoBuffer,
    decoder: Decoder,
    stored: Vec<u8>,
    record_data: Vec<u8>,
    /// The first record restore would refuse the target at: which extent and why.
    refused: Option<(u64, String)>,
}

impl<'a> Review<'a> {
    pub(super) fn new(diff: &'a OpenFile, target: &'a OpenFile, buffer_size: u64) -> Review<'a> {
        Review {
            diff,
            target,
            buffer_size,
            frontier: Frontier::default(),
            scratch: IoBuffer::default(),
            decoder: Decoder::default(),
            stored: Vec::new(),
            record_data: Vec::new(),
            refused: None,
        }
    }

    /// What the target holds where `record`, the next record in diff order, goes; and, up to
    /// the first refusal, what restore would decide there.
    pub(super) fn look(&mut self, record: &Record) -> Result<Found> {
        let found = look_at_target(self.target, record, self.buffer_size, &mut self.scratch)?;
        if self.refused.is_some() {
            return Ok(found);
        }
        let fault = match self.frontier.decide(record, found) {
            Decision::Write | Decision::AlreadyRestored => None,
            Decision::WriteIfTorn if self.starts_torn(record)? => None,
            Decision::WriteIfTorn => Some(Fault::Neither),
            Decision::Wrong(fault) => Some(fault),
        };
        if let Some(fault) = fault {
            let (extent, _, what) = refusal(record, fault);
            self.refused = Some((extent, what));
        }
        Ok(found)
    }

    /// The extent restore would refuse the target at, and why; None when it would take it.
    pub(super) fn refused(&self) -> Option<&(u64, String)> {
        self.refused.as_ref()
    }

    /// The torn check restore makes, with the record's data read and checked from the diff
    /// (only native records have hashes, and so can be found in neither state).
    fn starts_torn(&mut self, record: &Record) -> Result<bool> {
        let data = if record.length > format::LONG_RECORD {
            RecordData::Long
        } else {
            format::load_record(
                self.diff,
                record,
                &mut self.decoder,
                &mut self.stored,
                &mut self.record_data,
            )?;
            RecordData::Held(&self.record_data)
        };
        starts_torn(self.diff, self.target, record, data, &mut self.scratch)
    }
}

/// What a pass found: the records (to be) written, and those restored already.
#[derive(Debug, Default)]
struct Planned {
    written: u64,
    bytes_written: u64,
    already_restored: u64,
}

impl Pass<'_> {
    /// Goes over every record. `stage` is what a wrong target found now would have had
    /// written: [`Written::Nothing`] in the dry run, which only checks; [`Written::Partly`]
    /// in the run that writes.
    fn run(
        &mut self,
        options: &ReadOptions,
        stage: Written,
        progress: &dyn Progress,
    ) -> Result<Planned> {
        let write = stage == Written::Partly;
        let mut reader = format::open_reader(self.diff, options)?;
        let mut planned = Planned::default();
        let mut frontier = Frontier::default();
        while let Some(record) = reader.next_record()? {
            progress.advance(record.length);
            let found = self.look_at_target(&record)?;
            let mut loaded = false;
            match frontier.decide(&record, found) {
                Decision::AlreadyRestored => {
                    planned.already_restored += 1;
                    continue;
                }
                Decision::Write => {}
                Decision::WriteIfTorn => {
                    let data = reader.read_record(&record, &mut self.record_data)?;
                    let data = RecordData::Held(data);
                    confirm_torn(
                        self.diff,
                        self.target,
                        &record,
                        data,
                        &mut self.scratch,
                        stage,
                    )?;
                    loaded = true;
                }
                Decision::Wrong(fault) => return Err(self.wrong_target(&record, fault, stage)),
            }
            planned.written += 1;
            planned.bytes_written += record.length;
            if write {
                self.write_record(reader.as_mut(), &record, loaded)?;
            }
        }
        Ok(planned)
    }

    fn look_at_target(&mut self, record: &Record) -> Result<Found> {
        look_at_target(self.target, record, self.buffer_size, &mut self.scratch)
    }

    /// A run over a native diff, the same decisions as [`Pass::run`] makes, with the work
    /// spread: runs of records are read here, decoded, checked against their hashes and looked
    /// up in the target on the engine's pool, then decided (and, in the writing run, written)
    /// here in order. Extents never overlap, so looking at one ahead of writing the ones
    /// before it sees what looking just before writing it would.
    ///
    /// The dry run (`Written::Nothing`, with `check_data`) is also the check of the whole
    /// diff: it reads every byte, checks the target's size once the header is read, and
    /// reports a wrong target only after the last record and the trailer were found valid, so
    /// that a damaged diff is always reported as such. It returns what the diff holds.
    fn native(
        &mut self,
        options: &ReadOptions,
        stage: Written,
        progress: &dyn Progress,
    ) -> Result<((DiffInfo, Totals), Planned)> {
        let write = stage == Written::Partly;
        let mut reader = format::open_reader(self.diff, options)?;
        // A target of the wrong size is not looked at, and is reported after the diff too.
        let mut wrong = check_size(self.diff, self.target, reader.info()).err();
        let look = wrong.is_none();
        let (diff, target, buffer_size) = (self.diff, self.target, self.buffer_size);
        let spare = Cell::new(None);
        let mut frontier = Frontier::default();
        let mut planned = Planned::default();
        let scratch = &mut self.scratch;
        let mut piece = Vec::new();
        let mut writeback = Writeback::default();
        let on_record = &mut |record: &Record| {
            if !write {
                progress.advance(record.stored.bytes_in_file(record.length));
            }
        };
        pool::scoped(
            engine::worker_count() as usize,
            StoredRecords::IN_FLIGHT,
            <(Decoder, IoBuffer)>::default,
            |(decoder, scratch), mut run: StoredRecords| {
                let found = run.check(&diff.path, decoder).and_then(|()| {
                    run.records
                        .iter()
                        .map(|record| match look {
                            true => look_at_target(target, record, buffer_size, scratch),
                            false => Ok(Found::Neither),
                        })
                        .collect::<Result<Vec<Found>>>()
                });
                (found, run)
            },
            |pool| {
                let mut take = |(found, run): (Result<Vec<Found>>, StoredRecords)| {
                    for (position, (record, found)) in run.records.iter().zip(found?).enumerate() {
                        if write {
                            progress.advance(record.length);
                        }
                        let data = run
                            .data(position)
                            .ok_or(Error::Internal("a record was handed out unchecked"))?;
                        if wrong.is_some() {
                            continue; // Only the diff is still being checked.
                        }
                        match frontier.decide(record, found) {
                            Decision::AlreadyRestored => {
                                planned.already_restored += 1;
                                continue;
                            }
                            Decision::Write => {}
                            Decision::WriteIfTorn => {
                                confirm_torn(diff, target, record, data, scratch, stage).or_else(
                                    |error| match (write, error) {
                                        (false, error @ Error::WrongTarget { .. }) => {
                                            wrong = Some(error);
                                            Ok(())
                                        }
                                        (_, error) => Err(error),
                                    },
                                )?;
                                if wrong.is_some() {
                                    continue;
                                }
                            }
                            Decision::Wrong(fault) => {
                                let error = wrong_target(target, record, fault, stage);
                                if write {
                                    return Err(error);
                                }
                                wrong = Some(error);
                                continue;
                            }
                        }
                        planned.written += 1;
                        planned.bytes_written += record.length;
                        if !write {
                            continue;
                        }
                        write_data(diff, target, record, data, &mut piece)?;
                        writeback.wrote(&target.file, record.offset, record.length);
                    }
                    spare.set(Some(run));
                    Ok(())
                };
                format::give_runs(reader.as_mut(), pool, on_record, &spare, &mut take)?;
                pool.finish(&mut take)
            },
        )?;
        if let Some(error) = wrong {
            return Err(error);
        }
        let totals = reader
            .totals()
            .cloned()
            .ok_or_else(|| Error::invalid_diff(&diff.path, None, "it ended without a trailer"))?;
        Ok(((reader.info().clone(), totals), planned))
    }

    /// Writes a record. One with a hash is read whole and checked before any of it is
    /// written (`loaded`: it was already); one without (legacy) is streamed in buffers.
    fn write_record(
        &mut self,
        reader: &mut dyn DiffReader,
        record: &Record,
        loaded: bool,
    ) -> Result<()> {
        if record.hashes.is_some() {
            if !loaded {
                reader.read_record(record, &mut self.record_data)?;
            }
            let data = &self.record_data[..record.length as usize];
            return self.target.write_at(record.offset, data);
        }
        let piece_limit = self.buffer_size.min(record.length);
        self.scratch
            .resize(self.scratch.len().max(piece_limit as usize));
        let mut written = 0;
        while written < record.length {
            let piece = piece_limit.min(record.length - written) as usize;
            let data = &mut self.scratch[..piece];
            reader.read_data(data)?;
            self.target.write_at(record.offset + written, data)?;
            written += piece as u64;
        }
        Ok(())
    }

    fn wrong_target(&self, record: &Record, fault: Fault, written: Written) -> Error {
        wrong_target(self.target, record, fault, written)
    }
}

/// Reads the target where `record` goes. A legacy record has no hashes to tell by, so it
/// counts as base data and is written.
fn look_at_target(
    target: &OpenFile,
    record: &Record,
    buffer_size: u64,
    scratch: &mut IoBuffer,
) -> Result<Found> {
    let Some(RecordHashes { new, base }) = record.hashes else {
        return Ok(Found::Base);
    };
    let scratch_len = buffer_size.min(record.length) as usize;
    scratch.resize(scratch.len().max(scratch_len));
    let (found, found_base) = engine::hash_range_and_blocks(
        target,
        record.offset,
        record.length,
        base.hashing.block_size(),
        &mut scratch[..scratch_len],
    )?;
    Ok(if found == new {
        Found::New
    } else if found_base == base.value {
        Found::Base
    } else {
        Found::Neither
    })
}

/// The error for a wrong target, found at `record`, with what was `written` by then.
fn wrong_target(target: &OpenFile, record: &Record, fault: Fault, written: Written) -> Error {
    let consequence = match written {
        Written::Nothing => "nothing was written",
        Written::Partly => "it changed since restore checked it",
    };
    let (extent, offset, what) = refusal(record, fault);
    Error::WrongTarget {
        path: target.path.clone(),
        extent: Some(extent),
        offset: Some(offset),
        written,
        reason: format!("{what}; {consequence}"),
    }
}

/// Why restore refuses a target, found at `record`: the extent at fault, its offset, and
/// what it holds there. One wording for restore and for verify, which foretells it.
fn refusal(record: &Record, fault: Fault) -> (u64, u64, String) {
    match fault {
        Fault::Neither => (
            record.index,
            record.offset,
            format!(
                "at byte {} (extent {}) it holds neither the base data the diff replaces nor the new data",
                record.offset, record.index
            ),
        ),
        Fault::NewAfterTorn { torn, torn_offset } => (
            torn,
            torn_offset,
            format!(
                "at byte {torn_offset} (extent {torn}) it holds neither the base data the diff replaces nor the new data, and that is no record an interrupted restore tore, since extent {} after it already holds its new data",
                record.index
            ),
        ),
    }
}

/// The page size of the page cache, which a killed write tears at.
pub const PAGE_SIZE: u64 = 4096;

/// Writes `record`'s checked data into the target: from memory, or for a long record in
/// pieces from the diff (`piece` holds one on the way).
fn write_data(
    diff: &OpenFile,
    target: &OpenFile,
    record: &Record,
    data: RecordData<'_>,
    piece: &mut Vec<u8>,
) -> Result<()> {
    if let RecordData::Held(data) = data {
        return target.write_at(record.offset, data);
    }
    let mut pieces = RecordPieces::new(diff, record)?;
    piece.resize(PIECE.min(record.length) as usize, 0);
    while pieces.position() < record.length {
        let at = pieces.position();
        let size = (record.length - at).min(PIECE) as usize;
        pieces.read(&mut piece[..size])?;
        target.write_at(record.offset + at, &piece[..size])?;
    }
    Ok(())
}

/// Writing a record that holds neither its base nor its new data is right only if it is the
/// one a killed restore tore: anything else is the wrong target, with what was `written`.
fn confirm_torn(
    diff: &OpenFile,
    target: &OpenFile,
    record: &Record,
    new_data: RecordData<'_>,
    scratch: &mut IoBuffer,
    written: Written,
) -> Result<()> {
    if starts_torn(diff, target, record, new_data, scratch)? {
        Ok(())
    } else {
        Err(wrong_target(target, record, Fault::Neither, written))
    }
}

/// True when the target holds `new_data` at least up to the first page boundary inside the
/// record, but not all of it: what a restore killed while writing this record leaves.
fn starts_torn(
    diff: &OpenFile,
    target: &OpenFile,
    record: &Record,
    new_data: RecordData<'_>,
    scratch: &mut IoBuffer,
) -> Result<bool> {
    if scratch.is_empty() {
        scratch.resize(record.length.clamp(1, 64 << 10) as usize);
    }
    // A long record's data is read from the diff beside the target's, a piece at a time.
    let mut long = match new_data {
        RecordData::Held(_) => None,
        RecordData::Long => Some((RecordPieces::new(diff, record)?, vec![0u8; scratch.len()])),
    };
    let first_page_end = (PAGE_SIZE - record.offset % PAGE_SIZE).min(record.length);
    let mut matching = 0u64;
    while matching < record.length {
        let piece = (scratch.len() as u64).min(record.length - matching) as usize;
        let held = &mut scratch[..piece];
        target.read_at(record.offset + matching, held)?;
        let expected = match (&mut long, new_data) {
            (Some((pieces, buffer)), _) => {
                pieces.read(&mut buffer[..piece])?;
                &buffer[..piece]
            }
            (None, RecordData::Held(data)) => &data[matching as usize..][..piece],
            (None, RecordData::Long) => {
                return Err(Error::Internal("a long record was not opened"))
            }
        };
        match held.iter().zip(expected).position(|(a, b)| a != b) {
            Some(first_difference) => {
                matching += first_difference as u64;
                break;
            }
            None => matching += piece as u64,
        }
    }
    Ok(matching >= first_page_end && matching < record.length)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;
    use Found::{Base, Neither, New};

    /// The decisions for targets holding `found` at successive records.
    fn decisions(found: &[Found]) -> Vec<Decision> {
        let mut frontier = Frontier::default();
        (0..)
            .zip(found)
            .map(|(index, &found)| {
                let record = Record {
                    index,
                    offset: index * 4096,
                    length: 4096,
                    hashes: None,
                    stored: crate::format::Stored::Raw,
                    data_at: 0,
                };
                frontier.decide(&record, found)
            })
            .collect()
    }

    #[test]
    fn restore_decisions() {
        let table: &[(&[Found], &[Decision])] = &[
            // A target ready for restore, and one restored already.
            (&[Base, Base, Base], &[Write, Write, Write]),
            (&[New, New, New], &[AlreadyRestored; 3]),
            // A killed restore: new data, at most one torn record, base data; or any mix of
            // new and base data (the page cache writes pages back in any order).
            (
                &[New, Neither, Base],
                &[AlreadyRestored, WriteIfTorn, Write],
            ),
            (&[Neither, Base, Base], &[WriteIfTorn, Write, Write]),
            (
                &[New, Base, New, Base],
                &[AlreadyRestored, Write, AlreadyRestored, Write],
            ),
            // Neither after base data, a second torn record, new data after a torn record:
            // the wrong target.
            (&[Base, Neither], &[Write, Wrong(Fault::Neither)]),
            (&[Neither, Neither], &[WriteIfTorn, Wrong(Fault::Neither)]),
            (
                &[New, Base, Neither],
                &[AlreadyRestored, Write, Wrong(Fault::Neither)],
            ),
            // New data after the record taken for torn: that record is the fault.
            (
                &[New, Neither, New],
                &[
                    AlreadyRestored,
                    WriteIfTorn,
                    Wrong(Fault::NewAfterTorn {
                        torn: 1,
                        torn_offset: 4096,
                    }),
                ],
            ),
            (
                &[Neither, New],
                &[
                    WriteIfTorn,
                    Wrong(Fault::NewAfterTorn {
                        torn: 0,
                        torn_offset: 0,
                    }),
                ],
            ),
        ];
        for (found, expected) in table {
            assert_eq!(&decisions(found), expected, "targets holding {found:?}");
        }
    }
}

/// The operation itself, on real files: what a caller gets back.
#[cfg(test)]
mod operation_tests {
    use std::fs;
    use std::path::Path;

    use super::*;
    use crate::device::{self, Output};
    use crate::engine::NoProgress;
    use crate::error::Role;
    use crate::ops::{backup, BackupOptions, DiffFormat};

    /// A base image, a new image changed in two places, and their diff (raw), in `work`.
    fn backed_up(work: &Path) -> (Vec<u8>, Vec<u8>) {
        backed_up_with(work, None, |_| {})
    }

    /// The same with a zstd level, and `change` made to the new image too.
    fn backed_up_with(
        work: &Path,
        compression: Option<i32>,
        change: impl FnOnce(&mut Vec<u8>),
    ) -> (Vec<u8>, Vec<u8>) {
        let base: Vec<u8> = (0..32_768u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut new = base.clone();
        new[100] ^= 1;
        new[20_000..21_000].fill(0xee);
        change(&mut new);
        fs::write(work.join("base.img"), &base).unwrap();
        fs::write(work.join("new.img"), &new).unwrap();
        let options = BackupOptions {
            sector_size: 512,
            buffer_size: 4096,
            format: DiffFormat::Native,
            created_unix_seconds: 0,
            force: false,
            compression,
        };
        let open = |name: &str, role| device::open_input(&work.join(name), role).unwrap();
        let output = Output::create(&work.join("d.diff"), false).unwrap();
        let reffile = open("base.img", Role::Reffile);
        let backup_base = crate::ops::backup::Base::Image {
            reffile: &reffile,
            on: &[],
        };
        let summary = backup(
            &open("new.img", Role::Infile),
            backup_base,
            output,
            &options,
            &NoProgress,
        )
        .unwrap();
        assert!(summary.extent_count >= 2);
        (base, new)
    }

    fn restore_onto(work: &Path, target_bytes: &[u8]) -> (Result<RestoreSummary>, Vec<u8>) {
        let target_path = work.join("target.img");
        fs::write(&target_path, target_bytes).unwrap();
        let diff = device::open_input(&work.join("d.diff"), Role::Diff).unwrap();
        let target = device::open_target(&target_path).unwrap();
        let options = RestoreOptions {
            v1_sector_size: 512,
            buffer_size: 1024,
        };
        let outcome = restore(&diff, &target, &options, &NoProgress);
        (outcome, fs::read(&target_path).unwrap())
    }

    #[test]
    fn restores_then_finds_nothing_left_to_write() {
        let work = tempfile::tempdir().unwrap();
        let (base, new) = backed_up(work.path());
        let (outcome, after) = restore_onto(work.path(), &base);
        let summary = outcome.unwrap();
        assert_eq!((summary.written, summary.already_restored), (2, 0));
        assert!(after == new);
        let (outcome, after) = restore_onto(work.path(), &new);
        let summary = outcome.unwrap();
        assert_eq!((summary.written, summary.already_restored), (0, 2));
        assert!(after == new);
    }

    #[test]
    fn the_wrong_target_is_refused_naming_the_extent_with_nothing_written() {
        let work = tempfile::tempdir().unwrap();
        let (mut wrong, _) = backed_up(work.path());
        wrong[20_500] ^= 0xff;
        let (outcome, after) = restore_onto(work.path(), &wrong);
        assert!(
            matches!(
                outcome,
                Err(Error::WrongTarget {
                    extent: Some(1),
                    offset: Some(19_968),
                    written: Written::Nothing,
                    ..
                })
            ),
            "{outcome:?}"
        );
        assert!(after == wrong);
    }

    #[test]
    fn a_damaged_diff_is_refused_naming_the_record_with_nothing_written() {
        let work = tempfile::tempdir().unwrap();
        let (base, _) = backed_up(work.path());
        let diff_path = work.path().join("d.diff");
        let mut diff = fs::read(&diff_path).unwrap();
        // 200 bytes before the footer and the trailer frame: inside record 1's data.
        let inside_record_1 = diff.len() - 48 - 200;
        diff[inside_record_1] ^= 0x10;
        fs::write(&diff_path, &diff).unwrap();
        let (outcome, after) = restore_onto(work.path(), &base);
        assert!(
            matches!(
                outcome,
                Err(Error::InvalidDiff {
                    record: Some(1),
                    ..
                })
            ),
            "{outcome:?}"
        );
        assert!(after == base);
    }

    /// Moves a record of the diff to another offset when the writing run begins, as a diff
    /// rewritten in place (or read back differently) between the two reads would. The writing
    /// run reads record headers again without the whole-diff hash, so it is the look at the
    /// target at each extent that catches this.
    struct MoveRecordWhenWriting<'a> {
        diff: &'a Path,
        field_at: u64,
        to_offset: u64,
    }

    impl Progress for MoveRecordWhenWriting<'_> {
        fn start(&self, stage: Stage, _total_bytes: u64) {
            if stage == Stage::Restoring {
                use std::os::unix::fs::FileExt;
                let diff = fs::OpenOptions::new().write(true).open(self.diff).unwrap();
                diff.write_all_at(&self.to_offset.to_le_bytes(), self.field_at)
                    .unwrap();
            }
        }
        fn advance(&self, _bytes: u64) {}
    }

    #[test]
    fn a_diff_that_changes_between_the_two_reads_writes_nothing_unchecked() {
        let work = tempfile::tempdir().unwrap();
        let (base, _) = backed_up(work.path());
        let diff_path = work.path().join("d.diff");
        // Record 1 starts at the sector holding byte 20,000; its offset is a u64 LE field.
        let record_offset = 20_000 / 512 * 512u64;
        let bytes = fs::read(&diff_path).unwrap();
        let field = record_offset.to_le_bytes();
        let places: Vec<usize> = (0..bytes.len() - 8)
            .filter(|&at| bytes[at..at + 8] == field)
            .collect();
        assert_eq!(places.len(), 1, "the offset field is not found once");
        let target_path = work.path().join("target.img");
        fs::write(&target_path, &base).unwrap();
        let diff = device::open_input(&diff_path, Role::Diff).unwrap();
        let target = device::open_target(&target_path).unwrap();
        let moved_to = 8192;
        let hook = MoveRecordWhenWriting {
            diff: &diff_path,
            field_at: places[0] as u64,
            to_offset: moved_to,
        };
        let options = RestoreOptions {
            v1_sector_size: 512,
            buffer_size: 1024,
        };
        let outcome = restore(&diff, &target, &options, &hook);
        let Err(Error::TargetWritten {
            error,
            state: TargetState::InPlace(Holds::PartChangedSince),
            ..
        }) = &outcome
        else {
            panic!("{outcome:?}");
        };
        assert!(
            matches!(
                **error,
                Error::WrongTarget {
                    offset: Some(8192),
                    written: Written::Partly,
                    ..
                }
            ),
            "{outcome:?}"
        );
        let after = fs::read(&target_path).unwrap();
        assert!(after[moved_to as usize..][..2048] == base[moved_to as usize..][..2048]);
    }

    #[test]
    fn compressed_and_zero_records_restore_and_rerun() {
        let work = tempfile::tempdir().unwrap();
        let (base, new) = backed_up_with(work.path(), Some(3), |new| new[8192..12288].fill(0));
        let diff = device::open_input(&work.path().join("d.diff"), Role::Diff).unwrap();
        let scan = crate::format::scan(&diff, &ReadOptions::checked(512, None), |_| {}).unwrap();
        assert!(
            scan.totals.stored_bytes < scan.totals.changed_bytes,
            "nothing was stored smaller"
        );
        let (outcome, after) = restore_onto(work.path(), &base);
        assert_eq!(outcome.unwrap().written, 3);
        assert!(after == new);
        let (outcome, after) = restore_onto(work.path(), &new);
        assert_eq!(outcome.unwrap().already_restored, 3);
        assert!(after == new);
    }
}
