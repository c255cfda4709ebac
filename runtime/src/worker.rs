//! The worker runs what the [`herder`](crate::herder) decided: one connector actor per
//! connector, which starts and stops the connector instance and its tasks.
//!
//! As in Kafka Connect, deciding (the herder: configurations, origins, target states, the
//! config topic) is kept apart from running (this module). Every slow step of one connector
//! (its `start`, its task configs, stopping its tasks within their deadline) happens inside
//! that connector's own actor, so no shared map is ever held while a connector talks to the
//! outside world: REST calls and file events for other connectors answer at once.
//!
//! An actor takes commands in order (target state, restarts, task reconfiguration, failure)
//! and stops when its cancellation token is cancelled: a slow connector start is abandoned at
//! once, and running tasks get the graceful shutdown deadline to flush and commit.
//!
//! A connector that belongs to the worker group runs in *cluster* mode: its actor runs only
//! what the group assigned to this worker (its [`Placement`]): the connector instance, when
//! assigned, generates task configurations and hands them to the herder (which has the leader
//! write them to `connect-configs`) instead of starting them; tasks run with the committed
//! configurations the placement carries. A new placement stops what it no longer holds (or
//! holds with a changed configuration) and starts what it newly holds; a task that stays is
//! left running. Only the worker that runs the connector instance reports the connector's
//! status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_sdk::{
    ConnectorContext, ConnectorHost, ConnectorKind, Props, SinkConnector, SourceConnector,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use sluice_broker::log_limit::LogLimiter;

use crate::connector_config::ConnectorSettings;
use crate::kafka::{KafkaClients, SharedProducer};
use crate::metrics::Metrics;
use crate::offsets::OffsetStore;
use crate::status::{State, StatusStore};
use crate::task::{sink::run_sink_task, source::run_source_task, TargetState, TaskEnv};

/// What running a connector needs from the worker process, shared by every actor.
#[derive(Debug, Clone)]
pub struct Worker {
    clients: KafkaClients,
    internal_producer: SharedProducer,
    offsets: Arc<OffsetStore>,
    status: Arc<StatusStore>,
    metrics: Arc<Metrics>,
    flush_interval: Duration,
    flush_timeout: Duration,
    shutdown_timeout: Duration,
    log_limiter: Arc<LogLimiter>,
}

/// The parts of a [`Worker`], named.
#[derive(Debug)]
pub struct WorkerParts {
    /// Kafka client factory.
    pub clients: KafkaClients,
    /// The producer for offsets, status, configs and dead letters.
    pub internal_producer: SharedProducer,
    /// Source offsets.
    pub offsets: Arc<OffsetStore>,
    /// Status store.
    pub status: Arc<StatusStore>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// `offset.flush.interval.ms`.
    pub flush_interval: Duration,
    /// `offset.flush.timeout.ms`.
    pub flush_timeout: Duration,
    /// `task.shutdown.graceful.timeout.ms`.
    pub shutdown_timeout: Duration,
    /// Summarises the tasks' repeating problems in the log.
    pub log_limiter: Arc<LogLimiter>,
}

/// Commands a connector actor takes, in order.
#[derive(Debug)]
enum Command {
    Target(TargetState),
    Restart {
        include_tasks: bool,
        only_failed: bool,
    },
    RestartTask(u32),
    ReconfigureTasks,
    Fail(String),
    Place(Placement, oneshot::Sender<()>),
}

/// The part of a cluster connector this worker runs, as the group assigned it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// Whether this worker runs the connector instance.
    pub instance: bool,
    /// The tasks this worker runs, with their committed configurations.
    pub tasks: BTreeMap<u32, Props>,
    /// Every committed task configuration of the connector (what `/tasks` shows).
    pub all_tasks: Vec<Props>,
}

/// Where the instance of a cluster connector sends the task configurations it generated
/// (connector name, configurations); the herder has the group's leader write them.
pub type TaskConfigSink = Arc<dyn Fn(&str, Vec<Props>) + Send + Sync>;

