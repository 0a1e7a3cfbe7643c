//! A `packed-operator` component that breaks the packed format: its
//! `process-packed` answers every batch with an output whose tag does not
//! exist. The host must fail the task with a clear error, not panic.
//!
//! Written against the SDK's raw bindings, since the SDK itself always
//! writes well-formed buffers.

use weir_guest::bindings::exports::weir::operator::{checkpointed, handler, packed_handler};
use weir_guest::bindings::weir::operator::types::{Context, Output, StreamRecord, TimeDomain};

struct BadPacked;

impl handler::Guest for BadPacked {
    fn open(_ctx: Context) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<StreamRecord>) -> Vec<Output> {
        batch.into_iter().map(Output::Emit).collect()
    }

    fn on_timer(_key: Vec<u8>, _timestamp: i64, _domain: TimeDomain) -> Vec<Output> {
        Vec::new()
    }

    fn close() -> Result<(), String> {
        Ok(())
    }
}

impl packed_handler::Guest for BadPacked {
    fn process_packed(_batch: Vec<u8>) -> Vec<u8> {
        // Tag 7 is no output kind.
        vec![7, 0, 0, 0, 0]
    }
}

impl checkpointed::Guest for BadPacked {
    fn snapshot_state(_checkpoint_id: u64) -> Result<Vec<Vec<u8>>, String> {
        Ok(Vec::new())
    }

    fn restore_state(_items: Vec<Vec<u8>>) -> Result<(), String> {
        Ok(())
    }
}

weir_guest::bindings::__export_packed_operator_world!(BadPacked with_types_in weir_guest::bindings);
