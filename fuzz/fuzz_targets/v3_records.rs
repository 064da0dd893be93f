//! The input is not a diff but a description of one, decoded with `arbitrary`: header fields
//! (sector size, image size, record size limit, tool version), a list of records (offset,
//! length, data, base hash: true or wrong, over the bytes or over blocks as a backup from a
//! digest takes it) and the state of the target at each record (base
//! data, already restored, torn by a killed restore, scribbled over). The diff is written with
//! the public writer, `diff_dd::format::v3::Writer`, which writes whatever it is given, so
//! every hash in it is right and the diff passes or fails on its records alone; mutating a
//! diff's bytes (the `diff_reader` target) cannot get there, since every byte of a v3 diff is
//! covered by a BLAKE3 hash.
//!
//! The diff and the target go to two memfds, made images with `OpenFile::from_file` (the target
//! open for reading and writing, as `device::open_target` opens a path), and
//! `diff_dd::ops::restore`, the code behind `diff-dd restore`, applies one to the other. An
//! independent model (`expectation`, from man/diff-dd.5 VALIDITY and the restore rules)
//! decides the outcome first:
//!
//! - the header and every record valid, the target exactly image_size bytes, and the target
//!   at every record holding its base data (by the record's base hash) or its new data, or
//!   else the one record a killed restore tore (see `expectation`): restore succeeds, its
//!   summary counts the records written and those restored already, and the target then
//!   holds exactly its previous bytes with every record's data applied;
//! - otherwise restore fails with nothing written and the target byte for byte what it was:
//!   `Error::InvalidDiff` for a fault of the diff, `Error::WrongTarget` (`Written::Nothing`)
//!   for a target of the wrong size or, naming the record, holding the wrong data.
//!
//! Also: no panic, no single allocation over 1 MiB inside restore.

#![no_main]

mod common;

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

use diff_dd::engine::NoProgress;
use diff_dd::error::{Error, Role, Written};
use diff_dd::format::v3::{DataEncoding, Header, Writer};
use diff_dd::format::{Format, ImageHashes};
use diff_dd::ops::{self, RestoreOptions, RestoreSummary};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

use common::MemFile;

#[global_allocator]
static ALLOCATOR: common::Counting = common::Counting;

/// The largest image a valid diff is made for: each run stays fast.
const MAX_IMAGE: u64 = 64 << 10;
/// The longest record written: past the image size, so "longer than the image" is reachable.
const MAX_RECORD: u64 = MAX_IMAGE + (8 << 10);
/// All record data of one diff together.
const MAX_DATA: u64 = 512 << 10;
const MAX_RECORDS: usize = 64;
const GIB: u64 = 1 << 30;
/// What restore assumes a killed write tears at (src/ops/restore.rs `PAGE_SIZE`).
const PAGE: u64 = 4096;
const _: () = assert!(PAGE == ops::restore::PAGE_SIZE);
/// man/diff-dd.5: the tool version is at most 256 bytes.
const MAX_TOOL_VERSION: usize = 256;

#[derive(Debug, Arbitrary)]
struct Input {
    sector_size: SectorSize,
    image_size: ImageSize,
    limit: Limit,
    target_size: TargetSize,
    base: Fill,
    options: Options,
    tool_version: ToolVersion,
    created_unix_seconds: i64,
    records: Vec<RecordSpec>,
    damage: Damage,
    /// A zstd diff: records compressed where that saves space (zero records either way).
    compress: bool,
}

#[derive(Debug, Arbitrary)]
enum SectorSize {
    S512,
    S4096,
    /// 1..=64
    Small(u8),
    /// Up to 1 GiB.
    PowerOfTwo(u8),
    Zero,
    OverOneGiB(u16),
    Raw(u64),
}

#[derive(Debug, Arbitrary)]
enum ImageSize {
    /// Whole sectors and a short last one, at most 64 KiB.
    Sectors {
        count: u16,
        short: u16,
    },
    Bytes(u16),
    Zero,
    Raw(u64),
}

#[derive(Debug, Arbitrary)]
enum Limit {
    /// 1..=256 sectors.
    Sectors(u8),
    OneGiB,
    Raw(u64),
}

/// The target's size, against the header's image size.
#[derive(Debug, Arbitrary)]
enum TargetSize {
    OpenFile,
    Larger(u8),
    Smaller(u8),
    Bytes(u16),
}

