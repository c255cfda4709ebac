//! The connector classes a worker knows: the built-in connectors (and, later, plugin
//! libraries found in `plugin.path`).

use sluice_sdk::ConnectorPlugin;

/// Every built-in connector class.
pub fn builtin_plugins() -> Vec<ConnectorPlugin> {
    let mut plugins = Vec::new();
    plugins.extend(sluice_connector_file::plugins());
    plugins.extend(sluice_connector_elasticsearch::plugins());
    plugins.extend(sluice_connector_http::plugins());
    plugins
}
