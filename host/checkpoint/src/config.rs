//! Checkpoint settings under Flink's configuration keys.

use std::collections::BTreeMap;
use std::path::PathBuf;

use weir_types::RocksDbOptions;

use crate::RestartStrategy;

/// A configuration key or value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not a key Weir knows.
    #[error("unknown configuration key `{key}`; known keys: {known}")]
    UnknownKey {
        /// The key.
        key: String,
        /// The keys Weir reads, comma-separated.
        known: String,
    },
    /// The value does not fit the key.
    #[error("bad value `{value}` for `{key}`: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What was expected.
        reason: String,
    },
    /// Not `key=value`.
    #[error("`{0}` is not `key=value`")]
    NotAPair(String),
}

/// How a job checkpoints. Defaults are Flink's, except that the checkpoint
/// directory defaults to `./weir-checkpoints`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointConfig {
    /// `execution.checkpointing.interval`: ms between checkpoint triggers;
    /// `None` (the default) disables checkpointing.
    pub interval_ms: Option<u64>,
    /// `execution.checkpointing.timeout`: ms before a checkpoint in flight
    /// is aborted (default 10 min).
    pub timeout_ms: u64,
    /// `execution.checkpointing.min-pause`: ms from the end of one
    /// checkpoint to the start of the next (default 0).
    pub min_pause_ms: u64,
    /// `execution.checkpointing.tolerable-failed-checkpoints`: consecutive
    /// failed checkpoints that do not fail the job (default 0).
    pub tolerable_failures: u32,
    /// `state.checkpoints.dir`: a local directory, `file:///...`, or an
    /// object-store URL (`s3://bucket/prefix`, `az://container/prefix`,
    /// `gs://bucket/prefix`; see [`CheckpointConfig::store_options`]).
    pub dir: String,
    /// `state.checkpoints.num-retained`: completed checkpoints kept (default 5).
    pub num_retained: usize,
    /// `state.savepoints.dir`: where stop-with-savepoint copies the final
    /// checkpoint, as `<dir>/<job>/chk-<n>` (default `weir-savepoints`).
    pub savepoint_dir: String,
    /// `execution.checkpointing.mode`: `exactly_once` (the default) aligns
    /// barriers; `at_least_once` lets records after a barrier through
    /// before the others arrived (no blocking, but replays may duplicate).
    pub exactly_once: bool,
    /// `execution.checkpointing.incremental` (or Flink's older
    /// `state.backend.incremental`): RocksDB keyed state is checkpointed
    /// natively, uploading only SST files earlier checkpoints did not
    /// (default `true`, unlike Flink); `false` writes every entry in each
    /// checkpoint (a full snapshot). The memory backend is always full.
    pub incremental: bool,
    /// `restart-strategy.type` and its keys; `None` (unset) means
    /// `exponential-delay` with checkpointing and `none` without, as in Flink.
    pub restart: Option<RestartStrategy>,
    /// `restart-strategy.max-identical-failures`: a job whose attempts fail
    /// this many times in a row with the same error (same operator,
    /// subtask, record and message) fails instead of restarting again,
    /// whatever the restart strategy allows (default 3; 0: no limit).
    #[serde(default = "default_max_identical_failures")]
    pub max_identical_failures: u32,
    /// Object-store options from the keys `s3.*`, `azure.*` and `gs.*`
    /// (endpoint, region, credentials, ...), by canonical key
    /// (`s3.access-key` is kept as `s3.access_key_id`). They override the
    /// store's environment variables (`AWS_*`, `AZURE_*`, `GOOGLE_*`).
    pub store_options: BTreeMap<String, String>,
    /// `web.checkpoints.history`: completed checkpoints whose statistics
    /// are kept in full (the run summary, the REST API); the rest count
    /// toward totals only (default 10, as Flink).
    #[serde(default = "default_stats_history")]
    pub stats_history: usize,
    /// The RocksDB state backend's settings (`state.backend.rocksdb.*`).
    #[serde(default)]
    pub rocksdb: RocksDbOptions,
}

impl Default for CheckpointConfig {
    fn default() -> Self {
        Self {
            interval_ms: None,
            timeout_ms: 600_000,
            min_pause_ms: 0,
            tolerable_failures: 0,
            dir: "weir-checkpoints".into(),
            num_retained: 5,
            savepoint_dir: "weir-savepoints".into(),
            exactly_once: true,
            incremental: true,
            restart: None,
            max_identical_failures: default_max_identical_failures(),
            store_options: BTreeMap::new(),
            stats_history: default_stats_history(),
            rocksdb: RocksDbOptions::default(),
        }
    }
}

fn default_stats_history() -> usize {
    crate::DEFAULT_STATS_HISTORY
}

fn default_max_identical_failures() -> u32 {
    3
}

