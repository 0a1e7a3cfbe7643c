//! The JobGraph: a job as the user declares it in a YAML (or JSON) job file.
//!
//! ```yaml
//! name: nab-anomaly
//! parallelism: 1            # default for every vertex
//! max_parallelism: 128      # number of key groups
//! sources:
//!   - id: readings
//!     type: file
//!     path: ../shared/data/nab/data   # a file or a directory
//!     glob: "**/*.csv"                # files under `path` (for a directory)
//!     format: csv                     # csv | jsonl
//!     key: { from: path }             # or { field: NAME }
//!     timestamp: { field: timestamp, format: "%Y-%m-%d %H:%M:%S" }
//! operators:
//!   - id: zscore
//!     input: readings
//!     partition: key_by               # forward (default) | key_by | rebalance
//!     udf: ../../udfs/nab-zscore      # Rust source directory or .wasm
//!     config: { warmup: 30 }
//! sinks:
//!   - id: alerts
//!     input: zscore
//!     type: file                      # file | stdout | blackhole
//!     path: out/nab-anomaly/alerts
//! ```
//!
//! Relative `udf` paths are resolved against the job file's directory (a job
//! ships with its code); data paths (`path` of sources and sinks) against the
//! working directory, as with any command-line tool.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::keygroup::{DEFAULT_MAX_PARALLELISM, MAX_MAX_PARALLELISM};

mod builtin;

pub use builtin::{
    AggregateFn, AggregateSpec, DurationMs, InputSpec, JoinKind, JoinSpec, SignedDurationMs,
    TimeDomain, WindowKind, WindowSpec, parse_duration_ms,
};

/// A job file that could not be read or is not a valid JobGraph.
#[derive(Debug, thiserror::Error)]
pub enum JobGraphError {
    /// The file could not be read.
    #[error("cannot read job file {path}: {source}")]
    Read {
        /// The job file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML or does not match the JobGraph schema.
    #[error("invalid job file {path}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid {
        /// The job file.
        path: PathBuf,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// What is wrong, starting with the field path (e.g. `operators[0].udf`).
        message: String,
    },
}

/// A whole job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JobGraph {
    /// Job name, used in logs and output.
    pub name: String,
    /// Default parallelism of every vertex that does not set its own (default 1).
    #[serde(default = "default_parallelism")]
    pub parallelism: u32,
    /// Number of key groups (default 128, at most 32768).
    #[serde(default = "default_max_parallelism")]
    pub max_parallelism: u16,
    /// Records per batch handed to an operator (default 1024).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Where keyed state lives (default `rocksdb`).
    #[serde(default)]
    pub state_backend: StateBackendKind,
    /// The sources.
    pub sources: Vec<SourceSpec>,
    /// The operators, in any order.
    #[serde(default)]
    pub operators: Vec<OperatorSpec>,
    /// The sinks.
    pub sinks: Vec<SinkSpec>,
    /// Configuration of this job by key, with Flink's key names where they
    /// exist (`execution.checkpointing.interval: 1s`,
    /// `restart-strategy.type: fixed-delay`, ...). Values are scalars, kept
    /// as text; `weir run -D` and submit-time options override them.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "scalar_map"
    )]
    pub configuration: BTreeMap<String, String>,
}

/// Reads a map of YAML scalars (text, numbers, booleans) as text.
fn scalar_map<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Bool(bool),
        Int(i64),
        Float(f64),
        Text(String),
    }
    let map = BTreeMap::<String, Scalar>::deserialize(deserializer)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Scalar::Bool(b) => b.to_string(),
                Scalar::Int(i) => i.to_string(),
                Scalar::Float(f) => f.to_string(),
                Scalar::Text(t) => t,
            };
            (k, text)
        })
        .collect())
}

/// The state backends.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum StateBackendKind {
    /// Embedded RocksDB, one instance per subtask (spills to disk).
    #[default]
    Rocksdb,
    /// On the heap.
    Memory,
}

fn default_parallelism() -> u32 {
    1
}
fn default_max_parallelism() -> u16 {
    DEFAULT_MAX_PARALLELISM
}
fn default_batch_size() -> usize {
    1024
}

/// A source vertex. (Unknown fields are rejected by [`SourceKind`]: serde's
/// `deny_unknown_fields` does not work across `flatten`.)
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceSpec {
    /// Unique vertex id.
    pub id: String,
    /// What kind of source, with its settings.
    #[serde(flatten)]
    pub kind: SourceKind,
    /// Parallelism of this vertex (default: the job's).
    pub parallelism: Option<u32>,
    /// Periodic watermarks from record timestamps (default: none until the
    /// end of input, which always emits the maximum watermark).
    pub watermarks: Option<WatermarkSpec>,
    /// Read at most this many records per second (over all subtasks;
    /// like Flink datagen's `rows-per-second`); default: as fast as possible.
    pub records_per_second: Option<u64>,
    /// What a malformed input record does (default `dead-letter`).
    #[serde(default = "OnError::source_default")]
    pub on_error: OnError,
    /// Where `dead-letter` writes (default `dead-letter/<job>/<id>`).
    pub dead_letter_path: Option<PathBuf>,
}

/// What happens to a bad record: a malformed input record at a source, a
/// record a UDF rejected with a per-record error at an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// The task fails, naming the record (the restart strategy decides).
    Fail,
    /// The record is skipped, counted and reported in the log.
    Drop,
    /// The record is written, with its origin, the vertex and the error,
    /// as a JSON line to the vertex's dead-letter directory (exactly-once
    /// with checkpoints, as the file sink), counted, and skipped.
    DeadLetter,
}

/// The dead-letter directory of vertex `vertex` of job `job`: `explicit`
/// (its `dead_letter_path`), or `dead-letter/<job>/<vertex>`.
pub fn dead_letter_dir(job: &str, vertex: &str, explicit: Option<&Path>) -> PathBuf {
    explicit.map_or_else(
        || PathBuf::from("dead-letter").join(job).join(vertex),
        Path::to_path_buf,
    )
}

impl OnError {
    /// Sources keep going and keep what they could not read.
    pub fn source_default() -> Self {
        OnError::DeadLetter
    }
    /// Operators fail, as Flink does on an exception.
    pub fn operator_default() -> Self {
        OnError::Fail
    }
}

