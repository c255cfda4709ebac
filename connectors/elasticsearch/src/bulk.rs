//! The `_bulk` API: request bodies, and per-item results read and classified.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value as Json;

use crate::convert::{BulkAction, Operation};

/// The query string the connector sends with `_bulk`: only what it reads comes back, which
/// keeps answers for thousands of items small.
pub const BULK_FILTER_PATH: &str = "filter_path=errors,items.*.status,items.*.error";

/// A `_bulk` answer.
#[derive(Debug, Deserialize)]
pub struct BulkResponse {
    /// Whether any item failed.
    pub errors: bool,
    /// One entry per action, in request order: `{"index": {...}}`.
    #[serde(default)]
    pub items: Vec<HashMap<String, BulkItem>>,
}

/// The result of one action.
#[derive(Debug, Deserialize)]
pub struct BulkItem {
    /// HTTP-like status of the action.
    pub status: u16,
    /// The error, when it failed.
    #[serde(default)]
    pub error: Option<Json>,
}

impl BulkItem {
    /// The error's `type`.
    pub fn error_type(&self) -> &str {
        self.error
            .as_ref()
            .and_then(|e| e.get("type"))
            .and_then(Json::as_str)
            .unwrap_or_default()
    }

    /// `type: reason (caused by: type: reason)` for messages.
    pub fn error_text(&self) -> String {
        match &self.error {
            Some(error) => describe_error(error),
            None => format!("status {}", self.status),
        }
    }
}

/// Text of an Elasticsearch error object (`{"type": ..., "reason": ..., "caused_by": ...}`),
/// or of a plain string error.
pub fn describe_error(error: &Json) -> String {
    match error {
        Json::String(s) => s.clone(),
        Json::Object(obj) => {
            let ty = obj.get("type").and_then(Json::as_str).unwrap_or("error");
            let reason = obj.get("reason").and_then(Json::as_str).unwrap_or_default();
            let mut text = if reason.is_empty() {
                ty.to_string()
            } else {
                format!("{ty}: {reason}")
            };
            if let Some(cause) = obj.get("caused_by") {
                text.push_str(&format!(" (caused by {})", describe_error(cause)));
            }
            text
        }
        other => other.to_string(),
    }
}

