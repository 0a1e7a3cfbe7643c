//! Test harness for Weir: locating the repository and the shared data,
//! building the example UDFs, running job files on the embedded
//! mini-cluster, and reading what the sinks wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

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

/// Builds the Rust UDF `udfs/NAME` and returns its component.
///
/// # Errors
/// When the build fails.
pub fn rust_udf(name: &str) -> Result<PathBuf> {
    Ok(weir_cli::udf::build_rust_udf(
        &repo_root().join("udfs").join(name),
    )?)
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
    let dir = repo_root().join("udfs").join(name);
    let version = wit_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let out = out_dir.join(format!("{name}-{}.wasm", version.unwrap_or_default()));
    let status = Command::new("componentize-py")
        .arg("-d")
        .arg(wit_dir)
        .args(["-w", "operator", "componentize", "app", "-o"])
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
        progress: false,
    };
    let (_, summary) = weir_cli::run::run_file(&file, &options)?;
    Ok(summary)
}
