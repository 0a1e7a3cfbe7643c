//! File and generator sources: planning splits (`plan`), the reader that
//! opens and interleaves them (`SourceReader`, here), seeking a split to a
//! position (`seek`), and filling batches from CSV, JSON lines, Nexmark and
//! generated records (`fill`).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use weir_types::jobgraph::{FileFormat, KeySpec, NexmarkKind, SourceKind, TimestampSpec};
use weir_types::{Batch, Origin, Record};

use crate::json::write_csv_row;
use crate::nexmark::NexmarkConfig;
use crate::values::SharedValues;
use crate::{BadRecord, ConnectorError};

mod fill;
mod plan;
mod seek;
#[cfg(test)]
mod tests;

use fill::*;
pub use plan::{Split, SplitKind, plan_splits};
use seek::*;

/// How timestamps are parsed.
#[derive(Debug, Clone)]
enum TimeFormat {
    Millis,
    Seconds,
    Rfc3339,
    /// A strftime pattern, parsed once.
    Pattern(Vec<chrono::format::Item<'static>>),
}

impl TimeFormat {
    /// # Errors
    /// A pattern chrono cannot read.
    fn from_spec(spec: &TimestampSpec) -> Result<Self, String> {
        Ok(match spec.format.as_str() {
            "millis" => TimeFormat::Millis,
            "seconds" => TimeFormat::Seconds,
            "rfc3339" => TimeFormat::Rfc3339,
            other => TimeFormat::Pattern(
                chrono::format::StrftimeItems::new(other)
                    .parse_to_owned()
                    .map_err(|_| format!("invalid timestamp format `{other}`"))?,
            ),
        })
    }

    /// Milliseconds since the epoch, UTC.
    fn parse(&self, text: &str) -> Result<i64, String> {
        let bad = |why: &dyn std::fmt::Display| {
            format!("timestamp `{text}` does not match the format: {why}")
        };
        match self {
            TimeFormat::Millis => text.trim().parse::<i64>().map_err(|e| bad(&e)),
            TimeFormat::Seconds => text
                .trim()
                .parse::<f64>()
                .map(|s| (s * 1000.0).round() as i64)
                .map_err(|e| bad(&e)),
            TimeFormat::Rfc3339 => chrono::DateTime::parse_from_rfc3339(text.trim())
                .map(|t| t.timestamp_millis())
                .map_err(|e| bad(&e)),
            TimeFormat::Pattern(items) => {
                let mut parsed = chrono::format::Parsed::new();
                chrono::format::parse(&mut parsed, text.trim(), items.iter())
                    .and_then(|()| parsed.to_naive_datetime_with_offset(0))
                    .map(|t| t.and_utc().timestamp_millis())
                    .map_err(|e| bad(&e))
            }
        }
    }
}

/// What to extract from every record of a file source.
#[derive(Debug, Clone)]
struct Extract {
    key_field: Option<String>,
    timestamp: Option<(String, TimeFormat)>,
    /// Keep only records whose `type` field is one of these (Nexmark replay).
    types: Option<Vec<&'static str>>,
}

enum OpenSplit {
    Csv {
        reader: csv::Reader<BufReader<File>>,
        /// Each column's name as a JSON object key with its colon
        /// (`"name":`), encoded once.
        json_keys: Vec<Vec<u8>>,
        key_index: Option<usize>,
        ts_index: Option<usize>,
        key: Option<Vec<u8>>,
        split: u32,
        /// The row being read, as bytes: checked for UTF-8 once, whole.
        row: csv::ByteRecord,
        path: PathBuf,
        /// The header ends in CRLF: the csv crate then puts each record on
        /// the line before (at the previous line end's `\n`).
        crlf: bool,
    },
    Jsonl {
        reader: BufReader<File>,
        /// The line being read (reused).
        text: Vec<u8>,
        path: PathBuf,
        key: Option<Vec<u8>>,
        split: u32,
        line: u64,
        /// Byte offset of the next line.
        offset: u64,
    },
    Generated {
        next: u64,
        end: u64,
        split: u32,
    },
    Nexmark {
        config: NexmarkConfig,
        next: u64,
        stride: u64,
        end: u64,
        split: u32,
    },
}

/// How far a source subtask has read one split: what a checkpoint records
/// so that a restored reader continues with the next record, no earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SplitPosition {
    /// The split's index in the job's split table.
    pub split: u32,
    /// Files: byte offset of the next record; generators: the next
    /// sequence or event number.
    pub offset: u64,
    /// Files: the number of the last line read (so origins stay `file:line`).
    pub line: u64,
    /// The split is exhausted.
    pub finished: bool,
}

