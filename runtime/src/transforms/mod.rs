//! Single message transforms (SMTs) and their predicates: Kafka Connect's `transforms` and
//! `predicates` options (KIP-66, KIP-585), with Kafka's class names, options and behaviour.
//!
//! ```json
//! "transforms": "dropTombstones,route",
//! "transforms.dropTombstones.type": "org.apache.kafka.connect.transforms.Filter",
//! "transforms.dropTombstones.predicate": "isTombstone",
//! "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
//! "transforms.route.regex": "db-(.*)",
//! "transforms.route.replacement": "$1",
//! "predicates": "isTombstone",
//! "predicates.isTombstone.type": "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone"
//! ```
//!
//! Sources apply the chain between `poll` and the converters, sinks between the converters and
//! `put`. A transform may drop a record (`Filter`); a step with a `predicate` runs only on the
//! records the predicate matches (or does not match, with `negate=true`).
//!
//! Transforms and predicates are looked up in a [`Registry`]: a table from class name and
//! aliases to a factory and the option declarations ([`ConfigDef`]) the factory is given. The
//! built-ins register themselves the same way a plugin would ([`register_transform`],
//! [`register_predicate`]), so `GET /connector-plugins?connectorsOnly=false` and
//! `/connector-plugins/{class}/config` describe every one of them from its declaration.
//!
//! # Layout
//! - this file: the [`Registry`] and the [`TransformChain`] built from a connector
//!   configuration. [`TransformRecord`], the [`Transform`] and [`Predicate`] traits and the
//!   [`TransformPlugin`] descriptor live in the SDK (`sluice_sdk::transform`), so plugin
//!   libraries implement the same ones.
//! - `basic`: `ValueToKey`, `ExtractField` (with `field.syntax.version=V2`), `HoistField`,
//!   `ReplaceField`, `InsertField`, `RegexRouter`.
//! - `headers`: `Filter`, `InsertHeader`, `DropHeaders`, `HeaderFrom`, and the text form of a
//!   value in a header.
//! - `structure`: `Flatten`, `MaskField`, `SetSchemaMetadata`.
//! - `cast`: `Cast`.
//! - `timestamp`: `TimestampConverter`, `TimestampRouter`, and Java date patterns.
//! - `predicates`: `TopicNameMatches`, `HasHeaderKey`, `RecordIsTombstone`.
//! - `debezium`: Debezium's `io.debezium.transforms.ExtractNewRecordState`.

mod basic;
mod cast;
mod debezium;
mod headers;
mod predicates;
mod structure;
mod timestamp;

use std::sync::{Arc, LazyLock, RwLock};

use sluice_sdk::config::ConfigValue;
use sluice_sdk::{
    Config, ConfigDef, ConfigErrors, ConfigKey, ConfigType, Importance, Props, Schema, SchemaRef,
    Value,
};

/// The package of Kafka's transforms; their simple names (`Cast$Value`) work too.
pub const TRANSFORMS_PACKAGE: &str = "org.apache.kafka.connect.transforms.";
/// The package of Kafka's predicates.
pub const PREDICATES_PACKAGE: &str = "org.apache.kafka.connect.transforms.predicates.";
/// `transforms`: the aliases of the chain, in order.
pub const TRANSFORMS: &str = "transforms";
/// `predicates`: the aliases of the predicates the chain's steps may name.
pub const PREDICATES: &str = "predicates";
/// `transforms.<alias>.type` / `predicates.<alias>.type`.
const TYPE: &str = "type";
/// `transforms.<alias>.predicate`.
const PREDICATE: &str = "predicate";
/// `transforms.<alias>.negate`.
const NEGATE: &str = "negate";

pub use sluice_sdk::transform::{
    Predicate, PredicateFactory, Transform, TransformFactory, TransformKind, TransformPlugin,
    TransformRecord,
};

/// A built-in transform in Kafka's package: `simple` is e.g. `Cast$Value`.
fn kafka_transform(
    simple: &str,
    doc: &str,
    config_def: ConfigDef,
    build: impl Fn(&Config) -> Result<Box<dyn Transform>, ConfigErrors> + Send + Sync + 'static,
) -> TransformPlugin {
    TransformPlugin::transform(
        format!("{TRANSFORMS_PACKAGE}{simple}"),
        doc,
        config_def,
        build,
    )
    .aliases([simple])
    .version(env!("CARGO_PKG_VERSION"))
}

