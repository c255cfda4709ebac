//! `sluice consume`: print records like Kafka's `kafka-console-consumer`.
//!
//! Reads the given partition (or every partition of the topic) from the latest offset, the
//! beginning (`--from-beginning`) or `--offset`, without a consumer group. `--property
//! print.key=true` (also `print.offset`, `print.partition`, `print.timestamp`,
//! `print.headers`, `print.value`, `key.separator`, `headers.separator`, `null.literal`)
//! chooses the columns, printed in Kafka's order: timestamp, partition, offset, headers,
//! key, value.
//!
//! Avro records in Confluent's wire format print as JSON when a Schema Registry is named, as
//! with Confluent's `kafka-avro-console-consumer`: `--property schema.registry.url=...` (values
//! are then read as Avro) or `--value-format avro` / `--key-format avro` (the bundled registry,
//! `http://127.0.0.1:8081`, unless the property names another).

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::{parse_key_value, CliContext, BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP};

/// Flags of `sluice consume` (named as in `kafka-console-consumer`).
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Broker to connect to (host:port[,host:port...]).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_BOOTSTRAP, env = BOOTSTRAP_ENV)]
    pub bootstrap_server: String,
    /// Kafka client properties file (security.protocol, sasl.*, ssl.*), as for Kafka's tools.
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub consumer_config: Option<std::path::PathBuf>,
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Start at the earliest offset instead of the latest.
    #[arg(long)]
    pub from_beginning: bool,
    /// Read only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Start offset: earliest, latest or a number (needs --partition for a number).
    #[arg(long)]
    pub offset: Option<String>,
    /// Stop after this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Stop when no record arrives for this many milliseconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Output column, key=value (repeatable): print.timestamp, print.partition, print.offset,
    /// print.headers, print.key, print.value (true/false), key.separator, headers.separator,
    /// null.literal.
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// An extra librdkafka consumer property, key=value (repeatable).
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    pub consumer_properties: Vec<String>,
    /// How values are printed: string, or avro (Confluent's wire format, decoded through the
    /// Schema Registry; the default when --property schema.registry.url is given).
    #[arg(long, value_name = "FORMAT")]
    pub value_format: Option<String>,
    /// How keys are printed: string or avro.
    #[arg(long, value_name = "FORMAT")]
    pub key_format: Option<String>,
}

/// Which columns to print and how.
#[derive(Debug, Clone)]
pub struct OutputFormat {
    print_timestamp: bool,
    print_partition: bool,
    print_offset: bool,
    print_headers: bool,
    print_key: bool,
    print_value: bool,
    key_separator: String,
    headers_separator: String,
    null_literal: String,
    /// `schema.registry.url`, when given.
    registry_url: Option<String>,
    key_avro: Option<std::sync::Arc<crate::converter::AvroConverter>>,
    value_avro: Option<std::sync::Arc<crate::converter::AvroConverter>>,
}

impl OutputFormat {
    /// Reads `--property` items.
    ///
    /// # Errors
    /// Unknown names or values that are not true/false.
    pub fn from_properties(items: &[String]) -> anyhow::Result<Self> {
        let mut props: HashMap<String, String> = HashMap::new();
        for item in items {
            let (k, v) = parse_key_value("--property", item)?;
            props.insert(k, v);
        }
        let known = [
            "print.timestamp",
            "print.partition",
            "print.offset",
            "print.headers",
            "print.key",
            "print.value",
            "key.separator",
            "headers.separator",
            "null.literal",
            "schema.registry.url",
        ];
        if let Some(bad) = props.keys().find(|k| !known.contains(&k.as_str())) {
            bail!(
                "--property {bad} is not supported (supported: {})",
                known.join(", ")
            );
        }
        let flag = |name: &str, default: bool| -> anyhow::Result<bool> {
            match props.get(name).map(String::as_str) {
                None => Ok(default),
                Some("true") => Ok(true),
                Some("false") => Ok(false),
                Some(other) => bail!("--property {name} must be true or false (got '{other}')"),
            }
        };
        Ok(Self {
            print_timestamp: flag("print.timestamp", false)?,
            print_partition: flag("print.partition", false)?,
            print_offset: flag("print.offset", false)?,
            print_headers: flag("print.headers", false)?,
            print_key: flag("print.key", false)?,
            print_value: flag("print.value", true)?,
            key_separator: props
                .get("key.separator")
                .cloned()
                .unwrap_or_else(|| "\t".to_owned()),
            headers_separator: props
                .get("headers.separator")
                .cloned()
                .unwrap_or_else(|| ",".to_owned()),
            null_literal: props
                .get("null.literal")
                .cloned()
                .unwrap_or_else(|| "null".to_owned()),
            registry_url: props.get("schema.registry.url").cloned(),
            key_avro: None,
            value_avro: None,
        })
    }

