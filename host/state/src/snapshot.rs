//! The bytes of a keyed-state snapshot, as checkpoint files hold them.

use crate::StateError;

/// Every backend entry of a subtask's key groups (storage key, value), in
/// key order: a full snapshot. Both backends produce and accept it, so a
/// checkpoint taken with RocksDB restores into memory and back.
///
/// Encoding (`to_bytes`): `WKS1`, the entry count (u64 BE), then per entry
/// the key length (u32 BE), the key, the value length (u32 BE), the value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyedSnapshot {
    /// `(storage key, value)` pairs.
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

const MAGIC: &[u8; 4] = b"WKS1";

impl KeyedSnapshot {
    /// Encodes the snapshot.
    pub fn to_bytes(&self) -> Vec<u8> {
        let size: usize = self
            .entries
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum();
        let mut out = Vec::with_capacity(12 + size);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.entries.len() as u64).to_be_bytes());
        for (key, value) in &self.entries {
            for part in [key, value] {
                out.extend_from_slice(&(part.len() as u32).to_be_bytes());
                out.extend_from_slice(part);
            }
        }
        out
    }

    /// Decodes bytes written by [`KeyedSnapshot::to_bytes`].
    ///
    /// # Errors
    /// [`StateError::CorruptSnapshot`] saying where the bytes stop making sense.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateError> {
        let corrupt = |what: &str, at: usize| {
            StateError::CorruptSnapshot(format!("{what} at byte {at} of {}", bytes.len()))
        };
        if bytes.get(..4) != Some(MAGIC.as_slice()) {
            return Err(corrupt("no WKS1 header", 0));
        }
        let count: [u8; 8] = bytes
            .get(4..12)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| corrupt("entry count cut short", 4))?;
        let count = u64::from_be_bytes(count);
        let mut at = 12;
        let take = |at: &mut usize| -> Result<Vec<u8>, StateError> {
            let len: [u8; 4] = bytes
                .get(*at..*at + 4)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| corrupt("length cut short", *at))?;
            let len = u32::from_be_bytes(len) as usize;
            let part = bytes
                .get(*at + 4..*at + 4 + len)
                .ok_or_else(|| corrupt("entry cut short", *at))?;
            *at += 4 + len;
            Ok(part.to_vec())
        };
        // The count comes from the file: do not trust it for allocation.
        let mut entries = Vec::with_capacity(count.min(1 << 16) as usize);
        for _ in 0..count {
            let key = take(&mut at)?;
            let value = take(&mut at)?;
            entries.push((key, value));
        }
        if at != bytes.len() {
            return Err(corrupt("trailing bytes", at));
        }
        Ok(Self { entries })
    }
}
