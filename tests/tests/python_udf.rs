//! A Python map UDF built with componentize-py against the same WIT runs in
//! a job: the interface is language-neutral.

#![allow(clippy::unwrap_used)]

use weir_tests::{python_udf, read_parts, run_yaml};

#[test]
fn python_map_udf_runs_in_a_job() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = python_udf("python-scale", dir.path()).expect("componentize-py builds the UDF");
    let data = dir.path().join("in.csv");
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
        "name: py\nsources:\n  - {{id: in, type: file, path: {data}, format: csv, key: {{field: name}}}}\noperators:\n  - {{id: scale, input: in, udf: {wasm}, config: {{factor: 3}}, memory_mib: 256}}\nsinks:\n  - {{id: out, input: scale, type: file, path: {out}}}\n",
        data = data.display(),
        wasm = wasm.display(),
        out = dir.path().join("out").display(),
    );
    let summary = run_yaml(dir.path(), &yaml, Some(1)).expect("job runs");
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
    let rows = read_parts(&dir.path().join("out")).unwrap().concat();
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
