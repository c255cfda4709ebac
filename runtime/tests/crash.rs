//! Crash safety: an idempotent acks=all producer (this test process) writes while the broker
//! process is killed with SIGKILL and restarted; every acknowledged record must be readable
//! afterwards, in order, none twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use crate::support::cli_tools::{BrokerProcess, TIMEOUT};

const TOPIC: &str = "crash";
const TOTAL: usize = 20_000;

fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigkill_mid_stream_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = BrokerProcess::start(&data, "127.0.0.1:0");
    let port = broker.port();
    let addr = broker.addr.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "120000")
        .set("reconnect.backoff.ms", "20")
        .set("reconnect.backoff.max.ms", "200")
        .set("retry.backoff.ms", "20")
        .create()
        .unwrap();
    let acked = Arc::new(Mutex::new(Vec::<usize>::new()));
    let failed = Arc::new(Mutex::new(Vec::<String>::new()));
    let sender = {
        let (acked, failed) = (Arc::clone(&acked), Arc::clone(&failed));
        let producer = producer.clone();
        runtime.spawn(async move {
            let permits = Arc::new(tokio::sync::Semaphore::new(2000));
            let mut tasks = Vec::with_capacity(TOTAL);
            for i in 0..TOTAL {
                let permit = Arc::clone(&permits).acquire_owned().await.unwrap();
                let payload = format!("record-{i:06}");
                let delivery = loop {
                    match producer.send_result(
                        FutureRecord::<str, str>::to(TOPIC)
                            .partition(0)
                            .payload(&payload),
                    ) {
                        Ok(d) => break d,
                        // Local queue full while the broker is down: wait and retry.
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                };
                let (acked, failed) = (Arc::clone(&acked), Arc::clone(&failed));
                tasks.push(tokio::spawn(async move {
                    match delivery.await {
                        Ok(Ok(_)) => acked.lock().unwrap().push(i),
                        Ok(Err((e, _))) => failed.lock().unwrap().push(format!("{i}: {e}")),
                        Err(_) => failed.lock().unwrap().push(format!("{i}: cancelled")),
                    }
                    drop(permit);
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        })
    };
    // Kill the broker while records are streaming, well after the first acks.
    wait_until("first acknowledgements", TIMEOUT, || {
        acked.lock().unwrap().len() >= 3000
    });
    let acked_before_kill = acked.lock().unwrap().len();
    broker.kill();
    assert!(
        acked_before_kill < TOTAL,
        "the stream finished before the kill"
    );
    let broker = BrokerProcess::start(&data, &format!("127.0.0.1:{port}"));
    runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(120), sender).await })
        .expect("producer did not finish")
        .unwrap();
    let failed = failed.lock().unwrap().clone();
    let acked: HashSet<usize> = acked.lock().unwrap().iter().copied().collect();
    assert!(
        failed.is_empty(),
        "deliveries failed: {:?}",
        &failed[..failed.len().min(5)]
    );

    // Read everything back from the restarted broker.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "crash-check")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let (low, high) = consumer.fetch_watermarks(TOPIC, 0, TIMEOUT).unwrap();
    assert_eq!(low, 0);
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&list).unwrap();
    let mut seen = Vec::with_capacity(high as usize);
    let deadline = Instant::now() + TIMEOUT;
    while (seen.len() as i64) < high {
        assert!(
            Instant::now() < deadline,
            "read only {} of {high} records",
            seen.len()
        );
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            let text = std::str::from_utf8(m.payload().unwrap()).unwrap();
            seen.push(
                text.strip_prefix("record-")
                    .unwrap()
                    .parse::<usize>()
                    .unwrap(),
            );
        }
    }
    let unique: HashSet<usize> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "some records were stored twice");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "records out of order");
    let missing: Vec<usize> = acked
        .iter()
        .filter(|i| !unique.contains(i))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(acked.len(), TOTAL);
    assert_eq!(seen.len(), TOTAL, "every record is stored exactly once");
    let log = std::fs::read_to_string(data.with_extension("log")).unwrap();
    assert!(log.contains("partition loaded"), "restart log: {log}");
}
