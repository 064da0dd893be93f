//! ext2, ext3 and ext4, read-only, from the on-disk structures as the kernel's "ext4 Disk
//! Layout" documents them (<https://www.kernel.org/doc/html/latest/filesystems/ext4/>; the
//! section of each structure is named where it is read): the superblock, the group
//! descriptors, the bitmaps and inode tables, extent trees and indirect blocks, directories.
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

use std::cell::RefCell;
use std::collections::HashMap;

use super::{intersect, FsError, FsResult, ReadAt, Span};

/// "Super Block": at byte 1024, whatever the block size.
const SUPERBLOCK_AT: u64 = 1024;
const SUPERBLOCK_SIZE: usize = 1024;
const MAGIC: u16 = 0xEF53;

// Feature flags ("Super Block", s_feature_*).
const COMPAT_HAS_JOURNAL: u32 = 0x4;
const COMPAT_SPARSE_SUPER2: u32 = 0x200;
const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
const INCOMPAT_META_BG: u32 = 0x10;
const INCOMPAT_64BIT: u32 = 0x80;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
const RO_COMPAT_HUGE_FILE: u32 = 0x8;
const RO_COMPAT_GDT_CSUM: u32 = 0x10;
const RO_COMPAT_BIGALLOC: u32 = 0x200;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

// "Block Group Descriptors", bg_flags.
const BG_INODE_UNINIT: u16 = 0x1;
const BG_BLOCK_UNINIT: u16 = 0x2;

// "Index Nodes", i_flags and i_mode.
const EXTENTS_FL: u32 = 0x80000;
const INLINE_DATA_FL: u32 = 0x1000_0000;
const S_IFMT: u16 = 0xF000;
const S_IFDIR: u16 = 0x4000;
const S_IFREG: u16 = 0x8000;
const S_IFLNK: u16 = 0xA000;

/// "The Contents of inode.i_block": 15 block pointers, or an extent tree's root, 60 bytes.
const I_BLOCK_AT: usize = 0x28;
const I_BLOCK_SIZE: usize = 60;

/// "Extent Tree": the kernel never builds a tree deeper than 5 levels.
const EXTENT_MAGIC: u16 = 0xF30A;
const MAX_EXTENT_DEPTH: u16 = 5;
/// More nodes than any file could need, fewer than a damaged tree that points at its own
/// nodes again and again would visit.
const MAX_MAP_BLOCKS_READ: u64 = 1 << 20;
/// The most runs of blocks kept for one directory while its entries are read.
const MAX_DIRECTORY_RUNS: usize = 1 << 16;
/// How deep the directory walk goes: a path of Linux is at most 4096 bytes, so at most 2048
/// levels of one-character names.
const MAX_DIRECTORY_DEPTH: usize = 2048;
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

/// The superblock's fields this reader uses ("Super Block"), checked against each other and
/// against the image's size.
#[derive(Debug, Clone)]
pub struct Superblock {
    pub inodes_count: u32,
    pub blocks_count: u64,
    pub first_data_block: u64,
    pub block_size: u64,
    pub blocks_per_group: u64,
    pub inodes_per_group: u64,
    pub inode_size: u64,
    pub first_inode: u32,
    pub feature_compat: u32,
    pub feature_incompat: u32,
    pub feature_ro_compat: u32,
    pub journal_inode: u32,
    pub desc_size: u64,
    pub first_meta_bg: u64,
    pub reserved_gdt_blocks: u64,
    pub backup_groups: [u32; 2],
    pub group_count: u64,
    pub volume_name: String,
}

