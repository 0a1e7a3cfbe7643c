//! Nexmark query 2, selection: `{auction, price}` of the bids whose
//! auction id is a multiple of `modulus` (123 in the Nexmark suite).

use weir_guest::prelude::*;

/// Operator configuration (`config:` in the job file).
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Keep bids with `auction % modulus == 0`.
    modulus: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self { modulus: 123 }
    }
}

/// The fields of a Nexmark bid this query reads.
#[derive(Deserialize)]
struct Bid {
    auction: u64,
    price: u64,
}

/// A selected bid.
#[derive(Serialize)]
struct Selected {
    auction: u64,
    price: u64,
}

struct Selection {
    modulus: u64,
}

impl FlatMapFunction for Selection {
    type Config = Config;
    type In = Bid;
    type Out = Selected;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        if config.modulus == 0 {
            return Err("modulus must be at least 1".into());
        }
        Ok(Self {
            modulus: config.modulus,
        })
    }

    fn flat_map(&mut self, bid: Bid, out: &mut Collector<'_, Selected>) -> Result<(), String> {
        if bid.auction.is_multiple_of(self.modulus) {
            out.emit(Selected {
                auction: bid.auction,
                price: bid.price,
            });
        }
        Ok(())
    }
}

weir_guest::export!(flat_map Selection);
