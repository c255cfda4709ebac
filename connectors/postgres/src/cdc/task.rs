//! [`PostgresCdcTask`]: the snapshot at the slot's exported snapshot, then the stream from
//! the slot, and the slot's flush position moved only past acknowledged records.
//!
//! # Snapshot then stream
//! With no offsets (or an unfinished snapshot), the task creates the slot with
//! `CREATE_REPLICATION_SLOT ... LOGICAL pgoutput EXPORT_SNAPSHOT` on a replication session
//! that stays idle until the snapshot is read, imports that snapshot
//! (`SET TRANSACTION SNAPSHOT`) into a `REPEATABLE READ` transaction on an ordinary
//! connection, reads every captured table through a cursor (`op=r` events), then starts
//! streaming on the same session from the slot's consistent point. The snapshot sees exactly
//! the transactions committed before that point and the stream exactly those after it:
//! nothing is missed or doubled. An unfinished snapshot is taken again from a new slot.
//!
//! # Offsets and the flush position
//! Every record's offset is Debezium's (`lsn`, `lsn_commit`, `txId`, `ts_usec`; `snapshot`
//! and `last_snapshot_record` while snapshotting) under the partition `{"server": prefix}`.
//! Records are ordered by (`lsn_commit`, `lsn`). After a restart the slot replays from its
//! `confirmed_flush_lsn`, and records at or before the committed offset are skipped, so a
//! crash neither loses nor (mostly) repeats changes.
//!
//! The slot's `confirmed_flush_lsn` moves only through [`SourceTask::offsets_committed`]:
//! once the runtime wrote the offset of the last record of a transaction (so Kafka had
//! acknowledged it and everything before it), the transaction's end LSN is confirmed. Idle
//! positions (keepalives, transactions with no captured change) are confirmed once every
//! earlier record is; heartbeats (`heartbeat.interval.ms`) carry the position through the
//! offsets topic when the captured tables are idle.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use pgwire_replication::{
    Lsn, PgWireError, ReplicationClient, ReplicationConfig, ReplicationEvent, SslMode as TlsMode,
    TlsConfig,
};
use serde_json::json;
use sluice_sdk::async_trait;
use sluice_sdk::{
    ConfigError, Error, Result, SourceOffset, SourcePartition, SourceRecord, SourceTask,
    SourceTaskContext,
};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::catalog::{
    self, captured_tables, format_lsn, parse_lsn, pg_error, quote_ident, quote_literal,
    resolve_types, slot_in_use, table_columns, TableRef,
};
use super::config::{
    PostgresCdcConfig, SnapshotMode, DATABASE_HOSTNAME, DATABASE_PASSWORD, DATABASE_SSLCERT,
    DATABASE_USER, SESSION_OPTIONS,
};
use super::envelope::{ColumnInfo, EventBuilder, Position, SnapshotMark, TableShape};
use super::pgoutput::{self, Message, OldKind, TupleValue};
use super::types::CatalogType;
use crate::connection::{db_message, seconds, PgConnection, SslMode};

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// How long a slot held by another session (often the walsender of a killed worker that the
/// server has not noticed yet) is waited for before the task fails.
const SLOT_BUSY_GRACE: Duration = Duration::from_secs(20);
/// How long the server may take to accept START_REPLICATION.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Position of a record in the stream: (commit LSN of its transaction, its own LSN).
type StreamKey = (u64, u64);

/// The CDC source task.
#[derive(Default)]
pub struct PostgresCdcTask {
    state: Option<Box<TaskState>>,
}

impl std::fmt::Debug for PostgresCdcTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresCdcTask")
            .field("running", &self.state.is_some())
            .finish()
    }
}

struct Tx {
    commit_lsn: u64,
    xid: u32,
    commit_micros: i64,
}

/// A snapshot record held back until the next one shows whether it is the last.
struct Held {
    shape: Arc<TableShape>,
    row: sluice_sdk::Struct,
    mark: SnapshotMark,
}

struct Snapshot {
    conn: PgConnection,
    tables: VecDeque<TableRef>,
    current: Option<Arc<TableShape>>,
    consistent_point: u64,
    xid: u32,
    started_micros: i64,
    held: Option<Held>,
    first: bool,
}

enum Phase {
    Snapshot(Box<Snapshot>),
    /// The snapshot's connection broke: its exported snapshot is gone, so it is taken again
    /// from a new slot (the rows already sent come again; nothing is missed).
    Resnapshot,
    Streaming,
    /// `snapshot.mode=initial_only` after its snapshot: nothing more to do.
    Done,
}

