//! Confluent's `io.confluent.connect.avro.AvroConverter` (short name `avro`): Connect data as
//! Avro datums in Confluent's wire format (magic byte 0, the 4-byte big-endian schema id, the
//! Avro binary datum), with the schemas in a Schema Registry, so Confluent's serializers and
//! deserializers in every language read and write the same records.
//!
//! Schema ids are cached both ways: the registry is asked once per new schema (per topic and
//! Connect schema when writing, per id when reading), never per record. Its calls run on a
//! small runtime of their own; the task's thread waits for the answer (once per new schema).
//!
//! A writer's schema may name types of other subjects through `references` (as Confluent's
//! serializers register a schema that uses a record of another subject): the converter fetches
//! the referenced versions, and theirs in turn, once each, and reads (or, with
//! `use.latest.version`, writes) with all of them.
//!
//! Options (Confluent's names): `schema.registry.url` (comma-separated; default the bundled
//! registry, `http://127.0.0.1:8081`), `auto.register.schemas` (true), `use.latest.version`
//! (false), `key.subject.name.strategy` / `value.subject.name.strategy` (TopicNameStrategy,
//! RecordNameStrategy, TopicRecordNameStrategy, by short or class name),
//! `basic.auth.credentials.source` (USER_INFO or URL) with `basic.auth.user.info`
//! (`user:password`). A few tuning options of Confluent's are accepted and ignored
//! ([`IGNORED_OPTIONS`]).

use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};

use apache_avro::Schema as AvroSchema;
use sluice_registry::{RegisteredSchema, RegistryClient, RegistryClientConfig, SchemaReference};
use sluice_sdk::{ConfigErrors, ConvertError, Schema, SchemaRef, Value};

use super::avro_data::{
    avro_schema_json, connect_schema_with_references, names_of_all, to_avro, to_connect,
    write_avro, Names, WriteError,
};

/// Confluent's Avro converter class.
pub const AVRO_CONVERTER: &str = "io.confluent.connect.avro.AvroConverter";
/// The bundled registry's URL, the default of `schema.registry.url`.
pub const DEFAULT_REGISTRY_URL: &str = "http://127.0.0.1:8081";
/// Confluent's wire format's first byte.
const MAGIC_BYTE: u8 = 0;
/// Confluent's options accepted for compatibility that change nothing here.
pub const IGNORED_OPTIONS: &[&str] = &[
    "max.schemas.per.subject",
    "latest.compatibility.strict",
    "normalize.schemas",
    "connect.meta.data",
    "schemas.cache.config",
    "enhanced.avro.schema.support",
    "avro.reflection.allow.null",
];
/// Confluent's option for `connect_union_*` names; only its default (false) is supported.
const GENERALIZED_SUM_TYPE_SUPPORT: &str = "generalized.sum.type.support";
/// Most distinct schemas remembered each way.
const CACHE_SIZE: usize = 64;

/// How a subject is named from the topic and the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value`.
    TopicName,
    /// The record's full name.
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    fn parse(text: &str) -> Option<Self> {
        let short = text.trim().rsplit('.').next().unwrap_or_default();
        match short {
            "TopicNameStrategy" => Some(Self::TopicName),
            "RecordNameStrategy" => Some(Self::RecordName),
            "TopicRecordNameStrategy" => Some(Self::TopicRecordName),
            _ => None,
        }
    }

    /// The subject of a record of `topic` whose Avro schema is `avro`.
    fn subject(
        self,
        topic: &str,
        is_key: bool,
        avro: &serde_json::Value,
    ) -> Result<String, String> {
        let record = || -> Result<String, String> {
            let name = avro["name"].as_str().ok_or_else(|| {
                "RecordNameStrategy and TopicRecordNameStrategy need a struct (Avro record) schema".to_string()
            })?;
            Ok(match avro["namespace"].as_str() {
                Some(ns) if !name.contains('.') => format!("{ns}.{name}"),
                _ => name.to_string(),
            })
        };
        Ok(match self {
            Self::TopicName => format!("{topic}-{}", if is_key { "key" } else { "value" }),
            Self::RecordName => record()?,
            Self::TopicRecordName => format!("{topic}-{}", record()?),
        })
    }
}

