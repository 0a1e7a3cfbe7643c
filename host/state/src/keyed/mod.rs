//! Value, list and map state scoped to a current key, over any backend.

use std::collections::BTreeSet;
use std::collections::hash_map::Entry as Change;

// FxHash: the pending writes are looked up on every state access, and
// SipHash showed in the Nexmark q5 profile.
use rustc_hash::FxHashMap as HashMap;

use weir_types::KeyGroupRange;
use weir_types::keygroup::key_group_of;

use weir_snapshot::{StateKind, StorageKey, StoredEntry, TIMER_TAG};

use crate::{Entry, StateBackend, StateError, StateLimits};

/// Bytes a buffered write costs beyond its key and value (the map entry,
/// two heap blocks and their rounding), counted toward
/// `max_pending_state_bytes` so the limit roughly bounds real memory:
/// ten million small writes measured about 110 bytes each in resident
/// memory, of which about 15 are their keys and values.
pub const PENDING_ENTRY_OVERHEAD: u64 = 96;

/// The clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerDomain {
    /// Fires when the watermark reaches the timestamp.
    EventTime,
    /// Fires when the wall clock reaches the timestamp.
    ProcessingTime,
}

impl TimerDomain {
    fn index(self) -> usize {
        match self {
            TimerDomain::EventTime => 0,
            TimerDomain::ProcessingTime => 1,
        }
    }
}

/// Bytes of buffered state entries a [`KeyedState`] keeps from one guest
/// call to the next by default (8 MiB).
pub const DEFAULT_WRITE_BACK_BYTES: u64 = 8 << 20;

/// An entry of the write-back buffer.
#[derive(Debug)]
struct Slot {
    /// The entry's value now; `None`: deleted, or absent.
    value: Option<Vec<u8>>,
    /// Differs from the backend: written at the next flush.
    dirty: bool,
    /// The backend is known not to hold the key (a read found nothing),
    /// so a delete needs no write.
    absent_in_backend: bool,
}

/// Keyed state of one subtask: value, list and map state by name, for the
/// current key, stored in a [`StateBackend`] under the layout described in
/// the crate docs.
pub struct KeyedState {
    backend: Box<dyn StateBackend>,
    range: KeyGroupRange,
    max_parallelism: u16,
    /// `key group | key length | key` of the current key, when one is set.
    current: Option<Vec<u8>>,
    /// The current key itself.
    current_key: Vec<u8>,
    /// Registered timers per domain, ordered by `(timestamp, key)`: the
    /// timer service itself, on the heap (as Flink's heap timer service);
    /// the backend holds them as of the last snapshot plus `timer_changes`.
    timers: [BTreeSet<(i64, Vec<u8>)>; 2],
    /// Timer registrations (`true`) and deletions (`false`) the backend has
    /// not seen yet, by storage key: the difference between `timers` and
    /// the backend, applied when a snapshot is taken
    /// ([`KeyedState::persist_timers`]). A timer registered and fired or
    /// deleted between two snapshots never reaches the backend.
    timer_changes: HashMap<Vec<u8>, bool>,
    /// How many timers (both domains) each key with timers has.
    timers_per_key: HashMap<Vec<u8>, u64>,
    kinds: HashMap<String, StateKind>,
    /// The write-back buffer in front of the backend: entries written
    /// (dirty) or read (clean) since the last flush, by storage key.
    /// Applied by [`KeyedState::flush`]; [`KeyedState::end_call`] flushes
    /// it only once it holds more than `write_back_bytes`.
    pending: HashMap<Vec<u8>, Slot>,
    /// Bytes of keys and values in `pending`, plus
    /// [`PENDING_ENTRY_OVERHEAD`] per entry.
    pending_bytes: u64,
    /// Bytes `pending` may keep from one guest call to the next.
    write_back_bytes: u64,
    /// Why applying `pending` or `timer_changes` failed, once it has:
    /// those writes are gone, so every later use fails
    /// ([`StateError::WritesLost`]).
    lost: Option<String>,
    limits: StateLimits,
}

mod access;
mod snapshot;
#[cfg(test)]
mod tests;
mod timers;

impl KeyedState {
    /// Keyed state over `backend` for a subtask that owns `range` of
    /// `max_parallelism` key groups.
    pub fn new(backend: Box<dyn StateBackend>, range: KeyGroupRange, max_parallelism: u16) -> Self {
        Self {
            backend,
            range,
            max_parallelism,
            current: None,
            current_key: Vec::new(),
            timers: [BTreeSet::new(), BTreeSet::new()],
            timer_changes: HashMap::default(),
            timers_per_key: HashMap::default(),
            kinds: HashMap::default(),
            pending: HashMap::default(),
            pending_bytes: 0,
            write_back_bytes: DEFAULT_WRITE_BACK_BYTES,
            lost: None,
            limits: StateLimits::default(),
        }
    }

