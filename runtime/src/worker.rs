//! The worker: the registry of connector classes and the lifecycle of every connector and
//! task (create, reconfigure, pause, resume, stop, restart, delete), whichever way it was
//! declared (a file in `configs/` or the REST API).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::kafka::SharedProducer;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::Timeout;
use serde_json::{json, Value as Json};
use sluice_sdk::{
    ConfigErrors, ConnectorContext, ConnectorHost, ConnectorKind, ConnectorPlugin, Props,
    SinkConnector, SourceConnector,
};
use tokio::sync::{mpsc, watch, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config_store::ConfigStore;
use crate::connector_config::{parse_connector_config, ConnectorSettings, NAME};
use crate::error::{Error, Result};
use crate::kafka::KafkaClients;
use crate::metrics::Metrics;
use crate::offsets::OffsetStore;
use crate::settings::WorkerSettings;
use crate::status::{ConnectorStatusView, State, StatusStore};
use crate::task::{sink::run_sink_task, source::run_source_task, TargetState, TaskEnv};

/// Where a connector's configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A JSON file in the watched configs folder; the file is the source of truth.
    File(PathBuf),
    /// Created through the REST API; stored in the config topic.
    Rest,
}

enum Instance {
    Source(Box<dyn SourceConnector>),
    Sink(Box<dyn SinkConnector>),
}

struct RunningTask {
    id: u32,
    token: CancellationToken,
    handle: JoinHandle<()>,
}

struct ConnectorSlot {
    raw: Props,
    settings: Arc<ConnectorSettings>,
    origin: Origin,
    target: watch::Sender<TargetState>,
    instance: Option<Instance>,
    task_configs: Vec<Props>,
    tasks: Vec<RunningTask>,
    token: CancellationToken,
}

/// Events connectors send to the worker through their [`ConnectorContext`].
#[derive(Debug)]
enum HostEvent {
    Reconfigure(String),
    Failed(String, String),
}

#[derive(Debug)]
struct WorkerHost {
    name: String,
    events: mpsc::UnboundedSender<HostEvent>,
}

impl ConnectorHost for WorkerHost {
    fn request_task_reconfiguration(&self) {
        let _ = self.events.send(HostEvent::Reconfigure(self.name.clone()));
    }

    fn raise_error(&self, error: sluice_sdk::Error) {
        let _ = self
            .events
            .send(HostEvent::Failed(self.name.clone(), error.to_string()));
    }
}

/// What the REST API shows of one connector.
#[derive(Debug, Clone)]
pub struct ConnectorInfo {
    /// Name.
    pub name: String,
    /// Configuration as written.
    pub config: Props,
    /// `source` or `sink`.
    pub kind: &'static str,
    /// Task configurations.
    pub tasks: Vec<Props>,
    /// Where it was declared.
    pub origin: Origin,
}

/// The worker.
pub struct Worker {
    settings: WorkerSettings,
    clients: KafkaClients,
    plugins: std::sync::RwLock<Vec<ConnectorPlugin>>,
    offsets: Arc<OffsetStore>,
    configs: ConfigStore,
    status: Arc<StatusStore>,
    metrics: Arc<Metrics>,
    internal_producer: SharedProducer,
    connectors: Mutex<BTreeMap<String, ConnectorSlot>>,
    /// Target states from the config topic, for connectors (re)created from files.
    stored_targets: Mutex<BTreeMap<String, TargetState>>,
    root: CancellationToken,
    events: mpsc::UnboundedSender<HostEvent>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("bootstrap", &self.clients.bootstrap())
            .finish_non_exhaustive()
    }
}

