//! The input describes a chain, decoded with `arbitrary`: a small full image, then one to four
//! days, each a list of changes (offset, length, new bytes or zeros) to the day before; and
//! how the chain is used. Each day's diff is made by an independent model of `backup --on`
//! written here (the sectors that differ from the day before, in records of at most the
//! limit, each with the hash of the bytes it replaces, and the two days' hashes), through the
//! public writer. Then the code behind the commands runs on memfds:
//!
//! - `ops::restore_one_pass` (restore --base) into a target of the image's size: the target
//!   must then hold the last day;
//! - `ops::restore_chain` (restore DIFF DIFF... in place) onto the full image, an earlier day,
//!   or the full image with a prefix of the last day already written (what a killed run
//!   leaves): it must end with the last day; onto a target differing from the full image
//!   where no day changed anything, it must refuse with the target as it was;
//! - `ops::merge` with FULL: the merged diff, restored in place onto the full image with the
//!   plain restore, must give the last day;
//! - the diffs out of order: every one of them must be refused with nothing written.
//!
//! Also: no panic, no single allocation over 1 MiB.

#![no_main]

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;

use diff_dd::device::{OpenFile, Output};
use diff_dd::engine::NoProgress;
use diff_dd::error::{Error, Role};
use diff_dd::format::v3::{self, DataEncoding, Header, Writer};
use diff_dd::format::ImageHashes;
use diff_dd::ops::{self, MergeOptions, OnePassOptions, OnePassTarget, RestoreOptions};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

use common::MemFile;

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

const MAX_IMAGE: usize = 48 << 10;
const MAX_CHANGES: usize = 12;

#[derive(Debug, Arbitrary)]
struct Input {
    image_sectors: u8,
    sector_4k: bool,
    full_seed: u64,
    /// Zero runs in the full image, so that sparseness and zero records come up.
    full_zeros: Vec<(u16, u16)>,
    days: Vec<Vec<Change>>,
    compress: bool,
    /// A small record size limit (two sectors), so that long changes span several records.
    small_limit: bool,
    use_of_chain: Use,
    buffer: Buffer,
}

#[derive(Debug, Arbitrary)]
struct Change {
    offset: u16,
    length: u16,
    zeros: bool,
    seed: u8,
}

#[derive(Debug, Arbitrary)]
enum Use {
    OnePass,
    InPlace { start_day: u8 },
    InPlaceKilled { written: u16 },
    InPlaceWrong { at: u16 },
    Merge,
    OutOfOrder { swap: u8 },
}

#[derive(Debug, Arbitrary)]
enum Buffer {
    Small,
    Large,
}

/// The bytes a seed makes: deterministic, different for each seed.
fn noise(seed: u64, out: &mut [u8]) {
    let mut state = seed | 1;
    for byte in out {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state as u8;
    }
}

struct Files {
    diffs: Vec<MemFile>,
    full: MemFile,
    target: MemFile,
    merged: MemFile,
    directory: PathBuf,
}

fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| Files {
        diffs: (0..4)
            .map(|_| MemFile::new(c"diff-dd-fuzz-chain"))
            .collect(),
        full: MemFile::new(c"diff-dd-fuzz-full"),
        target: MemFile::new(c"diff-dd-fuzz-target"),
        merged: MemFile::new(c"diff-dd-fuzz-merged"),
        directory: std::env::temp_dir(),
    })
}

