//! The job state machine (Flink's `JobStatus` transitions), driven by
//! messages and an injected clock so tests walk a job's whole life without
//! threads or sleeps.
//!
//! ```text
//! CREATED --slots--> RUNNING --finished--> FINISHED
//!                     |  ^ \--cancel--> CANCELLING --tasks ended--> CANCELED
//!             failure |  | delay elapsed (restart strategy)
//!                     v  |
//!                  RESTARTING --no restart left--> FAILED
//! ```
//!
//! A failure of a job that the restart strategy gives up on, or a failure
//! that would fail the same way again (a job that cannot be planned, a
//! checkpoint that cannot be read), ends in FAILED. The machine only says
//! what to do ([`Action`]); the JobManager does it.

use serde::{Deserialize, Serialize};
use weir_checkpoint::{RestartStrategy, RestartTracker};

/// A job's status, named as Flink names them (`GET /v1/jobs` shows these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Submitted, waiting for slots.
    Created,
    /// Its tasks are deployed and running.
    Running,
    /// A task failed; the job restarts after the strategy's delay.
    Restarting,
    /// A cancel was asked for; the tasks are stopping.
    Cancelling,
    /// Every source ended and the output is committed (terminal).
    Finished,
    /// Cancelled, or stopped with a savepoint (terminal).
    Canceled,
    /// Failed for good (terminal).
    Failed,
}

impl JobStatus {
    /// Whether the job will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Canceled | Self::Failed)
    }

    /// The name as shown by the REST API (`RUNNING`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Running => "RUNNING",
            Self::Restarting => "RESTARTING",
            Self::Cancelling => "CANCELLING",
            Self::Finished => "FINISHED",
            Self::Canceled => "CANCELED",
            Self::Failed => "FAILED",
        }
    }
}

/// Failures count as identical only when the attempt between them ran less
/// than this, ms (10 min).
pub const IDENTICAL_FAILURE_WINDOW_MS: i64 = 600_000;

/// What kind of failure ended an attempt; the kind decides whether a
/// restart can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// A task failed while running (a UDF trap or limit, an I/O error):
    /// restartable.
    Task,
    /// More consecutive checkpoints failed than tolerated: restartable.
    Checkpoints,
    /// The job cannot run as given (planning, loading a component, a
    /// source or sink that cannot be set up, a checkpoint that cannot be
    /// read): a restart would fail the same way.
    Permanent,
    /// The checkpoint the attempt restored is damaged: the next attempt
    /// starts at once from the next older retained checkpoint. It is not
    /// counted by the restart strategy (each one rules a checkpoint out, so
    /// they end when the retained checkpoints do).
    DamagedCheckpoint,
    /// A UDF failed on the same input record in
    /// `restart-strategy.max-identical-failures` attempts in a row and its
    /// operator dead-letters bad records: the next attempt starts at once
    /// and dead-letters that record instead of passing it to the UDF. Not
    /// counted by the restart strategy (each one rules a record out).
    PoisonRecord,
}

/// A failure as the JobManager keeps it (`GET /v1/jobs/{id}/exceptions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failure {
    /// When it happened, ms since the epoch.
    pub timestamp_ms: i64,
    /// Its kind.
    pub kind: FailureKind,
    /// For a task failure, what the task hit: `trap`, `timeout`,
    /// `memory-limit`, `udf-error`, `io`, `bad-data` or `internal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// The message, naming the operator, subtask and record where known.
    pub message: String,
    /// The attempt that failed (0 for the first).
    pub attempt: u32,
}

/// What happened to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Slots were granted: the job can be deployed.
    SlotsGranted,
    /// The attempt's tasks all finished (with a savepoint when stopping).
    AttemptFinished {
        /// Where the savepoint went, when the job stopped with one.
        savepoint: Option<String>,
    },
    /// The attempt failed.
    AttemptFailed {
        /// Why.
        kind: FailureKind,
        /// For a task failure, what the task hit (see [`Failure::cause`]).
        cause: Option<String>,
        /// The message.
        message: String,
    },
    /// The attempt's tasks stopped after a cancel.
    AttemptCancelled,
    /// A user asked to cancel the job.
    CancelRequested,
    /// The deployed restart attempt waits for slots (after a TaskManager
    /// was lost): a RUNNING job shows RESTARTING until
    /// [`Event::ResourcesAcquired`]. The attempt stays in flight, so its
    /// outcome and a cancel are handled as for a running attempt.
    AwaitingResources,
    /// The waiting attempt got its slots: RUNNING again.
    ResourcesAcquired,
}

