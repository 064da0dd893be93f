//! One file per command, each a short composition of the engine, the format and the device
//! handling.

pub mod backup;
pub mod completions;
pub mod inspect;
pub mod restore;
pub mod verify;

use std::time::Duration;

use crate::units::human_bytes;

/// `1.9 GiB/s`: bytes over the time they took.
fn throughput(bytes: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(1e-6);
    format!("{}/s", human_bytes((bytes as f64 / seconds) as u64))
}

/// `1.25%`: the share of the image a diff covers.
fn share(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".to_string();
    }
    format!("{:.2}%", part as f64 * 100.0 / whole as f64)
}

/// `1 extent`, `2 extents`.
fn count(number: u64, noun: &str) -> String {
    if number == 1 {
        format!("1 {noun}")
    } else {
        format!("{number} {noun}s")
    }
}
