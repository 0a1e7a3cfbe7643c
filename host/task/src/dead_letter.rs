//! Dead letters: bad records a source or an operator set aside with
//! `on_error: dead-letter`, written as JSON lines to the vertex's
//! dead-letter directory by a [`FileSink`] per subtask, so they are
//! exactly-once as the file sink's output is (sealed at each checkpoint
//! barrier, published when the checkpoint completes).
//!
//! One line per record:
//! `{"vertex","origin","error","record"}`, where `origin` is `file:line`
//! (or the split and position) and `record` is the original bytes as text;
//! bytes that are not UTF-8 go in `record_hex` instead. Records longer
//! than [`MAX_DEAD_LETTER_BYTES`] are cut there and marked `"truncated":
//! true`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use weir_connectors::{FileSink, Sink, SinkStart, prepare_file_sink_part};
use weir_types::{Bytes, Record};

/// The most bytes of one bad record a dead letter keeps (1 MiB).
pub const MAX_DEAD_LETTER_BYTES: usize = 1 << 20;

/// One record set aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DeadLetter {
    /// The source or operator that set it aside.
    pub(crate) vertex: String,
    /// Where it came from (`file:line`, or a description).
    pub(crate) origin: String,
    /// Why.
    pub(crate) error: String,
    /// Its original bytes.
    pub(crate) record: Bytes,
}

impl DeadLetter {
    /// The JSON line (without its newline).
    pub(crate) fn to_json(&self) -> Vec<u8> {
        let bytes = &self.record[..self.record.len().min(MAX_DEAD_LETTER_BYTES)];
        let mut line = serde_json::Map::new();
        line.insert("vertex".into(), self.vertex.clone().into());
        line.insert("origin".into(), self.origin.clone().into());
        line.insert("error".into(), self.error.clone().into());
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                line.insert("record".into(), text.into());
            }
            Err(_) => {
                let mut hex = String::with_capacity(bytes.len() * 2);
                for b in bytes {
                    let _ = write!(hex, "{b:02x}");
                }
                line.insert("record_hex".into(), hex.into());
            }
        }
        if bytes.len() < self.record.len() {
            line.insert("truncated".into(), true.into());
        }
        serde_json::Value::Object(line).to_string().into_bytes()
    }
}

/// The dead-letter writers of one subtask, one per vertex of its chain
/// that dead-letters, opened on their first record.
pub(crate) struct DeadLetters {
    subtask: u32,
    parallelism: u32,
    transactional: bool,
    start: SinkStart,
    /// Per vertex: its directory and, once opened, its writer.
    writers: BTreeMap<String, (PathBuf, Option<FileSink>)>,
}

impl DeadLetters {
    /// Writers for `dirs` (vertex → directory) of subtask `subtask` of
    /// `parallelism`; `transactional` when the job checkpoints; `start`
    /// says what this subtask's files from an earlier run become (as a file
    /// sink's: [`prepare_file_sink_part`], applied by [`Self::prepare`]).
    pub(crate) fn new(
        subtask: u32,
        parallelism: u32,
        transactional: bool,
        start: SinkStart,
        dirs: Vec<(String, PathBuf)>,
    ) -> Self {
        Self {
            subtask,
            parallelism,
            transactional,
            start,
            writers: dirs
                .into_iter()
                .map(|(vertex, dir)| (vertex, (dir, None)))
                .collect(),
        }
    }

