//! Resuming from committed offsets, rows sharing one timestamp, the delay interval and UTC.

use serde_json::json;
use sluice_sdk::{OffsetSnapshot, SourceRecord, Value};

use crate::support::{
    committed, fresh_database, int, poll_times, poll_until, props, start_single, WAIT,
};

fn ids(records: &[SourceRecord]) -> Vec<i64> {
    records.iter().map(|r| int(r, "id")).collect()
}

fn config(url: &str, mode: &str, batch: &str) -> sluice_sdk::config::Props {
    props(&[
        ("connection.url", url),
        ("mode", mode),
        ("topic.prefix", "t-"),
        ("table.whitelist", "events"),
        ("incrementing.column.name", "id"),
        ("timestamp.column.name", "ts"),
        ("poll.interval.ms", "100"),
        ("batch.max.rows", batch),
    ])
}

/// 1,000 rows share one timestamp, 10 more follow a second later.
async fn tied_events(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "CREATE TABLE events (id integer PRIMARY KEY, ts timestamptz NOT NULL, body text);
             INSERT INTO events SELECT g, '2024-05-01 12:00:00.123456+00', 'e' || g
               FROM generate_series(1, 1000) g;
             INSERT INTO events SELECT g, '2024-05-01 12:00:01+00', 'e' || g
               FROM generate_series(1001, 1010) g;",
        )
        .await
        .expect("create events");
}

#[tokio::test]
async fn incrementing_resumes_exactly_after_the_last_committed_row() {
    let (client, url, _) = fresh_database("resume_incrementing").await;
    tied_events(&client).await;
    let cfg = config(&url, "incrementing", "100");
    let mut first = start_single(&cfg, OffsetSnapshot::default()).await;
    let got = poll_times(first.task.as_mut(), 3).await;
    assert_eq!(ids(&got), (1..=300).collect::<Vec<_>>());
    assert_eq!(
        serde_json::Value::Object(got.last().unwrap().source_offset.clone()),
        json!({"incrementing": 300})
    );
    first.task.stop().await.unwrap();

    let mut second = start_single(&cfg, committed(&got)).await;
    let mut rest = Vec::new();
    poll_until(
        second.task.as_mut(),
        &mut rest,
        WAIT,
        "the remaining rows",
        |r| r.len() >= 710,
    )
    .await;
    assert_eq!(
        ids(&rest),
        (301..=1010).collect::<Vec<_>>(),
        "no gap, no repeat"
    );
}

#[tokio::test]
async fn timestamp_incrementing_stop_inside_a_tie_loses_nothing() {
    let (client, url, _) = fresh_database("resume_ts_inc").await;
    tied_events(&client).await;
    let cfg = config(&url, "timestamp+incrementing", "100");
    let mut first = start_single(&cfg, OffsetSnapshot::default()).await;
    let got = poll_times(first.task.as_mut(), 3).await;
    assert_eq!(ids(&got), (1..=300).collect::<Vec<_>>());
    // 2024-05-01T12:00:00.123456Z: milliseconds, then the nanoseconds of that second.
    assert_eq!(
        serde_json::Value::Object(got.last().unwrap().source_offset.clone()),
        json!({"timestamp": 1_714_564_800_123i64, "timestamp_nanos": 123_456_000, "incrementing": 300})
    );
    first.task.stop().await.unwrap();

    let mut second = start_single(&cfg, committed(&got)).await;
    let mut rest = Vec::new();
    poll_until(
        second.task.as_mut(),
        &mut rest,
        WAIT,
        "the remaining rows",
        |r| r.len() >= 710,
    )
    .await;
    assert_eq!(
        ids(&rest),
        (301..=1010).collect::<Vec<_>>(),
        "no gap, no repeat"
    );
}

#[tokio::test]
async fn timestamp_only_stop_inside_a_tie_loses_nothing() {
    let (client, url, _) = fresh_database("resume_ts").await;
    tied_events(&client).await;
    client
        .batch_execute(
            "INSERT INTO events SELECT g, '2024-05-01 11:00:00+00', 'early' FROM generate_series(2001, 2005) g",
        )
        .await
        .unwrap();
    let cfg = config(&url, "timestamp", "100");
    let mut first = start_single(&cfg, OffsetSnapshot::default()).await;
    let got = poll_times(first.task.as_mut(), 3).await;
    assert_eq!(got.len(), 300);
    // The five early rows form a complete group; no record inside the tie may claim it.
    let last = serde_json::Value::Object(got.last().unwrap().source_offset.clone());
    assert_eq!(
        last,
        json!({"timestamp": 1_714_561_200_000i64, "timestamp_nanos": 0})
    );
    first.task.stop().await.unwrap();

    let mut second = start_single(&cfg, committed(&got)).await;
    let mut rest = Vec::new();
    poll_until(
        second.task.as_mut(),
        &mut rest,
        WAIT,
        "the whole tie and after",
        |r| r.iter().any(|r| int(r, "id") == 1010),
    )
    .await;
    let mut all: Vec<i64> = ids(&got).into_iter().chain(ids(&rest)).collect();
    all.sort_unstable();
    all.dedup();
    let expected: Vec<i64> = (1..=1010).chain(2001..=2005).collect();
    assert_eq!(all, expected, "every row arrived");
    assert!(
        !ids(&rest).iter().any(|id| (2001..=2005).contains(id)),
        "the completed group is not read again"
    );
}

