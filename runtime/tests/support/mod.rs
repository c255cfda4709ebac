//! Test harness: real `sluice worker` and `sluice broker` processes on free loopback ports,
//! a REST client, Kafka helpers, and condition waits with deadlines.
//!
//! ```text
//! let dir = tempfile::tempdir()?;
//! let mut worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
//! worker.write_config("lines.json", &json!({"name": "lines", "config": {...}}));
//! worker.wait_for_task_state("lines", 0, "RUNNING").await;
//! worker.kill(); // SIGKILL
//! worker.restart().await;
//! ```
#![allow(dead_code, unreachable_pub)]

pub mod cli_tools;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;

/// The `sluice` binary built for these tests.
pub fn sluice_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sluice"))
}

/// A free loopback port (bound and released; the OS will not hand it out again at once).
/// The test virtualenv's Python (`SLUICE_TEST_PYTHON`, else the one scripts/test makes),
/// checked to import `module`; fails naming `package` to install when it cannot.
pub fn test_python(module: &str, package: &str) -> String {
    let python = std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/sluice/venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let ok = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{python} cannot import {module}: make the test virtualenv with ./scripts/test \
         (pip install '{package}'), or point SLUICE_TEST_PYTHON at an interpreter that has it"
    );
    python
}

/// Settings of a worker run in the test's own process: its data and configs folders under
/// `dir` named after `name`, a free REST port, no bundled registry; `extra` adds to them.
pub fn in_process_settings(
    dir: &Path,
    name: &str,
    extra: &[(&str, String)],
) -> sluice_runtime::settings::WorkerSettings {
    let mut map = std::collections::BTreeMap::from([
        ("data.dir".to_string(), dir.join(name).display().to_string()),
        (
            "config.dir".to_string(),
            dir.join(format!("{name}-configs")).display().to_string(),
        ),
        ("rest.port".to_string(), "0".to_string()),
        ("schema.registry.listen".to_string(), String::new()),
    ]);
    for (k, v) in extra {
        map.insert((*k).to_string(), v.clone());
    }
    sluice_runtime::settings::WorkerSettings::from_map(&map).expect("worker settings")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// Waits until `check` returns `Some`, polling every 50 ms, failing with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A `sluice broker` process.
#[derive(Debug)]
pub struct BrokerProcess {
    /// `127.0.0.1:port`.
    pub addr: String,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl BrokerProcess {
    /// Starts a broker with its data in `dir/broker-data`, waiting until it answers.
    pub async fn start(dir: &Path) -> Self {
        let mut broker = Self {
            addr: format!("127.0.0.1:{}", free_port()),
            data_dir: dir.join("broker-data"),
            log: dir.join("broker.log"),
            child: None,
        };
        broker.spawn().await;
        broker
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open broker log");
        let child = Command::new(sluice_bin())
            .args([
                "broker",
                "--schema-registry-listen=",
                "--listen",
                &self.addr,
                "--data-dir",
            ])
            .arg(&self.data_dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn sluice broker");
        self.child = Some(child);
        let addr = self.addr.clone();
        wait_for(
            Duration::from_secs(30),
            "the broker to accept connections",
            || {
                let addr = addr.clone();
                async move { tokio::net::TcpStream::connect(&addr).await.ok().map(|_| ()) }
            },
        )
        .await;
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same address and data.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How to start a worker.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Working directory (holds configs/, data/, worker.log).
    pub dir: PathBuf,
    /// External cluster; `None` runs the embedded broker.
    pub bootstrap: Option<String>,
    /// Extra environment variables (`SLUICE_*` settings).
    pub env: Vec<(String, String)>,
    /// Serve the REST API over https (`listeners=https://...`); the harness's client trusts
    /// this CA (PEM).
    pub https_ca: Option<String>,
    /// HTTP basic credentials the harness's client sends.
    pub basic_auth: Option<(String, String)>,
}

impl WorkerOptions {
    /// Embedded broker, everything under `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            bootstrap: None,
            env: Vec::new(),
            https_ca: None,
            basic_auth: None,
        }
    }

    /// Serve the REST API over https; the harness's client trusts `ca_pem`. The keystore
    /// settings are for the caller to set.
    pub fn https(mut self, ca_pem: impl Into<String>) -> Self {
        self.https_ca = Some(ca_pem.into());
        self
    }

    /// The harness's REST client sends these basic credentials.
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        self.basic_auth = Some((user.to_string(), password.to_string()));
        self
    }

    /// Use an external cluster.
    pub fn bootstrap(mut self, servers: impl Into<String>) -> Self {
        self.bootstrap = Some(servers.into());
        self
    }

    /// Set a `SLUICE_*` variable.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

impl WorkerOptions {
    /// A member of worker group `group` on the cluster at `bootstrap`, with group timings short
    /// enough for tests: heartbeats every 500 ms, the broker's minimum session timeout (6 s),
    /// and work of a departed worker held back for `delay_ms`.
    pub fn group_member(dir: &Path, bootstrap: &str, group: &str, delay_ms: u64) -> Self {
        Self::new(dir)
            .bootstrap(bootstrap)
            .env("SLUICE_GROUP_ID", group)
            .env("SLUICE_HEARTBEAT_INTERVAL_MS", "500")
            .env("SLUICE_SESSION_TIMEOUT_MS", "6000")
            .env(
                "SLUICE_SCHEDULED_REBALANCE_MAX_DELAY_MS",
                delay_ms.to_string(),
            )
            .env("SLUICE_OFFSET_FLUSH_INTERVAL_MS", "200")
    }
}

/// The value of the first sample of `name` in Prometheus text whose labels include every one
/// of `labels`.
pub fn metric_sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let (series, _) = l.rsplit_once(' ').unwrap_or((l, ""));
            (series == name || series.starts_with(&format!("{name}{{")))
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit_once(' '))
        .and_then(|(_, v)| v.parse().ok())
}

