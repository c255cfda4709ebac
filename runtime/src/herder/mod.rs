//! The herder decides what runs: it owns every connector's configuration, origin (a file in
//! `configs/` or the REST API) and target state, writes them to the `connect-configs` topic,
//! and hands each connector to the [`Worker`], which runs it (Kafka Connect's Herder and
//! Worker split).
//!
//! # Worker groups
//! Every worker is a member of its group (`group.id`), alone or with others: the group's
//! leader assigns connector instances and tasks of the connectors in `connect-configs`, and
//! this worker runs exactly what it was assigned ([`group`] drives the membership). The config
//! topic is the source of truth: a REST change is written there and read back before it is
//! applied, and changes made on other workers are applied as they are read. A connector
//! defined by a file in this worker's `configs/` folder is this worker's own: it runs here,
//! instance and tasks, outside the group's assignment, and is not published to the config
//! topic (only its target state is stored there).
//!
//! # Layout
//! - this module: the connector map, REST and file operations, reconciling the map with the
//!   config topic and the group's assignment;
//! - [`group`]: the membership loop (join, catch up with the config topic, apply the
//!   assignment, heartbeat, rejoin) and the leader's duties (writing task configurations).
//!
//! The connector map is locked for plain map operations only. Validation (which may reach an
//! outside system) happens before any lock is taken and has a deadline; config-topic writes
//! are serialised by a separate decision lock; starting and stopping happen in each
//! connector's own actor. So one slow connector never delays a REST call or a file event
//! about another.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::util::Timeout;
use serde_json::{json, Value as Json};
use sluice_broker::log_limit::{LogLimitConfig, LogLimiter};
use sluice_sdk::{ConfigErrors, ConnectorKind, ConnectorPlugin, Props};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::cluster::assignor::Work;
use crate::cluster::config_log::{
    ClusterConfigSnapshot, ConfigLog, RestartRequest, READ_WRITE_TIMEOUT,
};
use crate::cluster::protocol::ConnectorTaskId;
use crate::cluster::status_log::StatusLog;
use crate::connector_config::{parse_connector_config, ConnectorSettings, NAME};
use crate::error::{Error, Result};
use crate::kafka::KafkaClients;
use crate::metrics::{ConnectorView, Metrics, WorkerView};
use crate::offsets::OffsetStore;
use crate::settings::WorkerSettings;
use crate::status::{ConnectorStatusView, State, Status, StatusStore};
use crate::task::TargetState;
use crate::worker::{ConnectorRunner, Finished, Placement, TaskConfigSink, Worker, WorkerParts};

pub mod group;

pub use group::{GroupView, WriteRoute};

/// How long a connector's own validation (which may contact its outside system) may take
/// before the worker answers on its behalf. Connectors bound their calls with their own,
/// shorter deadlines (`connect_timeout`, `connection.timeout.ms`, ...); this is the backstop
/// that keeps a REST request from waiting on a connector that has none.
pub const VALIDATION_DEADLINE: Duration = Duration::from_secs(30);

/// Deadline of the admin and metadata calls the REST API makes to the cluster.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a connector's configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A JSON file in the watched configs folder; the file is the source of truth.
    File(PathBuf),
    /// Created through the REST API; stored in the config topic.
    Rest,
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

/// How a configuration arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Put {
    /// `POST /connectors`: the connector must not exist yet.
    Create,
    /// A REST `PUT` or a file: create or reconfigure.
    Upsert,
    /// Read back from the config topic at start: validated when it was written, so it is not
    /// validated again (that could wait on an outside system before the worker is up).
    Restore,
}

/// One connector as the herder knows it.
#[derive(Debug)]
struct Entry {
    raw: Props,
    settings: Arc<ConnectorSettings>,
    origin: Origin,
    target: TargetState,
    runner: ConnectorRunner,
    /// The placement last given to a group connector's actor.
    placement: Option<Placement>,
}

