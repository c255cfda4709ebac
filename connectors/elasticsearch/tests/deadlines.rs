//! A cluster address that accepts the TCP connection and never answers (a firewall holding
//! the connection half open, a hung node): every request ends at its deadline, the task says
//! so in its status instead of waiting, and it recovers when a real cluster takes the address.

use std::time::Duration;

use sluice_connector_elasticsearch::testing::OsmemServer;
use sluice_sdk::testing::SilentServer;
use sluice_sdk::SinkTask;
use tokio::time::Instant;

use crate::support::{order_record, start, wait_for};

/// Slack for a busy 2-core machine on top of a deadline.
const MARGIN: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_cluster_is_reported_within_read_timeout_and_recovered_from() {
    let silent = SilentServer::start().await;
    let addr = silent.addr();
    let url = format!("http://{addr}");
    let started = Instant::now();
    let mut h = start(
        &url,
        &[
            ("read.timeout.ms", "500"),
            ("connection.timeout.ms", "500"),
            ("max.retries", "1"),
            ("retry.backoff.ms", "20"),
            ("flush.timeout.ms", "1000"),
        ],
        false,
    )
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_millis(500) + MARGIN,
        "start took {elapsed:?}; the deadline is read.timeout.ms=500"
    );
    assert!(silent.accepted() >= 1, "the task never reached the server");
    // The start-up probe's timeout is the task's problem from the start.
    let problem = h
        .status
        .current()
        .expect("the silence is reported at start");
    assert!(
        problem.contains(&format!(
            "no answer from Elasticsearch at {url} within 500 ms (read.timeout.ms)"
        )) && problem.contains("retrying"),
        "{problem}"
    );

    h.task
        .put(
            (0..100)
                .map(|id| order_record("orders", id, "new"))
                .collect(),
        )
        .await
        .unwrap();
    // A flush cannot finish while nothing answers: it ends at flush.timeout.ms, retriable,
    // with the records still buffered.
    let err = h.task.flush().await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
    assert!(err.to_string().contains("flush.timeout.ms"), "{err}");
    wait_for(
        "the bulk requests to reach the silent server",
        MARGIN,
        || async { silent.accepted() >= 2 },
    )
    .await;
    assert!(
        h.status
            .current()
            .is_some_and(|p| p.contains("read.timeout.ms")),
        "{:?}",
        h.status.all()
    );

    // A real cluster takes the address.
    silent.close().await;
    let server = OsmemServer::start_on(addr).await;
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
    .expect("flush succeeds once a cluster answers");
    assert_eq!(server.count("orders").await, 100);
    assert_eq!(h.status.current(), None, "{:?}", h.status.all());
    assert!(h.errant.reports().is_empty());
    h.task.stop().await.unwrap();
}
