//! A keyed function that leaks memory on purpose, for the tests of
//! replacing an instance whose memory keeps growing
//! (`host/wasm/src/recycle.rs`): per record it counts the key in value
//! state and the subtask's records in operator state, emits both counts,
//! and leaks `leak_bytes` (config, default 0) of its linear memory. A
//! record with a timestamp also registers an event-time timer at it; the
//! timer leaks as much again and emits the key's count when it fires.

use weir_guest::prelude::*;

/// Operator configuration (`config:` in the job file).
#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Bytes leaked per record.
    leak_bytes: usize,
}

/// What every record gives: the counts including it (`seen` is 0 for a
/// timer, which gives its `timer` time instead).
#[derive(Serialize)]
struct Counts {
    key_count: u64,
    seen: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    timer: Option<i64>,
}

struct LeakyCounter {
    config: Config,
    per_key: ValueState<u64>,
    seen: u64,
}

impl KeyedProcessFunction for LeakyCounter {
    type Config = Config;
    type In<'a> = serde::de::IgnoredAny;
    type Out = Counts;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Self {
            config,
            per_key: ValueState::new("count"),
            seen: 0,
        })
    }

    fn process(
        &mut self,
        _key: &[u8],
        _record: serde::de::IgnoredAny,
        out: &mut Collector<'_, Counts>,
    ) -> Result<(), String> {
        let key_count = self.per_key.get()?.unwrap_or(0) + 1;
        self.per_key.set(&key_count);
        self.seen += 1;
        std::hint::black_box(Box::leak(
            vec![1u8; self.config.leak_bytes].into_boxed_slice(),
        ));
        if let Some(ts) = out.timestamp() {
            timers::register_event_time_timer(ts);
        }
        out.emit(Counts {
            key_count,
            seen: self.seen,
            timer: None,
        });
        Ok(())
    }

    fn on_timer(
        &mut self,
        _key: &[u8],
        timestamp: i64,
        _domain: TimeDomain,
        out: &mut Collector<'_, Counts>,
    ) -> Result<(), String> {
        std::hint::black_box(Box::leak(
            vec![1u8; self.config.leak_bytes].into_boxed_slice(),
        ));
        out.emit(Counts {
            key_count: self.per_key.get()?.unwrap_or(0),
            seen: 0,
            timer: Some(timestamp),
        });
        Ok(())
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

weir_guest::export!(keyed_process LeakyCounter);
