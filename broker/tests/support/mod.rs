//! Shared helpers: a broker on a temporary data dir, a raw protocol client, rdkafka clients,
//! and waiting on conditions with a deadline.

#![allow(dead_code)]

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sluice_broker::{Broker, BrokerConfig};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A broker on a temporary data dir that can be restarted on the same data.
pub struct TestBroker {
    pub broker: Option<Broker>,
    pub dir: TempDir,
    pub config: BrokerConfig,
}

impl TestBroker {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut BrokerConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = BrokerConfig::new("127.0.0.1:0", dir.path());
        tweak(&mut config);
        let broker = Broker::start(config.clone()).await.unwrap();
        Self {
            broker: Some(broker),
            dir,
            config,
        }
    }

    pub fn addr(&self) -> String {
        self.broker.as_ref().unwrap().bootstrap_servers()
    }

    /// Clean shutdown, then start again on the same data dir (on a new port).
    pub async fn restart(&mut self) {
        self.broker.take().unwrap().shutdown().await.unwrap();
        self.broker = Some(Broker::start(self.config.clone()).await.unwrap());
    }

    pub async fn stop(mut self) {
        self.broker.take().unwrap().shutdown().await.unwrap();
    }
}

/// A raw Kafka-protocol client over one connection.
pub struct RawClient {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl RawClient {
    pub async fn connect(addr: &str) -> Self {
        Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            correlation_id: 0,
        }
    }

    /// Sends a request at `version` and decodes the response, checking the correlation id.
    pub async fn send<R: Request>(&mut self, version: i16, request: &R) -> R::Response {
        let correlation_id = self.next_id();
        let frame = encode_request(request, version, correlation_id);
        self.stream.write_all(&frame).await.unwrap();
        let mut body = self
            .read_frame()
            .await
            .expect("connection closed instead of answering");
        let header =
            ResponseHeader::decode(&mut body, R::Response::header_version(version)).unwrap();
        assert_eq!(header.correlation_id, correlation_id);
        let response = R::Response::decode(&mut body, version).unwrap_or_else(|e| {
            panic!(
                "cannot decode {} v{version} response: {e}",
                std::any::type_name::<R>()
            )
        });
        assert!(
            !body.has_remaining(),
            "{} v{version}: {} bytes left after the response",
            std::any::type_name::<R>(),
            body.remaining()
        );
        response
    }

    pub fn next_id(&mut self) -> i32 {
        self.correlation_id += 1;
        self.correlation_id
    }

    /// Reads one response frame; `None` when the broker closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        tokio::time::timeout(TIMEOUT, self.stream.read_exact(&mut len))
            .await
            .expect("no answer in time")
            .ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    }

    /// True when the broker has closed the connection (read hits end of stream).
    pub async fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(TIMEOUT, self.stream.read(&mut byte))
                .await
                .expect("broker neither answered nor closed"),
            Ok(0) | Err(_)
        )
    }
}

pub fn encode_request<R: Request>(request: &R, version: i16, correlation_id: i32) -> BytesMut {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice-tests")));
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    header.encode(&mut buf, R::header_version(version)).unwrap();
    request.encode(&mut buf, version).unwrap_or_else(|e| {
        panic!(
            "cannot encode {} v{version}: {e}",
            std::any::type_name::<R>()
        )
    });
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    buf
}

pub fn producer(addr: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", addr)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    config.create().unwrap()
}

/// Reads `count` records from the given partitions from the beginning, failing after
/// [`TIMEOUT`]. Runs on a blocking thread (BaseConsumer polls synchronously).
pub async fn consume(
    addr: &str,
    topic: &str,
    partitions: &[i32],
    count: usize,
) -> Vec<OwnedMessage> {
    let (addr, topic, partitions) = (addr.to_owned(), topic.to_owned(), partitions.to_vec());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &addr)
            .set("group.id", "sluice-tests")
            .set("enable.auto.commit", "false")
            .set("fetch.message.max.bytes", "10485760")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for p in &partitions {
            assignment
                .add_partition_offset(&topic, *p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let deadline = std::time::Instant::now() + TIMEOUT;
        let mut out = Vec::new();
        while out.len() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "only {} of {count} records arrived from {topic}",
                out.len()
            );
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                out.push(message.unwrap().detach());
            }
        }
        // Nothing beyond what was expected.
        let extra = consumer.poll(Duration::from_millis(300));
        assert!(
            extra.is_none(),
            "unexpected extra record: {:?}",
            extra.map(|m| m.map(|m| m.offset()))
        );
        out
    })
    .await
    .unwrap()
}

/// Waits until `check` holds, polling, up to [`TIMEOUT`].
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn payload(message: &OwnedMessage) -> Option<&[u8]> {
    message.payload()
}