impl Superblock {
    /// Parses the 1024 bytes at byte 1024 of an image of `image_size` bytes.
    pub fn parse(bytes: &[u8], image_size: u64) -> FsResult<Superblock> {
        if bytes.len() < SUPERBLOCK_SIZE || u16_at(bytes, 0x38) != MAGIC {
            return Err(FsError::NotThere(
                "no ext2/3/4 superblock (magic 0xEF53 at byte 1080)".into(),
            ));
        }
        let log_block_size = u32_at(bytes, 0x18);
        if log_block_size > 6 {
            return damaged(format!(
                "superblock: s_log_block_size {log_block_size} gives blocks over 64 KiB"
            ));
        }
        let block_size = 1024u64 << log_block_size;
        let feature_compat = u32_at(bytes, 0x5C);
        let feature_incompat = u32_at(bytes, 0x60);
        let feature_ro_compat = u32_at(bytes, 0x64);
        if feature_incompat & INCOMPAT_JOURNAL_DEV != 0 {
            return Err(FsError::NotThere(
                "an ext3/4 external journal device, which holds no files".into(),
            ));
        }
        if feature_ro_compat & RO_COMPAT_BIGALLOC != 0 {
            return damaged(
                "superblock: the filesystem uses bigalloc (clusters of blocks), which this reader does not support".into(),
            );
        }
        let revision = u32_at(bytes, 0x4C);
        let (inode_size, first_inode) = if revision == 0 {
            (128, 11)
        } else {
            (u64::from(u16_at(bytes, 0x58)), u32_at(bytes, 0x54))
        };
        if inode_size < 128 || !inode_size.is_power_of_two() || inode_size > block_size {
            return damaged(format!("superblock: inode size {inode_size} is impossible"));
        }
        let blocks_per_group = u64::from(u32_at(bytes, 0x20));
        let inodes_per_group = u64::from(u32_at(bytes, 0x28));
        // Each group's bitmaps are one block.
        for (name, count) in [
            ("blocks per group", blocks_per_group),
            ("inodes per group", inodes_per_group),
        ] {
            if count == 0 || count > 8 * block_size {
                return damaged(format!(
                    "superblock: {count} {name} do not fit a bitmap of one {block_size}-byte block"
                ));
            }
        }
        let first_data_block = u64::from(u32_at(bytes, 0x14));
        if first_data_block != u64::from(block_size == 1024) {
            return damaged(format!(
                "superblock: the first data block is {first_data_block}, not {} as {block_size}-byte blocks have it",
                u8::from(block_size == 1024)
            ));
        }
        let wide = feature_incompat & INCOMPAT_64BIT != 0;
        let mut blocks_count = u64::from(u32_at(bytes, 0x4));
        if wide {
            blocks_count |= u64::from(u32_at(bytes, 0x150)) << 32;
        }
        if blocks_count <= first_data_block {
            return damaged(format!(
                "superblock: {blocks_count} blocks is no filesystem"
            ));
        }
        let fs_bytes = blocks_count.saturating_mul(block_size);
        if fs_bytes > image_size {
            return damaged(format!(
                "superblock: the filesystem has {blocks_count} blocks of {block_size} bytes ({fs_bytes} bytes), more than the image's {image_size} bytes (is the image cut short?)"
            ));
        }
        let group_count = (blocks_count - first_data_block).div_ceil(blocks_per_group);
        let inodes_count = u32_at(bytes, 0x0);
        if inodes_count == 0 || u64::from(inodes_count) > group_count * inodes_per_group {
            return damaged(format!(
                "superblock: {inodes_count} inodes do not fit {group_count} groups of {inodes_per_group}"
            ));
        }
        let desc_size = if wide {
            u64::from(u16_at(bytes, 0xFE))
        } else {
            32
        };
        if desc_size < 32
            || !desc_size.is_power_of_two()
            || desc_size > 1024
            || (wide && desc_size < 64)
        {
            return damaged(format!(
                "superblock: group descriptors of {desc_size} bytes are impossible"
            ));
        }
        let journal_inode = if feature_compat & COMPAT_HAS_JOURNAL != 0 {
            u32_at(bytes, 0xE0)
        } else {
            0
        };
        let name = &bytes[0x78..0x88];
        let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
        Ok(Superblock {
            inodes_count,
            blocks_count,
            first_data_block,
            block_size,
            blocks_per_group,
            inodes_per_group,
            inode_size,
            first_inode,
            feature_compat,
            feature_incompat,
            feature_ro_compat,
            journal_inode,
            desc_size,
            first_meta_bg: u64::from(u32_at(bytes, 0x104)),
            reserved_gdt_blocks: u64::from(u16_at(bytes, 0xCE)),
            backup_groups: [u32_at(bytes, 0x24C), u32_at(bytes, 0x250)],
            group_count,
            volume_name: String::from_utf8_lossy(name).into_owned(),
        })
    }

    /// ext2, ext3 or ext4, as blkid tells them: by the features that each added.
    pub fn kind(&self) -> &'static str {
        const EXT4_INCOMPAT: u32 = 0x40 | 0x80 | 0x200 | 0x8000 | 0x10 | 0x400 | 0x1000;
        const EXT4_RO_COMPAT: u32 = 0x8 | 0x10 | 0x20 | 0x40 | 0x400;
        if self.feature_incompat & EXT4_INCOMPAT != 0
            || self.feature_ro_compat & EXT4_RO_COMPAT != 0
        {
            "ext4"
        } else if self.feature_compat & COMPAT_HAS_JOURNAL != 0 {
            "ext3"
        } else {
            "ext2"
        }
    }

    fn has(&self, incompat: u32) -> bool {
        self.feature_incompat & incompat != 0
    }

    /// Whether the group descriptors' flags and unused counts are kept (uninit_bg).
    fn group_checksums(&self) -> bool {
        self.feature_ro_compat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM) != 0
    }

    fn descriptors_per_block(&self) -> u64 {
        self.block_size / self.desc_size
    }

    /// The blocks the group descriptors fill ("Block Group Descriptors").
    fn gdt_blocks(&self) -> u64 {
        self.group_count.div_ceil(self.descriptors_per_block())
    }

    /// The inode table's length in blocks, in every group.
    fn inode_table_blocks(&self) -> u64 {
        (self.inodes_per_group * self.inode_size).div_ceil(self.block_size)
    }

    fn group_first_block(&self, group: u64) -> u64 {
        self.first_data_block + group * self.blocks_per_group
    }

    /// Whether `group` holds a copy of the superblock ("Flexible Block Groups" and
    /// "sparse_super": groups 0, 1 and powers of 3, 5 and 7; with sparse_super2, the two
    /// groups the superblock names).
    pub fn has_superblock(&self, group: u64) -> bool {
        if group == 0 {
            return true;
        }
        if self.feature_compat & COMPAT_SPARSE_SUPER2 != 0 {
            return self.backup_groups.iter().any(|&g| u64::from(g) == group);
        }
        if self.feature_ro_compat & RO_COMPAT_SPARSE_SUPER == 0 {
            return true;
        }
        if group == 1 {
            return true;
        }
        [3u64, 5, 7].iter().any(|&base| {
            let mut power = base;
            while power < group {
                power *= base;
            }
            power == group
        })
    }

    /// Where the block of group descriptors `index` is ("Meta Block Groups": past
    /// s_first_meta_bg, each block of descriptors sits in the first group of the groups it
    /// describes, after the superblock copy if that group has one).
    fn gdt_block(&self, index: u64) -> u64 {
        if self.has(INCOMPAT_META_BG) && index >= self.first_meta_bg {
            let group = index * self.descriptors_per_block();
            self.group_first_block(group) + u64::from(self.has_superblock(group))
        } else {
            self.first_data_block + 1 + index
        }
    }
}

