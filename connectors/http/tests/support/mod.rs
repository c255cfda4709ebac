//! A local HTTP server that answers as scripted (Alpha Vantage's exact formats for the stock
//! tests, any JSON for the http-source tests), and helpers to run connector tasks directly.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value as Json};
use sluice_sdk::{
    ConnectorContext, ConnectorHost, Decimal, Error, OffsetSnapshot, Props, SourceConnector,
    SourceRecord, SourceTask, SourceTaskContext, Struct, TaskStatusReporter, Value,
};

/// One scripted answer.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// HTTP 200 with this JSON body.
    Json(Json),
    /// This status and body as they are.
    Raw(u16, &'static str),
    /// No answer at all (the client must time out).
    Hang,
}

/// A request the server received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// The `symbol` query parameter, else the path.
    pub(crate) key: String,
    /// Query parameters.
    pub(crate) query: HashMap<String, String>,
    /// Request headers.
    pub(crate) headers: HeaderMap,
    /// When it arrived.
    pub(crate) at: Instant,
}

#[derive(Debug, Default)]
struct Script {
    /// Answers still to give, per key; the last one given repeats once a queue is empty.
    queued: HashMap<String, VecDeque<Reply>>,
    repeating: HashMap<String, Reply>,
    received: Vec<Received>,
    api_key: Option<String>,
}

/// The scripted server, listening on a free loopback port.
#[derive(Debug, Clone)]
pub(crate) struct ScriptedServer {
    addr: SocketAddr,
    script: Arc<Mutex<Script>>,
}

impl ScriptedServer {
    /// Starts a server on `127.0.0.1:0` in the current runtime.
    pub(crate) async fn start() -> Self {
        let script = Arc::new(Mutex::new(Script::default()));
        let state = script.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let state = state.clone();
            async move { answer(state, uri, headers).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Self { addr, script }
    }

    /// `http://127.0.0.1:port` + `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers `key` with `replies` in turn, the last one repeating.
    pub(crate) fn script(&self, key: &str, replies: impl IntoIterator<Item = Reply>) {
        let mut script = self.script.lock().unwrap();
        script
            .queued
            .entry(key.to_string())
            .or_default()
            .extend(replies);
    }

    /// Answers every request with a wrong `apikey` the way Alpha Vantage does.
    pub(crate) fn require_api_key(&self, key: &str) {
        self.script.lock().unwrap().api_key = Some(key.to_string());
    }

    /// The requests received so far.
    pub(crate) fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    /// The requests received so far for `key`.
    pub(crate) fn received_for(&self, key: &str) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| r.key == key)
            .collect()
    }
}

async fn answer(script: Arc<Mutex<Script>>, uri: Uri, headers: HeaderMap) -> Response {
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url_pairs(q)
                .into_iter()
                .collect::<HashMap<String, String>>()
        })
        .unwrap_or_default();
    let key = query
        .get("symbol")
        .cloned()
        .unwrap_or_else(|| uri.path().to_string());
    let reply = {
        let mut script = script.lock().unwrap();
        script.received.push(Received {
            key: key.clone(),
            query: query.clone(),
            headers,
            at: Instant::now(),
        });
        let wrong_key = script
            .api_key
            .as_ref()
            .is_some_and(|k| query.get("apikey") != Some(k));
        if wrong_key {
            Reply::Json(
                json!({"Error Message": "the parameter apikey is invalid or missing. Please claim your free API key on (https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."}),
            )
        } else {
            match script.queued.get_mut(&key).and_then(VecDeque::pop_front) {
                Some(reply) => {
                    script.repeating.insert(key.clone(), reply.clone());
                    reply
                }
                None => script.repeating.get(&key).cloned().unwrap_or(Reply::Raw(
                    404,
                    "{\"error\": \"nothing scripted for this request\"}",
                )),
            }
        }
    };
    match reply {
        Reply::Json(body) => Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec_pretty(&body).unwrap()))
            .unwrap(),
        Reply::Raw(status, body) => Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .body(Body::from(body))
            .unwrap(),
        Reply::Hang => std::future::pending().await,
    }
}

/// Decodes `a=b&c=d` (percent-encoding and `+` included).
fn url_pairs(query: &str) -> Vec<(String, String)> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    }
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

// ---- Alpha Vantage answers, exactly as the API writes them ----

/// A `GLOBAL_QUOTE` answer.
pub(crate) fn global_quote(symbol: &str, day: &str, price: &str, volume: u64) -> Reply {
    Reply::Json(json!({
        "Global Quote": {
            "01. symbol": symbol,
            "02. open": "145.0000",
            "03. high": "146.2500",
            "04. low": "144.6200",
            "05. price": price,
            "06. volume": volume.to_string(),
            "07. latest trading day": day,
            "08. previous close": "144.8900",
            "09. change": "0.9700",
            "10. change percent": "0.6695%"
        }
    }))
}

