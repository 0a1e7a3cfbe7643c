//! The `weir` binary as a user runs it: a job end to end, and one test per
//! clear-error case, each asserting the message says what is wrong and where.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn udf(name: &str) -> PathBuf {
    weir_cli::udf::build_rust_udf(&repo_root().join("udfs").join(name)).expect("UDF builds")
}

fn weir(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("weir runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failed run: exit code 1, one `error:` line, no panic, no backtrace.
fn expect_error(out: &Output) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains("error: "), "{err}");
    assert!(
        !err.contains("thread 'main' panicked") && !err.contains("stack backtrace"),
        "{err}"
    );
    err
}

/// Two small series as CSV under `dir/data`.
fn write_data(dir: &Path) {
    std::fs::create_dir_all(dir.join("data/group")).unwrap();
    let mut a = String::from("timestamp,value\n");
    for i in 0..40 {
        a.push_str(&format!(
            "2020-01-01 00:{:02}:00,{}\n",
            i,
            if i == 35 { 1000 } else { i % 3 }
        ));
    }
    std::fs::write(dir.join("data/group/a.csv"), a).unwrap();
    std::fs::write(
        dir.join("data/b.csv"),
        "timestamp,value\n2020-01-01 00:00:00,7\n2020-01-01 00:00:01,8\n",
    )
    .unwrap();
}

/// A directory holding `write_data`'s series and a `job.yaml` that runs
/// the UDF crate `udfs/<name>` over them (`map_job`).
fn map_job_dir(name: &str, config: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    std::fs::write(
        dir.path().join("job.yaml"),
        map_job(&udf(name), config, extra),
    )
    .unwrap();
    dir
}

fn map_job(udf: &Path, config: &str, extra: &str) -> String {
    format!(
        "name: t\nsources:\n  - id: in\n    type: file\n    path: data\n    glob: \"**/*.csv\"\n    format: csv\n    key: {{ from: path }}\noperators:\n  - id: step\n    input: in\n    udf: {}\n    config: {config}\n{extra}sinks:\n  - id: out\n    input: step\n    type: file\n    path: out\n",
        udf.display()
    )
}

#[test]
fn runs_the_nab_zscore_job_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let job = format!(
        "name: e2e\nsources:\n  - id: in\n    type: file\n    path: data\n    glob: \"**/*.csv\"\n    format: csv\n    key: {{ from: path }}\n    timestamp: {{ field: timestamp, format: \"%Y-%m-%d %H:%M:%S\" }}\noperators:\n  - id: z\n    input: in\n    partition: key_by\n    udf: {}\n    config: {{ warmup: 30 }}\nsinks:\n  - id: alerts\n    input: z\n    type: file\n    path: out/alerts\n",
        repo_root().join("udfs/nab-zscore").display()
    );
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let out = weir(dir.path(), &["run", "job.yaml", "--parallelism", "2"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("records read     42"), "{err}");
    assert!(err.contains("records written  1"), "{err}");
    assert!(err.contains("record errors    0"), "{err}");
    assert!(err.contains("records/s"), "{err}");
    let mut lines = Vec::new();
    for part in ["part-0.jsonl", "part-1.jsonl"] {
        let text = std::fs::read_to_string(dir.path().join("out/alerts").join(part)).unwrap();
        lines.extend(text.lines().map(str::to_string));
    }
    assert_eq!(lines.len(), 1);
    let alert: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(alert["series"], "group/a");
    assert_eq!(alert["timestamp"], "2020-01-01 00:35:00");
    assert_eq!(alert["value"], 1000.0);
}

#[test]
fn missing_job_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let err = expect_error(&weir(dir.path(), &["run", "nope.yaml"]));
    assert!(err.contains("cannot read job file nope.yaml"), "{err}");
}

#[test]
fn invalid_job_file_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let job = map_job(Path::new("x.wasm"), "{}", "").replace("    input: in\n", "    inptu: in\n");
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(err.contains("invalid job file job.yaml, line 11"), "{err}");
    assert!(
        err.contains("operators[0]") && err.contains("inptu"),
        "{err}"
    );
}

