//! `weir jobmanager` as a user drives it: components uploaded with `curl`
//! and `weir udf upload`, jobs submitted over REST and with `weir submit`,
//! their committed output compared record for record with embedded
//! `weir run`s of the same jobs; failures, restarts, a SIGKILLed
//! JobManager, stop with savepoint and resume, and bad requests.
//!
//! Every JobManager is started on port 0 (the port is read from its
//! first line), under a temporary HA directory, and killed by pid when
//! its test ends.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use std::process::Command;
use support::{JobManager, committed, curl, get, repo_root, submit, udf, upload, wait_for, weir};

fn nab() -> PathBuf {
    let data = repo_root().join("../shared/data/nab/data");
    assert!(data.is_dir(), "NAB data not found at {}", data.display());
    std::fs::canonicalize(data).unwrap()
}

/// The NAB z-score job over `glob`, writing to `out`; `udf` is a path or
/// `artifact:<id>`.
fn nab_job(
    name: &str,
    udf: &str,
    glob: &str,
    out: &Path,
    source_extra: &str,
    config: &str,
) -> String {
    format!(
        "name: {name}\nsources:\n  - id: readings\n    type: file\n    path: {data}\n    glob: \"{glob}\"\n    format: csv\n    key: {{ from: path }}\n    timestamp: {{ field: timestamp, format: \"%Y-%m-%d %H:%M:%S\" }}\n{source_extra}operators:\n  - id: zscore\n    input: readings\n    partition: key_by\n    udf: {udf}\n    config: {{ warmup: 30, threshold: 3.0 }}\nsinks:\n  - id: alerts\n    input: zscore\n    type: file\n    path: {out}\n{config}",
        data = nab().display(),
        out = out.display()
    )
}

/// Runs `job` embedded (`weir run`) and returns its committed output.
fn embedded(dir: &Path, name: &str, job: &str, out: &Path) -> Vec<String> {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, job).unwrap();
    let run = weir(dir, &["run", file.to_str().unwrap(), "--no-progress"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    committed(out)
}

#[test]
fn nab_and_nexmark_over_rest_equal_their_embedded_runs() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let zscore = udf("nab-zscore");

    // The references: embedded runs at parallelism 1.
    let nab_reference = embedded(
        dir,
        "nab-embedded",
        &nab_job(
            "nab",
            zscore.to_str().unwrap(),
            "**/*.csv",
            &dir.join("embedded/nab"),
            "",
            "",
        ),
        &dir.join("embedded/nab"),
    );
    assert!(nab_reference.len() > 100, "{} alerts", nab_reference.len());
    let nexmark = |out: &Path| {
        format!(
            "name: nexmark-counts\nsources:\n  - id: bids\n    type: nexmark\n    events: 300000\n    seed: 7\n    kinds: [bid]\n    watermarks: {{ max_out_of_orderness: 0ms }}\noperators:\n  - id: counts\n    input: {{ from: bids, key: auction }}\n    partition: key_by\n    window: {{ type: tumbling, size: 10s, key_field: auction }}\n    aggregate: [{{ fn: count }}, {{ fn: max, field: price }}]\nsinks:\n  - {{ id: out, input: counts, type: file, path: {} }}\n",
            out.display()
        )
    };
    let nexmark_reference = embedded(
        dir,
        "nexmark-embedded",
        &nexmark(&dir.join("embedded/nexmark")),
        &dir.join("embedded/nexmark"),
    );
    assert!(nexmark_reference.len() > 1000);

    let jm = JobManager::start(dir, &[]);
    // The same component uploaded with curl and with `weir udf upload`
    // is one artifact.
    let id = upload(&jm, &zscore);
    let cli = weir(
        dir,
        &[
            "udf",
            "upload",
            zscore.to_str().unwrap(),
            "--jobmanager",
            &jm.url,
        ],
    );
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&cli.stdout).trim(), id);
    let artifacts = get(&jm, "/v1/artifacts");
    assert_eq!(artifacts["artifacts"].as_array().unwrap().len(), 1);
    assert_eq!(artifacts["artifacts"][0]["world"], "operator");

    // Two jobs at once: NAB at parallelism 2 and a Nexmark window job.
    let nab_out = dir.join("server/nab");
    let nab = submit(
        &jm,
        &nab_job(
            "nab",
            &format!("artifact:{id}"),
            "**/*.csv",
            &nab_out,
            "",
            "",
        ),
        "?parallelism=2",
        dir,
    );
    let nexmark_out = dir.join("server/nexmark");
    let nexmark_job = submit(&jm, &nexmark(&nexmark_out), "", dir);
    let listed = get(&jm, "/v1/jobs");
    assert_eq!(listed["jobs"].as_array().unwrap().len(), 2);

    let done = wait_for(&jm, &nab, &["FINISHED", "FAILED"], Duration::from_secs(180));
    assert_eq!(done["state"], "FINISHED", "{done}");
    assert_eq!(done["vertices"][1]["parallelism"], 2);
    assert_eq!(done["metrics"]["read-records"], 365_558);
    let done = wait_for(
        &jm,
        &nexmark_job,
        &["FINISHED", "FAILED"],
        Duration::from_secs(180),
    );
    assert_eq!(done["state"], "FINISHED", "{done}");

    assert_eq!(committed(&nab_out), nab_reference);
    assert_eq!(committed(&nexmark_out), nexmark_reference);

    let overview = get(&jm, "/v1/overview");
    assert_eq!(overview["jobs"]["FINISHED"], 2);
    assert_eq!(overview["slots-available"], 4);

    // `weir list` and `weir status` show them.
    let list = weir(dir, &["list", "--jobmanager", &jm.url]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains(&nab) && text.contains("FINISHED"), "{text}");
    let status = weir(dir, &["status", &nab, "--jobmanager", &jm.url]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        text.contains("FINISHED") && text.contains("zscore"),
        "{text}"
    );
}

