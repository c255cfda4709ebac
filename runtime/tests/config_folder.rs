//! The watched configs folder: read again only after a change to it, and a broken file
//! logged once per change of the file, not once per read.

use std::time::Duration;

use serde_json::json;

use crate::support::{wait_for, WorkerOptions, WorkerProcess};

/// The debug line the folder watch writes each time it reads the folder.
const SCANNED: &str = "config folder scanned";
/// How long a broken file is left alone (the observation: 88 lines in 13 s).
const LEFT_ALONE: Duration = Duration::from_secs(10);

fn source_config(name: &str, file: &str, topic: &str) -> serde_json::Value {
    json!({
        "name": name,
        "config": {
            "connector.class": "file-source",
            "file": file,
            "topic": topic,
            "value.converter": "string"
        }
    })
}

fn count(log: &str, matches: impl Fn(&str) -> bool) -> usize {
    log.lines().filter(|l| matches(l)).count()
}

fn garbage_errors(log: &str) -> usize {
    count(log, |l| {
        l.contains("garbage.json") && l.contains("not valid JSON")
    })
}

fn scans(log: &str) -> usize {
    count(log, |l| l.contains(SCANNED))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_is_logged_once_and_an_idle_folder_is_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    std::fs::write(&input, "one\n").unwrap();
    let input = input.to_str().unwrap().to_owned();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path()).env(
        "SLUICE_LOG",
        "info,sluice_runtime::configs_dir=debug,librdkafka=warn",
    ))
    .await;
    worker.write_config("good.json", &source_config("good", &input, "good-lines"));
    worker.wait_for_task_state("good", 0, "RUNNING").await;

    // A broken file, written in one step (temporary file, then rename) as tools do.
    let configs = dir.path().join("configs");
    std::fs::write(configs.join("garbage.tmp"), "{ not json").unwrap();
    std::fs::rename(configs.join("garbage.tmp"), configs.join("garbage.json")).unwrap();
    wait_for(
        Duration::from_secs(30),
        "the error line for garbage.json",
        || async { (garbage_errors(&worker.log()) > 0).then_some(()) },
    )
    .await;
    let log = worker.log();
    let scanned = scans(&log);
    assert!(scanned >= 2, "the start and the changes were read:\n{log}");

    // Left alone, with a connector running: no second error line and no further read of the
    // folder. Checked throughout, so a repeat fails the test as soon as it appears.
    let until = tokio::time::Instant::now() + LEFT_ALONE;
    while tokio::time::Instant::now() < until {
        let log = worker.log();
        assert_eq!(
            garbage_errors(&log),
            1,
            "the broken file is logged once:\n{log}"
        );
        assert_eq!(
            scans(&log),
            scanned,
            "an idle folder is not read again:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Fixed: the connector it now defines is created, and the old error is not repeated.
    worker.write_config(
        "garbage.json",
        &source_config("fixed", &input, "fixed-lines"),
    );
    worker.wait_for_task_state("fixed", 0, "RUNNING").await;
    let log = worker.log();
    assert_eq!(garbage_errors(&log), 1, "{log}");
    assert!(
        scans(&log) > scanned,
        "the edit was read (and the check above can see reads):\n{log}"
    );
    assert_eq!(worker.task_state("good", 0).await.unwrap().0, "RUNNING");
}
