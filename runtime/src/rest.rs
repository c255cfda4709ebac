//! The REST API, compatible with Kafka Connect's: the same paths, bodies, status codes and
//! `{"error_code": ..., "message": ...}` errors. Connectors created here are stored in the
//! config topic and survive restarts; connectors defined by files in `configs/` are owned by
//! their files (REST may pause, resume, stop and restart them, but not change or delete them).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use sluice_sdk::{ConfigDef, ConfigKey, ConnectorKind, Props};
use tracing::{info, warn, Instrument};

use crate::connector_config::{common_def, sink_def, CONNECTOR_CLASS, NAME};
use crate::error::Error;
use crate::herder::{group, ConnectorInfo, Health, Herder, Origin, WriteRoute};
use crate::status::ConnectorStatusView;
use crate::task::TargetState;

/// A REST error in Kafka Connect's shape.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Forbidden(_) => StatusCode::FORBIDDEN,
            Error::InvalidConfig(_) | Error::Settings(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error_code": self.status.as_u16(), "message": self.message})),
        )
            .into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;
type AppState = Arc<Herder>;

/// The router serving the REST API for `worker`.
pub fn router(worker: Arc<Herder>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/connectors", get(list_connectors).post(create_connector))
        .route(
            "/connectors/{name}",
            get(get_connector).delete(delete_connector),
        )
        .route(
            "/connectors/{name}/config",
            get(get_config).put(put_config).patch(patch_config),
        )
        .route("/connectors/{name}/status", get(get_status))
        .route(
            "/connectors/{name}/tasks",
            get(get_tasks).post(put_task_configs),
        )
        .route(
            "/connectors/{name}/tasks/{task}/status",
            get(get_task_status),
        )
        .route(
            "/connectors/{name}/tasks/{task}/restart",
            post(restart_task),
        )
        .route("/connectors/{name}/restart", post(restart_connector))
        .route("/connectors/{name}/pause", put(pause_connector))
        .route("/connectors/{name}/resume", put(resume_connector))
        .route("/connectors/{name}/stop", put(stop_connector))
        .route(
            "/connectors/{name}/offsets",
            get(get_offsets).patch(patch_offsets).delete(delete_offsets),
        )
        .route("/connectors/{name}/topics", get(get_topics))
        .route("/connectors/{name}/topics/reset", put(reset_topics))
        .route("/connector-plugins", get(list_plugins))
        .route("/connector-plugins/{plugin}/config", get(plugin_config))
        .route(
            "/connector-plugins/{plugin}/config/validate",
            put(validate_config),
        )
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/admin/loggers", get(list_loggers))
        .route("/admin/loggers/{logger}", get(get_logger).put(set_logger))
        .merge(crate::console::router(&worker))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "HTTP 404 Not Found") })
        .layer(axum::middleware::from_fn_with_state(
            worker.clone(),
            forward_leader_writes,
        ))
        .layer(axum::middleware::from_fn(log_request))
        .with_state(worker)
}

/// One span and one log line per request; errors logged with their message.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::info_span!("rest", %method, %path);
    let started = Instant::now();
    let response = next.run(request).instrument(span).await;
    let status = response.status();
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if status.is_server_error() {
        warn!(%method, %path, status = status.as_u16(), elapsed_ms, "request failed");
    } else if method != axum::http::Method::GET || status.is_client_error() {
        info!(%method, %path, status = status.as_u16(), elapsed_ms, "request");
    }
    response
}

/// The largest request body forwarded to the leader.
const MAX_FORWARDED_BODY: usize = 16 << 20;

/// Whether `method path` is a write Kafka Connect lets only the leader make: `Some` with
/// the connector's name as written in the path (`None` for `POST /connectors`, whose name is
/// in the body).
fn leader_write(method: &axum::http::Method, path: &str) -> Option<Option<String>> {
    use axum::http::Method;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let leader_only = match (method, segments.as_slice()) {
        (&Method::POST, ["connectors"]) => return Some(None),
        (&Method::DELETE, ["connectors", _])
        | (&Method::PUT | &Method::PATCH, ["connectors", _, "config"])
        | (&Method::PUT, ["connectors", _, "stop"])
        | (&Method::PATCH | &Method::DELETE, ["connectors", _, "offsets"]) => true,
        _ => false,
    };
    leader_only.then(|| Some(percent_decode(segments[1])))
}

