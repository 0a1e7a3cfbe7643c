//! The wire formats of Weir's cluster: the bytes in which the
//! [`StreamElement`]s of one producer→consumer channel travel between
//! processes (one QUIC stream per channel), and (in [`control`]) the framing
//! of the control messages between TaskManagers and the JobManager.
//! [`messages`] holds those control messages and [`task`] the task-level
//! messages inside them, so that everything a process decodes from a peer
//! is defined (and fuzzed) here, below the task runtime.
//!
//! - [`encode_preamble`] and [`encode`] append a stream's preamble and one
//!   element's frame to a `Vec<u8>`.
//! - [`FrameDecoder`] turns the bytes back into elements as they arrive, in
//!   chunks of any size, and refuses malformed or hostile input with a
//!   [`DecodeError`] that says what is wrong and at which byte, never with a
//!   panic or an allocation sized by an unchecked length.
//!
//! # Data stream format, version 1
//!
//! This section is the specification: a decoder in another language can be
//! written from it alone.
//!
//! Every integer is little-endian, `u8`/`u16`/`u32`/`u64` unsigned and
//! `i64` two's complement; there is no padding or alignment anywhere.
//! Byte offsets in [`DecodeError`]s count from the first byte of the stream
//! (the first byte of the preamble is byte 0).
//!
//! A stream is a preamble followed by any number of frames, back to back.
//! The format has no end marker of its own: the stream ends where the
//! transport's stream ends, which must be at a frame boundary (see
//! [`FrameDecoder::finish`]).
//!
//! ## Preamble (10 bytes)
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 8 | magic: ASCII `WEIRDATA` (`57 45 49 52 44 41 54 41`), [`MAGIC`] |
//! | 8 | 2 | format version, `u16`: `1` ([`VERSION`]) |
//!
//! A decoder refuses a stream whose first 8 bytes are not the magic, and a
//! version it does not read (this crate reads version 1 only). A change to
//! anything below comes with a new version.
//!
//! ## Frame (5-byte header, then the body)
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0 | 1 | kind, `u8` (table below) |
//! | 1 | 4 | body length *L* in bytes, `u32` (the header not included) |
//! | 5 | *L* | body |
//!
//! | kind | element | body |
//! |-----:|---------|------|
//! | 1 | `Batch` | a batch, described below; at least 4 bytes |
//! | 2 | `Watermark` | exactly 8 bytes: `i64`, event time in ms since the Unix epoch |
//! | 3 | `WatermarkStatus` | exactly 1 byte: `0` = active, `1` = idle |
//! | 4 | `Barrier` | exactly 8 bytes: `u64`, the checkpoint id |
//! | 5 | `EndOfInput` | exactly 0 bytes |
//!
//! Kinds 0 and 6–255 are refused (not skipped): a new kind comes with a new
//! version. A decoder refuses a body length above its configured limit as
//! soon as the header has arrived, before it waits for or stores the body.
//!
//! ## Batch body
//!
//! | size | field |
//! |-----:|-------|
//! | 4 | record count *n*, `u32` |
//! | … | *n* records, back to back |
//!
//! Each record (`Record` with its `Origin`):
//!
//! | size | field | present |
//! |-----:|-------|---------|
//! | 1 | flags, `u8`: bit 0 (`0x01`) has key, bit 1 (`0x02`) has timestamp; bits 2–7 are 0 | always |
//! | 8 | timestamp, `i64`, ms since the Unix epoch | if has timestamp |
//! | 4 | key length *k*, `u32` | if has key |
//! | *k* | key bytes | if has key |
//! | 4 | value length *v*, `u32` | always |
//! | *v* | value bytes | always |
//! | 4 | origin split, `u32` | always |
//! | 8 | origin position, `u64` | always |
//!
//! A record takes at least 17 bytes ([`MIN_RECORD_LEN`]), so a decoder
//! refuses a count above `(L - 4) / 17` before it allocates for the
//! records. Every length must fit in what is left of the body, and the
//! records must fill the body exactly: a byte after the last record is an
//! error. A record without a key is not the same as one with an empty key
//! (flags bit 0 set, *k* = 0), nor is an absent timestamp the same as any
//! timestamp value.
//!
//! ## Example
//!
//! A batch of one record with key `k`, value `{}`, timestamp 7 and origin
//! (split 2, position 9), as a frame:
//!
//! ```text
//! 01                          kind 1: batch
//! 24 00 00 00                 body length 36
//! 01 00 00 00                 1 record
//! 03                          flags: has key, has timestamp
//! 07 00 00 00 00 00 00 00     timestamp 7
//! 01 00 00 00 6b              key: 1 byte, "k"
//! 02 00 00 00 7b 7d           value: 2 bytes, "{}"
//! 02 00 00 00                 split 2
//! 09 00 00 00 00 00 00 00     position 9
//! ```
//!
//! [`StreamElement`]: weir_types::StreamElement

pub mod control;
mod decode;
mod encode;
mod error;
mod format;
pub mod messages;
pub mod task;

pub use control::{ControlDecoder, ControlError, encode_control, encode_control_preamble};
pub use decode::FrameDecoder;
pub use encode::{encode, encode_preamble};
pub use error::DecodeError;
pub use format::{
    FLAG_HAS_KEY, FLAG_HAS_TIMESTAMP, FRAME_HEADER_LEN, FrameKind, MAGIC, MIN_RECORD_LEN,
    PREAMBLE_LEN, STATUS_ACTIVE, STATUS_IDLE, VERSION,
};

#[cfg(test)]
mod proptests;
