//! Records, batches and stream elements.

pub use bytes::Bytes;

/// One record of a stream.
///
/// The value is a [`Bytes`]: the records of a batch that a source or a Wasm
/// operator produced usually share one buffer (each value is a slice of
/// it), so a record costs no allocation or copy of its own. An operator
/// that keeps records beyond the batch (a join's buffers) takes them
/// through [`Record::detached`], so that one kept record does not keep its
/// whole batch's buffer alive.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// Partitioning key; `None` on a non-keyed stream.
    pub key: Option<Vec<u8>>,
    /// The payload (JSON by default).
    pub value: Bytes,
    /// Event time in milliseconds since the Unix epoch (UTC).
    pub timestamp: Option<i64>,
}

impl Record {
    /// The record with a value of its own (copied out of any shared batch
    /// buffer), for keeping beyond the batch.
    #[must_use]
    pub fn detached(self) -> Self {
        Self {
            value: Bytes::copy_from_slice(&self.value),
            ..self
        }
    }
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

    /// A batch of records an operator produced: every origin is
    /// [`Origin::DERIVED`].
    pub fn derived(records: Vec<Record>) -> Self {
        Self {
            origins: vec![Origin::DERIVED; records.len()],
            records,
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
    /// The sending subtask became idle or active again (Flink's
    /// `WatermarkStatus`): while idle it sends no records and no
    /// watermarks, and receivers leave it out of the minimum over their
    /// inputs, so it does not hold event time back.
    WatermarkStatus(WatermarkStatus),
    /// Checkpoint barrier `n` (asynchronous barrier snapshotting, Carbone
    /// et al. 2015, as in Flink): everything the sender sent before it
    /// belongs to checkpoint `n`, everything after to later ones.
    Barrier(u64),
    /// The sending subtask has no more input (bounded sources).
    EndOfInput,
}

/// Whether a channel currently takes part in watermark alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatermarkStatus {
    /// Sends records and watermarks.
    Active,
    /// Sends nothing for now; ignored when combining watermarks.
    Idle,
}

/// The key of a JSON record value taken from a top-level field: a string's
/// text, or the JSON text of a number or boolean (`7`, `true`).
///
/// # Errors
/// A message when the value is not a JSON object with that field, or the
/// field holds `null`, an array or an object.
pub fn key_from_json_field(value: &[u8], field: &str) -> Result<Vec<u8>, String> {
    let raw: Option<&serde_json::value::RawValue> = pick_fields(value, &[field])?.pop().flatten();
    let text = raw.map_or("null", |r| r.get());
    // Most keys are ids or plain strings, whose key is their text as it is:
    // a JSON integer of at most 19 digits (no sign, fraction or exponent) is
    // its own canonical text, and a string without escapes its content.
    let digits = text.as_bytes();
    if !digits.is_empty() && digits.len() <= 19 && digits.iter().all(u8::is_ascii_digit) {
        return Ok(digits.to_vec());
    }
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))
        && !inner.contains('\\')
    {
        return Ok(inner.as_bytes().to_vec());
    }
    let parsed: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("record is not a JSON object: {e}"))?;
    match parsed {
        serde_json::Value::String(s) => Ok(s.into_bytes()),
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
            Ok(v.to_string().into_bytes())
        }
        serde_json::Value::Null => Err(format!("record has no key field `{field}`")),
        other => Err(format!("key field `{field}` holds {other}, not a scalar")),
    }
}

/// The values of the top-level `fields` of a JSON object, in the order
/// asked (`None` for a missing field; of repeated keys the last wins).
///
/// Only these fields are built as [`serde_json::Value`]s; the rest of the
/// record is checked and skipped without allocating, which is what makes
/// keying and aggregating by field cheap on wide records.
///
/// # Errors
/// When `value` is not valid JSON or not an object.
pub fn json_fields(
    value: &[u8],
    fields: &[&str],
) -> Result<Vec<Option<serde_json::Value>>, String> {
    pick_fields(value, fields)
}

