//! Command-line tools a Kafka user reaches for, each in its own module:
//! - [`broker`]: `sluice broker`, the bundled broker as a server process.
//! - [`topics`]: `sluice topics`, the `kafka-topics` look-alike.
//! - [`produce`]: `sluice produce`, the `kafka-console-producer` look-alike.
//! - [`consume`]: `sluice consume`, the `kafka-console-consumer` look-alike.
//! - [`groups`]: `sluice groups`, the `kafka-consumer-groups` look-alike.
//! - [`registry`]: `sluice registry`, the Schema Registry as a server of its own.
//! - [`acls`]: `sluice acls`, the `kafka-acls` look-alike.
//! - [`configs`]: `sluice configs`, `kafka-configs` for users' SCRAM credentials.
//! - `refusal`: asks the broker for its reason when it refuses an admin request, as the
//!   rdkafka crate passes on only the error code.
//!
//! The client tools talk to any Kafka-compatible broker through librdkafka. Every one takes
//! `--bootstrap-server <HOST:PORT>`, also read from [`BOOTSTRAP_ENV`], and checks that the
//! broker accepts connections before anything else ([`check_reachable`]), so a wrong address
//! is one error line and a non-zero exit, not librdkafka retrying for minutes. librdkafka's
//! own log lines go to the `librdkafka` tracing target at debug level ([`CliContext`]):
//! `SLUICE_LOG=librdkafka=debug` shows them. TLS and SASL come from a Kafka client properties
//! file (`--command-config`, or `--producer.config` / `--consumer.config`), as for Kafka's
//! tools; see [`command_config`].

pub mod acls;
pub mod broker;
pub mod configs;
pub mod consume;
pub mod groups;
pub mod produce;
mod refusal;
pub mod registry;
pub mod topics;

use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

/// Default `--bootstrap-server`: the bundled broker's default listen address.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// Environment variable read by every `--bootstrap-server` flag; the worker's
/// `bootstrap.servers` setting uses the same variable.
pub const BOOTSTRAP_ENV: &str = "SLUICE_BOOTSTRAP_SERVERS";

/// How long the reachability check waits for one address to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks that at least one of the comma-separated `bootstrap` addresses accepts a TCP
/// connection, so that a wrong address fails at once with one line.
///
/// # Errors
/// When no address resolves or accepts a connection; the message names the addresses.
pub fn check_reachable(bootstrap: &str) -> anyhow::Result<()> {
    let mut failures = Vec::new();
    for entry in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        // librdkafka accepts `PLAINTEXT://host:port` as well as `host:port`.
        let address = entry.rsplit_once("://").map_or(entry, |(_, a)| a);
        let resolved = match address.to_socket_addrs() {
            Ok(resolved) => resolved.collect::<Vec<_>>(),
            Err(e) => {
                failures.push(format!("{address}: {e}"));
                continue;
            }
        };
        for socket in resolved {
            match TcpStream::connect_timeout(&socket, CONNECT_TIMEOUT) {
                Ok(_) => return Ok(()),
                Err(e) => failures.push(format!("{socket}: {e}")),
            }
        }
    }
    if failures.is_empty() {
        bail!("--bootstrap-server is empty: give host:port (or set {BOOTSTRAP_ENV})");
    }
    bail!(
        "cannot connect to a broker at {bootstrap} ({}); start one with `sluice broker` or \
         `sluice worker`, or name a running one with --bootstrap-server or {BOOTSTRAP_ENV}",
        failures.join("; ")
    )
}

/// The librdkafka client context of the CLI tools: librdkafka's log lines and global errors go
/// to tracing at debug level instead of stderr, and "all brokers down" events are counted so
/// a tool can stop with one line when its broker goes away.
#[derive(Debug, Clone, Default)]
pub struct CliContext {
    watch: Arc<BrokerWatch>,
}

#[derive(Debug, Default)]
struct BrokerWatch {
    all_brokers_down: AtomicU64,
    last_error: Mutex<Option<String>>,
    changed: tokio::sync::Notify,
}

impl CliContext {
    /// How many times librdkafka has reported every broker down so far.
    pub fn all_brokers_down(&self) -> u64 {
        self.watch.all_brokers_down.load(Ordering::SeqCst)
    }

