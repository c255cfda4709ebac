//! The CDC source's options, named as Debezium's PostgreSQL connector names them, and their
//! parsed form.

use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use sluice_sdk::config::{ConfigDef, ConfigKey, ConfigType, Importance, Props, Validator};
use sluice_sdk::{ConfigError, ConfigErrors, Error, Result};
use tracing::warn;

use crate::config::{CONNECTION_PASSWORD, CONNECTION_URL, CONNECTION_USER};
use crate::connection::{ConnectError, ConnectionSettings, SslMode, DEFAULT_PORT};

/// `database.hostname`.
pub const DATABASE_HOSTNAME: &str = "database.hostname";
/// `database.port`.
pub const DATABASE_PORT: &str = "database.port";
/// `database.user`.
pub const DATABASE_USER: &str = "database.user";
/// `database.password`.
pub const DATABASE_PASSWORD: &str = "database.password";
/// `database.dbname`.
pub const DATABASE_DBNAME: &str = "database.dbname";
/// `database.sslmode`.
pub const DATABASE_SSLMODE: &str = "database.sslmode";
/// `database.sslrootcert`.
pub const DATABASE_SSLROOTCERT: &str = "database.sslrootcert";
/// `database.sslcert`.
pub const DATABASE_SSLCERT: &str = "database.sslcert";
/// `database.sslkey`.
pub const DATABASE_SSLKEY: &str = "database.sslkey";
/// `topic.prefix`: the logical server name, first part of every topic.
pub const TOPIC_PREFIX: &str = "topic.prefix";
/// `plugin.name`: only `pgoutput`.
pub const PLUGIN_NAME: &str = "plugin.name";
/// `slot.name`.
pub const SLOT_NAME: &str = "slot.name";
/// `slot.drop.on.stop`.
pub const SLOT_DROP_ON_STOP: &str = "slot.drop.on.stop";
/// `publication.name`.
pub const PUBLICATION_NAME: &str = "publication.name";
/// `publication.autocreate.mode`.
pub const PUBLICATION_AUTOCREATE_MODE: &str = "publication.autocreate.mode";
/// `schema.include.list`.
pub const SCHEMA_INCLUDE_LIST: &str = "schema.include.list";
/// `schema.exclude.list`.
pub const SCHEMA_EXCLUDE_LIST: &str = "schema.exclude.list";
/// `table.include.list`.
pub const TABLE_INCLUDE_LIST: &str = "table.include.list";
/// `table.exclude.list`.
pub const TABLE_EXCLUDE_LIST: &str = "table.exclude.list";
/// `column.exclude.list`.
pub const COLUMN_EXCLUDE_LIST: &str = "column.exclude.list";
/// `snapshot.mode`.
pub const SNAPSHOT_MODE: &str = "snapshot.mode";
/// `snapshot.fetch.size`.
pub const SNAPSHOT_FETCH_SIZE: &str = "snapshot.fetch.size";
/// `max.batch.size`.
pub const MAX_BATCH_SIZE: &str = "max.batch.size";
/// `poll.interval.ms`.
pub const POLL_INTERVAL_MS: &str = "poll.interval.ms";
/// `heartbeat.interval.ms`.
pub const HEARTBEAT_INTERVAL_MS: &str = "heartbeat.interval.ms";
/// `topic.heartbeat.prefix`.
pub const TOPIC_HEARTBEAT_PREFIX: &str = "topic.heartbeat.prefix";
/// `decimal.handling.mode`.
pub const DECIMAL_HANDLING_MODE: &str = "decimal.handling.mode";
/// `time.precision.mode`.
pub const TIME_PRECISION_MODE: &str = "time.precision.mode";
/// `tombstones.on.delete`.
pub const TOMBSTONES_ON_DELETE: &str = "tombstones.on.delete";
/// `status.update.interval.ms`: how often the flush position is reported to the server.
pub const STATUS_UPDATE_INTERVAL_MS: &str = "status.update.interval.ms";

const GROUP_DATABASE: &str = "Database";
const GROUP_CAPTURE: &str = "Capture";
const GROUP_EVENTS: &str = "Events";

/// Which tables the connector creates its publication for, when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicationAutocreate {
    /// `FOR ALL TABLES` (needs a superuser); the include/exclude lists filter the events.
    AllTables,
    /// `FOR TABLE` the captured tables, kept in step with the lists at each start.
    Filtered,
    /// Never created or changed: it must exist and publish every captured table.
    Disabled,
}

/// When the tables are read in full before streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Once, when the connector has no offsets; then stream.
    Initial,
    /// Once, when the connector has no offsets; then stop producing.
    InitialOnly,
    /// Never: stream only, from the slot's position (`never` is Debezium's old name).
    NoData,
    /// When the connector has no offsets or its slot is gone.
    WhenNeeded,
    /// At every start.
    Always,
}

impl SnapshotMode {
    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "initial" => Some(Self::Initial),
            "initial_only" => Some(Self::InitialOnly),
            "no_data" | "never" => Some(Self::NoData),
            "when_needed" => Some(Self::WhenNeeded),
            "always" => Some(Self::Always),
            _ => None,
        }
    }
}

/// `decimal.handling.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecimalHandling {
    /// Connect Decimal (fixed scale) or Debezium's VariableScaleDecimal.
    Precise,
    /// float64.
    Double,
    /// The number as text.
    String,
}

