//! The registry's state, rebuilt by applying the `_schemas` records in log order. Every
//! registry reading the same topic computes the same state.

use std::collections::BTreeMap;

use tracing::warn;

use crate::records::{
    parse_key, parse_value, ConfigValue, DeleteSubjectValue, ModeValue, SchemaReference,
    SchemaValue, KEY_CONFIG, KEY_DELETE_SUBJECT, KEY_MODE, KEY_SCHEMA,
};
use crate::schema::{parse_schema, ParsedSchema};

/// A schema by id.
#[derive(Debug, Clone)]
pub struct StoredSchema {
    /// The schema text as registered.
    pub text: String,
    /// `AVRO` or `JSON` (as stored; `None` is Avro).
    pub schema_type: Option<String>,
    /// Its references.
    pub references: Vec<SchemaReference>,
    /// Parsed, when it parses (a schema written by another registry may not).
    pub parsed: Option<ParsedSchema>,
}

impl StoredSchema {
    /// The type's name (`AVRO` when unset).
    pub fn type_name(&self) -> &str {
        self.schema_type.as_deref().unwrap_or(crate::schema::AVRO)
    }

    /// The text used to recognise the same schema: normalized JSON when it parses.
    pub fn identity(&self) -> (&str, &str) {
        (
            self.type_name(),
            self.parsed
                .as_ref()
                .map_or(self.text.as_str(), |p| p.normalized.as_str()),
        )
    }
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionEntry {
    /// The schema id.
    pub id: i32,
    /// Soft-deleted.
    pub deleted: bool,
}

/// Everything the registry knows.
#[derive(Debug, Default)]
pub struct State {
    /// Schemas by id.
    pub schemas: BTreeMap<i32, StoredSchema>,
    /// Subject -> version -> entry.
    pub subjects: BTreeMap<String, BTreeMap<i32, VersionEntry>>,
    /// Compatibility levels (`None`: global).
    pub config: BTreeMap<Option<String>, String>,
    /// Modes (`None`: global).
    pub mode: BTreeMap<Option<String>, String>,
    /// Highest id ever seen (ids are never reused).
    pub max_id: i32,
}

impl State {
    /// Applies one `_schemas` record.
    pub fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        let Some(key) = parse_key(key) else {
            warn!(key = %String::from_utf8_lossy(key), "unreadable _schemas key skipped");
            return;
        };
        match key.keytype.as_str() {
            KEY_SCHEMA => {
                let (Some(subject), Some(version)) = (key.subject, key.version) else {
                    return;
                };
                match value.map(parse_value::<SchemaValue>) {
                    None => self.forget_version(&subject, version),
                    Some(None) => {
                        warn!(subject = %subject, version, "unreadable _schemas value skipped")
                    }
                    Some(Some(v)) => self.add_version(v),
                }
            }
            KEY_CONFIG => {
                let level = value
                    .and_then(parse_value::<ConfigValue>)
                    .and_then(|v| v.compatibility_level);
                match level {
                    Some(l) => self.config.insert(key.subject, l),
                    None => self.config.remove(&key.subject),
                };
            }
            KEY_MODE => match value.and_then(parse_value::<ModeValue>) {
                Some(v) => {
                    self.mode.insert(key.subject, v.mode);
                }
                None => {
                    self.mode.remove(&key.subject);
                }
            },
            KEY_DELETE_SUBJECT => {
                if let Some(v) = value.and_then(parse_value::<DeleteSubjectValue>) {
                    if let Some(versions) = self.subjects.get_mut(&v.subject) {
                        for (_, e) in versions.range_mut(..=v.version) {
                            e.deleted = true;
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn add_version(&mut self, v: SchemaValue) {
        let parsed = parse_schema(
            v.schema_type.as_deref(),
            &v.schema,
            &self.reference_texts(&v.references),
        )
        .ok();
        let stored = StoredSchema {
            text: v.schema,
            schema_type: v.schema_type,
            references: v.references,
            parsed,
        };
        if let Some(existing) = self.schemas.get(&v.id) {
            if existing.identity() != stored.identity() {
                // Two registries wrote the same id for different schemas at once: the first in
                // the log keeps it, and the writer of this one sees it did not land and retries.
                warn!(id = v.id, subject = %v.subject, "a second schema for one id skipped");
                return;
            }
        } else {
            self.schemas.insert(v.id, stored);
        }
        self.max_id = self.max_id.max(v.id);
        self.subjects.entry(v.subject).or_default().insert(
            v.version,
            VersionEntry {
                id: v.id,
                deleted: v.deleted,
            },
        );
    }

    fn forget_version(&mut self, subject: &str, version: i32) {
        let Some(versions) = self.subjects.get_mut(subject) else {
            return;
        };
        let Some(entry) = versions.remove(&version) else {
            return;
        };
        if versions.is_empty() {
            self.subjects.remove(subject);
        }
        let still_used = self
            .subjects
            .values()
            .any(|vs| vs.values().any(|e| e.id == entry.id));
        if !still_used {
            self.schemas.remove(&entry.id);
        }
    }

    /// The texts of `references` and of the schemas they reference in turn, each after the
    /// ones it names, once each (missing ones are skipped).
    pub fn reference_texts(&self, references: &[SchemaReference]) -> Vec<String> {
        let mut seen = Vec::new();
        let mut texts = Vec::new();
        self.collect_reference_texts(references, &mut seen, &mut texts);
        texts
    }

    fn collect_reference_texts<'a>(
        &'a self,
        references: &'a [SchemaReference],
        seen: &mut Vec<(&'a str, i32)>,
        texts: &mut Vec<String>,
    ) {
        for r in references {
            if seen.contains(&(r.subject.as_str(), r.version)) {
                continue;
            }
            seen.push((r.subject.as_str(), r.version));
            let Some(schema) = self
                .subjects
                .get(&r.subject)
                .and_then(|vs| vs.get(&r.version))
                .and_then(|e| self.schemas.get(&e.id))
            else {
                continue;
            };
            self.collect_reference_texts(&schema.references, seen, texts);
            texts.push(schema.text.clone());
        }
    }

    /// The versions of `subject` (soft-deleted ones too when `deleted`), in order.
    pub fn versions(&self, subject: &str, deleted: bool) -> Vec<(i32, VersionEntry)> {
        self.subjects
            .get(subject)
            .map(|vs| {
                vs.iter()
                    .filter(|(_, e)| deleted || !e.deleted)
                    .map(|(v, e)| (*v, *e))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The id of a schema with this identity, if any subject holds it.
    pub fn id_of(&self, schema_type: &str, normalized: &str) -> Option<i32> {
        self.schemas
            .iter()
            .find(|(_, s)| s.identity() == (schema_type, normalized))
            .map(|(id, _)| *id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{to_json, RecordKey};

    fn schema_record(subject: &str, version: i32, id: i32, schema: &str) -> (Vec<u8>, Vec<u8>) {
        (
            to_json(&RecordKey::schema(subject, version)),
            to_json(&SchemaValue {
                subject: subject.into(),
                version,
                id,
                schema_type: None,
                references: vec![],
                schema: schema.into(),
                deleted: false,
            }),
        )
    }

    #[test]
    fn first_writer_of_an_id_wins_and_tombstones_forget() {
        let mut state = State::default();
        let (k, v) = schema_record("a", 1, 1, r#""string""#);
        state.apply(&k, Some(&v));
        let (k2, v2) = schema_record("b", 1, 1, r#""int""#);
        state.apply(&k2, Some(&v2));
        assert_eq!(state.schemas[&1].text, r#""string""#);
        assert!(!state.subjects.contains_key("b"));
        let del = to_json(&DeleteSubjectValue {
            subject: "a".into(),
            version: 1,
        });
        state.apply(
            &to_json(&RecordKey::of(KEY_DELETE_SUBJECT, Some("a"))),
            Some(&del),
        );
        assert!(state.versions("a", false).is_empty());
        assert_eq!(state.versions("a", true).len(), 1);
        state.apply(&k, None);
        assert!(state.schemas.is_empty());
        assert_eq!(state.max_id, 1);
    }

    #[test]
    fn references_resolve_transitively_each_once() {
        let mut state = State::default();
        let geo = r#"{"type":"record","name":"Geo","namespace":"s","fields":[{"name":"lat","type":"double"}]}"#;
        let address = r#"{"type":"record","name":"Address","namespace":"s","fields":[{"name":"geo","type":"s.Geo"}]}"#;
        let (k, v) = schema_record("geo", 1, 1, geo);
        state.apply(&k, Some(&v));
        let geo_ref = SchemaReference {
            name: "s.Geo".into(),
            subject: "geo".into(),
            version: 1,
        };
        let value = to_json(&SchemaValue {
            subject: "address".into(),
            version: 1,
            id: 2,
            schema_type: None,
            references: vec![geo_ref.clone()],
            schema: address.into(),
            deleted: false,
        });
        state.apply(&to_json(&RecordKey::schema("address", 1)), Some(&value));
        let address_ref = SchemaReference {
            name: "s.Address".into(),
            subject: "address".into(),
            version: 1,
        };
        // Geo before Address, which names it; Geo once although named twice.
        assert_eq!(
            state.reference_texts(&[address_ref.clone(), geo_ref]),
            [geo.to_string(), address.to_string()]
        );
        let customer = r#"{"type":"record","name":"C","namespace":"s","fields":[{"name":"home","type":"s.Address"}]}"#;
        assert!(parse_schema(None, customer, &state.reference_texts(&[address_ref])).is_ok());
    }
}
