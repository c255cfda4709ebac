//! The connector: checks the configuration against the live database, lists the tables,
//! splits them across tasks, and watches for tables appearing or disappearing.
//!
//! # Deadlines
//! Every call to the database here is bounded, so `validate` and `start` always answer: each
//! connection attempt has the URL's connect deadline (see [`crate::connection`]), and each
//! catalog read has [`CATALOG_TIMEOUT`]. `validate` tries once, so the validate endpoint
//! answers within one connect deadline with the error on `connection.url`; `start` tries
//! `connection.attempts` times, `connection.backoff.ms` apart.

use std::future::Future;
use std::sync::{Arc, Mutex};

use sluice_sdk::config::Props;
use sluice_sdk::{ConfigErrors, ConnectorContext, Error, Result, SourceConnector, SourceTask};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{
    encode_task_tables, PostgresSourceConfig, CONNECTION_URL, QUERY, SCHEMA_PATTERN,
    TABLE_WHITELIST, TASK_TABLES,
};
use crate::connection::{db_message, seconds, ConnectError, PgConnection, CATALOG_TIMEOUT};
use crate::plan::{list_tables, make_plan, PlanError};
use crate::query::{Source, TableId};
use crate::task::PostgresSourceTask;

/// The PostgreSQL source connector (`postgres-source`,
/// `io.confluent.connect.jdbc.JdbcSourceConnector`).
#[derive(Default)]
pub struct PostgresSourceConnector {
    state: Option<ConnectorState>,
}

impl std::fmt::Debug for PostgresSourceConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSourceConnector")
            .field("started", &self.state.is_some())
            .finish()
    }
}

struct ConnectorState {
    props: Props,
    config: PostgresSourceConfig,
    tables: Arc<Mutex<Vec<TableId>>>,
    monitor: Option<JoinHandle<()>>,
}

impl Drop for ConnectorState {
    fn drop(&mut self) {
        if let Some(m) = self.monitor.take() {
            m.abort();
        }
    }
}

