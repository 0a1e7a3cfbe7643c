//! How the RocksDB state backend is sized and tuned, set through Flink's
//! `state.backend.rocksdb.*` key names (Flink's `RocksDBConfigurableOptions`
//! and `RocksDBOptions`), so a job file written for Flink's settings reads
//! the same here.
//!
//! The memory model is Flink's managed memory for RocksDB
//! (`state.backend.rocksdb.memory.managed`): every RocksDB instance of one
//! slot shares one block cache, and their memtables are charged to it, so
//! the total stays within [`RocksDbOptions::fixed_per_slot_bytes`] however
//! many keyed operators a slot runs.

use serde::{Deserialize, Serialize};

/// The keys [`RocksDbOptions::set`] reads.
pub const KEYS: [&str; 8] = [
    "state.backend.rocksdb.memory.fixed-per-slot",
    "state.backend.rocksdb.memory.write-buffer-ratio",
    "state.backend.rocksdb.writebuffer.size",
    "state.backend.rocksdb.writebuffer.count",
    "state.backend.rocksdb.block.blocksize",
    "state.backend.rocksdb.use-bloom-filter",
    "state.backend.rocksdb.bloom-filter.bits-per-key",
    "state.backend.rocksdb.thread.num",
];

/// RocksDB settings of a job. Defaults differ from Flink's where Weir's
/// processes are smaller (256 MiB per slot, not a share of a 1.7 GB
/// TaskManager) and where keyed state is read for keys it does not hold
/// (bloom filters on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RocksDbOptions {
    /// `state.backend.rocksdb.memory.fixed-per-slot`: bytes that the
    /// block cache and the memtables of all RocksDB instances in one slot
    /// share (default 256 MiB, about half of what Flink's default
    /// TaskManager gives its one slot's managed memory).
    pub fixed_per_slot_bytes: u64,
    /// `state.backend.rocksdb.memory.write-buffer-ratio`: the share of that
    /// memory memtables may take before RocksDB flushes them (default 0.5,
    /// as Flink).
    pub write_buffer_ratio: f64,
    /// `state.backend.rocksdb.writebuffer.size`: bytes of one memtable
    /// (default 64 MiB, as Flink and RocksDB).
    pub write_buffer_bytes: u64,
    /// `state.backend.rocksdb.writebuffer.count`: memtables per instance
    /// (default 2, as Flink).
    pub write_buffer_count: u32,
    /// `state.backend.rocksdb.block.blocksize`: bytes of uncompressed data
    /// per SST block (default 4 KiB, as Flink).
    pub block_size_bytes: u64,
    /// `state.backend.rocksdb.use-bloom-filter`: a bloom filter per SST
    /// file, so a get of a key that is not there rarely reads a block
    /// (default `true`; Flink's is `false`).
    pub bloom_filter: bool,
    /// `state.backend.rocksdb.bloom-filter.bits-per-key` (default 10, about
    /// 1 % false positives, as Flink).
    pub bloom_bits_per_key: f64,
    /// `state.backend.rocksdb.thread.num`: RocksDB's background flush and
    /// compaction threads in the process (default 2, as Flink).
    pub background_threads: u32,
}

impl Default for RocksDbOptions {
    fn default() -> Self {
        Self {
            fixed_per_slot_bytes: 256 << 20,
            write_buffer_ratio: 0.5,
            write_buffer_bytes: 64 << 20,
            write_buffer_count: 2,
            block_size_bytes: 4 << 10,
            bloom_filter: true,
            bloom_bits_per_key: 10.0,
            background_threads: 2,
        }
    }
}

impl RocksDbOptions {
    /// Is `key` one of the keys this struct reads?
    pub fn knows(key: &str) -> bool {
        KEYS.contains(&key)
    }

    /// Applies one setting. Sizes are bytes or Flink's memory sizes
    /// (`64mb`, `512 kb`, `1g`; units are powers of 1024).
    ///
    /// # Errors
    /// What the value should have been, when it does not fit `key`, or
    /// that the key is not one of [`KEYS`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let size = |min: u64| {
            parse_memory_size(value)
                .filter(|b| *b >= min)
                .ok_or_else(|| {
                    format!("expected a memory size of at least {min} bytes, such as 64mb")
                })
        };
        let count = |min: u32| {
            value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= min)
                .ok_or_else(|| format!("expected a whole number of at least {min}"))
        };
        match key {
            "state.backend.rocksdb.memory.fixed-per-slot" => {
                self.fixed_per_slot_bytes = size(1 << 20)?;
            }
            "state.backend.rocksdb.memory.write-buffer-ratio" => {
                self.write_buffer_ratio = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|r| *r > 0.0 && *r < 1.0)
                    .ok_or("expected a ratio between 0 and 1, exclusive")?;
            }
            "state.backend.rocksdb.writebuffer.size" => self.write_buffer_bytes = size(64 << 10)?,
            "state.backend.rocksdb.writebuffer.count" => self.write_buffer_count = count(1)?,
            "state.backend.rocksdb.block.blocksize" => self.block_size_bytes = size(256)?,
            "state.backend.rocksdb.use-bloom-filter" => {
                self.bloom_filter = match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err("expected true or false".into()),
                };
            }
            "state.backend.rocksdb.bloom-filter.bits-per-key" => {
                self.bloom_bits_per_key = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|b| (1.0..=64.0).contains(b))
                    .ok_or("expected bits per key between 1 and 64")?;
            }
            "state.backend.rocksdb.thread.num" => self.background_threads = count(1)?,
            _ => return Err(format!("not one of {}", KEYS.join(", "))),
        }
        Ok(())
    }

    /// Bytes of block cache and memtables the RocksDB instances of a
    /// process share when it runs `slots` slots of a job.
    pub fn shared_bytes(&self, slots: u32) -> u64 {
        self.fixed_per_slot_bytes
            .saturating_mul(u64::from(slots.max(1)))
    }
}

