//! Output routing of a subtask: a batch through the rest of the chain, the
//! main output to its consumers, side outputs to the consumers that read them.

use std::collections::HashMap;

use weir_types::{Batch, Origin, Record};

use crate::context::JobShared;
use crate::ops::Emitted;
use crate::subtask::{Stop, SubtaskRun};

impl SubtaskRun<'_> {
    /// Runs one batch through the chain from operator `start` (which reads
    /// it as input `input`) and hands the result to the outlets.
    pub(crate) fn push(
        &mut self,
        shared: &JobShared,
        start: usize,
        input: usize,
        mut batch: Batch,
    ) -> Result<(), Stop> {
        for op in start..self.ops.len() {
            if batch.is_empty() {
                return Ok(());
            }
            let input = if op == start { input } else { 0 };
            self.count(op, batch.len(), 0);
            let emitted = self.ops[op].process(shared, input, batch);
            let mut emitted = self.or_fail(op, emitted)?;
            self.rejected(shared, op, std::mem::take(&mut emitted.rejected))?;
            self.count(op, 0, emitted.main.len() + emitted.side.len());
            shared.metrics().mark_processed();
            self.route_side_outputs(shared, op, emitted.side)?;
            batch = emitted.main;
        }
        self.send_main(shared, batch)
    }

    /// Sends what operator `op` emitted on: the main output through the
    /// rest of the chain, side outputs to their consumers.
    pub(crate) fn forward(
        &mut self,
        shared: &JobShared,
        op: usize,
        mut emitted: Emitted,
    ) -> Result<(), Stop> {
        self.rejected(shared, op, std::mem::take(&mut emitted.rejected))?;
        self.count(op, 0, emitted.main.len() + emitted.side.len());
        self.route_side_outputs(shared, op, emitted.side)?;
        if !emitted.main.is_empty() {
            self.push(shared, op + 1, 0, emitted.main)?;
        }
        Ok(())
    }

    /// Counts records into and out of operator `op`.
    fn count(&self, op: usize, records_in: usize, records_out: usize) {
        if let Some(m) = self.op_metrics.get(op) {
            if records_in > 0 {
                m.add_in(records_in);
            }
            if records_out > 0 {
                m.add_out(records_out);
            }
        }
    }

    /// Hands the chain's result to the outlets of the main output.
    pub(crate) fn send_main(&mut self, shared: &JobShared, mut batch: Batch) -> Result<(), Stop> {
        if batch.is_empty() {
            return Ok(());
        }
        let mains: Vec<usize> = (0..self.outlets.len())
            .filter(|&i| self.outlets[i].output.is_none())
            .collect();
        for (n, &i) in mains.iter().enumerate() {
            let out = if n + 1 == mains.len() {
                std::mem::take(&mut batch)
            } else {
                batch.clone()
            };
            let unkeyed = self.outlets[i].exchange.send(out)?;
            report_unkeyed(shared, unkeyed);
        }
        Ok(())
    }

    /// Side outputs of the chain's last operator go to the consumers that
    /// read them; any other side output is reported once and dropped.
    pub(crate) fn route_side_outputs(
        &mut self,
        shared: &JobShared,
        op: usize,
        side: Vec<(String, Record)>,
    ) -> Result<(), Stop> {
        if side.is_empty() {
            return Ok(());
        }
        let is_tail = op + 1 == self.ops.len();
        // By name, in a hash map: a UDF may emit to many distinct names.
        let mut by_name: HashMap<String, Batch> = HashMap::new();
        for (name, record) in side {
            by_name
                .entry(name)
                .or_default()
                .push(record, Origin::DERIVED);
        }
        for (name, batch) in by_name {
            let targets: Vec<usize> = (0..self.outlets.len())
                .filter(|&i| is_tail && self.outlets[i].output.as_deref() == Some(name.as_str()))
                .collect();
            if targets.is_empty() {
                let id = self.ops[op].id().to_string();
                // Remembered up to a bound, so a UDF inventing names
                // cannot grow the host's memory without end.
                if self.warned_side_outputs.len() < MAX_WARNED_SIDE_OUTPUTS
                    && self.warned_side_outputs.insert((id.clone(), name.clone()))
                {
                    shared.metrics().record_problem(format!(
                        "operator `{id}` emitted to side output `{name}`, which the job does not route; such records are dropped"
                    ));
                }
                continue;
            }
            for i in targets {
                let unkeyed = self.outlets[i].exchange.send(batch.clone())?;
                report_unkeyed(shared, unkeyed);
            }
        }
        Ok(())
    }
}

/// How many unrouted side-output names a subtask reports (once each).
const MAX_WARNED_SIDE_OUTPUTS: usize = 1024;

pub(crate) fn report_unkeyed(shared: &JobShared, unkeyed: Vec<crate::exchange::Unkeyed>) {
    for u in unkeyed {
        let at = shared.splits.describe(u.origin);
        shared
            .metrics()
            .record_problem(format!("dropped a record at key_by ({}): {at}", u.reason));
    }
}
