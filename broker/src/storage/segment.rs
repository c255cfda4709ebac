//! One log segment: `<base offset>.log` holding record batches back to back, with a sparse
//! offset index (`.index`: relative offset u32 + file position u32, big-endian) and a sparse
//! time index (`.timeindex`: timestamp i64 + relative offset u32), laid out as Kafka does.
//!
//! The indexes are kept in memory too. Only the `.log` file is needed for correctness: the
//! active segment's indexes are rebuilt from it at start, and closed segments' indexes are
//! fsync'd when the segment is rolled (and rebuilt if found damaged).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::warn;

use super::batch::{validate_batch, BatchHeader, HEADER_LEN};

const LOG_SUFFIX: &str = "log";
const INDEX_SUFFIX: &str = "index";
const TIME_INDEX_SUFFIX: &str = "timeindex";
const INDEX_ENTRY: usize = 8;
const TIME_INDEX_ENTRY: usize = 12;

/// `00000000000000000042.log` for base offset 42.
pub(crate) fn file_name(base_offset: i64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// Base offsets of the segments found in a partition directory, sorted.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".log") {
            if stem.len() == 20 {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// What one appended batch contributes to the indexes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppendedBatch {
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) max_timestamp: i64,
    /// Length of the batch in bytes.
    pub(crate) len: usize,
}

/// A segment file and its indexes.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    dir: PathBuf,
    log: Arc<File>,
    index_file: File,
    time_index_file: File,
    /// Valid bytes in the log file.
    size: u64,
    index: Vec<(u32, u32)>,
    time_index: Vec<(i64, u32)>,
    bytes_since_index: u64,
    /// One past the last offset stored here.
    pub(crate) next_offset: i64,
    /// Largest record timestamp in the segment (-1 when empty).
    pub(crate) max_timestamp: i64,
    /// Largest timestamp of the first batch; the age used by `segment.ms`.
    pub(crate) first_batch_timestamp: Option<i64>,
}

/// What reading a segment found about its tail.
#[derive(Debug, Default)]
pub(crate) struct Recovery {
    /// Bytes cut off the end because they did not form valid batches.
    pub(crate) truncated_bytes: u64,
    /// Why the first invalid batch was invalid.
    pub(crate) reason: Option<String>,
}

