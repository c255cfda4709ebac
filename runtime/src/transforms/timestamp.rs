//! `TimestampConverter`, `TimestampRouter`, and Java's `SimpleDateFormat` patterns in chrono.
//!
//! Kafka's options take Java date patterns (`yyyy-MM-dd'T'HH:mm:ss.SSSZ`). They are translated
//! once, when the connector is configured, into chrono format items; a letter chrono cannot
//! honour exactly is a configuration error naming the option. Times are formatted and parsed in
//! UTC, as Kafka's transforms do. Supported letters: `y` (`yy` two-digit), `M`/`L` (`MMM` short
//! and `MMMM` long English names), `d`, `D`, `E`, `u`, `a`, `H`, `h`, `m`, `s`, `SSS`
//! (milliseconds), `Z`, `X`/`XX`/`XXX`, `z`; `'quoted text'` and `''`. Not supported: `G`, `Y`
//! (week year), `w`, `W`, `F`, `k`, `K`, and `S` other than `SSS`.

use chrono::format::{Fixed, Item, Numeric, Pad, Parsed};
use chrono::{DateTime, Utc};
use sluice_sdk::{
    Config, ConfigDef, ConfigErrors, ConfigKey, ConfigType, Field, Importance, LogicalType, Schema,
    SchemaType, Struct, Validator, Value,
};

use super::{
    field_value, map_get, replace_null_with_default_key, SchemaCache, Side, Transform,
    TransformPlugin, TransformRecord,
};

const MILLIS_PER_DAY: i64 = 86_400_000;

pub(super) fn plugins() -> Vec<TransformPlugin> {
    let mut out = Vec::new();
    for side in Side::BOTH {
        out.push(super::kafka_transform(
            &format!("TimestampConverter{}", side.suffix()),
            "Converts timestamps between unix epoch numbers, strings and Connect's Date, Time and Timestamp.",
            ConfigDef::new()
                .define(ConfigKey::new("target.type", ConfigType::String, Importance::High, "The desired timestamp representation: string, unix, Date, Time, or Timestamp.")
                    .validator(Validator::one_of(&["string", "unix", "Date", "Time", "Timestamp"])))
                .define(ConfigKey::new("field", ConfigType::String, Importance::High, "The field containing the timestamp, or empty if the entire value is a timestamp.").default_value(""))
                .define(ConfigKey::new("format", ConfigType::String, Importance::Medium, "A SimpleDateFormat-compatible format for the timestamp. Used to generate the output when type=string or used to parse the input if the input is a string.").default_value(""))
                .define(ConfigKey::new("unix.precision", ConfigType::String, Importance::Low, "The desired Unix precision for the timestamp: seconds, milliseconds, microseconds, or nanoseconds. Used to generate the output when type=unix or used to parse the input if the input is a Long.")
                    .default_value("milliseconds")
                    .validator(Validator::one_of(&["nanoseconds", "microseconds", "milliseconds", "seconds"])))
                .define(replace_null_with_default_key()),
            move |c| TimestampConverter::new(side, c).map(|t| Box::new(t) as Box<dyn Transform>),
        ));
    }
    out.push(super::kafka_transform(
        "TimestampRouter",
        "Renames the topic from the topic and the record timestamp (e.g. orders-20240131).",
        ConfigDef::new()
            .define(ConfigKey::new("topic.format", ConfigType::String, Importance::High, "Format string which can contain ${topic} and ${timestamp} as placeholders for the topic and timestamp, respectively.").default_value("${topic}-${timestamp}"))
            .define(ConfigKey::new("timestamp.format", ConfigType::String, Importance::High, "Format string for the timestamp that is compatible with java.text.SimpleDateFormat.").default_value("yyyyMMdd")),
        |c| {
            let format = JavaDateFormat::option(c, "timestamp.format")?;
            Ok(Box::new(TimestampRouter {
                topic_format: c.get_str("topic.format").unwrap_or_default().to_string(),
                format,
            }))
        },
    ));
    out
}

/// A Java `SimpleDateFormat` pattern translated to chrono items (UTC).
#[derive(Debug, Clone)]
pub(super) struct JavaDateFormat {
    pattern: String,
    items: Vec<Item<'static>>,
}

