//! One sandboxed instance of an operator component.

use std::fmt;
use std::time::Duration;

use sha2::Digest as _;
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, Func, ResourceTable};
use wasmtime_wasi::WasiCtxBuilder;
use weir_state::KeyedState;
use weir_types::{Bytes, Record};

use crate::bindings::Operator;
use crate::bindings::weir::operator::types as wit;
use crate::bindings_v0_1::weir::operator::types as wit_v0_1;
use crate::bindings_v0_2::weir::operator::types as wit_v0_2;
use crate::bindings_v0_3::weir::operator::types as wit_v0_3;
use crate::component::EPOCH_TICK;
use crate::component::Pre;
use crate::guest_output::{GuestLog, GuestStderr, RECORD_MARKER};
use crate::host::HostState;
use crate::output_limits::{OutputBudget, OutputLimitExceeded, OutputLimits};
use crate::{OperatorComponent, WasmError};
use weir_state::TimerDomain;

/// Which parallel instance this is (handed to the guest's `open`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubtaskInfo {
    /// The operator's id in the job file.
    pub operator_id: String,
    /// 0-based subtask index.
    pub index: u32,
    /// Number of subtasks of the operator.
    pub parallelism: u32,
    /// Number of key groups.
    pub max_parallelism: u32,
    /// Restart attempt (0 on the first run).
    pub attempt: u32,
}

/// Sandbox limits of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceLimits {
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Longest a single call (`open`, `process`, `close`) may run.
    pub call_timeout: Duration,
    /// Guest log lines (stderr lines and `logging.log` calls) logged per
    /// second at most; the others are dropped and counted.
    pub log_lines_per_second: u32,
    /// Clocks and randomness granted (default: deterministic stand-ins).
    pub grants: crate::sandbox::Grants,
    /// What one call may return ([`OutputLimits`]); more fails the task.
    pub outputs: OutputLimits,
}

/// A typed call's outputs, each taken into the call's budget, into a sink.
fn checked_sink<S: OutputSink, T>(
    outputs: Vec<T>,
    limits: OutputLimits,
    convert: impl Fn(T) -> Output,
) -> wasmtime::Result<S> {
    let mut budget = OutputBudget::new(limits);
    budget
        .check_count(outputs.len())
        .map_err(wasmtime::Error::new)?;
    let mut sink = S::with_capacity(outputs.len());
    for output in outputs {
        let output = convert(output);
        budget.take(&output).map_err(wasmtime::Error::new)?;
        sink.push(output);
    }
    Ok(sink)
}

impl Default for InstanceLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 64 << 20,
            call_timeout: Duration::from_secs(10),
            log_lines_per_second: crate::guest_output::DEFAULT_LOG_LINES_PER_SECOND,
            grants: crate::sandbox::Grants::default(),
            outputs: OutputLimits::default(),
        }
    }
}

/// One output of a `process` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// A record for the main output.
    Emit(Record),
    /// A record for a named side output.
    Side {
        /// The side output's name.
        output: String,
        /// The record.
        record: Record,
    },
    /// A per-record error.
    Error {
        /// Index of the input record in the batch.
        input: u32,
        /// The guest's message.
        message: String,
    },
}

/// The outputs of a `process` call sorted by kind, as the task uses them
/// (see [`OperatorInstance::process_sorted`]): filled in one pass over the
/// guest's outputs, with no intermediate [`Output`] per record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SortedOutputs {
    /// Records for the main output, in the guest's order.
    pub records: Vec<Record>,
    /// `(side output name, record)`, in the guest's order.
    pub side: Vec<(String, Record)>,
    /// `(input record index in the batch, message)` per-record errors.
    pub errors: Vec<(u32, String)>,
}

impl From<Vec<Output>> for SortedOutputs {
    fn from(outputs: Vec<Output>) -> Self {
        sink(outputs.into_iter())
    }
}

/// Where a call's outputs go: a `Vec<Output>` in the guest's order, or
/// [`SortedOutputs`].
trait OutputSink {
    fn with_capacity(records: usize) -> Self;
    fn push(&mut self, output: Output);
}