/// The herder's handle on one running connector actor; clones address the same actor.
#[derive(Debug, Clone)]
pub struct ConnectorRunner {
    commands: mpsc::UnboundedSender<Command>,
    token: CancellationToken,
    shared: Arc<RunnerShared>,
}

/// Resolves once a connector actor has finished (its tasks and instance are down).
#[derive(Debug, Clone)]
pub struct Finished(watch::Receiver<bool>);

impl Finished {
    /// Whether the actor has finished already.
    pub fn is_finished(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits until the actor has finished (or has gone away).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|finished| *finished).await;
    }
}

#[derive(Debug)]
struct RunnerShared {
    /// The task configurations now in force, readable without waiting for the actor.
    task_configs: Mutex<Vec<Props>>,
    /// Whether the connector and all its tasks are down (STOPPED, or not started yet).
    idle: watch::Sender<bool>,
    /// Set when the connector is deleted: its status and metrics go once it is down.
    forget: AtomicBool,
    /// Set by the actor as its last act.
    finished: watch::Sender<bool>,
}

impl ConnectorRunner {
    /// Changes the target state (pause, resume, stop, start).
    pub fn set_target(&self, target: TargetState) {
        let _ = self.commands.send(Command::Target(target));
    }

    /// Restarts the connector and, with `include_tasks`, its tasks; with `only_failed`, only
    /// what has FAILED.
    pub fn restart(&self, include_tasks: bool, only_failed: bool) {
        let _ = self.commands.send(Command::Restart {
            include_tasks,
            only_failed,
        });
    }

    /// Restarts one task.
    pub fn restart_task(&self, id: u32) {
        let _ = self.commands.send(Command::RestartTask(id));
    }

    /// Gives a cluster connector its new placement; the answer resolves once what the
    /// placement no longer holds has stopped and what it newly holds has been started.
    pub fn place(&self, placement: Placement) -> oneshot::Receiver<()> {
        let (done, applied) = oneshot::channel();
        let _ = self.commands.send(Command::Place(placement, done));
        applied
    }

    /// The task configurations now in force.
    pub fn task_configs(&self) -> Vec<Props> {
        self.shared
            .task_configs
            .lock()
            .expect("task configs lock")
            .clone()
    }

    /// Waits up to `deadline` until the connector and its tasks are all down; false if they
    /// are still running then.
    pub async fn wait_idle(&self, deadline: Duration) -> bool {
        let mut idle = self.shared.idle.subscribe();
        tokio::time::timeout(deadline, idle.wait_for(|idle| *idle))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops the connector: a start in progress is abandoned, tasks flush and commit within
    /// their deadline. With `forget`, its status and metrics are removed once it is down.
    pub fn stop(&self, forget: bool) -> Finished {
        if forget {
            self.shared.forget.store(true, Ordering::Release);
        }
        self.token.cancel();
        self.finished()
    }

    /// Resolves when the actor has finished.
    pub fn finished(&self) -> Finished {
        Finished(self.shared.finished.subscribe())
    }
}

impl Worker {
    /// A worker from its parts.
    pub fn new(parts: WorkerParts) -> Self {
        Self {
            clients: parts.clients,
            internal_producer: parts.internal_producer,
            offsets: parts.offsets,
            status: parts.status,
            metrics: parts.metrics,
            flush_interval: parts.flush_interval,
            flush_timeout: parts.flush_timeout,
            shutdown_timeout: parts.shutdown_timeout,
            log_limiter: parts.log_limiter,
        }
    }

