//! The coordinator's durable log: committed offsets and group metadata.
//!
//! One append-only file, `offsets.log`, in the coordinator directory. It starts with an
//! 8-byte magic (`SLUICEGC`) and a big-endian `u32` format version, then holds frames:
//!
//! ```text
//! u32 body length | u32 CRC-32C of the body | body
//! ```
//!
//! A body is one [`StoreRecord`]: a committed offset, an offset deletion, a group's metadata
//! (its last stable generation and members) or a group deletion. Strings are `u32` length +
//! UTF-8, optional strings use length `-1` for none, byte strings are `u32` length + bytes; all
//! integers are big-endian.
//!
//! Writes go through one writer task that batches whatever is queued, appends it, and
//! fsyncs once for the batch (group commit) before acknowledging; an OffsetCommit is answered
//! only after that. On start the log is replayed: a torn or corrupt frame ends it (what follows
//! was never acknowledged), and the live state is rewritten into a fresh file (write to
//! `offsets.log.tmp`, fsync, rename over `offsets.log`, fsync the directory), so a crash at any
//! point leaves either the old or the new complete file. While running, the log is rewritten
//! the same way whenever it has grown by more than the configured number of bytes since the
//! last rewrite, which keeps it close to the size of the live state.
//!
//! If a write or fsync fails the store stops accepting writes (every later commit fails with an
//! error and the failure is logged): after a failed fsync the kernel may have dropped the data,
//! and appending behind a torn frame would hide later records from the next replay.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// File name of the log inside the coordinator directory.
pub const LOG_FILE_NAME: &str = "offsets.log";
const TMP_FILE_NAME: &str = "offsets.log.tmp";
const MAGIC: &[u8; 8] = b"SLUICEGC";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = MAGIC.len() + 4;
/// Largest frame body accepted on replay; anything longer is a corrupt length field.
const MAX_FRAME_BODY: usize = 64 * 1024 * 1024;
/// Most write batches folded into one fsync.
const MAX_BATCHES_PER_SYNC: usize = 4096;

const TAG_OFFSET: u8 = 1;
const TAG_OFFSET_TOMBSTONE: u8 = 2;
const TAG_GROUP: u8 = 3;
const TAG_GROUP_TOMBSTONE: u8 = 4;

/// One committed offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The offset of the next record the group will read.
    pub offset: i64,
    /// The leader epoch the client saw at that offset, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string (empty when it sent none).
    pub metadata: String,
    /// When the commit happened, in milliseconds since the Unix epoch.
    pub commit_timestamp_ms: i64,
    /// An explicit expiry asked for by OffsetCommit v2-v4 (`retention_time_ms`), if any.
    pub expire_timestamp_ms: Option<i64>,
}

/// A member as kept in the stored metadata of a stable group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMember {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id` if it is a static member.
    pub group_instance_id: Option<String>,
    /// The client id it joined with.
    pub client_id: String,
    /// The address it joined from (`/127.0.0.1`).
    pub client_host: String,
    /// Its rebalance timeout in milliseconds.
    pub rebalance_timeout_ms: i32,
    /// Its session timeout in milliseconds.
    pub session_timeout_ms: i32,
    /// Its metadata for the group's selected protocol.
    pub subscription: Bytes,
    /// The assignment the leader gave it.
    pub assignment: Bytes,
}

/// The stored metadata of a group: its last stable (or empty) generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    /// The protocol type (`consumer`, `connect`, ...), none for groups that only commit.
    pub protocol_type: Option<String>,
    /// The generation.
    pub generation_id: i32,
    /// The selected protocol (assignor), none when the group is empty.
    pub protocol_name: Option<String>,
    /// The leader's member id, none when the group is empty.
    pub leader_id: Option<String>,
    /// When the group entered its current state, in milliseconds since the Unix epoch.
    pub state_timestamp_ms: i64,
    /// The members, empty for an empty group.
    pub members: Vec<StoredMember>,
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreRecord {
    /// A committed offset.
    Offset {
        /// The group id.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// What was committed.
        offset: CommittedOffset,
    },
    /// A committed offset was deleted (OffsetDelete, expiry).
    OffsetTombstone {
        /// The group id.
        group: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
    },
    /// A group's metadata after a rebalance completed or the group emptied.
    Group {
        /// The group id.
        group: String,
        /// The metadata.
        metadata: StoredGroup,
    },
    /// The group and all its offsets were deleted.
    GroupTombstone {
        /// The group id.
        group: String,
    },
}

