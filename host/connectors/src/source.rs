//! File and generator sources.

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

/// One unit of a source's input, read by exactly one subtask.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    /// Index in the job's split table (what [`Origin::split`] refers to).
    pub index: u32,
    /// Display name (the file path, or `datagen[start..end]`).
    pub name: String,
    /// What to read.
    pub kind: SplitKind,
}

/// What a split reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SplitKind {
    /// One file; `key` is set when the key comes from the path.
    File {
        /// The file.
        path: PathBuf,
        /// The key of every record, for `key: { from: path }`.
        key: Option<Vec<u8>>,
    },
    /// Generated records `start..end`.
    Generated {
        /// First sequence number.
        start: u64,
        /// One past the last.
        end: u64,
    },
    /// Nexmark events `start, start + stride, …` below `end`: strided, so
    /// that every split's event time advances at the same pace.
    Nexmark {
        /// First event number.
        start: u64,
        /// Distance between consecutive event numbers (the split count).
        stride: u64,
        /// One past the last event number of the stream.
        end: u64,
    },
}

/// Lists the splits of a source: its files in path order (one split each),
/// or for a generator one range per subtask. Split indices start at `first_index`.
///
/// # Errors
/// Unreadable directory, bad glob, or no matching file.
pub fn plan_splits(
    source_id: &str,
    kind: &SourceKind,
    parallelism: u32,
    first_index: u32,
) -> Result<Vec<Split>, ConnectorError> {
    match kind {
        SourceKind::File {
            path,
            glob,
            key,
            timestamp,
            ..
        } => {
            if let Some(spec) = timestamp {
                TimeFormat::from_spec(spec).map_err(|message| ConnectorError::BadConfig {
                    source_id: source_id.into(),
                    message,
                })?;
            }
            let files = list_files(source_id, path, glob.as_deref())?;
            let from_path = matches!(key, Some(KeySpec::FromPath { .. }));
            Ok(files
                .into_iter()
                .enumerate()
                .map(|(i, file)| {
                    let key = from_path.then(|| path_key(path, &file));
                    Split {
                        index: first_index + i as u32,
                        name: file.display().to_string(),
                        kind: SplitKind::File { path: file, key },
                    }
                })
                .collect())
        }
        SourceKind::Nexmark {
            replay: Some(path), ..
        } => {
            let files = list_files(source_id, path, Some("**/*.jsonl"))?;
            Ok(files
                .into_iter()
                .enumerate()
                .map(|(i, file)| Split {
                    index: first_index + i as u32,
                    name: file.display().to_string(),
                    kind: SplitKind::File {
                        path: file,
                        key: None,
                    },
                })
                .collect())
        }
        SourceKind::Nexmark { events, .. } => {
            let end = events.unwrap_or(0);
            let stride = u64::from(parallelism.max(1));
            Ok((0..stride)
                .map(|i| Split {
                    index: first_index + i as u32,
                    name: format!("{source_id}[{i}/{stride}]"),
                    kind: SplitKind::Nexmark {
                        start: i,
                        stride,
                        end,
                    },
                })
                .collect())
        }
        SourceKind::Datagen { count, .. } => Ok((0..u64::from(parallelism))
            .map(|i| {
                let start = count * i / u64::from(parallelism);
                let end = count * (i + 1) / u64::from(parallelism);
                Split {
                    index: first_index + i as u32,
                    name: format!("{source_id}[{start}..{end}]"),
                    kind: SplitKind::Generated { start, end },
                }
            })
            .collect()),
    }
}

