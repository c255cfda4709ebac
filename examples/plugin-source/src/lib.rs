//! An example sluice connector plugin: `generator-source`, a source that generates numbered
//! records at a configurable rate.
//!
//! The connector is written exactly like a built-in one, against the `sluice_sdk` traits;
//! [`sluice_sdk::export_plugin!`] turns the crate into a plugin library the worker loads from
//! `plugin.path`. See README.md for building it, dropping it in and writing your own.
//!
//! # Layout
//! - [`generator`]: the connector, its task, its options and its [`plugins`] list.

pub mod generator;

pub use generator::plugins;

sluice_sdk::export_plugin!(generator::plugins);
