//! The sink task loop.
//!
//! Consumer group `connect-<name>` (auto-commit off) -> key/value converters -> `put` ->
//! periodic `flush` -> commit of the offsets of everything put before the flush. Records the
//! converters cannot read follow the error policy (dead letter topic or task failure); records
//! the connector reports through the errant-record reporter likewise.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sluice_sdk::{
    async_trait, ConvertError, ErrantRecordReporter, Error as SdkError, Header, SinkRecord,
    SinkTask, SinkTaskContext, TimestampType, TopicPartition,
};
use tracing::{debug, info, warn};

use super::TaskEnv;
use crate::backoff::Backoff;
use crate::converter::Converter;
use crate::dlq::{DeadLetterReporter, FailedRecord, Failure};
use crate::errors::{Stage, DATA_EXCEPTION};
use crate::kafka::off_async;
use crate::metrics::PartitionOffset;
use crate::status::{State, TaskProblemReporter};
use crate::transforms::TransformRecord;

/// Most records handed to one `put`.
const MAX_BATCH: usize = 4096;

#[derive(Debug)]
enum RebalanceEvent {
    Assigned(Vec<TopicPartition>),
    Revoked(Vec<TopicPartition>),
}

/// Rebalance events and lag statistics from librdkafka's callbacks.
#[derive(Debug, Default)]
struct SinkConsumerContext {
    events: Mutex<Vec<RebalanceEvent>>,
    /// Offsets flushed by the sink and safe to commit, kept so a revocation can commit them.
    flushed: Mutex<BTreeMap<TopicPartition, i64>>,
    lag: std::sync::atomic::AtomicI64,
    /// Per partition in the last statistics: the end offset and the group's lag.
    partitions: Mutex<BTreeMap<(String, i32), PartitionOffset>>,
}

fn partitions_of(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition::new(e.topic(), e.partition()))
        .collect()
}

impl ClientContext for SinkConsumerContext {
    fn stats(&self, statistics: Statistics) {
        let lag: i64 = statistics
            .topics
            .values()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.partition >= 0 && p.consumer_lag >= 0)
            .map(|p| p.consumer_lag)
            .sum();
        self.lag.store(lag, Ordering::Relaxed);
        let partitions = statistics
            .topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .values()
                    .filter(|p| p.partition >= 0 && p.hi_offset >= 0)
                    .map(|p| {
                        (
                            (t.topic.clone(), p.partition),
                            PartitionOffset {
                                end: p.hi_offset,
                                lag: (p.consumer_lag >= 0).then_some(p.consumer_lag),
                            },
                        )
                    })
            })
            .collect();
        *self.partitions.lock().expect("partitions lock") = partitions;
    }
}

impl ConsumerContext for SinkConsumerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = partitions_of(tpl);
            // Commit what the sink has already flushed for the partitions leaving us, so the
            // next owner starts after it.
            let flushed = self.flushed.lock().expect("flushed lock");
            let mut commit = TopicPartitionList::new();
            for tp in &revoked {
                if let Some(offset) = flushed.get(tp) {
                    let _ = commit.add_partition_offset(
                        &tp.topic,
                        tp.partition,
                        Offset::Offset(*offset),
                    );
                }
            }
            if commit.count() > 0 {
                if let Err(e) = consumer.commit(&commit, CommitMode::Sync) {
                    warn!(error = %e, "commit on partition revocation failed; the new owner may see records again");
                }
            }
            self.events
                .lock()
                .expect("events lock")
                .push(RebalanceEvent::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.events
                .lock()
                .expect("events lock")
                .push(RebalanceEvent::Assigned(partitions_of(tpl)));
        }
    }
}

type SinkConsumer = BaseConsumer<SinkConsumerContext>;

/// Keys and values a reused batch buffer may keep between batches; a larger one is freed.
const MAX_KEPT_BATCH_BYTES: usize = 16 << 20;

/// Consumed messages copied out of librdkafka, their keys and values in one buffer: a batch
/// costs a few allocations, not two per message, and the buffers are reused for the next.
#[derive(Debug, Default)]
struct RawBatch {
    messages: Vec<RawMessage>,
    bytes: Vec<u8>,
}

