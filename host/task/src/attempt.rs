//! Deploying one attempt of a job on this process: planning into
//! deployment descriptors, wiring them with in-process queues
//! (`LocalChannels`), and starting one thread per subtask.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use weir_checkpoint::{BarrierAligner, CheckpointCoordinator, CheckpointStorage, TaskId};
use weir_connectors::{SinkStart, SourceReader, Split, plan_splits};
use weir_types::WatermarkStatus;
use weir_types::jobgraph::{JobGraph, OnError, dead_letter_dir};
use weir_wasm::{RuntimeConfig, WasmRuntime};

use crate::checkpointing::snapshot_worker;
use crate::clock::wall_clock_ms;
use crate::context::{JobShared, SplitTable};
use crate::control::{ControlState, TaskControl, TaskEvent};
use crate::dead_letter::DeadLetters;
use crate::deployment::{HeadDescriptor, RestoreSource, TaskDeploymentDescriptor, VertexSpec};
use crate::exchange::Exchange;
use crate::factories::{build_ops, load_components};
use crate::graph::{Plan, VertexKind};
use crate::input::{ChainInputs, Head, Pace};
use crate::metrics::VertexMetrics;
use crate::snapshot::{RestoreError, Restored, load_state_files};
use crate::subtask::{Outlet, Stop, SubtaskRun};
use crate::transport::{InputGate, LocalInputGate, OutputChannel};
use crate::watermark::{InputWatermarks, SplitWatermarks};
use crate::{AttemptCheckpoints, JobError, LocalDeployment, RunConfig, TaskFailureKind};

/// An attempt planned on the JobManager's side: every subtask's
/// descriptor, the job's split names, and the checkpoint side.
pub(crate) struct Planned {
    pub(crate) descriptors: Vec<TaskDeploymentDescriptor>,
    pub(crate) table: SplitTable,
    pub(crate) checkpoints: Option<AttemptCheckpoints>,
}

/// Plans one attempt of `job`: its source splits, its file sinks'
/// directories, a deployment descriptor per chain subtask, and the
/// checkpoint coordinator with its storage when checkpoints are on.
///
/// # Errors
/// [`JobError::Connector`] when splits cannot be planned or a sink's
/// directory prepared, [`JobError::Checkpoint`] when storage cannot be
/// opened.
pub(crate) fn plan_attempt(
    job: &JobGraph,
    config: &RunConfig,
    restored: Option<&Arc<Restored>>,
    attempt: u32,
) -> Result<Planned, JobError> {
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
    }

    let files: std::collections::BTreeMap<String, Option<String>> = restored
        .map(|r| {
            r.metadata
                .tasks
                .iter()
                .map(|(name, t)| (name.clone(), t.file.clone()))
                .collect()
        })
        .unwrap_or_default();
    let restore_source = restored.map(|r| RestoreSource {
        checkpoint: r.metadata.id,
        parallelism: &r.metadata.parallelism,
        files: &files,
    });
    let descriptors = crate::deployment::descriptors(
        job,
        &plan,
        source_splits,
        |op| config.udfs.get(op).map(|p| p.display().to_string()),
        restore_source.as_ref(),
        attempt,
    );
    let checkpoints =
        start_checkpointing(job, config, &descriptors, restored)?.map(|(storage, coordinator)| {
            AttemptCheckpoints {
                coordinator,
                storage: Arc::new(storage),
                // Parallelism of every chain head, for checkpoint metadata.
                parallelism: descriptors
                    .iter()
                    .map(|d| (d.task.vertex.clone(), d.parallelism))
                    .collect(),
            }
        });
    Ok(Planned {
        descriptors,
        table,
        checkpoints,
    })
}

