//! The integration tests that drive the built binary: one crate, so one link and one test
//! binary, with a module per area. Run one area with `cargo test --test cli faults::`.
//!
//! tests/mutation.rs stays a crate of its own: its counting allocator must see the
//! allocations of its one test and nothing else.

mod util;

mod chain_slips;
mod chains;
mod completion;
mod compression;
mod core;
mod digest;
mod digest_backup;
mod faults;
mod files;
mod format;
mod generated;
mod legacy;
mod loop_devices;
mod memory;
mod races;
mod slips;
mod streams;
mod target_state;
mod vectors;
mod verify;
