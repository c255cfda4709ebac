//! The connector: validates the configuration and hands every task a copy of it (sink tasks
//! share the topics' partitions through the consumer group).

use sluice_sdk::{
    async_trait, ConfigErrors, ConnectorContext, Error, Props, Result, SinkConnector, SinkTask,
};
use tracing::{info, warn};

use crate::config::{ElasticsearchSinkConfig, TYPE_NAME};
use crate::task::ElasticsearchSinkTask;

/// The Elasticsearch / OpenSearch sink connector.
#[derive(Debug, Default)]
pub struct ElasticsearchSinkConnector {
    props: Option<Props>,
}

impl ElasticsearchSinkConnector {
    /// A connector that is not started yet.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SinkConnector for ElasticsearchSinkConnector {
    /// Checks the options together (credentials in pairs, TLS files readable, index names
    /// valid). Whether the cluster answers is not checked here: a task started while the
    /// cluster is down waits for it.
    async fn validate(&self, config: &Props) -> ConfigErrors {
        match ElasticsearchSinkConfig::parse(config) {
            Ok(_) => ConfigErrors::default(),
            Err(Error::Config(errors)) => errors,
            Err(other) => {
                let mut errors = ConfigErrors::default();
                errors.push("connection.url", other.to_string());
                errors
            }
        }
    }

    async fn start(&mut self, ctx: ConnectorContext, config: Props) -> Result<()> {
        let parsed = ElasticsearchSinkConfig::parse(&config)?;
        if let Some(type_name) = config
            .get(TYPE_NAME)
            .filter(|t| !t.is_empty() && *t != "_doc")
        {
            warn!(connector = %ctx.name, type_name = %type_name, "{TYPE_NAME} is ignored: mapping types were removed in Elasticsearch 7");
        }
        info!(connector = %ctx.name, urls = %parsed.urls.join(","), "Elasticsearch sink connector started");
        self.props = Some(config);
        Ok(())
    }

    async fn task_configs(&mut self, max_tasks: usize) -> Result<Vec<Props>> {
        let props = self
            .props
            .clone()
            .ok_or_else(|| Error::fatal("task_configs called before start"))?;
        Ok(vec![props; max_tasks.max(1)])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(ElasticsearchSinkTask::new())
    }
}
