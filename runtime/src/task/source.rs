//! The source task loop.
//!
//! `poll` -> (transforms) -> key/value converters -> idempotent acks=all producer ->
//! delivery reports -> [`OffsetTracker`] -> periodic write of the highest contiguously
//! acknowledged offset of each source partition to `connect-offsets`.
//!
//! A `poll` in progress is never abandoned for housekeeping (offset commits run beside it);
//! it is dropped only when the task stops, and then nothing of it was committed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use sluice_sdk::json::{value_to_json, DecimalFormat};
use sluice_sdk::{
    ConvertError, SourceOffset, SourcePartition, SourceRecord, SourceTask, SourceTaskContext,
};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use super::{TargetState, TaskEnv};
use crate::backoff::Backoff;
use crate::dlq::{DeadLetterReporter, FailedRecord, Failure};
use crate::errors::{Stage, CONNECT_EXCEPTION, DATA_EXCEPTION};
use crate::kafka::off_async;
use crate::offsets::OffsetTracker;
use crate::status::{State, TaskProblemReporter};
use crate::transforms::TransformRecord;

/// Records a task may have sent but not yet had acknowledged before `poll` waits.
const MAX_IN_FLIGHT: usize = 200_000;

/// Delivery reports, filled by librdkafka's thread and drained by the task loop.
#[derive(Debug, Default)]
struct AckBoard {
    inner: Mutex<AckInner>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct AckInner {
    acked: Vec<usize>,
    failed: Vec<(usize, String, FailedRecord)>,
}

#[derive(Debug, Clone)]
struct SourceProducerContext {
    board: Arc<AckBoard>,
}

impl ClientContext for SourceProducerContext {}

impl ProducerContext for SourceProducerContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, id: usize) {
        let first = {
            let mut inner = self.board.inner.lock().expect("ack lock");
            let first = inner.acked.is_empty() && inner.failed.is_empty();
            match result {
                Ok(_) => inner.acked.push(id),
                Err((e, m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        })
                        .unwrap_or_default();
                    let record = FailedRecord {
                        topic: m.topic().to_string(),
                        partition: m.partition(),
                        offset: -1,
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        headers,
                        timestamp: m.timestamp().to_millis(),
                    };
                    inner.failed.push((id, e.to_string(), record));
                }
            }
            first
        };
        // One wake-up per drain, not per record: the task takes every report at once, and
        // `Notify` keeps the wake-up for a task not waiting yet.
        if first {
            self.board.notify.notify_one();
        }
    }
}

/// Sends records and commits their offsets once acknowledged.
struct SourceCommitter {
    producer: ThreadedProducer<SourceProducerContext>,
    board: Arc<AckBoard>,
    tracker: OffsetTracker,
    dead_letters: DeadLetterReporter,
    env: TaskEnv,
    committed_since_task_commit: bool,
    /// Offsets written since the task was last told ([`SourceTask::offsets_committed`]).
    written: Vec<(SourcePartition, SourceOffset)>,
    last_topic: String,
}

