//! Integration tests of the broker with real Kafka clients (librdkafka through the `rdkafka`
//! crate, and `kcat`), one module per area. Everything runs on loopback with free ports.

mod cleaning;
mod common;
mod groups;
