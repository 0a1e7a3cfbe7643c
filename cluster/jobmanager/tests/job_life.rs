//! A job's whole life, driven without threads, sockets or sleeps: the job
//! state machine (`JobLifecycle`) and the checkpoint coordinator
//! (`CheckpointCoordinator`) fed the same injected clock, the way the
//! JobManager feeds them messages from its tasks.

#![allow(clippy::unwrap_used)]

use weir_checkpoint::{
    Acknowledgement, CheckpointAction, CheckpointConfig, CheckpointCoordinator, CheckpointId,
    RestartStrategy,
};
use weir_jobmanager::lifecycle::{Action, Event, FailureKind, JobLifecycle, JobStatus};

fn tasks() -> Vec<(String, u32)> {
    vec![("readings".into(), 0), ("alerts".into(), 0)]
}

fn config() -> CheckpointConfig {
    let mut config = CheckpointConfig::default();
    config
        .set("execution.checkpointing.interval", "100ms")
        .unwrap();
    config
}

fn ack() -> Acknowledgement {
    Acknowledgement {
        state: Some("s".into()),
        shared: Vec::new(),
        size_bytes: 10,
        full_size_bytes: 10,
        alignment_ms: 0,
        state_crc32: None,
    }
}

/// Both tasks acknowledge checkpoint `id` at `now`: it completes.
fn complete(coordinator: &mut CheckpointCoordinator, id: CheckpointId, now: i64) {
    let mut last = None;
    for task in tasks() {
        last = coordinator.acknowledge(id, task, ack(), now);
    }
    assert!(
        matches!(last, Some(CheckpointAction::Complete { id: done, .. }) if done == id),
        "{last:?}"
    );
}

#[test]
fn submit_checkpoint_fail_restart_from_the_checkpoint_then_stop_with_a_savepoint() {
    let strategy = RestartStrategy::FixedDelay {
        attempts: 2,
        delay_ms: 50,
    };
    let mut job = JobLifecycle::new(strategy, 0);
    assert_eq!(job.status(), JobStatus::Created);

    // Slots granted: attempt 0 is deployed, its coordinator starts at 1.
    assert_eq!(
        job.handle(Event::SlotsGranted, 10).unwrap(),
        vec![Action::Deploy { attempt: 0 }]
    );
    let mut coordinator = CheckpointCoordinator::new(config(), tasks(), 1, 10);
    assert_eq!(coordinator.tick(109), None);
    assert!(matches!(
        coordinator.tick(110),
        Some(CheckpointAction::Trigger(1))
    ));
    complete(&mut coordinator, 1, 120);
    let latest = coordinator.history().latest().unwrap().id;

    // A task fails: RESTARTING, redeployed after the delay.
    let actions = job
        .handle(
            Event::AttemptFailed {
                kind: FailureKind::Task,
                cause: Some("trap".into()),
                message: "zscore (subtask 0 of 1) failed: wasm trap".into(),
            },
            150,
        )
        .unwrap();
    assert!(actions.is_empty());
    assert_eq!(job.status(), JobStatus::Restarting);
    assert_eq!(job.poll(199), None);
    assert_eq!(job.poll(200), Some(Action::Deploy { attempt: 1 }));
    // Attempt 1 restores checkpoint 1; new checkpoint ids continue after it.
    let mut coordinator = CheckpointCoordinator::new(config(), tasks(), latest + 1, 200);
    assert!(matches!(
        coordinator.tick(300),
        Some(CheckpointAction::Trigger(2))
    ));
    complete(&mut coordinator, 2, 305);

    // Stop with savepoint: a checkpoint at once, then the attempt ends.
    let savepoint = coordinator.trigger_now(310).unwrap();
    assert_eq!(savepoint, 3);
    complete(&mut coordinator, savepoint, 320);
    let actions = job
        .handle(
            Event::AttemptFinished {
                savepoint: Some(format!("/savepoints/job/chk-{savepoint}")),
            },
            330,
        )
        .unwrap();
    assert_eq!(actions, vec![Action::ReleaseSlots]);
    assert_eq!(job.status(), JobStatus::Canceled);
    assert_eq!(job.savepoint(), Some("/savepoints/job/chk-3"));
    assert_eq!(job.exceptions().len(), 1);
    assert_eq!(job.entered(JobStatus::Restarting), Some(150));
    assert_eq!(job.entered(JobStatus::Running), Some(200));
}

#[test]
fn failing_checkpoints_fail_the_job_when_no_restart_is_left() {
    let mut job = JobLifecycle::new(RestartStrategy::None, 0);
    job.handle(Event::SlotsGranted, 0).unwrap();
    let mut config = config();
    config
        .set("execution.checkpointing.timeout", "50ms")
        .unwrap();
    let mut coordinator = CheckpointCoordinator::new(config, tasks(), 1, 0);
    assert!(matches!(
        coordinator.tick(100),
        Some(CheckpointAction::Trigger(1))
    ));
    // Only one task acknowledges; the checkpoint expires and, with no
    // failure tolerated, fails the job.
    coordinator.acknowledge(1, tasks()[0].clone(), ack(), 110);
    let Some(CheckpointAction::FailJob(reason)) = coordinator.tick(150) else {
        panic!("the expired checkpoint should fail the job");
    };
    let actions = job
        .handle(
            Event::AttemptFailed {
                kind: FailureKind::Checkpoints,
                cause: None,
                message: reason,
            },
            150,
        )
        .unwrap();
    assert_eq!(actions, vec![Action::ReleaseSlots]);
    assert_eq!(job.status(), JobStatus::Failed);
    assert!(
        job.exceptions()[0].message.contains("expired"),
        "{:?}",
        job.exceptions()
    );
}

#[test]
fn cancel_while_running_waits_for_the_tasks_then_refuses_a_second_cancel() {
    let mut job = JobLifecycle::new(RestartStrategy::None, 0);
    job.handle(Event::SlotsGranted, 0).unwrap();
    assert_eq!(
        job.handle(Event::CancelRequested, 5).unwrap(),
        vec![Action::CancelTasks]
    );
    assert_eq!(job.status(), JobStatus::Cancelling);
    assert_eq!(
        job.handle(Event::AttemptCancelled, 9).unwrap(),
        vec![Action::ReleaseSlots]
    );
    assert_eq!(job.status(), JobStatus::Canceled);
    assert!(job.handle(Event::CancelRequested, 10).is_err());
}
