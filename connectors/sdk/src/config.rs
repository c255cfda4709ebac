//! Option declarations: each connector declares its options once, and validation, defaults,
//! documentation and the REST validate endpoint all come from that declaration.
//!
//! The model follows Kafka Connect's `ConfigDef`: an option has a name, a type, an optional
//! default (no default means required), an importance, documentation, a group and an optional
//! validator.
//!
//! ```
//! use sluice_sdk::config::{ConfigDef, ConfigKey, ConfigType, Importance, Validator};
//! use std::collections::BTreeMap;
//!
//! let def = ConfigDef::new()
//!     .define(ConfigKey::new("topic", ConfigType::String, Importance::High, "Topic to write to."))
//!     .define(
//!         ConfigKey::new("batch.size", ConfigType::Int, Importance::Low, "Lines per batch.")
//!             .default_value("2000")
//!             .validator(Validator::AtLeast(1.0)),
//!     );
//! let props = BTreeMap::from([("topic".to_string(), "lines".to_string())]);
//! let config = def.parse(&props).unwrap();
//! assert_eq!(config.get_str("topic"), Some("lines"));
//! assert_eq!(config.get_i64("batch.size"), Some(2000));
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::error::{ConfigError, ConfigErrors, Error, Result};

/// A connector or task configuration as written: option name to text value.
pub type Props = BTreeMap<String, String>;

/// A config from `(key, value)` pairs, for tests and examples:
/// `props(&[("topic", "t"), ("tasks.max", "2")])`.
pub fn props(pairs: &[(&str, &str)]) -> Props {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// The type of an option's value, as Kafka Connect names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true` or `false`.
    Boolean,
    /// Any text.
    String,
    /// A 32-bit integer.
    Int,
    /// A 16-bit integer.
    Short,
    /// A 64-bit integer.
    Long,
    /// A floating-point number.
    Double,
    /// A comma-separated list.
    List,
    /// A class name.
    Class,
    /// Text that is never shown back (`[hidden]`).
    Password,
}

impl ConfigType {
    /// Kafka Connect's name of the type (`STRING`, `INT`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Boolean => "BOOLEAN",
            Self::String => "STRING",
            Self::Int => "INT",
            Self::Short => "SHORT",
            Self::Long => "LONG",
            Self::Double => "DOUBLE",
            Self::List => "LIST",
            Self::Class => "CLASS",
            Self::Password => "PASSWORD",
        }
    }
}

/// How much an option matters to most users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    /// Most users set it.
    High,
    /// Some users set it.
    Medium,
    /// Rarely changed.
    Low,
}

impl Importance {
    /// Kafka Connect's name (`HIGH`, `MEDIUM`, `LOW`).
    pub fn name(self) -> &'static str {
        match self {
            Self::High => "HIGH",
            Self::Medium => "MEDIUM",
            Self::Low => "LOW",
        }
    }
}

/// A custom validation function: `Err` text completes "option 'x' ...".
pub type CustomCheck = Arc<dyn Fn(&ConfigValue) -> std::result::Result<(), String> + Send + Sync>;

/// A check on a parsed option value beyond its type.
#[derive(Clone)]
pub enum Validator {
    /// One of these texts (compared ignoring ASCII case).
    OneOf(Vec<String>),
    /// A number no smaller than this.
    AtLeast(f64),
    /// A number within these bounds, inclusive.
    Between(f64, f64),
    /// A non-empty text or list.
    NonEmpty,
    /// Any other check; the error text completes "option 'x' ...".
    Custom(CustomCheck),
}

impl Validator {
    /// [`Validator::OneOf`] from string slices.
    pub fn one_of(values: &[&str]) -> Self {
        Self::OneOf(values.iter().map(|v| (*v).to_string()).collect())
    }

    /// [`Validator::Custom`] from a closure.
    pub fn custom(
        check: impl Fn(&ConfigValue) -> std::result::Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        Self::Custom(Arc::new(check))
    }

    fn check(&self, value: &ConfigValue) -> std::result::Result<(), String> {
        match self {
            Self::OneOf(allowed) => {
                let texts: Vec<String> = match value {
                    ConfigValue::List(items) => items.clone(),
                    other => vec![other.to_string()],
                };
                for text in texts {
                    if !allowed.iter().any(|a| a.eq_ignore_ascii_case(&text)) {
                        return Err(format!(
                            "must be one of {} (got '{text}')",
                            allowed.join(", ")
                        ));
                    }
                }
                Ok(())
            }
            Self::AtLeast(min) => match value.as_f64() {
                Some(v) if v < *min => Err(format!("must be at least {min} (got {v})")),
                _ => Ok(()),
            },
            Self::Between(min, max) => match value.as_f64() {
                Some(v) if v < *min || v > *max => {
                    Err(format!("must be between {min} and {max} (got {v})"))
                }
                _ => Ok(()),
            },
            Self::NonEmpty => match value {
                ConfigValue::String(s) | ConfigValue::Password(Password(s)) if s.is_empty() => {
                    Err("must not be empty".to_string())
                }
                ConfigValue::List(l) if l.is_empty() => Err("must not be empty".to_string()),
                _ => Ok(()),
            },
            Self::Custom(check) => check(value),
        }
    }

