//! In-place restore of a chain: `restore DIFF... TARGET`, TARGET holding the full image the
//! first diff was made against.
//!
//! A single diff is restored record by record, each extent checked for its base or its new
//! data ([`super::restore`]). In a chain an extent can hold the bytes of any link: the full
//! image, or what a killed run of this restore wrote, which is the chain's last word there,
//! and the base bytes of a later diff's record are known only by a hash over that whole
//! record, whatever the records before it made of it. So the check is over the whole target
//! instead, by one hash:
//! 1. Every diff is read and checked in full, and the chain by hashes alone.
//! 2. The whole target is read with the chain's records laid over it (nothing written): that
//!    image must hash to the last diff's image hash. It does exactly when the target holds
//!    the full image everywhere the chain does not write, whatever it holds where it does
//!    (the full image's bytes, the chain's, or a record torn by a kill): so the wrong target,
//!    or one changed since, is refused with nothing written, and an interrupted restore is
//!    finished by running it again. A target that hashes to the image hash already is left
//!    as it is.
//! 3. Only then is every segment of the chain's records written where the target does not
//!    hold it yet (each record checked against its hash again when it is read), and the
//!    target synced; last, every diff must still hash as it did when it was checked, or the
//!    restore fails saying which changed. An error from the first write on says what the
//!    target holds, as for a single diff.

use crate::chain::{self, Chain, Segment};
use crate::device::{OpenFile, Writeback};
use crate::engine::{self, IoBuffer, Progress, Stage};
use crate::error::{Error, Result, Written};
use crate::format::Format;

use super::restore::{require_size, stopped_writing};
use super::RestoreSummary;

/// Applies the chain `diffs` to `target`, which holds the image the first was made against
/// (or, after an interrupted run, that image with some of the chain written).
pub fn restore_chain(
    diffs: &[&OpenFile],
    target: &OpenFile,
    buffer_size: u64,
    progress: &dyn Progress,
) -> Result<RestoreSummary> {
    let chain = Chain::check(diffs, progress)?;
    let image_size = chain.image_size();
    require_size(target, image_size, || "the chain is of".into())?;

    let overlay = chain.overlay();
    progress.start(Stage::CheckingTarget, image_size);
    let looked = engine::copy_image(target, &overlay, buffer_size, false, progress, &|_, _| {
        Ok(())
    })?;
    overlay.forget_cursors();
    let mut summary = RestoreSummary {
        format: Format::V3,
        holds_hashes: true,
        extent_count: 0,
        written: 0,
        bytes_written: 0,
        already_restored: 0,
    };
    if looked.image_hash == chain.image_hash() {
        // Restored already: count the segments the chain holds, and write nothing.
        let mut counted = Counted::default();
        overlay.segments(&mut |segment| {
            counted.piece(&segment, false, &mut summary);
            Ok(())
        })?;
        target.sync()?;
        return Ok(summary);
    }
    if looked.copied_hash != chain.image_hash() {
        return Err(Error::WrongTarget {
            path: target.path.clone(),
            extent: None,
            offset: None,
            written: Written::Nothing,
            reason: format!(
            "it does not hold the image {} was made against where the chain leaves it as it is: laid over it, the chain gives an image with BLAKE3 {}..., not {}..., the image hash of {}; nothing was written",
            chain.first().diff.path.display(),
            chain::short(looked.copied_hash),
            chain::short(chain.image_hash()),
            chain.last().diff.path.display()
        ),
        });
    }

    progress.start(Stage::Restoring, chain.changed_bytes());
    let mut held = IoBuffer::default();
    let mut writeback = Writeback::default();
    let mut counted = Counted::default();
    let writing = overlay.segments(&mut |segment| {
        progress.advance(segment.data.len() as u64);
        held.resize(segment.data.len());
        target.read_at(segment.offset, &mut held)?;
        if *held == *segment.data {
            counted.piece(&segment, false, &mut summary);
            return Ok(());
        }
        target.write_at(segment.offset, segment.data)?;
        counted.piece(&segment, true, &mut summary);
        summary.bytes_written += segment.data.len() as u64;
        let length = segment.data.len() as u64;
        writeback.wrote(&target.file, segment.offset, length);
        Ok(())
    });
    // The check above held for the diffs as they were read then.
    writing
        .and_then(|()| target.sync())
        .and_then(|()| chain.check_unchanged(buffer_size))
        .map_err(|error| stopped_writing(error, target))?;
    Ok(summary)
}

/// Counts segments, written or restored already, from the pieces the overlay hands out: a
/// long record's segment comes in pieces of 1 MiB, and is one segment, written if any piece
/// of it was.
#[derive(Default)]
struct Counted {
    /// The segment being counted: its diff, its record, where it has reached, and whether a
    /// piece of it was written.
    current: Option<(usize, u64, u64, bool)>,
}

impl Counted {
    fn piece(&mut self, segment: &Segment<'_>, written: bool, summary: &mut RestoreSummary) {
        let end = segment.offset + segment.data.len() as u64;
        match &mut self.current {
            Some((link, index, reached, any_written))
                if *link == segment.link
                    && *index == segment.record.index
                    && *reached == segment.offset =>
            {
                *reached = end;
                if written && !*any_written {
                    *any_written = true;
                    summary.already_restored -= 1;
                    summary.written += 1;
                }
            }
            _ => {
                summary.extent_count += 1;
                match written {
                    true => summary.written += 1,
                    false => summary.already_restored += 1,
                }
                self.current = Some((segment.link, segment.record.index, end, written));
            }
        }
    }
}
