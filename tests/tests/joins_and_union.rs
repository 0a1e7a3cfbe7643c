//! Joins and union in whole jobs: two JSON-lines sources re-keyed by a
//! field, joined by window and by interval at parallelism 2, equal a
//! nested-loop computation written here; a union passes every record of
//! both inputs once.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use serde_json::{Value, json};
use weir_tests::{read_parts, run_yaml};

/// `(id, key, ts)` of one input record.
type Row = (usize, u64, i64);

/// The rows of one side; deterministic, mildly out of order.
fn rows(n: usize, seed: u64) -> Vec<Row> {
    let mut x = seed;
    (0..n)
        .map(|i| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let key = (x >> 33) % 7;
            let ts = (i as i64) * 10 + ((x >> 20) % 30) as i64;
            (i, key, ts)
        })
        .collect()
}

fn write(path: &Path, side: &str, rows: &[Row]) {
    let text: String = rows
        .iter()
        .map(|(id, key, ts)| format!("{}\n", json!({"side": side, "id": id, "k": key, "t": ts})))
        .collect();
    std::fs::write(path, text).unwrap();
}

fn job(dir: &Path, operator: &str) -> String {
    format!(
        r#"name: joins
batch_size: 16
sources:
  - {{ id: left, type: file, path: {l}, format: jsonl, timestamp: {{ field: t, format: millis }}, watermarks: {{ max_out_of_orderness: 30 }} }}
  - {{ id: right, type: file, path: {r}, format: jsonl, timestamp: {{ field: t, format: millis }}, watermarks: {{ max_out_of_orderness: 30 }} }}
operators:
{operator}
sinks:
  - {{ id: out, input: op, type: file, path: {out} }}
"#,
        l = dir.join("left.jsonl").display(),
        r = dir.join("right.jsonl").display(),
        out = dir.join("out").display(),
    )
}

/// `(left id, right id)` of every joined record, sorted.
fn pairs(dir: &Path) -> Vec<(u64, u64)> {
    let mut got: Vec<(u64, u64)> = read_parts(&dir.join("out"))
        .unwrap()
        .concat()
        .iter()
        .map(|v: &Value| {
            (
                v["left"]["id"].as_u64().unwrap(),
                v["right"]["id"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort_unstable();
    got
}

fn setup() -> (tempfile::TempDir, Vec<Row>, Vec<Row>) {
    let dir = tempfile::tempdir().unwrap();
    let (left, right) = (rows(400, 1), rows(400, 2));
    write(&dir.path().join("left.jsonl"), "l", &left);
    write(&dir.path().join("right.jsonl"), "r", &right);
    (dir, left, right)
}

#[test]
fn window_join_equals_nested_loops_over_each_window() {
    let (dir, left, right) = setup();
    let op = "  - id: op\n    input: [{from: left, key: k}, {from: right, key: k}]\n    partition: key_by\n    parallelism: 2\n    join: { type: window, window: { type: tumbling, size: 100 } }";
    let summary = run_yaml(dir.path(), &job(dir.path(), op), None).unwrap();
    assert_eq!(summary.record_errors, 0, "{:?}", summary.problems);
    assert_eq!(
        summary.late_records_dropped, 0,
        "a 30 ms bound covers the disorder"
    );
    let mut expected = Vec::new();
    for l in &left {
        for r in &right {
            if l.1 == r.1 && l.2.div_euclid(100) == r.2.div_euclid(100) {
                expected.push((l.0 as u64, r.0 as u64));
            }
        }
    }
    expected.sort_unstable();
    assert!(!expected.is_empty());
    assert_eq!(pairs(dir.path()), expected);
}

#[test]
fn interval_join_equals_nested_loops_over_the_bounds() {
    let (dir, left, right) = setup();
    let op = "  - id: op\n    input: [{from: left, key: k}, {from: right, key: k}]\n    partition: key_by\n    parallelism: 2\n    join: { type: interval, lower: -15, upper: 25 }";
    let summary = run_yaml(dir.path(), &job(dir.path(), op), None).unwrap();
    assert_eq!(summary.record_errors, 0, "{:?}", summary.problems);
    assert_eq!(summary.late_records_dropped, 0);
    let mut expected = Vec::new();
    for l in &left {
        for r in &right {
            if l.1 == r.1 && l.2 - 15 <= r.2 && r.2 <= l.2 + 25 {
                expected.push((l.0 as u64, r.0 as u64));
            }
        }
    }
    expected.sort_unstable();
    assert!(!expected.is_empty());
    assert_eq!(pairs(dir.path()), expected);
}

#[test]
fn union_passes_every_record_of_both_inputs_once() {
    let (dir, left, right) = setup();
    let op = "  - id: op\n    input: [left, right]\n    partition: rebalance\n    parallelism: 2";
    let summary = run_yaml(dir.path(), &job(dir.path(), op), None).unwrap();
    assert_eq!(summary.records_written, (left.len() + right.len()) as u64);
    let mut got: Vec<(String, u64)> = read_parts(&dir.path().join("out"))
        .unwrap()
        .concat()
        .iter()
        .map(|v| {
            (
                v["side"].as_str().unwrap().to_string(),
                v["id"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    let mut expected: Vec<(String, u64)> = left
        .iter()
        .map(|r| ("l".to_string(), r.0 as u64))
        .chain(right.iter().map(|r| ("r".to_string(), r.0 as u64)))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(
        summary
            .sink_watermarks
            .values()
            .copied()
            .collect::<Vec<_>>(),
        vec![i64::MAX; 2]
    );
}