/// One group's descriptor ("Block Group Descriptors"), its locations checked.
#[derive(Debug, Clone, Copy)]
pub struct Group {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub flags: u16,
    /// Inodes at the end of the table never used (kept with uninit_bg only).
    pub itable_unused: u64,
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

/// What owns a block an inode maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockUse {
    Data,
    Map(MetaKind),
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

/// An inode's record ("Index Nodes").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub number: u32,
    pub raw: Vec<u8>,
}

/// What an inode is, by i_mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Directory,
    Symlink,
    Other,
}

impl FileKind {
    pub fn name(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Other => "special",
        }
    }
}

impl Inode {
    pub fn mode(&self) -> u16 {
        u16_at(&self.raw, 0x0)
    }
    pub fn flags(&self) -> u32 {
        u32_at(&self.raw, 0x20)
    }
    pub fn generation(&self) -> u32 {
        u32_at(&self.raw, 0x64)
    }
    pub fn size(&self) -> u64 {
        u64::from(u32_at(&self.raw, 0x4)) | (u64::from(u32_at(&self.raw, 0x6C)) << 32)
    }
    pub fn kind(&self) -> FileKind {
        match self.mode() & S_IFMT {
            S_IFREG => FileKind::File,
            S_IFDIR => FileKind::Directory,
            S_IFLNK => FileKind::Symlink,
            _ => FileKind::Other,
        }
    }
    fn i_block(&self) -> &[u8] {
        &self.raw[I_BLOCK_AT..I_BLOCK_AT + I_BLOCK_SIZE]
    }
    fn file_acl(&self, wide: bool) -> u64 {
        let high = if wide { u16_at(&self.raw, 0x76) } else { 0 };
        u64::from(u32_at(&self.raw, 0x68)) | (u64::from(high) << 32)
    }
    /// i_blocks in filesystem blocks ("Index Nodes": 512-byte units, unless huge_file and
    /// EXT4_HUGE_FILE_FL say blocks).
    fn blocks_counted(&self, superblock: &Superblock) -> u64 {
        let count = u64::from(u32_at(&self.raw, 0x1C)) | (u64::from(u16_at(&self.raw, 0x74)) << 32);
        if superblock.feature_ro_compat & RO_COMPAT_HUGE_FILE != 0 && self.flags() & 0x40000 != 0 {
            count
        } else {
            count * 512 / superblock.block_size
        }
    }
    /// Whether i_block holds block pointers or an extent tree, rather than device numbers,
    /// a fast symlink's target or inline data.
    fn maps_blocks(&self, superblock: &Superblock) -> bool {
        if self.flags() & INLINE_DATA_FL != 0 {
            return false;
        }
        match self.kind() {
            FileKind::File | FileKind::Directory => true,
            // A fast symlink keeps its target in i_block and has no data block (but maybe an
            // attribute block, which i_blocks also counts).
            FileKind::Symlink => {
                self.flags() & EXTENTS_FL != 0
                    || self.blocks_counted(superblock)
                        > u64::from(self.file_acl(superblock.has(INCOMPAT_64BIT)) != 0)
            }
            FileKind::Other => false,
        }
    }
}

/// An ext2/3/4 filesystem in an image.
pub struct Ext4<'a> {
    image: &'a dyn ReadAt,
    pub superblock: Superblock,
    /// The last block of group descriptors read, and where it is.
    descriptors: RefCell<(u64, Vec<u8>)>,
    /// The last bitmap block read, and where it is.
    bitmap: RefCell<(u64, Vec<u8>)>,
}

/// Where the walk of an inode's map stops: reads of map blocks left.
struct Budget {
    left: u64,
    inode: u32,
}

