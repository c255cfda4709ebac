//! Worker settings: defaults, then `sluice.toml` in the working directory, then `SLUICE_*`
//! environment variables, read through the `config` crate.
//!
//! Every setting has a dotted name as in Kafka Connect's worker properties
//! (`bootstrap.servers`); its environment variable is `SLUICE_` plus the name in capitals with
//! dots as underscores (`SLUICE_BOOTSTRAP_SERVERS`). In `sluice.toml`, write names as TOML keys;
//! names that are also the prefix of another name need quotes
//! (`"value.converter.schemas.enable" = false`). Unknown settings are an error naming them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cluster::protocol::ConnectProtocol;
use crate::config_providers::ConfigProviders;
use crate::error::{Error, Result};

/// Prefix of the environment variables that set worker settings.
pub const ENV_PREFIX: &str = "SLUICE";
/// The settings file read from the working directory when present.
pub const SETTINGS_FILE: &str = "sluice.toml";

/// One documented setting: name, default (as text) and what it does.
#[derive(Debug, Clone, Copy)]
pub struct SettingDoc {
    /// Dotted name.
    pub name: &'static str,
    /// Default value as text (empty for "unset").
    pub default: &'static str,
    /// What the setting does.
    pub doc: &'static str,
}

/// Every worker setting with its default and documentation (the `--help` text comes from here).
pub const SETTINGS: &[SettingDoc] = &[
    SettingDoc {
        name: "bootstrap.servers",
        default: "",
        doc: "Kafka cluster to use (host:port,...). Unset: start the embedded broker.",
    },
    SettingDoc {
        name: "broker.listen",
        default: "127.0.0.1:9092",
        doc: "Address the embedded broker listens on (ignored with bootstrap.servers).",
    },
    SettingDoc {
        name: "schema.registry.listen",
        default: "127.0.0.1:8081",
        doc: "Address of the bundled Schema Registry started with the embedded broker (Confluent's REST API; empty: none). When the address is taken the worker runs without it and says so.",
    },
    SettingDoc {
        name: "data.dir",
        default: "./data",
        doc: "Where the embedded broker keeps its logs.",
    },
    SettingDoc {
        name: "config.dir",
        default: "configs",
        doc: "Folder of connector JSON files; watched for added, edited and removed files.",
    },
    SettingDoc {
        name: "rest.host.name",
        default: "127.0.0.1",
        doc: "Interface the REST API listens on (0.0.0.0 for every interface).",
    },
    SettingDoc {
        name: "rest.port",
        default: "8083",
        doc: "Port of the REST API (Kafka Connect's default).",
    },
    SettingDoc {
        name: "listeners",
        default: "",
        doc: "The REST API's listener as a URL, http://host:port or https://host:port (Kafka Connect's setting); overrides rest.host.name and rest.port. https takes its certificate from listeners.https.ssl.keystore.location (PEM: chain and key) or listeners.https.ssl.keystore.certificate.chain and listeners.https.ssl.keystore.key; listeners.https.ssl.client.auth=required with listeners.https.ssl.truststore.location asks clients for certificates.",
    },
    SettingDoc {
        name: "rest.basic.auth.users.file",
        default: "",
        doc: "Turns on HTTP basic authentication for the whole REST API and console: a Java properties file of user=password lines (Kafka Connect's PropertyFileLoginModule format), read again when it changes.",
    },
    SettingDoc {
        name: "rest.extension.classes",
        default: "",
        doc: "Kafka Connect's REST extensions; sluice has BasicAuthSecurityRestExtension built in (it needs rest.basic.auth.users.file).",
    },
    SettingDoc {
        name: "plugin.path",
        default: "",
        doc: "Comma-separated folders or files of connector plugin libraries.",
    },
    SettingDoc {
        name: "group.id",
        default: "connect-cluster",
        doc: "Connect cluster this worker belongs to: workers with the same group.id on one Kafka cluster share their connectors and tasks.",
    },
    SettingDoc {
        name: "session.timeout.ms",
        default: "10000",
        doc: "The group coordinator drops a worker it hears nothing from for this long.",
    },
    SettingDoc {
        name: "heartbeat.interval.ms",
        default: "3000",
        doc: "Time between a worker's heartbeats to the group coordinator.",
    },
    SettingDoc {
        name: "rebalance.timeout.ms",
        default: "60000",
        doc: "How long the coordinator waits for every worker to rejoin in a rebalance.",
    },
    SettingDoc {
        name: "scheduled.rebalance.max.delay.ms",
        default: "10000",
        doc: "How long work of a worker that left is held back for it before it goes to the others (Kafka Connect's default is 300000; 10 s keeps a restart calm and recovers a crash in seconds).",
    },
    SettingDoc {
        name: "connect.protocol",
        default: "sessioned",
        doc: "Newest group protocol offered: sessioned, compatible or eager.",
    },
    SettingDoc {
        name: "worker.sync.timeout.ms",
        default: "3000",
        doc: "How long a worker reads the config topic to catch up with its group before giving up and rejoining.",
    },
    SettingDoc {
        name: "worker.unsync.backoff.ms",
        default: "5000",
        doc: "Pause before rejoining after a worker could not catch up with the config topic (Kafka Connect's default is 300000).",
    },
    SettingDoc {
        name: "inter.worker.key.ttl.ms",
        default: "3600000",
        doc: "How long the leader's session key for signing internal requests (KIP-507) lives before the leader writes a new one.",
    },
    SettingDoc {
        name: "inter.worker.key.generation.algorithm",
        default: "HmacSHA256",
        doc: "Algorithm of the session keys the leader makes: HmacSHA256, HmacSHA384 or HmacSHA512.",
    },
    SettingDoc {
        name: "inter.worker.signature.algorithm",
        default: "HmacSHA256",
        doc: "Algorithm a worker signs internal requests with: HmacSHA256, HmacSHA384 or HmacSHA512.",
    },
    SettingDoc {
        name: "rest.advertised.host.name",
        default: "",
        doc: "Host name other workers reach this worker's REST API at (unset: the REST listen address).",
    },
    SettingDoc {
        name: "rest.advertised.listener",
        default: "",
        doc: "Scheme other workers reach this worker's REST API with, http or https (unset: the listener's).",
    },
    SettingDoc {
        name: "rest.advertised.port",
        default: "",
        doc: "Port other workers reach this worker's REST API at (unset: the port it listens on).",
    },
    SettingDoc {
        name: "offset.storage.topic",
        default: "connect-offsets",
        doc: "Compacted topic holding source offsets (Kafka Connect's format).",
    },
    SettingDoc {
        name: "config.storage.topic",
        default: "connect-configs",
        doc: "Compacted topic holding connectors created through REST and target states.",
    },
    SettingDoc {
        name: "status.storage.topic",
        default: "connect-status",
        doc: "Compacted topic holding connector and task status.",
    },
    SettingDoc {
        name: "offset.flush.interval.ms",
        default: "1000",
        doc: "How often source offsets and sink consumer offsets are committed.",
    },
    SettingDoc {
        name: "offset.flush.timeout.ms",
        default: "5000",
        doc: "How long a commit may wait for outstanding records before it is retried.",
    },
    SettingDoc {
        name: "task.shutdown.graceful.timeout.ms",
        default: "5000",
        doc: "How long tasks get to flush and commit on stop before they are aborted.",
    },
    SettingDoc {
        name: "config.providers",
        default: "env",
        doc: "Config providers connector options may refer to: env (${env:NAME}, always on), file (${file:/path/x.properties:key}) and directory (${directory:/run/secrets:name}). config.providers.<name>.param.allowed.paths limits file and directory to some folders. The reference is resolved when a task starts and is never stored, shown or logged resolved.",
    },
    SettingDoc {
        name: "file.connectors.allowed.paths",
        default: "",
        doc: "Comma-separated folders the file source and sink may read and write in; a file connector naming a path outside them is refused. Unset: anywhere the worker's user may (anyone who can reach the REST API can then read or write those files).",
    },
    SettingDoc {
        name: "key.converter",
        default: "org.apache.kafka.connect.json.JsonConverter",
        doc: "Default key converter (json, string, bytearray or the Kafka Connect class names).",
    },
    SettingDoc {
        name: "value.converter",
        default: "org.apache.kafka.connect.json.JsonConverter",
        doc: "Default value converter.",
    },
];