/// What the log says about one group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedGroup {
    /// Its metadata, if it ever completed a rebalance or emptied.
    pub metadata: Option<StoredGroup>,
    /// Its committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
}

/// The live content of the log: what a replay yields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreState {
    groups: BTreeMap<String, LoadedGroup>,
}

impl StoreState {
    /// Applies one record, in log order.
    pub fn apply(&mut self, record: &StoreRecord) {
        match record {
            StoreRecord::Offset {
                group,
                topic,
                partition,
                offset,
            } => {
                self.groups
                    .entry(group.clone())
                    .or_default()
                    .offsets
                    .insert((topic.clone(), *partition), offset.clone());
            }
            StoreRecord::OffsetTombstone {
                group,
                topic,
                partition,
            } => {
                if let Some(loaded) = self.groups.get_mut(group) {
                    loaded.offsets.remove(&(topic.clone(), *partition));
                    if loaded.offsets.is_empty() && loaded.metadata.is_none() {
                        self.groups.remove(group);
                    }
                }
            }
            StoreRecord::Group { group, metadata } => {
                self.groups.entry(group.clone()).or_default().metadata = Some(metadata.clone());
            }
            StoreRecord::GroupTombstone { group } => {
                self.groups.remove(group);
            }
        }
    }

    /// The groups, by id.
    pub fn groups(&self) -> &BTreeMap<String, LoadedGroup> {
        &self.groups
    }

    /// Consumes the state, yielding every group.
    pub fn into_groups(self) -> impl Iterator<Item = (String, LoadedGroup)> {
        self.groups.into_iter()
    }

    /// The records that rebuild this state, for a rewrite.
    fn records(&self) -> impl Iterator<Item = StoreRecord> + '_ {
        self.groups.iter().flat_map(|(group, loaded)| {
            let metadata = loaded.metadata.iter().map(|metadata| StoreRecord::Group {
                group: group.clone(),
                metadata: metadata.clone(),
            });
            let offsets =
                loaded
                    .offsets
                    .iter()
                    .map(|((topic, partition), offset)| StoreRecord::Offset {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                        offset: offset.clone(),
                    });
            metadata.chain(offsets)
        })
    }
}

struct WriteBatch {
    records: Vec<StoreRecord>,
    done: oneshot::Sender<io::Result<()>>,
}

enum Command {
    Write(WriteBatch),
    /// Finish what is queued, then stop and say so.
    Close(oneshot::Sender<()>),
}

/// Handle to the log and its writer task.
pub struct GroupStore {
    sender: mpsc::UnboundedSender<Command>,
    path: PathBuf,
}

