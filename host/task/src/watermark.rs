//! Event-time watermarks as plain state machines: they take timestamps and
//! processing time (ms) as input and never read a clock, so tests drive them
//! directly.
//!
//! - [`SplitWatermarks`]: what one source subtask emits. Each split (input
//!   file) has its own bounded-out-of-orderness generator, as in Flink's
//!   split-aware sources: a split's watermark is `max timestamp seen − bound
//!   − 1` (Flink's `BoundedOutOfOrdernessWatermarks`), and the subtask's is
//!   the minimum over its unfinished, non-idle splits. A split that has sent
//!   nothing for `idle_timeout` stops holding the watermark back; when every
//!   split is finished the watermark is [`MAX_WATERMARK`] (end of input).
//! - [`InputWatermarks`]: an operator's watermark is the minimum over its
//!   inputs (producer subtasks), ignoring idle ones. A subtask whose inputs
//!   are all idle is idle itself and says so downstream with a
//!   `WatermarkStatus` element (as does a source subtask whose open splits
//!   are all idle), so idleness travels through the graph as in Flink.
//!
//! Both only ever move forward and report a watermark only when it advanced.

use weir_types::WatermarkStatus;

/// The watermark of a finished bounded input: "no more records, ever".
pub const MAX_WATERMARK: i64 = i64::MAX;

#[derive(Debug, Clone)]
struct SplitState {
    split: u32,
    max_timestamp: Option<i64>,
    last_record_ms: i64,
    finished: bool,
}

/// Watermark generation over the splits of one source subtask.
#[derive(Debug, Clone)]
pub struct SplitWatermarks {
    bound_ms: i64,
    idle_timeout_ms: Option<i64>,
    splits: Vec<SplitState>,
    emitted: Option<i64>,
}

impl SplitWatermarks {
    /// Generators for `splits`, allowing records up to `bound_ms` late; a
    /// split idle for `idle_timeout_ms` (of processing time) is ignored until
    /// it sends again. `now_ms` is the current processing time.
    pub fn new(splits: &[u32], bound_ms: u64, idle_timeout_ms: Option<u64>, now_ms: i64) -> Self {
        Self {
            bound_ms: i64::try_from(bound_ms).unwrap_or(i64::MAX),
            idle_timeout_ms: idle_timeout_ms.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            splits: splits
                .iter()
                .map(|&split| SplitState {
                    split,
                    max_timestamp: None,
                    last_record_ms: now_ms,
                    finished: false,
                })
                .collect(),
            emitted: None,
        }
    }

    fn state(&mut self, split: u32) -> Option<&mut SplitState> {
        self.splits.iter_mut().find(|s| s.split == split)
    }

    /// A record with event time `timestamp` (ms) was read from `split`.
    pub fn on_record(&mut self, split: u32, timestamp: i64, now_ms: i64) {
        if let Some(s) = self.state(split) {
            s.max_timestamp = Some(s.max_timestamp.map_or(timestamp, |m| m.max(timestamp)));
            s.last_record_ms = now_ms;
        }
    }

    /// `split` has no more records.
    pub fn on_split_finished(&mut self, split: u32) {
        if let Some(s) = self.state(split) {
            s.finished = true;
        }
    }

    /// True when every unfinished split is idle (the whole source is idle
    /// and should not hold back downstream watermarks).
    pub fn is_idle(&self, now_ms: i64) -> bool {
        let mut open = self.splits.iter().filter(|s| !s.finished).peekable();
        open.peek().is_some() && open.all(|s| self.split_idle(s, now_ms))
    }

    fn split_idle(&self, s: &SplitState, now_ms: i64) -> bool {
        self.idle_timeout_ms
            .is_some_and(|t| now_ms.saturating_sub(s.last_record_ms) >= t)
    }

    /// What a checkpoint keeps: each split's largest timestamp so far and
    /// the last watermark emitted.
    pub fn snapshot(&self) -> SplitWatermarksSnapshot {
        SplitWatermarksSnapshot {
            max_timestamps: self
                .splits
                .iter()
                .filter_map(|s| Some((s.split, s.max_timestamp?)))
                .collect(),
            emitted: self.emitted,
        }
    }

