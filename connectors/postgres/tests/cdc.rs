//! The CDC source against a real PostgreSQL with `wal_level=logical`: snapshot and stream
//! with nothing missed or doubled, the slot's flush position, a resumed task, a column added
//! mid-stream, the type mapping, and the refusals of a server or user that cannot do CDC.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sluice_connector_postgres::cdc::{PostgresCdcConnector, PostgresCdcTask};
use sluice_sdk::config::Props;
use sluice_sdk::{
    OffsetSnapshot, SourceConnector, SourceRecord, SourceTask, SourceTaskContext, Value,
};
use tokio::time::Instant;

use crate::support::pg_server::{PgServer, PASSWORD, SUPERUSER};
use crate::support::{client, TestStatus, WAIT};

/// One logical-decoding server for this binary's CDC tests.
fn server() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        PgServer::start_with(&[
            "wal_level=logical",
            "max_replication_slots=40",
            "max_wal_senders=40",
        ])
    })
}

async fn database(hint: &str) -> (tokio_postgres::Client, String) {
    let name = tokio::task::spawn_blocking({
        let hint = hint.to_string();
        move || server().create_database(&hint)
    })
    .await
    .unwrap();
    (client(&server().url(&name)).await, name)
}

fn props(db: &str, extra: &[(&str, &str)]) -> Props {
    props_for(server(), db, extra)
}

/// The connector's options for database `db` of `server` (TLS off unless `extra` says
/// otherwise); `extra` adds or replaces options.
pub(crate) fn props_for(server: &PgServer, db: &str, extra: &[(&str, &str)]) -> Props {
    let port = server.port().to_string();
    let mut p: Props = [
        ("connector.class", "postgres-cdc-source"),
        ("database.hostname", "127.0.0.1"),
        ("database.port", port.as_str()),
        ("database.user", SUPERUSER),
        ("database.password", PASSWORD),
        ("database.dbname", db),
        ("database.sslmode", "disable"),
        ("topic.prefix", "shop"),
        ("slot.name", &format!("slot_{db}")),
        ("publication.name", &format!("pub_{db}")),
        ("poll.interval.ms", "100"),
        ("status.update.interval.ms", "100"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect();
    for (k, v) in extra {
        p.insert((*k).to_string(), (*v).to_string());
    }
    p
}

pub(crate) async fn start_task(config: &Props, offsets: OffsetSnapshot) -> Box<dyn SourceTask> {
    let mut task: Box<dyn SourceTask> = Box::new(PostgresCdcTask::default());
    task.start(SourceTaskContext::new(
        "cdc",
        0,
        config.clone(),
        Arc::new(offsets),
        Arc::new(TestStatus::default()),
    ))
    .await
    .unwrap_or_else(|e| panic!("task start failed: {e}"));
    task
}

/// Polls, telling the task after each batch that everything so far is committed, until
/// `done(all records)`.
pub(crate) async fn poll_committing(
    task: &mut dyn SourceTask,
    records: &mut Vec<SourceRecord>,
    what: &str,
    done: impl Fn(&[SourceRecord]) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    while !done(records) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {} records so far",
            records.len()
        );
        let batch = task
            .poll()
            .await
            .unwrap_or_else(|e| panic!("poll failed waiting for {what}: {e}"));
        if let Some(last) = batch.last() {
            task.offsets_committed(&[(last.source_partition.clone(), last.source_offset.clone())])
                .await;
        }
        records.extend(batch);
    }
}

/// The event's op; empty for a tombstone.
pub(crate) fn op(record: &SourceRecord) -> &str {
    record
        .value
        .as_struct()
        .and_then(|v| v.get("op"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn side<'a>(record: &'a SourceRecord, name: &str) -> Option<&'a sluice_sdk::Struct> {
    record
        .value
        .as_struct()
        .and_then(|v| v.get(name))
        .and_then(Value::as_struct)
}

fn int(row: &sluice_sdk::Struct, name: &str) -> i64 {
    row.get(name)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("no integer {name} in {row:?}"))
}

fn is_row(record: &SourceRecord, table: &str) -> bool {
    record.topic == format!("shop.public.{table}") && !record.value.is_null()
}