impl std::fmt::Debug for GroupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl GroupStore {
    /// Opens (creating if needed) the log in `dir`, replays it, rewrites it compacted and starts
    /// the writer task (so it must be called within a tokio runtime). `rewrite_bytes` is how
    /// much the log may grow before it is rewritten.
    ///
    /// # Errors
    /// Fails when the directory or file cannot be created, read or written, or when the file is
    /// not a coordinator log (wrong magic or format version).
    pub fn open(dir: &Path, rewrite_bytes: u64) -> io::Result<(Self, StoreState)> {
        fs::create_dir_all(dir).map_err(|e| with_path(e, "create directory", dir))?;
        let path = dir.join(LOG_FILE_NAME);
        let tmp = dir.join(TMP_FILE_NAME);
        if tmp.exists() {
            // A rewrite was interrupted before its rename: the old log is still complete.
            fs::remove_file(&tmp).map_err(|e| with_path(e, "remove", &tmp))?;
        }
        let mut state = StoreState::default();
        match File::open(&path) {
            Ok(mut file) => {
                let mut data = Vec::new();
                file.read_to_end(&mut data)
                    .map_err(|e| with_path(e, "read", &path))?;
                let replay = replay(&data).map_err(|e| with_path(e, "replay", &path))?;
                if let Some(problem) = &replay.problem {
                    tracing::warn!(
                        path = %path.display(),
                        valid_bytes = replay.valid_len,
                        dropped_bytes = data.len() - replay.valid_len,
                        problem = %problem,
                        "group coordinator log ends with an invalid frame; dropping the tail (it was never acknowledged)"
                    );
                }
                for record in &replay.records {
                    state.apply(record);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(with_path(e, "open", &path)),
        }
        let file = rewrite(dir, &state)?;
        let (sender, receiver) = mpsc::unbounded_channel();
        let writer = Writer {
            file,
            dir: dir.to_path_buf(),
            state: state.clone(),
            grown: 0,
            rewrite_bytes,
            failed: None,
        };
        tokio::spawn(writer.run(receiver));
        Ok((Self { sender, path }, state))
    }

    /// Queues `records` to be appended in the order of calls; the receiver says when they are
    /// on disk (fsync'd), or why they are not.
    pub fn append(&self, records: Vec<StoreRecord>) -> oneshot::Receiver<io::Result<()>> {
        let (done, receiver) = oneshot::channel();
        if let Err(mpsc::error::SendError(Command::Write(batch))) = self
            .sender
            .send(Command::Write(WriteBatch { records, done }))
        {
            let _ = batch.done.send(Err(io::Error::other(
                "the group coordinator log is closed (broker shutting down)",
            )));
        }
        receiver
    }

    /// Queues `records` like [`GroupStore::append`] without waiting for them: for writes whose
    /// loss in a crash is harmless (a failure is logged by the writer).
    pub fn append_unacknowledged(&self, records: Vec<StoreRecord>) {
        drop(self.append(records));
    }

    /// Writes everything queued so far, then stops the writer; later appends fail.
    pub async fn close(&self) {
        let (done, closed) = oneshot::channel();
        if self.sender.send(Command::Close(done)).is_ok() {
            let _ = closed.await;
        }
    }

    /// The path of the log file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn with_path(error: io::Error, action: &str, path: &Path) -> io::Error {
    io::Error::new(
        error.kind(),
        format!(
            "group coordinator log: cannot {action} {}: {error}",
            path.display()
        ),
    )
}

/// The writer task's state. The blocking file work of each batch runs on tokio's blocking
/// pool, with the file and state moved there and back.
struct Writer {
    file: File,
    dir: PathBuf,
    /// The state the log holds, for rewrites.
    state: StoreState,
    /// Bytes appended since the last rewrite.
    grown: u64,
    rewrite_bytes: u64,
    /// Set once a write failed: the store refuses writes from then on.
    failed: Option<String>,
}

impl Writer {
    async fn run(mut self, mut receiver: mpsc::UnboundedReceiver<Command>) {
        let mut closing = None;
        while closing.is_none() {
            let Some(first) = receiver.recv().await else {
                break;
            };
            let mut batches = Vec::new();
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Write(batch) => batches.push(batch),
                    Command::Close(done) => {
                        closing = Some(done);
                        break;
                    }
                }
                if batches.len() < MAX_BATCHES_PER_SYNC {
                    next = receiver.try_recv().ok();
                }
            }
            if batches.is_empty() {
                continue;
            }
            let writer = tokio::task::spawn_blocking(move || {
                let mut writer = self;
                writer.write(batches);
                writer
            })
            .await;
            match writer {
                Ok(writer) => self = writer,
                Err(error) => {
                    tracing::error!(%error, "group coordinator log writer panicked");
                    return;
                }
            }
        }
        if let Some(done) = closing {
            let _ = done.send(());
        }
    }

