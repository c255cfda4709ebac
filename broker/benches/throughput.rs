//! Produce/consume throughput with librdkafka, acks=all, idempotence on, default durability
//! (`log.flush = sync`: fsync before every acknowledgement, shared by concurrent requests),
//! next to the disk's fsync'd sequential write rate measured with `dd ... conv=fdatasync`
//! in the same run and directory.
//!
//! ```text
//! cargo bench -p sluice-broker --bench throughput                   # bundled broker
//! cargo bench -p sluice-broker --bench throughput -- --bootstrap HOST:PORT   # any Kafka
//! options: --data-dir DIR (broker data and the dd file; default under target/)
//!          --mib N (data volume per message size, default 512)
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use sluice_broker::{Broker, BrokerConfig};

const PARTITIONS: i32 = 4;

#[derive(Default)]
struct Counts {
    delivered: AtomicU64,
    failed: AtomicU64,
}

struct Counting(Arc<Counts>);

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.0.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.0.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

struct Args {
    bootstrap: Option<String>,
    data_dir: PathBuf,
    mib: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        bootstrap: None,
        data_dir: PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("throughput-bench"),
        mib: 512,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--bootstrap" => args.bootstrap = it.next(),
            "--data-dir" => args.data_dir = PathBuf::from(it.next().expect("--data-dir DIR")),
            "--mib" => args.mib = it.next().and_then(|v| v.parse().ok()).expect("--mib N"),
            "--bench" => {}
            other => eprintln!("ignoring argument {other}"),
        }
    }
    args
}

/// Sequential write rate of the disk with one fdatasync at the end, in MB/s (10^6 bytes).
fn dd_rate(dir: &std::path::Path, mib: u64) -> f64 {
    let file = dir.join("dd.bin");
    let started = Instant::now();
    let status = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", file.display()))
        .args([
            "bs=1M",
            &format!("count={mib}"),
            "conv=fdatasync",
            "status=none",
        ])
        .status()
        .expect("dd (coreutils) is needed");
    let secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "dd failed");
    let _ = std::fs::remove_file(file);
    (mib * 1024 * 1024) as f64 / secs / 1e6
}

fn create_topic(bootstrap: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))
        .unwrap();
    result[0].as_ref().expect("create topic");
}

fn produce(bootstrap: &str, topic: &str, size: usize, count: u64) -> Duration {
    let counts = Arc::new(Counts::default());
    let producer: ThreadedProducer<Counting> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.codec", "none")
        .create_with_context(Counting(Arc::clone(&counts)))
        .unwrap();
    let payload = vec![b'x'; size];
    let started = Instant::now();
    for i in 0..count {
        let key = (i % 1024).to_string();
        let mut record = BaseRecord::to(topic).key(&key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(300)).expect("flush");
    let elapsed = started.elapsed();
    assert_eq!(
        counts.failed.load(Ordering::Relaxed),
        0,
        "deliveries failed"
    );
    assert_eq!(counts.delivered.load(Ordering::Relaxed), count);
    elapsed
}

fn consume(bootstrap: &str, topic: &str, count: u64) -> Duration {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.message.max.bytes", "4194304")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let started = Instant::now();
    let mut seen = 0;
    while seen < count {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            assert!(m.payload().is_some());
            seen += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "consume stalled at {seen}"
        );
    }
    started.elapsed()
}

fn main() {
    let args = parse_args();
    let _ = std::fs::remove_dir_all(&args.data_dir);
    std::fs::create_dir_all(&args.data_dir).unwrap();
    let dd = dd_rate(&args.data_dir, args.mib);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (bootstrap, broker) = match &args.bootstrap {
        Some(addr) => (addr.clone(), None),
        None => {
            let config = BrokerConfig::new("127.0.0.1:0", args.data_dir.join("broker"));
            let broker = rt.block_on(Broker::start(config)).unwrap();
            (broker.bootstrap_servers(), Some(broker))
        }
    };
    let target = if broker.is_some() {
        "bundled sluice broker (log.flush=sync)".to_owned()
    } else {
        bootstrap.clone()
    };
    println!(
        "broker: {target}; {PARTITIONS} partitions; acks=all, idempotent producer, no compression"
    );
    println!("dd bs=1M count={} conv=fdatasync: {dd:.0} MB/s", args.mib);
    println!(
        "{:>6} {:>10} {:>14} {:>10} {:>14} {:>10} {:>9}",
        "size", "records", "produce msg/s", "MB/s", "consume msg/s", "MB/s", "vs dd"
    );
    let run = std::process::id();
    for size in [100usize, 1024] {
        let count = args.mib * 1024 * 1024 / size as u64;
        let topic = format!("bench-{size}-{run}");
        create_topic(&bootstrap, &topic);
        let produced = produce(&bootstrap, &topic, size, count);
        let consumed = consume(&bootstrap, &topic, count);
        let mb = (count * size as u64) as f64 / 1e6;
        let p_mbs = mb / produced.as_secs_f64();
        println!(
            "{size:>6} {count:>10} {:>14.0} {p_mbs:>10.1} {:>14.0} {:>10.1} {:>8.0}%",
            count as f64 / produced.as_secs_f64(),
            count as f64 / consumed.as_secs_f64(),
            mb / consumed.as_secs_f64(),
            p_mbs / dd * 100.0
        );
    }
    if let Some(broker) = broker {
        rt.block_on(broker.shutdown()).unwrap();
    }
    let _ = std::fs::remove_dir_all(&args.data_dir);
}
