//! The wire format of the control connection between a TaskManager and the
//! JobManager: a versioned stream of length-prefixed messages whose bodies
//! are [postcard]-encoded serde values.
//!
//! # Format, version 1
//!
//! Every integer in the framing is little-endian. A control stream is a
//! preamble followed by messages back to back:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic: ASCII `WEIRCTRL`, [`CONTROL_MAGIC`] |
//! | 8 | 2 | format version, `u16`: `1` ([`CONTROL_VERSION`]) |
//!
//! Each message:
//!
//! | size | field |
//! |-----:|-------|
//! | 4 | body length *L* in bytes, `u32` |
//! | *L* | body: one value in the [postcard wire format], version 1 |
//!
//! The body's type is the message enum of the protocol's peers (for Weir,
//! [`crate::messages::ControlMessage`]); postcard encodes an enum as its variant's
//! index (a varint) followed by its fields in order, so the order of the
//! variants and of their fields is part of the format: adding a variant at
//! the end is compatible, anything else comes with a new version.
//!
//! A decoder refuses a body length above its limit as soon as the 4 length
//! bytes arrive, and a body that does not decode to exactly one value
//! (bytes left over included). postcard checks every length inside the
//! body against the bytes present, so nothing is allocated on the word of
//! the peer beyond the body itself.
//!
//! [postcard]: https://docs.rs/postcard
//! [postcard wire format]: https://postcard.jamesmunns.com/wire-format

use bytes::{Buf, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first 8 bytes of every control stream.
pub const CONTROL_MAGIC: [u8; 8] = *b"WEIRCTRL";
/// The control format version this crate writes and reads.
pub const CONTROL_VERSION: u16 = 1;
/// Bytes of the control preamble: magic and version.
pub const CONTROL_PREAMBLE_LEN: usize = 10;
/// Bytes of a control message's header: the body length.
const HEADER_LEN: usize = 4;

/// Why a control stream cannot be encoded or decoded.
///
/// Offsets count from the first byte of the stream. A decoder that reported
/// an error stays failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The stream does not start with [`CONTROL_MAGIC`].
    #[error(
        "not a Weir control stream: it starts with \"{}\", not \"WEIRCTRL\"",
        .found.escape_ascii()
    )]
    BadMagic {
        /// The first 8 bytes of the stream.
        found: [u8; 8],
    },
    /// The preamble names a version this decoder does not read.
    #[error(
        "the peer speaks control format version {found}, but this process reads only version {supported}"
    )]
    UnsupportedVersion {
        /// The version in the preamble.
        found: u16,
        /// [`CONTROL_VERSION`].
        supported: u16,
    },
    /// A message announces a body longer than the limit.
    #[error(
        "the control message at stream byte {offset} announces {len} bytes, more than the limit of {limit} bytes"
    )]
    MessageTooLarge {
        /// Announced body length, bytes.
        len: u32,
        /// The decoder's limit, bytes.
        limit: usize,
        /// Offset of the message's length field.
        offset: u64,
    },
    /// A body that is not one message of the expected type.
    #[error("the control message at stream byte {offset} ({len} bytes) is malformed: {message}")]
    BadMessage {
        /// Offset of the message's length field.
        offset: u64,
        /// Its body length, bytes.
        len: u32,
        /// What postcard reported.
        message: String,
    },
    /// The stream ended inside the preamble or a message.
    #[error("the control stream ended inside the {part} at stream byte {offset}")]
    Truncated {
        /// `preamble` or `message`.
        part: &'static str,
        /// Where the incomplete part starts.
        offset: u64,
    },
    /// A message could not be encoded (too large for a `u32` length, or a
    /// value serde refuses).
    #[error("cannot encode a control message: {0}")]
    Encode(String),
}

/// Appends the control preamble (magic and version) to `out`.
pub fn encode_control_preamble(out: &mut Vec<u8>) {
    out.extend_from_slice(&CONTROL_MAGIC);
    out.extend_from_slice(&CONTROL_VERSION.to_le_bytes());
}