/// A consumed message; its key and value are ranges of its batch's bytes.
#[derive(Debug)]
struct RawMessage {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    key: Option<Range<usize>>,
    value: Option<Range<usize>>,
    timestamp: Timestamp,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl RawBatch {
    fn key(&self, m: &RawMessage) -> Option<&[u8]> {
        m.key.clone().map(|r| &self.bytes[r])
    }

    fn value(&self, m: &RawMessage) -> Option<&[u8]> {
        m.value.clone().map(|r| &self.bytes[r])
    }

    fn copy(&mut self, bytes: Option<&[u8]>) -> Option<Range<usize>> {
        let bytes = bytes?;
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        Some(start..self.bytes.len())
    }

    /// Empties the batch for reuse, keeping its buffers unless they grew large.
    fn clear(&mut self) {
        self.messages.clear();
        self.bytes.clear();
        if self.bytes.capacity() > MAX_KEPT_BATCH_BYTES {
            self.bytes = Vec::new();
        }
    }
}

/// Reads up to [`MAX_BATCH`] messages into `out` (emptied first), waiting at most `wait` for
/// the first.
fn poll_batch(consumer: &SinkConsumer, wait: Duration, out: &mut RawBatch) -> Result<(), String> {
    out.clear();
    let mut timeout = wait;
    // Messages of a batch mostly share a topic: share its name instead of copying it.
    let mut topic: Arc<str> = Arc::from("");
    while out.messages.len() < MAX_BATCH {
        match consumer.poll(timeout) {
            None => break,
            Some(Err(e)) => {
                if out.messages.is_empty() {
                    return Err(e.to_string());
                }
                break;
            }
            Some(Ok(m)) => {
                if *topic != *m.topic() {
                    topic = Arc::from(m.topic());
                }
                let key = out.copy(m.key());
                let value = out.copy(m.payload());
                out.messages.push(RawMessage {
                    topic: topic.clone(),
                    partition: m.partition(),
                    offset: m.offset(),
                    key,
                    value,
                    timestamp: m.timestamp(),
                    headers: m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
                timeout = Duration::ZERO;
            }
        }
    }
    Ok(())
}

/// The errant-record reporter handed to sink tasks: re-encodes the record with the
/// connector's converters and applies the error policy.
#[derive(Debug)]
struct SinkErrantReporter {
    dead_letters: DeadLetterReporter,
    key_converter: Arc<dyn Converter>,
    value_converter: Arc<dyn Converter>,
    class_name: String,
}

#[async_trait]
impl ErrantRecordReporter for SinkErrantReporter {
    async fn report(&self, record: &SinkRecord, error: &SdkError) -> sluice_sdk::Result<()> {
        let failed = FailedRecord {
            topic: record.topic.clone(),
            partition: record.kafka_partition,
            offset: record.kafka_offset,
            key: self
                .key_converter
                .encode_for(&record.topic, record.key_schema.as_deref(), &record.key)
                .ok()
                .flatten(),
            value: self
                .value_converter
                .encode_for(&record.topic, record.value_schema.as_deref(), &record.value)
                .ok()
                .flatten(),
            headers: record
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
            timestamp: record.timestamp,
        };
        let failure = Failure {
            stage: Stage::TaskPut,
            class_name: self.class_name.clone(),
            exception_class: DATA_EXCEPTION,
            message: error.to_string(),
        };
        self.dead_letters
            .report(&failed, &failure)
            .await
            .map_err(SdkError::fatal)
    }
}

/// Runs one sink task until it is cancelled or fails, then flushes, commits and stops it.
pub async fn run_sink_task(mut env: TaskEnv, mut task: Box<dyn SinkTask>) {
    let connector = env.connector.clone();
    let id = env.task_id;
    let dead_letters = env.dead_letters();
    let reporter = Arc::new(SinkErrantReporter {
        dead_letters: dead_letters.clone(),
        key_converter: env.settings.key_converter.clone(),
        value_converter: env.settings.value_converter.clone(),
        class_name: env.settings.plugin.class.clone(),
    });
    let ctx = SinkTaskContext::new(
        connector.clone(),
        id,
        env.task_config.clone(),
        reporter,
        Arc::new(TaskProblemReporter {
            store: env.status.clone(),
            connector: connector.clone(),
            task: id,
        }),
    );
    let mut backoff = Backoff::new(env.settings.errors.retry_delay_max);
    let startups = env.registry.clone();
    let startups = &startups.worker;
    startups
        .task_startup_attempts
        .fetch_add(1, Ordering::Relaxed);
    loop {
        // A start waiting on an unreachable system is abandoned when the task is stopped.
        let started = tokio::select! {
            biased;
            () = env.token.cancelled() => return,
            started = task.start(ctx.clone()) => started,
        };
        match started {
            Ok(()) => {
                startups
                    .task_startup_successes
                    .fetch_add(1, Ordering::Relaxed);
                ctx.report_problem(None);
                break;
            }
            Err(e) if e.is_retriable() => {
                ctx.report_problem(Some(format!("cannot start yet, retrying: {e}")));
                if !backoff.wait(&env.token).await {
                    return;
                }
            }
            Err(e) => {
                startups
                    .task_startup_failures
                    .fetch_add(1, Ordering::Relaxed);
                env.status.set_task(
                    &connector,
                    id,
                    State::Failed,
                    Some(format!("task start failed: {e}")),
                );
                return;
            }
        }
    }
    let consumer = match create_consumer(&env).await {
        Ok(c) => Arc::new(c),
        Err(e) => {
            env.status.set_task(&connector, id, State::Failed, Some(e));
            let _ = task.stop().await;
            return;
        }
    };
    env.status.set_task(&connector, id, State::Running, None);
    let mut state = SinkState {
        consumer,
        dead_letters,
        processed: BTreeMap::new(),
        assigned: BTreeSet::new(),
        put_since_flush: false,
    };
    let outcome = sink_loop(&mut env, task.as_mut(), &mut state).await;
    let final_commit = match &outcome {
        Ok(()) => state.flush_and_commit(&env, task.as_mut()).await,
        Err(_) => Ok(()),
    };
    let assigned: Vec<TopicPartition> = state.assigned.iter().cloned().collect();
    if !assigned.is_empty() {
        let _ = task.close(&assigned).await;
    }
    if let Err(e) = task.stop().await {
        warn!(connector = %connector, task = id, error = %e, "task stop failed");
    }
    // Closing a consumer leaves its group and joins its threads: it must happen on a blocking
    // thread, and this must be the last handle to it (one left in `state` would be dropped,
    // closed and joined on this async thread, holding up every task scheduled there: with
    // hundreds of sinks stopping at once, they would then close one by one).
    let SinkState { consumer, .. } = state;
    let _ = tokio::task::spawn_blocking(move || {
        consumer.unsubscribe();
        drop(consumer);
    })
    .await;
    match outcome.and(final_commit) {
        Ok(()) => info!(connector = %connector, task = id, "sink task stopped"),
        Err(trace) => env
            .status
            .set_task(&connector, id, State::Failed, Some(trace)),
    }
}

async fn create_consumer(env: &TaskEnv) -> Result<SinkConsumer, String> {
    let group = format!("connect-{}", env.connector);
    let mut config = env
        .clients
        .consumer_config(&group, &env.settings.consumer_overrides);
    config.set("statistics.interval.ms", "5000");
    env.metrics
        .partition_offsets
        .lock()
        .expect("partition offsets lock")
        .group = config.get("group.id").unwrap_or(&group).to_string();
    let consumer: SinkConsumer = config
        .create_with_context(SinkConsumerContext::default())
        .map_err(|e| format!("cannot create the Kafka consumer: {e}"))?;
    let consumer = if env.settings.topics_regex.is_none() {
        look_up_topics(consumer, env.settings.topics.clone()).await
    } else {
        consumer
    };
    let subscription: Vec<String> = match &env.settings.topics_regex {
        // librdkafka subscribes by pattern when the name starts with '^'.
        Some(re) => vec![re.as_str().to_string()],
        None => env.settings.topics.clone(),
    };
    let refs: Vec<&str> = subscription.iter().map(String::as_str).collect();
    consumer
        .subscribe(&refs)
        .map_err(|e| format!("cannot subscribe to {subscription:?}: {e}"))?;
    info!(connector = %env.connector, task = env.task_id, group, topics = ?subscription, "sink task subscribed");
    Ok(consumer)
}

/// Asks the cluster for each subscribed topic by name before subscribing. As with the Java
/// consumer Kafka Connect uses, this creates a topic that does not exist yet when the broker
/// auto-creates topics. librdkafka's own subscription never does, and would see the topic only
/// at a later metadata refresh: a sink started next to the source feeding it would wait
/// seconds for its first record.
async fn look_up_topics(consumer: SinkConsumer, topics: Vec<String>) -> SinkConsumer {
    let (consumer, ()) = off_async(consumer, move |consumer| {
        for topic in &topics {
            if let Err(e) = consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
                // The subscription retries on its own; this was only a head start.
                debug!(topic, error = %e, "topic lookup before subscribing failed");
                break;
            }
        }
    })
    .await;
    consumer
}

struct SinkState {
    consumer: Arc<SinkConsumer>,
    dead_letters: DeadLetterReporter,
    /// Next offset to commit per partition, for records given to `put` (or dead-lettered).
    processed: BTreeMap<TopicPartition, i64>,
    assigned: BTreeSet<TopicPartition>,
    put_since_flush: bool,
}

impl SinkState {
    /// Flushes the sink, then commits the offsets of everything it was given.
    async fn flush_and_commit(
        &mut self,
        env: &TaskEnv,
        task: &mut dyn SinkTask,
    ) -> Result<(), String> {
        if self.processed.is_empty() {
            return Ok(());
        }
        if self.put_since_flush {
            let mut backoff = Backoff::new(env.settings.errors.retry_delay_max);
            loop {
                match task.flush().await {
                    Ok(()) => break,
                    Err(e) if e.is_retriable() => {
                        env.status.set_task_problem(
                            &env.connector,
                            env.task_id,
                            Some(format!("flush failed, retrying: {e}")),
                        );
                        // Once the task is stopped a failing flush is not retried (the stop
                        // keeps its deadline): these records are not committed, so they are
                        // delivered again after a restart.
                        if !backoff.wait(&env.token).await {
                            warn!(connector = %env.connector, task = env.task_id, partitions = self.processed.len(), "stopped while the flush was failing; the uncommitted records will be delivered again");
                            self.processed.clear();
                            return Ok(());
                        }
                    }
                    Err(e) => {
                        return Err(format!(
                            "{} failed to flush: {e}",
                            env.settings.plugin.class
                        ));
                    }
                }
            }
            self.put_since_flush = false;
        }
        let offsets = std::mem::take(&mut self.processed);
        self.consumer
            .context()
            .flushed
            .lock()
            .expect("flushed lock")
            .extend(offsets.iter().map(|(k, v)| (k.clone(), *v)));
        let mut tpl = TopicPartitionList::new();
        for (tp, offset) in &offsets {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*offset))
                .map_err(|e| e.to_string())?;
        }
        let consumer = self.consumer.clone();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || consumer.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| e.to_string())?;
        env.metrics
            .record_offset_commit(started.elapsed(), result.is_ok());
        match result {
            Ok(()) => {
                env.metrics.active_records.store(0, Ordering::Relaxed);
                debug!(connector = %env.connector, task = env.task_id, partitions = offsets.len(), "committed sink offsets");
            }
            Err(e) => {
                // Not fatal: the records are in the sink; after a rebalance or restart they may
                // be delivered again, never skipped.
                if env
                    .log_limiter
                    .admit("sink offset commit failures", env.task_name())
                {
                    warn!(connector = %env.connector, task = env.task_id, error = %e, "sink offset commit failed");
                }
            }
        }
        Ok(())
    }

    async fn handle_rebalances(
        &mut self,
        env: &TaskEnv,
        task: &mut dyn SinkTask,
    ) -> Result<(), String> {
        let events =
            std::mem::take(&mut *self.consumer.context().events.lock().expect("events lock"));
        for event in events {
            match event {
                RebalanceEvent::Assigned(parts) => {
                    info!(connector = %env.connector, task = env.task_id, partitions = ?parts, "partitions assigned");
                    self.assigned.extend(parts.iter().cloned());
                    for tp in &parts {
                        if env.registry.note_topic(&env.connector, &tp.topic) {
                            env.status.put_topic(&env.connector, env.task_id, &tp.topic);
                        }
                    }
                    task.open(&parts)
                        .await
                        .map_err(|e| format!("open failed: {e}"))?;
                    if env.paused() {
                        self.pause_consumer(true).await;
                    }
                }
                RebalanceEvent::Revoked(parts) => {
                    info!(connector = %env.connector, task = env.task_id, partitions = ?parts, "partitions revoked");
                    {
                        let mut flushed = self
                            .consumer
                            .context()
                            .flushed
                            .lock()
                            .expect("flushed lock");
                        for tp in &parts {
                            self.assigned.remove(tp);
                            self.processed.remove(tp);
                            flushed.remove(tp);
                        }
                    }
                    task.close(&parts)
                        .await
                        .map_err(|e| format!("close failed: {e}"))?;
                }
            }
        }
        Ok(())
    }

    async fn pause_consumer(&self, pause: bool) {
        let consumer = self.consumer.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Ok(assignment) = consumer.assignment() {
                let result = if pause {
                    consumer.pause(&assignment)
                } else {
                    consumer.resume(&assignment)
                };
                if let Err(e) = result {
                    warn!(error = %e, "could not pause or resume the consumer");
                }
            }
        })
        .await;
    }

    /// Converts raw messages and applies the transforms; failures follow the error policy.
    /// Returns the records and the indexes in `batch` of the messages they came from.
    async fn convert(
        &mut self,
        env: &TaskEnv,
        batch: &RawBatch,
    ) -> Result<Option<(Vec<SinkRecord>, Vec<usize>)>, String> {
        let mut records = Vec::with_capacity(batch.messages.len());
        let mut good = Vec::with_capacity(batch.messages.len());
        for (i, m) in batch.messages.iter().enumerate() {
            let mut outage = 0u32;
            let converted = loop {
                match convert_one(env, batch, m) {
                    // A registry outage: the same message converts once it is back.
                    Err((_, _, ConvertError::Retriable(e))) => {
                        outage += 1;
                        if !env.wait_out_outage(outage, &e).await {
                            return Ok(None);
                        }
                    }
                    other => {
                        if outage > 0 {
                            env.outage_over();
                        }
                        break other;
                    }
                }
            };
            match converted {
                Ok(Some(record)) => {
                    records.push(record);
                    good.push(i);
                }
                Ok(None) => {}
                Err((stage, class_name, error)) => {
                    let message = format!(
                        "{error} (topic {}, partition {}, offset {})",
                        m.topic, m.partition, m.offset
                    );
                    let failed = FailedRecord {
                        topic: m.topic.to_string(),
                        partition: m.partition,
                        offset: m.offset,
                        key: batch.key(m).map(<[u8]>::to_vec),
                        value: batch.value(m).map(<[u8]>::to_vec),
                        headers: m.headers.clone(),
                        timestamp: m.timestamp.to_millis(),
                    };
                    let failure = Failure {
                        stage,
                        class_name,
                        exception_class: DATA_EXCEPTION,
                        message,
                    };
                    self.dead_letters.report(&failed, &failure).await?;
                    self.processed.insert(
                        TopicPartition::new(failed.topic.clone(), failed.partition),
                        failed.offset + 1,
                    );
                }
            }
        }
        Ok(Some((records, good)))
    }
}