/// A schema written by this converter: the id and what writing needs.
#[derive(Debug)]
struct WriterSchema {
    id: i32,
    avro: AvroSchema,
    /// The referenced schemas' types.
    referenced: Vec<AvroSchema>,
    names: Names,
}

/// A schema read by id: the writer's Avro schema and its Connect form.
#[derive(Debug)]
struct ReaderSchema {
    avro: AvroSchema,
    /// The referenced schemas' types.
    referenced: Vec<AvroSchema>,
    names: Names,
    connect: SchemaRef,
}

/// A schema with the referenced schemas it needs, parsed.
struct ParsedWithReferences {
    avro: AvroSchema,
    json: serde_json::Value,
    referenced: Vec<AvroSchema>,
    referenced_json: Vec<serde_json::Value>,
}

#[derive(Debug, Default)]
struct Caches {
    /// (topic, Connect schema) -> writer schema, most recent last.
    written: Vec<(String, Schema, Arc<WriterSchema>)>,
    /// Schema id -> reader schema.
    read: Vec<(i32, Arc<ReaderSchema>)>,
    /// (subject, version) -> a referenced schema.
    referenced: Vec<((String, i32), Arc<RegisteredSchema>)>,
}

/// The converter.
#[derive(Debug)]
pub struct AvroConverter {
    is_key: bool,
    client: RegistryClient,
    auto_register: bool,
    use_latest_version: bool,
    strategy: SubjectNameStrategy,
    caches: Mutex<Caches>,
}

/// The runtime the registry calls run on, apart from the tasks' threads.
static CLIENT_RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sluice-registry-client")
        .enable_all()
        .build()
        .expect("the registry client's runtime starts")
});

/// Runs `future` on the client runtime and waits for it on this thread (letting the task's
/// runtime move its other work elsewhere while it waits).
fn wait_for<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    CLIENT_RUNTIME.spawn(async move {
        let _ = tx.send(future.await);
    });
    let wait = move || rx.recv().expect("the registry client's runtime answers");
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

fn registry_error(e: &sluice_registry::Error, what: &str) -> ConvertError {
    let message = format!("{what}: {e}");
    if e.is_retriable() {
        ConvertError::Retriable(message)
    } else {
        ConvertError::Data(message)
    }
}