impl Budget {
    fn spend(&mut self) -> FsResult<()> {
        if self.left == 0 {
            return damaged(format!(
                "inode {}: its block map has more than {MAX_MAP_BLOCKS_READ} map blocks (does it point into itself?)",
                self.inode
            ));
        }
        self.left -= 1;
        Ok(())
    }
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
        Ok(Ext4 {
            image,
            superblock,
            descriptors: RefCell::new((u64::MAX, Vec::new())),
            bitmap: RefCell::new((u64::MAX, Vec::new())),
        })
    }

    fn block_size(&self) -> u64 {
        self.superblock.block_size
    }

    /// The bytes of blocks `start..start + count`.
    pub fn span(&self, start: u64, count: u64) -> Span {
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

    /// Group `group`'s descriptor, its locations checked.
    pub fn group(&self, group: u64) -> FsResult<Group> {
        let superblock = &self.superblock;
        let per_block = superblock.descriptors_per_block();
        let block = superblock.gdt_block(group / per_block);
        self.check_blocks(block, 1, || format!("the descriptor of group {group}"))?;
        let mut cache = self.descriptors.borrow_mut();
        if cache.0 != block {
            cache.0 = u64::MAX;
            self.read_block(block, &mut cache.1)?;
            cache.0 = block;
        }
        let at = ((group % per_block) * superblock.desc_size) as usize;
        let bytes = &cache.1[at..at + superblock.desc_size as usize];
        let wide = superblock.desc_size >= 64;
        let field = |low: usize, high: usize| {
            u64::from(u32_at(bytes, low))
                | if wide {
                    u64::from(u32_at(bytes, high)) << 32
                } else {
                    0
                }
        };
        let descriptor = Group {
            block_bitmap: field(0x0, 0x20),
            inode_bitmap: field(0x4, 0x24),
            inode_table: field(0x8, 0x28),
            flags: u16_at(bytes, 0x12),
            itable_unused: u64::from(u16_at(bytes, 0x1C))
                | if wide {
                    u64::from(u16_at(bytes, 0x32)) << 16
                } else {
                    0
                },
        };
        let name = |what: &'static str| move || format!("group {group}'s {what}");
        self.check_blocks(descriptor.block_bitmap, 1, name("block bitmap"))?;
        self.check_blocks(descriptor.inode_bitmap, 1, name("inode bitmap"))?;
        self.check_blocks(
            descriptor.inode_table,
            superblock.inode_table_blocks(),
            name("inode table"),
        )?;
        Ok(descriptor)
    }

    /// Whether bit `bit` of the bitmap in block `block` is set.
    fn bit(&self, block: u64, bit: u64) -> FsResult<bool> {
        let mut cache = self.bitmap.borrow_mut();
        if cache.0 != block {
            cache.0 = u64::MAX;
            self.read_block(block, &mut cache.1)?;
            cache.0 = block;
        }
        Ok(cache
            .1
            .get((bit / 8) as usize)
            .is_some_and(|byte| byte & (1 << (bit % 8)) != 0))
    }

    fn uninit(&self, group: &Group, flag: u16) -> bool {
        self.superblock.group_checksums() && group.flags & flag != 0
    }

    /// Whether block `block` is in use by the block bitmap (a group whose bitmap was never
    /// written has only its metadata in use, which the caller knows apart).
    pub fn block_in_use(&self, block: u64) -> FsResult<bool> {
        let superblock = &self.superblock;
        if block < superblock.first_data_block || block >= superblock.blocks_count {
            return Ok(block < superblock.first_data_block);
        }
        let relative = block - superblock.first_data_block;
        let group = self.group(relative / superblock.blocks_per_group)?;
        if self.uninit(&group, BG_BLOCK_UNINIT) {
            return Ok(false);
        }
        self.bit(group.block_bitmap, relative % superblock.blocks_per_group)
    }

    /// Whether inode `number` is in use by the inode bitmap.
    pub fn inode_in_use(&self, number: u32) -> FsResult<bool> {
        if number == 0 || number > self.superblock.inodes_count {
            return Ok(false);
        }
        let index = u64::from(number - 1);
        let group = self.group(index / self.superblock.inodes_per_group)?;
        if self.uninit(&group, BG_INODE_UNINIT) {
            return Ok(false);
        }
        self.bit(group.inode_bitmap, index % self.superblock.inodes_per_group)
    }

    /// Where inode `number`'s record is, in bytes.
    pub fn inode_span(&self, number: u32) -> FsResult<Span> {
        if number == 0 || number > self.superblock.inodes_count {
            return damaged(format!(
                "inode {number} does not exist (the filesystem has {})",
                self.superblock.inodes_count
            ));
        }
        let index = u64::from(number - 1);
        let group = self.group(index / self.superblock.inodes_per_group)?;
        let at = group.inode_table * self.block_size()
            + (index % self.superblock.inodes_per_group) * self.superblock.inode_size;
        Ok(at..at + self.superblock.inode_size)
    }

    /// Inode `number`'s record.
    pub fn inode(&self, number: u32) -> FsResult<Inode> {
        let span = self.inode_span(number)?;
        let mut raw = vec![0u8; (span.end - span.start) as usize];
        self.image.read_at(span.start, &mut raw)?;
        Ok(Inode { number, raw })
    }

    /// Calls `on_run` with every run of blocks `inode` maps, in no particular order: data
    /// blocks, and the blocks of its map (extent tree or indirect blocks) and its attribute
    /// block. Every block number is checked to lie in the filesystem.
    pub fn map_blocks(&self, inode: &Inode, on_run: &mut RunSink<'_>) -> FsResult<()> {
        let number = inode.number;
        let acl = inode.file_acl(self.superblock.has(INCOMPAT_64BIT));
        if acl != 0 {
            self.check_blocks(acl, 1, || format!("inode {number}'s attribute block"))?;
            on_run(BlockUse::Map(MetaKind::XattrBlocks), acl, 1)?;
        }
        if !inode.maps_blocks(&self.superblock) {
            return Ok(());
        }
        let mut budget = Budget {
            left: MAX_MAP_BLOCKS_READ,
            inode: number,
        };
        if inode.flags() & EXTENTS_FL != 0 {
            self.extent_node(number, inode.i_block(), None, &mut budget, on_run)
        } else {
            self.indirect_map(inode, &mut budget, on_run)
        }
    }

    /// One node of an extent tree ("Extent Tree": a 12-byte header, then 12-byte index
    /// entries or leaf extents); `depth` is what its parent says it must be.
    fn extent_node(
        &self,
        number: u32,
        node: &[u8],
        depth: Option<u16>,
        budget: &mut Budget,
        on_run: &mut RunSink<'_>,
    ) -> FsResult<()> {
        let header = parse_extent_header(node).map_err(|reason| {
            FsError::Damaged(format!("inode {number}'s extent tree: {reason}"))
        })?;
        if depth.is_some_and(|depth| depth != header.depth) {
            return damaged(format!(
                "inode {number}'s extent tree: a node at depth {} says it is at depth {}",
                depth.unwrap_or(0),
                header.depth
            ));
        }
        let mut child = Vec::new();
        for entry in node[12..].chunks_exact(12).take(header.entries as usize) {
            if header.depth == 0 {
                let length = u64::from(u16_at(entry, 4));
                // Above 32768, an extent not yet written ("ee_len").
                let length = if length > 32768 {
                    length - 32768
                } else {
                    length
                };
                let start = u64::from(u32_at(entry, 8)) | (u64::from(u16_at(entry, 6)) << 32);
                if length == 0 {
                    continue;
                }
                self.check_blocks(start, length, || format!("inode {number}'s extent"))?;
                on_run(BlockUse::Data, start, length)?;
            } else {
                let leaf = u64::from(u32_at(entry, 4)) | (u64::from(u16_at(entry, 8)) << 32);
                self.check_blocks(leaf, 1, || format!("inode {number}'s extent tree"))?;
                budget.spend()?;
                on_run(BlockUse::Map(MetaKind::ExtentTree), leaf, 1)?;
                self.read_block(leaf, &mut child)?;
                self.extent_node(number, &child, Some(header.depth - 1), budget, on_run)?;
            }
        }
        Ok(())
    }

    /// An ext2/3 block map ("Direct/Indirect Block Addressing"): 12 direct pointers, then one
    /// indirect, one double and one triple indirect block; 0 is a hole. Consecutive data
    /// blocks are handed out as one run.
    fn indirect_map(
        &self,
        inode: &Inode,
        budget: &mut Budget,
        on_run: &mut RunSink<'_>,
    ) -> FsResult<()> {
        let number = inode.number;
        let mut runs = RunJoiner { run: None };
        let pointers = inode.i_block();
        for index in 0..15 {
            let block = u64::from(u32_at(pointers, index * 4));
            if block == 0 {
                continue;
            }
            self.check_blocks(block, 1, || format!("inode {number}'s block map"))?;
            match index {
                0..=11 => runs.push(block, on_run)?,
                _ => self.indirect_block(number, block, index - 11, budget, &mut runs, on_run)?,
            }
        }
        runs.finish(on_run)
    }

    /// An indirect block `levels` above the data.
    fn indirect_block(
        &self,
        number: u32,
        block: u64,
        levels: usize,
        budget: &mut Budget,
        runs: &mut RunJoiner,
        on_run: &mut RunSink<'_>,
    ) -> FsResult<()> {
        budget.spend()?;
        on_run(BlockUse::Map(MetaKind::IndirectBlocks), block, 1)?;
        let mut pointers = Vec::new();
        self.read_block(block, &mut pointers)?;
        for entry in pointers.chunks_exact(4) {
            let pointer = u64::from(u32_at(entry, 0));
            if pointer == 0 {
                continue;
            }
            self.check_blocks(pointer, 1, || {
                format!("inode {number}'s indirect block {block}")
            })?;
            if levels == 1 {
                runs.push(pointer, on_run)?;
            } else {
                self.indirect_block(number, pointer, levels - 1, budget, runs, on_run)?;
            }
        }
        Ok(())
    }

    /// Where each kind of fixed metadata lies: the superblock copies, group descriptors and
    /// the blocks reserved for them, bitmaps, inode tables; `on_run(kind, first, count)`.
    /// `group` is the group whose structure it is.
    fn layout(&self, on_run: &mut dyn FnMut(MetaKind, u64, u64, u64)) -> FsResult<()> {
        let superblock = &self.superblock;
        let meta_bg = superblock.has(INCOMPAT_META_BG);
        let per_block = superblock.descriptors_per_block();
        // Block 0 holds the boot sector and, with blocks over 1 KiB, the superblock.
        on_run(MetaKind::Superblock, 0, superblock.first_data_block + 1, 0);
        for number in 0..superblock.group_count {
            let first = superblock.group_first_block(number);
            let has_super = superblock.has_superblock(number);
            if has_super && number > 0 {
                on_run(MetaKind::Superblock, first, 1, number);
            }
            let super_blocks = u64::from(has_super);
            if has_super {
                // Before s_first_meta_bg (all of them without meta_bg), the descriptor blocks
                // and the reserved ones follow each superblock copy.
                let classic = if meta_bg {
                    superblock.first_meta_bg.min(superblock.gdt_blocks())
                } else {
                    superblock.gdt_blocks()
                };
                on_run(
                    MetaKind::GroupDescriptors,
                    first + 1,
                    classic + superblock.reserved_gdt_blocks,
                    number,
                );
            }
            if meta_bg {
                // "Meta Block Groups": a descriptor block in the first, second and last group
                // of each meta group.
                let position = number % per_block;
                let meta_group = number / per_block;
                if meta_group >= superblock.first_meta_bg
                    && (position <= 1 || position == per_block - 1)
                {
                    on_run(MetaKind::GroupDescriptors, first + super_blocks, 1, number);
                }
            }
            let group = self.group(number)?;
            on_run(MetaKind::BlockBitmaps, group.block_bitmap, 1, number);
            on_run(MetaKind::InodeBitmaps, group.inode_bitmap, 1, number);
            let table_blocks = superblock.inode_table_blocks();
            on_run(
                MetaKind::InodeTables,
                group.inode_table,
                table_blocks,
                number,
            );
        }
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
                        intersect(changed, self.span(first, count), &mut |piece| {
                            owners.claims.push(Claim { span: piece, owner });
                        });
                        Ok(())
                    })?;
                }
                index += count;
            }
        }
        Ok(owners)
    }

    /// The runs of data blocks of directory `inode`, or its inline entries.
    fn directory_runs(&self, inode: &Inode) -> FsResult<Vec<(u64, u64)>> {
        let mut runs = Vec::new();
        self.map_blocks(inode, &mut |used_as, first, count| {
            if used_as == BlockUse::Data {
                if runs.len() >= MAX_DIRECTORY_RUNS {
                    return damaged(format!(
                        "directory inode {}: more than {MAX_DIRECTORY_RUNS} runs of blocks",
                        inode.number
                    ));
                }
                runs.push((first, count));
            }
            Ok(())
        })?;
        Ok(runs)
    }

    /// The paths of the inodes in `wanted` (to `None` each), found by walking the directory
    /// tree from the root, depth first, until every one is named; an inode with several
    /// names keeps the first found. `directories` bounds the directories visited (a damaged
    /// tree can reach one directory from several): more is an error. Memory: per level of
    /// the current path, the directory's runs of blocks and the subdirectories of one block.
    pub fn paths(
        &self,
        wanted: &mut HashMap<u32, Option<Vec<u8>>>,
        directories: u64,
    ) -> FsResult<()> {
        let mut left = wanted.values().filter(|path| path.is_none()).count();
        if let Some(path @ None) = wanted.get_mut(&ROOT_INODE) {
            *path = Some(b"/".to_vec());
            left -= 1;
        }
        if left == 0 {
            return Ok(());
        }
        let filetype = self.superblock.has(INCOMPAT_FILETYPE);
        let mut path: Vec<u8> = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut entries: Vec<(u32, Vec<u8>, u8)> = Vec::new();
        let mut buffer = Vec::new();
        let root = self.inode(ROOT_INODE)?;
        if root.kind() != FileKind::Directory {
            return damaged("the root inode (2) is not a directory".into());
        }
        let mut visited = 1u64;
        stack.push(self.enter(&root, 0, filetype, &mut entries)?);
        left = self.take_names(
            &entries,
            wanted,
            &mut path,
            0,
            left,
            &mut stack[0].pending,
            filetype,
        );
        while left > 0 {
            let Some(frame) = stack.last_mut() else { break };
            if let Some((child, name)) = frame.pending.pop() {
                let parent_length = frame.path_length;
                let inode = self.inode(child)?;
                if inode.kind() != FileKind::Directory {
                    continue;
                }
                if stack.len() >= MAX_DIRECTORY_DEPTH {
                    return damaged(format!(
                        "the directory tree is more than {MAX_DIRECTORY_DEPTH} levels deep (does a directory hold its own parent?)"
                    ));
                }
                visited += 1;
                if visited > directories {
                    return damaged(format!(
                        "the directory tree reaches more directories than the {directories} in use (is a directory in two places?)"
                    ));
                }
                path.truncate(parent_length);
                path.push(b'/');
                path.extend_from_slice(&name);
                let path_length = path.len();
                stack.push(self.enter(&inode, path_length, filetype, &mut entries)?);
                let top = stack.len() - 1;
                left = self.take_names(
                    &entries,
                    wanted,
                    &mut path,
                    path_length,
                    left,
                    &mut stack[top].pending,
                    filetype,
                );
                continue;
            }
            // The next block of this directory, or back up when there is none.
            let Some(&(first, count)) = frame.runs.get(frame.run) else {
                stack.pop();
                continue;
            };
            let block = first + frame.block;
            frame.block += 1;
            if frame.block == count {
                frame.run += 1;
                frame.block = 0;
            }
            let path_length = frame.path_length;
            self.read_block(block, &mut buffer)?;
            entries.clear();
            read_entries(&buffer, filetype, &mut entries)
                .map_err(|reason| FsError::Damaged(format!("directory block {block}: {reason}")))?;
            let top = stack.len() - 1;
            left = self.take_names(
                &entries,
                wanted,
                &mut path,
                path_length,
                left,
                &mut stack[top].pending,
                filetype,
            );
        }
        Ok(())
    }

    /// The walk's frame for directory `inode`, whose path is `path_length` bytes long, with
    /// its inline entries (if it keeps them in the inode) in `entries`.
    fn enter(
        &self,
        inode: &Inode,
        path_length: usize,
        filetype: bool,
        entries: &mut Vec<(u32, Vec<u8>, u8)>,
    ) -> FsResult<Frame> {
        entries.clear();
        if inode.flags() & INLINE_DATA_FL != 0 {
            // "Inline Directories": the parent's number, then entries without "." and "..".
            read_entries(&inode.i_block()[4..], filetype, entries).map_err(|reason| {
                FsError::Damaged(format!(
                    "directory inode {}'s inline entries: {reason}",
                    inode.number
                ))
            })?;
        }
        Ok(Frame {
            runs: self.directory_runs(inode)?,
            run: 0,
            block: 0,
            pending: Vec::new(),
            path_length,
        })
    }

    /// Names the wanted inodes among `entries` of the directory whose path is
    /// `path[..path_length]`, and queues its subdirectories (all entries when the directory
    /// entries carry no file type); returns how many wanted inodes are left unnamed.
    #[allow(clippy::too_many_arguments)]
    fn take_names(
        &self,
        entries: &[(u32, Vec<u8>, u8)],
        wanted: &mut HashMap<u32, Option<Vec<u8>>>,
        path: &mut Vec<u8>,
        path_length: usize,
        mut left: usize,
        pending: &mut Vec<(u32, Vec<u8>)>,
        filetype: bool,
    ) -> usize {
        for (number, name, file_type) in entries {
            if name == b"."
                || name == b".."
                || *number == 0
                || *number > self.superblock.inodes_count
            {
                continue;
            }
            if let Some(slot) = wanted.get_mut(number) {
                if slot.is_none() {
                    path.truncate(path_length);
                    path.push(b'/');
                    path.extend_from_slice(name);
                    *slot = Some(path.clone());
                    left -= 1;
                }
            }
            // "Linear (Classic) Directories": file type 2 is a directory.
            if !filetype || *file_type == 2 {
                pending.push((*number, name.clone()));
            }
        }
        path.truncate(path_length);
        left
    }
}

