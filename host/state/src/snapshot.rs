//! The bytes of a keyed-state snapshot, as checkpoint files hold them.
//!
//! Encoding: `WKS1`, the entry count (u64 BE), then per entry the key
//! length (u32 BE), the key, the value length (u32 BE), the value; entries
//! in key order. [`SnapshotWriter`] writes it while the backend is
//! scanned and [`snapshot_entries`] reads it back without copying, so a
//! full snapshot or restore holds the encoded bytes once, not a decoded
//! copy beside them.

use crate::StateError;

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
    /// [`StateError::CorruptSnapshot`] for an entry 4 GiB or longer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, StateError> {
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
    /// [`StateError::CorruptSnapshot`] saying where the bytes stop making sense.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
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
    /// [`StateError::CorruptSnapshot`] when the key or value is 4 GiB or
    /// longer (the format's lengths are u32); nothing is appended then.
    pub fn push(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let too_long = |part: &[u8]| {
            StateError::CorruptSnapshot(format!(
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
/// [`StateError::CorruptSnapshot`] when the header is missing (at once) or
/// an entry is cut short or bytes trail (as the iterator's last item),
/// saying where.
pub fn snapshot_entries(bytes: &[u8]) -> Result<SnapshotEntries<'_>, StateError> {
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

fn corrupt(bytes: &[u8], what: &str, at: usize) -> StateError {
    StateError::CorruptSnapshot(format!("{what} at byte {at} of {}", bytes.len()))
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
    fn part(&mut self) -> Result<&'a [u8], StateError> {
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
    type Item = Result<(&'a [u8], &'a [u8]), StateError>;

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
