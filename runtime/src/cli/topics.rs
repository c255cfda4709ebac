//! `sluice topics`: create, list, describe, alter and delete topics with the flags of
//! Kafka's `kafka-topics` tool, against any Kafka-compatible broker.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::types::RDKafkaErrorCode;

use super::refusal::Refusal;
use super::{parse_key_value, CliContext, BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Flags of `sluice topics` (named as in `kafka-topics`).
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["create", "list", "describe", "delete", "alter"])))]
pub struct TopicsArgs {
    /// Broker to connect to (host:port[,host:port...]).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_BOOTSTRAP, env = BOOTSTRAP_ENV)]
    pub bootstrap_server: String,
    /// Kafka client properties file (security.protocol, sasl.*, ssl.*), as for Kafka's tools.
    #[arg(long = "command-config", value_name = "FILE")]
    pub command_config: Option<std::path::PathBuf>,
    /// Create a topic.
    #[arg(long)]
    pub create: bool,
    /// List topic names.
    #[arg(long)]
    pub list: bool,
    /// Describe topics: partitions, leader, replicas, ISR and config overrides.
    #[arg(long)]
    pub describe: bool,
    /// Delete a topic.
    #[arg(long)]
    pub delete: bool,
    /// Change the partition count (`--partitions`) or config overrides (`--config`).
    #[arg(long)]
    pub alter: bool,
    /// The topic to act on (required for create, delete and alter).
    #[arg(long)]
    pub topic: Option<String>,
    /// Number of partitions (create; alter to grow).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replication factor; this broker is a single node, so only 1 works with it.
    #[arg(long)]
    pub replication_factor: Option<i32>,
    /// A topic config override, key=value (repeatable).
    #[arg(long = "config", value_name = "KEY=VALUE")]
    pub configs: Vec<String>,
    /// With --create: do nothing if the topic exists.
    #[arg(long)]
    pub if_not_exists: bool,
    /// With --delete or --alter: do nothing if the topic does not exist.
    #[arg(long)]
    pub if_exists: bool,
    /// With --list or --describe: leave out internal topics (names starting with '__').
    #[arg(long)]
    pub exclude_internal: bool,
    /// An extra librdkafka property for the admin client, key=value (repeatable).
    #[arg(long = "command-property", value_name = "KEY=VALUE")]
    pub command_properties: Vec<String>,
}

/// A refusal: the broker's reason when it gave one (see [`super::refusal`]), else the code.
fn refused(topic: &str, code: RDKafkaErrorCode, refusal: Option<Refusal>) -> anyhow::Error {
    match refusal {
        Some(refusal) => {
            anyhow::anyhow!("Error while executing topic command : topic '{topic}': {refusal}")
        }
        None => anyhow::anyhow!("Error while executing topic command : topic '{topic}': {code}"),
    }
}

/// Kafka's wording, so scripts written for `kafka-topics` recognise it.
fn does_not_exist(topic: &str) -> String {
    format!("Error while executing topic command : Topic '{topic}' does not exist as expected")
}

fn require_topic(args: &TopicsArgs, action: &str) -> anyhow::Result<String> {
    args.topic
        .clone()
        .with_context(|| format!("--{action} needs --topic <name>"))
}

