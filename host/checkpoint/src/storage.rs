//! Checkpoint storage through `object_store`.
//!
//! Layout under `<state.checkpoints.dir>/<job>/`:
//! - `chk-<id>/<task>.state`: one file per subtask with state (opaque bytes
//!   the task wrote);
//! - `chk-<id>/_metadata`: JSON [`CheckpointMetadata`], written last, so a
//!   checkpoint without it never completed. `object_store` writes it to a
//!   temporary name and renames it (local files), or puts it in one request
//!   (object stores): a reader never sees half of it;
//! - `shared/<name>`: files several checkpoints refer to (the SST files of
//!   incremental RocksDB checkpoints, as in Flink's `shared` directory).
//!   Each checkpoint's metadata lists the shared files it uses; a shared
//!   file is deleted once no retained checkpoint lists it (reference
//!   counting over the retained metadata, so it survives restarts).
//!
//! Every state file's CRC-32 is in the metadata, and every shared file's in
//! the state that refers to it; a restore checks them as it reads
//! ([`CheckpointStorage::read_state_checked`],
//! [`CheckpointStorage::fetch_file_checked`]) and calls a mismatch
//! [`StorageError::Damaged`], upon which the runtime falls back to the next
//! older retained checkpoint ([`CheckpointStorage::latest_skipping`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use serde::{Deserialize, Serialize};

use crate::{CheckpointConfig, CheckpointId};

/// A storage operation failed; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The checkpoint directory cannot be used.
    #[error("cannot use checkpoint directory `{dir}`: {reason}")]
    Open {
        /// The configured directory or URL.
        dir: String,
        /// Why.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("checkpoint file {file}: {reason}")]
    File {
        /// The file, as a full location.
        file: String,
        /// Why.
        reason: String,
    },
    /// A metadata file is not valid.
    #[error("checkpoint metadata {file} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        file: String,
        /// Why.
        reason: String,
    },
    /// A file's bytes are not those the checkpoint wrote: its CRC-32
    /// differs from the one recorded when it was written (a bit flip, a
    /// truncated or emptied file).
    #[error("checkpoint file {file} is damaged: {reason}")]
    Damaged {
        /// The file, as a full location.
        file: String,
        /// What differs.
        reason: String,
    },
    /// No completed checkpoint exists.
    #[error("no completed checkpoint of job `{job}` under {dir}")]
    NoCheckpoint {
        /// The job.
        job: String,
        /// Where we looked.
        dir: String,
    },
}

/// One subtask's part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubtaskState {
    /// Its state file, relative to the job's directory (`chk-7/x-0.state`);
    /// `None` when it had no state.
    pub file: Option<String>,
    /// Bytes of state.
    pub size_bytes: u64,
    /// Shared files (`shared/<name>`) the state refers to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared: Vec<String>,
    /// CRC-32 ([`crc32`]) of the state file; absent in checkpoints written
    /// before Weir recorded it (then not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc32: Option<u32>,
}

/// CRC-32 (IEEE 802.3, the checksum of zlib and gzip, through `crc32fast`)
/// of `bytes`: what checkpoint metadata records of each file.
#[must_use]
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// [`crc32`] of the file at `path`, read in 1 MiB pieces.
///
/// # Errors
/// When the file cannot be read.
pub fn file_crc32(path: &std::path::Path) -> std::io::Result<u32> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finalize());
        }
        hasher.update(&buffer[..n]);
    }
}

/// What `_metadata` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    /// Format version of this file (1).
    pub version: u32,
    /// The job's name.
    pub job: String,
    /// The checkpoint.
    pub id: CheckpointId,
    /// When it completed, ms since the epoch.
    pub completed_ms: i64,
    /// Parallelism of every vertex when it was taken.
    pub parallelism: BTreeMap<String, u32>,
    /// Every subtask's state, by `vertex#index`.
    pub tasks: BTreeMap<String, SubtaskState>,
}

/// The checkpoints of one job in one checkpoint directory.
pub struct CheckpointStorage {
    store: Arc<dyn ObjectStore>,
    /// The job's directory inside the store.
    root: StorePath,
    /// For messages: the configured directory and the job.
    shown: String,
    job: String,
    /// Where the store keeps its files.
    place: Place,
}

/// What kind of store a [`CheckpointStorage`] is in.
enum Place {
    /// A local directory: the job's directory on disk (for hard links and
    /// to remove emptied checkpoint directories, which object stores do
    /// not have). The store does its I/O inline; no runtime is needed.
    Local(std::path::PathBuf),
    /// An object store, whose HTTP client runs on this runtime.
    Cloud(&'static tokio::runtime::Runtime),
}

impl std::fmt::Debug for CheckpointStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointStorage")
            .field("dir", &self.shown)
            .finish()
    }
}

