//! Connectors created through the REST API, and every connector's target state, kept in the
//! compacted `connect-configs` topic in Kafka Connect's format:
//! `connector-<name>` -> `{"properties": {...}}` (null when deleted) and
//! `target-state-<name>` -> `{"state": "PAUSED", "state.v2": "STOPPED"}`. The values are
//! encoded by [`crate::cluster::config_log`], which a worker group follows continuously.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::producer::FutureRecord;

use crate::kafka::SharedProducer;
use serde_json::Value as Json;
use sluice_sdk::Props;
use tracing::{info, warn};

use crate::cluster::config_log;
use crate::error::{Error, Result};
use crate::kafka::KafkaClients;
use crate::offsets::read_topic;
use crate::task::TargetState;

use config_log::{CONNECTOR_PREFIX, TARGET_STATE_PREFIX};

/// What the configs topic held at start.
#[derive(Debug, Default, Clone)]
pub struct StoredConfigs {
    /// REST-created connectors by name.
    pub connectors: BTreeMap<String, Props>,
    /// Target states by connector name.
    pub target_states: BTreeMap<String, TargetState>,
}

/// Writer (and start-time reader) of the configs topic.
#[derive(Debug)]
pub struct ConfigStore {
    topic: String,
    producer: SharedProducer,
}

impl ConfigStore {
    /// Reads the whole configs topic (unless `empty`: it was just created).
    ///
    /// # Errors
    /// When the topic cannot be read.
    pub async fn load(
        clients: &KafkaClients,
        topic: &str,
        empty: bool,
        producer: SharedProducer,
    ) -> Result<(Self, StoredConfigs)> {
        let records = if empty {
            Vec::new()
        } else {
            let consumer = clients.reader()?;
            let name = topic.to_string();
            tokio::task::spawn_blocking(move || read_topic(&consumer, &name))
                .await
                .map_err(|e| Error::Other(e.to_string()))??
        };
        let mut stored = StoredConfigs::default();
        for (key, value) in records {
            let key = String::from_utf8_lossy(&key).into_owned();
            let value: Option<Json> = value.and_then(|v| serde_json::from_slice(&v).ok());
            if let Some(name) = key.strip_prefix(CONNECTOR_PREFIX) {
                match value
                    .as_ref()
                    .and_then(|v| v.get("properties"))
                    .and_then(Json::as_object)
                {
                    Some(props) => {
                        let props = props
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.clone(),
                                    v.as_str().map_or_else(|| v.to_string(), str::to_string),
                                )
                            })
                            .collect();
                        stored.connectors.insert(name.to_string(), props);
                    }
                    None => {
                        stored.connectors.remove(name);
                    }
                }
            } else if let Some(name) = key.strip_prefix(TARGET_STATE_PREFIX) {
                let state = value.as_ref().and_then(|v| {
                    v.get("state.v2")
                        .or_else(|| v.get("state"))
                        .and_then(Json::as_str)
                        .map(str::to_string)
                });
                match state.as_deref() {
                    Some("PAUSED") => {
                        stored
                            .target_states
                            .insert(name.to_string(), TargetState::Paused);
                    }
                    Some("STOPPED") => {
                        stored
                            .target_states
                            .insert(name.to_string(), TargetState::Stopped);
                    }
                    Some(_) => {
                        stored
                            .target_states
                            .insert(name.to_string(), TargetState::Started);
                    }
                    None => {
                        stored.target_states.remove(name);
                    }
                }
            }
        }
        info!(
            topic,
            connectors = stored.connectors.len(),
            "loaded connector configs"
        );
        Ok((
            Self {
                topic: topic.to_string(),
                producer,
            },
            stored,
        ))
    }

    /// Stores (or with `None` deletes) a REST-created connector's configuration.
    ///
    /// # Errors
    /// When Kafka does not acknowledge the write.
    pub async fn write_connector(&self, name: &str, props: Option<&Props>) -> Result<()> {
        let value = props.map(config_log::encode_connector_config);
        self.send(config_log::connector_key(name), value).await
    }

    /// Stores a connector's target state (or with `None` removes it).
    ///
    /// # Errors
    /// When Kafka does not acknowledge the write.
    pub async fn write_target_state(&self, name: &str, state: Option<TargetState>) -> Result<()> {
        // Kafka Connect writes "state" for old readers (which know no STOPPED) and the exact
        // state in "state.v2".
        let value = state.map(config_log::encode_target_state);
        self.send(config_log::target_state_key(name), value).await
    }

    async fn send(&self, key: String, value: Option<Vec<u8>>) -> Result<()> {
        let mut record = FutureRecord::<String, Vec<u8>>::to(&self.topic).key(&key);
        if let Some(v) = &value {
            record = record.payload(v);
        }
        self.producer
            .send(record, Duration::from_secs(30))
            .await
            .map(|_| ())
            .map_err(|(e, _)| {
                warn!(topic = %self.topic, key, error = %e, "config write failed");
                Error::Other(format!(
                    "cannot write to the config topic '{}': {e}",
                    self.topic
                ))
            })
    }
}
