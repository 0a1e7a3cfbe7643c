//! Writing the preamble and frames.

use weir_types::{Batch, StreamElement, WatermarkStatus};

use crate::format::{
    COUNT_LEN, FLAG_HAS_KEY, FLAG_HAS_TIMESTAMP, FrameKind, MAGIC, MIN_RECORD_LEN, STATUS_ACTIVE,
    STATUS_IDLE, VERSION,
};

/// Appends the stream preamble to `out`: the 8 bytes of [`MAGIC`] and the
/// `u16` LE [`VERSION`], 10 bytes in all. A stream begins with it, once,
/// before the first frame.
pub fn encode_preamble(out: &mut Vec<u8>) {
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
}

/// Appends one frame holding `element` to `out`: a 5-byte header (kind,
/// `u32` LE body length) and the body, as the crate overview lays out.
/// `out` grows once, by the frame's exact size.
///
/// A receiver refuses a frame whose body exceeds its limit
/// ([`crate::FrameDecoder::new`]), so a sender splits batches to stay
/// below the limit both sides agreed on.
///
/// # Panics
/// When `element` is a batch that cannot be encoded, which is a bug of the
/// caller: its `records` and `origins` differ in length, or its body would
/// exceed `u32::MAX` bytes (4 GiB).
pub fn encode(element: &StreamElement, out: &mut Vec<u8>) {
    let kind = FrameKind::of(element);
    match element {
        StreamElement::Batch(batch) => encode_batch(batch, out),
        StreamElement::Watermark(time) => fixed_frame(out, kind, &time.to_le_bytes()),
        StreamElement::WatermarkStatus(status) => {
            let byte = match status {
                WatermarkStatus::Active => STATUS_ACTIVE,
                WatermarkStatus::Idle => STATUS_IDLE,
            };
            fixed_frame(out, kind, &[byte]);
        }
        StreamElement::Barrier(id) => fixed_frame(out, kind, &id.to_le_bytes()),
        StreamElement::EndOfInput => fixed_frame(out, kind, &[]),
    }
}

/// Appends a frame of a fixed-size kind.
fn fixed_frame(out: &mut Vec<u8>, kind: FrameKind, body: &[u8]) {
    debug_assert_eq!(kind.fixed_body_len(), Some(body.len()));
    let len = u32::try_from(body.len()).expect("fixed bodies are at most 8 bytes");
    out.reserve(crate::FRAME_HEADER_LEN + body.len());
    out.push(kind.code());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
}

/// Appends a batch frame.
fn encode_batch(batch: &Batch, out: &mut Vec<u8>) {
    assert_eq!(
        batch.records.len(),
        batch.origins.len(),
        "a batch must have one origin per record to be encoded"
    );
    let count = u32::try_from(batch.records.len())
        .expect("a batch of more than u32::MAX records cannot be encoded");
    // The exact body size, computed first: it goes in the header, and `out`
    // grows once. Summed in u64 so that many records sharing one large
    // buffer cannot overflow the sum on a 32-bit target.
    let body_len = batch.records.iter().fold(COUNT_LEN as u64, |sum, record| {
        let key = record.key.as_ref().map_or(0, |key| 4 + key.len() as u64);
        let timestamp = if record.timestamp.is_some() { 8 } else { 0 };
        sum.saturating_add(MIN_RECORD_LEN as u64 + timestamp + key + record.value.len() as u64)
    });
    let body_len = u32::try_from(body_len)
        .expect("a batch whose frame body exceeds u32::MAX bytes cannot be encoded");
    // Every length below fits in u32: each is part of the body.
    let small = |len: usize| (len as u32).to_le_bytes();

    let start = out.len();
    out.reserve(crate::FRAME_HEADER_LEN + body_len as usize);
    out.push(FrameKind::Batch.code());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for (record, origin) in batch.records.iter().zip(&batch.origins) {
        let mut flags = 0;
        if record.key.is_some() {
            flags |= FLAG_HAS_KEY;
        }
        if record.timestamp.is_some() {
            flags |= FLAG_HAS_TIMESTAMP;
        }
        out.push(flags);
        if let Some(timestamp) = record.timestamp {
            out.extend_from_slice(&timestamp.to_le_bytes());
        }
        if let Some(key) = &record.key {
            out.extend_from_slice(&small(key.len()));
            out.extend_from_slice(key);
        }
        out.extend_from_slice(&small(record.value.len()));
        out.extend_from_slice(&record.value);
        out.extend_from_slice(&origin.split.to_le_bytes());
        out.extend_from_slice(&origin.position.to_le_bytes());
    }
    debug_assert_eq!(
        out.len() - start,
        crate::FRAME_HEADER_LEN + body_len as usize
    );
}

#[cfg(test)]
mod tests {
    use weir_types::{Bytes, Origin, Record};

    use super::*;

    /// The bytes of the crate overview's example, written out by hand: any
    /// change to the layout fails here, and must come with a new version.
    #[test]
    fn a_batch_frame_is_laid_out_byte_for_byte_as_documented() {
        let batch = Batch {
            records: vec![Record {
                key: Some(b"k".to_vec()),
                value: Bytes::from_static(b"{}"),
                timestamp: Some(7),
            }],
            origins: vec![Origin {
                split: 2,
                position: 9,
            }],
        };
        let mut out = Vec::new();
        encode(&StreamElement::Batch(batch), &mut out);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            0x01,
            0x24, 0, 0, 0,
            0x01, 0, 0, 0,
            0x03,
            0x07, 0, 0, 0, 0, 0, 0, 0,
            0x01, 0, 0, 0, b'k',
            0x02, 0, 0, 0, b'{', b'}',
            0x02, 0, 0, 0,
            0x09, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    fn a_record_without_key_or_timestamp_takes_the_minimum_size() {
        let batch = Batch {
            records: vec![Record::default()],
            origins: vec![Origin::DERIVED],
        };
        let mut out = Vec::new();
        encode(&StreamElement::Batch(batch), &mut out);
        assert_eq!(
            out.len(),
            crate::FRAME_HEADER_LEN + COUNT_LEN + MIN_RECORD_LEN
        );
        assert_eq!(out[9], 0, "no flag set");
        assert_eq!(&out[14..18], &u32::MAX.to_le_bytes(), "derived split");
    }

    #[test]
    fn fixed_size_frames_are_laid_out_as_documented() {
        let mut out = Vec::new();
        encode_preamble(&mut out);
        encode(&StreamElement::Watermark(-2), &mut out);
        encode(
            &StreamElement::WatermarkStatus(WatermarkStatus::Idle),
            &mut out,
        );
        encode(
            &StreamElement::WatermarkStatus(WatermarkStatus::Active),
            &mut out,
        );
        encode(&StreamElement::Barrier(0x0102), &mut out);
        encode(&StreamElement::EndOfInput, &mut out);
        #[rustfmt::skip]
        let expected: &[u8] = &[
            b'W', b'E', b'I', b'R', b'D', b'A', b'T', b'A', 1, 0,
            2, 8, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            3, 1, 0, 0, 0, 1,
            3, 1, 0, 0, 0, 0,
            4, 8, 0, 0, 0, 0x02, 0x01, 0, 0, 0, 0, 0, 0,
            5, 0, 0, 0, 0,
        ];
        assert_eq!(out, expected);
    }

    #[test]
    #[should_panic(expected = "one origin per record")]
    fn a_batch_whose_origins_do_not_match_its_records_is_not_encoded() {
        let batch = Batch {
            records: vec![Record::default()],
            origins: vec![],
        };
        encode(&StreamElement::Batch(batch), &mut Vec::new());
    }
}
