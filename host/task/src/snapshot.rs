//! The encoding of one subtask's snapshot in checkpoint storage (`WSUB1`
//! state files) and loading a subtask's part of a completed checkpoint.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use weir_connectors::SplitPosition;
use weir_state::NativeCheckpoint;

use crate::JobError;
use crate::deployment::TaskRestore;
use crate::watermark::{InputWatermarksSnapshot, SplitWatermarksSnapshot};
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
