//! Compaction for `cleanup.policy=compact`: the log cleaner.
//!
//! A pass over a partition reads every record key of the log (sealed segments and what the
//! active segment holds at that moment) to learn the newest offset of each key, then rewrites
//! each sealed segment that holds something to drop: records superseded by a newer record
//! with the same key, and tombstones (null values) older than `delete.retention.ms` (measured
//! from the tombstone's timestamp). Offsets are kept (the log has gaps afterwards, as in
//! Kafka); records without a key are kept; the active segment is never touched.
//!
//! The reading and rewriting happen outside the partition's lock, so produce and fetch carry
//! on. Each rewritten segment is written to `<base>.cleaned`, fsync'd, and swapped in under
//! the lock by [`Partition::install_cleaned_segment`]: the old index is invalidated, the file
//! renamed over the old `.log` (atomic), the directory fsync'd and the index rebuilt. A crash
//! at any point leaves each segment either wholly old or wholly cleaned (never lost, never
//! twice); a leftover `.cleaned` file is deleted when the cleaner starts. A segment that
//! retention deleted or that changed meanwhile is not replaced.
//!
//! The broker runs a pass over every compacted partition with new sealed segments (or with
//! tombstones still waiting for their time) every `log_cleaner_backoff_ms` ([`run_cleaner`]).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use tracing::{debug, info, warn};

use super::config::LogConfig;
use super::partition::{now_ms, sync_dir, Partition};
use super::segment::{file_name, read_header_at};
use crate::server::BrokerState;

const CLEANED_SUFFIX: &str = "cleaned";

/// A segment as the cleaner reads it.
#[derive(Debug, Clone)]
pub(crate) struct SegmentView {
    pub(crate) base_offset: i64,
    pub(crate) file: Arc<File>,
    /// Bytes of whole batches at the time of the snapshot.
    pub(crate) size: u64,
}

/// A partition's segments at the start of a cleaning pass.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    pub(crate) sealed: Vec<SegmentView>,
    pub(crate) active: SegmentView,
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanStats {
    pub(crate) segments_rewritten: usize,
    pub(crate) bytes_read: u64,
    pub(crate) bytes_before: u64,
    pub(crate) bytes_after: u64,
    pub(crate) records_removed: u64,
    /// Tombstones kept because they are younger than `delete.retention.ms`.
    pub(crate) tombstones_kept: u64,
}

/// Makes a segment's offset index fail the sanity check on the next load (a length that is
/// not a whole number of entries), so it is rebuilt from the log file.
pub(crate) fn invalidate_index(dir: &Path, base_offset: i64) -> io::Result<()> {
    let index = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(file_name(base_offset, "index")))?;
    index.set_len(1)?;
    index.sync_all()
}

/// Deletes `.cleaned` files a crash left behind.
pub(crate) fn remove_leftovers(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == CLEANED_SUFFIX) {
            fs::remove_file(&path)?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// Calls `each` with every record batch of `segment`, in order.
fn for_each_batch(
    segment: &SegmentView,
    mut each: impl FnMut(Bytes) -> io::Result<()>,
) -> io::Result<()> {
    let mut pos = 0u64;
    while let Some(header) = read_header_at(&segment.file, pos, segment.size)? {
        let mut buf = vec![0u8; header.total_len()];
        segment.file.read_exact_at(&mut buf, pos)?;
        each(Bytes::from(buf))?;
        pos += header.total_len() as u64;
    }
    Ok(())
}

fn decode(batch: Bytes) -> io::Result<kafka_protocol::records::RecordSet> {
    let mut buf = batch;
    RecordBatchDecoder::decode(&mut buf)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Runs one compaction pass over `partition`.
pub(crate) fn clean_partition(partition: &Partition, now_ms: i64) -> io::Result<CleanStats> {
    let snapshot = partition.compaction_snapshot();
    let mut stats = CleanStats::default();
    if !snapshot.config.compact || snapshot.sealed.is_empty() {
        return Ok(stats);
    }
    // The newest offset of every key, over the whole log.
    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    for segment in snapshot
        .sealed
        .iter()
        .chain(std::iter::once(&snapshot.active))
    {
        stats.bytes_read += segment.size;
        for_each_batch(segment, |batch| {
            for record in decode(batch)?.records {
                if let Some(key) = record.key {
                    latest.insert(key, record.offset);
                }
            }
            Ok(())
        })?;
    }
    let retention = snapshot.config.delete_retention_ms;
    let keep = |record: &Record, stats: &mut CleanStats| -> bool {
        let Some(key) = &record.key else {
            return true;
        };
        if latest.get(key) != Some(&record.offset) {
            return false;
        }
        if record.value.is_none() {
            if now_ms.saturating_sub(record.timestamp) > retention {
                return false;
            }
            stats.tombstones_kept += 1;
        }
        true
    };
    for segment in &snapshot.sealed {
        // First see whether anything goes; most segments of a clean log need no rewrite.
        let mut removable = 0u64;
        let mut pass_stats = CleanStats::default();
        for_each_batch(segment, |batch| {
            for record in decode(batch)?.records {
                if !keep(&record, &mut pass_stats) {
                    removable += 1;
                }
            }
            Ok(())
        })?;
        stats.tombstones_kept += pass_stats.tombstones_kept;
        if removable == 0 {
            continue;
        }
        let cleaned = snapshot
            .dir
            .join(file_name(segment.base_offset, CLEANED_SUFFIX));
        let mut out = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&cleaned)?;
        let mut written = 0u64;
        let mut scratch = CleanStats::default();
        for_each_batch(segment, |batch| {
            let set = decode(batch)?;
            let mut kept: Vec<Record> = set
                .records
                .into_iter()
                .filter(|r| keep(r, &mut scratch))
                .collect();
            if kept.is_empty() {
                return Ok(());
            }
            // The encoder keeps records in one batch while offset minus sequence stays the
            // same; for producers without sequences, give it sequences that do (the batch's
            // base sequence stays -1).
            let first = kept[0].offset;
            for record in &mut kept {
                if record.producer_id < 0 {
                    record.sequence = (record.offset - first) as i32 - 1;
                }
            }
            let mut buf = BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                kept.iter(),
                &RecordEncodeOptions {
                    version: 2,
                    compression: set.compression,
                },
            )
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
            out.write_all(&buf)?;
            written += buf.len() as u64;
            Ok(())
        })?;
        out.sync_all()?;
        drop(out);
        if partition.install_cleaned_segment(segment.base_offset, segment.size, &cleaned)? {
            stats.segments_rewritten += 1;
            stats.bytes_before += segment.size;
            stats.bytes_after += written;
            stats.records_removed += removable;
        }
    }
    Ok(stats)
}

