//! Running one attempt of a job: its tasks are deployed on local threads
//! ([`weir_task::deploy_local`]) and the attempt's driver, the
//! JobManager's side of the control plane, runs on the caller's thread: it
//! reads the tasks' [`TaskEvent`]s, drives the
//! [`CheckpointCoordinator`] (triggers on time, gathers acknowledgements,
//! writes `_metadata` of completed checkpoints, takes the final checkpoint
//! once every task finished, stops with a savepoint), and cancels every
//! task when one fails or the job is cancelled.
//!
//! The flow of checkpoint `n`:
//! 1. the driver sends [`TaskControl::TriggerCheckpoint`]`(n)` to every task;
//! 2. each running source task takes it between two batches, snapshots its
//!    split positions and its chain, hands the snapshot to its snapshot
//!    worker (which writes it and acknowledges), and sends barrier `n`
//!    downstream;
//! 3. a task with inputs aligns barrier `n` over its producers
//!    (`BarrierAligner`), then does the same;
//! 4. a task whose input ended answers the trigger with the snapshot of
//!    its final state, so checkpoints go on while bounded inputs end one
//!    by one;
//! 5. on the last acknowledgement the driver writes `_metadata` and sends
//!    [`TaskControl::NotifyCheckpointComplete`]`(n)`: transactional sinks
//!    commit what they sealed at barrier `n` or before.
//!
//! When every task has finished, the driver triggers one final checkpoint;
//! when it completes the driver sends [`TaskControl::Finish`], so a bounded
//! job's output is committed only as part of a completed checkpoint
//! (Flink's final checkpoint, FLIP-147).

use std::collections::BTreeMap;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use weir_checkpoint::{
    Acknowledgement, CheckpointAction, CheckpointConfig, CheckpointCoordinator, CheckpointId,
    CheckpointMetadata, CheckpointStorage, StorageError, SubtaskState, TaskId,
};

use weir_task::control::{TaskControl, TaskEvent};
use weir_task::{AttemptCheckpoints, JobError, ResolvedCheckpoint, RunConfig};

use crate::commands::{JobCommands, SavepointRequest};

/// `vertex#index`, a subtask's name in checkpoint metadata.
fn task_name(vertex: &str, index: u32) -> String {
    format!("{vertex}#{index}")
}

/// Runs one attempt of `job` (no restarts: the caller's job state machine
/// decides), starting from `restored` when given. `attempt` (0 for the
/// first) is what UDFs see in their open context. Returns the savepoint's
/// location when the job stopped with one. The state directory is left
/// for the caller to remove.
///
/// # Errors
/// [`JobError::Task`] for a task failure (restartable, with its kind),
/// [`JobError::Cancelled`] after [`JobCommands::cancel`],
/// [`JobError::CheckpointsFailing`], or any other [`JobError`] for a job
/// that cannot run.
pub fn run_attempt(
    job: &weir_types::jobgraph::JobGraph,
    config: &RunConfig,
    commands: &JobCommands,
    restored: Option<&ResolvedCheckpoint>,
    attempt: u32,
) -> Result<Option<String>, JobError> {
    let weir_task::LocalDeployment {
        tasks,
        events,
        checkpoints,
        threads,
    } = weir_task::deploy_local(job, config, restored, attempt)?;
    let started = std::time::Instant::now();
    let result = AttemptDriver::new(tasks, events, checkpoints, config, commands, &job.name)
        .run(|| i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX));
    threads.join();
    result
}

/// Drives one attempt until every task exited.
pub(crate) struct AttemptDriver<'a> {
    tasks: Vec<(TaskId, Sender<TaskControl>)>,
    events: Receiver<TaskEvent>,
    checkpoints: Option<Checkpoints<'a>>,
    run: &'a RunConfig,
    commands: &'a JobCommands,
}

