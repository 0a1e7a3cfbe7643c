//! Checkpoints of a running job (asynchronous barrier snapshotting, as in
//! Flink): the coordinator thread, what subtasks share with it, the
//! encoding of one subtask's snapshot, and loading a completed checkpoint
//! back.
//!
//! The flow of checkpoint `n`:
//! 1. the coordinator thread (driving [`CheckpointCoordinator`]) publishes
//!    `n` in [`CheckpointHub::triggered`];
//! 2. each running source subtask sees it between two batches, snapshots
//!    its split positions and its chain, writes the snapshot to checkpoint
//!    storage, acknowledges, then sends barrier `n` downstream;
//! 3. a subtask with inputs aligns barrier `n` over its producers
//!    (`BarrierAligner`), then does the same;
//! 4. a subtask that has finished (its input ended) acknowledges with the
//!    snapshot of its final state, so checkpoints go on while bounded
//!    inputs end one by one;
//! 5. on the last acknowledgement the coordinator writes `_metadata`,
//!    publishes `n` in [`CheckpointHub::completed`], and transactional
//!    sinks commit what they sealed at barrier `n` or before.
//!
//! When every subtask has finished, the coordinator triggers one final
//! checkpoint; the job ends when it completes, so a bounded job's output is
//! committed only as part of a completed checkpoint (Flink's final
//! checkpoint, FLIP-147).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde::{Deserialize, Serialize};
use weir_checkpoint::{
    Acknowledgement, CheckpointAction, CheckpointConfig, CheckpointCoordinator, CheckpointId,
    CheckpointMetadata, CheckpointStorage, StorageError, SubtaskState, TaskId,
};
use weir_connectors::SplitPosition;

use crate::JobError;
use crate::incremental::{SharedFile, Uploader};
use crate::ops::OperatorState;
use crate::watermark::{InputWatermarksSnapshot, SplitWatermarksSnapshot};

/// Where a job resumes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// The newest completed checkpoint of the job under the configured
    /// checkpoint directory (older ones when it is damaged).
    Latest,
    /// A checkpoint directory `.../<job>/chk-<n>` (or its `_metadata` file).
    Checkpoint(std::path::PathBuf),
}

/// A completed checkpoint to start from, and the storage it is in.
#[derive(Debug)]
pub(crate) struct Restored {
    pub(crate) storage: CheckpointStorage,
    pub(crate) metadata: CheckpointMetadata,
}

/// The newest completed checkpoint of `job`, or `None` (with a notice)
/// when no checkpoint of it ever completed: nothing was committed, so a
/// fresh start loses nothing.
///
/// # Errors
/// [`JobError::Checkpoint`] when the directory cannot be read, or every
/// completed checkpoint is damaged.
pub(crate) fn resolve_latest_or_fresh(
    config: &CheckpointConfig,
    job: &str,
) -> Result<Option<Restored>, JobError> {
    let error = |e: StorageError| JobError::Checkpoint(e.to_string());
    let storage = CheckpointStorage::open(config, job).map_err(error)?;
    match storage.latest() {
        Ok((metadata, warnings)) => {
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            Ok(Some(Restored { storage, metadata }))
        }
        Err(e @ StorageError::NoCheckpoint { .. }) => {
            tracing::warn!("{e}: nothing was committed, so the job starts from the beginning");
            Ok(None)
        }
        Err(e) => Err(error(e)),
    }
}

