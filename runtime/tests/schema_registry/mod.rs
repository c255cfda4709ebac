//! The Schema Registry and the Avro converter, with real processes and independent clients:
//! `sluice registry` processes on a `sluice broker` (restarts, two registries on one cluster,
//! Confluent's answers and compatibility levels), and Confluent's own Python clients
//! (SchemaRegistryClient, AvroSerializer, AvroDeserializer) against a worker's bundled
//! registry, with PostgreSQL rows going out as Avro and Python records coming in.

pub(crate) mod python;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{
    free_port, produce, read_topic, sluice_bin, wait_for, BrokerProcess, WorkerOptions,
    WorkerProcess,
};

/// A `sluice registry` process.
struct RegistryProcess {
    url: String,
    child: Child,
}

impl RegistryProcess {
    fn start(bootstrap: &str, log: &std::path::Path) -> Self {
        Self::start_on(bootstrap, &format!("127.0.0.1:{}", free_port()), log)
    }

    fn start_on(bootstrap: &str, listen: &str, log: &std::path::Path) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("registry log");
        let mut child = Command::new(sluice_bin())
            .args([
                "registry",
                "--bootstrap-server",
                bootstrap,
                "--listen",
                listen,
            ])
            .env("SLUICE_LOG", "info,librdkafka=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn sluice registry");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("sluice registry reports its address");
        let url = line
            .strip_prefix("sluice schema registry listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_string();
        Self { url, child }
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a request; returns the status and the JSON body.
async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, &url)
        .header("Content-Type", "application/vnd.schemaregistry.v1+json");
    if let Some(b) = body {
        request = request.body(b.to_string());
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn register(base: &str, subject: &str, schema: &str) -> (u16, Value) {
    call(
        reqwest::Method::POST,
        format!("{base}/subjects/{subject}/versions"),
        Some(json!({"schema": schema})),
    )
    .await
}

fn record(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"R","namespace":"t","fields":[{fields}]}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_keeps_ids_across_restarts_agrees_across_instances_and_answers_like_confluent() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::start(dir.path()).await;
    let log = dir.path().join("registry.log");
    let a = RegistryProcess::start(&broker.addr, &log);
    let b = RegistryProcess::start(&broker.addr, &log);
    let get = |url: String| call(reqwest::Method::GET, url, None);

    let v1 = record(r#"{"name":"a","type":"int"}"#);
    let (status, answer) = register(&a.url, "orders-value", &v1).await;
    assert_eq!(status, 200, "{answer}");
    let id1 = answer["id"].as_i64().expect("an id");
    // Idempotent, and the other registry on the cluster gives the same id to the same schema
    // (written differently), under another subject too.
    assert_eq!(register(&a.url, "orders-value", &v1).await.1["id"], id1);
    let spaced = v1.replace(',', " , ");
    assert_eq!(register(&b.url, "orders-value", &spaced).await.1["id"], id1);
    assert_eq!(register(&b.url, "copy-value", &v1).await.1["id"], id1);
    let (_, versions) = get(format!("{}/subjects/orders-value/versions", b.url)).await;
    assert_eq!(versions, json!([1]));
    let (_, by_id) = get(format!("{}/schemas/ids/{id1}", a.url)).await;
    assert_eq!(
        serde_json::from_str::<Value>(by_id["schema"].as_str().unwrap()).unwrap(),
        serde_json::from_str::<Value>(&v1).unwrap()
    );
    let (_, subjects) = get(format!("{}/schemas/ids/{id1}/subjects", a.url)).await;
    assert_eq!(subjects, json!(["copy-value", "orders-value"]));
    let (_, types) = get(format!("{}/schemas/types", a.url)).await;
    assert!(
        types.as_array().unwrap().contains(&json!("AVRO")),
        "{types}"
    );

    // Compatibility: each level accepts and refuses the changes Confluent documents.
    let add_optional =
        record(r#"{"name":"a","type":"int"},{"name":"b","type":["null","string"],"default":null}"#);
    let add_required = record(r#"{"name":"a","type":"int"},{"name":"b","type":"string"}"#);
    let delete_field = record("");
    let change_type = record(r#"{"name":"a","type":"string"}"#);
    let expectations = [
        ("BACKWARD", [true, false, true, false]),
        ("FORWARD", [true, true, false, false]),
        ("FULL", [true, false, false, false]),
        ("NONE", [true, true, true, true]),
    ];
    for (level, expected) in expectations {
        for (change, (schema, ok)) in [&add_optional, &add_required, &delete_field, &change_type]
            .into_iter()
            .zip(expected)
            .enumerate()
        {
            let subject = format!("level-{level}-{change}");
            assert_eq!(register(&a.url, &subject, &v1).await.0, 200);
            let (status, answer) = call(
                reqwest::Method::PUT,
                format!("{}/config/{subject}", a.url),
                Some(json!({"compatibility": level})),
            )
            .await;
            assert_eq!((status, &answer), (200, &json!({"compatibility": level})));
            let (_, check) = call(
                reqwest::Method::POST,
                format!(
                    "{}/compatibility/subjects/{subject}/versions/latest?verbose=true",
                    b.url
                ),
                Some(json!({"schema": schema})),
            )
            .await;
            assert_eq!(
                check["is_compatible"], ok,
                "{level} change {change}: {check}"
            );
            let (status, answer) = register(&b.url, &subject, schema).await;
            if ok {
                assert_eq!(status, 200, "{level} change {change}: {answer}");
            } else {
                assert_eq!(
                    (status, &answer["error_code"]),
                    (409, &json!(409)),
                    "{level} change {change}: {answer}"
                );
            }
        }
    }
    // Transitive levels check every version, not only the latest.
    let v3 = record(r#"{"name":"a","type":"string","default":"x"}"#);
    for (level, ok) in [("BACKWARD", true), ("BACKWARD_TRANSITIVE", false)] {
        let subject = format!("transitive-{level}");
        call(
            reqwest::Method::PUT,
            format!("{}/config/{subject}", a.url),
            Some(json!({"compatibility": level})),
        )
        .await;
        assert_eq!(register(&a.url, &subject, &v1).await.0, 200);
        assert_eq!(register(&a.url, &subject, &delete_field).await.0, 200);
        assert_eq!(
            register(&a.url, &subject, &v3).await.0 == 200,
            ok,
            "{level}"
        );
    }

    // A schema referring to another (Avro named types across subjects).
    let (status, with_ref) = call(
        reqwest::Method::POST,
        format!("{}/subjects/holder-value/versions", a.url),
        Some(json!({
            "schema": r#"{"type":"record","name":"Holder","fields":[{"name":"r","type":"t.R"}]}"#,
            "references": [{"name": "t.R", "subject": "orders-value", "version": 1}]
        })),
    )
    .await;
    assert_eq!(status, 200, "{with_ref}");
    let (_, referrers) = get(format!(
        "{}/subjects/orders-value/versions/1/referencedby",
        b.url
    ))
    .await;
    assert_eq!(referrers, json!([with_ref["id"]]));

    // Confluent's answers for bad input: never a 500.
    for (method, path, body, status, code) in [
        (
            "GET",
            "/subjects/nope/versions".to_string(),
            None,
            404,
            40401,
        ),
        (
            "GET",
            "/subjects/orders-value/versions/9".to_string(),
            None,
            404,
            40402,
        ),
        (
            "GET",
            "/subjects/orders-value/versions/zero".to_string(),
            None,
            422,
            42202,
        ),
        ("GET", "/schemas/ids/99999".to_string(), None, 404, 40403),
        (
            "POST",
            "/subjects/orders-value/versions".to_string(),
            Some(json!({"schema": "{\"type\":\"nope\"}"})),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/orders-value/versions".to_string(),
            Some(json!({"schema": "not json"})),
            422,
            42201,
        ),
        (
            "POST",
            "/subjects/orders-value".to_string(),
            Some(json!({"schema": add_required})),
            404,
            40403,
        ),
        (
            "PUT",
            "/config".to_string(),
            Some(json!({"compatibility": "SIDEWAYS"})),
            422,
            42203,
        ),
        (
            "PUT",
            "/mode".to_string(),
            Some(json!({"mode": "SOMETIMES"})),
            422,
            42204,
        ),
        ("GET", "/config/orders-value".to_string(), None, 404, 40408),
    ] {
        let method: reqwest::Method = method.parse().unwrap();
        let (got, answer) = call(method, format!("{}{path}", a.url), body).await;
        assert_eq!(
            (got, answer["error_code"].as_i64()),
            (status, Some(code)),
            "{path}: {answer}"
        );
        assert!(answer["message"].is_string(), "{answer}");
    }
    let (status, answer) = call(
        reqwest::Method::POST,
        format!("{}/subjects/orders-value/versions", a.url),
        Some(json!("{")),
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    // Lookup finds the version.
    let (_, found) = call(
        reqwest::Method::POST,
        format!("{}/subjects/orders-value", a.url),
        Some(json!({"schema": v1})),
    )
    .await;
    assert_eq!(
        (found["version"].as_i64(), found["id"].as_i64()),
        (Some(1), Some(id1)),
        "{found}"
    );

    // Soft delete hides, permanent delete removes; the id stays served while another
    // subject uses it.
    let (status, deleted) = call(
        reqwest::Method::DELETE,
        format!("{}/subjects/copy-value", a.url),
        None,
    )
    .await;
    assert_eq!((status, deleted), (200, json!([1])));
    assert_eq!(
        get(format!("{}/subjects/copy-value/versions", b.url))
            .await
            .0,
        404
    );
    let (_, listed) = get(format!(
        "{}/subjects/copy-value/versions?deleted=true",
        b.url
    ))
    .await;
    assert_eq!(listed, json!([1]));
    let (status, answer) = call(
        reqwest::Method::DELETE,
        format!("{}/subjects/orders-value?permanent=true", a.url),
        None,
    )
    .await;
    assert_eq!(
        (status, answer["error_code"].as_i64()),
        (404, Some(40405)),
        "{answer}"
    );
    let (status, _) = call(
        reqwest::Method::DELETE,
        format!("{}/subjects/copy-value?permanent=true", b.url),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (_, subjects) = get(format!("{}/subjects?deleted=true", a.url)).await;
    assert!(
        !subjects.as_array().unwrap().contains(&json!("copy-value")),
        "{subjects}"
    );

    // The topic holds Confluent's record formats.
    let schemas = read_topic(&broker.addr, "_schemas", 1, Duration::from_secs(10));
    let key: Value = serde_json::from_slice(schemas[0].key.as_deref().unwrap()).unwrap();
    assert_eq!(
        key,
        json!({"keytype": "SCHEMA", "subject": "orders-value", "version": 1, "magic": 1})
    );
    let value: Value = serde_json::from_slice(schemas[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(
        (value["id"].as_i64(), &value["deleted"]),
        (Some(id1), &json!(false)),
        "{value}"
    );

    // A broker restart and new registries: every id is kept, and a new schema gets a new one.
    let (_, before) = get(format!("{}/subjects/level-NONE-3/versions/latest", a.url)).await;
    drop(a);
    drop(b);
    broker.restart().await;
    let c = RegistryProcess::start(&broker.addr, &log);
    let (_, after) = get(format!("{}/subjects/level-NONE-3/versions/latest", c.url)).await;
    assert_eq!(after, before);
    assert_eq!(register(&c.url, "orders-value", &v1).await.1["id"], id1);
    let (_, fresh) = register(
        &c.url,
        "fresh-value",
        &record(r#"{"name":"z","type":"long"}"#),
    )
    .await;
    assert!(
        fresh["id"].as_i64().unwrap() > after["id"].as_i64().unwrap(),
        "{fresh} {after}"
    );

    // `sluice broker` serves the same registry beside itself, from the same data.
    drop(c);
    broker.kill();
    let registry_listen = format!("127.0.0.1:{}", free_port());
    let mut bundled = Command::new(sluice_bin())
        .args(["broker", "--listen", &broker.addr, "--data-dir"])
        .arg(dir.path().join("broker-data"))
        .args(["--schema-registry-listen", &registry_listen])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sluice broker");
    let url = format!("http://{registry_listen}/subjects/level-NONE-3/versions/latest");
    let served = wait_for(Duration::from_secs(60), "the broker's registry", || {
        let url = url.clone();
        async move {
            let response = reqwest::get(&url).await.ok()?;
            response.status().is_success().then_some(())?;
            response.json::<Value>().await.ok()
        }
    })
    .await;
    let _ = bundled.kill();
    let _ = bundled.wait();
    assert_eq!(served, after);
}

fn header<'a>(headers: &'a [(String, Option<Vec<u8>>)], key: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_avro_converter_waits_out_a_registry_outage_and_dead_letters_bad_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let registry = format!("http://{listen}");
    let input = dir.path().join("lines.txt");
    std::fs::write(&input, "one\ntwo\n").unwrap();
    // No registry listens yet: the source waits, RUNNING, with the outage as its problem.
    worker.write_config(
        "lines.json",
        &json!({"name": "lines", "config": {
            "connector.class": "file-source", "file": input, "topic": "avro-lines",
            "value.converter": "avro", "value.converter.schema.registry.url": registry
        }}),
    );
    let problem = wait_for(
        Duration::from_secs(60),
        "the outage in the task's status",
        || async {
            let status = worker
                .request(reqwest::Method::GET, "/connectors/lines/status", None)
                .await
                .1;
            let task = &status["tasks"][0];
            (task["state"] == "RUNNING" && task["problem"].is_string())
                .then(|| task["problem"].clone())
        },
    )
    .await;
    assert!(
        problem.as_str().unwrap().contains("unreachable"),
        "{problem}"
    );
    // The registry comes: the records go out in Confluent's wire format and the problem clears.
    let _registry = RegistryProcess::start_on(
        &worker.bootstrap(),
        &listen,
        &dir.path().join("registry.log"),
    );
    let bootstrap = worker.bootstrap();
    let records = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "avro-lines", 2, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(records.len(), 2, "{}", worker.log());
    assert!(records
        .iter()
        .all(|r| r.value.as_deref().is_some_and(|v| v[0] == 0)));
    wait_for(Duration::from_secs(30), "the problem to clear", || async {
        let status = worker
            .request(reqwest::Method::GET, "/connectors/lines/status", None)
            .await
            .1;
        status["tasks"][0]["problem"].is_null().then_some(())
    })
    .await;

    // A sink reading Avro: a record that is not in the wire format is a data error naming
    // topic, partition and offset, dead-lettered when tolerated; the Avro ones are written.
    produce(&worker.bootstrap(), "avro-lines", &[b"plain text".to_vec()]).await;
    let out = dir.path().join("out.txt");
    worker.write_config(
        "sink.json",
        &json!({"name": "sink", "config": {
            "connector.class": "file-sink", "file": out, "topics": "avro-lines",
            "value.converter": "avro", "value.converter.schema.registry.url": registry,
            "errors.tolerance": "all", "errors.deadletterqueue.topic.name": "avro-dlq",
            "errors.deadletterqueue.context.headers.enable": "true"
        }}),
    );
    let bootstrap = worker.bootstrap();
    let dead = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "avro-dlq", 1, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(dead.len(), 1, "{}", worker.log());
    let message =
        header(&dead[0].headers, "__connect.errors.exception.message").unwrap_or_default();
    assert!(
        message.contains("Unknown magic byte")
            && message.contains("topic avro-lines, partition 0, offset 2"),
        "{message}"
    );
    assert_eq!(
        header(&dead[0].headers, "__connect.errors.stage"),
        Some("VALUE_CONVERTER")
    );
    let lines = wait_for(
        Duration::from_secs(30),
        "the Avro records in the file",
        || {
            let out = out.clone();
            async move {
                let lines = crate::support::read_lines(&out);
                (lines.len() >= 2).then_some(lines)
            }
        },
    )
    .await;
    assert_eq!(lines, ["one", "two"]);

    // sluice consume prints Avro records as JSON when told a registry.
    let output = Command::new(sluice_bin())
        .args([
            "consume",
            "--bootstrap-server",
            &worker.bootstrap(),
            "--topic",
            "avro-lines",
        ])
        .args(["--from-beginning", "--max-messages", "3", "--property"])
        .arg(format!("schema.registry.url={registry}"))
        .output()
        .expect("sluice consume");
    let printed = String::from_utf8_lossy(&output.stdout);
    let printed: Vec<&str> = printed.lines().collect();
    assert_eq!(printed.len(), 3, "{printed:?}");
    assert_eq!(printed[..2], ["\"one\"", "\"two\""]);
    assert!(printed[2].contains("Unknown magic byte"), "{printed:?}");
}