impl JavaDateFormat {
    /// Translates `pattern`.
    ///
    /// # Errors
    /// The unsupported or illegal letter, phrased to follow "option 'x' ".
    pub(super) fn new(pattern: &str) -> Result<Self, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut items = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    literal.push('\'');
                    i += 2;
                    continue;
                }
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!("has an unclosed quote in date format '{pattern}'"))
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            literal.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&other) => {
                            literal.push(other);
                            i += 1;
                        }
                    }
                }
                continue;
            }
            if !c.is_ascii_alphabetic() {
                literal.push(c);
                i += 1;
                continue;
            }
            let n = chars[i..].iter().take_while(|x| **x == c).count();
            if !literal.is_empty() {
                items.push(Item::OwnedLiteral(
                    std::mem::take(&mut literal).into_boxed_str(),
                ));
            }
            items.push(letter(c, n).map_err(|why| {
                format!("is not a date format sluice supports ('{pattern}'): {why}")
            })?);
            i += n;
        }
        if !literal.is_empty() {
            items.push(Item::OwnedLiteral(literal.into_boxed_str()));
        }
        Ok(Self {
            pattern: pattern.to_string(),
            items,
        })
    }

    /// The format in option `name` of `c`, required.
    pub(super) fn option(c: &Config, name: &str) -> Result<Self, ConfigErrors> {
        Self::new(c.get_str(name).unwrap_or_default()).map_err(|e| {
            let mut errors = ConfigErrors::default();
            errors.push(name, e);
            errors
        })
    }

    /// `ms` since the epoch, formatted in UTC.
    pub(super) fn format(&self, ms: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .map(|t| t.format_with_items(self.items.iter()).to_string())
            .unwrap_or_default()
    }

    /// Parses `text` as Java does: fields the pattern lacks default to 1970-01-01 00:00 UTC and
    /// text after the pattern is ignored.
    pub(super) fn parse_millis(&self, text: &str) -> Result<i64, String> {
        let fail = || {
            format!(
                "Could not parse timestamp: value ({text}) does not match pattern ({})",
                self.pattern
            )
        };
        let mut p = Parsed::new();
        chrono::format::parse_and_remainder(&mut p, text, self.items.iter()).map_err(|_| fail())?;
        let defaults = (|| -> chrono::format::ParseResult<()> {
            if p.year().is_none() && p.year_mod_100().is_none() && p.isoyear().is_none() {
                p.set_year(1970)?;
            }
            if p.ordinal().is_none() {
                if p.month().is_none() {
                    p.set_month(1)?;
                }
                if p.day().is_none() {
                    p.set_day(1)?;
                }
            }
            if p.hour_mod_12().is_none() {
                p.set_hour(0)?;
            } else if p.hour_div_12().is_none() {
                p.set_ampm(false)?;
            }
            if p.minute().is_none() {
                p.set_minute(0)?;
            }
            if p.second().is_none() {
                p.set_second(0)?;
            }
            if p.offset().is_none() {
                p.set_offset(0)?;
            }
            Ok(())
        })();
        defaults.map_err(|_| fail())?;
        p.to_datetime()
            .map(|t| t.timestamp_millis())
            .map_err(|_| fail())
    }
}

