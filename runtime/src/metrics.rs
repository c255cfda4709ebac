//! Per-task and per-worker measurements, rendered in Prometheus text format at `/metrics`.
//!
//! Series are named as the Prometheus JMX exporter names Kafka Connect's MBeans, so dashboards
//! made for Kafka Connect work: `kafka_connect_<group>_<attribute>`, with the group and
//! attribute of Kafka Connect's `ConnectMetricsRegistry` and hyphens turned into underscores
//! (`kafka_connect_source_task_metrics_source_record_write_total`), labelled `connector` and
//! `task`. String attributes (status, class, version, ...) are info-style gauges: the string is
//! a label and the value is 1. Averages and maxima are over the task's life on this worker;
//! rates are over the last [`RATE_WINDOW`]. `docs/metrics.md` lists every series and what Kafka
//! Connect has that this runtime does not measure.
//!
//! The older `sluice_task_*` series are rendered too (integration tests and existing scrapes
//! use them, and `sluice_sink_task_lag_records` has no Kafka Connect equivalent).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::status::{ConnectorStatusView, State, TaskRatios};

/// The window rates (`*-rate`) are measured over.
pub const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Counters of one task.
#[derive(Debug)]
pub struct TaskMetrics {
    /// Records returned by `poll` (source) or read from Kafka (sink).
    pub records_in: AtomicU64,
    /// Records acknowledged by Kafka (source) or written by `put` (sink).
    pub records_out: AtomicU64,
    /// Failed attempts at processing a record or batch, retried ones included.
    pub errors: AtomicU64,
    /// Records written to the dead letter topic.
    pub dlq_records: AtomicU64,
    /// Batches processed.
    pub batches: AtomicU64,
    /// Records in the largest batch.
    pub batch_size_max: AtomicU64,
    /// Sum of batch processing times, microseconds.
    pub batch_latency_us: AtomicU64,
    /// Longest batch processing time, microseconds.
    pub batch_latency_max_us: AtomicU64,
    /// Offset commits that succeeded.
    pub offset_commits: AtomicU64,
    /// Offset commits that failed.
    pub offset_commit_failures: AtomicU64,
    /// Sum of offset commit times (successful or not), microseconds.
    pub offset_commit_us: AtomicU64,
    /// Longest offset commit, microseconds.
    pub offset_commit_max_us: AtomicU64,
    /// Sink: records behind the end of the assigned partitions (-1 unknown).
    pub sink_lag: AtomicI64,
    /// Records handed on but not yet done with: source records sent but not acknowledged,
    /// sink records read but whose offsets are not committed yet.
    pub active_records: AtomicI64,
    /// Sink: partitions assigned to the task.
    pub partition_count: AtomicI64,
    /// Records that failed for good and went to the error handler.
    pub record_errors: AtomicU64,
    /// Records the error handler tolerated and skipped (`errors.tolerance=all`).
    pub records_skipped: AtomicU64,
    /// Retries of a failed operation.
    pub retries: AtomicU64,
    /// Errors written to the log by the error handler.
    pub errors_logged: AtomicU64,
    /// Writes to the dead letter topic attempted.
    pub dlq_requests: AtomicU64,
    /// Writes to the dead letter topic that failed.
    pub dlq_failures: AtomicU64,
    /// When the last error happened, milliseconds since the epoch (0: never).
    pub last_error_ms: AtomicI64,
    /// Sink: the consumer group and, per partition, its end offset and the group's lag.
    pub partition_offsets: Mutex<PartitionOffsets>,
    rate_in: RateWindow,
    rate_out: RateWindow,
}

/// A partition's end offset and how far a consumer group's committed offset is behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffset {
    /// The high watermark: the offset the next record will get.
    pub end: i64,
    /// End minus the group's committed offset (`None`: nothing committed yet).
    pub lag: Option<i64>,
}

/// A sink task's view of its partitions, from librdkafka's statistics.
#[derive(Debug, Default, Clone)]
pub struct PartitionOffsets {
    /// The task's consumer group.
    pub group: String,
    /// Per (topic, partition).
    pub partitions: BTreeMap<(String, i32), PartitionOffset>,
}

