//! Deployment descriptors: everything one subtask needs to run, owned and
//! serialisable (Flink's `TaskDeploymentDescriptor`), produced by planning
//! an attempt.
//!
//! A descriptor names its channels by vertex and subtask, not by queue:
//! the executor that runs it (today threads of one process, with
//! in-process queues; later a TaskManager, with network streams to
//! subtasks elsewhere) connects them.

use serde::{Deserialize, Serialize};
use weir_checkpoint::CheckpointId;
use weir_connectors::Split;
use weir_types::KeyGroupRange;
use weir_types::jobgraph::{
    JobGraph, OperatorSpec, Partitioning, SinkSpec, SourceSpec, StateBackendKind,
};

use crate::graph::{Plan, VertexKind};

/// A subtask of a job: the vertex heading its chain and its 0-based index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SubtaskId {
    /// The vertex id (of the chain's head).
    pub vertex: String,
    /// 0-based subtask index.
    pub index: u32,
}

impl std::fmt::Display for SubtaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.vertex, self.index)
    }
}

/// What one subtask runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDeploymentDescriptor {
    /// The job's name (checkpoint storage is per job name).
    pub job: String,
    /// 0 on the first attempt, then one more per restart.
    pub attempt: u32,
    /// This subtask.
    pub task: SubtaskId,
    /// Parallelism of the chain.
    pub parallelism: u32,
    /// The job's number of key groups.
    pub max_parallelism: u16,
    /// The key groups this subtask owns (its keyed state and timers).
    pub key_groups: KeyGroupRange,
    /// Records per batch a source reads.
    pub batch_size: usize,
    /// Where keyed state lives.
    pub state_backend: StateBackendKind,
    /// The chained vertices, head first.
    pub chain: Vec<ChainedVertex>,
    /// Where the chain's batches come from.
    pub head: HeadDescriptor,
    /// Where the chain's last vertex sends its outputs.
    pub outputs: Vec<OutputDescriptor>,
    /// The checkpoint this subtask restores, if any.
    pub restore: Option<TaskRestore>,
}

/// A vertex in a subtask's chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainedVertex {
    /// The vertex id.
    pub id: String,
    /// What it is, as the job file says.
    pub spec: VertexSpec,
    /// Is an input partitioned by key (so it has keyed state)?
    pub keyed: bool,
    /// Its component (a path or `artifact:<sha256>`), for a UDF or a
    /// window with an aggregate component.
    pub artifact: Option<String>,
}

/// A vertex's job-file entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum VertexSpec {
    /// A source.
    Source(SourceSpec),
    /// An operator (UDF or built-in).
    Operator(Box<OperatorSpec>),
    /// A sink.
    Sink(SinkSpec),
}

/// The head of a chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum HeadDescriptor {
    /// A source subtask and the splits it reads.
    Source {
        /// Its splits (indices into the job's split table).
        splits: Vec<Split>,
    },
    /// A subtask with inputs: one channel per producer subtask, numbered
    /// in this order (the barrier aligner's and watermark tracker's index).
    Input {
        /// The producers.
        channels: Vec<InputChannel>,
    },
}

/// One producer subtask feeding a subtask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputChannel {
    /// The producer task (named by the head of its chain).
    pub from: SubtaskId,
    /// Which input of the head vertex it feeds (a join's left input is 0).
    pub input: usize,
}

/// One consumer vertex of the chain's last vertex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputDescriptor {
    /// The side output it reads (`None`: the main output).
    pub output: Option<String>,
    /// The consumer (head of a chain).
    pub consumer: String,
    /// The consumer's parallelism.
    pub consumer_parallelism: u32,
    /// How records reach the consumer's subtasks.
    pub partitioning: Partitioning,
    /// Field to re-key records by before partitioning.
    pub key: Option<String>,
    /// This subtask's channel number at every consumer subtask (its index
    /// in their [`HeadDescriptor::Input`] channels).
    pub channel: u32,
}

/// What a subtask restores.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRestore {
    /// The completed checkpoint (or savepoint).
    pub checkpoint: CheckpointId,
    /// The chain ran at another parallelism then: state is split by key
    /// group, splits by index, operator state evenly.
    pub rescaled: bool,
    /// State files (relative to the checkpoint's storage) of the old
    /// subtasks whose state this one takes over, as `(old subtask, file)`.
    pub state_files: Vec<(String, String)>,
}

