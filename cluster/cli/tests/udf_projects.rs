//! `weir udf new` → `weir udf test` → `weir udf build` → `weir run`, from
//! an empty directory, for each language with an SDK (Rust, Python,
//! JavaScript, TypeScript, C), as a user types them;
//! and the one-line errors when a project or a toolchain is missing.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

fn weir(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("weir runs")
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The JSON lines of `path`, every number as an f64 (JavaScript writes
/// `-2` where Rust and Python write `-2.0`).
fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| numbers_as_f64(serde_json::from_str(l).unwrap()))
        .collect()
}

fn numbers_as_f64(value: Value) -> Value {
    match value {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(items) => Value::Array(items.into_iter().map(numbers_as_f64).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k, numbers_as_f64(v)))
                .collect(),
        ),
        other => other,
    }
}

/// What the keyed-process template computes over the sample input: the
/// running count and mean per sensor, one output per reading, in order.
fn running_means() -> Vec<Value> {
    [
        json!({"sensor": "a", "count": 1, "mean": 1.5}),
        json!({"sensor": "b", "count": 1, "mean": -2.0}),
        json!({"sensor": "a", "count": 2, "mean": 2.5}),
        json!({"sensor": "b", "count": 2, "mean": 1.0}),
        json!({"sensor": "a", "count": 3, "mean": 5.5 / 3.0}),
        json!({"sensor": "a", "count": 4, "mean": 3.875}),
    ]
    .into_iter()
    .map(numbers_as_f64)
    .collect()
}

/// Creates a keyed-process project in `lang`, runs its tests, builds it
/// twice (the second from the cache) and runs its job.
fn new_test_build_run(lang: &str) {
    let root = tempfile::tempdir().unwrap();
    let created = ok(weir(
        root.path(),
        &[
            "udf",
            "new",
            "means",
            "--lang",
            lang,
            "--kind",
            "keyed-process",
        ],
    ));
    assert!(created.contains("job.yaml"), "{created}");
    let dir = root.path().join("means");
    ok(weir(&dir, &["udf", "test"]));
    let first = ok(weir(root.path(), &["udf", "build", "means"]));
    let wasm = Path::new(first.trim());
    assert!(std::fs::metadata(wasm).unwrap().len() > 1000, "{first}");
    let again = weir(root.path(), &["udf", "build", "means"]);
    assert_eq!(ok(again), first, "the second build is the cached component");
    ok(weir(&dir, &["run", "job.yaml"]));
    assert_eq!(lines(&dir.join("out/part-0.jsonl")), running_means());
}

#[test]
fn a_new_python_project_tests_builds_and_runs() {
    new_test_build_run("python");
}

#[test]
fn a_new_rust_project_tests_builds_and_runs() {
    new_test_build_run("rust");
}

#[test]
fn a_new_javascript_project_tests_builds_and_runs() {
    new_test_build_run("js");
}

#[test]
fn a_new_typescript_project_tests_builds_and_runs() {
    new_test_build_run("ts");
}

#[test]
fn a_new_c_project_tests_builds_and_runs() {
    new_test_build_run("c");
}

/// Every C template passes its own unit tests (natively, with the SDK's
/// in-memory host) and builds a component.
#[test]
fn every_c_template_passes_its_tests_and_builds() {
    let root = tempfile::tempdir().unwrap();
    for kind in ["map", "filter", "flat-map", "keyed-process", "aggregate"] {
        let name = format!("c-{kind}");
        ok(weir(
            root.path(),
            &["udf", "new", &name, "--lang", "c", "--kind", kind],
        ));
        ok(weir(&root.path().join(&name), &["udf", "test"]));
        ok(weir(root.path(), &["udf", "build", &name]));
    }
    let dir = root.path().join("c-map");
    ok(weir(&dir, &["run", "job.yaml"]));
    let scaled: Vec<f64> = lines(&dir.join("out/part-0.jsonl"))
        .iter()
        .map(|r| r["scaled"].as_f64().unwrap())
        .collect();
    assert_eq!(scaled, vec![3.0, -4.0, 7.0, 8.0, 1.0, 20.0]);
}

