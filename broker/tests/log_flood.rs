//! A flood of bad frames writes a bounded number of log lines, with the right counts in the
//! summaries, and the broker keeps serving a real client.
//!
//! The broker runs in a child process (this test re-run with a role), whose log is its
//! stdout, so the count covers exactly this broker's output and no other test's.

use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use sluice_broker::Broker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::common::{
    broker_config, create_topic, produce, read_all, sigkill, spawn_child, CHILD_ROLE,
};

/// Connections that each send 100 requests for an API the broker does not serve.
const UNSUPPORTED_CONNECTIONS: usize = 30;
const UNSUPPORTED_PER_CONNECTION: usize = 100;
/// Connections that each send one frame of an unknown API (closed after it).
const MALFORMED_CONNECTIONS: usize = 3_500;
/// Connections that each send an impossible length prefix (closed after it).
const UNREADABLE_CONNECTIONS: usize = 3_500;
/// Client tasks opening those connections at once.
const CLIENTS: usize = 50;

/// An EndTxn v0 request: a known API this broker does not serve (no transactions), answered
/// with UNSUPPORTED_VERSION on an open connection.
fn end_txn(correlation_id: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&26i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes());
    body.extend_from_slice(&2i16.to_be_bytes());
    body.extend_from_slice(b"tx");
    body.extend_from_slice(&1i64.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.push(1);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// A frame of API key 999, which does not exist.
fn unknown_api() -> Vec<u8> {
    let mut frame = 10i32.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0x03, 0xe7, 0, 0, 0, 0, 0, 1, 0xff, 0xff]);
    frame
}

async fn send_and_wait_for_close(addr: &str, bytes: &[u8]) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut rest = Vec::new();
    // Ok (end of stream) or a reset: either way the broker hung up, which is what counts.
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest))
        .await
        .expect("the broker closes a connection after a bad frame");
    assert!(rest.is_empty(), "no answer to a bad frame: {rest:?}");
}

async fn unsupported_requests(addr: &str) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut frames = Vec::new();
    for i in 0..UNSUPPORTED_PER_CONNECTION {
        frames.extend_from_slice(&end_txn(i as i32));
    }
    stream.write_all(&frames).await.unwrap();
    for i in 0..UNSUPPORTED_PER_CONNECTION {
        let len = tokio::time::timeout(Duration::from_secs(30), stream.read_i32())
            .await
            .expect("a response to every unsupported request")
            .unwrap();
        let mut response = vec![0; len as usize];
        stream.read_exact(&mut response).await.unwrap();
        assert_eq!(
            i32::from_be_bytes(response[..4].try_into().unwrap()),
            i as i32,
            "responses come in request order"
        );
        // EndTxn v0 response: throttle time, then the error code, UNSUPPORTED_VERSION (35).
        assert_eq!(i16::from_be_bytes(response[8..10].try_into().unwrap()), 35);
    }
}

/// Occurrences a problem's lines account for: full lines matching `full`, plus the counts of
/// the summary lines for `problem`.
fn accounted(lines: &[String], full: &str, problem: &str) -> (usize, u64) {
    let full_lines = lines.iter().filter(|l| l.contains(full)).count();
    let marker = format!(" more {problem} from ");
    let summarised = lines
        .iter()
        .filter_map(|l| {
            let at = l.find(&marker)?;
            let count = l[..at].rsplit(' ').next()?;
            Some(count.parse::<u64>().expect("a count before 'more'"))
        })
        .sum();
    (full_lines, summarised)
}

/// The role under which this test re-runs itself as a child process.
const ROLE: &str = "log-flood";