/// Runs `sluice topics`, printing as `kafka-topics` does.
///
/// # Errors
/// Bad flags, an unreachable broker or a refused request; the message says which.
pub fn run(args: TopicsArgs) -> anyhow::Result<()> {
    let mut extra = Vec::new();
    for item in &args.command_properties {
        extra.push(parse_key_value("--command-property", item)?);
    }
    let extra: Vec<(String, String)> =
        super::command_config(args.command_config.as_deref(), &extra)?
            .into_iter()
            .collect();
    let mut configs = BTreeMap::new();
    for item in &args.configs {
        let (k, v) = parse_key_value("--config", item)?;
        configs.insert(k, v);
    }
    super::check_reachable(&args.bootstrap_server)?;
    let out = super::block_on(async {
        let client_config = super::reader_config(&args.bootstrap_server, &extra);
        let admin: AdminClient<CliContext> =
            AdminClient::from_config_and_context(&client_config, CliContext::default())
                .context("cannot create the Kafka admin client")?;
        let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let mut out = String::new();
        if args.create {
            create(&args, &admin, &options, &configs, &extra, &mut out).await?;
        } else if args.list {
            for name in topic_names(&admin, &args)? {
                out.push_str(&name);
                out.push('\n');
            }
        } else if args.describe {
            describe(&args, &admin, &mut out).await?;
        } else if args.delete {
            let topic = require_topic(&args, "delete")?;
            let result = admin.delete_topics(&[topic.as_str()], &options).await?;
            for r in result {
                if let Err((name, code)) = r {
                    if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                        if !args.if_exists {
                            bail!("{}", does_not_exist(&name));
                        }
                    } else {
                        return Err(refused(&name, code, None));
                    }
                }
            }
        } else if args.alter {
            alter(&args, &admin, &options, &configs, &extra).await?;
        }
        anyhow::Ok(out)
    })??;
    print!("{out}");
    Ok(())
}

async fn create(
    args: &TopicsArgs,
    admin: &AdminClient<CliContext>,
    options: &AdminOptions,
    configs: &BTreeMap<String, String>,
    extra: &[(String, String)],
    out: &mut String,
) -> anyhow::Result<()> {
    let topic = require_topic(args, "create")?;
    let mut new = NewTopic::new(
        &topic,
        args.partitions.unwrap_or(-1),
        TopicReplication::Fixed(args.replication_factor.unwrap_or(-1)),
    );
    for (k, v) in configs {
        new = new.set(k, v);
    }
    for r in admin.create_topics(&[new], options).await? {
        match r {
            Ok(_) => out.push_str(&format!("Created topic {topic}.\n")),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if args.if_not_exists => {}
            Err((name, code)) => {
                let reason = super::refusal::plaintext(extra)
                    .then(|| {
                        super::refusal::create_topic(
                            &args.bootstrap_server,
                            &name,
                            args.partitions.unwrap_or(-1),
                            args.replication_factor
                                .map_or(-1, |r| i16::try_from(r).unwrap_or(i16::MAX)),
                            &configs
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .flatten();
                return Err(refused(&name, code, reason));
            }
        }
    }
    Ok(())
}

async fn alter(
    args: &TopicsArgs,
    admin: &AdminClient<CliContext>,
    options: &AdminOptions,
    configs: &BTreeMap<String, String>,
    extra: &[(String, String)],
) -> anyhow::Result<()> {
    let topic = require_topic(args, "alter")?;
    let ask = super::refusal::plaintext(extra);
    if args.partitions.is_none() && configs.is_empty() {
        bail!("--alter needs --partitions <count> and/or --config key=value");
    }
    let metadata = admin
        .inner()
        .fetch_metadata(Some(&topic), TIMEOUT)
        .context("cannot fetch metadata")?;
    let exists = metadata
        .topics()
        .first()
        .is_some_and(|t| t.error().is_none());
    if !exists {
        if args.if_exists {
            return Ok(());
        }
        bail!("{}", does_not_exist(&topic));
    }
    if let Some(count) = args.partitions {
        let count = usize::try_from(count).context("--partitions must be positive")?;
        for r in admin
            .create_partitions(&[NewPartitions::new(&topic, count)], options)
            .await?
        {
            if let Err((name, code)) = r {
                let reason = ask
                    .then(|| {
                        let count = i32::try_from(count).unwrap_or(i32::MAX);
                        super::refusal::create_partitions(&args.bootstrap_server, &name, count)
                    })
                    .flatten();
                return Err(refused(&name, code, reason));
            }
        }
    }
    if !configs.is_empty() {
        // AlterConfigs replaces all overrides, so merge with the current ones first.
        let mut merged = overrides(admin, &topic, options).await?;
        merged.extend(configs.clone());
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(&topic));
        for (k, v) in &merged {
            alter = alter.set(k, v);
        }
        let refusal = || {
            let merged: Vec<(String, String)> = merged.clone().into_iter().collect();
            ask.then(|| super::refusal::alter_configs(&args.bootstrap_server, &topic, &merged))
                .flatten()
        };
        for r in admin.alter_configs(&[alter], options).await? {
            if let Err((_, code)) = r {
                return Err(refused(&topic, code, refusal()));
            }
        }
        // The rdkafka crate reads every AlterConfigs answer as a success, refusals included:
        // check that the change took.
        let now = overrides(admin, &topic, options).await?;
        if configs.iter().any(|(k, v)| now.get(k) != Some(v)) {
            return Err(match refusal() {
                Some(refusal) => anyhow::anyhow!(
                    "Error while executing topic command : topic '{topic}': {refusal}"
                ),
                None => anyhow::anyhow!(
                    "Error while executing topic command : topic '{topic}': the broker did not \
                     apply the config change (its reason cannot be asked over this connection; \
                     see the broker's log)"
                ),
            });
        }
    }
    Ok(())
}

/// A topic's config overrides (the values set on the topic, not the defaults).
async fn overrides(
    admin: &AdminClient<CliContext>,
    topic: &str,
    options: &AdminOptions,
) -> anyhow::Result<BTreeMap<String, String>> {
    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(topic)], options)
        .await
        .with_context(|| format!("cannot describe the configs of topic '{topic}'"))?;
    let mut overrides = BTreeMap::new();
    for resource in described {
        let resource = resource.map_err(|code| {
            anyhow::anyhow!("cannot describe the configs of topic '{topic}': {code}")
        })?;
        for entry in resource.entries {
            if matches!(entry.source, rdkafka::admin::ConfigSource::DynamicTopic) {
                if let Some(v) = entry.value {
                    overrides.insert(entry.name, v);
                }
            }
        }
    }
    Ok(overrides)
}

