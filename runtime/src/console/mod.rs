//! The web console at `/ui` on the REST port: static HTML, CSS and JavaScript embedded in the
//! binary (no CDN, nothing fetched at run time), and the few read and replay endpoints it needs
//! beyond Kafka Connect's REST API, under `/ui/api/` (documented in `docs/console.md`).
//!
//! # Layout
//! - this module: the router and the embedded assets.
//! - [`kafka_view`]: topics, messages, dead letters, replay and consumer groups, read through
//!   the worker's librdkafka clients with deadlines, every blocking call on the blocking pool.
//!
//! The console only reads, except for replay, which is a `POST` the page sends when the user
//! asks for it. Reads never create topics.

pub mod kafka_view;

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::herder::Herder;
use crate::kafka::KafkaClients;

use kafka_view::{MessageQuery, ReplayTarget};

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// What the console's handlers share.
#[derive(Debug, Clone)]
struct Console {
    clients: KafkaClients,
    lister: kafka_view::Lister,
}

/// The console's routes (`/ui`, its assets and `/ui/api/*`), for merging into the REST router.
pub fn router<S>(herder: &Arc<Herder>) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let clients = KafkaClients::new(herder.bootstrap(), herder.settings());
    let console = Console {
        lister: kafka_view::Lister::new(clients.clone()),
        clients,
    };
    Router::new()
        .route("/ui", get(index))
        .route("/ui/", get(index))
        .route("/ui/app.js", get(app_js))
        .route("/ui/app.css", get(app_css))
        .route("/ui/api/topics", get(list_topics))
        .route("/ui/api/topics/{topic}", get(describe_topic))
        .route("/ui/api/topics/{topic}/messages", get(messages))
        .route("/ui/api/topics/{topic}/replay", post(replay))
        .route("/ui/api/groups", get(list_groups))
        .route("/ui/api/groups/{group}", get(describe_group))
        .with_state(console)
}

/// Every asset is served with `no-cache` so an upgraded worker never runs yesterday's script,
/// and with a policy that forbids anything not from this origin and any inline script.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// A console API error, in the REST API's `{"error_code", "message"}` shape.
fn refusal(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        status,
        Json(json!({"error_code": status.as_u16(), "message": message.to_string()})),
    )
        .into_response()
}

fn answer(result: kafka_view::Result<Value>) -> Response {
    match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => refusal(e.status(), e),
    }
}

fn query_map(query: &Option<String>) -> std::collections::BTreeMap<String, String> {
    query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_num<T: std::str::FromStr>(
    params: &std::collections::BTreeMap<String, String>,
    key: &str,
) -> Result<Option<T>, String> {
    match params.get(key).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| format!("query parameter '{key}' must be a number (got '{v}')")),
    }
}

async fn list_topics(State(console): State<Console>) -> Response {
    answer(kafka_view::list_topics(&console.lister).await)
}

async fn describe_topic(State(console): State<Console>, Path(topic): Path<String>) -> Response {
    answer(kafka_view::describe_topic(&console.lister, &topic).await)
}

/// `?partition=&offset=&timestamp=&limit=&max_bytes=`: records from an offset or a time.
async fn messages(
    State(console): State<Console>,
    Path(topic): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let params = query_map(&query);
    let parsed = (|| {
        Ok::<_, String>(MessageQuery {
            partition: parse_num(&params, "partition")?,
            offset: parse_num(&params, "offset")?,
            timestamp: parse_num(&params, "timestamp")?,
            limit: parse_num(&params, "limit")?.unwrap_or(kafka_view::DEFAULT_LIMIT),
            max_bytes: parse_num(&params, "max_bytes")?.unwrap_or(kafka_view::DEFAULT_MAX_BYTES),
        })
    })();
    match parsed {
        Ok(q) => answer(kafka_view::messages(&console.clients, &topic, q).await),
        Err(message) => refusal(StatusCode::BAD_REQUEST, message),
    }
}

/// Body `{"records": [{"partition": 0, "offset": 12}, ...]}`: produces each dead letter again
/// to the topic its `__connect.errors.topic` header names.
async fn replay(
    State(console): State<Console>,
    Path(topic): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(b) => b,
        Err(e) => return refusal(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let Some(list) = body.get("records").and_then(Value::as_array) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            "the body must be {\"records\": [{\"partition\": N, \"offset\": N}, ...]}",
        );
    };
    let mut targets = Vec::with_capacity(list.len());
    for item in list {
        let partition = item.get("partition").and_then(Value::as_i64);
        let offset = item.get("offset").and_then(Value::as_i64);
        let (Some(partition), Some(offset)) = (partition, offset) else {
            return refusal(
                StatusCode::BAD_REQUEST,
                "each record needs a numeric \"partition\" and \"offset\"",
            );
        };
        targets.push(ReplayTarget {
            partition: partition as i32,
            offset,
        });
    }
    if targets.is_empty() {
        return refusal(StatusCode::BAD_REQUEST, "no records selected to replay");
    }
    answer(kafka_view::replay(&console.clients, &topic, targets).await)
}

async fn list_groups(State(console): State<Console>) -> Response {
    answer(kafka_view::list_groups(&console.lister).await)
}

async fn describe_group(State(console): State<Console>, Path(group): Path<String>) -> Response {
    answer(kafka_view::describe_group(&console.lister, &group).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_percent_decoded() {
        let q = query_map(&Some("a=1&b=x%20y&c=%3Cs%3E&d".to_string()));
        assert_eq!(q["a"], "1");
        assert_eq!(q["b"], "x y");
        assert_eq!(q["c"], "<s>");
        assert_eq!(q["d"], "");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn assets_forbid_inline_scripts() {
        let response = asset("text/html", INDEX_HTML);
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("script-src 'self'"));
        assert!(!csp.contains("unsafe-inline"));
        assert!(
            !INDEX_HTML.contains("<script>"),
            "no inline script in the page"
        );
    }
}
