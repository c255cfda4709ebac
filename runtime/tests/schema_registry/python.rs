//! Confluent's Python clients (confluent-kafka's SchemaRegistryClient, AvroSerializer and
//! AvroDeserializer) against a worker's bundled registry: their records reach a sluice sink,
//! and PostgreSQL rows that sluice wrote as Avro decode in Python with exact Decimals.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::postgres::pg_server::PgServer;
use crate::support::{free_port, read_lines, wait_for, WorkerOptions, WorkerProcess};

/// The Python with confluent-kafka[avro,schemaregistry] that scripts/test installs.
fn python() -> PathBuf {
    let python = std::env::var_os("SLUICE_TEST_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/sluice/venv/bin/python"))
        })
        .filter(|p| p.exists())
        .expect("no Python for the Confluent client tests: run scripts/test (it makes a virtualenv with confluent-kafka[avro,schemaregistry]) or set SLUICE_TEST_PYTHON");
    let ok = Command::new(&python)
        .args([
            "-c",
            "import confluent_kafka.schema_registry.avro, fastavro",
        ])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "{} lacks confluent-kafka[avro,schemaregistry]: pip install 'confluent-kafka[avro,schemaregistry]' (scripts/test does)", python.display());
    python
}

/// Runs `avro_clients.py` with `args`; its standard output.
pub(crate) fn run_python(args: &[&str]) -> String {
    try_python(args).unwrap_or_else(|e| panic!("{e}"))
}