    /// Takes back the timestamps of this subtask's splits from the
    /// snapshots of any earlier subtasks (splits may have moved between
    /// subtasks when the parallelism changed).
    pub fn restore<'s>(
        &mut self,
        snapshots: impl IntoIterator<Item = &'s SplitWatermarksSnapshot>,
    ) {
        for snapshot in snapshots {
            for &(split, ts) in &snapshot.max_timestamps {
                if let Some(s) = self.state(split) {
                    s.max_timestamp = Some(s.max_timestamp.map_or(ts, |m| m.max(ts)));
                }
            }
        }
        // Emit again from the restored timestamps (downstream restarted too).
        self.emitted = None;
    }

    /// The current watermark, if it advanced since the last call.
    pub fn advance(&mut self, now_ms: i64) -> Option<i64> {
        let mut candidate: Option<i64> = None;
        let mut all_finished = true;
        for s in &self.splits {
            if s.finished {
                continue;
            }
            all_finished = false;
            if self.split_idle(s, now_ms) {
                continue;
            }
            // A split that has sent nothing yet holds the watermark back.
            let split_mark = s.max_timestamp.map_or(i64::MIN, |m| {
                m.saturating_sub(self.bound_ms).saturating_sub(1)
            });
            candidate = Some(candidate.map_or(split_mark, |c| c.min(split_mark)));
        }
        let current = if all_finished {
            Some(MAX_WATERMARK)
        } else {
            candidate
        };
        match current {
            Some(w) if w != i64::MIN && self.emitted.is_none_or(|e| w > e) => {
                self.emitted = Some(w);
                Some(w)
            }
            _ => None,
        }
    }
}

pub use weir_snapshot::{InputWatermarksSnapshot, SplitWatermarksSnapshot};

/// The minimum watermark over an operator's inputs.
#[derive(Debug, Clone)]
pub struct InputWatermarks {
    inputs: Vec<Option<i64>>,
    idle: Vec<bool>,
    emitted: Option<i64>,
    /// The status last reported by [`InputWatermarks::status_change`].
    status: WatermarkStatus,
}

impl InputWatermarks {
    /// Tracking for `inputs` inputs, none of which has sent a watermark.
    pub fn new(inputs: usize) -> Self {
        Self {
            inputs: vec![None; inputs],
            idle: vec![false; inputs],
            emitted: None,
            status: WatermarkStatus::Active,
        }
    }

    /// Input `input` sent watermark `watermark`; returns the operator's
    /// watermark if it advanced.
    pub fn on_watermark(&mut self, input: usize, watermark: i64) -> Option<i64> {
        if let Some(slot) = self.inputs.get_mut(input) {
            *slot = Some(slot.map_or(watermark, |w| w.max(watermark)));
            self.idle[input] = false;
        }
        self.combine()
    }

    /// Input `input` became idle (`true`) or active again (`false`).
    pub fn on_idle(&mut self, input: usize, idle: bool) -> Option<i64> {
        if let Some(slot) = self.idle.get_mut(input) {
            *slot = idle;
        }
        self.combine()
    }

    /// The status this subtask should now send downstream, when it
    /// changed since the last call: idle once every input is idle, active
    /// again as soon as one is not (Flink's `StatusWatermarkValve`).
    pub fn status_change(&mut self) -> Option<WatermarkStatus> {
        let now = if self.idle.iter().all(|idle| *idle) {
            WatermarkStatus::Idle
        } else {
            WatermarkStatus::Active
        };
        (now != self.status).then(|| {
            self.status = now;
            now
        })
    }

    /// What a checkpoint keeps: each producer's watermark and the combined one.
    pub fn snapshot(&self) -> InputWatermarksSnapshot {
        InputWatermarksSnapshot {
            inputs: self.inputs.clone(),
            emitted: self.emitted,
        }
    }

    /// Restores from the snapshots of the earlier subtasks of this vertex.
    /// With one snapshot over the same producers every producer's
    /// watermark comes back; otherwise (rescaling) only the combined
    /// watermark, the smallest of theirs, and each producer starts afresh.
    pub fn restore(&mut self, snapshots: &[InputWatermarksSnapshot]) {
        match snapshots {
            [one] if one.inputs.len() == self.inputs.len() => {
                self.inputs.clone_from(&one.inputs);
                self.emitted = one.emitted;
            }
            _ => self.emitted = snapshots.iter().filter_map(|s| s.emitted).min(),
        }
    }

    /// The last watermark reported.
    pub fn current(&self) -> Option<i64> {
        self.emitted
    }

