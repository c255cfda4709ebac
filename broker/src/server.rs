//! The network side: binding, accepting, one task per connection, graceful shutdown.
//!
//! A connection's reader decodes frames in order and runs each request's first stage (for
//! Produce: validation and the append) before reading the next, so appends keep the order
//! the client sent them in. A request's second stage (waiting for fsync, a Fetch long poll)
//! runs as its own task; the writer sends responses strictly in request order. At most
//! [`MAX_IN_FLIGHT`] responses wait per connection, which bounds its memory.
//!
//! Every warning a remote peer can cause (frames that cannot be read or decoded, unsupported
//! requests, responses that cannot be encoded) goes through the broker's [`LogLimiter`], keyed
//! by the peer's IP address and the kind of problem: a few lines in full, then one summary
//! line a minute, so no input from the network writes an unbounded amount of log.

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::api::{self, Decoded, Reply, RequestContext};
use crate::config::{BrokerConfig, LogFlush};
use crate::error::{Error, IoContext, Result};
use crate::group::{GroupCoordinator, TopicLookup};
use crate::log_limit::{LogLimitConfig, LogLimiter};
use crate::security::acl::Authorizer;
use crate::security::credentials::CredentialStore;
use crate::security::sasl::{Mechanism, Outcome, SaslAuthenticator};
use crate::security::scram::{ScramCredential, ScramMechanism, DEFAULT_ITERATIONS};
use crate::security::tls::{certificate_principal, TlsContext};
use crate::security::{KafkaPrincipal, Listener, SecurityProtocol};
use crate::storage::flush::GroupCommit;
use crate::storage::LogManager;
use crate::transport::{Session, Transport};

/// Responses one connection may have outstanding before its reader pauses.
const MAX_IN_FLIGHT: usize = 32;
/// Largest step by which a request buffer grows while its bytes arrive.
const READ_CHUNK: usize = 1 << 20;
/// The node id this broker reports: it is broker 0 of a one-node cluster.
pub(crate) const NODE_ID: i32 = 0;

// Problems a remote peer can cause, named as they read in the log limiter's summary lines
// ("12 more malformed requests from 10.0.0.7 in the last 60s").
/// Frames that cannot be read: impossible lengths, connections cut inside a request.
pub(crate) const UNREADABLE_REQUESTS: &str = "unreadable requests";
/// Frames that cannot be decoded as a request of a known API.
pub(crate) const MALFORMED_REQUESTS: &str = "malformed requests";
/// Requests for APIs or versions this broker does not serve.
pub(crate) const UNSUPPORTED_REQUESTS: &str = "unsupported requests";
/// Requests whose response cannot be encoded or whose handler failed.
pub(crate) const UNANSWERABLE_REQUESTS: &str = "unanswerable requests";
/// Transactional requests (transactions are not supported).
pub(crate) const TRANSACTIONAL_REQUESTS: &str = "transactional requests";
/// Produce requests refused for a reason other than an unknown topic.
pub(crate) const REFUSED_PRODUCE_REQUESTS: &str = "refused produce requests";
/// Failed accepts (out of file descriptors, often because of a connection flood).
const FAILED_ACCEPTS: &str = "failed accepts";
/// TLS handshakes that failed or timed out.
const FAILED_TLS_HANDSHAKES: &str = "failed TLS handshakes";
/// SASL authentications that failed (wrong password, unknown user, bad SASL frames).
pub(crate) const FAILED_AUTHENTICATIONS: &str = "failed authentications";
/// First two bytes of a TLS ClientHello record (content type 22, major version 3): read as a
/// Kafka length prefix they say 369 MB or more, which no request is before authentication.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
const TLS_MAJOR_VERSION: u8 = 0x03;
/// How long a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame read before SASL authentication succeeds (Kafka's
/// `sasl.server.max.receive.size`), so unauthenticated peers cannot make the broker buffer much.
const MAX_UNAUTHENTICATED_FRAME: i32 = 512 * 1024;

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct BrokerState {
    pub(crate) logs: LogManager,
    pub(crate) commit: Arc<GroupCommit>,
    /// Woken after every append, for Fetch long polls.
    pub(crate) appended: Notify,
    /// The bound listeners, in the order of the `listeners` setting.
    pub(crate) listeners: Vec<Arc<Listener>>,
    /// TLS of the SSL and SASL_SSL listeners.
    pub(crate) tls: Option<Arc<TlsContext>>,
    /// SCRAM credentials, for SASL and the credential APIs.
    pub(crate) credentials: Arc<CredentialStore>,
    /// ACLs and the decisions made with them.
    pub(crate) authorizer: Arc<Authorizer>,
    /// `sasl.enabled.mechanisms`.
    pub(crate) sasl_mechanisms: Vec<Mechanism>,
    pub(crate) shutdown: CancellationToken,
    /// The consumer-group coordinator.
    pub(crate) groups: Arc<GroupCoordinator>,
    /// Summarises warnings that remote peers can cause.
    pub(crate) log_limit: Arc<LogLimiter>,
}

