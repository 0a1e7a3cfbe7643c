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

    /// The storage key of a timer of the current key:
    /// `prefix | 't' | domain | timestamp` (timestamp as big-endian with
    /// the sign bit flipped, so entries sort by time).
    fn timer_storage_key(
        &self,
        domain: TimerDomain,
        timestamp: i64,
    ) -> Result<Vec<u8>, StateError> {
        let prefix = self
            .current
            .as_ref()
            .ok_or_else(|| StateError::NoCurrentKey("<timer>".into()))?;
        let mut key = Vec::with_capacity(prefix.len() + 10);
        key.extend_from_slice(prefix);
        key.push(TIMER_TAG);
        key.push(domain.index() as u8);
        key.extend_from_slice(&weir_snapshot::encode_timer_timestamp(timestamp));
        Ok(key)
    }

    /// Registers a timer of the current key. A timer already registered
    /// for the same key, domain and timestamp is kept once.
    ///
    /// # Errors
    /// No current key; [`StateError::LimitExceeded`] when the subtask
    /// already has [`StateLimits::max_timers`] timers, or the key
    /// [`StateLimits::max_timers_per_key`].
    pub fn register_timer(
        &mut self,
        domain: TimerDomain,
        timestamp: i64,
    ) -> Result<(), StateError> {
        let storage_key = self.timer_storage_key(domain, timestamp)?;
        let entry = (timestamp, self.current_key.clone());
        if self.timers[domain.index()].contains(&entry) {
            return Ok(());
        }
        let count = (self.timers[0].len() + self.timers[1].len()) as u64;
        if count >= self.limits.max_timers {
            return Err(StateError::LimitExceeded {
                limit: "max_timers",
                max: self.limits.max_timers,
                value: count + 1,
            });
        }
        let of_key = self
            .timers_per_key
            .get(&self.current_key)
            .copied()
            .unwrap_or(0);
        if of_key >= self.limits.max_timers_per_key {
            return Err(StateError::LimitExceeded {
                limit: "max_timers_per_key",
                max: self.limits.max_timers_per_key,
                value: of_key + 1,
            });
        }
        self.note_timer_change(storage_key, true);
        self.timers[domain.index()].insert(entry);
        *self
            .timers_per_key
            .entry(self.current_key.clone())
            .or_insert(0) += 1;
        Ok(())
    }

    /// Notes that the timer under `storage_key` was registered (`true`)
    /// or is gone (`false`). A pending change the other way cancels out:
    /// a timer registered and gone since the last snapshot never reached
    /// the backend, and one gone and registered again is still there.
    fn note_timer_change(&mut self, storage_key: Vec<u8>, registered: bool) {
        match self.timer_changes.entry(storage_key) {
            Change::Occupied(e) => {
                e.remove();
            }
            Change::Vacant(e) => {
                e.insert(registered);
            }
        }
    }

    /// Applies the timer registrations and deletions since the last
    /// snapshot to the backend, after the buffered writes.
    ///
    /// # Errors
    /// Storage failures.
    fn persist_timers(&mut self) -> Result<(), StateError> {
        self.flush()?;
        if self.timer_changes.is_empty() {
            return Ok(());
        }
        let changed = self.timer_changes.len();
        let entries = self
            .timer_changes
            .drain()
            .map(|(key, added)| (key, added.then(Vec::new)))
            .collect();
        shrink_after_burst(&mut self.timer_changes, changed);
        let written = self.backend.write_batch(entries);
        self.note_loss(written)
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

    /// One timer of `key` fewer in [`KeyedState::timers_per_key`].
    fn timer_gone(&mut self, key: &[u8]) {
        if let Some(n) = self.timers_per_key.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.timers_per_key.remove(key);
            }
        }
    }

    /// Deletes the current key's timer at `timestamp`, if any.
    ///
    /// # Errors
    /// No current key.
    pub fn delete_timer(&mut self, domain: TimerDomain, timestamp: i64) -> Result<(), StateError> {
        let storage_key = self.timer_storage_key(domain, timestamp)?;
        let entry = (timestamp, self.current_key.clone());
        if self.timers[domain.index()].remove(&entry) {
            self.note_timer_change(storage_key, false);
            self.timer_gone(&entry.1);
        }
        Ok(())
    }

    /// The earliest timer of a domain: `(timestamp, key)`.
    pub fn next_timer(&self, domain: TimerDomain) -> Option<(i64, &[u8])> {
        self.timers[domain.index()]
            .first()
            .map(|(ts, key)| (*ts, key.as_slice()))
    }

    /// Removes and returns the earliest timer of a domain if its timestamp
    /// is at most `up_to`, making its key the current key. Timers fire in
    /// `(timestamp, key)` order.
    ///
    /// # Errors
    /// Only for a key outside this subtask's key groups (not possible for
    /// timers registered through this state).
    pub fn pop_due_timer(
        &mut self,
        domain: TimerDomain,
        up_to: i64,
    ) -> Result<Option<(i64, Vec<u8>)>, StateError> {
        let Some((timestamp, key)) = self.timers[domain.index()]
            .first()
            .filter(|(ts, _)| *ts <= up_to)
            .cloned()
        else {
            return Ok(None);
        };
        self.set_current_key(&key)?;
        let storage_key = self.timer_storage_key(domain, timestamp)?;
        self.note_timer_change(storage_key, false);
        self.timers[domain.index()].pop_first();
        self.timer_gone(&key);
        Ok(Some((timestamp, key)))
    }

    /// Number of registered timers of a domain.
    pub fn timer_count(&self, domain: TimerDomain) -> usize {
        self.timers[domain.index()].len()
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

    /// A full snapshot of this subtask's keyed state (values, lists, maps
    /// and timers), after applying buffered writes, encoded as
    /// [`crate::snapshot_entries`] reads it: every backend entry of the
    /// owned key groups, in key order, written while the backend is
    /// scanned. Taken at a checkpoint barrier.
    ///
    /// # Errors
    /// Storage failures; an entry too long for the format.
    pub fn snapshot_bytes(&mut self) -> Result<Vec<u8>, StateError> {
        self.persist_timers()?;
        let mut writer = crate::SnapshotWriter::default();
        for group in self.range.start..=self.range.end {
            self.backend
                .for_each_prefix(&group.to_be_bytes(), &mut |k, v| Ok(writer.push(k, v)?))?;
        }
        Ok(writer.finish())
    }

    /// [`KeyedState::snapshot_bytes`], decoded.
    ///
    /// # Errors
    /// As [`KeyedState::snapshot_bytes`].
    pub fn snapshot(&mut self) -> Result<crate::KeyedSnapshot, StateError> {
        Ok(crate::KeyedSnapshot::from_bytes(&self.snapshot_bytes()?)?)
    }

    /// Loads the entries of encoded snapshots (the bytes of
    /// [`KeyedState::snapshot_bytes`], of any earlier subtasks, at any
    /// parallelism) that fall in this subtask's key groups, so a restore
    /// at another parallelism redistributes key groups (rescaling), and
    /// rebuilds the timer index and the state kinds from them. The entries
    /// are read in place, not decoded into a copy first.
    ///
    /// # Errors
    /// [`StateError::CorruptSnapshot`] for damaged bytes or an entry that
    /// does not follow the storage layout (the entries before it may have
    /// been loaded); storage failures.
    pub fn restore<'s>(
        &mut self,
        encoded: impl IntoIterator<Item = &'s [u8]>,
    ) -> Result<(), StateError> {
        // What the guest wrote before the restore (in `open`) goes first,
        // so restored entries replace it, and no cached read outlives it.
        self.flush()?;
        let mut batch = Vec::new();
        for bytes in encoded {
            for entry in crate::snapshot_entries(bytes)? {
                let (key, value) = entry?;
                self.restore_entry(key, value, &mut batch)?;
            }
        }
        self.backend.write_batch(batch)
    }

    /// A native checkpoint of the backend in `dir` (after applying
    /// buffered writes), or `None` when the backend has no native format.
    /// The backend holds only this subtask's key groups, so the checkpoint
    /// is exactly its keyed state, timers included.
    ///
    /// # Errors
    /// Storage failures.
    pub fn native_checkpoint(
        &mut self,
        dir: &std::path::Path,
    ) -> Result<Option<crate::NativeCheckpoint>, StateError> {
        self.persist_timers()?;
        self.backend.native_checkpoint(dir)
    }

    /// Like [`KeyedState::restore`], from a RocksDB native checkpoint
    /// brought back into `dir` (any parallelism; entries outside this
    /// subtask's key groups are skipped).
    ///
    /// # Errors
    /// As [`KeyedState::restore`]; [`StateError::RocksDb`] when `dir` does
    /// not open as a database.
    pub fn restore_native(&mut self, dir: &std::path::Path) -> Result<(), StateError> {
        // As in `restore`: earlier writes first, no stale cached reads.
        self.flush()?;
        let mut batch = Vec::new();
        crate::scan_native(dir, |key, value| self.restore_entry(key, value, &mut batch))?;
        self.backend.write_batch(batch)
    }

    /// Like [`KeyedState::restore_native`] when the native checkpoint in
    /// `dir` holds exactly this subtask's key groups (it was taken by a
    /// subtask with the same key-group range): the backend takes `dir` over
    /// as its store instead of copying its entries (Flink's restore of a
    /// RocksDB incremental handle without rescaling), and one read-only
    /// pass rebuilds the timer and state-kind indexes. Backends without a
    /// native format insert the entries as `restore_native` does. Whatever
    /// the state held before is gone.
    ///
    /// # Errors
    /// As [`KeyedState::restore_native`]; [`StateError::CorruptSnapshot`]
    /// when an entry lies outside this subtask's key groups.
    pub fn adopt_native(&mut self, dir: &std::path::Path) -> Result<(), StateError> {
        let range = self.range;
        crate::scan_native(dir, |key, _| {
            if self.index_entry(key)? {
                Ok(())
            } else {
                Err(StateError::CorruptSnapshot(format!(
                    "{} holds key groups outside {range:?}",
                    dir.display()
                )))
            }
        })?;
        // Buffered entries describe the store being replaced. (Timer
        // changes stay: they are the difference between the timers still
        // registered and what the next snapshot must hold.)
        self.pending.clear();
        self.pending_bytes = 0;
        if self.backend.adopt_native(dir)? {
            return Ok(());
        }
        self.restore_native(dir)
    }

    /// Takes one snapshot entry when it falls in this subtask's key groups:
    /// indexes it (timer or state kind) and queues it in `batch`, writing
    /// the batch out every 4096 entries.
    fn restore_entry(
        &mut self,
        key: &[u8],
        value: &[u8],
        batch: &mut Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), StateError> {
        if !self.index_entry(key)? {
            return Ok(());
        }
        batch.push((key.to_vec(), Some(value.to_vec())));
        if batch.len() >= 4096 {
            self.backend.write_batch(std::mem::take(batch))?;
        }
        Ok(())
    }

    /// Indexes the entry stored under `key` (its timer, or its state's
    /// kind) when it falls in this subtask's key groups, and says whether
    /// it does.
    fn index_entry(&mut self, key: &[u8]) -> Result<bool, StateError> {
        let parsed = StorageKey::parse(key)?;
        if !self.range.contains(parsed.group) {
            return Ok(false);
        }
        match parsed.entry()? {
            StoredEntry::Timer { domain, timestamp } => {
                let index = usize::from(domain).min(1);
                if self.timers[index].insert((timestamp, parsed.key.to_vec())) {
                    *self.timers_per_key.entry(parsed.key.to_vec()).or_insert(0) += 1;
                }
            }
            StoredEntry::State { kind, name } => {
                // Borrowed lookup first: most entries repeat a known name.
                let name = String::from_utf8_lossy(name);
                if !self.kinds.contains_key(name.as_ref()) {
                    self.kinds.insert(name.into_owned(), kind);
                }
            }
        }
        Ok(true)
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

    /// Value state `name` of the current key.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn value_get(&mut self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let key = self.storage_key(name, StateKind::Value, &[])?;
        self.read(&key)
    }

    /// Sets value state `name` of the current key.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn value_set(&mut self, name: &str, value: &[u8]) -> Result<(), StateError> {
        let key = self.storage_key(name, StateKind::Value, &[])?;
        self.write(key, Some(value))?;
        Ok(())
    }

    /// Clears value state `name` of the current key.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn value_clear(&mut self, name: &str) -> Result<(), StateError> {
        let key = self.storage_key(name, StateKind::Value, &[])?;
        self.write(key, None)?;
        Ok(())
    }

    /// The elements of list state `name`, in insertion order.
    ///
    /// A list is stored as one entry: a sequence of `u32` big-endian length
    /// prefixed elements.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure, corrupt list.
    pub fn list_get(&mut self, name: &str) -> Result<Vec<Vec<u8>>, StateError> {
        let key = self.storage_key(name, StateKind::List, &[])?;
        match self.read(&key)? {
            Some(bytes) => {
                decode_list(&bytes).ok_or_else(|| StateError::CorruptList(name.to_string()))
            }
            None => Ok(Vec::new()),
        }
    }

    /// Appends `value` to list state `name`.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn list_add(&mut self, name: &str, value: &[u8]) -> Result<(), StateError> {
        let key = self.storage_key(name, StateKind::List, &[])?;
        let mut bytes = self.read(&key)?.unwrap_or_default();
        bytes.extend_from_slice(&(value.len() as u32).to_be_bytes());
        bytes.extend_from_slice(value);
        self.write(key, Some(&bytes))?;
        Ok(())
    }

    /// Clears list state `name`.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn list_clear(&mut self, name: &str) -> Result<(), StateError> {
        let key = self.storage_key(name, StateKind::List, &[])?;
        self.write(key, None)?;
        Ok(())
    }

    /// Entry `map_key` of map state `name`.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn map_get(&mut self, name: &str, map_key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let key = self.storage_key(name, StateKind::Map, map_key)?;
        self.read(&key)
    }

    /// Sets entry `map_key` of map state `name`.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn map_put(&mut self, name: &str, map_key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let key = self.storage_key(name, StateKind::Map, map_key)?;
        self.write(key, Some(value))?;
        Ok(())
    }

    /// Removes entry `map_key` of map state `name`.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn map_remove(&mut self, name: &str, map_key: &[u8]) -> Result<(), StateError> {
        let key = self.storage_key(name, StateKind::Map, map_key)?;
        self.write(key, None)?;
        Ok(())
    }

    /// Every entry of map state `name`, ordered by map key bytes.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn map_entries(&mut self, name: &str) -> Result<Vec<Entry>, StateError> {
        let prefix = self.storage_key(name, StateKind::Map, &[])?;
        self.flush()?;
        let entries = self.backend.scan_prefix(&prefix)?;
        Ok(entries
            .into_iter()
            .map(|(k, v)| (k[prefix.len()..].to_vec(), v))
            .collect())
    }

    /// Removes every entry of map state `name`.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn map_clear(&mut self, name: &str) -> Result<(), StateError> {
        let prefix = self.storage_key(name, StateKind::Map, &[])?;
        self.flush()?;
        self.backend.delete_prefix(&prefix)
    }
}