fn topic_names(admin: &AdminClient<CliContext>, args: &TopicsArgs) -> anyhow::Result<Vec<String>> {
    let metadata = admin
        .inner()
        .fetch_metadata(None, TIMEOUT)
        .with_context(|| format!("cannot fetch metadata from {}", args.bootstrap_server))?;
    let mut names: Vec<String> = metadata
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|n| !(args.exclude_internal && n.starts_with("__")))
        .collect();
    names.sort();
    Ok(names)
}

async fn describe(
    args: &TopicsArgs,
    admin: &AdminClient<CliContext>,
    out: &mut String,
) -> anyhow::Result<()> {
    let names = match &args.topic {
        Some(topic) => vec![topic.clone()],
        None => topic_names(admin, args)?,
    };
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    for name in names {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(&name), TIMEOUT)
            .context("cannot fetch metadata")?;
        let Some(topic) = metadata.topics().first() else {
            continue;
        };
        if let Some(err) = topic.error() {
            if args.if_exists {
                continue;
            }
            if RDKafkaErrorCode::from(err) == RDKafkaErrorCode::UnknownTopicOrPartition {
                bail!("{}", does_not_exist(&name));
            }
            bail!(
                "Error while executing topic command : topic '{name}': {}",
                RDKafkaErrorCode::from(err)
            );
        }
        let overrides = admin
            .describe_configs(&[ResourceSpecifier::Topic(&name)], &options)
            .await?
            .into_iter()
            .flatten()
            .flat_map(|r| r.entries)
            .filter(|e| matches!(e.source, rdkafka::admin::ConfigSource::DynamicTopic))
            .filter_map(|e| e.value.map(|v| format!("{}={v}", e.name)))
            .collect::<Vec<_>>()
            .join(",");
        let mut partitions: Vec<_> = topic.partitions().iter().collect();
        partitions.sort_by_key(|p| p.id());
        let replication = partitions.first().map_or(0, |p| p.replicas().len());
        out.push_str(&format!(
            "Topic: {name}\tPartitionCount: {}\tReplicationFactor: {replication}\tConfigs: {overrides}\n",
            partitions.len()
        ));
        let join = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        for p in partitions {
            out.push_str(&format!(
                "\tTopic: {name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\n",
                p.id(),
                if p.leader() < 0 {
                    "none".to_owned()
                } else {
                    p.leader().to_string()
                },
                join(p.replicas()),
                join(p.isr())
            ));
        }
    }
    Ok(())
}
