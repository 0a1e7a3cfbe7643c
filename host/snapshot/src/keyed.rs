//! Keyed state as checkpoint files hold it: the full snapshot (`WKS1`)
//! and the storage keys of its entries.
//!
//! Snapshot encoding: `WKS1`, the entry count (u64 BE), then per entry the key
//! length (u32 BE), the key, the value length (u32 BE), the value; entries
//! in key order. [`SnapshotWriter`] writes it while the backend is
//! scanned and [`snapshot_entries`] reads it back without copying, so a
//! full snapshot or restore holds the encoded bytes once, not a decoded
//! copy beside them.
//!
//! Storage key layout of an entry (all integers big-endian), as
//! `weir-state` lays keyed state over its backend and as [`StorageKey`]
//! reads it back:
//!
//! ```text
//! key group (u16) | key length (u32) | key | kind tag (u8) | name length (u16) | name | map key
//! key group (u16) | key length (u32) | key | `t` | domain (u8) | timestamp (u64, sign bit flipped)
//! ```

use crate::SnapshotError;

/// The kinds of keyed state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateKind {
    /// One value per key.
    Value,
    /// A list per key.
    List,
    /// A map per key.
    Map,
}

impl StateKind {
    /// The tag byte of the kind in a storage key: `v`, `l` or `m`.
    pub fn tag(self) -> u8 {
        match self {
            StateKind::Value => b'v',
            StateKind::List => b'l',
            StateKind::Map => b'm',
        }
    }

    /// The kind of a tag byte, `None` for any other byte.
    pub fn of_tag(tag: u8) -> Option<Self> {
        match tag {
            b'v' => Some(StateKind::Value),
            b'l' => Some(StateKind::List),
            b'm' => Some(StateKind::Map),
            _ => None,
        }
    }
}

/// The tag byte of timer entries in a storage key (after the key prefix).
pub const TIMER_TAG: u8 = b't';

/// A timer's timestamp as its 8 storage-key bytes: big-endian with the
/// sign bit flipped, so byte order is time order.
pub fn encode_timer_timestamp(timestamp: i64) -> [u8; 8] {
    ((timestamp as u64) ^ (1 << 63)).to_be_bytes()
}

/// A storage key split into its parts (the layout in the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageKey<'k> {
    /// The key group.
    pub group: u16,
    /// The record key.
    pub key: &'k [u8],
    /// The tag byte and what follows it.
    pub rest: &'k [u8],
}

/// What a storage key holds, read from its part after the record key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredEntry<'k> {
    /// A timer.
    Timer {
        /// 0 for event time, 1 (or any other byte) for processing time.
        domain: u8,
        /// When it fires (ms).
        timestamp: i64,
    },
    /// An entry of value, list or map state.
    State {
        /// The state's kind.
        kind: StateKind,
        /// The state's name, as stored (UTF-8 when written by Weir).
        name: &'k [u8],
    },
}

impl<'k> StorageKey<'k> {
    /// Splits `key group | key length | key | rest`.
    ///
    /// # Errors
    /// [`SnapshotError::Damaged`] when `raw` is cut short.
    pub fn parse(raw: &'k [u8]) -> Result<Self, SnapshotError> {
        let cut =
            || SnapshotError::Damaged(format!("storage key of {} bytes cut short", raw.len()));
        let group: [u8; 2] = raw
            .get(..2)
            .ok_or_else(cut)?
            .try_into()
            .map_err(|_| cut())?;
        let len: [u8; 4] = raw
            .get(2..6)
            .ok_or_else(cut)?
            .try_into()
            .map_err(|_| cut())?;
        let end = usize::try_from(u32::from_be_bytes(len))
            .ok()
            .and_then(|len| len.checked_add(6))
            .ok_or_else(cut)?;
        let key = raw.get(6..end).ok_or_else(cut)?;
        Ok(StorageKey {
            group: u16::from_be_bytes(group),
            key,
            rest: &raw[end..],
        })
    }

    /// The raw storage key of these parts: the inverse of
    /// [`StorageKey::parse`].
    ///
    /// # Panics
    /// When the record key is 4 GiB or longer.
    pub fn encode(&self) -> Vec<u8> {
        let len = u32::try_from(self.key.len()).expect("record key shorter than 4 GiB");
        let mut out = Vec::with_capacity(6 + self.key.len() + self.rest.len());
        out.extend_from_slice(&self.group.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.key);
        out.extend_from_slice(self.rest);
        out
    }

    /// Whether the entry is a timer (without reading the rest).
    pub fn is_timer(&self) -> bool {
        self.rest.first() == Some(&TIMER_TAG)
    }

