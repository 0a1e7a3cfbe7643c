//! Execution of a JobGraph in one process: the tasks of an attempt.
//!
//! [`deploy_local`] plans one attempt of a job into operator chains (see
//! `graph`) and one owned [`deployment::TaskDeploymentDescriptor`] per
//! chain subtask, then starts one OS thread per subtask (a *slot*, as in
//! Flink's StreamTask), connecting chains with bounded queues of batches,
//! so a slow consumer back-pressures its producers all the way to the
//! sources. Partitioning between chains is `forward`, `rebalance` or
//! `key_by` (records go to the subtask owning their key group). Bounded
//! sources end with `EndOfInput`, which travels down the graph.
//!
//! The tasks talk to the attempt's driver (in `weir-jobmanager`) only by
//! [`control`] messages: checkpoint triggers and completions, finish and
//! cancel in; acknowledgements, declines, end of input, failures (with
//! their [`TaskFailureKind`]) and exits out.
//!
//! With checkpointing on (`execution.checkpointing.interval`, see
//! [`weir_checkpoint::CheckpointConfig`]) the tasks take barrier snapshots
//! when the driver triggers them, and file sinks commit their output only
//! with completed checkpoints (two-phase commit). Restarts are not decided
//! here: the JobManager's job state machine (`weir-jobmanager`, also
//! behind `weir run`) decides, under the restart strategy, whether to run
//! another attempt from the latest completed checkpoint
//! ([`resolve_checkpoint`]).
//!
//! A task failure (a UDF trap or limit hit, an I/O error) is reported as a
//! [`JobError`] naming the
//! operator, the subtask and, where known, the input file and line of the
//! record. Record-level
//! problems (a malformed input row, a UDF's per-record error) are counted
//! and reported in the [`JobSummary`] without stopping the job.

mod attempt;
mod bad_records;
pub mod channel;
mod checkpointing;
mod clock;
mod context;
pub mod control;
pub mod dead_letter;
pub mod deployment;
mod exchange;
pub mod executor;
mod factories;
mod graph;
mod incremental;
mod input;
pub mod leftovers;
mod metrics;
mod ops;
mod routing;
mod snapshot;
mod subtask;
mod subtask_checkpoint;
pub mod transport;
pub mod watermark;
pub mod wire;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use checkpointing::Restore;
pub use context::{OriginSpan, SplitTable};
pub use metrics::JobMetrics;
pub use weir_checkpoint::{CheckpointConfig, CheckpointStats, TaskId};
use weir_connectors::ConnectorError;
pub use weir_protocol::task::{MetricsSnapshot, VertexSnapshot};
use weir_types::jobgraph::JobGraph;
use weir_wasm::WasmError;

/// How to run a job.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The compiled `.wasm` component of every operator, by operator id.
    pub udfs: HashMap<String, PathBuf>,
    /// Working directory for state backends (RocksDB databases), removed at the end.
    pub state_dir: PathBuf,
    /// Compiled-component cache (`None`: compile every time).
    pub cache_dir: Option<PathBuf>,
    /// Counters the caller can watch while the job runs.
    pub metrics: Arc<JobMetrics>,
    /// Batches a channel between two subtasks holds before the producer blocks (default 8).
    pub channel_capacity: usize,
    /// Checkpointing and restart settings (default: no checkpoints).
    pub checkpoints: CheckpointConfig,
    /// Start from this checkpoint instead of from the beginning.
    pub restore: Option<Restore>,
    /// A Wasm runtime (engine, linker, compiled-code cache) shared with
    /// other jobs; `None`: each attempt creates its own from `cache_dir`.
    pub runtime: Option<Arc<weir_wasm::WasmRuntime>>,
    /// Input records UDFs failed on in attempts in a row, not passed to
    /// them again but dead-lettered, and suspect batch spans whose records
    /// they get one per call ([`PoisonRecords`]).
    pub poison_records: PoisonRecords,
}

/// How messages name a record a UDF produced (one with no source position):
/// never a record of its own (poison records are never this).
pub const DERIVED_ORIGIN: &str = "a record produced by an upstream operator";

