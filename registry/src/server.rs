//! A running registry: the store opened on a Kafka cluster and the REST API on a listener.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::api::router;
use crate::error::{Error, Result};
use crate::store::{KafkaStore, StoreConfig};

/// Confluent's default listen address for the registry.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8081";

/// A registry serving its REST API.
#[derive(Debug)]
pub struct SchemaRegistry {
    addr: SocketAddr,
    token: CancellationToken,
    server: JoinHandle<()>,
}

impl SchemaRegistry {
    /// Opens the store (creating and reading `_schemas`) and serves the API on `listen`
    /// (`127.0.0.1:0` picks a free port).
    ///
    /// # Errors
    /// [`Error::Kafka`] when the cluster cannot be used, [`Error::Listen`] when the address is
    /// taken.
    pub async fn start(store: StoreConfig, listen: SocketAddr) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Listen {
                addr: listen.to_string(),
                message: e.to_string(),
            })?;
        let addr = listener.local_addr().map_err(|e| Error::Listen {
            addr: listen.to_string(),
            message: e.to_string(),
        })?;
        let topic = store.topic.clone();
        let store = Arc::new(KafkaStore::open(store).await?);
        let token = CancellationToken::new();
        let stop = token.clone();
        let app = router(store);
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = served {
                warn!(error = %e, "schema registry stopped with an error");
            }
        });
        info!(addr = %addr, topic = %topic, "schema registry started");
        Ok(Self {
            addr,
            token,
            server,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://host:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for the server to finish.
    pub async fn stop(self) {
        self.token.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), self.server).await;
    }

    /// Waits until the server stops (it runs until [`SchemaRegistry::stop`]).
    pub async fn wait(&mut self) {
        let _ = (&mut self.server).await;
    }
}
