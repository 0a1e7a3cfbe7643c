//! A subtask's event loop: the chain it runs, reading its head, pushing
//! watermarks, firing timers, and ending its input.

use std::sync::Arc;

use crossbeam_channel::{RecvTimeoutError, Sender};
use weir_checkpoint::{Alignment, TaskId};
use weir_types::{Batch, KeyGroupRange, StreamElement, WatermarkStatus};

use crate::checkpointing::SnapshotJob;
use crate::clock::wall_clock_ms;
use crate::context::JobShared;
use crate::control::{ControlState, TaskEvent};
use crate::exchange::{Disconnected, Exchange};
use crate::input::{Head, Step, alignment_ms, next_input};
use crate::ops::{ChainedOp, Emitted};
use crate::snapshot::task_name;
use crate::watermark::MAX_WATERMARK;
use crate::{JobError, TaskFailureKind};

/// An exchange out of the chain's tail, for its main output (`output:
/// None`) or one of its side outputs.
pub(crate) struct Outlet {
    pub(crate) output: Option<String>,
    pub(crate) exchange: Exchange,
}

/// Everything one task's thread runs.
pub(crate) struct SubtaskRun<'a> {
    pub(crate) head_id: &'a str,
    /// `(head vertex, index)`, as the checkpoint coordinator knows it.
    pub(crate) task: TaskId,
    /// The newest checkpoint this subtask took part in.
    pub(crate) last_checkpoint: u64,
    /// The newest completed checkpoint its sinks committed.
    pub(crate) committed: u64,
    /// When the first barrier of the alignment in progress arrived.
    pub(crate) align_started: Option<std::time::Instant>,
    pub(crate) index: u32,
    pub(crate) parallelism: u32,
    /// The key groups it owns.
    pub(crate) key_groups: KeyGroupRange,
    /// The job's number of key groups.
    pub(crate) max_parallelism: u16,
    /// Records per batch a source reads.
    pub(crate) batch_size: usize,
    pub(crate) head: Head,
    pub(crate) ops: Vec<ChainedOp<'a>>,
    pub(crate) outlets: Vec<Outlet>,
    /// The watermark status this subtask last sent downstream.
    pub(crate) status: WatermarkStatus,
    /// `(operator, side output)` pairs already reported as unrouted.
    pub(crate) warned_side_outputs: std::collections::HashSet<(String, String)>,
    /// Hands checkpoints to the subtask's snapshot worker (checkpoints on).
    pub(crate) snapshots: Option<crossbeam_channel::Sender<SnapshotJob>>,
    /// What the driver told this task so far.
    pub(crate) control: ControlState,
    /// To the driver.
    pub(crate) events: Sender<TaskEvent>,
    /// The source vertex's counters, when the chain starts with one.
    pub(crate) source_metrics: Option<Arc<crate::metrics::VertexMetrics>>,
    /// Each chained operator's and sink's counters (`op_metrics[i]` is `ops[i]`'s).
    pub(crate) op_metrics: Vec<Arc<crate::metrics::VertexMetrics>>,
    /// What the chain's source does with a malformed input record.
    pub(crate) source_on_error: weir_types::jobgraph::OnError,
    /// Where the chain's vertices that dead-letter write.
    pub(crate) dead_letters: crate::dead_letter::DeadLetters,
}

/// A subtask stops: either it failed, or the job was cancelled because
/// another one did (then it exits quietly).
pub(crate) enum Stop {
    Failed(JobError),
    Cancelled,
}

impl From<Disconnected> for Stop {
    fn from(_: Disconnected) -> Self {
        Stop::Cancelled
    }
}

