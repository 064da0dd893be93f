//! The input is a digest file, or (first byte odd) an image whose digest is written with the
//! public writer and then damaged in one bit chosen by the input. `format::digest::Reader`
//! reads it whole, as `verify --digest` does.
//!
//! What must hold: no panic, no single allocation over 1 MiB, every refusal an
//! `Error::InvalidDigest`; a digest that is read whole gives as many values as its header's
//! blocks; a digest written by the writer reads back with the image's BLAKE3, and with one bit
//! flipped is refused.

#![no_main]

mod common;

use blake3::hazmat::{ChainingValue, HasherExt};
use diff_dd::error::{Error, Result};
use diff_dd::format::digest::{Header, Reader, Writer};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

/// Reads the digest in `data` whole: its values and the image hash it states.
fn read(data: &[u8]) -> Result<(u64, blake3::Hash)> {
    let digest = common::diff_image(data);
    let mut reader = Reader::open(&digest)?;
    let expected = reader.header().block_count();
    let mut count = 0u64;
    while reader.next_value()?.is_some() {
        count += 1;
    }
    assert_eq!(count, expected, "values read vs the header's blocks");
    Ok((count, reader.finish()?))
}

fn checked(data: &[u8]) -> Result<(u64, blake3::Hash)> {
    let result = common::bounded("reading a digest", || read(data));
    if let Err(error) = &result {
        assert!(
            matches!(error, Error::InvalidDigest { .. }),
            "refused with an error other than InvalidDigest: {error:?}"
        );
    }
    result
}

/// The digest of `image` in blocks of 4 KiB, as `diff-dd digest --block-size 4K` writes it.
fn digest_of(image: &[u8]) -> Vec<u8> {
    const BLOCK: usize = 4096;
    let header = Header::of_this_version(image.len() as u64, BLOCK as u64, 0);
    let mut writer = Writer::new(Vec::new(), header).expect("a header");
    let count = image.len().div_ceil(BLOCK);
    for (index, block) in image.chunks(BLOCK).enumerate() {
        let value: ChainingValue = if count == 1 {
            *blake3::hash(block).as_bytes()
        } else {
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset((index * BLOCK) as u64);
            hasher.update(block);
            hasher.finalize_non_root()
        };
        writer.push(value).expect("a value");
    }
    let (bytes, hash) = writer.finish().expect("a digest");
    assert_eq!(
        hash,
        blake3::hash(image),
        "merged values vs the image's BLAKE3"
    );
    bytes
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((&first, rest)) if first & 1 == 1 && rest.len() >= 4 => {
            // Images of up to 48 KiB: a few frames' worth of 4 KiB blocks at most, repeated.
            let (at, image) = rest.split_at(4);
            let image: Vec<u8> = image
                .iter()
                .cycle()
                .take(image.len() * 97 % 49_152)
                .copied()
                .collect();
            let digest = digest_of(&image);
            let (count, hash) = checked(&digest).expect("a digest the writer wrote");
            assert_eq!(count, image.len().div_ceil(4096) as u64);
            assert_eq!(hash, blake3::hash(&image));
            let bit =
                u32::from_le_bytes([at[0], at[1], at[2], at[3]]) as usize % (digest.len() * 8);
            let mut damaged = digest;
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                checked(&damaged).is_err(),
                "a flipped bit {bit} was not refused"
            );
        }
        _ => {
            let _ = checked(data);
        }
    }
});
