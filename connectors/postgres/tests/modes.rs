//! Every mode on a 100,000-row table, then inserts and updates while the task runs.

use serde_json::json;
use sluice_sdk::{Decimal, OffsetSnapshot, SourceRecord, Value};

use crate::support::{fresh_database, int, poll_until, props, start_single, text, PgServer, WAIT};

const ROWS: i64 = 100_000;
/// 2024-01-01T00:00:00Z in milliseconds.
const BASE_MS: i64 = 1_704_067_200_000;

async fn create_items(client: &tokio_postgres::Client) {
    client
        .batch_execute(&format!(
            "CREATE TABLE items (
                 id bigserial PRIMARY KEY,
                 name text NOT NULL,
                 qty integer NOT NULL,
                 price numeric(10,2) NOT NULL,
                 updated_at timestamptz NOT NULL
             );
             INSERT INTO items (id, name, qty, price, updated_at)
             SELECT g, 'item-' || g, g % 100, (g % 1000) / 100.0 + 1,
                    '2024-01-01 00:00:00+00'::timestamptz + (g / 10) * interval '1 millisecond'
             FROM generate_series(1, {ROWS}) g;
             SELECT setval('items_id_seq', {ROWS});"
        ))
        .await
        .expect("create items");
}

/// Checks an original (not yet updated) row's values and types.
fn check_original(r: &SourceRecord) {
    let id = int(r, "id");
    assert_eq!(text(r, "name"), format!("item-{id}"));
    let s = r.value.as_struct().unwrap();
    assert_eq!(s.get("qty"), Some(&Value::Int32((id % 100) as i32)));
    let price = Decimal::parse(&format!("{}", (id % 1000) as f64 / 100.0 + 1.0))
        .unwrap()
        .rescale(2);
    assert_eq!(s.get("price"), Some(&price.into_value()), "price of {id}");
    assert_eq!(s.get("updated_at"), Some(&Value::Int64(BASE_MS + id / 10)));
    assert_eq!(r.key, Value::Int64(id));
    assert_eq!(r.topic, "pg-items");
}

fn check_schemas(r: &SourceRecord) {
    let schema = r.value_schema.as_ref().unwrap();
    assert_eq!(schema.name.as_deref(), Some("items"));
    let ty = |n: &str| {
        let f = schema.field(n).unwrap();
        (f.schema.ty.name(), f.schema.name.clone(), f.schema.optional)
    };
    assert_eq!(ty("id"), ("int64", None, false));
    assert_eq!(ty("name"), ("string", None, false));
    assert_eq!(ty("qty"), ("int32", None, false));
    assert_eq!(
        ty("price"),
        (
            "bytes",
            Some("org.apache.kafka.connect.data.Decimal".into()),
            false
        )
    );
    assert_eq!(
        ty("updated_at"),
        (
            "int64",
            Some("org.apache.kafka.connect.data.Timestamp".into()),
            false
        )
    );
    assert_eq!(r.key_schema.as_ref().unwrap().ty.name(), "int64");
    assert_eq!(
        serde_json::Value::Object(r.source_partition.clone()),
        json!({"protocol": "1", "table": format!("{}.public.items", database_of(r))})
    );
}

fn database_of(r: &SourceRecord) -> String {
    let t = r.source_partition["table"].as_str().unwrap();
    t.split('.').next().unwrap().to_string()
}

async fn insert_and_update(client: &tokio_postgres::Client) {
    client
        .batch_execute(
            "INSERT INTO items (name, qty, price, updated_at)
             SELECT 'new-' || g, 7, 9.99, clock_timestamp() FROM generate_series(1, 10) g;
             UPDATE items SET qty = qty + 1000, updated_at = clock_timestamp() WHERE id BETWEEN 5 AND 9;",
        )
        .await
        .expect("insert and update");
}

fn config(url: &str, mode: &str) -> sluice_sdk::config::Props {
    props(&[
        ("connection.url", url),
        ("mode", mode),
        ("topic.prefix", "pg-"),
        ("table.whitelist", "items"),
        ("incrementing.column.name", "id"),
        ("timestamp.column.name", "updated_at"),
        ("poll.interval.ms", "200"),
        ("batch.max.rows", "1000"),
    ])
}

