//! Command-line tools a Kafka user reaches for, each in its own module.

pub mod groups;
