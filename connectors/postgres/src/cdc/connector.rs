//! [`PostgresCdcConnector`]: checks the server before anything runs, and one task (a slot
//! has one reader).

use sluice_sdk::async_trait;
use sluice_sdk::{
    ConfigErrors, ConnectorContext, Error, Props, Result, SourceConnector, SourceTask,
};
use tracing::info;

use super::catalog;
use super::config::PostgresCdcConfig;
use super::task::{check_replication_connection, PostgresCdcTask};

/// The CDC source connector.
#[derive(Debug, Default)]
pub struct PostgresCdcConnector {
    props: Option<Props>,
}

/// Connects and checks what change data capture needs of the server and the user, then
/// opens a replication session, which pg_hba.conf and TLS treat apart from the queries'.
async fn check_database(config: &PostgresCdcConfig) -> ConfigErrors {
    let connection = match config.connection.connect().await {
        Ok(c) => c,
        Err(e) => return ConfigErrors(vec![config.explain_connect_error(&e)]),
    };
    let errors = catalog::check_server(&connection.client, config).await;
    if !errors.is_empty() {
        return errors;
    }
    match check_replication_connection(config).await {
        Ok(()) => ConfigErrors::default(),
        Err(e) => ConfigErrors(vec![e]),
    }
}

#[async_trait]
impl SourceConnector for PostgresCdcConnector {
    async fn validate(&self, props: &Props) -> ConfigErrors {
        match PostgresCdcConfig::parse(props) {
            Ok(config) => check_database(&config).await,
            Err(Error::Config(errors)) => errors,
            Err(other) => {
                let mut errors = ConfigErrors::default();
                errors.push("connector.class", other.to_string());
                errors
            }
        }
    }

    async fn start(&mut self, ctx: ConnectorContext, props: Props) -> Result<()> {
        let config = PostgresCdcConfig::parse(&props)?;
        let mut errors = check_database(&config).await;
        // The slot may still be held by the session of a task that just stopped; the task
        // waits for it and fails with the same message if it stays taken.
        errors.0.retain(|e| !catalog::is_slot_in_use(e));
        if !errors.is_empty() {
            return Err(Error::Config(errors));
        }
        info!(connector = %ctx.name, database = %config.connection.describe(),
              slot = %config.slot_name, "postgres CDC connector started");
        self.props = Some(props);
        Ok(())
    }

    async fn task_configs(&mut self, _max_tasks: usize) -> Result<Vec<Props>> {
        let props = self
            .props
            .clone()
            .ok_or_else(|| Error::fatal("task_configs called before start"))?;
        Ok(vec![props])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(PostgresCdcTask::default())
    }
}
