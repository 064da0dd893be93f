//! Helpers shared by the integration tests (each test file is its own crate and uses only
//! some of them, hence the allow).
#![allow(dead_code)]

use serde_json::Value;

/// The binary under test.
pub fn diff_dd() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("diff-dd").unwrap()
}

/// xorshift64*: deterministic, so the same images and mutants on every run and machine, and
/// a failure names a reproducible case.
pub struct Random(pub u64);

impl Random {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }

    pub fn bytes(&mut self, length: usize) -> Vec<u8> {
        (0..length).map(|_| self.next() as u8).collect()
    }
}

/// `(offset, length)` of every extent in an `inspect --json` listing.
pub fn listed_extents(listing: &Value) -> Vec<(u64, u64)> {
    listing["extents"]
        .as_array()
        .expect("the listing has an extents array")
        .iter()
        .map(|extent| {
            (
                extent["offset"].as_u64().unwrap(),
                extent["length"].as_u64().unwrap(),
            )
        })
        .collect()
}
