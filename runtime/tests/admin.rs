//! The worker's operational endpoints: `GET /health` (KIP-1017) and `/admin/loggers` (KIP-495).

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{wait_for, WorkerOptions, WorkerProcess};

#[tokio::test(flavor = "multi_thread")]
async fn health_turns_healthy_once_startup_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    let (status, body) = wait_for(Duration::from_secs(30), "a healthy answer", || async {
        let response = reqwest::get(worker.url("/health")).await.ok()?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.ok()?;
        if status == 503 {
            // Only "starting" is acceptable before the worker is ready.
            assert_eq!(body["status"], "starting", "{body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
            return None;
        }
        Some((status, body))
    })
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "healthy",
               "message": "Worker has completed startup and is ready to handle requests."})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_loggers_change_levels_while_the_worker_runs() {
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    // The harness starts workers with SLUICE_LOG=info,librdkafka=warn.
    let (status, all) = worker.request(Method::GET, "/admin/loggers", None).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["root"], json!({"level": "INFO", "last_modified": null}));
    assert_eq!(all["librdkafka"]["level"], "WARN");

    const TARGET: &str = "sluice_runtime::configs_dir";
    let (_, before) = worker
        .request(Method::GET, &format!("/admin/loggers/{TARGET}"), None)
        .await;
    assert_eq!(
        before,
        json!({"level": "INFO", "last_modified": null}),
        "inherited from root"
    );
    assert!(
        !worker.log().contains("config folder scanned"),
        "a debug line before any change"
    );

    let (status, changed) = worker
        .request(
            Method::PUT,
            &format!("/admin/loggers/{TARGET}"),
            Some(&json!({"level": "debug"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed, json!([TARGET]));
    let (_, after) = worker
        .request(Method::GET, &format!("/admin/loggers/{TARGET}"), None)
        .await;
    assert_eq!(after["level"], "DEBUG");
    assert!(after["last_modified"].as_i64().unwrap() > 1_600_000_000_000);

    // The new level takes effect: the folder scan logs at debug.
    worker.write_config("broken.json", &json!({"name": "broken"}));
    wait_for(
        Duration::from_secs(30),
        "a debug line from the config folder",
        || async { worker.log().contains("config folder scanned").then_some(()) },
    )
    .await;

    let (status, body) = worker
        .request(
            Method::PUT,
            "/admin/loggers/root",
            Some(&json!({"level": "LOUD"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("invalid log level 'LOUD'"));
    let (status, body) = worker
        .request(Method::PUT, "/admin/loggers/root", Some(&json!({})))
        .await;
    assert_eq!(status, 400, "{body}");
    let (_, all) = worker.request(Method::GET, "/admin/loggers", None).await;
    assert_eq!(
        all["root"]["level"], "INFO",
        "a refused change leaves the levels alone"
    );
}
