//! Sinks.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use weir_types::Record;

use crate::ConnectorError;

/// Where records leave the job.
///
/// A transactional sink takes part in checkpoints as Flink's two-phase
/// commit sinks do: [`Sink::pre_commit`] at checkpoint barrier `n` seals
/// what was written since the previous barrier, and [`Sink::commit`] makes
/// it visible once checkpoint `n` completed. The default methods do
/// nothing (the sink is not transactional).
pub trait Sink: Send {
    /// Writes records, in order.
    ///
    /// # Errors
    /// I/O failures.
    fn write(&mut self, records: &[Record]) -> Result<(), ConnectorError>;
    /// Flushes everything written; called once at end of input.
    ///
    /// # Errors
    /// I/O failures.
    fn finish(&mut self) -> Result<(), ConnectorError>;
    /// Checkpoint barrier `checkpoint` passed the sink: seal everything
    /// written so far as that checkpoint's pending output.
    ///
    /// # Errors
    /// I/O failures (the checkpoint is declined).
    fn pre_commit(&mut self, checkpoint: u64) -> Result<(), ConnectorError> {
        let _ = checkpoint;
        Ok(())
    }
    /// Checkpoint `completed` completed: publish the pending output of it
    /// and of every earlier checkpoint.
    ///
    /// # Errors
    /// I/O failures.
    fn commit(&mut self, completed: u64) -> Result<(), ConnectorError> {
        let _ = completed;
        Ok(())
    }
}

/// What a file sink directory holds and what a (re)started job does with it.
///
/// Names follow Flink's FileSink: `part-<subtask>.jsonl` without
/// checkpoints; with checkpoints `.part-<subtask>.inprogress` while being
/// written, `.part-<subtask>-<checkpoint>.pending` once sealed at a barrier,
/// and `part-<subtask>-<checkpoint, 8 digits>.jsonl` once committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkStart {
    /// A fresh run: every part file (of any kind) from earlier runs goes.
    Fresh,
    /// Resuming from completed checkpoint `n`: pending files of checkpoints
    /// up to `n` are committed (the crash came between completion and
    /// commit), everything written after `n` (in-progress files, later
    /// pending or committed files) is deleted, earlier committed files stay.
    Restore(u64),
}

/// A part file name, parsed: its kind and the subtask that wrote it.
#[derive(Debug, PartialEq, Eq)]
enum PartFile {
    /// `part-<s>.jsonl` (a run without checkpoints).
    Plain,
    /// `.part-<s>.inprogress`.
    InProgress,
    /// `.part-<s>-<n>.pending`.
    Pending { checkpoint: u64 },
    /// `part-<s>-<n>.jsonl`.
    Committed { checkpoint: u64 },
}

fn parse_part_name(name: &str) -> Option<(u32, PartFile)> {
    if let Some(rest) = name.strip_prefix(".part-") {
        if let Some(s) = rest.strip_suffix(".inprogress") {
            return Some((s.parse().ok()?, PartFile::InProgress));
        }
        let (s, n) = rest.strip_suffix(".pending")?.split_once('-')?;
        return Some((
            s.parse().ok()?,
            PartFile::Pending {
                checkpoint: n.parse().ok()?,
            },
        ));
    }
    let rest = name.strip_prefix("part-")?.strip_suffix(".jsonl")?;
    Some(match rest.split_once('-') {
        None => (rest.parse().ok()?, PartFile::Plain),
        Some((s, n)) => (
            s.parse().ok()?,
            PartFile::Committed {
                checkpoint: n.parse().ok()?,
            },
        ),
    })
}

fn pending_name(subtask: u32, checkpoint: u64) -> String {
    format!(".part-{subtask}-{checkpoint}.pending")
}

fn committed_name(subtask: u32, checkpoint: u64) -> String {
    format!("part-{subtask}-{checkpoint:08}.jsonl")
}

