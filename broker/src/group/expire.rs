//! The coordinator's clockwork: session, rebalance, pending-member and sync timers, and the
//! periodic expiry of old committed offsets (`offsets.retention.minutes`).

use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::state::{Group, GroupState};
use super::store::StoreRecord;
use super::{GroupCoordinator, CONSUMER_PROTOCOL_TYPE};

impl GroupCoordinator {
    /// Runs the timers until `cancel` fires. Spawn it once per coordinator.
    pub async fn run_timers(self: Arc<Self>, cancel: CancellationToken) {
        let mut next_sweep = Instant::now() + self.config.offsets_retention_check_interval;
        loop {
            let next_timer = {
                let state = self.state.lock();
                state.groups.values().filter_map(Group::next_deadline).min()
            };
            let wake = next_timer.map_or(next_sweep, |t| t.min(next_sweep));
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep_until(wake) => {}
                () = self.timers_changed.notified() => {}
            }
            let now = Instant::now();
            self.fire_timers(now);
            if now >= next_sweep {
                self.expire_offsets();
                next_sweep = now + self.config.offsets_retention_check_interval;
            }
        }
    }

    /// Fires every timer due at `now`.
    pub(crate) fn fire_timers(&self, now: Instant) {
        let mut state = self.state.lock();
        for group in state.groups.values_mut() {
            if group.next_deadline().is_some_and(|d| d <= now) {
                self.fire_group_timers(group, now);
            }
        }
    }

    /// Deletes committed offsets past their retention and groups left with neither members nor
    /// offsets (Kafka's `cleanupGroupMetadata`):
    /// - a group that had members and is now empty loses all its offsets once it has been
    ///   empty for the retention period;
    /// - a group that never had members (standalone consumers) loses each offset once it is
    ///   that old;
    /// - a stable consumer group loses offsets of topics it no longer subscribes to once they
    ///   are that old;
    /// - an offset committed with an explicit retention (OffsetCommit v2-v4) expires then.
    pub(crate) fn expire_offsets(&self) {
        let now_ms = self.clock.now_ms();
        let retention_ms = self.config.offsets_retention.as_millis() as i64;
        let mut records = Vec::new();
        let mut state = self.state.lock();
        let mut removed_groups = Vec::new();
        for group in state.groups.values_mut() {
            let expired = expired_offsets(group, now_ms, retention_ms);
            if !expired.is_empty() {
                tracing::info!(
                    group = %group.group_id,
                    partitions = expired.len(),
                    "removed expired committed offsets"
                );
            }
            for key in expired {
                group.offsets.remove(&key);
                records.push(StoreRecord::OffsetTombstone {
                    group: group.group_id.clone(),
                    topic: key.0,
                    partition: key.1,
                });
            }
            if group.is(GroupState::Empty)
                && group.offsets.is_empty()
                && group.pending_members.is_empty()
            {
                removed_groups.push(group.group_id.clone());
            }
        }
        for group_id in removed_groups {
            state.groups.remove(&group_id);
            tracing::info!(group = %group_id, "removed group with no members and no offsets");
            records.push(StoreRecord::GroupTombstone { group: group_id });
        }
        if !records.is_empty() {
            // Not awaited: an expiry lost in a crash simply happens again at the next sweep.
            self.store.append_unacknowledged(records);
        }
    }
}

fn expired_offsets(group: &Group, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
    let expired_since = |base_ms: i64, expire: Option<i64>| match expire {
        Some(at) => now_ms >= at,
        None => now_ms.saturating_sub(base_ms) >= retention_ms,
    };
    match (&group.protocol_type, group.state) {
        (Some(_), GroupState::Empty) => group
            .offsets
            .iter()
            .filter(|(_, o)| expired_since(group.state_timestamp_ms, o.expire_timestamp_ms))
            .map(|(k, _)| k.clone())
            .collect(),
        (Some(protocol), GroupState::Stable) if protocol == CONSUMER_PROTOCOL_TYPE => {
            let Some(subscribed) = &group.subscribed_topics else {
                return Vec::new();
            };
            group
                .offsets
                .iter()
                .filter(|((topic, _), o)| {
                    !subscribed.contains(topic)
                        && expired_since(o.commit_timestamp_ms, o.expire_timestamp_ms)
                })
                .map(|(k, _)| k.clone())
                .collect()
        }
        (None, _) => group
            .offsets
            .iter()
            .filter(|(_, o)| expired_since(o.commit_timestamp_ms, o.expire_timestamp_ms))
            .map(|(k, _)| k.clone())
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::*;
    use super::*;

    fn config() -> crate::group::GroupConfig {
        crate::group::GroupConfig {
            offsets_retention: Duration::from_secs(3_600),
            offsets_retention_check_interval: Duration::from_secs(60),
            ..test_config()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn offsets_of_an_empty_group_expire_after_the_retention_then_the_group_goes() {
        let f = Fixture::new(config());
        let (a, b) = f.stable_pair().await;
        f.commit(&a, 1, 0, 10).await;
        // While members are active nothing expires, however old.
        for _ in 0..(7_200 / 5) {
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(f.heartbeat(&a, 1).await, 0);
            assert_eq!(f.heartbeat(&b, 1).await, 0);
        }
        assert_eq!(f.c().state.lock().groups[GROUP].offsets.len(), 1);
        // Everyone leaves; the clock of retention starts now.
        tokio::time::sleep(Duration::from_millis(SESSION_MS as u64 + 1)).await;
        f.wait_for("empty", |g| g.is(GroupState::Empty)).await;
        tokio::time::sleep(Duration::from_secs(1_800)).await;
        assert_eq!(f.c().state.lock().groups[GROUP].offsets.len(), 1);
        tokio::time::sleep(Duration::from_secs(1_900)).await;
        assert_eq!(
            f.group_state(),
            None,
            "offsets expired and the group removed"
        );
        let f = f.restart().await;
        assert_eq!(f.group_state(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn standalone_offsets_expire_one_by_one_from_their_commit() {
        let f = Fixture::new(config());
        f.commit("", -1, 0, 1).await;
        tokio::time::sleep(Duration::from_secs(1_800)).await;
        f.commit("", -1, 1, 1).await;
        tokio::time::sleep(Duration::from_secs(1_900)).await;
        let offsets = f.c().state.lock().groups[GROUP].offsets.clone();
        assert_eq!(
            offsets.keys().cloned().collect::<Vec<_>>(),
            vec![(ORDERS.to_owned(), 1)]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn explicit_retention_of_old_commit_versions_is_honoured() {
        let f = Fixture::new(config());
        let request = commit_request("", -1, &[(ORDERS, 0, 1)]).with_retention_time_ms(120_000);
        assert_eq!(
            commit_errors(&f.c().offset_commit(2, request).await),
            vec![0]
        );
        tokio::time::sleep(Duration::from_secs(200)).await;
        assert_eq!(f.group_state(), None);
    }
}
