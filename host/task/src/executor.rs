//! A TaskManager's share of an attempt: the JobManager plans the attempt
//! ([`crate::plan_attempt`]) and places every chain subtask on an executor
//! (a TaskManager); each executor starts its own subtasks from their
//! descriptors with [`deploy_share`]. Channels between subtasks on the
//! same executor are in-process, as in [`crate::deploy_local`]; the
//! executor's [`RemoteLink`] gives a producer the output channel to a
//! consumer elsewhere and feeds the input channels from producers
//! elsewhere (in Weir, one QUIC stream per channel; see
//! [`crate::transport`]). The tasks' control and events are the same messages as for
//! local tasks; the caller forwards them.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use weir_checkpoint::{CheckpointConfig, CheckpointId, CheckpointStorage};
use weir_wasm::WasmRuntime;

use crate::attempt::{Channels, Wiring, start_tasks};
use crate::context::{JobShared, SplitTable};
use crate::deployment::{HeadDescriptor, TaskDeploymentDescriptor};
use crate::factories::load_components_of;
use crate::input::ChainInputs;
use crate::snapshot::Restored;
use crate::{JobError, JobMetrics, LocalDeployment, RunConfig};

pub use crate::channel::{ChannelMessage, ChannelReceiver, ChannelSender, Disconnected};
use crate::transport::LocalInputGate;
pub use crate::transport::OutputChannel;

/// One input channel of one consumer subtask.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChannelKey {
    /// The consumer chain's head vertex.
    pub consumer: String,
    /// The consumer subtask's index.
    pub subtask: u32,
    /// The channel's number at the consumer (its index in the consumer's
    /// input channels).
    pub channel: u32,
}

/// How an executor's channels reach subtasks on other executors (the
/// remote half of [`crate::transport`]).
pub trait RemoteLink {
    /// The output channel of a local producer for `key`, whose consumer
    /// runs on executor `to`: it carries the producer's elements there, in
    /// order, and ends the stream when it is dropped (the producer ended
    /// or failed).
    fn output(&self, to: &str, key: ChannelKey) -> Box<dyn OutputChannel>;
    /// Elements that arrive from another executor for `key` go into
    /// `channel` (credit-bounded: a channel without credit back-pressures
    /// the remote producer).
    fn input(&self, key: ChannelKey, channel: ChannelSender);
}

/// Where a checkpoint to restore from lies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreHandle {
    /// The checkpoint directory's base (`state.checkpoints.dir` as the
    /// storage was opened with: a path or a URL).
    pub base: String,
    /// The job's directory name under it.
    pub job: String,
    /// The checkpoint id.
    pub id: CheckpointId,
}

/// One executor's share of an attempt, as the JobManager sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptShare {
    /// The job's name (its checkpoint directory under
    /// `checkpoints.dir`).
    pub job_name: String,
    /// The attempt number.
    pub attempt: u32,
    /// The job's checkpoint settings (with absolute directories).
    pub checkpoints: CheckpointConfig,
    /// Batches a queue between two subtasks holds.
    pub channel_capacity: u32,
    /// Every split's name, for messages.
    pub splits: Vec<String>,
    /// The checkpoint the attempt starts from.
    pub restore: Option<RestoreHandle>,
    /// Where every chain subtask runs: per chain head vertex, the executor
    /// of each subtask index.
    pub placement: BTreeMap<String, Vec<String>>,
    /// The subtasks this executor runs.
    pub descriptors: Vec<TaskDeploymentDescriptor>,
    /// Records the UDFs are not given again ([`crate::PoisonRecords`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub poison_records: crate::PoisonRecords,
}

/// The queues of one executor's share: in-process between its own
/// subtasks, through the [`RemoteLink`] to the others.
struct ShareChannels<'a> {
    me: &'a str,
    placement: &'a BTreeMap<String, Vec<String>>,
    link: &'a dyn RemoteLink,
    /// Per consumer vertex with a subtask here: all its queues (only the
    /// local consumers' ends are used).
    inputs: HashMap<String, ChainInputs>,
}

/// Whether subtask `index` of `vertex` runs on executor `me`.
fn runs_on(placement: &BTreeMap<String, Vec<String>>, me: &str, vertex: &str, index: u32) -> bool {
    placement
        .get(vertex)
        .and_then(|p| p.get(index as usize))
        .is_some_and(|at| at == me)
}

impl ShareChannels<'_> {
    fn runs_here(&self, vertex: &str, index: u32) -> bool {
        runs_on(self.placement, self.me, vertex, index)
    }

    fn executor_of(&self, vertex: &str, index: u32) -> &str {
        self.placement
            .get(vertex)
            .and_then(|p| p.get(index as usize))
            .map_or("", String::as_str)
    }
}

