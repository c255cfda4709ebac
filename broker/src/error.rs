//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Errors of the broker library. Protocol-level failures never surface here: they become
/// Kafka error codes in responses. These are the failures of starting, storing and stopping.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is out of range or malformed.
    #[error("invalid broker configuration: {0}")]
    Config(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source} (is another broker running there? pick another --listen address)")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// A file or directory of the log could not be read or written.
    #[error("storage error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A metadata file of the data dir cannot be understood.
    #[error("corrupt metadata file {path}: {reason}")]
    CorruptMetadata {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A background task failed to join (a panic inside the broker).
    #[error("broker task failed: {0}")]
    Task(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.into(),
            source,
        })
    }
}