/// What the JobManager must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Deploy the job's tasks: `attempt` 0 starts as submitted, later
    /// attempts from the latest completed checkpoint.
    Deploy {
        /// The attempt number.
        attempt: u32,
    },
    /// Tell the running tasks to cancel.
    CancelTasks,
    /// The job is done: give its slots back.
    ReleaseSlots,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The job already ended.
    #[error("the job is already {0}")]
    AlreadyEnded(&'static str),
}

/// One job's life.
#[derive(Debug, Clone)]
pub struct JobLifecycle {
    status: JobStatus,
    tracker: RestartTracker,
    strategy_name: &'static str,
    attempt: u32,
    /// When a RESTARTING job is deployed again, ms.
    restart_at_ms: Option<i64>,
    /// Status timestamps, ms: when each status was entered last.
    timestamps: Vec<(JobStatus, i64)>,
    exceptions: Vec<Failure>,
    savepoint: Option<String>,
    /// RESTARTING while a deployed restart attempt waits for slots.
    awaiting_resources: bool,
    /// Identical failures in a row that end the job (0: no limit).
    identical_limit: u32,
    /// The latest failures that were all the same, counted.
    identical_streak: u32,
    /// Whether the job failed because of `identical_limit`.
    gave_up_identical: bool,
}

impl JobLifecycle {
    /// A job submitted at `now_ms` (ms since the epoch), CREATED.
    pub fn new(strategy: RestartStrategy, now_ms: i64) -> Self {
        Self {
            status: JobStatus::Created,
            strategy_name: strategy.name(),
            tracker: RestartTracker::new(strategy, now_ms),
            attempt: 0,
            restart_at_ms: None,
            timestamps: vec![(JobStatus::Created, now_ms)],
            exceptions: Vec::new(),
            savepoint: None,
            awaiting_resources: false,
            identical_limit: 0,
            identical_streak: 0,
            gave_up_identical: false,
        }
    }

    /// Fails the job instead of restarting once `limit` failures in a row
    /// were identical (same kind, cause and message: the same operator,
    /// subtask, record and error); 0 means no limit.
    #[must_use]
    pub fn with_identical_failure_limit(mut self, limit: u32) -> Self {
        self.identical_limit = limit;
        self
    }

    /// How many identical failures in a row ended the job, when that is why
    /// it FAILED.
    pub fn gave_up_after_identical_failures(&self) -> Option<u32> {
        self.gave_up_identical.then_some(self.identical_streak)
    }

    /// The current status.
    pub fn status(&self) -> JobStatus {
        self.status
    }

    /// The current (or last) attempt, 0 for the first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Failures so far, oldest first.
    pub fn exceptions(&self) -> &[Failure] {
        &self.exceptions
    }

    /// The savepoint the job stopped with.
    pub fn savepoint(&self) -> Option<&str> {
        self.savepoint.as_deref()
    }

    /// When the job last entered `status`, ms since the epoch.
    pub fn entered(&self, status: JobStatus) -> Option<i64> {
        self.timestamps
            .iter()
            .rev()
            .find(|(s, _)| *s == status)
            .map(|(_, t)| *t)
    }

    /// When a RESTARTING job is due to be deployed again, ms.
    pub fn restart_at(&self) -> Option<i64> {
        self.restart_at_ms
    }

    fn enter(&mut self, status: JobStatus, now_ms: i64) {
        self.status = status;
        self.timestamps.push((status, now_ms));
    }

    /// Ends the job: its slots (held, or asked for while it waited) go back.
    fn end(&mut self, status: JobStatus, now_ms: i64, actions: &mut Vec<Action>) {
        self.enter(status, now_ms);
        self.restart_at_ms = None;
        actions.push(Action::ReleaseSlots);
    }

