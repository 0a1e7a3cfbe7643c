//! Job-wide counters, read by progress displays while the job runs.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use weir_protocol::task::{MetricsSnapshot, VertexSnapshot};

/// How many record-level problems are kept verbatim for the summary.
const KEPT_PROBLEMS: usize = 20;

/// Counters of a running job. All counts are records.
#[derive(Debug)]
pub struct JobMetrics {
    started: Instant,
    records_read: AtomicU64,
    records_written: AtomicU64,
    record_errors: AtomicU64,
    dead_lettered: AtomicU64,
    late_dropped: AtomicU64,
    first_processed: OnceLock<Duration>,
    problems: Mutex<Vec<String>>,
    sink_watermarks: Mutex<std::collections::BTreeMap<String, i64>>,
    checkpoints: Mutex<weir_checkpoint::CheckpointStatsHistory>,
    restarts: AtomicU64,
    vertices: Mutex<std::collections::BTreeMap<String, Arc<VertexMetrics>>>,
}

/// Counters of one vertex, over all its subtasks and attempts (Flink's
/// `numRecordsIn`, `numRecordsOut`, `currentInputWatermark` and
/// `backPressuredTimeMsPerSecond`, the last as a total).
#[derive(Debug)]
pub struct VertexMetrics {
    records_in: AtomicU64,
    records_out: AtomicU64,
    /// Time its subtasks waited for room in full output queues, ns.
    back_pressured_ns: Arc<AtomicU64>,
    /// The watermark (ms) each subtask last passed on; `i64::MIN`: none yet.
    watermarks: Vec<AtomicI64>,
}

impl VertexMetrics {
    fn new(parallelism: u32) -> Self {
        Self {
            records_in: AtomicU64::new(0),
            records_out: AtomicU64::new(0),
            back_pressured_ns: Arc::new(AtomicU64::new(0)),
            watermarks: (0..parallelism).map(|_| AtomicI64::new(i64::MIN)).collect(),
        }
    }

    /// Records the vertex received.
    pub fn records_in(&self) -> u64 {
        self.records_in.load(Ordering::Relaxed)
    }

    /// Records the vertex emitted (main and side outputs).
    pub fn records_out(&self) -> u64 {
        self.records_out.load(Ordering::Relaxed)
    }

    /// Time its subtasks spent waiting for room in full output queues
    /// (back-pressure from downstream), summed over subtasks, in ns.
    pub fn back_pressured_ns(&self) -> u64 {
        self.back_pressured_ns.load(Ordering::Relaxed)
    }

    /// The lowest watermark (ms) over its subtasks; `None` until every
    /// subtask passed one on.
    pub fn current_watermark(&self) -> Option<i64> {
        let low = self
            .watermarks
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .min()?;
        (low != i64::MIN).then_some(low)
    }

    pub(crate) fn add_in(&self, n: usize) {
        self.records_in.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_out(&self, n: usize) {
        self.records_out.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_watermark(&self, subtask: u32, watermark: i64) {
        if let Some(w) = self.watermarks.get(subtask as usize) {
            w.store(watermark, Ordering::Relaxed);
        }
    }

    pub(crate) fn back_pressure_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.back_pressured_ns)
    }
}

