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
//! - `server`: [`Broker`]: binding, the accept loop, one task per connection reading
//!   length-prefixed frames and writing responses in request order, graceful shutdown.
//! - `api`: one module per Kafka API (`api/produce.rs`, `api/fetch.rs`, ...) and the dispatch
//!   `match` on the API key; the versions advertised by ApiVersions live in `api::SUPPORTED`.
//! - `storage`: topics and partitions on disk: segments with sparse offset and time indexes,
//!   record-batch framing and CRC checks, idempotent-producer state, topic configs, and the
//!   group-commit fsync thread.
//! - [`Error`]: what can fail when starting or stopping; protocol errors travel as Kafka
//!   error codes instead.

pub(crate) mod api;
pub mod config;
mod error;
mod server;
pub(crate) mod storage;

pub use config::{BrokerConfig, LogFlush};
pub use error::{Error, Result};
pub use server::Broker;
pub use storage::config as topic_config;

/// Decodes one request frame (the bytes after the 4-byte length prefix) the way the broker
/// does, without executing it. Exposed for the fuzz target; returns a short description of
/// why the frame would be refused.
///
/// # Errors
/// A message saying why the frame is not a valid request.
pub fn decode_request_frame(frame: bytes::Bytes) -> std::result::Result<(), String> {
    api::decode_frame(frame).map(|_| ())
}