impl AvroConverter {
    /// Builds the converter from its sub-options (prefix removed); `prefix` names them in
    /// errors.
    ///
    /// # Errors
    /// Every bad or unknown option, named.
    pub fn from_options(
        is_key: bool,
        prefix: &str,
        sub: &[(&str, &str)],
    ) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mut url = DEFAULT_REGISTRY_URL.to_string();
        let mut auto_register = true;
        let mut use_latest_version = false;
        let mut strategy = SubjectNameStrategy::TopicName;
        let mut source = "URL".to_string();
        let mut user_info: Option<String> = None;
        let own_strategy = if is_key {
            "key.subject.name.strategy"
        } else {
            "value.subject.name.strategy"
        };
        let other_strategy = if is_key {
            "value.subject.name.strategy"
        } else {
            "key.subject.name.strategy"
        };
        for (k, v) in sub {
            let full = format!("{prefix}{k}");
            let flag = |errors: &mut ConfigErrors, target: &mut bool| match v
                .trim()
                .to_ascii_lowercase()
                .as_str()
            {
                "true" => *target = true,
                "false" => *target = false,
                _ => errors.push(full.clone(), format!("must be true or false (got '{v}')")),
            };
            match *k {
                "schema.registry.url" => url = v.trim().to_string(),
                "auto.register.schemas" => flag(&mut errors, &mut auto_register),
                "use.latest.version" => flag(&mut errors, &mut use_latest_version),
                k if k == own_strategy => match SubjectNameStrategy::parse(v) {
                    Some(s) => strategy = s,
                    None => errors.push(
                        full,
                        format!("must be TopicNameStrategy, RecordNameStrategy or TopicRecordNameStrategy (io.confluent.kafka.serializers.subject.*) (got '{v}')"),
                    ),
                },
                k if k == other_strategy => {}
                "basic.auth.credentials.source" => match v.trim().to_ascii_uppercase().as_str() {
                    s @ ("USER_INFO" | "URL") => source = s.to_string(),
                    _ => errors.push(full, format!("must be USER_INFO or URL (got '{v}')")),
                },
                "basic.auth.user.info" | "schema.registry.basic.auth.user.info" => {
                    user_info = Some(v.to_string());
                }
                GENERALIZED_SUM_TYPE_SUPPORT => {
                    if !v.trim().eq_ignore_ascii_case("false") {
                        errors.push(full, format!("only false is supported: Avro unions map to io.confluent.connect.avro.Union structs with fields named after the member types (got '{v}')"));
                    }
                }
                k if IGNORED_OPTIONS.contains(&k) => {}
                _ => errors.push(
                    full,
                    "is not an option of the Avro converter (it has schema.registry.url, auto.register.schemas, use.latest.version, key.subject.name.strategy, value.subject.name.strategy, basic.auth.credentials.source, basic.auth.user.info)",
                ),
            }
        }
        let basic_auth = match (source.as_str(), &user_info) {
            ("USER_INFO", Some(info)) => match info.split_once(':') {
                Some((u, p)) => Some((u.to_string(), p.to_string())),
                None => {
                    errors.push(
                        format!("{prefix}basic.auth.user.info"),
                        "must be user:password",
                    );
                    None
                }
            },
            ("USER_INFO", None) => {
                errors.push(
                    format!("{prefix}basic.auth.user.info"),
                    "is required with basic.auth.credentials.source=USER_INFO (user:password)",
                );
                None
            }
            _ => None,
        };
        let client = RegistryClient::new(RegistryClientConfig {
            urls: url
                .split(',')
                .filter(|u| !u.trim().is_empty())
                .map(str::to_string)
                .collect(),
            basic_auth,
        });
        let client = match client {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(format!("{prefix}schema.registry.url"), e);
                None
            }
        };
        match client {
            Some(client) if errors.is_empty() => Ok(Self {
                is_key,
                client,
                auto_register,
                use_latest_version,
                strategy,
                caches: Mutex::default(),
            }),
            _ => Err(errors),
        }
    }

    fn caches(&self) -> std::sync::MutexGuard<'_, Caches> {
        self.caches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The registered schema to write `schema` to `topic` with (from the cache after the first
    /// time).
    fn writer_schema(
        &self,
        topic: &str,
        schema: &Schema,
    ) -> Result<Arc<WriterSchema>, ConvertError> {
        if let Some((_, _, w)) = self
            .caches()
            .written
            .iter()
            .rev()
            .find(|(t, s, _)| t == topic && s == schema)
        {
            return Ok(w.clone());
        }
        let json = avro_schema_json(schema);
        let subject = self
            .strategy
            .subject(topic, self.is_key, &json)
            .map_err(ConvertError::Data)?;
        let text = json.to_string();
        let client = self.client.clone();
        let mut references = Vec::new();
        let (id, text) = if self.use_latest_version {
            let s = subject.clone();
            let latest = wait_for(async move { client.latest(&s).await }).map_err(|e| {
                registry_error(&e, &format!("latest schema of subject '{subject}'"))
            })?;
            references = latest.references;
            (latest.id, latest.schema)
        } else if self.auto_register {
            let (s, t) = (subject.clone(), text.clone());
            let id = wait_for(async move { client.register(&s, &t, None).await }).map_err(|e| {
                registry_error(
                    &e,
                    &format!("registering the schema of topic '{topic}' under subject '{subject}'"),
                )
            })?;
            (id, text)
        } else {
            let (s, t) = (subject.clone(), text.clone());
            let found = wait_for(async move { client.lookup(&s, &t, None).await })
                .map_err(|e| registry_error(&e, &format!("looking up the schema of topic '{topic}' in subject '{subject}' (auto.register.schemas=false)")))?;
            (found.id, text)
        };
        let parsed = self
            .parse_with_references(&text, &references)
            .map_err(|e| match e {
                ConvertError::Data(m) => {
                    ConvertError::Data(format!("schema {id} of subject '{subject}': {m}"))
                }
                other => other,
            })?;
        let names = names_of_all(std::iter::once(&parsed.avro).chain(&parsed.referenced));
        let writer = Arc::new(WriterSchema {
            id,
            avro: parsed.avro,
            referenced: parsed.referenced,
            names,
        });
        let mut caches = self.caches();
        if caches.written.len() == CACHE_SIZE {
            caches.written.remove(0);
        }
        caches
            .written
            .push((topic.to_string(), schema.clone(), writer.clone()));
        Ok(writer)
    }

    /// The writer's schema with `id` (from the cache after the first time).
    fn reader_schema(&self, id: i32) -> Result<Arc<ReaderSchema>, ConvertError> {
        if let Some((_, r)) = self.caches().read.iter().find(|(i, _)| *i == id) {
            return Ok(r.clone());
        }
        let client = self.client.clone();
        let registered = wait_for(async move { client.registered_by_id(id).await })
            .map_err(|e| registry_error(&e, &format!("schema id {id}")))?;
        let in_schema = |e: ConvertError| match e {
            ConvertError::Data(m) => ConvertError::Data(format!("schema id {id}: {m}")),
            other => other,
        };
        let parsed = self
            .parse_with_references(&registered.schema, &registered.references)
            .map_err(in_schema)?;
        let connect = Arc::new(
            connect_schema_with_references(&parsed.json, &parsed.referenced_json)
                .map_err(|e| ConvertError::Data(format!("schema id {id}: {e}")))?,
        );
        let names = names_of_all(std::iter::once(&parsed.avro).chain(&parsed.referenced));
        let reader = Arc::new(ReaderSchema {
            avro: parsed.avro,
            referenced: parsed.referenced,
            names,
            connect,
        });
        let mut caches = self.caches();
        if caches.read.len() == CACHE_SIZE {
            caches.read.remove(0);
        }
        caches.read.push((id, reader.clone()));
        Ok(reader)
    }

    /// Parses `text` with the schemas `references` names (and those they name in turn).
    fn parse_with_references(
        &self,
        text: &str,
        references: &[SchemaReference],
    ) -> Result<ParsedWithReferences, ConvertError> {
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ConvertError::Data(format!("the schema is not JSON: {e}")))?;
        if references.is_empty() {
            let avro = AvroSchema::parse(&json)
                .map_err(|e| ConvertError::Data(format!("not valid Avro: {e}")))?;
            return Ok(ParsedWithReferences {
                avro,
                json,
                referenced: Vec::new(),
                referenced_json: Vec::new(),
            });
        }
        let mut texts = Vec::new();
        self.referenced_texts(references, &mut Vec::new(), &mut texts)?;
        let referenced_json = texts
            .iter()
            .map(|t| serde_json::from_str(t))
            .collect::<Result<Vec<serde_json::Value>, _>>()
            .map_err(|e| ConvertError::Data(format!("a referenced schema is not JSON: {e}")))?;
        let (avro, referenced) = AvroSchema::parse_str_with_list(text, &texts).map_err(|e| {
            ConvertError::Data(format!(
                "not valid Avro with its references {}: {e}",
                reference_list(references)
            ))
        })?;
        Ok(ParsedWithReferences {
            avro,
            json,
            referenced,
            referenced_json,
        })
    }

    /// The texts of `references` and of the schemas they name, each after the ones it names,
    /// once each; every (subject, version) is asked of the registry once per converter.
    fn referenced_texts(
        &self,
        references: &[SchemaReference],
        seen: &mut Vec<(String, i32)>,
        texts: &mut Vec<String>,
    ) -> Result<(), ConvertError> {
        for r in references {
            let key = (r.subject.clone(), r.version);
            if seen.contains(&key) {
                continue;
            }
            seen.push(key.clone());
            let cached = self
                .caches()
                .referenced
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, s)| s.clone());
            let schema = match cached {
                Some(s) => s,
                None => {
                    let client = self.client.clone();
                    let (subject, version) = key.clone();
                    let fetched = wait_for(async move { client.version(&subject, version).await })
                        .map_err(|e| {
                            registry_error(
                                &e,
                                &format!(
                                    "the schema reference '{}' (subject '{}', version {})",
                                    r.name, r.subject, r.version
                                ),
                            )
                        })?;
                    let fetched = Arc::new(fetched);
                    let mut caches = self.caches();
                    if caches.referenced.len() == CACHE_SIZE {
                        caches.referenced.remove(0);
                    }
                    caches.referenced.push((key, fetched.clone()));
                    fetched
                }
            };
            self.referenced_texts(&schema.references, seen, texts)?;
            texts.push(schema.schema.clone());
        }
        Ok(())
    }
}

