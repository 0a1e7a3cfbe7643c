//! A `packed-operator` component that breaks the packed format: its
//! `process-packed` answers every batch with an output whose tag does not
//! exist. The host must fail the task with a clear error, not panic.
//!
//! With config `{"big_key_bytes": N}` it answers with well-formed outputs
//! instead: each batch's first record comes back with a key of N bytes (what the
//! SDK never writes: its outputs keep the input's key), for the host's
//! `max_key_bytes`.
//!
//! Written against the SDK's raw bindings, since the SDK itself always
//! writes well-formed buffers.

use weir_guest::bindings::exports::weir::operator::{checkpointed, handler, packed_handler};
use weir_guest::bindings::weir::operator::types::{Context, Output, StreamRecord, TimeDomain};

use std::cell::Cell;

struct BadPacked;

thread_local! {
    /// `big_key_bytes` from the config (0: the malformed buffer).
    static BIG_KEY_BYTES: Cell<usize> = const { Cell::new(0) };
}

impl handler::Guest for BadPacked {
    fn open(ctx: Context) -> Result<(), String> {
        let config: serde_json::Value =
            serde_json::from_str(&ctx.config).map_err(|e| e.to_string())?;
        let bytes = config["big_key_bytes"].as_u64().unwrap_or(0);
        BIG_KEY_BYTES.set(usize::try_from(bytes).map_err(|e| e.to_string())?);
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
    fn process_packed(batch: Vec<u8>) -> Vec<u8> {
        let key_bytes = BIG_KEY_BYTES.get();
        if key_bytes == 0 {
            // Tag 7 is no output kind.
            return vec![7, 0, 0, 0, 0];
        }
        let key = vec![b'k'; key_bytes];
        let mut out = Vec::new();
        for (i, record) in weir_abi::records(&batch).flatten().enumerate() {
            let key = if i == 0 {
                Some(key.as_slice())
            } else {
                record.key
            };
            weir_abi::begin_emit(&mut out);
            weir_abi::write_record(&mut out, key, record.value, record.timestamp);
        }
        out
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
