//! `weir jobmanager` and `weir taskmanager` as separate processes on
//! loopback addresses (127.0.0.x), as a user starts them: certificates from
//! `weir cert init`, TaskManagers registering over QUIC with mutual TLS,
//! heartbeats, a SIGKILLed TaskManager declared lost, a restarted
//! JobManager getting its TaskManagers back, peers that are refused, and
//! jobs whose subtasks run on the TaskManagers, their output compared
//! record for record with embedded runs, also across a SIGKILLed
//! TaskManager or JobManager. As root, one test puts the JobManager and two
//! TaskManagers on separate network hosts (namespaces joined by a bridge);
//! elsewhere it prints why it skips.
//!
//! Every process is started with short heartbeats, read line by line, and
//! killed by pid when its test ends; every wait has a deadline.

#![allow(clippy::unwrap_used)]

mod support;

use support::committed;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

const HEARTBEAT: [&str; 2] = ["-Dheartbeat.interval=200", "-Dheartbeat.timeout=1000"];

/// A `weir` process whose stderr lines arrive on a channel; killed on drop.
struct Process {
    name: String,
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Process {
    fn start(name: &str, dir: &Path, args: &[String]) -> Self {
        Self::start_program(name, dir, env!("CARGO_BIN_EXE_weir"), args)
    }

    /// `program ARGS` (e.g. `ip netns exec NS weir ...`, which becomes the
    /// `weir` process itself, so its pid is `weir`'s).
    fn start_program(name: &str, dir: &Path, program: &str, args: &[String]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .current_dir(dir)
            .env_remove("WEIR_JOBMANAGER")
            .env("WEIR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weir starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = channel();
        let label = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[{label}] {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            name: name.to_string(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The first line (from now on) containing `needle`, within `limit`.
    fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{} printed no line with `{needle}` within {limit:?}; it printed:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "{} exited without a line with `{needle}`; it printed:\n{}",
                    self.name,
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Waits (up to `limit`) for the process to exit; its status code.
    fn exit_code(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("{} did not exit within {limit:?}", self.name);
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn weir(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .env_remove("WEIR_JOBMANAGER")
        .output()
        .expect("weir runs")
}

fn cert_init(dir: &Path, name: &str) -> PathBuf {
    let out = weir(dir, &["cert", "init", name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join(name)
}

/// A JobManager with a cluster endpoint: (process, REST URL, QUIC address).
fn jobmanager(
    dir: &Path,
    certs: &Path,
    rest_port: u16,
    rpc_port: u16,
) -> (Process, String, String) {
    jobmanager_with(dir, certs, rest_port, rpc_port, &[])
}

/// [`jobmanager`] with more `-D` settings (they override the defaults).
fn jobmanager_with(
    dir: &Path,
    certs: &Path,
    rest_port: u16,
    rpc_port: u16,
    defines: &[&str],
) -> (Process, String, String) {
    let mut args = vec![
        "jobmanager".to_string(),
        "--certs".into(),
        certs.display().to_string(),
        format!("-Drest.port={rest_port}"),
        format!("-Djobmanager.rpc.port={rpc_port}"),
        format!(
            "-Dhigh-availability.storageDir={}",
            dir.join("ha").display()
        ),
        "-Dtaskmanager.numberOfTaskSlots=1".into(),
    ];
    args.extend(HEARTBEAT.iter().map(|s| s.to_string()));
    args.extend(defines.iter().map(|d| format!("-D{d}")));
    let mut jm = Process::start("jobmanager", dir, &args);
    let line = jm.wait_for("listening on", Duration::from_secs(30));
    let url = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let line = jm.wait_for("cluster endpoint on", Duration::from_secs(10));
    let rpc = line
        .split("cluster endpoint on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    (jm, url, rpc)
}

fn taskmanager(dir: &Path, name: &str, rpc: &str, host: &str, slots: u32, certs: &Path) -> Process {
    Process::start(
        name,
        dir,
        &[
            "taskmanager".into(),
            "--jobmanager".into(),
            rpc.into(),
            "--host".into(),
            host.into(),
            "--slots".into(),
            slots.to_string(),
            "--certs".into(),
            certs.display().to_string(),
        ],
    )
}

fn get(url: &str, path: &str) -> Value {
    let out = Command::new("curl")
        .args(["-sS", "--fail", &format!("{url}{path}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "GET {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `(id, host, slots-total)` of every TaskManager the JobManager lists.
fn listed(url: &str) -> Vec<(String, String, u64)> {
    get(url, "/v1/taskmanagers")["taskmanagers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tm| {
            (
                tm["id"].as_str().unwrap().to_string(),
                tm["host"].as_str().unwrap().to_string(),
                tm["slots-total"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Polls `listed` until `pred` holds, up to `limit`.
fn eventually(
    url: &str,
    limit: Duration,
    pred: impl Fn(&[(String, String, u64)]) -> bool,
) -> Vec<(String, String, u64)> {
    let deadline = Instant::now() + limit;
    loop {
        let now = listed(url);
        if pred(&now) || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn registered_id(line: &str) -> String {
    line.split("registered as ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string()
}

#[test]
fn taskmanagers_register_heartbeat_and_a_killed_one_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let certs = cert_init(dir.path(), "certs");
    let (mut jm, url, rpc) = jobmanager(dir.path(), &certs, 0, 0);
    let mut a = taskmanager(dir.path(), "tm-a", &rpc, "127.0.0.2", 2, &certs);
    let mut b = taskmanager(dir.path(), "tm-b", &rpc, "127.0.0.3", 3, &certs);
    let a_id = registered_id(&a.wait_for("registered as", Duration::from_secs(10)));
    let b_id = registered_id(&b.wait_for("registered as", Duration::from_secs(10)));

    let mut expected = vec![
        ("local".to_string(), "127.0.0.1".to_string(), 1),
        (a_id.clone(), "127.0.0.2".to_string(), 2),
        (b_id.clone(), "127.0.0.3".to_string(), 3),
    ];
    expected[1..].sort();
    assert_eq!(listed(&url), expected);
    let overview = get(&url, "/v1/overview");
    assert_eq!(overview["taskmanagers"], 3);
    assert_eq!(overview["slots-remote"], 5);
    // The CLI's table.
    let out = weir(dir.path(), &["taskmanagers", "--jobmanager", &url]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains(&a_id) && table.contains(&b_id), "{table}");
    // Heartbeats keep them listed well past the timeout (1 s).
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(listed(&url).len(), 3);

    // SIGKILL: no goodbye, so the heartbeat timeout declares it lost.
    a.signal("-KILL");
    jm.wait_for(&format!("TaskManager {a_id} lost"), Duration::from_secs(5));
    let now = eventually(&url, Duration::from_secs(2), |l| l.len() == 2);
    assert_eq!(
        now.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
        ["local", b_id.as_str()]
    );

    // SIGTERM: it closes its connection and is gone at once.
    b.signal("-TERM");
    assert_eq!(b.exit_code(Duration::from_secs(5)), Some(0));
    let line = jm.wait_for(&format!("TaskManager {b_id} lost"), Duration::from_secs(5));
    assert!(line.contains("connection ended"), "{line}");
    assert_eq!(listed(&url).len(), 1);
}

#[test]
fn a_restarted_jobmanager_gets_its_taskmanagers_back() {
    let dir = tempfile::tempdir().unwrap();
    let certs = cert_init(dir.path(), "certs");
    let (jm, url, rpc) = jobmanager(dir.path(), &certs, 0, 0);
    let mut tm = taskmanager(dir.path(), "tm", &rpc, "127.0.0.2", 2, &certs);
    let first = registered_id(&tm.wait_for("registered as", Duration::from_secs(10)));
    drop(jm); // SIGKILL

    let port = |addr: &str| addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let (_jm, url2, _) = jobmanager(dir.path(), &certs, port(&url), port(&rpc));
    assert_eq!(url2, url);
    // The TaskManager notices (QUIC idle timeout = heartbeat timeout) and
    // registers again by itself (ids are the new JobManager's).
    let again = registered_id(&tm.wait_for("registered as", Duration::from_secs(15)));
    assert!(first.ends_with("127.0.0.2") && again.ends_with("127.0.0.2"));
    assert!(
        tm.seen
            .iter()
            .any(|l| l.contains("not connected to the JobManager")),
        "the TaskManager noticed the loss first"
    );
    let now = eventually(&url, Duration::from_secs(2), |l| l.len() == 2);
    assert_eq!(now[1], (again, "127.0.0.2".to_string(), 2));
}

#[test]
fn peers_without_the_cluster_certificate_or_with_bad_registrations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = cert_init(dir.path(), "certs");
    let other = cert_init(dir.path(), "other");
    let (mut jm, url, rpc) = jobmanager(dir.path(), &certs, 0, 0);

    // A TaskManager with another CA's certificate cannot join, and says so.
    let mut stranger = taskmanager(dir.path(), "stranger", &rpc, "127.0.0.4", 1, &other);
    let line = stranger.wait_for("error:", Duration::from_secs(10));
    assert!(line.contains("certificate"), "{line}");
    assert_eq!(stranger.exit_code(Duration::from_secs(5)), Some(1));
    jm.wait_for("refused a cluster connection", Duration::from_secs(5));

    // More slots than a TaskManager may offer: refused by the JobManager.
    let mut greedy = taskmanager(dir.path(), "greedy", &rpc, "127.0.0.5", 5000, &certs);
    let line = greedy.wait_for("error:", Duration::from_secs(10));
    assert!(
        line.contains("refused this TaskManager") && line.contains("5000"),
        "{line}"
    );
    assert_eq!(greedy.exit_code(Duration::from_secs(5)), Some(1));

    // Without certificates a TaskManager does not start.
    let out = weir(dir.path(), &["taskmanager", "--jobmanager", &rpc]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("weir cert init"), "{err}");

    // Garbage from an authenticated peer and a stray UDP datagram fail
    // that connection only.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let identity = weir_rpc::NodeIdentity::load(&certs).unwrap();
        let liveness = weir_rpc::Liveness {
            keep_alive: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(5),
        };
        let endpoint =
            weir_rpc::client_endpoint("127.0.0.6:0".parse().unwrap(), &identity, liveness).unwrap();
        let connection = weir_rpc::connect(&endpoint, rpc.parse().unwrap())
            .await
            .unwrap();
        let (mut send, _recv) = connection.open_bi().await.unwrap();
        send.write_all(b"WEIRCTRL\x01\x00\xff\xff\xff\x7f")
            .await
            .unwrap();
        let closed = tokio::time::timeout(Duration::from_secs(5), connection.closed())
            .await
            .expect("the JobManager closes the connection");
        assert!(closed.to_string().contains("not registered"), "{closed}");
    });
    jm.wait_for("announces 2147483647 bytes", Duration::from_secs(5));
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(&[0xff; 1200], &rpc).unwrap();

    // The JobManager is still up and takes a good TaskManager.
    let mut good = taskmanager(dir.path(), "good", &rpc, "127.0.0.2", 2, &certs);
    let id = registered_id(&good.wait_for("registered as", Duration::from_secs(10)));
    let now = eventually(&url, Duration::from_secs(2), |l| l.len() == 2);
    assert_eq!(now[1], (id, "127.0.0.2".to_string(), 2));
}

#[test]
fn cert_init_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    cert_init(dir.path(), "certs");
    let before = std::fs::read(dir.path().join("certs/ca.pem")).unwrap();
    let out = weir(dir.path(), &["cert", "init", "certs"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));
    assert_eq!(
        std::fs::read(dir.path().join("certs/ca.pem")).unwrap(),
        before
    );
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn nab() -> PathBuf {
    let data = repo_root().join("../shared/data/nab/data");
    assert!(data.is_dir(), "NAB data not found at {}", data.display());
    std::fs::canonicalize(data).unwrap()
}

/// The NAB z-score job, `udf` a path or `artifact:<id>`, writing to `out`.
fn nab_job(udf: &str, out: &Path, source_extra: &str) -> String {
    format!(
        "name: nab-cluster\nsources:\n  - id: readings\n    type: file\n    path: {data}\n    glob: \"**/*.csv\"\n    format: csv\n    key: {{ from: path }}\n    timestamp: {{ field: timestamp, format: \"%Y-%m-%d %H:%M:%S\" }}\n{source_extra}operators:\n  - id: zscore\n    input: readings\n    partition: key_by\n    udf: {udf}\n    config: {{ warmup: 30, threshold: 3.0 }}\nsinks:\n  - id: alerts\n    input: zscore\n    type: file\n    path: {out}\n",
        data = nab().display(),
        out = out.display()
    )
}

/// Data rows (lines after the header) of every CSV file under `dir`.
fn csv_rows(dir: &Path) -> u64 {
    let mut rows = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rows += csv_rows(&path);
        } else if path.extension().is_some_and(|e| e == "csv") {
            let text = std::fs::read_to_string(&path).unwrap();
            rows += text.lines().filter(|l| !l.is_empty()).count() as u64 - 1;
        }
    }
    rows
}

/// Runs job file text `yaml` with `weir run -p 4` and answers the lines
/// its file sink committed under `out`, sorted.
fn embedded_run(dir: &Path, yaml: &str, out: &Path) -> Vec<String> {
    let file = dir.join("embedded.yaml");
    std::fs::write(&file, yaml).unwrap();
    let run = weir(
        dir,
        &["run", file.to_str().unwrap(), "-p", "4", "--no-progress"],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    committed(out)
}

/// Builds the z-score UDF and runs the NAB job embedded at parallelism 4:
/// (the component, the reference output).
fn nab_reference(dir: &Path) -> (PathBuf, Vec<String>) {
    let zscore = weir_cli::udf::build_rust_udf(&repo_root().join("udfs/nab-zscore"))
        .expect("the UDF builds");
    let out = dir.join("embedded");
    let file = dir.join("embedded.yaml");
    std::fs::write(&file, nab_job(zscore.to_str().unwrap(), &out, "")).unwrap();
    let run = weir(
        dir,
        &["run", file.to_str().unwrap(), "-p", "4", "--no-progress"],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let reference = committed(&out);
    assert!(reference.len() > 1000, "{} alerts", reference.len());
    (zscore, reference)
}

/// Uploads `wasm` with `weir udf upload`; its artifact id.
fn upload(dir: &Path, url: &str, wasm: &Path) -> String {
    let out = weir(
        dir,
        &["udf", "upload", wasm.to_str().unwrap(), "--jobmanager", url],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Submits `job` with `weir submit -p 4`; the job id.
fn submit(dir: &Path, url: &str, name: &str, job: &str) -> String {
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(&file, job).unwrap();
    let out = weir(
        dir,
        &[
            "submit",
            file.to_str().unwrap(),
            "-p",
            "4",
            "--jobmanager",
            url,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// TaskManagers of 2 slots on `hosts` (each named after its host), once
/// all registered.
fn registered_taskmanagers(dir: &Path, rpc: &str, hosts: &[&str], certs: &Path) -> Vec<Process> {
    let mut tms: Vec<Process> = hosts
        .iter()
        .map(|host| taskmanager(dir, host, rpc, host, 2, certs))
        .collect();
    for tm in &mut tms {
        tm.wait_for("registered as", Duration::from_secs(10));
    }
    tms
}

/// Waits (up to 30 s) until `n` checkpoints of the job completed.
fn wait_checkpoints(url: &str, job: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(url, &format!("/v1/jobs/{job}/checkpoints"))["completed"].as_u64() < Some(n) {
        assert!(
            Instant::now() < deadline,
            "{n} checkpoints did not complete"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls the job until `pred` holds on its details, up to `limit`.
fn wait_job(url: &str, id: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let job = get(url, &format!("/v1/jobs/{id}"));
        if pred(&job) {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} not there within {limit:?}: {job}\nexceptions: {}",
            get(url, &format!("/v1/jobs/{id}/exceptions"))
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_nab_job_on_three_taskmanagers_equals_the_embedded_run() {
    let dir = tempfile::tempdir().unwrap();
    let (zscore, reference) = nab_reference(dir.path());
    let certs = cert_init(dir.path(), "certs");
    let (_jm, url, rpc) = jobmanager_with(
        dir.path(),
        &certs,
        0,
        0,
        &["taskmanager.numberOfTaskSlots=0"],
    );
    let _tms = registered_taskmanagers(
        dir.path(),
        &rpc,
        &["127.0.0.1", "127.0.0.2", "127.0.0.3"],
        &certs,
    );
    let id = upload(dir.path(), &url, &zscore);
    let out = dir.path().join("cluster");
    let job = submit(
        dir.path(),
        &url,
        "nab",
        &nab_job(&format!("artifact:{id}"), &out, ""),
    );
    let details = wait_job(&url, &job, Duration::from_secs(60), |j| {
        j["state"] == "FINISHED" || j["state"] == "FAILED"
    });
    assert_eq!(details["state"], "FINISHED", "{details}");
    assert_eq!(committed(&out), reference);
    // The TaskManagers' counters reached the JobManager, each once.
    let vertex = |id: &str| {
        details["vertices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no vertex {id}: {details}"))
    };
    let rows = csv_rows(&nab());
    assert_eq!(vertex("readings")["write-records"], rows, "{details}");
    assert_eq!(vertex("zscore")["read-records"], rows, "{details}");
    assert_eq!(vertex("zscore")["write-records"], reference.len() as u64);
    assert_eq!(vertex("alerts")["read-records"], reference.len() as u64);
    assert_eq!(vertex("zscore")["current-watermark"], i64::MAX, "{details}");
    // Its 4 slots spread over the 3 TaskManagers and came back.
    let free: u64 = get(&url, "/v1/taskmanagers")["taskmanagers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tm| tm["slots-free"].as_u64().unwrap())
        .sum();
    assert_eq!(free, 6);
}

#[test]
fn a_keyed_window_job_on_taskmanagers_equals_the_embedded_run() {
    let dir = tempfile::tempdir().unwrap();
    let job = |out: &Path| {
        format!(
            "name: nexmark-counts\nsources:\n  - id: bids\n    type: nexmark\n    events: 300000\n    seed: 7\n    kinds: [bid]\n    watermarks: {{ max_out_of_orderness: 0ms }}\noperators:\n  - id: counts\n    input: {{ from: bids, key: auction }}\n    partition: key_by\n    window: {{ type: tumbling, size: 10s, key_field: auction }}\n    aggregate: [{{ fn: count }}, {{ fn: max, field: price }}]\nsinks:\n  - {{ id: out, input: counts, type: file, path: {} }}\n",
            out.display()
        )
    };
    let embedded = dir.path().join("embedded");
    let reference = embedded_run(dir.path(), &job(&embedded), &embedded);
    assert!(reference.len() > 1000, "{} windows", reference.len());

    let certs = cert_init(dir.path(), "certs");
    let (_jm, url, rpc) = jobmanager_with(
        dir.path(),
        &certs,
        0,
        0,
        &["taskmanager.numberOfTaskSlots=0"],
    );
    let _tms = registered_taskmanagers(dir.path(), &rpc, &["127.0.0.2", "127.0.0.3"], &certs);
    let out = dir.path().join("cluster");
    let id = submit(dir.path(), &url, "counts", &job(&out));
    let details = wait_job(&url, &id, Duration::from_secs(60), |j| {
        j["state"] == "FINISHED" || j["state"] == "FAILED"
    });
    assert_eq!(details["state"], "FINISHED", "{details}");
    assert_eq!(committed(&out), reference);
}

#[test]
fn nexmark_q1_on_taskmanagers_equals_the_embedded_run() {
    let dir = tempfile::tempdir().unwrap();
    let q1 = weir_cli::udf::build_rust_udf(&repo_root().join("udfs/nexmark-q1"))
        .expect("the UDF builds");
    let example = std::fs::read_to_string(repo_root().join("examples/nexmark/q1.yaml")).unwrap();
    let job = |udf: &str, out: &Path| {
        example
            .replace("events: 1000000", "events: 200000")
            .replace("../../udfs/nexmark-q1", udf)
            .replace("path: out/nexmark/q1", &format!("path: {}", out.display()))
    };
    let embedded = dir.path().join("embedded");
    let reference = embedded_run(dir.path(), &job(q1.to_str().unwrap(), &embedded), &embedded);
    assert!(reference.len() > 100_000, "{} bids", reference.len());

    let certs = cert_init(dir.path(), "certs");
    let (_jm, url, rpc) = jobmanager_with(
        dir.path(),
        &certs,
        0,
        0,
        &["taskmanager.numberOfTaskSlots=0"],
    );
    let _tms = registered_taskmanagers(dir.path(), &rpc, &["127.0.0.2", "127.0.0.3"], &certs);
    let artifact = upload(dir.path(), &url, &q1);
    let out = dir.path().join("cluster");
    let id = submit(
        dir.path(),
        &url,
        "q1",
        &job(&format!("artifact:{artifact}"), &out),
    );
    let details = wait_job(&url, &id, Duration::from_secs(60), |j| {
        j["state"] == "FINISHED" || j["state"] == "FAILED"
    });
    assert_eq!(details["state"], "FINISHED", "{details}");
    assert_eq!(committed(&out), reference);
}

#[test]
fn a_killed_jobmanager_resumes_its_job_on_the_taskmanagers_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (zscore, reference) = nab_reference(dir.path());
    let certs = cert_init(dir.path(), "certs");
    let settings = [
        "taskmanager.numberOfTaskSlots=0",
        "execution.checkpointing.interval=200ms",
        "restart-strategy.type=fixed-delay",
        "restart-strategy.fixed-delay.attempts=3",
        "restart-strategy.fixed-delay.delay=200ms",
    ];
    let (jm, url, rpc) = jobmanager_with(dir.path(), &certs, 0, 0, &settings);
    let mut tms = registered_taskmanagers(dir.path(), &rpc, &["127.0.0.2", "127.0.0.3"], &certs);
    let artifact = upload(dir.path(), &url, &zscore);
    let out = dir.path().join("cluster");
    let job = submit(
        dir.path(),
        &url,
        "nab-paced",
        &nab_job(
            &format!("artifact:{artifact}"),
            &out,
            "    records_per_second: 60000\n",
        ),
    );
    wait_checkpoints(&url, &job, 2);
    drop(jm); // SIGKILL
    let port = |addr: &str| addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let (_jm, url2, _) = jobmanager_with(dir.path(), &certs, port(&url), port(&rpc), &settings);
    assert_eq!(url2, url);
    // The TaskManagers come back by themselves and the job resumes from
    // its latest checkpoint on them.
    for tm in &mut tms {
        tm.wait_for("registered as", Duration::from_secs(15));
    }
    let details = wait_job(&url, &job, Duration::from_secs(90), |j| {
        j["state"] == "FINISHED" || j["state"] == "FAILED"
    });
    assert_eq!(details["state"], "FINISHED", "{details}");
    assert_eq!(committed(&out), reference);
}

#[test]
fn a_killed_taskmanager_restarts_the_job_and_the_output_stays_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (zscore, reference) = nab_reference(dir.path());
    let certs = cert_init(dir.path(), "certs");
    let (mut jm, url, rpc) = jobmanager_with(
        dir.path(),
        &certs,
        0,
        0,
        &[
            "taskmanager.numberOfTaskSlots=0",
            "execution.checkpointing.interval=200ms",
            "restart-strategy.type=fixed-delay",
            "restart-strategy.fixed-delay.attempts=3",
            "restart-strategy.fixed-delay.delay=200ms",
        ],
    );
    // Exactly the 4 slots the job needs.
    let tms = registered_taskmanagers(dir.path(), &rpc, &["127.0.0.2", "127.0.0.3"], &certs);
    let id = upload(dir.path(), &url, &zscore);
    let out = dir.path().join("cluster");
    // Paced (about 6 s at parallelism 4), so the kill lands mid-job.
    let job = submit(
        dir.path(),
        &url,
        "nab-paced",
        &nab_job(
            &format!("artifact:{id}"),
            &out,
            "    records_per_second: 60000\n",
        ),
    );
    wait_checkpoints(&url, &job, 2);
    tms[0].signal("-KILL");
    // Two slots are left: the job waits for more, then a new TaskManager
    // joins and it restarts there from its latest checkpoint.
    jm.wait_for(
        "waits for slots: it needs 4, 2 of 2 are free",
        Duration::from_secs(10),
    );
    let waiting = get(&url, &format!("/v1/jobs/{job}"));
    assert!(
        waiting["waiting"]
            .as_str()
            .is_some_and(|w| w.contains("it needs 4, 2 of 2 are free on 1 TaskManager")),
        "{waiting}"
    );
    assert_eq!(waiting["state"], "RESTARTING", "{waiting}");
    let mut late = taskmanager(dir.path(), "late", &rpc, "127.0.0.4", 2, &certs);
    late.wait_for("registered as", Duration::from_secs(10));
    let details = wait_job(&url, &job, Duration::from_secs(90), |j| {
        j["state"] == "FINISHED" || j["state"] == "FAILED"
    });
    assert_eq!(details["state"], "FINISHED", "{details}");
    let exceptions = get(&url, &format!("/v1/jobs/{job}/exceptions"));
    let first = &exceptions["exceptions"][0];
    assert_eq!(first["cause"], "io", "{exceptions}");
    assert!(
        first["message"].as_str().unwrap().contains("was lost"),
        "{exceptions}"
    );
    // Nothing lost, nothing duplicated.
    assert_eq!(committed(&out), reference);
}

/// The newest completed checkpoint (`chk-N` with a `_metadata`) under `root`.
fn newest_checkpoint(root: &Path) -> PathBuf {
    let mut found: Vec<(u64, PathBuf)> = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for path in std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
        {
            let id = path
                .file_name()
                .and_then(|n| n.to_str()?.strip_prefix("chk-")?.parse().ok());
            match id {
                Some(id) if path.join("_metadata").exists() => found.push((id, path)),
                _ if path.is_dir() => dirs.push(path),
                _ => {}
            }
        }
    }
    found.into_iter().max().expect("a completed checkpoint").1
}

#[test]
fn a_damaged_checkpoint_found_on_a_taskmanager_falls_back_to_an_older_one_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (zscore, reference) = nab_reference(dir.path());
    let certs = cert_init(dir.path(), "certs");
    let checkpoints = dir.path().join("checkpoints");
    let (mut jm, url, rpc) = jobmanager_with(
        dir.path(),
        &certs,
        0,
        0,
        &[
            "taskmanager.numberOfTaskSlots=0",
            "execution.checkpointing.interval=200ms",
            &format!("state.checkpoints.dir={}", checkpoints.display()),
            "restart-strategy.type=fixed-delay",
            "restart-strategy.fixed-delay.attempts=3",
            "restart-strategy.fixed-delay.delay=200ms",
        ],
    );
    let mut tms = registered_taskmanagers(dir.path(), &rpc, &["127.0.0.2", "127.0.0.3"], &certs);
    let id = upload(dir.path(), &url, &zscore);
    let out = dir.path().join("cluster");
    let job = submit(
        dir.path(),
        &url,
        "nab-paced",
        &nab_job(
            &format!("artifact:{id}"),
            &out,
            "    records_per_second: 60000\n",
        ),
    );
    wait_checkpoints(&url, &job, 3);
    // With every TaskManager gone no checkpoint completes: the newest one
    // stays the one damaged here, which the next attempt restores.
    for tm in &mut tms {
        tm.signal("-KILL");
    }
    jm.wait_for("waits for slots", Duration::from_secs(10));
    let newest = newest_checkpoint(&checkpoints);
    let state = std::fs::read_dir(&newest)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "state"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a state file");
    let mut bytes = std::fs::read(&state).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x04;
    std::fs::write(&state, bytes).unwrap();

    let _late = registered_taskmanagers(dir.path(), &rpc, &["127.0.0.4", "127.0.0.5"], &certs);
    let details = wait_job(&url, &job, Duration::from_secs(90), |j| {
        j["state"] == "FINISHED" || j["state"] == "FAILED"
    });
    assert_eq!(details["state"], "FINISHED", "{details}");
    let exceptions = get(&url, &format!("/v1/jobs/{job}/exceptions"));
    let messages: Vec<&str> = exceptions["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    let name = newest.file_name().unwrap().to_str().unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("is damaged") && m.contains("CRC-32")),
        "{name}: {exceptions}"
    );
    jm.wait_for("damaged", Duration::from_secs(5));
    // Nothing lost, nothing duplicated: the sinks dropped what was
    // committed after the older checkpoint.
    assert_eq!(committed(&out), reference);
}

/// Network namespaces joined by a bridge, deleted on drop.
struct Hosts {
    bridge: String,
    namespaces: Vec<String>,
}

impl Hosts {
    /// `n` namespaces with addresses 10.231.7.1 to .n on a new bridge; `Err`
    /// with the reason when this machine cannot make them (not root, no
    /// `ip`).
    fn create(n: usize) -> Result<Self, String> {
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("cannot run `ip`: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "`ip {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        let tag = std::process::id() % 100_000;
        let mut hosts = Self {
            bridge: format!("wbr{tag}"),
            namespaces: Vec::new(),
        };
        ip(&["link", "add", &hosts.bridge, "type", "bridge"])?;
        ip(&["link", "set", &hosts.bridge, "up"])?;
        for i in 1..=n {
            let ns = format!("weir{tag}h{i}");
            ip(&["netns", "add", &ns])?;
            hosts.namespaces.push(ns.clone());
            let (outer, inner) = (format!("wv{tag}h{i}"), format!("wp{tag}h{i}"));
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &inner, "netns", &ns])?;
            ip(&["link", "set", &outer, "master", &hosts.bridge])?;
            ip(&["link", "set", &outer, "up"])?;
            let address = format!("10.231.7.{i}/24");
            ip(&[
                "netns", "exec", &ns, "ip", "addr", "add", &address, "dev", &inner,
            ])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", &inner, "up"])?;
            ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }

    /// `ip netns exec <host i> ...args`.
    fn command(&self, i: usize, args: &[String]) -> Vec<String> {
        let mut all = vec![
            "netns".to_string(),
            "exec".into(),
            self.namespaces[i - 1].clone(),
        ];
        all.extend(args.iter().cloned());
        all
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
        let _ = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .status();
    }
}

/// `weir ARGS` run on host `i` of `hosts`; its output.
fn weir_on(hosts: &Hosts, i: usize, dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec![env!("CARGO_BIN_EXE_weir").to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    Command::new("ip")
        .args(hosts.command(i, &all))
        .current_dir(dir)
        .env_remove("WEIR_JOBMANAGER")
        .output()
        .expect("ip runs")
}

#[test]
fn a_jobmanager_and_two_taskmanagers_on_separate_network_hosts() {
    let hosts = match Hosts::create(3) {
        Ok(hosts) => hosts,
        Err(reason) => {
            eprintln!("skipped: separate network hosts need root and iproute2 ({reason})");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let (zscore, reference) = nab_reference(dir.path());
    let certs = cert_init(dir.path(), "certs");
    let weir_bin = env!("CARGO_BIN_EXE_weir").to_string();
    let mut jm_args = vec![
        weir_bin.clone(),
        "jobmanager".into(),
        "--certs".into(),
        certs.display().to_string(),
        "-Drest.port=0".into(),
        "-Djobmanager.rpc.address=10.231.7.1".into(),
        "-Djobmanager.rpc.port=0".into(),
        "-Dtaskmanager.numberOfTaskSlots=0".into(),
        format!(
            "-Dhigh-availability.storageDir={}",
            dir.path().join("ha").display()
        ),
    ];
    jm_args.extend(HEARTBEAT.iter().map(|s| s.to_string()));
    let mut jm =
        Process::start_program("jobmanager", dir.path(), "ip", &hosts.command(1, &jm_args));
    let line = jm.wait_for("listening on", Duration::from_secs(30));
    let url = line
        .split("listening on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    let line = jm.wait_for("cluster endpoint on", Duration::from_secs(10));
    let rpc = line
        .split("cluster endpoint on ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(rpc.starts_with("10.231.7.1:"), "{rpc}");
    let mut tms = Vec::new();
    for i in [2, 3] {
        let args = vec![
            weir_bin.clone(),
            "taskmanager".into(),
            "--jobmanager".into(),
            rpc.clone(),
            "--host".into(),
            format!("10.231.7.{i}"),
            "--slots".into(),
            "2".into(),
            "--certs".into(),
            certs.display().to_string(),
        ];
        let mut tm = Process::start_program(
            &format!("tm-{i}"),
            dir.path(),
            "ip",
            &hosts.command(i, &args),
        );
        tm.wait_for("registered as", Duration::from_secs(10));
        tms.push(tm);
    }
    let upload = weir_on(
        &hosts,
        1,
        dir.path(),
        &[
            "udf",
            "upload",
            zscore.to_str().unwrap(),
            "--jobmanager",
            &url,
        ],
    );
    assert!(
        upload.status.success(),
        "{}",
        String::from_utf8_lossy(&upload.stderr)
    );
    let artifact = String::from_utf8(upload.stdout).unwrap().trim().to_string();
    let out = dir.path().join("cluster");
    let file = dir.path().join("nab.yaml");
    std::fs::write(&file, nab_job(&format!("artifact:{artifact}"), &out, "")).unwrap();
    let submit = weir_on(
        &hosts,
        1,
        dir.path(),
        &[
            "submit",
            file.to_str().unwrap(),
            "-p",
            "4",
            "--jobmanager",
            &url,
        ],
    );
    assert!(
        submit.status.success(),
        "{}",
        String::from_utf8_lossy(&submit.stderr)
    );
    let job = String::from_utf8(submit.stdout).unwrap().trim().to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = weir_on(
            &hosts,
            1,
            dir.path(),
            &["status", &job, "--json", "--jobmanager", &url],
        );
        let details: Value = serde_json::from_slice(&status.stdout).unwrap_or(Value::Null);
        if details["state"] == "FINISHED" {
            break;
        }
        assert!(
            details["state"] != "FAILED" && Instant::now() < deadline,
            "{details}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(committed(&out), reference);
    // The TaskManagers were reached at their own hosts.
    let listed = weir_on(
        &hosts,
        1,
        dir.path(),
        &["taskmanagers", "--json", "--jobmanager", &url],
    );
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let mut addresses: Vec<String> = listed["taskmanagers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tm| {
            tm["address"]
                .as_str()
                .unwrap()
                .split(':')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    addresses.sort();
    assert_eq!(addresses, ["10.231.7.2", "10.231.7.3"]);
}
