//! Streaming z-score anomaly detector for the NAB example.
//!
//! Keyed by series. Keeps Welford's running mean and variance (Welford 1962;
//! Knuth, TAOCP vol. 2, 4.2.2) in value state and flags a reading whose
//! z-score against the readings *before* it reaches `threshold`, once at least
//! `warmup` readings have been seen.
//!
//! With `event_time: true` the rule is applied in event-time order instead
//! of arrival order: each reading waits in map state (by timestamp) with an
//! event-time timer, and when the watermark passes its timestamp the
//! readings of that timestamp are scored in arrival order. A reading at or
//! below the watermark when it arrives is late: it goes to the side output
//! `late` and is not scored.

use weir_guest::prelude::*;

/// Operator configuration (`config:` in the job file).
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Readings to see before flagging anything.
    warmup: u64,
    /// Absolute z-score at or above which a reading is an anomaly.
    threshold: f64,
    /// Score readings in event-time order (buffered until the watermark).
    event_time: bool,
    /// The guest's keyed-state cache budget in estimated bytes (0: off);
    /// the SDK's default when absent. For tests and benchmarks.
    state_cache_bytes: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            warmup: 30,
            threshold: 4.0,
            event_time: false,
            state_cache_bytes: None,
        }
    }
}

/// One CSV row of a NAB series.
#[derive(Serialize, Deserialize)]
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
    /// Event-time mode: readings waiting for the watermark, by timestamp.
    pending: MapState<i64, Vec<Reading>>,
}

impl KeyedProcessFunction for ZScore {
    type Config = Config;
    type In<'a> = Reading;
    type Out = Alert;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        if config.threshold.is_nan() || config.threshold <= 0.0 {
            return Err(format!("threshold must be > 0, got {}", config.threshold));
        }
        if let Some(bytes) = config.state_cache_bytes {
            weir_guest::state_cache::set_cache_bytes(bytes);
        }
        Ok(Self {
            config,
            stats: ValueState::new("welford"),
            pending: MapState::new("pending"),
        })
    }

    fn process(
        &mut self,
        key: &[u8],
        reading: Reading,
        out: &mut Collector<'_, Alert>,
    ) -> Result<(), String> {
        if !self.config.event_time {
            return self.score(key, reading, out);
        }
        let ts = out
            .timestamp()
            .ok_or("event_time needs record timestamps (set `timestamp` on the source)")?;
        if ts <= timers::current_watermark() {
            out.emit_side("late", reading);
            return Ok(());
        }
        self.pending
            .update(&ts, |waiting| waiting.get_or_insert_default().push(reading))?;
        timers::register_event_time_timer(ts);
        Ok(())
    }

    fn on_timer(
        &mut self,
        key: &[u8],
        timestamp: i64,
        _domain: TimeDomain,
        out: &mut Collector<'_, Alert>,
    ) -> Result<(), String> {
        let waiting = self.pending.take(&timestamp)?.unwrap_or_default();
        for reading in waiting {
            self.score(key, reading, out)?;
        }
        Ok(())
    }
}

impl ZScore {
    /// The z-score rule for the next reading of the current key's series.
    fn score(
        &mut self,
        key: &[u8],
        reading: Reading,
        out: &mut Collector<'_, Alert>,
    ) -> Result<(), String> {
        let config = &self.config;
        self.stats.update(|stats| {
            let s = stats.get_or_insert_default();
            let x = reading.value;
            if s.n >= config.warmup && s.n >= 2 {
                let std = (s.m2 / (s.n - 1) as f64).sqrt();
                let z = if std > 0.0 { (x - s.mean) / std } else { 0.0 };
                if z.abs() >= config.threshold {
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
            Ok(())
        })?
    }
}

weir_guest::export!(keyed_process ZScore);
