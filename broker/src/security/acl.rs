//! Kafka's ACL model and authorizer: bindings of (resource type, name, pattern type) to
//! (principal, host, operation, permission), stored durably in `__security/acls.json` of the
//! data dir, and the decision Kafka's `StandardAuthorizer` makes:
//!
//! 1. super users (`super.users`) may do everything;
//! 2. a matching DENY wins over any ALLOW;
//! 3. a matching ALLOW allows; `Describe` is implied by `Read`, `Write`, `Delete` and `Alter`,
//!    `DescribeConfigs` by `AlterConfigs`, and `All` covers every operation;
//! 4. with no ACL at all on the resource, `allow.everyone.if.no.acl.found` decides (false by
//!    default: denied).
//!
//! An ACL matches a resource when its type is the resource's and its name is the resource's
//! name (LITERAL), the wildcard `*` (LITERAL), or a prefix of it (PREFIXED). Principals match
//! exactly or through `User:*`; hosts exactly or through `*`.

use std::fmt;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::credentials::{write_atomically, SECURITY_DIR};
use super::KafkaPrincipal;
use crate::error::IoContext;
use crate::{Error, Result};

const ACLS_FILE: &str = "acls.json";
/// The name of the one cluster resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// Wildcard resource name, principal and host.
pub const WILDCARD: &str = "*";

macro_rules! wire_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $code:literal => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* $variant),*
        }

        impl $name {
            /// Every value, with its wire code.
            pub const ALL: &'static [($name, i8)] = &[$(($name::$variant, $code)),*];

            /// The wire code.
            pub fn code(self) -> i8 {
                match self { $($name::$variant => $code),* }
            }

            /// The value of a wire code.
            pub fn from_code(code: i8) -> Option<Self> {
                match code { $($code => Some($name::$variant),)* _ => None }
            }

            /// Kafka's name (`Topic`, `Read`, `Allow`, `Prefixed`, ...).
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// The value named `name`, ignoring case and `_`/`-` (`idempotent-write`,
            /// `TRANSACTIONAL_ID`).
            pub fn from_name(name: &str) -> Option<Self> {
                let squash = |s: &str| s.chars().filter(|c| *c != '_' && *c != '-').collect::<String>().to_ascii_lowercase();
                let wanted = squash(name);
                Self::ALL.iter().map(|(v, _)| *v).find(|v| squash(v.name()) == wanted)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum!(
    /// Kind of resource an ACL protects.
    ResourceType {
        /// Filters only: any type.
        Any = 1 => "Any",
        /// A topic.
        Topic = 2 => "Topic",
        /// A consumer group (and Connect worker group).
        Group = 3 => "Group",
        /// The cluster.
        Cluster = 4 => "Cluster",
        /// A transactional id.
        TransactionalId = 5 => "TransactionalId",
        /// A delegation token.
        DelegationToken = 6 => "DelegationToken",
        /// A user.
        User = 7 => "User",
    }
);

wire_enum!(
    /// How an ACL's resource name is matched.
    PatternType {
        /// Filters only: any pattern type.
        Any = 1 => "Any",
        /// Filters only: every ACL that would match the named resource.
        Match = 2 => "Match",
        /// The exact name (or the wildcard `*`).
        Literal = 3 => "Literal",
        /// Every resource whose name starts with the ACL's name.
        Prefixed = 4 => "Prefixed",
    }
);

wire_enum!(
    /// What an ACL allows or denies.
    AclOperation {
        /// Filters only: any operation.
        Any = 1 => "Any",
        /// Every operation.
        All = 2 => "All",
        /// Consume, fetch offsets, join a group.
        Read = 3 => "Read",
        /// Produce.
        Write = 4 => "Write",
        /// Create topics.
        Create = 5 => "Create",
        /// Delete topics, records, groups.
        Delete = 6 => "Delete",
        /// Add partitions; create and delete ACLs (on the cluster).
        Alter = 7 => "Alter",
        /// Metadata, offsets, describing groups and ACLs.
        Describe = 8 => "Describe",
        /// Inter-broker requests.
        ClusterAction = 9 => "ClusterAction",
        /// Read configs.
        DescribeConfigs = 10 => "DescribeConfigs",
        /// Change configs.
        AlterConfigs = 11 => "AlterConfigs",
        /// Idempotent producers.
        IdempotentWrite = 12 => "IdempotentWrite",
        /// Create delegation tokens.
        CreateTokens = 13 => "CreateTokens",
        /// Describe delegation tokens.
        DescribeTokens = 14 => "DescribeTokens",
    }
);

wire_enum!(
    /// Whether an ACL allows or denies.
    AclPermissionType {
        /// Filters only: either.
        Any = 1 => "Any",
        /// Denies, winning over any allow.
        Deny = 2 => "Deny",
        /// Allows.
        Allow = 3 => "Allow",
    }
);

/// One ACL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    /// Topic, Group, Cluster or TransactionalId.
    pub resource_type: ResourceType,
    /// The resource's name, `*`, or a prefix.
    pub resource_name: String,
    /// Literal or Prefixed.
    pub pattern_type: PatternType,
    /// `User:alice` or `User:*`.
    pub principal: String,
    /// The client's IP address, or `*`.
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// Allow or Deny.
    pub permission_type: AclPermissionType,
}

impl AclBinding {
    /// Why this binding cannot be stored, if it cannot (Kafka's INVALID_REQUEST cases).
    pub fn invalid_reason(&self) -> Option<String> {
        if matches!(self.resource_type, ResourceType::Any) {
            return Some("resource type Any is for filters only".to_owned());
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Some("pattern type must be Literal or Prefixed".to_owned());
        }
        if matches!(self.operation, AclOperation::Any) {
            return Some("operation Any is for filters only".to_owned());
        }
        if matches!(self.permission_type, AclPermissionType::Any) {
            return Some("permission type Any is for filters only".to_owned());
        }
        if self.resource_name.is_empty() {
            return Some("resource name is empty".to_owned());
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Some(format!("the cluster resource is named '{CLUSTER_NAME}'"));
        }
        if let Err(why) = KafkaPrincipal::parse(&self.principal) {
            return Some(why);
        }
        if self.host.is_empty() {
            return Some("host is empty (use * for any host)".to_owned());
        }
        None
    }

    fn names(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => {
                    self.resource_name == WILDCARD || self.resource_name == name
                }
                PatternType::Prefixed => name.starts_with(&self.resource_name),
                _ => false,
            }
    }
}

