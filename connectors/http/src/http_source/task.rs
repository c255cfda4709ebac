//! The `http-source` task: polls each of its entities, emits the records that are new.
//!
//! # What counts as new
//! - With `http.offset.json.pointer`: each record's offset is the value at that pointer.
//!   Records whose offset is above the last one written are emitted in offset order (numbers
//!   and numeric strings compare as numbers, other strings as text, so ISO-8601 times work).
//!   The offset must grow with each new record and be unique.
//! - Without it: the records of an answer are emitted when the answer's records differ from
//!   the last set emitted (compared by a fingerprint of their JSON), each with the set's
//!   fingerprint and its position as offset, so a restart in the middle of a set resumes
//!   after the last record written.
//!
//! Values are schemaless (JSON objects become maps); keys are strings or int64 when the key
//! field holds one, schemaless otherwise.
//!
//! # Failures
//! Timeouts, connection failures and HTTP 408/429/5xx are retried within the poll
//! (`max.retries`); after that, or on another HTTP error or an unusable answer, the entity
//! is tried again after `request.interval.ms`, doubling while it keeps failing (up to
//! `backoff.max.ms`), and the problem shows in the task's status. The other entities keep
//! flowing.

use std::cmp::Ordering;
use std::sync::Arc;

use serde_json::{json, Map, Value as Json};
use sluice_sdk::json::value_from_json;
use sluice_sdk::record::canonical_json;
use sluice_sdk::{
    Error, Result, Schema, SourcePartition, SourceRecord, SourceTask, SourceTaskContext, Value,
};
use tokio::time::Instant;

use super::config::{HttpSourceConfig, REQUEST_TIMEOUT_MS};
use super::template::render;
use crate::budget::RequestBudget;
use crate::budget::WAIT_WORTH_REPORTING as BUDGET_WAIT_WORTH_REPORTING;
use crate::client::{redact_url, HttpClient, RequestSpec};
use crate::problems::{ProblemBoard, BUDGET_SUBJECT};
use crate::timing::{doubled, human_duration};

/// Source partition field: the entity name.
pub const PARTITION_ENTITY: &str = "entity";
/// Source partition field when there are no entities: the URL template.
pub const PARTITION_URL: &str = "url";
/// Offset field: the record's offset value.
pub const OFFSET_OFFSET: &str = "offset";
/// Offset field: the fingerprint of the record set.
pub const OFFSET_FINGERPRINT: &str = "fingerprint";
/// Offset field: the record's position in its set.
pub const OFFSET_INDEX: &str = "index";

/// The last record written for an entity.
#[derive(Debug, Clone, PartialEq)]
enum Last {
    Offset(Json),
    Fingerprint { hash: String, index: usize },
}

impl Last {
    fn from_offset(offset: &Map<String, Json>) -> Option<Self> {
        if let Some(value) = offset.get(OFFSET_OFFSET) {
            return Some(Self::Offset(value.clone()));
        }
        Some(Self::Fingerprint {
            hash: offset.get(OFFSET_FINGERPRINT)?.as_str()?.to_string(),
            index: usize::try_from(offset.get(OFFSET_INDEX)?.as_u64()?).ok()?,
        })
    }

    /// The text `${offset}` stands for.
    fn template_value(&self) -> Option<String> {
        match self {
            Self::Offset(Json::String(s)) => Some(s.clone()),
            Self::Offset(other) => Some(other.to_string()),
            Self::Fingerprint { .. } => None,
        }
    }
}

/// Orders two offsets: numbers (and numeric strings) by value, other strings as text.
pub fn compare_offsets(a: &Json, b: &Json) -> Ordering {
    fn number(v: &Json) -> Option<f64> {
        match v {
            Json::Number(n) => n.as_f64(),
            Json::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        }
    }
    if let (Json::Number(x), Json::Number(y)) = (a, b) {
        if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
            return x.cmp(&y);
        }
    }
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => {
            let text = |v: &Json| match v {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            text(a).cmp(&text(b))
        }
    }
}

/// A stable 64-bit FNV-1a hash, hex: the fingerprint of a record set.
fn fingerprint(data: &Json) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in canonical_json(data).bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

