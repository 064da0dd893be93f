//! Block values: what a digest holds of an image, one BLAKE3 value per block (each block's
//! chaining value at its position, see [`BlockHasher`]). The engine computes them on its
//! reading threads as the slices it hashes anyway, so an image is hashed once whether for its
//! digest ([`block_values`]) or for a backup against a digest ([`compare_with_values`]); the
//! values of pieces read side by side are put back in order here ([`InOrderValues`]), and a
//! digest read front to back is handed out to those threads ([`ValueWindow`]).

use blake3::hazmat::ChainingValue;

use super::{
    copy_image, read_pieces, BlockHasher, ChangedExtent, CompareSettings, CopyTotals, ExtentFinder,
    IoBuffer, Layer, NoLayer, Progress, Reading,
};
use crate::device::OpenFile;
use crate::error::{Error, Result};

/// Takes block values in order: the index of the first block, and the values of the blocks
/// from there. Called on the reading threads, one at a time.
pub type BlockSink<'a> = dyn FnMut(u64, &[ChainingValue]) -> Result<()> + Send + 'a;

/// Reads `image` (seen through `layer`, if any) once and hands every block's BLAKE3 value to
/// `sink` in order: for blocks of `block_size` (a power of two of at least one BLAKE3 chunk),
/// each block's chaining value at its position in the image, or for an image of one block its
/// root hash (the digest's `hash_kind` 0). The values are computed on the reading threads and
/// put in order here, which holds only the values of the few pieces read ahead of the first
/// one still missing. Returns the hashes of the image and of what the layer makes of it, for
/// the caller to check the merged values against.
///
/// An image of more than one piece is hashed once: its slices are the blocks, hashed as
/// subtrees, and the values that make the whole-image hashes are the block values themselves
/// (computing the values apart from the engine's own hashing took twice b3sum's time). An
/// image of one piece, which the engine hashes with one plain hasher, has its blocks hashed
/// apart from it.
pub fn block_values(
    image: &OpenFile,
    layer: Option<&dyn Layer>,
    block_size: u64,
    buffer_size: u64,
    progress: &dyn Progress,
    sink: &mut BlockSink<'_>,
) -> Result<CopyTotals> {
    if !block_size.is_power_of_two() || block_size < blake3::CHUNK_LEN as u64 {
        return Err(Error::Internal("a block size that is not a BLAKE3 subtree"));
    }
    let image_size = image.size;
    // Pieces are powers of two of at least a block, so that no block straddles two pieces.
    let buffer_size = (1u64 << buffer_size.max(1).ilog2()).max(block_size);
    let in_order = InOrderValues::new(image_size, block_size, sink);
    let deliver = |offset, end, values| in_order.deliver(offset, end, values);
    let layer = layer.unwrap_or(&NoLayer);
    let totals = if image_size > buffer_size {
        let piece_size = 1u64 << buffer_size.ilog2();
        let values_of_piece = |offset: u64, values: &[ChainingValue]| {
            let end = (offset + piece_size).min(image_size);
            deliver(offset, end, values.to_vec())
        };
        let reading = Reading {
            images: &[image],
            layer: Some(layer),
            compare: false,
            copy: None,
            in_order: false,
            block_size: Some(block_size),
            block_values: Some(&values_of_piece),
            expected: None,
        };
        let hashes = read_pieces(&reading, 1, buffer_size, progress, |_| Ok(()))?;
        CopyTotals {
            image_hash: hashes[0],
            copied_hash: hashes[1],
        }
    } else {
        let copy = |offset: u64, bytes: &[u8]| -> Result<()> {
            let values = bytes
                .chunks(block_size as usize)
                .enumerate()
                .map(|(index, block)| {
                    let at = offset + index as u64 * block_size;
                    let mut hasher = BlockHasher::new(image_size, block_size, at);
                    hasher.update(block);
                    hasher.value()
                })
                .collect();
            deliver(offset, offset + bytes.len() as u64, values)
        };
        copy_image(image, layer, buffer_size, false, progress, &copy)?
    };
    in_order.finish()?;
    Ok(totals)
}

/// Puts the block values of pieces computed on several threads back in order for a
/// [`BlockSink`]. It holds only the values of the few pieces read ahead of the first one still
/// missing.
struct InOrderValues<'s, 'a> {
    image_size: u64,
    block_size: u64,
    state: std::sync::Mutex<InOrderState<'s, 'a>>,
}

