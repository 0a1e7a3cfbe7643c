//! The messages of a running attempt that cross processes: what the
//! attempt's driver tells a task ([`TaskControl`]), what a task reports back
//! ([`WireEvent`], with the [`TaskFailureKind`] of a failure kept), and the
//! counters a TaskManager sends ([`MetricsSnapshot`]).
//!
//! `weir-task` uses them in-process (its control queues carry
//! [`TaskControl`]) and converts its own events to and from [`WireEvent`];
//! they live here, below both, so that decoders of the control stream can be
//! built (and fuzzed) without the task runtime.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_checkpoint::{Acknowledgement, CheckpointId, TaskId};

/// A message to one task (a chain subtask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskControl {
    /// Take checkpoint `.0`: a source task snapshots and injects the
    /// barrier at once; a task whose input ended answers with its final
    /// state; any other task ignores it (its barriers bring the checkpoint).
    TriggerCheckpoint(CheckpointId),
    /// Checkpoint `.0` completed: transactional sinks commit what it covers.
    NotifyCheckpointComplete(CheckpointId),
    /// The job's final checkpoint or its savepoint completed: the task
    /// exits without reading further.
    Finish,
    /// Stop at once: another task failed, or the job was cancelled.
    Cancel,
}

/// What kind of failure a task had, kept from where it happened to the
/// JobManager, which decides on a restart and shows it in `/exceptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskFailureKind {
    /// The UDF trapped (a panic, `unreachable`, an out-of-bounds access).
    Trap,
    /// The UDF ran past its call timeout (`call_timeout_ms`).
    Timeout,
    /// The UDF asked for more memory than its cap (`memory_mib`).
    MemoryLimit,
    /// A host call of the UDF failed, or its `open`/`close` returned an error.
    UdfError,
    /// A source, sink, state backend or checkpoint I/O failed.
    Io,
    /// A bad record with `on_error: fail`: a malformed input record at a
    /// source, or a record the UDF rejected, or a value a sink cannot
    /// write (not JSON).
    BadData,
    /// A bug in Weir (a panic in host code).
    Internal,
}

impl TaskFailureKind {
    /// The name used in the REST API (`trap`, `timeout`, `memory-limit`,
    /// `udf-error`, `io`, `bad-data`, `internal`).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskFailureKind::Trap => "trap",
            TaskFailureKind::Timeout => "timeout",
            TaskFailureKind::MemoryLimit => "memory-limit",
            TaskFailureKind::UdfError => "udf-error",
            TaskFailureKind::Io => "io",
            TaskFailureKind::BadData => "bad-data",
            TaskFailureKind::Internal => "internal",
        }
    }
}

/// A task failure as it crosses processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireFailure {
    /// A task's own failure (`weir_task::JobError::Task`), field for field.
    Task {
        /// The vertex id.
        vertex: String,
        /// 0-based subtask index.
        index: u32,
        /// The vertex's parallelism.
        parallelism: u32,
        /// The input record being processed, when known.
        origin: Option<String>,
        /// What kind of failure it was.
        kind: TaskFailureKind,
        /// What happened.
        message: String,
    },
    /// Any other `weir_task::JobError` (the task could not be set up: a component,
    /// a connector, checkpoint storage), as its message; the JobManager
    /// treats it as a task failure of kind `io`, so the restart strategy
    /// decides.
    Setup {
        /// The task's vertex.
        vertex: String,
        /// Its subtask index.
        index: u32,
        /// The error's message.
        message: String,
    },
    /// The checkpoint the task restored from is damaged
    /// (`weir_task::JobError::DamagedCheckpoint`): the JobManager falls
    /// back to the next older retained one.
    DamagedCheckpoint {
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Which file, and what is wrong with it.
        message: String,
    },
}

/// A task event (`weir_task::control::TaskEvent`) as it crosses processes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireEvent {
    /// `weir_task::control::TaskEvent::Acknowledge`.
    Acknowledge {
        /// The task.
        task: TaskId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Its state handles.
        ack: Acknowledgement,
    },
    /// `weir_task::control::TaskEvent::Decline`.
    Decline {
        /// The task.
        task: TaskId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Why.
        reason: String,
    },
    /// `weir_task::control::TaskEvent::InputEnded`.
    InputEnded {
        /// The task.
        task: TaskId,
    },
    /// `weir_task::control::TaskEvent::Failed`.
    Failed {
        /// The task.
        task: TaskId,
        /// What happened.
        failure: WireFailure,
    },
    /// `weir_task::control::TaskEvent::Exited`.
    Exited {
        /// The task.
        task: TaskId,
    },
}

/// The counters of one executor's subtasks at a moment, to add into the
/// job's counters elsewhere: a TaskManager sends them to the JobManager,
/// which adds what changed since the previous one
/// (`weir_task::JobMetrics::absorb`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// Records read by sources.
    pub records_read: u64,
    /// Records written by sinks.
    pub records_written: u64,
    /// Malformed inputs and per-record UDF errors.
    pub record_errors: u64,
    /// Those of them written to a dead-letter directory.
    #[serde(default)]
    pub dead_lettered: u64,
    /// Late records dropped.
    pub late_dropped: u64,
    /// Whether any record was processed.
    pub processed: bool,
    /// The problems kept verbatim, oldest first.
    pub problems: Vec<String>,
    /// Each sink subtask's last watermark.
    pub sink_watermarks: BTreeMap<String, i64>,
    /// Per vertex.
    pub vertices: BTreeMap<String, VertexSnapshot>,
}

/// One vertex's counters in a [`MetricsSnapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VertexSnapshot {
    /// The vertex's parallelism.
    pub parallelism: u32,
    /// Records in.
    pub records_in: u64,
    /// Records out.
    pub records_out: u64,
    /// Back-pressured time, ns.
    pub back_pressured_ns: u64,
    /// Per subtask, its last watermark (`i64::MIN`: none, or not here).
    pub watermarks: Vec<i64>,
}