/// Finds the checkpoint `restore` names.
///
/// # Errors
/// [`JobError::Checkpoint`] naming the directory or file that is missing or
/// damaged.
pub(crate) fn resolve(
    restore: &Restore,
    config: &CheckpointConfig,
    job: &str,
) -> Result<Restored, JobError> {
    let error = |e: StorageError| JobError::Checkpoint(e.to_string());
    match restore {
        Restore::Latest => {
            let storage = CheckpointStorage::open(config, job).map_err(error)?;
            let (metadata, warnings) = storage.latest().map_err(error)?;
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            Ok(Restored { storage, metadata })
        }
        Restore::Checkpoint(path) => {
            let dir = if path.file_name().is_some_and(|n| n == "_metadata") {
                path.parent().unwrap_or(path)
            } else {
                path.as_path()
            };
            let not_a_checkpoint = || {
                JobError::Checkpoint(format!(
                    "{} is not a checkpoint directory (expected <dir>/<job>/chk-<n>)",
                    path.display()
                ))
            };
            let id: CheckpointId = dir
                .file_name()
                .and_then(|n| n.to_str()?.strip_prefix("chk-")?.parse().ok())
                .ok_or_else(not_a_checkpoint)?;
            let job_dir = dir.parent().ok_or_else(not_a_checkpoint)?;
            let job_name = job_dir
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(not_a_checkpoint)?;
            // `chk-3` given relative to the job directory has an empty base.
            let base = job_dir
                .parent()
                .filter(|b| !b.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let mut at = config.clone();
            at.dir = base.to_string_lossy().into_owned();
            let storage = CheckpointStorage::open(&at, job_name).map_err(error)?;
            let metadata = storage.load(id).map_err(error)?;
            Ok(Restored { storage, metadata })
        }
    }
}

/// What the coordinator thread and the subtasks share.
pub(crate) struct CheckpointHub {
    pub(crate) storage: CheckpointStorage,
    /// The newest checkpoint triggered (0: none yet).
    triggered: AtomicU64,
    /// The newest checkpoint completed (0: none yet).
    completed: AtomicU64,
    /// The final checkpoint (or the savepoint) completed: subtasks exit.
    job_done: AtomicBool,
    events: Sender<HubEvent>,
    /// Barriers block producers (exactly-once) or not (at-least-once).
    pub(crate) exactly_once: bool,
}

/// What subtasks tell the coordinator.
pub(crate) enum HubEvent {
    /// A subtask's answer to checkpoint `id`: where its state went, or why
    /// it could not take it.
    Ack {
        id: CheckpointId,
        task: TaskId,
        result: Result<Acknowledgement, String>,
    },
    /// A subtask's input ended; it now answers checkpoints with its final state.
    Finished,
}

impl CheckpointHub {
    pub(crate) fn new(
        storage: CheckpointStorage,
        exactly_once: bool,
    ) -> (Self, Receiver<HubEvent>) {
        let (events, rx) = crossbeam_channel::unbounded();
        let hub = Self {
            storage,
            triggered: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            job_done: AtomicBool::new(false),
            events,
            exactly_once,
        };
        (hub, rx)
    }

    pub(crate) fn triggered(&self) -> CheckpointId {
        self.triggered.load(Ordering::Acquire)
    }

    pub(crate) fn completed(&self) -> CheckpointId {
        self.completed.load(Ordering::Acquire)
    }

    pub(crate) fn job_done(&self) -> bool {
        self.job_done.load(Ordering::Acquire)
    }

    pub(crate) fn send(&self, event: HubEvent) {
        // The coordinator only goes away when the job is over.
        let _ = self.events.send(event);
    }
}

/// How the coordinator thread ends.
pub(crate) enum CoordinatorEnd {
    /// The final checkpoint completed.
    Done,
    /// The job was cancelled (a subtask failed).
    Cancelled,
    /// Too many checkpoints failed.
    Failed(String),
    /// Stopped with a savepoint, kept at this place.
    Stopped(String),
    /// The savepoint could not be kept.
    SavepointFailed(String),
}

/// The coordinator thread: triggers checkpoints on time, gathers
/// acknowledgements, writes `_metadata` of completed checkpoints, and
/// takes the final checkpoint once every subtask finished.
pub(crate) struct CoordinatorLoop<'a> {
    pub(crate) hub: &'a CheckpointHub,
    pub(crate) events: Receiver<HubEvent>,
    pub(crate) coordinator: CheckpointCoordinator,
    pub(crate) config: &'a CheckpointConfig,
    pub(crate) job: &'a str,
    /// Parallelism of every chain head, by vertex id.
    pub(crate) parallelism: BTreeMap<String, u32>,
    pub(crate) subtasks: usize,
    pub(crate) metrics: &'a crate::JobMetrics,
    /// Set when the job is to stop with a savepoint.
    pub(crate) stop: Option<&'a AtomicBool>,
    /// Where the savepoint goes instead of `state.savepoints.dir`.
    pub(crate) savepoint_target: Option<&'a std::sync::Mutex<Option<String>>>,
    /// Savepoints asked for while the job keeps running.
    pub(crate) savepoints: Option<&'a crate::SavepointRequests>,
}

