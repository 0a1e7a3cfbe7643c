//! Moving an open split to a position (a checkpointed offset): file
//! offsets aligned to line starts.

use super::*;

/// Bytes `start..end` of file `path` without a trailing line end, at most
/// [`crate::MAX_BAD_RECORD_BYTES`] of them; empty when they cannot be read
/// (a bad record's bytes are for its dead letter, not worth failing over).
pub(super) fn file_bytes(path: &Path, start: u64, end: u64) -> Vec<u8> {
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
pub(super) fn skip_to_next_line(
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
pub(super) fn seek(open: &mut OpenSplit, position: SplitPosition) -> Result<(), ConnectorError> {
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
