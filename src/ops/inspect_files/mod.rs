//! inspect --files: which files, directories and metadata of an ext2/3/4 image a diff (or a
//! chain of diffs) changes, without mounting anything.
//!
//! The image described is the chain's last, FULL with every diff laid over it (read through
//! the chain's overlay, nothing written); the base is FULL itself. In order:
//! 1. The diffs are checked in full and as a chain ([`Chain::check`]), and FULL at every
//!    extent of the first diff: its bytes there must be those the diff replaced (their
//!    BLAKE3 is in each record), as restore checks its target. FULL is not hashed whole, so
//!    the audit costs a read of the metadata, not of the image.
//! 2. The changed bytes are the union of the chain's records: a sorted list proportional to
//!    the diffs. Each image's filesystem says who owns each changed byte
//!    ([`Ext4::owners`]: metadata by location, inodes by their block maps).
//! 3. Inodes whose data, map or record changed are resolved to paths in both images
//!    ([`Ext4::paths`]); one in use in both at the same path is modified, else deleted (in
//!    the base) and added (in the new image). A changed byte no one owns in either image is
//!    free space when the block bitmaps of both say so.
//!
//! Memory: a few metadata blocks per image at a time, plus what grows with the diffs (the
//! changed ranges and who owns them), never with the filesystem's size.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crate::chain::{Chain, Ranges};
use crate::device::OpenFile;
use crate::engine::{self, Progress};
use crate::error::{Error, Result};
use crate::format::{self, ReadOptions};
use crate::fs::ext4::{self, Ext4, FileKind, Inode, MetaKind, Owner};
use crate::fs::{self, FsError, ReadAt, Span};

/// What the audit found.
#[derive(Debug, Clone)]
pub struct FilesReport {
    pub full: PathBuf,
    pub diffs: Vec<PathBuf>,
    pub image_size: u64,
    /// The bytes the chain's records cover (each byte once, however many diffs change it).
    pub changed_bytes: u64,
    pub audit: Audit,
}

/// By file, or why not.
#[derive(Debug, Clone)]
pub enum Audit {
    /// The image the chain gives holds no ext2/3/4 filesystem: what it seems to hold.
    NoFilesystem(String),
    Ext(ExtAudit),
}

/// What changed in an ext2/3/4 filesystem.
#[derive(Debug, Clone)]
pub struct ExtAudit {
    /// ext2, ext3 or ext4.
    pub kind: &'static str,
    pub block_size: u64,
    pub blocks_count: u64,
    pub inodes_count: u32,
    pub volume_name: String,
    /// Whether FULL holds an ext2/3/4 filesystem too (else every file is added).
    pub base_has_filesystem: bool,
    /// Sorted by path.
    pub files: Vec<FileChange>,
    /// Changed bytes per kind of metadata (every kind, zero or not), in both images.
    pub metadata: Vec<(MetaKind, u64)>,
    /// Changed bytes in blocks free in both images: left by data written and deleted.
    pub free_bytes: u64,
    /// Changed bytes in blocks in use in one image that no inode or metadata owns.
    pub unowned_bytes: u64,
    /// Changed bytes past the end of the filesystem, in the rest of the image.
    pub beyond_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Added,
    Deleted,
    Modified,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Added => "added",
            Status::Deleted => "deleted",
            Status::Modified => "modified",
        }
    }
}

/// One file or directory the diffs change.
#[derive(Debug, Clone)]
pub struct FileChange {
    /// From the new image, or the base for a deleted file; None when no directory names it
    /// (an unlinked or reserved inode).
    pub path: Option<Vec<u8>>,
    pub inode: u32,
    pub kind: FileKind,
    pub status: Status,
    /// Changed bytes in its data blocks (in the base, the new image, or both).
    pub data_bytes: u64,
    /// Changed bytes in the blocks of its map (extent tree, indirect) or attribute block.
    pub map_bytes: u64,
    /// Whether its inode record differs: permissions, times, size, its map's root.
    pub inode_changed: bool,
}

