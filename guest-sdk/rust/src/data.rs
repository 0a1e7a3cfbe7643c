//! Encoding of record values.

use serde::{Deserialize, Serialize};

/// An input value type: decoded from a record's bytes, which live for `'a`
/// (the host's packed batch).
///
/// Every `serde` `Deserialize<'a>` type is `Decode<'a>`, read as JSON; so
/// owned types and types borrowing from the record (`&'a str`,
/// `&'a serde_json::value::RawValue` with `#[serde(borrow)]`) both work.
/// [`RawRef`] borrows the bytes untouched (no parsing), for functions that
/// do not look inside or look inside lazily; [`Raw`] copies them.
pub trait Decode<'a>: Sized {
    /// Decodes a record value. `bytes` borrows from the host's packed
    /// batch, so a decoded value may borrow from it too.
    ///
    /// # Errors
    /// A message saying why the bytes are not a valid `Self`.
    fn decode(bytes: &'a [u8]) -> Result<Self, String>;
}

/// An output value type: encoded to a record's bytes.
///
/// Every `serde` `Serialize` type is `Encode`, written as JSON; [`Raw`] is
/// written as is.
pub trait Encode {
    /// Appends the encoded value to `buf` (the packed output buffer the host
    /// receives, so the value is written once, in place).
    fn encode_into(self, buf: &mut Vec<u8>);

    /// The encoded value on its own.
    fn encode(self) -> Vec<u8>
    where
        Self: Sized,
    {
        let mut buf = Vec::new();
        self.encode_into(&mut buf);
        buf
    }
}

impl<'a, T: Deserialize<'a>> Decode<'a> for T {
    fn decode(bytes: &'a [u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON input: {e}"))
    }
}

impl<T: Serialize> Encode for T {
    fn encode_into(self, buf: &mut Vec<u8>) {
        // Serialising plain data cannot fail; a type whose Serialize impl
        // fails (a map with non-string keys) is written as JSON null.
        let start = buf.len();
        if serde_json::to_writer(&mut *buf, &self).is_err() {
            buf.truncate(start);
            buf.extend_from_slice(b"null");
        }
    }
}

/// A record value as plain bytes: decoding copies them, encoding writes them
/// as they are.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Raw(pub Vec<u8>);

impl Decode<'_> for Raw {
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        Ok(Raw(bytes.to_vec()))
    }
}

impl Encode for Raw {
    fn encode_into(self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.0);
    }
}

/// A record value's bytes borrowed from the host's batch: decoding neither
/// parses nor copies. Read fields lazily with a pull parser (e.g. `jiter`)
/// when a function needs only a few of them; encoding writes the bytes as
/// they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRef<'a>(pub &'a [u8]);

impl<'a> Decode<'a> for RawRef<'a> {
    fn decode(bytes: &'a [u8]) -> Result<Self, String> {
        Ok(RawRef(bytes))
    }
}

impl Encode for RawRef<'_> {
    fn encode_into(self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::borrow::Cow;

    #[derive(Deserialize, Debug, PartialEq)]
    struct Borrowed<'a> {
        name: &'a str,
        /// Borrowed unless it has escapes.
        #[serde(borrow)]
        note: Cow<'a, str>,
    }

    #[test]
    fn inputs_may_borrow_from_the_record() {
        let bytes = br#"{"name":"n","note":"a\"b"}"#;
        let value = <Borrowed<'_> as Decode>::decode(bytes).unwrap();
        assert_eq!(value.name, "n");
        assert_eq!(value.note, "a\"b");
        // Borrowed, not copied: the field points into the record.
        assert!(bytes.as_ptr_range().contains(&value.name.as_ptr()));
        let raw = <RawRef<'_> as Decode>::decode(bytes).unwrap();
        assert_eq!(raw.0.as_ptr(), bytes.as_ptr());
        assert_eq!(raw.encode(), bytes.to_vec());
        let owned = <u32 as Decode>::decode(b"7").unwrap();
        assert_eq!(owned, 7);
        let error = <u32 as Decode>::decode(b"x").unwrap_err();
        assert!(error.starts_with("invalid JSON input"), "{error}");
    }
}
