//! PostgreSQL column types to Connect schemas as Debezium's PostgreSQL connector maps them,
//! and the decoding of values from PostgreSQL's text output (the format of both pgoutput and
//! the snapshot's simple queries, with the session settings of
//! [`SESSION_OPTIONS`](super::config::SESSION_OPTIONS)).
//!
//! | PostgreSQL | schema |
//! |---|---|
//! | boolean | boolean |
//! | smallint, integer, bigint, oid | int16, int32, int64, int64 |
//! | real, double precision | float32, float64 |
//! | numeric(p,s) | Decimal (scale s) / float64 / string per `decimal.handling.mode`; without a scale `io.debezium.data.VariableScaleDecimal` |
//! | money | Decimal (scale 2) / float64 / string |
//! | text, varchar, char, name, and types not listed | string |
//! | json, jsonb | string `io.debezium.data.Json` |
//! | uuid, xml | string `io.debezium.data.Uuid`, `io.debezium.data.Xml` |
//! | bytea | bytes |
//! | date | int32 `io.debezium.time.Date` (connect: Connect Date) |
//! | time | int64 `io.debezium.time.MicroTime`, int32 `io.debezium.time.Time` for time(0..3) (connect: Connect Time) |
//! | timestamp | int64 `io.debezium.time.MicroTimestamp`, `io.debezium.time.Timestamp` for timestamp(0..3) (connect: Connect Timestamp) |
//! | timestamptz, timetz | string `io.debezium.time.ZonedTimestamp`, `io.debezium.time.ZonedTime` (UTC, ISO 8601) |
//! | interval | int64 `io.debezium.time.MicroDuration` (a month is 30.4375 days) |
//! | enum | string `io.debezium.data.Enum` with parameter `allowed` |
//! | arrays of the above | array |
//! | domains | their base type |

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use sluice_sdk::{Decimal, Schema, Struct, Value};

use super::config::{DecimalHandling, TimePrecision};

/// Debezium's semantic type names.
pub mod names {
    /// `io.debezium.time.Date`.
    pub const DATE: &str = "io.debezium.time.Date";
    /// `io.debezium.time.Time`.
    pub const TIME: &str = "io.debezium.time.Time";
    /// `io.debezium.time.MicroTime`.
    pub const MICRO_TIME: &str = "io.debezium.time.MicroTime";
    /// `io.debezium.time.Timestamp`.
    pub const TIMESTAMP: &str = "io.debezium.time.Timestamp";
    /// `io.debezium.time.MicroTimestamp`.
    pub const MICRO_TIMESTAMP: &str = "io.debezium.time.MicroTimestamp";
    /// `io.debezium.time.ZonedTimestamp`.
    pub const ZONED_TIMESTAMP: &str = "io.debezium.time.ZonedTimestamp";
    /// `io.debezium.time.ZonedTime`.
    pub const ZONED_TIME: &str = "io.debezium.time.ZonedTime";
    /// `io.debezium.time.MicroDuration`.
    pub const MICRO_DURATION: &str = "io.debezium.time.MicroDuration";
    /// `io.debezium.data.Json`.
    pub const JSON: &str = "io.debezium.data.Json";
    /// `io.debezium.data.Uuid`.
    pub const UUID: &str = "io.debezium.data.Uuid";
    /// `io.debezium.data.Xml`.
    pub const XML: &str = "io.debezium.data.Xml";
    /// `io.debezium.data.Enum`.
    pub const ENUM: &str = "io.debezium.data.Enum";
    /// `io.debezium.data.VariableScaleDecimal`.
    pub const VARIABLE_SCALE_DECIMAL: &str = "io.debezium.data.VariableScaleDecimal";
}

/// What the catalog says about a type that is not built in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogType {
    /// An enum with its labels in order.
    Enum(Vec<String>),
    /// A domain over a base type (OID, modifier).
    Domain(u32, i32),
    /// An array of an element type.
    Array(u32),
    /// Anything else: passed as text.
    Other,
}

