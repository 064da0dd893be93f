//! backup: compare INFILE with REFFILE in the engine and frame each changed extent into a
//! native diff, written beside OUTFILE and renamed over it once complete.

use std::io::{BufWriter, Write};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::cli::{BackupArgs, DiffFormat};
use crate::device::{self, Output};
use crate::engine::{self, CompareSettings, Progress};
use crate::format::legacy::V1Writer;
use crate::format::v3::{self, DataEncoding, Header};
use crate::units::human_bytes;

pub fn run(args: &BackupArgs) -> Result<()> {
    let options = &args.options;
    let started = Instant::now();
    let new = device::open_input(&args.infile, "INFILE")?;
    let base = device::open_input(&args.reffile, "REFFILE")?;
    engine::require_same_size(&new, &base)?;
    device::refuse_alias(&args.outfile, "OUTFILE", &[&new, &base])?;
    let format = args.format.unwrap_or(DiffFormat::Native);
    if format == DiffFormat::V1 && !new.size.is_multiple_of(options.sector_size()) {
        bail!(
            "cannot write a v1 diff: {} INFILE {} bytes is not a whole number of {}-byte sectors, and v1 cannot hold a short last sector",
            args.infile.display(),
            new.size,
            options.sector_size()
        );
    }

    let settings = CompareSettings {
        sector_size: options.sector_size(),
        buffer_size: options.buffer_size,
        // One record never outgrows one buffer, so restore can hold any record in memory.
        record_limit: options.buffer_size,
    };
    let header = Header {
        sector_size: settings.sector_size,
        image_size: new.size,
        record_size_limit: settings.record_limit,
        created_unix_seconds: creation_time(),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        data_encoding: DataEncoding::Raw,
    };
    let output_context = || format!("cannot write OUTFILE: {}", args.outfile.display());
    let output = Output::create(&args.outfile)?;
    let buffered = BufWriter::with_capacity(1 << 20, output.file());
    let mut writer = match format {
        DiffFormat::Native => DiffWriter::Native(Box::new(
            v3::Writer::new(buffered, &header).with_context(output_context)?,
        )),
        DiffFormat::V1 => DiffWriter::V1(V1Writer::new(buffered, settings.sector_size)),
    };

    let progress = Progress::new(!options.quiet, new.size, "backup");
    let (mut extent_count, mut changed_bytes) = (0u64, 0u64);
    let totals = engine::compare_images(&new, &base, settings, &progress, &mut |extent| {
        extent_count += 1;
        changed_bytes += extent.new_data.len() as u64;
        writer
            .write_extent(extent.offset, extent.new_data, extent.base_hash)
            .with_context(output_context)
    })?;
    writer
        .finish(totals.base_hash, totals.new_hash)
        .with_context(output_context)?;
    output.commit()?;
    drop(progress);

    if options.verbose {
        eprintln!(
            "diff-dd: backup: {}, {} changed ({} of {} image), {}",
            super::count(extent_count, "extent"),
            human_bytes(changed_bytes),
            super::share(changed_bytes, new.size),
            human_bytes(new.size),
            super::throughput(new.size, started.elapsed()),
        );
    }
    Ok(())
}

/// Now, or SOURCE_DATE_EPOCH when set, so that a diff can be made reproducibly.
fn creation_time() -> i64 {
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
    fn write_extent(&mut self, offset: u64, data: &[u8], base_hash: blake3::Hash) -> Result<()> {
        match self {
            DiffWriter::Native(writer) => writer.write_record(offset, data, base_hash),
            // v1 has no place for hashes.
            DiffWriter::V1(writer) => writer.write_extent(offset, data),
        }
    }

    fn finish(self, base_hash: blake3::Hash, image_hash: blake3::Hash) -> Result<W> {
        match self {
            DiffWriter::Native(writer) => writer.finish(base_hash, image_hash),
            DiffWriter::V1(writer) => writer.finish(),
        }
    }
}
