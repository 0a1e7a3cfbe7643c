//! Ordered byte maps: the storage under keyed state.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use weir_types::RocksDbOptions;

use crate::{Entry, StateError};

/// What [`StateBackend::for_each_prefix`] calls with each `(key, value)`;
/// an error stops the scan.
pub type EntryVisitor<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), StateError> + 'a;

/// An ordered map of bytes to bytes, owned by one subtask.
///
/// Keys sort by unsigned bytes (lexicographic), in every backend.
pub trait StateBackend: Send {
    /// The value under `key`.
    ///
    /// # Errors
    /// Storage failures.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Stores `value` under `key`.
    ///
    /// # Errors
    /// Storage failures.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError>;
    /// Removes `key`.
    ///
    /// # Errors
    /// Storage failures.
    fn delete(&mut self, key: &[u8]) -> Result<(), StateError>;
    /// Every entry whose key starts with `prefix`, in key order.
    ///
    /// # Errors
    /// Storage failures.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<Entry>, StateError> {
        let mut entries = Vec::new();
        self.for_each_prefix(prefix, &mut |k, v| {
            entries.push((k.to_vec(), v.to_vec()));
            Ok(())
        })?;
        Ok(entries)
    }
    /// Calls `each` with every entry whose key starts with `prefix`, in key
    /// order, without collecting them (full snapshots stream through this).
    ///
    /// # Errors
    /// Storage failures; the first error `each` returns, which stops the scan.
    fn for_each_prefix(&self, prefix: &[u8], each: &mut EntryVisitor<'_>)
    -> Result<(), StateError>;
    /// Removes every entry whose key starts with `prefix`.
    ///
    /// # Errors
    /// Storage failures.
    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StateError>;
    /// Applies puts (`Some`) and deletes (`None`) together.
    ///
    /// # Errors
    /// Storage failures.
    fn write_batch(&mut self, entries: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StateError>;
    /// A short name for logs (`rocksdb`, `memory`).
    fn name(&self) -> &'static str;
    /// Writes a native checkpoint of the whole store into `dir` (which
    /// must not exist yet) and lists its files; `None` when the backend
    /// has no native format (memory), so callers take a full snapshot.
    ///
    /// # Errors
    /// Storage failures.
    fn native_checkpoint(&mut self, dir: &Path) -> Result<Option<NativeCheckpoint>, StateError> {
        let _ = dir;
        Ok(None)
    }
    /// Replaces everything the store holds with the native checkpoint in
    /// `dir` (a directory [`StateBackend::native_checkpoint`] wrote, brought
    /// back from checkpoint storage), which the store then owns and works
    /// in; `false` when the backend has no native format, so callers insert
    /// the entries instead.
    ///
    /// # Errors
    /// Storage failures; the store is unchanged then.
    fn adopt_native(&mut self, dir: &Path) -> Result<bool, StateError> {
        let _ = dir;
        Ok(false)
    }
}

/// A directory a backend wrote at a checkpoint that reopens as the same
/// state (RocksDB's `Checkpoint`: hard links to the live SST files and
/// copies of `MANIFEST`, `CURRENT` and `OPTIONS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeCheckpoint {
    /// The directory.
    pub dir: PathBuf,
    /// Its files, by name.
    pub files: Vec<NativeFile>,
}

/// One file of a [`NativeCheckpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeFile {
    /// File name inside the checkpoint directory (`000012.sst`).
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
}

