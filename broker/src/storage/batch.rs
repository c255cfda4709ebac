//! Record batch (magic v2) framing: the 61-byte header, CRC-32C and the fields the broker
//! rewrites. The records inside are never decoded or recompressed here.
//!
//! Layout (big-endian), as in Kafka's `DefaultRecordBatch`:
//! ```text
//! 0  baseOffset i64        8  batchLength i32      12 partitionLeaderEpoch i32
//! 16 magic i8              17 crc u32              21 attributes i16
//! 23 lastOffsetDelta i32   27 baseTimestamp i64    35 maxTimestamp i64
//! 43 producerId i64        51 producerEpoch i16    53 baseSequence i32
//! 57 recordCount i32       61 records...
//! ```
//! `batchLength` counts the bytes after itself; the CRC covers attributes to the end.

use std::fmt;

/// Bytes before `batchLength`'s coverage starts: baseOffset + batchLength.
pub(crate) const LOG_OVERHEAD: usize = 12;
/// Size of the whole v2 batch header.
pub(crate) const HEADER_LEN: usize = 61;
/// Smallest legal `batchLength` (a header without records).
const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
const CRC_START: usize = 21;

const ATTR_COMPRESSION_MASK: i16 = 0x07;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// The parsed header of one record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub(crate) base_offset: i64,
    pub(crate) batch_length: i32,
    pub(crate) magic: i8,
    pub(crate) crc: u32,
    pub(crate) attributes: i16,
    pub(crate) last_offset_delta: i32,
    pub(crate) base_timestamp: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) base_sequence: i32,
    pub(crate) record_count: i32,
}

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BatchError {
    /// Fewer bytes than the header or than `batchLength` says.
    Truncated { needed: usize, available: usize },
    /// `batchLength` below the header size or negative.
    BadLength(i32),
    /// Not a magic v2 batch.
    BadMagic(i8),
    /// The stored CRC does not match the bytes.
    BadCrc { stored: u32, computed: u32 },
    /// Header fields that contradict each other.
    Inconsistent(&'static str),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { needed, available } => {
                write!(f, "record batch truncated: needs {needed} bytes, {available} present")
            }
            Self::BadLength(len) => write!(f, "record batch length {len} is impossible"),
            Self::BadMagic(magic) => write!(
                f,
                "record batch magic {magic} is not supported (only v2 batches are; upgrade the client)"
            ),
            Self::BadCrc { stored, computed } => write!(
                f,
                "record batch CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            Self::Inconsistent(what) => write!(f, "record batch header is inconsistent: {what}"),
        }
    }
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `bytes` (which needs at least [`HEADER_LEN`] bytes).
    /// Checks only what the header alone can show; see [`validate_batch`] for the CRC.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        if bytes.len() < HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: HEADER_LEN,
                available: bytes.len(),
            });
        }
        let header = Self {
            base_offset: be_i64(bytes, 0),
            batch_length: be_i32(bytes, 8),
            magic: bytes[16] as i8,
            crc: be_u32(bytes, 17),
            attributes: be_i16(bytes, 21),
            last_offset_delta: be_i32(bytes, 23),
            base_timestamp: be_i64(bytes, 27),
            max_timestamp: be_i64(bytes, 35),
            producer_id: be_i64(bytes, 43),
            producer_epoch: be_i16(bytes, 51),
            base_sequence: be_i32(bytes, 53),
            record_count: be_i32(bytes, 57),
        };
        if header.batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::BadLength(header.batch_length));
        }
        if header.magic != 2 {
            return Err(BatchError::BadMagic(header.magic));
        }
        if header.last_offset_delta < 0 {
            return Err(BatchError::Inconsistent("negative lastOffsetDelta"));
        }
        Ok(header)
    }

    /// Bytes this batch occupies in a log, header included.
    pub(crate) fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub(crate) fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offsets this batch takes in the log.
    pub(crate) fn offset_count(&self) -> i64 {
        i64::from(self.last_offset_delta) + 1
    }

    pub(crate) fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    pub(crate) fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub(crate) fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    pub(crate) fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the batch's last record (sequences wrap at `i32::MAX`).
    pub(crate) fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return self.base_sequence;
        }
        let last = i64::from(self.base_sequence) + i64::from(self.last_offset_delta);
        if last > i64::from(i32::MAX) {
            (last - i64::from(i32::MAX) - 1) as i32
        } else {
            last as i32
        }
    }
}

/// Validates one complete batch occupying exactly `bytes`: framing, magic, CRC-32C and the
/// header's self-consistency.
pub(crate) fn validate_batch(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if header.total_len() != bytes.len() {
        return Err(BatchError::Truncated {
            needed: header.total_len(),
            available: bytes.len(),
        });
    }
    let computed = crc32c::crc32c(&bytes[CRC_START..]);
    if computed != header.crc {
        return Err(BatchError::BadCrc {
            stored: header.crc,
            computed,
        });
    }
    if header.record_count < 0 {
        return Err(BatchError::Inconsistent("negative recordCount"));
    }
    if header.compression() > 4 {
        return Err(BatchError::Inconsistent("unknown compression codec"));
    }
    Ok(header)
}

