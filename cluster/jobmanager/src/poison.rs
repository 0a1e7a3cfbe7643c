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

/// At most this many records (and suspect spans) a job rules out; after
/// that its UDF failures go to the restart strategy like any other, so a
/// UDF that fails on record after record (memory that only grows, say)
/// cannot keep a job restarting at once forever.
pub(crate) const MAX_RULED_OUT: usize = 100;

/// The input records a job's UDFs failed on: how many attempts failed on
/// each, and those no longer passed to the UDF.
#[derive(Debug, Default)]
pub(crate) struct PoisonState {
    /// Attempts that failed on `(operator, origin)`.
    failures: BTreeMap<(String, String), u32>,
    /// Records dead-lettered from the next attempt on, and suspect spans
    /// (their batches go to the UDF one record per call).
    pub(crate) records: weir_task::PoisonRecords,
    /// The span the last failure made a suspect, with its operator and the
    /// kind of failure: only the next attempt's failure can find its record.
    suspect: Option<(String, String, weir_task::TaskFailureKind)>,
    /// Records and spans ruled out so far.
    ruled_out: usize,
}

impl PoisonState {
    /// Counts a failed attempt; a verdict means the next attempt starts at
    /// once (`FailureKind::PoisonRecord`). Only failures of a UDF (trap,
    /// timeout, memory limit, its own error) in an operator with
    /// `on_error: dead-letter` count, on one input record or on the span of
    /// a batch; any other failure breaks the run.
    ///
    /// - A record the UDF failed on in `limit` attempts in a row is ruled
    ///   out ([`PoisonVerdict::RuledOut`]).
    /// - A batch call that failed without saying on which record names its
    ///   batch's span (`one of the records file:first-last`); `limit`
    ///   failures in a row on overlapping spans make the records they
    ///   share a suspect ([`PoisonVerdict::SuspectSpan`]): the next attempt
    ///   gives them to the UDF one per call, so a failure names its record.
    /// - When that next attempt fails the same way on a record of the span,
    ///   the record is ruled out at once and the span is no longer a
    ///   suspect ([`PoisonVerdict::FoundInSpan`]).
    ///
    /// A job rules out at most [`MAX_RULED_OUT`] records and spans.
    pub(crate) fn failed(
        &mut self,
        graph: &JobGraph,
        error: &JobError,
        limit: u32,
    ) -> Option<PoisonVerdict> {
        let suspect = self.suspect.take();
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
        // restored from a checkpoint may cut its batches elsewhere).
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
        let known = self
            .records
            .get(vertex)
            .is_some_and(|r| r.contains_key(origin));
        if !udf_failure
            || !dead_letters
            || !(one_record || span)
            || known
            || limit == 0
            || self.ruled_out >= MAX_RULED_OUT
        {
            return None;
        }
        let found = suspect.filter(|(v, s, k)| {
            one_record
                && v == vertex
                && k == kind
                && weir_task::OriginSpan::parse(s).is_some_and(|s| s.contains(origin))
        });
        if let Some((_, span, _)) = found {
            let records = self.records.entry(vertex.clone()).or_default();
            records.remove(&span);
            records.insert(origin.clone(), message.clone());
            self.failures.clear();
            self.ruled_out += 1;
            return Some(PoisonVerdict::FoundInSpan);
        }
        let n = self.failures.entry(key).or_insert(0);
        *n += 1;
        if *n < limit {
            return None;
        }
        self.records
            .entry(vertex.clone())
            .or_default()
            .insert(origin.clone(), message.clone());
        self.failures.clear();
        self.ruled_out += 1;
        if span {
            self.suspect = Some((vertex.clone(), origin.clone(), *kind));
            Some(PoisonVerdict::SuspectSpan)
        } else {
            Some(PoisonVerdict::RuledOut)
        }
    }

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
        failure(origin, weir_task::TaskFailureKind::Trap)
    }

    fn failure(origin: &str, kind: weir_task::TaskFailureKind) -> JobError {
        JobError::Task {
            vertex: "guard".into(),
            index: 0,
            parallelism: 1,
            origin: Some(origin.into()),
            kind,
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
        // The next attempt isolates the span's records: the failure names
        // one, ruled out at once; the span is no longer a suspect.
        assert_eq!(
            p.failed(&g, &trap("a.csv:77"), 2),
            Some(PoisonVerdict::FoundInSpan)
        );
        assert!(p.records["guard"].contains_key("a.csv:77"));
        assert!(!p.records["guard"].contains_key(span));
        // Later, a record of that span needs a run of its own.
        assert_eq!(p.failed(&g, &trap("a.csv:78"), 2), None);
        assert_eq!(p.failed(&g, &trap("a.csv:500"), 2), None);

        // A suspect whose next attempt fails otherwise finds nothing: a
        // record outside the span, another kind of failure, or a failure
        // one attempt too late.
        for (then, record) in [
            (trap("b.csv:7"), trap("a.csv:79")),
            (
                failure("a.csv:78", weir_task::TaskFailureKind::Timeout),
                trap("a.csv:79"),
            ),
        ] {
            let mut p = PoisonState::default();
            assert_eq!(
                p.failed(&g, &trap(span), 1),
                Some(PoisonVerdict::SuspectSpan)
            );
            assert_eq!(p.failed(&g, &then, 2), None, "{then:?}");
            assert_eq!(p.failed(&g, &record, 2), None);
        }
    }

    #[test]
    fn a_job_rules_out_a_bounded_number_of_records() {
        let g = graph("dead-letter");
        let mut p = PoisonState::default();
        for line in 0..MAX_RULED_OUT {
            let origin = format!("a.csv:{line}");
            assert_eq!(
                p.failed(&g, &trap(&origin), 1),
                Some(PoisonVerdict::RuledOut)
            );
        }
        assert_eq!(p.failed(&g, &trap("a.csv:100000"), 1), None);
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