impl Worker {
    /// Connects to the cluster at `bootstrap`, creates and reads the internal topics, and
    /// returns a worker with no connectors yet. `plugins` are the connector classes it knows.
    ///
    /// # Errors
    /// When the cluster cannot be reached or the internal topics cannot be read.
    pub async fn connect(
        settings: WorkerSettings,
        bootstrap: String,
        plugins: Vec<ConnectorPlugin>,
        root: CancellationToken,
    ) -> Result<Arc<Self>> {
        let clients = KafkaClients::new(bootstrap, &settings);
        let admin = clients.wait_for_cluster(Duration::from_secs(30)).await?;
        // Kafka Connect's default partition counts: offsets 25, configs 1 (it must be 1), status 5.
        let created = KafkaClients::ensure_topics_with(
            &admin,
            &[
                (&settings.offset_topic, 25, true),
                (&settings.config_topic, 1, true),
                (&settings.status_topic, 5, true),
            ],
        )
        .await;
        crate::kafka::release(admin);
        let created = created?;
        let internal_producer = clients.internal_producer()?;
        let (offsets, configs) = tokio::join!(
            OffsetStore::load(
                &clients,
                &settings.offset_topic,
                created[0],
                internal_producer.clone()
            ),
            ConfigStore::load(
                &clients,
                &settings.config_topic,
                created[1],
                internal_producer.clone()
            ),
        );
        let offsets = Arc::new(offsets?);
        let (configs, stored) = configs?;
        let worker_id = settings.rest_addr.to_string();
        let status = Arc::new(StatusStore::new(
            worker_id,
            settings.status_topic.clone(),
            Some(internal_producer.clone()),
        ));
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let worker = Arc::new(Self {
            settings,
            clients,
            plugins: std::sync::RwLock::new(plugins),
            offsets,
            configs,
            status,
            metrics: Arc::new(Metrics::default()),
            internal_producer,
            connectors: Mutex::new(BTreeMap::new()),
            stored_targets: Mutex::new(stored.target_states.clone()),
            root,
            events: events_tx,
        });
        tokio::spawn(handle_host_events(Arc::downgrade(&worker), events_rx));
        for (name, props) in stored.connectors {
            let target = stored
                .target_states
                .get(&name)
                .copied()
                .unwrap_or(TargetState::Started);
            if let Err(e) = worker
                .put_connector_with_state(&name, props, Origin::Rest, target)
                .await
            {
                error!(connector = %name, error = %e, "cannot start stored connector");
            }
        }
        Ok(worker)
    }

    /// The worker settings.
    pub fn settings(&self) -> &WorkerSettings {
        &self.settings
    }

