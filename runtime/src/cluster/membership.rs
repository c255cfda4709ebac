//! The worker's group client: membership of a Connect cluster through the broker's group
//! coordinator, with protocol type `connect` (librdkafka only speaks `consumer`).
//!
//! A [`GroupMember`] keeps its own TCP connection to the coordinator and speaks the classic
//! group protocol on the `kafka-protocol` codecs: ApiVersions (to pick each API's version),
//! FindCoordinator, JoinGroup, SyncGroup, Heartbeat and LeaveGroup. The herder drives it:
//!
//! 1. [`GroupMember::join`] joins (or rejoins) and returns the [`Generation`] with this worker's
//!    assignment; when this worker is elected leader, the [`LeaderAssignor`] it was given
//!    computes every member's assignment, which the leader hands out in SyncGroup.
//! 2. [`GroupMember::heartbeat_until_rebalance`] heartbeats every `heartbeat.interval.ms` and
//!    returns when the group needs a rebalance; the herder then joins again. It also joins
//!    again at once when its assignment revoked something (cooperative protocols), and after
//!    the assignment's delay when it has one.
//! 3. [`GroupMember::leave`] leaves the group on shutdown, so the others rebalance at once
//!    instead of after `session.timeout.ms`.
//!
//! With the cooperative protocols a worker keeps running its work through a rebalance and
//! stops only what an assignment revokes. When the group uses the eager `default` protocol
//! (some member offers nothing newer), the herder must stop everything before it joins again:
//! [`Generation::protocol`] says which applies.
//!
//! Retriable failures inside a join (MEMBER_ID_REQUIRED, REBALANCE_IN_PROGRESS, a moved or
//! unavailable coordinator, a lost connection) are handled here, by joining again or finding the
//! coordinator again after `retry.backoff.ms`; what is left for the caller is a
//! [`MembershipError`] that says whether trying again later can help.
//!
//! Every request has a deadline: `request.timeout.ms`, or for JoinGroup and SyncGroup (which
//! wait for the rest of the group) `rebalance.timeout.ms` plus `request.timeout.ms`. A call that
//! is dropped half-way (e.g. in a `select!`) leaves the member usable: the connection that had a
//! request in flight is replaced before the next one.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest,
    RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SyncGroupRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use kafka_protocol::ResponseError;
use sluice_broker::security::scram::{ScramClient, ScramMechanism};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use super::assignor::Work;
use super::protocol::{
    ConnectAssignment, ConnectProtocol, ProtocolError, WorkerMetadata, CONNECT_PROTOCOL_TYPE,
    NO_ERROR,
};
use crate::client_security::{ClientSecurity, KafkaStream, SaslLogin};

/// `session.timeout.ms` default.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_millis(10_000);
/// `heartbeat.interval.ms` default.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_millis(3_000);
/// `rebalance.timeout.ms` default.
pub const DEFAULT_REBALANCE_TIMEOUT: Duration = Duration::from_millis(60_000);
/// `request.timeout.ms` default (Kafka Connect's).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_millis(40_000);
/// `retry.backoff.ms` default.
pub const DEFAULT_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Largest response frame accepted from a broker.
const MAX_RESPONSE_BYTES: usize = 100 * 1024 * 1024;

/// The API versions this client can speak, as `(api, min, max)`; each request uses the highest
/// version both sides speak.
const CLIENT_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
];

