//! Sources and sinks.
//!
//! Sources are split into [`Split`]s (one per input file, or one range of
//! generated records per subtask) assigned round-robin to the source's
//! subtasks; a [`SourceReader`] reads its splits and yields batches.
//! Every record carries an [`Origin`](weir_types::Origin) (split index and
//! line) so that a failure downstream can name the file and line.
//!
//! The Nexmark source generates the auction benchmark's persons, auctions
//! and bids ([`NexmarkConfig`]), or replays a file of them.
//!
//! Sinks: JSON-lines files (one part file per subtask), stdout, blackhole.

mod json;
mod nexmark;
mod sink;
mod source;
mod values;

pub use nexmark::NexmarkConfig;
pub use sink::{
    BlackholeSink, CheckedJson, FailAfter, FileSink, Sink, SinkStart, StdoutSink, check_json,
    prepare_file_sink_dir, prepare_file_sink_part,
};
pub use source::{SourceReader, Split, SplitKind, SplitPosition, plan_splits};

use std::path::PathBuf;

/// Errors of sources and sinks.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// An input file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The source matched no file.
    #[error("source `{source_id}` matched no file: {pattern}")]
    NoFiles {
        /// The source's id.
        source_id: String,
        /// The path and glob.
        pattern: String,
    },
    /// A source setting is invalid (for example a timestamp format).
    #[error("source `{source_id}`: {message}")]
    BadConfig {
        /// The source's id.
        source_id: String,
        /// What is wrong.
        message: String,
    },
    /// The glob pattern is invalid.
    #[error("invalid glob pattern `{pattern}`: {message}")]
    BadGlob {
        /// The pattern.
        pattern: String,
        /// Why.
        message: String,
    },
    /// A file is not valid for its format in a way that stops reading it
    /// (for example a CSV file with no header).
    #[error("{path}: {message}")]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// An output could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A record that reached a JSON-lines sink is not one valid JSON
    /// document in UTF-8 (a UDF wrote something else); nothing of its
    /// batch was written.
    #[error("sink `{sink}` got a value from `{from}` that is not valid JSON ({message}): {start}")]
    NotJson {
        /// The sink's id.
        sink: String,
        /// The vertex the record came from.
        from: String,
        /// serde_json's reason, with line and column.
        message: String,
        /// The value's first bytes, escaped.
        start: String,
    },
}

/// A malformed input record the reader skipped; the task decides what
/// becomes of it (the source's `on_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// Index of the split (file) in the job's split table.
    pub split: u32,
    /// 1-based line in the file.
    pub line: u64,
    /// What is wrong with it.
    pub message: String,
    /// The record's bytes as they are in the file, without the line end
    /// (at most [`MAX_BAD_RECORD_BYTES`] + 1 of them: one more than a
    /// dead letter keeps, so it can tell the record was cut).
    pub bytes: Vec<u8>,
}

/// The most bytes of a bad record a reader keeps for its dead letter (1 MiB).
pub const MAX_BAD_RECORD_BYTES: usize = 1 << 20;