    /// The Kafka bootstrap servers in use.
    pub fn bootstrap(&self) -> &str {
        self.clients.bootstrap()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The connector classes this worker knows.
    pub fn plugins(&self) -> Vec<ConnectorPlugin> {
        self.plugins.read().expect("plugins lock").clone()
    }

    /// The plugin answering to `class` (short name, alias, or a class name's last segment).
    pub fn plugin(&self, class: &str) -> Option<ConnectorPlugin> {
        let plugins = self.plugins.read().expect("plugins lock");
        plugins
            .iter()
            .find(|p| p.answers_to(class))
            .or_else(|| {
                plugins.iter().find(|p| {
                    p.aliases
                        .iter()
                        .any(|a| a.rsplit('.').next().is_some_and(|simple| simple == class))
                })
            })
            .cloned()
    }

    /// Names of every connector.
    pub async fn connector_names(&self) -> Vec<String> {
        self.connectors.lock().await.keys().cloned().collect()
    }

    /// Checks a configuration as the validate endpoint does: every option's errors.
    pub async fn validate(&self, raw: &Props) -> (Option<ConnectorPlugin>, ConfigErrors) {
        let plugins = self.plugins();
        match parse_connector_config(raw, &self.settings.connector_defaults, &plugins) {
            Ok(settings) => {
                let errors = connector_validate(&settings).await;
                (Some(settings.plugin.clone()), errors)
            }
            Err(errors) => {
                let plugin = raw
                    .get("connector.class")
                    .and_then(|c| plugins.iter().find(|p| p.answers_to(c.trim())).cloned());
                (plugin, errors)
            }
        }
    }

    /// Creates or reconfigures connector `name` from `raw` (as written). Returns whether it was
    /// created. An unchanged configuration leaves the running connector alone.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the connector and each bad option;
    /// [`Error::Conflict`] when a REST change targets a file-managed connector.
    pub async fn put_connector(&self, name: &str, raw: Props, origin: Origin) -> Result<bool> {
        let target = self
            .stored_targets
            .lock()
            .await
            .get(name)
            .copied()
            .unwrap_or(TargetState::Started);
        self.put_connector_with_state(name, raw, origin, target)
            .await
    }

    async fn put_connector_with_state(
        &self,
        name: &str,
        mut raw: Props,
        origin: Origin,
        initial_target: TargetState,
    ) -> Result<bool> {
        match raw.get(NAME) {
            Some(n) if n != name => {
                return Err(Error::InvalidConfig(format!(
                    "connector '{name}': option 'name' is '{n}' but the connector is called '{name}'; make them equal"
                )))
            }
            Some(_) => {}
            None => {
                raw.insert(NAME.to_string(), name.to_string());
            }
        }
        let plugins = self.plugins();
        let settings = parse_connector_config(&raw, &self.settings.connector_defaults, &plugins)
            .map_err(|e| Error::InvalidConfig(format!("connector '{name}': {e}")))?;
        let extra = connector_validate(&settings).await;
        if !extra.is_empty() {
            return Err(Error::InvalidConfig(format!("connector '{name}': {extra}")));
        }
        let mut connectors = self.connectors.lock().await;
        let mut target = initial_target;
        let created = match connectors.get(name) {
            Some(existing) => {
                match (&existing.origin, &origin) {
                    (Origin::File(path), Origin::Rest) => {
                        return Err(Error::Conflict(format!(
                            "connector '{name}' is defined by the file {}; edit or delete that file instead",
                            path.display()
                        )))
                    }
                    (Origin::File(a), Origin::File(b)) if a != b => {
                        return Err(Error::Conflict(format!(
                            "connector '{name}' is already defined by the file {}; rename one of them",
                            a.display()
                        )))
                    }
                    (Origin::Rest, Origin::File(path)) => {
                        warn!(connector = name, file = %path.display(), "a file now defines a connector created through REST; the file takes over");
                        self.configs.write_connector(name, None).await?;
                    }
                    _ => {}
                }
                if existing.raw == raw && existing.origin == origin {
                    return Ok(false);
                }
                target = *existing.target.borrow();
                let slot = connectors.remove(name).expect("exists");
                self.shutdown_connector(name, slot).await;
                false
            }
            None => true,
        };
        if origin == Origin::Rest {
            self.configs.write_connector(name, Some(&raw)).await?;
        }
        let (target_tx, _) = watch::channel(target);
        let mut slot = ConnectorSlot {
            raw,
            settings: Arc::new(settings),
            origin,
            target: target_tx,
            instance: None,
            task_configs: Vec::new(),
            tasks: Vec::new(),
            token: self.root.child_token(),
        };
        self.start_connector(name, &mut slot).await;
        connectors.insert(name.to_string(), slot);
        info!(connector = name, created, "connector configured");
        Ok(created)
    }

    /// Deletes connector `name`. Its source offsets stay, as in Kafka Connect.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] for a file-managed connector unless `origin`
    /// is that file.
    pub async fn delete_connector(&self, name: &str, origin: &Origin) -> Result<()> {
        let mut connectors = self.connectors.lock().await;
        let slot = connectors.get(name).ok_or_else(|| not_found(name))?;
        if let (Origin::File(path), Origin::Rest) = (&slot.origin, origin) {
            return Err(Error::Conflict(format!(
                "connector '{name}' is defined by the file {}; delete that file to remove it",
                path.display()
            )));
        }
        if &slot.origin != origin {
            return Ok(());
        }
        let slot = connectors.remove(name).expect("exists");
        drop(connectors);
        if slot.origin == Origin::Rest {
            self.configs.write_connector(name, None).await?;
        }
        self.configs.write_target_state(name, None).await?;
        self.stored_targets.lock().await.remove(name);
        self.shutdown_connector(name, slot).await;
        self.status.remove(name);
        self.metrics.remove_connector(name);
        info!(connector = name, "connector deleted");
        Ok(())
    }

    /// Pauses, resumes or stops connector `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`], or a failed config-topic write.
    pub async fn set_target_state(&self, name: &str, target: TargetState) -> Result<()> {
        let mut connectors = self.connectors.lock().await;
        let slot = connectors.get_mut(name).ok_or_else(|| not_found(name))?;
        let previous = *slot.target.borrow();
        self.configs.write_target_state(name, Some(target)).await?;
        self.stored_targets
            .lock()
            .await
            .insert(name.to_string(), target);
        if previous == target {
            return Ok(());
        }
        slot.target.send_replace(target);
        match (previous, target) {
            (_, TargetState::Stopped) => {
                self.stop_tasks(name, slot).await;
                self.stop_instance(name, slot).await;
                self.status
                    .set_connector(name, kind_of(&slot.settings), State::Stopped, None);
            }
            (TargetState::Stopped, _) => {
                self.start_connector(name, slot).await;
            }
            (_, TargetState::Paused) => {
                self.status
                    .set_connector(name, kind_of(&slot.settings), State::Paused, None);
            }
            (_, TargetState::Started) => {
                self.status
                    .set_connector(name, kind_of(&slot.settings), State::Running, None);
            }
        }
        info!(
            connector = name,
            state = target.name(),
            "target state changed"
        );
        Ok(())
    }

    /// Restarts connector `name`: its connector instance, and with `include_tasks` its tasks;
    /// with `only_failed`, only what has FAILED.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<()> {
        let mut connectors = self.connectors.lock().await;
        let slot = connectors.get_mut(name).ok_or_else(|| not_found(name))?;
        if *slot.target.borrow() == TargetState::Stopped {
            return Ok(());
        }
        let status = self.status.get(name);
        let connector_failed = status
            .as_ref()
            .is_some_and(|s| s.connector.state == State::Failed);
        let restart_connector = !only_failed || connector_failed;
        let failed_tasks: BTreeSet<u32> = status
            .map(|s| {
                s.tasks
                    .iter()
                    .filter(|(_, t)| t.state == State::Failed)
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default();
        if restart_connector && include_tasks {
            self.status
                .set_connector(name, kind_of(&slot.settings), State::Restarting, None);
            self.stop_tasks(name, slot).await;
            self.stop_instance(name, slot).await;
            self.start_connector(name, slot).await;
            return Ok(());
        }
        if restart_connector {
            self.status
                .set_connector(name, kind_of(&slot.settings), State::Restarting, None);
            self.stop_instance(name, slot).await;
            self.start_instance(name, slot).await;
        }
        if include_tasks {
            let ids: Vec<u32> = (0..slot.task_configs.len() as u32)
                .filter(|id| !only_failed || failed_tasks.contains(id))
                .collect();
            for id in ids {
                self.restart_task_in(name, slot, id).await;
            }
        }
        Ok(())
    }

    /// Restarts task `id` of connector `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown connector or task.
    pub async fn restart_task(&self, name: &str, id: u32) -> Result<()> {
        let mut connectors = self.connectors.lock().await;
        let slot = connectors.get_mut(name).ok_or_else(|| not_found(name))?;
        if id as usize >= slot.task_configs.len() {
            return Err(Error::NotFound(format!("Task {name}-{id} not found")));
        }
        self.restart_task_in(name, slot, id).await;
        Ok(())
    }

    /// A connector's configuration, kind, tasks and origin.
    pub async fn info(&self, name: &str) -> Option<ConnectorInfo> {
        let connectors = self.connectors.lock().await;
        connectors.get(name).map(|slot| ConnectorInfo {
            name: name.to_string(),
            config: slot.raw.clone(),
            kind: kind_of(&slot.settings),
            tasks: slot.task_configs.clone(),
            origin: slot.origin.clone(),
        })
    }

    /// A connector's status with its tasks'.
    pub fn status(&self, name: &str) -> Option<ConnectorStatusView> {
        self.status.get(name)
    }

    /// This worker's id as status records show it.
    pub fn worker_id(&self) -> &str {
        self.status.worker_id()
    }

    /// The connector's current target state.
    pub async fn target_state(&self, name: &str) -> Option<TargetState> {
        self.connectors
            .lock()
            .await
            .get(name)
            .map(|s| *s.target.borrow())
    }

    /// The topics a connector has used.
    pub async fn topics(&self, name: &str) -> Option<BTreeSet<String>> {
        let connectors = self.connectors.lock().await;
        let slot = connectors.get(name)?;
        let mut topics: BTreeSet<String> = slot.settings.topics.iter().cloned().collect();
        topics.extend(self.metrics.topics_of(name));
        Some(topics)
    }

    /// Forgets the topics a connector has used.
    pub async fn reset_topics(&self, name: &str) -> Result<()> {
        if !self.connectors.lock().await.contains_key(name) {
            return Err(not_found(name));
        }
        self.metrics.reset_topics(name);
        Ok(())
    }

    /// The connector's offsets in the REST API's shape: source partitions and offsets, or for
    /// sinks `{"kafka_topic","kafka_partition"}` -> `{"kafka_offset"}` from its consumer group.
    ///
    /// # Errors
    /// [`Error::NotFound`], or a failure reading the group's offsets.
    pub async fn offsets(&self, name: &str) -> Result<Vec<(Json, Json)>> {
        let settings = {
            let connectors = self.connectors.lock().await;
            connectors
                .get(name)
                .ok_or_else(|| not_found(name))?
                .settings
                .clone()
        };
        if !settings.is_sink() {
            return Ok(self
                .offsets
                .list(name)
                .into_iter()
                .map(|(p, o)| (Json::Object(p), Json::Object(o)))
                .collect());
        }
        let consumer = self.group_consumer(name)?;
        let topics = self.topics(name).await.unwrap_or_default();
        tokio::task::spawn_blocking(move || -> Result<Vec<(Json, Json)>> {
            let mut tpl = TopicPartitionList::new();
            for topic in &topics {
                let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
                for t in metadata.topics() {
                    for p in t.partitions() {
                        tpl.add_partition(topic, p.id());
                    }
                }
            }
            let committed =
                consumer.committed_offsets(tpl, Timeout::After(Duration::from_secs(10)))?;
            Ok(committed
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some((
                        json!({"kafka_topic": e.topic(), "kafka_partition": e.partition()}),
                        json!({"kafka_offset": o}),
                    )),
                    _ => None,
                })
                .collect())
        })
        .await
        .map_err(|e| Error::Other(e.to_string()))?
    }

