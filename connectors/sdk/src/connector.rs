//! The connector and task traits, their contexts, and the plugin descriptor.
//!
//! A connector is configured once and splits its work into task configurations
//! ([`SourceConnector::task_configs`]); the runtime runs one task per configuration. Built-in
//! connectors and dynamic-library plugins implement the same traits.
//!
//! # The contract with the runtime
//! - Source: the runtime calls [`SourceTask::poll`] in a loop. `poll` waits (for data or for
//!   its poll interval) and returns what it has, possibly nothing. Each record carries a
//!   source partition and offset; the runtime writes an offset to `connect-offsets` only after
//!   Kafka acknowledged that record and every earlier record of the same source partition.
//!   After a crash the task restarts from the last written offsets
//!   ([`SourceTaskContext::offset`]) and may send some records again; it never skips one.
//! - Sink: the runtime calls [`SinkTask::put`] with batches, then [`SinkTask::flush`] before it
//!   commits consumer offsets. After `flush` returns `Ok`, every record given to `put` must be
//!   durably written or reported through [`SinkTaskContext::report_errant`].
//! - Errors: return [`Error::Retriable`] for transient failures (the runtime retries with
//!   backoff), [`Error::Fatal`] for the rest (the task fails with the message as its trace).
//! - Cancellation: when a task is stopped the runtime may drop a pending `poll` or `put`
//!   future and then calls `stop`; a dropped call must not have committed anything itself.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{ConfigDef, Props};
use crate::error::{ConfigErrors, Error, Result};
use crate::record::{
    canonical_json, SinkRecord, SourceOffset, SourcePartition, SourceRecord, TopicPartition,
};

/// Services the runtime gives a running connector.
pub trait ConnectorHost: Send + Sync + fmt::Debug {
    /// Asks the runtime to call `task_configs` again and restart the tasks if they changed
    /// (for example when a new table appears).
    fn request_task_reconfiguration(&self);
    /// Fails the connector with `error` (its status becomes FAILED with the message).
    fn raise_error(&self, error: Error);
}

/// What a connector receives when it starts.
#[derive(Debug, Clone)]
pub struct ConnectorContext {
    /// The connector's name.
    pub name: String,
    host: Arc<dyn ConnectorHost>,
}

impl ConnectorContext {
    /// A context for connector `name` served by `host`.
    pub fn new(name: impl Into<String>, host: Arc<dyn ConnectorHost>) -> Self {
        Self {
            name: name.into(),
            host,
        }
    }

    /// See [`ConnectorHost::request_task_reconfiguration`].
    pub fn request_task_reconfiguration(&self) {
        self.host.request_task_reconfiguration();
    }

    /// See [`ConnectorHost::raise_error`].
    pub fn raise_error(&self, error: Error) {
        self.host.raise_error(error);
    }
}

/// Where a task reports a problem it is working around (an outage it is retrying through),
/// so it shows in the task's status and logs while the task stays RUNNING.
pub trait TaskStatusReporter: Send + Sync + fmt::Debug {
    /// `Some(problem)` while the problem lasts; `None` once it is over.
    fn report_problem(&self, problem: Option<String>);
}

/// A reporter that only logs through the runtime's default (used in tests and tools).
#[derive(Debug, Default)]
pub struct NoStatusReporter;

impl TaskStatusReporter for NoStatusReporter {
    fn report_problem(&self, _problem: Option<String>) {}
}

/// The last committed offsets of a connector's source partitions.
#[derive(Debug, Clone, Default)]
pub struct OffsetSnapshot {
    /// Canonical partition text -> (partition, offset).
    offsets: HashMap<String, (SourcePartition, SourceOffset)>,
}

impl OffsetSnapshot {
    /// A snapshot of `(partition, offset)` pairs.
    pub fn new(pairs: impl IntoIterator<Item = (SourcePartition, SourceOffset)>) -> Self {
        Self {
            offsets: pairs
                .into_iter()
                .map(|(p, o)| {
                    (
                        canonical_json(&serde_json::Value::Object(p.clone())),
                        (p, o),
                    )
                })
                .collect(),
        }
    }

    /// The last committed offset of `partition`.
    pub fn offset(&self, partition: &SourcePartition) -> Option<&SourceOffset> {
        self.offsets
            .get(&canonical_json(&serde_json::Value::Object(
                partition.clone(),
            )))
            .map(|(_, o)| o)
    }

