//! The options of `http-source`, named as Confluent's HTTP Source connector names them where
//! it has the same feature, and their parsed form.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::Method;
use sluice_sdk::{
    ConfigDef, ConfigErrors, ConfigKey, ConfigType, Error, Importance, Props, Result, Validator,
};

use super::template::{check_variables, uses, ENTITY_VAR, OFFSET_VAR};
use crate::client::{parse_headers, RetryPolicy};

/// `url`: the URL template.
pub const URL: &str = "url";
/// `entity.names`: the values of `${entityName}`.
pub const ENTITY_NAMES: &str = "entity.names";
/// `topic.name.pattern`: the destination topic, `${entityName}` allowed.
pub const TOPIC_NAME_PATTERN: &str = "topic.name.pattern";
/// `http.request.method`: `GET` or `POST`.
pub const METHOD: &str = "http.request.method";
/// `http.request.headers`: `Name: value` pairs.
pub const HEADERS: &str = "http.request.headers";
/// `http.request.headers.separator`: between two headers.
pub const HEADERS_SEPARATOR: &str = "http.request.headers.separator";
/// `http.request.parameters`: `name=value` query parameters.
pub const PARAMETERS: &str = "http.request.parameters";
/// `http.request.parameters.separator`: between two parameters.
pub const PARAMETERS_SEPARATOR: &str = "http.request.parameters.separator";
/// `http.request.body`: the body of a POST.
pub const BODY: &str = "http.request.body";
/// `http.initial.offset`: `${offset}` before the first record.
pub const INITIAL_OFFSET: &str = "http.initial.offset";
/// `http.response.data.json.pointer`: where the records are in the answer.
pub const DATA_POINTER: &str = "http.response.data.json.pointer";
/// `http.offset.json.pointer`: each record's offset field.
pub const OFFSET_POINTER: &str = "http.offset.json.pointer";
/// `http.response.key.json.pointer`: each record's key field.
pub const KEY_POINTER: &str = "http.response.key.json.pointer";
/// `request.interval.ms`: time between two requests for the same entity.
pub const REQUEST_INTERVAL_MS: &str = "request.interval.ms";
/// `auth.type`: `NONE`, `BASIC` or `BEARER`.
pub const AUTH_TYPE: &str = "auth.type";
/// `connection.user`: the user for basic authentication.
pub const CONNECTION_USER: &str = "connection.user";
/// `connection.password`: the password for basic authentication.
pub const CONNECTION_PASSWORD: &str = "connection.password";
/// `bearer.token`: the token for bearer authentication.
pub const BEARER_TOKEN: &str = "bearer.token";
/// `http.request.timeout.ms`: how long one request may take.
pub const REQUEST_TIMEOUT_MS: &str = "http.request.timeout.ms";
/// `max.retries`: retries of a failed request within one poll.
pub const MAX_RETRIES: &str = "max.retries";
/// `retry.backoff.ms`: the first wait before a retry.
pub const RETRY_BACKOFF_MS: &str = "retry.backoff.ms";
pub use crate::assign::{REQUESTS_PER_DAY, REQUESTS_PER_MINUTE};
/// `backoff.max.ms`: the longest gap between tries of a failing entity.
pub const BACKOFF_MAX_MS: &str = "backoff.max.ms";

