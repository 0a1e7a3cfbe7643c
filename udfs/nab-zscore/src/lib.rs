//! Streaming z-score anomaly detector for the NAB example.
//!
//! Keyed by series. Keeps Welford's running mean and variance (Welford 1962;
//! Knuth, TAOCP vol. 2, 4.2.2) in value state and flags a reading whose
//! z-score against the readings *before* it reaches `threshold`, once at least
//! `warmup` readings have been seen.

use weir_guest::prelude::*;

/// Operator configuration (`config:` in the job file).
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Readings to see before flagging anything.
    warmup: u64,
    /// Absolute z-score at or above which a reading is an anomaly.
    threshold: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            warmup: 30,
            threshold: 4.0,
        }
    }
}

/// One CSV row of a NAB series.
#[derive(Deserialize)]
struct Reading {
    timestamp: String,
    value: f64,
}

/// An anomaly: the series, the reading's timestamp as in the CSV, its value
/// and its z-score.
#[derive(Serialize)]
struct Alert {
    series: String,
    timestamp: String,
    value: f64,
    z: f64,
}

/// Welford's running statistics of one series.
#[derive(Serialize, Deserialize, Default)]
struct Stats {
    n: u64,
    mean: f64,
    m2: f64,
}

struct ZScore {
    config: Config,
    stats: ValueState<Stats>,
}

impl KeyedProcessFunction for ZScore {
    type Config = Config;
    type In = Reading;
    type Out = Alert;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        if config.threshold.is_nan() || config.threshold <= 0.0 {
            return Err(format!("threshold must be > 0, got {}", config.threshold));
        }
        Ok(Self {
            config,
            stats: ValueState::new("welford"),
        })
    }

    fn process(
        &mut self,
        key: &[u8],
        reading: Reading,
        out: &mut Collector<'_, Alert>,
    ) -> Result<(), String> {
        let mut s = self.stats.get()?.unwrap_or_default();
        let x = reading.value;
        if s.n >= self.config.warmup && s.n >= 2 {
            let std = (s.m2 / (s.n - 1) as f64).sqrt();
            let z = if std > 0.0 { (x - s.mean) / std } else { 0.0 };
            if z.abs() >= self.config.threshold {
                let series = String::from_utf8(key.to_vec())
                    .map_err(|_| "series key is not UTF-8".to_string())?;
                out.emit(Alert {
                    series,
                    timestamp: reading.timestamp,
                    value: x,
                    z,
                });
            }
        }
        s.n += 1;
        let delta = x - s.mean;
        s.mean += delta / s.n as f64;
        s.m2 += delta * (x - s.mean);
        self.stats.set(&s);
        Ok(())
    }
}

weir_guest::export!(keyed_process ZScore);
