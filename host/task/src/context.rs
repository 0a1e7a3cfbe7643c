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

    /// The name of split `split` (`None` for a derived record's).
    pub(crate) fn name(&self, split: u32) -> Option<&str> {
        self.names.get(split as usize).map(String::as_str)
    }

    /// The span of a batch: `one of the records file:first-last` when it
    /// comes from one split (read back by [`OriginSpan::parse`]).
    pub fn describe_batch(&self, origins: &[Origin]) -> Option<String> {
        let (first, last) = (origins.first()?, origins.last()?);
        if first.split == last.split && origins.iter().all(|o| o.split == first.split) {
            let name = self.names.get(first.split as usize)?;
            let (low, high) = origins.iter().fold((u64::MAX, 0), |(l, h), o| {
                (l.min(o.position), h.max(o.position))
            });
            Some(format!("{SPAN_PREFIX}{name}:{low}-{high}"))
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

/// How [`SplitTable::describe_batch`] starts the span of a batch of one split.
const SPAN_PREFIX: &str = "one of the records ";

/// The records of one split a batch call failed on, as the failure's
/// origin names them (`one of the records file:first-last`): the UDF did
/// not say which record it failed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginSpan<'a> {
    /// The split's name (a file's path).
    pub split: &'a str,
    /// The smallest position (line) in the batch.
    pub first: u64,
    /// The largest one.
    pub last: u64,
}

impl<'a> OriginSpan<'a> {
    /// Reads the origin of a failed batch call; `None` for anything else
    /// (one record's `file:line`, a batch from several splits, a record
    /// produced upstream).
    pub fn parse(origin: &'a str) -> Option<Self> {
        let rest = origin.strip_prefix(SPAN_PREFIX)?;
        let (split, range) = rest.rsplit_once(':')?;
        let (first, last) = range.split_once('-')?;
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        Some(Self {
            split,
            first: number(first)?,
            last: number(last)?,
        })
    }

    /// Whether one record's origin (`file:line`, as
    /// [`SplitTable::describe`] writes it) lies in the span.
    pub fn contains(&self, record: &str) -> bool {
        record
            .rsplit_once(':')
            .and_then(|(split, at)| Some((split, at.parse::<u64>().ok()?)))
            .is_some_and(|(split, at)| {
                split == self.split && (self.first..=self.last).contains(&at)
            })
    }

    /// The records both spans hold, if any.
    pub fn intersection(&self, other: &OriginSpan<'_>) -> Option<OriginSpan<'a>> {
        let (first, last) = (self.first.max(other.first), self.last.min(other.last));
        (self.split == other.split && first <= last).then_some(OriginSpan {
            split: self.split,
            first,
            last,
        })
    }

    /// Whether the record at `position` of the split named `split` lies in it.
    pub(crate) fn covers(&self, split: &str, position: u64) -> bool {
        split == self.split && (self.first..=self.last).contains(&position)
    }
}

impl std::fmt::Display for OriginSpan<'_> {
    /// As [`SplitTable::describe_batch`] writes a span.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{SPAN_PREFIX}{}:{}-{}",
            self.split, self.first, self.last
        )
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
    /// The block cache and memtable budget the RocksDB instances of this
    /// attempt's subtasks in this process share.
    pub(crate) rocksdb: weir_state::RocksDbShared,
}

/// The slots `descriptors` take in one process: as in Flink's slot
/// sharing, subtask `i` of every vertex shares slot `i`, so the number of
/// distinct subtask indices (at least 1).
pub(crate) fn slots_of(descriptors: &[crate::deployment::TaskDeploymentDescriptor]) -> u32 {
    let indices: std::collections::BTreeSet<u32> =
        descriptors.iter().map(|d| d.task.index).collect();
    u32::try_from(indices.len()).unwrap_or(u32::MAX).max(1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_span_reads_back_and_holds_exactly_its_records() {
        let splits = SplitTable {
            names: vec!["data/a-1.csv".into(), "b.csv".into()],
        };
        let at = |split, position| Origin { split, position };
        let described = splits
            .describe_batch(&[at(0, 7), at(0, 3), at(0, 12)])
            .unwrap();
        assert_eq!(described, "one of the records data/a-1.csv:3-12");
        let span = OriginSpan::parse(&described).unwrap();
        assert_eq!(
            span,
            OriginSpan {
                split: "data/a-1.csv",
                first: 3,
                last: 12
            }
        );
        for (origin, inside) in [
            ("data/a-1.csv:3", true),
            ("data/a-1.csv:12", true),
            ("data/a-1.csv:13", false),
            ("data/a-1.csv:2", false),
            ("b.csv:5", false),
            ("data/a-1.csv", false),
        ] {
            assert_eq!(span.contains(origin), inside, "{origin}");
        }
        assert!(span.covers("data/a-1.csv", 5) && !span.covers("b.csv", 5));
        assert_eq!(span.to_string(), described);
        let later = OriginSpan::parse("one of the records data/a-1.csv:10-40").unwrap();
        assert_eq!(
            span.intersection(&later).unwrap().to_string(),
            "one of the records data/a-1.csv:10-12"
        );
        let apart = OriginSpan::parse("one of the records data/a-1.csv:13-40").unwrap();
        assert_eq!(span.intersection(&apart), None);
        // Split names with colons, dashes and digits read back whole.
        for name in ["C:\\data\\a-1.csv", "topic:0", "s3://b/2024-01-02.csv"] {
            let splits = SplitTable {
                names: vec![name.to_string()],
            };
            let described = splits.describe_batch(&[at(0, 4), at(0, 9)]).unwrap();
            let span = OriginSpan::parse(&described).unwrap();
            assert_eq!((span.split, span.first, span.last), (name, 4, 9));
            assert!(span.contains(&splits.describe(at(0, 5))));
        }
        assert_eq!(OriginSpan::parse("one of the records a.csv:+3-9"), None);
        let mixed = splits.describe_batch(&[at(0, 1), at(1, 2)]).unwrap();
        for other in [mixed.as_str(), "data/a-1.csv:3", crate::DERIVED_ORIGIN] {
            assert_eq!(OriginSpan::parse(other), None, "{other}");
        }
    }
}
