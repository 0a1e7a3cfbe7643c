//! Writes the binary seed corpora (`seeds/packed_batch`, `seeds/data_frames`,
//! `seeds/control_frames`) with Weir's own encoders:
//! `cargo run --example seeds` in `fuzz/` (the text seeds are kept by hand).

use weir_fuzz::ControlLike;
use weir_types::{Batch, Origin, Record, StreamElement, WatermarkStatus};

fn write(dir: &str, name: &str, bytes: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let mut batch = Vec::new();
    weir_abi::write_record(&mut batch, Some(b"k1"), br#"{"v":1}"#, Some(1_000));
    weir_abi::write_record(&mut batch, None, b"2", None);
    write("packed_batch", "records", &batch);
    let mut outputs = Vec::new();
    weir_abi::begin_emit(&mut outputs);
    weir_abi::write_record(&mut outputs, Some(b"k"), b"{}", Some(5));
    weir_abi::begin_side(&mut outputs, "late");
    weir_abi::write_record(&mut outputs, None, b"[1]", None);
    weir_abi::write_error(&mut outputs, 0, "bad");
    write("packed_batch", "outputs", &outputs);

    let mut frames = Vec::new();
    weir_protocol::encode_preamble(&mut frames);
    let mut b = Batch::default();
    b.push(
        Record {
            key: Some(b"a".to_vec()),
            value: br#"{"x":1}"#.to_vec().into(),
            timestamp: Some(7),
        },
        Origin::DERIVED,
    );
    for element in [
        StreamElement::Batch(b),
        StreamElement::Watermark(42),
        StreamElement::WatermarkStatus(WatermarkStatus::Idle),
        StreamElement::Barrier(3),
        StreamElement::EndOfInput,
    ] {
        weir_protocol::encode(&element, &mut frames);
    }
    write("data_frames", "elements", &frames);

    let mut control = Vec::new();
    weir_protocol::encode_control_preamble(&mut control);
    for message in [
        ControlLike::Register {
            id: "tm-1".into(),
            host: "127.0.0.2".into(),
            slots: 2,
        },
        ControlLike::Artifact {
            id: "abc".into(),
            bytes: vec![0, 97, 115, 109],
        },
        ControlLike::Event {
            attempt: 1,
            failure: Some(("zscore".into(), 0, "trap".into())),
        },
        ControlLike::Heartbeat(9),
    ] {
        weir_protocol::encode_control(&message, &mut control).unwrap();
    }
    write("control_frames", "messages", &control);
}
