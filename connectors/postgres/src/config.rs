//! The connector's options (named as Confluent's JDBC source connector names them), their
//! declaration, and the parsed, cross-checked [`PostgresSourceConfig`].

use std::time::Duration;

use sluice_sdk::config::{ConfigDef, ConfigKey, ConfigType, Importance, Props, Validator};
use sluice_sdk::{ConfigErrors, Error, Result};

use crate::connection::ConnectionSettings;
use crate::query::TableId;

/// `connection.url`: `jdbc:postgresql://...` or `postgres://...`.
pub const CONNECTION_URL: &str = "connection.url";
/// `connection.user`.
pub const CONNECTION_USER: &str = "connection.user";
/// `connection.password`.
pub const CONNECTION_PASSWORD: &str = "connection.password";
/// `connection.attempts`: tries of the connector's first connection (validation tries once).
pub const CONNECTION_ATTEMPTS: &str = "connection.attempts";
/// `connection.backoff.ms`: wait between those tries, and the longest wait between a task's
/// reconnection attempts.
pub const CONNECTION_BACKOFF_MS: &str = "connection.backoff.ms";
/// `mode`.
pub const MODE: &str = "mode";
/// `incrementing.column.name`.
pub const INCREMENTING_COLUMN_NAME: &str = "incrementing.column.name";
/// `timestamp.column.name` (a list, combined with COALESCE).
pub const TIMESTAMP_COLUMN_NAME: &str = "timestamp.column.name";
/// `timestamp.initial`.
pub const TIMESTAMP_INITIAL: &str = "timestamp.initial";
/// `timestamp.delay.interval.ms`.
pub const TIMESTAMP_DELAY_INTERVAL_MS: &str = "timestamp.delay.interval.ms";
/// `validate.non.null`.
pub const VALIDATE_NON_NULL: &str = "validate.non.null";
/// `table.whitelist`.
pub const TABLE_WHITELIST: &str = "table.whitelist";
/// `table.blacklist`.
pub const TABLE_BLACKLIST: &str = "table.blacklist";
/// `table.types`.
pub const TABLE_TYPES: &str = "table.types";
/// `schema.pattern`.
pub const SCHEMA_PATTERN: &str = "schema.pattern";
/// `query`.
pub const QUERY: &str = "query";
/// `topic.prefix`.
pub const TOPIC_PREFIX: &str = "topic.prefix";
/// `poll.interval.ms`.
pub const POLL_INTERVAL_MS: &str = "poll.interval.ms";
/// `batch.max.rows`.
pub const BATCH_MAX_ROWS: &str = "batch.max.rows";
/// `numeric.mapping`.
pub const NUMERIC_MAPPING: &str = "numeric.mapping";
/// `table.poll.interval.ms`.
pub const TABLE_POLL_INTERVAL_MS: &str = "table.poll.interval.ms";
/// `soft.delete.column.name`: a sluice extension (Confluent's JDBC source has no such
/// option). A boolean or timestamp column marking a row as deleted; such rows are sent as
/// tombstones.
pub const SOFT_DELETE_COLUMN_NAME: &str = "soft.delete.column.name";
/// `db.timezone` (only UTC: see the crate docs).
pub const DB_TIMEZONE: &str = "db.timezone";
/// The task-only key listing a task's tables (JSON array of `[schema, table]` pairs), as
/// Confluent's task configuration carries `tables`.
pub const TASK_TABLES: &str = "tables";

const GROUP_DATABASE: &str = "Database";
const GROUP_MODE: &str = "Mode";
const GROUP_CONNECTOR: &str = "Connector";

/// How rows are found on each poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The whole table on every poll.
    Bulk,
    /// Rows whose strictly increasing column is above the last one seen (new rows only).
    Incrementing,
    /// Rows whose timestamp is after the last one seen (new and updated rows).
    Timestamp,
    /// Rows after the last (timestamp, id) pair seen: new and updated rows, exactly once even
    /// when many rows share a timestamp.
    TimestampIncrementing,
}