fn letter(c: char, n: usize) -> Result<Item<'static>, String> {
    let pad = |n: usize| if n == 1 { Pad::None } else { Pad::Zero };
    Ok(match c {
        'y' if n == 2 => Item::Numeric(Numeric::YearMod100, Pad::Zero),
        'y' => Item::Numeric(Numeric::Year, if n >= 4 { Pad::Zero } else { Pad::None }),
        'M' | 'L' => match n {
            1 | 2 => Item::Numeric(Numeric::Month, pad(n)),
            3 => Item::Fixed(Fixed::ShortMonthName),
            _ => Item::Fixed(Fixed::LongMonthName),
        },
        'd' => Item::Numeric(Numeric::Day, pad(n)),
        'D' => Item::Numeric(Numeric::Ordinal, pad(n)),
        'E' if n <= 3 => Item::Fixed(Fixed::ShortWeekdayName),
        'E' => Item::Fixed(Fixed::LongWeekdayName),
        'u' => Item::Numeric(Numeric::WeekdayFromMon, Pad::None),
        'a' => Item::Fixed(Fixed::UpperAmPm),
        'H' => Item::Numeric(Numeric::Hour, pad(n)),
        'h' => Item::Numeric(Numeric::Hour12, pad(n)),
        'm' => Item::Numeric(Numeric::Minute, pad(n)),
        's' => Item::Numeric(Numeric::Second, pad(n)),
        'S' if n == 3 => millis_item(),
        'S' => return Err(format!("'{}' is not supported: Java reads S as a count of milliseconds, so only SSS (three digits) maps exactly; use SSS", "S".repeat(n))),
        'Z' => Item::Fixed(Fixed::TimezoneOffset),
        'X' if n <= 2 => Item::Fixed(Fixed::TimezoneOffsetZ),
        'X' if n == 3 => Item::Fixed(Fixed::TimezoneOffsetColonZ),
        'z' => Item::Fixed(Fixed::TimezoneName),
        'Y' => return Err("pattern letter 'Y' (week year) is not supported; use 'y' for the calendar year".into()),
        'G' | 'w' | 'W' | 'F' | 'k' | 'K' | 'X' => {
            return Err(format!("pattern letter '{c}' is not supported; supported letters: y M L d D E u a H h m s SSS Z X XX XXX z"))
        }
        other => return Err(format!("'{other}' is not a pattern letter; quote literal text, e.g. 'T'")),
    })
}

/// Three digits of milliseconds, no dot (chrono's `%3f`, whose item is not public).
fn millis_item() -> Item<'static> {
    chrono::format::StrftimeItems::new("%3f")
        .next()
        .expect("%3f is one item")
}

/// The ISO 8601 text Kafka's `Values` gives a Date, Time or Timestamp.
pub(super) fn iso_text(logical: LogicalType, v: &Value) -> Option<String> {
    let (ms, pattern) = match (logical, v) {
        (LogicalType::Date, Value::Int32(days)) => (i64::from(*days) * MILLIS_PER_DAY, "%Y-%m-%d"),
        (LogicalType::Time, Value::Int32(ms)) => (i64::from(*ms), "%H:%M:%S%.3fZ"),
        (LogicalType::Timestamp, Value::Int64(ms)) => (*ms, "%Y-%m-%dT%H:%M:%S%.3fZ"),
        _ => return None,
    };
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.format(pattern).to_string())
}

