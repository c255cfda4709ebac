//! Shared test helpers: task harness, recording reporters, record builders, and servers
//! placed in front of osmem-server (authentication with Elasticsearch's real 401 answers,
//! TLS, injected 429s).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use parking_lot::Mutex;
use serde_json::{json, Value as Json};
use sluice_connector_elasticsearch::ElasticsearchSinkTask;
use sluice_sdk::connector::ErrantRecordReporter;
use sluice_sdk::{
    async_trait, Decimal, Error, Field, Schema, SchemaRef, SinkRecord, SinkTask, SinkTaskContext,
    Struct, TaskStatusReporter, TimestampType, Value,
};

/// Waits until `check` is true, polling, or panics after `timeout` naming `what`.
pub(crate) async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Records errant reports; tolerates them (`errors.tolerance=all`) or not.
#[derive(Debug)]
pub(crate) struct RecordingReporter {
    tolerate: bool,
    reports: Mutex<Vec<(SinkRecord, String)>>,
}

impl RecordingReporter {
    pub(crate) fn new(tolerate: bool) -> Arc<Self> {
        Arc::new(Self {
            tolerate,
            reports: Mutex::new(Vec::new()),
        })
    }

    /// `(offset, error message)` of every report, in order.
    pub(crate) fn reports(&self) -> Vec<(i64, String)> {
        self.reports
            .lock()
            .iter()
            .map(|(r, e)| (r.kafka_offset, e.clone()))
            .collect()
    }
}

#[async_trait]
impl ErrantRecordReporter for RecordingReporter {
    async fn report(&self, record: &SinkRecord, error: &Error) -> sluice_sdk::Result<()> {
        self.reports
            .lock()
            .push((record.clone(), error.to_string()));
        if self.tolerate {
            Ok(())
        } else {
            Err(Error::fatal(format!(
                "tolerance exceeded in error handler: {error}"
            )))
        }
    }
}

/// Records the problems a task reports.
#[derive(Debug, Default)]
pub(crate) struct RecordingStatus {
    problems: Mutex<Vec<Option<String>>>,
}

impl RecordingStatus {
    pub(crate) fn all(&self) -> Vec<Option<String>> {
        self.problems.lock().clone()
    }

    /// The problem reported last (`None` when none or cleared).
    pub(crate) fn current(&self) -> Option<String> {
        self.problems.lock().last().cloned().flatten()
    }
}

impl TaskStatusReporter for RecordingStatus {
    fn report_problem(&self, problem: Option<String>) {
        self.problems.lock().push(problem);
    }
}

/// A started task with its reporters.
pub(crate) struct Harness {
    pub(crate) task: ElasticsearchSinkTask,
    pub(crate) errant: Arc<RecordingReporter>,
    pub(crate) status: Arc<RecordingStatus>,
}

pub(crate) fn props(url: &str, pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut props: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    props
        .entry("connection.url".into())
        .or_insert_with(|| url.to_string());
    props
}

/// Starts a task for `url` with `pairs`; `tolerate` is `errors.tolerance=all`.
pub(crate) async fn try_start(
    url: &str,
    pairs: &[(&str, &str)],
    tolerate: bool,
) -> Result<Harness, (Error, Arc<RecordingStatus>)> {
    let errant = RecordingReporter::new(tolerate);
    let status = Arc::new(RecordingStatus::default());
    let ctx = SinkTaskContext::new(
        "es-test",
        0,
        props(url, pairs),
        errant.clone(),
        status.clone(),
    );
    let mut task = ElasticsearchSinkTask::new();
    match task.start(ctx).await {
        Ok(()) => Ok(Harness {
            task,
            errant,
            status,
        }),
        Err(e) => Err((e, status)),
    }
}

pub(crate) async fn start(url: &str, pairs: &[(&str, &str)], tolerate: bool) -> Harness {
    match try_start(url, pairs, tolerate).await {
        Ok(h) => h,
        Err((e, _)) => panic!("task did not start: {e}"),
    }
}