    /// Starts an actor for connector `name` in state `target`, under `parent`. When `after`
    /// is given (the actor of the connector's previous configuration), the new one waits for
    /// it to finish first, so two instances of one connector never run at once. With
    /// `cluster`, the connector runs in cluster mode (see the [module docs](self)) and starts
    /// nothing until it is given a [`Placement`].
    pub fn run_connector(
        &self,
        name: &str,
        settings: Arc<ConnectorSettings>,
        target: TargetState,
        parent: &CancellationToken,
        after: Option<Finished>,
        cluster: Option<TaskConfigSink>,
    ) -> ConnectorRunner {
        let (commands, rx) = mpsc::unbounded_channel();
        let token = parent.child_token();
        let (target_tx, _) = watch::channel(target);
        let shared = Arc::new(RunnerShared {
            task_configs: Mutex::new(Vec::new()),
            idle: watch::Sender::new(true),
            forget: AtomicBool::new(false),
            finished: watch::Sender::new(false),
        });
        let actor = ConnectorActor {
            name: name.to_string(),
            worker: self.clone(),
            settings,
            host: Arc::new(ActorHost {
                commands: commands.clone(),
            }),
            target: target_tx,
            instance: None,
            tasks: Vec::new(),
            token: token.clone(),
            shared: shared.clone(),
            cluster,
            placement: Placement::default(),
            instance_props: Props::new(),
        };
        tokio::spawn(actor.run(rx, after));
        ConnectorRunner {
            commands,
            token,
            shared,
        }
    }
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

/// The connector's way to reach its actor ([`ConnectorContext`]).
#[derive(Debug)]
struct ActorHost {
    commands: mpsc::UnboundedSender<Command>,
}

impl ConnectorHost for ActorHost {
    fn request_task_reconfiguration(&self) {
        let _ = self.commands.send(Command::ReconfigureTasks);
    }

    fn raise_error(&self, error: sluice_sdk::Error) {
        let _ = self.commands.send(Command::Fail(error.to_string()));
    }
}

struct ConnectorActor {
    name: String,
    worker: Worker,
    settings: Arc<ConnectorSettings>,
    host: Arc<ActorHost>,
    target: watch::Sender<TargetState>,
    instance: Option<Instance>,
    tasks: Vec<RunningTask>,
    token: CancellationToken,
    shared: Arc<RunnerShared>,
    /// Set in cluster mode: where generated task configurations go.
    cluster: Option<TaskConfigSink>,
    /// In cluster mode, what this worker runs of the connector.
    placement: Placement,
    /// The configuration the instance started with, references resolved.
    instance_props: Props,
}

impl ConnectorActor {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Command>, after: Option<Finished>) {
        if let Some(previous) = after {
            previous.wait().await;
        }
        if !self.token.is_cancelled() {
            self.start_connector().await;
        }
        loop {
            tokio::select! {
                biased;
                () = self.token.cancelled() => break,
                command = rx.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => break,
                },
            }
        }
        self.stop_tasks().await;
        self.stop_instance().await;
        self.set_task_configs(Vec::new());
        if self.shared.forget.load(Ordering::Acquire) {
            self.worker.status.remove(&self.name);
            self.worker.metrics.remove_connector(&self.name);
        }
        self.shared.finished.send_replace(true);
    }

