//! Running tasks: the source loop (poll, convert, produce, commit acknowledged offsets) and
//! the sink loop (consume, convert, put, flush, commit).

use std::sync::Arc;
use std::time::Duration;

use crate::kafka::SharedProducer;
use sluice_broker::log_limit::LogLimiter;
use sluice_sdk::Props;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::connector_config::ConnectorSettings;
use crate::dlq::DeadLetterReporter;
use crate::kafka::KafkaClients;
use crate::metrics::TaskMetrics;
use crate::offsets::OffsetStore;
use crate::status::StatusStore;

pub mod sink;
pub mod source;

/// Whether a connector's tasks should run or hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetState {
    /// Running.
    Started,
    /// Holding: no polling (sources), no consuming (sinks); offsets committed.
    Paused,
    /// Connector and tasks shut down; configuration kept.
    Stopped,
}

impl TargetState {
    /// Kafka Connect's name in the config topic (`state.v2`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Started => "STARTED",
            Self::Paused => "PAUSED",
            Self::Stopped => "STOPPED",
        }
    }
}

/// Everything a task runner needs from the worker.
#[derive(Debug, Clone)]
pub struct TaskEnv {
    /// Connector name.
    pub connector: String,
    /// Task number.
    pub task_id: u32,
    /// The connector's parsed configuration.
    pub settings: Arc<ConnectorSettings>,
    /// This task's configuration from `task_configs`.
    pub task_config: Props,
    /// Kafka client factory.
    pub clients: KafkaClients,
    /// Shared producer for dead letters.
    pub internal_producer: SharedProducer,
    /// Source offsets.
    pub offsets: Arc<OffsetStore>,
    /// Status.
    pub status: Arc<StatusStore>,
    /// This task's counters.
    pub metrics: Arc<TaskMetrics>,
    /// The worker's metrics registry (active topics).
    pub registry: Arc<crate::metrics::Metrics>,
    /// Pause and resume signals.
    pub target: watch::Receiver<TargetState>,
    /// Cancelled to stop the task.
    pub token: CancellationToken,
    /// Offset commit interval.
    pub flush_interval: Duration,
    /// Offset commit timeout.
    pub flush_timeout: Duration,
    /// Summarises problems that repeat (the first few in full, then a count per interval).
    pub log_limiter: Arc<LogLimiter>,
}

impl TaskEnv {
    /// The dead letter reporter for this task.
    pub fn dead_letters(&self) -> DeadLetterReporter {
        DeadLetterReporter::new(
            self.settings.errors.clone(),
            self.internal_producer.clone(),
            &self.connector,
            self.task_id,
            self.metrics.clone(),
        )
    }

    /// Waits while the connector is paused; returns false when the task is cancelled.
    pub async fn wait_while_paused(&mut self) -> bool {
        loop {
            if self.token.is_cancelled() {
                return false;
            }
            if *self.target.borrow() != TargetState::Paused {
                return true;
            }
            tokio::select! {
                _ = self.token.cancelled() => return false,
                changed = self.target.changed() => if changed.is_err() { return false; },
            }
        }
    }

    /// `connector-task` as the log summaries name a task.
    pub fn task_name(&self) -> String {
        format!("{}-{}", self.connector, self.task_id)
    }

    /// Waits out an outage of a service a converter needs (the schema registry) before try
    /// `attempt` again, with the outage in the task's status; false when the task is cancelled
    /// meanwhile.
    pub async fn wait_out_outage(&self, attempt: u32, problem: &str) -> bool {
        self.status
            .set_task_problem(&self.connector, self.task_id, Some(problem.to_string()));
        let delay = Duration::from_millis((100u64 << attempt.min(6)).min(5_000));
        tokio::select! {
            _ = self.token.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// The outage [`TaskEnv::wait_out_outage`] reported is over.
    pub fn outage_over(&self) {
        self.status
            .set_task_problem(&self.connector, self.task_id, None);
    }

    /// Whether the connector is paused now.
    pub fn paused(&self) -> bool {
        *self.target.borrow() == TargetState::Paused
    }
}