/// Prefixes of free-form settings: `key.converter.*`/`value.converter.*` are converter
/// sub-options; `producer.*`, `consumer.*` and `admin.*` pass to the Kafka clients (librdkafka
/// property names); `broker.*` configures the embedded broker.
pub const PREFIXES: &[&str] = &[
    "key.converter.",
    "value.converter.",
    "producer.",
    "consumer.",
    "admin.",
    "broker.",
    "config.providers.",
    "listeners.https.",
];

/// Prefixes of `SLUICE_*` variables that are not worker settings (the test suite's own
/// `SLUICE_TEST_*`, the benchmarks' `SLUICE_BENCH_*` and the test script's
/// `SLUICE_FUZZ_SECONDS`, which reach the workers they start); `SLUICE_LOG`, the log filter,
/// is not one either.
const NOT_SETTINGS: &[&str] = &["test_", "bench_", "fuzz_"];

/// Kafka client properties applied to every client (security and the like).
const CLIENT_WIDE: &[&str] = &["security.protocol", "ssl.", "sasl.", "client.id"];

/// How a worker takes part in its group (Kafka Connect's names and meanings).
#[derive(Debug, Clone)]
pub struct GroupSettings {
    /// `session.timeout.ms`.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// `rebalance.timeout.ms`.
    pub rebalance_timeout: Duration,
    /// `scheduled.rebalance.max.delay.ms`.
    pub scheduled_rebalance_max_delay: Duration,
    /// `connect.protocol`.
    pub connect_protocol: ConnectProtocol,
    /// `worker.sync.timeout.ms`.
    pub sync_timeout: Duration,
    /// `worker.unsync.backoff.ms`.
    pub unsync_backoff: Duration,
    /// `inter.worker.key.ttl.ms`.
    pub key_ttl: Duration,
    /// `inter.worker.key.generation.algorithm`.
    pub key_algorithm: String,
    /// `inter.worker.signature.algorithm`.
    pub signature_algorithm: String,
}

