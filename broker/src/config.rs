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
/// The only key and trust store format: PEM.
pub const PEM: &str = "PEM";
/// Kafka's default `message.max.bytes` (1 MiB plus record-batch overhead).
pub const DEFAULT_MESSAGE_MAX_BYTES: i32 = 1_048_588;
/// Kafka's default `log.segment.bytes` (1 GiB).
pub const DEFAULT_SEGMENT_BYTES: i32 = 1 << 30;
/// Kafka's default `log.roll.ms` / `log.retention.ms` (7 days).
pub const DEFAULT_SEVEN_DAYS_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Kafka's default `log.cleaner.dedupe.buffer.size` (128 MiB).
pub const DEFAULT_DEDUPE_BUFFER_SIZE: u64 = 128 * 1024 * 1024;
/// Kafka's default `log.cleaner.io.buffer.load.factor`.
pub const DEFAULT_DEDUPE_LOAD_FACTOR: f64 = 0.9;
/// Smallest `log_cleaner_dedupe_buffer_size` accepted (Kafka asks for 1 MiB; smaller maps
/// only mean more passes, which tests use).
pub const MIN_DEDUPE_BUFFER_SIZE: u64 = 1024;

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
    /// Where to listen: Kafka's `listeners` list (`PLAINTEXT://127.0.0.1:9092,SASL_SSL://:9093`,
    /// each name a security protocol or mapped to one by `listener.security.protocol.map`),
    /// or a single `host:port` for one PLAINTEXT listener. Port 0 picks a free port, see
    /// [`Broker::local_addr`](crate::Broker::local_addr) and
    /// [`Broker::listener_addr`](crate::Broker::listener_addr).
    #[serde(alias = "listeners")]
    pub listen: String,
    /// What clients are told to connect to (Metadata, FindCoordinator), per listener: Kafka's
    /// `advertised.listeners` (`SASL_SSL://broker.example.com:9093,...`), or one `host:port`
    /// for the first listener. Defaults to the bound address, with an unspecified IP
    /// (`0.0.0.0`, `::`) replaced by `localhost`.
    #[serde(alias = "advertised.listeners")]
    pub advertised_listener: Option<String>,
    /// Kafka's `listener.security.protocol.map` (`INTERNAL:SASL_SSL,EXTERNAL:SSL`), for
    /// listeners whose names are not security protocols.
    #[serde(alias = "listener.security.protocol.map")]
    pub listener_security_protocol_map: Option<String>,
    /// Format of the key store: only `PEM` (Kafka's `ssl.keystore.type`).
    #[serde(alias = "ssl.keystore.type")]
    pub ssl_keystore_type: String,
    /// PEM file holding the broker's certificate chain and its (unencrypted) private key
    /// (Kafka's `ssl.keystore.location`).
    #[serde(alias = "ssl.keystore.location")]
    pub ssl_keystore_location: Option<PathBuf>,
    /// The certificate chain in PEM (Kafka's `ssl.keystore.certificate.chain`), or the path of
    /// a PEM file holding it; used with `ssl_keystore_key` instead of `ssl_keystore_location`.
    #[serde(alias = "ssl.keystore.certificate.chain")]
    pub ssl_keystore_certificate_chain: Option<String>,
    /// The private key in PEM (Kafka's `ssl.keystore.key`), or the path of a PEM file holding it.
    #[serde(alias = "ssl.keystore.key")]
    pub ssl_keystore_key: Option<String>,
    /// Whether TLS clients must present a certificate: `none` (default), `requested` or
    /// `required` (Kafka's `ssl.client.auth`). A presented certificate's subject becomes the
    /// principal on SSL listeners (`User:CN=alice,O=example`).
    #[serde(alias = "ssl.client.auth")]
    pub ssl_client_auth: String,
    /// Format of the trust store: only `PEM` (Kafka's `ssl.truststore.type`).
    #[serde(alias = "ssl.truststore.type")]
    pub ssl_truststore_type: String,
    /// PEM file of the CA certificates that client certificates must chain to (Kafka's
    /// `ssl.truststore.location`); needed when `ssl_client_auth` is not `none`.
    #[serde(alias = "ssl.truststore.location")]
    pub ssl_truststore_location: Option<PathBuf>,
    /// How often the key store and trust store files are checked for renewed certificates;
    /// a change is loaded without a restart and applies to new connections (0: never).
    #[serde(alias = "ssl.keystore.reload.interval.ms")]
    pub ssl_keystore_reload_interval_ms: u64,
    /// SASL mechanisms offered on SASL listeners: any of `PLAIN`, `SCRAM-SHA-256`,
    /// `SCRAM-SHA-512` (Kafka's `sasl.enabled.mechanisms`). PLAIN checks the password against
    /// the stored SCRAM credentials; use it over SASL_SSL only.
    #[serde(alias = "sasl.enabled.mechanisms")]
    pub sasl_enabled_mechanisms: String,
    /// A user to create on start when no SCRAM credentials exist for it, with
    /// `scram_initial_password` (both mechanisms); the way to the first administrator.
    #[serde(alias = "scram.initial.user")]
    pub scram_initial_user: Option<String>,
    /// The password of `scram_initial_user`; better given as an environment variable
    /// (`SLUICE_SCRAM_INITIAL_PASSWORD`) than written in a file. Only its salted hash is stored.
    #[serde(alias = "scram.initial.password")]
    pub scram_initial_password: Option<String>,
    /// Turns ACL authorization on: Kafka's `authorizer.class.name` with
    /// `kafka.security.authorizer.AclAuthorizer`,
    /// `org.apache.kafka.metadata.authorizer.StandardAuthorizer` or `acl`. Unset: every
    /// principal may do everything, as in Kafka without an authorizer.
    #[serde(alias = "authorizer.class.name")]
    pub authorizer_class_name: Option<String>,
    /// Principals that bypass ACLs, `;`-separated (`User:admin;User:CN=ops`), Kafka's
    /// `super.users`.
    #[serde(alias = "super.users")]
    pub super_users: Option<String>,
    /// With ACLs on, allow a request on a resource that no ACL names (Kafka's
    /// `allow.everyone.if.no.acl.found`, default false).
    #[serde(alias = "allow.everyone.if.no.acl.found")]
    pub allow_everyone_if_no_acl_found: bool,
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
    /// Memory for the cleaner's key map, in bytes (Kafka's default, 128 MiB). The map holds
    /// 24 bytes per key (a 128-bit hash of the key and its newest offset); when the keys of a
    /// partition's uncleaned part do not fit, the cleaner cleans it in several passes.
    #[serde(alias = "log.cleaner.dedupe.buffer.size")]
    pub log_cleaner_dedupe_buffer_size: u64,
    /// How full the key map may get before a pass stops adding keys (Kafka's default, 0.9).
    #[serde(alias = "log.cleaner.io.buffer.load.factor")]
    pub log_cleaner_io_buffer_load_factor: f64,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.to_owned(),
            advertised_listener: None,
            listener_security_protocol_map: None,
            ssl_keystore_type: PEM.to_owned(),
            ssl_keystore_location: None,
            ssl_keystore_certificate_chain: None,
            ssl_keystore_key: None,
            ssl_client_auth: "none".to_owned(),
            ssl_truststore_type: PEM.to_owned(),
            ssl_truststore_location: None,
            ssl_keystore_reload_interval_ms: 30_000,
            sasl_enabled_mechanisms: "SCRAM-SHA-256,SCRAM-SHA-512".to_owned(),
            scram_initial_user: None,
            scram_initial_password: None,
            authorizer_class_name: None,
            super_users: None,
            allow_everyone_if_no_acl_found: false,
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
            log_cleaner_dedupe_buffer_size: DEFAULT_DEDUPE_BUFFER_SIZE,
            log_cleaner_io_buffer_load_factor: DEFAULT_DEDUPE_LOAD_FACTOR,
        }
    }
}