/// Per operator id, the input records (by origin, `file:line`) its UDF is
/// not given again, each with the failure it caused, and the suspect spans
/// of batches (`one of the records file:first-last`, see [`OriginSpan`])
/// whose records it is given one per call. The JobManager adds a record
/// after `restart-strategy.max-identical-failures` attempts failed on it in
/// a row (or when the attempt after a span became a suspect failed on it),
/// when the operator's `on_error` is `dead-letter`.
pub type PoisonRecords =
    std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>;

impl RunConfig {
    /// Defaults for everything but the UDFs and the state directory.
    pub fn new(udfs: HashMap<String, PathBuf>, state_dir: PathBuf) -> Self {
        Self {
            udfs,
            state_dir,
            cache_dir: weir_wasm::RuntimeConfig::default_cache_dir(),
            metrics: Arc::new(JobMetrics::new()),
            channel_capacity: 8,
            checkpoints: CheckpointConfig::default(),
            restore: None,
            runtime: None,
            poison_records: PoisonRecords::new(),
        }
    }
}

/// What a finished job did.
#[derive(Debug, Clone)]
pub struct JobSummary {
    /// Records read by the sources.
    pub records_read: u64,
    /// Records written by the sinks.
    pub records_written: u64,
    /// Malformed input records skipped plus per-record UDF errors.
    pub record_errors: u64,
    /// Late records dropped (windows without a `late_output`, joins).
    pub late_records_dropped: u64,
    /// Bad records written to dead-letter directories (part of
    /// `record_errors`).
    pub dead_lettered: u64,
    /// The first few of those problems, verbatim.
    pub problems: Vec<String>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// Time from start to the first batch processed by an operator or sink.
    pub first_record_latency: Option<Duration>,
    /// The last watermark (ms) each sink subtask (`sink#index`) received;
    /// `i64::MAX` once its inputs ended.
    pub sink_watermarks: std::collections::BTreeMap<String, i64>,
    /// Statistics of the checkpoints completed (the last one is the final
    /// checkpoint of a bounded job).
    pub checkpoints: weir_checkpoint::CheckpointStatsHistory,
    /// Restarts after task failures.
    pub restarts: u64,
    /// Where the savepoint went, when the job stopped with one.
    pub savepoint: Option<String>,
}

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// An operator's component could not be loaded.
    #[error("operator `{operator}`: {source}")]
    Load {
        /// The operator id.
        operator: String,
        /// Why.
        source: WasmError,
    },
    /// A source or sink could not be set up.
    #[error("{vertex}: {source}")]
    Connector {
        /// The vertex id.
        vertex: String,
        /// Why.
        source: ConnectorError,
    },
    /// The job cannot be planned (for example an operator without a component).
    #[error("{0}")]
    Plan(String),
    /// A checkpoint could not be restored or kept.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The checkpoint being restored is damaged: a state file or shared
    /// file whose CRC-32 differs from the one recorded when it was written,
    /// or state that does not decode. The JobManager falls back to the next
    /// older retained checkpoint.
    #[error("checkpoint {checkpoint} is damaged: {message}")]
    DamagedCheckpoint {
        /// The checkpoint.
        checkpoint: weir_checkpoint::CheckpointId,
        /// Which file, and what is wrong with it.
        message: String,
    },
    /// More consecutive checkpoints failed than tolerated
    /// (`execution.checkpointing.tolerable-failed-checkpoints`).
    #[error("too many failed checkpoints: {0}")]
    CheckpointsFailing(String),
    /// The job was cancelled from outside (the JobManager's cancel).
    #[error("the job was cancelled")]
    Cancelled,
    /// A subtask failed while running.
    #[error("{vertex} (subtask {index} of {parallelism}) failed{}: {message}", origin.as_ref().map(|o| format!(" on {o}")).unwrap_or_default())]
    Task {
        /// The vertex id.
        vertex: String,
        /// 0-based subtask index.
        index: u32,
        /// The vertex's parallelism.
        parallelism: u32,
        /// The input record being processed (`file:line`, or a range of them), when known.
        origin: Option<String>,
        /// What kind of failure it was.
        kind: TaskFailureKind,
        /// What happened.
        message: String,
    },
}

