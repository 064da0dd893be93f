//! The input is a diff file. It is read the ways restore and verify read a diff, through the
//! same library code: format detection (v3, v2 by its signature, otherwise v1 with a sector
//! size from the first byte), then
//!
//! 1. a pass over the record headers only (`ReadOptions::headers`, no target: as inspect
//!    reads), which tells where the records end, and so the target size to check against
//!    (derived from that and the last byte: exact, larger, smaller, beyond any device);
//! 2. `format::scan` with `check_data` against that target: restore's validation of the whole
//!    diff (`hash_file` false), every byte read, record hashes and the whole-diff hash
//!    checked; and the same scan as verify makes it (`check_data` and `hash_file`), which must
//!    agree with it and also hash every byte of the file;
//!
//! and, when the diff passes:
//!
//! 3. restore's dry run (`check_data` false, against the target) and its writing pass
//!    (`check_data` false, record data read with `read_data` in pieces of a size from the
//!    second-to-last byte, some records only partly, the rest left to `next_record`).
//!
//! Errors are expected, and are always `Error::InvalidDiff`. What must hold: no panic, no
//! single allocation over 1 MiB, every record a reader hands out is in order, non-empty,
//! within bounds and within the record size limit, totals exist once the records end, a diff
//! that passes reads the same (records, totals) in every pass, the verify-style scan's
//! `file_hash` is the BLAKE3 of the whole file, and no other pass has a `file_hash`.

#![no_main]

mod common;

use diff_dd::device::OpenFile;
use diff_dd::error::{Error, Result};
use diff_dd::format::{self, DiffInfo, Format, ReadOptions, Record, Totals};
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
            record.hashes.is_some(),
            info.format == Format::V3,
            "{}: hashes only in v3",
            label()
        );
        self.count += 1;
        self.changed_bytes += record.length;
        self.records_end = self.records_end.max(end);
        self.previous_end = end;
        self.fingerprint(record);
    }

    /// Adds the record header to the fingerprint.
    fn fingerprint(&mut self, record: &Record) {
        self.fingerprint.update(&record.offset.to_le_bytes());
        self.fingerprint.update(&record.length.to_le_bytes());
        if let Some(hashes) = record.hashes {
            self.fingerprint.update(hashes.new.as_bytes());
            self.fingerprint.update(hashes.base.value.as_bytes());
            let block_size = hashes.base.hashing.block_size().unwrap_or(0);
            self.fingerprint.update(&block_size.to_le_bytes());
        }
    }

    /// What `format::scan` hands out (checked by the other passes): counted and fingerprinted.
    fn add_scanned(&mut self, record: &Record) {
        self.fingerprint(record);
        self.count += 1;
        self.changed_bytes += record.length;
    }
}

/// What a pass that reached the end of the diff found.
struct Done {
    totals: Totals,
}

/// How a pass reads record data: not at all, or in pieces of this size.
#[derive(Clone, Copy)]
enum Data {
    Leave,
    Pieces(usize),
}

/// Reads the diff once through a `DiffReader`, checking every record it hands out.
fn read_all(
    diff: &OpenFile,
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
        // Every third record is read only in part: `next_record` must skip the rest (or, with
        // `check_data`, read and check it), as when restore finds a record already restored.
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
    // Only a read with `hash_file` hashes the file.
    let file_hash = reader.file_hash();
    if !(options.check_data && options.hash_file) {
        assert_eq!(
            file_hash, None,
            "a file hash without hash_file: {options:?}"
        );
    }
    Ok(Done { totals })
}

/// A diff is refused as invalid, never with another error: it is in memory, every read of it
/// succeeds.
fn refused<T>(pass: &str, result: &Result<T>) {
    if let Err(error) = result {
        assert!(
            matches!(error, Error::InvalidDiff { .. }),
            "{pass}: refused with an error other than InvalidDiff: {error:?}"
        );
    }
}

/// An outcome for `DIFF_DD_FUZZ_VERBOSE`.
fn outcome<T>(result: &Result<T>) -> Result<(), String> {
    result
        .as_ref()
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// `DIFF_DD_FUZZ_VERBOSE=1` prints what each input did, for triage (`diff_reader FILE...`).
fn verbose() -> bool {
    static VERBOSE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("DIFF_DD_FUZZ_VERBOSE").is_some())
}

