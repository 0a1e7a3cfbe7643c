//! Weir's built-in operators, as plain state machines.
//!
//! Each operator takes batches of records and the passage of time
//! (watermarks, and the wall clock as an argument) and writes its results
//! into an [`OperatorOutput`]. Nothing here owns a thread, a clock or a
//! channel: `weir-task` drives them, and tests drive them directly.
//!
//! - [`WindowOperator`]: tumbling, sliding and session windows on event or
//!   processing time, with allowed lateness, a late side output and the
//!   built-in aggregates (count, sum, min, max, avg, max_by, min_by),
//!   mergeable for sessions, and a user-defined [`AggregateFunction`] (a
//!   Wasm `aggregate` component) whose accumulators are opaque bytes.
//! - [`JoinOperator`]: window joins and interval joins of two keyed inputs.

mod aggregate;
mod join;
mod window;

pub use aggregate::{AggregateCallError, AggregateFunction, CallFailure, CallFailureKind};
pub use join::JoinOperator;
pub use window::{Window, WindowOperator};

use weir_types::Record;

/// What an operator produced from one call.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OperatorOutput {
    /// Records for the main output, in order.
    pub records: Vec<Record>,
    /// Records for named side outputs (such as the late output of a window).
    pub side: Vec<(String, Record)>,
    /// Rejected input records: `(index in the input batch, why)`.
    pub errors: Vec<(usize, String)>,
    /// Late records dropped because no late output is configured.
    pub dropped_late: u64,
    /// Problems not tied to one input record (a window result a
    /// user-defined aggregate refused), reported and skipped.
    pub problems: Vec<String>,
    /// The operator cannot go on (a user-defined aggregate trapped or hit
    /// a limit): the task fails with this, keeping its kind.
    pub failure: Option<CallFailure>,
}

/// An operator's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `bounds_format` is not a chrono strftime pattern.
    #[error("`{0}` is not a valid time format (chrono strftime, e.g. %Y-%m-%d %H:%M:%S)")]
    TimeFormat(String),
}

/// Why a window or join operator could not take its snapshots back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateRestoreError {
    /// The bytes are not a snapshot this operator wrote (cut short,
    /// flipped, another format): the checkpoint is damaged.
    #[error("{0}")]
    Damaged(String),
    /// A well-formed snapshot of an operator of another shape (session
    /// windows restored into tumbling ones, or the other way round): the
    /// job changed, and no older checkpoint helps.
    #[error("{0}")]
    Incompatible(String),
}

impl StateRestoreError {
    /// The message, for tests.
    pub fn message(&self) -> &str {
        match self {
            Self::Damaged(m) | Self::Incompatible(m) => m,
        }
    }
}

/// Parses a strftime pattern once, rejecting what would fail when formatting.
fn parse_time_format(pattern: &str) -> Result<Vec<chrono::format::Item<'static>>, BuildError> {
    let items: Vec<chrono::format::Item<'static>> = chrono::format::StrftimeItems::new(pattern)
        .map(|item| item.to_owned())
        .collect();
    if items
        .iter()
        .any(|i| matches!(i, chrono::format::Item::Error))
    {
        return Err(BuildError::TimeFormat(pattern.to_string()));
    }
    Ok(items)
}

/// Formats ms since the epoch as UTC with parsed strftime items.
fn format_time(ms: i64, items: &[chrono::format::Item<'static>]) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.format_with_items(items.iter()).to_string(),
        None => ms.to_string(),
    }
}
