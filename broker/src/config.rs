//! Broker settings: what `sluice broker` reads from its config file and `SLUICE_*` variables,
//! and what an embedding program passes to [`Broker::start`](crate::Broker::start).
//!
//! Field names are snake_case; each also accepts the Kafka broker property it mirrors
//! (`log.segment.bytes`, `auto.create.topics.enable`, ...), so a Kafka user's names work.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::{Error, Result};

/// Default listen address: the bundled broker is a laptop broker, so loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9092";
/// Kafka's default `message.max.bytes` (1 MiB plus record-batch overhead).
pub const DEFAULT_MESSAGE_MAX_BYTES: i32 = 1_048_588;
/// Kafka's default `log.segment.bytes` (1 GiB).
pub const DEFAULT_SEGMENT_BYTES: i32 = 1 << 30;
/// Kafka's default `log.roll.ms` / `log.retention.ms` (7 days).
pub const DEFAULT_SEVEN_DAYS_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// When the broker forces appended data to disk (`log.flush`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFlush {
    /// fsync before acknowledging an `acks=all` produce request; the fsyncs of concurrent
    /// requests are shared (group commit). Nothing acknowledged is lost on power failure.
    #[default]
    Sync,
    /// fsync in the background every `log_flush_interval_ms`; acks do not wait for it.
    /// A power failure may lose up to one interval of acknowledged data.
    Interval,
    /// Never fsync explicitly; the operating system writes the page cache back when it likes.
    /// A process crash loses nothing, a power failure may lose recent data.
    Os,
}