/// Bounded-out-of-orderness watermarks, one generator per split.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WatermarkSpec {
    /// How late (in event time) a record may be relative to the latest
    /// timestamp of its split: ms, or text like `1h` (default 0).
    #[serde(default, alias = "max_out_of_orderness_ms")]
    pub max_out_of_orderness: DurationMs,
    /// A split that sends nothing for this long (processing time; ms, or
    /// text like `1m`) stops holding the watermark back; default: never.
    #[serde(alias = "idle_timeout_ms")]
    pub idle_timeout: Option<DurationMs>,
}

/// The kinds of source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceKind {
    /// Files: one split per file, assigned round-robin to the subtasks.
    File {
        /// A file, or a directory searched with `glob`.
        path: PathBuf,
        /// Pattern of files under `path` when it is a directory (default `**/*`).
        glob: Option<String>,
        /// Record format.
        format: FileFormat,
        /// Where the record key comes from (default: no key).
        key: Option<KeySpec>,
        /// Where event time comes from (default: none).
        timestamp: Option<TimestampSpec>,
    },
    /// Generated records, for tests and benchmarks.
    Datagen {
        /// Number of records (across all subtasks).
        count: u64,
        /// Size of each record's value in bytes (default 100).
        #[serde(default = "default_record_bytes")]
        record_bytes: usize,
        /// Number of distinct keys; records are not keyed when absent.
        keys: Option<u64>,
    },
    /// The Nexmark auction streams (Person, Auction, Bid) as JSON records,
    /// generated (`events`) or replayed from files written by
    /// `weir nexmark` (`replay`); exactly one of the two.
    Nexmark {
        /// Number of events to generate (across all subtasks; persons,
        /// auctions and bids in the proportions 1:3:46).
        events: Option<u64>,
        /// A JSON-lines file, or a directory of them, written by
        /// `weir nexmark`, read instead of generating.
        replay: Option<PathBuf>,
        /// Seed: the same seed and settings give the same events.
        #[serde(default = "default_nexmark_seed")]
        seed: u64,
        /// Event-time rate in events per second: event `n` has time
        /// `base_time + n * 1000 / rate` ms (default 10,000, Nexmark's).
        #[serde(default = "default_nexmark_rate")]
        rate: u64,
        /// Event time of the first event, ms since the epoch (default
        /// 2015-07-15T00:00:00Z, fixed so that runs are repeatable).
        #[serde(default = "default_nexmark_base_time")]
        base_time: i64,
        /// Which kinds to emit (default all three); the others are skipped
        /// without being generated.
        #[serde(default = "NexmarkKind::all")]
        kinds: Vec<NexmarkKind>,
    },
}

/// The three Nexmark event kinds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum NexmarkKind {
    /// A new person (`"type":"person"`).
    Person,
    /// A new auction (`"type":"auction"`).
    Auction,
    /// A bid on an auction (`"type":"bid"`).
    Bid,
}

impl NexmarkKind {
    /// All three kinds.
    pub fn all() -> Vec<NexmarkKind> {
        vec![Self::Person, Self::Auction, Self::Bid]
    }

    /// The kind's name as in the records' `type` field.
    pub fn name(self) -> &'static str {
        match self {
            Self::Person => "person",
            Self::Auction => "auction",
            Self::Bid => "bid",
        }
    }
}

/// Default Nexmark `seed`.
pub const NEXMARK_DEFAULT_SEED: u64 = 42;
/// Default Nexmark `rate`, events per second (Nexmark's own default).
pub const NEXMARK_DEFAULT_RATE: u64 = 10_000;
/// Default Nexmark `base_time`: 2015-07-15T00:00:00Z in ms.
pub const NEXMARK_DEFAULT_BASE_TIME: i64 = 1_436_918_400_000;

fn default_nexmark_seed() -> u64 {
    NEXMARK_DEFAULT_SEED
}

fn default_nexmark_rate() -> u64 {
    NEXMARK_DEFAULT_RATE
}

fn default_nexmark_base_time() -> i64 {
    NEXMARK_DEFAULT_BASE_TIME
}

fn default_record_bytes() -> usize {
    100
}

impl SourceKind {
    /// What is wrong with the settings, as `(field, message)`.
    fn problem(&self) -> Option<(&'static str, String)> {
        let SourceKind::Nexmark {
            events,
            replay,
            rate,
            kinds,
            ..
        } = self
        else {
            return None;
        };
        match (events, replay) {
            (None, None) => {
                return Some((
                    "events",
                    "a nexmark source needs `events` (generate) or `replay` (read a file)".into(),
                ));
            }
            (Some(_), Some(_)) => {
                return Some((
                    "replay",
                    "`events` and `replay` exclude each other: generate or replay".into(),
                ));
            }
            _ => {}
        }
        if *rate == 0 {
            return Some(("rate", "must be at least 1 event per second".into()));
        }
        if kinds.is_empty() {
            return Some(("kinds", "name at least one of person, auction, bid".into()));
        }
        None
    }
}

/// Format of a file source.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// CSV with a header row; each row becomes a JSON object (numbers stay numbers).
    Csv,
    /// One JSON document per line.
    Jsonl,
}

/// Where a record key comes from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum KeySpec {
    /// `{ from: path }`: the file's path relative to the source `path`,
    /// without extension, with `/` separators (e.g. `realKnownCause/nyc_taxi`).
    FromPath {
        /// Must be `path`.
        from: KeyFrom,
    },
    /// `{ field: NAME }`: the value of a top-level field, as text.
    Field {
        /// Field name.
        field: String,
    },
}

/// The only `from` a key knows today.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeyFrom {
    /// The file path.
    Path,
}

/// Event time from a field.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimestampSpec {
    /// Field holding the time.
    pub field: String,
    /// `millis` or `seconds` (numbers since the epoch), `rfc3339`, or a
    /// chrono `strftime` pattern read as UTC (default `rfc3339`).
    #[serde(default = "default_ts_format")]
    pub format: String,
}

fn default_ts_format() -> String {
    "rfc3339".to_string()
}

