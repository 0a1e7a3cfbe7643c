//! The JobManager: Weir's long-running server that takes uploaded UDF
//! components and job files over HTTP, schedules jobs into slots and runs
//! them, restarting failed ones from their latest checkpoint.
//!
//! - [`lifecycle`]: the job state machine (Flink's CREATED, RUNNING,
//!   RESTARTING, CANCELLING, FINISHED, CANCELED, FAILED) over messages and
//!   an injected clock, with the restart strategy deciding restarts.
//! - [`attempt`]: one attempt of a job: its tasks deployed on local
//!   threads, and the attempt's driver (checkpoint coordination, failure
//!   handling) talking to them by control messages.
//! - [`commands`]: cancel, stop with savepoint and savepoint requests of
//!   a job, as the attempt's driver reads them.
//! - [`slots`]: the slot pool and first-come-first-served scheduling.
//! - [`taskmanagers`]: the registry of TaskManagers (registration,
//!   heartbeats, loss) as a state machine over an injected clock.
//! - [`remote`]: attempts on TaskManagers (placement, shares, proxies for
//!   control, routes for events, loss of a TaskManager).
//! - [`rpc`]: the cluster endpoint (QUIC with mutual TLS) where
//!   TaskManagers register and send heartbeats.
//! - [`artifacts`]: the content-addressed store of uploaded components
//!   (`udf: artifact:<sha256>` in a job).
//! - [`manager`]: [`JobManager`], which carries messages between those,
//!   the tasks (run in this process: the local TaskManager) and the
//!   persisted state under `high-availability.storageDir`.
//! - [`rest`]: the REST API under `/v1` and its OpenAPI document.
//! - [`config`]: configuration from TOML, `WEIR_*` variables and `-D`.
//! - [`embedded`]: `weir run`: an in-process JobManager with local slots
//!   running one job, without REST or persisted job records.

pub mod artifacts;
pub mod attempt;
pub mod commands;
pub mod config;
pub mod embedded;
pub mod lifecycle;
pub mod manager;
mod poison;
pub mod remote;
pub mod rest;
pub mod rpc;
pub mod slots;
pub mod taskmanagers;
pub mod views;

pub use config::JobManagerConfig;
pub use manager::{JmError, JobManager, SubmitOptions};

/// Serves the REST API of `jm` on `listener` until `shutdown` resolves.
///
/// # Errors
/// The server's I/O error.
pub async fn serve(
    jm: JobManager,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, rest::router(jm))
        .with_graceful_shutdown(shutdown)
        .await
}
