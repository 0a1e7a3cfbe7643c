//! The checkpoint coordinator as a state machine (Flink's
//! `CheckpointCoordinator`): one checkpoint at a time.

use std::collections::BTreeMap;

use crate::{CheckpointConfig, CheckpointId};

/// A subtask that takes part in checkpoints: `(vertex id, subtask index)`.
pub type TaskId = (String, u32);

/// A subtask's acknowledgement of a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Acknowledgement {
    /// Where its state went (a path relative to the checkpoint directory),
    /// `None` when it had no state.
    pub state: Option<String>,
    /// Shared files (`shared/<name>`) its state refers to: those of an
    /// incremental checkpoint, uploaded now or by an earlier checkpoint.
    pub shared: Vec<String>,
    /// Bytes written for this checkpoint (state file and newly uploaded
    /// shared files).
    pub size_bytes: u64,
    /// Bytes of the whole state, shared files written by earlier
    /// checkpoints included (equals `size_bytes` for a full snapshot).
    pub full_size_bytes: u64,
    /// How long its barriers took to align, in ms (0 with one producer).
    pub alignment_ms: u64,
    /// CRC-32 ([`crate::crc32`]) of the state file, checked when a restore
    /// reads it.
    pub state_crc32: Option<u32>,
}

/// What the runtime must do next.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckpointAction {
    /// Inject barrier `id` at every source.
    Trigger(CheckpointId),
    /// Every subtask acknowledged: write the metadata, then notify the
    /// tasks (two-phase-commit sinks commit).
    Complete {
        /// The checkpoint.
        id: CheckpointId,
        /// Every subtask's acknowledgement.
        acks: BTreeMap<TaskId, Acknowledgement>,
        /// Duration, size and alignment times.
        stats: CheckpointStats,
    },
    /// The checkpoint failed (timeout or a declining subtask); the job
    /// goes on.
    Abort {
        /// The checkpoint.
        id: CheckpointId,
        /// Why.
        reason: String,
    },
    /// More consecutive checkpoints failed than tolerated: fail the job.
    FailJob(String),
}

/// Statistics of a completed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointStats {
    /// The checkpoint.
    pub id: CheckpointId,
    /// From trigger to the last acknowledgement, in ms.
    pub duration_ms: u64,
    /// Bytes written for this checkpoint, summed over subtasks (Flink's
    /// checkpointed data size: only what is new in an incremental one).
    pub size_bytes: u64,
    /// Bytes of the whole state it restores, summed over subtasks (Flink's
    /// full checkpoint data size).
    pub full_size_bytes: u64,
    /// The longest alignment of any subtask, in ms.
    pub max_alignment_ms: u64,
}

#[derive(Debug)]
struct Pending {
    id: CheckpointId,
    triggered_ms: i64,
    acks: BTreeMap<TaskId, Acknowledgement>,
}

/// Decides when checkpoints start, complete, time out or fail the job.
#[derive(Debug)]
pub struct CheckpointCoordinator {
    config: CheckpointConfig,
    tasks: Vec<TaskId>,
    next_id: CheckpointId,
    pending: Option<Pending>,
    /// When the last checkpoint ended (completed or aborted), for the
    /// minimum pause; when the coordinator started, before the first.
    last_end_ms: i64,
    last_trigger_ms: Option<i64>,
    consecutive_failures: u32,
    history: crate::CheckpointStatsHistory,
}

impl CheckpointCoordinator {
    /// A coordinator expecting acknowledgements from `tasks`, starting at
    /// checkpoint `first_id` (one past the restored checkpoint).
    pub fn new(
        config: CheckpointConfig,
        tasks: Vec<TaskId>,
        first_id: CheckpointId,
        now_ms: i64,
    ) -> Self {
        let history = crate::CheckpointStatsHistory::new(config.stats_history);
        Self {
            config,
            tasks,
            next_id: first_id.max(1),
            pending: None,
            last_end_ms: now_ms,
            last_trigger_ms: None,
            consecutive_failures: 0,
            history,
        }
    }

