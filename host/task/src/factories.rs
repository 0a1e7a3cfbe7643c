//! Building what a subtask runs: loaded components, chained operators,
//! sinks and keyed state backends.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use weir_connectors::{
    BlackholeSink, CheckedJson, FailAfter, FileSink, Sink, SinkStart, StdoutSink,
    prepare_file_sink_part,
};
use weir_operators::{JoinOperator, WindowOperator};
use weir_state::{KeyedState, MemoryBackend, RocksDbBackend, StateBackend};
use weir_types::jobgraph::{JobGraph, OperatorRole, OperatorSpec, SinkKind, StateBackendKind};
use weir_wasm::{InstanceLimits, SubtaskInfo, WasmRuntime};

use crate::context::{Component, JobShared};
use crate::deployment::{TaskDeploymentDescriptor, VertexSpec};
use crate::ops::{ChainedOp, UdfOp};
use crate::snapshot::task_name;
use crate::subtask::Stop;
use crate::{JobError, RunConfig, TaskFailureKind};

pub(crate) fn load_components(
    job: &JobGraph,
    config: &RunConfig,
    runtime: &WasmRuntime,
) -> Result<HashMap<String, Component>, JobError> {
    let mut components = HashMap::new();
    for op in job.operators.iter().filter(|o| o.udf.is_some()) {
        components.insert(op.id.clone(), load_component(op, &config.udfs, runtime)?);
    }
    Ok(components)
}

/// Loads `op`'s component from its path in `udfs`: an aggregate component
/// for a window, an operator component otherwise.
fn load_component(
    op: &OperatorSpec,
    udfs: &HashMap<String, std::path::PathBuf>,
    runtime: &WasmRuntime,
) -> Result<Component, JobError> {
    let path = udfs
        .get(&op.id)
        .ok_or_else(|| JobError::Plan(format!("operator `{}` has no compiled component", op.id)))?;
    let load_error = |source| JobError::Load {
        operator: op.id.clone(),
        source,
    };
    Ok(match op.role() {
        OperatorRole::Window(..) => {
            Component::Aggregate(Arc::new(runtime.load_aggregate(path).map_err(load_error)?))
        }
        _ => Component::Operator(Arc::new(runtime.load(path).map_err(load_error)?)),
    })
}

/// Loads the components of the operators in `descriptors` (a
/// TaskManager's share of an attempt) from `udfs`, by operator id.
///
/// # Errors
/// [`JobError::Plan`] when an operator has no component in `udfs`,
/// [`JobError::Load`] when one cannot be loaded.
pub(crate) fn load_components_of(
    descriptors: &[crate::deployment::TaskDeploymentDescriptor],
    udfs: &HashMap<String, std::path::PathBuf>,
    runtime: &WasmRuntime,
) -> Result<HashMap<String, Component>, JobError> {
    let mut components = HashMap::new();
    let operators = descriptors
        .iter()
        .flat_map(|d| &d.chain)
        .filter_map(|v| match &v.spec {
            crate::deployment::VertexSpec::Operator(op) if op.udf.is_some() => Some(op),
            _ => None,
        });
    for op in operators {
        if !components.contains_key(&op.id) {
            components.insert(op.id.clone(), load_component(op, udfs, runtime)?);
        }
    }
    Ok(components)
}

/// A window's aggregate component behind the operators' [`AggregateFunction`].
pub(crate) struct WasmAggregate(weir_wasm::AggregateInstance);

