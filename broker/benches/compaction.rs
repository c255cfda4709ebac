//! Peak memory and time of compacting a partition with many distinct keys.
//!
//! ```text
//! cargo bench -p sluice-broker --bench compaction
//! options: --keys N (distinct keys, default 10000000), --buffer BYTES
//!          (log_cleaner_dedupe_buffer_size; default: the broker's, 128 MiB),
//!          --data DIR (keep the produced log in DIR and reuse it on the next run)
//! ```
//!
//! A broker (release build, default durability) receives `N` records with distinct keys and
//! 100-byte values, then one more version of every tenth key, through librdkafka, into one
//! partition of a compacted topic with 64 MiB segments. The broker is stopped and a copy of its
//! data dir is compacted by one cleaner round (every pass it needs) in a child process of
//! its own, which reports its resident memory before the round and its peak (`VmHWM`) after:
//! the peak is the broker's storage layer during compaction, with nothing else in the process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use sluice_broker::{Broker, BrokerConfig};

const TOPIC: &str = "bench-compact";
const SEGMENT_BYTES: usize = 64 * 1024 * 1024;

/// A line of `/proc/self/status` in kB (`VmRSS`, `VmHWM`).
fn status_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn config(dir: &Path, buffer: Option<u64>) -> BrokerConfig {
    let mut json = serde_json::json!({
        "listen": "127.0.0.1:0",
        "data_dir": dir,
        "log_cleaner_enable": false,
    });
    if let Some(buffer) = buffer {
        json["log_cleaner_dedupe_buffer_size"] = buffer.into();
    }
    serde_json::from_value(json).unwrap()
}

/// The child: one compaction round over the copy in `dir`, then its memory figures.
fn compact_child(dir: &Path, buffer: Option<u64>) {
    let before = status_kb("VmRSS");
    let (read, rewritten, after, took) =
        sluice_broker::bench_support::compact_partition(config(dir, buffer), TOPIC, 0).unwrap();
    println!(
        "result {before} {} {read} {rewritten} {after} {}",
        status_kb("VmHWM"),
        took.as_secs_f64()
    );
}

fn produce(dir: &Path, keys: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let broker = runtime.block_on(Broker::start(config(dir, None))).unwrap();
    let bootstrap = broker.bootstrap_servers();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    runtime
        .block_on(
            admin.create_topics(
                [&NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))
                    .set("cleanup.policy", "compact")
                    .set("segment.bytes", &SEGMENT_BYTES.to_string())],
                &AdminOptions::new(),
            ),
        )
        .unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "262144")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .unwrap();
    let value = "v".repeat(100);
    let started = Instant::now();
    let updates = (0..keys).step_by(10);
    for i in (0..keys).chain(updates) {
        let key = format!("key-{i:010}");
        let mut record = BaseRecord::<String, String>::to(TOPIC)
            .key(&key)
            .payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(5));
                    record = back;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(600)).unwrap();
    drop(producer);
    runtime.block_on(broker.shutdown()).unwrap();
    println!(
        "produced {} records ({keys} distinct keys) in {:.1} s",
        keys + keys.div_ceil(10),
        started.elapsed().as_secs_f64()
    );
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let buffer: Option<u64> = option("--buffer").map(|b| b.parse().unwrap());
    if args.get(1).map(String::as_str) == Some("--compact-child") {
        compact_child(Path::new(&args[2]), buffer);
        return;
    }
    let keys: usize = option("--keys").map_or(10_000_000, |k| k.parse().unwrap());
    let temp = tempfile::tempdir().unwrap();
    let source: PathBuf =
        option("--data").map_or_else(|| temp.path().join("source"), PathBuf::from);
    if !source.join(format!("{TOPIC}-0")).exists() {
        produce(&source, keys);
    }
    let log_bytes = dir_bytes(&source.join(format!("{TOPIC}-0")));
    let copy = temp.path().join("copy");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&source)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success(), "copying the data dir failed");
    let mut child = Command::new(std::env::current_exe().unwrap());
    child.arg("--compact-child").arg(&copy);
    if let Some(buffer) = buffer {
        child.arg("--buffer").arg(buffer.to_string());
    }
    let output = child.output().unwrap();
    assert!(
        output.status.success(),
        "the compaction child failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("result "))
        .expect("the child's result line");
    let f: Vec<f64> = line.split(' ').map(|v| v.parse().unwrap()).collect();
    let (rss_before_kb, hwm_kb, read, rewritten, after, secs) =
        (f[0], f[1], f[2], f[3], f[4], f[5]);
    println!(
        "compaction of {keys} distinct keys ({:.0} MB of log), dedupe buffer {}: \
         peak RSS {:.1} MiB ({:.1} MiB before the round), {:.1} s; log read {:.1} times \
         ({:.0} MB), {:.0} MB of sealed segments rewritten to {:.0} MB",
        log_bytes as f64 / 1e6,
        buffer.map_or("default (128 MiB)".to_owned(), |b| format!("{b} bytes")),
        hwm_kb / 1024.0,
        rss_before_kb / 1024.0,
        secs,
        read / log_bytes as f64,
        read / 1e6,
        rewritten / 1e6,
        after / 1e6,
    );
}
