//! Error handling: dead letter queues with Kafka Connect's context headers, and failing tasks.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::json;

use crate::support::{read_lines, read_topic, wait_for, WorkerOptions, WorkerProcess};

fn header<'a>(headers: &'a [(String, Option<Vec<u8>>)], key: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_deref())
        .and_then(|v| std::str::from_utf8(v).ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn sink_dead_letters_bad_records_and_commits_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", worker.bootstrap())
        .create()
        .unwrap();
    let values = [
        r#"{"n":1}"#,
        "not json {",
        r#"{"n":2}"#,
        "[1,2",
        r#"{"n":3}"#,
    ];
    for (i, v) in values.iter().enumerate() {
        let headers = OwnedHeaders::new().insert(Header {
            key: "origin",
            value: Some(format!("record-{i}").as_bytes()),
        });
        producer
            .send(
                FutureRecord::to("raw")
                    .key("k")
                    .payload(*v)
                    .headers(headers),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }

    let output = dir.path().join("good.txt");
    worker.write_config(
        "tolerant.json",
        &json!({"name": "tolerant", "config": {
            "connector.class": "file-sink", "topics": "raw", "file": output,
            "value.converter": "json", "value.converter.schemas.enable": "false",
            "key.converter": "string",
            "errors.tolerance": "all", "errors.log.enable": "true", "errors.log.include.messages": "true",
            "errors.deadletterqueue.topic.name": "raw-dlq",
            "errors.deadletterqueue.context.headers.enable": "true"}}),
    );
    let good = wait_for(
        Duration::from_secs(60),
        "the good records in the file",
        || async {
            let lines = read_lines(&output);
            (lines.len() >= 3).then_some(lines)
        },
    )
    .await;
    assert_eq!(good, [r#"{"n":1}"#, r#"{"n":2}"#, r#"{"n":3}"#]);

    let bootstrap = worker.bootstrap();
    let dead = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "raw-dlq", 2, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(
        dead[0].value.as_deref(),
        Some(&b"not json {"[..]),
        "the original bytes"
    );
    assert_eq!(dead[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(dead[1].value.as_deref(), Some(&b"[1,2"[..]));
    let h = &dead[0].headers;
    assert_eq!(
        header(h, "origin"),
        Some("record-1"),
        "original headers kept"
    );
    assert_eq!(header(h, "__connect.errors.topic"), Some("raw"));
    assert_eq!(header(h, "__connect.errors.partition"), Some("0"));
    assert_eq!(header(h, "__connect.errors.offset"), Some("1"));
    assert_eq!(
        header(h, "__connect.errors.connector.name"),
        Some("tolerant")
    );
    assert_eq!(header(h, "__connect.errors.task.id"), Some("0"));
    assert_eq!(header(h, "__connect.errors.stage"), Some("VALUE_CONVERTER"));
    assert_eq!(
        header(h, "__connect.errors.class.name"),
        Some("org.apache.kafka.connect.json.JsonConverter")
    );
    assert_eq!(
        header(h, "__connect.errors.exception.class.name"),
        Some("org.apache.kafka.connect.errors.DataException")
    );
    assert!(header(h, "__connect.errors.exception.message")
        .unwrap()
        .contains("serialization error"));
    assert!(header(h, "__connect.errors.exception.stacktrace").is_some());
    assert_eq!(
        header(&dead[1].headers, "__connect.errors.offset"),
        Some("3")
    );

    // The group's committed offset moves past the dead-lettered records.
    wait_for(
        Duration::from_secs(30),
        "the committed offset to pass every record",
        || async {
            let offsets = worker.get("/connectors/tolerant/offsets").await;
            (offsets["offsets"][0]["offset"]["kafka_offset"] == 5).then_some(())
        },
    )
    .await;
    assert!(
        worker.log().contains("error processing record"),
        "errors.log.enable logs the failure"
    );
    let metrics = reqwest::get(worker.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "sluice_task_dlq_records_total{connector=\"tolerant\",task=\"0\",type=\"sink\"} 2"
        ),
        "{metrics}"
    );

    // Without tolerance, the first bad record fails the task with a trace in the status.
    worker.write_config(
        "strict.json",
        &json!({"name": "strict", "config": {
            "connector.class": "file-sink", "topics": "raw", "file": dir.path().join("strict.txt"),
            "key.converter": "string",
            "value.converter": "json", "value.converter.schemas.enable": "false"}}),
    );
    let failed = worker.wait_for_task_state("strict", 0, "FAILED").await;
    let trace = failed["trace"].as_str().unwrap();
    assert!(
        trace.contains("Tolerance exceeded") && trace.contains("VALUE_CONVERTER"),
        "{trace}"
    );
    // Conversion runs per batch before put (as in Kafka Connect), so nothing after the bad
    // record was written.
    assert!(read_lines(&dir.path().join("strict.txt")).len() <= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn source_conversion_failures_go_to_the_dead_letter_topic_too() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "alpha\nbeta\n").unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    // The byte array converter cannot write the file source's string values.
    worker.write_config(
        "wrong-converter.json",
        &json!({"name": "wrong-converter", "config": {
            "connector.class": "file-source", "file": input, "topic": "never",
            "value.converter": "org.apache.kafka.connect.converters.ByteArrayConverter",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": "source-dlq",
            "errors.deadletterqueue.context.headers.enable": "true"}}),
    );
    let bootstrap = worker.bootstrap();
    let dead = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "source-dlq", 2, Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0].value.as_deref(), Some(&b"\"alpha\""[..]));
    assert_eq!(
        header(&dead[0].headers, "__connect.errors.stage"),
        Some("VALUE_CONVERTER")
    );
    assert_eq!(
        header(&dead[0].headers, "__connect.errors.topic"),
        Some("never")
    );
    // The source moves on: its offset passes the dead-lettered lines.
    wait_for(
        Duration::from_secs(30),
        "the source offset to pass both lines",
        || async {
            let offsets = worker.get("/connectors/wrong-converter/offsets").await;
            (offsets["offsets"][0]["offset"]["position"] == 11).then_some(())
        },
    )
    .await;
    assert_eq!(
        worker.task_state("wrong-converter", 0).await.unwrap().0,
        "RUNNING"
    );
}
