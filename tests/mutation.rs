//! Deterministic mutation test: thousands of damaged diffs of all three formats, fed to the
//! same reader, inspect listing and restore code the binary runs. Asserts, for every one:
//! no panic, no allocation larger than a fixed bound (so no length read from a diff is
//! trusted for allocation), and either a refusal or a restore that writes exactly what the
//! diff says and nothing else.
//!
//! This file holds one test on purpose: the counting allocator below sees every allocation
//! of the test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use diff_dd::device::{self, OpenFile};
use diff_dd::engine::NoProgress;
use diff_dd::error::{Error, Role, Written};
use diff_dd::format::{self, ReadOptions};
use diff_dd::ops::{self, InspectOptions, RestoreOptions};
use diff_dd::render::{self, Style};

mod common;
use common::Random;

/// Records the largest single allocation.
struct Counting;

static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) }
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The buffer size the test restores with; every allocation must stay within a small
/// multiple of it, whatever lengths a damaged diff claims.
const BUFFER_SIZE: u64 = 64 << 10;
const ALLOCATION_LIMIT: usize = 1 << 20;
const MUTANTS_PER_DIFF: usize = 1500;

fn vector(path: &str) -> Vec<u8> {
    fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors")
            .join(path),
    )
    .unwrap()
}

/// One damage of the diff's bytes, chosen at random among kinds that real damage takes:
/// bit flips, random bytes, length-like fields set to extremes, cuts, insertions, repeats.
fn mutate(original: &[u8], random: &mut Random) -> Vec<u8> {
    let mut bytes = original.to_vec();
    let position = random.below(bytes.len());
    match random.below(7) {
        0 => bytes[position] ^= 1 << random.below(8),
        1 => bytes[position] = random.next() as u8,
        2 => {
            let extremes = [
                0u64,
                1,
                0xffff_ffff,
                u64::MAX,
                1 << 40,
                4096,
                0x8000_0000_0000_0000,
            ];
            let value = extremes[random.below(extremes.len())];
            let width = [4usize, 8][random.below(2)];
            let end = (position + width).min(bytes.len());
            let encoded = if random.below(2) == 0 {
                value.to_le_bytes()
            } else {
                value.to_be_bytes()
            };
            bytes[position..end].copy_from_slice(&encoded[..end - position]);
        }
        3 => bytes.truncate(position),
        4 => {
            let extra: Vec<u8> = (0..1 + random.below(64))
                .map(|_| random.next() as u8)
                .collect();
            bytes.splice(position..position, extra);
        }
        5 => {
            let end = (position + 1 + random.below(600)).min(bytes.len());
            let repeated = bytes[position..end].to_vec();
            bytes.splice(position..position, repeated);
        }
        _ => {
            let end = (position + 1 + random.below(600)).min(bytes.len());
            bytes.drain(position..end);
        }
    }
    bytes
}

/// The writes a diff claims: (offset, data) per record, read through the format reader.
fn claimed_writes(diff: &OpenFile, options: &ReadOptions) -> Vec<(u64, Vec<u8>)> {
    let mut reader = format::open_reader(diff, options).unwrap();
    let mut writes = Vec::new();
    let mut data = Vec::new();
    while let Some(record) = reader.next_record().unwrap() {
        let data = reader.read_record(&record, &mut data).unwrap();
        writes.push((record.offset, data.to_vec()));
    }
    writes
}

struct Case {
    name: &'static str,
    diff: Vec<u8>,
    sector_size: u64,
}

