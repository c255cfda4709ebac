//! Mapping conflicts and malformed values go to the dead-letter topic with Kafka Connect's
//! context headers, while the good documents of the same batch are indexed and the offsets
//! move past everything.
//!
//! All 44 records are in the topic before the connector starts, so the sink's first poll
//! reads them together and its first `_bulk` request carries the good and the rejected
//! documents side by side.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value as Json};
use sluice_connector_elasticsearch::testing::OsmemServer;

use super::{
    produce_keyed, sink_config, start_worker, task_status, wait_for_commit, wait_for_documents,
    KeyedRecord,
};
use crate::support::read_topic;

const RECORDS: i64 = 44;
/// `amount` is text that does not parse as the mapped `long`.
const UNPARSABLE: [i64; 2] = [10, 25];
/// `customer` is an object where the mapping has text.
const CONFLICTING: [i64; 2] = [11, 38];
/// The value is a JSON string, not an object: it cannot be a document.
const NOT_AN_OBJECT: i64 = 17;
/// The value is not JSON: the converter cannot read it.
const NOT_JSON: i64 = 30;

fn good_payload(id: i64) -> Json {
    json!({"id": id, "amount": id * 10, "customer": format!("c{id}"), "when": 1_704_067_200_000i64})
}

fn value(id: i64) -> String {
    let field = |name: &str, ty: &str| json!({"field": name, "type": ty, "optional": false});
    let envelope = |fields: Vec<Json>, payload: Json| {
        json!({"schema": {"type": "struct", "optional": false, "fields": fields}, "payload": payload})
            .to_string()
    };
    if UNPARSABLE.contains(&id) {
        envelope(
            vec![field("id", "int64"), field("amount", "string")],
            json!({"id": id, "amount": "lots"}),
        )
    } else if CONFLICTING.contains(&id) {
        envelope(
            vec![
                field("id", "int64"),
                json!({"field": "customer", "type": "struct", "optional": false,
                       "fields": [field("name", "string")]}),
            ],
            json!({"id": id, "customer": {"name": "x"}}),
        )
    } else if id == NOT_AN_OBJECT {
        json!({"schema": {"type": "string", "optional": false}, "payload": "just text"}).to_string()
    } else if id == NOT_JSON {
        "{not json".to_string()
    } else {
        envelope(
            vec![
                field("id", "int64"),
                field("amount", "int64"),
                field("customer", "string"),
                json!({"field": "when", "type": "int64", "optional": false,
                       "name": "org.apache.kafka.connect.data.Timestamp", "version": 1}),
            ],
            good_payload(id),
        )
    }
}

fn header<'a>(headers: &'a [(String, Option<Vec<u8>>)], key: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or_else(|| panic!("no header {key} in {headers:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_documents_are_dead_lettered_and_the_rest_indexed() {
    let server = OsmemServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let worker = start_worker(dir.path()).await;
    let records: Vec<KeyedRecord> = (0..RECORDS)
        .map(|id| (Some(id.to_string()), Some(value(id))))
        .collect();
    produce_keyed(&worker.bootstrap(), "events", records).await;

    worker.write_config(
        "events-es.json",
        &json!({"name": "events-es", "config": sink_config(server.url(), "events", &[
            ("errors.tolerance", "all"),
            ("errors.deadletterqueue.topic.name", "events-dlq"),
            ("errors.deadletterqueue.context.headers.enable", "true"),
        ])}),
    );

    let bad: Vec<i64> = [
        UNPARSABLE.as_slice(),
        CONFLICTING.as_slice(),
        &[NOT_AN_OBJECT, NOT_JSON],
    ]
    .concat();
    let expected: BTreeMap<String, Json> = (0..RECORDS)
        .filter(|id| !bad.contains(id))
        .map(|id| {
            let mut doc = good_payload(id);
            doc["when"] = json!("2024-01-01T00:00:00.000Z");
            (id.to_string(), doc)
        })
        .collect();
    wait_for_documents(&worker, &server, "events", &expected).await;
    // Every record is in the index or in the dead-letter topic: the offsets move past all.
    wait_for_commit(&worker, "events-es", "events", RECORDS).await;

    let bootstrap = worker.bootstrap();
    let dead = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "events-dlq", 6, Duration::from_secs(60))
    })
    .await
    .unwrap();
    let by_offset: BTreeMap<i64, &crate::support::Consumed> = dead
        .iter()
        .map(|r| {
            let offset = header(&r.headers, "__connect.errors.offset")
                .parse()
                .unwrap();
            (offset, r)
        })
        .collect();
    let mut dead_offsets: Vec<i64> = by_offset.keys().copied().collect();
    dead_offsets.sort_unstable();
    let mut bad_sorted = bad.clone();
    bad_sorted.sort_unstable();
    assert_eq!(dead_offsets, bad_sorted, "{} dead letters", dead.len());

    for (&offset, record) in &by_offset {
        let h = &record.headers;
        assert_eq!(header(h, "__connect.errors.topic"), "events");
        assert_eq!(header(h, "__connect.errors.partition"), "0");
        assert_eq!(header(h, "__connect.errors.connector.name"), "events-es");
        assert_eq!(header(h, "__connect.errors.task.id"), "0");
        assert_eq!(
            header(h, "__connect.errors.exception.class.name"),
            "org.apache.kafka.connect.errors.DataException"
        );
        assert!(!header(h, "__connect.errors.exception.stacktrace").is_empty());
        assert_eq!(
            record.key.as_deref(),
            Some(offset.to_string().as_bytes()),
            "the original key"
        );
        let message = header(h, "__connect.errors.exception.message");
        if offset == NOT_JSON {
            assert_eq!(header(h, "__connect.errors.stage"), "VALUE_CONVERTER");
            assert_eq!(
                record.value.as_deref(),
                Some(&b"{not json"[..]),
                "the original bytes"
            );
            continue;
        }
        assert_eq!(
            header(h, "__connect.errors.stage"),
            "TASK_PUT",
            "offset {offset}"
        );
        // The value as the connector's converter writes it: the same schema and payload.
        let dead_value: Json =
            serde_json::from_slice(record.value.as_deref().expect("a value")).expect("JSON value");
        let original: Json = serde_json::from_str(&value(offset)).unwrap();
        assert_eq!(
            dead_value["payload"], original["payload"],
            "offset {offset}"
        );
        if offset == NOT_AN_OBJECT {
            assert!(message.contains("not a struct or map"), "{message}");
        } else {
            assert!(
                message.contains(&format!("index 'events', id '{offset}'"))
                    && (message.contains("mapper_parsing_exception")
                        || message.contains("document_parsing_exception")),
                "offset {offset}: {message}"
            );
        }
    }
    let status = task_status(&worker, "events-es").await;
    assert_eq!(status["state"], "RUNNING", "{status}");
}
