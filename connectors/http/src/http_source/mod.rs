//! `http-source`: any JSON endpoint polled on an interval, one record per new item.
//!
//! Options follow Confluent's HTTP Source connector (`url`, `entity.names`,
//! `topic.name.pattern`, `http.request.*`, `http.response.data.json.pointer`,
//! `http.offset.json.pointer`, `request.interval.ms`, `auth.type`...), so its connector JSON
//! mostly works unchanged. Entities are spread over the tasks; see [`task`] for what counts
//! as new and how failures are handled.

pub mod config;
pub mod task;
pub mod template;

use sluice_sdk::{
    ConfigErrors, ConnectorContext, ConnectorKind, ConnectorPlugin, Props, Result, SourceConnector,
    SourceTask,
};

use crate::assign::split_over_tasks;
use config::{HttpSourceConfig, ENTITY_NAMES};
pub use task::HttpSourceTask;

/// The short class name.
pub const CLASS: &str = "http-source";
/// Other accepted class names (Confluent's HTTP Source connector).
pub const ALIASES: [&str; 2] = [
    "io.confluent.connect.http.HttpSourceConnector",
    "HttpSourceConnector",
];

/// The plugin descriptor of `http-source`.
pub fn plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class: CLASS.to_string(),
        aliases: ALIASES.iter().map(|a| (*a).to_string()).collect(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        config_def: config::config_def(),
        kind: ConnectorKind::Source(std::sync::Arc::new(|| {
            Box::new(HttpSourceConnector::default())
        })),
    }
}

/// The connector of `http-source`.
#[derive(Debug, Default)]
pub struct HttpSourceConnector {
    props: Props,
    config: Option<HttpSourceConfig>,
}

#[sluice_sdk::async_trait]
impl SourceConnector for HttpSourceConnector {
    async fn validate(&self, config: &Props) -> ConfigErrors {
        HttpSourceConfig::check(config)
    }

    async fn start(&mut self, ctx: ConnectorContext, config: Props) -> Result<()> {
        let parsed = HttpSourceConfig::parse(&config)?;
        tracing::info!(connector = %ctx.name, entities = parsed.entity_names.len(), "http source connector started");
        self.props = config;
        self.config = Some(parsed);
        Ok(())
    }

    async fn task_configs(&mut self, max_tasks: usize) -> Result<Vec<Props>> {
        let config = self
            .config
            .as_ref()
            .ok_or_else(|| sluice_sdk::Error::fatal("task_configs called before start"))?;
        if config.entity_names.is_empty() {
            return Ok(vec![self.props.clone()]);
        }
        Ok(split_over_tasks(
            &self.props,
            ENTITY_NAMES,
            &config.entity_names,
            max_tasks,
            (config.requests_per_minute, config.requests_per_day),
        ))
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(HttpSourceTask::default())
    }
}
