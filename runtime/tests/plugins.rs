//! Connector plugins as dynamic libraries: the example plugin crate (examples/plugin-source)
//! is built here with cargo, loaded by real workers from a temporary plugin.path, and run
//! through the embedded broker; broken plugin files must be skipped with one log line each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{read_topic, sluice_bin, wait_for, Consumed, WorkerOptions, WorkerProcess};

/// The example plugin's library file name.
fn library_file_name() -> String {
    format!(
        "{}sluice_generator{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the runtime crate sits in the repository")
        .to_path_buf()
}

/// Builds examples/plugin-source once per test run and returns its library.
///
/// The build gets its own target folder beside the test binaries' (`<target>/plugin-example`,
/// wherever CARGO_TARGET_DIR puts `<target>`): cargo locks a target folder while it runs the
/// tests, and the example is a separate workspace anyway. Later runs reuse it.
fn example_plugin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // <target>/debug/sluice -> <target>
            let target = sluice_bin()
                .parent()
                .and_then(Path::parent)
                .expect("the sluice binary sits in <target>/<profile>")
                .join("plugin-example");
            let manifest = repository_root().join("examples/plugin-source/Cargo.toml");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let output = Command::new(cargo)
                .args(["build", "--locked", "--manifest-path"])
                .arg(&manifest)
                .arg("--target-dir")
                .arg(&target)
                // Leave a core to the tests running beside the build.
                .args(["--jobs", "1"])
                .env_remove("CARGO_TARGET_DIR")
                .output()
                .expect("run cargo to build examples/plugin-source");
            assert!(
                output.status.success(),
                "building examples/plugin-source failed (if its Cargo.lock is out of date, run \
                 `cargo update --manifest-path examples/plugin-source/Cargo.toml --workspace`):\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
            let library = target.join("debug").join(library_file_name());
            assert!(library.is_file(), "no {} after the build", library.display());
            library
        })
        .clone()
}

/// A plugin.path folder with the example plugin in a subfolder, as users lay plugins out.
async fn plugin_dir(dir: &Path) -> PathBuf {
    let library = tokio::task::spawn_blocking(example_plugin).await.unwrap();
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(plugins.join("generator")).unwrap();
    std::fs::copy(
        &library,
        plugins.join("generator").join(library_file_name()),
    )
    .unwrap();
    plugins
}

async fn start_worker(dir: &Path, plugin_path: &Path) -> WorkerProcess {
    WorkerProcess::start(
        WorkerOptions::new(dir)
            .env("SLUICE_PLUGIN_PATH", plugin_path.to_str().unwrap())
            .env("SLUICE_OFFSET_FLUSH_INTERVAL_MS", "200"),
    )
    .await
}