#[test]
fn missing_wasm_names_the_field_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.yaml"),
        map_job(Path::new("missing.wasm"), "{}", ""),
    )
    .unwrap();
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(err.contains("job.yaml, line 12: operators[0].udf"), "{err}");
    assert!(err.contains("missing.wasm does not exist"), "{err}");
}

#[test]
fn garbage_wasm_is_not_a_component() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    std::fs::write(dir.path().join("bad.wasm"), b"this is not wasm at all").unwrap();
    std::fs::write(
        dir.path().join("job.yaml"),
        map_job(Path::new("bad.wasm"), "{}", ""),
    )
    .unwrap();
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(
        err.contains("operator `step`") && err.contains("bad.wasm is not a WebAssembly component"),
        "{err}"
    );
}

#[test]
fn core_module_is_told_apart_from_a_component() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    std::fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(
        dir.path().join("job.yaml"),
        map_job(Path::new("core.wasm"), "{}", ""),
    )
    .unwrap();
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(err.contains("it is a core WebAssembly module"), "{err}");
}

#[test]
fn component_of_another_world_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    std::fs::write(
        dir.path().join("job.yaml"),
        map_job(&udf("not-an-operator"), "{}", ""),
    )
    .unwrap();
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(
        err.contains("does not implement the weir:operator/operator world"),
        "{err}"
    );
    assert!(
        err.contains("no exported instance named `weir:operator/handler@0.4.0`"),
        "names what is missing: {err}"
    );
    assert_eq!(
        err.matches("does not implement").count(),
        1,
        "said once: {err}"
    );
}

#[test]
fn udf_trap_names_operator_file_and_record() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    std::fs::write(
        dir.path().join("job.yaml"),
        map_job(&udf("trap-on-value"), "{ trap_value: 8 }", ""),
    )
    .unwrap();
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(err.contains("step (subtask 0 of 1) failed on "), "{err}");
    assert!(err.contains("data/b.csv:3"), "names file and line: {err}");
    assert!(
        err.contains("the UDF trapped") && err.contains("trap-on-value: hit value 8"),
        "{err}"
    );
}

#[test]
fn memory_limit_hit_is_reported() {
    let dir = map_job_dir(
        "trap-on-value",
        "{ trap_value: 1000, allocate_mib: 256 }",
        "    memory_mib: 32\n",
    );
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(err.contains("step (subtask 0 of 1) failed"), "{err}");
    assert!(err.contains("data/group/a.csv"), "{err}");
    assert!(
        err.contains("exceeded its memory limit") && err.contains("32 MiB"),
        "{err}"
    );
}

#[test]
fn call_timeout_is_reported() {
    let dir = map_job_dir(
        "trap-on-value",
        "{ trap_value: 7, spin: true }",
        "    call_timeout_ms: 300\n",
    );
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(
        err.contains("exceeded its call timeout") && err.contains("300 ms"),
        "{err}"
    );
    assert!(err.contains("data/b.csv"), "{err}");
}

#[test]
fn unreadable_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("job.yaml"),
        map_job(&udf("identity"), "{}", ""),
    )
    .unwrap();
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(err.contains("in: cannot read data"), "{err}");
}

#[test]
fn per_record_errors_with_on_error_drop_are_counted_and_located_without_failing() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    std::fs::write(
        dir.path().join("job.yaml"),
        map_job(
            &udf("trap-on-value"),
            "{ error_value: 7 }",
            "    on_error: drop\n",
        ),
    )
    .unwrap();
    let out = weir(dir.path(), &["run", "job.yaml"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("records written  41") && err.contains("record errors    1"),
        "{err}"
    );
    assert!(
        err.contains("data/b.csv:2") && err.contains("refusing value 7"),
        "{err}"
    );
}