/// An operator vertex: a Wasm UDF, a built-in window or join, or (with
/// several inputs and nothing else) a union.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OperatorSpec {
    /// Unique vertex id.
    pub id: String,
    /// The upstream vertex (or a list of them: a union, or a join's left
    /// and right input).
    #[serde(deserialize_with = "builtin::one_or_many_inputs")]
    pub input: Vec<InputSpec>,
    /// How records reach this operator's subtasks (default `forward`).
    #[serde(default)]
    pub partition: Partitioning,
    /// The user function: a Rust UDF source directory or a `.wasm`
    /// component. With `window`, the window's aggregate function (a
    /// component of the `aggregate` world).
    pub udf: Option<PathBuf>,
    /// A built-in window aggregation (with `aggregate`).
    pub window: Option<WindowSpec>,
    /// The aggregates a window computes.
    pub aggregate: Option<Vec<AggregateSpec>>,
    /// A built-in join of the two inputs.
    pub join: Option<JoinSpec>,
    /// The operator's config, handed to the UDF's `open` as JSON.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    /// Parallelism of this vertex (default: the job's).
    pub parallelism: Option<u32>,
    /// Memory cap of one instance in MiB (default 64).
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u32,
    /// Time one `process` call may take before it is interrupted, in ms (default 10000).
    #[serde(default = "default_call_timeout_ms")]
    pub call_timeout_ms: u64,
    /// Guest log lines (stderr lines and `logging` calls) logged per second
    /// and instance at most (default 100); the rest are dropped and
    /// counted. 0 logs none.
    #[serde(default = "default_log_lines_per_second")]
    pub log_lines_per_second: u32,
    /// Capabilities granted to the UDF beyond the locked-down default
    /// (`grants: [wall-clock, random]`); without them its clocks and
    /// randomness are deterministic stand-ins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// Bytes of one keyed-state entry the UDF may write (a value, a whole
    /// list, a map entry); default 64 MiB.
    #[serde(default = "default_max_state_value_bytes")]
    pub max_state_value_bytes: u64,
    /// Bytes of state writes one guest call may leave pending (keys and
    /// values, applied when the call returns); default 256 MiB.
    #[serde(default = "default_max_pending_state_bytes")]
    pub max_pending_state_bytes: u64,
    /// Timers the UDF may have registered in one subtask; default 1,000,000.
    #[serde(default = "default_max_timers")]
    pub max_timers: u64,
    /// Timers the UDF may have registered for one key; default 100,000.
    #[serde(default = "default_max_timers_per_key")]
    pub max_timers_per_key: u64,
    /// Outputs one call of the UDF may return (records, side-output
    /// records, per-record errors); default 262,144.
    #[serde(default = "default_max_outputs_per_call")]
    pub max_outputs_per_call: u64,
    /// Bytes of all outputs of one call together (keys, values, side-output
    /// names, error messages); default 256 MiB.
    #[serde(default = "default_max_output_bytes_per_call")]
    pub max_output_bytes_per_call: u64,
    /// Bytes of the key of one record the UDF emits; default 1 MiB.
    #[serde(default = "default_max_key_bytes")]
    pub max_key_bytes: u64,
    /// Distinct side-output names one call may use; default 1,024.
    #[serde(default = "default_max_side_outputs_per_call")]
    pub max_side_outputs_per_call: u64,
    /// What a record the UDF rejects (a per-record error) does (default
    /// `fail`).
    #[serde(default = "OnError::operator_default")]
    pub on_error: OnError,
    /// Where `dead-letter` writes (default `dead-letter/<job>/<id>`).
    pub dead_letter_path: Option<PathBuf>,
}

/// A capability an operator's job entry grants its UDF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Grant {
    /// The host's wall and monotonic clocks (and real sleeping, bounded by
    /// the call deadline) instead of virtual ones.
    WallClock,
    /// The host's randomness (`wasi:random`) instead of a seeded generator.
    Random,
}

/// The most guest log lines per second an operator may ask for.
pub const MAX_LOG_LINES_PER_SECOND: u32 = 100_000;

/// The most linear memory a wasm32 instance can address: 4 GiB.
pub const MAX_MEMORY_MIB: u32 = 4096;

/// The longest per-call deadline: one hour.
pub const MAX_CALL_TIMEOUT_MS: u64 = 3_600_000;

/// `memory_mib` in `1..=4096` (a wasm32 memory is at most 4 GiB) and
/// `call_timeout_ms` in `1..=3600000`, checked when the job is read rather
/// than when the first instance starts.
fn check_limits(i: usize, o: &OperatorSpec) -> Result<(), (String, Option<String>, String)> {
    if !(1..=MAX_MEMORY_MIB).contains(&o.memory_mib) {
        return Err((
            format!("operators[{i}].memory_mib"),
            Some(o.memory_mib.to_string()),
            format!(
                "{} MiB is outside 1..={MAX_MEMORY_MIB} (a wasm32 instance addresses at most 4 GiB)",
                o.memory_mib
            ),
        ));
    }
    if !(1..=MAX_CALL_TIMEOUT_MS).contains(&o.call_timeout_ms) {
        return Err((
            format!("operators[{i}].call_timeout_ms"),
            Some(o.call_timeout_ms.to_string()),
            format!(
                "{} ms is outside 1..={MAX_CALL_TIMEOUT_MS} (1 ms to 1 hour)",
                o.call_timeout_ms
            ),
        ));
    }
    for (name, value) in [
        ("max_state_value_bytes", o.max_state_value_bytes),
        ("max_pending_state_bytes", o.max_pending_state_bytes),
        ("max_timers", o.max_timers),
        ("max_timers_per_key", o.max_timers_per_key),
        ("max_outputs_per_call", o.max_outputs_per_call),
        ("max_output_bytes_per_call", o.max_output_bytes_per_call),
        ("max_key_bytes", o.max_key_bytes),
        ("max_side_outputs_per_call", o.max_side_outputs_per_call),
    ] {
        if value == 0 {
            return Err((
                format!("operators[{i}].{name}"),
                Some(value.to_string()),
                "must be at least 1".into(),
            ));
        }
    }
    // Only a UDF operator rejects records one by one.
    let udf_operator = o.udf.is_some() && o.window.is_none();
    if !udf_operator && (o.on_error != OnError::Fail || o.dead_letter_path.is_some()) {
        return Err((
            format!("operators[{i}].on_error"),
            None,
            "`on_error` and `dead_letter_path` apply to operators with a UDF, not to windows, joins or unions (their bad records are counted and reported)".into(),
        ));
    }
    if o.log_lines_per_second > MAX_LOG_LINES_PER_SECOND {
        return Err((
            format!("operators[{i}].log_lines_per_second"),
            Some(o.log_lines_per_second.to_string()),
            format!(
                "{} is more than {MAX_LOG_LINES_PER_SECOND} lines per second",
                o.log_lines_per_second
            ),
        ));
    }
    Ok(())
}

