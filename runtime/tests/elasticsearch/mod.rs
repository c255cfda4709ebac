//! The Elasticsearch sink through the real worker, its embedded broker and a real
//! Elasticsearch-API server (`osmem-server` from PyPI, started by each test on a free port):
//!
//! - [`load`]: 100,000 records become 100,000 documents with the right ids and fields;
//!   tombstones delete and updates replace.
//! - [`cqrs`]: the `examples/cqrs` files as shipped (SQL file and both connector JSONs, only
//!   hosts, ports and the password adapted) with a real PostgreSQL: rows inserted, updated and
//!   deleted appear, change and disappear in the index.
//! - [`cqrs_cdc`]: the `examples/cqrs-cdc` files as shipped with a PostgreSQL in logical
//!   mode: inserts, updates and hard deletes reach the index; commit-to-document latency.
//! - [`dead_letters`]: mapping conflicts and malformed values go to the dead-letter topic with
//!   the context headers while the good documents of the same batch are indexed.
//! - [`crash`]: SIGKILL of the worker mid-stream; after the restart every document is there.
//! - [`outage`]: the server goes away mid-stream (connections cut and refused) and comes back:
//!   nothing is lost.

use crate::postgres::pg_server;

mod cqrs;
mod cqrs_cdc;
mod crash;
mod dead_letters;
mod load;
mod outage;

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value as Json};
use sluice_connector_elasticsearch::testing::OsmemServer;

use crate::support::{WorkerOptions, WorkerProcess};

/// Generous limit for waits on a 2-core machine shared with other builds.
pub const WAIT: Duration = Duration::from_secs(180);

/// The Connect schema of the test orders, as the JSON converter's envelope carries it.
const ORDER_SCHEMA: &str = r#"{"type":"struct","name":"order","optional":false,"fields":[
    {"field":"id","type":"int64","optional":false},
    {"field":"customer","type":"string","optional":false},
    {"field":"amount","type":"int32","optional":false},
    {"field":"placed","type":"int64","optional":false,"name":"org.apache.kafka.connect.data.Timestamp","version":1},
    {"field":"status","type":"string","optional":false}]}"#;

/// 2024-01-01T00:00:00Z in milliseconds.
const EPOCH_2024: i64 = 1_704_067_200_000;

/// A worker with the embedded broker in `dir`, committing sink offsets every 500 ms.
pub async fn start_worker(dir: &std::path::Path) -> WorkerProcess {
    WorkerProcess::start(WorkerOptions::new(dir).env("SLUICE_OFFSET_FLUSH_INTERVAL_MS", "500"))
        .await
}

/// The record value of order `id` (JSON converter envelope with its schema).
pub fn order_value(id: i64, status: &str) -> String {
    let schema: Json = serde_json::from_str(ORDER_SCHEMA).expect("schema JSON");
    json!({
        "schema": schema,
        "payload": {
            "id": id,
            "customer": format!("customer-{id}"),
            "amount": id % 1000,
            "placed": EPOCH_2024 + id,
            "status": status,
        }
    })
    .to_string()
}

/// The document order `id` becomes: the Timestamp as ISO text.
pub fn order_document(id: i64, status: &str) -> Json {
    let placed = chrono::DateTime::from_timestamp_millis(EPOCH_2024 + id)
        .expect("a valid time")
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string();
    json!({
        "id": id,
        "customer": format!("customer-{id}"),
        "amount": id % 1000,
        "placed": placed,
        "status": status,
    })
}

/// The `config` of an Elasticsearch sink reading `topic` into `url`: string keys (the
/// document ids), JSON values with schemas, tombstones delete.
pub fn sink_config(url: &str, topic: &str, extra: &[(&str, &str)]) -> Json {
    let mut config = json!({
        "connector.class": "io.confluent.connect.elasticsearch.ElasticsearchSinkConnector",
        "topics": topic,
        "connection.url": url,
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
        "behavior.on.null.values": "delete",
    });
    for (k, v) in extra {
        config[*k] = Json::from(*v);
    }
    config
}

/// One record to produce: key and value, `None` for a null (a tombstone's value).
pub type KeyedRecord = (Option<String>, Option<String>);