    /// Applies `event` at `now_ms`; returns what to do.
    ///
    /// # Errors
    /// [`TransitionError::AlreadyEnded`] for a cancel of an ended job.
    /// Other events that do not apply in the current status (a late
    /// report of an attempt that was already given up) are ignored.
    pub fn handle(&mut self, event: Event, now_ms: i64) -> Result<Vec<Action>, TransitionError> {
        let mut actions = Vec::new();
        // A restart attempt waiting for slots is in flight: its outcome
        // and a cancel are handled as for a RUNNING job.
        let status = if self.awaiting_resources {
            self.awaiting_resources = !matches!(
                event,
                Event::AttemptFinished { .. }
                    | Event::AttemptFailed { .. }
                    | Event::AttemptCancelled
                    | Event::CancelRequested
                    | Event::ResourcesAcquired
            );
            JobStatus::Running
        } else {
            self.status
        };
        match (status, event) {
            (JobStatus::Running, Event::AwaitingResources)
                if self.attempt > 0 && self.status == JobStatus::Running =>
            {
                self.awaiting_resources = true;
                self.enter(JobStatus::Restarting, now_ms);
            }
            (JobStatus::Running, Event::ResourcesAcquired) if self.status != JobStatus::Running => {
                self.enter(JobStatus::Running, now_ms);
            }
            (JobStatus::Created, Event::SlotsGranted) => {
                self.enter(JobStatus::Running, now_ms);
                self.tracker.on_restart(now_ms);
                actions.push(Action::Deploy {
                    attempt: self.attempt,
                });
            }
            (JobStatus::Running, Event::AttemptFinished { savepoint }) => {
                self.savepoint = savepoint;
                let end = if self.savepoint.is_some() {
                    JobStatus::Canceled
                } else {
                    JobStatus::Finished
                };
                self.end(end, now_ms, &mut actions);
            }
            (
                JobStatus::Running,
                Event::AttemptFailed {
                    kind,
                    cause,
                    message,
                },
            ) => {
                // An attempt that ran a long time before failing again the
                // same way made progress: the streak starts over.
                let ran_ms = self
                    .entered(JobStatus::Running)
                    .map_or(0, |since| now_ms.saturating_sub(since));
                let identical = ran_ms < IDENTICAL_FAILURE_WINDOW_MS
                    && self.exceptions.last().is_some_and(|f| {
                        f.kind == kind && f.cause == cause && f.message == message
                    });
                self.identical_streak = if identical {
                    self.identical_streak + 1
                } else {
                    1
                };
                self.exceptions.push(Failure {
                    timestamp_ms: now_ms,
                    kind,
                    cause,
                    message,
                    attempt: self.attempt,
                });
                let delay = match kind {
                    FailureKind::Permanent => None,
                    FailureKind::DamagedCheckpoint | FailureKind::PoisonRecord => Some(0),
                    _ if self.identical_limit > 0
                        && self.identical_streak >= self.identical_limit =>
                    {
                        self.gave_up_identical = true;
                        None
                    }
                    FailureKind::Task | FailureKind::Checkpoints => self.tracker.on_failure(now_ms),
                };
                match delay {
                    Some(delay_ms) => {
                        self.enter(JobStatus::Restarting, now_ms);
                        self.restart_at_ms = Some(
                            now_ms.saturating_add(i64::try_from(delay_ms).unwrap_or(i64::MAX)),
                        );
                    }
                    None => self.end(JobStatus::Failed, now_ms, &mut actions),
                }
            }
            (JobStatus::Created | JobStatus::Restarting, Event::CancelRequested) => {
                self.end(JobStatus::Canceled, now_ms, &mut actions);
            }
            (JobStatus::Running, Event::CancelRequested) => {
                self.enter(JobStatus::Cancelling, now_ms);
                actions.push(Action::CancelTasks);
            }
            (JobStatus::Cancelling, Event::CancelRequested) => {}
            (
                JobStatus::Cancelling,
                Event::AttemptCancelled
                | Event::AttemptFailed { .. }
                | Event::AttemptFinished { .. },
            ) => {
                self.end(JobStatus::Canceled, now_ms, &mut actions);
            }
            (status, Event::CancelRequested) if status.is_terminal() => {
                return Err(TransitionError::AlreadyEnded(status.name()));
            }
            // A cancel that came from elsewhere (the process stopping).
            (JobStatus::Running, Event::AttemptCancelled) => {
                self.end(JobStatus::Canceled, now_ms, &mut actions);
            }
            _ => {}
        }
        Ok(actions)
    }

