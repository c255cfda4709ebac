//! Confluent Schema Registry's REST API over the [`KafkaStore`].
//!
//! Every answer is computed after reading `_schemas` to its end. Bodies are JSON whatever the
//! request's content type (Confluent's clients send `application/vnd.schemaregistry.v1+json`);
//! bad input gets Confluent's 4xx answers, never a 500.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::{codes, ApiError};
use crate::records::{
    to_json, ConfigValue, DeleteSubjectValue, ModeValue, RecordKey, SchemaReference, SchemaValue,
    KEY_CONFIG, KEY_DELETE_SUBJECT, KEY_MODE,
};
use crate::schema::{parse_schema, CompatibilityLevel, ParsedSchema, AVRO, SUPPORTED_TYPES};
use crate::state::State as RegistryState;
use crate::store::KafkaStore;

/// Confluent's media type.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// The modes a registry or subject can be in.
pub const MODES: [&str; 4] = ["READWRITE", "READONLY", "READONLY_OVERRIDE", "IMPORT"];

type Store = Arc<KafkaStore>;
type ApiResult = Result<Response, ApiError>;
type Params = Query<HashMap<String, String>>;

/// A JSON answer with Confluent's media type.
pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, serde_json::to_vec(body).expect("JSON serializes")).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn ok(body: Value) -> ApiResult {
    Ok(json_response(StatusCode::OK, &body))
}

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The API's routes.
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/", get(|| async { ok(json!({})) }))
        .route(
            "/schemas/types",
            get(|| async { ok(json!(SUPPORTED_TYPES)) }),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route("/contexts", get(|| async { ok(json!(["."])) }))
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility_one),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", get(get_global_mode).put(put_global_mode))
        .route(
            "/mode/{subject}",
            get(get_subject_mode)
                .put(put_subject_mode)
                .delete(delete_subject_mode),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, 404, "HTTP 404 Not Found") })
        .with_state(store)
}

/// A register, lookup or compatibility request.
#[derive(Debug, Deserialize)]
struct SchemaRequest {
    schema: Option<String>,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Option<Vec<SchemaReference>>,
}

impl SchemaRequest {
    fn references(&self) -> &[SchemaReference] {
        self.references.as_deref().unwrap_or_default()
    }
}

fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::unprocessable(422, format!("Unrecognized or malformed request body: {e}"))
    })
}

fn parse_request(state: &RegistryState, request: &SchemaRequest) -> Result<ParsedSchema, ApiError> {
    let text = request
        .schema
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| ApiError::unprocessable(codes::INVALID_SCHEMA, "Empty schema"))?;
    let refs = state.reference_texts(request.references());
    parse_schema(request.schema_type.as_deref(), text, &refs)
        .map_err(|e| ApiError::unprocessable(codes::INVALID_SCHEMA, e))
}

