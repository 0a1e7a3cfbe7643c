//! Process crashes: `weir run` is killed with SIGKILL at random moments
//! (several seeds, several kills per run) and resumed each time with
//! `--from-checkpoint latest`, at a different parallelism each time
//! (1 → 2 → 3 → 1, so state is redistributed by key group); the final
//! committed output equals the fault-free run's, record for record.
//!
//! The jobs read NAB (58 real series) paced to a few seconds per run, so
//! kills land while checkpoints are taken, aligned and committed.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn nab() -> PathBuf {
    let shared = repo_root().join("../shared/data/nab/data");
    assert!(
        shared.is_dir(),
        "NAB data not found at {}",
        shared.display()
    );
    shared
}

/// Hourly stats per series (window state, timers, watermarks) and the
/// z-score UDF (keyed state in RocksDB), reading NAB at `rate` records/s.
fn job(out: &Path, rate: u64) -> String {
    job_with(out, rate, "")
}

/// [`job`] with `extra` added to the z-score UDF's config.
fn job_with(out: &Path, rate: u64, extra: &str) -> String {
    let zscore = weir_cli::udf::build_rust_udf(&repo_root().join("udfs/nab-zscore")).unwrap();
    format!(
        r#"
name: crash-recovery
sources:
  - id: readings
    type: file
    path: {data}
    glob: "**/*.csv"
    format: csv
    key: {{ from: path }}
    timestamp: {{ field: timestamp, format: "%Y-%m-%d %H:%M:%S" }}
    watermarks: {{ max_out_of_orderness: 1h }}
    records_per_second: {rate}
operators:
  - id: hourly
    input: readings
    partition: key_by
    window: {{ type: tumbling, size: 1h, key_field: series }}
    aggregate:
      - {{ fn: count }}
      - {{ fn: max, field: value }}
  - id: zscore
    input: readings
    partition: key_by
    udf: {zscore}
    config: {{ warmup: 30, threshold: 3.0{extra} }}
sinks:
  - id: hourly-out
    input: hourly
    type: file
    path: {out}/hourly
  - id: alerts-out
    input: zscore
    type: file
    path: {out}/alerts
"#,
        data = nab().display(),
        zscore = zscore.display(),
        out = out.display(),
    )
}

/// Every committed line under `dir` (all `part-*` files), sorted.
fn committed(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("part-") {
            let text = std::fs::read_to_string(&path).unwrap();
            lines.extend(text.lines().map(str::to_string));
        }
    }
    lines.sort();
    lines
}

fn weir(job: &Path, args: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .arg("run")
        .arg(job)
        .arg("--no-progress")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// xorshift64*: a seeded sequence of kill times, no dependency needed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn has_completed_checkpoint(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir.join("crash-recovery")) else {
        return false;
    };
    entries
        .filter_map(Result::ok)
        .any(|e| e.path().join("_metadata").is_file())
}

/// Runs the job, killing it `kills` times at random moments, each resume at
/// the next parallelism of `parallelisms`; returns the number of resumes
/// that started from a checkpoint.
fn run_with_kills(
    dir: &Path,
    seed: u64,
    kills: usize,
    parallelisms: &[u32],
    extra_config: &str,
) -> usize {
    let out = dir.join("out");
    let checkpoints = dir.join("checkpoints");
    let job_file = dir.join("job.yaml");
    std::fs::write(&job_file, job_with(&out, 150_000, extra_config)).unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut resumed = 0;
    for attempt in 0..=kills {
        let mut args = vec![
            "-Dexecution.checkpointing.interval=100ms".to_string(),
            format!("-Dstate.checkpoints.dir={}", checkpoints.display()),
            "-p".into(),
            parallelisms[attempt % parallelisms.len()].to_string(),
        ];
        if attempt > 0 && has_completed_checkpoint(&checkpoints) {
            args.extend(["--from-checkpoint".into(), "latest".into()]);
            resumed += 1;
        }
        let mut child = weir(&job_file, &args).spawn().unwrap();
        if attempt < kills {
            let kill_at = Duration::from_millis(300 + rng.below(1500));
            let started = Instant::now();
            while started.elapsed() < kill_at {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        } else {
            let output = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "final run failed: {stderr}");
        }
    }
    resumed
}

