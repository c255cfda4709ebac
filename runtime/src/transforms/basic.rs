//! Kafka's first transforms: `ValueToKey`, `ExtractField` (with nested paths under
//! `field.syntax.version=V2`), `HoistField`, `ReplaceField`, `InsertField` and `RegexRouter`.

use std::sync::Arc;

use regex::Regex;
use sluice_sdk::{
    Config, ConfigDef, ConfigErrors, ConfigKey, ConfigType, Field, Importance, Schema, SchemaType,
    Struct, Validator, Value,
};

use super::{
    field_value, map_get, replace_null_with_default_key, SchemaCache, Side, Transform,
    TransformPlugin, TransformRecord,
};

pub(super) fn plugins() -> Vec<TransformPlugin> {
    let mut out = vec![super::kafka_transform(
        "ValueToKey",
        "Replaces the record key with a struct (or map) of the named value fields.",
        ConfigDef::new().define(
            ConfigKey::new(
                "fields",
                ConfigType::List,
                Importance::High,
                "Field names on the record value to extract as the record key.",
            )
            .validator(Validator::NonEmpty),
        ),
        |c| {
            Ok(Box::new(ValueToKey {
                fields: c.get_list("fields"),
            }))
        },
    )];
    for side in Side::BOTH {
        out.push(super::kafka_transform(
            &format!("ExtractField{}", side.suffix()),
            "Replaces the key or value with one of its fields (a nested one with field.syntax.version=V2).",
            ConfigDef::new()
                .define(ConfigKey::new("field", ConfigType::String, Importance::Medium, "Field name to extract; with field.syntax.version=V2 a dotted path, backticks around names that contain dots.")
                    .validator(Validator::NonEmpty))
                .define(ConfigKey::new("field.syntax.version", ConfigType::String, Importance::High, "V1: the field name is taken as written. V2: dots separate nested struct or map fields.")
                    .default_value("V1")
                    .validator(Validator::one_of(&["V1", "V2"])))
                .define(replace_null_with_default_key()),
            move |c| ExtractField::new(side, c).map(|t| Box::new(t) as Box<dyn Transform>),
        ));
        out.push(super::kafka_transform(
            &format!("HoistField{}", side.suffix()),
            "Wraps the key or value in a struct (or map) with one field.",
            ConfigDef::new().define(
                ConfigKey::new("field", ConfigType::String, Importance::Medium, "Field name for the single field that will be created in the resulting struct or map.")
                    .validator(Validator::NonEmpty),
            ),
            move |c| Ok(Box::new(HoistField { side, field: c.get_str("field").unwrap_or_default().to_string() })),
        ));
        out.push(super::kafka_transform(
            &format!("ReplaceField{}", side.suffix()),
            "Keeps (include), drops (exclude) and renames (renames) fields of the key or value.",
            ConfigDef::new()
                .define(
                    ConfigKey::new(
                        "exclude",
                        ConfigType::List,
                        Importance::Medium,
                        "Fields to exclude. This takes precedence over the fields to include.",
                    )
                    .default_value(""),
                )
                .define(
                    ConfigKey::new(
                        "include",
                        ConfigType::List,
                        Importance::Medium,
                        "Fields to include. If specified, only these fields will be used.",
                    )
                    .default_value(""),
                )
                .define(
                    ConfigKey::new(
                        "renames",
                        ConfigType::List,
                        Importance::Medium,
                        "Field rename mappings, e.g. foo:bar,abc:xyz.",
                    )
                    .default_value(""),
                )
                .define(
                    ConfigKey::new(
                        "blacklist",
                        ConfigType::List,
                        Importance::Low,
                        "Deprecated alias of exclude.",
                    )
                    .default_value(""),
                )
                .define(
                    ConfigKey::new(
                        "whitelist",
                        ConfigType::List,
                        Importance::Low,
                        "Deprecated alias of include.",
                    )
                    .default_value(""),
                ),
            move |c| ReplaceField::new(side, c).map(|t| Box::new(t) as Box<dyn Transform>),
        ));
        out.push(super::kafka_transform(
            &format!("InsertField{}", side.suffix()),
            "Adds the record's topic, partition, offset, timestamp or a constant as a field.",
            ConfigDef::new()
                .define(ConfigKey::new("topic.field", ConfigType::String, Importance::Medium, "Field name for the topic; suffix with ! to make it required, ? optional (the default).").optional())
                .define(ConfigKey::new("partition.field", ConfigType::String, Importance::Medium, "Field name for the Kafka partition.").optional())
                .define(ConfigKey::new("offset.field", ConfigType::String, Importance::Medium, "Field name for the Kafka offset (sink connectors only).").optional())
                .define(ConfigKey::new("timestamp.field", ConfigType::String, Importance::Medium, "Field name for the record timestamp.").optional())
                .define(ConfigKey::new("static.field", ConfigType::String, Importance::Medium, "Field name for a static data field.").optional())
                .define(ConfigKey::new("static.value", ConfigType::String, Importance::Medium, "The static field value.").optional()),
            move |c| InsertField::new(side, c).map(|t| Box::new(t) as Box<dyn Transform>),
        ));
    }
    out.push(super::kafka_transform(
        "RegexRouter",
        "Renames the topic with a regular expression and a replacement.",
        ConfigDef::new()
            .define(ConfigKey::new(
                "regex",
                ConfigType::String,
                Importance::High,
                "Regular expression to use for matching (the whole topic).",
            ))
            .define(ConfigKey::new(
                "replacement",
                ConfigType::String,
                Importance::High,
                "Replacement string; $1 refers to the first group.",
            )),
        |c| RegexRouter::new(c).map(|t| Box::new(t) as Box<dyn Transform>),
    ));
    out
}