/// A `sluice worker` process and a REST client for it.
#[derive(Debug)]
pub struct WorkerProcess {
    options: WorkerOptions,
    rest_port: u16,
    broker_addr: String,
    child: Option<Child>,
    http: reqwest::Client,
}

impl WorkerProcess {
    /// Starts a worker in `options.dir` and waits until its REST API answers.
    pub async fn start(options: WorkerOptions) -> Self {
        std::fs::create_dir_all(options.dir.join("configs")).expect("configs dir");
        let http = rest_client(options.https_ca.as_deref(), options.basic_auth.as_ref());
        let mut worker = Self {
            rest_port: free_port(),
            broker_addr: format!("127.0.0.1:{}", free_port()),
            options,
            child: None,
            http,
        };
        worker.spawn().await;
        worker
    }

    async fn spawn(&mut self) {
        let dir = &self.options.dir;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("worker.log"))
            .expect("open worker log");
        let mut cmd = Command::new(sluice_bin());
        cmd.arg("worker")
            .current_dir(dir)
            .env("SLUICE_REST_PORT", self.rest_port.to_string())
            .env("SLUICE_BROKER_LISTEN", &self.broker_addr)
            .env("SLUICE_DATA_DIR", dir.join("data"))
            .env("SLUICE_CONFIG_DIR", dir.join("configs"))
            .env("SLUICE_LOG", "info,librdkafka=warn")
            // Tests that want the bundled Schema Registry name its address (`options.env`).
            .env("SLUICE_SCHEMA_REGISTRY_LISTEN", "")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        if let Some(b) = &self.options.bootstrap {
            cmd.env("SLUICE_BOOTSTRAP_SERVERS", b);
        }
        if self.options.https_ca.is_some() {
            cmd.env(
                "SLUICE_LISTENERS",
                format!("https://127.0.0.1:{}", self.rest_port),
            );
        }
        for (k, v) in &self.options.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn sluice worker"));
        let url = self.url("/");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(&url).send().await {
                if r.status().is_success() {
                    return;
                }
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || tokio::time::Instant::now() > deadline {
                panic!(
                    "the worker did not start ({exited:?}); its log:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The worker's directory.
    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// The worker's log so far (for assertion messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.options.dir.join("worker.log")).unwrap_or_default()
    }

    /// `http://127.0.0.1:<rest port><path>` (`https://` when the worker serves https).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.options.https_ca.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}{path}", self.rest_port)
    }

    /// The worker's id in status records and group metrics: `127.0.0.1:<rest port>`.
    pub fn worker_id(&self) -> String {
        format!("127.0.0.1:{}", self.rest_port)
    }

    /// `/metrics` as text.
    pub async fn metrics_text(&self) -> String {
        let resp = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        resp.text().await.unwrap_or_default()
    }

    /// The value of the first `/metrics` sample of `name` whose labels include every one of
    /// `labels`.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let text = self.metrics_text().await;
        metric_sample(&text, name, labels)
    }

    /// Kafka bootstrap servers the worker uses.
    pub fn bootstrap(&self) -> String {
        self.options
            .bootstrap
            .clone()
            .unwrap_or_else(|| self.broker_addr.clone())
    }

