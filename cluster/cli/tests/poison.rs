//! The hostile-UDF suite (issue 22, `docs/security.md`): every case of
//! `udfs/poison` (one hostile thing, in one call) and the hostile
//! components of their own run as jobs on one `weir jobmanager`, each with
//! a healthy job beside it in the same process. For each case: the job
//! ends as the table says (failed with the operator and the cause named,
//! or finished with what the sandbox let it see), the JobManager stays up
//! with its resident memory under [`RSS_BOUND_MIB`], and the healthy job's
//! committed output equals its run alone, record for record.

#![allow(clippy::unwrap_used)]

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::{JobManager, committed, curl, get, submit, udf, upload, wait_for, weir};

/// The JobManager's resident memory stays under this through the suite
/// (each hostile job gets a 64 MiB guest memory cap, a few 512 MiB).
const RSS_BOUND_MIB: u64 = 768;

/// How a case must end.
enum Expect {
    /// Fails, the first failure's message naming the operator and
    /// containing each of these (case-insensitive).
    Fails(&'static [&'static str]),
    /// Finishes; every output record's `got` field contains this.
    Finishes(&'static str),
    /// Finishes, with the bad results counted as record errors (and no
    /// output for them).
    FinishesCounting,
}

struct Case {
    /// The component (a `udfs/` crate).
    udf: &'static str,
    config: &'static str,
    /// Extra operator fields.
    extra: &'static str,
    /// Checkpoint every 100 ms (for the snapshot cases).
    checkpoints: bool,
    /// The sink fails the first attempt after 350 records and the job
    /// restarts once from its latest checkpoint (for the restore case).
    restarts: bool,
    /// `call_timeout_ms`.
    timeout_ms: u32,
    expect: Expect,
}

const fn poison(config: &'static str, expect: Expect) -> Case {
    Case {
        udf: "poison",
        config,
        extra: "",
        checkpoints: false,
        restarts: false,
        timeout_ms: 1000,
        expect,
    }
}

/// A case of the hostile window aggregate (`udfs/poison-aggregate`) in a
/// built-in session window (sessions of a key merge as its records come).
const fn aggregate(config: &'static str, expect: Expect) -> Case {
    Case {
        udf: "poison-aggregate",
        extra: "    window: { type: session, gap: 15s, key_field: key }\n    aggregate: [{ fn: count }]\n",
        ..poison(config, expect)
    }
}

/// A case with extra operator fields and a call deadline of its own.
const fn poison_with(
    config: &'static str,
    extra: &'static str,
    timeout_ms: u32,
    expect: Expect,
) -> Case {
    Case {
        extra,
        timeout_ms,
        ..poison(config, expect)
    }
}

