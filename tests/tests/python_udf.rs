//! A Python map UDF built with componentize-py against the same WIT runs in
//! a job: the interface is language-neutral.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use weir_tests::{
    python_component, python_udf, python_udf_against, read_parts, repo_root, run_yaml,
};

#[test]
fn python_map_udf_runs_in_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = python_udf("python-scale", dir.path()).expect("componentize-py builds the UDF");
    check_scale_job(dir.path(), &wasm);
}

/// Components built against the frozen `weir:operator@0.1.0`, `@0.2.0`
/// and `@0.3.0` still run on this host (which speaks 0.4.0), with the same
/// results.
#[test]
fn components_built_against_wit_0_1_0_0_2_0_and_0_3_0_keep_working() {
    let runtime =
        weir_wasm::WasmRuntime::new(weir_wasm::RuntimeConfig { cache_dir: None }).unwrap();
    for version in ["0.1.0", "0.2.0", "0.3.0"] {
        let dir = tempfile::tempdir().unwrap();
        let wit = repo_root().join(format!("wit/v{version}"));
        let wasm = python_udf_against("python-scale", dir.path(), &wit)
            .expect("componentize-py builds the UDF");
        assert_eq!(runtime.load(&wasm).unwrap().wit_version(), version);
        check_scale_job(dir.path(), &wasm);
    }
}

#[test]
fn a_component_built_against_the_current_wit_is_0_4_0() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = python_udf("python-scale", dir.path()).expect("componentize-py builds the UDF");
    let runtime =
        weir_wasm::WasmRuntime::new(weir_wasm::RuntimeConfig { cache_dir: None }).unwrap();
    let component = runtime.load(&wasm).unwrap();
    assert_eq!(component.wit_version(), "0.4.0");
    // World `operator` without `packed-handler`: called with typed batches.
    assert!(!component.takes_packed_batches());
}

/// A Python window aggregate (the `aggregate` world) built against the
/// current WIT and against the frozen 0.3.0 and 0.2.0 gives each window's
/// mean.
#[test]
fn python_aggregates_of_wit_0_4_0_0_3_0_and_0_2_0_compute_window_means() {
    for wit in ["wit", "wit/v0.3.0", "wit/v0.2.0"] {
        let dir = tempfile::tempdir().unwrap();
        let wasm = python_component(
            "python-mean",
            dir.path(),
            &repo_root().join(wit),
            "aggregate",
        )
        .expect("componentize-py builds the aggregate");
        let data = dir.path().join("in.csv");
        let mut csv = String::from("name,ts,value\n");
        for i in 0..300 {
            csv.push_str(&format!("k{},{},{}\n", i % 3, i * 100, i));
        }
        std::fs::write(&data, csv).unwrap();
        let yaml = format!(
            "name: pymean\nsources:\n  - {{id: in, type: file, path: {data}, format: csv, key: {{field: name}}, timestamp: {{field: ts, format: millis}}}}\noperators:\n  - {{id: w, input: in, partition: key_by, window: {{type: tumbling, size: 10s}}, udf: {wasm}, memory_mib: 256}}\nsinks:\n  - {{id: out, input: w, type: file, path: {out}}}\n",
            data = data.display(),
            wasm = wasm.display(),
            out = dir.path().join("out").display(),
        );
        run_yaml(dir.path(), &yaml, Some(1)).expect("job runs");
        let mut got: Vec<(String, i64, f64)> = read_parts(&dir.path().join("out"))
            .unwrap()
            .concat()
            .into_iter()
            .map(|v| {
                (
                    v["key"].as_str().unwrap().to_string(),
                    v["window_start"].as_i64().unwrap(),
                    v["py_mean"].as_f64().unwrap(),
                )
            })
            .collect();
        got.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        // Rows i at ts i*100: window w of 10 s holds i in 100w..100w+99.
        let mut want = Vec::new();
        for k in 0..3 {
            for w in 0..3 {
                let values: Vec<f64> = (100 * w..100 * w + 100)
                    .filter(|i| i % 3 == k)
                    .map(f64::from)
                    .collect();
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                want.push((format!("k{k}"), i64::from(w) * 10_000, mean));
            }
        }
        assert_eq!(got, want, "{wit}");
    }
}

