//! End-to-end tests of the `sluice` binary: real worker processes, the real broker, real
//! Kafka clients. One test binary with a module per area.

mod support;

mod worker_file;
mod worker_rest;
