//! The TaskManager's configuration, from the same dotted keys as the
//! JobManager's (a shared file works for both: keys of the JobManager and
//! of jobs are ignored here).
//!
//! Keys: `jobmanager.rpc.address` (`127.0.0.1`) and `jobmanager.rpc.port`
//! (6123), where to register; `taskmanager.host` (`127.0.0.1`), the address
//! this TaskManager binds and is known by; `taskmanager.numberOfTaskSlots`
//! (the number of cores); `heartbeat.interval` (10 s) and
//! `heartbeat.timeout` (50 s), used until the JobManager's own values
//! arrive with the registration; `security.ssl.internal.dir`, the
//! certificate directory (required).

use std::collections::BTreeMap;
use std::path::PathBuf;

use weir_types::jobgraph::parse_duration_ms;

/// A TaskManager's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskManagerConfig {
    /// `jobmanager.rpc.address`: the JobManager's host name or IP.
    pub jobmanager_host: String,
    /// `jobmanager.rpc.port`.
    pub jobmanager_port: u16,
    /// `taskmanager.host`: this TaskManager's address.
    pub host: String,
    /// `taskmanager.numberOfTaskSlots`.
    pub slots: u32,
    /// `heartbeat.interval`, ms.
    pub heartbeat_interval_ms: u64,
    /// `heartbeat.timeout`, ms.
    pub heartbeat_timeout_ms: u64,
    /// `security.ssl.internal.dir`.
    pub certs_dir: PathBuf,
}

/// Why the configuration is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TmConfigError {
    /// A key of the TaskManager's families that nobody reads.
    #[error("unknown configuration key `{0}`")]
    UnknownKey(String),
    /// A value of the wrong kind.
    #[error("configuration key `{key}`: {message}")]
    BadValue {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// No certificate directory.
    #[error(
        "a TaskManager needs the cluster's certificates: pass --certs DIR (key security.ssl.internal.dir); create a development set with `weir cert init DIR`"
    )]
    NoCertificates,
}

/// Keys the JobManager reads that start with a prefix the TaskManager
/// checks: accepted here and ignored.
const JOBMANAGER_KEYS: &[&str] = &["jobmanager.bind-host"];

impl TaskManagerConfig {
    /// Builds the configuration from lowercase dotted keys.
    ///
    /// # Errors
    /// [`TmConfigError`] naming the key.
    pub fn from_keys(keys: &BTreeMap<String, String>) -> Result<Self, TmConfigError> {
        let mut config = Self {
            jobmanager_host: "127.0.0.1".into(),
            jobmanager_port: 6123,
            host: "127.0.0.1".into(),
            slots: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            heartbeat_interval_ms: 10_000,
            heartbeat_timeout_ms: 50_000,
            certs_dir: PathBuf::new(),
        };
        let mut certs = None;
        for (key, value) in keys {
            let bad = |message: String| TmConfigError::BadValue {
                key: key.clone(),
                message,
            };
            match key.as_str() {
                "jobmanager.rpc.address" => config.jobmanager_host = value.clone(),
                "jobmanager.rpc.port" => {
                    config.jobmanager_port = value
                        .parse()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| bad(format!("`{value}` is not a port number")))?;
                }
                "taskmanager.host" => {
                    if value.is_empty() {
                        return Err(bad("must not be empty".into()));
                    }
                    config.host = value.clone();
                }
                "taskmanager.numberoftaskslots" => {
                    config.slots = value
                        .parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| bad(format!("`{value}` is not a positive number")))?;
                }
                "heartbeat.interval" => {
                    config.heartbeat_interval_ms = parse_duration_ms(value).map_err(bad)?
                }
                "heartbeat.timeout" => {
                    config.heartbeat_timeout_ms = parse_duration_ms(value).map_err(bad)?
                }
                "security.ssl.internal.dir" => {
                    certs = (!value.is_empty()).then(|| PathBuf::from(value));
                }
                k if JOBMANAGER_KEYS.contains(&k) => {}
                k if ["taskmanager.", "heartbeat.", "security.", "jobmanager.rpc."]
                    .iter()
                    .any(|p| k.starts_with(p)) =>
                {
                    return Err(TmConfigError::UnknownKey(key.clone()));
                }
                // The JobManager's and the jobs' keys.
                _ => {}
            }
        }
        weir_rpc::check_heartbeat(config.heartbeat_interval_ms, config.heartbeat_timeout_ms)
            .map_err(|message| TmConfigError::BadValue {
                key: "heartbeat.timeout".into(),
                message,
            })?;
        config.certs_dir = certs.ok_or(TmConfigError::NoCertificates)?;
        Ok(config)
    }

    /// `HOST:PORT` of the JobManager.
    #[must_use]
    pub fn jobmanager(&self) -> String {
        if self.jobmanager_host.contains(':') {
            format!("[{}]:{}", self.jobmanager_host, self.jobmanager_port)
        } else {
            format!("{}:{}", self.jobmanager_host, self.jobmanager_port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_and_overrides() {
        let config = TaskManagerConfig::from_keys(&keys(&[
            ("security.ssl.internal.dir", "/certs"),
            ("jobmanager.rpc.address", "10.0.0.1"),
            ("taskmanager.numberoftaskslots", "2"),
            ("heartbeat.interval", "1s"),
            ("heartbeat.timeout", "3000"),
            ("rest.port", "8081"),
            ("execution.checkpointing.interval", "1s"),
        ]))
        .unwrap();
        assert_eq!(config.jobmanager(), "10.0.0.1:6123");
        assert_eq!(config.slots, 2);
        assert_eq!(config.heartbeat_interval_ms, 1000);
        assert_eq!(config.heartbeat_timeout_ms, 3000);
        assert_eq!(config.certs_dir, PathBuf::from("/certs"));
        assert_eq!(config.host, "127.0.0.1");
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            TaskManagerConfig::from_keys(&keys(&[])),
            Err(TmConfigError::NoCertificates)
        );
        let certs = ("security.ssl.internal.dir", "/c");
        assert_eq!(
            TaskManagerConfig::from_keys(&keys(&[certs, ("taskmanager.slots", "2")])),
            Err(TmConfigError::UnknownKey("taskmanager.slots".into()))
        );
        let err =
            TaskManagerConfig::from_keys(&keys(&[certs, ("taskmanager.numberoftaskslots", "0")]))
                .unwrap_err();
        assert!(err.to_string().contains("not a positive number"), "{err}");
        let err =
            TaskManagerConfig::from_keys(&keys(&[certs, ("heartbeat.timeout", "1s")])).unwrap_err();
        assert!(
            err.to_string().contains("longer than heartbeat.interval"),
            "{err}"
        );
    }
}
