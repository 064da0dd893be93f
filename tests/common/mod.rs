//! The test image generator, shared by the two integration-test crates: tests/cli (through
//! `#[path]` in tests/cli/util.rs) and tests/mutation.rs, which uses only some of it, hence
//! the allow.
#![allow(dead_code)]

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