/// Topic look-ups for the group coordinator, answered from the log manager once the broker
/// state exists (the coordinator is opened before it).
#[derive(Debug, Default)]
struct LogTopics(OnceLock<Weak<BrokerState>>);

impl TopicLookup for LogTopics {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        let state = self.0.get()?.upgrade()?;
        state.logs.topic(topic).map(|t| t.partition_count())
    }
}

impl BrokerState {
    pub(crate) fn config(&self) -> &BrokerConfig {
        &self.logs.config
    }
}

/// A running broker. Dropping it does not stop it: call [`Broker::shutdown`], or cancel the
/// token given to [`Broker::start_with_shutdown`] and await [`Broker::wait`].
#[derive(Debug)]
pub struct Broker {
    local_addr: SocketAddr,
    state: Arc<BrokerState>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Broker {
    /// Recovers the data dir, binds the listen address and starts serving.
    ///
    /// # Errors
    /// An invalid config, an unusable data dir, or an address that cannot be bound.
    pub async fn start(config: BrokerConfig) -> Result<Self> {
        Self::start_with_shutdown(config, CancellationToken::new()).await
    }

    /// Like [`Broker::start`], stopping when `shutdown` is cancelled (pass a child of the
    /// program's root token). Await [`Broker::wait`] to know when the stop is complete.
    ///
    /// # Errors
    /// An invalid config, an unusable data dir, or an address that cannot be bound.
    pub async fn start_with_shutdown(
        config: BrokerConfig,
        shutdown: CancellationToken,
    ) -> Result<Self> {
        config.validate()?;
        let mut bound = Vec::new();
        for spec in config.listener_specs()? {
            let bind = if spec.bind.starts_with(':') {
                format!("0.0.0.0{}", spec.bind)
            } else {
                spec.bind.clone()
            };
            let tcp = TcpListener::bind(&bind)
                .await
                .map_err(|source| Error::Bind {
                    addr: bind.clone(),
                    source,
                })?;
            let local_addr = tcp.local_addr().map_err(|source| Error::Bind {
                addr: bind.clone(),
                source,
            })?;
            let (advertised_host, advertised_port) =
                advertised(spec.advertised.clone(), local_addr);
            let listener = Arc::new(Listener {
                name: spec.name,
                protocol: spec.protocol,
                local_addr,
                advertised_host,
                advertised_port,
            });
            bound.push((tcp, listener));
        }
        let first = Arc::clone(&bound[0].1);
        let data_dir = config.data_dir.clone();
        let tls = TlsContext::from_config(&config)?;
        let sasl_mechanisms = config.sasl_mechanisms()?;
        let security = config.clone();
        let (credentials, authorizer) =
            tokio::task::spawn_blocking(move || open_security_stores(&security))
                .await
                .map_err(|e| Error::Task(e.to_string()))??;
        let logs = tokio::task::spawn_blocking(move || LogManager::open(config))
            .await
            .map_err(|e| Error::Task(e.to_string()))??;
        let topics = Arc::new(LogTopics::default());
        let groups = GroupCoordinator::open(
            &data_dir,
            logs.config
                .group_config(&first.advertised_host, first.advertised_port),
            topics.clone(),
        )
        .at(data_dir.join(crate::group::GROUP_STORE_DIR))?;
        let state = Arc::new(BrokerState {
            logs,
            commit: GroupCommit::start(),
            appended: Notify::new(),
            listeners: bound.iter().map(|(_, l)| Arc::clone(l)).collect(),
            tls,
            credentials,
            authorizer,
            sasl_mechanisms,
            shutdown: shutdown.clone(),
            groups: Arc::clone(&groups),
            log_limit: Arc::new(LogLimiter::new(LogLimitConfig::default())),
        });
        let _ = topics.0.set(Arc::downgrade(&state));
        let tracker = TaskTracker::new();
        tracker.spawn(Arc::clone(&groups.log_limit).run(shutdown.clone()));
        tracker.spawn(groups.run_timers(shutdown.clone()));
        tracker.spawn(Arc::clone(&state.log_limit).run(shutdown.clone()));
        tracker.spawn(crate::storage::retention::run_retention(
            Arc::clone(&state),
            Duration::from_millis(state.config().log_retention_check_interval_ms),
        ));
        if state.config().log_cleaner_enable {
            tracker.spawn(crate::storage::cleaner::run_cleaner(
                Arc::clone(&state),
                Duration::from_millis(state.config().log_cleaner_backoff_ms),
            ));
        }
        if let Some(tls) = &state.tls {
            let interval = state.config().ssl_keystore_reload_interval_ms;
            if interval > 0 {
                tracker.spawn(
                    Arc::clone(tls).run_reload(Duration::from_millis(interval), shutdown.clone()),
                );
            }
        }
        if state.config().log_flush == LogFlush::Interval {
            tracker.spawn(flush_periodically(Arc::clone(&state)));
        }
        let mut described = Vec::new();
        for (tcp, listener) in bound {
            described.push(format!(
                "{}://{} (advertised {}:{})",
                listener.name,
                listener.local_addr,
                listener.advertised_host,
                listener.advertised_port
            ));
            tracker.spawn(accept_loop(
                tcp,
                listener,
                Arc::clone(&state),
                tracker.clone(),
            ));
        }
        info!(
            listeners = %described.join(", "),
            data_dir = %data_dir.display(),
            cluster_id = %state.logs.cluster_id,
            log_flush = ?state.config().log_flush,
            acls = state.authorizer.enabled(),
            "broker started"
        );
        Ok(Self {
            local_addr: first.local_addr,
            state,
            tracker,
            shutdown,
        })
    }

    /// The address the first listener is bound to (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address the listener named `name` (`PLAINTEXT`, `SASL_SSL`, ...) is bound to.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listener(name).map(|l| l.local_addr)
    }

