//! DescribeUserScramCredentials (key 50) and AlterUserScramCredentials (key 51), KIP-554:
//! list users' SCRAM mechanisms and iteration counts, and set or delete credentials. Clients
//! send the salted password, never the password; the broker keeps only the derived keys.
//! Describing needs `Describe` on the cluster, altering needs `Alter`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use tracing::info;

use super::{blocking, RequestContext};
use crate::security::acl::AclOperation;
use crate::security::scram::{ScramCredential, ScramMechanism, MAX_ITERATIONS, MIN_ITERATIONS};

fn text(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

pub(crate) fn describe(
    ctx: &RequestContext,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !ctx.cluster_authorized(AclOperation::Describe) {
        return DescribeUserScramCredentialsResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(text(
                "describing SCRAM credentials needs Describe on the cluster",
            ));
    }
    let credentials = &ctx.state.credentials;
    let Some(users) = request.users else {
        let results = credentials
            .describe(None)
            .into_iter()
            .map(|(user, mechanisms)| result(user, mechanisms))
            .collect();
        return DescribeUserScramCredentialsResponse::default().with_results(results);
    };
    let names: Vec<String> = users.iter().map(|u| u.name.to_string()).collect();
    let mut seen = BTreeSet::new();
    let duplicates: BTreeSet<String> = names
        .iter()
        .filter(|n| !seen.insert((*n).clone()))
        .cloned()
        .collect();
    let unique: Vec<String> = seen.into_iter().collect();
    let results = credentials
        .describe(Some(&unique))
        .into_iter()
        .map(|(user, mechanisms)| {
            if duplicates.contains(&user) {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user))
                    .with_error_code(ResponseError::DuplicateResource.code())
                    .with_error_message(text("user named more than once"))
            } else if mechanisms.is_empty() {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user))
                    .with_error_code(ResponseError::ResourceNotFound.code())
                    .with_error_message(text(
                        "Attempt to describe a user credential that does not exist",
                    ))
            } else {
                result(user, mechanisms)
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

fn result(
    user: String,
    mechanisms: Vec<(ScramMechanism, u32)>,
) -> DescribeUserScramCredentialsResult {
    DescribeUserScramCredentialsResult::default()
        .with_user(StrBytes::from_string(user))
        .with_credential_infos(
            mechanisms
                .into_iter()
                .map(|(m, iterations)| {
                    CredentialInfo::default()
                        .with_mechanism(m.code())
                        .with_iterations(iterations as i32)
                })
                .collect(),
        )
}

pub(crate) async fn alter(
    ctx: &RequestContext,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // One result per user named; the first problem found for a user is its answer.
    let mut errors: BTreeMap<String, (ResponseError, String)> = BTreeMap::new();
    let mut users: BTreeSet<String> = BTreeSet::new();
    for d in &request.deletions {
        users.insert(d.name.to_string());
    }
    for u in &request.upsertions {
        users.insert(u.name.to_string());
    }
    let authorized = ctx.cluster_authorized(AclOperation::Alter);
    let mut fail = |user: &str, code: ResponseError, message: String| {
        errors.entry(user.to_owned()).or_insert((code, message));
    };
    let mut touched: BTreeSet<(String, i8)> = BTreeSet::new();
    let mut deletions = Vec::new();
    let mut upserts = Vec::new();
    for d in &request.deletions {
        let user = d.name.to_string();
        if !authorized {
            fail(
                &user,
                ResponseError::ClusterAuthorizationFailed,
                "altering SCRAM credentials needs Alter on the cluster".into(),
            );
            continue;
        }
        if user.is_empty() {
            fail(
                &user,
                ResponseError::UnacceptableCredential,
                "empty user name".into(),
            );
            continue;
        }
        let Some(mechanism) = ScramMechanism::from_code(d.mechanism) else {
            fail(
                &user,
                ResponseError::UnsupportedSaslMechanism,
                format!("unknown SCRAM mechanism {}", d.mechanism),
            );
            continue;
        };
        if !touched.insert((user.clone(), d.mechanism)) {
            fail(
                &user,
                ResponseError::DuplicateResource,
                format!("{mechanism} named more than once for the user"),
            );
            continue;
        }
        if ctx.state.credentials.get(&user, mechanism).is_none() {
            fail(
                &user,
                ResponseError::ResourceNotFound,
                format!("Attempt to delete a user credential that does not exist: {mechanism}"),
            );
            continue;
        }
        deletions.push((user, mechanism));
    }
    for u in &request.upsertions {
        let user = u.name.to_string();
        if !authorized {
            fail(
                &user,
                ResponseError::ClusterAuthorizationFailed,
                "altering SCRAM credentials needs Alter on the cluster".into(),
            );
            continue;
        }
        if user.is_empty() {
            fail(
                &user,
                ResponseError::UnacceptableCredential,
                "empty user name".into(),
            );
            continue;
        }
        let Some(mechanism) = ScramMechanism::from_code(u.mechanism) else {
            fail(
                &user,
                ResponseError::UnsupportedSaslMechanism,
                format!("unknown SCRAM mechanism {}", u.mechanism),
            );
            continue;
        };
        if !touched.insert((user.clone(), u.mechanism)) {
            fail(
                &user,
                ResponseError::DuplicateResource,
                format!("{mechanism} named more than once for the user"),
            );
            continue;
        }
        if !(MIN_ITERATIONS as i32..=MAX_ITERATIONS as i32).contains(&u.iterations) {
            fail(
                &user,
                ResponseError::UnacceptableCredential,
                format!(
                    "iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS} (got {})",
                    u.iterations
                ),
            );
            continue;
        }
        if u.salt.is_empty() || u.salted_password.is_empty() {
            fail(
                &user,
                ResponseError::UnacceptableCredential,
                "salt and salted password must not be empty".into(),
            );
            continue;
        }
        upserts.push((
            user,
            mechanism,
            ScramCredential::from_salted_password(
                mechanism,
                u.salt.to_vec(),
                &u.salted_password,
                u.iterations as u32,
            ),
        ));
    }
    // A user with any error has none of its changes applied.
    deletions.retain(|(user, _)| !errors.contains_key(user));
    upserts.retain(|(user, _, _)| !errors.contains_key(user));
    if !deletions.is_empty() || !upserts.is_empty() {
        let store = Arc::clone(&ctx.state.credentials);
        let changed: Vec<String> = deletions
            .iter()
            .map(|(u, m)| format!("-{u}/{m}"))
            .chain(upserts.iter().map(|(u, m, _)| format!("+{u}/{m}")))
            .collect();
        let applied = blocking(move || store.apply(&deletions, upserts)).await;
        let failure = match applied {
            Ok(Ok(())) => {
                info!(principal = %ctx.session.principal, changes = %changed.join(" "), "SCRAM credentials altered");
                None
            }
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.message),
        };
        if let Some(message) = failure {
            for user in &users {
                errors
                    .entry(user.clone())
                    .or_insert((ResponseError::UnknownServerError, message.clone()));
            }
        }
    }
    AlterUserScramCredentialsResponse::default().with_results(
        users
            .into_iter()
            .map(|user| {
                let mut result = AlterUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.clone()));
                if let Some((code, message)) = errors.remove(&user) {
                    result = result
                        .with_error_code(code.code())
                        .with_error_message(text(message));
                }
                result
            })
            .collect(),
    )
}
