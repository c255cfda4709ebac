//! The options every connector has (Kafka Connect's `ConnectorConfig`,
//! `SourceConnectorConfig` and `SinkConnectorConfig`), and the parsing of a whole connector
//! configuration: runtime options, converter and error options, the connector's own options,
//! and the rejection of options nobody declares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use sluice_sdk::{
    ConfigDef, ConfigErrors, ConfigKey, ConfigType, ConnectorKind, ConnectorPlugin, Importance,
    Props, Validator,
};

use crate::config_providers::{normalise, ConfigProviders};
use crate::converter::{build_converter, Converter, ConverterRole};
use crate::errors::ErrorPolicy;
use crate::transforms::{build_chain, TransformChain};

/// `name`.
pub const NAME: &str = "name";
/// `connector.class`.
pub const CONNECTOR_CLASS: &str = "connector.class";
/// `tasks.max`.
pub const TASKS_MAX: &str = "tasks.max";
/// `topics` (sinks).
pub const TOPICS: &str = "topics";
/// `topics.regex` (sinks).
pub const TOPICS_REGEX: &str = "topics.regex";
/// `errors.retry.timeout`.
pub const ERRORS_RETRY_TIMEOUT: &str = "errors.retry.timeout";
/// `errors.retry.delay.max.ms`.
pub const ERRORS_RETRY_DELAY_MAX_MS: &str = "errors.retry.delay.max.ms";
/// `errors.tolerance`.
pub const ERRORS_TOLERANCE: &str = "errors.tolerance";
/// `errors.log.enable`.
pub const ERRORS_LOG_ENABLE: &str = "errors.log.enable";
/// `errors.log.include.messages`.
pub const ERRORS_LOG_INCLUDE_MESSAGES: &str = "errors.log.include.messages";
/// `errors.deadletterqueue.topic.name`.
pub const DLQ_TOPIC: &str = "errors.deadletterqueue.topic.name";
/// `errors.deadletterqueue.topic.replication.factor`.
pub const DLQ_REPLICATION_FACTOR: &str = "errors.deadletterqueue.topic.replication.factor";
/// `errors.deadletterqueue.context.headers.enable`.
pub const DLQ_CONTEXT_HEADERS: &str = "errors.deadletterqueue.context.headers.enable";

/// Option prefixes accepted without declaration: converter sub-options and client overrides.
const FREE_PREFIXES: &[&str] = &[
    "key.converter.",
    "value.converter.",
    "producer.override.",
    "consumer.override.",
    "admin.override.",
];

/// Options Kafka Connect has that sluice accepts and ignores, because they describe
/// something sluice does its own way (they are harmless in a copied Kafka Connect JSON).
const IGNORED: &[&str] = &[
    "header.converter",
    "config.action.reload",
    "topic.creation.default.replication.factor",
    "topic.creation.default.partitions",
    "topic.creation.groups",
];

