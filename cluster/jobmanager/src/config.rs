//! The JobManager's configuration: a TOML file, then `WEIR_*` environment
//! variables, then `-D key=value` (each overriding the one before), read
//! with figment and flattened to Flink-style dotted keys.
//!
//! Keys (case-insensitive): `rest.address` (default `127.0.0.1`),
//! `rest.port` (8081), `rest.auth.token` (none), `rest.upload.max-bytes`
//! (128 MiB), `taskmanager.numberOfTaskSlots` (the number of cores; 0:
//! no local slots, jobs run on the TaskManagers that register),
//! `high-availability.storageDir` (`weir-ha`), the cluster keys
//! `jobmanager.rpc.address` (`127.0.0.1`; the address the QUIC endpoint
//! for TaskManagers binds), `jobmanager.rpc.port` (6123),
//! `heartbeat.interval` (10 s), `heartbeat.timeout` (50 s) and
//! `security.ssl.internal.dir` (the certificate directory; without it no
//! TaskManager can connect), and every checkpoint and restart key of
//! `weir run` (`execution.checkpointing.interval`,
//! `restart-strategy.type`, ...), which become every job's defaults.
//! Durations are ms as a bare number (Flink's form) or text such as `5s`.
//!
//! In the TOML file keys may be nested tables (`[rest] port = 8081`) or
//! quoted dotted keys (`"rest.port" = 8081`). An environment variable
//! names a key with `__` for `.` and `_` for `-` after the prefix:
//! `WEIR_REST__PORT=9000`, `WEIR_HIGH_AVAILABILITY__STORAGEDIR=/var/weir`;
//! variables without `__` (`WEIR_LOG`, `WEIR_JOBMANAGER`) are not
//! configuration.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Toml};
use figment::value::{Dict, Value};
use weir_checkpoint::CheckpointConfig;
use weir_types::jobgraph::parse_duration_ms;

/// Default `rest.upload.max-bytes`: 128 MiB.
pub const DEFAULT_UPLOAD_MAX_BYTES: u64 = 128 << 20;

/// The JobManager's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct JobManagerConfig {
    /// `rest.address`: where the REST API listens.
    pub rest_address: IpAddr,
    /// `rest.port`: its port (0: any free port).
    pub rest_port: u16,
    /// `rest.auth.token`: the bearer token every request must carry;
    /// without one the API only listens on loopback.
    pub auth_token: Option<String>,
    /// `rest.upload.max-bytes`: the largest artifact upload, bytes.
    pub upload_max_bytes: u64,
    /// `taskmanager.numberOfTaskSlots`: slots of the local TaskManager; 0
    /// schedules jobs onto the TaskManagers that register instead.
    pub slots: u32,
    /// `high-availability.storageDir`: artifacts, submitted jobs and their
    /// checkpoints persist here, so a restarted JobManager finds them.
    pub ha_dir: PathBuf,
    /// Checkpoint and restart keys, applied to every job before its own
    /// `configuration:` and the submit-time options.
    pub job_defaults: BTreeMap<String, String>,
    /// `jobmanager.rpc.address`: where the QUIC endpoint for TaskManagers
    /// listens.
    pub rpc_address: IpAddr,
    /// `jobmanager.rpc.port` (0: any free port).
    pub rpc_port: u16,
    /// `heartbeat.interval`, ms: how often TaskManagers send heartbeats.
    pub heartbeat_interval_ms: u64,
    /// `heartbeat.timeout`, ms: silence after which a TaskManager is lost.
    pub heartbeat_timeout_ms: u64,
    /// `security.ssl.internal.dir`: the cluster's certificate directory
    /// (`ca.pem`, `node.pem`, `node-key.pem`); `None`: no cluster endpoint.
    pub certs_dir: Option<PathBuf>,
}

/// Default `jobmanager.rpc.port`, Flink's.
pub const DEFAULT_RPC_PORT: u16 = 6123;
/// Default `heartbeat.interval`, ms (Flink's).
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 10_000;
/// Default `heartbeat.timeout`, ms (Flink's).
pub const DEFAULT_HEARTBEAT_TIMEOUT_MS: u64 = 50_000;

/// Reads the configuration keys of a TOML file (optional), then the
/// `WEIR_*` variables of `env`, then `overrides`, into lowercase dotted
/// keys (each source overriding the one before); shared by the
/// JobManager's and the TaskManager's configuration.
///
/// # Errors
/// [`ConfigError::Source`] when the file is missing or not TOML.
pub fn load_keys(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    overrides: &[(String, String)],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        if !file.is_file() {
            return Err(ConfigError::Source(format!(
                "{} does not exist",
                file.display()
            )));
        }
        figment = figment.merge(Toml::file(file));
    }
    let dict: Dict = figment
        .extract()
        .map_err(|e| ConfigError::Source(e.to_string()))?;
    let mut flat = BTreeMap::new();
    for (key, value) in &dict {
        flatten(&key.to_lowercase(), value, &mut flat);
    }
    for (name, value) in env {
        if let Some(rest) = name.strip_prefix("WEIR_")
            && rest.contains("__")
        {
            let key = rest.replace("__", ".").replace('_', "-").to_lowercase();
            flat.insert(key, value);
        }
    }
    for (key, value) in overrides {
        flat.insert(key.to_lowercase(), value.clone());
    }
    Ok(flat)
}

