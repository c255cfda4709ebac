//! The Elasticsearch server going away in the middle of a stream and coming back: the task
//! reports the outage and stays RUNNING, and every record ends up a document.
//!
//! osmem-server keeps its data in memory, so killing it would also lose the documents it had
//! acknowledged, which says nothing about the sink. The worker therefore reaches the server
//! through a [`Gate`], a TCP relay on its own port: closing the gate cuts every open connection
//! (requests in flight fail half-way) and refuses new ones, as a server that went away does;
//! reopening it on the same port brings the server back with everything it had.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value as Json};
use sluice_connector_elasticsearch::testing::OsmemServer;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::{
    log_tail, order_document, orders, produce_keyed, sink_config, start_worker, task_status,
    wait_for_commit, wait_for_documents, WAIT,
};
use crate::support::WorkerProcess;

/// A TCP relay to `target` that can be closed (connections cut, new ones refused) and
/// reopened on the same port.
#[derive(Debug)]
struct Gate {
    addr: SocketAddr,
    target: SocketAddr,
    relay: Option<tokio::task::JoinHandle<()>>,
}

impl Gate {
    async fn open(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the gate");
        let addr = listener.local_addr().expect("gate address");
        let mut gate = Self {
            addr,
            target,
            relay: None,
        };
        gate.serve(listener);
        gate
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let target = self.target;
        self.relay = Some(tokio::spawn(async move {
            // Dropping this set (when the relay is aborted) aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { continue };
                        connections.spawn(async move {
                            if let Ok(mut outbound) = TcpStream::connect(target).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        }));
    }

    /// Cuts every connection and stops listening.
    async fn close(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.abort();
            let _ = relay.await;
        }
    }

    /// Listens on the same port again.
    async fn reopen(&mut self) {
        let listener = TcpListener::bind(self.addr)
            .await
            .unwrap_or_else(|e| panic!("cannot listen on {} again: {e}", self.addr));
        self.serve(listener);
    }
}

/// Waits until task 0 of `connector` is RUNNING with (or without) a problem reported.
async fn wait_for_problem(worker: &WorkerProcess, connector: &str, present: bool) -> Json {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status = task_status(worker, connector).await;
        if status["state"] == "RUNNING" && status.get("problem").is_some() == present {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "task status {status}, expected a problem: {present}\nworker log (end):\n{}",
            log_tail(worker)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const BEFORE: i64 = 25_000;
const DURING: i64 = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_going_away_mid_stream_loses_nothing() {
    let server = OsmemServer::start().await;
    let mut gate = Gate::open(server.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(dir.path()).await;
    produce_keyed(&worker.bootstrap(), "orders", orders(0..BEFORE, "before")).await;
    worker.write_config(
        "orders-es.json",
        &json!({"name": "orders-es", "config": sink_config(&gate.url(), "orders", &[
            // Report the outage after two quick retries (retrying goes on).
            ("max.retries", "2"),
            ("retry.backoff.ms", "50"),
        ])}),
    );

    // Close the gate while documents stream in.
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.count("orders").await < 3_000 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no documents arrive\nworker log (end):\n{}",
            log_tail(&worker)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gate.close().await;
    let at_close = server.count("orders").await;
    assert!(
        at_close < BEFORE as u64,
        "every document was in before the gate closed; the test needs more records"
    );

    // The task reports the outage and stays RUNNING; records keep arriving meanwhile.
    let status = wait_for_problem(&worker, "orders-es", true).await;
    let problem = status["problem"].as_str().unwrap_or_default();
    assert!(problem.contains(&gate.addr.to_string()), "{problem}");
    // (A request the server had read in full before its connection was cut may still have
    // landed; by now it has.)
    let during_outage = server.count("orders").await;
    produce_keyed(
        &worker.bootstrap(),
        "orders",
        orders(BEFORE..BEFORE + DURING, "during"),
    )
    .await;
    // Nothing gets through while it is closed.
    assert_eq!(server.count("orders").await, during_outage);

    gate.reopen().await;
    let expected: BTreeMap<String, Json> = (0..BEFORE + DURING)
        .map(|id| {
            let status = if id < BEFORE { "before" } else { "during" };
            (id.to_string(), order_document(id, status))
        })
        .collect();
    wait_for_documents(&worker, &server, "orders", &expected).await;
    wait_for_commit(&worker, "orders-es", "orders", BEFORE + DURING).await;
    wait_for_problem(&worker, "orders-es", false).await;
    eprintln!("gate closed with {at_close} of {BEFORE} documents in; all there after it reopened");
}