/// The model of backup --on: the diff of `day` against `before` (the image the chain gave so
/// far), records of changed sectors of at most `limit` bytes.
fn diff_of(header: &Header, before: &[u8], day: &[u8], compress: bool) -> Vec<u8> {
    let level = if compress { 3 } else { 0 };
    let mut writer = Writer::new(Vec::new(), header, level).expect("a writer in memory");
    let sector = header.sector_size as usize;
    let limit = header.record_size_limit as usize;
    let mut at = 0;
    while at < day.len() {
        let end = (at + sector).min(day.len());
        if before[at..end] == day[at..end] {
            at = end;
            continue;
        }
        let start = at;
        while at < day.len() && at - start < limit {
            let end = (at + sector).min(day.len());
            if before[at..end] == day[at..end] {
                break;
            }
            at = end;
        }
        writer
            .write_record(
                start as u64,
                &day[start..at],
                diff_dd::format::BaseHash::of_bytes(blake3::hash(&before[start..at])),
            )
            .expect("writing a record in memory");
    }
    writer
        .finish(ImageHashes {
            base: blake3::hash(before),
            image: blake3::hash(day),
        })
        .expect("finishing the diff")
}

fn run(input: Input) {
    let sector: usize = if input.sector_4k { 4096 } else { 512 };
    let sectors = usize::from(input.image_sectors).max(1);
    // Not always whole sectors: the last one may be short.
    let size = (sectors * sector).min(MAX_IMAGE) - usize::from(input.image_sectors % 3) * 7;
    let mut full = vec![0u8; size];
    noise(input.full_seed, &mut full);
    for &(offset, length) in input.full_zeros.iter().take(4) {
        let start = usize::from(offset) % size;
        let end = (start + usize::from(length)).min(size);
        full[start..end].fill(0);
    }
    let mut days = vec![full.clone()];
    for changes in input.days.iter().take(4) {
        let mut image = days[days.len() - 1].clone();
        for change in changes.iter().take(MAX_CHANGES) {
            let start = usize::from(change.offset) % size;
            let end = (start + 1 + usize::from(change.length) % 8192).min(size);
            if change.zeros {
                image[start..end].fill(0);
            } else {
                noise(u64::from(change.seed) + 1, &mut image[start..end]);
            }
        }
        days.push(image);
    }
    if days.len() < 2 {
        return;
    }
    let header = Header {
        sector_size: sector as u64,
        image_size: size as u64,
        record_size_limit: if input.small_limit {
            2 * sector as u64
        } else {
            v3::record_size_limit(sector as u64)
        },
        created_unix_seconds: 0,
        tool_version: "fuzz".into(),
        data_encoding: if input.compress {
            DataEncoding::Zstd
        } else {
            DataEncoding::Raw
        },
    };
    let files = files();
    let links = days.len() - 1;
    for link in 0..links {
        let diff = diff_of(&header, &days[link], &days[link + 1], input.compress);
        files.diffs[link].replace(&diff);
    }
    files.full.replace(&full);
    let diffs: Vec<OpenFile> = files.diffs[..links]
        .iter()
        .map(|memfd| memfd.image(Role::Diff))
        .collect();
    let mut full_image = files.full.image(Role::Reffile);
    let last = &days[links];
    let buffer_size = match input.buffer {
        Buffer::Small => 4096,
        Buffer::Large => 1 << 20,
    };
    let mut after = Vec::new();

    match input.use_of_chain {
        Use::OnePass => {
            files.target.replace(&vec![0x5a; size]);
            let target = files.target.image(Role::Target);
            let chain: Vec<&OpenFile> = diffs.iter().collect();
            common::bounded("restore --base", || {
                ops::restore_one_pass(
                    &mut full_image,
                    &chain,
                    OnePassTarget::InPlace(&target),
                    &OnePassOptions {
                        buffer_size,
                        force: true,
                    },
                    &NoProgress,
                )
            })
            .expect("one-pass restore of a chain the model made");
            files.target.contents(&mut after);
            assert!(after == *last, "one-pass restore did not give the last day");
        }
        Use::InPlace { start_day } => {
            let start = &days[usize::from(start_day) % days.len()];
            restore_chain_onto(files, &diffs, start, buffer_size).expect("restore of a chain");
            files.target.contents(&mut after);
            assert!(
                after == *last,
                "the chain restored in place did not give the last day"
            );
        }
        Use::InPlaceKilled { written } => {
            // A killed run leaves some of the last day written, in order, and a torn page.
            let mut killed = full.clone();
            let cut = usize::from(written) % (size + 1);
            killed[..cut].copy_from_slice(&last[..cut]);
            restore_chain_onto(files, &diffs, &killed, buffer_size)
                .expect("rerun of a killed chain restore");
            files.target.contents(&mut after);
            assert!(after == *last, "the rerun did not finish the chain");
        }
        Use::InPlaceWrong { at } => {
            // A sector no day changed: no record covers it.
            let untouched = (0..size.div_ceil(sector))
                .map(|index| (usize::from(at) + index) % size.div_ceil(sector))
                .find(|&index| {
                    let range = index * sector..((index + 1) * sector).min(size);
                    days.iter()
                        .all(|day| day[range.clone()] == full[range.clone()])
                });
            let Some(index) = untouched else { return };
            let mut wrong = full.clone();
            wrong[index * sector] ^= 1;
            let error = restore_chain_onto(files, &diffs, &wrong, buffer_size)
                .expect_err("a target that differs from the full image outside the chain");
            assert!(matches!(error, Error::WrongTarget { .. }), "{error}");
            files.target.contents(&mut after);
            assert!(after == wrong, "a refused restore wrote to the target");
        }
        Use::Merge => {
            let path = files
                .directory
                .join(format!("diff-dd-fuzz-merged-{}", std::process::id()));
            let output = Output::create(&path, true).expect("an unnamed merged diff");
            let chain: Vec<&OpenFile> = diffs.iter().collect();
            let merged = common::bounded("merge", || {
                ops::merge(
                    &chain,
                    Some(&full_image),
                    output,
                    &MergeOptions {
                        compression: input.compress.then_some(3),
                        created_unix_seconds: 0,
                        buffer_size,
                        force: true,
                    },
                    &NoProgress,
                )
            });
            let bytes = std::fs::read(&path);
            let _ = std::fs::remove_file(&path);
            merged.expect("merge of a chain the model made");
            files.merged.replace(&bytes.expect("the merged diff"));
            files.target.replace(&full);
            let target = files.target.image(Role::Target);
            ops::restore(
                &files.merged.image(Role::Diff),
                &target,
                &RestoreOptions {
                    v1_sector_size: 512,
                    buffer_size,
                },
                &NoProgress,
            )
            .expect("restore of the merged diff onto the full image");
            files.target.contents(&mut after);
            assert!(after == *last, "the merged diff did not give the last day");
        }
        Use::OutOfOrder { swap } => {
            if links < 2 {
                return;
            }
            let first = usize::from(swap) % (links - 1);
            let mut chain: Vec<&OpenFile> = diffs.iter().collect();
            chain.swap(first, first + 1);
            // Unless two days are the same image, the swapped chain does not link.
            let same = days[first] == days[first + 1]
                || days[first + 1] == days[first + 2]
                || days[first] == days[first + 2];
            files.target.replace(&full);
            let target = files.target.image(Role::Target);
            let refused = ops::restore_chain(&chain, &target, buffer_size, &NoProgress);
            if !same {
                let error = refused.expect_err("a chain out of order");
                assert!(matches!(error, Error::Unusable { .. }), "{error}");
                files.target.contents(&mut after);
                assert!(after == full, "a refused chain wrote to the target");
            }
        }
    }
}

fn restore_chain_onto(
    files: &Files,
    diffs: &[OpenFile],
    start: &[u8],
    buffer_size: u64,
) -> Result<ops::RestoreSummary, Error> {
    files.target.replace(start);
    let target = files.target.image(Role::Target);
    let chain: Vec<&OpenFile> = diffs.iter().collect();
    common::bounded("restore of a chain", || {
        ops::restore_chain(&chain, &target, buffer_size, &NoProgress)
    })
}

fuzz_target!(|input: Input| run(input));
