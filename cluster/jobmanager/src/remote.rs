//! Attempts on TaskManagers: the JobManager plans an attempt, allocates
//! its slots over the registered TaskManagers, ships each one its share
//! (`Deploy`), and drives the attempt with the same [`AttemptDriver`] as a
//! local one. Each remote task gets a proxy control queue whose messages
//! travel as `Control` to its TaskManager; the tasks' events come back as
//! `Event`s and are fed into the attempt's event queue; a TaskManager that
//! is lost fails (and ends) every task it ran.
//!
//! [`AttemptDriver`]: crate::attempt::AttemptDriver

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crossbeam_channel::Sender;
use tokio::sync::mpsc::UnboundedSender;
use weir_rpc::{AttemptId, ControlMessage, TaskManagerId};
use weir_task::control::{TaskControl, TaskEvent};
use weir_task::executor::AttemptShare;
use weir_task::wire::WireEvent;
use weir_task::{
    JobError, JobMetrics, MetricsSnapshot, ResolvedCheckpoint, RunConfig, TaskFailureKind, TaskId,
};
use weir_types::jobgraph::JobGraph;

use crate::attempt::AttemptDriver;
use crate::commands::JobCommands;
use crate::manager::JobManager;

/// The outbox of each connected TaskManager and the event routes of the
/// attempts running on them.
#[derive(Debug, Default)]
pub struct RemoteAttempts {
    state: Mutex<RoutesState>,
}

#[derive(Debug, Default)]
struct RoutesState {
    outboxes: HashMap<TaskManagerId, UnboundedSender<ControlMessage>>,
    routes: HashMap<AttemptId, Route>,
}

/// Where an attempt's events go, and which of its tasks still run where.
#[derive(Debug)]
struct Route {
    events: Sender<TaskEvent>,
    /// The job's counters, and the last counters each TaskManager sent.
    metrics: std::sync::Arc<JobMetrics>,
    reported: HashMap<TaskManagerId, MetricsSnapshot>,
    parallelism: BTreeMap<String, u32>,
    running: HashMap<TaskId, TaskManagerId>,
}

impl Route {
    /// Fails and ends every task still running on `tm`.
    fn lose(&mut self, tm: &TaskManagerId, why: &str) {
        let lost: Vec<TaskId> = self
            .running
            .iter()
            .filter(|(_, at)| *at == tm)
            .map(|(task, _)| task.clone())
            .collect();
        for task in lost {
            self.running.remove(&task);
            let parallelism = self.parallelism.get(&task.0).copied().unwrap_or(1);
            let _ = self.events.send(TaskEvent::Failed {
                task: task.clone(),
                error: JobError::Task {
                    vertex: task.0.clone(),
                    index: task.1,
                    parallelism,
                    origin: None,
                    kind: TaskFailureKind::Io,
                    message: format!("its TaskManager {tm} {why}"),
                },
            });
            let _ = self.events.send(TaskEvent::Exited { task });
        }
    }
}

impl RemoteAttempts {
    fn lock(&self) -> std::sync::MutexGuard<'_, RoutesState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A TaskManager registered; messages for it go to `outbox`.
    pub fn connected(&self, tm: &TaskManagerId, outbox: UnboundedSender<ControlMessage>) {
        self.lock().outboxes.insert(tm.clone(), outbox);
    }

    /// A TaskManager was lost: every task it ran fails.
    pub fn lost(&self, tm: &TaskManagerId, cause: &str) {
        let mut state = self.lock();
        state.outboxes.remove(tm);
        for route in state.routes.values_mut() {
            route.lose(tm, &format!("was lost: {cause}"));
        }
    }

    /// An event of a task on `tm`.
    pub fn event(&self, tm: &TaskManagerId, attempt: &AttemptId, event: WireEvent) {
        let mut state = self.lock();
        let Some(route) = state.routes.get_mut(attempt) else {
            // An attempt that ended (its late events) or never was.
            return;
        };
        let task = match &event {
            WireEvent::Acknowledge { task, .. }
            | WireEvent::Decline { task, .. }
            | WireEvent::InputEnded { task }
            | WireEvent::Failed { task, .. }
            | WireEvent::Exited { task } => task.clone(),
        };
        if route.running.get(&task) != Some(tm) {
            tracing::warn!("ignoring an event of {task:?} from {tm}, which does not run it");
            return;
        }
        if matches!(event, WireEvent::Exited { .. }) {
            route.running.remove(&task);
        }
        let parallelism = route.parallelism.get(&task.0).copied().unwrap_or(1);
        let _ = route
            .events
            .send(weir_task::wire::into_event(event, parallelism));
    }

