//! The Kafka-backed store: the compacted, single-partition `_schemas` topic, read through to
//! its end before every answer, so a restarted registry keeps every id and several registries
//! on one cluster agree.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::debug;

use crate::error::{Error, Result};
use crate::state::State;

/// Confluent's default storage topic.
pub const DEFAULT_TOPIC: &str = "_schemas";

/// How long one read to the end or one write may take before it is an error.
const STORE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how the store reaches Kafka.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// The storage topic (`kafkastore.topic`, default `_schemas`).
    pub topic: String,
    /// Extra librdkafka properties for every client (security and the like).
    pub client: BTreeMap<String, String>,
}

impl StoreConfig {
    /// The `_schemas` topic on `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            topic: DEFAULT_TOPIC.to_string(),
            client: BTreeMap::new(),
        }
    }

    fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        for (k, v) in &self.client {
            c.set(k, v);
        }
        c
    }
}

/// A record's key and value (`None`: a tombstone) as read.
type RawRecord = (Vec<u8>, Option<Vec<u8>>);

/// The topic reader and how far it has read.
struct Reader {
    consumer: BaseConsumer,
    next: i64,
}

/// The store.
pub struct KafkaStore {
    config: StoreConfig,
    /// Made on the first write: a registry that is only read (most of them, most of the
    /// time) keeps no producer and its threads.
    producer: std::sync::OnceLock<Arc<FutureProducer>>,
    reader: Arc<Mutex<Reader>>,
    state: RwLock<State>,
    /// One read to the end at a time.
    sync: tokio::sync::Mutex<()>,
    /// One write (decide, produce, read back) at a time in this registry.
    write: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KafkaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStore")
            .field("topic", &self.config.topic)
            .finish_non_exhaustive()
    }
}

impl KafkaStore {
    /// Creates the topic when missing (compacted, one partition) and reads it to its end.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the cluster cannot be used.
    pub async fn open(config: StoreConfig) -> Result<Self> {
        let kafka = |message: String| Error::Kafka {
            topic: config.topic.clone(),
            message,
        };
        let admin: AdminClient<DefaultClientContext> = config
            .client_config()
            .create()
            .map_err(|e| kafka(e.to_string()))?;
        let topic = NewTopic::new(&config.topic, 1, TopicReplication::Fixed(-1))
            .set("cleanup.policy", "compact");
        let created = admin
            .create_topics(
                &[topic],
                &AdminOptions::new().operation_timeout(Some(STORE_TIMEOUT)),
            )
            .await
            .map_err(|e| kafka(format!("cannot create the topic: {e}")))?;
        for r in created {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(kafka(format!("cannot create the topic: {code}"))),
            }
        }
        tokio::task::spawn_blocking(move || drop(admin));
        let consumer: BaseConsumer = config
            .client_config()
            .set("group.id", "schema-registry")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            // A long poll the broker ends as soon as a record is appended: reads back are
            // immediate, and an idle registry does not fetch a hundred times a second.
            .set("fetch.wait.max.ms", "500")
            .create()
            .map_err(|e| kafka(e.to_string()))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&config.topic, 0, Offset::Beginning)
            .map_err(|e| kafka(e.to_string()))?;
        consumer.assign(&tpl).map_err(|e| kafka(e.to_string()))?;
        let store = Self {
            config,
            producer: std::sync::OnceLock::new(),
            reader: Arc::new(Mutex::new(Reader { consumer, next: 0 })),
            state: RwLock::new(State::default()),
            sync: tokio::sync::Mutex::new(()),
            write: tokio::sync::Mutex::new(()),
        };
        store.read_to_end().await?;
        Ok(store)
    }

    /// The state as of the last read. Read to the end first ([`KafkaStore::read_to_end`]).
    pub fn state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Serializes the writes of this registry: hold the guard across decide, write, read back.
    pub async fn write_guard(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write.lock().await
    }

    /// Reads every record up to the topic's current end into the state.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the end cannot be learned or reached in time.
    pub async fn read_to_end(&self) -> Result<()> {
        self.read_past(-1).await
    }

    /// Reads to the end, and at least past `offset`.
    async fn read_past(&self, offset: i64) -> Result<()> {
        let _one = self.sync.lock().await;
        let reader = self.reader.clone();
        let topic = self.config.topic.clone();
        let records = tokio::task::spawn_blocking(move || {
            let mut reader = reader
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            read_records(&mut reader, &topic, offset)
        })
        .await
        .map_err(|e| Error::Kafka {
            topic: self.config.topic.clone(),
            message: e.to_string(),
        })??;
        if !records.is_empty() {
            let mut state = self
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (key, value) in &records {
                state.apply(key, value.as_deref());
            }
        }
        Ok(())
    }

    /// Writes one record (`None`: a tombstone) and reads the topic until it is applied.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the write or the read back fails.
    pub async fn put(&self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<()> {
        let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&self.config.topic)
            .key(&key)
            .partition(0);
        if let Some(v) = &value {
            record = record.payload(v);
        }
        let delivered = self
            .producer()?
            .send(record, STORE_TIMEOUT)
            .await
            .map_err(|(e, _)| Error::Kafka {
                topic: self.config.topic.clone(),
                message: format!("write failed: {e}"),
            })?;
        debug!(offset = delivered.offset, "_schemas record written");
        self.read_past(delivered.offset).await
    }
}

