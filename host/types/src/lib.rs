//! Core types shared by every Weir host crate.
//!
//! - [`Record`], [`Batch`] and [`StreamElement`]: what flows between
//!   operators. Records travel in batches; each record remembers its
//!   [`Origin`] (source split and position) so errors can say which input
//!   record caused them.
//! - [`keygroup`]: keys map to key groups (`murmur3(key) % max_parallelism`,
//!   as in Apache Flink) and each subtask owns a contiguous
//!   [`KeyGroupRange`], which is what later makes rescaling possible.
//! - [`jobgraph`]: the declarative JobGraph read from a YAML or JSON job
//!   file, with errors that name the file, line and field.
//! - [`rocksdb_options`]: the RocksDB state backend's settings under Flink's
//!   `state.backend.rocksdb.*` keys.

pub mod jobgraph;
pub mod keygroup;
mod record;
pub mod rocksdb_options;

pub use keygroup::{KeyGroup, KeyGroupRange};
pub use record::{
    Batch, Bytes, Origin, Record, StreamElement, WatermarkStatus, json_fields, key_from_json_field,
};
pub use rocksdb_options::RocksDbOptions;