fn cases() -> Vec<Case> {
    use Expect::{Fails, Finishes};
    let mut all = vec![
        poison(r#"{case: loop}"#, Fails(&["timeout", "1000 ms"])),
        poison(r#"{case: loop, at: open}"#, Fails(&["timeout"])),
        poison(r#"{case: loop, at: on-timer}"#, Fails(&["timeout"])),
        poison(r#"{case: loop, at: close}"#, Fails(&["timeout"])),
        // The shadow stack lives in linear memory: overflowing it is an
        // out-of-bounds access.
        poison(r#"{case: recursion}"#, Fails(&["trapped", "out of bounds"])),
        poison(r#"{case: grow}"#, Fails(&["memory limit", "64 MiB"])),
        poison(r#"{case: grow, at: open}"#, Fails(&["memory limit"])),
        poison(r#"{case: grow, at: on-timer}"#, Fails(&["memory limit"])),
        poison(r#"{case: unreachable}"#, Fails(&["unreachable"])),
        poison(r#"{case: panic}"#, Fails(&["a panic on purpose"])),
        poison(r#"{case: panic, at: open}"#, Fails(&["a panic on purpose"])),
        poison(
            r#"{case: panic, at: on-timer}"#,
            Fails(&["a panic on purpose"]),
        ),
        poison(
            r#"{case: panic, at: close}"#,
            Fails(&["a panic on purpose"]),
        ),
        poison(r#"{case: big-output}"#, Fails(&["memory limit"])),
        // Within 64 MiB the guest runs out of memory first; with more, the
        // host's limits stop it.
        poison_with(
            r#"{case: tiny-outputs}"#,
            "    memory_mib: 512\n",
            10_000,
            Fails(&["max_outputs_per_call"]),
        ),
        poison_with(
            r#"{case: tiny-outputs, at: on-timer}"#,
            "    memory_mib: 512\n",
            10_000,
            Fails(&["max_outputs_per_call"]),
        ),
        poison(r#"{case: state-flood}"#, Fails(&["timeout"])),
        poison_with(
            r#"{case: state-flood}"#,
            "",
            60_000,
            Fails(&["max_pending_state_bytes"]),
        ),
        poison(r#"{case: big-value}"#, Fails(&["memory limit"])),
        poison(r#"{case: big-key}"#, Fails(&["memory limit"])),
        poison_with(
            r#"{case: timer-flood}"#,
            "",
            60_000,
            Fails(&["max_timers_per_key", "100000"]),
        ),
        poison(r#"{case: log-flood}"#, Finishes("")),
        poison(
            r#"{case: side-names}"#,
            Fails(&["max_side_outputs_per_call", "1024"]),
        ),
        poison_with(
            r#"{case: output-bytes}"#,
            "    memory_mib: 512\n    max_output_bytes_per_call: 16777216\n",
            10_000,
            Fails(&["max_output_bytes_per_call", "16777216"]),
        ),
        poison(r#"{case: bad-utf8}"#, Fails(&["not valid JSON"])),
        poison(r#"{case: bad-json}"#, Fails(&["not valid JSON"])),
        poison(r#"{case: clock}"#, Finishes("9466848")),
        poison(r#"{case: random}"#, Finishes("")),
        poison(r#"{case: fs}"#, Finishes("denied")),
        poison(r#"{case: env}"#, Finishes("0 variables")),
    ];
    for (config, expect) in [
        (r#"{case: loop, at: snapshot}"#, Fails(&["timeout"])),
        (
            r#"{case: panic, at: snapshot}"#,
            Fails(&["a panic on purpose"]),
        ),
    ] {
        all.push(Case {
            checkpoints: true,
            ..poison(config, expect)
        });
    }
    all.push(Case {
        restarts: true,
        ..poison(
            r#"{case: panic, at: restore}"#,
            Fails(&["a panic on purpose"]),
        )
    });
    all.extend([
        aggregate(r#"{case: loop, at: open}"#, Fails(&["timeout"])),
        aggregate(r#"{case: loop, at: add}"#, Fails(&["timeout"])),
        aggregate(
            r#"{case: panic, at: add}"#,
            Fails(&["a panic on purpose in add"]),
        ),
        aggregate(
            r#"{case: panic, at: merge}"#,
            Fails(&["a panic on purpose in merge"]),
        ),
        aggregate(
            r#"{case: panic, at: get-result}"#,
            Fails(&["a panic on purpose in get-result"]),
        ),
        aggregate(r#"{case: grow, at: add}"#, Fails(&["memory limit"])),
        aggregate(
            r#"{case: bad-result, at: get-result}"#,
            Expect::FinishesCounting,
        ),
    ]);
    all.extend([
        Case {
            udf: "bad-packed",
            ..poison("{}", Fails(&["malformed packed batch"]))
        },
        Case {
            udf: "bad-packed",
            ..poison(
                "{big_key_bytes: 2097152}",
                Fails(&["max_key_bytes", "2097152 bytes"]),
            )
        },
        Case {
            udf: "poison-outputs",
            ..poison_with(
                "{per_record: 2000}",
                "    max_outputs_per_call: 1000\n    memory_mib: 512\n",
                1000,
                Fails(&["max_outputs_per_call", "1000"]),
            )
        },
    ]);
    all
}

/// `rows` CSV rows `key,ts,value` over 10 keys, timestamps 1 s apart.
fn write_input(dir: &Path, rows: usize) -> PathBuf {
    let input = dir.join("input");
    std::fs::create_dir_all(&input).unwrap();
    let mut text = String::from("key,ts,value\n");
    for i in 0..rows {
        writeln!(text, "k{},{},{}", i % 10, 1_000_000 + i * 1000, i).unwrap();
    }
    std::fs::write(input.join("rows.csv"), text).unwrap();
    input
}

fn poison_job(name: &str, udf: &str, case: &Case, input: &Path, out: &Path) -> String {
    let configuration = if case.restarts {
        "  execution.checkpointing.interval: 50ms\n  restart-strategy.type: fixed-delay\n  restart-strategy.fixed-delay.attempts: 1\n  restart-strategy.fixed-delay.delay: 100ms\n"
    } else if case.checkpoints {
        "  restart-strategy.type: none\n  execution.checkpointing.interval: 100ms\n"
    } else {
        "  restart-strategy.type: none\n"
    };
    // Slower for the restore case, so checkpoints complete before the
    // injected failure.
    let (pace, batch) = if case.restarts {
        (500, 10)
    } else {
        (2000, 1024)
    };
    let sink_extra = if case.restarts {
        ", fail_after_records: 350"
    } else {
        ""
    };
    format!(
        "name: {name}\nbatch_size: {batch}\nsources:\n  - id: rows\n    type: file\n    path: {input}\n    glob: \"*.csv\"\n    format: csv\n    key: {{ field: key }}\n    timestamp: {{ field: ts, format: millis }}\n    watermarks: {{ max_out_of_orderness: 0ms }}\n    records_per_second: {pace}\noperators:\n  - id: poison\n    input: rows\n    partition: key_by\n    udf: \"{udf}\"\n    config: {config}\n    call_timeout_ms: {timeout}\n{extra}sinks:\n  - {{ id: out, input: poison, type: file, path: {out}{sink_extra} }}\nconfiguration:\n{configuration}",
        input = input.display(),
        config = case.config,
        timeout = case.timeout_ms,
        extra = case.extra,
        out = out.display(),
    )
}

/// The healthy job: the NAB z-score detector over a few NAB series.
fn healthy_job(name: &str, udf: &str, out: &Path) -> String {
    let nab = std::fs::canonicalize(support::repo_root().join("../shared/data/nab/data")).unwrap();
    format!(
        "name: {name}\nsources:\n  - id: readings\n    type: file\n    path: {data}\n    glob: \"realKnownCause/*.csv\"\n    format: csv\n    key: {{ from: path }}\n    timestamp: {{ field: timestamp, format: \"%Y-%m-%d %H:%M:%S\" }}\noperators:\n  - id: zscore\n    input: readings\n    partition: key_by\n    udf: \"{udf}\"\n    config: {{ warmup: 30, threshold: 3.0 }}\nsinks:\n  - {{ id: alerts, input: zscore, type: file, path: {out} }}\n",
        data = nab.display(),
        out = out.display()
    )
}

/// The peak resident set so far (`VmHWM`) of process `pid`, MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// The message of the job's last failure (the one that failed it).
fn last_failure(jm: &JobManager, id: &str) -> String {
    let exceptions = get(jm, &format!("/v1/jobs/{id}/exceptions"));
    exceptions["exceptions"]
        .as_array()
        .and_then(|all| all.last())
        .and_then(|last| last["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Runs `cases`, each beside a healthy job, on `jm` (whose tasks run in
/// process `host`: the JobManager or a TaskManager), asserting after each
/// that `host` is alive; returns the table of outcomes, the cases that
/// ended otherwise, and the peak RSS of `host` in MiB.
fn run_cases(jm: &JobManager, dir: &Path, cases: &[Case], host: u32) -> (String, Vec<String>, u64) {
    let input = write_input(dir, 400);
    let healthy = upload(jm, &udf("nab-zscore"));
    let mut artifacts = std::collections::HashMap::new();

    // The healthy job alone: the reference.
    let reference_out = dir.join("healthy-alone");
    let id = submit(
        jm,
        &healthy_job("healthy", &format!("artifact:{healthy}"), &reference_out),
        "",
        dir,
    );
    wait_for(jm, &id, &["FINISHED"], Duration::from_secs(120));
    let reference = committed(&reference_out);
    assert!(reference.len() > 10, "{} alerts", reference.len());

    let mut table = String::new();
    let mut wrong = Vec::new();
    let mut peak_rss = 0;
    for (n, case) in cases.iter().enumerate() {
        let artifact = artifacts
            .entry(case.udf)
            .or_insert_with(|| upload(jm, &udf(case.udf)))
            .clone();
        let out = dir.join(format!("poison-{n}"));
        let poison_id = submit(
            jm,
            &poison_job(
                &format!("poison-{n}"),
                &format!("artifact:{artifact}"),
                case,
                &input,
                &out,
            ),
            "",
            dir,
        );
        let healthy_out = dir.join(format!("healthy-{n}"));
        let healthy_id = submit(
            jm,
            &healthy_job(
                &format!("healthy-{n}"),
                &format!("artifact:{healthy}"),
                &healthy_out,
            ),
            "",
            dir,
        );
        let ended = wait_for(
            jm,
            &poison_id,
            &["FINISHED", "FAILED"],
            Duration::from_secs(120),
        );
        wait_for(jm, &healthy_id, &["FINISHED"], Duration::from_secs(120));
        assert!(jm_alive(jm), "the JobManager died in case {}", case.config);
        assert!(
            Path::new(&format!("/proc/{host}/status")).exists(),
            "the process running the tasks died in case {}",
            case.config
        );
        let rss = rss_mib(host);
        peak_rss = peak_rss.max(rss);
        let healthy_ok = committed(&healthy_out) == reference;
        let state = ended["state"].as_str().unwrap_or_default().to_string();
        let (outcome, ok) = match &case.expect {
            Expect::Fails(words) => {
                let message = last_failure(jm, &poison_id);
                let lower = message.to_lowercase();
                let ok = state == "FAILED"
                    && message.contains("poison")
                    && words.iter().all(|w| lower.contains(&w.to_lowercase()));
                (format!("{state}: {message}"), ok)
            }
            Expect::FinishesCounting => {
                let errors = ended["metrics"]["record-errors"].as_u64().unwrap_or(0);
                let written = committed(&out).len();
                (
                    format!("{state}: {written} results, {errors} record errors"),
                    state == "FINISHED" && errors > 0 && written == 0,
                )
            }
            Expect::Finishes(got) => {
                let records: Vec<Value> = committed(&out)
                    .iter()
                    .map(|l| serde_json::from_str(l).unwrap_or(Value::Null))
                    .collect();
                let seen: Vec<&str> = records.iter().filter_map(|r| r["got"].as_str()).collect();
                let ok = state == "FINISHED"
                    && records.len() == 400
                    && seen.iter().all(|g| g.contains(got));
                (
                    format!("{state}: {} records, got {:?}", records.len(), seen.first()),
                    ok,
                )
            }
        };
        writeln!(
            table,
            "| `{}` `{}` | {outcome} | healthy job {}; RSS {rss} MiB |",
            case.udf,
            case.config,
            if healthy_ok { "identical" } else { "DIFFERENT" }
        )
        .unwrap();
        if !ok || !healthy_ok {
            wrong.push(format!("{} {}: {outcome}", case.udf, case.config));
        }
    }
    (table, wrong, peak_rss)
}

#[test]
fn hostile_udfs_fail_their_own_job_only_and_the_process_stays_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let jm = JobManager::start(dir.path(), &[]);
    let (table, wrong, peak_rss) = run_cases(&jm, dir.path(), &cases(), jm.child.id());
    assert_suite(&table, &wrong, peak_rss, "the JobManager");
}

/// The same on a TaskManager: a JobManager without local slots and one
/// TaskManager of 4 slots, so each hostile job and the healthy job beside
/// it run in the TaskManager's process. A sample of the cases (one of each
/// kind of failure) keeps it short.
#[test]
fn hostile_udfs_on_a_taskmanager_fail_their_own_job_only_and_it_stays_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let certs = support::cert_init(dir.path());
    let (jm, rpc) = JobManager::start_cluster(dir.path(), &certs);
    let tm = support::TaskManager::start(dir.path(), &rpc, "127.0.0.2", 4, &certs);
    let sample: Vec<Case> = cases()
        .into_iter()
        .filter(|c| {
            [
                r#"{case: loop}"#,
                r#"{case: grow}"#,
                r#"{case: panic, at: on-timer}"#,
                r#"{case: tiny-outputs}"#,
                r#"{case: side-names}"#,
                r#"{case: output-bytes}"#,
                r#"{case: bad-utf8}"#,
                r#"{case: clock}"#,
                r#"{case: fs}"#,
                "{big_key_bytes: 2097152}",
            ]
            .contains(&c.config)
                || c.restarts
        })
        .collect();
    assert_eq!(sample.len(), 11);
    let (table, wrong, peak_rss) = run_cases(&jm, dir.path(), &sample, tm.child.id());
    assert_suite(&table, &wrong, peak_rss, "the TaskManager");
}

/// Every case ended as expected and `host` stayed under the RSS bound.
fn assert_suite(table: &str, wrong: &[String], peak_rss: u64, host: &str) {
    eprintln!("{table}");
    assert!(
        wrong.is_empty(),
        "cases that ended otherwise:\n{}",
        wrong.join("\n")
    );
    assert!(peak_rss < RSS_BOUND_MIB, "{host} reached {peak_rss} MiB");
}

/// A component that imports what Weir does not provide
/// (`udfs/poison-import`) is refused before it runs, naming the import: by
/// the JobManager at upload (which stays up), and by `weir run` at load.
#[test]
fn a_component_importing_what_weir_does_not_provide_is_refused_naming_the_import() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let wasm = udf("poison-import");
    let jm = JobManager::start(dir, &[]);
    let (status, body) = curl(
        "POST",
        &format!("{}/v1/artifacts", jm.url),
        Some(&wasm),
        &["Content-Type: application/wasm"],
    );
    assert_eq!(status, 400, "{body}");
    let message = body["errors"][0].as_str().unwrap_or_default();
    assert!(
        message.contains("weir:poison/exfiltrate") && message.contains("not found in the linker"),
        "{message}"
    );
    assert!(jm_alive(&jm));

    let input = write_input(dir, 10);
    let case = poison("{}", Expect::Finishes(""));
    let job = poison_job(
        "imports",
        &wasm.display().to_string(),
        &case,
        &input,
        &dir.join("out"),
    );
    std::fs::write(dir.join("imports.yaml"), job).unwrap();
    let run = weir(dir, &["run", "imports.yaml"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        stderr.contains("operator `poison`") && stderr.contains("weir:poison/exfiltrate"),
        "{stderr}"
    );
    assert!(!dir.join("out").join("part-0.jsonl").exists());
}

fn jm_alive(jm: &JobManager) -> bool {
    Path::new(&format!("/proc/{}/status", jm.child.id())).exists()
        && get(jm, "/v1/overview").is_object()
}
