//! What the JobManager tests share: a `weir jobmanager` child process
//! killed on drop, REST calls through `curl`, building UDFs, and reading
//! committed output.

#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn udf(name: &str) -> PathBuf {
    weir_cli::udf::build_rust_udf(&repo_root().join("udfs").join(name)).expect("UDF builds")
}

pub fn weir(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .env_remove("WEIR_JOBMANAGER")
        .env_remove("WEIR_TOKEN")
        .output()
        .expect("weir runs")
}

/// A running `weir jobmanager`, killed on drop.
pub struct JobManager {
    pub child: Child,
    pub url: String,
}

impl JobManager {
    pub fn start(dir: &Path, defines: &[&str]) -> Self {
        Self::start_with(dir, defines, None).0
    }

    /// A JobManager with a cluster endpoint (certificates in `certs`, made
    /// with `weir cert init`) and no local slots: (it, its QUIC address).
    pub fn start_cluster(dir: &Path, certs: &Path) -> (Self, String) {
        let (jm, rpc) = Self::start_with(
            dir,
            &["taskmanager.numberOfTaskSlots=0", "jobmanager.rpc.port=0"],
            Some(certs),
        );
        (
            jm,
            rpc.expect("the JobManager printed its cluster endpoint"),
        )
    }

    fn start_with(dir: &Path, defines: &[&str], certs: Option<&Path>) -> (Self, Option<String>) {
        let mut args = vec![
            "jobmanager".to_string(),
            "-Drest.port=0".into(),
            format!(
                "-Dhigh-availability.storageDir={}",
                dir.join("ha").display()
            ),
            "-Dtaskmanager.numberOfTaskSlots=4".into(),
        ];
        args.extend(defines.iter().map(|d| format!("-D{d}")));
        if let Some(certs) = certs {
            args.push("--certs".into());
            args.push(certs.display().to_string());
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(&args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weir jobmanager starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (mut url, mut rpc) = (None, None);
        for line in lines.by_ref() {
            let line = line.unwrap();
            eprintln!("[jobmanager] {line}");
            if let Some(rest) = line.split("listening on ").nth(1) {
                url = rest.split_whitespace().next().map(str::to_string);
            }
            if let Some(rest) = line.split("cluster endpoint on ").nth(1) {
                rpc = rest.split_whitespace().next().map(str::to_string);
            }
            if url.is_some() && (certs.is_none() || rpc.is_some()) {
                break;
            }
        }
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("[jobmanager] {line}");
            }
        });
        let url = url.expect("the JobManager printed its address");
        (Self { child, url }, rpc)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for JobManager {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `weir taskmanager`, registered with its JobManager, killed
/// on drop.
pub struct TaskManager {
    pub child: Child,
}

impl TaskManager {
    /// Starts one on `host` (a 127.0.0.x address) with `slots` slots and
    /// waits until it registered at the JobManager's QUIC address `rpc`.
    pub fn start(dir: &Path, rpc: &str, host: &str, slots: u32, certs: &Path) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["taskmanager", "--jobmanager", rpc, "--host", host])
            .args(["--slots", &slots.to_string(), "--certs"])
            .arg(certs)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("weir taskmanager starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut registered = false;
        for line in lines.by_ref() {
            let line = line.unwrap();
            eprintln!("[taskmanager {host}] {line}");
            if line.contains("registered as") {
                registered = true;
                break;
            }
        }
        assert!(registered, "the TaskManager on {host} did not register");
        let host = host.to_string();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                eprintln!("[taskmanager {host}] {line}");
            }
        });
        Self { child }
    }
}

impl Drop for TaskManager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Certificates of a new cluster CA in `dir/certs` (`weir cert init`).
pub fn cert_init(dir: &Path) -> PathBuf {
    let out = weir(dir, &["cert", "init", "certs"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("certs")
}

/// `curl` a route: (status, JSON body).
pub fn curl(method: &str, url: &str, body: Option<&Path>, headers: &[&str]) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-X", method, "-w", "\n%{http_code}", url]);
    for h in headers {
        cmd.args(["-H", h]);
    }
    if let Some(body) = body {
        cmd.args(["--data-binary", &format!("@{}", body.display())]);
    }
    let out = cmd.output().expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (json, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status: u16 = status.trim().parse().unwrap_or(0);
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

pub fn get(jm: &JobManager, path: &str) -> Value {
    let (status, body) = curl("GET", &format!("{}{path}", jm.url), None, &[]);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Waits until the job is in one of `states`; returns its details.
pub fn wait_for(jm: &JobManager, id: &str, states: &[&str], timeout: Duration) -> Value {
    let started = Instant::now();
    loop {
        let job = get(jm, &format!("/v1/jobs/{id}"));
        if states.iter().any(|s| job["state"] == *s) {
            return job;
        }
        assert!(
            started.elapsed() < timeout,
            "job {id} did not reach {states:?} in {timeout:?}: {job}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every committed line under `dir` (`part-*` files), sorted.
pub fn committed(dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        if name.starts_with("part-") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            lines.extend(text.lines().map(str::to_string));
        }
    }
    lines.sort();
    lines
}

pub fn upload(jm: &JobManager, wasm: &Path) -> String {
    let (status, info) = curl(
        "POST",
        &format!("{}/v1/artifacts", jm.url),
        Some(wasm),
        &["Content-Type: application/wasm"],
    );
    assert_eq!(status, 200, "{info}");
    info["id"].as_str().unwrap().to_string()
}

pub fn submit(jm: &JobManager, job: &str, query: &str, dir: &Path) -> String {
    let file = dir.join("submitted.yaml");
    std::fs::write(&file, job).unwrap();
    let (status, answer) = curl(
        "POST",
        &format!("{}/v1/jobs{query}", jm.url),
        Some(&file),
        &["Content-Type: application/yaml"],
    );
    assert_eq!(status, 200, "{answer}");
    answer["jobid"].as_str().unwrap().to_string()
}