impl KafkaStore {
    /// The producer, made on first use.
    fn producer(&self) -> Result<Arc<FutureProducer>> {
        if let Some(producer) = self.producer.get() {
            return Ok(producer.clone());
        }
        let producer: FutureProducer = self
            .config
            .client_config()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "0")
            .create()
            .map_err(|e| Error::Kafka {
                topic: self.config.topic.clone(),
                message: e.to_string(),
            })?;
        // Writes are serialised by the write guard, but a race only makes a spare producer.
        Ok(self.producer.get_or_init(|| Arc::new(producer)).clone())
    }
}

impl Drop for KafkaStore {
    /// Destroying a librdkafka client joins its threads: do it off the async threads.
    fn drop(&mut self) {
        let producer = self.producer.take();
        let reader = self.reader.clone();
        std::thread::spawn(move || drop((producer, reader)));
    }
}

/// Polls records until the reader is past the high watermark (and past `at_least`).
fn read_records(reader: &mut Reader, topic: &str, at_least: i64) -> Result<Vec<RawRecord>> {
    let kafka = |message: String| Error::Kafka {
        topic: topic.to_string(),
        message,
    };
    let deadline = Instant::now() + STORE_TIMEOUT;
    // A topic created a moment ago may not be known everywhere yet: ask until the deadline.
    let high = loop {
        match reader
            .consumer
            .fetch_watermarks(topic, 0, Duration::from_secs(2))
        {
            Ok((_, high)) => break high,
            Err(e) if Instant::now() > deadline => {
                return Err(kafka(format!("cannot learn the end of the topic: {e}")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let target = high.max(at_least + 1);
    let mut out = Vec::new();
    while reader.next < target {
        if Instant::now() > deadline {
            return Err(kafka(format!(
                "read only to offset {} of {target} in {} s",
                reader.next,
                STORE_TIMEOUT.as_secs()
            )));
        }
        match reader.consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                reader.next = m.offset() + 1;
                if let Some(key) = m.key() {
                    out.push((key.to_vec(), m.payload().map(<[u8]>::to_vec)));
                }
            }
            Some(Err(e)) => return Err(kafka(format!("read failed: {e}"))),
            None => {
                // Compaction can leave gaps: the fetch position says how far the log goes.
                if let Ok(tpl) = reader.consumer.position() {
                    if let Some(Offset::Offset(p)) =
                        tpl.find_partition(topic, 0).map(|p| p.offset())
                    {
                        reader.next = reader.next.max(p);
                    }
                }
            }
        }
    }
    Ok(out)
}