/// A `TIME_SERIES_INTRADAY` answer with 5-minute bars at these New York times, newest first
/// as the API sends them.
pub(crate) fn intraday(symbol: &str, times: &[&str]) -> Reply {
    let mut sorted: Vec<&str> = times.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut series = serde_json::Map::new();
    for (i, time) in sorted.iter().enumerate() {
        series.insert(
            (*time).to_string(),
            json!({
                "1. open": "171.4500",
                "2. high": "171.5000",
                "3. low": "171.4500",
                "4. close": format!("171.{:04}", 4800 + i),
                "5. volume": (100 + i).to_string()
            }),
        );
    }
    Reply::Json(json!({
        "Meta Data": {
            "1. Information": "Intraday (5min) open, high, low, close prices and volume",
            "2. Symbol": symbol,
            "3. Last Refreshed": sorted.first().copied().unwrap_or_default(),
            "4. Interval": "5min",
            "5. Output Size": "Compact",
            "6. Time Zone": "US/Eastern"
        },
        "Time Series (5min)": series
    }))
}

/// The rate-limit answer of older API versions.
pub(crate) fn rate_limit_note() -> Reply {
    Reply::Json(
        json!({"Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 calls per day. Please visit https://www.alphavantage.co/premium/ if you would like to target a higher API call frequency."}),
    )
}

/// The rate-limit answer of newer API versions.
pub(crate) fn rate_limit_information() -> Reply {
    Reply::Json(
        json!({"Information": "We have detected your API key as DEMO123 and our standard API rate limit is 25 requests per day. Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."}),
    )
}

/// The answer to an unknown symbol.
pub(crate) fn invalid_call() -> Reply {
    Reply::Json(
        json!({"Error Message": "Invalid API call. Please retry or visit the documentation (https://www.alphavantage.co/documentation/) for GLOBAL_QUOTE."}),
    )
}

/// The other answer to an unknown symbol.
pub(crate) fn empty_quote() -> Reply {
    Reply::Json(json!({"Global Quote": {}}))
}

// ---- running tasks ----

/// A connector host that does nothing (no reconfiguration in these tests).
#[derive(Debug, Default)]
pub(crate) struct QuietHost;

impl ConnectorHost for QuietHost {
    fn request_task_reconfiguration(&self) {}
    fn raise_error(&self, error: Error) {
        panic!("connector raised an error: {error}");
    }
}

/// Every status a task reported, in order.
#[derive(Debug, Default)]
pub(crate) struct StatusLog(Mutex<Vec<Option<String>>>);

impl StatusLog {
    /// The problem shown now (`None`: the task is fine).
    pub(crate) fn current(&self) -> Option<String> {
        self.0.lock().unwrap().last().cloned().flatten()
    }
}

impl TaskStatusReporter for StatusLog {
    fn report_problem(&self, problem: Option<String>) {
        self.0.lock().unwrap().push(problem);
    }
}

pub(crate) use sluice_sdk::config::props;

/// Starts `connector` with `config` and returns its task configs for `max_tasks`.
pub(crate) async fn task_configs(
    connector: &mut dyn SourceConnector,
    config: Props,
    max_tasks: usize,
) -> Vec<Props> {
    let errors = connector.validate(&config).await;
    assert!(errors.is_empty(), "config rejected: {errors}");
    connector
        .start(ConnectorContext::new("test", Arc::new(QuietHost)), config)
        .await
        .expect("connector starts");
    connector
        .task_configs(max_tasks)
        .await
        .expect("task configs")
}

/// A started task of `connector` (one task), resuming from `offsets`.
pub(crate) async fn start_task(
    connector: &mut dyn SourceConnector,
    config: Props,
    offsets: OffsetSnapshot,
) -> (Box<dyn SourceTask>, Arc<StatusLog>) {
    let task_config = task_configs(connector, config, 1).await.remove(0);
    let status = Arc::new(StatusLog::default());
    let mut task = connector.create_task();
    task.start(SourceTaskContext::new(
        "test",
        0,
        task_config,
        Arc::new(offsets),
        status.clone(),
    ))
    .await
    .expect("task starts");
    (task, status)
}

/// The offsets a runtime would have stored after writing `records`.
pub(crate) fn offsets_after(records: &[SourceRecord]) -> OffsetSnapshot {
    OffsetSnapshot::new(
        records
            .iter()
            .map(|r| (r.source_partition.clone(), r.source_offset.clone())),
    )
}

/// Polls until `done` holds for everything polled so far, or fails after `deadline`.
pub(crate) async fn poll_until(
    task: &mut dyn SourceTask,
    deadline: Duration,
    done: impl Fn(&[SourceRecord]) -> bool,
) -> Vec<SourceRecord> {
    let mut records = Vec::new();
    let outcome = tokio::time::timeout(deadline, async {
        while !done(&records) {
            records.extend(task.poll().await.expect("poll"));
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "condition not met within {deadline:?}; polled {} records: {records:#?}",
        records.len()
    );
    records
}

/// The struct value of a record.
pub(crate) fn fields(record: &SourceRecord) -> &Struct {
    record.value.as_struct().expect("a struct value")
}

/// A Decimal field of scale 4 as text.
pub(crate) fn decimal(record: &SourceRecord, field: &str) -> String {
    match fields(record).get(field) {
        Some(Value::Bytes(bytes)) => Decimal::from_unscaled_bytes(bytes.clone(), 4).to_string(),
        other => panic!("{field} is not a Decimal: {other:?}"),
    }
}

/// The record's key as text.
pub(crate) fn key(record: &SourceRecord) -> &str {
    record.key.as_str().expect("a string key")
}
