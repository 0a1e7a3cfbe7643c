//! Restart strategies (Flink's `restart-strategy.*` keys) as a state
//! machine over `now_ms`: after a task failure, may the job restart, and
//! after how long?

use crate::ConfigError;

/// How a failed job restarts from its latest completed checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum RestartStrategy {
    /// `none`: a failure fails the job.
    None,
    /// `fixed-delay`: up to `attempts` restarts, `delay_ms` apart.
    FixedDelay {
        /// `restart-strategy.fixed-delay.attempts` (default 1).
        attempts: u32,
        /// `restart-strategy.fixed-delay.delay` in ms (default 1 s).
        delay_ms: u64,
    },
    /// `exponential-delay` (the default with checkpointing): the delay
    /// starts at `initial_ms` and is multiplied by `multiplier` after each
    /// failure up to `max_ms`; a run that lasted `reset_after_ms` without
    /// failing starts again at `initial_ms`. Unlike Flink there is no
    /// jitter, so tests are repeatable.
    ExponentialDelay {
        /// `restart-strategy.exponential-delay.initial-backoff` (default 1 s).
        initial_ms: u64,
        /// `restart-strategy.exponential-delay.max-backoff` (default 1 min).
        max_ms: u64,
        /// `restart-strategy.exponential-delay.backoff-multiplier` (default 1.5).
        multiplier: f64,
        /// `restart-strategy.exponential-delay.reset-backoff-threshold` (default 1 h).
        reset_after_ms: u64,
        /// `restart-strategy.exponential-delay.attempts-before-reset-backoff`
        /// (default unlimited).
        attempts: u32,
    },
    /// `failure-rate`: restarts `delay_ms` after a failure unless more than
    /// `max_failures` happened within the last `interval_ms`.
    FailureRate {
        /// `restart-strategy.failure-rate.max-failures-per-interval` (default 1).
        max_failures: u32,
        /// `restart-strategy.failure-rate.failure-rate-interval` in ms (default 1 min).
        interval_ms: u64,
        /// `restart-strategy.failure-rate.delay` in ms (default 1 s).
        delay_ms: u64,
    },
}

impl RestartStrategy {
    /// Flink's `exponential-delay` defaults.
    pub fn exponential_default() -> Self {
        Self::ExponentialDelay {
            initial_ms: 1_000,
            max_ms: 60_000,
            multiplier: 1.5,
            reset_after_ms: 3_600_000,
            attempts: u32::MAX,
        }
    }

    fn fixed_default() -> Self {
        Self::FixedDelay {
            attempts: 1,
            delay_ms: 1_000,
        }
    }

    fn failure_rate_default() -> Self {
        Self::FailureRate {
            max_failures: 1,
            interval_ms: 60_000,
            delay_ms: 1_000,
        }
    }

