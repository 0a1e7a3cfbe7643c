//! `weir run`: one job on local slots in this process, driven by the same
//! job state machine ([`JobLifecycle`]) and attempt runner
//! ([`crate::attempt::run_attempt`]) as the JobManager's jobs, without REST,
//! slots accounting or persistence.

use std::time::Duration;

use weir_task::{JobError, JobSummary, ResolvedCheckpoint, Restore, RunConfig};
use weir_types::jobgraph::JobGraph;

use crate::commands::JobCommands;
use crate::lifecycle::{Action, Event, FailureKind, JobLifecycle, JobStatus};
use crate::manager::now_ms;

/// How a failed attempt counts for the restart strategy.
pub(crate) fn failure_kind(error: &JobError) -> FailureKind {
    match error {
        JobError::Task { .. } => FailureKind::Task,
        JobError::CheckpointsFailing(_) => FailureKind::Checkpoints,
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
/// restart strategy allows no more restarts.
pub fn run(
    job: &JobGraph,
    config: RunConfig,
    commands: &JobCommands,
) -> Result<JobSummary, JobError> {
    let result = drive(job, &config, commands);
    let _ = std::fs::remove_dir_all(&config.state_dir);
    let savepoint = result?;
    Ok(weir_task::summarize(&config.metrics, savepoint))
}

fn drive(
    job: &JobGraph,
    config: &RunConfig,
    commands: &JobCommands,
) -> Result<Option<String>, JobError> {
    let checkpoints = &config.checkpoints;
    let initial = match &config.restore {
        Some(Restore::Latest) => weir_task::resolve_latest_or_fresh(checkpoints, &job.name)?,
        Some(restore) => Some(weir_task::resolve_checkpoint(
            restore,
            checkpoints,
            &job.name,
        )?),
        None => None,
    };
    let strategy = checkpoints.restart_strategy();
    let mut lifecycle = JobLifecycle::new(strategy, now_ms());
    let mut latest: Option<ResolvedCheckpoint> = None;
    let mut next = lifecycle
        .handle(Event::SlotsGranted, now_ms())
        .unwrap_or_default();
    loop {
        for action in std::mem::take(&mut next) {
            let Action::Deploy { attempt } = action else {
                continue;
            };
            let restored = latest.as_ref().or(initial.as_ref());
            let error = match crate::attempt::run_attempt(job, config, commands, restored, attempt)
            {
                Ok(savepoint) => return Ok(savepoint),
                Err(error) => error,
            };
            if matches!(error, JobError::Cancelled) {
                return Err(error);
            }
            let event = failure_event(&error);
            next = lifecycle.handle(event, now_ms()).unwrap_or_default();
            match lifecycle.status() {
                JobStatus::Restarting => {
                    let delay = lifecycle.restart_at().map_or(0, |at| at - now_ms());
                    tracing::warn!(
                        "attempt {attempt} failed: {error}; restarting in {delay} ms ({} restart strategy)",
                        lifecycle.strategy_name()
                    );
                }
                _ => return Err(error),
            }
        }
        // RESTARTING: wait out the delay, then deploy from the latest
        // completed checkpoint (or as the first attempt, when none completed).
        let due = lifecycle.restart_at().unwrap_or_else(now_ms);
        let wait = u64::try_from(due - now_ms()).unwrap_or(0);
        std::thread::sleep(Duration::from_millis(wait));
        if let Some(deploy) = lifecycle.poll(now_ms().max(due)) {
            config.metrics.add_restart();
            if checkpoints.enabled() {
                match weir_task::resolve_checkpoint(&Restore::Latest, checkpoints, &job.name) {
                    Ok(found) => latest = Some(found),
                    Err(e) => tracing::info!("restarting without a new checkpoint: {e}"),
                }
            }
            next = vec![deploy];
        }
    }
}
