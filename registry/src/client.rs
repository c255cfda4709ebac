//! A Schema Registry REST client (Confluent's API, so it talks to this registry and to
//! Confluent's): register, look up, fetch by id (with the schema's references), a subject's
//! version, latest version. Callers cache its answers; it keeps no state but its HTTP
//! connections.

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::records::SchemaReference;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the registry is and how to log in.
#[derive(Debug, Clone, Default)]
pub struct RegistryClientConfig {
    /// Base URLs, tried in order when one is unreachable.
    pub urls: Vec<String>,
    /// Basic auth user and password.
    pub basic_auth: Option<(String, String)>,
}

/// The client.
#[derive(Debug, Clone)]
pub struct RegistryClient {
    urls: Vec<Url>,
    basic_auth: Option<(String, String)>,
    http: reqwest::Client,
}

/// A schema as the registry returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// Its id.
    pub id: i32,
    /// Its text.
    pub schema: String,
    /// Its version in the subject asked (0 when fetched by id).
    pub version: i32,
    /// The schemas of other subjects whose types it names.
    pub references: Vec<SchemaReference>,
}

impl RegistryClient {
    /// A client for `config`.
    ///
    /// # Errors
    /// A URL that does not parse.
    pub fn new(config: RegistryClientConfig) -> std::result::Result<Self, String> {
        let mut urls = Vec::new();
        let mut basic_auth = config.basic_auth;
        for text in &config.urls {
            let text = text.trim().trim_end_matches('/');
            let mut url: Url = text
                .parse()
                .map_err(|e| format!("'{text}' is not a URL: {e}"))?;
            if !url.username().is_empty() && basic_auth.is_none() {
                basic_auth = Some((
                    url.username().to_string(),
                    url.password().unwrap_or_default().to_string(),
                ));
            }
            let _ = url.set_username("");
            let _ = url.set_password(None);
            urls.push(url);
        }
        if urls.is_empty() {
            return Err("no schema registry URL given".into());
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            urls,
            basic_auth,
            http,
        })
    }

    /// The first URL, for messages.
    pub fn url(&self) -> String {
        self.urls[0].as_str().trim_end_matches('/').to_string()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Result<Value> {
        let mut last = None;
        for base in &self.urls {
            let mut url = base.clone();
            {
                let mut segments = url.path_segments_mut().map_err(|()| Error::Unreachable {
                    url: base.to_string(),
                    message: "not a base URL".into(),
                })?;
                segments.pop_if_empty();
                segments.extend(path);
            }
            if !query.is_empty() {
                url.query_pairs_mut().extend_pairs(query);
            }
            let mut request = self.http.request(method.clone(), url).header(
                "Accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            );
            if let Some((user, password)) = &self.basic_auth {
                request = request.basic_auth(user, Some(password));
            }
            if let Some(body) = &body {
                request = request
                    .header("Content-Type", "application/vnd.schemaregistry.v1+json")
                    .body(serde_json::to_vec(body).expect("JSON serializes"));
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = Some(Error::Unreachable {
                        url: base.to_string(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
            let status = response.status();
            let text = response.text().await.map_err(|e| Error::Unreachable {
                url: base.to_string(),
                message: e.to_string(),
            })?;
            let json: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if status.is_success() {
                return Ok(json);
            }
            let error_code = json["error_code"]
                .as_i64()
                .unwrap_or(i64::from(status.as_u16()));
            let message = json["message"]
                .as_str()
                .map_or_else(|| json.to_string(), str::to_string);
            let error = Error::Registry {
                url: base.to_string(),
                status: status.as_u16(),
                error_code,
                message,
            };
            if status.is_server_error() || status == StatusCode::UNAUTHORIZED {
                last = Some(error);
                continue;
            }
            return Err(error);
        }
        Err(last.expect("at least one URL"))
    }

    fn request_body(schema: &str, schema_type: Option<&str>) -> Value {
        let mut body = json!({"schema": schema});
        if let Some(t) = schema_type {
            body["schemaType"] = json!(t);
        }
        body
    }

    /// Registers `schema` under `subject` (idempotent) and returns its id.
    ///
    /// # Errors
    /// [`Error::Unreachable`], or the registry's answer (409 incompatible, 422 invalid, ...).
    pub async fn register(
        &self,
        subject: &str,
        schema: &str,
        schema_type: Option<&str>,
    ) -> Result<i32> {
        let answer = self
            .call(
                reqwest::Method::POST,
                &["subjects", subject, "versions"],
                &[],
                Some(Self::request_body(schema, schema_type)),
            )
            .await?;
        self.id_of(&answer)
    }

    /// The version of `subject` holding `schema`.
    ///
    /// # Errors
    /// [`Error::Unreachable`], or the registry's answer (40401, 40403, ...).
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &str,
        schema_type: Option<&str>,
    ) -> Result<RegisteredSchema> {
        let answer = self
            .call(
                reqwest::Method::POST,
                &["subjects", subject],
                &[],
                Some(Self::request_body(schema, schema_type)),
            )
            .await?;
        self.registered(&answer)
    }

    /// The latest version of `subject`.
    ///
    /// # Errors
    /// [`Error::Unreachable`], or the registry's answer (40401, ...).
    pub async fn latest(&self, subject: &str) -> Result<RegisteredSchema> {
        let answer = self
            .call(
                reqwest::Method::GET,
                &["subjects", subject, "versions", "latest"],
                &[],
                None,
            )
            .await?;
        self.registered(&answer)
    }

    /// The schema with `id`.
    ///
    /// # Errors
    /// [`Error::Unreachable`], or the registry's answer (40403, ...).
    pub async fn schema_by_id(&self, id: i32) -> Result<String> {
        Ok(self.registered_by_id(id).await?.schema)
    }

    /// The schema with `id` and its references (`version` 0).
    ///
    /// # Errors
    /// [`Error::Unreachable`], or the registry's answer (40403, ...).
    pub async fn registered_by_id(&self, id: i32) -> Result<RegisteredSchema> {
        let mut answer = self
            .call(
                reqwest::Method::GET,
                &["schemas", "ids", &id.to_string()],
                &[],
                None,
            )
            .await?;
        answer["id"] = json!(id);
        self.registered(&answer)
    }

    /// Version `version` of `subject`, soft-deleted or not (a schema that references it may
    /// outlive its soft deletion, as Confluent's deserializers expect).
    ///
    /// # Errors
    /// [`Error::Unreachable`], or the registry's answer (40401, 40402, ...).
    pub async fn version(&self, subject: &str, version: i32) -> Result<RegisteredSchema> {
        let answer = self
            .call(
                reqwest::Method::GET,
                &["subjects", subject, "versions", &version.to_string()],
                &[("deleted", "true")],
                None,
            )
            .await?;
        self.registered(&answer)
    }

    fn malformed(&self, answer: &Value) -> Error {
        Error::Registry {
            url: self.url(),
            status: 200,
            error_code: 0,
            message: format!("unexpected answer {answer}"),
        }
    }

    fn id_of(&self, answer: &Value) -> Result<i32> {
        answer["id"]
            .as_i64()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| self.malformed(answer))
    }

    fn registered(&self, answer: &Value) -> Result<RegisteredSchema> {
        Ok(RegisteredSchema {
            id: self.id_of(answer)?,
            schema: answer["schema"]
                .as_str()
                .ok_or_else(|| self.malformed(answer))?
                .to_string(),
            version: answer["version"].as_i64().unwrap_or(0) as i32,
            references: match answer.get("references") {
                None | Some(Value::Null) => Vec::new(),
                Some(refs) => {
                    serde_json::from_value(refs.clone()).map_err(|e| Error::Registry {
                        url: self.url(),
                        status: 200,
                        error_code: 0,
                        message: format!("malformed references in {answer}: {e}"),
                    })?
                }
            },
        })
    }
}