/// Where every subtask's restored state comes from: the completed
/// checkpoint's id, the parallelism of each chain head then, and each old
/// subtask's state file.
pub(crate) struct RestoreSource<'a> {
    pub(crate) checkpoint: CheckpointId,
    pub(crate) parallelism: &'a std::collections::BTreeMap<String, u32>,
    pub(crate) files: &'a std::collections::BTreeMap<String, Option<String>>,
}

/// The descriptors of every subtask of `plan`, chain by chain.
/// `splits[v]` are source vertex `v`'s splits per subtask, `artifact(op)`
/// names an operator's component.
pub(crate) fn descriptors(
    job: &JobGraph,
    plan: &Plan<'_>,
    mut splits: std::collections::HashMap<usize, Vec<Vec<Split>>>,
    artifact: impl Fn(&str) -> Option<String>,
    restore: Option<&RestoreSource<'_>>,
    attempt: u32,
) -> Vec<TaskDeploymentDescriptor> {
    let mut out = Vec::new();
    for chain in &plan.chains {
        let head_index = chain.vertices[0];
        let head = &plan.vertices[head_index];
        let tail = &plan.vertices[*chain.vertices.last().unwrap_or(&head_index)];
        let chained: Vec<ChainedVertex> = chain
            .vertices
            .iter()
            .map(|&v| {
                let vertex = &plan.vertices[v];
                let spec = match vertex.kind {
                    VertexKind::Source(s) => VertexSpec::Source(s.clone()),
                    VertexKind::Operator(o) => VertexSpec::Operator(Box::new(o.clone())),
                    VertexKind::Sink(s) => VertexSpec::Sink(s.clone()),
                };
                ChainedVertex {
                    id: vertex.id.to_string(),
                    artifact: matches!(vertex.kind, VertexKind::Operator(_))
                        .then(|| artifact(vertex.id))
                        .flatten(),
                    spec,
                    keyed: vertex.is_keyed(),
                }
            })
            .collect();
        for index in 0..head.parallelism {
            let task = SubtaskId {
                vertex: head.id.to_string(),
                index,
            };
            let head_descriptor = if head.inputs.is_empty() {
                let mine = splits
                    .get_mut(&head_index)
                    .and_then(|s| s.get_mut(index as usize))
                    .map(std::mem::take)
                    .unwrap_or_default();
                HeadDescriptor::Source { splits: mine }
            } else {
                let channels = head
                    .inputs
                    .iter()
                    .enumerate()
                    .flat_map(|(input, edge)| {
                        // Tasks are named by their chain's head.
                        let producer = &plan.vertices[edge.from];
                        let task = plan
                            .chains
                            .iter()
                            .find(|c| c.vertices.contains(&edge.from))
                            .map_or(producer.id, |c| plan.vertices[c.vertices[0]].id);
                        (0..producer.parallelism).map(move |i| InputChannel {
                            from: SubtaskId {
                                vertex: task.to_string(),
                                index: i,
                            },
                            input,
                        })
                    })
                    .collect();
                HeadDescriptor::Input { channels }
            };
            let outputs = tail
                .consumers
                .iter()
                .map(|&(consumer, edge_index)| {
                    let target = &plan.vertices[consumer];
                    let edge = target.inputs[edge_index];
                    OutputDescriptor {
                        output: edge.output.map(str::to_string),
                        consumer: target.id.to_string(),
                        consumer_parallelism: target.parallelism,
                        partitioning: edge.partition,
                        key: edge.key.map(str::to_string),
                        channel: plan.producer_offset(consumer, edge_index) + index,
                    }
                })
                .collect();
            let restore = restore.map(|r| {
                let old = r.parallelism.get(head.id).copied();
                let olds: Vec<u32> = match old {
                    Some(old) if old == head.parallelism => vec![index],
                    Some(old) => (0..old).collect(),
                    None => Vec::new(), // a vertex the checkpoint does not know
                };
                TaskRestore {
                    checkpoint: r.checkpoint,
                    rescaled: old.is_some_and(|old| old != head.parallelism),
                    state_files: olds
                        .into_iter()
                        .filter_map(|i| {
                            let name = crate::snapshot::task_name(head.id, i);
                            let file = r.files.get(&name)?.clone()?;
                            Some((name, file))
                        })
                        .collect(),
                }
            });
            out.push(TaskDeploymentDescriptor {
                job: job.name.clone(),
                attempt,
                task,
                parallelism: head.parallelism,
                max_parallelism: job.max_parallelism,
                key_groups: KeyGroupRange::for_subtask(
                    index,
                    head.parallelism,
                    job.max_parallelism,
                ),
                batch_size: job.batch_size,
                state_backend: job.state_backend,
                chain: chained.clone(),
                head: head_descriptor,
                outputs,
                restore,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};
    use std::path::Path;

    const JOB: &str = "name: t\nparallelism: 2\nmax_parallelism: 8\nsources: [{id: src, type: datagen, count: 10, parallelism: 1}]\noperators:\n  - {id: a, input: src, udf: a.wasm, parallelism: 1}\n  - {id: b, input: a, partition: key_by, udf: b.wasm}\nsinks: [{id: out, input: b, type: blackhole}]\n";

    fn plan_descriptors(restore: Option<&RestoreSource<'_>>) -> Vec<TaskDeploymentDescriptor> {
        let job = JobGraph::from_yaml(JOB, Path::new("t.yaml")).expect("valid job");
        let plan = Plan::new(&job);
        descriptors(
            &job,
            &plan,
            HashMap::new(),
            |op| Some(format!("artifact:{op}")),
            restore,
            1,
        )
    }

    #[test]
    fn descriptors_name_their_key_groups_channels_and_artifacts() {
        let all = plan_descriptors(None);
        let names: Vec<String> = all.iter().map(|d| d.task.to_string()).collect();
        assert_eq!(names, ["src#0", "b#0", "b#1"]);
        let src = &all[0];
        let chain: Vec<&str> = src.chain.iter().map(|v| v.id.as_str()).collect();
        assert_eq!(chain, ["src", "a"]);
        assert_eq!(src.chain[1].artifact.as_deref(), Some("artifact:a"));
        assert_eq!(src.chain[0].artifact, None);
        assert_eq!(src.outputs.len(), 1);
        assert_eq!(src.outputs[0].consumer, "b");
        assert_eq!(src.outputs[0].partitioning, Partitioning::KeyBy);
        assert_eq!(src.outputs[0].channel, 0);
        let (b0, b1) = (&all[1], &all[2]);
        assert_eq!(
            (
                b0.key_groups.start,
                b0.key_groups.end,
                b1.key_groups.start,
                b1.key_groups.end
            ),
            (0, 3, 4, 7)
        );
        assert!(b0.chain[0].keyed);
        assert_eq!(
            b1.head,
            HeadDescriptor::Input {
                channels: vec![InputChannel {
                    from: SubtaskId {
                        vertex: "src".into(),
                        index: 0
                    },
                    input: 0
                }]
            }
        );
        assert!(b1.outputs.is_empty(), "the sink is chained to b");
        assert_eq!(b1.attempt, 1);
    }

    #[test]
    fn a_rescaled_restore_takes_every_old_state_file() {
        let parallelism = BTreeMap::from([("src".to_string(), 1), ("b".to_string(), 3)]);
        let files = BTreeMap::from([
            ("src#0".to_string(), Some("chk-4/src#0".to_string())),
            ("b#0".to_string(), Some("chk-4/b#0".to_string())),
            ("b#1".to_string(), None),
            ("b#2".to_string(), Some("chk-4/b#2".to_string())),
        ]);
        let source = RestoreSource {
            checkpoint: 4,
            parallelism: &parallelism,
            files: &files,
        };
        let all = plan_descriptors(Some(&source));
        let src = all[0].restore.as_ref().unwrap();
        assert!(!src.rescaled);
        assert_eq!(src.state_files, [("src#0".into(), "chk-4/src#0".into())]);
        let b1 = all[2].restore.as_ref().unwrap();
        assert!(b1.rescaled);
        assert_eq!(b1.checkpoint, 4);
        let names: Vec<&str> = b1.state_files.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(names, ["b#0", "b#2"]);
    }

    #[test]
    fn descriptors_round_trip_through_serde() {
        let all = plan_descriptors(None);
        let json = serde_json::to_string(&all).unwrap();
        let back: Vec<TaskDeploymentDescriptor> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, all);
    }
}