/// A regular expression matching whole text, or an error for `option`.
pub(super) fn whole_match_regex(option: &str, pattern: &str) -> Result<Regex, ConfigErrors> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        let mut errors = ConfigErrors::default();
        errors.push(option, format!("is not a valid regular expression: {e}"));
        errors
    })
}

/// Kafka Connect's `ValueToKey`: the key becomes a struct of some value fields.
#[derive(Debug)]
struct ValueToKey {
    fields: Vec<String>,
}

impl Transform for ValueToKey {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        match (&r.value_schema, &r.value) {
            (_, Value::Null) => Ok(Some(r)),
            (Some(schema), Value::Struct(s)) => {
                let mut fields = Vec::new();
                let mut key = Struct::new();
                for name in &self.fields {
                    let f = schema
                        .field(name)
                        .ok_or_else(|| format!("ValueToKey: the value has no field '{name}'"))?;
                    fields.push(Field::new(name.clone(), f.schema.clone()));
                    key.put(name.clone(), s.get(name).cloned().unwrap_or_default());
                }
                r.key_schema = Some(Arc::new(Schema::struct_of(fields)));
                r.key = Value::Struct(key);
                Ok(Some(r))
            }
            (None, Value::Map(entries)) => {
                let mut key = Vec::new();
                for name in &self.fields {
                    let v = map_get(entries, name)
                        .cloned()
                        .ok_or_else(|| format!("ValueToKey: the value has no field '{name}'"))?;
                    key.push((Value::from(name.as_str()), v));
                }
                r.key_schema = None;
                r.key = Value::Map(key);
                Ok(Some(r))
            }
            (_, other) => Err(format!(
                "ValueToKey needs a struct or map value, got {}",
                other.type_name()
            )),
        }
    }
}

/// A field path: one name (V1) or nested names (V2).
fn parse_field_path(text: &str, v2: bool) -> Vec<String> {
    if !v2 {
        return vec![text.to_string()];
    }
    // KIP-821: dots separate names; a name in backticks may contain dots; \` is a backtick.
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let mut name = String::new();
        if chars.get(i) == Some(&'`') {
            let mut j = i + 1;
            let mut closed = None;
            while j < chars.len() {
                match chars[j] {
                    '\\' if chars.get(j + 1) == Some(&'`') => {
                        name.push('`');
                        j += 2;
                        continue;
                    }
                    '`' if chars.get(j + 1).is_none_or(|c| *c == '.') => {
                        closed = Some(j);
                        break;
                    }
                    c => name.push(c),
                }
                j += 1;
            }
            if let Some(end) = closed {
                out.push(name);
                i = end + 1;
                if i >= chars.len() {
                    return out;
                }
                i += 1; // the dot
                continue;
            }
            // No closing backtick: the rest is a plain name.
            name.clear();
        }
        let end = chars[i..].iter().position(|c| *c == '.').map(|p| i + p);
        name.extend(&chars[i..end.unwrap_or(chars.len())]);
        out.push(name);
        match end {
            Some(e) => i = e + 1,
            None => return out,
        }
    }
}

