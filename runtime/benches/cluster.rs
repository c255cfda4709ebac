//! Worker groups measured with real processes: a `sluice broker` and several `sluice worker`s
//! sharing one `group.id` on loopback ports (issue 17's benchmarks).
//!
//! - `recovery`: three workers run three file sources. The worker running one of them is
//!   killed with SIGKILL (a follower first, then the leader), a marker line is appended to that
//!   source's input at once, and the time until the marker is in the topic is printed. Run
//!   with the worker's default group settings and with short ones.
//! - `join`: three workers run six file pipelines (twelve connectors); a fourth worker starts.
//!   Printed: the time from its start to its first RUNNING task, how many tasks moved to it,
//!   and the task and connector starts the join caused on the other three (aim: none).
//! - `sink`: a file sink with `tasks.max=6` over a topic of six partitions that already holds
//!   the lines, on one worker and on three: lines/s and the workers' CPU seconds.
//!
//! ```text
//! cargo bench -p sluice-runtime --bench cluster                       # everything
//! SLUICE_BENCH_ONLY=join cargo bench -p sluice-runtime --bench cluster
//! SLUICE_BENCH_LINES=600000 SLUICE_BENCH_ONLY=sink cargo bench -p sluice-runtime --bench cluster
//! ```

#[path = "support/proc_stats.rs"]
#[allow(dead_code)]
mod proc_stats;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;
use serde_json::{json, Value};

const GROUP: &str = "bench";
const EPOCH: &str = "kafka_connect_connect_worker_rebalance_metrics_epoch";
const LEADER_NAME: &str = "kafka_connect_connect_worker_rebalance_metrics_leader_name";
const TASK_STARTS: &str = "kafka_connect_connect_worker_metrics_task_startup_attempts_total";
const CONNECTOR_STARTS: &str =
    "kafka_connect_connect_worker_metrics_connector_startup_attempts_total";

/// The `sluice` binary to run: this build's, or `SLUICE_BENCH_BINARY`.
fn binary() -> PathBuf {
    std::env::var_os("SLUICE_BENCH_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sluice")))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process, killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    /// CPU seconds (user and system, all threads) the process has used so far.
    fn cpu_seconds(&self) -> f64 {
        proc_stats::pid_cpu_seconds(self.0.id())
    }
}

/// Group settings of the workers (`None`: the worker's default).
#[derive(Clone, Copy)]
struct GroupSettings {
    session_timeout_ms: Option<u64>,
    heartbeat_interval_ms: Option<u64>,
    delay_ms: Option<u64>,
}

impl GroupSettings {
    const DEFAULTS: Self = Self {
        session_timeout_ms: None,
        heartbeat_interval_ms: None,
        delay_ms: None,
    };

    fn describe(&self) -> String {
        let show = |v: Option<u64>| v.map_or("default".to_string(), |v| v.to_string());
        format!(
            "session.timeout.ms={} heartbeat.interval.ms={} scheduled.rebalance.max.delay.ms={}",
            show(self.session_timeout_ms),
            show(self.heartbeat_interval_ms),
            show(self.delay_ms)
        )
    }
}

struct Cluster {
    dir: PathBuf,
    broker: String,
    settings: GroupSettings,
    workers: Vec<Option<Worker>>,
    http: reqwest::Client,
    _broker: Proc,
}

struct Worker {
    proc: Proc,
    port: u16,
    started: Instant,
}

impl Worker {
    fn id(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Cluster {
    async fn start(name: &str, workers: usize, settings: GroupSettings) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "sluice-bench-cluster-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let broker = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.join("broker.log")).unwrap();
        let child = Command::new(binary())
            .args([
                "broker",
                "--schema-registry-listen=",
                "--listen",
                &broker,
                "--data-dir",
            ])
            .arg(dir.join("broker"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start sluice broker");
        let broker_proc = Proc(child);
        wait(Duration::from_secs(30), "the broker to listen", || async {
            tokio::net::TcpStream::connect(&broker).await.ok()
        })
        .await;
        let mut cluster = Self {
            dir,
            broker,
            settings,
            workers: Vec::new(),
            http: reqwest::Client::new(),
            _broker: broker_proc,
        };
        for _ in 0..workers {
            cluster.add_worker().await;
        }
        cluster.settle().await;
        cluster
    }

    /// Starts one more worker and waits until its REST API answers; returns its index.
    async fn add_worker(&mut self) -> usize {
        let index = self.workers.len();
        let dir = self.dir.join(format!("w{index}"));
        std::fs::create_dir_all(dir.join("configs")).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("worker.log")).unwrap();
        let mut cmd = Command::new(binary());
        cmd.arg("worker")
            .current_dir(&dir)
            .env("SLUICE_BOOTSTRAP_SERVERS", &self.broker)
            .env("SLUICE_GROUP_ID", GROUP)
            .env("SLUICE_REST_PORT", port.to_string())
            .env("SLUICE_SCHEMA_REGISTRY_LISTEN", "")
            .env("SLUICE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let s = self.settings;
        for (key, value) in [
            ("SLUICE_SESSION_TIMEOUT_MS", s.session_timeout_ms),
            ("SLUICE_HEARTBEAT_INTERVAL_MS", s.heartbeat_interval_ms),
            ("SLUICE_SCHEDULED_REBALANCE_MAX_DELAY_MS", s.delay_ms),
        ] {
            if let Some(v) = value {
                cmd.env(key, v.to_string());
            }
        }
        let started = Instant::now();
        let proc = Proc(cmd.spawn().expect("start sluice worker"));
        let url = format!("http://127.0.0.1:{port}/");
        let http = self.http.clone();
        wait(Duration::from_secs(60), "a worker's REST API", || async {
            http.get(&url)
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success())
        })
        .await;
        self.workers.push(Some(Worker {
            proc,
            port,
            started,
        }));
        index
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Worker)> {
        self.workers
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.as_ref().map(|w| (i, w)))
    }

    async fn get(&self, worker: &Worker, path: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}{path}", worker.port);
        self.http.get(url).send().await.ok()?.json().await.ok()
    }