    /// Alters (PATCH) or with `entries == None` resets (DELETE) a STOPPED connector's offsets.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] unless the connector is STOPPED;
    /// [`Error::InvalidConfig`] for malformed entries.
    pub async fn alter_offsets(
        &self,
        name: &str,
        entries: Option<Vec<(Json, Json)>>,
    ) -> Result<()> {
        let connectors = self.connectors.lock().await;
        let slot = connectors.get(name).ok_or_else(|| not_found(name))?;
        if *slot.target.borrow() != TargetState::Stopped {
            return Err(Error::InvalidConfig(
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/".to_string()
                    + name + "/stop' endpoint",
            ));
        }
        let is_sink = slot.settings.is_sink();
        drop(connectors);
        if !is_sink {
            let writes: Vec<_> = match entries {
                None => self
                    .offsets
                    .list(name)
                    .into_iter()
                    .map(|(p, _)| (p, None))
                    .collect(),
                Some(entries) => entries
                    .into_iter()
                    .map(|(p, o)| {
                        let p = p.as_object().cloned().ok_or_else(|| {
                            Error::InvalidConfig(
                                "each offset's \"partition\" must be a JSON object".to_string(),
                            )
                        })?;
                        let o = match o {
                            Json::Null => None,
                            Json::Object(o) => Some(o),
                            _ => {
                                return Err(Error::InvalidConfig(
                                    "each \"offset\" must be a JSON object or null".to_string(),
                                ))
                            }
                        };
                        Ok((p, o))
                    })
                    .collect::<Result<_>>()?,
            };
            return self
                .offsets
                .write(name, &writes, self.settings.offset_flush_timeout)
                .await;
        }
        let group = format!("connect-{name}");
        match entries {
            None => {
                let admin = self.clients.admin()?;
                let opts = rdkafka::admin::AdminOptions::new();
                let results = admin.delete_groups(&[&group], &opts).await?;
                for r in results {
                    if let Err((g, code)) = r {
                        if code != rdkafka::types::RDKafkaErrorCode::GroupIdNotFound {
                            return Err(Error::Other(format!(
                                "cannot reset offsets of group '{g}': {code}"
                            )));
                        }
                    }
                }
                Ok(())
            }
            Some(entries) => {
                let mut tpl = TopicPartitionList::new();
                for (p, o) in entries {
                    let topic = p.get("kafka_topic").and_then(Json::as_str);
                    let partition = p.get("kafka_partition").and_then(Json::as_i64);
                    let (Some(topic), Some(partition)) = (topic, partition) else {
                        return Err(Error::InvalidConfig(
                            "sink offsets need \"partition\": {\"kafka_topic\": ..., \"kafka_partition\": ...}".to_string(),
                        ));
                    };
                    let offset = match o.get("kafka_offset").and_then(Json::as_i64) {
                        Some(o) => Offset::Offset(o),
                        None if o.is_null() => Offset::Beginning,
                        None => {
                            return Err(Error::InvalidConfig(
                                "sink offsets need \"offset\": {\"kafka_offset\": N} or null"
                                    .to_string(),
                            ))
                        }
                    };
                    tpl.add_partition_offset(topic, partition as i32, offset)?;
                }
                let consumer = self.group_consumer(name)?;
                tokio::task::spawn_blocking(move || {
                    consumer.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
                })
                .await
                .map_err(|e| Error::Other(e.to_string()))??;
                Ok(())
            }
        }
    }