#[test]
fn weir_submit_builds_and_uploads_local_udfs() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let jm = JobManager::start(dir, &[]);
    let out = dir.join("out");
    // A crate directory relative to the job file: built, uploaded, submitted.
    let crate_dir = std::fs::canonicalize(repo_root().join("udfs/nab-zscore")).unwrap();
    let job = nab_job(
        "local",
        crate_dir.to_str().unwrap(),
        "realTraffic/*.csv",
        &out,
        "",
        "",
    );
    std::fs::write(dir.join("job.yaml"), &job).unwrap();
    // A configuration key given at submission turns checkpoints on for a
    // job file that has none.
    let submitted = weir(
        dir,
        &[
            "submit",
            "job.yaml",
            "--jobmanager",
            &jm.url,
            "-Dexecution.checkpointing.interval=100ms",
        ],
    );
    let err = String::from_utf8_lossy(&submitted.stderr);
    assert!(submitted.status.success(), "{err}");
    assert!(err.contains("Uploaded"), "{err}");
    let id = String::from_utf8_lossy(&submitted.stdout)
        .trim()
        .to_string();
    let done = wait_for(&jm, &id, &["FINISHED", "FAILED"], Duration::from_secs(120));
    assert_eq!(done["state"], "FINISHED", "{done}");
    // realTraffic: 7 series, 15,664 readings.
    assert_eq!(done["metrics"]["read-records"], 15_664);
    let checkpoints = get(&jm, &format!("/v1/jobs/{id}/checkpoints"));
    assert!(
        checkpoints["completed"].as_u64().unwrap() >= 1,
        "the final checkpoint at least: {checkpoints}"
    );
    // Per-vertex counters: every reading leaves the source and reaches
    // the UDF; every alert it emits reaches the sink; the bounded job's
    // watermark ended at its maximum everywhere.
    let vertex = |id: &str| {
        done["vertices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .unwrap_or_else(|| panic!("no vertex {id}: {done}"))
            .clone()
    };
    let (readings, zscore, alerts) = (vertex("readings"), vertex("zscore"), vertex("alerts"));
    assert_eq!(readings["write-records"], 15_664, "{readings}");
    assert_eq!(zscore["read-records"], 15_664, "{zscore}");
    let emitted = zscore["write-records"].as_u64().unwrap();
    assert_eq!(
        alerts["read-records"].as_u64().unwrap(),
        emitted,
        "{alerts}"
    );
    assert_eq!(alerts["write-records"], 0, "{alerts}");
    for v in [&readings, &zscore, &alerts] {
        assert_eq!(v["current-watermark"], i64::MAX, "{v}");
        let ratio = v["backpressure-ratio"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&ratio), "{v}");
    }
    let reference = embedded(
        dir,
        "reference",
        &job.replace(out.to_str().unwrap(), dir.join("ref").to_str().unwrap()),
        &dir.join("ref"),
    );
    assert_eq!(emitted, reference.len() as u64);
    assert_eq!(committed(&out), reference);
}