/// Why the configuration is invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file cannot be read or parsed.
    #[error("configuration: {0}")]
    Source(String),
    /// A key nobody reads.
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
    /// Serving beyond loopback without a token.
    #[error(
        "rest.address {0} is not a loopback address: uploads run code, so set rest.auth.token to serve beyond this machine"
    )]
    OpenWithoutToken(IpAddr),
}

impl JobManagerConfig {
    /// Reads `file` (TOML, optional), then the `WEIR_*` variables of `env`,
    /// then `overrides` (`-D` pairs).
    ///
    /// # Errors
    /// [`ConfigError`] naming the key and what is wrong.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &[(String, String)],
    ) -> Result<Self, ConfigError> {
        Self::from_keys(&load_keys(file, env, overrides)?)
    }

    /// Builds the configuration from dotted keys (lowercase).
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn from_keys(keys: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        let mut config = Self {
            rest_address: IpAddr::from([127, 0, 0, 1]),
            rest_port: 8081,
            auth_token: None,
            upload_max_bytes: DEFAULT_UPLOAD_MAX_BYTES,
            slots: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            ha_dir: PathBuf::from("weir-ha"),
            job_defaults: BTreeMap::new(),
            rpc_address: IpAddr::from([127, 0, 0, 1]),
            rpc_port: DEFAULT_RPC_PORT,
            heartbeat_interval_ms: DEFAULT_HEARTBEAT_INTERVAL_MS,
            heartbeat_timeout_ms: DEFAULT_HEARTBEAT_TIMEOUT_MS,
            certs_dir: None,
        };
        // Checked now so a typo fails at start, not per job.
        let job_keys: Vec<(&str, &str)> = keys
            .iter()
            .filter(|(k, _)| CheckpointConfig::knows(k))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        CheckpointConfig::default()
            .set_all(job_keys.iter().copied())
            .map_err(|e| ConfigError::BadValue {
                key: "checkpoint and restart keys".into(),
                message: e.to_string(),
            })?;
        for (key, value) in keys {
            let bad = |message: String| ConfigError::BadValue {
                key: key.clone(),
                message,
            };
            match key.as_str() {
                "rest.address" | "rest.bind-address" => {
                    config.rest_address = value
                        .parse()
                        .map_err(|_| bad(format!("`{value}` is not an IP address")))?;
                }
                "rest.port" | "rest.bind-port" => {
                    config.rest_port = value
                        .parse()
                        .map_err(|_| bad(format!("`{value}` is not a port number")))?;
                }
                "rest.auth.token" => {
                    config.auth_token = (!value.is_empty()).then(|| value.clone());
                }
                "rest.upload.max-bytes" => {
                    config.upload_max_bytes = value
                        .parse()
                        .map_err(|_| bad(format!("`{value}` is not a number of bytes")))?;
                }
                "taskmanager.numberoftaskslots" => {
                    // 0: no local slots; jobs run on TaskManagers.
                    config.slots = value
                        .parse()
                        .map_err(|_| bad(format!("`{value}` is not a number of slots")))?;
                }
                "high-availability.storagedir" => config.ha_dir = PathBuf::from(value),
                // A TaskManager's key: a file shared by both processes works.
                "taskmanager.host" => {}
                "jobmanager.rpc.address" | "jobmanager.bind-host" => {
                    config.rpc_address = value
                        .parse()
                        .map_err(|_| bad(format!("`{value}` is not an IP address")))?;
                }
                "jobmanager.rpc.port" => {
                    config.rpc_port = value
                        .parse()
                        .map_err(|_| bad(format!("`{value}` is not a port number")))?;
                }
                "heartbeat.interval" => {
                    config.heartbeat_interval_ms = parse_duration_ms(value).map_err(bad)?
                }
                "heartbeat.timeout" => {
                    config.heartbeat_timeout_ms = parse_duration_ms(value).map_err(bad)?
                }
                "security.ssl.internal.dir" => {
                    config.certs_dir = (!value.is_empty()).then(|| PathBuf::from(value));
                }
                _ if CheckpointConfig::knows(key) => {
                    config.job_defaults.insert(key.clone(), value.clone());
                }
                _ => return Err(ConfigError::UnknownKey(key.clone())),
            }
        }
        weir_rpc::check_heartbeat(config.heartbeat_interval_ms, config.heartbeat_timeout_ms)
            .map_err(|message| ConfigError::BadValue {
                key: "heartbeat.timeout".into(),
                message,
            })?;
        if config.auth_token.is_none() && !config.rest_address.is_loopback() {
            return Err(ConfigError::OpenWithoutToken(config.rest_address));
        }
        Ok(config)
    }
}