/// The worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// External cluster; `None` starts the embedded broker.
    pub bootstrap_servers: Option<String>,
    /// Embedded broker address.
    pub broker_listen: SocketAddr,
    /// The bundled Schema Registry's address (`None`: not started); with the embedded broker only.
    pub schema_registry_listen: Option<SocketAddr>,
    /// Embedded broker data directory.
    pub data_dir: PathBuf,
    /// Connector JSON folder.
    pub config_dir: PathBuf,
    /// REST API address.
    pub rest_addr: SocketAddr,
    /// Plugin library locations.
    pub plugin_path: Vec<PathBuf>,
    /// `group.id`: the Connect cluster.
    pub group_id: String,
    /// Group membership and config-sync settings.
    pub group: GroupSettings,
    /// `rest.advertised.host.name` (`None`: the REST listen address's host).
    pub rest_advertised_host: Option<String>,
    /// `rest.advertised.port` (`None`: the REST port actually bound).
    pub rest_advertised_port: Option<u16>,
    /// `rest.advertised.listener`: `Some(true)` for https (`None`: the listener's scheme).
    pub rest_advertised_https: Option<bool>,
    /// Offsets topic.
    pub offset_topic: String,
    /// Configs topic.
    pub config_topic: String,
    /// Status topic.
    pub status_topic: String,
    /// Commit interval.
    pub offset_flush_interval: Duration,
    /// Commit timeout.
    pub offset_flush_timeout: Duration,
    /// Graceful task shutdown deadline.
    pub shutdown_timeout: Duration,
    /// Worker-level defaults for connector options (`key.converter`, `value.converter.*`...).
    pub connector_defaults: BTreeMap<String, String>,
    /// Extra librdkafka properties per client kind.
    pub producer: BTreeMap<String, String>,
    /// Extra librdkafka properties for consumers.
    pub consumer: BTreeMap<String, String>,
    /// Extra librdkafka properties for the admin client.
    pub admin: BTreeMap<String, String>,
    /// `broker.*` settings for the embedded broker, prefix removed.
    pub broker: BTreeMap<String, String>,
    /// `config.providers` and its sub-settings.
    pub config_providers: ConfigProviders,
    /// `file.connectors.allowed.paths`: empty means anywhere.
    pub file_allowed_paths: Vec<PathBuf>,
    /// Whether the REST API is served over TLS (`listeners=https://...`).
    pub rest_https: bool,
    /// `listeners.https.*` settings, prefix removed.
    pub rest_tls: BTreeMap<String, String>,
    /// `rest.basic.auth.users.file`: basic authentication is on when set.
    pub rest_users_file: Option<PathBuf>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self::from_map(&BTreeMap::new()).expect("the built-in defaults are valid")
    }
}

