//! Converters between Connect data and Kafka bytes: JSON, string, byte array and Confluent's
//! Avro ([`avro`], with the Connect <-> Avro mapping in [`avro_data`]), named by
//! short names or by Kafka Connect's class names, with Kafka Connect's behaviour; and the
//! converters of plugin libraries, registered by class name ([`register_converter`]) and named
//! the same way.

pub mod avro;
pub mod avro_data;

use std::sync::{Arc, LazyLock, RwLock};

pub use avro::{AvroConverter, AVRO_CONVERTER, DEFAULT_REGISTRY_URL};

use sluice_sdk::json::{
    schema_from_json, schema_to_json, value_from_json, value_to_json, write_value_json,
    DecimalFormat,
};
use sluice_sdk::{ConfigErrors, Props, Schema, SchemaRef, SchemaType, Value};

/// Kafka Connect's JSON converter class.
pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
/// Kafka Connect's string converter class.
pub const STRING_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";
/// Kafka Connect's byte array converter class.
pub const BYTE_ARRAY_CONVERTER: &str = "org.apache.kafka.connect.converters.ByteArrayConverter";

/// Kafka Connect's class name for a converter named by short or class name.
pub fn class_name(name: &str) -> &str {
    match name.trim() {
        "json" => JSON_CONVERTER,
        "string" => STRING_CONVERTER,
        "bytearray" | "bytes" => BYTE_ARRAY_CONVERTER,
        "avro" => AVRO_CONVERTER,
        other => other,
    }
}

pub use sluice_sdk::convert::{Converter, ConverterPlugin};

/// The built-in converters' class names, each with its short names.
pub const BUILTIN_CONVERTERS: [(&str, &[&str]); 4] = [
    (JSON_CONVERTER, &["json"]),
    (STRING_CONVERTER, &["string"]),
    (BYTE_ARRAY_CONVERTER, &["bytearray", "bytes"]),
    (AVRO_CONVERTER, &["avro"]),
];

static PLUGIN_CONVERTERS: LazyLock<RwLock<Vec<ConverterPlugin>>> =
    LazyLock::new(|| RwLock::new(Vec::new()));

/// The converter classes registered by plugin libraries, in registration order.
pub fn plugin_converters() -> Vec<ConverterPlugin> {
    PLUGIN_CONVERTERS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// The registered converter class called `name` (class name or alias).
pub fn find_plugin_converter(name: &str) -> Option<ConverterPlugin> {
    let name = name.trim();
    PLUGIN_CONVERTERS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .find(|p| p.answers_to(name))
        .cloned()
}

/// The first of `names` a built-in or registered converter already answers to.
pub fn taken_converter_name<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names.into_iter().find(|n| {
        BUILTIN_CONVERTERS
            .iter()
            .any(|(class, short)| class == n || short.contains(n))
            || find_plugin_converter(n).is_some()
    })
}

/// A converter class registered twice.
#[derive(Debug, thiserror::Error)]
#[error("a converter called '{0}' is already registered")]
pub struct DuplicateConverter(pub String);

/// Adds a plugin's converter class, usable by `key.converter` / `value.converter`.
///
/// # Errors
/// [`DuplicateConverter`] when its class or an alias is a built-in's or already registered.
pub fn register_converter(plugin: ConverterPlugin) -> Result<(), DuplicateConverter> {
    let names =
        std::iter::once(plugin.class.as_str()).chain(plugin.aliases.iter().map(String::as_str));
    if let Some(name) = taken_converter_name(names) {
        return Err(DuplicateConverter(name.to_string()));
    }
    PLUGIN_CONVERTERS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(plugin);
    Ok(())
}

/// A plugin converter built from its sub-options, every error named with `prefix`.
fn build_plugin_converter(
    plugin: &ConverterPlugin,
    role: ConverterRole,
    prefix: &str,
    sub: &[(&str, &str)],
    errors: &mut ConfigErrors,
) -> Option<Arc<dyn Converter>> {
    let before = errors.0.len();
    let own: Props = sub
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    for k in own.keys() {
        if plugin.config_def.key(k).is_none() {
            let known: Vec<&str> = plugin
                .config_def
                .keys()
                .iter()
                .map(|k| k.name.as_str())
                .collect();
            errors.push(
                format!("{prefix}{k}"),
                format!(
                    "is not an option of the converter {}; its options are: {}",
                    plugin.class,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            );
        }
    }
    let (config, parse_errors) = plugin.config_def.parse_lenient(&own);
    for e in parse_errors.0 {
        errors.push(format!("{prefix}{}", e.option), e.message);
    }
    if errors.0.len() != before {
        return None;
    }
    match (plugin.factory)(&config, role == ConverterRole::Key) {
        Ok(c) => Some(Arc::from(c)),
        Err(found) => {
            for e in found.0 {
                errors.push(format!("{prefix}{}", e.option), e.message);
            }
            None
        }
    }
}

/// Whether a converter serves keys or values (selects the `key.converter`/`value.converter`
/// options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConverterRole {
    /// Record keys.
    Key,
    /// Record values.
    Value,
}

