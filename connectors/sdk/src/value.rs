//! Values described by [`Schema`](crate::Schema)s, and the Decimal helper.
//!
//! Values hold the *physical* representation Kafka Connect puts on the wire: a Timestamp is an
//! [`Value::Int64`] of milliseconds, a Decimal is [`Value::Bytes`] of its unscaled integer.
//! The schema says how to read them, as in Kafka Connect; [`Decimal`] converts between text
//! and the byte form.

use std::fmt;

/// A Kafka Connect value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value {
    /// No value (a null field, a null key, or a tombstone value).
    #[default]
    Null,
    /// `int8`.
    Int8(i8),
    /// `int16`.
    Int16(i16),
    /// `int32` (also Date and Time).
    Int32(i32),
    /// `int64` (also Timestamp).
    Int64(i64),
    /// `float32`.
    Float32(f32),
    /// `float64`.
    Float64(f64),
    /// `boolean`.
    Boolean(bool),
    /// `string`.
    String(String),
    /// `bytes` (also Decimal).
    Bytes(Vec<u8>),
    /// `array`.
    Array(Vec<Value>),
    /// `map`, as key/value pairs in order.
    Map(Vec<(Value, Value)>),
    /// `struct`.
    Struct(Struct),
}

impl Value {
    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// The value as an `i64` if it is any integer type.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::Int8(v) => Some(v.into()),
            Self::Int16(v) => Some(v.into()),
            Self::Int32(v) => Some(v.into()),
            Self::Int64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as an `f64` if it is any number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Float32(v) => Some(v.into()),
            Self::Float64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The fields of a struct value.
    pub fn as_struct(&self) -> Option<&Struct> {
        match self {
            Self::Struct(s) => Some(s),
            _ => None,
        }
    }

    /// The name of the value's physical type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Int8(_) => "int8",
            Self::Int16(_) => "int16",
            Self::Int32(_) => "int32",
            Self::Int64(_) => "int64",
            Self::Float32(_) => "float32",
            Self::Float64(_) => "float64",
            Self::Boolean(_) => "boolean",
            Self::String(_) => "string",
            Self::Bytes(_) => "bytes",
            Self::Array(_) => "array",
            Self::Map(_) => "map",
            Self::Struct(_) => "struct",
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::String(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::String(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Self::Int32(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int64(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Float64(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Boolean(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}
impl From<Struct> for Value {
    fn from(v: Struct) -> Self {
        Self::Struct(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Self::Null, Into::into)
    }
}

/// The value of a struct schema: field values in the schema's field order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Struct {
    fields: Vec<(String, Value)>,
}

impl Struct {
    /// An empty struct.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty struct with room for `n` fields.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            fields: Vec::with_capacity(n),
        }
    }

    /// The same struct with `name` set to `value` (builder style).
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.put(name, value);
        self
    }

    /// Sets `name` to `value`, replacing an earlier value of that field.
    pub fn put(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        let name = name.into();
        let value = value.into();
        match self.fields.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((name, value)),
        }
    }

    /// The value of field `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The fields in order.
    pub fn fields(&self) -> &[(String, Value)] {
        &self.fields
    }

    /// The fields in order, by value.
    pub fn into_fields(self) -> Vec<(String, Value)> {
        self.fields
    }
}

/// An arbitrary-precision decimal in Kafka Connect's representation: the unscaled integer as
/// big-endian two's complement bytes (as Java's `BigInteger.toByteArray()`) plus a scale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    unscaled: Vec<u8>,
    scale: i32,
}

impl Decimal {
    /// A decimal from Kafka Connect's byte form and its schema's scale.
    pub fn from_unscaled_bytes(unscaled: Vec<u8>, scale: i32) -> Self {
        Self { unscaled, scale }
    }

    /// A decimal of `unscaled * 10^-scale`.
    pub fn from_i128(unscaled: i128, scale: i32) -> Self {
        let bytes = unscaled.to_be_bytes();
        Self {
            unscaled: minimal_twos_complement(&bytes),
            scale,
        }
    }

