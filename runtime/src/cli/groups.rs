//! `sluice groups`: the `kafka-consumer-groups` tool for consumer groups on any Kafka-protocol
//! broker (the bundled one or a Kafka cluster): list groups, describe a group's partitions
//! (current offset, log end offset, lag, member, host) and reset a group's offsets.
//!
//! ```text
//! sluice groups --bootstrap-server localhost:9092 --list
//! sluice groups --bootstrap-server localhost:9092 --describe --group connect-es-sink
//! sluice groups --bootstrap-server localhost:9092 --reset-offsets --group G --topic orders \
//!     --to-earliest            # prints the plan (dry run)
//! sluice groups ... --reset-offsets --group G --all-topics --shift-by -10 --execute
//! ```
//!
//! Like `kafka-consumer-groups`, a reset is a dry run unless `--execute` is given, and it is
//! refused while the group has active members (stop the consumers first).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _, Result};
use clap::{ArgGroup, Args};
#[cfg(test)]
use rdkafka::config::ClientConfig;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{CliContext, BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP};

/// The client of the groups tool: librdkafka's logs kept off stderr.
type BaseConsumer = rdkafka::consumer::BaseConsumer<CliContext>;

/// How long one request to the broker may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `sluice groups`, named as `kafka-consumer-groups` names them.
#[derive(Debug, Args)]
#[command(group(ArgGroup::new("action").required(true).args(["list", "describe", "reset_offsets"])))]
#[command(group(ArgGroup::new("reset_to").args(["to_earliest", "to_latest", "to_offset", "shift_by", "to_datetime"])))]
pub struct GroupsArgs {
    /// Broker to connect to (host:port[,host:port...]).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_BOOTSTRAP, env = BOOTSTRAP_ENV)]
    pub bootstrap_server: String,
    /// Kafka client properties file (security.protocol, sasl.*, ssl.*), as for Kafka's tools.
    #[arg(long = "command-config", value_name = "FILE")]
    pub command_config: Option<std::path::PathBuf>,
    /// List all consumer groups.
    #[arg(long)]
    pub list: bool,
    /// Describe a group: per partition its committed offset, log end offset, lag and member.
    #[arg(long, requires = "group")]
    pub describe: bool,
    /// Reset a group's committed offsets (a dry run unless --execute).
    #[arg(long, requires = "group", requires = "reset_to")]
    pub reset_offsets: bool,
    /// The consumer group.
    #[arg(long)]
    pub group: Option<String>,
    /// Topic whose offsets to reset: `topic` for all its partitions, or `topic:0,2`.
    /// May be repeated.
    #[arg(long, conflicts_with = "all_topics")]
    pub topic: Vec<String>,
    /// Reset the offsets of every topic the group has committed offsets for.
    #[arg(long)]
    pub all_topics: bool,
    /// Reset to the earliest offset still in the log.
    #[arg(long)]
    pub to_earliest: bool,
    /// Reset to the log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// Reset to this offset (clamped into the log's range).
    #[arg(long, allow_negative_numbers = true)]
    pub to_offset: Option<i64>,
    /// Move the current offset by this many records (negative to go back), clamped into the
    /// log's range.
    #[arg(long, allow_negative_numbers = true)]
    pub shift_by: Option<i64>,
    /// Reset to the first offset at or after this time: `YYYY-MM-DDTHH:mm:SS[.sss]`, local time
    /// unless it ends with `Z` or an offset such as `+02:00`.
    #[arg(long)]
    pub to_datetime: Option<String>,
    /// Only show the new offsets (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    pub execute: bool,
}

/// Runs `sluice groups`, printing to stdout.
///
/// # Errors
/// Bad arguments, an unreachable broker, or a reset refused because the group is active.
pub fn run(args: &GroupsArgs) -> Result<()> {
    super::check_reachable(&args.bootstrap_server)?;
    let mut out = String::new();
    if args.list {
        list(args, &mut out)?;
    } else if args.describe {
        describe(args, &mut out)?;
    } else {
        reset_offsets(args, &mut out)?;
    }
    print!("{out}");
    Ok(())
}