/// `time.precision.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimePrecision {
    /// Debezium's types at the column's precision (milli or micro).
    Adaptive,
    /// Like adaptive, but `time` is always MicroTime.
    AdaptiveTimeMicroseconds,
    /// Kafka Connect's Date, Time and Timestamp (milliseconds).
    Connect,
}

/// The parsed configuration.
#[derive(Debug, Clone)]
pub struct PostgresCdcConfig {
    /// Where and how to connect (for ordinary queries).
    pub connection: ConnectionSettings,
    /// Host for the replication connection.
    pub hostname: String,
    /// Port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password (empty when none; never printed).
    pub password: sluice_sdk::config::Password,
    /// Database.
    pub dbname: String,
    /// `database.sslmode`, for both the query and the replication connection.
    pub ssl_mode: SslMode,
    /// `database.sslrootcert`: the CA certificates trusted with `verify-ca` and `verify-full`.
    pub ssl_root_cert: Option<PathBuf>,
    /// `database.sslcert` and `database.sslkey`: the client certificate and its key.
    pub ssl_client_cert: Option<(PathBuf, PathBuf)>,
    /// `topic.prefix`.
    pub topic_prefix: String,
    /// `slot.name`.
    pub slot_name: String,
    /// `slot.drop.on.stop`.
    pub slot_drop_on_stop: bool,
    /// `publication.name`.
    pub publication_name: String,
    /// `publication.autocreate.mode`.
    pub publication_autocreate: PublicationAutocreate,
    /// Schema regexes to include (empty: all but the system schemas).
    pub schema_include: Vec<Regex>,
    /// Schema regexes to exclude.
    pub schema_exclude: Vec<Regex>,
    /// `schema.table` regexes to include (empty: all).
    pub table_include: Vec<Regex>,
    /// `schema.table` regexes to exclude.
    pub table_exclude: Vec<Regex>,
    /// `schema.table.column` regexes of columns left out of events.
    pub column_exclude: Vec<Regex>,
    /// `snapshot.mode`.
    pub snapshot_mode: SnapshotMode,
    /// Rows fetched per round trip while snapshotting.
    pub snapshot_fetch_size: usize,
    /// Most records one poll returns.
    pub max_batch_size: usize,
    /// Longest a poll waits for the first change.
    pub poll_interval: Duration,
    /// Heartbeat period; zero disables heartbeats.
    pub heartbeat_interval: Duration,
    /// Heartbeat topic prefix.
    pub heartbeat_topic_prefix: String,
    /// `decimal.handling.mode`.
    pub decimal_handling: DecimalHandling,
    /// `time.precision.mode`.
    pub time_precision: TimePrecision,
    /// `tombstones.on.delete`.
    pub tombstones_on_delete: bool,
    /// How often the confirmed flush position is sent to the server.
    pub status_update_interval: Duration,
}

