//! The cluster commands: `weir cert init` (development certificates),
//! `weir taskmanager` (the TaskManager process) and the table of
//! `weir taskmanagers`.

use std::path::Path;

use serde_json::Value;
use weir_taskmanager::{SessionEvent, TaskManagerConfig};

/// `weir cert init DIR`: a development CA and a node certificate that every
/// process of the cluster can use; prints what it wrote.
///
/// # Errors
/// The directory already holds certificates, or cannot be written.
pub fn cert_init(dir: &Path, hosts: &[String]) -> anyhow::Result<()> {
    let certs = weir_rpc::init_dev_certs(dir, hosts)?;
    for file in &certs.files {
        eprintln!("wrote {}", file.display());
    }
    eprintln!(
        "start every process with --certs {} (the CA key, ca-key.pem, is needed only to sign more certificates: keep it elsewhere in production)",
        dir.display()
    );
    Ok(())
}

/// Runs a TaskManager until SIGTERM or SIGINT.
///
/// # Errors
/// Its certificates are unusable, the JobManager refuses it (or its
/// certificate), or its address cannot be bound.
pub fn taskmanager(config: TaskManagerConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    eprintln!(
        "TaskManager {} with {} slots, registering with the JobManager at {}",
        config.host,
        config.slots,
        config.jobmanager()
    );
    let report = |event: SessionEvent| match event {
        // One line a script can wait for.
        SessionEvent::Registered { id, jobmanager } => {
            eprintln!("TaskManager registered as {id} with the JobManager at {jobmanager}");
        }
        SessionEvent::Disconnected { reason, retry_in } => eprintln!(
            "TaskManager: not connected to the JobManager ({reason}); retrying in {} ms",
            retry_in.as_millis()
        ),
    };
    runtime.block_on(weir_taskmanager::run(
        config,
        crate::cache_root(),
        report,
        crate::terminated(),
    ))?;
    eprintln!("TaskManager stopped");
    Ok(())
}

/// `weir taskmanagers` as a table: id, host, address, slots, last
/// heartbeat.
pub fn format_taskmanagers(answer: &Value) -> String {
    let rows: Vec<Vec<String>> = answer["taskmanagers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|tm| {
            let s = |k: &str| tm[k].as_str().unwrap_or_default().to_string();
            vec![
                s("id"),
                s("host"),
                s("address"),
                format!("{}/{}", tm["slots-free"], tm["slots-total"]),
                format!("{} ms ago", tm["last-heartbeat-ago-ms"]),
            ]
        })
        .collect();
    crate::client::table(
        &["ID", "HOST", "ADDRESS", "SLOTS FREE/TOTAL", "HEARTBEAT"],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taskmanager_table() {
        let answer = serde_json::json!({"taskmanagers": [
            {"id": "local", "host": "127.0.0.1", "address": "in-process", "slots-total": 2, "slots-free": 1, "registered-ms": 0, "last-heartbeat-ago-ms": 0},
            {"id": "tm-1-127.0.0.2", "host": "127.0.0.2", "address": "127.0.0.2:40000", "slots-total": 4, "slots-free": 4, "registered-ms": 0, "last-heartbeat-ago-ms": 120}
        ]});
        let table = format_taskmanagers(&answer);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[2].starts_with("tm-1-127.0.0.2"), "{table}");
        assert!(lines[2].contains("4/4"), "{table}");
        assert!(lines[2].contains("120 ms ago"), "{table}");
    }
}