impl SourceCommitter {
    /// Transforms, converts and sends one record of the current batch; `Ok(false)` when the
    /// task was stopped before the record could be sent (the rest of the batch must not be
    /// sent either, or its offsets would commit past this record).
    async fn send(&mut self, mut record: SourceRecord) -> Result<bool, String> {
        if !self.env.settings.transforms.is_empty() {
            let view = TransformRecord {
                topic: std::mem::take(&mut record.topic),
                kafka_partition: record.kafka_partition,
                kafka_offset: None,
                key_schema: record.key_schema.take(),
                key: std::mem::take(&mut record.key),
                value_schema: record.value_schema.take(),
                value: std::mem::take(&mut record.value),
                timestamp: record.timestamp,
                headers: std::mem::take(&mut record.headers),
            };
            match self.env.settings.transforms.apply(view.clone()) {
                Ok(Some(t)) => {
                    record.topic = t.topic;
                    record.kafka_partition = t.kafka_partition;
                    record.key_schema = t.key_schema;
                    record.key = t.key;
                    record.value_schema = t.value_schema;
                    record.value = t.value;
                    record.timestamp = t.timestamp;
                    record.headers = t.headers;
                }
                // Dropped by a transform (Filter): done with, so its offset may be committed.
                Ok(None) => {
                    let id = self
                        .tracker
                        .submit_in_batch(&record.source_partition, record.source_offset);
                    self.tracker.acknowledge(id);
                    return Ok(true);
                }
                Err(e) => {
                    record.topic = view.topic;
                    record.key_schema = view.key_schema;
                    record.key = view.key;
                    record.value_schema = view.value_schema;
                    record.value = view.value;
                    record.headers = view.headers;
                    return self
                        .record_failed(
                            record,
                            Stage::Transformation,
                            e.class,
                            DATA_EXCEPTION,
                            e.message,
                        )
                        .await;
                }
            }
        }
        let mut outage = 0u32;
        let (key, value) = loop {
            let settings = &self.env.settings;
            let key = settings.key_converter.encode_for(
                &record.topic,
                record.key_schema.as_deref(),
                &record.key,
            );
            let value = match &key {
                Ok(_) => settings.value_converter.encode_for(
                    &record.topic,
                    record.value_schema.as_deref(),
                    &record.value,
                ),
                Err(_) => Ok(None),
            };
            match (key, value) {
                (Ok(k), Ok(v)) => {
                    if outage > 0 {
                        self.env.outage_over();
                    }
                    break (k, v);
                }
                // A registry outage: the same record converts once it is back.
                (Err(ConvertError::Retriable(e)), _) | (_, Err(ConvertError::Retriable(e))) => {
                    outage += 1;
                    if !self.env.wait_out_outage(outage, &e).await {
                        // Stopped: the record was not sent, so its offset is not committed.
                        return Ok(false);
                    }
                }
                (Err(ConvertError::Data(e)), _) => {
                    let class = converter_class(&self.env, "key.converter");
                    return self
                        .record_failed(record, Stage::KeyConverter, class, DATA_EXCEPTION, e)
                        .await;
                }
                (_, Err(ConvertError::Data(e))) => {
                    let class = converter_class(&self.env, "value.converter");
                    return self
                        .record_failed(record, Stage::ValueConverter, class, DATA_EXCEPTION, e)
                        .await;
                }
            }
        };
        // librdkafka allocates a header list even when empty: only build one when needed.
        let headers = (!record.headers.is_empty()).then(|| {
            record.headers.iter().fold(
                OwnedHeaders::new_with_capacity(record.headers.len()),
                |headers, h| {
                    headers.insert(Header {
                        key: &h.key,
                        value: h.value.as_deref(),
                    })
                },
            )
        });
        let header_list = header_pairs(&record);
        if record.topic != self.last_topic {
            if self
                .env
                .registry
                .note_topic(&self.env.connector, &record.topic)
            {
                self.env
                    .status
                    .put_topic(&self.env.connector, self.env.task_id, &record.topic);
            }
            self.last_topic.clone_from(&record.topic);
        }
        let id = self
            .tracker
            .submit_in_batch(&record.source_partition, record.source_offset);
        let mut out = BaseRecord::with_opaque_to(&record.topic, id);
        if let Some(k) = &key {
            out = out.key(k);
        }
        if let Some(v) = &value {
            out = out.payload(v);
        }
        if let Some(headers) = headers {
            out = out.headers(headers);
        }
        if let Some(p) = record.kafka_partition {
            out = out.partition(p);
        }
        if let Some(ts) = record.timestamp {
            out = out.timestamp(ts);
        }
        loop {
            match self.producer.send(out) {
                Ok(()) => return Ok(true),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    out = back;
                    self.wait_for_acks(Duration::from_millis(50)).await;
                    self.drain().await?;
                }
                Err((e, _)) => {
                    let failed = FailedRecord {
                        topic: record.topic.clone(),
                        partition: record.kafka_partition.unwrap_or(-1),
                        offset: -1,
                        key: key.clone(),
                        value: value.clone(),
                        headers: header_list,
                        timestamp: record.timestamp,
                    };
                    self.board.inner.lock().expect("ack lock").failed.push((
                        id,
                        e.to_string(),
                        failed,
                    ));
                    return Ok(true);
                }
            }
        }
    }

    /// A record that failed before it became Kafka bytes: follows the error policy, and when
    /// tolerated its offset may be committed.
    async fn record_failed(
        &mut self,
        record: SourceRecord,
        stage: Stage,
        class_name: String,
        exception_class: &'static str,
        message: String,
    ) -> Result<bool, String> {
        // The record never became Kafka bytes; dead-letter a schemaless JSON rendering of it.
        let render = |schema: Option<&sluice_sdk::Schema>, v: &sluice_sdk::Value| {
            if v.is_null() {
                return None;
            }
            Some(
                value_to_json(schema, v, DecimalFormat::Numeric)
                    .or_else(|_| value_to_json(None, v, DecimalFormat::Numeric))
                    .map(|j| j.to_string())
                    .unwrap_or_else(|_| format!("{v:?}"))
                    .into_bytes(),
            )
        };
        let failed = FailedRecord {
            topic: record.topic.clone(),
            partition: record.kafka_partition.unwrap_or(-1),
            offset: -1,
            key: render(record.key_schema.as_deref(), &record.key),
            value: render(record.value_schema.as_deref(), &record.value),
            headers: header_pairs(&record),
            timestamp: record.timestamp,
        };
        let failure = Failure {
            stage,
            class_name,
            exception_class,
            message,
        };
        self.dead_letters.report(&failed, &failure).await?;
        // Tolerated: the record is done with, so its offset may be committed.
        let id = self
            .tracker
            .submit_in_batch(&record.source_partition, record.source_offset);
        self.tracker.acknowledge(id);
        Ok(true)
    }

    async fn wait_for_acks(&self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.board.notify.notified()).await;
    }

    /// Applies delivery reports; failed deliveries follow the error policy.
    async fn drain(&mut self) -> Result<(), String> {
        let (acked, failed) = {
            let mut inner = self.board.inner.lock().expect("ack lock");
            (
                std::mem::take(&mut inner.acked),
                std::mem::take(&mut inner.failed),
            )
        };
        self.env
            .metrics
            .records_out
            .fetch_add(acked.len() as u64, Ordering::Relaxed);
        for id in acked {
            self.tracker.acknowledge(id);
        }
        for (id, message, record) in failed {
            let failure = Failure {
                stage: Stage::KafkaProduce,
                class_name: "org.apache.kafka.clients.producer.KafkaProducer".to_string(),
                exception_class: CONNECT_EXCEPTION,
                message,
            };
            self.dead_letters.report(&record, &failure).await?;
            self.tracker.acknowledge(id);
        }
        self.env
            .metrics
            .active_records
            .store(self.tracker.pending() as i64, Ordering::Relaxed);
        Ok(())
    }

    /// Writes every newly committable offset to the offsets topic.
    async fn commit(&mut self) -> Result<(), String> {
        self.drain().await?;
        let committable = self.tracker.take_committable();
        if committable.is_empty() {
            return Ok(());
        }
        let entries: Vec<_> = committable
            .iter()
            .map(|(p, o)| (p.clone(), Some(o.clone())))
            .collect();
        let started = Instant::now();
        let written = self
            .env
            .offsets
            .write(&self.env.connector, &entries, self.env.flush_timeout)
            .await;
        self.env
            .metrics
            .record_offset_commit(started.elapsed(), written.is_ok());
        match written {
            Ok(()) => {
                self.committed_since_task_commit = true;
                self.written.extend(committable);
                debug!(connector = %self.env.connector, task = self.env.task_id, partitions = entries.len(), "committed source offsets");
            }
            Err(e) => {
                if self
                    .env
                    .log_limiter
                    .admit("source offset commit failures", self.env.task_name())
                {
                    warn!(connector = %self.env.connector, task = self.env.task_id, error = %e, "offset commit failed; will retry");
                }
                self.tracker.restore(committable);
            }
        }
        Ok(())
    }

    /// Waits (up to `timeout`) for every sent record to be acknowledged, then commits.
    async fn flush_and_commit(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain().await?;
            if self.tracker.pending() == 0 || Instant::now() >= deadline {
                break;
            }
            self.wait_for_acks(Duration::from_millis(20)).await;
        }
        if self.tracker.pending() > 0 {
            warn!(connector = %self.env.connector, task = self.env.task_id, unacknowledged = self.tracker.pending(), "stopping with records not yet acknowledged; they will be sent again after restart");
        }
        self.commit().await
    }
}