    /// What the entry holds.
    ///
    /// # Errors
    /// [`SnapshotError::Damaged`] for an unknown tag, a name cut short or
    /// a timer whose timestamp is not 8 bytes.
    pub fn entry(&self) -> Result<StoredEntry<'k>, SnapshotError> {
        match self.rest {
            [TIMER_TAG, domain, ts @ ..] if ts.len() == 8 => {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(ts);
                Ok(StoredEntry::Timer {
                    domain: *domain,
                    timestamp: (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64,
                })
            }
            [tag, n1, n2, rest @ ..] if *tag != TIMER_TAG => {
                let kind = StateKind::of_tag(*tag)
                    .ok_or_else(|| SnapshotError::Damaged(format!("unknown state tag {tag}")))?;
                let name_len = usize::from(u16::from_be_bytes([*n1, *n2]));
                let name = rest
                    .get(..name_len)
                    .ok_or_else(|| SnapshotError::Damaged("state name cut short".into()))?;
                Ok(StoredEntry::State { kind, name })
            }
            _ => Err(SnapshotError::Damaged(
                "entry without a state tag or timer".into(),
            )),
        }
    }
}

/// Every backend entry of a subtask's key groups (storage key, value), in
/// key order: a full snapshot, decoded. Both backends produce and accept
/// it, so a checkpoint taken with RocksDB restores into memory and back.
/// Checkpoints stream the encoding instead ([`SnapshotWriter`],
/// [`snapshot_entries`]); this owned form is for tests and tools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyedSnapshot {
    /// `(storage key, value)` pairs.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

const MAGIC: &[u8; 4] = b"WKS1";
/// Bytes before the first entry: the magic and the entry count.
const HEADER_LEN: usize = 12;

impl KeyedSnapshot {
    /// Encodes the snapshot.
    ///
    /// # Errors
    /// [`SnapshotError::Encode`] for an entry 4 GiB or longer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SnapshotError> {
        let size: usize = self
            .entries
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum();
        let mut writer = SnapshotWriter::with_capacity(size);
        for (key, value) in &self.entries {
            writer.push(key, value)?;
        }
        Ok(writer.finish())
    }

    /// Decodes bytes written by [`KeyedSnapshot::to_bytes`] or a
    /// [`SnapshotWriter`].
    ///
    /// # Errors
    /// [`SnapshotError::Damaged`] saying where the bytes stop making sense.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let entries = snapshot_entries(bytes)?
            .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<Result<_, _>>()?;
        Ok(Self { entries })
    }
}

/// Encodes a snapshot entry by entry (the format in the module docs).
#[derive(Debug)]
pub struct SnapshotWriter {
    out: Vec<u8>,
    count: u64,
}

impl Default for SnapshotWriter {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl SnapshotWriter {
    /// A writer with room for `entry_bytes` bytes of entries (8 bytes of
    /// lengths plus the key and value of each).
    pub fn with_capacity(entry_bytes: usize) -> Self {
        let mut out = Vec::with_capacity(HEADER_LEN + entry_bytes);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&0u64.to_be_bytes()); // the count, set by `finish`
        Self { out, count: 0 }
    }

    /// Appends one entry; entries must come in key order.
    ///
    /// # Errors
    /// [`SnapshotError::Encode`] when the key or value is 4 GiB or
    /// longer (the format's lengths are u32); nothing is appended then.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), SnapshotError> {
        let too_long = |part: &[u8]| {
            SnapshotError::Encode(format!(
                "a state entry of {} bytes is too long for a snapshot (at most 4 GiB - 1)",
                part.len()
            ))
        };
        let key_len = u32::try_from(key.len()).map_err(|_| too_long(key))?;
        let value_len = u32::try_from(value.len()).map_err(|_| too_long(value))?;
        for (len, part) in [(key_len, key), (value_len, value)] {
            self.out.extend_from_slice(&len.to_be_bytes());
            self.out.extend_from_slice(part);
        }
        self.count += 1;
        Ok(())
    }

    /// The encoded snapshot.
    pub fn finish(mut self) -> Vec<u8> {
        self.out[4..HEADER_LEN].copy_from_slice(&self.count.to_be_bytes());
        self.out
    }
}

/// The entries of an encoded snapshot as `(storage key, value)` slices of
/// `bytes`, in order; after the last one, an error if bytes are left over.
///
/// # Errors
/// [`SnapshotError::Damaged`] when the header is missing (at once) or
/// an entry is cut short or bytes trail (as the iterator's last item),
/// saying where.
pub fn snapshot_entries(bytes: &[u8]) -> Result<SnapshotEntries<'_>, SnapshotError> {
    if bytes.get(..4) != Some(MAGIC.as_slice()) {
        return Err(corrupt(bytes, "no WKS1 header", 0));
    }
    let count: [u8; 8] = bytes
        .get(4..HEADER_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt(bytes, "entry count cut short", 4))?;
    Ok(SnapshotEntries {
        bytes,
        at: HEADER_LEN,
        left: u64::from_be_bytes(count),
        done: false,
    })
}

fn corrupt(bytes: &[u8], what: &str, at: usize) -> SnapshotError {
    SnapshotError::Damaged(format!("{what} at byte {at} of {}", bytes.len()))
}

/// Iterator of [`snapshot_entries`].
#[derive(Debug)]
pub struct SnapshotEntries<'a> {
    bytes: &'a [u8],
    at: usize,
    left: u64,
    done: bool,
}

