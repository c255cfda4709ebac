//! Kafka APIs: one module per API, the table of advertised versions, frame decoding and the
//! dispatch `match` on the API key.
//!
//! Adding an API takes three steps: a module here with `pub(crate) async fn handle`, a row in
//! [`SUPPORTED`], and an arm in [`dispatch`].

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::ResponseError;
use tracing::{debug, warn};

use crate::security::acl::{AclOperation, ResourceType, CLUSTER_NAME};
use crate::server::{BrokerState, UNSUPPORTED_REQUESTS};
use crate::storage::ApiError;
use crate::transport::Session;

pub(crate) mod acls;
pub(crate) mod alter_configs;
pub(crate) mod api_versions;
pub(crate) mod create_partitions;
pub(crate) mod create_topics;
pub(crate) mod delete_records;
pub(crate) mod delete_topics;
pub(crate) mod describe_cluster;
pub(crate) mod describe_configs;
pub(crate) mod fetch;
pub(crate) mod group;
pub(crate) mod incremental_alter_configs;
pub(crate) mod init_producer_id;
pub(crate) mod list_offsets;
pub(crate) mod metadata;
pub(crate) mod produce;
pub(crate) mod scram_credentials;

/// Every API the broker answers, with the versions it advertises in ApiVersions. Each
/// version listed here is answered (the protocol tests go through all of them).
pub(crate) const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 12),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 1),
    // Security: SASL (handled by the connection, see crate::security::sasl), ACLs, SCRAM.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // The group coordinator's APIs: crate::group::GROUP_API_VERSIONS.
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

/// The advertised version range of an API, if it is supported.
pub(crate) fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| (min, max))
}

/// What a handler gives back.
// One short-lived value per request: boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Reply {
    /// The response is ready.
    Now(ResponseKind),
    /// The response needs more waiting (fsync, long poll); the connection keeps reading
    /// further requests meanwhile and sends responses in request order.
    Later(Pin<Box<dyn Future<Output = ResponseKind> + Send + 'static>>),
    /// No response at all (produce with acks=0).
    Nothing,
}

/// Everything a handler knows about the request besides its body.
#[derive(Debug)]
pub(crate) struct RequestContext {
    pub(crate) state: Arc<BrokerState>,
    pub(crate) header: RequestHeader,
    pub(crate) peer: SocketAddr,
    /// The connection's listener and principal.
    pub(crate) session: Arc<Session>,
}

impl RequestContext {
    pub(crate) fn version(&self) -> i16 {
        self.header.request_api_version
    }

    /// Whether the connection's principal may perform `operation` on the resource.
    pub(crate) fn authorized(
        &self,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let allowed = self.state.authorizer.authorize(
            &self.session.principal,
            self.peer.ip(),
            operation,
            resource_type,
            name,
        );
        if !allowed {
            debug!(principal = %self.session.principal, %operation, %resource_type, resource = name, "denied by ACLs");
        }
        allowed
    }

    /// The principal's authorization, to take into blocking work.
    pub(crate) fn authz(&self) -> Authz {
        Authz {
            authorizer: Arc::clone(&self.state.authorizer),
            principal: self.session.principal.clone(),
            host: self.peer.ip(),
        }
    }