fn converter_class(env: &TaskEnv, option: &str) -> String {
    env.settings
        .props
        .get(option)
        .map(|c| crate::converter::class_name(c).to_string())
        .unwrap_or_default()
}

fn header_pairs(record: &SourceRecord) -> Vec<(String, Option<Vec<u8>>)> {
    record
        .headers
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect()
}

/// Asks the cluster for metadata once, right after the producer is created. An idempotent
/// librdkafka producer asks for its producer id when a metadata answer arrives, or else on a
/// 500 ms timer; without this the first records of a new task wait 0.5-1 s for that timer.
/// A cluster that does not answer within the timeout only means no head start.
async fn warm_up(
    producer: ThreadedProducer<SourceProducerContext>,
) -> ThreadedProducer<SourceProducerContext> {
    let (producer, answer) = off_async(producer, |p| {
        p.client().fetch_metadata(None, Duration::from_secs(2))
    })
    .await;
    if let Err(e) = answer {
        debug!(error = %e, "no metadata yet for the new producer");
    }
    producer
}

/// Runs one source task until it is cancelled or fails, then flushes, commits and stops it.
pub async fn run_source_task(mut env: TaskEnv, mut task: Box<dyn SourceTask>) {
    let connector = env.connector.clone();
    let id = env.task_id;
    let reporter = Arc::new(TaskProblemReporter {
        store: env.status.clone(),
        connector: connector.clone(),
        task: id,
    });
    let ctx = SourceTaskContext::new(
        connector.clone(),
        id,
        env.task_config.clone(),
        Arc::new(env.offsets.snapshot(&connector)),
        reporter.clone(),
    );
    if !start_task(&mut env, &mut task, ctx).await {
        return;
    }
    let board = Arc::new(AckBoard::default());
    let mut config = env
        .clients
        .producer_config(&env.settings.producer_overrides);
    // Never give up on a record while the cluster is away: offsets only advance past
    // acknowledged records, and a stop leaves unacknowledged ones to be sent again.
    config.set("message.timeout.ms", "0");
    let producer: ThreadedProducer<SourceProducerContext> =
        match config.create_with_context(SourceProducerContext {
            board: board.clone(),
        }) {
            Ok(p) => p,
            Err(e) => {
                env.status.set_task(
                    &connector,
                    id,
                    State::Failed,
                    Some(format!("cannot create the Kafka producer: {e}")),
                );
                let _ = task.stop().await;
                return;
            }
        };
    let producer = warm_up(producer).await;
    let mut committer = SourceCommitter {
        producer,
        board,
        tracker: OffsetTracker::new(),
        dead_letters: env.dead_letters(),
        env: env.clone(),
        committed_since_task_commit: false,
        written: Vec::new(),
        last_topic: String::new(),
    };
    env.status.set_task(&connector, id, State::Running, None);
    let outcome = source_loop(&mut env, task.as_mut(), &mut committer).await;
    let shutdown = env.flush_timeout;
    let final_commit = committer.flush_and_commit(shutdown).await;
    if committer.committed_since_task_commit {
        let written = std::mem::take(&mut committer.written);
        task.offsets_committed(&written).await;
        let _ = task.commit().await;
    }
    if let Err(e) = task.stop().await {
        warn!(connector = %connector, task = id, error = %e, "task stop failed");
    }
    // Destroying a librdkafka client blocks until its threads end: never on async threads.
    crate::kafka::release(committer.producer);
    match outcome.and(final_commit) {
        Ok(()) => info!(connector = %connector, task = id, "source task stopped"),
        Err(trace) => env
            .status
            .set_task(&connector, id, State::Failed, Some(trace)),
    }
}

