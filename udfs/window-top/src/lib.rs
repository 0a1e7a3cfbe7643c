//! The top records of each window: of the records with the same key and
//! the same event time, those with the largest value of a numeric field
//! (all of them when several tie), emitted when the watermark passes
//! their time.
//!
//! Meant to follow a built-in window, re-keyed by `window_end`: a window's
//! results all carry its last timestamp (`window_end - 1`), so they meet
//! here under one key and one timer. Nexmark's hot items (query 5: the
//! auctions with the most bids per window) and highest bid (query 7) are
//! written this way.
//!
//! Config: `by`, the field compared (a dotted path into nested objects,
//! e.g. `bid.price`); `emit`, optionally a dotted path of the part of
//! each record to emit instead of the whole record.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use weir_guest::prelude::*;

/// Operator configuration (`config:` in the job file).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Dotted path of the numeric field to maximise.
    by: String,
    /// Dotted path of the part of a record to emit (default: all of it).
    emit: Option<String>,
}

/// Keeps, per key and timestamp, the largest value and how many records
/// have it (`best`), and each of those records as an entry of its own
/// (`tops`, keyed by timestamp and rank): a record costs a read of `best`
/// and at most one write of each, whatever the number of ties (a list of
/// the ties rewritten per record was quadratic in them, and Nexmark at 10M
/// events/s puts thousands of tied auctions in one window). Most records
/// lose against the best so far, and then only the small `best` entry is
/// read. Records stay JSON text (`RawValue`) end to end: only the compared
/// field is parsed.
struct WindowTop {
    by: Vec<String>,
    emit: Option<Vec<String>>,
    best: MapState<i64, Best>,
    tops: MapState<(i64, u64), Box<RawValue>>,
}

/// The largest value at one timestamp and how many records have it.
#[derive(Serialize, Deserialize, Clone, Copy)]
struct Best {
    value: f64,
    ties: u64,
}

fn path(text: &str) -> Vec<String> {
    text.split('.').map(str::to_string).collect()
}

/// The JSON text at a dotted path of a JSON object, parsing only the
/// objects on the way (their fields stay unparsed text).
fn lookup<'a>(json: &'a str, path: &[String]) -> Option<&'a str> {
    path.iter().try_fold(json, |text, field| {
        let mut de = serde_json::Deserializer::from_str(text);
        let found = Field(field).deserialize(&mut de).ok()?;
        de.end().ok()?;
        found.map(RawValue::get)
    })
}

/// Deserializes a JSON object into the text of one of its fields (the
/// first of that name), skipping the others without building anything.
struct Field<'p>(&'p str);

impl<'de> DeserializeSeed<'de> for Field<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Field<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(is_field) = map.next_key_seed(IsName(self.0))? {
            if found.is_none() && is_field {
                found = Some(map.next_value::<&RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// Deserializes a field name into whether it is the one looked for
/// (escaped names are compared unescaped).
struct IsName<'p>(&'p str);

impl<'de> DeserializeSeed<'de> for IsName<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for IsName<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E>(self, name: &str) -> Result<bool, E> {
        Ok(name == self.0)
    }
}

impl KeyedProcessFunction for WindowTop {
    type Config = Config;
    type In<'a> = Raw;
    type Out = Raw;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        if config.by.is_empty() {
            return Err("`by` must name a field".into());
        }
        Ok(Self {
            by: path(&config.by),
            emit: config.emit.as_deref().map(path),
            best: MapState::new("best"),
            tops: MapState::new("tops"),
        })
    }

    fn process(
        &mut self,
        _key: &[u8],
        record: Raw,
        out: &mut Collector<'_, Raw>,
    ) -> Result<(), String> {
        let time = out
            .timestamp()
            .ok_or("records need event time (window results have it)")?;
        let text =
            std::str::from_utf8(&record.0).map_err(|e| format!("record is not UTF-8: {e}"))?;
        let value = lookup(text, &self.by)
            .and_then(|v| serde_json::from_str::<f64>(v).ok())
            .ok_or_else(|| format!("field `{}` is missing or not a number", self.by.join(".")))?;
        let best = self.best.get(&time)?;
        if best.is_some_and(|best| value < best.value) {
            return Ok(());
        }
        let part = match &self.emit {
            Some(emit) => lookup(text, emit)
                .ok_or_else(|| format!("field `{}` is missing", emit.join(".")))?,
            None => text,
        };
        let part = RawValue::from_string(part.to_string()).map_err(|e| e.to_string())?;
        let rank = match best {
            None => {
                timers::register_event_time_timer(time);
                0
            }
            Some(best) if value == best.value => best.ties,
            Some(best) => {
                // A new largest value: the old ties go (each record is
                // removed at most once, so this is O(1) per record overall).
                for rank in 0..best.ties {
                    self.tops.remove(&(time, rank));
                }
                0
            }
        };
        self.best.put(
            &time,
            &Best {
                value,
                ties: rank + 1,
            },
        );
        self.tops.put(&(time, rank), &part);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _key: &[u8],
        timestamp: i64,
        _domain: TimeDomain,
        out: &mut Collector<'_, Raw>,
    ) -> Result<(), String> {
        let ties = self.best.get(&timestamp)?.map_or(0, |best| best.ties);
        for rank in 0..ties {
            if let Some(record) = self.tops.get(&(timestamp, rank))? {
                out.emit(Raw(record.get().as_bytes().to_vec()));
            }
            self.tops.remove(&(timestamp, rank));
        }
        self.best.remove(&timestamp);
        Ok(())
    }
}

weir_guest::export!(keyed_process WindowTop);
