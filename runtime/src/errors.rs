//! Error handling as Kafka Connect does it: retries with backoff up to
//! `errors.retry.timeout`, then `errors.tolerance` decides between failing the task and
//! skipping the record, which is logged (`errors.log.*`) and written to the dead letter topic
//! (`errors.deadletterqueue.*`) with the `__connect.errors.*` context headers.

use std::time::Duration;

use sluice_sdk::Config;

use crate::connector_config::{
    DLQ_CONTEXT_HEADERS, DLQ_TOPIC, ERRORS_LOG_ENABLE, ERRORS_LOG_INCLUDE_MESSAGES,
    ERRORS_RETRY_DELAY_MAX_MS, ERRORS_RETRY_TIMEOUT, ERRORS_TOLERANCE,
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
    /// How long to retry a failing operation; `None` is forever.
    pub retry_timeout: Option<Duration>,
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
        let retry_timeout_ms = config.get_i64(ERRORS_RETRY_TIMEOUT).unwrap_or(0);
        Self {
            retry_timeout: u64::try_from(retry_timeout_ms)
                .ok()
                .map(Duration::from_millis),
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

    /// Runs `op` until it succeeds, fails for good, or retriable failures outlast
    /// `errors.retry.timeout`; backoff doubles from 300 ms up to `errors.retry.delay.max.ms`,
    /// with jitter. `on_retry` sees each retriable failure (for logs and status).
    ///
    /// # Errors
    /// The last error when it is not retriable or the retry time is used up.
    pub async fn retry<T, F, Fut>(
        &self,
        mut op: F,
        mut on_retry: impl FnMut(&sluice_sdk::Error, Duration),
    ) -> sluice_sdk::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = sluice_sdk::Result<T>>,
    {
        let started = tokio::time::Instant::now();
        let mut delay = Duration::from_millis(300);
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() => {
                    let elapsed = started.elapsed();
                    let left = match self.retry_timeout {
                        None => Duration::MAX,
                        Some(limit) => limit.saturating_sub(elapsed),
                    };
                    if left.is_zero() {
                        return Err(e);
                    }
                    let wait = jitter(delay.min(self.retry_delay_max)).min(left);
                    on_retry(&e, wait);
                    tokio::time::sleep(wait).await;
                    delay = delay.saturating_mul(2);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Backoff delay plus up to 20% random jitter, so many tasks do not retry in lockstep.
pub fn jitter(delay: Duration) -> Duration {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut h = RandomState::new().build_hasher();
    h.write_u128(delay.as_nanos());
    let frac = (h.finish() % 1000) as f64 / 1000.0 * 0.2;
    delay.mul_f64(1.0 + frac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy(timeout_ms: Option<u64>) -> ErrorPolicy {
        ErrorPolicy {
            retry_timeout: timeout_ms.map(Duration::from_millis),
            retry_delay_max: Duration::from_millis(1000),
            tolerate_all: false,
            log_enable: false,
            log_include_messages: false,
            dlq_topic: String::new(),
            dlq_context_headers: false,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retriable_errors_are_retried_until_success() {
        let calls = AtomicU32::new(0);
        let result = policy(Some(60_000))
            .retry(
                || async {
                    if calls.fetch_add(1, Ordering::SeqCst) < 3 {
                        Err(sluice_sdk::Error::retriable("busy"))
                    } else {
                        Ok(7)
                    }
                },
                |_, _| {},
            )
            .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_timeout_and_fatal_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let result: sluice_sdk::Result<()> = policy(Some(5_000))
            .retry(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(sluice_sdk::Error::retriable("down"))
                },
                |_, wait| assert!(wait <= Duration::from_millis(1200)),
            )
            .await;
        assert!(result.unwrap_err().is_retriable());
        assert!(started.elapsed() >= Duration::from_millis(5_000));
        assert!(started.elapsed() < Duration::from_millis(6_500));
        assert!(calls.load(Ordering::SeqCst) > 3);

        let calls = AtomicU32::new(0);
        let result: sluice_sdk::Result<()> = policy(None)
            .retry(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(sluice_sdk::Error::fatal("bad"))
                },
                |_, _| {},
            )
            .await;
        assert!(!result.unwrap_err().is_retriable());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_timeout_means_no_retries() {
        let calls = AtomicU32::new(0);
        let result: sluice_sdk::Result<()> = policy(Some(0))
            .retry(
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err(sluice_sdk::Error::retriable("down"))
                },
                |_, _| {},
            )
            .await;
        assert!(result.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
