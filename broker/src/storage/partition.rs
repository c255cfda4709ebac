//! One partition's log: its segments, log start offset, producer state and the append and
//! read paths. A [`Partition`] is shared (`Arc`); its [`PartitionLog`] sits behind a mutex
//! held only for appends and for short look-ups (reads happen outside it with `pread`).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::ResponseError;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::batch::{assign_offset, split_batches, BatchHeader};
use super::config::LogConfig;
use super::producer::{ProducerSnapshot, ProducerStateTable, SequenceCheck};
use super::segment::{self, read_batches, seek_offset, AppendedBatch, Segment};
use super::ApiError;
use crate::error::{IoContext, Result};

const PARTITION_STATE_FILE: &str = "sluice-partition.json";
const PRODUCER_SNAPSHOT_FILE: &str = "producer-state.json";
const PARTITION_METADATA_FILE: &str = "partition.metadata";

/// Persistent per-partition facts other than the segments.
#[derive(Debug, Default, Serialize, Deserialize)]
struct PartitionState {
    log_start_offset: i64,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// fsyncs a directory so that created, renamed or removed entries are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Result of appending one partition's record set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AppendInfo {
    /// Offset of the first record of the set (of the original, for a duplicate).
    pub(crate) base_offset: i64,
    pub(crate) log_start_offset: i64,
    /// Whether anything was written (false for a duplicate).
    pub(crate) appended: bool,
}

/// Bytes read for a fetch.
#[derive(Debug)]
pub(crate) struct ReadResult {
    pub(crate) records: Vec<u8>,
    pub(crate) high_watermark: i64,
    pub(crate) log_start_offset: i64,
}

/// The mutable state of a partition's log.
#[derive(Debug)]
pub(crate) struct PartitionLog {
    dir: PathBuf,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    next_offset: i64,
    producers: ProducerStateTable,
    config: LogConfig,
}

/// A partition: its identity and its log.
#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) topic: String,
    pub(crate) index: i32,
    log: Mutex<PartitionLog>,
}

impl Partition {
    /// Directory name of a partition, as Kafka names it.
    pub(crate) fn dir_name(topic: &str, index: i32) -> String {
        format!("{topic}-{index}")
    }

    /// Creates a fresh, empty partition directory (removing leftovers of an older topic).
    pub(crate) fn create(
        data_dir: &Path,
        topic: &str,
        topic_id: uuid::Uuid,
        index: i32,
        config: LogConfig,
    ) -> Result<Self> {
        let dir = data_dir.join(Self::dir_name(topic, index));
        if dir.exists() {
            fs::remove_dir_all(&dir).at(&dir)?;
        }
        fs::create_dir_all(&dir).at(&dir)?;
        fs::write(
            dir.join(PARTITION_METADATA_FILE),
            format!("version: 0\ntopic_id: {topic_id}\n"),
        )
        .at(&dir)?;
        let segment = Segment::create(&dir, 0).at(&dir)?;
        sync_dir(&dir).at(&dir)?;
        sync_dir(data_dir).at(data_dir)?;
        let mut segments = BTreeMap::new();
        segments.insert(0, segment);
        Ok(Self {
            topic: topic.to_owned(),
            index,
            log: Mutex::new(PartitionLog {
                dir,
                segments,
                log_start_offset: 0,
                next_offset: 0,
                producers: ProducerStateTable::default(),
                config,
            }),
        })
    }

