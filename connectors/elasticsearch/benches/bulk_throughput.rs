//! Documents per second into a real Elasticsearch-API server (osmem-server): the sink task
//! (put + flush, conversion included) next to a plain `_bulk` loader sending the same
//! documents, pre-encoded, with the same batch size and concurrency, into the same server in
//! the same run. The loader's rate is the server's own limit; the ratio is the sink's
//! efficiency.
//!
//! ```sh
//! cargo bench -p sluice-connector-elasticsearch --bench bulk_throughput
//! SLUICE_BENCH_DOCS=200000 SLUICE_BENCH_ROUNDS=3 cargo bench -p sluice-connector-elasticsearch --bench bulk_throughput
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_connector_elasticsearch::testing::OsmemServer;
use sluice_connector_elasticsearch::ElasticsearchSinkTask;
use sluice_sdk::connector::{ErrantRecordReporter, NoStatusReporter};
use sluice_sdk::{
    async_trait, Decimal, Error, Field, Schema, SinkRecord, SinkTask, SinkTaskContext, Struct,
    TimestampType, Value,
};

const BATCH: usize = 2000;
const IN_FLIGHT: usize = 5;

#[derive(Debug)]
struct FailOnErrant;

#[async_trait]
impl ErrantRecordReporter for FailOnErrant {
    async fn report(&self, record: &SinkRecord, error: &Error) -> sluice_sdk::Result<()> {
        panic!("record {} reported as errant: {error}", record.kafka_offset);
    }
}

fn records(topic: &str, n: usize) -> Vec<SinkRecord> {
    let schema = Arc::new(Schema::struct_of(vec![
        Field::new("id", Schema::int64()),
        Field::new("customer", Schema::string()),
        Field::new("total", Schema::decimal(2)),
        Field::new("placed", Schema::timestamp()),
        Field::new("status", Schema::string()),
    ]));
    (0..n as i64)
        .map(|id| SinkRecord {
            topic: topic.into(),
            kafka_partition: 0,
            kafka_offset: id,
            key_schema: Some(Arc::new(Schema::int64())),
            key: Value::Int64(id),
            value_schema: Some(schema.clone()),
            value: Value::Struct(
                Struct::new()
                    .with("id", id)
                    .with("customer", format!("customer-{id}"))
                    .with(
                        "total",
                        Decimal::parse(&format!("{id}.25")).unwrap().into_value(),
                    )
                    .with("placed", 1_704_067_200_000i64 + id)
                    .with("status", "new"),
            ),
            timestamp: None,
            timestamp_type: TimestampType::NoTimestamp,
            headers: Vec::new(),
        })
        .collect()
}

/// The same documents as `records` would give, as `_bulk` bodies.
fn bodies(index: &str, n: usize) -> Vec<Vec<u8>> {
    let ids: Vec<i64> = (0..n as i64).collect();
    ids.chunks(BATCH)
        .map(|chunk| {
            let mut body = Vec::new();
            for id in chunk {
                let placed = chrono::DateTime::from_timestamp_millis(1_704_067_200_000 + id)
                    .unwrap()
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ");
                body.extend_from_slice(
                    format!(
                        "{{\"index\":{{\"_index\":\"{index}\",\"_id\":\"{id}\"}}}}\n{{\"id\":{id},\"customer\":\"customer-{id}\",\"total\":{id}.25,\"placed\":\"{placed}\",\"status\":\"new\"}}\n"
                    )
                    .as_bytes(),
                );
            }
            body
        })
        .collect()
}

async fn plain_bulk(server: &OsmemServer, index: &str, n: usize) -> Duration {
    let bodies = bodies(index, n);
    let http = reqwest::Client::new();
    let url = format!("{}/_bulk", server.url());
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    for body in bodies {
        let permit = semaphore.clone().acquire_owned().await.unwrap();
        let (http, url) = (http.clone(), url.clone());
        tasks.spawn(async move {
            let answer = http
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .unwrap();
            assert!(answer.status().is_success());
            let text = answer.text().await.unwrap();
            assert!(text.starts_with("{\"errors\":false") || !text.contains("\"errors\":true"));
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
    started.elapsed()
}

async fn sink(server: &OsmemServer, topic: &str, n: usize) -> Duration {
    let records = records(topic, n);
    let mut props: std::collections::BTreeMap<String, String> =
        [("connection.url".to_string(), server.url().to_string())].into();
    // Extra sink options for experiments: SLUICE_BENCH_SINK_OPTIONS="linger.ms=5,batch.size=1000".
    if let Ok(extra) = std::env::var("SLUICE_BENCH_SINK_OPTIONS") {
        for pair in extra.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').expect("option=value");
            props.insert(k.trim().to_string(), v.trim().to_string());
        }
    }
    let ctx = SinkTaskContext::new(
        "bench",
        0,
        props,
        Arc::new(FailOnErrant),
        Arc::new(NoStatusReporter),
    );
    let mut task = ElasticsearchSinkTask::new();
    task.start(ctx).await.unwrap();
    let started = Instant::now();
    // As the runtime hands them over: consumer-sized batches.
    let mut records = records.into_iter().peekable();
    while records.peek().is_some() {
        task.put(records.by_ref().take(500).collect())
            .await
            .unwrap();
    }
    task.flush().await.unwrap();
    let took = started.elapsed();
    task.stop().await.unwrap();
    took
}

fn main() {
    let n: usize = std::env::var("SLUICE_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let rounds: usize = std::env::var("SLUICE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let server = OsmemServer::start().await;
        let rate = |d: Duration| n as f64 / d.as_secs_f64();
        let (mut best_plain, mut best_sink) = (0f64, 0f64);
        for round in 0..rounds {
            let plain = plain_bulk(&server, &format!("plain-{round}"), n).await;
            assert_eq!(server.count(&format!("plain-{round}")).await, n as u64);
            let sunk = sink(&server, &format!("sink-{round}"), n).await;
            assert_eq!(server.count(&format!("sink-{round}")).await, n as u64);
            println!(
                "round {round}: plain _bulk {:>9.0} docs/s   sink task {:>9.0} docs/s   ({:.0}%)",
                rate(plain),
                rate(sunk),
                100.0 * rate(sunk) / rate(plain)
            );
            best_plain = best_plain.max(rate(plain));
            best_sink = best_sink.max(rate(sunk));
        }
        println!(
            "{n} documents, best of {rounds}: plain _bulk {best_plain:.0} docs/s, sink task {best_sink:.0} docs/s = {:.0}% of the server's limit",
            100.0 * best_sink / best_plain
        );
    });
}