/// What an operator does, derived from the fields it sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorRole<'a> {
    /// A Wasm UDF (`udf`), over one input or the union of several.
    Udf(&'a Path),
    /// A built-in window aggregation (`window` + `aggregate`, and/or an
    /// aggregate component in `udf`).
    Window(&'a WindowSpec, &'a [AggregateSpec], Option<&'a Path>),
    /// A built-in join of two inputs (`join`).
    Join(&'a JoinSpec),
    /// Several inputs merged into one stream, nothing else.
    Union,
}

impl OperatorSpec {
    /// What the operator does. Only meaningful on a validated job.
    pub fn role(&self) -> OperatorRole<'_> {
        if let Some(window) = &self.window {
            OperatorRole::Window(
                window,
                self.aggregate.as_deref().unwrap_or_default(),
                self.udf.as_deref(),
            )
        } else if let Some(udf) = &self.udf {
            OperatorRole::Udf(udf)
        } else if let Some(join) = &self.join {
            OperatorRole::Join(join)
        } else {
            OperatorRole::Union
        }
    }
}

fn default_memory_mib() -> u32 {
    64
}
fn default_call_timeout_ms() -> u64 {
    10_000
}
fn default_log_lines_per_second() -> u32 {
    100
}
fn default_max_state_value_bytes() -> u64 {
    64 << 20
}
fn default_max_pending_state_bytes() -> u64 {
    256 << 20
}
fn default_max_timers() -> u64 {
    1_000_000
}
fn default_max_timers_per_key() -> u64 {
    100_000
}
fn default_max_outputs_per_call() -> u64 {
    262_144
}
fn default_max_output_bytes_per_call() -> u64 {
    256 << 20
}
fn default_max_key_bytes() -> u64 {
    1 << 20
}
fn default_max_side_outputs_per_call() -> u64 {
    1_024
}

/// How records are distributed from one vertex to the next.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Partitioning {
    /// Subtask i sends to subtask i (needs equal parallelism); lets the two chain.
    #[default]
    Forward,
    /// By key group of the record key.
    KeyBy,
    /// Round-robin over the downstream subtasks, batch by batch.
    Rebalance,
}

/// A sink vertex. (Unknown fields are rejected by [`SinkKind`].)
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SinkSpec {
    /// Unique vertex id.
    pub id: String,
    /// The upstream vertex (an id, or `{ from, output }` for a side output).
    pub input: InputSpec,
    /// How records reach the sink's subtasks (default `forward`).
    #[serde(default)]
    pub partition: Partitioning,
    /// What kind of sink, with its settings.
    #[serde(flatten)]
    pub kind: SinkKind,
    /// Parallelism of this vertex (default: its input's).
    pub parallelism: Option<u32>,
}

/// The kinds of sink.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SinkKind {
    /// JSON lines, one part file per subtask (`part-<subtask>.jsonl`) under `path`.
    File {
        /// Output directory; earlier `part-*` files in it are replaced.
        path: PathBuf,
        /// Fault injection, for testing recovery: in the job's first
        /// attempt (before any restart) each subtask of the sink fails with
        /// an I/O error once it has written this many records.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fail_after_records: Option<u64>,
    },
    /// JSON lines on standard output.
    Stdout,
    /// Discards records (benchmarks).
    Blackhole,
}

impl JobGraph {
    /// Reads and validates a job file (YAML; JSON is valid YAML).
    ///
    /// # Errors
    /// [`JobGraphError::Read`] when the file cannot be read,
    /// [`JobGraphError::Invalid`] with line and field when it is not a valid job.
    pub fn from_file(path: &Path) -> Result<Self, JobGraphError> {
        let text = std::fs::read_to_string(path).map_err(|source| JobGraphError::Read {
            path: path.into(),
            source,
        })?;
        Self::from_yaml(&text, path)
    }

    /// Parses and validates job text; `path` is only used in errors.
    ///
    /// # Errors
    /// [`JobGraphError::Invalid`] with line and field when it is not a valid job.
    pub fn from_yaml(text: &str, path: &Path) -> Result<Self, JobGraphError> {
        let job: JobGraph = serde_norway::from_str(text).map_err(|e| JobGraphError::Invalid {
            path: path.into(),
            line: e.location().map(|l| l.line()),
            message: clean_yaml_message(&e.to_string()),
        })?;
        job.validate()
            .map_err(|(field, value, message)| JobGraphError::Invalid {
                path: path.into(),
                line: find_line(text, field_name(&field), value.as_deref()),
                message: format!("{field}: {message}"),
            })?;
        Ok(job)
    }

    /// Validates the job again after a change made outside the file (for
    /// example `--parallelism`); errors name `path` but no line.
    ///
    /// # Errors
    /// [`JobGraphError::Invalid`] naming the field.
    pub fn revalidate(&self, path: &Path) -> Result<(), JobGraphError> {
        self.validate()
            .map_err(|(field, _, message)| JobGraphError::Invalid {
                path: path.into(),
                line: None,
                message: format!("{field}: {message}"),
            })
    }

    /// The effective parallelism of a vertex, given the job default.
    pub fn parallelism_of(&self, id: &str) -> Option<u32> {
        if let Some(s) = self.sources.iter().find(|s| s.id == id) {
            return Some(s.parallelism.unwrap_or(self.parallelism));
        }
        if let Some(o) = self.operators.iter().find(|o| o.id == id) {
            return Some(o.parallelism.unwrap_or(self.parallelism));
        }
        let sink = self.sinks.iter().find(|s| s.id == id)?;
        match sink.parallelism {
            Some(p) => Some(p),
            None => self.parallelism_of(&sink.input.from),
        }
    }

