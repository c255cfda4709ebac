//! `ledger-sink`: every record of its topics, appended to a ledger file.
//!
//! The file starts with the line `# sluice ledger v1`; then each record is one line of five
//! tab-separated columns:
//!
//! ```text
//! <topic> TAB <partition> TAB <offset> TAB <key as JSON> TAB <value as JSON> LF
//! ```
//!
//! Keys and values are written in Kafka Connect's JSON form of the data (decimals as numbers;
//! `null` for none), so a struct value reads `{"id":1,"name":"ann"}`. Tabs and newlines inside
//! them are escaped by JSON, so a line is always one record. The sink is at-least-once, as
//! every sink: after a crash the worker delivers again what was not flushed, so a ledger may
//! repeat lines; the (topic, partition, offset) columns tell repeats apart.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;

use sluice_sdk::json::{value_to_json, DecimalFormat};
use sluice_sdk::{
    async_trait, ConfigDef, ConfigKey, ConfigType, ConnectorContext, ConnectorKind,
    ConnectorPlugin, Error, Importance, Props, Result, SinkConnector, SinkRecord, SinkTask,
    SinkTaskContext, Validator,
};

/// The class name used in `connector.class`.
pub const LEDGER_SINK: &str = "ledger-sink";
/// Option: the ledger file.
pub const FILE: &str = "file";
/// The first line of every ledger.
pub const LEDGER_HEADER: &str = "# sluice ledger v1";

/// The connector classes of this plugin (what `export_plugin!` exports).
pub fn plugins() -> Vec<ConnectorPlugin> {
    vec![ConnectorPlugin {
        class: LEDGER_SINK.to_string(),
        aliases: vec!["com.example.sluice.LedgerSinkConnector".to_string()],
        version: env!("CARGO_PKG_VERSION").to_string(),
        config_def: config_def(),
        kind: ConnectorKind::Sink(Arc::new(|| Box::new(LedgerSinkConnector::default()))),
    }]
}

/// The options of `ledger-sink` (`topics` / `topics.regex` are the worker's, as for every
/// sink).
pub fn config_def() -> ConfigDef {
    ConfigDef::new().define(
        ConfigKey::new(
            FILE,
            ConfigType::String,
            Importance::High,
            "The ledger file records are appended to; created when missing.",
        )
        .validator(Validator::NonEmpty),
    )
}

/// One ledger line for `record` (without the line feed).
pub fn ledger_line(record: &SinkRecord) -> std::result::Result<String, String> {
    let key = value_to_json(
        record.key_schema.as_deref(),
        &record.key,
        DecimalFormat::Numeric,
    )?;
    let value = value_to_json(
        record.value_schema.as_deref(),
        &record.value,
        DecimalFormat::Numeric,
    )?;
    Ok(format!(
        "{}\t{}\t{}\t{key}\t{value}",
        record.topic, record.kafka_partition, record.kafka_offset
    ))
}

/// The connector: checks the options; every task writes the same ledger.
#[derive(Debug, Default)]
pub struct LedgerSinkConnector {
    config: Props,
}

#[async_trait]
impl SinkConnector for LedgerSinkConnector {
    async fn start(&mut self, ctx: ConnectorContext, config: Props) -> Result<()> {
        config_def().parse(&config)?;
        tracing::info!(connector = %ctx.name, "ledger connector started");
        self.config = config;
        Ok(())
    }

    async fn task_configs(&mut self, max_tasks: usize) -> Result<Vec<Props>> {
        Ok(vec![self.config.clone(); max_tasks.max(1)])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(LedgerSinkTask::default())
    }
}

/// Appends records to the ledger; `flush` makes them durable.
#[derive(Debug, Default)]
pub struct LedgerSinkTask {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    /// Records written by this task since it started.
    written: u64,
}

impl LedgerSinkTask {
    fn out(&mut self) -> Result<&mut BufWriter<File>> {
        self.out
            .as_mut()
            .ok_or_else(|| Error::fatal("the ledger task was not started"))
    }
}

// The worker calls each of these on one of its blocking threads and waits for it, so plain
// (blocking) file I/O is what fits here.
#[async_trait]
impl SinkTask for LedgerSinkTask {
    async fn start(&mut self, ctx: SinkTaskContext) -> Result<()> {
        let config = config_def().parse(&ctx.config)?;
        self.path = PathBuf::from(config.get_str(FILE).unwrap_or_default());
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| {
                Error::fatal(format!(
                    "cannot open the ledger {}: {e}",
                    self.path.display()
                ))
            })?;
        let empty = file.metadata().map(|m| m.len() == 0).unwrap_or(false);
        let mut out = BufWriter::new(file);
        if empty {
            writeln!(out, "{LEDGER_HEADER}").map_err(|e| Error::retriable(e.to_string()))?;
        }
        self.out = Some(out);
        tracing::info!(
            connector = %ctx.connector,
            task = ctx.task_id,
            file = %self.path.display(),
            "ledger task started"
        );
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<()> {
        // A whole batch goes out in one write, so tasks sharing a ledger never split a line.
        let mut text = String::new();
        for record in &records {
            let line = ledger_line(record).map_err(|e| {
                Error::fatal(format!(
                    "record {}/{}@{} cannot be written: {e}",
                    record.topic, record.kafka_partition, record.kafka_offset
                ))
            })?;
            text.push_str(&line);
            text.push('\n');
        }
        self.out()?
            .write_all(text.as_bytes())
            .map_err(|e| Error::retriable(format!("writing the ledger failed: {e}")))?;
        self.written += records.len() as u64;
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        let out = self.out()?;
        out.flush()
            .and_then(|()| out.get_ref().sync_data())
            .map_err(|e| Error::retriable(format!("syncing the ledger failed: {e}")))?;
        tracing::debug!(written = self.written, "ledger flushed");
        Ok(())
    }

    async fn stop(&mut self) -> Result<()> {
        if self.out.is_some() {
            self.flush().await?;
        }
        tracing::info!(written = self.written, "ledger task stopped");
        Ok(())
    }
}
