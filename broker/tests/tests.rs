//! Integration tests of the broker: real clients (librdkafka through rdkafka, kcat, and a raw
//! Kafka-protocol client) against a broker started in-process on 127.0.0.1:0 (or in a child
//! process when it must be SIGKILLed). One test binary, one module per area.

#![allow(unreachable_pub)]

mod support;

mod bad_input;
mod cleaning;
mod common;
mod groups;
mod idempotence;
mod log_flood;
mod protocol;
mod restart;
mod roundtrip;
mod security;
mod storage;
