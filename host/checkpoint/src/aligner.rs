//! Barrier alignment for a subtask with several producers.

use crate::CheckpointId;

/// What a barrier did to the alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alignment {
    /// The barrier's producer is now blocked until the others catch up.
    Waiting,
    /// Barrier `id` arrived from every producer (or that producer ended):
    /// snapshot, forward the barrier, then unblock everything.
    Aligned(CheckpointId),
    /// A newer checkpoint's barrier arrived while aligning an older one
    /// (the older was aborted): alignment restarted for the new id, every
    /// producer but this one is unblocked.
    Superseded {
        /// The abandoned checkpoint.
        old: CheckpointId,
    },
    /// A barrier of a checkpoint already aligned or abandoned; ignore it.
    Stale,
}

/// Exactly-once barrier alignment over producers `0..n` (Flink's
/// `SingleCheckpointBarrierHandler` in aligned mode). The caller does not
/// read what a blocked producer sends until `Aligned`.
#[derive(Debug, Clone)]
pub struct BarrierAligner {
    /// `Some(id)` while aligning checkpoint `id`.
    current: Option<CheckpointId>,
    /// Producers whose barrier of `current` arrived.
    arrived: Vec<bool>,
    /// Producers that ended their input (never send a barrier again).
    ended: Vec<bool>,
    /// The newest checkpoint aligned or abandoned.
    last: CheckpointId,
}

impl BarrierAligner {
    /// An aligner over `producers` producers.
    pub fn new(producers: usize) -> Self {
        Self {
            current: None,
            arrived: vec![false; producers],
            ended: vec![false; producers],
            last: 0,
        }
    }

    /// Is `producer` blocked (its barrier arrived, others' not yet)?
    pub fn is_blocked(&self, producer: usize) -> bool {
        self.current.is_some() && self.arrived.get(producer).copied().unwrap_or(false)
    }

    /// Has `producer` ended its input?
    pub fn has_ended(&self, producer: usize) -> bool {
        self.ended.get(producer).copied().unwrap_or(false)
    }

    /// The checkpoint being aligned, if any.
    pub fn aligning(&self) -> Option<CheckpointId> {
        self.current
    }

    /// Barrier `id` arrived from `producer`.
    pub fn on_barrier(&mut self, producer: usize, id: CheckpointId) -> Alignment {
        if id <= self.last || self.current.is_some_and(|c| id < c) {
            return Alignment::Stale;
        }
        let mut superseded = None;
        if let Some(current) = self.current
            && id > current
        {
            superseded = Some(current);
            self.last = current;
            self.arrived.iter_mut().for_each(|a| *a = false);
        }
        self.current = Some(id);
        if let Some(a) = self.arrived.get_mut(producer) {
            *a = true;
        }
        if let Some(aligned) = self.check_complete() {
            return Alignment::Aligned(aligned);
        }
        match superseded {
            Some(old) => Alignment::Superseded { old },
            None => Alignment::Waiting,
        }
    }

    /// `producer` ended its input: it no longer holds an alignment back.
    pub fn on_end_of_input(&mut self, producer: usize) -> Option<CheckpointId> {
        if let Some(e) = self.ended.get_mut(producer) {
            *e = true;
        }
        self.check_complete()
    }

    fn check_complete(&mut self) -> Option<CheckpointId> {
        let id = self.current?;
        let done = self
            .arrived
            .iter()
            .zip(&self.ended)
            .all(|(arrived, ended)| *arrived || *ended);
        if done {
            self.current = None;
            self.last = id;
            self.arrived.iter_mut().for_each(|a| *a = false);
            Some(id)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producers_block_until_every_barrier_arrived() {
        let mut a = BarrierAligner::new(3);
        assert_eq!(a.on_barrier(1, 1), Alignment::Waiting);
        assert!(a.is_blocked(1) && !a.is_blocked(0));
        assert_eq!(a.on_barrier(0, 1), Alignment::Waiting);
        assert_eq!(a.on_barrier(2, 1), Alignment::Aligned(1));
        assert!(!a.is_blocked(0) && !a.is_blocked(1) && !a.is_blocked(2));
        assert_eq!(a.on_barrier(2, 1), Alignment::Stale);
    }

    #[test]
    fn a_single_producer_aligns_at_once() {
        let mut a = BarrierAligner::new(1);
        assert_eq!(a.on_barrier(0, 4), Alignment::Aligned(4));
    }

    #[test]
    fn ended_producers_do_not_hold_alignment_back() {
        let mut a = BarrierAligner::new(2);
        assert_eq!(a.on_end_of_input(1), None);
        assert_eq!(a.on_barrier(0, 1), Alignment::Aligned(1));
        let mut b = BarrierAligner::new(2);
        assert_eq!(b.on_barrier(0, 1), Alignment::Waiting);
        assert_eq!(b.on_end_of_input(1), Some(1));
    }

    #[test]
    fn a_newer_barrier_supersedes_an_unfinished_alignment() {
        let mut a = BarrierAligner::new(2);
        assert_eq!(a.on_barrier(0, 1), Alignment::Waiting);
        assert_eq!(a.on_barrier(0, 2), Alignment::Superseded { old: 1 });
        assert_eq!(a.on_barrier(1, 1), Alignment::Stale);
        assert_eq!(a.on_barrier(1, 2), Alignment::Aligned(2));
    }
}
