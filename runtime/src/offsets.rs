//! Source offsets: the per-task tracker that finds the highest contiguously acknowledged
//! offset of each source partition, and the worker's store backed by the `connect-offsets`
//! topic in Kafka Connect's format (key `["<connector>", {partition}]`, value the offset map,
//! a null value deleting it).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;

use crate::kafka::SharedProducer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value as Json;
use sluice_sdk::record::canonical_json;
use sluice_sdk::{OffsetSnapshot, SourceOffset, SourcePartition};
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::kafka::KafkaClients;

/// Bits of a delivery id that hold the entry's sequence number; the rest hold the partition.
const SEQ_BITS: u32 = 40;

/// Tracks the records of one source task between send and acknowledgement.
///
/// Each record gets a delivery id (source partition index and entry sequence number) that
/// travels with the Kafka message; acknowledgements may arrive in any order, and a partition's
/// offset becomes committable only when every earlier record of that partition is
/// acknowledged.
///
/// Records of one `poll` share an entry per source partition ([`OffsetTracker::submit_in_batch`]):
/// the entry keeps the offset of its last record and counts the records not yet acknowledged,
/// so a batch costs one entry and one kept offset instead of one per record. Only the newest
/// offset of a partition is ever written, so the offsets of the others are not needed.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: Vec<PartitionTrack>,
    index: HashMap<String, usize>,
    /// The partition of the previous record: most sources send runs of one partition, and
    /// comparing maps is much cheaper than keying them.
    last: Option<usize>,
    /// Partitions with an entry still open to records of the current batch.
    open: Vec<usize>,
    next_seq: u64,
    pending: usize,
}

#[derive(Debug)]
struct PartitionTrack {
    partition: SourcePartition,
    records: VecDeque<Pending>,
    committable: Option<SourceOffset>,
}

/// Records of one partition sent together, with the offset after the last of them.
#[derive(Debug)]
struct Pending {
    seq: u64,
    offset: SourceOffset,
    /// Records of the entry not yet acknowledged.
    unacked: usize,
    /// Still taking records of the current batch: not complete even when all are acknowledged.
    open: bool,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a record about to be sent, alone in its entry; returns its delivery id.
    pub fn submit(&mut self, partition: &SourcePartition, offset: SourceOffset) -> usize {
        let pid = self.partition_of(partition);
        self.push(pid, offset, false)
    }

    /// Registers a record about to be sent as part of the current batch: it joins the open
    /// entry of its partition (whose offset becomes this record's) until
    /// [`OffsetTracker::seal_batch`]. Each record must be acknowledged exactly once.
    pub fn submit_in_batch(&mut self, partition: &SourcePartition, offset: SourceOffset) -> usize {
        let pid = self.partition_of(partition);
        let track = &mut self.partitions[pid];
        if let Some(entry) = track.records.back_mut().filter(|e| e.open) {
            entry.offset = offset;
            entry.unacked += 1;
            self.pending += 1;
            return Self::id(pid, entry.seq);
        }
        self.open.push(pid);
        self.push(pid, offset, true)
    }

    /// Ends the current batch: its entries complete once their records are acknowledged.
    pub fn seal_batch(&mut self) {
        for pid in std::mem::take(&mut self.open) {
            let track = &mut self.partitions[pid];
            if let Some(entry) = track.records.back_mut() {
                entry.open = false;
            }
            track.advance();
        }
    }

    fn push(&mut self, pid: usize, offset: SourceOffset, open: bool) -> usize {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending += 1;
        self.partitions[pid].records.push_back(Pending {
            seq,
            offset,
            unacked: 1,
            open,
        });
        Self::id(pid, seq)
    }

    fn id(pid: usize, seq: u64) -> usize {
        (pid << SEQ_BITS) | (seq as usize & ((1usize << SEQ_BITS) - 1))
    }

    fn partition_of(&mut self, partition: &SourcePartition) -> usize {
        let pid = match self
            .last
            .filter(|&pid| self.partitions[pid].partition == *partition)
        {
            Some(pid) => pid,
            None => self.partition_id(partition),
        };
        self.last = Some(pid);
        pid
    }