    /// Opens an existing partition directory: loads closed segments from their indexes,
    /// validates the active segment batch by batch (truncating a torn tail), restores the
    /// log start offset and rebuilds producer state.
    pub(crate) fn open(
        data_dir: &Path,
        topic: &str,
        topic_id: uuid::Uuid,
        index: i32,
        config: LogConfig,
    ) -> Result<Self> {
        let dir = data_dir.join(Self::dir_name(topic, index));
        if !dir.exists() {
            warn!(
                topic,
                partition = index,
                "partition directory missing; starting it empty"
            );
            return Self::create(data_dir, topic, topic_id, index, config);
        }
        let bases = segment::list_segments(&dir).at(&dir)?;
        let mut segments = BTreeMap::new();
        for (i, base) in bases.iter().enumerate() {
            let next = bases.get(i + 1).copied();
            let active = next.is_none();
            let (seg, recovery) =
                Segment::open(&dir, *base, active, config.index_interval_bytes, next)
                    .at(dir.join(segment::file_name(*base, "log")))?;
            if recovery.truncated_bytes > 0 {
                warn!(
                    topic,
                    partition = index,
                    segment = base,
                    truncated_bytes = recovery.truncated_bytes,
                    reason = recovery.reason.as_deref().unwrap_or(""),
                    "truncated torn tail of the active segment"
                );
            }
            segments.insert(*base, seg);
        }
        if segments.is_empty() {
            segments.insert(0, Segment::create(&dir, 0).at(&dir)?);
        }
        let next_offset = segments.values().next_back().map_or(0, |s| s.next_offset);
        let state: PartitionState = match fs::read(dir.join(PARTITION_STATE_FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(_) => PartitionState::default(),
        };
        let first_base = *segments.keys().next().expect("one segment");
        let log_start_offset = state.log_start_offset.max(first_base).min(next_offset);
        let mut log = PartitionLog {
            dir,
            segments,
            log_start_offset,
            next_offset,
            producers: ProducerStateTable::default(),
            config,
        };
        log.rebuild_producer_state().at(log.dir.clone())?;
        info!(
            topic,
            partition = index,
            log_start_offset,
            next_offset,
            segments = log.segments.len(),
            producers = log.producers.producers.len(),
            "partition loaded"
        );
        Ok(Self {
            topic: topic.to_owned(),
            index,
            log: Mutex::new(log),
        })
    }

    /// Validates and appends a produce request's record set (see [`PartitionLog::append`]).
    pub(crate) fn append(&self, records: &[u8]) -> Result<AppendInfo, ApiError> {
        let batches = split_batches(records)
            .map_err(|e| ApiError::new(ResponseError::CorruptMessage, e.to_string()))?;
        if batches.is_empty() {
            return Err(ApiError::new(
                ResponseError::InvalidRecord,
                "produce request carries no record batch",
            ));
        }
        self.log.lock().append(records, &batches)
    }

    /// fsyncs the active segment's data (called by the group committer).
    pub(crate) fn sync(&self) -> io::Result<()> {
        let file = self.log.lock().active().log_file();
        file.sync_data()
    }

    pub(crate) fn high_watermark(&self) -> i64 {
        self.log.lock().next_offset
    }

    pub(crate) fn log_start_offset(&self) -> i64 {
        self.log.lock().log_start_offset
    }

    /// Replaces the effective config (after AlterConfigs).
    pub(crate) fn set_config(&self, config: LogConfig) {
        self.log.lock().config = config;
    }

    /// Reads whole batches starting at the one holding `offset`.
    pub(crate) fn read(&self, offset: i64, max_bytes: u64) -> Result<ReadResult, ApiError> {
        // The segment holding `offset` and the ones after it: compaction can leave a segment
        // with nothing at or after an offset (or empty), and the read then goes on to the next.
        let (candidates, high_watermark, log_start_offset) = {
            let log = self.log.lock();
            if offset < log.log_start_offset || offset > log.next_offset {
                return Err(ApiError::new(
                    ResponseError::OffsetOutOfRange,
                    format!(
                        "offset {offset} is outside {}..={}",
                        log.log_start_offset, log.next_offset
                    ),
                ));
            }
            if offset == log.next_offset {
                return Ok(ReadResult {
                    records: Vec::new(),
                    high_watermark: log.next_offset,
                    log_start_offset: log.log_start_offset,
                });
            }
            let first = log.segment_for(offset).base_offset;
            let candidates: Vec<(Arc<File>, u64, u64)> = log
                .segments
                .range(first..)
                .map(|(_, segment)| {
                    (
                        segment.log_file(),
                        segment.position_for_offset(offset),
                        segment.size(),
                    )
                })
                .collect();
            (candidates, log.next_offset, log.log_start_offset)
        };
        let io_err = |e: io::Error| ApiError::new(ResponseError::KafkaStorageError, e.to_string());
        let mut records = Vec::new();
        for (file, pos, len) in candidates {
            let pos = seek_offset(&file, pos, len, offset).map_err(io_err)?;
            records = read_batches(&file, pos, len, max_bytes).map_err(io_err)?;
            if !records.is_empty() {
                break;
            }
        }
        Ok(ReadResult {
            records,
            high_watermark,
            log_start_offset,
        })
    }

    pub(crate) fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, ApiError> {
        let candidates: Vec<(Arc<File>, u64, u64)> = {
            let log = self.log.lock();
            log.segments
                .values()
                .filter(|s| s.max_timestamp >= timestamp && s.size() > 0)
                .map(|s| (s.log_file(), s.position_for_timestamp(timestamp), s.size()))
                .collect()
        };
        let log_start = self.log_start_offset();
        let io_err = |e: io::Error| ApiError::new(ResponseError::KafkaStorageError, e.to_string());
        for (file, mut pos, len) in candidates {
            while let Some(header) = segment::read_header_at(&file, pos, len).map_err(io_err)? {
                if header.max_timestamp >= timestamp && header.last_offset() >= log_start {
                    let mut bytes = vec![0u8; header.total_len()];
                    std::os::unix::fs::FileExt::read_exact_at(&*file, &mut bytes, pos)
                        .map_err(io_err)?;
                    let mut buf = bytes::Bytes::from(bytes);
                    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
                        .map_err(|e| ApiError::new(ResponseError::CorruptMessage, e.to_string()))?;
                    if let Some(record) = set
                        .records
                        .iter()
                        .find(|r| r.timestamp >= timestamp && r.offset >= log_start)
                    {
                        return Ok(Some((record.offset, record.timestamp)));
                    }
                }
                pos += header.total_len() as u64;
            }
        }
        Ok(None)
    }

    /// Offset and timestamp of the batch holding the largest timestamp (ListOffsets -3).
    pub(crate) fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        let log = self.log.lock();
        let max = log.segments.values().map(|s| s.max_timestamp).max()?;
        if max < 0 {
            return None;
        }
        drop(log);
        self.offset_for_timestamp(max).ok().flatten()
    }