/// How one column's text is turned into a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoder {
    /// `t` / `f`.
    Bool,
    /// int16.
    Int16,
    /// int32.
    Int32,
    /// int64.
    Int64,
    /// float32.
    Float32,
    /// float64.
    Float64,
    /// Decimal with this fixed scale.
    Decimal(i32),
    /// VariableScaleDecimal struct.
    VariableDecimal,
    /// A number as float64 (decimal.handling.mode=double).
    NumberAsDouble,
    /// A number as its text (decimal.handling.mode=string); money has its symbols dropped.
    NumberAsString,
    /// Text as is.
    Text,
    /// bytea in hex output.
    Bytea,
    /// Days since the epoch.
    Date,
    /// Milliseconds since midnight (int32).
    TimeMillis,
    /// Microseconds since midnight (int64).
    TimeMicros,
    /// Milliseconds since the epoch.
    TimestampMillis,
    /// Microseconds since the epoch.
    TimestampMicros,
    /// timestamptz as ISO 8601 in UTC.
    ZonedTimestamp,
    /// timetz as ISO 8601 in UTC.
    ZonedTime,
    /// interval in microseconds.
    Interval,
    /// money with a fixed scale of 2.
    Money,
    /// An array of elements.
    Array(Box<Decoder>),
}

/// A column's schema (before its optional flag) and decoder.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    /// How values are decoded.
    pub decoder: Decoder,
    /// The schema (required; the caller makes it optional for nullable columns).
    pub schema: Schema,
}

/// Built-in types by OID.
fn builtin(oid: u32) -> Option<&'static str> {
    Some(match oid {
        16 => "bool",
        17 => "bytea",
        18 | 19 | 25 | 1042 | 1043 => "text",
        20 | 26 => "int8",
        21 => "int2",
        23 => "int4",
        114 | 3802 => "json",
        142 => "xml",
        700 => "float4",
        701 => "float8",
        790 => "money",
        1082 => "date",
        1083 => "time",
        1114 => "timestamp",
        1184 => "timestamptz",
        1186 => "interval",
        1266 => "timetz",
        1700 => "numeric",
        2950 => "uuid",
        _ => return None,
    })
}

/// Whether `oid` is a type mapped without the catalog (a built-in scalar or array).
pub fn is_builtin(oid: u32) -> bool {
    builtin(oid).is_some() || builtin_array(oid).is_some()
}

/// Element OIDs of the built-in array types.
fn builtin_array(oid: u32) -> Option<u32> {
    Some(match oid {
        1000 => 16,
        1001 => 17,
        1002 => 18,
        1003 => 19,
        1005 => 21,
        1007 => 23,
        1016 => 20,
        1009 => 25,
        1014 => 1042,
        1015 => 1043,
        1021 => 700,
        1022 => 701,
        1028 => 26,
        791 => 790,
        1182 => 1082,
        1183 => 1083,
        1115 => 1114,
        1185 => 1184,
        1187 => 1186,
        1270 => 1266,
        1231 => 1700,
        2951 => 2950,
        199 => 114,
        3807 => 3802,
        143 => 142,
        _ => return None,
    })
}

/// The precision of a time or timestamp modifier (6 when unset).
fn time_precision(modifier: i32) -> i32 {
    if modifier < 0 {
        6
    } else {
        modifier
    }
}

/// Maps a column type; `lookup` answers for types that are not built in.
pub fn column_type(
    oid: u32,
    modifier: i32,
    decimal: DecimalHandling,
    time: TimePrecision,
    lookup: &dyn Fn(u32) -> CatalogType,
) -> ColumnType {
    let (decoder, schema) = match builtin(oid) {
        Some(name) => scalar(name, modifier, decimal, time),
        None => match builtin_array(oid)
            .map(CatalogType::Array)
            .unwrap_or_else(|| lookup(oid))
        {
            CatalogType::Array(element) => {
                let inner = column_type(element, modifier, decimal, time, lookup);
                (
                    Decoder::Array(Box::new(inner.decoder)),
                    Schema::array(inner.schema.optional()),
                )
            }
            CatalogType::Enum(labels) => (
                Decoder::Text,
                Schema::string()
                    .named(names::ENUM)
                    .with_version(1)
                    .with_parameter("allowed", labels.join(",")),
            ),
            CatalogType::Domain(base, base_modifier) => {
                return column_type(base, base_modifier, decimal, time, lookup)
            }
            CatalogType::Other => (Decoder::Text, Schema::string()),
        },
    };
    ColumnType { decoder, schema }
}