    /// Every listener: its name, security protocol and bound address.
    pub fn listeners(&self) -> Vec<(String, SecurityProtocol, SocketAddr)> {
        self.state
            .listeners
            .iter()
            .map(|l| (l.name.clone(), l.protocol, l.local_addr))
            .collect()
    }

    /// `host:port` for a client's `bootstrap.servers`: the first listener's advertised address.
    pub fn bootstrap_servers(&self) -> String {
        let first = &self.state.listeners[0];
        format!("{}:{}", first.advertised_host, first.advertised_port)
    }

    /// `host:port` advertised by the listener named `name`.
    pub fn bootstrap_servers_for(&self, name: &str) -> Option<String> {
        self.listener(name)
            .map(|l| format!("{}:{}", l.advertised_host, l.advertised_port))
    }

    fn listener(&self, name: &str) -> Option<&Arc<Listener>> {
        self.state
            .listeners
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(name))
    }

    /// The cluster id reported to clients.
    pub fn cluster_id(&self) -> &str {
        &self.state.logs.cluster_id
    }

    /// The token that stops the broker when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, lets open requests finish (up to `shutdown_timeout_ms`), flushes
    /// every partition and writes producer snapshots.
    ///
    /// # Errors
    /// A background task that panicked.
    pub async fn shutdown(self) -> Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }

    /// Waits until the shutdown token is cancelled, then completes the stop as
    /// [`Broker::shutdown`] does.
    ///
    /// # Errors
    /// A background task that panicked.
    pub async fn wait(self) -> Result<()> {
        self.shutdown.cancelled().await;
        self.tracker.close();
        let timeout = Duration::from_millis(self.state.config().shutdown_timeout_ms);
        if tokio::time::timeout(timeout, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                timeout_ms = timeout.as_millis() as u64,
                "connections still open at the shutdown deadline; closing the log anyway"
            );
        }
        // Connections that closed after the limiter's own final report may have counted more.
        self.state.log_limit.report_all();
        self.state.groups.close().await;
        let state = Arc::clone(&self.state);
        tokio::task::spawn_blocking(move || {
            state.logs.close();
            state.commit.stop();
        })
        .await
        .map_err(|e| Error::Task(e.to_string()))?;
        info!("broker stopped");
        Ok(())
    }
}

