//! Setting up and running the subtasks of a job.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use weir_checkpoint::{
    Alignment, BarrierAligner, CheckpointCoordinator, CheckpointStorage, TaskId,
};
use weir_connectors::{
    BadRecord, BlackholeSink, FailAfter, FileSink, Sink, SinkStart, SourceReader, Split,
    StdoutSink, plan_splits, prepare_file_sink_dir,
};
use weir_operators::{JoinOperator, WindowOperator};
use weir_state::{KeyedState, MemoryBackend, RocksDbBackend, StateBackend};
use weir_types::jobgraph::{JobGraph, OperatorRole, OperatorSpec, SinkKind, StateBackendKind};
use weir_types::{Batch, KeyGroupRange, Origin, Record, StreamElement, WatermarkStatus};
use weir_wasm::{
    AggregateComponent, InstanceLimits, OperatorComponent, RuntimeConfig, SubtaskInfo, WasmRuntime,
};

use crate::checkpointing::{
    CheckpointHub, CoordinatorEnd, CoordinatorLoop, HeadSnapshot, HubEvent, Restored, SnapshotJob,
    SubtaskSnapshot, load_subtask, snapshot_worker, task_name,
};
use crate::exchange::{Disconnected, Exchange, Message};
use crate::graph::{Plan, VertexKind};
use crate::incremental::SharedFile;
use crate::ops::{
    ChainedOp, Emitted, OperatorState, UdfOp, decode_operator_state, even_split, wall_clock_ms,
};
use crate::watermark::{InputWatermarks, MAX_WATERMARK, SplitWatermarks};
use crate::{JobError, JobMetrics, RunConfig};

/// Names of all splits of a job, so an [`Origin`] can be shown as `file:line`.
#[derive(Debug, Clone, Default)]
pub struct SplitTable {
    names: Vec<String>,
}

impl SplitTable {
    /// `file:line` (or `generator#seq`) of an origin.
    pub fn describe(&self, origin: Origin) -> String {
        match self.names.get(origin.split as usize) {
            Some(name) => format!("{name}:{}", origin.position),
            None => "a record produced by an upstream operator".to_string(),
        }
    }

    /// The span of a batch: `file:first-last` when it comes from one split.
    pub fn describe_batch(&self, origins: &[Origin]) -> Option<String> {
        let (first, last) = (origins.first()?, origins.last()?);
        if first.split == last.split && origins.iter().all(|o| o.split == first.split) {
            let name = self.names.get(first.split as usize)?;
            Some(format!(
                "one of the records {name}:{}-{}",
                first.position, last.position
            ))
        } else {
            Some(format!(
                "one of {} records from {} to {}",
                origins.len(),
                self.describe(*first),
                self.describe(*last)
            ))
        }
    }
}

/// Shared by all subtasks of a job.
pub(crate) struct JobShared<'a> {
    job: &'a JobGraph,
    config: &'a RunConfig,
    pub(crate) splits: SplitTable,
    cancelled: AtomicBool,
    first_error: Mutex<Option<JobError>>,
    /// Processing time origin for watermark idleness.
    started: std::time::Instant,
    /// Checkpointing, when it is on.
    hub: Option<CheckpointHub>,
    /// The checkpoint this run starts from.
    restored: Option<&'a Restored>,
    /// 0 on the first run, then one more per restart.
    attempt: u32,
    /// Where the job's stop-with-savepoint put the savepoint.
    savepoint: Mutex<Option<String>>,
}

impl JobShared<'_> {
    pub(crate) fn metrics(&self) -> &JobMetrics {
        &self.config.metrics
    }

    fn fail(&self, error: JobError) {
        self.cancelled.store(true, Ordering::SeqCst);
        if let Ok(mut first) = self.first_error.lock() {
            first.get_or_insert(error);
        }
    }

    /// Processing time in ms since the job started.
    fn now_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
            || self
                .config
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn bad_record(&self, bad: BadRecord) {
        let at = self.splits.describe(Origin {
            split: bad.split,
            position: bad.line,
        });
        self.metrics().record_problem(format!(
            "skipped malformed input {at}: {bad}",
            bad = bad.message
        ));
    }
}

/// The queues into one chain's subtasks, one per producer and consumer
/// subtask (as Flink's input channels), so that barrier alignment can stop
/// reading a producer and let its queue push back on it.
struct ChainInputs {
    /// `senders[producer][consumer]`.
    senders: Vec<Vec<Sender<Message>>>,
    /// `receivers[consumer][producer]`.
    receivers: Vec<Vec<Receiver<Message>>>,
}

impl ChainInputs {
    /// Queues from `producers` producers into `consumers` subtasks, each
    /// holding `capacity` batches.
    fn new(producers: usize, consumers: usize, capacity: usize) -> Self {
        let mut senders = vec![Vec::with_capacity(consumers); producers];
        let mut receivers = vec![Vec::with_capacity(producers); consumers];
        for per_consumer in &mut receivers {
            for per_producer in &mut senders {
                let (tx, rx) = crossbeam_channel::bounded(capacity);
                per_producer.push(tx);
                per_consumer.push(rx);
            }
        }
        Self { senders, receivers }
    }
}

/// Where a subtask's batches come from.
enum Head {
    Source {
        reader: Box<SourceReader>,
        /// The splits assigned to this subtask.
        splits: Vec<u32>,
        /// Periodic watermarks, when the source declares them.
        watermarks: Option<SplitWatermarks>,
        /// Pacing to `records_per_second`, when set.
        pace: Option<Pace>,
    },
    Input {
        /// `rxs[p]`: the queue from producer `p`.
        rxs: Vec<Receiver<Message>>,
        /// `input_of[p]`: which input edge producer `p` belongs to.
        input_of: Vec<usize>,
        watermarks: InputWatermarks,
        aligner: BarrierAligner,
    },
}

/// Keeps a source subtask at or under a rate (records per second).
struct Pace {
    per_second: u64,
    started: std::time::Instant,
    records: u64,
}