fn consumer(args: &GroupsArgs, group: &str) -> Result<BaseConsumer> {
    let bootstrap = &args.bootstrap_server;
    let extra: Vec<(String, String)> = super::command_config(args.command_config.as_deref(), &[])?
        .into_iter()
        .collect();
    let mut config = super::reader_config(bootstrap, &extra);
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    BaseConsumer::from_config_and_context(&config, CliContext::default())
        .with_context(|| format!("cannot create a client for {bootstrap}"))
}

fn group_arg(args: &GroupsArgs) -> Result<&str> {
    args.group
        .as_deref()
        .ok_or_else(|| anyhow!("--group is required with --describe and --reset-offsets"))
}

/// `--list`: one group id per line, sorted.
pub fn list(args: &GroupsArgs, out: &mut String) -> Result<()> {
    let client = consumer(args, "sluice-groups-cli")?;
    let groups = client
        .fetch_group_list(None, TIMEOUT)
        .with_context(|| format!("cannot list groups on {}", args.bootstrap_server))?;
    let names: BTreeSet<&str> = groups.groups().iter().map(|g| g.name()).collect();
    for name in names {
        let _ = writeln!(out, "{name}");
    }
    Ok(())
}

/// One member of a group, with the partitions it was assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
struct MemberView {
    id: String,
    client_id: String,
    host: String,
    partitions: BTreeSet<(String, i32)>,
}

struct GroupView {
    state: String,
    members: Vec<MemberView>,
}

fn group_view(client: &BaseConsumer, group: &str) -> Result<GroupView> {
    let list = client
        .fetch_group_list(Some(group), TIMEOUT)
        .with_context(|| format!("cannot describe group '{group}'"))?;
    let Some(info) = list.groups().iter().find(|g| g.name() == group) else {
        return Ok(GroupView {
            state: "Dead".to_owned(),
            members: Vec::new(),
        });
    };
    let members = info
        .members()
        .iter()
        .map(|m| MemberView {
            id: m.id().to_owned(),
            client_id: m.client_id().to_owned(),
            host: m.client_host().to_owned(),
            partitions: m
                .assignment()
                .and_then(decode_assignment)
                .unwrap_or_default(),
        })
        .collect();
    Ok(GroupView {
        state: info.state().to_owned(),
        members,
    })
}

/// Reads a consumer's assignment (`ConsumerProtocolAssignment`: version, then topics with
/// their partitions); `None` if it is not one.
fn decode_assignment(bytes: &[u8]) -> Option<BTreeSet<(String, i32)>> {
    struct Reader<'a>(&'a [u8]);
    impl Reader<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            (self.0.len() >= n).then(|| {
                let (head, tail) = self.0.split_at(n);
                self.0 = tail;
                head
            })
        }
        fn i16(&mut self) -> Option<i16> {
            Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
        }
        fn i32(&mut self) -> Option<i32> {
            Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
        }
    }
    let mut reader = Reader(bytes);
    let version = reader.i16()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let mut assigned = BTreeSet::new();
    for _ in 0..reader.i32()?.max(0) {
        let len = reader.i16()?.max(0) as usize;
        let topic = String::from_utf8(reader.take(len)?.to_vec()).ok()?;
        for _ in 0..reader.i32()?.max(0) {
            assigned.insert((topic.clone(), reader.i32()?));
        }
    }
    Some(assigned)
}

/// Every partition of every topic, from the broker's metadata.
fn all_partitions(client: &BaseConsumer) -> Result<Vec<(String, i32)>> {
    let metadata = client
        .fetch_metadata(None, TIMEOUT)
        .context("cannot read topic metadata")?;
    Ok(metadata
        .topics()
        .iter()
        .flat_map(|t| {
            t.partitions()
                .iter()
                .map(move |p| (t.name().to_owned(), p.id()))
        })
        .collect())
}