    /// The counters of `tm`'s share of `attempt`: what changed since its
    /// previous report goes into the job's counters.
    pub fn metrics(&self, tm: &TaskManagerId, attempt: &AttemptId, snapshot: MetricsSnapshot) {
        let mut state = self.lock();
        let Some(route) = state.routes.get_mut(attempt) else {
            return;
        };
        if !route.running.values().any(|at| at == tm) {
            return;
        }
        let before = route.reported.remove(tm).unwrap_or_default();
        route.metrics.absorb(&snapshot, &before);
        route.reported.insert(tm.clone(), snapshot);
    }

    /// Sends `message` to `tm`; `false` when it is not connected.
    fn send(&self, tm: &TaskManagerId, message: ControlMessage) -> bool {
        self.lock()
            .outboxes
            .get(tm)
            .is_some_and(|outbox| outbox.send(message).is_ok())
    }
}

/// How often an attempt waiting for slots looks again.
const SLOT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Makes a local checkpoint directory absolute (TaskManagers run
/// elsewhere, in other working directories); URLs stay as they are.
fn absolute_dir(dir: &str) -> String {
    if dir.contains("://") {
        return dir.to_string();
    }
    std::path::absolute(dir).map_or_else(|_| dir.to_string(), |p| p.display().to_string())
}

/// Runs one attempt of job `job_id` on the JobManager's TaskManagers; like
/// [`crate::attempt::run_attempt`] otherwise.
///
/// Waits while the TaskManagers have fewer free slots than the job needs.
///
/// # Errors
/// As `run_attempt`; a [`JobError::Task`] of kind `io` when a TaskManager
/// is lost; [`JobError::Cancelled`] when the job is cancelled or stopped
/// while it waits for slots.
pub fn run_remote_attempt(
    jm: &JobManager,
    job_id: &str,
    job: &JobGraph,
    config: &RunConfig,
    commands: &JobCommands,
    restored: Option<&ResolvedCheckpoint>,
    attempt: u32,
) -> Result<Option<String>, JobError> {
    let plan = weir_task::plan_attempt(job, config, restored, attempt)?;
    let needed = plan
        .descriptors
        .iter()
        .map(|d| d.parallelism)
        .max()
        .unwrap_or(1);
    // Slots can be missing after a TaskManager was lost: the attempt waits
    // for them (a restart does not count against the restart strategy
    // while it waits), until the job is cancelled or stopped.
    let mut waiting = false;
    let (slots, addresses) = loop {
        {
            let mut registry = jm.taskmanager_registry();
            if let Some(slots) = registry.allocate(needed) {
                let addresses: Vec<String> = slots
                    .iter()
                    .map(|id| registry.address(id).unwrap_or_default().to_string())
                    .collect();
                break (slots, addresses);
            }
            let reason = format!(
                "waits for slots: it needs {needed}, {} of {} are free on {} TaskManager(s)",
                registry.slots_free(),
                registry.slots_total(),
                registry.len()
            );
            drop(registry);
            jm.set_attempt_waiting(job_id, Some(reason.clone()));
            if !waiting {
                tracing::warn!("job `{}` {reason}", job.name);
                waiting = true;
            }
        }
        if commands.is_cancelled() || commands.is_stopping() {
            jm.set_attempt_waiting(job_id, None);
            return Err(JobError::Cancelled);
        }
        std::thread::sleep(SLOT_POLL);
    };
    if waiting {
        jm.set_attempt_waiting(job_id, None);
    }
    let result = drive(
        jm, job_id, job, config, commands, restored, attempt, plan, &slots, &addresses,
    );
    jm.taskmanager_registry().release(&slots);
    result
}

#[expect(clippy::too_many_arguments, reason = "one attempt's whole context")]
fn drive(
    jm: &JobManager,
    job_id: &str,
    job: &JobGraph,
    config: &RunConfig,
    commands: &JobCommands,
    restored: Option<&ResolvedCheckpoint>,
    attempt: u32,
    plan: weir_task::AttemptPlan,
    slots: &[TaskManagerId],
    addresses: &[String],
) -> Result<Option<String>, JobError> {
    let remote = jm.remote_attempts();
    let id = AttemptId {
        epoch: jm.epoch(),
        job: job_id.to_string(),
        attempt,
    };
    let slot_of = |index: u32| (index as usize) % slots.len().max(1);
    let mut placement: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut parallelism = BTreeMap::new();
    for d in &plan.descriptors {
        parallelism.insert(d.task.vertex.clone(), d.parallelism);
        placement.entry(d.task.vertex.clone()).or_insert_with(|| {
            (0..d.parallelism)
                .map(|i| addresses[slot_of(i)].clone())
                .collect()
        });
    }
    // Components by content: the artifact store names them `<sha256>.wasm`.
    let artifacts: BTreeMap<String, String> = config
        .udfs
        .iter()
        .filter_map(|(op, path)| {
            let stem = path.file_stem()?.to_str()?;
            (stem.len() == 64).then(|| (op.clone(), stem.to_string()))
        })
        .collect();
    let mut checkpoints = config.checkpoints.clone();
    checkpoints.dir = absolute_dir(&checkpoints.dir);
    checkpoints.savepoint_dir = absolute_dir(&checkpoints.savepoint_dir);

    let (events, events_rx) = crossbeam_channel::unbounded();
    let mut shares: BTreeMap<TaskManagerId, Vec<_>> = BTreeMap::new();
    let mut running = HashMap::new();
    for d in plan.descriptors {
        let tm = slots[slot_of(d.task.index)].clone();
        running.insert((d.task.vertex.clone(), d.task.index), tm.clone());
        shares.entry(tm).or_default().push(d);
    }
    let mut tasks = Vec::new();
    for (tm, descriptors) in &shares {
        for d in descriptors {
            let task: TaskId = (d.task.vertex.clone(), d.task.index);
            let (control, control_rx) = crossbeam_channel::unbounded::<TaskControl>();
            let (remote, tm, id, forwarded) = (
                std::sync::Arc::clone(&remote),
                tm.clone(),
                id.clone(),
                task.clone(),
            );
            // Ends when the driver drops the proxy's sender.
            std::thread::spawn(move || {
                for message in control_rx {
                    remote.send(
                        &tm,
                        ControlMessage::Control {
                            attempt: id.clone(),
                            task: forwarded.clone(),
                            control: message,
                        },
                    );
                }
            });
            tasks.push((task, control));
        }
    }
    remote.lock().routes.insert(
        id.clone(),
        Route {
            events,
            metrics: std::sync::Arc::clone(&config.metrics),
            reported: HashMap::new(),
            parallelism,
            running,
        },
    );
    for (tm, descriptors) in shares {
        let share_tasks: Vec<TaskId> = descriptors
            .iter()
            .map(|d| (d.task.vertex.clone(), d.task.index))
            .collect();
        let share = AttemptShare {
            job_name: job.name.clone(),
            attempt,
            checkpoints: checkpoints.clone(),
            channel_capacity: u32::try_from(config.channel_capacity).unwrap_or(u32::MAX),
            splits: plan.splits.clone(),
            restore: restored.map(ResolvedCheckpoint::handle),
            placement: placement.clone(),
            descriptors,
            poison_records: config.poison_records.clone(),
        };
        let sent = match serde_json::to_string(&share) {
            Ok(share_json) => remote.send(
                &tm,
                ControlMessage::Deploy {
                    attempt: id.clone(),
                    share_json,
                    tasks: share_tasks,
                    artifacts: artifacts.clone(),
                },
            ),
            Err(e) => {
                tracing::warn!("cannot encode a deployment: {e}");
                false
            }
        };
        if !sent && let Some(route) = remote.lock().routes.get_mut(&id) {
            route.lose(&tm, "is not connected");
        }
    }
    let started = std::time::Instant::now();
    let result = AttemptDriver::new(
        tasks,
        events_rx,
        plan.checkpoints,
        config,
        commands,
        &job.name,
    )
    .run(|| i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX));
    remote.lock().routes.remove(&id);
    result
}