/// The options every connector has.
pub fn common_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            ConfigKey::new(NAME, ConfigType::String, Importance::High, "Globally unique name of the connector.")
                .group("Common")
                .validator(Validator::NonEmpty),
        )
        .define(
            ConfigKey::new(CONNECTOR_CLASS, ConfigType::String, Importance::High,
                "The connector: a short name (file-source, postgres-source, ...) or the Kafka Connect / Confluent class name it replaces.")
                .group("Common"),
        )
        .define(
            ConfigKey::new(TASKS_MAX, ConfigType::Int, Importance::High, "Maximum number of tasks to use for this connector.")
                .default_value("1")
                .validator(Validator::AtLeast(1.0))
                .group("Common"),
        )
        .define(
            ConfigKey::new("key.converter", ConfigType::Class, Importance::Low,
                "Converter for record keys: json, string, bytearray or Kafka Connect's class names. Defaults to the worker's key.converter.")
                .optional()
                .group("Common"),
        )
        .define(
            ConfigKey::new("value.converter", ConfigType::Class, Importance::Low,
                "Converter for record values. Defaults to the worker's value.converter.")
                .optional()
                .group("Common"),
        )
        .define(
            ConfigKey::new("transforms", ConfigType::List, Importance::Low,
                "Aliases of the single message transforms to apply, in order; each configured with transforms.<alias>.type and its options.")
                .default_value("")
                .group("Transforms"),
        )
        .define(
            ConfigKey::new("predicates", ConfigType::List, Importance::Low,
                "Aliases of the predicates transforms may name with transforms.<alias>.predicate; each configured with predicates.<alias>.type and its options.")
                .default_value("")
                .group("Predicates"),
        )
        .define(
            ConfigKey::new(ERRORS_RETRY_TIMEOUT, ConfigType::Long, Importance::Medium,
                "Maximum milliseconds a retriable converter or transform failure is retried (Kafka Connect's meaning); 0 means no retries, -1 retries forever. Built-in converters and transforms only fail with data errors, which are never retried.")
                .default_value("0")
                .validator(Validator::AtLeast(-1.0))
                .group("Error Handling"),
        )
        .define(
            ConfigKey::new(ERRORS_RETRY_DELAY_MAX_MS, ConfigType::Long, Importance::Medium,
                "Maximum milliseconds between consecutive retries (exponential backoff with jitter up to this).")
                .default_value("60000")
                .validator(Validator::AtLeast(1.0))
                .group("Error Handling"),
        )
        .define(
            ConfigKey::new(ERRORS_TOLERANCE, ConfigType::String, Importance::Medium,
                "none: an error fails the task. all: records that fail are skipped (and sent to the dead letter queue if one is set).")
                .default_value("none")
                .validator(Validator::one_of(&["none", "all"]))
                .group("Error Handling"),
        )
        .define(
            ConfigKey::new(ERRORS_LOG_ENABLE, ConfigType::Boolean, Importance::Medium,
                "Log every error with the failed operation and record details.")
                .default_value("false")
                .group("Error Handling"),
        )
        .define(
            ConfigKey::new(ERRORS_LOG_INCLUDE_MESSAGES, ConfigType::Boolean, Importance::Medium,
                "Include the record's key and value in error logs.")
                .default_value("false")
                .group("Error Handling"),
        )
        .define(
            ConfigKey::new(DLQ_TOPIC, ConfigType::String, Importance::Medium,
                "Topic records that fail are written to (with errors.tolerance=all). Empty: no dead letter queue. sluice also accepts it on source connectors.")
                .default_value("")
                .group("Error Handling"),
        )
        .define(
            ConfigKey::new(DLQ_REPLICATION_FACTOR, ConfigType::Short, Importance::Low,
                "Replication factor of the dead letter topic when created (capped at the cluster's broker count).")
                .default_value("3")
                .group("Error Handling"),
        )
        .define(
            ConfigKey::new(DLQ_CONTEXT_HEADERS, ConfigType::Boolean, Importance::Medium,
                "Add __connect.errors.* headers describing the failure to dead-lettered records.")
                .default_value("false")
                .group("Error Handling"),
        )
}

/// The options sink connectors add.
pub fn sink_def() -> ConfigDef {
    common_def()
        .define(
            ConfigKey::new(
                TOPICS,
                ConfigType::List,
                Importance::High,
                "Topics to consume (comma-separated). Give this or topics.regex.",
            )
            .default_value("")
            .group("Common"),
        )
        .define(
            ConfigKey::new(
                TOPICS_REGEX,
                ConfigType::String,
                Importance::High,
                "Regular expression of topics to consume. Give this or topics.",
            )
            .default_value("")
            .group("Common"),
        )
}

/// A connector configuration with the runtime's options parsed and checked.
#[derive(Debug, Clone)]
pub struct ConnectorSettings {
    /// Connector name.
    pub name: String,
    /// The plugin that runs it.
    pub plugin: ConnectorPlugin,
    /// Maximum tasks.
    pub tasks_max: usize,
    /// Key converter.
    pub key_converter: Arc<dyn Converter>,
    /// Value converter.
    pub value_converter: Arc<dyn Converter>,
    /// Error handling.
    pub errors: ErrorPolicy,
    /// Single message transforms.
    pub transforms: TransformChain,
    /// Sink topics.
    pub topics: Vec<String>,
    /// Sink topic pattern.
    pub topics_regex: Option<Regex>,
    /// `producer.override.*` without the prefix.
    pub producer_overrides: BTreeMap<String, String>,
    /// `consumer.override.*` without the prefix.
    pub consumer_overrides: BTreeMap<String, String>,
    /// The whole configuration as the connector receives it (config provider references
    /// resolved, worker converter defaults applied).
    pub props: Props,
    /// The options whose stored value holds a config provider reference, with that value.
    pub references: Props,
    /// The worker's config providers, to resolve the references again when the connector or a
    /// task starts.
    pub providers: ConfigProviders,
}

