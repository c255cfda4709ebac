//! `sluice acls`: add, list and remove ACLs with the flags of Kafka's `kafka-acls` tool
//! (`--add --allow-principal User:alice --operation Read --topic orders`), over CreateAcls,
//! DescribeAcls and DeleteAcls (librdkafka's Rust binding has no ACL calls, so this speaks
//! the protocol itself, with the same TLS and SASL settings: `--command-config`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_broker::security::acl::{
    AclOperation, AclPermissionType, PatternType, ResourceType, CLUSTER_NAME, WILDCARD,
};

use super::{BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP};

/// The ACL APIs, with the versions this tool speaks.
const ACL_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// Flags of `sluice acls` (named as in `kafka-acls`).
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["add", "remove", "list"])))]
pub struct AclsArgs {
    /// Broker to connect to (host:port[,host:port...]).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_BOOTSTRAP, env = BOOTSTRAP_ENV)]
    pub bootstrap_server: String,
    /// Kafka client properties file (security.protocol, sasl.*, ssl.*), as for Kafka's tools.
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// Add ACLs.
    #[arg(long)]
    pub add: bool,
    /// Remove ACLs.
    #[arg(long)]
    pub remove: bool,
    /// List ACLs (of the named resources, or all).
    #[arg(long)]
    pub list: bool,
    /// Principal to allow, e.g. User:alice or User:* (repeatable).
    #[arg(long, value_name = "PRINCIPAL")]
    pub allow_principal: Vec<String>,
    /// Principal to deny (repeatable).
    #[arg(long, value_name = "PRINCIPAL")]
    pub deny_principal: Vec<String>,
    /// Host the allow ACLs apply to (default: every host, *).
    #[arg(long, value_name = "HOST")]
    pub allow_host: Vec<String>,
    /// Host the deny ACLs apply to (default: every host, *).
    #[arg(long, value_name = "HOST")]
    pub deny_host: Vec<String>,
    /// Operation: Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite, All (repeatable; default All).
    #[arg(long, value_name = "OPERATION")]
    pub operation: Vec<String>,
    /// Topic (repeatable; * for every topic).
    #[arg(long, value_name = "TOPIC")]
    pub topic: Vec<String>,
    /// Consumer group (repeatable).
    #[arg(long, value_name = "GROUP")]
    pub group: Vec<String>,
    /// The cluster resource.
    #[arg(long)]
    pub cluster: bool,
    /// Transactional id (repeatable).
    #[arg(long, value_name = "ID")]
    pub transactional_id: Vec<String>,
    /// literal or prefixed for --add and --remove; also any or match for --list and
    /// --remove (default literal, any for --list).
    #[arg(long, value_name = "TYPE")]
    pub resource_pattern_type: Option<String>,
    /// With --list: only ACLs of this principal.
    #[arg(long, value_name = "PRINCIPAL")]
    pub principal: Option<String>,
    /// Convenience for producers: Write, Describe and Create on the topics.
    #[arg(long)]
    pub producer: bool,
    /// Convenience for consumers: Read and Describe on the topics, Read on the group.
    #[arg(long)]
    pub consumer: bool,
    /// Accepted for kafka-acls compatibility: this tool never asks for confirmation.
    #[arg(long)]
    pub force: bool,
}

/// A resource pattern named by the flags.
type Pattern = (ResourceType, String, PatternType);

fn parse_enum<T>(
    what: &str,
    value: &str,
    parse: impl Fn(&str) -> Option<T>,
    known: &str,
) -> Result<T> {
    parse(value).ok_or_else(|| anyhow::anyhow!("{what} '{value}' is not one of {known}"))
}

fn patterns(args: &AclsArgs, pattern_type: PatternType) -> Vec<Pattern> {
    let mut out = Vec::new();
    for t in &args.topic {
        out.push((ResourceType::Topic, t.clone(), pattern_type));
    }
    for g in &args.group {
        out.push((ResourceType::Group, g.clone(), pattern_type));
    }
    if args.cluster {
        out.push((
            ResourceType::Cluster,
            CLUSTER_NAME.to_owned(),
            PatternType::Literal,
        ));
    }
    for id in &args.transactional_id {
        out.push((ResourceType::TransactionalId, id.clone(), pattern_type));
    }
    out
}

