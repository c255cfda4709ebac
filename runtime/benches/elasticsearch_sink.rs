//! Documents per second from a topic into a real Elasticsearch-API server (osmem-server)
//! through a `sluice worker` (release binary, embedded broker, elasticsearch-sink with its
//! default batching: 2,000 records per `_bulk`, 5 requests in flight), next to a plain `_bulk`
//! loader sending the same documents with the same batch size and concurrency into the same
//! server in the same run. The loader's rate is the server's own limit; the ratio is what the
//! worker achieves of it.
//!
//! ```text
//! cargo bench -p sluice-runtime --bench elasticsearch_sink
//! SLUICE_BENCH_DOCS=200000 SLUICE_BENCH_ROUNDS=3 cargo bench -p sluice-runtime --bench elasticsearch_sink
//! SLUICE_BENCH_SINK_OPTIONS="batch.size=5000,max.in.flight.requests=2" cargo bench ...
//! ```
//!
//! Each round also prints the CPU seconds per 1,000 documents the server and the worker used
//! (from /proc), which shows where the time goes. The loader and the worker take turns going
//! first, and the indices are deleted after each round.
//!
//! The records (string keys, JSON values with the schema envelope: an int64, two strings, an
//! int32 and a Timestamp) are in the topic before the connector is created. The worker's rate
//! is measured from the first document seen in the index to the last (the connector's start
//! and consumer-group join are reported apart); the index is watched with `_count` every 50 ms.
//! The loader's documents are byte for byte what the sink sends (`index` actions with the
//! record offset as external version).

#[path = "support/proc_stats.rs"]
#[allow(dead_code)]
mod proc_stats;
use proc_stats::cpu_seconds;
#[path = "../tests/postgres/worker.rs"]
mod worker;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;
use sluice_connector_elasticsearch::testing::OsmemServer;
use worker::Worker;

/// The sink's defaults, used by the loader too.
const BATCH: usize = 2000;
const IN_FLIGHT: usize = 5;
const EPOCH_2024: i64 = 1_704_067_200_000;

fn value(id: i64) -> String {
    json!({
        "schema": {"type": "struct", "name": "order", "optional": false, "fields": [
            {"field": "id", "type": "int64", "optional": false},
            {"field": "customer", "type": "string", "optional": false},
            {"field": "amount", "type": "int32", "optional": false},
            {"field": "placed", "type": "int64", "optional": false,
             "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
            {"field": "status", "type": "string", "optional": false}]},
        "payload": {"id": id, "customer": format!("customer-{id}"), "amount": id % 1000,
                    "placed": EPOCH_2024 + id, "status": "new"}
    })
    .to_string()
}

/// The `_bulk` bodies the sink sends for the records of a topic named `index`.
fn bodies(index: &str, n: i64) -> Vec<Vec<u8>> {
    let ids: Vec<i64> = (0..n).collect();
    ids.chunks(BATCH)
        .map(|chunk| {
            let mut body = Vec::with_capacity(chunk.len() * 200);
            for &id in chunk {
                let placed = chrono::DateTime::from_timestamp_millis(EPOCH_2024 + id)
                    .expect("time")
                    .format("%Y-%m-%dT%H:%M:%S%.3fZ");
                body.extend_from_slice(
                    format!(
                        "{{\"index\":{{\"_id\":\"{id}\",\"_index\":\"{index}\",\"version\":{id},\"version_type\":\"external\"}}}}\n\
                         {{\"id\":{id},\"customer\":\"customer-{id}\",\"amount\":{},\"placed\":\"{placed}\",\"status\":\"new\"}}\n",
                        id % 1000
                    )
                    .as_bytes(),
                );
            }
            body
        })
        .collect()
}

/// Loads the documents with plain `_bulk` requests; the time until the last answer.
async fn plain_bulk(server: &OsmemServer, index: &str, n: i64) -> Duration {
    let bodies = bodies(index, n);
    let http = reqwest::Client::new();
    let url = format!(
        "{}/_bulk?filter_path=errors,items.*.status,items.*.error",
        server.url()
    );
    // The index with the mapping the sink would put, so both write the same way.
    let (status, body) = server
        .request(
            reqwest::Method::PUT,
            &format!("/{index}"),
            Some(json!({"mappings": {"properties": {
                "id": {"type": "long"},
                "customer": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
                "amount": {"type": "integer"},
                "placed": {"type": "date"},
                "status": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}
            }}})),
        )
        .await;
    assert_eq!(status, 200, "create index {index}: {body}");
    let started = Instant::now();
    let semaphore = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut requests = tokio::task::JoinSet::new();
    for body in bodies {
        let permit = semaphore.clone().acquire_owned().await.expect("semaphore");
        let (http, url) = (http.clone(), url.clone());
        requests.spawn(async move {
            let answer = http
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .expect("_bulk request");
            assert!(answer.status().is_success(), "{}", answer.status());
            let text = answer.text().await.expect("_bulk answer");
            assert!(text.contains("\"errors\":false"), "{text}");
            drop(permit);
        });
    }
    while let Some(done) = requests.join_next().await {
        done.expect("request task");
    }
    started.elapsed()
}