impl OutputSink for Vec<Output> {
    fn with_capacity(records: usize) -> Self {
        Vec::with_capacity(records)
    }
    fn push(&mut self, output: Output) {
        Vec::push(self, output);
    }
}

impl OutputSink for SortedOutputs {
    fn with_capacity(records: usize) -> Self {
        Self {
            records: Vec::with_capacity(records),
            ..Self::default()
        }
    }
    fn push(&mut self, output: Output) {
        match output {
            Output::Emit(record) => self.records.push(record),
            Output::Side { output, record } => self.side.push((output, record)),
            Output::Error { input, message } => self.errors.push((input, message)),
        }
    }
}

/// What stopped a guest call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapKind {
    /// A WebAssembly trap (a Rust panic, `unreachable`, out-of-bounds access...).
    Trap,
    /// The call ran longer than the call timeout.
    Timeout,
    /// The instance asked for more memory than its cap.
    MemoryLimit,
    /// A host import failed (for example keyed state on a non-keyed stream).
    HostError,
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrapKind::Trap => "the UDF trapped",
            TrapKind::Timeout => "the UDF exceeded its call timeout",
            TrapKind::MemoryLimit => "the UDF exceeded its memory limit",
            TrapKind::HostError => "a host call of the UDF failed",
        })
    }
}

/// A failed `process` call: the error, the batch given back, and the index
/// of the input record that was being processed when the guest said so
/// (the Rust SDK prints it from its panic hook).
#[derive(Debug)]
pub struct ProcessFailure {
    /// What went wrong.
    pub error: WasmError,
    /// The batch that was passed in.
    pub batch: Vec<Record>,
    /// Index into `batch` of the record being processed, when known.
    pub record_index: Option<usize>,
}

/// One instance of a component, for one subtask. Not reusable after a trap.
pub struct OperatorInstance {
    pub(crate) store: Store<HostState>,
    bindings: Bindings,
    deadline_ticks: u64,
    pub(crate) poisoned: bool,
    /// The packed batch of the last `process-packed` call, kept for its
    /// capacity.
    pub(crate) packed_batch: Vec<u8>,
    /// What replacing this instance with a fresh one takes
    /// ([`crate::recycle`]).
    pub(crate) recycler: crate::recycle::Recycler,
}

/// The instantiated exports, by `weir:operator` version.
enum Bindings {
    /// With `packed-handler.process-packed` when the component exports it.
    Current(Operator, Option<Func>),
    V0_3(crate::bindings_v0_3::Operator),
    V0_2(crate::bindings_v0_2::Operator),
    V0_1(crate::bindings_v0_1::Operator),
}

impl OperatorComponent {
    /// Instantiates the component in a fresh sandbox.
    ///
    /// `state` is the subtask's keyed state (`None` on a non-keyed stream:
    /// state calls then trap with a clear message).
    ///
    /// # Errors
    /// A trap or limit hit during instantiation.
    pub fn instantiate(
        &self,
        name: String,
        state: Option<KeyedState>,
        limits: InstanceLimits,
    ) -> Result<OperatorInstance, WasmError> {
        instantiate_pre(&self.pre, name, state, limits, None, 0)
    }
}

/// An instance of `pre` in a fresh sandbox; with `clock`, the guest's
/// clocks go on from an earlier instance's. `generation` counts the
/// instances it replaces (0 for the first; it seeds the guest's randomness).
pub(crate) fn instantiate_pre(
    pre: &Pre,
    name: String,
    state: Option<KeyedState>,
    limits: InstanceLimits,
    clock: Option<crate::sandbox::GuestClock>,
    generation: u64,
) -> Result<OperatorInstance, WasmError> {
    let recycler = crate::recycle::Recycler::new(pre.clone(), name.clone(), limits, generation);
    let (mut store, deadline_ticks) =
        new_store(pre.engine(), name, state, limits, clock, generation);
    let bindings = match pre {
        Pre::Current(pre, packed) => instantiate_current(&mut store, pre, packed.as_ref()),
        Pre::V0_3(pre) => pre.instantiate(&mut store).map(Bindings::V0_3),
        Pre::V0_2(pre) => pre.instantiate(&mut store).map(Bindings::V0_2),
        Pre::V0_1(pre) => pre.instantiate(&mut store).map(Bindings::V0_1),
    };
    let bindings = match bindings {
        Ok(b) => b,
        Err(e) => return Err(classify(&mut store, &e, limits.call_timeout)),
    };
    Ok(OperatorInstance {
        store,
        bindings,
        deadline_ticks,
        poisoned: false,
        packed_batch: Vec::new(),
        recycler,
    })
}

