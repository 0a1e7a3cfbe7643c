//! Incremental checkpoints of RocksDB keyed state, after Flink's
//! `RocksIncrementalSnapshotStrategy`.
//!
//! At barrier `n` the backend writes a native checkpoint (RocksDB's
//! `Checkpoint`: hard links to the live SST files). SST files never change
//! once written, so each is uploaded once, to `shared/` in checkpoint
//! storage, under a name unique to the backend instance; checkpoint `n`
//! lists the SST files it needs and uploads only those the last completed
//! checkpoint did not already have. The small mutable files (`MANIFEST`,
//! `CURRENT`, `OPTIONS`) travel inside the operator's state bytes.
//!
//! Storage deletes a shared file once no retained checkpoint lists it
//! ([`CheckpointStorage`]'s reference counting), so the baseline an upload
//! reuses must be a checkpoint still retained: the newest completed one the
//! subtask knew of at the barrier. When a newer one completed meanwhile,
//! that one lists every SST file still live in the subtask's state
//! (reused or uploaded), so a live file reused from the older baseline is
//! retained too.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use weir_checkpoint::{CheckpointId, CheckpointStorage};
use weir_state::NativeCheckpoint;

use crate::snapshot::RestoreError;

/// First bytes of an operator state that is an [`IncrementalHandle`]
/// (a full keyed snapshot starts with `WKS1`): `WKI2` since shared files
/// carry their CRC-32; `WKI1` handles (without) still decode.
const MAGIC: &[u8; 4] = b"WKI2";
/// The magic of handles written before shared files had a CRC-32.
const MAGIC_V1: &[u8; 4] = b"WKI1";

/// An operator's keyed state in an incremental checkpoint: where its SST
/// files are, and its small files inline. Encoded as `WKI2` + postcard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IncrementalHandle {
    /// SST files in checkpoint storage.
    pub(crate) shared: Vec<SharedFile>,
    /// `(file name, bytes)` of the other files of the native checkpoint.
    pub(crate) private: Vec<(String, Vec<u8>)>,
}

