//! The HTTP client both sources share: one request, its answer as JSON, retries with backoff.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value as Json;

use crate::budget::RequestBudget;
use crate::error::{excerpt, Error, Result};

/// The `User-Agent` of every request.
const USER_AGENT: &str = concat!("sluice/", env!("CARGO_PKG_VERSION"));

/// How often and how patiently to retry a request that failed for a passing reason.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: none).
    pub max_retries: usize,
    /// Wait before the first retry; doubles on each one, with jitter.
    pub backoff: Duration,
    /// Longest wait between two attempts.
    pub max_backoff: Duration,
}

/// One request to send.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// `GET` or `POST`.
    pub method: Method,
    /// The full URL, query included.
    pub url: Url,
    /// Extra headers (authentication...).
    pub headers: HeaderMap,
    /// The body of a `POST`.
    pub body: Option<String>,
}

impl RequestSpec {
    /// A `GET` of `url` with no extra header.
    pub fn get(url: Url) -> Self {
        Self {
            method: Method::GET,
            url,
            headers: HeaderMap::new(),
            body: None,
        }
    }
}

/// Sends requests, each within a timeout, and reads their answers as JSON.
///
/// The timeout bounds the whole exchange (connect, TLS, request, the full answer), so a
/// server that accepts the connection and never answers costs one timeout per attempt, never
/// more; the error names the option that sets it.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    timeout: Duration,
    timeout_option: &'static str,
    budget: Arc<RequestBudget>,
}

impl HttpClient {
    /// A client whose requests each take at most `timeout` (set by option `timeout_option`)
    /// and are counted against `budget`.
    ///
    /// # Errors
    /// [`Error::Connect`] when the TLS stack cannot be set up.
    pub fn new(
        timeout: Duration,
        timeout_option: &'static str,
        budget: Arc<RequestBudget>,
    ) -> Result<Self> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| Error::Connect(e.without_url().to_string()))?;
        Ok(Self {
            client,
            timeout,
            timeout_option,
            budget,
        })
    }

    /// The budget requests are counted against.
    pub fn budget(&self) -> &RequestBudget {
        &self.budget
    }

    /// Sends `spec` once (after waiting for the budget) and parses the answer as JSON.
    ///
    /// # Errors
    /// Why there is no JSON answer; see [`Error::is_transient`].
    pub async fn fetch_json(&self, spec: &RequestSpec) -> Result<Json> {
        self.budget.acquire().await;
        let mut request = self
            .client
            .request(spec.method.clone(), spec.url.clone())
            .headers(spec.headers.clone());
        if let Some(body) = &spec.body {
            request = request.body(body.clone());
        }
        let response = request.send().await.map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(e))?;
        let text = String::from_utf8_lossy(&body);
        if !status.is_success() {
            return Err(Error::Status {
                status: status.as_u16(),
                body: excerpt(&text),
            });
        }
        serde_json::from_slice(&body).map_err(|e| Error::Malformed {
            reason: format!("not JSON ({e})"),
            body: excerpt(&text),
        })
    }

    /// [`fetch_json`](Self::fetch_json), retrying transient failures per `policy`; `what`
    /// names the request in the logs.
    ///
    /// # Errors
    /// The last failure once retries are used up, or the first one that is not transient.
    pub async fn fetch_json_with_retry(
        &self,
        spec: &RequestSpec,
        policy: RetryPolicy,
        what: &str,
    ) -> Result<Json> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(policy.backoff)
            .with_max_delay(policy.max_backoff.max(policy.backoff))
            .with_max_times(policy.max_retries)
            .with_jitter();
        (|| self.fetch_json(spec))
            .retry(backoff)
            .when(Error::is_transient)
            .notify(|error, wait| {
                tracing::warn!(
                    request = what,
                    error = %error,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                    "request failed; retrying"
                );
            })
            .await
    }

    fn transport_error(&self, error: reqwest::Error) -> Error {
        if error.is_timeout() {
            Error::Timeout {
                timeout_ms: u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
                option: self.timeout_option,
            }
        } else {
            // The URL may hold an API key: keep it out of messages.
            let error = error.without_url();
            let mut text = error.to_string();
            let mut source = std::error::Error::source(&error);
            while let Some(cause) = source {
                text.push_str(": ");
                text.push_str(&cause.to_string());
                source = cause.source();
            }
            Error::Connect(text)
        }
    }
}

/// Parses `Name: value` header lines separated by `separator` (Confluent's
/// `http.request.headers` format).
///
/// # Errors
/// A message completing "option 'x' ..." naming the bad header.
pub fn parse_headers(text: &str, separator: &str) -> std::result::Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for entry in text
        .split(separator)
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (name, value) = entry.split_once(':').ok_or_else(|| {
            format!("has a header without ':' ('{entry}'); write headers as 'Name: value' separated by '{separator}'")
        })?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("has an invalid header name '{}'", name.trim()))?;
        let mut value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("has an invalid value for header '{name}'"))?;
        value.set_sensitive(true);
        headers.append(name, value);
    }
    Ok(headers)
}

/// `url` with the values of query parameters that look secret (API keys, tokens) replaced by
/// `***`, for logs.
pub fn redact_url(url: &Url) -> String {
    const SECRET_HINTS: [&str; 5] = ["key", "token", "secret", "password", "signature"];
    if url.query().is_none() {
        return url.to_string();
    }
    let mut redacted = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let lower = k.to_ascii_lowercase();
            let secret = SECRET_HINTS.iter().any(|hint| lower.contains(hint));
            (
                k.into_owned(),
                if secret {
                    "***".to_string()
                } else {
                    v.into_owned()
                },
            )
        })
        .collect();
    redacted.query_pairs_mut().clear().extend_pairs(pairs);
    redacted.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_parse_in_confluent_format() {
        let h = parse_headers("Authorization: Bearer abc | Accept:application/json", "|").unwrap();
        assert_eq!(h["authorization"], "Bearer abc");
        assert_eq!(h["accept"], "application/json");
        assert!(h["authorization"].is_sensitive());
        let err = parse_headers("Authorization Bearer", "|").unwrap_err();
        assert!(err.contains("'Name: value'"), "{err}");
        let err = parse_headers("Bad Name: x", "|").unwrap_err();
        assert!(err.contains("invalid header name 'Bad Name'"), "{err}");
    }

    #[test]
    fn secrets_are_redacted_from_urls() {
        let url = Url::parse("https://api.example/query?function=GLOBAL_QUOTE&symbol=IBM&apikey=s3cret&access_token=t").unwrap();
        let shown = redact_url(&url);
        assert!(
            !shown.contains("s3cret") && !shown.contains("=t"),
            "{shown}"
        );
        assert!(
            shown.contains("symbol=IBM") && shown.contains("apikey=***"),
            "{shown}"
        );
        let plain = Url::parse("http://h/x").unwrap();
        assert_eq!(redact_url(&plain), "http://h/x");
    }
}
