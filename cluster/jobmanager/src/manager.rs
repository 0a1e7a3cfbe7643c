//! The JobManager: accepts jobs, schedules them into slots, runs each
//! attempt on the local TaskManager, and applies the job state machine
//! ([`JobLifecycle`]) to what the attempts report.
//!
//! Every job has one driver thread that deploys its attempts and waits
//! out restart delays; everything it decides comes from the state machine,
//! so this file only carries messages between it, the slot pool and the
//! tasks. A job is persisted under `<ha>/jobs/<id>/job.json` at every
//! change of status; a JobManager started on the same directory resumes
//! the jobs that had not ended from their latest completed checkpoints.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use weir_checkpoint::CheckpointConfig;
use weir_task::{JobError, JobMetrics, Restore, RunConfig};
use weir_types::jobgraph::JobGraph;
use weir_wasm::{RuntimeConfig, WasmRuntime};

use crate::artifacts::{ARTIFACT_PREFIX, ArtifactError, ArtifactInfo, ArtifactStore, check_id};
use crate::commands::{JobCommands, SavepointRequest};
use crate::config::JobManagerConfig;
use crate::lifecycle::{Action, Event, Failure, JobLifecycle, JobStatus};
use crate::remote::RemoteAttempts;
use crate::slots::SlotPool;
use crate::taskmanagers::{TaskManagerInfo, TaskManagerRegistry};
use crate::views::{
    CheckpointView, CheckpointsView, JobCounters, JobDetails, JobOverview, Overview,
    SavepointStatus, VertexInfo,
};

/// Why a request to the JobManager failed; the kind picks the HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum JmError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such job, artifact or request (404).
    #[error("{0}")]
    NotFound(String),
    /// Not possible in the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Too large (413).
    #[error("{0}")]
    TooLarge(String),
    /// The JobManager's own failure (500).
    #[error("{0}")]
    Internal(String),
}

impl From<ArtifactError> for JmError {
    fn from(e: ArtifactError) -> Self {
        match e {
            ArtifactError::Invalid(_) | ArtifactError::BadId(_) => Self::BadRequest(e.to_string()),
            ArtifactError::NotFound(_) => Self::NotFound(e.to_string()),
            ArtifactError::Io { .. } => Self::Internal(e.to_string()),
        }
    }
}

/// Options given with a submission
/// (`POST /v1/jobs?parallelism=&savepointPath=&configuration=`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubmitOptions {
    /// Overrides the job's default parallelism.
    pub parallelism: Option<u32>,
    /// Start from this savepoint (or checkpoint) directory.
    pub savepoint_path: Option<String>,
    /// Configuration keys (checkpointing, restart strategy) that override
    /// the job file's `configuration:` map and the server's defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configuration: BTreeMap<String, String>,
}

/// A job as persisted in `<ha>/jobs/<id>/job.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    id: String,
    name: String,
    /// The job file as submitted.
    text: String,
    options: SubmitOptions,
    submitted_ms: i64,
    status: JobStatus,
    end_ms: Option<i64>,
    attempt: u32,
    exceptions: Vec<Failure>,
    savepoint: Option<String>,
}

impl JobRecord {
    /// A job submitted now, CREATED.
    pub(crate) fn new(name: &str, text: &str, options: SubmitOptions) -> Self {
        Self {
            id: new_id(),
            name: name.to_string(),
            text: text.to_string(),
            options,
            submitted_ms: now_ms(),
            status: JobStatus::Created,
            end_ms: None,
            attempt: 0,
            exceptions: Vec::new(),
            savepoint: None,
        }
    }
}

struct Job {
    record: JobRecord,
    graph: JobGraph,
    /// `None` for a job recovered after it had ended.
    lifecycle: Option<JobLifecycle>,
    slots: u32,
    checkpoints: CheckpointConfig,
    udfs: HashMap<String, PathBuf>,
    /// Where attempt 0 starts from.
    initial: Option<Restore>,
    metrics: Arc<JobMetrics>,
    /// Cancel, stop and savepoint requests, read by the attempt's driver.
    commands: Arc<JobCommands>,
    /// An attempt the driver is to deploy.
    deploy: Option<u32>,
    /// Stop-with-savepoint requests, by request id.
    stop_requests: Vec<String>,
    state_dir: PathBuf,
    /// Failures before this JobManager took the job over (recovery).
    prior_exceptions: Vec<Failure>,
    /// Whether an attempt's tasks are running.
    attempt_running: bool,
    /// Request ids of savepoints taken while the job runs, and their numbers.
    savepoint_requests: BTreeMap<String, u64>,
    /// Why a deployed attempt waits (for TaskManagers' slots), if it does.
    attempt_waiting: Option<String>,
    /// The typed error of the last failed attempt (for `weir run`).
    last_error: Option<JobError>,
    /// Checkpoints an attempt found damaged, by location: later attempts
    /// restore an older one.
    damaged: Arc<Mutex<BTreeSet<String>>>,
    /// Input records a UDF failed on, attempt after attempt.
    poison: Arc<Mutex<crate::poison::PoisonState>>,
}

/// What a job runs with, besides its record: built from a submitted job
/// file by the JobManager, or handed over ready by `weir run`.
pub(crate) struct Admission {
    pub(crate) graph: JobGraph,
    pub(crate) udfs: HashMap<String, PathBuf>,
    pub(crate) checkpoints: CheckpointConfig,
    /// Where attempt 0 starts from.
    pub(crate) initial: Option<Restore>,
    pub(crate) metrics: Arc<JobMetrics>,
    pub(crate) commands: Arc<JobCommands>,
    /// `None`: a fresh directory under the system's temporary directory.
    pub(crate) state_dir: Option<PathBuf>,
}

