//! ext2, ext3 and ext4, read-only, from the on-disk structures as the kernel's "ext4 Disk
//! Layout" documents them (<https://www.kernel.org/doc/html/latest/filesystems/ext4/>; the
//! section of each structure is named where it is read). This module holds the reader,
//! [`Ext4`], and the audit's vocabulary (who owns a byte); the structures are read in
//! submodules, one per part of the layout:
//! - `superblock`: "Super Block", the features and the geometry every other part needs;
//! - `groups`: "Block Group Descriptors", the bitmaps, and where the fixed metadata lies;
//! - `inode`: "Index Nodes", and the block maps they hold: "Extent Tree" and
//!   "Direct/Indirect Block Addressing";
//! - `dir`: "Directory Entries", the walk that names inodes ([`Ext4::paths`]).
//!
//! The reader answers two questions about one image: which inodes and which metadata own given
//! byte ranges ([`Ext4::owners`], one pass over the inode tables), and the paths of given
//! inodes ([`Ext4::paths`], one walk of the directory tree that stops once all are named).
//! It holds a few blocks at a time: group descriptors, bitmaps and inode tables are read as
//! they are needed, never all at once, and no allocation is sized by a count the filesystem
//! gives (inodes, blocks, groups), only by the block size, which is at most 64 KiB.
//!
//! Crates were considered first: ext4-view (read-only, maintained) reads files by path but does
//! not expose block maps, extent tree blocks nor metadata locations; ext4-fs exposes extents
//! but over a `BufReader` of its own and returns whole files as vectors. Neither answers
//! "which inode owns this block" over the overlay of a chain in bounded memory.
//!
//! Not read: bigalloc (clusters) and external journal devices are refused by name; checksums
//! are not checked (a wrong checksum does not make a block's owner another); the part of an
//! inline directory kept in an extended attribute is not read (its entries keep `<inode N>`).

mod dir;
mod groups;
mod inode;
mod superblock;

use std::cell::RefCell;

use super::{intersect, FsError, FsResult, ReadAt, Span};
use groups::BG_INODE_UNINIT;
use inode::BlockUse;
pub use inode::{FileKind, Inode};
pub use superblock::Superblock;
use superblock::{SUPERBLOCK_AT, SUPERBLOCK_SIZE};

/// How much of an inode table is read at once.
const INODE_CHUNK: u64 = 64 << 10;

/// The root directory's inode ("Special inodes").
pub const ROOT_INODE: u32 = 2;
/// The resize inode: its blocks are the reserved group descriptor blocks, counted as such.
pub const RESIZE_INODE: u32 = 7;

/// Little-endian fields of a structure read from the image; out of range reads are zero (the
/// caller checked the structure's size).
fn u16_at(bytes: &[u8], at: usize) -> u16 {
    bytes
        .get(at..at + 2)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn damaged<T>(reason: String) -> FsResult<T> {
    Err(FsError::Damaged(reason))
}

/// What a metadata block or byte is, for the audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MetaKind {
    /// The superblock and its backup copies (and, in group 0, the boot sector before it).
    Superblock,
    /// Group descriptors, their backups and the blocks reserved for them to grow into.
    GroupDescriptors,
    BlockBitmaps,
    InodeBitmaps,
    InodeTables,
    /// The blocks of the journal inode.
    Journal,
    /// Extent tree blocks below an inode's root.
    ExtentTree,
    /// Indirect blocks of ext2/3 style block maps.
    IndirectBlocks,
    /// Extended attribute blocks (i_file_acl).
    XattrBlocks,
}

impl MetaKind {
    pub const ALL: [MetaKind; 9] = [
        MetaKind::Superblock,
        MetaKind::GroupDescriptors,
        MetaKind::BlockBitmaps,
        MetaKind::InodeBitmaps,
        MetaKind::InodeTables,
        MetaKind::Journal,
        MetaKind::ExtentTree,
        MetaKind::IndirectBlocks,
        MetaKind::XattrBlocks,
    ];

    /// The name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            MetaKind::Superblock => "superblock",
            MetaKind::GroupDescriptors => "group_descriptors",
            MetaKind::BlockBitmaps => "block_bitmaps",
            MetaKind::InodeBitmaps => "inode_bitmaps",
            MetaKind::InodeTables => "inode_tables",
            MetaKind::Journal => "journal",
            MetaKind::ExtentTree => "extent_tree_blocks",
            MetaKind::IndirectBlocks => "indirect_blocks",
            MetaKind::XattrBlocks => "xattr_blocks",
        }
    }

    /// The name in text.
    pub fn label(self) -> &'static str {
        match self {
            MetaKind::Superblock => "superblock",
            MetaKind::GroupDescriptors => "group descriptors",
            MetaKind::BlockBitmaps => "block bitmaps",
            MetaKind::InodeBitmaps => "inode bitmaps",
            MetaKind::InodeTables => "inode tables",
            MetaKind::Journal => "journal",
            MetaKind::ExtentTree => "extent tree blocks",
            MetaKind::IndirectBlocks => "indirect blocks",
            MetaKind::XattrBlocks => "extended attribute blocks",
        }
    }
}

