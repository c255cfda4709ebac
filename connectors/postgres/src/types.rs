//! PostgreSQL types to Kafka Connect schemas, and decoding of the binary wire format into
//! Connect [`Value`]s.
//!
//! | PostgreSQL | Connect |
//! |---|---|
//! | `smallint`, `integer`, `bigint`, `oid` | int16, int32, int64, int64 |
//! | `real`, `double precision` | float32, float64 |
//! | `numeric(p, s)` | Decimal(scale s), or per `numeric.mapping` int8..int64 / float64 |
//! | `numeric` without a declared scale | string (exact digits; Decimal needs one fixed scale), float64 with `best_fit*` |
//! | `boolean` | boolean |
//! | `text`, `varchar`, `char(n)`, `name`, `"char"`, enums | string |
//! | `bytea` | bytes |
//! | `date` | Date |
//! | `time`, `timetz` | Time (milliseconds since midnight, UTC for `timetz`) |
//! | `timestamp`, `timestamptz` | Timestamp (UTC; `timestamp` values are taken as UTC) |
//! | `uuid`, `json`, `jsonb` | string |
//! | arrays of any of these | array (multi-dimensional arrays flattened in row-major order) |
//! | domains | as their base type |
//! | anything else (`interval`, `inet`, `money`, ranges, ...) | string (PostgreSQL's text form) |
//!
//! Every value is read in binary, so neither `DateStyle` nor `TimeZone` affects it.

use sluice_sdk::{Decimal, Schema, Value};
use tokio_postgres::types::{Kind, Type};

use crate::config::NumericMapping;

/// Microseconds between 1970-01-01 and PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days between 1970-01-01 and 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;
const MILLIS_PER_DAY: i64 = 86_400_000;

/// What a NUMERIC column becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumericTarget {
    /// Connect Decimal with this scale.
    Decimal(i32),
    /// int8.
    Int8,
    /// int16.
    Int16,
    /// int32.
    Int32,
    /// int64.
    Int64,
    /// float64.
    Float64,
    /// The exact text.
    Text,
}

/// How one column's binary values are decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoder {
    /// `boolean`.
    Bool,
    /// `smallint`.
    Int2,
    /// `integer`.
    Int4,
    /// `bigint`.
    Int8,
    /// `oid` (unsigned 32-bit, widened).
    Oid,
    /// `real`.
    Float4,
    /// `double precision`.
    Float8,
    /// `numeric`.
    Numeric(NumericTarget),
    /// Text-like types, enums, and anything selected `::text`.
    Text,
    /// The one-byte `"char"`.
    Char,
    /// `bytea`.
    Bytea,
    /// `date`.
    Date,
    /// `time`.
    Time,
    /// `timetz`.
    TimeTz,
    /// `timestamp` (taken as UTC).
    Timestamp,
    /// `timestamptz`.
    TimestampTz,
    /// `uuid`.
    Uuid,
    /// `json`.
    Json,
    /// `jsonb`.
    Jsonb,
    /// An array of the inner decoder's type.
    Array(Box<Decoder>),
}

/// How a column is read: the decoder, its schema (before optionality), and whether the select
/// list must cast it to text (or text[]) because there is no binary decoder for it.
#[derive(Debug, Clone)]
pub struct ColumnType {
    /// Decoder of the selected (possibly cast) value.
    pub decoder: Decoder,
    /// Connect schema of the value (required; the caller makes it optional).
    pub schema: Schema,
    /// `Some("text")` / `Some("text[]")` when the column is selected with that cast.
    pub cast: Option<&'static str>,
}

fn numeric_target(typmod: i32, mapping: NumericMapping) -> NumericTarget {
    if typmod < 4 {
        return match mapping {
            NumericMapping::BestFit | NumericMapping::BestFitEagerDouble => NumericTarget::Float64,
            NumericMapping::None | NumericMapping::PrecisionOnly => NumericTarget::Text,
        };
    }
    let precision = ((typmod - 4) >> 16) & 0xffff;
    let scale = (((typmod - 4) & 0x7ff) ^ 1024) - 1024;
    let int_by_precision = || match precision {
        p if p > 9 => NumericTarget::Int64,
        p if p > 4 => NumericTarget::Int32,
        p if p > 2 => NumericTarget::Int16,
        _ => NumericTarget::Int8,
    };
    match mapping {
        NumericMapping::None => NumericTarget::Decimal(scale),
        NumericMapping::PrecisionOnly if scale == 0 && precision <= 18 => int_by_precision(),
        NumericMapping::BestFit if precision <= 18 && scale == 0 => int_by_precision(),
        NumericMapping::BestFit if precision <= 18 && scale > 0 => NumericTarget::Float64,
        NumericMapping::BestFitEagerDouble if scale > 0 => NumericTarget::Float64,
        NumericMapping::BestFitEagerDouble if precision <= 18 && scale == 0 => int_by_precision(),
        _ => NumericTarget::Decimal(scale),
    }
}

