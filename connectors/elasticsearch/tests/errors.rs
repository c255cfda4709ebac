//! Bad records and rejected documents: reported as errant (dead-letter queue) while the good
//! documents of the same batch are written; transient rejections retried.

use std::sync::Arc;

use sluice_connector_elasticsearch::testing::OsmemServer;
use sluice_sdk::{Field, Schema, SchemaRef, SinkTask, Struct, Value};

use crate::support::{record, start, Credentials, GatewayServer};

fn event_schema() -> SchemaRef {
    Arc::new(Schema::struct_of(vec![
        Field::new("id", Schema::int64()),
        Field::new("amount", Schema::int64()),
        Field::new("customer", Schema::string()),
        Field::new("when", Schema::timestamp()),
    ]))
}

fn event(id: i64) -> Value {
    Value::Struct(
        Struct::new()
            .with("id", id)
            .with("amount", id * 10)
            .with("customer", format!("c{id}"))
            .with("when", 1_704_067_200_000i64),
    )
}

/// A value whose `amount` is text that does not parse as the mapped `long`.
fn bad_value(id: i64) -> (Value, SchemaRef) {
    let schema = Arc::new(Schema::struct_of(vec![
        Field::new("id", Schema::int64()),
        Field::new("amount", Schema::string()),
    ]));
    let value = Value::Struct(Struct::new().with("id", id).with("amount", "lots"));
    (value, schema)
}

/// A value whose `customer` is an object where the mapping has text: a mapping conflict.
fn conflicting_value(id: i64) -> (Value, SchemaRef) {
    let schema = Arc::new(Schema::struct_of(vec![
        Field::new("id", Schema::int64()),
        Field::new(
            "customer",
            Schema::struct_of(vec![Field::new("name", Schema::string())]),
        ),
    ]));
    let value = Value::Struct(
        Struct::new()
            .with("id", id)
            .with("customer", Value::Struct(Struct::new().with("name", "x"))),
    );
    (value, schema)
}

/// 40 good records with 4 bad ones among them (offsets 10, 11, 25, 38), in one batch.
fn mixed_batch() -> Vec<sluice_sdk::SinkRecord> {
    (0..44)
        .map(|offset| match offset {
            10 | 25 => {
                let (v, s) = bad_value(offset);
                record("events", offset, offset, v, Some(s))
            }
            11 | 38 => {
                let (v, s) = conflicting_value(offset);
                record("events", offset, offset, v, Some(s))
            }
            _ => record(
                "events",
                offset,
                offset,
                event(offset),
                Some(event_schema()),
            ),
        })
        .collect()
}

const BAD: [i64; 4] = [10, 11, 25, 38];

async fn assert_good_documents_written(server: &OsmemServer) {
    assert_eq!(server.count("events").await, 40);
    for id in 0..44 {
        let doc = server.document("events", &id.to_string()).await;
        assert_eq!(doc.is_some(), !BAD.contains(&id), "document {id}");
    }
}

#[tokio::test]
async fn rejected_documents_are_dead_lettered_and_the_rest_written() {
    let server = OsmemServer::start().await;
    let mut h = start(
        server.url(),
        &[("batch.size", "100"), ("linger.ms", "50")],
        true,
    )
    .await;
    h.task.put(mixed_batch()).await.unwrap();
    h.task.flush().await.unwrap();

    assert_good_documents_written(&server).await;
    let reports = h.errant.reports();
    let offsets: Vec<i64> = reports.iter().map(|(o, _)| *o).collect();
    assert_eq!(offsets, BAD, "{reports:?}");
    for (offset, message) in &reports {
        assert!(
            message.contains(&format!("record events-0@{offset}"))
                && message.contains("index 'events'")
                && message.contains(&format!("id '{offset}'")),
            "{message}"
        );
        assert!(
            message.contains("mapper_parsing_exception")
                || message.contains("document_parsing_exception"),
            "{message}"
        );
    }
    assert!(reports[0].1.contains("[amount]"), "{}", reports[0].1);
    h.task.stop().await.unwrap();
}