    /// Lets time pass: a RESTARTING job whose delay elapsed by `now_ms` is
    /// deployed again (attempt + 1).
    pub fn poll(&mut self, now_ms: i64) -> Option<Action> {
        let due = self.restart_at_ms?;
        if self.status != JobStatus::Restarting || now_ms < due {
            return None;
        }
        self.restart_at_ms = None;
        self.attempt += 1;
        self.tracker.on_restart(now_ms);
        self.enter(JobStatus::Running, now_ms);
        Some(Action::Deploy {
            attempt: self.attempt,
        })
    }

    /// The restart strategy's name (`none`, `fixed-delay`, ...).
    pub fn strategy_name(&self) -> &'static str {
        self.strategy_name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(attempts: u32, delay_ms: u64) -> RestartStrategy {
        RestartStrategy::FixedDelay { attempts, delay_ms }
    }

    fn failed(message: &str) -> Event {
        Event::AttemptFailed {
            kind: FailureKind::Task,
            cause: Some("trap".into()),
            message: message.into(),
        }
    }

    #[test]
    fn a_job_runs_and_finishes() {
        let mut job = JobLifecycle::new(RestartStrategy::None, 1_000);
        assert_eq!(job.status(), JobStatus::Created);
        let actions = job.handle(Event::SlotsGranted, 1_010).unwrap();
        assert_eq!(actions, vec![Action::Deploy { attempt: 0 }]);
        assert_eq!(job.status(), JobStatus::Running);
        let actions = job
            .handle(Event::AttemptFinished { savepoint: None }, 2_000)
            .unwrap();
        assert_eq!(actions, vec![Action::ReleaseSlots]);
        assert_eq!(job.status(), JobStatus::Finished);
        assert_eq!(job.entered(JobStatus::Running), Some(1_010));
        assert_eq!(job.entered(JobStatus::Finished), Some(2_000));
    }

    #[test]
    fn a_task_failure_restarts_after_the_delay_then_fails_when_attempts_run_out() {
        let mut job = JobLifecycle::new(fixed(1, 500), 0);
        job.handle(Event::SlotsGranted, 0).unwrap();
        let actions = job.handle(failed("trap in zscore"), 100).unwrap();
        assert!(actions.is_empty(), "slots stay with a restarting job");
        assert_eq!(job.status(), JobStatus::Restarting);
        assert_eq!(job.restart_at(), Some(600));
        assert_eq!(job.poll(599), None, "not before the delay");
        assert_eq!(job.poll(600), Some(Action::Deploy { attempt: 1 }));
        assert_eq!(job.status(), JobStatus::Running);
        // The second failure exceeds the one attempt allowed.
        let actions = job.handle(failed("trap again"), 700).unwrap();
        assert_eq!(actions, vec![Action::ReleaseSlots]);
        assert_eq!(job.status(), JobStatus::Failed);
        let attempts: Vec<u32> = job.exceptions().iter().map(|e| e.attempt).collect();
        assert_eq!(attempts, vec![0, 1]);
        assert_eq!(job.exceptions()[1].message, "trap again");
    }

    #[test]
    fn a_damaged_checkpoint_restarts_at_once_outside_the_restart_strategy() {
        let mut job = JobLifecycle::new(RestartStrategy::None, 0).with_identical_failure_limit(1);
        job.handle(Event::SlotsGranted, 0).unwrap();
        for (n, at) in [(1, 10), (2, 20)] {
            job.handle(
                Event::AttemptFailed {
                    kind: FailureKind::DamagedCheckpoint,
                    cause: None,
                    message: "checkpoint 7 is damaged".into(),
                },
                at,
            )
            .unwrap();
            assert_eq!(job.status(), JobStatus::Restarting);
            assert_eq!(job.poll(at), Some(Action::Deploy { attempt: n }));
        }
        // A task failure afterwards meets the strategy (none) as usual.
        job.handle(failed("trap"), 30).unwrap();
        assert_eq!(job.status(), JobStatus::Failed);
    }

    #[test]
    fn a_permanent_failure_does_not_restart() {
        let mut job = JobLifecycle::new(fixed(10, 0), 0);
        job.handle(Event::SlotsGranted, 0).unwrap();
        job.handle(
            Event::AttemptFailed {
                kind: FailureKind::Permanent,
                cause: None,
                message: "cannot read checkpoint".into(),
            },
            5,
        )
        .unwrap();
        assert_eq!(job.status(), JobStatus::Failed);
        assert_eq!(job.poll(1_000), None);
    }

