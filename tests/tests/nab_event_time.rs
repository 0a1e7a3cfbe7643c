//! `examples/nab-anomaly/job-event-time.yaml` (the z-score rule in event
//! time, buffered with timers until the watermark passes) equals the rule
//! applied to each series stable-sorted by timestamp, computed here.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use weir_tests::{nab_dir, nab_millis, nab_series, read_parts, repo_root, run_yaml, zscore_alerts};

/// `(timestamp text, value, z)` of one alert.
type Alert = (String, f64, f64);

/// Per series: alerts in file order and in event-time order.
fn oracle(data: &Path) -> BTreeMap<String, (Vec<Alert>, Vec<Alert>)> {
    nab_series(data)
        .unwrap()
        .into_iter()
        .map(|(name, rows)| {
            let mut sorted = rows.clone();
            // Stable: readings with equal timestamps keep file order.
            sorted.sort_by_key(|(t, _)| nab_millis(t).unwrap());
            let (arrival, event) = (
                zscore_alerts(&rows, 30, 4.0),
                zscore_alerts(&sorted, 30, 4.0),
            );
            (name, (arrival, event))
        })
        .collect()
}

/// `examples/nab-anomaly/job-event-time.yaml` reading the CSV files under
/// `data` and writing under `out`.
fn example_job(data: &Path, out: &Path) -> String {
    std::fs::read_to_string(repo_root().join("examples/nab-anomaly/job-event-time.yaml"))
        .unwrap()
        .replace("../shared/data/nab/data", &data.display().to_string())
        .replace(
            "../../udfs/nab-zscore",
            &repo_root().join("udfs/nab-zscore").display().to_string(),
        )
        .replace("out/nab-anomaly-event-time", &out.display().to_string())
}

#[test]
fn event_time_alerts_equal_the_rule_over_each_series_sorted_by_time() {
    assert_event_time_alerts_equal_the_rule("");
}

/// The guest's keyed-state cache (`weir_guest::state_cache`) off, and so
/// small (4 KiB against megabytes of readings waiting for the watermark)
/// that it is written back and emptied after nearly every record: the
/// same alerts.
#[test]
fn event_time_alerts_are_the_same_with_the_guest_state_cache_off_or_tiny() {
    assert_event_time_alerts_equal_the_rule(", state_cache_bytes: 0");
    assert_event_time_alerts_equal_the_rule(", state_cache_bytes: 4096");
}

/// Runs the example job with `extra` added to the UDF's config and checks
/// its alerts against the oracle.
fn assert_event_time_alerts_equal_the_rule(extra: &str) {
    let data = nab_dir().join("data");
    let dir = tempfile::tempdir().unwrap();
    let yaml = example_job(&data, dir.path())
        .replace("event_time: true }", &format!("event_time: true{extra} }}"));
    assert!(yaml.contains(&format!("true{extra} }}")), "{yaml}");
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

/// A reading behind the watermark when it arrives goes to the UDF's `late`
/// side output (through the task's sorted outputs) and nowhere else: with
/// one record per batch and no out-of-orderness allowed, exactly the two
/// readings older than one already read are late.
#[test]
fn readings_behind_the_watermark_go_to_the_late_side_output() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("s")).unwrap();
    let rows = [
        ("2020-01-01 10:00:00", 1.0),
        ("2020-01-01 10:01:00", 2.0),
        ("2020-01-01 10:02:00", 3.0),
        ("2020-01-01 09:30:00", 4.0),
        ("2020-01-01 10:03:00", 5.0),
        ("2020-01-01 09:59:00", 6.0),
        ("2020-01-01 10:04:00", 7.0),
    ];
    let mut csv = String::from("timestamp,value\n");
    for (t, v) in rows {
        csv.push_str(&format!("{t},{v}\n"));
    }
    std::fs::write(data.join("s/a.csv"), csv).unwrap();
    // The example job, with one record per batch and no out-of-orderness.
    let yaml = example_job(&data, dir.path())
        .replace("max_out_of_orderness: 1h", "max_out_of_orderness: 0ms")
        .replace("name: nab-anomaly-event-time", "name: late\nbatch_size: 1");
    assert!(yaml.contains("0ms") && yaml.contains("batch_size: 1"));
    let summary = run_yaml(dir.path(), &yaml, Some(1)).unwrap();
    assert_eq!(summary.record_errors, 0, "{:?}", summary.problems);
    let late: Vec<(String, f64)> = read_parts(&dir.path().join("late"))
        .unwrap()
        .concat()
        .into_iter()
        .map(|v| {
            (
                v["timestamp"].as_str().unwrap().to_string(),
                v["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        late,
        [
            ("2020-01-01 09:30:00".to_string(), 4.0),
            ("2020-01-01 09:59:00".to_string(), 6.0)
        ]
    );
    // Fewer than `warmup` readings: no alerts.
    assert!(
        read_parts(&dir.path().join("alerts"))
            .unwrap()
            .concat()
            .is_empty()
    );
}