/// Checkpoint coordination, when checkpoints are on.
struct Checkpoints<'a> {
    coordinator: CheckpointCoordinator,
    storage: std::sync::Arc<CheckpointStorage>,
    config: &'a CheckpointConfig,
    job: &'a str,
    /// Parallelism of every chain head, by vertex id.
    parallelism: BTreeMap<String, u32>,
    /// Tasks whose input ended.
    input_ended: usize,
    /// The final checkpoint, once triggered.
    final_checkpoint: Option<CheckpointId>,
    /// The checkpoint of a stop with savepoint, once triggered.
    savepoint: Option<CheckpointId>,
    /// A savepoint the job takes without stopping: (checkpoint, request).
    side_savepoint: Option<(CheckpointId, SavepointRequest)>,
}

/// What the driver does after a checkpoint action.
enum Next {
    Go,
    /// The job's work is complete: tell every task to finish.
    Finish(Option<String>),
    /// Fail the attempt.
    Fail(JobError),
}

impl<'a> AttemptDriver<'a> {
    /// A driver of `tasks` (each with its control queue) that reads
    /// `events`; `checkpoints` is the coordinator and the storage when
    /// checkpoints are on.
    pub(crate) fn new(
        tasks: Vec<(TaskId, Sender<TaskControl>)>,
        events: Receiver<TaskEvent>,
        checkpoints: Option<AttemptCheckpoints>,
        run: &'a RunConfig,
        commands: &'a JobCommands,
        job: &'a str,
    ) -> Self {
        Self {
            tasks,
            events,
            checkpoints: checkpoints.map(|c| Checkpoints {
                coordinator: c.coordinator,
                storage: c.storage,
                config: &run.checkpoints,
                job,
                parallelism: c.parallelism,
                input_ended: 0,
                final_checkpoint: None,
                savepoint: None,
                side_savepoint: None,
            }),
            run,
            commands,
        }
    }

    fn broadcast(&self, message: TaskControl) {
        for (_, tx) in &self.tasks {
            // A task that exited has dropped its queue.
            let _ = tx.send(message);
        }
    }