impl Pace {
    /// `n` more records were read: sleeps until they are due.
    fn after(&mut self, n: usize) {
        self.records += n as u64;
        let due = Duration::from_secs_f64(self.records as f64 / self.per_second as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// What the input head of a subtask got next.
enum Step {
    /// Records from input edge `.0`, and a watermark to pass on after them.
    Records(usize, Batch, Option<i64>),
    /// Barriers aligned: take checkpoint `.0` (alignment took `.1` ms).
    Checkpoint(u64, u64),
    /// Nothing to do this time round.
    Nothing,
    /// Every input ended (after checkpoint `(id, alignment ms)`, when its
    /// alignment completed with that end).
    Ended(Option<(u64, u64)>),
    /// A producer went away without ending its input: the job is stopping
    /// (a failure elsewhere, or a stop with savepoint).
    Disconnected,
}

/// Ms since the first barrier of the alignment that just completed (0 when
/// it needed no waiting); the alignment is over.
fn alignment_ms(started: &mut Option<std::time::Instant>) -> u64 {
    started.take().map_or(0, |t| {
        u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
    })
}

/// An exchange out of the chain's tail, for its main output (`output:
/// None`) or one of its side outputs.
struct Outlet {
    output: Option<String>,
    exchange: Exchange,
}

/// Everything one thread runs.
struct SubtaskRun<'a> {
    head_id: &'a str,
    /// `(head vertex, index)`, as the checkpoint coordinator knows it.
    task: TaskId,
    /// The newest checkpoint this subtask took part in.
    last_checkpoint: u64,
    /// The newest completed checkpoint its sinks committed.
    committed: u64,
    /// When the first barrier of the alignment in progress arrived.
    align_started: Option<std::time::Instant>,
    index: u32,
    parallelism: u32,
    head: Head,
    ops: Vec<ChainedOp<'a>>,
    outlets: Vec<Outlet>,
    /// The watermark status this subtask last sent downstream.
    status: WatermarkStatus,
    /// Side outputs already reported as unrouted.
    warned_side_outputs: Vec<(String, String)>,
    /// Hands checkpoints to the subtask's snapshot worker (checkpoints on).
    snapshots: Option<crossbeam_channel::Sender<SnapshotJob>>,
}

/// A subtask stops: either it failed, or the job was cancelled because
/// another one did (then it exits quietly).
enum Stop {
    Failed(JobError),
    Cancelled,
}

impl From<Disconnected> for Stop {
    fn from(_: Disconnected) -> Self {
        Stop::Cancelled
    }
}

/// Runs the job once (one attempt); `Ok(Some(path))` when it stopped with
/// a savepoint kept at `path`.
pub(crate) fn execute(
    job: &JobGraph,
    config: &RunConfig,
    restored: Option<&Restored>,
    attempt: u32,
) -> Result<Option<String>, JobError> {
    // The caller's runtime (a JobManager shares one among its jobs), or
    // one for this attempt.
    let owned;
    let runtime = match &config.runtime {
        Some(shared) => shared.as_ref(),
        None => {
            owned = WasmRuntime::new(RuntimeConfig {
                cache_dir: config.cache_dir.clone(),
            })
            .map_err(|source| JobError::Load {
                operator: "<engine>".into(),
                source,
            })?;
            &owned
        }
    };
    let components = load_components(job, config, runtime)?;
    let plan = Plan::new(job);

    // Splits of every source, assigned round-robin to its subtasks.
    let mut table = SplitTable::default();
    let mut source_splits: HashMap<usize, Vec<Vec<Split>>> = HashMap::new();
    for (v, vertex) in plan.vertices.iter().enumerate() {
        if let VertexKind::Source(spec) = vertex.kind {
            let splits = plan_splits(
                &spec.id,
                &spec.kind,
                vertex.parallelism,
                table.names.len() as u32,
            )
            .map_err(|source| JobError::Connector {
                vertex: spec.id.clone(),
                source,
            })?;
            let mut per_subtask: Vec<Vec<Split>> =
                (0..vertex.parallelism).map(|_| Vec::new()).collect();
            for (i, split) in splits.into_iter().enumerate() {
                table.names.push(split.name.clone());
                per_subtask[i % vertex.parallelism as usize].push(split);
            }
            source_splits.insert(v, per_subtask);
        }
        if let VertexKind::Sink(spec) = vertex.kind
            && let SinkKind::File { path, .. } = &spec.kind
        {
            let start = restored.map_or(SinkStart::Fresh, |r| SinkStart::Restore(r.metadata.id));
            prepare_file_sink_dir(path, start).map_err(|source| JobError::Connector {
                vertex: spec.id.clone(),
                source,
            })?;
        }
    }

    // Bounded queues into every subtask of every chain that has an input:
    // `channel_capacity` batches per subtask, shared among its producers
    // with at least 2 each.
    let mut inputs: HashMap<usize, ChainInputs> = HashMap::new();
    for (c, chain) in plan.chains.iter().enumerate() {
        let head = &plan.vertices[chain.vertices[0]];
        if !head.inputs.is_empty() {
            let producers = plan.producers(chain.vertices[0]) as usize;
            let capacity = (config.channel_capacity / producers.max(1)).max(2);
            let queues = ChainInputs::new(producers, head.parallelism as usize, capacity);
            inputs.insert(c, queues);
        }
    }

    let (hub, coordinator) = match start_checkpointing(job, config, &plan, restored)? {
        Some((hub, coordinator)) => (Some(hub), Some(coordinator)),
        None => (None, None),
    };
    let shared = JobShared {
        job,
        config,
        splits: table,
        cancelled: AtomicBool::new(false),
        first_error: Mutex::new(None),
        started: std::time::Instant::now(),
        hub,
        restored,
        attempt,
        savepoint: Mutex::new(None),
    };
    std::thread::scope(|scope| {
        if let (Some((events, coordinator)), Some(hub)) = (coordinator, shared.hub.as_ref()) {
            let shared = &shared;
            let coordinator_loop = CoordinatorLoop {
                hub,
                events,
                coordinator,
                config: &config.checkpoints,
                job: &job.name,
                parallelism: plan
                    .chains
                    .iter()
                    .map(|c| {
                        let head = &plan.vertices[c.vertices[0]];
                        (head.id.to_string(), head.parallelism)
                    })
                    .collect(),
                subtasks: plan
                    .chains
                    .iter()
                    .map(|c| plan.vertices[c.vertices[0]].parallelism as usize)
                    .sum(),
                metrics: &config.metrics,
                stop: config.stop.as_deref(),
                savepoint_target: config.savepoint_target.as_deref(),
                savepoints: config.savepoints.as_deref(),
            };
            let spawned = std::thread::Builder::new()
                .name("checkpoint-coordinator".into())
                .spawn_scoped(scope, move || {
                    match coordinator_loop.run(|| shared.now_ms(), || shared.is_cancelled()) {
                        CoordinatorEnd::Done | CoordinatorEnd::Cancelled => {}
                        CoordinatorEnd::Failed(reason) => {
                            shared.fail(JobError::CheckpointsFailing(reason))
                        }
                        CoordinatorEnd::SavepointFailed(reason) => {
                            shared.fail(JobError::Checkpoint(reason));
                        }
                        CoordinatorEnd::Stopped(path) => {
                            if let Ok(mut savepoint) = shared.savepoint.lock() {
                                *savepoint = Some(path);
                            }
                        }
                    }
                });
            if let Err(e) = spawned {
                shared.fail(JobError::Plan(format!("cannot start a thread: {e}")));
            }
        }
        for (c, chain) in plan.chains.iter().enumerate() {
            let head_vertex = &plan.vertices[chain.vertices[0]];
            for index in 0..head_vertex.parallelism {
                let head = if head_vertex.inputs.is_empty() {
                    let splits = source_splits
                        .get_mut(&chain.vertices[0])
                        .map(|s| std::mem::take(&mut s[index as usize]));
                    let VertexKind::Source(spec) = head_vertex.kind else {
                        continue;
                    };
                    let splits = splits.unwrap_or_default();
                    let split_ids: Vec<u32> = splits.iter().map(|s| s.index).collect();
                    let watermarks = spec.watermarks.map(|w| {
                        SplitWatermarks::new(
                            &split_ids,
                            w.max_out_of_orderness.0,
                            w.idle_timeout.map(|d| d.0),
                            0,
                        )
                    });
                    let pace = spec.records_per_second.map(|total| Pace {
                        per_second: total.div_ceil(u64::from(head_vertex.parallelism)).max(1),
                        started: std::time::Instant::now(),
                        records: 0,
                    });
                    Head::Source {
                        reader: Box::new(SourceReader::new(&spec.kind, splits)),
                        splits: split_ids,
                        watermarks,
                        pace,
                    }
                } else {
                    let rxs = inputs[&c].receivers[index as usize].clone();
                    let v = chain.vertices[0];
                    let input_of: Vec<usize> = head_vertex
                        .inputs
                        .iter()
                        .enumerate()
                        .flat_map(|(e, edge)| {
                            std::iter::repeat_n(e, plan.vertices[edge.from].parallelism as usize)
                        })
                        .collect();
                    let producers = plan.producers(v) as usize;
                    Head::Input {
                        rxs,
                        input_of,
                        watermarks: InputWatermarks::new(producers),
                        aligner: BarrierAligner::new(producers),
                    }
                };
                let tail_index = *chain.vertices.last().unwrap_or(&chain.vertices[0]);
                let tail = &plan.vertices[tail_index];
                let outlets: Vec<Outlet> = tail
                    .consumers
                    .iter()
                    .filter_map(|&(consumer, edge_index)| {
                        let target_chain = plan.chain_headed_by(consumer)?;
                        let edge = plan.vertices[consumer].inputs[edge_index];
                        let producer = plan.producer_offset(consumer, edge_index) + index;
                        let senders = inputs
                            .get(&target_chain)?
                            .senders
                            .get(producer as usize)?
                            .clone();
                        let exchange = Exchange::new(
                            edge.partition,
                            senders,
                            producer as usize,
                            job.max_parallelism,
                        )
                        .rekey_by(edge.key);
                        Some(Outlet {
                            output: edge.output.map(str::to_string),
                            exchange,
                        })
                    })
                    .collect();
                let chain_vertices = chain.vertices.clone();
                let shared = &shared;
                let plan = &plan;
                let components = &components;
                let name = task_name(head_vertex.id, index);
                let spawned =
                    std::thread::Builder::new()
                        .name(name)
                        .spawn_scoped(scope, move || {
                            let vertex = &plan.vertices[chain_vertices[0]];
                            // A bug in host code must fail the task, not the process.
                            let result =
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                    run_subtask(
                                        shared,
                                        plan,
                                        components,
                                        &chain_vertices,
                                        index,
                                        head,
                                        outlets,
                                    )
                                }));
                            match result {
                                Ok(Err(Stop::Failed(error))) => shared.fail(error),
                                Ok(_) => {}
                                Err(panic) => shared.fail(JobError::Task {
                                    vertex: vertex.id.to_string(),
                                    index,
                                    parallelism: vertex.parallelism,
                                    origin: None,
                                    message: format!(
                                        "internal error (a bug in Weir): {}",
                                        panic_message(&panic)
                                    ),
                                }),
                            }
                        });
                if let Err(e) = spawned {
                    shared.fail(JobError::Plan(format!("cannot start a thread: {e}")));
                }
            }
        }
        // The scope owns no channel ends any more once every thread holds its own.
        inputs.clear();
    });
    let cancelled = config
        .cancel
        .as_ref()
        .is_some_and(|c| c.load(Ordering::SeqCst));
    match shared.first_error.into_inner() {
        // Subtasks stopped by a cancel may report what they saw as a
        // failure (a closed channel); the cancel is the cause.
        _ if cancelled => Err(JobError::Cancelled),
        Ok(Some(error)) => Err(error),
        _ => Ok(shared.savepoint.into_inner().ok().flatten()),
    }
}