impl Default for TaskMetrics {
    fn default() -> Self {
        Self {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            dlq_records: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            batch_size_max: AtomicU64::new(0),
            batch_latency_us: AtomicU64::new(0),
            batch_latency_max_us: AtomicU64::new(0),
            offset_commits: AtomicU64::new(0),
            offset_commit_failures: AtomicU64::new(0),
            offset_commit_us: AtomicU64::new(0),
            offset_commit_max_us: AtomicU64::new(0),
            sink_lag: AtomicI64::new(-1),
            active_records: AtomicI64::new(0),
            partition_count: AtomicI64::new(0),
            record_errors: AtomicU64::new(0),
            records_skipped: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            errors_logged: AtomicU64::new(0),
            dlq_requests: AtomicU64::new(0),
            dlq_failures: AtomicU64::new(0),
            last_error_ms: AtomicI64::new(0),
            partition_offsets: Mutex::new(PartitionOffsets::default()),
            rate_in: RateWindow::new(),
            rate_out: RateWindow::new(),
        }
    }
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

impl TaskMetrics {
    /// Adds one batch of `size` records that took `elapsed`.
    pub fn record_batch(&self, elapsed: Duration, size: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_size_max
            .fetch_max(size as u64, Ordering::Relaxed);
        let us = micros(elapsed);
        self.batch_latency_us.fetch_add(us, Ordering::Relaxed);
        self.batch_latency_max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Adds one offset commit that took `elapsed` and succeeded or not.
    pub fn record_offset_commit(&self, elapsed: Duration, succeeded: bool) {
        if succeeded {
            self.offset_commits.fetch_add(1, Ordering::Relaxed);
        } else {
            self.offset_commit_failures.fetch_add(1, Ordering::Relaxed);
        }
        let us = micros(elapsed);
        self.offset_commit_us.fetch_add(us, Ordering::Relaxed);
        self.offset_commit_max_us.fetch_max(us, Ordering::Relaxed);
    }

    /// Counts one failed attempt (of a record, a batch or a call) and stamps its time.
    pub fn record_failure(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.last_error_ms.store(now, Ordering::Relaxed);
    }
}

/// Samples of a counter, to turn it into a rate over [`RATE_WINDOW`].
#[derive(Debug)]
struct RateWindow {
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl RateWindow {
    fn new() -> Self {
        // The counter was 0 when the task's metrics were created: the first rate is the
        // average since then.
        Self {
            samples: Mutex::new(VecDeque::from([(Instant::now(), 0)])),
        }
    }

    /// Per second, between the oldest sample inside the window (or the newest before it)
    /// and `total` now.
    fn rate(&self, total: u64) -> f64 {
        let now = Instant::now();
        let mut samples = self.samples.lock().expect("rate lock");
        // Keep one sample at or before the window's start, so the window is always covered.
        while samples.len() > 1 && now.duration_since(samples[1].0) >= RATE_WINDOW {
            samples.pop_front();
        }
        let (then, before) = samples.front().copied().unwrap_or((now, total));
        // At most one sample a second, so frequent scrapes keep the window small.
        if samples
            .back()
            .is_none_or(|(t, _)| now.duration_since(*t) >= Duration::from_secs(1))
        {
            samples.push_back((now, total));
        }
        let secs = now.duration_since(then).as_secs_f64();
        if secs < 0.001 {
            return 0.0;
        }
        total.saturating_sub(before) as f64 / secs
    }
}

/// Worker-wide counters (Kafka Connect's `connect-worker-metrics` group).
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Connector starts attempted.
    pub connector_startup_attempts: AtomicU64,
    /// Connector starts that succeeded.
    pub connector_startup_successes: AtomicU64,
    /// Connector starts that failed.
    pub connector_startup_failures: AtomicU64,
    /// Task starts attempted.
    pub task_startup_attempts: AtomicU64,
    /// Task starts that succeeded.
    pub task_startup_successes: AtomicU64,
    /// Task starts that failed.
    pub task_startup_failures: AtomicU64,
}

/// What `/metrics` needs to know of one connector besides its counters.
#[derive(Debug, Clone)]
pub struct ConnectorView {
    /// The connector's name.
    pub name: String,
    /// Its class, as `connector.class` resolved it.
    pub class: String,
    /// Its plugin's version.
    pub version: String,
    /// Its status and its tasks'.
    pub status: Option<ConnectorStatusView>,
    /// Per task: fractions of its life spent running and paused.
    pub ratios: TaskRatios,
}

/// What `/metrics` needs to know of the worker.
#[derive(Debug, Clone)]
pub struct WorkerView {
    /// This worker's id (`host:port` of its REST API).
    pub worker_id: String,
    /// Every connector on this worker.
    pub connectors: Vec<ConnectorView>,
    /// The group's leader as `host:port` of its REST API (`None` before the first join).
    pub leader: Option<String>,
    /// The generation of the last assignment applied.
    pub epoch: Option<i32>,
    /// Rebalances completed by this worker.
    pub completed_rebalances: u64,
    /// Whether a rebalance is under way.
    pub rebalancing: bool,
}

/// Every task's counters.
/// Per (connector, task id): the task's kind and its metrics.
type TaskTable = BTreeMap<(String, u32), (&'static str, Arc<TaskMetrics>)>;

/// One entry of the task table, copied out to render without holding its lock.
type TaskRow = ((String, u32), (&'static str, Arc<TaskMetrics>));

/// The registry of every measurement of this worker.
#[derive(Debug, Default)]
pub struct Metrics {
    tasks: Mutex<TaskTable>,
    topics: Mutex<BTreeMap<String, std::collections::BTreeSet<String>>>,
    /// Worker-wide counters.
    pub worker: WorkerCounters,
}

/// One metric family being rendered: its samples, written after its HELP and TYPE lines.
struct Family {
    name: String,
    help: &'static str,
    kind: &'static str,
    samples: Vec<String>,
}

/// Families in the order they were first written.
#[derive(Default)]
struct Exposition {
    families: Vec<Family>,
}

impl Exposition {
    /// Adds a sample of `kafka_connect_<group>_<attribute>`.
    fn connect(
        &mut self,
        group: &str,
        attribute: &str,
        kind: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let name = format!("kafka_connect_{group}_{attribute}").replace('-', "_");
        self.sample(name, kind, help, labels, value);
    }

    fn sample(
        &mut self,
        name: String,
        kind: &'static str,
        help: &'static str,
        labels: &[(&str, &str)],
        value: f64,
    ) {
        let mut line = name.clone();
        if !labels.is_empty() {
            line.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{k}=\"{}\"", escape(v));
            }
            line.push('}');
        }
        let _ = write!(line, " {}", format_value(value));
        match self.families.iter_mut().find(|f| f.name == name) {
            Some(f) => f.samples.push(line),
            None => self.families.push(Family {
                name,
                help,
                kind,
                samples: vec![line],
            }),
        }
    }

    fn finish(self, out: &mut String) {
        for f in self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            for s in f.samples {
                let _ = writeln!(out, "{s}");
            }
        }
    }
}

fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value:.3}")
    }
}

