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
#[path = "support/table.rs"]
mod table;

use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_server::PgServer;
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
    let rows = table::row_count();
    let server = PgServer::start_new();
    let db = server.create_database("bench");
    table::create(&server, &db, rows);
    let url = server.url(&db);
    let copy = table::copy_rate(&server, &db, rows, RUNS);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
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
