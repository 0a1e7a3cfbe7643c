//! Reading elements back from a stream that arrives in chunks.

use bytes::{Buf, Bytes, BytesMut};
use weir_types::{Batch, Origin, Record, StreamElement, WatermarkStatus};

use crate::error::DecodeError;
use crate::format::{
    FLAG_HAS_KEY, FLAG_HAS_TIMESTAMP, FRAME_HEADER_LEN, FrameKind, MAGIC, MIN_RECORD_LEN,
    PREAMBLE_LEN, STATUS_ACTIVE, STATUS_IDLE, VERSION,
};

/// Records a batch frame pre-allocates room for, whatever its count says.
const MAX_PREALLOCATED_RECORDS: usize = 4096;

/// Decodes one data stream (preamble, then frames) from bytes that arrive
/// in chunks of any size, split anywhere.
///
/// Feed it with [`push`](Self::push) and take elements with
/// [`next`](Self::next) until it returns `Ok(None)`; when the transport's
/// stream ends, [`finish`](Self::finish) tells whether it ended cleanly.
///
/// It holds only the bytes pushed and not decoded yet, and allocates
/// nothing on the word of the peer: a frame's body length is checked
/// against `max_frame_bytes` as soon as its 5-byte header arrives (before
/// the body is waited for), and every count and length inside a body
/// against what is left of the body, before anything is allocated for it. The records of a batch share the frame's
/// buffer: each value is a [`Bytes::slice`] of it (keys, `Vec<u8>`s, are
/// copied).
///
/// After an error the decoder is failed for good: [`next`](Self::next) and
/// [`finish`](Self::finish) return that error again, and
/// [`push`](Self::push) drops its input.
#[derive(Debug)]
pub struct FrameDecoder {
    /// The largest frame body accepted, in bytes.
    max_frame_bytes: usize,
    /// Bytes received and not decoded yet.
    buffer: BytesMut,
    /// Stream offset of `buffer[0]`.
    offset: u64,
    /// Whether the preamble was read and accepted.
    started: bool,
    /// The error that failed the decoder, if one did.
    failed: Option<DecodeError>,
}

impl FrameDecoder {
    /// A decoder for a new stream (it expects the preamble first) that
    /// refuses frames whose body is longer than `max_frame_bytes` bytes
    /// (the 5-byte header not counted).
    #[must_use]
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max_frame_bytes,
            buffer: BytesMut::new(),
            offset: 0,
            started: false,
            failed: None,
        }
    }

    /// Appends the next bytes of the stream (any number, an empty chunk
    /// included). Decodes nothing: call [`next`](Self::next) for that.
    /// A failed decoder drops the bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.failed.is_none() {
            self.buffer.extend_from_slice(chunk);
        }
    }

    /// The next element of the stream: `Ok(Some(element))`, or `Ok(None)`
    /// when the bytes pushed so far end before the next complete frame (the
    /// preamble is read on the first call that has all of it).
    ///
    /// # Errors
    /// A [`DecodeError`] when the preamble is not that of a version 1
    /// stream, or the next frame is malformed or longer than the limit
    /// (see the variants). The error is reported as soon as the bytes that
    /// show it are there, and again on every later call.
    #[expect(
        clippy::should_implement_trait,
        reason = "`None` means `push more bytes`, not the end: Iterator's contract does not fit"
    )]
    pub fn next(&mut self) -> Result<Option<StreamElement>, DecodeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        self.decode_next().inspect_err(|error| {
            self.failed = Some(error.clone());
            self.buffer = BytesMut::new();
        })
    }

    /// Checks that the stream ended at a frame boundary after the
    /// preamble. Call it when the transport's stream has ended and
    /// [`next`](Self::next) has returned `Ok(None)`: bytes still buffered
    /// then are an incomplete preamble or frame. (Called earlier, it takes
    /// complete frames not yet taken for a truncated one.)
    ///
    /// # Errors
    /// The decoder's error if it failed; otherwise
    /// [`DecodeError::TruncatedStream`] when no complete preamble arrived,
    /// or bytes of an incomplete frame are left.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if !self.started {
            return Err(DecodeError::TruncatedStream {
                part: "preamble",
                buffered: self.buffer.len(),
                offset: self.offset,
            });
        }
        if !self.buffer.is_empty() {
            return Err(DecodeError::TruncatedStream {
                part: "frame",
                buffered: self.buffer.len(),
                offset: self.offset,
            });
        }
        Ok(())
    }

    /// Bytes pushed and not decoded yet (at most the preamble or one
    /// frame, once [`next`](Self::next) returned `Ok(None)`).
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }

    /// [`next`](Self::next) without the failure bookkeeping.
    fn decode_next(&mut self) -> Result<Option<StreamElement>, DecodeError> {
        if !self.started {
            if self.buffer.len() < PREAMBLE_LEN {
                return Ok(None);
            }
            let mut found = [0; MAGIC.len()];
            found.copy_from_slice(&self.buffer[..MAGIC.len()]);
            if found != MAGIC {
                return Err(DecodeError::BadMagic { found });
            }
            let version = u16::from_le_bytes([self.buffer[8], self.buffer[9]]);
            if version != VERSION {
                return Err(DecodeError::UnsupportedVersion {
                    found: version,
                    supported: VERSION,
                });
            }
            self.consume(PREAMBLE_LEN);
            self.started = true;
        }

        if self.buffer.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let frame_offset = self.offset;
        let kind = FrameKind::from_code(self.buffer[0]).ok_or(DecodeError::UnknownFrameKind {
            kind: self.buffer[0],
            offset: frame_offset,
        })?;
        let len = u32::from_le_bytes([
            self.buffer[1],
            self.buffer[2],
            self.buffer[3],
            self.buffer[4],
        ]);
        let frame_len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= self.max_frame_bytes)
            .and_then(|len| len.checked_add(FRAME_HEADER_LEN))
            .ok_or(DecodeError::FrameTooLarge {
                kind,
                len,
                limit: self.max_frame_bytes,
                offset: frame_offset,
            })?;
        if self.buffer.len() < frame_len {
            return Ok(None);
        }
        let mut frame = self.buffer.split_to(frame_len).freeze();
        self.offset += frame_len as u64;
        frame.advance(FRAME_HEADER_LEN);
        let body = Body {
            bytes: frame,
            at: 0,
            offset: frame_offset + FRAME_HEADER_LEN as u64,
            kind,
            record: None,
        };
        body.decode().map(Some)
    }

    /// Drops `n` decoded bytes from the front of the buffer.
    fn consume(&mut self, n: usize) {
        self.buffer.advance(n);
        self.offset += n as u64;
    }
}