#[cfg(test)]
mod tests {
    use weir_task::TaskFailureKind;
    use weir_task::control::TaskEvent;
    use weir_task::wire::WireEvent;

    use super::*;

    fn tm(n: u32) -> TaskManagerId {
        TaskManagerId(format!("tm-{n}"))
    }

    fn attempt() -> AttemptId {
        AttemptId {
            epoch: 1,
            job: "j".into(),
            attempt: 0,
        }
    }

    /// Two TaskManagers running `map#0` (tm-1) and `map#1` (tm-2), and the
    /// attempt's event queue.
    fn routed() -> (RemoteAttempts, crossbeam_channel::Receiver<TaskEvent>) {
        let remote = RemoteAttempts::default();
        for n in [1, 2] {
            let (outbox, _inbox) = tokio::sync::mpsc::unbounded_channel();
            remote.connected(&tm(n), outbox);
        }
        let (events, events_rx) = crossbeam_channel::unbounded();
        remote.lock().routes.insert(
            attempt(),
            Route {
                events,
                metrics: std::sync::Arc::new(JobMetrics::new()),
                reported: HashMap::new(),
                parallelism: BTreeMap::from([("map".to_string(), 2)]),
                running: HashMap::from([
                    (("map".to_string(), 0), tm(1)),
                    (("map".to_string(), 1), tm(2)),
                ]),
            },
        );
        (remote, events_rx)
    }

