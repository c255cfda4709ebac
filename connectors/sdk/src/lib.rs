//! The sluice connector SDK: everything a connector sees, and nothing of Kafka.
//!
//! Built-in connectors and third-party plugins depend on this crate only. It holds the
//! Kafka Connect-compatible data model ([`Schema`], [`Value`], records), the connector and task
//! traits, and the option declarations from which the runtime derives validation, defaults and
//! the REST validate endpoint.
//!
//! # Layout
//! - [`schema`]: [`Schema`] with Kafka Connect's types and logical types (Decimal, Date, Time,
//!   Timestamp).
//! - [`value`]: [`Value`], [`Struct`] and the [`Decimal`] helper.
//! - [`record`]: [`SourceRecord`], [`SinkRecord`], headers, source partitions and offsets.
//! - [`json`]: Kafka Connect's JSON forms of schemas and values (the JSON converter's format).
//! - [`config`]: option declarations ([`ConfigDef`]) and parsed configurations.
//! - [`connector`]: the [`SourceConnector`]/[`SourceTask`] and [`SinkConnector`]/[`SinkTask`]
//!   traits, their contexts, and the [`ConnectorPlugin`] descriptor.
//! - [`transform`]: the [`Transform`] and [`Predicate`] traits over a [`TransformRecord`],
//!   and the [`TransformPlugin`] descriptor (the runtime's built-in transforms use them too).
//! - [`convert`]: the [`Converter`] trait and the [`ConverterPlugin`] descriptor.
//! - [`plugin`]: [`PluginSet`], everything one plugin library exports.
//! - [`error`]: the one [`Error`] type, retriable or fatal.
//! - [`abi`]: the plugin C ABI (symbols, function tables, batch encoding) and the
//!   [`export_plugin!`] macro that turns a crate of connectors, transforms, predicates and
//!   converters into a plugin library.
//! - `testing` (feature `testing`): helpers the connectors' integration tests share, such as
//!   a TCP server that accepts connections and never answers.

pub mod abi;
pub mod config;
pub mod connector;
pub mod convert;
pub mod error;
pub mod json;
pub mod plugin;
pub mod record;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;
pub mod transform;
pub mod value;

pub use async_trait::async_trait;
pub use config::{Config, ConfigDef, ConfigKey, ConfigType, Importance, Props, Validator};
pub use connector::{
    ConnectorContext, ConnectorHost, ConnectorKind, ConnectorPlugin, ErrantRecordReporter,
    OffsetSnapshot, SinkConnector, SinkTask, SinkTaskContext, SourceConnector, SourceTask,
    SourceTaskContext, TaskStatusReporter,
};
pub use convert::{ConvertError, Converter, ConverterFactory, ConverterPlugin};
pub use error::{ConfigError, ConfigErrors, Error, Result};
pub use plugin::PluginSet;
pub use record::{
    Header, SinkRecord, SourceOffset, SourcePartition, SourceRecord, TimestampType, TopicPartition,
};
pub use schema::{Field, LogicalType, Schema, SchemaRef, SchemaType};
pub use transform::{
    Predicate, PredicateFactory, Transform, TransformFactory, TransformKind, TransformPlugin,
    TransformRecord,
};
pub use value::{Decimal, Struct, Value};
