//! The CLI tools against `sluice broker` (a separate process), checked against kcat; their
//! answers when something is wrong (no broker, a missing topic, a refusal); their help; and
//! the worker's front door (`--config`, `GET /`).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::support::cli_tools::{kcat, run, run_raw, sluice, BrokerProcess};
use crate::support::{WorkerOptions, WorkerProcess};

fn topics(addr: &str, args: &[&str]) -> std::process::Command {
    let mut command = sluice();
    command
        .args(["topics", "--bootstrap-server", addr])
        .args(args);
    command
}

#[test]
fn topics_create_describe_alter_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), "127.0.0.1:0");
    let addr = broker.addr.clone();
    let out = run(
        topics(
            &addr,
            &[
                "--create",
                "--topic",
                "orders",
                "--partitions",
                "3",
                "--replication-factor",
                "1",
                "--config",
                "cleanup.policy=compact",
            ],
        ),
        "",
    );
    assert_eq!(out, "Created topic orders.\n");
    let out = run(topics(&addr, &["--describe", "--topic", "orders"]), "");
    assert_eq!(
        out,
        "Topic: orders\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: cleanup.policy=compact\n\
         \tTopic: orders\tPartition: 0\tLeader: 0\tReplicas: 0\tIsr: 0\n\
         \tTopic: orders\tPartition: 1\tLeader: 0\tReplicas: 0\tIsr: 0\n\
         \tTopic: orders\tPartition: 2\tLeader: 0\tReplicas: 0\tIsr: 0\n"
    );
    run(
        topics(
            &addr,
            &[
                "--alter",
                "--topic",
                "orders",
                "--partitions",
                "4",
                "--config",
                "retention.ms=60000",
            ],
        ),
        "",
    );
    let out = run(topics(&addr, &["--describe", "--topic", "orders"]), "");
    assert!(out.starts_with("Topic: orders\tPartitionCount: 4\tReplicationFactor: 1\tConfigs: cleanup.policy=compact,retention.ms=60000\n"), "{out}");
    assert_eq!(out.lines().count(), 5);

    // A second create fails with the reason, unless --if-not-exists.
    let output = run_raw(&mut topics(&addr, &["--create", "--topic", "orders"]), "");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("already exists"),
        "{output:?}"
    );
    run(
        topics(&addr, &["--create", "--topic", "orders", "--if-not-exists"]),
        "",
    );
    // Bad input is named.
    let output = run_raw(
        &mut topics(
            &addr,
            &["--create", "--topic", "bad", "--replication-factor", "3"],
        ),
        "",
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .to_lowercase()
            .contains("replication"),
        "{output:?}"
    );

    run(topics(&addr, &["--create", "--topic", "audit"]), "");
    assert_eq!(run(topics(&addr, &["--list"]), ""), "audit\norders\n");
    // kcat sees the same topics and partition counts.
    let metadata = run(
        {
            let mut c = kcat();
            c.args(["-b", &addr, "-L"]);
            c
        },
        "",
    );
    assert!(
        metadata.contains(&format!("broker 0 at {addr}")),
        "{metadata}"
    );
    assert!(
        metadata.contains("topic \"orders\" with 4 partitions"),
        "{metadata}"
    );
    assert!(
        metadata.contains("topic \"audit\" with 1 partitions"),
        "{metadata}"
    );

    run(topics(&addr, &["--delete", "--topic", "audit"]), "");
    assert_eq!(run(topics(&addr, &["--list"]), ""), "orders\n");
    let output = run_raw(&mut topics(&addr, &["--delete", "--topic", "audit"]), "");
    assert!(!output.status.success());
    run(
        topics(&addr, &["--delete", "--topic", "audit", "--if-exists"]),
        "",
    );
}