    /// Checks references, parallelism and partitioning. Returns
    /// `(field path, offending value, message)`.
    fn validate(&self) -> Result<(), (String, Option<String>, String)> {
        let err = |field: String, value: Option<&str>, msg: String| {
            Err((field, value.map(str::to_string), msg))
        };
        if self.sources.is_empty() {
            return err(
                "sources".into(),
                None,
                "a job needs at least one source".into(),
            );
        }
        if self.sinks.is_empty() {
            return err("sinks".into(), None, "a job needs at least one sink".into());
        }
        if self.parallelism == 0 {
            return err("parallelism".into(), None, "must be at least 1".into());
        }
        if self.max_parallelism == 0 || self.max_parallelism > MAX_MAX_PARALLELISM {
            return err(
                "max_parallelism".into(),
                None,
                format!("must be between 1 and {MAX_MAX_PARALLELISM}"),
            );
        }
        if self.batch_size == 0 {
            return err("batch_size".into(), None, "must be at least 1".into());
        }
        for source in &self.sources {
            if let Some((field, message)) = source.kind.problem() {
                return err(format!("sources[{}].{field}", source.id), None, message);
            }
            if source.records_per_second == Some(0) {
                return err(
                    format!("sources[{}].records_per_second", source.id),
                    None,
                    "must be at least 1 (leave it out to read as fast as possible)".into(),
                );
            }
        }
        let mut ids = HashSet::new();
        let all_ids = self
            .sources
            .iter()
            .map(|s| ("sources", &s.id, s.parallelism))
            .chain(
                self.operators
                    .iter()
                    .map(|o| ("operators", &o.id, o.parallelism)),
            )
            .chain(self.sinks.iter().map(|s| ("sinks", &s.id, s.parallelism)));
        for (section, id, parallelism) in all_ids {
            if !ids.insert(id.clone()) {
                return err(
                    format!("{section}.id"),
                    Some(id),
                    format!("duplicate vertex id `{id}`"),
                );
            }
            if let Some(p) = parallelism
                && (p == 0 || p > u32::from(self.max_parallelism))
            {
                {
                    return err(
                        format!("{section}[{id}].parallelism"),
                        None,
                        format!(
                            "must be between 1 and max_parallelism ({})",
                            self.max_parallelism
                        ),
                    );
                }
            }
        }
        if u32::from(self.max_parallelism) < self.parallelism {
            return err(
                "parallelism".into(),
                None,
                format!("exceeds max_parallelism ({})", self.max_parallelism),
            );
        }
        let known = |id: &str| ids.contains(id) && !self.sinks.iter().any(|s| s.id == id);
        let is_operator = |id: &str| self.operators.iter().any(|o| o.id == id);
        let edges = self
            .operators
            .iter()
            .enumerate()
            .flat_map(|(i, o)| {
                o.input
                    .iter()
                    .map(move |input| (format!("operators[{i}]"), input, o.partition))
            })
            .chain(
                self.sinks
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (format!("sinks[{i}]"), &s.input, s.partition)),
            );
        for (field, input, partition) in edges {
            if !known(&input.from) {
                return err(
                    format!("{field}.input"),
                    Some(&input.from),
                    format!("no source or operator has id `{}`", input.from),
                );
            }
            if input.output.is_some() && !is_operator(&input.from) {
                return err(
                    format!("{field}.input.output"),
                    None,
                    format!(
                        "`{}` is not an operator and has no side outputs",
                        input.from
                    ),
                );
            }
            if input.key.is_some() && partition != Partitioning::KeyBy {
                return err(
                    format!("{field}.input.key"),
                    None,
                    "re-keying an input needs `partition: key_by`".into(),
                );
            }
        }
        for (i, o) in self.operators.iter().enumerate() {
            self.check_role(i, o)?;
            check_limits(i, o)?;
        }
        self.check_acyclic()?;
        for (i, o) in self.operators.iter().enumerate() {
            for input in &o.input {
                self.check_forward(&format!("operators[{i}]"), &o.id, input, o.partition)?;
            }
        }
        for (i, s) in self.sinks.iter().enumerate() {
            self.check_forward(&format!("sinks[{i}]"), &s.id, &s.input, s.partition)?;
        }
        Ok(())
    }

    /// An operator sets exactly one of `udf`, `window` (+ `aggregate`
    /// and/or an aggregate `udf`) and `join`, or none with several inputs
    /// (a union).
    fn check_role(
        &self,
        i: usize,
        o: &OperatorSpec,
    ) -> Result<(), (String, Option<String>, String)> {
        let field = format!("operators[{i}]");
        let set = [
            // With a window, `udf` is its aggregate function.
            ("udf", o.udf.is_some() && o.window.is_none()),
            ("window", o.window.is_some()),
            ("join", o.join.is_some()),
        ];
        let chosen: Vec<&str> = set.iter().filter(|(_, on)| *on).map(|(n, _)| *n).collect();
        let bad = |sub: &str, message: String| Err((format!("{field}{sub}"), None, message));
        if chosen.len() > 1 {
            return bad(
                "",
                format!(
                    "operator `{}` sets {}; an operator is one of a UDF, a window or a join",
                    o.id,
                    chosen.join(" and ")
                ),
            );
        }
        if o.aggregate.is_some() && o.window.is_none() {
            return bad(".aggregate", "`aggregate` needs a `window`".into());
        }
        let keyed = o.partition == Partitioning::KeyBy;
        match o.role() {
            OperatorRole::Udf(_) => Ok(()),
            OperatorRole::Union if o.input.len() < 2 => bad(
                "",
                format!(
                    "operator `{}` needs `udf`, `window` (with `aggregate`) or `join`",
                    o.id
                ),
            ),
            OperatorRole::Union => Ok(()),
            OperatorRole::Window(window, aggregates, udf) => {
                builtin::check_window(window).or_else(|(f, m)| bad(&format!(".window.{f}"), m))?;
                if aggregates.is_empty() && udf.is_none() {
                    return bad(
                        ".aggregate",
                        "a window needs at least one aggregate, or an aggregate component in `udf`"
                            .into(),
                    );
                }
                let mut names = HashSet::new();
                for (a, agg) in aggregates.iter().enumerate() {
                    if agg.function != AggregateFn::Count && agg.field.is_none() {
                        return bad(
                            &format!(".aggregate[{a}].field"),
                            format!(
                                "`{}` needs the numeric `field` it reads",
                                agg.function.name()
                            ),
                        );
                    }
                    if !names.insert(agg.output_name()) || agg.output_name() == window.key_field {
                        return bad(
                            &format!(".aggregate[{a}].as"),
                            format!("result field `{}` is used twice", agg.output_name()),
                        );
                    }
                }
                if !keyed && self.parallelism_of(&o.id) != Some(1) {
                    return bad(
                        ".partition",
                        "a window over a non-keyed stream runs with parallelism 1; use `partition: key_by` or `parallelism: 1`".into(),
                    );
                }
                Ok(())
            }
            OperatorRole::Join(join) => {
                if o.input.len() != 2 {
                    return bad(
                        ".input",
                        "a join has exactly two inputs (left, right)".into(),
                    );
                }
                if !keyed {
                    return bad(".partition", "a join needs `partition: key_by`".into());
                }
                match join.kind {
                    JoinKind::Window => {
                        let Some(window) = &join.window else {
                            return bad(".join.window", "a window join needs `window`".into());
                        };
                        builtin::check_window(window)
                            .or_else(|(f, m)| bad(&format!(".join.window.{f}"), m))?;
                        if window.kind == WindowKind::Session {
                            return bad(
                                ".join.window.type",
                                "a window join takes a tumbling or sliding window".into(),
                            );
                        }
                        Ok(())
                    }
                    JoinKind::Interval => match (join.lower, join.upper) {
                        (Some(lower), Some(upper)) if lower <= upper => Ok(()),
                        (Some(_), Some(_)) => {
                            bad(".join.lower", "`lower` must not exceed `upper`".into())
                        }
                        _ => bad(".join", "an interval join needs `lower` and `upper`".into()),
                    },
                }
            }
        }
    }

    fn check_forward(
        &self,
        field: &str,
        id: &str,
        input: &InputSpec,
        partition: Partitioning,
    ) -> Result<(), (String, Option<String>, String)> {
        if partition != Partitioning::Forward {
            return Ok(());
        }
        let input = input.from.as_str();
        let (up, down) = (self.parallelism_of(input), self.parallelism_of(id));
        if up != down {
            let (up, down) = (up.unwrap_or(0), down.unwrap_or(0));
            return Err((
                format!("{field}.partition"),
                None,
                format!(
                    "`forward` needs equal parallelism, but `{input}` has {up} and `{id}` has {down}; use `rebalance` or `key_by`"
                ),
            ));
        }
        Ok(())
    }

    fn check_acyclic(&self) -> Result<(), (String, Option<String>, String)> {
        let inputs: BTreeMap<&str, Vec<&str>> = self
            .operators
            .iter()
            .map(|o| {
                (
                    o.id.as_str(),
                    o.input.iter().map(|i| i.from.as_str()).collect(),
                )
            })
            .collect();
        for (i, o) in self.operators.iter().enumerate() {
            // Depth-first search upstream from `o`'s inputs.
            let mut stack: Vec<&str> = inputs[o.id.as_str()].clone();
            let mut seen = HashSet::new();
            while let Some(at) = stack.pop() {
                if at == o.id {
                    return Err((
                        format!("operators[{i}].input"),
                        o.input.first().map(|i| i.from.clone()),
                        format!("operator `{}` is part of a cycle", o.id),
                    ));
                }
                if seen.insert(at)
                    && let Some(up) = inputs.get(at)
                {
                    stack.extend(up);
                }
            }
        }
        Ok(())
    }
}