    /// Whether the principal may perform `operation` on the cluster.
    pub(crate) fn cluster_authorized(&self, operation: AclOperation) -> bool {
        self.authorized(operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// Whether the principal may perform `operation` on `topic`.
    pub(crate) fn topic_authorized(&self, operation: AclOperation, topic: &str) -> bool {
        self.authorized(operation, ResourceType::Topic, topic)
    }
}

/// A connection's principal and host with the authorizer, for checks inside blocking work.
#[derive(Debug, Clone)]
pub(crate) struct Authz {
    authorizer: Arc<crate::security::acl::Authorizer>,
    principal: crate::security::KafkaPrincipal,
    host: std::net::IpAddr,
}

impl Authz {
    /// Whether `operation` on the topic is allowed.
    pub(crate) fn topic(&self, operation: AclOperation, topic: &str) -> bool {
        self.authorizer.authorize(
            &self.principal,
            self.host,
            operation,
            ResourceType::Topic,
            topic,
        )
    }

    /// Whether `operation` on the group is allowed.
    pub(crate) fn group(&self, operation: AclOperation, group: &str) -> bool {
        self.authorizer.authorize(
            &self.principal,
            self.host,
            operation,
            ResourceType::Group,
            group,
        )
    }
}

/// A decoded request, or the reason it cannot be served.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decoded {
    Request(RequestHeader, RequestKind),
    /// Known API at a version or of a kind this broker does not serve: answer with an error.
    Unsupported(ApiKey, RequestHeader),
}

/// Decodes a frame body. `Err` means the frame cannot be answered (close the connection).
pub(crate) fn decode_frame(mut frame: Bytes) -> Result<Decoded, String> {
    if frame.len() < 8 {
        return Err(format!(
            "frame of {} bytes is shorter than a request header",
            frame.len()
        ));
    }
    let raw_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api_key = ApiKey::try_from(raw_key).map_err(|_| format!("unknown API key {raw_key}"))?;
    let header_version =
        if api_key.valid_versions().min <= version && version <= api_key.valid_versions().max {
            api_key.request_header_version(version)
        } else {
            // Versions beyond what the protocol crate knows: read the fixed part only (v1 header);
            // ApiVersions requests must be answerable whatever version they carry.
            1
        };
    let header = RequestHeader::decode(&mut frame, header_version)
        .map_err(|e| format!("bad {api_key:?} v{version} request header: {e}"))?;
    match supported_versions(api_key) {
        Some((min, max)) if (min..=max).contains(&version) => {
            let request = RequestKind::decode(api_key, &mut frame, version)
                .map_err(|e| format!("bad {api_key:?} v{version} request body: {e}"))?;
            if frame.has_remaining() {
                debug!(api = ?api_key, version, trailing = frame.remaining(), "ignoring trailing bytes");
            }
            Ok(Decoded::Request(header, request))
        }
        _ => Ok(Decoded::Unsupported(api_key, header)),
    }
}

/// Runs one decoded request.
pub(crate) async fn dispatch(ctx: RequestContext, request: RequestKind) -> Reply {
    match request {
        RequestKind::ApiVersions(req) => Reply::Now(api_versions::handle(&ctx, req).into()),
        RequestKind::Metadata(req) => Reply::Now(metadata::handle(&ctx, req).await.into()),
        RequestKind::Produce(req) => produce::handle(ctx, req).await,
        RequestKind::Fetch(req) => fetch::handle(ctx, req),
        RequestKind::ListOffsets(req) => Reply::Now(list_offsets::handle(&ctx, req).await.into()),
        RequestKind::CreateTopics(req) => Reply::Now(create_topics::handle(&ctx, req).await.into()),
        RequestKind::DeleteTopics(req) => Reply::Now(delete_topics::handle(&ctx, req).await.into()),
        RequestKind::CreatePartitions(req) => {
            Reply::Now(create_partitions::handle(&ctx, req).await.into())
        }
        RequestKind::DescribeConfigs(req) => Reply::Now(describe_configs::handle(&ctx, req).into()),
        RequestKind::AlterConfigs(req) => Reply::Now(alter_configs::handle(&ctx, req).await.into()),
        RequestKind::IncrementalAlterConfigs(req) => {
            Reply::Now(incremental_alter_configs::handle(&ctx, req).await.into())
        }
        RequestKind::DescribeCluster(req) => Reply::Now(describe_cluster::handle(&ctx, req).into()),
        RequestKind::InitProducerId(req) => {
            Reply::Now(init_producer_id::handle(&ctx, req).await.into())
        }
        RequestKind::DeleteRecords(req) => {
            Reply::Now(delete_records::handle(&ctx, req).await.into())
        }
        RequestKind::CreateAcls(req) => Reply::Now(acls::create(&ctx, req).await.into()),
        RequestKind::DescribeAcls(req) => Reply::Now(acls::describe(&ctx, req).into()),
        RequestKind::DeleteAcls(req) => Reply::Now(acls::delete(&ctx, req).await.into()),
        RequestKind::DescribeUserScramCredentials(req) => {
            Reply::Now(scram_credentials::describe(&ctx, req).into())
        }
        RequestKind::AlterUserScramCredentials(req) => {
            Reply::Now(scram_credentials::alter(&ctx, req).await.into())
        }
        request @ (RequestKind::FindCoordinator(_)
        | RequestKind::JoinGroup(_)
        | RequestKind::SyncGroup(_)
        | RequestKind::Heartbeat(_)
        | RequestKind::LeaveGroup(_)
        | RequestKind::OffsetCommit(_)
        | RequestKind::OffsetFetch(_)
        | RequestKind::ListGroups(_)
        | RequestKind::DescribeGroups(_)
        | RequestKind::DeleteGroups(_)
        | RequestKind::OffsetDelete(_)) => group::handle(&ctx, request),
        other => {
            // Unreachable while SUPPORTED and this match agree; answer rather than panic.
            if ctx
                .state
                .log_limit
                .admit(UNSUPPORTED_REQUESTS, ctx.peer.ip())
            {
                warn!(peer = %ctx.peer, request = ?std::mem::discriminant(&other), "request decoded but not dispatched");
            }
            match unsupported_response(&ctx.header) {
                Some(response) => Reply::Now(response),
                None => Reply::Nothing,
            }
        }
    }
}

/// The answer to a request this broker does not serve at that version.
///
/// ApiVersions gets the protocol's defined answer: a v0 response with UNSUPPORTED_VERSION
/// and the supported ranges. Other APIs get their default response with the top-level
/// error code set to UNSUPPORTED_VERSION when the response has one.
/// `None` when the response has no top-level error code: then the connection is closed,
/// as Kafka itself does for requests it cannot parse.
pub(crate) fn unsupported_response(header: &RequestHeader) -> Option<ResponseKind> {
    use kafka_protocol::messages::*;
    let code = ResponseError::UnsupportedVersion.code();
    let key = ApiKey::try_from(header.request_api_key).ok()?;
    macro_rules! with_error {
        ($($variant:ident => $ty:ty),* $(,)?) => {
            match key {
                ApiKey::ApiVersions => Some(ResponseKind::ApiVersions(api_versions::response(code))),
                $(ApiKey::$variant => Some(ResponseKind::$variant(<$ty>::default().with_error_code(code))),)*
                _ => None,
            }
        };
    }
    with_error!(
        JoinGroup => JoinGroupResponse,
        SyncGroup => SyncGroupResponse,
        Heartbeat => HeartbeatResponse,
        LeaveGroup => LeaveGroupResponse,
        ListGroups => ListGroupsResponse,
        FindCoordinator => FindCoordinatorResponse,
        InitProducerId => InitProducerIdResponse,
        DescribeCluster => DescribeClusterResponse,
        SaslHandshake => SaslHandshakeResponse,
        SaslAuthenticate => SaslAuthenticateResponse,
        EndTxn => EndTxnResponse,
        AddOffsetsToTxn => AddOffsetsToTxnResponse,
        DescribeAcls => DescribeAclsResponse,
    )
}

/// Encodes a response frame (length prefix, header, body) for the request `header`.
/// `Err` says why the response cannot be encoded at the requested version; the connection
/// logs it (through its log limiter: a peer can cause it at will) and closes.
pub(crate) fn encode_response(
    header: &RequestHeader,
    response: &ResponseKind,
) -> Result<BytesMut, String> {
    let key = ApiKey::try_from(header.request_api_key)
        .map_err(|_| format!("unknown API key {}", header.request_api_key))?;
    let mut version = header.request_api_version;
    let supported = supported_versions(key);
    let is_unsupported = !supported.is_some_and(|(min, max)| (min..=max).contains(&version));
    if key == ApiKey::ApiVersions && is_unsupported {
        // KIP-511: an unsupported ApiVersions version is answered with v0.
        version = 0;
    }
    if is_unsupported && !(key.valid_versions().min..=key.valid_versions().max).contains(&version) {
        return Err(format!(
            "cannot encode a {key:?} response at v{version}, a version the protocol crate does not know"
        ));
    }
    let header_version = key.response_header_version(version);
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    let response_header = ResponseHeader::default().with_correlation_id(header.correlation_id);
    response_header
        .encode(&mut buf, header_version)
        .map_err(|e| format!("cannot encode a {key:?} v{version} response header: {e}"))?;
    response
        .encode(&mut buf, version)
        .map_err(|e| format!("cannot encode a {key:?} v{version} response: {e}"))?;
    let len = (buf.len() - 4) as i32;
    buf[0..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf)
}

/// `Some(message)` as the protocol's nullable string.
pub(crate) fn message(error: &ApiError) -> Option<StrBytes> {
    Some(StrBytes::from_string(error.message.clone()))
}

/// Runs blocking storage work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        ApiError::new(
            ResponseError::UnknownServerError,
            format!("storage task failed: {e}"),
        )
    })
}

/// `ApiVersionsResponse` default built with our table; shared with `api_versions`.
pub(crate) fn api_versions_table(
) -> Vec<kafka_protocol::messages::api_versions_response::ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            kafka_protocol::messages::api_versions_response::ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}
