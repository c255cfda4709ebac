//! Failures talking to the cluster, classified as retriable or not.

use std::time::Duration;

use crate::config::{
    CONNECTION_API_KEY, CONNECTION_PASSWORD, CONNECTION_TIMEOUT_MS, CONNECTION_URL,
    CONNECTION_USERNAME, READ_TIMEOUT_MS, SSL_ENDPOINT_IDENTIFICATION_ALGORITHM,
    SSL_TRUSTSTORE_LOCATION,
};

/// A failed request to Elasticsearch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No answer: connection refused or reset, DNS, TLS handshake, timeout.
    #[error("cannot reach Elasticsearch at {url}: {detail}")]
    Unreachable {
        /// The base URL tried.
        url: String,
        /// What went wrong, with its causes.
        detail: String,
    },
    /// A deadline passed: the connection was not set up within `connection.timeout.ms`, or
    /// the server sent nothing within `read.timeout.ms` (it accepted the connection and then
    /// stayed silent: a firewall holding the connection, a hung or overloaded node).
    #[error("no answer from Elasticsearch at {url} within {millis} ms ({option}); check that {CONNECTION_URL} names the cluster's HTTP endpoint, that no firewall holds the connection and that the cluster is not overloaded, or raise {option}")]
    TimedOut {
        /// The base URL tried.
        url: String,
        /// The option whose deadline passed.
        option: &'static str,
        /// That deadline, in milliseconds.
        millis: u128,
    },
    /// The server's TLS certificate is not trusted (or does not name the host).
    #[error("TLS with {url} failed: {detail}; if the cluster uses its own CA, set {SSL_TRUSTSTORE_LOCATION} to its certificate (PEM){hostname_hint}")]
    Tls {
        /// The base URL.
        url: String,
        /// What the TLS layer said.
        detail: String,
        /// A hint about host-name checks, when the name did not match.
        hostname_hint: String,
    },
    /// An HTTP answer with an error status that trying again may fix (429, 5xx, 408).
    #[error("Elasticsearch at {url} answered {method} {path} with HTTP {status}: {reason}")]
    Busy {
        /// The base URL.
        url: String,
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The error type and reason from the body.
        reason: String,
    },
    /// HTTP 401: the credentials were refused or are missing.
    #[error(
        "Elasticsearch at {url} refused to authenticate the connector (HTTP 401: {reason}); {hint}"
    )]
    Authentication {
        /// The base URL.
        url: String,
        /// The error reason from the body.
        reason: String,
        /// Which options to check.
        hint: String,
    },
    /// HTTP 403: authenticated, but not allowed.
    #[error("Elasticsearch at {url} denied {method} {path} (HTTP 403: {reason}); the user of connection.username (or the API key) needs the 'monitor' cluster privilege and 'create_index', 'write' and 'view_index_metadata' on the target indices")]
    Forbidden {
        /// The base URL.
        url: String,
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// The error reason from the body.
        reason: String,
    },
    /// Any other error answer (a 4xx that retrying cannot fix).
    #[error("Elasticsearch at {url} rejected {method} {path} with HTTP {status}: {reason}")]
    Rejected {
        /// The base URL.
        url: String,
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// HTTP status.
        status: u16,
        /// The error type and reason from the body.
        reason: String,
    },
    /// A success status with a body that is not what Elasticsearch sends.
    #[error("unexpected answer from {url} to {method} {path}: {detail}; check that {CONNECTION_URL} names an Elasticsearch or OpenSearch HTTP endpoint")]
    UnexpectedAnswer {
        /// The base URL.
        url: String,
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// A cluster this connector does not support.
    #[error("{0}")]
    Unsupported(String),
    /// A local problem building the client (bad TLS files).
    #[error("{0}")]
    Setup(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether trying the same request again may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::TimedOut { .. } | Self::Busy { .. }
        )
    }

    /// The hint for a 401, depending on what credentials were sent.
    pub(crate) fn authentication_hint(basic: bool, api_key: bool) -> String {
        if basic {
            format!("check {CONNECTION_USERNAME} and {CONNECTION_PASSWORD}")
        } else if api_key {
            format!("check {CONNECTION_API_KEY}")
        } else {
            format!(
                "the cluster requires credentials: set {CONNECTION_USERNAME} and \
                 {CONNECTION_PASSWORD} (or {CONNECTION_API_KEY})"
            )
        }
    }
}

impl From<Error> for sluice_sdk::Error {
    fn from(e: Error) -> Self {
        if e.is_retriable() {
            sluice_sdk::Error::retriable(e)
        } else {
            sluice_sdk::Error::fatal(e)
        }
    }
}

/// The deadlines of a client's requests, to name the one that passed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadlines {
    /// `connection.timeout.ms`.
    pub(crate) connect: Duration,
    /// `read.timeout.ms`.
    pub(crate) read: Duration,
}

/// The error for a request that got no answer: a certificate problem is not transient, the
/// rest (refused, reset, timed out) is.
pub(crate) fn transport_error(url: &str, e: &reqwest::Error, deadlines: Deadlines) -> Error {
    if e.is_timeout() {
        let (option, deadline) = if e.is_connect() {
            (CONNECTION_TIMEOUT_MS, deadlines.connect)
        } else {
            (READ_TIMEOUT_MS, deadlines.read)
        };
        return Error::TimedOut {
            url: url.to_string(),
            option,
            millis: deadline.as_millis(),
        };
    }
    let detail = error_chain(e);
    if detail.contains("invalid peer certificate") || detail.contains("certificate verify") {
        let hostname_hint = if detail.contains("NotValidForName") {
            format!(
                "; the certificate does not name this host: use the name it was issued for, or                  set {SSL_ENDPOINT_IDENTIFICATION_ALGORITHM} to an empty value"
            )
        } else {
            String::new()
        };
        return Error::Tls {
            url: url.to_string(),
            detail,
            hostname_hint,
        };
    }
    Error::Unreachable {
        url: url.to_string(),
        detail,
    }
}

/// The text of an error and all its causes (`a: b: c`), for messages users read.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