impl WorkerSettings {
    /// `host:port` other workers reach this worker's REST API at: the advertised host and
    /// port when set, else the REST address (once bound, the port actually in use). Status
    /// records name the worker by it, as Kafka Connect's `worker_id`.
    pub fn advertised_rest_addr(&self) -> String {
        let host = self
            .rest_advertised_host
            .clone()
            .unwrap_or_else(|| self.rest_addr.ip().to_string());
        let port = self.rest_advertised_port.unwrap_or(self.rest_addr.port());
        format!("{host}:{port}")
    }

    /// The URL other workers reach this worker's REST API at (`http://host:port/`, or
    /// `https://` with an https listener).
    pub fn advertised_rest_url(&self) -> String {
        let https = self.rest_advertised_https.unwrap_or(self.rest_https);
        let scheme = if https { "https" } else { "http" };
        format!("{scheme}://{}/", self.advertised_rest_addr())
    }

    /// Reads `sluice.toml` from `dir` (when present) and `SLUICE_*` variables.
    ///
    /// # Errors
    /// A malformed file, an unknown setting or a bad value, naming the setting.
    pub fn load(dir: &Path) -> Result<Self> {
        let file = dir.join(SETTINGS_FILE);
        Self::load_with(file.exists().then_some(file.as_path()))
    }

    /// Reads the settings file `file` (`sluice worker --config <FILE>`, which must exist) and
    /// `SLUICE_*` variables.
    ///
    /// # Errors
    /// A missing or malformed file, an unknown setting or a bad value, naming the setting.
    pub fn load_file(file: &Path) -> Result<Self> {
        if !file.is_file() {
            return Err(Error::Settings(format!(
                "settings file {} (given with --config) does not exist or is not a file",
                file.display()
            )));
        }
        Self::load_with(Some(file))
    }

    fn load_with(file: Option<&Path>) -> Result<Self> {
        let mut flat = BTreeMap::new();
        if let Some(file) = file {
            let loaded = config::Config::builder()
                .add_source(config::File::from(file).format(config::FileFormat::Toml))
                .build()
                .map_err(|e| Error::Settings(format!("cannot read {}: {e}", file.display())))?;
            let table: BTreeMap<String, config::Value> = loaded
                .try_deserialize()
                .map_err(|e| Error::Settings(format!("cannot read {}: {e}", file.display())))?;
            for (key, value) in table {
                flatten(&key, value, &mut flat);
            }
        }
        let env = config::Config::builder()
            .add_source(
                config::Environment::with_prefix(ENV_PREFIX)
                    .prefix_separator("_")
                    .try_parsing(false),
            )
            .build()
            .map_err(|e| Error::Settings(format!("cannot read {ENV_PREFIX}_* variables: {e}")))?;
        let table: BTreeMap<String, config::Value> = env
            .try_deserialize()
            .map_err(|e| Error::Settings(format!("cannot read {ENV_PREFIX}_* variables: {e}")))?;
        for (key, value) in table {
            let lower = key.to_ascii_lowercase();
            if lower == "log" || NOT_SETTINGS.iter().any(|p| lower.starts_with(p)) {
                continue;
            }
            flatten(&key, value, &mut flat);
        }
        Self::from_map(&flat)
    }

