//! Snapshots and restores of `KeyedState`: full snapshots in the
//! `weir-snapshot` format, RocksDB native checkpoints, and the indexes a
//! restore rebuilds.

use super::*;

impl KeyedState {
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
    pub(super) fn restore_entry(
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
    pub(super) fn index_entry(&mut self, key: &[u8]) -> Result<bool, StateError> {
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
}
