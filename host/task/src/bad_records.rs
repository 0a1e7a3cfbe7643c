//! What a subtask does with bad records, by the vertex's `on_error`: a
//! malformed input record its source skipped, or an input record its UDF
//! rejected with a per-record error. `fail` fails the task naming the
//! record (kind `bad-data`), `drop` counts and logs it, `dead-letter`
//! writes it to the vertex's dead-letter directory ([`crate::dead_letter`])
//! and counts it.

use weir_connectors::BadRecord;
use weir_types::Origin;
use weir_types::jobgraph::OnError;

use crate::TaskFailureKind;
use crate::context::JobShared;
use crate::dead_letter::DeadLetter;
use crate::ops::{ChainedOp, Rejected};
use crate::subtask::{Stop, SubtaskRun};

impl SubtaskRun<'_> {
    /// Malformed input records of the chain's source.
    pub(crate) fn bad_input(
        &mut self,
        shared: &JobShared,
        bad: impl Iterator<Item = BadRecord>,
    ) -> Result<(), Stop> {
        let vertex = self.head_id;
        let mut letters = Vec::new();
        for b in bad {
            let at = shared.splits.describe(Origin {
                split: b.split,
                position: b.line,
            });
            match self.source_on_error {
                OnError::Fail => {
                    return Err(self.fail_as(
                        vertex,
                        Some(at),
                        TaskFailureKind::BadData,
                        format!("malformed input record: {}", b.message),
                    ));
                }
                OnError::Drop => shared
                    .metrics()
                    .record_problem(format!("skipped malformed input {at}: {}", b.message)),
                OnError::DeadLetter => letters.push(DeadLetter {
                    vertex: vertex.to_string(),
                    origin: at,
                    error: b.message,
                    record: b.bytes.into(),
                }),
            }
        }
        self.dead_letter(shared, vertex, letters)
    }

    /// Input records operator `op`'s UDF rejected.
    pub(crate) fn rejected(
        &mut self,
        shared: &JobShared,
        op: usize,
        rejected: Vec<Rejected>,
    ) -> Result<(), Stop> {
        if rejected.is_empty() {
            return Ok(());
        }
        let (id, on_error) = match &self.ops[op] {
            ChainedOp::Udf(udf) => (udf.spec.id.clone(), udf.spec.on_error),
            other => (other.id().to_string(), OnError::Drop),
        };
        let mut letters = Vec::new();
        for r in rejected {
            let at = match r.origin {
                Some(origin) if origin != Origin::DERIVED => shared.splits.describe(origin),
                Some(_) => format!("input #{} of a batch", r.input),
                None => "a timer".to_string(),
            };
            match on_error {
                OnError::Fail => {
                    return Err(self.fail_as(&id, Some(at), TaskFailureKind::BadData, r.message));
                }
                OnError::Drop => shared
                    .metrics()
                    .record_problem(format!("operator `{id}`, {at}: {}", r.message)),
                OnError::DeadLetter => letters.push(DeadLetter {
                    vertex: id.clone(),
                    origin: at,
                    error: r.message,
                    record: r.record.unwrap_or_default(),
                }),
            }
        }
        self.dead_letter(shared, &id, letters)
    }

    fn dead_letter(
        &mut self,
        shared: &JobShared,
        vertex: &str,
        letters: Vec<DeadLetter>,
    ) -> Result<(), Stop> {
        if letters.is_empty() {
            return Ok(());
        }
        self.dead_letters
            .write(&letters)
            .map_err(|message| self.fail(vertex, None, format!("dead letters: {message}")))?;
        shared.metrics().add_dead_lettered(letters.len() as u64);
        Ok(())
    }
}
