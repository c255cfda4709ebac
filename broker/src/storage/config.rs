//! Topic-level configuration: the names Kafka uses, their validation, the broker-wide
//! defaults they fall back to, and the effective values a partition log reads.

use std::collections::BTreeMap;

use crate::config::BrokerConfig;

/// `cleanup.policy`.
pub const CLEANUP_POLICY: &str = "cleanup.policy";
/// `retention.ms`.
pub const RETENTION_MS: &str = "retention.ms";
/// `retention.bytes`.
pub const RETENTION_BYTES: &str = "retention.bytes";
/// `segment.bytes`.
pub const SEGMENT_BYTES: &str = "segment.bytes";
/// `segment.ms`.
pub const SEGMENT_MS: &str = "segment.ms";
/// `max.message.bytes`.
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
/// `delete.retention.ms` (used by compaction).
pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
/// `min.compaction.lag.ms` (used by compaction).
pub const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
/// `max.compaction.lag.ms` (used by compaction).
pub const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";
/// `min.cleanable.dirty.ratio` (used by compaction).
pub const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
/// `min.insync.replicas` (only 1 is possible on a single node).
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
/// `message.timestamp.type` (only `CreateTime`: batches are stored as received).
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
/// `compression.type` (only `producer`: the broker never recompresses).
pub const COMPRESSION_TYPE: &str = "compression.type";

/// The kind of value a config takes, as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigType {
    Int,
    Long,
    Double,
    String,
    List,
}

impl ConfigType {
    /// Kafka's `ConfigType` code in DescribeConfigs responses.
    pub(crate) fn code(self) -> i8 {
        match self {
            Self::Int => 3,
            Self::Long => 5,
            Self::Double => 6,
            Self::String => 2,
            Self::List => 7,
        }
    }
}

/// One topic config the broker knows.
#[derive(Debug)]
pub(crate) struct ConfigDef {
    pub(crate) name: &'static str,
    pub(crate) kind: ConfigType,
    pub(crate) doc: &'static str,
    /// The broker-wide default, as a string.
    pub(crate) default: fn(&BrokerConfig) -> String,
    /// Checks a value; the error says what is allowed.
    pub(crate) validate: fn(&str) -> Result<(), String>,
}

fn long_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |v| match v.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(n) => Err(format!("must be at least {min} (got {n})")),
        Err(_) => Err(format!("must be a whole number (got '{v}')")),
    }
}

fn int_at_least(min: i32) -> impl Fn(&str) -> Result<(), String> {
    move |v| match v.trim().parse::<i32>() {
        Ok(n) if n >= min => Ok(()),
        Ok(n) => Err(format!("must be at least {min} (got {n})")),
        Err(_) => Err(format!(
            "must be a whole number between {min} and {} (got '{v}')",
            i32::MAX
        )),
    }
}

/// Checks a `cleanup.policy` value: `delete`, `compact`, or both comma-separated.
pub(crate) fn validate_cleanup_policy(value: &str) -> Result<(), String> {
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    if parts.is_empty() || parts.iter().any(|p| *p != "delete" && *p != "compact") {
        return Err(format!(
            "must be delete, compact or compact,delete (got '{value}')"
        ));
    }
    Ok(())
}

/// Every topic config the broker accepts, in the order DescribeConfigs lists them.
pub(crate) static TOPIC_CONFIGS: &[ConfigDef] = &[
    ConfigDef {
        name: CLEANUP_POLICY,
        kind: ConfigType::List,
        doc: "delete: old segments are removed by retention; compact: the newest record per key is kept.",
        default: |b| b.log_cleanup_policy.clone(),
        validate: validate_cleanup_policy,
    },
    ConfigDef {
        name: RETENTION_MS,
        kind: ConfigType::Long,
        doc: "How long a segment is kept before deletion (-1: forever).",
        default: |b| b.log_retention_ms.to_string(),
        validate: |v| long_at_least(-1)(v),
    },
    ConfigDef {
        name: RETENTION_BYTES,
        kind: ConfigType::Long,
        doc: "Largest size of a partition before old segments are deleted (-1: no limit).",
        default: |b| b.log_retention_bytes.to_string(),
        validate: |v| long_at_least(-1)(v),
    },
    ConfigDef {
        name: SEGMENT_BYTES,
        kind: ConfigType::Int,
        doc: "Size at which the active segment file is rolled.",
        default: |b| b.log_segment_bytes.to_string(),
        validate: |v| int_at_least(1024)(v),
    },
    ConfigDef {
        name: SEGMENT_MS,
        kind: ConfigType::Long,
        doc: "Age at which the active segment is rolled even if not full.",
        default: |b| b.log_roll_ms.to_string(),
        validate: |v| long_at_least(1)(v),
    },
    ConfigDef {
        name: MAX_MESSAGE_BYTES,
        kind: ConfigType::Int,
        doc: "Largest record batch accepted; larger ones get MESSAGE_TOO_LARGE.",
        default: |b| b.message_max_bytes.to_string(),
        validate: |v| int_at_least(0)(v),
    },
    ConfigDef {
        name: DELETE_RETENTION_MS,
        kind: ConfigType::Long,
        doc: "How long tombstones are kept in a compacted topic.",
        default: |_| "86400000".to_owned(),
        validate: |v| long_at_least(0)(v),
    },
    ConfigDef {
        name: MIN_COMPACTION_LAG_MS,
        kind: ConfigType::Long,
        doc: "Minimum age of a record before compaction may remove it.",
        default: |_| "0".to_owned(),
        validate: |v| long_at_least(0)(v),
    },
    ConfigDef {
        name: MAX_COMPACTION_LAG_MS,
        kind: ConfigType::Long,
        doc: "Maximum time a record stays uncompacted.",
        default: |_| i64::MAX.to_string(),
        validate: |v| long_at_least(1)(v),
    },
    ConfigDef {
        name: MIN_CLEANABLE_DIRTY_RATIO,
        kind: ConfigType::Double,
        doc: "Share of uncompacted log that triggers compaction.",
        default: |_| "0.5".to_owned(),
        validate: |v| match v.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
            _ => Err(format!("must be a number between 0 and 1 (got '{v}')")),
        },
    },
    ConfigDef {
        name: MIN_INSYNC_REPLICAS,
        kind: ConfigType::Int,
        doc: "Always 1: this is a single-node broker.",
        default: |_| "1".to_owned(),
        validate: |v| match v.trim() {
            "1" => Ok(()),
            _ => Err(format!(
                "can only be 1 on this single-node broker (got '{v}')"
            )),
        },
    },
    ConfigDef {
        name: MESSAGE_TIMESTAMP_TYPE,
        kind: ConfigType::String,
        doc: "Always CreateTime: batches are stored as the producer sent them.",
        default: |_| "CreateTime".to_owned(),
        validate: |v| match v.trim() {
            "CreateTime" => Ok(()),
            _ => Err(format!(
                "can only be CreateTime: this broker stores batches as received (got '{v}')"
            )),
        },
    },
    ConfigDef {
        name: COMPRESSION_TYPE,
        kind: ConfigType::String,
        doc: "Always producer: batches keep the producer's codec, never recompressed.",
        default: |_| "producer".to_owned(),
        validate: |v| match v.trim() {
            "producer" => Ok(()),
            _ => Err(format!(
                "can only be producer: this broker never recompresses (got '{v}')"
            )),
        },
    },
];