/// The name under which a UDF's operator state sits in a subtask snapshot.
fn operator_state_id(operator: &str) -> String {
    format!("{operator}/operator-state")
}

/// Builds a subtask's chained operators and runs it to the end of its input.
fn run_subtask<'a>(
    shared: &JobShared<'a>,
    plan: &Plan<'a>,
    components: &HashMap<String, Component>,
    chain: &[usize],
    index: u32,
    head: Head,
    outlets: Vec<Outlet>,
) -> Result<(), Stop> {
    let ops = build_ops(shared, plan, components, chain, index)?;
    let vertex = &plan.vertices[chain[0]];
    let mut run = SubtaskRun {
        head_id: vertex.id,
        task: (vertex.id.to_string(), index),
        last_checkpoint: 0,
        committed: 0,
        align_started: None,
        index,
        parallelism: vertex.parallelism,
        head,
        ops,
        outlets,
        status: WatermarkStatus::Active,
        warned_side_outputs: Vec::new(),
        snapshots: None,
    };
    let mut restored_files = Vec::new();
    if let Some(restored) = shared.restored {
        let files =
            load_subtask(restored, vertex.id, index, vertex.parallelism).map_err(Stop::Failed)?;
        let snapshots = files
            .iter()
            .map(|file| file.decode(restored))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Stop::Failed)?;
        restored_files = run
            .restore(shared, restored, &snapshots)
            .map_err(|message| run.fail(vertex.id, None, message))?;
        // Restored SST files may be listed again only where they are.
        if !shared
            .hub
            .as_ref()
            .is_some_and(|hub| hub.storage.same_directory(&restored.storage))
        {
            restored_files.clear();
        }
        // Output the restored checkpoint covered is already committed.
        run.committed = restored.metadata.id;
    }
    let Some(hub) = &shared.hub else {
        return run.run(shared);
    };
    // The asynchronous phase of this subtask's checkpoints runs beside it;
    // the scope waits for the snapshots handed over before the end.
    std::thread::scope(|scope| {
        let (jobs, worker_jobs) = crossbeam_channel::unbounded();
        run.snapshots = Some(jobs);
        let instance = format!(
            "{}-{}-{:x}",
            vertex.id,
            index,
            crate::ops::wall_clock_ms().unsigned_abs() * 1000 + u64::from(shared.attempt)
        );
        std::thread::Builder::new()
            .name(format!("{}-snapshots", task_name(vertex.id, index)))
            .spawn_scoped(scope, move || {
                snapshot_worker(hub, &instance, restored_files, worker_jobs)
            })
            .map_err(|e| {
                run.fail(
                    vertex.id,
                    None,
                    format!("cannot start snapshot thread: {e}"),
                )
            })?;
        let result = run.run(shared);
        run.snapshots = None;
        result
    })
}

