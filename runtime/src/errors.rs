//! Error handling as Kafka Connect does it: `errors.tolerance` decides between failing the
//! task and skipping the record, which is logged (`errors.log.*`) and written to the dead
//! letter topic (`errors.deadletterqueue.*`) with the `__connect.errors.*` context headers.
//!
//! What is retried, and for how long (the [`backoff`](crate::backoff) between tries is capped
//! by `errors.retry.delay.max.ms`):
//! - converter and transform stages: in Kafka Connect `errors.retry.timeout` bounds retries of
//!   *retriable* failures there. The built-in converters and transforms fail only with data
//!   errors, which are never retried and go to `errors.tolerance` at once, so the option is
//!   accepted (and validated) but changes nothing today.
//! - produce (sources): the producer retries transient failures itself, without limit, as
//!   Kafka Connect's producer does (`delivery.timeout.ms` at its maximum); offsets never pass
//!   a record the cluster has not acknowledged. A non-retriable produce error goes to
//!   `errors.tolerance`.
//! - a sink's `put` and `flush`, a source's `poll` and every task's `start`: a retriable
//!   failure is retried until it succeeds or the task stops; records not yet written are
//!   then not committed, so they are delivered again after a restart.

use std::time::Duration;

use sluice_sdk::Config;

use crate::connector_config::{
    DLQ_CONTEXT_HEADERS, DLQ_TOPIC, ERRORS_LOG_ENABLE, ERRORS_LOG_INCLUDE_MESSAGES,
    ERRORS_RETRY_DELAY_MAX_MS, ERRORS_TOLERANCE,
};

/// Header with the original record's topic.
pub const HEADER_TOPIC: &str = "__connect.errors.topic";
/// Header with the original record's partition.
pub const HEADER_PARTITION: &str = "__connect.errors.partition";
/// Header with the original record's offset.
pub const HEADER_OFFSET: &str = "__connect.errors.offset";
/// Header with the connector's name.
pub const HEADER_CONNECTOR_NAME: &str = "__connect.errors.connector.name";
/// Header with the task's id.
pub const HEADER_TASK_ID: &str = "__connect.errors.task.id";
/// Header with the failed stage.
pub const HEADER_STAGE: &str = "__connect.errors.stage";
/// Header with the class that ran the stage.
pub const HEADER_CLASS_NAME: &str = "__connect.errors.class.name";
/// Header with the error's class.
pub const HEADER_EXCEPTION_CLASS_NAME: &str = "__connect.errors.exception.class.name";
/// Header with the error's message.
pub const HEADER_EXCEPTION_MESSAGE: &str = "__connect.errors.exception.message";
/// Header with the error's trace.
pub const HEADER_EXCEPTION_STACKTRACE: &str = "__connect.errors.exception.stacktrace";

/// Kafka Connect's class for data (conversion) errors, used in the context headers.
pub const DATA_EXCEPTION: &str = "org.apache.kafka.connect.errors.DataException";
/// Kafka Connect's generic error class, used in the context headers.
pub const CONNECT_EXCEPTION: &str = "org.apache.kafka.connect.errors.ConnectException";
/// Kafka Connect's retriable error class.
pub const RETRIABLE_EXCEPTION: &str = "org.apache.kafka.connect.errors.RetriableException";

/// Where in the pipeline an error happened (Kafka Connect's `Stage` names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Source task `poll`.
    TaskPoll,
    /// Sink task `put`.
    TaskPut,
    /// A transform.
    Transformation,
    /// Key conversion.
    KeyConverter,
    /// Value conversion.
    ValueConverter,
    /// Header conversion.
    HeaderConverter,
    /// Writing to Kafka.
    KafkaProduce,
    /// Reading from Kafka.
    KafkaConsume,
}

impl Stage {
    /// Kafka Connect's name of the stage.
    pub fn name(self) -> &'static str {
        match self {
            Self::TaskPoll => "TASK_POLL",
            Self::TaskPut => "TASK_PUT",
            Self::Transformation => "TRANSFORMATION",
            Self::KeyConverter => "KEY_CONVERTER",
            Self::ValueConverter => "VALUE_CONVERTER",
            Self::HeaderConverter => "HEADER_CONVERTER",
            Self::KafkaProduce => "KAFKA_PRODUCE",
            Self::KafkaConsume => "KAFKA_CONSUME",
        }
    }
}

/// A connector's error-handling options.
#[derive(Debug, Clone)]
pub struct ErrorPolicy {
    /// Longest delay between retries.
    pub retry_delay_max: Duration,
    /// Skip failed records instead of failing the task.
    pub tolerate_all: bool,
    /// Log each error.
    pub log_enable: bool,
    /// Include keys and values in error logs.
    pub log_include_messages: bool,
    /// Dead letter topic (empty: none).
    pub dlq_topic: String,
    /// Add context headers to dead-lettered records.
    pub dlq_context_headers: bool,
}

impl ErrorPolicy {
    /// The policy from parsed runtime options.
    pub fn from_config(config: &Config) -> Self {
        Self {
            retry_delay_max: Duration::from_millis(
                u64::try_from(config.get_i64(ERRORS_RETRY_DELAY_MAX_MS).unwrap_or(60_000))
                    .unwrap_or(60_000),
            ),
            tolerate_all: config
                .get_str(ERRORS_TOLERANCE)
                .is_some_and(|t| t.eq_ignore_ascii_case("all")),
            log_enable: config.get_bool(ERRORS_LOG_ENABLE).unwrap_or(false),
            log_include_messages: config
                .get_bool(ERRORS_LOG_INCLUDE_MESSAGES)
                .unwrap_or(false),
            dlq_topic: config
                .get_str(DLQ_TOPIC)
                .unwrap_or_default()
                .trim()
                .to_string(),
            dlq_context_headers: config.get_bool(DLQ_CONTEXT_HEADERS).unwrap_or(false),
        }
    }
}