    fn write(&mut self, batches: Vec<WriteBatch>) {
        if let Some(reason) = &self.failed {
            for batch in batches {
                let _ = batch.done.send(Err(io::Error::other(format!(
                    "the group coordinator log stopped accepting writes after an earlier failure: {reason}"
                ))));
            }
            return;
        }
        let mut buf = Vec::new();
        for batch in &batches {
            for record in &batch.records {
                encode_frame(record, &mut buf);
            }
        }
        if let Err(error) = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            tracing::error!(
                dir = %self.dir.display(),
                %error,
                "cannot write the group coordinator log; offset commits fail until the broker restarts"
            );
            let reason = error.to_string();
            for batch in batches {
                let _ = batch
                    .done
                    .send(Err(io::Error::new(error.kind(), reason.clone())));
            }
            self.failed = Some(reason);
            return;
        }
        self.grown += buf.len() as u64;
        for batch in batches {
            for record in &batch.records {
                self.state.apply(record);
            }
            let _ = batch.done.send(Ok(()));
        }
        if self.grown > self.rewrite_bytes {
            self.grown = 0;
            match rewrite(&self.dir, &self.state) {
                Ok(file) => self.file = file,
                // The old file is intact and still open for appending: keep going with it.
                Err(error) => {
                    tracing::warn!(dir = %self.dir.display(), %error, "cannot rewrite the group coordinator log");
                }
            }
        }
    }
}

/// Writes `state` into a fresh log and swaps it in atomically; returns it open for appending.
fn rewrite(dir: &Path, state: &StoreState) -> io::Result<File> {
    let path = dir.join(LOG_FILE_NAME);
    let tmp = dir.join(TMP_FILE_NAME);
    let mut buf = Vec::with_capacity(HEADER_LEN);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    for record in state.records() {
        encode_frame(&record, &mut buf);
    }
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&tmp)
        .map_err(|e| with_path(e, "create", &tmp))?;
    file.write_all(&buf)
        .and_then(|()| file.sync_all())
        .map_err(|e| with_path(e, "write", &tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(|e| with_path(e, "rename into place", &tmp))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| with_path(e, "fsync directory", dir))?;
    OpenOptions::new()
        .append(true)
        .open(&path)
        .map_err(|e| with_path(e, "open for appending", &path))
}

/// The outcome of reading a log image.
#[derive(Debug)]
pub(crate) struct Replay {
    pub(crate) records: Vec<StoreRecord>,
    /// Bytes up to the end of the last valid frame.
    pub(crate) valid_len: usize,
    /// Why reading stopped before the end, if it did.
    pub(crate) problem: Option<String>,
}

/// Reads a whole log image: header, then frames up to the end or the first invalid one.
pub(crate) fn replay(data: &[u8]) -> io::Result<Replay> {
    if data.len() < HEADER_LEN {
        // Only a crash during the very first rewrite can leave this, and then nothing was ever
        // acknowledged from it.
        return Ok(Replay {
            records: Vec::new(),
            valid_len: 0,
            problem: (!data.is_empty()).then(|| "truncated header".to_owned()),
        });
    }
    if &data[..MAGIC.len()] != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a sluice group coordinator log (bad magic); move the file away if it is not needed",
        ));
    }
    let version = u32::from_be_bytes(data[MAGIC.len()..HEADER_LEN].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "group coordinator log format version {version} is not supported (this broker reads version {FORMAT_VERSION})"
            ),
        ));
    }
    let mut records = Vec::new();
    let mut pos = HEADER_LEN;
    let mut problem = None;
    while pos < data.len() {
        match decode_frame(&data[pos..]) {
            Ok((record, used)) => {
                records.push(record);
                pos += used;
            }
            Err(reason) => {
                problem = Some(format!("at byte {pos}: {reason}"));
                break;
            }
        }
    }
    Ok(Replay {
        records,
        valid_len: pos,
        problem,
    })
}