    /// Runs until every task exited. `now_ms` is the attempt's clock
    /// (processing time in ms).
    ///
    /// # Errors
    /// The first task failure, [`JobError::Cancelled`] after the job was
    /// cancelled, [`JobError::CheckpointsFailing`] when checkpoints fail
    /// more often than tolerated, [`JobError::Checkpoint`] when the
    /// savepoint of a stop could not be kept.
    pub(crate) fn run(mut self, now_ms: impl Fn() -> i64) -> Result<Option<String>, JobError> {
        let mut live = self.tasks.len();
        let mut first_error: Option<JobError> = None;
        let mut cancelling = false;
        let mut finishing = false;
        let mut savepoint_path = None;
        while live > 0 {
            if self.commands.is_cancelled() && !cancelling {
                cancelling = true;
                self.broadcast(TaskControl::Cancel);
            }
            let wait = self
                .checkpoints
                .as_ref()
                .and_then(|c| c.coordinator.next_deadline())
                .map_or(50, |d| (d - now_ms()).clamp(1, 50));
            let event = match self.events.recv_timeout(Duration::from_millis(wait as u64)) {
                Ok(event) => Some(event),
                Err(RecvTimeoutError::Timeout) => None,
                // Every task and snapshot worker is gone.
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut action = None;
            match event {
                Some(TaskEvent::Exited { .. }) => live -= 1,
                Some(TaskEvent::Failed { task, error }) => {
                    tracing::debug!("{} failed: {error}", task_name(&task.0, task.1));
                    first_error.get_or_insert(error);
                    if !cancelling {
                        cancelling = true;
                        self.broadcast(TaskControl::Cancel);
                    }
                }
                Some(TaskEvent::InputEnded { .. }) => {
                    if let Some(c) = &mut self.checkpoints {
                        c.input_ended += 1;
                    }
                }
                Some(TaskEvent::Acknowledge {
                    task,
                    checkpoint,
                    ack,
                }) => {
                    if let Some(c) = &mut self.checkpoints {
                        action = c.coordinator.acknowledge(checkpoint, task, ack, now_ms());
                    }
                }
                Some(TaskEvent::Decline {
                    task,
                    checkpoint,
                    reason,
                }) => {
                    if let Some(c) = &mut self.checkpoints {
                        let reason = format!("{}#{} declined: {reason}", task.0, task.1);
                        action = c.coordinator.decline(checkpoint, reason, now_ms());
                    }
                }
                None => {}
            }
            if cancelling || finishing {
                continue;
            }
            let stopping = self.commands.is_stopping();
            let tasks = self.tasks.len();
            let Some(c) = &mut self.checkpoints else {
                continue;
            };
            let action = action.or_else(|| c.next_action(stopping, tasks, self.commands, now_ms()));
            let next = match action {
                None => Next::Go,
                Some(CheckpointAction::Trigger(id)) => {
                    tracing::debug!("triggering checkpoint {id}");
                    self.broadcast(TaskControl::TriggerCheckpoint(id));
                    Next::Go
                }
                Some(action) => {
                    let (next, completed) = c.on_action(action, self.run, self.commands);
                    if let Some(id) = completed {
                        self.broadcast(TaskControl::NotifyCheckpointComplete(id));
                    }
                    next
                }
            };
            match next {
                Next::Go => {}
                Next::Finish(path) => {
                    finishing = true;
                    savepoint_path = path;
                    self.broadcast(TaskControl::Finish);
                }
                Next::Fail(error) => {
                    first_error.get_or_insert(error);
                    cancelling = true;
                    self.broadcast(TaskControl::Cancel);
                }
            }
        }
        let cancelled = self.commands.is_cancelled();
        match first_error {
            // Tasks stopped by a cancel may report what they saw as a
            // failure (a closed channel); the cancel is the cause.
            _ if cancelled => Err(JobError::Cancelled),
            Some(error) => Err(error),
            None => Ok(savepoint_path),
        }
    }
}

impl Checkpoints<'_> {
    /// What to do when no task event asked for anything: a savepoint
    /// asked for, a stop with savepoint, a periodic checkpoint, the final
    /// checkpoint, or watching the final checkpoint's timeout.
    fn next_action(
        &mut self,
        stopping: bool,
        tasks: usize,
        commands: &JobCommands,
        now_ms: i64,
    ) -> Option<CheckpointAction> {
        if self.side_savepoint.is_none()
            && !stopping
            && self.savepoint.is_none()
            && self.final_checkpoint.is_none()
            && self.input_ended < tasks
            && let Some(request) = commands.savepoints.next()
        {
            match self.coordinator.trigger_now(now_ms) {
                Some(id) => {
                    self.side_savepoint = Some((id, request));
                    return Some(CheckpointAction::Trigger(id));
                }
                // After the checkpoint in flight.
                None => commands.savepoints.put_back(request),
            }
        }
        if stopping && self.savepoint.is_none() && self.final_checkpoint.is_none() {
            // Stop with savepoint: a checkpoint now (after the one in
            // flight, if any), then the job ends.
            let id = self.coordinator.trigger_now(now_ms)?;
            self.savepoint = Some(id);
            return Some(CheckpointAction::Trigger(id));
        }
        if self.input_ended < tasks && self.savepoint.is_none() {
            return self.coordinator.tick(now_ms);
        }
        if self.final_checkpoint.is_none() && self.coordinator.pending().is_none() {
            let id = self.coordinator.trigger_now(now_ms)?;
            self.final_checkpoint = Some(id);
            return Some(CheckpointAction::Trigger(id));
        }
        // Only the final checkpoint's timeout remains to watch.
        self.coordinator
            .tick(now_ms)
            .filter(|a| !matches!(a, CheckpointAction::Trigger(_)))
    }