/// Who owns some changed bytes in one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Owner {
    Meta(MetaKind),
    /// A data block of an inode (by number and generation).
    Data {
        inode: u32,
        generation: u32,
    },
    /// A block of an inode's map (extent tree, indirect) or its attribute block.
    Map {
        kind: MetaKind,
        inode: u32,
        generation: u32,
    },
}

/// A piece of the changed bytes and who owns it in one image.
#[derive(Debug, Clone)]
pub struct Claim {
    pub span: Span,
    pub owner: Owner,
}

/// What [`Ext4::owners`] found.
#[derive(Debug, Default)]
pub struct Owners {
    pub claims: Vec<Claim>,
    /// The inodes whose records (in use or not) lie in changed bytes of an inode table.
    pub records_touched: Vec<u32>,
    /// Directories in use: the directory walk reaches no more than these.
    pub directories: u64,
}

/// An ext2/3/4 filesystem in an image.
pub struct Ext4<'a> {
    image: &'a dyn ReadAt,
    pub superblock: Superblock,
    /// The last block of group descriptors read, and where it is.
    descriptors: RefCell<(u64, Vec<u8>)>,
    /// The last bitmap block read, and where it is.
    bitmap: RefCell<(u64, Vec<u8>)>,
    /// Blocks the inodes' maps may still hand out, over every walk of this filesystem (see
    /// [`Ext4::map_blocks`]): what bounds the time a crafted map can take.
    mapped_left: std::cell::Cell<u64>,
}

impl<'a> Ext4<'a> {
    /// The filesystem in `image`, from its superblock: [`FsError::NotThere`] when it holds
    /// none (with what it seems to hold).
    pub fn open(image: &'a dyn ReadAt) -> FsResult<Ext4<'a>> {
        let size = image.size();
        let mut start = vec![0u8; size.min(0x10048) as usize];
        image.read_at(0, &mut start)?;
        let superblock =
            match start.get(SUPERBLOCK_AT as usize..SUPERBLOCK_AT as usize + SUPERBLOCK_SIZE) {
                Some(bytes) => Superblock::parse(bytes, size),
                None => Err(FsError::NotThere(String::new())),
            };
        let superblock = match superblock {
            Err(FsError::NotThere(what)) if what.starts_with("no ext") || what.is_empty() => {
                return Err(FsError::NotThere(super::describe_other(&start)))
            }
            other => other?,
        };
        // In ext4 no two inodes map one block (an attribute block, shared, is counted apart),
        // so one pass over every inode hands out at most blocks_count blocks, and the walk of
        // the directories as many again; a map that hands out more points at blocks more than
        // once (cross-linked, or pointing into itself).
        let mapped_left = superblock.blocks_count.saturating_mul(2);
        Ok(Ext4 {
            image,
            superblock,
            descriptors: RefCell::new((u64::MAX, Vec::new())),
            bitmap: RefCell::new((u64::MAX, Vec::new())),
            mapped_left: std::cell::Cell::new(mapped_left),
        })
    }

    fn block_size(&self) -> u64 {
        self.superblock.block_size
    }
}

impl Ext4<'_> {
    /// The bytes of blocks `start..start + count`.
    fn span(&self, start: u64, count: u64) -> Span {
        start * self.block_size()..(start + count) * self.block_size()
    }

    /// Refuses a run of blocks outside the filesystem, naming `what` points at it.
    fn check_blocks(&self, start: u64, count: u64, what: impl FnOnce() -> String) -> FsResult<()> {
        match start.checked_add(count) {
            Some(end)
                if start >= self.superblock.first_data_block
                    && end <= self.superblock.blocks_count =>
            {
                Ok(())
            }
            _ => damaged(format!(
                "{}: blocks {start}..+{count} lie outside the filesystem's {} blocks",
                what(),
                self.superblock.blocks_count
            )),
        }
    }

