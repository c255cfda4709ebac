//! Worker groups: a `sluice broker` and several `sluice worker`s sharing a `group.id` form one
//! Connect cluster. One scenario, in phases, to keep the number of processes started down:
//! twelve connectors created on a follower spread over three workers; the leader is killed
//! mid-stream and its work resumes on the others; a fourth worker joins and takes work without
//! any task restarting elsewhere; restarts reach the task's worker; every worker is restarted
//! in turn under load. Every line written to an input arrives in its output. A second,
//! in-process test runs two workers of which one lacks a connector class.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{read_lines, wait_for, BrokerProcess, WorkerOptions, WorkerProcess};

const GROUP: &str = "pipelines";
const PIPELINES: usize = 6;
/// `scheduled.rebalance.max.delay.ms` of the workers.
const DELAY_MS: u64 = 2_000;
const LEADER_NAME: &str = "kafka_connect_connect_worker_rebalance_metrics_leader_name";
const EPOCH: &str = "kafka_connect_connect_worker_rebalance_metrics_epoch";
const TASK_STARTS: &str = "kafka_connect_connect_worker_metrics_task_startup_attempts_total";
const CONNECTOR_STARTS: &str =
    "kafka_connect_connect_worker_metrics_connector_startup_attempts_total";

/// The group's leader as `worker` reports it, with its epoch.
async fn leader_of(worker: &WorkerProcess) -> Option<(String, i64)> {
    let text = worker.metrics_text().await;
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{LEADER_NAME}{{")))?;
    let leader = line.split("leader_name=\"").nth(1)?.split('"').next()?;
    let epoch = crate::support::metric_sample(&text, EPOCH, &[])? as i64;
    Some((leader.to_string(), epoch))
}

/// Waits until every worker reports the same leader and epoch; returns the leader.
async fn settled_leader(workers: &[&WorkerProcess]) -> String {
    wait_for(
        Duration::from_secs(60),
        "the workers to agree on one generation and leader",
        || async {
            let mut seen = BTreeSet::new();
            for w in workers {
                seen.insert(leader_of(w).await?);
            }
            (seen.len() == 1).then(|| seen.into_iter().next().expect("one").0)
        },
    )
    .await
}

/// `connector-task` of every task RUNNING on `worker` (the status names the worker of each
/// task, wherever it runs).
async fn running_tasks(worker: &WorkerProcess) -> BTreeSet<String> {
    let body = worker.get("/connectors?expand=status").await;
    let me = worker.worker_id();
    let mut out = BTreeSet::new();
    for (name, c) in body.as_object().into_iter().flatten() {
        for t in c["status"]["tasks"].as_array().into_iter().flatten() {
            if t["state"] == "RUNNING" && t["worker_id"] == me.as_str() {
                out.insert(format!("{name}-{}", t["id"]));
            }
        }
    }
    out
}

/// Waits until `workers` together run every task exactly once, each at least one; returns
/// each worker's tasks.
async fn spread(workers: &[&WorkerProcess], what: &str) -> Vec<BTreeSet<String>> {
    wait_for(Duration::from_secs(90), what, || async {
        let mut each = Vec::new();
        for w in workers {
            each.push(running_tasks(w).await);
        }
        let total: usize = each.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<&String> = each.iter().flatten().collect();
        (total == 2 * PIPELINES
            && union.len() == 2 * PIPELINES
            && each.iter().all(|t| !t.is_empty()))
        .then_some(each)
    })
    .await
}

async fn metric(worker: &WorkerProcess, name: &str) -> f64 {
    worker
        .metric(name, &[])
        .await
        .unwrap_or_else(|| panic!("{} has no {name}", worker.worker_id()))
}

fn append(path: &Path, pipeline: usize, lines: std::ops::Range<usize>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open input");
    for n in lines {
        writeln!(f, "p{pipeline}-line-{n}").expect("append");
    }
}

/// Waits until every output holds lines `0..upto` of its pipeline; returns (lost, duplicated)
/// counts then (lost is zero unless the wait timed out, which fails the test).
async fn all_lines_arrive(outputs: &[PathBuf], upto: usize, what: &str) -> usize {
    wait_for(Duration::from_secs(90), what, || async {
        let mut duplicates = 0;
        for (i, out) in outputs.iter().enumerate() {
            let lines = read_lines(out);
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for l in &lines {
                *counts.entry(l.as_str()).or_default() += 1;
            }
            let missing = (0..upto)
                .filter(|n| !counts.contains_key(format!("p{i}-line-{n}").as_str()))
                .count();
            if missing > 0 {
                return None;
            }
            duplicates += lines.len() - counts.len();
        }
        Some(duplicates)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_share_connectors_survive_a_leader_kill_and_take_in_a_newcomer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::start(dir.path()).await;
    let member = |name: &str| {
        WorkerOptions::group_member(&dir.path().join(name), &broker.addr, GROUP, DELAY_MS)
    };
    let mut workers = vec![
        WorkerProcess::start(member("w0")).await,
        WorkerProcess::start(member("w1")).await,
        WorkerProcess::start(member("w2")).await,
    ];
    let leader = settled_leader(&workers.iter().collect::<Vec<_>>()).await;
    let leader_index = workers
        .iter()
        .position(|w| w.worker_id() == leader)
        .unwrap_or_else(|| panic!("the leader {leader} is none of the workers"));
    let follower = &workers[(leader_index + 1) % 3];

    // Phase 1: twelve connectors created through REST on a follower.
    let data = dir.path().join("files");
    std::fs::create_dir_all(&data).expect("files dir");
    let inputs: Vec<PathBuf> = (0..PIPELINES)
        .map(|i| data.join(format!("in-{i}.txt")))
        .collect();
    let outputs: Vec<PathBuf> = (0..PIPELINES)
        .map(|i| data.join(format!("out-{i}.txt")))
        .collect();
    for i in 0..PIPELINES {
        append(&inputs[i], i, 0..100);
        let (status, body) = follower
            .request(
                reqwest::Method::POST,
                "/connectors",
                Some(&json!({"name": format!("source-{i}"), "config": {
                    "connector.class": "file-source", "file": inputs[i], "topic": format!("pipe-{i}"),
                    "value.converter": "string"}})),
            )
            .await;
        assert_eq!(status, 201, "create source-{i}: {body}");
        let (status, body) = follower
            .request(
                reqwest::Method::POST,
                "/connectors",
                Some(&json!({"name": format!("sink-{i}"), "config": {
                    "connector.class": "file-sink", "file": outputs[i], "topics": format!("pipe-{i}"),
                    "value.converter": "string"}})),
            )
            .await;
        assert_eq!(status, 201, "create sink-{i}: {body}");
    }
    let placed = spread(
        &workers.iter().collect::<Vec<_>>(),
        "the twelve tasks to run, spread over all three workers",
    )
    .await;
    for (w, tasks) in workers.iter().zip(&placed) {
        println!("{} runs {tasks:?}", w.worker_id());
    }
    let duplicates = all_lines_arrive(&outputs, 100, "the first 100 lines of each pipeline").await;
    println!("phase 1: every line arrived, {duplicates} duplicates");
    // The leader keys the group's session, and connectors placed on other workers handed their
    // task configurations to it in requests signed with that key (KIP-507): an unsigned or
    // wrongly signed one is refused, so these tasks would not exist otherwise.
    assert!(
        workers[leader_index]
            .log()
            .contains("wrote a new session key"),
        "the leader wrote no session key"
    );
    assert!(
        workers
            .iter()
            .enumerate()
            .any(|(i, w)| i != leader_index && w.log().contains("task configurations published")),
        "no member handed task configurations to the leader"
    );
    // The follower wrote none of it itself: it forwarded each create to the leader, as Kafka
    // Connect does, and a request that must not be forwarded again gets Kafka Connect's 409.
    assert!(
        follower
            .log()
            .contains("forwarding the request to the leader"),
        "the follower forwarded no write to the leader"
    );
    let (code, body) = follower
        .request(
            reqwest::Method::PUT,
            "/connectors/source-0/config?forward=false",
            Some(&json!({"connector.class": "file-source", "file": inputs[0],
                "topic": "pipe-0", "value.converter": "string"})),
        )
        .await;
    assert_eq!(code, 409, "PUT with forward=false on a follower: {body}");
    assert_eq!(
        body["message"],
        "Cannot complete request because of a conflicting operation (e.g. worker rebalance)"
    );
    // Every worker shows every connector's status, each part with the worker running it
    // (read back from the status topic for work that runs elsewhere).
    for w in &workers {
        let seen = wait_for(
            Duration::from_secs(30),
            "every worker to show every task RUNNING, on all three workers",
            || async {
                let mut seen = BTreeSet::new();
                for i in 0..PIPELINES {
                    for name in [format!("source-{i}"), format!("sink-{i}")] {
                        let (code, status) = w
                            .request(
                                reqwest::Method::GET,
                                &format!("/connectors/{name}/status"),
                                None,
                            )
                            .await;
                        if code != 200 || status["connector"]["state"] != "RUNNING" {
                            return None;
                        }
                        let task = &status["tasks"][0];
                        if task["state"] != "RUNNING" {
                            return None;
                        }
                        seen.insert(task["worker_id"].as_str()?.to_string());
                    }
                }
                Some(seen)
            },
        )
        .await;
        let all: BTreeSet<String> = workers.iter().map(WorkerProcess::worker_id).collect();
        assert_eq!(seen, all, "{} shows tasks on {seen:?}", w.worker_id());
    }

    // `sluice groups --describe` on the Connect group shows each worker with its URL and the
    // work it was given.
    let mut describe = crate::support::cli_tools::sluice();
    describe.args([
        "groups",
        "--bootstrap-server",
        &broker.addr,
        "--describe",
        "--group",
        GROUP,
    ]);
    let described = crate::support::cli_tools::run(describe, "");
    assert!(
        described.contains(&format!("Connect group '{GROUP}' (Stable")),
        "{described}"
    );
    for w in &workers {
        assert!(
            described.contains(&format!("http://{}/", w.worker_id())),
            "{} in {described}",
            w.worker_id()
        );
    }
    assert!(
        described.contains("source-0") && described.contains("sink-5-0"),
        "{described}"
    );

    // A logger level set with scope=cluster on one worker reaches every worker (KIP-976).
    let (code, body) = follower
        .request(
            reqwest::Method::PUT,
            "/admin/loggers/sluice_registry?scope=cluster",
            Some(&json!({"level": "debug"})),
        )
        .await;
    assert_eq!(code, 204, "PUT a logger level with scope=cluster: {body}");
    for w in &workers {
        wait_for(
            Duration::from_secs(30),
            &format!("{} to apply the cluster-wide logger level", w.worker_id()),
            || async {
                let level = w.get("/admin/loggers/sluice_registry").await;
                (level["level"] == "DEBUG").then_some(())
            },
        )
        .await;
    }

    // Phase 2: the leader dies mid-stream; its tasks resume on the others.
    for (i, input) in inputs.iter().enumerate() {
        append(input, i, 100..200);
    }
    let mut dead = workers.remove(leader_index);
    dead.kill();
    let killed = Instant::now();
    let survivors: Vec<&WorkerProcess> = workers.iter().collect();
    spread(
        &survivors,
        "the dead leader's tasks to resume on the two others",
    )
    .await;
    let recovered = killed.elapsed();
    println!(
        "phase 2: every task runs again {} ms after the SIGKILL (session.timeout.ms 6000, scheduled.rebalance.max.delay.ms {DELAY_MS})",
        recovered.as_millis()
    );
    for (i, input) in inputs.iter().enumerate() {
        append(input, i, 200..300);
    }
    let duplicates = all_lines_arrive(&outputs, 300, "every line after the leader's death").await;
    println!("phase 2: lost 0 lines, {duplicates} duplicated");
    let new_leader = settled_leader(&survivors).await;
    assert_ne!(new_leader, dead.worker_id(), "a new leader was elected");

    // Phase 3: a fourth worker joins; it takes work, and nothing restarts elsewhere.
    let mut before = Vec::new();
    for w in &workers {
        before.push((
            metric(w, TASK_STARTS).await,
            metric(w, CONNECTOR_STARTS).await,
            running_tasks(w).await,
        ));
    }
    workers.push(WorkerProcess::start(member("w3")).await);
    let all: Vec<&WorkerProcess> = workers.iter().collect();
    let placed = spread(&all, "the newcomer to take some of the tasks").await;
    settled_leader(&all).await;
    for (w, ((task_starts, connector_starts, tasks), now)) in
        workers.iter().zip(before.iter().zip(&placed))
    {
        assert_eq!(
            metric(w, TASK_STARTS).await,
            *task_starts,
            "{} started tasks when a worker joined",
            w.worker_id()
        );
        assert_eq!(
            metric(w, CONNECTOR_STARTS).await,
            *connector_starts,
            "{} started connectors when a worker joined",
            w.worker_id()
        );
        assert!(
            now.is_subset(tasks),
            "{} kept {now:?} of {tasks:?}",
            w.worker_id()
        );
    }
    for (i, input) in inputs.iter().enumerate() {
        append(input, i, 300..400);
    }
    let duplicates = all_lines_arrive(&outputs, 400, "every line with four workers").await;
    println!("phase 3: lost 0 lines, {duplicates} duplicated in total");

    // Phase 4: restarts asked of one worker reach the worker that runs the task, both a
    // task's restart (forwarded to its owner) and a connector's with its tasks (through the
    // config topic to every worker).
    let asker = &workers[0];
    let (name, owner_id) = wait_for(
        Duration::from_secs(30),
        "a task that runs on another worker than the one asked",
        || async {
            for i in 0..PIPELINES {
                let name = format!("sink-{i}");
                let status = asker.get(&format!("/connectors/{name}/status")).await;
                let owner = status["tasks"][0]["worker_id"].as_str()?.to_string();
                if owner != asker.worker_id() && status["tasks"][0]["state"] == "RUNNING" {
                    return Some((name, owner));
                }
            }
            None
        },
    )
    .await;
    let owner = workers
        .iter()
        .find(|w| w.worker_id() == owner_id)
        .unwrap_or_else(|| panic!("{owner_id} is none of the workers"));
    for (path, expected) in [
        (format!("/connectors/{name}/tasks/0/restart"), 204),
        (format!("/connectors/{name}/restart?includeTasks=true"), 202),
    ] {
        let before = metric(owner, TASK_STARTS).await;
        let (code, body) = asker.request(reqwest::Method::POST, &path, None).await;
        assert_eq!(
            code,
            expected,
            "POST {path} on {}: {body}",
            asker.worker_id()
        );
        wait_for(
            Duration::from_secs(30),
            &format!("{owner_id} to restart {name}'s task after POST {path}"),
            || async { (metric(owner, TASK_STARTS).await > before).then_some(()) },
        )
        .await;
    }

    // Phase 5: a rolling restart, every worker in turn stopped and started again while the
    // inputs grow: nothing is lost.
    for (n, w) in workers.iter_mut().enumerate() {
        for (i, input) in inputs.iter().enumerate() {
            append(input, i, 400 + n * 50..450 + n * 50);
        }
        let status = w.stop().await;
        assert!(
            status.is_some_and(|s| s.success()),
            "{} stopped cleanly: {status:?}",
            w.worker_id()
        );
        w.restart().await;
    }
    let upto = 400 + workers.len() * 50;
    let duplicates = all_lines_arrive(&outputs, upto, "every line after a rolling restart").await;
    println!("phase 5: lost 0 lines, {duplicates} duplicated in total");
}

/// Two workers in one group, one of which lacks a connector class: what the group assigns
/// of that class to the worker without it is FAILED, with a trace that names the class and
/// that worker, and every worker's status shows it; the rest runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_assigned_to_a_worker_without_its_class_fails_naming_class_and_worker() {
    use sluice_runtime::run::{start_worker, start_worker_with};

    let dir = tempfile::tempdir().unwrap();
    let settings = |name: &str, extra: &[(&str, String)]| {
        let mut all = vec![("scheduled.rebalance.max.delay.ms", "1000".to_string())];
        all.extend_from_slice(extra);
        crate::support::in_process_settings(dir.path(), name, &all)
    };
    // The worker with the class starts first and leads (the leader validates a new
    // connector against its own classes, as in Kafka Connect); the other joins it.
    let beta: Vec<_> = sluice_runtime::plugins::builtin_plugins()
        .into_iter()
        .filter(|p| p.class == "file-source")
        .map(|mut p| {
            p.class = "file-source-beta".to_string();
            p.aliases.clear();
            p
        })
        .collect();
    assert_eq!(beta.len(), 1, "the built-in file source");
    let equipped = start_worker_with(
        settings(
            "equipped",
            &[(
                "broker.listen",
                format!("127.0.0.1:{}", crate::support::free_port()),
            )],
        ),
        beta,
    )
    .await
    .expect("the worker with the class starts");
    let plain = start_worker(settings(
        "plain",
        &[("bootstrap.servers", equipped.bootstrap.clone())],
    ))
    .await
    .expect("the worker without the class starts");
    let plain_id = plain.herder.worker_id().to_string();
    let rest = format!("http://{}", equipped.rest_addr);
    let http = reqwest::Client::new();
    let status = |name: String| {
        let http = http.clone();
        let url = format!("{rest}/connectors/{name}/status");
        async move {
            let answer = http.get(url).send().await.ok()?;
            answer.json::<serde_json::Value>().await.ok()
        }
    };
    // Both workers in one generation before the connectors exist, so the two connectors and
    // their two tasks are spread over both.
    let plain_rest = format!("http://{}", plain.rest_addr);
    wait_for(
        Duration::from_secs(60),
        "both workers in one group",
        || async {
            let text = reqwest::get(format!("{plain_rest}/metrics"))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            text.lines()
                .filter(|l| {
                    l.starts_with(
                        "kafka_connect_connect_worker_rebalance_metrics_completed_rebalances_total",
                    )
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .any(|n| n > 0.0)
                .then_some(())
        },
    )
    .await;
    for i in 0..2 {
        std::fs::write(dir.path().join(format!("in-{i}.txt")), "a line\n").unwrap();
        let answer = http
            .post(format!("{rest}/connectors"))
            .json(&json!({"name": format!("beta-{i}"), "config": {
                "connector.class": "file-source-beta",
                "file": dir.path().join(format!("in-{i}.txt")),
                "topic": format!("beta-{i}")}}))
            .send()
            .await
            .expect("POST /connectors");
        assert_eq!(answer.status().as_u16(), 201, "create beta-{i}");
    }
    let failed = wait_for(
        Duration::from_secs(60),
        "the worker without the class to report FAILED for its share",
        || async {
            let mut failed = Vec::new();
            for i in 0..2 {
                let view = status(format!("beta-{i}")).await?;
                let parts = std::iter::once(view["connector"].clone())
                    .chain(view["tasks"].as_array().cloned().unwrap_or_default());
                for part in parts {
                    if part["worker_id"] == plain_id.as_str() && part["state"] == "FAILED" {
                        failed.push(part["trace"].as_str().unwrap_or_default().to_string());
                    }
                }
            }
            // Two connectors over two workers: one lands on each. (A connector instance on
            // the worker without the class generates no tasks.)
            (!failed.is_empty()).then_some(failed)
        },
    )
    .await;
    for trace in &failed {
        assert!(
            trace.contains("file-source-beta") && trace.contains(&plain_id),
            "the trace names the class and the worker: {trace}"
        );
    }
    // What the equipped worker was given runs.
    wait_for(
        Duration::from_secs(60),
        "a connector RUNNING on the equipped worker",
        || async {
            for i in 0..2 {
                let view = status(format!("beta-{i}")).await?;
                if view["connector"]["worker_id"] != plain_id.as_str()
                    && view["connector"]["state"] == "RUNNING"
                {
                    return Some(());
                }
            }
            None
        },
    )
    .await;
    equipped.stop().await;
    plain.stop().await;
}