    /// Settings from a flat map of dotted names (underscores count as dots).
    ///
    /// # Errors
    /// An unknown setting or a bad value, naming the setting.
    pub fn from_map(raw: &BTreeMap<String, String>) -> Result<Self> {
        let mut values: BTreeMap<String, String> = SETTINGS
            .iter()
            .map(|s| (s.name.to_string(), s.default.to_string()))
            .collect();
        let mut extra: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in raw {
            let name = normalise_name(key);
            if SETTINGS.iter().any(|s| s.name == name) {
                values.insert(name, value.clone());
            } else if PREFIXES.iter().any(|p| name.starts_with(p))
                || CLIENT_WIDE
                    .iter()
                    .any(|p| name == *p || name.starts_with(p))
            {
                extra.insert(name, value.clone());
            } else {
                return Err(Error::Settings(format!(
                    "unknown worker setting '{name}' (from {}); run `sluice worker --help` for the list",
                    describe_source(key)
                )));
            }
        }
        let get = |name: &str| values.get(name).cloned().unwrap_or_default();
        let ms = |name: &str| -> Result<Duration> {
            get(name)
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| {
                    Error::Settings(format!(
                        "worker setting '{name}' must be a number of milliseconds (got '{}')",
                        get(name)
                    ))
                })
        };
        let addr = |name: &str, text: &str| -> Result<SocketAddr> {
            text.trim().parse().map_err(|_| {
                Error::Settings(format!(
                    "worker setting '{name}' must be host:port with a numeric host such as 127.0.0.1:9092 (got '{text}')"
                ))
            })
        };
        let rest_port: u16 = get("rest.port").trim().parse().map_err(|_| {
            Error::Settings(format!(
                "worker setting 'rest.port' must be a port number (got '{}')",
                get("rest.port")
            ))
        })?;
        let (rest_addr, rest_https) = match get("listeners").trim() {
            "" => (
                addr(
                    "rest.host.name",
                    &format!("{}:{rest_port}", get("rest.host.name").trim()),
                )?,
                false,
            ),
            listeners => parse_listener(listeners)?,
        };
        let extensions = get("rest.extension.classes");
        for class in extensions
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            let basic = class == "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension";
            if !basic {
                return Err(Error::Settings(format!(
                    "worker setting 'rest.extension.classes' names '{class}'; sluice has only org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension"
                )));
            }
            if get("rest.basic.auth.users.file").trim().is_empty() {
                return Err(Error::Settings(
                    "worker setting 'rest.extension.classes' names BasicAuthSecurityRestExtension: set rest.basic.auth.users.file to its users file (user=password lines, the PropertyFileLoginModule format)".to_string(),
                ));
            }
        }
        let hmac = |name: &str| -> Result<String> {
            let value = get(name).trim().to_string();
            if crate::cluster::session::is_supported(&value) {
                Ok(value)
            } else {
                Err(Error::Settings(format!(
                    "worker setting '{name}' must be HmacSHA256, HmacSHA384 or HmacSHA512 (got '{value}')"
                )))
            }
        };
        let non_empty = |s: String| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let prefixed =
            |prefix: &str| -> BTreeMap<String, String> {
                let mut out: BTreeMap<String, String> = extra
                    .iter()
                    .filter(|(k, _)| CLIENT_WIDE.iter().any(|p| *k == p || k.starts_with(p)))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                out.extend(extra.iter().filter_map(|(k, v)| {
                    k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone()))
                }));
                out
            };
        let provider_settings: BTreeMap<String, String> = extra
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("config.providers.")
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect();
        let config_providers =
            ConfigProviders::from_settings(&get("config.providers"), &provider_settings)
                .map_err(Error::Settings)?;
        let paths = |name: &str| -> Vec<PathBuf> {
            get(name)
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        };
        let mut connector_defaults = BTreeMap::new();
        connector_defaults.insert("key.converter".to_string(), get("key.converter"));
        connector_defaults.insert("value.converter".to_string(), get("value.converter"));
        for (k, v) in &extra {
            if k.starts_with("key.converter.") || k.starts_with("value.converter.") {
                connector_defaults.insert(k.clone(), v.clone());
            }
        }
        Ok(Self {
            bootstrap_servers: non_empty(get("bootstrap.servers")),
            broker_listen: addr("broker.listen", &get("broker.listen"))?,
            schema_registry_listen: match non_empty(get("schema.registry.listen")) {
                None => None,
                Some(a) => Some(addr("schema.registry.listen", &a)?),
            },
            data_dir: PathBuf::from(get("data.dir")),
            config_dir: PathBuf::from(get("config.dir")),
            rest_addr,
            plugin_path: paths("plugin.path"),
            rest_https,
            rest_tls: extra
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("listeners.https.")
                        .map(|k| (k.to_string(), v.clone()))
                })
                .collect(),
            rest_users_file: non_empty(get("rest.basic.auth.users.file")).map(PathBuf::from),
            file_allowed_paths: paths("file.connectors.allowed.paths"),
            config_providers,
            group_id: get("group.id"),
            group: GroupSettings {
                session_timeout: ms("session.timeout.ms")?,
                heartbeat_interval: ms("heartbeat.interval.ms")?,
                rebalance_timeout: ms("rebalance.timeout.ms")?,
                scheduled_rebalance_max_delay: ms("scheduled.rebalance.max.delay.ms")?,
                connect_protocol: ConnectProtocol::from_setting(get("connect.protocol").trim())
                    .map_err(|_| {
                        Error::Settings(format!(
                            "worker setting 'connect.protocol' must be one of sessioned, compatible, eager (got '{}')",
                            get("connect.protocol")
                        ))
                    })?,
                sync_timeout: ms("worker.sync.timeout.ms")?,
                unsync_backoff: ms("worker.unsync.backoff.ms")?,
                key_ttl: ms("inter.worker.key.ttl.ms")?,
                key_algorithm: hmac("inter.worker.key.generation.algorithm")?,
                signature_algorithm: hmac("inter.worker.signature.algorithm")?,
            },
            rest_advertised_host: non_empty(get("rest.advertised.host.name")),
            rest_advertised_port: match non_empty(get("rest.advertised.port")) {
                None => None,
                Some(p) => Some(p.parse::<u16>().map_err(|_| {
                    Error::Settings(format!(
                        "worker setting 'rest.advertised.port' must be a port number (got '{p}')"
                    ))
                })?),
            },
            rest_advertised_https: match get("rest.advertised.listener").trim().to_ascii_lowercase().as_str() {
                "" => None,
                "http" => Some(false),
                "https" => Some(true),
                other => {
                    return Err(Error::Settings(format!(
                        "worker setting 'rest.advertised.listener' must be http or https (got '{other}')"
                    )))
                }
            },
            offset_topic: get("offset.storage.topic"),
            config_topic: get("config.storage.topic"),
            status_topic: get("status.storage.topic"),
            offset_flush_interval: ms("offset.flush.interval.ms")?,
            offset_flush_timeout: ms("offset.flush.timeout.ms")?,
            shutdown_timeout: ms("task.shutdown.graceful.timeout.ms")?,
            connector_defaults,
            producer: prefixed("producer."),
            consumer: prefixed("consumer."),
            admin: prefixed("admin."),
            broker: extra
                .iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix("broker.")
                        .map(|k| (k.to_string(), v.clone()))
                })
                .collect(),
        })
    }

    /// The settings as `--help` shows them: one block per setting (name and what it does,
    /// then its environment variable and default), the free-form prefixes last.
    pub fn help_text() -> String {
        const WIDTH: usize = 40;
        let mut out = format!(
            "Worker settings, later sources winning: built-in defaults, the settings file\n\
             ({SETTINGS_FILE} in the working directory, or --config <FILE>), {ENV_PREFIX}_<NAME>\n\
             environment variables, then the flags above.\n\n"
        );
        for s in SETTINGS {
            let env = format!(
                "{ENV_PREFIX}_{}",
                s.name.replace('.', "_").to_ascii_uppercase()
            );
            let default = if s.default.is_empty() {
                "unset".to_string()
            } else {
                s.default.to_string()
            };
            out.push_str(&format!(
                "  {:<WIDTH$}{}\n  {:<WIDTH$}[env: {env}] [default: {default}]\n",
                s.name, s.doc, ""
            ));
        }
        for (names, doc) in [
            (
                "producer.*, consumer.*, admin.*",
                "librdkafka properties for the worker's Kafka clients",
            ),
            (
                "key.converter.*, value.converter.*",
                "converter sub-options (e.g. value.converter.schemas.enable)",
            ),
            (
                "broker.*",
                "embedded broker settings (see `sluice broker --help`)",
            ),
            (
                "config.providers.*",
                "config provider options (e.g. config.providers.file.param.allowed.paths)",
            ),
            (
                "listeners.https.*",
                "the https listener's TLS (e.g. listeners.https.ssl.keystore.location)",
            ),
        ] {
            out.push_str(&format!("  {names:<WIDTH$}{doc}\n"));
        }
        out
    }
}