#[derive(Debug)]
struct EntityState {
    entity: Option<String>,
    subject: String,
    partition: SourcePartition,
    topic: String,
    last: Option<Last>,
    next_due: Instant,
    failures_in_a_row: u32,
}

#[derive(Debug)]
struct Running {
    config: HttpSourceConfig,
    connector: String,
    task_id: u32,
    client: HttpClient,
    entities: Vec<EntityState>,
    problems: ProblemBoard,
}

/// The task of `http-source`; see the module docs.
#[derive(Debug, Default)]
pub struct HttpSourceTask {
    running: Option<Running>,
}

#[sluice_sdk::async_trait]
impl SourceTask for HttpSourceTask {
    async fn start(&mut self, ctx: SourceTaskContext) -> Result<()> {
        let config = HttpSourceConfig::parse(&ctx.config)?;
        let budget = Arc::new(RequestBudget::new(
            config.requests_per_minute,
            config.requests_per_day,
        ));
        let client = HttpClient::new(config.request_timeout, REQUEST_TIMEOUT_MS, budget)
            .map_err(|e| Error::fatal(format!("cannot set up the HTTP client: {e}")))?;
        let names: Vec<Option<String>> = if config.entity_names.is_empty() {
            vec![None]
        } else {
            config.entity_names.iter().cloned().map(Some).collect()
        };
        let now = Instant::now();
        let entities = names
            .into_iter()
            .map(|entity| {
                let partition = source_partition(&config, entity.as_deref());
                let last = ctx.offset(&partition).and_then(|o| {
                    let last = Last::from_offset(o);
                    if last.is_none() {
                        tracing::warn!(offset = %Json::Object(o.clone()), "stored offset not understood; starting this entity afresh");
                    }
                    last
                });
                EntityState {
                    subject: entity
                        .as_ref()
                        .map_or_else(|| "url".to_string(), |e| format!("entity '{e}'")),
                    topic: render(&config.topic_pattern, entity.as_deref(), "", false),
                    entity,
                    partition,
                    last,
                    next_due: now,
                    failures_in_a_row: 0,
                }
            })
            .collect();
        tracing::info!(
            connector = %ctx.connector,
            task = ctx.task_id,
            entities = %config.entity_names.join(","),
            "http source task started"
        );
        self.running = Some(Running {
            connector: ctx.connector.clone(),
            task_id: ctx.task_id,
            config,
            client,
            entities,
            problems: ProblemBoard::new(Arc::new(ctx)),
        });
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>> {
        let running = self
            .running
            .as_mut()
            .ok_or_else(|| Error::fatal("http source task polled before it was started"))?;
        let due_at = running
            .entities
            .iter()
            .map(|e| e.next_due)
            .min()
            .unwrap_or_else(Instant::now);
        let budget_at = running.client.budget().next_free_at();
        if budget_at > due_at + BUDGET_WAIT_WORTH_REPORTING {
            let problem = format!(
                "used up ({} per minute, {} per day); next request in {}",
                running.config.requests_per_minute,
                running.config.requests_per_day,
                human_duration(budget_at - Instant::now())
            );
            running.problems.set(BUDGET_SUBJECT, problem);
        } else {
            running.problems.clear(BUDGET_SUBJECT);
        }
        running.problems.publish();
        tokio::time::sleep_until(due_at.max(budget_at)).await;
        let now = Instant::now();
        let mut due: Vec<usize> = (0..running.entities.len())
            .filter(|&i| running.entities[i].next_due <= now)
            .collect();
        due.sort_by_key(|&i| running.entities[i].next_due);
        let mut answers = Vec::with_capacity(due.len());
        for index in due {
            answers.push((index, running.fetch(index).await));
        }
        // State changes only after the last await, so a dropped poll changes nothing.
        let mut records = Vec::new();
        for (index, answer) in answers {
            match answer.and_then(|body| running.new_records(index, &body)) {
                Ok(mut new) => {
                    running.succeeded(index);
                    records.append(&mut new);
                }
                Err(problem) => running.failed(index, problem),
            }
        }
        running.problems.publish();
        Ok(records)
    }

    async fn stop(&mut self) -> Result<()> {
        if let Some(running) = self.running.take() {
            tracing::info!(connector = %running.connector, task = running.task_id, "http source task stopped");
        }
        Ok(())
    }
}

/// `{"entity": name}`, or `{"url": template}` without entities.
pub fn source_partition(config: &HttpSourceConfig, entity: Option<&str>) -> SourcePartition {
    let mut partition = Map::new();
    match entity {
        Some(entity) => partition.insert(PARTITION_ENTITY.into(), json!(entity)),
        None => partition.insert(PARTITION_URL.into(), json!(config.url)),
    };
    partition
}

impl Running {
    fn request(&self, index: usize) -> std::result::Result<RequestSpec, String> {
        let state = &self.entities[index];
        let entity = state.entity.as_deref();
        let offset = state
            .last
            .as_ref()
            .and_then(Last::template_value)
            .unwrap_or_else(|| self.config.initial_offset.clone());
        let rendered = render(&self.config.url, entity, &offset, true);
        let mut url = reqwest::Url::parse(&rendered)
            .map_err(|e| format!("the url '{rendered}' is not valid ({e})"))?;
        let parameters = render(&self.config.parameters, entity, &offset, false);
        let pairs: Vec<(&str, &str)> = parameters
            .split(self.config.parameters_separator.as_str())
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .collect();
        if !pairs.is_empty() {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        let mut headers = self.config.render_headers(entity, &offset)?;
        let body = (self.config.method == reqwest::Method::POST).then(|| {
            headers.entry(reqwest::header::CONTENT_TYPE).or_insert(
                reqwest::header::HeaderValue::from_static("application/json"),
            );
            render(&self.config.body, entity, &offset, false)
        });
        Ok(RequestSpec {
            method: self.config.method.clone(),
            url,
            headers,
            body,
        })
    }

    async fn fetch(&self, index: usize) -> std::result::Result<Json, String> {
        let spec = self.request(index)?;
        let what = redact_url(&spec.url);
        self.client
            .fetch_json_with_retry(&spec, self.config.retry, &what)
            .await
            .map_err(|e| format!("{what}: {e}"))
    }

    /// The records of `body` that are new for entity `index`, oldest first.
    fn new_records(
        &mut self,
        index: usize,
        body: &Json,
    ) -> std::result::Result<Vec<SourceRecord>, String> {
        let pointer = &self.config.data_pointer;
        let data = body.pointer(pointer).ok_or_else(|| {
            format!("the answer has nothing at http.response.data.json.pointer '{pointer}'")
        })?;
        let items: Vec<&Json> = match data {
            Json::Array(items) => items.iter().collect(),
            Json::Null => Vec::new(),
            other => vec![other],
        };
        let state = &self.entities[index];
        let mut selected: Vec<(&Json, Map<String, Json>)> = Vec::new();
        if self.config.offset_pointer.is_empty() {
            let hash = fingerprint(data);
            let start = match &state.last {
                Some(Last::Fingerprint { hash: last, index }) if *last == hash => index + 1,
                _ => 0,
            };
            for (i, item) in items.iter().enumerate().skip(start) {
                let mut offset = Map::new();
                offset.insert(OFFSET_FINGERPRINT.into(), json!(hash));
                offset.insert(OFFSET_INDEX.into(), json!(i));
                selected.push((item, offset));
            }
        } else {
            let pointer = &self.config.offset_pointer;
            let mut with_offsets = Vec::with_capacity(items.len());
            for item in items {
                let offset = item
                    .pointer(pointer)
                    .filter(|v| !v.is_null())
                    .ok_or_else(|| {
                        format!(
                            "a record has no value at http.offset.json.pointer '{pointer}': {}",
                            excerpt(item)
                        )
                    })?;
                with_offsets.push((item, offset));
            }
            with_offsets.sort_by(|a, b| compare_offsets(a.1, b.1));
            let after = match &state.last {
                Some(Last::Offset(last)) => Some(last),
                _ => None,
            };
            for (item, offset) in with_offsets {
                if after.is_some_and(|last| compare_offsets(offset, last) != Ordering::Greater) {
                    continue;
                }
                let mut map = Map::new();
                map.insert(OFFSET_OFFSET.into(), offset.clone());
                selected.push((item, map));
            }
        }
        let mut records = Vec::with_capacity(selected.len());
        let mut last = None;
        for (item, offset) in selected {
            let value =
                value_from_json(None, item).map_err(|e| format!("a record cannot be read: {e}"))?;
            let (key_schema, key) = self.key_of(item);
            last = Last::from_offset(&offset);
            records.push(
                SourceRecord::new(
                    state.partition.clone(),
                    offset,
                    state.topic.clone(),
                    None,
                    value,
                )
                .with_key(key_schema, key),
            );
        }
        if last.is_some() {
            self.entities[index].last = last;
        }
        tracing::debug!(subject = %self.entities[index].subject, records = records.len(), "answer read");
        Ok(records)
    }

    fn key_of(&self, item: &Json) -> (Option<sluice_sdk::SchemaRef>, Value) {
        if self.config.key_pointer.is_empty() {
            return (None, Value::Null);
        }
        match item.pointer(&self.config.key_pointer) {
            Some(Json::String(s)) => (Some(Arc::new(Schema::string())), Value::String(s.clone())),
            Some(Json::Number(n)) if n.is_i64() => (
                Some(Arc::new(Schema::int64())),
                Value::Int64(n.as_i64().unwrap_or_default()),
            ),
            Some(Json::Null) | None => {
                tracing::debug!(pointer = %self.config.key_pointer, "record without a key field; key is null");
                (None, Value::Null)
            }
            Some(other) => (None, value_from_json(None, other).unwrap_or(Value::Null)),
        }
    }

    fn succeeded(&mut self, index: usize) {
        let state = &mut self.entities[index];
        state.failures_in_a_row = 0;
        state.next_due = Instant::now() + self.config.request_interval;
        let subject = state.subject.clone();
        self.problems.clear(&subject);
    }

    fn failed(&mut self, index: usize, problem: String) {
        let state = &mut self.entities[index];
        state.failures_in_a_row += 1;
        let wait = doubled(
            self.config.request_interval,
            state.failures_in_a_row,
            self.config.backoff_max,
        );
        state.next_due = Instant::now() + wait;
        let subject = state.subject.clone();
        self.problems.set(
            &subject,
            format!("{problem}; trying again in {}", human_duration(wait)),
        );
    }
}

fn excerpt(item: &Json) -> String {
    let text = item.to_string();
    if text.len() > 120 {
        format!("{}...", text.chars().take(120).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_compare_as_numbers_or_text() {
        assert_eq!(compare_offsets(&json!(9), &json!(10)), Ordering::Less);
        assert_eq!(compare_offsets(&json!("9"), &json!("10")), Ordering::Less);
        assert_eq!(compare_offsets(&json!(2.5), &json!(2)), Ordering::Greater);
        assert_eq!(
            compare_offsets(
                &json!("2024-01-19T10:00:00Z"),
                &json!("2024-01-19T09:59:59Z")
            ),
            Ordering::Greater
        );
        assert_eq!(
            compare_offsets(&json!(u64::MAX), &json!(u64::MAX)),
            Ordering::Equal
        );
    }

    #[test]
    fn fingerprints_ignore_key_order_but_not_content() {
        assert_eq!(
            fingerprint(&json!({"a": 1, "b": 2})),
            fingerprint(&json!({"b": 2, "a": 1}))
        );
        assert_ne!(fingerprint(&json!([1, 2])), fingerprint(&json!([2, 1])));
        assert_eq!(fingerprint(&json!(null)).len(), 16);
    }

    #[test]
    fn offsets_read_back() {
        assert_eq!(
            Last::from_offset(json!({"offset": "2024"}).as_object().unwrap()),
            Some(Last::Offset(json!("2024")))
        );
        assert_eq!(
            Last::from_offset(
                json!({"fingerprint": "ab", "index": 3})
                    .as_object()
                    .unwrap()
            ),
            Some(Last::Fingerprint {
                hash: "ab".into(),
                index: 3
            })
        );
        assert_eq!(
            Last::from_offset(json!({"x": 1}).as_object().unwrap()),
            None
        );
        assert_eq!(
            Last::Offset(json!(42)).template_value().as_deref(),
            Some("42")
        );
    }
}
