//! Snapshot throughput of the PostgreSQL source at task level: rows per second a task
//! reads from a 1,000,000-row table (decoded into Connect records), next to
//! `psql -c "COPY t TO STDOUT"` on the same table in the same run (the rate at which
//! PostgreSQL itself hands the rows out).
//!
//! ```text
//! cargo bench -p sluice-connector-postgres --bench snapshot
//! BENCH_ROWS=200000 cargo bench -p sluice-connector-postgres --bench snapshot
//! ```
//!
//! The end-to-end figure (into the broker through the worker) lives with the runtime's
//! benchmarks; this one isolates the connector's share.

#[path = "../tests/support/pg_server.rs"]
mod pg_server;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_server::{PgServer, SUPERUSER};
use sluice_connector_postgres::PostgresSourceConnector;
use sluice_sdk::config::Props;
use sluice_sdk::connector::NoStatusReporter;
use sluice_sdk::{
    ConnectorContext, ConnectorHost, Error, OffsetSnapshot, SourceConnector, SourceTaskContext,
};

const RUNS: usize = 3;

#[derive(Debug)]
struct NoHost;

impl ConnectorHost for NoHost {
    fn request_task_reconfiguration(&self) {}
    fn raise_error(&self, _error: Error) {}
}

fn copy_rate(server: &PgServer, db: &str, rows: u64) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let started = Instant::now();
        let out = Command::new(server.psql_path())
            .args(["-X", "-q", "-h"])
            .arg(server.socket_dir())
            .args(["-p", &server.port().to_string(), "-U", SUPERUSER, "-d", db])
            .args(["-c", "COPY t TO STDOUT"])
            .stdout(Stdio::piped())
            .output()
            .expect("run psql");
        let elapsed = started.elapsed();
        assert!(out.status.success(), "COPY failed");
        let lines = out.stdout.iter().filter(|&&b| b == b'\n').count() as u64;
        assert_eq!(lines, rows, "COPY returned every row");
        best = best.min(elapsed);
    }
    rows as f64 / best.as_secs_f64()
}

async fn connector_rate(url: &str, mode: &str, rows: u64, batch: &str) -> f64 {
    let config: Props = [
        ("connection.url", url),
        ("mode", mode),
        ("incrementing.column.name", "id"),
        ("timestamp.column.name", "updated_at"),
        ("table.whitelist", "t"),
        ("topic.prefix", "bench-"),
        ("batch.max.rows", batch),
        ("poll.interval.ms", "600000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect();
    let mut best = Duration::MAX;
    for _ in 0..RUNS {
        let mut connector = PostgresSourceConnector::default();
        connector
            .start(
                ConnectorContext::new("bench", Arc::new(NoHost)),
                config.clone(),
            )
            .await
            .expect("connector start");
        let task_config = connector
            .task_configs(1)
            .await
            .expect("task configs")
            .remove(0);
        let mut task = connector.create_task();
        task.start(SourceTaskContext::new(
            "bench",
            0,
            task_config,
            Arc::new(OffsetSnapshot::default()),
            Arc::new(NoStatusReporter),
        ))
        .await
        .expect("task start");
        let started = Instant::now();
        let mut seen = 0u64;
        while seen < rows {
            seen += task.poll().await.expect("poll").len() as u64;
        }
        best = best.min(started.elapsed());
        assert_eq!(seen, rows);
        task.stop().await.expect("stop");
    }
    rows as f64 / best.as_secs_f64()
}

fn main() {
    // `cargo test --benches` runs bench binaries with --bench absent; only measure when asked.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rows: u64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let server = PgServer::start_new();
    let db = server.create_database("bench");
    server.psql(
        &db,
        &format!(
            "CREATE TABLE t (id bigint PRIMARY KEY, name text NOT NULL, qty integer NOT NULL,
                             price numeric(10,2) NOT NULL, updated_at timestamptz NOT NULL);
             INSERT INTO t SELECT g, 'item-' || g, g % 100, (g % 1000) / 100.0 + 1,
                    '2024-01-01'::timestamptz + g * interval '1 millisecond'
               FROM generate_series(1, {rows}) g;"
        ),
    );
    server.psql(&db, "VACUUM ANALYZE t");
    let url = server.url(&db);
    let copy = copy_rate(&server, &db, rows);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    println!("table: {rows} rows (id bigint, name text, qty int, price numeric(10,2), updated_at timestamptz)");
    println!(
        "psql COPY t TO STDOUT          : {:>10.0} rows/s (best of {RUNS})",
        copy
    );
    for (mode, batch) in [
        ("bulk", "100"),
        ("incrementing", "100"),
        ("timestamp+incrementing", "100"),
        ("incrementing", "1000"),
    ] {
        let rate = runtime.block_on(connector_rate(&url, mode, rows, batch));
        println!(
            "task {mode:<22} batch {batch:>5}: {rate:>10.0} rows/s (best of {RUNS}), {:.0}% of COPY",
            100.0 * rate / copy
        );
    }
}