impl Default for JobMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl JobMetrics {
    /// Fresh counters; the clock starts now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            records_read: AtomicU64::new(0),
            records_written: AtomicU64::new(0),
            record_errors: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            late_dropped: AtomicU64::new(0),
            first_processed: OnceLock::new(),
            problems: Mutex::new(Vec::new()),
            sink_watermarks: Mutex::new(std::collections::BTreeMap::new()),
            checkpoints: Mutex::new(weir_checkpoint::CheckpointStatsHistory::default()),
            restarts: AtomicU64::new(0),
            vertices: Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// The counters of vertex `id` (at `parallelism`), created on first use.
    /// A later attempt at another parallelism starts its watermarks afresh
    /// and keeps the counts.
    pub(crate) fn vertex(&self, id: &str, parallelism: u32) -> Arc<VertexMetrics> {
        let mut vertices = self.vertices.lock().unwrap_or_else(|e| e.into_inner());
        let entry = vertices
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(VertexMetrics::new(parallelism)));
        if entry.watermarks.len() != parallelism as usize {
            let fresh = VertexMetrics::new(parallelism);
            fresh.add_in(entry.records_in() as usize);
            fresh.add_out(entry.records_out() as usize);
            fresh
                .back_pressured_ns
                .store(entry.back_pressured_ns(), Ordering::Relaxed);
            *entry = Arc::new(fresh);
        }
        Arc::clone(entry)
    }

    /// Every vertex's counters so far, by vertex id.
    pub fn vertices(&self) -> std::collections::BTreeMap<String, Arc<VertexMetrics>> {
        self.vertices.lock().map(|v| v.clone()).unwrap_or_default()
    }

    /// Records read by all sources.
    pub fn records_read(&self) -> u64 {
        self.records_read.load(Ordering::Relaxed)
    }

    /// Records written by all sinks.
    pub fn records_written(&self) -> u64 {
        self.records_written.load(Ordering::Relaxed)
    }

    /// Records skipped as malformed or failed by a UDF's per-record error.
    pub fn record_errors(&self) -> u64 {
        self.record_errors.load(Ordering::Relaxed)
    }

    /// Time from the start of the job to the first batch an operator or sink finished.
    pub fn first_record_latency(&self) -> Option<Duration> {
        self.first_processed.get().copied()
    }

    /// Time since the job started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The first few record-level problems, verbatim.
    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// The latest watermark each sink subtask (`sink#index`) received, in ms.
    pub fn sink_watermarks(&self) -> std::collections::BTreeMap<String, i64> {
        self.sink_watermarks
            .lock()
            .map(|w| w.clone())
            .unwrap_or_default()
    }

    pub(crate) fn record_watermark(&self, sink_subtask: String, watermark: i64) {
        if let Ok(mut w) = self.sink_watermarks.lock() {
            w.insert(sink_subtask, watermark);
        }
    }

    /// Bad records written to a dead-letter directory (they count as
    /// record errors too).
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }

    /// Counts `n` bad records dead-lettered, as record errors too.
    pub(crate) fn add_dead_lettered(&self, n: u64) {
        self.dead_lettered.fetch_add(n, Ordering::Relaxed);
        self.record_errors.fetch_add(n, Ordering::Relaxed);
    }

    /// Late records dropped by windows without a late output, and by joins.
    pub fn late_dropped(&self) -> u64 {
        self.late_dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn add_late_dropped(&self, n: u64) {
        self.late_dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Statistics of the checkpoints completed so far: counts and a
    /// summary over all, the newest `web.checkpoints.history` in full.
    pub fn checkpoints(&self) -> weir_checkpoint::CheckpointStatsHistory {
        self.checkpoints
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default()
    }

    /// Records a completed checkpoint's statistics, keeping the newest
    /// `keep` in full (`web.checkpoints.history`).
    pub fn record_checkpoint(&self, stats: weir_checkpoint::CheckpointStats, keep: usize) {
        if let Ok(mut c) = self.checkpoints.lock() {
            c.set_capacity(keep);
            c.record(stats);
        }
    }

    /// Times the job restarted after a failure.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// Counts one restart (the JobManager calls it when it redeploys a
    /// failed job).
    pub fn add_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_read(&self, n: usize) {
        self.records_read.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn add_written(&self, n: usize) {
        self.records_written.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn mark_processed(&self) {
        self.first_processed.get_or_init(|| {
            // Benchmarks time recovery up to this line (`WEIR_LOG=info`).
            tracing::info!("first record processed");
            self.started.elapsed()
        });
    }

    /// The counters now, to send elsewhere.
    pub fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            records_read: self.records_read(),
            records_written: self.records_written(),
            record_errors: self.record_errors(),
            dead_lettered: self.dead_lettered(),
            late_dropped: self.late_dropped(),
            processed: self.first_processed.get().is_some(),
            problems: self.problems(),
            sink_watermarks: self.sink_watermarks(),
            vertices: self
                .vertices()
                .into_iter()
                .map(|(id, v)| {
                    let snapshot = VertexSnapshot {
                        parallelism: v.watermarks.len() as u32,
                        records_in: v.records_in(),
                        records_out: v.records_out(),
                        back_pressured_ns: v.back_pressured_ns(),
                        watermarks: v
                            .watermarks
                            .iter()
                            .map(|w| w.load(Ordering::Relaxed))
                            .collect(),
                    };
                    (id, snapshot)
                })
                .collect(),
        }
    }

    /// Adds what `now` counted beyond `before` (an earlier snapshot of the
    /// same executor's counters, or the default) into these counters;
    /// watermarks, sink watermarks and new problems are taken as they are.
    pub fn absorb(&self, now: &MetricsSnapshot, before: &MetricsSnapshot) {
        let delta = |a: u64, b: u64| a.saturating_sub(b);
        self.records_read.fetch_add(
            delta(now.records_read, before.records_read),
            Ordering::Relaxed,
        );
        self.records_written.fetch_add(
            delta(now.records_written, before.records_written),
            Ordering::Relaxed,
        );
        self.record_errors.fetch_add(
            delta(now.record_errors, before.record_errors),
            Ordering::Relaxed,
        );
        self.dead_lettered.fetch_add(
            delta(now.dead_lettered, before.dead_lettered),
            Ordering::Relaxed,
        );
        self.late_dropped.fetch_add(
            delta(now.late_dropped, before.late_dropped),
            Ordering::Relaxed,
        );
        if now.processed {
            self.mark_processed();
        }
        if let Ok(mut problems) = self.problems.lock() {
            for problem in now.problems.iter().skip(before.problems.len()) {
                if problems.len() < KEPT_PROBLEMS {
                    problems.push(problem.clone());
                }
            }
        }
        if let Ok(mut sinks) = self.sink_watermarks.lock() {
            sinks.extend(now.sink_watermarks.iter().map(|(k, v)| (k.clone(), *v)));
        }
        let none = VertexSnapshot::default();
        for (id, v) in &now.vertices {
            let was = before.vertices.get(id).unwrap_or(&none);
            let vertex = self.vertex(id, v.parallelism);
            vertex.add_in(delta(v.records_in, was.records_in) as usize);
            vertex.add_out(delta(v.records_out, was.records_out) as usize);
            vertex.back_pressured_ns.fetch_add(
                delta(v.back_pressured_ns, was.back_pressured_ns),
                Ordering::Relaxed,
            );
            for (subtask, watermark) in v.watermarks.iter().enumerate() {
                if *watermark != i64::MIN {
                    vertex.set_watermark(subtask as u32, *watermark);
                }
            }
        }
    }

    /// Counts one record-level problem and keeps its description.
    pub(crate) fn record_problem(&self, description: String) {
        let n = self.record_errors.fetch_add(1, Ordering::Relaxed);
        if (n as usize) < KEPT_PROBLEMS {
            tracing::warn!("{description}");
            if let Ok(mut problems) = self.problems.lock() {
                problems.push(description);
            }
        }
    }
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;

    #[test]
    fn snapshots_of_two_executors_add_up_once() {
        let job = JobMetrics::new();
        let (a, b) = (JobMetrics::new(), JobMetrics::new());
        a.add_read(10);
        a.vertex("map", 2).add_in(10);
        a.vertex("map", 2).set_watermark(0, 5);
        b.add_read(7);
        b.vertex("map", 2).add_in(7);
        b.vertex("map", 2).set_watermark(1, 9);
        let a1 = a.snapshot();
        job.absorb(&a1, &MetricsSnapshot::default());
        job.absorb(&b.snapshot(), &MetricsSnapshot::default());
        a.add_read(5);
        a.vertex("map", 2).add_in(5);
        a.record_problem("bad line 3".into());
        // The second snapshot of `a` adds only what changed.
        job.absorb(&a.snapshot(), &a1);
        assert_eq!(job.records_read(), 22);
        assert_eq!(job.record_errors(), 1);
        assert_eq!(job.problems(), vec!["bad line 3".to_string()]);
        let map = &job.vertices()["map"];
        assert_eq!(map.records_in(), 22);
        assert_eq!(map.current_watermark(), Some(5));
    }
}
