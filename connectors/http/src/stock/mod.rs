//! `stock-quote-source`: Alpha Vantage quotes or intraday bars, one record per new one.
//!
//! The connector splits its `symbols` over at most `tasks.max` tasks and gives each task
//! its share of the request budget, so the connector as a whole keeps to
//! `requests.per.minute` and `requests.per.day`. See [`task`] for what counts as a new
//! quote and how failures are handled.

pub mod alphavantage;
pub mod config;
pub mod schema;
pub mod task;

use sluice_sdk::{
    ConfigErrors, ConnectorContext, ConnectorKind, ConnectorPlugin, Props, Result, SourceConnector,
    SourceTask,
};

use crate::assign::split_over_tasks;
use config::{StockQuoteConfig, SYMBOLS};
pub use task::StockQuoteSourceTask;

/// The short class name.
pub const CLASS: &str = "stock-quote-source";
/// Other accepted class names.
pub const ALIASES: [&str; 2] = [
    "StockQuoteSourceConnector",
    "io.sluice.connect.http.StockQuoteSourceConnector",
];

/// The plugin descriptor of `stock-quote-source`.
pub fn plugin() -> ConnectorPlugin {
    ConnectorPlugin {
        class: CLASS.to_string(),
        aliases: ALIASES.iter().map(|a| (*a).to_string()).collect(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        config_def: config::config_def(),
        kind: ConnectorKind::Source(std::sync::Arc::new(|| {
            Box::new(StockQuoteSourceConnector::default())
        })),
    }
}

/// The connector of `stock-quote-source`.
#[derive(Debug, Default)]
pub struct StockQuoteSourceConnector {
    props: Props,
    config: Option<StockQuoteConfig>,
}

#[sluice_sdk::async_trait]
impl SourceConnector for StockQuoteSourceConnector {
    async fn validate(&self, config: &Props) -> ConfigErrors {
        StockQuoteConfig::check(config)
    }

    async fn start(&mut self, ctx: ConnectorContext, config: Props) -> Result<()> {
        let parsed = StockQuoteConfig::parse(&config)?;
        tracing::info!(
            connector = %ctx.name,
            symbols = %parsed.symbols.join(","),
            function = parsed.function.api_name(),
            api_key_from = if parsed.api_key_configured { "api.key" } else { config::API_KEY_ENV },
            "stock quote connector started"
        );
        self.props = config;
        self.config = Some(parsed);
        Ok(())
    }

    async fn task_configs(&mut self, max_tasks: usize) -> Result<Vec<Props>> {
        let config = self
            .config
            .as_ref()
            .ok_or_else(|| sluice_sdk::Error::fatal("task_configs called before start"))?;
        // The task configs keep api.key as the connector got it; a key taken from the
        // environment is not copied into them (the task reads the environment itself).
        Ok(split_over_tasks(
            &self.props,
            SYMBOLS,
            &config.symbols,
            max_tasks,
            (config.requests_per_minute, config.requests_per_day),
        ))
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(StockQuoteSourceTask::default())
    }
}