impl JobError {
    /// The kind of a task failure (`None` for errors that are not a
    /// task's: a job that cannot be planned, loaded or checkpointed).
    pub fn kind(&self) -> Option<TaskFailureKind> {
        match self {
            JobError::Task { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

pub use weir_protocol::task::TaskFailureKind;

/// The [`TaskFailureKind`] of a Wasm runtime error: traps, timeouts and
/// memory limits keep their kind, a failed host call or a guest's own error
/// is `udf-error`, anything else (loading, linking) is `io`.
pub fn failure_kind_of_wasm(error: &WasmError) -> TaskFailureKind {
    match error {
        WasmError::Trap { kind, .. } => match kind {
            weir_wasm::TrapKind::Trap => TaskFailureKind::Trap,
            weir_wasm::TrapKind::Timeout => TaskFailureKind::Timeout,
            weir_wasm::TrapKind::MemoryLimit => TaskFailureKind::MemoryLimit,
            weir_wasm::TrapKind::HostError => TaskFailureKind::UdfError,
        },
        WasmError::Guest { .. } => TaskFailureKind::UdfError,
        _ => TaskFailureKind::Io,
    }
}

/// A completed checkpoint resolved before a run, ready to restore from.
#[derive(Debug, Clone)]
pub struct ResolvedCheckpoint(Arc<snapshot::Restored>);

impl ResolvedCheckpoint {
    /// The checkpoint's id.
    pub fn id(&self) -> u64 {
        self.0.metadata.id
    }

    /// Where it lies (`<dir>/<job>/chk-<id>`): what
    /// [`resolve_checkpoint_avoiding`] is given of checkpoints found
    /// damaged.
    pub fn location(&self) -> String {
        self.0.storage.checkpoint_location(self.0.metadata.id)
    }
}

/// The newest completed checkpoint of `job_name`, or `None` (with a
/// notice) when none ever completed: nothing was committed, so a fresh
/// start loses nothing (`--from-checkpoint latest` after a crash before the
/// first checkpoint).
///
/// # Errors
/// [`JobError::Checkpoint`] when the directory cannot be read or every
/// completed checkpoint is damaged.
pub fn resolve_latest_or_fresh(
    config: &CheckpointConfig,
    job_name: &str,
) -> Result<Option<ResolvedCheckpoint>, JobError> {
    checkpointing::resolve_latest_or_fresh(config, job_name)
        .map(|r| r.map(|r| ResolvedCheckpoint(Arc::new(r))))
}

/// Finds the checkpoint `restore` names (for [`Restore::Latest`], the
/// newest completed one under the configured checkpoint directory, older
/// ones when it is damaged).
///
/// # Errors
/// [`JobError::Checkpoint`] when there is none or it cannot be read.
pub fn resolve_checkpoint(
    restore: &Restore,
    config: &CheckpointConfig,
    job_name: &str,
) -> Result<ResolvedCheckpoint, JobError> {
    resolve_checkpoint_avoiding(
        restore,
        config,
        job_name,
        &std::collections::BTreeSet::new(),
    )
}

/// [`resolve_checkpoint`] past the checkpoints an earlier attempt found
/// damaged (their [`ResolvedCheckpoint::location`]s): [`Restore::Latest`]
/// takes the newest retained checkpoint not among them, saying which it
/// skipped and why in a warning.
///
/// # Errors
/// [`JobError::Checkpoint`] when there is none left, or `restore` names a
/// damaged one.
pub fn resolve_checkpoint_avoiding(
    restore: &Restore,
    config: &CheckpointConfig,
    job_name: &str,
    damaged: &std::collections::BTreeSet<String>,
) -> Result<ResolvedCheckpoint, JobError> {
    checkpointing::resolve(restore, config, job_name, damaged)
        .map(|r| ResolvedCheckpoint(Arc::new(r)))
}

/// The tasks of one attempt, running on threads of this process (the
/// local executor), and what the attempt's driver needs to coordinate
/// them: each task's control queue, the queue of their events, and the
/// checkpoint coordinator with its storage when checkpoints are on.
/// Dropping it does not stop the tasks: send [`control::TaskControl::Cancel`]
/// to each, then [`TaskThreads::join`].
#[derive(Debug)]
pub struct LocalDeployment {
    /// Every task and its control queue.
    pub tasks: Vec<(TaskId, crossbeam_channel::Sender<control::TaskControl>)>,
    /// What the tasks report; disconnected once every task and snapshot
    /// worker has ended.
    pub events: crossbeam_channel::Receiver<control::TaskEvent>,
    /// Checkpoint coordination, when checkpoints are on.
    pub checkpoints: Option<AttemptCheckpoints>,
    /// The tasks' threads.
    pub threads: TaskThreads,
}

/// The threads of a [`LocalDeployment`]'s tasks.
#[derive(Debug)]
pub struct TaskThreads(Vec<std::thread::JoinHandle<()>>);

/// The checkpoint side of an attempt.
#[derive(Debug)]
pub struct AttemptCheckpoints {
    /// The coordinator, its ids going on after the restored checkpoint's.
    pub coordinator: weir_checkpoint::CheckpointCoordinator,
    /// Where the attempt's checkpoints go.
    pub storage: Arc<weir_checkpoint::CheckpointStorage>,
    /// Parallelism of every chain head, by vertex id (for `_metadata`).
    pub parallelism: std::collections::BTreeMap<String, u32>,
}

impl TaskThreads {
    /// Waits until every task thread has ended (they end after sending
    /// [`control::TaskEvent::Exited`]).
    pub fn join(self) {
        for thread in self.0 {
            // A task's own panics are caught and reported as `Failed`.
            let _ = thread.join();
        }
    }
}

/// Plans one attempt of `job` into a deployment descriptor per subtask
/// ([`deployment::TaskDeploymentDescriptor`]) and starts them on local
/// threads, starting from `restored` when given. `attempt` (0 for the
/// first) is what UDFs see in their open context. Nothing is restarted
/// here: the caller's driver reads the tasks' events, coordinates
/// checkpoints and decides.
///
/// # Errors
/// [`JobError::Load`], [`JobError::Connector`], [`JobError::Plan`] or
/// [`JobError::Checkpoint`] for a job that cannot start.
pub fn deploy_local(
    job: &JobGraph,
    config: &RunConfig,
    restored: Option<&ResolvedCheckpoint>,
    attempt: u32,
) -> Result<LocalDeployment, JobError> {
    attempt::deploy_local(job, config, restored.map(|r| &r.0), attempt)
}

/// An attempt planned for executors elsewhere: every subtask's
/// descriptor, the job's split names and the checkpoint side (coordinator
/// and storage), for the JobManager to place and ship.
#[derive(Debug)]
pub struct AttemptPlan {
    /// One descriptor per chain subtask.
    pub descriptors: Vec<deployment::TaskDeploymentDescriptor>,
    /// Every split's name, in split-table order.
    pub splits: Vec<String>,
    /// Checkpoint coordination, when checkpoints are on.
    pub checkpoints: Option<AttemptCheckpoints>,
}

/// Plans one attempt of `job` without starting anything: the components
/// are loaded (and so checked and compiled into the cache) by the caller's
/// runtime first, so a broken one fails here, not on every executor.
///
/// # Errors
/// As [`deploy_local`].
pub fn plan_attempt(
    job: &JobGraph,
    config: &RunConfig,
    restored: Option<&ResolvedCheckpoint>,
    attempt: u32,
) -> Result<AttemptPlan, JobError> {
    let runtime = attempt::runtime_for(config)?;
    factories::load_components(job, config, &runtime)?;
    let planned = attempt::plan_attempt(job, config, restored.map(|r| &r.0), attempt)?;
    Ok(AttemptPlan {
        descriptors: planned.descriptors,
        splits: planned.table.names,
        checkpoints: planned.checkpoints,
    })
}

impl ResolvedCheckpoint {
    /// Where it lies, for executors elsewhere to open.
    pub fn handle(&self) -> executor::RestoreHandle {
        executor::RestoreHandle {
            base: self.0.storage.base().to_string(),
            job: self.0.storage.job().to_string(),
            id: self.0.metadata.id,
        }
    }
}

/// Builds the [`JobSummary`] of a run from its metrics.
pub fn summarize(metrics: &JobMetrics, savepoint: Option<String>) -> JobSummary {
    JobSummary {
        records_read: metrics.records_read(),
        records_written: metrics.records_written(),
        record_errors: metrics.record_errors(),
        late_records_dropped: metrics.late_dropped(),
        dead_lettered: metrics.dead_lettered(),
        problems: metrics.problems(),
        elapsed: metrics.elapsed(),
        first_record_latency: metrics.first_record_latency(),
        sink_watermarks: metrics.sink_watermarks(),
        checkpoints: metrics.checkpoints(),
        restarts: metrics.restarts(),
        savepoint,
    }
}
