//! The TaskManager: a process that offers slots to a JobManager over the
//! cluster's QUIC transport (mutual TLS, `weir-rpc`).
//!
//! - [`config`]: its keys (`jobmanager.rpc.address`, `taskmanager.host`,
//!   `taskmanager.numberOfTaskSlots`, heartbeats, certificates).
//! - [`session`]: register, heartbeat, and reconnect by itself when the
//!   JobManager goes away.
//! - [`executor`]: run the JobManager's deployments: fetch artifacts,
//!   start the share of an attempt, deliver task control, send task
//!   events, and carry data streams to and from other TaskManagers.

pub mod config;
pub mod executor;
pub mod session;

pub use config::{TaskManagerConfig, TmConfigError};
pub use session::{Backoff, SessionEvent, TmError, run};