    /// Parses decimal text (`-123.4500`, `1e3` is not accepted) keeping the written scale.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let (negative, digits) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part
            .bytes()
            .chain(frac_part.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let mut magnitude: Vec<u8> = vec![0];
        for b in int_part.bytes().chain(frac_part.bytes()) {
            mul_add(&mut magnitude, 10, b - b'0');
        }
        let scale = i32::try_from(frac_part.len()).ok()?;
        Some(Self {
            unscaled: to_twos_complement(magnitude, negative),
            scale,
        })
    }

    /// The same number with `scale` digits after the point, rounding half away from zero
    /// when digits are dropped.
    pub fn rescale(&self, scale: i32) -> Self {
        if scale == self.scale {
            return self.clone();
        }
        let text = self.to_string();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest.to_string()),
            None => (false, text),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i.to_string(), f.to_string()),
            None => (digits, String::new()),
        };
        let want = usize::try_from(scale.max(0)).unwrap_or(0);
        let mut all: Vec<u8> = int_part.bytes().map(|b| b - b'0').collect();
        let frac: Vec<u8> = frac_part.bytes().map(|b| b - b'0').collect();
        let round_up = frac.len() > want && frac[want] >= 5;
        all.extend(frac.iter().take(want));
        all.extend(std::iter::repeat_n(0, want.saturating_sub(frac.len())));
        let mut magnitude = vec![0u8];
        for d in all {
            mul_add(&mut magnitude, 10, d);
        }
        if round_up {
            mul_add(&mut magnitude, 1, 1);
        }
        Self {
            unscaled: to_twos_complement(magnitude, negative),
            scale: scale.max(0),
        }
    }

    /// The unscaled integer in Kafka Connect's byte form.
    pub fn unscaled_bytes(&self) -> &[u8] {
        &self.unscaled
    }

    /// Digits after the decimal point.
    pub fn scale(&self) -> i32 {
        self.scale
    }

    /// The nearest `f64` (for sinks whose target has no exact decimal type).
    pub fn to_f64(&self) -> f64 {
        self.to_string().parse().unwrap_or(f64::NAN)
    }

    /// The value as a [`Value::Bytes`] to pair with `Schema::decimal(self.scale())`.
    pub fn into_value(self) -> crate::Value {
        crate::Value::Bytes(self.unscaled)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let negative = self.unscaled.first().is_some_and(|b| b & 0x80 != 0);
        let mut magnitude = if negative {
            negate(&self.unscaled)
        } else {
            self.unscaled.clone()
        };
        let mut digits = Vec::new();
        while magnitude.iter().any(|&b| b != 0) {
            digits.push(b'0' + div_small(&mut magnitude, 10));
        }
        if digits.is_empty() {
            digits.push(b'0');
        }
        if self.scale < 0 {
            digits.splice(
                0..0,
                std::iter::repeat_n(b'0', self.scale.unsigned_abs() as usize),
            );
        }
        let scale = usize::try_from(self.scale.max(0)).unwrap_or(0);
        while digits.len() <= scale {
            digits.push(b'0');
        }
        digits.reverse();
        let (int_part, frac_part) = digits.split_at(digits.len() - scale);
        if negative {
            f.write_str("-")?;
        }
        f.write_str(std::str::from_utf8(int_part).map_err(|_| fmt::Error)?)?;
        if !frac_part.is_empty() {
            f.write_str(".")?;
            f.write_str(std::str::from_utf8(frac_part).map_err(|_| fmt::Error)?)?;
        }
        Ok(())
    }
}

/// `magnitude = magnitude * mul + add`, big-endian unsigned.
fn mul_add(magnitude: &mut Vec<u8>, mul: u32, add: u8) {
    let mut carry = u32::from(add);
    for b in magnitude.iter_mut().rev() {
        let v = u32::from(*b) * mul + carry;
        *b = (v & 0xff) as u8;
        carry = v >> 8;
    }
    while carry > 0 {
        magnitude.insert(0, (carry & 0xff) as u8);
        carry >>= 8;
    }
}

