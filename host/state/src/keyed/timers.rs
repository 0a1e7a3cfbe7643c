//! Timers of `KeyedState`: an ordered set per time domain in memory
//! (Flink's heap timer service), written to the backend as a difference
//! at snapshots.

use super::*;

impl KeyedState {
    /// The storage key of a timer of the current key:
    /// `prefix | 't' | domain | timestamp` (timestamp as big-endian with
    /// the sign bit flipped, so entries sort by time).
    pub(super) fn timer_storage_key(
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
    pub(super) fn note_timer_change(&mut self, storage_key: Vec<u8>, registered: bool) {
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
    pub(super) fn persist_timers(&mut self) -> Result<(), StateError> {
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

    /// One timer of `key` fewer in [`KeyedState::timers_per_key`].
    pub(super) fn timer_gone(&mut self, key: &[u8]) {
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
}
