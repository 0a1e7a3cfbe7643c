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

use weir_checkpoint::{CheckpointId, CheckpointStorage};
use weir_state::NativeCheckpoint;

pub(crate) use weir_snapshot::{IncrementalHandle, SharedFile};

use crate::snapshot::RestoreError;

/// Writes `handle`'s files into `dir` (created; it must not hold
/// another database), fetching the SST files from `storage` and
/// checking each one's CRC-32.
///
/// # Errors
/// [`RestoreError::Damaged`] naming an SST file whose CRC-32 differs;
/// [`RestoreError::Failed`] naming the file that could not be fetched
/// or written.
pub(crate) fn download(
    handle: &IncrementalHandle,
    storage: &CheckpointStorage,
    dir: &Path,
) -> Result<(), RestoreError> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for file in &handle.shared {
        storage
            .fetch_file_checked(&file.stored, &dir.join(&file.local), file.crc32)
            .map_err(RestoreError::of_storage)?;
    }
    for (name, bytes) in &handle.private {
        let path = dir.join(name);
        std::fs::write(&path, bytes)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
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
        done.handle = handle.encode().map_err(|e| e.to_string())?;
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
    use weir_state::{KeyGroupRange, KeyedState, MemoryBackend, RocksDbBackend, RocksDbShared};

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
        let backend =
            RocksDbBackend::open(&dir.path().join("db"), &RocksDbShared::default()).unwrap();
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
        download(&handle, &storage, &restored_dir).unwrap();
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
        let backend =
            RocksDbBackend::open(&dir.path().join("db"), &RocksDbShared::default()).unwrap();
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
        let backend =
            RocksDbBackend::open(&dir.path().join("db2"), &RocksDbShared::default()).unwrap();
        let mut restored = KeyedState::new(Box::new(backend), range, 128);
        let fetched = dir.path().join("fetched");
        download(&handle, &storage, &fetched).unwrap();
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
}