pub(crate) fn find_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks one topic config override; the error names the key and the allowed values.
pub(crate) fn validate_override(name: &str, value: &str) -> Result<(), String> {
    let Some(def) = find_def(name) else {
        let known: Vec<&str> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        return Err(format!(
            "unknown topic config '{name}' (supported: {})",
            known.join(", ")
        ));
    };
    (def.validate)(value).map_err(|why| format!("topic config '{name}' {why}"))
}

/// The values a partition log reads, resolved from the topic's overrides and the broker's
/// defaults.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogConfig {
    pub(crate) segment_bytes: u64,
    pub(crate) segment_ms: i64,
    pub(crate) max_message_bytes: usize,
    pub(crate) index_interval_bytes: u64,
    pub(crate) retention_ms: i64,
    pub(crate) retention_bytes: i64,
    pub(crate) compact: bool,
    pub(crate) delete: bool,
    /// `delete.retention.ms`: how long compaction keeps tombstones.
    pub(crate) delete_retention_ms: i64,
}

impl LogConfig {
    /// Resolves the effective config. Overrides must have been validated.
    pub(crate) fn resolve(broker: &BrokerConfig, overrides: &BTreeMap<String, String>) -> Self {
        let get = |name: &str| -> String {
            overrides
                .get(name)
                .cloned()
                .unwrap_or_else(|| (find_def(name).expect("known config").default)(broker))
        };
        let policy = get(CLEANUP_POLICY);
        Self {
            segment_bytes: get(SEGMENT_BYTES).trim().parse::<u64>().unwrap_or(1 << 30),
            segment_ms: get(SEGMENT_MS).trim().parse().unwrap_or(i64::MAX),
            max_message_bytes: get(MAX_MESSAGE_BYTES).trim().parse().unwrap_or(1_048_588),
            index_interval_bytes: broker.log_index_interval_bytes.max(0) as u64,
            retention_ms: get(RETENTION_MS).trim().parse().unwrap_or(-1),
            retention_bytes: get(RETENTION_BYTES).trim().parse().unwrap_or(-1),
            compact: policy.contains("compact"),
            delete: policy.contains("delete"),
            delete_retention_ms: get(DELETE_RETENTION_MS)
                .trim()
                .parse()
                .unwrap_or(86_400_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_broker_defaults() {
        let broker = BrokerConfig::default();
        let mut overrides = BTreeMap::new();
        overrides.insert(SEGMENT_BYTES.to_owned(), "4096".to_owned());
        overrides.insert(CLEANUP_POLICY.to_owned(), "compact".to_owned());
        let config = LogConfig::resolve(&broker, &overrides);
        assert_eq!(config.segment_bytes, 4096);
        assert!(config.compact && !config.delete);
        assert_eq!(config.max_message_bytes, 1_048_588);
    }

    #[test]
    fn bad_overrides_name_the_key_and_the_fix() {
        let err = validate_override("cleanup.policy", "shred").unwrap_err();
        assert!(
            err.contains("cleanup.policy") && err.contains("compact"),
            "{err}"
        );
        let err = validate_override("retention.mss", "1").unwrap_err();
        assert!(
            err.contains("unknown topic config 'retention.mss'"),
            "{err}"
        );
        let err = validate_override("segment.bytes", "12").unwrap_err();
        assert!(err.contains("at least 1024"), "{err}");
        validate_override("cleanup.policy", "compact,delete").unwrap();
    }
}