/// One message to a sink record: converters, then transforms; `None` when a transform dropped
/// it. The error names the stage and the class that failed.
fn convert_one(
    env: &TaskEnv,
    batch: &RawBatch,
    m: &RawMessage,
) -> Result<Option<SinkRecord>, (Stage, String, ConvertError)> {
    let class = |option: &str| {
        crate::converter::class_name(env.settings.props.get(option).map_or("", String::as_str))
            .to_string()
    };
    let (key_schema, key) = env
        .settings
        .key_converter
        .decode_for(&m.topic, batch.key(m))
        .map_err(|e| (Stage::KeyConverter, class("key.converter"), e))?;
    let (value_schema, value) = env
        .settings
        .value_converter
        .decode_for(&m.topic, batch.value(m))
        .map_err(|e| (Stage::ValueConverter, class("value.converter"), e))?;
    let (timestamp, timestamp_type) = match m.timestamp {
        Timestamp::NotAvailable => (None, TimestampType::NoTimestamp),
        Timestamp::CreateTime(t) => (Some(t), TimestampType::CreateTime),
        Timestamp::LogAppendTime(t) => (Some(t), TimestampType::LogAppendTime),
    };
    let mut record = SinkRecord {
        topic: m.topic.to_string(),
        kafka_partition: m.partition,
        kafka_offset: m.offset,
        key_schema,
        key,
        value_schema,
        value,
        timestamp,
        timestamp_type,
        headers: m
            .headers
            .iter()
            .map(|(key, value)| Header {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
    };
    if !env.settings.transforms.is_empty() {
        let view = TransformRecord {
            topic: std::mem::take(&mut record.topic),
            kafka_partition: Some(record.kafka_partition),
            kafka_offset: Some(record.kafka_offset),
            key_schema: record.key_schema.take(),
            key: std::mem::take(&mut record.key),
            value_schema: record.value_schema.take(),
            value: std::mem::take(&mut record.value),
            timestamp: record.timestamp,
            headers: std::mem::take(&mut record.headers),
        };
        let Some(t) = env.settings.transforms.apply(view).map_err(|e| {
            (
                Stage::Transformation,
                e.class,
                ConvertError::Data(e.message),
            )
        })?
        else {
            // Dropped by a transform (Filter): its offset is committed with the batch's.
            return Ok(None);
        };
        record.topic = t.topic;
        record.key_schema = t.key_schema;
        record.key = t.key;
        record.value_schema = t.value_schema;
        record.value = t.value;
        record.timestamp = t.timestamp;
        record.headers = t.headers;
    }
    Ok(Some(record))
}

async fn sink_loop(
    env: &mut TaskEnv,
    task: &mut dyn SinkTask,
    state: &mut SinkState,
) -> Result<(), String> {
    let mut next_commit = Instant::now() + env.flush_interval;
    // The previous batch, emptied and polled into again.
    let mut spare = RawBatch::default();
    loop {
        if env.token.is_cancelled() {
            return Ok(());
        }
        if env.paused() {
            state.flush_and_commit(env, task).await?;
            state.pause_consumer(true).await;
            env.status
                .set_task(&env.connector, env.task_id, State::Paused, None);
            // Keep serving the group protocol (heartbeats, rebalances) while paused.
            while env.paused() && !env.token.is_cancelled() {
                let consumer = state.consumer.clone();
                let polled = tokio::task::spawn_blocking(move || {
                    let mut batch = RawBatch::default();
                    let polled = poll_batch(&consumer, Duration::from_millis(100), &mut batch);
                    // Messages of a partition assigned before it could be paused: rewind, so
                    // they are read again after the resume instead of being skipped.
                    if polled.is_ok() {
                        let mut first: BTreeMap<(String, i32), i64> = BTreeMap::new();
                        for m in &batch.messages {
                            first.entry((m.topic.to_string(), m.partition)).or_insert(m.offset);
                        }
                        for ((topic, partition), offset) in first {
                            if let Err(e) = consumer.seek(&topic, partition, Offset::Offset(offset), Duration::from_secs(10)) {
                                return Err(format!("cannot rewind {topic}-{partition} to {offset} while paused: {e}"));
                            }
                        }
                    }
                    Ok(())
                })
                .await
                .map_err(|e| e.to_string())?;
                polled?;
                state.handle_rebalances(env, task).await?;
                tokio::select! {
                    _ = env.token.cancelled() => {}
                    _ = env.target.changed() => {}
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            if env.token.is_cancelled() {
                return Ok(());
            }
            state.pause_consumer(false).await;
            env.status
                .set_task(&env.connector, env.task_id, State::Running, None);
        }
        let consumer = state.consumer.clone();
        let wait = next_commit
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), Duration::from_millis(200));
        let mut batch = std::mem::take(&mut spare);
        let (batch, polled) = tokio::select! {
            _ = env.token.cancelled() => return Ok(()),
            r = tokio::task::spawn_blocking(move || {
                let polled = poll_batch(&consumer, wait, &mut batch);
                (batch, polled)
            }) => r.map_err(|e| e.to_string())?,
        };
        state.handle_rebalances(env, task).await?;
        env.metrics
            .partition_count
            .store(state.assigned.len() as i64, Ordering::Relaxed);
        env.metrics.sink_lag.store(
            state.consumer.context().lag.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        env.metrics
            .partition_offsets
            .lock()
            .expect("partition offsets lock")
            .partitions
            .clone_from(
                &state
                    .consumer
                    .context()
                    .partitions
                    .lock()
                    .expect("partitions lock"),
            );
        if let Err(e) = polled {
            if env.log_limiter.admit("consumer errors", env.task_name()) {
                warn!(connector = %env.connector, task = env.task_id, error = %e, "consumer error");
            }
        }
        if !batch.messages.is_empty() {
            let started = Instant::now();
            env.metrics
                .records_in
                .fetch_add(batch.messages.len() as u64, Ordering::Relaxed);
            env.metrics
                .active_records
                .fetch_add(batch.messages.len() as i64, Ordering::Relaxed);
            // The next offset of each partition in the batch (messages of a partition are in
            // order, and partitions come in runs).
            let mut ends: Vec<(&str, i32, i64)> = Vec::new();
            for m in &batch.messages {
                match ends
                    .iter_mut()
                    .rev()
                    .find(|(t, p, _)| *p == m.partition && *t == &*m.topic)
                {
                    Some(end) => end.2 = m.offset + 1,
                    None => ends.push((&m.topic, m.partition, m.offset + 1)),
                }
            }
            let last: BTreeMap<TopicPartition, i64> = ends
                .into_iter()
                .map(|(t, p, o)| (TopicPartition::new(t, p), o))
                .collect();
            let Some((records, good)) = state.convert(env, &batch).await? else {
                // Stopped while the schema registry was unreachable: nothing was written.
                return Ok(());
            };
            let count = records.len() as u64;
            if !records.is_empty() {
                // A retriable failure gets the same records again: converted anew from the
                // batch (conversion is deterministic), so the first try needs no copy.
                let again = || {
                    good.iter()
                        .filter_map(|&i| {
                            convert_one(env, &batch, &batch.messages[i])
                                .map_err(|(_, _, e)| e.to_string())
                                .transpose()
                        })
                        .collect::<Result<Vec<_>, _>>()
                };
                if !put_with_retry(env, task, records, again).await? {
                    // Stopped while retrying: these records were not written, so their
                    // offsets must not be committed.
                    return Ok(());
                }
                state.put_since_flush = true;
            }
            env.metrics.records_out.fetch_add(count, Ordering::Relaxed);
            state.processed.extend(last);
            env.metrics
                .record_batch(started.elapsed(), batch.messages.len());
        }
        spare = batch;
        if Instant::now() >= next_commit {
            state.flush_and_commit(env, task).await?;
            next_commit = Instant::now() + env.flush_interval;
        }
    }
}

/// Puts a batch, retrying retriable failures with backoff until it succeeds; `Ok(false)` when
/// the task was stopped before the batch could be written.
async fn put_with_retry(
    env: &TaskEnv,
    task: &mut dyn SinkTask,
    records: Vec<SinkRecord>,
    again: impl Fn() -> Result<Vec<SinkRecord>, String>,
) -> Result<bool, String> {
    let mut backoff = Backoff::new(env.settings.errors.retry_delay_max);
    let mut reported = false;
    let mut next = Some(records);
    loop {
        let records = match next.take() {
            Some(r) => r,
            None => again()?,
        };
        match task.put(records).await {
            Ok(()) => {
                if reported {
                    env.status
                        .set_task_problem(&env.connector, env.task_id, None);
                }
                return Ok(true);
            }
            Err(e) if e.is_retriable() => {
                env.metrics.record_failure();
                env.metrics.retries.fetch_add(1, Ordering::Relaxed);
                env.status.set_task_problem(
                    &env.connector,
                    env.task_id,
                    Some(format!(
                        "put failed, retrying in {:?}: {e}",
                        backoff.current()
                    )),
                );
                reported = true;
                if !backoff.wait(&env.token).await {
                    return Ok(false);
                }
            }
            Err(e) => {
                env.metrics.record_failure();
                return Err(format!(
                    "{} failed in stage {}: {e}",
                    env.settings.plugin.class,
                    Stage::TaskPut.name()
                ));
            }
        }
    }
}
