//! The cluster going away and coming back: nothing accepted is lost, the outage shows in the
//! task status, and a cluster that is down when the task starts is waited for.

use std::time::Duration;

use sluice_connector_elasticsearch::testing::OsmemServer;
use sluice_sdk::SinkTask;

use crate::support::{free_port, order_record, start, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_going_away_mid_stream_loses_nothing() {
    let mut server = OsmemServer::start().await;
    let url = server.url().to_string();
    let mut h = start(
        &url,
        &[
            ("batch.size", "200"),
            ("max.retries", "2"),
            ("retry.backoff.ms", "20"),
            // Short, to see a flush fail during the outage; long enough for the 200 records
            // written before it on a busy machine.
            ("flush.timeout.ms", "3000"),
        ],
        false,
    )
    .await;
    h.task
        .put(
            (0..200)
                .map(|id| order_record("orders", id, "before"))
                .collect(),
        )
        .await
        .unwrap();
    h.task.flush().await.unwrap();
    assert_eq!(server.count("orders").await, 200);

    // The server dies (SIGKILL; an in-memory server loses what it had).
    server.kill().await;
    // Records keep arriving while it is gone: accepted, buffered, retried.
    for chunk in (1_000..6_000).collect::<Vec<_>>().chunks(500) {
        h.task
            .put(
                chunk
                    .iter()
                    .map(|&id| order_record("orders", id, "during"))
                    .collect(),
            )
            .await
            .unwrap();
    }
    wait_for(
        "the outage to be reported",
        Duration::from_secs(20),
        || async { h.status.current().is_some() },
    )
    .await;
    let problem = h.status.current().unwrap();
    assert!(
        problem.contains(&url) && problem.contains("retrying"),
        "{problem}"
    );

    // A flush cannot finish while the server is away: it fails as retriable after
    // flush.timeout.ms, keeping the records.
    let err = h.task.flush().await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
    assert!(
        err.to_string().contains("flush.timeout.ms") && err.to_string().contains("5000 records"),
        "{err}"
    );

    // It comes back on the same port.
    server.restart().await;
    assert_eq!(server.url(), url);
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match h.task.flush().await {
                Ok(()) => break,
                Err(e) if e.is_retriable() => continue,
                Err(e) => panic!("flush failed: {e}"),
            }
        }
    })
    .await
    .expect("flush succeeds once the server is back");
    assert_eq!(h.status.current(), None, "{:?}", h.status.all());

    // Every record accepted during the outage is there, with its content.
    let docs = server.documents("orders").await;
    assert_eq!(docs.len(), 5_000);
    for (id, source) in &docs {
        let n: i64 = id.parse().unwrap();
        assert!((1_000..6_000).contains(&n), "unexpected document {id}");
        assert_eq!(source["status"], "during", "document {id}");
        assert_eq!(source["customer"], format!("customer-{n}"));
    }
    assert!(h.errant.reports().is_empty());
    h.task.stop().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_cluster_at_start_is_waited_for() {
    let addr = free_port();
    let url = format!("http://{addr}");
    // The task starts although nothing answers, and says why it is not writing.
    let mut h = start(
        &url,
        &[("retry.backoff.ms", "20"), ("max.retries", "1")],
        false,
    )
    .await;
    let problem = h.status.current().expect("the outage is reported at start");
    assert!(problem.contains(&url), "{problem}");
    assert!(problem.contains("retrying"), "{problem}");

    h.task
        .put(
            (0..100)
                .map(|id| order_record("orders", id, "new"))
                .collect(),
        )
        .await
        .unwrap();
    // The cluster appears on that address later.
    let server = OsmemServer::start_on(addr).await;
    h.task.flush().await.unwrap();
    assert_eq!(server.count("orders").await, 100);
    assert_eq!(h.status.current(), None, "{:?}", h.status.all());
    h.task.stop().await.unwrap();
}