/// A cursor over one frame's body.
struct Body {
    /// The body (the frame without its header).
    bytes: Bytes,
    /// Index in `bytes` of the next field.
    at: usize,
    /// Stream offset of `bytes[0]`.
    offset: u64,
    /// The frame's kind, for errors.
    kind: FrameKind,
    /// The record being read, for errors.
    record: Option<u32>,
}

impl Body {
    /// The element the body holds, checking that it fills the body exactly.
    fn decode(mut self) -> Result<StreamElement, DecodeError> {
        if let Some(expected) = self.kind.fixed_body_len()
            && expected != self.bytes.len()
        {
            return Err(self.malformed(format!(
                "its body must be {expected} bytes, but the header announces {}",
                self.bytes.len()
            )));
        }
        let element = match self.kind {
            FrameKind::Batch => StreamElement::Batch(self.batch()?),
            FrameKind::Watermark => {
                StreamElement::Watermark(i64::from_le_bytes(self.array("watermark")?))
            }
            FrameKind::WatermarkStatus => {
                let at = self.stream_offset();
                StreamElement::WatermarkStatus(match self.array::<1>("status")? {
                    [STATUS_ACTIVE] => WatermarkStatus::Active,
                    [STATUS_IDLE] => WatermarkStatus::Idle,
                    [value] => {
                        return Err(DecodeError::UnknownWatermarkStatus { value, offset: at });
                    }
                })
            }
            FrameKind::Barrier => {
                StreamElement::Barrier(u64::from_le_bytes(self.array("checkpoint id")?))
            }
            FrameKind::EndOfInput => StreamElement::EndOfInput,
        };
        Ok(element)
    }

