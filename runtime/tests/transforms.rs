//! Transforms and predicates through the real worker: a Kafka Connect JSON with a chain of
//! transforms and predicates on a sink and on a source, and the REST descriptions of them.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};

use crate::support::{read_lines, read_topic, wait_for, WorkerOptions, WorkerProcess};

const T: &str = "org.apache.kafka.connect.transforms.";
const P: &str = "org.apache.kafka.connect.transforms.predicates.";

/// Sends `(topic, value, header)` records in order; `None` values are tombstones.
async fn send(bootstrap: &str, records: &[(&str, Option<Value>, Option<&str>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for (topic, value, header) in records {
        let payload = value.as_ref().map(|v| v.to_string());
        let mut record = FutureRecord::<str, String>::to(topic).key("k");
        if let Some(p) = &payload {
            record = record.payload(p);
        }
        if let Some(h) = header {
            record = record.headers(OwnedHeaders::new().insert(Header {
                key: h,
                value: Some("1"),
            }));
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(e, _)| e)
            .expect("produce");
    }
}

fn order(id: i64, card: &str, amount: i64, qty: i64, at: i64) -> Option<Value> {
    Some(
        json!({"id": id, "customer": {"name": format!("c{id}"), "card": card},
                "amount": amount, "qty": qty, "at": at}),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sink_json_with_a_chain_and_predicates_runs_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("orders.jsonl");
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    let bootstrap = worker.bootstrap();
    // 2017-05-16T01:23:45.678Z
    let at = 1_494_897_825_678;
    send(
        &bootstrap,
        &[
            ("orders", order(1, "4111-1111", 12, 3, at), None),
            ("orders", None, None),
            ("orders", order(2, "5500-0000", 8, 1, at), Some("skip")),
            ("audit-orders", order(99, "0000", 1, 1, at), None),
            ("orders", order(3, "3400-0000", 7, 1, 0), None),
        ],
    )
    .await;

    // As copied from a Kafka Connect deployment: class names, options and all.
    worker.write_config(
        "orders-sink.json",
        &json!({"name": "orders-sink", "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1",
            "topics": "orders,audit-orders",
            "file": output,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "transforms": "dropTombstones,onlyOrders,dropSkipped,flatten,mask,cast,date",
            "transforms.dropTombstones.type": format!("{T}Filter"),
            "transforms.dropTombstones.predicate": "isTombstone",
            "transforms.onlyOrders.type": format!("{T}Filter"),
            "transforms.onlyOrders.predicate": "isOrders",
            "transforms.onlyOrders.negate": "true",
            "transforms.dropSkipped.type": format!("{T}Filter"),
            "transforms.dropSkipped.predicate": "hasSkip",
            "transforms.flatten.type": format!("{T}Flatten$Value"),
            "transforms.flatten.delimiter": "_",
            "transforms.mask.type": format!("{T}MaskField$Value"),
            "transforms.mask.fields": "customer_card",
            "transforms.mask.replacement": "****",
            "transforms.cast.type": format!("{T}Cast$Value"),
            "transforms.cast.spec": "amount:float64,qty:string",
            "transforms.date.type": format!("{T}TimestampConverter$Value"),
            "transforms.date.field": "at",
            "transforms.date.target.type": "string",
            "transforms.date.format": "yyyy-MM-dd",
            "predicates": "isTombstone,isOrders,hasSkip",
            "predicates.isTombstone.type": format!("{P}RecordIsTombstone"),
            "predicates.isOrders.type": format!("{P}TopicNameMatches"),
            "predicates.isOrders.pattern": "orders",
            "predicates.hasSkip.type": format!("{P}HasHeaderKey"),
            "predicates.hasSkip.name": "skip"
        }}),
    );
    let expected = [
        json!({"id": 1, "customer_name": "c1", "customer_card": "****", "amount": 12.0, "qty": "3", "at": "2017-05-16"}),
        json!({"id": 3, "customer_name": "c3", "customer_card": "****", "amount": 7.0, "qty": "1", "at": "1970-01-01"}),
        json!({"id": 4, "customer_name": "c4", "customer_card": "****", "amount": 1.0, "qty": "2", "at": "2017-05-16"}),
    ];
    let got = |want: usize| {
        let output = output.clone();
        let worker = &worker;
        async move {
            wait_for(
                Duration::from_secs(120),
                &format!("{want} lines in the sink's file"),
                || async {
                    let lines = read_lines(&output);
                    if lines.len() >= want {
                        return Some(lines);
                    }
                    if let Some((state, trace)) = worker.task_state("orders-sink", 0).await {
                        assert_ne!(state, "FAILED", "{trace}");
                    }
                    None
                },
            )
            .await
        }
    };
    got(2).await;
    // A last record behind the dropped ones: once it is written, everything before it in the
    // partition has been through the chain, so nothing else can still arrive.
    send(&bootstrap, &[("orders", order(4, "1", 1, 2, at), None)]).await;
    let lines = got(3).await;
    let values: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(values, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_chain_sets_headers_and_the_rest_api_describes_transforms() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    std::fs::write(&input, "alpha\nbeta\n").unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;

    // Bad input is refused when the connector is validated, naming alias and option.
    let (status, body) = worker
        .request(
            reqwest::Method::PUT,
            "/connectors/bad/config",
            Some(
                &json!({"connector.class": "file-source", "file": input, "topic": "x",
                "transforms": "ts", "transforms.ts.type": format!("{T}TimestampConverter$Value"),
                "transforms.ts.target.type": "string", "transforms.ts.format": "YYYY-MM-dd"}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("option 'transforms.ts.format'") && message.contains("'Y' (week year)"),
        "{message}"
    );

    worker.write_config(
        "lines.json",
        &json!({"name": "lines", "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "file": input, "topic": "lines",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "transforms": "hoist,origin,copy,route",
            "transforms.hoist.type": format!("{T}HoistField$Value"),
            "transforms.hoist.field": "line",
            "transforms.origin.type": format!("{T}InsertHeader"),
            "transforms.origin.header": "origin",
            "transforms.origin.value.literal": "file",
            "transforms.copy.type": format!("{T}HeaderFrom$Value"),
            "transforms.copy.fields": "line",
            "transforms.copy.headers": "text",
            "transforms.copy.operation": "copy",
            "transforms.route.type": format!("{T}RegexRouter"),
            "transforms.route.regex": "lines",
            "transforms.route.replacement": "routed-lines",
            "transforms.route.predicate": "isLines",
            "predicates": "isLines",
            "predicates.isLines.type": format!("{P}TopicNameMatches"),
            "predicates.isLines.pattern": "lin.*"
        }}),
    );
    let records = read_topic(
        &worker.bootstrap(),
        "routed-lines",
        2,
        Duration::from_secs(60),
    );
    assert_eq!(records.len(), 2, "both lines arrive on the routed topic");
    for (r, line) in records.iter().zip(["alpha", "beta"]) {
        let value: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        assert_eq!(value, json!({"line": line}));
        assert_eq!(
            r.headers,
            vec![
                ("origin".to_string(), Some(b"file".to_vec())),
                ("text".to_string(), Some(line.as_bytes().to_vec()))
            ]
        );
    }

    let plugins = worker.get("/connector-plugins?connectorsOnly=false").await;
    let kind_of = |class: &str| {
        plugins
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["class"] == class)
            .map(|p| p["type"].clone())
    };
    assert_eq!(
        kind_of(&format!("{T}Cast$Value")),
        Some(json!("transformation"))
    );
    assert_eq!(
        kind_of(&format!("{P}HasHeaderKey")),
        Some(json!("predicate"))
    );
    let connectors_only = worker.get("/connector-plugins").await;
    assert!(
        connectors_only
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["type"] == "source" || p["type"] == "sink"),
        "{connectors_only}"
    );

    let config = worker
        .get(&format!(
            "/connector-plugins/{T}TimestampConverter%24Value/config"
        ))
        .await;
    let names: Vec<&str> = config
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "target.type",
            "field",
            "format",
            "unix.precision",
            "replace.null.with.default"
        ]
    );
    let target = &config[0];
    assert_eq!(
        (target["type"].as_str(), target["required"].as_bool()),
        (Some("STRING"), Some(true))
    );
    let (status, _) = worker
        .request(
            reqwest::Method::GET,
            "/connector-plugins/com.example.Nope/config",
            None,
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_a_transform_cannot_handle_goes_to_the_dead_letter_queue() {
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.jsonl");
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    let bootstrap = worker.bootstrap();
    send(
        &bootstrap,
        &[
            ("qty", Some(json!({"qty": "3"})), None),
            ("qty", Some(json!({"qty": "three"})), None),
            ("qty", Some(json!({"qty": "4"})), None),
        ],
    )
    .await;
    worker.write_config(
        "qty.json",
        &json!({"name": "qty", "config": {
            "connector.class": "file-sink", "topics": "qty", "file": output,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": "qty-dlq",
            "errors.deadletterqueue.context.headers.enable": "true",
            "transforms": "toInt",
            "transforms.toInt.type": format!("{T}Cast$Value"),
            "transforms.toInt.spec": "qty:int32"
        }}),
    );
    let lines = wait_for(
        Duration::from_secs(120),
        "two lines in the sink's file",
        || async {
            let lines = read_lines(&output);
            (lines.len() >= 2).then_some(lines)
        },
    )
    .await;
    assert_eq!(lines, [r#"{"qty":3}"#, r#"{"qty":4}"#]);
    let dead = read_topic(&bootstrap, "qty-dlq", 1, Duration::from_secs(60));
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].value.as_deref(),
        Some(br#"{"qty":"three"}"#.as_slice())
    );
    let header = |name: &str| {
        dead[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8(v).unwrap())
    };
    assert_eq!(
        header("__connect.errors.stage").as_deref(),
        Some("TRANSFORMATION")
    );
    assert_eq!(
        header("__connect.errors.class.name"),
        Some(format!("{T}Cast$Value"))
    );
    let message = header("__connect.errors.exception.message").unwrap_or_default();
    assert!(
        message.contains("could not parse 'three' as int32"),
        "{message}"
    );
}