fn scalar(
    name: &str,
    modifier: i32,
    decimal: DecimalHandling,
    time: TimePrecision,
) -> (Decoder, Schema) {
    match name {
        "bool" => (Decoder::Bool, Schema::boolean()),
        "int2" => (Decoder::Int16, Schema::int16()),
        "int4" => (Decoder::Int32, Schema::int32()),
        "int8" => (Decoder::Int64, Schema::int64()),
        "float4" => (Decoder::Float32, Schema::float32()),
        "float8" => (Decoder::Float64, Schema::float64()),
        "numeric" | "money" => match decimal {
            DecimalHandling::Double => (Decoder::NumberAsDouble, Schema::float64()),
            DecimalHandling::String => (Decoder::NumberAsString, Schema::string()),
            DecimalHandling::Precise if name == "money" => (Decoder::Money, Schema::decimal(2)),
            DecimalHandling::Precise if modifier >= 4 => {
                let precision = (modifier - 4) >> 16;
                let scale = (modifier - 4) & 0xffff;
                (
                    Decoder::Decimal(scale),
                    Schema::decimal(scale)
                        .with_parameter("connect.decimal.precision", precision.to_string()),
                )
            }
            DecimalHandling::Precise => (
                Decoder::VariableDecimal,
                Schema::struct_of(vec![
                    sluice_sdk::Field::new("scale", Schema::int32()),
                    sluice_sdk::Field::new("value", Schema::bytes()),
                ])
                .named(names::VARIABLE_SCALE_DECIMAL)
                .with_version(1)
                .with_doc("Variable scaled decimal"),
            ),
        },
        "json" => (
            Decoder::Text,
            Schema::string().named(names::JSON).with_version(1),
        ),
        "xml" => (
            Decoder::Text,
            Schema::string().named(names::XML).with_version(1),
        ),
        "uuid" => (
            Decoder::Text,
            Schema::string().named(names::UUID).with_version(1),
        ),
        "bytea" => (Decoder::Bytea, Schema::bytes()),
        "date" => match time {
            TimePrecision::Connect => (Decoder::Date, Schema::date()),
            _ => (
                Decoder::Date,
                Schema::int32().named(names::DATE).with_version(1),
            ),
        },
        "time" => match time {
            TimePrecision::Connect => (Decoder::TimeMillis, Schema::time()),
            TimePrecision::Adaptive if time_precision(modifier) <= 3 => (
                Decoder::TimeMillis,
                Schema::int32().named(names::TIME).with_version(1),
            ),
            _ => (
                Decoder::TimeMicros,
                Schema::int64().named(names::MICRO_TIME).with_version(1),
            ),
        },
        "timestamp" => match time {
            TimePrecision::Connect => (Decoder::TimestampMillis, Schema::timestamp()),
            _ if time_precision(modifier) <= 3 => (
                Decoder::TimestampMillis,
                Schema::int64().named(names::TIMESTAMP).with_version(1),
            ),
            _ => (
                Decoder::TimestampMicros,
                Schema::int64()
                    .named(names::MICRO_TIMESTAMP)
                    .with_version(1),
            ),
        },
        "timestamptz" => (
            Decoder::ZonedTimestamp,
            Schema::string()
                .named(names::ZONED_TIMESTAMP)
                .with_version(1),
        ),
        "timetz" => (
            Decoder::ZonedTime,
            Schema::string().named(names::ZONED_TIME).with_version(1),
        ),
        "interval" => (
            Decoder::Interval,
            Schema::int64().named(names::MICRO_DURATION).with_version(1),
        ),
        _ => (Decoder::Text, Schema::string()),
    }
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date")
}