/// How the base image is filled.
#[derive(Debug, Arbitrary)]
enum Fill {
    Zero,
    Byte(u8),
    Noise(u64),
    Ramp,
}

/// `-s` and `-b` as the command line accepts them (cli.rs `check_sizes`: the buffer a
/// multiple of the sector size), as `RestoreOptions`; `-s` means nothing to a v3 diff, the
/// buffer size is how restore reads the target.
#[derive(Debug, Arbitrary, Clone, Copy)]
enum Options {
    Default,
    Buffer512,
    Buffer4096,
    OneByteBuffer,
    SevenByteBuffer,
}

#[derive(Debug, Arbitrary)]
enum ToolVersion {
    Normal,
    Empty,
    /// 200..=299 bytes: over the limit from 257.
    Long(u8),
}

#[derive(Debug, Arbitrary)]
struct RecordSpec {
    offset: Offset,
    length: Length,
    data: Data,
    base_hash: BaseHash,
    hashing: Hashing,
    target: TargetState,
}

/// How the record's base hash is taken (man/diff-dd.5, Records): over the bytes (variants 0,
/// 2, 3) or over blocks (4, 5, 6), of a size that may be one no diff may have.
#[derive(Debug, Arbitrary)]
enum Hashing {
    Bytes,
    Blocks(u8),
}

impl Hashing {
    fn block_size(&self) -> Option<u64> {
        match self {
            Hashing::Bytes => None,
            Hashing::Blocks(k) => Some(match k % 8 {
                4 => 2048,
                5 => 6144,
                6 => 8 << 20,
                n => 4096 << (n % 4),
            }),
        }
    }
}

/// The base hash of `bytes` at `offset` in an image of `image_size`, over blocks of
/// `block_size` as man/diff-dd.5 defines it: the BLAKE3 of each block's value one after the
/// other, a value being the block's chaining value at its position, or for an image of one
/// block its BLAKE3. Only for aligned blocks of a valid size; anything else is an invalid
/// record, whose base hash is then of the bytes.
fn over_blocks(bytes: &[u8], offset: u64, image_size: u64, block_size: u64) -> blake3::Hash {
    use blake3::hazmat::HasherExt;
    let valid = block_size.is_power_of_two()
        && (4096..=4 << 20).contains(&block_size)
        && offset.is_multiple_of(block_size);
    if !valid {
        return blake3::hash(bytes);
    }
    let mut values = blake3::Hasher::new();
    for (index, block) in bytes.chunks(block_size as usize).enumerate() {
        if image_size <= block_size {
            values.update(blake3::hash(block).as_bytes());
        } else {
            let mut hasher = blake3::Hasher::new();
            hasher.set_input_offset(offset + index as u64 * block_size);
            hasher.update(block);
            values.update(&hasher.finalize_non_root());
        }
    }
    values.finalize()
}

/// Relative to where the previous record ended, mostly, so that valid diffs are common.
#[derive(Debug, Arbitrary)]
enum Offset {
    Next,
    GapSectors(u8),
    GapBytes(u16),
    Back(u16),
    At(u16),
    Raw(u64),
}

#[derive(Debug, Arbitrary)]
enum Length {
    Sectors(u8),
    ToImageEnd,
    ToImageEndMinus(u16),
    Limit,
    OverLimit(u8),
    Bytes(u16),
    Zero,
}

