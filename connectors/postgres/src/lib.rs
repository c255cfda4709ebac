//! PostgreSQL source connectors for sluice: table polling (JDBC-style) and change data
//! capture from the WAL ([`cdc`]).
//!
//! A drop-in for Confluent's JDBC source connector on PostgreSQL: the same option names
//! (`connection.url`, `mode`, `incrementing.column.name`, `timestamp.column.name`,
//! `table.whitelist`, `query`, `topic.prefix`, ...), the same source partitions and offsets in
//! `connect-offsets`, so an existing connector JSON and its stored offsets keep working.
//! Class names: `postgres-source` and `io.confluent.connect.jdbc.JdbcSourceConnector`.
//!
//! Where Confluent's connector is known to lose rows, this one does not:
//! - `timestamp+incrementing` resumes from the (timestamp, id) pair with
//!   `(ts > last_ts) OR (ts = last_ts AND id > last_id)` and `ORDER BY ts, id`, and
//!   `batch.max.rows` only splits one query's result over several polls (no LIMIT), so a stop
//!   in the middle of many rows sharing a timestamp loses none of them;
//! - `timestamp` alone never records an offset inside an unfinished group of equal
//!   timestamps (see [`task`]);
//! - `timestamp.delay.interval.ms` is applied against the database's clock;
//! - timestamps are decoded and compared in UTC whatever the session's `TimeZone`
//!   (`timestamp without time zone` values are taken as UTC).
//!
//! Choices where Confluent's behaviour is unspecified or surprising: the primary key becomes
//! the record key (the column's value for a one-column key, a struct otherwise); a `query` is
//! wrapped as a subquery so it may carry its own WHERE; table list entries may use `*`
//! wildcards, which also match tables created later; types Confluent drops (arrays, enums,
//! json, uuid, intervals...) are mapped (see [`types`]).
//!
//! # Deletes (a sluice extension)
//! A polling source cannot see a hard `DELETE`. With `soft.delete.column.name` naming a
//! boolean or timestamp column, a polled row whose column is true / not NULL is sent as a
//! tombstone (the row's key, a null value without a schema) instead of the row, so a sink
//! that deletes on tombstones (elasticsearch-sink with `behavior.on.null.values=delete`)
//! follows. A `BEFORE DELETE` trigger can turn the application's plain `DELETE`s into such
//! updates (see `examples/cqrs/orders.sql`). Confluent's connector has no such option.
//!
//! # Layout
//! - [`config`]: option names, the [`ConfigDef`](sluice_sdk::ConfigDef), and the parsed
//!   [`PostgresSourceConfig`].
//! - [`connection`]: connection URLs (JDBC and libpq forms), rustls TLS per `sslmode`,
//!   error classification (transient or not) and user-facing explanations.
//! - [`types`]: PostgreSQL types to Connect schemas and binary decoding of values.
//! - [`query`]: table ids, partitions and offsets in Kafka Connect's format, the SQL per mode.
//! - [`plan`]: catalog reads (tables, columns, primary keys, nullability) and row-to-record
//!   conversion.
//! - [`connector`]: [`PostgresSourceConnector`]: validation against the live database, task
//!   splitting, watching for new tables.
//! - [`task`]: [`PostgresSourceTask`]: polling, offsets, batching, outage handling.
//! - [`cdc`]: the change data capture source (`postgres-cdc-source`, Debezium's
//!   `io.debezium.connector.postgresql.PostgresConnector`), reading the WAL through a
//!   logical replication slot.

pub mod cdc;
pub mod config;
pub mod connection;
pub mod connector;
pub mod plan;
pub mod query;
pub mod task;
pub mod types;

use std::sync::Arc;

pub use config::PostgresSourceConfig;
pub use connector::PostgresSourceConnector;
use sluice_sdk::{ConnectorKind, ConnectorPlugin};
pub use task::PostgresSourceTask;

/// The connector's short class name.
pub const CLASS: &str = "postgres-source";
/// Confluent's class name, accepted as an alias.
pub const CONFLUENT_CLASS: &str = "io.confluent.connect.jdbc.JdbcSourceConnector";

/// The connector classes this crate provides.
pub fn plugins() -> Vec<ConnectorPlugin> {
    vec![
        ConnectorPlugin {
            class: CLASS.to_string(),
            aliases: vec![CONFLUENT_CLASS.to_string()],
            version: env!("CARGO_PKG_VERSION").to_string(),
            config_def: config::config_def(),
            kind: ConnectorKind::Source(Arc::new(|| Box::new(PostgresSourceConnector::default()))),
        },
        cdc::plugin(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_answers_to_confluent_class() {
        let plugins = plugins();
        assert_eq!(plugins.len(), 2);
        assert!(plugins[1].answers_to("postgres-cdc-source"));
        assert!(plugins[1].answers_to("io.debezium.connector.postgresql.PostgresConnector"));
        assert!(plugins[0].answers_to("postgres-source"));
        assert!(plugins[0].answers_to("io.confluent.connect.jdbc.JdbcSourceConnector"));
        assert_eq!(plugins[0].kind.name(), "source");
        assert!(plugins[0]
            .config_def
            .key("timestamp.delay.interval.ms")
            .is_some());
    }
}
