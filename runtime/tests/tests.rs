//! End-to-end tests of the `sluice` binary: real worker processes, the embedded broker, real
//! outside services, and librdkafka reading what arrived. One module per connector.

mod postgres;