/// A checkpointed job (paced, so checkpoints complete while it runs).
fn paced_job(name: &str, udf: &str, out: &Path, rate: u64) -> String {
    nab_job(
        name,
        udf,
        "realKnownCause/*.csv",
        out,
        &format!("    records_per_second: {rate}\n"),
        "configuration:\n  execution.checkpointing.interval: 200ms\n  restart-strategy.type: fixed-delay\n  restart-strategy.fixed-delay.attempts: 3\n  restart-strategy.fixed-delay.delay: 100ms\n",
    )
}

#[test]
fn a_udf_that_traps_once_restarts_from_a_checkpoint_with_exactly_once_output() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let trap = udf("trap-on-value");
    // nyc_taxi's 2000th reading: far enough in for checkpoints to complete.
    let text = std::fs::read_to_string(nab().join("realKnownCause/nyc_taxi.csv")).unwrap();
    let value = text
        .lines()
        .nth(2000)
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .to_string();
    let job = |udf: &str, out: &Path| {
        format!(
            "name: trap-once\nsources:\n  - id: readings\n    type: file\n    path: {data}\n    glob: \"realKnownCause/*.csv\"\n    format: csv\n    key: {{ from: path }}\n    records_per_second: 20000\noperators:\n  - id: pass\n    input: readings\n    udf: {udf}\n    config: {{ trap_value: {value}, trap_attempts: 1 }}\nsinks:\n  - {{ id: out, input: pass, type: file, path: {out} }}\nconfiguration:\n  execution.checkpointing.interval: 200ms\n  restart-strategy.type: fixed-delay\n  restart-strategy.fixed-delay.attempts: 2\n  restart-strategy.fixed-delay.delay: 100ms\n",
            data = nab().display(),
            out = out.display()
        )
    };
    let jm = JobManager::start(dir, &[]);
    let id = upload(&jm, &trap);
    let out = dir.join("out");
    let job_id = submit(&jm, &job(&format!("artifact:{id}"), &out), "", dir);
    let done = wait_for(
        &jm,
        &job_id,
        &["FINISHED", "FAILED"],
        Duration::from_secs(120),
    );
    assert_eq!(done["state"], "FINISHED", "{done}");
    assert_eq!(done["metrics"]["restarts"], 1, "{done}");
    let exceptions = get(&jm, &format!("/v1/jobs/{job_id}/exceptions"));
    let exceptions = exceptions["exceptions"].as_array().unwrap().clone();
    assert_eq!(exceptions.len(), 1, "{exceptions:?}");
    assert_eq!(exceptions[0]["kind"], "task");
    assert_eq!(exceptions[0]["cause"], "trap", "{exceptions:?}");
    assert!(
        exceptions[0]["message"].as_str().unwrap().contains("pass"),
        "{exceptions:?}"
    );
    let checkpoints = get(&jm, &format!("/v1/jobs/{job_id}/checkpoints"));
    assert!(
        checkpoints["completed"].as_u64().unwrap() >= 2,
        "{checkpoints}"
    );

    // The fault-free run: the same job that never traps.
    let reference_out = dir.join("reference");
    let reference =
        job(trap.to_str().unwrap(), &reference_out).replace("trap_attempts: 1", "trap_attempts: 0");
    let expected = embedded(dir, "reference", &reference, &reference_out);
    // realKnownCause: 7 series, 69,561 readings.
    assert_eq!(expected.len(), 69_561);
    assert_eq!(committed(&out), expected);
}