const CONNECTOR_GROUP: &str = "connector-metrics";
const TASK_GROUP: &str = "connector-task-metrics";
const SOURCE_GROUP: &str = "source-task-metrics";
const SINK_GROUP: &str = "sink-task-metrics";
const ERROR_GROUP: &str = "task-error-metrics";
const WORKER_GROUP: &str = "connect-worker-metrics";
const REBALANCE_GROUP: &str = "connect-worker-rebalance-metrics";

fn state_name(state: State) -> &'static str {
    match state {
        State::Unassigned => "unassigned",
        State::Running => "running",
        State::Paused => "paused",
        State::Stopped => "stopped",
        State::Failed => "failed",
        State::Restarting => "restarting",
    }
}

fn load(counter: &AtomicU64) -> f64 {
    counter.load(Ordering::Relaxed) as f64
}

fn average(sum: f64, count: f64) -> f64 {
    if count == 0.0 {
        0.0
    } else {
        sum / count
    }
}

impl Metrics {
    /// The counters of a task (created on first use). `kind` is `source` or `sink`.
    pub fn task(&self, connector: &str, task: u32, kind: &'static str) -> Arc<TaskMetrics> {
        let mut tasks = self.tasks.lock().expect("metrics lock");
        let entry = tasks
            .entry((connector.to_string(), task))
            .or_insert_with(|| (kind, Arc::new(TaskMetrics::default())));
        entry.1.clone()
    }

    /// Forgets a deleted connector's tasks.
    pub fn remove_connector(&self, connector: &str) {
        self.tasks
            .lock()
            .expect("metrics lock")
            .retain(|(c, _), _| c != connector);
        self.reset_topics(connector);
    }

    /// Notes that `connector` used `topic` (Kafka Connect's "active topics"); true the first
    /// time.
    pub fn note_topic(&self, connector: &str, topic: &str) -> bool {
        let mut topics = self.topics.lock().expect("metrics lock");
        let set = topics.entry(connector.to_string()).or_default();
        if set.contains(topic) {
            return false;
        }
        set.insert(topic.to_string())
    }

    /// The topics `connector` has used.
    pub fn topics_of(&self, connector: &str) -> std::collections::BTreeSet<String> {
        self.topics
            .lock()
            .expect("metrics lock")
            .get(connector)
            .cloned()
            .unwrap_or_default()
    }

    /// Forgets the topics `connector` has used.
    pub fn reset_topics(&self, connector: &str) {
        self.topics.lock().expect("metrics lock").remove(connector);
    }

