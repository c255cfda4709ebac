//! Per-task counters, rendered in Prometheus text format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Counters of one task.
#[derive(Debug, Default)]
pub struct TaskMetrics {
    /// Records returned by `poll` (source) or read from Kafka (sink).
    pub records_in: AtomicU64,
    /// Records acknowledged by Kafka (source) or written by `put` (sink).
    pub records_out: AtomicU64,
    /// Records or operations that failed.
    pub errors: AtomicU64,
    /// Records written to the dead letter topic.
    pub dlq_records: AtomicU64,
    /// Batches processed.
    pub batches: AtomicU64,
    /// Sum of batch processing times, microseconds.
    pub batch_latency_us: AtomicU64,
    /// Offset commits that succeeded.
    pub offset_commits: AtomicU64,
    /// Offset commits that failed.
    pub offset_commit_failures: AtomicU64,
    /// Sink: records behind the end of the assigned partitions (-1 unknown).
    pub sink_lag: AtomicI64,
}

impl TaskMetrics {
    /// Adds one batch that took `elapsed`.
    pub fn record_batch(&self, elapsed: Duration) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.batch_latency_us.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// Every task's counters.
/// Per (connector, task id): the task's kind and its metrics.
type TaskTable = BTreeMap<(String, u32), (&'static str, Arc<TaskMetrics>)>;

#[derive(Debug, Default)]
pub struct Metrics {
    tasks: Mutex<TaskTable>,
    topics: Mutex<BTreeMap<String, std::collections::BTreeSet<String>>>,
}

impl Metrics {
    /// The counters of a task (created on first use). `kind` is `source` or `sink`.
    pub fn task(&self, connector: &str, task: u32, kind: &'static str) -> Arc<TaskMetrics> {
        let mut tasks = self.tasks.lock().expect("metrics lock");
        let entry = tasks
            .entry((connector.to_string(), task))
            .or_insert_with(|| {
                let m = TaskMetrics::default();
                m.sink_lag.store(-1, Ordering::Relaxed);
                (kind, Arc::new(m))
            });
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

    /// Notes that `connector` used `topic` (Kafka Connect's "active topics").
    pub fn note_topic(&self, connector: &str, topic: &str) {
        let mut topics = self.topics.lock().expect("metrics lock");
        let set = topics.entry(connector.to_string()).or_default();
        if !set.contains(topic) {
            set.insert(topic.to_string());
        }
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

    /// Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let tasks = self.tasks.lock().expect("metrics lock");
        let mut out = String::new();
        type Getter = fn(&TaskMetrics) -> i64;
        let series: &[(&str, &str, &str, Getter)] = &[
            ("sluice_task_records_in_total", "counter", "Records polled from the source (source tasks) or read from Kafka (sink tasks).", |m| m.records_in.load(Ordering::Relaxed) as i64),
            ("sluice_task_records_out_total", "counter", "Records acknowledged by Kafka (source tasks) or written by the sink (sink tasks).", |m| m.records_out.load(Ordering::Relaxed) as i64),
            ("sluice_task_errors_total", "counter", "Records or operations that failed.", |m| m.errors.load(Ordering::Relaxed) as i64),
            ("sluice_task_dlq_records_total", "counter", "Records written to the dead letter topic.", |m| m.dlq_records.load(Ordering::Relaxed) as i64),
            ("sluice_task_batches_total", "counter", "Batches processed.", |m| m.batches.load(Ordering::Relaxed) as i64),
            ("sluice_task_batch_latency_seconds_sum", "counter", "Total time spent processing batches.", |m| (m.batch_latency_us.load(Ordering::Relaxed) / 1_000) as i64),
            ("sluice_task_offset_commits_total", "counter", "Offset commits that succeeded.", |m| m.offset_commits.load(Ordering::Relaxed) as i64),
            ("sluice_task_offset_commit_failures_total", "counter", "Offset commits that failed.", |m| m.offset_commit_failures.load(Ordering::Relaxed) as i64),
            ("sluice_sink_task_lag_records", "gauge", "Records between a sink task's position and the end of its partitions (-1 unknown).", |m| m.sink_lag.load(Ordering::Relaxed)),
        ];
        for (name, kind, help, get) in series {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for ((connector, task), (task_kind, m)) in tasks.iter() {
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
        out
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

    #[test]
    fn renders_prometheus_text_per_task() {
        let metrics = Metrics::default();
        let m = metrics.task("orders", 0, "source");
        m.records_in.fetch_add(5, Ordering::Relaxed);
        m.record_batch(Duration::from_millis(1500));
        metrics
            .task("es", 1, "sink")
            .sink_lag
            .store(42, Ordering::Relaxed);
        let text = metrics.render();
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
        assert!(!metrics.render().contains("orders"));
    }
}