/// `latest`, `-1` or a version from 1 to 2^31-1.
fn parse_version(text: &str) -> Result<Option<i32>, ApiError> {
    if text == "latest" || text == "-1" {
        return Ok(None);
    }
    match text.parse::<i32>() {
        Ok(v) if v >= 1 => Ok(Some(v)),
        _ => Err(ApiError::unprocessable(
            codes::INVALID_VERSION,
            format!("The specified version '{text}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
        )),
    }
}

/// The version `text` names in `subject` (soft-deleted ones only when `deleted`).
fn resolve_version(
    state: &RegistryState,
    subject: &str,
    text: &str,
    deleted: bool,
) -> Result<(i32, crate::state::VersionEntry), ApiError> {
    let wanted = parse_version(text)?;
    let all = state.versions(subject, true);
    if all.is_empty() {
        return Err(ApiError::subject_not_found(subject));
    }
    let visible = state.versions(subject, deleted);
    if visible.is_empty() && !deleted {
        return Err(ApiError::subject_not_found(subject));
    }
    match wanted {
        None => visible
            .last()
            .copied()
            .ok_or_else(|| ApiError::version_not_found(text)),
        Some(v) => visible
            .iter()
            .find(|(n, _)| *n == v)
            .copied()
            .ok_or_else(|| ApiError::version_not_found(v)),
    }
}

fn level_of(state: &RegistryState, subject: Option<&str>) -> CompatibilityLevel {
    subject
        .and_then(|s| state.config.get(&Some(s.to_string())))
        .or_else(|| state.config.get(&None))
        .and_then(|l| l.parse().ok())
        .unwrap_or(CompatibilityLevel::Backward)
}

fn mode_of(state: &RegistryState, subject: &str) -> String {
    state
        .mode
        .get(&Some(subject.to_string()))
        .or_else(|| state.mode.get(&None))
        .cloned()
        .unwrap_or_else(|| "READWRITE".to_string())
}

fn schema_body(state: &RegistryState, id: i32) -> Result<Value, ApiError> {
    let s = state
        .schemas
        .get(&id)
        .ok_or_else(ApiError::schema_not_found)?;
    let mut body = json!({"schema": s.text});
    if s.type_name() != AVRO {
        body["schemaType"] = json!(s.type_name());
    }
    if !s.references.is_empty() {
        body["references"] = json!(s.references);
    }
    Ok(body)
}

fn version_body(state: &RegistryState, subject: &str, version: i32, id: i32) -> Value {
    let mut body = json!({"subject": subject, "version": version, "id": id});
    if let Ok(Value::Object(schema)) = schema_body(state, id) {
        for (k, v) in schema {
            body[k] = v;
        }
    }
    body
}

fn parse_id(text: &str) -> Result<i32, ApiError> {
    text.parse::<i32>()
        .map_err(|_| ApiError::schema_not_found())
}

async fn synced(store: &KafkaStore) -> Result<(), ApiError> {
    store.read_to_end().await.map_err(ApiError::from)
}

async fn schema_by_id(State(store): State<Store>, Path(id): Path<String>) -> ApiResult {
    synced(&store).await?;
    let id = parse_id(&id)?;
    ok(schema_body(&store.state(), id)?)
}

async fn schema_text_by_id(State(store): State<Store>, Path(id): Path<String>) -> ApiResult {
    synced(&store).await?;
    let id = parse_id(&id)?;
    let text = {
        let state = store.state();
        state
            .schemas
            .get(&id)
            .ok_or_else(ApiError::schema_not_found)?
            .text
            .clone()
    };
    Ok(raw_schema(text))
}

fn raw_schema(text: String) -> Response {
    let mut response = (StatusCode::OK, text).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

fn usages(state: &RegistryState, id: i32, deleted: bool) -> Vec<(String, i32)> {
    state
        .subjects
        .iter()
        .flat_map(|(s, vs)| {
            vs.iter()
                .filter(move |(_, e)| e.id == id && (deleted || !e.deleted))
                .map(move |(v, _)| (s.clone(), *v))
        })
        .collect()
}

async fn subjects_by_id(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    synced(&store).await?;
    let id = parse_id(&id)?;
    let state = store.state();
    if !state.schemas.contains_key(&id) {
        return Err(ApiError::schema_not_found());
    }
    let mut subjects: Vec<String> = usages(&state, id, flag(&params, "deleted"))
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    subjects.dedup();
    ok(json!(subjects))
}

async fn versions_by_id(
    State(store): State<Store>,
    Path(id): Path<String>,
    Query(params): Params,
) -> ApiResult {
    synced(&store).await?;
    let id = parse_id(&id)?;
    let state = store.state();
    if !state.schemas.contains_key(&id) {
        return Err(ApiError::schema_not_found());
    }
    let list: Vec<Value> = usages(&state, id, flag(&params, "deleted"))
        .into_iter()
        .map(|(s, v)| json!({"subject": s, "version": v}))
        .collect();
    ok(json!(list))
}

async fn list_subjects(State(store): State<Store>, Query(params): Params) -> ApiResult {
    synced(&store).await?;
    let deleted = flag(&params, "deleted");
    let prefix = params.get("subjectPrefix").cloned().unwrap_or_default();
    let state = store.state();
    let subjects: Vec<&String> = state
        .subjects
        .iter()
        .filter(|(s, vs)| s.starts_with(&prefix) && vs.values().any(|e| deleted || !e.deleted))
        .map(|(s, _)| s)
        .collect();
    ok(json!(subjects))
}

async fn list_versions(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    synced(&store).await?;
    let versions: Vec<i32> = store
        .state()
        .versions(&subject, flag(&params, "deleted"))
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    if versions.is_empty() {
        return Err(ApiError::subject_not_found(&subject));
    }
    ok(json!(versions))
}

async fn get_version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    synced(&store).await?;
    let state = store.state();
    let (v, e) = resolve_version(&state, &subject, &version, flag(&params, "deleted"))?;
    ok(version_body(&state, &subject, v, e.id))
}

async fn get_version_schema(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    synced(&store).await?;
    let text = {
        let state = store.state();
        let (_, e) = resolve_version(&state, &subject, &version, flag(&params, "deleted"))?;
        state
            .schemas
            .get(&e.id)
            .ok_or_else(ApiError::schema_not_found)?
            .text
            .clone()
    };
    Ok(raw_schema(text))
}

/// Ids of the schemas whose references name this version.
async fn referenced_by(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    synced(&store).await?;
    let state = store.state();
    let (number, _) = resolve_version(&state, &subject, &version, false)?;
    let ids: Vec<i32> = state
        .schemas
        .iter()
        .filter(|(_, s)| {
            s.references
                .iter()
                .any(|r| r.subject == subject && r.version == number)
        })
        .map(|(id, _)| *id)
        .collect();
    ok(json!(ids))
}

async fn lookup(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(params): Params,
    bytes: Bytes,
) -> ApiResult {
    let request: SchemaRequest = body(&bytes)?;
    synced(&store).await?;
    let state = store.state();
    let parsed = parse_request(&state, &request)?;
    let versions = state.versions(&subject, flag(&params, "deleted"));
    if versions.is_empty() {
        return Err(ApiError::subject_not_found(&subject));
    }
    let found = versions.iter().rev().find(|(_, e)| {
        state
            .schemas
            .get(&e.id)
            .is_some_and(|s| s.identity() == (parsed.schema_type, parsed.normalized.as_str()))
    });
    match found {
        Some((v, e)) => ok(version_body(&state, &subject, *v, e.id)),
        None => Err(ApiError::schema_not_found()),
    }
}

/// What a registration decided, before it is written.
enum Registration {
    Exists(i32),
    Write {
        id: i32,
        version: i32,
        value: SchemaValue,
    },
}

async fn register(
    State(store): State<Store>,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    let request: SchemaRequest = body(&bytes)?;
    let _one_writer = store.write_guard().await;
    // Another registry on the cluster may take the id chosen here at the same moment: the
    // first record in the log keeps it, and this one is decided again.
    for _ in 0..5 {
        synced(&store).await?;
        let decision = decide_registration(&store.state(), &subject, &request)?;
        let (id, version, value) = match decision {
            Registration::Exists(id) => return ok(json!({"id": id})),
            Registration::Write { id, version, value } => (id, version, value),
        };
        store
            .put(
                to_json(&RecordKey::schema(&subject, version)),
                Some(to_json(&value)),
            )
            .await?;
        let landed = store
            .state()
            .subjects
            .get(&subject)
            .and_then(|vs| vs.get(&version))
            .is_some_and(|e| e.id == id && !e.deleted);
        if landed {
            return ok(json!({"id": id}));
        }
    }
    Err(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        codes::STORE_ERROR,
        format!("Register operation for subject '{subject}' kept conflicting with other registries' writes; try again"),
    ))
}

