//! Nexmark query 1, currency conversion: every bid as
//! `{"auction","bidder","price","dateTime","extra"}` with its price turned
//! from dollars into euros (`price * 0.908`, the rate the Nexmark suite
//! uses).
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
    /// Euros per dollar.
    rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self { rate: 0.908 }
    }
}

struct CurrencyConversion {
    rate: f64,
}

impl FlatMapFunction for CurrencyConversion {
    type Config = Config;
    type In<'a> = RawRef<'a>;
    type Out = Raw;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        if !(config.rate.is_finite() && config.rate > 0.0) {
            return Err(format!(
                "rate must be a positive number, got {}",
                config.rate
            ));
        }
        Ok(Self { rate: config.rate })
    }

    fn flat_map(&mut self, bid: RawRef<'_>, out: &mut Collector<'_, Raw>) -> Result<(), String> {
        out.emit_bytes_with(|buf| convert(bid.0, self.rate, buf))
            .map_err(|e| format!("invalid bid: {e}"))
    }
}

/// Appends `bid` to `out` without its `type` field and with `price` (an
/// integer) multiplied by `rate`.
fn convert(bid: &[u8], rate: f64, out: &mut Vec<u8>) -> Result<(), String> {
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
                // serde_json writes a finite f64 as its shortest round-trip text.
                serde_json::to_writer(&mut *out, &(rate * cents as f64))
                    .map_err(|e| e.to_string())?;
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