    /// The allowed values, for the validate endpoint's `recommended_values`.
    pub fn recommended_values(&self) -> Vec<String> {
        match self {
            Self::OneOf(v) => v.clone(),
            _ => Vec::new(),
        }
    }
}

impl fmt::Debug for Validator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OneOf(v) => f.debug_tuple("OneOf").field(v).finish(),
            Self::AtLeast(v) => f.debug_tuple("AtLeast").field(v).finish(),
            Self::Between(a, b) => f.debug_tuple("Between").field(a).field(b).finish(),
            Self::NonEmpty => f.write_str("NonEmpty"),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// The declaration of one option.
#[derive(Debug, Clone)]
pub struct ConfigKey {
    /// The option's name as written in connector JSON.
    pub name: String,
    /// Value type.
    pub ty: ConfigType,
    /// Default as text; `None` makes the option required.
    pub default: Option<String>,
    /// Whether `null`/absent is a legal value even without a default.
    pub nullable: bool,
    /// How much the option matters.
    pub importance: Importance,
    /// What the option does, for `--help`, docs and the validate endpoint.
    pub doc: String,
    /// Group shown by the validate endpoint (`Common`, `Connection`, ...).
    pub group: Option<String>,
    /// Display name for UIs.
    pub display_name: Option<String>,
    /// Extra check on the parsed value.
    pub validator: Option<Validator>,
}

impl ConfigKey {
    /// A required option.
    pub fn new(
        name: impl Into<String>,
        ty: ConfigType,
        importance: Importance,
        doc: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            ty,
            default: None,
            nullable: false,
            importance,
            doc: doc.into(),
            group: None,
            display_name: None,
            validator: None,
        }
    }

    /// The same option with a default (so it is no longer required).
    pub fn default_value(mut self, default: impl Into<String>) -> Self {
        self.default = Some(default.into());
        self
    }

    /// The same option, optional with no default (absent reads as `None`).
    pub fn optional(mut self) -> Self {
        self.nullable = true;
        self
    }

    /// The same option with a validator.
    pub fn validator(mut self, validator: Validator) -> Self {
        self.validator = Some(validator);
        self
    }

    /// The same option in a group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// The same option with a display name.
    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = Some(name.into());
        self
    }

    /// Whether a value must be given.
    pub fn required(&self) -> bool {
        self.default.is_none() && !self.nullable
    }

    /// Parses `text` as this option's type and runs its validator.
    ///
    /// # Errors
    /// The reason, phrased to follow "option 'name' ".
    pub fn parse_value(&self, text: &str) -> std::result::Result<ConfigValue, String> {
        let trimmed = text.trim();
        let value = match self.ty {
            ConfigType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
                "true" => ConfigValue::Boolean(true),
                "false" => ConfigValue::Boolean(false),
                _ => return Err(format!("must be true or false (got '{text}')")),
            },
            ConfigType::Int | ConfigType::Short | ConfigType::Long => {
                let v: i64 = trimmed
                    .parse()
                    .map_err(|_| format!("must be a whole number (got '{text}')"))?;
                let (min, max) = match self.ty {
                    ConfigType::Int => (i64::from(i32::MIN), i64::from(i32::MAX)),
                    ConfigType::Short => (i64::from(i16::MIN), i64::from(i16::MAX)),
                    _ => (i64::MIN, i64::MAX),
                };
                if v < min || v > max {
                    return Err(format!("must be between {min} and {max} (got {v})"));
                }
                ConfigValue::Long(v)
            }
            ConfigType::Double => ConfigValue::Double(
                trimmed
                    .parse()
                    .map_err(|_| format!("must be a number (got '{text}')"))?,
            ),
            ConfigType::List => ConfigValue::List(
                trimmed
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            ConfigType::String | ConfigType::Class => ConfigValue::String(trimmed.to_string()),
            ConfigType::Password => ConfigValue::Password(Password(text.to_string())),
        };
        if let Some(validator) = &self.validator {
            validator.check(&value)?;
        }
        Ok(value)
    }
}

