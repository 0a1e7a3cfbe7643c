//! Input records a job's UDFs fail on attempt after attempt: counted per
//! record, and ruled out (dead-lettered from the next attempt on) when the
//! operator's `on_error` is `dead-letter`.

use std::collections::BTreeMap;

use weir_task::JobError;
use weir_types::jobgraph::JobGraph;

/// The input records a job's UDFs failed on: how many attempts failed on
/// each, and those no longer passed to the UDF.
#[derive(Debug, Default)]
pub(crate) struct PoisonState {
    /// Attempts that failed on `(operator, origin)`.
    failures: BTreeMap<(String, String), u32>,
    /// Records dead-lettered from the next attempt on.
    pub(crate) records: weir_task::PoisonRecords,
}

impl PoisonState {
    /// Counts a failed attempt. When a UDF whose operator dead-letters bad
    /// records failed on one known input record `limit` times, the record
    /// is ruled out and the answer is `true`: the next attempt starts at
    /// once (`FailureKind::PoisonRecord`).
    pub(crate) fn failed(&mut self, graph: &JobGraph, error: &JobError, limit: u32) -> bool {
        let JobError::Task {
            vertex,
            origin: Some(origin),
            kind,
            message,
            ..
        } = error
        else {
            // Another failure breaks every record's run of failures.
            self.failures.clear();
            return false;
        };
        // Only consecutive failed attempts on the same record count.
        let key = (vertex.clone(), origin.clone());
        self.failures.retain(|k, _| *k == key);
        let udf_failure = matches!(
            kind,
            weir_task::TaskFailureKind::Trap
                | weir_task::TaskFailureKind::Timeout
                | weir_task::TaskFailureKind::MemoryLimit
                | weir_task::TaskFailureKind::UdfError
        );
        let dead_letters = graph
            .operators
            .iter()
            .any(|o| o.id == *vertex && o.on_error == weir_types::jobgraph::OnError::DeadLetter);
        // A batch call that failed names a span of records, not one; a
        // record a UDF produced has no position of its own.
        let one_record = !origin.starts_with("one of ") && origin != weir_task::DERIVED_ORIGIN;
        // A record ruled out already cannot fail again: a failure naming it
        // is another one, left to the restart strategy.
        let known = self
            .records
            .get(vertex)
            .is_some_and(|r| r.contains_key(origin));
        if !udf_failure || !dead_letters || !one_record || known || limit == 0 {
            return false;
        }
        let n = self.failures.entry(key).or_insert(0);
        *n += 1;
        if *n < limit {
            return false;
        }
        self.records
            .entry(vertex.clone())
            .or_default()
            .insert(origin.clone(), message.clone());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(on_error: &str) -> JobGraph {
        let yaml = format!(
            "name: p\nsources:\n  - {{ id: src, type: datagen, count: 10 }}\noperators:\n  - id: guard\n    input: src\n    udf: guard.wasm\n    on_error: {on_error}\nsinks:\n  - {{ id: out, input: guard, type: blackhole }}\n"
        );
        JobGraph::from_yaml(&yaml, std::path::Path::new("p.yaml")).unwrap()
    }

    fn trap(origin: &str) -> JobError {
        JobError::Task {
            vertex: "guard".into(),
            index: 0,
            parallelism: 1,
            origin: Some(origin.into()),
            kind: weir_task::TaskFailureKind::Trap,
            message: "panicked".into(),
        }
    }

    #[test]
    fn a_record_is_ruled_out_after_the_limit_of_failures_in_a_row_only() {
        let g = graph("dead-letter");
        let mut p = PoisonState::default();
        assert!(!p.failed(&g, &trap("a.csv:7"), 3));
        assert!(!p.failed(&g, &trap("a.csv:7"), 3));
        // Another record breaks the run.
        assert!(!p.failed(&g, &trap("a.csv:9"), 3));
        assert!(!p.failed(&g, &trap("a.csv:7"), 3));
        assert!(!p.failed(&g, &trap("a.csv:7"), 3));
        assert!(p.failed(&g, &trap("a.csv:7"), 3));
        assert_eq!(p.records["guard"]["a.csv:7"], "panicked");
        // Ruled out already: a failure naming it again is left to the
        // restart strategy (no endless immediate restarts).
        assert!(!p.failed(&g, &trap("a.csv:7"), 3));
    }

    #[test]
    fn spans_derived_records_other_policies_and_no_limit_are_never_ruled_out() {
        let mut p = PoisonState::default();
        let g = graph("dead-letter");
        for origin in ["one of the records a.csv:2-401", weir_task::DERIVED_ORIGIN] {
            for _ in 0..5 {
                assert!(!p.failed(&g, &trap(origin), 2), "{origin}");
            }
        }
        for _ in 0..5 {
            assert!(!p.failed(&g, &trap("a.csv:7"), 0));
            assert!(!p.failed(&graph("fail"), &trap("a.csv:7"), 2));
        }
        assert!(p.records.is_empty());
    }
}
