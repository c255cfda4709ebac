//! Single message transforms (SMTs): Kafka Connect's `transforms` option and the most used of
//! its built-in transforms, with their class names and options.
//!
//! ```json
//! "transforms": "key,route",
//! "transforms.key.type": "org.apache.kafka.connect.transforms.ValueToKey",
//! "transforms.key.fields": "id",
//! "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
//! "transforms.route.regex": "db-(.*)",
//! "transforms.route.replacement": "$1"
//! ```
//!
//! Sources apply them between `poll` and the converters, sinks between the converters and
//! `put`. Built in: `ValueToKey`, `ExtractField$Key|$Value`, `HoistField$Key|$Value`,
//! `ReplaceField$Key|$Value`, `InsertField$Key|$Value` and `RegexRouter` (the simple class name,
//! e.g. `ValueToKey`, works too). Predicates are not supported.

use std::fmt;
use std::sync::Arc;

use regex::Regex;
use sluice_sdk::{ConfigErrors, Field, Props, Schema, SchemaRef, SchemaType, Struct, Value};

const PACKAGE: &str = "org.apache.kafka.connect.transforms.";

/// The part of a record transforms may read and change.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformRecord {
    /// Topic.
    pub topic: String,
    /// Kafka partition (sink records; sources when set).
    pub kafka_partition: Option<i32>,
    /// Kafka offset (sink records only).
    pub kafka_offset: Option<i64>,
    /// Key schema.
    pub key_schema: Option<SchemaRef>,
    /// Key.
    pub key: Value,
    /// Value schema.
    pub value_schema: Option<SchemaRef>,
    /// Value.
    pub value: Value,
    /// Timestamp (ms).
    pub timestamp: Option<i64>,
}

/// One configured transform.
trait Transform: Send + Sync + fmt::Debug {
    fn apply(&self, record: TransformRecord) -> Result<TransformRecord, String>;
}

/// The configured transforms of a connector, applied in order.
#[derive(Debug, Clone, Default)]
pub struct TransformChain {
    steps: Vec<(String, Arc<dyn Transform>)>,
}

impl TransformChain {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Applies every transform; the error names the failing transform's class.
    ///
    /// # Errors
    /// `(class, message)` of the first transform that cannot handle the record.
    pub fn apply(&self, mut record: TransformRecord) -> Result<TransformRecord, (String, String)> {
        for (class, t) in &self.steps {
            record = t.apply(record).map_err(|e| (class.clone(), e))?;
        }
        Ok(record)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Key,
    Value,
}

impl Side {
    fn get(self, r: &TransformRecord) -> (Option<&Schema>, &Value) {
        match self {
            Self::Key => (r.key_schema.as_deref(), &r.key),
            Self::Value => (r.value_schema.as_deref(), &r.value),
        }
    }

