//! digest: the block values of an image, or of the image a chain of diffs gives laid over it,
//! written as a digest ([`crate::format::digest`]); and `verify --digest`, whether a target
//! holds the image a digest describes.
//!
//! The guarantee of `digest`: IMAGE is read once, and the digest appears under its name only
//! when its values, merged, equal the BLAKE3 the engine computed of the same bytes on its own
//! (and, with a chain, IMAGE is the chain's base and the result its image), so that a digest
//! never describes an image that was not read.

use std::fs;
use std::io::{self, BufWriter};
use std::path::Path;
use std::sync::Mutex;

use crate::chain::{self, Chain};
use crate::device::{self, OpenFile, Output};
use crate::engine::{self, Progress, Stage};
use crate::error::{Action, Error, Result, Role};
use crate::format::digest;

#[derive(Debug, Clone)]
pub struct DigestOptions {
    /// A power of two from 4 KiB to 4 MiB.
    pub block_size: u64,
    /// How much of IMAGE is read at once; it never changes the digest.
    pub buffer_size: u64,
    /// Seconds since 1970-01-01 UTC recorded in the header.
    pub created_unix_seconds: i64,
    /// Replace an OUTFILE that is not a digest.
    pub force: bool,
}

/// What a digest describes.
#[derive(Debug, Clone)]
pub struct DigestSummary {
    pub image_size: u64,
    pub block_size: u64,
    pub block_count: u64,
    pub image_hash: blake3::Hash,
    pub diff_count: u64,
}

/// Refuses to replace an existing regular file that is not a digest, unless forced: a
/// mistyped OUTFILE (or NEXT, for backup --digest-out: `role`) must not destroy an image or a
/// diff. `path` has its links followed.
pub fn check_outfile(path: &Path, force: bool, role: Role) -> Result<()> {
    let is_regular_file = fs::metadata(path).is_ok_and(|metadata| metadata.is_file());
    if force || !is_regular_file {
        return Ok(());
    }
    let existing = device::open_input(path, role)?;
    let mut start = [0u8; digest::SIGNATURE.len()];
    let available = start.len().min(existing.size as usize);
    existing.read_at(0, &mut start[..available])?;
    if existing.size == 0 || digest::has_signature(&start[..available]) {
        return Ok(());
    }
    Err(Error::unusable(
        format!("refusing to replace {role}"),
        path,
        format!(
            "it exists and is not a digest (it seems to be {}); give --force to replace it",
            digest::what_it_is(&existing)
        ),
    ))
}

/// Writes the digest of `image`, with the chain `diffs` laid over it when there are any,
/// into `output`, and commits it under its name once it is written and synced.
pub fn digest(
    image: &OpenFile,
    diffs: &[&OpenFile],
    output: Output,
    options: &DigestOptions,
    progress: &dyn Progress,
) -> Result<DigestSummary> {
    digest::check_block_size(options.block_size).map_err(Error::Usage)?;
    let chain = match diffs {
        [] => None,
        _ => {
            let chain = Chain::check(diffs, progress)?;
            chain.check_full_size(image)?;
            Some(chain)
        }
    };
    let overlay = chain.as_ref().map(Chain::overlay);
    let layer = overlay
        .as_ref()
        .map(|overlay| overlay as &dyn engine::Layer);
    let header = digest::Header::of_this_version(
        image.size,
        options.block_size,
        options.created_unix_seconds,
    );
    let block_count = header.block_count();
    let write_failed =
        |error: io::Error| Error::io(Action::Write, Role::Outfile, output.path(), error);
    let buffered = BufWriter::with_capacity(1 << 20, output.file());
    let writer = digest::Writer::new(buffered, header).map_err(write_failed)?;
    let writer = Mutex::new(writer);
    progress.start(Stage::Digesting, image.size);
    let totals = engine::block_values(
        image,
        layer,
        options.block_size,
        options.buffer_size,
        progress,
        &mut |_, values| {
            let mut writer = writer
                .lock()
                .map_err(|_| Error::Internal("a writer of the digest failed"))?;
            for value in values {
                writer.push(*value).map_err(write_failed)?;
            }
            Ok(())
        },
    )?;
    let writer = writer
        .into_inner()
        .map_err(|_| Error::Internal("a writer of the digest failed"))?;
    if let Some(chain) = &chain {
        chain.require_base(image, "IMAGE", totals.image_hash)?;
        if totals.copied_hash != chain.image_hash() {
            return Err(Error::unusable(
                "refusing the chain",
                &chain.last().diff.path,
                format!(
                    "IMAGE with the chain laid over it has BLAKE3 {}..., not {}..., the image hash of the last diff (did a diff change while it was read?); nothing was written",
                    chain::short(totals.copied_hash),
                    chain::short(chain.image_hash()),
                ),
            ));
        }
    }
    let (_, image_hash) = writer.finish().map_err(write_failed)?;
    // The values merged must be the image the engine hashed: two computations of the same
    // bytes, so a digest that passes its own checks also describes what was read.
    if image_hash != totals.copied_hash {
        return Err(Error::Internal(
            "the block values do not merge into the image's BLAKE3",
        ));
    }
    if image.is_stream() {
        image.finish_stream()?;
    }
    output.commit()?;
    Ok(DigestSummary {
        image_size: image.size,
        block_size: options.block_size,
        block_count,
        image_hash,
        diff_count: diffs.len() as u64,
    })
}

