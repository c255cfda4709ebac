//! `ValueContains`: a predicate matching records whose value contains a text: a string value
//! that contains it, or a struct or map value with a string field that does.

use sluice_sdk::{
    ConfigDef, ConfigKey, ConfigType, Importance, Predicate, TransformPlugin, TransformRecord,
    Validator, Value,
};

use crate::mask::PACKAGE;

/// Option: the text to look for.
pub const TEXT: &str = "text";

/// The class.
pub fn plugin() -> TransformPlugin {
    TransformPlugin::predicate(
        format!("{PACKAGE}ValueContains"),
        "Matches records whose value (or one of its string fields) contains a text.",
        ConfigDef::new().define(
            ConfigKey::new(
                TEXT,
                ConfigType::String,
                Importance::High,
                "The text to look for.",
            )
            .validator(Validator::NonEmpty),
        ),
        |config| {
            Ok(Box::new(ValueContains {
                text: config.get_str(TEXT).unwrap_or_default().to_string(),
            }))
        },
    )
    .aliases(["ValueContains"])
    .version(env!("CARGO_PKG_VERSION"))
}

/// A configured `ValueContains`.
#[derive(Debug)]
pub struct ValueContains {
    text: String,
}

impl ValueContains {
    fn contains(&self, value: &Value) -> bool {
        match value {
            Value::String(s) => s.contains(&self.text),
            Value::Struct(s) => s.fields().iter().any(|(_, v)| self.contains(v)),
            Value::Map(entries) => entries.iter().any(|(_, v)| self.contains(v)),
            _ => false,
        }
    }
}

impl Predicate for ValueContains {
    fn test(&self, record: &TransformRecord) -> Result<bool, String> {
        Ok(self.contains(&record.value))
    }
}
