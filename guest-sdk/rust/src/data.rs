//! Encoding of record values.

use serde::{Serialize, de::DeserializeOwned};

/// An input value type: decoded from a record's bytes.
///
/// Every `serde` `Deserialize` type is `Decode`, read as JSON. [`Raw`] takes
/// the bytes untouched (no parsing), for functions that do not look inside.
pub trait Decode: Sized {
    /// Decodes a record value.
    ///
    /// # Errors
    /// A message saying why the bytes are not a valid `Self`.
    fn decode(bytes: Vec<u8>) -> Result<Self, String>;
}

/// An output value type: encoded to a record's bytes.
///
/// Every `serde` `Serialize` type is `Encode`, written as JSON; [`Raw`] is
/// written as is.
pub trait Encode {
    /// Encodes a record value.
    fn encode(self) -> Vec<u8>;
}

impl<T: DeserializeOwned> Decode for T {
    fn decode(bytes: Vec<u8>) -> Result<Self, String> {
        serde_json::from_slice(&bytes).map_err(|e| format!("invalid JSON input: {e}"))
    }
}

impl<T: Serialize> Encode for T {
    fn encode(self) -> Vec<u8> {
        // Serialising plain data cannot fail; a type whose Serialize impl
        // fails (a map with non-string keys) is written as JSON null.
        serde_json::to_vec(&self).unwrap_or_else(|_| b"null".to_vec())
    }
}

/// Record bytes passed through without decoding or encoding.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Raw(pub Vec<u8>);

impl Decode for Raw {
    fn decode(bytes: Vec<u8>) -> Result<Self, String> {
        Ok(Raw(bytes))
    }
}

impl Encode for Raw {
    fn encode(self) -> Vec<u8> {
        self.0
    }
}
