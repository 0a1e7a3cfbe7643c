//! `weir run`: run a job file on the embedded mini-cluster.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use weir_task::{JobError, JobMetrics, JobSummary, RunConfig};
use weir_types::jobgraph::{JobGraph, JobGraphError, line_of};

use crate::udf::{BuildError, build_udf};

/// Why `weir run` failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The job file is missing or invalid.
    #[error(transparent)]
    JobFile(#[from] JobGraphError),
    /// A UDF referenced by the job does not exist.
    #[error("invalid job file {file}{}: operators[{index}].udf: {path} does not exist", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    MissingUdf {
        /// The job file.
        file: PathBuf,
        /// 1-based line of the `udf:` field.
        line: Option<usize>,
        /// Index of the operator.
        index: usize,
        /// The resolved path.
        path: PathBuf,
    },
    /// A UDF could not be built.
    #[error("operator `{operator}`: {source}")]
    Build {
        /// The operator id.
        operator: String,
        /// Why.
        source: BuildError,
    },
    /// A configuration key or value is invalid.
    #[error("{0}")]
    Config(String),
    /// The job failed.
    #[error(transparent)]
    Job(#[from] JobError),
}

/// Options of `weir run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Overrides the job's default parallelism.
    pub parallelism: Option<u32>,
    /// Show a progress bar (only drawn when stderr is a terminal).
    pub progress: bool,
    /// Checkpointing and restart settings (`-D key=value`), used as they
    /// are when `defines` is empty and the job file has no
    /// `configuration:`.
    pub checkpoints: weir_task::CheckpointConfig,
    /// The `-D key=value` pairs, applied over the job file's
    /// `configuration:` (which then replaces `checkpoints`).
    pub defines: Vec<String>,
    /// `--from-checkpoint` / `--from-savepoint`.
    pub restore: Option<weir_task::Restore>,
    /// Stop with a savepoint once this is set (see [`RunConfig::stop`]).
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// Loads a job file and applies command-line overrides.
///
/// # Errors
/// [`RunError::JobFile`] naming the file, line and field.
pub fn load_job(path: &Path, options: &RunOptions) -> Result<JobGraph, RunError> {
    let mut job = JobGraph::from_file(path)?;
    if let Some(p) = options.parallelism {
        job.parallelism = p;
        job.revalidate(path)?;
    }
    Ok(job)
}

/// Resolves every operator's `udf` (relative to the job file's directory):
/// a `.wasm` file is used as is, a directory is built as a UDF project of
/// its language (Rust or Python).
///
/// # Errors
/// [`RunError::MissingUdf`] or [`RunError::Build`].
pub fn resolve_udfs(job: &JobGraph, job_file: &Path) -> Result<HashMap<String, PathBuf>, RunError> {
    let base = job_file.parent().unwrap_or(Path::new("."));
    let mut udfs = HashMap::new();
    for (index, op) in job.operators.iter().enumerate() {
        let Some(udf) = &op.udf else {
            continue; // a built-in operator
        };
        let path = base.join(udf);
        let wasm = if path.is_dir() {
            eprintln!(
                "Building UDF {} for operator `{}` ...",
                path.display(),
                op.id
            );
            build_udf(&path).map_err(|source| RunError::Build {
                operator: op.id.clone(),
                source,
            })?
        } else if path.is_file() {
            path
        } else {
            // The text is only needed to point at the line in the error.
            let text = std::fs::read_to_string(job_file).unwrap_or_default();
            let line = line_of(&text, "udf", Some(&udf.to_string_lossy()));
            return Err(RunError::MissingUdf {
                file: job_file.into(),
                line,
                index,
                path,
            });
        };
        udfs.insert(op.id.clone(), wasm);
    }
    Ok(udfs)
}

