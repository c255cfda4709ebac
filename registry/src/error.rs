//! Errors: [`Error`] for the store and the client, [`ApiError`] for Confluent's REST answers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The crate's error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kafka cluster could not be used (retriable: it may come back).
    #[error("schema registry storage ({topic}): {message}")]
    Kafka {
        /// The `_schemas` topic.
        topic: String,
        /// What failed.
        message: String,
    },
    /// The listen address is not usable.
    #[error("cannot listen on {addr} for the schema registry: {message}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        message: String,
    },
    /// A registry could not be reached (retriable).
    #[error("schema registry {url} unreachable: {message}")]
    Unreachable {
        /// The registry's URL.
        url: String,
        /// Why.
        message: String,
    },
    /// A registry answered with an error.
    #[error("schema registry {url} answered {status} (error code {error_code}): {message}")]
    Registry {
        /// The registry's URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Confluent's error code.
        error_code: i64,
        /// Its message.
        message: String,
    },
}

impl Error {
    /// Whether trying again later may succeed (outages, not answers).
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Kafka { .. } | Self::Unreachable { .. } => true,
            Self::Registry { status, .. } => *status >= 500,
            Self::Listen { .. } => false,
        }
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Confluent's error codes.
pub mod codes {
    /// Subject not found.
    pub const SUBJECT_NOT_FOUND: i64 = 40401;
    /// Version not found.
    pub const VERSION_NOT_FOUND: i64 = 40402;
    /// Schema not found.
    pub const SCHEMA_NOT_FOUND: i64 = 40403;
    /// Subject soft-deleted (and `permanent` not asked).
    pub const SUBJECT_SOFT_DELETED: i64 = 40404;
    /// Subject not soft-deleted before a permanent delete.
    pub const SUBJECT_NOT_SOFT_DELETED: i64 = 40405;
    /// Version soft-deleted.
    pub const VERSION_SOFT_DELETED: i64 = 40406;
    /// Version not soft-deleted before a permanent delete.
    pub const VERSION_NOT_SOFT_DELETED: i64 = 40407;
    /// No subject-level compatibility.
    pub const SUBJECT_COMPATIBILITY_NOT_CONFIGURED: i64 = 40408;
    /// No subject-level mode.
    pub const SUBJECT_MODE_NOT_CONFIGURED: i64 = 40409;
    /// Incompatible schema.
    pub const INCOMPATIBLE_SCHEMA: i64 = 409;
    /// Invalid schema.
    pub const INVALID_SCHEMA: i64 = 42201;
    /// Invalid version.
    pub const INVALID_VERSION: i64 = 42202;
    /// Invalid compatibility level.
    pub const INVALID_COMPATIBILITY_LEVEL: i64 = 42203;
    /// Invalid mode.
    pub const INVALID_MODE: i64 = 42204;
    /// Operation not permitted (read-only mode).
    pub const OPERATION_NOT_PERMITTED: i64 = 42205;
    /// Store error.
    pub const STORE_ERROR: i64 = 50001;
}

/// An error answer: HTTP status and `{"error_code": ..., "message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Confluent's error code.
    pub error_code: i64,
    /// What was wrong.
    pub message: String,
}

impl ApiError {
    /// An error with `status`, `error_code` and `message`.
    pub fn new(status: StatusCode, error_code: i64, message: impl Into<String>) -> Self {
        Self {
            status,
            error_code,
            message: message.into(),
        }
    }

    /// 40401.
    pub fn subject_not_found(subject: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::SUBJECT_NOT_FOUND,
            format!("Subject '{subject}' not found."),
        )
    }

    /// 40402.
    pub fn version_not_found(version: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::VERSION_NOT_FOUND,
            format!("Version {version} not found."),
        )
    }

    /// 40403.
    pub fn schema_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::SCHEMA_NOT_FOUND,
            "Schema not found",
        )
    }

    /// A 422 with `error_code`.
    pub fn unprocessable(error_code: i64, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, error_code, message)
    }

    /// A body that is not the JSON expected.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 400, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            codes::STORE_ERROR,
            format!("Error in the backend data store: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error_code": self.error_code, "message": self.message});
        crate::api::json_response(self.status, &body)
    }
}