/// Settings of the bundled broker. Every field has a default, so `BrokerConfig::default()`
/// is a working single-node broker on `127.0.0.1:9092` storing data in `./data`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Where to listen: Kafka's `listeners` list (`PLAINTEXT://127.0.0.1:9092,...`, each name a
    /// security protocol or mapped to one by `listener.security.protocol.map`), or a single
    /// `host:port` for one PLAINTEXT listener. Port 0 picks a free port, see
    /// [`Broker::local_addr`](crate::Broker::local_addr) and
    /// [`Broker::listener_addr`](crate::Broker::listener_addr).
    #[serde(alias = "listeners")]
    pub listen: String,
    /// What clients are told to connect to (Metadata, FindCoordinator), per listener: Kafka's
    /// `advertised.listeners` (`PLAINTEXT://broker.example.com:9092,...`), or one `host:port`
    /// for the first listener. Defaults to the bound address, with an unspecified IP
    /// (`0.0.0.0`, `::`) replaced by `localhost`.
    #[serde(alias = "advertised.listeners")]
    pub advertised_listener: Option<String>,
    /// Kafka's `listener.security.protocol.map` (`INTERNAL:PLAINTEXT,...`), for listeners
    /// whose names are not security protocols.
    #[serde(alias = "listener.security.protocol.map")]
    pub listener_security_protocol_map: Option<String>,
    /// Directory holding one sub-directory per partition plus the broker's metadata.
    #[serde(alias = "log.dirs", alias = "log.dir", alias = "data.dir")]
    pub data_dir: PathBuf,
    /// When appended data is fsync'd; see [`LogFlush`].
    #[serde(alias = "log.flush")]
    pub log_flush: LogFlush,
    /// Period of the background fsync when `log_flush = "interval"`.
    #[serde(alias = "log.flush.interval.ms")]
    pub log_flush_interval_ms: u64,
    /// Create a topic when a client produces to, or asks metadata for, an unknown one.
    #[serde(alias = "auto.create.topics.enable")]
    pub auto_create_topics_enable: bool,
    /// Partition count of auto-created topics and of CreateTopics requests that leave it at -1.
    #[serde(alias = "num.partitions")]
    pub num_partitions: i32,
    /// Default `segment.bytes` of topics: the active segment rolls when it would exceed this.
    #[serde(alias = "log.segment.bytes")]
    pub log_segment_bytes: i32,
    /// Default `segment.ms` of topics: the active segment rolls when older than this.
    #[serde(alias = "log.roll.ms")]
    pub log_roll_ms: i64,
    /// Default `retention.ms` of topics (-1: keep forever).
    #[serde(alias = "log.retention.ms")]
    pub log_retention_ms: i64,
    /// Default `retention.bytes` of topics (-1: no size limit).
    #[serde(alias = "log.retention.bytes")]
    pub log_retention_bytes: i64,
    /// Default `cleanup.policy` of topics (`delete`, `compact` or `compact,delete`).
    #[serde(alias = "log.cleanup.policy")]
    pub log_cleanup_policy: String,
    /// Default `max.message.bytes` of topics: the largest record batch accepted.
    #[serde(alias = "message.max.bytes")]
    pub message_max_bytes: i32,
    /// Bytes between two entries of the sparse offset and time indexes.
    #[serde(alias = "log.index.interval.bytes")]
    pub log_index_interval_bytes: i32,
    /// Largest request frame accepted; a bigger length prefix closes the connection.
    #[serde(alias = "socket.request.max.bytes")]
    pub socket_request_max_bytes: i32,
    /// Cluster id reported in Metadata; generated once and kept in the data dir if unset.
    #[serde(alias = "cluster.id")]
    pub cluster_id: Option<String>,
    /// How long a graceful shutdown waits for open connections before dropping them.
    pub shutdown_timeout_ms: u64,
    /// Smallest `session.timeout.ms` a consumer-group member may ask for.
    #[serde(alias = "group.min.session.timeout.ms")]
    pub group_min_session_timeout_ms: u64,
    /// Largest `session.timeout.ms` a consumer-group member may ask for.
    #[serde(alias = "group.max.session.timeout.ms")]
    pub group_max_session_timeout_ms: u64,
    /// How long the first rebalance of an empty group waits for more members to join.
    #[serde(alias = "group.initial.rebalance.delay.ms")]
    pub group_initial_rebalance_delay_ms: u64,
    /// Most members a consumer group may have.
    #[serde(alias = "group.max.size")]
    pub group_max_size: u32,
    /// How long committed offsets are kept once their group has no members.
    #[serde(alias = "offsets.retention.minutes")]
    pub offsets_retention_minutes: u64,
    /// How often expired committed offsets are looked for.
    #[serde(alias = "offsets.retention.check.interval.ms")]
    pub offsets_retention_check_interval_ms: u64,
    /// Largest metadata string an offset commit may carry.
    #[serde(alias = "offset.metadata.max.bytes")]
    pub offset_metadata_max_bytes: u32,
    /// How often retention looks for segments past `retention.ms` / `retention.bytes`.
    #[serde(alias = "log.retention.check.interval.ms")]
    pub log_retention_check_interval_ms: u64,
    /// Run the log cleaner (compaction of `cleanup.policy=compact` topics).
    #[serde(alias = "log.cleaner.enable")]
    pub log_cleaner_enable: bool,
    /// Pause between two passes of the log cleaner.
    #[serde(alias = "log.cleaner.backoff.ms")]
    pub log_cleaner_backoff_ms: u64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            advertised_listener: None,
            listener_security_protocol_map: None,
            data_dir: PathBuf::from("./data"),
            log_flush: LogFlush::Sync,
            log_flush_interval_ms: 1000,
            auto_create_topics_enable: true,
            num_partitions: 1,
            log_segment_bytes: DEFAULT_SEGMENT_BYTES,
            log_roll_ms: DEFAULT_SEVEN_DAYS_MS,
            log_retention_ms: DEFAULT_SEVEN_DAYS_MS,
            log_retention_bytes: -1,
            log_cleanup_policy: "delete".to_owned(),
            message_max_bytes: DEFAULT_MESSAGE_MAX_BYTES,
            log_index_interval_bytes: 4096,
            socket_request_max_bytes: 100 * 1024 * 1024,
            cluster_id: None,
            shutdown_timeout_ms: 5000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 1_800_000,
            group_initial_rebalance_delay_ms: 3_000,
            group_max_size: i32::MAX as u32,
            offsets_retention_minutes: 7 * 24 * 60,
            offsets_retention_check_interval_ms: 600_000,
            offset_metadata_max_bytes: 4096,
            log_retention_check_interval_ms: 300_000,
            log_cleaner_enable: true,
            log_cleaner_backoff_ms: 15_000,
        }
    }
}

