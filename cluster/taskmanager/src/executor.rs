//! Running the JobManager's deployments on this TaskManager: artifacts
//! fetched by hash and cached, each attempt's share started with
//! [`weir_task::executor::deploy_share`], task control delivered, task
//! events sent back, and data streams to and from other TaskManagers (one
//! QUIC stream per channel, [`weir_rpc::data`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use quinn::{Connection, Endpoint};
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::oneshot;
use weir_rpc::{AttemptId, ControlMessage, DataChannelHeader, DataReceiver, DataSender};
use weir_task::control::{TaskControl, TaskEvent};
use weir_task::executor::{
    AttemptShare, ChannelKey, ChannelMessage, ChannelSender, Disconnected, OutputChannel,
    RemoteLink,
};
use weir_task::wire::{WireEvent, WireFailure};
use weir_task::{JobMetrics, TaskId};
use weir_types::StreamElement;
use weir_wasm::WasmRuntime;

/// How often the counters of a running share go to the JobManager.
const METRICS_INTERVAL: Duration = Duration::from_millis(500);

/// How long a data stream waits for its consumer to be deployed here
/// when its attempt is not (or no longer) being deployed here.
const INBOUND_WAIT: Duration = Duration::from_secs(30);
/// The longest a data stream waits for a consumer whose share is still
/// being deployed here (fetching and compiling components).
const INBOUND_WAIT_DEPLOYING: Duration = Duration::from_secs(600);
/// How long opening a connection to a peer TaskManager may take.
const PEER_CONNECT: Duration = Duration::from_secs(10);

type Inbound = HashMap<(AttemptId, ChannelKey), ChannelSender>;
/// Who waits for an artifact's bytes, by id.
type Fetches = HashMap<String, Vec<oneshot::Sender<Result<Vec<u8>, String>>>>;

/// A share of an attempt running here.
#[derive(Default)]
struct Running {
    tasks: HashMap<TaskId, Sender<TaskControl>>,
    /// Control that arrived before the tasks started.
    early: Vec<(TaskId, TaskControl)>,
    started: bool,
    /// The JobManager went away before the tasks started: they are
    /// cancelled as soon as they exist.
    cancelled: bool,
}