/// Splits a trailing ` BC` off a date or timestamp text.
fn era(text: &str) -> (&str, bool) {
    match text.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (text, false),
    }
}

fn parse_date(text: &str) -> Result<NaiveDate, String> {
    let (text, bc) = era(text);
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|e| format!("'{text}' is not a date: {e}"))?;
    if bc {
        // 1 BC is year 0 in the proleptic Gregorian calendar.
        return NaiveDate::from_ymd_opt(1 - date.year(), date.month(), date.day())
            .ok_or_else(|| format!("'{text} BC' is out of range"));
    }
    Ok(date)
}

fn parse_timestamp(text: &str) -> Result<NaiveDateTime, String> {
    let (body, bc) = era(text);
    let (date, time) = body
        .split_once(' ')
        .ok_or_else(|| format!("'{text}' is not a timestamp"))?;
    let date = parse_date(&if bc {
        format!("{date} BC")
    } else {
        date.to_string()
    })?;
    Ok(date.and_time(parse_time(time)?))
}

fn parse_time(text: &str) -> Result<NaiveTime, String> {
    if text == "24:00:00" {
        return Ok(NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).expect("valid time"));
    }
    NaiveTime::parse_from_str(text, "%H:%M:%S%.f")
        .map_err(|e| format!("'{text}' is not a time: {e}"))
}

/// Splits `+05:30`, `-08`, `+05:30:15` off the end of a time; returns the offset in seconds.
fn split_offset(text: &str) -> Result<(&str, i32), String> {
    let at = text
        .rfind(['+', '-'])
        .filter(|&i| i >= 8)
        .ok_or_else(|| format!("'{text}' has no time zone offset"))?;
    let (body, offset) = text.split_at(at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut seconds = 0;
    for (i, part) in offset[1..].split(':').enumerate() {
        let n: i32 = part
            .parse()
            .map_err(|_| format!("'{text}' has a bad time zone offset"))?;
        seconds += n * [3600, 60, 1].get(i).copied().unwrap_or(0);
    }
    Ok((body, sign * seconds))
}

fn micros_of_day(time: NaiveTime) -> i64 {
    i64::from(time.num_seconds_from_midnight()) * 1_000_000 + i64::from(time.nanosecond() / 1000)
}

/// ISO 8601 text of an instant in UTC, with as many fraction digits as needed (as Java's
/// `DateTimeFormatter.ISO_OFFSET_DATE_TIME` prints it).
fn iso_utc(datetime: NaiveDateTime) -> String {
    let base = datetime.format("%Y-%m-%dT%H:%M:%S").to_string();
    format!("{base}{}Z", fraction(datetime.nanosecond()))
}

fn fraction(nanos: u32) -> String {
    if nanos == 0 {
        return String::new();
    }
    let text = format!(".{:09}", nanos);
    text.trim_end_matches('0').to_string()
}

/// Parses PostgreSQL's `postgres` IntervalStyle: `1 year 2 mons 3 days 04:05:06.7`,
/// `-1 days +02:00:00`, `00:00:01`. Months count as 30.4375 days, as Debezium counts them.
fn parse_interval(text: &str) -> Result<i64, String> {
    const DAY: f64 = 86_400_000_000.0;
    let bad = || format!("'{text}' is not an interval");
    let mut micros: f64 = 0.0;
    let mut parts = text.split_whitespace().peekable();
    while let Some(part) = parts.next() {
        if part.contains(':') {
            let (negative, body) = match part.as_bytes()[0] {
                b'-' => (true, &part[1..]),
                b'+' => (false, &part[1..]),
                _ => (false, part),
            };
            let mut fields = body.split(':');
            let h: f64 = fields.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
            let m: f64 = fields.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
            let s: f64 = fields.next().unwrap_or("0").parse().map_err(|_| bad())?;
            let value = (h * 3600.0 + m * 60.0 + s) * 1_000_000.0;
            micros += if negative { -value } else { value };
            continue;
        }
        let n: f64 = part.parse().map_err(|_| bad())?;
        let unit = parts.next().ok_or_else(bad)?;
        micros += n * match unit.trim_end_matches('s') {
            "year" => 12.0 * 30.4375 * DAY,
            "mon" => 30.4375 * DAY,
            "day" => DAY,
            _ => return Err(bad()),
        };
    }
    Ok(micros.round() as i64)
}

fn hex_bytes(text: &str) -> Result<Vec<u8>, String> {
    let hex = text
        .strip_prefix("\\x")
        .ok_or_else(|| format!("bytea '{text}' is not in hex output"))?;
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(hex.get(i..i + 2).unwrap_or("x"), 16)
                .map_err(|_| "bytea has a bad hex digit".to_string())
        })
        .collect()
}

