//! Mappings created from the Connect schema before the first write, index naming, flavour.

use std::sync::Arc;

use serde_json::json;
use sluice_connector_elasticsearch::testing::OsmemServer;
use sluice_sdk::{Decimal, Field, Schema, SinkTask, Struct, Value};

use crate::support::{order_record, record, start};

#[tokio::test]
async fn the_mapping_comes_from_the_schema_before_the_first_write() {
    let server = OsmemServer::start().await;
    let schema = Arc::new(Schema::struct_of(vec![
        Field::new("id", Schema::int64()),
        Field::new("level", Schema::int8()),
        Field::new("price", Schema::decimal(2)),
        Field::new("placed", Schema::timestamp()),
        Field::new("day", Schema::date()),
        Field::new("at", Schema::time()),
        Field::new("name", Schema::string()),
        Field::new("tags", Schema::array(Schema::string())),
    ]));
    let value = Value::Struct(
        Struct::new()
            .with("id", 1i64)
            .with("level", Value::Int8(3))
            .with("price", Decimal::parse("9.99").unwrap().into_value())
            .with("placed", 1_704_067_200_000i64)
            .with("day", Value::Int32(19_723))
            .with("at", Value::Int32(3_600_000))
            .with("name", "widget")
            .with("tags", Value::Array(vec!["a".into(), "b".into()])),
    );
    let mut h = start(server.url(), &[], false).await;
    h.task
        .put(vec![record("Products", 0, 1, value, Some(schema))])
        .await
        .unwrap();
    h.task.flush().await.unwrap();

    let mapping = server.mapping("products").await;
    let p = &mapping["properties"];
    // Dynamic mapping would have made these long, double-or-float and text.
    assert_eq!(p["level"]["type"], "byte", "{mapping}");
    assert_eq!(p["price"]["type"], "double", "{mapping}");
    assert_eq!(p["placed"]["type"], "date", "{mapping}");
    assert_eq!(p["day"]["type"], "date", "{mapping}");
    assert_eq!(p["at"]["type"], "date", "{mapping}");
    assert_eq!(
        p["at"]["format"], "strict_hour_minute_second_fraction",
        "{mapping}"
    );
    assert_eq!(p["name"]["type"], "text", "{mapping}");
    assert_eq!(
        p["name"]["fields"]["keyword"]["type"], "keyword",
        "{mapping}"
    );
    let doc = server.document("products", "1").await.unwrap();
    assert_eq!(
        doc,
        json!({"id": 1, "level": 3, "price": 9.99, "placed": "2024-01-01T00:00:00.000Z",
               "day": "2024-01-01", "at": "01:00:00.000", "name": "widget", "tags": ["a", "b"]})
    );
    // The date fields are real dates: a range query finds the document.
    let (_, hits) = server
        .request(
            reqwest::Method::POST,
            "/products/_search",
            Some(
                json!({"query": {"range": {"placed": {"gte": "2023-12-31", "lt": "2024-01-02"}}}}),
            ),
        )
        .await;
    assert_eq!(hits["hits"]["total"]["value"], 1, "{hits}");
}

#[tokio::test]
async fn schema_ignore_leaves_the_mapping_to_elasticsearch() {
    let server = OsmemServer::start().await;
    let mut h = start(server.url(), &[("schema.ignore", "true")], false).await;
    h.task
        .put(vec![order_record("orders", 1, "new")])
        .await
        .unwrap();
    h.task.flush().await.unwrap();
    let mapping = server.mapping("orders").await;
    // The schema would have made the Decimal a double; dynamic mapping makes a float.
    assert_ne!(
        mapping["properties"]["total"]["type"], "double",
        "{mapping}"
    );
    assert!(server.document("orders", "1").await.is_some());
}

#[tokio::test]
async fn an_existing_mapping_is_left_alone() {
    let server = OsmemServer::start().await;
    let (status, _) = server
        .request(
            reqwest::Method::PUT,
            "/orders",
            Some(json!({"mappings": {"properties": {"customer": {"type": "keyword"}}}})),
        )
        .await;
    assert_eq!(status, 200);
    let mut h = start(server.url(), &[], false).await;
    h.task
        .put(vec![order_record("orders", 1, "new")])
        .await
        .unwrap();
    h.task.flush().await.unwrap();
    let mapping = server.mapping("orders").await;
    assert_eq!(
        mapping["properties"]["customer"]["type"], "keyword",
        "{mapping}"
    );
}

#[tokio::test]
async fn topics_map_to_indices() {
    let server = OsmemServer::start().await;
    let mut h = start(
        server.url(),
        &[("topic.index.map", "pg.public.orders:orders-read")],
        false,
    )
    .await;
    h.task
        .put(vec![
            order_record("pg.public.orders", 1, "new"),
            order_record("Audit_Log", 2, "new"),
        ])
        .await
        .unwrap();
    h.task.flush().await.unwrap();
    assert!(server.document("orders-read", "1").await.is_some());
    assert!(server.document("audit_log", "2").await.is_some());
    assert_eq!(server.count("pg.public.orders").await, 0);
}

#[tokio::test]
async fn key_ignore_uses_topic_partition_offset_ids() {
    let server = OsmemServer::start().await;
    let mut h = start(server.url(), &[("key.ignore", "true")], false).await;
    let mut r = order_record("logs", 1, "new");
    r.kafka_partition = 3;
    r.kafka_offset = 77;
    r.key = Value::Null;
    h.task.put(vec![r.clone(), r]).await.unwrap();
    h.task.flush().await.unwrap();
    assert_eq!(server.count("logs").await, 1);
    assert!(server.document("logs", "logs+3+77").await.is_some());
}
