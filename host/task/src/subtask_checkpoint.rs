//! The checkpoint phases of a subtask: the synchronous snapshot at a
//! barrier, restoring from a checkpoint, committing sinks when a
//! checkpoint completes, and answering checkpoints after the end of input.

use std::time::Duration;

use crate::checkpointing::SnapshotJob;
use crate::context::JobShared;
use crate::control::TaskEvent;
use crate::incremental::SharedFile;
use crate::input::Head;
use crate::ops::even_split;
use crate::snapshot::{
    HeadSnapshot, OperatorState, RestoreError, Restored, SubtaskSnapshot, task_name,
};
use crate::subtask::{Stop, SubtaskRun};
use crate::watermark::SplitWatermarks;
use weir_snapshot::decode_operator_state;

/// The name under which a UDF's operator state sits in a subtask snapshot.
pub(crate) fn operator_state_id(operator: &str) -> String {
    format!("{operator}/operator-state")
}

impl SubtaskRun<'_> {
    /// Takes part in checkpoint `id`: snapshots the chain (the synchronous
    /// phase), hands the snapshot to the subtask's snapshot worker, which
    /// writes it to checkpoint storage and acknowledges (or declines), and
    /// forwards the barrier when `forward` (a finished subtask already
    /// ended its output instead).
    pub(crate) fn checkpoint(
        &mut self,
        shared: &JobShared,
        id: u64,
        alignment_ms: u64,
        forward: bool,
    ) -> Result<(), Stop> {
        if shared.storage.is_none() {
            return Ok(());
        }
        self.last_checkpoint = id;
        let declined = match self.snapshot(shared, id) {
            Ok((head, ops)) => {
                let job = SnapshotJob {
                    id,
                    completed: self.control.completed,
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
            let _ = self.events.send(TaskEvent::Decline {
                task: self.task.clone(),
                checkpoint: id,
                reason,
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
    pub(crate) fn snapshot(
        &mut self,
        shared: &JobShared,
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
            // The guest's `snapshot-state` first: a guest that caches keyed
            // state (the Rust SDK) writes it to the host in that call.
            let operator_state = op.operator_state(checkpoint)?;
            if let Some(state) = op.snapshot(checkpoint, native_dir.as_deref())? {
                ops.push((id.clone(), state));
            }
            if let Some(bytes) = operator_state {
                ops.push((operator_state_id(&id), OperatorState::Full(bytes)));
            }
        }
        self.dead_letters
            .pre_commit(checkpoint)
            .map_err(|e| format!("dead letters: {e}"))?;
        Ok((head, ops))
    }

    /// Takes back this subtask's part of the snapshots of a restored
    /// checkpoint: its splits' positions, watermarks, and its key groups
    /// of every operator's state. Returns, per operator whose RocksDB
    /// state took a restored native checkpoint over, that checkpoint's SST
    /// files (for the snapshot worker's uploader).
    pub(crate) fn restore(
        &mut self,
        shared: &JobShared,
        restored: &Restored,
        rescaled: bool,
        snapshots: &[SubtaskSnapshot<'_>],
    ) -> Result<Vec<(String, Vec<SharedFile>)>, RestoreError> {
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
        let (max, range) = (self.max_parallelism, self.key_groups);
        // Each subtask got its own old snapshot, or all of them when the
        // parallelism changed (then operator state is split evenly).
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
                .map_err(|e| e.context(&format!("restoring operator `{id}`")))?;
            if !files.is_empty() {
                adopted.push((id.clone(), files));
            }
            let mut items = Vec::new();
            for bytes in snapshots
                .iter()
                .filter_map(|s| s.operator(&operator_state_id(&id)))
            {
                items.extend(decode_operator_state(bytes).map_err(|e| {
                    RestoreError::Damaged(format!("restoring operator `{id}`: {e}"))
                })?);
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
    pub(crate) fn commit_completed(&mut self, shared: &JobShared) -> Result<(), Stop> {
        let completed = self.control.completed;
        if shared.storage.is_none() || completed <= self.committed {
            return Ok(());
        }
        for op in 0..self.ops.len() {
            if let Err(message) = self.ops[op].commit(completed) {
                let id = self.ops[op].id().to_string();
                return Err(self.fail(&id, None, message));
            }
        }
        if let Err(message) = self.dead_letters.commit(completed) {
            return Err(self.fail(self.head_id, None, format!("dead letters: {message}")));
        }
        self.committed = completed;
        Ok(())
    }

    /// After the end of its input, a subtask of a checkpointed job answers
    /// checkpoints with its final state and commits its sinks' output,
    /// until the job's final checkpoint completed.
    pub(crate) fn linger(&mut self, shared: &JobShared) -> Result<(), Stop> {
        if shared.storage.is_none() {
            return Ok(());
        }
        let _ = self.events.send(TaskEvent::InputEnded {
            task: self.task.clone(),
        });
        loop {
            self.control.poll();
            if self.control.cancelled {
                return Err(Stop::Cancelled);
            }
            let triggered = self.control.triggered;
            if triggered > self.last_checkpoint {
                self.checkpoint(shared, triggered, 0, false)?;
            }
            self.commit_completed(shared)?;
            if self.control.finished {
                return Ok(());
            }
            self.control.wait(Duration::from_millis(50));
        }
    }
}