    fn group_consumer(&self, name: &str) -> Result<BaseConsumer> {
        Ok(self
            .clients
            .consumer_config(&format!("connect-{name}"), &BTreeMap::new())
            .create()?)
    }

    /// Stops every connector (tasks flush and commit first), for shutdown.
    pub async fn shutdown(&self) {
        let mut connectors = self.connectors.lock().await;
        let names: Vec<String> = connectors.keys().cloned().collect();
        let mut stops = Vec::new();
        for name in names {
            if let Some(slot) = connectors.remove(&name) {
                stops.push(async move { self.shutdown_connector(&name, slot).await });
            }
        }
        futures::future::join_all(stops).await;
        info!("all connectors stopped");
    }

    async fn start_connector(&self, name: &str, slot: &mut ConnectorSlot) {
        let kind = kind_of(&slot.settings);
        if *slot.target.borrow() == TargetState::Stopped {
            self.status.set_connector(name, kind, State::Stopped, None);
            return;
        }
        self.status
            .set_connector(name, kind, State::Unassigned, None);
        self.start_instance(name, slot).await;
        if slot.instance.is_some() {
            self.start_tasks(name, slot).await;
        }
    }

    async fn start_instance(&self, name: &str, slot: &mut ConnectorSlot) {
        let kind = kind_of(&slot.settings);
        let ctx = ConnectorContext::new(
            name,
            Arc::new(WorkerHost {
                name: name.to_string(),
                events: self.events.clone(),
            }),
        );
        let props = slot.settings.props.clone();
        let max = slot.settings.tasks_max;
        let result = match &slot.settings.plugin.kind {
            ConnectorKind::Source(factory) => {
                let mut c = factory();
                let r = async {
                    c.start(ctx, props).await?;
                    c.task_configs(max).await
                }
                .await;
                r.map(|t| (Instance::Source(c), t))
            }
            ConnectorKind::Sink(factory) => {
                let mut c = factory();
                let r = async {
                    c.start(ctx, props).await?;
                    c.task_configs(max).await
                }
                .await;
                r.map(|t| (Instance::Sink(c), t))
            }
        };
        match result {
            Ok((instance, mut task_configs)) => {
                task_configs.truncate(max.max(1));
                slot.instance = Some(instance);
                slot.task_configs = task_configs;
                let state = if *slot.target.borrow() == TargetState::Paused {
                    State::Paused
                } else {
                    State::Running
                };
                self.status.set_connector(name, kind, state, None);
            }
            Err(e) => {
                slot.instance = None;
                self.status.set_connector(
                    name,
                    kind,
                    State::Failed,
                    Some(format!("connector start failed: {e}")),
                );
            }
        }
    }