/// The most differing blocks a report names; it counts them all.
pub const NAMED_BLOCKS: usize = 8;

/// What `verify --digest` found.
#[derive(Debug, Clone)]
pub struct DigestCheck {
    pub image_size: u64,
    pub block_size: u64,
    pub block_count: u64,
    /// The BLAKE3 of the image the digest describes.
    pub image_hash: blake3::Hash,
    pub target_size: u64,
    /// Blocks whose value in TARGET differs from the digest's (all of them when the sizes
    /// differ, since then the target was not read).
    pub differing_blocks: u64,
    /// The offsets of the first [`NAMED_BLOCKS`] of them.
    pub first_differing: Vec<u64>,
}

impl DigestCheck {
    /// True when TARGET holds the image the digest describes.
    pub fn holds_image(&self) -> bool {
        self.target_size == self.image_size && self.differing_blocks == 0
    }
}

/// Reads `target` once and the digest in step with it, and compares every block's value. The
/// digest is checked whole (its own hashes, and that its values merge into its image hash)
/// before the result is returned, so a damaged digest is an error, never a verdict.
pub fn verify_digest(
    digest_file: &OpenFile,
    target: &OpenFile,
    buffer_size: u64,
    progress: &dyn Progress,
) -> Result<DigestCheck> {
    let reader = digest::Reader::open(digest_file)?;
    let header = reader.header().clone();
    let block_count = header.block_count();
    let mut check = DigestCheck {
        image_size: header.image_size,
        block_size: header.block_size,
        block_count,
        image_hash: blake3::Hash::from_bytes([0; 32]),
        target_size: target.size,
        differing_blocks: 0,
        first_differing: Vec::new(),
    };
    if target.size != header.image_size {
        check.image_hash = reader.finish()?;
        check.differing_blocks = block_count;
        return Ok(check);
    }
    let reader = Mutex::new(reader);
    let found = Mutex::new((0u64, Vec::new()));
    progress.start(Stage::ReadingTarget, target.size);
    engine::block_values(
        target,
        None,
        header.block_size,
        buffer_size,
        progress,
        &mut |first_block, values| {
            let mut reader = reader
                .lock()
                .map_err(|_| Error::Internal("a reader of the digest failed"))?;
            let mut found = found
                .lock()
                .map_err(|_| Error::Internal("a reader of the digest failed"))?;
            for (index, value) in values.iter().enumerate() {
                let expected = reader
                    .next_value()?
                    .ok_or(Error::Internal("more blocks than the digest holds"))?;
                if expected != *value {
                    found.0 += 1;
                    if found.1.len() < NAMED_BLOCKS {
                        found
                            .1
                            .push((first_block + index as u64) * header.block_size);
                    }
                }
            }
            Ok(())
        },
    )?;
    let reader = reader
        .into_inner()
        .map_err(|_| Error::Internal("a reader of the digest failed"))?;
    check.image_hash = reader.finish()?;
    let (differing, first) = found
        .into_inner()
        .map_err(|_| Error::Internal("a reader of the digest failed"))?;
    check.differing_blocks = differing;
    check.first_differing = first;
    Ok(check)
}