impl FileChange {
    /// The path, or `<inode N>` (with what a reserved inode is for).
    pub fn display_path(&self) -> String {
        match &self.path {
            Some(path) => String::from_utf8_lossy(path).into_owned(),
            None => match reserved_name(self.inode) {
                Some(name) => format!("<inode {}: {name}>", self.inode),
                None => format!("<inode {}: no directory names it>", self.inode),
            },
        }
    }
}

/// "Special inodes" of the ext4 disk layout.
fn reserved_name(inode: u32) -> Option<&'static str> {
    Some(match inode {
        1 => "bad blocks",
        3 => "user quota",
        4 => "group quota",
        5 => "boot loader",
        6 => "undelete directory",
        7 => "resize inode",
        8 => "journal",
        9 => "exclude inode",
        10 => "replica inode",
        _ => return None,
    })
}

/// Audits the chain `diffs` over `full`, file by file.
pub fn inspect_files(
    full: &OpenFile,
    diffs: &[&OpenFile],
    progress: &dyn Progress,
) -> Result<FilesReport> {
    let chain = Chain::check(diffs, progress)?;
    chain.check_full_size(full)?;
    let changed = changed_spans(&chain)?;
    check_full_at_extents(&chain, full)?;
    let overlay = chain.overlay();
    let new_image = OverlaidImage {
        full,
        changed: &changed,
        ranges: RefCell::new(overlay.ranges()?),
    };
    let report = |audit| FilesReport {
        full: full.path.clone(),
        diffs: diffs.iter().map(|diff| diff.path.clone()).collect(),
        image_size: full.size,
        changed_bytes: fs::total(&changed),
        audit,
    };
    let in_new = |error: FsError| {
        match error {
        FsError::Read(error) => error,
        FsError::NotThere(what) | FsError::Damaged(what) => Error::unusable(
            "cannot audit the filesystem of the image the chain gives (FULL with the diffs laid over it)",
            &full.path,
            what,
        ),
    }
    };
    let in_base = |error: FsError| match error {
        FsError::Read(error) => error,
        FsError::NotThere(what) | FsError::Damaged(what) => {
            Error::unusable("cannot audit the filesystem of FULL", &full.path, what)
        }
    };
    let new_fs = match Ext4::open(&new_image) {
        Ok(fs) => fs,
        Err(FsError::NotThere(what)) => return Ok(report(Audit::NoFilesystem(what))),
        Err(error) => return Err(in_new(error)),
    };
    let base_fs = match Ext4::open(full) {
        Ok(fs) => Some(fs),
        Err(FsError::NotThere(_)) => None,
        Err(error) => return Err(in_base(error)),
    };
    let audit = audit(&new_fs, base_fs.as_ref(), &changed).map_err(|(error, side)| match side {
        Side::New => in_new(error),
        Side::Base => in_base(error),
    })?;
    Ok(report(Audit::Ext(audit)))
}

/// The union of the chain's records, sorted and merged.
fn changed_spans(chain: &Chain<'_>) -> Result<Vec<Span>> {
    let mut spans = Vec::new();
    for link in &chain.links {
        let mut reader = format::open_reader(link.diff, &ReadOptions::headers(512, None))?;
        while let Some(record) = reader.next_record()? {
            spans.push(record.offset..record.offset + record.length);
        }
    }
    fs::merge(&mut spans);
    Ok(spans)
}

