//! The REST client behind `weir udf upload`, `weir submit`, `weir list`,
//! `weir status`, `weir cancel` and `weir stop`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::udf::{BuildError, build_udf};

/// The JobManager URL when neither `--jobmanager` nor `WEIR_JOBMANAGER` is given.
pub const DEFAULT_JOBMANAGER: &str = "http://127.0.0.1:8081";

/// Why a client command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The JobManager cannot be reached.
    #[error(
        "cannot reach the JobManager at {url}: {message} (is `weir jobmanager` running? set --jobmanager or WEIR_JOBMANAGER)"
    )]
    Unreachable {
        /// The URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The command was used wrongly.
    #[error("{0}")]
    Usage(String),
    /// The JobManager answered with an error.
    #[error("the JobManager refused ({status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// Its `errors`, joined.
        message: String,
    },
    /// A local file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The job file is not valid YAML or JSON.
    #[error("invalid job file {path}: {message}")]
    JobFile {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A UDF could not be built.
    #[error("operator `{operator}`: {source}")]
    Build {
        /// The operator id.
        operator: String,
        /// Why.
        source: BuildError,
    },
}

/// A JobManager's REST API.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the JobManager at `url` (`http://host:port`), sending
    /// `token` as a bearer token when given.
    pub fn new(url: &str, token: Option<String>) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            base: url.trim_end_matches('/').to_string(),
            token,
            agent,
        }
    }

    fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", content_type);
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request =
            request
                .body(body.unwrap_or_default())
                .map_err(|e| ClientError::Unreachable {
                    url: url.clone(),
                    message: e.to_string(),
                })?;
        let mut response = self
            .agent
            .run(request)
            .map_err(|e| ClientError::Unreachable {
                url: self.base.clone(),
                message: e.to_string(),
            })?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::Unreachable {
                url: url.clone(),
                message: e.to_string(),
            })?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status >= 400 {
            let message = value
                .get("errors")
                .and_then(Value::as_array)
                .map(|errors| {
                    errors
                        .iter()
                        .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_string))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_else(|| value.to_string());
            return Err(ClientError::Refused { status, message });
        }
        Ok(value)
    }

    /// `GET path`.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] or [`ClientError::Refused`].
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call("GET", path, "application/json", None)
    }

    /// Uploads a `.wasm` component; returns `{"id", "world", "size", ...}`.
    ///
    /// # Errors
    /// [`ClientError::Read`], or the JobManager's refusal.
    pub fn upload(&self, wasm: &Path) -> Result<Value, ClientError> {
        let bytes = std::fs::read(wasm).map_err(|source| ClientError::Read {
            path: wasm.into(),
            source,
        })?;
        self.call("POST", "/v1/artifacts", "application/wasm", Some(bytes))
    }

    /// Submits job text as it is; returns the job id. `defines` are
    /// `KEY=VALUE` configuration pairs that override the job file's
    /// `configuration:` map.
    ///
    /// # Errors
    /// [`ClientError::Usage`] for a pair without `=`; the JobManager's refusal.
    pub fn submit_text(
        &self,
        text: &str,
        parallelism: Option<u32>,
        savepoint: Option<&str>,
        defines: &[String],
    ) -> Result<String, ClientError> {
        let mut query = Vec::new();
        if let Some(p) = parallelism {
            query.push(format!("parallelism={p}"));
        }
        if let Some(s) = savepoint {
            query.push(format!("savepointPath={}", encode(s)));
        }
        if !defines.is_empty() {
            let mut configuration = serde_json::Map::new();
            for pair in defines {
                let (key, value) = pair
                    .split_once('=')
                    .ok_or_else(|| ClientError::Usage(format!("-D {pair}: expected KEY=VALUE")))?;
                configuration.insert(key.trim().to_string(), Value::from(value.trim()));
            }
            let json = Value::Object(configuration).to_string();
            query.push(format!("configuration={}", encode(&json)));
        }
        let path = if query.is_empty() {
            "/v1/jobs".to_string()
        } else {
            format!("/v1/jobs?{}", query.join("&"))
        };
        let answer = self.call(
            "POST",
            &path,
            "application/yaml",
            Some(text.as_bytes().to_vec()),
        )?;
        Ok(answer
            .get("jobid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// Submits a job file: every `udf:` that is a local `.wasm` or a UDF
    /// project directory (Rust or Python; relative to the job file) is built if needed, uploaded,
    /// and named by its artifact id. Returns the job id. `defines` as for
    /// [`Client::submit_text`].
    ///
    /// # Errors
    /// [`ClientError`] for an unreadable job file, a failed build or upload,
    /// or the JobManager's refusal.
    pub fn submit_file(
        &self,
        job_file: &Path,
        parallelism: Option<u32>,
        savepoint: Option<&str>,
        defines: &[String],
    ) -> Result<String, ClientError> {
        let text = std::fs::read_to_string(job_file).map_err(|source| ClientError::Read {
            path: job_file.into(),
            source,
        })?;
        let text = self.upload_udfs(job_file, &text)?;
        self.submit_text(&text, parallelism, savepoint, defines)
    }

    /// Replaces local `udf:` paths in job text by uploaded artifacts.
    fn upload_udfs(&self, job_file: &Path, text: &str) -> Result<String, ClientError> {
        let bad = |message: String| ClientError::JobFile {
            path: job_file.into(),
            message,
        };
        let mut job: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| bad(e.to_string()))?;
        let base = job_file.parent().unwrap_or(Path::new("."));
        let mut changed = false;
        if let Some(ops) = job
            .get_mut("operators")
            .and_then(serde_norway::Value::as_sequence_mut)
        {
            for op in ops {
                let id = op
                    .get("id")
                    .and_then(serde_norway::Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                let Some(udf) = op.get("udf").and_then(serde_norway::Value::as_str) else {
                    continue;
                };
                if udf.starts_with("artifact:") {
                    continue;
                }
                let path = base.join(udf);
                let wasm = if path.is_dir() {
                    eprintln!("Building UDF {} for operator `{id}` ...", path.display());
                    build_udf(&path).map_err(|source| ClientError::Build {
                        operator: id.clone(),
                        source,
                    })?
                } else {
                    path
                };
                let info = self.upload(&wasm)?;
                let artifact = info.get("id").and_then(Value::as_str).unwrap_or_default();
                eprintln!("Uploaded {} as artifact {artifact}", wasm.display());
                if let Some(map) = op.as_mapping_mut() {
                    map.insert(
                        "udf".into(),
                        serde_norway::Value::String(format!("artifact:{artifact}")),
                    );
                    changed = true;
                }
            }
        }
        if !changed {
            return Ok(text.to_string());
        }
        serde_norway::to_string(&job).map_err(|e| bad(e.to_string()))
    }

    /// `PATCH /v1/jobs/{id}?mode=cancel`.
    ///
    /// # Errors
    /// The JobManager's refusal (unknown job, already ended).
    pub fn cancel(&self, id: &str) -> Result<(), ClientError> {
        self.call(
            "PATCH",
            &format!("/v1/jobs/{id}?mode=cancel"),
            "application/json",
            None,
        )?;
        Ok(())
    }

    /// `POST /v1/jobs/{id}/stop`; returns the request id.
    ///
    /// # Errors
    /// The JobManager's refusal.
    pub fn stop(&self, id: &str, target: Option<&str>, drain: bool) -> Result<String, ClientError> {
        let body = serde_json::json!({ "targetDirectory": target, "drain": drain });
        self.trigger(&format!("/v1/jobs/{id}/stop"), &body)
    }

    /// `POST /v1/jobs/{id}/savepoints`: a savepoint while the job runs;
    /// returns the request id.
    ///
    /// # Errors
    /// The JobManager's refusal.
    pub fn trigger_savepoint(&self, id: &str, target: Option<&str>) -> Result<String, ClientError> {
        let body = serde_json::json!({ "target-directory": target, "cancel-job": false });
        self.trigger(&format!("/v1/jobs/{id}/savepoints"), &body)
    }

    /// Posts an asynchronous operation; returns its `request-id`.
    fn trigger(&self, path: &str, body: &Value) -> Result<String, ClientError> {
        let answer = self.call(
            "POST",
            path,
            "application/json",
            Some(body.to_string().into_bytes()),
        )?;
        Ok(answer
            .get("request-id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }

    /// Polls a savepoint request until it completed; returns its location.
    ///
    /// # Errors
    /// [`ClientError::Refused`] with the failure cause when it failed.
    pub fn wait_for_savepoint(&self, id: &str, request: &str) -> Result<String, ClientError> {
        loop {
            let answer = self.get(&format!("/v1/jobs/{id}/savepoints/{request}"))?;
            if answer["status"]["id"] == "COMPLETED" {
                return match answer["operation"]["location"].as_str() {
                    Some(location) => Ok(location.to_string()),
                    None => Err(ClientError::Refused {
                        status: 200,
                        message: format!(
                            "the savepoint failed: {}",
                            answer["operation"]["failure-cause"]
                                .as_str()
                                .unwrap_or("unknown")
                        ),
                    }),
                };
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Formats rows as a table with a header, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_pad_columns() {
        let t = table(
            &["ID", "STATE"],
            &[
                vec!["abc".into(), "RUNNING".into()],
                vec!["a".into(), "X".into()],
            ],
        );
        assert_eq!(t, "ID   STATE\nabc  RUNNING\na    X\n");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("/tmp/sp dir/chk-3"), "/tmp/sp%20dir/chk-3");
        assert_eq!(encode("a&b=c"), "a%26b%3Dc");
    }
}