    #[test]
    fn cancel_of_a_running_job_waits_for_its_tasks() {
        let mut job = JobLifecycle::new(RestartStrategy::None, 0);
        job.handle(Event::SlotsGranted, 0).unwrap();
        let actions = job.handle(Event::CancelRequested, 10).unwrap();
        assert_eq!(actions, vec![Action::CancelTasks]);
        assert_eq!(job.status(), JobStatus::Cancelling);
        let actions = job.handle(Event::AttemptCancelled, 20).unwrap();
        assert_eq!(actions, vec![Action::ReleaseSlots]);
        assert_eq!(job.status(), JobStatus::Canceled);
        // Cancelling a cancelled job is refused, the state unchanged.
        assert_eq!(
            job.handle(Event::CancelRequested, 30),
            Err(TransitionError::AlreadyEnded("CANCELED"))
        );
        assert_eq!(job.status(), JobStatus::Canceled);
    }

    #[test]
    fn cancel_while_restarting_or_waiting_ends_at_once() {
        // Regression: a waiting job cancelled kept its place in the slot
        // queue, was granted slots later and never gave them back.
        let mut waiting = JobLifecycle::new(RestartStrategy::None, 0);
        assert_eq!(
            waiting.handle(Event::CancelRequested, 1).unwrap(),
            vec![Action::ReleaseSlots]
        );
        assert_eq!(waiting.status(), JobStatus::Canceled);

        let mut restarting = JobLifecycle::new(fixed(3, 10_000), 0);
        restarting.handle(Event::SlotsGranted, 0).unwrap();
        restarting.handle(failed("boom"), 1).unwrap();
        let actions = restarting.handle(Event::CancelRequested, 2).unwrap();
        assert_eq!(actions, vec![Action::ReleaseSlots]);
        assert_eq!(restarting.status(), JobStatus::Canceled);
        assert_eq!(restarting.poll(20_000), None, "no restart after cancel");
    }

    #[test]
    fn stop_with_savepoint_ends_canceled_with_the_location() {
        let mut job = JobLifecycle::new(RestartStrategy::None, 0);
        job.handle(Event::SlotsGranted, 0).unwrap();
        job.handle(
            Event::AttemptFinished {
                savepoint: Some("/sp/chk-4".into()),
            },
            50,
        )
        .unwrap();
        assert_eq!(job.status(), JobStatus::Canceled);
        assert_eq!(job.savepoint(), Some("/sp/chk-4"));
    }

    #[test]
    fn a_restart_waiting_for_slots_shows_restarting_then_running() {
        let mut job = JobLifecycle::new(fixed(3, 0), 0);
        job.handle(Event::SlotsGranted, 0).unwrap();
        // The first attempt waiting is still RUNNING (not a restart).
        job.handle(Event::AwaitingResources, 1).unwrap();
        assert_eq!(job.status(), JobStatus::Running);
        job.handle(failed("TaskManager lost"), 2).unwrap();
        assert_eq!(job.poll(2), Some(Action::Deploy { attempt: 1 }));
        job.handle(Event::AwaitingResources, 3).unwrap();
        assert_eq!(job.status(), JobStatus::Restarting);
        // Time passing does not deploy a second attempt while one waits.
        assert_eq!(job.poll(10_000), None);
        job.handle(Event::ResourcesAcquired, 20).unwrap();
        assert_eq!(job.status(), JobStatus::Running);
        assert_eq!(job.entered(JobStatus::Running), Some(20));
        job.handle(Event::AttemptFinished { savepoint: None }, 30)
            .unwrap();
        assert_eq!(job.status(), JobStatus::Finished);
        assert_eq!(job.attempt(), 1);
    }

    #[test]
    fn a_cancel_while_waiting_for_slots_cancels_the_waiting_attempt() {
        let mut job = JobLifecycle::new(fixed(3, 0), 0);
        job.handle(Event::SlotsGranted, 0).unwrap();
        job.handle(failed("TaskManager lost"), 1).unwrap();
        job.poll(1);
        job.handle(Event::AwaitingResources, 2).unwrap();
        assert_eq!(
            job.handle(Event::CancelRequested, 3).unwrap(),
            vec![Action::CancelTasks]
        );
        assert_eq!(job.status(), JobStatus::Cancelling);
        assert_eq!(
            job.handle(Event::AttemptCancelled, 4).unwrap(),
            vec![Action::ReleaseSlots]
        );
        assert_eq!(job.status(), JobStatus::Canceled);
    }

