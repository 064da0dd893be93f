//! The input is a diff file. It is read the ways restore reads a diff, through the same
//! library code: format detection (v3, v2 by its signature, otherwise v1 with a sector size
//! from the first byte), then
//!
//! 1. a pass over the record headers only (`DataMode::SkipData`, no target: as inspect reads),
//!    which tells where the records end, and so the target size to check against (derived
//!    from that and the last byte: exact, larger, smaller, beyond any device);
//! 2. `format::scan` in `DataMode::Check` against that target: restore's validation of the
//!    whole diff, every byte read, record hashes and the whole-diff hash checked;
//!
//! and, when the diff passes:
//!
//! 3. restore's dry run (`SkipData` against the target) and its writing pass (`Check`, record
//!    data read with `read_data` in pieces of a size from the second-to-last byte, some records
//!    only partly, the rest left to `next_record`).
//!
//! Errors are expected. What must hold: no panic, no single allocation over 1 MiB, every
//! record a reader hands out is in order, non-empty, within bounds and within the record size
//! limit, totals exist once the records end, and a diff that passes reads the same (records,
//! totals, BLAKE3 of the whole file) in every pass.

#![no_main]

mod common;

use anyhow::Result;
use diff_dd::device::Image;
use diff_dd::format::{self, DataMode, DiffInfo, Format, ReadOptions, Record, Totals};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

fuzz_target!(|data: &[u8]| {
    let diff = common::diff_image(data);
    let mut scratch = vec![0u8; 64 << 10];
    common::bounded("reading the diff", || check(&diff, data, &mut scratch));
});

/// What a pass saw of the records, whether or not it reached the end.
#[derive(Default)]
struct Seen {
    format: Option<Format>,
    count: u64,
    changed_bytes: u64,
    records_end: u64,
    /// Hashes every record header, so passes can be compared without keeping the records.
    fingerprint: blake3::Hasher,
    /// Checked record by record: what every record handed out must satisfy.
    previous_end: u64,
}

impl Seen {
    fn add(&mut self, info: &DiffInfo, options: &ReadOptions, record: &Record) {
        let label = || {
            format!(
                "record {} ({record:?}) of a {:?} diff",
                self.count, info.format
            )
        };
        assert_eq!(
            record.index,
            self.count,
            "{}: index out of sequence",
            label()
        );
        assert!(record.length > 0, "{}: empty", label());
        assert!(
            self.count == 0 || record.offset >= self.previous_end,
            "{}: overlaps the previous record, which ends at {}",
            label(),
            self.previous_end
        );
        let end = record.offset.checked_add(record.length);
        let end = end.unwrap_or_else(|| panic!("{}: its end overflows", label()));
        assert!(end <= i64::MAX as u64, "{}: beyond any device", label());
        if let Some(image_size) = info.image_size {
            assert!(
                end <= image_size,
                "{}: past the image size {image_size}",
                label()
            );
        } else if let Some(target_size) = options.target_size {
            assert!(
                end <= target_size,
                "{}: past the target size {target_size}",
                label()
            );
        }
        if let Some(limit) = info.record_size_limit {
            assert!(
                record.length <= limit,
                "{}: over the limit {limit}",
                label()
            );
        }
        assert_eq!(
            record.new_hash.is_some(),
            info.format == Format::V3,
            "{}: hashes only in v3",
            label()
        );
        self.count += 1;
        self.changed_bytes += record.length;
        self.records_end = self.records_end.max(end);
        self.previous_end = end;
        self.fingerprint.update(&record.offset.to_le_bytes());
        self.fingerprint.update(&record.length.to_le_bytes());
        for hash in [record.new_hash, record.base_hash].into_iter().flatten() {
            self.fingerprint.update(hash.as_bytes());
        }
    }
}

/// What a pass that reached the end of the diff found.
struct Done {
    totals: Totals,
    file_hash: Option<blake3::Hash>,
}

/// How a pass reads record data: not at all, or in pieces of this size.
#[derive(Clone, Copy)]
enum Data {
    Leave,
    Pieces(usize),
}

/// Reads the diff once through a `DiffReader`, checking every record it hands out.
fn read_all(
    diff: &Image,
    options: &ReadOptions,
    data: Data,
    scratch: &mut [u8],
    seen: &mut Seen,
) -> Result<Done> {
    let mut reader = format::open_reader(diff, options)?;
    let info = reader.info().clone();
    seen.format = Some(info.format);
    while let Some(record) = reader.next_record()? {
        seen.add(&info, options, &record);
        let Data::Pieces(piece) = data else { continue };
        // Every third record is read only in part: `next_record` must read (Check) or skip
        // the rest, as when restore finds a record already restored.
        let partial = record.index % 3 == 1;
        let mut left = record.length;
        while left > 0 {
            let length = (piece as u64).min(left) as usize;
            reader.read_data(&mut scratch[..length])?;
            left -= length as u64;
            if partial {
                break;
            }
        }
        // Asking for more than the record holds is refused, never a read past it.
        if left == 0 {
            assert!(
                reader.read_data(&mut scratch[..1]).is_err(),
                "read_data past the end of record {} succeeded",
                record.index
            );
        }
    }
    let totals = reader.totals().cloned();
    let totals = totals.expect("next_record returned None but there are no totals");
    // Reading again after the end stays at the end.
    assert!(reader.next_record()?.is_none(), "a record after the end");
    Ok(Done {
        totals,
        file_hash: reader.file_hash(),
    })
}

