//! Oracle tests of the built-in windows: for tumbling, sliding and session
//! windows, over in-order, out-of-order and late input generated from a
//! seed, with and without allowed lateness, the streaming job's results
//! (and its late side output) equal a from-scratch recomputation written
//! here.
//!
//! The recomputation replays the watermark the source emits (one split,
//! `max timestamp - bound - 1` after each batch) to decide which records
//! are late, then aggregates each window's accepted records directly.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use weir_tests::{read_parts, run_yaml};

const BATCH: usize = 64;
const BOUND: i64 = 50;
const KEYS: u64 = 5;

/// splitmix64: a tiny seeded generator, so inputs are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Arrival {
    InOrder,
    OutOfOrder,
    Late,
}

#[derive(Debug, Clone)]
struct Input {
    key: String,
    ts: i64,
    v: i64,
    id: usize,
}

fn generate(seed: u64, n: usize, order: Arrival) -> Vec<Input> {
    let mut rng = Rng(seed);
    let mut base = 1_000_000i64;
    (0..n)
        .map(|id| {
            base += rng.below(12);
            let ts = match order {
                Arrival::InOrder => base,
                Arrival::OutOfOrder => base + rng.below(BOUND as u64),
                Arrival::Late if rng.below(100) < 6 => base - BOUND - rng.below(3 * BOUND as u64),
                Arrival::Late => base + rng.below(BOUND as u64),
            };
            Input {
                key: format!("k{}", rng.below(KEYS)),
                ts,
                v: rng.below(2001) - 1000,
                id,
            }
        })
        .collect()
}

/// The watermark in force when each record arrives.
fn watermarks_at_arrival(inputs: &[Input]) -> Vec<i64> {
    let mut wm = i64::MIN;
    let mut max_ts = i64::MIN;
    let mut at = Vec::with_capacity(inputs.len());
    for chunk in inputs.chunks(BATCH) {
        at.extend(std::iter::repeat_n(wm, chunk.len()));
        max_ts = max_ts.max(chunk.iter().map(|r| r.ts).max().unwrap());
        wm = wm.max(max_ts - BOUND - 1);
    }
    at
}

/// count, sum, min, max, avg of `v`, as the job writes them.
fn aggregate(values: &[i64]) -> Value {
    let sum: i64 = values.iter().sum();
    json!({
        "count": values.len(),
        "sum": sum,
        "min": values.iter().min(),
        "max": values.iter().max(),
        "avg": sum as f64 / values.len() as f64,
    })
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
}

type WindowKey = (String, i64, i64);

/// Expected emissions per window (in order) and the late records' ids.
fn oracle(
    inputs: &[Input],
    shape: Shape,
    lateness: i64,
) -> (BTreeMap<WindowKey, Vec<Value>>, Vec<usize>) {
    let wms = watermarks_at_arrival(inputs);
    let mut late = Vec::new();
    let mut emissions: BTreeMap<WindowKey, Vec<Value>> = BTreeMap::new();
    match shape {
        Shape::Tumbling(_) | Shape::Sliding(..) => {
            let (size, slide) = match shape {
                Shape::Tumbling(s) => (s, s),
                Shape::Sliding(s, d) => (s, d),
                Shape::Session(_) => unreachable!(),
            };
            // Accepted records per window, split into those that arrived
            // before the window fired and those after (each re-fires it).
            let mut on_time: BTreeMap<WindowKey, Vec<i64>> = BTreeMap::new();
            let mut after: BTreeMap<WindowKey, Vec<i64>> = BTreeMap::new();
            for (r, &wm) in inputs.iter().zip(&wms) {
                let mut accepted = false;
                let mut start = r.ts - r.ts.rem_euclid(slide);
                while start > r.ts - size {
                    let end = start + size;
                    if end - 1 + lateness > wm {
                        accepted = true;
                        let w = (r.key.clone(), start, end);
                        if end - 1 > wm {
                            on_time.entry(w).or_default().push(r.v);
                        } else {
                            after.entry(w).or_default().push(r.v);
                        }
                    }
                    start -= slide;
                }
                if !accepted {
                    late.push(r.id);
                }
            }
            let windows: std::collections::BTreeSet<&WindowKey> =
                on_time.keys().chain(after.keys()).collect();
            for w in windows {
                let mut values = on_time.get(w).cloned().unwrap_or_default();
                let mut list = Vec::new();
                if !values.is_empty() {
                    list.push(aggregate(&values));
                }
                for v in after.get(w).into_iter().flatten() {
                    values.push(*v);
                    list.push(aggregate(&values));
                }
                emissions.insert(w.clone(), list);
            }
        }
        Shape::Session(gap) => {
            let mut per_key: BTreeMap<String, Vec<(i64, i64)>> = BTreeMap::new();
            for (r, &wm) in inputs.iter().zip(&wms) {
                if r.ts + lateness <= wm {
                    late.push(r.id);
                } else {
                    per_key.entry(r.key.clone()).or_default().push((r.ts, r.v));
                }
            }
            // From scratch: sort by time, split where records are >= gap apart.
            for (key, mut records) in per_key {
                records.sort();
                let mut session: Vec<(i64, i64)> = Vec::new();
                let mut flush = |session: &mut Vec<(i64, i64)>| {
                    if let (Some(first), Some(last)) = (session.first(), session.last()) {
                        let values: Vec<i64> = session.iter().map(|r| r.1).collect();
                        emissions.insert(
                            (key.clone(), first.0, last.0 + gap),
                            vec![aggregate(&values)],
                        );
                    }
                    session.clear();
                };
                for r in records {
                    if session.last().is_some_and(|last| r.0 - last.0 >= gap) {
                        flush(&mut session);
                    }
                    session.push(r);
                }
                flush(&mut session);
            }
        }
    }
    late.sort_unstable();
    (emissions, late)
}

