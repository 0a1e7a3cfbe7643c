//! Input records a job's UDFs fail on attempt after attempt: counted per
//! record, and ruled out (dead-lettered from the next attempt on) when the
//! operator's `on_error` is `dead-letter`; batches that fail without
//! naming a record are taken apart record by record until one does.

use std::collections::BTreeMap;

use weir_task::JobError;
use weir_types::jobgraph::JobGraph;

/// What a failed attempt made of the records it failed on; the next
/// attempt starts at once (`FailureKind::PoisonRecord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PoisonVerdict {
    /// The record failed `limit` attempts in a row: dead-lettered from now on.
    RuledOut,
    /// A batch failed `limit` attempts in a row without naming its record:
    /// its records go to the UDF one per call from now on.
    SuspectSpan,
    /// The record of such a batch, found: dead-lettered from now on.
    FoundInSpan,
}

impl PoisonVerdict {
    /// What the JobManager does about it, for the attempt's failure message.
    pub(crate) fn explain(self, limit: u32) -> String {
        match self {
            Self::RuledOut => format!(
                "the same record failed {limit} attempts in a row: from the next attempt on \
                 it goes to the dead letters instead"
            ),
            Self::SuspectSpan => format!(
                "the same batch failed {limit} attempts in a row without the UDF saying on \
                 which record: the next attempt gives it these records one per call to find it"
            ),
            Self::FoundInSpan => "the record the batch failed on, found: from the next attempt \
                                  on it goes to the dead letters instead"
                .to_string(),
        }
    }
}

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
    ///
    /// A batch call that failed without saying on which record names its
    /// batch's span instead (`one of the records file:first-last`). After
    /// `limit` such failures in a row the span becomes a suspect (kept
    /// beside the ruled-out records): the next attempt gives the UDF the
    /// span's records one per call, so its failure names the record, which
    /// is then ruled out at once.
    pub(crate) fn failed(
        &mut self,
        graph: &JobGraph,
        error: &JobError,
        limit: u32,
    ) -> Option<PoisonVerdict> {
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
            return None;
        };
        // Only consecutive failed attempts on the same record count; spans
        // of batches count as the same while they overlap (an attempt
        // restored from a checkpoint may cut its batches elsewhere), as
        // the records they share.
        let origin = &self
            .same_span(vertex, origin)
            .unwrap_or_else(|| origin.clone());
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
        // A batch call that failed without saying which record names the
        // span of its batch (of one split); a record a UDF produced has no
        // position of its own; a batch of several splits names no span.
        let span = weir_task::OriginSpan::parse(origin).is_some();
        let one_record =
            !span && !origin.starts_with("one of ") && origin != weir_task::DERIVED_ORIGIN;
        // A record (or span) ruled out already cannot fail again: a failure
        // naming it is another one, left to the restart strategy.
        let ruled_out = self.records.get(vertex);
        let known = ruled_out.is_some_and(|r| r.contains_key(origin));
        if !udf_failure || !dead_letters || !(one_record || span) || known || limit == 0 {
            return None;
        }
        // The record found in a span that failed `limit` times (its batch
        // went to the UDF one record per call): ruled out at once.
        let in_suspect_span = one_record
            && ruled_out.is_some_and(|r| {
                r.keys()
                    .filter_map(|k| weir_task::OriginSpan::parse(k))
                    .any(|s| s.contains(origin))
            });
        let n = self.failures.entry(key).or_insert(0);
        *n += 1;
        if *n < limit && !in_suspect_span {
            return None;
        }
        self.records
            .entry(vertex.clone())
            .or_default()
            .insert(origin.clone(), message.clone());
        Some(match (span, in_suspect_span) {
            (true, _) => PoisonVerdict::SuspectSpan,
            (false, true) => PoisonVerdict::FoundInSpan,
            (false, false) => PoisonVerdict::RuledOut,
        })
    }
}