/// Refuses a FULL that does not hold, at every extent of the first diff, the bytes the diff
/// replaced: then it is not the image the chain starts from, and the files named would be
/// another image's.
fn check_full_at_extents(chain: &Chain<'_>, full: &OpenFile) -> Result<()> {
    let first = chain.first();
    let mut reader = format::open_reader(first.diff, &ReadOptions::headers(512, None))?;
    let mut scratch = vec![0u8; 1 << 20];
    while let Some(record) = reader.next_record()? {
        let Some(hashes) = record.hashes else {
            continue;
        };
        let (_, held) = engine::hash_range_and_blocks(
            full,
            record.offset,
            record.length,
            hashes.base.hashing.block_size(),
            &mut scratch,
        )?;
        if held != hashes.base.value {
            return Err(Error::unusable(
                "refusing FULL",
                &full.path,
                format!(
                    "at byte {} ({} bytes) it does not hold what {} replaced there: it is not the full image the chain starts from",
                    record.offset,
                    record.length,
                    first.diff.path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// FULL with the chain's records laid over it, read at any offset: bytes no record covers
/// come from FULL alone; the others through the overlay, whose cursor starts again from the
/// front when a read goes back.
struct OverlaidImage<'i, 'o, 'a> {
    full: &'i OpenFile,
    changed: &'i [Span],
    ranges: RefCell<Ranges<'o, 'a>>,
}

impl ReadAt for OverlaidImage<'_, '_, '_> {
    fn size(&self) -> u64 {
        self.full.size
    }

    fn read_at(&self, offset: u64, buffer: &mut [u8]) -> Result<()> {
        self.full.read_at(offset, buffer)?;
        let span = offset..offset + buffer.len() as u64;
        if !fs::touches(self.changed, &span) {
            return Ok(());
        }
        self.ranges
            .borrow_mut()
            .segments(span.start, span.end, &mut |segment| {
                let into = (segment.offset - offset) as usize;
                buffer[into..into + segment.data.len()].copy_from_slice(segment.data);
                Ok(())
            })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    New,
    Base,
}

type Failed = (FsError, Side);

/// An inode seen in one image: its record if in use, and its path.
struct Seen {
    inode: Option<Inode>,
    path: Option<Vec<u8>>,
    data: Vec<Span>,
    map: Vec<Span>,
}

impl Seen {
    fn new(fs: Option<&Ext4<'_>>, number: u32) -> std::result::Result<Seen, FsError> {
        let inode = match fs {
            Some(fs) if fs.inode_in_use(number)? => Some(fs.inode(number)?),
            _ => None,
        };
        Ok(Seen {
            inode,
            path: None,
            data: Vec::new(),
            map: Vec::new(),
        })
    }
}

fn audit(
    new_fs: &Ext4<'_>,
    base_fs: Option<&Ext4<'_>>,
    changed: &[Span],
) -> std::result::Result<ExtAudit, Failed> {
    let new_owners = new_fs.owners(changed).map_err(|error| (error, Side::New))?;
    let base_owners = match base_fs {
        Some(fs) => fs.owners(changed).map_err(|error| (error, Side::Base))?,
        None => Default::default(),
    };
    let journal = |fs: &Ext4<'_>| fs.superblock.journal_inode;
    let mut claimed: Vec<Span> = Vec::new();
    let mut metadata: BTreeMap<MetaKind, Vec<Span>> = BTreeMap::new();
    // Per inode number, what each image says of it.
    let mut inodes: BTreeMap<u32, (Option<Seen>, Option<Seen>)> = BTreeMap::new();
    for (side, owners, fs) in [
        (Side::New, &new_owners, Some(new_fs)),
        (Side::Base, &base_owners, base_fs),
    ] {
        let Some(fs) = fs else { continue };
        for claim in &owners.claims {
            claimed.push(claim.span.clone());
            let (number, kind) = match claim.owner {
                Owner::Meta(kind) => {
                    metadata.entry(kind).or_default().push(claim.span.clone());
                    continue;
                }
                Owner::Data { inode, .. } if inode == journal(fs) => {
                    let spans = metadata.entry(MetaKind::Journal).or_default();
                    spans.push(claim.span.clone());
                    continue;
                }
                Owner::Data { inode, .. } => (inode, None),
                Owner::Map { kind, inode, .. } => {
                    metadata.entry(kind).or_default().push(claim.span.clone());
                    if inode == journal(fs) {
                        continue;
                    }
                    (inode, Some(kind))
                }
            };
            let entry = inodes.entry(number).or_default();
            let seen = match side {
                Side::New => &mut entry.0,
                Side::Base => &mut entry.1,
            };
            if seen.is_none() {
                *seen = Some(Seen::new(Some(fs), number).map_err(|error| (error, side))?);
            }
            if let Some(seen) = seen {
                match kind {
                    None => seen.data.push(claim.span.clone()),
                    Some(_) => seen.map.push(claim.span.clone()),
                }
            }
        }
    }
    // Records that differ between the images.
    let mut records_changed: Vec<u32> = new_owners
        .records_touched
        .iter()
        .chain(&base_owners.records_touched)
        .copied()
        .filter(|&number| number != journal(new_fs) && number != ext4::RESIZE_INODE)
        .collect();
    records_changed.sort_unstable();
    records_changed.dedup();
    let mut differing = Vec::new();
    for number in records_changed {
        let record = |fs: Option<&Ext4<'_>>, side| -> std::result::Result<Option<Inode>, Failed> {
            match fs {
                Some(fs) if number <= fs.superblock.inodes_count => {
                    fs.inode(number).map(Some).map_err(|error| (error, side))
                }
                _ => Ok(None),
            }
        };
        if record(Some(new_fs), Side::New)? != record(base_fs, Side::Base)? {
            differing.push(number);
        }
    }
    for &number in &differing {
        let entry = inodes.entry(number).or_default();
        if entry.0.is_none() {
            entry.0 = Some(Seen::new(Some(new_fs), number).map_err(|error| (error, Side::New))?);
        }
        if entry.1.is_none() {
            entry.1 = Some(Seen::new(base_fs, number).map_err(|error| (error, Side::Base))?);
        }
    }
    // The same inode's other side: in use there or not.
    for (&number, (new, base)) in inodes.iter_mut() {
        if new.is_none() {
            *new = Some(Seen::new(Some(new_fs), number).map_err(|error| (error, Side::New))?);
        }
        if base.is_none() {
            *base = Some(Seen::new(base_fs, number).map_err(|error| (error, Side::Base))?);
        }
    }

    // Paths, in each image, of the inodes in use there.
    for (side, fs, owners) in [
        (Side::New, Some(new_fs), &new_owners),
        (Side::Base, base_fs, &base_owners),
    ] {
        let Some(fs) = fs else { continue };
        let mut wanted: HashMap<u32, Option<Vec<u8>>> = inodes
            .iter()
            .filter(|(_, (new, base))| {
                let seen = if side == Side::New { new } else { base };
                seen.as_ref().is_some_and(|seen| seen.inode.is_some())
            })
            .map(|(&number, _)| (number, None))
            .collect();
        fs.paths(&mut wanted, owners.directories)
            .map_err(|error| (error, side))?;
        for (number, path) in wanted {
            if let Some((new, base)) = inodes.get_mut(&number) {
                let seen = if side == Side::New { new } else { base };
                if let Some(seen) = seen {
                    seen.path = path;
                }
            }
        }
    }

    let mut files = Vec::new();
    for (number, (new, base)) in inodes {
        let (Some(new), Some(base)) = (new, base) else {
            continue;
        };
        let inode_changed = differing.binary_search(&number).is_ok();
        let change =
            |seen: &Seen, inode: &Inode, status, spans: [&[Span]; 2], maps: [&[Span]; 2]| {
                let union = |parts: [&[Span]; 2]| {
                    let mut all: Vec<Span> = parts.concat();
                    fs::merge(&mut all);
                    fs::total(&all)
                };
                FileChange {
                    path: seen.path.clone(),
                    inode: number,
                    kind: inode.kind(),
                    status,
                    data_bytes: union(spans),
                    map_bytes: union(maps),
                    inode_changed,
                }
            };
        match (&new.inode, &base.inode) {
            (Some(new_inode), Some(base_inode))
                if new_inode.kind() == base_inode.kind()
                    && new_inode.generation() == base_inode.generation()
                    && (new.path == base.path || !inode_changed) =>
            {
                files.push(change(
                    &new,
                    new_inode,
                    Status::Modified,
                    [&new.data, &base.data],
                    [&new.map, &base.map],
                ));
            }
            (new_inode, base_inode) => {
                if let Some(inode) = base_inode {
                    files.push(change(
                        &base,
                        inode,
                        Status::Deleted,
                        [&base.data, &[]],
                        [&base.map, &[]],
                    ));
                }
                if let Some(inode) = new_inode {
                    files.push(change(
                        &new,
                        inode,
                        Status::Added,
                        [&new.data, &[]],
                        [&new.map, &[]],
                    ));
                }
            }
        }
    }
    files.sort_by(|a, b| (&a.path, a.status, a.inode).cmp(&(&b.path, b.status, b.inode)));

    // What no one owns: free in both, or in use without an owner found, or past the end.
    fs::merge(&mut claimed);
    let (mut free_bytes, mut unowned_bytes, mut beyond_bytes) = (0, 0, 0);
    let superblock = &new_fs.superblock;
    let fs_end = superblock.blocks_count * superblock.block_size;
    let mut unclaimed = Vec::new();
    subtract(changed, &claimed, &mut unclaimed);
    for span in unclaimed {
        if span.end > fs_end {
            beyond_bytes += span.end - span.start.max(fs_end);
        }
        let mut at = span.start;
        while at < span.end.min(fs_end) {
            let block = at / superblock.block_size;
            let until = ((block + 1) * superblock.block_size).min(span.end);
            let in_use = new_fs
                .block_in_use(block)
                .map_err(|error| (error, Side::New))?
                || match base_fs {
                    Some(fs) => fs
                        .block_in_use(block)
                        .map_err(|error| (error, Side::Base))?,
                    None => false,
                };
            if in_use {
                unowned_bytes += until - at;
            } else {
                free_bytes += until - at;
            }
            at = until;
        }
    }
    Ok(ExtAudit {
        kind: superblock.kind(),
        block_size: superblock.block_size,
        blocks_count: superblock.blocks_count,
        inodes_count: superblock.inodes_count,
        volume_name: superblock.volume_name.clone(),
        base_has_filesystem: base_fs.is_some(),
        files,
        metadata: MetaKind::ALL
            .iter()
            .map(|kind| {
                let mut spans = metadata.remove(kind).unwrap_or_default();
                fs::merge(&mut spans);
                (*kind, fs::total(&spans))
            })
            .collect(),
        free_bytes,
        unowned_bytes,
        beyond_bytes,
    })
}

/// `from` (sorted, disjoint) without `minus` (sorted, disjoint), into `out`.
fn subtract(from: &[Span], minus: &[Span], out: &mut Vec<Span>) {
    let mut cut = 0;
    for span in from {
        let mut start = span.start;
        while cut < minus.len() && minus[cut].end <= start {
            cut += 1;
        }
        let mut next = cut;
        while start < span.end {
            match minus.get(next) {
                Some(piece) if piece.start < span.end => {
                    if piece.start > start {
                        out.push(start..piece.start);
                    }
                    start = start.max(piece.end);
                    next += 1;
                }
                _ => {
                    out.push(start..span.end);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtracting_spans() {
        let mut out = Vec::new();
        subtract(&[0..10, 20..30, 40..50], &[5..22, 25..26, 45..60], &mut out);
        assert_eq!(out, vec![0..5, 22..25, 26..30, 40..45]);
        out.clear();
        subtract(&[0..10, 12..14], &[], &mut out);
        assert_eq!(out, vec![0..10, 12..14]);
    }
}
