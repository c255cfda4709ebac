//! The crate's error type: why one HTTP request failed, classified for retrying.

/// Why one request to the polled service did not give a usable JSON answer.
///
/// Messages never contain the request URL, which may carry an API key; the caller names
/// what it was fetching (a symbol, an entity) around them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No complete answer within the request timeout (`request.timeout.ms` of
    /// `stock-quote-source`, `http.request.timeout.ms` of `http-source`): a server that
    /// accepts the connection and stays silent ends here.
    #[error("no answer within {timeout_ms} ms ({option}); check that the server is up and answers at that address, or raise {option}")]
    Timeout {
        /// The configured request timeout.
        timeout_ms: u64,
        /// The option that sets it.
        option: &'static str,
    },
    /// The server could not be reached or the connection broke.
    #[error("could not reach the server: {0}")]
    Connect(String),
    /// The server answered with an HTTP error status.
    #[error("the server answered HTTP {status}{}", body_excerpt(.body))]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body, for the log.
        body: String,
    },
    /// The answer was not the JSON the connector expects.
    #[error("the answer is not usable: {reason}{}", body_excerpt(.body))]
    Malformed {
        /// What was wrong with it.
        reason: String,
        /// The start of the answer's body, for the log.
        body: String,
    },
}

impl Error {
    /// Whether asking again soon may succeed (timeouts, connection failures, HTTP 408, 429
    /// and 5xx, bodies cut short). Other HTTP statuses (404, 401...) need a fix by the user.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Connect(_) | Self::Malformed { .. } => true,
            Self::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
        }
    }
}

/// At most this many characters of an answer's body go into a message.
const BODY_EXCERPT_CHARS: usize = 200;

fn body_excerpt(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let mut excerpt: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
    if excerpt.len() < body.len() {
        excerpt.push_str("...");
    }
    format!(" (body: {excerpt})")
}

/// Shortens `body` for keeping inside an [`Error`].
pub(crate) fn excerpt(body: &str) -> String {
    body.chars().take(BODY_EXCERPT_CHARS + 1).collect()
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_the_ones_worth_retrying() {
        let timeout = Error::Timeout {
            timeout_ms: 5,
            option: "request.timeout.ms",
        };
        assert!(timeout.is_transient());
        assert_eq!(
            timeout.to_string(),
            "no answer within 5 ms (request.timeout.ms); check that the server is up and \
             answers at that address, or raise request.timeout.ms"
        );
        assert!(Error::Connect("refused".into()).is_transient());
        for status in [408, 429, 500, 502, 503] {
            let e = Error::Status {
                status,
                body: String::new(),
            };
            assert!(e.is_transient(), "{status}");
        }
        for status in [400, 401, 403, 404] {
            let e = Error::Status {
                status,
                body: String::new(),
            };
            assert!(!e.is_transient(), "{status}");
        }
    }

    #[test]
    fn messages_show_the_start_of_the_body() {
        let e = Error::Status {
            status: 503,
            body: excerpt(&"x".repeat(1000)),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("the server answered HTTP 503 (body: xxx"),
            "{text}"
        );
        assert!(text.ends_with("...)"), "{text}");
        assert!(text.len() < 300, "{text}");
    }
}