/// Appends one frame (length, CRC-32C, body) for `record` to `buf`.
pub(crate) fn encode_frame(record: &StoreRecord, buf: &mut Vec<u8>) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 8]);
    encode_body(record, buf);
    let body_len = buf.len() - start - 8;
    let crc = crc32c::crc32c(&buf[start + 8..]);
    buf[start..start + 4].copy_from_slice(&(body_len as u32).to_be_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_be_bytes());
}

/// Reads one frame from the start of `data`: the record and the bytes it took.
pub(crate) fn decode_frame(data: &[u8]) -> Result<(StoreRecord, usize), String> {
    if data.len() < 8 {
        return Err("torn frame header".to_owned());
    }
    let len = u32::from_be_bytes(data[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_be_bytes(data[4..8].try_into().expect("4 bytes"));
    if len > MAX_FRAME_BODY {
        return Err(format!("frame length {len} is implausible"));
    }
    let Some(body) = data.get(8..8 + len) else {
        return Err("torn frame body".to_owned());
    };
    if crc32c::crc32c(body) != crc {
        return Err("checksum mismatch".to_owned());
    }
    let mut reader = Reader { data: body };
    let record = decode_body(&mut reader)?;
    if !reader.data.is_empty() {
        return Err("trailing bytes in frame".to_owned());
    }
    Ok((record, 8 + len))
}

fn encode_body(record: &StoreRecord, buf: &mut Vec<u8>) {
    match record {
        StoreRecord::Offset {
            group,
            topic,
            partition,
            offset,
        } => {
            buf.push(TAG_OFFSET);
            put_str(buf, group);
            put_str(buf, topic);
            buf.extend_from_slice(&partition.to_be_bytes());
            buf.extend_from_slice(&offset.offset.to_be_bytes());
            buf.extend_from_slice(&offset.leader_epoch.to_be_bytes());
            put_str(buf, &offset.metadata);
            buf.extend_from_slice(&offset.commit_timestamp_ms.to_be_bytes());
            buf.extend_from_slice(&offset.expire_timestamp_ms.unwrap_or(-1).to_be_bytes());
        }
        StoreRecord::OffsetTombstone {
            group,
            topic,
            partition,
        } => {
            buf.push(TAG_OFFSET_TOMBSTONE);
            put_str(buf, group);
            put_str(buf, topic);
            buf.extend_from_slice(&partition.to_be_bytes());
        }
        StoreRecord::Group { group, metadata } => {
            buf.push(TAG_GROUP);
            put_str(buf, group);
            put_opt_str(buf, metadata.protocol_type.as_deref());
            buf.extend_from_slice(&metadata.generation_id.to_be_bytes());
            put_opt_str(buf, metadata.protocol_name.as_deref());
            put_opt_str(buf, metadata.leader_id.as_deref());
            buf.extend_from_slice(&metadata.state_timestamp_ms.to_be_bytes());
            buf.extend_from_slice(&(metadata.members.len() as u32).to_be_bytes());
            for member in &metadata.members {
                put_str(buf, &member.member_id);
                put_opt_str(buf, member.group_instance_id.as_deref());
                put_str(buf, &member.client_id);
                put_str(buf, &member.client_host);
                buf.extend_from_slice(&member.rebalance_timeout_ms.to_be_bytes());
                buf.extend_from_slice(&member.session_timeout_ms.to_be_bytes());
                put_bytes(buf, &member.subscription);
                put_bytes(buf, &member.assignment);
            }
        }
        StoreRecord::GroupTombstone { group } => {
            buf.push(TAG_GROUP_TOMBSTONE);
            put_str(buf, group);
        }
    }
}

fn decode_body(reader: &mut Reader<'_>) -> Result<StoreRecord, String> {
    let tag = reader.u8()?;
    Ok(match tag {
        TAG_OFFSET => {
            let group = reader.string()?;
            let topic = reader.string()?;
            let partition = reader.i32()?;
            let offset = reader.i64()?;
            let leader_epoch = reader.i32()?;
            let metadata = reader.string()?;
            let commit_timestamp_ms = reader.i64()?;
            let expire = reader.i64()?;
            StoreRecord::Offset {
                group,
                topic,
                partition,
                offset: CommittedOffset {
                    offset,
                    leader_epoch,
                    metadata,
                    commit_timestamp_ms,
                    expire_timestamp_ms: (expire >= 0).then_some(expire),
                },
            }
        }
        TAG_OFFSET_TOMBSTONE => StoreRecord::OffsetTombstone {
            group: reader.string()?,
            topic: reader.string()?,
            partition: reader.i32()?,
        },
        TAG_GROUP => {
            let group = reader.string()?;
            let protocol_type = reader.opt_string()?;
            let generation_id = reader.i32()?;
            let protocol_name = reader.opt_string()?;
            let leader_id = reader.opt_string()?;
            let state_timestamp_ms = reader.i64()?;
            let count = reader.u32()? as usize;
            let mut members = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                members.push(StoredMember {
                    member_id: reader.string()?,
                    group_instance_id: reader.opt_string()?,
                    client_id: reader.string()?,
                    client_host: reader.string()?,
                    rebalance_timeout_ms: reader.i32()?,
                    session_timeout_ms: reader.i32()?,
                    subscription: reader.bytes()?,
                    assignment: reader.bytes()?,
                });
            }
            StoreRecord::Group {
                group,
                metadata: StoredGroup {
                    protocol_type,
                    generation_id,
                    protocol_name,
                    leader_id,
                    state_timestamp_ms,
                    members,
                },
            }
        }
        TAG_GROUP_TOMBSTONE => StoreRecord::GroupTombstone {
            group: reader.string()?,
        },
        other => return Err(format!("unknown record type {other}")),
    })
}

fn put_str(buf: &mut Vec<u8>, value: &str) {
    put_bytes(buf, value.as_bytes());
}

fn put_opt_str(buf: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => {
            buf.extend_from_slice(&(value.len() as i32).to_be_bytes());
            buf.extend_from_slice(value.as_bytes());
        }
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

fn put_bytes(buf: &mut Vec<u8>, value: &[u8]) {
    buf.extend_from_slice(&(value.len() as u32).to_be_bytes());
    buf.extend_from_slice(value);
}

struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.data.len() < n {
            return Err("record shorter than its fields".to_owned());
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn bytes(&mut self) -> Result<Bytes, String> {
        let len = self.u32()? as usize;
        Ok(Bytes::copy_from_slice(self.take(len)?))
    }

    fn string(&mut self) -> Result<String, String> {
        let len = self.u32()? as usize;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec()).map_err(|_| "string is not UTF-8".to_owned())
    }

    fn opt_string(&mut self) -> Result<Option<String>, String> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        let raw = self.take(len as usize)?;
        String::from_utf8(raw.to_vec())
            .map(Some)
            .map_err(|_| "string is not UTF-8".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn offset_record(group: &str, partition: i32, offset: i64) -> StoreRecord {
        StoreRecord::Offset {
            group: group.to_owned(),
            topic: "orders".to_owned(),
            partition,
            offset: CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 1_700_000_000_000,
                expire_timestamp_ms: None,
            },
        }
    }

    fn arb_string() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._-]{0,12}"
    }

    fn arb_offset() -> impl Strategy<Value = CommittedOffset> {
        (
            any::<i64>(),
            any::<i32>(),
            ".{0,20}",
            any::<i64>(),
            proptest::option::of(0i64..i64::MAX),
        )
            .prop_map(
                |(offset, leader_epoch, metadata, commit_timestamp_ms, expire_timestamp_ms)| {
                    CommittedOffset {
                        offset,
                        leader_epoch,
                        metadata,
                        commit_timestamp_ms,
                        expire_timestamp_ms,
                    }
                },
            )
    }

    fn arb_member() -> impl Strategy<Value = StoredMember> {
        (
            arb_string(),
            proptest::option::of(arb_string()),
            arb_string(),
            arb_string(),
            any::<i32>(),
            any::<i32>(),
            proptest::collection::vec(any::<u8>(), 0..40),
            proptest::collection::vec(any::<u8>(), 0..40),
        )
            .prop_map(
                |(member_id, group_instance_id, client_id, client_host, rb, st, sub, asg)| {
                    StoredMember {
                        member_id,
                        group_instance_id,
                        client_id,
                        client_host,
                        rebalance_timeout_ms: rb,
                        session_timeout_ms: st,
                        subscription: Bytes::from(sub),
                        assignment: Bytes::from(asg),
                    }
                },
            )
    }

    fn arb_record() -> impl Strategy<Value = StoreRecord> {
        prop_oneof![
            (arb_string(), arb_string(), any::<i32>(), arb_offset()).prop_map(
                |(group, topic, partition, offset)| StoreRecord::Offset {
                    group,
                    topic,
                    partition,
                    offset
                }
            ),
            (arb_string(), arb_string(), any::<i32>()).prop_map(|(group, topic, partition)| {
                StoreRecord::OffsetTombstone {
                    group,
                    topic,
                    partition,
                }
            }),
            (
                arb_string(),
                proptest::option::of(arb_string()),
                any::<i32>(),
                proptest::option::of(arb_string()),
                proptest::option::of(arb_string()),
                any::<i64>(),
                proptest::collection::vec(arb_member(), 0..4)
            )
                .prop_map(
                    |(
                        group,
                        protocol_type,
                        generation_id,
                        protocol_name,
                        leader_id,
                        ts,
                        members,
                    )| {
                        StoreRecord::Group {
                            group,
                            metadata: StoredGroup {
                                protocol_type,
                                generation_id,
                                protocol_name,
                                leader_id,
                                state_timestamp_ms: ts,
                                members,
                            },
                        }
                    }
                ),
            arb_string().prop_map(|group| StoreRecord::GroupTombstone { group }),
        ]
    }

    fn image(records: &[StoreRecord]) -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(MAGIC);
        data.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        for record in records {
            encode_frame(record, &mut data);
        }
        data
    }

    proptest! {
        #[test]
        fn records_round_trip(records in proptest::collection::vec(arb_record(), 0..20)) {
            let data = image(&records);
            let replayed = replay(&data).unwrap();
            prop_assert_eq!(replayed.records, records);
            prop_assert_eq!(replayed.valid_len, data.len());
            prop_assert!(replayed.problem.is_none());
        }

        /// A log cut anywhere (a crash mid-append) replays to a prefix of what was written,
        /// ending exactly at the last whole frame.
        #[test]
        fn torn_log_replays_a_prefix(
            records in proptest::collection::vec(arb_record(), 1..10),
            cut in any::<proptest::sample::Index>(),
        ) {
            let data = image(&records);
            let cut = HEADER_LEN + cut.index(data.len() - HEADER_LEN);
            let replayed = replay(&data[..cut]).unwrap();
            prop_assert!(replayed.records.len() <= records.len());
            prop_assert_eq!(&records[..replayed.records.len()], &replayed.records[..]);
            prop_assert_eq!(replayed.valid_len, image(&replayed.records).len());
            prop_assert_eq!(replayed.problem.is_some(), replayed.valid_len != cut);
        }

        /// A flipped bit anywhere in a frame is caught by the checksum or the framing.
        #[test]
        fn corruption_is_detected(
            records in proptest::collection::vec(arb_record(), 1..6),
            at in any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let mut data = image(&records);
            let at = HEADER_LEN + at.index(data.len() - HEADER_LEN);
            data[at] ^= 1 << bit;
            let replayed = replay(&data).unwrap();
            prop_assert!(replayed.problem.is_some());
            prop_assert_eq!(&records[..replayed.records.len()], &replayed.records[..]);
        }
    }

    #[test]
    fn state_applies_tombstones() {
        let mut state = StoreState::default();
        state.apply(&offset_record("g", 0, 5));
        state.apply(&offset_record("g", 1, 7));
        state.apply(&offset_record("g", 0, 9));
        assert_eq!(
            state.groups()["g"].offsets[&("orders".to_owned(), 0)].offset,
            9
        );
        state.apply(&StoreRecord::OffsetTombstone {
            group: "g".to_owned(),
            topic: "orders".to_owned(),
            partition: 0,
        });
        assert_eq!(state.groups()["g"].offsets.len(), 1);
        state.apply(&StoreRecord::OffsetTombstone {
            group: "g".to_owned(),
            topic: "orders".to_owned(),
            partition: 1,
        });
        assert!(
            state.groups().is_empty(),
            "a group with nothing left is gone"
        );
        state.apply(&offset_record("h", 0, 1));
        state.apply(&StoreRecord::GroupTombstone {
            group: "h".to_owned(),
        });
        assert!(state.groups().is_empty());
    }

    #[tokio::test]
    async fn appended_records_survive_reopen_and_are_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let (store, state) = GroupStore::open(dir.path(), u64::MAX).unwrap();
        assert!(state.groups().is_empty());
        for offset in 0..100 {
            store
                .append(vec![offset_record("g", 0, offset)])
                .await
                .unwrap()
                .unwrap();
        }
        let grown = fs::metadata(store.path()).unwrap().len();
        store.close().await;
        let (store, state) = GroupStore::open(dir.path(), u64::MAX).unwrap();
        assert_eq!(
            state.groups()["g"].offsets[&("orders".to_owned(), 0)].offset,
            99
        );
        let rewritten = fs::metadata(store.path()).unwrap().len();
        assert!(
            rewritten < grown / 50,
            "the rewrite keeps one record, not 100 ({rewritten} vs {grown} bytes)"
        );
    }

    #[tokio::test]
    async fn log_is_rewritten_while_running_once_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = GroupStore::open(dir.path(), 4096).unwrap();
        for offset in 0..1000 {
            store
                .append(vec![offset_record("g", (offset % 3) as i32, offset)])
                .await
                .unwrap()
                .unwrap();
        }
        let size = fs::metadata(store.path()).unwrap().len();
        assert!(size < 8192, "log kept compact while running ({size} bytes)");
        store.close().await;
        let (_, state) = GroupStore::open(dir.path(), 4096).unwrap();
        let offsets = &state.groups()["g"].offsets;
        assert_eq!(offsets[&("orders".to_owned(), 0)].offset, 999);
        assert_eq!(offsets[&("orders".to_owned(), 1)].offset, 997);
        assert_eq!(offsets[&("orders".to_owned(), 2)].offset, 998);
    }

    #[tokio::test]
    async fn torn_tail_is_dropped_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = GroupStore::open(dir.path(), u64::MAX).unwrap();
        store
            .append(vec![offset_record("g", 0, 1)])
            .await
            .unwrap()
            .unwrap();
        store
            .append(vec![offset_record("g", 0, 2)])
            .await
            .unwrap()
            .unwrap();
        let path = store.path().to_owned();
        store.close().await;
        let len = fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len - 3).unwrap();
        drop(file);
        let (_, state) = GroupStore::open(dir.path(), u64::MAX).unwrap();
        assert_eq!(
            state.groups()["g"].offsets[&("orders".to_owned(), 0)].offset,
            1
        );
    }

    #[tokio::test]
    async fn interrupted_rewrite_leaves_the_old_log() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(LOG_FILE_NAME),
            image(&[offset_record("g", 0, 42)]),
        )
        .unwrap();
        // A rewrite that crashed before its rename leaves a partial temporary file.
        fs::write(dir.path().join(TMP_FILE_NAME), b"SLUICEGC\0\0").unwrap();
        let (_store, state) = GroupStore::open(dir.path(), u64::MAX).unwrap();
        assert_eq!(
            state.groups()["g"].offsets[&("orders".to_owned(), 0)].offset,
            42
        );
        assert!(!dir.path().join(TMP_FILE_NAME).exists());
    }

    #[tokio::test]
    async fn foreign_file_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(LOG_FILE_NAME), b"something else entirely").unwrap();
        let error = GroupStore::open(dir.path(), u64::MAX).unwrap_err();
        assert!(error.to_string().contains("bad magic"), "{error}");
    }
}
