//! Window aggregates written as Wasm components (`udfs/percentiles`, the
//! `aggregate` world): results equal a recomputation over the NAB files,
//! in tumbling and (merging) session windows, and a component's errors are
//! reported or fail the job as the WIT says.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use serde_json::Value;
use weir_tests::{nab_dir, nab_millis, nab_series_ms, read_parts, repo_root, run_yaml, rust_udf};

const DAY: i64 = 86_400_000;

/// Every series' `(timestamp ms, value)` rows under `data/SUBDIR`.
fn series(subdir: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    nab_series_ms(&nab_dir().join("data").join(subdir)).unwrap()
}

/// Nearest-rank percentiles, written independently of the component.
fn percentiles(mut values: Vec<f64>) -> [f64; 3] {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    [50.0, 90.0, 99.0].map(|p| {
        let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
        values[rank.max(1) - 1]
    })
}

/// `(series, window start) -> (count, [p50, p90, p99])` from a job's output.
type Results = BTreeMap<(String, i64), (u64, [f64; 3])>;

fn results_of(dir: &std::path::Path, start_of: impl Fn(&Value) -> i64) -> Results {
    let mut got = BTreeMap::new();
    for v in read_parts(dir).unwrap().concat() {
        let key = (v["series"].as_str().unwrap().to_string(), start_of(&v));
        let stats = ["p50", "p90", "p99"].map(|f| v[f].as_f64().unwrap());
        let count = v["count"].as_u64().unwrap();
        assert!(got.insert(key, (count, stats)).is_none(), "twice: {v}");
    }
    got
}

/// The example job over `data/SUBDIR`, with the window shape `body`.
fn job(subdir: &str, body: &str, out: &std::path::Path) -> String {
    std::fs::read_to_string(repo_root().join("examples/nab-anomaly/percentiles.yaml"))
        .unwrap()
        .replace(
            "../shared/data/nab/data",
            &nab_dir().join("data").join(subdir).display().to_string(),
        )
        .replace(
            "../../udfs/percentiles",
            &rust_udf("percentiles").unwrap().display().to_string(),
        )
        .replace("out/nab-percentiles", &out.display().to_string())
        .replace("      type: tumbling\n      size: 1day\n", body)
}

#[test]
fn daily_percentiles_equal_the_recomputation() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let yaml = job("", "      type: tumbling\n      size: 1day\n", &out);
    let summary = run_yaml(dir.path(), &yaml, Some(2)).unwrap();
    assert_eq!(summary.record_errors, 0, "{:?}", summary.problems);

    let mut expected: BTreeMap<(String, i64), Vec<f64>> = BTreeMap::new();
    for (name, rows) in series("") {
        for (t, v) in rows {
            expected
                .entry((name.clone(), t - t.rem_euclid(DAY)))
                .or_default()
                .push(v);
        }
    }
    let expected: Results = expected
        .into_iter()
        .map(|(k, vs)| (k, (vs.len() as u64, percentiles(vs))))
        .collect();
    let got = results_of(&out, |v| {
        let day = v["window_start"].as_str().unwrap();
        nab_millis(&format!("{day} 00:00:00")).unwrap()
    });
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
}

/// Sessions of readings less than 1 h apart: every reading's window merges
/// with the session it extends, so the component's `merge` runs. Only the
/// traffic series: percentiles keep every value, so an accumulator of a
/// long session costs O(n) per record (the NAB series are one session each
/// of up to 22k readings).
#[test]
fn session_percentiles_merge_and_equal_the_recomputation() {
    const GAP: i64 = 3_600_000;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let yaml = job("realTraffic", "      type: session\n      gap: 1h\n", &out).replace(
        "bounds_format: \"%Y-%m-%d\"",
        "bounds_format: \"%Y-%m-%d %H:%M:%S\"",
    );
    let summary = run_yaml(dir.path(), &yaml, Some(1)).unwrap();
    assert_eq!(summary.record_errors, 0, "{:?}", summary.problems);

    let mut expected = Results::new();
    for (name, mut rows) in series("realTraffic") {
        rows.sort_by_key(|r| r.0);
        let mut session: Vec<f64> = Vec::new();
        let (mut start, mut last) = (i64::MIN, i64::MIN);
        for (t, v) in rows {
            if !session.is_empty() && t - last >= GAP {
                let values = std::mem::take(&mut session);
                expected.insert(
                    (name.clone(), start),
                    (values.len() as u64, percentiles(values)),
                );
            }
            if session.is_empty() {
                start = t;
            }
            session.push(v);
            last = t;
        }
        expected.insert(
            (name.clone(), start),
            (session.len() as u64, percentiles(session)),
        );
    }
    let got = results_of(&out, |v| {
        nab_millis(v["window_start"].as_str().unwrap()).unwrap()
    });
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
}

#[test]
fn records_the_component_rejects_are_reported_and_the_job_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let yaml = job("", "      type: tumbling\n      size: 1day\n", &out)
        .replace("field: value", "field: timestamp");
    let summary = run_yaml(dir.path(), &yaml, Some(1)).unwrap();
    let rows: usize = series("").values().map(Vec::len).sum();
    assert_eq!(summary.record_errors, rows as u64);
    assert!(
        summary.problems[0].contains("field `timestamp` is not a number"),
        "{:?}",
        summary.problems
    );
    assert!(read_parts(&out).unwrap().concat().is_empty());
}

#[test]
fn a_bad_config_or_an_operator_component_fails_the_job_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let yaml = job("", "      type: tumbling\n      size: 1day\n", &out)
        .replace("[50, 90, 99]", "[50, 120]");
    let error = run_yaml(dir.path(), &yaml, Some(1))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("percentile 120 is not in (0, 100]"),
        "{error}"
    );

    let identity = rust_udf("identity").unwrap().display().to_string();
    let yaml = job("", "      type: tumbling\n      size: 1day\n", &out).replace(
        &rust_udf("percentiles").unwrap().display().to_string(),
        &identity,
    );
    let error = format!("{:#}", run_yaml(dir.path(), &yaml, Some(1)).unwrap_err());
    assert!(
        error.contains("not a weir:operator/aggregate@0.4.0 (or 0.3.0 or 0.2.0) component"),
        "{error}"
    );
}
