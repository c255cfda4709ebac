//! Single message transforms and predicates as plugins see them: the record they read and
//! change ([`TransformRecord`]), the [`Transform`] and [`Predicate`] traits, and the
//! [`TransformPlugin`] descriptor a class is registered with.
//!
//! The runtime's built-in transforms (Kafka's `Cast`, `Filter`, ...) implement these same
//! traits and register the same descriptors; a plugin library exports its own through
//! [`PluginSet`](crate::PluginSet) and [`export_plugin!`](crate::export_plugin), and they are
//! then named by `transforms.<alias>.type` / `predicates.<alias>.type` like the built-ins.

use std::fmt;
use std::sync::Arc;

use crate::config::{Config, ConfigDef};
use crate::error::ConfigErrors;
use crate::record::Header;
use crate::schema::SchemaRef;
use crate::value::Value;

/// The part of a record transforms may read and change (Kafka Connect's `ConnectRecord`).
#[derive(Debug, Clone, PartialEq, Default)]
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
    /// Headers, in order; a name may repeat.
    pub headers: Vec<Header>,
}

/// One configured transform. Implemented by the built-ins and by plugins.
///
/// Transforms run in line with the task that applies them, on whatever thread it runs: they
/// must not block (no I/O, no waiting).
pub trait Transform: Send + Sync + fmt::Debug {
    /// The record transformed, or `None` to drop it.
    ///
    /// # Errors
    /// Why the record cannot be transformed (Kafka Connect's `DataException`); the chain adds
    /// the transform's alias and class, and `errors.tolerance` decides what happens next.
    fn apply(&self, record: TransformRecord) -> Result<Option<TransformRecord>, String>;
}

/// One configured predicate (KIP-585). Like a [`Transform`], it must not block.
pub trait Predicate: Send + Sync + fmt::Debug {
    /// Whether the record matches.
    ///
    /// # Errors
    /// Why the record cannot be tested; the step it guards fails with it, as a transform
    /// error would.
    fn test(&self, record: &TransformRecord) -> Result<bool, String>;
}

/// Builds a transform from its parsed options. Errors name options without the
/// `transforms.<alias>.` prefix; the runtime adds it.
pub type TransformFactory =
    Arc<dyn Fn(&Config) -> Result<Box<dyn Transform>, ConfigErrors> + Send + Sync>;
/// Builds a predicate from its parsed options (errors as for [`TransformFactory`]).
pub type PredicateFactory =
    Arc<dyn Fn(&Config) -> Result<Box<dyn Predicate>, ConfigErrors> + Send + Sync>;

/// What a [`TransformPlugin`] builds.
#[derive(Clone)]
pub enum TransformKind {
    /// A transform (`type` "transformation" in the REST listing).
    Transform(TransformFactory),
    /// A predicate (`type` "predicate").
    Predicate(PredicateFactory),
}

impl fmt::Debug for TransformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Transform(_) => "Transform(..)",
            Self::Predicate(_) => "Predicate(..)",
        })
    }
}

/// A transform or predicate class: its names, its options and how to build it.
///
/// The factory gets the options declared in `config_def`, parsed and validated by the runtime
/// (unknown options are refused before it runs); it reports what the declarations cannot
/// check (a bad pattern, options that exclude each other) as [`ConfigErrors`].
#[derive(Clone)]
pub struct TransformPlugin {
    /// Full class name, e.g. `org.apache.kafka.connect.transforms.Cast$Value`.
    pub class: String,
    /// Other names it answers to (the simple name first, e.g. `Cast$Value`).
    pub aliases: Vec<String>,
    /// Version shown by the REST listing.
    pub version: String,
    /// One line on what it does.
    pub doc: String,
    /// Its options.
    pub config_def: ConfigDef,
    /// Transform or predicate, with the factory.
    pub factory: TransformKind,
}

impl fmt::Debug for TransformPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransformPlugin")
            .field("class", &self.class)
            .field("kind", &self.kind_name())
            .finish_non_exhaustive()
    }
}

impl TransformPlugin {
    /// A transform class.
    pub fn transform(
        class: impl Into<String>,
        doc: impl Into<String>,
        config_def: ConfigDef,
        build: impl Fn(&Config) -> Result<Box<dyn Transform>, ConfigErrors> + Send + Sync + 'static,
    ) -> Self {
        Self {
            class: class.into(),
            aliases: Vec::new(),
            version: String::new(),
            doc: doc.into(),
            config_def,
            factory: TransformKind::Transform(Arc::new(build)),
        }
    }

    /// A predicate class.
    pub fn predicate(
        class: impl Into<String>,
        doc: impl Into<String>,
        config_def: ConfigDef,
        build: impl Fn(&Config) -> Result<Box<dyn Predicate>, ConfigErrors> + Send + Sync + 'static,
    ) -> Self {
        Self {
            class: class.into(),
            aliases: Vec::new(),
            version: String::new(),
            doc: doc.into(),
            config_def,
            factory: TransformKind::Predicate(Arc::new(build)),
        }
    }

    /// With these aliases (the simple name first).
    pub fn aliases<S: Into<String>>(mut self, aliases: impl IntoIterator<Item = S>) -> Self {
        self.aliases = aliases.into_iter().map(Into::into).collect();
        self
    }

    /// With this version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Kafka Connect's plugin type name: `transformation` or `predicate`.
    pub fn kind_name(&self) -> &'static str {
        match self.factory {
            TransformKind::Transform(_) => "transformation",
            TransformKind::Predicate(_) => "predicate",
        }
    }

    /// Whether `name` is this plugin's class or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.class == name || self.aliases.iter().any(|a| a == name)
    }

    /// The first alias (Kafka's simple name), else the class.
    pub fn simple_name(&self) -> &str {
        self.aliases
            .first()
            .map_or(self.class.as_str(), String::as_str)
    }
}
