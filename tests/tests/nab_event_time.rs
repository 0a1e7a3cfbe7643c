//! `examples/nab-anomaly/job-event-time.yaml` (the z-score rule in event
//! time, buffered with timers until the watermark passes) equals the rule
//! applied to each series stable-sorted by timestamp, computed here.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use weir_tests::{nab_dir, read_parts, repo_root, run_yaml};

/// `(timestamp text, value, z)` of one alert.
type Alert = (String, f64, f64);

fn csv_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            csv_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "csv") {
            out.push(path);
        }
    }
}

/// Welford's z-score rule (warmup 30, threshold 4) over readings in order.
fn zscore(rows: &[(String, f64)]) -> Vec<Alert> {
    let (mut n, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
    let mut alerts = Vec::new();
    for (t, x) in rows {
        if n >= 30 {
            let std = (m2 / (n - 1) as f64).sqrt();
            let z = if std > 0.0 { (x - mean) / std } else { 0.0 };
            if z.abs() >= 4.0 {
                alerts.push((t.clone(), *x, z));
            }
        }
        n += 1;
        let delta = x - mean;
        mean += delta / n as f64;
        m2 += delta * (x - mean);
    }
    alerts
}

/// Per series: alerts in file order and in event-time order.
fn oracle(data: &Path) -> BTreeMap<String, (Vec<Alert>, Vec<Alert>)> {
    let mut files = Vec::new();
    csv_files(data, &mut files);
    files
        .into_iter()
        .map(|file| {
            let name = file
                .strip_prefix(data)
                .unwrap()
                .with_extension("")
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&file).unwrap();
            let rows: Vec<(String, f64)> = text
                .lines()
                .skip(1)
                .filter(|l| !l.is_empty())
                .map(|l| {
                    let (t, v) = l.split_once(',').unwrap();
                    (t.to_string(), v.parse().unwrap())
                })
                .collect();
            let mut sorted = rows.clone();
            // Stable: readings with equal timestamps keep file order.
            sorted.sort_by_key(|(t, _)| {
                NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
                    .unwrap()
                    .and_utc()
                    .timestamp_millis()
            });
            (name, (zscore(&rows), zscore(&sorted)))
        })
        .collect()
}

#[test]
fn event_time_alerts_equal_the_rule_over_each_series_sorted_by_time() {
    let data = nab_dir().join("data");
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        std::fs::read_to_string(repo_root().join("examples/nab-anomaly/job-event-time.yaml"))
            .unwrap()
            .replace("../shared/data/nab/data", &data.display().to_string())
            .replace(
                "../../udfs/nab-zscore",
                &repo_root().join("udfs/nab-zscore").display().to_string(),
            )
            .replace(
                "out/nab-anomaly-event-time",
                &dir.path().display().to_string(),
            );
    let summary = run_yaml(dir.path(), &yaml, Some(2)).unwrap();
    assert_eq!(summary.record_errors, 0, "{:?}", summary.problems);
    assert!(
        read_parts(&dir.path().join("late"))
            .unwrap()
            .concat()
            .is_empty()
    );

    let mut got: BTreeMap<String, Vec<Alert>> = BTreeMap::new();
    for v in read_parts(&dir.path().join("alerts")).unwrap().concat() {
        got.entry(v["series"].as_str().unwrap().to_string())
            .or_default()
            .push((
                v["timestamp"].as_str().unwrap().to_string(),
                v["value"].as_f64().unwrap(),
                v["z"].as_f64().unwrap(),
            ));
    }
    let expected = oracle(&data);
    for (series, (_, event_time)) in &expected {
        let empty = Vec::new();
        assert_eq!(got.get(series).unwrap_or(&empty), event_time, "{series}");
    }
    assert!(got.keys().all(|s| expected.contains_key(s)));
    // The out-of-order block of this series makes the two orders differ.
    let (arrival, event) = &expected["realKnownCause/machine_temperature_system_failure"];
    assert_ne!(arrival, event);
}
