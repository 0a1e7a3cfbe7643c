//! What a decoder reports about a malformed stream.

use crate::format::{FLAG_HAS_KEY, FLAG_HAS_TIMESTAMP, FrameKind, MAGIC};

/// Why a data stream cannot be decoded.
///
/// Every `offset` is a byte offset from the start of the stream (the first
/// byte of the preamble is byte 0), pointing at the field that is wrong.
/// A stream with an error cannot be resynchronised: the decoder that
/// reported it stays failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The stream does not start with [`MAGIC`]: the peer does not speak
    /// this format (or sent something else on the stream).
    #[error(
        "not a Weir data stream: it starts with \"{}\", not the magic bytes \"{}\"",
        .found.escape_ascii(),
        MAGIC.escape_ascii()
    )]
    BadMagic {
        /// The first 8 bytes of the stream.
        found: [u8; 8],
    },

    /// The preamble names a format version this decoder does not read.
    #[error(
        "the stream is in format version {found}, but this decoder reads only version {supported}"
    )]
    UnsupportedVersion {
        /// The version in the preamble.
        found: u16,
        /// The version this decoder reads ([`crate::VERSION`]).
        supported: u16,
    },

    /// A frame header's kind byte names no kind of frame.
    #[error("unknown frame kind {kind} at stream byte {offset} (known kinds are 1 to 5)")]
    UnknownFrameKind {
        /// The kind byte.
        kind: u8,
        /// Offset of the kind byte (the start of the frame).
        offset: u64,
    },

    /// A frame header announces a body longer than the decoder's limit;
    /// reported as soon as the header arrives, before the body is buffered.
    #[error(
        "the {kind} frame at stream byte {offset} announces a body of {len} bytes, \
         more than the limit of {limit} bytes"
    )]
    FrameTooLarge {
        /// The frame's kind.
        kind: FrameKind,
        /// The announced body length in bytes.
        len: u32,
        /// The decoder's limit in bytes ([`crate::FrameDecoder::new`]).
        limit: usize,
        /// Offset of the frame's first byte.
        offset: u64,
    },

    /// A frame's body does not hold what its kind and its own lengths say:
    /// a field or a length-prefixed key or value runs past the end of the
    /// body, a record count exceeds what the body can hold, bytes follow
    /// the last record, or a fixed-size body has the wrong length.
    #[error("malformed {kind} frame at stream byte {offset}: {detail}")]
    MalformedBody {
        /// The frame's kind.
        kind: FrameKind,
        /// Offset of the first byte that does not fit.
        offset: u64,
        /// What is wrong, naming the record and field where there is one.
        detail: String,
    },

    /// A record's flags byte has a bit set that the format does not define.
    #[error(
        "record {record} of the batch frame has flags {flags:#04x} at stream byte {offset}: \
         only {FLAG_HAS_KEY:#04x} (has key) and {FLAG_HAS_TIMESTAMP:#04x} (has timestamp) may be set"
    )]
    BadFlags {
        /// The flags byte.
        flags: u8,
        /// Index of the record in its batch (from 0).
        record: u32,
        /// Offset of the flags byte.
        offset: u64,
    },

    /// A watermark status frame's body byte is neither
    /// [`crate::STATUS_ACTIVE`] nor [`crate::STATUS_IDLE`].
    #[error(
        "watermark status frame holds {value} at stream byte {offset}: \
         expected 0 (active) or 1 (idle)"
    )]
    UnknownWatermarkStatus {
        /// The body byte.
        value: u8,
        /// Offset of the body byte.
        offset: u64,
    },

    /// The stream ended inside the preamble or inside a frame
    /// ([`crate::FrameDecoder::finish`]).
    #[error(
        "the stream ended {buffered} bytes into the {part} that starts at stream byte {offset}"
    )]
    TruncatedStream {
        /// `"preamble"` or `"frame"`.
        part: &'static str,
        /// Bytes of that part that did arrive.
        buffered: usize,
        /// Offset of the part's first byte.
        offset: u64,
    },
}