/// The SASL APIs, needed when the security settings ask for SASL.
const SASL_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The group settings of a worker, named after Kafka Connect's.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// `bootstrap.servers`: `host:port` of brokers to find the coordinator through, tried in
    /// order.
    pub bootstrap_servers: Vec<String>,
    /// `group.id`: the Connect cluster this worker belongs to.
    pub group_id: String,
    /// The REST URL other workers reach this worker at (sent in the member metadata).
    pub rest_url: String,
    /// `session.timeout.ms`: the coordinator drops a member it hears nothing from for this long.
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms`: time between heartbeats.
    pub heartbeat_interval: Duration,
    /// `rebalance.timeout.ms`: how long the coordinator waits for members to rejoin.
    pub rebalance_timeout: Duration,
    /// `request.timeout.ms`: deadline of each request (JoinGroup and SyncGroup add the
    /// rebalance timeout).
    pub request_timeout: Duration,
    /// `retry.backoff.ms`: pause before retrying after a retriable error.
    pub retry_backoff: Duration,
    /// `connect.protocol`: the newest protocol offered; older ones are offered too.
    pub connect_protocol: ConnectProtocol,
    /// `client.id` sent in request headers (also the prefix of the member id).
    pub client_id: String,
    /// TLS and SASL of the connections (the worker's `security.protocol`, `sasl.*`, `ssl.*`).
    pub security: ClientSecurity,
}

impl MembershipConfig {
    /// Settings with Kafka Connect's defaults; `bootstrap_servers` is a comma-separated list.
    pub fn new(bootstrap_servers: &str, group_id: &str, rest_url: &str) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            group_id: group_id.to_owned(),
            rest_url: rest_url.to_owned(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            rebalance_timeout: DEFAULT_REBALANCE_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
            connect_protocol: ConnectProtocol::Sessioned,
            client_id: "sluice-worker".to_owned(),
            security: ClientSecurity::plaintext(),
        }
    }
}

/// What can go wrong in group membership.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// No setting names a broker.
    #[error("bootstrap.servers is empty: name at least one broker as host:port")]
    NoBootstrapServers,
    /// SASL authentication was refused.
    #[error("SASL authentication of user '{user}' at {broker} failed: {message} (check sasl.mechanism, sasl.username and sasl.password)")]
    Authentication {
        /// The broker.
        broker: String,
        /// The user name.
        user: String,
        /// What the broker or the SCRAM exchange said.
        message: String,
    },
    /// A broker could not be reached or the connection broke.
    #[error("connection to {broker}: {source}")]
    Io {
        /// `host:port`.
        broker: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A request got no answer in time.
    #[error("{api:?} to {broker} got no answer within {timeout_ms} ms")]
    Timeout {
        /// The request.
        api: ApiKey,
        /// `host:port`.
        broker: String,
        /// The deadline.
        timeout_ms: u64,
    },
    /// No bootstrap server led to the group's coordinator in time.
    #[error("cannot find the coordinator of group '{group}' through {servers}: {last}")]
    CoordinatorNotFound {
        /// The group.
        group: String,
        /// The bootstrap servers tried.
        servers: String,
        /// The last failure.
        last: String,
    },
    /// The broker does not speak a version of an API this client needs.
    #[error("{broker} does not support {api:?} versions {min}..={max}; the broker is too old or not Kafka")]
    UnsupportedApi {
        /// `host:port`.
        broker: String,
        /// The API.
        api: ApiKey,
        /// Lowest version this client speaks.
        min: i16,
        /// Highest version this client speaks.
        max: i16,
    },
    /// A frame could not be written or read.
    #[error("{api:?} with {broker}: {message}")]
    Codec {
        /// The request.
        api: ApiKey,
        /// `host:port`.
        broker: String,
        /// What went wrong.
        message: String,
    },
    /// The coordinator refused with an error joining again cannot fix.
    #[error("{api:?} for group '{group}' failed: {error}")]
    Group {
        /// The request.
        api: ApiKey,
        /// The group.
        group: String,
        /// The broker's error.
        error: ResponseError,
    },
    /// The group chose a protocol, or the leader sent an assignment, this worker cannot read.
    #[error("group '{group}': {source}")]
    Protocol {
        /// The group.
        group: String,
        /// What is wrong.
        source: ProtocolError,
    },
}

impl MembershipError {
    /// Whether trying again later can help (the broker was unreachable or slow, as opposed to
    /// a refusal or a misconfiguration).
    pub fn is_retriable(&self) -> bool {
        match self {
            Self::Io { .. } | Self::Timeout { .. } | Self::CoordinatorNotFound { .. } => true,
            Self::Group { error, .. } => error.is_retriable(),
            Self::NoBootstrapServers
            | Self::Authentication { .. }
            | Self::UnsupportedApi { .. }
            | Self::Codec { .. }
            | Self::Protocol { .. } => false,
        }
    }
}

/// `Result` with [`MembershipError`].
pub type Result<T, E = MembershipError> = std::result::Result<T, E>;

/// A member of the group as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Its member id.
    pub member_id: String,
    /// Its metadata for the chosen protocol.
    pub metadata: WorkerMetadata,
}

/// What the leader's assignor gets.
#[derive(Debug)]
pub struct LeaderRound<'a> {
    /// The generation being assigned.
    pub generation_id: i32,
    /// The last generation this member completed (-1 for none).
    pub last_completed_generation_id: i32,
    /// This (the leader's) member id.
    pub leader_id: &'a str,
    /// The protocol the group chose; assignments must be written in its version.
    pub protocol: ConnectProtocol,
    /// The members whose metadata could be read (the others get an empty assignment).
    pub members: &'a [JoinedMember],
}

/// The leader's assignment strategy: given the members, an assignment for each.
///
/// A member left out of the answer gets an empty assignment naming the leader.
pub trait LeaderAssignor: Send {
    /// Every member's assignment, by member id, written in `round.protocol`'s version.
    fn assign(&mut self, round: &LeaderRound<'_>) -> BTreeMap<String, ConnectAssignment>;
}

/// One completed join: the generation, the leader, and this worker's assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    /// The generation id.
    pub generation_id: i32,
    /// This worker's member id.
    pub member_id: String,
    /// The leader's member id.
    pub leader_id: String,
    /// The protocol the group chose.
    pub protocol: ConnectProtocol,
    /// The assignment as the leader sent it (incremental for cooperative protocols).
    pub assignment: ConnectAssignment,
    /// Everything this worker should run now: for cooperative protocols the previous
    /// allocation minus revocations plus new assignments, for eager the assignment.
    pub allocation: Work,
    /// Every member's metadata, when this worker is the leader (empty otherwise).
    pub members: Vec<JoinedMember>,
}

impl Generation {
    /// Whether this worker leads the group.
    pub fn is_leader(&self) -> bool {
        self.member_id == self.leader_id
    }
}

/// Why the group needs this worker to join again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceNeeded {
    /// The coordinator started a rebalance (a member joined, left or changed).
    GroupRebalancing,
    /// The coordinator no longer knows this member or its generation (it was dropped, e.g.
    /// after a pause longer than `session.timeout.ms`); it joins as a new member.
    MembershipLost,
    /// No heartbeat got through for `session.timeout.ms`: the group has most likely moved on
    /// without this worker, which should stop its work and join again.
    SessionExpired,
}

impl fmt::Display for RebalanceNeeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::GroupRebalancing => "the group is rebalancing",
            Self::MembershipLost => "the coordinator no longer knows this member",
            Self::SessionExpired => "no heartbeat got through for the session timeout",
        })
    }
}

/// One connection to a broker, authenticated when the security settings ask for it, with the
/// API versions negotiated on it. The admin tools (`sluice acls`, `sluice configs`) use it too.
#[derive(Debug)]
pub(crate) struct Connection {
    stream: KafkaStream,
    broker: String,
    client_id: StrBytes,
    correlation_id: i32,
    /// A request was written whose answer was not read (the call was dropped): unusable.
    in_flight: bool,
    versions: BTreeMap<i16, i16>,
}

impl Connection {
    async fn open(
        broker: &str,
        client_id: &str,
        security: &ClientSecurity,
        timeout: Duration,
    ) -> Result<Self> {
        Self::open_for(broker, client_id, security, timeout, CLIENT_VERSIONS).await
    }

    /// Connects, authenticates and checks that the broker speaks each API of `wanted`
    /// (`(api, min, max)`) in a version this client does.
    pub(crate) async fn open_for(
        broker: &str,
        client_id: &str,
        security: &ClientSecurity,
        timeout: Duration,
        wanted: &[(ApiKey, i16, i16)],
    ) -> Result<Self> {
        let stream = tokio::time::timeout(timeout, security.connect(broker))
            .await
            .map_err(|_| MembershipError::Timeout {
                api: ApiKey::ApiVersions,
                broker: broker.to_owned(),
                timeout_ms: timeout.as_millis() as u64,
            })?
            .map_err(|source| MembershipError::Io {
                broker: broker.to_owned(),
                source,
            })?;
        let mut conn = Self {
            stream,
            broker: broker.to_owned(),
            client_id: StrBytes::from_string(client_id.to_owned()),
            correlation_id: 0,
            in_flight: false,
            versions: BTreeMap::new(),
        };
        // Version 0 is answered by every broker; its answer lists what the broker speaks.
        let response = conn
            .send(
                ApiKey::ApiVersions,
                0,
                &ApiVersionsRequest::default(),
                timeout,
            )
            .await?;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            return Err(MembershipError::Codec {
                api: ApiKey::ApiVersions,
                broker: broker.to_owned(),
                message: format!("ApiVersions answered {error}"),
            });
        }
        let sasl = security.sasl().is_some();
        for &(api, min, max) in wanted.iter().chain(if sasl { SASL_VERSIONS } else { &[] }) {
            let theirs = response
                .api_keys
                .iter()
                .find(|k| k.api_key == api as i16)
                .map(|k| (k.min_version, k.max_version));
            match theirs {
                Some((their_min, their_max)) if their_min.max(min) <= their_max.min(max) => {
                    conn.versions.insert(api as i16, their_max.min(max));
                }
                _ => {
                    return Err(MembershipError::UnsupportedApi {
                        broker: broker.to_owned(),
                        api,
                        min,
                        max,
                    })
                }
            }
        }
        if let Some(login) = security.sasl() {
            conn.authenticate(login, timeout).await?;
        }
        Ok(conn)
    }

    /// SaslHandshake v1, then SaslAuthenticate with PLAIN or SCRAM.
    async fn authenticate(&mut self, login: &SaslLogin, timeout: Duration) -> Result<()> {
        let broker = self.broker.clone();
        let failed = |message: String| MembershipError::Authentication {
            broker: broker.clone(),
            user: login.username.clone(),
            message,
        };
        let handshake = self
            .send(
                ApiKey::SaslHandshake,
                1,
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_string(login.mechanism.clone())),
                timeout,
            )
            .await?;
        if let Some(error) = ResponseError::try_from_code(handshake.error_code) {
            let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(failed(format!(
                "the broker refused SASL mechanism {} ({error}); it offers {}",
                login.mechanism,
                offered.join(", ")
            )));
        }
        let check = |response: &SaslAuthenticateResponse| match ResponseError::try_from_code(
            response.error_code,
        ) {
            None => Ok(()),
            Some(error) => Err(failed(
                response
                    .error_message
                    .as_ref()
                    .map_or_else(|| error.to_string(), |m| m.to_string()),
            )),
        };
        match ScramMechanism::from_name(&login.mechanism) {
            None => {
                let token = format!("\0{}\0{}", login.username, login.password).into_bytes();
                let response = self.sasl_token(token, timeout).await?;
                check(&response)?;
            }
            Some(mechanism) => {
                let mut scram = ScramClient::new(mechanism, &login.username, &login.password);
                let first = self.sasl_token(scram.client_first(), timeout).await?;
                check(&first)?;
                let last = scram.client_final(&first.auth_bytes).map_err(&failed)?;
                let done = self.sasl_token(last, timeout).await?;
                check(&done)?;
                scram
                    .verify_server_final(&done.auth_bytes)
                    .map_err(&failed)?;
            }
        }
        debug!(broker = %self.broker, user = %login.username, mechanism = %login.mechanism, "SASL authentication succeeded");
        Ok(())
    }

    /// One SaslAuthenticate round trip.
    async fn sasl_token(
        &mut self,
        token: Vec<u8>,
        timeout: Duration,
    ) -> Result<SaslAuthenticateResponse> {
        let version = self.version(ApiKey::SaslAuthenticate);
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        self.send(ApiKey::SaslAuthenticate, version, &request, timeout)
            .await
    }

    /// The version negotiated for `api`.
    pub(crate) fn version(&self, api: ApiKey) -> i16 {
        self.versions.get(&(api as i16)).copied().unwrap_or(0)
    }

    /// Sends one request and reads its answer, within `timeout`.
    pub(crate) async fn send<R>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &R,
        timeout: Duration,
    ) -> Result<R::Response>
    where
        R: Request,
    {
        if self.in_flight {
            return Err(MembershipError::Io {
                broker: self.broker.clone(),
                source: std::io::Error::other(
                    "an interrupted request left the connection unusable",
                ),
            });
        }
        let broker = self.broker.clone();
        match tokio::time::timeout(timeout, self.exchange(api, version, request)).await {
            Ok(result) => result,
            Err(_) => Err(MembershipError::Timeout {
                api,
                broker,
                timeout_ms: timeout.as_millis() as u64,
            }),
        }
    }

    async fn exchange<R: Request>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &R,
    ) -> Result<R::Response> {
        let codec = |message: String| MembershipError::Codec {
            api,
            broker: self.broker.clone(),
            message,
        };
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut frame = BytesMut::with_capacity(128);
        frame.put_i32(0);
        header
            .encode(&mut frame, api.request_header_version(version))
            .map_err(|e| codec(format!("cannot encode the request header: {e}")))?;
        request
            .encode(&mut frame, version)
            .map_err(|e| codec(format!("cannot encode v{version}: {e}")))?;
        let length = (frame.len() - 4) as i32;
        frame[0..4].copy_from_slice(&length.to_be_bytes());

        self.in_flight = true;
        let io = |source| MembershipError::Io {
            broker: self.broker.clone(),
            source,
        };
        self.stream.write_all(&frame).await.map_err(io)?;
        let length = self.stream.read_i32().await.map_err(io)?;
        if length < 0 || length as usize > MAX_RESPONSE_BYTES {
            return Err(codec(format!("response frame of {length} bytes")));
        }
        let mut body = vec![0u8; length as usize];
        self.stream.read_exact(&mut body).await.map_err(io)?;
        self.in_flight = false;

        let mut body = Bytes::from(body);
        let response_header =
            ResponseHeader::decode(&mut body, api.response_header_version(version))
                .map_err(|e| codec(format!("bad response header: {e}")))?;
        if response_header.correlation_id != correlation_id {
            return Err(codec(format!(
                "response to request {} arrived for request {correlation_id}",
                response_header.correlation_id
            )));
        }
        let response = R::Response::decode(&mut body, version)
            .map_err(|e| codec(format!("bad v{version} response: {e}")))?;
        if body.has_remaining() {
            debug!(api = ?api, trailing = body.remaining(), "ignoring trailing response bytes");
        }
        Ok(response)
    }
}

/// A worker's membership of its group. See the [module docs](self).
#[derive(Debug)]
pub struct GroupMember {
    config: MembershipConfig,
    coordinator: Option<Connection>,
    member_id: String,
    generation_id: i32,
    last_completed_generation_id: i32,
    /// What this worker runs according to the group: sent back as its allocation when joining.
    allocation: Option<ConnectAssignment>,
}

/// What a join attempt asks the loop to do next.
enum JoinStep {
    Done(Box<Generation>),
    /// Join again at once.
    Rejoin,
    /// Find the coordinator again after the back-off.
    Rediscover,
}

impl GroupMember {
    /// A member that has not joined yet; nothing is sent until [`join`](Self::join).
    pub fn new(config: MembershipConfig) -> Self {
        Self {
            config,
            coordinator: None,
            member_id: String::new(),
            generation_id: -1,
            last_completed_generation_id: -1,
            allocation: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &MembershipConfig {
        &self.config
    }

    /// The member id the coordinator gave this worker (empty before the first join).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The generation of the last completed join (-1 before the first).
    pub fn last_completed_generation_id(&self) -> i32 {
        self.last_completed_generation_id
    }

    /// Joins the group (again) and returns the new generation. `config_offset` is the highest
    /// `connect-configs` offset this worker has read; `assignor` runs if this worker is
    /// elected leader.
    ///
    /// Once the coordinator is found, retriable failures (a request timing out, a lost
    /// connection, a moved coordinator, a rebalance starting again) are retried here; the call
    /// returns when a generation is complete, or with an error joining again cannot fix.
    /// Wrap it in a timeout or `select!` it against a cancellation to bound it.
    ///
    /// # Errors
    /// [`MembershipError`]: the coordinator cannot be found through any bootstrap server
    /// within `request.timeout.ms` ([`is_retriable`](MembershipError::is_retriable)), it
    /// refuses this member (e.g. another protocol type in the group, an invalid session
    /// timeout), or the leader's assignment cannot be read.
    pub async fn join(
        &mut self,
        config_offset: i64,
        assignor: &mut dyn LeaderAssignor,
    ) -> Result<Generation> {
        loop {
            if self.coordinator.as_ref().is_none_or(|c| c.in_flight) {
                self.coordinator = Some(self.find_coordinator().await?);
            }
            match self.join_once(config_offset, assignor).await {
                Ok(JoinStep::Done(generation)) => return Ok(*generation),
                Ok(JoinStep::Rejoin) => {}
                Ok(JoinStep::Rediscover) => {
                    self.coordinator = None;
                    tokio::time::sleep(self.config.retry_backoff).await;
                }
                Err(e) if e.is_retriable() => {
                    warn!(group = %self.config.group_id, error = %e, "join failed; finding the coordinator again");
                    self.coordinator = None;
                    tokio::time::sleep(self.config.retry_backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn join_protocols(&self, config_offset: i64) -> Result<Vec<JoinGroupRequestProtocol>> {
        self.config
            .connect_protocol
            .offered()
            .iter()
            .map(|&protocol| {
                let metadata = WorkerMetadata {
                    version: protocol.version(),
                    url: self.config.rest_url.clone(),
                    config_offset,
                    allocation: if protocol.is_cooperative() {
                        self.allocation.clone().map(|a| ConnectAssignment {
                            version: protocol.version(),
                            ..a
                        })
                    } else {
                        None
                    },
                };
                let bytes = metadata
                    .encode()
                    .map_err(|source| self.protocol_error(source))?;
                Ok(JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str(protocol.protocol_name()))
                    .with_metadata(bytes))
            })
            .collect()
    }

    fn protocol_error(&self, source: ProtocolError) -> MembershipError {
        MembershipError::Protocol {
            group: self.config.group_id.clone(),
            source,
        }
    }

    fn group_error(&self, api: ApiKey, error: ResponseError) -> MembershipError {
        MembershipError::Group {
            api,
            group: self.config.group_id.clone(),
            error,
        }
    }

    async fn join_once(
        &mut self,
        config_offset: i64,
        assignor: &mut dyn LeaderAssignor,
    ) -> Result<JoinStep> {
        let group = self.config.group_id.clone();
        let protocols = self.join_protocols(config_offset)?;
        let wait = self.config.rebalance_timeout + self.config.request_timeout;
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_session_timeout_ms(millis(self.config.session_timeout))
            .with_rebalance_timeout_ms(millis(self.config.rebalance_timeout))
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_protocol_type(StrBytes::from_static_str(CONNECT_PROTOCOL_TYPE))
            .with_protocols(protocols)
            .with_reason(Some(StrBytes::from_static_str("worker joining")));
        let conn = self.coordinator.as_mut().expect("coordinator found");
        let version = conn.version(ApiKey::JoinGroup);
        let response = conn
            .send(ApiKey::JoinGroup, version, &request, wait)
            .await?;
        match ResponseError::try_from_code(response.error_code) {
            None => {}
            Some(ResponseError::MemberIdRequired) => {
                debug!(group = %group, member = %response.member_id, "joining again with the member id the coordinator gave");
                self.member_id = response.member_id.to_string();
                return Ok(JoinStep::Rejoin);
            }
            Some(ResponseError::UnknownMemberId) => {
                info!(group = %group, member = %self.member_id, "coordinator does not know this member; joining as a new one");
                self.member_id.clear();
                return Ok(JoinStep::Rejoin);
            }
            Some(ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration) => {
                return Ok(JoinStep::Rejoin)
            }
            Some(
                ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress,
            ) => return Ok(JoinStep::Rediscover),
            Some(error) => return Err(self.group_error(ApiKey::JoinGroup, error)),
        }
        self.member_id = response.member_id.to_string();
        self.generation_id = response.generation_id;
        let protocol_name = response
            .protocol_name
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        let protocol = ConnectProtocol::from_protocol_name(&protocol_name)
            .map_err(|source| self.protocol_error(source))?;
        let leader_id = response.leader.to_string();
        let is_leader = leader_id == self.member_id;
        debug!(group = %group, member = %self.member_id, generation = response.generation_id, leader = %leader_id, protocol = %protocol, "joined");

        let mut members = Vec::new();
        let mut assignments = Vec::new();
        if is_leader {
            let (readable, assigned) =
                self.assign_as_leader(&response.members, protocol, &leader_id, assignor)?;
            members = readable;
            assignments = assigned;
        }
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.clone())))
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()))
            .with_protocol_type(Some(StrBytes::from_static_str(CONNECT_PROTOCOL_TYPE)))
            .with_protocol_name(Some(StrBytes::from_static_str(protocol.protocol_name())))
            .with_assignments(assignments);
        let conn = self.coordinator.as_mut().expect("coordinator found");
        let version = conn.version(ApiKey::SyncGroup);
        let response = conn
            .send(ApiKey::SyncGroup, version, &request, wait)
            .await?;
        match ResponseError::try_from_code(response.error_code) {
            None => {}
            Some(ResponseError::UnknownMemberId) => {
                self.member_id.clear();
                return Ok(JoinStep::Rejoin);
            }
            Some(ResponseError::RebalanceInProgress | ResponseError::IllegalGeneration) => {
                return Ok(JoinStep::Rejoin)
            }
            Some(
                ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress,
            ) => return Ok(JoinStep::Rediscover),
            Some(error) => return Err(self.group_error(ApiKey::SyncGroup, error)),
        }
        if response.assignment.is_empty() {
            // The leader left this member out (it joined after the leader's view): rejoin.
            info!(group = %group, member = %self.member_id, "empty assignment from the leader; joining again");
            return Ok(JoinStep::Rejoin);
        }
        let assignment = ConnectAssignment::decode(&response.assignment)
            .map_err(|source| self.protocol_error(source))?;
        let allocation = self.apply(protocol, &assignment);
        self.last_completed_generation_id = self.generation_id;
        info!(
            group = %group,
            member = %self.member_id,
            generation = self.generation_id,
            leader = %leader_id,
            protocol = %protocol,
            connectors = allocation.connectors.len(),
            tasks = allocation.tasks.len(),
            revoked = assignment.revoked_connectors.len() + assignment.revoked_tasks.len(),
            "assignment received"
        );
        Ok(JoinStep::Done(Box::new(Generation {
            generation_id: self.generation_id,
            member_id: self.member_id.clone(),
            leader_id,
            protocol,
            assignment,
            allocation,
            members,
        })))
    }

    /// Reads the members' metadata and runs the assignor; members whose metadata cannot be
    /// read are logged and get an empty assignment.
    fn assign_as_leader(
        &self,
        joined: &[kafka_protocol::messages::join_group_response::JoinGroupResponseMember],
        protocol: ConnectProtocol,
        leader_id: &str,
        assignor: &mut dyn LeaderAssignor,
    ) -> Result<(Vec<JoinedMember>, Vec<SyncGroupRequestAssignment>)> {
        let mut members = Vec::new();
        for member in joined {
            match WorkerMetadata::decode(&member.metadata) {
                Ok(metadata) => members.push(JoinedMember {
                    member_id: member.member_id.to_string(),
                    metadata,
                }),
                Err(error) => warn!(
                    group = %self.config.group_id,
                    member = %member.member_id,
                    error = %error,
                    "ignoring a member whose metadata cannot be read; it gets no work"
                ),
            }
        }
        let round = LeaderRound {
            generation_id: self.generation_id,
            last_completed_generation_id: self.last_completed_generation_id,
            leader_id,
            protocol,
            members: &members,
        };
        let mut assigned = assignor.assign(&round);
        let leader_url = members
            .iter()
            .find(|m| m.member_id == leader_id)
            .map(|m| m.metadata.url.clone())
            .unwrap_or_else(|| self.config.rest_url.clone());
        let config_offset = members
            .iter()
            .map(|m| m.metadata.config_offset)
            .max()
            .unwrap_or(-1);
        let mut out = Vec::with_capacity(joined.len());
        for member in joined {
            let id = member.member_id.to_string();
            let assignment = assigned.remove(&id).unwrap_or_else(|| ConnectAssignment {
                version: protocol.version(),
                error: NO_ERROR,
                leader: leader_id.to_owned(),
                leader_url: leader_url.clone(),
                config_offset,
                ..ConnectAssignment::default()
            });
            let bytes = assignment
                .encode()
                .map_err(|source| self.protocol_error(source))?;
            out.push(
                SyncGroupRequestAssignment::default()
                    .with_member_id(member.member_id.clone())
                    .with_assignment(bytes),
            );
        }
        Ok((members, out))
    }

    /// Applies an assignment to what this worker runs and returns the result.
    fn apply(&mut self, protocol: ConnectProtocol, assignment: &ConnectAssignment) -> Work {
        let mut work = match (&self.allocation, protocol.is_cooperative()) {
            (Some(previous), true) => {
                Work::new(previous.connectors.clone(), previous.tasks.clone())
            }
            _ => Work::default(),
        };
        work.remove_all(&Work::new(
            assignment.revoked_connectors.clone(),
            assignment.revoked_tasks.clone(),
        ));
        work.extend(&Work::new(
            assignment.connectors.clone(),
            assignment.tasks.clone(),
        ));
        self.allocation = Some(ConnectAssignment {
            connectors: work.connectors.iter().cloned().collect(),
            tasks: work.tasks.iter().cloned().collect(),
            revoked_connectors: Vec::new(),
            revoked_tasks: Vec::new(),
            delay: 0,
            ..assignment.clone()
        });
        work
    }

    /// Finds the group's coordinator through the bootstrap servers and connects to it, trying
    /// for up to `request.timeout.ms`.
    async fn find_coordinator(&self) -> Result<Connection> {
        let servers = &self.config.bootstrap_servers;
        if servers.is_empty() {
            return Err(MembershipError::NoBootstrapServers);
        }
        let deadline = Instant::now() + self.config.request_timeout;
        let mut last;
        loop {
            let mut failure = None;
            for server in servers {
                match self.find_coordinator_through(server).await {
                    Ok(conn) => return Ok(conn),
                    Err(e) if e.is_retriable() => {
                        debug!(broker = %server, error = %e, "no coordinator through this broker");
                        failure = Some(e.to_string());
                    }
                    Err(e) => return Err(e),
                }
            }
            last = failure.unwrap_or_default();
            if Instant::now() + self.config.retry_backoff >= deadline {
                return Err(MembershipError::CoordinatorNotFound {
                    group: self.config.group_id.clone(),
                    servers: servers.join(","),
                    last,
                });
            }
            tokio::time::sleep(self.config.retry_backoff).await;
        }
    }

    async fn find_coordinator_through(&self, server: &str) -> Result<Connection> {
        let timeout = self.config.request_timeout;
        let mut conn = Connection::open(
            server,
            &self.config.client_id,
            &self.config.security,
            timeout,
        )
        .await?;
        let version = conn.version(ApiKey::FindCoordinator);
        let group = StrBytes::from_string(self.config.group_id.clone());
        let mut request = FindCoordinatorRequest::default().with_key_type(0);
        if version >= 4 {
            request = request.with_coordinator_keys(vec![group]);
        } else {
            request = request.with_key(group);
        }
        let response = conn
            .send(ApiKey::FindCoordinator, version, &request, timeout)
            .await?;
        let (error_code, host, port) = if version >= 4 {
            match response.coordinators.first() {
                Some(c) => (c.error_code, c.host.to_string(), c.port),
                None => {
                    return Err(MembershipError::Codec {
                        api: ApiKey::FindCoordinator,
                        broker: server.to_owned(),
                        message: "answer without a coordinator".to_owned(),
                    })
                }
            }
        } else {
            (
                response.error_code,
                response.host.to_string(),
                response.port,
            )
        };
        if let Some(error) = ResponseError::try_from_code(error_code) {
            return Err(self.group_error(ApiKey::FindCoordinator, error));
        }
        let address = format!("{host}:{port}");
        debug!(group = %self.config.group_id, coordinator = %address, "found the coordinator");
        if address == server {
            Ok(conn)
        } else {
            Connection::open(
                &address,
                &self.config.client_id,
                &self.config.security,
                timeout,
            )
            .await
        }
    }

    /// Sends one heartbeat. `Ok(None)`: all is well; `Ok(Some(_))`: join again.
    ///
    /// # Errors
    /// The coordinator could not be reached ([retriable](MembershipError::is_retriable)) or
    /// refused with an error joining again does not fix.
    pub async fn heartbeat(&mut self) -> Result<Option<RebalanceNeeded>> {
        if self.coordinator.as_ref().is_none_or(|c| c.in_flight) {
            self.coordinator = Some(self.find_coordinator().await?);
        }
        let request = HeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(self.config.group_id.clone())))
            .with_generation_id(self.generation_id)
            .with_member_id(StrBytes::from_string(self.member_id.clone()));
        let timeout = self.config.request_timeout;
        let conn = self.coordinator.as_mut().expect("coordinator found");
        let version = conn.version(ApiKey::Heartbeat);
        let response = conn
            .send(ApiKey::Heartbeat, version, &request, timeout)
            .await?;
        match ResponseError::try_from_code(response.error_code) {
            None => Ok(None),
            Some(ResponseError::RebalanceInProgress) => Ok(Some(RebalanceNeeded::GroupRebalancing)),
            Some(ResponseError::IllegalGeneration) => Ok(Some(RebalanceNeeded::MembershipLost)),
            Some(ResponseError::UnknownMemberId | ResponseError::FencedInstanceId) => {
                self.member_id.clear();
                Ok(Some(RebalanceNeeded::MembershipLost))
            }
            Some(
                error @ (ResponseError::NotCoordinator
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::CoordinatorLoadInProgress),
            ) => {
                self.coordinator = None;
                Err(self.group_error(ApiKey::Heartbeat, error))
            }
            Some(error) => Err(self.group_error(ApiKey::Heartbeat, error)),
        }
    }

    /// Heartbeats every `heartbeat.interval.ms` until the group needs this worker to join
    /// again, and says why. Unreachable coordinators are looked for again; when no heartbeat
    /// has got through for `session.timeout.ms`, the answer is
    /// [`RebalanceNeeded::SessionExpired`].
    ///
    /// # Errors
    /// The coordinator refused with an error joining again does not fix.
    pub async fn heartbeat_until_rebalance(&mut self) -> Result<RebalanceNeeded> {
        let mut ticker = tokio::time::interval(self.config.heartbeat_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // The first tick is immediate; the join just proved the member alive.
        ticker.tick().await;
        let mut last_success = Instant::now();
        loop {
            ticker.tick().await;
            match self.heartbeat().await {
                Ok(None) => last_success = Instant::now(),
                Ok(Some(reason)) => {
                    debug!(group = %self.config.group_id, member = %self.member_id, reason = %reason, "rebalance needed");
                    return Ok(reason);
                }
                Err(e) if e.is_retriable() => {
                    warn!(group = %self.config.group_id, error = %e, "heartbeat failed");
                    self.coordinator = None;
                    if last_success.elapsed() >= self.config.session_timeout {
                        return Ok(RebalanceNeeded::SessionExpired);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Leaves the group, so the others rebalance now rather than after `session.timeout.ms`.
    ///
    /// # Errors
    /// The coordinator could not be reached or refused; the member is gone from the group
    /// after its session timeout anyway.
    pub async fn leave(mut self) -> Result<()> {
        if self.member_id.is_empty() {
            return Ok(());
        }
        if self.coordinator.as_ref().is_none_or(|c| c.in_flight) {
            self.coordinator = Some(self.find_coordinator().await?);
        }
        let group = GroupId(StrBytes::from_string(self.config.group_id.clone()));
        let member = StrBytes::from_string(self.member_id.clone());
        let timeout = self.config.request_timeout;
        let conn = self.coordinator.as_mut().expect("coordinator found");
        let version = conn.version(ApiKey::LeaveGroup);
        let request = if version >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(group)
                .with_members(vec![MemberIdentity::default()
                    .with_member_id(member)
                    .with_reason(Some(StrBytes::from_static_str("worker stopping")))])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(group)
                .with_member_id(member)
        };
        let response = conn
            .send(ApiKey::LeaveGroup, version, &request, timeout)
            .await?;
        let code = if response.error_code != 0 {
            response.error_code
        } else {
            response.members.first().map_or(0, |m| m.error_code)
        };
        match ResponseError::try_from_code(code) {
            None | Some(ResponseError::UnknownMemberId) => {
                info!(group = %self.config.group_id, member = %self.member_id, "left the group");
                Ok(())
            }
            Some(error) => Err(self.group_error(ApiKey::LeaveGroup, error)),
        }
    }
}

fn millis(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

/// Against the real broker's group coordinator, started in this process on 127.0.0.1:0.
#[cfg(test)]
mod tests {
    use sluice_broker::{Broker, BrokerConfig};
    use tokio::sync::{oneshot, watch};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::cluster::assignor::ConnectAssignor;

    /// Long enough for a loaded machine, short of the session timeout of the leave test.
    const WAIT: Duration = Duration::from_secs(20);

    struct TestBroker {
        broker: Option<Broker>,
        _dir: tempfile::TempDir,
    }

    impl TestBroker {
        async fn start() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let config = BrokerConfig {
                group_initial_rebalance_delay_ms: 200,
                group_min_session_timeout_ms: 500,
                ..BrokerConfig::new("127.0.0.1:0", dir.path())
            };
            let broker = Broker::start(config).await.unwrap();
            Self {
                broker: Some(broker),
                _dir: dir,
            }
        }

        fn bootstrap(&self) -> String {
            self.broker.as_ref().unwrap().bootstrap_servers()
        }

        async fn stop(mut self) {
            self.broker.take().unwrap().shutdown().await.unwrap();
        }

        /// Stops the broker and starts it again on the same address and data.
        async fn restart(&mut self) {
            let address = self.bootstrap();
            self.broker.take().unwrap().shutdown().await.unwrap();
            let config = BrokerConfig {
                group_initial_rebalance_delay_ms: 200,
                group_min_session_timeout_ms: 500,
                ..BrokerConfig::new(&address, self._dir.path())
            };
            self.broker = Some(Broker::start(config).await.unwrap());
        }
    }

    fn member_config(
        bootstrap: &str,
        group: &str,
        n: usize,
        protocol: ConnectProtocol,
        session_timeout: Duration,
    ) -> MembershipConfig {
        MembershipConfig {
            session_timeout,
            heartbeat_interval: Duration::from_millis(200),
            rebalance_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            connect_protocol: protocol,
            client_id: format!("worker-{n}"),
            ..MembershipConfig::new(bootstrap, group, &format!("http://worker-{n}:8083/"))
        }
    }

    /// How a test member stops.
    enum Stop {
        /// LeaveGroup, then close.
        Leave,
        /// Close the connection without a word: the coordinator drops it after the session
        /// timeout.
        Vanish,
    }

    /// A worker as the herder will drive one: join, then heartbeat until a rebalance is
    /// needed; join again at once after a revocation or after the assignment's delay.
    struct TestWorker {
        generations: watch::Receiver<Option<Generation>>,
        stop: Option<oneshot::Sender<Stop>>,
        task: JoinHandle<()>,
    }

    impl TestWorker {
        fn spawn(config: MembershipConfig, configured: Work) -> Self {
            let (tx, generations) = watch::channel(None);
            let (stop, mut stop_rx) = oneshot::channel();
            let task = tokio::spawn(async move {
                let mut member = GroupMember::new(config);
                let mut assignor = ConnectAssignor::new(configured, 0, Duration::ZERO);
                loop {
                    let generation = tokio::select! {
                        r = member.join(0, &mut assignor) => r.expect("join"),
                        stop = &mut stop_rx => return finish(member, stop.unwrap_or(Stop::Vanish)).await,
                    };
                    let revoked = !generation.assignment.revoked_connectors.is_empty()
                        || !generation.assignment.revoked_tasks.is_empty();
                    let delay = Duration::from_millis(generation.assignment.delay.max(0) as u64);
                    tx.send_replace(Some(generation));
                    if revoked {
                        continue;
                    }
                    tokio::select! {
                        r = member.heartbeat_until_rebalance() => { r.expect("heartbeat"); }
                        () = tokio::time::sleep(delay), if !delay.is_zero() => {}
                        stop = &mut stop_rx => return finish(member, stop.unwrap_or(Stop::Vanish)).await,
                    }
                }
            });
            Self {
                generations,
                stop: Some(stop),
                task,
            }
        }

        async fn stop(mut self, how: Stop) {
            self.stop.take().unwrap().send(how).ok().unwrap();
            self.task.await.unwrap();
        }

        fn latest(&self) -> Option<Generation> {
            self.generations.borrow().clone()
        }
    }

    async fn finish(member: GroupMember, how: Stop) {
        match how {
            Stop::Leave => member.leave().await.expect("leave"),
            Stop::Vanish => drop(member),
        }
    }

    /// Waits until every worker is in the same generation of `size` members with nothing
    /// revoked, and returns their generations.
    async fn settled(workers: &mut [TestWorker], size: usize) -> Vec<Generation> {
        let deadline = Instant::now() + WAIT;
        loop {
            let latest: Vec<Option<Generation>> = workers.iter().map(TestWorker::latest).collect();
            if let Some(all) = latest.iter().cloned().collect::<Option<Vec<Generation>>>() {
                let same = all.iter().all(|g| g.generation_id == all[0].generation_id);
                let quiet = all.iter().all(|g| {
                    g.assignment.revoked_connectors.is_empty()
                        && g.assignment.revoked_tasks.is_empty()
                });
                let leader = all.iter().find(|g| g.is_leader());
                if same && quiet && leader.is_some_and(|l| l.members.len() == size) {
                    return all;
                }
            }
            let changes = workers
                .iter_mut()
                .map(|w| Box::pin(w.generations.changed()));
            let changed =
                tokio::time::timeout_at(deadline, futures::future::select_all(changes)).await;
            assert!(
                changed.is_ok(),
                "no settled generation of {size} members within {WAIT:?}: {latest:#?}"
            );
        }
    }

    fn configured() -> Work {
        Work::from_task_counts([("orders", 3), ("users", 2), ("audit", 1)])
    }

    /// One leader, one agreed generation, and the leader's assignment handed to everyone:
    /// everything configured runs exactly once, balanced.
    fn assert_one_leader_and_complete(generations: &[Generation]) {
        let leaders = generations.iter().filter(|g| g.is_leader()).count();
        assert_eq!(leaders, 1, "{generations:#?}");
        let leader_id = &generations[0].leader_id;
        assert!(generations.iter().all(|g| &g.leader_id == leader_id));
        assert!(generations
            .iter()
            .all(|g| g.assignment.leader == *leader_id && !g.assignment.failed()));
        let mut all = Work::default();
        let mut count = 0;
        for g in generations {
            assert!(
                !all.intersects(&g.allocation),
                "work assigned twice: {generations:#?}"
            );
            all.extend(&g.allocation);
            count += g.allocation.tasks.len();
        }
        assert_eq!(all, configured());
        assert_eq!(count, configured().tasks.len());
        // Incremental assignment balances tasks; eager round-robin balances connectors and
        // tasks together, as Kafka Connect's does.
        let loads: Vec<usize> = generations
            .iter()
            .map(|g| match g.protocol {
                ConnectProtocol::Eager => g.allocation.tasks.len() + g.allocation.connectors.len(),
                _ => g.allocation.tasks.len(),
            })
            .collect();
        assert!(
            loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1,
            "{loads:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_workers_form_one_sessioned_group() {
        let broker = TestBroker::start().await;
        let mut workers: Vec<TestWorker> = (0..3)
            .map(|n| {
                let config = member_config(
                    &broker.bootstrap(),
                    "connect-cluster",
                    n,
                    ConnectProtocol::Sessioned,
                    Duration::from_secs(10),
                );
                TestWorker::spawn(config, configured())
            })
            .collect();
        let generations = settled(&mut workers, 3).await;
        assert!(generations
            .iter()
            .all(|g| g.protocol == ConnectProtocol::Sessioned));
        assert!(generations.iter().all(|g| g.assignment.version == 2));
        assert_one_leader_and_complete(&generations);
        // The leader saw every member's metadata, REST URLs included.
        let leader = generations.iter().find(|g| g.is_leader()).unwrap();
        let mut urls: Vec<&str> = leader
            .members
            .iter()
            .map(|m| m.metadata.url.as_str())
            .collect();
        urls.sort();
        assert_eq!(
            urls,
            [
                "http://worker-0:8083/",
                "http://worker-1:8083/",
                "http://worker-2:8083/"
            ]
        );
        for w in workers {
            w.stop(Stop::Leave).await;
        }
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_eager_only_worker_makes_the_group_use_default() {
        let broker = TestBroker::start().await;
        let protocols = [
            ConnectProtocol::Sessioned,
            ConnectProtocol::Eager,
            ConnectProtocol::Sessioned,
        ];
        let mut workers: Vec<TestWorker> = protocols
            .iter()
            .enumerate()
            .map(|(n, p)| {
                let config =
                    member_config(&broker.bootstrap(), "mixed", n, *p, Duration::from_secs(10));
                TestWorker::spawn(config, configured())
            })
            .collect();
        let generations = settled(&mut workers, 3).await;
        assert!(
            generations
                .iter()
                .all(|g| g.protocol == ConnectProtocol::Eager),
            "{generations:#?}"
        );
        assert!(generations.iter().all(|g| g.assignment.version == 0));
        assert_one_leader_and_complete(&generations);
        for w in workers {
            w.stop(Stop::Leave).await;
        }
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_silent_worker_is_dropped_after_the_session_timeout() {
        let broker = TestBroker::start().await;
        let mut workers: Vec<TestWorker> = (0..3)
            .map(|n| {
                let config = member_config(
                    &broker.bootstrap(),
                    "silent",
                    n,
                    ConnectProtocol::Sessioned,
                    Duration::from_millis(1_500),
                );
                TestWorker::spawn(config, configured())
            })
            .collect();
        let before = settled(&mut workers, 3).await;
        // Stop the leader without LeaveGroup: the others must notice through the coordinator.
        let leader = before.iter().position(Generation::is_leader).unwrap();
        let gone = workers.remove(leader);
        let gone_id = before[leader].member_id.clone();
        gone.stop(Stop::Vanish).await;
        let after = settled(&mut workers, 2).await;
        assert!(after[0].generation_id > before[0].generation_id);
        assert!(after
            .iter()
            .all(|g| g.member_id != gone_id && g.leader_id != gone_id));
        let new_leader = after.iter().find(|g| g.is_leader()).unwrap();
        assert!(new_leader.members.iter().all(|m| m.member_id != gone_id));
        for w in workers {
            w.stop(Stop::Leave).await;
        }
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn leave_group_rebalances_the_rest_and_their_work_is_taken_over() {
        let broker = TestBroker::start().await;
        // A session timeout far beyond the wait: only LeaveGroup can explain a quick rebalance.
        let session = Duration::from_secs(60);
        let mut workers: Vec<TestWorker> = (0..3)
            .map(|n| {
                let config = member_config(
                    &broker.bootstrap(),
                    "leaving",
                    n,
                    ConnectProtocol::Sessioned,
                    session,
                );
                TestWorker::spawn(config, configured())
            })
            .collect();
        let before = settled(&mut workers, 3).await;
        let follower = before.iter().position(|g| !g.is_leader()).unwrap();
        let gone = workers.remove(follower);
        gone.stop(Stop::Leave).await;
        let after = settled(&mut workers, 2).await;
        assert!(after[0].generation_id > before[0].generation_id);
        // With no delay configured, the leaver's work is reassigned: all runs exactly once.
        let mut all = Work::default();
        for g in &after {
            assert!(!all.intersects(&g.allocation));
            all.extend(&g.allocation);
        }
        assert_eq!(all, configured());
        for w in workers {
            w.stop(Stop::Leave).await;
        }
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn another_protocol_type_in_the_group_is_a_typed_refusal() {
        let broker = TestBroker::start().await;
        let mut first = GroupMember::new(member_config(
            &broker.bootstrap(),
            "typed",
            0,
            ConnectProtocol::Sessioned,
            Duration::from_secs(10),
        ));
        let mut assignor = ConnectAssignor::new(configured(), 0, Duration::ZERO);
        first.join(0, &mut assignor).await.unwrap();
        // A consumer-group client with the same group id: the coordinator refuses it.
        let config = member_config(
            &broker.bootstrap(),
            "typed",
            1,
            ConnectProtocol::Sessioned,
            Duration::from_secs(10),
        );
        let other = GroupMember::new(config);
        let mut conn = other.find_coordinator().await.unwrap();
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("typed")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(5_000)
            .with_member_id(StrBytes::from_static_str("consumer-1"))
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"\0\0"))]);
        let version = conn.version(ApiKey::JoinGroup);
        let response = conn
            .send(ApiKey::JoinGroup, version, &request, Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(
            ResponseError::try_from_code(response.error_code),
            Some(ResponseError::InconsistentGroupProtocol)
        );
        first.leave().await.unwrap();
        broker.stop().await;
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_a_retriable_error() {
        // A port nothing listens on: bind one, then close it.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let config = MembershipConfig {
            request_timeout: Duration::from_millis(300),
            retry_backoff: Duration::from_millis(50),
            ..MembershipConfig::new(&address, "nowhere", "http://w:8083/")
        };
        let mut member = GroupMember::new(config);
        let mut assignor = ConnectAssignor::new(configured(), 0, Duration::ZERO);
        let error = member.join(0, &mut assignor).await.unwrap_err();
        assert!(
            matches!(error, MembershipError::CoordinatorNotFound { .. }),
            "{error}"
        );
        assert!(error.is_retriable());
        let empty = GroupMember::new(MembershipConfig::new("", "g", "u"));
        assert!(matches!(
            empty.find_coordinator().await,
            Err(MembershipError::NoBootstrapServers)
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_leader_ignores_a_member_whose_metadata_it_cannot_read() {
        let broker = TestBroker::start().await;
        let config = member_config(
            &broker.bootstrap(),
            "garbled",
            0,
            ConnectProtocol::Sessioned,
            Duration::from_secs(10),
        );
        let mut workers = vec![TestWorker::spawn(config.clone(), configured())];
        let first = settled(&mut workers, 1).await;
        let leader_id = first[0].member_id.clone();

        // A second member whose `sessioned` metadata is not Connect's layout.
        let raw = GroupMember::new(MembershipConfig {
            client_id: "garbled".to_owned(),
            ..config
        });
        let mut conn = raw.find_coordinator().await.unwrap();
        let join_version = conn.version(ApiKey::JoinGroup);
        let mut member_id = StrBytes::default();
        let joined = loop {
            let request = JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("garbled")))
                .with_session_timeout_ms(10_000)
                .with_rebalance_timeout_ms(5_000)
                .with_member_id(member_id.clone())
                .with_protocol_type(StrBytes::from_static_str(CONNECT_PROTOCOL_TYPE))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(StrBytes::from_static_str("sessioned"))
                    .with_metadata(Bytes::from_static(&[0, 2, 0x7f, 0xff]))]);
            let response = conn
                .send(ApiKey::JoinGroup, join_version, &request, WAIT)
                .await
                .unwrap();
            match ResponseError::try_from_code(response.error_code) {
                Some(ResponseError::MemberIdRequired) => member_id = response.member_id,
                None => break response,
                Some(other) => panic!("JoinGroup: {other}"),
            }
        };
        assert_eq!(
            joined.leader.as_str(),
            leader_id,
            "the first member stays leader"
        );
        let request = SyncGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("garbled")))
            .with_generation_id(joined.generation_id)
            .with_member_id(joined.member_id.clone());
        let sync_version = conn.version(ApiKey::SyncGroup);
        let synced = conn
            .send(ApiKey::SyncGroup, sync_version, &request, WAIT)
            .await
            .unwrap();
        assert_eq!(synced.error_code, 0);
        let assignment = ConnectAssignment::decode(&synced.assignment).unwrap();
        assert_eq!(assignment.leader, leader_id);
        assert!(assignment.connectors.is_empty() && assignment.tasks.is_empty());

        // The leader went on with the members it could read: all the work is its own. Its
        // SyncGroup answer may reach its task after ours reached us.
        let generation = joined.generation_id;
        let leader = tokio::time::timeout(
            WAIT,
            workers[0]
                .generations
                .wait_for(|g| g.as_ref().is_some_and(|g| g.generation_id >= generation)),
        )
        .await
        .expect("the leader completes the generation")
        .unwrap()
        .clone()
        .unwrap();
        assert_eq!(leader.generation_id, generation);
        assert_eq!(leader.members.len(), 1);
        assert_eq!(leader.allocation, configured());
        for w in workers {
            w.stop(Stop::Leave).await;
        }
        broker.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_find_a_restarted_coordinator_again() {
        let mut broker = TestBroker::start().await;
        let bootstrap = broker.bootstrap();
        let config = |n| {
            member_config(
                &bootstrap,
                "restarted",
                n,
                ConnectProtocol::Sessioned,
                Duration::from_secs(10),
            )
        };
        let mut workers: Vec<TestWorker> = (0..3)
            .map(|n| TestWorker::spawn(config(n), configured()))
            .collect();
        settled(&mut workers, 3).await;
        broker.restart().await;
        // Their connections broke. A newcomer's join reaches the three only through
        // heartbeats on new connections to the restarted coordinator.
        workers.push(TestWorker::spawn(config(3), configured()));
        let after = settled(&mut workers, 4).await;
        assert_one_leader_and_complete(&after);
        for w in workers {
            w.stop(Stop::Leave).await;
        }
        broker.stop().await;
    }

    /// Timer logic on tokio's paused clock: with the coordinator gone, the heartbeat loop
    /// keeps trying and gives up once `session.timeout.ms` has passed without a heartbeat.
    #[tokio::test(start_paused = true)]
    async fn heartbeats_that_never_get_through_end_in_session_expired() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        drop(listener);
        let session_timeout = Duration::from_secs(10);
        let mut member = GroupMember::new(MembershipConfig {
            session_timeout,
            heartbeat_interval: Duration::from_secs(3),
            request_timeout: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(100),
            ..MembershipConfig::new(&address, "gone", "http://w:8083/")
        });
        let start = Instant::now();
        let reason = member.heartbeat_until_rebalance().await.unwrap();
        assert_eq!(reason, RebalanceNeeded::SessionExpired);
        let waited = start.elapsed();
        assert!(waited >= session_timeout, "gave up after {waited:?}");
        assert!(
            waited < session_timeout + Duration::from_secs(5),
            "kept trying for {waited:?}"
        );
    }

    #[test]
    fn config_defaults_follow_kafka_connect() {
        let config = MembershipConfig::new("a:9092, b:9092", "g", "http://w:8083/");
        assert_eq!(config.bootstrap_servers, ["a:9092", "b:9092"]);
        assert_eq!(config.session_timeout, Duration::from_millis(10_000));
        assert_eq!(config.heartbeat_interval, Duration::from_millis(3_000));
        assert_eq!(config.rebalance_timeout, Duration::from_millis(60_000));
        assert_eq!(config.connect_protocol, ConnectProtocol::Sessioned);
    }
}