struct TaskState {
    config: PostgresCdcConfig,
    events: EventBuilder,
    query: PgConnection,
    types: HashMap<u32, CatalogType>,
    phase: Phase,
    repl: Option<ReplicationClient>,
    relations: HashMap<u32, Option<Arc<TableShape>>>,
    tx: Option<Tx>,
    /// Records at or before this were sent already (committed offset, or before a reconnect).
    resume_after: Option<StreamKey>,
    last_emitted: Option<StreamKey>,
    last_committed: Option<StreamKey>,
    /// (confirmable once the record with this key is committed, LSN to confirm).
    safe_points: VecDeque<(Option<StreamKey>, u64)>,
    confirmed: u64,
    /// The newest position between transactions, and the commit LSN of the last transaction.
    position: u64,
    last_commit_lsn: u64,
    last_heartbeat: Instant,
    heartbeat_topic: String,
}

fn offset_u64(offset: &SourceOffset, key: &str) -> Option<u64> {
    offset.get(key).and_then(serde_json::Value::as_u64)
}

fn stream_key(offset: &SourceOffset) -> Option<StreamKey> {
    if offset.get("snapshot").and_then(serde_json::Value::as_bool) == Some(true) {
        return None;
    }
    Some((
        offset_u64(offset, "lsn_commit")?,
        offset_u64(offset, "lsn")?,
    ))
}

fn stream_offset(commit_lsn: u64, lsn: u64, xid: Option<u32>, micros: i64) -> SourceOffset {
    let value = json!({
        "lsn_proc": lsn,
        "lsn_commit": commit_lsn,
        "lsn": lsn,
        "txId": xid,
        "ts_usec": micros,
    });
    value.as_object().cloned().unwrap_or_default()
}

fn replication_error(config: &PostgresCdcConfig, e: &PgWireError) -> Error {
    let text = e.to_string();
    if text.contains("is active for PID") {
        let pid = text
            .rsplit("PID ")
            .next()
            .and_then(|p| {
                p.trim_end_matches(|c: char| !c.is_ascii_digit())
                    .parse()
                    .ok()
            })
            .unwrap_or(0);
        return Error::fatal(slot_in_use(&config.slot_name, pid));
    }
    if text.contains("wal_level") {
        return Error::fatal(format!(
            "{text}: set wal_level=logical (ALTER SYSTEM SET wal_level = logical; then restart \
             PostgreSQL)"
        ));
    }
    if text.contains("permission denied") || text.contains("must be superuser or replication") {
        return Error::fatal(format!(
            "{text}: run ALTER ROLE {} WITH REPLICATION;",
            quote_ident(&config.user)
        ));
    }
    if text.contains("does not exist") {
        return Error::fatal(format!("replication: {text}"));
    }
    match e {
        PgWireError::Io(_) | PgWireError::Task(_) => {
            Error::retriable(format!("replication connection: {text}"))
        }
        PgWireError::Server(_) if text.contains("57P") || text.contains("08") => {
            Error::retriable(format!("replication connection: {text}"))
        }
        PgWireError::Tls(_) => Error::fatal(replication_tls_problem(config, &text).1),
        PgWireError::Auth(_) => Error::fatal(format!("replication connection refused: {text}")),
        _ => Error::retriable(format!("replication connection: {text}")),
    }
}

/// The option to blame and the message for a failed TLS set-up on the replication connection.
fn replication_tls_problem(config: &PostgresCdcConfig, text: &str) -> (&'static str, String) {
    let (option, advice) = config.tls_advice(text);
    (
        option,
        format!(
            "replication connection to {}:{} could not set up TLS ({text}); {advice}",
            config.hostname, config.port
        ),
    )
}

/// TLS of the replication connection, per `database.sslmode` as libpq reads it and as the
/// query connection (`ConnectionSettings`) applies it.
fn replication_tls(config: &PostgresCdcConfig) -> TlsConfig {
    // libpq uses no TLS over a unix socket, whatever sslmode says; the crate refuses to try.
    if config.hostname.starts_with('/') {
        return TlsConfig::disabled();
    }
    let ca = config.ssl_root_cert.clone();
    let tls = match config.ssl_mode {
        SslMode::Disable => return TlsConfig::disabled(),
        SslMode::Allow | SslMode::Prefer => TlsConfig {
            mode: TlsMode::Prefer,
            ..TlsConfig::disabled()
        },
        SslMode::Require => TlsConfig::require(),
        SslMode::VerifyCa => TlsConfig::verify_ca(ca),
        SslMode::VerifyFull => TlsConfig::verify_full(ca),
    };
    let tls = match &config.ssl_client_cert {
        Some((cert, key)) => tls.with_client_cert(cert.clone(), key.clone()),
        None => tls,
    };
    // The name checked against the certificate is the host as given, an IP address included
    // (matched against the certificate's IP addresses, as libpq does); without this the
    // crate refuses verify-full to an IP address outright.
    tls.with_sni_hostname(config.hostname.clone())
}

