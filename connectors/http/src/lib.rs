//! HTTP polling sources for sluice: `stock-quote-source` (Alpha Vantage quotes and intraday
//! bars) and `http-source` (any JSON endpoint).
//!
//! Both poll on an interval, emit one record per *new* item (the offset of each record says
//! what was last written, so a restart neither repeats nor skips), keep to a request budget
//! per minute and per day, retry transient failures with backoff, and report what they are
//! working around in the task status while the rest keeps flowing.
//!
//! ```
//! let plugins = sluice_connector_http::plugins();
//! assert!(plugins.iter().any(|p| p.answers_to("stock-quote-source")));
//! assert!(plugins.iter().any(|p| p.answers_to("io.confluent.connect.http.HttpSourceConnector")));
//! ```
//!
//! # Layout
//! - [`stock`]: `stock-quote-source`: options ([`stock::config`]), reading Alpha Vantage's
//!   answers ([`stock::alphavantage`]), record schemas ([`stock::schema`]) and the task
//!   ([`stock::task`]: scheduling, what counts as a new quote, failure handling).
//! - [`http_source`]: `http-source`: options, `${entityName}`/`${offset}` templates and the
//!   task (JSON pointers, offsets and dedup).
//! - [`client`]: the shared HTTP client (reqwest with rustls), retries with backoff.
//! - [`budget`]: the per-minute/per-day request budget.
//! - [`problems`]: the problems a task reports in its status.
//! - [`assign`]: splitting symbols or entities and the budget over tasks.
//! - [`timing`]: backoff arithmetic and durations for people.
//! - [`error`]: why a request failed.

pub mod assign;
pub mod budget;
pub mod client;
pub mod error;
pub mod http_source;
pub mod problems;
pub mod stock;
pub mod timing;

pub use error::{Error, Result};
pub use http_source::{HttpSourceConnector, HttpSourceTask};
pub use stock::{StockQuoteSourceConnector, StockQuoteSourceTask};

/// The connectors of this crate, for the runtime's plugin registry.
pub fn plugins() -> Vec<sluice_sdk::ConnectorPlugin> {
    vec![stock::plugin(), http_source::plugin()]
}