/// The declared options of `http-source`.
pub fn config_def() -> ConfigDef {
    let non_negative = Validator::AtLeast(0.0);
    ConfigDef::new()
        .define(
            ConfigKey::new(URL, ConfigType::String, Importance::High,
                "The URL to poll. May use ${entityName} (each of entity.names) and ${offset} (the last offset written, or http.initial.offset): https://api.example.com/v1/${entityName}/events?since=${offset}.")
                .validator(Validator::NonEmpty)
                .group("Request"),
        )
        .define(
            ConfigKey::new(ENTITY_NAMES, ConfigType::List, Importance::High,
                "Values of ${entityName}, comma-separated. Each entity is polled on its own, is one source partition, and entities are spread over the tasks. Leave empty to poll one URL.")
                .default_value("")
                .group("Request"),
        )
        .define(
            ConfigKey::new(TOPIC_NAME_PATTERN, ConfigType::String, Importance::High,
                "Topic the records are written to; may use ${entityName} for a topic per entity.")
                .validator(Validator::NonEmpty)
                .group("Records"),
        )
        .define(
            ConfigKey::new(METHOD, ConfigType::String, Importance::Medium, "GET or POST.")
                .default_value("GET")
                .validator(Validator::one_of(&["GET", "POST"]))
                .group("Request"),
        )
        .define(
            ConfigKey::new(HEADERS, ConfigType::String, Importance::Medium,
                "Request headers as 'Name: value' pairs separated by http.request.headers.separator, e.g. 'Accept: application/json|X-Api-Key: ${env:API_KEY}'. ${entityName} and ${offset} are replaced.")
                .default_value("")
                .group("Request"),
        )
        .define(
            ConfigKey::new(HEADERS_SEPARATOR, ConfigType::String, Importance::Low,
                "Separator between two headers in http.request.headers.")
                .default_value("|")
                .validator(Validator::NonEmpty)
                .group("Request"),
        )
        .define(
            ConfigKey::new(PARAMETERS, ConfigType::String, Importance::Medium,
                "Query parameters as 'name=value' pairs separated by http.request.parameters.separator; values are URL-encoded. ${entityName} and ${offset} are replaced.")
                .default_value("")
                .group("Request"),
        )
        .define(
            ConfigKey::new(PARAMETERS_SEPARATOR, ConfigType::String, Importance::Low,
                "Separator between two parameters in http.request.parameters.")
                .default_value("&")
                .validator(Validator::NonEmpty)
                .group("Request"),
        )
        .define(
            ConfigKey::new(BODY, ConfigType::String, Importance::Low,
                "Body of a POST request (sent as application/json). ${entityName} and ${offset} are replaced.")
                .default_value("")
                .group("Request"),
        )
        .define(
            ConfigKey::new(INITIAL_OFFSET, ConfigType::String, Importance::Low,
                "The value of ${offset} before the first record of an entity has been written.")
                .default_value("")
                .group("Records"),
        )
        .define(
            ConfigKey::new(DATA_POINTER, ConfigType::String, Importance::High,
                "JSON pointer (RFC 6901) to the records in the answer: an array gives one record per element, an object one record. Empty: the whole answer.")
                .default_value("")
                .validator(Validator::custom(check_pointer))
                .group("Records"),
        )
        .define(
            ConfigKey::new(OFFSET_POINTER, ConfigType::String, Importance::High,
                "JSON pointer to each record's offset: a field that grows with each new record (an id, an ISO-8601 time). Only records with an offset above the last one written are emitted, in offset order. Empty: a record set is emitted when it differs from the last one emitted.")
                .default_value("")
                .validator(Validator::custom(check_pointer))
                .group("Records"),
        )
        .define(
            ConfigKey::new(KEY_POINTER, ConfigType::String, Importance::Medium,
                "JSON pointer to each record's key field. Empty: records have no key.")
                .default_value("")
                .validator(Validator::custom(check_pointer))
                .group("Records"),
        )
        .define(
            ConfigKey::new(REQUEST_INTERVAL_MS, ConfigType::Long, Importance::High,
                "Time between two requests for the same entity, in milliseconds.")
                .default_value("15000")
                .validator(Validator::AtLeast(1.0))
                .group("Request"),
        )
        .define(
            ConfigKey::new(AUTH_TYPE, ConfigType::String, Importance::Medium,
                "NONE, BASIC (connection.user and connection.password) or BEARER (bearer.token). Other schemes: set a header in http.request.headers.")
                .default_value("NONE")
                .validator(Validator::one_of(&["NONE", "BASIC", "BEARER"]))
                .group("Authentication"),
        )
        .define(
            ConfigKey::new(CONNECTION_USER, ConfigType::String, Importance::Medium,
                "User for auth.type=BASIC.")
                .optional()
                .group("Authentication"),
        )
        .define(
            ConfigKey::new(CONNECTION_PASSWORD, ConfigType::Password, Importance::Medium,
                "Password for auth.type=BASIC; \"${env:NAME}\" reads it from the environment.")
                .optional()
                .group("Authentication"),
        )
        .define(
            ConfigKey::new(BEARER_TOKEN, ConfigType::Password, Importance::Medium,
                "Token for auth.type=BEARER; \"${env:NAME}\" reads it from the environment.")
                .optional()
                .group("Authentication"),
        )
        .define(
            ConfigKey::new(REQUEST_TIMEOUT_MS, ConfigType::Int, Importance::Low,
                "How long one request may take, connecting included, in milliseconds.")
                .default_value("30000")
                .validator(Validator::AtLeast(1.0))
                .group("Limits"),
        )
        .define(
            ConfigKey::new(MAX_RETRIES, ConfigType::Int, Importance::Low,
                "Retries of a request that timed out, could not connect or got HTTP 408, 429 or 5xx, within one poll.")
                .default_value("5")
                .validator(non_negative.clone())
                .group("Limits"),
        )
        .define(
            ConfigKey::new(RETRY_BACKOFF_MS, ConfigType::Long, Importance::Low,
                "Wait before the first retry, in milliseconds; doubles with each retry.")
                .default_value("1000")
                .validator(non_negative.clone())
                .group("Limits"),
        )
        .define(
            ConfigKey::new(REQUESTS_PER_MINUTE, ConfigType::Int, Importance::Low,
                "Request budget: at most this many requests in any 60 seconds, shared by the tasks (0: no limit).")
                .default_value("0")
                .validator(non_negative.clone())
                .group("Limits"),
        )
        .define(
            ConfigKey::new(REQUESTS_PER_DAY, ConfigType::Int, Importance::Low,
                "Request budget: at most this many requests in any 24 hours, shared by the tasks (0: no limit).")
                .default_value("0")
                .validator(non_negative)
                .group("Limits"),
        )
        .define(
            ConfigKey::new(BACKOFF_MAX_MS, ConfigType::Long, Importance::Low,
                "Longest gap between tries of an entity whose requests keep failing, in milliseconds.")
                .default_value("3600000")
                .validator(Validator::AtLeast(1.0))
                .group("Limits"),
        )
}

