//! Connecting to PostgreSQL: the connection URL (JDBC and libpq forms), TLS through rustls
//! per `sslmode`, deadlines, and how connection errors are classified and explained.
//!
//! # Deadlines
//! A server that accepts the TCP connection and then never answers (a firewall that keeps
//! the connection half open, a hung server) must not hold a caller forever, so:
//! - opening a connection (TCP connect, TLS, startup and login) has a deadline per host:
//!   `connect_timeout` (libpq) or `loginTimeout` / `connectTimeout` (pgjdbc) from the URL, in
//!   seconds, else [`DEFAULT_CONNECT_TIMEOUT`]. tokio-postgres's own `connect_timeout` only
//!   bounds the TCP connect, so the whole exchange is wrapped in a timer here;
//! - catalog reads and the preparation of a poll's query (never the reading of its rows, so a
//!   long snapshot is not cut) have [`CATALOG_TIMEOUT`].

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sluice_sdk::ConfigError;
use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::Client;
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::{debug, info, warn};

use crate::config::{CONNECTION_PASSWORD, CONNECTION_URL, CONNECTION_USER};

/// The default PostgreSQL port.
pub const DEFAULT_PORT: u16 = 5432;
/// How long opening a connection to one host may take when the URL sets no timeout: TCP
/// connect, TLS, startup and login together (pgjdbc's `connectTimeout` default is 10 s too).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one catalog read (listing tables, reading a table's columns and keys) or the
/// preparation of a poll's query may wait for the server once connected. Catalog reads take
/// milliseconds; a server that does not answer within this is hung or blocked on a lock.
pub const CATALOG_TIMEOUT: Duration = Duration::from_secs(30);
const APPLICATION_NAME: &str = "sluice";

/// libpq's `sslmode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP only.
    Disable,
    /// TLS if the server offers it, else plain (libpq tries plain first; rustls cannot, so
    /// this behaves as `prefer`).
    Allow,
    /// TLS if the server offers it, else plain; the certificate is not checked.
    Prefer,
    /// TLS, without checking the certificate.
    Require,
    /// TLS with a certificate signed by a trusted CA (host name not checked).
    VerifyCa,
    /// TLS with a trusted certificate for the host name.
    VerifyFull,
}

impl SslMode {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        match text {
            "disable" => Some(Self::Disable),
            "allow" => Some(Self::Allow),
            "prefer" => Some(Self::Prefer),
            "require" => Some(Self::Require),
            "verify-ca" => Some(Self::VerifyCa),
            "verify-full" => Some(Self::VerifyFull),
            _ => None,
        }
    }
}

/// Where a host is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A TCP host name or address with its port.
    Tcp(String, u16),
    /// A directory holding the server's unix socket, with the port naming the socket file.
    Unix(PathBuf, u16),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(h, p) if h.contains(':') => write!(f, "[{h}]:{p}"),
            Self::Tcp(h, p) => write!(f, "{h}:{p}"),
            Self::Unix(dir, p) => write!(f, "{}/.s.PGSQL.{p}", dir.display()),
        }
    }
}

/// Everything needed to open a connection, from `connection.url`, `connection.user` and
/// `connection.password`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Hosts to try, in order.
    pub hosts: Vec<Host>,
    /// Database name.
    pub database: String,
    /// User name.
    pub user: Option<String>,
    password: Option<String>,
    /// TLS policy.
    pub ssl_mode: SslMode,
    /// A PEM file of trusted CA certificates (`sslrootcert`).
    pub ssl_root_cert: Option<PathBuf>,
    /// A PEM file of the client certificate (chain) presented to the server (`sslcert`).
    pub ssl_cert: Option<PathBuf>,
    /// A PEM file of the client certificate's unencrypted private key (`sslkey`).
    pub ssl_key: Option<PathBuf>,
    /// Deadline for opening a connection to one host: TCP connect, TLS, startup and login
    /// (`connect_timeout`, `loginTimeout`, or [`DEFAULT_CONNECT_TIMEOUT`]).
    pub connect_timeout: Duration,
    /// Deadline for the TCP connect alone (pgjdbc's `connectTimeout`; else
    /// `connect_timeout`).
    pub socket_connect_timeout: Duration,
    /// Extra server options (`options`, `currentSchema`).
    pub options: Vec<String>,
    /// Application name shown in `pg_stat_activity`.
    pub application_name: String,
}

impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("hosts", &self.hosts)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[hidden]"))
            .field("ssl_mode", &self.ssl_mode)
            .finish_non_exhaustive()
    }
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("has a bad %-escape in '{text}'"))?;
                out.push(hex);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("has %-escapes that are not UTF-8 in '{text}'"))
}

fn parse_host(text: &str) -> Result<Host, String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("has an unclosed '[' in host '{text}'"))?;
        (h.to_string(), after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (text.to_string(), None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() => p
            .parse::<u16>()
            .map_err(|_| format!("has port '{p}', which is not a number from 1 to 65535"))?,
        _ => DEFAULT_PORT,
    };
    let host = percent_decode(&host)?;
    if host.starts_with('/') {
        Ok(Host::Unix(PathBuf::from(host), port))
    } else {
        Ok(Host::Tcp(
            if host.is_empty() {
                "localhost".to_string()
            } else {
                host
            },
            port,
        ))
    }
}

impl ConnectionSettings {
    /// Parses `url` (`jdbc:postgresql://host:port/db?user=..&password=..` or
    /// `postgres[ql]://user:password@host:port/db?...`); `user` and `password` override the
    /// URL's.
    ///
    /// # Errors
    /// A message completing "option 'connection.url' ...".
    pub fn parse(url: &str, user: Option<&str>, password: Option<&str>) -> Result<Self, String> {
        let trimmed = url.trim();
        let rest = trimmed
            .strip_prefix("jdbc:postgresql://")
            .or_else(|| trimmed.strip_prefix("postgresql://"))
            .or_else(|| trimmed.strip_prefix("postgres://"))
            .ok_or_else(|| {
                format!(
                    "must start with jdbc:postgresql://, postgresql:// or postgres:// \
                     (got '{}'), e.g. jdbc:postgresql://localhost:5432/mydb?user=me&password=secret",
                    redact_url(trimmed)
                )
            })?;
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, database) = match rest.split_once('/') {
            Some((a, d)) => (a, percent_decode(d)?),
            None => (rest, String::new()),
        };
        let (userinfo, hostlist) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let mut settings = Self {
            hosts: Vec::new(),
            database,
            user: None,
            password: None,
            ssl_mode: SslMode::Prefer,
            ssl_root_cert: None,
            ssl_cert: None,
            ssl_key: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            socket_connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            options: Vec::new(),
            application_name: APPLICATION_NAME.to_string(),
        };
        if let Some(info) = userinfo {
            let (u, p) = match info.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (info, None),
            };
            if !u.is_empty() {
                settings.user = Some(percent_decode(u)?);
            }
            if let Some(p) = p {
                settings.password = Some(percent_decode(p)?);
            }
        }
        let mut host_param = None;
        let mut port_param = None;
        // libpq's connect_timeout and pgjdbc's loginTimeout bound the whole connection
        // set-up; pgjdbc's connectTimeout only the TCP connect (it bounds the whole when it is
        // the only one given). 0 means "no limit" there; here it keeps the default, so a
        // silent server can never hold a caller forever.
        let mut whole_timeout = None;
        let mut socket_timeout = None;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)?;
            match key {
                "user" => settings.user = Some(value),
                "password" => settings.password = Some(value),
                "sslmode" => {
                    settings.ssl_mode = SslMode::parse(&value).ok_or_else(|| {
                        format!(
                            "has sslmode={value}; use one of disable, allow, prefer, require, \
                             verify-ca, verify-full"
                        )
                    })?;
                }
                // pgjdbc: ssl=true means verify-full unless sslmode says otherwise.
                "ssl" if value == "true" && query.is_some_and(|q| !q.contains("sslmode=")) => {
                    settings.ssl_mode = SslMode::VerifyFull;
                }
                "ssl" => {}
                "sslrootcert" => settings.ssl_root_cert = Some(PathBuf::from(value)),
                "sslcert" => settings.ssl_cert = Some(PathBuf::from(value)),
                "sslkey" => settings.ssl_key = Some(PathBuf::from(value)),
                "connectTimeout" | "connect_timeout" | "loginTimeout" => {
                    let secs: u64 = value.parse().map_err(|_| {
                        format!("has {key}={value}; give a whole number of seconds")
                    })?;
                    let timeout = (secs > 0).then(|| Duration::from_secs(secs));
                    if key == "connectTimeout" {
                        socket_timeout = timeout;
                    } else {
                        whole_timeout = timeout;
                    }
                }
                "ApplicationName" | "application_name" => settings.application_name = value,
                "options" => settings.options.push(value),
                "currentSchema" => settings.options.push(format!("-c search_path={value}")),
                "host" => host_param = Some(value),
                "port" => port_param = Some(value),
                "dbname" => settings.database = value,
                other => {
                    warn!(
                        parameter = other,
                        "ignoring connection.url parameter this connector does not use"
                    );
                }
            }
        }
        if let Some(host) = host_param {
            let port = port_param.as_deref().unwrap_or("");
            settings.hosts.push(parse_host(&if port.is_empty() {
                host.clone()
            } else {
                format!("{host}:{port}")
            })?);
        } else {
            for h in hostlist.split(',') {
                let mut host = parse_host(h)?;
                if let (Some(p), Host::Tcp(_, port) | Host::Unix(_, port)) =
                    (port_param.as_deref(), &mut host)
                {
                    if !h.contains(':') {
                        *port = p.parse().map_err(|_| {
                            format!("has port={p}, which is not a number from 1 to 65535")
                        })?;
                    }
                }
                settings.hosts.push(host);
            }
        }
        settings.connect_timeout = whole_timeout
            .or(socket_timeout)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        settings.socket_connect_timeout = socket_timeout
            .unwrap_or(settings.connect_timeout)
            .min(settings.connect_timeout);
        if let Some(u) = user.filter(|u| !u.is_empty()) {
            settings.user = Some(u.to_string());
        }
        if let Some(p) = password {
            settings.password = Some(p.to_string());
        }
        if settings.database.is_empty() {
            return Err(format!(
                "names no database (got '{}'); add it after the host, e.g. \
                 jdbc:postgresql://localhost:5432/mydb",
                redact_url(trimmed)
            ));
        }
        if settings.user.is_none() {
            return Err(
                "names no user; add ?user=NAME to the URL or set connection.user".to_string(),
            );
        }
        Ok(settings)
    }

    /// `host:port/database`, for messages and logs (never the password).
    pub fn describe(&self) -> String {
        let hosts: Vec<String> = self.hosts.iter().map(ToString::to_string).collect();
        format!("{}/{}", hosts.join(","), self.database)
    }

    /// The driver's configuration for one host (hosts are tried one by one here, each with
    /// its own deadline, as libpq applies `connect_timeout` to each host).
    fn pg_config(&self, host: &Host) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        match host {
            Host::Tcp(h, p) => {
                config.host(h).port(*p);
            }
            Host::Unix(dir, p) => {
                config.host_path(dir).port(*p);
            }
        }
        config
            .dbname(&self.database)
            .application_name(&self.application_name)
            .connect_timeout(self.socket_connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        if let Some(user) = &self.user {
            config.user(user);
        }
        if let Some(password) = &self.password {
            config.password(password);
        }
        // UTC sessions make every cast and now() arithmetic independent of the server's,
        // database's or role's TimeZone; the queries are written to not need it either.
        let mut options = vec!["-c TimeZone=UTC".to_string()];
        options.extend(self.options.iter().cloned());
        config.options(options.join(" "));
        config.ssl_mode(match self.ssl_mode {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Allow | SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
        });
        config
    }

    fn tls(&self) -> Result<MakeRustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
        let builder = match self.ssl_mode {
            SslMode::Disable | SslMode::Allow | SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider))),
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = Arc::new(self.root_certificates()?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| format!("cannot use the trusted certificates: {e}"))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(VerifyCertificate {
                        inner: webpki,
                        check_host: self.ssl_mode == SslMode::VerifyFull,
                    }))
            }
        };
        let config = match self.client_certificate()? {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("has sslcert and sslkey that cannot be used: {e}"))?,
            None => builder.with_no_client_auth(),
        };
        Ok(MakeRustlsConnect::new(config))
    }

    /// The client certificate chain and key of `sslcert` and `sslkey` (both or neither).
    #[allow(clippy::type_complexity)]
    fn client_certificate(
        &self,
    ) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
        let (cert, key) = match (&self.ssl_cert, &self.ssl_key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            (Some(_), None) => return Err("has sslcert without sslkey; give both".into()),
            (None, Some(_)) => return Err("has sslkey without sslcert; give both".into()),
        };
        let read = |name: &str, path: &PathBuf| {
            std::fs::read(path)
                .map_err(|e| format!("has {name}={}, which cannot be read: {e}", path.display()))
        };
        let pem = read("sslcert", cert)?;
        let chain = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("has sslcert={}, which is not PEM: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "has sslcert={}, which holds no PEM certificate",
                cert.display()
            ));
        }
        let pem = read("sslkey", key)?;
        let key = rustls_pemfile::private_key(&mut pem.as_slice())
            .map_err(|e| format!("has sslkey={}, which is not PEM: {e}", key.display()))?
            .ok_or_else(|| {
                format!(
                    "has sslkey={}, which holds no unencrypted private key (PKCS#8, PKCS#1 or \
                     SEC1 PEM)",
                    key.display()
                )
            })?;
        Ok(Some((chain, key)))
    }

    fn root_certificates(&self) -> Result<RootCertStore, String> {
        let mut roots = RootCertStore::empty();
        match &self.ssl_root_cert {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    format!(
                        "has sslrootcert={}, which cannot be read: {e}",
                        path.display()
                    )
                })?;
                for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                    let cert = cert.map_err(|e| {
                        format!(
                            "has sslrootcert={}, which is not a PEM certificate file: {e}",
                            path.display()
                        )
                    })?;
                    roots
                        .add(cert)
                        .map_err(|e| format!("has a bad certificate in sslrootcert: {e}"))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        if roots.is_empty() {
            return Err(format!(
                "has sslmode={} but no trusted CA certificate was found; add \
                 sslrootcert=/path/to/ca.pem to the URL",
                if self.ssl_mode == SslMode::VerifyCa {
                    "verify-ca"
                } else {
                    "verify-full"
                }
            ));
        }
        Ok(roots)
    }

    /// Opens a connection, trying the hosts in order, each within `connect_timeout` (TCP
    /// connect, TLS, startup and login together); the connection's I/O runs on a spawned task
    /// owned by the result.
    ///
    /// # Errors
    /// [`ConnectError`] of the last host tried, to classify or explain:
    /// [`ConnectError::TimedOut`] when it did not answer within the deadline.
    pub async fn connect(&self) -> Result<PgConnection, ConnectError> {
        let tls = self.tls().map_err(ConnectError::Settings)?;
        let mut last = ConnectError::Settings("names no host to connect to".into());
        for host in &self.hosts {
            let target = format!("{host}/{}", self.database);
            info!(database = %target, timeout = %seconds(self.connect_timeout),
                  "connecting to PostgreSQL");
            let config = self.pg_config(host);
            match tokio::time::timeout(self.connect_timeout, config.connect(tls.clone())).await {
                Ok(Ok((client, connection))) => {
                    debug!(database = %target, "connected to PostgreSQL");
                    let io = tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            debug!(database = %target, error = %e, "connection ended");
                        }
                    });
                    return Ok(PgConnection { client, io });
                }
                Ok(Err(e)) => last = ConnectError::Postgres(e),
                Err(_) => {
                    warn!(database = %target, timeout = %seconds(self.connect_timeout),
                          "no answer from PostgreSQL at {host} after {}; giving up on this attempt",
                          seconds(self.connect_timeout));
                    last = ConnectError::TimedOut {
                        target: host.to_string(),
                        after: self.connect_timeout,
                    };
                }
            }
        }
        Err(last)
    }

    /// Explains a failed connection as an error of the option the user should change.
    pub fn explain(&self, error: &ConnectError) -> ConfigError {
        let target = self.describe();
        let user = self.user.as_deref().unwrap_or("");
        match error {
            ConnectError::Settings(message) => ConfigError::new(CONNECTION_URL, message.clone()),
            ConnectError::TimedOut { target, after } => ConfigError::new(
                CONNECTION_URL,
                format!(
                    "timed out after {} waiting for PostgreSQL at {target} to answer (connect \
                     and login): check the host and port, that no firewall drops or holds the \
                     traffic, and that the server is not hung; or allow longer with \
                     connect_timeout=SECONDS in the URL (jdbc: URLs also take loginTimeout)",
                    seconds(*after)
                ),
            ),
            ConnectError::Postgres(e) => match e.code().map(|c| c.code()) {
                Some("28P01") => ConfigError::new(
                    CONNECTION_PASSWORD,
                    format!(
                        "was refused: PostgreSQL at {target} says password authentication failed \
                         for user '{user}'; check connection.password (or the password in \
                         connection.url) and connection.user"
                    ),
                ),
                Some(code) if code.starts_with("28") => ConfigError::new(
                    CONNECTION_USER,
                    format!(
                        "was refused by PostgreSQL at {target}: {}; check the user name, its \
                         password and the server's pg_hba.conf",
                        db_message(e)
                    ),
                ),
                Some("3D000") => ConfigError::new(
                    CONNECTION_URL,
                    format!(
                        "names database '{}', which does not exist on {}; create it or correct \
                         the name in the URL",
                        self.database,
                        target.rsplit_once('/').map_or(target.as_str(), |t| t.0)
                    ),
                ),
                Some(_) => ConfigError::new(
                    CONNECTION_URL,
                    format!("could not connect to {target}: {}", db_message(e)),
                ),
                None => {
                    let text = error_chain(e);
                    let message = if text.contains("TLS") || text.contains("certificate") {
                        format!(
                            "could not set up TLS with PostgreSQL at {target}: {text}; check \
                             sslmode (disable, prefer, require, verify-ca, verify-full), \
                             sslrootcert and the server's ssl setting"
                        )
                    } else {
                        format!(
                            "cannot reach PostgreSQL at {target}: {text}; check the host and \
                             port, and that PostgreSQL is running and accepts TCP connections"
                        )
                    };
                    ConfigError::new(CONNECTION_URL, message)
                }
            },
        }
    }
}