fn decide_registration(
    state: &RegistryState,
    subject: &str,
    request: &SchemaRequest,
) -> Result<Registration, ApiError> {
    let mode = mode_of(state, subject);
    if mode.starts_with("READONLY") {
        return Err(ApiError::unprocessable(
            codes::OPERATION_NOT_PERMITTED,
            format!("Subject {subject} is in read-only mode"),
        ));
    }
    let parsed = parse_request(state, request)?;
    let identity = (parsed.schema_type, parsed.normalized.as_str());
    let versions = state.versions(subject, false);
    for (_, e) in versions.iter().rev() {
        if state
            .schemas
            .get(&e.id)
            .is_some_and(|s| s.identity() == identity)
        {
            return Ok(Registration::Exists(e.id));
        }
    }
    let level = level_of(state, Some(subject));
    let previous: Vec<(i32, &ParsedSchema)> = versions
        .iter()
        .filter_map(|(v, e)| Some((*v, state.schemas.get(&e.id)?.parsed.as_ref()?)))
        .collect();
    let messages = level.check(&parsed, &previous);
    if !messages.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            codes::INCOMPATIBLE_SCHEMA,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\" (compatibility {level}), details: [{}]",
                messages.join(", ")
            ),
        ));
    }
    let id = state
        .id_of(parsed.schema_type, &parsed.normalized)
        .unwrap_or(state.max_id + 1);
    let version = state
        .subjects
        .get(subject)
        .and_then(|vs| vs.keys().next_back())
        .map_or(1, |v| v + 1);
    let text = request.schema.clone().unwrap_or_default();
    Ok(Registration::Write {
        id,
        version,
        value: SchemaValue {
            subject: subject.to_string(),
            version,
            id,
            schema_type: (parsed.schema_type != AVRO).then(|| parsed.schema_type.to_string()),
            references: request.references().to_vec(),
            schema: text,
            deleted: false,
        },
    })
}