fn check_pointer(value: &sluice_sdk::config::ConfigValue) -> std::result::Result<(), String> {
    let text = value.to_string();
    if text.is_empty() || text.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "must be empty or a JSON pointer starting with '/' (got '{text}'; for a field 'id' write '/id')"
        ))
    }
}

/// `http-source`'s configuration, parsed and checked.
#[derive(Debug, Clone)]
pub struct HttpSourceConfig {
    /// The URL template.
    pub url: String,
    /// Entities (empty: one unnamed entity).
    pub entity_names: Vec<String>,
    /// Topic template.
    pub topic_pattern: String,
    /// GET or POST.
    pub method: Method,
    /// Header template text.
    pub headers: String,
    /// Separator in `headers`.
    pub headers_separator: String,
    /// Parameter template text.
    pub parameters: String,
    /// Separator in `parameters`.
    pub parameters_separator: String,
    /// Body template.
    pub body: String,
    /// `${offset}` before any offset.
    pub initial_offset: String,
    /// Pointer to the records.
    pub data_pointer: String,
    /// Pointer to each record's offset (empty: content fingerprints).
    pub offset_pointer: String,
    /// Pointer to each record's key (empty: no key).
    pub key_pointer: String,
    /// Time between two requests of one entity.
    pub request_interval: Duration,
    /// The `Authorization` header from `auth.type`.
    pub authorization: Option<HeaderValue>,
    /// Timeout of one request.
    pub request_timeout: Duration,
    /// Retries within a poll.
    pub retry: RetryPolicy,
    /// Budget per minute.
    pub requests_per_minute: u32,
    /// Budget per day.
    pub requests_per_day: u32,
    /// Longest gap between tries of a failing entity.
    pub backoff_max: Duration,
}