    /// Carries out a completion, an abort or a job failure; returns what
    /// the driver does next and the checkpoint that completed, if one did.
    fn on_action(
        &mut self,
        action: CheckpointAction,
        run: &RunConfig,
        commands: &JobCommands,
    ) -> (Next, Option<CheckpointId>) {
        match action {
            CheckpointAction::Trigger(_) => (Next::Go, None),
            CheckpointAction::Complete { id, acks, stats } => {
                if let Err(e) = self.write_metadata(id, acks) {
                    // The state is written but cannot be found again: the
                    // checkpoint does not count; a final checkpoint or a
                    // stop's savepoint is taken again.
                    tracing::warn!("checkpoint {id} failed: {e}");
                    if self.final_checkpoint == Some(id) {
                        self.final_checkpoint = None;
                    }
                    if self.savepoint == Some(id) {
                        self.savepoint = None;
                    }
                    if let Some((_, request)) = self.side_savepoint.take_if(|(s, _)| *s == id) {
                        commands.savepoints.finish(
                            request.id,
                            Err(format!("checkpoint {id} for the savepoint failed: {e}")),
                        );
                    }
                    return (Next::Go, None);
                }
                tracing::info!(
                    "checkpoint {id} completed in {} ms ({} bytes written, {} bytes in all; longest alignment {} ms)",
                    stats.duration_ms,
                    stats.size_bytes,
                    stats.full_size_bytes,
                    stats.max_alignment_ms
                );
                run.metrics
                    .record_checkpoint(stats, run.checkpoints.stats_history);
                if self.final_checkpoint == Some(id) {
                    return (Next::Finish(None), Some(id));
                }
                if let Some((_, request)) = self.side_savepoint.take_if(|(s, _)| *s == id) {
                    let kept = self.copy_savepoint(id, request.target.clone());
                    commands
                        .savepoints
                        .finish(request.id, kept.map_err(|e| e.to_string()));
                }
                if self.savepoint == Some(id) {
                    return match self.copy_savepoint(id, commands.savepoint_target()) {
                        Ok(path) => (Next::Finish(Some(path)), Some(id)),
                        Err(e) => (
                            Next::Fail(JobError::Checkpoint(format!(
                                "checkpoint {id} completed but could not be kept as a savepoint: {e}"
                            ))),
                            Some(id),
                        ),
                    };
                }
                (Next::Go, Some(id))
            }
            CheckpointAction::Abort { id, reason } => {
                tracing::warn!("checkpoint {id} aborted: {reason}");
                if self.final_checkpoint == Some(id) {
                    self.final_checkpoint = None;
                }
                if self.savepoint == Some(id) {
                    self.savepoint = None; // try again
                }
                if let Some((_, request)) = self.side_savepoint.take_if(|(s, _)| *s == id) {
                    commands.savepoints.finish(
                        request.id,
                        Err(format!(
                            "checkpoint {id} for the savepoint aborted: {reason}"
                        )),
                    );
                }
                (Next::Go, None)
            }
            CheckpointAction::FailJob(reason) => {
                (Next::Fail(JobError::CheckpointsFailing(reason)), None)
            }
        }
    }

    /// Copies completed checkpoint `id` to `target` (default
    /// `state.savepoints.dir`); returns the savepoint's location.
    fn copy_savepoint(
        &self,
        id: CheckpointId,
        target: Option<String>,
    ) -> Result<String, StorageError> {
        let mut at = self.config.clone();
        at.dir = target.unwrap_or_else(|| self.config.savepoint_dir.clone());
        let target = CheckpointStorage::open(&at, self.job)?;
        self.storage.copy_checkpoint(id, &target)
    }