/// Connects, trying `attempts` times `connection.backoff.ms` apart while the failure is
/// transient.
async fn connect_with_attempts(
    config: &PostgresSourceConfig,
    attempts: u32,
) -> Result<PgConnection, ConnectError> {
    let mut attempt = 1;
    loop {
        match config.connection.connect().await {
            Ok(c) => return Ok(c),
            Err(e) if e.is_transient() && attempt < attempts => {
                warn!(database = %config.connection.describe(), attempt, attempts, error = %e,
                      retry_in = %seconds(config.connection_backoff),
                      "cannot connect to PostgreSQL; trying again");
                tokio::time::sleep(config.connection_backoff).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs one catalog read within [`CATALOG_TIMEOUT`]; `Err` is the message for
/// `connection.url` when the server did not answer.
async fn catalog_read<T>(
    config: &PostgresSourceConfig,
    what: &str,
    read: impl Future<Output = T>,
) -> Result<T, String> {
    tokio::time::timeout(CATALOG_TIMEOUT, read)
        .await
        .map_err(|_| {
            let database = config.connection.describe();
            warn!(%database, timeout = %seconds(CATALOG_TIMEOUT), what, "no answer from PostgreSQL");
            format!(
                "was reached, but PostgreSQL at {database} did not answer within {} while \
                 {what}; the server is overloaded, hung, or waiting for a lock (see \
                 pg_stat_activity and pg_locks); try again once it answers",
                seconds(CATALOG_TIMEOUT)
            )
        })
}

/// Checks `config` against the database: it can be reached with these credentials, the
/// tables exist, and the mode's columns exist with the right types and nullability. Returns
/// the selected tables.
async fn check_database(
    config: &PostgresSourceConfig,
    attempts: u32,
) -> Result<Vec<TableId>, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let connection = match connect_with_attempts(config, attempts).await {
        Ok(c) => c,
        Err(e) => {
            let mut explained = config.connection.explain(&e);
            if attempts > 1 && e.is_transient() {
                explained.message.push_str(&format!(
                    " (tried {attempts} times, {} apart: connection.attempts, \
                     connection.backoff.ms)",
                    seconds(config.connection_backoff)
                ));
            }
            errors.0.push(explained);
            return Err(errors);
        }
    };
    let client = &connection.client;
    if let Some(query) = &config.query {
        let source = Source::Query(query.clone());
        let checked = catalog_read(
            config,
            "checking the query",
            make_plan(client, &source, config),
        );
        match checked.await {
            Err(no_answer) => errors.push(CONNECTION_URL, no_answer),
            Ok(Ok(_)) => {}
            Ok(Err(PlanError::Config(e))) => errors.0.push(e),
            Ok(Err(PlanError::Postgres(e))) => errors.push(
                QUERY,
                format!(
                    "cannot be run by PostgreSQL: {}; it must be a SELECT that runs on its own \
                     (the connector wraps it and appends the WHERE clause)",
                    db_message(&e)
                ),
            ),
        }
        return errors
            .into_result()
            .map(|()| Vec::new())
            .map_err(|e| match e {
                Error::Config(c) => c,
                _ => ConfigErrors::default(),
            });
    }
    let tables = match catalog_read(config, "listing tables", list_tables(client, config)).await {
        Err(no_answer) => {
            errors.push(CONNECTION_URL, no_answer);
            return Err(errors);
        }
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            errors.push(
                TABLE_WHITELIST,
                format!("cannot list tables: {}", db_message(&e)),
            );
            return Err(errors);
        }
    };
    for entry in config.whitelist.iter().filter(|p| !p.is_pattern()) {
        if !tables.iter().any(|t| entry.matches(t)) {
            let scope = match &config.schema_pattern {
                Some(p) => format!(" in schemas matching {SCHEMA_PATTERN} '{p}'"),
                None => String::new(),
            };
            errors.push(
                TABLE_WHITELIST,
                format!(
                    "names table '{}', which does not exist in database '{}'{scope} or cannot \
                     be read by this user; create it, grant SELECT on it, or correct the name",
                    entry.text, config.connection.database
                ),
            );
        }
    }
    for table in &tables {
        let source = Source::Table(table.clone());
        let what = format!("reading the columns of table {table}");
        match catalog_read(config, &what, make_plan(client, &source, config)).await {
            Err(no_answer) => {
                errors.push(CONNECTION_URL, no_answer);
                return Err(errors);
            }
            Ok(Ok(_)) => {}
            Ok(Err(PlanError::Config(e))) => errors.0.push(e),
            Ok(Err(PlanError::Postgres(e))) => errors.push(
                TABLE_WHITELIST,
                format!("table {table} cannot be read: {}", db_message(&e)),
            ),
        }
    }
    if errors.is_empty() {
        Ok(tables)
    } else {
        Err(errors)
    }
}

async fn monitor_tables(
    ctx: ConnectorContext,
    config: PostgresSourceConfig,
    tables: Arc<Mutex<Vec<TableId>>>,
) {
    let mut connection: Option<PgConnection> = None;
    loop {
        tokio::time::sleep(config.table_poll_interval).await;
        if connection.as_ref().is_none_or(|c| c.client.is_closed()) {
            match config.connection.connect().await {
                Ok(c) => connection = Some(c),
                Err(e) => {
                    warn!(connector = %ctx.name, error = %e, "cannot connect to look for new tables");
                    connection = None;
                    continue;
                }
            }
        }
        let Some(c) = &connection else { continue };
        let Ok(listed) =
            tokio::time::timeout(CATALOG_TIMEOUT, list_tables(&c.client, &config)).await
        else {
            warn!(connector = %ctx.name, database = %config.connection.describe(),
                  timeout = %seconds(CATALOG_TIMEOUT), "no answer from PostgreSQL while looking for new tables; reconnecting");
            connection = None;
            continue;
        };
        match listed {
            Ok(found) => {
                let changed = {
                    let mut known = tables.lock().unwrap_or_else(|p| p.into_inner());
                    if *known == found {
                        None
                    } else {
                        let added: Vec<String> = found
                            .iter()
                            .filter(|t| !known.contains(t))
                            .map(ToString::to_string)
                            .collect();
                        let removed: Vec<String> = known
                            .iter()
                            .filter(|t| !found.contains(t))
                            .map(ToString::to_string)
                            .collect();
                        *known = found;
                        Some((added, removed))
                    }
                };
                if let Some((added, removed)) = changed {
                    info!(connector = %ctx.name, ?added, ?removed, "tables changed; reassigning tasks");
                    ctx.request_task_reconfiguration();
                }
            }
            Err(e) => {
                warn!(connector = %ctx.name, error = %db_message(&e), "cannot list tables");
                connection = None;
            }
        }
    }
}

#[sluice_sdk::async_trait]
impl SourceConnector for PostgresSourceConnector {
    async fn validate(&self, props: &Props) -> ConfigErrors {
        let config = match PostgresSourceConfig::parse(props) {
            Ok(c) => c,
            Err(Error::Config(errors)) => return errors,
            Err(other) => {
                let mut errors = ConfigErrors::default();
                errors.push("connector.class", other.to_string());
                return errors;
            }
        };
        match check_database(&config, 1).await {
            Ok(_) => ConfigErrors::default(),
            Err(errors) => errors,
        }
    }

    async fn start(&mut self, ctx: ConnectorContext, props: Props) -> Result<()> {
        let config = PostgresSourceConfig::parse(&props)?;
        let tables = check_database(&config, config.connection_attempts)
            .await
            .map_err(Error::Config)?;
        if config.query.is_none() && tables.is_empty() {
            warn!(connector = %ctx.name, "no table matches the configuration yet; waiting for one to appear");
        }
        info!(connector = %ctx.name, database = %config.connection.describe(),
              tables = tables.len(), mode = config.mode.name(), "postgres source connector started");
        let tables = Arc::new(Mutex::new(tables));
        let monitor = config
            .query
            .is_none()
            .then(|| tokio::spawn(monitor_tables(ctx.clone(), config.clone(), tables.clone())));
        self.state = Some(ConnectorState {
            props,
            config,
            tables,
            monitor,
        });
        Ok(())
    }

    async fn task_configs(&mut self, max_tasks: usize) -> Result<Vec<Props>> {
        let state = self
            .state
            .as_ref()
            .ok_or_else(|| Error::fatal("task_configs called before start"))?;
        if state.config.query.is_some() {
            return Ok(vec![state.props.clone()]);
        }
        let tables = state
            .tables
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let groups = max_tasks.max(1).min(tables.len());
        let mut assigned: Vec<Vec<TableId>> = vec![Vec::new(); groups];
        for (i, table) in tables.into_iter().enumerate() {
            assigned[i % groups].push(table);
        }
        Ok(assigned
            .iter()
            .map(|group| {
                let mut props = state.props.clone();
                props.insert(TASK_TABLES.to_string(), encode_task_tables(group));
                props
            })
            .collect())
    }

    async fn stop(&mut self) -> Result<()> {
        self.state = None;
        Ok(())
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(PostgresSourceTask::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sluice_sdk::config::props;

    #[tokio::test(start_paused = true)]
    async fn a_catalog_read_that_gets_no_answer_ends_at_its_deadline() {
        let config = PostgresSourceConfig::parse(&props(&[
            (CONNECTION_URL, "postgres://u@db:5432/shop"),
            ("mode", "bulk"),
            ("topic.prefix", "t-"),
        ]))
        .unwrap();
        let started = tokio::time::Instant::now();
        let message = catalog_read(&config, "listing tables", std::future::pending::<()>())
            .await
            .unwrap_err();
        assert_eq!(started.elapsed(), CATALOG_TIMEOUT);
        assert!(
            message.starts_with(
                "was reached, but PostgreSQL at db:5432/shop did not answer within 30s while \
                 listing tables"
            ),
            "{message}"
        );
        let answered = catalog_read(&config, "listing tables", async { 7 }).await;
        assert_eq!(answered, Ok(7));
    }
}
