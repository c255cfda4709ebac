//! `soft.delete.column.name` (a sluice extension): rows marked deleted become tombstones
//! (the row's key, no value, no value schema), in the order and with the offsets of the rows
//! they replace; the column is checked against the table.

use sluice_connector_postgres::PostgresSourceConnector;
use sluice_sdk::config::Props;
use sluice_sdk::{ConnectorContext, Error, OffsetSnapshot, SourceConnector, SourceRecord, Value};

use crate::support::{
    committed, fresh_database, poll_times, poll_until, props, start_single, text, PgServer,
    TestHost, WAIT,
};

fn config(url: &str, mode: &str, column: &str) -> Props {
    props(&[
        ("connection.url", url),
        ("mode", mode),
        ("incrementing.column.name", "id"),
        ("timestamp.column.name", "updated_at"),
        ("table.whitelist", "orders"),
        ("topic.prefix", "pg-"),
        ("poll.interval.ms", "50"),
        ("soft.delete.column.name", column),
    ])
}

/// `(key, Some(status))` for a row, `(key, None)` for a tombstone.
fn summary(record: &SourceRecord) -> (i64, Option<String>) {
    let key = record.key.as_i64().expect("an integer key");
    if record.value.is_null() {
        assert!(
            record.value_schema.is_none(),
            "a tombstone has no value schema, so the converters write a Kafka null: {record:?}"
        );
        assert!(record.key_schema.is_some(), "the key keeps its schema");
        (key, None)
    } else {
        (key, Some(text(record, "status")))
    }
}

#[tokio::test]
async fn rows_marked_deleted_become_tombstones() {
    let (client, url, _db) = fresh_database("soft_delete_ts").await;
    client
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL,
                 updated_at timestamptz NOT NULL, deleted_at timestamptz);
             INSERT INTO orders VALUES
                 (1, 'new', '2024-01-01 00:00:01+00', NULL),
                 (2, 'gone', '2024-01-01 00:00:02+00', '2024-01-01 00:00:02+00'),
                 (3, 'paid', '2024-01-01 00:00:03+00', NULL);",
        )
        .await
        .unwrap();
    let config = config(&url, "timestamp+incrementing", "deleted_at");
    let mut task = start_single(&config, OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    poll_until(task.task.as_mut(), &mut records, WAIT, "3 rows", |r| {
        r.len() >= 3
    })
    .await;
    let seen: Vec<_> = records.iter().map(summary).collect();
    assert_eq!(
        seen,
        [(1, Some("new".into())), (2, None), (3, Some("paid".into()))]
    );
    // The tombstone carries the offset of the row it stands for, so a restart resumes after it.
    assert_eq!(records[1].source_offset["incrementing"], 2);

    // A row marked deleted later is read again (its updated_at moved) and becomes a
    // tombstone; a row brought back is a row again.
    client
        .batch_execute(
            "UPDATE orders SET deleted_at = '2024-01-02 00:00:00+00', updated_at = '2024-01-02 00:00:00+00' WHERE id = 1;
             UPDATE orders SET deleted_at = NULL, status = 'back', updated_at = '2024-01-02 00:00:01+00' WHERE id = 2;",
        )
        .await
        .unwrap();
    poll_until(task.task.as_mut(), &mut records, WAIT, "2 more", |r| {
        r.len() >= 5
    })
    .await;
    let seen: Vec<_> = records[3..].iter().map(summary).collect();
    assert_eq!(seen, [(1, None), (2, Some("back".into()))]);

    // Resuming from the offsets of what was handed over sends nothing again.
    let mut resumed = start_single(&config, committed(&records)).await;
    let again = poll_times(resumed.task.as_mut(), 3).await;
    assert!(again.is_empty(), "{again:?}");
}

#[tokio::test]
async fn a_boolean_column_marks_deleted_rows_when_true() {
    let (client, url, _db) = fresh_database("soft_delete_bool").await;
    client
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL,
                 updated_at timestamptz NOT NULL DEFAULT now(), deleted boolean);
             INSERT INTO orders (id, status, deleted) VALUES
                 (1, 'a', false), (2, 'b', true), (3, 'c', NULL);",
        )
        .await
        .unwrap();
    let mut task = start_single(&config(&url, "bulk", "deleted"), OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    poll_until(task.task.as_mut(), &mut records, WAIT, "3 rows", |r| {
        r.len() >= 3
    })
    .await;
    let seen: Vec<_> = records[..3].iter().map(summary).collect();
    assert_eq!(
        seen,
        [(1, Some("a".into())), (2, None), (3, Some("c".into()))]
    );
    assert!(matches!(records[0].value, Value::Struct(_)));
}

/// Validate and start both refuse `config`, naming the option and every phrase.
async fn refused(config: Props, phrases: &[&str]) {
    let errors = PostgresSourceConnector::default().validate(&config).await;
    let found = errors
        .0
        .iter()
        .find(|e| e.option == "soft.delete.column.name")
        .unwrap_or_else(|| panic!("validate did not flag soft.delete.column.name: {errors}"));
    for phrase in phrases {
        assert!(found.message.contains(phrase), "validate: {found}");
    }
    let mut connector = PostgresSourceConnector::default();
    let host = std::sync::Arc::new(TestHost::default());
    match connector
        .start(ConnectorContext::new("bad", host), config)
        .await
    {
        Err(Error::Config(e)) => {
            let text = e.to_string();
            for phrase in phrases {
                assert!(text.contains(phrase), "start: {text}");
            }
        }
        other => panic!("start should fail with a config error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_column_is_checked_against_the_table() {
    let (client, _url, db) = fresh_database("soft_delete_bad").await;
    client
        .batch_execute(
            "CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL,
                 updated_at timestamptz NOT NULL, deleted_at timestamptz);
             CREATE TABLE keyless (id bigint NOT NULL, updated_at timestamptz NOT NULL,
                 deleted_at timestamptz);",
        )
        .await
        .unwrap();
    let url = PgServer::shared().jdbc_url(&db);
    let good = config(&url, "timestamp+incrementing", "deleted_at");
    let errors = PostgresSourceConnector::default().validate(&good).await;
    assert!(errors.is_empty(), "{errors}");

    refused(
        config(&url, "timestamp+incrementing", "removed_at"),
        &[
            "names column 'removed_at'",
            "does not have",
            "id, status, updated_at, deleted_at",
        ],
    )
    .await;
    refused(
        config(&url, "timestamp+incrementing", "status"),
        &["neither a boolean nor a timestamp"],
    )
    .await;
    let mut keyless = config(&url, "timestamp+incrementing", "deleted_at");
    keyless.insert("table.whitelist".into(), "keyless".into());
    refused(keyless, &["has no primary key"]).await;
}