impl Mode {
    /// The option text.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bulk => "bulk",
            Self::Incrementing => "incrementing",
            Self::Timestamp => "timestamp",
            Self::TimestampIncrementing => "timestamp+incrementing",
        }
    }

    /// Whether the mode reads an incrementing column.
    pub fn uses_incrementing(self) -> bool {
        matches!(self, Self::Incrementing | Self::TimestampIncrementing)
    }

    /// Whether the mode reads timestamp columns.
    pub fn uses_timestamp(self) -> bool {
        matches!(self, Self::Timestamp | Self::TimestampIncrementing)
    }

    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "bulk" => Some(Self::Bulk),
            "incrementing" => Some(Self::Incrementing),
            "timestamp" => Some(Self::Timestamp),
            "timestamp+incrementing" => Some(Self::TimestampIncrementing),
            _ => None,
        }
    }
}

/// How NUMERIC/DECIMAL columns map to Connect types (`numeric.mapping`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericMapping {
    /// Always Connect's Decimal (exact).
    None,
    /// `numeric(p, 0)` with p <= 18 becomes the smallest integer type that holds it.
    PrecisionOnly,
    /// As `precision_only`, and `numeric(p, s)` with p <= 18 and s > 0 becomes float64.
    BestFit,
    /// As `best_fit`, and every `numeric` with a fraction (or no declared scale) becomes
    /// float64.
    BestFitEagerDouble,
}

impl NumericMapping {
    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "none" => Some(Self::None),
            "precision_only" => Some(Self::PrecisionOnly),
            "best_fit" => Some(Self::BestFit),
            "best_fit_eager_double" => Some(Self::BestFitEagerDouble),
            _ => None,
        }
    }
}

/// Which kinds of relations are listed as tables (`table.types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableType {
    /// Ordinary and partitioned tables.
    Table,
    /// Views.
    View,
    /// Materialized views.
    MaterializedView,
    /// Foreign tables.
    ForeignTable,
}

impl TableType {
    /// The `pg_class.relkind` letters of this type.
    pub fn relkinds(self) -> &'static [&'static str] {
        match self {
            Self::Table => &["r", "p"],
            Self::View => &["v"],
            Self::MaterializedView => &["m"],
            Self::ForeignTable => &["f"],
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().replace('_', " ").as_str() {
            "TABLE" | "PARTITIONED TABLE" => Some(Self::Table),
            "VIEW" => Some(Self::View),
            "MATERIALIZED VIEW" => Some(Self::MaterializedView),
            "FOREIGN TABLE" => Some(Self::ForeignTable),
            _ => None,
        }
    }
}

