//! The packed batch format of `weir:operator@0.4.0`'s `packed-handler`.
//!
//! `handler.process` moves a batch as `list<stream-record>`: the canonical
//! ABI then allocates guest memory once per key and value (a call back into
//! the guest's `cabi_realloc` each) and lifts every output record on its
//! own. `packed-handler.process-packed` moves the same batch, and its
//! outputs, as one `list<u8>` each way: one allocation and one copy per
//! batch. This crate reads and writes those buffers; the host
//! (`weir-wasm`) and the Rust guest SDK (`weir-guest`) both use it, so the
//! two sides cannot drift apart.
//!
//! # Format
//! All integers are little-endian; lengths are `u32` byte counts.
//!
//! A **batch** is its records one after another, nothing before or after:
//!
//! ```text
//! record = flags:u8 [timestamp:i64] [key_len:u32 key] value_len:u32 value
//! ```
//!
//! `flags` bit 0 ([`HAS_KEY`]) says a key follows, bit 1
//! ([`HAS_TIMESTAMP`]) that an event time (ms since the Unix epoch) does;
//! the other bits are zero.
//!
//! An **output buffer** is the outputs one after another, each led by a tag:
//!
//! ```text
//! output = 0:u8 record                                  -- emit
//!        | 1:u8 name_len:u32 name record                -- side output `name` (UTF-8)
//!        | 2:u8 input:u32 message_len:u32 message       -- error of input record `input` (UTF-8)
//! ```
//!
//! Readers check every length against the buffer and return a
//! [`FormatError`] for anything malformed: a guest's bytes never panic the
//! host.

use std::fmt;

/// `flags` bit: a key follows the timestamp.
pub const HAS_KEY: u8 = 1;
/// `flags` bit: an event-time timestamp follows the flags.
pub const HAS_TIMESTAMP: u8 = 2;

const TAG_EMIT: u8 = 0;
const TAG_SIDE: u8 = 1;
const TAG_ERROR: u8 = 2;

/// A record of a packed buffer, borrowing its bytes from the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Partitioning key; `None` on a non-keyed stream.
    pub key: Option<&'a [u8]>,
    /// The payload.
    pub value: &'a [u8],
    /// Event time in ms since the Unix epoch.
    pub timestamp: Option<i64>,
}

/// One output of a packed output buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputRef<'a> {
    /// A record for the main output.
    Emit(RecordRef<'a>),
    /// A record for the named side output.
    Side {
        /// Name of the side output.
        output: &'a str,
        /// The record.
        record: RecordRef<'a>,
    },
    /// A failure attributed to input record `input` (0-based) of the batch.
    Error {
        /// Index of the input record.
        input: u32,
        /// Why it failed.
        message: &'a str,
    },
}

/// A malformed packed buffer: what was wrong and at which byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// Byte offset in the buffer where the bad item starts.
    pub offset: usize,
    /// What is wrong there.
    pub reason: &'static str,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed packed batch at byte {}: {}",
            self.offset, self.reason
        )
    }
}

impl std::error::Error for FormatError {}

/// Appends one record to a batch or output buffer (without an output tag).
///
/// # Panics
/// When the key or value is 4 GiB or longer (a `u32` length cannot say so).
pub fn write_record(buf: &mut Vec<u8>, key: Option<&[u8]>, value: &[u8], timestamp: Option<i64>) {
    let slot = begin_record(buf, key, timestamp);
    buf.extend_from_slice(value);
    finish_value(buf, slot);
}

/// Where a value's length goes once the value is written (see [`begin_record`]).
#[derive(Debug)]
#[must_use = "call finish_value after writing the value"]
pub struct ValueSlot(usize);

/// Starts a record whose value the caller then appends to `buf` directly
/// (for example with `serde_json::to_writer`), saving a copy; call
/// [`finish_value`] afterwards.
///
/// # Panics
/// When the key is 4 GiB or longer.
pub fn begin_record(buf: &mut Vec<u8>, key: Option<&[u8]>, timestamp: Option<i64>) -> ValueSlot {
    let mut flags = 0;
    if key.is_some() {
        flags |= HAS_KEY;
    }
    if timestamp.is_some() {
        flags |= HAS_TIMESTAMP;
    }
    buf.push(flags);
    if let Some(ts) = timestamp {
        buf.extend_from_slice(&ts.to_le_bytes());
    }
    if let Some(key) = key {
        put_bytes(buf, key);
    }
    let slot = buf.len();
    buf.extend_from_slice(&[0; 4]);
    ValueSlot(slot)
}

