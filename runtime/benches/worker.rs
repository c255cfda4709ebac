//! Worker benchmarks, run with `cargo bench -p sluice-runtime --bench worker`:
//!
//! 1. file source -> broker -> file sink throughput for 100-byte lines (lines/s, MB/s);
//! 2. resident memory of an idle worker (embedded broker included) running five connectors;
//! 3. time from starting the worker to the first record written by a sink;
//! 4. many connectors: `SLUICE_BENCH_PIPELINES` file pipelines (default 200, i.e. 400
//!    connectors) — threads and resident memory once every pipeline has delivered, and the
//!    time a SIGINT takes to stop them all.
//!
//! 5. only with `SLUICE_BENCH_ONLY=console` (it needs Debian's `chromium` and
//!    `chromium-driver`): the throughput run in `SLUICE_BENCH_ROUNDS` alternating rounds
//!    (default 3) with the console closed and with it open in a headless Chromium (the
//!    connectors page and the sink's page, both polling the worker), and the ratio.
//!
//! 6. only with `SLUICE_BENCH_ONLY=sink`: the file sink alone. The lines are produced into the
//!    worker's embedded broker first (by a librdkafka producer in this process), then the
//!    sink is configured and timed from its first line in the file to the last.
//!
//! Each scenario runs the release `sluice` binary as a real process, as a user would
//! (`SLUICE_BENCH_BINARY` runs another build instead, to compare two builds in the same
//! conditions). `SLUICE_BENCH_LINES` sets the line count of the throughput runs (default
//! 2,000,000); the file source runs with its default options unless `SLUICE_BENCH_BATCH_SIZE`
//! sets its `batch.size`. `SLUICE_BENCH_ONLY` (`first`, `idle`, `throughput`, `many`,
//! `console`, `sink`) runs one scenario. The throughput and sink runs report the worker's peak
//! resident memory (`VmHWM`) and its CPU seconds (user and system) per million lines.

#[path = "support/proc_stats.rs"]
#[allow(dead_code)]
mod proc_stats;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

mod browser;

use browser::{free_port, wait_until, Chromium};

struct Worker {
    child: Child,
    rest_port: u16,
    broker_port: u16,
}

/// The `sluice` binary to run: this build's, or `SLUICE_BENCH_BINARY`.
fn binary() -> PathBuf {
    std::env::var_os("SLUICE_BENCH_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sluice")))
}

impl Worker {
    fn start(dir: &Path) -> Self {
        let log = std::fs::File::create(dir.join("worker.log")).unwrap();
        let rest_port = free_port();
        let broker_port = free_port();
        let child = Command::new(binary())
            .arg("worker")
            .current_dir(dir)
            .env("SLUICE_REST_PORT", rest_port.to_string())
            .env("SLUICE_BROKER_LISTEN", format!("127.0.0.1:{broker_port}"))
            .env("SLUICE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        Self {
            child,
            rest_port,
            broker_port,
        }
    }

    fn rss_kib(&self) -> u64 {
        self.status_field("VmRSS:")
    }

    /// The most resident memory the process has had.
    fn peak_rss_kib(&self) -> u64 {
        self.status_field("VmHWM:")
    }

    /// CPU seconds (user and system, all threads) the process has used so far.
    fn cpu_seconds(&self) -> f64 {
        proc_stats::pid_cpu_seconds(self.child.id())
    }

    fn threads(&self) -> u64 {
        self.status_field("Threads:")
    }

