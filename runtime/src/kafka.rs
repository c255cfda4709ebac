//! Kafka clients for the worker (librdkafka through the rdkafka crate), configured once.
//!
//! The worker talks to its broker only over the wire, even when the broker is embedded, so the
//! same code serves the bundled broker and an external Kafka cluster.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use tracing::{debug, info};

use crate::error::{Error, Result};
use crate::settings::WorkerSettings;

/// The admin client type the worker uses.
pub type Admin = AdminClient<DefaultClientContext>;

/// Runs `f`, blocking librdkafka calls on `client`, on the blocking pool, and hands the
/// client back with the result.
pub async fn off_async<C, R>(client: C, f: impl FnOnce(&C) -> R + Send + 'static) -> (C, R)
where
    C: Send + 'static,
    R: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let result = f(&client);
        (client, result)
    })
    .await
    .expect("a blocking librdkafka call does not panic")
}

/// Drops a librdkafka client off the async path. Destroying a client joins its threads (an
/// admin client's polling thread wakes every 100 ms; a producer's threads may wait on a broker
/// answer), so dropping one in place can stall the async thread that does it, and with it
/// everything else scheduled there.
pub fn release<C: Send + 'static>(client: C) {
    drop(RELEASES.spawn_blocking(move || drop(client)));
}

/// Clients being destroyed by [`release`], so a stopping worker can wait for them before its
/// embedded broker goes away.
static RELEASES: std::sync::LazyLock<tokio_util::task::TaskTracker> =
    std::sync::LazyLock::new(tokio_util::task::TaskTracker::new);

/// Waits up to `timeout` for every client handed to [`release`] to be destroyed; true when
/// all were.
pub async fn wait_for_released(timeout: Duration) -> bool {
    RELEASES.close();
    let done = tokio::time::timeout(timeout, RELEASES.wait()).await.is_ok();
    RELEASES.reopen();
    done
}

/// A producer shared by the worker's internal writers (offsets, status, configs, dead letters).
#[derive(Clone)]
pub struct SharedProducer(pub FutureProducer);

impl std::fmt::Debug for SharedProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedProducer")
    }
}

impl std::ops::Deref for SharedProducer {
    type Target = FutureProducer;
    fn deref(&self) -> &FutureProducer {
        &self.0
    }
}

/// Builds client configurations from the worker settings.
#[derive(Debug, Clone)]
pub struct KafkaClients {
    bootstrap: String,
    producer: BTreeMap<String, String>,
    consumer: BTreeMap<String, String>,
    admin: BTreeMap<String, String>,
}

