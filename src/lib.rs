//! diff-dd saves the sectors of an image that changed since a full dd image and restores them
//! safely. The binary (`main.rs`, `commands/`) parses, prints and picks exit codes; everything
//! else lives here so that tests, the man-page and completion generators and the fuzz targets
//! use the same code.
//!
//! Three parts do all the work, and every operation in [`ops`] is a short composition of them:
//! - [`engine`]: reading images in bounded buffers, sector comparison, BLAKE3, progress;
//! - [`format`]: the native diff format and the reader interface;
//! - [`device`]: opening files and block devices safely, positional I/O, atomic output.
//!
//! [`cli`] turns the command line into an operation's options; [`error`] is the one error
//! type and table of exit codes; [`render`] writes listings and reports.

pub mod chain;
pub mod cli;
pub mod device;
pub mod engine;
pub mod error;
pub mod format;
pub mod fs;
pub mod ops;
pub mod render;
pub mod units;
