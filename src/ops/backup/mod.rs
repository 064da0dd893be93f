//! backup: compare INFILE with REFFILE (or, with `--digest`, with the block values of a digest
//! of it) in the engine and frame each changed extent into a diff, written to an [`Output`]
//! that appears under its name only once complete. The checks and the two backups are here;
//! the writing stage, which both share, is in `write.rs`.

use std::fs;
use std::io::{self, BufWriter};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::chain::{self, Chain};
use crate::device::{self, OpenFile, Output};
use crate::engine::{self, CompareSettings, CompareTotals, Progress, Stage};
use crate::error::{Action, Error, Result, Role};
use crate::format::digest;
use crate::format::legacy::V1Writer;
use crate::format::v3::{self, Header};
use crate::format::{self, BaseHashing, Format, ImageHashes, ReadOptions};
use crate::units;

mod write;

use write::{write_records, Counts, NativeRecords};

/// The formats backup can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffFormat {
    /// diff-dd's own format (v3): headers, hashes of every record and of both images.
    Native,
    /// The original diff-dd 1.0 format, byte for byte: offsets and sectors, no hashes.
    V1,
}

#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The granularity of comparison.
    pub sector_size: u64,
    /// How much of each image is read at once; it never changes the diff.
    pub buffer_size: u64,
    pub format: DiffFormat,
    /// The zstd level record data is compressed at, or None for raw data. Zero extents are
    /// stored without data either way.
    pub compression: Option<i32>,
    /// Seconds since 1970-01-01 UTC recorded in the header; see [`creation_time`].
    pub created_unix_seconds: i64,
    /// Replace an OUTFILE that is not a diff, write onto a block device, read an image from
    /// a device mounted read-write.
    pub force: bool,
}

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    pub extent_count: u64,
    pub changed_bytes: u64,
    /// What the changed bytes take in the diff: less when compressed or zero.
    pub stored_bytes: u64,
    pub image_size: u64,
    pub hashes: ImageHashes,
}

/// Refuses images that cannot be diffed with these options. Called before OUTFILE is
/// created, so a refusal touches nothing (and never waits on a FIFO given as OUTFILE).
pub fn check_inputs(new: &OpenFile, base: &OpenFile, options: &BackupOptions) -> Result<()> {
    device::require_same_size(new, base)?;
    if !options.force {
        device::refuse_read_write_mount(new)?;
        device::refuse_read_write_mount(base)?;
    }
    if options.format == DiffFormat::V1 && !new.size.is_multiple_of(options.sector_size) {
        return Err(Error::unusable(
            "cannot write a v1 diff",
            &new.path,
            format!(
                "INFILE has {}, not a whole number of {}-byte sectors, and v1 cannot hold a short last sector",
                units::size(new.size), options.sector_size
            ),
        ));
    }
    Ok(())
}

/// Refuses to replace an existing OUTFILE that is not a diff diff-dd can read (v3, v2, or a
/// structurally valid v1), unless forced: a nightly backup replaces yesterday's diff, but a
/// mistyped OUTFILE must not destroy an image. `path` has its links followed already.
pub fn check_outfile(path: &Path, force: bool, sector_size: u64) -> Result<()> {
    let is_regular_file = fs::metadata(path).is_ok_and(|metadata| metadata.is_file());
    if force || !is_regular_file {
        return Ok(()); // Nothing there, or a device or pipe: Output::create decides.
    }
    let existing = device::open_input(path, Role::Outfile)?;
    let is_diff = match format::detect(&existing) {
        Ok(Format::V2 | Format::V3) => true,
        // An empty file holds nothing to lose (and is what --format v1 writes for identical
        // images).
        Ok(Format::V1) => {
            existing.size == 0
                || [sector_size, 512, 4096].iter().any(|&sector_size| {
                    format::scan(&existing, &ReadOptions::headers(sector_size, None), |_| {})
                        .is_ok()
                })
        }
        Err(_) => existing.size == 0,
    };
    if is_diff {
        return Ok(());
    }
    Err(Error::unusable(
        "refusing to replace OUTFILE",
        path,
        format!(
            "it exists and is not a diff (it seems to be {}); give --force to replace it",
            format::describe_contents(&existing)
        ),
    ))
}

