//! The sink task: converts records, hands them to the bulk writer, and flushes.

use std::sync::Arc;

use sluice_sdk::{async_trait, Error, Result, SinkRecord, SinkTask, SinkTaskContext};
use tracing::{info, trace, warn};

use crate::client::EsClient;
use crate::config::{ElasticsearchSinkConfig, DROP_INVALID_MESSAGE};
use crate::convert::{convert_record, Conversion};
use crate::writer::{BulkWriter, PendingAction};

/// The most times Elasticsearch retries an upsert that loses a race (`retry_on_conflict`),
/// as Confluent sets it: `min(max.in.flight.requests, 5)`.
const MAX_RETRY_ON_CONFLICT: usize = 5;

/// One task of the Elasticsearch sink.
#[derive(Debug, Default)]
pub struct ElasticsearchSinkTask {
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    config: Arc<ElasticsearchSinkConfig>,
    ctx: SinkTaskContext,
    writer: BulkWriter,
}

impl ElasticsearchSinkTask {
    /// A task that is not started yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn running(&mut self) -> Result<&mut Running> {
        self.running
            .as_mut()
            .ok_or_else(|| Error::fatal("the Elasticsearch sink task was used before start"))
    }
}

#[async_trait]
impl SinkTask for ElasticsearchSinkTask {
    /// Builds the client and checks the cluster once. Refused credentials or an unsupported
    /// cluster fail the task here; a cluster that cannot be reached does not: the outage is
    /// reported in the task status and the writer keeps trying.
    async fn start(&mut self, ctx: SinkTaskContext) -> Result<()> {
        let config = Arc::new(ElasticsearchSinkConfig::parse(&ctx.config)?);
        let client = Arc::new(EsClient::new(&config)?);
        let writer = BulkWriter::start(config.clone(), client.clone(), ctx.clone());
        let probe_timeout = config.connection_timeout + config.read_timeout;
        let probe = if probe_timeout.is_zero() {
            Ok(client.cluster_info().await)
        } else {
            tokio::time::timeout(probe_timeout, client.cluster_info()).await
        };
        match probe {
            Ok(Ok(info)) => {
                match info {
                    Some(info) => {
                        info!(connector = %ctx.connector, task = ctx.task_id, cluster = %info, "connected")
                    }
                    None => {
                        info!(connector = %ctx.connector, task = ctx.task_id, "connected (cluster version not readable)")
                    }
                }
                writer.mark_cluster_checked();
            }
            Ok(Err(e)) if e.is_retriable() => {
                writer.report_outage(format!("{e}; retrying until it answers"));
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => writer.report_outage(format!(
                "no answer from Elasticsearch at {} within {} ms; retrying until it answers",
                client.urls().join(","),
                probe_timeout.as_millis()
            )),
        }
        info!(
            connector = %ctx.connector,
            task = ctx.task_id,
            urls = %config.urls.join(","),
            write_method = ?config.write_method,
            "Elasticsearch sink task started"
        );
        self.running = Some(Running {
            config,
            ctx,
            writer,
        });
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        let running = self.running()?;
        if let Some(failure) = running.writer.failure() {
            return Err(failure);
        }
        // Wait for room before converting, so a timeout here leaves nothing half-done.
        running.writer.wait_for_room().await?;
        let retry_on_conflict = running.config.max_in_flight.min(MAX_RETRY_ON_CONFLICT);
        let mut actions = Vec::with_capacity(records.len());
        for record in records {
            match convert_record(&running.config, &record, retry_on_conflict) {
                Ok(Conversion::Write(action)) => actions.push(PendingAction::new(record, action)),
                Ok(Conversion::Skip(why)) => {
                    trace!(topic = %record.topic, partition = record.kafka_partition, offset = record.kafka_offset, why, "record skipped");
                }
                Err(reason) => {
                    let message = format!(
                        "cannot turn record {}-{}@{} into a document: {reason}",
                        record.topic, record.kafka_partition, record.kafka_offset
                    );
                    if running.config.drop_invalid_message {
                        warn!(connector = %running.ctx.connector, task = running.ctx.task_id, %message, "dropping invalid record ({DROP_INVALID_MESSAGE}=true)");
                        continue;
                    }
                    running
                        .ctx
                        .report_errant(&record, &Error::fatal(message))
                        .await?;
                }
            }
        }
        running.writer.enqueue(actions);
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        self.running()?.writer.flush().await
    }

    async fn stop(&mut self) -> Result<()> {
        if let Some(mut running) = self.running.take() {
            running.writer.stop().await;
            info!(connector = %running.ctx.connector, task = running.ctx.task_id, "Elasticsearch sink task stopped");
        }
        Ok(())
    }
}