fn try_python(args: &[&str]) -> Result<String, String> {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/schema_registry/avro_clients.py"
    );
    let output = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    if !output.status.success() {
        return Err(format!(
            "avro_clients.py {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_python_clients_and_sluice_read_each_others_avro() {
    let _ = python();
    let pg = PgServer::shared();
    let db = pg.create_database("avro_prices");
    pg.psql(
        &db,
        "CREATE TABLE prices (id bigint PRIMARY KEY, price numeric(14,4) NOT NULL,
                              noted_at timestamptz NOT NULL, comment text, qty smallint);
         INSERT INTO prices VALUES
           (1, 12345678.1234, '2024-05-01 12:00:00.123+00', 'first', 3),
           (2, -0.0001, '1999-12-31 23:59:59.999+00', NULL, NULL),
           (3, 0, '2024-05-01 00:00:00+00', 'third', -7);",
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let registry = format!("http://127.0.0.1:{port}");
    let worker = WorkerProcess::start(
        WorkerOptions::new(dir.path())
            .env("SLUICE_SCHEMA_REGISTRY_LISTEN", format!("127.0.0.1:{port}"))
            .env("SLUICE_OFFSET_FLUSH_INTERVAL_MS", "200"),
    )
    .await;
    let bootstrap = worker.bootstrap();

    // Confluent's registry client against the bundled registry.
    let answer: Value = serde_json::from_str(run_python(&["registry", &registry]).trim()).unwrap();
    assert_eq!(answer["again"], answer["id"], "{answer}");
    assert_eq!(answer["fetched"]["name"], "R", "{answer}");
    assert_eq!(answer["lookup_version"], 1, "{answer}");
    assert_eq!(answer["compatible_add_default"], true, "{answer}");
    assert_eq!(answer["compatible_add_required"], false, "{answer}");
    assert_eq!(answer["level"], "FORWARD", "{answer}");
    assert_eq!(answer["forward_add_required"], true, "{answer}");
    assert_eq!(answer["missing"], json!([404, 40401]), "{answer}");

    // Python's AvroSerializer -> topic -> sluice's Avro converter -> file sink.
    let produced: Value = serde_json::from_str(
        run_python(&["produce", &bootstrap, &registry, "py-orders", "4"]).trim(),
    )
    .unwrap();
    assert!(produced["id"].as_i64().is_some(), "{produced}");
    let out = dir.path().join("orders.txt");
    worker.write_config(
        "orders-sink.json",
        &json!({"name": "orders-sink", "config": {
            "connector.class": "file-sink", "file": out, "topics": "py-orders",
            "value.converter": "io.confluent.connect.avro.AvroConverter",
            "value.converter.schema.registry.url": registry,
            "key.converter": "bytearray"
        }}),
    );
    let lines = wait_for(
        Duration::from_secs(60),
        "the Python records in the file",
        || {
            let out = out.clone();
            async move {
                let lines = read_lines(&out);
                (lines.len() >= 4).then_some(lines)
            }
        },
    )
    .await;
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(first["id"], 0, "{}", lines[0]);
    assert_eq!(first["item"], "item-0");
    assert_eq!(first["note"], "note 0");
    assert_eq!(first["amount"].as_f64(), Some(7.0), "{}", lines[0]);
    let second: Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(
        (&second["note"], second["amount"].as_f64()),
        (&Value::Null, Some(1007.01)),
        "{}",
        lines[1]
    );

    // PostgreSQL -> sluice's Avro converter -> topic -> Python's AvroDeserializer.
    worker.write_config(
        "prices.json",
        &json!({"name": "prices", "config": {
            "connector.class": "postgres-source",
            "connection.url": pg.jdbc_url(&db),
            "mode": "incrementing", "incrementing.column.name": "id",
            "table.whitelist": "prices", "topic.prefix": "pg-", "poll.interval.ms": "200",
            "value.converter": "avro",
            "value.converter.schema.registry.url": registry,
            "key.converter": "avro",
            "key.converter.schema.registry.url": registry
        }}),
    );
    worker.wait_for_task_state("prices", 0, "RUNNING").await;
    let printed = run_python(&["consume", &bootstrap, &registry, "pg-prices", "3"]);
    let rows: Vec<Value> = printed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_id = |id: i64| {
        rows.iter()
            .find(|r| r["id"] == id)
            .unwrap_or_else(|| panic!("row {id} in {printed}"))
    };
    assert_eq!(
        by_id(1)["price"],
        json!({"Decimal": "12345678.1234"}),
        "{printed}"
    );
    assert_eq!(
        by_id(2)["price"],
        json!({"Decimal": "-0.0001"}),
        "{printed}"
    );
    assert_eq!(by_id(3)["price"], json!({"Decimal": "0.0000"}), "{printed}");
    assert_eq!(
        by_id(1)["noted_at"],
        json!({"datetime": "2024-05-01T12:00:00.123000+00:00"}),
        "{printed}"
    );
    assert_eq!(
        (&by_id(2)["comment"], &by_id(2)["qty"]),
        (&Value::Null, &Value::Null),
        "{printed}"
    );
    assert_eq!(
        (&by_id(3)["comment"], &by_id(3)["qty"]),
        (&json!("third"), &json!(-7)),
        "{printed}"
    );
    // The registry holds the rows' schema under Confluent's subject, with AvroData's shape.
    let latest: Value = reqwest::get(format!(
        "{registry}/subjects/pg-prices-value/versions/latest"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let schema: Value = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["name"], "prices", "{schema}");
    let price = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "price")
        .unwrap();
    assert_eq!(price["type"]["logicalType"], "decimal", "{schema}");
    assert_eq!(price["type"]["scale"], 4, "{schema}");
    let qty = schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "qty")
        .unwrap();
    assert_eq!(qty["type"][1]["connect.type"], "int16", "{schema}");
    assert_eq!(qty["default"], Value::Null, "{schema}");

    // Schema evolution: a nullable column added mid-stream registers a compatible second
    // version and the rows keep flowing; old rows still decode with their own schema.
    pg.psql(
        &db,
        "ALTER TABLE prices ADD COLUMN region text;
         INSERT INTO prices VALUES (4, 1.5, '2024-06-01 00:00:00+00', 'fourth', 1, 'eu');",
    );
    let printed = try_python(&["consume", &bootstrap, &registry, "pg-prices", "4"])
        .unwrap_or_else(|e| panic!("{e}\nthe worker's log:\n{}", worker.log()));
    let rows: Vec<Value> = printed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row4 = rows
        .iter()
        .find(|r| r["id"] == 4)
        .unwrap_or_else(|| panic!("row 4 in {printed}"));
    assert_eq!(
        (&row4["region"], &row4["price"]),
        (&json!("eu"), &json!({"Decimal": "1.5000"})),
        "{printed}"
    );
    let row1 = rows.iter().find(|r| r["id"] == 1).unwrap();
    assert!(row1.get("region").is_none(), "{printed}");
    let versions: Value = reqwest::get(format!("{registry}/subjects/pg-prices-value/versions"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions, json!([1, 2]));
    // An incompatible change (a required column without a default: new readers cannot read
    // the old rows) fails the task, naming the subject, the level and the reason.
    pg.psql(
        &db,
        "ALTER TABLE prices ADD COLUMN batch integer NOT NULL DEFAULT 0;
         INSERT INTO prices VALUES (5, 2, '2024-06-02 00:00:00+00', NULL, NULL, NULL, 9);",
    );
    let trace = worker.wait_for_task_state("prices", 0, "FAILED").await;
    let trace = trace
        .as_str()
        .map_or_else(|| trace.to_string(), str::to_string);
    for part in ["pg-prices-value", "BACKWARD", "incompatible", "batch"] {
        assert!(
            trace.contains(part),
            "{part} missing from the failure: {trace}"
        );
    }
}

/// Waits for `count` lines in `path`; a sink that wrote them differently shows in the
/// worker's log.
async fn wait_for_lines(
    worker: &WorkerProcess,
    path: &std::path::Path,
    count: usize,
) -> Vec<String> {
    let path = path.to_path_buf();
    let lines = wait_for(Duration::from_secs(60), "the records in the file", || {
        let path = path.clone();
        async move {
            let lines = read_lines(&path);
            (lines.len() >= count).then_some(lines)
        }
    })
    .await;
    assert_eq!(
        lines.len(),
        count,
        "{lines:#?}\nthe worker's log:\n{}",
        worker.log()
    );
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_records_with_unions_and_schema_references_reach_a_sluice_sink() {
    let _ = python();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let registry = format!("http://127.0.0.1:{port}");
    let worker = WorkerProcess::start(
        WorkerOptions::new(dir.path())
            .env("SLUICE_SCHEMA_REGISTRY_LISTEN", format!("127.0.0.1:{port}"))
            .env("SLUICE_OFFSET_FLUSH_INTERVAL_MS", "200"),
    )
    .await;
    let bootstrap = worker.bootstrap();
    let sink = |name: &str, topic: &str, file: &std::path::Path| {
        worker.write_config(
            &format!("{name}.json"),
            &json!({"name": name, "config": {
                "connector.class": "file-sink", "file": file, "topics": topic,
                "value.converter": "io.confluent.connect.avro.AvroConverter",
                "value.converter.schema.registry.url": registry,
                "key.converter": "bytearray"
            }}),
        );
    };

    // Unions of several types: AvroData's io.confluent.connect.avro.Union structs, one field
    // per member (type names; a record's name without its namespace), exactly one set.
    let produced: Value = serde_json::from_str(
        run_python(&["produce-unions", &bootstrap, &registry, "py-readings"]).trim(),
    )
    .unwrap();
    assert!(produced["id"].as_i64().is_some(), "{produced}");
    let readings = dir.path().join("readings.txt");
    sink("readings-sink", "py-readings", &readings);
    let lines = wait_for_lines(&worker, &readings, 4).await;
    // The file sink writes JSON objects with their keys in sorted order.
    assert_eq!(
        lines,
        [
            r#"{"id":1,"unit":{"long":null,"string":"cm"},"value":{"Point":null,"int":5,"string":null}}"#,
            r#"{"id":2,"unit":{"long":7,"string":null},"value":{"Point":null,"int":null,"string":"five"}}"#,
            r#"{"id":3,"unit":{"long":null,"string":"m"},"value":null}"#,
            r#"{"id":4,"unit":{"long":null,"string":"km"},"value":{"Point":{"x":1.5,"y":-2.0},"int":null,"string":null}}"#,
        ]
    );

    // A schema that names a record of another subject, which names one of a third: the
    // converter fetches both referenced versions from the registry.
    let produced: Value = serde_json::from_str(
        run_python(&["produce-references", &bootstrap, &registry, "py-customers"]).trim(),
    )
    .unwrap();
    assert_eq!(
        produced["references"],
        json!([["shop.Address", "shop.Address", 1]]),
        "{produced}"
    );
    let customers = dir.path().join("customers.txt");
    sink("customers-sink", "py-customers", &customers);
    let lines = wait_for_lines(&worker, &customers, 3).await;
    let oslo = r#"{"city":"Oslo","geo":{"lat":59.9,"lon":10.75}}"#;
    assert_eq!(
        lines,
        [
            format!(r#"{{"billing":null,"home":{oslo},"name":"ann"}}"#),
            format!(
                r#"{{"billing":{{"Address":null,"string":"same as home"}},"home":{oslo},"name":"bob"}}"#
            ),
            format!(
                r#"{{"billing":{{"Address":{{"city":"Bergen","geo":{{"lat":60.4,"lon":5.3}}}},"string":null}},"home":{oslo},"name":"cy"}}"#
            ),
        ]
    );
}
