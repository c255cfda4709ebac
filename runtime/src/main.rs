//! The `sluice` binary: one entry point for the worker, the bundled broker and the CLI tools.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice_runtime::cli;
use sluice_runtime::run::start_worker;
use sluice_runtime::settings::WorkerSettings;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter};

// Records are many small allocations freed on other threads (librdkafka's among them);
// mimalloc handles that pattern much better than the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// sluice: a Kafka Connect-compatible connector runtime with a bundled Kafka-wire broker.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the bundled Kafka-compatible broker.
    #[command(after_long_help = cli::broker::settings_help())]
    Broker(cli::broker::BrokerArgs),
    /// Create, list, describe, alter or delete topics (like kafka-topics).
    Topics(cli::topics::TopicsArgs),
    /// Write lines from stdin or a file as records (like kafka-console-producer).
    Produce(cli::produce::ProduceArgs),
    /// Print records of a topic (like kafka-console-consumer).
    Consume(cli::consume::ConsumeArgs),
    /// List, describe and reset consumer groups (like kafka-consumer-groups).
    Groups(cli::groups::GroupsArgs),
    /// Run the Schema Registry (Confluent's REST API) against a Kafka cluster.
    Registry(cli::registry::RegistryArgs),
    /// Add, list and remove ACLs (like kafka-acls).
    Acls(cli::acls::AclsArgs),
    /// Set, delete and show users' SCRAM credentials (like kafka-configs --entity-type users).
    Configs(cli::configs::ConfigsArgs),
    /// Run connectors: every *.json in the configs folder, plus those created over REST.
    #[command(after_long_help = worker_help())]
    Worker(WorkerArgs),
}

fn worker_help() -> String {
    format!(
        "{}\nWith no bootstrap.servers, the worker starts the bundled broker (data in data.dir) and uses it.\n\
         Connector JSON files in config.dir are watched: adding, editing or removing one creates,\n\
         reconfigures or deletes its connector. The REST API is Kafka Connect's (port rest.port).\n\
         Logging: SLUICE_LOG (or RUST_LOG), e.g. SLUICE_LOG=debug.",
        WorkerSettings::help_text()
    )
}

/// Flags override the settings file and environment.
#[derive(Debug, clap::Args)]
struct WorkerArgs {
    /// TOML file of worker settings, instead of sluice.toml in the working directory.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Folder of connector JSON files (setting config.dir).
    #[arg(long, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Kafka cluster to use instead of the embedded broker (setting bootstrap.servers).
    #[arg(long, value_name = "HOST:PORT", env = cli::BOOTSTRAP_ENV)]
    bootstrap_server: Option<String>,
    /// Port of the REST API (setting rest.port).
    #[arg(long, value_name = "PORT")]
    rest_port: Option<u16>,
    /// Data folder of the embedded broker (setting data.dir).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

/// Logs go to stderr so that the CLI tools' stdout stays machine-readable; servers log at
/// info, the CLI tools only warnings, unless SLUICE_LOG or RUST_LOG say otherwise.
/// The filter goes through a reload layer so that `/admin/loggers` can change it at run time.
fn init_logging(default_level: &str) {
    let directives = std::env::var("SLUICE_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default_level.to_string());
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&directives));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr),
        )
        .init();
    // As at startup, a directive EnvFilter cannot parse is skipped rather than refused.
    sluice_runtime::logging::install(&directives, move |directives| {
        handle
            .reload(EnvFilter::new(directives))
            .map_err(|e| e.to_string())
    });
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

async fn run_worker(args: WorkerArgs) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    let mut settings = match &args.config {
        Some(file) => WorkerSettings::load_file(file)?,
        None => WorkerSettings::load(&cwd)?,
    };
    if let Some(dir) = args.config_dir {
        settings.config_dir = dir;
    }
    // An empty SLUICE_BOOTSTRAP_SERVERS means "unset" here as it does in the settings.
    if let Some(servers) = args.bootstrap_server.filter(|s| !s.trim().is_empty()) {
        settings.bootstrap_servers = Some(servers);
    }
    if let Some(port) = args.rest_port {
        settings.rest_addr.set_port(port);
    }
    if let Some(dir) = args.data_dir {
        settings.data_dir = dir;
    }
    let running = start_worker(settings).await?;
    shutdown_signal().await;
    running.stop().await;
    Ok(())
}

/// Errors are printed as one line (with their causes, `{:#}`) and exit code 1. Returning
/// them from `main` would print anyhow's debug form, with a backtrace whenever
/// RUST_BACKTRACE is set: noise for a user who gave a wrong flag.
fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let text = format!("{e:#}");
            if text.to_ascii_lowercase().starts_with("error") {
                eprintln!("{text}");
            } else {
                eprintln!("error: {text}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(match cli.command {
        Command::Broker(_) | Command::Worker(_) | Command::Registry(_) => "info",
        _ => "warn",
    });
    match cli.command {
        Command::Broker(args) => cli::broker::run(args),
        Command::Topics(args) => cli::topics::run(args),
        Command::Produce(args) => cli::produce::run(args),
        Command::Consume(args) => cli::consume::run(args),
        Command::Groups(args) => cli::groups::run(&args),
        Command::Registry(args) => cli::registry::run(args),
        Command::Acls(args) => cli::acls::run(args),
        Command::Configs(args) => cli::configs::run(args),
        Command::Worker(args) => tokio::runtime::Runtime::new()
            .context("cannot start the async runtime")?
            .block_on(run_worker(args)),
    }
}