const METADATA: &str = "_metadata";
const SHARED: &str = "shared";

/// Part size of multipart uploads, and the largest file sent in one PUT
/// (bytes). S3 wants parts of at least 5 MiB; 16 MiB parts keep a 1 GiB
/// file within S3's 10 000-part limit many times over.
pub const MULTIPART_PART_BYTES: usize = 16 << 20;

/// Parts of one multipart upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// Hard-links `from` as `to` (same file system), else copies it through a
/// temporary name. An existing `to` is kept: shared names are unique to
/// their content.
fn link_or_copy(from: &std::path::Path, to: &std::path::Path) -> Result<(), String> {
    if to.exists() {
        return Ok(());
    }
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let partial = to.with_extension("partial");
    std::fs::copy(from, &partial)
        .and_then(|_| std::fs::rename(&partial, to))
        .map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            format!("copying {}: {e}", from.display())
        })
}

/// Uploads the file at `path` to `location`: one PUT when small, else a
/// multipart upload (see [`CheckpointStorage::write_shared_file`]).
fn upload_file(
    runtime: &tokio::runtime::Runtime,
    store: &Arc<dyn ObjectStore>,
    location: &StorePath,
    path: &std::path::Path,
) -> Result<(), String> {
    use std::io::Read;
    let cannot_read = |e: std::io::Error| format!("cannot read {}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(cannot_read)?;
    let size = file.metadata().map_err(cannot_read)?.len();
    if size < MULTIPART_PART_BYTES as u64 {
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(cannot_read)?;
        return runtime
            .block_on(store.put(location, bytes.into()))
            .map(|_| ())
            .map_err(|e| e.to_string());
    }
    let mut read_part = || -> Result<Vec<u8>, String> {
        let mut part = Vec::with_capacity(MULTIPART_PART_BYTES);
        (&mut file)
            .take(MULTIPART_PART_BYTES as u64)
            .read_to_end(&mut part)
            .map_err(cannot_read)?;
        Ok(part)
    };
    let first = read_part()?;
    let mut upload = runtime
        .block_on(store.put_multipart(location))
        .map_err(|e| e.to_string())?;
    let parts = upload_parts(runtime, upload.as_mut(), first, read_part);
    let result = parts.and_then(|()| {
        runtime
            .block_on(upload.complete())
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    if result.is_err() {
        let _ = runtime.block_on(upload.abort());
    }
    result
}

/// Streams the object at `location` into a new file `dest`.
fn download_file(
    runtime: &tokio::runtime::Runtime,
    store: &Arc<dyn ObjectStore>,
    location: &StorePath,
    dest: &std::path::Path,
) -> Result<(), String> {
    use std::io::Write;
    let cannot_write = |e: std::io::Error| format!("cannot write {}: {e}", dest.display());
    let mut file = std::fs::File::create(dest).map_err(cannot_write)?;
    runtime.block_on(async {
        let mut chunks = store
            .get(location)
            .await
            .map_err(|e| e.to_string())?
            .into_stream();
        while let Some(chunk) = chunks.try_next().await.map_err(|e| e.to_string())? {
            file.write_all(&chunk).map_err(cannot_write)?;
        }
        Ok::<(), String>(())
    })
}

/// Sends `first` and every further part `next_part` reads (an empty one
/// ends the file) with [`PARTS_IN_FLIGHT`] parts uploading while the next
/// is read.
fn upload_parts(
    runtime: &tokio::runtime::Runtime,
    upload: &mut dyn object_store::MultipartUpload,
    first: Vec<u8>,
    mut next_part: impl FnMut() -> Result<Vec<u8>, String>,
) -> Result<(), String> {
    let mut in_flight = std::collections::VecDeque::new();
    let send_all = || -> Result<(), String> {
        let mut part = first;
        while !part.is_empty() {
            in_flight.push_back(runtime.spawn(upload.put_part(part.into())));
            if in_flight.len() >= PARTS_IN_FLIGHT
                && let Some(oldest) = in_flight.pop_front()
            {
                wait_part(runtime, oldest)?;
            }
            part = next_part()?;
        }
        while let Some(pending) = in_flight.pop_front() {
            wait_part(runtime, pending)?;
        }
        Ok(())
    };
    let result = send_all();
    // After a failure no part may still be uploading when the upload is
    // aborted.
    for pending in in_flight {
        pending.abort();
    }
    result
}

fn wait_part(
    runtime: &tokio::runtime::Runtime,
    part: tokio::task::JoinHandle<object_store::Result<()>>,
) -> Result<(), String> {
    match runtime.block_on(part) {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(e) => Err(format!("upload task failed: {e}")),
    }
}

impl CheckpointMetadata {
    /// Every file the checkpoint needs, relative to the job's directory:
    /// each subtask's state file and the shared files it refers to.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.tasks.values().flat_map(|t| {
            t.file
                .as_deref()
                .into_iter()
                .chain(t.shared.iter().map(String::as_str))
        })
    }
}