/// The schema of the `orders` test records.
pub(crate) fn order_schema() -> SchemaRef {
    Arc::new(
        Schema::struct_of(vec![
            Field::new("id", Schema::int64()),
            Field::new("customer", Schema::string()),
            Field::new("total", Schema::decimal(2)),
            Field::new("placed", Schema::timestamp()),
            Field::new("status", Schema::string().optional()),
        ])
        .named("orders"),
    )
}

/// An order value: total `id`.25, placed `id` seconds after 2024-01-01.
pub(crate) fn order(id: i64, status: &str) -> Value {
    Value::Struct(
        Struct::new()
            .with("id", id)
            .with("customer", format!("customer-{id}"))
            .with(
                "total",
                Decimal::parse(&format!("{id}.25")).unwrap().into_value(),
            )
            .with("placed", 1_704_067_200_000i64 + id * 1000)
            .with("status", status.to_string()),
    )
}

/// A record keyed by `id` (int64 key schema).
pub(crate) fn record(
    topic: &str,
    offset: i64,
    id: i64,
    value: Value,
    schema: Option<SchemaRef>,
) -> SinkRecord {
    SinkRecord {
        topic: topic.into(),
        kafka_partition: 0,
        kafka_offset: offset,
        key_schema: Some(Arc::new(Schema::int64())),
        key: Value::Int64(id),
        value_schema: if value.is_null() { None } else { schema },
        value,
        timestamp: Some(1_704_067_200_000),
        timestamp_type: TimestampType::CreateTime,
        headers: Vec::new(),
    }
}

/// An order record with offset = id.
pub(crate) fn order_record(topic: &str, id: i64, status: &str) -> SinkRecord {
    record(topic, id, id, order(id, status), Some(order_schema()))
}

/// A port nothing listens on.
pub(crate) fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Credentials a [`GatewayServer`] accepts.
#[derive(Debug, Clone, Default)]
pub(crate) struct Credentials {
    /// `user:password` for basic auth.
    pub(crate) basic: Option<(String, String)>,
    /// The base64 `id:key` of an API key.
    pub(crate) api_key: Option<String>,
}

#[derive(Debug)]
struct GatewayState {
    upstream: String,
    credentials: Credentials,
    http: reqwest::Client,
    /// `_bulk` requests still to answer with HTTP 429 as a whole.
    reject_bulk_requests: AtomicUsize,
    /// Items to mark as 429 in the next `_bulk` answer (the documents were written anyway).
    reject_items_once: AtomicUsize,
    bulk_requests: AtomicUsize,
}

/// An HTTP server in front of osmem-server that does what osmem does not: checks
/// credentials the way Elasticsearch's security layer does (same 401 answer), and injects
/// 429 rejections.
#[derive(Debug)]
pub(crate) struct GatewayServer {
    pub(crate) url: String,
    state: Arc<GatewayState>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for GatewayServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl GatewayServer {
    pub(crate) async fn start(upstream: &str, credentials: Credentials) -> Self {
        let state = Arc::new(GatewayState {
            upstream: upstream.to_string(),
            credentials,
            http: reqwest::Client::new(),
            reject_bulk_requests: AtomicUsize::new(0),
            reject_items_once: AtomicUsize::new(0),
            bulk_requests: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, state, server }
    }

    pub(crate) fn reject_bulk_requests(&self, n: usize) {
        self.state.reject_bulk_requests.store(n, Ordering::SeqCst);
    }

    pub(crate) fn reject_items_once(&self, n: usize) {
        self.state.reject_items_once.store(n, Ordering::SeqCst);
    }

    pub(crate) fn bulk_requests(&self) -> usize {
        self.state.bulk_requests.load(Ordering::SeqCst)
    }
}

fn authorized(credentials: &Credentials, headers: &HeaderMap) -> Result<(), String> {
    use base64::Engine;
    if credentials.basic.is_none() && credentials.api_key.is_none() {
        return Ok(());
    }
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err("missing authentication credentials for REST request [/]".into());
    };
    if let (Some(token), Some((user, password))) = (auth.strip_prefix("Basic "), &credentials.basic)
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|d| String::from_utf8(d).ok())
            .unwrap_or_default();
        let (given_user, given_password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        if given_user == user && given_password == password {
            return Ok(());
        }
        return Err(format!(
            "unable to authenticate user [{given_user}] for REST request [/_bulk]"
        ));
    }
    if let (Some(key), Some(expected)) = (auth.strip_prefix("ApiKey "), &credentials.api_key) {
        if key == expected {
            return Ok(());
        }
        return Err("unable to authenticate with provided credentials and anonymous access is not allowed for this request".into());
    }
    Err("unable to authenticate with provided credentials".into())
}