    /// Puts this subtask's files of every directory that exists in order
    /// for the run's start (a directory that does not exist is created on
    /// the first dead letter, with nothing to put in order).
    ///
    /// # Errors
    /// When a directory cannot be cleaned.
    pub(crate) fn prepare(&self) -> Result<(), String> {
        for (dir, _) in self.writers.values() {
            if dir.is_dir() {
                prepare_file_sink_part(dir, self.start, self.subtask, self.parallelism)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Writes `letters`, each to its vertex's directory.
    ///
    /// # Errors
    /// The I/O error, naming the file.
    pub(crate) fn write(&mut self, letters: &[DeadLetter]) -> Result<(), String> {
        for letter in letters {
            let Some((dir, writer)) = self.writers.get_mut(&letter.vertex) else {
                return Err(format!(
                    "`{}` has no dead-letter directory (a bug in Weir)",
                    letter.vertex
                ));
            };
            let sink = match writer {
                Some(sink) => sink,
                None => {
                    std::fs::create_dir_all(&*dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                    let sink = if self.transactional {
                        FileSink::transactional(dir, self.subtask)
                    } else {
                        FileSink::create(dir, self.subtask).map_err(|e| e.to_string())?
                    };
                    writer.insert(sink)
                }
            };
            let record = Record {
                key: None,
                value: letter.to_json().into(),
                timestamp: None,
            };
            sink.write(std::slice::from_ref(&record))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    fn each(
        &mut self,
        mut f: impl FnMut(&mut FileSink) -> Result<(), weir_connectors::ConnectorError>,
    ) -> Result<(), String> {
        for (_, writer) in self.writers.values_mut() {
            if let Some(sink) = writer {
                f(sink).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Checkpoint barrier `checkpoint`: seals what was written.
    ///
    /// # Errors
    /// The I/O error (the checkpoint is declined).
    pub(crate) fn pre_commit(&mut self, checkpoint: u64) -> Result<(), String> {
        self.each(|s| s.pre_commit(checkpoint))
    }

    /// Checkpoint `completed` completed: publishes what it covers.
    ///
    /// # Errors
    /// The I/O error.
    pub(crate) fn commit(&mut self, completed: u64) -> Result<(), String> {
        self.each(|s| s.commit(completed))
    }

    /// End of input: flushes.
    ///
    /// # Errors
    /// The I/O error.
    pub(crate) fn finish(&mut self) -> Result<(), String> {
        self.each(Sink::finish)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_dead_letter_keeps_text_as_text_and_other_bytes_as_hex() {
        let letter = DeadLetter {
            vertex: "readings".into(),
            origin: "a.csv:7".into(),
            error: "bad \"number\"".into(),
            record: Bytes::from_static(b"x,1.5e,\"q\""),
        };
        let json: serde_json::Value = serde_json::from_slice(&letter.to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"vertex": "readings", "origin": "a.csv:7",
                "error": "bad \"number\"", "record": "x,1.5e,\"q\""})
        );
        let binary = DeadLetter {
            record: Bytes::from_static(&[b'a', 0xff, 0x00]),
            ..letter
        };
        let json: serde_json::Value = serde_json::from_slice(&binary.to_json()).unwrap();
        assert_eq!(json["record_hex"], "61ff00");
        assert!(json.get("record").is_none());
    }

    #[test]
    fn dead_letters_open_their_directory_on_the_first_record_and_commit_with_checkpoints() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("dl/src");
        let mut letters = DeadLetters::new(
            1,
            2,
            true,
            SinkStart::Fresh,
            vec![("src".into(), dir.clone())],
        );
        letters.prepare().unwrap();
        assert!(!dir.exists(), "nothing is created before a dead letter");
        letters.pre_commit(1).unwrap();
        let letter = DeadLetter {
            vertex: "src".into(),
            origin: "f:2".into(),
            error: "e".into(),
            record: Bytes::from_static(b"r"),
        };
        letters.write(std::slice::from_ref(&letter)).unwrap();
        letters.pre_commit(2).unwrap();
        let visible = |dir: &Path| -> Vec<String> {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("part-"))
                .collect();
            names.sort();
            names
        };
        assert!(
            visible(&dir).is_empty(),
            "not before the checkpoint completes"
        );
        letters.commit(2).unwrap();
        assert_eq!(visible(&dir), vec!["part-1-00000002.jsonl"]);
        let text = std::fs::read_to_string(dir.join("part-1-00000002.jsonl")).unwrap();
        assert_eq!(text.trim_end().as_bytes(), letter.to_json().as_slice());
        assert!(
            letters
                .write(&[DeadLetter {
                    vertex: "other".into(),
                    ..letter
                }])
                .is_err()
        );
    }
}
