//! Plugins as dynamic libraries: the example plugin crates (examples/plugin-source, a source;
//! examples/plugin-sink, a sink; examples/plugin-transform, a transform, a predicate and a
//! converter) are built here with cargo, loaded by real workers from a temporary plugin.path,
//! and run through the embedded broker; broken plugin files must be skipped with one log line
//! each.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::{
    produce, read_lines, read_topic, sluice_bin, wait_for, Consumed, WorkerOptions, WorkerProcess,
};

/// An example plugin crate of `examples/`.
#[derive(Debug, Clone, Copy)]
struct Example {
    /// Its folder in `examples/`.
    folder: &'static str,
    /// Its library's name (`[lib] name`).
    library: &'static str,
}

const SOURCE_EXAMPLE: Example = Example {
    folder: "plugin-source",
    library: "sluice_generator",
};
const SINK_EXAMPLE: Example = Example {
    folder: "plugin-sink",
    library: "sluice_ledger",
};
const TRANSFORM_EXAMPLE: Example = Example {
    folder: "plugin-transform",
    library: "sluice_masking",
};

impl Example {
    /// The library's file name.
    fn file_name(self) -> String {
        format!(
            "{}{}{}",
            std::env::consts::DLL_PREFIX,
            self.library,
            std::env::consts::DLL_SUFFIX
        )
    }
}

/// The source example's library file name.
fn library_file_name() -> String {
    SOURCE_EXAMPLE.file_name()
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the runtime crate sits in the repository")
        .to_path_buf()
}

/// Builds an example plugin once per test run and returns its library.
///
/// The builds get their own target folder beside the test binaries' (`<target>/plugin-example`,
/// wherever CARGO_TARGET_DIR puts `<target>`): cargo locks a target folder while it runs the
/// tests, and the examples are separate workspaces anyway. They share it, so the SDK is
/// compiled once for all of them; later runs reuse it.
fn example_plugin(example: Example) -> PathBuf {
    static BUILT: Mutex<BTreeMap<&'static str, PathBuf>> = Mutex::new(BTreeMap::new());
    // Held during the build: builds share a target folder and would wait for each other anyway.
    let mut built = BUILT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(library) = built.get(example.folder) {
        return library.clone();
    }
    // <target>/debug/sluice -> <target>
    let target = sluice_bin()
        .parent()
        .and_then(Path::parent)
        .expect("the sluice binary sits in <target>/<profile>")
        .join("plugin-example");
    let manifest = repository_root()
        .join("examples")
        .join(example.folder)
        .join("Cargo.toml");
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
        .unwrap_or_else(|e| panic!("run cargo to build examples/{}: {e}", example.folder));
    assert!(
        output.status.success(),
        "building examples/{0} failed (if its Cargo.lock is out of date, run \
         `cargo update --manifest-path examples/{0}/Cargo.toml --workspace`):\n{1}",
        example.folder,
        String::from_utf8_lossy(&output.stderr)
    );
    let library = target.join("debug").join(example.file_name());
    assert!(
        library.is_file(),
        "no {} after the build",
        library.display()
    );
    built.insert(example.folder, library.clone());
    library
}

/// A plugin.path folder with the source example in a subfolder, as users lay plugins out.
async fn plugin_dir(dir: &Path) -> PathBuf {
    plugin_dir_with(dir, &[SOURCE_EXAMPLE]).await
}

