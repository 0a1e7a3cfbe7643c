//! The control messages between TaskManagers and the JobManager.
//!
//! They travel on one bidirectional QUIC stream per TaskManager connection
//! (the TaskManager opens it), framed by [`crate::control`]. The
//! postcard encoding makes the order of [`ControlMessage`]'s variants and
//! fields part of the wire format: new variants go at the end; anything
//! else is a new [`crate::control::CONTROL_VERSION`].
//!
//! A TaskManager's one QUIC endpoint both connects to the JobManager and
//! accepts data streams from other TaskManagers, so the address the
//! JobManager sees its connection come from is where its peers reach it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_checkpoint::TaskId;

use crate::task::{MetricsSnapshot, TaskControl, WireEvent};

/// A TaskManager's id, given by the JobManager when it registers
/// (`tm-<n>-<host>`), unique for the JobManager's lifetime.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskManagerId(pub String);

impl std::fmt::Display for TaskManagerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a TaskManager says of itself when it registers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// `taskmanager.host`: the address other processes reach it by.
    pub host: String,
    /// `taskmanager.numberOfTaskSlots`.
    pub slots: u32,
    /// Its Weir version; the JobManager refuses another one.
    pub weir_version: String,
}

/// Which attempt of which job a message is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AttemptId {
    /// The JobManager's run that deployed it (its start time, ms): a
    /// restarted JobManager's attempts never mix with its predecessor's.
    pub epoch: u64,
    /// The job's id.
    pub job: String,
    /// The attempt number.
    pub attempt: u32,
}

/// One control message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ControlMessage {
    /// TaskManager → JobManager: the first message of a connection.
    Register(Registration),
    /// JobManager → TaskManager: registered, with the id and the heartbeat
    /// settings (ms) the JobManager holds it to.
    Registered {
        /// The TaskManager's id.
        taskmanager: TaskManagerId,
        /// The address the JobManager sees its connection come from: where
        /// its peers reach it, and its name in placements.
        address: String,
        /// `heartbeat.interval`, ms.
        heartbeat_interval_ms: u64,
        /// `heartbeat.timeout`, ms.
        heartbeat_timeout_ms: u64,
    },
    /// JobManager → TaskManager: not registered; the JobManager closes the
    /// connection after it.
    Refused {
        /// Why, for the TaskManager's log.
        reason: String,
    },
    /// TaskManager → JobManager, every `heartbeat.interval`.
    Heartbeat,
    /// JobManager → TaskManager: run this share of an attempt.
    Deploy {
        /// The attempt.
        attempt: AttemptId,
        /// Its subtasks here, the placement of all, and the settings: an
        /// `weir_task::executor::AttemptShare` as JSON (the job's specs use serde features a
        /// non-self-describing format cannot carry).
        share_json: String,
        /// The tasks of the share (so a TaskManager that cannot read it
        /// can still fail them).
        tasks: Vec<TaskId>,
        /// The artifact (SHA-256 hex) of every operator with a component.
        artifacts: BTreeMap<String, String>,
    },
    /// JobManager → TaskManager: a control message for one task.
    Control {
        /// The attempt.
        attempt: AttemptId,
        /// The task.
        task: TaskId,
        /// The message.
        control: TaskControl,
    },
    /// TaskManager → JobManager: an event of one of its tasks.
    Event {
        /// The attempt.
        attempt: AttemptId,
        /// The event.
        event: WireEvent,
    },
    /// TaskManager → JobManager: send the component with this SHA-256.
    FetchArtifact {
        /// The artifact id.
        id: String,
    },
    /// JobManager → TaskManager: the component asked for.
    Artifact {
        /// The artifact id.
        id: String,
        /// Its bytes (`Err`: the JobManager does not have it, and why).
        bytes: Result<Vec<u8>, String>,
    },
    /// TaskManager → JobManager: the counters of its share of an attempt
    /// (sent periodically and before each task's `Exited`).
    Metrics {
        /// The attempt.
        attempt: AttemptId,
        /// The counters so far.
        snapshot: MetricsSnapshot,
    },
}

impl ControlMessage {
    /// The variant's name, for errors about unexpected messages.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Register(_) => "Register",
            Self::Registered { .. } => "Registered",
            Self::Refused { .. } => "Refused",
            Self::Heartbeat => "Heartbeat",
            Self::Deploy { .. } => "Deploy",
            Self::Control { .. } => "Control",
            Self::Event { .. } => "Event",
            Self::FetchArtifact { .. } => "FetchArtifact",
            Self::Artifact { .. } => "Artifact",
            Self::Metrics { .. } => "Metrics",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{TaskFailureKind, WireFailure};
    use crate::{ControlDecoder, ControlError, encode_control, encode_control_preamble};

    fn messages() -> Vec<ControlMessage> {
        let attempt = AttemptId {
            epoch: 7,
            job: "nab".into(),
            attempt: 1,
        };
        vec![
            ControlMessage::Register(Registration {
                host: "127.0.0.2".into(),
                slots: 2,
                weir_version: "0.1.0".into(),
            }),
            ControlMessage::Control {
                attempt: attempt.clone(),
                task: ("src".into(), 0),
                control: TaskControl::NotifyCheckpointComplete(3),
            },
            ControlMessage::Event {
                attempt,
                event: WireEvent::Failed {
                    task: ("zscore".into(), 1),
                    failure: WireFailure::Task {
                        vertex: "zscore".into(),
                        index: 1,
                        parallelism: 2,
                        origin: Some("a.csv:7".into()),
                        kind: TaskFailureKind::BadData,
                        message: "not JSON".into(),
                    },
                },
            },
            ControlMessage::Artifact {
                id: "ab".into(),
                bytes: Err("no such artifact".into()),
            },
            ControlMessage::Heartbeat,
        ]
    }

    #[test]
    fn control_messages_round_trip_through_the_framing_byte_by_byte() {
        let mut stream = Vec::new();
        encode_control_preamble(&mut stream);
        for message in messages() {
            encode_control(&message, &mut stream).unwrap();
        }
        let mut decoder = ControlDecoder::new(1 << 20);
        let mut back = Vec::new();
        for byte in &stream {
            decoder.push(std::slice::from_ref(byte));
            while let Some(message) = decoder.next::<ControlMessage>().unwrap() {
                back.push(message);
            }
        }
        assert_eq!(back, messages());
    }

    #[test]
    fn an_unknown_variant_is_an_error_not_a_panic() {
        let mut stream = Vec::new();
        encode_control_preamble(&mut stream);
        // Body: variant index 200 (a varint), which no version has.
        stream.extend_from_slice(&2u32.to_le_bytes());
        stream.extend_from_slice(&[0xc8, 0x01]);
        let mut decoder = ControlDecoder::new(1 << 20);
        decoder.push(&stream);
        assert!(matches!(
            decoder.next::<ControlMessage>(),
            Err(ControlError::BadMessage { .. })
        ));
    }
}