#[derive(Debug, Arbitrary)]
enum Data {
    Noise(u64),
    Fill(u8),
    /// The base image's bytes: new data equal to the base.
    Base,
    /// The base image's bytes with one changed.
    BasePatched {
        at: u16,
        byte: u8,
    },
    /// These bytes, repeated.
    Bytes(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum BaseHash {
    /// BLAKE3 of the base image at the extent (of what of it lies within the base).
    True,
    Wrong(u8),
    /// BLAKE3 of the new data.
    OfNewData,
}

/// What the target holds at the record before restore (applied in record order).
#[derive(Debug, Arbitrary)]
enum TargetState {
    Base,
    /// The new data: restored already.
    Restored,
    /// The new data for this many bytes (modulo the length), base data after.
    Torn(u16),
    /// The new data up to the first page boundary inside the record, base data after: what a
    /// restore killed while writing the record leaves.
    TornAtPage,
    /// One byte set to `byte`.
    Scribbled {
        at: u16,
        byte: u8,
    },
}

/// Damage to the finished diff: any must make restore refuse it.
#[derive(Debug, Arbitrary)]
enum Damage {
    None,
    Flip { at: u32, xor: u8 },
    Cut(u16),
    Append(u8),
}

/// A record as written.
struct Built {
    offset: u64,
    data: Vec<u8>,
    base_hash: blake3::Hash,
    /// The block size of a base hash over blocks.
    block_size: Option<u64>,
}

impl Built {
    fn base(&self) -> diff_dd::format::BaseHash {
        diff_dd::format::BaseHash {
            value: self.base_hash,
            hashing: match self.block_size {
                None => diff_dd::format::BaseHashing::Bytes,
                Some(block_size) => diff_dd::format::BaseHashing::Blocks { block_size },
            },
        }
    }

    /// What restore compares with the base hash: the hash of the target's bytes `held` at the
    /// record, taken as the record takes its base hash.
    fn base_hash_of(&self, held: &[u8], image_size: u64) -> blake3::Hash {
        match self.block_size {
            None => blake3::hash(held),
            Some(block_size) => over_blocks(held, self.offset, image_size, block_size),
        }
    }
}

/// A small deterministic generator (xorshift64*).
struct Noise(u64);

impl Noise {
    fn new(seed: u64) -> Noise {
        Noise(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }
    fn fill(&mut self, out: &mut [u8]) {
        for byte in out {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            *byte = (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8;
        }
    }
}

/// The part of `image` at `offset`, `length` bytes long, that lies within it.
fn within(image: &[u8], offset: u64, length: u64) -> std::ops::Range<usize> {
    let size = image.len() as u64;
    let start = offset.min(size);
    let end = offset.saturating_add(length).min(size);
    start as usize..end as usize
}

impl Input {
    fn sector_size(&self) -> u64 {
        match self.sector_size {
            SectorSize::S512 => 512,
            SectorSize::S4096 => 4096,
            SectorSize::Small(n) => 1 + u64::from(n % 64),
            SectorSize::PowerOfTwo(k) => 1 << (k % 31),
            SectorSize::Zero => 0,
            SectorSize::OverOneGiB(n) => GIB + 1 + u64::from(n),
            SectorSize::Raw(size) => size,
        }
    }

    fn header(&self) -> Header {
        let sector_size = self.sector_size();
        // For sizes counted in sectors, a sector size that fits the image (an invalid one
        // makes the diff invalid anyway).
        let unit = if (1..=MAX_IMAGE).contains(&sector_size) {
            sector_size
        } else {
            512
        };
        let image_size = match self.image_size {
            ImageSize::Sectors { count, short } => {
                let whole = u64::from(count).min(MAX_IMAGE / unit) * unit;
                (whole + u64::from(short) % unit).min(MAX_IMAGE)
            }
            ImageSize::Bytes(size) => u64::from(size),
            ImageSize::Zero => 0,
            ImageSize::Raw(size) => size,
        };
        let record_size_limit = match self.limit {
            Limit::Sectors(count) => sector_size.saturating_mul(1 + u64::from(count)),
            Limit::OneGiB => GIB,
            Limit::Raw(limit) => limit,
        };
        let tool_version = match self.tool_version {
            ToolVersion::Normal => "diff-dd-fuzz".to_string(),
            ToolVersion::Empty => String::new(),
            ToolVersion::Long(n) => "v".repeat(200 + usize::from(n % 100)),
        };
        Header {
            sector_size,
            image_size,
            record_size_limit,
            created_unix_seconds: self.created_unix_seconds,
            tool_version,
            data_encoding: if self.compress {
                DataEncoding::Zstd
            } else {
                DataEncoding::Raw
            },
        }
    }

    fn base_image(&self, header: &Header) -> Vec<u8> {
        let image_size = header.image_size;
        let size = match self.target_size {
            TargetSize::OpenFile => image_size,
            TargetSize::Larger(n) => image_size.saturating_add(1 + u64::from(n)),
            TargetSize::Smaller(n) => image_size.saturating_sub(1 + u64::from(n)),
            TargetSize::Bytes(size) => u64::from(size),
        };
        // A raw image size cannot be a target's; a target near it still can.
        let size = if size > MAX_IMAGE + 512 {
            size % (MAX_IMAGE + 1)
        } else {
            size
        };
        let mut base = vec![0u8; size as usize];
        match self.base {
            Fill::Zero => {}
            Fill::Byte(byte) => base.fill(byte),
            Fill::Noise(seed) => Noise::new(seed).fill(&mut base),
            Fill::Ramp => {
                for (index, byte) in base.iter_mut().enumerate() {
                    *byte = (index % 251) as u8;
                }
            }
        }
        base
    }

    /// The records to write, and the target: the base image with each record's
    /// `TargetState` applied.
    fn records(&self, header: &Header, base: &[u8]) -> (Vec<Built>, Vec<u8>) {
        let sector_size = header.sector_size;
        let image_size = header.image_size;
        let limit = header.record_size_limit;
        let mut target = base.to_vec();
        let mut built = Vec::new();
        let mut previous_end = 0u64;
        let mut total = 0u64;
        for spec in self.records.iter().take(MAX_RECORDS) {
            let offset = match spec.offset {
                Offset::Next => previous_end,
                Offset::GapSectors(n) => {
                    previous_end.saturating_add(sector_size.saturating_mul(u64::from(n)))
                }
                Offset::GapBytes(n) => previous_end.saturating_add(u64::from(n)),
                Offset::Back(n) => previous_end.saturating_sub(1 + u64::from(n)),
                Offset::At(at) => u64::from(at),
                Offset::Raw(offset) => offset,
            };
            let length = match spec.length {
                Length::Sectors(n) => sector_size.saturating_mul(u64::from(n)),
                Length::ToImageEnd => image_size.saturating_sub(offset),
                Length::ToImageEndMinus(n) => image_size
                    .saturating_sub(offset)
                    .saturating_sub(u64::from(n)),
                Length::Limit => limit,
                Length::OverLimit(n) => limit.saturating_add(1 + u64::from(n)),
                Length::Bytes(n) => u64::from(n),
                Length::Zero => 0,
            }
            .min(MAX_RECORD);
            if total + length > MAX_DATA {
                break;
            }
            total += length;
            previous_end = offset.saturating_add(length);

            let mut data = vec![0u8; length as usize];
            let in_base = within(base, offset, length);
            match &spec.data {
                Data::Noise(seed) => Noise::new(*seed).fill(&mut data),
                Data::Fill(byte) => data.fill(*byte),
                Data::Base | Data::BasePatched { .. } => {
                    data[..in_base.len()].copy_from_slice(&base[in_base.clone()]);
                    if let (Data::BasePatched { at, byte }, false) = (&spec.data, data.is_empty()) {
                        let at = usize::from(*at) % data.len();
                        data[at] = *byte;
                    }
                }
                Data::Bytes(bytes) if !bytes.is_empty() => {
                    for (byte, source) in data.iter_mut().zip(bytes.iter().cycle()) {
                        *byte = *source;
                    }
                }
                Data::Bytes(_) => {}
            }
            let block_size = spec.hashing.block_size();
            let base_hash = match spec.base_hash {
                BaseHash::True => match block_size {
                    None => blake3::hash(&base[in_base.clone()]),
                    Some(block_size) => {
                        over_blocks(&base[in_base.clone()], offset, image_size, block_size)
                    }
                },
                BaseHash::Wrong(n) => {
                    let mut hasher = blake3::Hasher::new();
                    hasher.update(b"not the base data");
                    hasher.update(&[n]);
                    hasher.update(&offset.to_le_bytes());
                    hasher.finalize()
                }
                BaseHash::OfNewData => blake3::hash(&data),
            };

            let in_target = within(&target, offset, length);
            let held = &mut target[in_target.clone()];
            let new = &data[..held.len()];
            match spec.target {
                TargetState::Base => {}
                TargetState::Restored => held.copy_from_slice(new),
                TargetState::Torn(n) => {
                    if !held.is_empty() {
                        let torn_at = usize::from(n) % held.len();
                        held[..torn_at].copy_from_slice(&new[..torn_at]);
                    }
                }
                TargetState::TornAtPage => {
                    let torn_at = (first_page_end(offset, length) as usize).min(held.len());
                    held[..torn_at].copy_from_slice(&new[..torn_at]);
                }
                TargetState::Scribbled { at, byte } => {
                    if !held.is_empty() {
                        let at = usize::from(at) % held.len();
                        held[at] = byte;
                    }
                }
            }
            built.push(Built {
                offset,
                data,
                base_hash,
                block_size,
            });
        }
        (built, target)
    }
}

/// Where the first page boundary inside a record is, from its start (its length if none).
fn first_page_end(offset: u64, length: u64) -> u64 {
    (PAGE - offset % PAGE).min(length)
}

/// man/diff-dd.5, VALIDITY: the header's ranges.
fn header_fault(header: &Header) -> Option<String> {
    let sector_size = header.sector_size;
    let limit = header.record_size_limit;
    if !(1..=GIB).contains(&sector_size) {
        return Some(format!("sector size {sector_size} outside 1..=1GiB"));
    }
    if limit < sector_size || limit > GIB || !limit.is_multiple_of(sector_size) {
        return Some(format!(
            "record size limit {limit} not a multiple of the sector size within 1GiB"
        ));
    }
    if header.image_size > i64::MAX as u64 {
        return Some(format!("image size {} over 2^63-1", header.image_size));
    }
    if header.tool_version.len() > MAX_TOOL_VERSION {
        return Some(format!(
            "tool version of {} bytes",
            header.tool_version.len()
        ));
    }
    None
}

/// man/diff-dd.5, VALIDITY: the rules for every record.
fn record_fault(header: &Header, records: &[Built]) -> Option<String> {
    let mut previous_end = 0u64;
    for (index, record) in records.iter().enumerate() {
        let offset = record.offset;
        let length = record.data.len() as u64;
        let fault = |what: &str| {
            Some(format!(
                "record {index} (offset {offset}, {length} bytes): {what}"
            ))
        };
        if length == 0 {
            return fault("empty");
        }
        if length > header.record_size_limit {
            return fault("over the record size limit");
        }
        if !offset.is_multiple_of(header.sector_size) {
            return fault("unaligned");
        }
        if offset < previous_end {
            return fault("before the previous record's end");
        }
        let end = match offset.checked_add(length) {
            Some(end) if end <= header.image_size => end,
            _ => return fault("past the image size"),
        };
        if !length.is_multiple_of(header.sector_size) && end != header.image_size {
            return fault("not whole sectors, and not the image's last sector");
        }
        if let Some(block_size) = record.block_size {
            if !block_size.is_power_of_two() || !(4096..=4 << 20).contains(&block_size) {
                return fault("over blocks of a size no digest has");
            }
            if !block_size.is_multiple_of(header.sector_size) {
                return fault("over blocks that are not whole sectors");
            }
            let whole_blocks = length.is_multiple_of(block_size) || end == header.image_size;
            if !offset.is_multiple_of(block_size) || !whole_blocks {
                return fault("over blocks, but not whole blocks");
            }
        }
        previous_end = end;
    }
    None
}

/// Why restore must refuse, and so with which error.
enum Refusal {
    /// The diff is at fault: `Error::InvalidDiff`.
    Diff(String),
    /// The target has the wrong size: `Error::WrongTarget` naming no extent.
    TargetSize(String),
    /// The target holds the wrong data at this record (the first that restore finds wrong):
    /// `Error::WrongTarget` naming it.
    Target { record: usize, why: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Diff(why) => write!(formatter, "invalid diff: {why}"),
            Refusal::TargetSize(why) => write!(formatter, "wrong target: {why}"),
            Refusal::Target { why, .. } => write!(formatter, "wrong target: {why}"),
        }
    }
}

/// What restore must do when it succeeds: the target afterwards, and what its summary counts.
struct Restored {
    target: Vec<u8>,
    /// Records that do not hold their new data yet (the torn one included).
    written: u64,
    bytes_written: u64,
    already_restored: u64,
}

/// What restore must do with this diff and target: `Ok(what it restores)` or
/// `Err(why it must refuse)`. `torn` tells which record, if any, restore must take for the
/// torn one (for `DIFF_DD_FUZZ_VERBOSE`).
fn expectation(
    header: &Header,
    records: &[Built],
    damaged: bool,
    target: &[u8],
    torn_record: &mut Option<usize>,
) -> Result<Restored, Refusal> {
    if damaged {
        return Err(Refusal::Diff("the diff's bytes were damaged".into()));
    }
    if let Some(fault) = header_fault(header) {
        return Err(Refusal::Diff(format!("header: {fault}")));
    }
    if let Some(fault) = record_fault(header, records) {
        return Err(Refusal::Diff(fault));
    }
    if target.len() as u64 != header.image_size {
        return Err(Refusal::TargetSize(format!(
            "the target has {} bytes, the image {}",
            target.len(),
            header.image_size
        )));
    }
    // What the target holds at each record. The restore rules (man/diff-dd.5, README, and
    // src/ops/restore.rs `Frontier::decide` for the torn record): every record must hold its
    // base data (to be written) or its new data (written already), in any mix. One exception
    // finishes a restore killed in the middle of a record's write: a record holding neither is
    // accepted when no record before it holds base data, no record after it holds new data,
    // and it holds its new data from its start to at least the first page boundary inside it,
    // but not all of it.
    let mut passed_base = false;
    let mut torn = None;
    let mut already_restored = 0;
    let wrong = |record: usize, why: String| Err(Refusal::Target { record, why });
    for (index, record) in records.iter().enumerate() {
        let offset = record.offset as usize;
        let held = &target[offset..][..record.data.len()];
        if held == record.data.as_slice() {
            if let Some(torn) = torn {
                // Only base data follows a record a killed restore tore: that one is wrong.
                return wrong(
                    torn,
                    format!(
                        "record {index} holds its new data after record {torn}, taken for torn"
                    ),
                );
            }
            already_restored += 1;
        } else if record.base_hash_of(held, header.image_size) == record.base_hash {
            passed_base = true;
        } else {
            if passed_base || torn.is_some() {
                return wrong(index, format!(
                    "record {index} holds neither its base nor its new data, after a record that holds base data or was torn"
                ));
            }
            let matching = held
                .iter()
                .zip(&record.data)
                .take_while(|(a, b)| a == b)
                .count() as u64;
            if matching < first_page_end(record.offset, record.data.len() as u64) {
                return wrong(index, format!(
                    "record {index} holds neither its base nor its new data ({matching} bytes of the new data first)"
                ));
            }
            torn = Some(index);
            *torn_record = Some(index);
        }
    }
    let mut restored = Restored {
        target: target.to_vec(),
        written: records.len() as u64 - already_restored,
        bytes_written: 0,
        already_restored,
    };
    for record in records {
        let held = &mut restored.target[record.offset as usize..][..record.data.len()];
        if held != record.data.as_slice() {
            restored.bytes_written += record.data.len() as u64;
        }
        held.copy_from_slice(&record.data);
    }
    Ok(restored)
}

/// `-s` and `-b` (the default `-s` is 512), as cli.rs turns them into `RestoreOptions`.
fn restore_options(options: Options) -> RestoreOptions {
    let (v1_sector_size, buffer_size) = match options {
        Options::Default => (512, 4 << 20),
        Options::Buffer512 => (512, 512),
        Options::Buffer4096 => (512, 4096),
        Options::OneByteBuffer => (1, 1),
        Options::SevenByteBuffer => (1, 7),
    };
    RestoreOptions {
        v1_sector_size,
        buffer_size,
    }
}

/// Checks a failed restore's error against the model's refusal.
fn check_refusal(refusal: &Refusal, error: &Error, records: &[Built]) {
    match (refusal, error) {
        (Refusal::Diff(_), Error::InvalidDiff { .. }) => {}
        (
            Refusal::TargetSize(_),
            Error::WrongTarget {
                extent: None,
                offset: None,
                written: Written::Nothing,
                ..
            },
        ) => {}
        (
            Refusal::Target { record, .. },
            Error::WrongTarget {
                extent: Some(extent),
                offset: Some(offset),
                written: Written::Nothing,
                ..
            },
        ) => {
            assert_eq!(*extent, *record as u64, "restore named another extent");
            assert_eq!(
                *offset, records[*record].offset,
                "restore named another offset"
            );
        }
        _ => panic!("restore must refuse ({refusal}), but failed with {error:?}"),
    }
}

/// `DIFF_DD_FUZZ_VERBOSE=1` prints every input, what was expected and what restore did;
/// `DIFF_DD_FUZZ_SAVE=DIR` also saves the diff, the target before restore and (when restore
/// must succeed) the target expected after it, as `DIR/v3_records.{diff,target,expected}`, for
/// the binary (`diff-dd restore DIR/v3_records.diff COPY_OF_TARGET`).
fn verbose() -> bool {
    static VERBOSE: OnceLock<bool> = OnceLock::new();
    *VERBOSE.get_or_init(|| std::env::var_os("DIFF_DD_FUZZ_VERBOSE").is_some())
}

/// The diff and the target, for the whole run.
struct Files {
    diff: MemFile,
    target: MemFile,
}

fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| Files {
        diff: MemFile::new(c"diff-dd-fuzz-diff"),
        target: MemFile::new(c"diff-dd-fuzz-target"),
    })
}

fuzz_target!(|input: Input| {
    let header = input.header();
    let base = input.base_image(&header);
    let (records, target) = input.records(&header, &base);

    let mut writer = Writer::new(Vec::new(), &header, 1).expect("writing the header");
    for record in &records {
        writer
            .write_record(record.offset, &record.data, record.base())
            .expect("writing a record");
    }
    let damaged = !matches!(input.damage, Damage::None);
    let mut torn_record = None;
    let expected = expectation(&header, &records, damaged, &target, &mut torn_record);
    let image_hash = blake3::hash(match &expected {
        Ok(restored) => &restored.target,
        Err(_) => &base,
    });
    let mut diff = writer
        .finish(ImageHashes {
            base: blake3::hash(&base),
            image: image_hash,
        })
        .expect("writing the trailer");
    match input.damage {
        Damage::None => {}
        Damage::Flip { at, xor } => {
            let at = at as usize % diff.len();
            diff[at] ^= xor.max(1);
        }
        Damage::Cut(n) => {
            let cut = (1 + usize::from(n)).min(diff.len());
            diff.truncate(diff.len() - cut);
        }
        Damage::Append(n) => diff.extend(std::iter::repeat_n(n, 1 + usize::from(n % 64))),
    }

    let files = files();
    files.diff.replace(&diff);
    files.target.replace(&target);
    let diff_image = files.diff.image(Role::Diff);
    let target_image = files.target.image(Role::Target);
    let options = restore_options(input.options);
    let outcome = common::bounded("restore", || {
        ops::restore(&diff_image, &target_image, &options, &NoProgress)
    });
    drop((diff_image, target_image));
    let mut after = Vec::new();
    files.target.contents(&mut after);

    if let Some(directory) = std::env::var_os("DIFF_DD_FUZZ_SAVE") {
        let directory = PathBuf::from(directory);
        std::fs::write(directory.join("v3_records.diff"), &diff).expect("saving the diff");
        std::fs::write(directory.join("v3_records.target"), &target).expect("saving the target");
        if let Ok(restored) = &expected {
            std::fs::write(directory.join("v3_records.expected"), &restored.target)
                .expect("saving the expected target");
        }
    }
    if verbose() {
        eprintln!(
            "{header:?}; {} records {:?}; target {} bytes; diff {} bytes; {:?}",
            records.len(),
            records
                .iter()
                .map(|record| (record.offset, record.data.len()))
                .collect::<Vec<_>>(),
            target.len(),
            diff.len(),
            input.damage,
        );
        eprintln!(
            "  expected: {}; restore: {}",
            match &expected {
                Ok(_) => match torn_record {
                    Some(index) => format!("restored, record {index} torn"),
                    None => "restored".to_string(),
                },
                Err(why) => format!("refused ({why})"),
            },
            match &outcome {
                Ok(summary) => format!("succeeded: {summary:?}"),
                Err(error) => format!("failed: {error}"),
            }
        );
    }

    match (expected, outcome) {
        (Ok(restored), Ok(summary)) => {
            assert!(
                after == restored.target,
                "restore succeeded, but the target is not the previous target with every record applied"
            );
            check_summary(&summary, &restored, records.len());
        }
        (Ok(_), Err(error)) => {
            panic!("restore refused a valid diff on a target ready for it: {error}")
        }
        (Err(why), Ok(summary)) => {
            panic!("restore succeeded ({summary:?}) where it must refuse: {why}")
        }
        (Err(why), Err(error)) => {
            assert!(after == target, "restore failed, but changed the target");
            check_refusal(&why, &error, &records);
        }
    }
});

/// A successful restore's summary against the model.
fn check_summary(summary: &RestoreSummary, restored: &Restored, records: usize) {
    assert_eq!(summary.format, Format::V3, "{summary:?}");
    assert!(summary.holds_hashes, "{summary:?}");
    assert_eq!(summary.extent_count, records as u64, "{summary:?}");
    assert_eq!(summary.written, restored.written, "{summary:?}");
    assert_eq!(summary.bytes_written, restored.bytes_written, "{summary:?}");
    assert_eq!(
        summary.already_restored, restored.already_restored,
        "{summary:?}"
    );
}
