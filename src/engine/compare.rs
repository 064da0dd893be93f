//! Sector comparison: changed sectors found within a piece of the images, then joined across
//! pieces into the extents a diff records.

use blake3::hazmat::ChainingValue;

use crate::error::Result;

/// The changed sectors of one piece, as runs of adjacent sectors with their new and base bytes.
/// Holds at most one piece of each image, so memory stays bounded by the buffer size.
#[derive(Debug, Default)]
pub struct Changes {
    /// (offset in the image, length) of each run, in order.
    pub runs: Vec<(u64, usize)>,
    /// The new bytes of all runs, back to back.
    pub new_data: Vec<u8>,
    /// The base bytes of all runs, back to back.
    pub base_data: Vec<u8>,
    /// In a comparison with a digest ([`Changes::add_block`]), which has no base bytes: the
    /// digest's value of each changed block, in order.
    pub base_values: Vec<ChainingValue>,
}

impl Changes {
    /// Compares `new` with `base` (both starting at `offset`, a sector boundary) sector by
    /// sector, and records the sectors that differ. Only the image's last sector may be short.
    pub fn compare(&mut self, offset: u64, new: &[u8], base: &[u8], sector_size: usize) {
        // Most of a backup is unchanged; one memcmp settles a whole slice.
        if new == base {
            return;
        }
        let mut sector_offset = offset;
        for (new_sector, base_sector) in new.chunks(sector_size).zip(base.chunks(sector_size)) {
            if new_sector != base_sector {
                match self.runs.last_mut() {
                    Some((start, length)) if *start + *length as u64 == sector_offset => {
                        *length += new_sector.len();
                    }
                    _ => self.runs.push((sector_offset, new_sector.len())),
                }
                self.new_data.extend_from_slice(new_sector);
                self.base_data.extend_from_slice(base_sector);
            }
            sector_offset += new_sector.len() as u64;
        }
    }

    /// Records a block at `offset` whose value differs from `base_value`, the digest's: the
    /// whole block changed, as far as a digest can tell.
    pub fn add_block(&mut self, offset: u64, new: &[u8], base_value: ChainingValue) {
        match self.runs.last_mut() {
            Some((start, length)) if *start + *length as u64 == offset => *length += new.len(),
            _ => self.runs.push((offset, new.len())),
        }
        self.new_data.extend_from_slice(new);
        self.base_values.push(base_value);
    }

    /// Empties it, keeping its buffers.
    pub fn clear(&mut self) {
        self.runs.clear();
        self.new_data.clear();
        self.base_data.clear();
        self.base_values.clear();
    }

    /// Each run of changed blocks ([`Changes::add_block`]) with its new bytes and the
    /// digest's values of its blocks of `block_size`.
    pub fn block_runs(
        &self,
        block_size: u64,
    ) -> impl Iterator<Item = (u64, &[u8], &[ChainingValue])> {
        let (mut start, mut first_value) = (0, 0);
        self.runs.iter().map(move |&(offset, length)| {
            let bytes = start..start + length;
            let values = first_value..first_value + length.div_ceil(block_size as usize);
            start += length;
            first_value = values.end;
            let values = self.base_values.get(values).unwrap_or_default();
            (offset, &self.new_data[bytes], values)
        })
    }

    /// Each run with its new and base bytes.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8], &[u8])> {
        let mut start = 0;
        self.runs.iter().map(move |&(offset, length)| {
            let bytes = start..start + length;
            start += length;
            (
                offset,
                &self.new_data[bytes.clone()],
                &self.base_data[bytes],
            )
        })
    }
}

/// One run of changed sectors, ready to be written as a record.
pub struct ChangedExtent<'a> {
    /// Byte offset in the image; always a multiple of the sector size.
    pub offset: u64,
    /// The new (INFILE) bytes of the run. A sink that keeps them may take the vector, leaving
    /// another in its place (its contents do not matter), so that records are not copied.
    pub new_data: &'a mut Vec<u8>,
    /// BLAKE3 of the base (REFFILE) bytes the run replaces; in a comparison with a digest,
    /// of the digest's values of its blocks ([`ExtentFinder::add_blocks`]).
    pub base_hash: blake3::Hash,
}

/// Joins runs of changed sectors, given in order, into extents. An extent is a maximal run of
/// changed sectors, split where it would pass the record size limit (so one record always fits
/// in memory) and never joined across an unchanged sector (so an extent lists exactly what
/// changed).
pub struct ExtentFinder {
    sector_size: usize,
    record_limit: usize,
    start: u64,
    new_data: Vec<u8>,
    base_hasher: blake3::Hasher,
}

impl ExtentFinder {
    /// `record_limit` must be a positive multiple of `sector_size`.
    pub fn new(sector_size: usize, record_limit: usize) -> ExtentFinder {
        debug_assert!(sector_size > 0 && record_limit.is_multiple_of(sector_size));
        ExtentFinder {
            sector_size,
            record_limit,
            start: 0,
            new_data: Vec::new(),
            base_hasher: blake3::Hasher::new(),
        }
    }