impl CoordinatorLoop<'_> {
    /// Runs until the final checkpoint completed or `cancelled()` says so.
    pub(crate) fn run(
        mut self,
        now_ms: impl Fn() -> i64,
        cancelled: impl Fn() -> bool,
    ) -> CoordinatorEnd {
        let mut finished = 0;
        let mut final_checkpoint = None;
        let mut savepoint = None;
        // A savepoint the job takes without stopping: (checkpoint, request).
        let mut side_savepoint: Option<(CheckpointId, crate::SavepointRequest)> = None;
        loop {
            if cancelled() {
                return CoordinatorEnd::Cancelled;
            }
            let now = now_ms();
            let wait = self
                .coordinator
                .next_deadline()
                .map_or(100, |d| (d - now).clamp(1, 100));
            let action = match self.events.recv_timeout(Duration::from_millis(wait as u64)) {
                Ok(HubEvent::Ack { id, task, result }) => match result {
                    Ok(ack) => self.coordinator.acknowledge(id, task, ack, now_ms()),
                    Err(reason) => {
                        let reason = format!("{}#{} declined: {reason}", task.0, task.1);
                        self.coordinator.decline(id, reason, now_ms())
                    }
                },
                Ok(HubEvent::Finished) => {
                    finished += 1;
                    None
                }
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return CoordinatorEnd::Cancelled,
            };
            let stopping = self.stop.is_some_and(|s| s.load(Ordering::Acquire));
            let action = action.or_else(|| {
                if side_savepoint.is_none()
                    && !stopping
                    && savepoint.is_none()
                    && final_checkpoint.is_none()
                    && finished < self.subtasks
                    && let Some(requests) = self.savepoints
                    && let Some(request) = requests.next()
                {
                    match self.coordinator.trigger_now(now_ms()) {
                        Some(id) => {
                            side_savepoint = Some((id, request));
                            return Some(CheckpointAction::Trigger(id));
                        }
                        // After the checkpoint in flight.
                        None => requests.put_back(request),
                    }
                }
                if stopping && savepoint.is_none() && final_checkpoint.is_none() {
                    // Stop with savepoint: a checkpoint now (after the one
                    // in flight, if any), then the job ends.
                    let id = self.coordinator.trigger_now(now_ms())?;
                    savepoint = Some(id);
                    return Some(CheckpointAction::Trigger(id));
                }
                if finished < self.subtasks && savepoint.is_none() {
                    return self.coordinator.tick(now_ms());
                }
                if final_checkpoint.is_none() && self.coordinator.pending().is_none() {
                    let id = self.coordinator.trigger_now(now_ms())?;
                    final_checkpoint = Some(id);
                    return Some(CheckpointAction::Trigger(id));
                }
                // Only the final checkpoint's timeout remains to watch.
                self.coordinator
                    .tick(now_ms())
                    .filter(|a| !matches!(a, CheckpointAction::Trigger(_)))
            });
            match action {
                None => {}
                Some(CheckpointAction::Trigger(id)) => {
                    tracing::debug!("triggering checkpoint {id}");
                    self.hub.triggered.store(id, Ordering::Release);
                }
                Some(CheckpointAction::Complete { id, acks, stats }) => {
                    if let Err(e) = self.write_metadata(id, acks) {
                        // The state is written but cannot be found again:
                        // the checkpoint does not count.
                        tracing::warn!("checkpoint {id} failed: {e}");
                        if final_checkpoint == Some(id) {
                            final_checkpoint = None;
                        }
                        continue;
                    }
                    tracing::info!(
                        "checkpoint {id} completed in {} ms ({} bytes written, {} bytes in all; longest alignment {} ms)",
                        stats.duration_ms,
                        stats.size_bytes,
                        stats.full_size_bytes,
                        stats.max_alignment_ms
                    );
                    self.metrics.record_checkpoint(stats);
                    self.hub.completed.store(id, Ordering::Release);
                    if final_checkpoint == Some(id) {
                        self.hub.job_done.store(true, Ordering::Release);
                        return CoordinatorEnd::Done;
                    }
                    if let Some((_, request)) = side_savepoint.take_if(|(s, _)| *s == id) {
                        let kept = self.copy_savepoint(id, request.target.clone());
                        if let Some(requests) = self.savepoints {
                            requests.finish(request.id, kept.map_err(|e| e.to_string()));
                        }
                    }
                    if savepoint == Some(id) {
                        let kept = self.keep_savepoint(id);
                        self.hub.job_done.store(true, Ordering::Release);
                        return match kept {
                            Ok(path) => CoordinatorEnd::Stopped(path),
                            Err(e) => CoordinatorEnd::SavepointFailed(format!(
                                "checkpoint {id} completed but could not be kept as a savepoint: {e}"
                            )),
                        };
                    }
                }
                Some(CheckpointAction::Abort { id, reason }) => {
                    tracing::warn!("checkpoint {id} aborted: {reason}");
                    if final_checkpoint == Some(id) {
                        final_checkpoint = None;
                    }
                    if savepoint == Some(id) {
                        savepoint = None; // try again
                    }
                    if let Some((_, request)) = side_savepoint.take_if(|(s, _)| *s == id)
                        && let Some(requests) = self.savepoints
                    {
                        requests.finish(
                            request.id,
                            Err(format!(
                                "checkpoint {id} for the savepoint aborted: {reason}"
                            )),
                        );
                    }
                }
                Some(CheckpointAction::FailJob(reason)) => {
                    return CoordinatorEnd::Failed(reason);
                }
            }
        }
    }

    /// Copies completed checkpoint `id` to the stop's target directory or
    /// `state.savepoints.dir`.
    fn keep_savepoint(&self, id: CheckpointId) -> Result<String, StorageError> {
        let target = self
            .savepoint_target
            .and_then(|t| t.lock().ok().and_then(|t| t.clone()));
        self.copy_savepoint(id, target)
    }

    /// Copies completed checkpoint `id` to `target` (default
    /// `state.savepoints.dir`); returns the savepoint's location.
    fn copy_savepoint(
        &self,
        id: CheckpointId,
        target: Option<String>,
    ) -> Result<String, StorageError> {
        let mut at = self.config.clone();
        at.dir = target.unwrap_or_else(|| self.config.savepoint_dir.clone());
        let target = CheckpointStorage::open(&at, self.job)?;
        self.hub.storage.copy_checkpoint(id, &target)
    }

    fn write_metadata(
        &self,
        id: CheckpointId,
        acks: BTreeMap<TaskId, Acknowledgement>,
    ) -> Result<(), StorageError> {
        let tasks = acks
            .into_iter()
            .map(|((vertex, index), ack)| {
                (
                    task_name(&vertex, index),
                    SubtaskState {
                        file: ack.state,
                        size_bytes: ack.full_size_bytes,
                        shared: ack.shared,
                    },
                )
            })
            .collect();
        let metadata = CheckpointMetadata {
            version: 1,
            job: self.job.to_string(),
            id,
            completed_ms: crate::ops::wall_clock_ms(),
            parallelism: self.parallelism.clone(),
            tasks,
        };
        self.hub
            .storage
            .complete(&metadata, self.config.num_retained)
    }
}