/// Per partition: the active segment's base offset at the last pass, and whether tombstones
/// were left for later.
type CleanerState = HashMap<(String, i32), (i64, bool)>;

fn clean_dirty_partitions(state: &BrokerState, seen: &mut CleanerState) {
    for partition in state.logs.all_partitions() {
        let snapshot_base = partition.compaction_snapshot();
        if !snapshot_base.config.compact {
            continue;
        }
        let key = (partition.topic.clone(), partition.index);
        let active_base = snapshot_base.active.base_offset;
        let first_visit = !seen.contains_key(&key);
        if first_visit {
            if let Err(error) = remove_leftovers(&snapshot_base.dir) {
                warn!(topic = %partition.topic, partition = partition.index, %error, "cannot remove leftover .cleaned files");
            }
        }
        match seen.get(&key) {
            Some((base, tombstones)) if *base == active_base && !tombstones => continue,
            _ => {}
        }
        drop(snapshot_base);
        let started = Instant::now();
        match clean_partition(&partition, now_ms()) {
            Ok(stats) => {
                if stats.segments_rewritten > 0 {
                    let secs = started.elapsed().as_secs_f64().max(1e-9);
                    info!(
                        topic = %partition.topic,
                        partition = partition.index,
                        segments = stats.segments_rewritten,
                        records_removed = stats.records_removed,
                        bytes_before = stats.bytes_before,
                        bytes_after = stats.bytes_after,
                        mb_per_s = format!("{:.1}", stats.bytes_read as f64 / secs / 1e6),
                        "compacted"
                    );
                } else {
                    debug!(topic = %partition.topic, partition = partition.index, "nothing to compact");
                }
                seen.insert(key, (active_base, stats.tombstones_kept > 0));
            }
            Err(error) => warn!(
                topic = %partition.topic,
                partition = partition.index,
                %error,
                "compaction failed; the partition is left as it was and retried later"
            ),
        }
    }
}