/// Produces `records` to `topic` in order (idempotent, acks=all) and waits for every
/// acknowledgement.
pub async fn produce_keyed(bootstrap: &str, topic: &str, records: Vec<KeyedRecord>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "120000")
        .create()
        .expect("producer");
    for chunk in records.chunks(20_000) {
        let sends: Vec<_> = chunk
            .iter()
            .map(|(key, value)| {
                let mut record = FutureRecord::<str, str>::to(topic);
                if let Some(k) = key {
                    record = record.key(k.as_str());
                }
                if let Some(v) = value {
                    record = record.payload(v.as_str());
                }
                producer.send(record, Duration::from_secs(120))
            })
            .collect();
        for sent in futures::future::join_all(sends).await {
            sent.unwrap_or_else(|(e, _)| panic!("producing to {topic} failed: {e}"));
        }
    }
}

/// Orders `ids` with `status`, keyed by id.
pub fn orders(ids: impl IntoIterator<Item = i64>, status: &str) -> Vec<KeyedRecord> {
    ids.into_iter()
        .map(|id| (Some(id.to_string()), Some(order_value(id, status))))
        .collect()
}

/// The end of the worker's log, for failure messages.
pub fn log_tail(worker: &WorkerProcess) -> String {
    let log = worker.log();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// What differs between the index and `expected`, in a few lines.
fn describe_difference(
    actual: &BTreeMap<String, Json>,
    expected: &BTreeMap<String, Json>,
) -> String {
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .take(5)
        .collect();
    let unexpected: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .take(5)
        .collect();
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|(k, v)| {
            actual
                .get(k)
                .filter(|a| *a != v)
                .map(|a| format!("{k}: {a} instead of {v}"))
        })
        .take(3)
        .collect();
    format!(
        "{} documents for {} expected; missing (first 5) {missing:?}; unexpected {unexpected:?}; wrong {wrong:?}",
        actual.len(),
        expected.len()
    )
}

/// Waits until index `index` holds exactly `expected` (id -> source), failing with the
/// difference and the worker's log once the index has not changed for [`WAIT`] (a loaded
/// machine may take longer in all, but a sink that makes progress is not stuck).
pub async fn wait_for_documents(
    worker: &WorkerProcess,
    server: &OsmemServer,
    index: &str,
    expected: &BTreeMap<String, Json>,
) {
    let mut deadline = tokio::time::Instant::now() + WAIT;
    let mut previous_count = None;
    loop {
        // Counting is cheap; the documents are read only once the count is right.
        let count = server.count(index).await;
        if previous_count != Some(count) {
            previous_count = Some(count);
            deadline = tokio::time::Instant::now() + WAIT;
        }
        let last;
        if count == expected.len() as u64 {
            let actual: BTreeMap<String, Json> =
                server.documents(index).await.into_iter().collect();
            if &actual == expected {
                return;
            }
            last = describe_difference(&actual, expected);
        } else {
            last = format!("{count} documents for {} expected", expected.len());
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "index '{index}' did not reach the expected documents and did not change for {WAIT:?}: {last}\n\
                 worker log (end):\n{}",
                log_tail(worker)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The committed offset of the sink's consumer group for `topic` partition 0 (the
/// `/connectors/{name}/offsets` endpoint), once the connector and its offsets exist.
pub async fn committed_offset(worker: &WorkerProcess, connector: &str, topic: &str) -> Option<i64> {
    let (status, body) = worker
        .request(
            reqwest::Method::GET,
            &format!("/connectors/{connector}/offsets"),
            None,
        )
        .await;
    if status != 200 {
        // Not created yet.
        return None;
    }
    body["offsets"].as_array()?.iter().find_map(|o| {
        (o["partition"]["kafka_topic"] == topic && o["partition"]["kafka_partition"] == 0)
            .then(|| o["offset"]["kafka_offset"].as_i64())
            .flatten()
    })
}

/// Waits until the sink has committed offset `offset` for `topic` partition 0.
pub async fn wait_for_commit(worker: &WorkerProcess, connector: &str, topic: &str, offset: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let committed = committed_offset(worker, connector, topic).await;
        if committed == Some(offset) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "the sink '{connector}' committed {committed:?} on {topic}, not {offset}\n\
                 worker log (end):\n{}",
                log_tail(worker)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Task 0 of `connector`: its status object (state, problem, trace).
pub async fn task_status(worker: &WorkerProcess, connector: &str) -> Json {
    worker
        .task_state(connector, 0)
        .await
        .map(|(_, t)| t)
        .unwrap_or(Json::Null)
}
