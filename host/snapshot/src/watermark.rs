//! The checkpointed watermarks of a subtask's head.

/// The checkpointed part of `weir_task::watermark::SplitWatermarks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitWatermarksSnapshot {
    /// `(split, largest event time read, ms)`.
    pub max_timestamps: Vec<(u32, i64)>,
    /// The last watermark the subtask emitted.
    pub emitted: Option<i64>,
}

/// The checkpointed part of `weir_task::watermark::InputWatermarks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputWatermarksSnapshot {
    /// The last watermark of each producer (`None`: none yet).
    pub inputs: Vec<Option<i64>>,
    /// The last combined watermark reported.
    pub emitted: Option<i64>,
}
