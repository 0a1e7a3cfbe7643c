//! The operators a subtask runs in its chain, behind one interface: a
//! batch in (tagged with the input it came from), records out on the main
//! output and on named side outputs; watermarks, the wall clock and the end
//! of input as further events.

use std::path::Path;

use weir_checkpoint::CheckpointStorage;
use weir_connectors::Sink;
use weir_operators::{OperatorOutput, WindowOperator};
use weir_state::TimerDomain;
use weir_types::KeyGroupRange;
use weir_types::jobgraph::{OnError, OperatorSpec};
use weir_types::keygroup::key_group_of;
use weir_types::{Batch, Bytes, Origin, Record};
use weir_wasm::{OperatorInstance, SortedOutputs};

use crate::TaskFailureKind;
use crate::clock::wall_clock_ms;
use crate::context::JobShared;
use crate::incremental::{IncrementalHandle, SharedFile, download};
use crate::snapshot::OperatorState;
use crate::snapshot::RestoreError;

/// What an operator emitted: records for the main output (with origins),
/// `(side output, record)` pairs, and the input records its UDF rejected.
#[derive(Default)]
pub(crate) struct Emitted {
    pub(crate) main: Batch,
    pub(crate) side: Vec<(String, Record)>,
    pub(crate) rejected: Vec<Rejected>,
}

impl Emitted {
    /// Appends what a call on a part of a batch emitted, the part starting
    /// at record `first` of the batch: rejections' indices become indices
    /// into the whole batch.
    fn append(&mut self, part: Emitted, first: usize) {
        for (record, origin) in part.main.records.into_iter().zip(part.main.origins) {
            self.main.push(record, origin);
        }
        self.side.extend(part.side);
        self.rejected
            .extend(part.rejected.into_iter().map(|r| Rejected {
                input: u32::try_from(first + r.input as usize).unwrap_or(u32::MAX),
                ..r
            }));
    }
}

/// An input record a UDF rejected with a per-record error; the subtask
/// applies the operator's `on_error`.
pub(crate) struct Rejected {
    /// Where it came from (`None`: a timer, or a record without origin).
    pub(crate) origin: Option<Origin>,
    /// The input's index in its batch.
    pub(crate) input: u32,
    /// Its value, kept when the operator dead-letters.
    pub(crate) record: Option<Bytes>,
    /// The UDF's message.
    pub(crate) message: String,
}

/// An operator failed.
#[derive(Debug)]
pub(crate) struct OpFailure {
    /// The input record or span being processed, when known.
    pub(crate) origin: Option<String>,
    /// What kind of failure.
    pub(crate) kind: TaskFailureKind,
    /// What happened.
    pub(crate) message: String,
}

impl OpFailure {
    /// A failure of `kind` with no known input record.
    pub(crate) fn new(kind: TaskFailureKind, message: String) -> Self {
        Self {
            origin: None,
            kind,
            message,
        }
    }
}