/// Runs a job file end to end, with a progress bar when asked.
///
/// # Errors
/// Any [`RunError`].
pub fn run_file(job_file: &Path, options: &RunOptions) -> Result<(JobGraph, JobSummary), RunError> {
    let job = load_job(job_file, options)?;
    let udfs = resolve_udfs(&job, job_file)?;
    let state_dir = unique_state_dir(&job.name);
    let mut config = RunConfig::new(udfs, state_dir);
    config.cache_dir = Some(crate::cache_root().join("components"));
    config.checkpoints = options.checkpoints.clone();
    if !job.configuration.is_empty() {
        // The job file's keys first, then -D.
        let mut checkpoints = weir_task::CheckpointConfig::default();
        checkpoints
            .set_all(
                job.configuration
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .map_err(|e| RunError::Config(format!("{}: configuration: {e}", job_file.display())))?;
        for pair in &options.defines {
            checkpoints
                .set_pair(pair)
                .map_err(|e| RunError::Config(e.to_string()))?;
        }
        config.checkpoints = checkpoints;
    }
    config.restore = options.restore.clone();
    let metrics = config.metrics.clone();
    let progress = options.progress.then(|| Progress::start(metrics));
    let commands = match &options.stop {
        Some(stop) => weir_jobmanager::commands::JobCommands::with_stop(Arc::clone(stop)),
        None => weir_jobmanager::commands::JobCommands::default(),
    };
    let result = weir_jobmanager::embedded::run(&job, config, commands);
    if let Some(progress) = progress {
        progress.stop();
    }
    Ok((job, result?))
}

/// A fresh directory for this run's state backends: several jobs may run
/// in one process (tests) or one machine at once.
fn unique_state_dir(job_name: &str) -> PathBuf {
    // Those of runs killed before they could remove theirs.
    weir_task::leftovers::remove_dead_process_dirs(weir_task::leftovers::run_dir_pid);
    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "weir-{}-{}-{run}-{nanos:08x}",
        sanitize(job_name),
        std::process::id()
    ))
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A spinner with records in/out and the rate, redrawn every 100 ms.
struct Progress {
    bar: indicatif::ProgressBar,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    fn start(metrics: Arc<JobMetrics>) -> Self {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
        {
            bar.set_style(style);
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (b, s) = (bar.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                let secs = metrics.elapsed().as_secs_f64().max(1e-3);
                b.set_message(format!(
                    "records in {}  out {}  errors {}  {:.0} records/s",
                    metrics.records_read(),
                    metrics.records_written(),
                    metrics.record_errors(),
                    metrics.records_read() as f64 / secs
                ));
                b.tick();
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self {
            bar,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.bar.finish_and_clear();
    }
}

/// The end-of-run summary, as printed by `weir run`.
pub fn format_summary(job: &JobGraph, summary: &JobSummary) -> String {
    let secs = summary.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        summary.records_read as f64 / secs
    } else {
        0.0
    };
    let mut text = format!(
        "Job `{}` finished in {:.3} s\n  records read     {}\n  records written  {}\n  record errors    {}\n  throughput       {:.0} records/s\n",
        job.name, secs, summary.records_read, summary.records_written, summary.record_errors, rate
    );
    if summary.dead_lettered > 0 {
        text.push_str(&format!(
            "  dead-lettered    {} of the record errors (in the dead-letter directories)\n",
            summary.dead_lettered
        ));
    }
    if let Some(first) = summary.first_record_latency {
        text.push_str(&format!(
            "  first record     {:.1} ms after start\n",
            first.as_secs_f64() * 1000.0
        ));
    }
    if let Some(last) = summary.checkpoints.latest() {
        text.push_str(&format!(
            "  checkpoints      {} completed (mean {:.0} ms; longest alignment {} ms; last: #{} {} bytes written, {} bytes in all)\n",
            summary.checkpoints.completed(),
            summary.checkpoints.mean_duration_ms().unwrap_or(0.0),
            summary.checkpoints.max_alignment_ms(),
            last.id,
            last.size_bytes,
            last.full_size_bytes
        ));
    }
    if summary.restarts > 0 {
        text.push_str(&format!("  restarts         {}\n", summary.restarts));
    }
    if summary.late_records_dropped > 0 {
        text.push_str(&format!(
            "  late, dropped    {} (set `late_output` on a window to keep them)\n",
            summary.late_records_dropped
        ));
    }
    if !summary.problems.is_empty() {
        text.push_str("  problems (first ones):\n");
        for p in &summary.problems {
            text.push_str(&format!("    - {p}\n"));
        }
    }
    text
}