/// `SLUICE_BOOTSTRAP_SERVERS` arrives as `bootstrap_servers`; both spellings mean the dotted name.
/// `listeners`: one `http://host:port` or `https://host:port` (an empty host means every
/// interface); returns the address and whether it is https.
fn parse_listener(text: &str) -> Result<(SocketAddr, bool)> {
    let bad = |why: &str| {
        Error::Settings(format!(
            "worker setting 'listeners' must be one URL such as http://127.0.0.1:8083 or https://0.0.0.0:8443 (got '{text}'): {why}"
        ))
    };
    if text.contains(',') {
        return Err(bad("sluice serves the REST API on one listener; keep one"));
    }
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| bad("the scheme (http:// or https://) is missing"))?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => return Err(bad("the scheme must be http or https")),
    };
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad("the port is missing"))?;
    let host = match host {
        "" => "0.0.0.0",
        "localhost" => "127.0.0.1",
        h => h.trim_start_matches('[').trim_end_matches(']'),
    };
    let port: u16 = port.parse().map_err(|_| bad("the port is not a number"))?;
    let ip: std::net::IpAddr = host
        .parse()
        .map_err(|_| bad("the host must be a numeric address, localhost or empty"))?;
    Ok((SocketAddr::new(ip, port), https))
}