fn field_name(field: &str) -> &str {
    let last = field.rsplit('.').next().unwrap_or(field);
    last.split('[').next().unwrap_or(last)
}

/// The 1-based line of job text `text` where `field:` is set (to `value`,
/// when given); for pointing at a field in errors found after parsing.
pub fn line_of(text: &str, field: &str, value: Option<&str>) -> Option<usize> {
    find_line(text, field, value)
}

/// The 1-based line where `field:` is set (to `value`, when given).
fn find_line(text: &str, field: &str, value: Option<&str>) -> Option<usize> {
    text.lines()
        .position(|line| {
            let line = line.trim_start().trim_start_matches("- ");
            let Some(rest) = line
                .strip_prefix(field)
                .and_then(|r| r.trim_start().strip_prefix(':'))
            else {
                return false;
            };
            value.is_none_or(|v| rest.trim().trim_matches(|c| c == '"' || c == '\'') == v)
        })
        .map(|i| i + 1)
}

/// serde_norway appends " at line L column C"; we report the line ourselves.
fn clean_yaml_message(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAB: &str = r#"
name: nab
sources:
  - id: readings
    type: file
    path: data
    glob: "**/*.csv"
    format: csv
    key: { from: path }
    timestamp: { field: timestamp, format: "%Y-%m-%d %H:%M:%S" }
operators:
  - id: zscore
    input: readings
    partition: key_by
    udf: ../udfs/nab-zscore
    config: { warmup: 30 }
sinks:
  - id: alerts
    input: zscore
    type: file
    path: out/alerts
"#;

    fn parse(text: &str) -> Result<JobGraph, JobGraphError> {
        JobGraph::from_yaml(text, Path::new("job.yaml"))
    }

    fn invalid(text: &str) -> (Option<usize>, String) {
        match parse(text) {
            Err(JobGraphError::Invalid { line, message, .. }) => (line, message),
            other => panic!("expected an invalid job, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_full_job_with_defaults() {
        let job = parse(NAB).expect("valid");
        assert_eq!(job.parallelism, 1);
        assert_eq!(job.max_parallelism, 128);
        assert_eq!(job.batch_size, 1024);
        let SourceKind::File {
            format,
            key,
            timestamp,
            ..
        } = &job.sources[0].kind
        else {
            panic!("file source")
        };
        assert_eq!(*format, FileFormat::Csv);
        assert_eq!(
            *key,
            Some(KeySpec::FromPath {
                from: KeyFrom::Path
            })
        );
        assert_eq!(
            timestamp.as_ref().map(|t| t.format.as_str()),
            Some("%Y-%m-%d %H:%M:%S")
        );
        assert_eq!(job.operators[0].partition, Partitioning::KeyBy);
        assert_eq!(
            job.operators[0].config,
            Some(serde_json::json!({"warmup": 30}))
        );
        assert_eq!(job.operators[0].memory_mib, 64);
        assert_eq!(
            job.sinks[0].kind,
            SinkKind::File {
                path: "out/alerts".into(),
                fail_after_records: None,
            }
        );
        assert_eq!(job.parallelism_of("alerts"), Some(1));
    }

    #[test]
    fn unknown_field_names_the_field_and_line() {
        let (line, message) = invalid(&NAB.replace(
            "    udf: ../udfs/nab-zscore",
            "    udff: ../udfs/nab-zscore",
        ));
        assert_eq!(line, Some(15));
        assert!(
            message.contains("operators[0]") && message.contains("udff"),
            "{message}"
        );
    }

    #[test]
    fn missing_field_is_reported() {
        let (line, message) = invalid(&NAB.replace("    path: out/alerts\n", ""));
        assert!(line.is_some());
        assert!(
            message.contains("sinks[0]") && message.contains("missing field `path`"),
            "{message}"
        );
        let (_, message) = invalid(&NAB.replace("    udf: ../udfs/nab-zscore\n", ""));
        assert!(
            message.contains("operators[0]: operator `zscore` needs `udf`, `window`"),
            "{message}"
        );
    }

    fn with_operator(operator: &str) -> String {
        format!(
            "name: w\nsources:\n  - {{id: a, type: datagen, count: 1, keys: 3}}\n  - {{id: b, type: datagen, count: 1}}\noperators:\n{operator}sinks:\n  - {{id: s, input: op, type: blackhole}}\n"
        )
    }

    #[test]
    fn window_operators_parse_with_durations_and_defaults() {
        let job = parse(&with_operator(
            "  - id: op\n    input: a\n    partition: key_by\n    window: { type: sliding, size: 1day, slide: 1h, late_output: late }\n    aggregate: [{ fn: max, field: value }, { fn: count, as: n }]\n",
        ))
        .expect("valid");
        let OperatorRole::Window(window, aggregates, None) = job.operators[0].role() else {
            panic!("a window")
        };
        assert_eq!(window.size, Some(DurationMs(86_400_000)));
        assert_eq!(window.slide, Some(DurationMs(3_600_000)));
        assert_eq!(window.time, TimeDomain::Event);
        assert_eq!(window.allowed_lateness, DurationMs(0));
        assert_eq!(window.key_field, "key");
        assert_eq!(aggregates[0].output_name(), "max");
        assert_eq!(aggregates[1].output_name(), "n");
        // With a window, `udf` is the window's aggregate component, alone
        // or beside built-in aggregates.
        let job = parse(&with_operator(
            "  - id: op\n    input: a\n    partition: key_by\n    window: { type: tumbling, size: 1h }\n    udf: agg.wasm\n",
        ))
        .expect("valid");
        let OperatorRole::Window(_, aggregates, Some(udf)) = job.operators[0].role() else {
            panic!("not a window with an aggregate component");
        };
        assert!(aggregates.is_empty());
        assert_eq!(udf, Path::new("agg.wasm"));
    }

    #[test]
    fn bad_windows_and_joins_are_rejected_with_the_field() {
        let cases = [
            (
                "    partition: key_by\n    window: { type: sliding, size: 1h }\n    aggregate: [{ fn: count }]\n",
                "operators[0].window.slide: a sliding window needs `slide`",
            ),
            (
                "    partition: key_by\n    window: { type: session, gap: 1m, size: 1h }\n    aggregate: [{ fn: count }]\n",
                "operators[0].window.size: does not apply to a session window",
            ),
            (
                "    partition: key_by\n    window: { type: tumbling, size: 1h }\n    aggregate: [{ fn: sum }]\n",
                "operators[0].aggregate[0].field: `sum` needs",
            ),
            (
                "    partition: key_by\n    window: { type: tumbling, size: 1h }\n",
                "operators[0].aggregate: a window needs at least one aggregate",
            ),
            (
                "    parallelism: 2\n    partition: rebalance\n    window: { type: tumbling, size: 1h }\n    aggregate: [{ fn: count }]\n",
                "operators[0].partition: a window over a non-keyed stream",
            ),
            (
                "    partition: key_by\n    join: { type: window, window: { type: tumbling, size: 1h } }\n    udf: x.wasm\n",
                "sets udf and join",
            ),
            (
                "    partition: key_by\n    join: { type: interval, lower: 5s, upper: -5s }\n",
                "exactly two inputs",
            ),
        ];
        for (body, expected) in cases {
            let (_, message) =
                invalid(&with_operator(&format!("  - id: op\n    input: a\n{body}")));
            assert!(message.contains(expected), "{expected}\n got: {message}");
        }
        let (_, message) = invalid(&with_operator(
            "  - id: op\n    input: [a, b]\n    partition: key_by\n    join: { type: interval, lower: 5s, upper: -5s }\n",
        ));
        assert!(
            message.contains("`lower` must not exceed `upper`"),
            "{message}"
        );
        let (_, message) = invalid(&with_operator(
            "  - id: op\n    input: [a, {from: b, key: k}]\n",
        ));
        assert!(
            message.contains("input.key: re-keying an input needs `partition: key_by`"),
            "{message}"
        );
        let (_, message) = invalid(&with_operator(
            "  - id: op\n    input: [a, {from: b, output: late}]\n",
        ));
        assert!(message.contains("`b` is not an operator"), "{message}");
    }

    #[test]
    fn unions_joins_and_side_output_sinks_parse() {
        let text = with_operator(
            "  - id: op\n    input: [{from: a, key: id}, {from: b, key: seller}]\n    partition: key_by\n    join: { type: window, window: { type: tumbling, size: 10s } }\n  - id: u\n    input: [a, b]\n",
        )
        .replace(
            "  - {id: s, input: op, type: blackhole}\n",
            "  - {id: s, input: op, type: blackhole}\n  - {id: t, input: {from: op, output: late}, type: stdout}\n  - {id: v, input: u, type: blackhole}\n",
        );
        let job = parse(&text).expect("valid");
        assert!(matches!(job.operators[0].role(), OperatorRole::Join(_)));
        assert_eq!(job.operators[1].role(), OperatorRole::Union);
        assert_eq!(job.sinks[1].input.output.as_deref(), Some("late"));
    }

    #[test]
    fn unknown_input_names_the_vertex_and_line() {
        let (line, message) = invalid(&NAB.replace("    input: readings", "    input: readingz"));
        assert_eq!(line, Some(13));
        assert!(
            message.contains("operators[0].input") && message.contains("`readingz`"),
            "{message}"
        );
    }

    #[test]
    fn forward_with_unequal_parallelism_is_rejected() {
        let text = NAB.replace("    partition: key_by\n", "    parallelism: 2\n");
        let (_, message) = invalid(&text);
        assert!(
            message.contains("operators[0].partition") && message.contains("equal parallelism"),
            "{message}"
        );
    }

    #[test]
    fn invalid_yaml_reports_line() {
        let (line, _) = invalid("name: x\nsources: [\n");
        assert!(line.is_some());
    }

    #[test]
    fn duplicate_ids_and_cycles_are_rejected() {
        let dup = NAB.replace("  - id: alerts", "  - id: zscore");
        assert!(invalid(&dup).1.contains("duplicate vertex id `zscore`"));
        let cyc = format!(
            "{}\n  - id: b\n    input: c\n    udf: x.wasm\n  - id: c\n    input: b\n    udf: x.wasm\n",
            NAB.split("sinks:").next().unwrap_or_default().trim_end()
        ) + "sinks:\n  - id: s\n    input: readings\n    type: stdout\n";
        assert!(invalid(&cyc).1.contains("cycle"), "{}", invalid(&cyc).1);
    }

    #[test]
    fn nexmark_source_generates_or_replays_but_not_both() {
        let job = |source: &str| {
            format!(
                "name: n\nsources:\n  - {{id: e, type: nexmark, {source}}}\nsinks:\n  - {{id: s, input: e, type: blackhole}}\n"
            )
        };
        let parsed = parse(&job("events: 100, kinds: [bid]")).expect("valid");
        let SourceKind::Nexmark {
            events,
            seed,
            rate,
            kinds,
            ..
        } = &parsed.sources[0].kind
        else {
            panic!("nexmark source")
        };
        assert_eq!((*events, *seed, *rate), (Some(100), 42, 10_000));
        assert_eq!(kinds, &vec![NexmarkKind::Bid]);
        let (_, message) = invalid(&job("seed: 1"));
        assert!(message.contains("needs `events`"), "{message}");
        let (_, message) = invalid(&job("events: 5, replay: x"));
        assert!(message.contains("exclude each other"), "{message}");
        let (_, message) = invalid(&job("events: 5, rate: 0"));
        assert!(message.contains("rate"), "{message}");
        let (_, message) = invalid(&job("events: 5, kinds: []"));
        assert!(message.contains("kinds"), "{message}");
    }

    #[test]
    fn records_per_second_paces_any_source_and_must_be_positive() {
        let job = |extra: &str| {
            format!(
                "name: n\nsources:\n  - {{id: g, type: datagen, count: 10{extra}}}\nsinks:\n  - {{id: s, input: g, type: blackhole}}\n"
            )
        };
        let parsed = parse(&job(", records_per_second: 500")).expect("valid");
        assert_eq!(parsed.sources[0].records_per_second, Some(500));
        assert_eq!(
            parse(&job("")).expect("valid").sources[0].records_per_second,
            None
        );
        let (_, message) = invalid(&job(", records_per_second: 0"));
        assert!(
            message.contains("records_per_second") && message.contains("at least 1"),
            "{message}"
        );
    }

    #[test]
    fn datagen_source_and_sinks_parse() {
        let job = parse(
            "name: g\nparallelism: 2\nsources:\n  - {id: g, type: datagen, count: 10}\nsinks:\n  - {id: s, input: g, type: blackhole}\n",
        )
        .expect("valid");
        assert_eq!(
            job.sources[0].kind,
            SourceKind::Datagen {
                count: 10,
                record_bytes: 100,
                keys: None
            }
        );
        assert_eq!(job.parallelism_of("s"), Some(2));
    }

    #[test]
    fn a_configuration_map_keeps_scalars_as_text() {
        let job = parse(
            "name: g\nsources:\n  - {id: g, type: datagen, count: 10}\nsinks:\n  - {id: s, input: g, type: blackhole}\nconfiguration:\n  execution.checkpointing.interval: 1s\n  state.checkpoints.num-retained: 3\n  execution.checkpointing.incremental: false\n",
        )
        .expect("valid");
        let entries: Vec<(&str, &str)> = job
            .configuration
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            entries,
            vec![
                ("execution.checkpointing.incremental", "false"),
                ("execution.checkpointing.interval", "1s"),
                ("state.checkpoints.num-retained", "3"),
            ]
        );
        let (line, message) = match parse(
            "name: g\nsources:\n  - {id: g, type: datagen, count: 10}\nsinks:\n  - {id: s, input: g, type: blackhole}\nconfiguration:\n  a: [1, 2]\n",
        ) {
            Err(JobGraphError::Invalid { line, message, .. }) => (line, message),
            other => panic!("{other:?}"),
        };
        assert!(line.is_some(), "{message}");
    }

    /// Regression: `memory_mib: 0` failed only when the first instance
    /// started, and `call_timeout_ms: 0` and `memory_mib: 4294967295` were
    /// accepted.
    #[test]
    fn out_of_range_limits_are_refused_with_their_line() {
        for (field, value, needle) in [
            ("memory_mib", "0", "outside 1..=4096"),
            ("memory_mib", "4294967295", "outside 1..=4096"),
            ("call_timeout_ms", "0", "outside 1..=3600000"),
        ] {
            let text = format!(
                "name: g\nsources:\n  - {{id: g, type: datagen, count: 10}}\noperators:\n  - id: op\n    input: g\n    udf: x.wasm\n    {field}: {value}\nsinks:\n  - {{id: s, input: op, type: blackhole}}\n"
            );
            match parse(&text) {
                Err(JobGraphError::Invalid { line, message, .. }) => {
                    assert_eq!(line, Some(8), "{message}");
                    assert!(
                        message.contains(&format!("operators[0].{field}")),
                        "{message}"
                    );
                    assert!(message.contains(needle), "{message}");
                }
                other => panic!("{field}: {value} accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn on_error_is_refused_on_an_operator_without_a_udf() {
        let text = "name: t\nsources:\n  - { id: s, type: datagen, count: 1 }\noperators:\n  - id: u\n    input: [s, s]\n    on_error: dead-letter\nsinks:\n  - { id: o, input: u, type: blackhole }\n";
        let err = parse(text).unwrap_err().to_string();
        assert!(
            err.contains("on_error") && err.contains("apply to operators with a UDF"),
            "{err}"
        );
        let ok = text.replace("    on_error: dead-letter\n", "");
        assert!(parse(&ok).is_ok());
    }
}
