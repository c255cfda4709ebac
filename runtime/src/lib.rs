//! The sluice runtime: the worker that runs connectors, its REST API, and the command-line
//! tools of the `sluice` binary.
//!
//! # Layout
//! - [`settings`]: worker settings from `sluice.toml` and `SLUICE_*` variables.
//! - [`run`]: starting and stopping a whole worker; [`embedded`] the in-process broker (and
//!   the bundled Schema Registry beside it, from the `sluice-registry` crate).
//! - [`herder`]: what runs (configurations, origins, target states, the config topic);
//!   [`worker`] running it (one actor per connector, which starts and stops its instance
//!   and tasks); [`plugins`] the known connector classes;
//!   [`plugin_loader`] plugins (connectors, transforms, predicates, converters) from dynamic
//!   libraries in `plugin.path`.
//! - [`connector_config`]: the options every connector has, and config parsing.
//! - [`configs_dir`]: connector JSON files, loaded and watched.
//! - [`task`]: the source and sink task loops.
//! - [`converter`]: JSON, string, byte array and Avro (Confluent's, through a Schema
//!   Registry: [`converter::avro`], [`converter::avro_data`]) converters and the plugins' ones;
//!   [`transforms`] the SMTs and their registry.
//! - [`offsets`]: source offset tracking and the `connect-offsets` store; [`status`] the
//!   `connect-status` topic (the `connect-configs` topic is [`cluster::config_log`]'s).
//! - [`errors`] and [`dlq`]: error tolerance and the dead letter queue; [`backoff`] the one
//!   back-off every retry site uses.
//! - [`kafka`]: librdkafka client configuration; [`client_security`] TLS and SASL of the
//!   worker's own Kafka-protocol connections (group membership, ACL and credential tools).
//! - [`rest`]: the Kafka Connect-compatible REST API; [`metrics`] its `/metrics`;
//!   [`logging`] the log levels its `/admin/loggers` changes.
//! - [`console`]: the web console at `/ui` (embedded assets) and its `/ui/api/` reads of
//!   topics, records, dead letters and consumer groups.
//! - [`cli`]: the `sluice` subcommands that talk to a broker.
//! - [`cluster`]: worker groups (Kafka Connect's distributed mode): membership through the
//!   broker's group coordinator, the leader's assignment of connectors and tasks, and the
//!   `connect-configs` log every member follows; the [`herder`] drives them.
pub mod backoff;
pub mod cli;
pub mod client_security;
pub mod cluster;
pub mod config_providers;
pub mod configs_dir;
pub mod connector_config;
pub mod console;
pub mod converter;
pub mod dlq;
pub mod embedded;
pub mod error;
pub mod errors;
pub mod herder;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod offsets;
pub mod plugin_loader;
pub mod plugins;
pub mod rest;
pub mod rest_security;
pub mod run;
pub mod settings;
pub mod status;
pub mod task;
pub mod transforms;
pub mod worker;

pub use error::{Error, Result};