    fn status_field(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_pipeline(dir: &Path, name: &str, input: &Path, output: &Path) {
    let configs = dir.join("configs");
    std::fs::create_dir_all(&configs).unwrap();
    let mut source = serde_json::json!({"name": format!("{name}-source"), "config": {
        "connector.class": "file-source", "file": input, "topic": name,
        "value.converter": "string"}});
    if let Ok(batch) = std::env::var("SLUICE_BENCH_BATCH_SIZE") {
        source["config"]["batch.size"] = json!(batch);
    }
    let sink = sink_config(name, output);
    std::fs::write(
        configs.join(format!("{name}-source.json")),
        source.to_string(),
    )
    .unwrap();
    std::fs::write(configs.join(format!("{name}-sink.json")), sink.to_string()).unwrap();
}

fn sink_config(name: &str, output: &Path) -> serde_json::Value {
    json!({"name": format!("{name}-sink"), "config": {
        "connector.class": "file-sink", "file": output, "topics": name, "value.converter": "string"}})
}

fn count_lines(path: &Path) -> usize {
    std::fs::read(path).map(|b| bytecount(&b)).unwrap_or(0)
}

/// Counts the lines of a growing file incrementally.
#[derive(Default)]
struct LineCounter {
    file: Option<std::fs::File>,
    lines: usize,
    buf: Vec<u8>,
}

impl LineCounter {
    fn count(&mut self, path: &Path) -> usize {
        use std::io::Read;
        if self.file.is_none() {
            self.file = std::fs::File::open(path).ok();
        }
        if let Some(file) = &mut self.file {
            self.buf.resize(1 << 20, 0);
            loop {
                match file.read(&mut self.buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => self.lines += bytecount(&self.buf[..n]),
                }
            }
        }
        self.lines
    }
}

fn bytecount(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `lines` lines of 100 bytes (99 characters and the newline).
fn write_input(path: &Path, lines: usize) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in 0..lines {
        writeln!(f, "{i:010} {}", "x".repeat(88)).unwrap();
    }
    f.flush().unwrap();
}

/// Waits until the sink wrote `lines` lines to `output`; returns when the first and the
/// last arrived, counted from `started`.
fn wait_for_lines(output: &Path, lines: usize, started: Instant) -> (Duration, Duration) {
    let mut first = None;
    let deadline = started + Duration::from_secs(600);
    // Reads only what the sink appended since the last look: re-reading the whole output
    // every 20 ms would take a good part of a core from the worker being measured.
    let mut counter = LineCounter::default();
    loop {
        let n = counter.count(output);
        if n > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        if n >= lines {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {lines} lines after 600 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let total = started.elapsed();
    (first.unwrap_or(total), total)
}

/// Lines per second from the first line to the last.
fn streaming_rate(lines: usize, (first, total): (Duration, Duration)) -> f64 {
    lines as f64 / (total - first).as_secs_f64()
}

fn throughput(lines: usize) {
    let dir = tempdir("throughput");
    let input = dir.join("input.txt");
    let output = dir.join("output.txt");
    write_input(&input, lines);
    write_pipeline(&dir, "bench", &input, &output);
    let started = Instant::now();
    let worker = Worker::start(&dir);
    let (first, total) = wait_for_lines(&output, lines, started);
    let rate = streaming_rate(lines, (first, total));
    let (peak, cpu) = (worker.peak_rss_kib(), worker.cpu_seconds());
    println!(
        "file -> broker -> file, {lines} lines of 100 bytes: {:.0} lines/s, {:.1} MB/s (first line after {:.0} ms, all after {:.2} s); worker peak RSS {:.1} MB, {:.2} CPU-s per million lines (start to last line)",
        rate,
        rate * 100.0 / 1e6,
        first.as_secs_f64() * 1000.0,
        total.as_secs_f64(),
        peak as f64 / 1024.0,
        cpu * 1e6 / lines as f64,
    );
    drop(worker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Produces `lines` lines like [`write_input`]'s (without the newline) to `topic`.
fn fill_topic(bootstrap: &str, topic: &str, lines: usize) {
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "200000")
        .create()
        .expect("producer");
    let filler = "x".repeat(88);
    for i in 0..lines {
        let line = format!("{i:010} {filler}");
        let mut record = BaseRecord::<(), _>::to(topic).payload(&line);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
}

/// The file sink alone: the topic holds every line before the sink is configured.
fn sink_alone(lines: usize) {
    let dir = tempdir("sink");
    std::fs::create_dir_all(dir.join("configs")).unwrap();
    let output = dir.join("output.txt");
    let worker = Worker::start(&dir);
    let bootstrap = format!("127.0.0.1:{}", worker.broker_port);
    let filled = Instant::now();
    fill_topic(&bootstrap, "bench", lines);
    let fill = filled.elapsed();
    let cpu_before = worker.cpu_seconds();
    let tmp = dir.join("sink.json.tmp");
    std::fs::write(&tmp, sink_config("bench", &output).to_string()).unwrap();
    let started = Instant::now();
    std::fs::rename(&tmp, dir.join("configs").join("bench-sink.json")).unwrap();
    let (first, total) = wait_for_lines(&output, lines, started);
    let rate = streaming_rate(lines, (first, total));
    let cpu = worker.cpu_seconds() - cpu_before;
    println!(
        "topic -> file sink, {lines} lines of 100 bytes already in the topic (produced in {:.1} s): {:.0} lines/s, {:.1} MB/s (first line {:.0} ms after the config, all after {:.2} s); worker peak RSS {:.1} MB, {:.2} CPU-s per million lines (config to last line)",
        fill.as_secs_f64(),
        rate,
        rate * 100.0 / 1e6,
        first.as_secs_f64() * 1000.0,
        total.as_secs_f64(),
        worker.peak_rss_kib() as f64 / 1024.0,
        cpu * 1e6 / lines as f64,
    );
    drop(worker);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Counts the requests a page has made so far (its resource timing entries).
const REQUESTS_SO_FAR: &str = "return performance.getEntriesByType('resource').length";

/// Opens the console's connectors page, then the sink's connector page in a second window,
/// and waits until both show the running pipeline. Returns the browser and each window's
/// handle with its request count so far.
async fn open_console(
    base: &str,
    profile: &Path,
) -> (Chromium, Vec<(fantoccini::wd::WindowHandle, u64)>) {
    let chromium = Chromium::start(profile).await;
    let client = &chromium.client;
    let pages = [
        (
            "#/connectors",
            "return document.querySelectorAll('#connectors tbody tr').length === 2",
        ),
        (
            "#/connector/bench-sink",
            "return (document.getElementById('connector-state') || {textContent: ''}).textContent.startsWith('RUNNING') && document.querySelectorAll('#rates svg').length === 2",
        ),
    ];
    let mut windows = Vec::new();
    for (i, (page, ready)) in pages.into_iter().enumerate() {
        if i > 0 {
            // A window, not a tab: a background tab's timers may be throttled.
            let window = client.new_window(false).await.unwrap();
            client.switch_to_window(window.handle).await.unwrap();
        }
        client.goto(&format!("{base}/ui/{page}")).await.unwrap();
        wait_until(Duration::from_secs(60), page, || {
            let client = client.clone();
            async move { client.execute(ready, vec![]).await.ok() == Some(json!(true)) }
        })
        .await;
        let requests = client.execute(REQUESTS_SO_FAR, vec![]).await.unwrap();
        windows.push((client.window().await.unwrap(), requests.as_u64().unwrap()));
    }
    (chromium, windows)
}

/// The throughput scenario in alternating rounds, with no browser and with the console
/// open in headless Chromium for the whole run. The source is configured before its file
/// exists, so the worker (and the console) are up before the first line; the input is then
/// hard-linked into place, so every round reads the same file and none waits for a copy.
fn console_throughput(lines: usize, rounds: usize) {
    let dir = tempdir("console");
    let input = dir.join("input.txt");
    write_input(&input, lines);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let http = reqwest::Client::new();
    let (mut closed, mut open) = (Vec::new(), Vec::new());
    let (mut closed_cpu, mut open_cpu) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for console in [false, true] {
            let run = dir.join(format!("round-{round}-{console}"));
            std::fs::create_dir_all(&run).unwrap();
            let source_file = run.join("input.txt");
            let output = run.join("output.txt");
            write_pipeline(&run, "bench", &source_file, &output);
            let worker = Worker::start(&run);
            let base = format!("http://127.0.0.1:{}", worker.rest_port);
            runtime.block_on(wait_until(Duration::from_secs(60), "the REST API", || {
                let request = http.get(format!("{base}/connectors")).send();
                async move { request.await.is_ok_and(|r| r.status().is_success()) }
            }));
            let browser =
                console.then(|| runtime.block_on(open_console(&base, &run.join("profile"))));
            let cpu_before = worker.cpu_seconds();
            std::fs::hard_link(&input, &source_file).unwrap();
            let timing = wait_for_lines(&output, lines, Instant::now());
            let rate = streaming_rate(lines, timing);
            // The worker's own CPU per million lines: what serving the console costs the
            // worker, apart from the browser competing with it for the two cores.
            let cpu = (worker.cpu_seconds() - cpu_before) * 1e6 / lines as f64;
            let mut requests = Vec::new();
            if let Some((chromium, windows)) = browser {
                runtime.block_on(async {
                    for (window, before) in windows {
                        chromium.client.switch_to_window(window).await.unwrap();
                        let now = chromium
                            .client
                            .execute(REQUESTS_SO_FAR, vec![])
                            .await
                            .unwrap();
                        requests.push(now.as_u64().unwrap() - before);
                    }
                    chromium.close().await;
                });
            }
            drop(worker);
            let seconds = (timing.1 - timing.0).as_secs_f64();
            if console {
                println!(
                    "round {round}, console open:   {rate:.0} lines/s over {seconds:.1} s, worker {cpu:.2} CPU-s per million lines (requests meanwhile: connectors page {}, sink's page {})",
                    requests[0], requests[1]
                );
                open.push(rate);
                open_cpu.push(cpu);
            } else {
                println!(
                    "round {round}, console closed: {rate:.0} lines/s over {seconds:.1} s, worker {cpu:.2} CPU-s per million lines"
                );
                closed.push(rate);
                closed_cpu.push(cpu);
            }
            let _ = std::fs::remove_dir_all(&run);
        }
    }
    let best = |rates: &[f64]| rates.iter().copied().fold(f64::MIN, f64::max);
    let worst = |rates: &[f64]| rates.iter().copied().fold(f64::MAX, f64::min);
    println!(
        "file -> broker -> file, {lines} lines of 100 bytes, {rounds} rounds each: console closed best {:.0} lines/s ({:.0}-{:.0}), console open best {:.0} lines/s ({:.0}-{:.0}); open / closed {:.3} (best to best)",
        best(&closed),
        worst(&closed),
        best(&closed),
        best(&open),
        worst(&open),
        best(&open),
        best(&open) / best(&closed)
    );
    println!(
        "worker CPU-s per million lines: console closed {:.2}-{:.2}, console open {:.2}-{:.2}",
        worst(&closed_cpu),
        best(&closed_cpu),
        worst(&open_cpu),
        best(&open_cpu)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn idle_memory() {
    let dir = tempdir("idle");
    for i in 0..2 {
        let input = dir.join(format!("in-{i}.txt"));
        std::fs::write(&input, "one line\n").unwrap();
        write_pipeline(
            &dir,
            &format!("idle{i}"),
            &input,
            &dir.join(format!("out-{i}.txt")),
        );
    }
    // A fifth connector: a source with no sink.
    let input = dir.join("in-extra.txt");
    std::fs::write(&input, "").unwrap();
    std::fs::write(
        dir.join("configs").join("extra.json"),
        serde_json::json!({"name": "extra", "config": {"connector.class": "file-source", "file": input, "topic": "extra"}}).to_string(),
    )
    .unwrap();
    let worker = Worker::start(&dir);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_lines(&dir.join("out-0.txt")) < 1 || count_lines(&dir.join("out-1.txt")) < 1 {
        assert!(
            Instant::now() < deadline,
            "the idle pipelines did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(10));
    println!(
        "idle worker with 5 connectors (embedded broker included): {:.1} MB resident",
        worker.rss_kib() as f64 / 1024.0
    );
    drop(worker);
    let _ = std::fs::remove_dir_all(&dir);

    // The default embedded setup: `sluice worker` with the shipped configs/ (the quick-start
    // file pipeline, paths relative to the working directory).
    let dir = tempdir("idle-default");
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    std::fs::create_dir_all(dir.join("configs")).unwrap();
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::copy(&path, dir.join("configs").join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("output")).unwrap();
    std::fs::write(dir.join("output/quickstart-input.txt"), "one line\n").unwrap();
    let worker = Worker::start(&dir);
    let output = dir.join("output/quickstart-lines.txt");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_lines(&output) < 1 {
        assert!(
            Instant::now() < deadline,
            "the quick-start pipeline did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(10));
    println!(
        "idle worker with the shipped configs/ (the quick-start pipeline, embedded broker and registry included): {:.1} MB resident",
        worker.rss_kib() as f64 / 1024.0
    );
    drop(worker);
    let _ = std::fs::remove_dir_all(&dir);
}

fn first_record() {
    let mut samples = Vec::new();
    for run in 0..5 {
        let dir = tempdir(&format!("first-{run}"));
        let input = dir.join("input.txt");
        std::fs::write(&input, "hello\n").unwrap();
        let output = dir.join("output.txt");
        write_pipeline(&dir, "first", &input, &output);
        let started = Instant::now();
        let _worker = Worker::start(&dir);
        let deadline = started + Duration::from_secs(60);
        while count_lines(&output) < 1 {
            assert!(Instant::now() < deadline, "no record within 60 s");
            std::thread::sleep(Duration::from_millis(1));
        }
        samples.push(started.elapsed());
        let _ = std::fs::remove_dir_all(&dir);
    }
    samples.sort();
    println!(
        "start to first record written (fresh data dir, 5 runs): median {:.0} ms, min {:.0} ms, max {:.0} ms",
        samples[2].as_secs_f64() * 1000.0,
        samples[0].as_secs_f64() * 1000.0,
        samples[4].as_secs_f64() * 1000.0
    );
}

fn many_connectors(pipelines: usize) {
    let dir = tempdir("many");
    for i in 0..pipelines {
        let input = dir.join(format!("in-{i}.txt"));
        std::fs::write(&input, "one line\ntwo lines\n").unwrap();
        write_pipeline(
            &dir,
            &format!("many{i}"),
            &input,
            &dir.join(format!("out-{i}.txt")),
        );
    }
    let started = Instant::now();
    let mut worker = Worker::start(&dir);
    let deadline = started + Duration::from_secs(600);
    let mut done = 0;
    while done < pipelines {
        assert!(
            Instant::now() < deadline,
            "only {done} of {pipelines} pipelines delivered in 600 s"
        );
        done = (0..pipelines)
            .filter(|i| count_lines(&dir.join(format!("out-{i}.txt"))) >= 2)
            .count();
        std::thread::sleep(Duration::from_millis(200));
    }
    let delivered = started.elapsed();
    std::thread::sleep(Duration::from_secs(5));
    let (threads, rss) = (worker.threads(), worker.rss_kib());
    let connectors = 2 * pipelines;
    println!(
        "{connectors} connectors ({pipelines} file pipelines): all delivered {:.1} s after start; {threads} threads, {:.0} MB resident ({:.2} MB and {:.1} threads per connector)",
        delivered.as_secs_f64(),
        rss as f64 / 1024.0,
        rss as f64 / 1024.0 / connectors as f64,
        threads as f64 / connectors as f64,
    );
    let stop = Instant::now();
    let _ = Command::new("kill")
        .args(["-INT", &worker.child.id().to_string()])
        .status();
    let status = loop {
        if let Some(status) = worker.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            stop.elapsed() < Duration::from_secs(120),
            "no exit 120 s after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    println!(
        "{connectors} connectors: SIGINT to exit {:.2} s ({status})",
        stop.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    // `cargo test --benches` runs this with --bench absent; only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let lines = std::env::var("SLUICE_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000);
    let pipelines = std::env::var("SLUICE_BENCH_PIPELINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let only = std::env::var("SLUICE_BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only == name;
    if run("first") {
        first_record();
    }
    if run("idle") {
        idle_memory();
    }
    if run("throughput") {
        throughput(lines);
    }
    if run("many") {
        many_connectors(pipelines);
    }
    if only == "sink" {
        sink_alone(lines);
    }
    if only == "console" {
        let rounds = std::env::var("SLUICE_BENCH_ROUNDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3);
        console_throughput(lines, rounds);
    }
}