fn list_files(
    source_id: &str,
    path: &Path,
    glob: Option<&str>,
) -> Result<Vec<PathBuf>, ConnectorError> {
    let meta = std::fs::metadata(path).map_err(|source| ConnectorError::Read {
        path: path.into(),
        source,
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let pattern = glob.unwrap_or("**/*");
    let full = path.join(pattern);
    let full_text = full.to_string_lossy().to_string();
    let entries = glob::glob(&full_text).map_err(|e| ConnectorError::BadGlob {
        pattern: full_text.clone(),
        message: e.to_string(),
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let file = entry.map_err(|e| ConnectorError::Read {
            path: e.path().into(),
            source: e.into(),
        })?;
        if file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(ConnectorError::NoFiles {
            source_id: source_id.into(),
            pattern: full_text,
        });
    }
    Ok(files)
}

/// `base/realKnownCause/nyc_taxi.csv` → `realKnownCause/nyc_taxi`.
fn path_key(base: &Path, file: &Path) -> Vec<u8> {
    let relative = file.strip_prefix(base).unwrap_or(file);
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.last_mut()
        && let Some(dot) = last.rfind('.').filter(|d| *d > 0)
    {
        last.truncate(dot);
    }
    parts.join("/").into_bytes()
}

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

/// Why a row that took in more than its line is a bad record.
const OPEN_QUOTE: &str = "malformed CSV row: a quoted field is not closed on its line (line breaks inside fields are not supported)";

/// Whether a row read took in a line break (inside a quoted field).
fn spans_lines(row: &csv::ByteRecord) -> bool {
    memchr::memchr2(b'\n', b'\r', row.as_slice()).is_some()
}

/// Whether the first line of `path` ends in CRLF (read up to 64 KiB).
fn header_ends_in_crlf(path: &Path) -> bool {
    let mut first = Vec::new();
    File::open(path)
        .and_then(|f| BufReader::new(f.take(64 << 10)).read_until(b'\n', &mut first))
        .is_ok_and(|_| first.ends_with(b"\r\n"))
}

/// The bad CSV record of split `split` (file `path`) that starts at
/// `start` and ends before byte `end`. The csv crate puts a record that
/// follows a CRLF line end at that end's `\n`, on the line before, and
/// blank lines before a record in its position: the file's bytes there
/// tell, and the record's line and bytes start after them.
fn bad_csv_record(
    split: u32,
    path: &Path,
    start: &csv::Position,
    end: u64,
    message: String,
) -> BadRecord {
    let (mut byte, mut line) = (start.byte(), start.line());
    // Line breaks before the record (a CRLF's `\n`, blank lines): skipped,
    // counting lines, up to 4 KiB of them.
    let mut head = Vec::new();
    let read = File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(byte))?;
        f.take(4096).read_to_end(&mut head)
    });
    if read.is_ok() {
        for b in head.iter().take_while(|b| matches!(b, b'\n' | b'\r')) {
            byte += 1;
            if *b == b'\n' {
                line += 1;
            }
        }
    }
    BadRecord {
        split,
        line,
        message,
        bytes: file_bytes(path, byte, end),
    }
}

/// Bytes `start..end` of file `path` without a trailing line end, at most
/// [`crate::MAX_BAD_RECORD_BYTES`] of them; empty when they cannot be read
/// (a bad record's bytes are for its dead letter, not worth failing over).
fn file_bytes(path: &Path, start: u64, end: u64) -> Vec<u8> {
    let len = end
        .saturating_sub(start)
        .min(crate::MAX_BAD_RECORD_BYTES as u64 + 1);
    let mut bytes = Vec::new();
    let read = File::open(path).and_then(|mut f| {
        f.seek(SeekFrom::Start(start))?;
        f.take(len).read_to_end(&mut bytes)
    });
    if read.is_err() {
        return Vec::new();
    }
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    bytes
}

/// Moves `reader` past the first non-blank line at or after `start` (the
/// bad row's own line; a record's position may be the line break or blank
/// lines before it).
fn skip_to_next_line(
    reader: &mut csv::Reader<BufReader<File>>,
    start: &csv::Position,
) -> Result<(), csv::Error> {
    let file = reader.get_mut();
    file.seek(SeekFrom::Start(start.byte()))?;
    let (mut byte, mut line) = (start.byte(), start.line());
    let mut text = Vec::new();
    loop {
        text.clear();
        let read = file.read_until(b'\n', &mut text)?;
        if read == 0 {
            break;
        }
        byte += read as u64;
        if text.ends_with(b"\n") {
            line += 1;
        }
        if text.iter().any(|b| !matches!(b, b'\n' | b'\r')) {
            break;
        }
    }
    let mut next = csv::Position::new();
    next.set_byte(byte)
        .set_line(line)
        .set_record(start.record() + 1);
    reader.seek(next)
}