/// This TaskManager's executor: shared by its sessions with the JobManager.
pub struct Executor {
    runtime: Arc<WasmRuntime>,
    cache_dir: PathBuf,
    work_dir: PathBuf,
    endpoint: Endpoint,
    handle: Handle,
    peers: Mutex<HashMap<String, Connection>>,
    inbound: Arc<Mutex<Inbound>>,
    running: Mutex<HashMap<AttemptId, Running>>,
    fetches: Mutex<Fetches>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Executor {
    /// An executor whose compiled components are cached under `cache_dir`
    /// and whose tasks keep their working state under `work_dir`; `endpoint`
    /// reaches and accepts other TaskManagers.
    ///
    /// # Errors
    /// The Wasm engine cannot be created.
    pub fn new(
        endpoint: Endpoint,
        cache_dir: PathBuf,
        work_dir: PathBuf,
    ) -> Result<Arc<Self>, weir_wasm::WasmError> {
        let runtime = WasmRuntime::new(weir_wasm::RuntimeConfig {
            cache_dir: Some(cache_dir.join("components")),
        })?;
        let executor = Arc::new(Self {
            runtime: Arc::new(runtime),
            cache_dir,
            work_dir,
            endpoint,
            handle: Handle::current(),
            peers: Mutex::new(HashMap::new()),
            inbound: Arc::new(Mutex::new(HashMap::new())),
            running: Mutex::new(HashMap::new()),
            fetches: Mutex::new(HashMap::new()),
        });
        tokio::spawn(accept_data(Arc::clone(&executor)));
        Ok(executor)
    }

    /// Handles one message from the JobManager; `outbox` carries answers.
    pub fn handle(
        self: &Arc<Self>,
        message: ControlMessage,
        me: &str,
        outbox: &UnboundedSender<ControlMessage>,
    ) {
        match message {
            ControlMessage::Deploy {
                attempt,
                share_json,
                tasks,
                artifacts,
            } => {
                let share: AttemptShare = match serde_json::from_str(&share_json) {
                    Ok(share) => share,
                    Err(e) => {
                        fail_tasks(
                            &tasks,
                            &attempt,
                            outbox,
                            &format!("cannot read the deployment: {e}"),
                        );
                        return;
                    }
                };
                lock(&self.running).entry(attempt.clone()).or_default();
                let (executor, me, outbox) = (Arc::clone(self), me.to_string(), outbox.clone());
                tokio::spawn(async move {
                    executor.deploy(attempt, share, artifacts, me, outbox).await;
                });
            }
            ControlMessage::Control {
                attempt,
                task,
                control,
            } => {
                // `Deploy` comes first on the same stream: control for an
                // attempt not here is late (its share ended) and dropped.
                let mut running = lock(&self.running);
                if let Some(share) = running.get_mut(&attempt) {
                    match share.tasks.get(&task) {
                        Some(sender) => {
                            let _ = sender.send(control);
                        }
                        None if !share.started => share.early.push((task, control)),
                        None => {}
                    }
                }
            }
            ControlMessage::Artifact { id, bytes } => {
                for waiter in lock(&self.fetches).remove(&id).unwrap_or_default() {
                    let _ = waiter.send(bytes.clone());
                }
            }
            other => tracing::warn!(
                "ignoring an unexpected {} from the JobManager",
                other.name()
            ),
        }
    }

    /// The JobManager is gone: every task here stops (it restarts them
    /// elsewhere or later).
    pub fn cancel_all(&self) {
        let mut running = lock(&self.running);
        for share in running.values_mut() {
            for sender in share.tasks.values() {
                let _ = sender.send(TaskControl::Cancel);
            }
            share.early.clear();
            share.cancelled = true;
        }
        lock(&self.fetches).clear();
    }

    /// The path of artifact `id`, fetched from the JobManager if it is not
    /// cached, and checked against its hash.
    async fn artifact(
        &self,
        id: &str,
        outbox: &UnboundedSender<ControlMessage>,
    ) -> Result<PathBuf, String> {
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("`{id}` is not an artifact id"));
        }
        let dir = self.cache_dir.join("artifacts");
        let path = dir.join(format!("{id}.wasm"));
        if path.is_file() {
            return Ok(path);
        }
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut fetches = lock(&self.fetches);
            let waiters = fetches.entry(id.to_string()).or_default();
            waiters.push(tx);
            waiters.len() == 1
        };
        if first {
            let _ = outbox.send(ControlMessage::FetchArtifact { id: id.to_string() });
        }
        let bytes = rx
            .await
            .map_err(|_| "the JobManager went away".to_string())??;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != id {
            return Err(format!("artifact {id} arrived with SHA-256 {actual}"));
        }
        if path.is_file() {
            // Another deployment's fetch of it got there first.
            return Ok(path);
        }
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        static TMP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = TMP.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!("{id}.{}-{n}.tmp", std::process::id()));
        std::fs::write(&tmp, &bytes).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
        Ok(path)
    }

    async fn deploy(
        self: Arc<Self>,
        attempt: AttemptId,
        share: AttemptShare,
        artifacts: std::collections::BTreeMap<String, String>,
        me: String,
        outbox: UnboundedSender<ControlMessage>,
    ) {
        let tasks: Vec<TaskId> = share
            .descriptors
            .iter()
            .map(|d| (d.task.vertex.clone(), d.task.index))
            .collect();
        let fail_all = |message: String| fail_tasks(&tasks, &attempt, &outbox, &message);
        let mut udfs = HashMap::new();
        for (op, id) in &artifacts {
            match self.artifact(id, &outbox).await {
                Ok(path) => {
                    udfs.insert(op.clone(), path);
                }
                Err(e) => {
                    fail_all(format!("cannot fetch the component of `{op}`: {e}"));
                    lock(&self.running).remove(&attempt);
                    return;
                }
            }
        }
        let state_dir = self.work_dir.join(format!(
            "{}-{}-{}",
            attempt.job, attempt.epoch, attempt.attempt
        ));
        let executor = Arc::clone(&self);
        let metrics = Arc::new(JobMetrics::new());
        let task_metrics = Arc::clone(&metrics);
        let link = QuicLink {
            executor: Arc::clone(&self),
            attempt: attempt.clone(),
        };
        let started = tokio::task::spawn_blocking(move || {
            weir_task::executor::deploy_share(
                share,
                &me,
                &udfs,
                state_dir.clone(),
                Arc::clone(&executor.runtime),
                task_metrics,
                &link,
            )
            .map(|deployment| (deployment, state_dir))
        })
        .await;
        let (deployment, state_dir) = match started {
            Ok(Ok(started)) => started,
            Ok(Err(e)) => {
                fail_all(e.to_string());
                lock(&self.running).remove(&attempt);
                return;
            }
            Err(e) => {
                fail_all(format!("internal error: {e}"));
                lock(&self.running).remove(&attempt);
                return;
            }
        };
        {
            let mut running = lock(&self.running);
            let share = running.entry(attempt.clone()).or_default();
            share.tasks = deployment.tasks.into_iter().collect();
            share.started = true;
            if share.cancelled || outbox.is_closed() {
                // Started after the JobManager went away: nothing may run.
                for sender in share.tasks.values() {
                    let _ = sender.send(TaskControl::Cancel);
                }
            }
            for (task, control) in share.early.drain(..) {
                if let Some(sender) = share.tasks.get(&task) {
                    let _ = sender.send(control);
                }
            }
        }
        // Events go back until every task (and snapshot worker) ended.
        let events = deployment.events;
        let threads = deployment.threads;
        let executor = Arc::clone(&self);
        std::thread::spawn(move || {
            let report = || {
                let _ = outbox.send(ControlMessage::Metrics {
                    attempt: attempt.clone(),
                    snapshot: metrics.snapshot(),
                });
            };
            loop {
                match events.recv_timeout(METRICS_INTERVAL) {
                    Ok(event) => {
                        // The counters are complete before the JobManager
                        // learns that a task ended.
                        if matches!(event, TaskEvent::Exited { .. }) {
                            report();
                        }
                        let _ = outbox.send(ControlMessage::Event {
                            attempt: attempt.clone(),
                            event: event.into(),
                        });
                    }
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => report(),
                    Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                }
            }
            threads.join();
            lock(&executor.running).remove(&attempt);
            lock(&executor.inbound).retain(|(a, _), _| *a != attempt);
            let _ = std::fs::remove_dir_all(&state_dir);
        });
    }

    /// A connection to the TaskManager at `address`, opened once and kept
    /// (one per peer: the lock is held while connecting, so concurrent
    /// streams to one peer share it, and it outlives every stream on it).
    fn peer(&self, address: &str) -> Result<Connection, String> {
        if let Some(connection) = lock(&self.peers).get(address)
            && connection.close_reason().is_none()
        {
            return Ok(connection.clone());
        }
        let addr = address
            .parse()
            .map_err(|_| format!("`{address}` is not a TaskManager address"))?;
        // Connected without the lock (a dead peer must not hold up streams
        // to the others); two streams racing to a new peer may both
        // connect, and the first connection kept is shared from then on.
        let connection = self
            .handle
            .block_on(async {
                tokio::time::timeout(PEER_CONNECT, weir_rpc::connect(&self.endpoint, addr)).await
            })
            .map_err(|_| format!("no answer from {address} within {PEER_CONNECT:?}"))?
            .map_err(|e| e.to_string())?;
        let mut peers = lock(&self.peers);
        match peers.get(address) {
            Some(kept) if kept.close_reason().is_none() => Ok(kept.clone()),
            _ => {
                peers.insert(address.to_string(), connection.clone());
                Ok(connection)
            }
        }
    }
}