/// A subtask's checkpoint after its synchronous phase (taken at the
/// barrier, on the subtask's thread), waiting for the asynchronous phase.
pub(crate) struct SnapshotJob {
    pub(crate) id: CheckpointId,
    pub(crate) task: TaskId,
    pub(crate) alignment_ms: u64,
    pub(crate) head: HeadSnapshot,
    /// `(operator id, state)` of each chained operator that has state.
    pub(crate) ops: Vec<(String, OperatorState)>,
}

/// The asynchronous phase of one subtask's checkpoints, on a thread of
/// its own while the subtask goes on processing: uploads native
/// checkpoints incrementally, writes the state file, acknowledges. Jobs
/// are done in barrier order. `instance` makes shared file names unique
/// to this run of the subtask; `restored_files` are, per operator, the SST
/// files of a restored checkpoint its state took over, which the first
/// checkpoint lists again instead of uploading.
pub(crate) fn snapshot_worker(
    hub: &CheckpointHub,
    instance: &str,
    restored_files: Vec<(String, Vec<SharedFile>)>,
    jobs: Receiver<SnapshotJob>,
) {
    let mut uploaders: BTreeMap<String, Uploader> = restored_files
        .into_iter()
        .map(|(operator, files)| {
            let uploader = Uploader::restored(format!("{instance}-{operator}"), files);
            (operator, uploader)
        })
        .collect();
    for job in jobs {
        let (id, task) = (job.id, job.task.clone());
        let result = finish_snapshot(hub, instance, &mut uploaders, job);
        if let Err(reason) = &result {
            tracing::warn!(
                "{} declines checkpoint {id}: {reason}",
                task_name(&task.0, task.1)
            );
        }
        hub.send(HubEvent::Ack { id, task, result });
    }
}