/// `DIFF_DD_FUZZ_VERBOSE=1` prints what each input did, for triage (`diff_reader FILE...`).
fn verbose() -> bool {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("DIFF_DD_FUZZ_VERBOSE").is_some())
}

fn options(mode: DataMode, v1_sector_size: u64, target_size: Option<u64>) -> ReadOptions {
    ReadOptions {
        mode,
        v1_sector_size,
        target_size,
    }
}

fn check(diff: &Image, data: &[u8], scratch: &mut [u8]) {
    let v1_sector_size = common::v1_sector_size(data);
    let detected = format::detect(diff);

    // 1. Headers only, no target: where the records end.
    let mut headers = Seen::default();
    let header_pass = read_all(
        diff,
        &options(DataMode::SkipData, v1_sector_size, None),
        Data::Leave,
        scratch,
        &mut headers,
    );
    let target_size = common::target_size(data, headers.records_end);
    let with_target = |mode| options(mode, v1_sector_size, Some(target_size));

    // 2. Restore's validation.
    let mut checked = Seen::default();
    let scan = format::scan(diff, &with_target(DataMode::Check), |record| {
        checked.fingerprint.update(&record.offset.to_le_bytes());
        checked.fingerprint.update(&record.length.to_le_bytes());
        for hash in [record.new_hash, record.base_hash].into_iter().flatten() {
            checked.fingerprint.update(hash.as_bytes());
        }
        checked.count += 1;
        checked.changed_bytes += record.length;
    });
    if verbose() {
        eprintln!(
            "{detected:?}, v1 sector size {v1_sector_size}: headers {:?} ({} records ending at {}); against a target of {target_size} bytes: {:?}",
            header_pass.as_ref().map(|_| ()).map_err(|error| format!("{error:#}")),
            headers.count,
            headers.records_end,
            scan.as_ref().map(|_| ()).map_err(|error| format!("{error:#}")),
        );
    }
    let scan = match scan {
        Ok(scan) => scan,
        Err(_) => {
            // A legacy diff holds nothing a full read checks beyond what the headers pass
            // checked, except the target: it cannot fail once the headers passed and the
            // records end within the target.
            if let (Ok(_), Ok(Format::V1 | Format::V2)) = (&header_pass, &detected) {
                assert!(
                    target_size < headers.records_end,
                    "a legacy diff whose headers pass and whose records fit the target was refused by a full read"
                );
            }
            return;
        }
    };

    // The diff passed: every pass must agree with it.
    let format = *detected.as_ref().expect("a diff that passed has a format");
    assert_eq!(scan.info.format, format);
    assert_eq!(
        scan.totals.extent_count, checked.count,
        "trailer vs records"
    );
    assert_eq!(
        scan.totals.changed_bytes, checked.changed_bytes,
        "trailer vs records"
    );
    assert_eq!(
        scan.file_hash,
        Some(blake3::hash(data)),
        "a full read must hash every byte of the file"
    );
    let fingerprint = checked.fingerprint.finalize();
    let header_pass = header_pass.unwrap_or_else(|error| {
        panic!("the diff passed a full read but not a read of its headers: {error:#}")
    });
    assert_eq!(headers.fingerprint.finalize(), fingerprint, "headers pass");
    assert_eq!(header_pass.totals.extent_count, checked.count);
    if format == Format::V3 {
        assert_eq!(header_pass.totals.image_hash, scan.totals.image_hash);
        assert_eq!(header_pass.totals.base_hash, scan.totals.base_hash);
    }

    // 3. Restore's dry run and writing pass.
    let mut dry = Seen::default();
    let dry_run = read_all(
        diff,
        &with_target(DataMode::SkipData),
        Data::Leave,
        scratch,
        &mut dry,
    );
    dry_run.unwrap_or_else(|error| panic!("the diff passed, its dry run failed: {error:#}"));
    assert_eq!(dry.fingerprint.finalize(), fingerprint, "dry run");

    let mut written = Seen::default();
    let pieces = Data::Pieces(common::piece_size(data));
    let writing = read_all(
        diff,
        &with_target(DataMode::Check),
        pieces,
        scratch,
        &mut written,
    );
    let writing = writing
        .unwrap_or_else(|error| panic!("the diff passed, its writing pass failed: {error:#}"));
    assert_eq!(written.fingerprint.finalize(), fingerprint, "writing pass");
    assert_eq!(writing.totals.changed_bytes, scan.totals.changed_bytes);
    assert_eq!(writing.totals.image_hash, scan.totals.image_hash);
    assert_eq!(writing.file_hash, scan.file_hash, "writing pass file hash");
}