    fn set(self, r: &mut TransformRecord, schema: Option<Schema>, value: Value) {
        let schema = schema.map(Arc::new);
        match self {
            Self::Key => {
                r.key_schema = schema;
                r.key = value;
            }
            Self::Value => {
                r.value_schema = schema;
                r.value = value;
            }
        }
    }
}

/// Builds the chain named by `transforms` in `props`.
///
/// # Errors
/// Every bad or unknown `transforms.*` option, named.
pub fn build_chain(props: &Props) -> Result<TransformChain, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let aliases: Vec<String> = props
        .get("transforms")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    for key in props.keys().filter_map(|k| k.strip_prefix("transforms.")) {
        let alias = key.split('.').next().unwrap_or_default();
        if !aliases.iter().any(|a| a == alias) {
            errors.push(
                format!("transforms.{key}"),
                format!("belongs to transform '{alias}', which 'transforms' does not list"),
            );
        }
    }
    let mut steps: Vec<(String, Arc<dyn Transform>)> = Vec::new();
    for alias in &aliases {
        let prefix = format!("transforms.{alias}.");
        let opts = Options {
            prefix: prefix.clone(),
            props: props
                .iter()
                .filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone())))
                .collect(),
            used: std::cell::RefCell::new(vec!["type".to_string()]),
        };
        let Some(class) = opts.props.get("type").cloned() else {
            errors.push(format!("{prefix}type"), "is required: the transform's class, e.g. org.apache.kafka.connect.transforms.ValueToKey");
            continue;
        };
        let simple = class
            .trim()
            .strip_prefix(PACKAGE)
            .unwrap_or(class.trim())
            .to_string();
        let built: Result<Arc<dyn Transform>, (String, String)> = match simple.as_str() {
            "ValueToKey" => opts.list_required("fields").map(|fields| Arc::new(ValueToKey { fields }) as Arc<dyn Transform>),
            "ExtractField$Key" | "ExtractField$Value" => opts
                .required("field")
                .map(|field| Arc::new(ExtractField { side: side_of(&simple), field }) as Arc<dyn Transform>),
            "HoistField$Key" | "HoistField$Value" => opts
                .required("field")
                .map(|field| Arc::new(HoistField { side: side_of(&simple), field }) as Arc<dyn Transform>),
            "ReplaceField$Key" | "ReplaceField$Value" => ReplaceField::new(side_of(&simple), &opts).map(|t| Arc::new(t) as Arc<dyn Transform>),
            "InsertField$Key" | "InsertField$Value" => InsertField::new(side_of(&simple), &opts).map(|t| Arc::new(t) as Arc<dyn Transform>),
            "RegexRouter" => RegexRouter::new(&opts).map(|t| Arc::new(t) as Arc<dyn Transform>),
            _ => Err((
                format!("{prefix}type"),
                format!("names a transform sluice does not have ('{class}'); built in: ValueToKey, ExtractField$Key, ExtractField$Value, HoistField$Key, HoistField$Value, ReplaceField$Key, ReplaceField$Value, InsertField$Key, InsertField$Value, RegexRouter"),
            )),
        };
        match built {
            Ok(t) => {
                for k in opts.props.keys() {
                    if !opts.used.borrow().contains(k) {
                        errors.push(
                            format!("{prefix}{k}"),
                            format!("is not an option of {simple}"),
                        );
                    }
                }
                steps.push((format!("{PACKAGE}{simple}"), t));
            }
            Err((option, message)) => errors.push(option, message),
        }
    }
    if errors.is_empty() {
        Ok(TransformChain { steps })
    } else {
        Err(errors)
    }
}

fn side_of(simple: &str) -> Side {
    if simple.ends_with("$Key") {
        Side::Key
    } else {
        Side::Value
    }
}

struct Options {
    prefix: String,
    props: Props,
    used: std::cell::RefCell<Vec<String>>,
}

