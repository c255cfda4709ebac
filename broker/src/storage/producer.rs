//! Idempotent-producer state of one partition: per producer id, the epoch and the last five
//! batches' sequence ranges, as Kafka keeps them. It is rebuilt from the batch headers in the
//! log (so it survives restart) starting from a snapshot written at segment roll and at
//! shutdown.

use std::collections::{BTreeMap, VecDeque};

use kafka_protocol::ResponseError;
use serde::{Deserialize, Serialize};

use super::batch::BatchHeader;

/// How many recent batches per producer are remembered for duplicate detection
/// (librdkafka and the Java client keep at most 5 requests in flight with idempotence).
const RECENT_BATCHES: usize = 5;

/// A batch remembered for duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BatchMeta {
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProducerEntry {
    pub(crate) epoch: i16,
    pub(crate) batches: VecDeque<BatchMeta>,
}

/// The verdict on an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// New and in order: append it.
    Append,
    /// Already in the log at this base offset: answer success without appending.
    Duplicate { base_offset: i64 },
    /// Refuse with this error.
    Reject(ResponseError),
}

/// Producer state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProducerStateTable {
    pub(crate) producers: BTreeMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStateTable {
    /// Decides what to do with a batch from an idempotent producer (producer id >= 0).
    pub(crate) fn check(&self, header: &BatchHeader) -> SequenceCheck {
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // Unknown producer (new, or its state is gone): accept any starting sequence,
            // as Kafka does since KIP-360.
            return SequenceCheck::Append;
        };
        if header.producer_epoch < entry.epoch {
            return SequenceCheck::Reject(ResponseError::InvalidProducerEpoch);
        }
        if header.producer_epoch > entry.epoch {
            return if header.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
            };
        }
        let last_seq = header.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == header.base_sequence && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            };
        }
        match entry.batches.back() {
            Some(last) if header.base_sequence != next_seq(last.last_seq) => {
                SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Records a batch now in the log at `base_offset` (its header's offset may be stale).
    pub(crate) fn record(&mut self, header: &BatchHeader, base_offset: i64) {
        if !header.has_producer_id() {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == RECENT_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: header.base_sequence,
            last_seq: header.last_sequence(),
            base_offset,
            last_offset: base_offset + i64::from(header.last_offset_delta),
        });
    }
}

/// On-disk form of a producer-state snapshot: the state after every batch below `offset`.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ProducerSnapshot {
    pub(crate) offset: i64,
    pub(crate) state: ProducerStateTable,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 49,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn duplicates_are_found_and_gaps_rejected() {
        let mut table = ProducerStateTable::default();
        let first = header(7, 0, 0, 3);
        assert_eq!(table.check(&first), SequenceCheck::Append);
        table.record(&first, 100);
        assert_eq!(
            table.check(&first),
            SequenceCheck::Duplicate { base_offset: 100 }
        );
        let gap = header(7, 0, 5, 1);
        assert_eq!(
            table.check(&gap),
            SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
        );
        let next = header(7, 0, 3, 2);
        assert_eq!(table.check(&next), SequenceCheck::Append);
        table.record(&next, 103);
        let stale = header(7, -1, 5, 1);
        assert!(matches!(table.check(&stale), SequenceCheck::Reject(_)));
        let bumped = header(7, 1, 0, 1);
        assert_eq!(table.check(&bumped), SequenceCheck::Append);
        let bumped_late = header(7, 1, 4, 1);
        table.record(&bumped, 105);
        assert_eq!(
            table.check(&bumped_late),
            SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut table = ProducerStateTable::default();
        for i in 0..7 {
            table.record(&header(1, 0, i, 1), i64::from(i));
        }
        assert_eq!(table.producers[&1].batches.len(), RECENT_BATCHES);
        // Batch 0 is forgotten: re-sending it is now out of order, not a duplicate.
        assert_eq!(
            table.check(&header(1, 0, 0, 1)),
            SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            table.check(&header(1, 0, 6, 1)),
            SequenceCheck::Duplicate { base_offset: 6 }
        );
    }
}