    /// The checkpoint in flight, if any.
    pub fn pending(&self) -> Option<CheckpointId> {
        self.pending.as_ref().map(|p| p.id)
    }

    /// Statistics of the completed checkpoints (the newest
    /// `web.checkpoints.history` in full).
    pub fn history(&self) -> &crate::CheckpointStatsHistory {
        &self.history
    }

    /// When (ms) `tick` next has something to do: the pending checkpoint's
    /// timeout, or the next trigger.
    pub fn next_deadline(&self) -> Option<i64> {
        let interval = self.config.interval_ms? as i64;
        Some(match &self.pending {
            Some(p) => p.triggered_ms + self.config.timeout_ms as i64,
            None => self.next_trigger_at(interval),
        })
    }

    fn next_trigger_at(&self, interval: i64) -> i64 {
        let by_interval = match self.last_trigger_ms {
            Some(t) => t + interval,
            None => self.last_end_ms + interval,
        };
        by_interval.max(self.last_end_ms + self.config.min_pause_ms as i64)
    }

    /// Time passed: triggers a checkpoint when due, or times out the
    /// pending one.
    pub fn tick(&mut self, now_ms: i64) -> Option<CheckpointAction> {
        let interval = self.config.interval_ms? as i64;
        if let Some(p) = &self.pending {
            if now_ms >= p.triggered_ms + self.config.timeout_ms as i64 {
                let id = p.id;
                return Some(self.fail(
                    id,
                    format!(
                        "checkpoint {id} expired after {} ms before every subtask acknowledged it",
                        self.config.timeout_ms
                    ),
                    now_ms,
                ));
            }
            return None;
        }
        if now_ms < self.next_trigger_at(interval) {
            return None;
        }
        Some(CheckpointAction::Trigger(self.trigger(now_ms)))
    }

    /// Starts a checkpoint now, whatever the interval (a savepoint, or a
    /// test); `None` while another is in flight.
    pub fn trigger_now(&mut self, now_ms: i64) -> Option<CheckpointId> {
        if self.pending.is_some() {
            return None;
        }
        Some(self.trigger(now_ms))
    }

    fn trigger(&mut self, now_ms: i64) -> CheckpointId {
        let id = self.next_id;
        self.next_id += 1;
        self.last_trigger_ms = Some(now_ms);
        self.pending = Some(Pending {
            id,
            triggered_ms: now_ms,
            acks: BTreeMap::new(),
        });
        id
    }

    /// Subtask `task` acknowledged checkpoint `id`. Returns `Complete` once
    /// every subtask has; acknowledgements of other checkpoints are ignored.
    pub fn acknowledge(
        &mut self,
        id: CheckpointId,
        task: TaskId,
        ack: Acknowledgement,
        now_ms: i64,
    ) -> Option<CheckpointAction> {
        let pending = self.pending.as_mut().filter(|p| p.id == id)?;
        if !self.tasks.contains(&task) {
            return None;
        }
        pending.acks.insert(task, ack);
        if pending.acks.len() < self.tasks.len() {
            return None;
        }
        let pending = self.pending.take()?;
        let stats = CheckpointStats {
            id,
            duration_ms: (now_ms - pending.triggered_ms).max(0) as u64,
            size_bytes: pending.acks.values().map(|a| a.size_bytes).sum(),
            full_size_bytes: pending.acks.values().map(|a| a.full_size_bytes).sum(),
            max_alignment_ms: pending
                .acks
                .values()
                .map(|a| a.alignment_ms)
                .max()
                .unwrap_or(0),
        };
        self.last_end_ms = now_ms;
        self.consecutive_failures = 0;
        self.history.record(stats.clone());
        Some(CheckpointAction::Complete {
            id,
            acks: pending.acks,
            stats,
        })
    }

    /// A subtask could not take part in checkpoint `id` (for example its
    /// state could not be written).
    pub fn decline(
        &mut self,
        id: CheckpointId,
        reason: String,
        now_ms: i64,
    ) -> Option<CheckpointAction> {
        self.pending.as_ref().filter(|p| p.id == id)?;
        Some(self.fail(id, reason, now_ms))
    }