/// One SST file of an [`IncrementalHandle`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SharedFile {
    /// Its name in the native checkpoint directory (`000012.sst`).
    pub(crate) local: String,
    /// Where it is in checkpoint storage (`shared/<name>`).
    pub(crate) stored: String,
    /// Size in bytes.
    pub(crate) size_bytes: u64,
    /// CRC-32 of its bytes (`weir_checkpoint::crc32`), checked when it is
    /// fetched; `None` in `WKI1` handles.
    pub(crate) crc32: Option<u32>,
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
    pub(crate) fn is_handle(bytes: &[u8]) -> bool {
        bytes.starts_with(MAGIC) || bytes.starts_with(MAGIC_V1)
    }

    pub(crate) fn encode(&self) -> Result<Vec<u8>, String> {
        let mut out = MAGIC.to_vec();
        postcard::to_io(self, &mut out).map_err(|e| format!("encoding a state handle: {e}"))?;
        Ok(out)
    }

    /// Reads a `WKI2` or `WKI1` handle.
    ///
    /// # Errors
    /// [`RestoreError::Damaged`] when the bytes are not a handle.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, RestoreError> {
        let corrupt = |e: postcard::Error| {
            RestoreError::Damaged(format!("incremental state handle is corrupt: {e}"))
        };
        if let Some(body) = bytes.strip_prefix(MAGIC.as_slice()) {
            return postcard::from_bytes(body).map_err(corrupt);
        }
        let body = bytes.strip_prefix(MAGIC_V1.as_slice()).ok_or_else(|| {
            RestoreError::Damaged("not an incremental state handle (no WKI2 header)".into())
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

    /// Writes the handle's files into `dir` (created; it must not hold
    /// another database), fetching the SST files from `storage` and
    /// checking each one's CRC-32.
    ///
    /// # Errors
    /// [`RestoreError::Damaged`] naming an SST file whose CRC-32 differs;
    /// [`RestoreError::Failed`] naming the file that could not be fetched
    /// or written.
    pub(crate) fn download(
        &self,
        storage: &CheckpointStorage,
        dir: &Path,
    ) -> Result<(), RestoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        for file in &self.shared {
            storage
                .fetch_file_checked(&file.stored, &dir.join(&file.local), file.crc32)
                .map_err(RestoreError::of_storage)?;
        }
        for (name, bytes) in &self.private {
            let path = dir.join(name);
            std::fs::write(&path, bytes)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// What one upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Uploaded {
    /// The operator's state bytes (an encoded [`IncrementalHandle`]).
    pub(crate) handle: Vec<u8>,
    /// Every shared file the handle refers to.
    pub(crate) shared: Vec<String>,
    /// Bytes of the SST files uploaded now.
    pub(crate) uploaded_bytes: u64,
    /// Bytes of every SST file the handle refers to.
    pub(crate) shared_bytes: u64,
    /// SST files uploaded now.
    pub(crate) uploaded_files: usize,
    /// SST files reused from an earlier checkpoint.
    pub(crate) reused_files: usize,
}

/// Uploads the native checkpoints of one backend instance, remembering
/// which SST files each of its checkpoints put into storage.
#[derive(Debug)]
pub(crate) struct Uploader {
    /// Prefix of the shared names, unique to the backend instance (SST
    /// numbers restart in a new database).
    instance: String,
    /// The SST files of each checkpoint this instance took part in.
    uploaded: BTreeMap<CheckpointId, Vec<SharedFile>>,
}

impl Uploader {
    pub(crate) fn new(instance: String) -> Self {
        Self {
            instance,
            uploaded: BTreeMap::new(),
        }
    }

    /// An uploader whose backend took over a restored native checkpoint
    /// (`KeyedState::adopt_native`) with these SST files, which sit in the
    /// same checkpoint storage: its first checkpoint lists the ones still
    /// live instead of uploading them again (Flink seeds its uploader with
    /// the restored handle the same way). They count as a checkpoint
    /// completed before any of this run's (id 0), so they are the baseline
    /// until one of this run's completes.
    pub(crate) fn restored(instance: String, files: Vec<SharedFile>) -> Self {
        Self {
            instance,
            uploaded: BTreeMap::from([(0, files)]),
        }
    }

    /// Uploads checkpoint `id`'s native checkpoint: SST files the newest
    /// checkpoint of this instance that is `<= completed` already has are
    /// referenced again, the others are written to `shared/`.
    ///
    /// # Errors
    /// A message naming the file that could not be read or written.
    pub(crate) fn upload(
        &mut self,
        id: CheckpointId,
        native: &NativeCheckpoint,
        storage: &CheckpointStorage,
        completed: CheckpointId,
    ) -> Result<Uploaded, String> {
        let baseline: BTreeMap<&str, &SharedFile> = self
            .uploaded
            .range(..=completed)
            .next_back()
            .map(|(_, files)| files.iter().map(|f| (f.local.as_str(), f)).collect())
            .unwrap_or_default();
        let read = |name: &str| {
            let path = native.dir.join(name);
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let mut handle = IncrementalHandle {
            shared: Vec::new(),
            private: Vec::new(),
        };
        let mut done = Uploaded::default();
        for file in &native.files {
            if !file.is_immutable() {
                handle.private.push((file.name.clone(), read(&file.name)?));
                continue;
            }
            done.shared_bytes += file.size_bytes;
            let shared = match baseline.get(file.name.as_str()) {
                Some(known) if known.size_bytes == file.size_bytes => {
                    done.reused_files += 1;
                    (*known).clone()
                }
                _ => {
                    let name = format!("{}-{}", self.instance, file.name);
                    let path = native.dir.join(&file.name);
                    let crc32 = weir_checkpoint::file_crc32(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                    let stored = storage
                        .write_shared_file(&name, &path)
                        .map_err(|e| e.to_string())?;
                    done.uploaded_files += 1;
                    done.uploaded_bytes += file.size_bytes;
                    SharedFile {
                        local: file.name.clone(),
                        stored,
                        size_bytes: file.size_bytes,
                        crc32: Some(crc32),
                    }
                }
            };
            handle.shared.push(shared);
        }
        done.shared = handle.shared.iter().map(|f| f.stored.clone()).collect();
        done.handle = handle.encode()?;
        // Older checkpoints can no longer be a baseline.
        if let Some(base) = self
            .uploaded
            .range(..=completed)
            .next_back()
            .map(|(k, _)| *k)
        {
            self.uploaded = self.uploaded.split_off(&base);
        }
        self.uploaded.insert(id, handle.shared);
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_checkpoint::CheckpointConfig;
    use weir_state::{KeyGroupRange, KeyedState, MemoryBackend, RocksDbBackend};

    fn fill(state: &mut KeyedState, keys: std::ops::Range<u32>) {
        for i in keys {
            state.set_current_key(format!("k{i}").as_bytes()).unwrap();
            state.value_set("v", &[7; 100]).unwrap();
        }
    }

    #[test]
    fn incremental_checkpoints_upload_only_new_sst_files() {
        let dir = tempfile::tempdir().unwrap();
        let config = CheckpointConfig {
            dir: dir.path().join("checkpoints").display().to_string(),
            ..CheckpointConfig::default()
        };
        let storage = CheckpointStorage::open(&config, "job").unwrap();
        let backend = RocksDbBackend::open(&dir.path().join("db")).unwrap();
        let mut state = KeyedState::new(Box::new(backend), KeyGroupRange::all(128), 128);
        let mut uploader = Uploader::new("op-0-x".into());
        let checkpoint = |state: &mut KeyedState, uploader: &mut Uploader, id, completed| {
            let native = state
                .native_checkpoint(&dir.path().join(format!("native-{id}")))
                .unwrap()
                .unwrap();
            uploader.upload(id, &native, &storage, completed).unwrap()
        };

        fill(&mut state, 0..1000);
        let first = checkpoint(&mut state, &mut uploader, 1, 0);
        assert_eq!((first.uploaded_files, first.reused_files), (1, 0));
        fill(&mut state, 1000..2000);
        let second = checkpoint(&mut state, &mut uploader, 2, 1);
        // Only the SST file flushed since checkpoint 1 goes up.
        assert_eq!((second.uploaded_files, second.reused_files), (1, 1));
        assert!(second.shared.contains(&first.shared[0]));
        assert_eq!(
            second.uploaded_bytes,
            second.shared_bytes - first.shared_bytes
        );
        // Checkpoint 2 never completed: checkpoint 3 builds on checkpoint 1
        // again, so it uploads what 2 uploaded too (storage may have
        // deleted it as unreferenced).
        fill(&mut state, 2000..2100);
        let third = checkpoint(&mut state, &mut uploader, 3, 1);
        assert_eq!((third.uploaded_files, third.reused_files), (2, 1));
        // Nothing new since 3: nothing but the small files goes up.
        let fourth = checkpoint(&mut state, &mut uploader, 4, 3);
        assert_eq!((fourth.uploaded_files, fourth.reused_files), (0, 3));
        assert_eq!(fourth.shared, third.shared);

        // The handle brings the whole state back.
        let handle = IncrementalHandle::decode(&fourth.handle).unwrap();
        let restored_dir = dir.path().join("restored");
        handle.download(&storage, &restored_dir).unwrap();
        let mut restored =
            KeyedState::new(Box::new(MemoryBackend::new()), KeyGroupRange::all(128), 128);
        restored.restore_native(&restored_dir).unwrap();
        assert_eq!(restored.snapshot().unwrap(), state.snapshot().unwrap());
        assert_eq!(state.snapshot().unwrap().entries.len(), 2100);
    }

    #[test]
    fn after_a_restore_in_place_the_restored_sst_files_are_not_uploaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let config = CheckpointConfig {
            dir: dir.path().join("checkpoints").display().to_string(),
            ..CheckpointConfig::default()
        };
        let storage = CheckpointStorage::open(&config, "job").unwrap();
        let range = KeyGroupRange::all(128);
        let backend = RocksDbBackend::open(&dir.path().join("db")).unwrap();
        let mut state = KeyedState::new(Box::new(backend), range, 128);
        fill(&mut state, 0..1000);
        let native = state
            .native_checkpoint(&dir.path().join("n1"))
            .unwrap()
            .unwrap();
        let first = Uploader::new("run1".into())
            .upload(1, &native, &storage, 0)
            .unwrap();
        let handle = IncrementalHandle::decode(&first.handle).unwrap();

        // A new run takes the checkpoint over and writes a little more.
        let backend = RocksDbBackend::open(&dir.path().join("db2")).unwrap();
        let mut restored = KeyedState::new(Box::new(backend), range, 128);
        let fetched = dir.path().join("fetched");
        handle.download(&storage, &fetched).unwrap();
        restored.adopt_native(&fetched).unwrap();
        fill(&mut restored, 1000..1100);
        let native = restored
            .native_checkpoint(&dir.path().join("n2"))
            .unwrap()
            .unwrap();
        let mut uploader = Uploader::restored("run2".into(), handle.shared.clone());
        let second = uploader.upload(2, &native, &storage, 0).unwrap();
        assert_eq!((second.uploaded_files, second.reused_files), (1, 1));
        assert!(second.shared.contains(&first.shared[0]));
        // Once checkpoint 2 completed it is the baseline.
        let native = restored
            .native_checkpoint(&dir.path().join("n3"))
            .unwrap()
            .unwrap();
        let third = uploader.upload(3, &native, &storage, 2).unwrap();
        assert_eq!((third.uploaded_files, third.reused_files), (0, 2));
    }

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