/// The caller's Wasm runtime (a JobManager or TaskManager shares one among
/// its jobs), or one for this attempt. The tasks keep it alive: its
/// engine's epoch ticker is what interrupts a UDF past its call timeout.
///
/// # Errors
/// [`JobError::Load`] when the engine cannot be created.
pub(crate) fn runtime_for(config: &RunConfig) -> Result<Arc<WasmRuntime>, JobError> {
    match &config.runtime {
        Some(shared) => Ok(Arc::clone(shared)),
        None => Ok(Arc::new(
            WasmRuntime::new(RuntimeConfig {
                cache_dir: config.cache_dir.clone(),
            })
            .map_err(|source| JobError::Load {
                operator: "<engine>".into(),
                source,
            })?,
        )),
    }
}

/// Plans one attempt of `job` into deployment descriptors and starts
/// every task on a thread of its own, connected by in-process queues.
///
/// # Errors
/// A [`JobError`] when a component cannot be loaded, a source or sink
/// cannot be set up, or checkpoint storage cannot be opened.
pub(crate) fn deploy_local(
    job: &JobGraph,
    config: &RunConfig,
    restored: Option<&Arc<Restored>>,
    attempt: u32,
) -> Result<LocalDeployment, JobError> {
    let runtime = runtime_for(config)?;
    let components = load_components(job, config, &runtime)?;
    let Planned {
        descriptors,
        table,
        checkpoints,
    } = plan_attempt(job, config, restored, attempt)?;
    let mut channels = LocalChannels::new(&descriptors, config.channel_capacity);
    let rocksdb = weir_state::RocksDbShared::new(
        &config.checkpoints.rocksdb,
        crate::context::slots_of(&descriptors),
    );
    let shared = Arc::new(JobShared {
        config: config.clone(),
        splits: table,
        started: std::time::Instant::now(),
        storage: checkpoints.as_ref().map(|c| Arc::clone(&c.storage)),
        exactly_once: config.checkpoints.exactly_once,
        restored: restored.cloned(),
        components,
        _runtime: runtime,
        rocksdb,
    });
    let deployment = start_tasks(&shared, descriptors, &mut channels);
    // Only the tasks hold queue ends and event senders now, so the driver
    // sees every task's end.
    drop(channels);
    Ok(LocalDeployment {
        checkpoints,
        ..deployment
    })
}

/// Gives each subtask the ends of its queues.
pub(crate) trait Channels {
    /// The queue ends `descriptor`'s subtask reads and writes.
    fn wire(&mut self, descriptor: &TaskDeploymentDescriptor) -> Wiring;
}

/// Starts every task of `descriptors` on a thread of its own (the
/// deployment has no checkpoint side yet: the planner's).
pub(crate) fn start_tasks(
    shared: &Arc<JobShared>,
    descriptors: Vec<TaskDeploymentDescriptor>,
    channels: &mut dyn Channels,
) -> LocalDeployment {
    let (events, driver_events) = crossbeam_channel::unbounded();
    let mut tasks = Vec::with_capacity(descriptors.len());
    let mut threads = Vec::with_capacity(descriptors.len());
    for descriptor in descriptors {
        let task: TaskId = (descriptor.task.vertex.clone(), descriptor.task.index);
        let (control, control_rx) = crossbeam_channel::unbounded();
        let wiring = channels.wire(&descriptor);
        let task_events = events.clone();
        let shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name(descriptor.task.to_string())
            .spawn(move || run_task(&shared, descriptor, wiring, control_rx, task_events));
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                let _ = events.send(TaskEvent::Failed {
                    task: task.clone(),
                    error: JobError::Plan(format!("cannot start a thread: {e}")),
                });
                let _ = events.send(TaskEvent::Exited { task: task.clone() });
            }
        }
        tasks.push((task, control));
    }
    LocalDeployment {
        tasks,
        events: driver_events,
        checkpoints: None,
        threads: crate::TaskThreads(threads),
    }
}

