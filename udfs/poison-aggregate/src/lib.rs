//! Hostile test window aggregate (the `aggregate` world): does one hostile
//! thing, chosen by its config, in one of its calls, and otherwise counts
//! the window's records (`{"n": count}`).
//!
//! Config: `{"case": "loop|panic|grow|leak|bad-result", "at": "open|add|merge|get-result"}`.
//! `bad-result` returns a result that is not a JSON object; `leak` leaks
//! 64 KiB of linear memory per call (the host replaces the instance before
//! its memory limit).

use weir_guest_aggregate::prelude::*;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Config {
    case: String,
    at: String,
}

struct PoisonAggregate {
    case: String,
    at: String,
}

#[derive(Serialize)]
struct Out {
    n: u64,
}

impl PoisonAggregate {
    fn strike(&self, call: &str) {
        if self.at != call {
            return;
        }
        match self.case.as_str() {
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "panic" => panic!("poison-aggregate: a panic on purpose in {call}"),
            "leak" => {
                std::hint::black_box(Box::leak(vec![1u8; 64 << 10].into_boxed_slice()));
            }
            "grow" => {
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                loop {
                    blocks.push(vec![1; 1 << 20]);
                    std::hint::black_box(&blocks);
                }
            }
            _ => {}
        }
    }
}

impl AggregateFunction for PoisonAggregate {
    type Config = Config;
    type In = serde_json::Value;
    type Acc = u64;
    type Out = serde_json::Value;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        let me = Self {
            case: config.case,
            at: config.at,
        };
        me.strike("open");
        Ok(me)
    }

    fn create_accumulator(&self) -> u64 {
        0
    }

    fn add(&self, acc: &mut u64, _value: serde_json::Value) -> Result<(), String> {
        self.strike("add");
        *acc += 1;
        Ok(())
    }

    fn merge(&self, acc: &mut u64, other: u64) {
        self.strike("merge");
        *acc += other;
    }

    fn get_result(&self, acc: u64) -> Result<serde_json::Value, String> {
        self.strike("get-result");
        if self.case == "bad-result" && self.at == "get-result" {
            return Ok(serde_json::Value::from(vec![acc]));
        }
        serde_json::to_value(Out { n: acc }).map_err(|e| e.to_string())
    }
}

weir_guest_aggregate::export!(PoisonAggregate);