#[test]
fn damaged_diffs_are_refused_or_restore_exactly_what_they_claim() {
    let work = tempfile::tempdir().unwrap();
    let base = vector("legacy/base.img");
    let cases = [
        Case {
            name: "v3",
            diff: vector("native/v3-s512.diff"),
            sector_size: 512,
        },
        Case {
            name: "v3-zstd-zeros",
            diff: vector("native/v3-zstd-zeros-text-s512.diff"),
            sector_size: 512,
        },
        Case {
            name: "v3-s4096",
            diff: vector("native/v3-s4096-b8k.diff"),
            sector_size: 4096,
        },
        Case {
            name: "v1",
            diff: vector("legacy/v1-s512.diff"),
            sector_size: 512,
        },
        Case {
            name: "v2",
            diff: vector("legacy/v2.diff"),
            sector_size: 512,
        },
    ];
    let diff_path = work.path().join("mutant.diff");
    let target_path = work.path().join("target.img");
    let mut random = Random(0x5eed_d1ff_dd00_0001);
    let (mut refused, mut restored) = (0, 0);
    for case in &cases {
        for mutant_number in 0..MUTANTS_PER_DIFF {
            let mutant = mutate(&case.diff, &mut random);
            let label = format!("{} mutant {mutant_number}", case.name);
            fs::write(&diff_path, &mutant).unwrap();
            fs::write(&target_path, &base).unwrap();
            assert_detection_rule(&diff_path, &mutant, &label);
            LARGEST_ALLOCATION.store(0, Ordering::Relaxed);
            let outcome = std::panic::catch_unwind(|| {
                try_everything(&diff_path, &target_path, case.sector_size)
            });
            let largest = LARGEST_ALLOCATION.load(Ordering::Relaxed);
            assert!(
                largest <= ALLOCATION_LIMIT,
                "{label}: allocated {largest} bytes at once"
            );
            let Ok(restore_result) = outcome else {
                fs::write(work.path().join("panicked.diff"), &mutant).unwrap();
                panic!("{label} panicked");
            };
            let target = fs::read(&target_path).unwrap();
            match restore_result {
                Err(error) => {
                    refused += 1;
                    assert!(target == base, "{label}: refused, but the target changed");
                    // Damage is a fault of the diff, or makes it claim another target: never
                    // an I/O error, and never found after a write.
                    assert!(
                        matches!(
                            error,
                            Error::InvalidDiff { .. }
                                | Error::WrongTarget {
                                    written: Written::Nothing,
                                    ..
                                }
                        ),
                        "{label}: refused for an unexpected reason: {error:?}"
                    );
                }
                Ok(()) => {
                    restored += 1;
                    // Every byte of a native diff is covered by a hash or an exact check.
                    assert!(
                        !case.name.starts_with("v3") || mutant == case.diff,
                        "{label}: a changed native diff was accepted"
                    );
                    check_restored_as_claimed(&diff_path, case.sector_size, &base, &target, &label);
                }
            }
        }
    }
    eprintln!("{refused} damaged diffs refused, {restored} restored exactly as they claim");
    assert_eq!(refused + restored, cases.len() * MUTANTS_PER_DIFF);
    assert!(refused > restored, "most damage must be caught");

    // Every byte of the diff with zero and compressed records, one bit flipped (a different
    // bit from byte to byte): zstd frames, their lengths, zero records' headers, all refused.
    let compressed = vector("native/v3-zstd-zeros-text-s512.diff");
    for at in 0..compressed.len() {
        let mut flipped = compressed.clone();
        flipped[at] ^= 1 << (at % 8);
        fs::write(&diff_path, &flipped).unwrap();
        fs::write(&target_path, &base).unwrap();
        let outcome = try_everything(&diff_path, &target_path, 512);
        assert!(outcome.is_err(), "byte {at} flipped: restored");
        assert!(
            fs::read(&target_path).unwrap() == base,
            "byte {at} flipped: the target changed"
        );
    }
    eprintln!(
        "{} single-bit flips of the compressed vector refused",
        compressed.len()
    );

    long_records_are_read_in_pieces(work.path());
}