    /// Moves the log start offset forward (DeleteRecords): `-1` means the high watermark.
    /// Whole segments below it are deleted. Returns the new low watermark.
    pub(crate) fn delete_records_before(&self, offset: i64) -> Result<i64, ApiError> {
        let mut log = self.log.lock();
        let target = if offset == -1 {
            log.next_offset
        } else {
            offset
        };
        if target < 0 || target > log.next_offset {
            return Err(ApiError::new(
                ResponseError::OffsetOutOfRange,
                format!(
                    "cannot delete records before {offset}: the log ends at {}",
                    log.next_offset
                ),
            ));
        }
        if target > log.log_start_offset {
            log.log_start_offset = target;
            log.persist_state()
                .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
            log.delete_segments_below(target);
        }
        Ok(log.log_start_offset)
    }

    /// Flushes everything and writes the producer snapshot (clean shutdown).
    /// Deletes the oldest segments past `retention.ms` (their newest record is older) or
    /// beyond `retention.bytes` (the partition is larger without them), never the active one,
    /// and moves the log start offset to the first segment left. See [`super::retention`].
    pub(crate) fn enforce_retention(&self, now_ms: i64) -> io::Result<super::retention::Deleted> {
        let mut log = self.log.lock();
        let plan = super::retention::segments_to_delete(
            &log.config,
            log.segments
                .values()
                .map(|s| (s.base_offset, s.size(), s.max_timestamp)),
            now_ms,
        );
        if plan.segments == 0 {
            return Ok(plan);
        }
        let new_start = plan.new_log_start_offset.max(log.log_start_offset);
        log.log_start_offset = new_start;
        log.persist_state()?;
        log.delete_segments_below(new_start);
        Ok(plan)
    }

    /// What compaction needs to read: the directory, the config, the sealed segments (base,
    /// file, size), the active one (base, file, size at this moment), the log start offset
    /// and the next offset.
    pub(crate) fn compaction_snapshot(&self) -> super::cleaner::Snapshot {
        let log = self.log.lock();
        let mut segments: Vec<super::cleaner::SegmentView> = log
            .segments
            .values()
            .map(|s| super::cleaner::SegmentView {
                base_offset: s.base_offset,
                file: s.log_file(),
                size: s.size(),
            })
            .collect();
        let active = segments.pop().expect("a partition always has a segment");
        super::cleaner::Snapshot {
            dir: log.dir.clone(),
            config: log.config.clone(),
            sealed: segments,
            active,
            log_start_offset: log.log_start_offset,
            next_offset: log.next_offset,
        }
    }