    async fn metrics(&self, worker: &Worker) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", worker.port);
        match self.http.get(url).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn metric(&self, worker: &Worker, name: &str) -> f64 {
        let text = self.metrics(worker).await;
        text.lines()
            .find(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// (leader, epoch) as `worker` reports them.
    async fn leader_of(&self, worker: &Worker) -> Option<(String, String)> {
        let text = self.metrics(worker).await;
        let leader = text
            .lines()
            .find(|l| l.starts_with(&format!("{LEADER_NAME}{{")))?
            .split("leader_name=\"")
            .nth(1)?
            .split('"')
            .next()?
            .to_string();
        let epoch = text
            .lines()
            .find(|l| l.starts_with(&format!("{EPOCH} ")))?
            .rsplit_once(' ')?
            .1
            .to_string();
        Some((leader, epoch))
    }

    /// Waits until every live worker reports the same leader and epoch; returns the leader.
    async fn settle(&self) -> String {
        wait(
            Duration::from_secs(120),
            "the workers to agree on one generation",
            || async {
                let mut seen = std::collections::BTreeSet::new();
                for (_, w) in self.live() {
                    seen.insert(self.leader_of(w).await?);
                }
                (seen.len() == 1).then(|| seen.into_iter().next().unwrap().0)
            },
        )
        .await
    }

    async fn create(&self, name: &str, config: Value) {
        let (_, w) = self.live().next().expect("a live worker");
        let url = format!("http://127.0.0.1:{}/connectors", w.port);
        let body = json!({"name": name, "config": config});
        wait(
            Duration::from_secs(60),
            "the connector to be created",
            || async {
                let r = self.http.post(&url).json(&body).send().await.ok()?;
                (r.status().as_u16() == 201).then_some(())
            },
        )
        .await;
    }

    /// `connector-task` of every RUNNING task, by the worker id that runs it.
    async fn running(&self) -> BTreeMap<String, Vec<String>> {
        let Some((_, w)) = self.live().next() else {
            return BTreeMap::new();
        };
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let body = self
            .get(w, "/connectors?expand=status")
            .await
            .unwrap_or_default();
        for (name, c) in body.as_object().into_iter().flatten() {
            for t in c["status"]["tasks"].as_array().into_iter().flatten() {
                if t["state"] == "RUNNING" {
                    let worker = t["worker_id"].as_str().unwrap_or_default().to_string();
                    out.entry(worker)
                        .or_default()
                        .push(format!("{name}-{}", t["id"]));
                }
            }
        }
        out
    }

    /// Waits until `tasks` tasks run and every live worker runs one at least.
    async fn spread(&self, tasks: usize) -> BTreeMap<String, Vec<String>> {
        let live = self.live().count();
        wait(
            Duration::from_secs(120),
            "the tasks to be spread",
            || async {
                let running = self.running().await;
                let total: usize = running.values().map(Vec::len).sum();
                (total == tasks && running.len() == live).then_some(running)
            },
        )
        .await
    }

    fn index_of(&self, worker_id: &str) -> usize {
        self.live()
            .find(|(_, w)| w.id() == worker_id)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("{worker_id} is no live worker"))
    }

    fn sigkill(&mut self, index: usize) {
        if let Some(w) = self.workers[index].take() {
            drop(w.proc);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.workers.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn wait<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// Reads `topics` from the start in a thread and keeps the time each value was first seen.
struct Watcher {
    seen: Arc<Mutex<BTreeMap<String, Instant>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Watcher {
    fn start(bootstrap: &str, topics: &[&str]) -> Self {
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", format!("bench-watch-{}", std::process::id()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .set("topic.metadata.refresh.interval.ms", "500")
            .set("allow.auto.create.topics", "true")
            .create()
            .expect("consumer");
        consumer.subscribe(topics).expect("subscribe");
        let seen = Arc::new(Mutex::new(BTreeMap::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                    if let Some(Ok(v)) = m.payload_view::<str>() {
                        seen2
                            .lock()
                            .unwrap()
                            .entry(v.to_string())
                            .or_insert_with(Instant::now);
                    }
                }
            }
        });
        Self { seen, stop }
    }

    async fn seen_at(&self, value: &str, limit: Duration) -> Instant {
        wait(limit, value, || async {
            self.seen.lock().unwrap().get(value).copied()
        })
        .await
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// SIGKILL of the worker that runs a source's task, a follower first and then the leader.
async fn recovery(settings: GroupSettings) {
    let mut cluster = Cluster::start("recovery", 3, settings).await;
    let inputs: Vec<PathBuf> = (0..3)
        .map(|i| cluster.dir.join(format!("in-{i}.txt")))
        .collect();
    for (i, input) in inputs.iter().enumerate() {
        append(input, &[format!("s{i}-first")]);
        cluster
            .create(
                &format!("source-{i}"),
                json!({"connector.class": "file-source", "file": input, "topic": format!("rec-{i}"),
                       "value.converter": "string"}),
            )
            .await;
    }
    let watcher = Watcher::start(&cluster.broker, &["rec-0", "rec-1", "rec-2"]);
    for i in 0..3 {
        watcher
            .seen_at(&format!("s{i}-first"), Duration::from_secs(60))
            .await;
    }
    for (round, role) in ["follower", "leader"].into_iter().enumerate() {
        let leader = cluster.settle().await;
        let running = cluster.running().await;
        // A source task on a worker of the wanted role.
        let (owner, task) = running
            .iter()
            .filter(|(w, _)| (**w == leader) == (role == "leader"))
            .find_map(|(w, tasks)| {
                tasks
                    .iter()
                    .find(|t| t.starts_with("source-"))
                    .map(|t| (w.clone(), t.clone()))
            })
            .unwrap_or_else(|| panic!("no source task on a {role}: {running:?}"));
        let source: usize = task["source-".len()..]
            .split('-')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let index = cluster.index_of(&owner);
        cluster.sigkill(index);
        let killed = Instant::now();
        let marker = format!("s{source}-after-kill-{round}");
        append(&inputs[source], std::slice::from_ref(&marker));
        let limit = Duration::from_secs(300);
        let seen = watcher.seen_at(&marker, limit).await;
        println!(
            "recovery ({}): worker {owner} (the {role}) killed with SIGKILL; its source task produced again {:.1} s later",
            settings.describe(),
            (seen - killed).as_secs_f64()
        );
    }
}

/// A fourth worker joins three that run six pipelines.
async fn join() {
    let mut cluster = Cluster::start("join", 3, GroupSettings::DEFAULTS).await;
    let pipelines = 6;
    for i in 0..pipelines {
        let input = cluster.dir.join(format!("in-{i}.txt"));
        let output = cluster.dir.join(format!("out-{i}.txt"));
        append(&input, &[format!("p{i}-line")]);
        cluster
            .create(
                &format!("source-{i}"),
                json!({"connector.class": "file-source", "file": input, "topic": format!("pipe-{i}"),
                       "value.converter": "string"}),
            )
            .await;
        cluster
            .create(
                &format!("sink-{i}"),
                json!({"connector.class": "file-sink", "file": output, "topics": format!("pipe-{i}"),
                       "value.converter": "string"}),
            )
            .await;
    }
    let before_placement = cluster.spread(2 * pipelines).await;
    cluster.settle().await;
    let mut before = Vec::new();
    for (_, w) in cluster.live() {
        before.push((
            cluster.metric(w, TASK_STARTS).await,
            cluster.metric(w, CONNECTOR_STARTS).await,
        ));
    }
    let newcomer = cluster.add_worker().await;
    let new_id = cluster.workers[newcomer].as_ref().unwrap().id();
    let started = cluster.workers[newcomer].as_ref().unwrap().started;
    let rest_ready = started.elapsed();
    let placement = wait(
        Duration::from_secs(120),
        "the newcomer to run a task",
        || async {
            let running = cluster.running().await;
            running.contains_key(&new_id).then_some(running)
        },
    )
    .await;
    let first_task = started.elapsed();
    cluster.settle().await;
    let after = cluster.spread(2 * pipelines).await;
    let moved = after.get(&new_id).map_or(0, Vec::len);
    let (mut task_starts, mut connector_starts) = (0.0, 0.0);
    for ((_, w), (tasks, connectors)) in cluster.live().zip(&before) {
        task_starts += cluster.metric(w, TASK_STARTS).await - tasks;
        connector_starts += cluster.metric(w, CONNECTOR_STARTS).await - connectors;
    }
    let _ = (before_placement, placement);
    println!(
        "join (default group settings): a fourth worker answered REST {:.2} s after its start and ran its first task {:.2} s after its start; {moved} of {} tasks moved to it; task starts on the other three caused by the join: {task_starts}, connector starts: {connector_starts}",
        rest_ready.as_secs_f64(),
        first_task.as_secs_f64(),
        2 * pipelines
    );
}

/// Produces `lines` lines of 100 bytes to `topic`, spread over its partitions.
fn fill_topic(bootstrap: &str, topic: &str, partitions: i32, lines: usize) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let runtime = tokio::runtime::Handle::current();
    let created = tokio::task::block_in_place(|| {
        runtime.block_on(admin.create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        ))
    })
    .expect("create topic");
    assert!(
        created.iter().all(Result::is_ok),
        "create topic: {created:?}"
    );
    let producer: ThreadedProducer<DefaultProducerContext> = rdkafka::ClientConfig::new()
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
        let key = (i as i32 % partitions).to_string();
        let mut record = BaseRecord::to(topic)
            .payload(&line)
            .key(&key)
            .partition(i as i32 % partitions);
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

/// Lines in `path`, counted from `from` bytes on (returns the new count and position).
fn count_new_lines(path: &Path, from: &mut u64) -> usize {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return 0;
    };
    f.seek(SeekFrom::Start(*from)).unwrap();
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).unwrap();
    // Count whole lines only; a partly written line is read again next time.
    let complete = buf.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    *from += complete as u64;
    buf[..complete].iter().filter(|&&b| b == b'\n').count()
}

/// A file sink with six tasks over six partitions, on `workers` workers.
async fn sink(workers: usize, lines: usize) {
    let cluster = Cluster::start(&format!("sink{workers}"), workers, GroupSettings::DEFAULTS).await;
    let partitions = 6;
    let filled = Instant::now();
    let bootstrap = cluster.broker.clone();
    tokio::task::block_in_place(|| fill_topic(&bootstrap, "sink-bench", partitions, lines));
    let fill = filled.elapsed();
    let output = cluster.dir.join("out.txt");
    let cpu_before: f64 = cluster.live().map(|(_, w)| w.proc.cpu_seconds()).sum();
    let started = Instant::now();
    cluster
        .create(
            "sink",
            json!({"connector.class": "file-sink", "file": output, "topics": "sink-bench",
                   "tasks.max": partitions.to_string(), "key.converter": "string",
                   "value.converter": "string"}),
        )
        .await;
    let (mut seen, mut pos, mut first) = (0, 0, None);
    let deadline = Instant::now() + Duration::from_secs(600);
    while seen < lines {
        seen += count_new_lines(&output, &mut pos);
        if seen > 0 && first.is_none() {
            first = Some(started.elapsed());
        }
        assert!(
            Instant::now() < deadline,
            "only {seen} of {lines} lines after 600 s"
        );
        if seen == 0 && started.elapsed() > Duration::from_secs(30) {
            let running = cluster.running().await;
            panic!("no line after 30 s; running tasks: {running:?} (see the workers' logs)");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    let cpu: f64 = cluster
        .live()
        .map(|(_, w)| w.proc.cpu_seconds())
        .sum::<f64>()
        - cpu_before;
    let placement = cluster.running().await;
    let spread: Vec<usize> = placement.values().map(Vec::len).collect();
    let first = first.unwrap_or_default();
    let streaming = total.saturating_sub(first).as_secs_f64().max(1e-3);
    println!(
        "partitioned sink on {workers} worker(s): file sink, tasks.max={partitions}, {lines} lines of 100 bytes already in {partitions} partitions (produced in {:.1} s); tasks per worker {spread:?}; {:.0} lines/s from first to last line (first {:.2} s after the create, all after {:.2} s); {:.2} CPU-s of the workers per million lines",
        fill.as_secs_f64(),
        lines as f64 / streaming,
        first.as_secs_f64(),
        total.as_secs_f64(),
        cpu * 1e6 / lines as f64,
    );
}

fn main() {
    // `cargo test --benches` runs this with --bench absent; only measure under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let only = std::env::var("SLUICE_BENCH_ONLY").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    let lines = std::env::var("SLUICE_BENCH_LINES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        if run("recovery") {
            recovery(GroupSettings::DEFAULTS).await;
            recovery(GroupSettings {
                session_timeout_ms: Some(6_000),
                heartbeat_interval_ms: Some(500),
                delay_ms: Some(2_000),
            })
            .await;
        }
        if run("join") {
            join().await;
        }
        if run("sink") {
            sink(1, lines).await;
            sink(3, lines).await;
        }
    });
}