/// Splits one reader keeps open at once; later splits start as earlier ones end.
const MAX_OPEN_SPLITS: usize = 256;

/// Reads the splits assigned to one source subtask, interleaved: each batch
/// comes from one split, and the open splits take turns (as Flink's
/// split-based sources do), so each split's event time advances together
/// and per-split watermarks stay useful.
pub struct SourceReader {
    pending: VecDeque<Split>,
    format: Option<FileFormat>,
    extract: Extract,
    record_bytes: usize,
    keys: Option<u64>,
    nexmark: Option<NexmarkConfig>,
    open: VecDeque<(u32, OpenSplit)>,
    finished: Vec<u32>,
    /// Every split that ended (kept for checkpoints).
    done: Vec<u32>,
    /// Where restored splits continue, applied when they are opened.
    resume_at: std::collections::HashMap<u32, SplitPosition>,
}

impl SourceReader {
    /// A reader of `splits` for a source of kind `kind`.
    pub fn new(kind: &SourceKind, splits: Vec<Split>) -> Self {
        let (format, extract, record_bytes, keys) = match kind {
            SourceKind::File {
                format,
                key,
                timestamp,
                ..
            } => {
                let key_field = match key {
                    Some(KeySpec::Field { field }) => Some(field.clone()),
                    _ => None,
                };
                let timestamp = timestamp
                    .as_ref()
                    // `plan_splits` has rejected invalid formats already.
                    .and_then(|t| Some((t.field.clone(), TimeFormat::from_spec(t).ok()?)));
                (
                    Some(*format),
                    Extract {
                        key_field,
                        timestamp,
                        types: None,
                    },
                    0,
                    None,
                )
            }
            SourceKind::Nexmark { kinds, .. } => (
                Some(FileFormat::Jsonl),
                Extract {
                    key_field: None,
                    timestamp: Some(("dateTime".into(), TimeFormat::Millis)),
                    types: (kinds.len() < NexmarkKind::all().len())
                        .then(|| kinds.iter().map(|k| k.name()).collect()),
                },
                0,
                None,
            ),
            SourceKind::Datagen {
                record_bytes, keys, ..
            } => (
                None,
                Extract {
                    key_field: None,
                    timestamp: None,
                    types: None,
                },
                *record_bytes,
                *keys,
            ),
        };
        let nexmark = match kind {
            SourceKind::Nexmark {
                seed,
                rate,
                base_time,
                kinds,
                ..
            } => Some(NexmarkConfig {
                seed: *seed,
                rate: *rate,
                base_time: *base_time,
                kinds: kinds.clone(),
            }),
            _ => None,
        };
        Self {
            pending: splits.into(),
            format,
            extract,
            record_bytes,
            keys,
            nexmark,
            open: VecDeque::new(),
            finished: Vec::new(),
            done: Vec::new(),
            resume_at: std::collections::HashMap::new(),
        }
    }

    /// Continues from checkpointed positions: finished splits are skipped,
    /// the others continue at their position when opened. Splits without a
    /// position start from the beginning.
    pub fn resume(&mut self, positions: &[SplitPosition]) {
        for p in positions {
            if p.finished {
                self.pending.retain(|s| s.index != p.split);
                self.done.push(p.split);
            } else {
                self.resume_at.insert(p.split, *p);
            }
        }
    }

    /// How far every split assigned to this reader has been read. Call
    /// between batches: a batch returned is counted as read.
    pub fn positions(&self) -> Vec<SplitPosition> {
        let mut positions: Vec<SplitPosition> = self
            .done
            .iter()
            .map(|&split| SplitPosition {
                split,
                offset: 0,
                line: 0,
                finished: true,
            })
            .collect();
        positions.extend(
            self.open
                .iter()
                .map(|(index, open)| position_of(*index, open)),
        );
        // Splits not opened yet start from the beginning, or from where a
        // restored checkpoint left them.
        positions.extend(
            self.pending
                .iter()
                .filter_map(|s| self.resume_at.get(&s.index).copied()),
        );
        positions.sort_by_key(|p| p.split);
        positions
    }

