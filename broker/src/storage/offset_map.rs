//! The cleaner's key map: the newest offset of each key, in memory bounded by
//! `log.cleaner.dedupe.buffer.size`.
//!
//! As Kafka's `SkimpyOffsetMap`, it stores a 128-bit hash of each key instead of the key
//! (24 bytes a slot with the offset), in an open-addressing table that is never filled beyond
//! `log.cleaner.io.buffer.load.factor`. The hash is two SipHash-1-3 with keys drawn at random
//! for each map, so keys cannot be chosen to collide; two keys of one partition colliding on
//! all 128 bits (odds about n²/2¹²⁹ for n keys) would make the cleaner drop the older key's
//! records as if the newer one had superseded them, as Kafka accepts for MD5.
//!
//! The table is sized for the keys a pass can meet (at most the offsets of the uncleaned part
//! of the log), never above the buffer, and freed after the pass: a broker that cleans small
//! partitions does not keep 128 MiB resident.

use std::hash::{BuildHasher, RandomState};

/// Bytes a slot takes: two halves of the key hash and the offset.
pub(crate) const SLOT_BYTES: u64 = 24;

/// The memory a key map may use, from the broker settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct MapLimits {
    /// `log.cleaner.dedupe.buffer.size`.
    pub(crate) buffer_bytes: u64,
    /// `log.cleaner.io.buffer.load.factor`.
    pub(crate) load_factor: f64,
}

impl MapLimits {
    pub(crate) fn from_config(config: &crate::config::BrokerConfig) -> Self {
        Self {
            buffer_bytes: config.log_cleaner_dedupe_buffer_size,
            load_factor: config.log_cleaner_io_buffer_load_factor,
        }
    }

    /// Slots the whole buffer holds.
    fn slots(&self) -> usize {
        usize::try_from(self.buffer_bytes / SLOT_BYTES)
            .unwrap_or(usize::MAX)
            .max(2)
    }

    /// Keys one pass may map: the buffer's slots times the load factor, leaving at least one
    /// slot empty so that probing always ends.
    pub(crate) fn max_keys(&self) -> usize {
        let slots = self.slots();
        ((slots as f64 * self.load_factor) as usize).clamp(1, slots - 1)
    }
}

/// Newest offset per key hash, for at most a fixed number of keys.
#[derive(Debug)]
pub(crate) struct OffsetMap {
    /// Three words a slot: the two hash halves and `offset + 1` (0 marks an empty slot).
    table: Vec<u64>,
    slots: usize,
    len: usize,
    max_keys: usize,
    hashers: (RandomState, RandomState),
}

impl OffsetMap {
    /// A map within `limits` for at most `expected_keys` keys (an upper bound is enough: the
    /// table is never larger than the buffer allows).
    pub(crate) fn new(limits: MapLimits, expected_keys: u64) -> Self {
        let max_keys = limits.max_keys();
        let (slots, max_keys) = match usize::try_from(expected_keys) {
            Ok(expected) if expected < max_keys => {
                let expected = expected.max(1);
                let slots = ((expected as f64 / limits.load_factor).ceil() as usize + 1)
                    .clamp(expected + 1, limits.slots());
                (slots, expected)
            }
            _ => (limits.slots(), max_keys),
        };
        // Zeroed memory: the pages of the table are taken from the system as slots are used.
        Self {
            table: vec![0u64; slots * 3],
            slots,
            len: 0,
            max_keys,
            hashers: (RandomState::new(), RandomState::new()),
        }
    }

    /// Keys in the map.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Keys the map takes before [`OffsetMap::put`] refuses new ones.
    pub(crate) fn capacity(&self) -> usize {
        self.max_keys
    }

    /// Bytes of the table.
    pub(crate) fn table_bytes(&self) -> u64 {
        self.slots as u64 * SLOT_BYTES
    }

    fn hash(&self, key: &[u8]) -> (u64, u64) {
        let low = self.hashers.0.hash_one(key);
        let high = self.hashers.1.hash_one(key);
        // 0 is never a stored high half, so a zeroed slot cannot look like a key.
        (low, high | 1 << 63)
    }

