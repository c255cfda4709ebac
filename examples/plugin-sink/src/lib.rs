//! An example sluice sink plugin: `ledger-sink`, which appends every record it is given to a
//! ledger file, one tab-separated line per record, and makes it durable on each flush.
//!
//! The connector is written exactly like a built-in sink, against the `sluice_sdk` traits;
//! [`sluice_sdk::export_plugin!`] turns the crate into a plugin library the worker loads from
//! `plugin.path`. See README.md for building it, dropping it in and writing your own.
//!
//! # Layout
//! - [`ledger`]: the connector, its task, its options, the line format and [`plugins`].

pub mod ledger;

pub use ledger::plugins;

sluice_sdk::export_plugin!(ledger::plugins);
