//! The broker's own reason for a refused admin request.
//!
//! A Kafka broker explains a refused CreateTopics, CreatePartitions or AlterConfigs request in
//! the response's `error_message` (`topic config 'retention.ms' must be a whole number (got
//! 'soon')`), but the rdkafka crate hands the tools only the error code (`InvalidConfig
//! (Broker: Configuration is invalid)`), and for AlterConfigs not even that (its per-resource
//! errors are dropped: every resource reads as altered). So when a request was refused (or an
//! alteration did not take), `sluice topics` asks the broker again, with `validate_only` set
//! so nothing changes, over one plain connection spoken with the `kafka-protocol` codecs, and
//! prints the reason from that answer.
//!
//! The question is best effort: over TLS or SASL listeners (a `security.protocol` other than
//! PLAINTEXT among `--command-property`) it is not asked, and any failure to ask leaves the
//! error code alone as the explanation.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiVersionsRequest, CreatePartitionsRequest, CreateTopicsRequest,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;

/// How long one question may take (connect, send, answer).
const TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer accepted (these answers are a few hundred bytes).
const MAX_RESPONSE: usize = 1 << 20;
/// Kafka's config resource type of a topic.
const RESOURCE_TOPIC: i8 = 2;

/// Whether the tool's connection is plain TCP, so that this module can ask at all.
pub(crate) fn plaintext(extra: &[(String, String)]) -> bool {
    extra
        .iter()
        .filter(|(k, _)| k == "security.protocol")
        .all(|(_, v)| v.eq_ignore_ascii_case("plaintext"))
}

/// One connection with the API versions the broker supports.
struct Connection {
    stream: TcpStream,
    correlation_id: i32,
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    fn open(bootstrap: &str) -> Option<Self> {
        let stream = bootstrap
            .split(',')
            .map(str::trim)
            .map(|entry| entry.rsplit_once("://").map_or(entry, |(_, a)| a))
            .filter_map(|address| address.to_socket_addrs().ok())
            .flatten()
            .find_map(|socket| TcpStream::connect_timeout(&socket, TIMEOUT).ok())?;
        stream.set_read_timeout(Some(TIMEOUT)).ok()?;
        stream.set_write_timeout(Some(TIMEOUT)).ok()?;
        let mut connection = Self {
            stream,
            correlation_id: 0,
            versions: HashMap::new(),
        };
        let versions = connection.send(&ApiVersionsRequest::default(), 0)?;
        connection.versions = versions
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Some(connection)
    }

    /// The highest version of `R` both sides speak.
    fn version<R: Request>(&self) -> Option<i16> {
        let (min, max) = *self.versions.get(&R::KEY)?;
        let version = max.min(R::VERSIONS.max);
        (version >= min.max(R::VERSIONS.min)).then_some(version)
    }

    fn ask<R: Request>(&mut self, request: &R) -> Option<R::Response> {
        let version = self.version::<R>()?;
        self.send(request, version)
    }

    fn send<R: Request>(&mut self, request: &R, version: i16) -> Option<R::Response> {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("sluice-cli")));
        let mut frame = BytesMut::new();
        frame.put_i32(0);
        header.encode(&mut frame, R::header_version(version)).ok()?;
        request.encode(&mut frame, version).ok()?;
        let length = i32::try_from(frame.len() - 4).ok()?;
        frame[..4].copy_from_slice(&length.to_be_bytes());
        self.stream.write_all(&frame).ok()?;
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).ok()?;
        let length = usize::try_from(i32::from_be_bytes(length)).ok()?;
        if length > MAX_RESPONSE {
            return None;
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body).ok()?;
        let mut body = Bytes::from(body);
        let header =
            ResponseHeader::decode(&mut body, R::Response::header_version(version)).ok()?;
        if header.correlation_id != self.correlation_id {
            return None;
        }
        R::Response::decode(&mut body, version).ok()
    }
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// A refusal as the broker worded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The broker's `error_message`.
    pub(crate) message: String,
    /// The Kafka error's name (`InvalidConfig`), or its number when unknown.
    pub(crate) code: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

fn refusal(code: i16, message: Option<&StrBytes>) -> Option<Refusal> {
    if code == 0 {
        return None;
    }
    let message = message
        .map(|m| m.as_str().trim().to_owned())
        .filter(|m| !m.is_empty())?;
    let code = ResponseError::try_from_code(code)
        .map_or_else(|| format!("error code {code}"), |e| format!("{e:?}"));
    Some(Refusal { message, code })
}

/// The broker's reason for refusing to create `topic` as given.
pub(crate) fn create_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication_factor: i16,
    configs: &[(String, String)],
) -> Option<Refusal> {
    let request = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(text(topic)))
            .with_num_partitions(partitions)
            .with_replication_factor(replication_factor)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(text(k))
                            .with_value(Some(text(v)))
                    })
                    .collect(),
            )])
        .with_timeout_ms(TIMEOUT.as_millis() as i32)
        .with_validate_only(true);
    let response = Connection::open(bootstrap)?.ask(&request)?;
    response
        .topics
        .iter()
        .find_map(|t| refusal(t.error_code, t.error_message.as_ref()))
}

/// The broker's reason for refusing to grow `topic` to `count` partitions.
pub(crate) fn create_partitions(bootstrap: &str, topic: &str, count: i32) -> Option<Refusal> {
    let request = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(TopicName(text(topic)))
            .with_count(count)
            .with_assignments(None)])
        .with_timeout_ms(TIMEOUT.as_millis() as i32)
        .with_validate_only(true);
    let response = Connection::open(bootstrap)?.ask(&request)?;
    response
        .results
        .iter()
        .find_map(|r| refusal(r.error_code, r.error_message.as_ref()))
}

/// The broker's reason for refusing `configs` as the overrides of `topic`.
pub(crate) fn alter_configs(
    bootstrap: &str,
    topic: &str,
    configs: &[(String, String)],
) -> Option<Refusal> {
    let request = AlterConfigsRequest::default()
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(text(topic))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        AlterableConfig::default()
                            .with_name(text(k))
                            .with_value(Some(text(v)))
                    })
                    .collect(),
            )])
        .with_validate_only(true);
    let response = Connection::open(bootstrap)?.ask(&request)?;
    response
        .responses
        .iter()
        .find_map(|r| refusal(r.error_code, r.error_message.as_ref()))
}