    /// The same state held to `limits` (instead of the defaults).
    #[must_use]
    pub fn with_limits(mut self, limits: StateLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The key groups this state owns.
    pub fn key_group_range(&self) -> KeyGroupRange {
        self.range
    }

    /// The backend's name (`rocksdb`, `memory`).
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Makes `key` the current key.
    ///
    /// # Errors
    /// [`StateError::KeyGroupOutOfRange`] when this subtask does not own the key's group.
    pub fn set_current_key(&mut self, key: &[u8]) -> Result<(), StateError> {
        let group = key_group_of(key, self.max_parallelism);
        if !self.range.contains(group) {
            return Err(StateError::KeyGroupOutOfRange {
                group,
                start: self.range.start,
                end: self.range.end,
            });
        }
        let mut prefix = self.current.take().unwrap_or_default();
        prefix.clear();
        prefix.extend_from_slice(&group.to_be_bytes());
        prefix.extend_from_slice(&(key.len() as u32).to_be_bytes());
        prefix.extend_from_slice(key);
        self.current = Some(prefix);
        self.current_key.clear();
        self.current_key.extend_from_slice(key);
        Ok(())
    }

    /// Fails with [`StateError::WritesLost`] once buffered writes were lost.
    fn check_not_lost(&self) -> Result<(), StateError> {
        match &self.lost {
            Some(why) => Err(StateError::WritesLost(why.clone())),
            None => Ok(()),
        }
    }

    /// Remembers that the writes just drained from a buffer were lost when
    /// `written` is an error, so that every later use fails.
    fn note_loss(&mut self, written: Result<(), StateError>) -> Result<(), StateError> {
        if let Err(e) = &written {
            self.lost = Some(e.to_string());
        }
        written
    }

    /// Applies the buffered writes to the backend in one write batch.
    ///
    /// Point writes are buffered (and read back from the buffer) until the
    /// next flush, so a key updated by a run of records costs one backend
    /// write per flush instead of one per record. The task flushes after
    /// every `process` call, which is also where checkpoint barriers fall.
    ///
    /// # Errors
    /// Storage failures; the buffered writes are then lost.
    pub fn flush(&mut self) -> Result<(), StateError> {
        self.check_not_lost()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        self.pending_bytes = 0;
        let buffered = self.pending.len();
        let entries: Vec<_> = self
            .pending
            .drain()
            .filter(|(_, slot)| slot.dirty)
            .map(|(key, slot)| (key, slot.value))
            .collect();
        // A drained map keeps its largest capacity ever: one burst would
        // hold that memory for the life of the task (the soak saw a step of
        // anonymous memory that never went back).
        shrink_after_burst(&mut self.pending, buffered);
        if entries.is_empty() {
            return Ok(());
        }
        let written = self.backend.write_batch(entries);
        self.note_loss(written)
    }

    /// Ends a guest call: flushes the write-back buffer when it holds more
    /// than the write-back budget ([`KeyedState::with_write_back_bytes`],
    /// at most a quarter of [`StateLimits::max_pending_bytes`]), and
    /// otherwise keeps it for the calls that follow. A key written again
    /// and again, or an entry put and removed before the buffer is
    /// flushed (a reading buffered until its timer fires), then costs the
    /// backend one write or none.
    ///
    /// # Errors
    /// Storage failures; the buffered writes are then lost.
    pub fn end_call(&mut self) -> Result<(), StateError> {
        self.check_not_lost()?;
        if self.pending_bytes > self.write_back_budget() {
            self.flush()
        } else {
            Ok(())
        }
    }

    /// Sets the write-back budget: bytes of buffered entries kept between
    /// guest calls (default [`DEFAULT_WRITE_BACK_BYTES`]; 0: every call's
    /// writes are applied at its end).
    pub fn with_write_back_bytes(mut self, bytes: u64) -> Self {
        self.write_back_bytes = bytes;
        self
    }

    fn write_back_budget(&self) -> u64 {
        self.write_back_bytes.min(self.limits.max_pending_bytes / 4)
    }

    /// Number of buffered writes not yet applied to the backend.
    pub fn pending_writes(&self) -> usize {
        self.pending.values().filter(|slot| slot.dirty).count()
    }

    /// Bytes of keys and values of the buffered writes.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// The limits this state holds a guest to.
    pub fn limits(&self) -> StateLimits {
        self.limits
    }

    /// The value under `key`: from the write-back buffer, else from the
    /// backend (then kept in the buffer as a clean entry while the
    /// write-back budget has room, absence included).
    fn read(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.check_not_lost()?;
        if let Some(slot) = self.pending.get(key) {
            return Ok(slot.value.clone());
        }
        let value = self.backend.get(key)?;
        let bytes =
            PENDING_ENTRY_OVERHEAD + (key.len() + value.as_ref().map_or(0, Vec::len)) as u64;
        if self.pending_bytes + bytes <= self.write_back_budget() {
            self.pending_bytes += bytes;
            self.pending.insert(
                key.to_vec(),
                Slot {
                    value: value.clone(),
                    dirty: false,
                    absent_in_backend: value.is_none(),
                },
            );
        }
        Ok(value)
    }

    /// Buffers a write, held to the value and pending-bytes limits (an
    /// entry counts its key, its value and [`PENDING_ENTRY_OVERHEAD`]).
    fn write(&mut self, key: Vec<u8>, value: Option<&[u8]>) -> Result<(), StateError> {
        self.check_not_lost()?;
        let value_len = value.map_or(0, <[u8]>::len) as u64;
        if value_len > self.limits.max_value_bytes {
            return Err(StateError::LimitExceeded {
                limit: "max_state_value_bytes",
                max: self.limits.max_value_bytes,
                value: value_len,
            });
        }
        let key_len = key.len() as u64;
        let limit = self.limits.max_pending_bytes;
        let over = |pending: u64| StateError::LimitExceeded {
            limit: "max_pending_state_bytes",
            max: limit,
            value: pending,
        };
        // One lookup: the hot path of every state write.
        match self.pending.get_mut(&key) {
            Some(slot) => {
                let old = key_len + slot.value.as_ref().map_or(0, |v| v.len() as u64);
                // (The entry's own overhead was counted when it was added.)
                let pending = self.pending_bytes - old + key_len + value_len;
                if pending > limit {
                    return Err(over(pending));
                }
                self.pending_bytes = pending;
                match (slot.value.as_mut(), value) {
                    (Some(existing), Some(value)) => {
                        existing.clear();
                        existing.extend_from_slice(value);
                    }
                    (_, value) => slot.value = value.map(<[u8]>::to_vec),
                }
                // A delete of an entry the backend never had needs no write.
                slot.dirty = value.is_some() || !slot.absent_in_backend;
            }
            None => {
                let pending = self.pending_bytes + PENDING_ENTRY_OVERHEAD + key_len + value_len;
                if pending > limit {
                    return Err(over(pending));
                }
                self.pending_bytes = pending;
                self.pending.insert(
                    key,
                    Slot {
                        value: value.map(<[u8]>::to_vec),
                        dirty: true,
                        absent_in_backend: false,
                    },
                );
            }
        }
        Ok(())
    }

    /// Forgets the current key; state calls fail until one is set.
    pub fn clear_current_key(&mut self) {
        self.current = None;
    }

    /// The storage key of state `name` of `kind` for the current key, with
    /// `suffix` (a map key) appended.
    fn storage_key(
        &mut self,
        name: &str,
        kind: StateKind,
        suffix: &[u8],
    ) -> Result<Vec<u8>, StateError> {
        match self.kinds.get(name) {
            Some(existing) if *existing != kind => {
                return Err(StateError::KindMismatch {
                    name: name.to_string(),
                    existing: *existing,
                    requested: kind,
                });
            }
            Some(_) => {}
            None => {
                self.kinds.insert(name.to_string(), kind);
            }
        }
        let prefix = self
            .current
            .as_ref()
            .ok_or_else(|| StateError::NoCurrentKey(name.to_string()))?;
        let name_len = u16::try_from(name.len()).map_err(|_| StateError::NameTooLong)?;
        let mut key = Vec::with_capacity(prefix.len() + 3 + name.len() + suffix.len());
        key.extend_from_slice(prefix);
        key.push(kind.tag());
        key.extend_from_slice(&name_len.to_be_bytes());
        key.extend_from_slice(name.as_bytes());
        key.extend_from_slice(suffix);
        Ok(key)
    }
}

/// Entries a drained buffer always keeps room for.
const KEPT_CAPACITY: usize = 1024;

/// Gives back the memory of a drained map that had to grow for a burst far
/// larger than the `used` entries of this drain: only when its capacity is
/// over four times `max(used, KEPT_CAPACITY)`, so that flushes of varying
/// sizes (`map_entries` flushes on every call) do not shrink and regrow it
/// each time.
fn shrink_after_burst<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, used: usize) {
    let keep = used.max(KEPT_CAPACITY);
    if map.capacity() > 4 * keep {
        map.shrink_to(keep);
    }
}