/// A built-in predicate in Kafka's package.
fn kafka_predicate(
    simple: &str,
    doc: &str,
    config_def: ConfigDef,
    build: impl Fn(&Config) -> Result<Box<dyn Predicate>, ConfigErrors> + Send + Sync + 'static,
) -> TransformPlugin {
    TransformPlugin::predicate(
        format!("{PREDICATES_PACKAGE}{simple}"),
        doc,
        config_def,
        build,
    )
    .aliases([simple])
    .version(env!("CARGO_PKG_VERSION"))
}

/// The known transform and predicate classes.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    plugins: Vec<TransformPlugin>,
}

/// A class registered twice.
#[derive(Debug, thiserror::Error)]
#[error("a transform or predicate called '{0}' is already registered")]
pub struct DuplicateClass(pub String);

impl Registry {
    /// Kafka's transforms and predicates.
    pub fn builtin() -> Self {
        let mut r = Self::default();
        for p in basic::plugins()
            .into_iter()
            .chain(headers::plugins())
            .chain(structure::plugins())
            .chain(cast::plugins())
            .chain(timestamp::plugins())
            .chain(predicates::plugins())
            .chain(debezium::plugins())
        {
            r.register(p).expect("built-in classes are distinct");
        }
        r
    }

    /// Adds a class.
    ///
    /// # Errors
    /// [`DuplicateClass`] when its class or an alias is already taken.
    pub fn register(&mut self, plugin: TransformPlugin) -> Result<(), DuplicateClass> {
        for name in std::iter::once(&plugin.class).chain(&plugin.aliases) {
            if self.find(name).is_some() {
                return Err(DuplicateClass(name.clone()));
            }
        }
        self.plugins.push(plugin);
        Ok(())
    }

    /// Every class, in registration order.
    pub fn plugins(&self) -> &[TransformPlugin] {
        &self.plugins
    }

    /// The class called `name` (full class name or alias).
    pub fn find(&self, name: &str) -> Option<&TransformPlugin> {
        let name = name.trim();
        self.plugins.iter().find(|p| p.answers_to(name))
    }

    fn names_of(&self, kind: &str) -> String {
        let mut names: Vec<&str> = self
            .plugins
            .iter()
            .filter(|p| p.kind_name() == kind)
            .map(TransformPlugin::simple_name)
            .collect();
        names.sort_unstable();
        names.join(", ")
    }
}

static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(|| RwLock::new(Registry::builtin()));

/// The process-wide registry the worker builds chains from (built-ins, then whatever was
/// registered). Never hold the guard across an `.await`.
pub fn registry() -> &'static RwLock<Registry> {
    &REGISTRY
}

/// Adds a transform class to the process-wide registry (for plugins).
///
/// # Errors
/// [`DuplicateClass`] when the class or an alias is taken.
pub fn register_transform(plugin: TransformPlugin) -> Result<(), DuplicateClass> {
    registry()
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .register(plugin)
}

/// Adds a predicate class to the process-wide registry (for plugins).
///
/// # Errors
/// [`DuplicateClass`] when the class or an alias is taken.
pub fn register_predicate(plugin: TransformPlugin) -> Result<(), DuplicateClass> {
    register_transform(plugin)
}

/// A record a transform could not handle.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("transform '{alias}' ({class}): {message}")]
pub struct TransformError {
    /// The step's alias in `transforms`.
    pub alias: String,
    /// The transform's class (the DLQ's `__connect.errors.class.name`).
    pub class: String,
    /// What went wrong.
    pub message: String,
}

#[derive(Debug)]
struct Step {
    alias: String,
    class: String,
    transform: Box<dyn Transform>,
    predicate: Option<Arc<dyn Predicate>>,
    negate: bool,
}

/// The configured transforms of a connector, applied in order.
#[derive(Debug, Clone, Default)]
pub struct TransformChain {
    steps: Arc<Vec<Step>>,
}

