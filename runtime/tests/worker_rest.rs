//! The Kafka Connect REST API, every endpoint, over HTTP against a running worker.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{wait_for, WorkerOptions, WorkerProcess};

async fn wait_connector_state(worker: &WorkerProcess, name: &str, state: &str) {
    wait_for(
        Duration::from_secs(30),
        &format!("{name} to be {state}"),
        || async {
            let (code, body) = worker
                .request(Method::GET, &format!("/connectors/{name}/status"), None)
                .await;
            (code == 200 && body["connector"]["state"] == state).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_behaves_like_kafka_connect() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one\ntwo\nthree\n").unwrap();
    let mut worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;

    let root = worker.get("/").await;
    assert!(root["version"].is_string());

    let plugins = worker.get("/connector-plugins").await;
    let classes: Vec<&str> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["class"].as_str().unwrap())
        .collect();
    assert!(
        classes.contains(&"file-source") && classes.contains(&"file-sink"),
        "{plugins}"
    );
    let defs = worker
        .get("/connector-plugins/org.apache.kafka.connect.file.FileStreamSourceConnector/config")
        .await;
    let names: Vec<&str> = defs
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    for option in [
        "file",
        "topic",
        "batch.size",
        "tasks.max",
        "errors.tolerance",
    ] {
        assert!(names.contains(&option), "{option} in {names:?}");
    }

    // Validation reports each bad option.
    let (code, validation) = worker
        .request(
            Method::PUT,
            "/connector-plugins/file-source/config/validate",
            Some(&json!({"connector.class": "file-source", "topic": "t", "batch.size": "0", "tasks.max": "x"})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(validation["error_count"], 3, "{validation}");
    let errors_of = |name: &str| -> Vec<String> {
        validation["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["value"]["name"] == name)
            .map(|c| {
                c["value"]["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e.as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(errors_of("file")[0].contains("required"));
    assert!(errors_of("batch.size")[0].contains("at least 1"));
    assert!(errors_of("tasks.max")[0].contains("whole number"));

    // Create: bad config is a 400 naming the option; good config is a 201; again is a 409.
    let config = json!({"connector.class": "file-source", "file": input.to_str().unwrap(), "topic": "rest-lines", "value.converter": "string"});
    let (code, body) = worker
        .request(Method::POST, "/connectors", Some(&json!({"name": "bad", "config": {"connector.class": "file-source", "topic": "t", "fil": "x"}})))
        .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error_code"], 400);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("connector 'bad'")
            && message.contains("option 'fil' is not a known option")
            && message.contains("option 'file' is required"),
        "{message}"
    );
    let (code, body) = worker
        .request(
            Method::POST,
            "/connectors",
            Some(&json!({"name": "rest", "config": config})),
        )
        .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["name"], "rest");
    assert_eq!(body["type"], "source");
    let (code, _) = worker
        .request(
            Method::POST,
            "/connectors",
            Some(&json!({"name": "rest", "config": config})),
        )
        .await;
    assert_eq!(code, 409);

    worker.wait_for_task_state("rest", 0, "RUNNING").await;
    assert_eq!(worker.get("/connectors").await, json!(["rest"]));
    let expanded = worker.get("/connectors?expand=status&expand=info").await;
    assert_eq!(expanded["rest"]["status"]["connector"]["state"], "RUNNING");
    assert_eq!(expanded["rest"]["info"]["config"]["topic"], "rest-lines");
    assert_eq!(
        worker.get("/connectors/rest").await["tasks"],
        json!([{"connector": "rest", "task": 0}])
    );
    assert_eq!(
        worker.get("/connectors/rest/config").await["file"],
        input.to_str().unwrap()
    );
    let tasks = worker.get("/connectors/rest/tasks").await;
    assert_eq!(tasks[0]["id"], json!({"connector": "rest", "task": 0}));
    assert_eq!(
        worker.get("/connectors/rest/tasks/0/status").await["state"],
        "RUNNING"
    );
    let (code, body) = worker
        .request(Method::GET, "/connectors/rest/tasks/7/status", None)
        .await;
    assert_eq!((code, body["error_code"].clone()), (404, json!(404)));

    // Update (PUT) and partial update (PATCH).
    let mut updated = config.clone();
    updated["batch.size"] = json!("10");
    let (code, _) = worker
        .request(Method::PUT, "/connectors/rest/config", Some(&updated))
        .await;
    assert_eq!(code, 200);
    let (code, body) = worker
        .request(
            Method::PATCH,
            "/connectors/rest/config",
            Some(&json!({"batch.size": "20"})),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        worker.get("/connectors/rest/config").await["batch.size"],
        "20"
    );

    // Pause and resume.
    let (code, _) = worker
        .request(Method::PUT, "/connectors/rest/pause", None)
        .await;
    assert_eq!(code, 202);
    wait_connector_state(&worker, "rest", "PAUSED").await;
    worker.wait_for_task_state("rest", 0, "PAUSED").await;
    let (code, _) = worker
        .request(Method::PUT, "/connectors/rest/resume", None)
        .await;
    assert_eq!(code, 202);
    worker.wait_for_task_state("rest", 0, "RUNNING").await;

    // Restarts.
    let (code, _) = worker
        .request(Method::POST, "/connectors/rest/restart", None)
        .await;
    assert_eq!(code, 204);
    let (code, body) = worker
        .request(
            Method::POST,
            "/connectors/rest/restart?includeTasks=true&onlyFailed=false",
            None,
        )
        .await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["name"], "rest");
    let (code, _) = worker
        .request(Method::POST, "/connectors/rest/tasks/0/restart", None)
        .await;
    assert_eq!(code, 204);
    worker.wait_for_task_state("rest", 0, "RUNNING").await;

    // Offsets: readable any time, changeable only when STOPPED.
    let offsets = wait_for(Duration::from_secs(30), "committed offsets", || async {
        let body = worker.get("/connectors/rest/offsets").await;
        (body["offsets"].as_array()?.len() == 1).then_some(body)
    })
    .await;
    assert_eq!(offsets["offsets"][0]["offset"]["position"], 14);
    let patch = json!({"offsets": [{"partition": {"filename": input.to_str().unwrap()}, "offset": {"position": 4}}]});
    let (code, body) = worker
        .request(Method::PATCH, "/connectors/rest/offsets", Some(&patch))
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains("STOPPED"));
    let (code, _) = worker
        .request(Method::PUT, "/connectors/rest/stop", None)
        .await;
    assert_eq!(code, 204);
    wait_connector_state(&worker, "rest", "STOPPED").await;
    let (code, body) = worker
        .request(Method::PATCH, "/connectors/rest/offsets", Some(&patch))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        worker.get("/connectors/rest/offsets").await["offsets"][0]["offset"]["position"],
        4
    );
    let (code, _) = worker
        .request(Method::DELETE, "/connectors/rest/offsets", None)
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        worker.get("/connectors/rest/offsets").await["offsets"],
        json!([])
    );
    let (code, _) = worker
        .request(Method::PUT, "/connectors/rest/resume", None)
        .await;
    assert_eq!(code, 202);
    worker.wait_for_task_state("rest", 0, "RUNNING").await;

    let topics = worker.get("/connectors/rest/topics").await;
    assert_eq!(topics["rest"]["topics"], json!(["rest-lines"]));
    let (code, _) = worker
        .request(Method::PUT, "/connectors/rest/topics/reset", None)
        .await;
    assert_eq!(code, 204);

    let metrics = reqwest::get(worker.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            "sluice_task_records_in_total{connector=\"rest\",task=\"0\",type=\"source\"}"
        ),
        "{metrics}"
    );

    // A connector created through REST survives a restart, with its target state.
    let (code, _) = worker
        .request(Method::PUT, "/connectors/rest/pause", None)
        .await;
    assert_eq!(code, 202);
    wait_connector_state(&worker, "rest", "PAUSED").await;
    worker.stop().await.expect("the worker exits on SIGTERM");
    worker.restart().await;
    wait_connector_state(&worker, "rest", "PAUSED").await;
    assert_eq!(
        worker.get("/connectors/rest/config").await["batch.size"],
        "20"
    );

    // File-managed connectors cannot be changed or deleted through REST.
    worker.write_config(
        "from-file.json",
        &json!({"name": "from-file", "config": config}),
    );
    worker.wait_for_task_state("from-file", 0, "RUNNING").await;
    let (code, body) = worker
        .request(Method::PUT, "/connectors/from-file/config", Some(&config))
        .await;
    assert_eq!(code, 409, "{body}");
    assert!(body["message"].as_str().unwrap().contains("from-file.json"));
    let (code, _) = worker
        .request(Method::DELETE, "/connectors/from-file", None)
        .await;
    assert_eq!(code, 409);

    // Delete.
    let (code, _) = worker
        .request(Method::DELETE, "/connectors/rest", None)
        .await;
    assert_eq!(code, 204);
    let (code, body) = worker.request(Method::GET, "/connectors/rest", None).await;
    assert_eq!((code, body["error_code"].clone()), (404, json!(404)));
    assert_eq!(body["message"], Value::from("Connector rest not found"));
}

/// The status topic is read by other tools (and compacted): the last record of each key must be
/// the state the connector is in. Generations are the worker group's (Kafka Connect's): they
/// never fall in the order one worker wrote a key's records.
#[tokio::test(flavor = "multi_thread")]
async fn the_status_topic_ends_with_each_current_state() {
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    let names: Vec<String> = (0..10).map(|i| format!("status-{i}")).collect();
    for name in &names {
        let input = dir.path().join(format!("{name}.txt"));
        std::fs::write(&input, "one\n").unwrap();
        worker.write_config(
            &format!("{name}.json"),
            &json!({"name": name, "config": {
                "connector.class": "file-source", "topic": name, "file": input}}),
        );
    }
    for name in &names {
        worker.wait_for_task_state(name, 0, "RUNNING").await;
    }
    // Pause and resume one, so its last records are PAUSED then RUNNING.
    let (code, _) = worker
        .request(Method::PUT, "/connectors/status-0/pause", None)
        .await;
    assert_eq!(code, 202);
    worker.wait_for_task_state("status-0", 0, "PAUSED").await;
    let (code, _) = worker
        .request(Method::PUT, "/connectors/status-0/resume", None)
        .await;
    assert_eq!(code, 202);
    worker.wait_for_task_state("status-0", 0, "RUNNING").await;

    let records = crate::support::read_topic(
        &worker.bootstrap(),
        "connect-status",
        usize::MAX,
        Duration::from_secs(5),
    );
    let mut last: std::collections::BTreeMap<(i32, String), (i64, Value)> = Default::default();
    let mut topics = std::collections::BTreeSet::new();
    for r in &records {
        let key = String::from_utf8(r.key.clone().unwrap()).unwrap();
        let value: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        // KIP-558's active topics share the status topic; they carry no generation.
        if key.starts_with("status-topic-") {
            assert_eq!(
                value["topic"]["connector"],
                key.rsplit_once(":connector-").unwrap().1
            );
            topics.insert(key);
            continue;
        }
        let generation = value["generation"].as_i64().unwrap();
        if let Some((previous, _)) = last.get(&(r.partition, key.clone())) {
            assert!(
                generation >= *previous,
                "{key}: generation {generation} written after {previous}"
            );
        }
        last.insert((r.partition, key), (generation, value));
    }
    let state_of = |key: &str| -> String {
        let found: Vec<&(i64, Value)> = last
            .iter()
            .filter(|((_, k), _)| k == key)
            .map(|(_, v)| v)
            .collect();
        assert_eq!(found.len(), 1, "{key} in one partition: {found:?}");
        found[0].1["state"].as_str().unwrap().to_string()
    };
    for name in &names {
        assert_eq!(state_of(&format!("status-connector-{name}")), "RUNNING");
        assert_eq!(state_of(&format!("status-task-{name}-0")), "RUNNING");
        // Each source's topic is recorded once as an active topic, as Kafka Connect keys it.
        assert!(
            topics.contains(&format!("status-topic-{name}:connector-{name}")),
            "{name}'s active topic in {topics:?}"
        );
    }
}
