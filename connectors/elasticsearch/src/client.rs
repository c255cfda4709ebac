//! The HTTP client: endpoints, authentication, TLS, and the few REST calls the sink makes.
//!
//! Requests go to the `connection.url` endpoints in turn; an endpoint that cannot be reached
//! is skipped for a while so the others take the load.
//!
//! # Deadlines
//! Every request has two: `connection.timeout.ms` for the TCP connect and TLS handshake, and
//! `read.timeout.ms` from sending the request to the start of the answer, then between reads
//! of its body. A request that misses one fails with [`Error::TimedOut`] naming the option,
//! which is retriable: the writer retries it and reports the outage in the task status.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::Value as Json;
use tracing::{debug, info};

use crate::bulk::{error_body_text, error_body_type, BulkResponse, BULK_FILTER_PATH};
use crate::cluster::{detect, ClusterInfo};
use crate::config::{ElasticsearchSinkConfig, SSL_KEYSTORE_LOCATION, SSL_TRUSTSTORE_LOCATION};
use crate::error::{error_chain, transport_error, Deadlines, Error, Result};

/// How long an endpoint that could not be reached is skipped.
const ENDPOINT_QUARANTINE: Duration = Duration::from_secs(5);

const NDJSON: &str = "application/x-ndjson";
const JSON: &str = "application/json";

/// A client for one cluster.
#[derive(Debug)]
pub struct EsClient {
    http: reqwest::Client,
    urls: Vec<String>,
    next: AtomicUsize,
    down_until: Mutex<Vec<Option<Instant>>>,
    authorization: Option<HeaderValue>,
    auth_hint: String,
    compression: bool,
    deadlines: Deadlines,
}

/// An answer with its status and body.
#[derive(Debug)]
struct Answer {
    url: String,
    status: StatusCode,
    body: Bytes,
}

