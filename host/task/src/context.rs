//! What the tasks of one attempt on this executor share: the run
//! configuration, the loaded components, the split table, the checkpoint
//! storage and the checkpoint the attempt restores.

use std::collections::HashMap;
use std::sync::Arc;

use weir_wasm::{AggregateComponent, OperatorComponent};

use weir_checkpoint::CheckpointStorage;
use weir_types::Origin;

use crate::snapshot::Restored;
use crate::{JobMetrics, RunConfig};

/// A loaded component: an operator UDF or a window's aggregate function.
pub(crate) enum Component {
    Operator(Arc<OperatorComponent>),
    Aggregate(Arc<AggregateComponent>),
}

/// Names of all splits of a job, so an [`Origin`] can be shown as `file:line`.
#[derive(Debug, Clone, Default)]
pub struct SplitTable {
    pub(crate) names: Vec<String>,
}

impl SplitTable {
    /// `file:line` (or `generator#seq`) of an origin.
    pub fn describe(&self, origin: Origin) -> String {
        match self.names.get(origin.split as usize) {
            Some(name) => format!("{name}:{}", origin.position),
            None => crate::DERIVED_ORIGIN.to_string(),
        }
    }

    /// The span of a batch: `file:first-last` when it comes from one split.
    pub fn describe_batch(&self, origins: &[Origin]) -> Option<String> {
        let (first, last) = (origins.first()?, origins.last()?);
        if first.split == last.split && origins.iter().all(|o| o.split == first.split) {
            let name = self.names.get(first.split as usize)?;
            Some(format!(
                "one of the records {name}:{}-{}",
                first.position, last.position
            ))
        } else {
            Some(format!(
                "one of {} records from {} to {}",
                origins.len(),
                self.describe(*first),
                self.describe(*last)
            ))
        }
    }
}

/// Shared by the tasks of one attempt. Everything a single task needs
/// comes with its deployment descriptor.
pub(crate) struct JobShared {
    pub(crate) config: RunConfig,
    /// Every split's name, for messages.
    pub(crate) splits: SplitTable,
    /// Processing time origin for watermark idleness.
    pub(crate) started: std::time::Instant,
    /// Checkpoint storage, when checkpoints are on.
    pub(crate) storage: Option<Arc<CheckpointStorage>>,
    /// Barriers block producers (exactly-once) or not (at-least-once).
    pub(crate) exactly_once: bool,
    /// The checkpoint this attempt starts from.
    pub(crate) restored: Option<Arc<Restored>>,
    /// The loaded components, by operator id.
    pub(crate) components: HashMap<String, Component>,
    /// Their runtime, kept while any task runs (its epoch ticker enforces
    /// call timeouts).
    pub(crate) _runtime: Arc<weir_wasm::WasmRuntime>,
}

impl JobShared {
    pub(crate) fn metrics(&self) -> &JobMetrics {
        &self.config.metrics
    }

    /// Processing time in ms since the attempt started.
    pub(crate) fn now_ms(&self) -> i64 {
        i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
}