impl TransformChain {
    /// Whether there is nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Applies every step whose predicate allows it; `Ok(None)` when a step dropped the record.
    ///
    /// # Errors
    /// The first step that cannot handle the record, with its alias and class.
    pub fn apply(
        &self,
        mut record: TransformRecord,
    ) -> Result<Option<TransformRecord>, TransformError> {
        for step in self.steps.iter() {
            if let Some(p) = &step.predicate {
                let matched = p.test(&record).map_err(|message| TransformError {
                    alias: step.alias.clone(),
                    class: step.class.clone(),
                    message: format!("its predicate failed: {message}"),
                })?;
                if matched == step.negate {
                    continue;
                }
            }
            match step.transform.apply(record) {
                Ok(Some(r)) => record = r,
                Ok(None) => return Ok(None),
                Err(message) => {
                    return Err(TransformError {
                        alias: step.alias.clone(),
                        class: step.class.clone(),
                        message,
                    })
                }
            }
        }
        Ok(Some(record))
    }
}

/// The aliases of a list option (`transforms`, `predicates`), trimmed, empty ones dropped.
fn aliases_of(props: &Props, option: &str) -> Vec<String> {
    props
        .get(option)
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the chain named by `transforms` (and the `predicates` it uses) from the process-wide
/// registry.
///
/// # Errors
/// Every bad or unknown `transforms.*` / `predicates.*` option, named.
pub fn build_chain(props: &Props) -> Result<TransformChain, ConfigErrors> {
    let registry = registry()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    build_chain_with(&registry, props)
}

/// A class's options parsed from `<prefix>*` keys, every error named with the prefix.
fn parse_options(
    plugin: &TransformPlugin,
    prefix: &str,
    alias: &str,
    props: &Props,
    chain_options: &[&str],
    errors: &mut ConfigErrors,
) -> Option<Config> {
    let own: Props = props
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
        .filter(|(k, _)| k != TYPE && !chain_options.contains(&k.as_str()))
        .collect();
    let before = errors.0.len();
    for k in own.keys() {
        if plugin.config_def.key(k).is_none() {
            let known: Vec<&str> = plugin
                .config_def
                .keys()
                .iter()
                .map(|k| k.name.as_str())
                .chain(chain_options.iter().copied())
                .collect();
            errors.push(
                format!("{prefix}{k}"),
                format!(
                    "is not an option of {} (alias '{alias}'); its options are: {}",
                    plugin.simple_name(),
                    known.join(", ")
                ),
            );
        }
    }
    let (config, parse_errors) = plugin.config_def.parse_lenient(&own);
    for e in parse_errors.0 {
        errors.push(format!("{prefix}{}", e.option), e.message);
    }
    (errors.0.len() == before).then_some(config)
}

fn prefixed(errors: &mut ConfigErrors, prefix: &str, found: ConfigErrors) {
    for e in found.0 {
        errors.push(format!("{prefix}{}", e.option), e.message);
    }
}

/// Errors for `<group>.<alias>.*` keys whose alias the `<group>` list does not name, and for
/// aliases listed twice.
fn check_aliases(props: &Props, group: &str, aliases: &[String], errors: &mut ConfigErrors) {
    let dotted = format!("{group}.");
    for key in props.keys().filter_map(|k| k.strip_prefix(&dotted)) {
        let alias = key.split('.').next().unwrap_or_default();
        if !aliases.iter().any(|a| a == alias) {
            errors.push(
                format!("{dotted}{key}"),
                format!("belongs to '{alias}', which '{group}' does not list; add '{alias}' to {group} or remove the option"),
            );
        }
    }
    for (i, a) in aliases.iter().enumerate() {
        if aliases[..i].contains(a) {
            errors.push(group, format!("lists '{a}' twice; aliases must be unique"));
        }
    }
}

/// Builds the chain named by `transforms` from `registry`.
///
/// # Errors
/// Every bad or unknown `transforms.*` / `predicates.*` option, named; each name carries the
/// alias (`transforms.<alias>.<option>`).
pub fn build_chain_with(
    registry: &Registry,
    props: &Props,
) -> Result<TransformChain, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let transform_aliases = aliases_of(props, TRANSFORMS);
    let predicate_aliases = aliases_of(props, PREDICATES);
    check_aliases(props, TRANSFORMS, &transform_aliases, &mut errors);
    check_aliases(props, PREDICATES, &predicate_aliases, &mut errors);

    let mut built_predicates: Vec<(String, Arc<dyn Predicate>)> = Vec::new();
    for alias in &predicate_aliases {
        let prefix = format!("{PREDICATES}.{alias}.");
        let Some(class) = props.get(&format!("{prefix}{TYPE}")).map(|s| s.trim()) else {
            errors.push(format!("{prefix}{TYPE}"), format!("is required: the class of predicate '{alias}', e.g. {PREDICATES_PACKAGE}RecordIsTombstone"));
            continue;
        };
        let plugin = match registry.find(class) {
            Some(p) if matches!(p.factory, TransformKind::Predicate(_)) => p,
            _ => {
                errors.push(
                    format!("{prefix}{TYPE}"),
                    format!(
                        "names a predicate sluice does not have ('{class}'); known predicates: {}",
                        registry.names_of("predicate")
                    ),
                );
                continue;
            }
        };
        let Some(config) = parse_options(plugin, &prefix, alias, props, &[], &mut errors) else {
            continue;
        };
        if let TransformKind::Predicate(factory) = &plugin.factory {
            match factory(&config) {
                Ok(p) => built_predicates.push((alias.clone(), Arc::from(p))),
                Err(e) => prefixed(&mut errors, &prefix, e),
            }
        }
    }

    let mut steps = Vec::new();
    for alias in &transform_aliases {
        let prefix = format!("{TRANSFORMS}.{alias}.");
        let Some(class) = props.get(&format!("{prefix}{TYPE}")).map(|s| s.trim()) else {
            errors.push(format!("{prefix}{TYPE}"), format!("is required: the class of transform '{alias}', e.g. {TRANSFORMS_PACKAGE}ValueToKey"));
            continue;
        };
        let plugin = match registry.find(class) {
            Some(p) if matches!(p.factory, TransformKind::Transform(_)) => p,
            _ => {
                errors.push(
                    format!("{prefix}{TYPE}"),
                    format!(
                        "names a transform sluice does not have ('{class}'); known transforms: {}",
                        registry.names_of("transformation")
                    ),
                );
                continue;
            }
        };
        let negate = match props.get(&format!("{prefix}{NEGATE}")) {
            None => false,
            Some(text) => match ConfigKey::new(NEGATE, ConfigType::Boolean, Importance::Low, "")
                .parse_value(text)
            {
                Ok(ConfigValue::Boolean(b)) => b,
                Ok(_) | Err(_) => {
                    errors.push(
                        format!("{prefix}{NEGATE}"),
                        format!("must be true or false (got '{text}')"),
                    );
                    false
                }
            },
        };
        let predicate = match props.get(&format!("{prefix}{PREDICATE}")).map(|s| s.trim()) {
            None | Some("") => None,
            Some(name) => match built_predicates.iter().find(|(a, _)| a == name) {
                Some((_, p)) => Some(p.clone()),
                None => {
                    if !predicate_aliases.iter().any(|a| a == name) {
                        errors.push(
                            format!("{prefix}{PREDICATE}"),
                            format!("names predicate '{name}', which 'predicates' does not list; add '{name}' to predicates and set predicates.{name}.type"),
                        );
                    }
                    None
                }
            },
        };
        let Some(config) = parse_options(
            plugin,
            &prefix,
            alias,
            props,
            &[PREDICATE, NEGATE],
            &mut errors,
        ) else {
            continue;
        };
        if let TransformKind::Transform(factory) = &plugin.factory {
            match factory(&config) {
                Ok(transform) => steps.push(Step {
                    alias: alias.clone(),
                    class: plugin.class.clone(),
                    transform,
                    predicate,
                    negate,
                }),
                Err(e) => prefixed(&mut errors, &prefix, e),
            }
        }
    }
    if errors.is_empty() {
        Ok(TransformChain {
            steps: Arc::new(steps),
        })
    } else {
        Err(errors)
    }
}

