//! Filesystems inside images, for auditing a diff by file (`inspect --files`): a reader over an
//! image, or over the image a chain of diffs gives, that answers which files and which
//! metadata own given byte ranges, and the paths of given inodes. Only the inspect op asks it;
//! nothing else depends on it, and it depends on nothing but [`ReadAt`] and the error type.
//!
//! A filesystem is input from outside like a diff: every count and offset read from it is
//! bounded before it is used, memory is bounded by a few metadata blocks at a time (plus what
//! is proportional to the byte ranges asked about), and a damaged filesystem is an error that
//! names what is damaged ([`FsError::Damaged`]), never a panic.

pub mod ext4;

use std::ops::Range;

use crate::device::OpenFile;
use crate::error::Error;

/// A run of bytes of an image, `start..end`.
pub type Span = Range<u64>;

/// An image read at any offset: a file, or a file with a chain's records laid over it.
pub trait ReadAt {
    /// The image's size in bytes.
    fn size(&self) -> u64;
    /// Reads exactly `buffer.len()` bytes at `offset`, which the caller keeps within `size`.
    fn read_at(&self, offset: u64, buffer: &mut [u8]) -> crate::error::Result<()>;
}

impl ReadAt for OpenFile {
    fn size(&self) -> u64 {
        self.size
    }
    fn read_at(&self, offset: u64, buffer: &mut [u8]) -> crate::error::Result<()> {
        OpenFile::read_at(self, offset, buffer)
    }
}

/// An image held in memory (unit tests and the fuzz target).
impl ReadAt for Vec<u8> {
    fn size(&self) -> u64 {
        self.len() as u64
    }
    fn read_at(&self, offset: u64, buffer: &mut [u8]) -> crate::error::Result<()> {
        let start = usize::try_from(offset).map_err(|_| Error::Internal("read past an image"))?;
        let source = self
            .get(start..start.saturating_add(buffer.len()))
            .ok_or(Error::Internal("read past an image"))?;
        buffer.copy_from_slice(source);
        Ok(())
    }
}

/// Why a filesystem cannot be read.
#[derive(Debug)]
pub enum FsError {
    /// The image holds no filesystem this module reads: what it seems to hold instead.
    NotThere(String),
    /// The filesystem is there but damaged, or uses a feature this reader refuses: what.
    Damaged(String),
    /// The image itself could not be read.
    Read(Error),
}

impl From<Error> for FsError {
    fn from(error: Error) -> FsError {
        FsError::Read(error)
    }
}

pub type FsResult<T> = std::result::Result<T, FsError>;

/// Calls `on_piece` with every piece of `span` that lies in `changed` (sorted, disjoint).
pub fn intersect(changed: &[Span], span: Span, on_piece: &mut dyn FnMut(Span)) {
    if span.start >= span.end {
        return;
    }
    let first = changed.partition_point(|piece| piece.end <= span.start);
    for piece in &changed[first..] {
        if piece.start >= span.end {
            break;
        }
        on_piece(piece.start.max(span.start)..piece.end.min(span.end));
    }
}

/// Whether any byte of `span` lies in `changed` (sorted, disjoint).
pub fn touches(changed: &[Span], span: &Span) -> bool {
    let first = changed.partition_point(|piece| piece.end <= span.start);
    changed
        .get(first)
        .is_some_and(|piece| piece.start < span.end)
}

/// Sorts `spans` and merges those that overlap or touch.
pub fn merge(spans: &mut Vec<Span>) {
    spans.retain(|span| span.start < span.end);
    spans.sort_unstable_by_key(|span| span.start);
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for span in spans.drain(..) {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    *spans = merged;
}

/// The bytes `spans` (sorted, disjoint) cover.
pub fn total(spans: &[Span]) -> u64 {
    spans.iter().map(|span| span.end - span.start).sum()
}

/// What an image that holds no ext2/3/4 filesystem seems to hold, from the signatures at its
/// start: `start` is its first 64 KiB or less (btrfs keeps its magic at 0x10040).
pub fn describe_other(start: &[u8]) -> String {
    let at = |offset: usize, signature: &[u8]| {
        start.get(offset..offset + signature.len()) == Some(signature)
    };
    let what = if at(0, b"LUKS\xba\xbe") {
        "a LUKS encrypted volume"
    } else if at(0, b"XFSB") {
        "an XFS filesystem"
    } else if at(0x10040, b"_BHRfS_M") {
        "a btrfs filesystem"
    } else if at(3, b"NTFS    ") {
        "an NTFS filesystem"
    } else if at(512, b"EFI PART") {
        "a GPT partition table (audit a partition's image instead: the filesystem must start at byte 0)"
    } else if at(4086, b"SWAPSPACE2") || at(4086, b"SWAP-SPACE") {
        "Linux swap space"
    } else if at(0x36, b"FAT") || at(0x52, b"FAT32") {
        "a FAT filesystem"
    } else if at(510, &[0x55, 0xaa]) {
        "an MBR partition table (audit a partition's image instead: the filesystem must start at byte 0)"
    } else if !start.is_empty() && start.iter().all(|&byte| byte == 0) {
        "zeros"
    } else {
        "no ext2/3/4 superblock (magic 0xEF53 at byte 1080), nor another signature diff-dd knows"
    };
    what.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_merge_and_intersect() {
        let mut spans = vec![10..20, 0..5, 5..7, 15..30, 40..40];
        merge(&mut spans);
        assert_eq!(spans, vec![0..7, 10..30]);
        let mut pieces = Vec::new();
        intersect(&spans, 6..12, &mut |piece| pieces.push(piece));
        assert_eq!(pieces, vec![6..7, 10..12]);
        // An empty span has no piece, even inside a changed one.
        intersect(&spans, 15..15, &mut |piece| pieces.push(piece));
        assert_eq!(pieces.len(), 2);
        assert!(touches(&spans, &(29..100)) && !touches(&spans, &(7..10)));
        assert_eq!(total(&spans), 27);
    }

    #[test]
    fn other_contents_are_named() {
        let mut start = vec![0u8; 70000];
        assert_eq!(describe_other(&start), "zeros");
        start[510] = 0x55;
        start[511] = 0xaa;
        assert!(describe_other(&start).starts_with("an MBR partition table"));
        start[512..520].copy_from_slice(b"EFI PART");
        assert!(describe_other(&start).starts_with("a GPT partition table"));
        start[..6].copy_from_slice(b"LUKS\xba\xbe");
        assert_eq!(describe_other(&start), "a LUKS encrypted volume");
        assert!(describe_other(b"hello").starts_with("no ext2/3/4 superblock"));
    }
}