/// A URL with any password replaced, for messages.
fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(start) = out.find("password=") {
        let end = out[start..].find('&').map_or(out.len(), |e| start + e);
        out.replace_range(start + 9..end, "***");
    }
    if let Some(at) = out.find('@') {
        if let Some(scheme_end) = out.find("://") {
            if let Some(colon) = out[scheme_end + 3..at].find(':') {
                out.replace_range(scheme_end + 3 + colon + 1..at, "***");
            }
        }
    }
    out
}

/// The server's message (with detail and hint) or the driver's text.
pub fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = db.message().to_string();
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!("; hint: {hint}"));
            }
            text
        }
        None => error_chain(e),
    }
}

/// An error with its sources, joined by ": ".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Whether a driver error is transient: the connection was lost, the server is starting or
/// shutting down, out of resources, or the transaction lost a race. Anything else (bad SQL,
/// a missing table, refused credentials) will fail again the same way.
pub fn is_transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            let code = code.code();
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "57014"
                || code == "40001"
                || code == "40P01"
                || code == "55P03"
        }
        None => true,
    }
}

/// `10s`, or `1.5s` for a fraction, for messages.
pub fn seconds(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{:.1}s", duration.as_secs_f64())
    }
}

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The settings themselves are unusable (unreadable CA file...).
    #[error("{0}")]
    Settings(String),
    /// The host did not finish connect, TLS and login within the connection deadline.
    #[error("no answer from PostgreSQL at {target} within {} (connect and login)", seconds(*.after))]
    TimedOut {
        /// The host (`host:port`).
        target: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The driver or server refused.
    #[error("{}", error_chain(.0))]
    Postgres(tokio_postgres::Error),
}

