//! Test support: a real Elasticsearch-API server, `osmem-server` from PyPI, started by the
//! test on a loopback port (enabled by the `test-support` feature, for this crate's tests and
//! the runtime's end-to-end tests).
//!
//! The server is found through `OSMEM_SERVER_BIN`, else through the Python package
//! (`python3 -c 'import osmem_server; print(osmem_server.resolve_binary())'`). When neither
//! works, [`OsmemServer::start`] panics with a message naming the package to install, so a
//! test never passes without its server.
//!
//! ```no_run
//! # async fn demo() {
//! use sluice_connector_elasticsearch::testing::OsmemServer;
//! let mut server = OsmemServer::start().await;
//! let url = server.url().to_string();
//! server.kill().await;      // the cluster goes away...
//! server.restart().await;   // ...and comes back on the same port, empty
//! assert_eq!(server.count("orders").await, 0);
//! # }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value as Json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// What to install when the server is missing.
pub const INSTALL_HINT: &str = "install osmem-server from PyPI (pip install osmem-server)";

/// A running osmem-server process; killed when dropped.
#[derive(Debug)]
pub struct OsmemServer {
    binary: PathBuf,
    child: Option<Child>,
    // Held open: the server exits when its stdin closes, so it never outlives the test.
    stdin: Option<ChildStdin>,
    addr: SocketAddr,
    url: String,
    http: reqwest::Client,
}

impl OsmemServer {
    /// Finds the server binary.
    ///
    /// # Errors
    /// A message naming the package to install.
    pub fn binary() -> Result<PathBuf, String> {
        if let Some(path) = std::env::var_os("OSMEM_SERVER_BIN") {
            let path = PathBuf::from(path);
            return if path.is_file() {
                Ok(path)
            } else {
                Err(format!(
                    "OSMEM_SERVER_BIN names '{}', which does not exist; {INSTALL_HINT}",
                    path.display()
                ))
            };
        }
        let output = std::process::Command::new("python3")
            .args([
                "-c",
                "import osmem_server; print(osmem_server.resolve_binary())",
            ])
            .output()
            .map_err(|e| {
                format!("cannot run python3 to find osmem-server ({e}); {INSTALL_HINT}")
            })?;
        if !output.status.success() {
            return Err(format!(
                "the osmem_server Python package is missing ({}); {INSTALL_HINT}",
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "osmem_server names '{}', which does not exist; {INSTALL_HINT}",
                path.display()
            ))
        }
    }

    /// Starts a server on a free loopback port.
    ///
    /// # Panics
    /// When the server is not installed (the message says what to install) or does not start.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("loopback address")).await
    }

    /// Starts a server listening on `addr`.
    ///
    /// # Panics
    /// See [`Self::start`].
    pub async fn start_on(addr: SocketAddr) -> Self {
        let binary = Self::binary().unwrap_or_else(|e| panic!("{e}"));
        let mut server = Self {
            binary,
            child: None,
            stdin: None,
            addr,
            url: String::new(),
            http: reqwest::Client::new(),
        };
        server.launch().await;
        server
    }

    async fn launch(&mut self) {
        let mut child = Command::new(&self.binary)
            .arg("--parent-pid")
            .arg(std::process::id().to_string())
            .arg("--addr")
            .arg(self.addr.to_string())
            .arg("--no-ja")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start osmem-server at {}: {e}; {INSTALL_HINT}",
                    self.binary.display()
                )
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.ok().flatten() {
                if let Ok(Json::Object(msg)) = serde_json::from_str::<Json>(&line) {
                    if let Some(url) = msg.get("url").and_then(Json::as_str) {
                        return Some(url.to_string());
                    }
                }
            }
            None
        })
        .await;
        let url = match ready {
            Ok(Some(url)) => url,
            Ok(None) => panic!("osmem-server on {} exited before it was ready", self.addr),
            Err(_) => panic!("osmem-server on {} did not start within 30 s", self.addr),
        };
        // Keep draining stdout so the server never blocks writing to it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.addr = url
            .trim_start_matches("http://")
            .parse()
            .unwrap_or_else(|e| panic!("osmem-server reported an odd url '{url}': {e}"));
        self.url = url;
        self.stdin = child.stdin.take();
        self.child = Some(child);
    }

    /// The base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Kills the server (SIGKILL) and waits for it to exit; its data is gone.
    pub async fn kill(&mut self) {
        self.stdin = None;
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts the server again on the same port (after [`Self::kill`]), empty.
    ///
    /// # Panics
    /// When it does not start.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.launch().await;
    }

    /// Sends a request and returns the status and JSON body.
    ///
    /// # Panics
    /// When the server does not answer.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Json>,
    ) -> (u16, Json) {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("osmem-server at {} does not answer: {e}", self.url));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Json::Null))
    }

    /// Makes recent writes to `index` searchable.
    pub async fn refresh(&self, index: &str) {
        self.request(reqwest::Method::POST, &format!("/{index}/_refresh"), None)
            .await;
    }

    /// The number of documents in `index` (0 when it does not exist), after a refresh.
    pub async fn count(&self, index: &str) -> u64 {
        self.refresh(index).await;
        let (status, body) = self
            .request(reqwest::Method::GET, &format!("/{index}/_count"), None)
            .await;
        if status == 404 {
            return 0;
        }
        body.get("count")
            .and_then(Json::as_u64)
            .unwrap_or_else(|| panic!("unexpected _count answer {status}: {body}"))
    }

    /// The `_source` of document `id` in `index`, or `None` when there is none.
    pub async fn document(&self, index: &str, id: &str) -> Option<Json> {
        let (status, body) = self
            .request(reqwest::Method::GET, &format!("/{index}/_doc/{id}"), None)
            .await;
        if status == 404 || body.get("found") == Some(&Json::Bool(false)) {
            return None;
        }
        body.get("_source").cloned()
    }

    /// Every document of `index` as `(id, source)`, read with `search_after` pages.
    pub async fn documents(&self, index: &str) -> Vec<(String, Json)> {
        self.refresh(index).await;
        let mut out = Vec::new();
        let mut after: Option<Json> = None;
        loop {
            let mut query = serde_json::json!({
                "size": 5000,
                "sort": [{"_id": "asc"}],
                "query": {"match_all": {}}
            });
            if let Some(after) = &after {
                query["search_after"] = after.clone();
            }
            let (status, body) = self
                .request(
                    reqwest::Method::POST,
                    &format!("/{index}/_search"),
                    Some(query),
                )
                .await;
            if status == 404 {
                return out;
            }
            let hits = body["hits"]["hits"]
                .as_array()
                .unwrap_or_else(|| panic!("unexpected _search answer {status}: {body}"))
                .clone();
            if hits.is_empty() {
                return out;
            }
            for hit in &hits {
                out.push((
                    hit["_id"].as_str().unwrap_or_default().to_string(),
                    hit["_source"].clone(),
                ));
            }
            after = hits.last().and_then(|h| h.get("sort")).cloned();
            if after.is_none() {
                return out;
            }
        }
    }

    /// The mapping of `index`.
    pub async fn mapping(&self, index: &str) -> Json {
        let (_, body) = self
            .request(reqwest::Method::GET, &format!("/{index}/_mapping"), None)
            .await;
        body.as_object()
            .and_then(|m| m.values().next())
            .map(|i| i["mappings"].clone())
            .unwrap_or(Json::Null)
    }
}
