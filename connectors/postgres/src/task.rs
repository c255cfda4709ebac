//! The source task: runs each of its tables' queries in turn, hands rows over in batches of
//! at most `batch.max.rows`, tracks offsets, and rides out database outages.
//!
//! # Offsets
//! Every record carries the offset to resume *after* it. For `incrementing` and
//! `timestamp+incrementing` that is simply the row's id / (timestamp, id). For `timestamp`
//! alone a row's own timestamp is only safe once every row sharing it has been handed over
//! (resuming with `ts > T` would skip the rest of the group), so the task holds back one row
//! and gives each record the last timestamp whose group is complete.
//!
//! # Outages
//! A transient error (connection lost, server restarting) drops the connection and every
//! open query; the task then reconnects with exponential backoff and jitter (capped by
//! `connection.backoff.ms`), without limit, reporting the outage through
//! [`SourceTaskContext::report_problem`] and the log until it is over. Queries restart from
//! the last row handed over, so nothing is skipped.
//!
//! # Deadlines
//! Connecting has the URL's connect deadline (see [`crate::connection`]); reading the
//! catalog and preparing a query has [`CATALOG_TIMEOUT`]. Either one passing counts as an
//! outage: the connection is dropped and the task reconnects as above. The rows of a running
//! query have no deadline, so a long snapshot is never cut.

use std::pin::Pin;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sluice_sdk::{Error, Result, SourcePartition, SourceRecord, SourceTask, SourceTaskContext};
use tokio::time::Instant;
use tokio_postgres::types::ToSql;
use tokio_postgres::RowStream;
use tracing::{debug, info, warn};

use crate::config::{decode_task_tables, Mode, PostgresSourceConfig, TASK_TABLES};
use crate::connection::{db_message, is_transient, seconds, PgConnection, CATALOG_TIMEOUT};
use crate::plan::{make_plan, Plan, PlanError, RowRecord};
use crate::query::{build_sql, Offset, Source, Sql, TimestampKind, TABLE_KEY};

/// The shortest wait before reconnecting.
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(200);
/// SQLSTATE of `undefined_table`.
const UNDEFINED_TABLE: &str = "42P01";

/// One table (or the query) of a task.
struct Querier {
    source: Source,
    partition: SourcePartition,
    topic: String,
    /// Where a new query starts: just after the last row handed over (or, in timestamp mode,
    /// after the last complete timestamp group).
    offset: Offset,
    /// Whether `timestamp.initial=-1` still has to be read from the database clock.
    initial_now: bool,
    next_run: Instant,
    run: Option<Run>,
}

/// A query in progress.
struct Run {
    plan: Plan,
    rows: Pin<Box<RowStream>>,
    /// Timestamp mode's held-back row.
    held: Option<RowRecord>,
    rows_read: u64,
}

enum RunError {
    Postgres(tokio_postgres::Error),
    /// The server did not answer within [`CATALOG_TIMEOUT`]; treated as a lost connection.
    NoAnswer(String),
    Fatal(String),
}

impl From<tokio_postgres::Error> for RunError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Postgres(e)
    }
}

/// Reads its share of the connector's tables (or its query).
#[derive(Default)]
pub struct PostgresSourceTask {
    state: Option<TaskState>,
}

impl std::fmt::Debug for PostgresSourceTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSourceTask")
            .field("started", &self.state.is_some())
            .finish()
    }
}

struct TaskState {
    ctx: SourceTaskContext,
    config: PostgresSourceConfig,
    queriers: Vec<Querier>,
    connection: Option<PgConnection>,
    backoff: ExponentialBackoff,
    next_connect: Option<Instant>,
    attempts: u32,
    outage: Option<String>,
}

fn backoff(config: &PostgresSourceConfig) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(MIN_RECONNECT_DELAY)
        .with_max_delay(config.connection_backoff.max(MIN_RECONNECT_DELAY))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

