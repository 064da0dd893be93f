//! Inodes ("Index Nodes" of the ext4 disk layout) and the block maps they hold: extent trees
//! ("Extent Tree") and ext2/3 block pointers ("Direct/Indirect Block Addressing"), walked
//! with every block number checked to lie in the filesystem and the blocks read bounded.

use super::superblock::{Superblock, INCOMPAT_64BIT, RO_COMPAT_HUGE_FILE};
use super::{damaged, u16_at, u32_at, Ext4, MetaKind};
use crate::fs::{FsError, FsResult, Span};

// "Index Nodes", i_flags and i_mode.
const EXTENTS_FL: u32 = 0x80000;
pub(super) const INLINE_DATA_FL: u32 = 0x1000_0000;
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

/// What owns a block an inode maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BlockUse {
    Data,
    Map(MetaKind),
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
    /// i_crtime and i_crtime_extra ("Index Nodes": in the part of a record past 128 bytes, there
    /// when i_extra_isize covers them), or None when the record has none or it is zero.
    pub fn creation_time(&self) -> Option<(u32, u32)> {
        const EXTRA_ISIZE_AT: usize = 0x80;
        const CRTIME_AT: usize = 0x90;
        const CRTIME_EXTRA_AT: usize = 0x94;
        let field = |at: usize, size: usize| self.raw.get(at..at + size);
        let extra_isize = field(EXTRA_ISIZE_AT, 2)?;
        let record_end = 128 + usize::from(u16::from_le_bytes([extra_isize[0], extra_isize[1]]));
        let word = |at: usize| {
            if at + 4 > record_end {
                return None;
            }
            field(at, 4).map(|bytes| u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
        };
        let seconds = word(CRTIME_AT)?;
        // Nanoseconds and epoch bits; a record with room for the seconds only has none.
        let extra = word(CRTIME_EXTRA_AT).unwrap_or(0);
        (seconds != 0 || extra != 0).then_some((seconds, extra))
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
    pub(super) fn i_block(&self) -> &[u8] {
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

impl Ext4<'_> {
    /// Where inode `number`'s record is, in bytes.
    fn inode_span(&self, number: u32) -> FsResult<Span> {
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
    pub(super) fn map_blocks(&self, inode: &Inode, on_run: &mut RunSink<'_>) -> FsResult<()> {
        let number = inode.number;
        // Every block handed out, data or map, is spent from the filesystem's budget, so the
        // walks of all inodes together stay within a few times the filesystem's size however
        // often a crafted map points at the same blocks.
        let on_run = &mut |used_as: BlockUse, first: u64, count: u64| -> FsResult<()> {
            if used_as != BlockUse::Map(MetaKind::XattrBlocks) {
                let left = self.mapped_left.get();
                if count > left {
                    return damaged(format!(
                        "inode {number}: the inodes' block maps hand out more blocks than the filesystem holds, twice over (blocks mapped more than once, or a map that points into itself)"
                    ));
                }
                self.mapped_left.set(left - count);
            }
            on_run(used_as, first, count)
        };
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
}

/// Takes the runs of blocks an inode maps: what they are used as, the first, the count.
pub(super) type RunSink<'s> = dyn FnMut(BlockUse, u64, u64) -> FsResult<()> + 's;

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

/// An extent tree node's header ("Extent Tree", struct ext4_extent_header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExtentHeader {
    entries: u16,
    depth: u16,
}

/// The header of the extent tree node `node`, checked to fit it.
fn parse_extent_header(node: &[u8]) -> Result<ExtentHeader, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