/// Takes the runs of blocks an inode maps: what they are used as, the first, the count.
pub type RunSink<'s> = dyn FnMut(BlockUse, u64, u64) -> FsResult<()> + 's;

/// Joins the data blocks of an indirect map, one at a time, into runs.
struct RunJoiner {
    run: Option<(u64, u64)>,
}

impl RunJoiner {
    fn push(&mut self, block: u64, on_run: &mut RunSink<'_>) -> FsResult<()> {
        match &mut self.run {
            Some((start, count)) if *start + *count == block => *count += 1,
            _ => {
                self.finish(on_run)?;
                self.run = Some((block, 1));
            }
        }
        Ok(())
    }

    fn finish(&mut self, on_run: &mut RunSink<'_>) -> FsResult<()> {
        match self.run.take() {
            Some((start, count)) => on_run(BlockUse::Data, start, count),
            None => Ok(()),
        }
    }
}

/// A directory being read by [`Ext4::paths`].
struct Frame {
    /// Its data blocks, as runs (first, count), and where the reading is in them.
    runs: Vec<(u64, u64)>,
    run: usize,
    block: u64,
    /// Entries of the block read last that may be directories: (inode, name).
    pending: Vec<(u32, Vec<u8>)>,
    /// The length of its path.
    path_length: usize,
}