impl ConverterRole {
    /// `key.converter` or `value.converter`.
    pub fn option(self) -> &'static str {
        match self {
            Self::Key => "key.converter",
            Self::Value => "value.converter",
        }
    }
}

/// Builds the converter named by `key.converter`/`value.converter` in `props`, with its
/// sub-options (`value.converter.schemas.enable`, ...).
///
/// # Errors
/// Errors naming the option for an unknown converter or a bad or unknown sub-option.
pub fn build_converter(
    role: ConverterRole,
    props: &Props,
) -> Result<Arc<dyn Converter>, ConfigErrors> {
    let option = role.option();
    let mut errors = ConfigErrors::default();
    let class = props
        .get(option)
        .map(|s| s.trim())
        .unwrap_or(JSON_CONVERTER);
    let prefix = format!("{option}.");
    let sub: Vec<(&str, &str)> = props
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k, v.as_str())))
        .collect();
    let converter: Arc<dyn Converter> = match class {
        "json" | JSON_CONVERTER => {
            let mut json = JsonConverter::default();
            for (k, v) in sub {
                let full = format!("{prefix}{k}");
                match k {
                    "schemas.enable" => match v.trim().to_ascii_lowercase().as_str() {
                        "true" => json.schemas_enable = true,
                        "false" => json.schemas_enable = false,
                        _ => errors.push(full, format!("must be true or false (got '{v}')")),
                    },
                    "decimal.format" => match v.trim().to_ascii_uppercase().as_str() {
                        "BASE64" => json.decimal_format = DecimalFormat::Base64,
                        "NUMERIC" => json.decimal_format = DecimalFormat::Numeric,
                        _ => errors.push(full, format!("must be BASE64 or NUMERIC (got '{v}')")),
                    },
                    // Accepted for compatibility; sluice keeps no schema cache to size and
                    // always writes defaults for null optional fields that have one.
                    "schemas.cache.size" | "replace.null.with.default" => {}
                    _ => errors.push(
                        full,
                        "is not an option of the JSON converter (it has schemas.enable, decimal.format, schemas.cache.size, replace.null.with.default)",
                    ),
                }
            }
            Arc::new(json)
        }
        "string" | STRING_CONVERTER => {
            for (k, v) in sub {
                let full = format!("{prefix}{k}");
                match k {
                    "encoding"
                        if v.trim().eq_ignore_ascii_case("UTF-8")
                            || v.trim().eq_ignore_ascii_case("UTF8") => {}
                    "encoding" => errors.push(full, format!("only UTF-8 is supported (got '{v}')")),
                    _ => errors.push(
                        full,
                        "is not an option of the string converter (it has encoding)",
                    ),
                }
            }
            Arc::new(StringConverter::default())
        }
        "bytearray" | "bytes" | BYTE_ARRAY_CONVERTER => {
            for (k, _) in sub {
                errors.push(
                    format!("{prefix}{k}"),
                    "the byte array converter has no options",
                );
            }
            Arc::new(ByteArrayConverter::default())
        }
        "avro" | AVRO_CONVERTER => {
            match AvroConverter::from_options(role == ConverterRole::Key, &prefix, &sub) {
                Ok(c) => Arc::new(c),
                Err(found) => {
                    errors.0.extend(found.0);
                    Arc::new(ByteArrayConverter::default())
                }
            }
        }
        other => match find_plugin_converter(other) {
            Some(plugin) => build_plugin_converter(&plugin, role, &prefix, &sub, &mut errors)
                .unwrap_or_else(|| Arc::new(ByteArrayConverter::default())),
            None => {
                let plugins: String = plugin_converters()
                    .iter()
                    .map(|p| format!(", {}", p.class))
                    .collect();
                errors.push(
                    option,
                    format!(
                        "names an unknown converter '{other}'; use json, string, bytearray or avro (or {JSON_CONVERTER}, {STRING_CONVERTER}, {BYTE_ARRAY_CONVERTER}, {AVRO_CONVERTER}{plugins})"
                    ),
                );
                Arc::new(ByteArrayConverter::default())
            }
        },
    };
    if errors.is_empty() {
        Ok(converter)
    } else {
        Err(errors)
    }
}

