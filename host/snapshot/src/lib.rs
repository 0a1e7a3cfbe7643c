//! The byte formats of what a subtask writes into a checkpoint, and their
//! decoders: the subtask state file ([`SubtaskSnapshot`], `WSUB1`), the
//! incremental handle of RocksDB keyed state ([`IncrementalHandle`],
//! `WKI2`), a full keyed-state snapshot ([`KeyedSnapshot`], `WKS1`) and the
//! storage keys of its entries ([`StorageKey`]), a UDF's operator state
//! (`WOS1`) and the checkpointed watermarks.
//!
//! They sit below the task runtime (`weir-task` writes and reads them) so
//! that their decoders, which read bytes from checkpoint storage, build and
//! are fuzzed without wasmtime or RocksDB. Every decoder refuses damaged
//! bytes with a [`SnapshotError`], never a panic; checkpoint storage checks
//! each file's CRC-32 before they get here.

mod incremental;
mod keyed;
mod operator_state;
mod subtask;
mod watermark;

pub use incremental::{IncrementalHandle, SharedFile};
pub use keyed::{
    KeyedSnapshot, SnapshotEntries, SnapshotWriter, StateKind, StorageKey, StoredEntry, TIMER_TAG,
    encode_timer_timestamp, snapshot_entries,
};
pub use operator_state::{OPERATOR_STATE_MAGIC, decode_operator_state, encode_operator_state};
pub use subtask::{HeadSnapshot, OperatorSnapshot, SubtaskSnapshot};
pub use watermark::{InputWatermarksSnapshot, SplitWatermarksSnapshot};

/// Bytes that are not what a checkpoint wrote, or a value that cannot be
/// encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not decode: what is wrong.
    #[error("{0}")]
    Damaged(String),
    /// A value could not be encoded (postcard's reason).
    #[error("cannot encode: {0}")]
    Encode(String),
}