struct InOrderState<'s, 'a> {
    next_offset: u64,
    /// Pieces computed ahead of `next_offset`: their end and their values.
    ahead: std::collections::BTreeMap<u64, (u64, Vec<ChainingValue>)>,
    sink: &'s mut BlockSink<'a>,
}

impl<'s, 'a> InOrderValues<'s, 'a> {
    fn new(image_size: u64, block_size: u64, sink: &'s mut BlockSink<'a>) -> Self {
        InOrderValues {
            image_size,
            block_size,
            state: std::sync::Mutex::new(InOrderState {
                next_offset: 0,
                ahead: Default::default(),
                sink,
            }),
        }
    }

    /// Takes the values of the blocks of the piece `offset..end`: checked to be one per
    /// block, then handed on in order.
    fn deliver(&self, offset: u64, end: u64, values: Vec<ChainingValue>) -> Result<()> {
        let block_size = self.block_size;
        let whole_blocks = end.is_multiple_of(block_size) || end == self.image_size;
        let blocks = (end - offset).div_ceil(block_size);
        if !offset.is_multiple_of(block_size) || !whole_blocks || values.len() as u64 != blocks {
            return Err(Error::Internal(
                "a piece whose values are not one per block",
            ));
        }
        let mut state = self
            .state
            .lock()
            .map_err(|_| Error::Internal("a reader of blocks failed"))?;
        state.ahead.insert(offset, (end, values));
        while let Some((end, values)) = {
            let next = state.next_offset;
            state.ahead.remove(&next)
        } {
            let first_block = state.next_offset / block_size;
            (state.sink)(first_block, &values)?;
            state.next_offset = end;
        }
        Ok(())
    }

    /// Fails unless every block's value was handed on.
    fn finish(self) -> Result<()> {
        let state = self
            .state
            .into_inner()
            .map_err(|_| Error::Internal("a reader of blocks failed"))?;
        if state.next_offset != self.image_size || !state.ahead.is_empty() {
            return Err(Error::Internal("blocks were read out of order"));
        }
        Ok(())
    }
}

/// The block values an image is compared with ([`compare_with_values`]): a digest's. Asked
/// for the values of one piece's blocks at a time, by the reading threads, in no fixed order
/// but each block once.
pub trait ExpectedValues: Sync {
    /// Appends the values of `count` blocks from `first_block` to `out`.
    fn values_of(&self, first_block: u64, count: u64, out: &mut Vec<ChainingValue>) -> Result<()>;
}

/// [`ExpectedValues`] from a source that gives the values one by one, in order (a digest read
/// front to back, also from a stream): it holds the values from the first block not asked for
/// yet up to the last one asked for, which the pieces being read bound, never the image. It
/// refuses a range asked for twice from the same block; that ranges do not overlap otherwise
/// is the caller's (the engine asks for whole pieces, each once).
pub struct ValueWindow<F> {
    state: std::sync::Mutex<WindowState<F>>,
}

struct WindowState<F> {
    next_value: F,
    /// The block of `values[0]`.
    start: u64,
    values: std::collections::VecDeque<ChainingValue>,
    /// Ranges asked for ahead of `start`: first block to end.
    taken: std::collections::BTreeMap<u64, u64>,
}

impl<F: FnMut() -> Result<Option<ChainingValue>> + Send> ValueWindow<F> {
    /// `next_value` gives the next value, or None after the last.
    pub fn new(next_value: F) -> ValueWindow<F> {
        ValueWindow {
            state: std::sync::Mutex::new(WindowState {
                next_value,
                start: 0,
                values: Default::default(),
                taken: Default::default(),
            }),
        }
    }

    /// The source, once every value asked for was taken.
    pub fn into_source(self) -> Result<F> {
        let state = self
            .state
            .into_inner()
            .map_err(|_| Error::Internal("a reader of block values failed"))?;
        Ok(state.next_value)
    }
}

