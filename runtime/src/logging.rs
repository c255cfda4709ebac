//! Log levels changed while the worker runs, as Kafka Connect's `/admin/loggers` does
//! (KIP-495). Loggers are `tracing` targets (`sluice_runtime::task::sink`, `librdkafka`, ...);
//! `root` is the default level. A level set on a target applies to the targets below it
//! (`sluice_runtime` covers `sluice_runtime::task`), and setting it replaces the levels set
//! earlier on those below it, as Kafka Connect does for child loggers. Changes last until the
//! worker stops.
//!
//! The `sluice` binary installs the filter it logs through with [`install`]; a process that
//! did not (a library user with its own subscriber) gets [`Error::NotInstalled`].

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::info;

/// The name of the default level.
pub const ROOT_LOGGER: &str = "root";

/// Why a level could not be read or changed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The level is not one of Kafka Connect's.
    #[error("invalid log level '{0}': use one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL, OFF")]
    InvalidLevel(String),
    /// The process's logging was not set up by the `sluice` binary.
    #[error("log levels cannot be changed in this process: its logging was not set up by the sluice worker")]
    NotInstalled,
    /// The new filter was refused.
    #[error("cannot apply the log filter '{filter}': {reason}")]
    Apply {
        /// The filter.
        filter: String,
        /// Why.
        reason: String,
    },
}

/// A logger's level as `/admin/loggers` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerLevel {
    /// `TRACE`, `DEBUG`, `INFO`, `WARN`, `ERROR` or `OFF`.
    pub level: String,
    /// When it was last set through the REST API, epoch milliseconds (`None`: from startup).
    pub last_modified: Option<i64>,
}

type Apply = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// The levels in force and how to apply new ones.
struct LogLevels {
    /// Directives of the startup filter that are not `target=level` (span filters): kept as is.
    extra: Vec<String>,
    loggers: Mutex<BTreeMap<String, LoggerLevel>>,
    apply: Apply,
}

static LEVELS: OnceLock<LogLevels> = OnceLock::new();

/// Normalises a level name to Kafka Connect's spelling (`FATAL` is `tracing`'s `ERROR`).
///
/// # Errors
/// [`Error::InvalidLevel`] for anything else.
pub fn parse_level(level: &str) -> Result<String, Error> {
    match level.trim().to_ascii_uppercase().as_str() {
        l @ ("TRACE" | "DEBUG" | "INFO" | "WARN" | "ERROR" | "OFF") => Ok(l.to_string()),
        "FATAL" => Ok("ERROR".to_string()),
        "WARNING" => Ok("WARN".to_string()),
        _ => Err(Error::InvalidLevel(level.to_string())),
    }
}

/// Splits a startup filter (`info,librdkafka=warn`) into logger levels and other directives.
fn parse_filter(filter: &str) -> (BTreeMap<String, LoggerLevel>, Vec<String>) {
    let mut loggers = BTreeMap::new();
    let mut extra = Vec::new();
    loggers.insert(
        ROOT_LOGGER.to_string(),
        LoggerLevel {
            level: "ERROR".to_string(),
            last_modified: None,
        },
    );
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let (target, level) = match directive.split_once('=') {
            Some((t, l)) => (t, l),
            None => (ROOT_LOGGER, directive),
        };
        match parse_level(level) {
            Ok(level) if !target.contains('[') => {
                loggers.insert(
                    target.to_string(),
                    LoggerLevel {
                        level,
                        last_modified: None,
                    },
                );
            }
            _ => extra.push(directive.to_string()),
        }
    }
    (loggers, extra)
}

fn render_filter(loggers: &BTreeMap<String, LoggerLevel>, extra: &[String]) -> String {
    let mut parts = Vec::new();
    for (name, l) in loggers {
        let level = l.level.to_ascii_lowercase();
        if name == ROOT_LOGGER {
            parts.insert(0, level);
        } else {
            parts.push(format!("{name}={level}"));
        }
    }
    parts.extend(extra.iter().cloned());
    parts.join(",")
}

