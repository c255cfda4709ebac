//! Schema texts: parsing and validation per schema type, the normalized form identical schemas
//! are recognised by, and the compatibility levels with their checks.

use std::fmt;
use std::str::FromStr;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema as AvroSchema;

/// The Avro schema type (the default when a request names none).
pub const AVRO: &str = "AVRO";
/// The JSON Schema type.
pub const JSON: &str = "JSON";
/// The Protobuf schema type (not supported here).
pub const PROTOBUF: &str = "PROTOBUF";
/// The schema types this registry accepts, as `/schemas/types` lists them.
pub const SUPPORTED_TYPES: [&str; 2] = [JSON, AVRO];

/// A schema parsed and checked for its type.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    /// `AVRO` or `JSON`.
    pub schema_type: &'static str,
    /// The schema JSON, compact and with sorted object keys: two texts that differ only in
    /// layout or key order are the same schema (and get the same id).
    pub normalized: String,
    /// The Avro schema, for Avro.
    pub avro: Option<AvroSchema>,
    /// The Avro schema without logical types, which compatibility is checked on: as in Avro's
    /// Java implementation (and so Confluent's registry), logical types do not take part, and
    /// the Rust implementation cannot check them (a decimal is "inconclusive").
    pub physical: Option<AvroSchema>,
}

/// `json` without its `logicalType` attributes.
fn without_logical_types(json: &serde_json::Value) -> serde_json::Value {
    match json {
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.iter()
                .filter(|(k, _)| k.as_str() != "logicalType")
                .map(|(k, v)| (k.clone(), without_logical_types(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(without_logical_types).collect())
        }
        other => other.clone(),
    }
}

fn parse_avro(json: &serde_json::Value, references: &[String]) -> Result<AvroSchema, String> {
    if references.is_empty() {
        return AvroSchema::parse(json).map_err(|e| e.to_string());
    }
    let mut all: Vec<String> = references.to_vec();
    all.push(json.to_string());
    AvroSchema::parse_list(all)
        .map(|mut list| list.pop().expect("parsed the schema"))
        .map_err(|e| e.to_string())
}

/// Parses `text` as a schema of `schema_type` (`None`: Avro); `references` are the texts of
/// the schemas it names (Avro named types defined elsewhere).
///
/// # Errors
/// Why the schema is invalid (the registry answers 42201 with it).
pub fn parse_schema(
    schema_type: Option<&str>,
    text: &str,
    references: &[String],
) -> Result<ParsedSchema, String> {
    let ty = match schema_type.map(str::trim).filter(|t| !t.is_empty()) {
        None => AVRO,
        Some(t) if t.eq_ignore_ascii_case(AVRO) => AVRO,
        Some(t) if t.eq_ignore_ascii_case(JSON) => JSON,
        Some(t) if t.eq_ignore_ascii_case(PROTOBUF) => {
            return Err(
                "Protobuf schemas are not supported by this registry (AVRO and JSON are)".into(),
            )
        }
        Some(other) => return Err(format!("Invalid schema type {other}; use AVRO or JSON")),
    };
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| format!("Invalid schema {text}, details: not JSON: {e}"))?;
    let normalized = serde_json::to_string(&json).expect("JSON serializes");
    match ty {
        AVRO => {
            let avro = parse_avro(&json, references).map_err(|e| {
                format!("Invalid schema {text} with refs {references:?} of type AVRO, details: {e}")
            })?;
            let plain_refs: Vec<String> = references
                .iter()
                .map(|r| {
                    serde_json::from_str::<serde_json::Value>(r)
                        .map_or_else(|_| r.clone(), |j| without_logical_types(&j).to_string())
                })
                .collect();
            let physical = parse_avro(&without_logical_types(&json), &plain_refs).ok();
            Ok(ParsedSchema {
                schema_type: AVRO,
                normalized,
                avro: Some(avro),
                physical,
            })
        }
        _ => {
            if !(json.is_object() || json.is_boolean()) {
                return Err(format!(
                    "Invalid schema {text} of type JSON, details: a JSON Schema is an object or a boolean"
                ));
            }
            Ok(ParsedSchema {
                schema_type: JSON,
                normalized,
                avro: None,
                physical: None,
            })
        }
    }
}

/// Confluent's compatibility levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompatibilityLevel {
    /// No check.
    None,
    /// The new schema reads data written with the latest one.
    Backward,
    /// The new schema reads data written with every earlier one.
    BackwardTransitive,
    /// The latest schema reads data written with the new one.
    Forward,
    /// Every earlier schema reads data written with the new one.
    ForwardTransitive,
    /// Backward and forward against the latest.
    Full,
    /// Backward and forward against every earlier one.
    FullTransitive,
}

impl CompatibilityLevel {
    /// Every level, in Confluent's spelling.
    pub const ALL: [Self; 7] = [
        Self::None,
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
    ];