/// Starts the task, retrying retriable failures until cancelled; false when it cannot run.
pub(crate) async fn start_task(
    env: &mut TaskEnv,
    task: &mut Box<dyn SourceTask>,
    ctx: SourceTaskContext,
) -> bool {
    let mut backoff = Backoff::new(env.settings.errors.retry_delay_max);
    let startups = &env.registry.worker;
    startups
        .task_startup_attempts
        .fetch_add(1, Ordering::Relaxed);
    loop {
        // A start waiting on an unreachable system is abandoned when the task is stopped.
        let started = tokio::select! {
            biased;
            () = env.token.cancelled() => return false,
            started = task.start(ctx.clone()) => started,
        };
        match started {
            Ok(()) => {
                startups
                    .task_startup_successes
                    .fetch_add(1, Ordering::Relaxed);
                ctx.report_problem(None);
                return true;
            }
            Err(e) if e.is_retriable() => {
                ctx.report_problem(Some(format!("cannot start yet, retrying: {e}")));
                if !backoff.wait(&env.token).await {
                    return false;
                }
            }
            Err(e) => {
                startups
                    .task_startup_failures
                    .fetch_add(1, Ordering::Relaxed);
                env.status.set_task(
                    &env.connector,
                    env.task_id,
                    State::Failed,
                    Some(format!("task start failed: {e}")),
                );
                return false;
            }
        }
    }
}