/// Reports `tasks` failed (with `message`) and ended.
fn fail_tasks(
    tasks: &[TaskId],
    attempt: &AttemptId,
    outbox: &UnboundedSender<ControlMessage>,
    message: &str,
) {
    for task in tasks {
        for event in [
            WireEvent::Failed {
                task: task.clone(),
                failure: WireFailure::Setup {
                    vertex: task.0.clone(),
                    index: task.1,
                    message: message.to_string(),
                },
            },
            WireEvent::Exited { task: task.clone() },
        ] {
            let _ = outbox.send(ControlMessage::Event {
                attempt: attempt.clone(),
                event,
            });
        }
    }
}

/// Accepts other TaskManagers' connections and their data streams.
async fn accept_data(executor: Arc<Executor>) {
    while let Some(incoming) = executor.endpoint.accept().await {
        let executor = Arc::clone(&executor);
        tokio::spawn(async move {
            let from = incoming.remote_address();
            let connection = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("refused a connection from {from}: {e}");
                    return;
                }
            };
            // One stream's failure (a producer reset it before its header:
            // it was cancelled) must not stop the connection's other and
            // later streams, so headers are read apart from accepting.
            loop {
                match DataReceiver::accept_pending(&connection).await {
                    Ok(pending) => {
                        let executor = Arc::clone(&executor);
                        tokio::spawn(async move {
                            match pending.read_header().await {
                                Ok((header, receiver)) => {
                                    std::thread::spawn(move || {
                                        receive(&executor, header, receiver);
                                    });
                                }
                                Err(e) => tracing::debug!(
                                    "a data stream from {from} ended before its header: {e}"
                                ),
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!("data connection from {from} ended: {e}");
                        return;
                    }
                }
            }
        });
    }
}

/// Feeds one data stream into its consumer's queue.
fn receive(executor: &Executor, header: DataChannelHeader, mut receiver: DataReceiver) {
    let key = (
        AttemptId {
            epoch: header.epoch,
            job: header.job.clone(),
            attempt: header.attempt,
        },
        ChannelKey {
            consumer: header.consumer.clone(),
            subtask: header.subtask,
            channel: header.channel,
        },
    );
    let started = std::time::Instant::now();
    let queue = loop {
        if let Some(queue) = lock(&executor.inbound).get(&key) {
            break queue.clone();
        }
        let deploying = lock(&executor.running)
            .get(&key.0)
            .is_some_and(|share| !share.started && !share.cancelled);
        let limit = if deploying {
            INBOUND_WAIT_DEPLOYING
        } else {
            INBOUND_WAIT
        };
        if started.elapsed() > limit {
            tracing::warn!("no consumer here for data stream {header:?}; dropping it");
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    loop {
        match executor.handle.block_on(receiver.recv()) {
            Ok(Some(element)) => {
                if queue.send((header.channel, element)).is_err() {
                    return; // the consumer ended
                }
            }
            Ok(None) => return,
            // The producer stopped mid-stream (it failed, was cancelled, or
            // its job stopped with a savepoint); its own failure, if any,
            // reaches the JobManager from its TaskManager.
            Err(weir_rpc::RpcError::Read(quinn::ReadError::Reset(_))) => {
                tracing::debug!("data stream {header:?} was reset by its producer");
                return;
            }
            Err(e) => {
                tracing::warn!("data stream {header:?} failed: {e}");
                return;
            }
        }
    }
}

/// The [`RemoteLink`] of one attempt's share: QUIC data streams.
struct QuicLink {
    executor: Arc<Executor>,
    attempt: AttemptId,
}

impl RemoteLink for QuicLink {
    fn output(&self, to: &str, key: ChannelKey) -> Box<dyn OutputChannel> {
        Box::new(QuicOutputChannel {
            executor: Arc::clone(&self.executor),
            to: to.to_string(),
            header: DataChannelHeader {
                epoch: self.attempt.epoch,
                job: self.attempt.job.clone(),
                attempt: self.attempt.attempt,
                consumer: key.consumer,
                subtask: key.subtask,
                channel: key.channel,
            },
            stream: None,
            failed: false,
            ended: false,
        })
    }

    fn input(&self, key: ChannelKey, channel: ChannelSender) {
        lock(&self.executor.inbound).insert((self.attempt.clone(), key), channel);
    }
}

/// A write to a data stream that takes longer than this waited for the
/// consumer's window (a write with room only copies into the connection's
/// send buffer, in microseconds); its time counts as back-pressure.
const WINDOW_WAIT: Duration = Duration::from_micros(200);

/// The output channel of a producer here to a consumer on another
/// TaskManager: the producer's own thread encodes each element and writes
/// it to the channel's QUIC stream, opened on the first send. Its credit is
/// the stream's flow-control window ([`weir_rpc::data::STREAM_WINDOW_BYTES`]):
/// a consumer that stops reading the channel stops this producer. Dropping
/// it ends the stream after what was written when the producer sent its end
/// of input, and resets it otherwise.
struct QuicOutputChannel {
    executor: Arc<Executor>,
    to: String,
    header: DataChannelHeader,
    stream: Option<DataSender>,
    /// The stream failed: every later send fails at once.
    failed: bool,
    /// The producer sent its end of input: dropping finishes the stream
    /// cleanly (otherwise it is reset).
    ended: bool,
}

impl std::fmt::Debug for QuicOutputChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicOutputChannel")
            .field("to", &self.to)
            .field("header", &self.header)
            .field("open", &self.stream.is_some())
            .field("failed", &self.failed)
            .field("ended", &self.ended)
            .finish()
    }
}

impl QuicOutputChannel {
    fn write(
        &mut self,
        element: &StreamElement,
        blocked_ns: Option<&AtomicU64>,
    ) -> Result<(), String> {
        let handle = self.executor.handle.clone();
        let stream = match &mut self.stream {
            Some(stream) => stream,
            None => {
                let connection = self.executor.peer(&self.to)?;
                let opened = handle
                    .block_on(DataSender::open(&connection, &self.header))
                    .map_err(|e| e.to_string())?;
                self.stream.insert(opened)
            }
        };
        stream.encode(element);
        let started = Instant::now();
        handle
            .block_on(stream.write_encoded())
            .map_err(|e| e.to_string())?;
        let took = started.elapsed();
        if took > WINDOW_WAIT
            && let Some(counter) = blocked_ns
        {
            let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
            counter.fetch_add(ns, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl OutputChannel for QuicOutputChannel {
    fn send(
        &mut self,
        (_, element): ChannelMessage,
        blocked_ns: Option<&AtomicU64>,
    ) -> Result<(), Disconnected> {
        if self.failed {
            return Err(Disconnected);
        }
        let end = element == StreamElement::EndOfInput;
        self.write(&element, blocked_ns)
            .map(|()| self.ended |= end)
            .map_err(|e| {
                // The producer fails with "consumer gone"; the cause is here.
                tracing::warn!(
                    "data stream to {} for {:?} failed: {e}",
                    self.to,
                    self.header
                );
                self.failed = true;
                self.stream = None;
                Disconnected
            })
    }
}

impl Drop for QuicOutputChannel {
    fn drop(&mut self) {
        if let Some(mut stream) = self.stream.take() {
            if self.ended {
                // Ends the stream after what was written; quinn keeps
                // sending it on the (pooled) connection.
                let _ = stream.finish();
            } else {
                // The producer failed or was cancelled mid-stream: the
                // consumer sees the stream fail, not a clean end.
                stream.reset();
            }
        }
    }
}
