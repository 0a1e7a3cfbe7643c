//! The transport seam without sockets: one attempt split over two
//! executors whose remote channels are the test's own [`RemoteLink`] (an
//! output channel that is not an in-process queue), against the same job
//! run all in-process. The keyed window's results must be the same, and
//! the elements must really have crossed the link.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_task::control::TaskEvent;
use weir_task::executor::{
    AttemptShare, ChannelKey, ChannelMessage, ChannelSender, Disconnected, OutputChannel,
    RemoteLink, deploy_share,
};
use weir_task::{JobMetrics, LocalDeployment, RunConfig};
use weir_types::StreamElement;
use weir_types::jobgraph::JobGraph;

/// Nexmark bids, a keyed tumbling count per auction, a file sink.
fn job(out: &Path) -> JobGraph {
    let yaml = format!(
        r#"
name: seam
parallelism: 2
sources:
  - id: bids
    type: nexmark
    events: 20000
    seed: 7
    kinds: [bid]
    watermarks: {{ max_out_of_orderness: 0ms }}
operators:
  - id: per-auction
    input: {{ from: bids, key: auction }}
    partition: key_by
    window: {{ type: tumbling, size: 10s, key_field: auction }}
    aggregate: [{{ fn: count, as: num }}]
sinks:
  - {{ id: out, input: per-auction, type: file, path: {} }}
"#,
        out.display()
    );
    JobGraph::from_yaml(&yaml, Path::new("seam.yaml")).unwrap()
}

/// Registered input channels, by channel, shared by both executors.
type Inputs = Arc<Mutex<HashMap<ChannelKey, ChannelSender>>>;

struct Loopback {
    inputs: Inputs,
    /// Elements that crossed from one executor to the other.
    crossed: Arc<AtomicU64>,
    /// Remote channels opened, and ends of input that crossed.
    opened: Arc<AtomicU64>,
    ended: Arc<AtomicU64>,
}

impl RemoteLink for Loopback {
    fn output(&self, _to: &str, key: ChannelKey) -> Box<dyn OutputChannel> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        Box::new(LoopbackOutput {
            inputs: Arc::clone(&self.inputs),
            key,
            target: None,
            crossed: Arc::clone(&self.crossed),
            ended: Arc::clone(&self.ended),
        })
    }

    fn input(&self, key: ChannelKey, channel: ChannelSender) {
        self.inputs.lock().unwrap().insert(key, channel);
    }
}

/// Finds its consumer's channel on the first send (the other executor may
/// not have registered it yet), as a network stream would.
#[derive(Debug)]
struct LoopbackOutput {
    inputs: Inputs,
    key: ChannelKey,
    target: Option<ChannelSender>,
    crossed: Arc<AtomicU64>,
    ended: Arc<AtomicU64>,
}

impl OutputChannel for LoopbackOutput {
    fn send(
        &mut self,
        message: ChannelMessage,
        _blocked_ns: Option<&AtomicU64>,
    ) -> Result<(), Disconnected> {
        let started = Instant::now();
        while self.target.is_none() {
            self.target = self.inputs.lock().unwrap().get(&self.key).cloned();
            if started.elapsed() > Duration::from_secs(30) {
                return Err(Disconnected);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.crossed.fetch_add(1, Ordering::Relaxed);
        // The remote consumer rebuilds the channel number from the stream.
        let (_, element) = message;
        if element == StreamElement::EndOfInput {
            self.ended.fetch_add(1, Ordering::Relaxed);
        }
        self.target
            .as_ref()
            .unwrap()
            .send((self.key.channel, element))
    }
}

/// Reads events until every task exited; panics on a failure.
fn wait_for(deployments: Vec<LocalDeployment>) {
    for deployment in deployments {
        let mut running = deployment.tasks.len();
        while running > 0 {
            match deployment
                .events
                .recv_timeout(Duration::from_secs(60))
                .expect("the tasks ended")
            {
                TaskEvent::Failed { task, error } => panic!("{task:?} failed: {error}"),
                TaskEvent::Exited { .. } => running -= 1,
                _ => {}
            }
        }
        deployment.threads.join();
    }
}

/// Every line of every file under `dir`, sorted.
fn lines(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.extend(
                    std::fs::read_to_string(&path)
                        .unwrap()
                        .lines()
                        .map(str::to_string),
                );
            }
        }
    }
    out.sort();
    out
}

fn config(dir: &Path) -> RunConfig {
    let mut config = RunConfig::new(HashMap::new(), dir.join("state"));
    config.cache_dir = None;
    config
}

#[test]
fn two_executors_joined_by_a_remote_link_give_the_in_process_result() {
    let tmp = tempfile::tempdir().unwrap();

    // All in-process.
    let local_out = tmp.path().join("local");
    let local = weir_task::deploy_local(&job(&local_out), &config(tmp.path()), None, 0).unwrap();
    wait_for(vec![local]);

    // Split over executors "a" (even subtasks) and "b" (odd ones).
    let split_out = tmp.path().join("split");
    let job = job(&split_out);
    let config = config(tmp.path());
    let plan = weir_task::plan_attempt(&job, &config, None, 0).unwrap();
    let executor_of = |index: u32| if index.is_multiple_of(2) { "a" } else { "b" };
    let mut placement: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in &plan.descriptors {
        let slots = placement.entry(d.task.vertex.clone()).or_default();
        slots.resize(d.parallelism as usize, String::new());
        slots[d.task.index as usize] = executor_of(d.task.index).to_string();
    }
    let link = Loopback {
        inputs: Arc::default(),
        crossed: Arc::default(),
        opened: Arc::default(),
        ended: Arc::default(),
    };
    let runtime = Arc::new(
        weir_wasm::WasmRuntime::new(weir_wasm::RuntimeConfig { cache_dir: None }).unwrap(),
    );
    let mut deployments = Vec::new();
    for me in ["a", "b"] {
        let share = AttemptShare {
            job_name: job.name.clone(),
            attempt: 0,
            checkpoints: config.checkpoints.clone(),
            channel_capacity: 8,
            splits: plan.splits.clone(),
            restore: None,
            placement: placement.clone(),
            descriptors: plan
                .descriptors
                .iter()
                .filter(|d| executor_of(d.task.index) == me)
                .cloned()
                .collect(),
            poison_records: Default::default(),
        };
        let state: PathBuf = tmp.path().join(format!("state-{me}"));
        deployments.push(
            deploy_share(
                share,
                me,
                &HashMap::new(),
                state,
                Arc::clone(&runtime),
                Arc::new(JobMetrics::new()),
                &link,
            )
            .unwrap(),
        );
    }
    wait_for(deployments);

    let expected = lines(&local_out);
    assert!(expected.len() > 100, "{} windows", expected.len());
    let got = lines(&split_out);
    let first_difference = got.iter().zip(&expected).position(|(g, e)| g != e);
    assert!(
        got.len() == expected.len() && first_difference.is_none(),
        "{} windows split against {} in-process; first difference at {first_difference:?}",
        got.len(),
        expected.len()
    );
    // Source subtask i feeds window subtasks 0 and 1: one channel each way
    // crosses, and each ended exactly once after its records.
    let opened = link.opened.load(Ordering::Relaxed);
    assert_eq!(opened, 2);
    assert_eq!(link.ended.load(Ordering::Relaxed), opened);
    assert!(link.crossed.load(Ordering::Relaxed) > opened);
}