#[sluice_sdk::async_trait]
impl SourceTask for PostgresSourceTask {
    async fn start(&mut self, ctx: SourceTaskContext) -> Result<()> {
        let config = PostgresSourceConfig::parse(&ctx.config)?;
        let sources: Vec<Source> = match &config.query {
            Some(q) => vec![Source::Query(q.clone())],
            None => {
                let text = ctx.config.get(TASK_TABLES).ok_or_else(|| {
                    Error::fatal(format!(
                        "task configuration has no '{TASK_TABLES}'; it must come from the \
                         connector's task_configs"
                    ))
                })?;
                decode_task_tables(text)?
                    .into_iter()
                    .map(Source::Table)
                    .collect()
            }
        };
        let database = config.connection.database.clone();
        let now = Instant::now();
        let mut queriers = Vec::with_capacity(sources.len());
        for source in sources {
            let partition = source.partition(&database);
            let stored = ctx.offset(&partition).cloned().or_else(|| match &source {
                // Offsets written by Kafka Connect's JDBC connector before protocol 1.
                Source::Table(t) => {
                    let mut legacy = SourcePartition::new();
                    legacy.insert(TABLE_KEY.into(), t.table.clone().into());
                    ctx.offset(&legacy).cloned()
                }
                Source::Query(_) => None,
            });
            let (offset, initial_now) = match stored {
                Some(map) => (Offset::from_map(&map)?, false),
                None => match config.timestamp_initial {
                    Some(-1) => (Offset::default(), config.mode.uses_timestamp()),
                    Some(ms) if config.mode.uses_timestamp() => (
                        Offset {
                            timestamp_micros: Some(ms.saturating_mul(1000)),
                            incrementing: None,
                        },
                        false,
                    ),
                    _ => (Offset::default(), false),
                },
            };
            let topic = match &source {
                Source::Table(t) => format!("{}{}", config.topic_prefix, t.table),
                Source::Query(_) => config.topic_prefix.clone(),
            };
            info!(
                connector = %ctx.connector,
                task = ctx.task_id,
                source = %source,
                topic = %topic,
                mode = config.mode.name(),
                resume_from = ?offset,
                "postgres source ready"
            );
            queriers.push(Querier {
                source,
                partition,
                topic,
                offset,
                initial_now,
                next_run: now,
                run: None,
            });
        }
        self.state = Some(TaskState {
            backoff: backoff(&config),
            ctx,
            config,
            queriers,
            connection: None,
            next_connect: None,
            attempts: 0,
            outage: None,
        });
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        let state = self
            .state
            .as_mut()
            .ok_or_else(|| Error::fatal("poll called before start"))?;
        state.poll().await
    }

    async fn stop(&mut self) -> Result<()> {
        if let Some(state) = self.state.take() {
            info!(connector = %state.ctx.connector, task = state.ctx.task_id, "postgres source stopped");
        }
        Ok(())
    }
}

