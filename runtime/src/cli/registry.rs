//! `sluice registry`: the Schema Registry (Confluent's REST API, stored in `_schemas`) as a
//! server of its own against any Kafka cluster, until Ctrl-C or SIGTERM. `sluice broker` and
//! the worker's embedded broker start the same registry beside themselves.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Args;
use sluice_registry::{SchemaRegistry, StoreConfig, DEFAULT_LISTEN, DEFAULT_TOPIC};

/// Flags of `sluice registry`.
#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Kafka cluster holding the schemas topic.
    #[arg(long, value_name = "HOST:PORT", env = super::BOOTSTRAP_ENV, default_value = super::DEFAULT_BOOTSTRAP)]
    pub bootstrap_server: String,
    /// Address the REST API listens on (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The schemas topic (Confluent's `kafkastore.topic`).
    #[arg(long, value_name = "TOPIC", default_value = DEFAULT_TOPIC)]
    pub topic: String,
    /// A librdkafka property for the registry's Kafka clients (repeatable), e.g.
    /// `security.protocol=SASL_SSL`.
    #[arg(long = "command-property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
}

/// Starts the bundled registry on `bootstrap` at `listen`, printing the line scripts wait for.
///
/// # Errors
/// The cluster is unusable or the address is taken.
pub async fn start(store: StoreConfig, listen: SocketAddr) -> anyhow::Result<SchemaRegistry> {
    let registry = SchemaRegistry::start(store, listen)
        .await
        .context("cannot start the schema registry")?;
    println!("sluice schema registry listening on {}", registry.url());
    Ok(registry)
}

/// Starts the registry beside a broker (`sluice broker`); an address in use is reported and
/// the broker runs without it.
pub async fn start_beside(bootstrap: &str, listen: SocketAddr) -> Option<SchemaRegistry> {
    match start(StoreConfig::new(bootstrap), listen).await {
        Ok(registry) => Some(registry),
        Err(e) => {
            tracing::warn!(
                error = format!("{e:#}"),
                "the bundled schema registry is not running; pass --schema-registry-listen a free address, or '' to start none"
            );
            None
        }
    }
}

/// Runs the registry until Ctrl-C or SIGTERM.
///
/// # Errors
/// Bad flags, an unreachable cluster or an address in use.
pub fn run(args: RegistryArgs) -> anyhow::Result<()> {
    super::check_reachable(&args.bootstrap_server)?;
    let mut store = StoreConfig::new(&args.bootstrap_server);
    store.topic = args.topic.clone();
    for p in &args.properties {
        let (k, v) = super::parse_key_value("--command-property", p)?;
        store.client.insert(k, v);
    }
    super::block_on(async move {
        let registry = start(store, args.listen).await?;
        super::broker::wait_for_signal().await;
        tracing::info!("shutdown requested");
        registry.stop().await;
        anyhow::Ok(())
    })?
}