impl NativeFile {
    /// Whether the file never changes once written (an SST file): such
    /// files are shared between incremental checkpoints, the others
    /// (`MANIFEST`, `CURRENT`, `OPTIONS`) are copied every time.
    pub fn is_immutable(&self) -> bool {
        self.name.ends_with(".sst")
    }
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` when `prefix` is all `0xff` (no upper bound).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// State in a `BTreeMap` on the heap: fast, bounded by memory.
#[derive(Debug, Default)]
pub struct MemoryBackend {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl MemoryBackend {
    /// An empty backend.
    pub fn new() -> Self {
        Self::default()
    }

    fn range(&self, prefix: &[u8]) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        let end = match prefix_end(prefix) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        self.map
            .range::<Vec<u8>, _>((Bound::Included(prefix.to_vec()), end))
    }
}

impl StateBackend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.map.get(key).cloned())
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        match self.map.get_mut(key) {
            Some(existing) => {
                existing.clear();
                existing.extend_from_slice(value);
            }
            None => {
                self.map.insert(key.to_vec(), value.to_vec());
            }
        }
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StateError> {
        self.map.remove(key);
        Ok(())
    }

    fn for_each_prefix(
        &self,
        prefix: &[u8],
        each: &mut EntryVisitor<'_>,
    ) -> Result<(), StateError> {
        self.range(prefix).try_for_each(|(k, v)| each(k, v))
    }

    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StateError> {
        let keys: Vec<Vec<u8>> = self.range(prefix).map(|(k, _)| k.clone()).collect();
        for key in keys {
            self.map.remove(&key);
        }
        Ok(())
    }

    fn write_batch(&mut self, entries: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StateError> {
        for (key, value) in entries {
            match value {
                Some(value) => {
                    self.map.insert(key, value);
                }
                None => {
                    self.map.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

/// The memory and threads the RocksDB instances of a process's slots
/// share (Flink's managed memory for RocksDB): one LRU block cache of
/// [`RocksDbOptions::shared_bytes`], which also holds index and filter
/// blocks, and a write-buffer manager that charges every instance's
/// memtables to that cache and flushes the largest when they pass
/// [`RocksDbOptions::write_buffer_ratio`] of it. Cheap to clone.
#[derive(Clone)]
pub struct RocksDbShared {
    options: RocksDbOptions,
    cache: rocksdb::Cache,
    write_buffers: rocksdb::WriteBufferManager,
}

impl std::fmt::Debug for RocksDbShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksDbShared")
            .field("options", &self.options)
            .field("cache_usage_bytes", &self.cache.get_usage())
            .finish()
    }
}

impl RocksDbShared {
    /// The cache and write-buffer manager for `slots` slots of a job
    /// configured with `options`.
    pub fn new(options: &RocksDbOptions, slots: u32) -> Self {
        let bytes = usize::try_from(options.shared_bytes(slots)).unwrap_or(usize::MAX);
        let cache = rocksdb::Cache::new_lru_cache(bytes);
        let write_buffer_bytes = (bytes as f64 * options.write_buffer_ratio) as usize;
        let write_buffers = rocksdb::WriteBufferManager::new_write_buffer_manager_with_cache(
            write_buffer_bytes,
            false,
            cache.clone(),
        );
        Self {
            options: options.clone(),
            cache,
            write_buffers,
        }
    }

    /// Bytes the shared block cache holds now (blocks and the memtables
    /// charged to it).
    pub fn usage_bytes(&self) -> usize {
        self.cache.get_usage()
    }

    /// The options every database of ours opens with.
    fn db_options(&self) -> rocksdb::Options {
        let o = &self.options;
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        options.set_compression_type(rocksdb::DBCompressionType::Lz4);
        // RocksDB's background threads are process-wide (its default Env).
        let threads = i32::try_from(o.background_threads).unwrap_or(i32::MAX);
        options.increase_parallelism(threads);
        options.set_max_background_jobs(threads);
        // A memtable larger than half the shared budget would have the
        // write-buffer manager flush it long before it fills (and its
        // arena blocks, 1/8 of it by default, would count whole against
        // the budget), which turned into storms of tiny flushes: keep two
        // memtables within the budget and arena blocks small (as Flink's
        // RocksDBMemoryControllerUtils checks).
        let memtable_bytes = usize::try_from(o.write_buffer_bytes)
            .unwrap_or(usize::MAX)
            .min(self.write_buffers.get_buffer_size() / 2)
            .max(64 << 10);
        options.set_write_buffer_size(memtable_bytes);
        options.set_arena_block_size((memtable_bytes / 8).clamp(4 << 10, 1 << 20));
        options
            .set_max_write_buffer_number(i32::try_from(o.write_buffer_count).unwrap_or(i32::MAX));
        options.set_write_buffer_manager(&self.write_buffers);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&self.cache);
        table.set_block_size(usize::try_from(o.block_size_bytes).unwrap_or(usize::MAX));
        // Index and filter blocks count against the cache too (else they
        // grow outside every bound with the number of SST files).
        table.set_cache_index_and_filter_blocks(true);
        table.set_cache_index_and_filter_blocks_with_high_priority(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        if o.bloom_filter {
            table.set_bloom_filter(o.bloom_bits_per_key, false);
            table.set_whole_key_filtering(true);
        }
        options.set_block_based_table_factory(&table);
        // Keyed state rewrites the same keys over and over (a counter, a
        // running mean). Updating memtable entries in place keeps one entry
        // per key instead of one per write, so gets stay short. Safe because
        // only the owning subtask's thread writes this database.
        options.set_inplace_update_support(true);
        options.set_allow_concurrent_memtable_write(false);
        options
    }
}

impl Default for RocksDbShared {
    /// One slot's worth of [`RocksDbOptions::default`].
    fn default() -> Self {
        Self::new(&RocksDbOptions::default(), 1)
    }
}

/// How eagerly RocksDB drops the cached blocks of an SST file that
/// compaction made obsolete (its `uncache_aggressiveness`, ~300 being the
/// value RocksDB's docs expect to become its default): without it, a job
/// that flushes at every checkpoint fills the block cache with blocks of
/// deleted files, which the soak measured as slow, steady RSS growth.
const UNCACHE_AGGRESSIVENESS: &str = "300";

/// State in an embedded RocksDB instance in a directory of its own.
///
/// Writes skip RocksDB's write-ahead log: durability comes from checkpoints
/// (as in Flink's RocksDB state backend), not from the database.
pub struct RocksDbBackend {
    db: rocksdb::DB,
    path: PathBuf,
    write_options: rocksdb::WriteOptions,
    shared: RocksDbShared,
}

impl RocksDbBackend {
    /// Opens (creating when missing) a database in `dir` whose block cache
    /// and memtables count against `shared`.
    ///
    /// # Errors
    /// [`StateError::RocksDb`] when the directory cannot be used.
    pub fn open(dir: &Path, shared: &RocksDbShared) -> Result<Self, StateError> {
        let db = Self::open_db(dir, shared)?;
        let mut write_options = rocksdb::WriteOptions::default();
        write_options.disable_wal(true);
        Ok(Self {
            db,
            path: dir.to_path_buf(),
            write_options,
            shared: shared.clone(),
        })
    }

    fn open_db(dir: &Path, shared: &RocksDbShared) -> Result<rocksdb::DB, StateError> {
        let db = rocksdb::DB::open(&shared.db_options(), dir).map_err(|e| Self::error(dir, e))?;
        db.set_options(&[("uncache_aggressiveness", UNCACHE_AGGRESSIVENESS)])
            .map_err(|e| Self::error(dir, e))?;
        Ok(db)
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logs (at debug level, target `weir_state::rocksdb`) what RocksDB
    /// holds in memory, in bytes, by its own properties: memtables
    /// (`rocksdb.cur-size-all-mem-tables`), index and filter blocks of open
    /// SST files outside the block cache (`rocksdb.estimate-table-readers-mem`),
    /// the block cache (`rocksdb.block-cache-usage`), and the live SST
    /// files' size on disk (`rocksdb.live-sst-files-size`).
    fn log_memory(&self) {
        if !tracing::enabled!(target: "weir_state::rocksdb", tracing::Level::DEBUG) {
            return;
        }
        let property = |name: &str| self.db.property_int_value(name).ok().flatten().unwrap_or(0);
        tracing::debug!(
            target: "weir_state::rocksdb",
            path = %self.path.display(),
            memtables = property("rocksdb.cur-size-all-mem-tables"),
            table_readers = property("rocksdb.estimate-table-readers-mem"),
            block_cache = property("rocksdb.block-cache-usage"),
            shared_cache = self.shared.usage_bytes(),
            live_sst_bytes = property("rocksdb.live-sst-files-size"),
            "RocksDB memory at a checkpoint"
        );
    }

    fn error(path: &Path, e: rocksdb::Error) -> StateError {
        let path = path.display().to_string();
        match e.kind() {
            rocksdb::ErrorKind::Corruption => StateError::RocksDbCorruption {
                path,
                message: e.into_string(),
            },
            _ => StateError::RocksDb {
                path,
                message: e.into_string(),
            },
        }
    }
}

impl StateBackend for RocksDbBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.db.get(key).map_err(|e| Self::error(&self.path, e))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.db
            .put_opt(key, value, &self.write_options)
            .map_err(|e| Self::error(&self.path, e))
    }

    fn delete(&mut self, key: &[u8]) -> Result<(), StateError> {
        self.db
            .delete_opt(key, &self.write_options)
            .map_err(|e| Self::error(&self.path, e))
    }

    fn for_each_prefix(
        &self,
        prefix: &[u8],
        each: &mut EntryVisitor<'_>,
    ) -> Result<(), StateError> {
        let mut read_options = rocksdb::ReadOptions::default();
        if let Some(end) = prefix_end(prefix) {
            read_options.set_iterate_upper_bound(end);
        }
        // A raw iterator lends each entry instead of boxing a copy of it.
        let mut iter = self.db.raw_iterator_opt(read_options);
        iter.seek(prefix);
        while let (Some(k), Some(v)) = (iter.key(), iter.value()) {
            each(k, v)?;
            iter.next();
        }
        iter.status().map_err(|e| Self::error(&self.path, e))
    }

    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StateError> {
        let mut batch = rocksdb::WriteBatch::default();
        match prefix_end(prefix) {
            Some(end) => batch.delete_range(prefix, &end[..]),
            None => {
                for (k, _) in self.scan_prefix(prefix)? {
                    batch.delete(k);
                }
            }
        }
        self.db
            .write_opt(batch, &self.write_options)
            .map_err(|e| Self::error(&self.path, e))
    }

    fn write_batch(&mut self, entries: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StateError> {
        let mut batch = rocksdb::WriteBatch::default();
        for (key, value) in entries {
            match value {
                Some(value) => batch.put(key, value),
                None => batch.delete(key),
            }
        }
        self.db
            .write_opt(batch, &self.write_options)
            .map_err(|e| Self::error(&self.path, e))
    }

    fn name(&self) -> &'static str {
        "rocksdb"
    }

    fn native_checkpoint(&mut self, dir: &Path) -> Result<Option<NativeCheckpoint>, StateError> {
        // Writes skip the WAL, so the memtable must reach an SST file first.
        self.db.flush().map_err(|e| Self::error(&self.path, e))?;
        self.log_memory();
        rocksdb::checkpoint::Checkpoint::new(&self.db)
            .and_then(|c| c.create_checkpoint(dir))
            .map_err(|e| Self::error(dir, e))?;
        let io = |e: std::io::Error| StateError::RocksDb {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io)? {
            let entry = entry.map_err(io)?;
            files.push(NativeFile {
                name: entry.file_name().to_string_lossy().into_owned(),
                size_bytes: entry.metadata().map_err(io)?.len(),
            });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Some(NativeCheckpoint {
            dir: dir.to_path_buf(),
            files,
        }))
    }

    fn adopt_native(&mut self, dir: &Path) -> Result<bool, StateError> {
        // A RocksDB checkpoint is a database: open it where it is, then
        // drop the database it replaces with its directory.
        let db = Self::open_db(dir, &self.shared)?;
        let replaced = std::mem::replace(&mut self.db, db);
        drop(replaced);
        let old_dir = std::mem::replace(&mut self.path, dir.to_path_buf());
        let _ = std::fs::remove_dir_all(old_dir);
        Ok(true)
    }
}

/// Calls `each` with every entry of the RocksDB database in `dir` (a
/// [`NativeCheckpoint`] brought back from checkpoint storage), in key
/// order, opening it read-only.
///
/// # Errors
/// [`StateError::RocksDb`] when it does not open or read,
/// [`StateError::RocksDbCorruption`] when RocksDB finds its files damaged;
/// `each`'s error.
pub fn scan_native(
    dir: &Path,
    mut each: impl FnMut(&[u8], &[u8]) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let options = rocksdb::Options::default();
    let db = rocksdb::DB::open_for_read_only(&options, dir, false)
        .map_err(|e| RocksDbBackend::error(dir, e))?;
    for item in db.iterator(rocksdb::IteratorMode::Start) {
        let (key, value) = item.map_err(|e| RocksDbBackend::error(dir, e))?;
        each(&key, &value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RocksDB's `Corruption` status keeps its kind: a restore that meets
    /// it falls back to an older checkpoint instead of failing.
    #[test]
    fn a_flipped_byte_in_a_restored_sst_file_is_damage() {
        let root = tempfile::tempdir().unwrap();
        let mut db =
            RocksDbBackend::open(&root.path().join("db"), &RocksDbShared::default()).unwrap();
        let entries = (0..20_000u32)
            .map(|i| (i.to_be_bytes().to_vec(), Some(vec![i as u8; 64])))
            .collect();
        db.write_batch(entries).unwrap();
        let dir = root.path().join("checkpoint");
        let checkpoint = db.native_checkpoint(&dir).unwrap().unwrap();
        drop(db);
        let sst = checkpoint
            .files
            .iter()
            .find(|f| f.name.ends_with(".sst"))
            .expect("an SST file");
        let path = dir.join(&sst.name);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 3;
        bytes[at] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();
        let e = scan_native(&dir, |_, _| Ok(())).unwrap_err();
        assert!(
            matches!(e, StateError::RocksDbCorruption { .. }) && e.is_damage(),
            "{e:?}"
        );
    }

    /// The one-hour soak's RSS grew by 10 %: every checkpoint flushed a
    /// small SST file, compaction soon deleted it, and its blocks stayed
    /// in the block cache until the cache was full.
    #[test]
    fn blocks_of_deleted_sst_files_leave_the_block_cache() {
        let root = tempfile::tempdir().unwrap();
        let shared = RocksDbShared::default();
        let mut db = RocksDbBackend::open(&root.path().join("db"), &shared).unwrap();
        let keys: Vec<Vec<u8>> = (0..2_000u32).map(|i| i.to_be_bytes().to_vec()).collect();
        let mut after_first_rounds = 0;
        for round in 0..60u32 {
            let entries = keys
                .iter()
                .map(|k| (k.clone(), Some(round.to_le_bytes().repeat(16))))
                .collect();
            db.write_batch(entries).unwrap();
            db.db.flush().unwrap();
            db.db.compact_range(None::<&[u8]>, None::<&[u8]>);
            for k in &keys {
                assert_eq!(db.get(k).unwrap().unwrap()[..4], round.to_le_bytes());
            }
            if round == 5 {
                after_first_rounds = shared.usage_bytes();
            }
        }
        let at_end = shared.usage_bytes();
        assert!(
            at_end < after_first_rounds * 2,
            "block cache grew from {after_first_rounds} to {at_end} bytes"
        );
    }

    #[test]
    fn instances_sharing_a_budget_stay_within_it() {
        let root = tempfile::tempdir().unwrap();
        let options = RocksDbOptions {
            fixed_per_slot_bytes: 4 << 20,
            ..RocksDbOptions::default()
        };
        let shared = RocksDbShared::new(&options, 1);
        let mut dbs: Vec<RocksDbBackend> = (0..3)
            .map(|i| RocksDbBackend::open(&root.path().join(i.to_string()), &shared).unwrap())
            .collect();
        for (n, db) in dbs.iter_mut().enumerate() {
            for chunk in 0..40u32 {
                let entries = (0..1_000u32)
                    .map(|i| {
                        let key = (chunk * 1_000 + i).to_be_bytes().to_vec();
                        (key, Some(vec![n as u8; 100]))
                    })
                    .collect();
                db.write_batch(entries).unwrap();
            }
        }
        for (n, db) in dbs.iter().enumerate() {
            for i in (0..40_000u32).step_by(7) {
                assert_eq!(db.get(&i.to_be_bytes()).unwrap(), Some(vec![n as u8; 100]));
            }
        }
        // 12 MB written; the cache (with the memtables charged to it) holds
        // what the budget allows, plus at most one entry's overshoot.
        // ...and at least the memtables (the budget's write-buffer half,
        // charged to it) and the blocks just read: the instances use it.
        let usage = shared.usage_bytes();
        assert!(
            ((1 << 20)..=(4 << 20) + (1 << 20)).contains(&usage),
            "shared cache holds {usage} bytes"
        );
    }

    #[test]
    fn prefix_end_skips_trailing_ff() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