#[test]
fn a_jobmanager_killed_mid_job_resumes_it_from_the_latest_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let zscore = udf("nab-zscore");
    let out = dir.join("out");
    let mut jm = JobManager::start(dir, &[]);
    let id = upload(&jm, &zscore);
    let job = paced_job("killed", &format!("artifact:{id}"), &out, 10_000);
    let job_id = submit(&jm, &job, "", dir);
    // Kill it (SIGKILL) once a few checkpoints completed.
    let started = Instant::now();
    loop {
        let c = get(&jm, &format!("/v1/jobs/{job_id}/checkpoints"));
        if c["completed"].as_u64().unwrap_or(0) >= 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no checkpoints: {c}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    jm.kill();
    let jm = JobManager::start(dir, &[]);
    let done = wait_for(
        &jm,
        &job_id,
        &["FINISHED", "FAILED"],
        Duration::from_secs(120),
    );
    assert_eq!(done["state"], "FINISHED", "{done}");
    // It resumed rather than starting over: fewer records read this time.
    let read = done["metrics"]["read-records"].as_u64().unwrap();
    assert!(read < 69_561, "read {read}");
    let reference = embedded(
        dir,
        "reference",
        &paced_job(
            "reference",
            zscore.to_str().unwrap(),
            &dir.join("ref"),
            1_000_000,
        ),
        &dir.join("ref"),
    );
    assert_eq!(committed(&out), reference);
}

#[test]
fn stop_with_savepoint_then_resume_at_another_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let zscore = udf("nab-zscore");
    let out = dir.join("out");
    let jm = JobManager::start(dir, &[]);
    let id = upload(&jm, &zscore);
    let job = paced_job("stopped", &format!("artifact:{id}"), &out, 10_000);
    let first = submit(&jm, &job, "", dir);
    wait_for(&jm, &first, &["RUNNING"], Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1000));
    // A savepoint while it runs: it keeps running.
    let side_target = dir.join("side-savepoints");
    let side = weir(
        dir,
        &[
            "savepoint",
            &first,
            side_target.to_str().unwrap(),
            "--jobmanager",
            &jm.url,
        ],
    );
    assert!(
        side.status.success(),
        "{}",
        String::from_utf8_lossy(&side.stderr)
    );
    let side_savepoint = String::from_utf8_lossy(&side.stdout).trim().to_string();
    assert!(
        side_savepoint.starts_with(side_target.to_str().unwrap()),
        "{side_savepoint}"
    );
    assert_eq!(get(&jm, &format!("/v1/jobs/{first}"))["state"], "RUNNING");
    std::thread::sleep(Duration::from_millis(500));
    let target = dir.join("savepoints");
    let stop = weir(
        dir,
        &[
            "stop",
            &first,
            "--target",
            target.to_str().unwrap(),
            "--jobmanager",
            &jm.url,
        ],
    );
    assert!(
        stop.status.success(),
        "{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    let savepoint = String::from_utf8_lossy(&stop.stdout).trim().to_string();
    assert!(
        savepoint.starts_with(target.to_str().unwrap()),
        "{savepoint}"
    );
    let stopped = get(&jm, &format!("/v1/jobs/{first}"));
    assert_eq!(stopped["state"], "CANCELED");
    let read_before = stopped["metrics"]["read-records"].as_u64().unwrap();
    assert!(read_before < 69_561, "stopped too late: {read_before}");

    let second = submit(
        &jm,
        &job,
        &format!("?parallelism=2&savepointPath={savepoint}"),
        dir,
    );
    let done = wait_for(
        &jm,
        &second,
        &["FINISHED", "FAILED"],
        Duration::from_secs(120),
    );
    assert_eq!(done["state"], "FINISHED", "{done}");
    let reference = embedded(
        dir,
        "reference",
        &paced_job(
            "reference",
            zscore.to_str().unwrap(),
            &dir.join("ref"),
            1_000_000,
        ),
        &dir.join("ref"),
    );
    assert_eq!(committed(&out), reference);

    // The savepoint taken while it ran restores too (parallelism 3): the
    // first job's output up to it, then the rest, equal the reference.
    let side_out = dir.join("side-out");
    copy_committed_until(&out, &side_out, &side_savepoint);
    let third = submit(
        &jm,
        &paced_job("stopped", &format!("artifact:{id}"), &side_out, 1_000_000),
        &format!("?parallelism=3&savepointPath={side_savepoint}"),
        dir,
    );
    let done = wait_for(
        &jm,
        &third,
        &["FINISHED", "FAILED"],
        Duration::from_secs(120),
    );
    assert_eq!(done["state"], "FINISHED", "{done}");
    assert_eq!(committed(&side_out), reference);
}

