//! backup's writing stage: the extents the engine finds, encoded on its pool (zero,
//! compressed or raw, as [`v3::Encoder`] decides) and written in order into the native diff,
//! whichever base they were compared with.

use std::io::{self, Write};

use crate::engine::{self, pool, ChangedExtent};
use crate::error::{Error, Result};
use crate::format::v3::{self, Header};
use crate::format::{BaseHash, BaseHashing};

/// The changes a backup compares out of its images, handed to the sink extent by extent in
/// order; it returns what the comparison found besides.
pub type Compare<'c, T> =
    dyn FnMut(&mut dyn FnMut(ChangedExtent<'_>) -> Result<()>) -> Result<T> + 'c;

/// Encodes the extents `compare` finds on the engine's pool (zero, compressed or raw, as
/// [`v3::Encoder`] decides), their base hashes taken as `hashing` says, and writes them into
/// `writer` in order. The trailer is the caller's to write.
pub fn write_records<W: Write, T>(
    writer: v3::Writer<W>,
    header: &Header,
    level: i32,
    hashing: BaseHashing,
    write_failed: &impl Fn(io::Error) -> Error,
    compare: &mut Compare<'_, T>,
) -> Result<(T, NativeRecords<W>)> {
    let mut records = NativeRecords::new(writer);
    let found = pool::scoped(
        engine::worker_count() as usize,
        JOBS_IN_FLIGHT,
        || v3::Encoder::new(header.data_encoding, level),
        encode,
        |pool| {
            let mut job = EncodingJob::default();
            let compared = compare(&mut |extent| {
                let full = job.data.len() + extent.new_data.len() > JOB_SIZE;
                if full {
                    let given = std::mem::replace(&mut job, records.spare_job());
                    pool.give(given, &mut |encoded| records.write(encoded, write_failed))?;
                }
                job.add(extent, hashing);
                Ok(())
            });
            let mut take = |encoded| records.write(encoded, write_failed);
            let compared = compared.and_then(|found| {
                if !job.extents.is_empty() {
                    pool.give(job, &mut take)?;
                }
                Ok(found)
            });
            match compared {
                Ok(found) => pool.finish(&mut take).map(|()| found),
                Err(error) => Err(pool.finish_after(error, &mut take)),
            }
        },
    )?;
    Ok((found, records))
}

/// The most jobs being encoded at once: enough that on two cores neither encoding thread
/// waits for the writer while the other has work.
const JOBS_IN_FLIGHT: u64 = 2;

/// A job gathers extents up to one longest record's worth of data, so that small extents do
/// not cross between threads one by one, and memory is counted in jobs: each job's buffers
/// hold at most this much data and what it compresses to (reused from job to job).
const JOB_SIZE: usize = 4 << 20;

/// Jobs written kept for their buffers: as many as can be in flight, and the one just taken.
const SPARE_JOBS: usize = JOBS_IN_FLIGHT as usize + 1;

/// What the diff holds so far.
#[derive(Debug, Default)]
pub struct Counts {
    pub extents: u64,
    pub changed_bytes: u64,
    pub stored_bytes: u64,
}

impl Counts {
    pub fn add(&mut self, changed_bytes: u64, stored_bytes: u64) {
        self.extents += 1;
        self.changed_bytes += changed_bytes;
        self.stored_bytes += stored_bytes;
    }
}

/// Extents to encode, in order, with their data back to back (buffers reused from job to job).
#[derive(Default)]
struct EncodingJob {
    /// Offset, length and base hash of each extent.
    extents: Vec<(u64, usize, BaseHash)>,
    data: Vec<u8>,
    /// What the compressed extents store, back to back.
    compressed: Vec<u8>,
}

impl EncodingJob {
    fn add(&mut self, extent: ChangedExtent<'_>, hashing: BaseHashing) {
        let length = extent.new_data.len();
        let base = BaseHash {
            value: extent.base_hash,
            hashing,
        };
        self.extents.push((extent.offset, length, base));
        if self.data.is_empty() {
            // Taken, not copied: the finder gets this job's buffer to gather the next extent.
            std::mem::swap(&mut self.data, extent.new_data);
        } else {
            self.data.extend_from_slice(extent.new_data);
        }
    }
}

/// An encoding thread's work: how each extent is stored, and the job back for its buffers.
fn encode(
    encoder: &mut io::Result<v3::Encoder>,
    mut job: EncodingJob,
) -> (io::Result<Vec<v3::EncodedRecord>>, EncodingJob) {
    let encoder = match encoder {
        Ok(encoder) => encoder,
        Err(error) => return (Err(io::Error::new(error.kind(), error.to_string())), job),
    };
    // Room for every extent's compressed bytes at once: growing the buffer extent by extent
    // would move it, and leave the allocator holding the old ones.
    let bound: usize = job
        .extents
        .iter()
        .map(|&(_, length, _)| zstd::zstd_safe::compress_bound(length))
        .sum();
    job.compressed.reserve(bound);
    let mut start = 0;
    let mut encoded = Vec::with_capacity(job.extents.len());
    for &(offset, length, base_hash) in &job.extents {
        let data = &job.data[start..start + length];
        match encoder.encode(offset, data, base_hash, &mut job.compressed) {
            Ok(record) => encoded.push(record),
            Err(error) => return (Err(error), job),
        }
        start += length;
    }
    (Ok(encoded), job)
}

/// The native writer, fed encoded records in order.
pub struct NativeRecords<W: Write> {
    pub writer: v3::Writer<W>,
    pub counts: Counts,
    /// Jobs written already, for their buffers.
    spare: Vec<EncodingJob>,
}

impl<W: Write> NativeRecords<W> {
    fn new(writer: v3::Writer<W>) -> NativeRecords<W> {
        NativeRecords {
            writer,
            counts: Counts::default(),
            spare: Vec::new(),
        }
    }

    /// An empty job, with the buffers of one written before if there is one.
    fn spare_job(&mut self) -> EncodingJob {
        let mut job = self.spare.pop().unwrap_or_default();
        job.extents.clear();
        job.data.clear();
        job.compressed.clear();
        job
    }

    fn write(
        &mut self,
        (encoded, job): (io::Result<Vec<v3::EncodedRecord>>, EncodingJob),
        write_failed: &impl Fn(io::Error) -> Error,
    ) -> Result<()> {
        let (mut data, mut compressed) = (&job.data[..], &job.compressed[..]);
        let mismatch = || Error::Internal("an encoded job does not hold the data of its records");
        for record in encoded.map_err(write_failed)? {
            let (record_data, rest) = data
                .split_at_checked(record.length() as usize)
                .ok_or_else(mismatch)?;
            let (record_compressed, rest_compressed) = compressed
                .split_at_checked(record.compressed_bytes() as usize)
                .ok_or_else(mismatch)?;
            let stored = self
                .writer
                .write_encoded(&record, record_data, record_compressed)
                .map_err(write_failed)?;
            self.counts.add(record.length(), stored);
            (data, compressed) = (rest, rest_compressed);
        }
        // Enough to go round; more would only hold memory.
        if self.spare.len() < SPARE_JOBS {
            self.spare.push(job);
        }
        Ok(())
    }
}