    /// Every `(partition, offset)` pair, in no particular order (the plugin ABI hands the
    /// snapshot to plugin tasks this way).
    pub fn iter(&self) -> impl Iterator<Item = (&SourcePartition, &SourceOffset)> {
        self.offsets.values().map(|(p, o)| (p, o))
    }

    /// How many partitions have offsets.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether no partition has an offset.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

/// What a source task receives when it starts.
#[derive(Debug, Clone)]
pub struct SourceTaskContext {
    /// The connector's name.
    pub connector: String,
    /// This task's number, from 0.
    pub task_id: u32,
    /// This task's configuration (one element of `task_configs`).
    pub config: Props,
    offsets: Arc<OffsetSnapshot>,
    status: Arc<dyn TaskStatusReporter>,
}

impl SourceTaskContext {
    /// A context for task `task_id` of `connector`.
    pub fn new(
        connector: impl Into<String>,
        task_id: u32,
        config: Props,
        offsets: Arc<OffsetSnapshot>,
        status: Arc<dyn TaskStatusReporter>,
    ) -> Self {
        Self {
            connector: connector.into(),
            task_id,
            config,
            offsets,
            status,
        }
    }

    /// The last committed offset of `partition`, to resume from.
    pub fn offset(&self, partition: &SourcePartition) -> Option<&SourceOffset> {
        self.offsets.offset(partition)
    }

    /// Every committed offset of the connector at the task's start.
    pub fn offsets(&self) -> &OffsetSnapshot {
        &self.offsets
    }

    /// See [`TaskStatusReporter::report_problem`].
    pub fn report_problem(&self, problem: Option<String>) {
        self.status.report_problem(problem);
    }
}

/// Where a sink task sends records it cannot write (Kafka Connect's `ErrantRecordReporter`).
#[async_trait]
pub trait ErrantRecordReporter: Send + Sync + fmt::Debug {
    /// Reports `record` as failed with `error`. With `errors.tolerance=all` the runtime logs it
    /// and writes it to the dead-letter topic (if one is set) before returning `Ok`; with
    /// `errors.tolerance=none` it returns the error, and the task should fail with it.
    async fn report(&self, record: &SinkRecord, error: &Error) -> Result<()>;
}

/// What a sink task receives when it starts.
#[derive(Debug, Clone)]
pub struct SinkTaskContext {
    /// The connector's name.
    pub connector: String,
    /// This task's number, from 0.
    pub task_id: u32,
    /// This task's configuration.
    pub config: Props,
    errant: Arc<dyn ErrantRecordReporter>,
    status: Arc<dyn TaskStatusReporter>,
}

impl SinkTaskContext {
    /// A context for task `task_id` of `connector`.
    pub fn new(
        connector: impl Into<String>,
        task_id: u32,
        config: Props,
        errant: Arc<dyn ErrantRecordReporter>,
        status: Arc<dyn TaskStatusReporter>,
    ) -> Self {
        Self {
            connector: connector.into(),
            task_id,
            config,
            errant,
            status,
        }
    }

    /// See [`ErrantRecordReporter::report`].
    ///
    /// # Errors
    /// The error to fail the task with, when errors are not tolerated.
    pub async fn report_errant(&self, record: &SinkRecord, error: &Error) -> Result<()> {
        self.errant.report(record, error).await
    }

    /// See [`TaskStatusReporter::report_problem`].
    pub fn report_problem(&self, problem: Option<String>) {
        self.status.report_problem(problem);
    }
}

/// A connector that reads from an outside system into Kafka.
#[async_trait]
pub trait SourceConnector: Send + Sync {
    /// Checks beyond the declared options (can the database be reached, does the table
    /// exist...). Called on a fresh instance by the validate endpoint and before start.
    async fn validate(&self, _config: &Props) -> ConfigErrors {
        ConfigErrors::default()
    }

    /// Starts the connector with its full configuration.
    async fn start(&mut self, ctx: ConnectorContext, config: Props) -> Result<()>;

    /// Splits the work into at most `max_tasks` task configurations.
    async fn task_configs(&mut self, max_tasks: usize) -> Result<Vec<Props>>;

    /// Stops the connector.
    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    /// A new, unstarted task.
    fn create_task(&self) -> Box<dyn SourceTask>;
}

/// One unit of a source connector's work.
#[async_trait]
pub trait SourceTask: Send {
    /// Starts the task; read [`SourceTaskContext::offset`] here to resume.
    async fn start(&mut self, ctx: SourceTaskContext) -> Result<()>;

    /// The next records, waiting for data or for the poll interval; may return none.
    async fn poll(&mut self) -> Result<Vec<SourceRecord>>;