/// A secret; its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl Password {
    /// The secret itself.
    pub fn value(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

/// A parsed option value.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// A boolean.
    Boolean(bool),
    /// Any integer type.
    Long(i64),
    /// A double.
    Double(f64),
    /// A string or class name.
    String(String),
    /// A list.
    List(Vec<String>),
    /// A password.
    Password(Password),
}

impl ConfigValue {
    fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Long(v) => Some(v as f64),
            Self::Double(v) => Some(v),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Boolean(v) => write!(f, "{v}"),
            Self::Long(v) => write!(f, "{v}"),
            Self::Double(v) => write!(f, "{v}"),
            Self::String(v) => f.write_str(v),
            Self::List(v) => f.write_str(&v.join(",")),
            Self::Password(p) => write!(f, "{p}"),
        }
    }
}

/// A set of option declarations.
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    keys: Vec<ConfigKey>,
}

impl ConfigDef {
    /// No options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same set with one more option (replacing an earlier one of the same name).
    pub fn define(mut self, key: ConfigKey) -> Self {
        self.keys.retain(|k| k.name != key.name);
        self.keys.push(key);
        self
    }

    /// The same set with every option of `other` added.
    pub fn merge(mut self, other: &ConfigDef) -> Self {
        for key in &other.keys {
            self = self.define(key.clone());
        }
        self
    }

    /// The options, in declaration order.
    pub fn keys(&self) -> &[ConfigKey] {
        &self.keys
    }

    /// The option called `name`.
    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Parses every declared option of `props`, applying defaults, and collects every error.
    /// Undeclared keys are ignored here (the runtime rejects options no one declares).
    pub fn parse_lenient(&self, props: &Props) -> (Config, ConfigErrors) {
        let mut values = BTreeMap::new();
        let mut errors = ConfigErrors::default();
        for key in &self.keys {
            let text = props.get(&key.name).or(key.default.as_ref());
            match text {
                Some(text) => match key.parse_value(text) {
                    Ok(v) => {
                        values.insert(key.name.clone(), v);
                    }
                    Err(msg) => errors.push(&key.name, msg),
                },
                None if key.required() => errors.push(
                    &key.name,
                    format!("is required and has no default: {}", key.doc),
                ),
                None => {}
            }
        }
        (
            Config {
                values,
                originals: props.clone(),
            },
            errors,
        )
    }

    /// Parses `props`, failing on the first invalid configuration with every error found.
    ///
    /// # Errors
    /// [`Error::Config`] listing each missing or invalid option.
    pub fn parse(&self, props: &Props) -> Result<Config> {
        let (config, errors) = self.parse_lenient(props);
        errors.into_result().map(|()| config)
    }

    /// Errors for each key of `props` that is neither declared here nor accepted by `also`.
    pub fn unknown_options(&self, props: &Props, also: impl Fn(&str) -> bool) -> ConfigErrors {
        let mut errors = ConfigErrors::default();
        for name in props.keys() {
            if self.key(name).is_none() && !also(name) {
                errors.0.push(ConfigError::new(
                    name,
                    "is not a known option of this connector; remove it or check its spelling",
                ));
            }
        }
        errors
    }
}

/// A configuration parsed against a [`ConfigDef`], defaults applied.
#[derive(Debug, Clone, Default)]
pub struct Config {
    values: BTreeMap<String, ConfigValue>,
    originals: Props,
}

impl Config {
    /// The parsed value of `name` (`None` when absent and without default).
    pub fn get(&self, name: &str) -> Option<&ConfigValue> {
        self.values.get(name)
    }

    /// A string, class or password option as text.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.values.get(name)? {
            ConfigValue::String(s) => Some(s),
            ConfigValue::Password(p) => Some(p.value()),
            _ => None,
        }
    }

    /// An integer option.
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        match self.values.get(name)? {
            ConfigValue::Long(v) => Some(*v),
            _ => None,
        }
    }

    /// A double option (integers convert).
    pub fn get_f64(&self, name: &str) -> Option<f64> {
        self.values.get(name)?.as_f64()
    }

    /// A boolean option.
    pub fn get_bool(&self, name: &str) -> Option<bool> {
        match self.values.get(name)? {
            ConfigValue::Boolean(v) => Some(*v),
            _ => None,
        }
    }

    /// A list option (empty when absent).
    pub fn get_list(&self, name: &str) -> Vec<String> {
        match self.values.get(name) {
            Some(ConfigValue::List(v)) => v.clone(),
            _ => Vec::new(),
        }
    }

    /// A password option.
    pub fn get_password(&self, name: &str) -> Option<&Password> {
        match self.values.get(name)? {
            ConfigValue::Password(p) => Some(p),
            _ => None,
        }
    }

    /// The configuration as written, every key included.
    pub fn originals(&self) -> &Props {
        &self.originals
    }

    /// The written keys that start with `prefix`, with the prefix removed
    /// (e.g. `value.converter.` sub-options).
    pub fn originals_with_prefix(&self, prefix: &str) -> Props {
        self.originals
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .collect()
    }
}

