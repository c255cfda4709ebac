//! `MaskDigits$Value` / `MaskDigits$Key`: replaces the digits of string data with a mask
//! character, keeping the last `keep.last` digits (`4111 1111 1111 1234` ->
//! `**** **** **** 1234`).
//!
//! With `fields` empty the whole key or value is masked, and must be a string. With `fields`,
//! the named fields of a struct (schema'd) or map (schemaless) value are masked; a field that
//! is absent or null is left alone, one that is not a string is an error.

use sluice_sdk::config::ConfigValue;
use sluice_sdk::{
    ConfigDef, ConfigKey, ConfigType, Importance, Struct, Transform, TransformPlugin,
    TransformRecord, Validator, Value,
};

/// The package of this plugin's classes.
pub const PACKAGE: &str = "com.example.sluice.";
/// Option: the fields to mask.
pub const FIELDS: &str = "fields";
/// Option: how many of the last digits stay.
pub const KEEP_LAST: &str = "keep.last";
/// Option: the mask character.
pub const MASK_CHAR: &str = "mask.char";

/// Which part of the record a transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The record key (`$Key`).
    Key,
    /// The record value (`$Value`).
    Value,
}

/// The class of `side`.
pub fn plugin(side: Side) -> TransformPlugin {
    let simple = match side {
        Side::Key => "MaskDigits$Key",
        Side::Value => "MaskDigits$Value",
    };
    TransformPlugin::transform(
        format!("{PACKAGE}{simple}"),
        "Masks the digits of string fields, keeping the last few.",
        config_def(),
        move |config| {
            Ok(Box::new(MaskDigits {
                side,
                fields: config.get_list(FIELDS),
                keep_last: config.get_i64(KEEP_LAST).unwrap_or(4) as usize,
                mask: config
                    .get_str(MASK_CHAR)
                    .and_then(|m| m.chars().next())
                    .unwrap_or('*'),
            }))
        },
    )
    .aliases([simple])
    .version(env!("CARGO_PKG_VERSION"))
}

/// The options of `MaskDigits`.
pub fn config_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new(
                FIELDS,
                ConfigType::List,
                Importance::High,
                "Fields to mask; empty masks the whole key or value, which must be a string.",
            )
            .default_value(""),
        )
        .define(
            ConfigKey::new(
                KEEP_LAST,
                ConfigType::Int,
                Importance::Medium,
                "How many of the last digits stay visible.",
            )
            .default_value("4")
            .validator(Validator::AtLeast(0.0)),
        )
        .define(
            ConfigKey::new(
                MASK_CHAR,
                ConfigType::String,
                Importance::Low,
                "The character masked digits become.",
            )
            .default_value("*")
            .validator(Validator::custom(|v| match v {
                ConfigValue::String(s) if s.chars().count() == 1 => Ok(()),
                other => Err(format!("must be exactly one character (got '{other}')")),
            })),
        )
}

/// A configured `MaskDigits`.
#[derive(Debug)]
pub struct MaskDigits {
    side: Side,
    fields: Vec<String>,
    keep_last: usize,
    mask: char,
}

impl MaskDigits {
    /// `text` with all digits but the last `keep_last` masked.
    pub fn mask_text(&self, text: &str) -> String {
        let digits = text.chars().filter(char::is_ascii_digit).count();
        let mut to_mask = digits.saturating_sub(self.keep_last);
        text.chars()
            .map(|c| {
                if c.is_ascii_digit() && to_mask > 0 {
                    to_mask -= 1;
                    self.mask
                } else {
                    c
                }
            })
            .collect()
    }

    fn mask_value(&self, value: &mut Value, name: &str) -> Result<(), String> {
        match value {
            Value::Null => Ok(()),
            Value::String(s) => {
                *s = self.mask_text(s);
                Ok(())
            }
            other => Err(format!(
                "MaskDigits masks strings only; {name} is {}",
                other.type_name()
            )),
        }
    }
}

impl Transform for MaskDigits {
    fn apply(&self, mut record: TransformRecord) -> Result<Option<TransformRecord>, String> {
        let (target, what) = match self.side {
            Side::Key => (&mut record.key, "the key"),
            Side::Value => (&mut record.value, "the value"),
        };
        if self.fields.is_empty() {
            self.mask_value(target, what)?;
            return Ok(Some(record));
        }
        match target {
            Value::Null => {}
            Value::Struct(s) => {
                let mut masked = Struct::with_capacity(s.fields().len());
                for (name, mut v) in std::mem::take(s).into_fields() {
                    if self.fields.contains(&name) {
                        self.mask_value(&mut v, &format!("field '{name}'"))?;
                    }
                    masked.put(name, v);
                }
                *s = masked;
            }
            Value::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    if let Some(field) = self.fields.iter().find(|f| k.as_str() == Some(f.as_str()))
                    {
                        self.mask_value(v, &format!("field '{field}'"))?;
                    }
                }
            }
            other => {
                return Err(format!(
                    "MaskDigits with fields needs a struct or map as {what}, not {}",
                    other.type_name()
                ))
            }
        }
        Ok(Some(record))
    }
}