/// Moves a freshly opened split to a checkpointed position.
fn seek(open: &mut OpenSplit, position: SplitPosition) -> Result<(), ConnectorError> {
    match open {
        OpenSplit::Csv { reader, path, .. } => {
            let mut at = csv::Position::new();
            at.set_byte(position.offset).set_line(position.line);
            reader.seek(at).map_err(|e| ConnectorError::BadFile {
                path: path.clone(),
                message: format!("cannot continue at byte {}: {e}", position.offset),
            })
        }
        OpenSplit::Jsonl {
            reader,
            path,
            line,
            offset,
            ..
        } => {
            let mut file = File::open(&*path).map_err(|source| ConnectorError::Read {
                path: path.clone(),
                source,
            })?;
            file.seek(SeekFrom::Start(position.offset))
                .map_err(|source| ConnectorError::Read {
                    path: path.clone(),
                    source,
                })?;
            *reader = BufReader::with_capacity(1 << 16, file);
            *line = position.line;
            *offset = position.offset;
            Ok(())
        }
        OpenSplit::Generated { next, .. } | OpenSplit::Nexmark { next, .. } => {
            *next = position.offset;
            Ok(())
        }
    }
}

/// Appends records of `open` to `batch` until it holds `max`; true when the split is exhausted.
fn fill(
    open: &mut OpenSplit,
    extract: &Extract,
    record_bytes: usize,
    keys: Option<u64>,
    batch: &mut Batch,
    max: usize,
    bad: &mut Vec<BadRecord>,
) -> Result<bool, ConnectorError> {
    match open {
        OpenSplit::Csv {
            reader,
            json_keys,
            key_index,
            ts_index,
            key,
            split,
            row,
            path,
            crlf,
        } => {
            let mut values = SharedValues::new(max.saturating_sub(batch.len()));
            let done = loop {
                if batch.len() + values.len() >= max {
                    break false;
                }
                // Where the next row starts (the reader's position is that
                // of the next byte to read).
                let start = reader.position().clone();
                match reader.read_byte_record(row) {
                    Ok(false) => break true,
                    Ok(true) => {}
                    Err(e) if e.is_io_error() => {
                        return Err(ConnectorError::BadFile {
                            path: path.clone(),
                            message: e.to_string(),
                        });
                    }
                    Err(e) => {
                        let at = e.position().cloned().unwrap_or(start);
                        // A quote left open makes a row with too many or too
                        // few fields as often as not: it took lines too.
                        if spans_lines(row) {
                            skip_to_next_line(reader, &at).map_err(|e| {
                                ConnectorError::BadFile {
                                    path: path.clone(),
                                    message: format!(
                                        "cannot continue after line {}: {e}",
                                        at.line()
                                    ),
                                }
                            })?;
                            let end = reader.position().byte();
                            bad.push(bad_csv_record(*split, path, &at, end, OPEN_QUOTE.into()));
                            continue;
                        }
                        let end = reader.position().byte();
                        let message = format!("malformed CSV row: {e}");
                        bad.push(bad_csv_record(*split, path, &at, end, message));
                        continue;
                    }
                }
                let line = row.position().map_or(start.line(), csv::Position::line);
                // One row per line: a quote left open would otherwise take
                // every following line into one value.
                if spans_lines(row) {
                    let start = row.position().cloned().unwrap_or(start);
                    skip_to_next_line(reader, &start).map_err(|e| ConnectorError::BadFile {
                        path: path.clone(),
                        message: format!("cannot continue after line {line}: {e}"),
                    })?;
                    let end = reader.position().byte();
                    bad.push(bad_csv_record(*split, path, &start, end, OPEN_QUOTE.into()));
                    continue;
                }
                if let Err(e) = std::str::from_utf8(row.as_slice()) {
                    let from = row.position().unwrap_or(&start);
                    let end = reader.position().byte();
                    let message = format!("malformed CSV row: not UTF-8: {e}");
                    bad.push(bad_csv_record(*split, path, from, end, message));
                    continue;
                }
                // Valid UTF-8 as a whole, so each field is too.
                let timestamp = match ts_index.map(|i| std::str::from_utf8(&row[i]).unwrap_or("")) {
                    Some(text) => match extract.timestamp.as_ref().map(|(_, f)| f.parse(text)) {
                        Some(Ok(ts)) => Some(ts),
                        Some(Err(message)) => {
                            let from = row.position().unwrap_or(&start);
                            let end = reader.position().byte();
                            bad.push(bad_csv_record(*split, path, from, end, message));
                            continue;
                        }
                        None => None,
                    },
                    None => None,
                };
                let record_key = match key_index {
                    Some(i) => Some(row[*i].to_vec()),
                    None => key.clone(),
                };
                write_csv_row(&mut values.buffer, json_keys, row);
                values.end_record(
                    record_key,
                    timestamp,
                    Origin {
                        split: *split,
                        position: line + u64::from(*crlf),
                    },
                );
            };
            values.into_batch(batch);
            Ok(done)
        }
        OpenSplit::Jsonl {
            reader,
            text,
            path,
            key,
            split,
            line,
            offset,
        } => {
            let mut values = SharedValues::new(max.saturating_sub(batch.len()));
            let done = loop {
                if batch.len() + values.len() >= max {
                    break false;
                }
                text.clear();
                let read =
                    reader
                        .read_until(b'\n', text)
                        .map_err(|source| ConnectorError::Read {
                            path: path.clone(),
                            source,
                        })?;
                if read == 0 {
                    break true;
                }
                *line += 1;
                if text.last() == Some(&b'\n') {
                    text.pop();
                }
                // The separator counts too (a last line without one makes
                // the offset one past the end, which reads nothing).
                *offset += text.len() as u64 + 1;
                // A line that is not UTF-8 is a bad record, not a bad file.
                let utf8 = match std::str::from_utf8(text) {
                    Ok(utf8) => utf8,
                    Err(e) => {
                        let message = format!("not UTF-8: {e}");
                        let mut bytes = std::mem::take(text);
                        bytes.truncate(crate::MAX_BAD_RECORD_BYTES + 1);
                        bad.push(BadRecord {
                            split: *split,
                            line: *line,
                            message,
                            bytes,
                        });
                        continue;
                    }
                };
                let utf8 = utf8.strip_suffix('\r').unwrap_or(utf8);
                if utf8.trim().is_empty() {
                    continue;
                }
                match jsonl_record(utf8, extract, key) {
                    Ok(None) => {}
                    Ok(Some((record_key, timestamp))) => {
                        values.buffer.extend_from_slice(utf8.as_bytes());
                        values.end_record(
                            record_key,
                            timestamp,
                            Origin {
                                split: *split,
                                position: *line,
                            },
                        );
                    }
                    Err(message) => bad.push(BadRecord {
                        split: *split,
                        line: *line,
                        message,
                        bytes: utf8.as_bytes()[..utf8.len().min(crate::MAX_BAD_RECORD_BYTES + 1)]
                            .to_vec(),
                    }),
                }
            };
            values.into_batch(batch);
            Ok(done)
        }
        OpenSplit::Generated { next, end, split } => {
            while batch.len() < max && *next < *end {
                let record = generated_record(*next, record_bytes, keys);
                batch.push(
                    record,
                    Origin {
                        split: *split,
                        position: *next,
                    },
                );
                *next += 1;
            }
            Ok(*next >= *end)
        }
        OpenSplit::Nexmark {
            config,
            next,
            stride,
            end,
            split,
        } => Ok(fill_nexmark(
            config, next, *stride, *end, *split, batch, max,
        )),
    }
}

