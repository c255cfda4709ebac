//! OffsetCommit: a member (or a standalone consumer) stores its position, durably.

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, TopicName};
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::rebalance::{validate_current_member, NONE};
use super::state::{Group, GroupState};
use super::store::{CommittedOffset, StoreRecord};
use super::GroupCoordinator;

/// One partition of the request with the error decided for it, if any.
struct PartitionCommit {
    topic: usize,
    partition: i32,
    error: i16,
    offset: Option<CommittedOffset>,
}

impl GroupCoordinator {
    /// Handles OffsetCommit (v2-v9). The answer is sent once the offsets are fsync'd.
    ///
    /// Members of a group must give their member id and the current generation; a commit with
    /// generation -1 and no member id (a standalone consumer, an admin tool) is accepted only
    /// while the group has no members.
    pub async fn offset_commit(
        &self,
        version: i16,
        request: OffsetCommitRequest,
    ) -> OffsetCommitResponse {
        let group_id = request.group_id.0.to_string();
        let member_id = request.member_id.to_string();
        let instance = if version >= 7 {
            request.group_instance_id.as_ref().map(|s| s.to_string())
        } else {
            None
        };
        let generation = request.generation_id_or_member_epoch;
        let now_ms = self.clock.now_ms();
        // v2-v4 may ask for a retention of their own; -1 means the broker's.
        let expire_timestamp_ms = (version <= 4 && request.retention_time_ms >= 0)
            .then(|| now_ms.saturating_add(request.retention_time_ms));

        let mut commits = Vec::new();
        for (topic_index, topic) in request.topics.iter().enumerate() {
            let partitions = self.topics.partition_count(topic.name.0.as_str());
            for partition in &topic.partitions {
                let exists =
                    partitions.is_some_and(|count| (0..count).contains(&partition.partition_index));
                let metadata = partition
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                let (error, offset) = if !exists {
                    (ResponseError::UnknownTopicOrPartition.code(), None)
                } else if metadata.len() > self.config.offset_metadata_max_bytes {
                    (ResponseError::OffsetMetadataTooLarge.code(), None)
                } else {
                    let offset = CommittedOffset {
                        offset: partition.committed_offset,
                        leader_epoch: if version >= 6 {
                            partition.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata,
                        commit_timestamp_ms: now_ms,
                        expire_timestamp_ms,
                    };
                    (NONE, Some(offset))
                };
                commits.push(PartitionCommit {
                    topic: topic_index,
                    partition: partition.partition_index,
                    error,
                    offset,
                });
            }
        }

        let written = if commits.iter().any(|c| c.offset.is_some()) {
            let pending = {
                let mut state = self.state.lock();
                let group_error = self.validate_commit_locked(
                    &mut state.groups,
                    &group_id,
                    &member_id,
                    instance.as_deref(),
                    generation,
                    version,
                );
                match group_error {
                    Err(error) => {
                        for commit in &mut commits {
                            if commit.offset.take().is_some() {
                                commit.error = error;
                            }
                        }
                        None
                    }
                    Ok(()) => {
                        let group = state.groups.get_mut(&group_id).expect("validated");
                        let mut records = Vec::new();
                        for commit in &commits {
                            if let Some(offset) = &commit.offset {
                                let topic = request.topics[commit.topic].name.0.to_string();
                                group
                                    .offsets
                                    .insert((topic.clone(), commit.partition), offset.clone());
                                records.push(StoreRecord::Offset {
                                    group: group_id.clone(),
                                    topic,
                                    partition: commit.partition,
                                    offset: offset.clone(),
                                });
                            }
                        }
                        Some(self.store.append(records))
                    }
                }
            };
            self.timers_changed.notify_one();
            match pending {
                Some(done) => match done.await {
                    Ok(Ok(())) => true,
                    Ok(Err(error)) => {
                        tracing::error!(group = %group_id, %error, "offset commit not written");
                        false
                    }
                    Err(_) => false,
                },
                None => true,
            }
        } else {
            true
        };
        if !written {
            for commit in &mut commits {
                if commit.offset.is_some() {
                    commit.error = ResponseError::UnknownServerError.code();
                }
            }
        }

        let mut topics: Vec<OffsetCommitResponseTopic> = request
            .topics
            .iter()
            .map(|t| OffsetCommitResponseTopic::default().with_name(TopicName(t.name.0.clone())))
            .collect();
        for commit in commits {
            topics[commit.topic].partitions.push(
                OffsetCommitResponsePartition::default()
                    .with_partition_index(commit.partition)
                    .with_error_code(commit.error),
            );
        }
        OffsetCommitResponse::default().with_topics(topics)
    }

    /// Whether this commit may go to the group (Kafka's `validateOffsetCommit`); creates the
    /// group of a standalone consumer.
    fn validate_commit_locked(
        &self,
        groups: &mut std::collections::HashMap<String, Group>,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        version: i16,
    ) -> Result<(), i16> {
        let group = match groups.get_mut(group_id) {
            Some(group) => group,
            None if generation < 0 => {
                // A consumer that manages its partitions itself (or an admin tool) keeps its
                // offsets in a group of its own without members.
                groups
                    .entry(group_id.to_owned())
                    .or_insert_with(|| Group::new(group_id.to_owned(), self.clock.now_ms()))
            }
            None if version >= 9 => return Err(ResponseError::GroupIdNotFound.code()),
            None => return Err(ResponseError::IllegalGeneration.code()),
        };
        if group.is(GroupState::Dead) {
            return Err(ResponseError::CoordinatorNotAvailable.code());
        }
        if generation < 0 && group.is(GroupState::Empty) {
            return Ok(());
        }
        if generation >= 0 || !member_id.is_empty() || instance.is_some() {
            validate_current_member(group, member_id, instance).map_err(|e| e.code())?;
            if generation != group.generation_id {
                return Err(ResponseError::IllegalGeneration.code());
            }
        } else if !group.is(GroupState::Empty) {
            // Without a member id and generation, only a group without members takes commits.
            return Err(ResponseError::UnknownMemberId.code());
        }
        match group.state {
            // The member has its new generation but not its assignment yet.
            GroupState::CompletingRebalance => Err(ResponseError::RebalanceInProgress.code()),
            GroupState::Stable | GroupState::PreparingRebalance => {
                // A commit shows the member is alive; during a rebalance the heartbeat answer
                // tells it to rejoin.
                self.schedule_heartbeat(group, member_id, Instant::now());
                Ok(())
            }
            GroupState::Empty | GroupState::Dead => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
    };
    use kafka_protocol::messages::OffsetFetchRequest;

    use super::super::state::GroupState;
    use super::super::testing::*;
    use super::*;

    async fn fetch(f: &Fixture, partitions: &[i32]) -> Vec<(i32, i64, String)> {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(str(GROUP)))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(str(ORDERS)))
                .with_partition_indexes(partitions.to_vec())]));
        let response = f.c().offset_fetch(7, request).await;
        response.topics[0]
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    p.committed_offset,
                    p.metadata.as_deref().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn members_commit_with_their_generation_and_read_it_back() {
        let f = Fixture::new(test_config());
        let (a, b) = f.stable_pair().await;
        assert_eq!(commit_errors(&f.commit(&a, 1, 0, 42).await), vec![0]);
        assert_eq!(commit_errors(&f.commit(&b, 1, 1, 7).await), vec![0]);
        assert_eq!(
            fetch(&f, &[0, 1, 2]).await,
            vec![
                (0, 42, "meta".to_owned()),
                (1, 7, "meta".to_owned()),
                (2, -1, String::new())
            ]
        );
        // Stale generation, unknown member, standalone commit while the group has members.
        assert_eq!(
            commit_errors(&f.commit(&a, 0, 0, 1).await),
            vec![ResponseError::IllegalGeneration.code()]
        );
        assert_eq!(
            commit_errors(&f.commit("ghost", 1, 0, 1).await),
            vec![ResponseError::UnknownMemberId.code()]
        );
        assert_eq!(
            commit_errors(&f.commit("", -1, 0, 1).await),
            vec![ResponseError::UnknownMemberId.code()]
        );
        assert_eq!(
            fetch(&f, &[0]).await[0].1,
            42,
            "rejected commits change nothing"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn commits_keep_a_member_alive() {
        let f = Fixture::new(test_config());
        let (a, b) = f.stable_pair().await;
        for i in 0..10 {
            tokio::time::sleep(std::time::Duration::from_millis(4_000)).await;
            assert_eq!(commit_errors(&f.commit(&a, 1, 0, i).await), vec![0]);
            assert_eq!(f.heartbeat(&b, 1).await, 0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn commit_during_a_rebalance_is_accepted_but_not_between_join_and_sync() {
        let f = Fixture::new(test_config());
        let (a, b) = f.stable_pair().await;
        let _leader_rejoins = f.spawn_join("a", 9, range_join(&a));
        f.wait_for("rebalancing", |g| g.is(GroupState::PreparingRebalance))
            .await;
        assert_eq!(commit_errors(&f.commit(&b, 1, 0, 5).await), vec![0]);
        let rejoined = f.c().join_group(&client("b"), 9, range_join(&b)).await;
        assert_eq!(f.group_state(), Some(GroupState::CompletingRebalance));
        assert_eq!(
            commit_errors(&f.commit(&b, rejoined.generation_id, 0, 6).await),
            vec![ResponseError::RebalanceInProgress.code()]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn standalone_consumers_commit_into_a_group_without_members() {
        let f = Fixture::new(test_config());
        assert_eq!(commit_errors(&f.commit("", -1, 3, 100).await), vec![0]);
        assert_eq!(f.group_state(), Some(GroupState::Empty));
        assert_eq!(fetch(&f, &[3]).await[0].1, 100);
        // A member id for a group that does not exist: v9 says GROUP_ID_NOT_FOUND, older
        // versions ILLEGAL_GENERATION.
        let mut request = commit_request("m", 1, &[(ORDERS, 0, 1)]);
        request.group_id = GroupId(str("no-such-group"));
        let r = f.c().offset_commit(9, request.clone()).await;
        assert_eq!(
            commit_errors(&r),
            vec![ResponseError::GroupIdNotFound.code()]
        );
        let r = f.c().offset_commit(8, request).await;
        assert_eq!(
            commit_errors(&r),
            vec![ResponseError::IllegalGeneration.code()]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_partitions_and_oversized_metadata_fail_alone() {
        let f = Fixture::new(test_config());
        let mut request = commit_request(
            "",
            -1,
            &[
                (ORDERS, 0, 1),
                (ORDERS, 6, 1),
                ("nope", 0, 1),
                (PAYMENTS, 2, 9),
            ],
        );
        request.topics[0].partitions[0].committed_metadata = Some(str(&"x".repeat(4097)));
        let r = f.c().offset_commit(9, request).await;
        assert_eq!(
            commit_errors(&r),
            vec![
                ResponseError::OffsetMetadataTooLarge.code(),
                ResponseError::UnknownTopicOrPartition.code(),
                ResponseError::UnknownTopicOrPartition.code(),
                0
            ]
        );
        // Only unknown topics: no group is created.
        let mut request = commit_request("", -1, &[("nope", 0, 1)]);
        request.group_id = GroupId(str("other"));
        f.c().offset_commit(9, request).await;
        assert!(!f.c().state.lock().groups.contains_key("other"));
    }

    #[tokio::test(start_paused = true)]
    async fn committed_offsets_and_metadata_survive_a_restart() {
        let f = Fixture::new(test_config());
        let (a, _b) = f.stable_pair().await;
        let mut request = commit_request(&a, 1, &[(ORDERS, 0, 42), (ORDERS, 5, 9)]);
        request.topics[0].partitions[1].committed_leader_epoch = 3;
        request.topics[0].partitions[1].committed_metadata = Some(str("{\"k\":1}"));
        assert_eq!(
            commit_errors(&f.c().offset_commit(9, request).await),
            vec![0, 0]
        );
        let f = f.restart().await;
        assert_eq!(
            fetch(&f, &[0, 5]).await,
            vec![(0, 42, "meta".to_owned()), (5, 9, "{\"k\":1}".to_owned())]
        );
        let v9 = f
            .c()
            .offset_fetch(
                9,
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(str(GROUP)))
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(TopicName(str(ORDERS)))
                        .with_partition_indexes(vec![5])]))]),
            )
            .await;
        assert_eq!(
            v9.groups[0].topics[0].partitions[0].committed_leader_epoch,
            3
        );
    }

    #[tokio::test(start_paused = true)]
    async fn acknowledged_commits_survive_a_crash() {
        let f = Fixture::new(test_config());
        for offset in 0..20 {
            assert_eq!(commit_errors(&f.commit("", -1, 1, offset).await), vec![0]);
        }
        // No close: the coordinator and its writer are simply dropped, as in a SIGKILL; only
        // what was acknowledged is promised.
        let f = f.crash();
        assert_eq!(fetch(&f, &[1]).await[0].1, 19);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stable_group_comes_back_after_a_restart_without_rebalancing() {
        let f = Fixture::new(test_config());
        let (a, b) = f.stable_pair().await;
        let f = f.restart().await;
        assert_eq!(f.group_state(), Some(GroupState::Stable));
        assert_eq!(f.heartbeat(&a, 1).await, 0);
        assert_eq!(f.heartbeat(&b, 1).await, 0);
        let sync = f.c().sync_group(3, sync_request(&b, 1, &[])).await;
        assert_eq!(sync.assignment.as_ref(), b"for b");
        // Members that do not come back are evicted after their session timeout.
        tokio::time::sleep(std::time::Duration::from_millis(SESSION_MS as u64 + 1)).await;
        f.wait_for("rebalance after eviction", |g| !g.is(GroupState::Stable))
            .await;
    }
}
