//! Packed batches (`weir:operator@0.4.0`, `packed-handler`): components of
//! the Rust guest SDK get their batches as one buffer each way, with the
//! same results as the typed `process`; a guest that answers with bytes
//! outside the format fails its task with a clear error instead of
//! panicking the host.

#![allow(clippy::unwrap_used)]

use weir_tests::{rust_udf, subtask};
use weir_types::Record;
use weir_wasm::{
    InstanceLimits, OperatorInstance, Output, RuntimeConfig, SortedOutputs, WasmRuntime,
};

/// Records with and without keys and timestamps, empty and binary values.
fn mixed_batch() -> Vec<Record> {
    (0..2000)
        .map(|i: i64| Record {
            key: (i % 3 != 0).then(|| format!("k{}", i % 7).into_bytes()),
            value: match i % 4 {
                0 => Vec::new(),
                1 => vec![0, 255, i as u8],
                _ => format!("{{\"n\":{i}}}").into_bytes(),
            }
            .into(),
            timestamp: (i % 5 != 0).then_some(i * 1000 - 7),
        })
        .collect()
}

/// An opened instance of the Rust UDF `udf` (under `udfs/`), checked to
/// take packed batches.
fn open_packed(udf: &str, config: &str) -> OperatorInstance {
    let runtime = WasmRuntime::new(RuntimeConfig { cache_dir: None }).unwrap();
    let component = runtime.load(&rust_udf(udf).unwrap()).unwrap();
    assert_eq!(component.wit_version(), "0.4.0");
    assert!(component.takes_packed_batches());
    let mut instance = component
        .instantiate(format!("{udf}#0"), None, InstanceLimits::default())
        .unwrap();
    instance.open(&subtask(udf), config).unwrap();
    instance
}

#[test]
fn an_sdk_component_takes_packed_batches_and_gives_every_record_back() {
    let mut instance = open_packed("identity", "{}");
    // Twice, so the reused buffer is checked with a shorter batch too.
    for batch in [mixed_batch(), mixed_batch()[..10].to_vec()] {
        let outputs = instance.process(batch.clone()).unwrap();
        let expected: Vec<Output> = batch.into_iter().map(Output::Emit).collect();
        assert_eq!(outputs, expected);
    }
    assert_eq!(instance.process(Vec::new()).unwrap(), Vec::new());
}