/// The slots a job needs: its highest vertex parallelism.
pub(crate) fn slots_needed(graph: &JobGraph) -> u32 {
    graph
        .sources
        .iter()
        .map(|s| s.id.as_str())
        .chain(graph.operators.iter().map(|o| o.id.as_str()))
        .chain(graph.sinks.iter().map(|s| s.id.as_str()))
        .filter_map(|id| graph.parallelism_of(id))
        .max()
        .unwrap_or(1)
}

struct State {
    jobs: BTreeMap<String, Job>,
    slots: SlotPool,
}

struct Inner {
    config: JobManagerConfig,
    artifacts: ArtifactStore,
    /// Shared by the uploads' checks and every job's attempts.
    runtime: Arc<WasmRuntime>,
    cache_dir: Option<PathBuf>,
    state: Mutex<State>,
    changed: Condvar,
    /// TaskManagers connected over the cluster endpoint.
    taskmanagers: Mutex<TaskManagerRegistry>,
    /// Their outboxes and the attempts running on them.
    remote: Arc<RemoteAttempts>,
    /// When this JobManager started: the origin of [`JobManager::clock_ms`].
    started: std::time::Instant,
    started_ms: u64,
    /// Whether job records persist under the HA directory (`false` for
    /// the in-process JobManager of `weir run`).
    persistent: bool,
}

/// The JobManager (cheap to clone: a handle).
#[derive(Clone)]
pub struct JobManager {
    inner: Arc<Inner>,
}

