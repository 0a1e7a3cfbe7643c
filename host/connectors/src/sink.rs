//! Sinks.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use weir_types::Record;

use crate::ConnectorError;

/// Where records leave the job.
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
}

/// Creates `dir` and removes the `part-*` files an earlier run left there
/// (otherwise a run with lower parallelism would leave stale parts behind).
///
/// # Errors
/// When the directory cannot be created or cleaned.
pub fn prepare_file_sink_dir(dir: &Path) -> Result<(), ConnectorError> {
    let io = |source| ConnectorError::Write {
        path: dir.into(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_name().to_string_lossy().starts_with("part-") {
            std::fs::remove_file(entry.path()).map_err(|source| ConnectorError::Write {
                path: entry.path(),
                source,
            })?;
        }
    }
    Ok(())
}

/// JSON lines into `DIR/part-<subtask>.jsonl`.
pub struct FileSink {
    path: PathBuf,
    out: BufWriter<File>,
}

impl FileSink {
    /// Creates the part file of `subtask` in `dir` (see [`prepare_file_sink_dir`]).
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn create(dir: &Path, subtask: u32) -> Result<Self, ConnectorError> {
        let path = dir.join(format!("part-{subtask}.jsonl"));
        let file = File::create(&path).map_err(|source| ConnectorError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(Self {
            path,
            out: BufWriter::with_capacity(1 << 16, file),
        })
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
        write_lines(&mut self.out, records).map_err(|source| ConnectorError::Write {
            path: self.path.clone(),
            source,
        })
    }

    fn finish(&mut self) -> Result<(), ConnectorError> {
        self.out.flush().map_err(|source| ConnectorError::Write {
            path: self.path.clone(),
            source,
        })
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
    use super::*;

    #[test]
    fn file_sink_writes_one_line_per_record_and_replaces_old_parts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("part-7.jsonl"), "stale\n").unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine\n").unwrap();
        prepare_file_sink_dir(dir.path()).unwrap();
        assert!(!dir.path().join("part-7.jsonl").exists());
        assert!(dir.path().join("keep.txt").exists());
        let mut sink = FileSink::create(dir.path(), 0).unwrap();
        let rec = |v: &[u8]| Record {
            key: None,
            value: v.to_vec(),
            timestamp: None,
        };
        sink.write(&[rec(b"{\"a\":1}"), rec(b"[1,\n2]")]).unwrap();
        sink.finish().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("part-0.jsonl")).unwrap(),
            "{\"a\":1}\n[1, 2]\n"
        );
    }
}
