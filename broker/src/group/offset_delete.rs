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

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    use kafka_protocol::messages::GroupId;

    use super::super::testing::*;
    use super::*;

    fn request(group: &str, partitions: &[(&str, i32)]) -> OffsetDeleteRequest {
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(str(group)))
            .with_topics(
                partitions
                    .iter()
                    .map(|(topic, p)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(TopicName(str(topic)))
                            .with_partitions(vec![
                                OffsetDeleteRequestPartition::default().with_partition_index(*p)
                            ])
                    })
                    .collect(),
            )
    }

    fn errors(r: &OffsetDeleteResponse) -> Vec<i16> {
        r.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn subscribed_topics_are_protected_while_the_group_is_active() {
        let f = Fixture::new(test_config());
        let (a, _b) = f.stable_pair().await;
        f.c()
            .offset_commit(
                9,
                commit_request(&a, 1, &[(ORDERS, 0, 5), (PAYMENTS, 0, 6)]),
            )
            .await;
        let r = f
            .c()
            .offset_delete(
                0,
                request(GROUP, &[(ORDERS, 0), (PAYMENTS, 0), ("nope", 0)]),
            )
            .await;
        assert_eq!(r.error_code, 0);
        assert_eq!(
            errors(&r),
            vec![
                ResponseError::GroupSubscribedToTopic.code(),
                0,
                ResponseError::UnknownTopicOrPartition.code()
            ]
        );
        let offsets = f.c().state.lock().groups[GROUP].offsets.clone();
        assert!(offsets.contains_key(&(ORDERS.to_owned(), 0)));
        assert!(!offsets.contains_key(&(PAYMENTS.to_owned(), 0)));
        let f = f.restart().await;
        let offsets = f.c().state.lock().groups[GROUP].offsets.clone();
        assert!(!offsets.contains_key(&(PAYMENTS.to_owned(), 0)), "durable");
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_group_is_not_found() {
        let f = Fixture::new(test_config());
        let r = f
            .c()
            .offset_delete(0, request("nope", &[(ORDERS, 0)]))
            .await;
        assert_eq!(r.error_code, ResponseError::GroupIdNotFound.code());
        assert!(r.topics.is_empty());
    }
}