    /// Applies one `restart-strategy.*` key. `restart-strategy.type`
    /// switches strategy (with its defaults); the other keys must belong to
    /// the current strategy, so set the type first.
    ///
    /// # Errors
    /// [`ConfigError::BadValue`] for a bad value or a key of another
    /// strategy, [`ConfigError::UnknownKey`] for other keys.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |reason: String| ConfigError::BadValue {
            key: key.into(),
            value: value.into(),
            reason,
        };
        let duration = || {
            crate::config::parse_duration_ms(value)
                .ok_or_else(|| bad("expected a duration such as 500ms, 10s or 1min".into()))
        };
        let count = || {
            value
                .trim()
                .parse::<u32>()
                .map_err(|_| bad("expected a whole number".into()))
        };
        if key == "restart-strategy.type" {
            *self = match value.trim() {
                "none" | "off" | "disable" => Self::None,
                "fixed-delay" | "fixeddelay" => Self::fixed_default(),
                "exponential-delay" | "exponentialdelay" => Self::exponential_default(),
                "failure-rate" | "failurerate" => Self::failure_rate_default(),
                _ => {
                    return Err(bad(
                        "expected none, fixed-delay, exponential-delay or failure-rate".into(),
                    ));
                }
            };
            return Ok(());
        }
        match (self, key) {
            (Self::FixedDelay { attempts, .. }, "restart-strategy.fixed-delay.attempts") => {
                *attempts = count()?;
            }
            (Self::FixedDelay { delay_ms, .. }, "restart-strategy.fixed-delay.delay") => {
                *delay_ms = duration()?;
            }
            (
                Self::ExponentialDelay { initial_ms, .. },
                "restart-strategy.exponential-delay.initial-backoff",
            ) => *initial_ms = duration()?,
            (
                Self::ExponentialDelay { max_ms, .. },
                "restart-strategy.exponential-delay.max-backoff",
            ) => *max_ms = duration()?,
            (
                Self::ExponentialDelay { multiplier, .. },
                "restart-strategy.exponential-delay.backoff-multiplier",
            ) => {
                *multiplier = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|m| m.is_finite() && *m >= 1.0)
                    .ok_or_else(|| bad("expected a number of at least 1.0".into()))?;
            }
            (
                Self::ExponentialDelay { reset_after_ms, .. },
                "restart-strategy.exponential-delay.reset-backoff-threshold",
            ) => *reset_after_ms = duration()?,
            (
                Self::ExponentialDelay { attempts, .. },
                "restart-strategy.exponential-delay.attempts-before-reset-backoff",
            ) => *attempts = count()?,
            (
                Self::FailureRate { max_failures, .. },
                "restart-strategy.failure-rate.max-failures-per-interval",
            ) => *max_failures = count()?,
            (
                Self::FailureRate { interval_ms, .. },
                "restart-strategy.failure-rate.failure-rate-interval",
            ) => *interval_ms = duration()?,
            (Self::FailureRate { delay_ms, .. }, "restart-strategy.failure-rate.delay") => {
                *delay_ms = duration()?;
            }
            (current, key) if KEYS.contains(&key) => {
                return Err(bad(format!(
                    "the restart strategy is {}; set restart-strategy.type first",
                    current.name()
                )));
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    key: key.into(),
                    known: KEYS.join(", "),
                });
            }
        }
        Ok(())
    }

    /// The strategy's name as `restart-strategy.type` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::None => "none",
            Self::FixedDelay { .. } => "fixed-delay",
            Self::ExponentialDelay { .. } => "exponential-delay",
            Self::FailureRate { .. } => "failure-rate",
        }
    }
}

/// The `restart-strategy.*` keys Weir reads.
pub(crate) const KEYS: [&str; 11] = [
    "restart-strategy.type",
    "restart-strategy.fixed-delay.attempts",
    "restart-strategy.fixed-delay.delay",
    "restart-strategy.exponential-delay.initial-backoff",
    "restart-strategy.exponential-delay.max-backoff",
    "restart-strategy.exponential-delay.backoff-multiplier",
    "restart-strategy.exponential-delay.reset-backoff-threshold",
    "restart-strategy.exponential-delay.attempts-before-reset-backoff",
    "restart-strategy.failure-rate.max-failures-per-interval",
    "restart-strategy.failure-rate.failure-rate-interval",
    "restart-strategy.failure-rate.delay",
];

/// Applies a [`RestartStrategy`] to the failures of one job.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    strategy: RestartStrategy,
    /// Restarts so far (fixed delay), or since the last backoff reset.
    restarts: u32,
    /// The current exponential backoff, ms.
    backoff_ms: Option<u64>,
    /// When the current run started (for the backoff reset).
    run_started_ms: i64,
    /// Failure times within the failure-rate interval.
    failures: Vec<i64>,
}

impl RestartTracker {
    /// A tracker for a job whose first run starts at `now_ms`.
    pub fn new(strategy: RestartStrategy, now_ms: i64) -> Self {
        Self {
            strategy,
            restarts: 0,
            backoff_ms: None,
            run_started_ms: now_ms,
            failures: Vec::new(),
        }
    }