/// Ends the record [`begin_record`] started: everything appended to `buf`
/// since then is its value.
///
/// # Panics
/// When the value is 4 GiB or longer, or `buf` was truncated below the slot.
pub fn finish_value(buf: &mut [u8], slot: ValueSlot) {
    let start = slot.0 + 4;
    let len = u32::try_from(buf.len() - start).expect("a record value is under 4 GiB");
    buf[slot.0..start].copy_from_slice(&len.to_le_bytes());
}

/// Appends the tag of an emitted record; a record ([`write_record`] or
/// [`begin_record`]) must follow.
pub fn begin_emit(buf: &mut Vec<u8>) {
    buf.push(TAG_EMIT);
}

/// Appends the tag and name of a side-output record; a record must follow.
///
/// # Panics
/// When the name is 4 GiB or longer.
pub fn begin_side(buf: &mut Vec<u8>, output: &str) {
    buf.push(TAG_SIDE);
    put_bytes(buf, output.as_bytes());
}

/// Appends an error of input record `input`.
///
/// # Panics
/// When the message is 4 GiB or longer.
pub fn write_error(buf: &mut Vec<u8>, input: u32, message: &str) {
    buf.push(TAG_ERROR);
    buf.extend_from_slice(&input.to_le_bytes());
    put_bytes(buf, message.as_bytes());
}

fn put_bytes(buf: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).expect("a packed field is under 4 GiB");
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(bytes);
}

/// A cursor over a packed buffer that checks every read.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], FormatError> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.buf.len());
        match end {
            Some(end) => {
                let bytes = &self.buf[self.pos..end];
                self.pos = end;
                Ok(bytes)
            }
            None => Err(FormatError {
                offset: self.pos,
                reason: what,
            }),
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, FormatError> {
        let mut raw = [0; 4];
        raw.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_le_bytes(raw))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, FormatError> {
        let mut raw = [0; 8];
        raw.copy_from_slice(self.take(8, what)?);
        Ok(i64::from_le_bytes(raw))
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], FormatError> {
        let len = self.u32(what)? as usize;
        self.take(len, what)
    }

    fn text(&mut self, what: &'static str) -> Result<&'a str, FormatError> {
        let start = self.pos;
        let bytes = self.bytes(what)?;
        std::str::from_utf8(bytes).map_err(|_| FormatError {
            offset: start,
            reason: "text is not UTF-8",
        })
    }

    fn record(&mut self) -> Result<RecordRef<'a>, FormatError> {
        let start = self.pos;
        let flags = self.u8("record flags cut short")?;
        if flags & !(HAS_KEY | HAS_TIMESTAMP) != 0 {
            return Err(FormatError {
                offset: start,
                reason: "unknown record flags",
            });
        }
        let timestamp = if flags & HAS_TIMESTAMP != 0 {
            Some(self.i64("timestamp cut short")?)
        } else {
            None
        };
        let key = if flags & HAS_KEY != 0 {
            Some(self.bytes("key cut short")?)
        } else {
            None
        };
        let value = self.bytes("value cut short")?;
        Ok(RecordRef {
            key,
            value,
            timestamp,
        })
    }

    fn output(&mut self) -> Result<OutputRef<'a>, FormatError> {
        let start = self.pos;
        match self.u8("output tag cut short")? {
            TAG_EMIT => Ok(OutputRef::Emit(self.record()?)),
            TAG_SIDE => {
                let output = self.text("side output name cut short")?;
                Ok(OutputRef::Side {
                    output,
                    record: self.record()?,
                })
            }
            TAG_ERROR => {
                let input = self.u32("error input index cut short")?;
                Ok(OutputRef::Error {
                    input,
                    message: self.text("error message cut short")?,
                })
            }
            _ => Err(FormatError {
                offset: start,
                reason: "unknown output tag",
            }),
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// The items of a packed buffer, in order, each read by `read`. After an
/// error the iterator ends.
pub struct Items<'a, T> {
    reader: Reader<'a>,
    failed: bool,
    read: fn(&mut Reader<'a>) -> Result<T, FormatError>,
}

impl<T> Iterator for Items<'_, T> {
    type Item = Result<T, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.at_end() {
            return None;
        }
        let item = (self.read)(&mut self.reader);
        self.failed = item.is_err();
        Some(item)
    }
}

/// The records of a packed batch.
pub type Records<'a> = Items<'a, RecordRef<'a>>;

/// The outputs of a packed output buffer.
pub type Outputs<'a> = Items<'a, OutputRef<'a>>;

