//! The records of the `_schemas` topic, in Confluent Schema Registry's JSON formats, so that a
//! Confluent registry and sluice's read each other's topic.
//!
//! | key | value |
//! |---|---|
//! | `{"keytype":"SCHEMA","subject":s,"version":v,"magic":1}` | `{"subject","version","id","schemaType","references","schema","deleted"}`, null when permanently deleted |
//! | `{"keytype":"CONFIG","subject":s,"magic":0}` (no subject: global) | `{"compatibilityLevel": ...}` |
//! | `{"keytype":"MODE","subject":s,"magic":0}` (no subject: global) | `{"mode": ...}` |
//! | `{"keytype":"DELETE_SUBJECT","subject":s,"magic":0}` | `{"subject": s, "version": last deleted}` |
//! | `{"keytype":"NOOP","magic":0}` | none |

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `keytype` of a schema version record.
pub const KEY_SCHEMA: &str = "SCHEMA";
/// `keytype` of a compatibility record.
pub const KEY_CONFIG: &str = "CONFIG";
/// `keytype` of a mode record.
pub const KEY_MODE: &str = "MODE";
/// `keytype` of a soft subject deletion.
pub const KEY_DELETE_SUBJECT: &str = "DELETE_SUBJECT";
/// `keytype` of the no-op record.
pub const KEY_NOOP: &str = "NOOP";

/// The key of a `_schemas` record. Serialized in Confluent's property order
/// (`keytype`, `subject`, `version`, `magic`), without absent fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordKey {
    /// `SCHEMA`, `CONFIG`, `MODE`, `DELETE_SUBJECT`, `NOOP`, ...
    pub keytype: String,
    /// The subject (absent for the global CONFIG and MODE records).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The version (SCHEMA records only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
    /// 1 for SCHEMA keys, 0 for the others.
    #[serde(default)]
    pub magic: i32,
}

impl RecordKey {
    /// The key of `subject`'s `version`.
    pub fn schema(subject: &str, version: i32) -> Self {
        Self {
            keytype: KEY_SCHEMA.into(),
            subject: Some(subject.into()),
            version: Some(version),
            magic: 1,
        }
    }

    /// A CONFIG, MODE or DELETE_SUBJECT key (`None`: the global one).
    pub fn of(keytype: &str, subject: Option<&str>) -> Self {
        Self {
            keytype: keytype.into(),
            subject: subject.map(Into::into),
            version: None,
            magic: 0,
        }
    }
}

/// A schema reference (Confluent's `SchemaReference`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaReference {
    /// The name the referencing schema uses.
    pub name: String,
    /// The subject of the referenced schema.
    pub subject: String,
    /// Its version.
    pub version: i32,
}

/// The value of a SCHEMA record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SchemaValue {
    /// The subject.
    pub subject: String,
    /// The version in the subject.
    pub version: i32,
    /// The global schema id.
    pub id: i32,
    /// `AVRO` (the default when absent), `JSON` or `PROTOBUF`.
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub schema_type: Option<String>,
    /// Referenced schemas.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
    /// The schema text.
    pub schema: String,
    /// Soft-deleted.
    #[serde(default)]
    pub deleted: bool,
}

/// The value of a CONFIG record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigValue {
    /// The subject (absent for the global one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The compatibility level.
    #[serde(rename = "compatibilityLevel", default)]
    pub compatibility_level: Option<String>,
}

/// The value of a MODE record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeValue {
    /// The subject (absent for the global one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `READWRITE`, `READONLY`, `READONLY_OVERRIDE` or `IMPORT`.
    pub mode: String,
}

/// The value of a DELETE_SUBJECT record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeleteSubjectValue {
    /// The subject.
    pub subject: String,
    /// Versions up to and including this one are deleted.
    pub version: i32,
}

/// Encodes a key or value as Confluent writes it.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records serialize")
}

/// A `_schemas` key, or `None` for one that is not JSON of this shape.
pub fn parse_key(bytes: &[u8]) -> Option<RecordKey> {
    serde_json::from_slice::<RecordKey>(bytes).ok()
}

/// A value of type `T`, or `None` for an unreadable one.
pub fn parse_value<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    let json: Value = serde_json::from_slice(bytes).ok()?;
    serde_json::from_value(json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_written_in_confluents_order_and_shape() {
        assert_eq!(
            String::from_utf8(to_json(&RecordKey::schema("orders-value", 3))).unwrap(),
            r#"{"keytype":"SCHEMA","subject":"orders-value","version":3,"magic":1}"#
        );
        assert_eq!(
            String::from_utf8(to_json(&RecordKey::of(KEY_CONFIG, None))).unwrap(),
            r#"{"keytype":"CONFIG","magic":0}"#
        );
        assert_eq!(
            String::from_utf8(to_json(&RecordKey::of(KEY_DELETE_SUBJECT, Some("s")))).unwrap(),
            r#"{"keytype":"DELETE_SUBJECT","subject":"s","magic":0}"#
        );
        // Confluent's older registries write the global subject as an explicit null.
        let key = parse_key(br#"{"keytype":"CONFIG","subject":null,"magic":0}"#).unwrap();
        assert_eq!(key, RecordKey::of(KEY_CONFIG, None));
    }

    #[test]
    fn a_confluent_schema_value_reads() {
        let v: SchemaValue = parse_value(
            br#"{"subject":"t-value","version":1,"id":21,"schema":"\"string\"","deleted":false,"md5":"x"}"#,
        )
        .unwrap();
        assert_eq!(v.id, 21);
        assert_eq!(v.schema_type, None);
        let written = String::from_utf8(to_json(&v)).unwrap();
        assert_eq!(
            written,
            r#"{"subject":"t-value","version":1,"id":21,"schema":"\"string\"","deleted":false}"#
        );
    }
}