/// Kafka Connect's `ExtractField`: the key or value becomes one of its (nested) fields.
#[derive(Debug)]
struct ExtractField {
    side: Side,
    original: String,
    path: Vec<String>,
    replace_null_with_default: bool,
}

impl ExtractField {
    fn new(side: Side, c: &Config) -> Result<Self, ConfigErrors> {
        let original = c.get_str("field").unwrap_or_default().to_string();
        let v2 = c
            .get_str("field.syntax.version")
            .is_some_and(|v| v.eq_ignore_ascii_case("V2"));
        Ok(Self {
            side,
            path: parse_field_path(&original, v2),
            original,
            replace_null_with_default: c.get_bool("replace.null.with.default").unwrap_or(true),
        })
    }
}

impl Transform for ExtractField {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        let (schema, value) = self.side.get(&r);
        let (schema, value) = match (schema, value) {
            (Some(schema), Value::Struct(_) | Value::Null) => {
                let (last, parents) = self.path.split_last().expect("a path has a name");
                let mut s = schema;
                let mut v = Some(value);
                for name in parents {
                    let f = s
                        .field(name)
                        .ok_or_else(|| format!("Unknown field: {}", self.original))?;
                    s = &f.schema;
                    v = v.and_then(Value::as_struct).and_then(|st| st.get(name));
                }
                let f = s
                    .field(last)
                    .ok_or_else(|| format!("Unknown field: {}", self.original))?;
                let out = match v.and_then(Value::as_struct) {
                    Some(st) => {
                        field_value(&f.schema, st.get(last), self.replace_null_with_default)
                    }
                    None => Value::Null,
                };
                (Some(f.schema.clone()), out)
            }
            (None, Value::Map(_) | Value::Null) => {
                let mut v = value;
                for name in &self.path {
                    v = match v {
                        Value::Map(entries) => map_get(entries, name).unwrap_or(&Value::Null),
                        _ => &Value::Null,
                    };
                }
                (None, v.clone())
            }
            (_, other) => {
                return Err(format!(
                    "ExtractField needs a struct or map, got {}",
                    other.type_name()
                ))
            }
        };
        self.side.set(&mut r, schema, value);
        Ok(Some(r))
    }
}

/// Kafka Connect's `HoistField`: the key or value is wrapped in a struct with one field.
#[derive(Debug)]
struct HoistField {
    side: Side,
    field: String,
}

impl Transform for HoistField {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        let (schema, value) = self.side.take(&mut r);
        let (schema, value) = match schema {
            Some(s) => (
                Some(Schema::struct_of(vec![Field::new(
                    self.field.clone(),
                    (*s).clone(),
                )])),
                Value::Struct(Struct::new().with(self.field.clone(), value)),
            ),
            None => (
                None,
                Value::Map(vec![(Value::from(self.field.as_str()), value)]),
            ),
        };
        self.side.set(&mut r, schema, value);
        Ok(Some(r))
    }
}

/// Kafka Connect's `ReplaceField`: keep (`include`), drop (`exclude`) and rename (`renames`)
/// fields.
#[derive(Debug)]
struct ReplaceField {
    side: Side,
    include: Vec<String>,
    exclude: Vec<String>,
    renames: Vec<(String, String)>,
    cache: SchemaCache,
}

