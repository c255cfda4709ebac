//! Converters as plugins see them: the [`Converter`] trait (Connect data to Kafka bytes and
//! back) and the [`ConverterPlugin`] descriptor a class is registered with.
//!
//! The runtime's JSON, string and byte array converters implement the same trait; a plugin
//! library exports its own through [`PluginSet`](crate::PluginSet), and they are then named
//! by `key.converter` / `value.converter` with their class name or an alias.

use std::fmt;
use std::sync::Arc;

use crate::config::{Config, ConfigDef};
use crate::error::ConfigErrors;
use crate::schema::{Schema, SchemaRef};
use crate::value::Value;

/// Converts between a record's key or value and its Kafka bytes. Called in line with the
/// task, for every record: it must not block.
pub trait Converter: Send + Sync + fmt::Debug {
    /// Connect data to bytes (`None` is a Kafka null).
    ///
    /// # Errors
    /// Why the data cannot be written in this format.
    fn encode(&self, schema: Option<&Schema>, value: &Value) -> Result<Option<Vec<u8>>, String>;

    /// Bytes (`None` is a Kafka null) to Connect data.
    ///
    /// # Errors
    /// Why the bytes cannot be read in this format.
    fn decode(&self, bytes: Option<&[u8]>) -> Result<(Option<SchemaRef>, Value), String>;

    /// [`Converter::encode`] for a record of `topic`, telling an outage (retriable) from data
    /// that cannot be written. Converters whose output depends on the topic (a Schema
    /// Registry subject) or that call a service override it; the default calls `encode`.
    ///
    /// # Errors
    /// [`ConvertError::Data`] for data that cannot be written, [`ConvertError::Retriable`]
    /// for an outage.
    fn encode_for(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>, ConvertError> {
        let _ = topic;
        self.encode(schema, value).map_err(ConvertError::Data)
    }

    /// [`Converter::decode`] for a record of `topic`, telling an outage from bad bytes.
    ///
    /// # Errors
    /// As [`Converter::encode_for`].
    fn decode_for(
        &self,
        topic: &str,
        bytes: Option<&[u8]>,
    ) -> Result<(Option<SchemaRef>, Value), ConvertError> {
        let _ = topic;
        self.decode(bytes).map_err(ConvertError::Data)
    }
}

/// Why a conversion failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConvertError {
    /// The data cannot be converted (dead-lettered when errors are tolerated).
    Data(String),
    /// A service the converter needs is unreachable: the same record may convert later.
    Retriable(String),
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Data(m) | Self::Retriable(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ConvertError {}

/// Builds a converter from its parsed options (the `value.converter.*` sub-options, prefix
/// removed); the flag says whether it converts keys (`true`) or values.
pub type ConverterFactory =
    Arc<dyn Fn(&Config, bool) -> Result<Box<dyn Converter>, ConfigErrors> + Send + Sync>;

/// A converter class: its names, its options and how to build it.
#[derive(Clone)]
pub struct ConverterPlugin {
    /// Full class name, e.g. `com.example.HexConverter`.
    pub class: String,
    /// Other names it answers to.
    pub aliases: Vec<String>,
    /// Version shown by the REST listing.
    pub version: String,
    /// One line on what it does.
    pub doc: String,
    /// Its options (the sub-options after `key.converter.` / `value.converter.`).
    pub config_def: ConfigDef,
    /// Its factory.
    pub factory: ConverterFactory,
}

impl fmt::Debug for ConverterPlugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConverterPlugin")
            .field("class", &self.class)
            .finish_non_exhaustive()
    }
}

impl ConverterPlugin {
    /// A converter class.
    pub fn new(
        class: impl Into<String>,
        doc: impl Into<String>,
        config_def: ConfigDef,
        build: impl Fn(&Config, bool) -> Result<Box<dyn Converter>, ConfigErrors>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        Self {
            class: class.into(),
            aliases: Vec::new(),
            version: String::new(),
            doc: doc.into(),
            config_def,
            factory: Arc::new(build),
        }
    }

    /// With these aliases.
    pub fn aliases<S: Into<String>>(mut self, aliases: impl IntoIterator<Item = S>) -> Self {
        self.aliases = aliases.into_iter().map(Into::into).collect();
        self
    }

    /// With this version.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Whether `name` is this plugin's class or one of its aliases.
    pub fn answers_to(&self, name: &str) -> bool {
        self.class == name || self.aliases.iter().any(|a| a == name)
    }
}