impl ConnectError {
    /// Whether trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Settings(_) => false,
            Self::TimedOut { .. } => true,
            Self::Postgres(e) => is_transient(e),
        }
    }
}

/// An open connection: the client, and the task driving its socket (ended on drop).
#[derive(Debug)]
pub struct PgConnection {
    /// The client to send queries with.
    pub client: Client,
    io: JoinHandle<()>,
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        self.io.abort();
    }
}

/// Accepts any server certificate (libpq's `require`/`prefer`: encryption without
/// authentication), still checking the handshake signatures.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Checks the chain against trusted CAs; the host name only for `verify-full`.
#[derive(Debug)]
struct VerifyCertificate {
    inner: Arc<WebPkiServerVerifier>,
    check_host: bool,
}

impl ServerCertVerifier for VerifyCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_host => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_needs_both_files() {
        let url = "postgres://app@db/shop?sslmode=require&sslcert=/nonexistent/c.pem";
        let s = ConnectionSettings::parse(url, None, None).unwrap();
        assert_eq!(
            s.ssl_cert.as_deref(),
            Some(std::path::Path::new("/nonexistent/c.pem"))
        );
        assert_eq!(
            s.tls().err().as_deref(),
            Some("has sslcert without sslkey; give both")
        );
        let s = ConnectionSettings::parse(&format!("{url}&sslkey=/nonexistent/k.pem"), None, None)
            .unwrap();
        let err = s.tls().err().unwrap_or_default();
        assert!(
            err.starts_with("has sslcert=/nonexistent/c.pem, which cannot be read"),
            "{err}"
        );
    }

    #[test]
    fn jdbc_urls_carry_user_password_and_sslmode() {
        let s = ConnectionSettings::parse(
            "jdbc:postgresql://db.internal:6543/shop?user=app&password=p%40ss&sslmode=require",
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.hosts, vec![Host::Tcp("db.internal".into(), 6543)]);
        assert_eq!(s.database, "shop");
        assert_eq!(s.user.as_deref(), Some("app"));
        assert_eq!(s.password.as_deref(), Some("p@ss"));
        assert_eq!(s.ssl_mode, SslMode::Require);
        assert!(!format!("{s:?}").contains("p@ss"));
    }

    #[test]
    fn libpq_urls_and_overrides() {
        let s =
            ConnectionSettings::parse("postgres://u:secret@[::1]/shop", Some("other"), Some("pw"))
                .unwrap();
        assert_eq!(s.hosts, vec![Host::Tcp("::1".into(), DEFAULT_PORT)]);
        assert_eq!(s.user.as_deref(), Some("other"));
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert_eq!(s.ssl_mode, SslMode::Prefer);
        let unix = ConnectionSettings::parse(
            "postgresql:///shop?host=/run/postgresql&port=5433&user=u",
            None,
            None,
        )
        .unwrap();
        assert_eq!(
            unix.hosts,
            vec![Host::Unix(PathBuf::from("/run/postgresql"), 5433)]
        );
    }

    #[test]
    fn bad_urls_say_how_to_fix_them() {
        let err = ConnectionSettings::parse("mysql://h/db", None, None).unwrap_err();
        assert!(err.contains("must start with jdbc:postgresql://"), "{err}");
        let err =
            ConnectionSettings::parse("postgres://h:99999/db?user=u", None, None).unwrap_err();
        assert!(err.contains("port '99999'"), "{err}");
        let err = ConnectionSettings::parse("postgres://h:5432?user=u", None, None).unwrap_err();
        assert!(err.contains("names no database"), "{err}");
        let err =
            ConnectionSettings::parse("postgres://h/db?sslmode=on&user=u", None, None).unwrap_err();
        assert!(err.contains("sslmode=on"), "{err}");
        let err = ConnectionSettings::parse("postgres://h/db", None, None).unwrap_err();
        assert!(err.contains("connection.user"), "{err}");
    }

    #[test]
    fn connect_deadlines_come_from_the_url_or_the_default() {
        let s = ConnectionSettings::parse("postgres://u@h/db", None, None).unwrap();
        assert_eq!(s.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        assert_eq!(s.socket_connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        let s =
            ConnectionSettings::parse("postgres://u@h/db?connect_timeout=3", None, None).unwrap();
        assert_eq!(s.connect_timeout, Duration::from_secs(3));
        assert_eq!(s.socket_connect_timeout, Duration::from_secs(3));
        // pgjdbc: connectTimeout bounds the TCP connect, loginTimeout the whole set-up.
        let s = ConnectionSettings::parse(
            "jdbc:postgresql://h/db?user=u&connectTimeout=2&loginTimeout=20",
            None,
            None,
        )
        .unwrap();
        assert_eq!(s.connect_timeout, Duration::from_secs(20));
        assert_eq!(s.socket_connect_timeout, Duration::from_secs(2));
        let s =
            ConnectionSettings::parse("jdbc:postgresql://h/db?user=u&connectTimeout=4", None, None)
                .unwrap();
        assert_eq!(s.connect_timeout, Duration::from_secs(4));
        // 0 ("no limit" in libpq and pgjdbc) keeps the default: nothing waits forever.
        let s =
            ConnectionSettings::parse("postgres://u@h/db?connect_timeout=0", None, None).unwrap();
        assert_eq!(s.connect_timeout, DEFAULT_CONNECT_TIMEOUT);
        let err = ConnectionSettings::parse("postgres://u@h/db?connect_timeout=soon", None, None)
            .unwrap_err();
        assert!(err.contains("connect_timeout=soon"), "{err}");
    }

    #[test]
    fn a_timeout_is_explained_on_connection_url_with_the_fix() {
        let s =
            ConnectionSettings::parse("postgres://u@h/db?connect_timeout=2", None, None).unwrap();
        let e = ConnectError::TimedOut {
            target: "h:5432".into(),
            after: Duration::from_secs(2),
        };
        assert!(e.is_transient());
        let explained = s.explain(&e);
        assert_eq!(explained.option, CONNECTION_URL);
        assert!(
            explained
                .message
                .starts_with("timed out after 2s waiting for PostgreSQL at h:5432 to answer"),
            "{explained}"
        );
        assert!(
            explained.message.contains("connect_timeout="),
            "{explained}"
        );
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn urls_in_messages_hide_passwords() {
        assert_eq!(
            redact_url("jdbc:x://h/db?user=u&password=secret&a=b"),
            "jdbc:x://h/db?user=u&password=***&a=b"
        );
        assert_eq!(redact_url("mysql://u:secret@h/db"), "mysql://u:***@h/db");
    }
}