impl ReplaceField {
    fn new(side: Side, c: &Config) -> Result<Self, ConfigErrors> {
        let mut include = c.get_list("include");
        include.extend(c.get_list("whitelist"));
        let mut exclude = c.get_list("exclude");
        exclude.extend(c.get_list("blacklist"));
        let mut renames = Vec::new();
        for pair in c.get_list("renames") {
            let Some((from, to)) = pair.split_once(':') else {
                let mut e = ConfigErrors::default();
                e.push(
                    "renames",
                    format!("must be a list of from:to pairs (got '{pair}')"),
                );
                return Err(e);
            };
            renames.push((from.trim().to_string(), to.trim().to_string()));
        }
        Ok(Self {
            side,
            include,
            exclude,
            renames,
            cache: SchemaCache::default(),
        })
    }

    fn keep(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
            && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }

    fn renamed<'a>(&'a self, name: &'a str) -> &'a str {
        self.renames
            .iter()
            .find(|(f, _)| f == name)
            .map_or(name, |(_, t)| t.as_str())
    }
}

impl Transform for ReplaceField {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        if self.side.get(&r).1.is_null() {
            return Ok(Some(r));
        }
        let (schema, value) = self.side.take(&mut r);
        let (schema, value) = match (schema, value) {
            (Some(schema), Value::Struct(s)) => {
                let new_schema = self.cache.get_or_build(&schema, |schema| {
                    let fields = schema
                        .fields()
                        .iter()
                        .filter(|f| self.keep(&f.name))
                        .map(|f| Field::new(self.renamed(&f.name), f.schema.clone()))
                        .collect();
                    let mut new_schema = Schema::struct_of(fields);
                    new_schema.optional = schema.optional;
                    new_schema.name.clone_from(&schema.name);
                    Ok(new_schema)
                })?;
                let mut out = Struct::with_capacity(new_schema.fields().len());
                for (name, v) in s.into_fields() {
                    if self.keep(&name) {
                        match self.renames.iter().find(|(f, _)| *f == name) {
                            Some((_, to)) => out.put(to.clone(), v),
                            None => out.put(name, v),
                        }
                    }
                }
                (Some(new_schema), Value::Struct(out))
            }
            (None, Value::Map(entries)) => (
                None,
                Value::Map(
                    entries
                        .into_iter()
                        .filter(|(k, _)| k.as_str().is_some_and(|k| self.keep(k)))
                        .map(|(k, v)| {
                            let name = self.renamed(k.as_str().unwrap_or_default()).to_string();
                            (Value::from(name), v)
                        })
                        .collect(),
                ),
            ),
            (_, other) => {
                return Err(format!(
                    "ReplaceField needs a struct or map, got {}",
                    other.type_name()
                ))
            }
        };
        self.side.put(&mut r, schema, value);
        Ok(Some(r))
    }
}

/// Kafka Connect's `InsertField`: adds the topic, partition, offset, timestamp or a constant.
#[derive(Debug)]
struct InsertField {
    side: Side,
    topic: Option<String>,
    partition: Option<String>,
    offset: Option<String>,
    timestamp: Option<String>,
    static_field: Option<(String, String)>,
    cache: SchemaCache,
}

impl InsertField {
    fn new(side: Side, c: &Config) -> Result<Self, ConfigErrors> {
        // Kafka Connect allows a '!' (required) or '?' (optional) suffix; fields are optional here.
        let name = |n: &str| {
            c.get_str(n)
                .filter(|s| !s.is_empty())
                .map(|s| s.trim_end_matches(['!', '?']).to_string())
        };
        let static_value = c.get_str("static.value").map(str::to_string);
        let static_field = match (name("static.field"), static_value) {
            (Some(f), Some(v)) => Some((f, v)),
            (None, None) => None,
            _ => {
                let mut e = ConfigErrors::default();
                e.push(
                    "static.value",
                    "static.field and static.value go together; set both or neither",
                );
                return Err(e);
            }
        };
        let t = Self {
            side,
            topic: name("topic.field"),
            partition: name("partition.field"),
            offset: name("offset.field"),
            timestamp: name("timestamp.field"),
            static_field,
            cache: SchemaCache::default(),
        };
        if t.topic.is_none()
            && t.partition.is_none()
            && t.offset.is_none()
            && t.timestamp.is_none()
            && t.static_field.is_none()
        {
            let mut e = ConfigErrors::default();
            e.push("topic.field", "InsertField needs one of topic.field, partition.field, offset.field, timestamp.field, static.field");
            return Err(e);
        }
        Ok(t)
    }

