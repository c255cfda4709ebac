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