fn json_response(status: StatusCode, body: &Json) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn forward(State(state): State<Arc<GatewayState>>, request: Request) -> Response {
    if let Err(reason) = authorized(&state.credentials, request.headers()) {
        // Elasticsearch's security layer answers exactly like this.
        let body = json!({
            "error": {
                "root_cause": [{"type": "security_exception", "reason": reason,
                    "header": {"WWW-Authenticate": ["Basic realm=\"security\" charset=\"UTF-8\"", "ApiKey"]}}],
                "type": "security_exception", "reason": reason,
                "header": {"WWW-Authenticate": ["Basic realm=\"security\" charset=\"UTF-8\"", "ApiKey"]}
            },
            "status": 401
        });
        let mut response = json_response(StatusCode::UNAUTHORIZED, &body);
        response.headers_mut().insert(
            "www-authenticate",
            HeaderValue::from_static("Basic realm=\"security\" charset=\"UTF-8\""),
        );
        return response;
    }
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let is_bulk = parts.uri.path().ends_with("/_bulk");
    if is_bulk {
        state.bulk_requests.fetch_add(1, Ordering::SeqCst);
        if state
            .reject_bulk_requests
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            let body = json!({"error": {"type": "es_rejected_execution_exception",
                "reason": "rejected execution of coordinating operation"}, "status": 429});
            return json_response(StatusCode::TOO_MANY_REQUESTS, &body);
        }
    }
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut upstream = state
        .http
        .request(parts.method.clone(), format!("{}{path}", state.upstream))
        .body(body.to_vec());
    for name in ["content-type", "content-encoding"] {
        if let Some(v) = parts.headers.get(name) {
            upstream = upstream.header(name, v.as_bytes());
        }
    }
    let answer = match upstream.send().await {
        Ok(answer) => answer,
        Err(e) => {
            return (
                StatusCode::BAD_GATEWAY,
                format!("upstream unreachable: {e}"),
            )
                .into_response()
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let mut bytes = answer.bytes().await.unwrap_or_default().to_vec();
    let reject = if is_bulk {
        state.reject_items_once.swap(0, Ordering::SeqCst)
    } else {
        0
    };
    if reject > 0 {
        let mut json: Json = serde_json::from_slice(&bytes).unwrap();
        json["errors"] = Json::Bool(true);
        if let Some(items) = json["items"].as_array_mut() {
            for item in items.iter_mut().take(reject) {
                if let Some(result) = item.as_object_mut().and_then(|o| o.values_mut().next()) {
                    *result = json!({"status": 429, "error": {"type": "es_rejected_execution_exception",
                        "reason": "rejected execution of primary operation"}});
                }
            }
        }
        bytes = serde_json::to_vec(&json).unwrap();
    }
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(bytes))
        .unwrap()
}

/// A CA and a server certificate for 127.0.0.1 signed by it.
pub(crate) struct TestPki {
    pub(crate) ca_pem: String,
    pub(crate) server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub(crate) server_key: rustls::pki_types::PrivateKeyDer<'static>,
}

pub(crate) fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sluice test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_params =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();
    TestPki {
        ca_pem: ca.pem(),
        server_chain: vec![server.der().clone()],
        server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(
            rustls::pki_types::PrivatePkcs8KeyDer::from(server_key.serialize_der()),
        ),
    }
}

/// Terminates TLS with `pki`'s server certificate and passes the bytes on to `upstream`.
pub(crate) struct TlsTerminator {
    pub(crate) addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TlsTerminator {
    pub(crate) async fn start(pki: &TestPki, upstream: SocketAddr) -> Self {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Self { addr, server }
    }
}
