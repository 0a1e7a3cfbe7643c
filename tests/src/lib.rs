//! Test harness for Weir: locating the repository and the shared data,
//! building the example UDFs, running job files on the embedded
//! mini-cluster, reading what the sinks wrote, and object-store emulators
//! for checkpoint storage ([`emulators`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

pub mod emulators;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The NAB corpus: `$WEIR_NAB_DIR`, else `../shared/data/nab` beside the repository.
pub fn nab_dir() -> PathBuf {
    std::env::var_os("WEIR_NAB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data/nab"))
}

/// The rows of one NAB series: `(timestamp text, value)` in file order.
pub type NabRows = Vec<(String, f64)>;

/// Every NAB series under `data` (the corpus' `data/` directory), by name:
/// the CSV path relative to `data`, without extension, with `/` separators
/// (as the jobs' `key: { from: path }` gives).
///
/// # Errors
/// Unreadable files, or a row that is not `timestamp,number`.
pub fn nab_series(data: &Path) -> Result<BTreeMap<String, NabRows>> {
    fn csv_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                csv_files(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "csv") {
                out.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    csv_files(data, &mut files)?;
    let mut series = BTreeMap::new();
    for file in files {
        let name = file
            .strip_prefix(data)?
            .with_extension("")
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file)?;
        let rows = text
            .lines()
            .skip(1)
            .filter(|l| !l.is_empty())
            .map(|line| {
                let (t, v) = line
                    .split_once(',')
                    .with_context(|| format!("{}: {line}", file.display()))?;
                Ok((t.to_string(), v.parse()?))
            })
            .collect::<Result<NabRows>>()?;
        series.insert(name, rows);
    }
    Ok(series)
}

/// Every NAB series under `data` as [`nab_series`] reads it, with the
/// timestamps in ms since the epoch: `(ms, value)` in file order.
///
/// # Errors
/// As [`nab_series`], or a timestamp in another format.
pub fn nab_series_ms(data: &Path) -> Result<BTreeMap<String, Vec<(i64, f64)>>> {
    nab_series(data)?
        .into_iter()
        .map(|(name, rows)| {
            let rows = rows
                .into_iter()
                .map(|(t, v)| Ok((nab_millis(&t)?, v)))
                .collect::<Result<Vec<_>>>()?;
            Ok((name, rows))
        })
        .collect()
}

/// A NAB timestamp (`%Y-%m-%d %H:%M:%S`, UTC) in ms since the epoch.
///
/// # Errors
/// Text in another format.
pub fn nab_millis(timestamp: &str) -> Result<i64> {
    let t = chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%d %H:%M:%S")?;
    Ok(t.and_utc().timestamp_millis())
}

/// The NAB z-score rule over one series' readings in the given order:
/// Welford's running mean and variance; a reading whose z-score against
/// the readings before it reaches `threshold` (after at least `warmup`
/// and 2 readings) is an alert `(timestamp, value, z)`.
pub fn zscore_alerts(
    rows: &[(String, f64)],
    warmup: u64,
    threshold: f64,
) -> Vec<(String, f64, f64)> {
    let (mut n, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
    let mut alerts = Vec::new();
    for (t, x) in rows {
        if n >= warmup && n >= 2 {
            let std = (m2 / (n - 1) as f64).sqrt();
            let z = if std > 0.0 { (x - mean) / std } else { 0.0 };
            if z.abs() >= threshold {
                alerts.push((t.clone(), *x, z));
            }
        }
        n += 1;
        let delta = x - mean;
        mean += delta / n as f64;
        m2 += delta * (x - mean);
    }
    alerts
}

/// Builds the Rust UDF `udfs/NAME` and returns its component.
///
/// # Errors
/// When the build fails.
pub fn rust_udf(name: &str) -> Result<PathBuf> {
    Ok(weir_cli::udf::build_rust_udf(
        &repo_root().join("udfs").join(name),
    )?)
}

/// Subtask 0 of 1 of operator `id` (128 key groups, first attempt), for
/// tests that drive a component instance directly.
pub fn subtask(id: &str) -> weir_wasm::SubtaskInfo {
    weir_wasm::SubtaskInfo {
        operator_id: id.into(),
        index: 0,
        parallelism: 1,
        max_parallelism: 128,
        attempt: 0,
    }
}

/// Builds the Python UDF `udfs/NAME` (its `app.py`) with componentize-py
/// into `out_dir` and returns the component.
///
/// # Errors
/// When componentize-py is missing or fails.
pub fn python_udf(name: &str, out_dir: &Path) -> Result<PathBuf> {
    python_udf_against(name, out_dir, &repo_root().join("wit"))
}

/// Builds a Python UDF against the WIT in `wit_dir` (e.g. the frozen
/// `wit/v0.1.0`, to check that old components still run).
///
/// # Errors
/// When componentize-py is missing or fails.
pub fn python_udf_against(name: &str, out_dir: &Path, wit_dir: &Path) -> Result<PathBuf> {
    python_component(name, out_dir, wit_dir, "operator")
}

/// Builds the Python component `udfs/NAME` as WIT world `world`
/// (`operator` or `aggregate`) of the package in `wit_dir`.
///
/// # Errors
/// When componentize-py is missing or fails.
pub fn python_component(
    name: &str,
    out_dir: &Path,
    wit_dir: &Path,
    world: &str,
) -> Result<PathBuf> {
    let dir = repo_root().join("udfs").join(name);
    let version = wit_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let out = out_dir.join(format!("{name}-{}.wasm", version.unwrap_or_default()));
    let status = Command::new("componentize-py")
        .arg("-d")
        .arg(wit_dir)
        .args(["-w", world, "componentize", "app", "-o"])
        .arg(&out)
        .current_dir(&dir)
        .status()
        .context("cannot run componentize-py (pip install componentize-py)")?;
    if !status.success() {
        bail!("componentize-py failed for {}: {status}", dir.display());
    }
    Ok(out)
}

/// Every JSON line of every `part-*` file under `dir`, grouped by file (in name order).
///
/// # Errors
/// Unreadable files or invalid JSON.
pub fn read_parts(dir: &Path) -> Result<Vec<Vec<serde_json::Value>>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("part-"))
        })
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)?;
            text.lines()
                .map(|l| serde_json::from_str(l).with_context(|| format!("{}: {l}", f.display())))
                .collect()
        })
        .collect()
}

/// Writes `yaml` as `job.yaml` in `dir` and runs it like `weir run` does.
///
/// # Errors
/// Any failure of the job.
pub fn run_yaml(dir: &Path, yaml: &str, parallelism: Option<u32>) -> Result<weir_task::JobSummary> {
    let file = dir.join("job.yaml");
    std::fs::write(&file, yaml)?;
    let options = weir_cli::run::RunOptions {
        parallelism,
        ..Default::default()
    };
    let (_, summary) = weir_cli::run::run_file(&file, &options)?;
    Ok(summary)
}
