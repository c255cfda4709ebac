//! The sluice runtime: the worker that runs connectors, and the command-line tools.
//!
//! # Layout
//! - [`cli`]: the `sluice` subcommands that talk to a broker (`broker`, `topics`, `produce`,
//!   `consume`, `groups`).
pub mod cli;