/// Parses and checks a connector configuration written as `raw`; `defaults` are the worker's
/// connector defaults (converters), `plugins` the known connector classes, `providers` what
/// resolves `${provider:...}` references, `file_allowed` the folders the file connectors may
/// use (`file.connectors.allowed.paths`; empty: anywhere).
///
/// # Errors
/// Every problem, each naming its option, prefixed by the connector's name.
pub fn parse_connector_config(
    raw: &Props,
    defaults: &BTreeMap<String, String>,
    plugins: &[ConnectorPlugin],
    providers: &ConfigProviders,
    file_allowed: &[PathBuf],
) -> Result<ConnectorSettings, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let mut props: Props = defaults.clone();
    // A connector naming its own converter does not inherit the worker's converter sub-options.
    for role in [ConverterRole::Key, ConverterRole::Value] {
        if raw.contains_key(role.option()) {
            let prefix = format!("{}.", role.option());
            props.retain(|k, _| !k.starts_with(&prefix));
        }
    }
    let mut references = Props::new();
    for (k, v) in raw {
        if !ConfigProviders::has_reference(v) {
            props.insert(k.clone(), v.clone());
            continue;
        }
        references.insert(k.clone(), v.clone());
        match providers.resolve(k, v) {
            Ok(v) => {
                props.insert(k.clone(), v);
            }
            Err(e) => errors.push(k, e),
        }
    }
    let class = props.get(CONNECTOR_CLASS).map(|s| s.trim().to_string());
    let plugin = match class.as_deref() {
        None | Some("") => {
            errors.push(
                CONNECTOR_CLASS,
                "is required: name the connector to run, e.g. file-source",
            );
            None
        }
        Some(class) => match plugins.iter().find(|p| p.answers_to(class)) {
            Some(p) => Some(p.clone()),
            None => {
                let known: Vec<&str> = plugins.iter().map(|p| p.class.as_str()).collect();
                errors.push(
                    CONNECTOR_CLASS,
                    format!(
                        "names an unknown connector class '{class}'; known classes: {}",
                        known.join(", ")
                    ),
                );
                None
            }
        },
    };
    let runtime_def = match plugin.as_ref().map(|p| &p.kind) {
        Some(ConnectorKind::Sink(_)) => sink_def(),
        _ => common_def(),
    };
    let (runtime, runtime_errors) = runtime_def.parse_lenient(&props);
    errors.0.extend(runtime_errors.0);
    if let Some(plugin) = &plugin {
        let (_, plugin_errors) = plugin.config_def.parse_lenient(&props);
        errors.0.extend(plugin_errors.0);
        let unknown = runtime_def.unknown_options(&props, |name| {
            plugin.config_def.key(name).is_some()
                || IGNORED.contains(&name)
                || FREE_PREFIXES.iter().any(|p| name.starts_with(p))
                || name.starts_with("transforms.")
                || name.starts_with("predicates.")
        });
        errors.0.extend(unknown.0);
    }
    let mut converters = Vec::new();
    for role in [ConverterRole::Key, ConverterRole::Value] {
        match build_converter(role, &props) {
            Ok(c) => converters.push(c),
            Err(e) => errors.0.extend(e.0),
        }
    }
    let transforms = match build_chain(&props) {
        Ok(chain) => chain,
        Err(e) => {
            errors.0.extend(e.0);
            TransformChain::default()
        }
    };
    let errors_policy = ErrorPolicy::from_config(&runtime);
    let mut topics = Vec::new();
    let mut topics_regex = None;
    if matches!(
        plugin.as_ref().map(|p| &p.kind),
        Some(ConnectorKind::Sink(_))
    ) {
        topics = runtime.get_list(TOPICS);
        let pattern = runtime
            .get_str(TOPICS_REGEX)
            .unwrap_or_default()
            .to_string();
        match (topics.is_empty(), pattern.is_empty()) {
            (true, true) => errors.push(
                TOPICS,
                "is required for a sink: give topics (a comma-separated list) or topics.regex",
            ),
            (false, false) => errors.push(
                TOPICS_REGEX,
                "cannot be used together with topics; keep one of them",
            ),
            (true, false) => match Regex::new(&format!("^(?:{pattern})$")) {
                Ok(r) => topics_regex = Some(r),
                Err(e) => errors.push(
                    TOPICS_REGEX,
                    format!("is not a valid regular expression: {e}"),
                ),
            },
            (false, true) => {}
        }
        if !errors_policy.dlq_topic.is_empty() && topics.contains(&errors_policy.dlq_topic) {
            errors.push(
                DLQ_TOPIC,
                "must not be one of the connector's own topics (records would loop)",
            );
        }
    }
    if let Some(plugin) = &plugin {
        check_file_path(plugin, &props, file_allowed, &mut errors);
    }
    let name = runtime.get_str(NAME).unwrap_or_default().to_string();
    let prefixed = |prefix: &str| -> BTreeMap<String, String> {
        props
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone())))
            .collect()
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let (Some(plugin), [key_converter, value_converter]) = (plugin, converters.as_slice()) else {
        return Err(errors);
    };
    Ok(ConnectorSettings {
        name,
        tasks_max: usize::try_from(runtime.get_i64(TASKS_MAX).unwrap_or(1)).unwrap_or(1),
        key_converter: key_converter.clone(),
        value_converter: value_converter.clone(),
        errors: errors_policy,
        transforms,
        topics,
        topics_regex,
        producer_overrides: prefixed("producer.override."),
        consumer_overrides: prefixed("consumer.override."),
        plugin,
        props,
        references,
        providers: providers.clone(),
    })
}

