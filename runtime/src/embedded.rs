//! The broker the worker starts inside its own process when no `bootstrap.servers` is set.
//! The worker still talks to it over the wire, exactly as to an external cluster.
//!
//! The broker runs on its own tokio runtime, with its own threads. librdkafka's clients
//! block in places (destroying a client waits for its threads, which wait for the broker);
//! if such a call ever ran on a thread the broker also needed, many connectors stopping at
//! once could starve the very broker they are waiting for. With separate threads the broker
//! answers whatever the worker's threads are doing.

use serde_json::{Map, Value};
use sluice_broker::{Broker, BrokerConfig};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::error::{Error, Result};
use crate::settings::WorkerSettings;

/// The embedded broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    /// Always `Some` until [`EmbeddedBroker::stop`] takes it.
    broker: Option<Broker>,
    token: CancellationToken,
    /// Always `Some` until [`EmbeddedBroker::stop`] or drop takes it.
    runtime: Option<tokio::runtime::Runtime>,
}

/// Threads of the embedded broker's runtime.
const BROKER_THREADS: usize = 2;

impl EmbeddedBroker {
    /// Starts the broker on `broker.listen` with its data in `data.dir`; `broker.*` settings
    /// pass through (e.g. `broker.log.flush`, `broker.num.partitions`).
    ///
    /// # Errors
    /// A bad `broker.*` setting, an unusable data dir, or a listen address in use.
    pub async fn start(settings: &WorkerSettings) -> Result<Self> {
        let config = broker_config(settings)?;
        let token = CancellationToken::new();
        let listen = config.listen.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(BROKER_THREADS)
            .thread_name("sluice-broker")
            .enable_all()
            .build()
            .map_err(|e| {
                Error::Other(format!("cannot start the embedded broker's threads: {e}"))
            })?;
        let broker = runtime
            .spawn(Broker::start_with_shutdown(config, token.clone()))
            .await
            .map_err(|e| Error::Other(format!("the embedded broker failed to start: {e}")))?
            .map_err(|e| {
                Error::Settings(format!(
                    "cannot start the embedded broker on {listen}: {e}; set broker.listen (SLUICE_BROKER_LISTEN) to a free address, or bootstrap.servers to use an existing cluster"
                ))
            })?;
        Ok(Self {
            broker: Some(broker),
            token,
            runtime: Some(runtime),
        })
    }

    fn broker(&self) -> &Broker {
        self.broker.as_ref().expect("the broker until stop")
    }

    /// `host:port` for clients.
    pub fn bootstrap_servers(&self) -> String {
        self.broker().bootstrap_servers()
    }

    /// The cluster id the broker reports.
    pub fn cluster_id(&self) -> String {
        self.broker().cluster_id().to_string()
    }

    /// Stops the broker after flushing its logs.
    pub async fn stop(mut self) {
        self.token.cancel();
        let runtime = self.runtime.take().expect("the runtime until stop or drop");
        let broker = self.broker.take().expect("the broker until stop");
        match runtime.spawn(broker.wait()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "embedded broker stopped with an error"),
            Err(e) => warn!(error = %e, "embedded broker stopped with an error"),
        }
        // Its tasks are done; dropping a runtime blocks, which async code must not do.
        runtime.shutdown_background();
    }
}

impl Drop for EmbeddedBroker {
    /// Dropped without [`EmbeddedBroker::stop`] (a worker that failed to start after its
    /// broker did): stop the broker without blocking, so the start's own error is reported
    /// instead of a panic about dropping a runtime in async code.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            self.token.cancel();
            runtime.shutdown_background();
        }
    }
}

/// The broker configuration from the worker's settings.
///
/// # Errors
/// A `broker.*` setting the broker does not know or cannot parse, named.
pub fn broker_config(settings: &WorkerSettings) -> Result<BrokerConfig> {
    let mut map = Map::new();
    // `broker.listeners` (Kafka's list, e.g. SASL_SSL://127.0.0.1:9093) replaces broker.listen.
    if !settings.broker.contains_key("listeners") && !settings.broker.contains_key("listen") {
        map.insert(
            "listen".into(),
            Value::from(settings.broker_listen.to_string()),
        );
    }
    // One worker owns this broker: its sink tasks start together, so waiting for more group
    // members (Kafka's 3 s default) would only delay the first records.
    if !settings
        .broker
        .contains_key("group.initial.rebalance.delay.ms")
    {
        map.insert("group_initial_rebalance_delay_ms".into(), Value::from(0));
    }
    map.insert(
        "data_dir".into(),
        Value::from(settings.data_dir.to_string_lossy().into_owned()),
    );
    for (k, v) in &settings.broker {
        // Settings arrive as text; give numbers and booleans their JSON types.
        let value = if let Ok(b) = v.parse::<bool>() {
            Value::from(b)
        } else if let Ok(n) = v.parse::<i64>() {
            Value::from(n)
        } else {
            Value::from(v.clone())
        };
        map.insert(k.clone(), value);
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| {
        Error::Settings(format!(
            "bad embedded broker setting: {e} (broker.* settings are the broker's own, see `sluice broker --help`)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn broker_settings_pass_through_with_worker_defaults() {
        let settings = WorkerSettings::from_map(&BTreeMap::from([
            ("broker.log.flush".to_string(), "interval".to_string()),
            ("broker.num.partitions".to_string(), "3".to_string()),
        ]))
        .unwrap();
        let config = broker_config(&settings).unwrap();
        assert_eq!(config.log_flush, sluice_broker::LogFlush::Interval);
        assert_eq!(config.num_partitions, 3);
        assert_eq!(config.group_initial_rebalance_delay_ms, 0);
        let err = broker_config(
            &WorkerSettings::from_map(&BTreeMap::from([(
                "broker.no.such".to_string(),
                "1".to_string(),
            )]))
            .unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no.such"), "{err}");
    }
}