fn scalar(ty: &Type, typmod: i32, mapping: NumericMapping) -> Option<(Decoder, Schema)> {
    if let Kind::Enum(_) = ty.kind() {
        return Some((Decoder::Text, Schema::string()));
    }
    if let Kind::Domain(base) = ty.kind() {
        return scalar(base, typmod, mapping);
    }
    let pair = match *ty {
        Type::BOOL => (Decoder::Bool, Schema::boolean()),
        Type::INT2 => (Decoder::Int2, Schema::int16()),
        Type::INT4 => (Decoder::Int4, Schema::int32()),
        Type::INT8 => (Decoder::Int8, Schema::int64()),
        Type::OID => (Decoder::Oid, Schema::int64()),
        Type::FLOAT4 => (Decoder::Float4, Schema::float32()),
        Type::FLOAT8 => (Decoder::Float8, Schema::float64()),
        Type::NUMERIC => {
            let target = numeric_target(typmod, mapping);
            let schema = match target {
                NumericTarget::Decimal(scale) => {
                    let mut s = Schema::decimal(scale);
                    if typmod >= 4 {
                        s = s.with_parameter(
                            sluice_sdk::schema::DECIMAL_PRECISION_PARAM,
                            (((typmod - 4) >> 16) & 0xffff).to_string(),
                        );
                    }
                    s
                }
                NumericTarget::Int8 => Schema::int8(),
                NumericTarget::Int16 => Schema::int16(),
                NumericTarget::Int32 => Schema::int32(),
                NumericTarget::Int64 => Schema::int64(),
                NumericTarget::Float64 => Schema::float64(),
                NumericTarget::Text => Schema::string(),
            };
            (Decoder::Numeric(target), schema)
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
            (Decoder::Text, Schema::string())
        }
        Type::CHAR => (Decoder::Char, Schema::string()),
        Type::BYTEA => (Decoder::Bytea, Schema::bytes()),
        Type::DATE => (Decoder::Date, Schema::date()),
        Type::TIME => (Decoder::Time, Schema::time()),
        Type::TIMETZ => (Decoder::TimeTz, Schema::time()),
        Type::TIMESTAMP => (Decoder::Timestamp, Schema::timestamp()),
        Type::TIMESTAMPTZ => (Decoder::TimestampTz, Schema::timestamp()),
        Type::UUID => (Decoder::Uuid, Schema::string()),
        Type::JSON => (Decoder::Json, Schema::string()),
        Type::JSONB => (Decoder::Jsonb, Schema::string()),
        _ if ty.name() == "citext" => (Decoder::Text, Schema::string()),
        _ => return None,
    };
    Some(pair)
}

/// How to read a column of type `ty` with type modifier `typmod`.
pub fn column_type(ty: &Type, typmod: i32, mapping: NumericMapping) -> ColumnType {
    let base = match ty.kind() {
        Kind::Domain(base) => base,
        _ => ty,
    };
    if let Kind::Array(element) = base.kind() {
        return match scalar(element, typmod, mapping) {
            Some((decoder, schema)) => ColumnType {
                decoder: Decoder::Array(Box::new(decoder)),
                schema: Schema::array(schema.optional()),
                cast: None,
            },
            None => ColumnType {
                decoder: Decoder::Array(Box::new(Decoder::Text)),
                schema: Schema::array(Schema::string().optional()),
                cast: Some("text[]"),
            },
        };
    }
    match scalar(base, typmod, mapping) {
        Some((decoder, schema)) => ColumnType {
            decoder,
            schema,
            cast: None,
        },
        None => ColumnType {
            decoder: Decoder::Text,
            schema: Schema::string(),
            cast: Some("text"),
        },
    }
}

/// A decoding failure, phrased for "column 'x' ...".
pub type DecodeResult<T> = Result<T, String>;

fn take<const N: usize>(buf: &[u8]) -> DecodeResult<[u8; N]> {
    buf.get(..N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("has a truncated value ({} bytes, expected {N})", buf.len()))
}

