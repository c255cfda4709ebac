//! sluice-broker: a single-node, Kafka-wire-compatible broker that sluice bundles, so that a
//! laptop needs nothing else running. Clients (librdkafka, the Java client, kcat) talk to it
//! over the Kafka protocol; it reports itself as broker 0 of a one-node cluster. Replication,
//! ISR and leader election are left to a real Kafka cluster once one machine is not enough.
//!
//! ```no_run
//! # async fn run() -> sluice_broker::Result<()> {
//! use sluice_broker::{Broker, BrokerConfig};
//!
//! let broker = Broker::start(BrokerConfig::new("127.0.0.1:0", "./data")).await?;
//! println!("bootstrap.servers={}", broker.bootstrap_servers());
//! // ... talk to it with any Kafka client ...
//! broker.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`config`]: [`BrokerConfig`] (serde, with defaults) and the [`LogFlush`] policy.
//! - `server`: [`Broker`]: binding each listener, the accept loops, one task per connection
//!   (TLS handshake, SASL authentication, then length-prefixed frames, responses in request
//!   order), graceful shutdown.
//! - `transport`: the connection's byte stream (plain TCP or TLS) and its `Session`: the
//!   listener it came in on and the authenticated principal that handlers authorize.
//! - [`security`]: listeners and security protocols, TLS from PEM files, SASL (PLAIN,
//!   SCRAM-SHA-256/512) with durable salted credentials, and Kafka's ACLs.
//! - `api`: one module per Kafka API (`api/produce.rs`, `api/fetch.rs`, ...) and the dispatch
//!   `match` on the API key; the versions advertised by ApiVersions live in `api::SUPPORTED`.
//! - [`group`]: the group coordinator: the classic consumer-group protocol (one file per API,
//!   `group/join.rs`, `group/sync.rs`, ...) and the durable log of committed offsets.
//! - `storage`: topics and partitions on disk: segments with sparse offset and time indexes,
//!   record-batch framing and CRC checks, idempotent-producer state, topic configs, the
//!   group-commit fsync thread, retention, and the log cleaner (compaction in passes bounded
//!   by its key map, `storage::offset_map`).
//! - [`log_limit`]: [`LogLimiter`](log_limit::LogLimiter), which logs the first few
//!   occurrences of a repeated problem and then one summary line per interval, so nothing a
//!   remote peer sends can write an unbounded amount of log. The runtime uses it too.
//! - [`Error`]: what can fail when starting or stopping; protocol errors travel as Kafka
//!   error codes instead.

pub(crate) mod api;
pub mod config;
mod error;
pub mod group;
pub mod log_limit;
pub mod security;
mod server;
pub(crate) mod storage;
mod transport;

pub use config::{BrokerConfig, LogFlush};
pub use error::{Error, Result};
pub use security::{KafkaPrincipal, SecurityProtocol};
pub use server::Broker;
pub use storage::config as topic_config;

/// Decodes one request frame (the bytes after the 4-byte length prefix) the way the broker
/// does, without executing it; for Produce requests the record batches are framed and
/// CRC-checked as an append would, and the tokens of SaslAuthenticate requests go through the
/// SCRAM and PLAIN server sides (a raw token after a v0 handshake is the same bytes).
/// Exposed for the fuzz target.
///
/// # Errors
/// A message saying why the frame would be refused.
pub fn decode_request_frame(frame: bytes::Bytes) -> std::result::Result<(), String> {
    match api::decode_frame(frame)? {
        api::Decoded::Request(_, kafka_protocol::messages::RequestKind::Produce(request)) => {
            for topic in &request.topic_data {
                for partition in &topic.partition_data {
                    if let Some(records) = &partition.records {
                        storage::batch::split_batches(records).map_err(|e| e.to_string())?;
                    }
                }
            }
            Ok(())
        }
        api::Decoded::Request(
            _,
            kafka_protocol::messages::RequestKind::SaslAuthenticate(request),
        ) => {
            security::sasl::exercise_token(&request.auth_bytes);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Runs bytes through the SASL server sides as a raw token (after a v0 handshake, tokens
/// arrive without a Kafka header). Exposed for the fuzz target.
pub fn exercise_sasl_token(token: &[u8]) {
    security::sasl::exercise_token(token);
}

/// Entry points for the benchmarks in `benches/`; not part of the supported API.
#[doc(hidden)]
pub mod bench_support {
    use std::time::{Duration, Instant};

    /// Runs one compaction round (as many passes as the keys need with the config's
    /// `log_cleaner_dedupe_buffer_size`) over `topic`-`partition` of a broker data dir that no
    /// broker is using, returning (bytes of log read, bytes before and after the rewritten
    /// segments, time taken).
    ///
    /// # Errors
    /// The data dir cannot be opened, the partition does not exist, or cleaning fails.
    pub fn compact_partition(
        config: crate::BrokerConfig,
        topic: &str,
        partition: i32,
    ) -> Result<(u64, u64, u64, Duration), String> {
        let logs = crate::storage::LogManager::open(config).map_err(|e| e.to_string())?;
        let partition = logs
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or_else(|| format!("no partition {topic}-{partition}"))?;
        let limits = crate::storage::offset_map::MapLimits::from_config(&logs.config);
        let started = Instant::now();
        let stats = crate::storage::cleaner::clean_partition(
            &partition,
            crate::storage::partition::now_ms(),
            limits,
            0,
            &|| false,
        )
        .map_err(|e| e.to_string())?
        .stats;
        let elapsed = started.elapsed();
        logs.close();
        Ok((
            stats.bytes_read,
            stats.bytes_before,
            stats.bytes_after,
            elapsed,
        ))
    }
}
