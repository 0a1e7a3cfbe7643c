//! What the JobManager asks of a running job, shared by the job's driver
//! thread, the REST handlers and the attempt's driver (all in the
//! JobManager's process), which reads it between two events (at most
//! 50 ms apart) and turns it into control messages to the tasks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Cancel, stop with savepoint and savepoint requests of one job.
#[derive(Debug, Default)]
pub struct JobCommands {
    cancel: AtomicBool,
    /// Shared so a signal handler can own it (`weir run` stops with a
    /// savepoint on SIGTERM).
    stop: Arc<AtomicBool>,
    savepoint_target: Mutex<Option<String>>,
    /// Savepoints to take while the job keeps running.
    pub savepoints: SavepointRequests,
}

impl JobCommands {
    /// Commands whose stop flag is `stop` (set from elsewhere, for
    /// example a signal handler).
    pub fn with_stop(stop: Arc<AtomicBool>) -> Self {
        Self {
            stop,
            ..Self::default()
        }
    }

    /// Cancel the job (Flink's cancel: no savepoint).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// Was the job cancelled?
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Stop the job with a savepoint in `target` (default
    /// `state.savepoints.dir`): a checkpoint is taken at once, copied
    /// there, the sinks commit it, and the job ends.
    pub fn stop_with_savepoint(&self, target: Option<String>) {
        *self
            .savepoint_target
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = target;
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Was a stop with savepoint asked for?
    pub fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Where the stop's savepoint goes (`None`: `state.savepoints.dir`).
    pub fn savepoint_target(&self) -> Option<String> {
        self.savepoint_target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A savepoint asked for while the job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavepointRequest {
    /// The caller's id for it.
    pub id: u64,
    /// Where it goes (default `state.savepoints.dir`).
    pub target: Option<String>,
}

/// Savepoints asked for and their outcomes, shared between the caller
/// (the JobManager's REST API) and the attempt's driver, which takes one request at a time between checkpoints.
#[derive(Debug, Default)]
pub struct SavepointRequests {
    state: Mutex<SavepointQueue>,
}

#[derive(Debug, Default)]
struct SavepointQueue {
    waiting: std::collections::VecDeque<SavepointRequest>,
    done: std::collections::BTreeMap<u64, Result<String, String>>,
}

impl SavepointRequests {
    fn lock(&self) -> std::sync::MutexGuard<'_, SavepointQueue> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for a savepoint.
    pub fn request(&self, request: SavepointRequest) {
        self.lock().waiting.push_back(request);
    }

    /// The outcome of request `id`: `None` while it is waiting or being
    /// taken, then its location or why it failed.
    pub fn outcome(&self, id: u64) -> Option<Result<String, String>> {
        self.lock().done.get(&id).cloned()
    }

    /// Fails every request still waiting (the job ended before it).
    pub fn fail_waiting(&self, reason: &str) {
        let mut queue = self.lock();
        while let Some(request) = queue.waiting.pop_front() {
            queue.done.insert(request.id, Err(reason.to_string()));
        }
    }

    /// Takes the oldest waiting request (the attempt's driver, between
    /// checkpoints).
    pub fn next(&self) -> Option<SavepointRequest> {
        self.lock().waiting.pop_front()
    }

    /// Puts a taken request back first in line (a checkpoint was in flight).
    pub fn put_back(&self, request: SavepointRequest) {
        self.lock().waiting.push_front(request);
    }

    /// Records the outcome of request `id`: the savepoint's location or
    /// why it failed.
    pub fn finish(&self, id: u64, outcome: Result<String, String>) {
        self.lock().done.insert(id, outcome);
    }
}