/// `%XX` sequences of a path segment decoded (malformed ones kept as written).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Kafka Connect's forwarding of leader-only writes: on a worker that does not lead its
/// group, the request goes to the leader as it came (body, content type, credentials), with
/// `forward=true` on the first hop and `forward=false` on the second; a request that still
/// misses the leader, or arrives while no leader is known, gets 409. Connectors defined by
/// this worker's configs folder are answered here (their file owns them).
async fn forward_leader_writes(
    State(worker): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(named) = leader_write(request.method(), request.uri().path()) else {
        return next.run(request).await;
    };
    let route = worker.write_route();
    if route == WriteRoute::Local {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, MAX_FORWARDED_BODY).await {
        Ok(body) => body,
        Err(e) => {
            return ApiError::bad_request(format!("cannot read the body: {e}")).into_response()
        }
    };
    let name = named.or_else(|| {
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
    });
    if name.is_some_and(|n| worker.is_file_managed(&n)) {
        return next
            .run(Request::from_parts(parts, axum::body::Body::from(body)))
            .await;
    }
    let query = parts.uri.query().map(str::to_owned);
    let forward = query_bool(&query, "forward");
    let leader = match route {
        WriteRoute::Leader(url) if forward != Some(false) => url,
        WriteRoute::Leader(_) => {
            return ApiError::new(StatusCode::CONFLICT, group::REBALANCE_IN_PROGRESS_MESSAGE)
                .into_response()
        }
        WriteRoute::Rebalancing | WriteRoute::Local => {
            return ApiError::new(StatusCode::CONFLICT, group::NO_LEADER_MESSAGE).into_response()
        }
    };
    let mut target = format!("{}{}?", leader.trim_end_matches('/'), parts.uri.path());
    for pair in query.iter().flat_map(|q| q.split('&')) {
        if !pair.is_empty() && pair.split('=').next() != Some("forward") {
            target.push_str(pair);
            target.push('&');
        }
    }
    // Kafka Connect allows two hops: the worker a user asked, then one more.
    target.push_str(if forward.is_none() {
        "forward=true"
    } else {
        "forward=false"
    });
    info!(method = %parts.method, path = %parts.uri.path(), leader = %leader, "forwarding the request to the leader");
    match forward_request(&worker, &parts, body, &target).await {
        Ok(response) => response,
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Sends `parts` with `body` to `url` and answers with what came back.
async fn forward_request(
    worker: &Herder,
    parts: &axum::http::request::Parts,
    body: axum::body::Bytes,
    url: &str,
) -> crate::error::Result<Response> {
    let settings = worker.settings();
    let client = crate::rest_security::internal_client(settings.rest_https, &settings.rest_tls)?;
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes())
        .map_err(|e| Error::Other(e.to_string()))?;
    let mut request = client
        .request(method, url)
        .timeout(std::time::Duration::from_secs(90))
        .body(body);
    for name in [
        axum::http::header::CONTENT_TYPE,
        axum::http::header::AUTHORIZATION,
    ] {
        if let Some(value) = parts.headers.get(&name) {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = request
        .send()
        .await
        .map_err(|e| Error::Other(format!("cannot reach the leader at {url}: {e}")))?;
    let status =
        StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = answer
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = answer
        .bytes()
        .await
        .map_err(|e| Error::Other(format!("the leader at {url} broke off its answer: {e}")))?;
    let mut response = (status, bytes).into_response();
    if let Some(content_type) = content_type {
        if let Ok(value) = axum::http::HeaderValue::from_str(&content_type) {
            response
                .headers_mut()
                .insert(axum::http::header::CONTENT_TYPE, value);
        }
    }
    Ok(response)
}

async fn root(State(worker): State<AppState>) -> Json<Value> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commit": "sluice",
        "kafka_cluster_id": worker.kafka_cluster_id(),
    }))
}

fn query_values(query: &Option<String>, key: &str) -> Vec<String> {
    query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .collect()
}

fn query_bool(query: &Option<String>, key: &str) -> Option<bool> {
    query_values(query, key)
        .first()
        .map(|v| v.eq_ignore_ascii_case("true"))
}

fn info_json(info: &ConnectorInfo) -> Value {
    json!({
        "name": info.name,
        "config": info.config,
        "tasks": (0..info.tasks.len()).map(|t| json!({"connector": info.name, "task": t})).collect::<Vec<_>>(),
        "type": info.kind,
    })
}

