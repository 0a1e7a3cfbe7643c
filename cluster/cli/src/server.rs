//! `weir jobmanager`: the JobManager process (REST API, local slots and
//! the cluster endpoint for TaskManagers),
//! and the text `weir status` prints.

use serde_json::Value;
use weir_jobmanager::{JobManager, JobManagerConfig};

/// Runs a JobManager until SIGTERM or SIGINT; then its running jobs are
/// cancelled (they stay RUNNING in the HA directory, so a JobManager
/// started again on it resumes them from their latest checkpoints).
///
/// # Errors
/// The JobManager cannot start (HA directory, engine) or bind its port.
pub fn serve(config: JobManagerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let cache = Some(crate::cache_root().join("components"));
    let jm = JobManager::start(config.clone(), cache)?;
    let addr = std::net::SocketAddr::new(config.rest_address, config.rest_port);
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(addr))
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (rest.address, rest.port): {e}"))?;
    let bound = listener.local_addr()?;
    let access = if config.auth_token.is_some() {
        "bearer token required"
    } else {
        "no rest.auth.token: loopback only, no authentication"
    };
    // One line a script can wait for (tests read the port from it).
    eprintln!(
        "JobManager listening on http://{bound} ({access}); {} slots; HA directory {}",
        config.slots,
        config.ha_dir.display()
    );
    let cluster = {
        let _runtime = runtime.enter();
        weir_jobmanager::rpc::bind(&jm)
            .map_err(|e| anyhow::anyhow!("cluster endpoint (jobmanager.rpc.port): {e}"))?
    };
    match (&cluster, &config.certs_dir) {
        (Some(endpoint), Some(dir)) => eprintln!(
            "JobManager cluster endpoint on {} (QUIC, mutual TLS with the certificates in {}); heartbeat {} ms, timeout {} ms",
            endpoint.local_addr()?,
            dir.display(),
            config.heartbeat_interval_ms,
            config.heartbeat_timeout_ms
        ),
        _ => eprintln!(
            "no cluster endpoint: TaskManagers can connect only with certificates (create them with `weir cert init DIR`, then start with --certs DIR)"
        ),
    }
    // One signal stops both servers.
    let (stop, stopped) = tokio::sync::watch::channel(false);
    runtime.spawn(async move {
        crate::terminated().await;
        let _ = stop.send(true);
    });
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        // An error means the sender is gone: stop too.
        let _ = rx.wait_for(|stop| *stop).await;
    };
    if let Some(endpoint) = cluster {
        runtime.spawn(weir_jobmanager::rpc::serve(
            jm.clone(),
            endpoint,
            until_stopped(stopped.clone()),
        ));
    }
    runtime.block_on(weir_jobmanager::serve(
        jm.clone(),
        listener,
        until_stopped(stopped),
    ))?;
    eprintln!("JobManager stopping: cancelling running jobs (they resume at the next start)");
    jm.shutdown(std::time::Duration::from_secs(30));
    Ok(())
}

/// `weir status` as text: the job, its vertices and counters.
pub fn format_status(job: &Value) -> String {
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let mut out = format!(
        "job {} `{}`: {}\n",
        s(&job["jid"]),
        s(&job["name"]),
        s(&job["state"])
    );
    if let Some(waiting) = job["waiting"].as_str() {
        out.push_str(&format!("  {waiting}\n"));
    }
    out.push_str(&format!(
        "  duration {:.1} s, attempt {}, {} slot(s)\n",
        job["duration"].as_f64().unwrap_or(0.0) / 1000.0,
        job["attempt"],
        job["slots"]
    ));
    let m = &job["metrics"];
    out.push_str(&format!(
        "  records read {}, written {}, errors {}, restarts {}\n",
        m["read-records"], m["write-records"], m["record-errors"], m["restarts"]
    ));
    if let Some(sp) = job["savepoint"].as_str() {
        out.push_str(&format!("  savepoint {sp}\n"));
    }
    let rows: Vec<Vec<String>> = job["vertices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            vec![
                s(&v["id"]),
                s(&v["kind"]),
                v["parallelism"].to_string(),
                v.get("current-watermark").map(s).unwrap_or_default(),
            ]
        })
        .collect();
    out.push_str(&crate::client::table(
        &["VERTEX", "KIND", "PARALLELISM", "WATERMARK"],
        &rows,
    ));
    out
}
