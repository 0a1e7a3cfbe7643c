//! The packed batch format against the golden byte vectors every SDK that
//! implements `process-packed` is held to
//! (`guest-sdk/conformance/packed.json`): the host's writer produces them
//! byte for byte and its readers read them back.

#![allow(clippy::unwrap_used)]

use serde_json::Value;

fn golden() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../guest-sdk/conformance/packed.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    v.as_str().map(|s| s.as_bytes().to_vec())
}

#[test]
fn a_batch_is_written_and_read_as_the_golden_bytes() {
    let golden = golden();
    let records = golden["batch"]["records"].as_array().unwrap();
    let mut buf = Vec::new();
    for r in records {
        let key = bytes(&r["key"]);
        weir_abi::write_record(
            &mut buf,
            key.as_deref(),
            r["value"].as_str().unwrap().as_bytes(),
            r["timestamp"].as_i64(),
        );
    }
    let hex = golden["batch"]["hex"].as_str().unwrap();
    assert_eq!(buf, unhex(hex));
    let read: Vec<_> = weir_abi::records(&buf).map(Result::unwrap).collect();
    assert_eq!(read.len(), records.len());
    for (got, want) in read.iter().zip(records) {
        assert_eq!(got.key.map(<[u8]>::to_vec), bytes(&want["key"]));
        assert_eq!(got.value, want["value"].as_str().unwrap().as_bytes());
        assert_eq!(got.timestamp, want["timestamp"].as_i64());
    }
}

#[test]
fn outputs_are_written_and_read_as_the_golden_bytes() {
    let golden = golden();
    let items = golden["outputs"]["items"].as_array().unwrap();
    let mut buf = Vec::new();
    for item in items {
        if let Some(r) = item.get("emit") {
            weir_abi::begin_emit(&mut buf);
            let key = bytes(&r["key"]);
            weir_abi::write_record(
                &mut buf,
                key.as_deref(),
                r["value"].as_str().unwrap().as_bytes(),
                r["timestamp"].as_i64(),
            );
        } else if let Some(name) = item.get("side") {
            weir_abi::begin_side(&mut buf, name.as_str().unwrap());
            let r = &item["record"];
            let key = bytes(&r["key"]);
            weir_abi::write_record(
                &mut buf,
                key.as_deref(),
                r["value"].as_str().unwrap().as_bytes(),
                r["timestamp"].as_i64(),
            );
        } else {
            let input = u32::try_from(item["error"].as_u64().unwrap()).unwrap();
            weir_abi::write_error(&mut buf, input, item["message"].as_str().unwrap());
        }
    }
    assert_eq!(buf, unhex(golden["outputs"]["hex"].as_str().unwrap()));
    let read: Vec<_> = weir_abi::outputs(&buf).map(Result::unwrap).collect();
    assert_eq!(read.len(), items.len());
    match &read[2] {
        weir_abi::OutputRef::Error { input, message } => {
            assert_eq!((*input, *message), (3, "bad ✗"));
        }
        other => panic!("{other:?}"),
    }
}