impl HttpSourceConfig {
    /// Parses `props`, reporting every bad option at once.
    ///
    /// # Errors
    /// [`Error::Config`] naming each bad option and how to fix it.
    pub fn parse(props: &Props) -> Result<Self> {
        let (config, mut errors) = config_def().parse_lenient(props);
        let text = |name: &str| config.get_str(name).unwrap_or_default().to_string();
        let entity_names = config.get_list(ENTITY_NAMES);
        let both = [ENTITY_VAR, OFFSET_VAR];
        for name in [URL, HEADERS, PARAMETERS, BODY] {
            if let Err(e) = check_variables(&text(name), &both) {
                errors.push(name, e);
            }
        }
        if let Err(e) = check_variables(&text(TOPIC_NAME_PATTERN), &[ENTITY_VAR]) {
            errors.push(TOPIC_NAME_PATTERN, e);
        }
        let templates = [URL, HEADERS, PARAMETERS, BODY, TOPIC_NAME_PATTERN];
        let uses_entity = templates.iter().any(|n| uses(&text(n), ENTITY_VAR));
        if entity_names.is_empty() && uses_entity {
            errors.push(
                ENTITY_NAMES,
                "is empty but a template uses ${entityName}; list the entities to poll (a,b,c)",
            );
        }
        let request_templates = [URL, HEADERS, PARAMETERS, BODY];
        if !entity_names.is_empty() && !request_templates.iter().any(|n| uses(&text(n), ENTITY_VAR))
        {
            errors.push(ENTITY_NAMES, "lists entities but neither url, http.request.headers, http.request.parameters nor http.request.body uses ${entityName}, so every entity would fetch the same data; put ${entityName} in the url");
        }
        if !errors.is_empty() {
            return Err(Error::Config(errors));
        }
        // The URL must parse once its variables are filled in.
        let sample = super::template::render(&text(URL), Some("entity"), "0", true);
        if let Err(e) =
            crate::stock::config::check_http_url(&sluice_sdk::config::ConfigValue::String(sample))
        {
            errors.push(URL, e);
        }
        if let Err(e) = parse_headers(&text(HEADERS), &text(HEADERS_SEPARATOR)) {
            errors.push(HEADERS, e);
        }
        let authorization = match text(AUTH_TYPE).to_ascii_uppercase().as_str() {
            "BASIC" => match (
                config.get_str(CONNECTION_USER),
                config.get_password(CONNECTION_PASSWORD),
            ) {
                (Some(user), password) => {
                    let password = password.map(|p| p.value()).unwrap_or_default();
                    Some(basic_authorization(user, password))
                }
                (None, _) => {
                    errors.push(CONNECTION_USER, "is required with auth.type=BASIC");
                    None
                }
            },
            "BEARER" => match config.get_password(BEARER_TOKEN) {
                Some(token) => HeaderValue::from_str(&format!("Bearer {}", token.value()))
                    .map_err(|_| {
                        errors.push(BEARER_TOKEN, "holds characters not allowed in a header")
                    })
                    .ok(),
                None => {
                    errors.push(BEARER_TOKEN, "is required with auth.type=BEARER");
                    None
                }
            },
            _ => None,
        }
        .map(|mut value| {
            value.set_sensitive(true);
            value
        });
        if !errors.is_empty() {
            return Err(Error::Config(errors));
        }
        let ms = |name| Duration::from_millis(config.get_i64(name).unwrap_or(0).max(0) as u64);
        let count =
            |name| u32::try_from(config.get_i64(name).unwrap_or(0).max(0)).unwrap_or(u32::MAX);
        Ok(Self {
            url: text(URL),
            entity_names,
            topic_pattern: text(TOPIC_NAME_PATTERN),
            method: if text(METHOD).eq_ignore_ascii_case("POST") {
                Method::POST
            } else {
                Method::GET
            },
            headers: text(HEADERS),
            headers_separator: text(HEADERS_SEPARATOR),
            parameters: text(PARAMETERS),
            parameters_separator: text(PARAMETERS_SEPARATOR),
            body: text(BODY),
            initial_offset: text(INITIAL_OFFSET),
            data_pointer: text(DATA_POINTER),
            offset_pointer: text(OFFSET_POINTER),
            key_pointer: text(KEY_POINTER),
            request_interval: ms(REQUEST_INTERVAL_MS),
            authorization,
            request_timeout: ms(REQUEST_TIMEOUT_MS),
            retry: RetryPolicy {
                max_retries: count(MAX_RETRIES) as usize,
                backoff: ms(RETRY_BACKOFF_MS),
                max_backoff: ms(BACKOFF_MAX_MS),
            },
            requests_per_minute: count(REQUESTS_PER_MINUTE),
            requests_per_day: count(REQUESTS_PER_DAY),
            backoff_max: ms(BACKOFF_MAX_MS),
        })
    }