/// Splits a produce request's record set into validated batches. Each item is the header and
/// the byte range of the batch within `bytes`.
pub(crate) fn split_batches(
    bytes: &[u8],
) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, BatchError> {
    let mut batches = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.len() < LOG_OVERHEAD {
            return Err(BatchError::Truncated {
                needed: LOG_OVERHEAD,
                available: rest.len(),
            });
        }
        let length = be_i32(rest, 8);
        if length < MIN_BATCH_LENGTH {
            return Err(BatchError::BadLength(length));
        }
        let total = LOG_OVERHEAD + length as usize;
        if rest.len() < total {
            return Err(BatchError::Truncated {
                needed: total,
                available: rest.len(),
            });
        }
        let header = validate_batch(&rest[..total])?;
        batches.push((header, pos..pos + total));
        pos += total;
    }
    Ok(batches)
}

/// Rewrites the fields the broker owns: the base offset and the partition leader epoch.
/// Neither is covered by the CRC, so the stored CRC stays valid.
pub(crate) fn assign_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&0i32.to_be_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };
    use proptest::prelude::*;

    pub(crate) fn record(offset: i64, key: Option<Vec<u8>>, value: Option<Vec<u8>>) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            // Non-idempotent: base sequence -1 (the encoder derives it from offset - sequence).
            sequence: offset as i32 - 1,
            timestamp: 1_700_000_000_000 + offset,
            key: key.map(Bytes::from),
            value: value.map(Bytes::from),
            headers: Default::default(),
        }
    }

    /// Encodes records into one v2 batch with the given codec.
    pub(crate) fn encode(records: &[Record], compression: Compression) -> BytesMut {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        buf
    }

    #[test]
    fn header_of_an_encoded_batch_is_read_back() {
        let records: Vec<_> = (0..3)
            .map(|i| record(i, Some(b"k".to_vec()), Some(vec![i as u8; 10])))
            .collect();
        let bytes = encode(&records, Compression::None);
        let header = validate_batch(&bytes).unwrap();
        assert_eq!(header.record_count, 3);
        assert_eq!(header.last_offset_delta, 2);
        assert_eq!(header.total_len(), bytes.len());
        assert_eq!(header.max_timestamp, 1_700_000_000_002);
    }

    #[test]
    fn a_flipped_bit_fails_the_crc() {
        let bytes = encode(
            &[record(0, None, Some(b"hello".to_vec()))],
            Compression::None,
        );
        let mut bad = bytes.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            validate_batch(&bad),
            Err(BatchError::BadCrc { .. })
        ));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut header = BatchHeader::parse(&encode(
            &[record(0, None, None), record(1, None, None)],
            Compression::None,
        ))
        .unwrap();
        header.base_sequence = i32::MAX;
        assert_eq!(header.last_sequence(), 0);
    }

    fn codec() -> impl Strategy<Value = Compression> {
        prop_oneof![
            Just(Compression::None),
            Just(Compression::Gzip),
            Just(Compression::Snappy),
            Just(Compression::Lz4),
            Just(Compression::Zstd),
        ]
    }

    fn records() -> impl Strategy<Value = Vec<Record>> {
        prop::collection::vec(
            (
                prop::option::of(prop::collection::vec(any::<u8>(), 0..20)),
                prop::option::of(prop::collection::vec(any::<u8>(), 0..200)),
                prop::collection::vec(
                    (
                        "[a-z]{1,8}",
                        prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
                    ),
                    0..3,
                ),
            ),
            1..20,
        )
        .prop_map(|items| {
            items
                .into_iter()
                .enumerate()
                .map(|(i, (key, value, headers))| {
                    let mut r = record(i as i64, key, value);
                    for (name, value) in headers {
                        r.headers
                            .insert(StrBytes::from_string(name), value.map(Bytes::from));
                    }
                    r
                })
                .collect()
        })
    }

    proptest! {
        /// A batch split out of a record set, given a new base offset, still passes the CRC
        /// and decodes to the same records at the shifted offsets, for every codec.
        #[test]
        fn split_assign_decode_round_trip(
            first in records(), second in records(), codec in codec(), base in 0i64..1 << 40
        ) {
            let mut set = encode(&first, codec);
            set.extend_from_slice(&encode(&second, codec));
            let batches = split_batches(&set).unwrap();
            prop_assert_eq!(batches.len(), 2);
            let mut stored = BytesMut::new();
            let mut next = base;
            for (header, range) in &batches {
                let mut bytes = set[range.clone()].to_vec();
                assign_offset(&mut bytes, next);
                let reread = validate_batch(&bytes).unwrap();
                prop_assert_eq!(reread.base_offset, next);
                next += header.offset_count();
                stored.extend_from_slice(&bytes);
            }
            let mut buf = stored.freeze();
            let sets = RecordBatchDecoder::decode_all(&mut buf).unwrap();
            let decoded: Vec<Record> = sets.into_iter().flat_map(|s| s.records).collect();
            prop_assert_eq!(decoded.len(), first.len() + second.len());
            for (i, (got, want)) in decoded.iter().zip(first.iter().chain(second.iter())).enumerate() {
                prop_assert_eq!(got.offset, base + i as i64);
                prop_assert_eq!(&got.key, &want.key);
                prop_assert_eq!(&got.value, &want.value);
                prop_assert_eq!(&got.headers, &want.headers);
            }
        }

        /// Arbitrary bytes never panic the splitter; they are accepted only as valid batches.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(batches) = split_batches(&bytes) {
                for (header, range) in batches {
                    prop_assert_eq!(header.total_len(), range.len());
                }
            }
        }
    }
}