/// What a backup compares INFILE with.
pub enum Base<'a> {
    /// REFFILE, the full image, with the diffs of a chain made from it laid over it in order
    /// (none: REFFILE itself).
    Image {
        reffile: &'a OpenFile,
        on: &'a [&'a OpenFile],
    },
    /// A digest of the base image, opened (its whole hash, counts and footer checked), and
    /// where to write the digest of INFILE, if anywhere.
    Digest {
        /// Boxed: a reader holds a frame and a hasher, large beside the other variant.
        digest: Box<digest::Reader<'a>>,
        next: Option<Output>,
    },
}

/// Diffs `new` (INFILE) against `base` into `output`, and commits it under its name only when
/// the whole diff is written and synced: the one backup, whatever the base (see
/// [`from_image`] and [`from_digest`]).
pub fn backup(
    new: &OpenFile,
    base: Base<'_>,
    output: Output,
    options: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary> {
    match base {
        Base::Image { reffile, on } => from_image(new, reffile, on, output, options, progress),
        Base::Digest { digest, next } => from_digest(new, *digest, output, next, options, progress),
    }
}

/// The backup against REFFILE: diffs `new` against `base`. With diffs `on` (a chain made from
/// REFFILE, in order), `new` is diffed against REFFILE with their records laid over it: the
/// new diff continues the chain.
fn from_image(
    new: &OpenFile,
    base: &OpenFile,
    on: &[&OpenFile],
    output: Output,
    options: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary> {
    check_inputs(new, base, options)?;
    let chain =
        match on {
            [] => None,
            _ if options.format == DiffFormat::V1 => return Err(Error::Usage(
                "--on needs the native format: a v1 diff holds no hashes to link it to the chain"
                    .into(),
            )),
            _ => Some(Chain::check(on, progress)?),
        };
    if let Some(chain) = &chain {
        if chain.image_size() != new.size {
            return Err(Error::unusable(
                "refusing the chain",
                &chain.last().diff.path,
                format!(
                    "it is of an image of {}, but INFILE {} has {}",
                    units::size(chain.image_size()),
                    new.path.display(),
                    units::size(new.size)
                ),
            ));
        }
    }
    let overlay = chain.as_ref().map(Chain::overlay);
    let layer = overlay
        .as_ref()
        .map(|overlay| overlay as &dyn engine::Layer);
    let (settings, header) = diff_layout(new, options);
    let write_failed =
        |error: io::Error| Error::io(Action::Write, Role::Outfile, output.path(), error);
    let buffered = BufWriter::with_capacity(1 << 20, output.file());

    progress.start(Stage::Backup, new.size);
    let (totals, counts) = match options.format {
        DiffFormat::Native => {
            let level = options.compression.unwrap_or(0);
            let writer = v3::Writer::new(buffered, &header, level).map_err(write_failed)?;
            let (totals, records) = write_records(
                writer,
                &header,
                level,
                BaseHashing::Bytes,
                &write_failed,
                &mut |sink| {
                    engine::compare_images(new, base, layer, settings, progress, &mut |extent| {
                        sink(extent)
                    })
                },
            )?;
            finish_streams(new, base)?;
            if let Some(chain) = &chain {
                check_chain_base(chain, base, &totals)?;
            }
            records
                .writer
                .finish(image_hashes(&totals))
                .map_err(write_failed)?;
            (totals, records.counts)
        }
        // v1 has no place for hashes, nor for compression: nothing to do beside the writing.
        DiffFormat::V1 => {
            let mut writer = V1Writer::new(buffered, settings.sector_size);
            let mut counts = Counts::default();
            let totals =
                engine::compare_images(new, base, layer, settings, progress, &mut |extent| {
                    counts.add(extent.new_data.len() as u64, extent.new_data.len() as u64);
                    writer
                        .write_extent(extent.offset, extent.new_data)
                        .map_err(write_failed)
                })?;
            finish_streams(new, base)?;
            writer.finish().map_err(write_failed)?;
            (totals, counts)
        }
    };
    output.commit()?;
    Ok(BackupSummary {
        extent_count: counts.extents,
        changed_bytes: counts.changed_bytes,
        stored_bytes: counts.stored_bytes,
        image_size: new.size,
        hashes: image_hashes(&totals),
    })
}

/// Diffs `new` (INFILE) against the image `digest` describes into `output`, reading each once:
/// every block of INFILE whose value differs from the digest's is a record (whole blocks, since
/// a digest cannot tell which sectors of a block changed), its base hash taken over the
/// digest's values of its blocks ([`BaseHashing::Blocks`]); the diff's base hash is the
/// digest's image hash, the real BLAKE3 of the base image. With `next`, the digest of INFILE is
/// written in the same pass, with the same block size. Nothing appears under either name
/// unless the digest was read whole and found intact (its own hash, its values merging into
/// its image hash), and `next` is committed after OUTFILE, so that a digest never describes an
/// image no diff leads to.
fn from_digest(
    new: &OpenFile,
    mut digest: digest::Reader<'_>,
    output: Output,
    next: Option<Output>,
    options: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary> {
    if !options.force {
        device::refuse_read_write_mount(new)?;
    }
    let described = digest.header().clone();
    check_digest(new, &digest, options)?;
    if let Some(next) = &next {
        output.refuse_same_destination(next)?;
    }
    let block_size = described.block_size;
    let (settings, header) = diff_layout(new, options);
    let write_failed =
        |error: io::Error| Error::io(Action::Write, Role::Outfile, output.path(), error);
    let next_failed = |error: io::Error| {
        let path = next.as_ref().map_or(Path::new(""), |next| next.path());
        Error::io(Action::Write, Role::Next, path, error)
    };
    // The writers borrow the outputs until both are finished.
    let (counts, hashes) = {
        let mut next_writer = match &next {
            Some(next) => {
                let header = digest::Header::of_this_version(
                    new.size,
                    block_size,
                    options.created_unix_seconds,
                );
                let buffered = BufWriter::with_capacity(1 << 20, next.file());
                Some(digest::Writer::new(buffered, header).map_err(next_failed)?)
            }
            None => None,
        };
        let level = options.compression.unwrap_or(0);
        let buffered = BufWriter::with_capacity(1 << 20, output.file());
        let writer = v3::Writer::new(buffered, &header, level).map_err(write_failed)?;
        progress.start(Stage::Backup, new.size);
        let expected = engine::ValueWindow::new(|| digest.next_value());
        let (image_hash, records) = write_records(
            writer,
            &header,
            level,
            BaseHashing::Blocks { block_size },
            &write_failed,
            &mut |sink| {
                engine::compare_with_values(
                    new,
                    &expected,
                    block_size,
                    settings,
                    progress,
                    &mut |_, values| match &mut next_writer {
                        Some(writer) => values
                            .iter()
                            .try_for_each(|value| writer.push(*value))
                            .map_err(next_failed),
                        None => Ok(()),
                    },
                    &mut |extent| sink(extent),
                )
            },
        )?;
        drop(expected);
        new.finish_stream()?;
        // Every value was used: now the digest is checked whole, before the diff is finished.
        let base_hash = digest.finish()?;
        let hashes = ImageHashes {
            base: base_hash,
            image: image_hash,
        };
        let NativeRecords { writer, counts, .. } = records;
        writer.finish(hashes).map_err(write_failed)?;
        let next_merged = match next_writer {
            Some(writer) => Some(writer.finish().map_err(next_failed)?.1),
            None => None,
        };
        // The values of INFILE merge into the BLAKE3 the engine made of them: a check of the
        // merging, which a digest read later repeats.
        if next_merged.is_some_and(|merged| merged != image_hash) {
            return Err(Error::Internal(
                "the block values of INFILE do not merge into its BLAKE3",
            ));
        }
        (counts, hashes)
    };
    output.commit()?;
    if let Some(next) = next {
        next.commit()?;
    }
    Ok(BackupSummary {
        extent_count: counts.extents,
        changed_bytes: counts.changed_bytes,
        stored_bytes: counts.stored_bytes,
        image_size: new.size,
        hashes,
    })
}

/// Refuses a digest that cannot be the base of a backup of `new` with these options. Called
/// before OUTFILE is created, and again by the backup.
pub fn check_digest(
    new: &OpenFile,
    digest: &digest::Reader<'_>,
    options: &BackupOptions,
) -> Result<()> {
    let described = digest.header();
    if options.format == DiffFormat::V1 {
        return Err(Error::Usage(
            "--digest needs the native format: a v1 diff holds no hashes to check a target by"
                .into(),
        ));
    }
    if described.image_size != new.size {
        return Err(Error::unusable(
            "refusing DIGEST",
            digest.path(),
            format!(
                "it describes an image of {}, but INFILE {} has {}",
                units::size(described.image_size),
                new.path.display(),
                units::size(new.size)
            ),
        ));
    }
    if !described.block_size.is_multiple_of(options.sector_size) {
        return Err(Error::unusable(
            "refusing DIGEST",
            digest.path(),
            format!(
                "its blocks of {} are not whole sectors of {} bytes: give a sector size that divides the block size, or make the digest with a --block-size that is a multiple of the sector size",
                units::size(described.block_size),
                options.sector_size
            ),
        ));
    }
    Ok(())
}

/// REFFILE must be the image the chain starts from, and then the chain laid over it gives the
/// image its last diff was made from, unless a diff changed since it was checked. Found once
/// the images are read, but before the diff is finished: nothing appears under OUTFILE's name,
/// and a diff streamed to standard output has no trailer, so no reader takes it.
fn check_chain_base(chain: &Chain<'_>, base: &OpenFile, totals: &CompareTotals) -> Result<()> {
    if totals.under_layer_hash != Some(chain.base_hash()) {
        return Err(Error::unusable(
            "refusing REFFILE",
            &base.path,
            format!(
                "it is not the base of the chain: {} was made against an image with BLAKE3 {}..., and REFFILE's is {}...; nothing was written",
                chain.first().diff.path.display(),
                chain::short(chain.base_hash()),
                totals.under_layer_hash.map_or_else(String::new, chain::short)
            ),
        ));
    }
    if totals.base_hash != chain.image_hash() {
        return Err(Error::unusable(
            "refusing the chain",
            &chain.last().diff.path,
            format!(
                "laid over REFFILE it gives an image with BLAKE3 {}..., not {}..., its image hash (did a diff change while it was read?); nothing was written",
                chain::short(totals.base_hash),
                chain::short(chain.image_hash())
            ),
        ));
    }
    Ok(())
}

/// A stream must end where the other image does.
fn finish_streams(new: &OpenFile, base: &OpenFile) -> Result<()> {
    new.finish_stream()?;
    base.finish_stream()
}

fn image_hashes(totals: &CompareTotals) -> ImageHashes {
    ImageHashes {
        base: totals.base_hash,
        image: totals.image_hash,
    }
}

/// Now, or SOURCE_DATE_EPOCH when set, so that a diff can be made reproducibly.
pub fn creation_time() -> i64 {
    if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|text| text.trim().parse::<i64>().ok())
    {
        return epoch;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

/// How both backups read and compare, and the header of the diff they write: both depend on
/// the options and INFILE's size alone, never on the base.
fn diff_layout(new: &OpenFile, options: &BackupOptions) -> (CompareSettings, Header) {
    let settings = CompareSettings {
        sector_size: options.sector_size,
        buffer_size: options.buffer_size,
        record_limit: v3::record_size_limit(options.sector_size),
    };
    let header = Header::of_this_version(
        settings.sector_size,
        new.size,
        settings.record_limit,
        options.created_unix_seconds,
        options.compression.is_some(),
    );
    (settings, header)
}
