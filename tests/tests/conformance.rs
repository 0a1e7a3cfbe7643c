//! The guest SDKs' conformance: each SDK's conformance function
//! (`udfs/conformance` in Rust, `udfs/conformance-python` in Python,
//! `udfs/conformance-js` in JavaScript, `udfs/conformance-c` in C) runs
//! through every case of `guest-sdk/conformance/cases.json` with the real
//! host — open, batches, timers through the watermark, a checkpoint and a
//! restore into a new instance — and gives the outputs and keyed state the
//! cases list (`guest-sdk/conformance/README.md` has the rules).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use weir_state::{KeyGroupRange, KeyedState, MemoryBackend, TimerDomain};
use weir_tests::{repo_root, rust_udf};
use weir_types::Record;
use weir_wasm::{
    InstanceLimits, OperatorComponent, OperatorInstance, Output, RuntimeConfig, SubtaskInfo,
    WasmRuntime,
};

fn cases() -> Vec<Value> {
    let path = repo_root().join("guest-sdk/conformance/cases.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn subtask() -> SubtaskInfo {
    SubtaskInfo {
        operator_id: "conformance".into(),
        index: 0,
        parallelism: 1,
        max_parallelism: 128,
        attempt: 0,
    }
}

fn new_state() -> KeyedState {
    KeyedState::new(Box::new(MemoryBackend::new()), KeyGroupRange::all(128), 128)
}

/// A record of a case: `{"key": text|null, "value": json|{"raw": text}, "timestamp": n}`.
fn record(spec: &Value) -> Record {
    let value = match spec["value"].get("raw") {
        Some(raw) => raw.as_str().unwrap().as_bytes().to_vec(),
        None => serde_json::to_vec(&spec["value"]).unwrap(),
    };
    Record {
        key: spec["key"].as_str().map(|k| k.as_bytes().to_vec()),
        value: value.into(),
        timestamp: spec.get("timestamp").and_then(Value::as_i64),
    }
}

fn json(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(bytes)))
}

/// Checks `outputs` against the case's `expect` list.
fn check_outputs(case: &str, step: usize, outputs: &[Output], expect: &Value) {
    let expect = expect.as_array().unwrap();
    assert_eq!(
        outputs.len(),
        expect.len(),
        "{case}, step {step}: outputs {outputs:?}"
    );
    for (i, (got, want)) in outputs.iter().zip(expect).enumerate() {
        let at = format!("{case}, step {step}, output {i}: {got:?}");
        let record = match got {
            Output::Emit(record) => {
                assert!(want.get("emit").is_some(), "{at}: expected {want}");
                assert_eq!(json(&record.value), want["emit"], "{at}");
                record
            }
            Output::Side { output, record } => {
                assert_eq!(Some(output.as_str()), want["side"].as_str(), "{at}");
                assert_eq!(json(&record.value), want["value"], "{at}");
                record
            }
            Output::Error { input, message } => {
                assert_eq!(Some(u64::from(*input)), want["error"].as_u64(), "{at}");
                let contains = want["contains"].as_str().unwrap();
                assert!(message.contains(contains), "{at}: {message:?}");
                continue;
            }
        };
        if let Some(key) = want.get("key") {
            let got = record.key.as_deref().map(|k| String::from_utf8_lossy(k));
            assert_eq!(got.as_deref(), key.as_str(), "{at}: key");
        }
        if let Some(ts) = want.get("timestamp") {
            assert_eq!(record.timestamp, ts.as_i64(), "{at}: timestamp");
        }
    }
}

/// Checks what a key holds: `{"key", "value": {name: json|null},
/// "list": {name: [...]}, "map": {name: {key: json}}}`.
fn check_state(case: &str, state: &mut KeyedState, spec: &Value) {
    let key = spec["key"].as_str().unwrap();
    state.set_current_key(key.as_bytes()).unwrap();
    let at = |what: &str| format!("{case}: state of key {key}, {what}");
    for (name, want) in spec["value"].as_object().into_iter().flatten() {
        let got = state.value_get(name).unwrap().map(|v| json(&v));
        assert_eq!(got.as_ref().unwrap_or(&Value::Null), want, "{}", at(name));
    }
    for (name, want) in spec["list"].as_object().into_iter().flatten() {
        let got: Vec<Value> = state
            .list_get(name)
            .unwrap()
            .iter()
            .map(|v| json(v))
            .collect();
        assert_eq!(&Value::Array(got), want, "{}", at(name));
    }
    for (name, want) in spec["map"].as_object().into_iter().flatten() {
        let got: serde_json::Map<String, Value> = state
            .map_entries(name)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (json(&k).as_str().unwrap().to_string(), json(&v)))
            .collect();
        assert_eq!(&Value::Object(got), want, "{}", at(name));
    }
    state.clear_current_key();
}