    fn write_metadata(
        &self,
        id: CheckpointId,
        acks: BTreeMap<TaskId, Acknowledgement>,
    ) -> Result<(), StorageError> {
        let tasks = acks
            .into_iter()
            .map(|((vertex, index), ack)| {
                (
                    task_name(&vertex, index),
                    SubtaskState {
                        file: ack.state,
                        size_bytes: ack.full_size_bytes,
                        shared: ack.shared,
                        crc32: ack.state_crc32,
                    },
                )
            })
            .collect();
        let metadata = CheckpointMetadata {
            version: 1,
            job: self.job.to_string(),
            id,
            completed_ms: crate::manager::now_ms(),
            parallelism: self.parallelism.clone(),
            tasks,
        };
        self.storage.complete(&metadata, self.config.num_retained)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    /// Plays the tasks' side of the control plane: hands every control
    /// message to `answer`, which may send events back.
    struct FakeTasks {
        controls: Vec<(TaskId, Receiver<TaskControl>)>,
        events: Sender<TaskEvent>,
    }

    impl FakeTasks {
        fn next(&self, task: usize) -> TaskControl {
            self.controls[task]
                .1
                .recv_timeout(Duration::from_secs(10))
                .expect("a control message")
        }

        fn send(&self, event: TaskEvent) {
            self.events.send(event).unwrap();
        }

        fn task(&self, i: usize) -> TaskId {
            self.controls[i].0.clone()
        }
    }

    /// The driver's queue ends, the fake tasks' ends, and the checkpoint
    /// side when checkpoints are on.
    type Setup = (
        Vec<(TaskId, Sender<TaskControl>)>,
        Receiver<TaskEvent>,
        FakeTasks,
        Option<AttemptCheckpoints>,
    );

    /// `tasks` subtasks of vertex `v`; with `storage`, checkpoints on.
    fn setup(run: &RunConfig, storage: Option<&Arc<CheckpointStorage>>, tasks: usize) -> Setup {
        let ids: Vec<TaskId> = (0..tasks).map(|i| ("v".to_string(), i as u32)).collect();
        let (events_tx, events) = crossbeam_channel::unbounded();
        let mut senders = Vec::new();
        let mut controls = Vec::new();
        for id in &ids {
            let (tx, rx) = crossbeam_channel::unbounded();
            senders.push((id.clone(), tx));
            controls.push((id.clone(), rx));
        }
        let checkpoints = storage.map(|storage| AttemptCheckpoints {
            coordinator: CheckpointCoordinator::new(run.checkpoints.clone(), ids.clone(), 1, 0),
            storage: Arc::clone(storage),
            parallelism: BTreeMap::from([("v".to_string(), tasks as u32)]),
        });
        (
            senders,
            events,
            FakeTasks {
                controls,
                events: events_tx,
            },
            checkpoints,
        )
    }

    fn checkpointed_run(dir: &std::path::Path) -> RunConfig {
        let mut run = RunConfig::new(HashMap::new(), PathBuf::from("unused"));
        run.checkpoints.dir = dir.display().to_string();
        run.checkpoints.interval_ms = Some(3_600_000);
        run
    }

    fn ack(task: TaskId, checkpoint: CheckpointId) -> TaskEvent {
        TaskEvent::Acknowledge {
            task,
            checkpoint,
            ack: Acknowledgement::default(),
        }
    }

    /// A bounded job's whole life over messages: both tasks end their
    /// input, the driver triggers the final checkpoint, both acknowledge,
    /// the driver writes `_metadata`, notifies completion, tells them to
    /// finish, and returns once both exited.
    #[test]
    fn final_checkpoint_completes_over_messages_and_the_tasks_finish() {
        let dir = tempfile::tempdir().unwrap();
        let run = checkpointed_run(dir.path());
        let storage = Arc::new(CheckpointStorage::open(&run.checkpoints, "job").unwrap());
        let parallelism = BTreeMap::from([("v".to_string(), 2)]);
        let (senders, events, fake, checkpoints) = setup(&run, Some(&storage), 2);
        let commands = JobCommands::default();
        let result = std::thread::scope(|scope| {
            let driver = AttemptDriver::new(senders, events, checkpoints, &run, &commands, "job");
            let handle = scope.spawn(move || driver.run(|| 0));
            for i in 0..2 {
                fake.send(TaskEvent::InputEnded { task: fake.task(i) });
            }
            for i in 0..2 {
                assert_eq!(fake.next(i), TaskControl::TriggerCheckpoint(1));
                fake.send(ack(fake.task(i), 1));
            }
            for i in 0..2 {
                assert_eq!(fake.next(i), TaskControl::NotifyCheckpointComplete(1));
                assert_eq!(fake.next(i), TaskControl::Finish);
                fake.send(TaskEvent::Exited { task: fake.task(i) });
            }
            handle.join().unwrap()
        });
        assert_eq!(result.unwrap(), None);
        let metadata = storage.load(1).expect("checkpoint 1 is complete");
        assert_eq!(metadata.tasks.len(), 2);
        assert_eq!(metadata.parallelism, parallelism);
        assert_eq!(run.metrics.checkpoints().completed(), 1);
    }

    /// A task failure reaches the driver as a message with its kind; the
    /// driver cancels every other task and returns that failure.
    #[test]
    fn a_failed_task_cancels_the_others_and_its_error_keeps_its_kind() {
        let run = RunConfig::new(HashMap::new(), PathBuf::from("unused"));
        let (senders, events, fake, _) = setup(&run, None, 3);
        let commands = JobCommands::default();
        let result = std::thread::scope(|scope| {
            let driver = AttemptDriver::new(senders, events, None, &run, &commands, "job");
            let handle = scope.spawn(move || driver.run(|| 0));
            fake.send(TaskEvent::Failed {
                task: fake.task(1),
                error: JobError::Task {
                    vertex: "v".into(),
                    index: 1,
                    parallelism: 3,
                    origin: None,
                    kind: weir_task::TaskFailureKind::MemoryLimit,
                    message: "the UDF exceeded its memory limit".into(),
                },
            });
            fake.send(TaskEvent::Exited { task: fake.task(1) });
            for i in [0, 2] {
                assert_eq!(fake.next(i), TaskControl::Cancel);
                fake.send(TaskEvent::Exited { task: fake.task(i) });
            }
            handle.join().unwrap()
        });
        let error = result.unwrap_err();
        assert_eq!(error.kind(), Some(weir_task::TaskFailureKind::MemoryLimit));
        assert!(error.to_string().contains("memory limit"), "{error}");
    }

    /// A declined checkpoint is aborted (not completed); the next trigger
    /// gets a new id.
    #[test]
    fn a_declined_checkpoint_is_not_completed() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = checkpointed_run(dir.path());
        run.checkpoints.interval_ms = Some(1);
        run.checkpoints.min_pause_ms = 0;
        run.checkpoints.tolerable_failures = 1;
        let storage = Arc::new(CheckpointStorage::open(&run.checkpoints, "job").unwrap());
        let (senders, events, fake, checkpoints) = setup(&run, Some(&storage), 1);
        let commands = JobCommands::default();
        let clock = std::sync::atomic::AtomicI64::new(0);
        std::thread::scope(|scope| {
            let driver = AttemptDriver::new(senders, events, checkpoints, &run, &commands, "job");
            let clock = &clock;
            let handle =
                scope.spawn(move || driver.run(|| clock.load(std::sync::atomic::Ordering::SeqCst)));
            clock.store(10, std::sync::atomic::Ordering::SeqCst);
            assert_eq!(fake.next(0), TaskControl::TriggerCheckpoint(1));
            fake.send(TaskEvent::Decline {
                task: fake.task(0),
                checkpoint: 1,
                reason: "disk full".into(),
            });
            clock.store(20, std::sync::atomic::Ordering::SeqCst);
            assert_eq!(fake.next(0), TaskControl::TriggerCheckpoint(2));
            fake.send(ack(fake.task(0), 2));
            assert_eq!(fake.next(0), TaskControl::NotifyCheckpointComplete(2));
            fake.send(TaskEvent::Exited { task: fake.task(0) });
            handle.join().unwrap().unwrap();
        });
        assert!(storage.load(1).is_err(), "checkpoint 1 was declined");
        assert!(storage.load(2).is_ok());
    }
}