    /// Reads block `block` (in the filesystem) into `buffer`, one block long.
    fn read_block(&self, block: u64, buffer: &mut Vec<u8>) -> FsResult<()> {
        buffer.resize(self.block_size() as usize, 0);
        self.image.read_at(block * self.block_size(), buffer)?;
        Ok(())
    }

    /// Who owns each byte of `changed` (sorted, disjoint byte ranges of the image) that some
    /// metadata or inode in use owns: one pass over the group descriptors and the inode
    /// tables, reading the map blocks of inodes (extent tree, indirect blocks) as it goes.
    /// The claims are proportional to the pieces of `changed`, not to the filesystem.
    pub fn owners(&self, changed: &[Span]) -> FsResult<Owners> {
        let superblock = &self.superblock;
        let mut owners = Owners::default();
        let block_size = self.block_size();
        // The bytes of `changed` claimed by inodes' data and maps: at most all of them once,
        // since no two inodes own a block. More means blocks owned twice, whose claims would
        // grow with the filesystem rather than with the diffs.
        let changed_bytes: u64 = changed.iter().map(|span| span.end - span.start).sum();
        let mut claimed_by_inodes = 0u64;
        let inode_size = superblock.inode_size;
        self.layout(&mut |kind, first, count, group| {
            let span = self.span(first, count);
            let start = span.start;
            intersect(changed, span, &mut |piece| {
                if kind == MetaKind::InodeTables {
                    // Which records the changed bytes fall on.
                    let first_record = (piece.start - start) / inode_size;
                    let last_record = (piece.end - 1 - start) / inode_size;
                    for record in first_record..=last_record.min(superblock.inodes_per_group - 1) {
                        let number = group * superblock.inodes_per_group + record + 1;
                        if number <= u64::from(superblock.inodes_count) {
                            owners.records_touched.push(number as u32);
                        }
                    }
                }
                owners.claims.push(Claim {
                    span: piece,
                    owner: Owner::Meta(kind),
                });
            });
        })?;
        owners.records_touched.sort_unstable();
        owners.records_touched.dedup();

        // Every inode in use, group by group, its table read in chunks.
        let mut chunk = Vec::new();
        let mut bitmap = Vec::new();
        for number in 0..superblock.group_count {
            let group = self.group(number)?;
            if self.uninit(&group, BG_INODE_UNINIT) {
                continue;
            }
            let mut used = superblock.inodes_per_group;
            if superblock.group_checksums() {
                used = used.saturating_sub(group.itable_unused);
            }
            self.read_block(group.inode_bitmap, &mut bitmap)?;
            let per_chunk = INODE_CHUNK.max(block_size) / inode_size;
            let mut index = 0;
            while index < used {
                let count = per_chunk.min(used - index);
                chunk.resize((count * inode_size) as usize, 0);
                self.image.read_at(
                    group.inode_table * block_size + index * inode_size,
                    &mut chunk,
                )?;
                for (offset, raw) in chunk.chunks_exact(inode_size as usize).enumerate() {
                    let slot = index + offset as u64;
                    let in_use = bitmap[(slot / 8) as usize] & (1 << (slot % 8)) != 0;
                    let inode_number = number * superblock.inodes_per_group + slot + 1;
                    if !in_use || inode_number > u64::from(superblock.inodes_count) {
                        continue;
                    }
                    let inode = Inode {
                        number: inode_number as u32,
                        raw: raw.to_vec(),
                    };
                    if inode.kind() == FileKind::Directory {
                        owners.directories += 1;
                    }
                    if inode.number == RESIZE_INODE {
                        continue; // Its blocks are the reserved descriptor blocks.
                    }
                    let generation = inode.generation();
                    self.map_blocks(&inode, &mut |used_as, first, count| {
                        let owner = match used_as {
                            BlockUse::Data => Owner::Data {
                                inode: inode.number,
                                generation,
                            },
                            BlockUse::Map(kind) => Owner::Map {
                                kind,
                                inode: inode.number,
                                generation,
                            },
                        };
                        let mut owned_twice = false;
                        intersect(changed, self.span(first, count), &mut |piece| {
                            if used_as != BlockUse::Map(MetaKind::XattrBlocks) {
                                claimed_by_inodes += piece.end - piece.start;
                                owned_twice |= claimed_by_inodes > changed_bytes;
                            }
                            if !owned_twice {
                                owners.claims.push(Claim { span: piece, owner });
                            }
                        });
                        if owned_twice {
                            return damaged(format!(
                                "inode {}: it maps blocks that are mapped more than once (cross-linked blocks)",
                                inode.number
                            ));
                        }
                        Ok(())
                    })?;
                }
                index += count;
            }
        }
        Ok(owners)
    }
}