fn fault_free(dir: &Path) -> (Vec<String>, Vec<String>) {
    let out = dir.join("out");
    let job_file = dir.join("job.yaml");
    std::fs::write(&job_file, job(&out, 10_000_000)).unwrap();
    let output = weir(&job_file, &["-p".into(), "2".into()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        committed(&out.join("hourly")),
        committed(&out.join("alerts")),
    )
}

#[test]
fn sigkill_and_resume_from_latest_checkpoint_gives_the_fault_free_output() {
    let reference = tempfile::tempdir().unwrap();
    let (hourly, alerts) = fault_free(reference.path());
    assert!(hourly.len() > 10_000 && alerts.len() > 1_000);
    let mut resumed = 0;
    for seed in 1..=3 {
        let dir = tempfile::tempdir().unwrap();
        // The third run with a guest state cache (`weir_guest::state_cache`)
        // of 2 KiB, far smaller than the state: written back and emptied
        // after nearly every record.
        let cache = if seed == 3 {
            ", state_cache_bytes: 2048"
        } else {
            ""
        };
        resumed += run_with_kills(dir.path(), seed, 3, &[1, 2, 3, 1], cache);
        let out = dir.path().join("out");
        let got_hourly = committed(&out.join("hourly"));
        let got_alerts = committed(&out.join("alerts"));
        assert_eq!(
            got_hourly.len(),
            hourly.len(),
            "seed {seed}: hourly records"
        );
        assert!(got_hourly == hourly, "seed {seed}: hourly output differs");
        assert_eq!(got_alerts.len(), alerts.len(), "seed {seed}: alerts");
        assert!(got_alerts == alerts, "seed {seed}: alerts differ");
    }
    // Most resumes start from a checkpoint (a kill before the first one
    // completed starts over, which is also exactly-once).
    assert!(resumed >= 5, "only {resumed} of 9 resumes had a checkpoint");
}

#[test]
fn sigterm_stops_with_a_savepoint_that_resumes_at_another_parallelism() {
    let reference = tempfile::tempdir().unwrap();
    let (hourly, alerts) = fault_free(reference.path());
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let job_file = dir.path().join("job.yaml");
    std::fs::write(&job_file, job(&out, 150_000)).unwrap();
    let savepoints = dir.path().join("savepoints");
    let settings = |p: &str| {
        vec![
            "-Dexecution.checkpointing.interval=1h".to_string(),
            format!(
                "-Dstate.checkpoints.dir={}",
                dir.path().join("ck").display()
            ),
            format!("-Dstate.savepoints.dir={}", savepoints.display()),
            "-p".into(),
            p.into(),
        ]
    };
    let child = weir(&job_file, &settings("1")).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let savepoint = stderr
        .split("--from-savepoint ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no savepoint printed: {stderr}"))
        .trim()
        .to_string();
    assert!(
        Path::new(&savepoint).join("_metadata").is_file(),
        "{savepoint}"
    );
    assert!(committed(&out.join("hourly")).len() < hourly.len());

    let mut args = settings("3");
    args.extend(["--from-savepoint".into(), savepoint]);
    let output = weir(&job_file, &args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        committed(&out.join("hourly")) == hourly,
        "hourly output differs"
    );
    assert!(committed(&out.join("alerts")) == alerts, "alerts differ");
    // The final checkpoint aligned three subtasks' barriers at each keyed
    // operator; the summary reports it.
    let summary = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("checkpoints "))
        .unwrap_or_else(|| panic!("no checkpoint summary: {stderr}"));
    assert!(
        summary.contains(" completed (mean ") && summary.contains(" ms; longest alignment "),
        "{summary}"
    );
}