/// Operations asked for, per resource type (the --producer / --consumer conveniences differ
/// by type).
fn operations(args: &AclsArgs, resource_type: ResourceType) -> Result<Vec<AclOperation>> {
    let mut ops = Vec::new();
    for op in &args.operation {
        ops.push(parse_enum(
            "--operation",
            op,
            AclOperation::from_name,
            "Read, Write, Create, Delete, Alter, Describe, ClusterAction, DescribeConfigs, AlterConfigs, IdempotentWrite, All",
        )?);
    }
    if args.producer && resource_type == ResourceType::Topic {
        ops.extend([
            AclOperation::Write,
            AclOperation::Describe,
            AclOperation::Create,
        ]);
    }
    if args.consumer {
        match resource_type {
            ResourceType::Topic => ops.extend([AclOperation::Read, AclOperation::Describe]),
            ResourceType::Group => ops.push(AclOperation::Read),
            _ => {}
        }
    }
    if ops.is_empty() && !args.producer && !args.consumer {
        ops.push(AclOperation::All);
    }
    ops.dedup();
    Ok(ops)
}

fn check_principal(p: &str) -> Result<()> {
    sluice_broker::KafkaPrincipal::parse(p).map_err(|why| anyhow::anyhow!("{why}"))?;
    Ok(())
}

/// Runs `sluice acls`, printing to stdout.
///
/// # Errors
/// Bad flags, an unreachable broker, failed authentication, or the broker's refusal.
pub fn run(args: AclsArgs) -> Result<()> {
    let extra = super::command_config(args.command_config.as_deref(), &[])?;
    super::check_reachable(&args.bootstrap_server)?;
    let out = super::block_on(async { execute(&args, &extra).await })??;
    print!("{out}");
    Ok(())
}