impl Options {
    fn get(&self, name: &str) -> Option<String> {
        self.used.borrow_mut().push(name.to_string());
        self.props
            .get(name)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    fn required(&self, name: &str) -> Result<String, (String, String)> {
        self.get(name)
            .ok_or_else(|| (format!("{}{name}", self.prefix), "is required".to_string()))
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.get(name)
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn list_required(&self, name: &str) -> Result<Vec<String>, (String, String)> {
        let l = self.list(name);
        if l.is_empty() {
            Err((
                format!("{}{name}", self.prefix),
                "is required: a comma-separated list of field names".to_string(),
            ))
        } else {
            Ok(l)
        }
    }
}

/// Kafka Connect's `ValueToKey`: the key becomes a struct of some value fields.
#[derive(Debug)]
struct ValueToKey {
    fields: Vec<String>,
}

impl Transform for ValueToKey {
    fn apply(&self, mut r: TransformRecord) -> Result<TransformRecord, String> {
        match (&r.value_schema, &r.value) {
            (_, Value::Null) => Ok(r),
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
                Ok(r)
            }
            (None, Value::Map(entries)) => {
                let mut key = Vec::new();
                for name in &self.fields {
                    let v = entries
                        .iter()
                        .find(|(k, _)| k.as_str() == Some(name))
                        .map(|(_, v)| v.clone())
                        .ok_or_else(|| format!("ValueToKey: the value has no field '{name}'"))?;
                    key.push((Value::from(name.as_str()), v));
                }
                r.key_schema = None;
                r.key = Value::Map(key);
                Ok(r)
            }
            (_, other) => Err(format!(
                "ValueToKey needs a struct or map value, got {}",
                other.type_name()
            )),
        }
    }
}

/// Kafka Connect's `ExtractField`: the key or value becomes one of its fields.
#[derive(Debug)]
struct ExtractField {
    side: Side,
    field: String,
}

impl Transform for ExtractField {
    fn apply(&self, mut r: TransformRecord) -> Result<TransformRecord, String> {
        let (schema, value) = self.side.get(&r);
        let (schema, value) = match (schema, value) {
            (_, Value::Null) => return Ok(r),
            (Some(schema), Value::Struct(s)) => {
                let f = schema
                    .field(&self.field)
                    .ok_or_else(|| format!("ExtractField: no field '{}'", self.field))?;
                (
                    Some(f.schema.clone()),
                    s.get(&self.field).cloned().unwrap_or_default(),
                )
            }
            (None, Value::Map(entries)) => (
                None,
                entries
                    .iter()
                    .find(|(k, _)| k.as_str() == Some(&self.field))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
            ),
            (_, other) => {
                return Err(format!(
                    "ExtractField needs a struct or map, got {}",
                    other.type_name()
                ))
            }
        };
        self.side.set(&mut r, schema, value);
        Ok(r)
    }
}

/// Kafka Connect's `HoistField`: the key or value is wrapped in a struct with one field.
#[derive(Debug)]
struct HoistField {
    side: Side,
    field: String,
}

impl Transform for HoistField {
    fn apply(&self, mut r: TransformRecord) -> Result<TransformRecord, String> {
        let (schema, value) = self.side.get(&r);
        let (schema, value) = match schema {
            Some(s) => (
                Some(Schema::struct_of(vec![Field::new(
                    self.field.clone(),
                    s.clone(),
                )])),
                Value::Struct(Struct::new().with(self.field.clone(), value.clone())),
            ),
            None => (
                None,
                Value::Map(vec![(Value::from(self.field.as_str()), value.clone())]),
            ),
        };
        self.side.set(&mut r, schema, value);
        Ok(r)
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
}

impl ReplaceField {
    fn new(side: Side, opts: &Options) -> Result<Self, (String, String)> {
        let mut include = opts.list("include");
        include.extend(opts.list("whitelist"));
        let mut exclude = opts.list("exclude");
        exclude.extend(opts.list("blacklist"));
        let mut renames = Vec::new();
        for pair in opts.list("renames") {
            let (from, to) = pair.split_once(':').ok_or_else(|| {
                (
                    format!("{}renames", opts.prefix),
                    format!("must be a list of from:to pairs (got '{pair}')"),
                )
            })?;
            renames.push((from.trim().to_string(), to.trim().to_string()));
        }
        Ok(Self {
            side,
            include,
            exclude,
            renames,
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
    fn apply(&self, mut r: TransformRecord) -> Result<TransformRecord, String> {
        let (schema, value) = self.side.get(&r);
        let (schema, value) = match (schema, value) {
            (_, Value::Null) => return Ok(r),
            (Some(schema), Value::Struct(s)) => {
                let mut fields = Vec::new();
                let mut out = Struct::new();
                for f in schema.fields().iter().filter(|f| self.keep(&f.name)) {
                    let name = self.renamed(&f.name).to_string();
                    fields.push(Field::new(name.clone(), f.schema.clone()));
                    out.put(name, s.get(&f.name).cloned().unwrap_or_default());
                }
                let mut new_schema = Schema::struct_of(fields);
                new_schema.optional = schema.optional;
                new_schema.name.clone_from(&schema.name);
                (Some(new_schema), Value::Struct(out))
            }
            (None, Value::Map(entries)) => (
                None,
                Value::Map(
                    entries
                        .iter()
                        .filter(|(k, _)| k.as_str().is_some_and(|k| self.keep(k)))
                        .map(|(k, v)| {
                            (
                                Value::from(self.renamed(k.as_str().unwrap_or_default())),
                                v.clone(),
                            )
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
        self.side.set(&mut r, schema, value);
        Ok(r)
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
}

impl InsertField {
    fn new(side: Side, opts: &Options) -> Result<Self, (String, String)> {
        // Kafka Connect allows a '!' (required) or '?' (optional) suffix; fields are optional here.
        let name = |n: &str| {
            opts.get(n)
                .map(|s| s.trim_end_matches(['!', '?']).to_string())
        };
        let static_field = match (name("static.field"), opts.get("static.value")) {
            (Some(f), Some(v)) => Some((f, v)),
            (None, None) => None,
            _ => {
                return Err((
                    format!("{}static.value", opts.prefix),
                    "static.field and static.value go together".to_string(),
                ))
            }
        };
        let t = Self {
            side,
            topic: name("topic.field"),
            partition: name("partition.field"),
            offset: name("offset.field"),
            timestamp: name("timestamp.field"),
            static_field,
        };
        if t.topic.is_none()
            && t.partition.is_none()
            && t.offset.is_none()
            && t.timestamp.is_none()
            && t.static_field.is_none()
        {
            return Err((
                format!("{}topic.field", opts.prefix),
                "InsertField needs one of topic.field, partition.field, offset.field, timestamp.field, static.field".to_string(),
            ));
        }
        Ok(t)
    }

    fn additions(&self, r: &TransformRecord) -> Vec<(String, Schema, Value)> {
        let mut out = Vec::new();
        if let Some(f) = &self.topic {
            out.push((
                f.clone(),
                Schema::string().optional(),
                Value::from(r.topic.as_str()),
            ));
        }
        if let Some(f) = &self.partition {
            out.push((
                f.clone(),
                Schema::int32().optional(),
                r.kafka_partition.map_or(Value::Null, Value::Int32),
            ));
        }
        if let Some(f) = &self.offset {
            out.push((
                f.clone(),
                Schema::int64().optional(),
                r.kafka_offset.map_or(Value::Null, Value::Int64),
            ));
        }
        if let Some(f) = &self.timestamp {
            out.push((
                f.clone(),
                Schema::timestamp().optional(),
                r.timestamp.map_or(Value::Null, Value::Int64),
            ));
        }
        if let Some((f, v)) = &self.static_field {
            out.push((
                f.clone(),
                Schema::string().optional(),
                Value::from(v.as_str()),
            ));
        }
        out
    }
}

impl Transform for InsertField {
    fn apply(&self, mut r: TransformRecord) -> Result<TransformRecord, String> {
        let additions = self.additions(&r);
        let (schema, value) = self.side.get(&r);
        let (schema, value) = match (schema, value) {
            (_, Value::Null) => return Ok(r),
            (Some(schema), Value::Struct(s)) if matches!(schema.ty, SchemaType::Struct(_)) => {
                let mut new_schema = schema.clone();
                let mut out = s.clone();
                if let SchemaType::Struct(fields) = &mut new_schema.ty {
                    for (name, fs, v) in additions {
                        fields.retain(|f| f.name != name);
                        fields.push(Field::new(name.clone(), fs));
                        out.put(name, v);
                    }
                }
                (Some(new_schema), Value::Struct(out))
            }
            (None, Value::Map(entries)) => {
                let mut entries = entries.clone();
                for (name, _, v) in additions {
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
        self.side.set(&mut r, schema, value);
        Ok(r)
    }
}

/// Kafka Connect's `RegexRouter`: renames the topic when it matches `regex`.
#[derive(Debug)]
struct RegexRouter {
    regex: Regex,
    replacement: String,
}

impl RegexRouter {
    fn new(opts: &Options) -> Result<Self, (String, String)> {
        let pattern = opts.required("regex")?;
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            (
                format!("{}regex", opts.prefix),
                format!("is not a valid regular expression: {e}"),
            )
        })?;
        // Java writes group references as $1; so does the regex crate.
        let replacement = opts.required("replacement")?;
        Ok(Self { regex, replacement })
    }
}

impl Transform for RegexRouter {
    fn apply(&self, mut r: TransformRecord) -> Result<TransformRecord, String> {
        if self.regex.is_match(&r.topic) {
            r.topic = self
                .regex
                .replace(&r.topic, self.replacement.as_str())
                .into_owned();
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
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
        let out = chain.apply(order()).unwrap();
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
        let out = chain.apply(r).unwrap();
        assert_eq!(
            out.key,
            Value::Map(vec![(Value::from("id"), Value::Int64(1))])
        );
        assert!(matches!(&out.value, Value::Map(m) if m[0].0 == Value::from("payload")));
    }

    #[test]
    fn bad_configuration_names_the_option() {
        let err = build_chain(&props(&[
            ("transforms", "a,b,c"),
            ("transforms.a.type", "Flatten$Value"),
            ("transforms.b.type", "ValueToKey"),
            ("transforms.c.type", "RegexRouter"),
            ("transforms.c.regex", "("),
            ("transforms.c.replacement", "x"),
            ("transforms.d.type", "ValueToKey"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("option 'transforms.a.type' names a transform sluice does not have"),
            "{err}"
        );
        assert!(
            err.contains("option 'transforms.b.fields' is required"),
            "{err}"
        );
        assert!(
            err.contains("option 'transforms.c.regex' is not a valid regular expression"),
            "{err}"
        );
        assert!(
            err.contains("option 'transforms.d.type' belongs to transform 'd'"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_field_is_a_record_error() {
        let chain = build_chain(&props(&[
            ("transforms", "k"),
            ("transforms.k.type", "ValueToKey"),
            ("transforms.k.fields", "nope"),
        ]))
        .unwrap();
        let (class, msg) = chain.apply(order()).unwrap_err();
        assert_eq!(class, "org.apache.kafka.connect.transforms.ValueToKey");
        assert!(msg.contains("no field 'nope'"));
    }
}
