//! PostgreSQL restarted under a running task: the task reports the outage, reconnects with
//! backoff and carries on without losing or repeating rows.

use sluice_sdk::OffsetSnapshot;

use crate::support::{client, int, poll_times, poll_until, props, start_single, PgServer, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_survives_a_database_restart() {
    let server = tokio::task::spawn_blocking(PgServer::start_new)
        .await
        .unwrap();
    let db = {
        let s = &server;
        tokio::task::block_in_place(|| s.create_database("outage"))
    };
    let url = server.url(&db);
    let setup = client(&url).await;
    setup
        .batch_execute(
            "CREATE TABLE events (id integer PRIMARY KEY, ts timestamptz NOT NULL);
             INSERT INTO events SELECT g, '2024-01-01'::timestamptz + g * interval '1 second'
               FROM generate_series(1, 1000) g;",
        )
        .await
        .unwrap();
    drop(setup);
    let cfg = props(&[
        ("connection.url", &url),
        ("mode", "timestamp+incrementing"),
        ("topic.prefix", "t-"),
        ("incrementing.column.name", "id"),
        ("timestamp.column.name", "ts"),
        ("poll.interval.ms", "100"),
        ("batch.max.rows", "100"),
        ("connection.backoff.ms", "500"),
    ]);
    let mut running = start_single(&cfg, OffsetSnapshot::default()).await;
    let task = running.task.as_mut();
    // Mid-query: 300 of 1,000 rows handed over, the rest still streaming.
    let mut records = poll_times(task, 3).await;
    assert_eq!(records.len(), 300);

    tokio::task::block_in_place(|| server.stop());
    // Rows the server sent before it stopped may still be in the client's buffers and are
    // handed over; then the lost connection is noticed and reported.
    let status = running.status.clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while status.reports().iter().all(Option::is_none) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the outage was not reported"
        );
        records.extend(task.poll().await.expect("poll during the outage"));
    }
    let during = poll_times(task, 3).await;
    assert!(
        during.is_empty(),
        "nothing can be read while the server is down"
    );
    let reports = running.status.reports();
    let problem = reports
        .iter()
        .flatten()
        .next()
        .unwrap_or_else(|| panic!("the outage was not reported: {reports:?}"));
    assert!(
        problem.contains("cannot read from PostgreSQL at 127.0.0.1:")
            && problem.contains("retrying in"),
        "{problem}"
    );

    tokio::task::block_in_place(|| server.start());
    let setup = client(&url).await;
    setup
        .batch_execute(
            "INSERT INTO events SELECT g, '2025-01-01'::timestamptz + g * interval '1 second'
               FROM generate_series(1001, 1050) g;",
        )
        .await
        .unwrap();
    poll_until(
        task,
        &mut records,
        WAIT,
        "every row after the restart",
        |r| r.len() >= 1050,
    )
    .await;
    let ids: Vec<i64> = records.iter().map(|r| int(r, "id")).collect();
    assert_eq!(
        ids,
        (1..=1050).collect::<Vec<_>>(),
        "no row lost or repeated"
    );
    assert_eq!(
        running.status.reports().last(),
        Some(&None),
        "the problem is cleared once reconnected"
    );
    running.task.stop().await.unwrap();
}