/// Instantiates a 0.4.0 component, with its `process-packed` export when
/// it has one (checked to have the type `func(list<u8>) -> list<u8>`).
fn instantiate_current(
    store: &mut Store<HostState>,
    pre: &crate::bindings::OperatorPre<HostState>,
    packed: Option<&ComponentExportIndex>,
) -> wasmtime::Result<Bindings> {
    let instance = pre.instance_pre().instantiate(&mut *store)?;
    let operator = Operator::new(&mut *store, &instance)?;
    let packed = match packed {
        None => None,
        Some(index) => {
            let func = instance
                .get_func(&mut *store, index)
                .ok_or_else(|| wasmtime::format_err!("process-packed is not a function"))?;
            func.typed::<(&[u8],), (Vec<u8>,)>(&*store)
                .map_err(|e| e.context("process-packed does not take and return list<u8>"))?;
            Some(func)
        }
    };
    Ok(Bindings::Current(operator, packed))
}

/// What a component's `open` receives (`weir:operator@0.4.0` types).
pub(crate) fn wit_context(subtask: &SubtaskInfo, config_json: &str) -> wit::Context {
    wit::Context {
        subtask: wit::SubtaskInfo {
            operator_id: subtask.operator_id.clone(),
            index: subtask.index,
            parallelism: subtask.parallelism,
            max_parallelism: subtask.max_parallelism,
            attempt: subtask.attempt,
        },
        config: config_json.to_string(),
    }
}