/// Makes `/admin/loggers` work: `filter` is the filter the process started with, `apply`
/// replaces the filter in force. Only the first call counts.
pub fn install(filter: &str, apply: impl Fn(&str) -> Result<(), String> + Send + Sync + 'static) {
    let (loggers, extra) = parse_filter(filter);
    let _ = LEVELS.set(LogLevels {
        extra,
        loggers: Mutex::new(loggers),
        apply: Box::new(apply),
    });
}

fn levels() -> Result<&'static LogLevels, Error> {
    LEVELS.get().ok_or(Error::NotInstalled)
}

/// Every logger with a level of its own, `root` included.
///
/// # Errors
/// [`Error::NotInstalled`].
pub fn loggers() -> Result<BTreeMap<String, LoggerLevel>, Error> {
    Ok(levels()?.loggers.lock().expect("loggers lock").clone())
}

fn is_below(name: &str, ancestor: &str) -> bool {
    ancestor == ROOT_LOGGER
        || name
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with("::"))
}

/// The level in force for `name`: its own, else its nearest ancestor's, else root's.
///
/// # Errors
/// [`Error::NotInstalled`].
pub fn logger(name: &str) -> Result<LoggerLevel, Error> {
    let loggers = levels()?.loggers.lock().expect("loggers lock");
    if let Some(l) = loggers.get(name) {
        return Ok(l.clone());
    }
    let nearest = loggers
        .iter()
        .filter(|(n, _)| is_below(name, n))
        .max_by_key(|(n, _)| if *n == ROOT_LOGGER { 0 } else { n.len() })
        .map(|(_, l)| l.level.clone())
        .unwrap_or_else(|| "ERROR".to_string());
    Ok(LoggerLevel {
        level: nearest,
        last_modified: None,
    })
}

/// Sets `name` (and every logger below it) to `level`; returns the loggers changed.
///
/// # Errors
/// [`Error::InvalidLevel`], [`Error::NotInstalled`], or [`Error::Apply`] when the filter was
/// refused (the levels then stay as they were).
pub fn set_level(name: &str, level: &str) -> Result<Vec<String>, Error> {
    let level = parse_level(level)?;
    let levels = levels()?;
    let mut loggers = levels.loggers.lock().expect("loggers lock");
    let mut next = loggers.clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut changed = vec![name.to_string()];
    if name == ROOT_LOGGER {
        // Kafka Connect's root sets every logger.
        changed = next.keys().cloned().collect();
    } else {
        changed.extend(
            next.keys()
                .filter(|n| *n != name && *n != ROOT_LOGGER && is_below(n, name))
                .cloned(),
        );
    }
    for n in &changed {
        next.insert(
            n.clone(),
            LoggerLevel {
                level: level.clone(),
                last_modified: Some(now),
            },
        );
    }
    let filter = render_filter(&next, &levels.extra);
    (levels.apply)(&filter).map_err(|reason| Error::Apply {
        filter: filter.clone(),
        reason,
    })?;
    *loggers = next;
    info!(logger = name, level = %level, filter = %filter, "log level changed");
    changed.sort();
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_filter_becomes_loggers_and_back() {
        let (loggers, extra) = parse_filter("info,librdkafka=warn,sluice_runtime[task]=debug");
        assert_eq!(loggers["root"].level, "INFO");
        assert_eq!(loggers["librdkafka"].level, "WARN");
        assert_eq!(extra, ["sluice_runtime[task]=debug"]);
        assert_eq!(
            render_filter(&loggers, &extra),
            "info,librdkafka=warn,sluice_runtime[task]=debug"
        );
    }

    #[test]
    fn levels_follow_kafka_connect_names() {
        assert_eq!(parse_level("debug").unwrap(), "DEBUG");
        assert_eq!(parse_level("FATAL").unwrap(), "ERROR");
        assert!(matches!(parse_level("loud"), Err(Error::InvalidLevel(_))));
    }

    #[test]
    fn descendants_are_below_their_ancestors_only() {
        assert!(is_below("sluice_runtime::task", "sluice_runtime"));
        assert!(!is_below("sluice_runtimes", "sluice_runtime"));
        assert!(is_below("anything", ROOT_LOGGER));
    }
}