impl<F: FnMut() -> Result<Option<ChainingValue>> + Send> ExpectedValues for ValueWindow<F> {
    fn values_of(&self, first_block: u64, count: u64, out: &mut Vec<ChainingValue>) -> Result<()> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| Error::Internal("a reader of block values failed"))?;
        let end = first_block + count;
        if first_block < state.start || state.taken.contains_key(&first_block) {
            return Err(Error::Internal("block values asked for twice"));
        }
        while state.start + (state.values.len() as u64) < end {
            let value = (state.next_value)()?
                .ok_or(Error::Internal("more blocks than the values given"))?;
            state.values.push_back(value);
        }
        let from = (first_block - state.start) as usize;
        out.extend(state.values.range(from..from + count as usize));
        state.taken.insert(first_block, end);
        // Values before the first block not asked for yet are done with.
        while let Some(end) = {
            let start = state.start;
            state.taken.remove(&start)
        } {
            let done = (end - state.start) as usize;
            state.values.drain(..done);
            state.start = end;
        }
        Ok(())
    }
}

/// Reads `new` once, in blocks of `block_size` (a power of two of at least one BLAKE3 chunk),
/// compares each block's value with the one `expected` gives (a digest of the base image),
/// and hands every extent of changed blocks to `sink` in order, its base hash the BLAKE3 of
/// the expected values of its blocks ([`ExtentFinder::add_blocks`]). `new_values` gets the
/// values of `new`'s own blocks, in order (the digest of `new`). Returns `new`'s BLAKE3, which
/// the block values make: the image is hashed once.
pub fn compare_with_values(
    new: &OpenFile,
    expected: &dyn ExpectedValues,
    block_size: u64,
    settings: CompareSettings,
    progress: &dyn Progress,
    new_values: &mut BlockSink<'_>,
    sink: &mut impl FnMut(ChangedExtent<'_>) -> Result<()>,
) -> Result<blake3::Hash> {
    let subtree = block_size.is_power_of_two() && block_size >= blake3::CHUNK_LEN as u64;
    if !subtree || !settings.record_limit.is_multiple_of(block_size) {
        return Err(Error::Internal(
            "a block size that is not a BLAKE3 subtree dividing the record limit",
        ));
    }
    let image_size = new.size;
    let mut finder = ExtentFinder::new(
        settings.sector_size as usize,
        settings.record_limit as usize,
    );
    if image_size <= block_size {
        // One block (or none), whose value is the root hash: read whole, it is at most 4 MiB.
        let mut bytes = IoBuffer::new(image_size as usize);
        new.read_at(0, &mut bytes)?;
        let hash = blake3::hash(&bytes);
        if image_size > 0 {
            let mut base_value = Vec::with_capacity(1);
            expected.values_of(0, 1, &mut base_value)?;
            new_values(0, &[*hash.as_bytes()])?;
            if base_value.first() != Some(hash.as_bytes()) {
                finder.add_blocks(0, &bytes, &base_value, block_size, sink)?;
            }
        }
        progress.advance(image_size);
        finder.finish(sink)?;
        return Ok(hash);
    }
    // Pieces are powers of two of whole blocks, and more than one, so that pieces are hashed
    // as subtrees and every block's value is one of their parts.
    let mut piece_size = (1u64 << settings.buffer_size.max(1).ilog2()).max(block_size);
    while piece_size >= image_size && piece_size > block_size {
        piece_size /= 2;
    }
    let in_order = InOrderValues::new(image_size, block_size, new_values);
    let values_of_piece = |offset: u64, values: &[ChainingValue]| {
        let end = (offset + piece_size).min(image_size);
        in_order.deliver(offset, end, values.to_vec())
    };
    let reading = Reading {
        images: &[new],
        layer: Some(&NoLayer),
        compare: false,
        copy: None,
        in_order: false,
        block_size: Some(block_size),
        block_values: Some(&values_of_piece),
        expected: Some(expected),
    };
    let hashes = read_pieces(&reading, 1, piece_size, progress, |changes| {
        for (offset, new_run, base_values) in changes.block_runs(block_size) {
            finder.add_blocks(offset, new_run, base_values, block_size, sink)?;
        }
        Ok(())
    })?;
    finder.finish(sink)?;
    in_order.finish()?;
    Ok(hashes[0])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::NoProgress;
    use crate::error::Role;

    /// The value of each block of `image`, as a digest holds it.
    fn values_of(image: &[u8], block_size: u64) -> Vec<ChainingValue> {
        let size = image.len() as u64;
        image
            .chunks(block_size as usize)
            .enumerate()
            .map(|(index, block)| {
                let mut hasher = BlockHasher::new(size, block_size, index as u64 * block_size);
                hasher.update(block);
                hasher.value()
            })
            .collect()
    }

    /// compare_with_values finds exactly the blocks whose values differ, joined into extents
    /// up to the record limit, each with the hash of the expected values of its blocks; gives
    /// the new image's values in order and its BLAKE3; whatever the image size (one block, a
    /// short last block) and the buffer size (pieces of one block, or several).
    #[test]
    fn comparing_with_block_values_finds_the_blocks_that_differ() {
        for image_size in [1u64, 4096, 5000, 70_000, (1 << 20) + 4095, 2_500_001] {
            let base: Vec<u8> = (0..image_size).map(|i| (i * 7 % 253) as u8).collect();
            let mut new = base.clone();
            for at in [0, 4095, 4096, 40_000, 1 << 20, image_size - 1] {
                if let Some(byte) = new.get_mut(at as usize) {
                    *byte ^= 0x5a;
                }
            }
            let file = tempfile::tempfile().unwrap();
            std::os::unix::fs::FileExt::write_all_at(&file, &new, 0).unwrap();
            let new_file = OpenFile::from_file(file, "new", Role::Infile).unwrap();
            for block_size in [4096u64, 16_384] {
                let base_values = values_of(&base, block_size);
                let new_values = values_of(&new, block_size);
                // The model: changed blocks, joined while adjacent and within 32 KiB.
                let limit = 32_768u64;
                let mut model: Vec<(u64, u64, blake3::Hasher)> = Vec::new();
                for (index, (old, now)) in base_values.iter().zip(&new_values).enumerate() {
                    if old == now {
                        continue;
                    }
                    let offset = index as u64 * block_size;
                    let length = block_size.min(image_size - offset);
                    match model.last_mut() {
                        Some((start, size, hasher))
                            if *start + *size == offset && *size + length <= limit =>
                        {
                            *size += length;
                            hasher.update(old);
                        }
                        _ => {
                            let mut hasher = blake3::Hasher::new();
                            hasher.update(old);
                            model.push((offset, length, hasher));
                        }
                    }
                }
                let model: Vec<(u64, u64, blake3::Hash)> = model
                    .into_iter()
                    .map(|(offset, length, hasher)| (offset, length, hasher.finalize()))
                    .collect();
                for buffer_size in [4096u64, 100_000, 1 << 20] {
                    let case =
                        format!("image {image_size}, block {block_size}, buffer {buffer_size}");
                    let mut given = base_values.clone().into_iter();
                    let expected = ValueWindow::new(|| Ok(given.next()));
                    let settings = CompareSettings {
                        sector_size: 512,
                        buffer_size,
                        record_limit: limit,
                    };
                    let mut found = Vec::new();
                    let mut values = Vec::new();
                    let hash = compare_with_values(
                        &new_file,
                        &expected,
                        block_size,
                        settings,
                        &NoProgress,
                        &mut |first, piece| {
                            assert_eq!(first as usize, values.len(), "{case}");
                            values.extend_from_slice(piece);
                            Ok(())
                        },
                        &mut |extent| {
                            let at = extent.offset as usize;
                            assert!(
                                extent.new_data[..] == new[at..at + extent.new_data.len()],
                                "{case}"
                            );
                            found.push((
                                extent.offset,
                                extent.new_data.len() as u64,
                                extent.base_hash,
                            ));
                            Ok(())
                        },
                    )
                    .unwrap();
                    assert_eq!(found, model, "{case}");
                    assert!(values == new_values, "{case}");
                    assert_eq!(hash, blake3::hash(&new), "{case}");
                }
            }
        }
    }

    /// The window hands out ranges asked for in any order, each once, and refuses a range
    /// asked for twice or past the source's end.
    #[test]
    fn the_value_window_hands_out_each_range_once() {
        let values: Vec<ChainingValue> = (0..10u8).map(|i| [i; 32]).collect();
        let mut given = values.clone().into_iter();
        let window = ValueWindow::new(|| Ok(given.next()));
        let mut out = Vec::new();
        window.values_of(4, 3, &mut out).unwrap();
        window.values_of(0, 4, &mut out).unwrap();
        assert!(window.values_of(0, 1, &mut Vec::new()).is_err());
        window.values_of(7, 3, &mut out).unwrap();
        assert!(window.values_of(10, 1, &mut Vec::new()).is_err());
        let mut expected = values[4..7].to_vec();
        expected.extend_from_slice(&values[..4]);
        expected.extend_from_slice(&values[7..]);
        assert_eq!(out, expected);
    }
}