/// Every option, declared once.
pub fn config_def() -> ConfigDef {
    let text = |name: &str, importance: Importance, doc: &str, group: &str| {
        ConfigKey::new(name, ConfigType::String, importance, doc).group(group)
    };
    let list = |name: &str, doc: &str| {
        ConfigKey::new(name, ConfigType::List, Importance::Medium, doc)
            .default_value("")
            .group(GROUP_CAPTURE)
    };
    let ms = |name: &str, default: &str, doc: &str, group: &str| {
        ConfigKey::new(name, ConfigType::Long, Importance::Low, doc)
            .default_value(default)
            .validator(Validator::AtLeast(0.0))
            .group(group)
    };
    ConfigDef::new()
        .define(
            text(
                DATABASE_HOSTNAME,
                Importance::High,
                "Host name or address of the PostgreSQL server.",
                GROUP_DATABASE,
            )
            .validator(Validator::NonEmpty),
        )
        .define(
            ConfigKey::new(
                DATABASE_PORT,
                ConfigType::Int,
                Importance::High,
                "Port of the PostgreSQL server.",
            )
            .default_value(DEFAULT_PORT.to_string())
            .validator(Validator::Between(1.0, 65535.0))
            .group(GROUP_DATABASE),
        )
        .define(
            text(
                DATABASE_USER,
                Importance::High,
                "User to connect as; it needs the REPLICATION attribute (or superuser), and \
                 SELECT on the captured tables for the snapshot.",
                GROUP_DATABASE,
            )
            .validator(Validator::NonEmpty),
        )
        .define(
            ConfigKey::new(
                DATABASE_PASSWORD,
                ConfigType::Password,
                Importance::High,
                "Password of database.user. Use ${env:NAME} to keep it out of files.",
            )
            .optional()
            .group(GROUP_DATABASE),
        )
        .define(
            text(
                DATABASE_DBNAME,
                Importance::High,
                "Database to capture changes from.",
                GROUP_DATABASE,
            )
            .validator(Validator::NonEmpty),
        )
        .define(
            text(
                DATABASE_SSLMODE,
                Importance::Medium,
                "TLS to the server, for the queries and the replication stream alike, as \
                 libpq's sslmode: disable (plain TCP), prefer (TLS when the server offers it, \
                 certificate not checked), require (TLS, certificate not checked), verify-ca \
                 (TLS, certificate signed by a CA in database.sslrootcert), verify-full \
                 (verify-ca, and the certificate is for database.hostname).",
                GROUP_DATABASE,
            )
            .default_value("prefer")
            .validator(Validator::one_of(&[
                "disable",
                "prefer",
                "require",
                "verify-ca",
                "verify-full",
            ])),
        )
        .define(
            text(
                DATABASE_SSLROOTCERT,
                Importance::Low,
                "PEM file of the CA certificates trusted with verify-ca and verify-full \
                 (required by them; not used by the other modes).",
                GROUP_DATABASE,
            )
            .optional(),
        )
        .define(
            text(
                DATABASE_SSLCERT,
                Importance::Low,
                "PEM file of the client certificate presented to the server when TLS is used \
                 (pg_hba.conf 'cert' authentication or clientcert=verify-ca/verify-full); \
                 needs database.sslkey.",
                GROUP_DATABASE,
            )
            .optional(),
        )
        .define(
            text(
                DATABASE_SSLKEY,
                Importance::Low,
                "PEM file of the unencrypted private key of database.sslcert (PKCS#8, PKCS#1 \
                 or SEC1).",
                GROUP_DATABASE,
            )
            .optional(),
        )
        .define(
            text(
                TOPIC_PREFIX,
                Importance::High,
                "Logical name of the server: topics are <topic.prefix>.<schema>.<table>, and \
                 source.name in every event.",
                GROUP_EVENTS,
            )
            .validator(Validator::NonEmpty),
        )
        .define(
            text(
                PLUGIN_NAME,
                Importance::Medium,
                "Logical decoding plugin; only pgoutput (built into PostgreSQL 10 and later).",
                GROUP_CAPTURE,
            )
            .default_value("pgoutput")
            .validator(Validator::one_of(&["pgoutput"])),
        )
        .define(
            text(
                SLOT_NAME,
                Importance::Medium,
                "Logical replication slot the connector creates and reads; one per connector.",
                GROUP_CAPTURE,
            )
            .default_value("debezium")
            .validator(Validator::custom(|v| {
                let name = v.to_string();
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    Ok(())
                } else {
                    Err(format!(
                        "must be lower-case letters, digits and underscores, as PostgreSQL \
                         requires of slot names (got '{name}')"
                    ))
                }
            })),
        )
        .define(
            ConfigKey::new(
                SLOT_DROP_ON_STOP,
                ConfigType::Boolean,
                Importance::Low,
                "Drop the slot when the task stops gracefully (tests and demos only: the next \
                 start cannot resume and takes a new snapshot).",
            )
            .default_value("false")
            .group(GROUP_CAPTURE),
        )
        .define(
            text(
                PUBLICATION_NAME,
                Importance::Medium,
                "Publication the slot streams.",
                GROUP_CAPTURE,
            )
            .default_value("dbz_publication")
            .validator(Validator::NonEmpty),
        )
        .define(
            text(
                PUBLICATION_AUTOCREATE_MODE,
                Importance::Medium,
                "all_tables: create the publication FOR ALL TABLES when it is missing (needs a \
                 superuser); filtered: create it, or set its tables, FOR TABLE the captured \
                 tables at each start; disabled: never create it.",
                GROUP_CAPTURE,
            )
            .default_value("all_tables")
            .validator(Validator::one_of(&["all_tables", "filtered", "disabled"])),
        )
        .define(list(
            SCHEMA_INCLUDE_LIST,
            "Regular expressions matching the schemas to capture (whole name).",
        ))
        .define(list(
            SCHEMA_EXCLUDE_LIST,
            "Regular expressions matching schemas not to capture.",
        ))
        .define(list(
            TABLE_INCLUDE_LIST,
            "Regular expressions matching schema.table of the tables to capture (whole name). \
             Empty: every table of the included schemas.",
        ))
        .define(list(
            TABLE_EXCLUDE_LIST,
            "Regular expressions matching schema.table of tables not to capture.",
        ))
        .define(list(
            COLUMN_EXCLUDE_LIST,
            "Regular expressions matching schema.table.column of columns left out of events.",
        ))
        .define(
            text(
                SNAPSHOT_MODE,
                Importance::Medium,
                "initial: read the tables once (at the slot's consistent point) when there are no \
                 offsets, then stream; initial_only: the same without streaming; no_data (or \
                 never): stream only; when_needed: also re-snapshot when the slot is gone; \
                 always: at every start.",
                GROUP_CAPTURE,
            )
            .default_value("initial")
            .validator(Validator::one_of(&[
                "initial",
                "initial_only",
                "no_data",
                "never",
                "when_needed",
                "always",
            ])),
        )
        .define(
            ConfigKey::new(
                SNAPSHOT_FETCH_SIZE,
                ConfigType::Int,
                Importance::Low,
                "Rows read per round trip while snapshotting.",
            )
            .default_value("10240")
            .validator(Validator::AtLeast(1.0))
            .group(GROUP_CAPTURE),
        )
        .define(
            ConfigKey::new(
                MAX_BATCH_SIZE,
                ConfigType::Int,
                Importance::Low,
                "Most records one poll returns.",
            )
            .default_value("2048")
            .validator(Validator::AtLeast(1.0))
            .group(GROUP_CAPTURE),
        )
        .define(ms(
            POLL_INTERVAL_MS,
            "500",
            "Longest a poll waits for a change before it returns empty.",
            GROUP_CAPTURE,
        ))
        .define(ms(
            HEARTBEAT_INTERVAL_MS,
            "0",
            "Period of heartbeat records (topic <topic.heartbeat.prefix>.<topic.prefix>) sent \
             while the captured tables are idle, so the slot's position moves on when other \
             tables change; 0: none.",
            GROUP_CAPTURE,
        ))
        .define(
            text(
                TOPIC_HEARTBEAT_PREFIX,
                Importance::Low,
                "Prefix of the heartbeat topic.",
                GROUP_EVENTS,
            )
            .default_value("__debezium-heartbeat"),
        )
        .define(ms(
            STATUS_UPDATE_INTERVAL_MS,
            "1000",
            "Most time between the acknowledgement of records and the slot's \
             confirmed_flush_lsn moving past them.",
            GROUP_CAPTURE,
        ))
        .define(
            text(
                DECIMAL_HANDLING_MODE,
                Importance::Medium,
                "numeric and money: precise (Connect Decimal, or Debezium's \
                 VariableScaleDecimal for numeric without a scale), double, or string.",
                GROUP_EVENTS,
            )
            .default_value("precise")
            .validator(Validator::one_of(&["precise", "double", "string"])),
        )
        .define(
            text(
                TIME_PRECISION_MODE,
                Importance::Medium,
                "adaptive: Debezium's Date, Time/MicroTime, Timestamp/MicroTimestamp by the \
                 column's precision; adaptive_time_microseconds: time is always MicroTime; \
                 connect: Kafka Connect's Date, Time and Timestamp (milliseconds).",
                GROUP_EVENTS,
            )
            .default_value("adaptive")
            .validator(Validator::one_of(&[
                "adaptive",
                "adaptive_time_microseconds",
                "connect",
            ])),
        )
        .define(
            ConfigKey::new(
                TOMBSTONES_ON_DELETE,
                ConfigType::Boolean,
                Importance::Medium,
                "Follow each delete event with a tombstone (the key, a null value) so compacted \
                 topics drop the row.",
            )
            .default_value("true")
            .group(GROUP_EVENTS),
        )
}