    /// A batch body: the count, the records, and nothing after them.
    fn batch(&mut self) -> Result<Batch, DecodeError> {
        let count = u32::from_le_bytes(self.array("record count")?);
        let room = self.remaining() / MIN_RECORD_LEN;
        if usize::try_from(count).map_or(true, |count| count > room) {
            return Err(DecodeError::MalformedBody {
                kind: self.kind,
                offset: self.offset,
                detail: format!(
                    "it announces {count} records, but the {} bytes after the count hold at \
                     most {room} (a record takes at least {MIN_RECORD_LEN} bytes)",
                    self.remaining()
                ),
            });
        }
        // Room for the records up front, but no more than a typical batch:
        // a record slot is several times its smallest encoding.
        let mut batch = Batch::with_capacity((count as usize).min(MAX_PREALLOCATED_RECORDS));
        for index in 0..count {
            self.record = Some(index);
            let flags_at = self.stream_offset();
            let [flags] = self.array("flags")?;
            if flags & !(FLAG_HAS_KEY | FLAG_HAS_TIMESTAMP) != 0 {
                return Err(DecodeError::BadFlags {
                    flags,
                    record: index,
                    offset: flags_at,
                });
            }
            let timestamp = if flags & FLAG_HAS_TIMESTAMP != 0 {
                Some(i64::from_le_bytes(self.array("timestamp")?))
            } else {
                None
            };
            let key = if flags & FLAG_HAS_KEY != 0 {
                Some(self.prefixed("key")?.to_vec())
            } else {
                None
            };
            let value = self.prefixed("value")?;
            let split = u32::from_le_bytes(self.array("origin split")?);
            let position = u64::from_le_bytes(self.array("origin position")?);
            batch.push(
                Record {
                    key,
                    value,
                    timestamp,
                },
                Origin { split, position },
            );
        }
        self.record = None;
        if self.remaining() != 0 {
            return Err(self.malformed(format!(
                "{} bytes follow the last of its {count} records",
                self.remaining()
            )));
        }
        Ok(batch)
    }

    /// Bytes of the body not read yet.
    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Stream offset of the next field.
    fn stream_offset(&self) -> u64 {
        self.offset + self.at as u64
    }

