//! Test helpers shared by the connectors' integration tests (feature `testing`).
//!
//! [`SilentServer`] plays the outside system that accepts the TCP connection and then never
//! says a word: a firewall that keeps connections half open, or a hung database or cluster.
//! Every call a connector makes to such an address must end at its deadline.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use sluice_sdk::testing::SilentServer;
//! use tokio::io::AsyncReadExt;
//!
//! let server = SilentServer::start().await;
//! let mut socket = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
//! let mut byte = [0u8; 1];
//! let waited =
//!     tokio::time::timeout(std::time::Duration::from_millis(50), socket.read(&mut byte)).await;
//! assert!(waited.is_err(), "the server never answers");
//! server.wait_for_connection(std::time::Duration::from_secs(5)).await;
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

/// A TCP server on a loopback port that accepts every connection, reads and discards what
/// the client sends, and never writes anything. Dropping it (or [`close`](Self::close))
/// stops listening and closes the connections it holds.
#[derive(Debug)]
pub struct SilentServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    connected: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl SilentServer {
    /// Starts listening on `127.0.0.1:0`.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        Self::start_passing(0, None).await
    }

    /// Like [`start`](Self::start), but the first `first` connections are passed through to
    /// `upstream` (a real server): a connector can then pass its validation and hang on the
    /// connections that follow, as when a server stops answering after a while.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start_passing(first: usize, upstream: Option<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port for the silent server");
        let addr = listener.local_addr().expect("the silent server's address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let connected = Arc::new(Notify::new());
        let task = tokio::spawn({
            let accepted = accepted.clone();
            let connected = connected.clone();
            async move {
                // Dropped with this task, which closes every held connection.
                let mut connections = JoinSet::new();
                while let Ok((mut socket, _)) = listener.accept().await {
                    let n = accepted.fetch_add(1, Ordering::SeqCst);
                    connected.notify_waiters();
                    if let Some(upstream) = upstream.filter(|_| n < first) {
                        connections.spawn(async move {
                            if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                                let _ =
                                    tokio::io::copy_bidirectional(&mut socket, &mut server).await;
                            }
                        });
                        continue;
                    }
                    connections.spawn(async move {
                        // Read until the client gives up, so it is the one that closes.
                        let mut buf = [0u8; 4096];
                        while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                    });
                    while connections.try_join_next().is_some() {}
                }
            }
        });
        Self {
            addr,
            accepted,
            connected,
            task: Some(task),
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Waits until at least one connection was accepted.
    ///
    /// # Panics
    /// When none arrives within `limit`.
    pub async fn wait_for_connection(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.connected.notified();
            if self.accepted() > 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "no connection reached the silent server at {} within {limit:?}",
                    self.addr
                );
            }
        }
    }

    /// Stops listening and closes the held connections; when this returns, the port is free
    /// for another server.
    pub async fn close(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
