//! An instance whose linear memory keeps growing is replaced by a fresh one
//! before it hits its limit (`host/wasm/src/recycle.rs`), with its keyed
//! state, operator state and timers carried over: the outputs are those of
//! an instance that never grew.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use weir_state::{KeyGroupRange, KeyedState, MemoryBackend, TimerDomain};
use weir_tests::{rust_udf, subtask};
use weir_types::Record;
use weir_wasm::{InstanceLimits, OperatorInstance, Output, RuntimeConfig, WasmRuntime};

const KEYS: u64 = 37;

fn open(leak_bytes: usize) -> OperatorInstance {
    let runtime = WasmRuntime::new(RuntimeConfig { cache_dir: None }).unwrap();
    let component = runtime.load(&rust_udf("leaky-counter").unwrap()).unwrap();
    let state = KeyedState::new(Box::new(MemoryBackend::new()), KeyGroupRange::all(128), 128);
    let mut instance = component
        .instantiate("leaky#0".into(), Some(state), InstanceLimits::default())
        .unwrap();
    instance
        .open(
            &subtask("leaky"),
            &format!("{{\"leak_bytes\":{leak_bytes}}}"),
        )
        .unwrap();
    instance
}

/// Runs `batches` batches of 1,000 records over `KEYS` keys, taking a
/// checkpoint of the operator state after every tenth, and returns every
/// output as (key_count, seen), in order.
fn run(instance: &mut OperatorInstance, batches: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for b in 0..batches {
        let batch = (0..1000)
            .map(|i| Record {
                key: Some(format!("k{}", (b * 1000 + i) % KEYS).into_bytes()),
                value: b"{}".to_vec().into(),
                timestamp: None,
            })
            .collect();
        for output in instance.process(batch).unwrap() {
            let Output::Emit(record) = output else {
                panic!("unexpected output {output:?}");
            };
            let v: serde_json::Value = serde_json::from_slice(&record.value).unwrap();
            out.push((
                v["key_count"].as_u64().unwrap(),
                v["seen"].as_u64().unwrap(),
            ));
        }
        if b % 10 == 9 {
            instance.snapshot_state(b / 10 + 1).unwrap();
        }
    }
    out
}

#[test]
fn a_guest_that_leaks_is_replaced_and_its_state_goes_on() {
    // 4 KB per record: 200 MB over 50,000 records, under a 64 MiB limit.
    let mut leaky = open(4096);
    let got = run(&mut leaky, 50);
    assert!(
        leaky.replacements() >= 3,
        "replaced {} times",
        leaky.replacements()
    );
    // The oracle: the same function leaking nothing, never replaced.
    let mut tight = open(0);
    let want = run(&mut tight, 50);
    assert_eq!(tight.replacements(), 0);
    assert_eq!(got.len(), 50_000);
    assert_eq!(got, want);
    // And from scratch: every record's counts.
    let mut per_key: HashMap<u64, u64> = HashMap::new();
    for (i, &(key_count, seen)) in got.iter().enumerate() {
        let n = per_key.entry(i as u64 % KEYS).or_default();
        *n += 1;
        assert_eq!((key_count, seen), (*n, i as u64 + 1), "record {i}");
    }
}

/// Timers fire across replacements, including in the middle of a round
/// (the leaking guest's timers leak too): every timer fires once, with the
/// key's count, as in a run that never grew.
#[test]
fn timers_fire_once_each_across_replacements() {
    let run_timers = |instance: &mut OperatorInstance| {
        let mut fired = Vec::new();
        for b in 0..20i64 {
            let batch = (0..1000i64)
                .map(|i| Record {
                    key: Some(format!("k{}", (b * 1000 + i) % KEYS as i64).into_bytes()),
                    value: b"{}".to_vec().into(),
                    timestamp: Some(b * 1000 + i),
                })
                .collect();
            instance.process(batch).unwrap();
            // Every other batch, fire all that is due.
            if b % 2 == 1 {
                instance.set_watermark(b * 1000 + 999);
                for output in instance
                    .fire_timers(TimerDomain::EventTime, b * 1000 + 999)
                    .unwrap()
                {
                    let Output::Emit(record) = output else {
                        panic!("unexpected output {output:?}");
                    };
                    let v: serde_json::Value = serde_json::from_slice(&record.value).unwrap();
                    fired.push((
                        v["timer"].as_i64().unwrap(),
                        v["key_count"].as_u64().unwrap(),
                    ));
                }
            }
        }
        fired
    };
    let mut leaky = open(4096);
    let got = run_timers(&mut leaky);
    assert!(
        leaky.replacements() >= 2,
        "replaced {} times",
        leaky.replacements()
    );
    let want = run_timers(&mut open(0));
    assert_eq!(got.len(), 20_000);
    assert_eq!(got, want);
}

#[test]
fn without_replacement_the_leak_would_hit_the_limit() {
    // The test above means something only if the leak alone fails the
    // instance: one batch of 1,000 records leaking 80 KB each is 80 MB,
    // more than the limit, within a single call (no replacement between).
    let mut leaky = open(80 * 1024);
    let batch = (0..1000)
        .map(|i| Record {
            key: Some(format!("k{i}").into_bytes()),
            value: b"{}".to_vec().into(),
            timestamp: None,
        })
        .collect();
    let failure = leaky.process(batch).unwrap_err();
    assert!(
        failure.error.to_string().contains("memory limit"),
        "{}",
        failure.error
    );
}

/// componentize-js's engine collects no garbage while an instance lives:
/// a JavaScript identity function under the default 64 MiB failed after
/// about 200k records. With instances replaced, 400k go through.
#[test]
fn a_javascript_udf_runs_past_what_its_engine_never_collects() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "name: js\nsources:\n  - {{ id: gen, type: datagen, count: 400000, record_bytes: 100 }}\noperators:\n  - {{ id: id, input: gen, udf: {} }}\nsinks:\n  - {{ id: out, input: id, type: blackhole }}\n",
        weir_tests::repo_root().join("udfs/identity-js").display()
    );
    let summary = weir_tests::run_yaml(dir.path(), &yaml, Some(1)).expect("the job runs");
    assert_eq!(summary.records_read, 400_000);
    assert_eq!(summary.records_written, 400_000);
}

/// A window aggregate that leaks 64 KiB per call (`udfs/poison-aggregate`,
/// case `leak`) goes on past its 64 MiB limit: its instance is replaced
/// between calls, and as its accumulators are the host's, the results are
/// exact.
#[test]
fn a_leaking_window_aggregate_is_replaced_and_its_results_stay_exact() {
    let runtime = WasmRuntime::new(RuntimeConfig { cache_dir: None }).unwrap();
    let component = runtime
        .load_aggregate(&rust_udf("poison-aggregate").unwrap())
        .unwrap();
    let mut instance = component
        .instantiate(
            &subtask("agg"),
            r#"{"case":"leak","at":"add"}"#,
            InstanceLimits::default(),
        )
        .unwrap();
    // 3,000 calls leak 190 MiB.
    let mut acc = instance.create_accumulator().unwrap();
    for _ in 0..3000 {
        acc = instance.add(&acc, &[b"1", b"2"]).unwrap().unwrap();
    }
    assert!(
        instance.replacements() >= 3,
        "replaced {} times",
        instance.replacements()
    );
    let result = instance.get_result(&acc).unwrap().unwrap();
    assert_eq!(result, r#"{"n":6000}"#);
}
