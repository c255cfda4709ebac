//! Compaction for `cleanup.policy=compact`: the log cleaner.
//!
//! As Kafka's LogCleaner, the cleaner sees a partition as a clean part (below the offset where
//! its last round ended: each key there at most once, nothing superseded) and a dirty part
//! (the rest, active segment included as far as it was when the round started). A round
//! cleans the dirty part in passes. A pass maps the keys of the dirty part, from its start, to
//! their newest offsets until the key map is full ([`OffsetMap`], bounded by
//! `log.cleaner.dedupe.buffer.size`) or the log ends; then it rewrites each sealed segment
//! below the pass's end that holds something to drop: records older than the offset the map
//! holds for their key, and tombstones (null values) older than `delete.retention.ms`
//! (measured from the tombstone's timestamp) that nothing newer in the map supersedes.
//! Records at or after the pass's end are kept as they are; the next pass starts there. With
//! the default 128 MiB a pass maps about 5 million keys. Offsets are kept (the log has gaps
//! afterwards, as in Kafka); records without a key are kept; the active segment is never
//! rewritten.
//!
//! Where the clean part ends lives in memory: after a restart the first round treats the whole
//! log as dirty, which costs one more read of the log but is always right.
//!
//! The reading and rewriting happen outside the partition's lock, so produce and fetch carry
//! on. Each rewritten segment is written to `<base>.cleaned`, fsync'd, and swapped in under
//! the lock by [`Partition::install_cleaned_segment`]: the old index is invalidated, the file
//! renamed over the old `.log` (atomic), the directory fsync'd and the index rebuilt. A crash
//! at any point leaves each segment either wholly old or wholly cleaned (never lost, never
//! twice); a leftover `.cleaned` file is deleted when the cleaner starts. Segments are swapped
//! in oldest first and a pass stops at the first one it cannot swap in (retention deleted it
//! or it changed meanwhile), so a tombstone is never dropped while an older record of its key
//! is still there: a crash or an abandoned pass cannot bring a deleted key back.
//!
//! The broker runs a round over every compacted partition with new sealed segments (or with
//! tombstones still waiting for their time, or a round left unfinished) every
//! `log_cleaner_backoff_ms` ([`run_cleaner`]).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use tracing::{debug, info, warn};

use super::config::LogConfig;
use super::offset_map::{MapLimits, OffsetMap};
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
    pub(crate) log_start_offset: i64,
    /// The offset after the last record of the snapshot.
    pub(crate) next_offset: i64,
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
    /// Passes made (map as many keys as fit, clean against them).
    pub(crate) passes: usize,
    /// Bytes of the key map's table.
    pub(crate) map_bytes: u64,
}

/// What a round over a partition did, and how far its log is clean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanOutcome {
    pub(crate) stats: CleanStats,
    /// Below this offset the log is clean: the next round's first dirty offset.
    pub(crate) clean_to: i64,
    /// False when the round stopped early (the log changed under it, or shutdown).
    pub(crate) finished: bool,
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

