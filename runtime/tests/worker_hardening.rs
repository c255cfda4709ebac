//! Nothing waits forever and one slow connector never blocks the others: a PostgreSQL that
//! accepts connections and never answers, a connector whose start hangs on it, a sink whose
//! flush keeps failing, and a worker with a hundred connectors stopping on SIGINT.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use sluice_sdk::testing::SilentServer;

use crate::postgres::pg_server::PgServer;
use crate::support::{read_lines, wait_for, WorkerOptions, WorkerProcess};

fn postgres_source(port: u16, db: &str, query: &str) -> Value {
    json!({
        "connector.class": "postgres-source",
        "connection.url": format!("postgres://postgres:postgres@127.0.0.1:{port}/{db}{query}"),
        "mode": "bulk",
        "table.whitelist": "things",
        "topic.prefix": "pg-",
        "poll.interval.ms": "60000",
    })
}

fn file_source(dir: &Path, name: &str) -> Value {
    let input = dir.join(format!("{name}.txt"));
    std::fs::write(&input, "a\nb\n").unwrap();
    json!({
        "name": name,
        "connector.class": "file-source",
        "file": input.to_string_lossy(),
        "topic": name,
    })
}

/// Times one request.
async fn timed(
    worker: &WorkerProcess,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Duration) {
    let started = Instant::now();
    let (code, _) = worker.request(method, path, body).await;
    (code, started.elapsed())
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_against_a_silent_database_answers_within_its_deadline() {
    let silent = SilentServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    let config = postgres_source(silent.addr().port(), "db", "?connect_timeout=2");

    let started = Instant::now();
    let (code, body) = worker
        .request(
            Method::PUT,
            "/connector-plugins/postgres-source/config/validate",
            Some(&config),
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(code, 200, "{body}");
    assert!(
        elapsed < Duration::from_secs(10),
        "validate took {elapsed:?}"
    );
    assert!(body["error_count"].as_u64().unwrap() >= 1, "{body}");
    let url_errors = body["configs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["value"]["name"] == "connection.url")
        .map(|c| c["value"]["errors"].clone())
        .unwrap_or(Value::Null);
    assert!(
        url_errors.as_array().is_some_and(|e| !e.is_empty()),
        "no error on connection.url: {body}"
    );

    let started = Instant::now();
    let (code, body) = worker
        .request(
            Method::POST,
            "/connectors",
            Some(&json!({"name": "silent", "config": config})),
        )
        .await;
    let elapsed = started.elapsed();
    assert_eq!(code, 400, "{body}");
    assert!(elapsed < Duration::from_secs(10), "create took {elapsed:?}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("connection.url"),
        "the error should name connection.url: {body}"
    );
    assert!(silent.accepted() >= 2, "the server was never asked");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connector_stuck_starting_blocks_no_other_connector() {
    let server = PgServer::shared();
    let db = server.create_database("stuck_start");
    server.psql(
        &db,
        "CREATE TABLE things (id int PRIMARY KEY); INSERT INTO things VALUES (1);",
    );
    // Validation's connection goes through to PostgreSQL; every later one hangs.
    let gate = SilentServer::start_passing(1, Some(([127, 0, 0, 1], server.port()).into())).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;

    let other = file_source(dir.path(), "other");
    let (code, body) = worker
        .request(
            Method::POST,
            "/connectors",
            Some(&json!({"name": "other", "config": other})),
        )
        .await;
    assert_eq!(code, 201, "{body}");

    let stuck = postgres_source(gate.addr().port(), &db, "?connect_timeout=60");
    let (code, body) = worker
        .request(
            Method::POST,
            "/connectors",
            Some(&json!({"name": "stuck", "config": stuck})),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    wait_for(
        Duration::from_secs(20),
        "the stuck connector to be connecting",
        || async { (gate.accepted() >= 2).then_some(()) },
    )
    .await;

    for _ in 0..5 {
        let (code, took) = timed(&worker, Method::GET, "/connectors?expand=status", None).await;
        assert_eq!(code, 200);
        assert!(
            took < Duration::from_millis(100),
            "GET /connectors took {took:?}"
        );
    }
    let (code, took) = timed(&worker, Method::PUT, "/connectors/other/pause", None).await;
    assert_eq!(code, 202);
    assert!(took < Duration::from_millis(100), "pause took {took:?}");
    let (code, took) = timed(&worker, Method::GET, "/connectors/stuck/status", None).await;
    assert_eq!(code, 200);
    assert!(
        took < Duration::from_millis(100),
        "status of the stuck one took {took:?}"
    );

    // A file event for a third connector is applied while the stuck one still hangs.
    let third = file_source(dir.path(), "third");
    let written = Instant::now();
    worker.write_config("third.json", &third);
    wait_for(
        Duration::from_secs(5),
        "the third connector to exist",
        || async {
            let (code, _) = worker.request(Method::GET, "/connectors/third", None).await;
            (code == 200).then_some(())
        },
    )
    .await;
    let took = written.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "the file event took {took:?}"
    );

    // Deleting the stuck connector abandons its start at once.
    let (code, took) = timed(&worker, Method::DELETE, "/connectors/stuck", None).await;
    assert_eq!(code, 204);
    assert!(took < Duration::from_millis(100), "delete took {took:?}");
    wait_for(
        Duration::from_secs(5),
        "the stuck connector to be gone",
        || async {
            let (code, _) = worker
                .request(Method::GET, "/connectors/stuck/status", None)
                .await;
            (code == 404).then_some(())
        },
    )
    .await;
    let status = worker.get("/connectors/other/status").await;
    assert_eq!(status["connector"]["state"], "PAUSED", "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_stuck_in_a_flush_retry_stops_within_the_shutdown_deadline() {
    // Nothing listens on this port: every bulk request fails, so every flush fails.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(
        &input,
        (0..100)
            .map(|i| format!("{{\"n\":{i}}}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let mut worker = WorkerProcess::start(
        WorkerOptions::new(dir.path())
            .env("SLUICE_OFFSET_FLUSH_INTERVAL_MS", "300")
            .env("SLUICE_TASK_SHUTDOWN_GRACEFUL_TIMEOUT_MS", "10000"),
    )
    .await;
    worker.write_config(
        "source.json",
        &json!({"name": "source", "connector.class": "file-source", "file": input.to_string_lossy(), "topic": "docs"}),
    );
    worker.write_config(
        "sink.json",
        &json!({
            "name": "sink",
            "connector.class": "elasticsearch-sink",
            "topics": "docs",
            "connection.url": format!("http://127.0.0.1:{closed}"),
            "key.ignore": "true",
            "schema.ignore": "true",
            "value.converter": "json",
            "value.converter.schemas.enable": "false",
            "flush.timeout.ms": "1000",
        }),
    );
    wait_for(
        Duration::from_secs(60),
        "the sink to retry a failing flush",
        || async {
            worker
                .log()
                .contains("flush failed, retrying")
                .then_some(())
        },
    )
    .await;
    let started = Instant::now();
    let status = worker.stop().await.expect("the worker was running");
    let took = started.elapsed();
    assert!(status.success(), "exit {status:?}; log:\n{}", worker.log());
    // The graceful timeout is 10 s: a stop that had to abort the task would take longer.
    assert!(
        took < Duration::from_secs(8),
        "stop took {took:?}; log:\n{}",
        worker.log()
    );
    assert!(
        !worker.log().contains("aborting it"),
        "a task had to be aborted:\n{}",
        worker.log()
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_connectors_stop_on_sigint_and_restart_without_duplicates() {
    const PIPELINES: usize = 50;
    const FIRST: usize = 20;
    const MORE: usize = 5;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("files");
    std::fs::create_dir_all(&data).unwrap();
    let mut worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    let line = |p: usize, i: usize| format!("pipeline {p} line {i}");
    for p in 0..PIPELINES {
        let input = data.join(format!("in-{p}.txt"));
        let text: String = (0..FIRST).map(|i| line(p, i) + "\n").collect();
        std::fs::write(&input, text).unwrap();
        worker.write_config(
            &format!("source-{p}.json"),
            &json!({"name": format!("source-{p}"), "connector.class": "file-source",
                    "file": input.to_string_lossy(), "topic": format!("lines-{p}")}),
        );
        worker.write_config(
            &format!("sink-{p}.json"),
            &json!({"name": format!("sink-{p}"), "connector.class": "file-sink",
                    "file": data.join(format!("out-{p}.txt")).to_string_lossy(),
                    "topics": format!("lines-{p}")}),
        );
    }
    let outputs_have = |n: usize| {
        (0..PIPELINES).all(|p| read_lines(&data.join(format!("out-{p}.txt"))).len() >= n)
    };
    wait_for(
        Duration::from_secs(180),
        "every pipeline to deliver its lines",
        || async { outputs_have(FIRST).then_some(()) },
    )
    .await;

    // SIGINT, as Ctrl-C sends it. Every task flushes and commits before the worker exits.
    let started = Instant::now();
    let status = worker.stop_with("-INT", Duration::from_secs(30)).await;
    let took = started.elapsed();
    let log = worker.log();
    assert!(
        status.is_some_and(|s| s.success()) && took < Duration::from_secs(20),
        "no clean stop within 20 s of SIGINT ({status:?} after {took:?}):\n{}",
        tail(&log, 60)
    );
    assert!(
        !log.contains("aborting it"),
        "a task was aborted:\n{}",
        tail(&log, 60)
    );
    assert!(
        log.contains("worker stopped"),
        "no clean stop:\n{}",
        tail(&log, 60)
    );
    eprintln!("{} connectors stopped {took:?} after SIGINT", 2 * PIPELINES);

    worker.restart().await;
    for p in 0..PIPELINES {
        let input = data.join(format!("in-{p}.txt"));
        let mut text = std::fs::read_to_string(&input).unwrap();
        text.extend((FIRST..FIRST + MORE).map(|i| line(p, i) + "\n"));
        std::fs::write(&input, text).unwrap();
    }
    wait_for(Duration::from_secs(180), "the appended lines", || async {
        outputs_have(FIRST + MORE).then_some(())
    })
    .await;
    for p in 0..PIPELINES {
        let got = read_lines(&data.join(format!("out-{p}.txt")));
        let expected: Vec<String> = (0..FIRST + MORE).map(|i| line(p, i)).collect();
        assert_eq!(got, expected, "pipeline {p}: lost or duplicated lines");
    }
}
