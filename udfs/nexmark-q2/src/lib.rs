//! Nexmark query 2, selection: `{auction, price}` of the bids whose
//! auction id is a multiple of `modulus` (123 in the Nexmark suite).
//!
//! Most bids are dropped, so the function reads a bid lazily with a pull
//! parser (`jiter`) over the borrowed record ([`RawRef`]): it stops at the
//! `auction` field when the bid is not selected, and at the `price` field
//! otherwise. The rest of the record (the long `extra` string) is neither
//! parsed nor validated; a record cut short or malformed before the fields
//! it needs is a per-record error.

use jiter::{Jiter, NumberInt};
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
    type In<'a> = RawRef<'a>;
    type Out = Selected;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        if config.modulus == 0 {
            return Err("modulus must be at least 1".into());
        }
        Ok(Self {
            modulus: config.modulus,
        })
    }

    fn flat_map(
        &mut self,
        bid: RawRef<'_>,
        out: &mut Collector<'_, Selected>,
    ) -> Result<(), String> {
        let invalid = |e: jiter::JiterError| format!("invalid bid: {e}");
        let mut json = Jiter::new(bid.0);
        let mut key = json.next_object_bytes().map_err(invalid)?;
        let (mut auction, mut price) = (None, None);
        while let Some(name) = key {
            match name {
                b"auction" => {
                    let id = unsigned(&mut json, "auction")?;
                    if !id.is_multiple_of(self.modulus) {
                        return Ok(());
                    }
                    auction = Some(id);
                }
                b"price" => price = Some(unsigned(&mut json, "price")?),
                _ => json.next_skip().map_err(invalid)?,
            }
            if let (Some(auction), Some(price)) = (auction, price) {
                out.emit(Selected { auction, price });
                return Ok(());
            }
            key = json.next_key_bytes().map_err(invalid)?;
        }
        Err(format!(
            "invalid bid: no {}",
            if auction.is_none() {
                "auction"
            } else {
                "price"
            }
        ))
    }
}

/// The next value as a `u64` (ids and prices fit in an `i64`).
fn unsigned(json: &mut Jiter<'_>, field: &str) -> Result<u64, String> {
    let NumberInt::Int(value) = json
        .next_int()
        .map_err(|e| format!("invalid bid: {field}: {e}"))?;
    u64::try_from(value).map_err(|_| format!("invalid bid: {field} is negative"))
}

weir_guest::export!(flat_map Selection);