#[tokio::test]
async fn rejected_documents_fail_the_task_when_errors_are_not_tolerated() {
    let server = OsmemServer::start().await;
    let mut h = start(
        server.url(),
        &[("batch.size", "100"), ("linger.ms", "50")],
        false,
    )
    .await;
    h.task.put(mixed_batch()).await.unwrap();
    let err = h.task.flush().await.unwrap_err();
    assert!(!err.is_retriable(), "{err}");
    let text = err.to_string();
    assert!(text.contains("tolerance exceeded"), "{text}");
    assert!(text.contains("record events-0@10"), "{text}");
    // Bulk requests are not transactions: the good documents of the batch are in.
    assert_good_documents_written(&server).await;
    // The task stays failed.
    let again = h.task.put(vec![]).await.unwrap_err();
    assert!(again.to_string().contains("record events-0@10"), "{again}");
}

#[tokio::test]
async fn ignore_and_warn_skip_rejected_documents_even_without_tolerance() {
    for behavior in ["ignore", "warn"] {
        let server = OsmemServer::start().await;
        let mut h = start(
            server.url(),
            &[
                ("behavior.on.malformed.documents", behavior),
                ("batch.size", "100"),
                ("linger.ms", "50"),
            ],
            false,
        )
        .await;
        h.task.put(mixed_batch()).await.unwrap();
        h.task.flush().await.unwrap();
        assert_good_documents_written(&server).await;
        // Offered to the dead-letter queue (refused here, as errors.tolerance=none would).
        assert_eq!(h.errant.reports().len(), 4, "{behavior}");
        h.task.stop().await.unwrap();
    }
}

#[tokio::test]
async fn records_that_cannot_be_documents_are_reported_or_dropped() {
    let server = OsmemServer::start().await;
    let mut no_key = record("events", 5, 0, event(5), Some(event_schema()));
    no_key.key = Value::Null;
    let mut not_object = record("events", 6, 6, Value::String("plain".into()), None);
    not_object.value_schema = Some(Arc::new(Schema::string()));
    let good = record("events", 7, 7, event(7), Some(event_schema()));

    let mut h = start(server.url(), &[], true).await;
    h.task
        .put(vec![no_key.clone(), not_object.clone(), good.clone()])
        .await
        .unwrap();
    h.task.flush().await.unwrap();
    let reports = h.errant.reports();
    assert_eq!(reports.iter().map(|r| r.0).collect::<Vec<_>>(), [5, 6]);
    assert!(reports[0].1.contains("key.ignore=true"), "{}", reports[0].1);
    assert!(
        reports[1].1.contains("not a struct or map"),
        "{}",
        reports[1].1
    );
    assert!(server.document("events", "7").await.is_some());

    let mut dropping = start(server.url(), &[("drop.invalid.message", "true")], false).await;
    dropping
        .task
        .put(vec![no_key, not_object, good])
        .await
        .unwrap();
    dropping.task.flush().await.unwrap();
    assert!(dropping.errant.reports().is_empty());

    let mut strict = start(server.url(), &[], false).await;
    let mut bad = record("events", 8, 8, event(8), Some(event_schema()));
    bad.key = Value::Float64(1.5);
    let err = strict.task.put(vec![bad]).await.unwrap_err();
    assert!(err.to_string().contains("cannot be a document id"), "{err}");
}

#[tokio::test]
async fn rejected_requests_and_items_are_retried_without_loss() {
    let server = OsmemServer::start().await;
    let gateway = GatewayServer::start(server.url(), Credentials::default()).await;
    let mut h = start(
        &gateway.url,
        &[
            ("batch.size", "50"),
            ("retry.backoff.ms", "10"),
            ("max.retries", "10"),
        ],
        false,
    )
    .await;
    // Three whole requests answered 429, then one answer with 20 items rejected.
    gateway.reject_bulk_requests(3);
    gateway.reject_items_once(20);
    h.task
        .put(
            (0..200)
                .map(|id| record("events", id, id, event(id), Some(event_schema())))
                .collect(),
        )
        .await
        .unwrap();
    h.task.flush().await.unwrap();
    assert_eq!(server.count("events").await, 200);
    assert!(h.errant.reports().is_empty(), "{:?}", h.errant.reports());
    // 4 batches + 3 rejected requests + 1 resend of the rejected items.
    assert_eq!(gateway.bulk_requests(), 8);
    // Below max.retries nothing is reported as an outage.
    assert!(h.status.all().is_empty(), "{:?}", h.status.all());
}