/// A locked-down sandbox for one instance: no preopens, no network, no
/// stdin, stdout discarded, stderr kept within bounds, clocks and
/// randomness deterministic unless granted ([`crate::sandbox`]); the
/// memory cap and the call deadline (in epoch ticks, returned) armed.
pub(crate) fn new_store(
    engine: &wasmtime::Engine,
    name: String,
    state: Option<KeyedState>,
    limits: InstanceLimits,
    clock: Option<crate::sandbox::GuestClock>,
    generation: u64,
) -> (Store<HostState>, u64) {
    let clock = clock.unwrap_or_else(|| crate::sandbox::GuestClock::new(limits.grants));
    // A replacement instance (`recycle.rs`) must not repeat its
    // predecessor's random numbers.
    let seed_name = match generation {
        0 => name.clone(),
        n => format!("{name}/replacement-{n}"),
    };
    let output_limits = limits.outputs;
    let mut builder = WasiCtxBuilder::new();
    builder
        .monotonic_clock(clock.clone())
        .wall_clock(crate::sandbox::GuestWallClock(clock.clone()));
    if !limits.grants.random {
        let seed = u128::from_le_bytes(
            sha2::Sha256::digest(seed_name.as_bytes())[..16]
                .try_into()
                .unwrap_or_default(),
        );
        builder
            .secure_random(crate::sandbox::seeded_random(&seed_name))
            .insecure_random(crate::sandbox::seeded_random(&format!(
                "{seed_name}/insecure"
            )))
            .insecure_random_seed(seed);
    }
    let log = std::sync::Arc::new(std::sync::Mutex::new(GuestLog::new(
        name,
        limits.log_lines_per_second,
    )));
    let stderr = GuestStderr::new(std::sync::Arc::clone(&log));
    let wasi = builder
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .build();
    let host = HostState {
        wasi,
        table: ResourceTable::new(),
        stderr,
        log,
        state,
        memory_limit_bytes: limits.memory_bytes,
        memory_limit_hit: false,
        memory_bytes: 0,
        host_error: None,
        watermark: i64::MIN,
        clock,
        call_timeout: limits.call_timeout,
        output_limits,
    };
    let mut store = Store::new(engine, host);
    store.limiter(|s| s);
    store.epoch_deadline_trap();
    let deadline_ticks = (limits.call_timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
    store.set_epoch_deadline(deadline_ticks);
    (store, deadline_ticks)
}

impl OperatorInstance {
    fn begin_call(&mut self) -> Result<(), WasmError> {
        if self.poisoned {
            return Err(WasmError::Trap {
                kind: TrapKind::Trap,
                message: "instance is unusable after an earlier trap".into(),
            });
        }
        self.store.set_epoch_deadline(self.deadline_ticks);
        if let Some(state) = self.store.data_mut().state.as_mut() {
            state.clear_current_key();
        }
        Ok(())
    }

    fn timeout(&self) -> Duration {
        EPOCH_TICK * self.deadline_ticks as u32
    }

    fn fail(&mut self, e: &wasmtime::Error) -> WasmError {
        self.poisoned = true;
        let timeout = self.timeout();
        classify(&mut self.store, e, timeout)
    }

    /// Calls the guest's `open`.
    ///
    /// # Errors
    /// [`WasmError::Guest`] when `open` returns an error, [`WasmError::Trap`] on a trap.
    pub fn open(&mut self, subtask: &SubtaskInfo, config_json: &str) -> Result<(), WasmError> {
        self.begin_call()?;
        let ctx = wit_context(subtask, config_json);
        let result = match &self.bindings {
            Bindings::Current(b, _) => b.weir_operator_handler().call_open(&mut self.store, &ctx),
            Bindings::V0_3(b) => b
                .weir_operator_handler()
                .call_open(&mut self.store, &v0_3::context(&ctx)),
            Bindings::V0_2(b) => b
                .weir_operator_handler()
                .call_open(&mut self.store, &v0_2::context(&ctx)),
            Bindings::V0_1(b) => b
                .weir_operator_handler()
                .call_open(&mut self.store, &v0_1::context(&ctx)),
        };
        match result {
            Ok(Ok(())) => {
                self.flush_state().map_err(|e| self.fail(&e))?;
                self.recycler
                    .opened(subtask, config_json, self.store.data().memory_bytes);
                Ok(())
            }
            Ok(Err(message)) => Err(WasmError::Guest {
                phase: "open",
                message,
            }),
            Err(e) => Err(self.fail(&e)),
        }
    }

    /// Calls the guest's `process` with one batch.
    ///
    /// # Errors
    /// A [`ProcessFailure`] holding the batch when the guest traps or hits a limit.
    pub fn process(&mut self, batch: Vec<Record>) -> Result<Vec<Output>, Box<ProcessFailure>> {
        self.process_into(batch)
    }

    /// [`Self::process`] with the outputs sorted by kind ([`SortedOutputs`]),
    /// as the task forwards them: cheaper per record than a `Vec<Output>`.
    ///
    /// # Errors
    /// As [`Self::process`].
    pub fn process_sorted(
        &mut self,
        batch: Vec<Record>,
    ) -> Result<SortedOutputs, Box<ProcessFailure>> {
        self.process_into(batch)
    }

    fn process_into<S: OutputSink>(
        &mut self,
        batch: Vec<Record>,
    ) -> Result<S, Box<ProcessFailure>> {
        if let Err(error) = self.recycle_if_bloated().and_then(|()| self.begin_call()) {
            return Err(Box::new(ProcessFailure {
                error,
                batch,
                record_index: None,
            }));
        }
        let max = self.store.data().output_limits;
        let result = match &self.bindings {
            Bindings::Current(_, Some(packed)) => {
                call_packed(&mut self.store, *packed, &batch, &mut self.packed_batch)
            }
            Bindings::Current(b, None) => b
                .weir_operator_handler()
                .call_process(&mut self.store, &wit_records(&batch))
                .and_then(|outputs| checked_sink(outputs, max, from_wit)),
            Bindings::V0_3(b) => b
                .weir_operator_handler()
                .call_process(&mut self.store, &v0_3::records(&batch))
                .and_then(|outputs| checked_sink(outputs, max, v0_3::output)),
            Bindings::V0_2(b) => b
                .weir_operator_handler()
                .call_process(&mut self.store, &v0_2::records(&batch))
                .and_then(|outputs| checked_sink(outputs, max, v0_2::output)),
            Bindings::V0_1(b) => b
                .weir_operator_handler()
                .call_process(&mut self.store, &v0_1::records(&batch))
                .and_then(|outputs| checked_sink(outputs, max, v0_1::output)),
        }
        .inspect_err(|e| {
            if let Some(limit) = e.downcast_ref::<OutputLimitExceeded>() {
                self.store.data_mut().host_error = Some(limit.0.clone());
            }
        })
        .and_then(|outputs| {
            self.flush_state()?;
            Ok(outputs)
        });
        match result {
            Ok(outputs) => Ok(outputs),
            Err(e) => {
                let error = self.fail(&e);
                let record_index = self.guest_record_index().filter(|i| *i < batch.len());
                Err(Box::new(ProcessFailure {
                    error,
                    batch,
                    record_index,
                }))
            }
        }
    }

    /// Calls the guest's `close`.
    ///
    /// # Errors
    /// [`WasmError::Guest`] when `close` returns an error, [`WasmError::Trap`] on a trap.
    pub fn close(&mut self) -> Result<(), WasmError> {
        self.begin_call()?;
        let result = match &self.bindings {
            Bindings::Current(b, _) => b.weir_operator_handler().call_close(&mut self.store),
            Bindings::V0_3(b) => b.weir_operator_handler().call_close(&mut self.store),
            Bindings::V0_2(b) => b.weir_operator_handler().call_close(&mut self.store),
            Bindings::V0_1(b) => b.weir_operator_handler().call_close(&mut self.store),
        };
        match result {
            Ok(Ok(())) => self.flush_state().map_err(|e| self.fail(&e)),
            Ok(Err(message)) => Err(WasmError::Guest {
                phase: "close",
                message,
            }),
            Err(e) => Err(self.fail(&e)),
        }
    }

    /// Sets the watermark guests read through `timers.current-watermark`.
    pub fn set_watermark(&mut self, watermark: i64) {
        self.store.data_mut().watermark = watermark;
    }

    /// Fires the due timers of `domain` (timestamp at most `up_to`, in
    /// `(timestamp, key)` order, including timers registered while firing)
    /// by calling the guest's `on-timer`, and returns all outputs.
    ///
    /// # Errors
    /// [`WasmError::Trap`] when the guest traps or hits a limit; a state
    /// failure.
    pub fn fire_timers(
        &mut self,
        domain: TimerDomain,
        up_to: i64,
    ) -> Result<Vec<Output>, WasmError> {
        self.recycle_if_bloated()?;
        self.begin_call()?;
        let mut outputs = Vec::new();
        loop {
            let due = match self.store.data_mut().state.as_mut() {
                Some(state) => state.pop_due_timer(domain, up_to),
                None => return Ok(outputs),
            };
            let (timestamp, key) = match due {
                Ok(Some(due)) => due,
                // State writes of all the calls end as one call's.
                Ok(None) => {
                    return self
                        .flush_state()
                        .map(|()| outputs)
                        .map_err(|e| self.fail(&e));
                }
                Err(e) => {
                    let kind = match e {
                        weir_state::StateError::LimitExceeded { .. } => TrapKind::HostError,
                        _ => TrapKind::Trap,
                    };
                    return Err(WasmError::Trap {
                        kind,
                        message: e.to_string(),
                    });
                }
            };
            self.store.set_epoch_deadline(self.deadline_ticks);
            let wit_domain = match domain {
                TimerDomain::EventTime => wit::TimeDomain::EventTime,
                TimerDomain::ProcessingTime => wit::TimeDomain::ProcessingTime,
            };
            let result = match &self.bindings {
                Bindings::Current(b, _) => b
                    .weir_operator_handler()
                    .call_on_timer(&mut self.store, &key, timestamp, wit_domain)
                    .map(|out| out.into_iter().map(from_wit).collect()),
                Bindings::V0_3(b) => b
                    .weir_operator_handler()
                    .call_on_timer(&mut self.store, &key, timestamp, wit_domain.into())
                    .map(|out| out.into_iter().map(v0_3::output).collect::<Vec<_>>()),
                Bindings::V0_2(b) => b
                    .weir_operator_handler()
                    .call_on_timer(&mut self.store, &key, timestamp, wit_domain.into())
                    .map(|out| out.into_iter().map(v0_2::output).collect::<Vec<_>>()),
                // A 0.1.0 component cannot register timers.
                Bindings::V0_1(_) => Ok(Vec::new()),
            };
            let limits = self.store.data().output_limits;
            match result.and_then(|out: Vec<Output>| {
                let mut budget = OutputBudget::new(limits);
                for output in &out {
                    budget.take(output).map_err(wasmtime::Error::new)?;
                }
                Ok(out)
            }) {
                Ok(out) => outputs.extend(out),
                Err(e) => {
                    if let Some(limit) = e.downcast_ref::<OutputLimitExceeded>() {
                        self.store.data_mut().host_error = Some(limit.0.clone());
                    }
                    return Err(self.fail(&e));
                }
            }
            // The pending-writes limit is per call: a long firing pass
            // applies its writes when they pass half of it.
            let flush = self
                .store
                .data()
                .state
                .as_ref()
                .is_some_and(|s| s.pending_bytes() > s.limits().max_pending_bytes / 2);
            if flush && let Err(e) = self.flush_state() {
                return Err(self.fail(&e));
            }
            // A long round may grow a leaky guest past its limit.
            self.recycle_if_bloated()?;
        }
    }

    /// The earliest registered timer of `domain` (ms), if any.
    pub fn next_timer(&self, domain: TimerDomain) -> Option<i64> {
        self.store
            .data()
            .state
            .as_ref()
            .and_then(|s| s.next_timer(domain))
            .map(|(ts, _)| ts)
    }

    /// Ends the guest call for keyed state: its write-back buffer is
    /// applied to the backend once it passes its budget
    /// ([`KeyedState::end_call`]).
    fn flush_state(&mut self) -> wasmtime::Result<()> {
        let data = self.store.data_mut();
        if let Some(state) = data.state.as_mut()
            && let Err(e) = state.end_call()
        {
            data.host_error = Some(e.to_string());
            wasmtime::bail!("{e}");
        }
        Ok(())
    }

    /// The guest's operator state at checkpoint `checkpoint` (its
    /// `snapshot-state`, `weir:operator@0.3.0`): a list of items; empty
    /// for older components, which have none.
    ///
    /// # Errors
    /// [`WasmError::Guest`] when the guest returns an error (the
    /// checkpoint is declined), [`WasmError::Trap`] on a trap.
    pub fn snapshot_state(&mut self, checkpoint: u64) -> Result<Vec<Vec<u8>>, WasmError> {
        self.begin_call()?;
        let result = match &self.bindings {
            Bindings::Current(b, _) => b
                .weir_operator_checkpointed()
                .call_snapshot_state(&mut self.store, checkpoint),
            Bindings::V0_3(b) => b
                .weir_operator_checkpointed()
                .call_snapshot_state(&mut self.store, checkpoint),
            Bindings::V0_2(_) | Bindings::V0_1(_) => return Ok(Vec::new()),
        };
        match result {
            Ok(Ok(items)) => {
                self.recycler.checkpointed(checkpoint);
                Ok(items)
            }
            Ok(Err(message)) => Err(WasmError::Guest {
                phase: "snapshot-state",
                message,
            }),
            Err(e) => Err(self.fail(&e)),
        }
    }

    /// Gives operator state back to the guest (its `restore-state`,
    /// `weir:operator@0.3.0`), after `open` and before the first batch.
    /// Older components cannot take state: they never returned any.
    ///
    /// # Errors
    /// [`WasmError::Guest`] when the guest returns an error,
    /// [`WasmError::Trap`] on a trap.
    pub fn restore_state(&mut self, items: Vec<Vec<u8>>) -> Result<(), WasmError> {
        self.begin_call()?;
        let result = match &self.bindings {
            Bindings::Current(b, _) => b
                .weir_operator_checkpointed()
                .call_restore_state(&mut self.store, &items),
            Bindings::V0_3(b) => b
                .weir_operator_checkpointed()
                .call_restore_state(&mut self.store, &items),
            Bindings::V0_2(_) | Bindings::V0_1(_) => return Ok(()),
        };
        match result {
            Ok(Ok(())) => self.flush_state().map_err(|e| self.fail(&e)),
            Ok(Err(message)) => Err(WasmError::Guest {
                phase: "restore-state",
                message,
            }),
            Err(e) => Err(self.fail(&e)),
        }
    }

    /// The subtask's keyed state (`None` on a non-keyed stream), for
    /// checkpoints and restores between calls.
    pub fn state_mut(&mut self) -> Option<&mut KeyedState> {
        self.store.data_mut().state.as_mut()
    }

    /// Takes the keyed state back (for example to inspect it after a run).
    pub fn take_state(&mut self) -> Option<KeyedState> {
        self.store.data_mut().state.take()
    }

    /// The index the guest SDK printed before panicking, if any.
    fn guest_record_index(&self) -> Option<usize> {
        let stderr = self.store.data().stderr.tail();
        let text = String::from_utf8_lossy(&stderr);
        let at = text.rfind(RECORD_MARKER)?;
        let digits: String = text[at + RECORD_MARKER.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }
}

/// Calls `process-packed` with `batch` packed into `buffer` (reused for
/// its capacity) and unpacks the outputs.
fn call_packed<S: OutputSink>(
    store: &mut Store<HostState>,
    func: Func,
    batch: &[Record],
    buffer: &mut Vec<u8>,
) -> wasmtime::Result<S> {
    buffer.clear();
    for record in batch {
        weir_abi::write_record(
            buffer,
            record.key.as_deref(),
            &record.value,
            record.timestamp,
        );
    }
    let process = func.typed::<(&[u8],), (Vec<u8>,)>(&*store)?;
    let (packed,) = process.call(&mut *store, (buffer.as_slice(),))?;
    let limits = store.data().output_limits;
    unpack_outputs(packed.into(), batch.len(), limits).map_err(|e| {
        let message = match e {
            Unpack::Format(e) => format!("process-packed returned a {e}"),
            Unpack::Limit(e) => e.0,
        };
        store.data_mut().host_error = Some(message.clone());
        wasmtime::format_err!(message)
    })
}

/// Why a packed output buffer was not taken.
enum Unpack {
    Format(weir_abi::FormatError),
    Limit(OutputLimitExceeded),
}

/// The outputs of a packed output buffer (`inputs` records went in: room
/// for as many records out is reserved). Record values are slices of
/// `packed` (no copy each); keys, names and messages are copied. On an
/// error nothing is returned, so a malformed buffer emits nothing.
fn unpack_outputs<S: OutputSink>(
    packed: Bytes,
    inputs: usize,
    limits: OutputLimits,
) -> Result<S, Unpack> {
    let owned = |r: weir_abi::RecordRef<'_>| Record {
        key: r.key.map(<[u8]>::to_vec),
        value: packed.slice_ref(r.value),
        timestamp: r.timestamp,
    };
    let mut outputs = S::with_capacity(inputs);
    let mut budget = OutputBudget::new(limits);
    for output in weir_abi::outputs(&packed) {
        let output = match output.map_err(Unpack::Format)? {
            weir_abi::OutputRef::Emit(r) => Output::Emit(owned(r)),
            weir_abi::OutputRef::Side { output, record } => Output::Side {
                output: output.to_string(),
                record: owned(record),
            },
            weir_abi::OutputRef::Error { input, message } => Output::Error {
                input,
                message: message.to_string(),
            },
        };
        budget.take(&output).map_err(Unpack::Limit)?;
        outputs.push(output);
    }
    Ok(outputs)
}

/// Collects a typed call's outputs into a sink.
fn sink<S: OutputSink>(outputs: impl ExactSizeIterator<Item = Output>) -> S {
    let mut sink = S::with_capacity(outputs.len());
    for output in outputs {
        sink.push(output);
    }
    sink
}

/// A batch as the typed `process` takes it (copies of the records).
fn wit_records(batch: &[Record]) -> Vec<wit::StreamRecord> {
    batch
        .iter()
        .map(|r| wit::StreamRecord {
            key: r.key.clone(),
            value: r.value.to_vec(),
            timestamp: r.timestamp,
        })
        .collect()
}

fn from_wit(output: wit::Output) -> Output {
    let record = |r: wit::StreamRecord| Record {
        key: r.key,
        value: r.value.into(),
        timestamp: r.timestamp,
    };
    match output {
        wit::Output::Emit(r) => Output::Emit(record(r)),
        wit::Output::Side(s) => Output::Side {
            output: s.output,
            record: record(s.record),
        },
        wit::Output::Error(e) => Output::Error {
            input: e.input,
            message: e.message,
        },
    }
}

/// Conversions between the current WIT types and those of an older
/// `weir:operator` version (the same shapes under another package).
macro_rules! older_version {
    ($module:ident, $wit:ident) => {
        pub(crate) mod $module {
            use super::{Output, Record, wit, $wit};

            pub(crate) fn context(ctx: &wit::Context) -> $wit::Context {
                $wit::Context {
                    subtask: $wit::SubtaskInfo {
                        operator_id: ctx.subtask.operator_id.clone(),
                        index: ctx.subtask.index,
                        parallelism: ctx.subtask.parallelism,
                        max_parallelism: ctx.subtask.max_parallelism,
                        attempt: ctx.subtask.attempt,
                    },
                    config: ctx.config.clone(),
                }
            }

            pub(super) fn records(records: &[Record]) -> Vec<$wit::StreamRecord> {
                records
                    .iter()
                    .map(|r| $wit::StreamRecord {
                        key: r.key.clone(),
                        value: r.value.to_vec(),
                        timestamp: r.timestamp,
                    })
                    .collect()
            }

            pub(super) fn output(output: $wit::Output) -> Output {
                let record = |r: $wit::StreamRecord| Record {
                    key: r.key,
                    value: r.value.into(),
                    timestamp: r.timestamp,
                };
                match output {
                    $wit::Output::Emit(r) => Output::Emit(record(r)),
                    $wit::Output::Side(s) => Output::Side {
                        output: s.output,
                        record: record(s.record),
                    },
                    $wit::Output::Error(e) => Output::Error {
                        input: e.input,
                        message: e.message,
                    },
                }
            }
        }
    };
}

older_version!(v0_1, wit_v0_1);
older_version!(v0_2, wit_v0_2);
older_version!(v0_3, wit_v0_3);

/// Turns a wasmtime error into a [`WasmError::Trap`] of the right kind, with
/// the tail of the guest's stderr (where a Rust panic message lands).
pub(crate) fn classify(
    store: &mut Store<HostState>,
    e: &wasmtime::Error,
    timeout: Duration,
) -> WasmError {
    let data = store.data_mut();
    if data.memory_limit_hit {
        return WasmError::Trap {
            kind: TrapKind::MemoryLimit,
            message: format!("limit is {} MiB", data.memory_limit_bytes >> 20),
        };
    }
    if let Some(message) = data.host_error.take() {
        return WasmError::Trap {
            kind: TrapKind::HostError,
            message,
        };
    }
    if matches!(
        e.downcast_ref::<wasmtime::Trap>(),
        Some(wasmtime::Trap::Interrupt)
    ) {
        return WasmError::Trap {
            kind: TrapKind::Timeout,
            message: format!("limit is {} ms", timeout.as_millis()),
        };
    }
    let stderr = data.stderr.tail();
    let guest_said = crate::guest_output::sanitize_lines(&String::from_utf8_lossy(&stderr));
    let guest_said: Vec<&str> = guest_said
        .lines()
        .filter(|l| {
            !l.starts_with(RECORD_MARKER) && !l.contains("RUST_BACKTRACE") && !l.trim().is_empty()
        })
        .collect();
    let tail = guest_said[guest_said.len().saturating_sub(3)..].join(" / ");
    let trap = e
        .downcast_ref::<wasmtime::Trap>()
        .map(|t| t.to_string())
        .unwrap_or_else(|| e.root_cause().to_string());
    let message = if tail.is_empty() {
        trap
    } else {
        format!("{tail} ({trap})")
    };
    WasmError::Trap {
        kind: TrapKind::Trap,
        message,
    }
}