impl TaskState {
    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        if self.queriers.is_empty() {
            tokio::time::sleep(self.config.poll_interval).await;
            return Ok(Vec::new());
        }
        loop {
            if !self.ensure_connected().await? {
                return Ok(Vec::new());
            }
            let index = match self.queriers.iter().position(|q| q.run.is_some()) {
                Some(i) => i,
                None => {
                    let (i, due) = self
                        .queriers
                        .iter()
                        .enumerate()
                        .map(|(i, q)| (i, q.next_run))
                        .min_by_key(|(_, t)| *t)
                        .unwrap_or((0, Instant::now()));
                    if due > Instant::now() {
                        tokio::time::sleep_until(due).await;
                        return Ok(Vec::new());
                    }
                    i
                }
            };
            match self.poll_querier(index).await {
                Ok(records) if records.is_empty() => continue,
                Ok(records) => return Ok(records),
                Err(RunError::Fatal(message)) => return Err(Error::fatal(message)),
                Err(RunError::Postgres(e)) if !is_transient(&e) => {
                    let q = &mut self.queriers[index];
                    q.run = None;
                    let source = q.source.to_string();
                    if e.code().map(|c| c.code()) == Some(UNDEFINED_TABLE)
                        && matches!(q.source, Source::Table(_))
                    {
                        // Dropped under us; the connector's table monitor reassigns tasks.
                        warn!(connector = %self.ctx.connector, task = self.ctx.task_id, %source,
                              error = %db_message(&e), "table is gone; skipping it until tasks are reassigned");
                        q.next_run = Instant::now() + self.config.poll_interval;
                        continue;
                    }
                    return Err(Error::fatal(format!(
                        "reading {source} failed: {}",
                        db_message(&e)
                    )));
                }
                Err(RunError::Postgres(e)) => {
                    self.lose_connection(&db_message(&e));
                    return Ok(Vec::new());
                }
                Err(RunError::NoAnswer(reason)) => {
                    self.lose_connection(&reason);
                    return Ok(Vec::new());
                }
            }
        }
    }

    /// Connects if needed; `Ok(false)` while an outage lasts.
    async fn ensure_connected(&mut self) -> Result<bool> {
        if let Some(c) = &self.connection {
            if !c.client.is_closed() {
                return Ok(true);
            }
            self.lose_connection("the connection was closed");
            return Ok(false);
        }
        if let Some(at) = self.next_connect {
            tokio::time::sleep_until(at).await;
        }
        self.attempts += 1;
        match self.config.connection.connect().await {
            Ok(connection) => {
                if let Some(problem) = self.outage.take() {
                    info!(connector = %self.ctx.connector, task = self.ctx.task_id,
                          database = %self.config.connection.describe(), after = %problem,
                          "reconnected to PostgreSQL");
                    self.ctx.report_problem(None);
                }
                self.connection = Some(connection);
                self.next_connect = None;
                self.attempts = 0;
                self.backoff = backoff(&self.config);
                self.resolve_initial_now().await;
                Ok(self.connection.is_some())
            }
            Err(e) if e.is_transient() => {
                self.lose_connection(&e.to_string());
                Ok(false)
            }
            Err(e) => Err(Error::fatal(self.config.connection.explain(&e).to_string())),
        }
    }

    /// Reads the database clock for queriers that start at `timestamp.initial=-1`.
    async fn resolve_initial_now(&mut self) {
        if !self.queriers.iter().any(|q| q.initial_now) {
            return;
        }
        let Some(connection) = &self.connection else {
            return;
        };
        let read = connection.client.query_one(
            "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::int8",
            &[],
        );
        let Ok(answer) = tokio::time::timeout(CATALOG_TIMEOUT, read).await else {
            self.lose_connection(&format!(
                "no answer within {} to a read of the database clock",
                seconds(CATALOG_TIMEOUT)
            ));
            return;
        };
        match answer {
            Ok(row) => {
                let now: i64 = row.get(0);
                for q in self.queriers.iter_mut().filter(|q| q.initial_now) {
                    q.offset.timestamp_micros = Some(now);
                    q.initial_now = false;
                }
            }
            Err(e) => self.lose_connection(&db_message(&e)),
        }
    }

    fn lose_connection(&mut self, reason: &str) {
        self.connection = None;
        for q in &mut self.queriers {
            q.run = None;
        }
        let delay = self
            .backoff
            .next()
            .unwrap_or(self.config.connection_backoff);
        self.next_connect = Some(Instant::now() + delay);
        let problem = format!(
            "cannot read from PostgreSQL at {}: {reason}; retrying in {:.1}s (attempt {})",
            self.config.connection.describe(),
            delay.as_secs_f64(),
            self.attempts + 1
        );
        warn!(connector = %self.ctx.connector, task = self.ctx.task_id, %problem, "database outage");
        self.ctx.report_problem(Some(problem.clone()));
        self.outage = Some(problem);
    }

    /// Starts querier `q`'s query. Reading the catalog and preparing the statement have
    /// [`CATALOG_TIMEOUT`]; executing it has no deadline: the server sends nothing until the
    /// first rows are ready (after a sort of a large table, say), and a long snapshot must not
    /// be cut.
    async fn start_run(&self, q: &Querier) -> Result<Run, RunError> {
        let client = &self
            .connection
            .as_ref()
            .ok_or_else(|| RunError::Fatal("not connected".into()))?
            .client;
        let (plan, sql, statement) =
            tokio::time::timeout(CATALOG_TIMEOUT, self.prepare_run(client, q))
                .await
                .unwrap_or_else(|_| {
                    Err(RunError::NoAnswer(format!(
                        "no answer within {} while preparing the query of {}",
                        seconds(CATALOG_TIMEOUT),
                        q.source
                    )))
                })?;
        let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        if sql.binds_timestamp {
            let micros = q.offset.timestamp_micros.unwrap_or_default();
            let at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| {
                RunError::Fatal(format!(
                    "{}: stored timestamp offset {micros}µs is out of range; reset the offsets",
                    q.source
                ))
            })?;
            match sql.timestamp_kind {
                TimestampKind::Zoned => params.push(Box::new(at)),
                TimestampKind::Naive => params.push(Box::new(at.naive_utc())),
            }
        }
        if sql.binds_incrementing {
            params.push(Box::new(q.offset.incrementing.unwrap_or_default()));
        }
        let rows = client
            .query_raw(
                &statement,
                params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)),
            )
            .await?;
        Ok(Run {
            plan,
            rows: Box::pin(rows),
            held: None,
            rows_read: 0,
        })
    }

    /// The plan, SQL and prepared statement of querier `q`'s query.
    async fn prepare_run(
        &self,
        client: &tokio_postgres::Client,
        q: &Querier,
    ) -> Result<(Plan, Sql, tokio_postgres::Statement), RunError> {
        let plan = match make_plan(client, &q.source, &self.config).await {
            Ok(plan) => plan,
            Err(PlanError::Postgres(e)) => return Err(RunError::Postgres(e)),
            Err(PlanError::Config(e)) => {
                return Err(RunError::Fatal(format!("{}: {e}", q.source)));
            }
        };
        let columns = plan.select_columns();
        let incrementing = plan.incrementing.map(|i| columns[i].name.clone());
        let timestamps = plan.timestamp_columns();
        let sql = build_sql(
            &q.source,
            self.config.mode,
            &columns,
            incrementing.as_deref(),
            &timestamps,
            q.offset,
            u64::try_from(self.config.timestamp_delay.as_millis()).unwrap_or(u64::MAX),
        );
        debug!(source = %q.source, sql = %sql.text, "query");
        let statement = client.prepare(&sql.text).await?;
        Ok((plan, sql, statement))
    }

    /// Reads up to `batch.max.rows` records from querier `index`, starting its query if it
    /// has none open. State is written back only on success, so a dropped call loses
    /// nothing: the next one re-reads from the last records handed over.
    async fn poll_querier(&mut self, index: usize) -> Result<Vec<SourceRecord>, RunError> {
        let mode = self.config.mode;
        let max = self.config.batch_max_rows;
        let mut run = match self.queriers[index].run.take() {
            Some(run) => run,
            None => self.start_run(&self.queriers[index]).await?,
        };
        let q = &self.queriers[index];
        let mut offset = q.offset;
        let mut out = Vec::with_capacity(max.min(4096));
        let mut finished = false;
        while out.len() < max {
            let Some(row) = run.rows.next().await else {
                finished = true;
                break;
            };
            let row = row?;
            run.rows_read += 1;
            let mut rr = run
                .plan
                .to_record(&row, &q.topic, &q.partition)
                .map_err(|e| RunError::Fatal(format!("reading {}: {e}", q.source)))?;
            match mode {
                Mode::Bulk => out.push(rr.record),
                Mode::Incrementing | Mode::TimestampIncrementing => {
                    if rr.position.incrementing.is_some() {
                        offset.incrementing = rr.position.incrementing;
                    }
                    if rr.position.timestamp_micros.is_some() {
                        offset.timestamp_micros = rr.position.timestamp_micros;
                    }
                    rr.record.source_offset = offset.to_map(mode);
                    out.push(rr.record);
                }
                Mode::Timestamp => {
                    if let Some(mut held) = run.held.take() {
                        if held.position.timestamp_micros < rr.position.timestamp_micros {
                            offset.timestamp_micros = held.position.timestamp_micros;
                        }
                        held.record.source_offset = offset.to_map(mode);
                        out.push(held.record);
                    }
                    run.held = Some(rr);
                }
            }
        }
        if finished {
            if let Some(mut held) = run.held.take() {
                offset.timestamp_micros = held.position.timestamp_micros;
                held.record.source_offset = offset.to_map(mode);
                out.push(held.record);
            }
        }
        let q = &mut self.queriers[index];
        q.offset = offset;
        if finished {
            debug!(source = %q.source, rows = run.rows_read, "query finished");
            q.next_run = Instant::now() + self.config.poll_interval;
        } else {
            q.run = Some(run);
        }
        Ok(out)
    }
}
