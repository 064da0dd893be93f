//! backup: compare INFILE with REFFILE in the engine and frame each changed extent into a
//! diff, written to an [`Output`] that appears under its name only once complete.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::device::{self, OpenFile, Output};
use crate::engine::{self, CompareSettings, Progress, Stage};
use crate::error::{Action, Error, Result, Role};
use crate::format::legacy::V1Writer;
use crate::format::v3::{self, DataEncoding, Header};
use crate::format::{self, Format, ImageHashes, ReadOptions};
use crate::units;

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
        for image in [new, base] {
            // A filesystem that can change while it is read gives an image of no one moment.
            if let Some(mount_point) = device::read_write_mount_points(image).first() {
                return Err(Error::unusable(
                    format!("refusing to read {}", image.role),
                    &image.path,
                    format!(
                        "it is mounted read-write on {mount_point}, so it can change while it is read; unmount it or remount it read-only, or give --force"
                    ),
                ));
            }
        }
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
pub fn check_outfile(path: &Path, options: &BackupOptions) -> Result<()> {
    let is_regular_file = fs::metadata(path).is_ok_and(|metadata| metadata.is_file());
    if options.force || !is_regular_file {
        return Ok(()); // Nothing there, or a device or pipe: Output::create decides.
    }
    let existing = device::open_input(path, Role::Outfile)?;
    let is_diff = match format::detect(&existing) {
        Ok(Format::V2 | Format::V3) => true,
        // An empty file holds nothing to lose (and is what --format v1 writes for identical
        // images).
        Ok(Format::V1) => {
            existing.size == 0
                || [options.sector_size, 512, 4096].iter().any(|&sector_size| {
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

/// Diffs `new` (INFILE) against `base` (REFFILE) into `output`, and commits it under its
/// name only when the whole diff is written and synced.
pub fn backup(
    new: &OpenFile,
    base: &OpenFile,
    output: Output,
    options: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupSummary> {
    check_inputs(new, base, options)?;
    let settings = CompareSettings {
        sector_size: options.sector_size,
        buffer_size: options.buffer_size,
        record_limit: v3::record_size_limit(options.sector_size),
    };
    let header = Header {
        sector_size: settings.sector_size,
        image_size: new.size,
        record_size_limit: settings.record_limit,
        created_unix_seconds: options.created_unix_seconds,
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        data_encoding: match options.compression {
            Some(_) => DataEncoding::Zstd,
            None => DataEncoding::Raw,
        },
    };
    let write_failed =
        |error: io::Error| Error::io(Action::Write, Role::Outfile, output.path(), error);
    let buffered = BufWriter::with_capacity(1 << 20, output.file());
    let mut writer = match options.format {
        DiffFormat::Native => DiffWriter::Native(Box::new(
            v3::Writer::new(buffered, &header, options.compression.unwrap_or(0))
                .map_err(write_failed)?,
        )),
        DiffFormat::V1 => DiffWriter::V1(V1Writer::new(buffered, settings.sector_size)),
    };

    progress.start(Stage::Backup, new.size);
    let (mut extent_count, mut changed_bytes, mut stored_bytes) = (0u64, 0u64, 0u64);
    let totals = engine::compare_images(new, base, settings, progress, &mut |extent| {
        extent_count += 1;
        changed_bytes += extent.new_data.len() as u64;
        stored_bytes += writer
            .write_extent(extent.offset, extent.new_data, extent.base_hash)
            .map_err(write_failed)?;
        Ok(())
    })?;
    // A stream must end where the other image does.
    new.finish_stream()?;
    base.finish_stream()?;
    let hashes = ImageHashes {
        base: totals.base_hash,
        image: totals.image_hash,
    };
    writer.finish(hashes).map_err(write_failed)?;
    output.commit()?;
    Ok(BackupSummary {
        extent_count,
        changed_bytes,
        stored_bytes,
        image_size: new.size,
        hashes,
    })
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

/// The diff being written, in the format the user chose.
enum DiffWriter<W: Write> {
    // Boxed: the native writer carries a BLAKE3 hasher, which dwarfs the v1 writer.
    Native(Box<v3::Writer<W>>),
    V1(V1Writer<W>),
}

impl<W: Write> DiffWriter<W> {
    /// Writes an extent; returns the bytes its data takes in the diff.
    fn write_extent(
        &mut self,
        offset: u64,
        data: &[u8],
        base_hash: blake3::Hash,
    ) -> io::Result<u64> {
        match self {
            DiffWriter::Native(writer) => writer.write_record(offset, data, base_hash),
            // v1 has no place for hashes, nor for compression.
            DiffWriter::V1(writer) => writer
                .write_extent(offset, data)
                .map(|()| data.len() as u64),
        }
    }

    fn finish(self, hashes: ImageHashes) -> io::Result<W> {
        match self {
            DiffWriter::Native(writer) => writer.finish(hashes),
            DiffWriter::V1(writer) => writer.finish(),
        }
    }
}