impl Segment {
    fn path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
        dir.join(file_name(base_offset, suffix))
    }

    /// Creates an empty segment starting at `base_offset`, replacing any leftover files.
    pub(crate) fn create(dir: &Path, base_offset: i64) -> io::Result<Self> {
        let open = |suffix| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(Self::path(dir, base_offset, suffix))
        };
        Ok(Self {
            base_offset,
            dir: dir.to_owned(),
            log: Arc::new(open(LOG_SUFFIX)?),
            index_file: open(INDEX_SUFFIX)?,
            time_index_file: open(TIME_INDEX_SUFFIX)?,
            size: 0,
            index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            first_batch_timestamp: None,
        })
    }

    /// Opens an existing segment. With `recover`, every batch is read and its CRC checked,
    /// the log is truncated at the first invalid batch (a torn tail), and the indexes are
    /// rebuilt; otherwise the index files are trusted when they look sane.
    /// `next_base` is the following segment's base offset, if any.
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        recover: bool,
        index_interval: u64,
        next_base: Option<i64>,
    ) -> io::Result<(Self, Recovery)> {
        let open = |suffix| {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(Self::path(dir, base_offset, suffix))
        };
        let log = open(LOG_SUFFIX)?;
        let size = log.metadata()?.len();
        let mut segment = Self {
            base_offset,
            dir: dir.to_owned(),
            log: Arc::new(log),
            index_file: open(INDEX_SUFFIX)?,
            time_index_file: open(TIME_INDEX_SUFFIX)?,
            size,
            index: Vec::new(),
            time_index: Vec::new(),
            bytes_since_index: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            first_batch_timestamp: None,
        };
        if !recover {
            if let (Some(next), true) = (next_base, segment.load_indexes()?) {
                segment.next_offset = next;
                if let Some(first) = segment.read_header(0)? {
                    segment.first_batch_timestamp = Some(first.max_timestamp);
                }
                return Ok((segment, Recovery::default()));
            }
        }
        let recovery = segment.rebuild(recover, index_interval)?;
        Ok((segment, recovery))
    }

    /// Loads the index files; false when they are missing or damaged.
    fn load_indexes(&mut self) -> io::Result<bool> {
        let index = fs::read(Self::path(&self.dir, self.base_offset, INDEX_SUFFIX))?;
        let time_index = fs::read(Self::path(&self.dir, self.base_offset, TIME_INDEX_SUFFIX))?;
        if index.len() % INDEX_ENTRY != 0 || time_index.len() % TIME_INDEX_ENTRY != 0 {
            return Ok(false);
        }
        let mut last = (0u32, 0u32);
        for chunk in index.chunks_exact(INDEX_ENTRY) {
            let rel = u32::from_be_bytes(chunk[0..4].try_into().expect("4"));
            let pos = u32::from_be_bytes(chunk[4..8].try_into().expect("4"));
            if u64::from(pos) >= self.size || rel < last.0 || pos < last.1 {
                return Ok(false);
            }
            last = (rel, pos);
            self.index.push((rel, pos));
        }
        for chunk in time_index.chunks_exact(TIME_INDEX_ENTRY) {
            let ts = i64::from_be_bytes(chunk[0..8].try_into().expect("8"));
            let rel = u32::from_be_bytes(chunk[8..12].try_into().expect("4"));
            self.time_index.push((ts, rel));
        }
        self.max_timestamp = self.time_index.last().map_or(-1, |e| e.0);
        Ok(true)
    }

    /// Reads every batch from the start, rebuilding the indexes; with `verify`, checks CRCs
    /// and truncates the file at the first bad batch.
    fn rebuild(&mut self, verify: bool, index_interval: u64) -> io::Result<Recovery> {
        self.index.clear();
        self.time_index.clear();
        self.bytes_since_index = 0;
        self.max_timestamp = -1;
        self.first_batch_timestamp = None;
        self.next_offset = self.base_offset;
        let file_len = self.size;
        let mut pos = 0u64;
        let mut recovery = Recovery::default();
        let mut buf = Vec::new();
        while pos < file_len {
            let problem = match read_header_at(&self.log, pos, file_len) {
                Ok(Some(header)) => {
                    let end = pos + header.total_len() as u64;
                    if end > file_len {
                        Some(format!(
                            "batch at position {pos} needs {} bytes, file ends after {}",
                            header.total_len(),
                            file_len - pos
                        ))
                    } else if header.base_offset < self.next_offset {
                        Some(format!(
                            "batch at position {pos} has offset {} below the expected {}",
                            header.base_offset, self.next_offset
                        ))
                    } else if verify && {
                        buf.resize(header.total_len(), 0);
                        self.log.read_exact_at(&mut buf, pos)?;
                        validate_batch(&buf).is_err()
                    } {
                        let err = validate_batch(&buf).expect_err("checked above");
                        Some(format!("batch at position {pos}: {err}"))
                    } else {
                        self.size = pos;
                        self.index_batch(
                            &AppendedBatch {
                                base_offset: header.base_offset,
                                last_offset: header.last_offset(),
                                max_timestamp: header.max_timestamp,
                                len: header.total_len(),
                            },
                            index_interval,
                        );
                        self.next_offset = header.last_offset() + 1;
                        pos = end;
                        None
                    }
                }
                Ok(None) => Some(format!("incomplete batch header at position {pos}")),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    Some(format!("batch at position {pos}: {e}"))
                }
                Err(e) => return Err(e),
            };
            if let Some(reason) = problem {
                if !verify {
                    // Not recovering: stop indexing here but leave the bytes alone.
                    warn!(segment = %self.log_path().display(), %reason, "unreadable batch while indexing");
                    break;
                }
                recovery.truncated_bytes = file_len - pos;
                recovery.reason = Some(reason);
                self.log.set_len(pos)?;
                self.log.sync_all()?;
                break;
            }
        }
        self.size = pos;
        self.write_index_files()?;
        Ok(recovery)
    }

    fn write_index_files(&mut self) -> io::Result<()> {
        let mut index = Vec::with_capacity(self.index.len() * INDEX_ENTRY);
        for (rel, pos) in &self.index {
            index.extend_from_slice(&rel.to_be_bytes());
            index.extend_from_slice(&pos.to_be_bytes());
        }
        let mut time_index = Vec::with_capacity(self.time_index.len() * TIME_INDEX_ENTRY);
        for (ts, rel) in &self.time_index {
            time_index.extend_from_slice(&ts.to_be_bytes());
            time_index.extend_from_slice(&rel.to_be_bytes());
        }
        self.index_file.set_len(0)?;
        self.index_file.write_all_at(&index, 0)?;
        self.time_index_file.set_len(0)?;
        self.time_index_file.write_all_at(&time_index, 0)?;
        Ok(())
    }

    /// Reads the batch header at `pos`; `None` when fewer than a header's bytes remain.
    pub(crate) fn read_header(&self, pos: u64) -> io::Result<Option<BatchHeader>> {
        read_header_at(&self.log, pos, self.size)
    }

    /// Records a batch in the in-memory and on-disk indexes; `self.size` must be the batch's
    /// position.
    fn index_batch(&mut self, batch: &AppendedBatch, index_interval: u64) {
        let rel = (batch.base_offset - self.base_offset) as u32;
        if self.bytes_since_index >= index_interval && self.size > 0 {
            self.index.push((rel, self.size as u32));
            let max_so_far = self.max_timestamp.max(batch.max_timestamp);
            if max_so_far > self.time_index.last().map_or(-1, |e| e.0) {
                self.time_index.push((max_so_far, rel));
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += batch.len as u64;
        self.max_timestamp = self.max_timestamp.max(batch.max_timestamp);
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(batch.max_timestamp);
        }
    }

    /// Appends already-validated batches (offsets assigned) stored contiguously in `data`.
    pub(crate) fn append(
        &mut self,
        data: &[u8],
        batches: &[AppendedBatch],
        index_interval: u64,
    ) -> io::Result<()> {
        self.log.write_all_at(data, self.size)?;
        let (index_before, time_before) = (self.index.len(), self.time_index.len());
        for batch in batches {
            self.index_batch(batch, index_interval);
            self.size += batch.len as u64;
            self.next_offset = batch.last_offset + 1;
        }
        // The index files are a cache (rebuilt on recovery), so a failed write only warns.
        if self.index.len() > index_before {
            let mut bytes = Vec::new();
            for (rel, pos) in &self.index[index_before..] {
                bytes.extend_from_slice(&rel.to_be_bytes());
                bytes.extend_from_slice(&pos.to_be_bytes());
            }
            if let Err(e) = (&self.index_file).write_all(&bytes) {
                warn!(error = %e, "cannot append to offset index");
            }
        }
        if self.time_index.len() > time_before {
            let mut bytes = Vec::new();
            for (ts, rel) in &self.time_index[time_before..] {
                bytes.extend_from_slice(&ts.to_be_bytes());
                bytes.extend_from_slice(&rel.to_be_bytes());
            }
            if let Err(e) = (&self.time_index_file).write_all(&bytes) {
                warn!(error = %e, "cannot append to time index");
            }
        }
        Ok(())
    }

    /// Valid bytes in the log file.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// A handle readers can use without holding the partition lock.
    pub(crate) fn log_file(&self) -> Arc<File> {
        Arc::clone(&self.log)
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        Self::path(&self.dir, self.base_offset, LOG_SUFFIX)
    }

    /// Position of the batch holding `offset`, or a batch before it (sparse index lookup).
    pub(crate) fn position_for_offset(&self, offset: i64) -> u64 {
        let rel = (offset - self.base_offset).clamp(0, i64::from(u32::MAX)) as u32;
        let i = self.index.partition_point(|&(r, _)| r <= rel);
        if i == 0 {
            0
        } else {
            u64::from(self.index[i - 1].1)
        }
    }

    /// Position from which to scan for the first record with timestamp >= `timestamp`.
    pub(crate) fn position_for_timestamp(&self, timestamp: i64) -> u64 {
        let i = self.time_index.partition_point(|&(ts, _)| ts < timestamp);
        if i == 0 {
            0
        } else {
            let rel = self.time_index[i - 1].1;
            self.position_for_offset(self.base_offset + i64::from(rel))
        }
    }

    /// Flushes the log's data to disk.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.log.sync_data()
    }

    /// Seals the segment before a roll: final time index entry, everything on disk.
    pub(crate) fn seal(&mut self) -> io::Result<()> {
        if self.max_timestamp > self.time_index.last().map_or(-1, |e| e.0) && self.size > 0 {
            let rel = (self.next_offset - 1 - self.base_offset).max(0) as u32;
            self.time_index.push((self.max_timestamp, rel));
            let mut bytes = self.max_timestamp.to_be_bytes().to_vec();
            bytes.extend_from_slice(&rel.to_be_bytes());
            (&self.time_index_file).write_all(&bytes)?;
        }
        self.log.sync_data()?;
        self.index_file.sync_data()?;
        self.time_index_file.sync_data()
    }

    /// Removes the segment's files.
    pub(crate) fn delete_files(&self) -> io::Result<()> {
        for suffix in [LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
            match fs::remove_file(Self::path(&self.dir, self.base_offset, suffix)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Reads a batch header at `pos` of a log file whose valid length is `len`.
/// `None` when fewer than a header's bytes remain; `InvalidData` when the header is bad.
pub(crate) fn read_header_at(file: &File, pos: u64, len: u64) -> io::Result<Option<BatchHeader>> {
    if pos + HEADER_LEN as u64 > len {
        return Ok(None);
    }
    let mut buf = [0u8; HEADER_LEN];
    file.read_exact_at(&mut buf, pos)?;
    BatchHeader::parse(&buf)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Scans from `pos` to the first batch whose last offset is >= `offset`; returns its position
/// (or `len` if none).
pub(crate) fn seek_offset(file: &File, mut pos: u64, len: u64, offset: i64) -> io::Result<u64> {
    while let Some(header) = read_header_at(file, pos, len)? {
        if header.last_offset() >= offset {
            return Ok(pos);
        }
        pos += header.total_len() as u64;
    }
    Ok(pos)
}

/// Bytes of whole batches from `pos`, at most `max_bytes` unless the first batch alone is
/// larger (then that one batch, so that a consumer can always make progress).
pub(crate) fn read_batches(file: &File, pos: u64, len: u64, max_bytes: u64) -> io::Result<Vec<u8>> {
    let mut end = pos;
    while let Some(header) = read_header_at(file, end, len)? {
        let next = end + header.total_len() as u64;
        if next > len || (next - pos > max_bytes && end > pos) {
            break;
        }
        end = next;
        if end - pos >= max_bytes {
            break;
        }
    }
    let mut buf = vec![0u8; (end - pos) as usize];
    file.read_exact_at(&mut buf, pos)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::tests::{encode, record};
    use crate::storage::batch::{assign_offset, validate_batch};
    use kafka_protocol::records::Compression;
    use proptest::prelude::*;

    fn append_batch(segment: &mut Segment, values: usize, interval: u64) -> (i64, Vec<u8>) {
        let records: Vec<_> = (0..values)
            .map(|i| record(i as i64, None, Some(vec![7; 50])))
            .collect();
        let mut bytes = encode(&records, Compression::None).to_vec();
        let base = segment.next_offset;
        assign_offset(&mut bytes, base);
        let header = validate_batch(&bytes).unwrap();
        segment
            .append(
                &bytes,
                &[AppendedBatch {
                    base_offset: base,
                    last_offset: header.last_offset(),
                    max_timestamp: header.max_timestamp,
                    len: bytes.len(),
                }],
                interval,
            )
            .unwrap();
        (base, bytes)
    }

    #[test]
    fn torn_tail_is_truncated_on_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = Segment::create(dir.path(), 0).unwrap();
        for _ in 0..5 {
            append_batch(&mut segment, 3, 0);
        }
        let good = segment.size();
        let (_, last) = append_batch(&mut segment, 3, 0);
        // Cut the last batch in half, as a crash during the write would.
        segment.log.set_len(good + last.len() as u64 / 2).unwrap();
        drop(segment);
        let (segment, recovery) = Segment::open(dir.path(), 0, true, 0, None).unwrap();
        assert_eq!(segment.size(), good);
        assert_eq!(segment.next_offset, 15);
        assert_eq!(recovery.truncated_bytes, last.len() as u64 / 2);
        assert_eq!(std::fs::metadata(segment.log_path()).unwrap().len(), good);
    }

    #[test]
    fn zeroed_tail_is_truncated_on_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let mut segment = Segment::create(dir.path(), 100).unwrap();
        append_batch(&mut segment, 2, 0);
        let good = segment.size();
        segment.log.set_len(good + 4096).unwrap();
        drop(segment);
        let (segment, recovery) = Segment::open(dir.path(), 100, true, 0, None).unwrap();
        assert_eq!((segment.size(), segment.next_offset), (good, 102));
        assert!(recovery.reason.is_some());
    }

    proptest! {
        /// Whatever the batch sizes and index interval, the sparse index finds a position at
        /// or before the batch holding any offset, and a reopened segment (trusting its index
        /// files) answers the same.
        #[test]
        fn index_lookup_finds_every_offset(
            sizes in prop::collection::vec(1usize..6, 1..40), interval in 0u64..2000
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut segment = Segment::create(dir.path(), 10).unwrap();
            let mut positions = Vec::new();
            for n in &sizes {
                let pos = segment.size();
                let (base, _) = append_batch(&mut segment, *n, interval);
                positions.push((base, base + *n as i64 - 1, pos));
            }
            segment.seal().unwrap();
            let next = segment.next_offset;
            let len = segment.size();
            drop(segment);
            let (reopened, _) = Segment::open(dir.path(), 10, false, interval, Some(next)).unwrap();
            for (first, last, pos) in &positions {
                for offset in *first..=*last {
                    let hint = reopened.position_for_offset(offset);
                    prop_assert!(hint <= *pos);
                    let found = seek_offset(&reopened.log, hint, len, offset).unwrap();
                    prop_assert_eq!(found, *pos);
                }
            }
        }
    }
}
