//! CreateAcls (key 30), DescribeAcls (key 29) and DeleteAcls (key 31): the ACLs of
//! [`crate::security::acl::Authorizer`]. Creating and deleting need `Alter` on the cluster,
//! describing needs `Describe`; without an authorizer (`authorizer.class.name` unset) every
//! answer is SECURITY_DISABLED, as in Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tracing::info;

use super::{blocking, RequestContext};
use crate::security::acl::{
    AclBinding, AclFilter, AclOperation, AclPermissionType, PatternType, ResourceType,
};

const DISABLED: &str = "ACLs are off on this broker: set authorizer.class.name to enable them";

fn text(s: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(s))
}

/// Builds a filter from the wire fields, or says which one is invalid.
#[allow(clippy::too_many_arguments)]
fn filter(
    resource_type: i8,
    resource_name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission_type: i8,
) -> Result<AclFilter, String> {
    Ok(AclFilter {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or_else(|| format!("unknown resource type {resource_type}"))?,
        resource_name: resource_name.map(|s| s.to_string()),
        pattern_type: PatternType::from_code(pattern_type)
            .ok_or_else(|| format!("unknown pattern type {pattern_type}"))?,
        principal: principal.map(|s| s.to_string()),
        host: host.map(|s| s.to_string()),
        operation: AclOperation::from_code(operation)
            .ok_or_else(|| format!("unknown operation {operation}"))?,
        permission_type: AclPermissionType::from_code(permission_type)
            .ok_or_else(|| format!("unknown permission type {permission_type}"))?,
    })
}

pub(crate) async fn create(ctx: &RequestContext, request: CreateAclsRequest) -> CreateAclsResponse {
    let authorizer = Arc::clone(&ctx.state.authorizer);
    let refuse = |code: ResponseError, message: &str| {
        CreateAclsResponse::default().with_results(
            request
                .creations
                .iter()
                .map(|_| {
                    AclCreationResult::default()
                        .with_error_code(code.code())
                        .with_error_message(text(message.to_owned()))
                })
                .collect(),
        )
    };
    if !authorizer.enabled() {
        return refuse(ResponseError::SecurityDisabled, DISABLED);
    }
    if !ctx.cluster_authorized(AclOperation::Alter) {
        return refuse(
            ResponseError::ClusterAuthorizationFailed,
            "creating ACLs needs Alter on the cluster",
        );
    }
    let mut results = Vec::new();
    let mut valid = Vec::new();
    for creation in &request.creations {
        let binding = (|| -> Result<AclBinding, String> {
            Ok(AclBinding {
                resource_type: ResourceType::from_code(creation.resource_type)
                    .ok_or_else(|| format!("unknown resource type {}", creation.resource_type))?,
                resource_name: creation.resource_name.to_string(),
                pattern_type: PatternType::from_code(creation.resource_pattern_type).ok_or_else(
                    || format!("unknown pattern type {}", creation.resource_pattern_type),
                )?,
                principal: creation.principal.to_string(),
                host: creation.host.to_string(),
                operation: AclOperation::from_code(creation.operation)
                    .ok_or_else(|| format!("unknown operation {}", creation.operation))?,
                permission_type: AclPermissionType::from_code(creation.permission_type)
                    .ok_or_else(|| {
                        format!("unknown permission type {}", creation.permission_type)
                    })?,
            })
        })()
        .and_then(|b| match b.invalid_reason() {
            Some(why) => Err(why),
            None => Ok(b),
        });
        match binding {
            Ok(binding) => {
                valid.push(binding);
                results.push(AclCreationResult::default());
            }
            Err(why) => results.push(
                AclCreationResult::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(text(why)),
            ),
        }
    }
    if !valid.is_empty() {
        let principal = ctx.session.principal.clone();
        let count = valid.len();
        let stored = blocking(move || authorizer.create(&valid)).await;
        match stored {
            Ok(Ok(())) => info!(%principal, count, "ACLs created"),
            Ok(Err(e)) => {
                return refuse(ResponseError::UnknownServerError, &e.to_string());
            }
            Err(e) => return refuse(e.code, &e.message),
        }
    }
    CreateAclsResponse::default().with_results(results)
}

