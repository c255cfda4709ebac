//! The worker's operational endpoints: `GET /health` (KIP-1017).

use std::time::Duration;

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