/// The group's committed offsets among `partitions`.
fn committed(
    client: &BaseConsumer,
    partitions: &[(String, i32)],
) -> Result<BTreeMap<(String, i32), i64>> {
    let mut tpl = TopicPartitionList::new();
    for (topic, partition) in partitions {
        tpl.add_partition(topic, *partition);
    }
    let committed = client
        .committed_offsets(tpl, TIMEOUT)
        .context("cannot fetch the group's committed offsets")?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
            _ => None,
        })
        .collect())
}

/// `--describe` of a Connect cluster's group (protocol type `connect`): its workers, each with
/// its REST URL and what it was assigned, decoded from Kafka Connect's member metadata and
/// assignment. `None` when `group` is not such a group.
fn describe_connect_group(client: &BaseConsumer, group: &str) -> Result<Option<String>> {
    use crate::cluster::protocol::{ConnectAssignment, WorkerMetadata};
    let list = client
        .fetch_group_list(Some(group), TIMEOUT)
        .with_context(|| format!("cannot describe group '{group}'"))?;
    let Some(info) = list
        .groups()
        .iter()
        .find(|g| g.name() == group && g.protocol_type() == "connect")
    else {
        return Ok(None);
    };
    let mut out = String::new();
    let assignments: Vec<Option<ConnectAssignment>> = info
        .members()
        .iter()
        .map(|m| {
            m.assignment()
                .and_then(|a| ConnectAssignment::decode(a).ok())
        })
        .collect();
    let leader = assignments.iter().flatten().next();
    let _ = writeln!(
        out,
        "\nConnect group '{group}' ({}, protocol {}), {} worker(s){}\n",
        info.state(),
        info.protocol(),
        info.members().len(),
        leader.map_or(String::new(), |a| format!(
            ", leader {} at {}, config offset {}",
            a.leader, a.leader_url, a.config_offset
        ))
    );
    let mut table = vec![[
        "GROUP",
        "MEMBER-ID",
        "HOST",
        "CLIENT-ID",
        "URL",
        "CONNECTORS",
        "TASKS",
    ]
    .map(str::to_owned)
    .to_vec()];
    for (m, assignment) in info.members().iter().zip(&assignments) {
        let metadata = m.metadata().and_then(|b| WorkerMetadata::decode(b).ok());
        let url = metadata.as_ref().map_or("-".to_owned(), |w| w.url.clone());
        // Incremental cooperative assignment: a member keeps what it had at the join (its
        // metadata's allocation) less what was revoked, plus what this generation gave it.
        let held = metadata.and_then(|w| w.allocation);
        let list = |items: BTreeSet<String>| {
            if items.is_empty() {
                "-".to_owned()
            } else {
                items.into_iter().collect::<Vec<_>>().join(",")
            }
        };
        let (connectors, tasks) = assignment.as_ref().map_or_else(
            || ("-".to_owned(), "-".to_owned()),
            |a| {
                let mut connectors: BTreeSet<String> = held
                    .iter()
                    .flat_map(|h| h.connectors.iter().cloned())
                    .filter(|c| !a.revoked_connectors.contains(c))
                    .collect();
                connectors.extend(a.connectors.iter().cloned());
                let mut tasks: BTreeSet<String> = held
                    .iter()
                    .flat_map(|h| h.tasks.iter())
                    .filter(|t| !a.revoked_tasks.contains(t))
                    .map(ToString::to_string)
                    .collect();
                tasks.extend(a.tasks.iter().map(ToString::to_string));
                (list(connectors), list(tasks))
            },
        );
        table.push(vec![
            group.to_owned(),
            m.id().to_owned(),
            m.client_host().to_owned(),
            m.client_id().to_owned(),
            url,
            connectors,
            tasks,
        ]);
    }
    write_table(&mut out, &table);
    Ok(Some(out))
}