/// A worker's health (KIP-1017), with the message `GET /health` gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Startup is complete.
    Healthy(&'static str),
    /// Still starting.
    Starting(&'static str),
    /// Cannot handle requests (shutting down).
    Unhealthy(&'static str),
}

/// The herder.
pub struct Herder {
    settings: WorkerSettings,
    clients: KafkaClients,
    cluster_id: Option<String>,
    plugins: Vec<ConnectorPlugin>,
    offsets: Arc<OffsetStore>,
    /// The config topic, followed continuously; the group's source of truth.
    config_log: ConfigLog,
    /// The status topic, followed continuously: the statuses other workers wrote.
    status_log: Option<StatusLog>,
    /// Restart requests and cluster logger levels at or after this config topic offset are
    /// acted on; older ones were carried out before this worker started (as Kafka Connect,
    /// which ignores logger levels written before a worker completed startup).
    restarts_from: i64,
    /// The last config snapshot applied to the connector map (under `deciding`).
    applied: Mutex<Arc<ClusterConfigSnapshot>>,
    /// Connectors of the config topic this worker cannot run (a class it lacks, a setting it
    /// cannot resolve), with the reason: what the group assigns of them here is FAILED.
    unrunnable: Mutex<BTreeMap<String, String>>,
    /// What the group said last.
    group: Mutex<GroupView>,
    /// Serialises placement rounds.
    placing: tokio::sync::Mutex<()>,
    /// Serialises the leader's task config writes: interleaved `task-`/`commit-` records of
    /// two writes would leave the connector inconsistent.
    writing_task_configs: tokio::sync::Mutex<()>,
    /// Ends the group and config-sync loops (after the connectors stopped).
    group_stop: CancellationToken,
    /// The group and config-sync loops, awaited on shutdown.
    loops: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Itself, for the task config sink handed to group connectors.
    me: Weak<Herder>,
    status: Arc<StatusStore>,
    metrics: Arc<Metrics>,
    worker: Worker,
    connectors: Mutex<BTreeMap<String, Entry>>,
    /// Target states from the config topic, for connectors (re)created from files.
    stored_targets: Mutex<BTreeMap<String, TargetState>>,
    /// Serialises decisions (which include config-topic writes); never held while a
    /// connector starts, stops or validates.
    deciding: tokio::sync::Mutex<()>,
    /// Actors of replaced or deleted connectors still stopping, by name, so a connector
    /// created again under that name waits for its predecessor.
    stopping: Mutex<BTreeMap<String, Finished>>,
    root: CancellationToken,
    /// Set once the connector config folder has been read for the first time.
    started: AtomicBool,
    /// Set when the worker begins to stop.
    shutting_down: AtomicBool,
    /// Wakes the config-sync loop after a local change.
    resync: tokio::sync::Notify,
}

impl std::fmt::Debug for Herder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Herder")
            .field("bootstrap", &self.clients.bootstrap())
            .finish_non_exhaustive()
    }
}