impl BrokerConfig {
    /// Every setting's name, e.g. for reading `SLUICE_<NAME>` environment variables.
    pub const FIELD_NAMES: &'static [&'static str] = &[
        "listen",
        "advertised_listener",
        "listener_security_protocol_map",
        "ssl_keystore_type",
        "ssl_keystore_location",
        "ssl_keystore_certificate_chain",
        "ssl_keystore_key",
        "ssl_client_auth",
        "ssl_truststore_type",
        "ssl_truststore_location",
        "ssl_keystore_reload_interval_ms",
        "sasl_enabled_mechanisms",
        "scram_initial_user",
        "scram_initial_password",
        "authorizer_class_name",
        "super_users",
        "allow_everyone_if_no_acl_found",
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
        "log_cleaner_dedupe_buffer_size",
        "log_cleaner_io_buffer_load_factor",
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
        if self.log_cleaner_dedupe_buffer_size < MIN_DEDUPE_BUFFER_SIZE {
            return Err(bad(
                "log_cleaner_dedupe_buffer_size",
                format!(
                    "must be at least {MIN_DEDUPE_BUFFER_SIZE} bytes (got {})",
                    self.log_cleaner_dedupe_buffer_size
                ),
            ));
        }
        let load_factor = self.log_cleaner_io_buffer_load_factor;
        if !(load_factor > 0.0 && load_factor <= 1.0) {
            return Err(bad(
                "log_cleaner_io_buffer_load_factor",
                format!("must be above 0 and at most 1 (got {load_factor})"),
            ));
        }
        self.validate_security()?;
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

    fn validate_security(&self) -> Result<()> {
        fn bad(name: &str, why: String) -> Error {
            Error::Config(format!("broker setting '{name}' {why}"))
        }
        let listeners = self.listener_specs()?;
        for (name, value) in [
            ("ssl.keystore.type", &self.ssl_keystore_type),
            ("ssl.truststore.type", &self.ssl_truststore_type),
        ] {
            if !value.eq_ignore_ascii_case(PEM) {
                return Err(bad(
                    name,
                    format!("must be PEM (got '{value}'); convert a JKS or PKCS12 store with keytool and openssl to PEM"),
                ));
            }
        }
        if !["none", "requested", "required"]
            .contains(&self.ssl_client_auth.to_ascii_lowercase().as_str())
        {
            return Err(bad(
                "ssl.client.auth",
                format!(
                    "must be none, requested or required (got '{}')",
                    self.ssl_client_auth
                ),
            ));
        }
        let tls = listeners.iter().any(|l| l.protocol.uses_tls());
        if tls {
            let split =
                self.ssl_keystore_certificate_chain.is_some() || self.ssl_keystore_key.is_some();
            match (&self.ssl_keystore_location, split) {
                (None, false) => {
                    return Err(bad(
                        "ssl.keystore.location",
                        "is needed by the SSL and SASL_SSL listeners: a PEM file with the certificate chain and the private key (or set ssl.keystore.certificate.chain and ssl.keystore.key)".to_owned(),
                    ))
                }
                (Some(_), true) => {
                    return Err(bad(
                        "ssl.keystore.location",
                        "and ssl.keystore.certificate.chain / ssl.keystore.key are alternatives; set one or the other".to_owned(),
                    ))
                }
                (None, true) if self.ssl_keystore_certificate_chain.is_none() || self.ssl_keystore_key.is_none() => {
                    return Err(bad(
                        "ssl.keystore.certificate.chain",
                        "and ssl.keystore.key must be set together".to_owned(),
                    ))
                }
                _ => {}
            }
            if !self.ssl_client_auth.eq_ignore_ascii_case("none")
                && self.ssl_truststore_location.is_none()
            {
                return Err(bad(
                    "ssl.truststore.location",
                    format!("is needed with ssl.client.auth={}: a PEM file of the CA certificates client certificates are signed by", self.ssl_client_auth),
                ));
            }
        }
        self.sasl_mechanisms()?;
        if self.scram_initial_user.is_some() != self.scram_initial_password.is_some() {
            return Err(bad(
                "scram.initial.user",
                "and scram.initial.password must be set together".to_owned(),
            ));
        }
        self.acls_enabled()?;
        self.super_user_principals()?;
        Ok(())
    }

    /// The mechanisms of `sasl_enabled_mechanisms`.
    ///
    /// # Errors
    /// [`Error::Config`] for a mechanism this broker does not implement.
    pub(crate) fn sasl_mechanisms(&self) -> Result<Vec<crate::security::sasl::Mechanism>> {
        let mut out = Vec::new();
        for name in self
            .sasl_enabled_mechanisms
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            let mechanism = crate::security::sasl::Mechanism::from_name(name).ok_or_else(|| {
                Error::Config(format!(
                    "broker setting 'sasl.enabled.mechanisms': '{name}' is not supported (use PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
                ))
            })?;
            out.push(mechanism);
        }
        if out.is_empty() {
            return Err(Error::Config(
                "broker setting 'sasl.enabled.mechanisms' is empty; give e.g. SCRAM-SHA-512"
                    .to_owned(),
            ));
        }
        Ok(out)
    }

    /// Whether `authorizer_class_name` turns ACLs on.
    ///
    /// # Errors
    /// [`Error::Config`] for an authorizer this broker does not have.
    pub(crate) fn acls_enabled(&self) -> Result<bool> {
        match self.authorizer_class_name.as_deref().map(str::trim) {
            None | Some("") => Ok(false),
            Some(
                "acl"
                | "kafka.security.authorizer.AclAuthorizer"
                | "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            ) => Ok(true),
            Some(other) => Err(Error::Config(format!(
                "broker setting 'authorizer.class.name': '{other}' is not available; use org.apache.kafka.metadata.authorizer.StandardAuthorizer (Kafka's ACLs) or leave it unset"
            ))),
        }
    }

    /// The principals of `super_users`.
    ///
    /// # Errors
    /// [`Error::Config`] for an entry that is not `Type:name`.
    pub(crate) fn super_user_principals(&self) -> Result<Vec<crate::security::KafkaPrincipal>> {
        self.super_users
            .as_deref()
            .unwrap_or_default()
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                crate::security::KafkaPrincipal::parse(p)
                    .map_err(|why| Error::Config(format!("broker setting 'super.users': {why}")))
            })
            .collect()
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

    #[test]
    fn dedupe_buffer_settings_take_kafka_names_and_are_checked() {
        let config = BrokerConfig::default();
        assert_eq!(config.log_cleaner_dedupe_buffer_size, 134_217_728);
        assert_eq!(config.log_cleaner_io_buffer_load_factor, 0.9);
        let json = r#"{"log.cleaner.dedupe.buffer.size": 65536,
                       "log.cleaner.io.buffer.load.factor": 0.5}"#;
        let config: BrokerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.log_cleaner_dedupe_buffer_size, 65536);
        assert_eq!(config.log_cleaner_io_buffer_load_factor, 0.5);
        config.validate().unwrap();
        for (size, factor, name) in [
            (100, 0.9, "log_cleaner_dedupe_buffer_size"),
            (65536, 0.0, "log_cleaner_io_buffer_load_factor"),
            (65536, 1.5, "log_cleaner_io_buffer_load_factor"),
            (65536, f64::NAN, "log_cleaner_io_buffer_load_factor"),
        ] {
            let config = BrokerConfig {
                log_cleaner_dedupe_buffer_size: size,
                log_cleaner_io_buffer_load_factor: factor,
                ..BrokerConfig::default()
            };
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
    }
}