#[test]
fn per_record_errors_come_back_packed_with_their_input_index() {
    let mut instance = open_packed("nexmark-q2", r#"{"modulus": 2}"#);
    let record = |value: &str| Record {
        key: None,
        value: value.as_bytes().to_vec().into(),
        timestamp: Some(9),
    };
    let outputs = instance
        .process(vec![
            record(r#"{"auction":4,"price":10}"#),
            record("not json"),
            record(r#"{"auction":5,"price":11}"#),
            record(r#"{"auction":6,"price":12}"#),
        ])
        .unwrap();
    assert_eq!(outputs.len(), 3, "{outputs:?}");
    assert_eq!(
        outputs[0],
        Output::Emit(record(r#"{"auction":4,"price":10}"#))
    );
    match &outputs[1] {
        Output::Error { input, message } => {
            assert_eq!(*input, 1);
            assert!(message.contains("invalid bid"), "{message}");
        }
        other => panic!("expected an error, got {other:?}"),
    }
    assert_eq!(
        outputs[2],
        Output::Emit(record(r#"{"auction":6,"price":12}"#))
    );
}

/// `process_sorted` (what the task calls) gives what `process` gives,
/// sorted by kind: the records in order, the errors with their inputs.
#[test]
fn sorted_outputs_are_the_outputs_of_process_by_kind() {
    let q2_batch = || -> Vec<Record> {
        (0..300)
            .map(|i| Record {
                key: None,
                value: if i % 7 == 3 {
                    format!("not json {i}").into_bytes().into()
                } else {
                    format!(r#"{{"auction":{i},"price":{}}}"#, i * 3)
                        .into_bytes()
                        .into()
                },
                timestamp: Some(i),
            })
            .collect()
    };
    for (udf, config, batch) in [
        ("identity", "{}", mixed_batch()),
        ("nexmark-q2", r#"{"modulus": 2}"#, q2_batch()),
    ] {
        let in_order = open_packed(udf, config).process(batch.clone()).unwrap();
        let sorted = open_packed(udf, config).process_sorted(batch).unwrap();
        let expected = SortedOutputs {
            records: in_order
                .iter()
                .filter_map(|o| match o {
                    Output::Emit(r) => Some(r.clone()),
                    _ => None,
                })
                .collect(),
            side: Vec::new(),
            errors: in_order
                .iter()
                .filter_map(|o| match o {
                    Output::Error { input, message } => Some((*input, message.clone())),
                    _ => None,
                })
                .collect(),
        };
        assert!(!expected.records.is_empty(), "{udf}");
        if udf == "nexmark-q2" {
            // Every malformed bid is reported, with its index.
            let inputs: Vec<u32> = sorted.errors.iter().map(|(i, _)| *i).collect();
            assert_eq!(
                inputs,
                (0..300).filter(|i| i % 7 == 3).collect::<Vec<u32>>()
            );
        }
        assert_eq!(sorted, expected, "{udf}");
        assert_eq!(SortedOutputs::from(in_order), expected, "{udf}");
    }
    let failure = open_packed("bad-packed", "{}")
        .process_sorted(mixed_batch())
        .unwrap_err();
    assert_eq!(
        failure.batch,
        mixed_batch(),
        "the batch is handed back intact"
    );
}

#[test]
fn malformed_packed_outputs_fail_the_call_and_hand_the_batch_back() {
    let mut instance = open_packed("bad-packed", "{}");
    let batch = mixed_batch();
    let failure = instance.process(batch.clone()).unwrap_err();
    let message = failure.error.to_string();
    assert!(
        message.contains("malformed packed batch at byte 0: unknown output tag"),
        "{message}"
    );
    assert_eq!(failure.batch, batch, "the batch is handed back intact");
    assert!(
        instance.process(Vec::new()).is_err(),
        "the instance is poisoned"
    );
}

/// q1 builds its output from pieces of the borrowed input
/// (`RawRef` and `Collector::emit_bytes_with`). Oracle: the same bid
/// decoded in full, without `type`, with `price * rate`.
#[test]
fn a_spliced_output_equals_a_full_decode_for_any_field_order() {
    let mut instance = open_packed("nexmark-q1", r#"{"rate": 0.5}"#);
    let bids = [
        // As the generator writes them: the output bytes are what
        // serde_json writes for the same fields.
        r#"{"type":"bid","auction":1000,"bidder":1001,"price":1234,"dateTime":1700000000000,"extra":"abc"}"#,
        // `type` after `price`, whitespace, an escaped key and a nested value.
        r#" { "price" : 3 , "auction":7, "a\"b": [1, {"c": "d"}], "type" : "bid", "extra":"x\ny" } "#,
        // No `type`.
        r#"{"auction":1,"price":10}"#,
        // Malformed before `price`, no `price`, a fractional price.
        r#"{"type":"bid","auction":}"#,
        r#"{"type":"bid","auction":1}"#,
        r#"{"type":"bid","price":1.5}"#,
        r#"{"type":"bid","price":2,"extra":"z"}"#,
        // `type` between kept fields, `price` last: two runs of kept fields.
        r#"{"auction":1,"type":"bid","bidder":2,"price":4}"#,
    ];
    let record = |value: &str| Record {
        key: Some(b"k".to_vec()),
        value: value.as_bytes().to_vec().into(),
        timestamp: Some(5),
    };
    let outputs = instance
        .process(bids.iter().map(|b| record(b)).collect())
        .unwrap();
    let expected = |bid: &str| {
        let mut value: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(bid).unwrap();
        value.remove("type");
        let price = value["price"].as_u64().unwrap() as f64 * 0.5;
        value.insert("price".into(), price.into());
        serde_json::Value::Object(value)
    };
    let emitted = |output: &Output| match output {
        Output::Emit(r) => {
            assert_eq!((r.key.as_deref(), r.timestamp), (Some(&b"k"[..]), Some(5)));
            serde_json::from_slice::<serde_json::Value>(&r.value).unwrap()
        }
        other => panic!("expected a record, got {other:?}"),
    };
    let errors: Vec<u32> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Error { input, message } => {
                assert!(message.starts_with("invalid bid"), "{message}");
                Some(*input)
            }
            _ => None,
        })
        .collect();
    assert_eq!(errors, [3, 4, 5]);
    let records: Vec<&Output> = outputs
        .iter()
        .filter(|o| matches!(o, Output::Emit(_)))
        .collect();
    assert_eq!(records.len(), 5);
    for (output, bid) in records
        .iter()
        .zip([bids[0], bids[1], bids[2], bids[6], bids[7]])
    {
        assert_eq!(emitted(output), expected(bid), "{bid}");
    }
    let Output::Emit(first) = records[0] else {
        unreachable!()
    };
    assert_eq!(
        String::from_utf8_lossy(&first.value),
        r#"{"auction":1000,"bidder":1001,"price":617.0,"dateTime":1700000000000,"extra":"abc"}"#
    );
    let Output::Emit(last) = records[4] else {
        unreachable!()
    };
    assert_eq!(
        String::from_utf8_lossy(&last.value),
        r#"{"auction":1,"bidder":2,"price":2.0}"#
    );
}

/// q1 multiplies in exact decimal arithmetic and writes the rate's number
/// of fraction digits, as Flink SQL's `0.908 * price` (a `DECIMAL`) does;
/// binary floating point would write 34663 * 0.908 as
/// `31474.004000000004`.
#[test]
fn currency_conversion_writes_exact_decimals() {
    let price_text = |rate: &str, price: i64| {
        let mut instance = open_packed("nexmark-q1", &format!(r#"{{"rate": {rate}}}"#));
        let bid = format!(r#"{{"type":"bid","price":{price}}}"#);
        let outputs = instance
            .process(vec![Record {
                key: None,
                value: bid.into_bytes().into(),
                timestamp: None,
            }])
            .unwrap();
        let [Output::Emit(record)] = &outputs[..] else {
            panic!("expected one record, got {outputs:?}")
        };
        let text = String::from_utf8(record.value.to_vec()).unwrap();
        text.strip_prefix(r#"{"price":"#)
            .and_then(|t| t.strip_suffix('}'))
            .unwrap()
            .to_string()
    };
    for (rate, price, euros) in [
        ("0.908", 34663, "31474.004"),
        ("0.908", 1000, "908.000"),
        ("0.908", 1, "0.908"),
        ("0.908", 0, "0.000"),
        ("0.908", -25, "-22.700"),
        // Past i64: the product is taken in i128.
        ("0.908", 123_456_789_012_345_678, "112098764423209875.624"),
        ("0.01", 3, "0.03"),
        ("2", 21, "42"),
        ("1.5e-7", 3, "0.00000045"),
    ] {
        assert_eq!(price_text(rate, price), euros, "{price} at {rate}");
    }
}

/// A rate that cannot be an exact decimal of at most nine fraction digits
/// below 10^9 fails `open` with a message naming it.
#[test]
fn currency_conversion_rejects_rates_it_cannot_take_exactly() {
    let runtime = WasmRuntime::new(RuntimeConfig { cache_dir: None }).unwrap();
    let component = runtime.load(&rust_udf("nexmark-q1").unwrap()).unwrap();
    for rate in ["0", "-1", "1e-10", "1e9", "0.1234567891"] {
        let mut instance = component
            .instantiate("nexmark-q1#0".into(), None, InstanceLimits::default())
            .unwrap();
        let error = instance
            .open(&subtask("nexmark-q1"), &format!(r#"{{"rate": {rate}}}"#))
            .unwrap_err()
            .to_string();
        assert!(error.contains("rate"), "{rate}: {error}");
    }
}
