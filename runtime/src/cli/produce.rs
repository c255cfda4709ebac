//! `sluice produce`: one record per input line, like Kafka's `kafka-console-producer`.
//!
//! Lines come from stdin or `--file`. With `--property parse.key=true` each line is split at
//! the first `key.separator` (default a tab) into key and value; with `parse.headers=true` a
//! leading `h1:v1,h2:v2<TAB>` part becomes headers. Exits once every record is acknowledged,
//! non-zero if any was refused.

use std::collections::{HashMap, VecDeque};
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use super::{parse_key_value, CliContext, BOOTSTRAP_ENV, DEFAULT_BOOTSTRAP};

/// Records awaiting acknowledgement before reading more input.
const MAX_PENDING: usize = 10_000;
/// How long the broker gets to answer the first metadata request.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the final flush may take.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Flags of `sluice produce` (named as in `kafka-console-producer`).
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Broker to connect to (host:port[,host:port...]).
    #[arg(long, value_name = "HOST:PORT", default_value = DEFAULT_BOOTSTRAP, env = BOOTSTRAP_ENV)]
    pub bootstrap_server: String,
    /// Kafka client properties file (security.protocol, sasl.*, ssl.*), as for Kafka's tools.
    #[arg(long = "producer.config", value_name = "FILE")]
    pub producer_config: Option<std::path::PathBuf>,
    /// Topic to write to.
    #[arg(long)]
    pub topic: String,
    /// Read lines from this file instead of stdin.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Line parsing: parse.key, key.separator, parse.headers, headers.delimiter,
    /// headers.separator, headers.key.separator, null.marker (repeatable key=value).
    #[arg(long = "property", value_name = "KEY=VALUE")]
    pub properties: Vec<String>,
    /// acks: -1/all (wait for durable storage), 1, or 0.
    #[arg(long, default_value = "-1", value_name = "ACKS")]
    pub request_required_acks: String,
    /// Compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression_codec: String,
    /// Send to this partition instead of letting the partitioner choose.
    #[arg(long)]
    pub partition: Option<i32>,
    /// An extra librdkafka producer property, key=value (repeatable).
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    pub producer_properties: Vec<String>,
}

/// How input lines become records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFormat {
    parse_key: bool,
    key_separator: String,
    parse_headers: bool,
    headers_delimiter: String,
    headers_separator: String,
    headers_key_separator: String,
    null_marker: Option<String>,
}

/// A record parsed from a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine {
    /// Record key.
    pub key: Option<String>,
    /// Record value (`None` for the null marker).
    pub value: Option<String>,
    /// Record headers in order.
    pub headers: Vec<(String, Option<String>)>,
}

impl LineFormat {
    /// Reads `--property` items.
    ///
    /// # Errors
    /// Unknown property names or malformed items.
    pub fn from_properties(items: &[String]) -> anyhow::Result<Self> {
        let mut props: HashMap<String, String> = HashMap::new();
        for item in items {
            let (k, v) = parse_key_value("--property", item)?;
            props.insert(k, v);
        }
        let known = [
            "parse.key",
            "key.separator",
            "parse.headers",
            "headers.delimiter",
            "headers.separator",
            "headers.key.separator",
            "null.marker",
        ];
        if let Some(bad) = props.keys().find(|k| !known.contains(&k.as_str())) {
            bail!(
                "--property {bad} is not supported (supported: {})",
                known.join(", ")
            );
        }
        let flag = |name: &str| -> anyhow::Result<bool> {
            match props.get(name).map(String::as_str) {
                None | Some("false") => Ok(false),
                Some("true") => Ok(true),
                Some(other) => bail!("--property {name} must be true or false (got '{other}')"),
            }
        };
        let text = |name: &str, default: &str| {
            props
                .get(name)
                .cloned()
                .unwrap_or_else(|| default.to_owned())
        };
        Ok(Self {
            parse_key: flag("parse.key")?,
            key_separator: text("key.separator", "\t"),
            parse_headers: flag("parse.headers")?,
            headers_delimiter: text("headers.delimiter", "\t"),
            headers_separator: text("headers.separator", ","),
            headers_key_separator: text("headers.key.separator", ":"),
            null_marker: props.get("null.marker").cloned(),
        })
    }

    /// Splits a line into headers, key and value.
    ///
    /// # Errors
    /// A line missing the separator its format requires.
    pub fn parse(&self, line: &str) -> anyhow::Result<ParsedLine> {
        let mut rest = line;
        let mut headers = Vec::new();
        if self.parse_headers {
            let (head, tail) = rest.split_once(&self.headers_delimiter).with_context(|| {
                format!(
                    "line has no headers delimiter {:?}: {line:?}",
                    self.headers_delimiter
                )
            })?;
            rest = tail;
            for item in head
                .split(&self.headers_separator)
                .filter(|s| !s.is_empty())
            {
                let (k, v) = match item.split_once(&self.headers_key_separator) {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (item.to_owned(), None),
                };
                let v = v.filter(|v| Some(v) != self.null_marker.as_ref());
                headers.push((k, v));
            }
        }
        let (key, value) = if self.parse_key {
            let (k, v) = rest.split_once(&self.key_separator).with_context(|| {
                format!(
                    "line has no key separator {:?}: {line:?}",
                    self.key_separator
                )
            })?;
            (Some(k.to_owned()), v.to_owned())
        } else {
            (None, rest.to_owned())
        };
        let is_null = |s: &str| self.null_marker.as_deref() == Some(s);
        Ok(ParsedLine {
            key: key.filter(|k| !is_null(k)),
            value: (!is_null(&value)).then_some(value),
            headers,
        })
    }
}