/// Kafka Connect's `JsonConverter`.
#[derive(Debug, Clone)]
pub struct JsonConverter {
    /// Write and expect the `{"schema": ..., "payload": ...}` envelope.
    pub schemas_enable: bool,
    /// How Decimals are written.
    pub decimal_format: DecimalFormat,
    /// Records of one source share few schemas: their JSON (and, reading, their parsed form)
    /// is kept instead of being rebuilt for every record.
    cache: Arc<std::sync::Mutex<SchemaCache>>,
    /// The length of the last record written: records of one source are alike, so the next
    /// one's buffer is allocated once at about the right size.
    last_len: Arc<std::sync::atomic::AtomicUsize>,
}

/// Most distinct schemas remembered by a converter.
const SCHEMA_CACHE_SIZE: usize = 16;

#[derive(Debug, Default)]
struct SchemaCache {
    /// Schema -> its envelope JSON text, most recent last.
    written: Vec<(Schema, Arc<[u8]>)>,
    /// Envelope schema JSON -> parsed schema, most recent last.
    read: Vec<(serde_json::Value, SchemaRef)>,
}

impl SchemaCache {
    fn json_of(&mut self, schema: &Schema) -> Arc<[u8]> {
        if let Some(pos) = self.written.iter().rposition(|(s, _)| s == schema) {
            return self.written[pos].1.clone();
        }
        let text: Arc<[u8]> = serde_json::to_vec(&schema_to_json(schema))
            .unwrap_or_default()
            .into();
        if self.written.len() == SCHEMA_CACHE_SIZE {
            self.written.remove(0);
        }
        self.written.push((schema.clone(), text.clone()));
        text
    }

    fn schema_of(&mut self, json: &serde_json::Value) -> Result<SchemaRef, String> {
        if let Some(pos) = self.read.iter().rposition(|(j, _)| j == json) {
            return Ok(self.read[pos].1.clone());
        }
        let schema = Arc::new(schema_from_json(json)?);
        if self.read.len() == SCHEMA_CACHE_SIZE {
            self.read.remove(0);
        }
        self.read.push((json.clone(), schema.clone()));
        Ok(schema)
    }
}

impl Default for JsonConverter {
    fn default() -> Self {
        Self {
            schemas_enable: true,
            decimal_format: DecimalFormat::Base64,
            cache: Arc::default(),
            last_len: Arc::default(),
        }
    }
}

impl Converter for JsonConverter {
    fn encode(&self, schema: Option<&Schema>, value: &Value) -> Result<Option<Vec<u8>>, String> {
        use std::sync::atomic::Ordering;
        // As Kafka Connect: only a null value without a schema is a Kafka null (a tombstone).
        if schema.is_none() && value.is_null() {
            return Ok(None);
        }
        // The payload is written straight into the record's bytes (no JSON tree), after the
        // schema's cached JSON when there is an envelope: the same text as before, byte for
        // byte (see `write_value_json`).
        let mut out = Vec::with_capacity(self.last_len.load(Ordering::Relaxed) + 16);
        if self.schemas_enable {
            let schema_json: Arc<[u8]> = match schema {
                Some(s) => self.cache.lock().expect("schema cache").json_of(s),
                None => Arc::from(&b"null"[..]),
            };
            out.reserve(schema_json.len() + 24);
            out.extend_from_slice(b"{\"schema\":");
            out.extend_from_slice(&schema_json);
            out.extend_from_slice(b",\"payload\":");
            write_value_json(&mut out, schema, value, self.decimal_format)?;
            out.push(b'}');
        } else {
            write_value_json(&mut out, schema, value, self.decimal_format)?;
        }
        self.last_len.store(out.len(), Ordering::Relaxed);
        Ok(Some(out))
    }

    fn decode(&self, bytes: Option<&[u8]>) -> Result<(Option<SchemaRef>, Value), String> {
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        let json: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
            )
        })?;
        if !self.schemas_enable {
            return Ok((None, value_from_json(None, &json)?));
        }
        let envelope = json
            .as_object()
            .filter(|o| o.len() == 2 && o.contains_key("schema") && o.contains_key("payload"));
        let Some(envelope) = envelope else {
            return Err("JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.".to_string());
        };
        let schema = match &envelope["schema"] {
            serde_json::Value::Null => None,
            s => Some(self.cache.lock().expect("schema cache").schema_of(s)?),
        };
        let value = value_from_json(schema.as_deref(), &envelope["payload"])?;
        Ok((schema, value))
    }
}

/// Kafka Connect's `StringConverter` (UTF-8).
#[derive(Debug, Clone)]
pub struct StringConverter {
    schema: SchemaRef,
}

