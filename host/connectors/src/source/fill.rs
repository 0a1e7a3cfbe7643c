//! Filling a batch from an open split: CSV rows and JSON lines (with their
//! key and event time), Nexmark events and generated records.

use super::*;

/// Why a row that took in more than its line is a bad record.
pub(super) const OPEN_QUOTE: &str = "malformed CSV row: a quoted field is not closed on its line (line breaks inside fields are not supported)";

/// Whether a row read took in a line break (inside a quoted field).
pub(super) fn spans_lines(row: &csv::ByteRecord) -> bool {
    memchr::memchr2(b'\n', b'\r', row.as_slice()).is_some()
}

/// Whether the first line of `path` ends in CRLF (read up to 64 KiB).
pub(super) fn header_ends_in_crlf(path: &Path) -> bool {
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
pub(super) fn bad_csv_record(
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

/// Appends records of `open` to `batch` until it holds `max`; true when the split is exhausted.
pub(super) fn fill(
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
pub(super) fn fill_nexmark(
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
pub(super) type KeyAndTime = (Option<Vec<u8>>, Option<i64>);

/// The key and event time of one JSON line (a JSON object, checked
/// whole), or `None` for an event of a kind the source does not emit.
pub(super) fn jsonl_record(
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
pub(super) fn generated_record(seq: u64, record_bytes: usize, keys: Option<u64>) -> Record {
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
