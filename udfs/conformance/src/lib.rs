//! The conformance function of the Rust SDK: the rules of
//! `guest-sdk/conformance/README.md`, which every SDK's conformance
//! function implements and `tests/tests/conformance.rs` checks against
//! `cases.json`.

use serde_json::{Value, json};
use weir_guest::prelude::*;

/// Operator configuration (`config:` in the job file).
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Added to every `echo` output.
    prefix: String,
}

impl Default for Config {
    fn default() -> Self {
        Self { prefix: "p".into() }
    }
}

struct Conformance {
    prefix: String,
    /// Records with a known `op` since the start (operator state).
    seen: u64,
    count: ValueState<u64>,
    items: ListState<Value>,
    m: MapState<String, Value>,
}

fn field<'v>(value: &'v Value, name: &str) -> Result<&'v Value, String> {
    value.get(name).ok_or_else(|| format!("no `{name}`"))
}

fn text(value: &Value, name: &str) -> Result<String, String> {
    field(value, name)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("`{name}` is not text"))
}

fn timestamp(value: &Value) -> Result<i64, String> {
    field(value, "at")?
        .as_i64()
        .ok_or("`at` is not an integer".into())
}

impl KeyedProcessFunction for Conformance {
    type Config = Config;
    type In<'a> = Value;
    type Out = Value;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Self {
            prefix: config.prefix,
            seen: 0,
            count: ValueState::new("count"),
            items: ListState::new("items"),
            m: MapState::new("m"),
        })
    }

    fn snapshot_state(&mut self, _checkpoint_id: u64) -> Result<Vec<Vec<u8>>, String> {
        Ok(vec![json!({ "seen": self.seen }).to_string().into_bytes()])
    }

    fn restore_state(&mut self, items: Vec<Vec<u8>>) -> Result<(), String> {
        self.seen = 0;
        for item in items {
            let item: Value = serde_json::from_slice(&item).map_err(|e| e.to_string())?;
            self.seen += item["seen"].as_u64().ok_or("no `seen` in operator state")?;
        }
        Ok(())
    }

    fn process(
        &mut self,
        _key: &[u8],
        value: Value,
        out: &mut Collector<'_, Value>,
    ) -> Result<(), String> {
        let op = value.get("op").and_then(Value::as_str).unwrap_or_default();
        const OPS: [&str; 13] = [
            "echo", "side", "fail", "count", "append", "put", "get", "remove", "entries", "clear",
            "timer", "cancel", "seen",
        ];
        if !OPS.contains(&op) {
            return Err(format!("unknown op {op:?}"));
        }
        self.seen += 1;
        match op {
            "echo" => out.emit(json!({ "x": field(&value, "x")?, "prefix": self.prefix })),
            "side" => out.emit_side(
                &text(&value, "output")?,
                json!({ "x": field(&value, "x")? }),
            ),
            "fail" => return Err(text(&value, "message")?),
            "count" => {
                let n = self.count.get()?.unwrap_or(0) + 1;
                self.count.set(&n);
                out.emit(json!({ "count": n }));
            }
            "append" => {
                self.items.add(field(&value, "x")?);
                out.emit(json!({ "items": self.items.get()? }));
            }
            "put" => self.m.put(&text(&value, "k")?, field(&value, "v")?),
            "get" => {
                let k = text(&value, "k")?;
                let v = self.m.get(&k)?;
                out.emit(json!({ "k": k, "v": v }));
            }
            "remove" => self.m.remove(&text(&value, "k")?),
            "entries" => out.emit(json!({ "entries": self.m.entries()? })),
            "clear" => {
                self.count.clear();
                self.items.clear();
                self.m.clear();
            }
            "timer" => timers::register_event_time_timer(timestamp(&value)?),
            "cancel" => timers::delete_event_time_timer(timestamp(&value)?),
            _ => out.emit(json!({ "seen": self.seen })),
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        _key: &[u8],
        timestamp: i64,
        _domain: TimeDomain,
        out: &mut Collector<'_, Value>,
    ) -> Result<(), String> {
        let count = self.count.get()?.unwrap_or(0);
        out.emit(json!({ "timer": timestamp, "count": count }));
        Ok(())
    }
}

weir_guest::export!(keyed_process Conformance);
