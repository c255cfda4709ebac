//! `generator-source`: numbered records at a configurable rate, for demos, load tests and as a
//! template for plugin authors.
//!
//! Each task is one stream (source partition `{"stream": <task id>}`) producing records with
//! key `seq` (int64) and value `{"seq": int64, "stream": int32, "text": string}` (a struct
//! named `com.example.sluice.Generated`). The offset `{"seq": n}` is the next number to
//! produce, so a restarted task resumes where its committed offset says, as any source must.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value as Json};
use sluice_sdk::{
    async_trait, ConfigDef, ConfigKey, ConfigType, ConnectorContext, ConnectorKind,
    ConnectorPlugin, Error, Field, Importance, Props, Result, Schema, SchemaRef, SourceConnector,
    SourceRecord, SourceTask, SourceTaskContext, Struct, Validator, Value,
};
use tokio::time::Instant;

/// The class name used in `connector.class`.
pub const GENERATOR_SOURCE: &str = "generator-source";
/// Option: the topic to write to.
pub const TOPIC: &str = "topic";
/// Option: records per second per task (0: as fast as possible).
pub const RATE: &str = "rate";
/// Option: records per task in all, then the task idles (0: no end).
pub const COUNT: &str = "count";
/// Option: most records one poll returns.
pub const BATCH_SIZE: &str = "batch.size";
/// Option: a testing aid; the task panics after producing this many records (0: never).
pub const PANIC_AFTER: &str = "panic.after.records";
/// Task configuration key: the stream this task produces.
const STREAM: &str = "stream";

/// How long an idle task (its count reached) waits in each poll.
const IDLE_POLL: Duration = Duration::from_millis(500);

/// The connector classes of this plugin (what `export_plugin!` exports).
pub fn plugins() -> Vec<ConnectorPlugin> {
    vec![ConnectorPlugin {
        class: GENERATOR_SOURCE.to_string(),
        aliases: vec!["com.example.sluice.GeneratorSourceConnector".to_string()],
        version: env!("CARGO_PKG_VERSION").to_string(),
        config_def: config_def(),
        kind: ConnectorKind::Source(Arc::new(|| Box::new(GeneratorSourceConnector::default()))),
    }]
}

/// The options of `generator-source`.
pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new(TOPIC, ConfigType::String, Importance::High, "Topic to write the generated records to.")
                .validator(Validator::custom(|v| {
                    let name = v.to_string();
                    let legal = !name.is_empty()
                        && name.len() <= 249
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
                    if legal {
                        Ok(())
                    } else {
                        Err(format!(
                            "must be a Kafka topic name: 1 to 249 of a-z, A-Z, 0-9, '.', '_', '-' (got '{name}')"
                        ))
                    }
                })),
        )
        .define(
            ConfigKey::new(RATE, ConfigType::Double, Importance::High, "Records per second per task; 0 produces as fast as the worker takes them.")
                .default_value("10")
                .validator(Validator::AtLeast(0.0)),
        )
        .define(
            ConfigKey::new(COUNT, ConfigType::Long, Importance::Medium, "Records each task produces in all (counting those of earlier runs); 0 for no end.")
                .default_value("0")
                .validator(Validator::AtLeast(0.0)),
        )
        .define(
            ConfigKey::new(BATCH_SIZE, ConfigType::Int, Importance::Low, "Most records one poll returns.")
                .default_value("1000")
                .validator(Validator::AtLeast(1.0)),
        )
        .define(
            ConfigKey::new(PANIC_AFTER, ConfigType::Long, Importance::Low, "Testing aid: the task panics, as a bug would, once it has produced this many records in this run; 0 never.")
                .default_value("0")
                .validator(Validator::AtLeast(0.0)),
        )
}

/// The connector: checks the options and gives each task its stream number.
#[derive(Debug, Default)]
pub struct GeneratorSourceConnector {
    config: Props,
}

#[async_trait]
impl SourceConnector for GeneratorSourceConnector {
    async fn start(&mut self, ctx: ConnectorContext, config: Props) -> Result<()> {
        config_def().parse(&config)?;
        tracing::info!(connector = %ctx.name, "generator connector started");
        self.config = config;
        Ok(())
    }

    async fn task_configs(&mut self, max_tasks: usize) -> Result<Vec<Props>> {
        Ok((0..max_tasks.max(1))
            .map(|stream| {
                let mut config = self.config.clone();
                config.insert(STREAM.to_string(), stream.to_string());
                config
            })
            .collect())
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(GeneratorSourceTask::default())
    }
}