/// Every option of the connector, declared once.
pub fn config_def() -> ConfigDef {
    let ms = |name: &str, default: &str, doc: &str, importance: Importance, group: &str| {
        ConfigKey::new(name, ConfigType::Long, importance, doc)
            .default_value(default)
            .validator(Validator::AtLeast(0.0))
            .group(group)
    };
    ConfigDef::new()
        .define(
            ConfigKey::new(
                CONNECTION_URL,
                ConfigType::String,
                Importance::High,
                "PostgreSQL connection URL: jdbc:postgresql://host:port/database?user=..&password=..&sslmode=.. \
                 or postgres://user:password@host:port/database?sslmode=... sslmode is one of disable, \
                 allow, prefer, require, verify-ca, verify-full (sslrootcert=path names a CA file; \
                 sslcert and sslkey a client certificate and its key). \
                 connect_timeout=SECONDS (jdbc: URLs: loginTimeout, connectTimeout) bounds each \
                 connection attempt, login included; default 10.",
            )
            .validator(Validator::NonEmpty)
            .group(GROUP_DATABASE)
            .display_name("JDBC URL"),
        )
        .define(
            ConfigKey::new(
                CONNECTION_USER,
                ConfigType::String,
                Importance::High,
                "Database user; overrides a user given in connection.url.",
            )
            .optional()
            .group(GROUP_DATABASE),
        )
        .define(
            ConfigKey::new(
                CONNECTION_PASSWORD,
                ConfigType::Password,
                Importance::High,
                "Database password; overrides a password given in connection.url. Use ${env:NAME} to keep it out of files.",
            )
            .optional()
            .group(GROUP_DATABASE),
        )
        .define(
            ConfigKey::new(
                CONNECTION_ATTEMPTS,
                ConfigType::Int,
                Importance::Low,
                "How many times the connector tries to connect when it starts before it fails \
                 (each try bounded by the URL's connect_timeout, default 10 s). The validate \
                 endpoint tries once, so it answers within one connect_timeout.",
            )
            .default_value("3")
            .validator(Validator::AtLeast(1.0))
            .group(GROUP_DATABASE),
        )
        .define(ms(
            CONNECTION_BACKOFF_MS,
            "10000",
            "Wait between the connector's connection attempts; also the longest wait between a \
             task's reconnection attempts after it lost the database (it retries without limit).",
            Importance::Low,
            GROUP_DATABASE,
        ))
        .define(
            ConfigKey::new(
                MODE,
                ConfigType::String,
                Importance::High,
                "How rows are found on each poll: bulk (the whole table every time), incrementing \
                 (new rows, by a strictly increasing column), timestamp (new and updated rows, by \
                 timestamp columns), timestamp+incrementing (both; exact even when rows share a timestamp).",
            )
            .validator(Validator::one_of(&[
                "bulk",
                "incrementing",
                "timestamp",
                "timestamp+incrementing",
            ]))
            .group(GROUP_MODE),
        )
        .define(
            ConfigKey::new(
                INCREMENTING_COLUMN_NAME,
                ConfigType::String,
                Importance::Medium,
                "Strictly increasing integer column for incrementing modes. Empty: the table's \
                 identity or serial column.",
            )
            .default_value("")
            .group(GROUP_MODE),
        )
        .define(
            ConfigKey::new(
                TIMESTAMP_COLUMN_NAME,
                ConfigType::List,
                Importance::Medium,
                "Timestamp column(s) for timestamp modes; several are combined with COALESCE in \
                 the order given.",
            )
            .default_value("")
            .group(GROUP_MODE),
        )
        .define(
            ConfigKey::new(
                TIMESTAMP_INITIAL,
                ConfigType::Long,
                Importance::Low,
                "Start of the first timestamp query, in milliseconds since the epoch (UTC); -1 means \
                 the database's current time. Unset: read from the beginning. Ignored once offsets exist.",
            )
            .optional()
            .validator(Validator::AtLeast(-1.0))
            .group(GROUP_MODE),
        )
        .define(ms(
            TIMESTAMP_DELAY_INTERVAL_MS,
            "0",
            "Only rows whose timestamp is older than the database's current time minus this delay \
             are read, so rows committed late with an earlier timestamp are not skipped.",
            Importance::High,
            GROUP_MODE,
        ))
        .define(
            ConfigKey::new(
                SOFT_DELETE_COLUMN_NAME,
                ConfigType::String,
                Importance::Medium,
                "sluice extension, not a Confluent option. A boolean or timestamp column that \
                 marks a row as deleted (a soft delete): a polled row whose column is true \
                 (boolean) or not NULL (timestamp) is sent as a tombstone (the row's key, a null \
                 value) instead of the row, so sinks such as elasticsearch-sink with \
                 behavior.on.null.values=delete remove it. Needs a primary key, and a mode that \
                 sees updates (timestamp, timestamp+incrementing or bulk). Empty: off.",
            )
            .default_value("")
            .group(GROUP_MODE),
        )
        .define(
            ConfigKey::new(
                VALIDATE_NON_NULL,
                ConfigType::Boolean,
                Importance::Low,
                "Refuse incrementing and timestamp columns that are nullable (rows with NULL there \
                 would never be read).",
            )
            .default_value("true")
            .group(GROUP_MODE),
        )
        .define(
            ConfigKey::new(
                QUERY,
                ConfigType::String,
                Importance::Medium,
                "A SELECT to run instead of reading tables; the connector appends the WHERE clause \
                 of the mode (the query is wrapped as a subquery, so it may have its own WHERE).",
            )
            .default_value("")
            .group(GROUP_MODE),
        )
        .define(
            ConfigKey::new(
                TABLE_WHITELIST,
                ConfigType::List,
                Importance::Medium,
                "Tables to read, as table or schema.table; '*' matches any characters. Empty: every \
                 table. Exact names must exist; patterns also pick up tables created later.",
            )
            .default_value("")
            .group(GROUP_DATABASE),
        )
        .define(
            ConfigKey::new(
                TABLE_BLACKLIST,
                ConfigType::List,
                Importance::Medium,
                "Tables not to read (same form as table.whitelist); cannot be combined with it.",
            )
            .default_value("")
            .group(GROUP_DATABASE),
        )
        .define(
            ConfigKey::new(
                TABLE_TYPES,
                ConfigType::List,
                Importance::Low,
                "Kinds of relations to read: TABLE, VIEW, MATERIALIZED VIEW, FOREIGN TABLE.",
            )
            .default_value("TABLE")
            .validator(Validator::custom(|value| {
                let text = value.to_string();
                match text.split(',').find(|t| TableType::parse(t.trim()).is_none()) {
                    Some(bad) => Err(format!(
                        "must list TABLE, VIEW, MATERIALIZED VIEW or FOREIGN TABLE (got '{bad}')"
                    )),
                    None => Ok(()),
                }
            }))
            .group(GROUP_DATABASE),
        )
        .define(
            ConfigKey::new(
                SCHEMA_PATTERN,
                ConfigType::String,
                Importance::Medium,
                "SQL LIKE pattern of the schemas whose tables are read. Unset: every schema but \
                 the system ones.",
            )
            .optional()
            .group(GROUP_DATABASE),
        )
        .define(
            ConfigKey::new(
                TOPIC_PREFIX,
                ConfigType::String,
                Importance::High,
                "Prefix of topic names: each table goes to <prefix><table>; with query, the topic \
                 is the prefix itself.",
            )
            .group(GROUP_CONNECTOR),
        )
        .define(
            ms(
                POLL_INTERVAL_MS,
                "5000",
                "How often each table is queried for new data.",
                Importance::High,
                GROUP_CONNECTOR,
            )
            .validator(Validator::AtLeast(1.0)),
        )
        .define(
            ConfigKey::new(
                BATCH_MAX_ROWS,
                ConfigType::Int,
                Importance::Low,
                "Most rows handed over in one batch; larger results are read over several batches \
                 from the same query.",
            )
            .default_value("100")
            .validator(Validator::AtLeast(1.0))
            .group(GROUP_CONNECTOR),
        )
        .define(
            ConfigKey::new(
                NUMERIC_MAPPING,
                ConfigType::String,
                Importance::Low,
                "How NUMERIC columns map: none (Decimal), precision_only (integers when the scale \
                 is 0), best_fit (also float64 for small precision with a fraction), \
                 best_fit_eager_double (float64 whenever there is a fraction).",
            )
            .default_value("none")
            .validator(Validator::one_of(&[
                "none",
                "precision_only",
                "best_fit",
                "best_fit_eager_double",
            ]))
            .group(GROUP_CONNECTOR),
        )
        .define(
            ms(
                TABLE_POLL_INTERVAL_MS,
                "60000",
                "How often the connector looks for new or dropped tables and reassigns tasks.",
                Importance::Low,
                GROUP_CONNECTOR,
            )
            .validator(Validator::AtLeast(1.0)),
        )
        .define(
            ConfigKey::new(
                DB_TIMEZONE,
                ConfigType::String,
                Importance::Medium,
                "Zone of 'timestamp without time zone' values. Only UTC is supported: such values \
                 are read as UTC whatever the session's TimeZone.",
            )
            .default_value("UTC")
            .validator(Validator::one_of(&["UTC", "Etc/UTC", "Z", "GMT"]))
            .group(GROUP_CONNECTOR),
        )
}

