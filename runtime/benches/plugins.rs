//! Plugin overhead: records per second through the example generator source loaded as a
//! plugin library, against the same generator code compiled into the worker, in one run.
//!
//! `cargo bench -p sluice-runtime --bench plugins`
//!
//! Builds examples/plugin-source in release mode (into `<target>/plugin-example`), starts one
//! worker in this process with the embedded broker, knowing both `generator-source` (the
//! plugin, from plugin.path) and `generator-builtin` (examples/plugin-source/src/generator.rs
//! compiled in). Each round runs each connector for `SLUICE_BENCH_RECORDS` records (default
//! 1,000,000) at full speed, key and value through the JSON converter, and times the run from
//! connector creation to the last record acknowledged by the broker. Rounds alternate the two
//! (`SLUICE_BENCH_ROUNDS`, default 3); the best round of each is reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice_runtime::herder::Origin;
use sluice_runtime::run::start_worker_with;
use sluice_runtime::settings::WorkerSettings;
use sluice_sdk::{ConnectorPlugin, Props};

/// The example plugin's generator, compiled in: the very code the plugin library holds.
#[allow(dead_code, unreachable_pub)]
#[path = "../../examples/plugin-source/src/generator.rs"]
mod generator;

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

/// Builds the example plugin in release mode; returns its library.
fn build_plugin() -> PathBuf {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    // <target>/release/deps/plugins-<hash> -> <target>
    let exe = std::env::current_exe().unwrap();
    let target = exe.ancestors().nth(3).unwrap().join("plugin-example");
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(repository.join("examples/plugin-source/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("run cargo");
    assert!(status.success(), "building examples/plugin-source failed");
    let dir = target.join("release");
    let library = dir.join(format!(
        "{}sluice_generator{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(library.is_file(), "no {}", library.display());
    library
}

fn compiled_in() -> Vec<ConnectorPlugin> {
    generator::plugins()
        .into_iter()
        .map(|mut p| {
            p.class = "generator-builtin".to_string();
            p.aliases.clear();
            p
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let records = env_number("SLUICE_BENCH_RECORDS", 1_000_000);
    let rounds = env_number("SLUICE_BENCH_ROUNDS", 3);
    let library = build_plugin();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(&library, plugins.join(library.file_name().unwrap())).unwrap();
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
        ("plugin.path".to_string(), plugins.display().to_string()),
    ]))
    .unwrap();
    std::fs::create_dir_all(dir.path().join("configs")).unwrap();
    let running = start_worker_with(settings, compiled_in()).await.unwrap();
    let worker = running.herder.clone();

    let mut best: BTreeMap<&str, f64> = BTreeMap::new();
    for round in 0..rounds {
        for class in ["generator-builtin", "generator-source"] {
            let name = format!("{class}-{round}");
            let props: Props = [
                ("connector.class", class),
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
                "round {round}: {class:<18} {records} records in {:>6.2} s = {rate:>9.0} records/s",
                elapsed.as_secs_f64()
            );
            let entry = best.entry(class).or_insert(0.0);
            *entry = entry.max(rate);
            worker.delete_connector(&name, &Origin::Rest).await.unwrap();
        }
    }
    let builtin = best["generator-builtin"];
    let plugin = best["generator-source"];
    println!(
        "best: compiled in {builtin:.0} records/s, plugin {plugin:.0} records/s ({:.1}% of compiled in)",
        100.0 * plugin / builtin
    );
    running.stop().await;
}