    /// Swaps a sealed segment for its cleaned copy (`cleaned`, same base offset), unless the
    /// segment is gone (retention) or has changed meanwhile. Crash-safe: the old index is made
    /// invalid first, so a restart at any point rebuilds it from whichever log file is there.
    pub(crate) fn install_cleaned_segment(
        &self,
        base_offset: i64,
        expected_size: u64,
        cleaned: &Path,
    ) -> io::Result<bool> {
        let mut log = self.log.lock();
        let active_base = log.active().base_offset;
        let still_there = log
            .segments
            .get(&base_offset)
            .is_some_and(|s| s.size() == expected_size);
        if !still_there || base_offset == active_base {
            fs::remove_file(cleaned)?;
            return Ok(false);
        }
        let next_base = log
            .segments
            .range(base_offset + 1..)
            .next()
            .map(|(base, _)| *base);
        super::cleaner::invalidate_index(&log.dir, base_offset)?;
        fs::rename(
            cleaned,
            log.dir.join(segment::file_name(base_offset, "log")),
        )?;
        sync_dir(&log.dir)?;
        let (segment, _) = Segment::open(
            &log.dir,
            base_offset,
            false,
            log.config.index_interval_bytes,
            next_base,
        )?;
        log.segments.insert(base_offset, segment);
        Ok(true)
    }

    pub(crate) fn close(&self) -> io::Result<()> {
        let log = self.log.lock();
        log.active().sync()?;
        log.write_producer_snapshot()
    }

    /// Removes the partition's directory (topic deletion).
    pub(crate) fn delete_dir(&self) -> io::Result<()> {
        let log = self.log.lock();
        fs::remove_dir_all(&log.dir)
    }
}

