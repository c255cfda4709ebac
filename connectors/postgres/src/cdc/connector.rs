//! [`PostgresCdcConnector`]: checks the server before anything runs, and one task (a slot
//! has one reader).

use sluice_sdk::async_trait;
use sluice_sdk::{
    ConfigErrors, ConnectorContext, Error, Props, Result, SourceConnector, SourceTask,
};
use tracing::info;

use super::catalog;
use super::config::{PostgresCdcConfig, DATABASE_HOSTNAME, DATABASE_PASSWORD, DATABASE_USER};
use super::task::PostgresCdcTask;
use crate::config::{CONNECTION_PASSWORD, CONNECTION_URL, CONNECTION_USER};

/// The CDC source connector.
#[derive(Debug, Default)]
pub struct PostgresCdcConnector {
    props: Option<Props>,
}

/// Connects and checks what change data capture needs of the server and the user.
async fn check_database(config: &PostgresCdcConfig) -> ConfigErrors {
    let connection = match config.connection.connect().await {
        Ok(c) => c,
        Err(e) => {
            let mut explained = config.connection.explain(&e);
            // The polling source's option names, in this connector's terms.
            explained.option = match explained.option.as_str() {
                CONNECTION_PASSWORD => DATABASE_PASSWORD,
                CONNECTION_USER => DATABASE_USER,
                CONNECTION_URL => DATABASE_HOSTNAME,
                other => other,
            }
            .to_string();
            explained.message = explained
                .message
                .replace(
                    "connection.password (or the password in connection.url)",
                    "database.password",
                )
                .replace("correct the name in the URL", "correct database.dbname");
            return ConfigErrors(vec![explained]);
        }
    };
    catalog::check_server(&connection.client, config).await
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