impl Herder {
    /// Connects to the cluster at `bootstrap`, creates and reads the internal topics, starts
    /// the connectors stored in the config topic, and returns the herder. `plugins` are the
    /// connector classes it knows.
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
        // Metadata v2+ carries the cluster id; GET / reports it as Kafka Connect does.
        let (admin, cluster_id) =
            crate::kafka::off_async(admin, |admin| admin.inner().fetch_cluster_id(ADMIN_TIMEOUT))
                .await;
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
        let (offsets, config_log, status_log) = tokio::join!(
            OffsetStore::load(
                &clients,
                &settings.offset_topic,
                created[0],
                internal_producer.clone()
            ),
            async {
                let log =
                    ConfigLog::start(&clients, internal_producer.clone(), &settings.config_topic)
                        .await?;
                log.read_to_end(READ_WRITE_TIMEOUT).await?;
                Ok::<_, crate::cluster::config_log::ConfigLogError>(log)
            },
            StatusLog::start(&clients, &settings.status_topic),
        );
        // Without it, statuses of work on other workers are missing, nothing else.
        let status_log = status_log
            .inspect_err(|e| warn!(error = %e, "statuses of other workers' connectors and tasks will not be shown"))
            .ok();
        let offsets = Arc::new(offsets?);
        let config_log = config_log.map_err(config_log_error)?;
        let stored_targets = config_log.snapshot().target_states.clone();
        let worker_id = settings.advertised_rest_addr();
        let status = Arc::new(
            StatusStore::new(
                worker_id,
                settings.status_topic.clone(),
                Some(internal_producer.clone()),
            )
            .with_cache(status_log.as_ref().map(StatusLog::cache)),
        );
        let metrics = Arc::new(Metrics::default());
        let log_limiter = Arc::new(LogLimiter::new(LogLimitConfig::default()));
        tokio::spawn(log_limiter.clone().run(root.clone()));
        let worker = Worker::new(WorkerParts {
            clients: clients.clone(),
            internal_producer,
            offsets: offsets.clone(),
            status: status.clone(),
            metrics: metrics.clone(),
            flush_interval: settings.offset_flush_interval,
            flush_timeout: settings.offset_flush_timeout,
            shutdown_timeout: settings.shutdown_timeout,
            log_limiter,
        });
        let herder = Arc::new_cyclic(|me| Self {
            settings,
            clients,
            cluster_id: cluster_id.filter(|id| !id.is_empty()),
            plugins,
            offsets,
            restarts_from: config_log.snapshot().offset,
            config_log,
            status_log,
            applied: Mutex::new(Arc::new(ClusterConfigSnapshot::default())),
            unrunnable: Mutex::new(BTreeMap::new()),
            group: Mutex::new(GroupView::default()),
            placing: tokio::sync::Mutex::new(()),
            writing_task_configs: tokio::sync::Mutex::new(()),
            group_stop: root.child_token(),
            loops: Mutex::new(Vec::new()),
            me: me.clone(),
            status,
            metrics,
            worker,
            connectors: Mutex::new(BTreeMap::new()),
            stored_targets: Mutex::new(stored_targets),
            deciding: tokio::sync::Mutex::new(()),
            stopping: Mutex::new(BTreeMap::new()),
            root,
            started: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            resync: tokio::sync::Notify::new(),
        });
        // The connectors stored in the config topic exist from the start; they run once the
        // group has assigned them.
        herder.sync_with_config_log().await;
        group::start_loops(&herder);
        Ok(herder)
    }

    /// The worker settings.
    pub fn settings(&self) -> &WorkerSettings {
        &self.settings
    }

    /// The Kafka bootstrap servers in use.
    pub fn bootstrap(&self) -> &str {
        self.clients.bootstrap()
    }

    /// The id the Kafka cluster reported at start (`None` if it did not say).
    pub fn kafka_cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Notes that startup is complete: the stored connectors and the config folder's are
    /// known (KIP-1017's "completed startup").
    pub fn mark_started(&self) {
        if !self.started.swap(true, AtomicOrdering::AcqRel) {
            info!("worker completed startup and is ready to handle requests");
        }
    }

    /// The worker's health as `GET /health` reports it (KIP-1017).
    pub fn health(&self) -> Health {
        if self.shutting_down.load(AtomicOrdering::Acquire) || self.root.is_cancelled() {
            Health::Unhealthy("Worker is shutting down.")
        } else if !self.started.load(AtomicOrdering::Acquire) {
            Health::Starting(
                "Worker is still starting up: the connector config folder has not been read yet.",
            )
        } else {
            Health::Healthy("Worker has completed startup and is ready to handle requests.")
        }
    }

    /// `/metrics`: every measurement, with what the status store and the connector map know.
    pub fn render_metrics(&self) -> String {
        let mut statuses = self.status.snapshot();
        let connectors = self
            .map()
            .iter()
            .map(|(name, e)| {
                (
                    name.clone(),
                    e.settings.plugin.class.clone(),
                    e.settings.plugin.version.clone(),
                )
            })
            .collect::<Vec<_>>();
        let group = self.group_view();
        let view = WorkerView {
            worker_id: self.status.worker_id().to_string(),
            leader: group.leader_url.as_deref().map(|url| {
                url.trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_string()
            }),
            epoch: group.generation,
            completed_rebalances: group.completed_rebalances,
            rebalancing: group.rebalancing,
            connectors: connectors
                .into_iter()
                .map(|(name, class, version)| {
                    let (status, ratios) = match statuses.remove(&name) {
                        Some((status, ratios)) => (Some(status), ratios),
                        None => (None, BTreeMap::new()),
                    };
                    ConnectorView {
                        name,
                        class,
                        version,
                        status,
                        ratios,
                    }
                })
                .collect(),
        };
        self.metrics.render(&view)
    }

    /// The connector classes this worker knows.
    pub fn plugins(&self) -> Vec<ConnectorPlugin> {
        self.plugins.clone()
    }

    /// The plugin answering to `class` (short name, alias, or a class name's last segment).
    pub fn plugin(&self, class: &str) -> Option<ConnectorPlugin> {
        self.plugins
            .iter()
            .find(|p| p.answers_to(class))
            .or_else(|| {
                self.plugins.iter().find(|p| {
                    p.aliases
                        .iter()
                        .any(|a| a.rsplit('.').next().is_some_and(|simple| simple == class))
                })
            })
            .cloned()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.connectors.lock().expect("connector map lock")
    }

    fn runner(&self, name: &str) -> Result<ConnectorRunner> {
        self.map()
            .get(name)
            .map(|e| e.runner.clone())
            .ok_or_else(|| not_found(name))
    }

    /// Names of every connector.
    pub async fn connector_names(&self) -> Vec<String> {
        self.map().keys().cloned().collect()
    }

    /// Checks a configuration as the validate endpoint does: every option's errors. A
    /// connector whose own checks outlast [`VALIDATION_DEADLINE`] gets that as an error.
    pub async fn validate(&self, raw: &Props) -> (Option<ConnectorPlugin>, ConfigErrors) {
        match parse_connector_config(
            raw,
            &self.settings.connector_defaults,
            &self.plugins,
            &self.settings.config_providers,
            &self.settings.file_allowed_paths,
        ) {
            Ok(settings) => {
                let errors = connector_validate(&settings).await;
                (Some(settings.plugin.clone()), errors)
            }
            Err(errors) => {
                let plugin = raw.get("connector.class").and_then(|c| {
                    self.plugins
                        .iter()
                        .find(|p| p.answers_to(c.trim()))
                        .cloned()
                });
                (plugin, errors)
            }
        }
    }

    /// Creates or reconfigures connector `name` from `raw` (as written). Returns whether it was
    /// created. An unchanged configuration leaves the running connector alone. The connector
    /// starts in the background: this returns once the configuration is validated and stored.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the connector and each bad option;
    /// [`Error::Conflict`] when a REST change targets a file-managed connector.
    pub async fn put_connector(&self, name: &str, raw: Props, origin: Origin) -> Result<bool> {
        let target = self
            .stored_targets
            .lock()
            .expect("stored targets lock")
            .get(name)
            .copied()
            .unwrap_or(TargetState::Started);
        self.put(name, raw, origin, target, Put::Upsert).await
    }

    /// Creates connector `name` through the REST API (`POST /connectors`).
    ///
    /// # Errors
    /// [`Error::Conflict`] when it exists already; otherwise as [`Herder::put_connector`].
    pub async fn create_connector(&self, name: &str, raw: Props) -> Result<()> {
        let target = self
            .stored_targets
            .lock()
            .expect("stored targets lock")
            .get(name)
            .copied()
            .unwrap_or(TargetState::Started);
        self.put(name, raw, Origin::Rest, target, Put::Create)
            .await
            .map(drop)
    }

    async fn put(
        &self,
        name: &str,
        mut raw: Props,
        origin: Origin,
        initial_target: TargetState,
        mode: Put,
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
        let settings = parse_connector_config(
            &raw,
            &self.settings.connector_defaults,
            &self.plugins,
            &self.settings.config_providers,
            &self.settings.file_allowed_paths,
        )
        .map_err(|e| Error::InvalidConfig(format!("connector '{name}': {e}")))?;
        if mode != Put::Restore {
            let extra = connector_validate(&settings).await;
            if !extra.is_empty() {
                return Err(Error::InvalidConfig(format!("connector '{name}': {extra}")));
            }
        }
        let _deciding = self.deciding.lock().await;
        let created = self
            .put_decided(name, raw, settings, origin, initial_target, mode)
            .await;
        self.resync.notify_one();
        created
    }

    /// The rest of [`Self::put`], with the decision lock held.
    async fn put_decided(
        &self,
        name: &str,
        raw: Props,
        settings: ConnectorSettings,
        origin: Origin,
        initial_target: TargetState,
        mode: Put,
    ) -> Result<bool> {
        let existing = {
            let map = self.map();
            map.get(name)
                .map(|e| (e.origin.clone(), e.raw == raw, e.target))
        };
        let mut target = initial_target;
        let created = match existing {
            Some(_) if mode == Put::Create => {
                return Err(Error::Conflict(format!("Connector {name} already exists")))
            }
            Some((existing_origin, same_config, existing_target)) => {
                match (&existing_origin, &origin) {
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
                        self.config_log
                            .delete_connector(name)
                            .await
                            .map_err(config_log_error)?;
                    }
                    _ => {}
                }
                if same_config && existing_origin == origin {
                    return Ok(false);
                }
                target = existing_target;
                false
            }
            None => true,
        };
        if origin == Origin::Rest && mode != Put::Restore {
            self.config_log
                .put_connector(name, &raw, None)
                .await
                .map_err(config_log_error)?;
        }
        let settings = Arc::new(settings);
        let kind = settings.plugin.kind.name();
        let previous = self.map().get(name).map(|e| e.runner.clone());
        let after = match previous {
            Some(previous) => Some(previous.stop(false)),
            None => self.stopping.lock().expect("stopping lock").remove(name),
        };
        if after.is_none() {
            // The status exists from the moment the connector does; its actor takes it on.
            let state = if target == TargetState::Stopped {
                State::Stopped
            } else {
                State::Unassigned
            };
            self.status.set_connector(name, kind, state, None);
        }
        let sink = (origin == Origin::Rest).then(|| self.task_config_sink());
        let runner =
            self.worker
                .run_connector(name, settings.clone(), target, &self.root, after, sink);
        self.map().insert(
            name.to_string(),
            Entry {
                raw,
                settings,
                origin,
                target,
                runner,
                placement: None,
            },
        );
        info!(connector = name, created, "connector configured");
        Ok(created)
    }

    /// Deletes connector `name`. Its source offsets stay, as in Kafka Connect.
    ///
    /// # Errors
    /// [`Error::NotFound`]; [`Error::Conflict`] for a file-managed connector unless `origin`
    /// is that file.
    pub async fn delete_connector(&self, name: &str, origin: &Origin) -> Result<()> {
        let _deciding = self.deciding.lock().await;
        let entry_origin = self
            .map()
            .get(name)
            .map(|e| e.origin.clone())
            .ok_or_else(|| not_found(name))?;
        if let (Origin::File(path), Origin::Rest) = (&entry_origin, origin) {
            return Err(Error::Conflict(format!(
                "connector '{name}' is defined by the file {}; delete that file to remove it",
                path.display()
            )));
        }
        if &entry_origin != origin {
            return Ok(());
        }
        if entry_origin == Origin::Rest {
            self.config_log
                .delete_connector(name)
                .await
                .map_err(config_log_error)?;
        } else {
            self.config_log
                .delete_target_state(name)
                .await
                .map_err(config_log_error)?;
        }
        self.stored_targets
            .lock()
            .expect("stored targets lock")
            .remove(name);
        if let Some(entry) = self.map().remove(name) {
            let finished = entry.runner.stop(true);
            let mut stopping = self.stopping.lock().expect("stopping lock");
            stopping.retain(|_, f| !f.is_finished());
            stopping.insert(name.to_string(), finished);
        }
        info!(connector = name, "connector deleted");
        self.resync.notify_one();
        Ok(())
    }

    /// Pauses, resumes or stops connector `name`. The change is recorded at once and carried
    /// out by the connector's actor.
    ///
    /// # Errors
    /// [`Error::NotFound`], or a failed config-topic write.
    pub async fn set_target_state(&self, name: &str, target: TargetState) -> Result<()> {
        let _deciding = self.deciding.lock().await;
        self.runner(name)?;
        // Like Kafka Connect, the acknowledgement is enough: the config-sync loop applies only
        // changes between the snapshots it reads, so reading this back changes nothing here.
        self.config_log
            .put_target_state(name, target)
            .await
            .map_err(config_log_error)?;
        self.stored_targets
            .lock()
            .expect("stored targets lock")
            .insert(name.to_string(), target);
        let runner = {
            let mut map = self.map();
            let entry = map.get_mut(name).ok_or_else(|| not_found(name))?;
            entry.target = target;
            entry.runner.clone()
        };
        runner.set_target(target);
        Ok(())
    }

    /// Restarts connector `name`: its connector instance, and with `include_tasks` its tasks;
    /// with `only_failed`, only what has FAILED. Carried out by the connector's actor.
    ///
    /// # Errors
    /// [`Error::NotFound`].
    pub async fn restart_connector(
        &self,
        name: &str,
        include_tasks: bool,
        only_failed: bool,
    ) -> Result<()> {
        let runner = self.runner(name)?;
        if !self.is_group_connector(name) {
            runner.restart(include_tasks, only_failed);
            return Ok(());
        }
        // In a group the connector and its tasks may run on several workers: the request goes
        // through the config topic to all of them (KIP-745), this one included.
        self.config_log
            .put_restart_request(
                name,
                RestartRequest {
                    include_tasks,
                    only_failed,
                },
            )
            .await
            .map_err(config_log_error)
    }

    /// Whether `name` is one of the group's connectors (created through REST, spread over the
    /// group) while this worker is a member: connectors of the `configs/` folder run on their
    /// worker only.
    fn is_group_connector(&self, name: &str) -> bool {
        self.group.lock().expect("group lock").allocation.is_some()
            && self
                .map()
                .get(name)
                .is_some_and(|e| e.origin == Origin::Rest)
    }

    /// Whether connector `name` is defined by a file in this worker's configs folder.
    pub fn is_file_managed(&self, name: &str) -> bool {
        self.map()
            .get(name)
            .is_some_and(|e| matches!(e.origin, Origin::File(_)))
    }

    /// What this worker runs of connector `name` in its group: whether the connector instance,
    /// and which tasks (`None`: not a group member). Read under the lock, without copying the
    /// whole allocation.
    fn local_share(&self, name: &str) -> Option<(bool, BTreeSet<u32>)> {
        let group = self.group.lock().expect("group lock");
        let work = group.allocation.as_ref()?;
        let tasks = work
            .tasks
            .iter()
            .filter(|t| t.connector == name)
            .filter_map(|t| u32::try_from(t.task).ok())
            .collect();
        Some((work.connectors.contains(name), tasks))
    }

    /// Restarts task `id` of connector `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown connector or task.
    ///
    /// In a group, a task another worker runs is restarted by that worker: the request is
    /// forwarded to it with the caller's `authorization` header.
    pub async fn restart_task(
        &self,
        name: &str,
        id: u32,
        authorization: Option<&str>,
    ) -> Result<()> {
        let runner = self.runner(name)?;
        if id as usize >= runner.task_configs().len() {
            return Err(Error::NotFound(format!("Task {name}-{id} not found")));
        }
        let elsewhere = self.is_group_connector(name)
            && self
                .local_share(name)
                .is_some_and(|(_, tasks)| !tasks.contains(&id));
        if !elsewhere {
            runner.restart_task(id);
            return Ok(());
        }
        let owner = self
            .status_log
            .as_ref()
            .and_then(|log| log.connector(name).1.get(&id).map(|r| r.worker_id.clone()))
            .filter(|owner| owner.as_str() != self.worker_id());
        let Some(owner) = owner else {
            return Err(Error::Conflict(
                group::REBALANCE_IN_PROGRESS_MESSAGE.to_string(),
            ));
        };
        let scheme = if self.settings.rest_https {
            "https"
        } else {
            "http"
        };
        let url = format!("{scheme}://{owner}/connectors/{name}/tasks/{id}/restart?forward=false");
        let client = crate::rest_security::internal_client(
            self.settings.rest_https,
            &self.settings.rest_tls,
        )?;
        let mut request = client.post(&url).timeout(Duration::from_secs(30));
        if let Some(authorization) = authorization {
            request = request.header(reqwest::header::AUTHORIZATION, authorization);
        }
        let response = request.send().await.map_err(|e| {
            Error::Other(format!(
                "cannot reach {owner}, which runs task {name}-{id}: {e}"
            ))
        })?;
        match response.status().as_u16() {
            200..=299 => Ok(()),
            404 => Err(Error::NotFound(response.text().await.unwrap_or_default())),
            409 => Err(Error::Conflict(response.text().await.unwrap_or_default())),
            status => Err(Error::Other(format!(
                "{owner}, which runs task {name}-{id}, answered {status}: {}",
                response.text().await.unwrap_or_default()
            ))),
        }
    }

    /// A connector's configuration, kind, tasks and origin.
    pub async fn info(&self, name: &str) -> Option<ConnectorInfo> {
        let map = self.map();
        map.get(name).map(|e| ConnectorInfo {
            name: name.to_string(),
            config: e.raw.clone(),
            kind: e.settings.plugin.kind.name(),
            tasks: e.runner.task_configs(),
            origin: e.origin.clone(),
        })
    }

    /// A connector's status with its tasks'.
    ///
    /// What this worker runs comes from its own view; the connector instance and the tasks
    /// that run on other workers of the group come from the status topic, with the
    /// `worker_id` that wrote them.
    pub fn status(&self, name: &str) -> Option<ConnectorStatusView> {
        let local = self.status.get(name);
        let (Some(log), Some((instance_here, tasks_here))) =
            (&self.status_log, self.local_share(name))
        else {
            return local;
        };
        let kind = {
            let map = self.map();
            let entry = map.get(name)?;
            // A connector of this worker's configs/ folder runs here only.
            if entry.origin != Origin::Rest {
                return local;
            }
            if entry.settings.is_sink() {
                "sink"
            } else {
                "source"
            }
        };
        let (connector, tasks) = log.connector(name);
        let task_count = self.config_log.snapshot().task_count(name);
        let mut known = local.is_some();
        let mut view = local.unwrap_or_else(|| ConnectorStatusView {
            kind,
            connector: Status::new(State::Unassigned),
            tasks: BTreeMap::new(),
            connector_worker: None,
            task_workers: BTreeMap::new(),
        });
        let parse = |state: &str| state.parse::<State>().unwrap_or(State::Unassigned);
        if !instance_here {
            if let Some(record) = connector {
                view.connector = Status {
                    state: parse(&record.state),
                    trace: record.trace,
                    problem: None,
                };
                view.connector_worker = Some(record.worker_id);
                known = true;
            }
        }
        for (id, record) in tasks {
            if tasks_here.contains(&id) || id >= task_count {
                continue;
            }
            view.tasks.insert(
                id,
                Status {
                    state: parse(&record.state),
                    trace: record.trace,
                    problem: None,
                },
            );
            view.task_workers.insert(id, record.worker_id);
            known = true;
        }
        known.then_some(view)
    }

    /// This worker's id as status records show it.
    pub fn worker_id(&self) -> &str {
        self.status.worker_id()
    }

    /// The connector's current target state.
    pub async fn target_state(&self, name: &str) -> Option<TargetState> {
        self.map().get(name).map(|e| e.target)
    }

    /// The topics a connector has used (KIP-558): what its tasks on this worker used, and
    /// what the status topic has from every worker.
    pub async fn topics(&self, name: &str) -> Option<BTreeSet<String>> {
        let mut topics: BTreeSet<String> = {
            let map = self.map();
            map.get(name)?.settings.topics.iter().cloned().collect()
        };
        topics.extend(self.metrics.topics_of(name));
        if let Some(log) = &self.status_log {
            topics.extend(log.topics(name));
        }
        Some(topics)
    }

    /// Forgets the topics a connector has used, here and in the status topic.
    pub async fn reset_topics(&self, name: &str) -> Result<()> {
        if !self.map().contains_key(name) {
            return Err(not_found(name));
        }
        let mut used = self.metrics.topics_of(name);
        if let Some(log) = &self.status_log {
            used.extend(log.topics(name));
        }
        for topic in &used {
            self.status.delete_topic(name, topic);
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
        let settings = self
            .map()
            .get(name)
            .map(|e| e.settings.clone())
            .ok_or_else(|| not_found(name))?;
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
                let metadata = consumer.fetch_metadata(Some(topic), ADMIN_TIMEOUT)?;
                for t in metadata.topics() {
                    for p in t.partitions() {
                        tpl.add_partition(topic, p.id());
                    }
                }
            }
            let committed = consumer.committed_offsets(tpl, Timeout::After(ADMIN_TIMEOUT))?;
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
        let (target, is_sink, runner) = self
            .map()
            .get(name)
            .map(|e| (e.target, e.settings.is_sink(), e.runner.clone()))
            .ok_or_else(|| not_found(name))?;
        if target != TargetState::Stopped {
            return Err(Error::InvalidConfig(
                "Connectors must be in the STOPPED state before their offsets can be modified. This can be done for the specified connector by issuing a 'PUT' request to the '/connectors/".to_string()
                    + name + "/stop' endpoint",
            ));
        }
        // The stop may still be under way (tasks committing their last offsets): wait for it,
        // so nothing the tasks write lands after the change.
        if !runner
            .wait_idle(self.settings.shutdown_timeout + Duration::from_secs(1))
            .await
        {
            return Err(Error::Conflict(format!(
                "connector '{name}' is still stopping; try again in a moment"
            )));
        }
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
                let opts = rdkafka::admin::AdminOptions::new()
                    .request_timeout(Some(Timeout::After(ADMIN_TIMEOUT)))
                    .operation_timeout(Some(Timeout::After(ADMIN_TIMEOUT)));
                let results = admin.delete_groups(&[&group], &opts).await;
                crate::kafka::release(admin);
                let results = results?;
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

    /// Stops every connector (tasks flush and commit first, within their deadline), for
    /// shutdown, then leaves the group. Every connector stops at the same time.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, AtomicOrdering::Release);
        let entries = std::mem::take(&mut *self.map());
        let mut finished: Vec<Finished> = entries.values().map(|e| e.runner.stop(false)).collect();
        finished.extend(
            std::mem::take(&mut *self.stopping.lock().expect("stopping lock")).into_values(),
        );
        futures::future::join_all(finished.into_iter().map(Finished::wait)).await;
        info!(connectors = entries.len(), "all connectors stopped");
        self.group_stop.cancel();
        let loops = std::mem::take(&mut *self.loops.lock().expect("loops lock"));
        for handle in loops {
            if tokio::time::timeout(Duration::from_secs(5), handle)
                .await
                .is_err()
            {
                warn!("the group loop did not end within 5 s");
            }
        }
    }

    /// Applies what the config topic holds to the connector map: connectors created,
    /// changed or deleted (on any worker) and target states changed since the last call.
    async fn sync_with_config_log(&self) {
        let _deciding = self.deciding.lock().await;
        let snapshot = self.config_log.snapshot();
        let previous = std::mem::replace(
            &mut *self.applied.lock().expect("applied lock"),
            snapshot.clone(),
        );
        for (name, props) in &snapshot.connector_configs {
            if previous.connector_configs.get(name) == Some(props) {
                continue;
            }
            let target = snapshot.target_state(name).unwrap_or(TargetState::Started);
            self.stored_targets
                .lock()
                .expect("stored targets lock")
                .insert(name.clone(), target);
            let result = match parse_connector_config(
                props,
                &self.settings.connector_defaults,
                &self.plugins,
                &self.settings.config_providers,
                &self.settings.file_allowed_paths,
            ) {
                Ok(settings) => {
                    self.put_decided(
                        name,
                        props.clone(),
                        settings,
                        Origin::Rest,
                        target,
                        Put::Restore,
                    )
                    .await
                }
                Err(e) => Err(Error::InvalidConfig(format!("connector '{name}': {e}"))),
            };
            let mut unrunnable = self.unrunnable.lock().expect("unrunnable lock");
            match result {
                Ok(_) => {
                    unrunnable.remove(name);
                }
                Err(e) => {
                    error!(connector = %name, error = %e, "cannot run a connector of the config topic");
                    unrunnable.insert(name.clone(), e.to_string());
                }
            }
        }
        for name in previous.connector_configs.keys() {
            if snapshot.connector_configs.contains_key(name) {
                continue;
            }
            if self
                .unrunnable
                .lock()
                .expect("unrunnable lock")
                .remove(name)
                .is_some()
            {
                self.status.remove(name);
            }
            let removed = {
                let mut map = self.map();
                match map.get(name) {
                    Some(e) if e.origin == Origin::Rest => map.remove(name),
                    _ => None,
                }
            };
            if let Some(entry) = removed {
                info!(connector = %name, "connector deleted from the config topic");
                let finished = entry.runner.stop(true);
                let mut stopping = self.stopping.lock().expect("stopping lock");
                stopping.retain(|_, f| !f.is_finished());
                stopping.insert(name.clone(), finished);
            }
        }
        for name in snapshot.connector_configs.keys() {
            let target = snapshot.target_state(name).unwrap_or(TargetState::Started);
            if previous.target_state(name) == Some(target) {
                continue;
            }
            self.stored_targets
                .lock()
                .expect("stored targets lock")
                .insert(name.clone(), target);
            let runner = {
                let mut map = self.map();
                match map.get_mut(name) {
                    Some(e) if e.target != target => {
                        e.target = target;
                        Some(e.runner.clone())
                    }
                    _ => None,
                }
            };
            if let Some(runner) = runner {
                runner.set_target(target);
            }
        }
        // Cluster-wide logger levels (KIP-976) written since this worker started.
        for (namespace, record) in &snapshot.logger_levels {
            if record.offset < self.restarts_from
                || previous.logger_levels.get(namespace).map(|r| r.offset) == Some(record.offset)
            {
                continue;
            }
            match crate::logging::set_level(namespace, &record.level) {
                Ok(_) => {
                    info!(logger = %namespace, level = %record.level, "logger level set for the whole cluster");
                }
                Err(e) => {
                    warn!(logger = %namespace, level = %record.level, error = %e, "cannot apply a cluster-wide logger level");
                }
            }
        }
        // Restart requests (KIP-745) written since this worker started: each worker restarts
        // what it runs of the connector.
        for (name, record) in &snapshot.restart_requests {
            if record.offset < self.restarts_from
                || previous.restart_requests.get(name).map(|r| r.offset) == Some(record.offset)
            {
                continue;
            }
            let runner = self.map().get(name).map(|e| e.runner.clone());
            if let Some(runner) = runner {
                info!(
                    connector = %name,
                    include_tasks = record.request.include_tasks,
                    only_failed = record.request.only_failed,
                    "restarting what this worker runs of the connector, as the config topic asks"
                );
                runner.restart(record.request.include_tasks, record.request.only_failed);
            }
        }
    }

    /// `PUT /admin/loggers/{namespace}?scope=cluster` (KIP-976): writes the level to the
    /// config topic; every worker of the group, this one included, applies it on reading it.
    ///
    /// # Errors
    /// [`crate::logging::Error::InvalidLevel`] for an unknown level (nothing is written);
    /// [`Error`] when the config topic does not take the record.
    pub async fn set_cluster_logger_level(
        &self,
        namespace: &str,
        level: &str,
    ) -> std::result::Result<Result<()>, crate::logging::Error> {
        let level = crate::logging::parse_level(level)?;
        Ok(self
            .config_log
            .put_logger_level(namespace, &level)
            .await
            .map_err(config_log_error))
    }

    /// Gives every group connector's actor its part of the group's assignment, and waits
    /// (up to the graceful shutdown deadline) until what was taken away has stopped.
    async fn place_connectors(&self) {
        let _placing = self.placing.lock().await;
        let snapshot = self.config_log.snapshot();
        let allocation = self.group_view().allocation;
        let mut applied = Vec::new();
        {
            let mut map = self.map();
            for (name, entry) in map.iter_mut() {
                if entry.origin != Origin::Rest {
                    continue;
                }
                let placement = placement_of(name, &snapshot, allocation.as_ref());
                if entry.placement.as_ref() != Some(&placement) {
                    entry.placement = Some(placement.clone());
                    applied.push(entry.runner.place(placement));
                }
            }
        }
        self.report_unrunnable(allocation.as_ref());
        let deadline = self.settings.shutdown_timeout + Duration::from_secs(2);
        if tokio::time::timeout(deadline, futures::future::join_all(applied))
            .await
            .is_err()
        {
            warn!(
                timeout_ms = deadline.as_millis() as u64,
                "some connectors did not apply their assignment in time"
            );
        }
    }

    /// Marks FAILED what the group assigned here of connectors this worker cannot run, with a
    /// trace naming the reason and this worker, so that every worker's status shows why.
    fn report_unrunnable(&self, allocation: Option<&Work>) {
        let Some(work) = allocation else { return };
        let unrunnable = self.unrunnable.lock().expect("unrunnable lock").clone();
        for (name, reason) in unrunnable {
            let trace = format!("{reason} (on worker {})", self.worker_id());
            if work.connectors.contains(&name) {
                self.status
                    .set_connector(&name, "unknown", State::Failed, Some(trace.clone()));
            }
            for task in work.tasks.iter().filter(|t| t.connector == name) {
                if let Ok(id) = u32::try_from(task.task) {
                    self.status
                        .set_unrunnable_task(&name, id, State::Failed, Some(trace.clone()));
                }
            }
        }
    }

    /// What the group says now.
    pub fn group_view(&self) -> GroupView {
        self.group.lock().expect("group lock").clone()
    }

    /// Where group connectors send the task configurations they generate.
    fn task_config_sink(&self) -> TaskConfigSink {
        let me = self.me.clone();
        Arc::new(move |connector: &str, configs: Vec<Props>| {
            if let Some(herder) = me.upgrade() {
                let connector = connector.to_string();
                tokio::spawn(async move { herder.publish_task_configs(connector, configs).await });
            }
        })
    }
}

