//! Shared by the fuzz targets: the input as a diff file in memory, the reading parameters a
//! diff does not record (derived from the input), and a bound on single allocations.
//!
//! Every input is a diff file byte for byte, so the same corpus serves both targets and a
//! crash artifact reproduces with the binary itself (`diff-dd inspect ARTIFACT`).

#![allow(dead_code)] // Each target uses part of this.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::FromRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use diff_dd::device::OpenFile;
use diff_dd::error::Role;

/// Records the largest single allocation, as tests/mutation.rs does: no length read from a
/// diff may be trusted for an allocation.
pub struct Counting;

static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) }
    }
    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, Ordering::Relaxed);
        unsafe { System.realloc(pointer, layout, new_size) }
    }
}

/// The bound tests/mutation.rs asserts too: the reader's own buffers are 64 KiB, frames 4 KiB.
pub const ALLOCATION_LIMIT: usize = 1 << 20;

/// Runs `work` and panics if it made a single allocation larger than [`ALLOCATION_LIMIT`].
pub fn bounded<T>(what: &str, work: impl FnOnce() -> T) -> T {
    LARGEST_ALLOCATION.store(0, Ordering::Relaxed);
    let result = work();
    let largest = LARGEST_ALLOCATION.load(Ordering::Relaxed);
    assert!(
        largest <= ALLOCATION_LIMIT,
        "{what}: allocated {largest} bytes at once (limit {ALLOCATION_LIMIT})"
    );
    result
}

/// A memfd (open for reading and writing): a file that never touches a disk.
pub struct MemFile {
    pub file: File,
    /// What errors call it (`memfd:NAME`).
    pub name: String,
}

impl MemFile {
    pub fn new(name: &CStr) -> MemFile {
        // SAFETY: a NUL-terminated name and plain flags; the descriptor is owned from here on.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0, "memfd_create: {}", io::Error::last_os_error());
        let file = unsafe { File::from_raw_fd(fd) };
        MemFile {
            file,
            name: format!("memfd:{}", name.to_string_lossy()),
        }
    }

    /// The memfd as an image in `role`, through `OpenFile::from_file` (a second descriptor of
    /// the same open file, so reading and writing through it reach the same bytes).
    pub fn image(&self, role: Role) -> OpenFile {
        let file = self.file.try_clone().expect("duplicating the memfd");
        OpenFile::from_file(file, &self.name, role).expect("opening the memfd as an image")
    }

    /// Makes `data` the whole contents.
    pub fn replace(&self, data: &[u8]) {
        self.file.set_len(0).expect("truncating the memfd");
        self.file.write_all_at(data, 0).expect("writing the memfd");
    }

    /// The whole contents, into `out` (its capacity reused).
    pub fn contents(&self, out: &mut Vec<u8>) {
        let size = self.file.metadata().expect("stat of the memfd").len();
        out.clear();
        out.resize(size as usize, 0);
        self.file.read_exact_at(out, 0).expect("reading the memfd");
    }
}

/// One memfd for the whole run (no disk churn), rewritten for every input.
static MEMFD: OnceLock<MemFile> = OnceLock::new();

/// Puts `data` in the memfd and makes it an image in the diff's role
/// (`OpenFile::from_file`, which checks and sizes it as `device::open_input` does a path).
pub fn diff_image(data: &[u8]) -> OpenFile {
    let memfd = MEMFD.get_or_init(|| MemFile::new(c"diff-dd-fuzz"));
    memfd.replace(data);
    memfd.image(Role::Diff)
}

/// The sector size a v1 diff is read with (v1 does not record it; the user gives `-s`),
/// derived from the first byte. That byte is the low byte of the first record's offset, 0 in
/// any v1 diff whose offsets are multiples of 256: then the sector size is 512 or 4096,
/// whichever the file's length fits (so both v1 seeds read whole). Otherwise: 512, 4096,
/// 1..=64, or a power of two up to 1 GiB (the range `-s` accepts).
pub fn v1_sector_size(data: &[u8]) -> u64 {
    let first = data.first().copied().unwrap_or(0);
    if first == 0 {
        return [512u64, 4096]
            .into_iter()
            .find(|&sector| (data.len() as u64).is_multiple_of(8 + sector))
            .unwrap_or(512);
    }
    match first % 4 {
        0 => 512,
        1 => 4096,
        2 => 1 + u64::from(first >> 2),
        _ => 1 << ((first >> 2) % 31),
    }
}

/// The target size a legacy diff is checked against (restore passes the target's size;
/// legacy diffs do not record the image size), derived from the last byte and from
/// `records_end`, where the diff's records end (as a first pass without a target read
/// them): exactly there, a little past it, a little short of it (the last records go past
/// the target), or beyond any device.
pub fn target_size(data: &[u8], records_end: u64) -> u64 {
    let last = data.last().copied().unwrap_or(0);
    let step = u64::from(last >> 2);
    match last % 4 {
        0 => records_end,
        1 => records_end.saturating_add(step),
        2 => records_end.saturating_sub(1 + step),
        _ => u64::MAX - step,
    }
}

/// How restore's writing pass reads record data: in pieces of this size (its buffer), derived
/// from the second-to-last byte.
pub fn piece_size(data: &[u8]) -> usize {
    let byte = data.len().checked_sub(2).map_or(0, |index| data[index]);
    [65536, 1, 7, 512, 4096][usize::from(byte) % 5]
}
