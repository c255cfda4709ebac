//! Console benchmarks, run with `cargo bench -p sluice-runtime --bench console`:
//!
//! 1. scrape times of `/metrics`, `/connectors?expand=status&expand=info` and the console's
//!    `/ui/api/*` reads with `SLUICE_BENCH_CONNECTORS` connectors (default 200: half file
//!    sources, half file sinks reading what they write);
//! 2. the console's first paint with those connectors in a headless Chromium (Debian's
//!    `chromium` and `chromium-driver`): first contentful paint, and the time until the
//!    connectors table holds every row (the page's `sluice:connectors-rendered` mark).
//!
//! The release `sluice` binary runs as a real process, as a user would run it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod browser;

use browser::{free_port, wait_until, Chromium, Killed};

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    format!(
        "median {:.1} ms, p90 {:.1} ms, max {:.1} ms ({} runs)",
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10]),
        ms(times[times.len() - 1]),
        times.len()
    )
}

#[tokio::main]
async fn main() {
    let count: usize = std::env::var("SLUICE_BENCH_CONNECTORS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let rest_port = free_port();
    let log = std::fs::File::create(dir.path().join("worker.log")).unwrap();
    let _worker = Killed(
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("worker")
            .current_dir(dir.path())
            .env("SLUICE_REST_PORT", rest_port.to_string())
            .env("SLUICE_BROKER_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("SLUICE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{rest_port}");
    let http = reqwest::Client::new();
    wait_until(Duration::from_secs(60), "the REST API", || {
        let url = format!("{base}/connectors");
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;

    let created = Instant::now();
    for i in 0..count {
        let config = if i % 2 == 0 {
            let file = dir.path().join(format!("in-{i}.txt"));
            std::fs::write(&file, format!("line one of {i}\nline two of {i}\n")).unwrap();
            json!({"connector.class": "file-source", "file": file, "topic": format!("bench-{}", i / 2)})
        } else {
            json!({"connector.class": "file-sink", "topics": format!("bench-{}", i / 2),
                   "file": dir.path().join(format!("out-{i}.txt"))})
        };
        let answer = http
            .post(format!("{base}/connectors"))
            .json(&json!({"name": format!("c-{i:03}"), "config": config}))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "create c-{i}: {}",
            answer.text().await.unwrap()
        );
    }
    wait_until(Duration::from_secs(300), "every connector RUNNING", || {
        let http = http.clone();
        let url = format!("{base}/connectors?expand=status");
        async move {
            let Ok(r) = http.get(url).send().await else {
                return false;
            };
            let v: Value = r.json().await.unwrap_or_default();
            v.as_object().is_some_and(|m| {
                m.len() == count
                    && m.values().all(|c| {
                        c["status"]["connector"]["state"] == "RUNNING"
                            && c["status"]["tasks"][0]["state"] == "RUNNING"
                    })
            })
        }
    })
    .await;
    println!(
        "{count} connectors created and RUNNING in {:.1} s",
        created.elapsed().as_secs_f64()
    );

    for path in [
        "/metrics",
        "/connectors?expand=status&expand=info",
        "/ui/api/topics",
        "/ui/api/groups",
        "/ui/api/groups/connect-c-001",
        "/ui/api/topics/bench-0/messages?limit=50",
    ] {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..20 {
            let started = Instant::now();
            let r = http.get(format!("{base}{path}")).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            bytes = r.bytes().await.unwrap().len();
            times.push(started.elapsed());
        }
        println!("GET {path}: {} ({bytes} bytes)", summary(times));
    }

    let chromium = Chromium::start(&dir.path().join("profile")).await;
    let client = &chromium.client;
    let mut paints = Vec::new();
    let mut tables = Vec::new();
    for _ in 0..10 {
        client.goto("about:blank").await.unwrap();
        client
            .goto(&format!("{base}/ui/#/connectors"))
            .await
            .unwrap();
        let check = format!(
            "return document.querySelectorAll('#connectors tbody tr').length === {count} && performance.getEntriesByName('sluice:connectors-rendered').length > 0"
        );
        wait_until(Duration::from_secs(30), "the connectors table", || {
            let client = client.clone();
            let check = check.clone();
            async move { client.execute(&check, vec![]).await.ok() == Some(json!(true)) }
        })
        .await;
        let times = client
            .execute(
                "return [performance.getEntriesByName('first-contentful-paint').map(e => e.startTime)[0] || -1, performance.getEntriesByName('sluice:connectors-rendered')[0].startTime];",
                vec![],
            )
            .await
            .unwrap();
        paints.push(Duration::from_secs_f64(
            times[0].as_f64().unwrap().max(0.0) / 1000.0,
        ));
        tables.push(Duration::from_secs_f64(times[1].as_f64().unwrap() / 1000.0));
    }
    println!("console first contentful paint: {}", summary(paints));
    println!(
        "console table with {count} connectors rendered: {}",
        summary(tables)
    );
    chromium.close().await;
}