    fn partition_id(&mut self, partition: &SourcePartition) -> usize {
        let key = canonical_json(&Json::Object(partition.clone()));
        match self.index.get(&key) {
            Some(&pid) => pid,
            None => {
                self.partitions.push(PartitionTrack {
                    partition: partition.clone(),
                    records: VecDeque::new(),
                    committable: None,
                });
                self.index.insert(key, self.partitions.len() - 1);
                self.partitions.len() - 1
            }
        }
    }

    /// Marks a record of the entry with delivery id `id` as acknowledged (or dead-lettered).
    pub fn acknowledge(&mut self, id: usize) {
        let pid = id >> SEQ_BITS;
        let seq_low = (id & ((1usize << SEQ_BITS) - 1)) as u64;
        let Some(track) = self.partitions.get_mut(pid) else {
            return;
        };
        let mask = (1u64 << SEQ_BITS) - 1;
        // Acknowledgements mostly come in order: look at the oldest entry first.
        let pos = if track
            .records
            .front()
            .is_some_and(|p| p.seq & mask == seq_low)
        {
            Some(0)
        } else {
            track
                .records
                .binary_search_by(|p| (p.seq & mask).cmp(&seq_low))
                .ok()
                .or_else(|| track.records.iter().position(|p| p.seq & mask == seq_low))
        };
        if let Some(pos) = pos {
            let entry = &mut track.records[pos];
            if entry.unacked > 0 {
                entry.unacked -= 1;
                self.pending -= 1;
            }
        }
        track.advance();
    }

    /// The offsets that became committable since the last call, per partition.
    pub fn take_committable(&mut self) -> Vec<(SourcePartition, SourceOffset)> {
        self.partitions
            .iter_mut()
            .filter_map(|t| t.committable.take().map(|o| (t.partition.clone(), o)))
            .collect()
    }

    /// Puts offsets back after a failed write, unless newer ones arrived meanwhile.
    pub fn restore(&mut self, offsets: Vec<(SourcePartition, SourceOffset)>) {
        for (partition, offset) in offsets {
            let key = canonical_json(&Json::Object(partition));
            if let Some(&pid) = self.index.get(&key) {
                let track = &mut self.partitions[pid];
                if track.committable.is_none() {
                    track.committable = Some(offset);
                }
            }
        }
    }

    /// Records sent but not yet acknowledged.
    pub fn pending(&self) -> usize {
        self.pending
    }
}

impl PartitionTrack {
    /// Takes the offsets of the complete entries at the front.
    fn advance(&mut self) {
        while self
            .records
            .front()
            .is_some_and(|p| p.unacked == 0 && !p.open)
        {
            let done = self.records.pop_front().expect("front exists");
            self.committable = Some(done.offset);
        }
    }
}

type ConnectorOffsets = HashMap<String, (SourcePartition, SourceOffset)>;

/// The worker's view of the `connect-offsets` topic.
#[derive(Debug)]
pub struct OffsetStore {
    topic: String,
    producer: SharedProducer,
    offsets: Mutex<HashMap<String, ConnectorOffsets>>,
}

impl OffsetStore {
    /// Reads the whole offsets topic (unless `empty`: it was just created).
    ///
    /// # Errors
    /// When the topic cannot be read.
    pub async fn load(
        clients: &KafkaClients,
        topic: &str,
        empty: bool,
        producer: SharedProducer,
    ) -> Result<Self> {
        let records = if empty {
            Vec::new()
        } else {
            let consumer = clients.reader()?;
            let topic_name = topic.to_string();
            tokio::task::spawn_blocking(move || read_topic(&consumer, &topic_name))
                .await
                .map_err(|e| Error::Other(e.to_string()))??
        };
        let mut offsets: HashMap<String, ConnectorOffsets> = HashMap::new();
        let mut count = 0usize;
        for (key, value) in records {
            let Some((connector, partition)) = parse_offset_key(&key) else {
                warn!(topic, key = %String::from_utf8_lossy(&key), "skipping an offsets record whose key is not [\"<connector>\", {{partition}}]");
                continue;
            };
            let entry = offsets.entry(connector).or_default();
            let pkey = canonical_json(&Json::Object(partition.clone()));
            match value.as_deref().map(serde_json::from_slice::<Json>) {
                None => {
                    entry.remove(&pkey);
                }
                Some(Ok(Json::Object(offset))) => {
                    entry.insert(pkey, (partition, offset));
                    count += 1;
                }
                Some(Ok(Json::Null)) => {
                    entry.remove(&pkey);
                }
                Some(_) => warn!(
                    topic,
                    "skipping an offsets record whose value is not a JSON object"
                ),
            }
        }
        info!(
            topic,
            records = count,
            connectors = offsets.len(),
            "loaded source offsets"
        );
        Ok(Self {
            topic: topic.to_string(),
            producer,
            offsets: Mutex::new(offsets),
        })
    }