impl<'a> SnapshotEntries<'a> {
    /// One length-prefixed part at the cursor.
    fn part(&mut self) -> Result<&'a [u8], SnapshotError> {
        let bytes = self.bytes;
        let at = self.at;
        let len: [u8; 4] = bytes
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt(bytes, "length cut short", at))?;
        let len = u32::from_be_bytes(len) as usize;
        let part = bytes
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| corrupt(bytes, "entry cut short", at))?;
        self.at = at + 4 + len;
        Ok(part)
    }
}

impl<'a> Iterator for SnapshotEntries<'a> {
    type Item = Result<(&'a [u8], &'a [u8]), SnapshotError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.left == 0 {
            self.done = true;
            return (self.at != self.bytes.len())
                .then(|| Err(corrupt(self.bytes, "trailing bytes", self.at)));
        }
        self.left -= 1;
        let entry = self.part().and_then(|key| Ok((key, self.part()?)));
        self.done = entry.is_err();
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    fn storage_key(group: u16, key: &[u8], rest: &[u8]) -> Vec<u8> {
        StorageKey { group, key, rest }.encode()
    }

    #[test]
    fn storage_keys_read_back_timers_and_state_entries() {
        let mut timer = vec![TIMER_TAG, 0];
        timer.extend_from_slice(&encode_timer_timestamp(-5));
        let raw = storage_key(7, b"k", &timer);
        let parsed = StorageKey::parse(&raw).unwrap();
        assert_eq!((parsed.group, parsed.key), (7, b"k".as_slice()));
        assert!(parsed.is_timer());
        assert_eq!(
            parsed.entry().unwrap(),
            StoredEntry::Timer {
                domain: 0,
                timestamp: -5
            }
        );
        let raw = storage_key(1, b"", b"m\0\x03sumMAPKEY");
        assert_eq!(
            StorageKey::parse(&raw).unwrap().entry().unwrap(),
            StoredEntry::State {
                kind: StateKind::Map,
                name: b"sum"
            }
        );
    }

    #[test]
    fn damaged_storage_keys_are_errors() {
        for raw in [
            &b""[..],
            b"\0",
            b"\0\0\0\0\0",
            b"\0\0\0\0\0\x09abc",
            b"\0\0\xff\xff\xff\xffabc",
        ] {
            assert!(StorageKey::parse(raw).is_err(), "{raw:?}");
        }
        for rest in [&b""[..], b"x\0\0", b"v\0\x09ab", b"t\0\0\0", b"v"] {
            let raw = storage_key(0, b"k", rest);
            assert!(
                StorageKey::parse(&raw).unwrap().entry().is_err(),
                "{rest:?}"
            );
        }
    }

    #[test]
    fn timer_timestamps_sort_as_bytes_in_time_order() {
        let times = [i64::MIN, -1, 0, 1, i64::MAX];
        let encoded: Vec<_> = times.iter().map(|t| encode_timer_timestamp(*t)).collect();
        assert!(encoded.windows(2).all(|w| w[0] < w[1]));
    }

    proptest! {
        #[test]
        fn snapshots_round_trip(entries in vec((vec(any::<u8>(), 0..20), vec(any::<u8>(), 0..40)), 0..20)) {
            let snapshot = KeyedSnapshot { entries };
            let bytes = snapshot.to_bytes().unwrap();
            prop_assert_eq!(KeyedSnapshot::from_bytes(&bytes).unwrap(), snapshot);
        }

        #[test]
        fn cut_or_extended_snapshots_are_errors_not_panics(
            entries in vec((vec(any::<u8>(), 0..8), vec(any::<u8>(), 0..8)), 1..6),
            cut in any::<prop::sample::Index>(),
            extra in vec(any::<u8>(), 1..4),
        ) {
            let bytes = KeyedSnapshot { entries }.to_bytes().unwrap();
            let cut = cut.index(bytes.len());
            prop_assert!(KeyedSnapshot::from_bytes(&bytes[..cut]).is_err());
            let mut longer = bytes.clone();
            longer.extend_from_slice(&extra);
            prop_assert!(KeyedSnapshot::from_bytes(&longer).is_err());
        }

        #[test]
        fn storage_key_parts_round_trip(group in any::<u16>(), key in vec(any::<u8>(), 0..20), name in "[a-z]{0,12}", map_key in vec(any::<u8>(), 0..8)) {
            let mut rest = vec![StateKind::List.tag()];
            rest.extend_from_slice(&(name.len() as u16).to_be_bytes());
            rest.extend_from_slice(name.as_bytes());
            rest.extend_from_slice(&map_key);
            let raw = storage_key(group, &key, &rest);
            let parsed = StorageKey::parse(&raw).unwrap();
            prop_assert_eq!((parsed.group, parsed.key), (group, key.as_slice()));
            prop_assert_eq!(parsed.entry().unwrap(), StoredEntry::State { kind: StateKind::List, name: name.as_bytes() });
        }
    }
}
