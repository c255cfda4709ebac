//! The dead letter queue: records that fail are logged and written, with their original key,
//! value, headers and timestamp, to `errors.deadletterqueue.topic.name`, plus Kafka Connect's
//! `__connect.errors.*` context headers when enabled. Writes wait for Kafka's acknowledgement,
//! so a record's offset is committed only after it is safely in the dead letter topic.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::kafka::SharedProducer;
use tracing::{error, warn};

use crate::errors::{
    ErrorPolicy, Stage, HEADER_CLASS_NAME, HEADER_CONNECTOR_NAME, HEADER_EXCEPTION_CLASS_NAME,
    HEADER_EXCEPTION_MESSAGE, HEADER_EXCEPTION_STACKTRACE, HEADER_OFFSET, HEADER_PARTITION,
    HEADER_STAGE, HEADER_TASK_ID, HEADER_TOPIC,
};
use crate::metrics::TaskMetrics;

/// A record that failed, in its Kafka form.
#[derive(Debug, Clone, Default)]
pub struct FailedRecord {
    /// Topic it was read from (sink) or meant for (source).
    pub topic: String,
    /// Its partition (-1 when it never had one).
    pub partition: i32,
    /// Its offset (-1 when it never had one).
    pub offset: i64,
    /// Key bytes.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    /// Timestamp.
    pub timestamp: Option<i64>,
}

/// What failed and why.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The pipeline stage.
    pub stage: Stage,
    /// The class (converter, connector) that ran the stage.
    pub class_name: String,
    /// Kafka Connect's name of the error's class.
    pub exception_class: &'static str,
    /// The error message.
    pub message: String,
}

/// Applies a connector's error policy to failed records.
#[derive(Debug, Clone)]
pub struct DeadLetterReporter {
    policy: ErrorPolicy,
    producer: SharedProducer,
    connector: String,
    task: u32,
    metrics: Arc<TaskMetrics>,
}

impl DeadLetterReporter {
    /// A reporter for task `task` of `connector`.
    pub fn new(
        policy: ErrorPolicy,
        producer: SharedProducer,
        connector: impl Into<String>,
        task: u32,
        metrics: Arc<TaskMetrics>,
    ) -> Self {
        Self {
            policy,
            producer,
            connector: connector.into(),
            task,
            metrics,
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> &ErrorPolicy {
        &self.policy
    }

    /// Handles one failed record: `Ok` when it is tolerated (logged, dead-lettered if a topic
    /// is set, and may be skipped), `Err` with the message to fail the task with otherwise.
    ///
    /// # Errors
    /// With `errors.tolerance=none`, or when the dead letter write itself fails.
    pub async fn report(&self, record: &FailedRecord, failure: &Failure) -> Result<(), String> {
        self.metrics.record_failure();
        self.metrics.record_errors.fetch_add(1, Ordering::Relaxed);
        if self.policy.log_enable || !self.policy.tolerate_all {
            self.metrics.errors_logged.fetch_add(1, Ordering::Relaxed);
            let (key, value) = if self.policy.log_include_messages {
                (
                    record
                        .key
                        .as_deref()
                        .map(String::from_utf8_lossy)
                        .map(|s| s.into_owned()),
                    record
                        .value
                        .as_deref()
                        .map(String::from_utf8_lossy)
                        .map(|s| s.into_owned()),
                )
            } else {
                (None, None)
            };
            error!(
                connector = %self.connector,
                task = self.task,
                stage = failure.stage.name(),
                class = %failure.class_name,
                topic = %record.topic,
                partition = record.partition,
                offset = record.offset,
                key = key.as_deref().unwrap_or("-"),
                value = value.as_deref().unwrap_or("-"),
                error = %failure.message,
                tolerated = self.policy.tolerate_all,
                "error processing record"
            );
        }
        let summary = format!(
            "{} failed in stage {} ({}) for record {}-{}@{}: {}",
            failure.exception_class,
            failure.stage.name(),
            failure.class_name,
            record.topic,
            record.partition,
            record.offset,
            failure.message
        );
        if !self.policy.tolerate_all {
            return Err(format!("Tolerance exceeded in error handler: {summary}"));
        }
        if self.policy.dlq_topic.is_empty() {
            self.metrics.records_skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let mut headers = OwnedHeaders::new();
        for (k, v) in &record.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_deref(),
            });
        }
        if self.policy.dlq_context_headers {
            let task = self.task.to_string();
            let partition = record.partition.to_string();
            let offset = record.offset.to_string();
            let context: [(&str, &str); 10] = [
                (HEADER_TOPIC, &record.topic),
                (HEADER_PARTITION, &partition),
                (HEADER_OFFSET, &offset),
                (HEADER_CONNECTOR_NAME, &self.connector),
                (HEADER_TASK_ID, &task),
                (HEADER_STAGE, failure.stage.name()),
                (HEADER_CLASS_NAME, &failure.class_name),
                (HEADER_EXCEPTION_CLASS_NAME, failure.exception_class),
                (HEADER_EXCEPTION_MESSAGE, &failure.message),
                (HEADER_EXCEPTION_STACKTRACE, &summary),
            ];
            for (k, v) in context {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(v.as_bytes()),
                });
            }
        }
        let mut out = FutureRecord::<[u8], [u8]>::to(&self.policy.dlq_topic).headers(headers);
        if let Some(k) = &record.key {
            out = out.key(k);
        }
        if let Some(v) = &record.value {
            out = out.payload(v);
        }
        if let Some(ts) = record.timestamp {
            out = out.timestamp(ts);
        }
        self.metrics.dlq_requests.fetch_add(1, Ordering::Relaxed);
        match self.producer.send(out, Duration::from_secs(30)).await {
            Ok(_) => {
                self.metrics.dlq_records.fetch_add(1, Ordering::Relaxed);
                self.metrics.records_skipped.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err((e, _)) => {
                self.metrics.dlq_failures.fetch_add(1, Ordering::Relaxed);
                warn!(connector = %self.connector, task = self.task, topic = %self.policy.dlq_topic, error = %e, "dead letter write failed");
                Err(format!(
                    "could not write a failed record to the dead letter topic '{}': {e} (the record failed with: {summary})",
                    self.policy.dlq_topic
                ))
            }
        }
    }
}
