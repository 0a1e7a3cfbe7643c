//! Hostile test UDF: does one hostile thing, chosen by its config, in one
//! of its calls (in `process` and `on-timer`, on the first record or
//! timer of the subtask), and otherwise emits a count per key for each
//! record (`{"n":<count>}`, with `"got"` for the cases that read something).
//! The hostile-UDF suite (`cluster/cli/tests/poison.rs`, table in
//! `docs/security.md`) runs every case next to a healthy job.
//!
//! Config: `{"case": "<case>", "at": "open|process|on-timer|snapshot|restore|close"}`
//! (default `at: process`). Cases:
//! - `loop`: an infinite loop; `recursion`: unbounded recursion;
//!   `grow`: allocates 1 MiB blocks until the memory cap;
//!   `unreachable`: a Wasm `unreachable` trap; `panic`: a Rust panic;
//! - `big-output`: outputs of 1 MiB each until the memory cap;
//!   `output-bytes`: 100 outputs of 1 MiB (within a 512 MiB cap);
//!   `tiny-outputs`: a million `{}` outputs;
//! - `state-flood`: ten million map-state puts; `big-value`: one 32 MiB
//!   state value; `big-key`: a map-state key of 32 MiB;
//!   `timer-flood`: ten million event-time timers;
//! - `log-flood`: 200,000 log lines; `side-names`: 100,000 distinct
//!   side-output names;
//! - `bad-utf8`, `bad-json`: an output value that is not UTF-8, or not JSON;
//! - `clock`, `random`: reads the wall clock / random bytes and emits them
//!   (denied without a grant: the values are deterministic);
//! - `fs`, `env`: reads `/etc/passwd` / the environment and emits what it got.

use std::io::Read;

use weir_guest::prelude::*;

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Config {
    case: String,
    at: Option<String>,
}

struct Poison {
    case: String,
    at: String,
    seen: u64,
    fired: u64,
    count: ValueState<u64>,
    map: MapState<String, u64>,
}

#[derive(Serialize)]
struct Out {
    n: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    got: Option<String>,
}

/// Recurses without end (the frame keeps a buffer so the stack fills).
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 16]);
    recurse(depth + 1) + frame[3]
}

impl Poison {
    /// The hostile thing; `out` is there when the call can emit.
    fn strike(&mut self, out: Option<&mut Collector<'_, Raw>>) -> Result<Option<String>, String> {
        match self.case.as_str() {
            "loop" => loop {
                std::hint::black_box(&mut self.seen);
            },
            "recursion" => Ok(Some(recurse(0).to_string())),
            "grow" | "big-output" if out.is_none() || self.case == "grow" => {
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                loop {
                    blocks.push(vec![1; 1 << 20]);
                    std::hint::black_box(&blocks);
                }
            }
            "big-output" => {
                let out = out.ok_or("no output here")?;
                loop {
                    out.emit(Raw(vec![b'1'; 1 << 20]));
                }
            }
            "output-bytes" => {
                let out = out.ok_or("no output here")?;
                for _ in 0..100 {
                    out.emit(Raw(vec![b'1'; 1 << 20]));
                }
                Ok(None)
            }
            "unreachable" => core::arch::wasm32::unreachable(),
            "panic" => panic!("poison: a panic on purpose"),
            "tiny-outputs" => {
                let out = out.ok_or("no output here")?;
                for _ in 0..1_000_000 {
                    out.emit(Raw(b"{}".to_vec()));
                }
                Ok(None)
            }
            "state-flood" => {
                for i in 0..10_000_000u64 {
                    self.map.put(&i.to_string(), &i);
                }
                Ok(None)
            }
            "big-value" => {
                let blob = ValueState::<String>::new("blob");
                blob.set(&"x".repeat(32 << 20));
                Ok(None)
            }
            "big-key" => {
                self.map.put(&"k".repeat(32 << 20), &1);
                Ok(None)
            }
            "timer-flood" => {
                for t in 0..10_000_000i64 {
                    timers::register_event_time_timer(t);
                }
                Ok(None)
            }
            "log-flood" => {
                for i in 0..200_000 {
                    weir_guest::log_warn(&format!("poison line {i}"));
                }
                Ok(None)
            }
            "side-names" => {
                let out = out.ok_or("no output here")?;
                for i in 0..100_000 {
                    out.emit_side(&format!("side-{i}"), Raw(b"{}".to_vec()));
                }
                Ok(None)
            }
            "bad-utf8" => {
                let out = out.ok_or("no output here")?;
                out.emit(Raw(vec![b'"', 0xff, 0xfe, b'"']));
                Ok(None)
            }
            "bad-json" => {
                let out = out.ok_or("no output here")?;
                out.emit(Raw(b"{\"n\": 1".to_vec()));
                Ok(None)
            }
            "clock" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| e.to_string())?;
                Ok(Some(now.as_millis().to_string()))
            }
            "random" => {
                use std::hash::{BuildHasher, Hasher};
                // std's RandomState draws its keys from WASI random.
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u64(self.seen);
                Ok(Some(h.finish().to_string()))
            }
            "fs" => {
                let mut text = String::new();
                match std::fs::File::open("/etc/passwd")
                    .and_then(|mut f| f.read_to_string(&mut text))
                {
                    Ok(_) => Ok(Some(format!("read {} bytes", text.len()))),
                    Err(e) => Ok(Some(format!("denied: {e}"))),
                }
            }
            "env" => Ok(Some(format!("{} variables", std::env::vars().count()))),
            other => Err(format!("unknown poison case `{other}`")),
        }
    }

    fn here(&self, call: &str) -> bool {
        self.at == call
    }
}

impl KeyedProcessFunction for Poison {
    type Config = Config;
    type In<'a> = RawRef<'a>;
    type Out = Raw;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        let mut me = Self {
            case: config.case,
            at: config.at.unwrap_or_else(|| "process".into()),
            seen: 0,
            fired: 0,
            count: ValueState::new("count"),
            map: MapState::new("map"),
        };
        if me.here("open") {
            me.strike(None)?;
        }
        Ok(me)
    }

    fn process(
        &mut self,
        _key: &[u8],
        _value: RawRef<'_>,
        out: &mut Collector<'_, Raw>,
    ) -> Result<(), String> {
        self.seen += 1;
        let n = self.count.get()?.unwrap_or(0) + 1;
        self.count.set(&n);
        let mut got = None;
        // Once per subtask: the first record is enough, and a flood per
        // record would only make the test slow.
        if self.here("process") && self.seen == 1 {
            got = self.strike(Some(out))?;
        }
        if self.here("on-timer") {
            timers::register_event_time_timer(out.timestamp().unwrap_or(0));
        }
        let value = weir_guest::to_json(&Out { n, got })?;
        out.emit(Raw(value));
        Ok(())
    }

    fn on_timer(
        &mut self,
        _key: &[u8],
        _timestamp: i64,
        _domain: TimeDomain,
        out: &mut Collector<'_, Raw>,
    ) -> Result<(), String> {
        self.fired += 1;
        if self.fired == 1 {
            self.strike(Some(out))?;
        }
        Ok(())
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Vec<Vec<u8>>, String> {
        if self.here("snapshot") {
            self.strike(None)?;
        }
        Ok(vec![self.seen.to_le_bytes().to_vec()])
    }

    fn restore_state(&mut self, _items: Vec<Vec<u8>>) -> Result<(), String> {
        if self.here("restore") {
            self.strike(None)?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), String> {
        if self.here("close") {
            self.strike(None)?;
        }
        Ok(())
    }
}

weir_guest::export!(keyed_process Poison);
