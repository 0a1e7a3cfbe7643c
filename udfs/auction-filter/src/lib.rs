//! Keeps the records (JSON objects) whose `auction` is a multiple of
//! `modulus` (default 123), unchanged: Nexmark q2's selection as a filter,
//! for pipelines whose records carry more than q2's `{auction, price}`
//! (the map → filter → keyed count pipeline of `bench/flink-compare`).
//! Only `auction` is read (`jiter`, no tree); a record without a whole,
//! non-negative `auction` is a per-record error.

use jiter::{Jiter, NumberInt};
use weir_guest::prelude::*;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    modulus: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { modulus: 123 }
    }
}

struct AuctionFilter {
    modulus: u64,
}

impl FilterFunction for AuctionFilter {
    type Config = Config;
    type In<'a> = RawRef<'a>;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        if config.modulus == 0 {
            return Err("modulus must be at least 1".into());
        }
        Ok(Self {
            modulus: config.modulus,
        })
    }

    fn filter(&mut self, record: &RawRef<'_>) -> Result<bool, String> {
        let invalid = |e: jiter::JiterError| format!("invalid record: {e}");
        let mut json = Jiter::new(record.0);
        let mut key = json.next_object_bytes().map_err(invalid)?;
        while let Some(name) = key {
            if name == b"auction" {
                let NumberInt::Int(id) = json
                    .next_int()
                    .map_err(|e| format!("invalid record: auction: {e}"))?;
                let id = u64::try_from(id).map_err(|_| "invalid record: auction is negative")?;
                return Ok(id.is_multiple_of(self.modulus));
            }
            json.next_skip().map_err(invalid)?;
            key = json.next_key_bytes().map_err(invalid)?;
        }
        Err("invalid record: no auction".into())
    }
}

weir_guest::export!(filter AuctionFilter);
