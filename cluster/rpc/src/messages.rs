//! The control messages between TaskManagers and the JobManager.
//!
//! They travel on one bidirectional QUIC stream per TaskManager connection
//! (the TaskManager opens it), framed by [`weir_protocol::control`]. The
//! postcard encoding makes the order of [`ControlMessage`]'s variants and
//! fields part of the wire format: new variants go at the end; anything
//! else is a new [`weir_protocol::control::CONTROL_VERSION`].

use serde::{Deserialize, Serialize};

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

/// One control message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlMessage {
    /// TaskManager → JobManager: the first message of a connection.
    Register(Registration),
    /// JobManager → TaskManager: registered, with the id and the heartbeat
    /// settings (ms) the JobManager holds it to.
    Registered {
        /// The TaskManager's id.
        taskmanager: TaskManagerId,
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
        }
    }
}
