//! diff-dd saves the sectors of an image that changed since a full dd image and restores them
//! safely. The binary (`main.rs`) parses and dispatches; everything else lives here so that
//! tests, the man-page and completion generators and the fuzz targets use the same code.
//!
//! Three parts do all the work, and every command is a short composition of them:
//! - [`engine`]: reading images in bounded buffers, sector comparison, BLAKE3, progress;
//! - [`format`]: the native diff format and the reader interface;
//! - [`device`]: opening files and block devices safely, atomic output.

pub mod cli;
pub mod commands;
pub mod device;
pub mod engine;
pub mod exit;
pub mod format;
pub mod units;