fn regexes(option: &str, items: Vec<String>, errors: &mut ConfigErrors) -> Vec<Regex> {
    items
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .filter_map(|text| match Regex::new(&format!("^(?:{})$", text.trim())) {
            Ok(r) => Some(r),
            Err(e) => {
                errors.push(
                    option,
                    format!("has '{text}', which is not a regular expression: {e}"),
                );
                None
            }
        })
        .collect()
}

/// The combinations of `database.sslmode` and `database.sslrootcert` that cannot work, found
/// before anything connects: a verifying mode without a CA file (libpq would look for
/// `~/.postgresql/root.crt`; a worker has no such home, so the file is named explicitly), and
/// a CA file that cannot be read or holds no certificate.
fn check_tls_options(
    sslmode: &str,
    mode: SslMode,
    root_cert: Option<&str>,
    errors: &mut ConfigErrors,
) {
    let verifies = matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull);
    match root_cert {
        None if verifies => errors.push(
            DATABASE_SSLROOTCERT,
            format!(
                "is required with database.sslmode={sslmode}: set it to the PEM file of the CA \
                 certificate that signed the server's certificate, or use \
                 database.sslmode=require to encrypt without checking the server"
            ),
        ),
        None => {}
        Some(path) if verifies => {
            if let Err(message) = read_ca_file(Path::new(path)) {
                errors.push(DATABASE_SSLROOTCERT, message);
            }
        }
        Some(path) => warn!(
            sslrootcert = %path,
            sslmode,
            "database.sslrootcert is not used with this database.sslmode: the server's \
             certificate is not checked; use verify-ca or verify-full to check it"
        ),
    }
}

/// `database.sslcert` and `database.sslkey`: both or neither, each a readable PEM file of its
/// kind (an encrypted key cannot be used: there is no option for its password).
fn check_client_certificate(
    cert: Option<String>,
    key: Option<String>,
    errors: &mut ConfigErrors,
) -> Option<(PathBuf, PathBuf)> {
    let (cert, key) = match (cert, key) {
        (None, None) => return None,
        (Some(cert), Some(key)) => (PathBuf::from(cert), PathBuf::from(key)),
        (Some(_), None) => {
            errors.push(
                DATABASE_SSLKEY,
                "is required with database.sslcert: set it to the PEM file of the client \
                 certificate's private key",
            );
            return None;
        }
        (None, Some(_)) => {
            errors.push(
                DATABASE_SSLCERT,
                "is required with database.sslkey: set it to the PEM file of the client \
                 certificate",
            );
            return None;
        }
    };
    let read = |option: &str, path: &Path, errors: &mut ConfigErrors| {
        std::fs::read(path)
            .map_err(|e| {
                errors.push(
                    option,
                    format!(
                        "names '{}', which cannot be read ({e}); give the path of a PEM file \
                         that the worker can read",
                        path.display()
                    ),
                )
            })
            .ok()
    };
    let mut ok = true;
    if let Some(pem) = read(DATABASE_SSLCERT, &cert, errors) {
        let found = rustls_pemfile::certs(&mut pem.as_slice())
            .filter(|c| c.is_ok())
            .count();
        if found == 0 {
            ok = false;
            errors.push(
                DATABASE_SSLCERT,
                format!(
                    "names '{}', which holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                    cert.display()
                ),
            );
        }
    } else {
        ok = false;
    }
    if let Some(pem) = read(DATABASE_SSLKEY, &key, errors) {
        if !matches!(
            rustls_pemfile::private_key(&mut pem.as_slice()),
            Ok(Some(_))
        ) {
            ok = false;
            errors.push(
                DATABASE_SSLKEY,
                format!(
                    "names '{}', which holds no unencrypted private key (PKCS#8, PKCS#1 or SEC1 \
                     PEM); decrypt it with openssl pkey",
                    key.display()
                ),
            );
        }
    } else {
        ok = false;
    }
    ok.then_some((cert, key))
}