/// The host and port a listener gives clients in Metadata: its `advertised.listeners` entry
/// (port 0 standing for the bound port), else the bound address with an unspecified IP
/// (`0.0.0.0`, `::`) replaced by `localhost`.
fn advertised(configured: Option<(String, u16)>, local: SocketAddr) -> (String, i32) {
    if let Some((host, port)) = configured {
        let port = if port == 0 { local.port() } else { port };
        return (host, i32::from(port));
    }
    let host = if local.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        local.ip().to_string()
    };
    (host, i32::from(local.port()))
}

/// Opens the SCRAM credential and ACL stores, creating `scram.initial.user` when it has no
/// credentials yet.
fn open_security_stores(config: &BrokerConfig) -> Result<(Arc<CredentialStore>, Arc<Authorizer>)> {
    let credentials = CredentialStore::open(&config.data_dir)?;
    if let (Some(user), Some(password)) =
        (&config.scram_initial_user, &config.scram_initial_password)
    {
        if !credentials.has_user(user) {
            let upserts = ScramMechanism::ALL
                .into_iter()
                .map(|m| {
                    (
                        user.clone(),
                        m,
                        ScramCredential::from_password(m, password, DEFAULT_ITERATIONS),
                    )
                })
                .collect();
            credentials.apply(&[], upserts)?;
            info!(user = %user, "created SCRAM credentials for scram.initial.user");
        }
    }
    let authorizer = Authorizer::open(
        &config.data_dir,
        config.acls_enabled()?,
        config.super_user_principals()?,
        config.allow_everyone_if_no_acl_found,
    )?;
    Ok((Arc::new(credentials), Arc::new(authorizer)))
}

async fn accept_loop(
    tcp: TcpListener,
    listener: Arc<Listener>,
    state: Arc<BrokerState>,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            () = state.shutdown.cancelled() => break,
            accepted = tcp.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let span = info_span!("connection", %peer, listener = %listener.name);
                tracker.spawn(
                    open_connection(Arc::clone(&state), Arc::clone(&listener), stream, peer)
                        .instrument(span),
                );
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                if state.log_limit.admit(FAILED_ACCEPTS, "the listener") {
                    warn!(error = %e, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    debug!("accept loop stopped");
}

async fn flush_periodically(state: Arc<BrokerState>) {
    let mut ticker = tokio::time::interval(state.config().flush_interval());
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let partitions = state.logs.all_partitions();
        let _ = tokio::task::spawn_blocking(move || GroupCommit::sync_now(&partitions)).await;
    }
}

/// Finishes the TLS handshake on TLS listeners, takes the principal of a client certificate on
/// SSL listeners, and serves the connection.
async fn open_connection(
    state: Arc<BrokerState>,
    listener: Arc<Listener>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    let mut session = Session::anonymous(Arc::clone(&listener), peer);
    let transport = match (&state.tls, listener.protocol.uses_tls()) {
        (Some(tls), true) => {
            let handshake =
                tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.acceptor().accept(stream));
            let stream = tokio::select! {
                () = state.shutdown.cancelled() => return,
                done = handshake => done,
            };
            match stream {
                Ok(Ok(stream)) => {
                    if listener.protocol == SecurityProtocol::Ssl {
                        if let Some(principal) = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .and_then(certificate_principal)
                        {
                            session.principal = principal;
                        }
                    }
                    Transport::Tls(Box::new(stream))
                }
                Ok(Err(e)) => {
                    if state.log_limit.admit(FAILED_TLS_HANDSHAKES, peer.ip()) {
                        warn!(error = %e, "TLS handshake failed (a client without TLS, or with a certificate this listener does not trust?); closing connection");
                    }
                    return;
                }
                Err(_) => {
                    if state.log_limit.admit(FAILED_TLS_HANDSHAKES, peer.ip()) {
                        warn!(
                            timeout_s = TLS_HANDSHAKE_TIMEOUT.as_secs(),
                            "TLS handshake did not finish in time; closing connection"
                        );
                    }
                    return;
                }
            }
        }
        _ => Transport::Plain(stream),
    };
    if session.principal != KafkaPrincipal::anonymous() {
        debug!(principal = %session.principal, "authenticated by client certificate");
    }
    serve_connection(state, transport, session).await;
}