fn normalise_name(key: &str) -> String {
    key.to_ascii_lowercase().replace('_', ".")
}

fn describe_source(key: &str) -> String {
    format!(
        "settings file ({SETTINGS_FILE} or --config) key '{key}' or environment variable {ENV_PREFIX}_{}",
        key.replace('.', "_").to_ascii_uppercase()
    )
}

fn flatten(prefix: &str, value: config::Value, out: &mut BTreeMap<String, String>) {
    match value.kind {
        config::ValueKind::Table(table) => {
            for (k, v) in table {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        config::ValueKind::Array(items) => {
            let texts: Vec<String> = items.into_iter().map(|v| v.to_string()).collect();
            out.insert(prefix.to_string(), texts.join(","));
        }
        config::ValueKind::Nil => {}
        _ => {
            out.insert(prefix.to_string(), value.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_settings_have_kafka_connect_names() {
        let s = WorkerSettings::default();
        assert_eq!(s.group_id, "connect-cluster");
        assert_eq!(s.group.session_timeout, Duration::from_secs(10));
        assert_eq!(s.group.heartbeat_interval, Duration::from_secs(3));
        assert_eq!(
            s.group.scheduled_rebalance_max_delay,
            Duration::from_secs(10)
        );
        assert_eq!(s.group.connect_protocol, ConnectProtocol::Sessioned);
        assert_eq!(s.advertised_rest_url(), "http://127.0.0.1:8083/");
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let s = WorkerSettings::from_map(&map(&[
            ("connect.protocol", "compatible"),
            ("rest.advertised.host.name", "worker-1.example"),
            ("rest.advertised.port", "18083"),
            ("scheduled.rebalance.max.delay.ms", "0"),
        ]))
        .unwrap();
        assert_eq!(s.group.connect_protocol, ConnectProtocol::Compatible);
        assert_eq!(s.advertised_rest_addr(), "worker-1.example:18083");
        assert!(s.group.scheduled_rebalance_max_delay.is_zero());
        let err = WorkerSettings::from_map(&map(&[("connect.protocol", "bogus")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("'connect.protocol'") && err.contains("bogus"),
            "{err}"
        );
    }

    #[test]
    fn defaults_need_no_file() {
        let s = WorkerSettings::default();
        assert!(s.bootstrap_servers.is_none());
        assert_eq!(s.rest_addr.port(), 8083);
        assert_eq!(s.offset_topic, "connect-offsets");
        assert_eq!(
            s.connector_defaults
                .get("value.converter")
                .map(String::as_str),
            Some("org.apache.kafka.connect.json.JsonConverter")
        );
    }

    #[test]
    fn file_and_environment_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(SETTINGS_FILE),
            "rest.port = 18083\n\"value.converter.schemas.enable\" = false\nproducer.linger.ms = 20\n",
        )
        .unwrap();
        // Environment variables of this process are shared by the tests; use a unique one.
        std::env::set_var("SLUICE_OFFSET_STORAGE_TOPIC", "my-offsets");
        // The benchmarks' and tests' own variables reach the workers they start: not settings.
        std::env::set_var("SLUICE_BENCH_SETTINGS_PROBE", "1");
        std::env::set_var("SLUICE_TEST_SETTINGS_PROBE", "1");
        let s = WorkerSettings::load(dir.path());
        std::env::remove_var("SLUICE_OFFSET_STORAGE_TOPIC");
        std::env::remove_var("SLUICE_BENCH_SETTINGS_PROBE");
        std::env::remove_var("SLUICE_TEST_SETTINGS_PROBE");
        let s = s.unwrap();
        assert_eq!(s.rest_addr.port(), 18083);
        assert_eq!(s.offset_topic, "my-offsets");
        assert_eq!(s.producer.get("linger.ms").map(String::as_str), Some("20"));
        assert_eq!(
            s.connector_defaults
                .get("value.converter.schemas.enable")
                .map(String::as_str),
            Some("false")
        );
    }

    #[test]
    fn unknown_and_bad_settings_are_named() {
        let err = WorkerSettings::from_map(&BTreeMap::from([(
            "bootstrap.server".to_string(),
            "x".to_string(),
        )]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown worker setting 'bootstrap.server'"),
            "{err}"
        );
        assert!(err.contains("SLUICE_BOOTSTRAP_SERVER"), "{err}");
        let err = WorkerSettings::from_map(&BTreeMap::from([(
            "rest.port".to_string(),
            "eighty".to_string(),
        )]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("'rest.port' must be a port number"), "{err}");
    }

    #[test]
    fn help_lists_every_setting_with_its_variable() {
        let help = WorkerSettings::help_text();
        for s in SETTINGS {
            assert!(help.contains(s.name), "{}", s.name);
        }
        assert!(help.contains("SLUICE_BOOTSTRAP_SERVERS"));
        // Every description starts in the same column.
        let rows: Vec<&str> = help.lines().filter(|l| l.starts_with("  ")).collect();
        assert_eq!(rows.len(), 2 * SETTINGS.len() + 5);
        for line in rows {
            let bytes = line.as_bytes();
            assert!(
                bytes.len() > 42 && bytes[41] == b' ' && bytes[42] != b' ',
                "misaligned: {line:?}"
            );
        }
    }

    #[test]
    fn a_named_settings_file_is_read_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("worker.toml");
        std::fs::write(&file, "\"offset.flush.interval.ms\" = 250\n").unwrap();
        let s = WorkerSettings::load_file(&file).unwrap();
        assert_eq!(s.offset_flush_interval, Duration::from_millis(250));
        let missing = dir.path().join("missing.toml");
        let err = WorkerSettings::load_file(&missing).unwrap_err().to_string();
        assert!(
            err.contains("missing.toml") && err.contains("--config"),
            "{err}"
        );
    }
}
