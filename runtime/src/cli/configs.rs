//! `sluice configs`: SCRAM credentials of users with the flags of Kafka's `kafka-configs`
//! tool (`--alter --entity-type users --entity-name alice --add-config
//! 'SCRAM-SHA-256=[iterations=8192,password=alice-secret]'`, `--delete-config SCRAM-SHA-512`,
//! `--describe`), over AlterUserScramCredentials and DescribeUserScramCredentials. The
//! password is salted and hashed here; only the salted password travels, as with Kafka's tool.
//! Topic configs are `sluice topics --alter --config`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Result};
use bytes::Bytes;
use clap::Args;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, ApiKey, DescribeUserScramCredentialsRequest,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use sluice_broker::security::scram::{
    random_salt, salted_password, ScramMechanism, DEFAULT_ITERATIONS, MAX_ITERATIONS,
    MIN_ITERATIONS,
};

use super::{BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP};

const SCRAM_VERSIONS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
];

/// Flags of `sluice configs` (named as in `kafka-configs`).
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["alter", "describe"])))]
pub struct ConfigsArgs {
    /// Broker to connect to (host:port[,host:port...]).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_BOOTSTRAP, env = BOOTSTRAP_ENV)]
    pub bootstrap_server: String,
    /// Kafka client properties file (security.protocol, sasl.*, ssl.*), as for Kafka's tools.
    #[arg(long, value_name = "FILE")]
    pub command_config: Option<PathBuf>,
    /// Change the entity's configs.
    #[arg(long)]
    pub alter: bool,
    /// Show the entity's configs.
    #[arg(long)]
    pub describe: bool,
    /// The kind of entity: users (SCRAM credentials).
    #[arg(long, value_name = "TYPE")]
    pub entity_type: String,
    /// The user (all users with --describe when left out).
    #[arg(long, value_name = "NAME")]
    pub entity_name: Option<String>,
    /// Credentials to set: `SCRAM-SHA-256=[iterations=8192,password=secret],SCRAM-SHA-512=[password=secret]`.
    #[arg(long, value_name = "CONFIGS")]
    pub add_config: Option<String>,
    /// Credentials to delete: `SCRAM-SHA-256,SCRAM-SHA-512`.
    #[arg(long, value_name = "NAMES")]
    pub delete_config: Option<String>,
}

