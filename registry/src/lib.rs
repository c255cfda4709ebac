//! sluice's Schema Registry: Confluent Schema Registry's REST API, storing in the compacted
//! `_schemas` topic in Confluent's record formats, so Confluent's serializers, deserializers
//! and clients work with it unchanged and a Confluent registry can read what it wrote; and the
//! client the Avro converter uses.
//!
//! The server reaches Kafka through a real Kafka client (librdkafka), so it runs the same on
//! the bundled broker and on any Kafka cluster. It reads `_schemas` to its end before every
//! answer: a restarted registry keeps every id, and several registries on one cluster agree.
//!
//! # Layout
//! - [`records`]: the `_schemas` keys and values in Confluent's JSON formats.
//! - [`state`]: the registry's state, rebuilt by applying those records in order.
//! - [`store`]: the topic: creation, reading to the end, writing and reading back.
//! - [`schema`]: schema parsing per type, normalization, compatibility levels and checks.
//! - [`api`]: the REST API (routes, Confluent's answers and error codes).
//! - [`server`]: a running registry.
//! - [`client`]: the REST client with its caches, for converters.
//! - [`error`]: the crate's errors.

pub mod api;
pub mod client;
pub mod error;
pub mod records;
pub mod schema;
pub mod server;
pub mod state;
pub mod store;

pub use client::{RegisteredSchema, RegistryClient, RegistryClientConfig};
pub use error::{ApiError, Error, Result};
pub use records::SchemaReference;
pub use schema::CompatibilityLevel;
pub use server::{SchemaRegistry, DEFAULT_LISTEN};
pub use store::{KafkaStore, StoreConfig, DEFAULT_TOPIC};