async fn snapshot_then_changes(mode: &str) {
    let (client, _url, db) = fresh_database(&format!("mode_{mode}")).await;
    create_items(&client).await;
    let url = PgServer::shared().jdbc_url(&db);
    let mut running = start_single(&config(&url, mode), OffsetSnapshot::default()).await;
    let task = running.task.as_mut();
    let mut records = Vec::new();
    poll_until(task, &mut records, WAIT, "the first 100,000 rows", |r| {
        r.len() >= ROWS as usize
    })
    .await;
    assert_eq!(
        records.len(),
        ROWS as usize,
        "exactly one snapshot of the table"
    );
    check_schemas(&records[0]);
    for r in &records {
        check_original(r);
    }
    let ids: Vec<i64> = records.iter().map(|r| int(r, "id")).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, (1..=ROWS).collect::<Vec<_>>(), "every row once");
    if mode != "bulk" {
        assert_eq!(ids, sorted, "rows arrive in order");
    }
    let last = serde_json::Value::Object(records.last().unwrap().source_offset.clone());
    let end_ms = BASE_MS + ROWS / 10;
    let expected_offset = match mode {
        "bulk" => json!({}),
        "incrementing" => json!({"incrementing": ROWS}),
        "timestamp" => json!({"timestamp": end_ms, "timestamp_nanos": 0}),
        _ => json!({"timestamp": end_ms, "timestamp_nanos": 0, "incrementing": ROWS}),
    };
    assert_eq!(last, expected_offset);

    insert_and_update(&client).await;
    let mut more = Vec::new();
    match mode {
        "incrementing" => {
            poll_until(task, &mut more, WAIT, "10 new rows", |r| r.len() >= 10).await;
            let ids: Vec<i64> = more.iter().map(|r| int(r, "id")).collect();
            assert_eq!(ids, (ROWS + 1..=ROWS + 10).collect::<Vec<_>>());
            assert!(more.iter().all(|r| text(r, "name").starts_with("new-")));
        }
        "bulk" => {
            poll_until(task, &mut more, WAIT, "a snapshot with the changes", |r| {
                r.iter().any(|r| int(r, "id") == ROWS + 10)
                    && r.iter().any(|r| int(r, "id") == 9 && int(r, "qty") >= 1000)
            })
            .await;
            assert!(more.iter().all(|r| r.source_offset.is_empty()));
        }
        _ => {
            poll_until(task, &mut more, WAIT, "10 new and 5 updated rows", |r| {
                r.len() >= 15
            })
            .await;
            assert_eq!(more.len(), 15, "only the changed rows: {more:?}");
            let mut ids: Vec<i64> = more.iter().map(|r| int(r, "id")).collect();
            let updated: Vec<i64> = more
                .iter()
                .filter(|r| int(r, "qty") >= 1000)
                .map(|r| int(r, "id"))
                .collect();
            assert_eq!(updated.len(), 5);
            ids.sort_unstable();
            let mut expected: Vec<i64> = (5..=9).chain(ROWS + 1..=ROWS + 10).collect();
            expected.sort_unstable();
            assert_eq!(ids, expected);
            // Offsets carry the full microsecond timestamp (ms + nanos of the second).
            let position = |r: &SourceRecord| {
                let o = &r.source_offset;
                let ms = o["timestamp"].as_i64().unwrap();
                let nanos = o["timestamp_nanos"].as_i64().unwrap();
                (ms.div_euclid(1000) * 1_000_000_000 + nanos, int(r, "id"))
            };
            let times: Vec<i64> = more.iter().map(|r| int(r, "updated_at")).collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "ordered by ts");
            if mode == "timestamp+incrementing" {
                let keys: Vec<(i64, i64)> = more.iter().map(position).collect();
                assert!(
                    keys.windows(2).all(|w| w[0] < w[1]),
                    "ordered by (ts, id): {keys:?}"
                );
            }
        }
    }
    running.task.stop().await.unwrap();
}

#[tokio::test]
async fn bulk_mode() {
    snapshot_then_changes("bulk").await;
}

#[tokio::test]
async fn incrementing_mode() {
    snapshot_then_changes("incrementing").await;
}

#[tokio::test]
async fn timestamp_mode() {
    snapshot_then_changes("timestamp").await;
}

#[tokio::test]
async fn timestamp_incrementing_mode() {
    snapshot_then_changes("timestamp+incrementing").await;
}

#[tokio::test]
async fn query_mode_appends_the_where_clause() {
    let (client, url, _db) = fresh_database("mode_query").await;
    create_items(&client).await;
    let config = props(&[
        ("connection.url", &url),
        ("mode", "timestamp+incrementing"),
        (
            "query",
            "SELECT id, name, qty, updated_at FROM items WHERE qty < 50",
        ),
        ("topic.prefix", "pg-query"),
        ("incrementing.column.name", "id"),
        ("timestamp.column.name", "updated_at"),
        ("poll.interval.ms", "200"),
        ("batch.max.rows", "5000"),
    ]);
    let mut running = start_single(&config, OffsetSnapshot::default()).await;
    let task = running.task.as_mut();
    let mut records = Vec::new();
    poll_until(task, &mut records, WAIT, "the query's rows", |r| {
        r.len() >= (ROWS / 2) as usize
    })
    .await;
    assert_eq!(records.len(), (ROWS / 2) as usize);
    assert!(records.iter().all(|r| int(r, "qty") < 50));
    let r = &records[0];
    assert_eq!(r.topic, "pg-query");
    assert_eq!(r.key, Value::Null);
    assert_eq!(
        serde_json::Value::Object(r.source_partition.clone()),
        json!({"query": "query"})
    );
    let fields: Vec<&str> = r
        .value_schema
        .as_ref()
        .unwrap()
        .fields()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(fields, ["id", "name", "qty", "updated_at"]);

    insert_and_update(&client).await;
    let mut more = Vec::new();
    poll_until(task, &mut more, WAIT, "new rows matching the query", |r| {
        r.len() >= 10
    })
    .await;
    let ids: Vec<i64> = more.iter().map(|r| int(r, "id")).collect();
    assert_eq!(
        ids,
        (ROWS + 1..=ROWS + 10).collect::<Vec<_>>(),
        "updated rows have qty >= 1000 and are filtered out"
    );
    running.task.stop().await.unwrap();
}