    /// Prometheus text exposition of every measurement: Kafka Connect's groups for the
    /// connectors and tasks of `view`, then the older `sluice_*` series.
    pub fn render(&self, view: &WorkerView) -> String {
        let tasks: Vec<TaskRow> = self
            .tasks
            .lock()
            .expect("metrics lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut x = Exposition::default();
        self.render_worker(&mut x, view);
        for c in &view.connectors {
            render_connector(&mut x, c);
        }
        for ((connector, task), (kind, m)) in &tasks {
            render_task(&mut x, connector, *task, kind, m);
        }
        render_partitions(&mut x, &tasks);
        let mut out = String::new();
        x.finish(&mut out);
        render_legacy(&mut out, &tasks);
        out
    }

    fn render_worker(&self, x: &mut Exposition, view: &WorkerView) {
        let w = &self.worker;
        let task_count: usize = view
            .connectors
            .iter()
            .map(|c| c.status.as_ref().map_or(0, |s| s.tasks.len()))
            .sum();
        x.connect(
            WORKER_GROUP,
            "connector-count",
            "gauge",
            "The number of connectors run in this worker.",
            &[],
            view.connectors.len() as f64,
        );
        x.connect(
            WORKER_GROUP,
            "task-count",
            "gauge",
            "The number of tasks run in this worker.",
            &[],
            task_count as f64,
        );
        let counters: [(&str, &'static str, &AtomicU64); 6] = [
            (
                "connector-startup-attempts-total",
                "The total number of connector startups that this worker has attempted.",
                &w.connector_startup_attempts,
            ),
            (
                "connector-startup-success-total",
                "The total number of connector starts that succeeded.",
                &w.connector_startup_successes,
            ),
            (
                "connector-startup-failure-total",
                "The total number of connector starts that failed.",
                &w.connector_startup_failures,
            ),
            (
                "task-startup-attempts-total",
                "The total number of task startups that this worker has attempted.",
                &w.task_startup_attempts,
            ),
            (
                "task-startup-success-total",
                "The total number of task starts that succeeded.",
                &w.task_startup_successes,
            ),
            (
                "task-startup-failure-total",
                "The total number of task starts that failed.",
                &w.task_startup_failures,
            ),
        ];
        for (attribute, help, counter) in counters {
            x.connect(WORKER_GROUP, attribute, "counter", help, &[], load(counter));
        }
        for c in &view.connectors {
            let Some(status) = &c.status else { continue };
            let count =
                |state: State| status.tasks.values().filter(|t| t.state == state).count() as f64;
            let labels = [("connector", c.name.as_str())];
            x.connect(
                WORKER_GROUP,
                "connector-total-task-count",
                "gauge",
                "The number of tasks of the connector on the worker.",
                &labels,
                status.tasks.len() as f64,
            );
            x.connect(
                WORKER_GROUP,
                "connector-running-task-count",
                "gauge",
                "The number of running tasks of the connector on the worker.",
                &labels,
                count(State::Running),
            );
            x.connect(
                WORKER_GROUP,
                "connector-paused-task-count",
                "gauge",
                "The number of paused tasks of the connector on the worker.",
                &labels,
                count(State::Paused),
            );
            x.connect(
                WORKER_GROUP,
                "connector-failed-task-count",
                "gauge",
                "The number of failed tasks of the connector on the worker.",
                &labels,
                count(State::Failed),
            );
            x.connect(
                WORKER_GROUP,
                "connector-unassigned-task-count",
                "gauge",
                "The number of unassigned tasks of the connector on the worker.",
                &labels,
                count(State::Unassigned),
            );
            x.connect(
                WORKER_GROUP,
                "connector-restarting-task-count",
                "gauge",
                "The number of restarting tasks of the connector on the worker.",
                &labels,
                count(State::Restarting),
            );
        }
        if let Some(leader) = &view.leader {
            x.connect(
                REBALANCE_GROUP,
                "leader-name",
                "gauge",
                "The name of the group leader (info: the value is the label).",
                &[("leader_name", leader.as_str())],
                1.0,
            );
        }
        if let Some(epoch) = view.epoch {
            x.connect(
                REBALANCE_GROUP,
                "epoch",
                "gauge",
                "The epoch or generation number of this worker.",
                &[],
                f64::from(epoch),
            );
        }
        x.connect(
            REBALANCE_GROUP,
            "completed-rebalances-total",
            "counter",
            "The total number of rebalances completed by this worker.",
            &[],
            view.completed_rebalances as f64,
        );
        x.connect(
            REBALANCE_GROUP,
            "rebalancing",
            "gauge",
            "Whether this worker is currently rebalancing.",
            &[],
            if view.rebalancing { 1.0 } else { 0.0 },
        );
    }
}

fn render_connector(x: &mut Exposition, c: &ConnectorView) {
    let name = c.name.as_str();
    if let Some(status) = &c.status {
        x.connect(
            CONNECTOR_GROUP,
            "status",
            "gauge",
            "The status of the connector (info: the value is the label).",
            &[
                ("connector", name),
                ("status", state_name(status.connector.state)),
            ],
            1.0,
        );
        x.connect(
            CONNECTOR_GROUP,
            "connector-type",
            "gauge",
            "The type of the connector, source or sink (info: the value is the label).",
            &[("connector", name), ("connector_type", status.kind)],
            1.0,
        );
        for (task, t) in &status.tasks {
            let id = task.to_string();
            x.connect(
                TASK_GROUP,
                "status",
                "gauge",
                "The status of the connector task (info: the value is the label).",
                &[
                    ("connector", name),
                    ("task", &id),
                    ("status", state_name(t.state)),
                ],
                1.0,
            );
            if let Some((running, paused)) = c.ratios.get(task) {
                x.connect(
                    TASK_GROUP,
                    "running-ratio",
                    "gauge",
                    "The fraction of time this task has spent in the running state.",
                    &[("connector", name), ("task", &id)],
                    *running,
                );
                x.connect(
                    TASK_GROUP,
                    "pause-ratio",
                    "gauge",
                    "The fraction of time this task has spent in the pause state.",
                    &[("connector", name), ("task", &id)],
                    *paused,
                );
            }
        }
    }
    x.connect(
        CONNECTOR_GROUP,
        "connector-class",
        "gauge",
        "The name of the connector class (info: the value is the label).",
        &[("connector", name), ("connector_class", &c.class)],
        1.0,
    );
    x.connect(CONNECTOR_GROUP, "connector-version", "gauge", "The version of the connector class, as reported by the connector (info: the value is the label).", &[("connector", name), ("connector_version", &c.version)], 1.0);
}

fn render_task(x: &mut Exposition, connector: &str, task: u32, kind: &str, m: &TaskMetrics) {
    let id = task.to_string();
    let labels = [("connector", connector), ("task", id.as_str())];
    let batches = load(&m.batches);
    let commits = load(&m.offset_commits);
    let commit_failures = load(&m.offset_commit_failures);
    let attempts = commits + commit_failures;
    let batch_ms_avg = average(load(&m.batch_latency_us), batches) / 1000.0;
    let batch_ms_max = load(&m.batch_latency_max_us) / 1000.0;
    let records_in = m.records_in.load(Ordering::Relaxed);
    let records_out = m.records_out.load(Ordering::Relaxed);
    x.connect(
        TASK_GROUP,
        "offset-commit-avg-time-ms",
        "gauge",
        "The average time in milliseconds taken by this task to commit offsets.",
        &labels,
        average(load(&m.offset_commit_us), attempts) / 1000.0,
    );
    x.connect(
        TASK_GROUP,
        "offset-commit-max-time-ms",
        "gauge",
        "The maximum time in milliseconds taken by this task to commit offsets.",
        &labels,
        load(&m.offset_commit_max_us) / 1000.0,
    );
    x.connect(
        TASK_GROUP,
        "offset-commit-success-percentage",
        "gauge",
        "The average percentage of this task's offset commit attempts that succeeded.",
        &labels,
        average(commits, attempts),
    );
    x.connect(
        TASK_GROUP,
        "offset-commit-failure-percentage",
        "gauge",
        "The average percentage of this task's offset commit attempts that failed.",
        &labels,
        average(commit_failures, attempts),
    );
    x.connect(
        TASK_GROUP,
        "batch-size-avg",
        "gauge",
        "The average number of records in the batches the task has processed so far.",
        &labels,
        average(records_in as f64, batches),
    );
    x.connect(
        TASK_GROUP,
        "batch-size-max",
        "gauge",
        "The number of records in the largest batch the task has processed so far.",
        &labels,
        load(&m.batch_size_max),
    );
    if kind == "source" {
        x.connect(
            SOURCE_GROUP,
            "source-record-poll-total",
            "counter",
            "The total number of records produced/polled (before transformation) by this task.",
            &labels,
            records_in as f64,
        );
        x.connect(SOURCE_GROUP, "source-record-poll-rate", "gauge", "The average per-second number of records produced/polled (before transformation) by this task.", &labels, m.rate_in.rate(records_in));
        x.connect(SOURCE_GROUP, "source-record-write-total", "counter", "The number of records output from the transformations and written to Kafka for this task.", &labels, records_out as f64);
        x.connect(SOURCE_GROUP, "source-record-write-rate", "gauge", "The average per-second number of records output from the transformations and written to Kafka for this task.", &labels, m.rate_out.rate(records_out));
        x.connect(SOURCE_GROUP, "poll-batch-avg-time-ms", "gauge", "The average time in milliseconds taken by this task to poll for a batch of source records.", &labels, batch_ms_avg);
        x.connect(SOURCE_GROUP, "poll-batch-max-time-ms", "gauge", "The maximum time in milliseconds taken by this task to poll for a batch of source records.", &labels, batch_ms_max);
        x.connect(SOURCE_GROUP, "source-record-active-count", "gauge", "The number of records that have been produced by this task but not yet completely written to Kafka.", &labels, m.active_records.load(Ordering::Relaxed) as f64);
    } else {
        x.connect(
            SINK_GROUP,
            "sink-record-read-total",
            "counter",
            "The total number of records read from Kafka by this task since it was last restarted.",
            &labels,
            records_in as f64,
        );
        x.connect(
            SINK_GROUP,
            "sink-record-read-rate",
            "gauge",
            "The average per-second number of records read from Kafka for this task.",
            &labels,
            m.rate_in.rate(records_in),
        );
        x.connect(SINK_GROUP, "sink-record-send-total", "counter", "The total number of records output from the transformations and sent/put to this task.", &labels, records_out as f64);
        x.connect(SINK_GROUP, "sink-record-send-rate", "gauge", "The average per-second number of records output from the transformations and sent/put to this task.", &labels, m.rate_out.rate(records_out));
        x.connect(SINK_GROUP, "sink-record-active-count", "gauge", "The number of records that have been read from Kafka but not yet completely committed/flushed/acknowledged by the sink task.", &labels, m.active_records.load(Ordering::Relaxed) as f64);
        x.connect(
            SINK_GROUP,
            "partition-count",
            "gauge",
            "The number of topic partitions assigned to this task.",
            &labels,
            m.partition_count.load(Ordering::Relaxed) as f64,
        );
        x.connect(
            SINK_GROUP,
            "offset-commit-completion-total",
            "counter",
            "The total number of offset commit completions that were completed successfully.",
            &labels,
            commits,
        );
        x.connect(
            SINK_GROUP,
            "put-batch-avg-time-ms",
            "gauge",
            "The average time taken by this task to put a batch of sinks records.",
            &labels,
            batch_ms_avg,
        );
        x.connect(
            SINK_GROUP,
            "put-batch-max-time-ms",
            "gauge",
            "The maximum time taken by this task to put a batch of sinks records.",
            &labels,
            batch_ms_max,
        );
    }
    x.connect(
        ERROR_GROUP,
        "total-record-failures",
        "counter",
        "The number of record processing failures in this task (retried attempts included).",
        &labels,
        load(&m.errors),
    );
    x.connect(
        ERROR_GROUP,
        "total-record-errors",
        "counter",
        "The number of record processing errors in this task.",
        &labels,
        load(&m.record_errors),
    );
    x.connect(
        ERROR_GROUP,
        "total-records-skipped",
        "counter",
        "The number of records skipped due to errors.",
        &labels,
        load(&m.records_skipped),
    );
    x.connect(
        ERROR_GROUP,
        "total-retries",
        "counter",
        "The number of operations retried.",
        &labels,
        load(&m.retries),
    );
    x.connect(
        ERROR_GROUP,
        "total-errors-logged",
        "counter",
        "The number of errors that were logged.",
        &labels,
        load(&m.errors_logged),
    );
    x.connect(
        ERROR_GROUP,
        "deadletterqueue-produce-requests",
        "counter",
        "The number of attempted writes to the dead letter queue.",
        &labels,
        load(&m.dlq_requests),
    );
    x.connect(
        ERROR_GROUP,
        "deadletterqueue-produce-failures",
        "counter",
        "The number of failed writes to the dead letter queue.",
        &labels,
        load(&m.dlq_failures),
    );
    x.connect(
        ERROR_GROUP,
        "last-error-timestamp",
        "gauge",
        "The epoch timestamp in milliseconds when this task last encountered an error (0: never).",
        &labels,
        m.last_error_ms.load(Ordering::Relaxed) as f64,
    );
}

/// kafka_exporter's partition series, for the partitions the sink tasks read.
fn render_partitions(x: &mut Exposition, tasks: &[TaskRow]) {
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut lags: BTreeMap<(String, String, i32), i64> = BTreeMap::new();
    for (_, (_, m)) in tasks {
        let offsets = m
            .partition_offsets
            .lock()
            .expect("partition offsets lock")
            .clone();
        for ((topic, partition), p) in offsets.partitions {
            let end = ends.entry((topic.clone(), partition)).or_insert(p.end);
            *end = (*end).max(p.end);
            if let Some(lag) = p.lag {
                lags.insert((offsets.group.clone(), topic, partition), lag);
            }
        }
    }
    for ((topic, partition), end) in ends {
        let partition = partition.to_string();
        x.sample(
            "kafka_topic_partition_current_offset".to_string(),
            "gauge",
            "Current offset of a partition a sink task reads (its high watermark).",
            &[("topic", &topic), ("partition", &partition)],
            end as f64,
        );
    }
    for ((group, topic, partition), lag) in lags {
        let partition = partition.to_string();
        x.sample(
            "kafka_consumergroup_lag".to_string(),
            "gauge",
            "Current approximate lag of a sink connector's consumer group at topic/partition.",
            &[
                ("consumergroup", &group),
                ("topic", &topic),
                ("partition", &partition),
            ],
            lag as f64,
        );
    }
}

/// The series sluice exported before it followed Kafka Connect's names.
fn render_legacy(out: &mut String, tasks: &[TaskRow]) {
    type Getter = fn(&TaskMetrics) -> i64;
    let series: &[(&str, &str, &str, Getter)] = &[
        (
            "sluice_task_records_in_total",
            "counter",
            "Records polled from the source (source tasks) or read from Kafka (sink tasks).",
            |m| m.records_in.load(Ordering::Relaxed) as i64,
        ),
        (
            "sluice_task_records_out_total",
            "counter",
            "Records acknowledged by Kafka (source tasks) or written by the sink (sink tasks).",
            |m| m.records_out.load(Ordering::Relaxed) as i64,
        ),
        (
            "sluice_task_errors_total",
            "counter",
            "Records or operations that failed.",
            |m| m.errors.load(Ordering::Relaxed) as i64,
        ),
        (
            "sluice_task_dlq_records_total",
            "counter",
            "Records written to the dead letter topic.",
            |m| m.dlq_records.load(Ordering::Relaxed) as i64,
        ),
        (
            "sluice_task_batches_total",
            "counter",
            "Batches processed.",
            |m| m.batches.load(Ordering::Relaxed) as i64,
        ),
        (
            "sluice_task_batch_latency_seconds_sum",
            "counter",
            "Total time spent processing batches.",
            |m| (m.batch_latency_us.load(Ordering::Relaxed) / 1_000) as i64,
        ),
        (
            "sluice_task_offset_commits_total",
            "counter",
            "Offset commits that succeeded.",
            |m| m.offset_commits.load(Ordering::Relaxed) as i64,
        ),
        (
            "sluice_task_offset_commit_failures_total",
            "counter",
            "Offset commits that failed.",
            |m| m.offset_commit_failures.load(Ordering::Relaxed) as i64,
        ),
        (
            "sluice_sink_task_lag_records",
            "gauge",
            "Records between a sink task's position and the end of its partitions (-1 unknown).",
            |m| m.sink_lag.load(Ordering::Relaxed),
        ),
    ];
    for (name, kind, help, get) in series {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for ((connector, task), (task_kind, m)) in tasks {
            let value = get(m);
            if name.ends_with("latency_seconds_sum") {
                let _ = writeln!(
                    out,
                    "{name}{{connector=\"{}\",task=\"{task}\",type=\"{task_kind}\"}} {:.3}",
                    escape(connector),
                    value as f64 / 1000.0
                );
            } else if !name.starts_with("sluice_sink_") || *task_kind == "sink" {
                let _ = writeln!(
                    out,
                    "{name}{{connector=\"{}\",task=\"{task}\",type=\"{task_kind}\"}} {value}",
                    escape(connector)
                );
            }
        }
    }
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;

    fn view(metrics_of: &str) -> WorkerView {
        let mut tasks = BTreeMap::new();
        tasks.insert(
            0,
            Status {
                state: State::Running,
                trace: None,
                problem: None,
            },
        );
        WorkerView {
            worker_id: "127.0.0.1:8083".into(),
            leader: Some("127.0.0.1:8083".into()),
            epoch: Some(1),
            completed_rebalances: 1,
            rebalancing: false,
            connectors: vec![ConnectorView {
                name: metrics_of.into(),
                class: "file-source".into(),
                version: "1.0".into(),
                status: Some(ConnectorStatusView {
                    kind: "source",
                    connector: Status {
                        state: State::Running,
                        trace: None,
                        problem: None,
                    },
                    tasks,
                    connector_worker: None,
                    task_workers: BTreeMap::new(),
                }),
                ratios: BTreeMap::from([(0, (0.75, 0.25))]),
            }],
        }
    }

    #[test]
    fn renders_prometheus_text_per_task() {
        let metrics = Metrics::default();
        let m = metrics.task("orders", 0, "source");
        m.records_in.fetch_add(5, Ordering::Relaxed);
        m.record_batch(Duration::from_millis(1500), 5);
        metrics
            .task("es", 1, "sink")
            .sink_lag
            .store(42, Ordering::Relaxed);
        let text = metrics.render(&view("orders"));
        assert!(text.contains("# TYPE sluice_task_records_in_total counter"));
        assert!(text.contains(
            "sluice_task_records_in_total{connector=\"orders\",task=\"0\",type=\"source\"} 5"
        ));
        assert!(text.contains("sluice_task_batch_latency_seconds_sum{connector=\"orders\",task=\"0\",type=\"source\"} 1.500"));
        assert!(text.contains(
            "sluice_sink_task_lag_records{connector=\"es\",task=\"1\",type=\"sink\"} 42"
        ));
        assert!(!text.contains("sluice_sink_task_lag_records{connector=\"orders\""));
        metrics.remove_connector("orders");
        assert!(!metrics.render(&view("other")).contains("\"orders\""));
    }

    #[test]
    fn renders_kafka_connect_names() {
        let metrics = Metrics::default();
        let m = metrics.task("orders", 0, "source");
        m.records_in.fetch_add(6, Ordering::Relaxed);
        m.records_out.fetch_add(4, Ordering::Relaxed);
        m.record_batch(Duration::from_millis(10), 2);
        m.record_batch(Duration::from_millis(30), 4);
        m.record_offset_commit(Duration::from_millis(4), true);
        m.record_offset_commit(Duration::from_millis(2), false);
        metrics
            .worker
            .connector_startup_attempts
            .fetch_add(1, Ordering::Relaxed);
        let text = metrics.render(&view("orders"));
        for line in [
            "# TYPE kafka_connect_source_task_metrics_source_record_write_total counter",
            "kafka_connect_source_task_metrics_source_record_write_total{connector=\"orders\",task=\"0\"} 4",
            "kafka_connect_source_task_metrics_source_record_poll_total{connector=\"orders\",task=\"0\"} 6",
            "kafka_connect_source_task_metrics_poll_batch_avg_time_ms{connector=\"orders\",task=\"0\"} 20",
            "kafka_connect_source_task_metrics_poll_batch_max_time_ms{connector=\"orders\",task=\"0\"} 30",
            "kafka_connect_connector_task_metrics_batch_size_avg{connector=\"orders\",task=\"0\"} 3",
            "kafka_connect_connector_task_metrics_batch_size_max{connector=\"orders\",task=\"0\"} 4",
            "kafka_connect_connector_task_metrics_offset_commit_avg_time_ms{connector=\"orders\",task=\"0\"} 3",
            "kafka_connect_connector_task_metrics_offset_commit_max_time_ms{connector=\"orders\",task=\"0\"} 4",
            "kafka_connect_connector_task_metrics_offset_commit_success_percentage{connector=\"orders\",task=\"0\"} 0.500",
            "kafka_connect_connector_task_metrics_status{connector=\"orders\",task=\"0\",status=\"running\"} 1",
            "kafka_connect_connector_task_metrics_running_ratio{connector=\"orders\",task=\"0\"} 0.750",
            "kafka_connect_connector_metrics_status{connector=\"orders\",status=\"running\"} 1",
            "kafka_connect_connector_metrics_connector_class{connector=\"orders\",connector_class=\"file-source\"} 1",
            "kafka_connect_connect_worker_metrics_connector_count 1",
            "kafka_connect_connect_worker_metrics_task_count 1",
            "kafka_connect_connect_worker_metrics_connector_startup_attempts_total 1",
            "kafka_connect_connect_worker_metrics_connector_running_task_count{connector=\"orders\"} 1",
            "kafka_connect_connect_worker_rebalance_metrics_completed_rebalances_total 1",
            "kafka_connect_connect_worker_rebalance_metrics_epoch 1",
            "kafka_connect_connect_worker_rebalance_metrics_leader_name{leader_name=\"127.0.0.1:8083\"} 1",
            "kafka_connect_task_error_metrics_total_record_failures{connector=\"orders\",task=\"0\"} 0",
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
        metrics
            .task("out", 0, "sink")
            .partition_offsets
            .lock()
            .unwrap()
            .clone_from(&PartitionOffsets {
                group: "connect-out".into(),
                partitions: BTreeMap::from([(
                    ("lines".to_string(), 0),
                    PartitionOffset {
                        end: 10,
                        lag: Some(3),
                    },
                )]),
            });
        let text = metrics.render(&view("orders"));
        assert!(text
            .contains("kafka_topic_partition_current_offset{topic=\"lines\",partition=\"0\"} 10"));
        assert!(text.contains(
            "kafka_consumergroup_lag{consumergroup=\"connect-out\",topic=\"lines\",partition=\"0\"} 3"
        ));
        // Each family has one HELP line, however many samples.
        assert_eq!(
            text.matches("# HELP kafka_connect_task_error_metrics_total_retries ")
                .count(),
            1
        );
    }

    #[test]
    fn rate_is_per_second_over_the_window() {
        let window = RateWindow::new();
        std::thread::sleep(Duration::from_millis(50));
        let rate = window.rate(10);
        assert!(rate > 10.0 && rate < 10.0 / 0.05 + 1.0, "{rate}");
    }
}