    fn fail(&mut self, id: CheckpointId, reason: String, now_ms: i64) -> CheckpointAction {
        self.pending = None;
        self.last_end_ms = now_ms;
        self.consecutive_failures += 1;
        if self.consecutive_failures > self.config.tolerable_failures {
            CheckpointAction::FailJob(format!(
                "{} consecutive checkpoints failed (tolerated: {}); last: {reason}",
                self.consecutive_failures, self.config.tolerable_failures
            ))
        } else {
            CheckpointAction::Abort { id, reason }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> CheckpointConfig {
        CheckpointConfig {
            interval_ms: Some(100),
            timeout_ms: 1000,
            min_pause_ms: 30,
            tolerable_failures: 1,
            ..CheckpointConfig::default()
        }
    }

    fn tasks() -> Vec<TaskId> {
        vec![("src".into(), 0), ("sink".into(), 0)]
    }

    fn ack(size: u64, alignment: u64) -> Acknowledgement {
        Acknowledgement {
            size_bytes: size,
            full_size_bytes: size,
            alignment_ms: alignment,
            ..Acknowledgement::default()
        }
    }

    #[test]
    fn triggers_every_interval_and_completes_on_the_last_ack() {
        let mut c = CheckpointCoordinator::new(config(), tasks(), 1, 0);
        assert_eq!(c.tick(99), None);
        assert_eq!(c.tick(100), Some(CheckpointAction::Trigger(1)));
        assert_eq!(c.tick(150), None, "one at a time");
        assert_eq!(c.acknowledge(1, ("src".into(), 0), ack(10, 0), 160), None);
        assert_eq!(c.acknowledge(2, ("sink".into(), 0), ack(5, 3), 160), None);
        let Some(CheckpointAction::Complete { id, acks, stats }) =
            c.acknowledge(1, ("sink".into(), 0), ack(5, 3), 170)
        else {
            panic!("not complete");
        };
        assert_eq!((id, acks.len()), (1, 2));
        assert_eq!(
            stats,
            CheckpointStats {
                id: 1,
                duration_ms: 70,
                size_bytes: 15,
                full_size_bytes: 15,
                max_alignment_ms: 3
            }
        );
        // The interval counts from the last trigger, the pause from the end.
        assert_eq!(c.next_deadline(), Some(200));
        assert_eq!(c.tick(200), Some(CheckpointAction::Trigger(2)));
    }

    #[test]
    fn the_minimum_pause_delays_the_next_trigger() {
        let mut c = CheckpointCoordinator::new(config(), tasks(), 7, 0);
        assert_eq!(c.tick(100), Some(CheckpointAction::Trigger(7)));
        c.acknowledge(7, ("src".into(), 0), ack(0, 0), 190);
        assert!(
            c.acknowledge(7, ("sink".into(), 0), ack(0, 0), 190)
                .is_some()
        );
        assert_eq!(c.tick(200), None, "only 10 ms after the last ended");
        assert_eq!(c.tick(220), Some(CheckpointAction::Trigger(8)));
    }

    #[test]
    fn timeouts_abort_and_too_many_failures_fail_the_job() {
        let mut c = CheckpointCoordinator::new(config(), tasks(), 1, 0);
        assert_eq!(c.tick(100), Some(CheckpointAction::Trigger(1)));
        assert!(matches!(
            c.tick(1100),
            Some(CheckpointAction::Abort { id: 1, .. })
        ));
        assert_eq!(c.tick(1200), Some(CheckpointAction::Trigger(2)));
        assert!(matches!(
            c.decline(2, "disk full".into(), 1210),
            Some(CheckpointAction::FailJob(m)) if m.contains("disk full")
        ));
    }

    #[test]
    fn without_an_interval_nothing_triggers_by_itself() {
        let mut c = CheckpointCoordinator::new(CheckpointConfig::default(), tasks(), 1, 0);
        assert_eq!(c.tick(1_000_000), None);
        assert_eq!(c.trigger_now(5), Some(1));
        assert_eq!(c.trigger_now(6), None);
    }
}
