//! Security end to end: a `sluice broker` with SASL_SSL and SSL listeners and ACLs, set up with
//! the Kafka-style tools (`sluice configs`, `sluice acls`, `sluice topics` with
//! `--command-config`), then used by independent clients: kcat, Confluent's Python client and
//! kafka-python. And a worker whose embedded broker requires SASL_SSL running the quick-start
//! pipeline, its own clients (librdkafka and the group membership client) authenticating.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use serde_json::{json, Value};

use crate::support::cli_tools::{kcat, run, run_raw, sluice};
use crate::support::{free_port, read_lines, wait_for, WorkerOptions, WorkerProcess};

const ADMIN_PASSWORD: &str = "admin-secret";
/// The two tests run one after the other: each binds ports the other could pick.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
const ALICE_PASSWORD: &str = "alice-secret";

/// A CA, a server certificate (chain and key in one PEM file) and client certificates.
struct Certs {
    dir: PathBuf,
    ca: PathBuf,
    server: PathBuf,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Certs {
    fn new(dir: &Path) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(DnType::CommonName, "sluice test CA");
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
        let server = dir.join("server.pem");
        std::fs::write(&server, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
        Self {
            dir: dir.to_owned(),
            ca,
            server,
            ca_cert,
            ca_key,
        }
    }

    /// (certificate, key) of a client with subject `CN=<cn>`.
    fn client(&self, cn: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // Subject `CN=<cn>`: the principal is `User:CN=<cn>`, as Kafka names it.
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        let paths = (
            self.dir.join(format!("{cn}.crt")),
            self.dir.join(format!("{cn}.key")),
        );
        std::fs::write(&paths.0, cert.pem()).unwrap();
        std::fs::write(&paths.1, key.serialize_pem()).unwrap();
        paths
    }
}

/// The Python of the test virtualenv (confluent-kafka, kafka-python), or a failure naming
/// what to install.
fn python() -> Command {
    let path = std::env::var("SLUICE_TEST_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/sluice/venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let ok = Command::new(&path)
        .args(["-c", "import confluent_kafka, kafka"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "no Python with confluent-kafka and kafka-python at {path}: run ./scripts/test (it makes \
         the virtualenv) or set SLUICE_TEST_PYTHON to a python with `pip install confluent-kafka kafka-python`"
    );
    Command::new(path)
}

/// `sluice broker --config <file>`: the address of each listener, by name.
struct SecureBroker {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    listeners: std::cell::RefCell<Vec<(String, String)>>,
}

impl SecureBroker {
    fn start(config: &Path, data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let mut command = sluice();
        command
            .args(["broker", "--config"])
            .arg(config)
            .arg("--data-dir")
            .arg(data_dir)
            // No bundled registry: parallel tests must not compete for port 8081.
            .arg("--schema-registry-listen=")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("cannot run the sluice binary");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "sluice broker did not start: {}",
                    std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default()
                )
            });
        assert!(first.starts_with("sluice broker listening on "), "{first}");
        Self {
            child,
            lines: rx,
            listeners: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// The address of listener `name`, reading the broker's "listener" lines as they come
    /// (a loaded machine may print them well after the first line).
    fn addr(&self, name: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((_, addr)) = self.listeners.borrow().iter().find(|(n, _)| n == name) {
                return addr.clone();
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!("no listener {name}: {:?}", self.listeners.borrow());
            };
            // "sluice broker listener SASL_SSL (SASL_SSL) on 127.0.0.1:40123"
            if let Some(rest) = line.strip_prefix("sluice broker listener ") {
                let name = rest.split_whitespace().next().unwrap().to_owned();
                let addr = rest.rsplit_once(" on ").unwrap().1.to_owned();
                self.listeners.borrow_mut().push((name, addr));
            }
        }
    }
}

impl Drop for SecureBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kcat_sasl(bootstrap: &str, ca: &Path, user: &str, password: &str) -> Command {
    let mut command = kcat();
    command.args([
        "-b",
        bootstrap,
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanisms=SCRAM-SHA-512",
        "-X",
        &format!("sasl.username={user}"),
        "-X",
        &format!("sasl.password={password}"),
        "-X",
        &format!("ssl.ca.location={}", ca.display()),
    ]);
    command
}

/// Runs a command under `timeout` seconds (kcat keeps trying on some errors); (status ok,
/// stdout, stderr).
fn bounded(command: &mut Command, input: &str, timeout: u32) -> (bool, String, String) {
    let mut wrapped = Command::new("timeout");
    wrapped
        .arg(timeout.to_string())
        .arg(command.get_program())
        .args(command.get_args());
    let output = run_raw(&mut wrapped, input);
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Confluent's client (librdkafka inside) and kafka-python as alice; prints one JSON object.
const PYTHON_CLIENTS: &str = r#"
import json, os, sys
from confluent_kafka import Producer, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

b, ca = os.environ["BOOTSTRAP"], os.environ["CA"]
ssl_b = os.environ["SSL_BOOTSTRAP"]
out = {}

def sasl(user, password):
    return {"bootstrap.servers": b, "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user,
            "sasl.password": password, "ssl.ca.location": ca}

# confluent-kafka: produce to orders (allowed), read logs-app (prefixed ACL), read orders (denied)
p = Producer(sasl("alice", os.environ["ALICE_PASSWORD"]))
errors = []
p.produce("orders", b"order from confluent-kafka", on_delivery=lambda e, m: errors.append(str(e) if e else None))
p.flush(30)
out["confluent_produce"] = errors

def read(conf, topic, group):
    c = Consumer(dict(conf, **{"group.id": group, "enable.auto.commit": False}))
    c.assign([TopicPartition(topic, 0, 0)])
    for _ in range(100):
        m = c.poll(0.3)
        if m is None:
            continue
        if m.error():
            c.close()
            return {"error": m.error().name()}
        c.close()
        return {"value": m.value().decode()}
    c.close()
    return {"error": "nothing"}

alice = sasl("alice", os.environ["ALICE_PASSWORD"])
out["confluent_logs"] = read(alice, "logs-app", "alice-group")
out["confluent_orders"] = read(alice, "orders", "alice-group")
# unknown user: no metadata
errs = []
try:
    AdminClient(dict(sasl("mallory", "x"), error_cb=lambda e: errs.append(str(e)))).list_topics(timeout=5)
    out["confluent_unknown_user"] = "listed"
except Exception as e:
    out["confluent_unknown_user"] = " | ".join(errs + [str(e)])
# SSL with the ops client certificate (a super user by its subject)
ops = {"bootstrap.servers": ssl_b, "security.protocol": "SSL", "ssl.ca.location": ca,
       "ssl.certificate.location": os.environ["OPS_CERT"], "ssl.key.location": os.environ["OPS_KEY"]}
out["confluent_ssl_orders"] = read(ops, "orders", "ops-group")

# kafka-python
from kafka import KafkaProducer, KafkaConsumer
from kafka.errors import KafkaError as PyKafkaError
def kp(user, password):
    return dict(bootstrap_servers=b, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                sasl_plain_username=user, sasl_plain_password=password, ssl_cafile=ca,
                ssl_check_hostname=True)
try:
    prod = KafkaProducer(**kp("alice", os.environ["ALICE_PASSWORD"]))
    prod.send("orders", b"order from kafka-python").get(timeout=30)
    prod.close()
    out["kafka_python_produce"] = "ok"
except PyKafkaError as e:
    out["kafka_python_produce"] = type(e).__name__
try:
    from kafka import TopicPartition as KTP
    cons = KafkaConsumer(**kp("alice", os.environ["ALICE_PASSWORD"]), group_id="alice-group",
                         enable_auto_commit=False)
    cons.assign([KTP("orders", 0)])
    cons.seek_to_beginning()
    got = cons.poll(timeout_ms=10000)
    out["kafka_python_orders"] = "read %d" % sum(len(v) for v in got.values())
    cons.close()
except PyKafkaError as e:
    out["kafka_python_orders"] = type(e).__name__
try:
    KafkaProducer(**kp("alice", "wrong"), max_block_ms=5000).close()
    out["kafka_python_wrong_password"] = "connected"
except Exception as e:
    out["kafka_python_wrong_password"] = type(e).__name__ + ": " + str(e)
try:
    prod = KafkaProducer(bootstrap_servers=ssl_b, security_protocol="SSL", ssl_cafile=ca,
                         ssl_certfile=os.environ["OPS_CERT"], ssl_keyfile=os.environ["OPS_KEY"])
    prod.send("orders", b"order from kafka-python over SSL").get(timeout=30)
    prod.close()
    out["kafka_python_ssl_produce"] = "ok"
except PyKafkaError as e:
    out["kafka_python_ssl_produce"] = type(e).__name__
print(json.dumps(out))
"#;

#[test]
fn sasl_ssl_and_acls_with_kafka_tools_kcat_and_python_clients() {
    let _serial = SERIAL.blocking_lock();
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::new(dir.path());
    let ops = certs.client("ops");
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "listeners = \"SASL_SSL://127.0.0.1:0,SSL://127.0.0.1:0\"\n\
             ssl_keystore_location = \"{}\"\n\
             ssl_client_auth = \"requested\"\n\
             ssl_truststore_location = \"{}\"\n\
             sasl_enabled_mechanisms = \"SCRAM-SHA-512,SCRAM-SHA-256\"\n\
             scram_initial_user = \"admin\"\n\
             authorizer_class_name = \"org.apache.kafka.metadata.authorizer.StandardAuthorizer\"\n\
             super_users = \"User:admin;User:CN=ops\"\n",
            certs.server.display(),
            certs.ca.display()
        ),
    )
    .unwrap();
    // The first administrator's password from the environment, never a file.
    let broker = SecureBroker::start(
        &config,
        &dir.path().join("data"),
        &[("SLUICE_SCRAM_INITIAL_PASSWORD", ADMIN_PASSWORD)],
    );
    let bootstrap = broker.addr("SASL_SSL");
    let ssl_bootstrap = broker.addr("SSL");