/// Calls `each` with every record batch of `segment` whose last offset is at least `from`,
/// in order, until it breaks.
fn for_each_batch(
    segment: &SegmentView,
    from: i64,
    mut each: impl FnMut(Bytes) -> io::Result<ControlFlow<()>>,
) -> io::Result<ControlFlow<()>> {
    let mut pos = 0u64;
    while let Some(header) = read_header_at(&segment.file, pos, segment.size)? {
        if header.last_offset() >= from {
            let mut buf = vec![0u8; header.total_len()];
            segment.file.read_exact_at(&mut buf, pos)?;
            if each(Bytes::from(buf))?.is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        pos += header.total_len() as u64;
    }
    Ok(ControlFlow::Continue(()))
}

/// Calls `each` with every record batch of `segment`, in order.
fn for_every_batch(
    segment: &SegmentView,
    mut each: impl FnMut(Bytes) -> io::Result<()>,
) -> io::Result<()> {
    for_each_batch(segment, i64::MIN, |batch| {
        each(batch).map(ControlFlow::Continue)
    })
    .map(drop)
}

fn decode(batch: Bytes) -> io::Result<kafka_protocol::records::RecordSet> {
    let mut buf = batch;
    RecordBatchDecoder::decode(&mut buf)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Runs one round over `partition`: cleans its dirty part, from `first_dirty` (below it the
/// log is clean; the log start offset when unknown) to the end of the log, in as many passes
/// as its keys need with maps bounded by `limits`. `stop` is asked before each segment; when
/// it says yes the round ends unfinished, its work so far kept.
pub(crate) fn clean_partition(
    partition: &Partition,
    now_ms: i64,
    limits: MapLimits,
    first_dirty: i64,
    stop: &dyn Fn() -> bool,
) -> io::Result<CleanOutcome> {
    let mut snapshot = partition.compaction_snapshot();
    let mut stats = CleanStats::default();
    if !snapshot.config.compact || snapshot.sealed.is_empty() {
        return Ok(CleanOutcome {
            stats,
            clean_to: first_dirty,
            finished: true,
        });
    }
    let mut start = first_dirty.clamp(snapshot.log_start_offset, snapshot.next_offset);
    // The round cleans what the log held when it started; later records wait for the next.
    let round_end = snapshot.next_offset;
    // At most one key per offset of the dirty part: a small partition gets a small table.
    let mut map = OffsetMap::new(limits, (round_end - start) as u64);
    stats.map_bytes = map.table_bytes();
    loop {
        if map.len() > 0 {
            map.clear();
        }
        let (end, full) = map_keys(&snapshot, start, round_end, &mut map, &mut stats)?;
        let swapped_all =
            clean_segments(partition, &snapshot, &map, end, now_ms, &mut stats, stop)?;
        if !swapped_all {
            return Ok(CleanOutcome {
                stats,
                clean_to: start.min(snapshot.active.base_offset),
                finished: false,
            });
        }
        stats.passes += 1;
        debug!(
            topic = %partition.topic,
            partition = partition.index,
            from = start,
            to = end,
            keys = map.len(),
            capacity = map.capacity(),
            "cleaner pass done"
        );
        start = end;
        if !full {
            break;
        }
        // The segments this pass rewrote are new files: the next pass reads those.
        snapshot = partition.compaction_snapshot();
    }
    Ok(CleanOutcome {
        stats,
        clean_to: start.min(snapshot.active.base_offset),
        finished: true,
    })
}

/// Maps the keys of the records from `start` on, in offset order, until `map` is full or
/// `round_end` is reached. Returns the end of what the map covers (exclusive) and whether it
/// stopped because the map was full.
fn map_keys(
    snapshot: &Snapshot,
    start: i64,
    round_end: i64,
    map: &mut OffsetMap,
    stats: &mut CleanStats,
) -> io::Result<(i64, bool)> {
    let segments: Vec<&SegmentView> = snapshot
        .sealed
        .iter()
        .chain(std::iter::once(&snapshot.active))
        .collect();
    let mut full_at = None;
    for (i, segment) in segments.iter().enumerate() {
        if segments
            .get(i + 1)
            .is_some_and(|next| next.base_offset <= start)
        {
            continue;
        }
        if segment.base_offset >= round_end {
            break;
        }
        let flow = for_each_batch(segment, start, |batch| {
            stats.bytes_read += batch.len() as u64;
            for record in decode(batch)?.records {
                if record.offset >= round_end {
                    return Ok(ControlFlow::Break(()));
                }
                let Some(key) = &record.key else { continue };
                if record.offset >= start && !map.put(key, record.offset) {
                    full_at = Some(record.offset);
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(ControlFlow::Continue(()))
        })?;
        if let Some(end) = full_at {
            return Ok((end, true));
        }
        if flow.is_break() {
            break;
        }
    }
    Ok((round_end.max(start), false))
}

/// Rewrites, oldest first, the sealed segments below `end` that hold something `map` makes
/// obsolete (see the module docs). False when it stopped before the last one: a segment could
/// not be swapped in (the log changed meanwhile) or `stop` said so. The segments after that
/// one are left alone, so that no tombstone goes before the older records of its key.
fn clean_segments(
    partition: &Partition,
    snapshot: &Snapshot,
    map: &OffsetMap,
    end: i64,
    now_ms: i64,
    stats: &mut CleanStats,
    stop: &dyn Fn() -> bool,
) -> io::Result<bool> {
    let retention = snapshot.config.delete_retention_ms;
    let keep = |record: &Record, tombstones_kept: &mut u64| -> bool {
        // Past the map's end nothing is known yet: the next pass decides.
        if record.offset >= end {
            return true;
        }
        let Some(key) = &record.key else {
            return true;
        };
        if map.get(key).is_some_and(|newest| newest > record.offset) {
            return false;
        }
        if record.value.is_none() {
            if now_ms.saturating_sub(record.timestamp) > retention {
                return false;
            }
            *tombstones_kept += 1;
        }
        true
    };
    for segment in snapshot.sealed.iter().take_while(|s| s.base_offset < end) {
        if stop() {
            return Ok(false);
        }
        // First see whether anything goes; most segments of a clean log need no rewrite.
        let mut removable = 0u64;
        let mut tombstones_kept = 0u64;
        for_every_batch(segment, |batch| {
            stats.bytes_read += batch.len() as u64;
            for record in decode(batch)?.records {
                if !keep(&record, &mut tombstones_kept) {
                    removable += 1;
                }
            }
            Ok(())
        })?;
        stats.tombstones_kept += tombstones_kept;
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
        let mut scratch = 0u64;
        for_every_batch(segment, |batch| {
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
        if !partition.install_cleaned_segment(segment.base_offset, segment.size, &cleaned)? {
            return Ok(false);
        }
        stats.segments_rewritten += 1;
        stats.bytes_before += segment.size;
        stats.bytes_after += written;
        stats.records_removed += removable;
    }
    Ok(true)
}

/// What the cleaner remembers of a partition between rounds. Only in memory: after a
/// restart the first round starts from the log start, which is always right.
#[derive(Debug)]
struct PartitionProgress {
    /// Which partition this is about: a topic deleted and created again starts over.
    partition: Weak<Partition>,
    /// The active segment's base offset when the last round started.
    active_base: i64,
    /// Below this offset the log is clean.
    clean_to: i64,
    /// Whether the last round finished.
    finished: bool,
    /// Whether the last round kept tombstones that will expire.
    tombstones_waiting: bool,
}

type CleanerState = HashMap<(String, i32), PartitionProgress>;

fn clean_dirty_partitions(state: &BrokerState, progress: &mut CleanerState) {
    let limits = MapLimits::from_config(state.config());
    let stop = || state.shutdown.is_cancelled();
    for partition in state.logs.all_partitions() {
        if stop() {
            return;
        }
        let snapshot_base = partition.compaction_snapshot();
        if !snapshot_base.config.compact {
            continue;
        }
        let key = (partition.topic.clone(), partition.index);
        let active_base = snapshot_base.active.base_offset;
        let known = progress
            .get(&key)
            .filter(|p| Weak::ptr_eq(&p.partition, &Arc::downgrade(&partition)));
        if known.is_none() {
            if let Err(error) = remove_leftovers(&snapshot_base.dir) {
                warn!(topic = %partition.topic, partition = partition.index, %error, "cannot remove leftover .cleaned files");
            }
        }
        if known
            .is_some_and(|p| p.active_base == active_base && p.finished && !p.tombstones_waiting)
        {
            continue;
        }
        let first_dirty = known.map_or(snapshot_base.log_start_offset, |p| p.clean_to);
        drop(snapshot_base);
        let started = Instant::now();
        match clean_partition(&partition, now_ms(), limits, first_dirty, &stop) {
            Ok(CleanOutcome {
                stats,
                clean_to,
                finished,
            }) => {
                if stats.segments_rewritten > 0 {
                    let secs = started.elapsed().as_secs_f64().max(1e-9);
                    info!(
                        topic = %partition.topic,
                        partition = partition.index,
                        passes = stats.passes,
                        segments = stats.segments_rewritten,
                        records_removed = stats.records_removed,
                        bytes_before = stats.bytes_before,
                        bytes_after = stats.bytes_after,
                        map_bytes = stats.map_bytes,
                        mb_per_s = format!("{:.1}", stats.bytes_read as f64 / secs / 1e6),
                        finished,
                        "compacted"
                    );
                } else {
                    debug!(topic = %partition.topic, partition = partition.index, finished, "nothing to compact");
                }
                progress.insert(
                    key,
                    PartitionProgress {
                        partition: Arc::downgrade(&partition),
                        active_base,
                        clean_to,
                        finished,
                        tombstones_waiting: stats.tombstones_kept > 0,
                    },
                );
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

/// The background cleaner: a round every `interval` until shutdown.
pub(crate) async fn run_cleaner(state: Arc<BrokerState>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut progress = CleanerState::new();
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let pass_state = Arc::clone(&state);
        let result = tokio::task::spawn_blocking(move || {
            clean_dirty_partitions(&pass_state, &mut progress);
            progress
        })
        .await;
        match result {
            Ok(back) => progress = back,
            Err(error) => {
                warn!(%error, "cleaner task failed");
                progress = CleanerState::new();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::BytesMut;
    use kafka_protocol::records::{Compression, TimestampType};

    use std::cell::Cell;

    use super::*;
    use crate::config::BrokerConfig;

    const NEVER: &dyn Fn() -> bool = &|| false;

    /// One round from the log start with the default key map.
    fn clean(partition: &Partition) -> CleanStats {
        let limits = MapLimits::from_config(&BrokerConfig::default());
        let outcome = clean_partition(partition, now_ms(), limits, 0, NEVER).unwrap();
        assert!(outcome.finished);
        outcome.stats
    }

    /// A key map for `keys` keys a pass.
    fn tiny(keys: u64) -> MapLimits {
        MapLimits {
            buffer_bytes: (keys + 1) * crate::storage::offset_map::SLOT_BYTES,
            load_factor: 1.0,
        }
    }

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
        let stats = clean(&partition);
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
        assert_eq!(clean(&reopened).segments_rewritten, 0);
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
        clean(&reopened);
        let cleaned = read_all(&reopened);
        drop(reopened);
        invalidate_index(&pdir, base).unwrap();
        let reopened = Partition::open(dir.path(), "t", uuid::Uuid::nil(), 0, config()).unwrap();
        assert_eq!(read_all(&reopened), cleaned);
        assert_eq!(cleaned, expected_after_cleaning(&before));
    }

    /// `keys` keys written `rounds` times in batches of ten, every seventh key deleted in the
    /// last round, then a filler batch that seals the rest.
    fn keyed_partition(dir: &Path, keys: usize, rounds: usize) -> Partition {
        let partition = Partition::create(dir, "t", uuid::Uuid::nil(), 0, config()).unwrap();
        let mut records: Vec<(String, Option<String>)> = Vec::new();
        for round in 0..rounds {
            for key in 0..keys {
                let value = (round + 1 < rounds || key % 7 != 0)
                    .then(|| format!("v{round}-{key}-{}", "x".repeat(40)));
                records.push((format!("k{key}"), value));
            }
        }
        for chunk in records.chunks(10) {
            let chunk: Vec<(&str, Option<&str>)> = chunk
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            partition.append(&batch(&chunk)).unwrap();
        }
        let filler = "f".repeat(1000);
        partition
            .append(&batch(&[("filler", Some(&filler))]))
            .unwrap();
        partition
    }

    /// Nothing a cleaner may not drop is gone: the newest value of every key is there at its
    /// offset, and no key whose newest record is a tombstone shows an older value.
    fn assert_nothing_lost(
        before: &[(i64, String, Option<String>)],
        after: &[(i64, String, Option<String>)],
    ) {
        let mut newest: BTreeMap<&str, (i64, &Option<String>)> = BTreeMap::new();
        for (offset, key, value) in before {
            newest.insert(key, (*offset, value));
        }
        let after_set: std::collections::HashSet<_> = after.iter().collect();
        for (key, (offset, value)) in &newest {
            if value.is_some() {
                let record = (*offset, key.to_string(), (*value).clone());
                assert!(after_set.contains(&record), "lost {record:?}");
            }
        }
        // A deleted key may keep older records only while its tombstone is there.
        for (offset, key, _) in after {
            let (newest_offset, newest_value) = newest[key.as_str()];
            if newest_value.is_none() {
                let tombstone = (newest_offset, key.clone(), None);
                assert!(
                    after_set.contains(&tombstone),
                    "deleted key {key} came back at {offset}"
                );
            }
        }
    }

    #[test]
    fn cleaning_in_many_small_passes_ends_where_one_pass_does() {
        let dir = tempfile::tempdir().unwrap();
        let partition = keyed_partition(dir.path(), 100, 3);
        let before = read_all(&partition);
        let outcome = clean_partition(&partition, now_ms(), tiny(12), 0, NEVER).unwrap();
        assert!(outcome.finished);
        // 100 keys, a dozen a pass: at least nine passes (the last round's keys come again).
        assert!(outcome.stats.passes >= 9, "{:?}", outcome.stats);
        assert!(outcome.stats.map_bytes <= 13 * 24, "{:?}", outcome.stats);
        let after = read_all(&partition);
        assert_eq!(after, expected_after_cleaning(&before));
        let snapshot = partition.compaction_snapshot();
        assert_eq!(outcome.clean_to, snapshot.active.base_offset);
        // The next round starts where this one ended and finds nothing to do.
        let again =
            clean_partition(&partition, now_ms(), tiny(12), outcome.clean_to, NEVER).unwrap();
        assert_eq!(again.stats.segments_rewritten, 0, "{:?}", again.stats);
        assert_eq!(again.stats.passes, 1);
    }

    #[test]
    fn new_records_after_a_round_are_cleaned_from_where_it_ended() {
        let dir = tempfile::tempdir().unwrap();
        let partition = keyed_partition(dir.path(), 50, 2);
        let first = clean_partition(&partition, now_ms(), tiny(8), 0, NEVER).unwrap();
        // Half the keys again, and something to seal them.
        let value = format!("late-{}", "y".repeat(40));
        for key in (0..50).step_by(2).collect::<Vec<_>>().chunks(10) {
            let names: Vec<String> = key.iter().map(|k| format!("k{k}")).collect();
            let records: Vec<(&str, Option<&str>)> = names
                .iter()
                .map(|k| (k.as_str(), Some(value.as_str())))
                .collect();
            partition.append(&batch(&records)).unwrap();
        }
        let filler = "g".repeat(1000);
        partition
            .append(&batch(&[("filler2", Some(&filler))]))
            .unwrap();
        let before = read_all(&partition);
        let second = clean_partition(&partition, now_ms(), tiny(8), first.clean_to, NEVER).unwrap();
        assert!(second.finished && second.stats.segments_rewritten > 0);
        assert_eq!(read_all(&partition), expected_after_cleaning(&before));
    }

    /// A crash between any two segment swaps of a multi-pass round (the round stopped there,
    /// the partition reopened from disk) loses nothing, and the next round, which starts from
    /// the log start after a restart, finishes the job.
    #[test]
    fn a_round_stopped_before_any_segment_loses_nothing() {
        let reference_dir = tempfile::tempdir().unwrap();
        let reference = keyed_partition(reference_dir.path(), 40, 3);
        let before = read_all(&reference);
        let expected = expected_after_cleaning(&before);
        let mut stops = 0;
        for allowed in (0..).step_by(5) {
            let dir = tempfile::tempdir().unwrap();
            let partition = keyed_partition(dir.path(), 40, 3);
            let asked = Cell::new(0);
            let stop = || {
                asked.set(asked.get() + 1);
                asked.get() > allowed
            };
            let outcome = clean_partition(&partition, now_ms(), tiny(10), 0, &stop).unwrap();
            partition.close().unwrap();
            drop(partition);
            let reopened =
                Partition::open(dir.path(), "t", uuid::Uuid::nil(), 0, config()).unwrap();
            assert_nothing_lost(&before, &read_all(&reopened));
            let rest = clean_partition(&reopened, now_ms(), tiny(10), 0, NEVER).unwrap();
            assert!(rest.finished);
            assert_eq!(read_all(&reopened), expected);
            if outcome.finished {
                break;
            }
            stops += 1;
        }
        assert!(stops >= 10, "the round was stopped at {stops} places only");
    }
}