impl PoisonState {
    /// When `origin` is a span and the run of failures so far is one of
    /// `vertex` on an overlapping span: the records both hold, as a span
    /// whose count goes on (the run's key is renamed to it).
    fn same_span(&mut self, vertex: &str, origin: &str) -> Option<String> {
        let span = weir_task::OriginSpan::parse(origin)?;
        let ((v, earlier), n) = self.failures.iter().next()?;
        let both = (v == vertex)
            .then(|| weir_task::OriginSpan::parse(earlier))
            .flatten()?
            .intersection(&span)?
            .to_string();
        let n = *n;
        self.failures.clear();
        self.failures.insert((vertex.to_string(), both.clone()), n);
        Some(both)
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
        assert_eq!(p.failed(&g, &trap("a.csv:7"), 3), None);
        assert_eq!(p.failed(&g, &trap("a.csv:7"), 3), None);
        // Another record breaks the run.
        assert_eq!(p.failed(&g, &trap("a.csv:9"), 3), None);
        assert_eq!(p.failed(&g, &trap("a.csv:7"), 3), None);
        assert_eq!(p.failed(&g, &trap("a.csv:7"), 3), None);
        assert_eq!(
            p.failed(&g, &trap("a.csv:7"), 3),
            Some(PoisonVerdict::RuledOut)
        );
        assert_eq!(p.records["guard"]["a.csv:7"], "panicked");
        // Ruled out already: a failure naming it again is left to the
        // restart strategy (no endless immediate restarts).
        assert_eq!(p.failed(&g, &trap("a.csv:7"), 3), None);
    }

    #[test]
    fn a_span_failing_the_limit_of_times_becomes_a_suspect_and_its_record_is_ruled_out_at_once() {
        let g = graph("dead-letter");
        let mut p = PoisonState::default();
        let span = "one of the records a.csv:2-401";
        assert_eq!(p.failed(&g, &trap(span), 2), None);
        assert_eq!(
            p.failed(&g, &trap(span), 2),
            Some(PoisonVerdict::SuspectSpan)
        );
        assert!(p.records["guard"].contains_key(span));
        // The next attempt isolates the span's records: the failure names one.
        assert_eq!(
            p.failed(&g, &trap("a.csv:77"), 2),
            Some(PoisonVerdict::FoundInSpan)
        );
        assert!(p.records["guard"].contains_key("a.csv:77"));
        // A record outside every suspect span needs its own run of failures.
        assert_eq!(p.failed(&g, &trap("a.csv:500"), 2), None);
        assert_eq!(p.failed(&g, &trap("b.csv:7"), 2), None);
        // The suspect span failing again (not a record's fault) is left to
        // the restart strategy.
        assert_eq!(p.failed(&g, &trap(span), 2), None);
    }

    #[test]
    fn overlapping_spans_of_attempts_that_cut_their_batches_elsewhere_count_as_one() {
        let g = graph("dead-letter");
        let mut p = PoisonState::default();
        assert_eq!(
            p.failed(&g, &trap("one of the records a.csv:2-401"), 3),
            None
        );
        assert_eq!(
            p.failed(&g, &trap("one of the records a.csv:300-699"), 3),
            None
        );
        assert_eq!(
            p.failed(&g, &trap("one of the records a.csv:350-749"), 3),
            Some(PoisonVerdict::SuspectSpan)
        );
        assert!(p.records["guard"].contains_key("one of the records a.csv:350-401"));
        assert_eq!(
            p.failed(&g, &trap("a.csv:360"), 3),
            Some(PoisonVerdict::FoundInSpan)
        );
        // Spans apart start a new run.
        let mut p = PoisonState::default();
        assert_eq!(
            p.failed(&g, &trap("one of the records a.csv:2-401"), 2),
            None
        );
        assert_eq!(
            p.failed(&g, &trap("one of the records a.csv:402-801"), 2),
            None
        );
        assert!(p.records.is_empty());
    }

    #[test]
    fn derived_records_mixed_batches_other_policies_and_no_limit_are_never_ruled_out() {
        let mut p = PoisonState::default();
        let g = graph("dead-letter");
        for origin in [
            "one of 400 records from a.csv:2 to b.csv:9",
            weir_task::DERIVED_ORIGIN,
        ] {
            for _ in 0..5 {
                assert_eq!(p.failed(&g, &trap(origin), 2), None, "{origin}");
            }
        }
        for _ in 0..5 {
            assert_eq!(p.failed(&g, &trap("a.csv:7"), 0), None);
            assert_eq!(p.failed(&graph("fail"), &trap("a.csv:7"), 2), None);
        }
        assert!(p.records.is_empty());
    }
}