fn decode_list(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        items.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    Some(items)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limited(limits: StateLimits) -> KeyedState {
        let mut s = KeyedState::new(
            Box::new(crate::MemoryBackend::new()),
            KeyGroupRange::all(128),
            128,
        )
        .with_limits(limits);
        s.set_current_key(b"k").unwrap();
        s
    }

    #[test]
    fn a_value_over_the_limit_is_refused_and_the_state_unchanged() {
        let mut s = limited(StateLimits {
            max_value_bytes: 100,
            ..StateLimits::default()
        });
        s.value_set("v", &[1; 100]).unwrap();
        let err = s.value_set("v", &[2; 101]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "state limit `max_state_value_bytes` of 100 exceeded: 101"
        );
        assert_eq!(s.value_get("v").unwrap(), Some(vec![1; 100]));
        // A list is one entry: it cannot grow past the limit either.
        s.list_add("l", &[0; 60]).unwrap();
        assert!(s.list_add("l", &[0; 60]).is_err());
    }

    #[test]
    fn pending_writes_of_one_call_are_bounded_in_bytes() {
        // Regression: 10M state puts in one call took the host to 2.4 GB.
        let mut s = limited(StateLimits {
            max_pending_bytes: 10_000,
            ..StateLimits::default()
        });
        let mut i = 0u32;
        let err = loop {
            match s.map_put("m", &i.to_be_bytes(), &[0; 100]) {
                Ok(()) => i += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(
            err,
            StateError::LimitExceeded {
                limit: "max_pending_state_bytes",
                max: 10_000,
                ..
            }
        ));
        // Each costs its key, 100 bytes of value and the entry overhead.
        assert!((35..50).contains(&i), "{i} writes fit");
        // Rewriting a pending entry does not count twice; a flush frees all.
        s.map_put("m", &0u32.to_be_bytes(), &[1; 100]).unwrap();
        s.flush().unwrap();
        s.map_put("m", &i.to_be_bytes(), &[0; 100]).unwrap();
    }

    #[test]
    fn timers_are_bounded_per_subtask() {
        // Regression: a million timers took the host to ~1 GB.
        let mut s = limited(StateLimits {
            max_timers: 3,
            ..StateLimits::default()
        });
        for ts in 0..3 {
            s.register_timer(TimerDomain::EventTime, ts).unwrap();
        }
        // The same timer again is no new timer.
        s.register_timer(TimerDomain::EventTime, 2).unwrap();
        let err = s
            .register_timer(TimerDomain::ProcessingTime, 9)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "state limit `max_timers` of 3 exceeded: 4");
        assert_eq!(s.timer_count(TimerDomain::ProcessingTime), 0);
        s.delete_timer(TimerDomain::EventTime, 0).unwrap();
        s.register_timer(TimerDomain::ProcessingTime, 9).unwrap();
    }

    #[test]
    fn timers_are_bounded_per_key_and_fired_or_deleted_ones_make_room() {
        let mut s = limited(StateLimits {
            max_timers_per_key: 2,
            ..StateLimits::default()
        });
        s.register_timer(TimerDomain::EventTime, 1).unwrap();
        s.register_timer(TimerDomain::ProcessingTime, 2).unwrap();
        let err = s
            .register_timer(TimerDomain::EventTime, 3)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "state limit `max_timers_per_key` of 2 exceeded: 3");
        // Another key has its own budget.
        s.set_current_key(b"other").unwrap();
        s.register_timer(TimerDomain::EventTime, 3).unwrap();
        // A fired timer and a deleted one make room for the first key.
        assert_eq!(
            s.pop_due_timer(TimerDomain::EventTime, 1).unwrap(),
            Some((1, b"k".to_vec()))
        );
        s.register_timer(TimerDomain::EventTime, 4).unwrap();
        s.delete_timer(TimerDomain::ProcessingTime, 2).unwrap();
        s.register_timer(TimerDomain::EventTime, 5).unwrap();
        assert!(s.register_timer(TimerDomain::EventTime, 6).is_err());
    }
    use crate::{MemoryBackend, RocksDbBackend, RocksDbShared};

    /// A reading buffered until its timer fires: a get that misses, a put,
    /// then a remove, over several calls. The backend never sees it; an
    /// entry the backend has is deleted there.
    #[test]
    fn an_entry_put_and_removed_between_flushes_never_reaches_the_backend() {
        let mut s = state(Box::new(MemoryBackend::new()));
        s.set_current_key(b"series").unwrap();
        assert_eq!(s.map_get("pending", b"t1").unwrap(), None);
        s.map_put("pending", b"t1", b"1.5").unwrap();
        s.end_call().unwrap();
        assert_eq!(s.map_get("pending", b"t1").unwrap(), Some(b"1.5".to_vec()));
        s.map_remove("pending", b"t1").unwrap();
        s.value_set("stats", b"n=1").unwrap();
        s.end_call().unwrap();
        assert_eq!(s.pending_writes(), 1, "only the value is to be written");
        s.flush().unwrap();
        assert_eq!(s.backend.scan_prefix(&[]).unwrap().len(), 1);
        // Read (clean), then deleted: the delete reaches the backend.
        assert_eq!(s.value_get("stats").unwrap(), Some(b"n=1".to_vec()));
        s.value_clear("stats").unwrap();
        s.end_call().unwrap();
        s.flush().unwrap();
        assert!(s.backend.scan_prefix(&[]).unwrap().is_empty());
    }

    #[test]
    fn writes_are_kept_across_calls_until_the_budget_is_passed() {
        let mut s = state(Box::new(MemoryBackend::new())).with_write_back_bytes(1_000);
        s.set_current_key(b"k").unwrap();
        s.value_set("a", &[1; 100]).unwrap();
        s.end_call().unwrap();
        assert_eq!(s.pending_writes(), 1, "under the budget: kept");
        assert!(s.backend.scan_prefix(&[]).unwrap().is_empty());
        for i in 0..5u8 {
            s.map_put("m", &[i], &[i; 100]).unwrap();
        }
        s.end_call().unwrap();
        assert_eq!(s.pending_writes(), 0, "over the budget: applied");
        assert_eq!(s.backend.scan_prefix(&[]).unwrap().len(), 6);
        // A budget of 0 applies every call's writes at its end.
        let mut s = state(Box::new(MemoryBackend::new())).with_write_back_bytes(0);
        s.set_current_key(b"k").unwrap();
        s.value_set("a", b"1").unwrap();
        s.end_call().unwrap();
        assert_eq!(s.backend.scan_prefix(&[]).unwrap().len(), 1);
    }

    /// Regression (the hour-long soak): a drained write-back buffer and
    /// timer-change map kept the capacity of their largest burst for the
    /// life of the task, a step of anonymous memory that never went back.
    #[test]
    fn a_burst_of_writes_or_timers_does_not_keep_its_capacity() {
        let mut s = state(Box::new(MemoryBackend::new()));
        s.set_current_key(b"k").unwrap();
        for i in 0..20_000u32 {
            s.map_put("m", &i.to_be_bytes(), b"v").unwrap();
            s.register_timer(TimerDomain::EventTime, i64::from(i))
                .unwrap();
        }
        s.snapshot_bytes().unwrap();
        assert!(s.pending.capacity() >= 20_000);
        for i in 0..10u32 {
            s.map_put("m", &i.to_be_bytes(), b"w").unwrap();
            s.delete_timer(TimerDomain::EventTime, i64::from(i))
                .unwrap();
        }
        s.snapshot_bytes().unwrap();
        let kept = 2 * KEPT_CAPACITY;
        assert!(s.pending.capacity() <= kept, "{}", s.pending.capacity());
        assert!(
            s.timer_changes.capacity() <= kept,
            "{}",
            s.timer_changes.capacity()
        );
        assert_eq!(
            s.map_get("m", &0u32.to_be_bytes()).unwrap(),
            Some(b"w".to_vec())
        );
    }

    /// Found in review: a read the guest made in `open` (before the
    /// restore) was cached as an absence, hid the restored entry, and made
    /// a later delete of it a no-op.
    #[test]
    fn a_restore_replaces_what_was_read_or_written_before_it() {
        let mut old = state(Box::new(MemoryBackend::new()));
        old.set_current_key(b"k").unwrap();
        old.map_put("m", b"x", b"restored").unwrap();
        old.map_put("m", b"y", b"restored").unwrap();
        let bytes = old.snapshot_bytes().unwrap();

        let mut s = state(Box::new(MemoryBackend::new()));
        s.set_current_key(b"k").unwrap();
        assert_eq!(s.map_get("m", b"x").unwrap(), None);
        s.map_put("m", b"y", b"from open").unwrap();
        s.end_call().unwrap();
        s.restore([bytes.as_slice()]).unwrap();
        assert_eq!(s.map_get("m", b"x").unwrap(), Some(b"restored".to_vec()));
        assert_eq!(s.map_get("m", b"y").unwrap(), Some(b"restored".to_vec()));
        s.map_remove("m", b"x").unwrap();
        s.flush().unwrap();
        assert_eq!(s.map_get("m", b"x").unwrap(), None);
        assert_eq!(s.backend.scan_prefix(&[]).unwrap().len(), 1);
    }

    /// A memory backend whose writes fail once `fail` is set.
    struct FailingWrites {
        inner: MemoryBackend,
        fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
    }

    impl StateBackend for FailingWrites {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
            self.inner.get(key)
        }
        fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
            self.inner.put(key, value)
        }
        fn delete(&mut self, key: &[u8]) -> Result<(), StateError> {
            self.inner.delete(key)
        }
        fn for_each_prefix(
            &self,
            prefix: &[u8],
            each: &mut crate::EntryVisitor<'_>,
        ) -> Result<(), StateError> {
            self.inner.for_each_prefix(prefix, each)
        }
        fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StateError> {
            self.inner.delete_prefix(prefix)
        }
        fn write_batch(
            &mut self,
            entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        ) -> Result<(), StateError> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(StateError::RocksDb {
                    path: "test".into(),
                    message: "no space left on device".into(),
                });
            }
            self.inner.write_batch(entries)
        }
        fn name(&self) -> &'static str {
            "failing"
        }
    }

    /// Found in review: a snapshot whose write failed (a declined
    /// checkpoint, after which the task goes on) dropped the buffered
    /// writes and timer changes, and later reads saw older values.
    #[test]
    fn writes_lost_to_a_failed_flush_fail_every_later_use() {
        let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let backend = FailingWrites {
            inner: MemoryBackend::new(),
            fail: fail.clone(),
        };
        let mut s = state(Box::new(backend));
        s.set_current_key(b"k").unwrap();
        s.value_set("v", b"1").unwrap();
        s.register_timer(TimerDomain::EventTime, 5).unwrap();
        s.end_call().unwrap();
        fail.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(matches!(
            s.snapshot_bytes(),
            Err(StateError::RocksDb { .. })
        ));
        fail.store(false, std::sync::atomic::Ordering::SeqCst);
        let lost = |r: Result<_, StateError>| matches!(r, Err(StateError::WritesLost(_)));
        assert!(lost(s.value_get("v").map(|_| ())));
        assert!(lost(s.value_set("v", b"2")));
        assert!(lost(s.end_call()));
        assert!(lost(s.snapshot_bytes().map(|_| ())));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(u8, u8, u8),
        Remove(u8, u8),
        Get(u8, u8),
        Entries(u8),
        Clear(u8),
        EndCall,
        SnapshotAndRestore,
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            4 => (0..3u8, 0..6u8, any::<u8>()).prop_map(|(k, m, v)| Op::Put(k, m, v)),
            2 => (0..3u8, 0..6u8).prop_map(|(k, m)| Op::Remove(k, m)),
            3 => (0..3u8, 0..6u8).prop_map(|(k, m)| Op::Get(k, m)),
            1 => (0..3u8).prop_map(Op::Entries),
            1 => (0..3u8).prop_map(Op::Clear),
            3 => Just(Op::EndCall),
            1 => Just(Op::SnapshotAndRestore),
        ]
    }

    /// Map state through the write-back buffer, against a `BTreeMap`
    /// recomputed from the operations: with no budget, a budget that
    /// evicts after almost every access, and the default.
    fn write_back_agrees_with_a_plain_map(ops: &[Op], budget: u64) {
        let fresh = || state(Box::new(MemoryBackend::new())).with_write_back_bytes(budget);
        let mut s = fresh();
        let mut model: std::collections::BTreeMap<(u8, u8), u8> = Default::default();
        for op in ops {
            match *op {
                Op::Put(k, m, v) => {
                    s.set_current_key(&[k]).unwrap();
                    s.map_put("m", &[m], &[v]).unwrap();
                    model.insert((k, m), v);
                }
                Op::Remove(k, m) => {
                    s.set_current_key(&[k]).unwrap();
                    s.map_remove("m", &[m]).unwrap();
                    model.remove(&(k, m));
                }
                Op::Get(k, m) => {
                    s.set_current_key(&[k]).unwrap();
                    let want = model.get(&(k, m)).map(|v| vec![*v]);
                    assert_eq!(s.map_get("m", &[m]).unwrap(), want, "{op:?}");
                }
                Op::Entries(k) => {
                    s.set_current_key(&[k]).unwrap();
                    let want: Vec<Entry> = model
                        .range((k, 0)..=(k, u8::MAX))
                        .map(|((_, m), v)| (vec![*m], vec![*v]))
                        .collect();
                    assert_eq!(s.map_entries("m").unwrap(), want, "{op:?}");
                }
                Op::Clear(k) => {
                    s.set_current_key(&[k]).unwrap();
                    s.map_clear("m").unwrap();
                    model.retain(|(key, _), _| *key != k);
                }
                Op::EndCall => s.end_call().unwrap(),
                Op::SnapshotAndRestore => {
                    let bytes = s.snapshot_bytes().unwrap();
                    s = fresh();
                    s.restore([bytes.as_slice()]).unwrap();
                }
            }
        }
        s.flush().unwrap();
        let stored = s.backend.scan_prefix(&[]).unwrap().len();
        assert_eq!(stored, model.len(), "entries in the backend");
    }

    proptest::proptest! {
        #[test]
        fn the_write_back_buffer_agrees_with_a_plain_map(
            ops in proptest::collection::vec(op(), 1..120)
        ) {
            for budget in [0, 300, DEFAULT_WRITE_BACK_BYTES] {
                write_back_agrees_with_a_plain_map(&ops, budget);
            }
        }
    }

    /// The same suite runs against every backend.
    fn timers_fire_in_order_deduplicated_and_deletable(backend: Box<dyn StateBackend>) {
        let mut state = KeyedState::new(backend, KeyGroupRange::all(128), 128);
        let ev = TimerDomain::EventTime;
        for (key, ts) in [
            ("b", 20),
            ("a", 20),
            ("a", 10),
            ("a", 20),
            ("c", 5),
            ("c", 30),
        ] {
            state.set_current_key(key.as_bytes()).unwrap();
            state.register_timer(ev, ts).unwrap();
        }
        state
            .register_timer(TimerDomain::ProcessingTime, 1)
            .unwrap();
        state.set_current_key(b"c").unwrap();
        state.delete_timer(ev, 30).unwrap();
        state.flush().unwrap();
        assert_eq!(state.timer_count(ev), 4, "(a, 20) is registered once");
        let mut fired = Vec::new();
        while let Some((ts, key)) = state.pop_due_timer(ev, 20).unwrap() {
            fired.push((ts, String::from_utf8(key).unwrap()));
        }
        assert_eq!(
            fired,
            vec![
                (5, "c".into()),
                (10, "a".into()),
                (20, "a".into()),
                (20, "b".into())
            ]
        );
        assert_eq!(
            state.next_timer(TimerDomain::ProcessingTime),
            Some((1, &b"c"[..]))
        );
        state.flush().unwrap();
        // Timers reach the backend only when a snapshot is taken, and only
        // those still registered then: here the processing-time one.
        assert!(state.backend.scan_prefix(&[]).unwrap().is_empty());
        state.persist_timers().unwrap();
        assert_eq!(state.backend.scan_prefix(&[]).unwrap().len(), 1);
    }

    /// Timers changed again and again between snapshots: what the backend
    /// holds at each snapshot is exactly the registered timers.
    fn timers_in_snapshots_are_the_registered_ones(backend: Box<dyn StateBackend>) {
        let ev = TimerDomain::EventTime;
        let mut s = KeyedState::new(backend, KeyGroupRange::all(128), 128);
        let restored = |s: &mut KeyedState| {
            let bytes = s.snapshot_bytes().unwrap();
            let mut fresh =
                KeyedState::new(Box::new(MemoryBackend::new()), KeyGroupRange::all(128), 128);
            fresh.restore([bytes.as_slice()]).unwrap();
            let mut fired = Vec::new();
            while let Some((ts, key)) = fresh.pop_due_timer(ev, i64::MAX).unwrap() {
                fired.push((ts, String::from_utf8(key).unwrap()));
            }
            fired
        };
        s.set_current_key(b"a").unwrap();
        s.register_timer(ev, 1).unwrap();
        s.register_timer(ev, 2).unwrap();
        assert_eq!(restored(&mut s), [(1, "a".into()), (2, "a".into())]);
        // Persisted, deleted, registered again; persisted and deleted;
        // registered and deleted before any snapshot saw it.
        s.delete_timer(ev, 1).unwrap();
        s.register_timer(ev, 1).unwrap();
        s.delete_timer(ev, 2).unwrap();
        s.set_current_key(b"b").unwrap();
        s.register_timer(ev, 3).unwrap();
        s.delete_timer(ev, 3).unwrap();
        s.register_timer(ev, 4).unwrap();
        assert_eq!(restored(&mut s), [(1, "a".into()), (4, "b".into())]);
        assert_eq!(s.pop_due_timer(ev, 1).unwrap(), Some((1, b"a".to_vec())));
        assert_eq!(restored(&mut s), [(4, "b".into())]);
        assert_eq!(s.pop_due_timer(ev, 9).unwrap(), Some((4, b"b".to_vec())));
        assert_eq!(restored(&mut s), []);
        assert!(s.backend.scan_prefix(&[]).unwrap().is_empty());
    }

    fn suite(make: &dyn Fn() -> Box<dyn StateBackend>) {
        timers_fire_in_order_deduplicated_and_deletable(make());
        timers_in_snapshots_are_the_registered_ones(make());
        value_state_is_scoped_to_the_key(make());
        list_state_keeps_order(make());
        map_state_is_ordered_and_isolated(make());
        errors_are_typed(make());
        key_groups_are_contiguous(make());
        buffered_writes_read_back_and_survive_flush(make());
    }

    fn buffered_writes_read_back_and_survive_flush(backend: Box<dyn StateBackend>) {
        let mut s = state(backend);
        s.set_current_key(b"k").unwrap();
        s.value_set("v", b"1").unwrap();
        s.flush().unwrap();
        // Update, clear and re-set across flushes; reads always see the latest.
        s.value_set("v", b"22").unwrap();
        assert_eq!(s.value_get("v").unwrap(), Some(b"22".to_vec()));
        s.value_clear("v").unwrap();
        assert_eq!(s.value_get("v").unwrap(), None);
        s.flush().unwrap();
        assert_eq!(
            s.value_get("v").unwrap(),
            None,
            "the delete reached the backend"
        );
        s.value_set("v", b"3").unwrap();
        s.list_add("l", b"a").unwrap();
        s.list_add("l", b"b").unwrap();
        s.map_put("m", b"x", b"1").unwrap();
        // A scan sees buffered map writes (it flushes first).
        assert_eq!(
            s.map_entries("m").unwrap(),
            vec![(b"x".to_vec(), b"1".to_vec())]
        );
        s.flush().unwrap();
        assert_eq!(s.pending_writes(), 0);
        assert_eq!(s.value_get("v").unwrap(), Some(b"3".to_vec()));
        assert_eq!(s.list_get("l").unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
    }

    fn state(backend: Box<dyn StateBackend>) -> KeyedState {
        KeyedState::new(backend, KeyGroupRange::all(128), 128)
    }

    fn value_state_is_scoped_to_the_key(backend: Box<dyn StateBackend>) {
        let mut s = state(backend);
        s.set_current_key(b"a").unwrap();
        assert_eq!(s.value_get("count").unwrap(), None);
        s.value_set("count", b"1").unwrap();
        s.value_set("other", b"x").unwrap();
        s.set_current_key(b"b").unwrap();
        assert_eq!(s.value_get("count").unwrap(), None);
        s.value_set("count", b"2").unwrap();
        s.set_current_key(b"a").unwrap();
        assert_eq!(s.value_get("count").unwrap(), Some(b"1".to_vec()));
        s.value_set("count", b"3").unwrap();
        assert_eq!(s.value_get("count").unwrap(), Some(b"3".to_vec()));
        s.value_clear("count").unwrap();
        assert_eq!(s.value_get("count").unwrap(), None);
        assert_eq!(s.value_get("other").unwrap(), Some(b"x".to_vec()));
        s.set_current_key(b"b").unwrap();
        assert_eq!(s.value_get("count").unwrap(), Some(b"2".to_vec()));
    }

    fn list_state_keeps_order(backend: Box<dyn StateBackend>) {
        let mut s = state(backend);
        s.set_current_key(b"k").unwrap();
        assert!(s.list_get("l").unwrap().is_empty());
        for item in [&b"one"[..], b"", b"three"] {
            s.list_add("l", item).unwrap();
        }
        assert_eq!(
            s.list_get("l").unwrap(),
            vec![b"one".to_vec(), vec![], b"three".to_vec()]
        );
        s.set_current_key(b"k2").unwrap();
        assert!(s.list_get("l").unwrap().is_empty());
        s.set_current_key(b"k").unwrap();
        s.list_clear("l").unwrap();
        assert!(s.list_get("l").unwrap().is_empty());
    }

    fn map_state_is_ordered_and_isolated(backend: Box<dyn StateBackend>) {
        let mut s = state(backend);
        s.set_current_key(b"k").unwrap();
        s.map_put("m", b"b", b"2").unwrap();
        s.map_put("m", b"a", b"1").unwrap();
        s.map_put("m", &[0xff], b"3").unwrap();
        s.map_put("m2", b"a", b"other map").unwrap();
        // A key that extends "k" must not leak into "k"'s maps.
        s.set_current_key(b"kk").unwrap();
        s.map_put("m", b"a", b"other key").unwrap();
        s.set_current_key(b"k").unwrap();
        assert_eq!(s.map_get("m", b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(
            s.map_entries("m").unwrap(),
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"2".to_vec()),
                (vec![0xff], b"3".to_vec())
            ]
        );
        s.map_remove("m", b"b").unwrap();
        assert_eq!(s.map_get("m", b"b").unwrap(), None);
        s.map_clear("m").unwrap();
        assert!(s.map_entries("m").unwrap().is_empty());
        assert_eq!(s.map_get("m2", b"a").unwrap(), Some(b"other map".to_vec()));
        s.set_current_key(b"kk").unwrap();
        assert_eq!(
            s.map_entries("m").unwrap(),
            vec![(b"a".to_vec(), b"other key".to_vec())]
        );
    }

    fn errors_are_typed(backend: Box<dyn StateBackend>) {
        let mut s = KeyedState::new(backend, KeyGroupRange { start: 0, end: 63 }, 128);
        assert!(matches!(s.value_get("x"), Err(StateError::NoCurrentKey(_))));
        let outside = (0..1000)
            .map(|i| format!("key{i}"))
            .find(|k| key_group_of(k.as_bytes(), 128) > 63)
            .expect("some key falls outside");
        assert!(matches!(
            s.set_current_key(outside.as_bytes()),
            Err(StateError::KeyGroupOutOfRange { .. })
        ));
        let inside = (0..1000)
            .map(|i| format!("key{i}"))
            .find(|k| key_group_of(k.as_bytes(), 128) <= 63)
            .expect("inside");
        s.set_current_key(inside.as_bytes()).unwrap();
        s.value_set("x", b"1").unwrap();
        assert!(matches!(
            s.list_add("x", b"1"),
            Err(StateError::KindMismatch { .. })
        ));
    }

    fn key_groups_are_contiguous(backend: Box<dyn StateBackend>) {
        let mut s = state(backend);
        for i in 0..200 {
            let key = format!("key{i}");
            s.set_current_key(key.as_bytes()).unwrap();
            s.value_set("v", key.as_bytes()).unwrap();
        }
        assert_eq!(s.pending_writes(), 200);
        assert!(
            s.backend.scan_prefix(&[]).unwrap().is_empty(),
            "nothing written before flush"
        );
        s.flush().unwrap();
        assert_eq!(s.pending_writes(), 0);
        let entries = s.backend.scan_prefix(&[]).unwrap();
        assert_eq!(entries.len(), 200);
        let groups: Vec<u16> = entries
            .iter()
            .map(|(k, _)| u16::from_be_bytes([k[0], k[1]]))
            .collect();
        assert!(
            groups.windows(2).all(|w| w[0] <= w[1]),
            "entries sorted by key group"
        );
        for ((_, v), g) in entries.iter().zip(&groups) {
            assert_eq!(key_group_of(v, 128), *g);
        }
    }

    #[test]
    fn memory_backend_passes_the_suite() {
        suite(&|| Box::new(MemoryBackend::new()));
    }

    #[test]
    fn rocksdb_backend_passes_the_suite() {
        let dir = tempfile::tempdir().unwrap();
        let counter = std::cell::Cell::new(0);
        suite(&|| {
            counter.set(counter.get() + 1);
            Box::new(
                RocksDbBackend::open(
                    &dir.path().join(counter.get().to_string()),
                    &RocksDbShared::default(),
                )
                .unwrap(),
            )
        });
    }

    #[test]
    fn rocksdb_state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut s = state(Box::new(
                RocksDbBackend::open(dir.path(), &RocksDbShared::default()).unwrap(),
            ));
            s.set_current_key(b"k").unwrap();
            s.value_set("v", b"kept").unwrap();
            s.flush().unwrap();
        }
        let mut s = state(Box::new(
            RocksDbBackend::open(dir.path(), &RocksDbShared::default()).unwrap(),
        ));
        s.set_current_key(b"k").unwrap();
        // The WAL is off, but a clean close flushes the memtable.
        assert_eq!(s.value_get("v").unwrap(), Some(b"kept".to_vec()));
    }

    #[test]
    fn corrupt_list_is_reported() {
        assert_eq!(decode_list(&[0, 0, 0, 5, b'a']), None);
        assert_eq!(decode_list(&[0, 0, 0, 1, b'a']), Some(vec![b"a".to_vec()]));
    }

    /// State of 40 keys (value, list, map, timers) snapshotted at
    /// parallelism 1, encoded, decoded and restored at parallelism 3 (and
    /// from there back to 1): every key's state and every timer is found
    /// in exactly the subtask that owns its key group.
    fn snapshots_restore_at_another_parallelism(make: &dyn Fn() -> Box<dyn StateBackend>) {
        const MAX: u16 = 16;
        let keys: Vec<Vec<u8>> = (0..40).map(|i| format!("key-{i}").into_bytes()).collect();
        let mut one = KeyedState::new(make(), KeyGroupRange::all(MAX), MAX);
        for (i, key) in keys.iter().enumerate() {
            one.set_current_key(key).unwrap();
            one.value_set("v", &[i as u8]).unwrap();
            one.list_add("l", b"a").unwrap();
            one.list_add("l", &[i as u8]).unwrap();
            one.map_put("m", b"k", key).unwrap();
            one.register_timer(TimerDomain::EventTime, 1000 - i as i64)
                .unwrap();
        }
        // Streamed while scanning; the same bytes as the decoded form's.
        let bytes = one.snapshot_bytes().unwrap();
        let snapshot = crate::KeyedSnapshot::from_bytes(&bytes).unwrap();
        assert_eq!(snapshot.to_bytes().unwrap(), bytes);

        let mut three: Vec<KeyedState> = (0..3)
            .map(|i| {
                let mut s = KeyedState::new(make(), KeyGroupRange::for_subtask(i, 3, MAX), MAX);
                s.restore([bytes.as_slice()]).unwrap();
                s
            })
            .collect();
        let mut timers = 0;
        for (i, key) in keys.iter().enumerate() {
            let group = key_group_of(key, MAX);
            for state in &mut three {
                let owns = state.key_group_range().contains(group);
                if !owns {
                    continue;
                }
                state.set_current_key(key).unwrap();
                assert_eq!(state.value_get("v").unwrap(), Some(vec![i as u8]));
                assert_eq!(
                    state.list_get("l").unwrap(),
                    vec![b"a".to_vec(), vec![i as u8]]
                );
                assert_eq!(state.map_get("m", b"k").unwrap(), Some(key.clone()));
                assert!(
                    matches!(
                        state.map_get("v", b"k"),
                        Err(StateError::KindMismatch { .. })
                    ),
                    "kinds come back with the state"
                );
            }
        }
        for state in &mut three {
            let mut last = i64::MIN;
            while let Some((ts, key)) = state
                .pop_due_timer(TimerDomain::EventTime, i64::MAX)
                .unwrap()
            {
                assert!(ts >= last, "timers fire in time order");
                assert!(state.key_group_range().contains(key_group_of(&key, MAX)));
                last = ts;
                timers += 1;
            }
        }
        assert_eq!(timers, keys.len());

        // Back to one subtask from the three (timers were fired above, so
        // only state remains).
        let parts: Vec<Vec<u8>> = three
            .iter_mut()
            .map(|s| s.snapshot_bytes().unwrap())
            .collect();
        let mut back = KeyedState::new(make(), KeyGroupRange::all(MAX), MAX);
        back.restore(parts.iter().map(Vec::as_slice)).unwrap();
        let again = back.snapshot().unwrap();
        let mut original = one.snapshot().unwrap();
        original
            .entries
            .retain(|(k, _)| !matches!(StorageKey::parse(k), Ok(p) if p.is_timer()));
        assert_eq!(again, original);
    }

    #[test]
    fn memory_snapshots_restore_at_another_parallelism() {
        snapshots_restore_at_another_parallelism(&|| Box::new(MemoryBackend::new()));
    }

    #[test]
    fn rocksdb_snapshots_restore_at_another_parallelism() {
        let dir = tempfile::tempdir().unwrap();
        let n = std::cell::Cell::new(0);
        snapshots_restore_at_another_parallelism(&|| {
            n.set(n.get() + 1);
            Box::new(
                RocksDbBackend::open(
                    &dir.path().join(n.get().to_string()),
                    &RocksDbShared::default(),
                )
                .unwrap(),
            )
        });
    }

    #[test]
    fn native_checkpoints_keep_old_sst_files_and_restore_at_another_parallelism() {
        const MAX: u16 = 16;
        let dir = tempfile::tempdir().unwrap();
        let backend =
            RocksDbBackend::open(&dir.path().join("db"), &RocksDbShared::default()).unwrap();
        let mut state = KeyedState::new(Box::new(backend), KeyGroupRange::all(MAX), MAX);
        let write = |state: &mut KeyedState, keys: std::ops::Range<u32>| {
            for i in keys {
                state.set_current_key(format!("k{i}").as_bytes()).unwrap();
                state.value_set("v", &i.to_be_bytes()).unwrap();
                state
                    .register_timer(TimerDomain::EventTime, i64::from(i))
                    .unwrap();
            }
        };
        write(&mut state, 0..500);
        let first = state
            .native_checkpoint(&dir.path().join("chk-1"))
            .unwrap()
            .expect("rocksdb has a native format");
        write(&mut state, 500..1000);
        let second = state
            .native_checkpoint(&dir.path().join("chk-2"))
            .unwrap()
            .unwrap();
        let ssts = |c: &crate::NativeCheckpoint| -> Vec<crate::NativeFile> {
            c.files
                .iter()
                .filter(|f| f.is_immutable())
                .cloned()
                .collect()
        };
        assert_eq!(ssts(&first).len(), 1);
        // The first checkpoint's SST file is still live; one more was added.
        assert_eq!(ssts(&second).len(), 2);
        assert!(ssts(&second).contains(&ssts(&first)[0]));

        let full = state.snapshot().unwrap();
        let mut parts: Vec<crate::KeyedSnapshot> = (0..3)
            .map(|i| {
                let range = KeyGroupRange::for_subtask(i, 3, MAX);
                let mut part = KeyedState::new(Box::new(MemoryBackend::new()), range, MAX);
                part.restore_native(&second.dir).unwrap();
                assert_eq!(
                    part.timer_count(TimerDomain::EventTime),
                    full.entries
                        .iter()
                        .filter(|(k, _)| {
                            let p = StorageKey::parse(k).unwrap();
                            range.contains(p.group) && p.is_timer()
                        })
                        .count()
                );
                part.snapshot().unwrap()
            })
            .collect();
        let mut entries: Vec<_> = parts.iter_mut().flat_map(|p| p.entries.drain(..)).collect();
        entries.sort();
        assert_eq!(entries, full.entries);
        assert_eq!(full.entries.len(), 2000, "a value and a timer per key");
    }

    #[test]
    fn an_adopted_native_checkpoint_is_the_state_with_its_timers() {
        const MAX: u16 = 16;
        let dir = tempfile::tempdir().unwrap();
        let range = KeyGroupRange::for_subtask(1, 2, MAX);
        let open = |name: &str| {
            let backend =
                RocksDbBackend::open(&dir.path().join(name), &RocksDbShared::default()).unwrap();
            KeyedState::new(Box::new(backend), range, MAX)
        };
        let mut state = open("db");
        let mut keys = 0;
        for i in 0..400u32 {
            let key = format!("k{i}");
            if !range.contains(key_group_of(key.as_bytes(), MAX)) {
                continue;
            }
            keys += 1;
            state.set_current_key(key.as_bytes()).unwrap();
            state.value_set("v", &i.to_be_bytes()).unwrap();
            state.list_add("l", b"x").unwrap();
            state
                .register_timer(TimerDomain::EventTime, i64::from(i))
                .unwrap();
        }
        let checkpoint = state
            .native_checkpoint(&dir.path().join("chk-1"))
            .unwrap()
            .unwrap();
        let want = state.snapshot().unwrap();

        // A fresh subtask with the same key groups works in the checkpoint.
        let mut adopted = open("fresh");
        adopted.adopt_native(&checkpoint.dir).unwrap();
        assert!(
            !dir.path().join("fresh").exists(),
            "the empty store is gone"
        );
        assert_eq!(adopted.snapshot().unwrap().entries, want.entries);
        assert_eq!(adopted.timer_count(TimerDomain::EventTime), keys);
        // It keeps working: timers fire in order and take their entry
        // with them, writes land.
        let mut fired = Vec::new();
        while let Some((ts, _)) = adopted.pop_due_timer(TimerDomain::EventTime, 50).unwrap() {
            fired.push(ts);
        }
        assert!(
            !fired.is_empty() && fired.windows(2).all(|w| w[0] < w[1]),
            "{fired:?}"
        );
        let key = want.entries.iter().find_map(|(k, _)| {
            let parsed = StorageKey::parse(k).unwrap();
            (parsed.rest.first() == Some(&b'v')).then(|| parsed.key.to_vec())
        });
        adopted.set_current_key(&key.unwrap()).unwrap();
        adopted.value_set("v", b"new").unwrap();
        adopted.flush().unwrap();
        assert_eq!(
            adopted.value_get("v").unwrap().as_deref(),
            Some(&b"new"[..])
        );
        assert_eq!(
            adopted.snapshot().unwrap().entries.len(),
            want.entries.len() - fired.len()
        );

        // A subtask with other key groups must not take it over.
        let backend =
            RocksDbBackend::open(&dir.path().join("other"), &RocksDbShared::default()).unwrap();
        let other = KeyGroupRange::for_subtask(0, 2, MAX);
        let mut wrong = KeyedState::new(Box::new(backend), other, MAX);
        let e = wrong.adopt_native(&checkpoint.dir).unwrap_err().to_string();
        assert!(e.contains("outside"), "{e}");
    }

    #[test]
    fn a_damaged_native_checkpoint_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-000404\n").unwrap();
        let mut state = KeyedState::new(Box::new(MemoryBackend::new()), KeyGroupRange::all(16), 16);
        let e = state.restore_native(dir.path()).unwrap_err().to_string();
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
    }

    #[test]
    fn damaged_snapshot_bytes_are_errors_not_panics() {
        let snapshot = crate::KeyedSnapshot {
            entries: vec![(b"\0\x01\0\0\0\x01kv\0\x01n".to_vec(), b"x".to_vec())],
        };
        let bytes = snapshot.to_bytes().unwrap();
        assert_eq!(crate::KeyedSnapshot::from_bytes(&bytes).unwrap(), snapshot);
        let mut state = KeyedState::new(Box::new(MemoryBackend::new()), KeyGroupRange::all(4), 4);
        for cut in 0..bytes.len() {
            assert!(
                crate::KeyedSnapshot::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
            assert!(
                matches!(
                    state.restore([&bytes[..cut]]),
                    Err(StateError::CorruptSnapshot(_))
                ),
                "restore cut at {cut}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        let e = crate::KeyedSnapshot::from_bytes(&trailing).unwrap_err();
        assert!(e.to_string().contains("trailing bytes"), "{e}");
        let mut huge = bytes.clone();
        huge[4..12].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(crate::KeyedSnapshot::from_bytes(&huge).is_err());
        let bad = crate::KeyedSnapshot {
            entries: vec![(vec![0, 1, 0, 0, 0, 9], vec![])],
        };
        assert!(matches!(
            state.restore([bad.to_bytes().unwrap().as_slice()]),
            Err(StateError::CorruptSnapshot(_))
        ));
    }
}