    /// The checks of [`parse`](Self::parse), as the validate endpoint reports them.
    pub fn check(props: &Props) -> ConfigErrors {
        match Self::parse(props) {
            Err(Error::Config(errors)) => errors,
            _ => ConfigErrors::default(),
        }
    }

    /// The headers of a request: `http.request.headers` rendered, plus authentication.
    ///
    /// # Errors
    /// When a rendered header is not valid (an entity or offset with a line break...).
    pub fn render_headers(
        &self,
        entity: Option<&str>,
        offset: &str,
    ) -> std::result::Result<HeaderMap, String> {
        let rendered = super::template::render(&self.headers, entity, offset, false);
        let mut headers = parse_headers(&rendered, &self.headers_separator)?;
        if let Some(auth) = &self.authorization {
            headers.insert(AUTHORIZATION, auth.clone());
        }
        Ok(headers)
    }
}

fn basic_authorization(user: &str, password: &str) -> HeaderValue {
    use base64::Engine;
    let credentials =
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {credentials}"))
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"))
}

#[cfg(test)]
mod tests {
    use super::*;

    use sluice_sdk::config::props;

    #[test]
    fn a_minimal_config_takes_the_defaults() {
        let c = HttpSourceConfig::parse(&props(&[
            (URL, "http://h/events"),
            (TOPIC_NAME_PATTERN, "events"),
        ]))
        .unwrap();
        assert_eq!(c.method, Method::GET);
        assert_eq!(c.request_interval, Duration::from_secs(15));
        assert!(c.entity_names.is_empty() && c.offset_pointer.is_empty());
        assert!(c.render_headers(None, "").unwrap().is_empty());
    }

    #[test]
    fn templates_and_entities_must_agree() {
        let err = HttpSourceConfig::parse(&props(&[
            (URL, "http://h/${symbol}"),
            (TOPIC_NAME_PATTERN, "${entityName}"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("option 'url' uses the unknown variable '${symbol}'"),
            "{err}"
        );
        assert!(
            err.contains("option 'entity.names' is empty but a template uses ${entityName}"),
            "{err}"
        );
        let err = HttpSourceConfig::parse(&props(&[
            (URL, "http://h/all"),
            (ENTITY_NAMES, "a,b"),
            (TOPIC_NAME_PATTERN, "t"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("every entity would fetch the same data"),
            "{err}"
        );
    }

    #[test]
    fn pointers_and_urls_are_checked() {
        let err = HttpSourceConfig::parse(&props(&[
            (URL, "not a url"),
            (TOPIC_NAME_PATTERN, "t"),
            (OFFSET_POINTER, "id"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("option 'http.offset.json.pointer' must be empty or a JSON pointer starting with '/' (got 'id'; for a field 'id' write '/id')"), "{err}");
        let err = HttpSourceConfig::parse(&props(&[(URL, "not a url"), (TOPIC_NAME_PATTERN, "t")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("option 'url' must be an http:// or https:// URL"),
            "{err}"
        );
    }

    #[test]
    fn authentication_becomes_a_header() {
        let c = HttpSourceConfig::parse(&props(&[
            (URL, "http://h/x"),
            (TOPIC_NAME_PATTERN, "t"),
            (AUTH_TYPE, "basic"),
            (CONNECTION_USER, "Aladdin"),
            (CONNECTION_PASSWORD, "open sesame"),
            (HEADERS, "X-Entity: ${entityName}|Accept: application/json"),
            (ENTITY_NAMES, "e1"),
        ]))
        .unwrap();
        let h = c.render_headers(Some("e1"), "").unwrap();
        assert_eq!(h[AUTHORIZATION], "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(h["x-entity"], "e1");
        let err = HttpSourceConfig::parse(&props(&[
            (URL, "http://h/x"),
            (TOPIC_NAME_PATTERN, "t"),
            (AUTH_TYPE, "BEARER"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("option 'bearer.token' is required with auth.type=BEARER"),
            "{err}"
        );
    }
}