    /// Takes a run of changed sectors at `offset`; runs must come in order.
    pub fn add_run(
        &mut self,
        offset: u64,
        new: &[u8],
        base: &[u8],
        sink: &mut impl FnMut(ChangedExtent<'_>) -> Result<()>,
    ) -> Result<()> {
        if self.start + self.new_data.len() as u64 != offset {
            self.flush(sink)?; // An unchanged sector lies between.
        }
        let mut sector_offset = offset;
        for (new_sector, base_sector) in new
            .chunks(self.sector_size)
            .zip(base.chunks(self.sector_size))
        {
            if self.new_data.len() + new_sector.len() > self.record_limit {
                self.flush(sink)?;
            }
            if self.new_data.is_empty() {
                self.start = sector_offset;
            }
            self.new_data.extend_from_slice(new_sector);
            self.base_hasher.update(base_sector);
            sector_offset += new_sector.len() as u64;
        }
        Ok(())
    }

    /// Takes a run of changed blocks of `block_size` at `offset` with the digest's values of
    /// them ([`Changes::add_block`]); runs must come in order, and the record limit be a
    /// multiple of the block size. The extent's base hash is then the BLAKE3 of its blocks'
    /// values one after the other.
    pub fn add_blocks(
        &mut self,
        offset: u64,
        new: &[u8],
        base_values: &[ChainingValue],
        block_size: u64,
        sink: &mut impl FnMut(ChangedExtent<'_>) -> Result<()>,
    ) -> Result<()> {
        // One value per block: a run whose values went astray would drop changed blocks from
        // the diff without a word.
        if base_values.len() != new.len().div_ceil(block_size as usize) {
            return Err(crate::error::Error::Internal(
                "a run of changed blocks without one value per block",
            ));
        }
        if self.start + self.new_data.len() as u64 != offset {
            self.flush(sink)?; // An unchanged block lies between.
        }
        let mut block_offset = offset;
        for (new_block, base_value) in new.chunks(block_size as usize).zip(base_values) {
            if self.new_data.len() + new_block.len() > self.record_limit {
                self.flush(sink)?;
            }
            if self.new_data.is_empty() {
                self.start = block_offset;
            }
            self.new_data.extend_from_slice(new_block);
            self.base_hasher.update(base_value);
            block_offset += new_block.len() as u64;
        }
        Ok(())
    }

    /// Emits the extent still open at the end of the images.
    pub fn finish(mut self, sink: &mut impl FnMut(ChangedExtent<'_>) -> Result<()>) -> Result<()> {
        self.flush(sink)
    }

    fn flush(&mut self, sink: &mut impl FnMut(ChangedExtent<'_>) -> Result<()>) -> Result<()> {
        if self.new_data.is_empty() {
            return Ok(());
        }
        let base_hash = self.base_hasher.finalize();
        self.base_hasher.reset();
        let result = sink(ChangedExtent {
            offset: self.start,
            new_data: &mut self.new_data,
            base_hash,
        });
        self.new_data.clear();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Extents of `new` against `base`, compared in pieces of `piece` bytes.
    fn extents(
        new: &[u8],
        base: &[u8],
        sector: usize,
        limit: usize,
        piece: usize,
    ) -> Vec<(u64, usize)> {
        let mut found = Vec::new();
        let mut sink = |extent: ChangedExtent<'_>| {
            assert_eq!(
                extent.base_hash,
                blake3::hash(&base[extent.offset as usize..][..extent.new_data.len()])
            );
            found.push((extent.offset, extent.new_data.len()));
            Ok(())
        };
        let mut finder = ExtentFinder::new(sector, limit);
        for (index, (new_piece, base_piece)) in
            new.chunks(piece).zip(base.chunks(piece)).enumerate()
        {
            let mut changes = Changes::default();
            changes.compare((index * piece) as u64, new_piece, base_piece, sector);
            for (offset, new_run, base_run) in changes.iter() {
                finder
                    .add_run(offset, new_run, base_run, &mut sink)
                    .unwrap();
            }
        }
        finder.finish(&mut sink).unwrap();
        found
    }

    #[test]
    fn runs_join_across_pieces_and_split_at_the_limit() {
        let base = vec![0u8; 64];
        let mut new = base.clone();
        new[4..28].fill(1); // sectors 1..7 of size 4 (offsets 4..28)
        new[40] = 1; // sector 10
        new[63] = 1; // last sector
        assert_eq!(
            extents(&new, &base, 4, 16, 8),
            vec![(4, 16), (20, 8), (40, 4), (60, 4)]
        );
        assert_eq!(
            extents(&new, &base, 4, 64, 8),
            vec![(4, 24), (40, 4), (60, 4)]
        );
        assert_eq!(
            extents(&new, &base, 4, 64, 64),
            vec![(4, 24), (40, 4), (60, 4)]
        );
    }

    #[test]
    fn short_last_sector() {
        let base = vec![0u8; 10];
        let mut new = base.clone();
        new[9] = 7;
        assert_eq!(extents(&new, &base, 4, 8, 8), vec![(8, 2)]);
        new[7] = 7;
        assert_eq!(extents(&new, &base, 4, 8, 8), vec![(4, 6)]);
    }

    #[test]
    fn identical_images_have_no_extents() {
        let base = vec![9u8; 100];
        assert!(extents(&base, &base, 4, 8, 8).is_empty());
    }

    #[test]
    fn every_sector_changed() {
        let base = vec![0u8; 96];
        let new = vec![1u8; 96];
        assert_eq!(
            extents(&new, &base, 8, 32, 16),
            vec![(0, 32), (32, 32), (64, 32)]
        );
    }
}
