//! inspect --files: which files, directories and metadata of an ext2/3/4 image a diff (or a
//! chain of diffs) changes, without mounting anything.
//!
//! The image described is the chain's last, FULL with every diff laid over it (read through
//! the chain's overlay, nothing written); the base is FULL itself. In two stages:
//! 1. `compare`: the diffs are checked in full and as a chain ([`Chain::check`]); then
//!    FULL and the chain's image are read side by side within the chain's records, once:
//!    FULL must hold, at every extent of the first diff, the bytes the diff replaced (as
//!    restore checks its target), and the sectors whose bytes differ between the two are the
//!    changes the audit explains. A record may cover bytes that did not change (a diff made
//!    from a digest records whole blocks; a later diff of a chain may set bytes back), so the
//!    records alone would name files that did not change. FULL is not hashed whole.
//! 2. `audit`: each image's filesystem says who owns each differing byte
//!    ([`Ext4::owners`]: metadata by location, inodes by their block maps); inodes whose
//!    data, map or record changed are resolved to paths in both images ([`Ext4::paths`]).
//!
//! Memory: a few metadata blocks per image and two pieces of at most 1 MiB at a time, plus
//! what grows with the diffs (the records' ranges, the differing ones, and who owns them),
//! never with the filesystem's size.

mod audit;
mod compare;

use std::cell::RefCell;
use std::path::PathBuf;

use crate::chain::{Chain, Ranges};
use crate::device::OpenFile;
use crate::engine::Progress;
use crate::error::{Error, Result};
use crate::fs::ext4::{Ext4, FileKind, MetaKind};
use crate::fs::{self, FsError, ReadAt, Span};

/// What the audit found.
#[derive(Debug, Clone)]
pub struct FilesReport {
    pub full: PathBuf,
    pub diffs: Vec<PathBuf>,
    pub image_size: u64,
    /// The unit in which bytes are compared: the first diff's sector size.
    pub sector_size: u64,
    /// The bytes the chain's records cover (each byte once, however many diffs change it).
    pub changed_bytes: u64,
    /// The bytes of the sectors (within the records) where the chain's image differs from
    /// FULL: what the audit explains, and all that every count of [`ExtAudit`] counts.
    pub differing_bytes: u64,
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
    /// Differing bytes per kind of metadata (every kind, zero or not), in both images.
    pub metadata: Vec<(MetaKind, u64)>,
    /// Differing bytes in blocks free in both images: left by data written and deleted.
    pub free_bytes: u64,
    /// Differing bytes in blocks in use in one image that no inode or metadata owns.
    pub unowned_bytes: u64,
    /// Differing bytes past the end of the filesystem, in the rest of the image.
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
    /// Differing bytes in its data blocks (in the base, the new image, or both).
    pub data_bytes: u64,
    /// Differing bytes in the blocks of its map (extent tree, indirect) or attribute block.
    pub map_bytes: u64,
    /// Whether its inode record differs: permissions, times, size, its map's root.
    pub inode_changed: bool,
    /// For a file modified whose path in the base differs from `path` (moved, or renamed):
    /// that path, or None if no directory of the base names it; None when the paths agree.
    pub base_path: Option<Vec<u8>>,
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
    let compared = compare::compare(&chain, full, progress)?;
    let overlay = chain.overlay();
    let new_image = OverlaidImage {
        full,
        differing: &compared.differing,
        ranges: RefCell::new(overlay.ranges()?),
    };
    let report = |audit| FilesReport {
        full: full.path.clone(),
        diffs: diffs.iter().map(|diff| diff.path.clone()).collect(),
        image_size: full.size,
        sector_size: compared.sector_size,
        changed_bytes: fs::total(&compared.covered),
        differing_bytes: fs::total(&compared.differing),
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
    let audit =
        audit::audit(&new_fs, base_fs.as_ref(), &compared.differing).map_err(|(error, side)| {
            match side {
                audit::Side::New => in_new(error),
                audit::Side::Base => in_base(error),
            }
        })?;
    Ok(report(Audit::Ext(audit)))
}

/// FULL with the chain's records laid over it, read at any offset: bytes that do not differ
/// from FULL's (found so by `compare`) come from FULL alone; the others through the
/// overlay, whose cursor starts again from the front when a read goes back.
struct OverlaidImage<'i, 'o, 'a> {
    full: &'i OpenFile,
    differing: &'i [Span],
    ranges: RefCell<Ranges<'o, 'a>>,
}

impl ReadAt for OverlaidImage<'_, '_, '_> {
    fn size(&self) -> u64 {
        self.full.size
    }

    fn read_at(&self, offset: u64, buffer: &mut [u8]) -> Result<()> {
        self.full.read_at(offset, buffer)?;
        let span = offset..offset + buffer.len() as u64;
        if !fs::touches(self.differing, &span) {
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