/// A filter over ACLs, as DescribeAcls and DeleteAcls carry it; `None` fields match anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    /// A type, or Any.
    pub resource_type: ResourceType,
    /// A name, or `None` for any.
    pub resource_name: Option<String>,
    /// Any, Match, Literal or Prefixed.
    pub pattern_type: PatternType,
    /// A principal, or `None` for any.
    pub principal: Option<String>,
    /// A host, or `None` for any.
    pub host: Option<String>,
    /// An operation, or Any.
    pub operation: AclOperation,
    /// A permission, or Any.
    pub permission_type: AclPermissionType,
}

impl AclFilter {
    /// Whether `acl` passes the filter.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let type_ok =
            self.resource_type == ResourceType::Any || self.resource_type == acl.resource_type;
        let name_ok = match (&self.resource_name, self.pattern_type) {
            (None, PatternType::Any | PatternType::Match) => true,
            (None, pattern) => pattern == acl.pattern_type,
            (Some(name), PatternType::Any) => &acl.resource_name == name,
            (Some(name), PatternType::Match) => match acl.pattern_type {
                PatternType::Literal => acl.resource_name == *name || acl.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&acl.resource_name),
                _ => false,
            },
            (Some(name), pattern) => pattern == acl.pattern_type && &acl.resource_name == name,
        };
        type_ok
            && name_ok
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && (self.operation == AclOperation::Any || self.operation == acl.operation)
            && (self.permission_type == AclPermissionType::Any
                || self.permission_type == acl.permission_type)
    }
}