/// One task's thread: builds and runs the subtask, reports a failure,
/// then that it exited.
fn run_task(
    shared: &JobShared,
    descriptor: TaskDeploymentDescriptor,
    wiring: Wiring,
    control: Receiver<TaskControl>,
    events: Sender<TaskEvent>,
) {
    let task: TaskId = (descriptor.task.vertex.clone(), descriptor.task.index);
    // A bug in host code must fail the task, not the process.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_subtask(
            shared,
            &descriptor,
            wiring,
            ControlState::new(control),
            events.clone(),
        )
    }));
    let error = match result {
        Ok(Err(Stop::Failed(error))) => Some(error),
        Ok(_) => None,
        Err(panic) => Some(JobError::Task {
            vertex: descriptor.task.vertex.clone(),
            index: descriptor.task.index,
            parallelism: descriptor.parallelism,
            origin: None,
            kind: TaskFailureKind::Internal,
            message: format!("internal error (a bug in Weir): {}", panic_message(&panic)),
        }),
    };
    if let Some(error) = error {
        let _ = events.send(TaskEvent::Failed {
            task: task.clone(),
            error,
        });
    }
    let _ = events.send(TaskEvent::Exited { task });
}

/// The in-process channels of an attempt: bounded queues into every
/// subtask that has inputs, one per producer (as Flink's input channels),
/// so barrier alignment can stop reading a producer and let its queue push
/// back on it. Each consumer vertex gets `channel_capacity` batches per
/// subtask, shared among its producers with at least 2 each.
struct LocalChannels {
    /// Per consumer vertex: the queues.
    inputs: HashMap<String, ChainInputs>,
}

/// A subtask's ends of its channels.
pub(crate) struct Wiring {
    /// Its input channels (channel `c` of the gate is input channel `c` of
    /// the descriptor).
    pub(crate) inputs: Box<dyn InputGate>,
    /// Per output of the descriptor: the channels into each consumer
    /// subtask, in subtask order.
    pub(crate) outputs: Vec<Vec<Box<dyn OutputChannel>>>,
}

impl LocalChannels {
    fn new(descriptors: &[TaskDeploymentDescriptor], capacity: usize) -> Self {
        let mut inputs = HashMap::new();
        for d in descriptors.iter().filter(|d| d.task.index == 0) {
            if let HeadDescriptor::Input { channels } = &d.head {
                let producers = channels.len();
                let per_producer = (capacity / producers.max(1)).max(2);
                inputs.insert(
                    d.task.vertex.clone(),
                    ChainInputs::new(producers, d.parallelism as usize, per_producer),
                );
            }
        }
        Self { inputs }
    }
}