/// Opens a replication session (TLS per `database.sslmode`, authenticated), asks the server
/// who it is (`IDENTIFY_SYSTEM`) and closes it. The connector checks this before it starts:
/// the replication connection has its own pg_hba.conf lines and its own TLS set-up.
///
/// # Errors
/// A [`ConfigError`] naming the option to change and what to do.
pub async fn check_replication_connection(
    config: &PostgresCdcConfig,
) -> std::result::Result<(), ConfigError> {
    let deadline = config.connection.connect_timeout;
    let attempt = async {
        let mut client = ReplicationClient::connect_gated(replication_config(config)).await?;
        client.identify_system().await
    };
    let target = format!("{}:{}", config.hostname, config.port);
    let e = match tokio::time::timeout(deadline, attempt).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e,
        Err(_) => {
            return Err(ConfigError::new(
                DATABASE_HOSTNAME,
                format!(
                    "timed out after {} opening a replication connection to PostgreSQL at \
                     {target}: check the host and port, and that no firewall holds the traffic",
                    seconds(deadline)
                ),
            ))
        }
    };
    let text = e.to_string();
    Err(match &e {
        PgWireError::Tls(_) => {
            let (option, message) = replication_tls_problem(config, &text);
            ConfigError::new(option, message)
        }
        _ if text.contains("certificate") => ConfigError::new(
            DATABASE_SSLCERT,
            format!(
                "replication connection to {target} refused: {text}; the server wants a client \
                 certificate: set database.sslcert and database.sslkey to one it trusts, issued \
                 to database.user ('{}')",
                config.user
            ),
        ),
        _ if text.contains("pg_hba.conf") => ConfigError::new(
            DATABASE_USER,
            format!(
                "cannot open a replication connection to {target}: {text}; add a line such as \
                 'hostssl replication {} <client address>/32 scram-sha-256' ('host' without \
                 TLS) to the server's pg_hba.conf and reload it",
                config.user
            ),
        ),
        _ if text.contains("password authentication failed") => ConfigError::new(
            DATABASE_PASSWORD,
            format!("replication connection to {target} refused: {text}; check database.password"),
        ),
        PgWireError::Io(_) => ConfigError::new(
            DATABASE_HOSTNAME,
            format!(
                "cannot open a replication connection to {target}: {text}; check the host and \
                 port, and that PostgreSQL is running and accepts TCP connections"
            ),
        ),
        _ => ConfigError::new(
            DATABASE_HOSTNAME,
            format!("cannot open a replication connection to {target}: {text}"),
        ),
    })
}

fn replication_config(config: &PostgresCdcConfig) -> ReplicationConfig {
    let tls = replication_tls(config);
    let mut options: Vec<String> = SESSION_OPTIONS.iter().map(|o| o.to_string()).collect();
    options.push("-c TimeZone=UTC".into());
    ReplicationConfig::new(
        config.hostname.clone(),
        config.user.clone(),
        config.password.value().to_string(),
        config.dbname.clone(),
        config.slot_name.clone(),
        config.publication_name.clone(),
    )
    .with_port(config.port)
    .with_tls(tls)
    .with_status_interval(config.status_update_interval)
    .with_wakeup_interval(Duration::from_secs(5))
    .with_options(options.join(" "))
    .with_application_name(format!("sluice-cdc-{}", config.slot_name))
}

