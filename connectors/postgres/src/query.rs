//! Table identities, source partitions and offsets in Kafka Connect's JDBC formats, and the
//! SQL each mode runs.
//!
//! The WHERE clauses, with `ts` the (COALESCEd) timestamp expression and `upper` the
//! database's `CURRENT_TIMESTAMP` minus `timestamp.delay.interval.ms`:
//!
//! | mode | WHERE | ORDER BY |
//! |---|---|---|
//! | bulk | (none) | (none) |
//! | incrementing | `id > $last_id` | `id` |
//! | timestamp | `ts < upper AND ts > $last_ts` | `ts` |
//! | timestamp+incrementing | `ts < upper AND ((ts > $last_ts) OR (ts = $last_ts AND id > $last_id))` | `ts, id` |
//!
//! There is no LIMIT: one query runs to its end over as many polls as `batch.max.rows`
//! requires, so a batch boundary never cuts a group of rows sharing a timestamp out of the
//! result. `upper` is read from the database's clock, never the worker's.

use std::fmt;

use sluice_sdk::{Error, Result, SourceOffset, SourcePartition};

use crate::config::Mode;
use crate::types::Decoder;

/// Key of the offset protocol version in a table's source partition.
pub const PROTOCOL_KEY: &str = "protocol";
/// The offset protocol version Kafka Connect's JDBC connector writes today.
pub const PROTOCOL_VERSION: &str = "1";
/// Key of the table in a source partition.
pub const TABLE_KEY: &str = "table";
/// Key (and value) of the source partition of a custom query.
pub const QUERY_KEY: &str = "query";
/// Offset key of the incrementing column's last value.
pub const INCREMENTING_KEY: &str = "incrementing";
/// Offset key of the last timestamp in milliseconds since the epoch.
pub const TIMESTAMP_KEY: &str = "timestamp";
/// Offset key of the nanoseconds within the second of that timestamp.
pub const TIMESTAMP_NANOS_KEY: &str = "timestamp_nanos";

/// A table by schema and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableId {
    /// Schema (namespace).
    pub schema: String,
    /// Table name.
    pub table: String,
}

impl TableId {
    /// `schema.table`.
    pub fn new(schema: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
        }
    }

    /// The quoted SQL name, `"schema"."table"`.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// A double-quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// What a querier reads: a table, or the user's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A table.
    Table(TableId),
    /// A custom SELECT.
    Query(String),
}

impl Source {
    /// The source partition, as Kafka Connect's JDBC connector writes it:
    /// `{"protocol":"1","table":"db.schema.table"}` or `{"query":"query"}`.
    pub fn partition(&self, database: &str) -> SourcePartition {
        let mut p = SourcePartition::new();
        match self {
            Self::Table(t) => {
                p.insert(PROTOCOL_KEY.into(), PROTOCOL_VERSION.into());
                p.insert(TABLE_KEY.into(), format!("{database}.{t}").into());
            }
            Self::Query(_) => {
                p.insert(QUERY_KEY.into(), QUERY_KEY.into());
            }
        }
        p
    }

    /// The FROM item.
    pub fn from_clause(&self) -> String {
        match self {
            Self::Table(t) => t.quoted(),
            Self::Query(q) => format!("({q}) AS \"sluice_query\""),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Table(t) => write!(f, "table {t}"),
            Self::Query(_) => f.write_str("query"),
        }
    }
}

/// How far a source has been read: the last row's timestamp and/or incrementing value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Offset {
    /// Microseconds since the Unix epoch, UTC.
    pub timestamp_micros: Option<i64>,
    /// The incrementing column's value.
    pub incrementing: Option<i64>,
}

impl Offset {
    /// The offset map as Kafka Connect's JDBC connector writes it for `mode`.
    pub fn to_map(self, mode: Mode) -> SourceOffset {
        let mut map = SourceOffset::new();
        if mode.uses_timestamp() {
            if let Some(micros) = self.timestamp_micros {
                map.insert(TIMESTAMP_KEY.into(), micros.div_euclid(1000).into());
                map.insert(
                    TIMESTAMP_NANOS_KEY.into(),
                    (micros.rem_euclid(1_000_000) * 1000).into(),
                );
            }
        }
        if mode.uses_incrementing() {
            if let Some(id) = self.incrementing {
                map.insert(INCREMENTING_KEY.into(), id.into());
            }
        }
        map
    }

