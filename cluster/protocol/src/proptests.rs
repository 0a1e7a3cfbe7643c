//! Properties of encoder and decoder together: every element survives a
//! round trip however the bytes are chunked, and no input, random or a
//! damaged valid stream, makes the decoder panic or depend on chunking.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use weir_types::{Batch, Bytes, Origin, Record, StreamElement, WatermarkStatus};

use crate::{DecodeError, FrameDecoder, encode, encode_preamble};

/// Any `i64`, with the extremes and the values around zero often.
fn edgy_i64() -> impl Strategy<Value = i64> {
    prop_oneof![
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0),
        Just(-1),
        any::<i64>()
    ]
}

/// Any `u64`, with the extremes often.
fn edgy_u64() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(u64::MAX), any::<u64>()]
}

/// Any `u32`, with the extremes often.
fn edgy_u32() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0), Just(u32::MAX), any::<u32>()]
}

/// Records with or without key and timestamp, empty keys and values
/// included.
fn record() -> impl Strategy<Value = Record> {
    (
        option::of(vec(any::<u8>(), 0..12)),
        vec(any::<u8>(), 0..40),
        option::of(edgy_i64()),
    )
        .prop_map(|(key, value, timestamp)| Record {
            key,
            value: Bytes::from(value),
            timestamp,
        })
}

fn origin() -> impl Strategy<Value = Origin> {
    (edgy_u32(), edgy_u64()).prop_map(|(split, position)| Origin { split, position })
}

/// Every kind of element; batches of 0 to 9 records.
fn element() -> impl Strategy<Value = StreamElement> {
    prop_oneof![
        3 => vec((record(), origin()), 0..10).prop_map(|pairs| {
            let (records, origins) = pairs.into_iter().unzip();
            StreamElement::Batch(Batch { records, origins })
        }),
        1 => edgy_i64().prop_map(StreamElement::Watermark),
        1 => prop_oneof![Just(WatermarkStatus::Active), Just(WatermarkStatus::Idle)]
            .prop_map(StreamElement::WatermarkStatus),
        1 => edgy_u64().prop_map(StreamElement::Barrier),
        1 => Just(StreamElement::EndOfInput),
    ]
}

/// Chunk sizes to cycle through (0 is an empty push); never all 0.
fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    vec(0usize..48, 0..12).prop_map(|mut sizes| {
        sizes.push(1);
        sizes
    })
}

/// The stream of `elements`: the preamble and one frame each.
fn encoded(elements: &[StreamElement]) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_preamble(&mut bytes);
    for element in elements {
        encode(element, &mut bytes);
    }
    bytes
}

/// Pushes `bytes` in chunks of `sizes` (cycled), taking every element as
/// soon as it is complete, up to the first error.
fn decode_chunked(
    decoder: &mut FrameDecoder,
    bytes: &[u8],
    sizes: &[usize],
) -> Result<Vec<StreamElement>, DecodeError> {
    let mut elements = Vec::new();
    let mut rest = bytes;
    for &size in sizes.iter().cycle() {
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        decoder.push(chunk);
        rest = tail;
        while let Some(element) = decoder.next()? {
            elements.push(element);
        }
        if rest.is_empty() {
            break;
        }
    }
    Ok(elements)
}

/// After an error, the decoder gives the same error again.
fn stays_failed(decoder: &mut FrameDecoder, error: &DecodeError) -> Result<(), TestCaseError> {
    decoder.push(&encoded(&[StreamElement::EndOfInput]));
    prop_assert_eq!(decoder.next(), Err(error.clone()));
    prop_assert_eq!(decoder.finish(), Err(error.clone()));
    Ok(())
}

proptest! {
    // A thousand cases take well under a second.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn elements_survive_a_round_trip_through_any_chunking(
        elements in vec(element(), 0..8),
        sizes in chunk_sizes(),
    ) {
        let bytes = encoded(&elements);
        let mut decoder = FrameDecoder::new(bytes.len());
        let decoded = decode_chunked(&mut decoder, &bytes, &sizes);
        prop_assert_eq!(decoded, Ok(elements));
        prop_assert_eq!(decoder.buffered(), 0);
        prop_assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(
        bytes in vec(any::<u8>(), 0..600),
        after_a_preamble: bool,
        limit in 0usize..700,
        sizes in chunk_sizes(),
    ) {
        let mut input = if after_a_preamble { encoded(&[]) } else { Vec::new() };
        input.extend_from_slice(&bytes);
        let mut decoder = FrameDecoder::new(limit);
        match decode_chunked(&mut decoder, &input, &sizes) {
            Ok(_) => {
                prop_assert!(decoder.buffered() <= input.len());
                let _ = decoder.finish();
            }
            Err(error) => stays_failed(&mut decoder, &error)?,
        }
    }

    /// Valid streams with bytes overwritten and the end cut off reach the
    /// deep paths (record fields, lengths, counts) that random bytes
    /// rarely do; decoding them gives the same result in one chunk as in
    /// many.
    #[test]
    fn damaged_streams_never_panic_the_decoder_nor_depend_on_chunking(
        elements in vec(element(), 1..6),
        damage in vec((any::<Index>(), any::<u8>()), 0..4),
        cut in any::<Index>(),
        sizes in chunk_sizes(),
    ) {
        let mut bytes = encoded(&elements);
        for (at, byte) in &damage {
            let at = at.index(bytes.len());
            bytes[at] = *byte;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        let limit = 4096;
        let mut chunked = FrameDecoder::new(limit);
        let in_chunks = decode_chunked(&mut chunked, &bytes, &sizes);
        let mut whole = FrameDecoder::new(limit);
        let at_once = decode_chunked(&mut whole, &bytes, &[bytes.len().max(1)]);
        prop_assert_eq!(&in_chunks, &at_once);
        prop_assert_eq!(chunked.finish(), whole.finish());
        if let Err(error) = in_chunks {
            stays_failed(&mut chunked, &error)?;
        }
    }
}