    /// Called after offsets have been written, for sources that acknowledge upstream.
    async fn commit(&mut self) -> Result<()> {
        Ok(())
    }

    /// Called after `committed` offsets were written to the offsets topic, before
    /// [`commit`](Self::commit): each is the offset of the newest record of its source
    /// partition that Kafka acknowledged together with every earlier record of that partition.
    /// A source that confirms its position upstream (a replication slot's flush position, a
    /// queue's acknowledgement) confirms up to these and no further, so a crash replays and
    /// never skips. Kafka Connect gives sources this through `commitRecord`.
    async fn offsets_committed(&mut self, _committed: &[(SourcePartition, SourceOffset)]) {}

    /// Stops the task and releases its resources.
    async fn stop(&mut self) -> Result<()>;
}

/// A connector that writes from Kafka into an outside system.
#[async_trait]
pub trait SinkConnector: Send + Sync {
    /// Checks beyond the declared options; see [`SourceConnector::validate`].
    async fn validate(&self, _config: &Props) -> ConfigErrors {
        ConfigErrors::default()
    }

    /// Starts the connector with its full configuration.
    async fn start(&mut self, ctx: ConnectorContext, config: Props) -> Result<()>;

    /// Splits the work into at most `max_tasks` task configurations (sink tasks share the
    /// topics' partitions through the consumer group, so usually identical copies).
    async fn task_configs(&mut self, max_tasks: usize) -> Result<Vec<Props>>;

    /// Stops the connector.
    async fn stop(&mut self) -> Result<()> {
        Ok(())
    }

    /// A new, unstarted task.
    fn create_task(&self) -> Box<dyn SinkTask>;
}

/// One unit of a sink connector's work.
#[async_trait]
pub trait SinkTask: Send {
    /// Starts the task.
    async fn start(&mut self, ctx: SinkTaskContext) -> Result<()>;

    /// Partitions newly assigned to this task (after a rebalance).
    async fn open(&mut self, _partitions: &[TopicPartition]) -> Result<()> {
        Ok(())
    }

    /// Writes (or buffers) a batch of records.
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()>;

    /// Makes every record given to `put` so far durable; offsets are committed after this.
    async fn flush(&mut self) -> Result<()>;

    /// Partitions taken away from this task; flush has already been called for them.
    async fn close(&mut self, _partitions: &[TopicPartition]) -> Result<()> {
        Ok(())
    }

    /// Stops the task and releases its resources.
    async fn stop(&mut self) -> Result<()>;
}

/// Makes a new source connector instance.
pub type SourceConnectorFactory = Arc<dyn Fn() -> Box<dyn SourceConnector> + Send + Sync>;
/// Makes a new sink connector instance.
pub type SinkConnectorFactory = Arc<dyn Fn() -> Box<dyn SinkConnector> + Send + Sync>;

/// Whether a plugin is a source or a sink, with its factory.
#[derive(Clone)]
pub enum ConnectorKind {
    /// A source connector.
    Source(SourceConnectorFactory),
    /// A sink connector.
    Sink(SinkConnectorFactory),
}

impl ConnectorKind {
    /// `source` or `sink`, as Kafka Connect's `/connector-plugins` writes it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Source(_) => "source",
            Self::Sink(_) => "sink",
        }
    }
}

impl fmt::Debug for ConnectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A connector class the runtime can instantiate: built in, or loaded from a plugin library.
#[derive(Debug, Clone)]
pub struct ConnectorPlugin {
    /// The short class name used in `connector.class` (`file-source`).
    pub class: String,
    /// Other accepted names, such as the Kafka Connect or Confluent class names.
    pub aliases: Vec<String>,
    /// The plugin's version.
    pub version: String,
    /// The options the connector accepts.
    pub config_def: ConfigDef,
    /// Source or sink, with the factory.
    pub kind: ConnectorKind,
}

impl ConnectorPlugin {
    /// Whether `name` (short name or alias, exact) names this plugin.
    pub fn answers_to(&self, name: &str) -> bool {
        self.class == name || self.aliases.iter().any(|a| a == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn offsets_are_found_whatever_the_key_order() {
        let snapshot = OffsetSnapshot::new([(
            map(json!({"protocol": "1", "table": "db.public.t"})),
            map(json!({"incrementing": 5})),
        )]);
        let found = snapshot.offset(&map(json!({"table": "db.public.t", "protocol": "1"})));
        assert_eq!(found, Some(&map(json!({"incrementing": 5}))));
        assert!(snapshot.offset(&map(json!({"table": "other"}))).is_none());
    }
}