    /// Reads an offset map written by this connector or by Kafka Connect's JDBC connector.
    ///
    /// # Errors
    /// [`Error::Fatal`] when a key holds something other than a whole number.
    pub fn from_map(map: &SourceOffset) -> Result<Self> {
        let number = |key: &str| -> Result<Option<i64>> {
            match map.get(key) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => v.as_i64().map(Some).ok_or_else(|| {
                    Error::fatal(format!(
                        "stored offset {} has '{key}' = {v}, which is not a whole number; \
                         reset the connector's offsets",
                        serde_json::Value::Object(map.clone())
                    ))
                }),
            }
        };
        let timestamp_micros = match (number(TIMESTAMP_KEY)?, number(TIMESTAMP_NANOS_KEY)?) {
            (Some(ms), Some(nanos)) => Some(ms.div_euclid(1000) * 1_000_000 + nanos / 1000),
            (Some(ms), None) => Some(ms * 1000),
            _ => None,
        };
        Ok(Self {
            timestamp_micros,
            incrementing: number(INCREMENTING_KEY)?,
        })
    }
}

/// The type family of the timestamp expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampKind {
    /// `timestamp without time zone` (values taken as UTC).
    Naive,
    /// `timestamp with time zone`.
    Zoned,
}

/// The SQL of one run, and which parameters it takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sql {
    /// The statement text.
    pub text: String,
    /// Whether `$1` is the last timestamp.
    pub binds_timestamp: bool,
    /// Whether the last incrementing value is bound (as `$1`, or `$2` after a timestamp).
    pub binds_incrementing: bool,
    /// The timestamp parameter's type.
    pub timestamp_kind: TimestampKind,
}

/// One selected column as the SQL builder needs it.
#[derive(Debug, Clone)]
pub struct SelectColumn {
    /// Column name.
    pub name: String,
    /// `Some("text")` to select it cast.
    pub cast: Option<&'static str>,
    /// Its decoder (to tell timestamp types apart).
    pub decoder: Decoder,
}

