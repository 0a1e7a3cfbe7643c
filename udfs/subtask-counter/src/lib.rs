//! Operator state example: counts the records each subtask has seen, over
//! restarts and rescaling, and adds `"subtask"` and `"seen"` (the count
//! including this record) to every JSON object record.
//!
//! The count is operator (non-keyed) state: `snapshot_state` returns it as
//! one item, `restore_state` adds up the items it is given, so when the
//! parallelism changes the counts of the old subtasks are split over the
//! new ones and none is lost or counted twice.

use serde_json::{Map, Value};
use weir_guest::prelude::*;

struct SubtaskCounter {
    subtask: u32,
    seen: u64,
}

impl MapFunction for SubtaskCounter {
    type Config = ();
    type In<'a> = Map<String, Value>;
    type Out = Map<String, Value>;

    fn open(_config: (), ctx: &OpenContext) -> Result<Self, String> {
        Ok(Self {
            subtask: ctx.subtask_index,
            seen: 0,
        })
    }

    fn map(&mut self, mut record: Map<String, Value>) -> Result<Map<String, Value>, String> {
        self.seen += 1;
        record.insert("subtask".into(), self.subtask.into());
        record.insert("seen".into(), self.seen.into());
        Ok(record)
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Vec<Vec<u8>>, String> {
        Ok(vec![self.seen.to_be_bytes().to_vec()])
    }

    fn restore_state(&mut self, items: Vec<Vec<u8>>) -> Result<(), String> {
        for item in items {
            let bytes: [u8; 8] = item
                .as_slice()
                .try_into()
                .map_err(|_| format!("a count is 8 bytes, got {}", item.len()))?;
            self.seen += u64::from_be_bytes(bytes);
        }
        Ok(())
    }
}

weir_guest::export!(map SubtaskCounter);