fn status_json(worker: &Herder, name: &str, view: &ConnectorStatusView) -> Value {
    let local = worker.worker_id();
    let with_worker = |s: &crate::status::Status, elsewhere: Option<&String>| {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        v["worker_id"] = json!(elsewhere.map_or(local, String::as_str));
        v
    };
    json!({
        "name": name,
        "connector": with_worker(&view.connector, view.connector_worker.as_ref()),
        "tasks": view.tasks.iter().map(|(id, s)| {
            let mut v = with_worker(s, view.task_workers.get(id));
            v["id"] = json!(id);
            v
        }).collect::<Vec<_>>(),
        "type": view.kind,
    })
}

async fn list_connectors(
    State(worker): State<AppState>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let names = worker.connector_names().await;
    let expand = query_values(&query, "expand");
    if expand.is_empty() {
        return Ok(Json(json!(names)));
    }
    let mut out = Map::new();
    for name in names {
        let mut entry = Map::new();
        if expand.iter().any(|e| e == "status") {
            if let Some(view) = worker.status(&name) {
                entry.insert("status".into(), status_json(&worker, &name, &view));
            }
        }
        if expand.iter().any(|e| e == "info") {
            if let Some(info) = worker.info(&name).await {
                entry.insert("info".into(), info_json(&info));
            }
        }
        out.insert(name, Value::Object(entry));
    }
    Ok(Json(Value::Object(out)))
}

fn props_from_json(value: &Value) -> ApiResult<Props> {
    let obj = value.as_object().ok_or_else(|| {
        ApiError::bad_request("the connector configuration must be a JSON object")
    })?;
    let mut props = Props::new();
    for (k, v) in obj {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            other => {
                return Err(ApiError::bad_request(format!(
                    "option '{k}' must be a string (got {other})"
                )))
            }
        };
        props.insert(k.clone(), text);
    }
    Ok(props)
}

async fn create_connector(
    State(worker): State<AppState>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.trim().is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "Connector name is required: {\"name\": \"...\", \"config\": {...}}",
            )
        })?
        .to_string();
    let config = body.get("config").ok_or_else(|| {
        ApiError::bad_request(
            "Connector config is required: {\"name\": \"...\", \"config\": {...}}",
        )
    })?;
    let props = props_from_json(config)?;
    worker.create_connector(&name, props).await?;
    let info = worker
        .info(&name)
        .await
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "connector vanished"))?;
    Ok((StatusCode::CREATED, Json(info_json(&info))))
}

async fn get_connector(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let info = worker.info(&name).await.ok_or_else(|| not_found(&name))?;
    Ok(Json(info_json(&info)))
}

async fn get_config(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let info = worker.info(&name).await.ok_or_else(|| not_found(&name))?;
    Ok(Json(json!(info.config)))
}

async fn put_config(
    State(worker): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let props = props_from_json(&body)?;
    let created = worker.put_connector(&name, props, Origin::Rest).await?;
    let info = worker.info(&name).await.ok_or_else(|| not_found(&name))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(info_json(&info))))
}

async fn patch_config(
    State(worker): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let patch = body
        .as_object()
        .ok_or_else(|| ApiError::bad_request("the patch must be a JSON object"))?;
    let info = worker.info(&name).await.ok_or_else(|| not_found(&name))?;
    let mut props = info.config;
    for (k, v) in patch {
        match v {
            Value::Null => {
                props.remove(k);
            }
            other => {
                let one = props_from_json(&json!({ k: other }))?;
                props.extend(one);
            }
        }
    }
    worker.put_connector(&name, props, Origin::Rest).await?;
    let info = worker.info(&name).await.ok_or_else(|| not_found(&name))?;
    Ok(Json(info_json(&info)))
}

async fn delete_connector(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    worker.delete_connector(&name, &Origin::Rest).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_status(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let view = worker.status(&name).ok_or_else(|| not_found(&name))?;
    Ok(Json(status_json(&worker, &name, &view)))
}

async fn get_tasks(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let info = worker.info(&name).await.ok_or_else(|| not_found(&name))?;
    Ok(Json(json!(info
        .tasks
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"id": {"connector": name, "task": i}, "config": c}))
        .collect::<Vec<_>>())))
}