/// Which half of a record a `$Key` / `$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Side {
    Key,
    Value,
}

impl Side {
    const BOTH: [Side; 2] = [Side::Key, Side::Value];

    fn suffix(self) -> &'static str {
        match self {
            Self::Key => "$Key",
            Self::Value => "$Value",
        }
    }

    fn get(self, r: &TransformRecord) -> (Option<&Schema>, &Value) {
        match self {
            Self::Key => (r.key_schema.as_deref(), &r.key),
            Self::Value => (r.value_schema.as_deref(), &r.value),
        }
    }

    fn take(self, r: &mut TransformRecord) -> (Option<SchemaRef>, Value) {
        match self {
            Self::Key => (r.key_schema.take(), std::mem::take(&mut r.key)),
            Self::Value => (r.value_schema.take(), std::mem::take(&mut r.value)),
        }
    }

    fn put(self, r: &mut TransformRecord, schema: Option<SchemaRef>, value: Value) {
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

    fn set(self, r: &mut TransformRecord, schema: Option<Schema>, value: Value) {
        self.put(r, schema.map(Arc::new), value);
    }
}

/// Output schemas by input schema, so a transform builds a changed schema once per input schema
/// rather than once per record (Kafka keeps the same kind of cache). Keyed by the input's
/// `Arc`: records of one source share their schema's `Arc`, and a cached output is itself
/// shared, so the next step of the chain hits its cache too.
#[derive(Debug, Default)]
struct SchemaCache {
    entries: std::sync::Mutex<Vec<(SchemaRef, SchemaRef)>>,
}

