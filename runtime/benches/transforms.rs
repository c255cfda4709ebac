//! Transform overhead: records per second through a source with a chain of five transforms
//! (and a predicate) against the same source with none, in one run.
//!
//! `cargo bench -p sluice-runtime --bench transforms`
//!
//! Starts one worker in this process with the embedded broker and the example generator
//! source compiled in (examples/plugin-source/src/generator.rs: schema'd struct values). Each
//! round runs the generator for `SLUICE_BENCH_RECORDS` records (default 1,000,000) at full
//! speed, value through the JSON converter, once with no transforms and once with
//! `InsertField$Value`, `Cast$Value`, `ReplaceField$Value`, `InsertHeader` and a `Filter` under
//! a `HasHeaderKey` predicate that matches nothing (so every step runs and every record is
//! sent). Each run is timed from connector creation to the last record acknowledged by the
//! broker. Rounds alternate the two (`SLUICE_BENCH_ROUNDS`, default 3); the best round of each
//! is reported, with the chain's rate as a share of the plain one.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_runtime::herder::Origin;
use sluice_runtime::run::start_worker_with;
use sluice_runtime::settings::WorkerSettings;
use sluice_sdk::Props;

// The allocator the `sluice` binary uses (see `main.rs`), so the figures are the product's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The example plugin's generator, compiled in.
#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/plugin-source/src/generator.rs"]
mod generator;

const T: &str = "org.apache.kafka.connect.transforms.";

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The five-step chain, as a connector JSON would write it.
fn chain() -> Vec<(String, String)> {
    [
        ("transforms", "insert,cast,rename,header,skip".to_string()),
        ("transforms.insert.type", format!("{T}InsertField$Value")),
        ("transforms.insert.static.field", "origin".into()),
        ("transforms.insert.static.value", "bench".into()),
        ("transforms.cast.type", format!("{T}Cast$Value")),
        ("transforms.cast.spec", "stream:int64".into()),
        ("transforms.rename.type", format!("{T}ReplaceField$Value")),
        ("transforms.rename.renames", "text:message".into()),
        ("transforms.header.type", format!("{T}InsertHeader")),
        ("transforms.header.header", "origin".into()),
        ("transforms.header.value.literal", "bench".into()),
        ("transforms.skip.type", format!("{T}Filter")),
        ("transforms.skip.predicate", "hasSkip".into()),
        ("predicates", "hasSkip".into()),
        (
            "predicates.hasSkip.type",
            format!("{T}predicates.HasHeaderKey"),
        ),
        ("predicates.hasSkip.name", "skip".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[tokio::main]
async fn main() {
    let records = env_number("SLUICE_BENCH_RECORDS", 1_000_000);
    let rounds = env_number("SLUICE_BENCH_ROUNDS", 3);
    let dir = tempfile::tempdir().unwrap();
    let settings = WorkerSettings::from_map(&BTreeMap::from([
        (
            "data.dir".to_string(),
            dir.path().join("data").display().to_string(),
        ),
        (
            "config.dir".to_string(),
            dir.path().join("configs").display().to_string(),
        ),
        ("rest.port".to_string(), free_port().to_string()),
        (
            "broker.listen".to_string(),
            format!("127.0.0.1:{}", free_port()),
        ),
    ]))
    .unwrap();
    std::fs::create_dir_all(dir.path().join("configs")).unwrap();
    let running = start_worker_with(settings, generator::plugins())
        .await
        .unwrap();
    let worker = running.herder.clone();

    let mut best: BTreeMap<&str, f64> = BTreeMap::new();
    for round in 0..rounds {
        for variant in ["none", "five"] {
            let name = format!("transforms-{variant}-{round}");
            let mut props: Props = [
                ("connector.class", "generator-source"),
                ("topic", name.as_str()),
                ("rate", "0"),
                ("count", &records.to_string()),
                ("key.converter", "json"),
                ("key.converter.schemas.enable", "false"),
                ("value.converter", "json"),
                ("value.converter.schemas.enable", "false"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            if variant == "five" {
                props.extend(chain());
            }
            let metrics = worker.metrics().task(&name, 0, "source");
            let started = Instant::now();
            worker
                .put_connector(&name, props, Origin::Rest)
                .await
                .unwrap();
            while metrics.records_out.load(Ordering::Relaxed) < records {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let elapsed = started.elapsed();
            let rate = records as f64 / elapsed.as_secs_f64();
            println!(
                "round {round}: {variant:<4} transforms  {records} records in {:>6.2} s = {rate:>9.0} records/s",
                elapsed.as_secs_f64()
            );
            let entry = best.entry(variant).or_insert(0.0);
            *entry = entry.max(rate);
            worker.delete_connector(&name, &Origin::Rest).await.unwrap();
        }
    }
    let none = best["none"];
    let five = best["five"];
    println!(
        "best: no transforms {none:.0} records/s, five transforms {five:.0} records/s ({:.1}% of none)",
        100.0 * five / none
    );
    running.stop().await;
}