    /// The slot holding `hash`, or the empty slot where it would go.
    fn find(&self, (low, high): (u64, u64)) -> usize {
        // Multiply-shift maps the hash onto any table size without a modulo.
        let mut slot = ((u128::from(low) * self.slots as u128) >> 64) as usize;
        loop {
            let at = slot * 3;
            let stored_high = self.table[at + 1];
            if stored_high == 0 || (stored_high == high && self.table[at] == low) {
                return slot;
            }
            slot += 1;
            if slot == self.slots {
                slot = 0;
            }
        }
    }

    /// Records `offset` as the newest offset of `key` (offsets arrive in increasing order).
    /// Returns false, changing nothing, when `key` is new and the map is full.
    pub(crate) fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = self.hash(key);
        let at = self.find(hash) * 3;
        if self.table[at + 1] == 0 {
            if self.len == self.max_keys {
                return false;
            }
            self.len += 1;
            self.table[at] = hash.0;
            self.table[at + 1] = hash.1;
        }
        self.table[at + 2] = offset as u64 + 1;
        true
    }

    /// The newest offset recorded for `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<i64> {
        let at = self.find(self.hash(key)) * 3;
        (self.table[at + 1] != 0).then(|| (self.table[at + 2] - 1) as i64)
    }

    /// Empties the map, keeping its table.
    pub(crate) fn clear(&mut self) {
        self.table.fill(0);
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn limits(buffer_bytes: u64) -> MapLimits {
        MapLimits {
            buffer_bytes,
            load_factor: 0.9,
        }
    }

    #[test]
    fn the_buffer_bounds_keys_and_table() {
        let kafka_default = limits(128 * 1024 * 1024);
        assert_eq!(kafka_default.max_keys(), 5_033_164);
        let map = OffsetMap::new(kafka_default, u64::MAX);
        assert_eq!(map.capacity(), 5_033_164);
        assert!(map.table_bytes() <= 128 * 1024 * 1024);
        // A small partition gets a small table.
        let map = OffsetMap::new(kafka_default, 1000);
        assert_eq!(map.capacity(), 1000);
        assert!(
            map.table_bytes() < 1200 * SLOT_BYTES,
            "{}",
            map.table_bytes()
        );
        // Load factor 1 still leaves a slot empty.
        let full = MapLimits {
            buffer_bytes: 240,
            load_factor: 1.0,
        };
        assert_eq!(full.max_keys(), 9);
    }

    #[test]
    fn a_full_map_refuses_new_keys_but_updates_known_ones() {
        let mut map = OffsetMap::new(limits(1024), u64::MAX);
        let capacity = map.capacity();
        assert_eq!(capacity, 37);
        for i in 0..capacity {
            assert!(map.put(format!("k{i}").as_bytes(), i as i64));
        }
        assert!(!map.put(b"one too many", 100));
        assert_eq!(map.get(b"one too many"), None);
        assert!(map.put(b"k3", 200));
        assert_eq!(map.get(b"k3"), Some(200));
        assert_eq!(map.len(), capacity);
        map.clear();
        assert_eq!((map.len(), map.get(b"k3")), (0, None));
        assert!(map.put(b"one too many", 100));
    }

    proptest! {
        /// The map answers as a `HashMap` of the newest offset per key does, for keys it took.
        #[test]
        fn agrees_with_a_hash_map(keys in proptest::collection::vec(0u16..300, 0..600)) {
            let mut map = OffsetMap::new(limits(4096), keys.len() as u64);
            let mut model: HashMap<Vec<u8>, i64> = HashMap::new();
            for (offset, key) in keys.iter().enumerate() {
                let key = key.to_be_bytes().to_vec();
                let known = model.contains_key(&key);
                let took = map.put(&key, offset as i64);
                prop_assert!(took || !known, "a known key is always updated");
                if took {
                    model.insert(key, offset as i64);
                }
                prop_assert!(map.len() <= map.capacity());
            }
            for key in 0u16..300 {
                let key = key.to_be_bytes().to_vec();
                prop_assert_eq!(map.get(&key), model.get(&key).copied());
            }
        }
    }
}
