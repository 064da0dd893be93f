//! Sector comparison: turns two streams of equal-sized chunks into extents of changed sectors.

use anyhow::Result;

/// One run of changed sectors, ready to be written as a record.
pub struct ChangedExtent<'a> {
    /// Byte offset in the image; always a multiple of the sector size.
    pub offset: u64,
    /// The new (INFILE) bytes of the run.
    pub new_data: &'a [u8],
    /// BLAKE3 of the base (REFFILE) bytes the run replaces.
    pub base_hash: blake3::Hash,
}

/// Collects changed sectors into extents. An extent is a maximal run of changed sectors,
/// split where it would pass the record size limit (so one record always fits in memory) and
/// never joined across an unchanged sector (so an extent lists exactly what changed).
///
/// Chunks must be fed in order and start on sector boundaries; only the last may end in a
/// short sector.
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

    pub fn feed(
        &mut self,
        offset: u64,
        new: &[u8],
        base: &[u8],
        sink: &mut impl FnMut(ChangedExtent<'_>) -> Result<()>,
    ) -> Result<()> {
        // Most chunks of a backup are unchanged; one memcmp settles them.
        if new == base {
            return self.flush(sink);
        }
        let sectors = new
            .chunks(self.sector_size)
            .zip(base.chunks(self.sector_size));
        let mut sector_offset = offset;
        for (new_sector, base_sector) in sectors {
            if new_sector == base_sector {
                self.flush(sink)?;
            } else {
                if self.new_data.len() + new_sector.len() > self.record_limit {
                    self.flush(sink)?;
                }
                if self.new_data.is_empty() {
                    self.start = sector_offset;
                }
                self.new_data.extend_from_slice(new_sector);
                self.base_hasher.update(base_sector);
            }
            sector_offset += new_sector.len() as u64;
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
            new_data: &self.new_data,
            base_hash,
        });
        self.new_data.clear();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extents(
        new: &[u8],
        base: &[u8],
        sector: usize,
        limit: usize,
        chunk: usize,
    ) -> Vec<(u64, usize)> {
        let mut found = Vec::new();
        let mut sink = |extent: ChangedExtent<'_>| {
            found.push((extent.offset, extent.new_data.len()));
            Ok(())
        };
        let mut finder = ExtentFinder::new(sector, limit);
        for (index, (new_chunk, base_chunk)) in
            new.chunks(chunk).zip(base.chunks(chunk)).enumerate()
        {
            finder
                .feed((index * chunk) as u64, new_chunk, base_chunk, &mut sink)
                .unwrap();
        }
        finder.finish(&mut sink).unwrap();
        found
    }

    #[test]
    fn runs_join_across_chunks_and_split_at_the_limit() {
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
}