impl SchemaCache {
    /// Schemas kept; the oldest goes first.
    const CAPACITY: usize = 32;

    fn get_or_build(
        &self,
        input: &SchemaRef,
        build: impl FnOnce(&Schema) -> Result<Schema, String>,
    ) -> Result<SchemaRef, String> {
        let lock = || {
            self.entries
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some((_, out)) = lock().iter().find(|(i, _)| Arc::ptr_eq(i, input)) {
            return Ok(out.clone());
        }
        let out = Arc::new(build(input)?);
        let mut entries = lock();
        if entries.len() >= Self::CAPACITY {
            entries.remove(0);
        }
        entries.push((input.clone(), out.clone()));
        Ok(out)
    }
}

/// The value of `name` in a schemaless map.
fn map_get<'a>(entries: &'a [(Value, Value)], name: &str) -> Option<&'a Value> {
    entries
        .iter()
        .find(|(k, _)| k.as_str() == Some(name))
        .map(|(_, v)| v)
}

/// A struct field's value, or the field schema's default when the value is null and
/// `replace_null_with_default` (Kafka's `Struct.get`).
fn field_value(schema: &Schema, value: Option<&Value>, replace_null_with_default: bool) -> Value {
    match value {
        Some(v) if !v.is_null() => v.clone(),
        _ if replace_null_with_default => schema.default.as_deref().cloned().unwrap_or_default(),
        _ => Value::Null,
    }
}

/// `replace.null.with.default` (KIP-1040), shared by several transforms.
fn replace_null_with_default_key() -> ConfigKey {
    ConfigKey::new(
        "replace.null.with.default",
        ConfigType::Boolean,
        Importance::Medium,
        "Whether to replace a null field with its schema's default value (when it has one).",
    )
    .default_value("true")
}

/// The text Java's `Double.toString` gives (`1.0`, `1.0E10`), for casts and headers.
fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        format!("{v:?}")
    } else {
        java_scientific(&format!("{v:e}"))
    }
}

/// The text Java's `Float.toString` gives.
fn java_float(v: f32) -> String {
    if v.is_nan() || v.is_infinite() {
        return java_double(f64::from(v));
    }
    let a = v.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        format!("{v:?}")
    } else {
        java_scientific(&format!("{v:e}"))
    }
}