/// One entry of `table.whitelist` / `table.blacklist`: `table` or `schema.table`, with `*`
/// matching any characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TablePattern {
    /// The entry as written.
    pub text: String,
    schema: Option<String>,
    table: String,
}

impl TablePattern {
    /// Parses one list entry.
    pub fn parse(text: &str) -> Self {
        let unquote = |s: &str| s.trim().trim_matches('"').to_string();
        let (schema, table) = match split_qualified(text) {
            Some((s, t)) => (Some(unquote(s)), unquote(t)),
            None => (None, unquote(text)),
        };
        Self {
            text: text.trim().to_string(),
            schema,
            table,
        }
    }

    /// Whether the entry contains a wildcard (and so may match tables created later).
    pub fn is_pattern(&self) -> bool {
        self.text.contains('*')
    }

    /// Whether `table` matches this entry.
    pub fn matches(&self, table: &TableId) -> bool {
        let schema_ok = self
            .schema
            .as_deref()
            .is_none_or(|s| glob_match(s, &table.schema));
        schema_ok && glob_match(&self.table, &table.table)
    }
}

/// Splits `schema.table` at the first dot outside double quotes.
fn split_qualified(text: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The connector's configuration, parsed and cross-checked.
#[derive(Debug, Clone)]
pub struct PostgresSourceConfig {
    /// Where and how to connect.
    pub connection: ConnectionSettings,
    /// `connection.attempts`.
    pub connection_attempts: u32,
    /// `connection.backoff.ms`.
    pub connection_backoff: Duration,
    /// `mode`.
    pub mode: Mode,
    /// `incrementing.column.name` (empty: find the identity/serial column).
    pub incrementing_column: Option<String>,
    /// `timestamp.column.name`.
    pub timestamp_columns: Vec<String>,
    /// `timestamp.initial` in milliseconds (`-1`: now).
    pub timestamp_initial: Option<i64>,
    /// `timestamp.delay.interval.ms`.
    pub timestamp_delay: Duration,
    /// `validate.non.null`.
    pub validate_non_null: bool,
    /// `soft.delete.column.name` (`None`: rows are never sent as tombstones).
    pub soft_delete_column: Option<String>,
    /// `query` (`None` when reading tables).
    pub query: Option<String>,
    /// `table.whitelist`.
    pub whitelist: Vec<TablePattern>,
    /// `table.blacklist`.
    pub blacklist: Vec<TablePattern>,
    /// `table.types`.
    pub table_types: Vec<TableType>,
    /// `schema.pattern`.
    pub schema_pattern: Option<String>,
    /// `topic.prefix`.
    pub topic_prefix: String,
    /// `poll.interval.ms`.
    pub poll_interval: Duration,
    /// `batch.max.rows`.
    pub batch_max_rows: usize,
    /// `numeric.mapping`.
    pub numeric_mapping: NumericMapping,
    /// `table.poll.interval.ms`.
    pub table_poll_interval: Duration,
}

impl PostgresSourceConfig {
    /// Parses `props`, reporting every bad option at once.
    ///
    /// # Errors
    /// [`Error::Config`] naming each wrong option and what to do.
    pub fn parse(props: &Props) -> Result<Self> {
        let (config, mut errors) = config_def().parse_lenient(props);
        let millis = |name: &str| {
            Duration::from_millis(config.get_i64(name).unwrap_or(0).try_into().unwrap_or(0))
        };
        let connection = match config.get_str(CONNECTION_URL) {
            Some(url) if !url.is_empty() => {
                match ConnectionSettings::parse(
                    url,
                    config.get_str(CONNECTION_USER),
                    config.get_password(CONNECTION_PASSWORD).map(|p| p.value()),
                ) {
                    Ok(c) => Some(c),
                    Err(message) => {
                        errors.push(CONNECTION_URL, message);
                        None
                    }
                }
            }
            _ => None,
        };
        let mode = config.get_str(MODE).and_then(Mode::parse);
        let incrementing_column = config
            .get_str(INCREMENTING_COLUMN_NAME)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let timestamp_columns = config.get_list(TIMESTAMP_COLUMN_NAME);
        let soft_delete_column = config
            .get_str(SOFT_DELETE_COLUMN_NAME)
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let query = config
            .get_str(QUERY)
            .filter(|q| !q.trim().is_empty())
            .map(|q| q.trim().trim_end_matches(';').to_string());
        let whitelist: Vec<TablePattern> = config
            .get_list(TABLE_WHITELIST)
            .iter()
            .map(|t| TablePattern::parse(t))
            .collect();
        let blacklist: Vec<TablePattern> = config
            .get_list(TABLE_BLACKLIST)
            .iter()
            .map(|t| TablePattern::parse(t))
            .collect();
        if !whitelist.is_empty() && !blacklist.is_empty() {
            errors.push(
                TABLE_BLACKLIST,
                "cannot be combined with table.whitelist; keep only one of the two",
            );
        }
        if query.is_some() && (!whitelist.is_empty() || !blacklist.is_empty()) {
            errors.push(
                QUERY,
                "cannot be combined with table.whitelist or table.blacklist: a query replaces \
                 the table list; remove one of them",
            );
        }
        if let Some(mode) = mode {
            if mode.uses_timestamp() && timestamp_columns.is_empty() {
                errors.push(
                    TIMESTAMP_COLUMN_NAME,
                    format!(
                        "is required with mode={}: name the column(s) holding the row's last \
                         change time",
                        mode.name()
                    ),
                );
            }
            if mode == Mode::TimestampIncrementing
                && query.is_some()
                && incrementing_column.is_none()
            {
                errors.push(
                    INCREMENTING_COLUMN_NAME,
                    "is required with mode=timestamp+incrementing and a query: name the query's \
                     strictly increasing id column",
                );
            }
            if mode == Mode::Incrementing && soft_delete_column.is_some() {
                errors.push(
                    SOFT_DELETE_COLUMN_NAME,
                    "cannot be used with mode=incrementing: a row is read once, when it is \
                     inserted, so marking it deleted later is never seen; use \
                     mode=timestamp+incrementing with a timestamp column the deletion updates",
                );
            }
            if mode == Mode::Incrementing && query.is_some() && incrementing_column.is_none() {
                errors.push(
                    INCREMENTING_COLUMN_NAME,
                    "is required with mode=incrementing and a query: name the query's strictly \
                     increasing id column",
                );
            }
        }
        errors.0.dedup();
        if !errors.is_empty() {
            return Err(Error::Config(errors));
        }
        let (Some(connection), Some(mode)) = (connection, mode) else {
            return Err(Error::Config(ConfigErrors::default()));
        };
        Ok(Self {
            connection,
            connection_attempts: config
                .get_i64(CONNECTION_ATTEMPTS)
                .unwrap_or(3)
                .try_into()
                .unwrap_or(3),
            connection_backoff: millis(CONNECTION_BACKOFF_MS),
            mode,
            incrementing_column,
            timestamp_columns,
            timestamp_initial: config.get_i64(TIMESTAMP_INITIAL),
            timestamp_delay: millis(TIMESTAMP_DELAY_INTERVAL_MS),
            validate_non_null: config.get_bool(VALIDATE_NON_NULL).unwrap_or(true),
            soft_delete_column,
            query,
            whitelist,
            blacklist,
            table_types: config
                .get_list(TABLE_TYPES)
                .iter()
                .filter_map(|t| TableType::parse(t))
                .collect(),
            schema_pattern: config
                .get_str(SCHEMA_PATTERN)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
            topic_prefix: config.get_str(TOPIC_PREFIX).unwrap_or_default().to_string(),
            poll_interval: millis(POLL_INTERVAL_MS),
            batch_max_rows: config
                .get_i64(BATCH_MAX_ROWS)
                .unwrap_or(100)
                .try_into()
                .unwrap_or(100),
            numeric_mapping: config
                .get_str(NUMERIC_MAPPING)
                .and_then(NumericMapping::parse)
                .unwrap_or(NumericMapping::None),
            table_poll_interval: millis(TABLE_POLL_INTERVAL_MS),
        })
    }

    /// Whether `table` is selected by the white/black lists.
    pub fn selects(&self, table: &TableId) -> bool {
        if !self.whitelist.is_empty() {
            return self.whitelist.iter().any(|p| p.matches(table));
        }
        !self.blacklist.iter().any(|p| p.matches(table))
    }
}

/// Encodes a task's tables for its configuration.
pub fn encode_task_tables(tables: &[TableId]) -> String {
    serde_json::Value::Array(
        tables
            .iter()
            .map(|t| serde_json::json!([t.schema, t.table]))
            .collect(),
    )
    .to_string()
}

/// Decodes the tables of a task configuration.
///
/// # Errors
/// [`Error::Fatal`] when the key is malformed (it is written by the connector, not a user).
pub fn decode_task_tables(text: &str) -> Result<Vec<TableId>> {
    let bad = || Error::fatal(format!("task option '{TASK_TABLES}' is malformed: {text}"));
    let value: serde_json::Value = serde_json::from_str(text).map_err(|_| bad())?;
    value
        .as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|pair| match pair.as_array().map(Vec::as_slice) {
            Some([serde_json::Value::String(s), serde_json::Value::String(t)]) => {
                Ok(TableId::new(s.clone(), t.clone()))
            }
            _ => Err(bad()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use sluice_sdk::config::props;

    fn base() -> Vec<(&'static str, &'static str)> {
        vec![
            (
                CONNECTION_URL,
                "jdbc:postgresql://db:5432/shop?user=u&password=p",
            ),
            (TOPIC_PREFIX, "pg-"),
            (MODE, "incrementing"),
        ]
    }

    #[test]
    fn defaults_follow_confluent() {
        let c = PostgresSourceConfig::parse(&props(&base())).unwrap();
        assert_eq!(c.mode, Mode::Incrementing);
        assert_eq!(c.poll_interval, Duration::from_millis(5000));
        assert_eq!(c.batch_max_rows, 100);
        assert_eq!(c.table_poll_interval, Duration::from_millis(60000));
        assert_eq!(c.numeric_mapping, NumericMapping::None);
        assert!(c.validate_non_null);
        assert_eq!(c.table_types, vec![TableType::Table]);
        assert_eq!(c.connection.database, "shop");
        assert_eq!(c.connection_attempts, 3);
        assert_eq!(c.connection_backoff, Duration::from_millis(10_000));
        assert_eq!(
            c.connection.connect_timeout,
            crate::connection::DEFAULT_CONNECT_TIMEOUT
        );
    }

    #[test]
    fn bad_mode_names_option_and_choices() {
        let mut p = base();
        p[2] = (MODE, "incremental");
        let err = PostgresSourceConfig::parse(&props(&p))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("option 'mode' must be one of bulk, incrementing, timestamp, timestamp+incrementing (got 'incremental')"),
            "{err}"
        );
    }

    #[test]
    fn cross_option_conflicts_are_named() {
        let mut p = base();
        p.push((TABLE_WHITELIST, "a"));
        p.push((TABLE_BLACKLIST, "b"));
        p.push((QUERY, "select 1"));
        p[2] = (MODE, "timestamp");
        let err = PostgresSourceConfig::parse(&props(&p))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("option 'table.blacklist' cannot be combined"),
            "{err}"
        );
        assert!(err.contains("option 'query' cannot be combined"), "{err}");
        assert!(
            err.contains("option 'timestamp.column.name' is required"),
            "{err}"
        );
    }

    #[test]
    fn soft_delete_column_is_off_by_default_and_refused_with_incrementing() {
        assert_eq!(
            PostgresSourceConfig::parse(&props(&base()))
                .unwrap()
                .soft_delete_column,
            None
        );
        let mut p = base();
        p.push((SOFT_DELETE_COLUMN_NAME, " deleted_at "));
        let err = PostgresSourceConfig::parse(&props(&p))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("option 'soft.delete.column.name' cannot be used with mode=incrementing"),
            "{err}"
        );
        p[2] = (MODE, "timestamp+incrementing");
        p.push((TIMESTAMP_COLUMN_NAME, "updated_at"));
        let c = PostgresSourceConfig::parse(&props(&p)).unwrap();
        assert_eq!(c.soft_delete_column.as_deref(), Some("deleted_at"));
    }

    #[test]
    fn patterns_match_plain_and_qualified_names() {
        let t = TableId::new("sales", "orders_2024");
        assert!(TablePattern::parse("orders_2024").matches(&t));
        assert!(TablePattern::parse("sales.orders_*").matches(&t));
        assert!(TablePattern::parse("*.orders*").matches(&t));
        assert!(!TablePattern::parse("public.orders_2024").matches(&t));
        assert!(!TablePattern::parse("orders").matches(&t));
        assert!(TablePattern::parse("\"sales\".\"orders_2024\"").matches(&t));
        assert!(TablePattern::parse("sales.*").is_pattern());
    }

    #[test]
    fn task_tables_round_trip() {
        let tables = vec![TableId::new("a.b", "c,d"), TableId::new("public", "t")];
        assert_eq!(
            decode_task_tables(&encode_task_tables(&tables)).unwrap(),
            tables
        );
        assert!(decode_task_tables("nope").is_err());
    }
}
