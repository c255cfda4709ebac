//! Starting and stopping a whole worker: the embedded broker (unless `bootstrap.servers` is
//! set), the worker and its internal topics, the REST API, and the configs folder watcher.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_sdk::ConnectorPlugin;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::configs_dir::run_config_dir;
use crate::embedded::EmbeddedBroker;
use crate::error::{Error, Result};
use crate::herder::Herder;
use crate::plugins::worker_plugins;
use crate::rest::router;
use crate::rest_security::{require_basic_auth, server_tls_config, BasicAuth, TlsListener};
use crate::settings::WorkerSettings;

/// A running worker.
#[derive(Debug)]
pub struct RunningWorker {
    /// The herder: what the REST API and the configs folder talk to.
    pub herder: Arc<Herder>,
    /// Where the REST API listens.
    pub rest_addr: SocketAddr,
    /// The Kafka bootstrap servers in use.
    pub bootstrap: String,
    /// The bundled Schema Registry's URL, when it runs.
    pub schema_registry_url: Option<String>,
    schema_registry: Option<sluice_registry::SchemaRegistry>,
    root: CancellationToken,
    rest: JoinHandle<()>,
    watcher: JoinHandle<()>,
    broker: Option<EmbeddedBroker>,
}

/// Starts a worker with `settings`.
///
/// # Errors
/// When the broker, the cluster, the internal topics or the REST port are not usable; the
/// message says which setting to change.
pub async fn start_worker(settings: WorkerSettings) -> Result<RunningWorker> {
    start_worker_with(settings, Vec::new()).await
}

/// Starts a worker with `settings` that also knows the connector classes `extra` (beside the
/// built-ins and the plugins of `plugin.path`), for embedders and benchmarks.
///
/// # Errors
/// As [`start_worker`].
pub async fn start_worker_with(
    settings: WorkerSettings,
    extra: Vec<ConnectorPlugin>,
) -> Result<RunningWorker> {
    let started = std::time::Instant::now();
    // Bad TLS settings fail the start before anything else is set up.
    let tls = if settings.rest_https {
        Some(server_tls_config(&settings.rest_tls)?)
    } else {
        None
    };
    // The group membership client reads the same security settings as librdkafka: check them
    // before anything starts.
    crate::client_security::ClientSecurity::from_properties(&settings.admin)
        .map_err(|e| Error::Settings(format!("worker security settings: {e}")))?;
    let (bootstrap, broker) = match &settings.bootstrap_servers {
        Some(servers) => (servers.clone(), None),
        None => {
            let broker = EmbeddedBroker::start(&settings).await?;
            (broker.bootstrap_servers(), Some(broker))
        }
    };
    // The registry opens its topic beside the worker's own start, not before it: connectors
    // start without waiting for it (an Avro converter waits out a registry not yet up).
    let schema_registry = match (&broker, settings.schema_registry_listen) {
        (Some(_), Some(listen)) => Some(tokio::spawn(start_bundled_registry(
            bootstrap.clone(),
            listen,
        ))),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(settings.rest_addr)
        .await
        .map_err(|e| {
            Error::Settings(format!(
                "cannot listen on {} for the REST API: {e}; set rest.port (SLUICE_REST_PORT) to a free port",
                settings.rest_addr
            ))
        })?;
    let rest_addr = listener
        .local_addr()
        .map_err(|e| Error::Other(e.to_string()))?;
    let mut settings = settings;
    // The worker id in status records is the REST address actually bound.
    settings.rest_addr = rest_addr;
    let root = CancellationToken::new();
    let plugin_path = settings.plugin_path.clone();
    let plugins: Vec<ConnectorPlugin> =
        tokio::task::spawn_blocking(move || worker_plugins(&plugin_path))
            .await
            .map_err(|e| Error::Other(format!("loading the plugins of plugin.path failed: {e}")))?
            .into_iter()
            .chain(extra)
            .collect();
    let herder =
        Herder::connect(settings.clone(), bootstrap.clone(), plugins, root.clone()).await?;
    let mut app = router(herder.clone());
    if let Some(file) = &settings.rest_users_file {
        let auth = Arc::new(BasicAuth::load(file)?);
        app = app.layer(axum::middleware::from_fn_with_state(
            auth,
            require_basic_auth,
        ));
        info!(users_file = %file.display(), "REST API requires HTTP basic authentication");
    }
    let rest_token = root.clone();
    let rest = if settings.rest_https {
        let listener = TlsListener::new(listener, tls.expect("https listeners have a TLS config"))
            .map_err(|e| Error::Other(format!("cannot serve TLS on {rest_addr}: {e}")))?;
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { rest_token.cancelled().await })
                .await;
            if let Err(e) = served {
                warn!(error = %e, "REST server stopped with an error");
            }
        })
    } else {
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { rest_token.cancelled().await })
                .await;
            if let Err(e) = served {
                warn!(error = %e, "REST server stopped with an error");
            }
        })
    };
    let watcher = tokio::spawn(run_config_dir(
        herder.clone(),
        settings.config_dir.clone(),
        root.clone(),
    ));
    let schema_registry = match schema_registry {
        Some(starting) => starting.await.ok().flatten(),
        None => None,
    };
    info!(
        rest = %rest_addr,
        https = settings.rest_https,
        bootstrap = %bootstrap,
        embedded_broker = broker.is_some(),
        config_dir = %settings.config_dir.display(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "worker started"
    );
    Ok(RunningWorker {
        herder,
        rest_addr,
        bootstrap,
        schema_registry_url: schema_registry
            .as_ref()
            .map(sluice_registry::SchemaRegistry::url),
        schema_registry,
        root,
        rest,
        watcher,
        broker,
    })
}

/// Starts the bundled Schema Registry on the embedded broker. An address in use (another
/// worker's registry, or Confluent's) is reported and the worker runs without it: the
/// registry is a convenience beside the worker, not a part it needs.
async fn start_bundled_registry(
    bootstrap: String,
    listen: SocketAddr,
) -> Option<sluice_registry::SchemaRegistry> {
    let store = sluice_registry::StoreConfig::new(&bootstrap);
    match sluice_registry::SchemaRegistry::start(store, listen).await {
        Ok(registry) => Some(registry),
        Err(e) => {
            warn!(error = %e, "the bundled schema registry is not running; set schema.registry.listen (SLUICE_SCHEMA_REGISTRY_LISTEN) to a free address, or empty to start none");
            None
        }
    }
}

impl RunningWorker {
    /// Stops gracefully: tasks flush and commit, then the REST API and the broker stop.
    pub async fn stop(self) {
        info!("worker stopping");
        self.watcher.abort();
        self.herder.shutdown().await;
        self.root.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.rest).await;
        let _ = self.watcher.await;
        // Close the worker's Kafka clients (off the async threads: destroying one blocks)
        // before their broker goes away.
        crate::kafka::release(self.herder);
        if !crate::kafka::wait_for_released(Duration::from_secs(10)).await {
            warn!("some Kafka clients were still closing after 10 s; stopping anyway");
        }
        if let Some(registry) = self.schema_registry {
            registry.stop().await;
        }
        if let Some(broker) = self.broker {
            broker.stop().await;
        }
        info!("worker stopped");
    }
}
