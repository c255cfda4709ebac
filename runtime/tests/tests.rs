//! End-to-end tests of the `sluice` binary: real worker and broker processes, the CLI tools
//! compared with kcat, crash safety, real Kafka clients. One test binary, one module per area.

#![allow(unreachable_pub)]

mod support;

mod admin;
mod cli;
mod config_folder;
mod console;
mod crash;
mod elasticsearch;
mod kafka_connect_client;
mod metrics;
mod plugins;
mod postgres;
mod schema_registry;
mod security;
mod stock_quotes;
mod transforms;
mod worker_errors;
mod worker_file;
mod worker_group;
mod worker_hardening;
mod worker_pipeline;
mod worker_rest;
mod worker_security;