impl KafkaClients {
    /// Clients for `bootstrap` with the worker's `producer.*`/`consumer.*`/`admin.*` settings.
    pub fn new(bootstrap: impl Into<String>, settings: &WorkerSettings) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            producer: settings.producer.clone(),
            consumer: settings.consumer.clone(),
            admin: settings.admin.clone(),
        }
    }

    /// The bootstrap servers.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap)
            .set("client.id", "sluice")
            // Keep librdkafka quiet about the embedded broker going away on shutdown.
            .set("log.connection.close", "false");
        c
    }

    /// An idempotent, acks=all producer config with Java's key partitioner (murmur2), so keys
    /// land in the same partitions as with Kafka Connect. `overrides` apply last.
    pub fn producer_config(&self, overrides: &BTreeMap<String, String>) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "200000")
            .set("queue.buffering.max.kbytes", "262144")
            .set("message.max.bytes", "1000000");
        for (k, v) in self.producer.iter().chain(overrides) {
            c.set(k, v);
        }
        c
    }

    /// A consumer config for `group` with auto-commit off, reading from the earliest offset
    /// when the group has none, and subscribed topics auto-created as by the Java consumer.
    /// `overrides` apply last.
    pub fn consumer_config(
        &self,
        group: &str,
        overrides: &BTreeMap<String, String>,
    ) -> ClientConfig {
        let mut c = self.base();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("fetch.wait.max.ms", "100")
            // As the Java consumer (and so Kafka Connect's sink tasks) does by default: a
            // subscribed topic that does not exist yet is created by the broker (if its
            // auto-creation is on) instead of being looked for again only at the next
            // metadata refresh, seconds later.
            .set("allow.auto.create.topics", "true");
        for (k, v) in self.consumer.iter().chain(overrides) {
            c.set(k, v);
        }
        c
    }

    /// A producer for the worker's own records (offsets, status, configs, dead letters).
    ///
    /// # Errors
    /// When librdkafka refuses the configuration.
    pub fn internal_producer(&self) -> Result<SharedProducer> {
        let mut c = self.producer_config(&BTreeMap::new());
        c.set("linger.ms", "1");
        Ok(SharedProducer(c.create()?))
    }

    /// A consumer without a group, for reading whole topics (offsets, configs).
    ///
    /// # Errors
    /// When librdkafka refuses the configuration.
    pub fn reader(&self) -> Result<BaseConsumer> {
        let mut c = self.consumer_config("sluice-reader", &BTreeMap::new());
        c.set("enable.partition.eof", "false");
        Ok(c.create()?)
    }

    /// An admin client.
    ///
    /// # Errors
    /// When librdkafka refuses the configuration.
    pub fn admin(&self) -> Result<Admin> {
        let mut c = self.base();
        for (k, v) in &self.admin {
            c.set(k, v);
        }
        Ok(c.create()?)
    }

    /// Waits until the cluster answers a metadata request, up to `timeout`; returns the admin
    /// client that asked, for the requests that follow (see [`release`]).
    ///
    /// # Errors
    /// When the cluster cannot be reached in time, naming the servers.
    pub async fn wait_for_cluster(&self, timeout: Duration) -> Result<Admin> {
        let (admin, answer) = off_async(self.admin()?, move |admin| {
            admin.inner().fetch_metadata(None, timeout).map(drop)
        })
        .await;
        match answer {
            Ok(()) => Ok(admin),
            Err(e) => {
                release(admin);
                Err(Error::Other(format!(
                    "cannot reach the Kafka cluster at {} within {timeout:?}: {e}; check bootstrap.servers",
                    self.bootstrap
                )))
            }
        }
    }

    /// Creates `topic` if it does not exist, compacted when `compact`.
    ///
    /// # Errors
    /// When creation fails for a reason other than the topic existing.
    pub async fn ensure_topic(&self, topic: &str, partitions: i32, compact: bool) -> Result<()> {
        self.ensure_topics(&[(topic, partitions, compact)])
            .await
            .map(|_| ())
    }

    /// Creates the missing ones of `topics` (name, partitions, compacted) in one request;
    /// returns, per topic, whether it was created now (and so is empty).
    ///
    /// # Errors
    /// When creation fails for a reason other than a topic existing.
    pub async fn ensure_topics(&self, topics: &[(&str, i32, bool)]) -> Result<Vec<bool>> {
        let admin = self.admin()?;
        let created = Self::ensure_topics_with(&admin, topics).await;
        release(admin);
        created
    }

    /// [`Self::ensure_topics`] through an admin client the caller already has.
    ///
    /// # Errors
    /// When creation fails for a reason other than a topic existing.
    pub async fn ensure_topics_with(
        admin: &Admin,
        topics: &[(&str, i32, bool)],
    ) -> Result<Vec<bool>> {
        // -1: the cluster's default replication factor (KIP-464), so a real cluster keeps its
        // usual durability and the single-node broker uses 1.
        let new_topics: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|(name, partitions, compact)| {
                let t = NewTopic::new(name, *partitions, TopicReplication::Fixed(-1));
                if *compact {
                    t.set("cleanup.policy", "compact")
                } else {
                    t
                }
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin.create_topics(&new_topics, &opts).await?;
        let mut created = Vec::with_capacity(results.len());
        for (r, (_, partitions, compact)) in results.into_iter().zip(topics) {
            match r {
                Ok(name) => {
                    info!(topic = %name, partitions, compact, "created topic");
                    created.push(true);
                }
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    debug!(topic = %name, "topic exists");
                    created.push(false);
                }
                Err((name, code)) => {
                    return Err(Error::Other(format!(
                        "cannot create topic '{name}': {}",
                        KafkaError::AdminOp(code)
                    )))
                }
            }
        }
        Ok(created)
    }
}
