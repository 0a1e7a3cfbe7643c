//! Joins of two keyed inputs (placeholder until the join lands).

/// Joins two keyed inputs.
pub struct JoinOperator;