/// Reads the PEM file of trusted CA certificates, for the check at parse time.
fn read_ca_file(path: &Path) -> std::result::Result<(), String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| {
        format!(
            "names '{shown}', which cannot be read ({e}); give the path of a PEM file of CA \
             certificates that the worker can read"
        )
    })?;
    let mut found = 0;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        cert.map_err(|e| format!("names '{shown}', which is not a PEM file ({e})"))?;
        found += 1;
    }
    if found == 0 {
        return Err(format!(
            "names '{shown}', which holds no PEM certificate (-----BEGIN CERTIFICATE-----); give \
             the CA certificate that signed the server's certificate"
        ));
    }
    Ok(())
}

impl PostgresCdcConfig {
    /// Parses `props`, reporting every bad option at once.
    ///
    /// # Errors
    /// [`Error::Config`] naming each wrong option and what to do.
    pub fn parse(props: &Props) -> Result<Self> {
        let (config, mut errors) = config_def().parse_lenient(props);
        let get = |name: &str| config.get_str(name).unwrap_or_default().to_string();
        let millis =
            |name: &str| Duration::from_millis(config.get_i64(name).unwrap_or(0).max(0) as u64);
        let hostname = get(DATABASE_HOSTNAME);
        let port = u16::try_from(config.get_i64(DATABASE_PORT).unwrap_or(5432)).unwrap_or(5432);
        let user = get(DATABASE_USER);
        let password = config
            .get_password(DATABASE_PASSWORD)
            .map(|p| p.value().to_string())
            .unwrap_or_default();
        let dbname = get(DATABASE_DBNAME);
        let sslmode = config
            .get_str(DATABASE_SSLMODE)
            .unwrap_or("prefer")
            .to_ascii_lowercase();
        // A value outside the validator's list is reported by it already.
        let ssl_mode = SslMode::parse(&sslmode).unwrap_or(SslMode::Prefer);
        let sslrootcert = config
            .get_str(DATABASE_SSLROOTCERT)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        check_tls_options(&sslmode, ssl_mode, sslrootcert.as_deref(), &mut errors);
        let optional_path = |name: &str| {
            config
                .get_str(name)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        let sslcert = optional_path(DATABASE_SSLCERT);
        let sslkey = optional_path(DATABASE_SSLKEY);
        let ssl_client_cert = check_client_certificate(sslcert, sslkey, &mut errors);
        let schema_include = regexes(
            SCHEMA_INCLUDE_LIST,
            config.get_list(SCHEMA_INCLUDE_LIST),
            &mut errors,
        );
        let schema_exclude = regexes(
            SCHEMA_EXCLUDE_LIST,
            config.get_list(SCHEMA_EXCLUDE_LIST),
            &mut errors,
        );
        let table_include = regexes(
            TABLE_INCLUDE_LIST,
            config.get_list(TABLE_INCLUDE_LIST),
            &mut errors,
        );
        let table_exclude = regexes(
            TABLE_EXCLUDE_LIST,
            config.get_list(TABLE_EXCLUDE_LIST),
            &mut errors,
        );
        let column_exclude = regexes(
            COLUMN_EXCLUDE_LIST,
            config.get_list(COLUMN_EXCLUDE_LIST),
            &mut errors,
        );
        if !table_include.is_empty() && !table_exclude.is_empty() {
            errors.push(
                TABLE_EXCLUDE_LIST,
                "cannot be combined with table.include.list; keep only one of the two",
            );
        }
        if !schema_include.is_empty() && !schema_exclude.is_empty() {
            errors.push(
                SCHEMA_EXCLUDE_LIST,
                "cannot be combined with schema.include.list; keep only one of the two",
            );
        }
        let mut connection = None;
        if !hostname.is_empty() && !dbname.is_empty() && !user.is_empty() {
            let mut url = format!(
                "postgresql://{}:{port}/{}?sslmode={sslmode}",
                if hostname.contains(':') {
                    format!("[{hostname}]")
                } else {
                    hostname.clone()
                },
                percent_encode(&dbname)
            );
            if let Some(ca) = &sslrootcert {
                url.push_str(&format!("&sslrootcert={}", percent_encode(ca)));
            }
            if let Some((cert, key)) = &ssl_client_cert {
                url.push_str(&format!(
                    "&sslcert={}&sslkey={}",
                    percent_encode(&cert.to_string_lossy()),
                    percent_encode(&key.to_string_lossy())
                ));
            }
            match ConnectionSettings::parse(
                &url,
                Some(&user),
                (!password.is_empty()).then_some(password.as_str()),
            ) {
                Ok(mut c) => {
                    // Text output the same on the snapshot connection as in the stream.
                    c.options
                        .extend(SESSION_OPTIONS.iter().map(|o| o.to_string()));
                    connection = Some(c);
                }
                Err(message) => errors.push(DATABASE_HOSTNAME, message),
            }
        }
        errors.0.dedup();
        if !errors.is_empty() {
            return Err(Error::Config(errors));
        }
        let Some(connection) = connection else {
            return Err(Error::Config(errors));
        };
        Ok(Self {
            connection,
            hostname,
            port,
            user,
            password: sluice_sdk::config::Password(password),
            dbname,
            ssl_mode,
            ssl_root_cert: sslrootcert.map(PathBuf::from),
            ssl_client_cert,
            topic_prefix: get(TOPIC_PREFIX),
            slot_name: get(SLOT_NAME),
            slot_drop_on_stop: config.get_bool(SLOT_DROP_ON_STOP).unwrap_or(false),
            publication_name: get(PUBLICATION_NAME),
            publication_autocreate: match config
                .get_str(PUBLICATION_AUTOCREATE_MODE)
                .unwrap_or("all_tables")
                .to_ascii_lowercase()
                .as_str()
            {
                "filtered" => PublicationAutocreate::Filtered,
                "disabled" => PublicationAutocreate::Disabled,
                _ => PublicationAutocreate::AllTables,
            },
            schema_include,
            schema_exclude,
            table_include,
            table_exclude,
            column_exclude,
            snapshot_mode: SnapshotMode::parse(config.get_str(SNAPSHOT_MODE).unwrap_or("initial"))
                .unwrap_or(SnapshotMode::Initial),
            snapshot_fetch_size: config.get_i64(SNAPSHOT_FETCH_SIZE).unwrap_or(10240).max(1)
                as usize,
            max_batch_size: config.get_i64(MAX_BATCH_SIZE).unwrap_or(2048).max(1) as usize,
            poll_interval: millis(POLL_INTERVAL_MS),
            heartbeat_interval: millis(HEARTBEAT_INTERVAL_MS),
            heartbeat_topic_prefix: get(TOPIC_HEARTBEAT_PREFIX),
            decimal_handling: match get(DECIMAL_HANDLING_MODE).to_ascii_lowercase().as_str() {
                "double" => DecimalHandling::Double,
                "string" => DecimalHandling::String,
                _ => DecimalHandling::Precise,
            },
            time_precision: match get(TIME_PRECISION_MODE).to_ascii_lowercase().as_str() {
                "connect" => TimePrecision::Connect,
                "adaptive_time_microseconds" => TimePrecision::AdaptiveTimeMicroseconds,
                _ => TimePrecision::Adaptive,
            },
            tombstones_on_delete: config.get_bool(TOMBSTONES_ON_DELETE).unwrap_or(true),
            status_update_interval: millis(STATUS_UPDATE_INTERVAL_MS)
                .max(Duration::from_millis(10)),
        })
    }

    /// What to change when TLS with the server failed with `text` (the TLS library's or the
    /// driver's message): the option to blame and the advice.
    pub fn tls_advice(&self, text: &str) -> (&'static str, String) {
        let lower = text.to_ascii_lowercase();
        let ca = self
            .ssl_root_cert
            .as_ref()
            .map_or_else(String::new, |p| format!(" ('{}')", p.display()));
        // BadSignature: an issuer of the same name as a trusted CA, but another key.
        if [
            "unknownissuer",
            "unknown issuer",
            "badsignature",
            "bad signature",
        ]
        .iter()
        .any(|t| lower.contains(t))
        {
            (
                DATABASE_SSLROOTCERT,
                format!(
                    "the server's certificate is not signed by a CA in database.sslrootcert{ca}; \
                     give the CA certificate that signed it, or use database.sslmode=require to \
                     encrypt without checking the server"
                ),
            )
        } else if lower.contains("not valid for name") || lower.contains("notvalidforname") {
            (
                DATABASE_HOSTNAME,
                format!(
                    "the server's certificate is not for '{}'; set database.hostname to a name \
                     (or address) the certificate is for, or use database.sslmode=verify-ca to \
                     check only that a trusted CA signed it",
                    self.hostname
                ),
            )
        } else if lower.contains("ca pem") || lower.contains("ca certificates") {
            (
                DATABASE_SSLROOTCERT,
                format!(
                    "database.sslrootcert{ca} must name a readable PEM file of the CA \
                     certificates to trust"
                ),
            )
        } else if lower.contains("sslrequest rejected")
            || lower.contains("server does not support tls")
            || lower.contains("server does not support ssl")
        {
            (
                DATABASE_SSLMODE,
                "the server does not accept TLS; turn on ssl in its postgresql.conf, or use \
                 database.sslmode=prefer or disable"
                    .to_string(),
            )
        } else {
            (
                DATABASE_SSLMODE,
                "check database.sslmode (disable, prefer, require, verify-ca, verify-full), \
                 database.sslrootcert and the server's ssl settings"
                    .to_string(),
            )
        }
    }

    /// A failed query connection explained in this connector's option names (the connection
    /// code explains it in the polling source's).
    pub fn explain_connect_error(&self, error: &ConnectError) -> ConfigError {
        let target = self.connection.describe();
        if let ConnectError::Postgres(e) = error {
            if let Some(db) = e
                .as_db_error()
                .filter(|d| d.message().contains("certificate"))
            {
                return ConfigError::new(
                    DATABASE_SSLCERT,
                    format!(
                        "was refused by PostgreSQL at {target}: {}; the server wants a client \
                         certificate: set database.sslcert and database.sslkey to one it \
                         trusts, issued to database.user ('{}')",
                        db.message(),
                        self.user
                    ),
                );
            }
            if e.code().is_none() {
                let text = crate::connection::error_chain(e);
                if text.contains("TLS") || text.contains("certificate") {
                    let (option, advice) = self.tls_advice(&text);
                    return ConfigError::new(
                        option,
                        format!(
                            "could not set up TLS with PostgreSQL at {target}: {text}; {advice}"
                        ),
                    );
                }
            }
        }
        if let ConnectError::Settings(message) = error {
            // The connection code names the URL's parameters; they come from these options.
            let option = if message.starts_with("has sslcert") {
                Some(DATABASE_SSLCERT)
            } else if message.starts_with("has sslkey") {
                Some(DATABASE_SSLKEY)
            } else if message.starts_with("has sslrootcert") {
                Some(DATABASE_SSLROOTCERT)
            } else {
                None
            };
            if let Some(option) = option {
                let message = message
                    .replace("has sslcert=", "names ")
                    .replace("has sslkey=", "names ")
                    .replace("has sslrootcert=", "names ")
                    .replace("has sslcert and sslkey", "and database.sslkey name files");
                return ConfigError::new(option, message);
            }
        }
        let mut explained = self.connection.explain(error);
        explained.option = match explained.option.as_str() {
            CONNECTION_PASSWORD => DATABASE_PASSWORD,
            CONNECTION_USER => DATABASE_USER,
            CONNECTION_URL => DATABASE_HOSTNAME,
            other => other,
        }
        .to_string();
        explained.message = explained
            .message
            .replace(
                "connection.password (or the password in connection.url)",
                "database.password",
            )
            .replace("correct the name in the URL", "correct database.dbname");
        explained
    }

    /// Whether table `schema`.`table` is captured.
    pub fn captures(&self, schema: &str, table: &str) -> bool {
        if SYSTEM_SCHEMAS.contains(&schema) {
            return false;
        }
        if !self.schema_include.is_empty()
            && !self.schema_include.iter().any(|r| r.is_match(schema))
        {
            return false;
        }
        if self.schema_exclude.iter().any(|r| r.is_match(schema)) {
            return false;
        }
        let full = format!("{schema}.{table}");
        if !self.table_include.is_empty() {
            return self.table_include.iter().any(|r| r.is_match(&full));
        }
        !self.table_exclude.iter().any(|r| r.is_match(&full))
    }

    /// Whether column `column` of `schema`.`table` is left out of events.
    pub fn excludes_column(&self, schema: &str, table: &str, column: &str) -> bool {
        if self.column_exclude.is_empty() {
            return false;
        }
        let full = format!("{schema}.{table}.{column}");
        self.column_exclude.iter().any(|r| r.is_match(&full))
    }

    /// The topic of a table's events.
    pub fn topic(&self, schema: &str, table: &str) -> String {
        format!("{}.{schema}.{table}", self.topic_prefix)
    }
}

/// Schemas never captured.
pub const SYSTEM_SCHEMAS: &[&str] = &["pg_catalog", "information_schema", "pg_toast"];

/// Session settings of both connections, so values print the same in the snapshot and in the
/// stream (the walsender prints stream values with its own session's settings).
pub const SESSION_OPTIONS: &[&str] = &[
    "-c DateStyle=ISO,MDY",
    "-c IntervalStyle=postgres",
    "-c extra_float_digits=3",
    "-c bytea_output=hex",
];

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::config::props;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            (DATABASE_HOSTNAME, "db"),
            (DATABASE_USER, "cdc"),
            (DATABASE_PASSWORD, "secret"),
            (DATABASE_DBNAME, "shop"),
            (TOPIC_PREFIX, "shop"),
        ]
    }

    #[test]
    fn debezium_defaults_apply() {
        let c = PostgresCdcConfig::parse(&props(&base())).unwrap();
        assert_eq!(c.slot_name, "debezium");
        assert_eq!(c.publication_name, "dbz_publication");
        assert_eq!(c.snapshot_mode, SnapshotMode::Initial);
        assert_eq!(c.decimal_handling, DecimalHandling::Precise);
        assert_eq!(c.time_precision, TimePrecision::Adaptive);
        assert!(c.tombstones_on_delete);
        assert_eq!(c.connection.describe(), "db:5432/shop");
        assert_eq!(c.topic("public", "orders"), "shop.public.orders");
    }

    #[test]
    fn lists_are_whole_name_regexes() {
        let mut p = base();
        p.push((TABLE_INCLUDE_LIST, "public.orders,inv\\..*"));
        p.push((COLUMN_EXCLUDE_LIST, "public.orders.secret"));
        let c = PostgresCdcConfig::parse(&props(&p)).unwrap();
        assert!(c.captures("public", "orders"));
        assert!(!c.captures("public", "orders2"));
        assert!(c.captures("inv", "items"));
        assert!(!c.captures("pg_catalog", "pg_class"));
        assert!(c.excludes_column("public", "orders", "secret"));
        assert!(!c.excludes_column("public", "orders", "secret2"));
    }

    fn errors_of(p: &[(&str, &str)]) -> String {
        match PostgresCdcConfig::parse(&props(p)) {
            Err(Error::Config(errors)) => errors.to_string(),
            other => panic!("expected errors, got {other:?}"),
        }
    }

    #[test]
    fn every_sslmode_is_accepted_and_only_verifying_ones_need_a_ca_file() {
        for (mode, expected) in [
            ("disable", SslMode::Disable),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
        ] {
            let mut p = base();
            p.push((DATABASE_SSLMODE, mode));
            // Not used by these modes, so not read either.
            p.push((DATABASE_SSLROOTCERT, "/nonexistent/ca.pem"));
            let c = PostgresCdcConfig::parse(&props(&p)).unwrap();
            assert_eq!(c.ssl_mode, expected);
        }
        let c = PostgresCdcConfig::parse(&props(&base())).unwrap();
        assert_eq!(c.ssl_mode, SslMode::Prefer, "Debezium's default");

        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        // Any well-formed certificate will do for the parse-time check.
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let ca = ca.display().to_string();
        for (mode, expected) in [
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            let mut p = base();
            p.push((DATABASE_SSLMODE, mode));
            p.push((DATABASE_SSLROOTCERT, &ca));
            let c = PostgresCdcConfig::parse(&props(&p)).unwrap();
            assert_eq!(c.ssl_mode, expected);
            assert_eq!(c.ssl_root_cert.as_deref(), Some(Path::new(&ca)));
        }
    }

    #[test]
    fn bad_tls_combinations_name_the_option_and_the_fix() {
        let mut p = base();
        p.push((DATABASE_SSLMODE, "verify-full"));
        let text = errors_of(&p);
        assert!(
            text.contains(
                "option 'database.sslrootcert' is required with database.sslmode=verify-full"
            ) && text.contains("database.sslmode=require"),
            "{text}"
        );
        assert!(!text.contains("  "), "a run of spaces in: {text}");

        let mut p = base();
        p.push((DATABASE_SSLMODE, "verify-ca"));
        p.push((DATABASE_SSLROOTCERT, "/nonexistent/ca.pem"));
        let text = errors_of(&p);
        assert!(
            text.contains(
                "option 'database.sslrootcert' names '/nonexistent/ca.pem', which cannot be read"
            ),
            "{text}"
        );

        let dir = tempfile::tempdir().unwrap();
        let key_only = dir.path().join("key.pem");
        std::fs::write(&key_only, "not a certificate\n").unwrap();
        let mut p = base();
        p.push((DATABASE_SSLMODE, "verify-full"));
        let key_only = key_only.display().to_string();
        p.push((DATABASE_SSLROOTCERT, &key_only));
        let text = errors_of(&p);
        assert!(text.contains("holds no PEM certificate"), "{text}");

        let mut p = base();
        p.push((DATABASE_SSLCERT, "/nonexistent/client.pem"));
        let text = errors_of(&p);
        assert!(
            text.contains("option 'database.sslkey' is required with database.sslcert"),
            "{text}"
        );
        let mut p = base();
        p.push((DATABASE_SSLCERT, "/nonexistent/client.pem"));
        let not_a_key = dir.path().join("key.pem").display().to_string();
        p.push((DATABASE_SSLKEY, &not_a_key));
        let text = errors_of(&p);
        assert!(
            text.contains(
                "option 'database.sslcert' names '/nonexistent/client.pem', which cannot be read"
            ) && text.contains("option 'database.sslkey'")
                && text.contains("no unencrypted private key"),
            "{text}"
        );

        let mut p = base();
        p.push((DATABASE_SSLMODE, "verify-everything"));
        let text = errors_of(&p);
        assert!(text.contains("database.sslmode"), "{text}");
    }

    #[test]
    fn tls_failures_blame_the_option_to_change() {
        let c = PostgresCdcConfig::parse(&props(&base())).unwrap();
        for (text, option) in [
            (
                "invalid peer certificate: UnknownIssuer",
                DATABASE_SSLROOTCERT,
            ),
            (
                "invalid peer certificate: BadSignature",
                DATABASE_SSLROOTCERT,
            ),
            (
                "invalid peer certificate: certificate not valid for name \"db\"; certificate \
                 is only valid for IpAddress(127.0.0.1)",
                DATABASE_HOSTNAME,
            ),
            (
                "tls error: server does not support TLS (SSLRequest rejected)",
                DATABASE_SSLMODE,
            ),
            (
                "TLS config error: failed to open CA PEM '/x/ca.pem': No such file",
                DATABASE_SSLROOTCERT,
            ),
            ("TLS handshake failed: connection reset", DATABASE_SSLMODE),
        ] {
            let (blamed, advice) = c.tls_advice(text);
            assert_eq!(blamed, option, "{text}: {advice}");
            assert!(advice.contains(option), "{text}: {advice}");
        }
    }

    #[test]
    fn bad_options_are_named() {
        let mut p = base();
        p.push((SNAPSHOT_MODE, "sometimes"));
        p.push((SLOT_NAME, "My-Slot"));
        p.push((TABLE_INCLUDE_LIST, "public.(orders"));
        let Err(Error::Config(errors)) = PostgresCdcConfig::parse(&props(&p)) else {
            panic!("expected errors")
        };
        let text = errors.to_string();
        assert!(text.contains("snapshot.mode"), "{text}");
        assert!(text.contains("slot.name"), "{text}");
        assert!(text.contains("table.include.list"), "{text}");
    }
}