/// A plugin.path folder with each of `examples` in a subfolder of its own.
async fn plugin_dir_with(dir: &Path, examples: &[Example]) -> PathBuf {
    let plugins = dir.join("plugins");
    for example in examples {
        let example = *example;
        let library = tokio::task::spawn_blocking(move || example_plugin(example))
            .await
            .unwrap();
        let folder = plugins.join(example.folder);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(&library, folder.join(example.file_name())).unwrap();
    }
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
    // A plugin built for ABI version 1, before transforms, predicates and converters crossed.
    c_library(
        &plugins,
        "abi_v1",
        "unsigned int sluice_plugin_abi_version(void) { return 1; }\n\
         const void *sluice_plugin_entry(const void *host) { return host; }\n",
    );
    // A second copy of the generator, in a folder sorted after the first: its class is taken.
    std::fs::create_dir_all(plugins.join("zz-copy")).unwrap();
    std::fs::copy(
        plugins
            .join(SOURCE_EXAMPLE.folder)
            .join(library_file_name()),
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
            "built for plugin ABI version 999, but this worker speaks version 2",
        ),
        (
            format!("{}abi_v1", std::env::consts::DLL_PREFIX),
            "built for plugin ABI version 1, but this worker speaks version 2; rebuild the plugin against sluice-sdk",
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

/// The record lines of a ledger (the ledger-sink's file), by (partition, offset); a last line
/// the sink is still writing (no line feed yet) is left for the next look.
fn ledger_records(path: &Path) -> BTreeMap<(i32, i64), Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    let mut records: BTreeMap<(i32, i64), Vec<String>> = BTreeMap::new();
    for line in complete.lines().skip(1) {
        let columns: Vec<String> = line.split('\t').map(str::to_string).collect();
        assert_eq!(columns.len(), 5, "a ledger line has five columns: {line}");
        let partition = columns[1].parse().expect("a partition number");
        let offset = columns[2].parse().expect("an offset");
        records.insert((partition, offset), columns);
    }
    records
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_sink_receives_every_record_of_a_topic() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir_with(dir.path(), &[SINK_EXAMPLE]).await;
    let worker = start_worker(dir.path(), &plugins).await;

    let list = worker.get("/connector-plugins").await;
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["class"] == "ledger-sink")
        .unwrap_or_else(|| panic!("the sink class is listed: {list}\n{}", worker.log()))
        .clone();
    assert_eq!(entry["type"], "sink");
    assert_eq!(
        entry["aliases"],
        json!(["com.example.sluice.LedgerSinkConnector"])
    );
    // The plugin's options and the worker's sink options (topics) are validated together.
    let (code, body) = worker
        .request(
            Method::PUT,
            "/connectors/no-file/config",
            Some(&json!({"connector.class": "ledger-sink", "topics": "t"})),
        )
        .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("file"),
        "{body}"
    );

    const COUNT: usize = 1000;
    let values: Vec<Vec<u8>> = (0..COUNT)
        .map(|n| {
            json!({"n": n, "text": format!("record\t{n}")})
                .to_string()
                .into_bytes()
        })
        .collect();
    produce(&worker.bootstrap(), "ledger-in", &values).await;

    let ledger = dir.path().join("out.ledger");
    worker.write_config(
        "ledger.json",
        &json!({"name": "ledger", "config": {
            "connector.class": "com.example.sluice.LedgerSinkConnector",
            "topics": "ledger-in",
            "file": ledger,
            "key.converter": "string",
            "value.converter": "json",
            "value.converter.schemas.enable": "false",
        }}),
    );
    let records = wait_for(
        Duration::from_secs(60),
        "every record in the ledger",
        || async {
            let records = ledger_records(&ledger);
            (records.len() >= COUNT).then_some(records)
        },
    )
    .await;
    assert_eq!(
        read_lines(&ledger).first().map(String::as_str),
        Some("# sluice ledger v1")
    );
    let offsets: Vec<(i32, i64)> = records.keys().copied().collect();
    assert_eq!(
        offsets,
        (0..COUNT as i64).map(|o| (0, o)).collect::<Vec<_>>(),
        "every offset of the topic's one partition, none twice"
    );
    for ((_, offset), columns) in &records {
        assert_eq!(columns[0], "ledger-in");
        assert_eq!(columns[3], "null", "no key");
        let value: Value = serde_json::from_str(&columns[4]).expect("a JSON value");
        assert_eq!(
            value,
            json!({"n": offset, "text": format!("record\t{offset}")}),
            "the value as produced (its tab escaped by JSON)"
        );
    }
    // The sink flushed, then the worker committed the consumer offsets after the last record.
    wait_for(
        Duration::from_secs(30),
        "the sink's committed offset",
        || async {
            let body = worker.get("/connectors/ledger/offsets").await;
            let committed = body["offsets"]
                .as_array()?
                .iter()
                .find(|o| o["partition"]["kafka_partition"] == 0)?["offset"]["kafka_offset"]
                .as_i64()?;
            (committed == COUNT as i64).then_some(())
        },
    )
    .await;
    assert!(
        worker.log().contains("ledger task started"),
        "{}",
        worker.log()
    );
    let (state, _) = worker.task_state("ledger", 0).await.expect("a task");
    assert_eq!(state, "RUNNING");
}

/// Decodes the hexadecimal text the HexConverter writes.
fn from_hex(text: &[u8]) -> String {
    let text = std::str::from_utf8(text).expect("hex text is ASCII");
    let bytes: Vec<u8> = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect();
    String::from_utf8(bytes).expect("UTF-8 lines")
}

