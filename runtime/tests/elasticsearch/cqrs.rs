//! The CQRS example end to end, with the files of `examples/cqrs` as shipped: `orders.sql`
//! run with `psql -f`, and both connector JSONs with only the hosts, ports, database user and
//! password adapted to the servers this test starts (the password still goes through
//! `${env:SHOP_DB_PASSWORD}`). Rows inserted, updated and deleted in PostgreSQL appear,
//! change and disappear in the index, and the README's queries answer as it says.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value as Json;
use sluice_connector_elasticsearch::testing::OsmemServer;

use super::pg_server::{PgServer, PASSWORD, SUPERUSER};
use super::{log_tail, task_status, WAIT};
use crate::support::{read_topic, WorkerOptions, WorkerProcess};

fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/cqrs")
        .join(file)
}

/// An example connector JSON with `changes` applied to its `config`.
fn example_connector(file: &str, changes: &[(&str, String)]) -> Json {
    let path = example(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut connector: Json =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    for (option, value) in changes {
        assert!(
            connector["config"].get(*option).is_some(),
            "the example {file} has no option {option} to adapt"
        );
        connector["config"][*option] = Json::from(value.as_str());
    }
    connector
}

/// Runs a SQL file with psql as the example's README does (`psql -f`).
fn psql_file(server: &PgServer, db: &str, file: &Path) {
    let out = Command::new(server.psql_path())
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(server.socket_dir())
        .args([
            "-p",
            &server.port().to_string(),
            "-U",
            SUPERUSER,
            "-d",
            db,
            "-f",
        ])
        .arg(file)
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql -f {file:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn sql(db: &str, statement: &str) -> String {
    let (db, statement) = (db.to_string(), statement.to_string());
    tokio::task::spawn_blocking(move || PgServer::shared().psql(&db, &statement))
        .await
        .expect("psql")
        .trim()
        .to_string()
}

/// Waits until `check` accepts the document `id` of index `orders` (`None`: no document).
async fn wait_for_order(
    worker: &WorkerProcess,
    server: &OsmemServer,
    id: &str,
    what: &str,
    check: impl Fn(Option<&Json>) -> bool,
) -> Option<Json> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let doc = server.document("orders", id).await;
        if check(doc.as_ref()) {
            return doc;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "{what}: document {id} is {doc:?}\nworker log (end):\n{}",
                log_tail(worker)
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The sorted ids a search answers with (`GET path` with an optional query body, as curl
/// sends it in the README).
async fn search(server: &OsmemServer, path: &str, query: Option<Json>) -> Vec<String> {
    server.refresh("orders").await;
    let (status, body) = server.request(reqwest::Method::GET, path, query).await;
    assert_eq!(status, 200, "{body}");
    let mut ids: Vec<String> = body["hits"]["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .map(|h| h["_id"].as_str().unwrap_or_default().to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cqrs_example_keeps_the_index_in_step_with_the_table() {
    let db = tokio::task::spawn_blocking(|| {
        let server = PgServer::shared();
        let db = server.create_database("cqrs");
        psql_file(server, &db, &example("orders.sql"));
        db
    })
    .await
    .expect("database");
    let pg = PgServer::shared();
    let es = OsmemServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(
        WorkerOptions::new(dir.path())
            .env("SLUICE_OFFSET_FLUSH_INTERVAL_MS", "500")
            .env("SHOP_DB_PASSWORD", PASSWORD),
    )
    .await;
    worker.write_config(
        "orders-from-postgres.json",
        &example_connector(
            "configs/orders-from-postgres.json",
            &[
                (
                    "connection.url",
                    format!("jdbc:postgresql://127.0.0.1:{}/{db}", pg.port()),
                ),
                ("connection.user", SUPERUSER.to_string()),
            ],
        ),
    );
    worker.write_config(
        "orders-to-elasticsearch.json",
        &example_connector(
            "configs/orders-to-elasticsearch.json",
            &[("connection.url", es.url().to_string())],
        ),
    );

    // The three rows of orders.sql become documents 1, 2, 3.
    for id in ["1", "2", "3"] {
        wait_for_order(&worker, &es, id, "the initial rows", |d| d.is_some()).await;
    }
    let grace = es.document("orders", "2").await.expect("document 2");
    assert_eq!(grace["id"], 2, "{grace}");
    assert_eq!(grace["customer"], "grace", "{grace}");
    assert_eq!(grace["status"], "paid", "{grace}");
    assert_eq!(grace["total"].as_f64(), Some(17.0), "{grace}");
    assert!(
        grace["updated_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{grace}"
    );
    assert_eq!(grace["deleted_at"], Json::Null, "{grace}");
    let mapping = es.mapping("orders").await;
    assert_eq!(
        mapping["properties"]["total"]["type"], "double",
        "{mapping}"
    );
    assert_eq!(
        mapping["properties"]["updated_at"]["type"], "date",
        "{mapping}"
    );
    assert_eq!(
        mapping["properties"]["customer"]["type"], "text",
        "{mapping}"
    );

    // An UPDATE changes the document; an INSERT adds one.
    sql(
        &db,
        "UPDATE orders SET status = 'shipped', total = 19.50 WHERE id = 2",
    )
    .await;
    sql(
        &db,
        "INSERT INTO orders (customer, total) VALUES ('margaret', 250.00)",
    )
    .await;
    wait_for_order(&worker, &es, "2", "the update", |d| {
        d.is_some_and(|d| d["status"] == "shipped" && d["total"].as_f64() == Some(19.5))
    })
    .await;
    let margaret = wait_for_order(&worker, &es, "4", "the insert", |d| d.is_some())
        .await
        .expect("document 4");
    assert_eq!(margaret["customer"], "margaret", "{margaret}");
    // The README's searches.
    assert_eq!(
        search(&es, "/orders/_search?q=customer:margaret", None).await,
        ["4"]
    );
    assert_eq!(
        search(
            &es,
            "/orders/_search",
            Some(serde_json::json!({"query": {"range": {"total": {"gte": 50}}}}))
        )
        .await,
        ["3", "4"]
    );

    // A plain DELETE: the trigger keeps the row, marked, and the document disappears.
    sql(&db, "DELETE FROM orders WHERE id = 1").await;
    assert_eq!(
        sql(
            &db,
            "SELECT deleted_at IS NOT NULL FROM orders WHERE id = 1"
        )
        .await,
        "t",
        "the trigger marks the row instead of deleting it"
    );
    assert_eq!(sql(&db, "SELECT count(*) FROM live_orders").await, "3");
    wait_for_order(&worker, &es, "1", "the delete", |d| d.is_none()).await;
    es.refresh("orders").await;
    assert_eq!(es.count("orders").await, 3);
    for id in ["2", "3", "4"] {
        assert!(
            es.document("orders", id).await.is_some(),
            "document {id} stays"
        );
    }

    // On the topic the deletion is a Kafka tombstone: the key, a null value.
    let bootstrap = worker.bootstrap();
    let records = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "pg-orders", 6, Duration::from_secs(30))
    })
    .await
    .unwrap();
    let tombstones: Vec<Json> = records
        .iter()
        .filter(|r| r.value.is_none())
        .map(|r| serde_json::from_slice(r.key.as_deref().expect("a key")).expect("JSON key"))
        .collect();
    assert_eq!(tombstones.len(), 1, "{} records read", records.len());
    assert_eq!(tombstones[0]["payload"], 1, "{}", tombstones[0]);

    // The purge escape hatch of orders.sql removes marked rows for real.
    sql(
        &db,
        "BEGIN; SET LOCAL orders.purge = 'on'; DELETE FROM orders WHERE deleted_at IS NOT NULL; COMMIT;",
    )
    .await;
    assert_eq!(sql(&db, "SELECT count(*) FROM orders").await, "3");

    for connector in ["orders-from-postgres", "orders-to-elasticsearch"] {
        let status = task_status(&worker, connector).await;
        assert_eq!(status["state"], "RUNNING", "{connector}: {status}");
    }
}

/// The Avro variant (`examples/cqrs/configs-avro`) through the worker's bundled Schema
/// Registry: the read model follows the table as with JSON, a column added mid-stream
/// registers a second, compatible version and reaches the documents, and deletions are still
/// tombstones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_avro_variant_of_the_cqrs_example_follows_an_added_column() {
    let db = tokio::task::spawn_blocking(|| {
        let server = PgServer::shared();
        let db = server.create_database("cqrs_avro");
        psql_file(server, &db, &example("orders.sql"));
        db
    })
    .await
    .expect("database");
    let pg = PgServer::shared();
    let es = OsmemServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let port = crate::support::free_port();
    let registry = format!("http://127.0.0.1:{port}");
    let worker = WorkerProcess::start(
        WorkerOptions::new(dir.path())
            .env("SLUICE_OFFSET_FLUSH_INTERVAL_MS", "500")
            .env("SLUICE_SCHEMA_REGISTRY_LISTEN", format!("127.0.0.1:{port}"))
            .env("SHOP_DB_PASSWORD", PASSWORD),
    )
    .await;
    let registry_options = |extra: Vec<(&'static str, String)>| {
        let mut all = vec![
            ("key.converter.schema.registry.url", registry.clone()),
            ("value.converter.schema.registry.url", registry.clone()),
        ];
        all.extend(extra);
        all
    };
    worker.write_config(
        "orders-from-postgres.json",
        &example_connector(
            "configs-avro/orders-from-postgres.json",
            &registry_options(vec![
                (
                    "connection.url",
                    format!("jdbc:postgresql://127.0.0.1:{}/{db}", pg.port()),
                ),
                ("connection.user", SUPERUSER.to_string()),
            ]),
        ),
    );
    worker.write_config(
        "orders-to-elasticsearch.json",
        &example_connector(
            "configs-avro/orders-to-elasticsearch.json",
            &registry_options(vec![("connection.url", es.url().to_string())]),
        ),
    );
    for id in ["1", "2", "3"] {
        wait_for_order(&worker, &es, id, "the initial rows", |d| d.is_some()).await;
    }
    let grace = es.document("orders", "2").await.expect("document 2");
    assert_eq!(
        (&grace["customer"], grace["total"].as_f64()),
        (&Json::from("grace"), Some(17.0)),
        "{grace}"
    );

    // A nullable column added mid-stream: a second schema version, and the documents get it.
    sql(&db, "ALTER TABLE orders ADD COLUMN region text").await;
    sql(
        &db,
        "UPDATE orders SET region = 'eu', status = 'shipped' WHERE id = 2",
    )
    .await;
    wait_for_order(&worker, &es, "2", "the added column", |d| {
        d.is_some_and(|d| d["region"] == "eu" && d["status"] == "shipped")
    })
    .await;
    let versions: Json = reqwest::get(format!("{registry}/subjects/pg-orders-value/versions"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions, serde_json::json!([1, 2]));

    // A DELETE is still a tombstone, and the document goes.
    sql(&db, "DELETE FROM orders WHERE id = 1").await;
    wait_for_order(&worker, &es, "1", "the delete", |d| d.is_none()).await;
    let bootstrap = worker.bootstrap();
    let records = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "pg-orders", 5, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert!(
        records
            .iter()
            .filter_map(|r| r.value.as_deref())
            .all(|v| v.len() > 5 && v[0] == 0),
        "every value is in Confluent's wire format"
    );
    assert_eq!(records.iter().filter(|r| r.value.is_none()).count(), 1);
    for connector in ["orders-from-postgres", "orders-to-elasticsearch"] {
        let status = task_status(&worker, connector).await;
        assert_eq!(status["state"], "RUNNING", "{connector}: {status}");
    }
}
