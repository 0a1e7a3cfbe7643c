//! The `weir` command-line tool, as a library so tests can drive it.
//!
//! - [`udf`]: building Rust UDF crates into components (`weir udf build`),
//!   also used on demand when a job file points at a source directory.
//! - [`run`]: `weir run JOB.yaml`: load the job, resolve and build its
//!   UDFs, run it on the embedded mini-cluster with a progress bar, and
//!   print a summary.
//! - [`nexmark`]: `weir nexmark OUT`: write a Nexmark event stream to
//!   JSON-lines files for replay.
//! - [`server`]: `weir jobmanager`, the JobManager process.
//! - [`cluster`]: `weir cert init`, `weir taskmanager` and the table of
//!   `weir taskmanagers`.
//! - [`client`]: the REST client of `weir udf upload`, `weir submit`,
//!   `weir list`, `weir status`, `weir cancel` and `weir stop`.

pub mod client;
pub mod cluster;
pub mod nexmark;
pub mod run;
pub mod server;
pub mod udf;

/// Resolves at the first SIGINT or SIGTERM (a server's or TaskManager's
/// orderly stop). Must be awaited within a Tokio runtime.
pub async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

/// The directory for Weir's caches: `$WEIR_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/weir`, else `~/.cache/weir`, else `./.weir-cache`.
pub fn cache_root() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("WEIR_CACHE_DIR") {
        return dir.into();
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache")));
    match base {
        Some(base) => base.join("weir"),
        None => ".weir-cache".into(),
    }
}
