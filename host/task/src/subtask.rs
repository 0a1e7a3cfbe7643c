//! Setting up and running the subtasks of a job.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use weir_connectors::{
    BadRecord, BlackholeSink, FileSink, Sink, SourceReader, Split, StdoutSink, plan_splits,
    prepare_file_sink_dir,
};
use weir_state::{KeyedState, MemoryBackend, RocksDbBackend, StateBackend};
use weir_types::jobgraph::{JobGraph, OperatorSpec, Partitioning, SinkKind, StateBackendKind};
use weir_types::{Batch, KeyGroupRange, Origin, StreamElement};
use weir_wasm::{
    InstanceLimits, OperatorComponent, OperatorInstance, Output, RuntimeConfig, SubtaskInfo,
    WasmRuntime,
};

use crate::exchange::{Disconnected, Exchange, Message};
use crate::graph::{Plan, VertexKind};
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
struct JobShared<'a> {
    job: &'a JobGraph,
    config: &'a RunConfig,
    splits: SplitTable,
    cancelled: AtomicBool,
    first_error: Mutex<Option<JobError>>,
    /// Processing time origin for watermark idleness.
    started: std::time::Instant,
}

impl JobShared<'_> {
    fn metrics(&self) -> &JobMetrics {
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

/// The sending and receiving ends of the queues into one chain's subtasks.
type ChainInputs = (Vec<Sender<Message>>, Vec<Receiver<Message>>);

/// Where a subtask's batches come from.
enum Head {
    Source {
        reader: Box<SourceReader>,
        /// Periodic watermarks, when the source declares them.
        watermarks: Option<SplitWatermarks>,
    },
    Input {
        rx: Receiver<Message>,
        producers: u32,
        watermarks: InputWatermarks,
    },
}

/// A vertex chained in a subtask.
enum ChainedOp<'a> {
    Udf(UdfOp<'a>),
    Sink { sink: Box<dyn Sink>, id: &'a str },
}

struct UdfOp<'a> {
    spec: &'a OperatorSpec,
    instance: OperatorInstance,
    warned_side_outputs: Vec<String>,
}

/// Everything one thread runs.
struct SubtaskRun<'a> {
    head_id: &'a str,
    index: u32,
    parallelism: u32,
    head: Head,
    ops: Vec<ChainedOp<'a>>,
    exchanges: Vec<Exchange>,
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

pub(crate) fn execute(job: &JobGraph, config: &RunConfig) -> Result<(), JobError> {
    let runtime = WasmRuntime::new(RuntimeConfig {
        cache_dir: config.cache_dir.clone(),
    })
    .map_err(|source| JobError::Load {
        operator: "<engine>".into(),
        source,
    })?;
    let components = load_components(job, config, &runtime)?;
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
            && let SinkKind::File { path } = &spec.kind
        {
            prepare_file_sink_dir(path).map_err(|source| JobError::Connector {
                vertex: spec.id.clone(),
                source,
            })?;
        }
    }

    // One bounded queue per subtask of every chain that has an input.
    let mut inputs: HashMap<usize, ChainInputs> = HashMap::new();
    for (c, chain) in plan.chains.iter().enumerate() {
        let head = &plan.vertices[chain.vertices[0]];
        if head.input.is_some() {
            let pairs =
                (0..head.parallelism).map(|_| crossbeam_channel::bounded(config.channel_capacity));
            inputs.insert(c, pairs.unzip());
        }
    }

    let shared = JobShared {
        job,
        config,
        splits: table,
        cancelled: AtomicBool::new(false),
        first_error: Mutex::new(None),
        started: std::time::Instant::now(),
    };
    std::thread::scope(|scope| {
        for (c, chain) in plan.chains.iter().enumerate() {
            let head_vertex = &plan.vertices[chain.vertices[0]];
            for index in 0..head_vertex.parallelism {
                let head = match head_vertex.input {
                    None => {
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
                                w.max_out_of_orderness_ms,
                                w.idle_timeout_ms,
                                0,
                            )
                        });
                        Head::Source {
                            reader: Box::new(SourceReader::new(&spec.kind, splits)),
                            watermarks,
                        }
                    }
                    Some((up, _)) => {
                        let rx = inputs[&c].1[index as usize].clone();
                        let producers = plan.vertices[up].parallelism;
                        Head::Input {
                            rx,
                            producers,
                            watermarks: InputWatermarks::new(producers as usize),
                        }
                    }
                };
                let tail = &plan.vertices[*chain.vertices.last().unwrap_or(&chain.vertices[0])];
                let exchanges: Vec<Exchange> = tail
                    .consumers
                    .iter()
                    .filter_map(|consumer| {
                        let target_chain = plan.chain_headed_by(*consumer)?;
                        let partitioning = plan.vertices[*consumer]
                            .input
                            .map_or(Partitioning::Forward, |(_, p)| p);
                        let senders = inputs.get(&target_chain)?.0.clone();
                        Some(Exchange::new(
                            partitioning,
                            senders,
                            index as usize,
                            job.max_parallelism,
                        ))
                    })
                    .collect();
                let chain_vertices = chain.vertices.clone();
                let shared = &shared;
                let plan = &plan;
                let components = &components;
                let name = format!("{}#{index}", head_vertex.id);
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
                                        exchanges,
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
    match shared.first_error.into_inner() {
        Ok(Some(error)) => Err(error),
        _ => Ok(()),
    }
}

/// Builds a subtask's chained operators and runs it to the end of its input.
fn run_subtask<'a>(
    shared: &JobShared<'a>,
    plan: &Plan<'a>,
    components: &HashMap<String, Arc<OperatorComponent>>,
    chain: &[usize],
    index: u32,
    head: Head,
    exchanges: Vec<Exchange>,
) -> Result<(), Stop> {
    let ops = build_ops(shared, plan, components, chain, index)?;
    let vertex = &plan.vertices[chain[0]];
    let mut run = SubtaskRun {
        head_id: vertex.id,
        index,
        parallelism: vertex.parallelism,
        head,
        ops,
        exchanges,
    };
    run.run(shared)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

fn load_components(
    job: &JobGraph,
    config: &RunConfig,
    runtime: &WasmRuntime,
) -> Result<HashMap<String, Arc<OperatorComponent>>, JobError> {
    let mut components = HashMap::new();
    for op in &job.operators {
        let path = config.udfs.get(&op.id).ok_or_else(|| {
            JobError::Plan(format!("operator `{}` has no compiled component", op.id))
        })?;
        let component = runtime.load(path).map_err(|source| JobError::Load {
            operator: op.id.clone(),
            source,
        })?;
        components.insert(op.id.clone(), Arc::new(component));
    }
    Ok(components)
}

fn build_ops<'a>(
    shared: &JobShared<'a>,
    plan: &Plan<'a>,
    components: &HashMap<String, Arc<OperatorComponent>>,
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
            VertexKind::Operator(spec) => {
                let component = components
                    .get(&spec.id)
                    .ok_or_else(|| fail("component not loaded".into()))?;
                let keyed = vertex.input.is_some_and(|(_, p)| p == Partitioning::KeyBy);
                let state = if keyed {
                    Some(open_state(shared, &spec.id, index, vertex.parallelism).map_err(fail)?)
                } else {
                    None
                };
                let limits = InstanceLimits {
                    memory_bytes: (spec.memory_mib as usize) << 20,
                    call_timeout: Duration::from_millis(spec.call_timeout_ms),
                };
                let mut instance = component
                    .instantiate(format!("{}#{index}", spec.id), state, limits)
                    .map_err(|e| fail(e.to_string()))?;
                let info = SubtaskInfo {
                    operator_id: spec.id.clone(),
                    index,
                    parallelism: vertex.parallelism,
                    max_parallelism: u32::from(shared.job.max_parallelism),
                    attempt: 0,
                };
                let config_json = spec
                    .config
                    .as_ref()
                    .map_or_else(|| "{}".to_string(), |c| c.to_string());
                instance
                    .open(&info, &config_json)
                    .map_err(|e| fail(e.to_string()))?;
                ops.push(ChainedOp::Udf(UdfOp {
                    spec,
                    instance,
                    warned_side_outputs: Vec::new(),
                }));
            }
            VertexKind::Sink(spec) => {
                let sink: Box<dyn Sink> = match &spec.kind {
                    SinkKind::File { path } => {
                        Box::new(FileSink::create(path, index).map_err(|e| fail(e.to_string()))?)
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
            let now_ms = shared.now_ms();
            let (batch, watermark) = match &mut self.head {
                Head::Source { reader, watermarks } => {
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
                    (batch, watermark)
                }
                Head::Input {
                    rx,
                    producers,
                    watermarks,
                } => {
                    match rx.recv_timeout(Duration::from_millis(50)) {
                        Ok((_, StreamElement::Batch(batch))) => (batch, None),
                        Ok((from, StreamElement::Watermark(w))) => {
                            match watermarks.on_watermark(from as usize, w) {
                                Some(w) => (Batch::default(), Some(w)),
                                None => continue,
                            }
                        }
                        Ok((_, StreamElement::EndOfInput)) => {
                            ended_inputs += 1;
                            if ended_inputs == *producers {
                                break;
                            }
                            continue;
                        }
                        Err(RecvTimeoutError::Timeout) => continue,
                        // Every producer is gone without ending its input: it failed.
                        Err(RecvTimeoutError::Disconnected) => return Err(Stop::Cancelled),
                    }
                }
            };
            self.push(shared, batch)?;
            if let Some(w) = watermark {
                self.push_watermark(shared, w)?;
            }
        }
        // End of a bounded input: event time is complete (batch semantics).
        if matches!(self.head, Head::Source { .. }) {
            self.push_watermark(shared, MAX_WATERMARK)?;
        }
        self.finish()
    }

    /// Hands a watermark down the chain and to every consumer.
    fn push_watermark(&mut self, shared: &JobShared<'_>, watermark: i64) -> Result<(), Stop> {
        for op in &self.ops {
            if let ChainedOp::Sink { id, .. } = op {
                shared
                    .metrics()
                    .record_watermark(format!("{id}#{}", self.index), watermark);
            }
        }
        for exchange in &mut self.exchanges {
            exchange.watermark(watermark)?;
        }
        Ok(())
    }

    /// Runs one batch through the chain and hands the result to the exchanges.
    fn push(&mut self, shared: &JobShared<'_>, mut batch: Batch) -> Result<(), Stop> {
        for op in 0..self.ops.len() {
            if batch.is_empty() {
                return Ok(());
            }
            batch = match &mut self.ops[op] {
                ChainedOp::Udf(udf) => match process_udf(shared, udf, batch) {
                    Ok(out) => out,
                    Err((origin, message)) => {
                        let id = udf.spec.id.clone();
                        return Err(self.fail(&id, origin, message));
                    }
                },
                ChainedOp::Sink { sink, id } => {
                    if let Err(e) = sink.write(&batch.records) {
                        let id = id.to_string();
                        return Err(self.fail(&id, None, e.to_string()));
                    }
                    shared.metrics().add_written(batch.len());
                    Batch::default()
                }
            };
            shared.metrics().mark_processed();
        }
        if batch.is_empty() {
            return Ok(());
        }
        let last = self.exchanges.len().saturating_sub(1);
        for i in 0..self.exchanges.len() {
            let out = if i == last {
                std::mem::take(&mut batch)
            } else {
                batch.clone()
            };
            for unkeyed in self.exchanges[i].send(out)? {
                let at = shared.splits.describe(unkeyed.origin);
                shared
                    .metrics()
                    .record_problem(format!("dropped a record without key at key_by: {at}"));
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), Stop> {
        for op in &mut self.ops {
            match op {
                ChainedOp::Udf(udf) => {
                    if let Err(e) = udf.instance.close() {
                        let id = udf.spec.id.clone();
                        return Err(self.fail(&id, None, e.to_string()));
                    }
                }
                ChainedOp::Sink { sink, id } => {
                    if let Err(e) = sink.finish() {
                        let id = id.to_string();
                        return Err(self.fail(&id, None, e.to_string()));
                    }
                }
            }
        }
        for exchange in &mut self.exchanges {
            exchange.finish()?;
        }
        Ok(())
    }
}

/// Calls the UDF with a batch. On failure returns `(origin, message)`.
fn process_udf(
    shared: &JobShared<'_>,
    udf: &mut UdfOp<'_>,
    batch: Batch,
) -> Result<Batch, (Option<String>, String)> {
    let origins = batch.origins;
    let outputs = match udf.instance.process(batch.records) {
        Ok(outputs) => outputs,
        Err(failure) => {
            let origin = match failure.record_index.and_then(|i| origins.get(i)) {
                Some(origin) => Some(shared.splits.describe(*origin)),
                None => shared.splits.describe_batch(&origins),
            };
            return Err((origin, failure.error.to_string()));
        }
    };
    let mut out = Batch::with_capacity(outputs.len());
    for output in outputs {
        match output {
            Output::Emit(record) => out.push(record, Origin::DERIVED),
            Output::Error { input, message } => {
                let at = origins.get(input as usize).map_or_else(
                    || format!("input #{input} of a batch"),
                    |o| shared.splits.describe(*o),
                );
                shared.metrics().record_problem(format!(
                    "operator `{}` rejected {at}: {message}",
                    udf.spec.id
                ));
            }
            Output::Side { output, .. } => {
                if !udf.warned_side_outputs.contains(&output) {
                    shared.metrics().record_problem(format!(
                        "operator `{}` emitted to side output `{output}`, which the job does not route; such records are dropped",
                        udf.spec.id
                    ));
                    udf.warned_side_outputs.push(output);
                }
            }
        }
    }
    Ok(out)
}
