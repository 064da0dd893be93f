//! The operations behind the commands, as a library: each takes open files and an options
//! struct, does its work through the engine, the format and the device handling, and returns
//! a summary or report. None prints, parses arguments or picks an exit code: the binary does
//! (src/commands/), and tests and fuzz targets call these directly.

pub mod backup;
pub mod inspect;
pub mod restore;
pub mod verify;

pub use backup::{backup, BackupOptions, BackupSummary, DiffFormat};
pub use inspect::{inspect, InspectOptions, Listing};
pub use restore::{restore, RestoreOptions, RestoreSummary};
pub use verify::{verify, State, VerifyOptions, VerifyReport};