fn check_scale_job(dir: &Path, wasm: &Path) {
    let data = dir.join("in.csv");
    let mut csv = String::from("name,value\n");
    let mut expected = Vec::new();
    for i in 0..2500 {
        let value = f64::from(i) * 0.25 - 100.0;
        csv.push_str(&format!("n{i},{value}\n"));
        expected.push((format!("n{i}"), value, value * 3.0));
    }
    csv.push_str("bad,not-a-number\n");
    std::fs::write(&data, csv).unwrap();
    let yaml = format!(
        "name: py\nsources:\n  - {{id: in, type: file, path: {data}, format: csv, key: {{field: name}}}}\noperators:\n  - {{id: scale, input: in, udf: {wasm}, config: {{factor: 3}}, memory_mib: 256, on_error: drop}}\nsinks:\n  - {{id: out, input: scale, type: file, path: {out}}}\n",
        data = data.display(),
        wasm = wasm.display(),
        out = dir.join("out").display(),
    );
    let summary = run_yaml(dir, &yaml, Some(1)).expect("job runs");
    assert_eq!(summary.records_read, 2501);
    assert_eq!(summary.records_written, 2500);
    assert_eq!(
        summary.record_errors, 1,
        "the non-number row is a per-record error"
    );
    assert!(
        summary.problems[0].contains("in.csv:2502") && summary.problems[0].contains("cannot scale"),
        "{:?}",
        summary.problems
    );
    let rows = read_parts(&dir.join("out")).unwrap().concat();
    let got: Vec<(String, f64, f64)> = rows
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["value"].as_f64().unwrap(),
                r["scaled"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, expected);
}

/// componentize-py never freed the `bytes` a Python function returned or
/// passed to a state import, so a Python UDF grew by every byte it emitted
/// or wrote until it hit its memory limit (an identity map failed after
/// about 350,000 records of 100 bytes). `weir udf build` fixes the
/// component (`cluster/cli/src/udf/pop_list_fix.rs`): 150,000 records that
/// each write 1 KB of keyed state and emit 1 KB (300 MB in all) now run
/// under the default 64 MiB limit.
#[test]
fn a_python_udf_emitting_and_writing_far_more_than_its_memory_limit_runs() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("churn");
    std::fs::create_dir(&project).unwrap();
    std::fs::write(
        project.join("app.py"),
        r#"import weir

PAD = b"x" * 1000


@weir.export
class Churn(weir.KeyedProcessFunction):
    raw_input = True

    def open(self, ctx):
        self.last = weir.ValueState("last", raw=True)

    def process_element(self, value, ctx):
        seen = self.last.value()
        self.last.update(PAD + value[:8])
        yield b'{"seen":' + (b"1" if seen else b"0") + b',"pad":"' + PAD + b'"}'
"#,
    )
    .unwrap();
    let yaml = format!(
        r#"name: churn
sources:
  - {{ id: gen, type: datagen, count: 150000, record_bytes: 16, keys: 50000 }}
operators:
  - id: churn
    input: gen
    partition: key_by
    udf: {}
sinks:
  - {{ id: out, input: churn, type: file, path: {} }}
"#,
        project.display(),
        dir.path().join("out").display()
    );
    let summary = run_yaml(dir.path(), &yaml, Some(1)).expect("the job runs within 64 MiB");
    assert_eq!(summary.records_written, 150_000);
    // Every key's first record found no state, every later one found it.
    let outputs: Vec<serde_json::Value> = read_parts(&dir.path().join("out")).unwrap().concat();
    assert_eq!(outputs.len(), 150_000);
    let unseen = outputs.iter().filter(|v| v["seen"] == 0).count();
    assert_eq!(unseen, 50_000);
}

/// `weir udf build` makes Python components of world `packed-operator`:
/// the host gives them each batch as one buffer (`process-packed`).
#[test]
fn a_python_udf_built_by_weir_takes_packed_batches() {
    let wasm = weir_cli::udf::build_python_udf(&repo_root().join("udfs/identity-python"))
        .expect("weir udf build builds the UDF");
    let runtime =
        weir_wasm::WasmRuntime::new(weir_wasm::RuntimeConfig { cache_dir: None }).unwrap();
    let component = runtime.load(&wasm).unwrap();
    assert_eq!(component.wit_version(), "0.4.0");
    assert!(component.takes_packed_batches());
}
