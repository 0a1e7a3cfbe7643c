//! The NAB anomaly job's alerts equal an independent computation of the
//! z-score rule (written here, not by calling the engine), at parallelism 1
//! and 2, with default and non-default `warmup`/`threshold`, with the Rust
//! detector (`udfs/nab-zscore`), the Python one (`udfs/nab-zscore-python`)
//! and the JavaScript one (`udfs/nab-zscore-js`): all equal the oracle
//! exactly, so their alerts are identical.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use weir_tests::{nab_dir, nab_series, read_parts, repo_root, run_yaml, zscore_alerts};

/// One expected alert: series, timestamp text, value, z.
type Alert = (String, String, f64, f64);

/// The rule of the issue, applied per series in file order.
fn oracle(data: &Path, warmup: u64, threshold: f64) -> (BTreeMap<String, Vec<Alert>>, usize) {
    let series = nab_series(data).unwrap();
    let rows = series.values().map(Vec::len).sum();
    let alerts = series
        .into_iter()
        .map(|(name, readings)| {
            let found = zscore_alerts(&readings, warmup, threshold)
                .into_iter()
                .map(|(t, x, z)| (name.clone(), t, x, z))
                .collect();
            (name, found)
        })
        .collect();
    (alerts, rows)
}

fn job_yaml(data: &Path, out: &Path, config: &str) -> String {
    job_yaml_with(data, out, config, "nab-zscore")
}

fn job_yaml_with(data: &Path, out: &Path, config: &str, udf: &str) -> String {
    format!(
        r#"name: nab-anomaly-test
sources:
  - id: readings
    type: file
    path: {data}
    glob: "**/*.csv"
    format: csv
    key: {{ from: path }}
    timestamp: {{ field: timestamp, format: "%Y-%m-%d %H:%M:%S" }}
    watermarks: {{ max_out_of_orderness: 3600000 }}
operators:
  - id: zscore
    input: readings
    partition: key_by
    udf: {udf}
    memory_mib: 256
    {config}
sinks:
  - id: alerts
    input: zscore
    type: file
    path: {out}
"#,
        data = data.display(),
        out = out.display(),
        udf = repo_root().join("udfs").join(udf).display(),
    )
}

/// Runs the job and checks it against the oracle, series by series, in order.
fn check(parallelism: u32, warmup: Option<u64>, threshold: Option<f64>) {
    check_udf("nab-zscore", parallelism, warmup, threshold);
}

/// [`check`] with the detector in `udfs/<udf>`.
fn check_udf(udf: &str, parallelism: u32, warmup: Option<u64>, threshold: Option<f64>) {
    let data = nab_dir().join("data");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("alerts");
    let config = match (warmup, threshold) {
        (None, None) => String::new(),
        (w, t) => {
            let mut fields = Vec::new();
            if let Some(w) = w {
                fields.push(format!("warmup: {w}"));
            }
            if let Some(t) = t {
                fields.push(format!("threshold: {t:?}"));
            }
            format!("config: {{ {} }}", fields.join(", "))
        }
    };
    let summary = run_yaml(
        dir.path(),
        &job_yaml_with(&data, &out, &config, udf),
        Some(parallelism),
    )
    .expect("job runs");
    let (expected, rows) = oracle(&data, warmup.unwrap_or(30), threshold.unwrap_or(4.0));
    assert_eq!(summary.records_read, rows as u64);
    assert_eq!(summary.record_errors, 0, "{:?}", summary.problems);
    // Watermarks flowed through the key_by exchange; the end of the bounded
    // input brought every sink subtask to the maximum watermark.
    let expected_sinks: Vec<String> = (0..parallelism).map(|i| format!("alerts#{i}")).collect();
    assert_eq!(
        summary.sink_watermarks.keys().cloned().collect::<Vec<_>>(),
        expected_sinks
    );
    assert!(
        summary.sink_watermarks.values().all(|w| *w == i64::MAX),
        "{:?}",
        summary.sink_watermarks
    );

    let parts = read_parts(&out).unwrap();
    assert_eq!(
        parts.len(),
        parallelism as usize,
        "one part file per subtask"
    );
    let mut actual: BTreeMap<String, Vec<Alert>> = BTreeMap::new();
    let mut series_part: BTreeMap<String, usize> = BTreeMap::new();
    for (p, part) in parts.iter().enumerate() {
        for alert in part {
            let series = alert["series"].as_str().unwrap().to_string();
            assert_eq!(
                *series_part.entry(series.clone()).or_insert(p),
                p,
                "{series} split over part files"
            );
            let keys: Vec<&String> = alert.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 4, "alert fields: {keys:?}");
            actual.entry(series.clone()).or_default().push((
                series,
                alert["timestamp"].as_str().unwrap().to_string(),
                alert["value"].as_f64().unwrap(),
                alert["z"].as_f64().unwrap(),
            ));
        }
    }
    let expected: BTreeMap<String, Vec<Alert>> = expected
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let total: usize = expected.values().map(Vec::len).sum();
    assert!(total > 0, "the oracle finds alerts");
    assert_eq!(summary.records_written, total as u64);
    for (series, alerts) in &expected {
        assert_eq!(actual.get(series), Some(alerts), "alerts of {series}");
    }
    assert_eq!(actual.len(), expected.len());
}

