//! Produce throughput over SASL_SSL (SCRAM-SHA-512, TLS 1.3) next to PLAINTEXT on the same
//! broker in the same run, and the time to set up an authenticated connection.
//!
//! ```text
//! cargo bench -p sluice-broker --bench security
//! options: --mib N (data volume per round, default 256), --rounds N (default 3),
//!          --flush sync|os (broker log.flush, default sync)
//! ```
//!
//! Rounds alternate between the listeners so that disk and machine noise fall on both; the
//! best round of each is compared. Connection set-up is the time from creating a librdkafka
//! client to its first metadata answer (TCP, TLS handshake, SCRAM exchange, ApiVersions,
//! Metadata), the median of 20.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext};
use sluice_broker::{Broker, BrokerConfig, LogFlush};

const PARTITIONS: i32 = 4;
const SIZE: usize = 1024;
const USER: &str = "bench";
const PASSWORD: &str = "bench-secret";

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

fn security(config: &mut ClientConfig, sasl_ssl: bool, ca: &str) {
    if sasl_ssl {
        config
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", USER)
            .set("sasl.password", PASSWORD)
            .set("ssl.ca.location", ca);
    }
}

fn produce(bootstrap: &str, sasl_ssl: bool, ca: &str, topic: &str, count: u64) -> Duration {
    let counts = Arc::new(Counts::default());
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("compression.codec", "none")
        .set("message.timeout.ms", "120000");
    security(&mut config, sasl_ssl, ca);
    let producer: ThreadedProducer<Counting> = config
        .create_with_context(Counting(Arc::clone(&counts)))
        .unwrap();
    let payload = vec![b'x'; SIZE];
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

fn connect_time(bootstrap: &str, sasl_ssl: bool, ca: &str) -> Duration {
    let mut times: Vec<Duration> = (0..20)
        .map(|_| {
            let mut config = ClientConfig::new();
            config.set("bootstrap.servers", bootstrap);
            security(&mut config, sasl_ssl, ca);
            let started = Instant::now();
            let consumer: BaseConsumer = config.create().unwrap();
            consumer
                .fetch_metadata(None, Duration::from_secs(10))
                .expect("metadata");
            started.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let mut mib = 256u64;
    let mut rounds = 3;
    let mut flush = LogFlush::Sync;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mib" => mib = it.next().and_then(|v| v.parse().ok()).expect("--mib N"),
            "--rounds" => rounds = it.next().and_then(|v| v.parse().ok()).expect("--rounds N"),
            "--flush" => {
                flush = match it.next().as_deref() {
                    Some("os") => LogFlush::Os,
                    _ => LogFlush::Sync,
                }
            }
            "--bench" => {}
            other => eprintln!("ignoring argument {other}"),
        }
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // A CA and a server certificate for 127.0.0.1.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sluice bench CA");
    let ca_cert = params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let ca = dir.path().join("ca.pem");
    let server = dir.path().join("server.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    std::fs::write(&server, format!("{}{}", cert.pem(), key.serialize_pem())).unwrap();
    let ca = ca.to_str().unwrap().to_owned();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let broker = rt
        .block_on(Broker::start(BrokerConfig {
            listen: "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0".to_owned(),
            ssl_keystore_location: Some(server),
            sasl_enabled_mechanisms: "SCRAM-SHA-512".to_owned(),
            scram_initial_user: Some(USER.to_owned()),
            scram_initial_password: Some(PASSWORD.to_owned()),
            log_flush: flush,
            ..BrokerConfig::new("127.0.0.1:0", dir.path().join("data"))
        }))
        .unwrap();
    let plaintext = broker.bootstrap_servers_for("PLAINTEXT").unwrap();
    let sasl_ssl = broker.bootstrap_servers_for("SASL_SSL").unwrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &plaintext)
        .create()
        .unwrap();
    let count = mib * 1024 * 1024 / SIZE as u64;
    println!(
        "{PARTITIONS} partitions, {SIZE}-byte records, {mib} MiB per round, acks=all, idempotent, log.flush={flush:?}"
    );
    let mut best = [0f64; 2];
    for round in 0..rounds {
        for (i, (name, bootstrap, secure)) in [
            ("PLAINTEXT", &plaintext, false),
            ("SASL_SSL", &sasl_ssl, true),
        ]
        .into_iter()
        .enumerate()
        {
            let topic = format!("bench-{round}-{name}");
            rt.block_on(admin.create_topics(
                &[NewTopic::new(
                    &topic,
                    PARTITIONS,
                    TopicReplication::Fixed(1),
                )],
                &AdminOptions::new(),
            ))
            .unwrap()[0]
                .as_ref()
                .unwrap();
            let took = produce(bootstrap, secure, &ca, &topic, count);
            let mbs = (count * SIZE as u64) as f64 / 1e6 / took.as_secs_f64();
            println!("round {round} {name:>9}: {mbs:7.1} MB/s");
            best[i] = best[i].max(mbs);
        }
    }
    println!(
        "best: PLAINTEXT {:.1} MB/s, SASL_SSL {:.1} MB/s: SASL_SSL at {:.0}% of PLAINTEXT",
        best[0],
        best[1],
        best[1] / best[0] * 100.0
    );
    println!(
        "connection set-up to first metadata (median of 20): PLAINTEXT {:.1} ms, SASL_SSL + SCRAM-SHA-512 {:.1} ms",
        connect_time(&plaintext, false, &ca).as_secs_f64() * 1e3,
        connect_time(&sasl_ssl, true, &ca).as_secs_f64() * 1e3
    );
    drop(admin);
    rt.block_on(broker.shutdown()).unwrap();
}