impl Default for StringConverter {
    fn default() -> Self {
        Self {
            schema: Arc::new(Schema::string().optional()),
        }
    }
}

impl Converter for StringConverter {
    fn encode(&self, _schema: Option<&Schema>, value: &Value) -> Result<Option<Vec<u8>>, String> {
        Ok(match value {
            Value::Null => None,
            Value::String(s) => Some(s.as_bytes().to_vec()),
            Value::Bytes(b) => Some(b.clone()),
            other => Some(
                value_to_json(None, other, DecimalFormat::Numeric)?
                    .to_string()
                    .into_bytes(),
            ),
        })
    }

    fn decode(&self, bytes: Option<&[u8]>) -> Result<(Option<SchemaRef>, Value), String> {
        let schema = Some(self.schema.clone());
        Ok(match bytes {
            None => (schema, Value::Null),
            Some(b) => (schema, Value::String(utf8_lossy(b))),
        })
    }
}

/// `bytes` as text, invalid UTF-8 replaced. Valid text (nearly always) takes the fast check
/// of `str::from_utf8` instead of the chunk-by-chunk walk of `String::from_utf8_lossy`.
fn utf8_lossy(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Kafka Connect's `ByteArrayConverter`: bytes pass through untouched.
#[derive(Debug, Clone)]
pub struct ByteArrayConverter {
    schema: SchemaRef,
}

impl Default for ByteArrayConverter {
    fn default() -> Self {
        Self {
            schema: Arc::new(Schema::bytes().optional()),
        }
    }
}

impl Converter for ByteArrayConverter {
    fn encode(&self, schema: Option<&Schema>, value: &Value) -> Result<Option<Vec<u8>>, String> {
        if let Some(s) = schema {
            if s.ty != SchemaType::Bytes {
                return Err(format!(
                    "Invalid schema type for ByteArrayConverter: {}",
                    s.ty.name()
                ));
            }
        }
        match value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            other => Err(format!(
                "ByteArrayConverter is not compatible with objects of type {}",
                other.type_name()
            )),
        }
    }

    fn decode(&self, bytes: Option<&[u8]>) -> Result<(Option<SchemaRef>, Value), String> {
        let schema = Some(self.schema.clone());
        Ok((
            schema,
            bytes.map_or(Value::Null, |b| Value::Bytes(b.to_vec())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_sdk::{Field, Struct};

    use sluice_sdk::config::props;
    use sluice_sdk::{ConfigDef, ConfigKey, ConfigType, Importance};

    /// Text with a configured prefix; keys get `k:` too.
    #[derive(Debug)]
    struct Prefixed(String, bool);

    impl Converter for Prefixed {
        fn encode(&self, _: Option<&Schema>, value: &Value) -> Result<Option<Vec<u8>>, String> {
            let key = if self.1 { "k:" } else { "" };
            let text = value.as_str().ok_or("text only")?;
            Ok(Some(format!("{key}{}{text}", self.0).into_bytes()))
        }

        fn decode(&self, bytes: Option<&[u8]>) -> Result<(Option<SchemaRef>, Value), String> {
            Ok((
                None,
                Value::from(String::from_utf8_lossy(bytes.unwrap_or_default()).as_ref()),
            ))
        }
    }

    #[test]
    fn a_registered_converter_is_built_by_class_or_alias_with_its_options() {
        let plugin = ConverterPlugin::new(
            "com.example.PrefixedConverter",
            "Prefixed text.",
            ConfigDef::new().define(
                ConfigKey::new("prefix", ConfigType::String, Importance::High, "Prefix.")
                    .default_value(">"),
            ),
            |config, is_key| {
                Ok(Box::new(Prefixed(
                    config.get_str("prefix").unwrap_or_default().to_string(),
                    is_key,
                )))
            },
        )
        .aliases(["prefixed"]);
        register_converter(plugin.clone()).unwrap();
        assert!(register_converter(plugin).is_err(), "registered twice");
        let builtin_name = ConverterPlugin::new("json", "", ConfigDef::new(), |_, _| {
            Ok(Box::new(StringConverter::default()))
        });
        assert_eq!(
            register_converter(builtin_name).unwrap_err().to_string(),
            "a converter called 'json' is already registered"
        );

        let key = build_converter(
            ConverterRole::Key,
            &props(&[("key.converter", "prefixed"), ("key.converter.prefix", "#")]),
        )
        .unwrap();
        assert_eq!(
            key.encode(None, &Value::from("a")).unwrap(),
            Some(b"k:#a".to_vec())
        );
        let value = build_converter(
            ConverterRole::Value,
            &props(&[("value.converter", "com.example.PrefixedConverter")]),
        )
        .unwrap();
        assert_eq!(
            value.encode(None, &Value::from("a")).unwrap(),
            Some(b">a".to_vec())
        );
        let err = build_converter(
            ConverterRole::Value,
            &props(&[
                ("value.converter", "prefixed"),
                ("value.converter.prefx", "#"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("option 'value.converter.prefx' is not an option of the converter com.example.PrefixedConverter; its options are: prefix"),
            "{err}"
        );
        let err = build_converter(ConverterRole::Value, &props(&[("value.converter", "nope")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("com.example.PrefixedConverter)"), "{err}");
    }

    #[test]
    fn json_envelope_matches_kafka_connect() {
        let c = build_converter(ConverterRole::Value, &props(&[])).unwrap();
        let schema = Schema::struct_of(vec![Field::new("id", Schema::int32())]);
        let value = Value::Struct(Struct::new().with("id", 1));
        let bytes = c.encode(Some(&schema), &value).unwrap().unwrap();
        let written: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            written,
            serde_json::json!({
                "schema": {"type": "struct", "optional": false,
                           "fields": [{"field": "id", "type": "int32", "optional": false}]},
                "payload": {"id": 1}
            })
        );
        let (s, v) = c.decode(Some(&bytes)).unwrap();
        assert_eq!(s.as_deref(), Some(&schema));
        assert_eq!(v, value);
    }

    #[test]
    fn cached_schemas_never_mix_up() {
        let c = build_converter(ConverterRole::Value, &props(&[])).unwrap();
        let a = Schema::struct_of(vec![Field::new("id", Schema::int32())]);
        let b = Schema::struct_of(vec![Field::new("id", Schema::int64())]).named("b");
        for _ in 0..3 {
            for (schema, value) in [(&a, Value::Int32(1)), (&b, Value::Int64(2))] {
                let v = Value::Struct(Struct::new().with("id", value));
                let bytes = c.encode(Some(schema), &v).unwrap().unwrap();
                let (s, back) = c.decode(Some(&bytes)).unwrap();
                assert_eq!(s.as_deref(), Some(schema));
                assert_eq!(back, v);
            }
        }
    }

    #[test]
    fn json_without_schemas_reads_plain_json_and_rejects_envelopes_otherwise() {
        let plain = build_converter(
            ConverterRole::Value,
            &props(&[
                ("value.converter", "json"),
                ("value.converter.schemas.enable", "false"),
            ]),
        )
        .unwrap();
        let (s, v) = plain.decode(Some(br#"{"a":1}"#)).unwrap();
        assert!(s.is_none());
        assert_eq!(v, Value::Map(vec![(Value::from("a"), Value::Int64(1))]));

        let strict = build_converter(ConverterRole::Value, &props(&[])).unwrap();
        let err = strict.decode(Some(br#"{"a":1}"#)).unwrap_err();
        assert!(err.contains("set schemas.enable=false"), "{err}");
        let err = strict.decode(Some(b"not json")).unwrap_err();
        assert!(err.contains("serialization error"), "{err}");
    }

    #[test]
    fn tombstones_stay_null() {
        for name in ["json", "string", "bytearray"] {
            let c =
                build_converter(ConverterRole::Key, &props(&[("key.converter", name)])).unwrap();
            assert_eq!(c.encode(None, &Value::Null).unwrap(), None, "{name}");
            assert!(c.decode(None).unwrap().1.is_null(), "{name}");
        }
    }

    #[test]
    fn class_names_and_sub_options_are_checked() {
        assert!(build_converter(
            ConverterRole::Value,
            &props(&[("value.converter", STRING_CONVERTER)])
        )
        .is_ok());
        let err = build_converter(
            ConverterRole::Value,
            &props(&[
                ("value.converter", "protobuf"),
                ("value.converter.schemas.enabled", "x"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("option 'value.converter' names an unknown converter 'protobuf'"),
            "{err}"
        );
        let err = build_converter(
            ConverterRole::Value,
            &props(&[("value.converter.schemas.enabled", "false")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("option 'value.converter.schemas.enabled' is not an option"),
            "{err}"
        );
    }

    #[test]
    fn byte_array_refuses_other_types() {
        let err = ByteArrayConverter::default()
            .encode(None, &Value::from("x"))
            .unwrap_err();
        assert!(err.contains("not compatible"), "{err}");
        assert_eq!(
            StringConverter::default()
                .encode(None, &Value::Int64(5))
                .unwrap(),
            Some(b"5".to_vec())
        );
    }
}
