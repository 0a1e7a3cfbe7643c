//! The incremental handle of RocksDB keyed state (`WKI2`, and `WKI1` of
//! earlier versions): which SST files in checkpoint storage make up the
//! state, with their sizes and CRC-32s, and the small files inline. See
//! `weir-task`'s `incremental` module for how checkpoints upload them.

use serde::{Deserialize, Serialize};

use crate::SnapshotError;

/// First bytes of an operator state that is an [`IncrementalHandle`]
/// (a full keyed snapshot starts with `WKS1`): `WKI2` since shared files
/// carry their CRC-32; `WKI1` handles (without) still decode.
pub const MAGIC: &[u8; 4] = b"WKI2";
/// The magic of handles written before shared files had a CRC-32.
pub const MAGIC_V1: &[u8; 4] = b"WKI1";

/// An operator's keyed state in an incremental checkpoint: where its SST
/// files are, and its small files inline. Encoded as `WKI2` + postcard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncrementalHandle {
    /// SST files in checkpoint storage.
    pub shared: Vec<SharedFile>,
    /// `(file name, bytes)` of the other files of the native checkpoint.
    pub private: Vec<(String, Vec<u8>)>,
}

/// One SST file of an [`IncrementalHandle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedFile {
    /// Its name in the native checkpoint directory (`000012.sst`).
    pub local: String,
    /// Where it is in checkpoint storage (`shared/<name>`).
    pub stored: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// CRC-32 of its bytes (`weir_checkpoint::crc32`), checked when it is
    /// fetched; `None` in `WKI1` handles.
    pub crc32: Option<u32>,
}

/// A `WKI1` handle's shared file: [`SharedFile`] without the CRC-32.
#[derive(Deserialize)]
struct SharedFileV1 {
    local: String,
    stored: String,
    size_bytes: u64,
}

/// A `WKI1` handle.
#[derive(Deserialize)]
struct IncrementalHandleV1 {
    shared: Vec<SharedFileV1>,
    private: Vec<(String, Vec<u8>)>,
}

impl IncrementalHandle {
    /// Whether operator state bytes are an incremental handle.
    pub fn is_handle(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC) || bytes.starts_with(MAGIC_V1)
    }

    /// `WKI2` then the handle in postcard's encoding.
    ///
    /// # Errors
    /// [`SnapshotError::Encode`] when postcard cannot encode it.
    pub fn encode(&self) -> Result<Vec<u8>, SnapshotError> {
        let mut out = MAGIC.to_vec();
        postcard::to_io(self, &mut out).map_err(|e| SnapshotError::Encode(e.to_string()))?;
        Ok(out)
    }

    /// Reads a `WKI2` or `WKI1` handle.
    ///
    /// # Errors
    /// [`SnapshotError::Damaged`] when the bytes are not a handle.
    pub fn decode(bytes: &[u8]) -> Result<Self, SnapshotError> {
        let corrupt = |e: postcard::Error| {
            SnapshotError::Damaged(format!("incremental state handle is corrupt: {e}"))
        };
        if let Some(body) = bytes.strip_prefix(MAGIC.as_slice()) {
            return postcard::from_bytes(body).map_err(corrupt);
        }
        let body = bytes.strip_prefix(MAGIC_V1.as_slice()).ok_or_else(|| {
            SnapshotError::Damaged("not an incremental state handle (no WKI2 header)".into())
        })?;
        let v1: IncrementalHandleV1 = postcard::from_bytes(body).map_err(corrupt)?;
        Ok(Self {
            shared: v1
                .shared
                .into_iter()
                .map(|f| SharedFile {
                    local: f.local,
                    stored: f.stored,
                    size_bytes: f.size_bytes,
                    crc32: None,
                })
                .collect(),
            private: v1.private,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_handles_are_errors() {
        assert!(IncrementalHandle::decode(b"WKS1....").is_err());
        let handle = IncrementalHandle {
            shared: vec![SharedFile {
                local: "1.sst".into(),
                stored: "shared/a-1.sst".into(),
                size_bytes: 3,
                crc32: Some(0xdead_beef),
            }],
            private: vec![("CURRENT".into(), b"x".to_vec())],
        };
        let bytes = handle.encode().unwrap();
        assert!(IncrementalHandle::is_handle(&bytes));
        assert_eq!(IncrementalHandle::decode(&bytes).unwrap(), handle);
        for cut in 4..bytes.len() {
            assert!(
                IncrementalHandle::decode(&bytes[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }

    /// Handles written before shared files carried a CRC-32 restore as
    /// before, unchecked.
    #[test]
    fn wki1_handles_of_earlier_versions_decode() {
        #[derive(Serialize)]
        struct V1File<'a>(&'a str, &'a str, u64);
        #[derive(Serialize)]
        struct V1<'a> {
            shared: Vec<V1File<'a>>,
            private: Vec<(String, Vec<u8>)>,
        }
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend(
            postcard::to_allocvec(&V1 {
                shared: vec![V1File("1.sst", "shared/a-1.sst", 3)],
                private: vec![("CURRENT".into(), b"x".to_vec())],
            })
            .unwrap(),
        );
        assert!(IncrementalHandle::is_handle(&bytes));
        let handle = IncrementalHandle::decode(&bytes).unwrap();
        assert_eq!(
            handle.shared,
            [SharedFile {
                local: "1.sst".into(),
                stored: "shared/a-1.sst".into(),
                size_bytes: 3,
                crc32: None,
            }]
        );
        assert_eq!(handle.private, [("CURRENT".to_string(), b"x".to_vec())]);
    }
}