impl Channels for ShareChannels<'_> {
    fn wire(&mut self, descriptor: &TaskDeploymentDescriptor) -> Wiring {
        let vertex = &descriptor.task.vertex;
        let index = descriptor.task.index;
        let (placement, me, link) = (self.placement, self.me, self.link);
        let inputs = match self.inputs.get_mut(vertex) {
            Some(queues) => {
                // Channels from producers elsewhere are fed by the link.
                if let HeadDescriptor::Input { channels } = &descriptor.head {
                    for (c, channel) in channels.iter().enumerate() {
                        if !runs_on(placement, me, &channel.from.vertex, channel.from.index)
                            && let Some(sender) = queues
                                .senders
                                .get(c)
                                .and_then(|per_consumer| per_consumer.get(index as usize))
                        {
                            link.input(
                                ChannelKey {
                                    consumer: vertex.clone(),
                                    subtask: index,
                                    channel: c as u32,
                                },
                                sender.clone(),
                            );
                        }
                    }
                }
                queues
                    .receivers
                    .get_mut(index as usize)
                    .map(std::mem::take)
                    .unwrap_or_default()
            }
            None => Vec::new(),
        };
        let mut outputs = Vec::with_capacity(descriptor.outputs.len());
        for o in &descriptor.outputs {
            let mut senders = Vec::with_capacity(o.consumer_parallelism as usize);
            for s in 0..o.consumer_parallelism {
                if self.runs_here(&o.consumer, s) {
                    let local = self
                        .inputs
                        .get(&o.consumer)
                        .and_then(|q| q.senders.get(o.channel as usize))
                        .and_then(|per_consumer| per_consumer.get(s as usize))
                        .cloned();
                    // Not planned that way without a queue; a disconnected
                    // one makes the producer fail rather than hang.
                    let sender = local.unwrap_or_else(ChannelSender::disconnected);
                    senders.push(Box::new(sender) as Box<dyn OutputChannel>);
                } else {
                    let to = self.executor_of(&o.consumer, s).to_string();
                    senders.push(self.link.output(
                        &to,
                        ChannelKey {
                            consumer: o.consumer.clone(),
                            subtask: s,
                            channel: o.channel,
                        },
                    ));
                }
            }
            outputs.push(senders);
        }
        Wiring {
            inputs: Box::new(LocalInputGate::new(inputs)),
            outputs,
        }
    }
}

/// Starts executor `me`'s share of an attempt: loads the components named
/// in its descriptors from `udfs` (operator id → `.wasm` path), opens the
/// checkpoint storage and the checkpoint to restore from, wires queues
/// (through `link` for subtasks elsewhere) and starts one thread per
/// subtask. The returned deployment has no checkpoint side (the
/// JobManager coordinates); `metrics` counts what the tasks here do.
///
/// # Errors
/// [`JobError::Load`] or [`JobError::Plan`] for a component,
/// [`JobError::Checkpoint`] when storage or the checkpoint cannot be read.
pub fn deploy_share(
    share: AttemptShare,
    me: &str,
    udfs: &HashMap<String, PathBuf>,
    state_dir: PathBuf,
    runtime: Arc<WasmRuntime>,
    metrics: Arc<JobMetrics>,
    link: &dyn RemoteLink,
) -> Result<LocalDeployment, JobError> {
    let components = load_components_of(&share.descriptors, udfs, &runtime)?;
    let error = |e: weir_checkpoint::StorageError| JobError::Checkpoint(e.to_string());
    let storage = if share.checkpoints.enabled() {
        Some(Arc::new(
            CheckpointStorage::open(&share.checkpoints, &share.job_name).map_err(error)?,
        ))
    } else {
        None
    };
    let restored = match &share.restore {
        Some(handle) => {
            let mut at = share.checkpoints.clone();
            at.dir.clone_from(&handle.base);
            let storage = CheckpointStorage::open(&at, &handle.job).map_err(error)?;
            let metadata = storage.load(handle.id).map_err(error)?;
            Some(Arc::new(Restored { storage, metadata }))
        }
        None => None,
    };
    let mut config = RunConfig::new(udfs.clone(), state_dir);
    config.metrics = metrics;
    config.channel_capacity = share.channel_capacity as usize;
    config.checkpoints = share.checkpoints.clone();
    config.runtime = Some(Arc::clone(&runtime));
    config.poison_records.clone_from(&share.poison_records);

    // Queues for every consumer vertex with a subtask here.
    let mut inputs = HashMap::new();
    let capacity = share.channel_capacity as usize;
    for d in &share.descriptors {
        if let HeadDescriptor::Input { channels } = &d.head
            && !inputs.contains_key(&d.task.vertex)
        {
            let producers = channels.len();
            let each = (capacity / producers.max(1)).max(2);
            inputs.insert(
                d.task.vertex.clone(),
                ChainInputs::new(producers, d.parallelism as usize, each),
            );
        }
    }
    let mut channels = ShareChannels {
        me,
        placement: &share.placement,
        link,
        inputs,
    };
    let rocksdb = weir_state::RocksDbShared::new(
        &config.checkpoints.rocksdb,
        crate::context::slots_of(&share.descriptors),
    );
    let shared = Arc::new(JobShared {
        exactly_once: config.checkpoints.exactly_once,
        config,
        splits: SplitTable {
            names: share.splits.clone(),
        },
        started: std::time::Instant::now(),
        storage,
        restored,
        components,
        _runtime: runtime,
        rocksdb,
    });
    let deployment = start_tasks(&shared, share.descriptors, &mut channels);
    drop(channels);
    Ok(deployment)
}
