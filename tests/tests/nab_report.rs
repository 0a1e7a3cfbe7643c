//! `examples/nab-anomaly/report.py` counts alerts inside and outside NAB's
//! labelled windows (inclusive at both ends), per series and in total.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use weir_tests::repo_root;

#[test]
fn report_counts_alerts_inside_and_outside_windows() {
    let dir = tempfile::tempdir().unwrap();
    let alerts = dir.path().join("alerts");
    std::fs::create_dir_all(&alerts).unwrap();
    let alert = |series: &str, ts: &str| {
        format!("{{\"series\":\"{series}\",\"timestamp\":\"{ts}\",\"value\":1.0,\"z\":5.0}}\n")
    };
    // a: one alert on each window edge (inside), one before (outside).
    // b: no windows, one alert (outside). c: windows but no alerts.
    std::fs::write(
        alerts.join("part-0.jsonl"),
        alert("g/a", "2014-04-10 07:15:00")
            + &alert("g/a", "2014-04-11 16:45:00")
            + &alert("g/a", "2014-04-10 07:14:59"),
    )
    .unwrap();
    std::fs::write(
        alerts.join("part-1.jsonl"),
        alert("g/b", "2015-01-01 00:00:00"),
    )
    .unwrap();
    let labels = dir.path().join("labels.json");
    std::fs::write(
        &labels,
        r#"{"g/a.csv": [["2014-04-10 07:15:00.000000", "2014-04-11 16:45:00.000000"]], "g/b.csv": [], "g/c.csv": [["2014-01-01 00:00:00.000000", "2014-01-02 00:00:00.000000"]]}"#,
    )
    .unwrap();
    let out = Command::new("python3")
        .arg(repo_root().join("examples/nab-anomaly/report.py"))
        .arg(&alerts)
        .arg(&labels)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |name: &str| -> Vec<String> {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in {text}"));
        line.split_whitespace()
            .skip(1)
            .map(str::to_string)
            .collect()
    };
    assert_eq!(row("g/a"), ["1", "2", "1"], "windows, inside, outside");
    assert_eq!(row("g/b"), ["0", "0", "1"]);
    assert_eq!(row("g/c"), ["1", "0", "0"]);
    assert_eq!(row("TOTAL"), ["2", "2", "2"]);
    assert!(
        text.contains("4 alerts: 2 inside labelled anomaly windows (50.0%), 2 outside"),
        "{text}"
    );
}
