//! Volume, ids, fields and tombstones.

use std::collections::HashSet;
use std::time::Instant;

use serde_json::json;
use sluice_connector_elasticsearch::testing::OsmemServer;
use sluice_sdk::{SinkTask, Value};

use crate::support::{order_record, record, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_thousand_records_become_one_hundred_thousand_documents() {
    const RECORDS: i64 = 100_000;
    let server = OsmemServer::start().await;
    let mut h = start(server.url(), &[], false).await;
    let started = Instant::now();
    // As the runtime does: batches from the consumer, a flush before each commit.
    for chunk in (0..RECORDS).collect::<Vec<_>>().chunks(5_000) {
        let records = chunk
            .iter()
            .map(|&id| order_record("Orders", id, "new"))
            .collect();
        h.task.put(records).await.unwrap();
        if chunk[0] % 25_000 == 0 {
            h.task.flush().await.unwrap();
        }
    }
    h.task.flush().await.unwrap();
    eprintln!("{RECORDS} records written in {:?}", started.elapsed());

    assert_eq!(server.count("orders").await, RECORDS as u64);
    let docs = server.documents("orders").await;
    assert_eq!(docs.len(), RECORDS as usize);
    let mut ids = HashSet::new();
    for (id, source) in &docs {
        let n: i64 = id
            .parse()
            .unwrap_or_else(|_| panic!("document id '{id}' is not the key"));
        assert_eq!(
            source,
            &json!({
                "id": n,
                "customer": format!("customer-{n}"),
                "total": format!("{n}.25").parse::<f64>().unwrap(),
                "placed": chrono::DateTime::from_timestamp_millis(1_704_067_200_000 + n * 1000)
                    .unwrap()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                    .to_string(),
                "status": "new",
            }),
            "document {id}"
        );
        ids.insert(n);
    }
    assert_eq!(ids, (0..RECORDS).collect::<HashSet<_>>());
    assert!(h.errant.reports().is_empty(), "{:?}", h.errant.reports());
    h.task.stop().await.unwrap();
}

#[tokio::test]
async fn tombstones_delete_documents() {
    let server = OsmemServer::start().await;
    let mut h = start(
        server.url(),
        &[("behavior.on.null.values", "delete"), ("linger.ms", "5")],
        false,
    )
    .await;
    h.task
        .put(
            (0..100)
                .map(|id| order_record("orders", id, "new"))
                .collect(),
        )
        .await
        .unwrap();
    // Tombstones for the even ids, one of them for an id that never existed, in the same
    // stream as further updates of the odd ones.
    let more = (100..)
        .zip((0..100).step_by(2).chain([1_000]))
        .map(|(offset, id)| record("orders", offset, id, Value::Null, None))
        .collect();
    h.task.put(more).await.unwrap();
    h.task.flush().await.unwrap();

    assert_eq!(server.count("orders").await, 50);
    for id in 0..100 {
        let doc = server.document("orders", &id.to_string()).await;
        assert_eq!(doc.is_some(), id % 2 == 1, "document {id}");
    }
    assert!(h.errant.reports().is_empty(), "{:?}", h.errant.reports());

    // A deleted document comes back when its key is written again.
    h.task
        .put(vec![order_record("orders", 200, "again")])
        .await
        .unwrap();
    h.task.flush().await.unwrap();
    let doc = server.document("orders", "200").await.unwrap();
    assert_eq!(doc["status"], "again");
    h.task.stop().await.unwrap();
}

#[tokio::test]
async fn tombstones_are_ignored_or_reported_as_configured() {
    let server = OsmemServer::start().await;
    let mut ignoring = start(
        server.url(),
        &[("behavior.on.null.values", "ignore")],
        false,
    )
    .await;
    ignoring
        .task
        .put(vec![
            order_record("orders", 1, "new"),
            record("orders", 2, 1, Value::Null, None),
        ])
        .await
        .unwrap();
    ignoring.task.flush().await.unwrap();
    assert!(server.document("orders", "1").await.is_some());
    assert!(ignoring.errant.reports().is_empty());

    // The default, fail, reports the tombstone as errant; with errors.tolerance=all it is
    // dead-lettered and the task goes on.
    let mut failing = start(server.url(), &[], true).await;
    failing
        .task
        .put(vec![record("orders", 3, 1, Value::Null, None)])
        .await
        .unwrap();
    failing.task.flush().await.unwrap();
    let reports = failing.errant.reports();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].0, 3);
    assert!(
        reports[0].1.contains("behavior.on.null.values=delete"),
        "{}",
        reports[0].1
    );
    assert!(server.document("orders", "1").await.is_some());
}
