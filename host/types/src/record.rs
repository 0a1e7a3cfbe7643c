//! Records, batches and stream elements.

/// One record of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Partitioning key; `None` on a non-keyed stream.
    pub key: Option<Vec<u8>>,
    /// The payload (JSON by default).
    pub value: Vec<u8>,
    /// Event time in milliseconds since the Unix epoch (UTC).
    pub timestamp: Option<i64>,
}

/// Where a record came from: a split of a source and a position in it.
///
/// For file sources `split` indexes the job's split table (one entry per
/// input file) and `position` is the 1-based line number in that file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Origin {
    /// Index into the job's split table.
    pub split: u32,
    /// Position in the split (line number for files, sequence number for generators).
    pub position: u64,
}

impl Origin {
    /// The origin of a record a UDF produced (not traced back to an input).
    pub const DERIVED: Origin = Origin {
        split: u32::MAX,
        position: 0,
    };
}

/// A batch of records with their origins (`records.len() == origins.len()`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    /// The records, in stream order.
    pub records: Vec<Record>,
    /// `origins[i]` is where `records[i]` (or the input it derives from) came from.
    pub origins: Vec<Origin>,
}

impl Batch {
    /// An empty batch with room for `capacity` records.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            records: Vec::with_capacity(capacity),
            origins: Vec::with_capacity(capacity),
        }
    }

    /// Appends a record.
    pub fn push(&mut self, record: Record, origin: Origin) {
        self.records.push(record);
        self.origins.push(origin);
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// What travels on a channel between subtasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamElement {
    /// Records.
    Batch(Batch),
    /// Event time has reached this many ms since the epoch on this channel:
    /// no record with a smaller timestamp follows (except late ones).
    Watermark(i64),
    /// The sending subtask has no more input (bounded sources).
    EndOfInput,
}

/// The key of a JSON record value taken from a top-level field: a string's
/// text, or the JSON text of a number or boolean (`7`, `true`).
///
/// # Errors
/// A message when the value is not a JSON object with that field, or the
/// field holds `null`, an array or an object.
pub fn key_from_json_field(value: &[u8], field: &str) -> Result<Vec<u8>, String> {
    let json: serde_json::Value =
        serde_json::from_slice(value).map_err(|e| format!("record is not JSON: {e}"))?;
    match json.get(field) {
        Some(serde_json::Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            Ok(v.to_string().into_bytes())
        }
        Some(other) => Err(format!("key field `{field}` holds {other}, not a scalar")),
        None => Err(format!("record has no key field `{field}`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_scalar_fields() {
        assert_eq!(key_from_json_field(br#"{"id":7}"#, "id"), Ok(b"7".to_vec()));
        assert_eq!(
            key_from_json_field(br#"{"id":"a"}"#, "id"),
            Ok(b"a".to_vec())
        );
        assert!(key_from_json_field(br#"{"id":null}"#, "id").is_err());
        assert!(
            key_from_json_field(br#"{"x":1}"#, "id")
                .unwrap_err()
                .contains("no key field")
        );
        assert!(key_from_json_field(b"x", "id").is_err());
    }
}
