//! inspect: what a diff holds, from its frame headers, the data skipped.
//!
//! The extents come one at a time, as the headers are read, so memory stays bounded whatever
//! their number, and a corrupt diff yields everything up to the fault before the error. A v1
//! diff stores one record per sector; adjacent ones are listed as one extent.

use crate::device::OpenFile;
use crate::error::{Error, Result};
use crate::format::{self, DiffInfo, DiffReader, Format, ReadOptions, Record, Totals};

#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// The sector size of a v1 diff, which does not record it.
    pub v1_sector_size: u64,
}

/// Opens `diff` for listing: its header has been read and checked.
pub fn inspect<'a>(diff: &'a OpenFile, options: &InspectOptions) -> Result<Listing<'a>> {
    let reader = format::open_reader(diff, &ReadOptions::headers(options.v1_sector_size, None))?;
    let info = reader.info().clone();
    Ok(Listing {
        diff,
        join_adjacent: info.format == Format::V1,
        info,
        reader,
        pending: None,
        listed: 0,
        deferred_error: None,
    })
}

/// The extents of a diff, read on demand.
pub struct Listing<'a> {
    diff: &'a OpenFile,
    info: DiffInfo,
    reader: Box<dyn DiffReader + 'a>,
    join_adjacent: bool,
    /// The extent being joined from adjacent v1 records.
    pending: Option<Record>,
    listed: u64,
    /// A fault found while an extent was still pending: reported after that extent.
    deferred_error: Option<Error>,
}

impl Listing<'_> {
    pub fn diff(&self) -> &OpenFile {
        self.diff
    }

    pub fn info(&self) -> &DiffInfo {
        &self.info
    }

    /// The next extent, numbered from 0 in order; None after the last. After an error, the
    /// listing is over.
    pub fn next_extent(&mut self) -> Result<Option<Record>> {
        if let Some(error) = self.deferred_error.take() {
            return Err(error);
        }
        loop {
            let record = match self.reader.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => return Ok(self.take_pending()),
                Err(error) => match self.take_pending() {
                    Some(extent) => {
                        self.deferred_error = Some(error);
                        return Ok(Some(extent));
                    }
                    None => return Err(error),
                },
            };
            if let Some(pending) = &mut self.pending {
                if self.join_adjacent && pending.offset + pending.length == record.offset {
                    pending.length += record.length;
                    continue;
                }
            }
            let complete = self.take_pending();
            self.pending = Some(Record {
                index: self.listed,
                ..record
            });
            if complete.is_some() {
                return Ok(complete);
            }
        }
    }

    fn take_pending(&mut self) -> Option<Record> {
        let complete = self.pending.take()?;
        self.listed += 1;
        Some(complete)
    }

    /// The diff's totals, with the extents as listed, once `next_extent` has returned None.
    pub fn totals(&self) -> Result<Totals> {
        let mut totals = self.reader.totals().cloned().ok_or_else(|| {
            Error::invalid_diff(&self.diff.path, None, "it ended without a trailer")
        })?;
        totals.extent_count = self.listed;
        Ok(totals)
    }
}