    /// The added fields' names and schemas.
    fn added_fields(&self) -> Vec<Field> {
        let mut out = Vec::new();
        let mut add = |name: &Option<String>, schema: Schema| {
            if let Some(n) = name {
                out.push(Field::new(n.clone(), schema.optional()));
            }
        };
        add(&self.topic, Schema::string());
        add(&self.partition, Schema::int32());
        add(&self.offset, Schema::int64());
        add(&self.timestamp, Schema::timestamp());
        add(
            &self.static_field.as_ref().map(|(f, _)| f.clone()),
            Schema::string(),
        );
        out
    }

    /// The added fields' names and values for `r`, in the order of [`Self::added_fields`].
    fn additions(&self, r: &TransformRecord) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        if let Some(f) = &self.topic {
            out.push((f.clone(), Value::from(r.topic.as_str())));
        }
        if let Some(f) = &self.partition {
            out.push((
                f.clone(),
                r.kafka_partition.map_or(Value::Null, Value::Int32),
            ));
        }
        if let Some(f) = &self.offset {
            out.push((f.clone(), r.kafka_offset.map_or(Value::Null, Value::Int64)));
        }
        if let Some(f) = &self.timestamp {
            out.push((f.clone(), r.timestamp.map_or(Value::Null, Value::Int64)));
        }
        if let Some((f, v)) = &self.static_field {
            out.push((f.clone(), Value::from(v.as_str())));
        }
        out
    }
}

impl Transform for InsertField {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        if self.side.get(&r).1.is_null() {
            return Ok(Some(r));
        }
        let additions = self.additions(&r);
        let (schema, value) = self.side.take(&mut r);
        let (schema, value) = match (schema, value) {
            (Some(schema), Value::Struct(mut s)) if matches!(schema.ty, SchemaType::Struct(_)) => {
                let new_schema = self.cache.get_or_build(&schema, |schema| {
                    let mut new_schema = schema.clone();
                    if let SchemaType::Struct(fields) = &mut new_schema.ty {
                        for added in self.added_fields() {
                            fields.retain(|f| f.name != added.name);
                            fields.push(added);
                        }
                    }
                    Ok(new_schema)
                })?;
                for (name, v) in additions {
                    s.put(name, v);
                }
                (Some(new_schema), Value::Struct(s))
            }
            (None, Value::Map(mut entries)) => {
                for (name, v) in additions {
                    entries.retain(|(k, _)| k.as_str() != Some(&name));
                    entries.push((Value::from(name), v));
                }
                (None, Value::Map(entries))
            }
            (_, other) => {
                return Err(format!(
                    "InsertField needs a struct or map, got {}",
                    other.type_name()
                ))
            }
        };
        self.side.put(&mut r, schema, value);
        Ok(Some(r))
    }
}

/// Kafka Connect's `RegexRouter`: renames the topic when it matches `regex`.
#[derive(Debug)]
struct RegexRouter {
    regex: Regex,
    replacement: String,
}

impl RegexRouter {
    fn new(c: &Config) -> Result<Self, ConfigErrors> {
        let regex = whole_match_regex("regex", c.get_str("regex").unwrap_or_default())?;
        // Java writes group references as $1; so does the regex crate.
        let replacement = c.get_str("replacement").unwrap_or_default().to_string();
        Ok(Self { regex, replacement })
    }
}

impl Transform for RegexRouter {
    fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
        if self.regex.is_match(&r.topic) {
            r.topic = self
                .regex
                .replace(&r.topic, self.replacement.as_str())
                .into_owned();
        }
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::super::build_chain;
    use super::*;

    use sluice_sdk::config::props;

    fn order() -> TransformRecord {
        let schema = Schema::struct_of(vec![
            Field::new("id", Schema::int64()),
            Field::new("status", Schema::string()),
            Field::new("secret", Schema::string()),
        ]);
        TransformRecord {
            topic: "db-orders".into(),
            kafka_partition: Some(0),
            kafka_offset: Some(7),
            key_schema: None,
            key: Value::Null,
            value_schema: Some(Arc::new(schema)),
            value: Value::Struct(
                Struct::new()
                    .with("id", 5i64)
                    .with("status", "new")
                    .with("secret", "x"),
            ),
            timestamp: Some(1000),
            ..TransformRecord::default()
        }
    }

