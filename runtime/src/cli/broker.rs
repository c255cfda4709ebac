//! `sluice broker`: runs the bundled Kafka-wire broker until Ctrl-C or SIGTERM.
//!
//! Settings are read, later ones winning, from: built-in defaults, the TOML file given with
//! `--config` (keys as in [`sluice_broker::BrokerConfig`], e.g. `log_flush = "sync"`),
//! `SLUICE_<SETTING>` environment variables (e.g. `SLUICE_LOG_FLUSH=interval`,
//! `SLUICE_NUM_PARTITIONS=3`), and the `--listen` / `--data-dir` flags.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use sluice_broker::{Broker, BrokerConfig};
use tokio_util::sync::CancellationToken;

/// Prefix of the environment variables that override broker settings.
pub const ENV_PREFIX: &str = "SLUICE_";

/// Flags of `sluice broker`.
#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Address to listen on (host:port; port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: Option<String>,
    /// Directory for topic data and broker metadata.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML file with broker settings (the keys are listed at the end of --help).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the bundled Schema Registry (Confluent's REST API); empty: none.
    #[arg(long, value_name = "HOST:PORT", default_value = sluice_registry::DEFAULT_LISTEN)]
    pub schema_registry_listen: String,
}

/// The settings part of `sluice broker --help`: every key, with its environment variable.
pub fn settings_help() -> String {
    let mut out = String::from(
        "Broker settings, later sources winning: built-in defaults, the --config file (TOML,\n\
         e.g. `num_partitions = 3`), SLUICE_<KEY> environment variables, then the flags above.\n\n",
    );
    for name in BrokerConfig::FIELD_NAMES {
        let env = format!("{ENV_PREFIX}{}", name.to_ascii_uppercase());
        out.push_str(&format!("  {name:<34}[env: {env}]\n"));
    }
    out.push_str("\nWhat each one does, and its default: docs/broker.md in the repository.");
    out
}

/// Resolves the broker settings from defaults, file, environment and flags.
///
/// # Errors
/// An unreadable or invalid file, an unknown key, or a value of the wrong type; the message
/// names the setting.
pub fn load_config(
    args: &BrokerArgs,
    env: impl IntoIterator<Item = (String, String)>,
) -> anyhow::Result<BrokerConfig> {
    let mut builder = config::Config::builder();
    if let Some(path) = &args.config {
        builder = builder.add_source(
            config::File::from(path.as_path())
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    for (key, value) in env {
        let Some(name) = key.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let name = name.to_ascii_lowercase();
        if BrokerConfig::FIELD_NAMES.contains(&name.as_str()) {
            builder = builder
                .set_override(name, value)
                .context("invalid environment override")?;
        }
    }
    if let Some(listen) = &args.listen {
        builder = builder.set_override("listen", listen.clone())?;
    }
    if let Some(dir) = &args.data_dir {
        builder = builder.set_override("data_dir", dir.to_string_lossy().into_owned())?;
    }
    let source = args
        .config
        .as_ref()
        .map_or("defaults and environment".to_owned(), |p| {
            p.display().to_string()
        });
    let config: BrokerConfig = builder
        .build()
        .with_context(|| format!("cannot read broker settings from {source}"))?
        .try_deserialize()
        .with_context(|| format!("invalid broker settings in {source}"))?;
    config.validate()?;
    Ok(config)
}

/// Runs the broker until Ctrl-C or SIGTERM, then shuts it down cleanly.
///
/// # Errors
/// Bad settings, an unusable data dir or an address in use.
pub fn run(args: BrokerArgs) -> anyhow::Result<()> {
    let config = load_config(&args, std::env::vars())?;
    super::block_on(async move {
        let shutdown = CancellationToken::new();
        let broker = Broker::start_with_shutdown(config, shutdown.clone()).await?;
        // A machine-readable line for scripts and tests that start the broker on port 0.
        println!("sluice broker listening on {}", broker.local_addr());
        for (name, protocol, addr) in broker.listeners() {
            println!("sluice broker listener {name} ({protocol}) on {addr}");
        }
        let registry = match args.schema_registry_listen.trim() {
            "" => None,
            listen => {
                let listen = listen.parse().with_context(|| {
                    format!("--schema-registry-listen must be host:port (got '{listen}')")
                })?;
                super::registry::start_beside(&broker.local_addr().to_string(), listen).await
            }
        };
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            signals.cancel();
        });
        if let Some(registry) = registry {
            let stopping = shutdown.clone();
            tokio::spawn(async move {
                stopping.cancelled().await;
                registry.stop().await;
            });
        }
        broker.wait().await?;
        anyhow::Ok(())
    })?
}

pub(crate) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<PathBuf>) -> BrokerArgs {
        BrokerArgs {
            listen: None,
            data_dir: None,
            config,
            schema_registry_listen: String::new(),
        }
    }

    #[test]
    fn file_env_and_flags_layer_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("broker.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1\"\nnum_partitions = 4\nlog_flush = \"os\"\n",
        )
        .unwrap();
        let mut a = args(Some(file));
        a.data_dir = Some(dir.path().join("d"));
        let env = vec![
            ("SLUICE_NUM_PARTITIONS".to_owned(), "6".to_owned()),
            ("SLUICE_TEST_SKIP_INSTALL".to_owned(), "1".to_owned()),
            ("PATH".to_owned(), "/bin".to_owned()),
        ];
        let config = load_config(&a, env).unwrap();
        assert_eq!(config.listen, "127.0.0.1:1");
        assert_eq!(config.num_partitions, 6);
        assert_eq!(config.log_flush, sluice_broker::LogFlush::Os);
        assert_eq!(config.data_dir, dir.path().join("d"));
    }

    #[test]
    fn help_lists_every_setting_with_its_variable() {
        let help = settings_help();
        for name in BrokerConfig::FIELD_NAMES {
            assert!(help.contains(&format!("  {name} ")), "{name}");
        }
        assert!(help.contains("[env: SLUICE_LOG_FLUSH]"), "{help}");
    }

    #[test]
    fn unknown_file_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("broker.toml");
        std::fs::write(&file, "num_partition = 4\n").unwrap();
        let err = format!(
            "{:#}",
            load_config(&args(Some(file)), Vec::new()).unwrap_err()
        );
        assert!(err.contains("num_partition"), "{err}");
        let err = format!(
            "{:#}",
            load_config(
                &args(None),
                vec![("SLUICE_NUM_PARTITIONS".to_owned(), "zero".to_owned())]
            )
            .unwrap_err()
        );
        assert!(err.contains("num_partitions"), "{err}");
    }
}