/// The background cleaner: a pass every `interval` until shutdown.
pub(crate) async fn run_cleaner(state: Arc<BrokerState>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = CleanerState::new();
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let pass_state = Arc::clone(&state);
        let result = tokio::task::spawn_blocking(move || {
            clean_dirty_partitions(&pass_state, &mut seen);
            seen
        })
        .await;
        match result {
            Ok(back) => seen = back,
            Err(error) => {
                warn!(%error, "cleaner task failed");
                seen = CleanerState::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::BytesMut;
    use kafka_protocol::records::{Compression, TimestampType};

    use super::*;
    use crate::config::BrokerConfig;

    fn config() -> LogConfig {
        let overrides = BTreeMap::from([
            ("cleanup.policy".to_owned(), "compact".to_owned()),
            ("segment.bytes".to_owned(), "1024".to_owned()),
            ("delete.retention.ms".to_owned(), "0".to_owned()),
        ]);
        LogConfig::resolve(&BrokerConfig::default(), &overrides)
    }

    /// One batch of records `(key, value)` (a `None` value is a tombstone).
    fn batch(records: &[(&str, Option<&str>)]) -> Vec<u8> {
        let now = now_ms();
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: -1,
                timestamp: now - 1000,
                key: Some(Bytes::copy_from_slice(key.as_bytes())),
                value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    fn read_all(partition: &Partition) -> Vec<(i64, String, Option<String>)> {
        let mut out = Vec::new();
        let mut offset = partition.log_start_offset();
        while offset < partition.high_watermark() {
            let read = partition.read(offset, u64::MAX).unwrap();
            assert!(!read.records.is_empty(), "stuck at {offset}");
            let mut bytes = Bytes::from(read.records);
            for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
                for r in set.records {
                    if r.offset >= offset {
                        out.push((
                            r.offset,
                            String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                            r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                        ));
                        offset = r.offset + 1;
                    }
                }
            }
        }
        out
    }

    /// Keys a..e overwritten in rounds, `a` deleted, then a filler batch as active segment.
    fn filled_partition(dir: &Path) -> Partition {
        let id = uuid::Uuid::nil();
        let partition = Partition::create(dir, "t", id, 0, config()).unwrap();
        for round in 0..4 {
            let values: Vec<String> = (0..5)
                .map(|k| format!("v{round}-{k}-{}", "x".repeat(200)))
                .collect();
            let records: Vec<(&str, Option<&str>)> = ["a", "b", "c", "d", "e"]
                .iter()
                .zip(&values)
                .map(|(k, v)| (*k, Some(v.as_str())))
                .collect();
            partition.append(&batch(&records)).unwrap();
        }
        partition.append(&batch(&[("a", None)])).unwrap();
        // Big enough to roll: the tombstone ends up in a sealed segment.
        let filler = "f".repeat(1000);
        partition
            .append(&batch(&[("filler", Some(&filler))]))
            .unwrap();
        partition
    }

    fn expected_after_cleaning(
        all: &[(i64, String, Option<String>)],
    ) -> Vec<(i64, String, Option<String>)> {
        let mut latest: BTreeMap<&str, i64> = BTreeMap::new();
        for (offset, key, _) in all {
            latest.insert(key, *offset);
        }
        all.iter()
            .filter(|(o, k, v)| latest[k.as_str()] == *o && v.is_some())
            .cloned()
            .collect()
    }

    #[test]
    fn cleaning_keeps_the_newest_value_per_key_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let partition = filled_partition(dir.path());
        let before = read_all(&partition);
        let stats = clean_partition(&partition, now_ms()).unwrap();
        assert!(
            stats.segments_rewritten > 0 && stats.records_removed > 0,
            "{stats:?}"
        );
        let after = read_all(&partition);
        assert_eq!(after, expected_after_cleaning(&before));
        partition.close().unwrap();
        drop(partition);
        let reopened = Partition::open(dir.path(), "t", uuid::Uuid::nil(), 0, config()).unwrap();
        assert_eq!(read_all(&reopened), after);
        // A second pass has nothing left to do.
        assert_eq!(
            clean_partition(&reopened, now_ms())
                .unwrap()
                .segments_rewritten,
            0
        );
    }

    /// A crash at each step of swapping a segment in leaves a log with either the old or the
    /// cleaned content of that segment, never a lost or doubled one.
    #[test]
    fn a_crash_at_any_step_of_the_swap_leaves_a_whole_segment() {
        let dir = tempfile::tempdir().unwrap();
        let partition = filled_partition(dir.path());
        let before = read_all(&partition);
        let pdir = dir.path().join("t-0");
        let base = partition.compaction_snapshot().sealed[0].base_offset;
        partition.close().unwrap();
        drop(partition);

        // 1. Crash after writing `.cleaned`, before anything else: the leftover goes.
        fs::write(pdir.join(file_name(base, CLEANED_SUFFIX)), b"half-written").unwrap();
        assert_eq!(remove_leftovers(&pdir).unwrap(), 1);
        let reopened = Partition::open(dir.path(), "t", uuid::Uuid::nil(), 0, config()).unwrap();
        assert_eq!(read_all(&reopened), before);
        drop(reopened);

        // 2. Crash after the index was invalidated, before the rename: the old log, reindexed.
        invalidate_index(&pdir, base).unwrap();
        let reopened = Partition::open(dir.path(), "t", uuid::Uuid::nil(), 0, config()).unwrap();
        assert_eq!(read_all(&reopened), before);

        // 3. Crash after the rename, before the new index was written: the cleaned log,
        //    reindexed from the file.
        clean_partition(&reopened, now_ms()).unwrap();
        let cleaned = read_all(&reopened);
        drop(reopened);
        invalidate_index(&pdir, base).unwrap();
        let reopened = Partition::open(dir.path(), "t", uuid::Uuid::nil(), 0, config()).unwrap();
        assert_eq!(read_all(&reopened), cleaned);
        assert_eq!(cleaned, expected_after_cleaning(&before));
    }
}
