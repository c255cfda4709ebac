//! `/metrics`: Kafka Connect's metric groups under the JMX exporter's names, checked against a
//! real worker running a file source, a file sink and a dead letter queue, and against every
//! series the shipped Grafana dashboard (`examples/monitoring/`) queries.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{read_lines, read_topic, wait_for, WorkerOptions, WorkerProcess};

const DASHBOARD: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../examples/monitoring/grafana-dashboard.json"
);

/// Every PromQL expression of the dashboard: panel targets and template variable queries.
fn dashboard_queries(dashboard: &Value) -> Vec<String> {
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = panels.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().unwrap().to_string());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let query = &variable["query"];
        let query = query["query"].as_str().or(query.as_str()).unwrap();
        queries.push(query.to_string());
    }
    queries
}

/// The metric names a PromQL expression uses (ours all start `kafka_` or `sluice_`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|t| t.starts_with("kafka_") || t.starts_with("sluice_"))
        .map(str::to_string)
        .collect()
}

/// The value of the first sample of `name` whose labels include every one of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            let bare = series.split('{').next().unwrap_or("");
            bare == name
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

async fn scrape(worker: &WorkerProcess) -> String {
    let response = reqwest::get(worker.url("/metrics")).await.unwrap();
    assert!(response.status().is_success());
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_series_exist_and_counters_are_right() {
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    let input = dir.path().join("in.txt");
    let output = dir.path().join("out.txt");
    let lines = [r#"{"n":1}"#, r#"{"n":2}"#, "not json {", r#"{"n":3}"#];
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    worker.write_config(
        "lines.json",
        &json!({"name": "lines", "config": {
            "connector.class": "file-source", "file": input, "topic": "lines",
            "key.converter": "string", "value.converter": "string"}}),
    );
    worker.write_config(
        "out.json",
        &json!({"name": "out", "config": {
            "connector.class": "file-sink", "topics": "lines", "file": output,
            "key.converter": "string",
            "value.converter": "json", "value.converter.schemas.enable": "false",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": "lines-dlq"}}),
    );
    let written = wait_for(
        Duration::from_secs(60),
        "the good lines in the sink's file",
        || async {
            let got = read_lines(&output);
            (got.len() >= 3).then_some(got)
        },
    )
    .await;
    assert_eq!(written, [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]);
    let bootstrap = worker.bootstrap();
    let dead = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "lines-dlq", 1, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert_eq!(dead[0].value.as_deref(), Some(&b"not json {"[..]));

    let source = [("connector", "lines"), ("task", "0")];
    let sink = [("connector", "out"), ("task", "0")];
    // Acknowledgements and the sink's counters may trail the file by a moment.
    let text = wait_for(
        Duration::from_secs(30),
        "the counters to settle",
        || async {
            let text = scrape(&worker).await;
            // Partition offsets come with librdkafka's statistics, every 5 s.
            let settled = sample(
                &text,
                "kafka_consumergroup_lag",
                &[("consumergroup", "connect-out"), ("topic", "lines")],
            )
            .is_some()
                && sample(
                    &text,
                    "kafka_connect_source_task_metrics_source_record_write_total",
                    &source,
                ) == Some(4.0)
                && sample(
                    &text,
                    "kafka_connect_sink_task_metrics_sink_record_read_total",
                    &sink,
                ) == Some(4.0)
                && sample(
                    &text,
                    "kafka_connect_task_error_metrics_deadletterqueue_produce_requests",
                    &sink,
                ) == Some(1.0);
            settled.then_some(text)
        },
    )
    .await;

    // Every series the dashboard queries exists, with at least one sample.
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap())
        .expect("the dashboard is JSON");
    assert_eq!(dashboard["__inputs"][0]["name"], "DS_PROMETHEUS");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() > 20, "{queries:?}");
    let mut names = BTreeSet::new();
    for query in &queries {
        let used = metric_names(query);
        assert!(
            !used.is_empty(),
            "no sluice metric in the dashboard query {query}"
        );
        names.extend(used);
    }
    for name in &names {
        assert!(
            sample(&text, name, &[]).is_some(),
            "the dashboard queries {name}, which /metrics does not export:\n{text}"
        );
    }

    // The counters are the pipeline's.
    let get = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}:\n{text}"))
    };
    assert_eq!(
        get(
            "kafka_connect_source_task_metrics_source_record_poll_total",
            &source
        ),
        4.0
    );
    assert_eq!(
        get(
            "kafka_connect_source_task_metrics_source_record_active_count",
            &source
        ),
        0.0
    );
    assert_eq!(
        get(
            "kafka_connect_sink_task_metrics_sink_record_send_total",
            &sink
        ),
        3.0,
        "the bad record is not put"
    );
    assert_eq!(
        get("kafka_connect_sink_task_metrics_partition_count", &sink),
        1.0
    );
    assert!(
        get(
            "kafka_connect_task_error_metrics_total_record_failures",
            &sink
        ) >= 1.0
    );
    assert_eq!(
        get(
            "kafka_connect_task_error_metrics_total_record_errors",
            &sink
        ),
        1.0
    );
    assert_eq!(
        get(
            "kafka_connect_task_error_metrics_total_records_skipped",
            &sink
        ),
        1.0
    );
    assert_eq!(
        get(
            "kafka_connect_task_error_metrics_deadletterqueue_produce_failures",
            &sink
        ),
        0.0
    );
    assert!(
        get(
            "kafka_connect_task_error_metrics_last_error_timestamp",
            &sink
        ) > 1.6e12
    );
    assert_eq!(
        get(
            "kafka_connect_task_error_metrics_total_record_failures",
            &source
        ),
        0.0
    );
    assert_eq!(
        get(
            "kafka_connect_task_error_metrics_last_error_timestamp",
            &source
        ),
        0.0
    );
    assert!(
        get(
            "kafka_connect_connector_task_metrics_batch_size_max",
            &source
        ) >= 1.0
    );
    assert!(get("kafka_connect_connector_task_metrics_running_ratio", &sink) > 0.0);
    assert_eq!(
        get(
            "kafka_connect_connector_metrics_status",
            &[("connector", "lines"), ("status", "running")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "kafka_connect_connector_metrics_connector_type",
            &[("connector", "out"), ("connector_type", "sink")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "kafka_connect_connector_task_metrics_status",
            &[("connector", "out"), ("task", "0"), ("status", "running")]
        ),
        1.0
    );
    assert_eq!(
        get("kafka_connect_connect_worker_metrics_connector_count", &[]),
        2.0
    );
    assert_eq!(
        get("kafka_connect_connect_worker_metrics_task_count", &[]),
        2.0
    );
    assert_eq!(
        get(
            "kafka_connect_connect_worker_metrics_connector_startup_success_total",
            &[]
        ),
        2.0
    );
    assert_eq!(
        get(
            "kafka_connect_connect_worker_metrics_task_startup_success_total",
            &[]
        ),
        2.0
    );
    assert_eq!(
        get(
            "kafka_connect_connect_worker_metrics_connector_running_task_count",
            &[("connector", "out")]
        ),
        1.0
    );
    // A lone worker is a group of one: it has joined (each new connector and each task
    // config commit is a rebalance) and is not rebalancing now.
    assert!(
        get(
            "kafka_connect_connect_worker_rebalance_metrics_completed_rebalances_total",
            &[]
        ) >= 1.0
    );

    // Pausing shows in the task counts and ratios; the sink flushes and commits on the way.
    let (status, _) = worker
        .request(reqwest::Method::PUT, "/connectors/out/pause", None)
        .await;
    assert_eq!(status, 202);
    let text = wait_for(
        Duration::from_secs(30),
        "the paused task in /metrics",
        || async {
            let text = scrape(&worker).await;
            let paused = sample(
                &text,
                "kafka_connect_connect_worker_metrics_connector_paused_task_count",
                &[("connector", "out")],
            ) == Some(1.0)
                && sample(
                    &text,
                    "kafka_connect_connector_task_metrics_pause_ratio",
                    &sink,
                )
                .is_some_and(|r| r > 0.0);
            paused.then_some(text)
        },
    )
    .await;
    let get = |name: &str, labels: &[(&str, &str)]| {
        sample(&text, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?}:\n{text}"))
    };
    assert_eq!(
        get(
            "kafka_connect_connector_task_metrics_status",
            &[("connector", "out"), ("status", "paused")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "kafka_connect_connector_metrics_status",
            &[("connector", "out"), ("status", "paused")]
        ),
        1.0
    );
    assert!(
        get(
            "kafka_connect_sink_task_metrics_offset_commit_completion_total",
            &sink
        ) >= 1.0
    );
    assert_eq!(
        get(
            "kafka_connect_sink_task_metrics_sink_record_active_count",
            &sink
        ),
        0.0,
        "all committed"
    );
    assert_eq!(
        get(
            "kafka_connect_connector_task_metrics_offset_commit_success_percentage",
            &sink
        ),
        1.0
    );
    assert!(
        get(
            "kafka_connect_connector_task_metrics_offset_commit_max_time_ms",
            &sink
        ) > 0.0
    );
}
