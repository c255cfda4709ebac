//! SIGKILL of the worker while documents stream into the index: after the restart, every
//! record is a document with its latest content. Records replayed after the restart (their
//! offsets were not committed yet) never overwrite newer versions.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value as Json};
use sluice_connector_elasticsearch::testing::OsmemServer;

use super::{
    committed_offset, log_tail, order_document, orders, produce_keyed, sink_config, start_worker,
    wait_for_documents, WAIT,
};

/// Records in the topic before the kill.
const FIRST: i64 = 30_000;
/// Records in the end (the rest are produced after the restart).
const TOTAL: i64 = 40_000;
/// The first ids get a second version after the restart.
const UPDATED: i64 = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_document() {
    let server = OsmemServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut worker = start_worker(dir.path()).await;
    produce_keyed(&worker.bootstrap(), "orders", orders(0..FIRST, "v1")).await;
    worker.write_config(
        "orders-es.json",
        &json!({"name": "orders-es", "config": sink_config(server.url(), "orders", &[
            // A flush waits for everything buffered; a smaller buffer makes the worker's
            // periodic flushes and commits come every few thousand documents.
            ("batch.size", "1000"),
            ("max.buffered.records", "5000"),
        ])}),
    );

    // Kill once documents are streaming in and at least one offset commit happened, so the
    // restart resumes from a committed offset and replays what came after it.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut committed = false;
    loop {
        // The offsets endpoint is slow to answer; once a commit is seen, only count.
        if !committed {
            committed = committed_offset(&worker, "orders-es", "orders")
                .await
                .is_some_and(|c| c > 0);
        }
        if committed && server.count("orders").await >= 3_000 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no documents and commits before the kill\nworker log (end):\n{}",
            log_tail(&worker)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.kill();
    let at_kill = server.count("orders").await;
    assert!(
        at_kill < FIRST as u64,
        "the worker was killed after every document was in; the test needs more records"
    );

    worker.restart().await;
    let mut later = orders(FIRST..TOTAL, "v1");
    later.extend(orders(0..UPDATED, "v2"));
    produce_keyed(&worker.bootstrap(), "orders", later).await;

    let expected: BTreeMap<String, Json> = (0..TOTAL)
        .map(|id| {
            let version = if id < UPDATED { "v2" } else { "v1" };
            (id.to_string(), order_document(id, version))
        })
        .collect();
    wait_for_documents(&worker, &server, "orders", &expected).await;
    eprintln!("killed with {at_kill} of {FIRST} documents in; all {TOTAL} there after restart");
}
