//! The control plane of a running attempt: the messages between the
//! attempt's driver (checkpoint coordination and failure handling, the
//! JobManager's side) and its tasks, in place of shared flags.
//!
//! Flink's counterparts are the TaskExecutor gateway calls (trigger
//! checkpoint, notify checkpoint complete, cancel task) and the JobMaster
//! gateway calls (acknowledge or decline checkpoint, update task execution
//! state). Each task reads its [`TaskControl`] queue between batches; every
//! task and snapshot worker sends [`TaskEvent`]s to the driver's one queue.
//! The driver never blocks on a task, and a task never waits for an answer,
//! so the same messages can travel over a network connection later.

use crossbeam_channel::{Receiver, TryRecvError};
use weir_checkpoint::{Acknowledgement, CheckpointId, TaskId};

use crate::JobError;

pub use weir_protocol::task::TaskControl;

/// A message from a task (or its snapshot worker) to the attempt's driver.
#[derive(Debug)]
pub enum TaskEvent {
    /// The task's state for checkpoint `checkpoint` is written.
    Acknowledge {
        /// The task.
        task: TaskId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Where its state went and how large it is.
        ack: Acknowledgement,
    },
    /// The task could not take checkpoint `checkpoint`.
    Decline {
        /// The task.
        task: TaskId,
        /// The checkpoint.
        checkpoint: CheckpointId,
        /// Why.
        reason: String,
    },
    /// The task's input ended; it now answers checkpoints with its final state.
    InputEnded {
        /// The task.
        task: TaskId,
    },
    /// The task failed; the error keeps its kind (see [`JobError::kind`]).
    Failed {
        /// The task.
        task: TaskId,
        /// What happened.
        error: JobError,
    },
    /// The task's thread ended (after `Failed`, a cancel, or its work).
    Exited {
        /// The task.
        task: TaskId,
    },
}

/// What a task knows from its control messages so far.
#[derive(Debug)]
pub(crate) struct ControlState {
    rx: Receiver<TaskControl>,
    /// The newest checkpoint triggered (0: none).
    pub(crate) triggered: CheckpointId,
    /// The newest checkpoint completed (0: none).
    pub(crate) completed: CheckpointId,
    /// [`TaskControl::Finish`] arrived.
    pub(crate) finished: bool,
    /// [`TaskControl::Cancel`] arrived, or the driver went away.
    pub(crate) cancelled: bool,
}

impl ControlState {
    /// A task's view of the queue `rx`.
    pub(crate) fn new(rx: Receiver<TaskControl>) -> Self {
        Self {
            rx,
            triggered: 0,
            completed: 0,
            finished: false,
            cancelled: false,
        }
    }

    /// Takes every message waiting, without blocking.
    pub(crate) fn poll(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(message) => self.apply(message),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.cancelled = true;
                    return;
                }
            }
        }
    }

    /// Waits up to `timeout` for a message, then takes every one waiting.
    pub(crate) fn wait(&mut self, timeout: std::time::Duration) {
        match self.rx.recv_timeout(timeout) {
            Ok(message) => self.apply(message),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => return,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                self.cancelled = true;
                return;
            }
        }
        self.poll();
    }

    fn apply(&mut self, message: TaskControl) {
        match message {
            TaskControl::TriggerCheckpoint(id) => self.triggered = self.triggered.max(id),
            TaskControl::NotifyCheckpointComplete(id) => self.completed = self.completed.max(id),
            TaskControl::Finish => self.finished = true,
            TaskControl::Cancel => self.cancelled = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_state_keeps_the_newest_checkpoints_and_a_lost_driver_cancels() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let mut state = ControlState::new(rx);
        for message in [
            TaskControl::TriggerCheckpoint(3),
            TaskControl::TriggerCheckpoint(2),
            TaskControl::NotifyCheckpointComplete(2),
            TaskControl::NotifyCheckpointComplete(1),
        ] {
            tx.send(message).unwrap();
        }
        state.poll();
        assert_eq!((state.triggered, state.completed), (3, 2));
        assert!(!state.finished && !state.cancelled);
        tx.send(TaskControl::Finish).unwrap();
        state.wait(std::time::Duration::from_millis(1));
        assert!(state.finished && !state.cancelled);
        drop(tx);
        state.poll();
        assert!(state.cancelled, "a task whose driver is gone stops");
    }
}
