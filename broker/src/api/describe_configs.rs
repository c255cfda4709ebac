//! DescribeConfigs (key 32): topic configs (overrides and defaults) and the broker's own
//! settings (read-only: they come from the config file).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::config::BrokerConfig;
use crate::security::acl::AclOperation;
use crate::server::NODE_ID;
use crate::storage::config::TOPIC_CONFIGS;

/// Kafka's `ConfigResource.Type` codes.
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;

/// Kafka's `ConfigSource` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub(crate) enum ConfigSource {
    DynamicTopic = 1,
    StaticBroker = 4,
    Default = 5,
}

/// One config value with where it comes from.
#[derive(Debug)]
pub(crate) struct ConfigEntry {
    pub(crate) name: &'static str,
    pub(crate) value: String,
    pub(crate) source: ConfigSource,
    pub(crate) kind: i8,
    pub(crate) doc: &'static str,
    pub(crate) read_only: bool,
}

/// Every topic config with its effective value.
pub(crate) fn topic_config_entries(
    broker: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<ConfigEntry> {
    TOPIC_CONFIGS
        .iter()
        .map(|def| match overrides.get(def.name) {
            Some(value) => ConfigEntry {
                name: def.name,
                value: value.clone(),
                source: ConfigSource::DynamicTopic,
                kind: def.kind.code(),
                doc: def.doc,
                read_only: false,
            },
            None => ConfigEntry {
                name: def.name,
                value: (def.default)(broker),
                source: ConfigSource::Default,
                kind: def.kind.code(),
                doc: def.doc,
                read_only: false,
            },
        })
        .collect()
}

/// The broker's settings under their Kafka property names.
fn broker_config_entries(broker: &BrokerConfig) -> Vec<ConfigEntry> {
    let entry = |name: &'static str, value: String, kind: i8, doc: &'static str| ConfigEntry {
        name,
        value,
        source: ConfigSource::StaticBroker,
        kind,
        doc,
        read_only: true,
    };
    vec![
        entry(
            "auto.create.topics.enable",
            broker.auto_create_topics_enable.to_string(),
            1,
            "Create unknown topics on metadata requests.",
        ),
        entry(
            "num.partitions",
            broker.num_partitions.to_string(),
            3,
            "Default partition count.",
        ),
        entry(
            "log.segment.bytes",
            broker.log_segment_bytes.to_string(),
            3,
            "Default segment.bytes.",
        ),
        entry(
            "log.roll.ms",
            broker.log_roll_ms.to_string(),
            5,
            "Default segment.ms.",
        ),
        entry(
            "log.retention.ms",
            broker.log_retention_ms.to_string(),
            5,
            "Default retention.ms.",
        ),
        entry(
            "log.retention.bytes",
            broker.log_retention_bytes.to_string(),
            5,
            "Default retention.bytes.",
        ),
        entry(
            "log.cleanup.policy",
            broker.log_cleanup_policy.clone(),
            7,
            "Default cleanup.policy.",
        ),
        entry(
            "message.max.bytes",
            broker.message_max_bytes.to_string(),
            3,
            "Default max.message.bytes.",
        ),
        entry(
            "log.index.interval.bytes",
            broker.log_index_interval_bytes.to_string(),
            3,
            "Bytes between index entries.",
        ),
        entry(
            "socket.request.max.bytes",
            broker.socket_request_max_bytes.to_string(),
            3,
            "Largest request accepted.",
        ),
        entry(
            "log.flush",
            format!("{:?}", broker.log_flush).to_lowercase(),
            2,
            "sync: fsync before acks=all answers; interval; os.",
        ),
        entry(
            "log.flush.interval.ms",
            broker.log_flush_interval_ms.to_string(),
            5,
            "Background fsync period with log.flush=interval.",
        ),
        entry(
            "default.replication.factor",
            "1".to_owned(),
            3,
            "Single node: always 1.",
        ),
        entry(
            "min.insync.replicas",
            "1".to_owned(),
            3,
            "Single node: always 1.",
        ),
        entry(
            "broker.id",
            NODE_ID.to_string(),
            3,
            "This broker is node 0.",
        ),
    ]
}

pub(crate) fn handle(
    ctx: &RequestContext,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = ctx.version();
    let state = &ctx.state;
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
                .with_error_message(None);
            let name = resource.resource_name.as_str();
            let allowed = match resource.resource_type {
                RESOURCE_TOPIC => ctx.topic_authorized(AclOperation::DescribeConfigs, name),
                _ => ctx.cluster_authorized(AclOperation::DescribeConfigs),
            };
            if !allowed {
                let code = if resource.resource_type == RESOURCE_TOPIC {
                    ResponseError::TopicAuthorizationFailed
                } else {
                    ResponseError::ClusterAuthorizationFailed
                };
                return result.with_error_code(code.code()).with_error_message(Some(
                    StrBytes::from_static_str("describing these configs needs DescribeConfigs"),
                ));
            }
            let entries = match resource.resource_type {
                RESOURCE_TOPIC => match state.logs.topic(name) {
                    Some(topic) => topic_config_entries(state.config(), &topic.config_overrides()),
                    None => {
                        return result
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(StrBytes::from_string(format!("topic '{name}' does not exist"))));
                    }
                },
                RESOURCE_BROKER if name.is_empty() || name == NODE_ID.to_string() => {
                    broker_config_entries(state.config())
                }
                RESOURCE_BROKER => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "broker '{name}' does not exist; this is broker {NODE_ID}"
                        ))));
                }
                other => {
                    return result
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(StrBytes::from_string(format!(
                            "config resource type {other} is not supported (topics are 2, brokers 4)"
                        ))));
                }
            };
            let wanted = resource.configuration_keys.as_ref();
            result.configs = entries
                .into_iter()
                .filter(|e| wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name)))
                .map(|e| {
                    let mut out = DescribeConfigsResourceResult::default()
                        .with_name(StrBytes::from_static_str(e.name))
                        .with_value(Some(StrBytes::from_string(e.value.clone())))
                        .with_read_only(e.read_only)
                        .with_config_source(e.source as i8)
                        .with_documentation(None);
                    if request.include_synonyms {
                        out.synonyms = vec![DescribeConfigsSynonym::default()
                            .with_name(StrBytes::from_static_str(e.name))
                            .with_value(Some(StrBytes::from_string(e.value)))
                            .with_source(e.source as i8)];
                    }
                    if version >= 3 {
                        out.config_type = e.kind;
                        if request.include_documentation {
                            out.documentation = Some(StrBytes::from_static_str(e.doc));
                        }
                    }
                    out
                })
                .collect();
            result
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