/// Opens checkpoint storage and sets up the coordinator when checkpoints
/// are on. A fresh run (not restored) replaces the job's earlier checkpoints.
///
/// # Errors
/// [`JobError::Checkpoint`] when the storage cannot be opened;
/// [`JobError::Plan`] when the job has an operator checkpoints do not cover.
#[allow(clippy::type_complexity)]
fn start_checkpointing(
    job: &JobGraph,
    config: &RunConfig,
    plan: &Plan<'_>,
    restored: Option<&Restored>,
) -> Result<Option<(CheckpointHub, (Receiver<HubEvent>, CheckpointCoordinator))>, JobError> {
    let checkpoints = &config.checkpoints;
    if !checkpoints.enabled() {
        return Ok(None);
    }
    let error = |e: weir_checkpoint::StorageError| JobError::Checkpoint(e.to_string());
    let storage = CheckpointStorage::open(checkpoints, &job.name).map_err(error)?;
    if restored.is_none() {
        let discarded = storage.delete_all().map_err(error)?;
        if discarded > 0 {
            tracing::warn!(
                "discarded {discarded} checkpoint(s) of an earlier run of job `{}` (resume with --from-checkpoint latest to keep them)",
                job.name
            );
        }
    }
    // Ids go on after the restored checkpoint's too, wherever it lies (a
    // savepoint, an emptied directory), as Flink's coordinator resumes its
    // counter: sinks name committed files by checkpoint id, so a lower id
    // would overwrite output committed before it.
    let first_id = storage
        .next_id()
        .map_err(error)?
        .max(restored.map_or(1, |r| r.metadata.id + 1));
    let tasks: Vec<TaskId> = plan
        .chains
        .iter()
        .flat_map(|c| {
            let head = &plan.vertices[c.vertices[0]];
            (0..head.parallelism).map(|i| (head.id.to_string(), i))
        })
        .collect();
    let coordinator = CheckpointCoordinator::new(checkpoints.clone(), tasks, first_id, 0);
    let (hub, events) = CheckpointHub::new(storage, checkpoints.exactly_once);
    Ok(Some((hub, (events, coordinator))))
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// A loaded component: an operator UDF or a window's aggregate function.
enum Component {
    Operator(Arc<OperatorComponent>),
    Aggregate(Arc<AggregateComponent>),
}

fn load_components(
    job: &JobGraph,
    config: &RunConfig,
    runtime: &WasmRuntime,
) -> Result<HashMap<String, Component>, JobError> {
    let mut components = HashMap::new();
    for op in job.operators.iter().filter(|o| o.udf.is_some()) {
        let path = config.udfs.get(&op.id).ok_or_else(|| {
            JobError::Plan(format!("operator `{}` has no compiled component", op.id))
        })?;
        let load_error = |source| JobError::Load {
            operator: op.id.clone(),
            source,
        };
        let component = match op.role() {
            OperatorRole::Window(..) => {
                Component::Aggregate(Arc::new(runtime.load_aggregate(path).map_err(load_error)?))
            }
            _ => Component::Operator(Arc::new(runtime.load(path).map_err(load_error)?)),
        };
        components.insert(op.id.clone(), component);
    }
    Ok(components)
}

/// A window's aggregate component behind the operators' [`AggregateFunction`].
struct WasmAggregate(weir_wasm::AggregateInstance);

/// Sorts an aggregate component's answer: its own error rejects the
/// input, a trap or limit fails the task.
fn aggregate_answer<T>(
    answer: weir_wasm::AggregateResult<T>,
) -> Result<T, weir_operators::AggregateCallError> {
    use weir_operators::AggregateCallError;
    match answer {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(AggregateCallError::Rejected(message)),
        Err(e) => Err(AggregateCallError::Failed(e.to_string())),
    }
}

impl weir_operators::AggregateFunction for WasmAggregate {
    fn create_accumulator(&mut self) -> Result<Vec<u8>, weir_operators::AggregateCallError> {
        aggregate_answer(self.0.create_accumulator().map(Ok))
    }

    fn add(
        &mut self,
        accumulator: &[u8],
        values: &[&[u8]],
    ) -> Result<Vec<u8>, weir_operators::AggregateCallError> {
        aggregate_answer(self.0.add(accumulator, values))
    }

    fn merge(
        &mut self,
        accumulator: &[u8],
        other: &[u8],
    ) -> Result<Vec<u8>, weir_operators::AggregateCallError> {
        aggregate_answer(self.0.merge(accumulator, other))
    }

    fn get_result(
        &mut self,
        accumulator: &[u8],
    ) -> Result<String, weir_operators::AggregateCallError> {
        aggregate_answer(self.0.get_result(accumulator))
    }
}

/// The sandbox limits an operator's job-file entry asks for.
fn limits_of(spec: &OperatorSpec) -> InstanceLimits {
    InstanceLimits {
        memory_bytes: (spec.memory_mib as usize) << 20,
        call_timeout: Duration::from_millis(spec.call_timeout_ms),
    }
}

/// What a component's `open` learns about its subtask.
fn subtask_info(
    shared: &JobShared<'_>,
    spec: &OperatorSpec,
    index: u32,
    parallelism: u32,
) -> SubtaskInfo {
    SubtaskInfo {
        operator_id: spec.id.clone(),
        index,
        parallelism,
        max_parallelism: u32::from(shared.job.max_parallelism),
        attempt: shared.attempt,
    }
}

/// The operator's `config` as JSON text (`{}` when absent).
fn config_json(spec: &OperatorSpec) -> String {
    spec.config
        .as_ref()
        .map_or_else(|| "{}".to_string(), |c| c.to_string())
}

fn build_ops<'a>(
    shared: &JobShared<'a>,
    plan: &Plan<'a>,
    components: &HashMap<String, Component>,
    chain: &[usize],
    index: u32,
) -> Result<Vec<ChainedOp<'a>>, Stop> {
    let mut ops = Vec::new();
    for v in chain {
        let vertex = &plan.vertices[*v];
        let fail = |message: String| {
            Stop::Failed(JobError::Task {
                vertex: vertex.id.to_string(),
                index,
                parallelism: vertex.parallelism,
                origin: None,
                message,
            })
        };
        match vertex.kind {
            VertexKind::Source(_) => {}
            VertexKind::Operator(spec) => match spec.role() {
                OperatorRole::Udf(_) => {
                    let Some(Component::Operator(component)) = components.get(&spec.id) else {
                        return Err(fail("component not loaded".into()));
                    };
                    let state = if vertex.is_keyed() {
                        Some(
                            open_state(shared, &spec.id, index, vertex.parallelism)
                                .map_err(fail)?,
                        )
                    } else {
                        None
                    };
                    let mut instance = component
                        .instantiate(task_name(&spec.id, index), state, limits_of(spec))
                        .map_err(|e| fail(e.to_string()))?;
                    instance
                        .open(
                            &subtask_info(shared, spec, index, vertex.parallelism),
                            &config_json(spec),
                        )
                        .map_err(|e| fail(e.to_string()))?;
                    ops.push(ChainedOp::Udf(UdfOp { spec, instance }));
                }
                OperatorRole::Window(window, aggregates, udf) => {
                    let udf: Option<Box<dyn weir_operators::AggregateFunction>> = match udf {
                        None => None,
                        Some(_) => {
                            let Some(Component::Aggregate(component)) = components.get(&spec.id)
                            else {
                                return Err(fail("aggregate component not loaded".into()));
                            };
                            let instance = component
                                .instantiate(
                                    &subtask_info(shared, spec, index, vertex.parallelism),
                                    &config_json(spec),
                                    limits_of(spec),
                                )
                                .map_err(|e| fail(e.to_string()))?;
                            Some(Box::new(WasmAggregate(instance)))
                        }
                    };
                    let op = WindowOperator::new(window, aggregates, udf)
                        .map_err(|e| fail(e.to_string()))?;
                    ops.push(ChainedOp::Window {
                        spec,
                        op: Box::new(op),
                    });
                }
                OperatorRole::Join(join) => ops.push(ChainedOp::Join {
                    spec,
                    op: Box::new(JoinOperator::new(join)),
                }),
                OperatorRole::Union => ops.push(ChainedOp::Union { spec }),
            },
            VertexKind::Sink(spec) => {
                let sink: Box<dyn Sink> = match &spec.kind {
                    SinkKind::File {
                        path,
                        fail_after_records,
                    } => {
                        let file: Box<dyn Sink> = if shared.hub.is_some() {
                            Box::new(FileSink::transactional(path, index))
                        } else {
                            Box::new(
                                FileSink::create(path, index).map_err(|e| fail(e.to_string()))?,
                            )
                        };
                        match fail_after_records {
                            Some(limit) if shared.attempt == 0 => {
                                Box::new(FailAfter::new(file, *limit, path))
                            }
                            _ => file,
                        }
                    }
                    SinkKind::Stdout => Box::new(StdoutSink),
                    SinkKind::Blackhole => Box::new(BlackholeSink),
                };
                ops.push(ChainedOp::Sink { sink, id: &spec.id });
            }
        }
    }
    Ok(ops)
}

