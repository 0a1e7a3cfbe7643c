//! Keyed state for Weir operators.
//!
//! A [`StateBackend`] is an ordered byte map owned by one subtask; two are
//! provided: [`RocksDbBackend`] (the default, spills to disk) and
//! [`MemoryBackend`]. The RocksDB instances of a process's slots share one
//! bounded block cache and memtable budget ([`RocksDbShared`], Flink's
//! managed memory). [`KeyedState`] keeps a write-back buffer of recently
//! written and read entries in front of the backend (applied past
//! [`DEFAULT_WRITE_BACK_BYTES`] and at snapshots) and its timers on the heap
//! (written to the backend only at snapshots). [`KeyedState`] lays value, list and map state over any
//! backend, with every entry's storage key prefixed by its key group
//! (big-endian `u16`), so the state of a [`KeyGroupRange`] is one contiguous
//! range of the map — what snapshots and rescaling will cut along.
//!
//! Storage key layout (all integers big-endian):
//!
//! ```text
//! key group (u16) | key length (u32) | key | state kind (u8) | name length (u16) | name | map key
//! ```

mod backend;
mod keyed;

pub use backend::{
    EntryVisitor, MemoryBackend, NativeCheckpoint, NativeFile, RocksDbBackend, RocksDbShared,
    StateBackend, scan_native,
};
pub use keyed::{DEFAULT_WRITE_BACK_BYTES, KeyedState, PENDING_ENTRY_OVERHEAD, TimerDomain};
pub use weir_snapshot::{
    KeyedSnapshot, SnapshotEntries, SnapshotWriter, StateKind, StorageKey, snapshot_entries,
};
pub use weir_types::KeyGroupRange;

/// One `(key, value)` entry of an ordered byte map.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Errors of the state layer.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// RocksDB reported an error.
    #[error("RocksDB error in {path}: {message}")]
    RocksDb {
        /// The database directory.
        path: String,
        /// RocksDB's message.
        message: String,
    },
    /// RocksDB found its files damaged (its `Corruption` status: a block
    /// checksum mismatch, a truncated SST file).
    #[error("RocksDB found damaged files in {path}: {message}")]
    RocksDbCorruption {
        /// The database directory.
        path: String,
        /// RocksDB's message.
        message: String,
    },
    /// State was used with no current key (a non-keyed stream, or before a key was set).
    #[error(
        "keyed state `{0}` used without a current key (is the input keyed with `partition: key_by`?)"
    )]
    NoCurrentKey(String),
    /// The current key belongs to a key group this subtask does not own.
    #[error("key group {group} of the current key is outside this subtask's range {start}..={end}")]
    KeyGroupOutOfRange {
        /// The key's group.
        group: u16,
        /// First group owned.
        start: u16,
        /// Last group owned.
        end: u16,
    },
    /// One state name used as two kinds.
    #[error("state `{name}` is {existing:?} state and cannot be used as {requested:?} state")]
    KindMismatch {
        /// The state's name.
        name: String,
        /// The kind it was first used as.
        existing: StateKind,
        /// The kind it is now used as.
        requested: StateKind,
    },
    /// Stored list state bytes are damaged.
    #[error("list state `{0}` is corrupt")]
    CorruptList(String),
    /// A state name longer than 65535 bytes.
    #[error("state name is longer than 65535 bytes")]
    NameTooLong,
    /// Snapshot bytes (from a checkpoint file) are damaged, or an entry
    /// too long for the snapshot format.
    #[error("keyed state snapshot is corrupt: {0}")]
    CorruptSnapshot(String),
    /// A guest asked the host to hold more than a [`StateLimits`] allows.
    #[error("state limit `{limit}` of {max} exceeded: {value}")]
    LimitExceeded {
        /// The limit's job-file name (`max_state_value_bytes`, ...).
        limit: &'static str,
        /// Its value.
        max: u64,
        /// What was asked for.
        value: u64,
    },
    /// Applying buffered writes (or timer changes) to the backend failed
    /// earlier, so they are gone: the state no longer matches what the
    /// guest wrote and every later use fails until the task restarts from
    /// a checkpoint.
    #[error("keyed state lost buffered writes when applying them failed: {0}")]
    WritesLost(String),
}

impl StateError {
    /// Whether the error says that bytes read back (a snapshot, a
    /// restored database) are damaged, rather than that the state cannot
    /// be used for another reason.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StateError::CorruptSnapshot(_)
                | StateError::CorruptList(_)
                | StateError::RocksDbCorruption { .. }
        )
    }
}

impl From<weir_snapshot::SnapshotError> for StateError {
    fn from(error: weir_snapshot::SnapshotError) -> Self {
        match error {
            weir_snapshot::SnapshotError::Damaged(m) | weir_snapshot::SnapshotError::Encode(m) => {
                StateError::CorruptSnapshot(m)
            }
        }
    }
}

/// What keyed state holds for a guest at most, so a guest cannot make the
/// host hold more than this whatever its memory cap (issue: host work
/// outside every limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateLimits {
    /// Bytes of one state entry (a value, a whole list, a map entry's
    /// value); default 64 MiB.
    pub max_value_bytes: u64,
    /// Bytes the write-back buffer may hold within one guest call (keys
    /// and values plus [`PENDING_ENTRY_OVERHEAD`] per entry, including
    /// what earlier calls left in it, at most a quarter of this); a write
    /// past it fails the call. Default 256 MiB.
    pub max_pending_bytes: u64,
    /// Timers registered in the subtask, both domains; default 1,000,000.
    pub max_timers: u64,
    /// Timers registered for one key, both domains; default 100,000.
    pub max_timers_per_key: u64,
}

impl Default for StateLimits {
    fn default() -> Self {
        Self {
            max_value_bytes: 64 << 20,
            max_pending_bytes: 256 << 20,
            max_timers: 1_000_000,
            max_timers_per_key: 100_000,
        }
    }
}