#[test]
fn a_missing_c_toolchain_says_how_to_install_it() {
    let root = tempfile::tempdir().unwrap();
    ok(weir(
        root.path(),
        &["udf", "new", "m", "--lang", "c", "--kind", "map"],
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["udf", "build", "m"])
        .current_dir(root.path())
        .env("WEIR_CLANG", root.path().join("no-such-clang"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("needs clang with wasi-libc (--target=wasm32-wasi), which was not found: run `apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32`"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// Every JavaScript and TypeScript template passes its own unit tests.
#[test]
fn every_javascript_and_typescript_template_passes_its_tests() {
    let root = tempfile::tempdir().unwrap();
    for lang in ["js", "ts"] {
        for kind in ["map", "filter", "flat-map", "keyed-process", "aggregate"] {
            let name = format!("{lang}-{kind}");
            ok(weir(
                root.path(),
                &["udf", "new", &name, "--lang", lang, "--kind", kind],
            ));
            ok(weir(&root.path().join(&name), &["udf", "test"]));
        }
    }
}

/// Every Python template passes its own unit tests; the aggregate one also
/// builds (the `aggregate` world) and runs in a window.
#[test]
fn every_python_template_passes_its_tests_and_the_aggregate_runs() {
    let root = tempfile::tempdir().unwrap();
    for kind in ["map", "filter", "flat-map", "keyed-process", "aggregate"] {
        let name = format!("p-{kind}");
        ok(weir(
            root.path(),
            &["udf", "new", &name, "--lang", "python", "--kind", kind],
        ));
        ok(weir(&root.path().join(&name), &["udf", "test"]));
    }
    let dir = root.path().join("p-aggregate");
    ok(weir(&dir, &["run", "job.yaml"]));
    let mut results = lines(&dir.join("out/part-0.jsonl"));
    results.sort_by_key(|r| (r["sensor"].to_string(), r["window_start"].to_string()));
    let summary: Vec<(String, f64, f64)> = results
        .iter()
        .map(|r| {
            (
                r["sensor"].as_str().unwrap().to_string(),
                r["count"].as_f64().unwrap(),
                r["mean"].as_f64().unwrap(),
            )
        })
        .collect();
    // Five-minute windows: a has 1.5, 3.5, 0.5 in the first and 10 in the
    // second; b has -2 and 4 in the first.
    assert_eq!(
        summary,
        vec![
            ("a".into(), 3.0, 5.5 / 3.0),
            ("a".into(), 1.0, 10.0),
            ("b".into(), 2.0, 1.0)
        ],
        "{results:?}"
    );
}

#[test]
fn a_directory_of_no_known_language_is_refused_in_one_line() {
    let root = tempfile::tempdir().unwrap();
    let out = weir(root.path(), &["udf", "build", "."]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "is not a UDF project: expected Cargo.toml (Rust), app.py (Python), app.js/app.ts (JavaScript/TypeScript) or app.c (C)"
        ),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn a_missing_componentize_py_says_how_to_install_it() {
    let root = tempfile::tempdir().unwrap();
    ok(weir(
        root.path(),
        &["udf", "new", "m", "--lang", "python", "--kind", "map"],
    ));
    // A PATH with python3 and nothing else.
    let bin = root.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let python = python_executable();
    std::os::unix::fs::symlink(python, bin.join("python3")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["udf", "build", "m"])
        .current_dir(root.path())
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "needs componentize-py, which was not found: run `pip install componentize-py==0.25.1`"
        ),
        "{err}"
    );
}

#[test]
fn a_python_module_that_exports_nothing_is_refused_with_the_sdks_message() {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("app.py"), "import weir\n").unwrap();
    let out = weir(root.path(), &["udf", "build", "."]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "the module exports no function: decorate a class or function with @weir.export"
        ),
        "{err}"
    );
}

#[test]
fn new_refuses_a_bad_name_an_unknown_language_and_an_existing_project() {
    let root = tempfile::tempdir().unwrap();
    let err = |args: &[&str]| {
        let out = weir(root.path(), args);
        assert_eq!(out.status.code(), Some(1));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(err(&["udf", "new", "9lives"]).contains("cannot name a UDF"));
    assert!(err(&["udf", "new", "x", "--lang", "cobol"]).contains("unknown language `cobol`"));
    assert!(err(&["udf", "new", "x", "--kind", "reduce"]).contains("unknown kind `reduce`"));
    ok(weir(root.path(), &["udf", "new", "x", "--lang", "python"]));
    assert!(err(&["udf", "new", "x", "--lang", "python"]).contains("already exists"));
}

/// The real interpreter behind `python3` (not a version manager's shim,
/// which needs more than itself on PATH).
fn python_executable() -> std::path::PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    String::from_utf8(out.stdout).unwrap().trim().into()
}
