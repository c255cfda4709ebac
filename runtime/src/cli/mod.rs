//! Command-line tools a Kafka user reaches for, each in its own module:
//! - [`broker`]: `sluice broker`, the bundled broker as a server process.
//! - [`topics`]: `sluice topics`, the `kafka-topics` look-alike.
//! - [`produce`]: `sluice produce`, the `kafka-console-producer` look-alike.
//! - [`consume`]: `sluice consume`, the `kafka-console-consumer` look-alike.
//! - [`groups`]: `sluice groups`, the `kafka-consumer-groups` look-alike.
//!
//! The client tools talk to any Kafka-compatible broker through librdkafka.

pub mod broker;
pub mod consume;
pub mod groups;
pub mod produce;
pub mod topics;

use anyhow::{bail, Context};

/// Default `--bootstrap-server`: the bundled broker's default listen address.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// Splits `key=value` (as given to `--config`, `--property`, `--producer-property`).
///
/// # Errors
/// When there is no `=` or the key is empty.
pub fn parse_key_value(flag: &str, item: &str) -> anyhow::Result<(String, String)> {
    match item.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => bail!("{flag} expects key=value (got '{item}')"),
    }
}

/// Builds an rdkafka client config with the bootstrap servers and extra properties.
pub(crate) fn client_config(bootstrap: &str, extra: &[(String, String)]) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", bootstrap);
    for (key, value) in extra {
        config.set(key, value);
    }
    config
}

/// Runs a future on a fresh multi-threaded runtime.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}
