//! The one error type connectors return to the runtime.

use std::fmt;

/// A failure inside a connector or task, classified so the runtime knows whether to retry.
///
/// The runtime retries [`Error::Retriable`] with exponential backoff up to the connector's
/// `errors.retry.timeout`; [`Error::Fatal`] fails the task at once (status `FAILED` with the
/// message as its trace); [`Error::Config`] fails validation and is reported per option.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A transient problem (connection lost, server busy, timeout); trying again may succeed.
    #[error("{0}")]
    Retriable(String),
    /// A problem that trying again will not fix (bad data, refused credentials, a bug).
    #[error("{0}")]
    Fatal(String),
    /// One or more options of the connector's configuration are wrong.
    #[error("{0}")]
    Config(ConfigErrors),
}

impl Error {
    /// A transient failure; the runtime retries the operation.
    pub fn retriable(message: impl fmt::Display) -> Self {
        Self::Retriable(message.to_string())
    }

    /// A failure retrying cannot fix; the runtime fails the task.
    pub fn fatal(message: impl fmt::Display) -> Self {
        Self::Fatal(message.to_string())
    }

    /// A single bad option: `option 'mode': must be one of ... (got 'x')`.
    pub fn config(option: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Config(ConfigErrors(vec![ConfigError::new(option, message)]))
    }

    /// Whether the runtime should try the failed operation again.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::Retriable(_))
    }
}

/// One option that failed validation, with the reason and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The option's name, as written in the connector JSON.
    pub option: String,
    /// What is wrong, phrased so the user can fix it.
    pub message: String,
}

impl ConfigError {
    /// An error for `option`.
    pub fn new(option: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            option: option.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "option '{}' {}", self.option, self.message)
    }
}

/// Every option error found in one configuration (validation reports them all at once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// Whether no error was found.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds one error.
    pub fn push(&mut self, option: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(option, message));
    }

    /// `Ok(())` when empty, else `Err(Error::Config(self))`.
    ///
    /// # Errors
    /// [`Error::Config`] with every collected error when there is at least one.
    pub fn into_result(self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::Config(self))
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<ConfigErrors> for Error {
    fn from(e: ConfigErrors) -> Self {
        Self::Config(e)
    }
}

/// `Result` with the SDK's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
