//! Nexmark query 1, currency conversion: every bid as
//! `{"auction","bidder","price","dateTime","extra"}` with its price turned
//! from dollars into euros (`price * 0.908`, the rate the Nexmark suite
//! uses).
//!
//! The product is exact decimal arithmetic, as in the Nexmark suite's SQL
//! (`0.908 * price` with `price` a `BIGINT` is a `DECIMAL` with the rate's
//! three fraction digits in Flink): a price of 34663 becomes `31474.004`,
//! and 1000 becomes `908.000`. Binary floating point would give
//! `31474.004000000004`.
//!
//! The bid is read lazily with a pull parser (`jiter`) over the borrowed
//! record ([`RawRef`]), and the output is spliced from it: every field but
//! `type` and `price` is copied as it is written, without being decoded and
//! encoded again. Once `type` has been dropped and `price` converted, the
//! rest of the record is copied unread, so a record malformed after those
//! fields passes through malformed; one malformed before them is a
//! per-record error.

use jiter::{Jiter, JiterError, NumberInt};
use weir_guest::prelude::*;

/// Operator configuration (`config:` in the job file).
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Euros per dollar: a positive decimal of at most nine fraction digits,
    /// taken as it is written (`0.908` is 908/1000 exactly).
    rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self { rate: 0.908 }
    }
}

struct CurrencyConversion {
    rate: DecimalRate,
}

impl FlatMapFunction for CurrencyConversion {
    type Config = Config;
    type In<'a> = RawRef<'a>;
    type Out = Raw;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Self {
            rate: DecimalRate::new(config.rate)?,
        })
    }

    fn flat_map(&mut self, bid: RawRef<'_>, out: &mut Collector<'_, Raw>) -> Result<(), String> {
        out.emit_bytes_with(|buf| convert(bid.0, self.rate, buf))
            .map_err(|e| format!("invalid bid: {e}"))
    }
}

/// A positive exact decimal `units / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DecimalRate {
    units: i64,
    scale: u32,
}

impl DecimalRate {
    /// Most fraction digits a rate may have.
    const MAX_SCALE: u32 = 9;

    /// The decimal `rate` was written as: the shortest text that reads back
    /// as the same `f64` (what `0.908` in the job file means).
    ///
    /// # Errors
    /// `rate` is not positive and finite, has more than
    /// [`Self::MAX_SCALE`] fraction digits, or is 10^9 or more.
    fn new(rate: f64) -> Result<Self, String> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!("rate must be a positive number, got {rate}"));
        }
        // `Display` for f64 writes the shortest round-trip digits, never
        // in exponent notation.
        let text = rate.to_string();
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
        let scale = fraction.len() as u32;
        if scale > Self::MAX_SCALE || whole.len() > 9 {
            return Err(format!(
                "rate must be below 10^9 with at most {} fraction digits, got {text}",
                Self::MAX_SCALE
            ));
        }
        let units = format!("{whole}{fraction}")
            .parse()
            .map_err(|e| format!("rate {text}: {e}"))?;
        Ok(Self { units, scale })
    }

    /// Appends `amount * self` to `out` as a JSON number with exactly
    /// `scale` fraction digits (`-12.340` for -1234 at 0.010).
    fn write_times(self, amount: i64, out: &mut Vec<u8>) {
        let mut digits = itoa::Buffer::new();
        // u128 arithmetic is slow in Wasm: i64 unless the product needs more.
        let (negative, digits) = match amount.checked_mul(self.units) {
            Some(product) => (product < 0, digits.format(product.unsigned_abs())),
            None => {
                // At most 19 digits times 18 digits: an i128 cannot overflow.
                let product = i128::from(amount) * i128::from(self.units);
                (product < 0, digits.format(product.unsigned_abs()))
            }
        };
        if negative {
            out.push(b'-');
        }
        let digits = digits.as_bytes();
        let scale = self.scale as usize;
        if scale == 0 {
            out.extend_from_slice(digits);
        } else if digits.len() > scale {
            let (whole, fraction) = digits.split_at(digits.len() - scale);
            out.extend_from_slice(whole);
            out.push(b'.');
            out.extend_from_slice(fraction);
        } else {
            out.extend_from_slice(b"0.");
            out.resize(out.len() + scale - digits.len(), b'0');
            out.extend_from_slice(digits);
        }
    }
}

/// Appends `bid` to `out` without its `type` field and with `price` (an
/// integer) multiplied by `rate`.
fn convert(bid: &[u8], rate: DecimalRate, out: &mut Vec<u8>) -> Result<(), String> {
    let error = |e: JiterError| e.to_string();
    let mut json = Jiter::new(bid);
    let mut key = json.next_object_bytes().map_err(error)?;
    let (mut dropped_type, mut converted) = (false, false);
    out.push(b'{');
    let mut first = true;
    while let Some(name) = key {
        if name == b"type" {
            json.next_skip().map_err(error)?;
            dropped_type = true;
        } else {
            if !first {
                out.push(b',');
            }
            first = false;
            // The key's bytes as written (escapes kept), so copying is exact.
            out.push(b'"');
            out.extend_from_slice(name);
            out.extend_from_slice(b"\":");
            if name == b"price" {
                let NumberInt::Int(cents) = json.next_int().map_err(|e| format!("price: {e}"))?;
                rate.write_times(cents, out);
                converted = true;
            } else {
                let start = json.current_index();
                json.next_skip().map_err(error)?;
                out.extend_from_slice(trim_start(&bid[start..json.current_index()]));
            }
        }
        if dropped_type && converted {
            // `,"dateTime":…,"extra":"…"}`: the rest as it is.
            out.extend_from_slice(&bid[json.current_index()..]);
            return Ok(());
        }
        key = json.next_key_bytes().map_err(error)?;
    }
    if !converted {
        return Err("no price".into());
    }
    out.push(b'}');
    Ok(())
}

/// `bytes` without leading JSON whitespace.
fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

weir_guest::export!(flat_map CurrencyConversion);
