//! File -> broker -> file pipelines through the real worker: completeness, order, a SIGKILL
//! in mid-stream, graceful shutdown, and two workers sharing one external broker.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::support::{read_lines, wait_for, BrokerProcess, WorkerOptions, WorkerProcess};

const MILLION: usize = 1_000_000;

fn write_input(path: &Path, count: usize) -> Vec<String> {
    let lines: Vec<String> = (0..count)
        .map(|i| format!("{i:07} the quick brown fox jumps over the lazy dog, line {i}"))
        .collect();
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for l in &lines {
        writeln!(f, "{l}").unwrap();
    }
    f.flush().unwrap();
    lines
}

fn pipeline(worker: &WorkerProcess, name: &str, input: &Path, output: &Path) {
    worker.write_config(
        &format!("{name}-source.json"),
        &json!({"name": format!("{name}-source"), "config": {
            "connector.class": "file-source", "file": input, "topic": name,
            "batch.size": "5000", "value.converter": "string"}}),
    );
    worker.write_config(
        &format!("{name}-sink.json"),
        &json!({"name": format!("{name}-sink"), "config": {
            "connector.class": "file-sink", "file": output, "topics": name,
            "value.converter": "string"}}),
    );
}

async fn wait_for_lines(
    worker: &WorkerProcess,
    output: &Path,
    count: usize,
    timeout: Duration,
) -> Vec<String> {
    wait_for(
        timeout,
        &format!("{count} lines in {}", output.display()),
        || async {
            let lines = read_lines(output);
            if lines.len() >= count {
                return Some(lines);
            }
            // Fail at once, with the reason, when a task has failed.
            let statuses = worker.get("/connectors?expand=status").await;
            for (name, s) in statuses.as_object().into_iter().flatten() {
                for t in s["status"]["tasks"].as_array().into_iter().flatten() {
                    assert_ne!(t["state"], "FAILED", "{name}: {t}");
                }
            }
            None
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_million_lines_arrive_in_order_exactly_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    let lines = write_input(&input, MILLION);
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    pipeline(&worker, "million", &input, &output);
    let got = wait_for_lines(&worker, &output, MILLION, Duration::from_secs(300)).await;
    assert_eq!(got.len(), MILLION, "no line twice without a crash");
    assert!(got == lines, "every line, in order, exactly as written");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_stream_loses_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    let lines = write_input(&input, MILLION);
    let mut worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    pipeline(&worker, "crash", &input, &output);

    // Kill the worker (and its embedded broker) without warning part way through.
    wait_for(
        Duration::from_secs(120),
        "the sink to be part way",
        || async {
            let n = read_lines(&output).len();
            (n > 50_000).then_some(n)
        },
    )
    .await;
    worker.kill();
    let at_kill = read_lines(&output).len();
    assert!(
        at_kill < MILLION,
        "the kill happened mid-stream ({at_kill} lines written)"
    );

    worker.restart().await;
    let got = wait_for(
        Duration::from_secs(300),
        "every line after the restart",
        || async {
            let got = read_lines(&output);
            let distinct: HashSet<&String> = got.iter().collect();
            (distinct.len() >= MILLION).then_some(got)
        },
    )
    .await;
    let distinct: HashSet<&String> = got.iter().collect();
    let expected: HashSet<&String> = lines.iter().collect();
    assert_eq!(
        distinct, expected,
        "every line arrives; nothing missing, nothing invented"
    );
    let duplicates = got.len() - distinct.len();
    println!(
        "SIGKILL after {at_kill} lines: {} lines written, {duplicates} duplicates",
        got.len()
    );
    // At-least-once: duplicates are allowed, but only of lines near the kill.
    assert!(duplicates < MILLION / 2, "{duplicates} duplicates");
}

#[tokio::test(flavor = "multi_thread")]
async fn graceful_stop_commits_so_a_restart_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    let lines = write_input(&input, 20_000);
    let mut worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    pipeline(&worker, "graceful", &input, &output);
    wait_for_lines(&worker, &output, lines.len(), Duration::from_secs(120)).await;
    let status = worker.stop().await.expect("stopped");
    assert!(status.success(), "SIGTERM exits cleanly: {status:?}");
    assert!(worker.log().contains("worker stopped"));

    // Restart and add lines: only the new ones are written.
    worker.restart().await;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap();
    writeln!(f, "after restart").unwrap();
    let got = wait_for_lines(&worker, &output, lines.len() + 1, Duration::from_secs(120)).await;
    assert_eq!(
        got.len(),
        lines.len() + 1,
        "nothing repeated after a graceful stop"
    );
    assert_eq!(got.last().map(String::as_str), Some("after restart"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_share_one_external_broker_with_their_own_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(dir.path()).await;
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let options = |d: &Path, group: &str| {
        WorkerOptions::new(d)
            .bootstrap(broker.addr.clone())
            .env("SLUICE_GROUP_ID", group)
            .env("SLUICE_CONFIG_STORAGE_TOPIC", format!("{group}-configs"))
            .env("SLUICE_STATUS_STORAGE_TOPIC", format!("{group}-status"))
    };
    let mut a = WorkerProcess::start(options(&a_dir, "a")).await;
    let b = WorkerProcess::start(options(&b_dir, "b")).await;
    let (a_in, a_out) = (a_dir.join("in.txt"), a_dir.join("out.txt"));
    let (b_in, b_out) = (b_dir.join("in.txt"), b_dir.join("out.txt"));
    let a_lines = write_input(&a_in, 3000);
    let b_lines = write_input(&b_in, 2000);
    pipeline(&a, "alpha", &a_in, &a_out);
    pipeline(&b, "beta", &b_in, &b_out);
    assert_eq!(
        wait_for_lines(&a, &a_out, 3000, Duration::from_secs(120)).await,
        a_lines
    );
    assert_eq!(
        wait_for_lines(&b, &b_out, 2000, Duration::from_secs(120)).await,
        b_lines
    );
    assert_eq!(
        a.get("/connectors").await,
        json!(["alpha-sink", "alpha-source"])
    );
    assert_eq!(
        b.get("/connectors").await,
        json!(["beta-sink", "beta-source"])
    );

    // Each keeps its own offsets in the shared connect-offsets topic: restart one, and it
    // carries on from its own position.
    wait_for(Duration::from_secs(30), "alpha's offsets", || async {
        let o = a.get("/connectors/alpha-source/offsets").await;
        (o["offsets"][0]["offset"]["position"] == std::fs::metadata(&a_in).ok()?.len())
            .then_some(())
    })
    .await;
    a.stop().await;
    a.restart().await;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&a_in)
        .unwrap();
    writeln!(f, "alpha again").unwrap();
    let got = wait_for_lines(&a, &a_out, 3001, Duration::from_secs(120)).await;
    assert_eq!(got.len(), 3001);
    assert_eq!(
        read_lines(&b_out).len(),
        2000,
        "the other worker is untouched"
    );
    drop(broker);
}
