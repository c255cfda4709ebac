//! The group coordinator: Kafka's classic consumer-group protocol and committed offsets.
//!
//! This is the broker side of `group.id`: clients find the coordinator (always this broker),
//! join a group, let the elected leader compute an assignment with a client-side assignor
//! (range, roundrobin, cooperative-sticky, ...: the coordinator never looks inside the protocol
//! metadata it relays), heartbeat, commit offsets and leave. The rules follow Apache Kafka's
//! classic group coordinator so that librdkafka and the Java clients see the answers they
//! expect, error codes included:
//!
//! - a dynamic member's first JoinGroup (v4+) is answered `MEMBER_ID_REQUIRED` with a fresh
//!   member id; the member joins again with it;
//! - a rebalance collects JoinGroups until every known member has rejoined or the rebalance
//!   timeout (the largest `max.poll.interval.ms` of the members) has passed; members that did
//!   not rejoin are dropped; the first rebalance of an empty group waits
//!   `group.initial.rebalance.delay.ms` for more members;
//! - the leader gets every member's metadata, sends the assignment in SyncGroup, and the
//!   followers' SyncGroups wait for it; members that do not sync within the rebalance timeout
//!   are dropped;
//! - a member that sends nothing (heartbeat, commit, join, sync) for `session.timeout.ms` is
//!   evicted and the group rebalances;
//! - static members (`group.instance.id`) keep their place across restarts: a rejoin with the
//!   same instance id replaces the old member id without a rebalance when nothing changed, and
//!   the old member id is fenced (`FENCED_INSTANCE_ID`).
//!
//! Committed offsets and the group's last stable generation are written to an append-only,
//! checksummed log under `<data dir>/__group_coordinator/` and fsync'd before an OffsetCommit is
//! acknowledged (see [`store`]); the log is replayed and rewritten when the broker starts, so
//! offsets survive restarts and crashes (SIGKILL included).
//!
//! # Layout
//! - [`state`]: one group's members, generation and state machine (Kafka's `GroupMetadata`).
//! - [`rebalance`]: the steps shared by several APIs: preparing and completing a rebalance,
//!   timers (session, rebalance, pending member, pending sync) and member removal.
//! - [`store`]: the durable log of committed offsets and group metadata.
//! - [`expire`]: the background task that fires the timers and expires old offsets.
//! - one file per API: [`find_coordinator`], [`join`], [`sync`], [`heartbeat`], [`leave`],
//!   [`offset_commit`], [`offset_fetch`], [`offset_delete`], [`list`], [`describe`], [`delete`].

pub mod delete;
pub mod describe;
pub mod expire;
pub mod find_coordinator;
pub mod heartbeat;
pub mod join;
pub mod leave;
pub mod list;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod rebalance;
pub mod state;
pub mod store;
pub mod sync;

#[cfg(test)]
mod testing;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use self::state::Group;
use self::store::GroupStore;

/// Name of the directory, under the broker's data directory, that holds the coordinator's log.
///
/// The leading underscores keep it apart from topic-partition directories (`<topic>-<n>`).
pub const GROUP_STORE_DIR: &str = "__group_coordinator";

/// The protocol type of groups formed by Kafka consumers (the only type whose metadata the
/// coordinator reads, to know which topics a group subscribes to).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The API versions the coordinator answers, as `(api, min, max)`; the broker advertises them
/// in ApiVersions. They are the full ranges `kafka-protocol` can decode, which cover what
/// librdkafka 2.x and the current Java clients send.
pub const GROUP_API_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
];