    #[test]
    fn a_waiting_attempt_that_fails_restarts_under_the_strategy() {
        let mut job = JobLifecycle::new(fixed(1, 0), 0);
        job.handle(Event::SlotsGranted, 0).unwrap();
        job.handle(failed("TaskManager lost"), 1).unwrap();
        job.poll(1);
        job.handle(Event::AwaitingResources, 2).unwrap();
        let actions = job.handle(failed("again"), 3).unwrap();
        assert_eq!(actions, vec![Action::ReleaseSlots]);
        assert_eq!(job.status(), JobStatus::Failed);
        assert_eq!(job.exceptions().len(), 2);
    }

    #[test]
    fn the_same_failure_three_times_in_a_row_fails_the_job() {
        // Regression: a UDF that trapped on one record restarted forever
        // under the default (unlimited) exponential-delay strategy.
        let mut job = JobLifecycle::new(RestartStrategy::exponential_default(), 0)
            .with_identical_failure_limit(3);
        job.handle(Event::SlotsGranted, 0).unwrap();
        let mut now = 0;
        for _ in 0..2 {
            job.handle(failed("op (subtask 0 of 1) failed on a.csv:3: trap"), now)
                .unwrap();
            assert_eq!(job.status(), JobStatus::Restarting);
            now = job.restart_at().unwrap();
            job.poll(now).unwrap();
        }
        let actions = job
            .handle(failed("op (subtask 0 of 1) failed on a.csv:3: trap"), now)
            .unwrap();
        assert_eq!(actions, vec![Action::ReleaseSlots]);
        assert_eq!(job.status(), JobStatus::Failed);
        assert_eq!(job.gave_up_after_identical_failures(), Some(3));
        assert_eq!(job.exceptions().len(), 3);
    }

    #[test]
    fn the_same_failure_after_a_long_run_starts_the_count_over() {
        let mut job = JobLifecycle::new(fixed(10, 0), 0).with_identical_failure_limit(2);
        job.handle(Event::SlotsGranted, 0).unwrap();
        job.handle(failed("lost"), 1).unwrap();
        job.poll(1).unwrap();
        // This attempt ran for more than the window before failing again.
        let later = 1 + IDENTICAL_FAILURE_WINDOW_MS + 1;
        job.handle(failed("lost"), later).unwrap();
        assert_eq!(job.status(), JobStatus::Restarting);
        job.poll(later).unwrap();
        job.handle(failed("lost"), later + 5).unwrap();
        assert_eq!(job.status(), JobStatus::Failed);
    }

    #[test]
    fn different_failures_do_not_count_as_identical() {
        let mut job = JobLifecycle::new(fixed(10, 0), 0).with_identical_failure_limit(2);
        job.handle(Event::SlotsGranted, 0).unwrap();
        for (i, message) in ["a", "b", "a", "b"].iter().enumerate() {
            let now = i64::try_from(i).unwrap();
            job.handle(failed(message), now).unwrap();
            assert_eq!(job.status(), JobStatus::Restarting, "after {message}");
            job.poll(now).unwrap();
        }
        // Without a limit, the strategy alone decides.
        let mut unlimited = JobLifecycle::new(fixed(10, 0), 0);
        unlimited.handle(Event::SlotsGranted, 0).unwrap();
        for now in 0..5 {
            unlimited.handle(failed("same"), now).unwrap();
            assert_eq!(unlimited.status(), JobStatus::Restarting);
            unlimited.poll(now).unwrap();
        }
        assert_eq!(unlimited.gave_up_after_identical_failures(), None);
    }

    #[test]
    fn a_late_report_of_a_given_up_attempt_is_ignored() {
        let mut job = JobLifecycle::new(RestartStrategy::None, 0);
        job.handle(Event::SlotsGranted, 0).unwrap();
        job.handle(Event::AttemptFinished { savepoint: None }, 1)
            .unwrap();
        let actions = job.handle(failed("late"), 2).unwrap();
        assert!(actions.is_empty());
        assert_eq!(job.status(), JobStatus::Finished);
        assert!(job.exceptions().is_empty());
    }
}
