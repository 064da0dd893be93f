//! The operations behind the commands, as a library: each takes open files and an options
//! struct, does its work through the engine, the format and the device handling, and returns
//! a summary or report. None prints, parses arguments or picks an exit code: the binary does
//! (src/commands/), and tests and fuzz targets call these directly.

pub mod backup;
pub mod digest;
pub mod inspect;
pub mod inspect_files;
pub mod merge;
pub mod one_pass;
pub mod restore;
pub mod restore_chain;
pub mod verify;

pub use backup::{backup, BackupOptions, BackupSummary, DiffFormat};
pub use digest::{digest, verify_digest, DigestCheck, DigestOptions, DigestSummary};
pub use inspect::{inspect, InspectOptions, Listing};
pub use inspect_files::{inspect_files, FilesReport};
pub use merge::{merge, MergeOptions, MergeSummary};
pub use one_pass::{restore_one_pass, OnePassOptions, OnePassSummary, OnePassTarget};
pub use restore::{restore, RestoreOptions, RestoreSummary};
pub use restore_chain::restore_chain;
pub use verify::{verify, State, VerifyOptions, VerifyReport};

use crate::device::OpenFile;
use crate::engine::{Progress, Stage};
use crate::error::Result;
use crate::format::{self, ReadOptions, Scan};

/// [`format::scan`] as a stage of progress over the diff's bytes, which reaches its end when
/// the scan does.
fn scan_diff(
    diff: &OpenFile,
    options: &ReadOptions,
    stage: Stage,
    progress: &dyn Progress,
) -> Result<Scan> {
    progress.start(stage, diff.size);
    let mut reported = 0;
    let scan = format::scan(diff, options, |record| {
        reported += record.length;
        progress.advance(record.length);
    })?;
    // The rest is headers, trailer and footer.
    progress.advance(diff.size.saturating_sub(reported));
    Ok(scan)
}
