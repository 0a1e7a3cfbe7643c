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

use serde_json::Value;
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

/// The best records so far of one key and timestamp.
#[derive(Serialize, Deserialize)]
struct Top {
    value: f64,
    records: Vec<Value>,
}

struct WindowTop {
    by: Vec<String>,
    emit: Option<Vec<String>>,
    /// Best records by timestamp (results of several windows may wait at once).
    top: MapState<i64, Top>,
}

fn path(text: &str) -> Vec<String> {
    text.split('.').map(str::to_string).collect()
}

fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, field| v.get(field))
}

impl KeyedProcessFunction for WindowTop {
    type Config = Config;
    type In = Value;
    type Out = Value;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        if config.by.is_empty() {
            return Err("`by` must name a field".into());
        }
        Ok(Self {
            by: path(&config.by),
            emit: config.emit.as_deref().map(path),
            top: MapState::new("top"),
        })
    }

    fn process(
        &mut self,
        _key: &[u8],
        record: Value,
        out: &mut Collector<'_, Value>,
    ) -> Result<(), String> {
        let time = out
            .timestamp()
            .ok_or("records need event time (window results have it)")?;
        let value = lookup(&record, &self.by)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("field `{}` is missing or not a number", self.by.join(".")))?;
        let part = match &self.emit {
            Some(emit) => lookup(&record, emit)
                .cloned()
                .ok_or_else(|| format!("field `{}` is missing", emit.join(".")))?,
            None => record,
        };
        let top = match self.top.get(&time)? {
            None => {
                timers::register_event_time_timer(time);
                Top {
                    value,
                    records: vec![part],
                }
            }
            Some(mut top) if value == top.value => {
                top.records.push(part);
                top
            }
            Some(top) if value < top.value => return Ok(()),
            Some(_) => Top {
                value,
                records: vec![part],
            },
        };
        self.top.put(&time, &top);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _key: &[u8],
        timestamp: i64,
        _domain: TimeDomain,
        out: &mut Collector<'_, Value>,
    ) -> Result<(), String> {
        if let Some(top) = self.top.get(&timestamp)? {
            for record in top.records {
                out.emit(record);
            }
        }
        self.top.remove(&timestamp);
        Ok(())
    }
}

weir_guest::export!(keyed_process WindowTop);
