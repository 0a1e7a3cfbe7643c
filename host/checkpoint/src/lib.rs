//! Exactly-once checkpoints: Flink's asynchronous barrier snapshotting
//! (Carbone et al., "Lightweight Asynchronous Snapshots for Distributed
//! Dataflows", 2015), as plain state machines plus storage.
//!
//! - [`CheckpointCoordinator`]: when to trigger checkpoint *n*, which
//!   subtasks must acknowledge it, timeouts, the minimum pause between
//!   checkpoints, tolerable failures, and per-checkpoint statistics. Time
//!   is an argument (`now_ms`), so tests drive it without clocks.
//! - [`BarrierAligner`]: a subtask with several producers blocks each
//!   producer from the moment its barrier *n* arrives until barrier *n*
//!   arrived from all of them (exactly-once alignment).
//! - [`CheckpointStorage`]: checkpoint directories through the
//!   `object_store` crate (a local directory by default; `s3://`, `az://`
//!   and `gs://` URLs for cloud object stores): per-subtask state
//!   files, `_metadata` written last and atomically, retention of the last
//!   N completed checkpoints, discovery of the latest one, and CRC-32
//!   checks of every state file and shared file a restore reads.
//! - [`CheckpointConfig`]: Flink's configuration keys
//!   (`execution.checkpointing.interval`, `state.checkpoints.dir`, ...).
//! - [`RestartStrategy`] / [`RestartTracker`]: Flink's fixed-delay,
//!   exponential-delay and failure-rate restart strategies.

mod aligner;
mod config;
mod coordinator;
mod object_stores;
mod restart;
mod stats;
mod storage;

pub use aligner::{Alignment, BarrierAligner};
pub use config::{CheckpointConfig, ConfigError};
pub use coordinator::{
    Acknowledgement, CheckpointAction, CheckpointCoordinator, CheckpointStats, TaskId,
};
pub use restart::{RestartStrategy, RestartTracker};
pub use stats::{CheckpointStatsHistory, DEFAULT_STATS_HISTORY};
pub use storage::{
    CheckpointMetadata, CheckpointStorage, MULTIPART_PART_BYTES, StorageError, SubtaskState, crc32,
    file_crc32,
};

/// A checkpoint's number: 1, 2, ... in trigger order.
pub type CheckpointId = u64;
