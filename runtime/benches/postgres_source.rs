//! Rows per second from a 1,000,000-row PostgreSQL table into the embedded broker through a
//! `sluice worker` (postgres-source, JSON converter with schemas, idempotent acks=all
//! producer), next to `psql -c "COPY t TO STDOUT"` on the same table in the same run; and the
//! same with Confluent's Avro converter (schemas in a `sluice registry` on the worker's broker)
//! next to JSON with schemas, with the bytes each row takes on the topic.
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
    format: Format,
) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut worker = Worker::new(dir.path());
    worker.start();
    let mut registry = None;
    let converters = match format {
        Format::Json { schemas } => json!({
            "key.converter.schemas.enable": schemas.to_string(),
            "value.converter.schemas.enable": schemas.to_string()
        }),
        Format::Avro => {
            let (child, url) = start_registry(&worker.bootstrap(), dir.path());
            registry = Some(child);
            json!({
                "key.converter": "avro", "key.converter.schema.registry.url": url,
                "value.converter": "avro", "value.converter.schema.registry.url": url
            })
        }
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", worker.bootstrap())
        .set("group.id", "bench-watermarks")
        .create()
        .expect("consumer");
    let started = Instant::now();
    let mut config = json!({
        "connector.class": "postgres-source",
        "connection.url": server.jdbc_url(db),
        "mode": mode,
        "incrementing.column.name": "id",
        "timestamp.column.name": "updated_at",
        "table.whitelist": "t",
        "topic.prefix": "bench-",
        "batch.max.rows": batch,
        "poll.interval.ms": "3600000"
    });
    for (k, v) in converters.as_object().expect("an object") {
        config[k] = v.clone();
    }
    worker.put_connector("bench", &config);
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
    if let Some(mut registry) = registry {
        let _ = registry.kill();
        let _ = registry.wait();
    }
    // The topic's log segments: record batches as stored, headers and framing included.
    let bytes: u64 = std::fs::read_dir(dir.path().join("data").join("bench-t-0"))
        .expect("the topic's partition directory")
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    (
        rows as f64 / elapsed.as_secs_f64(),
        bytes as f64 / rows as f64,
    )
}

/// The converters a run uses.
#[derive(Debug, Clone, Copy)]
enum Format {
    /// Kafka Connect's JSON converter, with or without the schema envelope.
    Json { schemas: bool },
    /// Confluent's Avro converter with a `sluice registry`.
    Avro,
}

/// A `sluice registry` on `bootstrap`; its process and URL.
fn start_registry(bootstrap: &str, dir: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["registry", "--bootstrap-server", bootstrap, "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start sluice registry");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the registry's first line");
    let url = line
        .trim()
        .strip_prefix("sluice schema registry listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    (child, url)
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
    for (mode, batch, format) in [
        ("incrementing", "1000", Format::Json { schemas: true }),
        ("incrementing", "1000", Format::Avro),
        ("incrementing", "100", Format::Json { schemas: true }),
        ("incrementing", "1000", Format::Json { schemas: false }),
    ] {
        let (rate, bytes) = worker_rate(&server, &db, rows, mode, batch, format);
        let name = match format {
            Format::Json { schemas: true } => "JSON with schemas",
            Format::Json { schemas: false } => "JSON without schemas",
            Format::Avro => "Avro + registry",
        };
        println!(
            "worker -> broker, {mode} batch {batch:>5}, {name:<20}: {rate:>10.0} rows/s, {:.0}% of COPY, {bytes:>6.1} bytes/row on the topic",
            100.0 * rate / copy
        );
    }
}