    /// The committed offsets of `connector`.
    pub fn snapshot(&self, connector: &str) -> OffsetSnapshot {
        OffsetSnapshot::new(self.list(connector))
    }

    /// The committed offsets of `connector`, as (partition, offset) pairs.
    pub fn list(&self, connector: &str) -> Vec<(SourcePartition, SourceOffset)> {
        let offsets = self.offsets.lock().expect("offsets lock");
        let mut list: Vec<_> = offsets
            .get(connector)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        list.sort_by_key(|(p, _)| canonical_json(&Json::Object(p.clone())));
        list
    }

    /// Writes offsets of `connector` (`None` deletes a partition's offset) and waits until
    /// Kafka has acknowledged every write.
    ///
    /// # Errors
    /// When a write is not acknowledged within `timeout`.
    pub async fn write(
        &self,
        connector: &str,
        entries: &[(SourcePartition, Option<SourceOffset>)],
        timeout: Duration,
    ) -> Result<()> {
        let encoded: Vec<(Vec<u8>, Option<Vec<u8>>)> = entries
            .iter()
            .map(|(partition, offset)| {
                let key = serde_json::to_vec(&Json::Array(vec![
                    Json::from(connector),
                    Json::Object(partition.clone()),
                ]))
                .expect("JSON serialises");
                let value = offset
                    .as_ref()
                    .map(|o| serde_json::to_vec(o).expect("JSON serialises"));
                (key, value)
            })
            .collect();
        let mut deliveries = Vec::with_capacity(encoded.len());
        for (key, value) in &encoded {
            let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&self.topic).key(key);
            if let Some(v) = value {
                record = record.payload(v);
            }
            deliveries.push(self.producer.send(record, timeout));
        }
        for d in futures::future::join_all(deliveries).await {
            d.map_err(|(e, _)| {
                Error::Other(format!(
                    "cannot write source offsets to '{}': {e}",
                    self.topic
                ))
            })?;
        }
        let mut offsets = self.offsets.lock().expect("offsets lock");
        let entry = offsets.entry(connector.to_string()).or_default();
        for (partition, offset) in entries {
            let pkey = canonical_json(&Json::Object(partition.clone()));
            match offset {
                Some(o) => {
                    entry.insert(pkey, (partition.clone(), o.clone()));
                }
                None => {
                    entry.remove(&pkey);
                }
            }
        }
        Ok(())
    }
}

fn parse_offset_key(key: &[u8]) -> Option<(String, SourcePartition)> {
    match serde_json::from_slice::<Json>(key).ok()? {
        Json::Array(mut items) if items.len() == 2 => {
            let partition = match items.pop()? {
                Json::Object(p) => p,
                _ => return None,
            };
            let connector = items.pop()?.as_str()?.to_string();
            Some((connector, partition))
        }
        _ => None,
    }
}

/// A record's key and value (`None`: a tombstone).
pub type KeyValue = (Vec<u8>, Option<Vec<u8>>);

