//! The `sluice` binary: one entry point for the worker, the bundled broker and the CLI tools.
use clap::{Parser, Subcommand};
use sluice_runtime::cli;
use tracing_subscriber::EnvFilter;

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
    Broker(cli::broker::BrokerArgs),
    /// Create, list, describe, alter or delete topics (like kafka-topics).
    Topics(cli::topics::TopicsArgs),
    /// Write lines from stdin or a file as records (like kafka-console-producer).
    Produce(cli::produce::ProduceArgs),
    /// Print records of a topic (like kafka-console-consumer).
    Consume(cli::consume::ConsumeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Logs go to stderr so that the CLI tools' stdout stays machine-readable.
    let default_level = match cli.command {
        Command::Broker(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Broker(args) => cli::broker::run(args),
        Command::Topics(args) => cli::topics::run(args),
        Command::Produce(args) => cli::produce::run(args),
        Command::Consume(args) => cli::consume::run(args),
    }
}
