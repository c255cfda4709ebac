//! [`PluginSet`]: everything one plugin library exports.

use crate::connector::ConnectorPlugin;
use crate::convert::ConverterPlugin;
use crate::transform::TransformPlugin;

/// The classes a plugin library exports through [`export_plugin!`](crate::export_plugin):
/// connectors, transforms and predicates, converters. Any of the lists may be empty, not all.
///
/// A function returning `Vec<ConnectorPlugin>` converts into one, so a connector-only plugin
/// keeps writing `export_plugin!(plugins)`.
#[derive(Debug, Clone, Default)]
pub struct PluginSet {
    /// Source and sink connector classes.
    pub connectors: Vec<ConnectorPlugin>,
    /// Transform and predicate classes.
    pub transforms: Vec<TransformPlugin>,
    /// Converter classes.
    pub converters: Vec<ConverterPlugin>,
}

impl PluginSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// With a connector class.
    pub fn connector(mut self, plugin: ConnectorPlugin) -> Self {
        self.connectors.push(plugin);
        self
    }

    /// With a transform or predicate class.
    pub fn transform(mut self, plugin: TransformPlugin) -> Self {
        self.transforms.push(plugin);
        self
    }

    /// With a converter class.
    pub fn converter(mut self, plugin: ConverterPlugin) -> Self {
        self.converters.push(plugin);
        self
    }
}

impl From<Vec<ConnectorPlugin>> for PluginSet {
    fn from(connectors: Vec<ConnectorPlugin>) -> Self {
        Self {
            connectors,
            ..Self::default()
        }
    }
}