    fn combine(&mut self) -> Option<i64> {
        let mut min: Option<i64> = None;
        for (watermark, idle) in self.inputs.iter().zip(&self.idle) {
            if *idle {
                continue;
            }
            // An active input that has sent no watermark holds everything back.
            let w = (*watermark)?;
            min = Some(min.map_or(w, |m| m.min(w)));
        }
        let w = min?;
        if self.emitted.is_none_or(|e| w > e) {
            self.emitted = Some(w);
            Some(w)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3_600_000;

    #[test]
    fn watermark_is_the_minimum_over_splits_minus_the_bound() {
        let mut w = SplitWatermarks::new(&[0, 1], HOUR, None, 0);
        w.on_record(0, 10 * HOUR as i64, 0);
        assert_eq!(w.advance(0), None, "split 1 has sent nothing: held back");
        w.on_record(1, 5 * HOUR as i64, 0);
        assert_eq!(w.advance(0), Some(4 * HOUR as i64 - 1));
        // Out-of-order record in split 1 does not move anything backwards.
        w.on_record(1, 2 * HOUR as i64, 0);
        assert_eq!(w.advance(0), None);
        w.on_record(1, 20 * HOUR as i64, 0);
        assert_eq!(
            w.advance(0),
            Some(9 * HOUR as i64 - 1),
            "now split 0 is the slowest"
        );
    }

    #[test]
    fn splits_of_different_years_do_not_make_each_other_late() {
        // NAB series cover different years: per-split watermarks keep a 1 h
        // bound sufficient because the slowest split sets the pace.
        let year = 365 * 24 * HOUR as i64;
        let mut w = SplitWatermarks::new(&[0, 1], HOUR, None, 0);
        w.on_record(0, 3 * year, 0);
        w.on_record(1, year, 0);
        assert_eq!(w.advance(0), Some(year - HOUR as i64 - 1));
        w.on_split_finished(1);
        assert_eq!(w.advance(0), Some(3 * year - HOUR as i64 - 1));
    }

    #[test]
    fn finished_input_emits_the_maximum_watermark_once() {
        let mut w = SplitWatermarks::new(&[7], 0, None, 0);
        w.on_record(7, 100, 0);
        assert_eq!(w.advance(0), Some(99));
        w.on_split_finished(7);
        assert_eq!(w.advance(0), Some(MAX_WATERMARK));
        assert_eq!(w.advance(0), None);
        assert!(
            !w.is_idle(1_000_000),
            "a finished source is not idle, it is done"
        );
    }

    #[test]
    fn idle_split_stops_holding_the_watermark_back_until_it_sends_again() {
        let mut w = SplitWatermarks::new(&[0, 1], 0, Some(1000), 0);
        w.on_record(0, 50, 0);
        w.on_record(1, 10, 0);
        assert_eq!(w.advance(0), Some(9));
        w.on_record(0, 500, 900);
        assert_eq!(w.advance(900), None, "split 1 not idle yet");
        assert_eq!(w.advance(1000), Some(499), "split 1 idle since t=0");
        assert!(!w.is_idle(1000));
        assert!(w.is_idle(1900), "both idle");
        w.on_record(1, 700, 2000);
        w.on_record(0, 800, 2000);
        assert_eq!(w.advance(2000), Some(699));
    }

    #[test]
    fn a_subtask_is_idle_while_all_its_inputs_are_and_says_so_once() {
        let mut w = InputWatermarks::new(2);
        assert_eq!(w.status_change(), None, "starts active");
        assert_eq!(w.on_watermark(0, 10), None);
        assert_eq!(
            w.on_idle(1, true),
            Some(10),
            "idle input 1 stops holding back"
        );
        assert_eq!(w.status_change(), None, "input 0 still active");
        assert_eq!(w.on_idle(0, true), None);
        assert_eq!(w.status_change(), Some(WatermarkStatus::Idle));
        assert_eq!(w.status_change(), None, "reported once");
        assert_eq!(
            w.on_watermark(1, 40),
            Some(40),
            "input 1 back; input 0 still idle"
        );
        assert_eq!(w.status_change(), Some(WatermarkStatus::Active));
        assert_eq!(
            w.on_watermark(0, 20),
            None,
            "input 0 back behind: no regression"
        );
        assert_eq!(w.on_watermark(0, 50), None);
        assert_eq!(w.on_watermark(1, 60), Some(50));
    }

    #[test]
    fn operator_watermark_is_the_minimum_over_active_inputs() {
        let mut w = InputWatermarks::new(3);
        assert_eq!(w.on_watermark(0, 10), None);
        assert_eq!(w.on_watermark(1, 20), None, "input 2 silent");
        assert_eq!(w.on_watermark(2, 5), Some(5));
        assert_eq!(w.on_watermark(2, 30), Some(10));
        assert_eq!(w.on_watermark(0, 8), None, "watermarks never go back");
        assert_eq!(w.on_idle(0, true), Some(20), "idle input ignored");
        assert_eq!(
            w.on_watermark(0, 15),
            None,
            "active again but behind: no regression"
        );
        assert_eq!(w.current(), Some(20));
        assert_eq!(w.on_watermark(0, MAX_WATERMARK), None);
        assert_eq!(w.on_watermark(1, MAX_WATERMARK), Some(30));
        assert_eq!(w.on_watermark(2, MAX_WATERMARK), Some(MAX_WATERMARK));
    }
}
