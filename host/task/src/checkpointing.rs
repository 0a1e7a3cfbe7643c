//! Checkpoints seen from the task side (see `driver` for the flow of a
//! checkpoint): finding the completed checkpoint a run restores, and the
//! asynchronous phase of a subtask's checkpoints (its snapshot worker).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use crossbeam_channel::{Receiver, Sender};
use weir_checkpoint::{
    Acknowledgement, CheckpointConfig, CheckpointId, CheckpointStorage, StorageError, TaskId,
};

use crate::JobError;
use crate::control::TaskEvent;
use crate::incremental::{SharedFile, Uploader};
use crate::snapshot::{
    HeadSnapshot, OperatorSnapshot, OperatorState, Restored, SubtaskSnapshot, task_name,
};

/// Where a job resumes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restore {
    /// The newest completed checkpoint of the job under the configured
    /// checkpoint directory (older ones when it is damaged).
    Latest,
    /// A checkpoint directory `.../<job>/chk-<n>` (or its `_metadata` file).
    Checkpoint(std::path::PathBuf),
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
    damaged: &std::collections::BTreeSet<String>,
) -> Result<Restored, JobError> {
    let error = |e: StorageError| JobError::Checkpoint(e.to_string());
    match restore {
        Restore::Latest => {
            let storage = CheckpointStorage::open(config, job).map_err(error)?;
            let skip: std::collections::BTreeSet<CheckpointId> = storage
                .completed()
                .map_err(error)?
                .into_iter()
                .filter(|id| damaged.contains(&storage.checkpoint_location(*id)))
                .collect();
            let (metadata, warnings) = match storage.latest_skipping(&skip) {
                Err(StorageError::NoCheckpoint { .. }) if !skip.is_empty() => {
                    return Err(JobError::Checkpoint(format!(
                        "every retained checkpoint of job `{job}` is damaged ({}); \
                         nothing older is left to fall back to",
                        skip.iter()
                            .map(|id| format!("chk-{id}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                other => other.map_err(error)?,
            };
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            if let Some(newest) = skip.last() {
                tracing::warn!(
                    "restoring checkpoint {} of job `{job}`: checkpoint {newest} is damaged \
                     (see the failure before this one), so the job falls back to the next \
                     older retained checkpoint",
                    metadata.id
                );
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
            if damaged.contains(&storage.checkpoint_location(id)) {
                return Err(JobError::Checkpoint(format!(
                    "{} is damaged (see the failure before this one), and a job started \
                     from a given checkpoint or savepoint has no older one to fall back to",
                    storage.checkpoint_location(id)
                )));
            }
            let metadata = storage.load(id).map_err(error)?;
            Ok(Restored { storage, metadata })
        }
    }
}

/// A subtask's checkpoint after its synchronous phase (taken at the
/// barrier, on the subtask's thread), waiting for the asynchronous phase.
pub(crate) struct SnapshotJob {
    pub(crate) id: CheckpointId,
    /// The newest checkpoint completed when this one was taken (shared
    /// files it has are not uploaded again).
    pub(crate) completed: CheckpointId,
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
    storage: &CheckpointStorage,
    instance: &str,
    restored_files: Vec<(String, Vec<SharedFile>)>,
    jobs: Receiver<SnapshotJob>,
    events: &Sender<TaskEvent>,
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
        let event = match finish_snapshot(storage, instance, &mut uploaders, job) {
            Ok(ack) => TaskEvent::Acknowledge {
                task,
                checkpoint: id,
                ack,
            },
            Err(reason) => {
                tracing::warn!(
                    "{} declines checkpoint {id}: {reason}",
                    task_name(&task.0, task.1)
                );
                TaskEvent::Decline {
                    task,
                    checkpoint: id,
                    reason,
                }
            }
        };
        // The driver goes away only when every task has exited.
        let _ = events.send(event);
    }
}

fn finish_snapshot(
    storage: &CheckpointStorage,
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
                let uploaded = uploader.upload(job.id, &native, storage, job.completed);
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
    .encode()
    .map_err(|e| e.to_string())?;
    ack.size_bytes += bytes.len() as u64;
    ack.full_size_bytes += bytes.len() as u64;
    ack.state_crc32 = Some(weir_checkpoint::crc32(&bytes));
    let name = task_name(&job.task.0, job.task.1);
    ack.state = Some(
        storage
            .write_state(job.id, &name, bytes)
            .map_err(|e| e.to_string())?,
    );
    Ok(ack)
}