#[test]
fn nab_alerts_match_oracle_at_parallelism_1_with_defaults() {
    check(1, None, None);
}

#[test]
fn nab_alerts_match_oracle_at_parallelism_2_with_defaults() {
    check(2, None, None);
}

#[test]
fn nab_alerts_match_oracle_at_parallelism_1_with_custom_config() {
    check(1, Some(100), Some(3.0));
}

#[test]
fn nab_alerts_match_oracle_at_parallelism_2_with_custom_config() {
    check(2, Some(5), Some(2.5));
}

#[test]
fn the_python_detector_matches_the_oracle_at_parallelism_2_with_defaults() {
    check_udf("nab-zscore-python", 2, None, None);
}

#[test]
fn the_python_detector_matches_the_oracle_at_parallelism_2_with_custom_config() {
    check_udf("nab-zscore-python", 2, Some(5), Some(2.5));
}

#[test]
fn the_javascript_detector_matches_the_oracle_at_parallelism_2_with_defaults() {
    check_udf("nab-zscore-js", 2, None, None);
}

#[test]
fn the_javascript_detector_matches_the_oracle_at_parallelism_2_with_custom_config() {
    check_udf("nab-zscore-js", 2, Some(5), Some(2.5));
}

#[test]
fn the_c_detector_matches_the_oracle_at_parallelism_2_with_defaults() {
    check_udf("nab-zscore-c", 2, None, None);
}

#[test]
fn the_c_detector_matches_the_oracle_at_parallelism_2_with_custom_config() {
    check_udf("nab-zscore-c", 2, Some(5), Some(2.5));
}

#[test]
fn z_values_are_the_rules_not_rounded() {
    // Guards the oracle itself: a value exactly at the threshold counts.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("s")).unwrap();
    // n=2 readings 0 and 2 (mean 1, std sqrt(2)); the third is flagged with warmup 2.
    std::fs::write(
        data.join("s/a.csv"),
        "timestamp,value\n2020-01-01 00:00:00,0\n2020-01-01 00:01:00,2\n2020-01-01 00:02:00,100\n",
    )
    .unwrap();
    let (alerts, rows) = oracle(&data, 2, 4.0);
    assert_eq!(rows, 3);
    let z = (100.0 - 1.0) / 2f64.sqrt();
    assert_eq!(
        alerts["s/a"],
        vec![(
            "s/a".to_string(),
            "2020-01-01 00:02:00".to_string(),
            100.0,
            z
        )]
    );
    let out = dir.path().join("out");
    let summary = run_yaml(
        dir.path(),
        &job_yaml(&data, &out, "config: { warmup: 2 }"),
        Some(1),
    )
    .unwrap();
    assert_eq!(summary.records_written, 1);
    let parts = read_parts(&out).unwrap();
    let got: &Value = &parts[0][0];
    assert_eq!(got["z"].as_f64(), Some(z));
    assert_eq!(got["series"], "s/a");
}
