//! The `sluice` binary: one entry point for the worker, the bundled broker and the CLI tools.
use clap::{Parser, Subcommand};

/// sluice: a Kafka Connect-compatible connector runtime with a bundled Kafka-wire broker.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List, describe and reset consumer groups (like kafka-consumer-groups).
    Groups(sluice_runtime::cli::groups::GroupsArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Groups(args) => sluice_runtime::cli::groups::run(&args),
    }
}