impl CheckpointStorage {
    /// The storage of job `job` under the configured checkpoint directory:
    /// a local path (created if missing), or an `s3://`, `az://` or `gs://`
    /// URL with [`CheckpointConfig::store_options`] and the store's
    /// environment variables (see the `object_stores` module). Opening a
    /// cloud store does not contact it; the first read or write does.
    ///
    /// # Errors
    /// [`StorageError::Open`] when the directory cannot be created, the URL
    /// names no supported store, or the store's settings are incomplete
    /// (no bucket, no account, a bad endpoint).
    pub fn open(config: &CheckpointConfig, job: &str) -> Result<Self, StorageError> {
        let open_error = |reason: String| StorageError::Open {
            dir: config.dir.clone(),
            reason,
        };
        let (store, base, place): (Arc<dyn ObjectStore>, _, _) = match config.local_dir() {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|e| open_error(e.to_string()))?;
                let store = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| open_error(e.to_string()))?;
                (
                    Arc::new(store),
                    StorePath::default(),
                    Place::Local(dir.join(job)),
                )
            }
            None => {
                let (store, path) =
                    crate::object_stores::cloud_store(&config.dir, &config.store_options)
                        .map_err(open_error)?;
                let runtime = crate::object_stores::io_runtime()
                    .map_err(|e| open_error(format!("cannot start its I/O threads: {e}")))?;
                (store, path, Place::Cloud(runtime))
            }
        };
        Ok(Self {
            store,
            root: base.child(job),
            shown: config.dir.clone(),
            job: job.to_string(),
            place,
        })
    }

    /// Runs an `object_store` future to completion on this thread.
    fn run<F: std::future::Future>(&self, f: F) -> F::Output {
        match self.place {
            Place::Cloud(runtime) => runtime.block_on(f),
            Place::Local(_) => futures::executor::block_on(f),
        }
    }

    /// The checkpoint directory as configured (a path or a URL).
    pub fn base(&self) -> &str {
        &self.shown
    }

    /// The job's directory name under [`base`](Self::base).
    pub fn job(&self) -> &str {
        &self.job
    }

    /// Whether `other` is the same job's directory, as configured (the same
    /// text: `./ck` and `ck` count as different, which errs on the safe
    /// side for callers that share files between them).
    pub fn same_directory(&self, other: &CheckpointStorage) -> bool {
        self.shown == other.shown && self.job == other.job
    }

    fn location(&self, relative: &str) -> StorePath {
        let mut path = self.root.clone();
        for part in relative.split('/') {
            path = path.child(part);
        }
        path
    }

    /// Where checkpoint `id` lies, as messages show it
    /// (`<dir>/<job>/chk-<id>`): also what tells checkpoints apart across
    /// directories.
    #[must_use]
    pub fn checkpoint_location(&self, id: CheckpointId) -> String {
        self.shown(&format!("chk-{id}"))
    }

    fn shown(&self, relative: &str) -> String {
        format!(
            "{}/{}/{relative}",
            self.shown.trim_end_matches('/'),
            self.job
        )
    }

    fn file_error(&self, relative: &str, e: impl std::fmt::Display) -> StorageError {
        StorageError::File {
            file: self.shown(relative),
            reason: e.to_string(),
        }
    }

    /// Writes one subtask's state of checkpoint `id` as `chk-<id>/<task>.state`
    /// and returns that relative name.
    ///
    /// # Errors
    /// [`StorageError::File`].
    pub fn write_state(
        &self,
        id: CheckpointId,
        task: &str,
        bytes: Vec<u8>,
    ) -> Result<String, StorageError> {
        let relative = format!("chk-{id}/{}.state", task.replace(['/', '#'], "-"));
        self.run(self.store.put(&self.location(&relative), bytes.into()))
            .map_err(|e| self.file_error(&relative, e))?;
        Ok(relative)
    }

    /// Writes a file later checkpoints may share as `shared/<name>` and
    /// returns that relative name. `name` must be unique to its content
    /// (writing the same name again must mean the same bytes).
    ///
    /// # Errors
    /// [`StorageError::File`].
    pub fn write_shared(&self, name: &str, bytes: Vec<u8>) -> Result<String, StorageError> {
        let relative = format!("{SHARED}/{}", name.replace(['/', '#'], "-"));
        self.run(self.store.put(&self.location(&relative), bytes.into()))
            .map_err(|e| self.file_error(&relative, e))?;
        Ok(relative)
    }

    /// Stores the local file `path` as `shared/<name>` without holding it in
    /// memory, and returns that relative name (`name` as for
    /// [`CheckpointStorage::write_shared`]).
    ///
    /// - A local checkpoint directory gets a hard link to the file when it
    ///   is on the same file system (RocksDB never changes an SST file once
    ///   written, so the link is a copy for free), else a copy.
    /// - An object store gets one PUT when the file is at most
    ///   [`MULTIPART_PART_BYTES`], else a multipart upload of parts of that
    ///   size, two in flight, aborted when a part fails.
    ///
    /// # Errors
    /// [`StorageError::File`] naming the stored file when `path` cannot be
    /// read or the store refuses it.
    pub fn write_shared_file(
        &self,
        name: &str,
        path: &std::path::Path,
    ) -> Result<String, StorageError> {
        let relative = format!("{SHARED}/{}", name.replace(['/', '#'], "-"));
        let result = match &self.place {
            Place::Local(job_dir) => link_or_copy(path, &job_dir.join(&relative)),
            Place::Cloud(runtime) => {
                upload_file(runtime, &self.store, &self.location(&relative), path)
            }
        };
        result.map_err(|e| self.file_error(&relative, e))?;
        Ok(relative)
    }

    /// Names (relative, `shared/<name>`) of every shared file present.
    ///
    /// # Errors
    /// [`StorageError::File`] when the directory cannot be listed.
    pub fn shared_files(&self) -> Result<Vec<String>, StorageError> {
        self.list(SHARED)
    }

    /// Every file of the job (checkpoints, shared files, anything else),
    /// relative to the job's directory (`chk-7/_metadata`, `shared/x`),
    /// sorted.
    ///
    /// # Errors
    /// [`StorageError::File`] when the directory cannot be listed.
    pub fn files(&self) -> Result<Vec<String>, StorageError> {
        self.list("")
    }

    /// The files under `relative` (`""`: the job's directory), relative to
    /// the job's directory, sorted.
    fn list(&self, relative: &str) -> Result<Vec<String>, StorageError> {
        let dir = if relative.is_empty() {
            self.root.clone()
        } else {
            self.location(relative)
        };
        let listing: Vec<_> = self
            .run(self.store.list(Some(&dir)).try_collect())
            .map_err(|e| self.file_error(relative, e))?;
        let mut names: Vec<String> = listing
            .into_iter()
            .filter_map(|o| {
                let inside: StorePath = o.location.prefix_match(&self.root)?.collect();
                Some(inside.to_string())
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// Brings the file `relative` (as a checkpoint's metadata names it) to
    /// the local path `dest` without holding it in memory: a hard link out
    /// of a local checkpoint directory (a copy across file systems), a
    /// streamed GET from an object store.
    ///
    /// # Errors
    /// [`StorageError::File`] naming the stored file when it is missing or
    /// `dest` cannot be written.
    pub fn fetch_file(&self, relative: &str, dest: &std::path::Path) -> Result<(), StorageError> {
        let result = match &self.place {
            Place::Local(job_dir) => link_or_copy(&job_dir.join(relative), dest),
            Place::Cloud(runtime) => {
                download_file(runtime, &self.store, &self.location(relative), dest)
            }
        };
        result.map_err(|e| self.file_error(relative, e))
    }

    /// [`CheckpointStorage::fetch_file`], then checks the fetched file's
    /// CRC-32 against `crc32` when given.
    ///
    /// # Errors
    /// As [`CheckpointStorage::fetch_file`]; [`StorageError::Damaged`] when
    /// the CRC-32 differs.
    pub fn fetch_file_checked(
        &self,
        relative: &str,
        dest: &std::path::Path,
        crc32: Option<u32>,
    ) -> Result<(), StorageError> {
        self.fetch_file(relative, dest)?;
        if let Some(expected) = crc32 {
            let found = file_crc32(dest).map_err(|e| self.file_error(relative, e))?;
            self.check_crc(relative, expected, found)?;
        }
        Ok(())
    }

    /// [`CheckpointStorage::read_state`], then checks the bytes' CRC-32
    /// against `crc32` when given.
    ///
    /// # Errors
    /// As [`CheckpointStorage::read_state`]; [`StorageError::Damaged`] when
    /// the CRC-32 differs.
    pub fn read_state_checked(
        &self,
        relative: &str,
        crc32: Option<u32>,
    ) -> Result<Vec<u8>, StorageError> {
        let bytes = self.read_state(relative)?;
        if let Some(expected) = crc32 {
            self.check_crc(relative, expected, self::crc32(&bytes))?;
        }
        Ok(bytes)
    }

    fn check_crc(&self, relative: &str, expected: u32, found: u32) -> Result<(), StorageError> {
        if expected == found {
            return Ok(());
        }
        Err(StorageError::Damaged {
            file: self.shown(relative),
            reason: format!("its CRC-32 is {found:08x}, the checkpoint wrote {expected:08x}"),
        })
    }

    /// Reads a state file named in a checkpoint's metadata.
    ///
    /// # Errors
    /// [`StorageError::File`] when it is missing or unreadable.
    pub fn read_state(&self, relative: &str) -> Result<Vec<u8>, StorageError> {
        let result = self
            .run(self.store.get(&self.location(relative)))
            .map_err(|e| self.file_error(relative, e))?;
        let bytes = self
            .run(result.bytes())
            .map_err(|e| self.file_error(relative, e))?;
        // Takes the buffer over when the bytes own it alone (no copy).
        Ok(Vec::from(bytes))
    }

    /// Marks checkpoint `metadata.id` complete by writing its `_metadata`,
    /// then keeps only the newest `retained` completed checkpoints and
    /// deletes directories of checkpoints that never completed and are
    /// older than this one.
    ///
    /// # Errors
    /// [`StorageError::File`] when the metadata cannot be written. Failed
    /// deletions are logged, not returned (the checkpoint is complete).
    pub fn complete(
        &self,
        metadata: &CheckpointMetadata,
        retained: usize,
    ) -> Result<(), StorageError> {
        let relative = format!("chk-{}/{METADATA}", metadata.id);
        let json =
            serde_json::to_vec_pretty(metadata).map_err(|e| self.file_error(&relative, e))?;
        self.run(self.store.put(&self.location(&relative), json.into()))
            .map_err(|e| self.file_error(&relative, e))?;
        if let Err(e) = self.clean_up(metadata.id, retained) {
            tracing::warn!("cleaning up old checkpoints: {e}");
        }
        Ok(())
    }

    /// Ids of checkpoint directories (complete or not) and whether each has
    /// `_metadata`.
    fn directories(&self) -> Result<BTreeMap<CheckpointId, bool>, StorageError> {
        let listing: Vec<_> = self
            .run(self.store.list(Some(&self.root)).try_collect())
            .map_err(|e| self.file_error("", e))?;
        let mut found = BTreeMap::new();
        for object in listing {
            let parts: Vec<_> = object
                .location
                .prefix_match(&self.root)
                .into_iter()
                .flatten()
                .collect();
            let Some(dir) = parts.first() else { continue };
            let Some(id) = dir
                .as_ref()
                .strip_prefix("chk-")
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let is_metadata = parts.get(1).is_some_and(|p| p.as_ref() == METADATA);
            let entry = found.entry(id).or_insert(false);
            *entry |= is_metadata;
        }
        Ok(found)
    }

    fn clean_up(&self, newest: CheckpointId, retained: usize) -> Result<(), StorageError> {
        let dirs = self.directories()?;
        let complete: Vec<CheckpointId> = dirs
            .iter()
            .filter(|(_, m)| **m)
            .map(|(id, _)| *id)
            .collect();
        let keep: Vec<CheckpointId> = complete.iter().rev().take(retained).copied().collect();
        for (id, has_metadata) in dirs {
            let obsolete = if has_metadata {
                !keep.contains(&id)
            } else {
                id < newest
            };
            if obsolete {
                self.delete_checkpoint(id)?;
            }
        }
        self.delete_unreferenced_shared(&keep)
    }

    /// Deletes the shared files no checkpoint of `keep` lists. Keeps all
    /// of them when a kept checkpoint's metadata does not load (its
    /// references are unknown).
    fn delete_unreferenced_shared(&self, keep: &[CheckpointId]) -> Result<(), StorageError> {
        let mut referenced = std::collections::BTreeSet::new();
        for id in keep {
            let metadata = self.read_metadata(*id)?;
            for task in metadata.tasks.into_values() {
                referenced.extend(task.shared);
            }
        }
        for file in self.shared_files()? {
            if !referenced.contains(&file) {
                self.run(self.store.delete(&self.location(&file)))
                    .map_err(|e| self.file_error(&file, e))?;
            }
        }
        Ok(())
    }

    /// Copies completed checkpoint `id` (its state files, then its
    /// `_metadata`) into `target`, which keeps it whatever its retention:
    /// a savepoint. Returns where it went (`<dir>/<job>/chk-<id>`).
    ///
    /// # Errors
    /// [`StorageError`] when the checkpoint does not load or a copy fails.
    pub fn copy_checkpoint(
        &self,
        id: CheckpointId,
        target: &CheckpointStorage,
    ) -> Result<String, StorageError> {
        let metadata = self.load(id)?;
        for file in metadata.files() {
            let bytes = self.read_state(file)?;
            target
                .run(target.store.put(&target.location(file), bytes.into()))
                .map_err(|e| target.file_error(file, e))?;
        }
        target.complete(&metadata, usize::MAX)?;
        Ok(target.shown(&format!("chk-{id}")))
    }

    /// The id to give the next checkpoint: one more than any checkpoint
    /// directory present (complete or not), so a resumed job never writes
    /// into a directory an earlier run left.
    ///
    /// # Errors
    /// [`StorageError::File`] when the directory cannot be listed.
    pub fn next_id(&self) -> Result<CheckpointId, StorageError> {
        Ok(self
            .directories()?
            .keys()
            .next_back()
            .map_or(1, |id| id + 1))
    }

    /// Deletes every checkpoint of the job and returns how many there were
    /// (a fresh run of a job replaces the checkpoints of an earlier run).
    ///
    /// # Errors
    /// [`StorageError::File`].
    pub fn delete_all(&self) -> Result<usize, StorageError> {
        let dirs = self.directories()?;
        for id in dirs.keys() {
            self.delete_checkpoint(*id)?;
        }
        for file in self.shared_files()? {
            self.run(self.store.delete(&self.location(&file)))
                .map_err(|e| self.file_error(&file, e))?;
        }
        if let Place::Local(job_dir) = &self.place {
            let _ = std::fs::remove_dir(job_dir.join(SHARED));
        }
        Ok(dirs.len())
    }

    /// Deletes every file of checkpoint `id`.
    ///
    /// # Errors
    /// [`StorageError::File`].
    pub fn delete_checkpoint(&self, id: CheckpointId) -> Result<(), StorageError> {
        let dir = self.root.child(format!("chk-{id}"));
        let files: Vec<_> = self
            .run(self.store.list(Some(&dir)).try_collect())
            .map_err(|e| self.file_error(&format!("chk-{id}"), e))?;
        // Metadata first: a half-deleted checkpoint must not look complete.
        let mut files: Vec<StorePath> = files.into_iter().map(|m| m.location).collect();
        files.sort_by_key(|p| p.filename() != Some(METADATA));
        for file in files {
            self.run(self.store.delete(&file))
                .map_err(|e| self.file_error(file.as_ref(), e))?;
        }
        if let Place::Local(job_dir) = &self.place {
            let _ = std::fs::remove_dir(job_dir.join(format!("chk-{id}")));
        }
        Ok(())
    }

    /// Ids of the completed checkpoints, oldest first.
    ///
    /// # Errors
    /// [`StorageError::File`] when the directory cannot be listed.
    pub fn completed(&self) -> Result<Vec<CheckpointId>, StorageError> {
        Ok(self
            .directories()?
            .into_iter()
            .filter(|(_, m)| *m)
            .map(|(id, _)| id)
            .collect())
    }

    /// Reads and checks the metadata of checkpoint `id`, and that every
    /// state file it names exists.
    ///
    /// # Errors
    /// [`StorageError::File`] (missing or unreadable, naming the file) or
    /// [`StorageError::Corrupt`].
    pub fn load(&self, id: CheckpointId) -> Result<CheckpointMetadata, StorageError> {
        let metadata = self.read_metadata(id)?;
        for file in metadata.files() {
            self.run(self.store.head(&self.location(file)))
                .map_err(|e| self.file_error(file, e))?;
        }
        Ok(metadata)
    }

    /// Reads and checks the metadata of checkpoint `id` (not its files).
    fn read_metadata(&self, id: CheckpointId) -> Result<CheckpointMetadata, StorageError> {
        let relative = format!("chk-{id}/{METADATA}");
        let bytes = self.read_state(&relative)?;
        let metadata: CheckpointMetadata =
            serde_json::from_slice(&bytes).map_err(|e| StorageError::Corrupt {
                file: self.shown(&relative),
                reason: e.to_string(),
            })?;
        if metadata.id != id || metadata.job != self.job || metadata.version != 1 {
            return Err(StorageError::Corrupt {
                file: self.shown(&relative),
                reason: format!(
                    "it describes checkpoint {} of job `{}` (format {})",
                    metadata.id, metadata.job, metadata.version
                ),
            });
        }
        Ok(metadata)
    }

    /// The newest completed checkpoint that loads, falling back to older
    /// retained ones when the newest is damaged (each skip is logged and
    /// returned as a warning).
    ///
    /// # Errors
    /// [`StorageError::NoCheckpoint`] when none exists; the newest one's
    /// error when none loads.
    pub fn latest(&self) -> Result<(CheckpointMetadata, Vec<String>), StorageError> {
        self.latest_skipping(&std::collections::BTreeSet::new())
    }

    /// [`CheckpointStorage::latest`] among the completed checkpoints not in
    /// `skip` (those a restore found damaged).
    ///
    /// # Errors
    /// As [`CheckpointStorage::latest`]; [`StorageError::NoCheckpoint`]
    /// also when every completed checkpoint is in `skip`.
    pub fn latest_skipping(
        &self,
        skip: &std::collections::BTreeSet<CheckpointId>,
    ) -> Result<(CheckpointMetadata, Vec<String>), StorageError> {
        let mut warnings = Vec::new();
        let mut first_error = None;
        for id in self.completed()?.into_iter().rev() {
            if skip.contains(&id) {
                continue;
            }
            match self.load(id) {
                Ok(metadata) => return Ok((metadata, warnings)),
                Err(e) => {
                    tracing::warn!("skipping checkpoint {id}: {e}");
                    warnings.push(format!("skipped checkpoint {id}: {e}"));
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| StorageError::NoCheckpoint {
            job: self.job.clone(),
            dir: self.shown.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(dir: &std::path::Path) -> CheckpointStorage {
        let config = CheckpointConfig {
            dir: dir.display().to_string(),
            ..CheckpointConfig::default()
        };
        CheckpointStorage::open(&config, "job").unwrap()
    }

    /// Metadata of checkpoint `id` with one subtask `op#0`.
    fn metadata(id: CheckpointId, state: SubtaskState) -> CheckpointMetadata {
        CheckpointMetadata {
            version: 1,
            job: "job".into(),
            id,
            completed_ms: 0,
            parallelism: BTreeMap::from([("op".into(), 1)]),
            tasks: BTreeMap::from([("op#0".into(), state)]),
        }
    }

    fn complete(s: &CheckpointStorage, id: CheckpointId, retained: usize) {
        let file = s.write_state(id, "op#0", vec![id as u8; 10]).unwrap();
        let state = SubtaskState {
            file: Some(file),
            size_bytes: 10,
            shared: Vec::new(),
            crc32: None,
        };
        s.complete(&metadata(id, state), retained).unwrap();
    }

    #[test]
    fn only_the_newest_n_remain_and_no_file_is_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        // An aborted checkpoint leaves a state file without metadata.
        s.write_state(2, "op#0", vec![1]).unwrap();
        for id in [1, 3, 4, 5, 6] {
            complete(&s, id, 3);
        }
        assert_eq!(s.completed().unwrap(), vec![4, 5, 6]);
        let mut left: Vec<String> = std::fs::read_dir(dir.path().join("job"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["chk-4", "chk-5", "chk-6"]);
        assert_eq!(
            s.files().unwrap(),
            [
                "chk-4/_metadata",
                "chk-4/op-0.state",
                "chk-5/_metadata",
                "chk-5/op-0.state",
                "chk-6/_metadata",
                "chk-6/op-0.state"
            ]
        );
        let (latest, warnings) = s.latest().unwrap();
        assert_eq!((latest.id, warnings.len()), (6, 0));
        assert_eq!(
            s.read_state(latest.tasks["op#0"].file.as_deref().unwrap())
                .unwrap(),
            vec![6; 10]
        );
    }

    /// Completes checkpoint `id` whose one subtask refers to `shared`.
    fn complete_with_shared(s: &CheckpointStorage, id: CheckpointId, shared: &[&str]) {
        let shared: Vec<String> = shared
            .iter()
            .map(|name| s.write_shared(name, name.as_bytes().to_vec()).unwrap())
            .collect();
        let file = s.write_state(id, "op#0", vec![1]).unwrap();
        let state = SubtaskState {
            file: Some(file),
            size_bytes: 1,
            shared,
            crc32: None,
        };
        s.complete(&metadata(id, state), 2).unwrap();
    }

    #[test]
    fn shared_files_live_while_a_retained_checkpoint_lists_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        complete_with_shared(&s, 1, &["a.sst", "b.sst"]);
        complete_with_shared(&s, 2, &["b.sst", "c.sst"]);
        assert_eq!(
            s.shared_files().unwrap(),
            ["shared/a.sst", "shared/b.sst", "shared/c.sst"]
        );
        // Checkpoint 1 falls out of retention (2): `a.sst` goes with it.
        complete_with_shared(&s, 3, &["c.sst", "d.sst"]);
        assert_eq!(
            s.shared_files().unwrap(),
            ["shared/b.sst", "shared/c.sst", "shared/d.sst"]
        );
        // An aborted checkpoint's upload is removed by the next completion.
        s.write_shared("orphan.sst", vec![0]).unwrap();
        complete_with_shared(&s, 4, &["d.sst"]);
        assert_eq!(s.shared_files().unwrap(), ["shared/c.sst", "shared/d.sst"]);

        // A savepoint copies the shared files it needs.
        let target_dir = tempfile::tempdir().unwrap();
        let target = storage(target_dir.path());
        s.copy_checkpoint(4, &target).unwrap();
        assert_eq!(target.shared_files().unwrap(), ["shared/d.sst"]);
        assert_eq!(target.read_state("shared/d.sst").unwrap(), b"d.sst");

        // A missing shared file is named when loading.
        std::fs::remove_file(dir.path().join("job/shared/c.sst")).unwrap();
        let e = s.load(3).unwrap_err().to_string();
        assert!(e.contains("job/shared/c.sst"), "{e}");
        assert_eq!(s.latest().unwrap().0.id, 4);

        s.delete_all().unwrap();
        assert!(s.shared_files().unwrap().is_empty());
    }

    #[test]
    fn a_shared_file_from_disk_is_hard_linked_into_a_local_directory() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        let sst = dir.path().join("000012.sst");
        std::fs::write(&sst, b"immutable").unwrap();
        let stored = s.write_shared_file("op-0-000012.sst", &sst).unwrap();
        assert_eq!(stored, "shared/op-0-000012.sst");
        assert_eq!(s.read_state(&stored).unwrap(), b"immutable");
        let linked = dir.path().join("job").join(&stored);
        let inode = |p: &std::path::Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(inode(&linked), inode(&sst), "a hard link, not a copy");
        // Writing the same name again keeps the file.
        s.write_shared_file("op-0-000012.sst", &sst).unwrap();
        assert_eq!(s.shared_files().unwrap(), [stored.as_str()]);
        let e = s
            .write_shared_file("gone.sst", &dir.path().join("gone.sst"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("job/shared/gone.sst"), "{e}");
    }

    #[test]
    fn damaged_checkpoints_are_named_and_skipped_for_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        assert!(matches!(s.latest(), Err(StorageError::NoCheckpoint { .. })));
        for id in [1, 2, 3] {
            complete(&s, id, 5);
        }
        std::fs::write(dir.path().join("job/chk-3/_metadata"), b"{ not json").unwrap();
        std::fs::remove_file(dir.path().join("job/chk-2/op-0.state")).unwrap();
        let e = s.load(3).unwrap_err().to_string();
        assert!(e.contains("chk-3/_metadata is corrupt"), "{e}");
        let e = s.load(2).unwrap_err().to_string();
        assert!(e.contains("chk-2/op-0.state"), "{e}");
        let (latest, warnings) = s.latest().unwrap();
        assert_eq!(latest.id, 1);
        assert_eq!(warnings.len(), 2);
    }

    #[test]
    fn checked_reads_refuse_a_flipped_truncated_or_emptied_file() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        let bytes = b"WSUB1 some state".to_vec();
        let crc = crc32(&bytes);
        let file = s.write_state(1, "op#0", bytes.clone()).unwrap();
        let shared = s.write_shared("x.sst", bytes.clone()).unwrap();
        assert_eq!(s.read_state_checked(&file, Some(crc)).unwrap(), bytes);
        let fetched = dir.path().join("fetched.sst");
        s.fetch_file_checked(&shared, &fetched, Some(crc)).unwrap();
        assert_eq!(file_crc32(&fetched).unwrap(), crc);

        let on_disk = dir.path().join("job").join(&file);
        let mut flipped = bytes.clone();
        flipped[7] ^= 0x10;
        for damaged in [flipped, bytes[..5].to_vec(), Vec::new()] {
            std::fs::write(&on_disk, &damaged).unwrap();
            let e = s.read_state_checked(&file, Some(crc)).unwrap_err();
            assert!(matches!(e, StorageError::Damaged { .. }), "{e}");
            assert!(e.to_string().contains("chk-1/op-0.state is damaged"), "{e}");
            // Without a recorded CRC (older checkpoints) nothing is checked.
            assert_eq!(s.read_state_checked(&file, None).unwrap(), damaged);
        }
        std::fs::write(dir.path().join("job").join(&shared), b"").unwrap();
        let _ = std::fs::remove_file(&fetched);
        let e = s
            .fetch_file_checked(&shared, &fetched, Some(crc))
            .unwrap_err();
        assert!(matches!(e, StorageError::Damaged { .. }), "{e}");
    }

    #[test]
    fn latest_skipping_falls_back_past_checkpoints_found_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        for id in [1, 2, 3] {
            complete(&s, id, 5);
        }
        let skip = std::collections::BTreeSet::from([3]);
        assert_eq!(s.latest_skipping(&skip).unwrap().0.id, 2);
        let skip = std::collections::BTreeSet::from([1, 2, 3]);
        assert!(matches!(
            s.latest_skipping(&skip),
            Err(StorageError::NoCheckpoint { .. })
        ));
    }
}
