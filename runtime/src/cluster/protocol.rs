//! Kafka Connect's group sub-protocol: the member metadata a worker sends in JoinGroup and the
//! assignment the leader sends each worker through SyncGroup, byte for byte as Kafka Connect
//! lays them out (its `ConnectProtocol` and `IncrementalCooperativeConnectProtocol`).
//!
//! Every integer is big-endian. A string is an `int16` byte length and UTF-8 bytes; an array an
//! `int32` count (`-1`: null) and its elements; nullable bytes an `int32` length (`-1`: null).
//!
//! ```text
//! metadata v0 ("default"):       version int16 | url string | config_offset int64
//! metadata v1/v2 ("compatible",  version int16 | url string | config_offset int64
//!                 "sessioned"):  | allocation nullable bytes (an assignment, own header)
//! assignment v0:                 version int16 | error int16 | leader string
//!                                | leader_url string | config_offset int64
//!                                | assignment [connector string, tasks [int32]]
//! assignment v1/v2:              the v0 fields | revoked [connector string, tasks [int32]]
//!                                | delay int32
//! ```
//!
//! In the `tasks` arrays, task id `-1` ([`CONNECTOR_TASK`]) stands for the connector instance
//! itself. Version 2 is laid out exactly like version 1; it says that the worker verifies
//! internal REST requests with session keys (KIP-507).
//!
//! Reading follows Kafka's readers: a version is only refused when negative (a newer worker's
//! metadata is read as far as this version understands it, trailing bytes are ignored), and
//! the v1 fields after `config_offset` may be missing (null allocation, empty assignment and
//! revocation, delay 0). Whatever else is wrong is a [`ProtocolError`], never a panic, so a
//! leader can leave out a member whose metadata it cannot read and say why.

use std::collections::BTreeMap;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// The group protocol type of Kafka Connect worker groups.
pub const CONNECT_PROTOCOL_TYPE: &str = "connect";

/// The task id that stands for the connector instance itself in an assignment.
pub const CONNECTOR_TASK: i32 = -1;

/// Assignment error: none.
pub const NO_ERROR: i16 = 0;

/// Assignment error: the leader's view of the config topic is behind a member's; every member
/// should read the config topic to its end and join again.
pub const CONFIG_MISMATCH: i16 = 1;

/// What can be wrong with Connect metadata or an assignment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The bytes end before a field does.
    #[error("{field}: needs {needed} bytes at byte {at}, but only {remaining} remain")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Its position.
        at: usize,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        remaining: usize,
    },
    /// A negative version (Kafka refuses only those; newer versions are read as far as known).
    #[error("unsupported Connect protocol version {0}")]
    UnsupportedVersion(i16),
    /// A length or count that is negative where null is not allowed.
    #[error("{field}: invalid length {length}")]
    InvalidLength {
        /// The field being read.
        field: &'static str,
        /// The length found.
        length: i32,
    },
    /// A string that is not UTF-8.
    #[error("{field}: not UTF-8")]
    InvalidUtf8 {
        /// The field being read.
        field: &'static str,
    },
    /// A task id below -1.
    #[error("connector '{connector}': invalid task id {task}")]
    InvalidTaskId {
        /// The connector.
        connector: String,
        /// The task id found.
        task: i32,
    },
    /// A string longer than the protocol's 32767 bytes (encoding only).
    #[error("{field}: {length} bytes is longer than the protocol's limit of 32767")]
    StringTooLong {
        /// The field being written.
        field: &'static str,
        /// Its length in bytes.
        length: usize,
    },
    /// A protocol name that is none of `sessioned`, `compatible`, `default`.
    #[error("unknown Connect protocol '{0}' (expected sessioned, compatible or default)")]
    UnknownProtocol(String),
}

/// `Result` with [`ProtocolError`].
pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;

/// The Connect sub-protocols, named as Kafka Connect's `connect.protocol` setting names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConnectProtocol {
    /// `eager` (group protocol `default`, version 0): every rebalance stops everything and the
    /// leader hands out the whole assignment.
    Eager,
    /// `compatible` (group protocol `compatible`, version 1): incremental cooperative
    /// rebalancing (KIP-415).
    Compatible,
    /// `sessioned` (group protocol `sessioned`, version 2): as `compatible`, plus signed
    /// internal requests (KIP-507). The default.
    Sessioned,
}

