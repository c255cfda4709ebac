//! Rows per second from a 1,000,000-row PostgreSQL table into the embedded broker through a
//! `sluice worker` (postgres-source, JSON converter with schemas, idempotent acks=all
//! producer), next to `psql -c "COPY t TO STDOUT"` on the same table in the same run.
//!
//! ```text
//! cargo bench -p sluice-runtime --bench postgres_source
//! BENCH_ROWS=200000 cargo bench -p sluice-runtime --bench postgres_source
//! ```
//!
//! The connector's time is measured from the moment its JSON lands in the running worker's
//! configs folder until the topic's high watermark reaches the row count.

#[path = "../../connectors/postgres/tests/support/pg_server.rs"]
mod pg_server;
#[path = "../../connectors/postgres/benches/support/table.rs"]
mod table;
#[path = "../tests/postgres/worker.rs"]
mod worker;

use std::time::{Duration, Instant};

use pg_server::PgServer;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;
use worker::Worker;

fn worker_rate(
    server: &PgServer,
    db: &str,
    rows: u64,
    mode: &str,
    batch: &str,
    schemas: bool,
) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut worker = Worker::new(dir.path());
    worker.start();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", worker.bootstrap())
        .set("group.id", "bench-watermarks")
        .create()
        .expect("consumer");
    let started = Instant::now();
    worker.put_connector(
        "bench",
        &json!({
            "connector.class": "postgres-source",
            "connection.url": server.jdbc_url(db),
            "mode": mode,
            "incrementing.column.name": "id",
            "timestamp.column.name": "updated_at",
            "table.whitelist": "t",
            "topic.prefix": "bench-",
            "batch.max.rows": batch,
            "poll.interval.ms": "3600000",
            "key.converter.schemas.enable": schemas.to_string(),
            "value.converter.schemas.enable": schemas.to_string()
        }),
    );
    let deadline = started + Duration::from_secs(900);
    loop {
        if let Ok((_, high)) = consumer.fetch_watermarks("bench-t", 0, Duration::from_secs(1)) {
            if high as u64 >= rows {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "rows did not arrive: {}",
            worker.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed();
    worker.sigkill();
    rows as f64 / elapsed.as_secs_f64()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rows = table::row_count();
    let server = PgServer::start_new();
    let db = server.create_database("bench");
    table::create(&server, &db, rows);
    let copy = table::copy_rate(&server, &db, rows, 3);
    println!("psql COPY t TO STDOUT                      : {copy:>10.0} rows/s (best of 3)");
    for (mode, batch, schemas) in [
        ("incrementing", "1000", true),
        ("incrementing", "100", true),
        ("incrementing", "1000", false),
    ] {
        let rate = worker_rate(&server, &db, rows, mode, batch, schemas);
        println!(
            "worker -> broker, {mode} batch {batch:>5}, JSON schemas {schemas:<5}: {rate:>10.0} rows/s, {:.0}% of COPY",
            100.0 * rate / copy
        );
    }
}