/// Builds the statement for `mode` from `offset`.
pub fn build_sql(
    source: &Source,
    mode: Mode,
    columns: &[SelectColumn],
    incrementing: Option<&str>,
    timestamps: &[&SelectColumn],
    offset: Offset,
    delay_ms: u64,
) -> Sql {
    let select: Vec<String> = columns
        .iter()
        .map(|c| match c.cast {
            Some(cast) => format!(
                "{}::{cast} AS {}",
                quote_ident(&c.name),
                quote_ident(&c.name)
            ),
            None => quote_ident(&c.name),
        })
        .collect();
    let mut text = format!("SELECT {} FROM {}", select.join(", "), source.from_clause());
    let kind = if timestamps.iter().any(|c| c.decoder == Decoder::TimestampTz) {
        TimestampKind::Zoned
    } else {
        TimestampKind::Naive
    };
    let ts_parts: Vec<String> = timestamps
        .iter()
        .map(|c| {
            let q = quote_ident(&c.name);
            match (kind, &c.decoder) {
                (TimestampKind::Zoned, Decoder::Timestamp) => format!("({q} AT TIME ZONE 'UTC')"),
                (TimestampKind::Zoned, Decoder::Date) => {
                    format!("({q}::timestamp AT TIME ZONE 'UTC')")
                }
                (TimestampKind::Naive, Decoder::Date) => format!("{q}::timestamp"),
                _ => q,
            }
        })
        .collect();
    let ts = match ts_parts.len() {
        1 => ts_parts[0].clone(),
        _ => format!("COALESCE({})", ts_parts.join(", ")),
    };
    let now = match kind {
        TimestampKind::Zoned => "CURRENT_TIMESTAMP".to_string(),
        TimestampKind::Naive => "(CURRENT_TIMESTAMP AT TIME ZONE 'UTC')".to_string(),
    };
    let upper = if delay_ms > 0 {
        format!("({now} - interval '{delay_ms} milliseconds')")
    } else {
        now
    };
    let inc = incrementing.map(quote_ident).unwrap_or_default();
    let mut sql = Sql {
        text: String::new(),
        binds_timestamp: false,
        binds_incrementing: false,
        timestamp_kind: kind,
    };
    match mode {
        Mode::Bulk => {}
        Mode::Incrementing => {
            if offset.incrementing.is_some() {
                text.push_str(&format!(" WHERE {inc} > $1::int8"));
                sql.binds_incrementing = true;
            } else {
                text.push_str(&format!(" WHERE {inc} IS NOT NULL"));
            }
            text.push_str(&format!(" ORDER BY {inc} ASC"));
        }
        Mode::Timestamp => {
            text.push_str(&format!(" WHERE {ts} < {upper}"));
            if offset.timestamp_micros.is_some() {
                text.push_str(&format!(" AND {ts} > $1"));
                sql.binds_timestamp = true;
            }
            text.push_str(&format!(" ORDER BY {ts} ASC"));
        }
        Mode::TimestampIncrementing => {
            text.push_str(&format!(" WHERE {ts} < {upper}"));
            match (offset.timestamp_micros, offset.incrementing) {
                (Some(_), Some(_)) => {
                    text.push_str(&format!(
                        " AND (({ts} > $1) OR ({ts} = $1 AND {inc} > $2::int8))"
                    ));
                    sql.binds_timestamp = true;
                    sql.binds_incrementing = true;
                }
                (Some(_), None) => {
                    text.push_str(&format!(" AND {ts} > $1"));
                    sql.binds_timestamp = true;
                }
                (None, _) => {}
            }
            text.push_str(&format!(" ORDER BY {ts} ASC, {inc} ASC"));
        }
    }
    sql.text = text;
    sql
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn col(name: &str, decoder: Decoder) -> SelectColumn {
        SelectColumn {
            name: name.into(),
            cast: None,
            decoder,
        }
    }

    #[test]
    fn offsets_use_kafka_connect_keys() {
        let o = Offset {
            timestamp_micros: Some(1_700_000_000_123_456),
            incrementing: Some(42),
        };
        let map = o.to_map(Mode::TimestampIncrementing);
        assert_eq!(
            serde_json::Value::Object(map.clone()),
            json!({"timestamp": 1_700_000_000_123i64, "timestamp_nanos": 123_456_000, "incrementing": 42})
        );
        assert_eq!(Offset::from_map(&map).unwrap(), o);
        assert_eq!(
            serde_json::Value::Object(o.to_map(Mode::Incrementing)),
            json!({"incrementing": 42})
        );
        // Before 1970 the millisecond part floors, as java.sql.Timestamp does.
        let early = Offset {
            timestamp_micros: Some(-1_500),
            incrementing: None,
        };
        let map = early.to_map(Mode::Timestamp);
        assert_eq!(
            serde_json::Value::Object(map.clone()),
            json!({"timestamp": -2, "timestamp_nanos": 998_500_000})
        );
        assert_eq!(Offset::from_map(&map).unwrap(), early);
    }

    #[test]
    fn partitions_match_kafka_connect() {
        let t = Source::Table(TableId::new("public", "orders"));
        assert_eq!(
            serde_json::Value::Object(t.partition("shop")),
            json!({"protocol": "1", "table": "shop.public.orders"})
        );
        assert_eq!(
            serde_json::Value::Object(Source::Query("select 1".into()).partition("shop")),
            json!({"query": "query"})
        );
    }

    #[test]
    fn timestamp_incrementing_where_clause_keeps_ties() {
        let cols = vec![col("id", Decoder::Int8), col("ts", Decoder::TimestampTz)];
        let sql = build_sql(
            &Source::Table(TableId::new("public", "t")),
            Mode::TimestampIncrementing,
            &cols,
            Some("id"),
            &[&cols[1]],
            Offset {
                timestamp_micros: Some(1),
                incrementing: Some(2),
            },
            1500,
        );
        assert_eq!(
            sql.text,
            "SELECT \"id\", \"ts\" FROM \"public\".\"t\" WHERE \"ts\" < (CURRENT_TIMESTAMP - interval '1500 milliseconds') \
             AND ((\"ts\" > $1) OR (\"ts\" = $1 AND \"id\" > $2::int8)) ORDER BY \"ts\" ASC, \"id\" ASC"
        );
        assert!(sql.binds_timestamp && sql.binds_incrementing);
    }

    #[test]
    fn naive_and_mixed_timestamps_are_compared_in_utc() {
        let cols = vec![col("a", Decoder::Timestamp), col("b", Decoder::TimestampTz)];
        let sql = build_sql(
            &Source::Query("SELECT * FROM x WHERE y".into()),
            Mode::Timestamp,
            &cols,
            None,
            &[&cols[0], &cols[1]],
            Offset::default(),
            0,
        );
        assert!(sql.text.contains(
            "FROM (SELECT * FROM x WHERE y) AS \"sluice_query\" WHERE COALESCE((\"a\" AT TIME ZONE 'UTC'), \"b\") < CURRENT_TIMESTAMP ORDER BY"
        ), "{}", sql.text);
        let naive = build_sql(
            &Source::Table(TableId::new("s", "t")),
            Mode::Timestamp,
            &cols[..1],
            None,
            &[&cols[0]],
            Offset::default(),
            0,
        );
        assert!(naive
            .text
            .contains("\"a\" < (CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"));
        assert_eq!(naive.timestamp_kind, TimestampKind::Naive);
    }
}