/// Replaces `${env:NAME}` (and `${env:NAME:-fallback}`) in `text` with environment variables,
/// as Kafka Connect's `EnvVarConfigProvider` does, so secrets need not sit in files.
///
/// # Errors
/// [`Error::Config`]-style text when a named variable is not set and has no fallback, or a
/// reference is not closed.
pub fn resolve_env_references(option: &str, text: &str) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let end = after.find('}').ok_or_else(|| {
            Error::config(
                option,
                format!("has an unclosed '${{env:' reference in '{text}'"),
            )
        })?;
        let reference = &after[..end];
        let (name, fallback) = match reference.split_once(":-") {
            Some((n, f)) => (n, Some(f)),
            None => (reference, None),
        };
        match (std::env::var(name), fallback) {
            (Ok(v), _) => out.push_str(&v),
            (Err(_), Some(f)) => out.push_str(f),
            (Err(_), None) => {
                return Err(Error::config(
                    option,
                    format!("refers to environment variable {name}, which is not set; export it before starting the worker"),
                ))
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def() -> ConfigDef {
        ConfigDef::new()
            .define(ConfigKey::new(
                "topic",
                ConfigType::String,
                Importance::High,
                "Topic.",
            ))
            .define(
                ConfigKey::new("mode", ConfigType::String, Importance::High, "Mode.")
                    .default_value("bulk")
                    .validator(Validator::one_of(&["bulk", "incrementing"])),
            )
            .define(
                ConfigKey::new("batch", ConfigType::Int, Importance::Low, "Batch.")
                    .default_value("10")
                    .validator(Validator::AtLeast(1.0)),
            )
            .define(
                ConfigKey::new("tables", ConfigType::List, Importance::Low, "Tables.").optional(),
            )
            .define(
                ConfigKey::new("secret", ConfigType::Password, Importance::Low, "Secret.")
                    .optional(),
            )
    }

    #[test]
    fn defaults_apply_and_types_parse() {
        let c = def()
            .parse(&props(&[
                ("topic", "t"),
                ("tables", " a, b ,,c"),
                ("secret", "s3"),
            ]))
            .unwrap();
        assert_eq!(c.get_str("mode"), Some("bulk"));
        assert_eq!(c.get_i64("batch"), Some(10));
        assert_eq!(c.get_list("tables"), vec!["a", "b", "c"]);
        assert_eq!(c.get_password("secret").unwrap().value(), "s3");
        assert_eq!(
            format!("{:?}", c.get_password("secret").unwrap()),
            "[hidden]"
        );
    }

    #[test]
    fn every_error_names_its_option() {
        let err = def()
            .parse(&props(&[("mode", "incremental"), ("batch", "0")]))
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("option 'topic' is required"), "{text}");
        assert!(
            text.contains("option 'mode' must be one of bulk, incrementing (got 'incremental')"),
            "{text}"
        );
        assert!(
            text.contains("option 'batch' must be at least 1 (got 0)"),
            "{text}"
        );
    }

    #[test]
    fn int_range_and_booleans_are_checked() {
        let d = ConfigDef::new()
            .define(ConfigKey::new("n", ConfigType::Int, Importance::Low, "N."))
            .define(ConfigKey::new(
                "b",
                ConfigType::Boolean,
                Importance::Low,
                "B.",
            ));
        let err = d
            .parse(&props(&[("n", "99999999999"), ("b", "yes")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("option 'n' must be between"), "{err}");
        assert!(
            err.contains("option 'b' must be true or false (got 'yes')"),
            "{err}"
        );
    }

    #[test]
    fn unknown_options_are_reported() {
        let errors = def().unknown_options(&props(&[("topic", "t"), ("topik", "x")]), |_| false);
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].option, "topik");
    }

    #[test]
    fn env_references_resolve() {
        std::env::set_var("SLUICE_SDK_TEST_KEY", "abc");
        assert_eq!(
            resolve_env_references("api.key", "k=${env:SLUICE_SDK_TEST_KEY}!").unwrap(),
            "k=abc!"
        );
        assert_eq!(
            resolve_env_references("api.key", "${env:SLUICE_SDK_UNSET_VAR:-demo}").unwrap(),
            "demo"
        );
        let err = resolve_env_references("api.key", "${env:SLUICE_SDK_UNSET_VAR}")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("option 'api.key'") && err.contains("SLUICE_SDK_UNSET_VAR"),
            "{err}"
        );
    }
}