/// Settings of the group coordinator. Field names follow the Kafka broker settings they mirror.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// The node id FindCoordinator answers with (`node.id`; the broker is node 0 of a one-node
    /// cluster).
    pub node_id: i32,
    /// The host clients should connect to for coordination (the advertised listener's host).
    pub advertised_host: String,
    /// The port clients should connect to for coordination (the advertised listener's port).
    pub advertised_port: i32,
    /// `group.min.session.timeout.ms`: smallest session timeout a member may ask for.
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms`: largest session timeout a member may ask for.
    pub max_session_timeout: Duration,
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members before it completes (each new member extends it, up to the rebalance
    /// timeout).
    pub initial_rebalance_delay: Duration,
    /// `group.max.size`: most members a group may have.
    pub max_group_size: usize,
    /// `offsets.retention.minutes`: how long committed offsets are kept once a group has no
    /// members (or, for groups that never had members, since the commit).
    pub offsets_retention: Duration,
    /// `offsets.retention.check.interval.ms`: how often expired offsets are looked for.
    pub offsets_retention_check_interval: Duration,
    /// `offset.metadata.max.bytes`: largest metadata string a commit may carry.
    pub offset_metadata_max_bytes: usize,
    /// How long a JoinGroup of a brand-new member may wait for the rebalance to complete before
    /// the member is dropped (Kafka's fixed 5 minutes): clients that gave up and retried would
    /// otherwise leave defunct members behind.
    pub new_member_join_timeout: Duration,
    /// The coordinator log is rewritten (compacted) once it holds this many bytes more than the
    /// previous rewrite left.
    pub store_rewrite_bytes: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            node_id: 0,
            advertised_host: "localhost".to_owned(),
            advertised_port: 9092,
            min_session_timeout: Duration::from_millis(6_000),
            max_session_timeout: Duration::from_millis(1_800_000),
            initial_rebalance_delay: Duration::from_millis(3_000),
            max_group_size: i32::MAX as usize,
            offsets_retention: Duration::from_secs(7 * 24 * 60 * 60),
            offsets_retention_check_interval: Duration::from_millis(600_000),
            offset_metadata_max_bytes: 4096,
            new_member_join_timeout: Duration::from_millis(300_000),
            store_rewrite_bytes: 64 * 1024 * 1024,
        }
    }
}

/// What the coordinator needs to know about topics: whether a partition exists (OffsetCommit
/// and OffsetDelete answer `UNKNOWN_TOPIC_OR_PARTITION` otherwise, as Kafka does).
pub trait TopicLookup: Send + Sync + fmt::Debug {
    /// The number of partitions of `topic`, or `None` when the topic does not exist.
    fn partition_count(&self, topic: &str) -> Option<i32>;
}

/// Who sent a request: DescribeGroups and `sluice groups --describe` show it per member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientContext {
    /// The `client.id` from the request header.
    pub client_id: String,
    /// The client's address as Kafka prints it (`/127.0.0.1`).
    pub client_host: String,
}

impl ClientContext {
    /// A context for a request from `client_id` connected from `peer`.
    pub fn new(client_id: impl Into<String>, peer: std::net::IpAddr) -> Self {
        Self {
            client_id: client_id.into(),
            client_host: format!("/{peer}"),
        }
    }
}

/// The consumer-group coordinator of the broker. Cheap to share behind an [`Arc`]; every API
/// method takes `&self`.
#[derive(Debug)]
pub struct GroupCoordinator {
    pub(crate) config: GroupConfig,
    pub(crate) topics: Arc<dyn TopicLookup>,
    pub(crate) state: Mutex<CoordinatorState>,
    pub(crate) store: GroupStore,
    pub(crate) clock: Clock,
    /// Woken whenever a timer may have moved earlier, so the expiry task recomputes its sleep.
    pub(crate) timers_changed: Notify,
    /// Summarises warnings a client can cause, keyed by group id (the broker runs its timer).
    pub(crate) log_limit: Arc<crate::log_limit::LogLimiter>,
}

/// Every group the coordinator knows, by group id.
#[derive(Debug, Default)]
pub(crate) struct CoordinatorState {
    pub(crate) groups: HashMap<String, Group>,
}

impl GroupCoordinator {
    /// Opens the coordinator whose log lives in `<data_dir>/__group_coordinator/`, replaying
    /// the committed offsets and group generations found there.
    ///
    /// Call [`GroupCoordinator::run_timers`] on a task to make session timeouts, rebalance
    /// timeouts and offset retention happen.
    ///
    /// # Errors
    /// Fails when the directory cannot be created or the log cannot be read or rewritten.
    pub fn open(
        data_dir: &Path,
        config: GroupConfig,
        topics: Arc<dyn TopicLookup>,
    ) -> io::Result<Arc<Self>> {
        let dir = data_dir.join(GROUP_STORE_DIR);
        let (store, loaded) = GroupStore::open(&dir, config.store_rewrite_bytes)?;
        let clock = Clock::new();
        let now = Instant::now();
        let mut groups = HashMap::new();
        for (group_id, loaded_group) in loaded.into_groups() {
            let group = Group::from_stored(group_id.clone(), loaded_group, now);
            groups.insert(group_id, group);
        }
        tracing::info!(
            groups = groups.len(),
            dir = %dir.display(),
            "group coordinator loaded"
        );
        Ok(Arc::new(Self {
            config,
            topics,
            state: Mutex::new(CoordinatorState { groups }),
            store,
            clock,
            timers_changed: Notify::new(),
            log_limit: Arc::new(crate::log_limit::LogLimiter::new(Default::default())),
        }))
    }

    /// Writes whatever the log has queued and stops accepting writes: call it when the broker
    /// shuts down, after the connections are closed.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// The settings the coordinator runs with.
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }
}

/// Wall-clock milliseconds that follow tokio's clock, so that paused-time tests move commit
/// timestamps and offset retention along with the timers.
#[derive(Debug, Clone)]
pub(crate) struct Clock {
    wall_at_start_ms: i64,
    start: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Self {
            wall_at_start_ms: wall,
            start: Instant::now(),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub(crate) fn now_ms(&self) -> i64 {
        self.wall_at_start_ms + self.start.elapsed().as_millis() as i64
    }
}

/// A new member id: `<client id or group instance id>-<uuid>`, as Kafka makes them.
pub(crate) fn new_member_id(prefix: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // `RandomState` is seeded from the operating system's random source; hashing a counter with
    // it gives unpredictable, never repeating ids without another dependency.
    let seed = std::collections::hash_map::RandomState::new();
    let mut bits = [0u64; 2];
    for (i, half) in bits.iter_mut().enumerate() {
        let mut hasher = seed.build_hasher();
        hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        hasher.write_usize(i);
        *half = hasher.finish();
    }
    let uuid = (u128::from(bits[0]) << 64) | u128::from(bits[1]);
    // Shape it as a version-4 UUID so tools that parse member ids are not surprised.
    let uuid = (uuid & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let hex = format!("{uuid:032x}");
    format!(
        "{prefix}-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
