//! The CLI tools against `sluice broker` (a separate process), checked against kcat.

use crate::support::cli_tools::{kcat, run, run_raw, sluice, BrokerProcess};

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