impl SubtaskRun<'_> {
    /// A failure of `vertex` in this subtask of a kind other than the
    /// UDF's (I/O of a source, sink, state or checkpoint).
    pub(crate) fn fail(&self, vertex: &str, origin: Option<String>, message: String) -> Stop {
        self.fail_as(vertex, origin, TaskFailureKind::Io, message)
    }

    /// A failure of `vertex` in this subtask.
    pub(crate) fn fail_as(
        &self,
        vertex: &str,
        origin: Option<String>,
        kind: TaskFailureKind,
        message: String,
    ) -> Stop {
        Stop::Failed(JobError::Task {
            vertex: vertex.to_string(),
            index: self.index,
            parallelism: self.parallelism,
            origin,
            kind,
            message,
        })
    }

    /// Runs the subtask to its end. When it stops because the job is
    /// stopping (a queue to or from it closed, or a cancel), it first
    /// commits what the newest completed checkpoint covers, taking control
    /// messages still queued: after a stop with savepoint, the completion
    /// is in its queue before the `Finish` that made its neighbours exit.
    pub(crate) fn run(&mut self, shared: &JobShared) -> Result<(), Stop> {
        let result = self.run_to_end(shared);
        if matches!(result, Err(Stop::Cancelled)) {
            self.control.poll();
            self.commit_completed(shared)?;
        }
        result
    }

    fn run_to_end(&mut self, shared: &JobShared) -> Result<(), Stop> {
        let batch_size = self.batch_size;
        let mut ended_inputs = 0;
        let mut bad = Vec::new();
        let align = shared.storage.is_none() || shared.exactly_once;
        loop {
            self.control.poll();
            if self.control.cancelled {
                return Err(Stop::Cancelled);
            }
            self.commit_completed(shared)?;
            if self.control.finished {
                // Stopped with a savepoint: what came after it is neither
                // committed nor needed (a restore replays it).
                return Ok(());
            }
            let triggered = self.control.triggered;
            if matches!(self.head, Head::Source { .. }) && triggered > self.last_checkpoint {
                self.checkpoint(shared, triggered, 0, true)?;
            }
            self.fire_processing_time(shared, wall_clock_ms())?;
            let now_ms = shared.now_ms();
            let step = match &mut self.head {
                Head::Source {
                    reader,
                    watermarks,
                    pace,
                    ..
                } => {
                    // Its bad records are handled below, before the batch.
                    let next = reader.next_batch(batch_size, &mut bad);
                    let batch = match next {
                        Ok(Some(batch)) => batch,
                        Ok(None) => break,
                        Err(e) => return Err(self.fail(self.head_id, None, e.to_string())),
                    };
                    shared.metrics().add_read(batch.len());
                    if let Some(m) = &self.source_metrics {
                        m.add_out(batch.len());
                    }
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
                    gate,
                    input_of,
                    watermarks,
                    aligner,
                } => match next_input(gate.as_mut(), aligner, align) {
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
            if !bad.is_empty() {
                self.bad_input(shared, bad.drain(..))?;
            }
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
                // `run` commits what a completed checkpoint covers on the way out.
                Step::Disconnected => return Err(Stop::Cancelled),
                Step::Ended(aligned) => {
                    if let Some((id, alignment_ms)) = aligned {
                        self.checkpoint(shared, id, alignment_ms, true)?;
                    }
                    break;
                }
            }
        }
        // Bad records of the source's last read.
        if !bad.is_empty() {
            self.bad_input(shared, bad.drain(..))?;
        }
        // End of a bounded input: event time is complete (batch semantics).
        if matches!(self.head, Head::Source { .. }) {
            self.push_watermark(shared, MAX_WATERMARK)?;
        }
        self.finish(shared)?;
        self.linger(shared)
    }
    /// Sends `status` downstream when it differs from the last one sent.
    pub(crate) fn set_status(&mut self, status: WatermarkStatus) -> Result<(), Stop> {
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
    pub(crate) fn push_watermark(
        &mut self,
        shared: &JobShared,
        watermark: i64,
    ) -> Result<(), Stop> {
        if let Some(m) = &self.source_metrics {
            m.set_watermark(self.index, watermark);
        }
        for op in 0..self.ops.len() {
            if let Some(m) = self.op_metrics.get(op) {
                m.set_watermark(self.index, watermark);
            }
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
    pub(crate) fn or_fail(
        &self,
        op: usize,
        result: Result<Emitted, crate::ops::OpFailure>,
    ) -> Result<Emitted, Stop> {
        result.map_err(|f| self.fail_as(self.ops[op].id(), f.origin, f.kind, f.message))
    }

    /// Fires processing-time timers of the chain's operators.
    pub(crate) fn fire_processing_time(
        &mut self,
        shared: &JobShared,
        now_ms: i64,
    ) -> Result<(), Stop> {
        for op in 0..self.ops.len() {
            let emitted = self.ops[op].on_processing_time(shared, now_ms);
            let emitted = self.or_fail(op, emitted)?;
            self.forward(shared, op, emitted)?;
        }
        Ok(())
    }

    pub(crate) fn finish(&mut self, shared: &JobShared) -> Result<(), Stop> {
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
        if let Err(message) = self.dead_letters.finish() {
            return Err(self.fail(self.head_id, None, format!("dead letters: {message}")));
        }
        for outlet in &mut self.outlets {
            outlet.exchange.finish()?;
        }
        Ok(())
    }
}