async fn execute(args: &AclsArgs, extra: &BTreeMap<String, String>) -> Result<String> {
    let default_type = if args.list { "any" } else { "literal" };
    let pattern_type = parse_enum(
        "--resource-pattern-type",
        args.resource_pattern_type
            .as_deref()
            .unwrap_or(default_type),
        PatternType::from_name,
        "literal, prefixed, any, match",
    )?;
    if args.add && !matches!(pattern_type, PatternType::Literal | PatternType::Prefixed) {
        bail!("--add needs --resource-pattern-type literal or prefixed");
    }
    if args.consumer && args.group.is_empty() && (args.add || args.remove) {
        bail!("--consumer needs --group (the consumer group to allow)");
    }
    for p in args
        .allow_principal
        .iter()
        .chain(&args.deny_principal)
        .chain(&args.principal)
    {
        check_principal(p)?;
    }
    let patterns = patterns(args, pattern_type);
    let mut conn = super::admin_connection(&args.bootstrap_server, extra, ACL_VERSIONS).await?;
    let mut out = String::new();
    if args.add {
        if patterns.is_empty() {
            bail!("--add needs a resource: --topic, --group, --cluster or --transactional-id");
        }
        if args.allow_principal.is_empty() && args.deny_principal.is_empty() {
            bail!("--add needs --allow-principal or --deny-principal");
        }
        for (resource_type, name, pattern_type) in &patterns {
            let mut creations = Vec::new();
            for op in operations(args, *resource_type)? {
                for (principals, hosts, permission) in [
                    (
                        &args.allow_principal,
                        &args.allow_host,
                        AclPermissionType::Allow,
                    ),
                    (
                        &args.deny_principal,
                        &args.deny_host,
                        AclPermissionType::Deny,
                    ),
                ] {
                    let any = vec![WILDCARD.to_owned()];
                    let hosts = if hosts.is_empty() { &any } else { hosts };
                    for principal in principals {
                        for host in hosts {
                            creations.push(
                                AclCreation::default()
                                    .with_resource_type(resource_type.code())
                                    .with_resource_name(StrBytes::from_string(name.clone()))
                                    .with_resource_pattern_type(pattern_type.code())
                                    .with_principal(StrBytes::from_string(principal.clone()))
                                    .with_host(StrBytes::from_string(host.clone()))
                                    .with_operation(op.code())
                                    .with_permission_type(permission.code()),
                            );
                        }
                    }
                }
            }
            let _ = writeln!(
                out,
                "Adding ACLs for resource `{}`: ",
                pattern_text(*resource_type, name, *pattern_type)
            );
            for c in &creations {
                let _ = writeln!(
                    out,
                    " \t{}",
                    acl_text(&c.principal, &c.host, c.operation, c.permission_type)
                );
            }
            out.push('\n');
            let version = conn.version(ApiKey::CreateAcls);
            let response = conn
                .send(
                    ApiKey::CreateAcls,
                    version,
                    &CreateAclsRequest::default().with_creations(creations),
                    super::ADMIN_TIMEOUT,
                )
                .await?;
            for result in response.results {
                if let Some(error) = ResponseError::try_from_code(result.error_code) {
                    bail!(
                        "Error while executing ACL command: {}",
                        refusal(error, result.error_message.as_ref())
                    );
                }
            }
        }
        list(&mut conn, &patterns, None, &mut out).await?;
    } else if args.remove {
        if patterns.is_empty() {
            bail!("--remove needs a resource: --topic, --group, --cluster or --transactional-id");
        }
        let mut filters = Vec::new();
        for (resource_type, name, pattern_type) in &patterns {
            let principals: Vec<(Option<String>, Option<String>, AclPermissionType)> =
                if args.allow_principal.is_empty() && args.deny_principal.is_empty() {
                    vec![(None, None, AclPermissionType::Any)]
                } else {
                    let host =
                        |hosts: &Vec<String>| hosts.first().cloned().or(Some(WILDCARD.to_owned()));
                    args.allow_principal
                        .iter()
                        .map(|p| {
                            (
                                Some(p.clone()),
                                host(&args.allow_host),
                                AclPermissionType::Allow,
                            )
                        })
                        .chain(args.deny_principal.iter().map(|p| {
                            (
                                Some(p.clone()),
                                host(&args.deny_host),
                                AclPermissionType::Deny,
                            )
                        }))
                        .collect()
                };
            let ops = if args.operation.is_empty() && !args.producer && !args.consumer {
                vec![AclOperation::Any]
            } else {
                operations(args, *resource_type)?
            };
            for (principal, host, permission) in &principals {
                for op in &ops {
                    filters.push(
                        DeleteAclsFilter::default()
                            .with_resource_type_filter(resource_type.code())
                            .with_resource_name_filter(Some(StrBytes::from_string(name.clone())))
                            .with_pattern_type_filter(pattern_type.code())
                            .with_principal_filter(principal.clone().map(StrBytes::from_string))
                            .with_host_filter(host.clone().map(StrBytes::from_string))
                            .with_operation(op.code())
                            .with_permission_type(permission.code()),
                    );
                }
            }
        }
        let version = conn.version(ApiKey::DeleteAcls);
        let response = conn
            .send(
                ApiKey::DeleteAcls,
                version,
                &DeleteAclsRequest::default().with_filters(filters),
                super::ADMIN_TIMEOUT,
            )
            .await?;
        for result in response.filter_results {
            if let Some(error) = ResponseError::try_from_code(result.error_code) {
                bail!(
                    "Error while executing ACL command: {}",
                    refusal(error, result.error_message.as_ref())
                );
            }
            for acl in result.matching_acls {
                let _ = writeln!(
                    out,
                    "Removed ACL {} from resource `{}`",
                    acl_text(
                        &acl.principal,
                        &acl.host,
                        acl.operation,
                        acl.permission_type
                    ),
                    pattern_text(
                        ResourceType::from_code(acl.resource_type).unwrap_or(ResourceType::Any),
                        &acl.resource_name,
                        PatternType::from_code(acl.pattern_type).unwrap_or(PatternType::Any)
                    )
                );
            }
        }
    } else {
        list(&mut conn, &patterns, args.principal.as_deref(), &mut out).await?;
    }
    Ok(out)
}