fn open(
    component: &OperatorComponent,
    state: KeyedState,
    config: &Value,
) -> Result<OperatorInstance, String> {
    // A JavaScript engine needs more than the default 64 MiB.
    let limits = InstanceLimits {
        memory_bytes: 256 << 20,
        ..InstanceLimits::default()
    };
    let mut instance = component
        .instantiate("conformance#0".into(), Some(state), limits)
        .map_err(|e| e.to_string())?;
    instance
        .open(&subtask(), &config.to_string())
        .map_err(|e| e.to_string())?;
    Ok(instance)
}

/// Runs every case against the component at `wasm`.
fn conforms(wasm: &Path) {
    let runtime = WasmRuntime::new(RuntimeConfig { cache_dir: None }).unwrap();
    let component = runtime.load(wasm).unwrap();
    let cases = cases();
    assert!(cases.len() >= 10);
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let steps = case["steps"].as_array().unwrap();
        if let Some(contains) = steps[0].get("open_fails") {
            let err = open(&component, new_state(), &case["config"])
                .err()
                .unwrap_or_else(|| panic!("{name}: open succeeded"));
            assert!(err.contains(contains.as_str().unwrap()), "{name}: {err}");
            continue;
        }
        let mut instance = open(&component, new_state(), &case["config"]).unwrap();
        let mut checkpoint: Option<(Vec<u8>, Vec<Vec<u8>>, i64)> = None;
        let mut watermark = i64::MIN;
        for (i, step) in steps.iter().enumerate() {
            if let Some(batch) = step.get("process") {
                let batch = batch.as_array().unwrap().iter().map(record).collect();
                let outputs = instance
                    .process(batch)
                    .unwrap_or_else(|e| panic!("{name}, step {i}: {e:?}"));
                check_outputs(name, i, &outputs, &step["expect"]);
            } else if let Some(wm) = step.get("watermark") {
                watermark = wm.as_i64().unwrap();
                instance.set_watermark(watermark);
                let outputs = instance
                    .fire_timers(TimerDomain::EventTime, watermark)
                    .unwrap();
                check_outputs(name, i, &outputs, &step["expect"]);
            } else if let Some(spec) = step.get("state") {
                // The host reads keyed state after `snapshot-state`, as a
                // checkpoint does: a guest may cache it until then.
                instance.snapshot_state(0).unwrap();
                check_state(name, instance.state_mut().unwrap(), spec);
            } else if let Some(spec) = step.get("checkpoint") {
                let items = instance.snapshot_state(1).unwrap();
                let got: Vec<Value> = items.iter().map(|i| json(i)).collect();
                assert_eq!(&Value::Array(got), &spec["operator_state"], "{name}");
                let keyed = instance.state_mut().unwrap().snapshot_bytes().unwrap();
                checkpoint = Some((keyed, items, watermark));
            } else if step.get("restore").is_some() {
                let (keyed, items, wm) = checkpoint.clone().expect("a checkpoint first");
                let mut state = new_state();
                state.restore([keyed.as_slice()]).unwrap();
                instance = open(&component, state, &case["config"]).unwrap();
                instance.restore_state(items).unwrap();
                instance.set_watermark(wm);
            } else {
                panic!("{name}: unknown step {step}");
            }
        }
    }
}

fn python_udf(name: &str) -> PathBuf {
    weir_cli::udf::build_python_udf(&repo_root().join("udfs").join(name))
        .expect("componentize-py builds the UDF")
}

#[test]
fn the_rust_sdk_conforms() {
    conforms(&rust_udf("conformance").unwrap());
}

#[test]
fn the_python_sdk_conforms() {
    conforms(&python_udf("conformance-python"));
}

#[test]
fn the_javascript_sdk_conforms() {
    let wasm = weir_cli::udf::build_js_udf(&repo_root().join("udfs/conformance-js"))
        .expect("componentize-js builds the UDF");
    conforms(&wasm);
}

#[test]
fn the_c_sdk_conforms() {
    let wasm = weir_cli::udf::build_c_udf(&repo_root().join("udfs/conformance-c"))
        .expect("clang builds the UDF");
    conforms(&wasm);
}
