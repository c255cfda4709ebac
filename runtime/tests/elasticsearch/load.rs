//! 100,000 records from a topic become 100,000 documents with the right ids and fields;
//! then tombstones delete their documents and updates replace theirs.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};
use sluice_connector_elasticsearch::testing::OsmemServer;

use super::{
    order_document, orders, produce_keyed, sink_config, start_worker, task_status, wait_for_commit,
    wait_for_documents,
};

const RECORDS: i64 = 100_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_records_become_documents_and_tombstones_delete() {
    let server = OsmemServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(dir.path()).await;
    let started = std::time::Instant::now();
    produce_keyed(&worker.bootstrap(), "orders", orders(0..RECORDS, "new")).await;
    eprintln!("produced {RECORDS} records in {:?}", started.elapsed());

    worker.write_config(
        "orders-es.json",
        &json!({"name": "orders-es", "config": sink_config(server.url(), "orders", &[])}),
    );
    let mut expected: BTreeMap<String, Json> = (0..RECORDS)
        .map(|id| (id.to_string(), order_document(id, "new")))
        .collect();
    wait_for_documents(&worker, &server, "orders", &expected).await;
    eprintln!("{RECORDS} documents checked after {:?}", started.elapsed());
    // The mapping came from the records' schema before the first document.
    let mapping = server.mapping("orders").await;
    assert_eq!(mapping["properties"]["placed"]["type"], "date", "{mapping}");
    assert_eq!(mapping["properties"]["id"]["type"], "long", "{mapping}");
    assert_eq!(
        mapping["properties"]["amount"]["type"], "integer",
        "{mapping}"
    );

    // A tombstone for every id ending in 0, a new version of every id ending in 5.
    let changes: Vec<super::KeyedRecord> = (0..RECORDS)
        .filter_map(|id| match id % 10 {
            0 => Some((Some(id.to_string()), None)),
            5 => orders([id], "updated").pop(),
            _ => None,
        })
        .collect();
    let changed = changes.len() as i64;
    produce_keyed(&worker.bootstrap(), "orders", changes).await;
    for id in 0..RECORDS {
        match id % 10 {
            0 => {
                expected.remove(&id.to_string());
            }
            5 => {
                expected.insert(id.to_string(), order_document(id, "updated"));
            }
            _ => {}
        }
    }
    wait_for_documents(&worker, &server, "orders", &expected).await;
    assert_eq!(expected.len(), 90_000);
    eprintln!("changes checked after {:?}", started.elapsed());

    // Every record is accounted for in the committed offsets, and the task never had to
    // report a problem.
    wait_for_commit(&worker, "orders-es", "orders", RECORDS + changed).await;
    let status = task_status(&worker, "orders-es").await;
    assert_eq!(status["state"], "RUNNING", "{status}");
    assert!(status.get("problem").is_none(), "{status}");
}