fn check(diff: &OpenFile, data: &[u8], scratch: &mut [u8]) {
    let v1_sector_size = common::v1_sector_size(data);
    let detected = format::detect(diff);
    refused("format detection", &detected);
    // man/diff-dd.5, DETECTION, modelled independently: a file that bears a native diff's
    // marks is never read as v1.
    if let Ok(Format::V1) = detected {
        let signature = b"diff-dd image";
        let distance: u32 = signature
            .iter()
            .zip(data)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert!(
            data.len() < 13 || distance > 8,
            "read as v1 within {distance} bits of the signature"
        );
        assert!(
            !(data.len() >= 14 + 48 && data.ends_with(b"diff-dd\x03")),
            "read as v1 with the native end mark"
        );
    }

    // 1. Headers only, no target: where the records end.
    let mut headers = Seen::default();
    let header_options = ReadOptions::headers(v1_sector_size, None);
    let header_pass = read_all(diff, &header_options, Data::Leave, scratch, &mut headers);
    refused("headers pass", &header_pass);
    let target_size = common::target_size(data, headers.records_end);
    let target = Some(target_size);

    // 2. Restore's validation (every byte checked, the file not hashed), and verify's (the
    //    file hashed too).
    let mut checked = Seen::default();
    let scan = format::scan(
        diff,
        &ReadOptions::checked(v1_sector_size, target),
        |record| checked.add_scanned(record),
    );
    refused("restore's validation", &scan);
    let verify_options = ReadOptions {
        hash_file: true,
        ..ReadOptions::checked(v1_sector_size, target)
    };
    let mut verified = Seen::default();
    let verify_scan = format::scan(diff, &verify_options, |record| verified.add_scanned(record));
    refused("verify's scan", &verify_scan);
    if verbose() {
        eprintln!(
            "{detected:?}, v1 sector size {v1_sector_size}: headers {:?} ({} records ending at {}); against a target of {target_size} bytes: {:?}, verify's scan {:?}",
            outcome(&header_pass),
            headers.count,
            headers.records_end,
            outcome(&scan),
            outcome(&verify_scan),
        );
    }
    // Hashing the file changes nothing of what is checked.
    assert_eq!(
        outcome(&scan),
        outcome(&verify_scan),
        "restore's validation and verify's scan disagree"
    );
    let (scan, verify_scan) = match (scan, verify_scan) {
        (Ok(scan), Ok(verify_scan)) => (scan, verify_scan),
        _ => {
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
    assert_eq!(scan.file_hash, None, "restore's validation hashed the file");
    assert_eq!(
        verify_scan.file_hash,
        Some(blake3::hash(data)),
        "verify's scan must hash every byte of the file"
    );
    let fingerprint = checked.fingerprint.finalize();
    assert_eq!(
        verified.fingerprint.finalize(),
        fingerprint,
        "verify's scan"
    );
    assert_eq!(verify_scan.totals.extent_count, scan.totals.extent_count);
    assert_eq!(verify_scan.totals.changed_bytes, scan.totals.changed_bytes);
    assert_eq!(verify_scan.totals.hashes, scan.totals.hashes);
    assert_eq!(verify_scan.longest_record, scan.longest_record);
    let header_pass = header_pass.unwrap_or_else(|error| {
        panic!("the diff passed a full read but not a read of its headers: {error}")
    });
    assert_eq!(headers.fingerprint.finalize(), fingerprint, "headers pass");
    assert_eq!(header_pass.totals.extent_count, checked.count);
    assert_eq!(
        scan.totals.hashes.is_some(),
        format == Format::V3,
        "image hashes only in v3"
    );
    if format == Format::V3 {
        assert_eq!(header_pass.totals.hashes, scan.totals.hashes);
    }

    // 3. Restore's dry run and writing pass: neither checks the whole diff again.
    let unchecked = ReadOptions::headers(v1_sector_size, target);
    let mut dry = Seen::default();
    let dry_run = read_all(diff, &unchecked, Data::Leave, scratch, &mut dry);
    dry_run.unwrap_or_else(|error| panic!("the diff passed, its dry run failed: {error}"));
    assert_eq!(dry.fingerprint.finalize(), fingerprint, "dry run");

    let mut written = Seen::default();
    let pieces = Data::Pieces(common::piece_size(data));
    let writing = read_all(diff, &unchecked, pieces, scratch, &mut written);
    let writing =
        writing.unwrap_or_else(|error| panic!("the diff passed, its writing pass failed: {error}"));
    assert_eq!(written.fingerprint.finalize(), fingerprint, "writing pass");
    assert_eq!(writing.totals.changed_bytes, scan.totals.changed_bytes);
    assert_eq!(writing.totals.hashes, scan.totals.hashes);
}
