//! The encoding of one subtask's snapshot in checkpoint storage (`WSUB1`
//! state files) and loading a subtask's part of a completed checkpoint.

use weir_state::NativeCheckpoint;

pub(crate) use weir_snapshot::{HeadSnapshot, OperatorSnapshot, SubtaskSnapshot};

use crate::JobError;
use crate::deployment::TaskRestore;
use weir_checkpoint::{CheckpointMetadata, CheckpointStorage};

/// Why a subtask could not take its part of a checkpoint back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RestoreError {
    /// The checkpoint's bytes are damaged: a file whose CRC-32 differs
    /// from the recorded one, or a state handle that does not decode. The
    /// JobManager falls back to an older checkpoint.
    #[error("{0}")]
    Damaged(String),
    /// Anything else: the guest's restore failed, a local directory
    /// cannot be written, a file cannot be fetched.
    #[error("{0}")]
    Failed(String),
}

impl RestoreError {
    /// The same error, its message prefixed with `context: `.
    pub(crate) fn context(self, context: &str) -> Self {
        match self {
            Self::Damaged(m) => Self::Damaged(format!("{context}: {m}")),
            Self::Failed(m) => Self::Failed(format!("{context}: {m}")),
        }
    }

    /// A storage error: [`weir_checkpoint::StorageError::Damaged`] is
    /// damage, anything else a failure.
    pub(crate) fn of_storage(error: weir_checkpoint::StorageError) -> Self {
        match error {
            e @ weir_checkpoint::StorageError::Damaged { .. } => Self::Damaged(e.to_string()),
            e => Self::Failed(e.to_string()),
        }
    }
}

impl RestoreError {
    /// A keyed-state error: damaged bytes (a snapshot that does not
    /// decode, RocksDB's `Corruption`) are damage, anything else a failure.
    pub(crate) fn of_state(error: weir_state::StateError) -> Self {
        match error.is_damage() {
            true => Self::Damaged(error.to_string()),
            false => Self::Failed(error.to_string()),
        }
    }

    /// A window's or join's restore error, keeping its kind.
    pub(crate) fn of_operator(error: weir_operators::StateRestoreError) -> Self {
        match error {
            weir_operators::StateRestoreError::Damaged(m) => Self::Damaged(m),
            weir_operators::StateRestoreError::Incompatible(m) => Self::Failed(m),
        }
    }
}

impl From<String> for RestoreError {
    fn from(message: String) -> Self {
        Self::Failed(message)
    }
}

/// A completed checkpoint to start from, and the storage it is in.
#[derive(Debug)]
pub(crate) struct Restored {
    pub(crate) storage: CheckpointStorage,
    pub(crate) metadata: CheckpointMetadata,
}

/// One operator's state at a barrier, before the asynchronous phase of
/// the checkpoint writes it out.
pub(crate) enum OperatorState {
    /// Bytes to write as they are.
    Full(Vec<u8>),
    /// A native checkpoint of keyed state to upload incrementally.
    Native(NativeCheckpoint),
}

/// `vertex#index`: a subtask's name in metadata and state file names.
pub(crate) fn task_name(vertex: &str, index: u32) -> String {
    format!("{vertex}#{index}")
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
    /// [`JobError::DamagedCheckpoint`] naming the file.
    pub(crate) fn decode(&self, restored: &Restored) -> Result<SubtaskSnapshot<'_>, JobError> {
        SubtaskSnapshot::decode(&self.bytes).map_err(|e| JobError::DamagedCheckpoint {
            checkpoint: restored.metadata.id,
            message: format!("state file {}: {e}", self.name),
        })
    }
}

/// Reads the state files `restore` names from the restored checkpoint's
/// storage, checking each one's CRC-32 where the metadata records it. The
/// caller decodes them ([`StateFile::decode`]).
///
/// # Errors
/// [`JobError::DamagedCheckpoint`] naming a state file whose CRC-32
/// differs; [`JobError::Checkpoint`] naming one that cannot be read.
pub(crate) fn load_state_files(
    restored: &Restored,
    restore: &TaskRestore,
) -> Result<Vec<StateFile>, JobError> {
    restore
        .state_files
        .iter()
        .map(|(task, file)| {
            let crc32 = restored.metadata.tasks.get(task).and_then(|t| t.crc32);
            let bytes = restored
                .storage
                .read_state_checked(file, crc32)
                .map_err(|e| match e {
                    e @ weir_checkpoint::StorageError::Damaged { .. } => {
                        JobError::DamagedCheckpoint {
                            checkpoint: restored.metadata.id,
                            message: e.to_string(),
                        }
                    }
                    e => JobError::Checkpoint(e.to_string()),
                })?;
            Ok(StateFile {
                name: format!("{file} of {task}"),
                bytes,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::RestoreError;

    #[test]
    fn undecodable_keyed_window_and_join_state_is_damage_and_a_changed_job_is_not() {
        let damaged = [
            RestoreError::of_state(
                weir_state::KeyedSnapshot::from_bytes(b"WKS1\0")
                    .unwrap_err()
                    .into(),
            ),
            RestoreError::of_state(weir_state::StateError::RocksDbCorruption {
                path: "db".into(),
                message: "block checksum mismatch".into(),
            }),
            RestoreError::of_operator(weir_operators::StateRestoreError::Damaged("cut".into())),
        ];
        for e in damaged {
            assert!(matches!(e, RestoreError::Damaged(_)), "{e:?}");
        }
        let failed = [
            RestoreError::of_state(weir_state::StateError::RocksDb {
                path: "db".into(),
                message: "no space left on device".into(),
            }),
            RestoreError::of_operator(weir_operators::StateRestoreError::Incompatible(
                "holds panes".into(),
            )),
        ];
        for e in failed {
            assert!(matches!(e, RestoreError::Failed(_)), "{e:?}");
        }
    }
}