    /// Decodes keys and values as `key_format` / `value_format` (`string` or `avro`; values
    /// default to avro when `schema.registry.url` is set).
    ///
    /// # Errors
    /// An unknown format or a bad registry URL.
    pub fn with_formats(
        mut self,
        key_format: Option<&str>,
        value_format: Option<&str>,
    ) -> anyhow::Result<Self> {
        let default_value = if self.registry_url.is_some() {
            "avro"
        } else {
            "string"
        };
        let url = self
            .registry_url
            .clone()
            .unwrap_or_else(|| crate::converter::DEFAULT_REGISTRY_URL.to_owned());
        let build = |flag: &str, format: &str, is_key: bool| -> anyhow::Result<Option<_>> {
            match format.trim().to_ascii_lowercase().as_str() {
                "string" => Ok(None),
                "avro" => crate::converter::AvroConverter::from_options(
                    is_key,
                    "",
                    &[("schema.registry.url", url.as_str())],
                )
                .map(|c| Some(std::sync::Arc::new(c)))
                .map_err(|e| anyhow::anyhow!("{flag}: {e}")),
                other => bail!("{flag} must be string or avro (got '{other}')"),
            }
        };
        self.key_avro = build("--key-format", key_format.unwrap_or("string"), true)?;
        self.value_avro = build(
            "--value-format",
            value_format.unwrap_or(default_value),
            false,
        )?;
        Ok(self)
    }

    /// Formats one record as a line (without the newline).
    pub fn format<M: Message>(&self, message: &M) -> String {
        let text = |b: Option<&[u8]>| match b {
            Some(b) => String::from_utf8_lossy(b).into_owned(),
            None => self.null_literal.clone(),
        };
        let mut columns = Vec::new();
        if self.print_timestamp {
            columns.push(match message.timestamp() {
                Timestamp::CreateTime(t) => format!("CreateTime:{t}"),
                Timestamp::LogAppendTime(t) => format!("LogAppendTime:{t}"),
                Timestamp::NotAvailable => "NO_TIMESTAMP".to_owned(),
            });
        }
        if self.print_partition {
            columns.push(format!("Partition:{}", message.partition()));
        }
        if self.print_offset {
            columns.push(format!("Offset:{}", message.offset()));
        }
        if self.print_headers {
            let headers: Vec<String> = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| format!("{}:{}", h.key, text(h.value)))
                        .collect()
                })
                .unwrap_or_default();
            columns.push(if headers.is_empty() {
                "NO_HEADERS".to_owned()
            } else {
                headers.join(&self.headers_separator)
            });
        }
        let decoded = |avro: &Option<std::sync::Arc<crate::converter::AvroConverter>>,
                       bytes: Option<&[u8]>| match (avro, bytes) {
            (Some(c), Some(b)) => {
                use sluice_sdk::Converter;
                match c.decode_for(message.topic(), Some(b)) {
                    Ok((schema, value)) => sluice_sdk::json::value_to_json(
                        schema.as_deref(),
                        &value,
                        sluice_sdk::json::DecimalFormat::Numeric,
                    )
                    .map_or_else(|e| format!("<unprintable: {e}>"), |j| j.to_string()),
                    Err(e) => format!("<not Avro: {e}>"),
                }
            }
            _ => text(bytes),
        };
        if self.print_key {
            columns.push(decoded(&self.key_avro, message.key()));
        }
        if self.print_value {
            columns.push(decoded(&self.value_avro, message.payload()));
        }
        columns.join(&self.key_separator)
    }
}

