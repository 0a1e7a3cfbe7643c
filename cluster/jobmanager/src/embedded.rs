//! `weir run`: one job on local slots in this process. It is a
//! [`JobManager`] with as many local slots as the job needs, no REST
//! endpoint and no persisted job records, running the one job through the
//! same driver, job state machine ([`crate::lifecycle::JobLifecycle`]) and
//! attempt runner as a server's jobs; only the typed error of the last
//! attempt comes back instead of a REST view.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use weir_task::{JobError, JobSummary, Restore, RunConfig};
use weir_types::jobgraph::JobGraph;

use crate::commands::JobCommands;
use crate::config::JobManagerConfig;
use crate::lifecycle::{Event, FailureKind};
use crate::manager::{Admission, JobManager, JobRecord, SubmitOptions, slots_needed};

/// How a failed attempt counts for the restart strategy.
pub(crate) fn failure_kind(error: &JobError) -> FailureKind {
    match error {
        JobError::Task { .. } => FailureKind::Task,
        JobError::CheckpointsFailing(_) => FailureKind::Checkpoints,
        JobError::DamagedCheckpoint { .. } => FailureKind::DamagedCheckpoint,
        _ => FailureKind::Permanent,
    }
}

/// The lifecycle event of an attempt that failed with `error`: its kind
/// for the restart strategy, and what the task hit.
pub(crate) fn failure_event(error: &JobError) -> Event {
    Event::AttemptFailed {
        kind: failure_kind(error),
        cause: error.kind().map(|k| k.as_str().to_string()),
        message: error.to_string(),
    }
}

/// Runs `job` to its end (its sources are bounded): attempt after attempt
/// as the restart strategy allows, each later one from the latest
/// completed checkpoint. The state directory is removed at the end.
/// `commands` cancels it or stops it with a savepoint (for example on
/// SIGTERM).
///
/// # Errors
/// The [`JobError`] of the last attempt when the job cannot start or the
/// restart strategy allows no more restarts; [`JobError::Cancelled`] when
/// it was cancelled without a savepoint.
pub fn run(
    job: &JobGraph,
    config: RunConfig,
    commands: JobCommands,
) -> Result<JobSummary, JobError> {
    let ha_dir = PathBuf::from(format!("{}-jobmanager", config.state_dir.display()));
    let result = drive(job, &config, commands, &ha_dir);
    let _ = std::fs::remove_dir_all(&config.state_dir);
    let _ = std::fs::remove_dir_all(&ha_dir);
    let savepoint = result?;
    Ok(weir_task::summarize(&config.metrics, savepoint))
}

fn drive(
    job: &JobGraph,
    config: &RunConfig,
    commands: JobCommands,
    ha_dir: &std::path::Path,
) -> Result<Option<String>, JobError> {
    let checkpoints = &config.checkpoints;
    // A bad restore point is an error before anything starts.
    let initial = match &config.restore {
        Some(Restore::Latest) => {
            weir_task::resolve_latest_or_fresh(checkpoints, &job.name)?.map(|_| Restore::Latest)
        }
        Some(restore) => {
            weir_task::resolve_checkpoint(restore, checkpoints, &job.name)?;
            Some(restore.clone())
        }
        None => None,
    };
    let keys = BTreeMap::from([
        (
            "high-availability.storagedir".to_string(),
            ha_dir.display().to_string(),
        ),
        (
            "taskmanager.numberoftaskslots".to_string(),
            slots_needed(job).to_string(),
        ),
    ]);
    let setup = |e: &dyn std::fmt::Display| {
        JobError::Plan(format!("cannot set up the in-process JobManager: {e}"))
    };
    let jm_config = JobManagerConfig::from_keys(&keys).map_err(|e| setup(&e))?;
    let jm = JobManager::start_with(jm_config, config.cache_dir.clone(), false)
        .map_err(|e| setup(&e))?;
    let admission = Admission {
        graph: job.clone(),
        udfs: config.udfs.clone(),
        checkpoints: checkpoints.clone(),
        initial,
        metrics: Arc::clone(&config.metrics),
        commands: Arc::new(commands),
        state_dir: Some(config.state_dir.clone()),
    };
    let record = JobRecord::new(&job.name, "", SubmitOptions::default());
    let id = jm
        .take_in(record, admission, true)
        .map_err(|e| JobError::Plan(e.to_string()))?;
    jm.wait_for_end(&id)
}
