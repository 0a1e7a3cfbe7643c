//! Encoding of record values.

use serde::{Serialize, de::DeserializeOwned};

/// An input value type: decoded from a record's bytes.
///
/// Every `serde` `Deserialize` type is `Decode`, read as JSON. [`Raw`] takes
/// the bytes untouched (no parsing), for functions that do not look inside.
pub trait Decode: Sized {
    /// Decodes a record value. `bytes` borrows from the host's packed
    /// batch; copy what you keep.
    ///
    /// # Errors
    /// A message saying why the bytes are not a valid `Self`.
    fn decode(bytes: &[u8]) -> Result<Self, String>;
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

impl<T: DeserializeOwned> Decode for T {
    fn decode(bytes: &[u8]) -> Result<Self, String> {
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

impl Decode for Raw {
    fn decode(bytes: &[u8]) -> Result<Self, String> {
        Ok(Raw(bytes.to_vec()))
    }
}

impl Encode for Raw {
    fn encode_into(self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.0);
    }
}
