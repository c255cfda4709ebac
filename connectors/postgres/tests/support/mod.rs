//! Shared test helpers: the PostgreSQL server, a connector host and status recorder, and
//! polling with a deadline.
#![allow(dead_code, unreachable_pub)]

pub mod pg_server;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_connector_postgres::PostgresSourceConnector;
use sluice_sdk::config::Props;
use sluice_sdk::connector::TaskStatusReporter;
use sluice_sdk::{
    ConnectorContext, ConnectorHost, Error, OffsetSnapshot, SourceConnector, SourceRecord,
    SourceTask, SourceTaskContext, Value,
};
use tokio::time::Instant;

pub use pg_server::PgServer;

/// Records what the connector asks of the runtime.
#[derive(Debug, Default)]
pub struct TestHost {
    pub reconfigurations: AtomicUsize,
    pub errors: Mutex<Vec<String>>,
}

impl ConnectorHost for TestHost {
    fn request_task_reconfiguration(&self) {
        self.reconfigurations.fetch_add(1, Ordering::SeqCst);
    }

    fn raise_error(&self, error: Error) {
        self.errors.lock().unwrap().push(error.to_string());
    }
}

/// Records every problem a task reports.
#[derive(Debug, Default)]
pub struct TestStatus {
    pub reports: Mutex<Vec<Option<String>>>,
}

impl TaskStatusReporter for TestStatus {
    fn report_problem(&self, problem: Option<String>) {
        self.reports.lock().unwrap().push(problem);
    }
}

impl TestStatus {
    pub fn reports(&self) -> Vec<Option<String>> {
        self.reports.lock().unwrap().clone()
    }
}

/// A started task with its status recorder.
pub struct RunningTask {
    pub task: Box<dyn SourceTask>,
    pub status: Arc<TestStatus>,
    pub config: Props,
}

pub use sluice_sdk::config::props;

/// Starts a connector with `config`.
pub async fn start_connector(config: &Props) -> (PostgresSourceConnector, Arc<TestHost>) {
    let host = Arc::new(TestHost::default());
    let mut connector = PostgresSourceConnector::default();
    connector
        .start(ConnectorContext::new("test", host.clone()), config.clone())
        .await
        .unwrap_or_else(|e| panic!("connector start failed: {e}"));
    (connector, host)
}

/// Starts one task per task configuration, resuming from `offsets`.
pub async fn start_tasks(
    connector: &mut PostgresSourceConnector,
    max_tasks: usize,
    offsets: OffsetSnapshot,
) -> Vec<RunningTask> {
    let configs = connector
        .task_configs(max_tasks)
        .await
        .expect("task configs");
    let offsets = Arc::new(offsets);
    let mut tasks = Vec::new();
    for (id, config) in configs.into_iter().enumerate() {
        let status = Arc::new(TestStatus::default());
        let mut task = connector.create_task();
        task.start(SourceTaskContext::new(
            "test",
            u32::try_from(id).unwrap(),
            config.clone(),
            offsets.clone(),
            status.clone(),
        ))
        .await
        .expect("task start");
        tasks.push(RunningTask {
            task,
            status,
            config,
        });
    }
    tasks
}

/// Connector + its single task.
pub async fn start_single(config: &Props, offsets: OffsetSnapshot) -> RunningTask {
    let (mut connector, _host) = start_connector(config).await;
    let mut tasks = start_tasks(&mut connector, 1, offsets).await;
    assert_eq!(tasks.len(), 1, "expected one task");
    tasks.remove(0)
}

/// Polls until `done(all records so far)` holds, failing after `limit`.
pub async fn poll_until(
    task: &mut dyn SourceTask,
    records: &mut Vec<SourceRecord>,
    limit: Duration,
    what: &str,
    done: impl Fn(&[SourceRecord]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(records) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {} records so far",
            records.len()
        );
        let batch = tokio::time::timeout_at(deadline, task.poll())
            .await
            .unwrap_or_else(|_| Ok(Vec::new()))
            .unwrap_or_else(|e| panic!("poll failed while waiting for {what}: {e}"));
        records.extend(batch);
    }
}

/// Polls `n` times, collecting what arrives.
pub async fn poll_times(task: &mut dyn SourceTask, n: usize) -> Vec<SourceRecord> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.extend(task.poll().await.expect("poll"));
    }
    out
}

/// The value's field `name`.
pub fn field<'a>(record: &'a SourceRecord, name: &str) -> &'a Value {
    record
        .value
        .as_struct()
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("record has no field {name}: {record:?}"))
}

/// An integer field.
pub fn int(record: &SourceRecord, name: &str) -> i64 {
    field(record, name)
        .as_i64()
        .unwrap_or_else(|| panic!("field {name} is not an integer: {record:?}"))
}

/// A string field.
pub fn text(record: &SourceRecord, name: &str) -> String {
    field(record, name)
        .as_str()
        .unwrap_or_else(|| panic!("field {name} is not a string: {record:?}"))
        .to_string()
}

/// The offsets a runtime would have committed after `records`: the last per partition.
pub fn committed(records: &[SourceRecord]) -> OffsetSnapshot {
    let mut last = std::collections::BTreeMap::new();
    for r in records {
        last.insert(
            serde_json::Value::Object(r.source_partition.clone()).to_string(),
            (r.source_partition.clone(), r.source_offset.clone()),
        );
    }
    OffsetSnapshot::new(last.into_values())
}

/// A plain client for setting up data.
pub async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A fresh database on the shared server, with a client, its URL, and its name.
pub async fn fresh_database(hint: &str) -> (tokio_postgres::Client, String, String) {
    let server = PgServer::shared();
    let name = tokio::task::spawn_blocking({
        let hint = hint.to_string();
        move || PgServer::shared().create_database(&hint)
    })
    .await
    .expect("create database");
    let url = server.url(&name);
    (client(&url).await, url, name)
}

/// Generous limit for waits on a 2-core machine shared with other builds.
pub const WAIT: Duration = Duration::from_secs(120);
