//! What a job remembers of its completed checkpoints, bounded as Flink's
//! checkpoint statistics are (`web.checkpoints.history`): counts and a
//! summary over all of them, and the newest few in full. A job that
//! checkpoints every second for a month keeps the same few entries.

use std::collections::VecDeque;

use crate::CheckpointStats;

/// How many completed checkpoints are kept in full unless
/// `web.checkpoints.history` says otherwise (Flink's default, 10).
pub const DEFAULT_STATS_HISTORY: usize = 10;

/// The completed checkpoints of a job: how many, a summary over all of
/// them, and the newest `capacity` in full (oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointStatsHistory {
    capacity: usize,
    completed: u64,
    total_duration_ms: u64,
    max_duration_ms: u64,
    max_alignment_ms: u64,
    recent: VecDeque<CheckpointStats>,
}

impl Default for CheckpointStatsHistory {
    fn default() -> Self {
        Self::new(DEFAULT_STATS_HISTORY)
    }
}

impl CheckpointStatsHistory {
    /// An empty history keeping the newest `capacity` checkpoints in full
    /// (at least one, so the latest is always there).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            completed: 0,
            total_duration_ms: 0,
            max_duration_ms: 0,
            max_alignment_ms: 0,
            recent: VecDeque::with_capacity(capacity),
        }
    }

    /// Keeps the newest `capacity` (at least one) in full from now on,
    /// dropping the oldest kept ones beyond it.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.max(1);
        while self.recent.len() > self.capacity {
            self.recent.pop_front();
        }
    }

    /// Counts a completed checkpoint, dropping the oldest one kept in full
    /// when there are `capacity` already.
    pub fn record(&mut self, stats: CheckpointStats) {
        self.completed += 1;
        self.total_duration_ms = self.total_duration_ms.saturating_add(stats.duration_ms);
        self.max_duration_ms = self.max_duration_ms.max(stats.duration_ms);
        self.max_alignment_ms = self.max_alignment_ms.max(stats.max_alignment_ms);
        if self.recent.len() == self.capacity {
            self.recent.pop_front();
        }
        self.recent.push_back(stats);
    }

    /// Checkpoints completed in all.
    pub fn completed(&self) -> u64 {
        self.completed
    }

    /// The newest completed checkpoint.
    pub fn latest(&self) -> Option<&CheckpointStats> {
        self.recent.back()
    }

    /// The newest checkpoints (at most the capacity), oldest first.
    pub fn recent(&self) -> impl ExactSizeIterator<Item = &CheckpointStats> {
        self.recent.iter()
    }

    /// Mean duration (ms) over all completed checkpoints; `None` before
    /// the first.
    pub fn mean_duration_ms(&self) -> Option<f64> {
        (self.completed > 0).then(|| self.total_duration_ms as f64 / self.completed as f64)
    }

    /// The longest duration (ms) of any completed checkpoint.
    pub fn max_duration_ms(&self) -> u64 {
        self.max_duration_ms
    }

    /// The longest barrier alignment (ms) of any completed checkpoint.
    pub fn max_alignment_ms(&self) -> u64 {
        self.max_alignment_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(id: u64, duration_ms: u64, max_alignment_ms: u64) -> CheckpointStats {
        CheckpointStats {
            id,
            duration_ms,
            size_bytes: 1,
            full_size_bytes: 2,
            max_alignment_ms,
        }
    }

    #[test]
    fn the_newest_are_kept_in_full_and_the_summary_covers_all() {
        let mut h = CheckpointStatsHistory::new(3);
        assert_eq!(
            (h.completed(), h.latest(), h.mean_duration_ms()),
            (0, None, None)
        );
        for id in 1..=1000 {
            h.record(stats(id, id % 10, if id == 500 { 77 } else { 1 }));
        }
        assert_eq!(h.completed(), 1000);
        assert_eq!(
            h.recent().map(|s| s.id).collect::<Vec<_>>(),
            vec![998, 999, 1000]
        );
        assert_eq!(h.latest().unwrap().id, 1000);
        assert_eq!(h.mean_duration_ms(), Some(4.5));
        assert_eq!((h.max_duration_ms(), h.max_alignment_ms()), (9, 77));
        let mut one = CheckpointStatsHistory::new(0);
        one.record(stats(1, 5, 0));
        one.record(stats(2, 5, 0));
        assert_eq!(one.recent().len(), 1);
        assert_eq!(one.latest().unwrap().id, 2);
        h.set_capacity(1);
        assert_eq!(h.recent().map(|s| s.id).collect::<Vec<_>>(), vec![1000]);
        assert_eq!(h.completed(), 1000);
    }
}
