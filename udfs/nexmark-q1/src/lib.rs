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
///
/// The other fields are copied as they are written, a run of consecutive
/// fields in one piece: for a bid as the Nexmark generator writes it, that
/// is `"auction":…,"bidder":…,"price":` before the converted price and
/// `,"dateTime":…,"extra":"…"}` after it. Each copy is a `memory.copy`,
/// which wasmtime runs as a call into the host, so fewer and longer copies
/// are cheaper than one per key and value.
fn convert(bid: &[u8], rate: DecimalRate, out: &mut Vec<u8>) -> Result<(), String> {
    let error = |e: JiterError| e.to_string();
    let mut json = Jiter::new(bid);
    let mut key = json.next_object_bytes().map_err(error)?;
    let (mut dropped_type, mut converted) = (false, false);
    let mut fields = KeptFields::open(bid, out);
    while let Some(name) = key {
        // A key borrowed from `bid` starts one byte after its opening quote.
        let field_start = (name.as_ptr() as usize - bid.as_ptr() as usize) - 1;
        if name == b"type" {
            fields.flush();
            json.next_skip().map_err(error)?;
            dropped_type = true;
        } else if name == b"price" {
            // The run goes on up to the price's value: `…,"price":`.
            fields.extend(field_start, json.current_index());
            fields.flush();
            let NumberInt::Int(cents) = json.next_int().map_err(|e| format!("price: {e}"))?;
            rate.write_times(cents, fields.out);
            converted = true;
        } else {
            json.next_skip().map_err(error)?;
            fields.extend(field_start, json.current_index());
        }
        if dropped_type && converted {
            // Both fields just handled flushed their run: the rest is
            // `,"dateTime":…,"extra":"…"}`, copied as it is.
            fields.out.extend_from_slice(&bid[json.current_index()..]);
            return Ok(());
        }
        key = json.next_key_bytes().map_err(error)?;
    }
    if !converted {
        return Err("no price".into());
    }
    fields.flush();
    fields.out.push(b'}');
    Ok(())
}

/// The output object being written, and the run of input fields kept but
/// not yet copied into it.
struct KeptFields<'a> {
    bid: &'a [u8],
    out: &'a mut Vec<u8>,
    /// `bid[start..end]`: from a key's opening quote to the end of a value
    /// (or of `"price":`), commas between fields included.
    run: Option<(usize, usize)>,
    /// Whether the output has a field already (the next one needs a comma).
    any: bool,
}

impl<'a> KeptFields<'a> {
    fn open(bid: &'a [u8], out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Self {
            bid,
            out,
            run: None,
            any: false,
        }
    }

    /// Keeps the field at `bid[start..end]`, after the fields of the run.
    fn extend(&mut self, start: usize, end: usize) {
        let start = self.run.map_or(start, |(run_start, _)| run_start);
        self.run = Some((start, end));
    }

    /// Copies the run into the output.
    fn flush(&mut self) {
        if let Some((start, end)) = self.run.take() {
            if self.any {
                self.out.push(b',');
            }
            self.out.extend_from_slice(&self.bid[start..end]);
            self.any = true;
        }
    }
}

weir_guest::export!(flat_map CurrencyConversion);