/// Kafka Connect's internal `POST /connectors/{c}/tasks`: a member hands the task
/// configurations its connector instance generated to the leader, which writes them.
async fn put_task_configs(
    State(worker): State<AppState>,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header(crate::cluster::session::ALGORITHM_HEADER)
        .zip(header(crate::cluster::session::SIGNATURE_HEADER));
    worker.verify_internal_request(signature, &body)?;
    let configs: Vec<Props> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not a JSON list of task configurations: {e}"
        ))
    })?;
    worker.receive_task_configs(&name, configs).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_task_status(
    State(worker): State<AppState>,
    Path((name, task)): Path<(String, u32)>,
) -> ApiResult<Json<Value>> {
    let view = worker.status(&name).ok_or_else(|| not_found(&name))?;
    let status = view.tasks.get(&task).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Task {name}-{task} not found"),
        )
    })?;
    let mut v = serde_json::to_value(status).unwrap_or_default();
    v["id"] = json!(task);
    v["worker_id"] = json!(worker.worker_id());
    Ok(Json(v))
}

async fn restart_task(
    State(worker): State<AppState>,
    Path((name, task)): Path<(String, u32)>,
    headers: axum::http::HeaderMap,
) -> ApiResult<StatusCode> {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    worker.restart_task(&name, task, authorization).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart_connector(
    State(worker): State<AppState>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let include_tasks = query_bool(&query, "includeTasks");
    let only_failed = query_bool(&query, "onlyFailed");
    worker
        .restart_connector(
            &name,
            include_tasks.unwrap_or(false),
            only_failed.unwrap_or(false),
        )
        .await?;
    if include_tasks.is_none() && only_failed.is_none() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let view = worker.status(&name).ok_or_else(|| not_found(&name))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(status_json(&worker, &name, &view)),
    )
        .into_response())
}

