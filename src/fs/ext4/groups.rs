//! Block groups ("Block Group Descriptors" of the ext4 disk layout): each group's descriptor,
//! the block and inode bitmaps it points at, and where every kind of fixed metadata lies
//! (superblock copies, descriptors and their reserve, "Meta Block Groups", bitmaps, inode
//! tables).

use super::superblock::INCOMPAT_META_BG;
use super::{u16_at, u32_at, Ext4, MetaKind};
use crate::fs::FsResult;

// "Block Group Descriptors", bg_flags.
pub(super) const BG_INODE_UNINIT: u16 = 0x1;
const BG_BLOCK_UNINIT: u16 = 0x2;

/// One group's descriptor ("Block Group Descriptors"), its locations checked.
#[derive(Debug, Clone, Copy)]
pub(super) struct Group {
    pub block_bitmap: u64,
    pub inode_bitmap: u64,
    pub inode_table: u64,
    pub flags: u16,
    /// Inodes at the end of the table never used (kept with uninit_bg only).
    pub itable_unused: u64,
}

impl Ext4<'_> {
    /// Group `group`'s descriptor, its locations checked.
    pub(super) fn group(&self, group: u64) -> FsResult<Group> {
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

    pub(super) fn uninit(&self, group: &Group, flag: u16) -> bool {
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

    /// Where each kind of fixed metadata lies: the superblock copies, group descriptors and
    /// the blocks reserved for them, bitmaps, inode tables; `on_run(kind, first, count)`.
    /// `group` is the group whose structure it is.
    pub(super) fn layout(&self, on_run: &mut dyn FnMut(MetaKind, u64, u64, u64)) -> FsResult<()> {
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
}