/// Java's `Values.dateFormatFor(date).format(date)` (as Cast prints a date): a time when
/// before the first day ends, a date at midnight, a timestamp otherwise.
pub(super) fn date_value_text(ms: i64) -> String {
    let logical = if ms < MILLIS_PER_DAY {
        LogicalType::Time
    } else if ms % MILLIS_PER_DAY == 0 {
        LogicalType::Date
    } else {
        LogicalType::Timestamp
    };
    let v = match logical {
        LogicalType::Time => Value::Int32(ms.rem_euclid(MILLIS_PER_DAY) as i32),
        LogicalType::Date => Value::Int32((ms / MILLIS_PER_DAY) as i32),
        _ => Value::Int64(ms),
    };
    iso_text(logical, &v).unwrap_or_default()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum TimestampType {
    Unix,
    Date,
    Time,
    Timestamp,
    Text,
}

impl TimestampType {
    fn of_schema(schema: &Schema) -> Result<Self, String> {
        Ok(match (schema.logical(), &schema.ty) {
            (Some(LogicalType::Timestamp), _) => Self::Timestamp,
            (Some(LogicalType::Date), _) => Self::Date,
            (Some(LogicalType::Time), _) => Self::Time,
            (_, SchemaType::String) => Self::Text,
            (_, SchemaType::Int64) => Self::Unix,
            (_, ty) => return Err(format!("TimestampConverter: a {} schema is not a timestamp type (Timestamp, Date, Time, string or int64)", ty.name())),
        })
    }

    fn of_value(v: &Value) -> Result<Self, String> {
        match v {
            Value::String(_) => Ok(Self::Text),
            v if v.as_i64().is_some() => Ok(Self::Unix),
            other => Err(format!(
                "TimestampConverter does not support {} values as timestamps",
                other.type_name()
            )),
        }
    }

    fn schema(self, optional: bool) -> Schema {
        let s = match self {
            Self::Unix => Schema::int64(),
            Self::Date => Schema::date(),
            Self::Time => Schema::time(),
            Self::Timestamp => Schema::timestamp(),
            Self::Text => Schema::string(),
        };
        if optional {
            s.optional()
        } else {
            s
        }
    }
}

/// Kafka Connect's `TimestampConverter`.
#[derive(Debug)]
struct TimestampConverter {
    side: Side,
    field: String,
    target: TimestampType,
    format: Option<JavaDateFormat>,
    /// Units of a unix timestamp per millisecond, as (multiply, divide).
    precision: (i64, i64),
    replace_null_with_default: bool,
    cache: SchemaCache,
}

impl TimestampConverter {
    fn new(side: Side, c: &Config) -> Result<Self, ConfigErrors> {
        let target = match c
            .get_str("target.type")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "unix" => TimestampType::Unix,
            "date" => TimestampType::Date,
            "time" => TimestampType::Time,
            "timestamp" => TimestampType::Timestamp,
            _ => TimestampType::Text,
        };
        let pattern = c.get_str("format").unwrap_or_default();
        let format = if pattern.is_empty() {
            if target == TimestampType::Text {
                let mut e = ConfigErrors::default();
                e.push("format", "is required when target.type is string: give a SimpleDateFormat pattern such as yyyy-MM-dd'T'HH:mm:ss.SSSZ");
                return Err(e);
            }
            None
        } else {
            Some(JavaDateFormat::option(c, "format")?)
        };
        let precision = match c.get_str("unix.precision").unwrap_or_default() {
            "seconds" => (1, 1000),
            "microseconds" => (1000, 1),
            "nanoseconds" => (1_000_000, 1),
            _ => (1, 1),
        };
        Ok(Self {
            side,
            field: c.get_str("field").unwrap_or_default().to_string(),
            target,
            format,
            precision,
            replace_null_with_default: c.get_bool("replace.null.with.default").unwrap_or(true),
            cache: SchemaCache::default(),
        })
    }

    fn millis(&self, from: TimestampType, v: &Value) -> Result<i64, String> {
        let wrong = || {
            format!(
                "TimestampConverter: a {} value is not a {from:?} timestamp",
                v.type_name()
            )
        };
        Ok(match from {
            TimestampType::Unix => {
                let n = v.as_i64().ok_or_else(wrong)?;
                let (mul, div) = self.precision;
                // Java's TimeUnit conversions: truncation toward zero, saturation.
                n.saturating_mul(div) / mul
            }
            TimestampType::Date => match v {
                Value::Int32(days) => i64::from(*days) * MILLIS_PER_DAY,
                _ => return Err(wrong()),
            },
            TimestampType::Time => match v {
                Value::Int32(ms) => i64::from(*ms),
                _ => return Err(wrong()),
            },
            TimestampType::Timestamp => v.as_i64().ok_or_else(wrong)?,
            TimestampType::Text => {
                let text = v.as_str().ok_or_else(wrong)?;
                let format = self.format.as_ref().ok_or_else(|| {
                    "TimestampConverter needs option 'format' to parse string timestamps"
                        .to_string()
                })?;
                format.parse_millis(text)?
            }
        })
    }

    fn target_value(&self, ms: i64) -> Value {
        match self.target {
            TimestampType::Unix => {
                let (mul, div) = self.precision;
                Value::Int64(ms.saturating_mul(mul) / div)
            }
            TimestampType::Date => Value::Int32(ms.div_euclid(MILLIS_PER_DAY) as i32),
            TimestampType::Time => Value::Int32(ms.rem_euclid(MILLIS_PER_DAY) as i32),
            TimestampType::Timestamp => Value::Int64(ms),
            TimestampType::Text => Value::String(
                self.format
                    .as_ref()
                    .map(|f| f.format(ms))
                    .unwrap_or_default(),
            ),
        }
    }

    fn convert(&self, from: TimestampType, v: &Value) -> Result<Value, String> {
        if v.is_null() {
            return Ok(Value::Null);
        }
        Ok(self.target_value(self.millis(from, v)?))
    }
}

