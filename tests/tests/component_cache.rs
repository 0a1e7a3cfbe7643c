//! The compiled-component cache: a component is compiled once, found again
//! by the SHA-256 of its bytes, and a damaged cache entry is recompiled
//! rather than trusted.

#![allow(clippy::unwrap_used)]

use weir_tests::{rust_udf, subtask};
use weir_wasm::{InstanceLimits, RuntimeConfig, SubtaskInfo, WasmRuntime};

fn cache_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    entries.retain(|p| p.extension().is_some_and(|e| e == "cwasm"));
    entries
}

fn run_identity(runtime: &WasmRuntime, wasm: &std::path::Path) -> Vec<u8> {
    let component = runtime.load(wasm).unwrap();
    let mut instance = component
        .instantiate("identity#0".into(), None, InstanceLimits::default())
        .unwrap();
    let info = subtask("identity");
    instance.open(&info, "{}").unwrap();
    let record = weir_types::Record {
        key: None,
        value: weir_types::Bytes::from_static(b"{\"x\":1}"),
        timestamp: Some(5),
    };
    let out = instance.process(vec![record.clone()]).unwrap();
    assert_eq!(out, vec![weir_wasm::Output::Emit(record)]);
    instance.close().unwrap();
    std::fs::read(wasm).unwrap()
}

#[test]
fn components_are_cached_by_content_and_damaged_entries_recompiled() {
    let wasm = rust_udf("identity").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let runtime = WasmRuntime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
    })
    .unwrap();
    let bytes = run_identity(&runtime, &wasm);
    let entries = cache_entries(cache.path());
    assert_eq!(entries.len(), 1, "one entry after the first load");
    let component = runtime.load(&wasm).unwrap();
    let name = entries[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        name.starts_with(component.sha256()),
        "{name} is named by the artifact's SHA-256"
    );
    assert_eq!(component.sha256().len(), 64);
    let modified = std::fs::metadata(&entries[0]).unwrap().modified().unwrap();

    // A second runtime (a new process) finds the entry and does not rewrite it.
    let again = WasmRuntime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
    })
    .unwrap();
    run_identity(&again, &wasm);
    assert_eq!(
        std::fs::metadata(&entries[0]).unwrap().modified().unwrap(),
        modified
    );

    // The same bytes under another name share the entry.
    let copy = cache.path().join("copy.wasm");
    std::fs::write(&copy, &bytes).unwrap();
    run_identity(&again, &copy);
    assert_eq!(cache_entries(cache.path()).len(), 1);

    // A damaged entry is replaced, not trusted.
    std::fs::write(&entries[0], b"garbage").unwrap();
    let third = WasmRuntime::new(RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
    })
    .unwrap();
    run_identity(&third, &wasm);
    assert!(
        std::fs::read(&entries[0]).unwrap().len() > 1000,
        "entry rewritten"
    );
}

/// The z-score UDF instantiated without keyed state (as on a non-keyed input).
fn zscore_without_state() -> (weir_wasm::OperatorInstance, SubtaskInfo) {
    let wasm = rust_udf("nab-zscore").unwrap();
    let runtime = WasmRuntime::new(RuntimeConfig { cache_dir: None }).unwrap();
    let component = runtime.load(&wasm).unwrap();
    let instance = component
        .instantiate("z#0".into(), None, InstanceLimits::default())
        .unwrap();
    let info = subtask("z");
    (instance, info)
}

#[test]
fn keyed_state_on_a_non_keyed_input_fails_with_a_clear_message() {
    let (mut instance, info) = zscore_without_state();
    instance.open(&info, "{}").unwrap();
    let record = weir_types::Record {
        key: Some(b"s".to_vec()),
        value: weir_types::Bytes::from_static(br#"{"timestamp":"t","value":1.0}"#),
        timestamp: None,
    };
    let failure = instance.process(vec![record]).unwrap_err();
    let message = failure.error.to_string();
    assert!(
        message.contains("a host call of the UDF failed"),
        "{message}"
    );
    assert!(message.contains("use `partition: key_by`"), "{message}");
    assert_eq!(failure.batch.len(), 1, "the batch is handed back");
    // The instance is unusable after the trap.
    assert!(instance.process(Vec::new()).is_err());
}

#[test]
fn invalid_config_fails_open_with_the_udfs_message() {
    let (mut instance, info) = zscore_without_state();
    let err = instance
        .open(&info, r#"{"warmup": 3, "treshold": 2}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the UDF's open failed")
            && err.contains("invalid operator config")
            && err.contains("treshold"),
        "{err}"
    );
}
