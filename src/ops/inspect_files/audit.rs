//! The audit proper ([`super`], stage 2): who owns each byte that differs between FULL and
//! the chain's image, in each image's filesystem, and what that makes of each inode: a file
//! added, deleted or modified, metadata by kind, free space.

use std::collections::{BTreeMap, HashMap};

use super::{ExtAudit, FileChange, Status};
use crate::fs::ext4::{self, Ext4, Inode, MetaKind, Owner};
use crate::fs::{self, FsError, Span};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    New,
    Base,
}

pub(super) type Failed = (FsError, Side);

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

/// What the bytes `changed` (sorted, disjoint: those that differ between the images) are in
/// the two filesystems.
pub(super) fn audit(
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
                    base_path: None,
                }
            };
        match (&new.inode, &base.inode) {
            (Some(new_inode), Some(base_inode)) if same_file(new_inode, base_inode) => {
                let mut modified = change(
                    &new,
                    new_inode,
                    Status::Modified,
                    [&new.data, &base.data],
                    [&new.map, &base.map],
                );
                if base.path != new.path {
                    modified.base_path = base.path.clone();
                }
                files.push(modified);
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

/// Whether two records of one inode number, in the base and the new image, are the same file:
/// then a change of path is a move (a rename keeps the inode; the kernel changes its ctime,
/// so a changed record says nothing), else the base's file was deleted and the number reused
/// by another. The kernel gives every new inode a new random i_generation; mkfs -d and
/// debugfs write 0, so under generation 0 the creation time tells a reused inode apart, when
/// both records hold one. Two files created in the same second under generation 0 (as mkfs
/// and debugfs can make them) cannot be told apart: the later is taken for the earlier moved.
fn same_file(new: &Inode, base: &Inode) -> bool {
    new.kind() == base.kind()
        && new.generation() == base.generation()
        && match (new.creation_time(), base.creation_time()) {
            (Some(new), Some(base)) => new == base,
            _ => true,
        }
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

    #[test]
    fn creation_time_only_where_the_record_holds_one() {
        let record = |size: usize, extra_isize: u16, crtime: u32, crtime_extra: u32| {
            let mut raw = vec![0u8; size];
            if size >= 0x98 {
                raw[0x80..0x82].copy_from_slice(&extra_isize.to_le_bytes());
                raw[0x90..0x94].copy_from_slice(&crtime.to_le_bytes());
                raw[0x94..0x98].copy_from_slice(&crtime_extra.to_le_bytes());
            }
            Inode { number: 12, raw }
        };
        assert_eq!(record(256, 32, 7, 9).creation_time(), Some((7, 9)));
        // Room for the seconds, not the nanoseconds.
        assert_eq!(record(256, 0x14, 7, 9).creation_time(), Some((7, 0)));
        assert_eq!(record(256, 0x10, 7, 9).creation_time(), None);
        assert_eq!(record(256, 32, 0, 0).creation_time(), None);
        assert_eq!(record(128, 0, 0, 0).creation_time(), None);
        // i_extra_isize claiming more than the record holds reads nothing past it.
        let mut short = record(256, 32, 7, 9);
        short.raw.truncate(0x92);
        assert_eq!(short.creation_time(), None);
        // A reused inode (another creation time) is another file; without one, the same.
        assert!(!same_file(&record(256, 32, 7, 0), &record(256, 32, 8, 0)));
        assert!(same_file(&record(256, 32, 7, 0), &record(128, 0, 0, 0)));
    }
}