/// Runs `sluice consume`.
///
/// # Errors
/// Bad flags, an unknown topic, or a broker error while reading.
pub fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let format = OutputFormat::from_properties(&args.properties)?
        .with_formats(args.key_format.as_deref(), args.value_format.as_deref())?;
    // librdkafka refuses assign() without a group id; the group is never joined or
    // committed to (offsets come from the flags), as with kafka-console-consumer's
    // throw-away group.
    let mut extra = vec![
        (
            "group.id".to_owned(),
            format!("sluice-console-consumer-{}", std::process::id()),
        ),
        ("enable.auto.commit".to_owned(), "false".to_owned()),
        ("enable.auto.offset.store".to_owned(), "false".to_owned()),
        ("enable.partition.eof".to_owned(), "false".to_owned()),
    ];
    extra.extend(super::command_config(args.consumer_config.as_deref(), &[])?);
    for item in &args.consumer_properties {
        extra.push(parse_key_value("--consumer-property", item)?);
    }
    let start = match (args.offset.as_deref(), args.from_beginning) {
        (Some("earliest"), _) | (None, true) => Offset::Beginning,
        (Some("latest"), _) | (None, false) => Offset::End,
        (Some(n), _) => {
            let n: i64 = n.parse().with_context(|| {
                format!("--offset must be earliest, latest or a number (got '{n}')")
            })?;
            if args.partition.is_none() {
                bail!("--offset <number> needs --partition");
            }
            Offset::Offset(n)
        }
    };
    super::check_reachable(&args.bootstrap_server)?;
    let context = CliContext::default();
    let consumer: BaseConsumer<CliContext> = BaseConsumer::from_config_and_context(
        &super::reader_config(&args.bootstrap_server, &extra),
        context.clone(),
    )
    .context("cannot create the Kafka consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(&args.topic), Duration::from_secs(30))
        .with_context(|| format!("cannot fetch metadata from {}", args.bootstrap_server))?;
    let topic = metadata
        .topics()
        .first()
        .context("no metadata for the topic")?;
    match topic.error().map(RDKafkaErrorCode::from) {
        None => {}
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) => bail!(
            "topic '{}' does not exist on {} (create it with `sluice topics --create --topic {}`)",
            args.topic,
            args.bootstrap_server,
            args.topic
        ),
        Some(code) => bail!("topic '{}': {code}", args.topic),
    }
    let partitions: Vec<i32> = match args.partition {
        Some(p) => {
            if !topic.partitions().iter().any(|x| x.id() == p) {
                bail!("topic '{}' has no partition {p}", args.topic);
            }
            vec![p]
        }
        None => topic.partitions().iter().map(|p| p.id()).collect(),
    };
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        assignment.add_partition_offset(&args.topic, p, start)?;
    }
    consumer.assign(&assignment)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut idle = Duration::ZERO;
    let poll = Duration::from_millis(100);
    let down_before = context.all_brokers_down();
    while args.max_messages.is_none_or(|max| count < max) {
        if context.all_brokers_down() > down_before {
            out.flush()?;
            return Err(context.broker_lost(&args.bootstrap_server));
        }
        match consumer.poll(poll) {
            None => {
                out.flush()?;
                idle += poll;
                if idle_limit.is_some_and(|limit| idle >= limit) {
                    break;
                }
            }
            Some(Err(e)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) => {
                out.flush()?;
                return Err(context.broker_lost(&args.bootstrap_server));
            }
            // A dropped connection is retried by librdkafka; if the broker is gone for good,
            // "all brokers down" follows and ends the run above.
            Some(Err(e))
                if e.rdkafka_error_code() == Some(RDKafkaErrorCode::BrokerTransportFailure) =>
            {
                tracing::debug!(error = %e, "connection to the broker failed; retrying");
            }
            Some(Err(e)) => bail!("error while consuming: {e}"),
            Some(Ok(message)) => {
                idle = Duration::ZERO;
                writeln!(out, "{}", format.format(&message))?;
                count += 1;
            }
        }
    }
    out.flush()?;
    eprintln!("Processed a total of {count} messages");
    Ok(())
}