    #[test]
    fn acknowledgements_from_both_taskmanagers_reach_the_driver_and_strangers_are_ignored() {
        let (remote, events) = routed();
        let ack = |task: u32| WireEvent::Acknowledge {
            task: ("map".into(), task),
            checkpoint: 3,
            ack: weir_checkpoint::Acknowledgement::default(),
        };
        remote.event(&tm(1), &attempt(), ack(0));
        // tm-1 does not run map#1: its word about it is not taken.
        remote.event(&tm(1), &attempt(), ack(1));
        remote.event(&tm(2), &attempt(), ack(1));
        let got: Vec<(String, u32)> = events
            .try_iter()
            .map(|e| match e {
                TaskEvent::Acknowledge {
                    task,
                    checkpoint: 3,
                    ..
                } => task,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, vec![("map".to_string(), 0), ("map".to_string(), 1)]);
    }

    #[test]
    fn a_lost_taskmanager_fails_and_ends_each_of_its_tasks_once() {
        let (remote, events) = routed();
        remote.event(
            &tm(2),
            &attempt(),
            WireEvent::Exited {
                task: ("map".into(), 1),
            },
        );
        remote.lost(&tm(1), "no heartbeat for 1050 ms");
        remote.lost(&tm(1), "again");
        // A late event of the lost TaskManager changes nothing.
        remote.event(
            &tm(1),
            &attempt(),
            WireEvent::Exited {
                task: ("map".into(), 0),
            },
        );
        let got: Vec<TaskEvent> = events.try_iter().collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(matches!(&got[0], TaskEvent::Exited { task } if task.1 == 1));
        match &got[1] {
            TaskEvent::Failed { task, error } => {
                assert_eq!(task, &("map".to_string(), 0));
                assert_eq!(error.kind(), Some(TaskFailureKind::Io));
                assert!(error.to_string().contains("tm-1 was lost"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&got[2], TaskEvent::Exited { task } if task.1 == 0));
        // It can no longer be sent to.
        assert!(!remote.send(&tm(1), ControlMessage::Heartbeat));
    }

    #[test]
    fn metrics_of_each_taskmanager_count_once() {
        let (remote, _events) = routed();
        let metrics = std::sync::Arc::clone(&remote.lock().routes[&attempt()].metrics);
        let snapshot = |read| MetricsSnapshot {
            records_read: read,
            ..MetricsSnapshot::default()
        };
        remote.metrics(&tm(1), &attempt(), snapshot(10));
        remote.metrics(&tm(2), &attempt(), snapshot(5));
        remote.metrics(&tm(1), &attempt(), snapshot(12));
        // A TaskManager that runs nothing of the attempt is not counted.
        remote.metrics(&tm(9), &attempt(), snapshot(100));
        assert_eq!(metrics.records_read(), 17);
    }
}
