//! The CDC flavour of the CQRS example end to end, with the files of `examples/cqrs-cdc` as
//! shipped (only hosts, ports and the database user adapted): a PostgreSQL with
//! `wal_level=logical`, the CDC source, Debezium's unwrap transform and the Elasticsearch
//! sink. Rows inserted, updated and hard-deleted appear, change and disappear in the index;
//! and the time from a commit to its document being readable is measured.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use sluice_connector_elasticsearch::testing::OsmemServer;

use super::pg_server::{PgServer, PASSWORD, SUPERUSER};
use super::{log_tail, task_status, WAIT};
use crate::support::{WorkerOptions, WorkerProcess};

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/cqrs-cdc")
        .join(file)
}

fn example_connector(file: &str, changes: &[(&str, String)]) -> Json {
    let path = example(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut connector: Json =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    for (option, value) in changes {
        assert!(
            connector["config"].get(*option).is_some(),
            "the example {file} has no option {option} to adapt"
        );
        connector["config"][*option] = Json::from(value.as_str());
    }
    connector
}

async fn wait_for_order(
    worker: &WorkerProcess,
    es: &OsmemServer,
    id: &str,
    what: &str,
    check: impl Fn(Option<&Json>) -> bool,
) -> Option<Json> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let doc = es.document("orders", id).await;
        if check(doc.as_ref()) {
            return doc;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "{what}: document {id} is {doc:?}\nworker log (end):\n{}",
                log_tail(worker)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cdc_cqrs_example_follows_inserts_updates_and_hard_deletes() {
    let (pg, db) = tokio::task::spawn_blocking(|| {
        // synchronous_commit as PostgreSQL ships it: the test servers turn it off, and then a
        // commit reaches the WAL sender only when the WAL writer flushes (wal_writer_delay,
        // 200 ms), which would dominate the latency measured here.
        let pg = PgServer::start_with(&[
            "wal_level=logical",
            "max_replication_slots=4",
            "synchronous_commit=on",
        ]);
        let db = pg.create_database("cqrs_cdc");
        pg.psql(
            &db,
            &std::fs::read_to_string(example("orders.sql")).expect("orders.sql"),
        );
        (pg, db)
    })
    .await
    .unwrap();
    let pg = std::sync::Arc::new(pg);
    let sql = |statement: &str| {
        let (pg, db, statement) = (pg.clone(), db.clone(), statement.to_string());
        async move {
            tokio::task::spawn_blocking(move || pg.psql(&db, &statement))
                .await
                .unwrap()
        }
    };
    let es = OsmemServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(
        WorkerOptions::new(dir.path())
            .env("SLUICE_OFFSET_FLUSH_INTERVAL_MS", "500")
            .env("SHOP_DB_PASSWORD", PASSWORD),
    )
    .await;
    worker.write_config(
        "orders-cdc.json",
        &example_connector(
            "configs/orders-cdc.json",
            &[
                ("database.hostname", "127.0.0.1".to_string()),
                ("database.port", pg.port().to_string()),
                ("database.user", SUPERUSER.to_string()),
                ("database.dbname", db.clone()),
            ],
        ),
    );
    worker.write_config(
        "orders-cdc-to-elasticsearch.json",
        &example_connector(
            "configs/orders-cdc-to-elasticsearch.json",
            &[("connection.url", es.url().to_string())],
        ),
    );

    // The snapshot: the three rows of orders.sql become documents 1, 2, 3.
    for id in ["1", "2", "3"] {
        wait_for_order(&worker, &es, id, "the snapshot rows", |d| d.is_some()).await;
    }
    let grace = es.document("orders", "2").await.expect("document 2");
    assert_eq!(grace["customer"], "grace", "{grace}");
    assert_eq!(grace["status"], "paid", "{grace}");

    // An update, an insert, and a plain DELETE (no trigger, no soft-delete column).
    sql("UPDATE orders SET status = 'shipped' WHERE id = 2").await;
    sql("INSERT INTO orders (customer, total) VALUES ('margaret', 250.00)").await;
    sql("DELETE FROM orders WHERE id = 3").await;
    wait_for_order(&worker, &es, "2", "the update", |d| {
        d.is_some_and(|d| d["status"] == "shipped")
    })
    .await;
    wait_for_order(&worker, &es, "4", "the insert", |d| d.is_some()).await;
    wait_for_order(&worker, &es, "3", "the hard delete", |d| d.is_none()).await;
    es.refresh("orders").await;
    assert_eq!(es.count("orders").await, 3);

    // Freshness: commit -> document readable, one insert at a time.
    let mut latencies = Vec::new();
    for i in 0..40 {
        sql(&format!(
            "INSERT INTO orders (id, customer, total) VALUES ({}, 'fresh', 1)",
            1000 + i
        ))
        .await;
        let committed = Instant::now();
        wait_for_order(&worker, &es, &(1000 + i).to_string(), "a fresh row", |d| {
            d.is_some()
        })
        .await;
        latencies.push(committed.elapsed());
    }
    latencies.sort();
    eprintln!(
        "cqrs-cdc freshness over {} inserts: commit -> document p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        latencies[latencies.len() - 1]
    );

    for connector in ["orders-cdc", "orders-cdc-to-elasticsearch"] {
        let status = task_status(&worker, connector).await;
        assert_eq!(status["state"], "RUNNING", "{connector}: {status}");
    }
}