impl Transform for TimestampConverter {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        let (schema, value) = self.side.take(&mut r);
        let (schema, value) = match (schema, self.field.is_empty()) {
            (Some(schema), true) => {
                let from = TimestampType::of_schema(&schema)?;
                let v = self.convert(from, &value)?;
                (
                    Some(std::sync::Arc::new(self.target.schema(schema.optional))),
                    v,
                )
            }
            (None, true) => {
                let v = match &value {
                    Value::Null => Value::Null,
                    v => self.convert(TimestampType::of_value(v)?, v)?,
                };
                (None, v)
            }
            (Some(schema), false) => {
                let Some(field) = schema.field(&self.field) else {
                    self.side.put(&mut r, Some(schema), value);
                    return Ok(Some(r));
                };
                let from = TimestampType::of_schema(&field.schema)?;
                let new_schema = self.cache.get_or_build(&schema, |schema| {
                    let fields: Vec<Field> = schema
                        .fields()
                        .iter()
                        .map(|f| {
                            if f.name == self.field {
                                Field::new(f.name.clone(), self.target.schema(f.schema.optional))
                            } else {
                                f.clone()
                            }
                        })
                        .collect();
                    let mut new_schema = schema.clone();
                    new_schema.ty = SchemaType::Struct(fields);
                    Ok(new_schema)
                })?;
                let v = match value {
                    Value::Null => Value::Null,
                    Value::Struct(s) => {
                        let mut out = Struct::with_capacity(s.fields().len());
                        for (name, v) in s.into_fields() {
                            if name == self.field {
                                let v = field_value(
                                    &field.schema,
                                    Some(&v),
                                    self.replace_null_with_default,
                                );
                                out.put(name, self.convert(from, &v)?);
                            } else {
                                out.put(name, v);
                            }
                        }
                        Value::Struct(out)
                    }
                    other => {
                        return Err(format!(
                            "TimestampConverter needs a struct to convert field '{}', got {}",
                            self.field,
                            other.type_name()
                        ))
                    }
                };
                (Some(new_schema), v)
            }
            (None, false) => match value {
                Value::Null => (None, Value::Null),
                Value::Map(mut entries) => {
                    let current = map_get(&entries, &self.field).cloned().unwrap_or_default();
                    let converted = match &current {
                        Value::Null => Value::Null,
                        v => self.convert(TimestampType::of_value(v)?, v)?,
                    };
                    match entries
                        .iter_mut()
                        .find(|(k, _)| k.as_str() == Some(&self.field))
                    {
                        Some(slot) => slot.1 = converted,
                        None => entries.push((Value::from(self.field.as_str()), converted)),
                    }
                    (None, Value::Map(entries))
                }
                other => {
                    return Err(format!(
                        "TimestampConverter needs a map to convert field '{}', got {}",
                        self.field,
                        other.type_name()
                    ))
                }
            },
        };
        self.side.put(&mut r, schema, value);
        Ok(Some(r))
    }
}

/// Kafka Connect's `TimestampRouter`.
#[derive(Debug)]
struct TimestampRouter {
    topic_format: String,
    format: JavaDateFormat,
}

impl Transform for TimestampRouter {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        let ts = r
            .timestamp
            .ok_or_else(|| format!("Timestamp missing on record of topic '{}'", r.topic))?;
        r.topic = self
            .topic_format
            .replace("${topic}", &r.topic)
            .replace("${timestamp}", &self.format.format(ts));
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::tests::{apply_one, chain_error, record, try_one};
    use super::*;

    // 2017-05-16T01:23:45.678Z, one of Kafka's TimestampConverterTest instants... and its parts.
    const MS: i64 = 1_494_897_825_678;
    const DATE_DAYS: i32 = 17_302;
    const TIME_MS: i32 = 5_025_678;
    const STRING_FORMAT: &str = "yyyy MM dd HH mm ss SSS z";
    const STRING: &str = "2017 05 16 01 23 45 678 UTC";