    #[test]
    fn the_usual_chain_keys_renames_and_routes() {
        let chain = build_chain(&props(&[
            ("transforms", "key,extract,drop,route,insert"),
            (
                "transforms.key.type",
                "org.apache.kafka.connect.transforms.ValueToKey",
            ),
            ("transforms.key.fields", "id"),
            ("transforms.extract.type", "ExtractField$Key"),
            ("transforms.extract.field", "id"),
            (
                "transforms.drop.type",
                "org.apache.kafka.connect.transforms.ReplaceField$Value",
            ),
            ("transforms.drop.exclude", "secret"),
            ("transforms.drop.renames", "status:state"),
            (
                "transforms.route.type",
                "org.apache.kafka.connect.transforms.RegexRouter",
            ),
            ("transforms.route.regex", "db-(.*)"),
            ("transforms.route.replacement", "$1-v2"),
            ("transforms.insert.type", "InsertField$Value"),
            ("transforms.insert.offset.field", "kafka_offset"),
        ]))
        .unwrap();
        let out = chain.apply(order()).unwrap().unwrap();
        assert_eq!(out.key, Value::Int64(5));
        assert_eq!(out.key_schema.as_deref(), Some(&Schema::int64()));
        assert_eq!(out.topic, "orders-v2");
        let v = out.value.as_struct().unwrap();
        assert_eq!(v.get("state"), Some(&Value::from("new")));
        assert!(v.get("secret").is_none());
        assert_eq!(v.get("kafka_offset"), Some(&Value::Int64(7)));
        let names: Vec<&str> = out
            .value_schema
            .as_ref()
            .unwrap()
            .fields()
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, ["id", "state", "kafka_offset"]);
    }

    #[test]
    fn schemaless_maps_work_and_hoist_wraps() {
        let chain = build_chain(&props(&[
            ("transforms", "k,h"),
            ("transforms.k.type", "ValueToKey"),
            ("transforms.k.fields", "id"),
            ("transforms.h.type", "HoistField$Value"),
            ("transforms.h.field", "payload"),
        ]))
        .unwrap();
        let mut r = order();
        r.value_schema = None;
        r.value = Value::Map(vec![(Value::from("id"), Value::Int64(1))]);
        let out = chain.apply(r).unwrap().unwrap();
        assert_eq!(
            out.key,
            Value::Map(vec![(Value::from("id"), Value::Int64(1))])
        );
        assert!(matches!(&out.value, Value::Map(m) if m[0].0 == Value::from("payload")));
    }

    #[test]
    fn a_missing_field_is_a_record_error() {
        let chain = build_chain(&props(&[
            ("transforms", "k"),
            ("transforms.k.type", "ValueToKey"),
            ("transforms.k.fields", "nope"),
        ]))
        .unwrap();
        let err = chain.apply(order()).unwrap_err();
        assert_eq!(err.class, "org.apache.kafka.connect.transforms.ValueToKey");
        assert_eq!(err.alias, "k");
        assert!(err.message.contains("no field 'nope'"));
    }

    #[test]
    fn field_paths_v2_split_on_dots_outside_backticks() {
        assert_eq!(parse_field_path("a.b.c", false), ["a.b.c"]);
        assert_eq!(parse_field_path("a.b.c", true), ["a", "b", "c"]);
        assert_eq!(parse_field_path("`a.b`.c", true), ["a.b", "c"]);
        assert_eq!(parse_field_path("a.`b.c`", true), ["a", "b.c"]);
        assert_eq!(parse_field_path("`a\\`b`.c", true), ["a`b", "c"]);
        assert_eq!(parse_field_path("`open.c", true), ["`open", "c"]);
    }

    fn nested() -> (Schema, Value) {
        let inner = Schema::struct_of(vec![
            Field::new("bar", Schema::int32()),
            Field::new("x.y", Schema::string()),
        ]);
        let schema = Schema::struct_of(vec![
            Field::new("foo", inner),
            Field::new("magic", Schema::int64()),
        ]);
        let value = Struct::new()
            .with("foo", Struct::new().with("bar", 42).with("x.y", "dotted"))
            .with("magic", 7i64);
        (schema, Value::Struct(value))
    }

    fn extract(
        options: &[(&str, &str)],
        schema: Option<Schema>,
        value: Value,
    ) -> Result<TransformRecord, String> {
        let mut pairs = vec![
            ("transforms", "e"),
            ("transforms.e.type", "ExtractField$Value"),
        ];
        let owned: Vec<(String, String)> = options
            .iter()
            .map(|(k, v)| (format!("transforms.e.{k}"), (*v).to_string()))
            .collect();
        pairs.extend(owned.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let mut r = order();
        r.value_schema = schema.map(Arc::new);
        r.value = value;
        build_chain(&props(&pairs))
            .unwrap()
            .apply(r)
            .map(Option::unwrap)
            .map_err(|e| e.message)
    }

    #[test]
    fn extract_field_v2_reaches_nested_fields_with_and_without_schema() {
        let (schema, value) = nested();
        let out = extract(
            &[("field", "foo.bar"), ("field.syntax.version", "V2")],
            Some(schema.clone()),
            value.clone(),
        )
        .unwrap();
        assert_eq!(
            (out.value_schema.as_deref(), &out.value),
            (Some(&Schema::int32()), &Value::Int32(42))
        );
        let out = extract(
            &[("field", "foo.`x.y`"), ("field.syntax.version", "v2")],
            Some(schema.clone()),
            value.clone(),
        )
        .unwrap();
        assert_eq!(out.value, Value::from("dotted"));
        // V1 (the default) takes the name as written.
        let err =
            extract(&[("field", "foo.bar")], Some(schema.clone()), value.clone()).unwrap_err();
        assert_eq!(err, "Unknown field: foo.bar");
        let out = extract(&[("field", "magic")], Some(schema.clone()), value).unwrap();
        assert_eq!(out.value, Value::Int64(7));
        // A null value keeps the field's schema, as Kafka does.
        let out = extract(
            &[("field", "foo.bar"), ("field.syntax.version", "V2")],
            Some(schema),
            Value::Null,
        )
        .unwrap();
        assert_eq!(
            (out.value_schema.as_deref(), &out.value),
            (Some(&Schema::int32()), &Value::Null)
        );

        let map = Value::Map(vec![(
            Value::from("foo"),
            Value::Map(vec![(Value::from("bar"), Value::Int64(42))]),
        )]);
        let out = extract(
            &[("field", "foo.bar"), ("field.syntax.version", "V2")],
            None,
            map.clone(),
        )
        .unwrap();
        assert_eq!(out.value, Value::Int64(42));
        let out = extract(
            &[("field", "foo.nope"), ("field.syntax.version", "V2")],
            None,
            map,
        )
        .unwrap();
        assert_eq!(
            out.value,
            Value::Null,
            "a missing path is null without a schema"
        );
        let err = super::super::tests::chain_error(&[
            ("transforms", "e"),
            ("transforms.e.type", "ExtractField$Value"),
            ("transforms.e.field", "a"),
            ("transforms.e.field.syntax.version", "V3"),
        ]);
        assert!(
            err.contains(
                "option 'transforms.e.field.syntax.version' must be one of V1, V2 (got 'V3')"
            ),
            "{err}"
        );
    }

    #[test]
    fn extract_field_uses_the_default_of_a_null_field_unless_told_not_to() {
        let mut fs = Schema::int32().optional();
        fs.default = Some(Box::new(Value::Int32(5)));
        let schema = Schema::struct_of(vec![Field::new("n", fs)]);
        let v = Value::Struct(Struct::new().with("n", Value::Null));
        let out = extract(&[("field", "n")], Some(schema.clone()), v.clone()).unwrap();
        assert_eq!(out.value, Value::Int32(5));
        let out = extract(
            &[("field", "n"), ("replace.null.with.default", "false")],
            Some(schema),
            v,
        )
        .unwrap();
        assert_eq!(out.value, Value::Null);
    }
}