/// Whether an ACL for `granted` covers a request for `wanted`.
fn implies(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation::*;
    granted == wanted
        || granted == All
        || (wanted == Describe && matches!(granted, Read | Write | Delete | Alter))
        || (wanted == DescribeConfigs && granted == AlterConfigs)
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AclsFile {
    acls: Vec<AclBinding>,
}

/// The ACLs and the settings that decide with them.
#[derive(Debug)]
pub struct Authorizer {
    enabled: bool,
    super_users: Vec<KafkaPrincipal>,
    allow_if_no_acl: bool,
    path: PathBuf,
    acls: RwLock<Vec<AclBinding>>,
}

impl Authorizer {
    /// Opens the ACL store in `data_dir`. With `enabled` false every request is allowed (but
    /// the ACL APIs answer SECURITY_DISABLED).
    ///
    /// # Errors
    /// An unreadable or corrupt ACL file.
    pub fn open(
        data_dir: &Path,
        enabled: bool,
        super_users: Vec<KafkaPrincipal>,
        allow_if_no_acl: bool,
    ) -> Result<Self> {
        let dir = data_dir.join(SECURITY_DIR);
        fs::create_dir_all(&dir).at(&dir)?;
        let path = dir.join(ACLS_FILE);
        let acls = if path.exists() {
            let bytes = fs::read(&path).at(&path)?;
            serde_json::from_slice::<AclsFile>(&bytes)
                .map_err(|e| Error::CorruptMetadata {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
                .acls
        } else {
            Vec::new()
        };
        Ok(Self {
            enabled,
            super_users,
            allow_if_no_acl,
            path,
            acls: RwLock::new(acls),
        })
    }

    /// Whether ACLs are enforced.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `principal` connecting from `host` may perform `operation` on the resource.
    pub fn authorize(
        &self,
        principal: &KafkaPrincipal,
        host: IpAddr,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled || self.super_users.contains(principal) {
            return true;
        }
        let principal_text = principal.to_string();
        let wildcard_principal = format!("{}:{WILDCARD}", principal.principal_type);
        let host_text = host.to_string();
        let acls = self.acls.read();
        let mut any_on_resource = false;
        let mut allowed = false;
        for acl in acls.iter().filter(|a| a.names(resource_type, name)) {
            any_on_resource = true;
            let who = acl.principal == principal_text || acl.principal == wildcard_principal;
            let from = acl.host == WILDCARD || acl.host == host_text;
            if !(who && from) {
                continue;
            }
            match acl.permission_type {
                AclPermissionType::Deny
                    if acl.operation == operation || acl.operation == AclOperation::All =>
                {
                    return false;
                }
                AclPermissionType::Allow if implies(acl.operation, operation) => allowed = true,
                _ => {}
            }
        }
        allowed || (!any_on_resource && self.allow_if_no_acl)
    }

    /// Whether the principal may perform `operation` on some resource of `resource_type`
    /// (KIP-679's check for idempotent producers: `Write` on any topic).
    pub fn authorize_any(
        &self,
        principal: &KafkaPrincipal,
        host: IpAddr,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.enabled || self.super_users.contains(principal) {
            return true;
        }
        let principal_text = principal.to_string();
        let wildcard_principal = format!("{}:{WILDCARD}", principal.principal_type);
        let host_text = host.to_string();
        self.acls.read().iter().any(|acl| {
            acl.resource_type == resource_type
                && acl.permission_type == AclPermissionType::Allow
                && implies(acl.operation, operation)
                && (acl.principal == principal_text || acl.principal == wildcard_principal)
                && (acl.host == WILDCARD || acl.host == host_text)
        })
    }

    /// The ACLs that pass `filter`.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.acls
            .read()
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect()
    }

    /// Adds `acls` (those already present stay once) and persists. Blocking (fsync).
    ///
    /// # Errors
    /// The file cannot be written; nothing is changed then.
    pub fn create(&self, acls: &[AclBinding]) -> Result<()> {
        let mut current = self.acls.write();
        let mut next = current.clone();
        for acl in acls {
            if !next.contains(acl) {
                next.push(acl.clone());
            }
        }
        self.persist(&next)?;
        *current = next;
        Ok(())
    }

    /// Removes the ACLs that pass each filter; returns them per filter. Blocking (fsync).
    ///
    /// # Errors
    /// The file cannot be written; nothing is changed then.
    pub fn delete(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>> {
        let mut current = self.acls.write();
        let removed: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| current.iter().filter(|a| f.matches(a)).cloned().collect())
            .collect();
        let next: Vec<AclBinding> = current
            .iter()
            .filter(|a| !filters.iter().any(|f| f.matches(a)))
            .cloned()
            .collect();
        if next.len() != current.len() {
            self.persist(&next)?;
            *current = next;
        }
        Ok(removed)
    }

    fn persist(&self, acls: &[AclBinding]) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(&AclsFile {
            acls: acls.to_vec(),
        })
        .expect("ACLs serialise");
        write_atomically(&self.path, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        resource_type: ResourceType,
        name: &str,
        pattern_type: PatternType,
        principal: &str,
        operation: AclOperation,
        permission_type: AclPermissionType,
    ) -> AclBinding {
        AclBinding {
            resource_type,
            resource_name: name.to_owned(),
            pattern_type,
            principal: principal.to_owned(),
            host: WILDCARD.to_owned(),
            operation,
            permission_type,
        }
    }

    #[test]
    fn kafka_semantics_of_allow_deny_prefix_and_super_users() {
        use AclOperation::*;
        use AclPermissionType::*;
        use PatternType::*;
        use ResourceType::*;
        let dir = tempfile::tempdir().unwrap();
        let authorizer =
            Authorizer::open(dir.path(), true, vec![KafkaPrincipal::user("admin")], false).unwrap();
        authorizer
            .create(&[
                acl(Topic, "orders", Literal, "User:alice", Write, Allow),
                acl(Topic, "logs-", Prefixed, "User:alice", Read, Allow),
                acl(Topic, "logs-secret", Literal, "User:alice", Read, Deny),
                acl(Group, "*", Literal, "User:*", Read, Allow),
            ])
            .unwrap();
        let alice = KafkaPrincipal::user("alice");
        let bob = KafkaPrincipal::user("bob");
        let host: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(authorizer.authorize(&alice, host, Write, Topic, "orders"));
        assert!(authorizer.authorize(&alice, host, Describe, Topic, "orders"));
        assert!(!authorizer.authorize(&alice, host, Read, Topic, "orders"));
        assert!(authorizer.authorize(&alice, host, Read, Topic, "logs-app"));
        assert!(!authorizer.authorize(&alice, host, Read, Topic, "logs-secret"));
        assert!(!authorizer.authorize(&bob, host, Write, Topic, "orders"));
        assert!(authorizer.authorize(&bob, host, Read, Group, "any-group"));
        assert!(!authorizer.authorize(&bob, host, Describe, Topic, "unnamed"));
        assert!(authorizer.authorize(
            &KafkaPrincipal::user("admin"),
            host,
            Alter,
            Cluster,
            CLUSTER_NAME
        ));
        assert!(authorizer.authorize_any(&alice, host, Write, Topic));
        assert!(!authorizer.authorize_any(&bob, host, Write, Topic));

        let reopened = Authorizer::open(dir.path(), true, vec![], true).unwrap();
        assert!(reopened.authorize(&bob, host, Write, Topic, "no-acls-here"));
        assert!(!reopened.authorize(&bob, host, Write, Topic, "orders"));
        let removed = reopened
            .delete(&[AclFilter {
                resource_type: Topic,
                resource_name: Some("logs-app".to_owned()),
                pattern_type: Match,
                principal: None,
                host: None,
                operation: AclOperation::Any,
                permission_type: AclPermissionType::Any,
            }])
            .unwrap();
        assert_eq!(removed[0].len(), 1);
        assert_eq!(removed[0][0].resource_name, "logs-");
        assert_eq!(
            reopened
                .describe(&AclFilter {
                    resource_type: ResourceType::Any,
                    resource_name: None,
                    pattern_type: PatternType::Any,
                    principal: None,
                    host: None,
                    operation: AclOperation::Any,
                    permission_type: AclPermissionType::Any,
                })
                .len(),
            3
        );
        assert_eq!(
            AclOperation::from_name("idempotent-write"),
            Some(IdempotentWrite)
        );
        assert_eq!(
            ResourceType::from_name("TRANSACTIONAL_ID"),
            Some(TransactionalId)
        );
    }
}