    #[test]
    fn java_patterns_format_and_parse_in_utc() {
        let f = JavaDateFormat::new("yyyy-MM-dd'T'HH:mm:ss.SSSZ").unwrap();
        assert_eq!(f.format(MS), "2017-05-16T01:23:45.678+0000");
        assert_eq!(f.parse_millis("2017-05-16T03:23:45.678+0200").unwrap(), MS);
        let f = JavaDateFormat::new("yyyyMMdd").unwrap();
        assert_eq!(f.format(MS), "20170516");
        assert_eq!(
            f.parse_millis("20170516").unwrap(),
            i64::from(DATE_DAYS) * MILLIS_PER_DAY
        );
        let f = JavaDateFormat::new("EEE, d MMM yyyy hh:mm a 'o''clock' XXX").unwrap();
        assert_eq!(f.format(MS), "Tue, 16 May 2017 01:23 AM o'clock Z");
        assert_eq!(
            JavaDateFormat::new(STRING_FORMAT).unwrap().format(MS),
            STRING
        );
        assert_eq!(
            JavaDateFormat::new("HH:mm")
                .unwrap()
                .parse_millis("01:23 and more")
                .unwrap(),
            5_000_000 - 20_000
        );
        assert!(JavaDateFormat::new("yyyy-MM-dd")
            .unwrap()
            .parse_millis("16/05/2017")
            .unwrap_err()
            .contains("does not match pattern (yyyy-MM-dd)"));
    }

    #[test]
    fn unsupported_pattern_letters_are_refused() {
        for (p, why) in [
            ("YYYY", "'Y' (week year)"),
            ("yyyy-MM-dd HH:mm:ss.SSSSSS", "SSSSSS"),
            ("yyyy-MM-ddTHH", "'T' is not a pattern letter"),
            ("'open", "unclosed quote"),
            ("kk", "'k'"),
        ] {
            let e = JavaDateFormat::new(p).unwrap_err();
            assert!(e.contains(why), "{p}: {e}");
        }
    }

    fn convert(
        options: &[(&str, &str)],
        schema: Option<Schema>,
        v: Value,
    ) -> (Option<Schema>, Value) {
        let out = apply_one("TimestampConverter$Value", options, record(schema, v));
        (out.value_schema.map(|s| (*s).clone()), out.value)
    }

    #[test]
    fn schemaless_conversions_as_in_kafkas_tests() {
        let s = |t: &'static str| vec![("target.type", t), ("format", STRING_FORMAT)];
        assert_eq!(
            convert(&s("string"), None, Value::Int64(MS)).1,
            Value::from(STRING)
        );
        assert_eq!(
            convert(&s("unix"), None, Value::from(STRING)).1,
            Value::Int64(MS)
        );
        assert_eq!(
            convert(&s("Date"), None, Value::Int64(MS)).1,
            Value::Int32(DATE_DAYS)
        );
        assert_eq!(
            convert(&s("Time"), None, Value::Int64(MS)).1,
            Value::Int32(TIME_MS)
        );
        assert_eq!(
            convert(&s("Timestamp"), None, Value::from(STRING)).1,
            Value::Int64(MS)
        );
        assert_eq!(convert(&s("string"), None, Value::Null).1, Value::Null);
    }

    #[test]
    fn schema_conversions_as_in_kafkas_tests() {
        let opts = |t: &'static str| vec![("target.type", t), ("format", STRING_FORMAT)];
        assert_eq!(
            convert(
                &opts("Timestamp"),
                Some(Schema::date()),
                Value::Int32(DATE_DAYS)
            ),
            (
                Some(Schema::timestamp()),
                Value::Int64(i64::from(DATE_DAYS) * MILLIS_PER_DAY)
            )
        );
        assert_eq!(
            convert(
                &opts("Date"),
                Some(Schema::timestamp().optional()),
                Value::Int64(MS)
            ),
            (Some(Schema::date().optional()), Value::Int32(DATE_DAYS))
        );
        assert_eq!(
            convert(&opts("Time"), Some(Schema::int64()), Value::Int64(MS)),
            (Some(Schema::time()), Value::Int32(TIME_MS))
        );
        assert_eq!(
            convert(&opts("unix"), Some(Schema::string()), Value::from(STRING)),
            (Some(Schema::int64()), Value::Int64(MS))
        );
        assert_eq!(
            convert(&opts("string"), Some(Schema::timestamp()), Value::Int64(MS)),
            (Some(Schema::string()), Value::from(STRING))
        );
        let err = try_one(
            "TimestampConverter$Value",
            &opts("string"),
            record(Some(Schema::boolean()), Value::Boolean(true)),
        )
        .unwrap_err();
        assert!(err.message.contains("not a timestamp type"), "{err}");
    }