/// `--describe`: the columns of `kafka-consumer-groups --describe`; for a Connect cluster's
/// group, its workers and their assignments instead.
pub fn describe(args: &GroupsArgs, out: &mut String) -> Result<()> {
    let group = group_arg(args)?;
    let client = consumer(args, group)?;
    if let Some(text) = describe_connect_group(&client, group)? {
        out.push_str(&text);
        return Ok(());
    }
    let view = group_view(&client, group)?;
    let offsets = committed(&client, &all_partitions(&client)?)?;
    if view.state == "Dead" && offsets.is_empty() {
        bail!("consumer group '{group}' does not exist");
    }
    let mut rows: BTreeMap<(String, i32), Option<&MemberView>> =
        offsets.keys().map(|k| (k.clone(), None)).collect();
    for member in &view.members {
        for tp in &member.partitions {
            rows.insert(tp.clone(), Some(member));
        }
    }
    if view.members.is_empty() {
        let _ = writeln!(out, "\nConsumer group '{group}' has no active members.\n");
    } else {
        let _ = writeln!(out);
    }
    let mut table = vec![[
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    .map(str::to_owned)
    .to_vec()];
    for ((topic, partition), member) in &rows {
        let (_, end) = client
            .fetch_watermarks(topic, *partition, TIMEOUT)
            .with_context(|| format!("cannot read the end offset of {topic}-{partition}"))?;
        let current = offsets.get(&(topic.clone(), *partition)).copied();
        table.push(vec![
            group.to_owned(),
            topic.clone(),
            partition.to_string(),
            current.map_or("-".to_owned(), |c| c.to_string()),
            end.to_string(),
            current.map_or("-".to_owned(), |c| (end - c).max(0).to_string()),
            member.map_or("-".to_owned(), |m| m.id.clone()),
            member.map_or("-".to_owned(), |m| m.host.clone()),
            member.map_or("-".to_owned(), |m| m.client_id.clone()),
        ]);
    }
    write_table(out, &table);
    Ok(())
}

fn write_table(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join(" ").trim_end());
    }
}

/// Parses `--to-datetime`: `YYYY-MM-DDTHH:mm:SS[.sss]` with an optional `Z` or `±HH:MM`;
/// without one it is local time, as in `kafka-consumer-groups`. Milliseconds since the epoch.
pub fn parse_datetime(value: &str) -> Result<i64> {
    use chrono::{DateTime, Local, NaiveDateTime, TimeZone};
    if let Ok(with_zone) = DateTime::parse_from_rfc3339(value) {
        return Ok(with_zone.timestamp_millis());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(value, format) {
            let local = Local
                .from_local_datetime(&naive)
                .earliest()
                .ok_or_else(|| {
                    anyhow!("--to-datetime '{value}' does not exist in the local time zone")
                })?;
            return Ok(local.timestamp_millis());
        }
    }
    bail!("--to-datetime '{value}' is not a date-time: use YYYY-MM-DDTHH:mm:SS.sss, optionally followed by Z or +HH:MM")
}

/// `--topic` values: `topic` or `topic:0,2`.
fn parse_topic_arg(value: &str) -> Result<(String, Option<Vec<i32>>)> {
    match value.split_once(':') {
        None => Ok((value.to_owned(), None)),
        Some((topic, list)) => {
            let partitions = list
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .map_err(|_| anyhow!("--topic '{value}': partition '{p}' is not a number (use topic or topic:0,1)"))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((topic.to_owned(), Some(partitions)))
        }
    }
}

/// The new offset of one partition for the chosen strategy, clamped into `low..=high`.
pub fn new_offset(
    args: &GroupsArgs,
    current: Option<i64>,
    low: i64,
    high: i64,
    at_time: Option<i64>,
) -> Result<i64> {
    let target = if args.to_earliest {
        low
    } else if args.to_latest {
        high
    } else if let Some(offset) = args.to_offset {
        offset
    } else if let Some(shift) = args.shift_by {
        current.unwrap_or(low).saturating_add(shift)
    } else if args.to_datetime.is_some() {
        // No record at or after the time: the end of the log, as Kafka does.
        at_time.unwrap_or(high)
    } else {
        bail!("--reset-offsets needs one of --to-earliest, --to-latest, --to-offset, --shift-by, --to-datetime");
    };
    Ok(target.clamp(low, high))
}

