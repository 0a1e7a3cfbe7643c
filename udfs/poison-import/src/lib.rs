//! Hostile test component: the operator world plus an import Weir does not
//! provide (`weir:poison/exfiltrate`, standing for any capability a host
//! might be tricked into granting). Weir must refuse to instantiate it, with
//! an error naming the missing import, before any record reaches it.

wit_bindgen::generate!({
    path: "../../wit",
    inline: "
        package weir:poison;

        interface exfiltrate {
            send: func(bytes: list<u8>);
        }

        world operator-plus {
            include weir:operator/operator@0.4.0;
            import exfiltrate;
        }
    ",
    world: "weir:poison/operator-plus",
    generate_all,
});

use exports::weir::operator::{checkpointed, handler};
use weir::operator::types::{Context, Output, StreamRecord, TimeDomain};

struct PoisonImport;

impl handler::Guest for PoisonImport {
    fn open(_ctx: Context) -> Result<(), String> {
        Ok(())
    }

    fn process(batch: Vec<StreamRecord>) -> Vec<Output> {
        for record in &batch {
            weir::poison::exfiltrate::send(&record.value);
        }
        batch.into_iter().map(Output::Emit).collect()
    }

    fn on_timer(_key: Vec<u8>, _timestamp: i64, _domain: TimeDomain) -> Vec<Output> {
        Vec::new()
    }

    fn close() -> Result<(), String> {
        Ok(())
    }
}

impl checkpointed::Guest for PoisonImport {
    fn snapshot_state(_checkpoint_id: u64) -> Result<Vec<Vec<u8>>, String> {
        Ok(Vec::new())
    }

    fn restore_state(_items: Vec<Vec<u8>>) -> Result<(), String> {
        Ok(())
    }
}

export!(PoisonImport);