fn generator_config(name: &str, topic: &str, extra: Value) -> Value {
    let mut config = json!({
        "connector.class": "generator-source",
        "topic": topic,
        "key.converter": "json",
        "key.converter.schemas.enable": "false",
        "value.converter": "json",
        "value.converter.schemas.enable": "false",
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    json!({"name": name, "config": config})
}

async fn read(
    worker: &WorkerProcess,
    topic: &str,
    count: usize,
    timeout: Duration,
) -> Vec<Consumed> {
    let bootstrap = worker.bootstrap();
    let topic = topic.to_string();
    tokio::task::spawn_blocking(move || read_topic(&bootstrap, &topic, count, timeout))
        .await
        .unwrap()
}

fn value_json(record: &Consumed) -> Value {
    serde_json::from_slice(record.value.as_deref().expect("a value")).expect("JSON value")
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_source_is_listed_validated_and_produces_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(dir.path()).await;
    let worker = start_worker(dir.path(), &plugins).await;

    // Listed with its version, and its options served like a built-in's.
    let list = worker.get("/connector-plugins").await;
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["class"] == "generator-source")
        .unwrap_or_else(|| panic!("the plugin class is listed: {list}\n{}", worker.log()))
        .clone();
    assert_eq!(entry["type"], "source");
    assert_eq!(entry["version"], "0.1.0");
    let options = worker
        .get("/connector-plugins/com.example.sluice.GeneratorSourceConnector/config")
        .await;
    let rate = options
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["name"] == "rate")
        .expect("the rate option")
        .clone();
    assert_eq!(rate["type"], "DOUBLE");
    assert_eq!(rate["default_value"], "10");
    assert!(
        worker.log().contains("loaded connector plugin"),
        "{}",
        worker.log()
    );

    // Declared validators run in the worker; the custom one (topic names) in the plugin.
    let (code, validation) = worker
        .request(
            Method::PUT,
            "/connector-plugins/generator-source/config/validate",
            Some(&json!({"topic": "bad topic!", "rate": "-1"})),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(validation["error_count"], 1, "{validation}");
    assert!(
        validation
            .to_string()
            .contains("must be at least 0 (got -1)"),
        "{validation}"
    );
    let (_, validation) = worker
        .request(
            Method::PUT,
            "/connector-plugins/generator-source/config/validate",
            Some(&json!({"topic": "bad topic!"})),
        )
        .await;
    assert_eq!(validation["error_count"], 1, "{validation}");
    assert!(
        validation
            .to_string()
            .contains("must be a Kafka topic name"),
        "{validation}"
    );

    // Records: keys and struct values as the plugin made them, in order.
    worker.write_config(
        "gen.json",
        &generator_config(
            "gen",
            "generated",
            json!({"rate": "0", "count": "3000", "batch.size": "700"}),
        ),
    );
    let records = read(&worker, "generated", 3000, Duration::from_secs(60)).await;
    assert_eq!(records.len(), 3000, "{}", worker.log());
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.key.as_deref(), Some(i.to_string().as_bytes()));
        assert_eq!(
            value_json(r),
            json!({"seq": i, "stream": 0, "text": format!("record {i} of stream 0")})
        );
    }
    let offsets = wait_for(Duration::from_secs(30), "the final offset", || async {
        let body = worker.get("/connectors/gen/offsets").await;
        let entry = body["offsets"].as_array()?.first()?.clone();
        (entry["offset"]["seq"] == 3000).then_some(entry)
    })
    .await;
    assert_eq!(offsets["partition"], json!({"stream": 0}));
    // The plugin's own tracing events reach the worker's log.
    assert!(
        worker.log().contains("generator task started"),
        "{}",
        worker.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_source_resumes_from_its_offsets_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(dir.path()).await;
    let mut worker = start_worker(dir.path(), &plugins).await;
    const COUNT: i64 = 3000;
    worker.write_config(
        "steady.json",
        &generator_config(
            "steady",
            "steady",
            json!({"rate": "400", "count": COUNT.to_string()}),
        ),
    );
    // Kill mid-stream, once some offsets are committed.
    let committed = wait_for(Duration::from_secs(60), "committed offsets", || async {
        let (_, body) = worker
            .request(Method::GET, "/connectors/steady/offsets", None)
            .await;
        let seq = body["offsets"].as_array()?.first()?["offset"]["seq"].as_i64()?;
        (seq >= 400).then_some(seq)
    })
    .await;
    worker.kill();
    worker.restart().await;

    let records = wait_for(
        Duration::from_secs(60),
        "every record after the restart",
        || async {
            let records = read(&worker, "steady", usize::MAX, Duration::from_secs(2)).await;
            let seqs: Vec<i64> = records
                .iter()
                .map(|r| value_json(r)["seq"].as_i64().unwrap())
                .collect();
            seqs.contains(&(COUNT - 1)).then_some(seqs)
        },
    )
    .await;
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for seq in &records {
        *seen.entry(*seq).or_default() += 1;
    }
    let keys: Vec<i64> = seen.keys().copied().collect();
    assert_eq!(keys, (0..COUNT).collect::<Vec<_>>(), "no record skipped");
    assert_eq!(
        seen[&0], 1,
        "the restarted task resumed from its offsets, not from 0"
    );
    for seq in 0..committed {
        assert_eq!(
            seen[&seq], 1,
            "record {seq} was committed before the kill; it is not re-sent"
        );
    }
    assert!(
        records.len() < (COUNT + COUNT / 2) as usize,
        "few duplicates: {}",
        records.len()
    );
    // The plugin task was handed the committed offsets at its start.
    let log = worker.log();
    let starts: Vec<i64> = log
        .lines()
        .filter(|l| l.contains("generator task started"))
        .filter_map(|l| {
            l.split("from_seq=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(starts.len(), 2, "{log}");
    assert_eq!(starts[0], 0);
    assert!(
        starts[1] >= committed,
        "resumed from {} after committing {committed}",
        starts[1]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_plugin_task_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(dir.path()).await;
    let worker = start_worker(dir.path(), &plugins).await;
    worker.write_config(
        "healthy.json",
        &generator_config("healthy", "healthy", json!({"rate": "200"})),
    );
    worker.write_config(
        "doomed.json",
        &generator_config(
            "doomed",
            "doomed",
            json!({"rate": "0", "panic.after.records": "250"}),
        ),
    );
    let failed = worker.wait_for_task_state("doomed", 0, "FAILED").await;
    let trace = failed["trace"].as_str().unwrap_or_default();
    assert!(trace.contains("panicked in poll"), "{failed}");
    assert!(
        trace.contains("panic.after.records=250 (a deliberate panic)"),
        "{failed}"
    );
    // The records before the panic were delivered and committed.
    let doomed = read(&worker, "doomed", 250, Duration::from_secs(30)).await;
    assert_eq!(doomed.len(), 250);

    // The worker is alive, and the other plugin connector goes on producing.
    assert!(worker.get("/").await["version"].is_string());
    let (state, _) = worker
        .task_state("healthy", 0)
        .await
        .expect("healthy has a task");
    assert_eq!(state, "RUNNING");
    let before = read(&worker, "healthy", usize::MAX, Duration::from_secs(1))
        .await
        .len();
    wait_for(Duration::from_secs(30), "more healthy records", || async {
        let now = read(&worker, "healthy", before + 50, Duration::from_secs(5))
            .await
            .len();
        (now >= before + 50).then_some(())
    })
    .await;

    // A restart runs the task again (and it fails again at the same point).
    let (code, _) = worker
        .request(Method::POST, "/connectors/doomed/tasks/0/restart", None)
        .await;
    assert_eq!(code, 204);
    let doomed = read(&worker, "doomed", 500, Duration::from_secs(30)).await;
    assert_eq!(
        doomed.len(),
        500,
        "the restarted task produced up to its next panic"
    );
}

/// Compiles a C file into a shared library (a real library, just not a sluice plugin).
fn c_library(dir: &Path, name: &str, source: &str) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let library = dir.join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&library)
        .arg(&c)
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run the C compiler cc ({e}); install the Debian package build-essential")
        });
    assert!(status.success(), "cc failed on {}", c.display());
    std::fs::remove_file(&c).unwrap();
    library
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_plugin_files_are_skipped_with_one_log_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir(dir.path()).await;
    // A file that only pretends to be a library.
    std::fs::write(
        plugins.join(format!("garbage{}", std::env::consts::DLL_SUFFIX)),
        "not ELF",
    )
    .unwrap();
    // Real libraries: one without the plugin symbols, one built for another ABI version.
    c_library(&plugins, "no_entry", "int answer(void) { return 42; }\n");
    c_library(
        &plugins,
        "old_abi",
        "unsigned int sluice_plugin_abi_version(void) { return 999; }\n",
    );
    // A second copy of the generator, in a folder sorted after the first: its class is taken.
    std::fs::create_dir_all(plugins.join("zz-copy")).unwrap();
    std::fs::copy(
        plugins.join("generator").join(library_file_name()),
        plugins.join("zz-copy").join(library_file_name()),
    )
    .unwrap();
    std::fs::write(plugins.join("README.md"), "plugins live here\n").unwrap();

    let worker = start_worker(dir.path(), &plugins).await;
    let log = worker.log();
    let skipped_lines = |file: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("skipping plugin library") && l.contains(file))
            .map(str::to_string)
            .collect()
    };
    let expectations = [
        (
            format!("garbage{}", std::env::consts::DLL_SUFFIX),
            "not a loadable shared library",
        ),
        (
            format!("{}no_entry", std::env::consts::DLL_PREFIX),
            "no sluice_plugin_abi_version symbol",
        ),
        (
            format!("{}old_abi", std::env::consts::DLL_PREFIX),
            "built for plugin ABI version 999, but this worker speaks version 1",
        ),
        (
            format!("zz-copy/{}", library_file_name()),
            "declares the connector class 'generator-source', which",
        ),
    ];
    for (file, reason) in &expectations {
        let lines = skipped_lines(file);
        assert_eq!(lines.len(), 1, "one line for {file}:\n{log}");
        assert!(lines[0].contains(reason), "{file}: {}", lines[0]);
        assert!(lines[0].contains("WARN"), "{}", lines[0]);
    }
    assert_eq!(
        log.matches("skipping plugin library").count(),
        expectations.len(),
        "{log}"
    );
    assert!(
        !log.contains("README.md"),
        "non-library files are ignored quietly:\n{log}"
    );
    assert_eq!(log.matches("loaded connector plugin").count(), 1, "{log}");

    // The worker runs, with the built-ins and the first copy of the generator.
    let list = worker.get("/connector-plugins").await;
    let classes: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["class"].as_str())
        .collect();
    assert_eq!(
        classes.iter().filter(|c| **c == "generator-source").count(),
        1,
        "{list}"
    );
    assert!(classes.contains(&"file-source"), "{list}");
    worker.write_config(
        "gen.json",
        &generator_config("gen", "after-bad", json!({"rate": "0", "count": "10"})),
    );
    assert_eq!(
        read(&worker, "after-bad", 10, Duration::from_secs(30))
            .await
            .len(),
        10
    );
}