/// Appends one message (length and postcard body) to `out`.
///
/// # Errors
/// [`ControlError::Encode`] when serde refuses the value or the body
/// exceeds `u32::MAX` bytes; `out` is unchanged then.
pub fn encode_control<T: Serialize>(message: &T, out: &mut Vec<u8>) -> Result<(), ControlError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let body = match postcard::to_extend(message, std::mem::take(out)) {
        Ok(body) => body,
        Err(e) => return Err(ControlError::Encode(e.to_string())),
    };
    *out = body;
    let Ok(len) = u32::try_from(out.len() - start - HEADER_LEN) else {
        out.truncate(start);
        return Err(ControlError::Encode(
            "the message is larger than 4 GiB".into(),
        ));
    };
    out[start..start + HEADER_LEN].copy_from_slice(&len.to_le_bytes());
    Ok(())
}

/// Decodes a control stream that arrives in chunks of any size.
///
/// [`push`](Self::push) bytes, then take messages with
/// [`next`](Self::next) until it returns `Ok(None)`. A body longer than
/// `max_message_bytes` is refused when its length arrives.
#[derive(Debug)]
pub struct ControlDecoder {
    max_message_bytes: usize,
    buffer: BytesMut,
    offset: u64,
    started: bool,
    failed: Option<ControlError>,
}

impl ControlDecoder {
    /// A decoder for a new stream (preamble first) with a limit on each
    /// message's body, in bytes.
    #[must_use]
    pub fn new(max_message_bytes: usize) -> Self {
        Self {
            max_message_bytes,
            buffer: BytesMut::new(),
            offset: 0,
            started: false,
            failed: None,
        }
    }