/// Copies the part files of `from` committed by checkpoints up to the one
/// `savepoint` (`.../chk-<n>`) was taken from: the output a job restored
/// from it continues.
fn copy_committed_until(from: &Path, to: &Path, savepoint: &str) {
    let n: u64 = savepoint.rsplit("chk-").next().unwrap().parse().unwrap();
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        // part-<subtask>-<checkpoint:08>.jsonl
        let checkpoint = name
            .strip_prefix("part-")
            .and_then(|rest| rest.strip_suffix(".jsonl"))
            .and_then(|rest| rest.rsplit('-').next())
            .and_then(|c| c.parse::<u64>().ok());
        if checkpoint.is_some_and(|c| c <= n) {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let jm = JobManager::start(dir, &["rest.upload.max-bytes=2000000"]);
    let url = &jm.url;
    let zscore = udf("nab-zscore");
    let id = upload(&jm, &zscore);
    let error = |(status, body): (u16, Value), expected: u16, needle: &str| {
        assert_eq!(status, expected, "{body}");
        let message = body["errors"][0].as_str().unwrap_or_default().to_string();
        assert!(message.contains(needle), "`{needle}` not in {body}");
    };
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let wasm = ["Content-Type: application/wasm"];
    let yaml = ["Content-Type: application/yaml"];
    error(
        curl(
            "POST",
            &format!("{url}/v1/artifacts"),
            Some(&file("big", &vec![0u8; 3_000_000])),
            &wasm,
        ),
        413,
        "rest.upload.max-bytes",
    );
    error(
        curl(
            "POST",
            &format!("{url}/v1/artifacts"),
            Some(&file("text", b"hello, not wasm")),
            &wasm,
        ),
        400,
        "not a WebAssembly component",
    );
    error(
        curl(
            "POST",
            &format!("{url}/v1/artifacts"),
            Some(&udf("not-an-operator")),
            &wasm,
        ),
        400,
        "does not implement",
    );
    error(
        curl(
            "POST",
            &format!("{url}/v1/jobs"),
            Some(&file(
                "bad.yaml",
                b"name: x\nsources:\n  - id: a\n    type: file\n    pathh: data\nsinks: []\n",
            )),
            &yaml,
        ),
        400,
        "line",
    );
    let missing = "0".repeat(64);
    let job = nab_job(
        "j",
        &format!("artifact:{missing}"),
        "*.csv",
        &dir.join("o"),
        "",
        "",
    );
    error(
        curl(
            "POST",
            &format!("{url}/v1/jobs"),
            Some(&file("unknown.yaml", job.as_bytes())),
            &yaml,
        ),
        400,
        "no artifact",
    );
    let job = nab_job(
        "j",
        zscore.to_str().unwrap(),
        "*.csv",
        &dir.join("o"),
        "",
        "",
    );
    error(
        curl(
            "POST",
            &format!("{url}/v1/jobs"),
            Some(&file("local.yaml", job.as_bytes())),
            &yaml,
        ),
        400,
        "upload it",
    );
    // Submit-time configuration: not JSON, or an unknown key.
    let good = nab_job(
        "j",
        &format!("artifact:{id}"),
        "*.csv",
        &dir.join("o"),
        "",
        "",
    );
    let good = file("good.yaml", good.as_bytes());
    error(
        curl(
            "POST",
            &format!("{url}/v1/jobs?configuration=interval"),
            Some(&good),
            &yaml,
        ),
        400,
        "JSON object",
    );
    error(
        curl(
            "POST",
            &format!("{url}/v1/jobs?configuration=%7B%22no.such.key%22%3A%221%22%7D"),
            Some(&good),
            &yaml,
        ),
        400,
        "no.such.key",
    );
    error(
        curl("GET", &format!("{url}/v1/jobs/{missing}"), None, &[]),
        404,
        "no job",
    );
    error(
        curl("GET", &format!("{url}/v1/artifacts/{missing}"), None, &[]),
        404,
        "no artifact",
    );
    error(
        curl("GET", &format!("{url}/v1/nope"), None, &[]),
        404,
        "no such route",
    );
    error(
        curl(
            "POST",
            &format!("{url}/v1/jobs?parallelism=many"),
            Some(&file("p.yaml", b"name: x")),
            &yaml,
        ),
        400,
        "parallelism",
    );
    // Cancelling a finished job.
    let small = nab_job(
        "small",
        &format!("artifact:{id}"),
        "realAdExchange/*.csv",
        &dir.join("small"),
        "",
        "",
    );
    let job_id = submit(&jm, &small, "", dir);
    wait_for(&jm, &job_id, &["FINISHED"], Duration::from_secs(60));
    error(
        curl(
            "PATCH",
            &format!("{url}/v1/jobs/{job_id}?mode=cancel"),
            None,
            &[],
        ),
        409,
        "already FINISHED",
    );
    // Nothing changed: one artifact, one job, still finished.
    assert_eq!(
        get(&jm, "/v1/artifacts")["artifacts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let jobs = get(&jm, "/v1/jobs");
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(jobs["jobs"][0]["state"], "FINISHED");

    // With a token: none or a wrong one is 401, the right one works.
    std::fs::create_dir_all(dir.join("secured")).unwrap();
    let secured = JobManager::start(&dir.join("secured"), &["rest.auth.token=s3cret"]);
    error(
        curl("GET", &format!("{}/v1/jobs", secured.url), None, &[]),
        401,
        "Authorization",
    );
    error(
        curl(
            "GET",
            &format!("{}/v1/jobs", secured.url),
            None,
            &["Authorization: Bearer nope"],
        ),
        401,
        "wrong bearer token",
    );
    let (status, _) = curl(
        "GET",
        &format!("{}/v1/jobs", secured.url),
        None,
        &["Authorization: Bearer s3cret"],
    );
    assert_eq!(status, 200);
}

#[test]
fn the_openapi_document_lists_every_route_and_validates() {
    let dir = tempfile::tempdir().unwrap();
    let jm = JobManager::start(dir.path(), &[]);
    let api = get(&jm, "/v1/openapi.json");
    let mut routes: Vec<String> = Vec::new();
    for (path, item) in api["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            routes.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    routes.sort();
    assert_eq!(routes, weir_jobmanager::rest::route_list());
    for expected in [
        "POST /v1/artifacts",
        "GET /v1/artifacts",
        "GET /v1/artifacts/{id}",
        "DELETE /v1/artifacts/{id}",
        "POST /v1/jobs",
        "GET /v1/jobs",
        "GET /v1/jobs/{id}",
        "PATCH /v1/jobs/{id}",
        "POST /v1/jobs/{id}/stop",
        "POST /v1/jobs/{id}/savepoints",
        "GET /v1/jobs/{id}/savepoints/{triggerid}",
        "GET /v1/jobs/{id}/checkpoints",
        "GET /v1/jobs/{id}/exceptions",
        "GET /v1/overview",
    ] {
        assert!(
            routes.iter().any(|r| r == expected),
            "{expected} missing from {routes:?}"
        );
        // And the server answers it (not the 404 fallback).
        let (method, path) = expected.split_once(' ').unwrap();
        let path = path
            .replace("{id}", &"0".repeat(64))
            .replace("{triggerid}", "x");
        let (status, body) = curl(method, &format!("{}{path}", jm.url), None, &[]);
        let fallback = body["errors"][0]
            .as_str()
            .is_some_and(|m| m.contains("no such route"));
        assert!(!fallback && status != 405, "{expected}: {status} {body}");
    }
    // Validated by an independent OpenAPI validator (PyPI's
    // openapi-spec-validator, installed by scripts/bootstrap.sh).
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, api.to_string()).unwrap();
    let check = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        check.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
