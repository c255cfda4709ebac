//! ApiVersions (key 18): the APIs and versions this broker serves.

use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use tracing::debug;

use super::{api_versions_table, RequestContext};

/// A response listing [`super::SUPPORTED`] with the given error code.
pub(crate) fn response(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_versions_table())
}

pub(crate) fn handle(ctx: &RequestContext, request: ApiVersionsRequest) -> ApiVersionsResponse {
    debug!(
        peer = %ctx.peer,
        client = request.client_software_name.as_str(),
        client_version = request.client_software_version.as_str(),
        "api versions"
    );
    response(0)
}
