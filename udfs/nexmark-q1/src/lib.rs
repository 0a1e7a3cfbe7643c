//! Nexmark query 1, currency conversion: every bid with its price turned
//! from dollars into euros (`price * 0.908`, the rate the Nexmark suite
//! uses). Other fields pass through.

use weir_guest::prelude::*;

/// Operator configuration (`config:` in the job file).
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Euros per dollar.
    rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self { rate: 0.908 }
    }
}

/// A Nexmark bid (the generator's `"type":"bid"` records; price in cents).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Bid {
    auction: u64,
    bidder: u64,
    price: u64,
    date_time: i64,
    extra: String,
}

/// The converted bid.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EuroBid {
    auction: u64,
    bidder: u64,
    price: f64,
    date_time: i64,
    extra: String,
}

struct CurrencyConversion {
    rate: f64,
}

impl MapFunction for CurrencyConversion {
    type Config = Config;
    type In = Bid;
    type Out = EuroBid;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        if !(config.rate.is_finite() && config.rate > 0.0) {
            return Err(format!(
                "rate must be a positive number, got {}",
                config.rate
            ));
        }
        Ok(Self { rate: config.rate })
    }

    fn map(&mut self, bid: Bid) -> Result<EuroBid, String> {
        Ok(EuroBid {
            auction: bid.auction,
            bidder: bid.bidder,
            price: self.rate * bid.price as f64,
            date_time: bid.date_time,
            extra: bid.extra,
        })
    }
}

weir_guest::export!(map CurrencyConversion);