impl Channels for LocalChannels {
    fn wire(&mut self, descriptor: &TaskDeploymentDescriptor) -> Wiring {
        let inputs = match self.inputs.get_mut(&descriptor.task.vertex) {
            Some(queues) => queues
                .receivers
                .get_mut(descriptor.task.index as usize)
                .map(std::mem::take)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let outputs = descriptor
            .outputs
            .iter()
            .map(|o| {
                self.inputs
                    .get(&o.consumer)
                    .and_then(|q| q.senders.get(o.channel as usize))
                    .map(|senders| {
                        senders
                            .iter()
                            .map(|s| Box::new(s.clone()) as Box<dyn OutputChannel>)
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        Wiring {
            inputs: Box::new(LocalInputGate::new(inputs)),
            outputs,
        }
    }
}

/// Builds a subtask from its descriptor and runs it to the end of its
/// input (and, with checkpoints, until the job's final checkpoint).
pub(crate) fn run_subtask(
    shared: &JobShared,
    descriptor: &TaskDeploymentDescriptor,
    wiring: Wiring,
    control: ControlState,
    events: Sender<TaskEvent>,
) -> Result<(), Stop> {
    let ops = build_ops(shared, descriptor)?;
    let head = build_head(descriptor, wiring.inputs);
    let mut metrics: Vec<Arc<VertexMetrics>> = descriptor
        .chain
        .iter()
        .map(|v| shared.metrics().vertex(&v.id, descriptor.parallelism))
        .collect();
    let back_pressure = metrics.last().map(|m| m.back_pressure_counter());
    let source_metrics = match descriptor.chain.first().map(|v| &v.spec) {
        Some(VertexSpec::Source(_)) if !metrics.is_empty() => Some(metrics.remove(0)),
        _ => None,
    };
    let outlets = descriptor
        .outputs
        .iter()
        .zip(wiring.outputs)
        .map(|(o, senders)| {
            let exchange = Exchange::new(
                o.partitioning,
                senders,
                o.channel as usize,
                descriptor.max_parallelism,
            )
            .rekey_by(o.key.as_deref());
            Outlet {
                output: o.output.clone(),
                exchange: match &back_pressure {
                    Some(counter) => exchange.measure_back_pressure(Arc::clone(counter)),
                    None => exchange,
                },
            }
        })
        .collect();
    let (source_on_error, dead_letters) = bad_record_handling(descriptor, shared);
    let mut run = SubtaskRun {
        head_id: &descriptor.task.vertex,
        task: (descriptor.task.vertex.clone(), descriptor.task.index),
        last_checkpoint: 0,
        committed: 0,
        align_started: None,
        index: descriptor.task.index,
        parallelism: descriptor.parallelism,
        key_groups: descriptor.key_groups,
        max_parallelism: descriptor.max_parallelism,
        batch_size: descriptor.batch_size,
        head,
        ops,
        outlets,
        status: WatermarkStatus::Active,
        warned_side_outputs: std::collections::HashSet::new(),
        snapshots: None,
        control,
        events,
        source_metrics,
        op_metrics: metrics,
        source_on_error,
        dead_letters,
    };
    run.dead_letters
        .prepare()
        .map_err(|message| run.fail(&descriptor.task.vertex, None, message))?;
    let mut restored_files = Vec::new();
    if let (Some(restored), Some(restore)) = (shared.restored.as_deref(), &descriptor.restore) {
        let files = load_state_files(restored, restore).map_err(Stop::Failed)?;
        let snapshots = files
            .iter()
            .map(|file| file.decode(restored))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Stop::Failed)?;
        restored_files = run
            .restore(shared, restored, restore.rescaled, &snapshots)
            .map_err(|e| match e {
                RestoreError::Damaged(message) => Stop::Failed(JobError::DamagedCheckpoint {
                    checkpoint: restored.metadata.id,
                    message: format!(
                        "{} (subtask {}): {message}",
                        descriptor.task.vertex, descriptor.task.index
                    ),
                }),
                RestoreError::Failed(message) => run.fail(&descriptor.task.vertex, None, message),
            })?;
        // Restored SST files may be listed again only where they are.
        if !shared
            .storage
            .as_ref()
            .is_some_and(|storage| storage.same_directory(&restored.storage))
        {
            restored_files.clear();
        }
        // Output the restored checkpoint covered is already committed.
        run.committed = restore.checkpoint;
    }
    let Some(storage) = shared.storage.as_deref() else {
        return run.run(shared);
    };
    // The asynchronous phase of this subtask's checkpoints runs beside it;
    // the scope waits for the snapshots handed over before the end.
    std::thread::scope(|scope| {
        let (jobs, worker_jobs) = crossbeam_channel::unbounded();
        run.snapshots = Some(jobs);
        let instance = format!(
            "{}-{}-{:x}",
            descriptor.task.vertex,
            descriptor.task.index,
            wall_clock_ms().unsigned_abs() * 1000 + u64::from(descriptor.attempt)
        );
        let events = run.events.clone();
        std::thread::Builder::new()
            .name(format!("{}-snapshots", descriptor.task))
            .spawn_scoped(scope, move || {
                snapshot_worker(storage, &instance, restored_files, worker_jobs, &events)
            })
            .map_err(|e| {
                run.fail(
                    &descriptor.task.vertex,
                    None,
                    format!("cannot start snapshot thread: {e}"),
                )
            })?;
        let result = run.run(shared);
        run.snapshots = None;
        result
    })
}

/// What the chain does with bad records: its source's `on_error`, and the
/// dead-letter writers of the vertices that dead-letter.
fn bad_record_handling(
    descriptor: &TaskDeploymentDescriptor,
    shared: &JobShared,
) -> (OnError, DeadLetters) {
    let mut source_on_error = OnError::source_default();
    let mut dirs = Vec::new();
    for vertex in &descriptor.chain {
        let (on_error, explicit) = match &vertex.spec {
            VertexSpec::Source(spec) => {
                source_on_error = spec.on_error;
                (spec.on_error, spec.dead_letter_path.as_deref())
            }
            VertexSpec::Operator(spec) if spec.udf.is_some() && spec.window.is_none() => {
                (spec.on_error, spec.dead_letter_path.as_deref())
            }
            _ => continue,
        };
        if on_error == OnError::DeadLetter {
            dirs.push((
                vertex.id.clone(),
                dead_letter_dir(&descriptor.job, &vertex.id, explicit),
            ));
        }
    }
    let transactional = shared.storage.is_some();
    let start = descriptor
        .restore
        .as_ref()
        .map_or(SinkStart::Fresh, |r| SinkStart::Restore(r.checkpoint));
    let letters = DeadLetters::new(
        descriptor.task.index,
        descriptor.parallelism,
        transactional,
        start,
        dirs,
    );
    (source_on_error, letters)
}

/// The head of a subtask: a source reader over its splits, or its input
/// queues with watermark tracking and barrier alignment.
fn build_head(descriptor: &TaskDeploymentDescriptor, gate: Box<dyn InputGate>) -> Head {
    match (&descriptor.head, descriptor.chain.first().map(|v| &v.spec)) {
        (HeadDescriptor::Source { splits }, Some(VertexSpec::Source(spec))) => {
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
                per_second: total.div_ceil(u64::from(descriptor.parallelism)).max(1),
                started: std::time::Instant::now(),
                records: 0,
            });
            Head::Source {
                reader: Box::new(SourceReader::new(&spec.kind, splits.clone())),
                splits: split_ids,
                watermarks,
                pace,
            }
        }
        (HeadDescriptor::Input { channels }, _) => Head::Input {
            input_of: channels.iter().map(|c| c.input).collect(),
            watermarks: InputWatermarks::new(channels.len()),
            aligner: BarrierAligner::new(channels.len()),
            gate,
        },
        // A source descriptor whose chain does not start with a source:
        // not made by planning; reads nothing.
        (HeadDescriptor::Source { .. }, _) => Head::Input {
            input_of: Vec::new(),
            watermarks: InputWatermarks::new(0),
            aligner: BarrierAligner::new(0),
            gate: Box::new(LocalInputGate::default()),
        },
    }
}

/// Opens checkpoint storage and sets up the coordinator when checkpoints
/// are on. A fresh run (not restored) replaces the job's earlier checkpoints.
///
/// # Errors
/// [`JobError::Checkpoint`] when the storage cannot be opened.
pub(crate) fn start_checkpointing(
    job: &JobGraph,
    config: &RunConfig,
    descriptors: &[TaskDeploymentDescriptor],
    restored: Option<&Arc<Restored>>,
) -> Result<Option<(CheckpointStorage, CheckpointCoordinator)>, JobError> {
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
    let tasks: Vec<TaskId> = descriptors
        .iter()
        .map(|d| (d.task.vertex.clone(), d.task.index))
        .collect();
    let coordinator = CheckpointCoordinator::new(checkpoints.clone(), tasks, first_id, 0);
    Ok(Some((storage, coordinator)))
}

pub(crate) fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}