    // Kafka's client.properties for the administrator, as kafka-configs and kafka-acls take it.
    let admin_properties = dir.path().join("admin.properties");
    std::fs::write(
        &admin_properties,
        format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"admin\" password=\"{ADMIN_PASSWORD}\";\n\
             ssl.truststore.type=PEM\nssl.truststore.location={}\n",
            certs.ca.display()
        ),
    )
    .unwrap();
    let tool = |args: &[&str]| {
        let mut command = sluice();
        command.args([args[0], "--bootstrap-server", &bootstrap]);
        let flag = match args[0] {
            "produce" => "--producer.config",
            "consume" => "--consumer.config",
            _ => "--command-config",
        };
        command.arg(flag).arg(&admin_properties).args(&args[1..]);
        command
    };
    let out = run(
        tool(&[
            "configs",
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
            "--add-config",
            &format!("SCRAM-SHA-512=[iterations=8192,password={ALICE_PASSWORD}]"),
        ]),
        "",
    );
    assert_eq!(out.trim(), "Completed updating config for user alice.");
    let out = run(
        tool(&[
            "configs",
            "--describe",
            "--entity-type",
            "users",
            "--entity-name",
            "alice",
        ]),
        "",
    );
    assert_eq!(
        out.trim(),
        "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-512=iterations=8192"
    );
    for topic in ["orders", "logs-app"] {
        run(tool(&["topics", "--create", "--topic", topic]), "");
    }
    run(
        tool(&[
            "acls",
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Write",
            "--topic",
            "orders",
        ]),
        "",
    );
    run(
        tool(&[
            "acls",
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "logs-",
            "--resource-pattern-type",
            "prefixed",
        ]),
        "",
    );
    run(
        tool(&[
            "acls",
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--group",
            "alice-group",
        ]),
        "",
    );
    let listed = run(tool(&["acls", "--list", "--topic", "orders"]), "");
    assert!(
        listed.contains(
            "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`:"
        ) && listed.contains("(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)"),
        "{listed}"
    );
    run(tool(&["produce", "--topic", "logs-app"]), "log line\n");

    // kcat as alice: writing orders works, reading it is refused with Kafka's error.
    let (ok, _, err) = bounded(
        kcat_sasl(&bootstrap, &certs.ca, "alice", ALICE_PASSWORD).args(["-P", "-t", "orders"]),
        "order from kcat\n",
        30,
    );
    assert!(ok, "kcat produce as alice: {err}");
    let (_, out, err) = bounded(
        kcat_sasl(&bootstrap, &certs.ca, "alice", ALICE_PASSWORD).args([
            "-C",
            "-t",
            "orders",
            "-o",
            "beginning",
            "-c",
            "1",
            "-e",
        ]),
        "",
        15,
    );
    assert!(out.is_empty(), "alice read orders: {out}");
    assert!(
        err.to_lowercase().contains("authorization failed"),
        "kcat's error: {err}"
    );
    // Wrong password and unknown user: no metadata, authentication failure reported.
    for (user, password) in [("alice", "wrong"), ("mallory", ALICE_PASSWORD)] {
        let (ok, _, err) = bounded(
            kcat_sasl(&bootstrap, &certs.ca, user, password).args(["-L", "-m", "5"]),
            "",
            20,
        );
        assert!(!ok, "kcat -L as {user} with a bad password succeeded");
        assert!(err.contains("Authentication failed"), "{user}: {err}");
    }
    // kcat over SSL with a client certificate whose subject is a super user reads orders.
    let (ok, out, err) = bounded(
        kcat().args([
            "-b",
            &ssl_bootstrap,
            "-X",
            "security.protocol=SSL",
            "-X",
            &format!("ssl.ca.location={}", certs.ca.display()),
            "-X",
            &format!("ssl.certificate.location={}", ops.0.display()),
            "-X",
            &format!("ssl.key.location={}", ops.1.display()),
            "-C",
            "-t",
            "orders",
            "-o",
            "beginning",
            "-c",
            "1",
            "-e",
        ]),
        "",
        30,
    );
    assert!(
        ok && out.trim() == "order from kcat",
        "kcat over SSL: {out} {err}"
    );

    // Confluent's Python client and kafka-python.
    let output = python()
        .args(["-c", PYTHON_CLIENTS])
        .env("BOOTSTRAP", &bootstrap)
        .env("SSL_BOOTSTRAP", &ssl_bootstrap)
        .env("CA", &certs.ca)
        .env("ALICE_PASSWORD", ALICE_PASSWORD)
        .env("OPS_CERT", &ops.0)
        .env("OPS_KEY", &ops.1)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "python clients: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(results["confluent_produce"], json!([null]), "{results}");
    assert_eq!(
        results["confluent_logs"],
        json!({"value": "log line"}),
        "{results}"
    );
    assert_eq!(
        results["confluent_orders"],
        json!({"error": "TOPIC_AUTHORIZATION_FAILED"}),
        "{results}"
    );
    // librdkafka reports the refusal as a failed metadata request (kcat above showed the
    // authentication error itself).
    assert!(
        results["confluent_unknown_user"]
            .as_str()
            .is_some_and(|e| e != "listed" && e.contains("metadata")),
        "{results}"
    );
    assert_eq!(
        results["confluent_ssl_orders"],
        json!({"value": "order from kcat"}),
        "{results}"
    );
    assert_eq!(results["kafka_python_produce"], "ok", "{results}");
    assert_eq!(
        results["kafka_python_orders"], "TopicAuthorizationFailedError",
        "{results}"
    );
    assert!(
        results["kafka_python_wrong_password"]
            .as_str()
            .is_some_and(|e| !e.starts_with("connected")),
        "{results}"
    );
    assert_eq!(results["kafka_python_ssl_produce"], "ok", "{results}");

    // Everything alice and the others wrote is there, read by the super user with sluice.
    let all = run(
        tool(&[
            "consume",
            "--topic",
            "orders",
            "--from-beginning",
            "--max-messages",
            "4",
        ]),
        "",
    );
    let mut lines: Vec<&str> = all.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "order from confluent-kafka",
            "order from kafka-python",
            "order from kafka-python over SSL",
            "order from kcat"
        ]
    );

    // --remove takes alice's Write away again.
    let removed = run(
        tool(&[
            "acls",
            "--remove",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Write",
            "--topic",
            "orders",
        ]),
        "",
    );
    assert!(
        removed.contains("operation=WRITE, permissionType=ALLOW"),
        "{removed}"
    );
    let (ok, _, err) = bounded(
        kcat_sasl(&bootstrap, &certs.ca, "alice", ALICE_PASSWORD).args(["-P", "-t", "orders"]),
        "not any more\n",
        30,
    );
    assert!(
        !ok && err.to_lowercase().contains("authorization failed"),
        "kcat produce after --remove: {err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_whose_embedded_broker_requires_sasl_ssl_runs_the_quick_start_pipeline() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::new(dir.path());
    let port = free_port();
    let password = "connect-secret";
    let worker = WorkerProcess::start(
        WorkerOptions::new(dir.path())
            .env(
                "SLUICE_BROKER_LISTENERS",
                format!("SASL_SSL://127.0.0.1:{port}"),
            )
            .env(
                "SLUICE_BROKER_SSL_KEYSTORE_LOCATION",
                certs.server.display().to_string(),
            )
            .env("SLUICE_BROKER_SASL_ENABLED_MECHANISMS", "SCRAM-SHA-512")
            .env("SLUICE_BROKER_SCRAM_INITIAL_USER", "connect")
            .env("SLUICE_BROKER_SCRAM_INITIAL_PASSWORD", password)
            // ACLs on, nothing allowed but to the super user: the worker gets nowhere unless
            // every one of its clients authenticates as `connect`.
            .env("SLUICE_BROKER_AUTHORIZER_CLASS_NAME", "acl")
            .env("SLUICE_BROKER_SUPER_USERS", "User:connect")
            .env("SLUICE_SECURITY_PROTOCOL", "SASL_SSL")
            .env("SLUICE_SASL_MECHANISM", "SCRAM-SHA-512")
            .env("SLUICE_SASL_USERNAME", "connect")
            .env("SLUICE_SASL_PASSWORD", password)
            .env("SLUICE_SSL_CA_LOCATION", certs.ca.display().to_string()),
    )
    .await;
    let input = dir.path().join("input.txt");
    let output = dir.path().join("output.txt");
    let lines: Vec<String> = (0..1000).map(|i| format!("line {i}")).collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    worker.write_config(
        "quickstart-source.json",
        &json!({"name": "quickstart-source", "config": {
            "connector.class": "FileStreamSource", "file": input, "topic": "quickstart",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter"}}),
    );
    worker.write_config(
        "quickstart-sink.json",
        &json!({"name": "quickstart-sink", "config": {
            "connector.class": "FileStreamSink", "file": output, "topics": "quickstart",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter"}}),
    );
    let got = wait_for(Duration::from_secs(90), "the pipeline's output", || async {
        let got = read_lines(&output);
        (got.len() >= lines.len()).then_some(got)
    })
    .await;
    assert_eq!(got, lines);
    // A client without credentials gets nothing from that broker.
    let (ok, _, err) = bounded(
        kcat().args([
            "-b",
            &format!("127.0.0.1:{port}"),
            "-X",
            "security.protocol=SSL",
            "-X",
            &format!("ssl.ca.location={}", certs.ca.display()),
            "-L",
            "-m",
            "5",
        ]),
        "",
        20,
    );
    assert!(!ok, "metadata without SASL: {err}");
}
