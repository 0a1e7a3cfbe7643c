//! The control messages between TaskManagers and the JobManager, defined
//! with their framing in [`weir_protocol::messages`].

pub use weir_protocol::messages::{AttemptId, ControlMessage, Registration, TaskManagerId};
