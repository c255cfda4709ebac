//! OffsetFetch: where a group left off.

use std::collections::BTreeMap;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::rebalance::NONE;
use super::store::CommittedOffset;
use super::GroupCoordinator;

/// The topics asked for, each with its partitions; `None` for all.
type AskedTopics = Option<Vec<(String, Vec<i32>)>>;

/// One group's answer: per topic, per partition, the committed offset (if any).
type GroupOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

impl GroupCoordinator {
    /// Handles OffsetFetch (v1-v9). Partitions without a committed offset answer offset -1 and
    /// no error; asking for no topics (null) returns everything the group committed.
    pub async fn offset_fetch(
        &self,
        version: i16,
        request: OffsetFetchRequest,
    ) -> OffsetFetchResponse {
        // Before v8 one group per request; since v8 a list.
        let asked: Vec<(GroupId, AskedTopics)> = if version >= 8 {
            request
                .groups
                .into_iter()
                .map(|g| {
                    let topics = g.topics.map(|topics| {
                        topics
                            .into_iter()
                            .map(|t| (t.name.0.to_string(), t.partition_indexes))
                            .collect()
                    });
                    (g.group_id, topics)
                })
                .collect()
        } else {
            let topics = request.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            vec![(request.group_id, topics)]
        };
        let answers: Vec<(GroupId, GroupOffsets)> = {
            let state = self.state.lock();
            asked
                .into_iter()
                .map(|(group_id, topics)| {
                    let committed = state.groups.get(group_id.0.as_str()).map(|g| &g.offsets);
                    (group_id, lookup(committed, topics))
                })
                .collect()
        };

        if version >= 8 {
            let groups = answers
                .into_iter()
                .map(|(group_id, topics)| {
                    OffsetFetchResponseGroup::default()
                        .with_group_id(group_id)
                        .with_error_code(NONE)
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(topic, partitions)| {
                                    OffsetFetchResponseTopics::default()
                                        .with_name(TopicName(StrBytes::from_string(topic)))
                                        .with_partitions(
                                            partitions
                                                .into_iter()
                                                .map(|(index, offset)| {
                                                    let (o, epoch, metadata) = fields(offset);
                                                    OffsetFetchResponsePartitions::default()
                                                        .with_partition_index(index)
                                                        .with_committed_offset(o)
                                                        .with_committed_leader_epoch(epoch)
                                                        .with_metadata(Some(metadata))
                                                })
                                                .collect(),
                                        )
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetFetchResponse::default().with_groups(groups)
        } else {
            let (_, topics) = answers.into_iter().next().expect("one group");
            let topics = topics
                .into_iter()
                .map(|(topic, partitions)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic)))
                        .with_partitions(
                            partitions
                                .into_iter()
                                .map(|(index, offset)| {
                                    let (o, epoch, metadata) = fields(offset);
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(index)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(if version >= 5 {
                                            epoch
                                        } else {
                                            -1
                                        })
                                        .with_metadata(Some(metadata))
                                        .with_error_code(NONE)
                                })
                                .collect(),
                        )
                })
                .collect();
            OffsetFetchResponse::default()
                .with_topics(topics)
                .with_error_code(NONE)
        }
    }
}

fn lookup(
    committed: Option<&BTreeMap<(String, i32), CommittedOffset>>,
    topics: AskedTopics,
) -> GroupOffsets {
    match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|p| {
                        let offset = committed.and_then(|c| c.get(&(topic.clone(), p)).cloned());
                        (p, offset)
                    })
                    .collect();
                (topic, partitions)
            })
            .collect(),
        None => {
            let mut by_topic: GroupOffsets = Vec::new();
            for ((topic, partition), offset) in committed.into_iter().flatten() {
                match by_topic.last_mut() {
                    Some((last, partitions)) if last == topic => {
                        partitions.push((*partition, Some(offset.clone())));
                    }
                    _ => by_topic.push((topic.clone(), vec![(*partition, Some(offset.clone()))])),
                }
            }
            by_topic
        }
    }
}

/// Offset, leader epoch and metadata to answer; -1, -1 and "" when nothing was committed.
fn fields(offset: Option<CommittedOffset>) -> (i64, i32, StrBytes) {
    match offset {
        Some(o) => (o.offset, o.leader_epoch, StrBytes::from_string(o.metadata)),
        None => (-1, -1, StrBytes::default()),
    }
}