async fn delete_subject(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    let permanent = flag(&params, "permanent");
    let _one_writer = store.write_guard().await;
    synced(&store).await?;
    let (all, live) = {
        let state = store.state();
        (
            state.versions(&subject, true),
            state.versions(&subject, false),
        )
    };
    if all.is_empty() {
        return Err(ApiError::subject_not_found(&subject));
    }
    if permanent {
        if !live.is_empty() {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                codes::SUBJECT_NOT_SOFT_DELETED,
                format!(
                    "Subject '{subject}' was not deleted first before being permanently deleted"
                ),
            ));
        }
        for (v, _) in &all {
            store
                .put(to_json(&RecordKey::schema(&subject, *v)), None)
                .await?;
        }
        return ok(json!(all.iter().map(|(v, _)| *v).collect::<Vec<_>>()));
    }
    let Some((last, _)) = live.last() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            codes::SUBJECT_SOFT_DELETED,
            format!(
                "Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
            ),
        ));
    };
    store
        .put(
            to_json(&RecordKey::of(KEY_DELETE_SUBJECT, Some(&subject))),
            Some(to_json(&DeleteSubjectValue {
                subject: subject.clone(),
                version: *last,
            })),
        )
        .await?;
    ok(json!(live.iter().map(|(v, _)| *v).collect::<Vec<_>>()))
}

async fn delete_version(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
) -> ApiResult {
    let permanent = flag(&params, "permanent");
    let _one_writer = store.write_guard().await;
    synced(&store).await?;
    let (number, entry, value) = {
        let state = store.state();
        let (number, entry) = resolve_version(&state, &subject, &version, permanent)?;
        let stored = state.schemas.get(&entry.id).cloned();
        (number, entry, stored)
    };
    let key = to_json(&RecordKey::schema(&subject, number));
    if permanent {
        if !entry.deleted {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                codes::VERSION_NOT_SOFT_DELETED,
                format!("Subject '{subject}' Version {number} was not deleted first before being permanently deleted"),
            ));
        }
        store.put(key, None).await?;
    } else {
        let stored = value.ok_or_else(ApiError::schema_not_found)?;
        let value = SchemaValue {
            subject: subject.clone(),
            version: number,
            id: entry.id,
            schema_type: stored.schema_type,
            references: stored.references,
            schema: stored.text,
            deleted: true,
        };
        store.put(key, Some(to_json(&value))).await?;
    }
    ok(json!(number))
}

async fn compatibility_one(
    State(store): State<Store>,
    Path((subject, version)): Path<(String, String)>,
    Query(params): Params,
    bytes: Bytes,
) -> ApiResult {
    let request: SchemaRequest = body(&bytes)?;
    synced(&store).await?;
    let state = store.state();
    let (number, entry) = resolve_version(&state, &subject, &version, false)?;
    let parsed = parse_request(&state, &request)?;
    let level = level_of(&state, Some(&subject));
    let previous: Vec<(i32, &ParsedSchema)> = state
        .schemas
        .get(&entry.id)
        .and_then(|s| s.parsed.as_ref())
        .map(|p| vec![(number, p)])
        .unwrap_or_default();
    compatibility_answer(level.check(&parsed, &previous), flag(&params, "verbose"))
}

async fn compatibility_all(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(params): Params,
    bytes: Bytes,
) -> ApiResult {
    let request: SchemaRequest = body(&bytes)?;
    synced(&store).await?;
    let state = store.state();
    let parsed = parse_request(&state, &request)?;
    let level = level_of(&state, Some(&subject));
    let previous: Vec<(i32, &ParsedSchema)> = state
        .versions(&subject, false)
        .iter()
        .filter_map(|(v, e)| Some((*v, state.schemas.get(&e.id)?.parsed.as_ref()?)))
        .collect();
    compatibility_answer(level.check(&parsed, &previous), flag(&params, "verbose"))
}

fn compatibility_answer(messages: Vec<String>, verbose: bool) -> ApiResult {
    let mut answer = json!({"is_compatible": messages.is_empty()});
    if verbose {
        answer["messages"] = json!(messages);
    }
    ok(answer)
}

/// `{"compatibility": "..."}` of a PUT /config.
#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: Option<String>,
    #[serde(rename = "compatibilityLevel")]
    compatibility_level: Option<String>,
}

async fn get_global_config(State(store): State<Store>) -> ApiResult {
    synced(&store).await?;
    ok(json!({"compatibilityLevel": level_of(&store.state(), None).name()}))
}

async fn put_global_config(State(store): State<Store>, bytes: Bytes) -> ApiResult {
    put_config(&store, None, &bytes).await
}