#[test]
fn ten_thousand_bad_frames_write_a_bounded_log_and_the_broker_keeps_serving() {
    if std::env::var(CHILD_ROLE).as_deref() == Ok(ROLE) {
        flood_a_broker_and_use_it();
        return;
    }
    // The broker runs in a child process whose only subscriber prints to its stdout: in this
    // process, other tests' subscribers and brokers run concurrently, and tracing caches
    // per call site whether anyone listens, so a capture here could miss lines.
    let (mut child, output) = spawn_child(
        ROLE,
        "log_flood::ten_thousand_bad_frames_write_a_bounded_log_and_the_broker_keeps_serving",
        &[],
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut lines = Vec::new();
    loop {
        match output.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                sigkill(&mut child);
                panic!(
                    "the flood did not finish in time; its output:\n{}",
                    lines.join("\n")
                );
            }
        }
    }
    let status = child.wait().unwrap();
    let shown = lines.join("\n");
    assert!(
        status.success(),
        "the flooded broker's process failed:\n{shown}"
    );
    assert!(
        lines.iter().any(|l| l == DONE),
        "the child ran the flood:\n{shown}"
    );
    let lines: Vec<String> = lines
        .into_iter()
        .filter(|l| l.contains(" sluice_broker"))
        .collect();
    let shown = lines.join("\n");
    let frames = UNSUPPORTED_CONNECTIONS * UNSUPPORTED_PER_CONNECTION
        + MALFORMED_CONNECTIONS
        + UNREADABLE_CONNECTIONS;
    assert_eq!(frames, 10_000);
    assert!(
        lines.len() <= 40,
        "{} log lines for {frames} bad frames:\n{shown}",
        lines.len()
    );
    for (full, problem, expected) in [
        (
            "unsupported API or version requested",
            "unsupported requests",
            UNSUPPORTED_CONNECTIONS * UNSUPPORTED_PER_CONNECTION,
        ),
        (
            "malformed request; closing connection",
            "malformed requests",
            MALFORMED_CONNECTIONS,
        ),
        (
            "unreadable request; closing connection",
            "unreadable requests",
            UNREADABLE_CONNECTIONS,
        ),
    ] {
        let (full_lines, summarised) = accounted(&lines, full, problem);
        assert_eq!(
            full_lines, 3,
            "{problem}: the first three in full:\n{shown}"
        );
        assert_eq!(
            full_lines as u64 + summarised,
            expected as u64,
            "{problem}: every occurrence is logged or counted in a summary:\n{shown}"
        );
    }
}

/// Printed by the child when the flood, the client's round trip and the shutdown are done.
const DONE: &str = "@@flood done";

/// The child's part: a broker logging to stdout, 10,000 bad frames, a real client's round
/// trip, a clean stop (which writes the pending summaries).
fn flood_a_broker_and_use_it() {
    tracing_subscriber::registry()
        .with(Targets::new().with_target("sluice_broker", tracing::Level::INFO))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(std::io::stdout),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = runtime
        .block_on(Broker::start(broker_config(dir.path())))
        .unwrap();
    let addr = broker.bootstrap_servers();

    runtime.block_on(async {
        let mut jobs = tokio::task::JoinSet::new();
        for client in 0..CLIENTS {
            let addr = addr.clone();
            jobs.spawn(async move {
                for _ in (client..UNSUPPORTED_CONNECTIONS).step_by(CLIENTS) {
                    unsupported_requests(&addr).await;
                }
                for _ in (client..MALFORMED_CONNECTIONS).step_by(CLIENTS) {
                    send_and_wait_for_close(&addr, &unknown_api()).await;
                }
                for _ in (client..UNREADABLE_CONNECTIONS).step_by(CLIENTS) {
                    send_and_wait_for_close(&addr, &(-1i32).to_be_bytes()).await;
                }
            });
        }
        while let Some(job) = jobs.join_next().await {
            job.unwrap();
        }
    });

    // A real client still produces and fetches.
    create_topic(&addr, "after-flood", 1, &[]);
    produce(&addr, "after-flood", 0..3);
    let records = read_all(&addr, "after-flood");
    assert_eq!(
        records,
        (0..3)
            .map(|i| (i as i64, format!("key-{i}"), Some(format!("value-{i}"))))
            .collect::<Vec<_>>()
    );

    // Stopping writes the pending summaries.
    runtime.block_on(broker.shutdown()).unwrap();
    println!("{DONE}");
}