/// An extent tree node's header ("Extent Tree", struct ext4_extent_header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtentHeader {
    pub entries: u16,
    pub depth: u16,
}

/// The header of the extent tree node `node`, checked to fit it.
pub fn parse_extent_header(node: &[u8]) -> Result<ExtentHeader, String> {
    if node.len() < 12 || u16_at(node, 0) != EXTENT_MAGIC {
        return Err("a node without the extent magic 0xF30A".into());
    }
    let entries = u16_at(node, 2);
    let max = u16_at(node, 4);
    let depth = u16_at(node, 6);
    if entries > max || 12 + 12 * usize::from(max) > node.len() {
        return Err(format!(
            "a node of {} bytes says it holds {entries} of {max} entries",
            node.len()
        ));
    }
    if depth > MAX_EXTENT_DEPTH {
        return Err(format!(
            "a node at depth {depth}, deeper than {MAX_EXTENT_DEPTH}"
        ));
    }
    Ok(ExtentHeader { entries, depth })
}

/// The entries of a directory block, read as a linear directory ("Linear (Classic)
/// Directories": inode, rec_len, name_len, file_type, name). A hash tree's nodes read as
/// entries of inode 0 spanning the rest of the block, and are skipped like deleted entries;
/// so is the checksum tail. An entry that does not fit the block is an error.
pub fn read_entries(
    block: &[u8],
    filetype: bool,
    entries: &mut Vec<(u32, Vec<u8>, u8)>,
) -> Result<(), String> {
    let mut at = 0usize;
    while at + 8 <= block.len() {
        let number = u32_at(block, at);
        let stored = u32::from(u16_at(block, at + 4));
        // "ext4_rec_len_from_disk": 64 KiB blocks store their longest lengths in low bits.
        let record_length = if block.len() >= 65536 && (stored == 65535 || stored == 0) {
            65536
        } else {
            ((stored & 65532) | ((stored & 3) << 16)) as usize
        };
        let name_length = if filetype {
            usize::from(block[at + 6])
        } else {
            usize::from(u16_at(block, at + 6))
        };
        if record_length < 8 || record_length % 4 != 0 || at + record_length > block.len() {
            return Err(format!(
                "the entry at byte {at} has a length of {record_length}"
            ));
        }
        if number != 0 {
            if 8 + name_length > record_length {
                return Err(format!(
                    "the entry at byte {at} has a name of {name_length} bytes in {record_length}"
                ));
            }
            let name = block[at + 8..at + 8 + name_length].to_vec();
            entries.push((number, name, if filetype { block[at + 7] } else { 0 }));
        }
        at += record_length;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn superblock_bytes() -> Vec<u8> {
        let mut bytes = vec![0u8; 1024];
        let mut put =
            |at: usize, value: u32| bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        put(0x0, 2048); // inodes
        put(0x4, 8192); // blocks
        put(0x14, 1); // first data block
        put(0x18, 0); // 1 KiB blocks
        put(0x20, 8192);
        put(0x28, 2048);
        put(0x4C, 1);
        put(0x54, 11);
        bytes[0x38..0x3A].copy_from_slice(&MAGIC.to_le_bytes());
        bytes[0x58..0x5A].copy_from_slice(&256u16.to_le_bytes());
        bytes
    }

    #[test]
    fn a_superblock_is_checked_before_use() {
        let bytes = superblock_bytes();
        let superblock = Superblock::parse(&bytes, 8 << 20).unwrap();
        assert_eq!((superblock.block_size, superblock.group_count), (1024, 1));
        assert_eq!(superblock.kind(), "ext2");
        // The image is smaller than the filesystem claims.
        assert!(
            matches!(Superblock::parse(&bytes, 1 << 20), Err(FsError::Damaged(reason)) if reason.contains("cut short"))
        );
        let mut bad = bytes.clone();
        bad[0x18] = 9;
        assert!(matches!(
            Superblock::parse(&bad, 8 << 20),
            Err(FsError::Damaged(_))
        ));
        let mut bad = bytes.clone();
        bad[0x20..0x24].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(
            matches!(Superblock::parse(&bad, 8 << 20), Err(FsError::Damaged(reason)) if reason.contains("bitmap"))
        );
        let mut bad = bytes.clone();
        bad[0x58..0x5A].copy_from_slice(&100u16.to_le_bytes());
        assert!(
            matches!(Superblock::parse(&bad, 8 << 20), Err(FsError::Damaged(reason)) if reason.contains("inode size"))
        );
        let mut bad = bytes;
        bad[0x38] = 0;
        assert!(matches!(
            Superblock::parse(&bad, 8 << 20),
            Err(FsError::NotThere(_))
        ));
    }

    #[test]
    fn backup_superblocks_are_in_sparse_groups() {
        let mut superblock = Superblock::parse(&superblock_bytes(), 8 << 20).unwrap();
        superblock.feature_ro_compat = RO_COMPAT_SPARSE_SUPER;
        let groups: Vec<u64> = (0..60).filter(|&g| superblock.has_superblock(g)).collect();
        assert_eq!(groups, vec![0, 1, 3, 5, 7, 9, 25, 27, 49]);
    }

    #[test]
    fn extent_headers_must_fit_their_node() {
        let mut node = vec![0u8; 60];
        node[0..2].copy_from_slice(&EXTENT_MAGIC.to_le_bytes());
        node[2..4].copy_from_slice(&4u16.to_le_bytes());
        node[4..6].copy_from_slice(&4u16.to_le_bytes());
        assert_eq!(
            parse_extent_header(&node),
            Ok(ExtentHeader {
                entries: 4,
                depth: 0
            })
        );
        node[4..6].copy_from_slice(&5u16.to_le_bytes()); // 5 entries do not fit 60 bytes
        assert!(parse_extent_header(&node).is_err());
        node[4..6].copy_from_slice(&4u16.to_le_bytes());
        node[6..8].copy_from_slice(&6u16.to_le_bytes());
        assert!(parse_extent_header(&node).is_err());
        node[0] = 0;
        assert!(parse_extent_header(&node).is_err());
    }

    #[test]
    fn directory_entries_are_bounded_by_their_block() {
        let mut block = vec![0u8; 64];
        let mut put_entry = |at: usize, number: u32, length: u16, name: &[u8], kind: u8| {
            block[at..at + 4].copy_from_slice(&number.to_le_bytes());
            block[at + 4..at + 6].copy_from_slice(&length.to_le_bytes());
            block[at + 6] = name.len() as u8;
            block[at + 7] = kind;
            block[at + 8..at + 8 + name.len()].copy_from_slice(name);
        };
        put_entry(0, 2, 12, b".", 2);
        put_entry(12, 0, 12, b"", 0); // deleted
        put_entry(24, 12, 40, b"file", 1);
        let mut entries = Vec::new();
        read_entries(&block, true, &mut entries).unwrap();
        assert_eq!(
            entries,
            vec![(2, b".".to_vec(), 2), (12, b"file".to_vec(), 1)]
        );
        block[28..30].copy_from_slice(&44u16.to_le_bytes()); // past the block
        assert!(read_entries(&block, true, &mut Vec::new()).is_err());
        block[28..30].copy_from_slice(&6u16.to_le_bytes()); // shorter than a header
        assert!(read_entries(&block, true, &mut Vec::new()).is_err());
    }
}
