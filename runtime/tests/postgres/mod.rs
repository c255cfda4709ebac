//! PostgreSQL source through the worker and the embedded broker: SIGKILL the worker in the
//! middle of a snapshot and in the middle of a stream of inserts, restart it on the same data,
//! and check that no row is missing from the topic.

mod cdc;
#[path = "../../../connectors/postgres/tests/support/pg_server.rs"]
pub(crate) mod pg_server;
mod worker;

use std::time::Duration;

use pg_server::PgServer;
use serde_json::json;
use worker::{TopicReader, Worker};

const WAIT: Duration = Duration::from_secs(120);

fn connector(server: &PgServer, db: &str) -> serde_json::Value {
    json!({
        "connector.class": "io.confluent.connect.jdbc.JdbcSourceConnector",
        "connection.url": server.jdbc_url(db),
        "mode": "timestamp+incrementing",
        "incrementing.column.name": "id",
        "timestamp.column.name": "ts",
        "table.whitelist": "events",
        "topic.prefix": "pg-",
        "batch.max.rows": "500",
        "poll.interval.ms": "200",
        "tasks.max": "1"
    })
}

/// Reads until `done`, showing the worker's logs when it does not happen in time.
fn read(
    worker: &Worker,
    reader: &mut TopicReader,
    what: &str,
    done: impl Fn(&TopicReader) -> bool,
) {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        reader.read_until(WAIT, what, done);
    }));
    if let Err(e) = result {
        eprintln!("worker logs:\n{}", worker.logs());
        std::panic::resume_unwind(e);
    }
}

fn events_table(server: &PgServer, db: &str, rows: i64) {
    server.psql(
        db,
        &format!(
            "CREATE TABLE events (id bigint PRIMARY KEY, ts timestamptz NOT NULL, body text NOT NULL);
             INSERT INTO events SELECT g, '2024-01-01'::timestamptz + (g / 7) * interval '1 millisecond', 'row ' || g
               FROM generate_series(1, {rows}) g;"
        ),
    );
}

#[test]
fn sigkill_mid_snapshot_loses_no_row() {
    const ROWS: i64 = 100_000;
    let server = PgServer::shared();
    let db = server.create_database("e2e_snapshot");
    events_table(server, &db, ROWS);
    let dir = tempfile::tempdir().unwrap();
    let mut worker = Worker::new(dir.path());
    worker.put_connector("pg-events", &connector(server, &db));
    worker.start();

    let mut reader = TopicReader::new(&worker.bootstrap(), "pg-events");
    read(
        &worker,
        &mut reader,
        "the first rows of the snapshot",
        |r| r.ids.len() >= 5_000,
    );
    worker.sigkill();
    let at_kill = reader.ids.len();
    assert!(
        at_kill < ROWS as usize,
        "the snapshot finished before the kill; the test needs a larger table"
    );

    worker.start();
    read(&worker, &mut reader, "every row after the restart", |r| {
        r.ids.len() >= ROWS as usize
    });
    assert_eq!(reader.missing(ROWS), Vec::<i64>::new());
    eprintln!(
        "snapshot: killed after {at_kill} distinct rows read; {} messages for {ROWS} rows after restart",
        reader.messages
    );
}

#[test]
fn sigkill_mid_stream_loses_no_row() {
    const FIRST: i64 = 1_000;
    const TOTAL: i64 = 6_000;
    let server = PgServer::shared();
    let db = server.create_database("e2e_stream");
    events_table(server, &db, FIRST);
    let dir = tempfile::tempdir().unwrap();
    let mut worker = Worker::new(dir.path());
    worker.put_connector("pg-events", &connector(server, &db));
    worker.start();
    let mut reader = TopicReader::new(&worker.bootstrap(), "pg-events");
    read(&worker, &mut reader, "the initial rows", |r| {
        r.ids.len() >= FIRST as usize
    });

    // Rows keep arriving in small transactions while the worker is killed and restarted.
    let inserter = {
        let db = db.clone();
        std::thread::spawn(move || {
            let server = PgServer::shared();
            let mut next = FIRST + 1;
            while next <= TOTAL {
                let last = (next + 99).min(TOTAL);
                server.psql(
                    &db,
                    &format!(
                        "INSERT INTO events SELECT g, clock_timestamp(), 'live ' || g
                           FROM generate_series({next}, {last}) g"
                    ),
                );
                next = last + 1;
                // Paces the load generator; nothing waits on this.
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    read(&worker, &mut reader, "live rows before the kill", |r| {
        r.ids.len() >= (FIRST + 1_000) as usize
    });
    worker.sigkill();
    let at_kill = reader.ids.len();
    worker.start();
    inserter.join().expect("inserter");
    read(&worker, &mut reader, "every row after the restart", |r| {
        r.ids.len() >= TOTAL as usize
    });
    assert_eq!(reader.missing(TOTAL), Vec::<i64>::new());
    assert!(at_kill < TOTAL as usize, "the kill happened mid-stream");
    eprintln!(
        "stream: killed after {at_kill} distinct rows read; {} messages for {TOTAL} rows",
        reader.messages
    );
}