async fn pause_connector(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    worker.set_target_state(&name, TargetState::Paused).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn resume_connector(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    worker.set_target_state(&name, TargetState::Started).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn stop_connector(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    worker.set_target_state(&name, TargetState::Stopped).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_offsets(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let offsets = worker.offsets(&name).await?;
    Ok(Json(json!({
        "offsets": offsets.into_iter().map(|(p, o)| json!({"partition": p, "offset": o})).collect::<Vec<_>>()
    })))
}

async fn patch_offsets(
    State(worker): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let list = body
        .get("offsets")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ApiError::bad_request(
                "the body must be {\"offsets\": [{\"partition\": {...}, \"offset\": {...}}]}",
            )
        })?;
    let mut entries = Vec::with_capacity(list.len());
    for item in list {
        let partition = item.get("partition").cloned().ok_or_else(|| {
            ApiError::bad_request("each entry of \"offsets\" needs a \"partition\"")
        })?;
        let offset = item.get("offset").cloned().unwrap_or(Value::Null);
        entries.push((partition, offset));
    }
    worker.alter_offsets(&name, Some(entries)).await?;
    Ok(Json(
        json!({"message": "The offsets for this connector have been altered successfully"}),
    ))
}

async fn delete_offsets(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    worker.alter_offsets(&name, None).await?;
    Ok(Json(
        json!({"message": "The offsets for this connector have been reset successfully"}),
    ))
}

async fn get_topics(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let topics = worker.topics(&name).await.ok_or_else(|| not_found(&name))?;
    Ok(Json(json!({ name: {"topics": topics} })))
}

async fn reset_topics(
    State(worker): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    worker.reset_topics(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Connector classes; with `connectorsOnly=false` also every transform, predicate and
/// converter, as Kafka Connect lists them (`type` "transformation" / "predicate" /
/// "converter"), plugins' included.
async fn list_plugins(State(worker): State<AppState>, RawQuery(query): RawQuery) -> Json<Value> {
    let mut plugins: Vec<Value> = worker
        .plugins()
        .iter()
        .map(|p| json!({"class": p.class, "type": p.kind.name(), "version": p.version, "aliases": p.aliases}))
        .collect();
    let connectors_only = query_values(&query, "connectorsOnly")
        .last()
        .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    if !connectors_only {
        let registry = crate::transforms::registry()
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut others: Vec<&crate::transforms::TransformPlugin> =
            registry.plugins().iter().collect();
        others.sort_by(|a, b| (a.kind_name(), &a.class).cmp(&(b.kind_name(), &b.class)));
        plugins.extend(others.into_iter().map(|p| {
            json!({"class": p.class, "type": p.kind_name(), "version": p.version, "aliases": p.aliases})
        }));
        plugins.extend(crate::converter::BUILTIN_CONVERTERS.iter().map(|(class, short)| {
            json!({"class": class, "type": "converter", "version": env!("CARGO_PKG_VERSION"), "aliases": short})
        }));
        plugins.extend(crate::converter::plugin_converters().into_iter().map(|p| {
            json!({"class": p.class, "type": "converter", "version": p.version, "aliases": p.aliases})
        }));
    }
    Json(json!(plugins))
}

fn full_def(kind: &ConnectorKind, plugin_def: &ConfigDef) -> ConfigDef {
    match kind {
        ConnectorKind::Sink(_) => sink_def(),
        ConnectorKind::Source(_) => common_def(),
    }
    .merge(plugin_def)
}

fn definition_json(key: &ConfigKey, order: usize) -> Value {
    json!({
        "name": key.name,
        "type": key.ty.name(),
        "required": key.required(),
        "default_value": key.default,
        "importance": key.importance.name(),
        "documentation": key.doc,
        "group": key.group,
        "width": "NONE",
        "display_name": key.display_name.clone().unwrap_or_else(|| key.name.clone()),
        "dependents": [],
        "order": order,
    })
}

async fn plugin_config(
    State(worker): State<AppState>,
    Path(plugin): Path<String>,
) -> ApiResult<Json<Value>> {
    let def = match worker.plugin(&plugin) {
        Some(p) => full_def(&p.kind, &p.config_def),
        // A transform, predicate or plugin converter: its own options, as Kafka Connect
        // describes them.
        None => crate::transforms::registry()
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .find(&plugin)
            .map(|p| p.config_def.clone())
            .or_else(|| crate::converter::find_plugin_converter(&plugin).map(|p| p.config_def))
            .ok_or_else(|| {
                ApiError::new(StatusCode::NOT_FOUND, format!("Unknown plugin {plugin}."))
            })?,
    };
    Ok(Json(json!(def
        .keys()
        .iter()
        .enumerate()
        .map(|(i, k)| definition_json(k, i + 1))
        .collect::<Vec<_>>())))
}

async fn validate_config(
    State(worker): State<AppState>,
    Path(plugin): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let path_plugin = worker
        .plugin(&plugin)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("Unknown plugin {plugin}.")))?;
    let mut props = props_from_json(&body)?;
    props
        .entry(CONNECTOR_CLASS.to_string())
        .or_insert_with(|| path_plugin.class.clone());
    props
        .entry(NAME.to_string())
        .or_insert_with(|| "validate".to_string());
    let (_, errors) = worker.validate(&props).await;
    let def = full_def(&path_plugin.kind, &path_plugin.config_def);
    let mut by_option: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &errors.0 {
        by_option
            .entry(e.option.clone())
            .or_default()
            .push(e.to_string());
    }
    let mut configs = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    for (i, key) in def.keys().iter().enumerate() {
        if let Some(g) = &key.group {
            if !groups.contains(g) {
                groups.push(g.clone());
            }
        }
        let value = props
            .get(&key.name)
            .cloned()
            .or_else(|| key.default.clone());
        let shown = if key.ty == sluice_sdk::ConfigType::Password && value.is_some() {
            Some("[hidden]".to_string())
        } else {
            value
        };
        configs.push(json!({
            "definition": definition_json(key, i + 1),
            "value": {
                "name": key.name,
                "value": shown,
                "recommended_values": key.validator.as_ref().map(|v| v.recommended_values()).unwrap_or_default(),
                "errors": by_option.remove(&key.name).unwrap_or_default(),
                "visible": true,
            }
        }));
    }
    // Errors on options no declaration covers (unknown options, converter sub-options).
    for (option, errs) in by_option {
        configs.push(json!({
            "definition": {"name": option, "type": "STRING", "required": false, "default_value": null,
                           "importance": "LOW", "documentation": "", "group": null, "width": "NONE",
                           "display_name": option, "dependents": [], "order": -1},
            "value": {"name": option, "value": props.get(&option), "recommended_values": [], "errors": errs, "visible": true}
        }));
    }
    let error_count: usize = configs
        .iter()
        .map(|c| c["value"]["errors"].as_array().map_or(0, Vec::len))
        .sum();
    Ok(Json(json!({
        "name": path_plugin.class,
        "error_count": error_count,
        "groups": groups,
        "configs": configs,
    })))
}

/// KIP-1017: 200 once startup is complete, 503 while starting or stopping.
async fn health(State(worker): State<AppState>) -> Response {
    let (status, state, message) = match worker.health() {
        Health::Healthy(m) => (StatusCode::OK, "healthy", m),
        Health::Starting(m) => (StatusCode::SERVICE_UNAVAILABLE, "starting", m),
        Health::Unhealthy(m) => (StatusCode::SERVICE_UNAVAILABLE, "unhealthy", m),
    };
    (status, Json(json!({"status": state, "message": message}))).into_response()
}

fn logger_json(level: &crate::logging::LoggerLevel) -> Value {
    json!({"level": level.level, "last_modified": level.last_modified})
}

fn logging_error(e: crate::logging::Error) -> ApiError {
    let status = match e {
        // Kafka Connect answers an unknown level with 404.
        crate::logging::Error::InvalidLevel(_) => StatusCode::NOT_FOUND,
        crate::logging::Error::NotInstalled | crate::logging::Error::Apply { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    ApiError::new(status, e.to_string())
}

/// KIP-495: every logger with a level of its own.
async fn list_loggers() -> ApiResult<Json<Value>> {
    let loggers = crate::logging::loggers().map_err(logging_error)?;
    Ok(Json(Value::Object(
        loggers
            .iter()
            .map(|(name, level)| (name.clone(), logger_json(level)))
            .collect(),
    )))
}

/// KIP-495: the level in force for one logger.
async fn get_logger(Path(logger): Path<String>) -> ApiResult<Json<Value>> {
    let level = crate::logging::logger(&logger).map_err(logging_error)?;
    Ok(Json(logger_json(&level)))
}

/// KIP-495: `{"level": "DEBUG"}` sets a logger and those below it; answers the loggers changed.
/// A lone worker is the whole cluster, so `?scope=cluster` changes nothing more.
async fn set_logger(
    State(worker): State<AppState>,
    Path(logger): Path<String>,
    RawQuery(query): RawQuery,
    body: Option<Json<Value>>,
) -> ApiResult<Response> {
    let level = body
        .as_ref()
        .and_then(|Json(b)| b.get("level"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "Desired 'level' parameter was not specified in request.",
            )
        })?;
    // KIP-976: `scope=cluster` goes through the config topic to every worker (204); any other
    // scope is this worker's, as in Kafka Connect (which warns about an unknown one).
    let scope = query_values(&query, "scope")
        .first()
        .map(|s| s.to_ascii_lowercase());
    match scope.as_deref() {
        Some("cluster") => {
            worker
                .set_cluster_logger_level(&logger, level)
                .await
                .map_err(logging_error)??;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        other => {
            if let Some(other) = other.filter(|s| *s != "worker") {
                warn!(scope = %other, "unknown logger scope; using this worker's");
            }
            let changed = crate::logging::set_level(&logger, level).map_err(logging_error)?;
            Ok(Json(json!(changed)).into_response())
        }
    }
}

async fn metrics(State(worker): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        worker.render_metrics(),
    )
}

fn not_found(name: &str) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, format!("Connector {name} not found"))
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;

    #[test]
    fn only_kafka_connects_leader_writes_are_forwarded() {
        assert_eq!(leader_write(&Method::POST, "/connectors"), Some(None));
        for (method, path) in [
            (Method::PUT, "/connectors/a%20b/config"),
            (Method::PATCH, "/connectors/a%20b/config"),
            (Method::DELETE, "/connectors/a%20b"),
            (Method::PUT, "/connectors/a%20b/stop"),
            (Method::PATCH, "/connectors/a%20b/offsets"),
            (Method::DELETE, "/connectors/a%20b/offsets"),
        ] {
            assert_eq!(
                leader_write(&method, path),
                Some(Some("a b".to_string())),
                "{method} {path}"
            );
        }
        for (method, path) in [
            (Method::GET, "/connectors"),
            (Method::GET, "/connectors/a/config"),
            (Method::PUT, "/connectors/a/pause"),
            (Method::PUT, "/connectors/a/resume"),
            (Method::POST, "/connectors/a/restart"),
            (Method::POST, "/connectors/a/tasks"),
            (Method::GET, "/connectors/a/offsets"),
            (Method::PUT, "/connector-plugins/x/config/validate"),
        ] {
            assert_eq!(leader_write(&method, path), None, "{method} {path}");
        }
    }

    #[test]
    fn percent_decoding_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2Fb%20c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("caf%C3%A9"), "café");
    }
}