/// Appends the events of a Nexmark split to `batch` until it holds `max`;
/// true when the split is exhausted. Events of kinds the source does not
/// emit are skipped without being generated.
///
/// The events are written one after another into one buffer, and each
/// record's value is a slice of it: no allocation per record.
fn fill_nexmark(
    config: &NexmarkConfig,
    next: &mut u64,
    stride: u64,
    end: u64,
    split: u32,
    batch: &mut Batch,
    max: usize,
) -> bool {
    let wanted = max.saturating_sub(batch.len());
    let mut values =
        SharedValues::with_bytes(wanted, wanted * NexmarkConfig::encoded_len_hint(*next));
    while values.len() < wanted && *next < end {
        let n = *next;
        *next = next.saturating_add(stride);
        if !config.emits(n) {
            continue;
        }
        let timestamp = config.write_event(n, &mut values.buffer);
        values.end_record(None, Some(timestamp), Origin { split, position: n });
    }
    values.into_batch(batch);
    *next >= end
}

/// A record's key and event time.
type KeyAndTime = (Option<Vec<u8>>, Option<i64>);

/// The key and event time of one JSON line (a JSON object, checked
/// whole), or `None` for an event of a kind the source does not emit.
fn jsonl_record(
    text: &str,
    extract: &Extract,
    path_key: &Option<Vec<u8>>,
) -> Result<Option<KeyAndTime>, String> {
    // Only the fields the source needs are built; the rest is checked and skipped.
    let mut wanted = [""; 3];
    let mut n = 0;
    for field in [
        extract.key_field.as_deref(),
        extract.timestamp.as_ref().map(|(f, _)| f.as_str()),
        extract.types.as_ref().map(|_| "type"),
    ]
    .into_iter()
    .flatten()
    {
        wanted[n] = field;
        n += 1;
    }
    let wanted = &wanted[..n];
    if wanted.is_empty() {
        // Values pass through unparsed, but must still be JSON objects
        // (as every record of Weir is).
        serde_json::from_str::<serde::de::IgnoredAny>(text)
            .map_err(|e| format!("invalid JSON: {e}"))?;
        if !text.trim_start().starts_with('{') {
            return Err("not a JSON object (each JSON line must be an object)".into());
        }
        return Ok(Some((path_key.clone(), None)));
    }
    let mut found = weir_types::json_fields(text.as_bytes(), wanted)?.into_iter();
    let mut field_text = |field: &str| -> Result<String, String> {
        match found.next().flatten() {
            Some(serde_json::Value::String(s)) => Ok(s),
            Some(serde_json::Value::Null) | None => Err(format!("field `{field}` is missing")),
            Some(other) => Ok(other.to_string()),
        }
    };
    let key = match &extract.key_field {
        Some(field) => Some(field_text(field)?.into_bytes()),
        None => path_key.clone(),
    };
    let timestamp = match &extract.timestamp {
        Some((field, format)) => Some(format.parse(&field_text(field)?)?),
        None => None,
    };
    if let Some(types) = &extract.types
        && !field_text("type").is_ok_and(|kind| types.contains(&kind.as_str()))
    {
        return Ok(None);
    }
    Ok(Some((key, timestamp)))
}