impl ConnectProtocol {
    /// The group protocol name sent in JoinGroup.
    pub fn protocol_name(self) -> &'static str {
        match self {
            Self::Eager => "default",
            Self::Compatible => "compatible",
            Self::Sessioned => "sessioned",
        }
    }

    /// The `connect.protocol` setting's value.
    pub fn setting_value(self) -> &'static str {
        match self {
            Self::Eager => "eager",
            Self::Compatible => "compatible",
            Self::Sessioned => "sessioned",
        }
    }

    /// The version written in metadata and assignments.
    pub fn version(self) -> i16 {
        match self {
            Self::Eager => 0,
            Self::Compatible => 1,
            Self::Sessioned => 2,
        }
    }

    /// Whether rebalances are incremental and cooperative (versions 1 and 2).
    pub fn is_cooperative(self) -> bool {
        self != Self::Eager
    }

    /// The protocols a worker configured with `self` offers, in order of preference, as Kafka
    /// Connect does: `sessioned` offers all three, `compatible` two, `eager` only `default`.
    pub fn offered(self) -> &'static [ConnectProtocol] {
        match self {
            Self::Sessioned => &[Self::Sessioned, Self::Compatible, Self::Eager],
            Self::Compatible => &[Self::Compatible, Self::Eager],
            Self::Eager => &[Self::Eager],
        }
    }

    /// The protocol of a group protocol name (`sessioned`, `compatible`, `default`).
    ///
    /// # Errors
    /// [`ProtocolError::UnknownProtocol`] for any other name.
    pub fn from_protocol_name(name: &str) -> Result<Self> {
        [Self::Sessioned, Self::Compatible, Self::Eager]
            .into_iter()
            .find(|p| p.protocol_name().eq_ignore_ascii_case(name))
            .ok_or_else(|| ProtocolError::UnknownProtocol(name.to_owned()))
    }

    /// The protocol of a `connect.protocol` setting value (`sessioned`, `compatible`, `eager`).
    ///
    /// # Errors
    /// [`ProtocolError::UnknownProtocol`] for any other value.
    pub fn from_setting(value: &str) -> Result<Self> {
        [Self::Sessioned, Self::Compatible, Self::Eager]
            .into_iter()
            .find(|p| p.setting_value().eq_ignore_ascii_case(value))
            .ok_or_else(|| ProtocolError::UnknownProtocol(value.to_owned()))
    }
}

impl fmt::Display for ConnectProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.setting_value())
    }
}

/// One task of one connector.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectorTaskId {
    /// The connector's name.
    pub connector: String,
    /// The task's number, from 0.
    pub task: i32,
}

impl ConnectorTaskId {
    /// Task `task` of `connector`.
    pub fn new(connector: impl Into<String>, task: i32) -> Self {
        Self {
            connector: connector.into(),
            task,
        }
    }
}

impl fmt::Display for ConnectorTaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.connector, self.task)
    }
}

/// What a worker tells the group when it joins (Kafka Connect's `ExtendedWorkerState`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerMetadata {
    /// The version the metadata was written with (0, 1 or 2; higher from newer workers).
    pub version: i16,
    /// The worker's REST URL, where other workers forward requests.
    pub url: String,
    /// The highest `connect-configs` offset the worker has read.
    pub config_offset: i64,
    /// What the worker runs now (its last assignment with revocations applied); `None` for a
    /// worker that has never been assigned anything, and always `None` in version 0.
    pub allocation: Option<ConnectAssignment>,
}

impl WorkerMetadata {
    /// Encodes the metadata in its `version`'s layout (the allocation in version 1 and up).
    ///
    /// # Errors
    /// [`ProtocolError::StringTooLong`] when a string exceeds the protocol's limit.
    pub fn encode(&self) -> Result<Bytes> {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i16(self.version);
        put_string(&mut buf, "url", &self.url)?;
        buf.put_i64(self.config_offset);
        if self.version >= 1 {
            match &self.allocation {
                None => buf.put_i32(-1),
                Some(allocation) => {
                    let bytes = allocation.encode()?;
                    buf.put_i32(bytes.len() as i32);
                    buf.put_slice(&bytes);
                }
            }
        }
        Ok(buf.freeze())
    }