/// Flattens nested tables into dotted keys (lowercase), values as text.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Dict(_, dict) => {
            for (k, v) in dict {
                let key = if prefix.is_empty() {
                    k.to_lowercase()
                } else {
                    format!("{prefix}.{}", k.to_lowercase())
                };
                flatten(&key, v, out);
            }
        }
        Value::String(_, s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        Value::Char(_, c) => {
            out.insert(prefix.to_string(), c.to_string());
        }
        Value::Bool(_, b) => {
            out.insert(prefix.to_string(), b.to_string());
        }
        Value::Num(_, n) => {
            let text = n
                .to_i128()
                .map(|i| i.to_string())
                .or_else(|| n.to_f64().map(|f| f.to_string()))
                .unwrap_or_default();
            out.insert(prefix.to_string(), text);
        }
        Value::Empty(..) | Value::Array(..) => {
            out.insert(prefix.to_string(), String::new());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_then_environment_then_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("weir.toml");
        std::fs::write(
            &file,
            "\"taskmanager.numberOfTaskSlots\" = 3\n\"high-availability.storageDir\" = \"/from/file\"\n\"execution.checkpointing.interval\" = \"1s\"\n[rest]\nport = 9000\n",
        )
        .unwrap();
        let env = pairs(&[
            ("WEIR_HIGH_AVAILABILITY__STORAGEDIR", "/from/env"),
            ("WEIR_LOG", "info"),
            ("WEIR_REST__PORT", "9001"),
        ]);
        let config =
            JobManagerConfig::load(Some(&file), env, &pairs(&[("rest.port", "9002")])).unwrap();
        assert_eq!(config.rest_port, 9002);
        assert_eq!(config.slots, 3);
        assert_eq!(config.ha_dir, PathBuf::from("/from/env"));
        assert_eq!(
            config.job_defaults.get("execution.checkpointing.interval"),
            Some(&"1s".to_string())
        );
        assert_eq!(config.rest_address, IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn bad_keys_and_values_are_named() {
        let err = JobManagerConfig::load(None, [], &pairs(&[("rest.prot", "1")])).unwrap_err();
        assert_eq!(err.to_string(), "unknown configuration key `rest.prot`");
        let err = JobManagerConfig::load(None, [], &pairs(&[("rest.port", "http")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("`rest.port`: `http` is not a port"),
            "{err}"
        );
        let err = JobManagerConfig::load(
            None,
            [],
            &pairs(&[("execution.checkpointing.interval", "soon")]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("execution.checkpointing.interval"),
            "{err}"
        );
    }

    #[test]
    fn cluster_keys_with_flink_defaults() {
        let config = JobManagerConfig::load(None, [], &[]).unwrap();
        assert_eq!(config.rpc_port, 6123);
        assert_eq!(config.heartbeat_interval_ms, 10_000);
        assert_eq!(config.heartbeat_timeout_ms, 50_000);
        assert_eq!(config.certs_dir, None);
        let config = JobManagerConfig::load(
            None,
            [],
            &pairs(&[
                ("jobmanager.rpc.port", "7000"),
                ("heartbeat.interval", "200"),
                ("heartbeat.timeout", "1s"),
                ("security.ssl.internal.dir", "/certs"),
            ]),
        )
        .unwrap();
        assert_eq!(config.rpc_port, 7000);
        assert_eq!(config.heartbeat_interval_ms, 200);
        assert_eq!(config.heartbeat_timeout_ms, 1000);
        assert_eq!(config.certs_dir, Some(PathBuf::from("/certs")));
        let err =
            JobManagerConfig::load(None, [], &pairs(&[("heartbeat.timeout", "5s")])).unwrap_err();
        assert!(
            err.to_string().contains("longer than heartbeat.interval"),
            "{err}"
        );
        let err = JobManagerConfig::load(None, [], &pairs(&[("heartbeat.interval", "often")]))
            .unwrap_err();
        assert!(
            err.to_string().contains("`often` is not a duration"),
            "{err}"
        );
    }

    #[test]
    fn beyond_loopback_needs_a_token() {
        let open = pairs(&[("rest.address", "0.0.0.0")]);
        assert!(matches!(
            JobManagerConfig::load(None, [], &open),
            Err(ConfigError::OpenWithoutToken(_))
        ));
        let mut with_token = open;
        with_token.push(("rest.auth.token".into(), "s3cret".into()));
        let config = JobManagerConfig::load(None, [], &with_token).unwrap();
        assert_eq!(config.auth_token.as_deref(), Some("s3cret"));
    }
}
