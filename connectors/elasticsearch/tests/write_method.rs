//! insert replaces, upsert merges; the last record for a key is the document in the end.

use std::sync::Arc;

use serde_json::json;
use sluice_connector_elasticsearch::testing::OsmemServer;
use sluice_sdk::{Field, Schema, SchemaRef, SinkTask, Struct, Value};

use crate::support::{record, start};

fn full_schema() -> SchemaRef {
    Arc::new(Schema::struct_of(vec![
        Field::new("id", Schema::int64()),
        Field::new("a", Schema::int64()),
        Field::new("b", Schema::int64()),
    ]))
}

fn partial_schema() -> SchemaRef {
    Arc::new(Schema::struct_of(vec![
        Field::new("id", Schema::int64()),
        Field::new("a", Schema::int64()),
    ]))
}

fn full(a: i64, b: i64) -> Value {
    Value::Struct(Struct::new().with("id", 1i64).with("a", a).with("b", b))
}

fn partial(a: i64) -> Value {
    Value::Struct(Struct::new().with("id", 1i64).with("a", a))
}

#[tokio::test]
async fn insert_replaces_and_upsert_merges() {
    let server = OsmemServer::start().await;
    let mut insert = start(server.url(), &[], false).await;
    insert
        .task
        .put(vec![
            record("replaced", 0, 1, full(1, 1), Some(full_schema())),
            record("replaced", 1, 1, partial(2), Some(partial_schema())),
        ])
        .await
        .unwrap();
    insert.task.flush().await.unwrap();
    assert_eq!(
        server.document("replaced", "1").await.unwrap(),
        json!({"id": 1, "a": 2})
    );

    let mut upsert = start(server.url(), &[("write.method", "upsert")], false).await;
    upsert
        .task
        .put(vec![
            record("merged", 0, 1, full(1, 1), Some(full_schema())),
            record("merged", 1, 1, partial(2), Some(partial_schema())),
        ])
        .await
        .unwrap();
    upsert.task.flush().await.unwrap();
    assert_eq!(
        server.document("merged", "1").await.unwrap(),
        json!({"id": 1, "a": 2, "b": 1})
    );
    assert!(insert.errant.reports().is_empty() && upsert.errant.reports().is_empty());
}

/// Many updates of a few keys, small batches, several requests in flight: each document ends
/// as its key's last record.
async fn last_record_wins(method: &str) {
    let server = OsmemServer::start().await;
    let mut h = start(
        server.url(),
        &[
            ("write.method", method),
            ("batch.size", "7"),
            ("max.in.flight.requests", "5"),
            ("behavior.on.null.values", "delete"),
            ("linger.ms", "0"),
        ],
        false,
    )
    .await;
    let schema = full_schema();
    let mut offset = 0;
    for round in 0..40i64 {
        let mut records = Vec::new();
        for key in 0..10i64 {
            let value = Value::Struct(
                Struct::new()
                    .with("id", key)
                    .with("a", round)
                    .with("b", offset),
            );
            records.push(record("hot", offset, key, value, Some(schema.clone())));
            offset += 1;
        }
        h.task.put(records).await.unwrap();
    }
    // Key 9 ends deleted, key 8 deleted then written again.
    h.task
        .put(vec![
            record("hot", offset, 9, Value::Null, None),
            record("hot", offset + 1, 8, Value::Null, None),
            record(
                "hot",
                offset + 2,
                8,
                Value::Struct(
                    Struct::new()
                        .with("id", 8i64)
                        .with("a", 1000i64)
                        .with("b", 0i64),
                ),
                Some(schema.clone()),
            ),
        ])
        .await
        .unwrap();
    h.task.flush().await.unwrap();
    for key in 0..8 {
        let doc = server.document("hot", &key.to_string()).await.unwrap();
        assert_eq!(doc["a"], 39, "{method}: key {key}: {doc}");
    }
    assert_eq!(
        server.document("hot", "8").await.unwrap()["a"],
        1000,
        "{method}"
    );
    assert!(server.document("hot", "9").await.is_none(), "{method}");
    assert!(h.errant.reports().is_empty(), "{:?}", h.errant.reports());
}

#[tokio::test]
async fn the_last_record_for_a_key_wins_with_insert() {
    last_record_wins("insert").await;
}

#[tokio::test]
async fn the_last_record_for_a_key_wins_with_upsert() {
    last_record_wins("upsert").await;
}

#[tokio::test]
async fn replayed_older_records_do_not_overwrite_newer_documents() {
    let server = OsmemServer::start().await;
    let mut h = start(server.url(), &[], false).await;
    h.task
        .put(vec![record(
            "orders",
            10,
            1,
            full(10, 10),
            Some(full_schema()),
        )])
        .await
        .unwrap();
    h.task.flush().await.unwrap();
    // After a crash the runtime delivers older offsets again: offsets 5 and 10 are replays.
    h.task
        .put(vec![
            record("orders", 5, 1, full(5, 5), Some(full_schema())),
            record("orders", 10, 1, full(10, 10), Some(full_schema())),
        ])
        .await
        .unwrap();
    h.task.flush().await.unwrap();
    assert_eq!(server.document("orders", "1").await.unwrap()["a"], 10);
    // Version conflicts of replays are expected, not errors.
    assert!(h.errant.reports().is_empty(), "{:?}", h.errant.reports());
}