fn write_input(dir: &Path, inputs: &[Input]) {
    let text: String = inputs
        .iter()
        .map(|r| format!("{}\n", json!({"k": r.key, "t": r.ts, "v": r.v, "id": r.id})))
        .collect();
    std::fs::write(dir.join("in.jsonl"), text).unwrap();
}

/// The job over `dir/in.jsonl`, writing `dir/out` and the late side
/// output `dir/late`.
fn window_yaml(dir: &Path, shape: Shape, lateness: i64) -> String {
    let window = match shape {
        Shape::Tumbling(size) => format!("type: tumbling, size: {size}"),
        Shape::Sliding(size, slide) => format!("type: sliding, size: {size}, slide: {slide}"),
        Shape::Session(gap) => format!("type: session, gap: {gap}"),
    };
    format!(
        r#"name: window-oracle
batch_size: {BATCH}
sources:
  - id: in
    type: file
    path: {input}
    format: jsonl
    key: {{ field: k }}
    timestamp: {{ field: t, format: millis }}
    watermarks: {{ max_out_of_orderness: {BOUND} }}
operators:
  - id: w
    input: in
    partition: key_by
    parallelism: 2
    window: {{ {window}, allowed_lateness: {lateness}, late_output: late, key_field: k }}
    aggregate:
      - {{ fn: count }}
      - {{ fn: sum, field: v }}
      - {{ fn: min, field: v }}
      - {{ fn: max, field: v }}
      - {{ fn: avg, field: v }}
sinks:
  - {{ id: out, input: w, type: file, path: {out} }}
  - {{ id: late, input: {{ from: w, output: late }}, type: file, path: {late} }}
"#,
        input = dir.join("in.jsonl").display(),
        out = dir.join("out").display(),
        late = dir.join("late").display(),
    )
}

/// Runs the job in a temporary directory (the working directory of the
/// job's relative paths) and returns emissions per window and late ids.
fn run_job(
    inputs: &[Input],
    shape: Shape,
    lateness: i64,
) -> (BTreeMap<WindowKey, Vec<Value>>, Vec<usize>) {
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path(), inputs);
    let yaml = window_yaml(dir.path(), shape, lateness);
    let summary = run_yaml(dir.path(), &yaml, None).unwrap();
    assert_eq!(summary.record_errors, 0, "{:?}", summary.problems);
    let mut emissions: BTreeMap<WindowKey, Vec<Value>> = BTreeMap::new();
    for part in read_parts(&dir.path().join("out")).unwrap() {
        for mut v in part {
            let obj = v.as_object_mut().unwrap();
            let key = (
                obj.remove("k").unwrap().as_str().unwrap().to_string(),
                obj.remove("window_start").unwrap().as_i64().unwrap(),
                obj.remove("window_end").unwrap().as_i64().unwrap(),
            );
            emissions.entry(key).or_default().push(v);
        }
    }
    let mut late: Vec<usize> = read_parts(&dir.path().join("late"))
        .unwrap()
        .into_iter()
        .flatten()
        .map(|v| v["id"].as_u64().unwrap() as usize)
        .collect();
    late.sort_unstable();
    (emissions, late)
}

