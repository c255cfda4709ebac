//! PostgreSQL change data capture: every insert, update and delete, read from the
//! write-ahead log through a logical replication slot with the built-in `pgoutput` plugin, in
//! Debezium's event format. A drop-in for Debezium's PostgreSQL connector
//! (`io.debezium.connector.postgresql.PostgresConnector`) with the same option names, topics
//! (`<topic.prefix>.<schema>.<table>`), keys (the primary key), envelopes (`before`, `after`,
//! `source`, `op`, `ts_ms`) and type mapping, so Debezium consumers and its
//! `ExtractNewRecordState` transform keep working.
//!
//! The replication stream is read with the `pgwire-replication` crate (START_REPLICATION,
//! keepalives, standby status updates carrying the flush position, and a gated session on
//! which the slot is created with an exported snapshot); ordinary queries (catalog, snapshot)
//! go through tokio-postgres as in the polling source. Both connections use TLS per
//! `database.sslmode` (rustls with ring; the crate is vendored for that).
//!
//! Differences from Debezium worth knowing: `before` of an update is only present under
//! `REPLICA IDENTITY FULL` (as in Debezium) and a delete's `before` has only the key columns
//! otherwise (the other required columns get Debezium's zero values); truncates are not
//! emitted (Debezium's default `skipped.operations=t`); types Debezium leaves out without
//! `include.unknown.datatypes` are sent as their text.
//!
//! # Layout
//! - [`config`]: option names (Debezium's), the [`ConfigDef`](sluice_sdk::ConfigDef) and
//!   [`PostgresCdcConfig`].
//! - [`pgoutput`]: decoding of the pgoutput messages.
//! - [`types`]: PostgreSQL types to Debezium's schemas, and values from their text.
//! - [`envelope`]: key/value/envelope schemas of a table shape, the `source` block, records.
//! - [`catalog`]: catalog reads, the publication, the slot, and the server checks.
//! - [`connector`]: the connector, [`PostgresCdcConnector`]: checks, one task.
//! - [`task`]: [`PostgresCdcTask`]: snapshot, stream, offsets and the slot's flush position.

pub mod catalog;
pub mod config;
pub mod connector;
pub mod envelope;
pub mod pgoutput;
pub mod task;
pub mod types;

use std::sync::Arc;

pub use config::PostgresCdcConfig;
pub use connector::PostgresCdcConnector;
use sluice_sdk::{ConnectorKind, ConnectorPlugin};
pub use task::PostgresCdcTask;

/// The connector's short class name.
pub const CLASS: &str = "postgres-cdc-source";
/// Debezium's class name, accepted as an alias.
pub const DEBEZIUM_CLASS: &str = "io.debezium.connector.postgresql.PostgresConnector";

/// The CDC connector's plugin descriptor.
pub fn plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class: CLASS.to_string(),
        aliases: vec![DEBEZIUM_CLASS.to_string()],
        version: env!("CARGO_PKG_VERSION").to_string(),
        config_def: config::config_def(),
        kind: ConnectorKind::Source(Arc::new(|| Box::new(PostgresCdcConnector::default()))),
    }
}
