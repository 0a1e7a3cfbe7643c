//! Temporary directories of processes that died without removing them
//! (a `weir run`, JobManager or TaskManager killed with SIGKILL leaves its
//! state and work directories in the system's temporary directory).

/// Removes every entry of the temporary directory whose name `pid_of`
/// maps to a process id that is no longer running, and returns how many it
/// removed. A process is taken as running while `/proc/<pid>` exists;
/// where there is no `/proc`, nothing is removed. This process's own
/// directories are never removed.
pub fn remove_dead_process_dirs(pid_of: impl Fn(&str) -> Option<u32>) -> usize {
    let proc = std::path::Path::new("/proc");
    if !proc.join("self").exists() {
        return 0;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return 0;
    };
    let me = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(&pid_of) else {
            continue;
        };
        if pid != me
            && !proc.join(pid.to_string()).exists()
            && std::fs::remove_dir_all(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// The process id in a `weir run` state directory's name,
/// `weir-<job>-<pid>-<run>-<nanos, 8 hex digits>` (and its JobManager's
/// `...-jobmanager` beside it); `None` for any other name.
pub fn run_dir_pid(name: &str) -> Option<u32> {
    let name = name.strip_suffix("-jobmanager").unwrap_or(name);
    let mut parts = name.rsplitn(4, '-');
    let nanos = parts.next()?;
    let run = parts.next()?;
    let pid = parts.next()?;
    let rest = parts.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (rest.starts_with("weir-")
        && nanos.len() == 8
        && nanos.bytes().all(|b| b.is_ascii_hexdigit())
        && digits(run))
    .then(|| pid.parse().ok())
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dirs_are_told_by_their_names() {
        assert_eq!(run_dir_pid("weir-nab-anomaly-4242-0-0badf00d"), Some(4242));
        assert_eq!(
            run_dir_pid("weir-nab-anomaly-4242-3-0badf00d-jobmanager"),
            Some(4242)
        );
        assert_eq!(run_dir_pid("weir-q-1-2-7-12345678"), Some(2));
        assert_eq!(run_dir_pid("weir-tm-4242"), None);
        assert_eq!(run_dir_pid("weir-nab-4242-0-xyz"), None);
        assert_eq!(run_dir_pid("other-nab-4242-0-0badf00d"), None);
    }

    #[test]
    fn only_dead_processes_dirs_are_removed() {
        // A pid that cannot be running (above the kernel's pid_max).
        let dead = std::env::temp_dir().join("weir-leftover-test-4194399-0-0000abcd");
        let alive = std::env::temp_dir().join(format!(
            "weir-leftover-test-{}-0-0000abcd",
            std::process::id()
        ));
        std::fs::create_dir_all(dead.join("state")).unwrap();
        std::fs::create_dir_all(&alive).unwrap();
        let removed = remove_dead_process_dirs(|n| {
            n.starts_with("weir-leftover-test-")
                .then(|| run_dir_pid(n))
                .flatten()
        });
        assert!(removed >= 1);
        assert!(!dead.exists());
        assert!(alive.exists());
        std::fs::remove_dir_all(&alive).unwrap();
    }
}