/// Waits for a slot held by another session to be released, up to [`SLOT_BUSY_GRACE`].
async fn wait_for_free_slot(
    query: &PgConnection,
    config: &PostgresCdcConfig,
) -> Result<Option<catalog::SlotState>> {
    let deadline = Instant::now() + SLOT_BUSY_GRACE;
    loop {
        let state = catalog::slot(&query.client, &config.slot_name).await?;
        match &state {
            Some(s) if s.active_pid.is_some() => {
                if Instant::now() >= deadline {
                    return Err(Error::fatal(slot_in_use(
                        &config.slot_name,
                        s.active_pid.unwrap_or(0),
                    )));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            _ => return Ok(state),
        }
    }
}

async fn connect(config: &PostgresCdcConfig) -> Result<PgConnection> {
    config.connection.connect().await.map_err(|e| {
        let explained = config.explain_connect_error(&e);
        if e.is_transient() {
            Error::retriable(explained.message)
        } else {
            Error::fatal(explained.message)
        }
    })
}

impl TaskState {
    /// Starts streaming from the slot (which must exist).
    async fn start_streaming(&mut self, client: Option<ReplicationClient>) -> Result<()> {
        let mut client = match client {
            Some(mut gated) => {
                gated
                    .start()
                    .await
                    .map_err(|e| replication_error(&self.config, &e))?;
                gated
            }
            None => {
                // After a lost connection the server may hold the old session's slot until it
                // notices (wal_sender_timeout): worth retrying, not failing.
                let reconnecting = self.last_emitted.is_some();
                let state = wait_for_free_slot(&self.query, &self.config)
                    .await
                    .map_err(|e| match e {
                        Error::Fatal(message) if reconnecting => Error::retriable(message),
                        other => other,
                    })?;
                let start = state.map_or(0, |s| s.confirmed_flush);
                let cfg = replication_config(&self.config).with_start_lsn(Lsn::from_u64(start));
                ReplicationClient::connect(cfg)
                    .await
                    .map_err(|e| replication_error(&self.config, &e))?
            }
        };
        match tokio::time::timeout(START_TIMEOUT, client.wait_started()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(replication_error(&self.config, &e)),
            Err(_) => {
                return Err(Error::retriable(
                    "PostgreSQL did not start the replication stream within 60s",
                ))
            }
        }
        if self.confirmed > 0 {
            // Confirmed before a reconnect; the new session reports it from the start.
            client.update_applied_lsn(Lsn::from_u64(self.confirmed));
        }
        info!(slot = %self.config.slot_name, publication = %self.config.publication_name,
              "streaming changes from the replication slot");
        self.relations.clear();
        self.tx = None;
        self.repl = Some(client);
        self.phase = Phase::Streaming;
        Ok(())
    }

    /// Creates the slot with an exported snapshot and opens the snapshot transaction.
    async fn start_snapshot(&mut self) -> Result<ReplicationClient> {
        if wait_for_free_slot(&self.query, &self.config)
            .await?
            .is_some()
        {
            info!(slot = %self.config.slot_name, "dropping the slot of an unfinished or replaced snapshot");
            self.query
                .client
                .execute(
                    "SELECT pg_drop_replication_slot($1)",
                    &[&self.config.slot_name],
                )
                .await
                .map_err(|e| pg_error("dropping the replication slot", &e))?;
        }
        let mut gated = ReplicationClient::connect_gated(replication_config(&self.config))
            .await
            .map_err(|e| replication_error(&self.config, &e))?;
        let rows = gated
            .simple_query(&format!(
                // slot.name is validated to [a-z0-9_], so it needs no quoting.
                "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput EXPORT_SNAPSHOT",
                self.config.slot_name
            ))
            .await
            .map_err(|e| replication_error(&self.config, &e))?;
        let row = rows
            .first()
            .ok_or_else(|| Error::fatal("CREATE_REPLICATION_SLOT returned no row"))?;
        let text = |i: usize| {
            row.get(i)
                .and_then(|v| v.as_ref())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let consistent_point = parse_lsn(&text(1))
            .ok_or_else(|| Error::fatal("CREATE_REPLICATION_SLOT returned no consistent point"))?;
        let snapshot_name = text(2);
        let conn = connect(&self.config).await?;
        conn.client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                quote_literal(&snapshot_name)
            ))
            .await
            .map_err(|e| pg_error("importing the slot's snapshot", &e))?;
        let xid: i64 = conn
            .client
            .query_one(
                "SELECT txid_snapshot_xmin(txid_current_snapshot())::int8",
                &[],
            )
            .await
            .map_err(|e| pg_error("reading the snapshot's transaction id", &e))?
            .get(0);
        let tables = captured_tables(&conn.client, &self.config).await?;
        info!(slot = %self.config.slot_name, consistent_point = %format_lsn(consistent_point),
              tables = tables.len(), "snapshot started at the slot's consistent point");
        self.phase = Phase::Snapshot(Box::new(Snapshot {
            conn,
            tables: tables.into(),
            current: None,
            consistent_point,
            xid: xid as u32,
            started_micros: chrono::Utc::now().timestamp_micros(),
            held: None,
            first: true,
        }));
        Ok(gated)
    }

    async fn shape_of_table(
        &mut self,
        client_is_snapshot: bool,
        table: &TableRef,
    ) -> Result<Arc<TableShape>> {
        let client = match (&self.phase, client_is_snapshot) {
            (Phase::Snapshot(s), true) => &s.conn.client,
            _ => &self.query.client,
        };
        let columns = table_columns(client, table.oid).await?;
        resolve_types(client, &mut self.types, columns.iter().map(|c| c.type_oid)).await?;
        let types = &self.types;
        Ok(Arc::new(TableShape::new(
            &self.config,
            &table.schema,
            &table.table,
            &columns,
            &|oid| types.get(&oid).cloned().unwrap_or(CatalogType::Other),
        )))
    }

    fn snapshot_offset(s: &Snapshot, last: bool) -> SourceOffset {
        json!({
            "snapshot": true,
            "last_snapshot_record": last,
            "lsn": s.consistent_point,
            "txId": s.xid,
            "ts_usec": s.started_micros,
        })
        .as_object()
        .cloned()
        .unwrap_or_default()
    }

    fn snapshot_record(
        events: &EventBuilder,
        s: &Snapshot,
        held: Held,
        last: bool,
    ) -> SourceRecord {
        let at = Position {
            lsn: s.consistent_point,
            commit_lsn: s.consistent_point,
            xid: Some(s.xid),
            commit_micros: s.started_micros,
        };
        events.change(
            &held.shape,
            "r",
            None,
            Some(held.row),
            at,
            if last { SnapshotMark::Last } else { held.mark },
            Self::snapshot_offset(s, last),
        )
    }

    /// Reads the next rows of the snapshot; moves to streaming when it is done.
    async fn poll_snapshot(
        &mut self,
        gated: &mut Option<ReplicationClient>,
    ) -> Result<Vec<SourceRecord>> {
        let mut out = Vec::new();
        loop {
            let Phase::Snapshot(s) = &mut self.phase else {
                return Ok(out);
            };
            if s.current.is_none() {
                let Some(table) = s.tables.pop_front() else {
                    // Done: the held record is the last, and the transaction ends.
                    if let Some(held) = s.held.take() {
                        out.push(Self::snapshot_record(&self.events, s, held, true));
                    }
                    let _ = s.conn.client.batch_execute("COMMIT").await;
                    info!(slot = %self.config.slot_name, "snapshot finished");
                    let client = gated.take();
                    if self.config.snapshot_mode == SnapshotMode::InitialOnly {
                        drop(client);
                        self.drop_slot().await;
                        self.phase = Phase::Done;
                    } else {
                        self.start_streaming(client).await?;
                    }
                    return Ok(out);
                };
                let shape = self.shape_of_table(true, &table).await?;
                let Phase::Snapshot(s) = &mut self.phase else {
                    return Ok(out);
                };
                let columns = shape
                    .columns
                    .iter()
                    .map(|c| quote_ident(&c.name))
                    .collect::<Vec<_>>()
                    .join(", ");
                s.conn
                    .client
                    .batch_execute(&format!(
                        "DECLARE sluice_snapshot NO SCROLL CURSOR FOR SELECT {columns} FROM {}",
                        table.quoted()
                    ))
                    .await
                    .map_err(|e| pg_error(&format!("reading table {}", table.quoted()), &e))?;
                debug!(table = %table.quoted(), "snapshotting table");
                s.current = Some(shape);
            }
            let fetch = self.config.snapshot_fetch_size;
            let Phase::Snapshot(s) = &mut self.phase else {
                return Ok(out);
            };
            let messages = s
                .conn
                .client
                .simple_query(&format!("FETCH {fetch} FROM sluice_snapshot"))
                .await
                .map_err(|e| pg_error("reading the snapshot", &e))?;
            let shape = s.current.clone().expect("a table is open");
            let mut rows = 0;
            for message in messages {
                let tokio_postgres::SimpleQueryMessage::Row(row) = message else {
                    continue;
                };
                rows += 1;
                let values: Vec<TupleValue> = (0..row.len())
                    .map(|i| match row.get(i) {
                        Some(t) => TupleValue::Text(t.to_string()),
                        None => TupleValue::Null,
                    })
                    .collect();
                let row = shape.row(&values, false).map_err(Error::fatal)?;
                let mark = if s.first {
                    s.first = false;
                    SnapshotMark::First
                } else {
                    SnapshotMark::Middle
                };
                let next = Held {
                    shape: shape.clone(),
                    row,
                    mark,
                };
                if let Some(held) = s.held.replace(next) {
                    out.push(Self::snapshot_record(&self.events, s, held, false));
                }
            }
            if rows < fetch {
                s.conn
                    .client
                    .batch_execute("CLOSE sluice_snapshot")
                    .await
                    .map_err(|e| pg_error("closing the snapshot cursor", &e))?;
                if let Some(held) = &mut s.held {
                    if Arc::ptr_eq(&held.shape, &shape) && held.mark == SnapshotMark::Middle {
                        held.mark = SnapshotMark::LastInTable;
                    }
                }
                s.current = None;
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
    }

    async fn drop_slot(&mut self) {
        if let Err(e) = self
            .query
            .client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = $1 AND NOT active",
                &[&self.config.slot_name],
            )
            .await
        {
            warn!(slot = %self.config.slot_name, error = %db_message(&e), "could not drop the replication slot");
        }
    }

    /// The shape of relation `id` from its Relation message, or `None` when not captured.
    async fn relation_shape(
        &mut self,
        relation: pgoutput::Relation,
    ) -> Result<Option<Arc<TableShape>>> {
        if !self.config.captures(&relation.schema, &relation.table) {
            return Ok(None);
        }
        let facts = table_columns(&self.query.client, relation.id).await?;
        resolve_types(
            &self.query.client,
            &mut self.types,
            relation.columns.iter().map(|c| c.type_oid),
        )
        .await?;
        let columns: Vec<ColumnInfo> = relation
            .columns
            .iter()
            .map(|c| {
                let fact = facts.iter().find(|f| f.name == c.name);
                ColumnInfo {
                    name: c.name.clone(),
                    type_oid: c.type_oid,
                    modifier: c.type_modifier,
                    nullable: fact.is_none_or(|f| f.nullable),
                    primary_key: fact.is_some_and(|f| f.primary_key),
                }
            })
            .collect();
        let types = &self.types;
        Ok(Some(Arc::new(TableShape::new(
            &self.config,
            &relation.schema,
            &relation.table,
            &columns,
            &|oid| types.get(&oid).cloned().unwrap_or(CatalogType::Other),
        ))))
    }

    fn confirm(&mut self, lsn: u64) {
        if lsn > self.confirmed {
            if let Some(repl) = &self.repl {
                repl.update_applied_lsn(Lsn::from_u64(lsn));
                debug!(lsn = %format_lsn(lsn), "confirmed flush position");
            }
            self.confirmed = lsn;
        }
    }

    /// `lsn` may be confirmed once the record with key `after` is committed.
    fn add_safe_point(&mut self, after: Option<StreamKey>, lsn: u64) {
        if (after.is_none() || after <= self.last_committed) && self.safe_points.is_empty() {
            self.confirm(lsn);
            return;
        }
        match self.safe_points.back_mut() {
            Some(back) if back.0 == after => back.1 = back.1.max(lsn),
            _ => self.safe_points.push_back((after, lsn)),
        }
    }

    fn committed(&mut self, key: StreamKey) {
        if Some(key) > self.last_committed {
            self.last_committed = Some(key);
        }
        let mut best = None;
        while let Some(front) = self.safe_points.front() {
            if front.0 <= self.last_committed {
                best = Some(front.1);
                self.safe_points.pop_front();
            } else {
                break;
            }
        }
        if let Some(lsn) = best {
            self.confirm(lsn);
        }
    }

    fn skip(&self, key: StreamKey) -> bool {
        self.resume_after.is_some_and(|r| key <= r)
    }

    /// Turns one change into records (a key change is a delete, a tombstone and a create,
    /// as Debezium emits it).
    fn change_records(
        &mut self,
        message: Message,
        lsn: u64,
        out: &mut Vec<SourceRecord>,
    ) -> Result<()> {
        let relation = match &message {
            Message::Insert { relation, .. }
            | Message::Update { relation, .. }
            | Message::Delete { relation, .. } => *relation,
            _ => return Ok(()),
        };
        let shape = match self.relations.get(&relation) {
            Some(Some(shape)) => shape.clone(),
            Some(None) => return Ok(()),
            None => {
                return Err(Error::fatal(format!(
                    "a change of relation {relation} arrived before its Relation message"
                )))
            }
        };
        let (commit_lsn, xid, micros) = match &self.tx {
            Some(tx) => (tx.commit_lsn, Some(tx.xid), tx.commit_micros),
            None => (lsn, None, chrono::Utc::now().timestamp_micros()),
        };
        if self.skip((commit_lsn, lsn)) {
            return Ok(());
        }
        let at = Position {
            lsn,
            commit_lsn,
            xid,
            commit_micros: micros,
        };
        let offset = |l: u64| stream_offset(commit_lsn, l, xid, micros);
        let events = &self.events;
        let row = |t: &[TupleValue], key_only| shape.row(t, key_only).map_err(Error::fatal);
        match message {
            Message::Insert { new, .. } => {
                out.push(events.change(
                    &shape,
                    "c",
                    None,
                    Some(row(&new, false)?),
                    at,
                    SnapshotMark::No,
                    offset(lsn),
                ));
            }
            Message::Update { old, new, .. } => {
                let after = row(&new, false)?;
                let before = match &old {
                    Some((OldKind::Full, t)) => Some(row(t, false)?),
                    Some((OldKind::Key, t)) => Some(row(t, true)?),
                    None => None,
                };
                let key_changed = before.as_ref().is_some_and(|b| {
                    shape.key_schema.is_some() && shape.key(b) != shape.key(&after)
                });
                if key_changed {
                    let delete = events.change(
                        &shape,
                        "d",
                        before,
                        None,
                        at,
                        SnapshotMark::No,
                        offset(lsn - 2),
                    );
                    if events.tombstones {
                        let tombstone = events.tombstone(&delete, offset(lsn - 1));
                        out.push(delete);
                        out.push(tombstone);
                    } else {
                        out.push(delete);
                    }
                    out.push(events.change(
                        &shape,
                        "c",
                        None,
                        Some(after),
                        at,
                        SnapshotMark::No,
                        offset(lsn),
                    ));
                } else {
                    let before = before.filter(|_| matches!(old, Some((OldKind::Full, _))));
                    out.push(events.change(
                        &shape,
                        "u",
                        before,
                        Some(after),
                        at,
                        SnapshotMark::No,
                        offset(lsn),
                    ));
                }
            }
            Message::Delete { old: (kind, t), .. } => {
                let before = row(&t, kind == OldKind::Key)?;
                if events.tombstones {
                    let delete = events.change(
                        &shape,
                        "d",
                        Some(before),
                        None,
                        at,
                        SnapshotMark::No,
                        offset(lsn - 1),
                    );
                    let tombstone = events.tombstone(&delete, offset(lsn));
                    out.push(delete);
                    out.push(tombstone);
                } else {
                    out.push(events.change(
                        &shape,
                        "d",
                        Some(before),
                        None,
                        at,
                        SnapshotMark::No,
                        offset(lsn),
                    ));
                }
            }
            _ => {}
        }
        self.last_emitted = Some((commit_lsn, lsn));
        Ok(())
    }

    fn maybe_heartbeat(&mut self, out: &mut Vec<SourceRecord>) {
        if self.config.heartbeat_interval.is_zero()
            || self.tx.is_some()
            || self.position == 0
            || self.last_heartbeat.elapsed() < self.config.heartbeat_interval
        {
            return;
        }
        self.last_heartbeat = Instant::now();
        let key = (self.last_commit_lsn, self.position);
        if self.last_emitted.is_some_and(|l| l >= key) {
            return;
        }
        let offset = stream_offset(key.0, key.1, None, chrono::Utc::now().timestamp_micros());
        out.push(self.events.heartbeat(&self.heartbeat_topic, offset));
        self.last_emitted = Some(key);
        self.add_safe_point(Some(key), self.position);
    }

    async fn poll_stream(&mut self) -> Result<Vec<SourceRecord>> {
        if self.repl.is_none() {
            // Reconnect after a lost connection: what was handed over is not asked for again.
            self.resume_after = self.resume_after.max(self.last_emitted);
            self.safe_points.clear();
            if self.query.client.is_closed() {
                // The server restarted or the network dropped both connections.
                self.query = connect(&self.config).await?;
            }
            self.start_streaming(None).await?;
        }
        let mut out = Vec::new();
        match self.stream_into(&mut out).await {
            Ok(()) => {
                self.maybe_heartbeat(&mut out);
                Ok(out)
            }
            Err(e) => {
                // The next poll reconnects; the server sends the Relation messages again and
                // everything after the records handed over so far.
                self.repl = None;
                self.tx = None;
                if out.is_empty() {
                    Err(e)
                } else {
                    warn!(error = %e, "replication interrupted; reconnecting at the next poll");
                    Ok(out)
                }
            }
        }
    }

    /// Receives events into `out` until the batch is full or the stream is quiet.
    async fn stream_into(&mut self, out: &mut Vec<SourceRecord>) -> Result<()> {
        let deadline = Instant::now() + self.config.poll_interval;
        while out.len() < self.config.max_batch_size {
            let repl = self.repl.as_mut().expect("streaming");
            // An event already queued is taken without a timer; only an empty queue waits
            // (up to the poll interval for the first event, briefly for more).
            let received = match repl.recv().now_or_never() {
                Some(received) => received,
                None => {
                    let wait = if out.is_empty() {
                        deadline
                    } else {
                        Instant::now() + Duration::from_millis(5)
                    };
                    match tokio::time::timeout_at(wait, repl.recv()).await {
                        Ok(received) => received,
                        Err(_) => break,
                    }
                }
            };
            let event = match received {
                Ok(Some(event)) => event,
                Ok(None) => {
                    return Err(Error::retriable(
                        "the replication stream ended; reconnecting",
                    ));
                }
                Err(e) => return Err(replication_error(&self.config, &e)),
            };
            match event {
                ReplicationEvent::Begin {
                    final_lsn,
                    xid,
                    commit_time_micros,
                } => {
                    self.tx = Some(Tx {
                        commit_lsn: final_lsn.as_u64(),
                        xid,
                        commit_micros: commit_time_micros + PG_EPOCH_MICROS,
                    });
                }
                ReplicationEvent::Commit { lsn, end_lsn, .. } => {
                    self.tx = None;
                    self.last_commit_lsn = lsn.as_u64();
                    self.position = self.position.max(end_lsn.as_u64());
                    let after = self.last_emitted;
                    self.add_safe_point(after, end_lsn.as_u64());
                }
                ReplicationEvent::KeepAlive { wal_end, .. }
                    if self.tx.is_none() && wal_end.as_u64() > self.position =>
                {
                    self.position = wal_end.as_u64();
                    let after = self.last_emitted;
                    self.add_safe_point(after, wal_end.as_u64());
                }
                ReplicationEvent::XLogData {
                    wal_start, data, ..
                } => {
                    let message = pgoutput::decode(&data).map_err(Error::fatal)?;
                    match message {
                        Message::Relation(relation) => {
                            let id = relation.id;
                            let shape = self.relation_shape(relation).await?;
                            self.relations.insert(id, shape);
                        }
                        other => self.change_records(other, wal_start.as_u64(), out)?,
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SourceTask for PostgresCdcTask {
    async fn start(&mut self, ctx: SourceTaskContext) -> Result<()> {
        let config = PostgresCdcConfig::parse(&ctx.config)?;
        let events = EventBuilder::new(&config);
        let stored = ctx.offset(&events.partition).cloned();
        let query = connect(&config).await?;
        let problems = catalog::check_server(&query.client, &config).await;
        if let Some(problem) = problems
            .0
            .iter()
            // A slot still held (by the session of a task that just stopped) is waited for
            // below.
            .find(|p| !catalog::is_slot_in_use(p))
        {
            return Err(Error::fatal(problem.to_string()));
        }
        catalog::ensure_publication(&query.client, &config)
            .await
            .map_err(|e| match e {
                Error::Config(errors) => Error::fatal(errors.to_string()),
                other => other,
            })?;
        let snapshot_done = stored.as_ref().is_some_and(|o| {
            o.get("snapshot").and_then(serde_json::Value::as_bool) == Some(true)
                && o.get("last_snapshot_record")
                    .and_then(serde_json::Value::as_bool)
                    == Some(true)
        });
        let resume_after = stored.as_ref().and_then(stream_key);
        let has_position = snapshot_done || resume_after.is_some();
        let slot = wait_for_free_slot(&query, &config).await?;
        let snapshot = match config.snapshot_mode {
            SnapshotMode::Always => true,
            SnapshotMode::NoData => false,
            SnapshotMode::Initial | SnapshotMode::InitialOnly => !has_position,
            SnapshotMode::WhenNeeded => !has_position || slot.is_none(),
        };
        let heartbeat_topic = format!("{}.{}", config.heartbeat_topic_prefix, config.topic_prefix);
        let mut state = Box::new(TaskState {
            config,
            events,
            query,
            types: HashMap::new(),
            phase: Phase::Streaming,
            repl: None,
            relations: HashMap::new(),
            tx: None,
            resume_after,
            last_emitted: None,
            last_committed: resume_after,
            safe_points: VecDeque::new(),
            confirmed: 0,
            position: 0,
            last_commit_lsn: resume_after.map_or(0, |k| k.0),
            last_heartbeat: Instant::now(),
            heartbeat_topic,
        });
        if snapshot {
            let gated = state.start_snapshot().await?;
            state.repl = Some(gated);
            state.resume_after = None;
            state.last_committed = None;
        } else if state.config.snapshot_mode == SnapshotMode::InitialOnly {
            state.phase = Phase::Done;
        } else {
            if slot.is_none() {
                if has_position {
                    return Err(Error::fatal(format!(
                        "replication slot '{}' does not exist any more, so the changes since the \
                         connector's last offset are gone: set snapshot.mode=when_needed to take \
                         a new snapshot, or delete the connector's offsets",
                        state.config.slot_name
                    )));
                }
                state
                    .query
                    .client
                    .execute(
                        "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                        &[&state.config.slot_name],
                    )
                    .await
                    .map_err(|e| pg_error("creating the replication slot", &e))?;
            }
            state.start_streaming(None).await?;
        }
        info!(connector = %ctx.connector, slot = %state.config.slot_name,
              snapshot, "postgres CDC task started");
        self.state = Some(state);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        let state = self
            .state
            .as_mut()
            .ok_or_else(|| Error::fatal("poll before start"))?;
        match state.phase {
            Phase::Snapshot(_) => {
                let mut gated = state.repl.take();
                let result = state.poll_snapshot(&mut gated).await;
                if state.repl.is_none() {
                    state.repl = gated;
                }
                if let Err(e) = &result {
                    if matches!(state.phase, Phase::Snapshot(_)) {
                        warn!(error = %e, "snapshot interrupted; it is taken again from a new slot");
                        state.repl = None;
                        state.phase = Phase::Resnapshot;
                        return Err(Error::retriable(format!(
                            "snapshot interrupted ({e}); taking it again"
                        )));
                    }
                }
                result
            }
            Phase::Resnapshot => {
                let gated = state.start_snapshot().await?;
                state.repl = Some(gated);
                Ok(Vec::new())
            }
            Phase::Streaming => state.poll_stream().await,
            Phase::Done => {
                tokio::time::sleep(state.config.poll_interval.max(Duration::from_millis(100)))
                    .await;
                Ok(Vec::new())
            }
        }
    }

    async fn offsets_committed(&mut self, committed: &[(SourcePartition, SourceOffset)]) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        for (partition, offset) in committed {
            if *partition != state.events.partition {
                continue;
            }
            if let Some(key) = stream_key(offset) {
                state.committed(key);
            }
        }
    }

    async fn stop(&mut self) -> Result<()> {
        if let Some(mut state) = self.state.take() {
            if let Some(mut repl) = state.repl.take() {
                repl.stop();
                let _ = tokio::time::timeout(Duration::from_secs(5), repl.shutdown()).await;
            }
            if state.config.slot_drop_on_stop {
                state.drop_slot().await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_offsets_order_by_commit_then_change() {
        let a = stream_offset(100, 90, Some(7), 0);
        let b = stream_offset(200, 50, Some(8), 0);
        assert!(stream_key(&a) < stream_key(&b));
        let snap = json!({"snapshot": true, "lsn": 5})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(stream_key(&snap), None);
    }
}