async fn confirmed_flush(client: &tokio_postgres::Client, slot: &str) -> u64 {
    let text: String = client
        .query_one(
            "SELECT COALESCE(confirmed_flush_lsn::text, '0/0') FROM pg_replication_slots \
             WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    let (hi, lo) = text.split_once('/').unwrap();
    (u64::from_str_radix(hi, 16).unwrap() << 32) | u64::from_str_radix(lo, 16).unwrap()
}

/// Applies change events to a replica of the table (id -> v), checking that each event is
/// possible given the events before it: a `c` for a new id, a `u` that moves `v` up by one
/// (each update adds one), a `d` for a present id. A change seen twice, or missed, breaks this.
fn replay(records: &[SourceRecord], table: &str) -> BTreeMap<i64, i64> {
    let mut rows = BTreeMap::new();
    for r in records.iter().filter(|r| is_row(r, table)) {
        match op(r) {
            "r" => {
                let after = side(r, "after").unwrap();
                assert!(
                    rows.insert(int(after, "id"), int(after, "v")).is_none(),
                    "snapshot row {} read twice",
                    int(after, "id")
                );
            }
            "c" => {
                let after = side(r, "after").unwrap();
                let id = int(after, "id");
                assert!(
                    rows.insert(id, int(after, "v")).is_none(),
                    "insert of row {id}, which the replica already has (a doubled change)"
                );
            }
            "u" => {
                let after = side(r, "after").unwrap();
                let id = int(after, "id");
                let v = int(after, "v");
                let before = rows.insert(id, v);
                assert_eq!(
                    before,
                    Some(v - 1),
                    "update of row {id} to v={v} does not follow the replica's state"
                );
            }
            "d" => {
                let id = int(side(r, "before").unwrap(), "id");
                assert!(rows.remove(&id).is_some(), "delete of absent row {id}");
            }
            other => panic!("unexpected op {other}"),
        }
    }
    rows
}

async fn table_rows(client: &tokio_postgres::Client, table: &str) -> BTreeMap<i64, i64> {
    client
        .query(&format!("SELECT id::int8, v::int8 FROM {table}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Inserts, updates (v + 1) and deletes in small transactions until stopped.
fn writer(url: String, stop: Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let c = client(&url).await;
        let mut n: u64 = 0;
        let mut next_id: i64 = 1_000_000;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            n += 1;
            let id = (n as i64 * 7919) % 100_000 + 1;
            c.batch_execute(&format!(
                "BEGIN; INSERT INTO items VALUES ({next_id}, 0, 'new'); \
                 UPDATE items SET v = v + 1 WHERE id = {id}; \
                 UPDATE items SET v = v + 1 WHERE id = {next_id}; \
                 DELETE FROM items WHERE id = {}; COMMIT;",
                id + 1
            ))
            .await
            .unwrap();
            next_id += 1;
        }
        n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_during_writes_then_stream_misses_and_doubles_nothing() {
    let (c, db) = database("cdc_snapshot").await;
    c.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL, note text);
         INSERT INTO items SELECT g, 0, 'row ' || g FROM generate_series(1, 100000) g;",
    )
    .await
    .unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writes = writer(server().url(&db), stop.clone());
    let config = props(&db, &[("snapshot.fetch.size", "5000")]);
    let started = std::time::Instant::now();
    let mut task = start_task(&config, OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    poll_committing(task.as_mut(), &mut records, "the snapshot", |r| {
        r.iter().any(|r| {
            r.source_offset.get("last_snapshot_record") == Some(&serde_json::Value::Bool(true))
        })
    })
    .await;
    let snapshot_time = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let transactions = writes.await.unwrap();
    c.batch_execute("INSERT INTO items VALUES (-1, 0, 'sentinel')")
        .await
        .unwrap();
    poll_committing(task.as_mut(), &mut records, "the sentinel", |r| {
        r.iter()
            .any(|r| is_row(r, "items") && side(r, "after").is_some_and(|a| int(a, "id") == -1))
    })
    .await;
    let snapshot_rows = records.iter().filter(|r| op(r) == "r").count();
    let streamed = records
        .iter()
        .filter(|r| is_row(r, "items") && op(r) != "r")
        .count();
    assert!(snapshot_rows >= 100_000, "{snapshot_rows} snapshot rows");
    assert!(transactions > 0, "the writer ran during the snapshot");
    assert_eq!(replay(&records, "items"), table_rows(&c, "items").await);
    // Snapshot marks as Debezium's: first, ..., last.
    let marks: Vec<&str> = records
        .iter()
        .filter(|r| op(r) == "r")
        .map(|r| {
            side(r, "source")
                .and_then(|s| s.get("snapshot"))
                .and_then(Value::as_str)
                .unwrap()
        })
        .collect();
    assert_eq!(marks.first(), Some(&"first"));
    assert_eq!(marks.last(), Some(&"last"));
    eprintln!(
        "snapshot of {snapshot_rows} rows in {snapshot_time:?} while {transactions} write \
         transactions ran; {streamed} streamed changes"
    );
    task.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_task_continues_after_its_committed_offset_and_the_slot_moves() {
    let (c, db) = database("cdc_resume").await;
    c.batch_execute("CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)")
        .await
        .unwrap();
    let config = props(&db, &[("tombstones.on.delete", "true")]);
    let slot = config["slot.name"].clone();
    let mut task = start_task(&config, OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    // The snapshot of an empty table has no record; streaming starts with the first poll.
    assert!(task.poll().await.unwrap().is_empty());
    let before = confirmed_flush(&c, &slot).await;
    for i in 1..=50 {
        c.batch_execute(&format!("INSERT INTO items VALUES ({i}, 0)"))
            .await
            .unwrap();
    }
    c.batch_execute("UPDATE items SET v = v + 1 WHERE id <= 10; DELETE FROM items WHERE id = 50")
        .await
        .unwrap();
    poll_committing(task.as_mut(), &mut records, "the first changes", |r| {
        r.iter().any(|r| op(r) == "d")
    })
    .await;
    // The delete is followed by a tombstone with the same key.
    let delete_at = records.iter().position(|r| op(r) == "d").unwrap();
    let tombstone = records
        .get(delete_at + 1)
        .expect("a tombstone after the delete");
    assert!(tombstone.value.is_null() && tombstone.value_schema.is_none());
    assert_eq!(tombstone.key, records[delete_at].key);
    // The slot's flush position moves once the offsets are committed.
    let deadline = Instant::now() + WAIT;
    while confirmed_flush(&c, &slot).await <= before {
        assert!(
            Instant::now() < deadline,
            "confirmed_flush_lsn did not move"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Half of a transaction's records committed, then a crash: the rest comes again, the
    // committed part does not.
    c.batch_execute("BEGIN; UPDATE items SET v = v + 1 WHERE id BETWEEN 11 AND 20; COMMIT")
        .await
        .unwrap();
    let mut batch = Vec::new();
    let deadline = Instant::now() + WAIT;
    while batch.len() < 10 {
        assert!(
            Instant::now() < deadline,
            "the last transaction did not arrive"
        );
        batch.extend(task.poll().await.unwrap());
    }
    let committed = batch[4].clone();
    task.offsets_committed(&[(
        committed.source_partition.clone(),
        committed.source_offset.clone(),
    )])
    .await;
    drop(task); // no stop: as a crash
    records.extend(batch.drain(..5));
    let offsets = OffsetSnapshot::new([(
        committed.source_partition.clone(),
        committed.source_offset.clone(),
    )]);
    let mut task = start_task(&config, offsets).await;
    c.batch_execute("INSERT INTO items VALUES (-1, 0)")
        .await
        .unwrap();
    poll_committing(
        task.as_mut(),
        &mut records,
        "the sentinel after the restart",
        |r| {
            r.iter()
                .any(|r| is_row(r, "items") && side(r, "after").is_some_and(|a| int(a, "id") == -1))
        },
    )
    .await;
    assert_eq!(replay(&records, "items"), table_rows(&c, "items").await);
    task.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_added_or_dropped_mid_stream_changes_the_next_events() {
    let (c, db) = database("cdc_columns").await;
    c.batch_execute("CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)")
        .await
        .unwrap();
    let config = props(&db, &[("snapshot.mode", "no_data")]);
    let mut task = start_task(&config, OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    c.batch_execute("INSERT INTO items VALUES (1, 0)")
        .await
        .unwrap();
    poll_committing(task.as_mut(), &mut records, "the first row", |r| {
        !r.is_empty()
    })
    .await;
    c.batch_execute(
        "ALTER TABLE items ADD COLUMN note text DEFAULT 'x' NOT NULL;
         INSERT INTO items VALUES (2, 0, 'hello');
         ALTER TABLE items DROP COLUMN v;
         INSERT INTO items VALUES (3, 'bye');",
    )
    .await
    .unwrap();
    poll_committing(task.as_mut(), &mut records, "rows 2 and 3", |r| {
        r.len() >= 3
    })
    .await;
    let fields = |r: &SourceRecord| -> Vec<String> {
        let schema = r.value_schema.as_ref().unwrap();
        schema
            .field("after")
            .unwrap()
            .schema
            .fields()
            .iter()
            .map(|f| f.name.clone())
            .collect()
    };
    assert_eq!(fields(&records[0]), ["id", "v"]);
    assert_eq!(fields(&records[1]), ["id", "v", "note"]);
    assert_eq!(
        side(&records[1], "after").unwrap().get("note"),
        Some(&Value::from("hello"))
    );
    assert_eq!(fields(&records[2]), ["id", "note"]);
    let note = records[1]
        .value_schema
        .as_ref()
        .unwrap()
        .field("after")
        .unwrap()
        .schema
        .field("note")
        .unwrap()
        .schema
        .clone();
    assert!(!note.optional, "NOT NULL columns are required fields");
    task.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_map_as_debezium_maps_them_in_snapshot_and_stream_alike() {
    let (c, db) = database("cdc_types").await;
    c.batch_execute(
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
         CREATE TABLE kinds (
           id bigint PRIMARY KEY, i2 smallint, i4 int, f4 real, f8 double precision,
           b boolean, t text, vc varchar(10), n numeric(10,2), nv numeric,
           d date, tm time, ts timestamp, ts3 timestamp(3), tz timestamptz, j json, jb jsonb,
           u uuid, by bytea, arr int[], tags text[], m mood, iv interval, money_col money);
         INSERT INTO kinds VALUES (1, -2, 40000, 1.5, 2.25, true, 'text', 'vc', 12.5, 3.14159,
           '2024-02-29', '13:14:15.123456', '2024-02-29 13:14:15.123456',
           '2024-02-29 13:14:15.123', '2024-02-29 13:14:15.5+02', '{\"a\": 1}', '{\"b\": [2]}',
           'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x0102ff', '{1,2,NULL}',
           '{\"x y\",z}', 'happy', '1 day 02:00:00', 12.34);",
    )
    .await
    .unwrap();
    let config = props(&db, &[]);
    let mut task = start_task(&config, OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    poll_committing(task.as_mut(), &mut records, "the snapshot row", |r| {
        !r.is_empty()
    })
    .await;
    c.batch_execute("INSERT INTO kinds SELECT 2, i2, i4, f4, f8, b, t, vc, n, nv, d, tm, ts, ts3, tz, j, jb, u, by, arr, tags, m, iv, money_col FROM kinds WHERE id = 1")
        .await
        .unwrap();
    poll_committing(task.as_mut(), &mut records, "the streamed row", |r| {
        r.len() >= 2
    })
    .await;
    let snap = side(&records[0], "after").unwrap().clone();
    let stream = side(&records[1], "after").unwrap().clone();
    assert_eq!(op(&records[0]), "r");
    assert_eq!(op(&records[1]), "c");
    for (name, value) in snap.fields() {
        if name != "id" {
            assert_eq!(
                Some(value),
                stream.get(name),
                "column {name}: snapshot and stream differ"
            );
        }
    }
    let get = |n: &str| stream.get(n).cloned().unwrap();
    assert_eq!(get("i2"), Value::Int16(-2));
    assert_eq!(get("i4"), Value::Int32(40000));
    assert_eq!(get("f4"), Value::Float32(1.5));
    assert_eq!(get("b"), Value::Boolean(true));
    assert_eq!(
        get("n"),
        sluice_sdk::Decimal::parse("12.50").unwrap().into_value()
    );
    assert_eq!(get("d"), Value::Int32(19782));
    assert_eq!(get("tm"), Value::Int64(47_655_123_456));
    assert_eq!(get("ts"), Value::Int64(1_709_212_455_123_456));
    assert_eq!(get("ts3"), Value::Int64(1_709_212_455_123));
    assert_eq!(get("tz"), Value::from("2024-02-29T11:14:15.5Z"));
    assert_eq!(get("jb"), Value::from("{\"b\": [2]}"));
    assert_eq!(
        get("u"),
        Value::from("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
    );
    assert_eq!(get("by"), Value::Bytes(vec![1, 2, 255]));
    assert_eq!(
        get("arr"),
        Value::Array(vec![Value::Int32(1), Value::Int32(2), Value::Null])
    );
    assert_eq!(get("tags"), Value::Array(vec!["x y".into(), "z".into()]));
    assert_eq!(get("m"), Value::from("happy"));
    assert_eq!(get("iv"), Value::Int64(93_600_000_000));
    let schema = records[1].value_schema.as_ref().unwrap();
    let after = &schema.field("after").unwrap().schema;
    let name = |n: &str| {
        after
            .field(n)
            .unwrap()
            .schema
            .name
            .clone()
            .unwrap_or_default()
    };
    assert_eq!(name("tz"), "io.debezium.time.ZonedTimestamp");
    assert_eq!(name("jb"), "io.debezium.data.Json");
    assert_eq!(name("u"), "io.debezium.data.Uuid");
    assert_eq!(name("m"), "io.debezium.data.Enum");
    assert_eq!(name("nv"), "io.debezium.data.VariableScaleDecimal");
    assert_eq!(name("ts"), "io.debezium.time.MicroTimestamp");
    assert_eq!(name("ts3"), "io.debezium.time.Timestamp");
    assert_eq!(schema.name.as_deref(), Some("shop.public.kinds.Envelope"));
    assert_eq!(
        records[1].key_schema.as_ref().unwrap().name.as_deref(),
        Some("shop.public.kinds.Key")
    );
    let source = side(&records[1], "source").unwrap();
    assert_eq!(source.get("connector"), Some(&Value::from("postgresql")));
    assert_eq!(source.get("name"), Some(&Value::from("shop")));
    assert_eq!(source.get("db"), Some(&Value::from(db.as_str())));
    assert_eq!(source.get("table"), Some(&Value::from("kinds")));
    assert_eq!(source.get("snapshot"), Some(&Value::from("false")));
    assert!(source.get("txId").and_then(Value::as_i64).is_some());
    assert!(source.get("lsn").and_then(Value::as_i64).is_some());
    task.stop().await.unwrap();
}

pub(crate) async fn validate(config: &Props) -> String {
    PostgresCdcConnector::default()
        .validate(config)
        .await
        .0
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_or_user_that_cannot_do_cdc_is_refused_with_the_fix() {
    // The polling tests' server runs with the default wal_level (replica).
    let plain = PgServer::shared();
    let db = tokio::task::spawn_blocking(|| PgServer::shared().create_database("cdc_wal"))
        .await
        .unwrap();
    let mut config = props(&db, &[]);
    config.insert("database.port".into(), plain.port().to_string());
    let message = validate(&config).await;
    assert!(
        message.contains("wal_level=replica") && message.contains("wal_level = logical"),
        "{message}"
    );

    let (c, db) = database("cdc_privilege").await;
    c.batch_execute("CREATE ROLE plain_user LOGIN PASSWORD 'pw'")
        .await
        .unwrap_or(());
    let mut config = props(&db, &[]);
    config.insert("database.user".into(), "plain_user".into());
    config.insert("database.password".into(), "pw".into());
    let message = validate(&config).await;
    assert!(
        message.contains("ALTER ROLE \"plain_user\" WITH REPLICATION"),
        "{message}"
    );

    // A slot held by another reader.
    let config = props(&db, &[("snapshot.mode", "no_data")]);
    let mut first = start_task(&config, OffsetSnapshot::default()).await;
    let message = validate(&config).await;
    assert!(message.contains("in use by another process"), "{message}");
    assert!(message.contains(&config["slot.name"]), "{message}");
    first.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_missing_a_table_is_refused_with_the_sql() {
    let (c, db) = database("cdc_pub").await;
    c.batch_execute(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);
         CREATE PUBLICATION only_a FOR TABLE a;",
    )
    .await
    .unwrap();
    let config = props(
        &db,
        &[
            ("publication.name", "only_a"),
            ("publication.autocreate.mode", "disabled"),
        ],
    );
    let mut task: Box<dyn SourceTask> = Box::new(PostgresCdcTask::default());
    let error = task
        .start(SourceTaskContext::new(
            "cdc",
            0,
            config,
            Arc::new(OffsetSnapshot::default()),
            Arc::new(TestStatus::default()),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("ALTER PUBLICATION \"only_a\" ADD TABLE \"public\".\"b\""),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_stream_is_reconnected_through() {
    let own = PgServer::start_with(&["wal_level=logical", "max_replication_slots=4"]);
    let db = own.create_database("cdc_restart");
    let url = own.url(&db);
    let c = client(&url).await;
    c.batch_execute("CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)")
        .await
        .unwrap();
    let mut config = props(&db, &[("snapshot.mode", "no_data")]);
    config.insert("database.port".into(), own.port().to_string());
    let mut task = start_task(&config, OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    for i in 1..=100 {
        c.batch_execute(&format!("INSERT INTO items VALUES ({i}, 0)"))
            .await
            .unwrap();
    }
    poll_committing(task.as_mut(), &mut records, "the first rows", |r| {
        r.len() >= 50
    })
    .await;
    drop(c);
    // A fast shutdown waits for the walsender's client to confirm the end of the WAL, so
    // the task keeps polling (as the runtime does) while the server stops and starts again.
    let restart = tokio::task::spawn_blocking(move || {
        own.stop();
        own.start();
        own
    });
    let mut errors = 0;
    while !restart.is_finished() {
        errors += poll_tolerating(task.as_mut(), &mut records).await;
    }
    let _server = restart.await.unwrap();
    let c = client(&url).await;
    for i in 101..=200 {
        c.batch_execute(&format!("INSERT INTO items VALUES ({i}, 0)"))
            .await
            .unwrap();
    }
    // Polls fail while the task reconnects; then every change arrives once.
    let deadline = Instant::now() + WAIT;
    while !records
        .iter()
        .any(|r| is_row(r, "items") && side(r, "after").is_some_and(|a| int(a, "id") == 200))
    {
        assert!(
            Instant::now() < deadline,
            "no row 200 after the restart ({errors} poll errors)"
        );
        errors += poll_tolerating(task.as_mut(), &mut records).await;
    }
    assert_eq!(replay(&records, "items"), table_rows(&c, "items").await);
    task.stop().await.unwrap();
}

/// One poll that commits what it got; a retriable error (the server is away) counts 1.
async fn poll_tolerating(task: &mut dyn SourceTask, records: &mut Vec<SourceRecord>) -> usize {
    match task.poll().await {
        Ok(batch) => {
            if let Some(last) = batch.last() {
                task.offsets_committed(&[(
                    last.source_partition.clone(),
                    last.source_offset.clone(),
                )])
                .await;
            }
            records.extend(batch);
            0
        }
        Err(e) => {
            assert!(e.is_retriable(), "a restart is retriable: {e}");
            tokio::time::sleep(Duration::from_millis(200)).await;
            1
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_dropped_behind_the_connectors_back_fails_naming_it_unless_resnapshot() {
    let (c, db) = database("cdc_dropped").await;
    c.batch_execute("CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL)")
        .await
        .unwrap();
    let config = props(&db, &[("snapshot.mode", "no_data")]);
    let slot = config["slot.name"].clone();
    let mut task = start_task(&config, OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    c.batch_execute("INSERT INTO items VALUES (1, 0)")
        .await
        .unwrap();
    poll_committing(task.as_mut(), &mut records, "the row", |r| !r.is_empty()).await;
    task.stop().await.unwrap();
    let last = records.last().unwrap();
    let offsets =
        || OffsetSnapshot::new([(last.source_partition.clone(), last.source_offset.clone())]);
    // The server's walsender ends a moment after the client closed the stream; until then the
    // slot is active and cannot be dropped.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = c
            .query_one(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .unwrap();
        if !row.get::<_, bool>(0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot {slot} stayed active 30 s after the task stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();

    let mut task: Box<dyn SourceTask> = Box::new(PostgresCdcTask::default());
    let error = task
        .start(SourceTaskContext::new(
            "cdc",
            0,
            props(&db, &[("snapshot.mode", "initial")]),
            Arc::new(offsets()),
            Arc::new(TestStatus::default()),
        ))
        .await
        .unwrap_err();
    assert!(!error.is_retriable());
    let text = error.to_string();
    assert!(
        text.contains(&format!("replication slot '{slot}' does not exist"))
            && text.contains("snapshot.mode=when_needed"),
        "{text}"
    );

    // when_needed takes a new snapshot instead.
    let mut task = start_task(&props(&db, &[("snapshot.mode", "when_needed")]), offsets()).await;
    let mut again = Vec::new();
    poll_committing(task.as_mut(), &mut again, "the new snapshot", |r| {
        r.iter().any(|r| op(r) == "r")
    })
    .await;
    task.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn before_images_follow_the_replica_identity_and_unchanged_toast_is_marked() {
    let (c, db) = database("cdc_identity").await;
    c.batch_execute(
        "CREATE TABLE docs (id int PRIMARY KEY, v int NOT NULL, big text, note text);
         ALTER TABLE docs ALTER COLUMN big SET STORAGE EXTERNAL;",
    )
    .await
    .unwrap();
    let config = props(&db, &[("snapshot.mode", "no_data")]);
    let mut task = start_task(&config, OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    // A value stored out of line (TOAST), then an update that does not touch it.
    c.batch_execute(
        "INSERT INTO docs VALUES (1, 0, repeat('x', 10000), 'a');
         UPDATE docs SET v = 1 WHERE id = 1;
         DELETE FROM docs WHERE id = 1;
         ALTER TABLE docs REPLICA IDENTITY FULL;
         INSERT INTO docs VALUES (2, 0, 'small', 'b');
         UPDATE docs SET v = 1 WHERE id = 2;
         DELETE FROM docs WHERE id = 2;",
    )
    .await
    .unwrap();
    poll_committing(task.as_mut(), &mut records, "six events", |r| {
        r.iter().filter(|r| !op(r).is_empty()).count() >= 6
    })
    .await;
    let events: Vec<&SourceRecord> = records.iter().filter(|r| !op(r).is_empty()).collect();
    let ops: Vec<&str> = events.iter().map(|r| op(r)).collect();
    assert_eq!(ops, ["c", "u", "d", "c", "u", "d"]);
    // Default identity: the update has no before; the unchanged TOASTed value is marked.
    assert!(side(events[1], "before").is_none());
    let after = side(events[1], "after").unwrap();
    assert_eq!(
        after.get("big"),
        Some(&Value::from("__debezium_unavailable_value"))
    );
    assert_eq!(after.get("note"), Some(&Value::from("a")));
    // The delete's before has the key; a required column gets its zero value, a nullable one
    // null.
    let before = side(events[2], "before").unwrap();
    assert_eq!(before.get("id"), Some(&Value::Int32(1)));
    assert_eq!(before.get("v"), Some(&Value::Int32(0)));
    assert_eq!(before.get("note"), Some(&Value::Null));
    // REPLICA IDENTITY FULL: complete before images.
    let before = side(events[4], "before").unwrap();
    assert_eq!(before.get("v"), Some(&Value::Int32(0)));
    assert_eq!(before.get("note"), Some(&Value::from("b")));
    let before = side(events[5], "before").unwrap();
    assert_eq!(before.get("v"), Some(&Value::Int32(1)));
    assert_eq!(before.get("big"), Some(&Value::from("small")));
    task.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_only_snapshots_then_stops_and_releases_the_slot() {
    let (c, db) = database("cdc_initial_only").await;
    c.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, v int NOT NULL);
         INSERT INTO items SELECT g, 0 FROM generate_series(1, 3) g;",
    )
    .await
    .unwrap();
    let config = props(&db, &[("snapshot.mode", "initial_only")]);
    let slot = config["slot.name"].clone();
    let mut task = start_task(&config, OffsetSnapshot::default()).await;
    let mut records = Vec::new();
    poll_committing(task.as_mut(), &mut records, "the snapshot", |r| {
        r.len() >= 3
    })
    .await;
    c.batch_execute("INSERT INTO items VALUES (4, 0)")
        .await
        .unwrap();
    records.extend(task.poll().await.unwrap());
    records.extend(task.poll().await.unwrap());
    assert_eq!(
        records.len(),
        3,
        "no streaming after an initial_only snapshot"
    );
    let slots: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0, "the slot is dropped so it holds no WAL");
    task.stop().await.unwrap();
}