    async fn start_tasks(&self, name: &str, slot: &mut ConnectorSlot) {
        self.status
            .retain_tasks(name, slot.task_configs.len() as u32);
        for id in 0..slot.task_configs.len() as u32 {
            self.spawn_task(name, slot, id);
        }
    }

    fn spawn_task(&self, name: &str, slot: &mut ConnectorSlot, id: u32) {
        let Some(instance) = &slot.instance else {
            return;
        };
        let kind = kind_of(&slot.settings);
        let token = slot.token.child_token();
        self.status.set_task(name, id, State::Unassigned, None);
        let env = TaskEnv {
            connector: name.to_string(),
            task_id: id,
            settings: slot.settings.clone(),
            task_config: slot.task_configs[id as usize].clone(),
            clients: self.clients.clone(),
            internal_producer: self.internal_producer.clone(),
            offsets: self.offsets.clone(),
            status: self.status.clone(),
            metrics: self.metrics.task(name, id, kind),
            registry: self.metrics.clone(),
            target: slot.target.subscribe(),
            token: token.clone(),
            flush_interval: self.settings.offset_flush_interval,
            flush_timeout: self.settings.offset_flush_timeout,
        };
        let handle = match instance {
            Instance::Source(c) => tokio::spawn(run_source_task(env, c.create_task())),
            Instance::Sink(c) => tokio::spawn(run_sink_task(env, c.create_task())),
        };
        slot.tasks.retain(|t| t.id != id);
        slot.tasks.push(RunningTask { id, token, handle });
    }