/// `--reset-offsets`: prints GROUP TOPIC PARTITION NEW-OFFSET; commits them with --execute.
pub fn reset_offsets(args: &GroupsArgs, out: &mut String) -> Result<()> {
    let group = group_arg(args)?;
    if args.topic.is_empty() && !args.all_topics {
        bail!("--reset-offsets needs --topic <topic> (repeatable) or --all-topics");
    }
    let client = consumer(args, group)?;
    let view = group_view(&client, group)?;
    if !view.members.is_empty() || !matches!(view.state.as_str(), "Empty" | "Dead") {
        bail!(
            "consumer group '{group}' is {} with {} active member(s): offsets can only be reset while the group is inactive (stop its consumers first)",
            view.state,
            view.members.len()
        );
    }
    let everything = all_partitions(&client)?;
    let partitions: Vec<(String, i32)> = if args.all_topics {
        committed(&client, &everything)?.into_keys().collect()
    } else {
        let mut chosen = Vec::new();
        for value in &args.topic {
            let (topic, only) = parse_topic_arg(value)?;
            let existing: Vec<i32> = everything
                .iter()
                .filter(|(t, _)| *t == topic)
                .map(|(_, p)| *p)
                .collect();
            if existing.is_empty() {
                bail!("topic '{topic}' does not exist");
            }
            for partition in only.unwrap_or_else(|| existing.clone()) {
                if !existing.contains(&partition) {
                    bail!("topic '{topic}' has no partition {partition}");
                }
                chosen.push((topic.clone(), partition));
            }
        }
        chosen
    };
    if partitions.is_empty() {
        bail!("consumer group '{group}' has no committed offsets to reset (name the topics with --topic)");
    }
    let current = committed(&client, &partitions)?;
    let at_time = match &args.to_datetime {
        Some(value) => {
            let millis = parse_datetime(value)?;
            let mut query = TopicPartitionList::new();
            for (topic, partition) in &partitions {
                query.add_partition_offset(topic, *partition, Offset::Offset(millis))?;
            }
            let found = client
                .offsets_for_times(query, TIMEOUT)
                .context("cannot look up offsets by time")?;
            found
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some(((e.topic().to_owned(), e.partition()), o)),
                    _ => None,
                })
                .collect()
        }
        None => BTreeMap::new(),
    };
    let mut plan = TopicPartitionList::new();
    let mut table = vec![["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]
        .map(str::to_owned)
        .to_vec()];
    for (topic, partition) in &partitions {
        let (low, high) = client
            .fetch_watermarks(topic, *partition, TIMEOUT)
            .with_context(|| format!("cannot read the offsets of {topic}-{partition}"))?;
        let key = (topic.clone(), *partition);
        let offset = new_offset(
            args,
            current.get(&key).copied(),
            low,
            high,
            at_time.get(&key).copied(),
        )?;
        plan.add_partition_offset(topic, *partition, Offset::Offset(offset))?;
        table.push(vec![
            group.to_owned(),
            topic.clone(),
            partition.to_string(),
            offset.to_string(),
        ]);
    }
    let _ = writeln!(out);
    write_table(out, &table);
    if args.execute {
        client
            .commit(&plan, CommitMode::Sync)
            .with_context(|| format!("cannot commit the new offsets of group '{group}'"))?;
    } else {
        let _ = writeln!(
            out,
            "\n(dry run: nothing committed; add --execute to apply)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::Message;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: GroupsArgs,
    }

    fn parse(line: &str) -> Result<GroupsArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("groups").chain(line.split_whitespace()))
            .map(|c| c.args)
    }

    #[test]
    fn arguments_follow_kafka_consumer_groups() {
        let args =
            parse("--bootstrap-server b:1 --reset-offsets --group g --topic t:0,2 --shift-by -5")
                .unwrap();
        assert_eq!(args.shift_by, Some(-5));
        assert!(!args.execute, "dry run by default");
        assert!(parse("--describe").is_err(), "--describe needs --group");
        assert!(
            parse("--reset-offsets --group g --topic t").is_err(),
            "a reset needs a target"
        );
        assert!(parse("--reset-offsets --group g --to-earliest --to-latest --topic t").is_err());
        assert!(parse("--reset-offsets --group g --to-earliest --topic t --all-topics").is_err());
        assert!(
            parse("--reset-offsets --group g --to-earliest --topic t --dry-run --execute").is_err()
        );
        assert_eq!(
            parse_topic_arg("t:0,2").unwrap(),
            ("t".to_owned(), Some(vec![0, 2]))
        );
        let err = parse_topic_arg("t:x").unwrap_err().to_string();
        assert!(err.contains("'x'"), "{err}");
    }

    #[test]
    fn datetimes_with_and_without_zones() {
        assert_eq!(parse_datetime("1970-01-01T00:00:01.500Z").unwrap(), 1_500);
        assert_eq!(parse_datetime("1970-01-01T01:00:00+01:00").unwrap(), 0);
        let local = parse_datetime("2024-06-01T12:00:00.000").unwrap();
        let utc = parse_datetime("2024-06-01T12:00:00Z").unwrap();
        assert!(
            (local - utc).abs() <= 14 * 3_600_000,
            "local time is within a day of UTC"
        );
        let err = parse_datetime("yesterday").unwrap_err().to_string();
        assert!(err.contains("YYYY-MM-DDTHH:mm:SS"), "{err}");
    }

    #[test]
    fn new_offsets_are_clamped_into_the_log() {
        let shift = parse("--reset-offsets --group g --all-topics --shift-by -50").unwrap();
        assert_eq!(new_offset(&shift, Some(30), 10, 100, None).unwrap(), 10);
        let to = parse("--reset-offsets --group g --all-topics --to-offset 500").unwrap();
        assert_eq!(new_offset(&to, None, 10, 100, None).unwrap(), 100);
        let time =
            parse("--reset-offsets --group g --all-topics --to-datetime 2024-01-01T00:00:00Z")
                .unwrap();
        assert_eq!(new_offset(&time, None, 0, 100, Some(42)).unwrap(), 42);
        assert_eq!(new_offset(&time, None, 0, 100, None).unwrap(), 100);
    }

    #[test]
    fn assignments_are_decoded() {
        let mut bytes = vec![0, 1, 0, 0, 0, 1, 0, 6];
        bytes.extend_from_slice(b"orders");
        bytes.extend_from_slice(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 255, 255, 255, 255]);
        let decoded = decode_assignment(&bytes).unwrap();
        assert_eq!(
            decoded,
            BTreeSet::from([("orders".to_owned(), 0), ("orders".to_owned(), 3)])
        );
        assert!(decode_assignment(&[0]).is_none());
    }

    /// The whole tool against the bundled broker with a real consumer group.
    #[test]
    fn list_describe_and_reset_against_a_real_broker() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let broker = runtime
            .block_on(sluice_broker::Broker::start(sluice_broker::BrokerConfig {
                group_initial_rebalance_delay_ms: 0,
                num_partitions: 2,
                ..sluice_broker::BrokerConfig::new("127.0.0.1:0", dir.path())
            }))
            .unwrap();
        let bootstrap = broker.bootstrap_servers();
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()
            .unwrap();
        for i in 0..20 {
            let key = format!("k{i}");
            producer
                .send(
                    BaseRecord::<String, String>::to("cli-topic")
                        .key(&key)
                        .partition(i % 2)
                        .payload(&key),
                )
                .unwrap();
        }
        producer.flush(TIMEOUT).unwrap();

        let member: rdkafka::consumer::BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "cli-group")
            .set("client.id", "cli-test-consumer")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        member.subscribe(&["cli-topic"]).unwrap();
        let mut read = 0;
        let deadline = std::time::Instant::now() + TIMEOUT;
        while read < 7 {
            assert!(
                std::time::Instant::now() < deadline,
                "the consumer read nothing"
            );
            if let Some(Ok(message)) = member.poll(Duration::from_millis(100)) {
                if message.partition() == 0 && read < 7 {
                    read += 1;
                    member.commit_message(&message, CommitMode::Sync).unwrap();
                }
            }
        }
        let base = format!("--bootstrap-server {bootstrap}");
        let mut out = String::new();
        list(&parse(&format!("{base} --list")).unwrap(), &mut out).unwrap();
        assert!(out.lines().any(|l| l == "cli-group"), "{out}");

        let mut out = String::new();
        describe(
            &parse(&format!("{base} --describe --group cli-group")).unwrap(),
            &mut out,
        )
        .unwrap();
        let row = out
            .lines()
            .find(|l| l.starts_with("cli-group") && l.split_whitespace().nth(2) == Some("0"))
            .unwrap_or_else(|| panic!("no row for partition 0:\n{out}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[1..6], ["cli-topic", "0", "7", "10", "3"], "{out}");
        assert!(cells[6].starts_with("cli-test-consumer-"), "{out}");
        assert_eq!(cells[7], "/127.0.0.1");
        assert_eq!(cells[8], "cli-test-consumer");

        let reset =
            format!("{base} --reset-offsets --group cli-group --topic cli-topic:0 --to-earliest");
        let err = reset_offsets(&parse(&reset).unwrap(), &mut String::new()).unwrap_err();
        assert!(err.to_string().contains("active member"), "{err}");

        member.unsubscribe();
        drop(member);
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let mut out = String::new();
            let args = parse(&reset).unwrap();
            match reset_offsets(&args, &mut out) {
                Ok(()) => {
                    assert!(out.contains("dry run"), "{out}");
                    assert!(
                        out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                            == ["cli-group", "cli-topic", "0", "0"]),
                        "{out}"
                    );
                    break;
                }
                Err(e) if std::time::Instant::now() < deadline => {
                    assert!(e.to_string().contains("active member"), "{e}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("the group never became inactive: {e}"),
            }
        }
        // The dry run changed nothing.
        let mut out = String::new();
        describe(
            &parse(&format!("{base} --describe --group cli-group")).unwrap(),
            &mut out,
        )
        .unwrap();
        assert!(out.contains("has no active members"), "{out}");
        assert!(
            out.lines().any(|l| l.split_whitespace().take(4).eq([
                "cli-group",
                "cli-topic",
                "0",
                "7"
            ])),
            "{out}"
        );

        let mut out = String::new();
        let shift = format!(
            "{base} --reset-offsets --group cli-group --all-topics --shift-by -2 --execute"
        );
        reset_offsets(&parse(&shift).unwrap(), &mut out).unwrap();
        let mut out = String::new();
        describe(
            &parse(&format!("{base} --describe --group cli-group")).unwrap(),
            &mut out,
        )
        .unwrap();
        assert!(
            out.lines().any(|l| l.split_whitespace().take(6).eq([
                "cli-group",
                "cli-topic",
                "0",
                "5",
                "10",
                "5"
            ])),
            "{out}"
        );

        let mut out = String::new();
        let latest = format!(
            "{base} --reset-offsets --group cli-group --topic cli-topic --to-latest --execute"
        );
        reset_offsets(&parse(&latest).unwrap(), &mut out).unwrap();
        let mut out = String::new();
        describe(
            &parse(&format!("{base} --describe --group cli-group")).unwrap(),
            &mut out,
        )
        .unwrap();
        for partition in ["0", "1"] {
            assert!(
                out.lines().any(|l| l.split_whitespace().take(6).eq([
                    "cli-group",
                    "cli-topic",
                    partition,
                    "10",
                    "10",
                    "0"
                ])),
                "{out}"
            );
        }
        let mut out = String::new();
        let by_time = format!("{base} --reset-offsets --group cli-group --topic cli-topic --to-datetime 2000-01-01T00:00:00Z --execute");
        reset_offsets(&parse(&by_time).unwrap(), &mut out).unwrap();
        assert!(
            out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["cli-group", "cli-topic", "1", "0"]),
            "{out}"
        );

        let missing = describe(
            &parse(&format!("{base} --describe --group nobody")).unwrap(),
            &mut String::new(),
        );
        assert!(missing.unwrap_err().to_string().contains("does not exist"));
        runtime.block_on(broker.shutdown()).unwrap();
    }
}
