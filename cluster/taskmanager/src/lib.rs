//! The TaskManager: a process that offers slots to a JobManager over the
//! cluster's QUIC transport (mutual TLS, `weir-rpc`).
//!
//! - [`config`]: its keys (`jobmanager.rpc.address`, `taskmanager.host`,
//!   `taskmanager.numberOfTaskSlots`, heartbeats, certificates).
//! - [`session`]: register, heartbeat, and reconnect by itself when the
//!   JobManager goes away.
//!
//! In this version a TaskManager registers and stays alive; subtasks are
//! not yet deployed to it (jobs run in the JobManager's local slots).

pub mod config;
pub mod session;

pub use config::{TaskManagerConfig, TmConfigError};
pub use session::{Backoff, SessionEvent, TmError, run};