/// `magnitude /= div`, returning the remainder; big-endian unsigned.
fn div_small(magnitude: &mut [u8], div: u32) -> u8 {
    let mut rem = 0u32;
    for b in magnitude.iter_mut() {
        let v = (rem << 8) | u32::from(*b);
        *b = (v / div) as u8;
        rem = v % div;
    }
    rem as u8
}

/// Two's complement negation of a big-endian number.
fn negate(bytes: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = bytes.iter().map(|b| !b).collect();
    for b in out.iter_mut().rev() {
        let (v, overflow) = b.overflowing_add(1);
        *b = v;
        if !overflow {
            break;
        }
    }
    out
}

/// The minimal two's complement form of `magnitude` with a sign.
fn to_twos_complement(mut magnitude: Vec<u8>, negative: bool) -> Vec<u8> {
    // Room for the sign bit.
    magnitude.insert(0, 0);
    let bytes = if negative && magnitude.iter().any(|&b| b != 0) {
        negate(&magnitude)
    } else {
        magnitude
    };
    minimal_twos_complement(&bytes)
}

/// Drops redundant leading sign bytes, as `BigInteger.toByteArray()` does.
fn minimal_twos_complement(bytes: &[u8]) -> Vec<u8> {
    let mut start = 0;
    while start + 1 < bytes.len() {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    if bytes.is_empty() {
        vec![0]
    } else {
        bytes[start..].to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimals_use_javas_byte_form() {
        // BigInteger.valueOf(12345).toByteArray() == [0x30, 0x39]
        assert_eq!(
            Decimal::parse("123.45").unwrap().unscaled_bytes(),
            &[0x30, 0x39]
        );
        // BigInteger.valueOf(-1).toByteArray() == [0xff]
        assert_eq!(Decimal::parse("-0.01").unwrap().unscaled_bytes(), &[0xff]);
        // BigInteger.valueOf(128).toByteArray() == [0x00, 0x80]
        assert_eq!(
            Decimal::parse("128").unwrap().unscaled_bytes(),
            &[0x00, 0x80]
        );
        assert_eq!(Decimal::parse("0").unwrap().unscaled_bytes(), &[0x00]);
        assert_eq!(Decimal::from_i128(-129, 0).unscaled_bytes(), &[0xff, 0x7f]);
    }

    #[test]
    fn decimals_print_with_their_scale() {
        assert_eq!(
            Decimal::parse("-123.4500").unwrap().to_string(),
            "-123.4500"
        );
        assert_eq!(Decimal::parse(".5").unwrap().to_string(), "0.5");
        assert_eq!(Decimal::from_i128(5, 3).to_string(), "0.005");
        assert_eq!(Decimal::from_i128(5, -2).to_string(), "500");
        assert!(Decimal::parse("1e3").is_none());
        assert!(Decimal::parse("-").is_none());
    }

    #[test]
    fn rescale_pads_and_rounds_half_away_from_zero() {
        assert_eq!(
            Decimal::parse("1.5").unwrap().rescale(3).to_string(),
            "1.500"
        );
        assert_eq!(
            Decimal::parse("1.235").unwrap().rescale(2).to_string(),
            "1.24"
        );
        assert_eq!(
            Decimal::parse("-1.235").unwrap().rescale(2).to_string(),
            "-1.24"
        );
        assert_eq!(Decimal::parse("1.234").unwrap().rescale(0).to_string(), "1");
    }

    #[test]
    fn huge_decimals_round_trip() {
        let text = "-123456789012345678901234567890123456789012345678901234567890.123456789";
        assert_eq!(Decimal::parse(text).unwrap().to_string(), text);
    }

    proptest! {
        #[test]
        fn decimal_text_round_trips(unscaled in any::<i64>(), scale in 0i32..12) {
            let d = Decimal::from_i128(unscaled.into(), scale);
            let parsed = Decimal::parse(&d.to_string()).unwrap();
            prop_assert_eq!(parsed.unscaled_bytes(), d.unscaled_bytes());
            prop_assert_eq!(parsed.scale(), scale);
        }
    }
}