/// The error text of an error answer's body (`{"error": ..., "status": ...}`), or the start
/// of the body when it is not Elasticsearch's JSON.
pub fn error_body_text(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<Json>(body) {
        if let Some(error) = json.get("error") {
            return describe_error(error);
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no details in the answer".to_string()
    } else {
        let mut cut = text.len().min(300);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text[..cut].to_string()
    }
}

/// The error `type` of an error answer's body.
pub fn error_body_type(body: &[u8]) -> String {
    serde_json::from_slice::<Json>(body)
        .ok()
        .and_then(|j| {
            j.get("error")
                .and_then(|e| e.get("type"))
                .and_then(Json::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// What became of one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    /// Written (or, for a delete, nothing to delete; or a newer version is already in).
    Done,
    /// A transient failure (429 rejected execution, 5xx unavailable shards): send again.
    Retry(String),
    /// The index disappeared: create it again, then send again.
    IndexMissing(String),
    /// An upsert lost a race with another writer of the same document: send again, and
    /// report it as errant if it keeps happening.
    Conflict(String),
    /// The document is rejected (mapping conflict, unparsable value, bad id).
    Malformed(String),
    /// Authentication or authorisation refused, or the index blocked for writes.
    Denied(String),
}

/// Classifies the result of `action`.
pub fn classify(action: &BulkAction, item: &BulkItem) -> ItemOutcome {
    let status = item.status;
    if (200..300).contains(&status) {
        return ItemOutcome::Done;
    }
    let text = item.error_text();
    let ty = item.error_type();
    match status {
        404 if action.op == Operation::Delete => ItemOutcome::Done,
        404 if ty == "index_not_found_exception" => ItemOutcome::IndexMissing(text),
        409 if action.external_version => ItemOutcome::Done,
        409 => ItemOutcome::Conflict(text),
        408 | 429 | 500..=599 => ItemOutcome::Retry(text),
        // Refused credentials, missing privileges, or a write block on the index: every
        // document would fail the same way, so the task stops rather than dead-letter them all.
        401 | 403 => ItemOutcome::Denied(text),
        _ => ItemOutcome::Malformed(text),
    }
}

/// The request body for `actions`, in order.
pub fn request_body<'a>(actions: impl IntoIterator<Item = &'a BulkAction>) -> Vec<u8> {
    let actions: Vec<&BulkAction> = actions.into_iter().collect();
    let len = actions.iter().map(|a| a.lines.len()).sum();
    let mut body = Vec::with_capacity(len);
    for action in actions {
        body.extend_from_slice(&action.lines);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action(op: Operation, external_version: bool) -> BulkAction {
        BulkAction {
            index: "i".into(),
            id: "1".into(),
            op,
            external_version,
            schema: None,
            lines: b"{}\n".to_vec(),
        }
    }

    fn item(v: Json) -> BulkItem {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn answers_parse_with_and_without_errors() {
        let ok: BulkResponse =
            serde_json::from_value(json!({"errors": false, "items": [{"index": {"status": 201}}]}))
                .unwrap();
        assert!(!ok.errors);
        assert_eq!(ok.items[0]["index"].status, 201);
        let bad: BulkResponse = serde_json::from_value(json!({"errors": true, "items": [
            {"index": {"status": 400, "error": {"type": "mapper_parsing_exception",
                "reason": "failed to parse field [n] of type [long]",
                "caused_by": {"type": "illegal_argument_exception", "reason": "For input string: \"x\""}}}}
        ]}))
        .unwrap();
        assert_eq!(
            bad.items[0]["index"].error_text(),
            "mapper_parsing_exception: failed to parse field [n] of type [long] (caused by illegal_argument_exception: For input string: \"x\")"
        );
    }

    #[test]
    fn items_are_classified() {
        let index = action(Operation::Index, true);
        let upsert = action(Operation::Update, false);
        let delete = action(Operation::Delete, false);
        assert_eq!(
            classify(&index, &item(json!({"status": 201}))),
            ItemOutcome::Done
        );
        assert_eq!(
            classify(
                &index,
                &item(
                    json!({"status": 409, "error": {"type": "version_conflict_engine_exception"}})
                )
            ),
            ItemOutcome::Done
        );
        assert!(matches!(
            classify(
                &upsert,
                &item(
                    json!({"status": 409, "error": {"type": "version_conflict_engine_exception"}})
                )
            ),
            ItemOutcome::Conflict(_)
        ));
        assert_eq!(
            classify(&delete, &item(json!({"status": 404}))),
            ItemOutcome::Done
        );
        assert!(matches!(
            classify(
                &index,
                &item(json!({"status": 429, "error": {"type": "es_rejected_execution_exception"}}))
            ),
            ItemOutcome::Retry(_)
        ));
        assert!(matches!(
            classify(
                &index,
                &item(json!({"status": 503, "error": {"type": "unavailable_shards_exception"}}))
            ),
            ItemOutcome::Retry(_)
        ));
        assert!(matches!(
            classify(
                &index,
                &item(json!({"status": 404, "error": {"type": "index_not_found_exception"}}))
            ),
            ItemOutcome::IndexMissing(_)
        ));
        assert!(matches!(
            classify(
                &index,
                &item(json!({"status": 400, "error": {"type": "mapper_parsing_exception"}}))
            ),
            ItemOutcome::Malformed(_)
        ));
        assert!(matches!(
            classify(
                &index,
                &item(json!({"status": 403, "error": {"type": "security_exception"}}))
            ),
            ItemOutcome::Denied(_)
        ));
        assert!(matches!(
            classify(
                &index,
                &item(json!({"status": 403, "error": {"type": "cluster_block_exception"}}))
            ),
            ItemOutcome::Denied(_)
        ));
    }

    #[test]
    fn error_bodies_are_read() {
        let body = br#"{"error":{"root_cause":[],"type":"security_exception","reason":"unable to authenticate user [elastic]"},"status":401}"#;
        assert_eq!(
            error_body_text(body),
            "security_exception: unable to authenticate user [elastic]"
        );
        assert_eq!(error_body_type(body), "security_exception");
        assert_eq!(
            error_body_text(b"<html>Bad Gateway</html>"),
            "<html>Bad Gateway</html>"
        );
    }
}
