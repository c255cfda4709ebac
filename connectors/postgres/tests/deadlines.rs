//! A server that accepts the TCP connection and never answers (a firewall holding the
//! connection half open, a hung database): validate, start and the task's connect all end at
//! their deadline with an error that says what happened, instead of waiting forever.

use std::sync::Arc;
use std::time::Duration;

use sluice_connector_postgres::PostgresSourceConnector;
use sluice_sdk::testing::SilentServer;
use sluice_sdk::{ConnectorContext, Error, OffsetSnapshot, SourceConnector, SourceTaskContext};
use tokio::time::Instant;

use crate::support::{props, TestHost, TestStatus};

/// Slack for a busy 2-core machine on top of a deadline.
const MARGIN: Duration = Duration::from_secs(5);

fn silent_url(server: &SilentServer, params: &str) -> String {
    format!("postgresql://sluice@{}/shop?{params}", server.addr())
}

#[tokio::test]
async fn validate_answers_within_the_url_connect_timeout_with_the_error_on_connection_url() {
    let server = SilentServer::start().await;
    let url = silent_url(&server, "connect_timeout=2");
    // Several attempts, far apart: validate must still try once.
    let config = props(&[
        ("connection.url", &url),
        ("mode", "bulk"),
        ("topic.prefix", "t-"),
        ("connection.attempts", "3"),
        ("connection.backoff.ms", "60000"),
    ]);
    let started = Instant::now();
    let connector = PostgresSourceConnector::default();
    let errors = tokio::time::timeout(Duration::from_secs(2) + MARGIN, connector.validate(&config))
        .await
        .expect("validate must answer within connect_timeout");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(2) + MARGIN,
        "validate took {elapsed:?}; the deadline is connect_timeout=2"
    );
    assert!(server.accepted() >= 1, "validate never reached the server");
    let error = errors
        .0
        .iter()
        .find(|e| e.option == "connection.url")
        .unwrap_or_else(|| panic!("no error on connection.url: {errors}"));
    let expected = format!(
        "timed out after 2s waiting for PostgreSQL at {} to answer",
        server.addr()
    );
    assert!(error.message.starts_with(&expected), "{error}");
    assert!(error.message.contains("connect_timeout="), "{error}");
    assert!(
        !error.message.contains("tried 3 times"),
        "validate tries once: {error}"
    );
}

#[tokio::test]
async fn start_gives_up_after_connection_attempts_with_a_clear_error() {
    let server = SilentServer::start().await;
    // jdbc: form with pgjdbc's loginTimeout, the whole connect and login.
    let url = format!(
        "jdbc:postgresql://{}/shop?user=sluice&sslmode=disable&loginTimeout=1",
        server.addr()
    );
    let config = props(&[
        ("connection.url", &url),
        ("mode", "bulk"),
        ("topic.prefix", "t-"),
        ("connection.attempts", "2"),
        ("connection.backoff.ms", "200"),
    ]);
    let mut connector = PostgresSourceConnector::default();
    let host = Arc::new(TestHost::default());
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_millis(2_200) + MARGIN,
        connector.start(ConnectorContext::new("silent", host), config),
    )
    .await
    .expect("start must give up after connection.attempts");
    let elapsed = started.elapsed();
    // Two attempts of 1 s and one 200 ms backoff.
    let bound = Duration::from_millis(2_200);
    assert!(
        elapsed >= bound && elapsed < bound + MARGIN,
        "start took {elapsed:?}; two 1 s attempts and a 200 ms backoff were expected"
    );
    assert!(server.accepted() >= 2, "start did not try twice");
    match result {
        Err(Error::Config(errors)) => {
            let text = errors.to_string();
            assert!(
                text.contains("option 'connection.url' timed out after 1s"),
                "{text}"
            );
            assert!(
                text.contains(
                    "tried 2 times, 0.2s apart: connection.attempts, connection.backoff.ms"
                ),
                "{text}"
            );
        }
        other => panic!("start should fail with a config error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_task_whose_server_never_answers_reports_it_within_its_deadline() {
    let server = SilentServer::start().await;
    let url = silent_url(&server, "sslmode=disable&connect_timeout=1");
    let config = props(&[
        ("connection.url", &url),
        ("mode", "bulk"),
        ("topic.prefix", "t-"),
        ("query", "SELECT 1 AS id"),
        ("connection.backoff.ms", "200"),
    ]);
    let status = Arc::new(TestStatus::default());
    let mut task = PostgresSourceConnector::default().create_task();
    task.start(SourceTaskContext::new(
        "silent",
        0,
        config,
        Arc::new(OffsetSnapshot::default()),
        status.clone(),
    ))
    .await
    .expect("the task starts without connecting");
    let started = Instant::now();
    let records = tokio::time::timeout(Duration::from_secs(1) + MARGIN, task.poll())
        .await
        .expect("poll returns once the connect deadline passes")
        .expect("an outage is not a task failure");
    assert!(records.is_empty());
    assert!(started.elapsed() >= Duration::from_secs(1));
    let problem = status
        .reports()
        .into_iter()
        .flatten()
        .next()
        .expect("the outage is reported in the task status");
    let expected = format!(
        "no answer from PostgreSQL at {} within 1s (connect and login)",
        server.addr()
    );
    assert!(problem.contains(&expected), "{problem}");
    assert!(problem.contains("retrying in"), "{problem}");

    // The next poll tries again after the backoff and is bounded the same way.
    let again = tokio::time::timeout(Duration::from_secs(1) + MARGIN, task.poll())
        .await
        .expect("the retry is bounded too")
        .expect("still an outage, not a failure");
    assert!(again.is_empty());
    assert!(server.accepted() >= 2, "the task did not try again");
    task.stop().await.unwrap();
}
