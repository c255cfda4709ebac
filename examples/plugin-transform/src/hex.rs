//! `HexConverter`: strings (as UTF-8) and bytes are written as hexadecimal text
//! (`"hi"` -> `6869`); hexadecimal text is read back as bytes (optional bytes schema).

use std::sync::Arc;

use sluice_sdk::{
    ConfigDef, ConfigKey, ConfigType, Converter, ConverterPlugin, Importance, Schema, SchemaRef,
    Value,
};

use crate::mask::PACKAGE;

/// Option: write `A`-`F` instead of `a`-`f`.
pub const UPPERCASE: &str = "uppercase";

/// The class.
pub fn plugin() -> ConverterPlugin {
    ConverterPlugin::new(
        format!("{PACKAGE}HexConverter"),
        "Strings and bytes as hexadecimal text.",
        ConfigDef::new().define(
            ConfigKey::new(
                UPPERCASE,
                ConfigType::Boolean,
                Importance::Low,
                "Write the digits A-F in upper case.",
            )
            .default_value("false"),
        ),
        |config, _is_key| {
            Ok(Box::new(HexConverter {
                uppercase: config.get_bool(UPPERCASE).unwrap_or(false),
                schema: Arc::new(Schema::bytes().optional()),
            }))
        },
    )
    .aliases(["hex"])
    .version(env!("CARGO_PKG_VERSION"))
}

/// A configured `HexConverter`.
#[derive(Debug)]
pub struct HexConverter {
    uppercase: bool,
    schema: SchemaRef,
}

impl Converter for HexConverter {
    fn encode(&self, _schema: Option<&Schema>, value: &Value) -> Result<Option<Vec<u8>>, String> {
        let bytes = match value {
            Value::Null => return Ok(None),
            Value::String(s) => s.as_bytes(),
            Value::Bytes(b) => b.as_slice(),
            other => {
                return Err(format!(
                    "HexConverter writes strings and bytes, not {}",
                    other.type_name()
                ))
            }
        };
        let text: String = bytes
            .iter()
            .map(|b| {
                if self.uppercase {
                    format!("{b:02X}")
                } else {
                    format!("{b:02x}")
                }
            })
            .collect();
        Ok(Some(text.into_bytes()))
    }

    fn decode(&self, bytes: Option<&[u8]>) -> Result<(Option<SchemaRef>, Value), String> {
        let Some(bytes) = bytes else {
            return Ok((Some(self.schema.clone()), Value::Null));
        };
        if bytes.len() % 2 != 0 {
            return Err(format!("{} hex digits: not an even number", bytes.len()));
        }
        let digit = |c: u8| -> Result<u8, String> {
            (c as char)
                .to_digit(16)
                .map(|d| d as u8)
                .ok_or_else(|| format!("'{}' is not a hex digit", c as char))
        };
        let decoded = bytes
            .chunks(2)
            .map(|pair| Ok(digit(pair[0])? << 4 | digit(pair[1])?))
            .collect::<Result<Vec<u8>, String>>()?;
        Ok((Some(self.schema.clone()), Value::Bytes(decoded)))
    }
}