/// [`json_fields`] deserializing each field found as a `V` (a
/// [`serde_json::Value`], or a borrowed `RawValue` to keep its text).
fn pick_fields<'de, V: serde::Deserialize<'de> + Clone>(
    value: &'de [u8],
    fields: &[&str],
) -> Result<Vec<Option<V>>, String> {
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(value);
    let found = FieldPicker {
        fields,
        value: std::marker::PhantomData,
    }
    .deserialize(&mut de)
    .and_then(|found| de.end().map(|()| found))
    .map_err(|e| format!("record is not a JSON object: {e}"))?;
    Ok(found)
}

/// Deserializes a JSON object into the values of some of its fields.
struct FieldPicker<'f, V> {
    fields: &'f [&'f str],
    value: std::marker::PhantomData<V>,
}

impl<'de, V: serde::Deserialize<'de> + Clone> serde::de::DeserializeSeed<'de>
    for FieldPicker<'_, V>
{
    type Value = Vec<Option<V>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, V: serde::Deserialize<'de> + Clone> serde::de::Visitor<'de> for FieldPicker<'_, V> {
    type Value = Vec<Option<V>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = vec![None; self.fields.len()];
        while let Some(FieldName(name)) = map.next_key()? {
            if self.fields.contains(&name.as_ref()) {
                let value: V = map.next_value()?;
                // A field may be asked for more than once.
                for (slot, field) in found.iter_mut().zip(self.fields) {
                    if *field == name {
                        *slot = Some(value.clone());
                    }
                }
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// An object key, borrowed from the input unless it has escapes.
struct FieldName<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName(std::borrow::Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(Name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A detached record owns its value: it equals the slice it came from
    /// but lives in its own allocation, so the batch buffer can go.
    #[test]
    fn a_detached_record_does_not_share_its_batch_buffer() {
        let buffer = Bytes::from(b"{\"a\":1}{\"a\":2}".to_vec());
        let record = Record {
            key: Some(b"k".to_vec()),
            value: buffer.slice(7..14),
            timestamp: Some(3),
        };
        let detached = record.clone().detached();
        assert_eq!(detached, record);
        assert_eq!(&detached.value[..], br#"{"a":2}"#);
        assert!(!buffer.as_ptr_range().contains(&detached.value.as_ptr()));
        drop((buffer, record));
        assert_eq!(&detached.value[..], br#"{"a":2}"#);
    }

    #[test]
    fn derived_batches_have_derived_origins() {
        let records = vec![Record::default(), Record::default()];
        let batch = Batch::derived(records.clone());
        assert_eq!(batch.records, records);
        assert_eq!(batch.origins, [Origin::DERIVED; 2]);
    }

    #[test]
    fn json_fields_picks_fields_and_skips_the_rest() {
        let record = br#"{"a":1,"b\u0041":{"x":[1,2]},"c":"t","a":2.5}"#;
        assert_eq!(
            json_fields(record, &["c", "bA", "a", "z", "c"]),
            Ok(vec![
                Some(serde_json::json!("t")),
                Some(serde_json::json!({"x": [1, 2]})),
                Some(serde_json::json!(2.5)),
                None,
                Some(serde_json::json!("t")),
            ])
        );
        assert!(json_fields(br#"{"a":1,"b":}"#, &["a"]).is_err());
    }

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
        assert!(key_from_json_field(b"[1]", "id").is_err());
        assert!(key_from_json_field(br#"{"id":1} x"#, "id").is_err());
        assert!(key_from_json_field(br#"{"id":[1]}"#, "id").is_err());
    }

    /// The fast paths (plain integers and strings) give what the general
    /// path gives: the text of `serde_json::Value`'s display, or a string's
    /// unescaped content.
    #[test]
    fn keys_are_the_canonical_text_of_their_value() {
        for (json, key) in [
            ("7", "7"),
            ("9999999999999999999", "9999999999999999999"),
            ("18446744073709551615", "18446744073709551615"),
            ("18446744073709551616", "1.8446744073709552e+19"),
            ("-3", "-3"),
            ("-0", "-0.0"),
            ("1.50", "1.5"),
            ("1e3", "1000.0"),
            ("false", "false"),
            (r#""a b""#, "a b"),
            (r#""a\"b\u0041""#, "a\"bA"),
            (r#""""#, ""),
        ] {
            let record = format!(r#"{{"k":{json},"x":1}}"#);
            assert_eq!(
                key_from_json_field(record.as_bytes(), "k").as_deref(),
                Ok(key.as_bytes()),
                "{json}"
            );
        }
    }
}
