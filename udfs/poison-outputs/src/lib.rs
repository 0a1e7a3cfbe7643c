//! Hostile test UDF: emits `per_record` tiny outputs for every input
//! record (a flood of outputs in one call). With the default of one it is
//! an identity of sorts, emitting `{"n":0}` per record.

use weir_guest::prelude::*;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Outputs per input record.
    per_record: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self { per_record: 1 }
    }
}

#[derive(Serialize)]
struct Tiny {
    n: u32,
}

struct PoisonOutputs {
    per_record: u32,
}

impl FlatMapFunction for PoisonOutputs {
    type Config = Config;
    type In<'a> = RawRef<'a>;
    type Out = Tiny;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Self {
            per_record: config.per_record,
        })
    }

    fn flat_map(
        &mut self,
        _record: RawRef<'_>,
        out: &mut Collector<'_, Tiny>,
    ) -> Result<(), String> {
        for n in 0..self.per_record {
            out.emit(Tiny { n });
        }
        Ok(())
    }
}

weir_guest::export!(flat_map PoisonOutputs);