    fn kind(&self) -> &'static str {
        self.settings.plugin.kind.name()
    }

    fn target(&self) -> TargetState {
        *self.target.borrow()
    }

    fn set_connector_status(&self, state: State, trace: Option<String>) {
        if self.cluster.is_some() && !self.placement.instance {
            // Another worker runs the instance and reports its status.
            return;
        }
        self.worker
            .status
            .set_connector(&self.name, self.kind(), state, trace);
    }

    fn set_task_configs(&self, configs: Vec<Props>) {
        *self.shared.task_configs.lock().expect("task configs lock") = configs;
    }

    fn task_count(&self) -> u32 {
        self.shared
            .task_configs
            .lock()
            .expect("task configs lock")
            .len() as u32
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Target(target) => self.change_target(target).await,
            Command::Restart {
                include_tasks,
                only_failed,
            } => self.restart(include_tasks, only_failed).await,
            Command::RestartTask(id) => self.restart_task(id).await,
            Command::ReconfigureTasks => self.reconfigure_tasks().await,
            Command::Fail(trace) => {
                self.stop_tasks().await;
                self.stop_instance().await;
                self.set_connector_status(State::Failed, Some(trace));
            }
            Command::Place(placement, done) => {
                self.place(placement).await;
                let _ = done.send(());
            }
        }
    }

    /// Applies a new placement (cluster mode): stops what it no longer holds, starts what it
    /// newly holds, leaves the rest alone.
    async fn place(&mut self, placement: Placement) {
        let old = std::mem::replace(&mut self.placement, placement);
        self.set_task_configs(self.placement.all_tasks.clone());
        let changed: Vec<u32> = self
            .tasks
            .iter()
            .map(|t| t.id)
            .filter(|id| old.tasks.get(id) != self.placement.tasks.get(id))
            .collect();
        if !changed.is_empty() {
            let (stop, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.tasks)
                .into_iter()
                .partition(|t| changed.contains(&t.id));
            self.tasks = keep;
            info!(connector = %self.name, tasks = ?changed, "stopping tasks no longer assigned here");
            stop_running_tasks(&self.name, stop, self.worker.shutdown_timeout).await;
            for id in &changed {
                if !self.placement.tasks.contains_key(id) {
                    self.worker.status.forget_task(&self.name, *id);
                }
            }
        }
        if old.instance && !self.placement.instance {
            info!(connector = %self.name, "connector instance no longer assigned here; stopping it");
            self.stop_instance().await;
        }
        if self.target() != TargetState::Stopped {
            if self.placement.instance && self.instance.is_none() && !old.instance {
                self.set_connector_status(State::Unassigned, None);
                self.start_instance().await;
            }
            let running: BTreeSet<u32> = self.tasks.iter().map(|t| t.id).collect();
            let start: Vec<u32> = self
                .placement
                .tasks
                .keys()
                .copied()
                .filter(|id| !running.contains(id))
                .collect();
            for id in start {
                self.spawn_task(id);
            }
        }
        if self.tasks.is_empty() && self.instance.is_none() {
            self.shared.idle.send_replace(true);
        }
    }

    /// Cluster mode: hands task configurations that differ from the committed ones to the
    /// herder.
    fn publish_task_configs(&self, configs: Vec<Props>) {
        if let Some(sink) = &self.cluster {
            if configs != self.placement.all_tasks {
                info!(connector = %self.name, tasks = configs.len(), "task configurations changed; publishing them");
                sink(&self.name, configs);
            }
        }
    }

    async fn start_connector(&mut self) {
        if self.target() == TargetState::Stopped {
            self.set_connector_status(State::Stopped, None);
            return;
        }
        if self.cluster.is_some() {
            if self.placement.instance {
                self.set_connector_status(State::Unassigned, None);
                self.start_instance().await;
            }
            let ids: Vec<u32> = self.placement.tasks.keys().copied().collect();
            for id in ids {
                self.spawn_task(id);
            }
            return;
        }
        self.set_connector_status(State::Unassigned, None);
        self.start_instance().await;
        if self.instance.is_some() {
            self.start_tasks();
        }
    }

    /// Starts the connector instance and asks for its task configs; abandoned at once when
    /// the actor is cancelled (a connector waiting on an unreachable system).
    async fn start_instance(&mut self) {
        let ctx = ConnectorContext::new(&self.name, self.host.clone());
        let props = match self.settings.fresh_props() {
            Ok(props) => props,
            Err(e) => {
                self.instance = None;
                self.set_connector_status(
                    State::Failed,
                    Some(format!("connector start failed: {e}")),
                );
                return;
            }
        };
        self.instance_props = props.clone();
        let max = self.settings.tasks_max;
        let start = async {
            match &self.settings.plugin.kind {
                ConnectorKind::Source(factory) => {
                    let mut c = factory();
                    c.start(ctx, props).await?;
                    let configs = c.task_configs(max).await?;
                    Ok((Instance::Source(c), configs))
                }
                ConnectorKind::Sink(factory) => {
                    let mut c = factory();
                    c.start(ctx, props).await?;
                    let configs = c.task_configs(max).await?;
                    Ok((Instance::Sink(c), configs))
                }
            }
        };
        let startups = &self.worker.metrics.worker;
        startups
            .connector_startup_attempts
            .fetch_add(1, Ordering::Relaxed);
        let result: sluice_sdk::Result<(Instance, Vec<Props>)> = tokio::select! {
            biased;
            () = self.token.cancelled() => return,
            result = start => result,
        };
        let outcome = if result.is_ok() {
            &startups.connector_startup_successes
        } else {
            &startups.connector_startup_failures
        };
        outcome.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok((instance, mut configs)) => {
                configs.truncate(max.max(1));
                let configs = self.settings.hide_secrets(&self.instance_props, configs);
                self.instance = Some(instance);
                if self.cluster.is_some() {
                    self.publish_task_configs(configs);
                } else {
                    self.set_task_configs(configs);
                }
                let state = if self.target() == TargetState::Paused {
                    State::Paused
                } else {
                    State::Running
                };
                self.set_connector_status(state, None);
            }
            Err(e) => {
                self.instance = None;
                self.set_connector_status(
                    State::Failed,
                    Some(format!("connector start failed: {e}")),
                );
            }
        }
    }

    fn start_tasks(&mut self) {
        let count = self.task_count();
        self.worker.status.retain_tasks(&self.name, count);
        for id in 0..count {
            self.spawn_task(id);
        }
    }

    fn spawn_task(&mut self, id: u32) {
        let task_config = if self.cluster.is_some() {
            self.placement.tasks.get(&id).cloned()
        } else if self.instance.is_some() {
            self.shared
                .task_configs
                .lock()
                .expect("task configs lock")
                .get(id as usize)
                .cloned()
        } else {
            None
        };
        let Some(task_config) = task_config else {
            return;
        };
        // The stored task configuration keeps config provider references; the task gets them
        // resolved, afresh at every start.
        let task_config = match self.settings.resolve_task(&task_config) {
            Ok(config) => config,
            Err(e) => {
                self.worker.status.set_task(
                    &self.name,
                    id,
                    State::Failed,
                    Some(format!("task start failed: {e}")),
                );
                return;
            }
        };
        let worker = &self.worker;
        let token = self.token.child_token();
        worker
            .status
            .set_task(&self.name, id, State::Unassigned, None);
        let env = TaskEnv {
            connector: self.name.clone(),
            task_id: id,
            settings: self.settings.clone(),
            task_config,
            clients: worker.clients.clone(),
            internal_producer: worker.internal_producer.clone(),
            offsets: worker.offsets.clone(),
            status: worker.status.clone(),
            metrics: worker.metrics.task(&self.name, id, self.kind()),
            registry: worker.metrics.clone(),
            target: self.target.subscribe(),
            token: token.clone(),
            flush_interval: worker.flush_interval,
            flush_timeout: worker.flush_timeout,
            log_limiter: worker.log_limiter.clone(),
        };
        // A task needs only its class: in cluster mode the instance may run elsewhere, so a
        // fresh, unstarted one creates it.
        let handle = match (&self.instance, &self.settings.plugin.kind) {
            (Some(Instance::Source(c)), _) => tokio::spawn(run_source_task(env, c.create_task())),
            (Some(Instance::Sink(c)), _) => tokio::spawn(run_sink_task(env, c.create_task())),
            (None, ConnectorKind::Source(factory)) => {
                tokio::spawn(run_source_task(env, factory().create_task()))
            }
            (None, ConnectorKind::Sink(factory)) => {
                tokio::spawn(run_sink_task(env, factory().create_task()))
            }
        };
        self.tasks.retain(|t| t.id != id);
        self.tasks.push(RunningTask { id, token, handle });
        self.shared.idle.send_replace(false);
    }

    async fn stop_tasks(&mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        stop_running_tasks(&self.name, tasks, self.worker.shutdown_timeout).await;
    }

    async fn stop_instance(&mut self) {
        let result = match self.instance.take() {
            Some(Instance::Source(mut c)) => {
                tokio::time::timeout(self.worker.shutdown_timeout, c.stop()).await
            }
            Some(Instance::Sink(mut c)) => {
                tokio::time::timeout(self.worker.shutdown_timeout, c.stop()).await
            }
            None => Ok(Ok(())),
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(connector = %self.name, error = %e, "connector stop failed"),
            Err(_) => warn!(
                connector = %self.name,
                timeout_ms = self.worker.shutdown_timeout.as_millis() as u64,
                "connector did not stop within task.shutdown.graceful.timeout.ms; left behind"
            ),
        }
        if self.tasks.is_empty() {
            self.shared.idle.send_replace(true);
        }
    }

    async fn change_target(&mut self, target: TargetState) {
        let previous = self.target();
        if previous == target {
            return;
        }
        self.target.send_replace(target);
        match (previous, target) {
            (_, TargetState::Stopped) => {
                self.stop_tasks().await;
                // A stopped connector has no tasks (KIP-875): their statuses go.
                self.worker.status.retain_tasks(&self.name, 0);
                self.stop_instance().await;
                if self.cluster.is_none() {
                    self.set_task_configs(Vec::new());
                }
                self.set_connector_status(State::Stopped, None);
            }
            (TargetState::Stopped, _) => self.start_connector().await,
            (_, TargetState::Paused) => self.set_connector_status(State::Paused, None),
            (_, TargetState::Started) => self.set_connector_status(State::Running, None),
        }
        info!(connector = %self.name, state = target.name(), "target state changed");
    }

    async fn restart(&mut self, include_tasks: bool, only_failed: bool) {
        if self.target() == TargetState::Stopped {
            return;
        }
        let status = self.worker.status.get(&self.name);
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
        // In a group, the instance may run on another worker: that one restarts it.
        let owns_instance = self.cluster.is_none() || self.placement.instance;
        if restart_connector && include_tasks {
            if owns_instance {
                self.set_connector_status(State::Restarting, None);
            }
            self.stop_tasks().await;
            self.stop_instance().await;
            self.start_connector().await;
            return;
        }
        if restart_connector && owns_instance {
            self.set_connector_status(State::Restarting, None);
            self.stop_instance().await;
            self.start_instance().await;
        }
        if include_tasks {
            for id in (0..self.task_count()).filter(|id| !only_failed || failed_tasks.contains(id))
            {
                self.restart_task(id).await;
            }
        }
    }

    async fn restart_task(&mut self, id: u32) {
        if self.cluster.is_some() && !self.placement.tasks.contains_key(&id) {
            return;
        }
        if let Some(pos) = self.tasks.iter().position(|t| t.id == id) {
            let task = self.tasks.remove(pos);
            self.worker
                .status
                .set_task(&self.name, id, State::Restarting, None);
            stop_running_tasks(&self.name, vec![task], self.worker.shutdown_timeout).await;
        }
        self.spawn_task(id);
    }

    async fn reconfigure_tasks(&mut self) {
        let max = self.settings.tasks_max;
        let configs = match &mut self.instance {
            Some(Instance::Source(c)) => c.task_configs(max).await,
            Some(Instance::Sink(c)) => c.task_configs(max).await,
            None => return,
        };
        match configs {
            Ok(mut configs) => {
                configs.truncate(max.max(1));
                let configs = self.settings.hide_secrets(&self.instance_props, configs);
                if self.cluster.is_some() {
                    self.publish_task_configs(configs);
                    return;
                }
                if configs != *self.shared.task_configs.lock().expect("task configs lock") {
                    info!(
                        connector = %self.name,
                        tasks = configs.len(),
                        "task configurations changed; restarting tasks"
                    );
                    self.stop_tasks().await;
                    self.set_task_configs(configs);
                    self.start_tasks();
                }
            }
            Err(e) => error!(connector = %self.name, error = %e, "task reconfiguration failed"),
        }
    }
}

/// Cancels `tasks`, gives them `deadline` to flush and commit, then aborts what is left.
async fn stop_running_tasks(name: &str, tasks: Vec<RunningTask>, deadline: Duration) {
    for t in &tasks {
        t.token.cancel();
    }
    let stops = tasks.into_iter().map(|mut t| async move {
        if tokio::time::timeout(deadline + Duration::from_secs(1), &mut t.handle)
            .await
            .is_err()
        {
            warn!(
                connector = name,
                task = t.id,
                "task did not stop within the graceful shutdown timeout; aborting it"
            );
            t.handle.abort();
        }
    });
    futures::future::join_all(stops).await;
}