async fn produce(bootstrap: &str, topic: &str, n: i64) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let ids: Vec<i64> = (0..n).collect();
    for chunk in ids.chunks(20_000) {
        let values: Vec<(String, String)> = chunk
            .iter()
            .map(|id| (id.to_string(), value(*id)))
            .collect();
        let sends: Vec<_> = values
            .iter()
            .map(|(k, v)| {
                producer.send(
                    FutureRecord::to(topic).key(k.as_str()).payload(v.as_str()),
                    Duration::from_secs(60),
                )
            })
            .collect();
        for sent in futures::future::join_all(sends).await {
            sent.map_err(|(e, _)| e).expect("produce");
        }
    }
}

/// What one sink run measured.
struct SinkRun {
    /// From the first document in the index to the last.
    streaming: Duration,
    /// Documents written in that time.
    streamed: u64,
    /// From the connector's JSON landing in configs/ to the first document.
    startup: Duration,
}

async fn sink(server: &OsmemServer, worker: &Worker, topic: &str, n: i64) -> SinkRun {
    let mut config = json!({
        "connector.class": "elasticsearch-sink",
        "topics": topic,
        "connection.url": server.url(),
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "true",
    });
    if let Ok(extra) = std::env::var("SLUICE_BENCH_SINK_OPTIONS") {
        for pair in extra.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').expect("option=value");
            config[k.trim()] = json!(v.trim());
        }
    }
    let started = Instant::now();
    worker.put_connector(topic, &config);
    let deadline = started + Duration::from_secs(900);
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let count = server.count(topic).await;
        if count > 0 && first.is_none() {
            first = Some((Instant::now(), count));
        }
        if count >= n as u64 {
            let (at, seen) = first.expect("a first count");
            return SinkRun {
                streaming: at.elapsed(),
                streamed: n as u64 - seen,
                startup: at - started,
            };
        }
        assert!(
            Instant::now() < deadline,
            "{count} of {n} documents after 900 s: {}",
            worker.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// CPU seconds of the server and the worker during `f`.
async fn with_cpu<T>(f: impl std::future::Future<Output = T>) -> (T, f64, f64) {
    let (server, worker) = (
        cpu_seconds("osmem-server", true),
        cpu_seconds("sluice", true),
    );
    let out = f.await;
    (
        out,
        cpu_seconds("osmem-server", true) - server,
        cpu_seconds("sluice", true) - worker,
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let n: i64 = std::env::var("SLUICE_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rounds: usize = std::env::var("SLUICE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let server = OsmemServer::start().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut worker = Worker::new(dir.path());
        worker.start();
        let mut plain_rates = Vec::new();
        let mut sink_rates = Vec::new();
        let per_k = |cpu: f64| 1000.0 * cpu / n as f64;
        for round in 0..rounds {
            let topic = format!("bench-{round}");
            produce(&worker.bootstrap(), &topic, n).await;
            let plain_index = format!("plain-{round}");
            // Alternate which goes first, so neither always meets a fuller server.
            let mut plain = None;
            let mut sunk = None;
            for step in 0..2 {
                if (step + round) % 2 == 0 {
                    let (took, server_cpu, _) = with_cpu(plain_bulk(&server, &plain_index, n)).await;
                    assert_eq!(server.count(&plain_index).await, n as u64);
                    plain = Some((n as f64 / took.as_secs_f64(), server_cpu));
                } else {
                    let (run, server_cpu, worker_cpu) = with_cpu(sink(&server, &worker, &topic, n)).await;
                    let rate = run.streamed as f64 / run.streaming.as_secs_f64();
                    sunk = Some((rate, server_cpu, worker_cpu, run.startup));
                }
            }
            let (plain, plain_server_cpu) = plain.expect("plain run");
            let (rate, sink_server_cpu, worker_cpu, startup) = sunk.expect("sink run");
            println!(
                "round {round}: plain _bulk {plain:>7.0} docs/s (server {:.2} CPU-s/1k docs) | worker {rate:>7.0} docs/s = {:.0}% (server {:.2}, worker {:.2} CPU-s/1k docs; connector start to first document {:.1} s)",
                per_k(plain_server_cpu),
                100.0 * rate / plain,
                per_k(sink_server_cpu),
                per_k(worker_cpu),
                startup.as_secs_f64()
            );
            plain_rates.push(plain);
            sink_rates.push(rate);
            // Keep the in-memory server's size the same for every round.
            for index in [&plain_index, &topic] {
                server
                    .request(reqwest::Method::DELETE, &format!("/{index}"), None)
                    .await;
            }
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (plain, rate) = (median(&mut plain_rates), median(&mut sink_rates));
        println!(
            "{n} documents, median of {rounds} rounds: plain _bulk {plain:.0} docs/s, worker {rate:.0} docs/s = {:.0}% of the server's limit",
            100.0 * rate / plain
        );
        worker.sigkill();
    });
}