    async fn restart_task_in(&self, name: &str, slot: &mut ConnectorSlot, id: u32) {
        if let Some(pos) = slot.tasks.iter().position(|t| t.id == id) {
            let task = slot.tasks.remove(pos);
            self.status.set_task(name, id, State::Restarting, None);
            stop_running_tasks(name, vec![task], self.settings.shutdown_timeout).await;
        }
        self.spawn_task(name, slot, id);
    }

    async fn stop_tasks(&self, name: &str, slot: &mut ConnectorSlot) {
        let tasks = std::mem::take(&mut slot.tasks);
        stop_running_tasks(name, tasks, self.settings.shutdown_timeout).await;
    }

    async fn stop_instance(&self, name: &str, slot: &mut ConnectorSlot) {
        let result = match slot.instance.take() {
            Some(Instance::Source(mut c)) => c.stop().await,
            Some(Instance::Sink(mut c)) => c.stop().await,
            None => Ok(()),
        };
        if let Err(e) = result {
            warn!(connector = name, error = %e, "connector stop failed");
        }
    }

    async fn shutdown_connector(&self, name: &str, mut slot: ConnectorSlot) {
        slot.token.cancel();
        self.stop_tasks(name, &mut slot).await;
        self.stop_instance(name, &mut slot).await;
    }

    async fn reconfigure_tasks(&self, name: &str) {
        let mut connectors = self.connectors.lock().await;
        let Some(slot) = connectors.get_mut(name) else {
            return;
        };
        let max = slot.settings.tasks_max;
        let configs = match &mut slot.instance {
            Some(Instance::Source(c)) => c.task_configs(max).await,
            Some(Instance::Sink(c)) => c.task_configs(max).await,
            None => return,
        };
        match configs {
            Ok(mut configs) => {
                configs.truncate(max.max(1));
                if configs != slot.task_configs {
                    info!(
                        connector = name,
                        tasks = configs.len(),
                        "task configurations changed; restarting tasks"
                    );
                    self.stop_tasks(name, slot).await;
                    slot.task_configs = configs;
                    self.start_tasks(name, slot).await;
                }
            }
            Err(e) => {
                error!(connector = name, error = %e, "task reconfiguration failed");
            }
        }
    }

    async fn fail_connector(&self, name: &str, trace: String) {
        let mut connectors = self.connectors.lock().await;
        if let Some(slot) = connectors.get_mut(name) {
            self.stop_tasks(name, slot).await;
            self.stop_instance(name, slot).await;
            self.status
                .set_connector(name, kind_of(&slot.settings), State::Failed, Some(trace));
        }
    }
}

async fn connector_validate(settings: &ConnectorSettings) -> ConfigErrors {
    match &settings.plugin.kind {
        ConnectorKind::Source(factory) => factory().validate(&settings.props).await,
        ConnectorKind::Sink(factory) => factory().validate(&settings.props).await,
    }
}

async fn stop_running_tasks(name: &str, tasks: Vec<RunningTask>, deadline: Duration) {
    for t in &tasks {
        t.token.cancel();
    }
    for mut t in tasks {
        // Tasks flush and commit before they end; abort the ones that overrun the deadline.
        match tokio::time::timeout(deadline + Duration::from_secs(1), &mut t.handle).await {
            Ok(_) => {}
            Err(_) => {
                warn!(
                    connector = name,
                    task = t.id,
                    "task did not stop within the graceful shutdown timeout; aborting it"
                );
                t.handle.abort();
            }
        }
    }
}

async fn handle_host_events(worker: Weak<Worker>, mut events: mpsc::UnboundedReceiver<HostEvent>) {
    while let Some(event) = events.recv().await {
        let Some(worker) = worker.upgrade() else {
            return;
        };
        match event {
            HostEvent::Reconfigure(name) => worker.reconfigure_tasks(&name).await,
            HostEvent::Failed(name, trace) => worker.fail_connector(&name, trace).await,
        }
    }
}

fn kind_of(settings: &ConnectorSettings) -> &'static str {
    settings.plugin.kind.name()
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("Connector {name} not found"))
}