    /// Confluent's name of the level.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "NONE",
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Why `new` may not follow `previous` (oldest first, each with its version) under this
    /// level; empty when it may. Only Avro schemas are checked; JSON Schemas are accepted.
    pub fn check(self, new: &ParsedSchema, previous: &[(i32, &ParsedSchema)]) -> Vec<String> {
        let Some(new_avro) = &new.physical else {
            return Vec::new();
        };
        let against: &[(i32, &ParsedSchema)] = if self.transitive() {
            previous
        } else {
            previous.last().map_or(&[], std::slice::from_ref)
        };
        let mut messages = Vec::new();
        for (version, old) in against.iter().rev() {
            let Some(old_avro) = &old.physical else {
                continue;
            };
            let mut problems = Vec::new();
            if self.backward() {
                if let Err(e) = SchemaCompatibility::can_read(old_avro, new_avro) {
                    problems.push(format!(
                        "{{errorType:'READER_INCOMPATIBLE', description:'The new schema cannot read data written with the old one: {e}'}}"
                    ));
                }
            }
            if self.forward() {
                if let Err(e) = SchemaCompatibility::can_read(new_avro, old_avro) {
                    problems.push(format!(
                        "{{errorType:'WRITER_INCOMPATIBLE', description:'The old schema cannot read data written with the new one: {e}'}}"
                    ));
                }
            }
            if !problems.is_empty() {
                messages.extend(problems);
                messages.push(format!("{{oldSchemaVersion: {version}}}"));
                messages.push(format!("{{oldSchema: '{}'}}", old.normalized));
                messages.push(format!("{{compatibility: '{}'}}", self.name()));
            }
        }
        messages
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CompatibilityLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive (got '{s}')"
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avro(text: &str) -> ParsedSchema {
        parse_schema(None, text, &[]).unwrap()
    }

    const V1: &str = r#"{"type":"record","name":"r","fields":[{"name":"a","type":"int"}]}"#;
    /// Adds a field with a default: backward and forward compatible.
    const ADD_DEFAULT: &str = r#"{"type":"record","name":"r","fields":[{"name":"a","type":"int"},{"name":"b","type":["null","string"],"default":null}]}"#;
    /// Adds a field without a default: forward only (new readers cannot fill it from old data).
    const ADD_REQUIRED: &str = r#"{"type":"record","name":"r","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#;
    /// Removes a field without default: backward only (old readers miss it).
    const REMOVE: &str = r#"{"type":"record","name":"r","fields":[]}"#;

    #[test]
    fn levels_accept_and_refuse_as_confluent_documents() {
        let v1 = avro(V1);
        let prev = [(1, &v1)];
        let ok = |level: CompatibilityLevel, text: &str| level.check(&avro(text), &prev).is_empty();
        use CompatibilityLevel::*;
        assert!(ok(Backward, ADD_DEFAULT) && ok(Forward, ADD_DEFAULT) && ok(Full, ADD_DEFAULT));
        assert!(
            !ok(Backward, ADD_REQUIRED) && ok(Forward, ADD_REQUIRED) && !ok(Full, ADD_REQUIRED)
        );
        assert!(ok(Backward, REMOVE) && !ok(Forward, REMOVE) && !ok(Full, REMOVE));
        assert!(ok(None, ADD_REQUIRED) && ok(None, REMOVE));
    }

    #[test]
    fn transitive_levels_check_every_version() {
        use CompatibilityLevel::*;
        // v1 {a}, v2 {} (backward ok), v3 {b required}: backward vs v2 ok? v3 reads v2 data:
        // b missing without default -> refused either way; use a default-carrying v3 instead.
        let v1 = avro(V1);
        let v2 = avro(REMOVE);
        let v3 = avro(
            r#"{"type":"record","name":"r","fields":[{"name":"a","type":"string","default":"x"}]}"#,
        );
        let prev = [(1, &v1), (2, &v2)];
        assert!(Backward.check(&v3, &prev).is_empty());
        let msgs = BackwardTransitive.check(&v3, &prev);
        assert!(
            msgs.iter().any(|m| m.contains("oldSchemaVersion: 1")),
            "{msgs:?}"
        );
    }

    #[test]
    fn logical_types_do_not_make_equal_schemas_incompatible() {
        let v1 = avro(
            r#"{"type":"record","name":"r","fields":[{"name":"p","type":{"type":"bytes","logicalType":"decimal","precision":14,"scale":4}},{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#,
        );
        let v2 = avro(
            r#"{"type":"record","name":"r","fields":[{"name":"p","type":{"type":"bytes","logicalType":"decimal","precision":14,"scale":4}},{"name":"t","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"n","type":["null","string"],"default":null}]}"#,
        );
        for level in CompatibilityLevel::ALL {
            assert!(level.check(&v2, &[(1, &v1)]).is_empty(), "{level}");
        }
    }

    #[test]
    fn bad_schemas_and_levels_are_named() {
        assert!(parse_schema(None, "{", &[])
            .unwrap_err()
            .contains("not JSON"));
        assert!(parse_schema(None, r#"{"type":"nope"}"#, &[]).is_err());
        assert!(parse_schema(Some("PROTOBUF"), "syntax", &[]).is_err());
        assert!(parse_schema(Some("JSON"), r#"{"type":"object"}"#, &[]).is_ok());
        assert!("SIDEWAYS".parse::<CompatibilityLevel>().is_err());
        assert_eq!(
            "full_transitive".parse(),
            Ok(CompatibilityLevel::FullTransitive)
        );
        assert_eq!(avro(" \"string\" ").normalized, r#""string""#);
    }
}