fn exact<const N: usize>(buf: &[u8]) -> DecodeResult<[u8; N]> {
    buf.try_into()
        .map_err(|_| format!("has a value of {} bytes, expected {N}", buf.len()))
}

fn text(buf: &[u8]) -> DecodeResult<String> {
    String::from_utf8(buf.to_vec()).map_err(|_| "has text that is not UTF-8".to_string())
}

/// Microseconds since the Unix epoch of a binary `timestamp`/`timestamptz`
/// (infinities saturate).
fn timestamp_micros(buf: &[u8]) -> DecodeResult<i64> {
    let raw = i64::from_be_bytes(exact::<8>(buf)?);
    Ok(match raw {
        i64::MAX | i64::MIN => raw,
        _ => raw.saturating_add(PG_EPOCH_MICROS),
    })
}

fn micros_to_millis(micros: i64) -> i64 {
    match micros {
        i64::MAX | i64::MIN => micros,
        _ => micros.div_euclid(1000),
    }
}

/// A decoded NUMERIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumericValue {
    /// A finite number as exact decimal text.
    Finite(String),
    /// `NaN`.
    NaN,
    /// `Infinity`.
    PosInfinity,
    /// `-Infinity`.
    NegInfinity,
}

/// Decodes NUMERIC's binary form (base-10000 digits with weight, sign and display scale).
pub fn numeric_from_sql(buf: &[u8]) -> DecodeResult<NumericValue> {
    let header = take::<8>(buf)?;
    let ndigits = usize::try_from(i16::from_be_bytes([header[0], header[1]]))
        .map_err(|_| "has a negative digit count".to_string())?;
    let weight = i32::from(i16::from_be_bytes([header[2], header[3]]));
    let sign = u16::from_be_bytes([header[4], header[5]]);
    let dscale = usize::from(u16::from_be_bytes([header[6], header[7]]));
    match sign {
        0xC000 => return Ok(NumericValue::NaN),
        0xD000 => return Ok(NumericValue::PosInfinity),
        0xF000 => return Ok(NumericValue::NegInfinity),
        0x0000 | 0x4000 => {}
        other => return Err(format!("has an unknown numeric sign {other:#x}")),
    }
    let body = &buf[8..];
    if body.len() != ndigits * 2 {
        return Err("has a truncated numeric".to_string());
    }
    let digit = |i: i32| -> u16 {
        usize::try_from(i)
            .ok()
            .filter(|&i| i < ndigits)
            .map_or(0, |i| u16::from_be_bytes([body[2 * i], body[2 * i + 1]]))
    };
    let mut out = String::with_capacity(ndigits * 4 + dscale + 2);
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for i in 0..=weight {
            let d = digit(i);
            if i == 0 {
                out.push_str(&d.to_string());
            } else {
                out.push_str(&format!("{d:04}"));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::with_capacity(dscale + 4);
        let mut i = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    if out == "-0" || (out.starts_with("-0.") && out[3..].bytes().all(|b| b == b'0')) {
        out.remove(0);
    }
    Ok(NumericValue::Finite(out))
}

/// A finite NUMERIC as `value * 10^scale` rounded half away from zero, when that fits an
/// `i128`; `None` for NaN, infinities and larger numbers (which take the exact text path).
fn numeric_unscaled(buf: &[u8], scale: i32) -> Option<i128> {
    let header: [u8; 8] = buf.get(..8)?.try_into().ok()?;
    let ndigits = usize::try_from(i16::from_be_bytes([header[0], header[1]])).ok()?;
    let weight = i32::from(i16::from_be_bytes([header[2], header[3]]));
    let negative = match u16::from_be_bytes([header[4], header[5]]) {
        0x0000 => false,
        0x4000 => true,
        _ => return None,
    };
    let body = buf.get(8..8 + ndigits * 2)?;
    let mut acc: i128 = 0;
    for pair in body.chunks_exact(2) {
        let digit = i128::from(u16::from_be_bytes([pair[0], pair[1]]));
        acc = acc.checked_mul(10_000)?.checked_add(digit)?;
    }
    if acc == 0 {
        return Some(0);
    }
    // The last base-10000 digit stands for 10000^(weight - ndigits + 1).
    let exponent = 4 * (weight - i32::try_from(ndigits).ok()? + 1) + scale;
    let magnitude = if exponent >= 0 {
        acc.checked_mul(10i128.checked_pow(u32::try_from(exponent).ok()?)?)?
    } else {
        let Some(divisor) = 10i128.checked_pow(exponent.unsigned_abs()) else {
            return Some(0);
        };
        let (q, r) = (acc / divisor, acc % divisor);
        if r >= divisor - r {
            q + 1
        } else {
            q
        }
    };
    Some(if negative { -magnitude } else { magnitude })
}

impl Decoder {
    /// Decodes one binary value (`None` is SQL NULL).
    ///
    /// # Errors
    /// Text completing "column 'x' ..." when the bytes do not fit the type.
    pub fn decode(&self, raw: Option<&[u8]>) -> DecodeResult<Value> {
        let Some(buf) = raw else {
            return Ok(Value::Null);
        };
        Ok(match self {
            Self::Bool => Value::Boolean(exact::<1>(buf)?[0] != 0),
            Self::Int2 => Value::Int16(i16::from_be_bytes(exact(buf)?)),
            Self::Int4 => Value::Int32(i32::from_be_bytes(exact(buf)?)),
            Self::Int8 => Value::Int64(i64::from_be_bytes(exact(buf)?)),
            Self::Oid => Value::Int64(u32::from_be_bytes(exact(buf)?).into()),
            Self::Float4 => Value::Float32(f32::from_be_bytes(exact(buf)?)),
            Self::Float8 => Value::Float64(f64::from_be_bytes(exact(buf)?)),
            Self::Numeric(NumericTarget::Decimal(scale)) => match numeric_unscaled(buf, *scale) {
                Some(unscaled) => Decimal::from_i128(unscaled, *scale).into_value(),
                None => decode_numeric(NumericTarget::Decimal(*scale), numeric_from_sql(buf)?)?,
            },
            Self::Numeric(target) => decode_numeric(*target, numeric_from_sql(buf)?)?,
            Self::Text | Self::Json => Value::String(text(buf)?),
            Self::Jsonb => match buf.split_first() {
                Some((1, json)) => Value::String(text(json)?),
                _ => return Err("has a jsonb value of an unknown version".to_string()),
            },
            Self::Char => Value::String(char::from(exact::<1>(buf)?[0]).to_string()),
            Self::Bytea => Value::Bytes(buf.to_vec()),
            Self::Date => {
                let days = i32::from_be_bytes(exact(buf)?);
                Value::Int32(match days {
                    i32::MAX | i32::MIN => days,
                    _ => days.saturating_add(PG_EPOCH_DAYS),
                })
            }
            Self::Time => {
                let micros = i64::from_be_bytes(exact(buf)?);
                Value::Int32(i32::try_from(micros / 1000).map_err(|_| "has a bad time")?)
            }
            Self::TimeTz => {
                let b = exact::<12>(buf)?;
                let micros = i64::from_be_bytes(b[..8].try_into().map_err(|_| "bad timetz")?);
                // The zone is stored in seconds west of UTC.
                let zone = i64::from(i32::from_be_bytes(
                    b[8..].try_into().map_err(|_| "bad timetz")?,
                ));
                let utc = (micros / 1000 + zone * 1000).rem_euclid(MILLIS_PER_DAY);
                Value::Int32(i32::try_from(utc).map_err(|_| "has a bad time")?)
            }
            Self::Timestamp | Self::TimestampTz => {
                Value::Int64(micros_to_millis(timestamp_micros(buf)?))
            }
            Self::Uuid => {
                let b = exact::<16>(buf)?;
                let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
                Value::String(format!(
                    "{}-{}-{}-{}-{}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..32]
                ))
            }
            Self::Array(inner) => Value::Array(decode_array(inner, buf)?),
        })
    }

    /// The value as microseconds since the Unix epoch (UTC), for timestamp offsets.
    ///
    /// # Errors
    /// When the decoder is not a date or timestamp type.
    pub fn timestamp_micros(&self, raw: Option<&[u8]>) -> DecodeResult<Option<i64>> {
        let Some(buf) = raw else { return Ok(None) };
        match self {
            Self::Timestamp | Self::TimestampTz => timestamp_micros(buf).map(Some),
            Self::Date => {
                let days = i64::from(i32::from_be_bytes(exact(buf)?));
                Ok(Some(
                    (days * MILLIS_PER_DAY * 1000).saturating_add(PG_EPOCH_MICROS),
                ))
            }
            _ => Err("is not a timestamp column".to_string()),
        }
    }

    /// The value as an `i64`, for incrementing offsets.
    ///
    /// # Errors
    /// When the decoder is not an integer type or the number has a fraction.
    pub fn integer(&self, raw: Option<&[u8]>) -> DecodeResult<Option<i64>> {
        let Some(buf) = raw else { return Ok(None) };
        match self {
            Self::Int2 => Ok(Some(i16::from_be_bytes(exact(buf)?).into())),
            Self::Int4 => Ok(Some(i32::from_be_bytes(exact(buf)?).into())),
            Self::Int8 => Ok(Some(i64::from_be_bytes(exact(buf)?))),
            Self::Oid => Ok(Some(u32::from_be_bytes(exact(buf)?).into())),
            Self::Numeric(_) => match numeric_from_sql(buf)? {
                NumericValue::Finite(t) => t
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("holds {t}, which is not a 64-bit whole number")),
                _ => Err("holds NaN or Infinity".to_string()),
            },
            _ => Err("is not an integer column".to_string()),
        }
    }

    /// Whether the type can serve as an incrementing column.
    pub fn is_integer(&self) -> bool {
        matches!(
            self,
            Self::Int2 | Self::Int4 | Self::Int8 | Self::Oid | Self::Numeric(_)
        )
    }

    /// Whether the type can serve as a timestamp column.
    pub fn is_timestamp(&self) -> bool {
        matches!(self, Self::Timestamp | Self::TimestampTz | Self::Date)
    }
}

fn decode_numeric(target: NumericTarget, value: NumericValue) -> DecodeResult<Value> {
    let finite = |v: &NumericValue| match v {
        NumericValue::Finite(t) => Ok(t.clone()),
        other => Err(format!(
            "holds {other:?}, which a Decimal or integer cannot represent; set numeric.mapping \
             to best_fit_eager_double to read it as float64"
        )),
    };
    let int = |v: &NumericValue| -> DecodeResult<i64> {
        let t = finite(v)?;
        t.split('.')
            .next()
            .unwrap_or("")
            .parse()
            .map_err(|_| format!("holds {t}, which does not fit a 64-bit integer"))
    };
    Ok(match target {
        NumericTarget::Decimal(scale) => {
            let t = finite(&value)?;
            Decimal::parse(&t)
                .ok_or_else(|| format!("holds {t}, which is not a decimal number"))?
                .rescale(scale)
                .into_value()
        }
        NumericTarget::Int8 => {
            Value::Int8(i8::try_from(int(&value)?).map_err(|_| "does not fit int8".to_string())?)
        }
        NumericTarget::Int16 => {
            Value::Int16(i16::try_from(int(&value)?).map_err(|_| "does not fit int16".to_string())?)
        }
        NumericTarget::Int32 => {
            Value::Int32(i32::try_from(int(&value)?).map_err(|_| "does not fit int32".to_string())?)
        }
        NumericTarget::Int64 => Value::Int64(int(&value)?),
        NumericTarget::Float64 => Value::Float64(match value {
            NumericValue::Finite(t) => t.parse().map_err(|_| format!("holds bad number {t}"))?,
            NumericValue::NaN => f64::NAN,
            NumericValue::PosInfinity => f64::INFINITY,
            NumericValue::NegInfinity => f64::NEG_INFINITY,
        }),
        NumericTarget::Text => Value::String(match value {
            NumericValue::Finite(t) => t,
            NumericValue::NaN => "NaN".to_string(),
            NumericValue::PosInfinity => "Infinity".to_string(),
            NumericValue::NegInfinity => "-Infinity".to_string(),
        }),
    })
}

fn read_i32(buf: &mut &[u8]) -> DecodeResult<i32> {
    let v = i32::from_be_bytes(take::<4>(buf)?);
    *buf = &buf[4..];
    Ok(v)
}

fn decode_array(inner: &Decoder, mut buf: &[u8]) -> DecodeResult<Vec<Value>> {
    let dims = read_i32(&mut buf)?;
    let _has_nulls = read_i32(&mut buf)?;
    let _element_oid = read_i32(&mut buf)?;
    let mut count: usize = if dims == 0 { 0 } else { 1 };
    for _ in 0..dims {
        let len = usize::try_from(read_i32(&mut buf)?).map_err(|_| "bad array length")?;
        let _lower = read_i32(&mut buf)?;
        count = count.checked_mul(len).ok_or("array too large")?;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = read_i32(&mut buf)?;
        if len < 0 {
            out.push(Value::Null);
            continue;
        }
        let len = usize::try_from(len).map_err(|_| "bad element length")?;
        let element = buf.get(..len).ok_or("truncated array element")?;
        out.push(inner.decode(Some(element))?);
        buf = &buf[len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: &[i16], weight: i16, sign: u16, dscale: u16) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(ndigits.len() as i16).to_be_bytes());
        b.extend_from_slice(&weight.to_be_bytes());
        b.extend_from_slice(&sign.to_be_bytes());
        b.extend_from_slice(&dscale.to_be_bytes());
        for d in ndigits {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b
    }

    #[test]
    fn numerics_decode_to_exact_text() {
        // 12345.678 = digits [1, 2345, 6780], weight 1, dscale 3
        assert_eq!(
            numeric_from_sql(&numeric(&[1, 2345, 6780], 1, 0, 3)).unwrap(),
            NumericValue::Finite("12345.678".into())
        );
        // -0.0012 = digits [12], weight -1, dscale 4
        assert_eq!(
            numeric_from_sql(&numeric(&[12], -1, 0x4000, 4)).unwrap(),
            NumericValue::Finite("-0.0012".into())
        );
        // 10000 = digits [1], weight 1, dscale 0
        assert_eq!(
            numeric_from_sql(&numeric(&[1], 1, 0, 0)).unwrap(),
            NumericValue::Finite("10000".into())
        );
        assert_eq!(
            numeric_from_sql(&numeric(&[], 0, 0, 2)).unwrap(),
            NumericValue::Finite("0.00".into())
        );
        assert_eq!(
            numeric_from_sql(&numeric(&[], 0, 0xC000, 0)).unwrap(),
            NumericValue::NaN
        );
    }

    #[test]
    fn numeric_fast_path_matches_the_exact_text_path() {
        let cases = [
            (numeric(&[1, 2345, 6780], 1, 0, 3), 3),
            (numeric(&[1, 2345, 6780], 1, 0, 3), 1),
            (numeric(&[1, 2345, 6780], 1, 0x4000, 3), 5),
            (numeric(&[12], -1, 0x4000, 4), 4),
            (numeric(&[12], -1, 0, 4), 2),
            (numeric(&[5000], -1, 0, 1), 0),
            (numeric(&[1], 1, 0, 0), 0),
            (numeric(&[], 0, 0, 2), 2),
        ];
        for (buf, scale) in cases {
            let fast = Decimal::from_i128(numeric_unscaled(&buf, scale).unwrap(), scale);
            let NumericValue::Finite(text) = numeric_from_sql(&buf).unwrap() else {
                panic!("finite")
            };
            let slow = Decimal::parse(&text).unwrap().rescale(scale);
            assert_eq!(fast, slow, "{text} at scale {scale}");
        }
        assert_eq!(numeric_unscaled(&numeric(&[], 0, 0xC000, 0), 2), None);
    }

    #[test]
    fn numeric_mapping_follows_confluent() {
        let typmod = |p: i32, s: i32| ((p << 16) | (s & 0x7ff)) + 4;
        assert_eq!(
            numeric_target(typmod(10, 2), NumericMapping::None),
            NumericTarget::Decimal(2)
        );
        assert_eq!(
            numeric_target(typmod(9, 0), NumericMapping::PrecisionOnly),
            NumericTarget::Int32
        );
        assert_eq!(
            numeric_target(typmod(10, 2), NumericMapping::PrecisionOnly),
            NumericTarget::Decimal(2)
        );
        assert_eq!(
            numeric_target(typmod(10, 2), NumericMapping::BestFit),
            NumericTarget::Float64
        );
        assert_eq!(
            numeric_target(typmod(30, 2), NumericMapping::BestFit),
            NumericTarget::Decimal(2)
        );
        assert_eq!(
            numeric_target(typmod(30, 2), NumericMapping::BestFitEagerDouble),
            NumericTarget::Float64
        );
        assert_eq!(
            numeric_target(typmod(2, 0), NumericMapping::BestFit),
            NumericTarget::Int8
        );
        assert_eq!(
            numeric_target(-1, NumericMapping::None),
            NumericTarget::Text
        );
    }

    #[test]
    fn timestamps_are_unix_millis() {
        let zero = 0i64.to_be_bytes();
        assert_eq!(
            Decoder::TimestampTz.decode(Some(&zero)).unwrap(),
            Value::Int64(946_684_800_000)
        );
        let before = (-PG_EPOCH_MICROS - 1500).to_be_bytes();
        assert_eq!(
            Decoder::Timestamp.decode(Some(&before)).unwrap(),
            Value::Int64(-2)
        );
        assert_eq!(
            Decoder::Date.decode(Some(&0i32.to_be_bytes())).unwrap(),
            Value::Int32(10_957)
        );
    }
}