/// Every (key, value) of `topic`, from the beginning to the current end, partition by
/// partition in offset order.
pub fn read_topic(consumer: &BaseConsumer, topic: &str) -> Result<Vec<KeyValue>> {
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(topic, *p, timeout)?;
        if high > low {
            ends.insert(*p, high);
            tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    consumer.assign(&tpl)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !ends.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(Error::Other(format!(
                "reading topic '{topic}' did not finish within 120 s"
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(m)) => {
                out.push((
                    m.key().unwrap_or_default().to_vec(),
                    m.payload().map(<[u8]>::to_vec),
                ));
                if let Some(end) = ends.get(&m.partition()) {
                    if m.offset() + 1 >= *end {
                        ends.remove(&m.partition());
                    }
                }
            }
        }
    }
    consumer.unassign()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Json) -> serde_json::Map<String, Json> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn only_contiguously_acknowledged_offsets_commit() {
        let mut t = OffsetTracker::new();
        let a = map(json!({"file": "a"}));
        let b = map(json!({"file": "b"}));
        let a1 = t.submit(&a, map(json!({"position": 1})));
        let a2 = t.submit(&a, map(json!({"position": 2})));
        let b1 = t.submit(&b, map(json!({"position": 10})));
        let a3 = t.submit(&a, map(json!({"position": 3})));
        assert_eq!(t.pending(), 4);

        t.acknowledge(a2);
        t.acknowledge(b1);
        // a2 waits for a1; b is independent.
        assert_eq!(
            t.take_committable(),
            vec![(b.clone(), map(json!({"position": 10})))]
        );
        t.acknowledge(a3);
        assert!(t.take_committable().is_empty());
        t.acknowledge(a1);
        assert_eq!(
            t.take_committable(),
            vec![(a.clone(), map(json!({"position": 3})))]
        );
        assert_eq!(t.pending(), 0);
        // A second acknowledgement of the same record changes nothing.
        t.acknowledge(a1);
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_batch_commits_its_last_offset_once_all_its_records_are_acknowledged() {
        let mut t = OffsetTracker::new();
        let a = map(json!({"file": "a"}));
        let b = map(json!({"file": "b"}));
        let first: Vec<usize> = (1..=3)
            .map(|i| t.submit_in_batch(&a, map(json!({"position": i}))))
            .collect();
        let b1 = t.submit_in_batch(&b, map(json!({"position": 10})));
        t.seal_batch();
        let second = t.submit_in_batch(&a, map(json!({"position": 4})));
        assert_eq!(t.pending(), 5);
        // The second batch's record is acknowledged before the first batch's.
        t.acknowledge(second);
        t.acknowledge(first[0]);
        t.acknowledge(first[2]);
        assert!(t.take_committable().is_empty());
        t.acknowledge(b1);
        assert_eq!(
            t.take_committable(),
            vec![(b.clone(), map(json!({"position": 10})))]
        );
        t.acknowledge(first[1]);
        // The first batch is complete; the second is still open.
        assert_eq!(
            t.take_committable(),
            vec![(a.clone(), map(json!({"position": 3})))]
        );
        assert_eq!(t.pending(), 0);
        t.seal_batch();
        assert_eq!(t.take_committable(), vec![(a, map(json!({"position": 4})))]);
    }

    #[test]
    fn restore_keeps_newer_offsets() {
        let mut t = OffsetTracker::new();
        let a = map(json!({"file": "a"}));
        let id = t.submit(&a, map(json!({"position": 1})));
        t.acknowledge(id);
        let taken = t.take_committable();
        let id = t.submit(&a, map(json!({"position": 2})));
        t.acknowledge(id);
        t.restore(taken);
        assert_eq!(t.take_committable(), vec![(a, map(json!({"position": 2})))]);
    }

    #[test]
    fn offset_keys_parse_as_kafka_connect_writes_them() {
        let (c, p) =
            parse_offset_key(br#"["orders",{"protocol":"1","table":"db.public.t"}]"#).unwrap();
        assert_eq!(c, "orders");
        assert_eq!(p, map(json!({"protocol": "1", "table": "db.public.t"})));
        assert!(parse_offset_key(b"garbage").is_none());
        assert!(parse_offset_key(br#"["a","b"]"#).is_none());
    }
}