/// Reads a packed batch.
pub fn records(batch: &[u8]) -> Records<'_> {
    Items {
        reader: Reader { buf: batch, pos: 0 },
        failed: false,
        read: Reader::record,
    }
}

/// Reads a packed output buffer.
pub fn outputs(buffer: &[u8]) -> Outputs<'_> {
    Items {
        reader: Reader {
            buf: buffer,
            pos: 0,
        },
        failed: false,
        read: Reader::output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (key, value, timestamp)
    type Owned = (Option<Vec<u8>>, Vec<u8>, Option<i64>);

    fn sample_records() -> Vec<Owned> {
        vec![
            (None, b"{\"a\":1}".to_vec(), None),
            (Some(b"k1".to_vec()), b"x".to_vec(), Some(-5)),
            (Some(Vec::new()), Vec::new(), Some(i64::MAX)),
            (None, vec![0, 255, 7], Some(i64::MIN)),
        ]
    }

    #[test]
    fn a_batch_reads_back_as_written() {
        let mut buf = Vec::new();
        for (key, value, ts) in sample_records() {
            write_record(&mut buf, key.as_deref(), &value, ts);
        }
        let back: Vec<_> = records(&buf)
            .map(|r| r.map(|r| (r.key.map(<[u8]>::to_vec), r.value.to_vec(), r.timestamp)))
            .collect::<Result<_, _>>()
            .expect("well-formed");
        assert_eq!(back, sample_records());
    }

    #[test]
    fn an_empty_buffer_is_an_empty_batch() {
        assert_eq!(records(&[]).count(), 0);
        assert_eq!(outputs(&[]).count(), 0);
    }

    #[test]
    fn outputs_read_back_as_written_including_values_written_in_place() {
        let mut buf = Vec::new();
        begin_emit(&mut buf);
        let slot = begin_record(&mut buf, Some(b"key"), Some(42));
        buf.extend_from_slice(b"{\"n\":");
        buf.extend_from_slice(b"7}");
        finish_value(&mut buf, slot);
        write_error(&mut buf, 3, "bad \u{e9}");
        begin_side(&mut buf, "late");
        write_record(&mut buf, None, b"v", None);
        let back: Vec<_> = outputs(&buf)
            .collect::<Result<_, _>>()
            .expect("well-formed");
        assert_eq!(
            back,
            vec![
                OutputRef::Emit(RecordRef {
                    key: Some(b"key"),
                    value: b"{\"n\":7}",
                    timestamp: Some(42)
                }),
                OutputRef::Error {
                    input: 3,
                    message: "bad \u{e9}"
                },
                OutputRef::Side {
                    output: "late",
                    record: RecordRef {
                        key: None,
                        value: b"v",
                        timestamp: None
                    }
                },
            ]
        );
    }

    #[test]
    fn every_truncation_of_a_buffer_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        begin_side(&mut buf, "side");
        write_record(&mut buf, Some(b"key"), b"value", Some(1));
        write_error(&mut buf, 9, "message");
        let whole = outputs(&buf).count();
        assert_eq!(whole, 2);
        for cut in 1..buf.len() {
            let items: Vec<_> = outputs(&buf[..cut]).collect();
            let last = items.last().expect("a non-empty prefix yields an item");
            if cut == buf.len() - (1 + 4 + 4 + 7) {
                // Cut exactly between the two outputs: a shorter, valid buffer.
                assert!(last.is_ok(), "cut at {cut}");
            } else {
                assert!(last.is_err(), "cut at {cut} gave {items:?}");
            }
        }
    }

    #[test]
    fn unknown_tags_flags_and_bad_utf8_are_reported_with_their_offset() {
        assert_eq!(
            outputs(&[9]).next(),
            Some(Err(FormatError {
                offset: 0,
                reason: "unknown output tag"
            }))
        );
        assert_eq!(
            records(&[4, 0, 0, 0, 0]).next(),
            Some(Err(FormatError {
                offset: 0,
                reason: "unknown record flags"
            }))
        );
        let bad_message = [TAG_ERROR, 0, 0, 0, 0, 1, 0, 0, 0, 0xff];
        assert_eq!(
            outputs(&bad_message).next(),
            Some(Err(FormatError {
                offset: 5,
                reason: "text is not UTF-8"
            }))
        );
    }

    #[test]
    fn a_length_past_the_end_is_an_error() {
        let mut buf = vec![0];
        buf.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            records(&buf).next(),
            Some(Err(FormatError {
                offset: 5,
                reason: "value cut short"
            }))
        );
    }
}