    /// The next batch of at most `max` records, all from one split (the
    /// next open split in turn), or `None` when every split is done.
    /// Malformed records are skipped and appended to `bad`; splits that
    /// ended are reported by [`SourceReader::take_finished`].
    ///
    /// # Errors
    /// A file that cannot be opened or read, or a CSV file without the
    /// header fields the job needs.
    pub fn next_batch(
        &mut self,
        max: usize,
        bad: &mut Vec<BadRecord>,
    ) -> Result<Option<Batch>, ConnectorError> {
        loop {
            while self.open.len() < MAX_OPEN_SPLITS {
                let Some(split) = self.pending.pop_front() else {
                    break;
                };
                let index = split.index;
                let opened = self.open(split)?;
                self.open.push_back((index, opened));
            }
            let Some((index, mut split)) = self.open.pop_front() else {
                return Ok(None);
            };
            let mut batch = Batch::with_capacity(max);
            let done = fill(
                &mut split,
                &self.extract,
                self.record_bytes,
                self.keys,
                &mut batch,
                max,
                bad,
            )?;
            if done {
                self.finished.push(index);
                self.done.push(index);
            } else {
                self.open.push_back((index, split));
            }
            if !batch.is_empty() {
                return Ok(Some(batch));
            }
        }
    }

    /// Indices of the splits that ended since the last call.
    pub fn take_finished(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.finished)
    }

    fn open(&mut self, split: Split) -> Result<OpenSplit, ConnectorError> {
        let resume = self.resume_at.remove(&split.index);
        let mut opened = self.open_at_start(split)?;
        if let Some(position) = resume {
            seek(&mut opened, position)?;
        }
        Ok(opened)
    }

    fn open_at_start(&self, split: Split) -> Result<OpenSplit, ConnectorError> {
        match split.kind {
            SplitKind::Generated { start, end } => Ok(OpenSplit::Generated {
                next: start,
                end,
                split: split.index,
            }),
            SplitKind::Nexmark { start, stride, end } => Ok(OpenSplit::Nexmark {
                config: self
                    .nexmark
                    .clone()
                    .ok_or_else(|| ConnectorError::BadConfig {
                        source_id: split.name.clone(),
                        message: "a Nexmark split given to a reader of another kind".into(),
                    })?,
                next: start,
                stride,
                end,
                split: split.index,
            }),
            SplitKind::File { path, key } => {
                let file = File::open(&path).map_err(|source| ConnectorError::Read {
                    path: path.clone(),
                    source,
                })?;
                let reader = BufReader::with_capacity(1 << 16, file);
                match self.format {
                    Some(FileFormat::Jsonl) | None => Ok(OpenSplit::Jsonl {
                        reader,
                        text: Vec::new(),
                        path,
                        key,
                        split: split.index,
                        line: 0,
                        offset: 0,
                    }),
                    Some(FileFormat::Csv) => self.open_csv(path, reader, key, split.index),
                }
            }
        }
    }

    fn open_csv(
        &self,
        path: PathBuf,
        reader: BufReader<File>,
        key: Option<Vec<u8>>,
        split: u32,
    ) -> Result<OpenSplit, ConnectorError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(reader);
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| ConnectorError::BadFile {
                path: path.clone(),
                message: format!("cannot read the CSV header: {e}"),
            })?
            .iter()
            .map(str::to_string)
            .collect();
        if headers.is_empty() || headers.iter().all(String::is_empty) {
            return Err(ConnectorError::BadFile {
                path,
                message: "the CSV file has no header row".into(),
            });
        }
        let find = |field: &str, role: &str| {
            headers
                .iter()
                .position(|h| h == field)
                .ok_or_else(|| ConnectorError::BadFile {
                    path: path.clone(),
                    message: format!(
                        "{role} field `{field}` is not in the CSV header ({})",
                        headers.join(",")
                    ),
                })
        };
        let key_index = self
            .extract
            .key_field
            .as_deref()
            .map(|f| find(f, "key"))
            .transpose()?;
        let ts_index = self
            .extract
            .timestamp
            .as_ref()
            .map(|(f, _)| find(f, "timestamp"))
            .transpose()?;
        let crlf = header_ends_in_crlf(&path);
        let json_keys = headers
            .iter()
            .map(|name| {
                let mut key = Vec::with_capacity(name.len() + 3);
                crate::json::write_json_string(&mut key, name);
                key.push(b':');
                key
            })
            .collect();
        Ok(OpenSplit::Csv {
            reader,
            json_keys,
            key_index,
            ts_index,
            key,
            split,
            row: csv::ByteRecord::new(),
            path,
            crlf,
        })
    }
}

/// Where an open split stands.
fn position_of(index: u32, open: &OpenSplit) -> SplitPosition {
    let (offset, line) = match open {
        OpenSplit::Csv { reader, .. } => (reader.position().byte(), reader.position().line()),
        OpenSplit::Jsonl { offset, line, .. } => (*offset, *line),
        OpenSplit::Generated { next, .. } | OpenSplit::Nexmark { next, .. } => (*next, 0),
    };
    SplitPosition {
        split: index,
        offset,
        line,
        finished: false,
    }
}