/// Runs `sluice produce`.
///
/// # Errors
/// Bad flags, unreadable input, or records the broker refused.
pub fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let format = LineFormat::from_properties(&args.properties)?;
    let acks = match args.request_required_acks.as_str() {
        "all" | "-1" => "all",
        "1" => "1",
        "0" => "0",
        other => bail!("--request-required-acks must be -1 (all), 1 or 0 (got '{other}')"),
    };
    let mut extra = vec![
        ("acks".to_owned(), acks.to_owned()),
        (
            "compression.codec".to_owned(),
            args.compression_codec.clone(),
        ),
        ("linger.ms".to_owned(), "5".to_owned()),
    ];
    extra.extend(super::command_config(args.producer_config.as_deref(), &[])?);
    for item in &args.producer_properties {
        extra.push(parse_key_value("--producer-property", item)?);
    }
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    };
    super::check_reachable(&args.bootstrap_server)?;
    let sent = super::block_on(async move {
        let context = CliContext::default();
        let producer: FutureProducer<CliContext> = FutureProducer::from_config_and_context(
            &super::client_config(&args.bootstrap_server, &extra),
            context.clone(),
        )
        .context("cannot create the Kafka producer")?;
        // Something accepted the connection; make sure it answers as a Kafka broker before
        // reading input, so a wrong port fails in bounded time instead of at delivery timeout.
        producer
            .client()
            .fetch_metadata(None, METADATA_TIMEOUT)
            .with_context(|| {
                format!(
                    "no Kafka broker answered at {} within {METADATA_TIMEOUT:?}",
                    args.bootstrap_server
                )
            })?;
        let bootstrap = args.bootstrap_server.as_str();
        let mut pending = VecDeque::new();
        let mut count = 0u64;
        for (n, line) in input.lines().enumerate() {
            let line = line.context("cannot read input")?;
            let parsed = format
                .parse(&line)
                .with_context(|| format!("input line {}", n + 1))?;
            let mut headers = OwnedHeaders::new();
            for (k, v) in &parsed.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
            let mut record: FutureRecord<'_, str, str> =
                FutureRecord::to(&args.topic).headers(headers);
            if let Some(key) = &parsed.key {
                record = record.key(key);
            }
            if let Some(value) = &parsed.value {
                record = record.payload(value);
            }
            if let Some(p) = args.partition {
                record = record.partition(p);
            }
            let delivery = producer.send_result(record).map_err(|(e, _)| {
                anyhow::anyhow!("cannot queue record from line {}: {e}", n + 1)
            })?;
            pending.push_back(delivery);
            count += 1;
            if pending.len() >= MAX_PENDING {
                let delivery = pending.pop_front().expect("non-empty");
                await_delivery(delivery, &context, bootstrap).await?;
            }
        }
        while let Some(delivery) = pending.pop_front() {
            await_delivery(delivery, &context, bootstrap).await?;
        }
        producer.flush(FLUSH_TIMEOUT).context("flush failed")?;
        anyhow::Ok(count)
    })??;
    tracing::debug!(records = sent, "produced");
    Ok(())
}

/// Waits for one record's acknowledgement; stops with one line when librdkafka reports every
/// broker down meanwhile (an idle producer may see its connection closed harmlessly, so only
/// an outage while a record waits counts).
async fn await_delivery(
    delivery: rdkafka::producer::DeliveryFuture,
    context: &CliContext,
    bootstrap: &str,
) -> anyhow::Result<()> {
    tokio::select! {
        result = delivery => match result {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => bail!("record refused: {e}"),
            Err(_) => bail!("producer closed before the record was acknowledged"),
        },
        () = context.brokers_went_down() => Err(context.broker_lost(bootstrap)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_headers_and_null_marker_are_parsed() {
        let format = LineFormat::from_properties(&[
            "parse.key=true".to_owned(),
            "key.separator=:".to_owned(),
            "parse.headers=true".to_owned(),
            "null.marker=NULL".to_owned(),
        ])
        .unwrap();
        let line = format.parse("h1:a,h2\tk1:v:1").unwrap();
        assert_eq!(line.key.as_deref(), Some("k1"));
        assert_eq!(line.value.as_deref(), Some("v:1"));
        assert_eq!(
            line.headers,
            vec![
                ("h1".to_owned(), Some("a".to_owned())),
                ("h2".to_owned(), None)
            ]
        );
        let line = format.parse("\tk:NULL").unwrap();
        assert_eq!(line.value, None);
        assert!(format.parse("\tno-separator").is_err());
        assert!(LineFormat::from_properties(&["parse.kee=true".to_owned()]).is_err());
    }
}
