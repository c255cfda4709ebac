//! OffsetDelete: drop a group's committed offsets for some partitions.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse, TopicName};
use kafka_protocol::ResponseError;

use super::rebalance::NONE;
use super::state::GroupState;
use super::store::StoreRecord;
use super::{GroupCoordinator, CONSUMER_PROTOCOL_TYPE};

impl GroupCoordinator {
    /// Handles OffsetDelete (v0). Allowed for a group without members, and for the topics a
    /// consumer group does not subscribe to (`GROUP_SUBSCRIBED_TO_TOPIC` otherwise).
    pub async fn offset_delete(
        &self,
        _version: i16,
        request: OffsetDeleteRequest,
    ) -> OffsetDeleteResponse {
        let group_id = request.group_id.0.to_string();
        // (topic index, partition, error or None when eligible)
        let mut partitions: Vec<(usize, i32, Option<i16>)> = Vec::new();
        for (index, topic) in request.topics.iter().enumerate() {
            let count = self.topics.partition_count(topic.name.0.as_str());
            for partition in &topic.partitions {
                let exists = count.is_some_and(|c| (0..c).contains(&partition.partition_index));
                let error = (!exists).then_some(ResponseError::UnknownTopicOrPartition.code());
                partitions.push((index, partition.partition_index, error));
            }
        }

        let (group_error, pending) = {
            let mut state = self.state.lock();
            match state.groups.get_mut(&group_id) {
                None => (ResponseError::GroupIdNotFound.code(), None),
                Some(group) if group.is(GroupState::Dead) => {
                    (ResponseError::GroupIdNotFound.code(), None)
                }
                Some(group) => {
                    let consumer_group =
                        group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE);
                    if !group.is(GroupState::Empty) && !consumer_group {
                        (ResponseError::NonEmptyGroup.code(), None)
                    } else {
                        let mut records = Vec::new();
                        for (index, partition, error) in &mut partitions {
                            if error.is_some() {
                                continue;
                            }
                            let topic = request.topics[*index].name.0.to_string();
                            if !group.is(GroupState::Empty) && group.is_subscribed_to(&topic) {
                                *error = Some(ResponseError::GroupSubscribedToTopic.code());
                                continue;
                            }
                            *error = Some(NONE);
                            if group.offsets.remove(&(topic.clone(), *partition)).is_some() {
                                records.push(StoreRecord::OffsetTombstone {
                                    group: group_id.clone(),
                                    topic,
                                    partition: *partition,
                                });
                            }
                        }
                        let pending = (!records.is_empty()).then(|| self.store.append(records));
                        (NONE, pending)
                    }
                }
            }
        };
        let mut group_error = group_error;
        if let Some(done) = pending {
            if !matches!(done.await, Ok(Ok(()))) {
                group_error = ResponseError::UnknownServerError.code();
            }
        }
        if group_error != NONE {
            // With a group-level error there are no partition results.
            return OffsetDeleteResponse::default().with_error_code(group_error);
        }
        let mut topics: Vec<OffsetDeleteResponseTopic> = request
            .topics
            .iter()
            .map(|t| OffsetDeleteResponseTopic::default().with_name(TopicName(t.name.0.clone())))
            .collect();
        for (index, partition, error) in partitions {
            topics[index].partitions.push(
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(partition)
                    .with_error_code(error.unwrap_or(NONE)),
            );
        }
        OffsetDeleteResponse::default()
            .with_error_code(NONE)
            .with_topics(topics)
    }
}