    /// Decodes metadata of any version.
    ///
    /// # Errors
    /// A [`ProtocolError`] saying what is wrong with the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let version = r.i16("version")?;
        if version < 0 {
            return Err(ProtocolError::UnsupportedVersion(version));
        }
        let url = r.string("url")?;
        let config_offset = r.i64("config_offset")?;
        // Version 0 ends here; Kafka's v1 reader treats a missing allocation as null.
        let allocation = if version >= 1 && r.has_remaining() {
            match r.nullable_bytes("allocation")? {
                Some(inner) => Some(ConnectAssignment::decode(inner)?),
                None => None,
            }
        } else {
            None
        };
        Ok(Self {
            version,
            url,
            config_offset,
            allocation,
        })
    }
}

/// The leader's answer to one worker (Kafka Connect's `ExtendedAssignment`).
///
/// In versions 1 and 2, `connectors` and `tasks` are what the worker should *start* in
/// addition to what it keeps; `revoked_*` what it should stop. In version 0 they are the
/// worker's whole assignment and nothing is revoked (an eager worker stopped everything when
/// the rebalance began).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectAssignment {
    /// The version the assignment is written with.
    pub version: i16,
    /// [`NO_ERROR`] or [`CONFIG_MISMATCH`].
    pub error: i16,
    /// The leader's member id.
    pub leader: String,
    /// The leader's REST URL.
    pub leader_url: String,
    /// The `connect-configs` offset the assignment was computed from.
    pub config_offset: i64,
    /// Connector instances assigned.
    pub connectors: Vec<String>,
    /// Tasks assigned.
    pub tasks: Vec<ConnectorTaskId>,
    /// Connector instances to stop (version 1 and up).
    pub revoked_connectors: Vec<String>,
    /// Tasks to stop (version 1 and up).
    pub revoked_tasks: Vec<ConnectorTaskId>,
    /// Milliseconds after which the worker should join again, for work held back from workers
    /// that left (version 1 and up; 0 for none).
    pub delay: i32,
}

impl ConnectAssignment {
    /// Whether the leader could not compute an assignment.
    pub fn failed(&self) -> bool {
        self.error != NO_ERROR
    }

    /// Encodes the assignment in its `version`'s layout. Each connector appears once, in name
    /// order, with [`CONNECTOR_TASK`] first when the connector instance itself is included.
    ///
    /// # Errors
    /// [`ProtocolError::StringTooLong`] when a string exceeds the protocol's limit.
    pub fn encode(&self) -> Result<Bytes> {
        let mut buf = BytesMut::with_capacity(128);
        buf.put_i16(self.version);
        buf.put_i16(self.error);
        put_string(&mut buf, "leader", &self.leader)?;
        put_string(&mut buf, "leader_url", &self.leader_url)?;
        buf.put_i64(self.config_offset);
        put_connector_assignments(&mut buf, &self.connectors, &self.tasks)?;
        if self.version >= 1 {
            put_connector_assignments(&mut buf, &self.revoked_connectors, &self.revoked_tasks)?;
            buf.put_i32(self.delay);
        }
        Ok(buf.freeze())
    }

    /// Decodes an assignment of any version.
    ///
    /// # Errors
    /// A [`ProtocolError`] saying what is wrong with the bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let version = r.i16("version")?;
        if version < 0 {
            return Err(ProtocolError::UnsupportedVersion(version));
        }
        let error = r.i16("error")?;
        let leader = r.string("leader")?;
        let leader_url = r.string("leader_url")?;
        let config_offset = r.i64("config_offset")?;
        // Kafka reads every version with its v1 schema, whose last three fields may be missing.
        let (connectors, tasks) = if r.has_remaining() {
            r.connector_assignments("assignment")?
        } else {
            (Vec::new(), Vec::new())
        };
        let (revoked_connectors, revoked_tasks) = if r.has_remaining() {
            r.connector_assignments("revoked")?
        } else {
            (Vec::new(), Vec::new())
        };
        let delay = if r.has_remaining() {
            r.i32("delay")?
        } else {
            0
        };
        Ok(Self {
            version,
            error,
            leader,
            leader_url,
            config_offset,
            connectors,
            tasks,
            revoked_connectors,
            revoked_tasks,
            delay,
        })
    }
}