fn money_text(text: &str) -> String {
    let negative = text.starts_with('-') || text.starts_with('(');
    let digits: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    if negative {
        format!("-{digits}")
    } else {
        digits
    }
}

fn float(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "Infinity" => Ok(f64::INFINITY),
        "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => text
            .parse()
            .map_err(|_| format!("'{text}' is not a number")),
    }
}

/// Splits a one-dimensional array literal (`{1,2,NULL,"a b"}`) into its elements.
fn array_elements(text: &str) -> Result<Vec<Option<String>>, String> {
    let body = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| format!("'{text}' is not an array"))?;
    if body.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => item.extend(chars.next()),
                    '"' => break,
                    c => item.push(c),
                }
            }
        }
        while let Some(&c) = chars.peek() {
            if c == ',' {
                break;
            }
            if c == '{' {
                return Err("multi-dimensional arrays are not supported".into());
            }
            item.push(c);
            chars.next();
        }
        out.push(if !quoted && item == "NULL" {
            None
        } else {
            Some(item)
        });
        if chars.next().is_none() {
            break;
        }
    }
    Ok(out)
}

impl Decoder {
    /// Decodes one value from its text output.
    ///
    /// # Errors
    /// Text the type's output function would not produce.
    pub fn decode(&self, text: &str) -> Result<Value, String> {
        Ok(match self {
            Self::Bool => Value::Boolean(text == "t" || text == "true"),
            Self::Int16 => Value::Int16(
                text.parse()
                    .map_err(|_| format!("'{text}' is not an int2"))?,
            ),
            Self::Int32 => Value::Int32(
                text.parse()
                    .map_err(|_| format!("'{text}' is not an int4"))?,
            ),
            Self::Int64 => Value::Int64(
                text.parse()
                    .map_err(|_| format!("'{text}' is not an int8"))?,
            ),
            Self::Float32 => Value::Float32(float(text)? as f32),
            Self::Float64 => Value::Float64(float(text)?),
            Self::Decimal(scale) => match Decimal::parse(text) {
                Some(d) => d.rescale(*scale).into_value(),
                None if text == "NaN" || text.ends_with("Infinity") => Value::Null,
                None => return Err(format!("'{text}' is not a number")),
            },
            Self::VariableDecimal => match Decimal::parse(text) {
                Some(d) => Value::Struct(
                    Struct::new()
                        .with("scale", Value::Int32(d.scale()))
                        .with("value", Value::Bytes(d.unscaled_bytes().to_vec())),
                ),
                None if text == "NaN" || text.ends_with("Infinity") => Value::Null,
                None => return Err(format!("'{text}' is not a number")),
            },
            Self::Money => Decimal::parse(&money_text(text))
                .ok_or_else(|| format!("'{text}' is not money"))?
                .rescale(2)
                .into_value(),
            Self::NumberAsDouble => {
                let t = if text.contains('$') || text.contains(',') {
                    money_text(text)
                } else {
                    text.to_string()
                };
                Value::Float64(float(&t)?)
            }
            Self::NumberAsString => Value::String(if text.contains('$') {
                money_text(text)
            } else {
                text.to_string()
            }),
            Self::Text => Value::String(text.to_string()),
            Self::Bytea => Value::Bytes(hex_bytes(text)?),
            Self::Date => match text {
                "infinity" => Value::Int32(i32::MAX),
                "-infinity" => Value::Int32(i32::MIN),
                _ => Value::Int32(
                    i32::try_from((parse_date(text)? - epoch()).num_days())
                        .map_err(|_| format!("'{text}' is out of range"))?,
                ),
            },
            Self::TimeMillis => Value::Int32((micros_of_day(parse_time(text)?) / 1000) as i32),
            Self::TimeMicros => Value::Int64(micros_of_day(parse_time(text)?)),
            Self::TimestampMillis | Self::TimestampMicros => {
                let micros = match text {
                    "infinity" => i64::MAX,
                    "-infinity" => i64::MIN,
                    _ => parse_timestamp(text)?.and_utc().timestamp_micros(),
                };
                if matches!(self, Self::TimestampMillis) {
                    Value::Int64(micros.div_euclid(1000))
                } else {
                    Value::Int64(micros)
                }
            }
            Self::ZonedTimestamp => match text {
                "infinity" | "-infinity" => Value::String(text.to_string()),
                _ => {
                    let (body, offset) = split_offset(text)?;
                    let local = parse_timestamp(body)?;
                    Value::String(iso_utc(
                        local - chrono::Duration::seconds(i64::from(offset)),
                    ))
                }
            },
            Self::ZonedTime => {
                let (body, offset) = split_offset_time(text)?;
                let local = parse_time(body)?;
                let (utc, _) =
                    local.overflowing_sub_signed(chrono::Duration::seconds(i64::from(offset)));
                Value::String(format!(
                    "{}{}Z",
                    utc.format("%H:%M:%S"),
                    fraction(utc.nanosecond())
                ))
            }
            Self::Interval => Value::Int64(parse_interval(text)?),
            Self::Array(inner) => Value::Array(
                array_elements(text)?
                    .into_iter()
                    .map(|e| match e {
                        None => Ok(Value::Null),
                        Some(t) => inner.decode(&t),
                    })
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
}

/// [`split_offset`] for a time of day (`04:05:06.789+02`).
fn split_offset_time(text: &str) -> Result<(&str, i32), String> {
    let at = text
        .rfind(['+', '-'])
        .ok_or_else(|| format!("'{text}' has no time zone offset"))?;
    let (body, offset) = text.split_at(at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut seconds = 0;
    for (i, part) in offset[1..].split(':').enumerate() {
        let n: i32 = part
            .parse()
            .map_err(|_| format!("'{text}' has a bad time zone offset"))?;
        seconds += n * [3600, 60, 1].get(i).copied().unwrap_or(0);
    }
    Ok((body, sign * seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(oid: u32, modifier: i32) -> ColumnType {
        column_type(
            oid,
            modifier,
            DecimalHandling::Precise,
            TimePrecision::Adaptive,
            &|_| CatalogType::Other,
        )
    }

    #[test]
    fn numeric_with_scale_is_a_connect_decimal() {
        let t = ty(1700, (10 << 16 | 2) + 4);
        assert_eq!(t.schema.name.as_deref(), Some(sluice_sdk::schema::DECIMAL));
        assert_eq!(t.schema.parameters["scale"], "2");
        assert_eq!(t.schema.parameters["connect.decimal.precision"], "10");
        assert_eq!(
            t.decoder.decode("12.5").unwrap(),
            Decimal::parse("12.50").unwrap().into_value()
        );
    }

    #[test]
    fn numeric_without_scale_is_variable_scale() {
        let t = ty(1700, -1);
        assert_eq!(
            t.schema.name.as_deref(),
            Some(names::VARIABLE_SCALE_DECIMAL)
        );
        let v = t.decoder.decode("-1.005").unwrap();
        let s = v.as_struct().unwrap();
        assert_eq!(s.get("scale"), Some(&Value::Int32(3)));
        assert_eq!(s.get("value"), Some(&Value::Bytes(vec![0xfc, 0x13])));
    }

    #[test]
    fn temporal_types_follow_debezium_adaptive_mode() {
        assert_eq!(
            ty(1082, -1).decoder.decode("1970-01-11").unwrap(),
            Value::Int32(10)
        );
        assert_eq!(
            ty(1114, -1)
                .decoder
                .decode("2024-01-02 03:04:05.123456")
                .unwrap(),
            Value::Int64(1_704_164_645_123_456)
        );
        assert_eq!(ty(1114, 3).schema.name.as_deref(), Some(names::TIMESTAMP));
        assert_eq!(
            ty(1114, 3)
                .decoder
                .decode("2024-01-02 03:04:05.123")
                .unwrap(),
            Value::Int64(1_704_164_645_123)
        );
        assert_eq!(
            ty(1083, -1).decoder.decode("01:00:00.5").unwrap(),
            Value::Int64(3_600_500_000)
        );
        assert_eq!(
            ty(1184, -1)
                .decoder
                .decode("2024-01-02 05:04:05.5+02")
                .unwrap(),
            Value::String("2024-01-02T03:04:05.5Z".into())
        );
        assert_eq!(
            ty(1266, -1).decoder.decode("10:00:00-01:30").unwrap(),
            Value::String("11:30:00Z".into())
        );
        assert_eq!(
            ty(1186, -1).decoder.decode("1 day 01:00:00").unwrap(),
            Value::Int64(90_000_000_000)
        );
        assert_eq!(
            ty(1186, -1).decoder.decode("1 mon").unwrap(),
            Value::Int64(2_629_800_000_000)
        );
    }

    #[test]
    fn connect_mode_uses_connect_logical_types() {
        let t = column_type(
            1114,
            -1,
            DecimalHandling::Precise,
            TimePrecision::Connect,
            &|_| CatalogType::Other,
        );
        assert_eq!(t.schema, Schema::timestamp());
        assert_eq!(
            t.decoder.decode("1970-01-01 00:00:01.999").unwrap(),
            Value::Int64(1999)
        );
    }

    #[test]
    fn arrays_enums_and_domains_resolve_through_the_catalog() {
        let lookup = |oid: u32| match oid {
            5000 => CatalogType::Enum(vec!["new".into(), "paid".into()]),
            5001 => CatalogType::Array(5000),
            5002 => CatalogType::Domain(23, -1),
            _ => CatalogType::Other,
        };
        let t = column_type(
            5001,
            -1,
            DecimalHandling::Precise,
            TimePrecision::Adaptive,
            &lookup,
        );
        assert_eq!(
            t.decoder.decode("{new,paid,NULL}").unwrap(),
            Value::Array(vec!["new".into(), "paid".into(), Value::Null])
        );
        let e = column_type(
            5000,
            -1,
            DecimalHandling::Precise,
            TimePrecision::Adaptive,
            &lookup,
        );
        assert_eq!(e.schema.parameters["allowed"], "new,paid");
        let d = column_type(
            5002,
            -1,
            DecimalHandling::Precise,
            TimePrecision::Adaptive,
            &lookup,
        );
        assert_eq!(d.schema, Schema::int32());
        let texts = ty(1009, -1);
        assert_eq!(
            texts.decoder.decode(r#"{"a,b","c\"d",e}"#).unwrap(),
            Value::Array(vec!["a,b".into(), "c\"d".into(), "e".into()])
        );
    }

    #[test]
    fn bytes_money_and_specials_decode() {
        assert_eq!(
            ty(17, -1).decoder.decode("\\x00ff").unwrap(),
            Value::Bytes(vec![0, 255])
        );
        assert_eq!(
            ty(790, -1).decoder.decode("-$1,234.50").unwrap(),
            Decimal::parse("-1234.50").unwrap().into_value()
        );
        assert_eq!(
            ty(701, -1).decoder.decode("Infinity").unwrap(),
            Value::Float64(f64::INFINITY)
        );
        assert!(ty(23, -1).decoder.decode("x").is_err());
    }
}
