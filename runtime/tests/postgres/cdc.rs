//! The CDC source through the worker and the embedded broker: SIGKILL the worker while
//! changes stream, restart it, and check every change arrived and the slot's flush position
//! moved on; and read the Debezium events with an independent client (Confluent's Python
//! client) field by field.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;
use serde_json::{json, Value};

use super::pg_server::{PgServer, PASSWORD, SUPERUSER};
use super::worker::Worker;
use super::WAIT;

fn connector(server: &PgServer, db: &str) -> Value {
    json!({
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "database.hostname": "127.0.0.1",
        "database.port": server.port().to_string(),
        "database.user": SUPERUSER,
        "database.password": PASSWORD,
        "database.dbname": db,
        "database.sslmode": "disable",
        "topic.prefix": "pg",
        "plugin.name": "pgoutput",
        "slot.name": "sluice_e2e",
        "publication.name": "sluice_e2e",
        "table.include.list": "public\\.events,public\\.kinds",
        "heartbeat.interval.ms": "500",
        "status.update.interval.ms": "200",
        "tasks.max": "1"
    })
}

/// Reads the events topic from the start: how many events each id had, by op.
struct EventReader {
    consumer: BaseConsumer,
    ids: BTreeMap<i64, usize>,
    messages: usize,
}

impl EventReader {
    fn new(bootstrap: &str, topic: &str) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("cdc-reader-{}", std::process::id()))
            .set("enable.auto.commit", "false")
            .set("topic.metadata.refresh.interval.ms", "500")
            .create()
            .expect("consumer");
        let mut assignment = rdkafka::TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, 0, rdkafka::Offset::Beginning)
            .expect("partition 0");
        consumer.assign(&assignment).expect("assign");
        Self {
            consumer,
            ids: BTreeMap::new(),
            messages: 0,
        }
    }

    fn read_until(&mut self, worker: &Worker, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}: {} messages, {} ids\nworker logs:\n{}",
                    self.messages,
                    self.ids.len(),
                    worker.logs()
                );
            }
            let Some(Ok(message)) = self.consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let Some(payload) = message.payload() else {
                continue; // a tombstone
            };
            let value: Value = serde_json::from_slice(payload).expect("JSON");
            let event = &value["payload"];
            let row = if event["after"].is_null() {
                &event["before"]
            } else {
                &event["after"]
            };
            let id = row["id"].as_i64().expect("an id");
            *self.ids.entry(id).or_default() += 1;
            self.messages += 1;
        }
    }
}

fn confirmed_flush(server: &PgServer, db: &str) -> u64 {
    let text = server.psql(
        db,
        "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'sluice_e2e'",
    );
    let (hi, lo) = text.trim().split_once('/').expect("an LSN");
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

fn python() -> String {
    crate::support::test_python("confluent_kafka", "confluent-kafka[avro,schemaregistry]")
}

/// Reads `count` values of `topic` with Confluent's Python client; returns them as JSON.
fn read_with_python(bootstrap: &str, topic: &str, count: usize) -> Vec<Value> {
    let script = r#"
import json, sys, time
from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
bootstrap, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "py-cdc-check", "enable.auto.commit": False})
c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
out, deadline = [], time.time() + 60
while len(out) < count and time.time() < deadline:
    m = c.poll(0.5)
    if m is None or m.error() or m.value() is None:
        continue
    out.append({"key": json.loads(m.key()), "value": json.loads(m.value())})
c.close()
print(json.dumps(out))
"#;
    let output = Command::new(python())
        .args(["-c", script, bootstrap, topic, &count.to_string()])
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "python reader failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let values: Vec<Value> = serde_json::from_slice(&output.stdout).expect("JSON from python");
    assert_eq!(values.len(), count, "python read {values:?}");
    values
}