fn description(acl: &AclBinding) -> AclDescription {
    AclDescription::default()
        .with_principal(StrBytes::from_string(acl.principal.clone()))
        .with_host(StrBytes::from_string(acl.host.clone()))
        .with_operation(acl.operation.code())
        .with_permission_type(acl.permission_type.code())
}

pub(crate) fn describe(ctx: &RequestContext, request: DescribeAclsRequest) -> DescribeAclsResponse {
    let refuse = |code: ResponseError, message: String| {
        DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(text(message))
    };
    if !ctx.state.authorizer.enabled() {
        return refuse(ResponseError::SecurityDisabled, DISABLED.to_owned());
    }
    if !ctx.cluster_authorized(AclOperation::Describe) {
        return refuse(
            ResponseError::ClusterAuthorizationFailed,
            "describing ACLs needs Describe on the cluster".to_owned(),
        );
    }
    let filter = match filter(
        request.resource_type_filter,
        request.resource_name_filter.as_ref(),
        request.pattern_type_filter,
        request.principal_filter.as_ref(),
        request.host_filter.as_ref(),
        request.operation,
        request.permission_type,
    ) {
        Ok(f) => f,
        Err(why) => return refuse(ResponseError::InvalidRequest, why),
    };
    let mut grouped: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for acl in ctx.state.authorizer.describe(&filter) {
        grouped
            .entry((
                acl.resource_type.code(),
                acl.resource_name.clone(),
                acl.pattern_type.code(),
            ))
            .or_default()
            .push(description(&acl));
    }
    DescribeAclsResponse::default().with_resources(
        grouped
            .into_iter()
            .map(|((resource_type, name, pattern_type), acls)| {
                DescribeAclsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(StrBytes::from_string(name))
                    .with_pattern_type(pattern_type)
                    .with_acls(acls)
            })
            .collect(),
    )
}

pub(crate) async fn delete(ctx: &RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse {
    let authorizer = Arc::clone(&ctx.state.authorizer);
    let refuse_all = |code: ResponseError, message: &str| {
        DeleteAclsResponse::default().with_filter_results(
            request
                .filters
                .iter()
                .map(|_| {
                    DeleteAclsFilterResult::default()
                        .with_error_code(code.code())
                        .with_error_message(text(message.to_owned()))
                })
                .collect(),
        )
    };
    if !authorizer.enabled() {
        return refuse_all(ResponseError::SecurityDisabled, DISABLED);
    }
    if !ctx.cluster_authorized(AclOperation::Alter) {
        return refuse_all(
            ResponseError::ClusterAuthorizationFailed,
            "deleting ACLs needs Alter on the cluster",
        );
    }
    let parsed: Vec<Result<AclFilter, String>> = request
        .filters
        .iter()
        .map(|f| {
            filter(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|f| f.clone().ok()).collect();
    let principal = ctx.session.principal.clone();
    let removed = match blocking(move || authorizer.delete(&valid)).await {
        Ok(Ok(removed)) => removed,
        Ok(Err(e)) => return refuse_all(ResponseError::UnknownServerError, &e.to_string()),
        Err(e) => return refuse_all(e.code, &e.message),
    };
    let mut removed = removed.into_iter();
    let mut results = Vec::new();
    for f in parsed {
        match f {
            Ok(_) => {
                let acls = removed.next().unwrap_or_default();
                if !acls.is_empty() {
                    info!(%principal, count = acls.len(), "ACLs deleted");
                }
                results.push(
                    DeleteAclsFilterResult::default().with_matching_acls(
                        acls.iter()
                            .map(|acl| {
                                DeleteAclsMatchingAcl::default()
                                    .with_resource_type(acl.resource_type.code())
                                    .with_resource_name(StrBytes::from_string(
                                        acl.resource_name.clone(),
                                    ))
                                    .with_pattern_type(acl.pattern_type.code())
                                    .with_principal(StrBytes::from_string(acl.principal.clone()))
                                    .with_host(StrBytes::from_string(acl.host.clone()))
                                    .with_operation(acl.operation.code())
                                    .with_permission_type(acl.permission_type.code())
                            })
                            .collect(),
                    ),
                );
            }
            Err(why) => results.push(
                DeleteAclsFilterResult::default()
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(text(why)),
            ),
        }
    }
    DeleteAclsResponse::default().with_filter_results(results)
}
