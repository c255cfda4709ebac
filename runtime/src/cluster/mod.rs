//! Worker groups: workers that share a `group.id` on one Kafka cluster form one Connect
//! cluster, as in Kafka Connect's distributed mode. The broker's group coordinator is the
//! engine (protocol type `connect`); the leader it elects assigns connectors and tasks.
//!
//! # Layout
//! - [`protocol`]: Kafka Connect's member metadata and assignment formats (v0 `default`,
//!   v1 `compatible`, v2 `sessioned`), byte for byte.
//! - [`assignor`]: the leader's assignment: incremental cooperative (KIP-415) and eager.
//! - [`membership`]: the group client: coordinator discovery, JoinGroup, SyncGroup,
//!   Heartbeat and LeaveGroup on the `kafka-protocol` codecs, over its own connection.

pub mod assignor;
pub mod membership;
pub mod protocol;