/// Splits `a=[x=1,y=2],b=[z]` at the commas outside brackets.
fn split_top_level(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for c in text.chars() {
        match c {
            '[' => {
                depth += 1;
                current.push(c);
            }
            ']' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

fn mechanism(name: &str) -> Result<ScramMechanism> {
    ScramMechanism::from_name(name.trim()).ok_or_else(|| {
        anyhow::anyhow!("'{name}' is not a SCRAM mechanism: use SCRAM-SHA-256 or SCRAM-SHA-512")
    })
}

/// Parses `--add-config` into (mechanism, iterations, password).
fn parse_add_config(text: &str) -> Result<Vec<(ScramMechanism, u32, String)>> {
    let mut out = Vec::new();
    for part in split_top_level(text) {
        let Some((name, value)) = part.split_once('=') else {
            bail!("--add-config entry '{part}' is not MECHANISM=[password=...]");
        };
        let mechanism = mechanism(name)?;
        let inner = value.trim();
        let inner = inner
            .strip_prefix('[')
            .and_then(|v| v.strip_suffix(']'))
            .unwrap_or(inner);
        let mut iterations = DEFAULT_ITERATIONS;
        let mut password = None;
        for field in inner.split(',') {
            match field.split_once('=') {
                Some(("iterations", n)) => {
                    iterations = n.trim().parse().ok().filter(|n| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(n)).ok_or_else(|| {
                        anyhow::anyhow!("{mechanism} iterations must be a number from {MIN_ITERATIONS} to {MAX_ITERATIONS} (got '{n}')")
                    })?;
                }
                Some(("password", p)) => password = Some(p.to_owned()),
                _ => bail!("{mechanism}: '{field}' is not iterations=N or password=..."),
            }
        }
        let Some(password) = password.filter(|p| !p.is_empty()) else {
            bail!("{mechanism} needs password=... in --add-config");
        };
        out.push((mechanism, iterations, password));
    }
    if out.is_empty() {
        bail!("--add-config is empty");
    }
    Ok(out)
}

/// Runs `sluice configs`, printing to stdout.
///
/// # Errors
/// Bad flags, an unreachable broker, failed authentication, or the broker's refusal.
pub fn run(args: ConfigsArgs) -> Result<()> {
    if !matches!(args.entity_type.as_str(), "users" | "user") {
        bail!(
            "--entity-type {} is not supported here: users (SCRAM credentials) only; topic configs are `sluice topics --alter --topic T --config k=v`",
            args.entity_type
        );
    }
    let extra = super::command_config(args.command_config.as_deref(), &[])?;
    super::check_reachable(&args.bootstrap_server)?;
    let out = super::block_on(async { execute(&args, &extra).await })??;
    print!("{out}");
    Ok(())
}

async fn execute(args: &ConfigsArgs, extra: &BTreeMap<String, String>) -> Result<String> {
    let mut out = String::new();
    if args.alter {
        let Some(user) = args.entity_name.as_deref() else {
            bail!("--alter needs --entity-name (the user)");
        };
        if args.add_config.is_none() && args.delete_config.is_none() {
            bail!("--alter needs --add-config or --delete-config");
        }
        let upsertions = match &args.add_config {
            Some(text) => parse_add_config(text)?
                .into_iter()
                .map(|(m, iterations, password)| {
                    let salt = random_salt();
                    let salted = salted_password(m, &password, &salt, iterations);
                    ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_string(user.to_owned()))
                        .with_mechanism(m.code())
                        .with_iterations(iterations as i32)
                        .with_salt(Bytes::from(salt))
                        .with_salted_password(Bytes::from(salted))
                })
                .collect(),
            None => Vec::new(),
        };
        let deletions = match &args.delete_config {
            Some(text) => text
                .split(',')
                .filter(|n| !n.trim().is_empty())
                .map(|n| {
                    Ok(ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(user.to_owned()))
                        .with_mechanism(mechanism(n)?.code()))
                })
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        let mut conn =
            super::admin_connection(&args.bootstrap_server, extra, SCRAM_VERSIONS).await?;
        let response = conn
            .send(
                ApiKey::AlterUserScramCredentials,
                0,
                &AlterUserScramCredentialsRequest::default()
                    .with_upsertions(upsertions)
                    .with_deletions(deletions),
                super::ADMIN_TIMEOUT,
            )
            .await?;
        for result in response.results {
            if let Some(error) = ResponseError::try_from_code(result.error_code) {
                bail!(
                    "Error while executing config command: user '{}': {error}{}",
                    result.user,
                    result
                        .error_message
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                );
            }
        }
        let _ = writeln!(out, "Completed updating config for user {user}.");
    } else {
        let mut conn =
            super::admin_connection(&args.bootstrap_server, extra, SCRAM_VERSIONS).await?;
        let users = args
            .entity_name
            .as_ref()
            .map(|u| vec![UserName::default().with_name(StrBytes::from_string(u.clone()))]);
        let response = conn
            .send(
                ApiKey::DescribeUserScramCredentials,
                0,
                &DescribeUserScramCredentialsRequest::default().with_users(users),
                super::ADMIN_TIMEOUT,
            )
            .await?;
        if let Some(error) = ResponseError::try_from_code(response.error_code) {
            bail!(
                "Error while executing config command: {error}{}",
                response
                    .error_message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
        }
        for result in response.results {
            if ResponseError::try_from_code(result.error_code)
                == Some(ResponseError::ResourceNotFound)
            {
                continue;
            }
            if let Some(error) = ResponseError::try_from_code(result.error_code) {
                bail!(
                    "Error while executing config command: user '{}': {error}",
                    result.user
                );
            }
            let creds: Vec<String> = result
                .credential_infos
                .iter()
                .map(|c| {
                    format!(
                        "{}=iterations={}",
                        ScramMechanism::from_code(c.mechanism).map_or("UNKNOWN", |m| m.name()),
                        c.iterations
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "SCRAM credential configs for user-principal '{}' are {}",
                result.user,
                creds.join(", ")
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_config_in_kafka_syntax() {
        let parsed = parse_add_config(
            "SCRAM-SHA-256=[iterations=8192,password=a,b],SCRAM-SHA-512=[password=x=y]",
        );
        // A comma inside a password ends the field, as in kafka-configs; write it without.
        assert!(parsed.is_err());
        let parsed = parse_add_config(
            "SCRAM-SHA-256=[iterations=8192,password=ab],SCRAM-SHA-512=[password=x=y]",
        )
        .unwrap();
        assert_eq!(parsed[0], (ScramMechanism::Sha256, 8192, "ab".to_owned()));
        assert_eq!(
            parsed[1],
            (ScramMechanism::Sha512, DEFAULT_ITERATIONS, "x=y".to_owned())
        );
        assert!(parse_add_config("SCRAM-SHA-1=[password=a]").is_err());
        assert!(parse_add_config("SCRAM-SHA-256=[iterations=10,password=a]").is_err());
    }
}