#[test]
fn kcat_and_sluice_cli_agree_in_both_directions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), "127.0.0.1:0");
    let addr = broker.addr.clone();
    let lines: String = (0..200)
        .map(|i| format!("key{}:value {i} {}\n", i % 7, "x".repeat(i % 50)))
        .collect();

    // kcat writes (snappy), sluice reads.
    run(
        {
            let mut c = kcat();
            c.args([
                "-b",
                &addr,
                "-P",
                "-t",
                "from-kcat",
                "-p",
                "0",
                "-K",
                ":",
                "-z",
                "snappy",
            ]);
            c
        },
        &lines,
    );
    let mut consume = sluice();
    consume.args([
        "consume",
        "--bootstrap-server",
        &addr,
        "--topic",
        "from-kcat",
        "--from-beginning",
        "--max-messages",
        "200",
        "--property",
        "print.key=true",
        "--property",
        "key.separator=:",
    ]);
    assert_eq!(run(consume, ""), lines);
    let mut read = kcat();
    read.args([
        "-b",
        &addr,
        "-C",
        "-t",
        "from-kcat",
        "-e",
        "-q",
        "-f",
        "%k:%s\n",
    ]);
    assert_eq!(run(read, ""), lines);

    // sluice writes (zstd, acks=all), kcat reads, with offsets and partitions.
    let mut produce = sluice();
    produce.args([
        "produce",
        "--bootstrap-server",
        &addr,
        "--topic",
        "from-sluice",
        "--compression-codec",
        "zstd",
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=:",
        "--partition",
        "0",
    ]);
    run(produce, &lines);
    let mut read = kcat();
    read.args([
        "-b",
        &addr,
        "-C",
        "-t",
        "from-sluice",
        "-e",
        "-q",
        "-f",
        "%p %o %k:%s\n",
    ]);
    let expected: String = lines
        .lines()
        .enumerate()
        .map(|(i, l)| format!("0 {i} {l}\n"))
        .collect();
    assert_eq!(run(read, ""), expected);
    // The same through sluice consume's offset/partition columns, from an offset.
    let mut consume = sluice();
    consume.args([
        "consume",
        "--bootstrap-server",
        &addr,
        "--topic",
        "from-sluice",
        "--partition",
        "0",
        "--offset",
        "190",
        "--max-messages",
        "10",
        "--property",
        "print.offset=true",
        "--property",
        "print.partition=true",
        "--property",
        "print.key=true",
        "--property",
        "key.separator= ",
    ]);
    let got = run(consume, "");
    let want: String = lines
        .lines()
        .enumerate()
        .skip(190)
        .map(|(i, l)| {
            let (k, v) = l.split_once(':').unwrap();
            format!("Partition:0 Offset:{i} {k} {v}\n")
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn headers_and_null_values_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), "127.0.0.1:0");
    let addr = broker.addr.clone();
    let mut produce = sluice();
    produce.args([
        "produce",
        "--bootstrap-server",
        &addr,
        "--topic",
        "hdr",
        "--property",
        "parse.key=true",
        "--property",
        "parse.headers=true",
        "--property",
        "null.marker=<null>",
    ]);
    run(produce, "trace:abc,kind:x\tk1\tv1\n\tk2\t<null>\n");
    let mut consume = sluice();
    consume.args([
        "consume",
        "--bootstrap-server",
        &addr,
        "--topic",
        "hdr",
        "--from-beginning",
        "--max-messages",
        "2",
        "--property",
        "print.headers=true",
        "--property",
        "print.key=true",
    ]);
    assert_eq!(
        run(consume, ""),
        "trace:abc,kind:x\tk1\tv1\nNO_HEADERS\tk2\tnull\n"
    );
    let mut read = kcat();
    read.args(["-b", &addr, "-C", "-t", "hdr", "-e", "-q", "-f", "%k=%S\n"]);
    // kcat prints the value length; -1 marks a null value.
    assert_eq!(run(read, ""), "k1=2\nk2=-1\n");
}

/// Runs `command` with `input` on stdin, killing it and failing the test when it has not
/// exited within `limit`.
fn run_bounded(command: &mut std::process::Command, input: &str, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    // A tool that stops early closes its stdin: a failed write is its business, not the test's.
    std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let stdout = drain(child.stdout.take().unwrap());
    let stderr = drain(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{command:?} did not exit within {limit:?}; stderr so far:\n{}",
                String::from_utf8_lossy(&stderr.join().unwrap())
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// A loopback address where nothing listens (bound, then released).
fn closed_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}

/// Asserts a failed run printed one short error (no librdkafka log lines, no backtrace)
/// mentioning each of `needles`, and exited with code 1.
fn assert_one_error_line(output: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let lines = stderr.lines().filter(|l| !l.trim().is_empty()).count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} lines on stderr:\n{stderr}"
    );
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "no {needle:?} in:\n{stderr}");
    }
    stderr
}