fn open_state(
    shared: &JobShared<'_>,
    operator: &str,
    index: u32,
    parallelism: u32,
) -> Result<KeyedState, String> {
    let max = shared.job.max_parallelism;
    let range = KeyGroupRange::for_subtask(index, parallelism, max);
    let backend: Box<dyn StateBackend> = match shared.job.state_backend {
        StateBackendKind::Memory => Box::new(MemoryBackend::new()),
        StateBackendKind::Rocksdb => {
            let dir = shared.config.state_dir.join(format!("{operator}-{index}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create state directory {}: {e}", dir.display()))?;
            Box::new(RocksDbBackend::open(Path::new(&dir)).map_err(|e| e.to_string())?)
        }
    };
    Ok(KeyedState::new(backend, range, max))
}

impl SubtaskRun<'_> {
    fn fail(&self, vertex: &str, origin: Option<String>, message: String) -> Stop {
        Stop::Failed(JobError::Task {
            vertex: vertex.to_string(),
            index: self.index,
            parallelism: self.parallelism,
            origin,
            message,
        })
    }

    fn run(&mut self, shared: &JobShared<'_>) -> Result<(), Stop> {
        let batch_size = shared.job.batch_size;
        let mut ended_inputs = 0;
        let mut bad = Vec::new();
        loop {
            if shared.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            self.commit_completed(shared)?;
            if let Some(hub) = &shared.hub {
                if hub.job_done() {
                    // Stopped with a savepoint: what came after it is
                    // neither committed nor needed (a restore replays it).
                    return Ok(());
                }
                let triggered = hub.triggered();
                if matches!(self.head, Head::Source { .. }) && triggered > self.last_checkpoint {
                    self.checkpoint(shared, triggered, 0, true)?;
                }
            }
            self.fire_processing_time(shared, wall_clock_ms())?;
            let now_ms = shared.now_ms();
            let align = shared.hub.as_ref().is_none_or(|h| h.exactly_once);
            let step = match &mut self.head {
                Head::Source {
                    reader,
                    watermarks,
                    pace,
                    ..
                } => {
                    let next = reader.next_batch(batch_size, &mut bad);
                    for b in bad.drain(..) {
                        shared.bad_record(b);
                    }
                    let batch = match next {
                        Ok(Some(batch)) => batch,
                        Ok(None) => break,
                        Err(e) => return Err(self.fail(self.head_id, None, e.to_string())),
                    };
                    shared.metrics().add_read(batch.len());
                    if let Some(pace) = pace {
                        pace.after(batch.len());
                    }
                    let watermark = watermarks.as_mut().and_then(|w| {
                        // A batch comes from one split, and a split's
                        // watermark depends only on its largest timestamp.
                        let max_ts = batch.records.iter().filter_map(|r| r.timestamp).max();
                        if let (Some(ts), Some(origin)) = (max_ts, batch.origins.first()) {
                            w.on_record(origin.split, ts, now_ms);
                        }
                        for split in reader.take_finished() {
                            w.on_split_finished(split);
                        }
                        w.advance(now_ms)
                    });
                    let idle = watermarks.as_ref().is_some_and(|w| w.is_idle(now_ms));
                    self.set_status(if idle {
                        WatermarkStatus::Idle
                    } else {
                        WatermarkStatus::Active
                    })?;
                    Step::Records(0, batch, watermark)
                }
                Head::Input {
                    rxs,
                    input_of,
                    watermarks,
                    aligner,
                } => match next_input(rxs, aligner, align) {
                    Ok((from, StreamElement::Batch(batch))) => Step::Records(
                        input_of.get(from as usize).copied().unwrap_or(0),
                        batch,
                        None,
                    ),
                    Ok((
                        from,
                        element @ (StreamElement::Watermark(_) | StreamElement::WatermarkStatus(_)),
                    )) => {
                        let advanced = match element {
                            StreamElement::WatermarkStatus(status) => {
                                // An idle input no longer holds the minimum back.
                                watermarks.on_idle(from as usize, status == WatermarkStatus::Idle)
                            }
                            StreamElement::Watermark(w) => {
                                watermarks.on_watermark(from as usize, w)
                            }
                            _ => None,
                        };
                        if let Some(status) = watermarks.status_change() {
                            self.set_status(status)?;
                        }
                        match advanced {
                            Some(w) => Step::Records(0, Batch::default(), Some(w)),
                            None => Step::Nothing,
                        }
                    }
                    Ok((from, StreamElement::Barrier(id))) => {
                        match aligner.on_barrier(from as usize, id) {
                            Alignment::Aligned(id) => {
                                Step::Checkpoint(id, alignment_ms(&mut self.align_started))
                            }
                            Alignment::Waiting => {
                                self.align_started
                                    .get_or_insert_with(std::time::Instant::now);
                                Step::Nothing
                            }
                            Alignment::Superseded { .. } => {
                                self.align_started = Some(std::time::Instant::now());
                                Step::Nothing
                            }
                            Alignment::Stale => Step::Nothing,
                        }
                    }
                    Ok((from, StreamElement::EndOfInput)) => {
                        ended_inputs += 1;
                        let aligned = aligner
                            .on_end_of_input(from as usize)
                            .map(|id| (id, alignment_ms(&mut self.align_started)));
                        match aligned {
                            _ if ended_inputs == input_of.len() => Step::Ended(aligned),
                            Some((id, ms)) => Step::Checkpoint(id, ms),
                            None => Step::Nothing,
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => Step::Nothing,
                    Err(RecvTimeoutError::Disconnected) => Step::Disconnected,
                },
            };
            match step {
                Step::Records(input, batch, watermark) => {
                    self.push(shared, 0, input, batch)?;
                    if let Some(w) = watermark {
                        self.push_watermark(shared, w)?;
                    }
                }
                Step::Checkpoint(id, alignment_ms) => {
                    self.checkpoint(shared, id, alignment_ms, true)?;
                }
                Step::Nothing => {}
                Step::Disconnected => {
                    // What a completed checkpoint covers is committed, even
                    // when this subtask saw its producer stop before it saw
                    // the completion (a stop with savepoint).
                    self.commit_completed(shared)?;
                    return Err(Stop::Cancelled);
                }
                Step::Ended(aligned) => {
                    if let Some((id, alignment_ms)) = aligned {
                        self.checkpoint(shared, id, alignment_ms, true)?;
                    }
                    break;
                }
            }
        }
        // End of a bounded input: event time is complete (batch semantics).
        if matches!(self.head, Head::Source { .. }) {
            self.push_watermark(shared, MAX_WATERMARK)?;
        }
        self.finish(shared)?;
        self.linger(shared)
    }

    /// Takes part in checkpoint `id`: snapshots the chain (the synchronous
    /// phase), hands the snapshot to the subtask's snapshot worker, which
    /// writes it to checkpoint storage and acknowledges (or declines), and
    /// forwards the barrier when `forward` (a finished subtask already
    /// ended its output instead).
    fn checkpoint(
        &mut self,
        shared: &JobShared<'_>,
        id: u64,
        alignment_ms: u64,
        forward: bool,
    ) -> Result<(), Stop> {
        let Some(hub) = &shared.hub else {
            return Ok(());
        };
        self.last_checkpoint = id;
        let declined = match self.snapshot(shared, id) {
            Ok((head, ops)) => {
                let job = SnapshotJob {
                    id,
                    task: self.task.clone(),
                    alignment_ms,
                    head,
                    ops,
                };
                match &self.snapshots {
                    Some(worker) => worker
                        .send(job)
                        .err()
                        .map(|_| "its snapshot worker is gone".to_string()),
                    None => Some("it has no snapshot worker".to_string()),
                }
            }
            Err(reason) => Some(reason),
        };
        if let Some(reason) = declined {
            let name = task_name(self.head_id, self.index);
            tracing::warn!("{name} declines checkpoint {id}: {reason}");
            hub.send(HubEvent::Ack {
                id,
                task: self.task.clone(),
                result: Err(reason),
            });
        }
        if forward {
            for outlet in &mut self.outlets {
                outlet.exchange.barrier(id)?;
            }
        }
        Ok(())
    }

    /// The subtask's state now: its head and every chained operator's.
    #[allow(clippy::type_complexity)]
    fn snapshot(
        &mut self,
        shared: &JobShared<'_>,
        checkpoint: u64,
    ) -> Result<(HeadSnapshot, Vec<(String, OperatorState)>), String> {
        let head = match &self.head {
            Head::Source {
                reader, watermarks, ..
            } => HeadSnapshot::Source {
                positions: reader.positions(),
                watermarks: watermarks.as_ref().map(SplitWatermarks::snapshot),
            },
            Head::Input { watermarks, .. } => HeadSnapshot::Input {
                watermarks: watermarks.snapshot(),
            },
        };
        let incremental = shared.config.checkpoints.incremental;
        let mut ops = Vec::new();
        for op in &mut self.ops {
            let id = op.id().to_string();
            let native_dir = incremental.then(|| {
                shared
                    .config
                    .state_dir
                    .join(format!("{id}-{}.native", self.index))
                    .join(format!("chk-{checkpoint}"))
            });
            if let Some(state) = op.snapshot(checkpoint, native_dir.as_deref())? {
                ops.push((id.clone(), state));
            }
            if let Some(bytes) = op.operator_state(checkpoint)? {
                ops.push((operator_state_id(&id), OperatorState::Full(bytes)));
            }
        }
        Ok((head, ops))
    }

    /// Takes back this subtask's part of the snapshots of a restored
    /// checkpoint: its splits' positions, watermarks, and its key groups
    /// of every operator's state. Returns, per operator whose RocksDB
    /// state took a restored native checkpoint over, that checkpoint's SST
    /// files (for the snapshot worker's uploader).
    fn restore(
        &mut self,
        shared: &JobShared<'_>,
        restored: &Restored,
        snapshots: &[SubtaskSnapshot<'_>],
    ) -> Result<Vec<(String, Vec<SharedFile>)>, String> {
        match &mut self.head {
            Head::Source {
                reader,
                splits,
                watermarks,
                ..
            } => {
                let mut positions = Vec::new();
                let mut marks = Vec::new();
                for snapshot in snapshots {
                    if let HeadSnapshot::Source {
                        positions: p,
                        watermarks: w,
                    } = &snapshot.head
                    {
                        positions.extend(p.iter().filter(|p| splits.contains(&p.split)).copied());
                        marks.extend(w.iter());
                    }
                }
                reader.resume(&positions);
                if let Some(w) = watermarks {
                    w.restore(marks);
                    for p in positions.iter().filter(|p| p.finished) {
                        w.on_split_finished(p.split);
                    }
                }
            }
            Head::Input { watermarks, .. } => {
                let marks: Vec<_> = snapshots
                    .iter()
                    .filter_map(|s| match &s.head {
                        HeadSnapshot::Input { watermarks } => Some(watermarks.clone()),
                        HeadSnapshot::Source { .. } => None,
                    })
                    .collect();
                watermarks.restore(&marks);
            }
        }
        let max = shared.job.max_parallelism;
        let range = KeyGroupRange::for_subtask(self.index, self.parallelism, max);
        // Each subtask got its own old snapshot, or all of them when the
        // parallelism changed (then operator state is split evenly).
        let rescaled = restored
            .metadata
            .parallelism
            .get(self.head_id)
            .is_some_and(|old| *old != self.parallelism);
        let mut adopted = Vec::new();
        for op in &mut self.ops {
            let id = op.id().to_string();
            let states: Vec<&[u8]> = snapshots.iter().filter_map(|s| s.operator(&id)).collect();
            let scratch = shared
                .config
                .state_dir
                .join(format!("{id}-{}.restore", self.index));
            let files = op
                .restore(&states, range, max, &restored.storage, &scratch, rescaled)
                .map_err(|e| format!("restoring operator `{id}`: {e}"))?;
            if !files.is_empty() {
                adopted.push((id.clone(), files));
            }
            let mut items = Vec::new();
            for bytes in snapshots
                .iter()
                .filter_map(|s| s.operator(&operator_state_id(&id)))
            {
                items.extend(
                    decode_operator_state(bytes)
                        .map_err(|e| format!("restoring operator `{id}`: {e}"))?,
                );
            }
            if rescaled {
                items = even_split(items, self.index, self.parallelism);
            }
            op.restore_operator_state(items)
                .map_err(|e| format!("restoring operator `{id}`: {e}"))?;
        }
        Ok(adopted)
    }

    /// Lets the chain's sinks commit what the newest completed checkpoint covers.
    fn commit_completed(&mut self, shared: &JobShared<'_>) -> Result<(), Stop> {
        let Some(hub) = &shared.hub else {
            return Ok(());
        };
        let completed = hub.completed();
        if completed <= self.committed {
            return Ok(());
        }
        for op in 0..self.ops.len() {
            if let Err(message) = self.ops[op].commit(completed) {
                let id = self.ops[op].id().to_string();
                return Err(self.fail(&id, None, message));
            }
        }
        self.committed = completed;
        Ok(())
    }

    /// After the end of its input, a subtask of a checkpointed job answers
    /// checkpoints with its final state and commits its sinks' output,
    /// until the job's final checkpoint completed.
    fn linger(&mut self, shared: &JobShared<'_>) -> Result<(), Stop> {
        let Some(hub) = &shared.hub else {
            return Ok(());
        };
        hub.send(HubEvent::Finished);
        loop {
            if shared.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            let triggered = hub.triggered();
            if triggered > self.last_checkpoint {
                self.checkpoint(shared, triggered, 0, false)?;
            }
            let done = hub.job_done();
            self.commit_completed(shared)?;
            if done {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends `status` downstream when it differs from the last one sent.
    fn set_status(&mut self, status: WatermarkStatus) -> Result<(), Stop> {
        if status != self.status {
            self.status = status;
            for outlet in &mut self.outlets {
                outlet.exchange.watermark_status(status)?;
            }
        }
        Ok(())
    }

    /// Hands a watermark through the chain (operators may fire windows)
    /// and to every consumer.
    fn push_watermark(&mut self, shared: &JobShared<'_>, watermark: i64) -> Result<(), Stop> {
        for op in 0..self.ops.len() {
            let emitted = self.ops[op].on_watermark(shared, watermark);
            let emitted = self.or_fail(op, emitted)?;
            self.forward(shared, op, emitted)?;
            if let ChainedOp::Sink { id, .. } = &self.ops[op] {
                shared
                    .metrics()
                    .record_watermark(task_name(id, self.index), watermark);
            }
        }
        for outlet in &mut self.outlets {
            outlet.exchange.watermark(watermark)?;
        }
        Ok(())
    }

    /// Turns operator `op`'s failure into the task's.
    fn or_fail(
        &self,
        op: usize,
        result: Result<Emitted, crate::ops::OpFailure>,
    ) -> Result<Emitted, Stop> {
        result.map_err(|(origin, message)| self.fail(self.ops[op].id(), origin, message))
    }

    /// Fires processing-time timers of the chain's operators.
    fn fire_processing_time(&mut self, shared: &JobShared<'_>, now_ms: i64) -> Result<(), Stop> {
        for op in 0..self.ops.len() {
            let emitted = self.ops[op].on_processing_time(shared, now_ms);
            let emitted = self.or_fail(op, emitted)?;
            self.forward(shared, op, emitted)?;
        }
        Ok(())
    }

    /// Runs one batch through the chain from operator `start` (which reads
    /// it as input `input`) and hands the result to the outlets.
    fn push(
        &mut self,
        shared: &JobShared<'_>,
        start: usize,
        input: usize,
        mut batch: Batch,
    ) -> Result<(), Stop> {
        for op in start..self.ops.len() {
            if batch.is_empty() {
                return Ok(());
            }
            let input = if op == start { input } else { 0 };
            let emitted = self.ops[op].process(shared, input, batch);
            let emitted = self.or_fail(op, emitted)?;
            shared.metrics().mark_processed();
            self.route_side_outputs(shared, op, emitted.side)?;
            batch = emitted.main;
        }
        self.send_main(shared, batch)
    }

    /// Sends what operator `op` emitted on: the main output through the
    /// rest of the chain, side outputs to their consumers.
    fn forward(&mut self, shared: &JobShared<'_>, op: usize, emitted: Emitted) -> Result<(), Stop> {
        self.route_side_outputs(shared, op, emitted.side)?;
        if !emitted.main.is_empty() {
            self.push(shared, op + 1, 0, emitted.main)?;
        }
        Ok(())
    }

    /// Hands the chain's result to the outlets of the main output.
    fn send_main(&mut self, shared: &JobShared<'_>, mut batch: Batch) -> Result<(), Stop> {
        if batch.is_empty() {
            return Ok(());
        }
        let mains: Vec<usize> = (0..self.outlets.len())
            .filter(|&i| self.outlets[i].output.is_none())
            .collect();
        for (n, &i) in mains.iter().enumerate() {
            let out = if n + 1 == mains.len() {
                std::mem::take(&mut batch)
            } else {
                batch.clone()
            };
            let unkeyed = self.outlets[i].exchange.send(out)?;
            report_unkeyed(shared, unkeyed);
        }
        Ok(())
    }

    /// Side outputs of the chain's last operator go to the consumers that
    /// read them; any other side output is reported once and dropped.
    fn route_side_outputs(
        &mut self,
        shared: &JobShared<'_>,
        op: usize,
        side: Vec<(String, Record)>,
    ) -> Result<(), Stop> {
        if side.is_empty() {
            return Ok(());
        }
        let is_tail = op + 1 == self.ops.len();
        let mut by_name: Vec<(String, Batch)> = Vec::new();
        for (name, record) in side {
            match by_name.iter_mut().find(|(n, _)| *n == name) {
                Some((_, batch)) => batch.push(record, Origin::DERIVED),
                None => {
                    let mut batch = Batch::default();
                    batch.push(record, Origin::DERIVED);
                    by_name.push((name, batch));
                }
            }
        }
        for (name, batch) in by_name {
            let targets: Vec<usize> = (0..self.outlets.len())
                .filter(|&i| is_tail && self.outlets[i].output.as_deref() == Some(name.as_str()))
                .collect();
            if targets.is_empty() {
                let id = self.ops[op].id().to_string();
                if !self
                    .warned_side_outputs
                    .contains(&(id.clone(), name.clone()))
                {
                    shared.metrics().record_problem(format!(
                        "operator `{id}` emitted to side output `{name}`, which the job does not route; such records are dropped"
                    ));
                    self.warned_side_outputs.push((id, name));
                }
                continue;
            }
            for i in targets {
                let unkeyed = self.outlets[i].exchange.send(batch.clone())?;
                report_unkeyed(shared, unkeyed);
            }
        }
        Ok(())
    }

    fn finish(&mut self, shared: &JobShared<'_>) -> Result<(), Stop> {
        for op in 0..self.ops.len() {
            let emitted = self.ops[op].end_of_input(shared);
            let emitted = self.or_fail(op, emitted)?;
            self.forward(shared, op, emitted)?;
        }
        for op in 0..self.ops.len() {
            if let Err(message) = self.ops[op].close() {
                let id = self.ops[op].id().to_string();
                return Err(self.fail(&id, None, message));
            }
        }
        for outlet in &mut self.outlets {
            outlet.exchange.finish()?;
        }
        Ok(())
    }
}

/// The next element for a subtask's input head, from any producer that
/// has not ended its input. With `align`, producers blocked by the barrier
/// aligner are not read: what they send after their barrier waits in
/// their queues, which fill and hold them back (as Flink's aligned
/// checkpoints do), so alignment needs no buffer of its own.
///
/// # Errors
/// `Timeout` when nothing came within 50 ms; `Disconnected` when a
/// producer went away without ending its input (it failed).
fn next_input(
    rxs: &[Receiver<Message>],
    aligner: &BarrierAligner,
    align: bool,
) -> Result<Message, RecvTimeoutError> {
    let deadline = std::time::Instant::now() + Duration::from_millis(50);
    let mut select = crossbeam_channel::Select::new();
    let mut producers = Vec::with_capacity(rxs.len());
    for (producer, rx) in rxs.iter().enumerate() {
        let unread = aligner.has_ended(producer) || (align && aligner.is_blocked(producer));
        if !unread {
            select.recv(rx);
            producers.push(producer);
        }
    }
    if producers.is_empty() {
        // Every input ended (the caller stops) or is blocked, which the
        // aligner never leaves as it is.
        std::thread::sleep(Duration::from_millis(1));
        return Err(RecvTimeoutError::Timeout);
    }
    let ready = select
        .select_deadline(deadline)
        .map_err(|_| RecvTimeoutError::Timeout)?;
    let producer = producers[ready.index()];
    ready
        .recv(&rxs[producer])
        .map_err(|_| RecvTimeoutError::Disconnected)
}

fn report_unkeyed(shared: &JobShared<'_>, unkeyed: Vec<crate::exchange::Unkeyed>) {
    for u in unkeyed {
        let at = shared.splits.describe(u.origin);
        shared
            .metrics()
            .record_problem(format!("dropped a record at key_by ({}): {at}", u.reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::TrySendError;
    use weir_checkpoint::Alignment;

    fn batch(from: u32, value: &str) -> Message {
        let mut b = Batch::default();
        b.push(
            Record {
                key: None,
                value: value.as_bytes().to_vec().into(),
                timestamp: None,
            },
            Origin::DERIVED,
        );
        (from, StreamElement::Batch(b))
    }

    fn value_of(message: Message) -> (u32, String) {
        match message {
            (from, StreamElement::Batch(b)) => {
                let value = b
                    .records
                    .first()
                    .map(|r| r.value.clone())
                    .unwrap_or_default();
                (from, String::from_utf8_lossy(&value).into_owned())
            }
            (from, other) => (from, format!("{other:?}")),
        }
    }

    /// Regression for alignment buffering everything a blocked producer
    /// sent: its queue is left unread, fills, and holds the producer back.
    #[test]
    fn alignment_leaves_a_blocked_producer_in_its_full_queue() {
        let queues = ChainInputs::new(2, 1, 2);
        let (txs, rxs) = (&queues.senders, &queues.receivers[0]);
        let mut aligner = BarrierAligner::new(2);
        assert_eq!(aligner.on_barrier(0, 1), Alignment::Waiting);
        for v in ["a1", "a2"] {
            txs[0][0].send(batch(0, v)).unwrap();
        }
        assert!(matches!(
            txs[0][0].try_send(batch(0, "a3")),
            Err(TrySendError::Full(_))
        ));
        txs[1][0].send(batch(1, "b1")).unwrap();
        assert_eq!(
            value_of(next_input(rxs, &aligner, true).unwrap()),
            (1, "b1".into())
        );
        assert!(matches!(
            next_input(rxs, &aligner, true),
            Err(RecvTimeoutError::Timeout)
        ));
        // Aligned: producer 0 is read again, in order.
        assert_eq!(aligner.on_barrier(1, 1), Alignment::Aligned(1));
        assert_eq!(
            value_of(next_input(rxs, &aligner, true).unwrap()),
            (0, "a1".into())
        );
        assert_eq!(
            value_of(next_input(rxs, &aligner, true).unwrap()),
            (0, "a2".into())
        );
        // At least once: a blocked producer is read anyway.
        assert_eq!(aligner.on_barrier(0, 2), Alignment::Waiting);
        txs[0][0].send(batch(0, "a3")).unwrap();
        assert_eq!(
            value_of(next_input(rxs, &aligner, false).unwrap()),
            (0, "a3".into())
        );
    }

    #[test]
    fn an_ended_producer_is_not_read_and_a_vanished_one_is_reported() {
        let ChainInputs { senders, receivers } = ChainInputs::new(2, 1, 2);
        let mut aligner = BarrierAligner::new(2);
        let mut senders = senders.into_iter();
        let (first, second) = (senders.next().unwrap(), senders.next().unwrap());
        first[0].send((0, StreamElement::EndOfInput)).unwrap();
        drop(first);
        let ended = next_input(&receivers[0], &aligner, true).unwrap();
        assert_eq!(ended.0, 0);
        aligner.on_end_of_input(0);
        second[0].send(batch(1, "b1")).unwrap();
        assert_eq!(
            value_of(next_input(&receivers[0], &aligner, true).unwrap()),
            (1, "b1".into())
        );
        drop(second);
        assert!(matches!(
            next_input(&receivers[0], &aligner, true),
            Err(RecvTimeoutError::Disconnected)
        ));
    }
}