fn java_scientific(rust: &str) -> String {
    let (mantissa, exponent) = rust.split_once('e').unwrap_or((rust, "0"));
    if mantissa.contains('.') {
        format!("{mantissa}E{exponent}")
    } else {
        format!("{mantissa}.0E{exponent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sluice_sdk::config::props;
    use sluice_sdk::{Field, Struct};

    pub(super) fn record(value_schema: Option<Schema>, value: Value) -> TransformRecord {
        TransformRecord {
            topic: "test".into(),
            kafka_partition: Some(0),
            kafka_offset: Some(7),
            value_schema: value_schema.map(Arc::new),
            value,
            timestamp: Some(1_000),
            ..TransformRecord::default()
        }
    }

    pub(super) fn chain(pairs: &[(&str, &str)]) -> TransformChain {
        build_chain(&props(pairs)).unwrap_or_else(|e| panic!("{e}"))
    }

    pub(super) fn chain_error(pairs: &[(&str, &str)]) -> String {
        build_chain(&props(pairs)).unwrap_err().to_string()
    }

    /// Applies a one-step chain of `class` with `options` and expects a record back.
    pub(super) fn apply_one(
        class: &str,
        options: &[(&str, &str)],
        r: TransformRecord,
    ) -> TransformRecord {
        try_one(class, options, r)
            .unwrap_or_else(|e| panic!("{e}"))
            .expect("the record was dropped")
    }

    pub(super) fn try_one(
        class: &str,
        options: &[(&str, &str)],
        r: TransformRecord,
    ) -> Result<Option<TransformRecord>, TransformError> {
        let mut pairs: Vec<(String, String)> = vec![
            ("transforms".into(), "t".into()),
            ("transforms.t.type".into(), class.into()),
        ];
        pairs.extend(
            options
                .iter()
                .map(|(k, v)| (format!("transforms.t.{k}"), (*v).to_string())),
        );
        let p: Props = pairs.into_iter().collect();
        build_chain(&p).unwrap_or_else(|e| panic!("{e}")).apply(r)
    }

    #[test]
    fn a_predicate_limits_a_step_and_negate_inverts_it() {
        let c = chain(&[
            ("transforms", "drop"),
            (
                "transforms.drop.type",
                "org.apache.kafka.connect.transforms.Filter",
            ),
            ("transforms.drop.predicate", "isFoo"),
            ("predicates", "isFoo"),
            (
                "predicates.isFoo.type",
                "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            ),
            ("predicates.isFoo.pattern", "foo.*"),
        ]);
        let mut foo = record(None, Value::from("x"));
        foo.topic = "foo-1".into();
        let bar = record(None, Value::from("x"));
        assert_eq!(c.apply(foo.clone()).unwrap(), None);
        assert_eq!(c.apply(bar.clone()).unwrap(), Some(bar.clone()));

        let negated = chain(&[
            ("transforms", "drop"),
            ("transforms.drop.type", "Filter"),
            ("transforms.drop.predicate", "isFoo"),
            ("transforms.drop.negate", "true"),
            ("predicates", "isFoo"),
            ("predicates.isFoo.type", "TopicNameMatches"),
            ("predicates.isFoo.pattern", "foo.*"),
        ]);
        assert_eq!(negated.apply(foo.clone()).unwrap(), Some(foo));
        assert_eq!(negated.apply(bar).unwrap(), None);
    }

    #[test]
    fn steps_run_in_order_and_a_failure_names_alias_and_class() {
        let c = chain(&[
            ("transforms", "hoist,extract"),
            ("transforms.hoist.type", "HoistField$Value"),
            ("transforms.hoist.field", "inner"),
            ("transforms.extract.type", "ExtractField$Value"),
            ("transforms.extract.field", "inner"),
        ]);
        let r = record(Some(Schema::int32()), Value::Int32(3));
        assert_eq!(c.apply(r.clone()).unwrap(), Some(r.clone()));

        let failing = chain(&[
            ("transforms", "cast"),
            ("transforms.cast.type", "Cast$Value"),
            ("transforms.cast.spec", "int32"),
        ]);
        let err = failing
            .apply(record(None, Value::Array(vec![])))
            .unwrap_err();
        assert_eq!(err.alias, "cast");
        assert_eq!(err.class, "org.apache.kafka.connect.transforms.Cast$Value");
        assert!(
            err.to_string()
                .starts_with("transform 'cast' (org.apache.kafka.connect.transforms.Cast$Value): "),
            "{err}"
        );
    }

    #[test]
    fn bad_configuration_names_alias_and_option_at_validation_time() {
        let err = chain_error(&[
            ("transforms", "a,b,c,d,e,f"),
            ("transforms.a.type", "com.example.Nope"),
            ("transforms.b.type", "ValueToKey"),
            ("transforms.c.type", "RegexRouter"),
            ("transforms.c.regex", "("),
            ("transforms.c.replacement", "x"),
            ("transforms.d.type", "TimestampConverter$Value"),
            ("transforms.d.target.type", "string"),
            ("transforms.d.format", "YYYY-MM-dd"),
            ("transforms.e.type", "Filter"),
            ("transforms.e.predicate", "missing"),
            ("transforms.f.type", "MaskField$Value"),
            ("transforms.f.fields", "a"),
            ("transforms.f.replacment", "x"),
            ("transforms.z.type", "ValueToKey"),
            ("predicates", "p"),
            ("predicates.p.type", "TopicNameMatches"),
            ("predicates.p.pattern", "[a"),
        ]);
        for expected in [
            "option 'transforms.a.type' names a transform sluice does not have ('com.example.Nope'); known transforms: ",
            "option 'transforms.b.fields' is required",
            "option 'transforms.c.regex' is not a valid regular expression",
            "option 'transforms.d.format' ",
            "'Y'",
            "option 'transforms.e.predicate' names predicate 'missing', which 'predicates' does not list",
            "option 'transforms.f.replacment' is not an option of MaskField$Value (alias 'f'); its options are: fields, replacement, predicate, negate",
            "option 'transforms.z.type' belongs to 'z', which 'transforms' does not list",
            "option 'predicates.p.pattern' is not a valid regular expression",
        ] {
            assert!(err.contains(expected), "missing «{expected}» in: {err}");
        }
    }

    #[test]
    fn a_missing_type_and_a_duplicate_alias_are_errors() {
        let err = chain_error(&[
            ("transforms", "a,a"),
            ("transforms.a.field", "x"),
            ("predicates", "p"),
        ]);
        assert!(
            err.contains("option 'transforms.a.type' is required"),
            "{err}"
        );
        assert!(err.contains("option 'transforms' lists 'a' twice"), "{err}");
        assert!(
            err.contains("option 'predicates.p.type' is required"),
            "{err}"
        );
    }

    #[derive(Debug)]
    struct Upper;
    impl Transform for Upper {
        fn apply(&self, mut r: TransformRecord) -> Result<Option<TransformRecord>, String> {
            r.topic = r.topic.to_uppercase();
            Ok(Some(r))
        }
    }

    #[derive(Debug)]
    struct Broken;
    impl Predicate for Broken {
        fn test(&self, _: &TransformRecord) -> Result<bool, String> {
            Err("cannot tell".into())
        }
    }

    #[test]
    fn a_failing_predicate_fails_its_step_with_alias_and_class() {
        let mut registry = Registry::builtin();
        registry
            .register(TransformPlugin::predicate(
                "com.example.Broken",
                "Always fails.",
                ConfigDef::new(),
                |_| Ok(Box::new(Broken)),
            ))
            .unwrap();
        let c = build_chain_with(
            &registry,
            &props(&[
                ("transforms", "f"),
                ("transforms.f.type", "Filter"),
                ("transforms.f.predicate", "p"),
                ("predicates", "p"),
                ("predicates.p.type", "com.example.Broken"),
            ]),
        )
        .unwrap();
        let err = c.apply(record(None, Value::Null)).unwrap_err();
        assert_eq!(err.alias, "f");
        assert_eq!(err.message, "its predicate failed: cannot tell");
    }

    #[test]
    fn a_registered_class_builds_like_a_built_in_and_a_duplicate_is_refused() {
        let mut registry = Registry::builtin();
        let plugin = TransformPlugin {
            class: "com.example.UpperTopic".into(),
            aliases: vec!["UpperTopic".into()],
            version: "1.0".into(),
            doc: "Upper-cases the topic.".into(),
            config_def: ConfigDef::new(),
            factory: TransformKind::Transform(Arc::new(|_| Ok(Box::new(Upper)))),
        };
        registry.register(plugin.clone()).unwrap();
        assert!(registry.register(plugin).is_err());
        let c = build_chain_with(
            &registry,
            &props(&[
                ("transforms", "u"),
                ("transforms.u.type", "com.example.UpperTopic"),
            ]),
        )
        .unwrap();
        let out = c.apply(record(None, Value::Null)).unwrap().unwrap();
        assert_eq!(out.topic, "TEST");
        assert!(Registry::builtin().find("com.example.UpperTopic").is_none());
    }

    #[test]
    fn every_kafka_class_is_registered_with_both_sides() {
        let r = Registry::builtin();
        for simple in [
            "Cast$Key",
            "Cast$Value",
            "DropHeaders",
            "ExtractField$Key",
            "ExtractField$Value",
            "Filter",
            "Flatten$Key",
            "Flatten$Value",
            "HeaderFrom$Key",
            "HeaderFrom$Value",
            "HoistField$Key",
            "HoistField$Value",
            "InsertField$Key",
            "InsertField$Value",
            "InsertHeader",
            "MaskField$Key",
            "MaskField$Value",
            "RegexRouter",
            "ReplaceField$Key",
            "ReplaceField$Value",
            "SetSchemaMetadata$Key",
            "SetSchemaMetadata$Value",
            "TimestampConverter$Key",
            "TimestampConverter$Value",
            "TimestampRouter",
            "ValueToKey",
        ] {
            let p = r
                .find(&format!("{TRANSFORMS_PACKAGE}{simple}"))
                .unwrap_or_else(|| panic!("{simple}"));
            assert_eq!(p.kind_name(), "transformation");
        }
        for simple in ["HasHeaderKey", "RecordIsTombstone", "TopicNameMatches"] {
            let p = r
                .find(&format!("{PREDICATES_PACKAGE}{simple}"))
                .unwrap_or_else(|| panic!("{simple}"));
            assert_eq!(p.kind_name(), "predicate");
        }
    }

    #[test]
    fn the_schema_cache_builds_once_per_input_schema() {
        let cache = SchemaCache::default();
        let input: SchemaRef = Arc::new(Schema::int32());
        let mut builds = 0;
        for _ in 0..3 {
            let out = cache
                .get_or_build(&input, |_| {
                    builds += 1;
                    Ok(Schema::int64())
                })
                .unwrap();
            assert_eq!(*out, Schema::int64());
        }
        assert_eq!(builds, 1);
        let other: SchemaRef = Arc::new(Schema::int32());
        cache
            .get_or_build(&other, |_| {
                builds += 1;
                Ok(Schema::string())
            })
            .unwrap();
        assert_eq!(builds, 2, "another Arc is another entry");
        assert!(cache
            .get_or_build(&Arc::new(Schema::int8()), |_| Err("no".into()))
            .is_err());
    }

    #[test]
    fn java_number_text() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(0.001), "0.001");
        assert_eq!(java_double(1e10), "1.0E10");
        assert_eq!(java_double(1.5e-5), "1.5E-5");
        assert_eq!(java_float(42.5), "42.5");
        assert_eq!(java_double(f64::NAN), "NaN");
    }

    #[test]
    fn null_fields_take_their_default_when_asked() {
        let s = Schema::int32().optional();
        let mut with_default = s.clone();
        with_default.default = Some(Box::new(Value::Int32(9)));
        assert_eq!(
            field_value(&with_default, Some(&Value::Null), true),
            Value::Int32(9)
        );
        assert_eq!(
            field_value(&with_default, Some(&Value::Null), false),
            Value::Null
        );
        assert_eq!(field_value(&s, None, true), Value::Null);
        let st = Struct::new().with("a", 1);
        assert_eq!(field_value(&s, st.get("a"), true), Value::Int32(1));
        let _ = Field::new("unused", Schema::string());
    }
}