/// A response frame being prepared, or why it cannot be encoded.
type PendingResponse = JoinHandle<std::result::Result<BytesMut, String>>;

async fn serve_connection(state: Arc<BrokerState>, stream: Transport, session: Session) {
    debug!("connection opened");
    let peer = session.peer;
    let mut sasl = SaslAuthenticator::new(
        session.listener.protocol.uses_sasl(),
        state.sasl_mechanisms.clone(),
    );
    let mut session = Arc::new(session);
    let (mut reader, writer) = tokio::io::split(stream);
    let (queue, responses) = mpsc::channel::<PendingResponse>(MAX_IN_FLIGHT);
    let write_task = tokio::spawn(
        write_responses(writer, responses, Arc::clone(&state.log_limit), peer)
            .instrument(tracing::Span::current()),
    );
    let limit = &state.log_limit;
    let max_frame = state.config().socket_request_max_bytes;
    loop {
        let frame_limit = if sasl.blocks_requests() {
            max_frame.min(MAX_UNAUTHENTICATED_FRAME)
        } else {
            max_frame
        };
        let frame = tokio::select! {
            () = state.shutdown.cancelled() => break,
            frame = read_frame(&mut reader, frame_limit) => frame,
        };
        let frame = match frame {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(reason) => {
                if limit.admit(UNREADABLE_REQUESTS, peer.ip()) {
                    warn!(%reason, "unreadable request; closing connection");
                }
                break;
            }
        };
        if sasl.expects_raw_token() {
            let outcome = sasl.raw_token(&frame, &state.credentials);
            match finish_sasl_step(&state, &mut session, &queue, outcome).await {
                ControlFlow::Continue(()) => continue,
                ControlFlow::Break(()) => break,
            }
        }
        let (header, request) = match api::decode_frame(frame) {
            Ok(Decoded::Request(header, request)) => (header, request),
            Ok(Decoded::Unsupported(key, header)) => {
                let log = limit.admit(UNSUPPORTED_REQUESTS, peer.ip());
                if log {
                    warn!(api = ?key, version = header.request_api_version, "unsupported API or version requested");
                }
                if sasl.blocks_requests() && key != ApiKey::ApiVersions {
                    break;
                }
                let Some(response) = api::unsupported_response(&header) else {
                    if log {
                        warn!(api = ?key, "no error response exists for this API; closing connection");
                    }
                    break;
                };
                let frame = api::encode_response(&header, &response);
                if queue
                    .send(tokio::spawn(async move { frame }))
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
            Err(reason) => {
                if limit.admit(MALFORMED_REQUESTS, peer.ip()) {
                    warn!(%reason, "malformed request; closing connection");
                }
                break;
            }
        };
        debug!(
            api = header.request_api_key,
            version = header.request_api_version,
            correlation_id = header.correlation_id,
            "request"
        );
        let request = match request {
            RequestKind::SaslHandshake(request) => {
                let outcome = sasl.handshake(&header, request);
                match finish_sasl_step(&state, &mut session, &queue, outcome).await {
                    ControlFlow::Continue(()) => continue,
                    ControlFlow::Break(()) => break,
                }
            }
            RequestKind::SaslAuthenticate(request) => {
                let outcome = sasl.authenticate(&header, request, &state.credentials);
                match finish_sasl_step(&state, &mut session, &queue, outcome).await {
                    ControlFlow::Continue(()) => continue,
                    ControlFlow::Break(()) => break,
                }
            }
            RequestKind::ApiVersions(request) => RequestKind::ApiVersions(request),
            other if sasl.blocks_requests() => {
                if limit.admit(FAILED_AUTHENTICATIONS, peer.ip()) {
                    warn!(api = header.request_api_key, "request before SASL authentication on a SASL listener; closing connection (is the client configured with security.protocol and sasl.mechanism?)");
                }
                drop(other);
                break;
            }
            other => other,
        };
        let ctx = RequestContext {
            state: Arc::clone(&state),
            header: header.clone(),
            peer,
            session: Arc::clone(&session),
        };
        let pending: PendingResponse = match api::dispatch(ctx, request).await {
            Reply::Now(response) => {
                let frame = api::encode_response(&header, &response);
                tokio::spawn(async move { frame })
            }
            Reply::Later(future) => {
                tokio::spawn(async move { api::encode_response(&header, &future.await) })
            }
            Reply::Nothing => continue,
        };
        if queue.send(pending).await.is_err() {
            break;
        }
    }
    drop(queue);
    let _ = write_task.await;
    debug!("connection closed");
}

/// Queues the answer of a SASL step and applies its outcome to the session; `Break` closes
/// the connection (after the queued answer is written).
async fn finish_sasl_step(
    state: &BrokerState,
    session: &mut Arc<Session>,
    queue: &mpsc::Sender<PendingResponse>,
    outcome: Outcome,
) -> ControlFlow<()> {
    let (frame, next) = match outcome {
        Outcome::Reply(frame) => (Some(frame), ControlFlow::Continue(())),
        Outcome::Authenticated(principal, frame) => {
            debug!(%principal, "SASL authentication succeeded");
            let mut next = Session::clone(session);
            next.principal = principal;
            *session = Arc::new(next);
            (Some(frame), ControlFlow::Continue(()))
        }
        Outcome::Refuse { frame, reason } => {
            if state
                .log_limit
                .admit(FAILED_AUTHENTICATIONS, session.peer.ip())
            {
                warn!(%reason, "authentication failed; closing connection");
            }
            (frame, ControlFlow::Break(()))
        }
    };
    if let Some(frame) = frame {
        if queue
            .send(tokio::spawn(async move { frame }))
            .await
            .is_err()
        {
            return ControlFlow::Break(());
        }
    }
    next
}

/// Reads one length-prefixed frame. `Ok(None)` at a clean end of stream.
async fn read_frame(
    reader: &mut ReadHalf<Transport>,
    max_frame: i32,
) -> std::result::Result<Option<Bytes>, String> {
    let mut len = [0u8; 4];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        // A client that closes its socket with data unread (librdkafka on destroy, say) resets
        // the connection: between requests that is a disconnect, not a bad request.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ) =>
        {
            debug!(error = %e, "connection reset by the client between requests");
            return Ok(None);
        }
        Err(e) => return Err(format!("read failed: {e}")),
    }
    if len[0] == TLS_HANDSHAKE_RECORD && len[1] == TLS_MAJOR_VERSION {
        return Err(
            "a TLS handshake on a listener without TLS: the client uses security.protocol SSL or SASL_SSL where this listener is PLAINTEXT or SASL_PLAINTEXT"
                .to_owned(),
        );
    }
    let len = i32::from_be_bytes(len);
    if len < 0 || len > max_frame {
        return Err(format!(
            "request length {len} is outside 0..={max_frame} (socket_request_max_bytes)"
        ));
    }
    // Grow the buffer as bytes arrive, so a large length prefix alone reserves little.
    let len = len as usize;
    let mut frame = BytesMut::with_capacity(len.min(READ_CHUNK));
    let mut limited = (&mut *reader).take(len as u64);
    while frame.len() < len {
        if frame.capacity() == frame.len() {
            frame.reserve((len - frame.len()).min(READ_CHUNK));
        }
        let read = limited
            .read_buf(&mut frame)
            .await
            .map_err(|e| format!("read failed inside a {len}-byte request: {e}"))?;
        if read == 0 {
            return Err(format!(
                "connection ended after {} of a {len}-byte request",
                frame.len()
            ));
        }
    }
    Ok(Some(frame.freeze()))
}

async fn write_responses(
    writer: WriteHalf<Transport>,
    mut responses: mpsc::Receiver<PendingResponse>,
    limit: Arc<LogLimiter>,
    peer: SocketAddr,
) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(pending) = responses.recv().await {
        let frame = match pending.await {
            Ok(Ok(frame)) => frame,
            Ok(Err(reason)) => {
                if limit.admit(UNANSWERABLE_REQUESTS, peer.ip()) {
                    warn!(%reason, "response could not be encoded; closing connection");
                }
                break;
            }
            Err(e) => {
                if limit.admit(UNANSWERABLE_REQUESTS, peer.ip()) {
                    warn!(error = %e, "request handler failed; closing connection");
                }
                break;
            }
        };
        if writer.write_all(&frame).await.is_err() {
            break;
        }
        // Flush when nothing else is ready, so pipelined responses share a write.
        if responses.is_empty() && writer.flush().await.is_err() {
            break;
        }
    }
    let _ = writer.flush().await;
    let _ = writer.shutdown().await;
}