/// One stream of numbered records.
#[derive(Debug, Default)]
pub struct GeneratorSourceTask {
    topic: String,
    stream: i32,
    partition: Map<String, Json>,
    key_schema: Option<SchemaRef>,
    schema: Option<SchemaRef>,
    /// The number of the next record.
    next_seq: i64,
    /// Records per second; 0 for no limit.
    rate: f64,
    /// Where the stream ends (exclusive); `None` for no end.
    end: Option<i64>,
    batch_size: usize,
    panic_after: u64,
    /// Records produced in this run, and when the run started (the rate's reference).
    produced: u64,
    started: Option<Instant>,
}

impl GeneratorSourceTask {
    fn record(&self, seq: i64) -> SourceRecord {
        let value = Struct::new()
            .with("seq", seq)
            .with("stream", self.stream)
            .with("text", format!("record {seq} of stream {}", self.stream));
        let mut offset = Map::new();
        offset.insert("seq".to_string(), json!(seq + 1));
        SourceRecord::new(
            self.partition.clone(),
            offset,
            self.topic.clone(),
            self.schema.clone(),
            Value::Struct(value),
        )
        .with_key(self.key_schema.clone(), Value::Int64(seq))
    }

    /// How many records the rate allows now, and when the next one is due otherwise.
    fn allowance(&self, now: Instant) -> (u64, Option<Instant>) {
        if self.rate <= 0.0 {
            return (self.batch_size as u64, None);
        }
        let started = self.started.unwrap_or(now);
        let due = ((now - started).as_secs_f64() * self.rate).floor() as u64 + 1;
        let allowed = due.saturating_sub(self.produced);
        if allowed > 0 {
            (allowed.min(self.batch_size as u64), None)
        } else {
            let next = started + Duration::from_secs_f64(self.produced as f64 / self.rate);
            (0, Some(next))
        }
    }
}

#[async_trait]
impl SourceTask for GeneratorSourceTask {
    async fn start(&mut self, ctx: SourceTaskContext) -> Result<()> {
        let config = config_def().parse(&ctx.config)?;
        self.topic = config.get_str(TOPIC).unwrap_or_default().to_string();
        self.stream = ctx
            .config
            .get(STREAM)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::fatal("task configuration without a stream number"))?;
        self.partition = Map::new();
        self.partition
            .insert(STREAM.to_string(), json!(self.stream));
        self.next_seq = ctx
            .offset(&self.partition)
            .and_then(|o| o.get("seq"))
            .and_then(Json::as_i64)
            .unwrap_or(0);
        self.rate = config.get_f64(RATE).unwrap_or(10.0);
        self.end = config.get_i64(COUNT).filter(|&c| c > 0);
        self.batch_size = config.get_i64(BATCH_SIZE).unwrap_or(1000).max(1) as usize;
        self.panic_after = config.get_i64(PANIC_AFTER).unwrap_or(0).max(0) as u64;
        self.key_schema = Some(Arc::new(Schema::int64()));
        self.schema = Some(Arc::new(
            Schema::struct_of(vec![
                Field::new("seq", Schema::int64()),
                Field::new("stream", Schema::int32()),
                Field::new("text", Schema::string()),
            ])
            .named("com.example.sluice.Generated"),
        ));
        self.produced = 0;
        self.started = None;
        tracing::info!(
            connector = %ctx.connector,
            stream = self.stream,
            from_seq = self.next_seq,
            "generator task started"
        );
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        if self.end.is_some_and(|end| self.next_seq >= end) {
            tokio::time::sleep(IDLE_POLL).await;
            return Ok(Vec::new());
        }
        // The rate counts from the first poll, so a slow start does not cause a burst.
        self.started.get_or_insert_with(Instant::now);
        let mut allowed = loop {
            match self.allowance(Instant::now()) {
                (0, Some(next)) => tokio::time::sleep_until(next).await,
                (n, _) => break n,
            }
        };
        if let Some(end) = self.end {
            allowed = allowed.min((end - self.next_seq) as u64);
        }
        if self.panic_after > 0 && self.produced + allowed > self.panic_after {
            allowed = self.panic_after - self.produced;
            if allowed == 0 {
                panic!(
                    "generator stream {} reached {PANIC_AFTER}={} (a deliberate panic)",
                    self.stream, self.panic_after
                );
            }
        }
        let records: Vec<SourceRecord> = (self.next_seq..self.next_seq + allowed as i64)
            .map(|seq| self.record(seq))
            .collect();
        self.next_seq += allowed as i64;
        self.produced += allowed;
        Ok(records)
    }

    async fn stop(&mut self) -> Result<()> {
        tracing::info!(
            stream = self.stream,
            next_seq = self.next_seq,
            "generator task stopped"
        );
        Ok(())
    }
}