impl EsClient {
    /// A client for the endpoints, credentials and TLS settings of `config`.
    ///
    /// # Errors
    /// [`sluice_sdk::Error::Config`] when a TLS file cannot be read or parsed.
    pub fn new(config: &ElasticsearchSinkConfig) -> sluice_sdk::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!(
                "sluice-elasticsearch-sink/",
                env!("CARGO_PKG_VERSION")
            ))
            .tcp_nodelay(true)
            .pool_max_idle_per_host(config.max_in_flight.max(1) * 2)
            .pool_idle_timeout(config.max_idle);
        if !config.connection_timeout.is_zero() {
            builder = builder.connect_timeout(config.connection_timeout);
        }
        if !config.read_timeout.is_zero() {
            builder = builder.read_timeout(config.read_timeout);
        }
        if let Some(path) = &config.tls.truststore {
            let pem = std::fs::read(path).map_err(|e| {
                sluice_sdk::Error::config(
                    SSL_TRUSTSTORE_LOCATION,
                    format!("cannot read '{}': {e}", path.display()),
                )
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                sluice_sdk::Error::config(
                    SSL_TRUSTSTORE_LOCATION,
                    format!("'{}' is not a PEM certificate file: {e}", path.display()),
                )
            })?;
            if certs.is_empty() {
                return Err(sluice_sdk::Error::config(
                    SSL_TRUSTSTORE_LOCATION,
                    format!(
                        "'{}' holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                        path.display()
                    ),
                ));
            }
            builder = builder.tls_built_in_root_certs(false);
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        if let Some(path) = &config.tls.keystore {
            let pem = std::fs::read(path).map_err(|e| {
                sluice_sdk::Error::config(
                    SSL_KEYSTORE_LOCATION,
                    format!("cannot read '{}': {e}", path.display()),
                )
            })?;
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                sluice_sdk::Error::config(
                    SSL_KEYSTORE_LOCATION,
                    format!(
                        "'{}' must hold an unencrypted PEM private key and its certificate \
                         chain: {e}",
                        path.display()
                    ),
                )
            })?;
            builder = builder.identity(identity);
        }
        if !config.tls.verify_hostname {
            builder = builder.danger_accept_invalid_hostnames(true);
        }
        let http = builder.build().map_err(|e| {
            sluice_sdk::Error::fatal(format!("cannot build the HTTP client: {}", error_chain(&e)))
        })?;

        let authorization = match (&config.basic_auth, &config.api_key) {
            (Some((user, password)), _) => {
                use base64::Engine;
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                Some(format!("Basic {token}"))
            }
            (None, Some(key)) => Some(format!("ApiKey {key}")),
            (None, None) => None,
        }
        .map(|value| {
            let mut header = HeaderValue::from_str(&value).map_err(|_| {
                sluice_sdk::Error::config(
                    crate::config::CONNECTION_PASSWORD,
                    "contains characters that cannot be sent in an HTTP header",
                )
            })?;
            header.set_sensitive(true);
            Ok::<_, sluice_sdk::Error>(header)
        })
        .transpose()?;

        Ok(Self {
            http,
            down_until: Mutex::new(vec![None; config.urls.len()]),
            urls: config.urls.clone(),
            next: AtomicUsize::new(0),
            authorization,
            auth_hint: Error::authentication_hint(
                config.basic_auth.is_some(),
                config.api_key.is_some(),
            ),
            compression: config.compression,
            deadlines: Deadlines {
                connect: config.connection_timeout,
                read: config.read_timeout,
            },
        })
    }

    /// The configured endpoints.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    /// Picks the next endpoint, skipping those recently found unreachable (unless all are).
    fn pick_endpoint(&self) -> usize {
        let n = self.urls.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let down = self.down_until.lock();
        (0..n)
            .map(|i| (start + i) % n)
            .find(|&i| down[i].is_none_or(|until| until <= now))
            .unwrap_or(start % n)
    }

    fn mark_endpoint(&self, endpoint: usize, reachable: bool) {
        let mut down = self.down_until.lock();
        down[endpoint] = if reachable {
            None
        } else {
            Some(Instant::now() + ENDPOINT_QUARANTINE)
        };
    }

    fn url_for(&self, base: &str, segments: &[&str], query: Option<&str>) -> Result<reqwest::Url> {
        let mut url = reqwest::Url::parse(base)
            .map_err(|e| Error::Setup(format!("bad URL '{base}': {e}")))?;
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| Error::Setup(format!("'{base}' cannot be a base URL")))?;
            path.pop_if_empty();
            for segment in segments {
                path.push(segment);
            }
            if segments.is_empty() {
                path.push("");
            }
        }
        url.set_query(query);
        Ok(url)
    }

    /// Sends one request to the next endpoint; any HTTP answer is `Ok`.
    async fn send(
        &self,
        method: Method,
        segments: &[&str],
        query: Option<&str>,
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<Answer> {
        let endpoint = self.pick_endpoint();
        let base = &self.urls[endpoint];
        let url = self.url_for(base, segments, query)?;
        let mut request = self.http.request(method, url);
        if let Some(auth) = &self.authorization {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        if let Some((bytes, content_type)) = body {
            request = request.header(CONTENT_TYPE, content_type);
            if self.compression {
                request = request
                    .header(CONTENT_ENCODING, "gzip")
                    .body(gzip(&bytes).map_err(|e| Error::Setup(format!("gzip failed: {e}")))?);
            } else {
                request = request.body(bytes);
            }
        }
        let unreachable = |e: reqwest::Error| transport_error(base, &e, self.deadlines);
        let answer = async {
            let response = request.send().await.map_err(unreachable)?;
            let status = response.status();
            let body = response.bytes().await.map_err(unreachable)?;
            Ok(Answer {
                url: base.clone(),
                status,
                body,
            })
        }
        .await;
        self.mark_endpoint(endpoint, answer.is_ok());
        answer
    }

    /// The error for an answer with an error status.
    fn status_error(&self, method: &Method, path: &str, answer: &Answer) -> Error {
        let reason = error_body_text(&answer.body);
        let status = answer.status.as_u16();
        match status {
            401 => Error::Authentication {
                url: answer.url.clone(),
                reason,
                hint: self.auth_hint.clone(),
            },
            403 if error_body_type(&answer.body) == "security_exception" => Error::Forbidden {
                url: answer.url.clone(),
                method: method.to_string(),
                path: path.to_string(),
                reason,
            },
            408 | 429 | 500..=599 => Error::Busy {
                url: answer.url.clone(),
                method: method.to_string(),
                path: path.to_string(),
                status,
                reason,
            },
            _ => Error::Rejected {
                url: answer.url.clone(),
                method: method.to_string(),
                path: path.to_string(),
                status,
                reason,
            },
        }
    }

    fn parse_json<T: serde::de::DeserializeOwned>(
        method: &Method,
        path: &str,
        answer: &Answer,
    ) -> Result<T> {
        serde_json::from_slice(&answer.body).map_err(|e| Error::UnexpectedAnswer {
            url: answer.url.clone(),
            method: method.to_string(),
            path: path.to_string(),
            detail: format!("the body is not the expected JSON ({e})"),
        })
    }

    /// Reads the root endpoint and tells what cluster answers.
    ///
    /// # Errors
    /// [`Error::Unreachable`] / [`Error::Busy`] (retriable), [`Error::Authentication`], or
    /// [`Error::Unsupported`] for a cluster older than Elasticsearch 7 or not a cluster at all.
    /// A 403 (an API key without the `monitor` privilege) is not an error: the cluster is then
    /// assumed to speak the Elasticsearch 8 API.
    pub async fn cluster_info(&self) -> Result<Option<ClusterInfo>> {
        let method = Method::GET;
        let answer = self.send(method.clone(), &[], None, None).await?;
        if answer.status == StatusCode::FORBIDDEN {
            info!(url = %answer.url, "not allowed to read the cluster version (HTTP 403); assuming a current Elasticsearch API");
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(self.status_error(&method, "/", &answer));
        }
        let root: Json = Self::parse_json(&method, "/", &answer)?;
        detect(&root).map(Some).map_err(|detail| {
            if detail.contains("not supported") {
                Error::Unsupported(format!("{} answers: {detail}", answer.url))
            } else {
                Error::UnexpectedAnswer {
                    url: answer.url.clone(),
                    method: method.to_string(),
                    path: "/".into(),
                    detail,
                }
            }
        })
    }

    /// Sends a `_bulk` request whose NDJSON body is `body`.
    ///
    /// # Errors
    /// The whole request failed (see [`Error`]); per-item failures are in the answer.
    pub async fn bulk(&self, body: Vec<u8>) -> Result<BulkResponse> {
        let method = Method::POST;
        let answer = self
            .send(
                method.clone(),
                &["_bulk"],
                Some(BULK_FILTER_PATH),
                Some((body, NDJSON)),
            )
            .await?;
        if !answer.status.is_success() {
            return Err(self.status_error(&method, "/_bulk", &answer));
        }
        Self::parse_json(&method, "/_bulk", &answer)
    }

    /// Makes sure `index` exists, and, when `mapping` is given and the index has no mapping
    /// yet, puts it (as Confluent's sink does: an existing mapping is left alone).
    ///
    /// # Errors
    /// See [`Error`].
    pub async fn ensure_index(&self, index: &str, mapping: Option<&Json>) -> Result<()> {
        let path = format!("/{index}");
        let head = self.send(Method::HEAD, &[index], None, None).await?;
        let exists = match head.status {
            s if s.is_success() => true,
            StatusCode::NOT_FOUND => false,
            _ => return Err(self.status_error(&Method::HEAD, &path, &head)),
        };
        if !exists {
            let body = match mapping {
                Some(m) => serde_json::json!({ "mappings": m }),
                None => serde_json::json!({}),
            };
            let created = self
                .send(
                    Method::PUT,
                    &[index],
                    None,
                    Some((body.to_string().into_bytes(), JSON)),
                )
                .await?;
            if created.status.is_success() {
                info!(index, with_mapping = mapping.is_some(), "created index");
                return Ok(());
            }
            if error_body_type(&created.body) != "resource_already_exists_exception" {
                return Err(self.status_error(&Method::PUT, &path, &created));
            }
            debug!(index, "index created concurrently");
        }
        let Some(mapping) = mapping else {
            return Ok(());
        };
        let mapping_path = format!("/{index}/_mapping");
        let current = self
            .send(Method::GET, &[index, "_mapping"], None, None)
            .await?;
        if !current.status.is_success() {
            return Err(self.status_error(&Method::GET, &mapping_path, &current));
        }
        let current: Json = Self::parse_json(&Method::GET, &mapping_path, &current)?;
        // The answer is keyed by the concrete index name (which differs for an alias).
        let has_properties = current
            .as_object()
            .and_then(|m| m.values().next())
            .and_then(|i| i.get("mappings"))
            .and_then(|m| m.get("properties"))
            .and_then(Json::as_object)
            .is_some_and(|p| !p.is_empty());
        if has_properties {
            debug!(index, "index already has a mapping; leaving it");
            return Ok(());
        }
        let put = self
            .send(
                Method::PUT,
                &[index, "_mapping"],
                None,
                Some((mapping.to_string().into_bytes(), JSON)),
            )
            .await?;
        if !put.status.is_success() {
            return Err(self.status_error(&Method::PUT, &mapping_path, &put));
        }
        info!(index, "put mapping from the record schema");
        Ok(())
    }
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 4),
        flate2::Compression::fast(),
    );
    encoder.write_all(bytes)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn client(urls: &str) -> EsClient {
        let props = BTreeMap::from([("connection.url".to_string(), urls.to_string())]);
        EsClient::new(&ElasticsearchSinkConfig::parse(&props).unwrap()).unwrap()
    }

    #[test]
    fn paths_are_encoded_under_the_base_path() {
        let c = client("http://es:9200/prefix/");
        let url = c
            .url_for("http://es:9200/prefix", &["my index", "_mapping"], None)
            .unwrap();
        assert_eq!(url.as_str(), "http://es:9200/prefix/my%20index/_mapping");
        let root = c.url_for("http://es:9200", &[], None).unwrap();
        assert_eq!(root.as_str(), "http://es:9200/");
        let bulk = c
            .url_for("http://es:9200", &["_bulk"], Some(BULK_FILTER_PATH))
            .unwrap();
        assert!(bulk
            .as_str()
            .starts_with("http://es:9200/_bulk?filter_path="));
    }

    #[test]
    fn unreachable_endpoints_are_skipped_while_others_answer() {
        let c = client("http://a:9200,http://b:9200");
        c.mark_endpoint(0, false);
        for _ in 0..4 {
            assert_eq!(c.pick_endpoint(), 1);
        }
        c.mark_endpoint(1, false);
        // All down: still try them in turn.
        let picks: Vec<usize> = (0..4).map(|_| c.pick_endpoint()).collect();
        assert!(picks.contains(&0) && picks.contains(&1), "{picks:?}");
        c.mark_endpoint(0, true);
        assert_eq!(c.pick_endpoint(), 0);
    }

    #[test]
    fn missing_truststore_content_is_named() {
        let dir = std::env::temp_dir().join(format!("sluice-es-ca-{}", std::process::id()));
        std::fs::write(&dir, "not a certificate").unwrap();
        let props = BTreeMap::from([
            ("connection.url".to_string(), "https://es:9200".to_string()),
            (
                "elastic.https.ssl.truststore.location".to_string(),
                dir.display().to_string(),
            ),
        ]);
        let err = EsClient::new(&ElasticsearchSinkConfig::parse(&props).unwrap())
            .unwrap_err()
            .to_string();
        std::fs::remove_file(&dir).ok();
        assert!(
            err.contains("option 'elastic.https.ssl.truststore.location'"),
            "{err}"
        );
    }
}
