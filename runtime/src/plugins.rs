//! The connector classes a worker knows: the built-in connectors, and the plugin libraries
//! found in `plugin.path` (see [`crate::plugin_loader`]).

use std::path::PathBuf;

use sluice_sdk::ConnectorPlugin;

use crate::plugin_loader::load_plugins;

/// Every built-in connector class.
pub fn builtin_plugins() -> Vec<ConnectorPlugin> {
    let mut plugins = Vec::new();
    plugins.extend(sluice_connector_file::plugins());
    plugins.extend(sluice_connector_elasticsearch::plugins());
    plugins.extend(sluice_connector_http::plugins());
    plugins.extend(sluice_connector_postgres::plugins());
    plugins
}

/// The built-in classes, then those of every usable plugin library in `plugin_path`
/// (unusable ones are logged and skipped). Loads libraries: call it off the async threads.
pub fn worker_plugins(plugin_path: &[PathBuf]) -> Vec<ConnectorPlugin> {
    let mut plugins = builtin_plugins();
    let loaded = load_plugins(plugin_path, &plugins);
    plugins.extend(loaded);
    plugins
}