impl ConnectorSettings {
    /// The configuration with its references resolved again (a renewed secret is picked up
    /// when the connector restarts).
    ///
    /// # Errors
    /// A reference that no longer resolves, naming the option.
    pub fn fresh_props(&self) -> Result<Props, String> {
        let mut props = self.props.clone();
        for (option, text) in &self.references {
            props.insert(option.clone(), self.providers.resolve(option, text)?);
        }
        Ok(props)
    }

    /// Task configurations derived by the connector from `resolved`, with the references of
    /// the stored configuration put back in place of the secrets.
    pub fn hide_secrets(&self, resolved: &Props, tasks: Vec<Props>) -> Vec<Props> {
        ConfigProviders::restore_references(&self.references, resolved, tasks)
    }

    /// A task configuration with its references resolved, as the task receives it.
    ///
    /// # Errors
    /// A reference that does not resolve, naming the option.
    pub fn resolve_task(&self, task: &Props) -> Result<Props, String> {
        self.providers.resolve_all(task)
    }

    /// Whether the connector is a sink.
    pub fn is_sink(&self) -> bool {
        matches!(self.plugin.kind, ConnectorKind::Sink(_))
    }
}

/// The file source's and sink's `file` must lie in one of `allowed` (when any is given): the
/// path is made absolute, `..` taken out and symbolic links of its existing part followed, so
/// neither climbs out.
fn check_file_path(
    plugin: &ConnectorPlugin,
    props: &Props,
    allowed: &[PathBuf],
    errors: &mut ConfigErrors,
) {
    use sluice_connector_file::{FILE_SINK, FILE_SOURCE};
    if allowed.is_empty() || !(plugin.answers_to(FILE_SOURCE) || plugin.answers_to(FILE_SINK)) {
        return;
    }
    let Some(file) = props
        .get("file")
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
    else {
        return;
    };
    let real = |path: &Path| -> PathBuf {
        let normal = normalise(path);
        // Follow links in the part of the path that exists; the rest is appended as written.
        let mut existing = normal.clone();
        let mut tail = Vec::new();
        while !existing.exists() {
            match (
                existing.file_name().map(ToOwned::to_owned),
                existing.parent(),
            ) {
                (Some(name), Some(parent)) => {
                    tail.push(name);
                    existing = parent.to_path_buf();
                }
                _ => break,
            }
        }
        let mut out = existing.canonicalize().unwrap_or(existing);
        for part in tail.into_iter().rev() {
            out.push(part);
        }
        out
    };
    let path = real(Path::new(file));
    if allowed.iter().any(|dir| path.starts_with(real(dir))) {
        return;
    }
    errors.push(
        "file",
        format!(
            "is {file}, outside the folders this worker allows file connectors to use (worker setting file.connectors.allowed.paths = {}); put the file in one of them or ask the worker's operator to add its folder",
            allowed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    );
}

/// Milliseconds as a duration; negative means "forever".
pub fn millis(ms: i64) -> Option<Duration> {
    u64::try_from(ms).ok().map(Duration::from_millis)
}