/// Records longer than any held whole, which diffs with sectors over 4 MiB hold: a diff of
/// four 1 GiB zero records (tests/vectors/native/v3-zero-s1g.diff, 587 bytes) is checked
/// whole and listed, and a diff of 8 MiB compressed, zero and raw records and its mutants are
/// restored, all without one allocation over the bound: what they claim is decoded, hashed
/// and written in pieces.
fn long_records_are_read_in_pieces(work: &Path) {
    let bomb = device::open_input(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/native/v3-zero-s1g.diff"),
        Role::Diff,
    )
    .unwrap();
    LARGEST_ALLOCATION.store(0, Ordering::Relaxed);
    let scan = format::scan(&bomb, &ReadOptions::checked(512, None), |_| {}).unwrap();
    assert_eq!(scan.totals.changed_bytes, 4 << 30);
    let mut listing = ops::inspect(
        &bomb,
        &InspectOptions {
            v1_sector_size: 512,
        },
    )
    .unwrap();
    render::write_listing(&mut listing, Style::Json, &mut std::io::sink()).unwrap();
    let largest = LARGEST_ALLOCATION.load(Ordering::Relaxed);
    assert!(
        largest <= ALLOCATION_LIMIT,
        "the 1 GiB-sector diff: allocated {largest} bytes at once"
    );

    const SECTOR: usize = 8 << 20;
    let base = Random(0x104e_0000_0018).bytes(3 * SECTOR);
    let mut new = base.clone();
    new[..SECTOR].fill(7); // compressed to a few bytes
    new[SECTOR..2 * SECTOR].fill(0); // a zero record
    new[2 * SECTOR + 4096] ^= 1; // raw
    let (base_path, new_path) = (work.join("long-base.img"), work.join("long-new.img"));
    fs::write(&base_path, &base).unwrap();
    fs::write(&new_path, &new).unwrap();
    let diff_path = work.join("long.diff");
    let options = ops::BackupOptions {
        sector_size: SECTOR as u64,
        buffer_size: SECTOR as u64,
        format: ops::DiffFormat::Native,
        compression: Some(3),
        created_unix_seconds: 0,
        force: false,
    };
    let reffile = device::open_input(&base_path, Role::Reffile).unwrap();
    ops::backup(
        &device::open_input(&new_path, Role::Infile).unwrap(),
        ops::backup::Base::Image {
            reffile: &reffile,
            on: &[],
        },
        device::Output::create(&diff_path, false).unwrap(),
        &options,
        &NoProgress,
    )
    .unwrap();
    let diff = fs::read(&diff_path).unwrap();
    let mutant_path = work.join("long-mutant.diff");
    let target_path = work.join("long-target.img");
    let mut random = Random(0x104e_0000_0018);
    for mutant_number in 0..=60 {
        // The first is the diff itself.
        let mutant = match mutant_number {
            0 => diff.clone(),
            _ => mutate(&diff, &mut random),
        };
        let label = format!("long-record mutant {mutant_number}");
        fs::write(&mutant_path, &mutant).unwrap();
        fs::write(&target_path, &base).unwrap();
        LARGEST_ALLOCATION.store(0, Ordering::Relaxed);
        let outcome = try_everything(&mutant_path, &target_path, 512);
        let largest = LARGEST_ALLOCATION.load(Ordering::Relaxed);
        assert!(
            largest <= ALLOCATION_LIMIT,
            "{label}: allocated {largest} bytes at once"
        );
        let target = fs::read(&target_path).unwrap();
        match outcome {
            Ok(()) => {
                assert!(
                    mutant == diff,
                    "{label}: a changed native diff was accepted"
                );
                assert!(target == new, "{label}: restored, but not to the new image");
            }
            Err(error) => {
                assert!(
                    mutant != diff,
                    "{label}: the diff itself was refused: {error}"
                );
                assert!(target == base, "{label}: refused, but the target changed");
            }
        }
    }
}

/// man/diff-dd.5, DETECTION, modelled apart from the reader: a file that bears a native
/// diff's marks (its start within 8 bits of the signature, or the end mark last) is never
/// taken for a v1 diff.
fn assert_detection_rule(diff_path: &Path, bytes: &[u8], label: &str) {
    let signature = b"diff-dd image";
    let near_signature = bytes.len() >= signature.len()
        && signature
            .iter()
            .zip(bytes)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum::<u32>()
            <= 8;
    let end_mark = bytes.len() >= 14 + 48 && bytes.ends_with(b"diff-dd\x03");
    if near_signature || end_mark {
        let diff = device::open_input(diff_path, Role::Diff).unwrap();
        let detected = format::detect(&diff);
        assert!(
            !matches!(detected, Ok(format::Format::V1)),
            "{label}: a file with a native diff's marks was read as v1"
        );
    }
}

/// Runs the listing (both forms) and then a restore, as the binary would.
fn try_everything(diff_path: &Path, target_path: &Path, sector_size: u64) -> Result<(), Error> {
    let diff = device::open_input(diff_path, Role::Diff)?;
    let options = InspectOptions {
        v1_sector_size: sector_size,
    };
    for style in [Style::Text, Style::VerboseText, Style::Json] {
        if let Ok(mut listing) = ops::inspect(&diff, &options) {
            let _ = render::write_listing(&mut listing, style, &mut std::io::sink());
        }
    }
    let target = device::open_target(target_path)?;
    let options = RestoreOptions {
        v1_sector_size: sector_size,
        buffer_size: BUFFER_SIZE,
    };
    ops::restore(&diff, &target, &options, &NoProgress).map(|_| ())
}

/// An accepted diff must have written exactly its records' data at their offsets, and left
/// every other byte of the base image as it was. A native diff must also have produced the
/// image its trailer names.
fn check_restored_as_claimed(
    diff_path: &Path,
    sector_size: u64,
    base: &[u8],
    target: &[u8],
    label: &str,
) {
    let diff = device::open_input(diff_path, Role::Diff).unwrap();
    let options = ReadOptions::checked(sector_size, Some(base.len() as u64));
    let mut expected = base.to_vec();
    for (offset, data) in claimed_writes(&diff, &options) {
        expected[offset as usize..][..data.len()].copy_from_slice(&data);
    }
    assert!(
        target == expected,
        "{label}: the target is not what the diff claims"
    );
    let scan = format::scan(&diff, &options, |_| {}).unwrap();
    if let Some(hashes) = scan.totals.hashes {
        assert_eq!(
            blake3::hash(target),
            hashes.image,
            "{label}: not the image the trailer names"
        );
    }
}