const KEYS: [&str; 12] = [
    "web.checkpoints.history",
    "restart-strategy.max-identical-failures",
    "execution.checkpointing.interval",
    "execution.checkpointing.timeout",
    "execution.checkpointing.min-pause",
    "execution.checkpointing.tolerable-failed-checkpoints",
    "state.checkpoints.dir",
    "state.checkpoints.num-retained",
    "execution.checkpointing.mode",
    "state.savepoints.dir",
    "execution.checkpointing.incremental",
    "state.backend.incremental",
];

impl CheckpointConfig {
    /// Is `key` one of the keys this struct reads?
    pub fn knows(key: &str) -> bool {
        KEYS.contains(&key)
            || RocksDbOptions::knows(key)
            || crate::restart::KEYS.contains(&key)
            || crate::object_stores::is_store_key(key)
    }

    /// Whether checkpoints are taken (an interval is set).
    pub fn enabled(&self) -> bool {
        self.interval_ms.is_some()
    }

    /// The restart strategy in force: the configured one, or Flink's
    /// default (exponential delay with checkpointing, none without).
    pub fn restart_strategy(&self) -> RestartStrategy {
        match &self.restart {
            Some(s) => s.clone(),
            None if self.enabled() => RestartStrategy::exponential_default(),
            None => RestartStrategy::None,
        }
    }

    /// Applies one `key`/`value` setting (as `-Dkey=value` gives it).
    /// Durations are ms or text (`500ms`, `10s`, `1min`); `0`, `off` or
    /// `none` for the interval disables checkpointing.
    ///
    /// # Errors
    /// [`ConfigError::UnknownKey`] or [`ConfigError::BadValue`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let bad = |reason: &str| ConfigError::BadValue {
            key: key.into(),
            value: value.into(),
            reason: reason.into(),
        };
        let duration = || {
            parse_duration_ms(value)
                .ok_or_else(|| bad("expected a duration such as 500ms, 10s or 1min"))
        };
        let count = || {
            value
                .trim()
                .parse::<u64>()
                .map_err(|_| bad("expected a whole number"))
        };
        match key {
            "execution.checkpointing.interval" => {
                self.interval_ms = match value.trim() {
                    "off" | "none" => None,
                    _ => Some(duration()?).filter(|ms| *ms > 0),
                };
            }
            "execution.checkpointing.timeout" => {
                self.timeout_ms = Some(duration()?)
                    .filter(|ms| *ms > 0)
                    .ok_or_else(|| bad("must be more than 0"))?;
            }
            "execution.checkpointing.min-pause" => self.min_pause_ms = duration()?,
            "web.checkpoints.history" => {
                self.stats_history = usize::try_from(count()?)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("must be a whole number more than 0"))?;
            }
            "execution.checkpointing.tolerable-failed-checkpoints" => {
                self.tolerable_failures = u32::try_from(count()?).map_err(|_| bad("too large"))?;
            }
            "state.checkpoints.dir" => {
                if value.trim().is_empty() {
                    return Err(bad("must not be empty"));
                }
                self.dir = value.trim().to_string();
            }
            "state.checkpoints.num-retained" => {
                self.num_retained = usize::try_from(count()?)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("must be at least 1"))?;
            }
            "state.savepoints.dir" => {
                if value.trim().is_empty() {
                    return Err(bad("must not be empty"));
                }
                self.savepoint_dir = value.trim().to_string();
            }
            "execution.checkpointing.mode" => {
                self.exactly_once = match value.trim().to_ascii_lowercase().as_str() {
                    "exactly_once" | "exactly-once" => true,
                    "at_least_once" | "at-least-once" => false,
                    _ => return Err(bad("expected exactly_once or at_least_once")),
                };
            }
            "execution.checkpointing.incremental" | "state.backend.incremental" => {
                self.incremental = match value.trim().to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("expected true or false")),
                };
            }
            _ if RocksDbOptions::knows(key) => self.rocksdb.set(key, value).map_err(|e| bad(&e))?,
            _ if crate::object_stores::is_store_key(key) => {
                let (key, value) = crate::object_stores::store_option(key, value)?;
                self.store_options.insert(key, value);
            }
            "restart-strategy.max-identical-failures" => {
                self.max_identical_failures = value
                    .trim()
                    .parse()
                    .map_err(|_| bad("expected a count (0: no limit)"))?;
            }
            _ if key.starts_with("restart-strategy.") => {
                // Refines the strategy in force (Flink's default until a type is set).
                let mut strategy = self.restart_strategy();
                strategy.set(key, value)?;
                self.restart = Some(strategy);
            }
            _ => {
                let mut known: Vec<&str> = KEYS.to_vec();
                known.extend(crate::restart::KEYS);
                known.extend(weir_types::rocksdb_options::KEYS);
                known.extend(["s3.*", "azure.*", "gs.*"]);
                return Err(ConfigError::UnknownKey {
                    key: key.into(),
                    known: known.join(", "),
                });
            }
        }
        Ok(())
    }

    /// Applies a `key=value` pair.
    ///
    /// # Errors
    /// [`ConfigError::NotAPair`] or what [`CheckpointConfig::set`] returns.
    pub fn set_pair(&mut self, pair: &str) -> Result<(), ConfigError> {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| ConfigError::NotAPair(pair.into()))?;
        self.set(key.trim(), value)
    }

    /// Applies several settings (a job file's `configuration:`, a
    /// configuration file), `restart-strategy.type` first: the other
    /// `restart-strategy.*` keys belong to the type and are refused before
    /// it, whatever order a map lists them in.
    ///
    /// # Errors
    /// The first [`ConfigError`].
    pub fn set_all<'a>(
        &mut self,
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), ConfigError> {
        let (types, rest): (Vec<_>, Vec<_>) = pairs
            .into_iter()
            .partition(|(k, _)| *k == "restart-strategy.type");
        for (key, value) in types.into_iter().chain(rest) {
            self.set(key, value)?;
        }
        Ok(())
    }

    /// The checkpoint directory as a local path, when it is one.
    pub fn local_dir(&self) -> Option<PathBuf> {
        match self.dir.split_once("://") {
            None => Some(PathBuf::from(&self.dir)),
            Some(("file", path)) => Some(PathBuf::from(path)),
            Some(_) => None,
        }
    }
}

