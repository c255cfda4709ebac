//! A Kafka Connect REST client written for Kafka Connect, kafka-connect-py (from PyPI, in the
//! test virtualenv), drives a connector's whole lifecycle through a follower of a two-worker
//! group: the follower answers reads itself and forwards what only the leader may do.

use std::process::Command;
use std::time::Duration;

use crate::support::wait_for;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_connect_py_runs_the_whole_lifecycle_through_a_follower() {
    use sluice_runtime::run::start_worker;

    let python = crate::support::test_python("kafka_connect", "kafka-connect-py");
    let dir = tempfile::tempdir().unwrap();
    let settings = |name: &str, extra: (&str, String)| {
        crate::support::in_process_settings(
            dir.path(),
            name,
            &[extra, ("offset.flush.interval.ms", "200".to_string())],
        )
    };
    let first = start_worker(settings(
        "first",
        (
            "broker.listen",
            format!("127.0.0.1:{}", crate::support::free_port()),
        ),
    ))
    .await
    .expect("the first worker starts");
    let second = start_worker(settings(
        "second",
        ("bootstrap.servers", first.bootstrap.clone()),
    ))
    .await
    .expect("the second worker starts");

    // Both in one generation; the follower is the one that is not the leader.
    let urls = [
        format!("http://{}", first.rest_addr),
        format!("http://{}", second.rest_addr),
    ];
    let follower = wait_for(
        Duration::from_secs(60),
        "both workers in one generation with one leader",
        || async {
            let mut leaders = Vec::new();
            for url in &urls {
                let text = reqwest::get(format!("{url}/metrics"))
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                let leader = text
                    .lines()
                    .find(|l| {
                        l.starts_with(
                            "kafka_connect_connect_worker_rebalance_metrics_leader_name{",
                        )
                    })?
                    .split("leader_name=\"")
                    .nth(1)?
                    .split('"')
                    .next()?
                    .to_string();
                let members = text
                    .lines()
                    .find(|l| {
                        l.starts_with(
                            "kafka_connect_connect_worker_rebalance_metrics_completed_rebalances_total",
                        )
                    })?
                    .rsplit(' ')
                    .next()?
                    .parse::<f64>()
                    .ok()?;
                (members > 0.0).then_some(())?;
                leaders.push(leader);
            }
            if leaders[0] != leaders[1] {
                return None;
            }
            let ids = [first.herder.worker_id(), second.herder.worker_id()];
            let leader = ids.iter().position(|id| *id == leaders[0])?;
            Some(urls[1 - leader].clone())
        },
    )
    .await;

    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one\ntwo\nthree\n").unwrap();
    let (out, out2) = (dir.path().join("out.txt"), dir.path().join("out2.txt"));
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/kafka_connect_client/lifecycle.py"
    );
    let run = tokio::task::spawn_blocking({
        let args = [
            script.to_string(),
            follower.clone(),
            input.display().to_string(),
            out.display().to_string(),
            out2.display().to_string(),
        ];
        move || {
            Command::new(python)
                .args(args)
                .output()
                .expect("run python")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "kafka-connect-py against the follower {follower} failed:\n{stdout}\n{stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("summary");
    assert_eq!(summary["done"], true);
    assert_eq!(summary["validate_errors"], serde_json::json!(["file"]));
    // What the client did had its effect: the first lines went to the first file, the lines
    // written after the update to the second one, and nothing is left running.
    let first_lines = std::fs::read_to_string(&out).unwrap();
    for line in ["one", "two", "three"] {
        assert!(
            first_lines.lines().any(|l| l == line),
            "{line} in {first_lines:?}"
        );
    }
    let second_lines = std::fs::read_to_string(&out2).unwrap();
    for line in ["written while paused", "written after the restarts"] {
        assert!(
            second_lines.lines().any(|l| l == line),
            "{line} in {second_lines:?}"
        );
    }
    for url in &urls {
        let names: serde_json::Value = reqwest::get(format!("{url}/connectors"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(names, serde_json::json!([]), "connectors left on {url}");
    }
    second.stop().await;
    first.stop().await;
}