    /// Writes a connector file into the watched configs folder.
    pub fn write_config(&self, file: &str, json: &Value) {
        let path = self.options.dir.join("configs").join(file);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(json).expect("json")).expect("write config");
        std::fs::rename(&tmp, &path).expect("rename config");
    }

    /// Removes a connector file.
    pub fn remove_config(&self, file: &str) {
        std::fs::remove_file(self.options.dir.join("configs").join(file)).expect("remove config");
    }

    /// A request; returns the status code and the JSON body (Null when empty).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.expect("REST request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, json)
    }

    /// GET, expecting 2xx.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.request(reqwest::Method::GET, path, None).await;
        assert!((200..300).contains(&status), "GET {path}: {status} {body}");
        body
    }

    /// The state of a connector's task, if it has one.
    pub async fn task_state(&self, connector: &str, task: u32) -> Option<(String, Value)> {
        let (status, body) = self
            .request(
                reqwest::Method::GET,
                &format!("/connectors/{connector}/status"),
                None,
            )
            .await;
        if status != 200 {
            return None;
        }
        body["tasks"]
            .as_array()?
            .iter()
            .find(|t| t["id"] == task)
            .map(|t| {
                (
                    t["state"].as_str().unwrap_or_default().to_string(),
                    t.clone(),
                )
            })
    }

    /// Waits until task `task` of `connector` is in `state`.
    pub async fn wait_for_task_state(&self, connector: &str, task: u32, state: &str) -> Value {
        let limit = Duration::from_secs(60);
        let waited = tokio::time::timeout(
            limit,
            self.wait_for_task_state_within(limit * 2, connector, task, state),
        )
        .await;
        match waited {
            Ok(v) => v,
            Err(_) => panic!(
                "timed out after {limit:?} waiting for {connector} task {task} to be {state}; the worker's log:\n{}",
                self.log()
            ),
        }
    }

    async fn wait_for_task_state_within(
        &self,
        limit: Duration,
        connector: &str,
        task: u32,
        state: &str,
    ) -> Value {
        wait_for(
            limit,
            &format!("{connector} task {task} to be {state}"),
            || async move {
                self.task_state(connector, task)
                    .await
                    .filter(|(s, _)| s == state)
                    .map(|(_, t)| t)
            },
        )
        .await
    }

    /// SIGKILL, no chance to flush or commit.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for a graceful exit (killing after 30 s).
    pub async fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.stop_with("-TERM", Duration::from_secs(30)).await
    }

    /// Sends `signal` (`-INT`, `-TERM`), then waits for the exit, killing after `limit`.
    pub async fn stop_with(
        &mut self,
        signal: &str,
        limit: Duration,
    ) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status();
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return child.wait().ok();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts the worker again with the same directory and ports (after kill or stop).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A REST client trusting `ca_pem` (when given) and sending basic credentials (when given).
pub fn rest_client(ca_pem: Option<&str>, basic_auth: Option<&(String, String)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder();
    if let Some(ca) = ca_pem {
        builder = builder
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA PEM"));
    }
    if let Some((user, password)) = basic_auth {
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Basic {token}").parse().expect("header"),
        );
        builder = builder.default_headers(headers);
    }
    builder.build().expect("REST client")
}

/// A record read back from Kafka.
#[derive(Debug, Clone)]
pub struct Consumed {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Reads every partition of `topic` from the beginning until `count` records arrived (or
/// `timeout` passes, then returns what arrived).
pub fn read_topic(bootstrap: &str, topic: &str, count: usize, timeout: Duration) -> Vec<Consumed> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-tests-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let deadline = std::time::Instant::now() + timeout;
    let partitions = loop {
        let ids: Vec<i32> = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .ok()
            .and_then(|m| {
                m.topics()
                    .iter()
                    .find(|t| t.name() == topic && t.error().is_none())
                    .map(|t| t.partitions().iter().map(|p| p.id()).collect())
            })
            .unwrap_or_default();
        if !ids.is_empty() || std::time::Instant::now() > deadline {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    while out.len() < count && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push(Consumed {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(<[u8]>::to_vec),
                value: m.payload().map(<[u8]>::to_vec),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                            .collect()
                    })
                    .unwrap_or_default(),
            });
        }
    }
    out
}

/// Produces `values` (no keys) to `topic` and waits for every acknowledgement.
pub async fn produce(bootstrap: &str, topic: &str, values: &[Vec<u8>]) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .create()
        .expect("producer");
    let sends: Vec<_> = values
        .iter()
        .map(|v| {
            producer.send(
                FutureRecord::<(), _>::to(topic).payload(v),
                Duration::from_secs(30),
            )
        })
        .collect();
    for s in futures::future::join_all(sends).await {
        s.expect("produce");
    }
}

/// Lines of a file (empty when it does not exist yet).
pub fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().map(str::to_string).collect())
        .unwrap_or_default()
}