#[tokio::test]
async fn delay_interval_holds_back_recent_rows_on_the_database_clock() {
    let (client, url, _) = fresh_database("delay").await;
    client
        .batch_execute(
            "CREATE TABLE events (id integer PRIMARY KEY, ts timestamptz NOT NULL, body text);
             INSERT INTO events VALUES
               (1, now() - interval '120 seconds', 'old'),
               (2, now() - interval '30 seconds', 'recent'),
               (3, now() - interval '58 seconds', 'ripening');",
        )
        .await
        .unwrap();
    let mut cfg = config(&url, "timestamp+incrementing", "100");
    cfg.insert("timestamp.delay.interval.ms".into(), "60000".into());
    let mut running = start_single(&cfg, OffsetSnapshot::default()).await;
    let task = running.task.as_mut();
    let mut records = Vec::new();
    poll_until(
        task,
        &mut records,
        WAIT,
        "the row old enough, then the ripening one",
        |r| r.iter().any(|r| int(r, "id") == 3),
    )
    .await;
    // Row 3 becomes eligible about 2s after the insert; row 2 not for 30s.
    assert_eq!(ids(&records), vec![1, 3]);
    let row = client
        .query_one(
            "SELECT now() - interval '60 seconds' > ts FROM events WHERE id = 3",
            &[],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "row 3 was read only once the database clock allowed it"
    );
    running.task.stop().await.unwrap();
}

#[tokio::test]
async fn timestamps_are_utc_whatever_the_session_time_zone() {
    let (client, url, db) = fresh_database("utc").await;
    client
        .batch_execute(&format!(
            "ALTER DATABASE \"{db}\" SET timezone TO 'America/New_York';
             CREATE TABLE events (id integer PRIMARY KEY, ts timestamp NOT NULL, tstz timestamptz NOT NULL);
             INSERT INTO events VALUES
               (1, '2024-03-10 06:30:00', '2024-03-10 06:30:00+00'),
               (2, (now() AT TIME ZONE 'UTC') - interval '2 seconds', now()),
               (3, (now() AT TIME ZONE 'UTC') + interval '1 hour', now());"
        ))
        .await
        .unwrap();
    // Row 3 is an hour in the future in UTC: in a session at UTC+5:30 a naive comparison
    // with local time would let it through; at UTC-5 rows 1-2 would be held back for hours.
    for (zone_option, label) in [
        ("", "database default America/New_York"),
        (
            "?options=-c%20TimeZone%3DAsia/Kolkata",
            "session Asia/Kolkata",
        ),
    ] {
        let mut cfg = config(
            &format!("{url}{zone_option}"),
            "timestamp+incrementing",
            "100",
        );
        cfg.insert("timestamp.column.name".into(), "ts".into());
        let mut running = start_single(&cfg, OffsetSnapshot::default()).await;
        let task = running.task.as_mut();
        let mut records = Vec::new();
        poll_until(task, &mut records, WAIT, label, |r| r.len() >= 2).await;
        records.extend(poll_times(task, 3).await);
        assert_eq!(
            ids(&records),
            vec![1, 2],
            "{label}: the future row stays out"
        );
        let s = records[0].value.as_struct().unwrap();
        assert_eq!(
            s.get("ts"),
            Some(&Value::Int64(1_710_052_200_000)),
            "{label}"
        );
        assert_eq!(
            s.get("tstz"),
            Some(&Value::Int64(1_710_052_200_000)),
            "{label}"
        );
        assert_eq!(
            records[0].source_offset.get("timestamp"),
            Some(&json!(1_710_052_200_000i64)),
            "{label}"
        );
        running.task.stop().await.unwrap();
    }
}

#[tokio::test]
async fn timestamp_initial_sets_where_a_new_connector_starts() {
    let (client, url, _) = fresh_database("initial").await;
    client
        .batch_execute(
            "CREATE TABLE events (id integer PRIMARY KEY, ts timestamptz NOT NULL);
             INSERT INTO events VALUES (1, '2024-01-01 00:00:00+00'), (2, '2024-06-01 00:00:00+00'),
                                       (3, now() - interval '1 hour');",
        )
        .await
        .unwrap();
    // 2024-03-01T00:00:00Z: rows 2 and 3 are later.
    let mut cfg = config(&url, "timestamp+incrementing", "100");
    cfg.insert("timestamp.initial".into(), "1709251200000".into());
    let mut running = start_single(&cfg, OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    poll_until(
        running.task.as_mut(),
        &mut records,
        WAIT,
        "rows after the initial time",
        |r| r.len() >= 2,
    )
    .await;
    assert_eq!(ids(&records), vec![2, 3]);
    running.task.stop().await.unwrap();

    // -1: the database's current time; only rows stamped later arrive.
    cfg.insert("timestamp.initial".into(), "-1".into());
    let mut running = start_single(&cfg, OffsetSnapshot::default()).await;
    let task = running.task.as_mut();
    let before = poll_times(task, 2).await;
    assert!(before.is_empty(), "existing rows are skipped: {before:?}");
    client
        .batch_execute("INSERT INTO events VALUES (4, clock_timestamp())")
        .await
        .unwrap();
    let mut records = Vec::new();
    poll_until(
        task,
        &mut records,
        WAIT,
        "the row inserted after start",
        |r| !r.is_empty(),
    )
    .await;
    assert_eq!(ids(&records), vec![4]);
    running.task.stop().await.unwrap();
}