#[test]
fn cdc_survives_sigkill_and_reads_as_debezium_events() {
    const FIRST: i64 = 1_000;
    const TOTAL: i64 = 6_000;
    let server = PgServer::start_with(&["wal_level=logical", "max_replication_slots=4"]);
    let db = server.create_database("cdc_e2e");
    server.psql(
        &db,
        &format!(
            "CREATE TABLE events (id bigint PRIMARY KEY, body text NOT NULL);
             INSERT INTO events SELECT g, 'row ' || g FROM generate_series(1, {FIRST}) g;
             CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
             CREATE TABLE kinds (id int PRIMARY KEY, n numeric(8,3), ts timestamp, tz timestamptz,
               d date, j jsonb, u uuid, flag boolean, tags text[], m mood, t time, iv interval,
               b bytea, s smallint, r real);
             INSERT INTO kinds VALUES (7, 1.5, '2024-01-02 03:04:05.678901', '2024-01-02 03:04:05+01',
               '2024-01-02', '{{\"k\": true}}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', true, '{{a,b}}',
               'happy', '03:04:05.678901', '1 day 02:00:00', '\\x0102ff', 12, 1.5);"
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut worker = Worker::new(dir.path());
    worker.put_connector("pg-cdc", &connector(&server, &db));
    worker.start();
    let mut reader = EventReader::new(&worker.bootstrap(), "pg.public.events");
    reader.read_until(&worker, "the snapshot", |r| r.ids.len() >= FIRST as usize);

    // Changes keep arriving in small transactions while the worker is killed and restarted.
    let inserter = std::thread::spawn({
        let db = db.clone();
        let psql = server.psql_path();
        let port = server.port();
        move || {
            let mut next = FIRST + 1;
            while next <= TOTAL {
                let last = (next + 99).min(TOTAL);
                let status = Command::new(&psql)
                    .args(["-X", "-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", SUPERUSER, "-d", &db, "-c"])
                    .arg(format!(
                        "INSERT INTO events SELECT g, 'live ' || g FROM generate_series({next}, {last}) g"
                    ))
                    .env("PGPASSWORD", PASSWORD)
                    .status()
                    .expect("psql");
                assert!(status.success(), "insert failed");
                next = last + 1;
                // Paces the load generator; nothing waits on this.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    });
    reader.read_until(&worker, "live changes before the kill", |r| {
        r.ids.len() >= (FIRST + 1_000) as usize
    });
    let flushed_before_kill = confirmed_flush(&server, &db);
    worker.sigkill();
    let at_kill = reader.ids.len();
    worker.start();
    inserter.join().expect("inserter");
    reader.read_until(&worker, "every change after the restart", |r| {
        r.ids.len() >= TOTAL as usize
    });
    let missing: Vec<i64> = (1..=TOTAL)
        .filter(|id| !reader.ids.contains_key(id))
        .collect();
    assert_eq!(missing, Vec::<i64>::new());
    let duplicates = reader.messages - reader.ids.len();
    assert!(at_kill < TOTAL as usize, "the kill happened mid-stream");
    // The slot's flush position follows the acknowledged records after the restart too.
    let deadline = Instant::now() + WAIT;
    while confirmed_flush(&server, &db) <= flushed_before_kill {
        assert!(
            Instant::now() < deadline,
            "confirmed_flush_lsn stayed at {flushed_before_kill:X}\n{}",
            worker.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "cdc stream: killed after {at_kill} distinct ids; {} messages for {TOTAL} ids \
         ({duplicates} delivered twice)",
        reader.messages
    );

    // Heartbeats (heartbeat.interval.ms=500) went to Debezium's heartbeat topic.
    let heartbeats = read_with_python(&worker.bootstrap(), "__debezium-heartbeat.pg", 1);
    assert_eq!(heartbeats[0]["key"]["payload"], json!({"serverName": "pg"}));
    assert_eq!(
        heartbeats[0]["value"]["schema"]["name"],
        "io.debezium.connector.common.Heartbeat"
    );
    assert!(heartbeats[0]["value"]["payload"]["ts_ms"]
        .as_i64()
        .is_some());

    // An independent client reads the snapshot event of `kinds` as a Debezium event.
    let events = read_with_python(&worker.bootstrap(), "pg.public.kinds", 1);
    let key = &events[0]["key"];
    assert_eq!(key["payload"], json!({"id": 7}));
    assert_eq!(key["schema"]["name"], "pg.public.kinds.Key");
    let value = &events[0]["value"];
    assert_eq!(value["schema"]["name"], "pg.public.kinds.Envelope");
    let payload = &value["payload"];
    assert_eq!(payload["op"], "r");
    assert!(payload["before"].is_null());
    assert!(payload["ts_ms"].as_i64().is_some());
    let after = &payload["after"];
    assert_eq!(after["id"], 7);
    // numeric(8,3): Connect Decimal, base64 of the unscaled 1500 (0x05dc).
    assert_eq!(after["n"], "Bdw=");
    assert_eq!(after["ts"], 1_704_164_645_678_901_i64);
    assert_eq!(after["tz"], "2024-01-02T02:04:05Z");
    assert_eq!(after["d"], 19_724);
    assert_eq!(after["j"], "{\"k\": true}");
    assert_eq!(after["u"], "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    assert_eq!(after["flag"], true);
    assert_eq!(after["tags"], json!(["a", "b"]));
    assert_eq!(after["m"], "happy");
    assert_eq!(after["t"], 11_045_678_901_i64);
    assert_eq!(after["iv"], 93_600_000_000_i64);
    assert_eq!(after["b"], "AQL/");
    assert_eq!(after["s"], 12);
    assert_eq!(after["r"], 1.5);
    let source = &payload["source"];
    assert_eq!(source["connector"], "postgresql");
    assert_eq!(source["name"], "pg");
    assert_eq!(source["db"], db.as_str());
    assert_eq!(source["schema"], "public");
    assert_eq!(source["table"], "kinds");
    assert!(matches!(
        source["snapshot"].as_str(),
        Some("first" | "true" | "last" | "last_in_data_collection")
    ));
    assert!(source["lsn"].as_i64().is_some());
    assert!(source["txId"].as_i64().is_some());
    assert!(source["version"].is_string());
    let fields: BTreeMap<String, Value> = value["schema"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["field"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    let after_fields: BTreeMap<String, Value> = fields["after"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["field"].as_str().unwrap().to_string(), f.clone()))
        .collect();
    assert_eq!(
        after_fields["n"]["name"],
        "org.apache.kafka.connect.data.Decimal"
    );
    assert_eq!(after_fields["n"]["parameters"]["scale"], "3");
    assert_eq!(
        after_fields["ts"]["name"],
        "io.debezium.time.MicroTimestamp"
    );
    assert_eq!(
        after_fields["tz"]["name"],
        "io.debezium.time.ZonedTimestamp"
    );
    assert_eq!(after_fields["d"]["name"], "io.debezium.time.Date");
    assert_eq!(after_fields["j"]["name"], "io.debezium.data.Json");
    assert_eq!(after_fields["u"]["name"], "io.debezium.data.Uuid");
    assert_eq!(after_fields["m"]["name"], "io.debezium.data.Enum");
    assert_eq!(after_fields["m"]["parameters"]["allowed"], "sad,ok,happy");
    assert_eq!(after_fields["t"]["name"], "io.debezium.time.MicroTime");
    assert_eq!(after_fields["iv"]["name"], "io.debezium.time.MicroDuration");
    assert_eq!(after_fields["b"]["type"], "bytes");
    assert_eq!(after_fields["s"]["type"], "int16");
    assert_eq!(after_fields["r"]["type"], "float");
    assert_eq!(
        fields["source"]["name"],
        "io.debezium.connector.postgresql.Source"
    );
    assert_eq!(fields["op"]["type"], "string");
}
