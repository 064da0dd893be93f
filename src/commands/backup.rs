//! backup: compare INFILE with REFFILE in the engine and frame each changed extent into a
//! native diff, written beside OUTFILE and renamed over it once complete.

use std::io::BufWriter;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::cli::BackupArgs;
use crate::device::{self, Output};
use crate::engine::{self, CompareSettings, Progress};
use crate::format::v3::{DataEncoding, Header, Writer};
use crate::units::human_bytes;

pub fn run(args: &BackupArgs) -> Result<()> {
    let options = &args.options;
    let started = Instant::now();
    let new = device::open_input(&args.infile, "INFILE")?;
    let base = device::open_input(&args.reffile, "REFFILE")?;
    engine::require_same_size(&new, &base)?;
    device::refuse_alias(&args.outfile, "OUTFILE", &[&new, &base])?;

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
    let mut writer = Writer::new(buffered, &header).with_context(output_context)?;

    let progress = Progress::new(!options.quiet, new.size, "backup");
    let (mut extent_count, mut changed_bytes) = (0u64, 0u64);
    let totals = engine::compare_images(&new, &base, settings, &progress, &mut |extent| {
        extent_count += 1;
        changed_bytes += extent.new_data.len() as u64;
        writer
            .write_record(extent.offset, extent.new_data, extent.base_hash)
            .with_context(output_context)
    })?;
    writer
        .finish(totals.base_hash, totals.new_hash)
        .with_context(output_context)?;
    output.commit()?;
    drop(progress);

    if options.verbose {
        eprintln!(
            "diff-dd: backup: {extent_count} extents, {} changed ({} of {} image), {}",
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