fn check(shape: Shape, order: Arrival, lateness: i64, seed: u64) {
    let inputs = generate(seed, 3000, order);
    let (expected, expected_late) = oracle(&inputs, shape, lateness);
    let (got, got_late) = run_job(&inputs, shape, lateness);
    let what = format!("{shape:?} {order:?} lateness {lateness} seed {seed}");
    assert_eq!(got_late, expected_late, "late records of {what}");
    // The generated input exercises what it is meant to: late input has
    // records behind the watermark, and with allowed lateness some of them
    // are still accepted.
    let behind = inputs
        .iter()
        .zip(watermarks_at_arrival(&inputs))
        .filter(|(r, wm)| r.ts <= *wm)
        .count();
    match order {
        Arrival::Late if lateness == 0 => assert!(!expected_late.is_empty(), "{what}"),
        Arrival::Late => assert!(behind > expected_late.len(), "{what}: none accepted late"),
        _ => assert!(behind == 0 && expected_late.is_empty(), "{what}"),
    }
    match shape {
        Shape::Session(_) => {
            // Every final session's last result equals the recomputation;
            // any other emitted window was merged into one of them.
            for (w, list) in &expected {
                let emitted = got
                    .get(w)
                    .unwrap_or_else(|| panic!("{what}: no result for {w:?}"));
                assert_eq!(emitted.last(), list.last(), "{what}: session {w:?}");
                if lateness == 0 {
                    assert_eq!(emitted.len(), 1, "{what}: {w:?} fired once");
                }
            }
            for w in got.keys().filter(|w| !expected.contains_key(*w)) {
                assert!(
                    expected
                        .keys()
                        .any(|e| e.0 == w.0 && e.1 <= w.1 && w.2 <= e.2),
                    "{what}: {w:?} is in no final session"
                );
            }
        }
        _ => {
            assert_eq!(got.len(), expected.len(), "{what}: number of windows");
            for (w, list) in &expected {
                assert_eq!(got.get(w), Some(list), "{what}: window {w:?}");
            }
        }
    }
}

#[test]
fn tumbling_windows_equal_the_recomputation() {
    for (order, seed) in [
        (Arrival::InOrder, 1),
        (Arrival::OutOfOrder, 2),
        (Arrival::Late, 3),
    ] {
        check(Shape::Tumbling(100), order, 0, seed);
    }
    check(Shape::Tumbling(100), Arrival::Late, 120, 4);
}

#[test]
fn sliding_windows_equal_the_recomputation() {
    for (order, seed) in [
        (Arrival::InOrder, 5),
        (Arrival::OutOfOrder, 6),
        (Arrival::Late, 7),
    ] {
        check(Shape::Sliding(100, 30), order, 0, seed);
    }
    check(Shape::Sliding(100, 30), Arrival::Late, 80, 8);
}

#[test]
fn session_windows_equal_the_recomputation() {
    for (order, seed) in [
        (Arrival::InOrder, 9),
        (Arrival::OutOfOrder, 10),
        (Arrival::Late, 11),
    ] {
        check(Shape::Session(40), order, 0, seed);
    }
    check(Shape::Session(40), Arrival::Late, 100, 12);
}

/// Processing-time windows are not reproducible, but every record lands in
/// exactly one tumbling window of its key, and windows of a key do not overlap.
#[test]
fn processing_time_tumbling_windows_count_every_record_once() {
    let inputs = generate(13, 5000, Arrival::OutOfOrder);
    let dir = tempfile::tempdir().unwrap();
    write_input(dir.path(), &inputs);
    let yaml = window_yaml(dir.path(), Shape::Tumbling(5), 0)
        .replace("allowed_lateness: 0,", "time: processing,");
    run_yaml(dir.path(), &yaml, None).unwrap();
    let mut per_key: BTreeMap<String, (u64, Vec<(i64, i64)>)> = BTreeMap::new();
    for v in read_parts(&dir.path().join("out"))
        .unwrap()
        .into_iter()
        .flatten()
    {
        let entry = per_key
            .entry(v["k"].as_str().unwrap().to_string())
            .or_default();
        entry.0 += v["count"].as_u64().unwrap();
        entry.1.push((
            v["window_start"].as_i64().unwrap(),
            v["window_end"].as_i64().unwrap(),
        ));
    }
    for (key, (count, mut windows)) in per_key {
        let expected = inputs.iter().filter(|r| r.key == key).count() as u64;
        assert_eq!(count, expected, "records of {key}");
        windows.sort_unstable();
        assert!(
            windows.windows(2).all(|p| p[0].1 <= p[1].0),
            "{key}: {windows:?}"
        );
    }
}