/// Runs the connector's own validation, bounded by [`VALIDATION_DEADLINE`].
async fn connector_validate(settings: &ConnectorSettings) -> ConfigErrors {
    let validate = async {
        match &settings.plugin.kind {
            ConnectorKind::Source(factory) => factory().validate(&settings.props).await,
            ConnectorKind::Sink(factory) => factory().validate(&settings.props).await,
        }
    };
    match tokio::time::timeout(VALIDATION_DEADLINE, validate).await {
        Ok(errors) => errors,
        Err(_) => {
            warn!(
                connector = settings.props.get(NAME).map(String::as_str).unwrap_or(""),
                class = %settings.plugin.class,
                deadline_s = VALIDATION_DEADLINE.as_secs(),
                "connector validation did not finish in time"
            );
            let mut errors = ConfigErrors::default();
            errors.push(
                "connector.class",
                format!(
                    "the connector's validation did not finish within {} s; its outside system may be unreachable or not answering: check the connection options",
                    VALIDATION_DEADLINE.as_secs()
                ),
            );
            errors
        }
    }
}

/// A connector's part of this worker's allocation (`None`: not in the group yet).
fn placement_of(
    name: &str,
    snapshot: &ClusterConfigSnapshot,
    allocation: Option<&Work>,
) -> Placement {
    let all_tasks: Vec<Props> = snapshot
        .tasks(name)
        .into_iter()
        .filter_map(|n| snapshot.task_config(name, n).cloned())
        .collect();
    let Some(allocation) = allocation else {
        return Placement {
            all_tasks,
            ..Placement::default()
        };
    };
    let tasks = snapshot
        .tasks(name)
        .into_iter()
        .filter(|n| {
            allocation
                .tasks
                .contains(&ConnectorTaskId::new(name, *n as i32))
        })
        .filter_map(|n| snapshot.task_config(name, n).map(|c| (n, c.clone())))
        .collect();
    Placement {
        instance: allocation.connectors.contains(name),
        tasks,
        all_tasks,
    }
}

fn config_log_error(e: crate::cluster::config_log::ConfigLogError) -> Error {
    Error::Other(e.to_string())
}

fn not_found(name: &str) -> Error {
    Error::NotFound(format!("Connector {name} not found"))
}