#[test]
fn every_tool_fails_fast_with_one_line_against_a_closed_port() {
    let addr = closed_address();
    let limit = Duration::from_secs(20);
    for (args, input) in [
        (vec!["consume", "--topic", "t"], ""),
        (vec!["produce", "--topic", "t"], "a line\n"),
        (vec!["topics", "--list"], ""),
        (vec!["topics", "--describe", "--topic", "t"], ""),
        (vec!["groups", "--list"], ""),
    ] {
        let mut command = sluice();
        command
            .args(&args)
            .args(["--bootstrap-server", &addr])
            // anyhow would print a backtrace with this set; the CLI must not.
            .env("RUST_BACKTRACE", "1")
            .env_remove("SLUICE_LOG")
            .env_remove("RUST_LOG");
        let output = run_bounded(&mut command, input, limit);
        let stderr = assert_one_error_line(&output, &[&addr]);
        assert!(stderr.contains("cannot connect"), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: {output:?}");
    }
    // The address also comes from the environment, as the help says.
    let mut command = sluice();
    command
        .args(["topics", "--list"])
        .env("SLUICE_BOOTSTRAP_SERVERS", &addr);
    assert_one_error_line(&run_bounded(&mut command, "", limit), &[&addr]);
}

#[test]
fn describe_and_consume_of_a_missing_topic_fail_and_create_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // The broker auto-creates topics (its default): only the tools' requests decide.
    let broker = BrokerProcess::start(&dir.path().join("data"), "127.0.0.1:0");
    let addr = broker.addr.clone();
    let limit = Duration::from_secs(60);
    let output = run_bounded(
        &mut topics(&addr, &["--describe", "--topic", "missing"]),
        "",
        limit,
    );
    let stderr = assert_one_error_line(&output, &["'missing'", "does not exist"]);
    assert!(
        stderr.starts_with("Error while executing topic command : Topic 'missing'"),
        "{stderr}"
    );
    let mut consume = sluice();
    consume.args([
        "consume",
        "--bootstrap-server",
        &addr,
        "--topic",
        "missing-too",
        "--timeout-ms",
        "1000",
    ]);
    assert_one_error_line(
        &run_bounded(&mut consume, "", limit),
        &["'missing-too'", "does not exist"],
    );
    let output = run_bounded(
        &mut topics(&addr, &["--describe", "--topic", "missing", "--if-exists"]),
        "",
        limit,
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(run(topics(&addr, &["--list"]), ""), "");
    // Producing is what creates a topic, as with Kafka's console producer.
    let mut produce = sluice();
    produce.args(["produce", "--bootstrap-server", &addr, "--topic", "made"]);
    run(produce, "x\n");
    assert_eq!(run(topics(&addr, &["--list"]), ""), "made\n");
}

#[test]
fn broker_refusals_print_the_brokers_reason() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), "127.0.0.1:0");
    let addr = broker.addr.clone();
    let limit = Duration::from_secs(60);
    let mut create = topics(
        &addr,
        &[
            "--create",
            "--topic",
            "bad",
            "--config",
            "retention.ms=soon",
        ],
    );
    create.env("RUST_BACKTRACE", "1");
    let output = run_bounded(&mut create, "", limit);
    // The reason is the broker's own text (sluice-broker's config validation).
    assert_one_error_line(
        &output,
        &[
            "'bad'",
            "topic config 'retention.ms' must be a whole number (got 'soon')",
        ],
    );
    assert_eq!(run(topics(&addr, &["--list"]), ""), "");

    run(
        topics(&addr, &["--create", "--topic", "good", "--partitions", "2"]),
        "",
    );
    let output = run_bounded(
        &mut topics(
            &addr,
            &[
                "--alter",
                "--topic",
                "good",
                "--config",
                "cleanup.policy=tidy",
            ],
        ),
        "",
        limit,
    );
    assert_one_error_line(
        &output,
        &["must be delete, compact or compact,delete (got 'tidy')"],
    );
    let output = run_bounded(
        &mut topics(&addr, &["--alter", "--topic", "good", "--partitions", "1"]),
        "",
        limit,
    );
    assert_one_error_line(
        &output,
        &["has 2 partitions; the new count must be larger (got 1)"],
    );
    let output = run_bounded(
        &mut topics(&addr, &["--delete", "--topic", "gone"]),
        "",
        limit,
    );
    assert_one_error_line(&output, &["Topic 'gone' does not exist"]);
    let out = run(topics(&addr, &["--describe", "--topic", "good"]), "");
    assert!(
        out.starts_with("Topic: good\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: \n"),
        "{out}"
    );
}

#[test]
fn consume_stops_with_one_line_when_the_broker_goes_away() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), "127.0.0.1:0");
    let addr = broker.addr.clone();
    let mut produce = sluice();
    produce.args(["produce", "--bootstrap-server", &addr, "--topic", "live"]);
    run(produce, "first\n");
    let mut consume = sluice()
        .args([
            "consume",
            "--bootstrap-server",
            &addr,
            "--topic",
            "live",
            "--from-beginning",
        ])
        .env_remove("SLUICE_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first record printed means the consumer is connected and fetching.
    let mut stdout = BufReader::new(consume.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "first\n");
    let stderr = drain(consume.stderr.take().unwrap());
    broker.kill();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = consume.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = consume.kill();
            panic!("consume kept running after the broker went away");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: Vec::new(),
        stderr: stderr.join().unwrap(),
    };
    assert_one_error_line(&output, &["lost the connection to the broker at", &addr]);
}