    #[test]
    fn unix_precision_scales_in_and_out() {
        for (precision, unix) in [
            ("seconds", MS / 1000),
            ("milliseconds", MS),
            ("microseconds", MS * 1000),
            ("nanoseconds", MS * 1_000_000),
        ] {
            let opts = [("target.type", "unix"), ("unix.precision", precision)];
            assert_eq!(
                convert(&opts, Some(Schema::timestamp()), Value::Int64(MS)).1,
                Value::Int64(unix),
                "{precision}"
            );
            let back = [("target.type", "Timestamp"), ("unix.precision", precision)];
            let expect = if precision == "seconds" {
                MS / 1000 * 1000
            } else {
                MS
            };
            assert_eq!(
                convert(&back, Some(Schema::int64()), Value::Int64(unix)).1,
                Value::Int64(expect),
                "{precision}"
            );
        }
    }

    #[test]
    fn a_field_is_converted_inside_a_struct_and_a_map() {
        let schema = Schema::struct_of(vec![
            Field::new("ts", Schema::int64()),
            Field::new("other", Schema::string()),
        ])
        .named("Event");
        let value = Value::Struct(
            Struct::new()
                .with("ts", Value::Int64(MS))
                .with("other", "test"),
        );
        let (s, v) = convert(
            &[("field", "ts"), ("target.type", "Timestamp")],
            Some(schema),
            value,
        );
        let s = s.unwrap();
        assert_eq!(s.name.as_deref(), Some("Event"));
        assert_eq!(s.field("ts").unwrap().schema, Schema::timestamp());
        assert_eq!(
            v,
            Value::Struct(
                Struct::new()
                    .with("ts", Value::Int64(MS))
                    .with("other", "test")
            )
        );

        let map = Value::Map(vec![
            (Value::from("ts"), Value::Int64(MS)),
            (Value::from("other"), Value::from("test")),
        ]);
        let (_, v) = convert(
            &[
                ("field", "ts"),
                ("target.type", "string"),
                ("format", "yyyy-MM-dd"),
            ],
            None,
            map,
        );
        assert_eq!(
            v,
            Value::Map(vec![
                (Value::from("ts"), Value::from("2017-05-16")),
                (Value::from("other"), Value::from("test"))
            ])
        );
    }

    #[test]
    fn the_key_side_converts_the_key() {
        let mut r = record(None, Value::Null);
        r.key_schema = Some(Arc::new(Schema::timestamp()));
        r.key = Value::Int64(MS);
        let out = apply_one("TimestampConverter$Key", &[("target.type", "Date")], r);
        assert_eq!(out.key, Value::Int32(DATE_DAYS));
    }

    #[test]
    fn string_target_needs_a_format() {
        let err = chain_error(&[
            ("transforms", "t"),
            ("transforms.t.type", "TimestampConverter$Value"),
            ("transforms.t.target.type", "string"),
        ]);
        assert!(
            err.contains("option 'transforms.t.format' is required when target.type is string"),
            "{err}"
        );
        let err = chain_error(&[
            ("transforms", "t"),
            ("transforms.t.type", "TimestampConverter$Value"),
            ("transforms.t.target.type", "epoch"),
        ]);
        assert!(err.contains("option 'transforms.t.target.type' must be one of string, unix, Date, Time, Timestamp"), "{err}");
    }

    #[test]
    fn timestamp_router_defaults_to_topic_dash_yyyymmdd() {
        let mut r = record(None, Value::Null);
        r.topic = "orders".into();
        r.timestamp = Some(MS);
        let out = apply_one(
            "org.apache.kafka.connect.transforms.TimestampRouter",
            &[],
            r.clone(),
        );
        assert_eq!(out.topic, "orders-20170516");
        let out = apply_one(
            "TimestampRouter",
            &[
                ("topic.format", "${timestamp}_${topic}"),
                ("timestamp.format", "yyyy.MM"),
            ],
            r.clone(),
        );
        assert_eq!(out.topic, "2017.05_orders");
        r.timestamp = None;
        assert!(try_one("TimestampRouter", &[], r)
            .unwrap_err()
            .message
            .contains("Timestamp missing"));
    }

    #[test]
    fn cast_style_date_text() {
        assert_eq!(date_value_text(MS), "2017-05-16T01:23:45.678Z");
        assert_eq!(
            date_value_text(i64::from(DATE_DAYS) * MILLIS_PER_DAY),
            "2017-05-16"
        );
        assert_eq!(date_value_text(i64::from(TIME_MS)), "01:23:45.678Z");
    }
}
