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
//! configs folder until the topic's high watermark reaches the row count. Each run also
//! reports the CPU seconds per million rows of the worker (embedded broker included) and of
//! PostgreSQL's processes, the worker's peak resident memory, and the load average.
//!
//! `BENCH_ONLY` picks runs by name, comma-separated (`schemas`, `avro`, `batch100`,
//! `noschemas`; all by default); `BENCH_REPEAT` runs each that many times (1 by default).

#[path = "../../connectors/postgres/tests/support/pg_server.rs"]
mod pg_server;
#[path = "support/proc_stats.rs"]
#[allow(dead_code)]
mod proc_stats;
#[path = "../../connectors/postgres/benches/support/table.rs"]
mod table;
use proc_stats::cpu_seconds;
#[path = "../tests/postgres/worker.rs"]
mod worker;

use std::time::{Duration, Instant};

use pg_server::PgServer;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;
use worker::Worker;

/// What one run measured.
#[derive(Debug)]
struct RunFigures {
    rows_per_second: f64,
    /// From the first row on the topic to the last: without the connector's start (which
    /// for Avro includes registering the schemas).
    streaming_rows_per_second: f64,
    /// From the connector's creation to its first row on the topic.
    first_row_ms: f64,
    bytes_per_row: f64,
    /// CPU seconds of the worker process (tasks, clients and embedded broker).
    worker_cpu: f64,
    /// CPU seconds of PostgreSQL's processes over the same time.
    postgres_cpu: f64,
    /// The worker's peak resident set, in MiB.
    peak_rss_mib: f64,
}

/// The peak resident set (VmHWM) of our child process called `comm`, in MiB.
fn peak_rss_mib(comm: &str) -> f64 {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("status")).ok())
        .filter(|status| {
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
            };
            field("Name:") == Some(comm) && field("PPid:") == Some(me.as_str())
        })
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .sum()
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn worker_rate(
    server: &PgServer,
    db: &str,
    rows: u64,
    mode: &str,
    batch: &str,
    format: Format,
) -> RunFigures {
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
    let (worker_cpu_before, postgres_cpu_before) =
        (cpu_seconds("sluice", true), cpu_seconds("postgres", false));
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
    let mut first = None;
    loop {
        if let Ok((_, high)) = consumer.fetch_watermarks("bench-t", 0, Duration::from_secs(1)) {
            if high > 0 && first.is_none() {
                first = Some((started.elapsed(), high as u64));
            }
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
    let worker_cpu = cpu_seconds("sluice", true) - worker_cpu_before;
    let postgres_cpu = cpu_seconds("postgres", false) - postgres_cpu_before;
    let peak_rss_mib = peak_rss_mib("sluice");
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
    RunFigures {
        rows_per_second: rows as f64 / elapsed.as_secs_f64(),
        streaming_rows_per_second: {
            let (at, seen) = first.unwrap_or((Duration::ZERO, 0));
            (rows - seen) as f64 / elapsed.saturating_sub(at).as_secs_f64().max(1e-3)
        },
        first_row_ms: first.map_or(0.0, |(at, _)| at.as_secs_f64() * 1000.0),
        bytes_per_row: bytes as f64 / rows as f64,
        worker_cpu,
        postgres_cpu,
        peak_rss_mib,
    }
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
    println!(
        "psql COPY t TO STDOUT                      : {copy:>10.0} rows/s (best of 3), load {}",
        load_average()
    );
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let repeat: usize = std::env::var("BENCH_REPEAT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let per_million = 1_000_000.0 / rows as f64;
    for (run, mode, batch, format) in [
        (
            "schemas",
            "incrementing",
            "1000",
            Format::Json { schemas: true },
        ),
        ("avro", "incrementing", "1000", Format::Avro),
        (
            "batch100",
            "incrementing",
            "100",
            Format::Json { schemas: true },
        ),
        (
            "noschemas",
            "incrementing",
            "1000",
            Format::Json { schemas: false },
        ),
    ] {
        if !only.is_empty() && !only.split(',').any(|o| o.trim() == run) {
            continue;
        }
        for _ in 0..repeat {
            let load = load_average();
            let f = worker_rate(&server, &db, rows, mode, batch, format);
            let name = match format {
                Format::Json { schemas: true } => "JSON with schemas",
                Format::Json { schemas: false } => "JSON without schemas",
                Format::Avro => "Avro + registry",
            };
            println!(
                "worker -> broker, {mode} batch {batch:>5}, {name:<20}: {:>10.0} rows/s, {:.0}% of COPY ({:.0} rows/s from the first row to the last, first row {:.0} ms after the create), {:>6.1} bytes/row on the topic; CPU s per million rows: worker {:.2}, PostgreSQL {:.2}; worker peak RSS {:.1} MiB; load {load} -> {}",
                f.rows_per_second,
                100.0 * f.rows_per_second / copy,
                f.streaming_rows_per_second,
                f.first_row_ms,
                f.bytes_per_row,
                f.worker_cpu * per_million,
                f.postgres_cpu * per_million,
                f.peak_rss_mib,
                load_average()
            );
        }
    }
}