/// Record `seq` of a generator: a JSON object padded to `record_bytes`.
fn generated_record(seq: u64, record_bytes: usize, keys: Option<u64>) -> Record {
    let mut value = Vec::with_capacity(record_bytes.max(32));
    value.extend_from_slice(b"{\"seq\":");
    value.extend_from_slice(seq.to_string().as_bytes());
    value.extend_from_slice(b",\"pad\":\"");
    let used = value.len() + 2;
    value.resize(value.len() + record_bytes.saturating_sub(used), b'x');
    value.extend_from_slice(b"\"}");
    Record {
        key: keys.map(|k| format!("key-{}", seq % k.max(1)).into_bytes()),
        value: value.into(),
        timestamp: Some(seq as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_types::jobgraph::KeyFrom;

    fn csv_source(dir: &Path) -> SourceKind {
        SourceKind::File {
            path: dir.to_path_buf(),
            glob: Some("**/*.csv".into()),
            format: FileFormat::Csv,
            key: Some(KeySpec::FromPath {
                from: KeyFrom::Path,
            }),
            timestamp: Some(TimestampSpec {
                field: "timestamp".into(),
                format: "%Y-%m-%d %H:%M:%S".into(),
            }),
        }
    }

    fn read_all(
        kind: &SourceKind,
        splits: Vec<Split>,
        max: usize,
    ) -> (Vec<(Record, Origin)>, Vec<BadRecord>) {
        let mut reader = SourceReader::new(kind, splits);
        let (mut out, mut bad) = (Vec::new(), Vec::new());
        while let Some(batch) = reader.next_batch(max, &mut bad).unwrap() {
            assert!(batch.len() <= max);
            out.extend(batch.records.into_iter().zip(batch.origins));
        }
        (out, bad)
    }

    #[test]
    fn csv_files_give_keyed_timestamped_json_records() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a")).unwrap();
        std::fs::write(
            dir.path().join("a/s1.csv"),
            "timestamp,value\n2014-07-01 00:00:00,10\n2014-07-01 00:30:00,1.5\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.csv"),
            "timestamp,value\n1970-01-01 00:00:01,-3\nnot a time,4\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "x").unwrap();
        let kind = csv_source(dir.path());
        let splits = plan_splits("src", &kind, 1, 5).unwrap();
        assert_eq!(splits.len(), 2);
        assert_eq!(splits[0].index, 5);
        let (records, bad) = read_all(&kind, splits, 1);
        assert_eq!(records.len(), 3);
        let (r, o) = &records[0];
        assert_eq!(r.key.as_deref(), Some(&b"a/s1"[..]));
        assert_eq!(r.timestamp, Some(1_404_172_800_000));
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&r.value).unwrap(),
            serde_json::json!({"timestamp": "2014-07-01 00:00:00", "value": 10})
        );
        assert_eq!(
            *o,
            Origin {
                split: 5,
                position: 2
            }
        );
        // Interleaved: one record of each file in turn.
        let keys: Vec<&[u8]> = records
            .iter()
            .map(|(r, _)| r.key.as_deref().unwrap())
            .collect();
        assert_eq!(keys, [&b"a/s1"[..], b"b", b"a/s1"]);
        assert_eq!(records[1].0.timestamp, Some(1000));
        assert_eq!(bad.len(), 1);
        assert_eq!((bad[0].split, bad[0].line), (6, 3));
        assert!(bad[0].message.contains("not a time"), "{}", bad[0].message);
    }

    #[test]
    fn in_a_crlf_file_records_and_bad_records_name_their_own_line_and_bytes() {
        // Regression: after a CRLF line end the csv crate puts a record on
        // the line before (at the `\n`): lines were one too low and a bad
        // record's bytes began with a line break.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("x.csv"),
            "timestamp,value\r\n\
             2014-07-01 00:00:00,1\r\n\
             not a time,2\r\n\
             2014-07-01 00:02:00,3,extra\r\n\
             2014-07-01 00:03:00,4\r\n",
        )
        .unwrap();
        let kind = csv_source(dir.path());
        let (records, bad) = read_all(&kind, plan_splits("s", &kind, 1, 0).unwrap(), 10);
        let lines: Vec<u64> = records.iter().map(|(_, o)| o.position).collect();
        assert_eq!(lines, [2, 5], "{records:?}");
        let bad: Vec<(u64, &[u8])> = bad.iter().map(|b| (b.line, b.bytes.as_slice())).collect();
        assert_eq!(
            bad,
            [
                (3, &b"not a time,2"[..]),
                (4, &b"2014-07-01 00:02:00,3,extra"[..])
            ]
        );
    }

    #[test]
    fn a_csv_row_that_is_not_utf8_is_a_bad_record_and_reading_goes_on() {
        // Rows are read as bytes and checked for UTF-8 once, whole.
        let dir = tempfile::tempdir().unwrap();
        let mut text = b"timestamp,value,note\n2014-07-01 00:00:00,1,caf\xc3\xa9\n".to_vec();
        text.extend_from_slice(b"2014-07-01 00:01:00,2,bad \xff byte\n");
        text.extend_from_slice(b"2014-07-01 00:02:00,3,\"say \"\"hi\"\"\"\n");
        std::fs::write(dir.path().join("x.csv"), text).unwrap();
        let kind = csv_source(dir.path());
        let (records, bad) = read_all(&kind, plan_splits("s", &kind, 1, 0).unwrap(), 10);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].line, 3, "{bad:?}");
        assert!(bad[0].message.contains("not UTF-8"), "{bad:?}");
        assert!(
            bad[0].bytes.starts_with(b"2014-07-01 00:01:00,2,bad \xff"),
            "{bad:?}"
        );
        let values: Vec<serde_json::Value> = records
            .iter()
            .map(|(r, _)| serde_json::from_slice(&r.value).unwrap())
            .collect();
        assert_eq!(
            values,
            vec![
                serde_json::json!({"timestamp": "2014-07-01 00:00:00", "value": 1, "note": "café"}),
                serde_json::json!({"timestamp": "2014-07-01 00:02:00", "value": 3, "note": "say \"hi\""}),
            ]
        );
        assert_eq!(records[1].1.position, 4);
    }

    #[test]
    fn malformed_csv_rows_name_their_own_line_and_an_open_quote_takes_only_its_line() {
        // Regressions: parse errors named the line one too high, and an
        // unterminated quote silently swallowed the following rows into
        // one value.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("x.csv"),
            "timestamp,value\n\
             2014-07-01 00:00:00,1\n\
             2014-07-01 00:01:00,2,extra\n\
             2014-07-01 00:02:00,\"3\n\
             2014-07-01 00:03:00,4\n\
             2014-07-01 00:04:00,5\n",
        )
        .unwrap();
        // An open quote in the middle of three columns: the swallowed text
        // then makes a row of the wrong length (an error, not a row).
        std::fs::create_dir_all(dir.path().join("y")).unwrap();
        std::fs::write(
            dir.path().join("y/z.csv"),
            "timestamp,value,name\n\
             2014-07-01 00:00:00,\"1,a\n\
             2014-07-01 00:01:00,2,b\n\
             2014-07-01 00:02:00,3,c\n",
        )
        .unwrap();
        let kind = csv_source(&dir.path().join("y"));
        let (records, bad) = read_all(&kind, plan_splits("s", &kind, 1, 0).unwrap(), 10);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert_eq!(bad[0].line, 2, "{bad:?}");
        assert!(bad[0].message.contains("not closed on its line"), "{bad:?}");
        let lines: Vec<u64> = records.iter().map(|(_, o)| o.position).collect();
        assert_eq!(lines, [3, 4], "{records:?}");
        std::fs::remove_dir_all(dir.path().join("y")).unwrap();
        let kind = csv_source(dir.path());
        let (records, bad) = read_all(&kind, plan_splits("s", &kind, 1, 0).unwrap(), 10);
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [3, 4], "{bad:?}");
        assert!(bad[1].message.contains("not closed on its line"), "{bad:?}");
        let values: Vec<(u64, serde_json::Value)> = records
            .iter()
            .map(|(r, o)| {
                let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
                (o.position, v["value"].clone())
            })
            .collect();
        assert_eq!(
            values,
            [
                (2, serde_json::json!(1)),
                (5, serde_json::json!(4)),
                (6, serde_json::json!(5))
            ]
        );
    }

    #[test]
    fn missing_header_field_and_missing_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.csv"), "time,value\n1,2\n").unwrap();
        let kind = csv_source(dir.path());
        let splits = plan_splits("src", &kind, 1, 0).unwrap();
        let mut reader = SourceReader::new(&kind, splits);
        let err = reader
            .next_batch(10, &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.csv")
                && err.contains("timestamp field `timestamp` is not in the CSV header"),
            "{err}"
        );
        let missing = csv_source(&dir.path().join("nope"));
        let err = plan_splits("src", &missing, 1, 0).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("cannot read"), "{err}");
        let empty = tempfile::tempdir().unwrap();
        let err = plan_splits("src", &csv_source(empty.path()), 1, 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("matched no file"), "{err}");
    }

    #[test]
    fn jsonl_key_and_time_from_fields() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.jsonl");
        std::fs::write(
            &file,
            b"{\"k\":\"a\",\"t\":5}\n\n{broken\n{\"k\":7,\"t\":6}\r\n\xff\xfe\n",
        )
        .unwrap();
        // Regression: an unkeyed source let lines that are JSON but not
        // objects through.
        let unkeyed = dir.path().join("unkeyed.jsonl");
        std::fs::write(&unkeyed, "{\"a\":1}\n[1,2]\n3\n\"text\"\n {\"b\":2}\n").unwrap();
        let plain = SourceKind::File {
            path: unkeyed,
            glob: None,
            format: FileFormat::Jsonl,
            key: None,
            timestamp: None,
        };
        let (records, bad) = read_all(&plain, plan_splits("s", &plain, 1, 0).unwrap(), 10);
        assert_eq!(records.len(), 2);
        let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, [2, 3, 4]);
        assert!(
            bad[0].message.contains("not a JSON object"),
            "{}",
            bad[0].message
        );
        let kind = SourceKind::File {
            path: file,
            glob: None,
            format: FileFormat::Jsonl,
            key: Some(KeySpec::Field { field: "k".into() }),
            timestamp: Some(TimestampSpec {
                field: "t".into(),
                format: "millis".into(),
            }),
        };
        let (records, bad) = read_all(&kind, plan_splits("s", &kind, 1, 0).unwrap(), 10);
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].0.key.as_deref(), Some(&b"a"[..]));
        assert_eq!(records[1].0.key.as_deref(), Some(&b"7"[..]));
        assert_eq!(records[1].0.timestamp, Some(6));
        assert_eq!(records[1].1.position, 4);
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].line, 3);
        assert_eq!(bad[1].line, 5);
        assert!(bad[1].message.contains("not UTF-8"), "{}", bad[1].message);
    }

    #[test]
    fn splits_take_turns_and_report_when_they_end() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.csv"),
            "timestamp,value\n1970-01-01 00:00:01,1\n",
        )
        .unwrap();
        let rows: String = (0..5)
            .map(|i| format!("1970-01-01 00:00:0{i},{i}\n"))
            .collect();
        std::fs::write(dir.path().join("b.csv"), format!("timestamp,value\n{rows}")).unwrap();
        let kind = csv_source(dir.path());
        let mut reader = SourceReader::new(&kind, plan_splits("s", &kind, 1, 0).unwrap());
        let mut bad = Vec::new();
        let mut order = Vec::new();
        let mut finished = Vec::new();
        while let Some(batch) = reader.next_batch(2, &mut bad).unwrap() {
            let split = batch.origins[0].split;
            assert!(
                batch.origins.iter().all(|o| o.split == split),
                "one split per batch"
            );
            order.push((split, batch.len()));
            finished.extend(reader.take_finished());
        }
        finished.extend(reader.take_finished());
        assert_eq!(order, [(0, 1), (1, 2), (1, 2), (1, 1)]);
        assert_eq!(finished, [0, 1]);
    }

    #[test]
    fn datagen_splits_cover_the_count_exactly() {
        let kind = SourceKind::Datagen {
            count: 10,
            record_bytes: 100,
            keys: Some(3),
        };
        let splits = plan_splits("g", &kind, 3, 0).unwrap();
        let mut seqs = Vec::new();
        for split in splits {
            let (records, _) = read_all(&kind, vec![split], 4);
            for (r, o) in records {
                assert_eq!(r.value.len(), 100);
                serde_json::from_slice::<serde_json::Value>(&r.value).unwrap();
                assert_eq!(r.key, Some(format!("key-{}", o.position % 3).into_bytes()));
                seqs.push(o.position);
            }
        }
        seqs.sort();
        assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    }

    /// Reads `batches` batches, then resumes a fresh reader from the
    /// positions and reads the rest: together they must be exactly the
    /// records (and origins) of one uninterrupted read.
    fn resumed_read(kind: &SourceKind, splits: Vec<Split>, max: usize, batches: usize) {
        let (all, _) = read_all(kind, splits.clone(), max);
        let mut first = SourceReader::new(kind, splits.clone());
        let (mut got, mut bad) = (Vec::new(), Vec::new());
        for _ in 0..batches {
            let batch = first.next_batch(max, &mut bad).unwrap().unwrap();
            got.extend(batch.records.into_iter().zip(batch.origins));
        }
        let positions = first.positions();
        let mut second = SourceReader::new(kind, splits);
        second.resume(&positions);
        while let Some(batch) = second.next_batch(max, &mut bad).unwrap() {
            got.extend(batch.records.into_iter().zip(batch.origins));
        }
        let key = |(r, o): &(Record, Origin)| (o.split, o.position, r.value.clone());
        let (mut got, mut all) = (got, all);
        got.sort_by_key(key);
        all.sort_by_key(key);
        assert_eq!(got.len(), all.len(), "after {batches} batches of {max}");
        assert!(got == all, "after {batches} batches of {max}");
    }

    #[test]
    fn readers_resume_from_checkpointed_positions_without_loss_or_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        for (name, rows) in [("a.csv", 7), ("b.csv", 3), ("c.csv", 1)] {
            let mut text = "timestamp,value\n".to_string();
            for i in 0..rows {
                text.push_str(&format!("2014-07-01 00:{i:02}:00,{i}\n"));
            }
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let csv = csv_source(dir.path());
        let splits = plan_splits("s", &csv, 1, 0).unwrap();
        for (max, batches) in [(2, 1), (2, 3), (3, 4), (5, 2)] {
            resumed_read(&csv, splits.clone(), max, batches);
        }

        let jsonl_dir = dir.path().join("jsonl");
        std::fs::create_dir_all(&jsonl_dir).unwrap();
        std::fs::write(
            jsonl_dir.join("x.jsonl"),
            "{\"a\":1}\n\n{\"a\":2}\nnot json\n{\"a\":3}\n{\"a\":4}",
        )
        .unwrap();
        std::fs::write(jsonl_dir.join("y.jsonl"), "{\"b\":1}\r\n{\"b\":2}\r\n").unwrap();
        let jsonl = SourceKind::File {
            path: jsonl_dir,
            glob: None,
            format: FileFormat::Jsonl,
            key: None,
            timestamp: None,
        };
        let splits = plan_splits("s", &jsonl, 1, 0).unwrap();
        for (max, batches) in [(1, 1), (1, 3), (2, 2), (3, 1)] {
            resumed_read(&jsonl, splits.clone(), max, batches);
        }

        let datagen: SourceKind =
            serde_json::from_str(r#"{"type":"datagen","count":50,"keys":3}"#).unwrap();
        let splits = plan_splits("g", &datagen, 2, 0).unwrap();
        resumed_read(&datagen, splits, 7, 3);

        let nexmark: SourceKind =
            serde_json::from_str(r#"{"type":"nexmark","events":300}"#).unwrap();
        let splits = plan_splits("n", &nexmark, 3, 0).unwrap();
        resumed_read(&nexmark, splits, 16, 5);
    }
}
