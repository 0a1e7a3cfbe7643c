//! A window aggregate component: exact percentiles of a numeric field by
//! the nearest-rank method (the smallest value with at least `p`% of the
//! window's values at or below it).
//!
//! Config: `{"field": "value", "percentiles": [50, 90, 99]}` (defaults:
//! field `value`, percentiles 50, 90 and 99). The result holds one field per
//! percentile, named `p50`, `p90`, `p99.9`...; `null` for an empty window.
//! A record whose field is missing or not a number is rejected.

use serde_json::{Map, Value};
use weir_guest_aggregate::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "default_field")]
    field: String,
    #[serde(default = "default_percentiles")]
    percentiles: Vec<f64>,
}

fn default_field() -> String {
    "value".into()
}

fn default_percentiles() -> Vec<f64> {
    vec![50.0, 90.0, 99.0]
}

struct Percentiles {
    field: String,
    percentiles: Vec<f64>,
}

impl AggregateFunction for Percentiles {
    type Config = Config;
    type In = Map<String, Value>;
    /// Every value of the window (exact percentiles need them all).
    type Acc = Vec<f64>;
    type Out = Map<String, Value>;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        if let Some(p) = config
            .percentiles
            .iter()
            .find(|p| !(**p > 0.0 && **p <= 100.0))
        {
            return Err(format!("percentile {p} is not in (0, 100]"));
        }
        Ok(Percentiles {
            field: config.field,
            percentiles: config.percentiles,
        })
    }

    fn create_accumulator(&self) -> Vec<f64> {
        Vec::new()
    }

    fn add(&self, acc: &mut Vec<f64>, record: Map<String, Value>) -> Result<(), String> {
        match record.get(&self.field) {
            Some(Value::Number(n)) => {
                acc.push(n.as_f64().unwrap_or(f64::NAN));
                Ok(())
            }
            Some(other) => Err(format!("field `{}` is not a number: {other}", self.field)),
            None => Err(format!("field `{}` is missing", self.field)),
        }
    }

    fn merge(&self, acc: &mut Vec<f64>, other: Vec<f64>) {
        acc.extend(other);
    }

    fn get_result(&self, mut acc: Vec<f64>) -> Result<Map<String, Value>, String> {
        acc.sort_by(f64::total_cmp);
        let mut out = Map::new();
        for &p in &self.percentiles {
            out.insert(format!("p{p}"), nearest_rank(&acc, p).into());
        }
        Ok(out)
    }
}

/// The nearest-rank percentile of sorted values: the value at rank
/// `ceil(p / 100 * n)` (1-based); `None` when there are no values.
fn nearest_rank(sorted: &[f64], p: f64) -> Option<f64> {
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.max(1) - 1).copied()
}

weir_guest_aggregate::export!(Percentiles);