    /// Waits for the next "all brokers down" report.
    pub async fn brokers_went_down(&self) {
        self.watch.changed.notified().await;
    }

    /// The error to print when the broker at `bootstrap` went away, with librdkafka's last
    /// connection error as the reason.
    pub fn broker_lost(&self, bootstrap: &str) -> anyhow::Error {
        let reason = self
            .watch
            .last_error
            .lock()
            .map(|e| e.clone())
            .unwrap_or_default()
            .unwrap_or_else(|| "all brokers are down".to_owned());
        anyhow::anyhow!("lost the connection to the broker at {bootstrap}: {reason}")
    }
}

impl ClientContext for CliContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        tracing::debug!(target: "librdkafka", ?level, facility = fac, "{log_message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.watch.all_brokers_down.fetch_add(1, Ordering::SeqCst);
            self.watch.changed.notify_waiters();
        } else if let Ok(mut last) = self.watch.last_error.lock() {
            *last = Some(reason.to_owned());
        }
    }
}

impl ConsumerContext for CliContext {}

/// Splits `key=value` (as given to `--config`, `--property`, `--producer-property`).
///
/// # Errors
/// When there is no `=` or the key is empty.
pub fn parse_key_value(flag: &str, item: &str) -> anyhow::Result<(String, String)> {
    match item.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => bail!("{flag} expects key=value (got '{item}')"),
    }
}

/// Builds an rdkafka client config with the bootstrap servers and extra properties.
pub(crate) fn client_config(bootstrap: &str, extra: &[(String, String)]) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("log.connection.close", "false");
    for (key, value) in extra {
        config.set(key, value);
    }
    config
}

/// Client config for a tool that only reads: it must never create the topic it names
/// (librdkafka's admin clients and producers ask the broker to auto-create by default).
pub(crate) fn reader_config(bootstrap: &str, extra: &[(String, String)]) -> rdkafka::ClientConfig {
    let mut config = client_config(bootstrap, &[]);
    config.set("allow.auto.create.topics", "false");
    for (key, value) in extra {
        config.set(key, value);
    }
    config
}

/// How long an admin request of `sluice acls` / `sluice configs` may take.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The properties of a Kafka client properties file (`--command-config`), in librdkafka's
/// names (see [`crate::client_security::librdkafka_properties`]), then `extra` (`key=value`
/// flags such as `--command-property`) on top.
///
/// # Errors
/// An unreadable file, or properties librdkafka cannot use (JKS stores and the like).
pub fn command_config(
    path: Option<&std::path::Path>,
    extra: &[(String, String)],
) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut out = match path {
        Some(path) => {
            let java = crate::client_security::read_properties_file(path)
                .map_err(|e| anyhow::anyhow!("--command-config: {e}"))?;
            crate::client_security::librdkafka_properties(&java)
                .map_err(|e| anyhow::anyhow!("--command-config {}: {e}", path.display()))?
        }
        None => std::collections::BTreeMap::new(),
    };
    for (k, v) in extra {
        out.insert(k.clone(), v.clone());
    }
    Ok(out)
}

/// A connection for the protocol-level admin tools, secured and authenticated as `props` say,
/// to the first of `bootstrap` that answers, speaking each API of `wanted`.
///
/// # Errors
/// Bad security properties, or no broker could be reached or authenticated with.
pub(crate) async fn admin_connection(
    bootstrap: &str,
    props: &std::collections::BTreeMap<String, String>,
    wanted: &[(kafka_protocol::messages::ApiKey, i16, i16)],
) -> anyhow::Result<crate::cluster::membership::Connection> {
    let security = crate::client_security::ClientSecurity::from_properties(props)
        .map_err(|e| anyhow::anyhow!("--command-config: {e}"))?;
    let mut failures = Vec::new();
    for entry in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let address = entry.rsplit_once("://").map_or(entry, |(_, a)| a);
        match crate::cluster::membership::Connection::open_for(
            address,
            "sluice-cli",
            &security,
            ADMIN_TIMEOUT,
            wanted,
        )
        .await
        {
            Ok(conn) => return Ok(conn),
            Err(e) => failures.push(e.to_string()),
        }
    }
    bail!(
        "cannot use a broker at {bootstrap}: {}",
        failures.join("; ")
    )
}

/// Runs a future on a fresh multi-threaded runtime.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(future))
}