impl PartitionLog {
    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a partition always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a partition always has a segment")
    }

    fn segment_for(&self, offset: i64) -> &Segment {
        self.segments
            .range(..=offset)
            .next_back()
            .map(|(_, s)| s)
            .unwrap_or_else(|| self.segments.values().next().expect("one segment"))
    }

    /// Appends validated batches: idempotence checks, offsets assigned, size and roll rules.
    fn append(
        &mut self,
        records: &[u8],
        batches: &[(BatchHeader, std::ops::Range<usize>)],
    ) -> Result<AppendInfo, ApiError> {
        for (header, range) in batches {
            if range.len() > self.config.max_message_bytes {
                return Err(ApiError::new(
                    ResponseError::MessageTooLarge,
                    format!(
                        "record batch of {} bytes exceeds max.message.bytes {}",
                        range.len(),
                        self.config.max_message_bytes
                    ),
                ));
            }
            if header.is_control() || header.is_transactional() {
                return Err(ApiError::new(
                    ResponseError::InvalidRecord,
                    "transactional and control batches are not supported by this broker",
                ));
            }
            if header.has_producer_id() && batches.len() > 1 {
                return Err(ApiError::new(
                    ResponseError::InvalidRecord,
                    "an idempotent producer must send one batch per partition per request",
                ));
            }
            if header.has_producer_id() {
                match self.producers.check(header) {
                    SequenceCheck::Append => {}
                    SequenceCheck::Duplicate { base_offset } => {
                        return Ok(AppendInfo {
                            base_offset,
                            log_start_offset: self.log_start_offset,
                            appended: false,
                        })
                    }
                    SequenceCheck::Reject(code) => {
                        return Err(ApiError::new(
                            code,
                            format!(
                                "producer {} epoch {} sequence {} rejected",
                                header.producer_id, header.producer_epoch, header.base_sequence
                            ),
                        ))
                    }
                }
            }
        }
        let mut data = records.to_vec();
        let base_offset = self.next_offset;
        let mut appended = Vec::with_capacity(batches.len());
        let mut next = base_offset;
        for (header, range) in batches {
            assign_offset(&mut data[range.clone()], next);
            appended.push((
                *header,
                AppendedBatch {
                    base_offset: next,
                    last_offset: next + i64::from(header.last_offset_delta),
                    max_timestamp: header.max_timestamp,
                    len: range.len(),
                },
            ));
            next += header.offset_count();
        }
        if next - 1 > i64::MAX / 2 {
            return Err(ApiError::new(
                ResponseError::InvalidRecord,
                "offset overflow",
            ));
        }
        self.maybe_roll(data.len() as u64, base_offset, next)
            .map_err(|e| ApiError::new(ResponseError::KafkaStorageError, e.to_string()))?;
        let interval = self.config.index_interval_bytes;
        let index_entries: Vec<AppendedBatch> = appended.iter().map(|(_, a)| *a).collect();
        let active = self.active_mut();
        active
            .append(&data, &index_entries, interval)
            .map_err(|e| {
                warn!(error = %e, "append failed");
                ApiError::new(ResponseError::KafkaStorageError, e.to_string())
            })?;
        for (header, batch) in &appended {
            self.producers.record(header, batch.base_offset);
        }
        self.next_offset = next;
        Ok(AppendInfo {
            base_offset,
            log_start_offset: self.log_start_offset,
            appended: true,
        })
    }

    /// Rolls to a new segment when the active one is full or old, or when relative offsets
    /// would overflow the index's 32 bits.
    fn maybe_roll(&mut self, incoming: u64, base_offset: i64, next: i64) -> io::Result<()> {
        let segment_bytes = self.config.segment_bytes;
        let segment_ms = self.config.segment_ms;
        let active = self.active();
        if active.size() == 0 {
            return Ok(());
        }
        let full = active.size() + incoming > segment_bytes;
        let old = active
            .first_batch_timestamp
            .is_some_and(|first| now_ms().saturating_sub(first) > segment_ms);
        let overflow = next - active.base_offset > i64::from(i32::MAX);
        if !(full || old || overflow) {
            return Ok(());
        }
        self.active_mut().seal()?;
        let segment = Segment::create(&self.dir, base_offset)?;
        sync_dir(&self.dir)?;
        self.segments.insert(base_offset, segment);
        if let Err(e) = self.write_producer_snapshot() {
            warn!(error = %e, dir = %self.dir.display(), "cannot write producer snapshot");
        }
        Ok(())
    }

    fn persist_state(&self) -> io::Result<()> {
        let state = PartitionState {
            log_start_offset: self.log_start_offset,
        };
        write_atomically(
            &self.dir.join(PARTITION_STATE_FILE),
            &serde_json::to_vec(&state).expect("serializable"),
        )
    }

    /// Deletes segments lying wholly below `offset`; the active segment always stays.
    fn delete_segments_below(&mut self, offset: i64) {
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for pair in bases.windows(2) {
            let (base, next_base) = (pair[0], pair[1]);
            if next_base <= offset {
                if let Some(segment) = self.segments.remove(&base) {
                    if let Err(e) = segment.delete_files() {
                        warn!(error = %e, segment = base, "cannot delete segment files");
                    }
                }
            }
        }
    }

    fn write_producer_snapshot(&self) -> io::Result<()> {
        let snapshot = ProducerSnapshot {
            offset: self.next_offset,
            state: self.producers.clone(),
        };
        write_atomically(
            &self.dir.join(PRODUCER_SNAPSHOT_FILE),
            &serde_json::to_vec(&snapshot).expect("serializable"),
        )
    }

    /// Restores producer state: the snapshot, then every batch header after it.
    fn rebuild_producer_state(&mut self) -> io::Result<()> {
        let snapshot: Option<ProducerSnapshot> = fs::read(self.dir.join(PRODUCER_SNAPSHOT_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let (mut from, mut state) = match snapshot {
            Some(s) if s.offset <= self.next_offset => (s.offset, s.state),
            _ => (self.log_start_offset, ProducerStateTable::default()),
        };
        if from < self.segments.keys().next().copied().unwrap_or(0) {
            from = self.log_start_offset;
            state = ProducerStateTable::default();
        }
        for segment in self.segments.values() {
            if segment.next_offset <= from {
                continue;
            }
            let file = segment.log_file();
            let mut pos = seek_offset(
                &file,
                segment.position_for_offset(from),
                segment.size(),
                from,
            )?;
            while let Some(header) = segment.read_header(pos)? {
                if header.base_offset >= from {
                    state.record(&header, header.base_offset);
                }
                pos += header.total_len() as u64;
            }
        }
        self.producers = state;
        Ok(())
    }
}
