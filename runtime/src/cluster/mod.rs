//! Worker groups: workers that share a `group.id` on one Kafka cluster form one Connect
//! cluster, as in Kafka Connect's distributed mode. The broker's group coordinator is the
//! engine (protocol type `connect`); the leader it elects assigns connectors and tasks.
//!
//! # Layout
//! - [`protocol`]: Kafka Connect's member metadata and assignment formats (v0 `default`,
//!   v1 `compatible`, v2 `sessioned`), byte for byte.
//! - [`assignor`]: the leader's assignment: incremental cooperative (KIP-415) and eager.
//! - [`config_log`]: the `connect-configs` topic in Kafka Connect's formats: a reader that
//!   follows it into a cluster config snapshot, and the writers of its records.
//! - [`membership`]: the group client: coordinator discovery, JoinGroup, SyncGroup,
//!   Heartbeat and LeaveGroup on the `kafka-protocol` codecs, over its own connection.
//! - [`session`]: signed internal requests (KIP-507): session keys, signing, verification.
//! - [`status_log`]: the status topic read back, so every worker shows every status, with
//!   Kafka Connect's generation rules (a stale owner's late record does not count).

pub mod assignor;
pub mod config_log;
pub mod membership;
pub mod protocol;
pub mod session;
pub mod status_log;