/// A vertex chained in a subtask.
pub(crate) enum ChainedOp<'a> {
    /// A Wasm UDF.
    Udf(Box<UdfOp<'a>>),
    /// A built-in window aggregation.
    Window {
        spec: &'a OperatorSpec,
        op: Box<WindowOperator>,
    },
    /// A built-in join of two inputs.
    Join {
        spec: &'a OperatorSpec,
        op: Box<weir_operators::JoinOperator>,
    },
    /// Several inputs merged: records pass through.
    Union { spec: &'a OperatorSpec },
    /// A sink; emits nothing.
    Sink { sink: Box<dyn Sink>, id: &'a str },
}

/// A Wasm UDF instance and its operator spec.
pub(crate) struct UdfOp<'a> {
    pub(crate) spec: &'a OperatorSpec,
    pub(crate) instance: OperatorInstance,
    /// The job's `batch_size`: the most records one `process` call gets.
    pub(crate) max_batch: usize,
}

impl ChainedOp<'_> {
    /// The vertex id.
    pub(crate) fn id(&self) -> &str {
        match self {
            ChainedOp::Udf(u) => &u.spec.id,
            ChainedOp::Window { spec, .. }
            | ChainedOp::Join { spec, .. }
            | ChainedOp::Union { spec } => &spec.id,
            ChainedOp::Sink { id, .. } => id,
        }
    }

    /// Runs a batch that arrived on input `input` (0 unless the operator
    /// has several inputs).
    pub(crate) fn process(
        &mut self,
        shared: &JobShared,
        input: usize,
        batch: Batch,
    ) -> Result<Emitted, OpFailure> {
        match self {
            ChainedOp::Udf(udf) if batch.len() > udf.max_batch => {
                process_udf_in_parts(shared, udf, batch)
            }
            ChainedOp::Udf(udf) => process_udf(shared, udf, batch),
            ChainedOp::Window { spec, op } => {
                let mut out = OperatorOutput::default();
                let origins = batch.origins;
                op.process(batch.records, wall_clock_ms(), &mut out);
                builtin_output(shared, spec, &origins, out)
            }
            ChainedOp::Join { spec, op } => {
                let mut out = OperatorOutput::default();
                let origins = batch.origins;
                op.process(input, batch.records, &mut out);
                builtin_output(shared, spec, &origins, out)
            }
            ChainedOp::Union { .. } => Ok(Emitted {
                main: batch,
                ..Emitted::default()
            }),
            ChainedOp::Sink { sink, .. } => {
                sink.write(&batch.records).map_err(|e| {
                    // Malformed output is bad data from upstream, not I/O.
                    let kind = match e {
                        weir_connectors::ConnectorError::NotJson { .. } => TaskFailureKind::BadData,
                        _ => TaskFailureKind::Io,
                    };
                    OpFailure::new(kind, e.to_string())
                })?;
                shared.metrics().add_written(batch.len());
                Ok(Emitted::default())
            }
        }
    }

    /// The operator's input watermark advanced to `watermark`.
    pub(crate) fn on_watermark(
        &mut self,
        shared: &JobShared,
        watermark: i64,
    ) -> Result<Emitted, OpFailure> {
        let mut out = OperatorOutput::default();
        Ok(match self {
            ChainedOp::Udf(udf) => {
                udf.instance.set_watermark(watermark);
                fire_udf_timers(udf, TimerDomain::EventTime, watermark)?
            }
            ChainedOp::Window { spec, op } => {
                op.on_watermark(watermark, &mut out);
                builtin_output(shared, spec, &[], out)?
            }
            ChainedOp::Join { spec, op } => {
                op.on_watermark(watermark, &mut out);
                builtin_output(shared, spec, &[], out)?
            }
            _ => Emitted::default(),
        })
    }

    /// The wall clock reads `now_ms`: fires processing-time windows.
    pub(crate) fn on_processing_time(
        &mut self,
        shared: &JobShared,
        now_ms: i64,
    ) -> Result<Emitted, OpFailure> {
        Ok(match self {
            ChainedOp::Udf(udf)
                if udf
                    .instance
                    .next_timer(TimerDomain::ProcessingTime)
                    .is_some_and(|t| t <= now_ms) =>
            {
                fire_udf_timers(udf, TimerDomain::ProcessingTime, now_ms)?
            }
            ChainedOp::Window { spec, op }
                if op.next_processing_timer().is_some_and(|t| t <= now_ms) =>
            {
                let mut out = OperatorOutput::default();
                op.on_processing_time(now_ms, &mut out);
                builtin_output(shared, spec, &[], out)?
            }
            _ => Emitted::default(),
        })
    }

    /// The input ended: emits what is still pending (processing-time
    /// windows and timers fire, so a bounded job loses nothing).
    pub(crate) fn end_of_input(&mut self, shared: &JobShared) -> Result<Emitted, OpFailure> {
        Ok(match self {
            ChainedOp::Udf(udf) => fire_udf_timers(udf, TimerDomain::ProcessingTime, i64::MAX)?,
            ChainedOp::Window { spec, op } => {
                let mut out = OperatorOutput::default();
                op.end_of_input(&mut out);
                builtin_output(shared, spec, &[], out)?
            }
            _ => Emitted::default(),
        })
    }

    /// The operator's state for checkpoint `checkpoint` (`None`: it has
    /// none): the synchronous phase. Keyed state on a backend with a
    /// native format is checkpointed into `native_dir` when one is given
    /// (incremental checkpoints), else copied whole. A sink seals its
    /// output so far (two-phase commit).
    ///
    /// # Errors
    /// A message when the state cannot be taken; the checkpoint is declined.
    pub(crate) fn snapshot(
        &mut self,
        checkpoint: u64,
        native_dir: Option<&Path>,
    ) -> Result<Option<OperatorState>, String> {
        match self {
            ChainedOp::Udf(udf) => {
                let Some(state) = udf.instance.state_mut() else {
                    return Ok(None);
                };
                if let Some(dir) = native_dir {
                    // A directory left by an attempt that died mid-checkpoint.
                    let _ = std::fs::remove_dir_all(dir);
                    if let Some(parent) = dir.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
                    }
                    if let Some(native) = state.native_checkpoint(dir).map_err(|e| e.to_string())? {
                        return Ok(Some(OperatorState::Native(native)));
                    }
                }
                let full = state.snapshot_bytes().map_err(|e| e.to_string())?;
                Ok(Some(OperatorState::Full(full)))
            }
            ChainedOp::Window { op, .. } => op.snapshot().map(|b| Some(OperatorState::Full(b))),
            ChainedOp::Join { op, .. } => op.snapshot().map(|b| Some(OperatorState::Full(b))),
            ChainedOp::Sink { sink, .. } => {
                sink.pre_commit(checkpoint).map_err(|e| e.to_string())?;
                Ok(None)
            }
            ChainedOp::Union { .. } => Ok(None),
        }
    }

    /// Takes back the state this subtask owns (`range` of key groups) from
    /// the snapshots of earlier subtasks of the operator. Incremental
    /// handles are brought back from `storage` into directories under
    /// `scratch`; without `rescaled` (one handle, taken by a subtask with
    /// the same key groups) RocksDB keyed state then works in that
    /// directory, otherwise its entries are copied out and it is removed.
    /// Returns the SST files of the checkpoint the state now works in
    /// (empty unless it took one over).
    ///
    /// # Errors
    /// A message when a snapshot is damaged or cannot be applied.
    pub(crate) fn restore(
        &mut self,
        states: &[&[u8]],
        range: KeyGroupRange,
        max_parallelism: u16,
        storage: &CheckpointStorage,
        scratch: &Path,
        rescaled: bool,
    ) -> Result<Vec<SharedFile>, RestoreError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            ChainedOp::Udf(udf) => {
                let Some(state) = udf.instance.state_mut() else {
                    return Ok(Vec::new());
                };
                let adopt = !rescaled && states.len() == 1;
                for (n, bytes) in states.iter().enumerate() {
                    if IncrementalHandle::is_handle(bytes) {
                        let handle = IncrementalHandle::decode(bytes)
                            .map_err(|e| RestoreError::Damaged(e.to_string()))?;
                        let dir = scratch.join(format!("restore-{n}"));
                        let _ = std::fs::remove_dir_all(&dir);
                        let restored = download(&handle, storage, &dir).and_then(|()| {
                            match adopt {
                                true => state.adopt_native(&dir),
                                false => state.restore_native(&dir),
                            }
                            .map_err(RestoreError::of_state)
                        });
                        if !adopt || restored.is_err() {
                            let _ = std::fs::remove_dir_all(&dir);
                        }
                        restored?;
                        if adopt {
                            return Ok(handle.shared);
                        }
                    } else {
                        state.restore([*bytes]).map_err(RestoreError::of_state)?;
                    }
                }
                Ok(Vec::new())
            }
            ChainedOp::Window { op, .. } => op
                .restore(states.iter().copied(), |key| {
                    range.contains(key_group_of(key, max_parallelism))
                })
                .map(|()| Vec::new())
                .map_err(RestoreError::of_operator),
            ChainedOp::Join { op, .. } => op
                .restore(states.iter().copied(), |key| {
                    range.contains(key_group_of(key, max_parallelism))
                })
                .map(|()| Vec::new())
                .map_err(RestoreError::of_operator),
            ChainedOp::Sink { .. } | ChainedOp::Union { .. } => Ok(Vec::new()),
        }
    }

    /// The guest's operator state at checkpoint `checkpoint` (a UDF's
    /// `snapshot-state`), encoded; `None` when it has none.
    ///
    /// # Errors
    /// The guest's error or trap, as a message (the checkpoint is declined).
    pub(crate) fn operator_state(&mut self, checkpoint: u64) -> Result<Option<Vec<u8>>, String> {
        let ChainedOp::Udf(udf) = self else {
            return Ok(None);
        };
        let items = udf
            .instance
            .snapshot_state(checkpoint)
            .map_err(|e| e.to_string())?;
        if items.is_empty() {
            return Ok(None);
        }
        Ok(Some(weir_snapshot::encode_operator_state(&items)))
    }

    /// Gives a UDF the operator state items assigned to this subtask.
    ///
    /// # Errors
    /// The guest's error or trap, as a message.
    pub(crate) fn restore_operator_state(&mut self, items: Vec<Vec<u8>>) -> Result<(), String> {
        match self {
            ChainedOp::Udf(udf) if !items.is_empty() => {
                udf.instance.restore_state(items).map_err(|e| e.to_string())
            }
            _ => Ok(()),
        }
    }

    /// A completed checkpoint: a sink publishes what it sealed up to it.
    ///
    /// # Errors
    /// The sink's I/O error.
    pub(crate) fn commit(&mut self, completed: u64) -> Result<(), String> {
        match self {
            ChainedOp::Sink { sink, .. } => sink.commit(completed).map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }

    /// Closes the operator at the end of the job.
    pub(crate) fn close(&mut self) -> Result<(), String> {
        match self {
            ChainedOp::Udf(udf) => udf.instance.close().map_err(|e| e.to_string()),
            ChainedOp::Sink { sink, .. } => sink.finish().map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }
}

/// Flink's even-split redistribution of operator list state: the items of
/// all old subtasks, in subtask order, cut into `parallelism` contiguous
/// parts whose sizes differ by at most one (the first parts are the
/// longer); returns part `index`.
pub(crate) fn even_split(items: Vec<Vec<u8>>, index: u32, parallelism: u32) -> Vec<Vec<u8>> {
    let parts = parallelism.max(1) as usize;
    let index = index as usize;
    let (base, extra) = (items.len() / parts, items.len() % parts);
    let start = index * base + index.min(extra);
    let len = base + usize::from(index < extra);
    items.into_iter().skip(start).take(len).collect()
}

/// Turns a built-in operator's output into [`Emitted`], reporting rejected
/// and dropped-late records and other problems.
///
/// # Errors
/// The operator's failure (a user-defined aggregate trapped).
fn builtin_output(
    shared: &JobShared,
    spec: &OperatorSpec,
    origins: &[Origin],
    out: OperatorOutput,
) -> Result<Emitted, OpFailure> {
    if let Some(failure) = out.failure {
        use weir_operators::CallFailureKind;
        let kind = match failure.kind {
            CallFailureKind::Trap => TaskFailureKind::Trap,
            CallFailureKind::Timeout => TaskFailureKind::Timeout,
            CallFailureKind::MemoryLimit => TaskFailureKind::MemoryLimit,
            CallFailureKind::UdfError => TaskFailureKind::UdfError,
        };
        return Err(OpFailure::new(
            kind,
            format!("in the aggregate component: {}", failure.message),
        ));
    }
    for problem in out.problems {
        shared
            .metrics()
            .record_problem(format!("operator `{}`: {problem}", spec.id));
    }
    for (index, message) in out.errors {
        let at = origins.get(index).map_or_else(
            || format!("input #{index} of a batch"),
            |o| shared.splits.describe(*o),
        );
        shared
            .metrics()
            .record_problem(format!("operator `{}` rejected {at}: {message}", spec.id));
    }
    if out.dropped_late > 0 {
        shared.metrics().add_late_dropped(out.dropped_late);
    }
    Ok(Emitted {
        main: Batch::derived(out.records),
        side: out.side,
        rejected: Vec::new(),
    })
}

/// Fires a UDF's due timers of one domain.
fn fire_udf_timers(
    udf: &mut UdfOp<'_>,
    domain: TimerDomain,
    up_to: i64,
) -> Result<Emitted, OpFailure> {
    let outputs = udf.instance.fire_timers(domain, up_to).map_err(|e| {
        OpFailure::new(crate::failure_kind_of_wasm(&e), format!("in on-timer: {e}"))
    })?;
    udf_outputs(&[], &[], outputs.into())
}

/// Calls the UDF with a batch. Records an earlier attempt failed on
/// without the UDF saying which (a batch span the JobManager suspects,
/// see `PoisonState`) go to it one per call, so a failure names its record.
fn process_udf(
    shared: &JobShared,
    udf: &mut UdfOp<'_>,
    batch: Batch,
) -> Result<Emitted, OpFailure> {
    // Only an operator with poisoned records pays for looking them up.
    let poison = shared.config.poison_records.get(&udf.spec.id);
    let poisoned = poison.map(|records| {
        move |origin: Origin| {
            if origin == Origin::DERIVED {
                return None;
            }
            records.get(&shared.splits.describe(origin))
        }
    });
    let (batch, oversized) = without_oversized(udf.spec, batch, poisoned);
    let isolate = batch.len() > 1
        && poison.is_some_and(|records| in_suspect_span(shared, records, &batch.origins));
    let mut emitted = match isolate {
        true => process_one_by_one(shared, udf, batch)?,
        false => process_batch(shared, udf, batch)?,
    };
    if let Some((rejected, kept)) = oversized {
        // Indices into the batch the UDF saw, back to the batch that came.
        for r in &mut emitted.rejected {
            r.input = kept.get(r.input as usize).copied().unwrap_or(r.input);
        }
        emitted.rejected.extend(rejected);
    }
    Ok(emitted)
}

/// [`process_udf`] of a batch larger than the job's `batch_size`, one
/// part of at most that many records per call. Built-in operators emit
/// batches of any size (a window fires every window its watermark passed
/// at once: at Nexmark's 10M events/s a second of bids fires hundreds of
/// thousands of results), and a UDF given them in one call needs memory
/// for the whole batch and its outputs beside each other (q5 and q7 failed
/// their 64 MiB cap so). The outputs are joined in order; each rejection's
/// index is its record's index in `batch`.
fn process_udf_in_parts(
    shared: &JobShared,
    udf: &mut UdfOp<'_>,
    batch: Batch,
) -> Result<Emitted, OpFailure> {
    let mut all = Emitted::default();
    let mut records = batch.records.into_iter();
    let mut origins = batch.origins.into_iter();
    let mut first = 0usize;
    loop {
        let mut part = Batch::with_capacity(udf.max_batch);
        for (record, origin) in records.by_ref().zip(origins.by_ref()).take(udf.max_batch) {
            part.push(record, origin);
        }
        if part.is_empty() {
            return Ok(all);
        }
        let len = part.len();
        all.append(process_udf(shared, udf, part)?, first);
        first += len;
    }
}

/// Whether a record of `origins` lies in a span of `records` (failed batch
/// calls the JobManager suspects, keyed by their origin).
fn in_suspect_span(
    shared: &JobShared,
    records: &std::collections::BTreeMap<String, String>,
    origins: &[Origin],
) -> bool {
    let spans: Vec<_> = records
        .keys()
        .filter_map(|k| crate::OriginSpan::parse(k))
        .collect();
    !spans.is_empty()
        && origins.iter().any(|o| {
            let name = shared.splits.name(o.split);
            name.is_some_and(|name| spans.iter().any(|s| s.covers(name, o.position)))
        })
}

/// [`process_batch`] one record per call, the outputs joined in order.
fn process_one_by_one(
    shared: &JobShared,
    udf: &mut UdfOp<'_>,
    batch: Batch,
) -> Result<Emitted, OpFailure> {
    let mut all = Emitted::default();
    for (i, (record, origin)) in batch.records.into_iter().zip(batch.origins).enumerate() {
        let mut one = Batch::with_capacity(1);
        one.push(record, origin);
        all.append(process_batch(shared, udf, one)?, i);
    }
    Ok(all)
}

/// One `process` call with `batch`; a failure names the record the UDF
/// failed on when it said which (or the batch has one), the batch's span
/// otherwise.
fn process_batch(
    shared: &JobShared,
    udf: &mut UdfOp<'_>,
    batch: Batch,
) -> Result<Emitted, OpFailure> {
    let origins = batch.origins;
    // The inputs' values, for the records the UDF may reject (the values
    // are slices of shared buffers: this copies no bytes).
    let values: Vec<Bytes> = if udf.spec.on_error == OnError::DeadLetter {
        batch.records.iter().map(|r| r.value.clone()).collect()
    } else {
        Vec::new()
    };
    let outputs = match udf.instance.process_sorted(batch.records) {
        Ok(outputs) => outputs,
        Err(failure) => {
            let kind = crate::failure_kind_of_wasm(&failure.error);
            // A batch of one record is that record's failure when the
            // guest trapped or hit a limit in it; a host error (a state
            // write the backend refused) is not the record's fault.
            let in_guest = matches!(
                kind,
                TaskFailureKind::Trap | TaskFailureKind::Timeout | TaskFailureKind::MemoryLimit
            );
            let index = failure
                .record_index
                .or_else(|| (origins.len() == 1 && in_guest).then_some(0));
            let origin = match index.and_then(|i| origins.get(i)) {
                Some(origin) => Some(shared.splits.describe(*origin)),
                None => shared.splits.describe_batch(&origins),
            };
            return Err(OpFailure {
                origin,
                kind,
                message: failure.error.to_string(),
            });
        }
    };
    udf_outputs(&origins, &values, outputs)
}

/// A record larger than this share of its UDF's memory cap (`memory_mib`)
/// is rejected before the call (1/4): the guest could not hold it beside
/// its copies, and the memory-limit trap would fail the whole batch.
const RECORD_SHARE_OF_MEMORY: u64 = 4;

/// Records too large for a UDF, rejected, and the original index of each
/// record kept.
type Oversized = Option<(Vec<Rejected>, Vec<u32>)>;

/// `batch` without the records too large for `spec`'s UDF and those
/// `poisoned` names (with the failure they caused before: records the UDF
/// failed on in attempt after attempt), which become rejections (the
/// operator's `on_error` applies); `None` beside the batch when every
/// record goes to the UDF.
fn without_oversized<'p>(
    spec: &OperatorSpec,
    batch: Batch,
    poisoned: Option<impl Fn(Origin) -> Option<&'p String>>,
) -> (Batch, Oversized) {
    let checks_poison = poisoned.is_some();
    let poisoned = |origin: Origin| poisoned.as_ref().and_then(|p| p(origin));
    let max = u64::from(spec.memory_mib) * (1 << 20) / RECORD_SHARE_OF_MEMORY;
    let size = |r: &Record| (r.value.len() + r.key.as_ref().map_or(0, Vec::len)) as u64;
    let any_poisoned = || checks_poison && batch.origins.iter().any(|o| poisoned(*o).is_some());
    if !batch.records.iter().any(|r| size(r) > max) && !any_poisoned() {
        return (batch, None);
    }
    let mut kept = Batch::default();
    let mut kept_index = Vec::new();
    let mut rejected = Vec::new();
    for (i, (record, origin)) in batch.records.into_iter().zip(batch.origins).enumerate() {
        let bytes = size(&record);
        if let Some(failure) = poisoned(origin) {
            rejected.push(Rejected {
                origin: Some(origin),
                input: u32::try_from(i).unwrap_or(u32::MAX),
                record: (spec.on_error == OnError::DeadLetter).then(|| record.value.clone()),
                message: format!(
                    "the UDF failed on this record in attempts in a row \
                     (restart-strategy.max-identical-failures; or on its batch, then on it \
                     alone), so it is not passed to it again; the failure: {failure}"
                ),
            });
        } else if bytes > max {
            rejected.push(Rejected {
                origin: Some(origin),
                input: u32::try_from(i).unwrap_or(u32::MAX),
                record: (spec.on_error == OnError::DeadLetter).then(|| record.value.clone()),
                message: format!(
                    "the host rejected the record: {bytes} bytes is more than a quarter of the UDF's memory cap ({} MiB); it was not passed to the UDF",
                    spec.memory_mib
                ),
            });
        } else {
            kept.push(record, origin);
            kept_index.push(u32::try_from(i).unwrap_or(u32::MAX));
        }
    }
    (kept, Some((rejected, kept_index)))
}

