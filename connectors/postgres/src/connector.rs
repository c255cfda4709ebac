//! The connector: checks the configuration against the live database, lists the tables,
//! splits them across tasks, and watches for tables appearing or disappearing.

use std::sync::{Arc, Mutex};

use sluice_sdk::config::Props;
use sluice_sdk::{ConfigErrors, ConnectorContext, Error, Result, SourceConnector, SourceTask};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::config::{
    encode_task_tables, PostgresSourceConfig, QUERY, SCHEMA_PATTERN, TABLE_WHITELIST, TASK_TABLES,
};
use crate::connection::{db_message, ConnectError, PgConnection};
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
                warn!(database = %config.connection.describe(), attempt, error = %e,
                      "cannot connect to PostgreSQL; trying again");
                tokio::time::sleep(config.connection_backoff).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
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
            errors.0.push(config.connection.explain(&e));
            return Err(errors);
        }
    };
    let client = &connection.client;
    if let Some(query) = &config.query {
        match make_plan(client, &Source::Query(query.clone()), config).await {
            Ok(_) => {}
            Err(PlanError::Config(e)) => errors.0.push(e),
            Err(PlanError::Postgres(e)) => errors.push(
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
    let tables = match list_tables(client, config).await {
        Ok(t) => t,
        Err(e) => {
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
        match make_plan(client, &Source::Table(table.clone()), config).await {
            Ok(_) => {}
            Err(PlanError::Config(e)) => errors.0.push(e),
            Err(PlanError::Postgres(e)) => errors.push(
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
        match list_tables(&c.client, &config).await {
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