/// Creates `dir` and puts its part files in order for a run starting as
/// `start` (see [`SinkStart`]), all subtasks' files.
///
/// # Errors
/// When the directory cannot be created or cleaned.
pub fn prepare_file_sink_dir(dir: &Path, start: SinkStart) -> Result<(), ConnectorError> {
    prepare_parts(dir, start, |_| true)
}

/// [`prepare_file_sink_dir`] for the files subtask `subtask` of
/// `parallelism` owns: its own, and for subtask 0 those of subtasks at or
/// past `parallelism` (a run with fewer subtasks than the last). Each
/// subtask prepares its part where it runs, so a sink directory on a
/// TaskManager's own disk is put in order there, not on the JobManager's.
///
/// # Errors
/// When the directory cannot be created or cleaned.
pub fn prepare_file_sink_part(
    dir: &Path,
    start: SinkStart,
    subtask: u32,
    parallelism: u32,
) -> Result<(), ConnectorError> {
    prepare_parts(dir, start, |s| {
        s == subtask || (subtask == 0 && s >= parallelism)
    })
}

fn prepare_parts(
    dir: &Path,
    start: SinkStart,
    owned: impl Fn(u32) -> bool,
) -> Result<(), ConnectorError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConnectorError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((subtask, part)) = parse_part_name(&name) else {
            continue;
        };
        if !owned(subtask) {
            continue;
        }
        let path = entry.path();
        let keep = match (start, part) {
            (SinkStart::Fresh, _) => false,
            (SinkStart::Restore(n), PartFile::Pending { checkpoint }) if checkpoint <= n => {
                let target = dir.join(committed_name(subtask, checkpoint));
                std::fs::rename(&path, &target).map_err(io(&target))?;
                true
            }
            (SinkStart::Restore(n), PartFile::Committed { checkpoint }) => checkpoint <= n,
            (SinkStart::Restore(_), _) => false,
        };
        if !keep {
            std::fs::remove_file(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// JSON lines into `DIR`: straight into `part-<subtask>.jsonl`, or, with
/// checkpoints, through Flink FileSink's in-progress → pending → committed
/// files (see [`SinkStart`]), so that only output covered by a completed
/// checkpoint is ever visible.
pub struct FileSink {
    dir: PathBuf,
    subtask: u32,
    /// The file being written.
    path: PathBuf,
    out: Option<BufWriter<File>>,
    transactional: bool,
    /// Checkpoints whose pending file awaits the commit.
    pending: Vec<u64>,
}

impl FileSink {
    /// Creates the part file of `subtask` in `dir` (see [`prepare_file_sink_dir`]).
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn create(dir: &Path, subtask: u32) -> Result<Self, ConnectorError> {
        let mut sink = Self {
            dir: dir.to_path_buf(),
            subtask,
            path: dir.join(format!("part-{subtask}.jsonl")),
            out: None,
            transactional: false,
            pending: Vec::new(),
        };
        sink.open()?;
        Ok(sink)
    }

    /// A two-phase-commit sink for `subtask` in `dir`: nothing is visible
    /// until [`Sink::commit`]. Files are created on the first write.
    pub fn transactional(dir: &Path, subtask: u32) -> Self {
        Self {
            dir: dir.to_path_buf(),
            subtask,
            path: dir.join(format!(".part-{subtask}.inprogress")),
            out: None,
            transactional: true,
            pending: Vec::new(),
        }
    }

    fn error(&self, path: &Path) -> impl Fn(std::io::Error) -> ConnectorError + 'static {
        let path = path.to_path_buf();
        move |source| ConnectorError::Write {
            path: path.clone(),
            source,
        }
    }

    fn open(&mut self) -> Result<&mut BufWriter<File>, ConnectorError> {
        if self.out.is_none() {
            let file = File::create(&self.path).map_err(self.error(&self.path))?;
            self.out = Some(BufWriter::with_capacity(1 << 16, file));
        }
        match self.out.as_mut() {
            Some(out) => Ok(out),
            None => unreachable!("opened above"),
        }
    }
}

/// A JSON-lines sink that first checks that every value is one valid JSON
/// document (so UTF-8, without a raw newline outside strings): a UDF's
/// malformed output fails the task, naming the sink and where the value
/// came from, instead of reaching the file as it is. The check is
/// UTF-8 and `serde_json`'s full parse, values ignored.
pub struct CheckedJson {
    inner: Box<dyn Sink>,
    sink: String,
    from: String,
}

impl CheckedJson {
    /// Checks what goes into `inner`, the sink `sink` whose input is `from`.
    #[must_use]
    pub fn new(inner: Box<dyn Sink>, sink: &str, from: &str) -> Self {
        Self {
            inner,
            sink: sink.to_string(),
            from: from.to_string(),
        }
    }
}

/// Whether `value` is one JSON document, and if not why.
///
/// # Errors
/// serde_json's message (with line and column).
pub fn check_json(value: &[u8]) -> Result<(), String> {
    // serde_json skips strings it ignores without checking their UTF-8.
    std::str::from_utf8(value).map_err(|e| format!("not UTF-8: {e}"))?;
    serde_json::from_slice::<serde::de::IgnoredAny>(value)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

impl Sink for CheckedJson {
    fn write(&mut self, records: &[Record]) -> Result<(), ConnectorError> {
        for record in records {
            if let Err(message) = check_json(&record.value) {
                let shown: String = record.value[..record.value.len().min(64)]
                    .escape_ascii()
                    .to_string();
                return Err(ConnectorError::NotJson {
                    sink: self.sink.clone(),
                    from: self.from.clone(),
                    message,
                    start: shown,
                });
            }
        }
        self.inner.write(records)
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        self.inner.finish()
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<(), ConnectorError> {
        self.inner.pre_commit(checkpoint)
    }

    fn commit(&mut self, completed: u64) -> Result<(), ConnectorError> {
        self.inner.commit(completed)
    }
}

fn write_lines(out: &mut impl Write, records: &[Record]) -> std::io::Result<()> {
    for record in records {
        // A value is one JSON document; a raw newline inside would split it.
        if record.value.contains(&b'\n') {
            let line: Vec<u8> = record
                .value
                .iter()
                .map(|b| if *b == b'\n' { b' ' } else { *b })
                .collect();
            out.write_all(&line)?;
        } else {
            out.write_all(&record.value)?;
        }
        out.write_all(b"\n")?;
    }
    Ok(())
}

impl Sink for FileSink {
    fn write(&mut self, records: &[Record]) -> Result<(), ConnectorError> {
        let error = self.error(&self.path);
        write_lines(self.open()?, records).map_err(error)
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        match self.out.as_mut() {
            Some(out) => out.flush().map_err(self.error(&self.path)),
            None => Ok(()),
        }
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<(), ConnectorError> {
        if !self.transactional {
            return Ok(());
        }
        let Some(mut out) = self.out.take() else {
            return Ok(()); // nothing written since the last barrier
        };
        out.flush().map_err(self.error(&self.path))?;
        drop(out);
        let target = self.dir.join(pending_name(self.subtask, checkpoint));
        std::fs::rename(&self.path, &target).map_err(self.error(&target))?;
        self.pending.push(checkpoint);
        Ok(())
    }

    fn commit(&mut self, completed: u64) -> Result<(), ConnectorError> {
        let mut still_pending = Vec::new();
        for checkpoint in std::mem::take(&mut self.pending) {
            if checkpoint > completed {
                still_pending.push(checkpoint);
                continue;
            }
            let from = self.dir.join(pending_name(self.subtask, checkpoint));
            let to = self.dir.join(committed_name(self.subtask, checkpoint));
            std::fs::rename(&from, &to).map_err(self.error(&to))?;
        }
        self.pending = still_pending;
        Ok(())
    }
}

/// Fault injection for recovery tests: passes records to the inner sink
/// until `limit` were written, then fails with an I/O error.
pub struct FailAfter {
    inner: Box<dyn Sink>,
    remaining: u64,
    limit: u64,
    path: PathBuf,
}

impl FailAfter {
    /// Wraps `inner` (writing to `path`, named in the error).
    pub fn new(inner: Box<dyn Sink>, limit: u64, path: &Path) -> Self {
        Self {
            inner,
            remaining: limit,
            limit,
            path: path.to_path_buf(),
        }
    }
}

impl Sink for FailAfter {
    fn write(&mut self, records: &[Record]) -> Result<(), ConnectorError> {
        let n = records
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        self.inner.write(&records[..n])?;
        self.remaining -= n as u64;
        if n < records.len() {
            return Err(ConnectorError::Write {
                path: self.path.clone(),
                source: std::io::Error::other(format!(
                    "injected failure after {} records (fail_after_records)",
                    self.limit
                )),
            });
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        self.inner.finish()
    }

    fn pre_commit(&mut self, checkpoint: u64) -> Result<(), ConnectorError> {
        self.inner.pre_commit(checkpoint)
    }

    fn commit(&mut self, completed: u64) -> Result<(), ConnectorError> {
        self.inner.commit(completed)
    }
}

/// JSON lines on standard output.
#[derive(Debug, Default)]
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn write(&mut self, records: &[Record]) -> Result<(), ConnectorError> {
        let stdout = std::io::stdout();
        let mut lock = stdout.lock();
        write_lines(&mut lock, records).map_err(|source| ConnectorError::Write {
            path: "<stdout>".into(),
            source,
        })
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        std::io::stdout()
            .flush()
            .map_err(|source| ConnectorError::Write {
                path: "<stdout>".into(),
                source,
            })
    }
}

/// Discards everything.
#[derive(Debug, Default)]
pub struct BlackholeSink;

impl Sink for BlackholeSink {
    fn write(&mut self, records: &[Record]) -> Result<(), ConnectorError> {
        std::hint::black_box(records);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn checked_json_refuses_invalid_utf8_and_invalid_json_and_writes_nothing_of_the_batch() {
        assert!(check_json(br#"{"a":[1,"x"]}"#).is_ok());
        assert!(check_json(b"{\"a\":\n 1}").is_ok());
        assert!(
            check_json(b"\"\xff\xfe\"")
                .unwrap_err()
                .contains("not UTF-8")
        );
        assert!(check_json(br#"{"n": 1"#).unwrap_err().contains("EOF"));
        assert!(check_json(br#"{"a":1} {"b":2}"#).is_err());
        let dir = tempfile::tempdir().unwrap();
        let file = FileSink::create(dir.path(), 0).unwrap();
        let mut sink = CheckedJson::new(Box::new(file), "out", "udf");
        let records = |values: &[&[u8]]| -> Vec<Record> {
            values
                .iter()
                .map(|v| Record {
                    key: None,
                    value: Bytes::copy_from_slice(v),
                    timestamp: None,
                })
                .collect()
        };
        sink.write(&records(&[b"1"])).unwrap();
        let err = sink.write(&records(&[b"2", b"{"])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("sink `out` got a value from `udf` that is not valid JSON"),
            "{err}"
        );
        sink.finish().unwrap();
        let text = std::fs::read_to_string(dir.path().join("part-0.jsonl")).unwrap();
        assert_eq!(text, "1\n");
    }

    use super::*;
    use weir_types::Bytes;

    #[test]
    fn file_sink_writes_one_line_per_record_and_replaces_old_parts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part-7.jsonl"), "stale\n").unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine\n").unwrap();
        prepare_file_sink_dir(dir.path(), SinkStart::Fresh).unwrap();
        assert!(!dir.path().join("part-7.jsonl").exists());
        assert!(dir.path().join("keep.txt").exists());
        let mut sink = FileSink::create(dir.path(), 0).unwrap();
        let rec = |v: &[u8]| Record {
            key: None,
            value: Bytes::copy_from_slice(v),
            timestamp: None,
        };
        sink.write(&[rec(b"{\"a\":1}"), rec(b"[1,\n2]")]).unwrap();
        sink.finish().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("part-0.jsonl")).unwrap(),
            "{\"a\":1}\n[1, 2]\n"
        );
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn rec(v: &str) -> Record {
        Record {
            key: None,
            value: Bytes::copy_from_slice(v.as_bytes()),
            timestamp: None,
        }
    }

    #[test]
    fn transactional_file_sink_shows_only_committed_checkpoints() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = FileSink::transactional(dir.path(), 3);
        sink.write(&[rec("1"), rec("2")]).unwrap();
        assert_eq!(names(dir.path()), [".part-3.inprogress"]);
        sink.pre_commit(1).unwrap();
        sink.write(&[rec("3")]).unwrap();
        sink.pre_commit(2).unwrap();
        // A barrier with nothing written since the last one seals nothing.
        sink.pre_commit(3).unwrap();
        sink.write(&[rec("4")]).unwrap();
        sink.finish().unwrap();
        assert_eq!(
            names(dir.path()),
            [
                ".part-3-1.pending",
                ".part-3-2.pending",
                ".part-3.inprogress"
            ]
        );
        sink.commit(1).unwrap();
        assert_eq!(
            names(dir.path()),
            [
                ".part-3-2.pending",
                ".part-3.inprogress",
                "part-3-00000001.jsonl"
            ]
        );
        sink.commit(3).unwrap();
        let committed = std::fs::read_to_string(dir.path().join("part-3-00000002.jsonl")).unwrap();
        assert_eq!(committed, "3\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("part-3-00000001.jsonl")).unwrap(),
            "1\n2\n"
        );
    }

    #[test]
    fn restore_commits_pending_files_up_to_the_checkpoint_and_drops_later_output() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for (name, text) in [
            ("part-0-00000001.jsonl", "a\n"),
            (
                "part-0-00000004.jsonl",
                "from a checkpoint newer than the restored one\n",
            ),
            (".part-0-2.pending", "b\n"),
            (".part-1-3.pending", "c\n"),
            (".part-1-4.pending", "after\n"),
            (".part-0.inprogress", "after\n"),
            ("part-2.jsonl", "a run without checkpoints\n"),
            ("notes.txt", "not ours\n"),
        ] {
            std::fs::write(p.join(name), text).unwrap();
        }
        prepare_file_sink_dir(p, SinkStart::Restore(3)).unwrap();
        assert_eq!(
            names(p),
            [
                "notes.txt",
                "part-0-00000001.jsonl",
                "part-0-00000002.jsonl",
                "part-1-00000003.jsonl"
            ]
        );
        assert_eq!(
            std::fs::read_to_string(p.join("part-1-00000003.jsonl")).unwrap(),
            "c\n"
        );
        prepare_file_sink_dir(p, SinkStart::Fresh).unwrap();
        assert_eq!(names(p), ["notes.txt"]);
    }

    #[test]
    fn each_subtask_prepares_its_own_files_and_subtask_0_those_of_removed_subtasks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        for name in [
            ".part-0-2.pending",
            ".part-1-2.pending",
            ".part-2-2.pending",
            ".part-1.inprogress",
        ] {
            std::fs::write(p.join(name), "x\n").unwrap();
        }
        // Restored at parallelism 2 from checkpoint 2: subtask 1 publishes
        // its own pending file and drops its in-progress one.
        prepare_file_sink_part(p, SinkStart::Restore(2), 1, 2).unwrap();
        assert_eq!(
            names(p),
            [
                ".part-0-2.pending",
                ".part-2-2.pending",
                "part-1-00000002.jsonl"
            ]
        );
        // Subtask 0 takes its own and those of old subtask 2.
        prepare_file_sink_part(p, SinkStart::Restore(2), 0, 2).unwrap();
        assert_eq!(
            names(p),
            [
                "part-0-00000002.jsonl",
                "part-1-00000002.jsonl",
                "part-2-00000002.jsonl"
            ]
        );
        // A fresh run of one subtask removes them all.
        prepare_file_sink_part(p, SinkStart::Fresh, 0, 1).unwrap();
        assert!(names(p).is_empty());
    }
}