    /// Appends the next bytes of the stream; a failed decoder drops them.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buffer.extend_from_slice(chunk);
        }
    }

    /// The next message, or `Ok(None)` when the bytes so far end before it.
    ///
    /// # Errors
    /// A [`ControlError`] for a bad preamble, an oversized or malformed
    /// message; returned again on every later call.
    #[expect(
        clippy::should_implement_trait,
        reason = "`None` means `push more bytes`, not the end"
    )]
    pub fn next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ControlError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        self.decode_next().inspect_err(|error| {
            self.failed = Some(error.clone());
            self.buffer = BytesMut::new();
        })
    }

    /// Checks that the stream ended at a message boundary after the
    /// preamble; call it when the transport's stream has ended.
    ///
    /// # Errors
    /// The decoder's error, or [`ControlError::Truncated`].
    pub fn finish(&self) -> Result<(), ControlError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if !self.started {
            return Err(ControlError::Truncated {
                part: "preamble",
                offset: 0,
            });
        }
        if !self.buffer.is_empty() {
            return Err(ControlError::Truncated {
                part: "message",
                offset: self.offset,
            });
        }
        Ok(())
    }

    /// The bytes pushed after the last message taken, giving the decoder
    /// up: for a stream that continues in another format after its
    /// control messages (a data stream's header, then its frames).
    #[must_use]
    pub fn into_remaining(self) -> BytesMut {
        self.buffer
    }

    fn decode_next<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ControlError> {
        if !self.started {
            if self.buffer.len() < CONTROL_PREAMBLE_LEN {
                return Ok(None);
            }
            let mut found = [0; 8];
            found.copy_from_slice(&self.buffer[..8]);
            if found != CONTROL_MAGIC {
                return Err(ControlError::BadMagic { found });
            }
            let version = u16::from_le_bytes([self.buffer[8], self.buffer[9]]);
            if version != CONTROL_VERSION {
                return Err(ControlError::UnsupportedVersion {
                    found: version,
                    supported: CONTROL_VERSION,
                });
            }
            self.buffer.advance(CONTROL_PREAMBLE_LEN);
            self.offset += CONTROL_PREAMBLE_LEN as u64;
            self.started = true;
        }
        if self.buffer.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_le_bytes([
            self.buffer[0],
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
        ]);
        if len as usize > self.max_message_bytes {
            return Err(ControlError::MessageTooLarge {
                len,
                limit: self.max_message_bytes,
                offset: self.offset,
            });
        }
        if self.buffer.len() < HEADER_LEN + len as usize {
            return Ok(None);
        }
        let body = &self.buffer[HEADER_LEN..HEADER_LEN + len as usize];
        let bad = |message: String| ControlError::BadMessage {
            offset: self.offset,
            len,
            message,
        };
        let (message, rest) =
            postcard::take_from_bytes::<T>(body).map_err(|e| bad(e.to_string()))?;
        if !rest.is_empty() {
            return Err(bad(format!(
                "{} bytes are left after the message",
                rest.len()
            )));
        }
        self.buffer.advance(HEADER_LEN + len as usize);
        self.offset += (HEADER_LEN + len as usize) as u64;
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Msg {
        Hello { name: String, slots: u32 },
        Beat,
        Blob(Vec<u8>),
    }

    fn stream(messages: &[Msg]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_control_preamble(&mut out);
        for m in messages {
            encode_control(m, &mut out).unwrap();
        }
        out
    }

    fn decode_all(bytes: &[u8], chunk: usize) -> Result<Vec<Msg>, ControlError> {
        let mut decoder = ControlDecoder::new(1 << 16);
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk.max(1)) {
            decoder.push(piece);
            while let Some(m) = decoder.next::<Msg>()? {
                out.push(m);
            }
        }
        decoder.finish()?;
        Ok(out)
    }

    #[test]
    fn documented_layout() {
        let bytes = stream(&[Msg::Beat]);
        // Preamble, then length 1 and the variant index 1 of `Beat`.
        assert_eq!(&bytes[..10], b"WEIRCTRL\x01\x00");
        assert_eq!(&bytes[10..], &[1, 0, 0, 0, 1]);
    }

    #[test]
    fn oversized_message_is_refused_at_its_length() {
        let mut bytes = stream(&[]);
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut decoder = ControlDecoder::new(1024);
        decoder.push(&bytes);
        assert_eq!(
            decoder.next::<Msg>(),
            Err(ControlError::MessageTooLarge {
                len: u32::MAX,
                limit: 1024,
                offset: 10
            })
        );
        // Failed for good.
        decoder.push(&stream(&[Msg::Beat])[10..]);
        assert!(decoder.next::<Msg>().is_err());
    }

    #[test]
    fn trailing_bytes_in_a_body_are_refused() {
        let mut bytes = stream(&[]);
        bytes.extend_from_slice(&[2, 0, 0, 0, 1, 7]);
        let err = decode_all(&bytes, 64).unwrap_err();
        assert!(
            matches!(
                err,
                ControlError::BadMessage {
                    offset: 10,
                    len: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn wrong_magic_version_and_truncation() {
        assert!(matches!(
            decode_all(b"WEIRDATA\x01\x00", 3),
            Err(ControlError::BadMagic { .. })
        ));
        assert_eq!(
            decode_all(b"WEIRCTRL\x02\x00", 3),
            Err(ControlError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        );
        let bytes = stream(&[Msg::Blob(vec![1, 2, 3])]);
        assert_eq!(
            decode_all(&bytes[..bytes.len() - 1], 4),
            Err(ControlError::Truncated {
                part: "message",
                offset: 10
            })
        );
        assert_eq!(
            decode_all(b"WEIR", 4),
            Err(ControlError::Truncated {
                part: "preamble",
                offset: 0
            })
        );
    }

    fn msg() -> impl Strategy<Value = Msg> {
        prop_oneof![
            (".{0,20}", any::<u32>()).prop_map(|(name, slots)| Msg::Hello { name, slots }),
            Just(Msg::Beat),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Msg::Blob),
        ]
    }

    proptest! {
        #[test]
        fn round_trip_in_any_chunking(messages in proptest::collection::vec(msg(), 0..8), chunk in 1usize..40) {
            let bytes = stream(&messages);
            prop_assert_eq!(decode_all(&bytes, chunk).unwrap(), messages);
        }

        #[test]
        fn arbitrary_bytes_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..200), chunk in 1usize..40) {
            let mut bytes = stream(&[]);
            bytes.extend_from_slice(&tail);
            let whole = decode_all(&bytes, bytes.len());
            let chunked = decode_all(&bytes, chunk);
            prop_assert_eq!(whole, chunked);
        }
    }
}
