//! Change data capture throughput at task level: changes per second the CDC task streams
//! (decoded from pgoutput into Debezium events) for a bulk insert of 1,000,000 rows, next to
//! the time `COPY ... FROM STDIN` of the same rows takes in the same run.
//!
//! ```text
//! cargo bench -p sluice-connector-postgres --bench cdc
//! BENCH_ROWS=200000 cargo bench -p sluice-connector-postgres --bench cdc
//! ```

#[path = "../tests/support/pg_server.rs"]
mod pg_server;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_server::{PgServer, PASSWORD, SUPERUSER};
use sluice_connector_postgres::cdc::PostgresCdcTask;
use sluice_sdk::config::Props;
use sluice_sdk::connector::NoStatusReporter;
use sluice_sdk::{OffsetSnapshot, SourceTask, SourceTaskContext};

fn psql(server: &PgServer, db: &str, sql: &str, input: Option<&[u8]>) {
    let mut child = Command::new(server.psql_path())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(server.socket_dir())
        .args([
            "-p",
            &server.port().to_string(),
            "-U",
            SUPERUSER,
            "-d",
            db,
            "-c",
            sql,
        ])
        .stdin(Stdio::piped())
        .spawn()
        .expect("psql");
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "{sql} failed");
}

#[tokio::main]
async fn main() {
    let rows: u64 = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let server = PgServer::start_with(&["wal_level=logical", "max_wal_size=4GB"]);
    let db = server.create_database("cdc_bench");
    psql(
        &server,
        &db,
        "CREATE TABLE t (id bigint PRIMARY KEY, name text NOT NULL, amount numeric(12,2), \
         created timestamptz NOT NULL)",
        None,
    );
    let mut data = Vec::new();
    for i in 1..=rows {
        writeln!(
            data,
            "{i}\tname {i}\t{}.{:02}\t2024-01-01 00:00:00+00",
            i % 10_000,
            i % 100
        )
        .unwrap();
    }
    let config: Props = [
        ("database.hostname", "127.0.0.1".to_string()),
        ("database.port", server.port().to_string()),
        ("database.user", SUPERUSER.to_string()),
        ("database.password", PASSWORD.to_string()),
        ("database.dbname", db.clone()),
        ("database.sslmode", "disable".to_string()),
        ("topic.prefix", "bench".to_string()),
        ("snapshot.mode", "no_data".to_string()),
        ("slot.name", "bench".to_string()),
        ("max.batch.size", "4096".to_string()),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), v.clone()))
    .collect();
    let mut task = PostgresCdcTask::default();
    task.start(SourceTaskContext::new(
        "bench",
        0,
        config,
        Arc::new(OffsetSnapshot::default()),
        Arc::new(NoStatusReporter),
    ))
    .await
    .expect("task start");

    let copy_started = Instant::now();
    psql(&server, &db, "COPY t FROM STDIN", Some(&data));
    let copy_time = copy_started.elapsed();

    // The transaction is decoded and sent once it commits: the clock starts at the commit.
    let stream_started = Instant::now();
    let mut seen: u64 = 0;
    let mut first = None;
    while seen < rows {
        let batch = task.poll().await.expect("poll");
        if first.is_none() && !batch.is_empty() {
            first = Some(stream_started.elapsed());
        }
        seen += batch.len() as u64;
        if let Some(last) = batch.last() {
            task.offsets_committed(&[(last.source_partition.clone(), last.source_offset.clone())])
                .await;
        }
        assert!(
            stream_started.elapsed() < Duration::from_secs(1800),
            "stream stalled at {seen}"
        );
    }
    let stream_time = stream_started.elapsed();
    // The flush position reaches the server within status.update.interval.ms (1 s).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let retained = Command::new(server.psql_path())
        .args(["-X", "-q", "-A", "-t", "-h"])
        .arg(server.socket_dir())
        .args(["-p", &server.port().to_string(), "-U", SUPERUSER, "-d", &db, "-c"])
        .arg(
            "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)) || ' behind \
             the current WAL (restart_lsn), ' || \
             pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)) || \
             ' (confirmed_flush_lsn)' FROM pg_replication_slots WHERE slot_name = 'bench'",
        )
        .output()
        .expect("psql");
    task.stop().await.unwrap();
    println!(
        "bulk insert of {rows} rows: COPY FROM STDIN {:.2} s ({:.0} rows/s); CDC streamed every \
         change as a Debezium event in {:.2} s after the commit ({:.0} changes/s; first event \
         after {:.2} s)",
        copy_time.as_secs_f64(),
        rows as f64 / copy_time.as_secs_f64(),
        stream_time.as_secs_f64(),
        rows as f64 / stream_time.as_secs_f64(),
        first.unwrap_or_default().as_secs_f64(),
    );
    println!(
        "WAL retained by the slot once every change was acknowledged: {}",
        String::from_utf8_lossy(&retained.stdout).trim()
    );
}