async fn list(
    conn: &mut crate::cluster::membership::Connection,
    patterns: &[Pattern],
    principal: Option<&str>,
    out: &mut String,
) -> Result<()> {
    let queries: Vec<(ResourceType, Option<String>, PatternType)> = if patterns.is_empty() {
        vec![(ResourceType::Any, None, PatternType::Any)]
    } else {
        patterns
            .iter()
            .map(|(t, n, p)| (*t, Some(n.clone()), *p))
            .collect()
    };
    let version = conn.version(ApiKey::DescribeAcls);
    for (resource_type, name, pattern_type) in queries {
        let request = DescribeAclsRequest::default()
            .with_resource_type_filter(resource_type.code())
            .with_resource_name_filter(name.map(StrBytes::from_string))
            .with_pattern_type_filter(pattern_type.code())
            .with_principal_filter(principal.map(|p| StrBytes::from_string(p.to_owned())))
            .with_host_filter(None)
            .with_operation(AclOperation::Any.code())
            .with_permission_type(AclPermissionType::Any.code());
        let response = conn
            .send(
                ApiKey::DescribeAcls,
                version,
                &request,
                super::ADMIN_TIMEOUT,
            )
            .await
            .context("DescribeAcls failed")?;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            bail!(
                "Error while executing ACL command: {}",
                refusal(error, response.error_message.as_ref())
            );
        }
        for resource in response.resources {
            let _ = writeln!(
                out,
                "Current ACLs for resource `{}`: ",
                pattern_text(
                    ResourceType::from_code(resource.resource_type).unwrap_or(ResourceType::Any),
                    &resource.resource_name,
                    PatternType::from_code(resource.pattern_type).unwrap_or(PatternType::Any)
                )
            );
            for acl in resource.acls {
                let _ = writeln!(
                    out,
                    " \t{}",
                    acl_text(
                        &acl.principal,
                        &acl.host,
                        acl.operation,
                        acl.permission_type
                    )
                );
            }
            out.push('\n');
        }
    }
    Ok(())
}

fn refusal(error: ResponseError, message: Option<&StrBytes>) -> String {
    match message {
        Some(m) if !m.is_empty() => format!("{error}: {m}"),
        _ => error.to_string(),
    }
}

/// Kafka's `ResourcePattern(resourceType=TOPIC, name=orders, patternType=LITERAL)`.
fn pattern_text(resource_type: ResourceType, name: &str, pattern_type: PatternType) -> String {
    format!(
        "ResourcePattern(resourceType={}, name={name}, patternType={})",
        screaming(resource_type.name()),
        screaming(pattern_type.name())
    )
}

/// Kafka's `(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)`.
fn acl_text(principal: &str, host: &str, operation: i8, permission: i8) -> String {
    format!(
        "(principal={principal}, host={host}, operation={}, permissionType={})",
        screaming(AclOperation::from_code(operation).map_or("UNKNOWN", |o| o.name())),
        screaming(AclPermissionType::from_code(permission).map_or("UNKNOWN", |p| p.name()))
    )
}

/// `TransactionalId` -> `TRANSACTIONAL_ID`, as Kafka prints its enums.
fn screaming(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_acls_wording() {
        assert_eq!(
            pattern_text(ResourceType::TransactionalId, "tx", PatternType::Prefixed),
            "ResourcePattern(resourceType=TRANSACTIONAL_ID, name=tx, patternType=PREFIXED)"
        );
        assert_eq!(
            acl_text(
                "User:alice",
                "*",
                AclOperation::IdempotentWrite.code(),
                AclPermissionType::Allow.code()
            ),
            "(principal=User:alice, host=*, operation=IDEMPOTENT_WRITE, permissionType=ALLOW)"
        );
    }
}