    /// The next `N` bytes, the field `what`.
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], DecodeError> {
        if self.remaining() < N {
            return Err(self.malformed(format!(
                "its {what} needs {N} bytes, but only {} are left in the body",
                self.remaining()
            )));
        }
        let mut field = [0; N];
        field.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        Ok(field)
    }

    /// A `u32`-length-prefixed byte string, as a slice of the body.
    fn prefixed(&mut self, what: &str) -> Result<Bytes, DecodeError> {
        let len = u32::from_le_bytes(self.array(what)?);
        match usize::try_from(len) {
            Ok(len) if len <= self.remaining() => {
                let start = self.at;
                self.at += len;
                Ok(self.bytes.slice(start..self.at))
            }
            _ => {
                // Point at the length field, 4 bytes back.
                self.at -= 4;
                Err(self.malformed(format!(
                    "its {what} length announces {len} bytes, but only {} bytes follow in the body",
                    self.remaining() - 4
                )))
            }
        }
    }

    /// A [`DecodeError::MalformedBody`] at the next field.
    fn malformed(&self, problem: String) -> DecodeError {
        let detail = match self.record {
            Some(index) => format!("record {index}: {problem}"),
            None => problem,
        };
        DecodeError::MalformedBody {
            kind: self.kind,
            offset: self.stream_offset(),
            detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use weir_types::Bytes;

    use super::*;
    use crate::{encode, encode_preamble};

    const LIMIT: usize = 1 << 20;

    /// A preamble followed by `frames`.
    fn stream(frames: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_preamble(&mut bytes);
        bytes.extend_from_slice(frames);
        bytes
    }

    /// A frame of kind `kind` with `body`, its length announced truthfully.
    fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
        let mut bytes = vec![kind];
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.extend_from_slice(body);
        bytes
    }

    /// The first result `next` gives for `bytes` pushed at once.
    fn decode_first(bytes: &[u8]) -> Result<Option<StreamElement>, DecodeError> {
        let mut decoder = FrameDecoder::new(LIMIT);
        decoder.push(bytes);
        decoder.next()
    }

    fn batch(records: Vec<Record>) -> StreamElement {
        StreamElement::Batch(Batch::derived(records))
    }

    fn record(value: &'static [u8]) -> Record {
        Record {
            key: None,
            value: Bytes::from_static(value),
            timestamp: None,
        }
    }

    #[test]
    fn elements_come_out_only_once_their_last_byte_arrived() {
        let mut bytes = Vec::new();
        encode_preamble(&mut bytes);
        encode(&StreamElement::Barrier(3), &mut bytes);
        encode(&batch(vec![record(b"abc")]), &mut bytes);
        let mut decoder = FrameDecoder::new(LIMIT);
        let mut elements = Vec::new();
        for (i, byte) in bytes.iter().enumerate() {
            decoder.push(std::slice::from_ref(byte));
            if let Some(element) = decoder.next().unwrap() {
                elements.push((i, element));
            }
        }
        assert_eq!(
            elements,
            [
                (PREAMBLE_LEN + 13 - 1, StreamElement::Barrier(3)),
                (bytes.len() - 1, batch(vec![record(b"abc")])),
            ]
        );
        assert_eq!(decoder.buffered(), 0);
        assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn record_values_are_slices_of_their_frame_buffer() {
        let mut bytes = Vec::new();
        encode_preamble(&mut bytes);
        encode(
            &batch(vec![record(b"first"), record(b"second")]),
            &mut bytes,
        );
        let Some(StreamElement::Batch(batch)) = decode_first(&bytes).unwrap() else {
            panic!("expected a batch");
        };
        let [first, second] = &batch.records[..] else {
            panic!("expected two records");
        };
        // The second value starts where the frame puts it: after the first
        // value, its origin (12 bytes), its flags (1) and its length (4).
        let distance = second.value.as_ptr() as usize - first.value.as_ptr() as usize;
        assert_eq!(distance, b"first".len() + 12 + 1 + 4);
    }

    #[test]
    fn a_stream_without_the_magic_bytes_is_refused() {
        let error = decode_first(b"GET / HTTP/1.1\r\n").unwrap_err();
        assert_eq!(
            error,
            DecodeError::BadMagic {
                found: *b"GET / HT"
            }
        );
        assert_eq!(
            error.to_string(),
            "not a Weir data stream: it starts with \"GET / HT\", not the magic bytes \"WEIRDATA\""
        );
    }

    #[test]
    fn an_unknown_format_version_is_refused_naming_both_versions() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&2u16.to_le_bytes());
        let error = decode_first(&bytes).unwrap_err();
        assert_eq!(
            error,
            DecodeError::UnsupportedVersion {
                found: 2,
                supported: 1
            }
        );
        assert!(error.to_string().contains("version 2"), "{error}");
        assert!(error.to_string().contains("only version 1"), "{error}");
    }

    #[test]
    fn an_unknown_frame_kind_is_refused_as_soon_as_its_header_arrives() {
        // The header announces a body that never comes.
        let mut bytes = stream(&[]);
        bytes.extend_from_slice(&[9, 100, 0, 0, 0]);
        assert_eq!(
            decode_first(&bytes),
            Err(DecodeError::UnknownFrameKind {
                kind: 9,
                offset: PREAMBLE_LEN as u64
            })
        );
        let kind_zero = stream(&frame(0, &[]));
        assert!(matches!(
            decode_first(&kind_zero),
            Err(DecodeError::UnknownFrameKind { kind: 0, .. })
        ));
    }

    #[test]
    fn a_frame_longer_than_the_limit_is_refused_before_allocating() {
        // A header announcing a 4 GiB body, and no body: the decoder must
        // refuse it from the header alone rather than wait for (and buffer)
        // the body.
        let mut decoder = FrameDecoder::new(LIMIT);
        decoder.push(&stream(&[1, 0xff, 0xff, 0xff, 0xff]));
        let error = decoder.next().unwrap_err();
        assert_eq!(
            error,
            DecodeError::FrameTooLarge {
                kind: FrameKind::Batch,
                len: u32::MAX,
                limit: LIMIT,
                offset: PREAMBLE_LEN as u64,
            }
        );
        assert_eq!(
            error.to_string(),
            "the batch frame at stream byte 10 announces a body of 4294967295 bytes, \
             more than the limit of 1048576 bytes"
        );
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn a_frame_exactly_at_the_limit_is_accepted() {
        let value = [7; 100];
        let mut element = Vec::new();
        encode(
            &batch(vec![Record {
                value: Bytes::copy_from_slice(&value),
                ..Record::default()
            }]),
            &mut element,
        );
        let body_len = element.len() - FRAME_HEADER_LEN;
        let mut decoder = FrameDecoder::new(body_len);
        decoder.push(&stream(&element));
        assert!(decoder.next().unwrap().is_some());
        let mut decoder = FrameDecoder::new(body_len - 1);
        decoder.push(&stream(&element));
        assert!(matches!(
            decoder.next(),
            Err(DecodeError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn a_record_count_beyond_what_the_body_holds_is_refused_before_allocating() {
        // 2^32 - 1 records announced in a body with room for 2: allocating
        // for the count first would abort the process.
        let mut body = u32::MAX.to_le_bytes().to_vec();
        body.extend_from_slice(&[0; 2 * MIN_RECORD_LEN + 3]);
        let error = decode_first(&stream(&frame(1, &body))).unwrap_err();
        let DecodeError::MalformedBody {
            kind: FrameKind::Batch,
            offset,
            detail,
        } = &error
        else {
            panic!("expected a malformed body, got {error:?}");
        };
        assert_eq!(*offset, (PREAMBLE_LEN + FRAME_HEADER_LEN) as u64);
        assert!(detail.contains("4294967295 records"), "{detail}");
        assert!(detail.contains("at most 2"), "{detail}");
    }

    #[test]
    fn a_value_length_past_the_end_of_the_body_is_refused_with_its_offset() {
        // One record: flags 0, value length 1000, then only 12 more bytes.
        let mut body = 1u32.to_le_bytes().to_vec();
        body.push(0);
        body.extend_from_slice(&1000u32.to_le_bytes());
        body.extend_from_slice(&[0; 12]);
        let error = decode_first(&stream(&frame(1, &body))).unwrap_err();
        let length_at = (PREAMBLE_LEN + FRAME_HEADER_LEN + 4 + 1) as u64;
        assert_eq!(
            error,
            DecodeError::MalformedBody {
                kind: FrameKind::Batch,
                offset: length_at,
                detail: "record 0: its value length announces 1000 bytes, \
                         but only 12 bytes follow in the body"
                    .into(),
            }
        );
        assert_eq!(
            error.to_string(),
            "malformed batch frame at stream byte 20: record 0: its value length \
             announces 1000 bytes, but only 12 bytes follow in the body"
        );
    }

    #[test]
    fn a_key_length_past_the_end_of_the_body_is_refused() {
        let mut body = 1u32.to_le_bytes().to_vec();
        body.push(FLAG_HAS_KEY);
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        body.extend_from_slice(&[0; 16]);
        let error = decode_first(&stream(&frame(1, &body))).unwrap_err();
        assert!(
            matches!(&error, DecodeError::MalformedBody { detail, .. }
                if detail.contains("key length announces 4294967295 bytes")),
            "{error:?}"
        );
    }

    #[test]
    fn a_record_cut_short_by_the_end_of_its_body_is_refused() {
        // One record announced, with a timestamp, in a body of 4 + 17
        // bytes (room for one record by the count check): its position is
        // cut short by the timestamp's 8 bytes.
        let mut body = 1u32.to_le_bytes().to_vec();
        body.push(FLAG_HAS_TIMESTAMP);
        body.extend_from_slice(&[0; 8]);
        body.extend_from_slice(&[0; 4 + 4]);
        let error = decode_first(&stream(&frame(1, &body))).unwrap_err();
        assert_eq!(
            error,
            DecodeError::MalformedBody {
                kind: FrameKind::Batch,
                offset: (PREAMBLE_LEN + FRAME_HEADER_LEN + body.len()) as u64,
                detail: "record 0: its origin position needs 8 bytes, but only 0 are \
                         left in the body"
                    .into(),
            }
        );
    }

    #[test]
    fn bytes_after_the_last_record_are_refused() {
        let mut bytes = Vec::new();
        encode(&batch(vec![record(b"v")]), &mut bytes);
        let mut body = bytes[FRAME_HEADER_LEN..].to_vec();
        body.push(0);
        let error = decode_first(&stream(&frame(1, &body))).unwrap_err();
        assert!(
            matches!(&error, DecodeError::MalformedBody { detail, offset, .. }
                if detail == "1 bytes follow the last of its 1 records"
                    && *offset == (PREAMBLE_LEN + bytes.len()) as u64),
            "{error:?}"
        );
    }

    #[test]
    fn a_batch_body_too_short_for_its_count_is_refused() {
        let error = decode_first(&stream(&frame(1, &[0, 0]))).unwrap_err();
        assert!(
            matches!(&error, DecodeError::MalformedBody { kind: FrameKind::Batch, detail, .. }
                if detail == "its record count needs 4 bytes, but only 2 are left in the body"),
            "{error:?}"
        );
    }

    #[test]
    fn a_fixed_size_frame_with_the_wrong_body_length_is_refused() {
        for (kind, body) in [(2, &[0u8; 7][..]), (3, &[0, 0]), (4, &[0; 9]), (5, &[0])] {
            let error = decode_first(&stream(&frame(kind, body))).unwrap_err();
            assert!(
                matches!(&error, DecodeError::MalformedBody { detail, .. }
                    if detail.contains(&format!("header announces {}", body.len()))),
                "{error:?}"
            );
        }
        let error = decode_first(&stream(&frame(2, &[0; 7]))).unwrap_err();
        assert_eq!(
            error.to_string(),
            "malformed watermark frame at stream byte 15: \
             its body must be 8 bytes, but the header announces 7"
        );
    }

    #[test]
    fn undefined_flag_bits_are_refused() {
        let mut bytes = Vec::new();
        encode(&batch(vec![record(b"a"), record(b"b")]), &mut bytes);
        let second_flags = FRAME_HEADER_LEN + 4 + MIN_RECORD_LEN + 1;
        bytes[second_flags] = 0x04;
        let error = decode_first(&stream(&bytes)).unwrap_err();
        assert_eq!(
            error,
            DecodeError::BadFlags {
                flags: 0x04,
                record: 1,
                offset: (PREAMBLE_LEN + second_flags) as u64,
            }
        );
        assert_eq!(
            error.to_string(),
            "record 1 of the batch frame has flags 0x04 at stream byte 37: \
             only 0x01 (has key) and 0x02 (has timestamp) may be set"
        );
    }

    #[test]
    fn an_unknown_watermark_status_is_refused() {
        assert_eq!(
            decode_first(&stream(&frame(3, &[2]))),
            Err(DecodeError::UnknownWatermarkStatus {
                value: 2,
                offset: (PREAMBLE_LEN + FRAME_HEADER_LEN) as u64,
            })
        );
    }

    #[test]
    fn a_failed_decoder_stays_failed_and_drops_what_it_is_pushed() {
        let mut decoder = FrameDecoder::new(LIMIT);
        decoder.push(&stream(&frame(7, &[])));
        let error = decoder.next().unwrap_err();
        assert!(matches!(error, DecodeError::UnknownFrameKind { .. }));
        let mut good = Vec::new();
        encode(&StreamElement::EndOfInput, &mut good);
        decoder.push(&good);
        assert_eq!(decoder.buffered(), 0);
        assert_eq!(decoder.next(), Err(error.clone()));
        assert_eq!(decoder.finish(), Err(error));
    }

    #[test]
    fn a_stream_that_ends_inside_a_frame_is_reported_truncated() {
        let mut bytes = Vec::new();
        encode_preamble(&mut bytes);
        encode(&StreamElement::EndOfInput, &mut bytes);
        encode(&StreamElement::Barrier(1), &mut bytes);
        bytes.truncate(bytes.len() - 3);
        let mut decoder = FrameDecoder::new(LIMIT);
        decoder.push(&bytes);
        assert_eq!(decoder.next(), Ok(Some(StreamElement::EndOfInput)));
        assert_eq!(decoder.next(), Ok(None));
        let error = decoder.finish().unwrap_err();
        assert_eq!(
            error,
            DecodeError::TruncatedStream {
                part: "frame",
                buffered: 10,
                offset: (PREAMBLE_LEN + FRAME_HEADER_LEN) as u64,
            }
        );
        assert_eq!(
            error.to_string(),
            "the stream ended 10 bytes into the frame that starts at stream byte 15"
        );
    }

    #[test]
    fn a_stream_that_ends_before_its_preamble_is_reported_truncated() {
        let decoder = FrameDecoder::new(LIMIT);
        assert!(matches!(
            decoder.finish(),
            Err(DecodeError::TruncatedStream {
                part: "preamble",
                buffered: 0,
                offset: 0
            })
        ));
        let mut decoder = FrameDecoder::new(LIMIT);
        decoder.push(&MAGIC[..3]);
        assert_eq!(decoder.next(), Ok(None));
        assert!(matches!(
            decoder.finish(),
            Err(DecodeError::TruncatedStream {
                part: "preamble",
                buffered: 3,
                ..
            })
        ));
    }

    #[test]
    fn a_stream_that_ends_after_a_whole_frame_finishes_cleanly() {
        let mut bytes = Vec::new();
        encode_preamble(&mut bytes);
        let mut decoder = FrameDecoder::new(LIMIT);
        decoder.push(&bytes);
        assert_eq!(decoder.next(), Ok(None));
        assert_eq!(decoder.finish(), Ok(()), "a stream of no frames");
        let mut frame = Vec::new();
        encode(&StreamElement::EndOfInput, &mut frame);
        decoder.push(&frame);
        assert_eq!(decoder.next(), Ok(Some(StreamElement::EndOfInput)));
        assert_eq!(decoder.next(), Ok(None));
        assert_eq!(decoder.finish(), Ok(()));
    }
}