/// A memory size as Flink writes them: a whole number of bytes, optionally
/// followed by a unit (`b`, `k`/`kb`/`kib`, `m`/`mb`/`mib`, `g`/`gb`/`gib`,
/// `t`/`tb`/`tib`; case-insensitive, powers of 1024, spaces allowed);
/// `None` when it is not one or overflows.
pub fn parse_memory_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let shift = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kib" | "kibibytes" => 10,
        "m" | "mb" | "mib" | "mebibytes" => 20,
        "g" | "gb" | "gib" | "gibibytes" => 30,
        "t" | "tb" | "tib" | "tebibytes" => 40,
        _ => return None,
    };
    number.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_read_as_flink_reads_them() {
        assert_eq!(parse_memory_size("4096"), Some(4096));
        assert_eq!(parse_memory_size("64mb"), Some(64 << 20));
        assert_eq!(parse_memory_size("512 KB"), Some(512 << 10));
        assert_eq!(parse_memory_size("1g"), Some(1 << 30));
        assert_eq!(parse_memory_size("2 GiB"), Some(2 << 30));
        assert_eq!(parse_memory_size("1.5g"), None);
        assert_eq!(parse_memory_size("mb"), None);
        assert_eq!(parse_memory_size("99999999999t"), None);
    }

    #[test]
    fn every_key_sets_its_field_and_bad_values_say_what_was_expected() {
        let mut o = RocksDbOptions::default();
        o.set("state.backend.rocksdb.memory.fixed-per-slot", "128mb")
            .unwrap();
        o.set("state.backend.rocksdb.memory.write-buffer-ratio", "0.25")
            .unwrap();
        o.set("state.backend.rocksdb.writebuffer.size", "8mb")
            .unwrap();
        o.set("state.backend.rocksdb.writebuffer.count", "3")
            .unwrap();
        o.set("state.backend.rocksdb.block.blocksize", "16kb")
            .unwrap();
        o.set("state.backend.rocksdb.use-bloom-filter", "FALSE")
            .unwrap();
        o.set("state.backend.rocksdb.bloom-filter.bits-per-key", "12")
            .unwrap();
        o.set("state.backend.rocksdb.thread.num", "4").unwrap();
        assert_eq!(
            o,
            RocksDbOptions {
                fixed_per_slot_bytes: 128 << 20,
                write_buffer_ratio: 0.25,
                write_buffer_bytes: 8 << 20,
                write_buffer_count: 3,
                block_size_bytes: 16 << 10,
                bloom_filter: false,
                bloom_bits_per_key: 12.0,
                background_threads: 4,
            }
        );
        assert_eq!(o.shared_bytes(3), 384 << 20);
        for (key, value, expected) in [
            (
                "state.backend.rocksdb.memory.fixed-per-slot",
                "1kb",
                "at least 1048576 bytes",
            ),
            (
                "state.backend.rocksdb.memory.write-buffer-ratio",
                "1",
                "between 0 and 1",
            ),
            ("state.backend.rocksdb.writebuffer.count", "0", "at least 1"),
            (
                "state.backend.rocksdb.use-bloom-filter",
                "yes",
                "true or false",
            ),
            (
                "state.backend.rocksdb.bloom-filter.bits-per-key",
                "0",
                "between 1 and 64",
            ),
            ("state.backend.rocksdb.thread.num", "-1", "whole number"),
            ("state.backend.rocksdb.nope", "1", "not one of"),
        ] {
            let e = o.clone().set(key, value).unwrap_err();
            assert!(e.contains(expected), "{key}={value}: {e}");
        }
        assert!(RocksDbOptions::knows("state.backend.rocksdb.thread.num"));
        assert!(!RocksDbOptions::knows("state.backend.rocksdb.nope"));
    }
}
