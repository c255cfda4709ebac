//! File connectors, compatible with Kafka's `FileStreamSourceConnector` and
//! `FileStreamSinkConnector`: the source reads lines from a file (and keeps reading as it
//! grows), the sink writes one line per record.
//!
//! # Layout
//! - [`source`]: `file-source`: options, connector and task (offset = byte position).
//! - [`sink`]: `file-sink`: options, connector and task (flushed and synced before commits).

use std::sync::Arc;

use sluice_sdk::{ConnectorKind, ConnectorPlugin};

pub mod sink;
pub mod source;

/// The short class name of the file source.
pub const FILE_SOURCE: &str = "file-source";
/// The short class name of the file sink.
pub const FILE_SINK: &str = "file-sink";

/// The file connectors' plugin descriptors.
pub fn plugins() -> Vec<ConnectorPlugin> {
    vec![
        ConnectorPlugin {
            class: FILE_SOURCE.to_string(),
            aliases: vec![
                "org.apache.kafka.connect.file.FileStreamSourceConnector".to_string(),
                "FileStreamSource".to_string(),
            ],
            version: env!("CARGO_PKG_VERSION").to_string(),
            config_def: source::config_def(),
            kind: ConnectorKind::Source(Arc::new(|| {
                Box::new(source::FileSourceConnector::default())
            })),
        },
        ConnectorPlugin {
            class: FILE_SINK.to_string(),
            aliases: vec![
                "org.apache.kafka.connect.file.FileStreamSinkConnector".to_string(),
                "FileStreamSink".to_string(),
            ],
            version: env!("CARGO_PKG_VERSION").to_string(),
            config_def: sink::config_def(),
            kind: ConnectorKind::Sink(Arc::new(|| Box::new(sink::FileSinkConnector::default()))),
        },
    ]
}