fn put_string(buf: &mut BytesMut, field: &'static str, value: &str) -> Result<()> {
    let length = value.len();
    if length > i16::MAX as usize {
        return Err(ProtocolError::StringTooLong { field, length });
    }
    buf.put_i16(length as i16);
    buf.put_slice(value.as_bytes());
    Ok(())
}

/// Writes `[connector string, tasks [int32]]`, one entry per connector in name order.
fn put_connector_assignments(
    buf: &mut BytesMut,
    connectors: &[String],
    tasks: &[ConnectorTaskId],
) -> Result<()> {
    let mut by_connector: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for connector in connectors {
        let ids = by_connector.entry(connector.as_str()).or_default();
        if !ids.contains(&CONNECTOR_TASK) {
            ids.insert(0, CONNECTOR_TASK);
        }
    }
    for task in tasks {
        by_connector
            .entry(task.connector.as_str())
            .or_default()
            .push(task.task);
    }
    buf.put_i32(by_connector.len() as i32);
    for (connector, ids) in by_connector {
        put_string(buf, "connector", connector)?;
        buf.put_i32(ids.len() as i32);
        for id in ids {
            buf.put_i32(id);
        }
    }
    Ok(())
}

/// A bounds-checked reader that names the field it failed on.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn has_remaining(&self) -> bool {
        self.at < self.bytes.len()
    }

    fn take(&mut self, field: &'static str, needed: usize) -> Result<&'a [u8]> {
        let remaining = self.bytes.len() - self.at;
        if needed > remaining {
            return Err(ProtocolError::Truncated {
                field,
                at: self.at,
                needed,
                remaining,
            });
        }
        let slice = &self.bytes[self.at..self.at + needed];
        self.at += needed;
        Ok(slice)
    }

    fn i16(&mut self, field: &'static str) -> Result<i16> {
        let b = self.take(field, 2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self, field: &'static str) -> Result<i32> {
        let b = self.take(field, 4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self, field: &'static str) -> Result<i64> {
        let b = self.take(field, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    fn string(&mut self, field: &'static str) -> Result<String> {
        let length = self.i16(field)?;
        if length < 0 {
            return Err(ProtocolError::InvalidLength {
                field,
                length: i32::from(length),
            });
        }
        let b = self.take(field, length as usize)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| ProtocolError::InvalidUtf8 { field })
    }

    fn nullable_bytes(&mut self, field: &'static str) -> Result<Option<&'a [u8]>> {
        let length = self.i32(field)?;
        match length {
            -1 => Ok(None),
            n if n < 0 => Err(ProtocolError::InvalidLength { field, length: n }),
            n => self.take(field, n as usize).map(Some),
        }
    }

    /// A count that is checked against the bytes left (each element takes at least `min_size`
    /// bytes), so a forged count cannot make the reader allocate much.
    fn count(&mut self, field: &'static str, min_size: usize) -> Result<Option<usize>> {
        let count = self.i32(field)?;
        match count {
            -1 => Ok(None),
            n if n < 0 => Err(ProtocolError::InvalidLength { field, length: n }),
            n => {
                let n = n as usize;
                let remaining = self.bytes.len() - self.at;
                if n.saturating_mul(min_size) > remaining {
                    return Err(ProtocolError::Truncated {
                        field,
                        at: self.at,
                        needed: n.saturating_mul(min_size),
                        remaining,
                    });
                }
                Ok(Some(n))
            }
        }
    }

    /// A nullable `[connector string, tasks [int32]]` array, split into connector instances
    /// ([`CONNECTOR_TASK`]) and tasks; null reads as empty, like Kafka's reader.
    fn connector_assignments(
        &mut self,
        field: &'static str,
    ) -> Result<(Vec<String>, Vec<ConnectorTaskId>)> {
        let mut connectors = Vec::new();
        let mut tasks = Vec::new();
        // An entry is at least a 2-byte string length and a 4-byte count.
        let Some(entries) = self.count(field, 6)? else {
            return Ok((connectors, tasks));
        };
        for _ in 0..entries {
            let connector = self.string("connector")?;
            let ids = self
                .count("tasks", 4)?
                .ok_or(ProtocolError::InvalidLength {
                    field: "tasks",
                    length: -1,
                })?;
            for _ in 0..ids {
                match self.i32("task")? {
                    CONNECTOR_TASK => connectors.push(connector.clone()),
                    task if task >= 0 => tasks.push(ConnectorTaskId::new(connector.clone(), task)),
                    task => {
                        return Err(ProtocolError::InvalidTaskId {
                            connector: connector.clone(),
                            task,
                        })
                    }
                }
            }
        }
        Ok((connectors, tasks))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Hand-written bytes, field by field, as Kafka Connect's schemas lay them out.
    fn string(s: &str) -> Vec<u8> {
        let mut v = (s.len() as i16).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn sample_assignment(version: i16) -> ConnectAssignment {
        ConnectAssignment {
            version,
            error: NO_ERROR,
            leader: "w1".into(),
            leader_url: "http://a:8083/".into(),
            config_offset: 7,
            connectors: vec!["orders".into()],
            tasks: vec![
                ConnectorTaskId::new("b", 2),
                ConnectorTaskId::new("orders", 0),
            ],
            revoked_connectors: if version >= 1 {
                vec!["old".into()]
            } else {
                vec![]
            },
            revoked_tasks: if version >= 1 {
                vec![ConnectorTaskId::new("old", 1)]
            } else {
                vec![]
            },
            delay: if version >= 1 { 500 } else { 0 },
        }
    }

    /// The assigned part of `sample_assignment`: `b` = [2], `orders` = [-1, 0] (name order).
    fn sample_assigned_bytes() -> Vec<u8> {
        concat(&[
            &2i32.to_be_bytes(),
            &string("b"),
            &1i32.to_be_bytes(),
            &2i32.to_be_bytes(),
            &string("orders"),
            &2i32.to_be_bytes(),
            &(-1i32).to_be_bytes(),
            &0i32.to_be_bytes(),
        ])
    }

    fn sample_header_bytes(version: i16) -> Vec<u8> {
        concat(&[
            &version.to_be_bytes(),
            &0i16.to_be_bytes(),
            &string("w1"),
            &string("http://a:8083/"),
            &7i64.to_be_bytes(),
        ])
    }

    #[test]
    fn assignment_v0_bytes_match_the_java_layout() {
        let expected = concat(&[&sample_header_bytes(0), &sample_assigned_bytes()]);
        let assignment = sample_assignment(0);
        assert_eq!(assignment.encode().unwrap().as_ref(), expected.as_slice());
        assert_eq!(ConnectAssignment::decode(&expected).unwrap(), assignment);
    }

    #[test]
    fn assignment_v1_and_v2_bytes_match_the_java_layout() {
        for version in [1i16, 2] {
            let revoked = concat(&[
                &1i32.to_be_bytes(),
                &string("old"),
                &2i32.to_be_bytes(),
                &(-1i32).to_be_bytes(),
                &1i32.to_be_bytes(),
            ]);
            let expected = concat(&[
                &sample_header_bytes(version),
                &sample_assigned_bytes(),
                &revoked,
                &500i32.to_be_bytes(),
            ]);
            let assignment = sample_assignment(version);
            assert_eq!(
                assignment.encode().unwrap().as_ref(),
                expected.as_slice(),
                "v{version}"
            );
            assert_eq!(ConnectAssignment::decode(&expected).unwrap(), assignment);
        }
    }

    #[test]
    fn metadata_v0_bytes_match_the_java_layout() {
        let expected = concat(&[
            &0i16.to_be_bytes(),
            &string("http://w:8083/"),
            &42i64.to_be_bytes(),
        ]);
        let metadata = WorkerMetadata {
            version: 0,
            url: "http://w:8083/".into(),
            config_offset: 42,
            allocation: None,
        };
        assert_eq!(metadata.encode().unwrap().as_ref(), expected.as_slice());
        assert_eq!(WorkerMetadata::decode(&expected).unwrap(), metadata);
    }

    #[test]
    fn metadata_v1_and_v2_bytes_match_the_java_layout() {
        for version in [1i16, 2] {
            // A worker never assigned anything sends a null allocation.
            let never_assigned = concat(&[
                &version.to_be_bytes(),
                &string("http://w:8083/"),
                &42i64.to_be_bytes(),
                &(-1i32).to_be_bytes(),
            ]);
            let metadata = WorkerMetadata {
                version,
                url: "http://w:8083/".into(),
                config_offset: 42,
                allocation: None,
            };
            assert_eq!(
                metadata.encode().unwrap().as_ref(),
                never_assigned.as_slice()
            );
            assert_eq!(WorkerMetadata::decode(&never_assigned).unwrap(), metadata);

            let allocation = sample_assignment(version);
            let inner = allocation.encode().unwrap();
            let with_allocation = concat(&[
                &version.to_be_bytes(),
                &string("http://w:8083/"),
                &42i64.to_be_bytes(),
                &(inner.len() as i32).to_be_bytes(),
                &inner,
            ]);
            let metadata = WorkerMetadata {
                allocation: Some(allocation),
                ..metadata
            };
            assert_eq!(
                metadata.encode().unwrap().as_ref(),
                with_allocation.as_slice()
            );
            assert_eq!(WorkerMetadata::decode(&with_allocation).unwrap(), metadata);
        }
    }

    #[test]
    fn missing_v1_fields_read_as_kafka_defaults_and_trailing_bytes_are_ignored() {
        // A v1 assignment cut after config_offset: no assignment, no revocation, delay 0.
        let short = sample_header_bytes(1);
        let decoded = ConnectAssignment::decode(&short).unwrap();
        assert!(decoded.connectors.is_empty() && decoded.tasks.is_empty());
        assert_eq!(decoded.delay, 0);
        // A v1 metadata without its allocation.
        let metadata = concat(&[&1i16.to_be_bytes(), &string("u"), &1i64.to_be_bytes()]);
        assert_eq!(WorkerMetadata::decode(&metadata).unwrap().allocation, None);
        // A future version with more fields is read as far as known.
        let mut future = sample_assignment(2).encode().unwrap().to_vec();
        future[0..2].copy_from_slice(&3i16.to_be_bytes());
        future.extend_from_slice(&[9, 9, 9]);
        let decoded = ConnectAssignment::decode(&future).unwrap();
        assert_eq!(decoded.version, 3);
        assert_eq!(decoded.delay, 500);
    }

    #[test]
    fn malformed_bytes_are_typed_errors() {
        assert_eq!(
            WorkerMetadata::decode(&[0]),
            Err(ProtocolError::Truncated {
                field: "version",
                at: 0,
                needed: 2,
                remaining: 1
            })
        );
        assert_eq!(
            WorkerMetadata::decode(&(-1i16).to_be_bytes()),
            Err(ProtocolError::UnsupportedVersion(-1))
        );
        let bad_utf8 = concat(&[&0i16.to_be_bytes(), &2i16.to_be_bytes(), &[0xff, 0xfe]]);
        assert_eq!(
            WorkerMetadata::decode(&bad_utf8),
            Err(ProtocolError::InvalidUtf8 { field: "url" })
        );
        // A huge array count is refused before anything is allocated.
        let huge = concat(&[&sample_header_bytes(1), &i32::MAX.to_be_bytes()]);
        assert!(matches!(
            ConnectAssignment::decode(&huge),
            Err(ProtocolError::Truncated {
                field: "assignment",
                ..
            })
        ));
        let bad_task = concat(&[
            &sample_header_bytes(1),
            &1i32.to_be_bytes(),
            &string("c"),
            &1i32.to_be_bytes(),
            &(-2i32).to_be_bytes(),
        ]);
        assert_eq!(
            ConnectAssignment::decode(&bad_task),
            Err(ProtocolError::InvalidTaskId {
                connector: "c".into(),
                task: -2
            })
        );
        let long = "x".repeat(40_000);
        let metadata = WorkerMetadata {
            version: 0,
            url: long,
            config_offset: 0,
            allocation: None,
        };
        assert!(matches!(
            metadata.encode(),
            Err(ProtocolError::StringTooLong { field: "url", .. })
        ));
    }

    #[test]
    fn protocol_names_and_offers() {
        assert_eq!(
            ConnectProtocol::Sessioned
                .offered()
                .iter()
                .map(|p| p.protocol_name())
                .collect::<Vec<_>>(),
            ["sessioned", "compatible", "default"]
        );
        assert_eq!(
            ConnectProtocol::from_protocol_name("default").unwrap(),
            ConnectProtocol::Eager
        );
        assert_eq!(
            ConnectProtocol::from_setting("eager").unwrap(),
            ConnectProtocol::Eager
        );
        assert!(ConnectProtocol::from_setting("default").is_err());
        assert_eq!(ConnectProtocol::Compatible.version(), 1);
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z\u{e9}\u{4e2d}-]{0,12}"
    }

    fn task_ids() -> impl Strategy<Value = Vec<ConnectorTaskId>> {
        proptest::collection::btree_set((name(), 0..i32::MAX), 0..8).prop_map(|set| {
            set.into_iter()
                .map(|(c, t)| ConnectorTaskId::new(c, t))
                .collect()
        })
    }

    fn connectors() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::btree_set(name(), 0..6).prop_map(|s| s.into_iter().collect())
    }

    prop_compose! {
        fn assignment()(
            version in 0i16..=2,
            error in prop_oneof![Just(NO_ERROR), Just(CONFIG_MISMATCH)],
            leader in name(),
            leader_url in name(),
            config_offset in any::<i64>(),
            connectors in connectors(),
            tasks in task_ids(),
            revoked_connectors in connectors(),
            revoked_tasks in task_ids(),
            delay in any::<i32>(),
        ) -> ConnectAssignment {
            let v1 = version >= 1;
            ConnectAssignment {
                version, error, leader, leader_url, config_offset, connectors, tasks,
                revoked_connectors: if v1 { revoked_connectors } else { vec![] },
                revoked_tasks: if v1 { revoked_tasks } else { vec![] },
                delay: if v1 { delay } else { 0 },
            }
        }
    }

    /// Sorted, as the encoding groups by connector name.
    fn canonical(mut a: ConnectAssignment) -> ConnectAssignment {
        a.connectors.sort();
        a.tasks.sort();
        a.revoked_connectors.sort();
        a.revoked_tasks.sort();
        a
    }

    fn normalized(a: ConnectAssignment) -> ConnectAssignment {
        let mut a = canonical(a);
        a.connectors.dedup();
        a.revoked_connectors.dedup();
        a
    }

    proptest! {
        #[test]
        fn assignments_round_trip(a in assignment()) {
            let bytes = a.encode().unwrap();
            prop_assert_eq!(canonical(ConnectAssignment::decode(&bytes).unwrap()), canonical(a));
        }

        #[test]
        fn metadata_round_trips(
            version in 0i16..=2,
            url in name(),
            config_offset in any::<i64>(),
            allocation in proptest::option::of(assignment()),
        ) {
            let allocation = if version == 0 { None } else { allocation.map(canonical) };
            let metadata = WorkerMetadata { version, url, config_offset, allocation };
            let bytes = metadata.encode().unwrap();
            let decoded = WorkerMetadata::decode(&bytes).unwrap();
            prop_assert_eq!(
                WorkerMetadata { allocation: decoded.allocation.map(canonical), ..decoded },
                metadata
            );
        }

        /// Whatever bytes come in, reading gives an error or a value that writes and reads
        /// back to itself (connector entries deduplicated and sorted).
        #[test]
        fn arbitrary_bytes_read_as_errors_or_stable_values(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            if let Ok(m) = WorkerMetadata::decode(&bytes) {
                let m = WorkerMetadata { allocation: m.allocation.map(normalized), ..m };
                let again = WorkerMetadata::decode(&m.encode().unwrap()).unwrap();
                let again = WorkerMetadata { allocation: again.allocation.map(normalized), ..again };
                let expected = if m.version >= 1 { m } else { WorkerMetadata { allocation: None, ..m } };
                prop_assert_eq!(again, expected);
            }
            if let Ok(a) = ConnectAssignment::decode(&bytes) {
                let a = normalized(a);
                let again = normalized(ConnectAssignment::decode(&a.encode().unwrap()).unwrap());
                let expected = if a.version >= 1 {
                    a
                } else {
                    ConnectAssignment { revoked_connectors: vec![], revoked_tasks: vec![], delay: 0, ..a }
                };
                prop_assert_eq!(again, expected);
            }
        }
    }
}