/// A UDF's main and side records, and the inputs it rejected (with their
/// origins, and their values when `values` holds them); `origins` empty
/// for a timer's outputs. A rejection may name an input once.
///
/// # Errors
/// A rejection that names no input of the batch: the UDF broke the
/// contract (kind `udf-error`).
fn udf_outputs(
    origins: &[Origin],
    values: &[Bytes],
    outputs: SortedOutputs,
) -> Result<Emitted, OpFailure> {
    let mut rejected: Vec<Rejected> = Vec::with_capacity(outputs.errors.len());
    let mut named = std::collections::HashSet::new();
    for (input, message) in outputs.errors {
        if !origins.is_empty() && input as usize >= origins.len() {
            return Err(OpFailure::new(
                TaskFailureKind::UdfError,
                format!(
                    "the UDF rejected input #{input} of a batch of {}: {message}",
                    origins.len()
                ),
            ));
        }
        if !origins.is_empty() && !named.insert(input) {
            continue;
        }
        rejected.push(Rejected {
            origin: origins.get(input as usize).copied(),
            input,
            record: values.get(input as usize).cloned(),
            message: format!("the UDF rejected the record: {message}"),
        });
    }
    Ok(Emitted {
        main: Batch::derived(outputs.records),
        side: outputs.side,
        rejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_split_cuts_contiguous_parts_that_differ_by_at_most_one() {
        let items: Vec<Vec<u8>> = (0..7u8).map(|i| vec![i]).collect();
        let parts: Vec<Vec<Vec<u8>>> = (0..3).map(|i| even_split(items.clone(), i, 3)).collect();
        assert_eq!(parts[0], vec![vec![0], vec![1], vec![2]]);
        assert_eq!(parts[1], vec![vec![3], vec![4]]);
        assert_eq!(parts[2], vec![vec![5], vec![6]]);
        assert_eq!(even_split(vec![vec![9]], 1, 2), Vec::<Vec<u8>>::new());
        assert_eq!(even_split(items.clone(), 0, 1), items);
    }
}