/// `name (subject s, version v), ...` for messages.
fn reference_list(references: &[SchemaReference]) -> String {
    references
        .iter()
        .map(|r| {
            format!(
                "'{}' (subject '{}', version {})",
                r.name, r.subject, r.version
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl sluice_sdk::Converter for AvroConverter {
    fn encode(&self, schema: Option<&Schema>, value: &Value) -> Result<Option<Vec<u8>>, String> {
        self.encode_for("", schema, value)
            .map_err(|e| e.to_string())
    }

    fn decode(&self, bytes: Option<&[u8]>) -> Result<(Option<SchemaRef>, Value), String> {
        self.decode_for("", bytes).map_err(|e| e.to_string())
    }

    fn encode_for(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConvertError> {
        // As Confluent's: a null stays a Kafka null (a tombstone).
        if value.is_null() {
            return Ok(None);
        }
        let Some(schema) = schema else {
            return Err(ConvertError::Data(format!(
                "the Avro converter needs a schema, and this {} value has none (use a source that gives schemas, or the JSON converter)",
                value.type_name()
            )));
        };
        let writer = self.writer_schema(topic, schema)?;
        // The datum is written straight from the Connect value; apache-avro's writer (which
        // builds an Avro value and resolves the schema for every record) only takes what the
        // direct writer leaves to it.
        let mut out = Vec::with_capacity(128);
        out.push(MAGIC_BYTE);
        out.extend_from_slice(&writer.id.to_be_bytes());
        match write_avro(&writer.avro, &writer.names, value, &mut out) {
            Ok(()) => return Ok(Some(out)),
            Err(WriteError::Data(e)) => return Err(ConvertError::Data(e)),
            Err(WriteError::Fallback) => {}
        }
        let avro_value = to_avro(&writer.avro, &writer.names, value).map_err(ConvertError::Data)?;
        let datum = if writer.referenced.is_empty() {
            apache_avro::to_avro_datum(&writer.avro, avro_value)
        } else {
            apache_avro::to_avro_datum_schemata(
                &writer.avro,
                writer.referenced.iter().collect(),
                avro_value,
            )
        }
        .map_err(|e| ConvertError::Data(format!("cannot write the Avro datum: {e}")))?;
        let mut out = Vec::with_capacity(5 + datum.len());
        out.push(MAGIC_BYTE);
        out.extend_from_slice(&writer.id.to_be_bytes());
        out.extend_from_slice(&datum);
        Ok(Some(out))
    }

    fn decode_for(
        &self,
        _topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<SchemaRef>, Value), ConvertError> {
        let Some(bytes) = bytes else {
            return Ok((None, Value::Null));
        };
        if bytes.len() < 5 || bytes[0] != MAGIC_BYTE {
            return Err(ConvertError::Data(format!(
                "Unknown magic byte! (the Avro converter reads Confluent's wire format: byte 0, a 4-byte schema id, the datum; got {} bytes starting {:02x?})",
                bytes.len(),
                &bytes[..bytes.len().min(5)]
            )));
        }
        let id = i32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let reader = self.reader_schema(id)?;
        let datum = &mut &bytes[5..];
        let avro_value = if reader.referenced.is_empty() {
            apache_avro::from_avro_datum(&reader.avro, datum, None)
        } else {
            apache_avro::from_avro_datum_schemata(
                &reader.avro,
                reader.referenced.iter().collect(),
                datum,
                None,
            )
        }
        .map_err(|e| {
            ConvertError::Data(format!(
                "cannot read the Avro datum with schema id {id}: {e}"
            ))
        })?;
        let value = to_connect(&reader.connect, &reader.avro, &reader.names, avro_value)
            .map_err(|e| ConvertError::Data(format!("schema id {id}: {e}")))?;
        Ok((Some(reader.connect.clone()), value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_checked_and_named() {
        let c = AvroConverter::from_options(
            false,
            "value.converter.",
            &[
                ("schema.registry.url", "http://127.0.0.1:1"),
                (
                    "value.subject.name.strategy",
                    "io.confluent.kafka.serializers.subject.RecordNameStrategy",
                ),
                ("key.subject.name.strategy", "TopicNameStrategy"),
                ("max.schemas.per.subject", "10"),
                ("generalized.sum.type.support", "false"),
            ],
        )
        .unwrap();
        assert_eq!(c.strategy, SubjectNameStrategy::RecordName);
        let err = AvroConverter::from_options(
            false,
            "value.converter.",
            &[
                ("auto.register.schemas", "yes"),
                ("basic.auth.credentials.source", "USER_INFO"),
                ("schema.registry.urls", "x"),
                ("generalized.sum.type.support", "true"),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("value.converter.auto.register.schemas"),
            "{err}"
        );
        assert!(
            err.contains("value.converter.basic.auth.user.info"),
            "{err}"
        );
        assert!(
            err.contains("value.converter.schema.registry.urls"),
            "{err}"
        );
        assert!(
            err.contains("value.converter.generalized.sum.type.support"),
            "{err}"
        );
    }

    #[test]
    fn subjects_follow_the_strategy() {
        let avro = serde_json::json!({"type": "record", "name": "Order", "namespace": "shop"});
        assert_eq!(
            SubjectNameStrategy::TopicName
                .subject("t", true, &avro)
                .unwrap(),
            "t-key"
        );
        assert_eq!(
            SubjectNameStrategy::RecordName
                .subject("t", false, &avro)
                .unwrap(),
            "shop.Order"
        );
        assert_eq!(
            SubjectNameStrategy::TopicRecordName
                .subject("t", false, &avro)
                .unwrap(),
            "t-shop.Order"
        );
        assert!(SubjectNameStrategy::RecordName
            .subject("t", false, &serde_json::json!("string"))
            .is_err());
    }

    #[test]
    fn bad_bytes_are_data_errors_and_an_unreachable_registry_is_retriable() {
        use sluice_sdk::Converter;
        let c = AvroConverter::from_options(
            false,
            "",
            &[("schema.registry.url", "http://127.0.0.1:9")],
        )
        .unwrap();
        let err = c
            .decode_for("t", Some(b"\x01\x00\x00\x00\x01x"))
            .unwrap_err();
        assert!(
            matches!(&err, ConvertError::Data(m) if m.contains("Unknown magic byte")),
            "{err:?}"
        );
        let err = c
            .decode_for("t", Some(b"\x00\x00\x00\x00\x01x"))
            .unwrap_err();
        assert!(matches!(err, ConvertError::Retriable(_)), "{err:?}");
        assert_eq!(c.encode_for("t", None, &Value::Null).unwrap(), None);
        assert!(c.decode_for("t", None).unwrap().1.is_null());
    }
}