/// `1500`, `500ms`, `10s`, `1min`, `1h` as ms (`humantime`'s format).
pub(crate) fn parse_duration_ms(text: &str) -> Option<u64> {
    weir_types::jobgraph::parse_duration_ms(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_keys_set_typed_values() {
        let mut c = CheckpointConfig::default();
        assert_eq!(c.interval_ms, None);
        c.set_pair("execution.checkpointing.interval=500ms")
            .unwrap();
        c.set_pair("execution.checkpointing.timeout=1min").unwrap();
        c.set_pair("state.checkpoints.num-retained=3").unwrap();
        c.set_pair("state.checkpoints.dir=file:///tmp/ck").unwrap();
        assert_eq!(c.interval_ms, Some(500));
        assert_eq!(c.timeout_ms, 60_000);
        assert_eq!(c.num_retained, 3);
        assert_eq!(c.local_dir(), Some(PathBuf::from("/tmp/ck")));
        c.set_pair("execution.checkpointing.interval=off").unwrap();
        assert_eq!(c.interval_ms, None);
        assert!(c.incremental);
        c.set_pair("execution.checkpointing.incremental=false")
            .unwrap();
        assert!(!c.incremental);
        c.set_pair("state.backend.incremental=TRUE").unwrap();
        c.set_pair("state.backend.rocksdb.memory.fixed-per-slot=32mb")
            .unwrap();
        assert_eq!(c.rocksdb.fixed_per_slot_bytes, 32 << 20);
        let e = c
            .set_pair("state.backend.rocksdb.writebuffer.count=none")
            .unwrap_err();
        assert!(e.to_string().contains("whole number"), "{e}");
        let e = c.set_pair("state.backend.rocksdb.bogus=1").unwrap_err();
        assert!(
            matches!(&e, ConfigError::UnknownKey { known, .. } if known.contains("state.backend.rocksdb.thread.num")),
            "{e}"
        );
        assert!(c.incremental);
        assert_eq!(c.stats_history, 10);
        c.set_pair("web.checkpoints.history=3").unwrap();
        assert_eq!(c.stats_history, 3);
        let e = c.set_pair("web.checkpoints.history=0").unwrap_err();
        assert!(e.to_string().contains("more than 0"), "{e}");
    }

    #[test]
    fn bad_keys_and_values_say_what_is_wrong() {
        let mut c = CheckpointConfig::default();
        let e = c
            .set_pair("execution.checkpointing.intervall=1s")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown configuration key `execution.checkpointing.intervall`")
        );
        let e = c.set_pair("state.checkpoints.num-retained=0").unwrap_err();
        assert!(e.to_string().contains("at least 1"), "{e}");
        let e = c
            .set_pair("execution.checkpointing.interval=soon")
            .unwrap_err();
        assert!(e.to_string().contains("expected a duration"), "{e}");
        let e = c
            .set_pair("execution.checkpointing.incremental=yes")
            .unwrap_err();
        assert!(e.to_string().contains("expected true or false"), "{e}");
        assert!(matches!(
            c.set_pair("nothing"),
            Err(ConfigError::NotAPair(_))
        ));
    }

    /// Regression: a map lists `restart-strategy.fixed-delay.*` before
    /// `restart-strategy.type` (alphabetical), which `set` refuses.
    #[test]
    fn set_all_applies_the_restart_strategy_type_first() {
        let mut config = CheckpointConfig::default();
        let pairs = std::collections::BTreeMap::from([
            ("restart-strategy.fixed-delay.attempts", "3"),
            ("restart-strategy.fixed-delay.delay", "100ms"),
            ("restart-strategy.type", "fixed-delay"),
        ]);
        config
            .set_all(pairs.iter().map(|(k, v)| (*k, *v)))
            .expect("accepted in any order");
        assert_eq!(
            config.restart_strategy(),
            crate::RestartStrategy::FixedDelay {
                attempts: 3,
                delay_ms: 100
            }
        );
    }
}
