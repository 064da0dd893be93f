//! The superblock ("Super Block" of the ext4 disk layout): the features and the geometry
//! (block size, groups, inodes, where descriptors and superblock copies lie) that the rest of
//! the reader needs, each field checked against the others and the image's size before use.

use super::{damaged, u16_at, u32_at};
use crate::fs::{FsError, FsResult};

/// "Super Block": at byte 1024, whatever the block size.
pub(super) const SUPERBLOCK_AT: u64 = 1024;
pub(super) const SUPERBLOCK_SIZE: usize = 1024;
const MAGIC: u16 = 0xEF53;

// Feature flags ("Super Block", s_feature_*).
const COMPAT_HAS_JOURNAL: u32 = 0x4;
const COMPAT_SPARSE_SUPER2: u32 = 0x200;
pub(super) const INCOMPAT_FILETYPE: u32 = 0x2;
const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
pub(super) const INCOMPAT_META_BG: u32 = 0x10;
pub(super) const INCOMPAT_64BIT: u32 = 0x80;
const RO_COMPAT_SPARSE_SUPER: u32 = 0x1;
pub(super) const RO_COMPAT_HUGE_FILE: u32 = 0x8;
const RO_COMPAT_GDT_CSUM: u32 = 0x10;
const RO_COMPAT_BIGALLOC: u32 = 0x200;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;

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
    pub(super) fn parse(bytes: &[u8], image_size: u64) -> FsResult<Superblock> {
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
        // Every group's inode table lies within the filesystem, so all of them together fit
        // in it: more means tables that overlap or lie outside it, and a walk of the inodes
        // that would read far more than the image.
        let tables_bytes =
            u128::from(group_count) * u128::from(inodes_per_group) * u128::from(inode_size);
        if tables_bytes > u128::from(fs_bytes) {
            return damaged(format!(
                "superblock: {group_count} groups of {inodes_per_group} inodes of {inode_size} bytes need {tables_bytes} bytes of inode tables, more than the filesystem's {fs_bytes}"
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

    pub(super) fn has(&self, incompat: u32) -> bool {
        self.feature_incompat & incompat != 0
    }

    /// Whether the group descriptors' flags and unused counts are kept (uninit_bg).
    pub(super) fn group_checksums(&self) -> bool {
        self.feature_ro_compat & (RO_COMPAT_GDT_CSUM | RO_COMPAT_METADATA_CSUM) != 0
    }

    pub(super) fn descriptors_per_block(&self) -> u64 {
        self.block_size / self.desc_size
    }

    /// The blocks the group descriptors fill ("Block Group Descriptors").
    pub(super) fn gdt_blocks(&self) -> u64 {
        self.group_count.div_ceil(self.descriptors_per_block())
    }

    /// The inode table's length in blocks, in every group.
    pub(super) fn inode_table_blocks(&self) -> u64 {
        (self.inodes_per_group * self.inode_size).div_ceil(self.block_size)
    }

    pub(super) fn group_first_block(&self, group: u64) -> u64 {
        self.first_data_block + group * self.blocks_per_group
    }

    /// Whether `group` holds a copy of the superblock ("Flexible Block Groups" and
    /// "sparse_super": groups 0, 1 and powers of 3, 5 and 7; with sparse_super2, the two
    /// groups the superblock names).
    pub(super) fn has_superblock(&self, group: u64) -> bool {
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
    pub(super) fn gdt_block(&self, index: u64) -> u64 {
        if self.has(INCOMPAT_META_BG) && index >= self.first_meta_bg {
            let group = index * self.descriptors_per_block();
            self.group_first_block(group) + u64::from(self.has_superblock(group))
        } else {
            self.first_data_block + 1 + index
        }
    }
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
}
