//! Retention for `cleanup.policy=delete`: whole sealed segments are deleted, oldest first,
//! once their newest record is older than `retention.ms` or while the partition without them
//! is still at least `retention.bytes` large (Kafka's two rules). The active segment is never
//! deleted. The log start offset moves to the first segment left, so ListOffsets(earliest)
//! reports it and a Fetch below it gets OFFSET_OUT_OF_RANGE. The broker runs this every
//! `log_retention_check_interval_ms` (see [`run_retention`]).

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use super::config::LogConfig;
use super::partition::now_ms;
use crate::server::BrokerState;

/// What retention removed (or would remove) from one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Deleted {
    pub(crate) segments: usize,
    pub(crate) bytes: u64,
    /// The base offset of the first segment kept.
    pub(crate) new_log_start_offset: i64,
}

/// Which of the oldest segments retention deletes. `segments` yields (base offset, size,
/// newest timestamp) in offset order, the active segment last.
pub(crate) fn segments_to_delete(
    config: &LogConfig,
    segments: impl Iterator<Item = (i64, u64, i64)>,
    now_ms: i64,
) -> Deleted {
    let segments: Vec<(i64, u64, i64)> = segments.collect();
    let mut deleted = Deleted::default();
    if !config.delete || segments.len() < 2 {
        return deleted;
    }
    let sealed = &segments[..segments.len() - 1];
    let by_time = if config.retention_ms >= 0 {
        sealed
            .iter()
            .take_while(|(_, _, max_ts)| {
                *max_ts >= 0 && now_ms.saturating_sub(*max_ts) > config.retention_ms
            })
            .count()
    } else {
        0
    };
    let by_size = if config.retention_bytes >= 0 {
        let total: u64 = segments.iter().map(|(_, size, _)| size).sum();
        let mut excess = total as i64 - config.retention_bytes;
        sealed
            .iter()
            .take_while(|(_, size, _)| {
                let fits = excess - *size as i64 >= 0;
                if fits {
                    excess -= *size as i64;
                }
                fits
            })
            .count()
    } else {
        0
    };
    let count = by_time.max(by_size);
    deleted.segments = count;
    deleted.bytes = sealed[..count].iter().map(|(_, size, _)| size).sum();
    deleted.new_log_start_offset = segments[count].0;
    deleted
}

/// Applies retention to every partition now.
pub(crate) fn enforce_all(state: &BrokerState) {
    let now = now_ms();
    for partition in state.logs.all_partitions() {
        match partition.enforce_retention(now) {
            Ok(deleted) if deleted.segments > 0 => info!(
                topic = %partition.topic,
                partition = partition.index,
                segments = deleted.segments,
                bytes = deleted.bytes,
                log_start_offset = deleted.new_log_start_offset,
                "retention deleted old segments"
            ),
            Ok(_) => {}
            Err(error) => warn!(
                topic = %partition.topic,
                partition = partition.index,
                %error,
                "retention could not delete segments"
            ),
        }
    }
}

/// Kafka's delay before the first retention pass after start (`InitialTaskDelayMs`).
const INITIAL_DELAY: Duration = Duration::from_secs(30);

/// The background retention task: a first pass 30 s after start (or after `interval` if that
/// is shorter), as Kafka does, then every `interval` until shutdown.
pub(crate) async fn run_retention(state: Arc<BrokerState>, interval: Duration) {
    let first = tokio::time::Instant::now() + INITIAL_DELAY.min(interval);
    let mut ticker = tokio::time::interval_at(first, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let state = Arc::clone(&state);
        if let Err(error) = tokio::task::spawn_blocking(move || enforce_all(&state)).await {
            warn!(%error, "retention task failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use std::collections::BTreeMap;

    fn config(policy: &str, retention_ms: i64, retention_bytes: i64) -> LogConfig {
        let overrides = BTreeMap::from([
            ("cleanup.policy".to_owned(), policy.to_owned()),
            ("retention.ms".to_owned(), retention_ms.to_string()),
            ("retention.bytes".to_owned(), retention_bytes.to_string()),
        ]);
        LogConfig::resolve(&BrokerConfig::default(), &overrides)
    }

    // (base, size, newest timestamp); the last one is active.
    const SEGMENTS: [(i64, u64, i64); 4] = [
        (0, 100, 1_000),
        (10, 100, 2_000),
        (20, 100, 3_000),
        (30, 50, 9_000),
    ];

    #[test]
    fn time_retention_deletes_the_old_prefix_only() {
        let d = segments_to_delete(&config("delete", 1_500, -1), SEGMENTS.into_iter(), 4_000);
        assert_eq!((d.segments, d.bytes, d.new_log_start_offset), (2, 200, 20));
    }

    #[test]
    fn size_retention_keeps_at_least_the_limit() {
        let d = segments_to_delete(&config("delete", -1, 160), SEGMENTS.into_iter(), 4_000);
        // 350 bytes in all: dropping 100 leaves 250, dropping 200 leaves 150 < 160: one goes.
        assert_eq!((d.segments, d.new_log_start_offset), (1, 10));
        let d = segments_to_delete(&config("delete", -1, 0), SEGMENTS.into_iter(), 4_000);
        assert_eq!(d.segments, 3, "never the active segment");
    }

    #[test]
    fn compacted_only_and_unlimited_topics_keep_everything() {
        let d = segments_to_delete(&config("compact", 1, 0), SEGMENTS.into_iter(), 1_000_000);
        assert_eq!(d.segments, 0);
        let d = segments_to_delete(&config("delete", -1, -1), SEGMENTS.into_iter(), 1_000_000);
        assert_eq!(d.segments, 0);
        let d = segments_to_delete(
            &config("compact,delete", 1, -1),
            SEGMENTS.into_iter(),
            1_000_000,
        );
        assert_eq!(d.segments, 3);
    }
}
