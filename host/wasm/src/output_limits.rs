//! What one guest call may hand the host: the outputs of a `process` or
//! `on-timer` call are checked one by one as they are taken over, against
//! the operator's limits (count, bytes, record key size, distinct
//! side-output names), so a hostile UDF cannot make the host hold or route
//! more than the job allowed. Exceeding one fails the call with a message
//! naming the limit's job-file field and its value.

use std::collections::HashSet;

use crate::Output;

/// Default [`OutputLimits::max_outputs`]: 256 per record of a full default
/// batch (1,024 records).
pub const DEFAULT_MAX_OUTPUTS_PER_CALL: usize = 262_144;
/// Default [`OutputLimits::max_bytes`]: 256 MiB.
pub const DEFAULT_MAX_OUTPUT_BYTES_PER_CALL: usize = 256 << 20;
/// Default [`OutputLimits::max_key_bytes`]: 1 MiB.
pub const DEFAULT_MAX_KEY_BYTES: usize = 1 << 20;
/// Default [`OutputLimits::max_side_outputs`]: 1,024 names.
pub const DEFAULT_MAX_SIDE_OUTPUTS_PER_CALL: usize = 1_024;

/// The limits on one call's outputs (job-file fields in parentheses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimits {
    /// Outputs: records, side-output records and per-record errors
    /// (`max_outputs_per_call`).
    pub max_outputs: usize,
    /// Bytes of all outputs together: keys, values, side-output names and
    /// error messages (`max_output_bytes_per_call`).
    pub max_bytes: usize,
    /// Bytes of one output record's key (`max_key_bytes`).
    pub max_key_bytes: usize,
    /// Distinct side-output names (`max_side_outputs_per_call`).
    pub max_side_outputs: usize,
}

impl Default for OutputLimits {
    fn default() -> Self {
        Self {
            max_outputs: DEFAULT_MAX_OUTPUTS_PER_CALL,
            max_bytes: DEFAULT_MAX_OUTPUT_BYTES_PER_CALL,
            max_key_bytes: DEFAULT_MAX_KEY_BYTES,
            max_side_outputs: DEFAULT_MAX_SIDE_OUTPUTS_PER_CALL,
        }
    }
}

/// A call went past one of its [`OutputLimits`]; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct OutputLimitExceeded(pub(crate) String);

/// The outputs of one call taken so far, against the limits.
#[derive(Debug)]
pub(crate) struct OutputBudget {
    limits: OutputLimits,
    count: usize,
    bytes: usize,
    side_names: HashSet<String>,
}

impl OutputBudget {
    pub(crate) fn new(limits: OutputLimits) -> Self {
        Self {
            limits,
            count: 0,
            bytes: 0,
            side_names: HashSet::new(),
        }
    }

    /// Refuses a typed call's `n` outputs at once when there are too many.
    pub(crate) fn check_count(&self, n: usize) -> Result<(), OutputLimitExceeded> {
        if n > self.limits.max_outputs {
            return Err(self.too_many());
        }
        Ok(())
    }

    fn too_many(&self) -> OutputLimitExceeded {
        OutputLimitExceeded(format!(
            "the UDF returned more than {} outputs from one call (max_outputs_per_call)",
            self.limits.max_outputs
        ))
    }

    /// Takes `output` into the call's budget.
    ///
    /// # Errors
    /// The first limit it goes past.
    pub(crate) fn take(&mut self, output: &Output) -> Result<(), OutputLimitExceeded> {
        self.count += 1;
        if self.count > self.limits.max_outputs {
            return Err(self.too_many());
        }
        let (record, name, message) = match output {
            Output::Emit(record) => (Some(record), None, None),
            Output::Side { output, record } => (Some(record), Some(output.as_str()), None),
            Output::Error { message, .. } => (None, None, Some(message.as_str())),
        };
        let mut bytes = name.map_or(0, str::len) + message.map_or(0, str::len);
        if let Some(record) = record {
            let key = record.key.as_ref().map_or(0, Vec::len);
            if key > self.limits.max_key_bytes {
                return Err(OutputLimitExceeded(format!(
                    "the UDF emitted a record whose key has {key} bytes, more than {} \
                     (max_key_bytes)",
                    self.limits.max_key_bytes
                )));
            }
            bytes += key + record.value.len();
        }
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.limits.max_bytes {
            return Err(OutputLimitExceeded(format!(
                "the UDF returned more than {} bytes of outputs from one call \
                 (max_output_bytes_per_call)",
                self.limits.max_bytes
            )));
        }
        if let Some(name) = name
            && !self.side_names.contains(name)
        {
            if self.side_names.len() >= self.limits.max_side_outputs {
                return Err(OutputLimitExceeded(format!(
                    "the UDF used more than {} side-output names in one call \
                     (max_side_outputs_per_call)",
                    self.limits.max_side_outputs
                )));
            }
            self.side_names.insert(name.to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_types::Record;

    fn record(key: usize, value: usize) -> Record {
        Record {
            key: (key > 0).then(|| vec![b'k'; key]),
            value: vec![b'v'; value].into(),
            timestamp: None,
        }
    }

    fn limits() -> OutputLimits {
        OutputLimits {
            max_outputs: 10,
            max_bytes: 100,
            max_key_bytes: 8,
            max_side_outputs: 2,
        }
    }

    #[test]
    fn each_limit_is_named_when_passed_and_not_before() {
        let mut b = OutputBudget::new(limits());
        for _ in 0..10 {
            b.take(&Output::Emit(record(0, 1))).unwrap();
        }
        let e = b.take(&Output::Emit(record(0, 1))).unwrap_err();
        assert!(e.0.contains("more than 10 outputs"), "{e}");
        assert!(b.check_count(11).is_err() && b.check_count(10).is_ok());

        let mut b = OutputBudget::new(limits());
        b.take(&Output::Emit(record(8, 0))).unwrap();
        let e = b.take(&Output::Emit(record(9, 0))).unwrap_err();
        assert!(
            e.0.contains("key has 9 bytes, more than 8 (max_key_bytes)"),
            "{e}"
        );

        let mut b = OutputBudget::new(limits());
        b.take(&Output::Emit(record(0, 60))).unwrap();
        b.take(&Output::Error {
            input: 0,
            message: "m".repeat(40),
        })
        .unwrap();
        let e = b.take(&Output::Emit(record(0, 1))).unwrap_err();
        assert!(e.0.contains("more than 100 bytes"), "{e}");
        assert!(e.0.contains("max_output_bytes_per_call"), "{e}");

        let mut b = OutputBudget::new(limits());
        let side = |name: &str| Output::Side {
            output: name.into(),
            record: record(0, 1),
        };
        for name in ["a", "b", "a", "b", "a"] {
            b.take(&side(name)).unwrap();
        }
        let e = b.take(&side("c")).unwrap_err();
        assert!(e.0.contains("more than 2 side-output names"), "{e}");
    }
}
