//! An unbounded count per key, as a changelog: every record emits
//! `{"key": KEY, "count": N}`, N the number of records of its key so far
//! (this one included), kept in value state. The key is the record's key
//! as text (a JSON number key such as Nexmark's `auction` is its digits).
//! This is Flink SQL's `SELECT key, COUNT(*) … GROUP BY key` without
//! mini-batches, where each record updates its key's row; the benchmarks
//! against Flink (`bench/flink-compare`) run it as the keyed count.

use weir_guest::prelude::*;

#[derive(Serialize)]
struct Count {
    key: String,
    count: u64,
}

struct KeyedCount {
    count: ValueState<u64>,
}

impl KeyedProcessFunction for KeyedCount {
    type Config = ();
    type In<'a> = RawRef<'a>;
    type Out = Count;

    fn open(_config: (), _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Self {
            count: ValueState::new("count"),
        })
    }

    fn process(
        &mut self,
        key: &[u8],
        _record: RawRef<'_>,
        out: &mut Collector<'_, Count>,
    ) -> Result<(), String> {
        let count = self.count.get()?.unwrap_or(0) + 1;
        self.count.set(&count);
        let key =
            String::from_utf8(key.to_vec()).map_err(|_| "the key is not UTF-8".to_string())?;
        out.emit(Count { key, count });
        Ok(())
    }
}

weir_guest::export!(keyed_process KeyedCount);