#[test]
fn produce_stops_with_one_line_when_the_broker_goes_away_with_records_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::start(&dir.path().join("data"), "127.0.0.1:0");
    let addr = broker.addr.clone();
    run(topics(&addr, &["--create", "--topic", "live"]), "");
    let mut produce = sluice()
        .args(["produce", "--bootstrap-server", &addr, "--topic", "live"])
        .env_remove("SLUICE_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = produce.stdin.take().unwrap();
    stdin.write_all(b"first\n").unwrap();
    stdin.flush().unwrap();
    // The first record readable means the producer is connected; consume waits for it.
    let mut consume = sluice();
    consume.args([
        "consume",
        "--bootstrap-server",
        &addr,
        "--topic",
        "live",
        "--from-beginning",
        "--max-messages",
        "1",
    ]);
    let output = run_bounded(&mut consume, "", Duration::from_secs(30));
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "first\n");
    let stderr = drain(produce.stderr.take().unwrap());
    broker.kill();
    // This record can never be acknowledged.
    stdin.write_all(b"second\n").unwrap();
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = produce.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = produce.kill();
            panic!("produce kept running after the broker went away");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: Vec::new(),
        stderr: stderr.join().unwrap(),
    };
    assert_one_error_line(&output, &["lost the connection to the broker at", &addr]);
}

#[test]
fn help_shows_the_bootstrap_server_flag_and_its_variable_the_same_way() {
    let mut helps = Vec::new();
    for tool in ["topics", "produce", "consume", "groups", "worker"] {
        let mut command = sluice();
        command
            .args([tool, "--help"])
            .env_remove("SLUICE_BOOTSTRAP_SERVERS");
        let help = run(command, "");
        let line = help
            .lines()
            .find(|l| l.contains("--bootstrap-server"))
            .unwrap_or_else(|| panic!("sluice {tool} --help has no --bootstrap-server:\n{help}"));
        assert!(
            line.trim_start()
                .starts_with("--bootstrap-server <HOST:PORT>"),
            "{tool}: {line}"
        );
        assert!(
            help.contains("[env: SLUICE_BOOTSTRAP_SERVERS=]"),
            "sluice {tool} --help:\n{help}"
        );
        assert!(
            !help.contains("module docs"),
            "sluice {tool} --help:\n{help}"
        );
        helps.push((tool, help));
    }
    let (_, worker) = helps.iter().find(|(t, _)| *t == "worker").unwrap();
    assert!(worker.contains("--config <FILE>"), "{worker}");
    for setting in [
        "bootstrap.servers",
        "rest.port",
        "offset.flush.interval.ms",
        "SLUICE_DATA_DIR",
    ] {
        assert!(
            worker.contains(setting),
            "{setting} missing from:\n{worker}"
        );
    }
}

#[test]
fn worker_config_flag_reads_that_file_and_names_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.toml");
    let mut command = sluice();
    command
        .arg("worker")
        .arg("--config")
        .arg(&missing)
        .current_dir(dir.path())
        .env("RUST_BACKTRACE", "1");
    let output = run_bounded(&mut command, "", Duration::from_secs(30));
    assert_one_error_line(&output, &["nowhere.toml", "--config"]);
    // A bad setting in the named file is named too (and nothing starts).
    let file = dir.path().join("worker.toml");
    std::fs::write(&file, "rest.prot = 1\n").unwrap();
    let mut command = sluice();
    command
        .arg("worker")
        .arg("--config")
        .arg(&file)
        .current_dir(dir.path());
    let output = run_bounded(&mut command, "", Duration::from_secs(30));
    assert_one_error_line(&output, &["rest.prot"]);
}

#[tokio::test]
async fn root_reports_the_clusters_own_id() {
    let dir = tempfile::tempdir().unwrap();
    let worker = WorkerProcess::start(WorkerOptions::new(dir.path())).await;
    let root = worker.get("/").await;
    let id = root["kafka_cluster_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!id.is_empty(), "{root}");
    let bootstrap = worker.bootstrap();
    let reported = tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        client.client().fetch_cluster_id(Duration::from_secs(30))
    })
    .await
    .unwrap();
    assert_eq!(Some(id), reported);
}
