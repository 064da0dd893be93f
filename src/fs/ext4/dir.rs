//! Directories ("Directory Entries" of the ext4 disk layout: linear blocks, hash tree nodes
//! read as linear ones, "Inline Directories"), and the walk that names inodes by path
//! ([`Ext4::paths`]), bounded in depth, in directories visited and in the runs kept.

use std::collections::HashMap;

use super::inode::{BlockUse, INLINE_DATA_FL};
use super::superblock::INCOMPAT_FILETYPE;
use super::{damaged, u16_at, u32_at, Ext4, FileKind, Inode, ROOT_INODE};
use crate::fs::{FsError, FsResult};

/// The most runs of blocks kept for one directory while its entries are read.
const MAX_DIRECTORY_RUNS: usize = 1 << 16;
/// How deep the directory walk goes: a path of Linux is at most 4096 bytes, so at most 2048
/// levels of one-character names.
const MAX_DIRECTORY_DEPTH: usize = 2048;

impl Ext4<'_> {
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

/// The entries of a directory block, read as a linear directory ("Linear (Classic)
/// Directories": inode, rec_len, name_len, file_type, name). A hash tree's nodes read as
/// entries of inode 0 spanning the rest of the block, and are skipped like deleted entries;
/// so is the checksum tail. An entry that does not fit the block is an error.
fn read_entries(
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