fn finish_snapshot(
    hub: &CheckpointHub,
    instance: &str,
    uploaders: &mut BTreeMap<String, Uploader>,
    job: SnapshotJob,
) -> Result<Acknowledgement, String> {
    let mut ack = Acknowledgement {
        alignment_ms: job.alignment_ms,
        ..Acknowledgement::default()
    };
    let mut ops = Vec::new();
    for (operator, state) in job.ops {
        let state = match state {
            OperatorState::Full(bytes) => bytes,
            OperatorState::Native(native) => {
                let uploader = uploaders
                    .entry(operator.clone())
                    .or_insert_with(|| Uploader::new(format!("{instance}-{operator}")));
                let uploaded = uploader.upload(job.id, &native, &hub.storage, hub.completed());
                let _ = std::fs::remove_dir_all(&native.dir);
                let uploaded = uploaded?;
                tracing::debug!(
                    "checkpoint {}: `{operator}` uploaded {} SST files ({} bytes), reused {}",
                    job.id,
                    uploaded.uploaded_files,
                    uploaded.uploaded_bytes,
                    uploaded.reused_files
                );
                ack.size_bytes += uploaded.uploaded_bytes;
                ack.full_size_bytes += uploaded.shared_bytes;
                ack.shared.extend(uploaded.shared);
                uploaded.handle
            }
        };
        ops.push(OperatorSnapshot {
            operator,
            state: Cow::Owned(state),
        });
    }
    let bytes = SubtaskSnapshot {
        head: job.head,
        ops,
    }
    .encode()?;
    ack.size_bytes += bytes.len() as u64;
    ack.full_size_bytes += bytes.len() as u64;
    let name = task_name(&job.task.0, job.task.1);
    ack.state = Some(
        hub.storage
            .write_state(job.id, &name, bytes)
            .map_err(|e| e.to_string())?,
    );
    Ok(ack)
}