async fn source_loop(
    env: &mut TaskEnv,
    task: &mut dyn SourceTask,
    committer: &mut SourceCommitter,
) -> Result<(), String> {
    let interval = env.flush_interval;
    let mut next_commit = tokio::time::Instant::now() + interval;
    let mut backoff = Backoff::new(env.settings.errors.retry_delay_max);
    let mut reported_problem = false;
    loop {
        if env.paused() {
            committer.flush_and_commit(env.flush_timeout).await?;
            env.status
                .set_task(&env.connector, env.task_id, State::Paused, None);
            if !env.wait_while_paused().await {
                return Ok(());
            }
            if *env.target.borrow() == TargetState::Started {
                env.status
                    .set_task(&env.connector, env.task_id, State::Running, None);
            }
        }
        while committer.tracker.pending() >= MAX_IN_FLIGHT {
            tokio::select! {
                _ = env.token.cancelled() => return Ok(()),
                _ = committer.wait_for_acks(Duration::from_millis(50)) => {}
            }
            committer.drain().await?;
        }
        let started = Instant::now();
        let result = {
            let poll = task.poll();
            tokio::pin!(poll);
            loop {
                tokio::select! {
                    biased;
                    _ = env.token.cancelled() => return Ok(()),
                    r = &mut poll => break (r, started.elapsed()),
                    _ = tokio::time::sleep_until(next_commit) => {
                        committer.commit().await?;
                        next_commit = tokio::time::Instant::now() + interval;
                    }
                }
            }
        };
        let (result, poll_time) = result;
        match result {
            Ok(records) => {
                if reported_problem {
                    env.status
                        .set_task_problem(&env.connector, env.task_id, None);
                    reported_problem = false;
                }
                backoff.reset();
                if !records.is_empty() {
                    let size = records.len();
                    env.metrics
                        .records_in
                        .fetch_add(size as u64, Ordering::Relaxed);
                    env.metrics.record_batch(poll_time, size);
                    for record in records {
                        if !committer.send(record).await? {
                            break;
                        }
                    }
                    committer.tracker.seal_batch();
                }
            }
            Err(e) if e.is_retriable() => {
                env.metrics.record_failure();
                env.metrics.retries.fetch_add(1, Ordering::Relaxed);
                env.status.set_task_problem(
                    &env.connector,
                    env.task_id,
                    Some(format!(
                        "poll failed, retrying in {:?}: {e}",
                        backoff.current()
                    )),
                );
                reported_problem = true;
                if !backoff.wait(&env.token).await {
                    return Ok(());
                }
            }
            Err(e) => {
                env.metrics.record_failure();
                return Err(format!(
                    "{} failed in stage {}: {e}",
                    env.settings.plugin.class,
                    Stage::TaskPoll.name()
                ));
            }
        }
        committer.drain().await?;
        if tokio::time::Instant::now() >= next_commit {
            committer.commit().await?;
            next_commit = tokio::time::Instant::now() + interval;
            if committer.committed_since_task_commit {
                committer.committed_since_task_commit = false;
                let written = std::mem::take(&mut committer.written);
                task.offsets_committed(&written).await;
                if let Err(e) = task.commit().await {
                    warn!(connector = %env.connector, task = env.task_id, error = %e, "task commit hook failed");
                }
            }
        }
    }
}
