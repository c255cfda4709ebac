//! The REST API's transport and authentication, as Kafka Connect's:
//!
//! - `listeners=https://host:port` serves the API over TLS, with the certificate chain and key
//!   from PEM files or text (`listeners.https.ssl.keystore.location` holding both, with
//!   `listeners.https.ssl.keystore.type=PEM`, or `listeners.https.ssl.keystore.certificate.chain`
//!   and `listeners.https.ssl.keystore.key`), and client certificates when
//!   `listeners.https.ssl.client.auth` is `required` or `requested` (CAs from
//!   `listeners.https.ssl.truststore.location`, PEM).
//! - `rest.basic.auth.users.file` turns on HTTP basic authentication against a users file in
//!   the format of Kafka Connect's `PropertyFileLoginModule` (a Java properties file,
//!   `user=password` per line), as its `BasicAuthSecurityRestExtension` does. A request
//!   without valid credentials gets 401 with `WWW-Authenticate`. The file is read again when
//!   it changes, so users are added and removed without a restart.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use crate::config_providers::parse_properties;
use crate::error::{Error, Result};

/// The prefix of the HTTPS listener's TLS settings.
pub const HTTPS_PREFIX: &str = "listeners.https.";

/// How long a client gets to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A server TLS configuration from the `listeners.https.ssl.*` settings (`tls`, prefix
/// removed).
///
/// # Errors
/// A missing or unreadable certificate or key, a keystore type other than PEM, a bad
/// `ssl.client.auth`: each naming the setting.
pub fn server_tls_config(
    tls: &std::collections::BTreeMap<String, String>,
) -> Result<Arc<rustls::ServerConfig>> {
    let setting = |name: &str| format!("{HTTPS_PREFIX}{name}");
    let get = |name: &str| {
        tls.get(name)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    if let Some(kind) = get("ssl.keystore.type") {
        if !kind.eq_ignore_ascii_case("PEM") {
            return Err(Error::Settings(format!(
                "worker setting '{}' is {kind}; sluice reads PEM keystores only (convert a PKCS12 one with `openssl pkcs12 -in keystore.p12 -nodes -out keystore.pem`)",
                setting("ssl.keystore.type")
            )));
        }
    }
    let (certs, key) = match (
        get("ssl.keystore.location"),
        get("ssl.keystore.certificate.chain"),
        get("ssl.keystore.key"),
    ) {
        (Some(location), _, _) => {
            let pem = std::fs::read(&location).map_err(|e| {
                Error::Settings(format!(
                    "worker setting '{}': cannot read {location}: {e}",
                    setting("ssl.keystore.location")
                ))
            })?;
            (
                pem_certs(&pem, &setting("ssl.keystore.location"))?,
                pem_key(&pem, &setting("ssl.keystore.location"))?,
            )
        }
        (None, Some(chain), Some(key)) => (
            pem_certs(chain.as_bytes(), &setting("ssl.keystore.certificate.chain"))?,
            pem_key(key.as_bytes(), &setting("ssl.keystore.key"))?,
        ),
        _ => {
            return Err(Error::Settings(format!(
                "an https listener needs a certificate and key: set '{}' to a PEM file holding the chain and the key, or '{}' and '{}' to PEM text",
                setting("ssl.keystore.location"),
                setting("ssl.keystore.certificate.chain"),
                setting("ssl.keystore.key")
            )))
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Settings(format!("TLS set-up failed: {e}")))?;
    let client_auth = get("ssl.client.auth").unwrap_or_else(|| "none".to_string());
    let builder = match client_auth.to_ascii_lowercase().as_str() {
        "none" => builder.with_no_client_auth(),
        mode @ ("required" | "requested") => {
            let location = get("ssl.truststore.location").ok_or_else(|| {
                Error::Settings(format!(
                    "worker setting '{}' is {mode}: set '{}' to a PEM file of the CAs that sign client certificates",
                    setting("ssl.client.auth"),
                    setting("ssl.truststore.location")
                ))
            })?;
            let pem = std::fs::read(&location).map_err(|e| {
                Error::Settings(format!(
                    "worker setting '{}': cannot read {location}: {e}",
                    setting("ssl.truststore.location")
                ))
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in pem_certs(&pem, &setting("ssl.truststore.location"))? {
                roots.add(cert).map_err(|e| {
                    Error::Settings(format!(
                        "worker setting '{}': a certificate is not usable as a CA: {e}",
                        setting("ssl.truststore.location")
                    ))
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = if mode == "requested" {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| {
                Error::Settings(format!(
                    "client certificate verification set-up failed: {e}"
                ))
            })?)
        }
        other => {
            return Err(Error::Settings(format!(
                "worker setting '{}' must be none, requested or required (got '{other}')",
                setting("ssl.client.auth")
            )))
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        Error::Settings(format!(
            "the https listener's certificate and key do not go together: {e}"
        ))
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn pem_certs(pem: &[u8], setting: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Settings(format!("worker setting '{setting}': bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Settings(format!(
            "worker setting '{setting}' holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(certs)
}

fn pem_key(pem: &[u8], setting: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| {
        Error::Settings(format!(
            "worker setting '{setting}' holds no usable PEM private key: {e}"
        ))
    })
}

/// A TLS listener for `axum::serve`: TCP connections are accepted at once and their
/// handshakes run concurrently, so a slow or broken client holds up nobody else.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// The client a worker sends internal requests to other workers with: with an https
/// listener it trusts the CAs of `listeners.https.ssl.truststore.location` (besides the
/// usual roots) and presents the listener's own certificate, for workers that require
/// client certificates.
///
/// # Errors
/// Unreadable truststore or keystore files, naming the setting.
pub fn internal_client(
    https: bool,
    tls: &std::collections::BTreeMap<String, String>,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if https {
        let get = |name: &str| {
            tls.get(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(location) = get("ssl.truststore.location") {
            let pem = std::fs::read(&location).map_err(|e| {
                Error::Settings(format!(
                    "worker setting '{HTTPS_PREFIX}ssl.truststore.location': cannot read {location}: {e}"
                ))
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                Error::Settings(format!(
                    "worker setting '{HTTPS_PREFIX}ssl.truststore.location': bad PEM: {e}"
                ))
            })? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let identity = match (
            get("ssl.keystore.location"),
            get("ssl.keystore.certificate.chain"),
            get("ssl.keystore.key"),
        ) {
            (Some(location), _, _) => std::fs::read(&location).ok(),
            (None, Some(chain), Some(key)) => Some(format!("{chain}\n{key}").into_bytes()),
            _ => None,
        };
        if let Some(pem) = identity {
            if let Ok(identity) = reqwest::Identity::from_pem(&pem) {
                builder = builder.identity(identity);
            }
        }
    }
    builder
        .build()
        .map_err(|e| Error::Other(format!("cannot build the internal REST client: {e}")))
}

/// Whether a request is an internal one that proves itself with a session key signature
/// (KIP-507) instead of user credentials: `POST /connectors/{c}/tasks` carrying a signature.
/// The handler refuses it when the signature is wrong.
fn is_signed_internal_request(request: &Request) -> bool {
    let path = request.uri().path().trim_end_matches('/');
    request.method() == axum::http::Method::POST
        && request
            .headers()
            .contains_key(crate::cluster::session::SIGNATURE_HEADER)
        && path
            .strip_prefix("/connectors/")
            .and_then(|rest| rest.strip_suffix("/tasks"))
            .is_some_and(|name| !name.is_empty() && !name.contains('/'))
}

impl TlsListener {
    /// Serves TLS with `config` on `listener`.
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        debug!(error = %e, "REST accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            debug!(peer = %peer, error = %e, "REST TLS handshake failed (a plaintext client on the https listener?)");
                        }
                        Err(_) => debug!(peer = %peer, "REST TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends once this receiver is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// HTTP basic authentication against a users file.
#[derive(Debug)]
pub struct BasicAuth {
    file: PathBuf,
    users: Mutex<Users>,
}

#[derive(Debug, Default)]
struct Users {
    modified: Option<SystemTime>,
    passwords: std::collections::BTreeMap<String, String>,
}

impl BasicAuth {
    /// Reads the users file `file`.
    ///
    /// # Errors
    /// A file that cannot be read or holds no user, naming the setting.
    pub fn load(file: &Path) -> Result<Self> {
        let auth = Self {
            file: file.to_path_buf(),
            users: Mutex::new(Users::default()),
        };
        auth.refresh().map_err(|e| {
            Error::Settings(format!("worker setting 'rest.basic.auth.users.file': {e}"))
        })?;
        if auth.users.lock().expect("users lock").passwords.is_empty() {
            return Err(Error::Settings(format!(
                "worker setting 'rest.basic.auth.users.file': {} holds no user; write one `user=password` per line",
                file.display()
            )));
        }
        Ok(auth)
    }

    /// Reads the file again when it changed since the last read.
    fn refresh(&self) -> std::result::Result<(), String> {
        let modified = std::fs::metadata(&self.file)
            .and_then(|m| m.modified())
            .map_err(|e| format!("cannot read {}: {e}", self.file.display()))?;
        let mut users = self.users.lock().expect("users lock");
        if users.modified == Some(modified) {
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.file)
            .map_err(|e| format!("cannot read {}: {e}", self.file.display()))?;
        users.passwords = parse_properties(&text);
        users.modified = Some(modified);
        Ok(())
    }

    /// The user an `Authorization` header authenticates, if it does.
    pub fn authenticate(&self, authorization: Option<&HeaderValue>) -> Option<String> {
        let encoded = authorization?.to_str().ok()?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        if let Err(e) = self.refresh() {
            warn!(error = %e, "cannot re-read the REST users file; keeping the users read before");
        }
        let users = self.users.lock().expect("users lock");
        let expected = users.passwords.get(user)?;
        constant_time_eq(expected.as_bytes(), password.as_bytes()).then(|| user.to_string())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: lets a request through only with valid credentials.
pub async fn require_basic_auth(
    State(auth): State<Arc<BasicAuth>>,
    request: Request,
    next: Next,
) -> Response {
    if is_signed_internal_request(&request)
        || auth
            .authenticate(request.headers().get(header::AUTHORIZATION))
            .is_some()
    {
        return next.run(request).await;
    }
    let mut response = (
        StatusCode::UNAUTHORIZED,
        axum::Json(serde_json::json!({
            "error_code": 401,
            "message": "Credentials are required: send HTTP basic authentication of a user of the worker's rest.basic.auth.users.file"
        })),
    )
        .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"sluice\""),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_file_authenticates_and_is_reread() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users.properties");
        std::fs::write(&file, "# users\nadmin=admin-secret\nbob: builder\n").unwrap();
        let auth = BasicAuth::load(&file).unwrap();
        let header = |user: &str, password: &str| {
            HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ))
            .unwrap()
        };
        assert_eq!(
            auth.authenticate(Some(&header("admin", "admin-secret"))),
            Some("admin".into())
        );
        assert_eq!(
            auth.authenticate(Some(&header("bob", "builder"))),
            Some("bob".into())
        );
        assert_eq!(auth.authenticate(Some(&header("admin", "wrong"))), None);
        assert_eq!(
            auth.authenticate(Some(&header("eve", "admin-secret"))),
            None
        );
        assert_eq!(auth.authenticate(None), None);
        assert_eq!(
            auth.authenticate(Some(&HeaderValue::from_static("Bearer x"))),
            None
        );
        // A changed file is read again (mtime granularity: make sure it differs).
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&file, "carol=c\n").unwrap();
        let later = SystemTime::now() + Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(
            auth.authenticate(Some(&header("carol", "c"))),
            Some("carol".into())
        );
        assert_eq!(
            auth.authenticate(Some(&header("admin", "admin-secret"))),
            None
        );
    }

    #[test]
    fn an_empty_users_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("users.properties");
        std::fs::write(&file, "# nobody\n").unwrap();
        let err = BasicAuth::load(&file).unwrap_err().to_string();
        assert!(
            err.contains("rest.basic.auth.users.file") && err.contains("no user"),
            "{err}"
        );
    }
}