#[tokio::test(flavor = "multi_thread")]
async fn plugin_transform_predicate_and_converter_rewrite_a_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugin_dir_with(dir.path(), &[TRANSFORM_EXAMPLE]).await;
    let worker = start_worker(dir.path(), &plugins).await;

    // Listed with Kafka Connect's plugin types, their options served like the built-ins'.
    let list = worker.get("/connector-plugins?connectorsOnly=false").await;
    let type_of = |class: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["class"] == class)
            .map(|p| p["type"].clone())
    };
    for (class, kind) in [
        ("com.example.sluice.MaskDigits$Value", "transformation"),
        ("com.example.sluice.MaskDigits$Key", "transformation"),
        ("com.example.sluice.ValueContains", "predicate"),
        ("com.example.sluice.HexConverter", "converter"),
        ("org.apache.kafka.connect.json.JsonConverter", "converter"),
    ] {
        assert_eq!(type_of(class), Some(json!(kind)), "{class}: {list}");
    }
    let names = |config: Value| -> Vec<String> {
        config
            .as_array()
            .unwrap_or_else(|| panic!("{config}"))
            .iter()
            .filter_map(|k| k["name"].as_str().map(str::to_string))
            .collect()
    };
    assert_eq!(
        names(
            worker
                .get("/connector-plugins/com.example.sluice.MaskDigits%24Value/config")
                .await
        ),
        ["fields", "keep.last", "mask.char"]
    );
    assert_eq!(
        names(worker.get("/connector-plugins/hex/config").await),
        ["uppercase"]
    );

    // Bad options are config errors naming alias and option, when the connector is
    // validated: declared options checked by the worker, custom validators in the plugin.
    let input = dir.path().join("cards.txt");
    std::fs::write(
        &input,
        "order 1 card 4111 1111 1111 1234\nnote 42 has no secrets\norder 2 card 5500-0000-0000-0004\n",
    )
    .unwrap();
    let pipeline = |extra: Value| {
        let mut config = json!({
            "connector.class": "file-source", "file": input, "topic": "masked",
            "value.converter": "com.example.sluice.HexConverter",
            "value.converter.uppercase": "true",
            "transforms": "mask",
            "transforms.mask.type": "com.example.sluice.MaskDigits$Value",
            "transforms.mask.predicate": "hasCard",
            "predicates": "hasCard",
            "predicates.hasCard.type": "ValueContains",
            "predicates.hasCard.text": "card",
        });
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        config
    };
    for (extra, expected) in [
        (
            json!({"transforms.mask.mask.char": "**"}),
            "option 'transforms.mask.mask.char' must be exactly one character (got '**')",
        ),
        (
            json!({"transforms.mask.keep.lst": "2"}),
            "option 'transforms.mask.keep.lst' is not an option of MaskDigits$Value (alias 'mask')",
        ),
        (
            json!({"transforms.mask.keep.last": "-1"}),
            "option 'transforms.mask.keep.last' must be at least 0",
        ),
        (
            json!({"predicates.hasCard.text": ""}),
            "option 'predicates.hasCard.text'",
        ),
        (
            json!({"transforms.mask.type": "com.example.sluice.Nope"}),
            "option 'transforms.mask.type' names a transform sluice does not have ('com.example.sluice.Nope')",
        ),
        (
            json!({"value.converter.upper": "true"}),
            "option 'value.converter.upper' is not an option of the converter com.example.sluice.HexConverter",
        ),
    ] {
        let (code, body) = worker
            .request(Method::PUT, "/connectors/bad/config", Some(&pipeline(extra)))
            .await;
        assert_eq!(code, 400, "{body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "missing «{expected}» in: {message}");
    }

    // file source -> the plugin's predicate and transform -> the plugin's converter -> topic.
    worker.write_config(
        "masked.json",
        &json!({"name": "masked", "config": pipeline(json!({}))}),
    );
    let records = read(&worker, "masked", 3, Duration::from_secs(60)).await;
    assert_eq!(records.len(), 3, "{}", worker.log());
    let raw = records[0].value.clone().expect("a value");
    assert!(
        raw.iter()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b)),
        "upper-case hex text: {}",
        String::from_utf8_lossy(&raw)
    );
    let lines: Vec<String> = records
        .iter()
        .map(|r| from_hex(r.value.as_deref().expect("a value")))
        .collect();
    assert_eq!(
        lines,
        [
            "order * card **** **** **** 1234",
            "note 42 has no secrets",
            "order * card ****-****-****-0004",
        ]
    );

    // A record the transform cannot handle fails the task with the plugin's message.
    worker.write_config(
        "unmaskable.json",
        &json!({"name": "unmaskable", "config": pipeline(json!({
            "topic": "unmaskable", "transforms.mask.fields": "card",
        }))}),
    );
    let failed = worker.wait_for_task_state("unmaskable", 0, "FAILED").await;
    let trace = failed["trace"].as_str().unwrap_or_default();
    assert!(
        trace.contains("stage TRANSFORMATION (com.example.sluice.MaskDigits$Value)")
            && trace
                .contains("MaskDigits with fields needs a struct or map as the value, not string"),
        "{failed}"
    );
    // The other connector, and the worker, are unaffected.
    let (state, _) = worker.task_state("masked", 0).await.expect("a task");
    assert_eq!(state, "RUNNING");
}
