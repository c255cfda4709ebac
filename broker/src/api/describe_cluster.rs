//! DescribeCluster (key 60): the one-node cluster.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::security::acl::AclOperation;
use crate::server::NODE_ID;

/// `endpoint_type` 1 is the broker listener; 2 (controllers) does not exist here.
const BROKER_ENDPOINTS: i8 = 1;

pub(crate) fn handle(
    ctx: &RequestContext,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let state = &ctx.state;
    if !ctx.cluster_authorized(AclOperation::Describe) {
        return DescribeClusterResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "describing the cluster needs Describe on the cluster",
            )));
    }
    let mut response = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(state.logs.cluster_id.clone()))
        .with_controller_id(BrokerId(NODE_ID));
    if ctx.version() >= 1 {
        response.endpoint_type = request.endpoint_type;
        if request.endpoint_type != BROKER_ENDPOINTS {
            return response
                .with_error_code(ResponseError::UnsupportedEndpointType.code())
                .with_error_message(Some(StrBytes::from_static_str(
                    "this single-node broker has only broker endpoints (endpoint_type 1)",
                )));
        }
    }
    response.brokers = vec![DescribeClusterBroker::default()
        .with_broker_id(BrokerId(NODE_ID))
        .with_host(StrBytes::from_string(
            ctx.session.listener.advertised_host.clone(),
        ))
        .with_port(ctx.session.listener.advertised_port)];
    response
}