/// A map's entries as `(&str, &str)` pairs.
fn pairs(map: &BTreeMap<String, String>) -> Vec<(&str, &str)> {
    map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Wall-clock ms since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn new_id() -> String {
    use sha2::{Digest, Sha256};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = format!(
        "{}-{}-{:?}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now(),
        std::env::temp_dir().display()
    );
    hex::encode(&Sha256::digest(seed.as_bytes())[..16])
}

impl JobManager {
    /// Starts a JobManager on `config.ha_dir`: opens the artifact store and
    /// resumes the persisted jobs that had not ended.
    ///
    /// # Errors
    /// [`JmError::Internal`] when the directory or the Wasm engine cannot
    /// be set up.
    pub fn start(config: JobManagerConfig, cache_dir: Option<PathBuf>) -> Result<Self, JmError> {
        Self::start_with(config, cache_dir, true)
    }

    /// [`JobManager::start`], with job records persisted or not.
    pub(crate) fn start_with(
        config: JobManagerConfig,
        cache_dir: Option<PathBuf>,
        persistent: bool,
    ) -> Result<Self, JmError> {
        let artifacts = ArtifactStore::open(&config.ha_dir.join("artifacts"))?;
        let runtime = WasmRuntime::new(RuntimeConfig {
            cache_dir: cache_dir.clone(),
        })
        .map_err(|e| JmError::Internal(e.to_string()))?;
        // No local slots: the JobManager schedules onto TaskManagers.
        let slots = if config.slots == 0 {
            SlotPool::elastic()
        } else {
            SlotPool::new(config.slots)
        };
        let heartbeat_timeout_ms = config.heartbeat_timeout_ms;
        let jm = Self {
            inner: Arc::new(Inner {
                config,
                artifacts,
                runtime: Arc::new(runtime),
                cache_dir,
                state: Mutex::new(State {
                    jobs: BTreeMap::new(),
                    slots,
                }),
                changed: Condvar::new(),
                taskmanagers: Mutex::new(TaskManagerRegistry::new(
                    heartbeat_timeout_ms,
                    env!("CARGO_PKG_VERSION"),
                )),
                remote: Arc::new(RemoteAttempts::default()),
                started: std::time::Instant::now(),
                started_ms: u64::try_from(now_ms()).unwrap_or(0),
                persistent,
            }),
        };
        if persistent {
            // State directories (`weir-jm-<pid>-<job>`) of JobManagers
            // killed before they could remove them.
            weir_task::leftovers::remove_dead_process_dirs(|name| {
                name.strip_prefix("weir-jm-")?
                    .split('-')
                    .next()?
                    .parse()
                    .ok()
            });
            jm.recover()?;
        }
        Ok(jm)
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &JobManagerConfig {
        &self.inner.config
    }

    /// The TaskManagers connected over the cluster endpoint.
    pub fn taskmanager_registry(&self) -> MutexGuard<'_, TaskManagerRegistry> {
        self.inner
            .taskmanagers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes of artifact `id` (for a TaskManager that runs it).
    ///
    /// # Errors
    /// [`JmError::BadRequest`] for an id that is not a SHA-256,
    /// [`JmError::NotFound`]-like errors when it is not stored.
    pub fn artifact_bytes(&self, id: &str) -> Result<Vec<u8>, JmError> {
        check_id(id)?;
        std::fs::read(self.inner.artifacts.path(id))
            .map_err(|e| JmError::Internal(format!("artifact {id}: {e}")))
    }

    /// This JobManager run's epoch: when it started, ms since the epoch.
    pub fn epoch(&self) -> u64 {
        self.inner.started_ms
    }

    /// Says why job `id`'s attempt waits for slots (`None`: it no longer
    /// does); `GET /v1/jobs/{id}` shows it as `waiting`, and a restart
    /// attempt that waits shows the job RESTARTING.
    pub fn set_attempt_waiting(&self, id: &str, reason: Option<String>) {
        let mut state = self.lock();
        let Some(job) = state.jobs.get_mut(id) else {
            return;
        };
        let event = match (&job.attempt_waiting, &reason) {
            (None, Some(_)) => Some(Event::AwaitingResources),
            (Some(_), None) => Some(Event::ResourcesAcquired),
            _ => None,
        };
        job.attempt_waiting = reason;
        if let Some(event) = event {
            self.apply(&mut state, id, event);
        }
    }

    /// The routes of attempts on TaskManagers.
    pub fn remote_attempts(&self) -> Arc<RemoteAttempts> {
        Arc::clone(&self.inner.remote)
    }

    /// Whether jobs run on TaskManagers (no local slots:
    /// `taskmanager.numberOfTaskSlots` is 0).
    pub fn schedules_on_taskmanagers(&self) -> bool {
        self.inner.config.slots == 0
    }

    /// TaskManagers registered or were lost: the slot pool follows (when
    /// jobs run on them) and waiting jobs are scheduled.
    pub fn taskmanagers_changed(&self) {
        if !self.schedules_on_taskmanagers() {
            return;
        }
        let total = self.taskmanager_registry().slots_total();
        let mut state = self.lock();
        state.slots.set_total(total);
        self.schedule(&mut state);
    }

    /// ms since the epoch, read off a monotonic clock (the wall clock at
    /// start plus the time since), so heartbeat deadlines do not jump
    /// with the wall clock.
    pub fn clock_ms(&self) -> u64 {
        self.inner.started_ms
            + u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Every TaskManager: the JobManager's own slots (`local`, unless it
    /// has none) first, then those registered over the cluster endpoint.
    pub fn taskmanagers(&self) -> Vec<TaskManagerInfo> {
        let (total, available) = {
            let state = self.lock();
            (state.slots.total(), state.slots.available())
        };
        let mut list = Vec::new();
        if !self.schedules_on_taskmanagers() {
            list.push(TaskManagerInfo {
                id: "local".into(),
                host: self.inner.config.rest_address.to_string(),
                address: "in-process".into(),
                slots_total: total,
                slots_free: available,
                registered_ms: self.inner.started_ms,
                last_heartbeat_ago_ms: 0,
            });
        }
        let now = self.clock_ms();
        list.extend(self.taskmanager_registry().list(now));
        list
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn jobs_dir(&self) -> PathBuf {
        self.inner.config.ha_dir.join("jobs")
    }

    fn recover(&self) -> Result<(), JmError> {
        let Ok(entries) = std::fs::read_dir(self.jobs_dir()) else {
            return Ok(());
        };
        let mut records: Vec<JobRecord> = entries
            .flatten()
            .filter_map(|e| {
                let path = e.path().join("job.json");
                let bytes = std::fs::read(&path).ok()?;
                match serde_json::from_slice(&bytes) {
                    Ok(record) => Some(record),
                    Err(err) => {
                        tracing::warn!("ignoring unreadable job record {}: {err}", path.display());
                        None
                    }
                }
            })
            .collect();
        records.sort_by_key(|r| r.submitted_ms);
        for mut record in records {
            if record.status == JobStatus::Cancelling {
                // Its cancel was asked for before the crash: honour it.
                record.status = JobStatus::Canceled;
                record.end_ms = Some(now_ms());
            }
            let resume = !record.status.is_terminal();
            match self.admit(record, resume) {
                Ok(id) if resume => tracing::info!("resuming job {id}"),
                Ok(_) => {}
                Err(e) => tracing::warn!("cannot resume a persisted job: {e}"),
            }
        }
        Ok(())
    }

    /// Uploads a component: checks it against the Weir worlds and stores
    /// it by content.
    ///
    /// # Errors
    /// [`JmError::TooLarge`] over `rest.upload.max-bytes`,
    /// [`JmError::BadRequest`] for bytes that are not a Weir component.
    pub fn upload(&self, bytes: &[u8]) -> Result<ArtifactInfo, JmError> {
        let max = self.inner.config.upload_max_bytes;
        if bytes.len() as u64 > max {
            return Err(JmError::TooLarge(format!(
                "the upload is {} bytes, more than rest.upload.max-bytes ({max})",
                bytes.len()
            )));
        }
        Ok(self
            .inner
            .artifacts
            .put(&self.inner.runtime, bytes, now_ms())?)
    }

    /// Every artifact.
    ///
    /// # Errors
    /// [`JmError::Internal`] when the store cannot be read.
    pub fn artifacts(&self) -> Result<Vec<ArtifactInfo>, JmError> {
        Ok(self.inner.artifacts.list()?)
    }

    /// One artifact.
    ///
    /// # Errors
    /// [`JmError::NotFound`] or [`JmError::BadRequest`] (malformed id).
    pub fn artifact(&self, id: &str) -> Result<ArtifactInfo, JmError> {
        Ok(self.inner.artifacts.get(id)?)
    }

    /// Deletes an artifact no unfinished job uses.
    ///
    /// # Errors
    /// [`JmError::Conflict`] while a job that has not ended uses it,
    /// [`JmError::NotFound`].
    pub fn delete_artifact(&self, id: &str) -> Result<(), JmError> {
        check_id(id)?;
        let state = self.lock();
        let users: Vec<&str> = state
            .jobs
            .values()
            .filter(|j| {
                j.lifecycle
                    .as_ref()
                    .is_some_and(|l| !l.status().is_terminal())
            })
            .filter(|j| j.udfs.values().any(|p| *p == self.inner.artifacts.path(id)))
            .map(|j| j.record.id.as_str())
            .collect();
        if !users.is_empty() {
            return Err(JmError::Conflict(format!(
                "artifact {id} is used by job(s) {} that have not ended",
                users.join(", ")
            )));
        }
        Ok(self.inner.artifacts.delete(id)?)
    }

    /// Submits a job file (YAML or JSON); it starts once slots are free.
    ///
    /// # Errors
    /// [`JmError::BadRequest`] for an invalid job file (with line and
    /// field), a local `udf:` path, an unknown artifact, a bad
    /// configuration key, or a job larger than the cluster.
    pub fn submit(&self, text: &str, options: SubmitOptions) -> Result<String, JmError> {
        self.admit(JobRecord::new("", text, options), true)
    }

    /// Checks a job and takes it in: running (`run`), or as history.
    fn admit(&self, mut record: JobRecord, run: bool) -> Result<String, JmError> {
        let shown = Path::new("<submitted job>");
        let mut graph = JobGraph::from_yaml(&record.text, shown)
            .map_err(|e| JmError::BadRequest(e.to_string()))?;
        if let Some(p) = record.options.parallelism {
            if p == 0 {
                return Err(JmError::BadRequest("parallelism must be at least 1".into()));
            }
            graph.parallelism = p;
            graph
                .revalidate(shown)
                .map_err(|e| JmError::BadRequest(e.to_string()))?;
        }
        record.name = graph.name.clone();
        // An ended job is history: its artifacts may be gone since.
        let udfs = if run {
            self.resolve_udfs(&graph)?
        } else {
            HashMap::new()
        };
        let checkpoints = if run {
            self.checkpoint_config(&graph, &record.id, &record.options.configuration)?
        } else {
            CheckpointConfig::default()
        };
        let submitted = record
            .options
            .savepoint_path
            .as_ref()
            .map(|p| Restore::Checkpoint(PathBuf::from(p)));
        let initial = if !run || !checkpoints.enabled() {
            submitted
        } else {
            // A job persisted before a crash resumes where it got to; a
            // damaged checkpoint directory fails its attempt with the
            // reason rather than starting over (which would repeat
            // committed output).
            match weir_task::resolve_latest_or_fresh(&checkpoints, &graph.name) {
                Ok(None) => submitted,
                Ok(Some(_)) | Err(_) => Some(Restore::Latest),
            }
        };
        let admission = Admission {
            graph,
            udfs,
            checkpoints,
            initial,
            metrics: Arc::new(JobMetrics::new()),
            commands: Arc::new(JobCommands::default()),
            state_dir: None,
        };
        self.take_in(record, admission, run)
    }

    /// Takes a checked job in: running (`run`: it asks for slots and gets
    /// a driver thread), or as history.
    pub(crate) fn take_in(
        &self,
        mut record: JobRecord,
        admission: Admission,
        run: bool,
    ) -> Result<String, JmError> {
        let Admission {
            graph,
            udfs,
            checkpoints,
            initial,
            metrics,
            commands,
            state_dir,
        } = admission;
        let slots = slots_needed(&graph);
        let id = record.id.clone();
        let prior_exceptions = record.exceptions.clone();
        let mut state = self.lock();
        let lifecycle = if run {
            state
                .slots
                .request(&id, slots)
                .map_err(|e| JmError::BadRequest(e.to_string()))?;
            record.status = JobStatus::Created;
            Some(
                JobLifecycle::new(checkpoints.restart_strategy(), now_ms())
                    .with_identical_failure_limit(checkpoints.max_identical_failures),
            )
        } else {
            None
        };
        let state_dir = state_dir.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("weir-jm-{}-{id}", std::process::id()))
        });
        let job = Job {
            record,
            graph,
            lifecycle,
            slots,
            checkpoints,
            udfs,
            initial,
            metrics,
            commands,
            deploy: None,
            stop_requests: Vec::new(),
            state_dir,
            prior_exceptions,
            attempt_running: false,
            savepoint_requests: BTreeMap::new(),
            attempt_waiting: None,
            last_error: None,
            damaged: Arc::default(),
            poison: Arc::default(),
        };
        if let Err(e) = self.persist(&job.record) {
            state.slots.release(&id);
            return Err(e);
        }
        state.jobs.insert(id.clone(), job);
        if run {
            let jm = self.clone();
            let driver_id = id.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("job-{}", &id[..8]))
                .spawn(move || jm.drive(&driver_id));
            if let Err(e) = spawned {
                state.jobs.remove(&id);
                state.slots.release(&id);
                return Err(JmError::Internal(format!("cannot start a thread: {e}")));
            }
            self.schedule(&mut state);
        }
        Ok(id)
    }

    /// Maps every `udf:` to an uploaded artifact's file.
    fn resolve_udfs(&self, graph: &JobGraph) -> Result<HashMap<String, PathBuf>, JmError> {
        let mut udfs = HashMap::new();
        for (index, op) in graph.operators.iter().enumerate() {
            let Some(udf) = &op.udf else { continue };
            let text = udf.to_string_lossy();
            let Some(id) = text.strip_prefix(ARTIFACT_PREFIX) else {
                return Err(JmError::BadRequest(format!(
                    "operators[{index}].udf: `{text}` is a local path; a JobManager runs uploaded components only: upload it (`weir udf upload FILE.wasm` or POST /v1/artifacts) and name it as `artifact:<id>`, or let `weir submit` do both"
                )));
            };
            self.inner
                .artifacts
                .get(id)
                .map_err(|e| JmError::BadRequest(format!("operators[{index}].udf: {e}")))?;
            udfs.insert(op.id.clone(), self.inner.artifacts.path(id));
        }
        Ok(udfs)
    }

    /// The job's checkpoint configuration: the server's defaults, then the
    /// job file's `configuration:`, then the submission's; the checkpoints
    /// of each job live under their own directory.
    fn checkpoint_config(
        &self,
        graph: &JobGraph,
        id: &str,
        submitted: &BTreeMap<String, String>,
    ) -> Result<CheckpointConfig, JmError> {
        let mut config = CheckpointConfig::default();
        let ha = &self.inner.config.ha_dir;
        config.dir = ha.join("checkpoints").display().to_string();
        config.savepoint_dir = ha.join("savepoints").display().to_string();
        config
            .set_all(pairs(&self.inner.config.job_defaults))
            .map_err(|e| JmError::Internal(format!("configuration: {e}")))?;
        config
            .set_all(pairs(&graph.configuration))
            .map_err(|e| JmError::BadRequest(format!("configuration: {e}")))?;
        config
            .set_all(pairs(submitted))
            .map_err(|e| JmError::BadRequest(format!("submitted configuration: {e}")))?;
        config.dir = format!("{}/{id}", config.dir.trim_end_matches('/'));
        Ok(config)
    }

    fn persist(&self, record: &JobRecord) -> Result<(), JmError> {
        if !self.inner.persistent {
            return Ok(());
        }
        let dir = self.jobs_dir().join(&record.id);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            let tmp = dir.join("job.json.tmp");
            std::fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
            std::fs::rename(&tmp, dir.join("job.json"))
        };
        write().map_err(|e| JmError::Internal(format!("cannot persist job {}: {e}", record.id)))
    }

    /// Grants slots to waiting jobs and wakes their drivers.
    fn schedule(&self, state: &mut State) {
        for id in state.slots.schedule() {
            self.apply(state, &id, Event::SlotsGranted);
        }
        self.inner.changed.notify_all();
    }

    /// Feeds `event` to a job's state machine and carries out its actions.
    fn apply(&self, state: &mut State, id: &str, event: Event) {
        let Some(job) = state.jobs.get_mut(id) else {
            return;
        };
        let Some(lifecycle) = job.lifecycle.as_mut() else {
            return;
        };
        let actions = lifecycle.handle(event, now_ms()).unwrap_or_default();
        let mut release = false;
        for action in actions {
            match action {
                Action::Deploy { attempt } => job.deploy = Some(attempt),
                Action::CancelTasks => job.commands.cancel(),
                Action::ReleaseSlots => release = true,
            }
        }
        self.sync_record(job);
        if release {
            state.slots.release(id);
            self.schedule(state);
        }
        self.inner.changed.notify_all();
    }

    /// Copies the state machine's view into the persisted record.
    fn sync_record(&self, job: &mut Job) {
        let Some(lifecycle) = &job.lifecycle else {
            return;
        };
        let status = lifecycle.status();
        let changed = status != job.record.status
            || lifecycle.exceptions().len() + job.prior_exceptions.len()
                != job.record.exceptions.len();
        job.record.status = status;
        job.record.attempt = lifecycle.attempt();
        job.record.exceptions = job
            .prior_exceptions
            .iter()
            .chain(lifecycle.exceptions())
            .cloned()
            .collect();
        job.record.savepoint = lifecycle.savepoint().map(str::to_string);
        if status.is_terminal() {
            job.record.end_ms = lifecycle.entered(status);
            job.commands.savepoints.fail_waiting(&format!(
                "the job ended ({}) before the savepoint",
                status.name()
            ));
        }
        if changed && let Err(e) = self.persist(&job.record) {
            tracing::warn!("{e}");
        }
    }

    /// The driver of one job: deploys its attempts, waits out restart
    /// delays, until the job ends.
    fn drive(&self, id: &str) {
        let mut state = self.lock();
        loop {
            let Some(job) = state.jobs.get_mut(id) else {
                return;
            };
            let Some(lifecycle) = job.lifecycle.as_mut() else {
                // Shut down: the persisted status stays for the next start.
                let _ = std::fs::remove_dir_all(&job.state_dir);
                return;
            };
            if lifecycle.status().is_terminal() {
                let _ = std::fs::remove_dir_all(&job.state_dir);
                return;
            }
            let restarted = lifecycle.poll(now_ms());
            let restart_at = lifecycle.restart_at();
            if let Some(Action::Deploy { attempt }) = restarted {
                job.deploy = Some(attempt);
                job.metrics.add_restart();
                self.sync_record(job);
            }
            if let Some(attempt) = job.deploy.take() {
                if job.commands.is_cancelled() {
                    // Cancelled before its tasks were deployed.
                    self.apply(&mut state, id, Event::AttemptCancelled);
                    continue;
                }
                let run = self.prepare(job, attempt);
                job.attempt_running = true;
                drop(state);
                // A bug in host code must fail the job, not leave it
                // RUNNING with its slots held.
                let (event, error) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run))
                    .unwrap_or_else(|_| {
                        let error = JobError::Plan(
                            "internal error (a bug in Weir): the attempt panicked".into(),
                        );
                        (
                            Event::AttemptFailed {
                                kind: crate::lifecycle::FailureKind::Permanent,
                                cause: Some("internal".into()),
                                message: error.to_string(),
                            },
                            Some(error),
                        )
                    });
                state = self.lock();
                if let Some(job) = state.jobs.get_mut(id) {
                    job.attempt_running = false;
                    if job.lifecycle.is_none() {
                        // Shutting down: an attempt that ended by itself
                        // still ends the job; a cancelled one resumes at
                        // the next start.
                        if let Event::AttemptFinished { savepoint } = &event {
                            job.record.status = if savepoint.is_some() {
                                JobStatus::Canceled
                            } else {
                                JobStatus::Finished
                            };
                            job.record.savepoint.clone_from(savepoint);
                            job.record.end_ms = Some(now_ms());
                            if let Err(e) = self.persist(&job.record) {
                                tracing::warn!("{e}");
                            }
                        }
                    }
                }
                self.apply(&mut state, id, event);
                if let (Some(error), Some(job)) = (error, state.jobs.get_mut(id)) {
                    self.report_failure(job, attempt, &error);
                    job.last_error = Some(error);
                }
                self.inner.changed.notify_all();
                continue;
            }
            let wait = restart_at.map_or(Duration::from_secs(1), |at| {
                Duration::from_millis(u64::try_from(at - now_ms()).unwrap_or(0).max(1))
            });
            state = self
                .inner
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Logs a failed attempt: the restart to come, or (on a server) the
    /// job's failure. `weir run` prints its final error itself.
    fn report_failure(&self, job: &Job, attempt: u32, error: &JobError) {
        let name = &job.record.name;
        match &job.lifecycle {
            Some(l) if l.status() == JobStatus::Restarting => {
                let delay = l.restart_at().map_or(0, |at| (at - now_ms()).max(0));
                tracing::warn!(
                    "job `{name}` attempt {attempt} failed: {error}; restarting in {delay} ms ({} restart strategy)",
                    l.strategy_name()
                );
            }
            lifecycle => {
                if let Some(n) = lifecycle
                    .as_ref()
                    .and_then(JobLifecycle::gave_up_after_identical_failures)
                {
                    tracing::warn!(
                        "job `{name}` failed the same way {n} times in a row (restart-strategy.max-identical-failures): not restarting it again"
                    );
                }
                if self.inner.persistent {
                    tracing::warn!("job `{name}` attempt {attempt} failed: {error}");
                }
            }
        }
    }

    /// Everything attempt `attempt` needs, as a closure run without the
    /// lock; it answers the attempt's event and, for a failure, its error.
    fn prepare(
        &self,
        job: &Job,
        attempt: u32,
    ) -> impl FnOnce() -> (Event, Option<JobError>) + use<> {
        let jm = self.clone();
        let job_id = job.record.id.clone();
        let graph = job.graph.clone();
        let mut config = RunConfig::new(job.udfs.clone(), job.state_dir.clone());
        config.cache_dir = self.inner.cache_dir.clone();
        config.metrics = job.metrics.clone();
        config.checkpoints = job.checkpoints.clone();
        config.runtime = Some(self.inner.runtime.clone());
        let initial = job.initial.clone();
        let commands = Arc::clone(&job.commands);
        let damaged_set = Arc::clone(&job.damaged);
        let poison = Arc::clone(&job.poison);
        if let Ok(state) = poison.lock() {
            config.poison_records.clone_from(&state.records);
        }
        move || {
            let damaged = damaged_set.lock().map(|d| d.clone()).unwrap_or_default();
            let resolve = |r: &Restore| {
                weir_task::resolve_checkpoint_avoiding(
                    r,
                    &config.checkpoints,
                    &graph.name,
                    &damaged,
                )
            };
            // A checkpoint or savepoint the user named has no older one of
            // its own to fall back to.
            let named = matches!(initial, Some(Restore::Checkpoint(_)));
            let (restored, explicit) = if attempt > 0 && config.checkpoints.enabled() {
                match resolve(&Restore::Latest) {
                    Ok(found) => (Ok(Some(found)), false),
                    // Every retained checkpoint is damaged: nothing to
                    // start from without repeating committed output.
                    Err(e) if !damaged.is_empty() => (Err(e), false),
                    // Nothing completed yet: start over as the first attempt did.
                    Err(_) => (initial.as_ref().map(resolve).transpose(), named),
                }
            } else {
                (initial.as_ref().map(resolve).transpose(), named)
            };
            let restored_at = restored
                .as_ref()
                .ok()
                .and_then(|r| r.as_ref().map(weir_task::ResolvedCheckpoint::location));
            let result = restored.and_then(|r| {
                if jm.schedules_on_taskmanagers() {
                    crate::remote::run_remote_attempt(
                        &jm,
                        &job_id,
                        &graph,
                        &config,
                        &commands,
                        r.as_ref(),
                        attempt,
                    )
                } else {
                    crate::attempt::run_attempt(&graph, &config, &commands, r.as_ref(), attempt)
                }
            });
            match result {
                Ok(savepoint) => (Event::AttemptFinished { savepoint }, None),
                Err(JobError::Cancelled) => (Event::AttemptCancelled, None),
                Err(error) => {
                    if let JobError::DamagedCheckpoint { .. } = &error
                        && explicit
                    {
                        let event = Event::AttemptFailed {
                            kind: crate::lifecycle::FailureKind::Permanent,
                            cause: None,
                            message: format!(
                                "{error} (it was named to start from, so there is no older \
                                 checkpoint to fall back to)"
                            ),
                        };
                        return (event, Some(error));
                    }
                    if let (JobError::DamagedCheckpoint { .. }, Some(at)) = (&error, restored_at)
                        && let Ok(mut set) = damaged_set.lock()
                    {
                        set.insert(at);
                    }
                    let limit = config.checkpoints.max_identical_failures;
                    let verdict = poison
                        .lock()
                        .ok()
                        .and_then(|mut p| p.failed(&graph, &error, limit));
                    if let Some(verdict) = verdict {
                        let event = Event::AttemptFailed {
                            kind: crate::lifecycle::FailureKind::PoisonRecord,
                            cause: error.kind().map(|k| k.as_str().to_string()),
                            message: format!("{error} ({})", verdict.explain(limit)),
                        };
                        return (event, Some(error));
                    }
                    (crate::embedded::failure_event(&error), Some(error))
                }
            }
        }
    }

    /// Waits until job `id` ended and its attempt stopped, and answers
    /// how it ended: `Ok` with the savepoint it stopped with (if any), or
    /// the typed error of its last failed attempt.
    ///
    /// # Errors
    /// [`JobError::Cancelled`] for a job cancelled without a savepoint;
    /// the last attempt's error for a FAILED job.
    pub(crate) fn wait_for_end(&self, id: &str) -> Result<Option<String>, JobError> {
        let mut state = self.lock();
        loop {
            let Some(job) = state.jobs.get_mut(id) else {
                return Err(JobError::Plan(format!("no job {id}")));
            };
            if job.record.status.is_terminal() && !job.attempt_running {
                return match job.record.status {
                    JobStatus::Finished => Ok(None),
                    JobStatus::Canceled => job
                        .record
                        .savepoint
                        .clone()
                        .map(Some)
                        .ok_or(JobError::Cancelled),
                    _ => {
                        Err(job.last_error.take().unwrap_or_else(|| {
                            JobError::Plan(job.record.exceptions.last().map_or_else(
                                || "the job failed".to_string(),
                                |f| f.message.clone(),
                            ))
                        }))
                    }
                };
            }
            state = self
                .inner
                .changed
                .wait_timeout(state, Duration::from_secs(1))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn with_job<T>(&self, id: &str, f: impl FnOnce(&State, &Job) -> T) -> Result<T, JmError> {
        let state = self.lock();
        let job = state
            .jobs
            .get(id)
            .ok_or_else(|| JmError::NotFound(format!("no job {id}")))?;
        Ok(f(&state, job))
    }

    /// Every job, oldest first.
    pub fn jobs(&self) -> Vec<JobOverview> {
        let state = self.lock();
        let mut jobs: Vec<&Job> = state.jobs.values().collect();
        jobs.sort_by_key(|j| j.record.submitted_ms);
        jobs.iter()
            .map(|j| JobOverview {
                id: j.record.id.clone(),
                name: j.record.name.clone(),
                state: j.record.status,
            })
            .collect()
    }

    /// One job's details.
    ///
    /// # Errors
    /// [`JmError::NotFound`].
    pub fn job(&self, id: &str) -> Result<JobDetails, JmError> {
        self.with_job(id, |state, job| {
            let r = &job.record;
            let end = r.end_ms.unwrap_or(-1);
            let m = &job.metrics;
            let counters = m.vertices();
            let elapsed_ns = m.elapsed().as_nanos() as f64;
            let graph = &job.graph;
            let mut vertices = Vec::new();
            let mut push = |id: &str, kind: &str| {
                let parallelism = graph.parallelism_of(id).unwrap_or(graph.parallelism);
                let c = counters.get(id);
                let blocked = c.map_or(0, |c| c.back_pressured_ns()) as f64;
                let ratio = if elapsed_ns > 0.0 {
                    (blocked / (elapsed_ns * f64::from(parallelism.max(1)))).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                vertices.push(VertexInfo {
                    id: id.to_string(),
                    kind: kind.to_string(),
                    parallelism,
                    current_watermark: c.and_then(|c| c.current_watermark()),
                    records_in: c.map_or(0, |c| c.records_in()),
                    records_out: c.map_or(0, |c| c.records_out()),
                    back_pressure_ratio: ratio,
                });
            };
            graph.sources.iter().for_each(|s| push(&s.id, "source"));
            graph.operators.iter().for_each(|o| push(&o.id, "operator"));
            graph.sinks.iter().for_each(|s| push(&s.id, "sink"));
            JobDetails {
                jid: r.id.clone(),
                name: r.name.clone(),
                state: r.status,
                start_time: r.submitted_ms,
                end_time: end,
                duration: if end >= 0 { end } else { now_ms() } - r.submitted_ms,
                attempt: r.attempt,
                waiting: state
                    .slots
                    .waiting_reason(id)
                    .or_else(|| job.attempt_waiting.clone()),
                savepoint: r.savepoint.clone(),
                slots: job.slots,
                vertices,
                metrics: JobCounters {
                    read_records: m.records_read(),
                    write_records: m.records_written(),
                    record_errors: m.record_errors(),
                    dead_lettered: m.dead_lettered(),
                    restarts: m.restarts(),
                    first_record_ms: m
                        .first_record_latency()
                        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                },
            }
        })
    }

    /// A job's failures.
    ///
    /// # Errors
    /// [`JmError::NotFound`].
    pub fn exceptions(&self, id: &str) -> Result<Vec<Failure>, JmError> {
        self.with_job(id, |_, job| job.record.exceptions.clone())
    }

    /// A job's completed checkpoints (of this JobManager's run of it).
    ///
    /// # Errors
    /// [`JmError::NotFound`].
    pub fn checkpoints(&self, id: &str) -> Result<CheckpointsView, JmError> {
        self.with_job(id, |_, job| {
            let checkpoints = job.metrics.checkpoints();
            let history: Vec<CheckpointView> = checkpoints
                .recent()
                .map(|c| CheckpointView {
                    id: c.id,
                    duration_ms: c.duration_ms,
                    size_bytes: c.size_bytes,
                    full_size_bytes: c.full_size_bytes,
                    max_alignment_ms: c.max_alignment_ms,
                })
                .collect();
            CheckpointsView {
                completed: checkpoints.completed(),
                latest: history.last().cloned(),
                mean_duration_ms: checkpoints.mean_duration_ms(),
                max_duration_ms: checkpoints.max_duration_ms(),
                history,
            }
        })
    }

    /// Cancels a job (no savepoint).
    ///
    /// # Errors
    /// [`JmError::NotFound`], or [`JmError::Conflict`] when it already ended.
    pub fn cancel(&self, id: &str) -> Result<(), JmError> {
        let mut state = self.lock();
        let job = state
            .jobs
            .get(id)
            .ok_or_else(|| JmError::NotFound(format!("no job {id}")))?;
        if job.lifecycle.is_none() || job.record.status.is_terminal() {
            return Err(JmError::Conflict(format!(
                "cannot cancel job {id}: it is already {}",
                job.record.status.name()
            )));
        }
        self.apply(&mut state, id, Event::CancelRequested);
        Ok(())
    }

    /// Stops a running job with a savepoint (into `target`, or
    /// `state.savepoints.dir`); returns the request id to poll.
    ///
    /// # Errors
    /// [`JmError::NotFound`]; [`JmError::Conflict`] when the job is not
    /// running or takes no checkpoints.
    pub fn stop(&self, id: &str, target: Option<String>) -> Result<String, JmError> {
        let mut state = self.lock();
        let job = state
            .jobs
            .get_mut(id)
            .ok_or_else(|| JmError::NotFound(format!("no job {id}")))?;
        if job.record.status != JobStatus::Running {
            return Err(JmError::Conflict(format!(
                "job {id} is {}, not RUNNING: only a running job stops with a savepoint",
                job.record.status.name()
            )));
        }
        if !job.checkpoints.enabled() {
            return Err(JmError::Conflict(format!(
                "job {id} takes no checkpoints: set execution.checkpointing.interval to stop it with a savepoint (or cancel it)"
            )));
        }
        job.commands.stop_with_savepoint(target);
        let request = new_id();
        job.stop_requests.push(request.clone());
        Ok(request)
    }

    /// Takes a savepoint of a running job without stopping it (into
    /// `target`, or `state.savepoints.dir`); returns the request id to poll.
    ///
    /// # Errors
    /// [`JmError::NotFound`]; [`JmError::Conflict`] when the job has ended
    /// or takes no checkpoints.
    pub fn trigger_savepoint(&self, id: &str, target: Option<String>) -> Result<String, JmError> {
        let mut state = self.lock();
        let job = state
            .jobs
            .get_mut(id)
            .ok_or_else(|| JmError::NotFound(format!("no job {id}")))?;
        if job.record.status.is_terminal() || job.lifecycle.is_none() {
            return Err(JmError::Conflict(format!(
                "job {id} is {}: only a job that has not ended takes a savepoint",
                job.record.status.name()
            )));
        }
        if !job.checkpoints.enabled() {
            return Err(JmError::Conflict(format!(
                "job {id} takes no checkpoints: set execution.checkpointing.interval to take savepoints"
            )));
        }
        let request = new_id();
        let number = job.savepoint_requests.len() as u64 + 1;
        job.savepoint_requests.insert(request.clone(), number);
        job.commands
            .savepoints
            .request(SavepointRequest { id: number, target });
        Ok(request)
    }

    /// The state of a savepoint or stop-with-savepoint request.
    ///
    /// # Errors
    /// [`JmError::NotFound`] for an unknown job or request.
    pub fn savepoint_status(&self, id: &str, request: &str) -> Result<SavepointStatus, JmError> {
        self.with_job(id, |_, job| {
            if let Some(number) = job.savepoint_requests.get(request) {
                let (name, operation) = match job.commands.savepoints.outcome(*number) {
                    None => ("IN_PROGRESS", None),
                    Some(Ok(location)) => ("COMPLETED", Some(("location", location))),
                    Some(Err(cause)) => ("COMPLETED", Some(("failure-cause", cause))),
                };
                return Ok(SavepointStatus {
                    status: BTreeMap::from([("id".to_string(), name.to_string())]),
                    operation: operation.map(|(k, v)| BTreeMap::from([(k.to_string(), v)])),
                });
            }
            if !job.stop_requests.iter().any(|r| r == request) {
                return Err(JmError::NotFound(format!(
                    "no savepoint request {request} for job {id}"
                )));
            }
            let status = job.record.status;
            let (name, operation) = if !status.is_terminal() {
                ("IN_PROGRESS", None)
            } else if let Some(location) = &job.record.savepoint {
                ("COMPLETED", Some(("location", location.clone())))
            } else {
                let cause = job.record.exceptions.last().map_or_else(
                    || format!("the job ended {}", status.name()),
                    |f| f.message.clone(),
                );
                ("COMPLETED", Some(("failure-cause", cause)))
            };
            Ok(SavepointStatus {
                status: BTreeMap::from([("id".to_string(), name.to_string())]),
                operation: operation.map(|(k, v)| BTreeMap::from([(k.to_string(), v)])),
            })
        })?
    }

    /// Slots and jobs at a glance.
    pub fn overview(&self) -> Overview {
        let (remote, slots_remote) = {
            let registry = self.taskmanager_registry();
            (registry.len(), registry.slots_total())
        };
        let state = self.lock();
        let mut jobs = BTreeMap::new();
        for job in state.jobs.values() {
            *jobs
                .entry(job.record.status.name().to_string())
                .or_insert(0) += 1;
        }
        Overview {
            taskmanagers: u32::from(!self.schedules_on_taskmanagers())
                + u32::try_from(remote).unwrap_or(u32::MAX),
            slots_remote,
            slots_total: state.slots.total(),
            slots_available: state.slots.available(),
            jobs,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Cancels every running job and waits (up to `timeout`) until they
    /// stopped; their persisted status stays as it was, so a JobManager
    /// started again on the same directory resumes them.
    pub fn shutdown(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        let mut state = self.lock();
        for job in state.jobs.values_mut() {
            // Persisted status first: an interrupted job resumes later.
            job.lifecycle = None;
            job.commands.cancel();
        }
        drop(state);
        self.inner.changed.notify_all();
        let mut state = self.lock();
        while state.jobs.values().any(|j| j.attempt_running) {
            let now = std::time::Instant::now();
            if now >= deadline {
                tracing::warn!("jobs still running after {timeout:?}; exiting anyway");
                break;
            }
            state = self
                .inner
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