impl BrokerConfig {
    /// Every setting's name, e.g. for reading `SLUICE_<NAME>` environment variables.
    pub const FIELD_NAMES: &'static [&'static str] = &[
        "listen",
        "advertised_listener",
        "listener_security_protocol_map",
        "data_dir",
        "log_flush",
        "log_flush_interval_ms",
        "auto_create_topics_enable",
        "num_partitions",
        "log_segment_bytes",
        "log_roll_ms",
        "log_retention_ms",
        "log_retention_bytes",
        "log_cleanup_policy",
        "message_max_bytes",
        "log_index_interval_bytes",
        "socket_request_max_bytes",
        "cluster_id",
        "shutdown_timeout_ms",
    ];

    /// A default configuration that keeps its data in `data_dir` and listens on `listen`.
    pub fn new(listen: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: listen.into(),
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }

    /// Checks value ranges, so that a bad setting fails at start with its name.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first setting out of range.
    pub fn validate(&self) -> Result<()> {
        fn bad(name: &str, why: String) -> Error {
            Error::Config(format!("broker setting '{name}' {why}"))
        }
        if self.num_partitions < 1 {
            return Err(bad(
                "num_partitions",
                format!("must be at least 1 (got {})", self.num_partitions),
            ));
        }
        if self.log_segment_bytes < 1024 {
            return Err(bad(
                "log_segment_bytes",
                format!("must be at least 1024 (got {})", self.log_segment_bytes),
            ));
        }
        if self.log_roll_ms < 1 {
            return Err(bad(
                "log_roll_ms",
                format!("must be at least 1 (got {})", self.log_roll_ms),
            ));
        }
        if self.message_max_bytes < 0 {
            return Err(bad(
                "message_max_bytes",
                format!("must not be negative (got {})", self.message_max_bytes),
            ));
        }
        if self.log_index_interval_bytes < 0 {
            return Err(bad(
                "log_index_interval_bytes",
                format!(
                    "must not be negative (got {})",
                    self.log_index_interval_bytes
                ),
            ));
        }
        if self.socket_request_max_bytes < 1024 {
            return Err(bad(
                "socket_request_max_bytes",
                format!(
                    "must be at least 1024 (got {})",
                    self.socket_request_max_bytes
                ),
            ));
        }
        if self.log_flush == LogFlush::Interval && self.log_flush_interval_ms == 0 {
            return Err(bad(
                "log_flush_interval_ms",
                "must be at least 1 when log_flush = \"interval\"".to_owned(),
            ));
        }
        crate::storage::config::validate_cleanup_policy(&self.log_cleanup_policy)
            .map_err(|why| bad("log_cleanup_policy", why))?;
        if self.group_min_session_timeout_ms > self.group_max_session_timeout_ms {
            return Err(bad(
                "group_min_session_timeout_ms",
                format!(
                    "must not exceed group_max_session_timeout_ms ({} > {})",
                    self.group_min_session_timeout_ms, self.group_max_session_timeout_ms
                ),
            ));
        }
        if self.log_retention_check_interval_ms == 0 || self.log_cleaner_backoff_ms == 0 {
            return Err(bad(
                "log_retention_check_interval_ms",
                "and log_cleaner_backoff_ms must be at least 1".to_owned(),
            ));
        }
        for listener in self.listener_specs()? {
            if listener.protocol != crate::security::SecurityProtocol::Plaintext {
                return Err(bad(
                    "listeners",
                    format!(
                        "names a {} listener, which this broker does not serve yet; use PLAINTEXT",
                        listener.protocol
                    ),
                ));
            }
        }
        if self.group_max_size == 0 {
            return Err(bad("group_max_size", "must be at least 1".to_owned()));
        }
        if self.offsets_retention_minutes == 0 || self.offsets_retention_check_interval_ms == 0 {
            return Err(bad(
                "offsets_retention_minutes",
                "and offsets_retention_check_interval_ms must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }

    /// The listeners of `listen`, `advertised_listener` and `listener_security_protocol_map`.
    ///
    /// # Errors
    /// [`Error::Config`] naming the setting that cannot be understood.
    pub fn listener_specs(&self) -> Result<Vec<crate::security::ListenerSpec>> {
        crate::security::parse_listeners(
            &self.listen,
            self.advertised_listener.as_deref(),
            self.listener_security_protocol_map.as_deref(),
        )
    }

    /// The group coordinator's settings, for a broker advertised as `host:port`.
    pub(crate) fn group_config(&self, host: &str, port: i32) -> crate::group::GroupConfig {
        crate::group::GroupConfig {
            node_id: crate::server::NODE_ID,
            advertised_host: host.to_owned(),
            advertised_port: port,
            min_session_timeout: Duration::from_millis(self.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(self.group_max_session_timeout_ms),
            initial_rebalance_delay: Duration::from_millis(self.group_initial_rebalance_delay_ms),
            max_group_size: self.group_max_size as usize,
            offsets_retention: Duration::from_secs(self.offsets_retention_minutes * 60),
            offsets_retention_check_interval: Duration::from_millis(
                self.offsets_retention_check_interval_ms,
            ),
            offset_metadata_max_bytes: self.offset_metadata_max_bytes as usize,
            ..crate::group::GroupConfig::default()
        }
    }

    pub(crate) fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.log_flush_interval_ms.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_property_names_are_accepted() {
        let json = r#"{"log.segment.bytes": 2048, "auto.create.topics.enable": false,
                       "log.flush": "interval", "num.partitions": 3}"#;
        let config: BrokerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.log_segment_bytes, 2048);
        assert!(!config.auto_create_topics_enable);
        assert_eq!(config.log_flush, LogFlush::Interval);
        assert_eq!(config.num_partitions, 3);
        assert_eq!(config.listen, DEFAULT_LISTEN);
        config.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_by_name() {
        let err = serde_json::from_str::<BrokerConfig>(r#"{"log_flsh": "sync"}"#).unwrap_err();
        assert!(err.to_string().contains("log_flsh"), "{err}");
        let err = serde_json::from_str::<BrokerConfig>(r#"{"log_flush": "always"}"#).unwrap_err();
        assert!(err.to_string().contains("always"), "{err}");
        let config = BrokerConfig {
            num_partitions: 0,
            ..BrokerConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("num_partitions"), "{err}");
    }
}
