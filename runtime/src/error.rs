//! The runtime's error type.

/// Everything that can go wrong in the runtime, by what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A worker setting is wrong.
    #[error("{0}")]
    Settings(String),
    /// A connector's configuration is wrong (the message names the connector and option).
    #[error("{0}")]
    InvalidConfig(String),
    /// No such connector, task or plugin.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (exists already, is file-managed, ...).
    #[error("{0}")]
    Conflict(String),
    /// The request is not allowed (a wrong internal request signature).
    #[error("{0}")]
    Forbidden(String),
    /// A Kafka client failed.
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A connector or task failed.
    #[error(transparent)]
    Connector(#[from] sluice_sdk::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Anything else the runtime could not do; the text says what.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

/// `Result` with the runtime's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
