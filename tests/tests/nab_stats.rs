//! `examples/nab-anomaly/stats.yaml` (hourly tumbling stats and a daily
//! sliding max per series, in event time) equals a recomputation over the
//! NAB files written here, at parallelism 1 and 2.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;
use weir_tests::{nab_dir, nab_series_ms, read_parts, repo_root, run_yaml};

const HOUR: i64 = 3_600_000;
const FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Every series' `(timestamp ms, value)` rows in file order.
fn series(data: &Path) -> BTreeMap<String, Vec<(i64, f64)>> {
    nab_series_ms(data).unwrap()
}

fn text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format(FORMAT)
        .to_string()
}

type Bounds = (String, String, String);

/// Hourly `[count, min, max, mean]` per series and window.
fn hourly(all: &BTreeMap<String, Vec<(i64, f64)>>) -> BTreeMap<Bounds, [f64; 4]> {
    let mut sums: BTreeMap<(String, i64), (u64, f64, f64, f64)> = BTreeMap::new();
    for (name, rows) in all {
        for &(t, v) in rows {
            let start = t - t.rem_euclid(HOUR);
            let e = sums.entry((name.clone(), start)).or_insert((
                0,
                f64::INFINITY,
                f64::NEG_INFINITY,
                0.0,
            ));
            e.0 += 1;
            e.1 = e.1.min(v);
            e.2 = e.2.max(v);
            e.3 += v;
        }
    }
    sums.into_iter()
        .map(|((name, start), (n, min, max, sum))| {
            (
                (name, text(start), text(start + HOUR)),
                [n as f64, min, max, sum / n as f64],
            )
        })
        .collect()
}

/// Max over every 24 h window starting on an hour that contains a reading.
fn daily_max(all: &BTreeMap<String, Vec<(i64, f64)>>) -> BTreeMap<Bounds, f64> {
    let mut maxes: BTreeMap<(String, i64), f64> = BTreeMap::new();
    for (name, rows) in all {
        for &(t, v) in rows {
            let last_start = t - t.rem_euclid(HOUR);
            for k in 0..24 {
                let m = maxes
                    .entry((name.clone(), last_start - k * HOUR))
                    .or_insert(f64::NEG_INFINITY);
                *m = m.max(v);
            }
        }
    }
    maxes
        .into_iter()
        .map(|((name, start), max)| ((name, text(start), text(start + 24 * HOUR)), max))
        .collect()
}

fn bounds(v: &Value, key: &str) -> Bounds {
    (
        v["series"].as_str().unwrap().to_string(),
        v["window_start"].as_str().unwrap().to_string(),
        v[key].as_str().unwrap().to_string(),
    )
}

fn check(parallelism: u32) {
    let data = nab_dir().join("data");
    let dir = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(repo_root().join("examples/nab-anomaly/stats.yaml"))
        .unwrap()
        .replace("../shared/data/nab/data", &data.display().to_string())
        .replace("out/nab-stats", &dir.path().display().to_string());
    let summary = run_yaml(dir.path(), &yaml, Some(parallelism)).unwrap();
    assert_eq!(summary.record_errors, 0, "{:?}", summary.problems);
    let all = series(&data);
    let rows: usize = all.values().map(Vec::len).sum();
    assert_eq!(summary.records_read, rows as u64);

    let late: Vec<Value> = read_parts(&dir.path().join("late")).unwrap().concat();
    assert!(
        late.is_empty(),
        "a 1 h bound leaves no reading late: {late:?}"
    );

    let mut got_hourly = BTreeMap::new();
    for v in read_parts(&dir.path().join("hourly")).unwrap().concat() {
        let stats = ["count", "min", "max", "mean"].map(|f| v[f].as_f64().unwrap());
        assert!(
            got_hourly.insert(bounds(&v, "window_end"), stats).is_none(),
            "{v}"
        );
    }
    assert_eq!(got_hourly, hourly(&all));

    let mut got_daily = BTreeMap::new();
    for v in read_parts(&dir.path().join("daily-max")).unwrap().concat() {
        assert_eq!(v.as_object().unwrap().len(), 4, "{v}");
        let max = v["max"].as_f64().unwrap();
        assert!(
            got_daily.insert(bounds(&v, "window_end"), max).is_none(),
            "{v}"
        );
    }
    assert_eq!(got_daily, daily_max(&all));
}

#[test]
fn hourly_stats_and_daily_max_equal_the_recomputation_at_parallelism_1() {
    check(1);
}

#[test]
fn hourly_stats_and_daily_max_equal_the_recomputation_at_parallelism_2() {
    check(2);
}
