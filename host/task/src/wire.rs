//! Task events in a form that crosses processes: a TaskManager sends its
//! tasks' [`TaskEvent`]s to the JobManager as [`WireEvent`]s (serde), and
//! the JobManager turns them back, so the attempt's driver reads the same
//! events from local and remote tasks.

use crate::control::TaskEvent;
use crate::{JobError, TaskFailureKind};

pub use weir_protocol::task::{WireEvent, WireFailure};

impl From<TaskEvent> for WireEvent {
    fn from(event: TaskEvent) -> Self {
        match event {
            TaskEvent::Acknowledge {
                task,
                checkpoint,
                ack,
            } => Self::Acknowledge {
                task,
                checkpoint,
                ack,
            },
            TaskEvent::Decline {
                task,
                checkpoint,
                reason,
            } => Self::Decline {
                task,
                checkpoint,
                reason,
            },
            TaskEvent::InputEnded { task } => Self::InputEnded { task },
            TaskEvent::Failed { task, error } => {
                let failure = match error {
                    JobError::Task {
                        vertex,
                        index,
                        parallelism,
                        origin,
                        kind,
                        message,
                    } => WireFailure::Task {
                        vertex,
                        index,
                        parallelism,
                        origin,
                        kind,
                        message,
                    },
                    JobError::DamagedCheckpoint {
                        checkpoint,
                        message,
                    } => WireFailure::DamagedCheckpoint {
                        checkpoint,
                        message,
                    },
                    other => WireFailure::Setup {
                        vertex: task.0.clone(),
                        index: task.1,
                        message: other.to_string(),
                    },
                };
                WireEvent::Failed { task, failure }
            }
            TaskEvent::Exited { task } => Self::Exited { task },
        }
    }
}

/// The [`TaskEvent`] a [`WireEvent`] stands for, with `parallelism` used
/// for failures that did not carry one.
#[must_use]
pub fn into_event(wire: WireEvent, parallelism: u32) -> TaskEvent {
    match wire {
        WireEvent::Acknowledge {
            task,
            checkpoint,
            ack,
        } => TaskEvent::Acknowledge {
            task,
            checkpoint,
            ack,
        },
        WireEvent::Decline {
            task,
            checkpoint,
            reason,
        } => TaskEvent::Decline {
            task,
            checkpoint,
            reason,
        },
        WireEvent::InputEnded { task } => TaskEvent::InputEnded { task },
        WireEvent::Failed { task, failure } => {
            let error = match failure {
                WireFailure::Task {
                    vertex,
                    index,
                    parallelism,
                    origin,
                    kind,
                    message,
                } => JobError::Task {
                    vertex,
                    index,
                    parallelism,
                    origin,
                    kind,
                    message,
                },
                WireFailure::DamagedCheckpoint {
                    checkpoint,
                    message,
                } => JobError::DamagedCheckpoint {
                    checkpoint,
                    message,
                },
                WireFailure::Setup {
                    vertex,
                    index,
                    message,
                } => JobError::Task {
                    vertex,
                    index,
                    parallelism,
                    origin: None,
                    kind: TaskFailureKind::Io,
                    message,
                },
            };
            TaskEvent::Failed { task, error }
        }
        WireEvent::Exited { task } => TaskEvent::Exited { task },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_failure_keeps_its_kind_and_origin_across_the_wire() {
        let event = TaskEvent::Failed {
            task: ("zscore".into(), 1),
            error: JobError::Task {
                vertex: "zscore".into(),
                index: 1,
                parallelism: 2,
                origin: Some("a.csv:7".into()),
                kind: TaskFailureKind::MemoryLimit,
                message: "limit is 64 MiB".into(),
            },
        };
        let wire = WireEvent::from(event);
        let bytes = serde_json::to_vec(&wire).unwrap();
        let back: WireEvent = serde_json::from_slice(&bytes).unwrap();
        match into_event(back, 9) {
            TaskEvent::Failed { task, error } => {
                assert_eq!(task, ("zscore".to_string(), 1));
                assert_eq!(error.kind(), Some(TaskFailureKind::MemoryLimit));
                assert_eq!(
                    error.to_string(),
                    "zscore (subtask 1 of 2) failed on a.csv:7: limit is 64 MiB"
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_setup_error_becomes_an_io_failure_of_its_task() {
        let wire = WireEvent::from(TaskEvent::Failed {
            task: ("src".into(), 0),
            error: JobError::Plan("no such file".into()),
        });
        match into_event(wire, 3) {
            TaskEvent::Failed { error, .. } => {
                assert_eq!(error.kind(), Some(TaskFailureKind::Io));
                assert!(error.to_string().contains("no such file"), "{error}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_damaged_checkpoint_stays_one_across_the_wire() {
        let wire = WireEvent::from(TaskEvent::Failed {
            task: ("zscore".into(), 1),
            error: JobError::DamagedCheckpoint {
                checkpoint: 7,
                message: "chk-7/zscore-1.state: CRC-32 differs".into(),
            },
        });
        let bytes = postcard::to_allocvec(&wire).unwrap();
        let back: WireEvent = postcard::from_bytes(&bytes).unwrap();
        match into_event(back, 2) {
            TaskEvent::Failed {
                error:
                    JobError::DamagedCheckpoint {
                        checkpoint,
                        message,
                    },
                ..
            } => {
                assert_eq!(checkpoint, 7);
                assert!(message.contains("CRC-32"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }
}