async fn put_subject_config(
    State(store): State<Store>,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    put_config(&store, Some(subject), &bytes).await
}

async fn put_config(store: &KafkaStore, subject: Option<String>, bytes: &Bytes) -> ApiResult {
    let request: ConfigRequest = body(bytes)?;
    let text = request
        .compatibility
        .or(request.compatibility_level)
        .unwrap_or_default();
    let level: CompatibilityLevel = text
        .parse()
        .map_err(|e: String| ApiError::unprocessable(codes::INVALID_COMPATIBILITY_LEVEL, e))?;
    let _one_writer = store.write_guard().await;
    store
        .put(
            to_json(&RecordKey::of(KEY_CONFIG, subject.as_deref())),
            Some(to_json(&ConfigValue {
                subject,
                compatibility_level: Some(level.name().to_string()),
            })),
        )
        .await?;
    ok(json!({"compatibility": level.name()}))
}

async fn get_subject_config(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    synced(&store).await?;
    let state = store.state();
    match state.config.get(&Some(subject.clone())) {
        Some(level) => ok(json!({"compatibilityLevel": level})),
        None if flag(&params, "defaultToGlobal") => {
            ok(json!({"compatibilityLevel": level_of(&state, None).name()}))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            codes::SUBJECT_COMPATIBILITY_NOT_CONFIGURED,
            format!("Subject '{subject}' does not have subject-level compatibility configured"),
        )),
    }
}

async fn delete_subject_config(
    State(store): State<Store>,
    Path(subject): Path<String>,
) -> ApiResult {
    let _one_writer = store.write_guard().await;
    synced(&store).await?;
    let previous = store.state().config.get(&Some(subject.clone())).cloned();
    let Some(previous) = previous else {
        return Err(ApiError::subject_not_found(&subject));
    };
    store
        .put(to_json(&RecordKey::of(KEY_CONFIG, Some(&subject))), None)
        .await?;
    ok(json!({"compatibilityLevel": previous}))
}

/// `{"mode": "..."}` of a PUT /mode.
#[derive(Debug, Deserialize)]
struct ModeRequest {
    mode: Option<String>,
}

async fn get_global_mode(State(store): State<Store>) -> ApiResult {
    synced(&store).await?;
    let state = store.state();
    let mode = state.mode.get(&None).map_or("READWRITE", String::as_str);
    ok(json!({"mode": mode}))
}

async fn put_global_mode(State(store): State<Store>, bytes: Bytes) -> ApiResult {
    put_mode(&store, None, &bytes).await
}

async fn put_subject_mode(
    State(store): State<Store>,
    Path(subject): Path<String>,
    bytes: Bytes,
) -> ApiResult {
    put_mode(&store, Some(subject), &bytes).await
}

async fn put_mode(store: &KafkaStore, subject: Option<String>, bytes: &Bytes) -> ApiResult {
    let request: ModeRequest = body(bytes)?;
    let mode = request.mode.unwrap_or_default().trim().to_ascii_uppercase();
    if !MODES.contains(&mode.as_str()) {
        return Err(ApiError::unprocessable(
            codes::INVALID_MODE,
            format!("Invalid mode. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT (got '{mode}')"),
        ));
    }
    let _one_writer = store.write_guard().await;
    store
        .put(
            to_json(&RecordKey::of(KEY_MODE, subject.as_deref())),
            Some(to_json(&ModeValue {
                subject,
                mode: mode.clone(),
            })),
        )
        .await?;
    ok(json!({"mode": mode}))
}

async fn get_subject_mode(
    State(store): State<Store>,
    Path(subject): Path<String>,
    Query(params): Params,
) -> ApiResult {
    synced(&store).await?;
    let state = store.state();
    match state.mode.get(&Some(subject.clone())) {
        Some(mode) => ok(json!({"mode": mode})),
        None if flag(&params, "defaultToGlobal") => {
            ok(json!({"mode": state.mode.get(&None).map_or("READWRITE", String::as_str)}))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            codes::SUBJECT_MODE_NOT_CONFIGURED,
            format!("Subject '{subject}' does not have subject-level mode configured"),
        )),
    }
}

async fn delete_subject_mode(State(store): State<Store>, Path(subject): Path<String>) -> ApiResult {
    let _one_writer = store.write_guard().await;
    synced(&store).await?;
    let previous = store.state().mode.get(&Some(subject.clone())).cloned();
    let Some(previous) = previous else {
        return Err(ApiError::subject_not_found(&subject));
    };
    store
        .put(to_json(&RecordKey::of(KEY_MODE, Some(&subject))), None)
        .await?;
    ok(json!({"mode": previous}))
}