/// `vertex#index`: a subtask's name in metadata and state file names.
pub(crate) fn task_name(vertex: &str, index: u32) -> String {
    format!("{vertex}#{index}")
}

/// One subtask's state in a checkpoint: its head (source positions or
/// input watermarks) and the state of each chained operator that has some.
/// Decoded from a state file it borrows the operators' state bytes from
/// the file's bytes, so a large full snapshot is held once on restore.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SubtaskSnapshot<'a> {
    pub(crate) head: HeadSnapshot,
    #[serde(borrow)]
    pub(crate) ops: Vec<OperatorSnapshot<'a>>,
}

/// The head of a subtask's chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum HeadSnapshot {
    /// A source: how far each split was read, and its watermark generators.
    Source {
        positions: Vec<SplitPosition>,
        watermarks: Option<SplitWatermarksSnapshot>,
    },
    /// A subtask with inputs: the watermarks of its producers.
    Input { watermarks: InputWatermarksSnapshot },
}

/// One chained operator's state, in its own encoding (`KeyedSnapshot`
/// bytes or an incremental handle for a UDF's keyed state, `WWIN1` for a
/// window, `WJN1` for a join). Postcard writes the
/// bytes as a length and the bytes, whether owned or borrowed, as it wrote
/// the `Vec<u8>` of earlier versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OperatorSnapshot<'a> {
    pub(crate) operator: String,
    #[serde(borrow)]
    pub(crate) state: Cow<'a, [u8]>,
}

/// The first bytes of a subtask state file (format version 1).
const MAGIC: &[u8] = b"WSUB1";

impl<'a> SubtaskSnapshot<'a> {
    /// `WSUB1` then the snapshot in postcard's encoding.
    pub(crate) fn encode(&self) -> Result<Vec<u8>, String> {
        // Room for the state plus a little for the head and the names, so
        // a large state is not copied again each time the buffer grows.
        let size: usize = self.ops.iter().map(|o| o.state.len() + 64).sum();
        let mut bytes = Vec::with_capacity(MAGIC.len() + 256 + size);
        bytes.extend_from_slice(MAGIC);
        postcard::to_io(self, &mut bytes).map_err(|e| e.to_string())?;
        Ok(bytes)
    }

    /// Reads what [`SubtaskSnapshot::encode`] wrote, borrowing the
    /// operators' state from `bytes`.
    ///
    /// # Errors
    /// A message when the bytes are not such a snapshot.
    pub(crate) fn decode(bytes: &'a [u8]) -> Result<Self, String> {
        let body = bytes
            .strip_prefix(MAGIC)
            .ok_or("not a Weir subtask state file (no WSUB1 header)")?;
        postcard::from_bytes(body).map_err(|e| format!("damaged subtask state: {e}"))
    }

    /// The state of `operator` in this snapshot, if it has any.
    pub(crate) fn operator(&self, operator: &str) -> Option<&[u8]> {
        self.ops
            .iter()
            .find(|o| o.operator == operator)
            .map(|o| o.state.as_ref())
    }
}

/// A subtask state file brought back from checkpoint storage: its name
/// and bytes, which [`StateFile::decode`] reads without copying.
#[derive(Debug)]
pub(crate) struct StateFile {
    name: String,
    bytes: Vec<u8>,
}

impl StateFile {
    /// The snapshot in the file.
    ///
    /// # Errors
    /// [`JobError::Checkpoint`] naming the checkpoint and the file.
    pub(crate) fn decode(&self, restored: &Restored) -> Result<SubtaskSnapshot<'_>, JobError> {
        SubtaskSnapshot::decode(&self.bytes).map_err(|e| {
            JobError::Checkpoint(format!(
                "checkpoint {}: state file {}: {e}",
                restored.metadata.id, self.name
            ))
        })
    }
}

