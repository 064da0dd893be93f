//! The input is an image that may hold an ext2/3/4 filesystem (the seeds are small real ones,
//! made by fuzz/seed.sh with mkfs). `diff_dd::fs::ext4`, the reader behind `inspect --files`,
//! opens it and is asked which inodes and metadata own a few byte ranges, then the paths of
//! those inodes: the questions the audit asks of each image.
//!
//! Errors are expected (`FsError::NotThere`, `FsError::Damaged`). What must hold: no panic,
//! no single allocation over 1 MiB (no count read from the filesystem may size one), and the
//! walk ends (the extent, indirect and directory walks are bounded by depth and by count).
//! The ranges asked about come from the input's first 32 bytes, which ext2/3/4 leaves to a
//! boot loader: four ranges of up to 8 KiB each.

#![no_main]

mod common;

use std::collections::HashMap;

use diff_dd::fs::ext4::{Ext4, Owner};
use diff_dd::fs::{self, FsError, Span};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

fn ranges(data: &[u8]) -> Vec<Span> {
    let mut spans: Vec<Span> = data
        .get(..32)
        .unwrap_or_default()
        .chunks_exact(8)
        .map(|chunk| {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
            let start = (word >> 16) % (data.len() as u64).max(1);
            start..start + (word & 0x1fff) + 1
        })
        .collect();
    fs::merge(&mut spans);
    spans
}

fn audit(image: &Vec<u8>, changed: &[Span]) -> Result<(), FsError> {
    let filesystem = Ext4::open(image)?;
    let owners = filesystem.owners(changed)?;
    let mut wanted: HashMap<u32, Option<Vec<u8>>> = HashMap::new();
    for claim in &owners.claims {
        assert!(claim.span.start < claim.span.end, "an empty claim");
        if let Owner::Data { inode, .. } | Owner::Map { inode, .. } = claim.owner {
            wanted.insert(inode, None);
        }
    }
    for &number in owners.records_touched.iter().take(64) {
        if filesystem.inode_in_use(number)? {
            wanted.insert(number, None);
        }
        let _ = filesystem.inode(number)?;
    }
    for span in changed {
        let block = span.start / filesystem.superblock.block_size;
        let _ = filesystem.block_in_use(block)?;
    }
    filesystem.paths(&mut wanted, owners.directories)?;
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let image = data.to_vec();
    let changed = ranges(data);
    let result = common::bounded("the ext4 reader", || audit(&image, &changed));
    if let Err(FsError::Read(error)) = result {
        // Every read is checked to lie in the filesystem, which is checked to fit the image.
        panic!("a read outside the image: {error}");
    }
});