    /// The job failed at `now_ms`: `Some(delay in ms)` before the restart,
    /// or `None` when the strategy allows no more restarts.
    pub fn on_failure(&mut self, now_ms: i64) -> Option<u64> {
        let ran_ms = u64::try_from(now_ms - self.run_started_ms).unwrap_or(0);
        let delay = match &self.strategy {
            RestartStrategy::None => None,
            RestartStrategy::FixedDelay { attempts, delay_ms } => {
                (self.restarts < *attempts).then_some(*delay_ms)
            }
            RestartStrategy::ExponentialDelay {
                initial_ms,
                max_ms,
                multiplier,
                reset_after_ms,
                attempts,
            } => {
                if ran_ms >= *reset_after_ms {
                    self.backoff_ms = None;
                    self.restarts = 0;
                }
                let next = match self.backoff_ms {
                    None => *initial_ms,
                    Some(b) => ((b as f64 * multiplier) as u64).min(*max_ms),
                };
                self.backoff_ms = Some(next);
                (self.restarts < *attempts).then_some(next)
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval_ms,
                delay_ms,
            } => {
                let window_start = now_ms - i64::try_from(*interval_ms).unwrap_or(i64::MAX);
                self.failures.retain(|t| *t > window_start);
                self.failures.push(now_ms);
                (self.failures.len() <= *max_failures as usize).then_some(*delay_ms)
            }
        };
        if delay.is_some() {
            self.restarts += 1;
        }
        delay
    }

    /// The restarted run begins at `now_ms`.
    pub fn on_restart(&mut self, now_ms: i64) {
        self.run_started_ms = now_ms;
    }

    /// Restarts granted so far (since the last backoff reset).
    pub fn restarts(&self) -> u32 {
        self.restarts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strategy(pairs: &[(&str, &str)]) -> RestartStrategy {
        let mut s = RestartStrategy::None;
        for (k, v) in pairs {
            s.set(k, v).unwrap();
        }
        s
    }

    #[test]
    fn fixed_delay_allows_its_attempts_then_gives_up() {
        let s = strategy(&[
            ("restart-strategy.type", "fixed-delay"),
            ("restart-strategy.fixed-delay.attempts", "2"),
            ("restart-strategy.fixed-delay.delay", "50ms"),
        ]);
        let mut t = RestartTracker::new(s, 0);
        assert_eq!(t.on_failure(10), Some(50));
        assert_eq!(t.on_failure(20), Some(50));
        assert_eq!(t.on_failure(30), None);
    }

    #[test]
    fn exponential_delay_grows_to_its_cap_and_resets_after_a_long_run() {
        let s = strategy(&[
            ("restart-strategy.type", "exponential-delay"),
            (
                "restart-strategy.exponential-delay.initial-backoff",
                "100ms",
            ),
            ("restart-strategy.exponential-delay.max-backoff", "300ms"),
            ("restart-strategy.exponential-delay.backoff-multiplier", "2"),
            (
                "restart-strategy.exponential-delay.reset-backoff-threshold",
                "10s",
            ),
        ]);
        let mut t = RestartTracker::new(s, 0);
        assert_eq!(t.on_failure(1), Some(100));
        t.on_restart(101);
        assert_eq!(t.on_failure(200), Some(200));
        t.on_restart(400);
        assert_eq!(t.on_failure(500), Some(300));
        t.on_restart(800);
        // A run of 10 s without failure starts the backoff again.
        assert_eq!(t.on_failure(20_000), Some(100));
    }

    #[test]
    fn failure_rate_counts_failures_within_the_interval() {
        let s = strategy(&[
            ("restart-strategy.type", "failure-rate"),
            (
                "restart-strategy.failure-rate.max-failures-per-interval",
                "2",
            ),
            ("restart-strategy.failure-rate.failure-rate-interval", "1s"),
            ("restart-strategy.failure-rate.delay", "0"),
        ]);
        let mut t = RestartTracker::new(s, 0);
        assert_eq!(t.on_failure(0), Some(0));
        assert_eq!(t.on_failure(500), Some(0));
        assert_eq!(t.on_failure(900), None);
        // Two seconds later the old failures have left the interval.
        assert_eq!(t.on_failure(3_000), Some(0));
    }

    #[test]
    fn keys_of_another_strategy_and_unknown_types_are_errors() {
        let mut s = RestartStrategy::exponential_default();
        let e = s
            .set("restart-strategy.fixed-delay.attempts", "3")
            .unwrap_err();
        assert!(
            e.to_string().contains("set restart-strategy.type first"),
            "{e}"
        );
        let e = s.set("restart-strategy.type", "sometimes").unwrap_err();
        assert!(e.to_string().contains("fixed-delay"), "{e}");
        assert!(matches!(
            s.set("restart-strategy.nope", "1"),
            Err(ConfigError::UnknownKey { .. })
        ));
    }
}