/// The state files a new subtask `index` of chain `head` (at
/// `parallelism`) restores from: its own old one when the parallelism is
/// unchanged, all old subtasks' otherwise (each keeps what belongs to it:
/// key groups, splits). The caller decodes them ([`StateFile::decode`]).
///
/// # Errors
/// [`JobError::Checkpoint`] naming a state file that is missing or damaged.
pub(crate) fn load_subtask(
    restored: &Restored,
    head: &str,
    index: u32,
    parallelism: u32,
) -> Result<Vec<StateFile>, JobError> {
    let Some(&old) = restored.metadata.parallelism.get(head) else {
        return Ok(Vec::new()); // a vertex the checkpoint does not know
    };
    let indices: Vec<u32> = if old == parallelism {
        vec![index]
    } else {
        (0..old).collect()
    };
    let mut files = Vec::new();
    for i in indices {
        let task = task_name(head, i);
        let Some(file) = restored
            .metadata
            .tasks
            .get(&task)
            .and_then(|t| t.file.clone())
        else {
            continue;
        };
        let bytes = restored
            .storage
            .read_state(&file)
            .map_err(|e| JobError::Checkpoint(e.to_string()))?;
        files.push(StateFile {
            name: format!("{file} of {task}"),
            bytes,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtask_snapshots_round_trip_and_damage_is_an_error() {
        let snapshot = SubtaskSnapshot {
            head: HeadSnapshot::Source {
                positions: vec![SplitPosition {
                    split: 2,
                    offset: 1234,
                    line: 17,
                    finished: false,
                }],
                watermarks: Some(SplitWatermarksSnapshot {
                    max_timestamps: vec![(2, 99)],
                    emitted: Some(98),
                }),
            },
            ops: vec![OperatorSnapshot {
                operator: "w".into(),
                state: Cow::Owned(vec![0, 1, 2, 255]),
            }],
        };
        let bytes = snapshot.encode().unwrap();
        let back = SubtaskSnapshot::decode(&bytes).unwrap();
        assert_eq!(back.operator("w"), Some(&[0u8, 1, 2, 255][..]));
        assert!(
            matches!(back.ops[0].state, Cow::Borrowed(_)),
            "state is borrowed from the file's bytes"
        );
        assert_eq!(back.operator("x"), None);
        assert!(
            matches!(back.head, HeadSnapshot::Source { ref positions, .. } if positions[0].offset == 1234)
        );
        assert!(SubtaskSnapshot::decode(&bytes[..bytes.len() - 3]).is_err());
        assert!(
            SubtaskSnapshot::decode(b"{}")
                .unwrap_err()
                .contains("WSUB1")
        );
    }

    /// State files written when operator state was an owned `Vec<u8>`
    /// decode as before: postcard writes both as a length and the bytes.
    #[test]
    fn state_files_of_earlier_versions_decode() {
        #[derive(Serialize)]
        struct EarlierOperatorSnapshot {
            operator: String,
            state: Vec<u8>,
        }
        #[derive(Serialize)]
        struct EarlierSubtaskSnapshot {
            head: HeadSnapshot,
            ops: Vec<EarlierOperatorSnapshot>,
        }
        let state: Vec<u8> = (0..=255).cycle().take(1000).collect();
        let head = || HeadSnapshot::Input {
            watermarks: InputWatermarksSnapshot::default(),
        };
        let mut earlier = MAGIC.to_vec();
        earlier.extend(
            postcard::to_allocvec(&EarlierSubtaskSnapshot {
                head: head(),
                ops: vec![EarlierOperatorSnapshot {
                    operator: "blobs".into(),
                    state: state.clone(),
                }],
            })
            .unwrap(),
        );
        let now = SubtaskSnapshot {
            head: head(),
            ops: vec![OperatorSnapshot {
                operator: "blobs".into(),
                state: Cow::Borrowed(&state),
            }],
        };
        assert_eq!(now.encode().unwrap(), earlier);
        let back = SubtaskSnapshot::decode(&earlier).unwrap();
        assert_eq!(back.operator("blobs"), Some(state.as_slice()));
    }
}
