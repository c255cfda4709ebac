//! File connectors through the real worker and embedded broker.

use std::time::Duration;

use serde_json::json;

use crate::support::{read_topic, wait_for, WorkerOptions, WorkerProcess};

fn source_config(name: &str, file: &str, topic: &str) -> serde_json::Value {
    json!({
        "name": name,
        "config": {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "file": file,
            "topic": topic,
            "value.converter": "org.apache.kafka.connect.storage.StringConverter"
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn file_source_streams_lines_in_order_and_follows_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    let lines: Vec<String> = (0..5000)
        .map(|i| format!("line {i} with some text"))
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    worker.write_config(
        "lines.json",
        &source_config("lines", input.to_str().unwrap(), "lines"),
    );
    worker.wait_for_task_state("lines", 0, "RUNNING").await;

    let bootstrap = worker.bootstrap();
    let got = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "lines", 5000, Duration::from_secs(60))
    })
    .await
    .unwrap();
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(values, lines, "every line, in order, exactly as written");

    // The file grows: the new lines follow.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"appended line\n"))
        .unwrap();
    let bootstrap = worker.bootstrap();
    let got = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "lines", 5001, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert_eq!(got.len(), 5001);
    assert_eq!(got[5000].value.as_deref(), Some(&b"appended line"[..]));

    // Offsets are committed in Kafka Connect's format and shown by the REST API.
    let offsets = wait_for(
        Duration::from_secs(30),
        "the offsets to reach the end of the file",
        || async {
            let body = worker.get("/connectors/lines/offsets").await;
            let entry = body["offsets"].as_array()?.first()?.clone();
            let size = std::fs::metadata(&input).ok()?.len();
            (entry["offset"]["position"] == size).then_some(entry)
        },
    )
    .await;
    assert_eq!(
        offsets["partition"],
        json!({"filename": input.to_str().unwrap()})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn config_files_are_hot_reloaded_and_bad_ones_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    std::fs::write(&input, "a\nb\n").unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;

    // Added.
    worker.write_config(
        "hot.json",
        &source_config("hot", input.to_str().unwrap(), "hot-1"),
    );
    worker.wait_for_task_state("hot", 0, "RUNNING").await;

    // Changed: the connector is reconfigured to the new topic.
    worker.write_config(
        "hot.json",
        &source_config("hot", input.to_str().unwrap(), "hot-2"),
    );
    wait_for(
        Duration::from_secs(30),
        "the reconfigured topic",
        || async {
            let config = worker.get("/connectors/hot/config").await;
            (config["topic"] == "hot-2").then_some(())
        },
    )
    .await;
    // It keeps its offsets (same connector name), so only new lines go to the new topic.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"c\n"))
        .unwrap();
    let bootstrap = worker.bootstrap();
    let got = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "hot-2", 1, Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert_eq!(
        got.len(),
        1,
        "the reconfigured connector writes new lines to its new topic"
    );
    assert_eq!(got[0].value.as_deref(), Some(&b"c"[..]));

    // A broken file: one clear log line naming the file, the connector and the option; the
    // other connectors keep running.
    worker.write_config(
        "broken.json",
        &json!({"name": "broken", "config": {"connector.class": "file-source", "topic": "x", "batch.size": "many"}}),
    );
    wait_for(
        Duration::from_secs(30),
        "the error line for broken.json",
        || async {
            let log = worker.log();
            log.lines()
                .find(|l| {
                    l.contains("broken.json")
                        && l.contains("connector 'broken'")
                        && l.contains("option 'batch.size'")
                        && l.contains("option 'file'")
                })
                .map(str::to_string)
        },
    )
    .await;
    std::fs::write(
        dir.path().join("configs").join("garbage.json"),
        "{ not json",
    )
    .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the error line for garbage.json",
        || async {
            worker
                .log()
                .lines()
                .find(|l| l.contains("garbage.json") && l.contains("not valid JSON"))
                .map(str::to_string)
        },
    )
    .await;
    let (status, _) = worker
        .request(reqwest::Method::GET, "/connectors/broken", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(worker.task_state("hot", 0).await.unwrap().0, "RUNNING");

    // Deleted.
    worker.remove_config("hot.json");
    wait_for(
        Duration::from_secs(30),
        "the connector to be removed",
        || async {
            let names = worker.get("/connectors").await;
            (!names.as_array()?.iter().any(|n| n == "hot")).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transforms_apply_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    std::fs::write(&input, "alpha\nbeta\n").unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    worker.write_config(
        "source.json",
        &json!({"name": "smt-source", "config": {
            "connector.class": "file-source", "file": input, "topic": "raw-lines",
            "value.converter": "json", "value.converter.schemas.enable": "false",
            "transforms": "hoist,tag,route",
            "transforms.hoist.type": "org.apache.kafka.connect.transforms.HoistField$Value",
            "transforms.hoist.field": "line",
            "transforms.tag.type": "org.apache.kafka.connect.transforms.InsertField$Value",
            "transforms.tag.static.field": "origin",
            "transforms.tag.static.value": "file",
            "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
            "transforms.route.regex": "raw-(.*)",
            "transforms.route.replacement": "clean-$1"}}),
    );
    let bootstrap = worker.bootstrap();
    let got = tokio::task::spawn_blocking(move || {
        read_topic(&bootstrap, "clean-lines", 2, Duration::from_secs(60))
    })
    .await
    .unwrap();
    let values: Vec<serde_json::Value> = got
        .iter()
        .map(|r| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap())
        .collect();
    assert_eq!(
        values,
        [
            json!({"line": "alpha", "origin": "file"}),
            json!({"line": "beta", "origin": "file"})
        ]
    );

    worker.write_config(
        "sink.json",
        &json!({"name": "smt-sink", "config": {
            "connector.class": "file-sink", "file": output, "topics": "clean-lines",
            "value.converter": "json", "value.converter.schemas.enable": "false",
            "transforms": "extract",
            "transforms.extract.type": "ExtractField$Value",
            "transforms.extract.field": "line"}}),
    );
    let lines = wait_for(Duration::from_secs(60), "the sink's lines", || async {
        let l = crate::support::read_lines(&output);
        (l.len() >= 2).then_some(l)
    })
    .await;
    assert_eq!(lines, ["alpha", "beta"]);
}