#[test]
fn udf_build_prints_the_component_path() {
    let dir = tempfile::tempdir().unwrap();
    let crate_dir = repo_root().join("udfs/identity");
    let out = weir(
        dir.path(),
        &[
            "udf",
            "build",
            crate_dir.to_str().unwrap(),
            "-o",
            "identity.wasm",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(dir.path().join("identity.wasm")).unwrap();
    assert_eq!(&bytes[..4], b"\0asm");
    assert_eq!(
        &bytes[4..8],
        &[0x0d, 0, 1, 0],
        "a component, not a core module"
    );
}

#[test]
fn stdout_sink_prints_json_lines_and_keeps_the_summary_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let job = "name: s\nsources:\n  - {id: in, type: file, path: data/b.csv, format: csv}\nsinks:\n  - {id: out, input: in, type: stdout}\n";
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let out = weir(dir.path(), &["run", "job.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        stdout,
        "{\"timestamp\":\"2020-01-01 00:00:00\",\"value\":7}\n{\"timestamp\":\"2020-01-01 00:00:01\",\"value\":8}\n"
    );
    assert!(stderr(&out).contains("records written  2"));
}

#[test]
fn rebalance_and_fan_out_deliver_every_record_once() {
    let dir = tempfile::tempdir().unwrap();
    let job = format!(
        "name: r\nsources:\n  - {{id: gen, type: datagen, count: 5000, record_bytes: 40}}\noperators:\n  - {{id: id, input: gen, partition: rebalance, parallelism: 2, udf: {}}}\nsinks:\n  - {{id: a, input: id, type: file, path: out/a, parallelism: 3, partition: rebalance}}\n  - {{id: b, input: id, type: file, path: out/b}}\n",
        udf("identity").display()
    );
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let out = weir(
        dir.path(),
        &["run", "job.yaml", "--batch-size-hint-is-not-a-flag"],
    );
    assert_eq!(out.status.code(), Some(2), "clap rejects unknown flags");
    let out = weir(dir.path(), &["run", "job.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("records written  10000"),
        "{}",
        stderr(&out)
    );
    for (sink, parts) in [("a", 3), ("b", 2)] {
        let mut seqs = Vec::new();
        for part in 0..parts {
            let text =
                std::fs::read_to_string(dir.path().join(format!("out/{sink}/part-{part}.jsonl")))
                    .unwrap();
            for line in text.lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                seqs.push(v["seq"].as_u64().unwrap());
            }
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (0..5000).collect::<Vec<_>>(), "sink {sink}");
    }
}

/// `rows` CSV rows of `timestamp,value` under `dir/data/many.csv`.
fn write_rows(dir: &Path, rows: usize) {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut text = String::from("timestamp,value\n");
    for i in 0..rows {
        text.push_str(&format!("2020-01-01 00:00:00,{}\n", i % 7));
    }
    std::fs::write(dir.join("data/many.csv"), text).unwrap();
}

/// Committed output lines under `dir/out`.
fn output_lines(dir: &Path) -> usize {
    output_records(dir).len()
}

#[test]
fn a_line_to_stderr_per_record_does_not_fail_the_job() {
    // Regression: guest stderr was a 256 KiB pipe for the life of an
    // instance; one `eprintln!` per record failed the job after ~2.6k
    // records with a message that hid the cause.
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), 20_000);
    let job = map_job(&udf("trap-on-value"), "{ eprint_lines: 1 }", "");
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let out = weir(dir.path(), &["run", "--no-progress", "job.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(output_lines(dir.path()), 20_000);
}

#[test]
fn guest_log_floods_are_rate_limited_and_cannot_forge_lines() {
    let dir = tempfile::tempdir().unwrap();
    write_rows(dir.path(), 200);
    // 200 records × 500 warnings each: 100k lines asked for.
    let job = map_job(
        &udf("trap-on-value"),
        "{ log_lines: 500 }",
        "    log_lines_per_second: 50\n",
    );
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let out = weir(dir.path(), &["run", "--no-progress", "job.yaml"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(output_lines(dir.path()), 200);
    let logged = err.matches("trap-on-value: value").count();
    assert!(
        (1..=200).contains(&logged),
        "{logged} guest lines reached the log (limit 50 per second)"
    );
    // The guest's newline is escaped: no host log line starts with its text.
    assert!(!err.lines().any(|l| l.starts_with("forged line")), "{err}");
    assert!(err.contains("\\nforged line"), "{err}");
}

#[test]
fn a_panic_message_cannot_drive_the_terminal() {
    let dir = map_job_dir(
        "trap-on-value",
        "{ trap_value: 8, panic_message: \"boom\\e[2J\\e[31mred\" }",
        "",
    );
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("boom\\u{1b}[2J\\u{1b}[31mred"), "{err}");
}

#[test]
fn log_lines_per_second_is_checked_when_the_job_is_read() {
    let dir = map_job_dir("identity", "{}", "    log_lines_per_second: 1000000\n");
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(
        err.contains("operators[0].log_lines_per_second") && err.contains("100000"),
        "{err}"
    );
}

#[test]
fn a_record_that_fails_every_attempt_fails_the_job_after_three_identical_failures() {
    // Regression: with checkpointing on (exponential-delay, unlimited
    // attempts) a UDF that traps on one record restarted without end.
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    std::fs::write(
        dir.path().join("job.yaml"),
        map_job(&udf("trap-on-value"), "{ trap_value: 8 }", ""),
    )
    .unwrap();
    let out = weir(
        dir.path(),
        &[
            "run",
            "--no-progress",
            "job.yaml",
            "-Dexecution.checkpointing.interval=100ms",
            "-Drestart-strategy.exponential-delay.initial-backoff=10ms",
            "-Drestart-strategy.exponential-delay.max-backoff=20ms",
        ],
    );
    let err = expect_error(&out);
    assert!(
        err.contains("failed the same way 3 times in a row"),
        "{err}"
    );
    assert_eq!(err.matches("restarting in").count(), 2, "{err}");
    assert!(
        err.contains("data/b.csv:3") && err.contains("trap-on-value: hit value 8"),
        "names the record: {err}"
    );
}

/// Every committed output record under `dir/out`, sorted.
fn output_records(dir: &Path) -> Vec<serde_json::Value> {
    let mut records = Vec::new();
    for entry in std::fs::read_dir(dir.join("out")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && !path.file_name().unwrap().to_string_lossy().starts_with('.') {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                records.push(serde_json::from_str(line).unwrap());
            }
        }
    }
    records.sort_by_key(|r: &serde_json::Value| r.to_string());
    records
}

#[test]
fn a_long_sleep_without_a_clock_grant_is_virtual_and_the_run_is_deterministic() {
    // Regression: `std::thread::sleep(300 s)` with `call_timeout_ms: 2000`
    // was never stopped (the deadline did not hold inside the host call),
    // and clocks and randomness differed between runs.
    let mut runs = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        write_data(dir.path());
        let job = map_job(
            &udf("trap-on-value"),
            "{ sleep_ms: 300000, stamp: true }",
            "    call_timeout_ms: 2000\n",
        );
        std::fs::write(dir.path().join("job.yaml"), job).unwrap();
        let started = std::time::Instant::now();
        let out = weir(dir.path(), &["run", "--no-progress", "job.yaml"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(started.elapsed() < std::time::Duration::from_secs(60));
        runs.push(output_records(dir.path()));
    }
    assert_eq!(runs[0].len(), 42);
    assert_eq!(runs[0], runs[1], "two runs give the same records");
    // The virtual clocks moved by exactly the sleeps: 2000-01-01 plus 300 s
    // per record of the subtask so far.
    let wall = runs[0][0]["wall_ms"].as_u64().unwrap();
    assert_eq!((wall - 946_684_800_000) % 300_000, 0, "{wall}");
    assert_eq!(runs[0][0]["elapsed_ms"].as_u64().unwrap() % 300_000, 0);
}

#[test]
fn granted_clocks_are_real_and_a_sleep_past_the_deadline_is_refused() {
    let dir = map_job_dir(
        "trap-on-value",
        "{ stamp: true }",
        "    grants: [wall-clock, random]\n",
    );
    let out = weir(dir.path(), &["run", "--no-progress", "job.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let records = output_records(dir.path());
    let wall = records[0]["wall_ms"].as_u64().unwrap();
    assert!(now_ms.abs_diff(wall) < 600_000, "{wall} vs {now_ms}");

    let job = map_job(
        &udf("trap-on-value"),
        "{ sleep_ms: 300000 }",
        "    call_timeout_ms: 2000\n    grants: [wall-clock]\n",
    );
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let started = std::time::Instant::now();
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
    assert!(
        err.contains("a blocking sleep of 300000 ms is longer than the call deadline"),
        "{err}"
    );
    assert!(err.contains("step (subtask 0 of 1)"), "{err}");
}

#[test]
fn an_unknown_grant_is_refused_with_its_line() {
    let dir = map_job_dir("identity", "{}", "    grants: [network]\n");
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(
        err.contains("network") && err.contains("wall-clock") && err.contains("line"),
        "{err}"
    );
}

#[test]
fn a_killed_weir_run_leaves_no_cargo_behind() {
    // Regression: SIGKILL of `weir run` while it built a Rust UDF left the
    // `cargo` child running and holding the build lock.
    let dir = tempfile::tempdir().unwrap();
    write_data(dir.path());
    let crate_dir = dir.path().join("slow-udf");
    std::fs::create_dir_all(&crate_dir).unwrap();
    std::fs::write(crate_dir.join("Cargo.toml"), "[package]\nname = \"slow\"\n").unwrap();
    // A stand-in for cargo that records its pid and builds for 60 s.
    let pid_file = dir.path().join("cargo.pid");
    let fake_cargo = dir.path().join("fake-cargo");
    std::fs::write(
        &fake_cargo,
        format!(
            "#!/bin/sh\necho $$ > {}\nexec sleep 60\n",
            pid_file.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake_cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.path().join("job.yaml"), map_job(&crate_dir, "{}", "")).unwrap();
    let mut weir_run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "--no-progress", "job.yaml"])
        .current_dir(dir.path())
        .env("CARGO", &fake_cargo)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let cargo_pid = loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<u32>().ok())
        {
            break pid;
        }
        assert!(std::time::Instant::now() < deadline, "cargo never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    weir_run.kill().unwrap(); // SIGKILL
    weir_run.wait().unwrap();
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while alive(cargo_pid) {
        if std::time::Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-9", &cargo_pid.to_string()])
                .status();
            panic!("cargo (pid {cargo_pid}) outlived the killed weir run");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_state_value_over_its_limit_fails_the_task_naming_operator_limit_and_value() {
    // Regression: 100 MB state values took the host to 2 GB. (The value
    // is a JSON string: 2,000,000 characters and two quotes.)
    let dir = map_job_dir(
        "keyed-blob",
        "{ value_bytes: 2000000 }",
        "    partition: key_by\n    max_state_value_bytes: 1000000\n",
    );
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(err.contains("step (subtask 0 of 1)"), "{err}");
    assert!(
        err.contains("state limit `max_state_value_bytes` of 1000000 exceeded: 2000002"),
        "{err}"
    );
}

#[test]
fn a_second_signal_ends_a_stop_that_cannot_finish() {
    // Regression: with checkpointing on, a task stuck in a guest call kept
    // SIGTERM's stop with savepoint from finishing, and SIGTERM and SIGINT
    // no longer ended the process (only SIGKILL did).
    let dir = map_job_dir(
        "trap-on-value",
        "{ trap_value: 8, spin: true }",
        "    call_timeout_ms: 600000\n",
    );
    let weir_run = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args([
            "run",
            "--no-progress",
            "job.yaml",
            "-Dexecution.checkpointing.interval=100ms",
        ])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = weir_run.id().to_string();
    // Let it reach the spinning record.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let signal = |name: &str| {
        Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .unwrap();
    };
    signal("TERM");
    std::thread::sleep(std::time::Duration::from_millis(500));
    signal("TERM");
    let started = std::time::Instant::now();
    let out = weir_run.wait_with_output().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(128 + 15), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("a second signal ends the process at once"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_flood_of_outputs_from_one_call_fails_the_task_naming_the_limit() {
    // Regression: a million tiny outputs from one call took the host to
    // 280 MB whatever the guest's memory cap.
    let dir = map_job_dir(
        "poison-outputs",
        "{ per_record: 1000 }",
        "    max_outputs_per_call: 5000\n",
    );
    let err = expect_error(&weir(dir.path(), &["run", "job.yaml"]));
    assert!(err.contains("step (subtask 0 of 1)"), "{err}");
    assert!(
        err.contains("more than 5000 outputs from one call (max_outputs_per_call)"),
        "{err}"
    );
    // Under the limit the same UDF runs: 42 records × 100 outputs.
    let job = map_job(
        &udf("poison-outputs"),
        "{ per_record: 100 }",
        "    max_outputs_per_call: 5000\n",
    );
    std::fs::write(dir.path().join("job.yaml"), job).unwrap();
    let out = weir(dir.path(), &["run", "--no-progress", "job.yaml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(output_lines(dir.path()), 4200);
}

#[test]
fn a_rejected_record_fails_the_job_by_default_and_is_dead_lettered_when_asked() {
    // Default for operators: fail, naming the record and the UDF's reason.
    let dir = map_job_dir("trap-on-value", "{ error_value: 7 }", "");
    let out = weir(dir.path(), &["run", "job.yaml"]);
    let err = expect_error(&out);
    assert!(
        err.contains("step") && err.contains("data/b.csv:2") && err.contains("refusing value 7"),
        "{err}"
    );
    // dead-letter: the job goes on; the record, its origin and the reason
    // are in the operator's dead-letter directory.
    let dir = map_job_dir(
        "trap-on-value",
        "{ error_value: 7 }",
        "    on_error: dead-letter\n    dead_letter_path: dl\n",
    );
    let out = weir(dir.path(), &["run", "job.yaml"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("record errors    1") && err.contains("dead-lettered    1"),
        "{err}"
    );
    let text = std::fs::read_to_string(dir.path().join("dl/part-0.jsonl")).unwrap();
    let letters: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1, "{text}");
    assert_eq!(letters[0]["vertex"], "step");
    assert!(
        letters[0]["origin"]
            .as_str()
            .unwrap()
            .ends_with("data/b.csv:2")
    );
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap()
            .contains("refusing value 7")
    );
    let record: serde_json::Value =
        serde_json::from_str(letters[0]["record"].as_str().unwrap()).unwrap();
    assert_eq!(record["value"], 7);
}

/// Every dead letter under `dir`, as JSON.
fn dead_letters(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        // Committed files only (not `.inprogress` or `.pending` ones).
        if !entry.file_name().to_string_lossy().starts_with("part-") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        out.extend(text.lines().map(|l| serde_json::from_str(l).unwrap()));
    }
    out
}

#[test]
fn a_corrupted_nab_copy_gives_the_clean_alerts_and_dead_letters_exactly_the_corrupted_rows() {
    let dir = tempfile::tempdir().unwrap();
    let nab = repo_root().join("../shared/data/nab/data/realKnownCause");
    let (clean, corrupt) = (dir.path().join("clean"), dir.path().join("corrupt"));
    std::fs::create_dir_all(&clean).unwrap();
    std::fs::create_dir_all(&corrupt).unwrap();
    // (file, line it takes in the corrupted copy, bytes, who rejects it)
    let bad: Vec<(&str, u64, Vec<u8>, &str)> = vec![
        ("nyc_taxi.csv", 10, b"2014-07-01 04:".to_vec(), "readings"),
        (
            "nyc_taxi.csv",
            20,
            b"2014-07-01 09:10:00,12.5.3".to_vec(),
            "zscore",
        ),
        (
            "nyc_taxi.csv",
            30,
            b"2014-07-01 14:10:00,\xff\xfe7".to_vec(),
            "readings",
        ),
        (
            "nyc_taxi.csv",
            40,
            b"2014-07-01 19:10:00,1.0,extra".to_vec(),
            "readings",
        ),
        (
            "rogue_agent_key_hold.csv",
            5,
            b"not a time,3.0".to_vec(),
            "readings",
        ),
        (
            "rogue_agent_key_hold.csv",
            50,
            b"2014-07-07 01:00:00,\"7".to_vec(),
            "readings",
        ),
    ];
    for entry in std::fs::read_dir(&nab).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let bytes = std::fs::read(entry.path()).unwrap();
        std::fs::write(clean.join(&name), &bytes).unwrap();
        let mut lines: Vec<Vec<u8>> = bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        for (_, line, text, _) in bad.iter().filter(|(f, ..)| *f == name) {
            lines.insert(*line as usize - 1, text.clone());
        }
        let mut text = lines.join(&b'\n');
        text.push(b'\n');
        std::fs::write(corrupt.join(&name), text).unwrap();
    }
    let job = |data: &Path, out: &str| {
        format!(
            "name: nab\nsources:\n  - id: readings\n    type: file\n    path: {}\n    format: csv\n    key: {{ from: path }}\n    timestamp: {{ field: timestamp, format: \"%Y-%m-%d %H:%M:%S\" }}\n    dead_letter_path: {out}-dl/readings\noperators:\n  - id: zscore\n    input: readings\n    partition: key_by\n    udf: {}\n    config: {{ warmup: 30, threshold: 3.0 }}\n    on_error: dead-letter\n    dead_letter_path: {out}-dl/zscore\nsinks:\n  - {{ id: alerts, input: zscore, type: file, path: {out} }}\n",
            data.display(),
            repo_root().join("udfs/nab-zscore").display()
        )
    };
    let alerts = |out: &str| support::committed(&dir.path().join(out));
    for (data, out) in [(&clean, "clean-out"), (&corrupt, "corrupt-out")] {
        let file = dir.path().join(format!("{out}.yaml"));
        std::fs::write(&file, job(data, out)).unwrap();
        let run = weir(
            dir.path(),
            &[
                "run",
                file.to_str().unwrap(),
                "-p",
                "2",
                "-Dexecution.checkpointing.interval=200ms",
            ],
        );
        assert!(run.status.success(), "{}", stderr(&run));
    }
    let clean_alerts = alerts("clean-out");
    assert!(clean_alerts.len() > 20, "{} alerts", clean_alerts.len());
    assert_eq!(alerts("corrupt-out"), clean_alerts);
    assert!(dead_letters(&dir.path().join("clean-out-dl/readings")).is_empty());

    let mut got: Vec<(String, String, Vec<u8>)> = Vec::new();
    for vertex in ["readings", "zscore"] {
        for letter in dead_letters(&dir.path().join("corrupt-out-dl").join(vertex)) {
            assert_eq!(letter["vertex"], vertex);
            assert!(!letter["error"].as_str().unwrap().is_empty());
            let origin = letter["origin"].as_str().unwrap();
            let origin = origin.rsplit('/').next().unwrap().to_string();
            let bytes = match letter["record"].as_str() {
                Some(text) => text.as_bytes().to_vec(),
                None => {
                    let hex = letter["record_hex"].as_str().unwrap();
                    (0..hex.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                        .collect()
                }
            };
            got.push((vertex.to_string(), origin, bytes));
        }
    }
    // The operator's dead letter keeps the record as it reached the UDF.
    for letter in got.iter_mut().filter(|(v, ..)| v == "zscore") {
        let record: serde_json::Value = serde_json::from_slice(&letter.2).unwrap();
        letter.2 = format!(
            "{},{}",
            record["timestamp"].as_str().unwrap(),
            record["value"].as_str().unwrap()
        )
        .into_bytes();
    }
    got.sort();
    let mut want: Vec<(String, String, Vec<u8>)> = bad
        .iter()
        .map(|(file, line, text, vertex)| {
            (vertex.to_string(), format!("{file}:{line}"), text.clone())
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
}

/// Regression: one 50 MB CSV line through an identity UDF failed the whole
/// job with the memory-limit error; now that record alone is rejected.
#[test]
fn a_record_too_large_for_the_udf_is_rejected_alone() {
    let big = format!("2020-01-01 00:00:02,{}\n", "x".repeat(50 << 20));
    let dir = map_job_dir(
        "identity",
        "{}",
        "    on_error: dead-letter\n    dead_letter_path: dl\n",
    );
    let mut b = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("data/b.csv"))
        .unwrap();
    std::io::Write::write_all(&mut b, big.as_bytes()).unwrap();
    drop(b);
    let out = weir(dir.path(), &["run", "job.yaml"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("records written  42") && err.contains("dead-lettered    1"),
        "{err}"
    );
    let letters = dead_letters(&dir.path().join("dl"));
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0]["origin"]
            .as_str()
            .unwrap()
            .ends_with("data/b.csv:4")
    );
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap()
            .contains("more than a quarter of the UDF's memory cap (64 MiB)"),
        "{}",
        letters[0]
    );
    assert_eq!(letters[0]["truncated"], true);
    assert_eq!(letters[0]["record"].as_str().unwrap().len(), 1 << 20);
}