/// Sorts an aggregate component's answer: its own error rejects the
/// input, a trap or limit fails the task.
pub(crate) fn aggregate_answer<T>(
    answer: weir_wasm::AggregateResult<T>,
) -> Result<T, weir_operators::AggregateCallError> {
    use weir_operators::AggregateCallError;
    match answer {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(message)) => Err(AggregateCallError::Rejected(message)),
        Err(e) => {
            use weir_operators::{CallFailure, CallFailureKind};
            let kind = match &e {
                weir_wasm::WasmError::Trap { kind, .. } => match kind {
                    weir_wasm::TrapKind::Trap => CallFailureKind::Trap,
                    weir_wasm::TrapKind::Timeout => CallFailureKind::Timeout,
                    weir_wasm::TrapKind::MemoryLimit => CallFailureKind::MemoryLimit,
                    weir_wasm::TrapKind::HostError => CallFailureKind::UdfError,
                },
                _ => CallFailureKind::UdfError,
            };
            Err(AggregateCallError::Failed(CallFailure::new(
                kind,
                e.to_string(),
            )))
        }
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
pub(crate) fn limits_of(spec: &OperatorSpec) -> InstanceLimits {
    InstanceLimits {
        memory_bytes: (spec.memory_mib as usize) << 20,
        call_timeout: Duration::from_millis(spec.call_timeout_ms),
        log_lines_per_second: spec.log_lines_per_second,
        grants: weir_wasm::sandbox::Grants::of(&spec.grants),
        outputs: weir_wasm::OutputLimits {
            max_outputs: usize::try_from(spec.max_outputs_per_call).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(spec.max_output_bytes_per_call).unwrap_or(usize::MAX),
            max_key_bytes: usize::try_from(spec.max_key_bytes).unwrap_or(usize::MAX),
            max_side_outputs: usize::try_from(spec.max_side_outputs_per_call).unwrap_or(usize::MAX),
        },
    }
}

/// What a component's `open` learns about its subtask.
fn subtask_info(descriptor: &TaskDeploymentDescriptor, spec: &OperatorSpec) -> SubtaskInfo {
    SubtaskInfo {
        operator_id: spec.id.clone(),
        index: descriptor.task.index,
        parallelism: descriptor.parallelism,
        max_parallelism: u32::from(descriptor.max_parallelism),
        attempt: descriptor.attempt,
    }
}

/// The operator's `config` as JSON text (`{}` when absent).
pub(crate) fn config_json(spec: &OperatorSpec) -> String {
    spec.config
        .as_ref()
        .map_or_else(|| "{}".to_string(), |c| c.to_string())
}

/// The chained operators and sinks of `descriptor`'s subtask, opened.
///
/// # Errors
/// A task failure naming the vertex whose component, state or sink could
/// not be set up (its kind kept: a trap in `open` is a trap).
pub(crate) fn build_ops<'d>(
    shared: &JobShared,
    descriptor: &'d TaskDeploymentDescriptor,
) -> Result<Vec<ChainedOp<'d>>, Stop> {
    let components = &shared.components;
    let index = descriptor.task.index;
    let mut ops = Vec::new();
    for vertex in &descriptor.chain {
        let fail_as = |kind: TaskFailureKind, message: String| {
            Stop::Failed(JobError::Task {
                vertex: vertex.id.clone(),
                index,
                parallelism: descriptor.parallelism,
                origin: None,
                kind,
                message,
            })
        };
        let fail = |message: String| fail_as(TaskFailureKind::Io, message);
        let wasm_fail =
            |e: weir_wasm::WasmError| fail_as(crate::failure_kind_of_wasm(&e), e.to_string());
        match &vertex.spec {
            VertexSpec::Source(_) => {}
            VertexSpec::Operator(spec) => match spec.role() {
                OperatorRole::Udf(_) => {
                    let Some(Component::Operator(component)) = components.get(&spec.id) else {
                        return Err(fail("component not loaded".into()));
                    };
                    let state = if vertex.keyed {
                        let limits = weir_state::StateLimits {
                            max_value_bytes: spec.max_state_value_bytes,
                            max_pending_bytes: spec.max_pending_state_bytes,
                            max_timers: spec.max_timers,
                            max_timers_per_key: spec.max_timers_per_key,
                        };
                        Some(
                            open_state(shared, descriptor, &spec.id)
                                .map_err(fail)?
                                .with_limits(limits),
                        )
                    } else {
                        None
                    };
                    let mut instance = component
                        .instantiate(task_name(&spec.id, index), state, limits_of(spec))
                        .map_err(wasm_fail)?;
                    instance
                        .open(&subtask_info(descriptor, spec), &config_json(spec))
                        .map_err(wasm_fail)?;
                    ops.push(ChainedOp::Udf(Box::new(UdfOp {
                        spec,
                        instance,
                        max_batch: descriptor.batch_size.max(1),
                    })));
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
                                    &subtask_info(descriptor, spec),
                                    &config_json(spec),
                                    limits_of(spec),
                                )
                                .map_err(wasm_fail)?;
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
            VertexSpec::Sink(spec) => {
                let sink: Box<dyn Sink> = match &spec.kind {
                    SinkKind::File {
                        path,
                        fail_after_records,
                    } => {
                        // This subtask's part of the directory, put in
                        // order where the subtask runs.
                        let start = descriptor
                            .restore
                            .as_ref()
                            .map_or(SinkStart::Fresh, |r| SinkStart::Restore(r.checkpoint));
                        prepare_file_sink_part(path, start, index, descriptor.parallelism)
                            .map_err(|e| fail(e.to_string()))?;
                        let file: Box<dyn Sink> = if shared.storage.is_some() {
                            Box::new(FileSink::transactional(path, index))
                        } else {
                            Box::new(
                                FileSink::create(path, index).map_err(|e| fail(e.to_string()))?,
                            )
                        };
                        match fail_after_records {
                            Some(limit) if descriptor.attempt == 0 => {
                                Box::new(FailAfter::new(file, *limit, path))
                            }
                            _ => file,
                        }
                    }
                    SinkKind::Stdout => Box::new(StdoutSink),
                    SinkKind::Blackhole => Box::new(BlackholeSink),
                };
                // JSON lines: what a UDF wrote is checked before it lands.
                let sink: Box<dyn Sink> = match &spec.kind {
                    SinkKind::Blackhole => sink,
                    _ => Box::new(CheckedJson::new(sink, &spec.id, &spec.input.from)),
                };
                ops.push(ChainedOp::Sink { sink, id: &spec.id });
            }
        }
    }
    Ok(ops)
}

/// Opens the keyed state of operator `operator` in `descriptor`'s
/// subtask: an empty backend of the job's kind (a RocksDB database under
/// the state directory), scoped to the subtask's key groups.
///
/// # Errors
/// A message when the directory or database cannot be created.
pub(crate) fn open_state(
    shared: &JobShared,
    descriptor: &TaskDeploymentDescriptor,
    operator: &str,
) -> Result<KeyedState, String> {
    let backend: Box<dyn StateBackend> = match descriptor.state_backend {
        StateBackendKind::Memory => Box::new(MemoryBackend::new()),
        StateBackendKind::Rocksdb => {
            let dir = shared
                .config
                .state_dir
                .join(format!("{operator}-{}", descriptor.task.index));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create state directory {}: {e}", dir.display()))?;
            Box::new(
                RocksDbBackend::open(Path::new(&dir), &shared.rocksdb)
                    .map_err(|e| e.to_string())?,
            )
        }
    };
    Ok(KeyedState::new(
        backend,
        descriptor.key_groups,
        descriptor.max_parallelism,
    ))
}
