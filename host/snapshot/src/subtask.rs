//! The subtask state file (`WSUB1`): what one subtask wrote for one
//! checkpoint.
//!
//! # Format, version 1
//!
//! The 5 bytes `WSUB1`, then a [`SubtaskSnapshot`] in the [postcard wire
//! format] (version 1): the head ([`HeadSnapshot`]: source split positions
//! and watermark generators, or the input watermarks of each producer),
//! then per chained operator with state its id and its state bytes (a
//! length, then the bytes), in an encoding of its own: `WKI2`/`WKI1`
//! ([`crate::IncrementalHandle`]) or `WKS1` (a full keyed snapshot) for a
//! UDF's keyed state, `WOS1` ([`crate::decode_operator_state`]) for its
//! operator state, `WWIN1` for a window, `WJN1` for a join.
//!
//! [postcard wire format]: https://postcard.jamesmunns.com/wire-format

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use weir_connectors::SplitPosition;

use crate::SnapshotError;
use crate::watermark::{InputWatermarksSnapshot, SplitWatermarksSnapshot};

/// One subtask's state in a checkpoint: its head (source positions or
/// input watermarks) and the state of each chained operator that has some.
/// Decoded from a state file it borrows the operators' state bytes from
/// the file's bytes, so a large full snapshot is held once on restore.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubtaskSnapshot<'a> {
    /// The head of its chain.
    pub head: HeadSnapshot,
    #[serde(borrow)]
    /// Each chained operator's state, for those that have some.
    pub ops: Vec<OperatorSnapshot<'a>>,
}

/// The head of a subtask's chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HeadSnapshot {
    /// A source: how far each split was read, and its watermark generators.
    Source {
        /// Each split's position.
        positions: Vec<SplitPosition>,
        /// The watermark generators, when the source has any.
        watermarks: Option<SplitWatermarksSnapshot>,
    },
    /// A subtask with inputs: the watermarks of its producers.
    Input {
        /// The last watermark of each producer.
        watermarks: InputWatermarksSnapshot,
    },
}

/// One chained operator's state, in its own encoding (`KeyedSnapshot`
/// bytes or an incremental handle for a UDF's keyed state, `WWIN1` for a
/// window, `WJN1` for a join). Postcard writes the
/// bytes as a length and the bytes, whether owned or borrowed, as it wrote
/// the `Vec<u8>` of earlier versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OperatorSnapshot<'a> {
    /// The operator's id (a UDF's operator state: `<id>/operator-state`).
    pub operator: String,
    #[serde(borrow)]
    /// Its state bytes, in the operator's own encoding.
    pub state: Cow<'a, [u8]>,
}

/// The first bytes of a subtask state file (format version 1).
pub const MAGIC: &[u8] = b"WSUB1";

impl<'a> SubtaskSnapshot<'a> {
    /// `WSUB1` then the snapshot in postcard's encoding.
    ///
    /// # Errors
    /// [`SnapshotError::Encode`] when postcard cannot encode it.
    pub fn encode(&self) -> Result<Vec<u8>, SnapshotError> {
        // Room for the state plus a little for the head and the names, so
        // a large state is not copied again each time the buffer grows.
        let size: usize = self.ops.iter().map(|o| o.state.len() + 64).sum();
        let mut bytes = Vec::with_capacity(MAGIC.len() + 256 + size);
        bytes.extend_from_slice(MAGIC);
        postcard::to_io(self, &mut bytes).map_err(|e| SnapshotError::Encode(e.to_string()))?;
        Ok(bytes)
    }

    /// Reads what [`SubtaskSnapshot::encode`] wrote, borrowing the
    /// operators' state from `bytes`.
    ///
    /// # Errors
    /// [`SnapshotError::Damaged`] when the bytes are not such a snapshot.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, SnapshotError> {
        let body = bytes.strip_prefix(MAGIC).ok_or_else(|| {
            SnapshotError::Damaged("not a Weir subtask state file (no WSUB1 header)".into())
        })?;
        postcard::from_bytes(body)
            .map_err(|e| SnapshotError::Damaged(format!("damaged subtask state: {e}")))
    }

    /// The state of `operator` in this snapshot, if it has any.
    pub fn operator(&self, operator: &str) -> Option<&[u8]> {
        self.ops
            .iter()
            .find(|o| o.operator == operator)
            .map(|o| o.state.as_ref())
    }
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
                .to_string()
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
