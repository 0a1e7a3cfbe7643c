//! Tests of the file and generator sources.

use super::*;
use weir_types::jobgraph::KeyFrom;

fn csv_source(dir: &Path) -> SourceKind {
    SourceKind::File {
        path: dir.to_path_buf(),
        glob: Some("**/*.csv".into()),
        format: FileFormat::Csv,
        key: Some(KeySpec::FromPath {
            from: KeyFrom::Path,
        }),
        timestamp: Some(TimestampSpec {
            field: "timestamp".into(),
            format: "%Y-%m-%d %H:%M:%S".into(),
        }),
    }
}

fn read_all(
    kind: &SourceKind,
    splits: Vec<Split>,
    max: usize,
) -> (Vec<(Record, Origin)>, Vec<BadRecord>) {
    let mut reader = SourceReader::new(kind, splits);
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    while let Some(batch) = reader.next_batch(max, &mut bad).unwrap() {
        assert!(batch.len() <= max);
        out.extend(batch.records.into_iter().zip(batch.origins));
    }
    (out, bad)
}

#[test]
fn csv_files_give_keyed_timestamped_json_records() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    std::fs::write(
        dir.path().join("a/s1.csv"),
        "timestamp,value\n2014-07-01 00:00:00,10\n2014-07-01 00:30:00,1.5\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.csv"),
        "timestamp,value\n1970-01-01 00:00:01,-3\nnot a time,4\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("ignored.txt"), "x").unwrap();
    let kind = csv_source(dir.path());
    let splits = plan_splits("src", &kind, 1, 5).unwrap();
    assert_eq!(splits.len(), 2);
    assert_eq!(splits[0].index, 5);
    let (records, bad) = read_all(&kind, splits, 1);
    assert_eq!(records.len(), 3);
    let (r, o) = &records[0];
    assert_eq!(r.key.as_deref(), Some(&b"a/s1"[..]));
    assert_eq!(r.timestamp, Some(1_404_172_800_000));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&r.value).unwrap(),
        serde_json::json!({"timestamp": "2014-07-01 00:00:00", "value": 10})
    );
    assert_eq!(
        *o,
        Origin {
            split: 5,
            position: 2
        }
    );
    // Interleaved: one record of each file in turn.
    let keys: Vec<&[u8]> = records
        .iter()
        .map(|(r, _)| r.key.as_deref().unwrap())
        .collect();
    assert_eq!(keys, [&b"a/s1"[..], b"b", b"a/s1"]);
    assert_eq!(records[1].0.timestamp, Some(1000));
    assert_eq!(bad.len(), 1);
    assert_eq!((bad[0].split, bad[0].line), (6, 3));
    assert!(bad[0].message.contains("not a time"), "{}", bad[0].message);
}

#[test]
fn in_a_crlf_file_records_and_bad_records_name_their_own_line_and_bytes() {
    // Regression: after a CRLF line end the csv crate puts a record on
    // the line before (at the `\n`): lines were one too low and a bad
    // record's bytes began with a line break.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.csv"),
        "timestamp,value\r\n\
         2014-07-01 00:00:00,1\r\n\
         not a time,2\r\n\
         2014-07-01 00:02:00,3,extra\r\n\
         2014-07-01 00:03:00,4\r\n",
    )
    .unwrap();
    let kind = csv_source(dir.path());
    let (records, bad) = read_all(&kind, plan_splits("s", &kind, 1, 0).unwrap(), 10);
    let lines: Vec<u64> = records.iter().map(|(_, o)| o.position).collect();
    assert_eq!(lines, [2, 5], "{records:?}");
    let bad: Vec<(u64, &[u8])> = bad.iter().map(|b| (b.line, b.bytes.as_slice())).collect();
    assert_eq!(
        bad,
        [
            (3, &b"not a time,2"[..]),
            (4, &b"2014-07-01 00:02:00,3,extra"[..])
        ]
    );
}

#[test]
fn a_csv_row_that_is_not_utf8_is_a_bad_record_and_reading_goes_on() {
    // Rows are read as bytes and checked for UTF-8 once, whole.
    let dir = tempfile::tempdir().unwrap();
    let mut text = b"timestamp,value,note\n2014-07-01 00:00:00,1,caf\xc3\xa9\n".to_vec();
    text.extend_from_slice(b"2014-07-01 00:01:00,2,bad \xff byte\n");
    text.extend_from_slice(b"2014-07-01 00:02:00,3,\"say \"\"hi\"\"\"\n");
    std::fs::write(dir.path().join("x.csv"), text).unwrap();
    let kind = csv_source(dir.path());
    let (records, bad) = read_all(&kind, plan_splits("s", &kind, 1, 0).unwrap(), 10);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].line, 3, "{bad:?}");
    assert!(bad[0].message.contains("not UTF-8"), "{bad:?}");
    assert!(
        bad[0].bytes.starts_with(b"2014-07-01 00:01:00,2,bad \xff"),
        "{bad:?}"
    );
    let values: Vec<serde_json::Value> = records
        .iter()
        .map(|(r, _)| serde_json::from_slice(&r.value).unwrap())
        .collect();
    assert_eq!(
        values,
        vec![
            serde_json::json!({"timestamp": "2014-07-01 00:00:00", "value": 1, "note": "café"}),
            serde_json::json!({"timestamp": "2014-07-01 00:02:00", "value": 3, "note": "say \"hi\""}),
        ]
    );
    assert_eq!(records[1].1.position, 4);
}

#[test]
fn malformed_csv_rows_name_their_own_line_and_an_open_quote_takes_only_its_line() {
    // Regressions: parse errors named the line one too high, and an
    // unterminated quote silently swallowed the following rows into
    // one value.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.csv"),
        "timestamp,value\n\
         2014-07-01 00:00:00,1\n\
         2014-07-01 00:01:00,2,extra\n\
         2014-07-01 00:02:00,\"3\n\
         2014-07-01 00:03:00,4\n\
         2014-07-01 00:04:00,5\n",
    )
    .unwrap();
    // An open quote in the middle of three columns: the swallowed text
    // then makes a row of the wrong length (an error, not a row).
    std::fs::create_dir_all(dir.path().join("y")).unwrap();
    std::fs::write(
        dir.path().join("y/z.csv"),
        "timestamp,value,name\n\
         2014-07-01 00:00:00,\"1,a\n\
         2014-07-01 00:01:00,2,b\n\
         2014-07-01 00:02:00,3,c\n",
    )
    .unwrap();
    let kind = csv_source(&dir.path().join("y"));
    let (records, bad) = read_all(&kind, plan_splits("s", &kind, 1, 0).unwrap(), 10);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].line, 2, "{bad:?}");
    assert!(bad[0].message.contains("not closed on its line"), "{bad:?}");
    let lines: Vec<u64> = records.iter().map(|(_, o)| o.position).collect();
    assert_eq!(lines, [3, 4], "{records:?}");
    std::fs::remove_dir_all(dir.path().join("y")).unwrap();
    let kind = csv_source(dir.path());
    let (records, bad) = read_all(&kind, plan_splits("s", &kind, 1, 0).unwrap(), 10);
    let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
    assert_eq!(lines, [3, 4], "{bad:?}");
    assert!(bad[1].message.contains("not closed on its line"), "{bad:?}");
    let values: Vec<(u64, serde_json::Value)> = records
        .iter()
        .map(|(r, o)| {
            let v: serde_json::Value = serde_json::from_slice(&r.value).unwrap();
            (o.position, v["value"].clone())
        })
        .collect();
    assert_eq!(
        values,
        [
            (2, serde_json::json!(1)),
            (5, serde_json::json!(4)),
            (6, serde_json::json!(5))
        ]
    );
}

#[test]
fn missing_header_field_and_missing_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.csv"), "time,value\n1,2\n").unwrap();
    let kind = csv_source(dir.path());
    let splits = plan_splits("src", &kind, 1, 0).unwrap();
    let mut reader = SourceReader::new(&kind, splits);
    let err = reader
        .next_batch(10, &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("x.csv")
            && err.contains("timestamp field `timestamp` is not in the CSV header"),
        "{err}"
    );
    let missing = csv_source(&dir.path().join("nope"));
    let err = plan_splits("src", &missing, 1, 0).unwrap_err().to_string();
    assert!(err.contains("nope") && err.contains("cannot read"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = plan_splits("src", &csv_source(empty.path()), 1, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("matched no file"), "{err}");
}

#[test]
fn jsonl_key_and_time_from_fields() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    std::fs::write(
        &file,
        b"{\"k\":\"a\",\"t\":5}\n\n{broken\n{\"k\":7,\"t\":6}\r\n\xff\xfe\n",
    )
    .unwrap();
    // Regression: an unkeyed source let lines that are JSON but not
    // objects through.
    let unkeyed = dir.path().join("unkeyed.jsonl");
    std::fs::write(&unkeyed, "{\"a\":1}\n[1,2]\n3\n\"text\"\n {\"b\":2}\n").unwrap();
    let plain = SourceKind::File {
        path: unkeyed,
        glob: None,
        format: FileFormat::Jsonl,
        key: None,
        timestamp: None,
    };
    let (records, bad) = read_all(&plain, plan_splits("s", &plain, 1, 0).unwrap(), 10);
    assert_eq!(records.len(), 2);
    let lines: Vec<u64> = bad.iter().map(|b| b.line).collect();
    assert_eq!(lines, [2, 3, 4]);
    assert!(
        bad[0].message.contains("not a JSON object"),
        "{}",
        bad[0].message
    );
    let kind = SourceKind::File {
        path: file,
        glob: None,
        format: FileFormat::Jsonl,
        key: Some(KeySpec::Field { field: "k".into() }),
        timestamp: Some(TimestampSpec {
            field: "t".into(),
            format: "millis".into(),
        }),
    };
    let (records, bad) = read_all(&kind, plan_splits("s", &kind, 1, 0).unwrap(), 10);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].0.key.as_deref(), Some(&b"a"[..]));
    assert_eq!(records[1].0.key.as_deref(), Some(&b"7"[..]));
    assert_eq!(records[1].0.timestamp, Some(6));
    assert_eq!(records[1].1.position, 4);
    assert_eq!(bad.len(), 2);
    assert_eq!(bad[0].line, 3);
    assert_eq!(bad[1].line, 5);
    assert!(bad[1].message.contains("not UTF-8"), "{}", bad[1].message);
}

#[test]
fn splits_take_turns_and_report_when_they_end() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.csv"),
        "timestamp,value\n1970-01-01 00:00:01,1\n",
    )
    .unwrap();
    let rows: String = (0..5)
        .map(|i| format!("1970-01-01 00:00:0{i},{i}\n"))
        .collect();
    std::fs::write(dir.path().join("b.csv"), format!("timestamp,value\n{rows}")).unwrap();
    let kind = csv_source(dir.path());
    let mut reader = SourceReader::new(&kind, plan_splits("s", &kind, 1, 0).unwrap());
    let mut bad = Vec::new();
    let mut order = Vec::new();
    let mut finished = Vec::new();
    while let Some(batch) = reader.next_batch(2, &mut bad).unwrap() {
        let split = batch.origins[0].split;
        assert!(
            batch.origins.iter().all(|o| o.split == split),
            "one split per batch"
        );
        order.push((split, batch.len()));
        finished.extend(reader.take_finished());
    }
    finished.extend(reader.take_finished());
    assert_eq!(order, [(0, 1), (1, 2), (1, 2), (1, 1)]);
    assert_eq!(finished, [0, 1]);
}

#[test]
fn datagen_splits_cover_the_count_exactly() {
    let kind = SourceKind::Datagen {
        count: 10,
        record_bytes: 100,
        keys: Some(3),
    };
    let splits = plan_splits("g", &kind, 3, 0).unwrap();
    let mut seqs = Vec::new();
    for split in splits {
        let (records, _) = read_all(&kind, vec![split], 4);
        for (r, o) in records {
            assert_eq!(r.value.len(), 100);
            serde_json::from_slice::<serde_json::Value>(&r.value).unwrap();
            assert_eq!(r.key, Some(format!("key-{}", o.position % 3).into_bytes()));
            seqs.push(o.position);
        }
    }
    seqs.sort();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
}

/// Reads `batches` batches, then resumes a fresh reader from the
/// positions and reads the rest: together they must be exactly the
/// records (and origins) of one uninterrupted read.
fn resumed_read(kind: &SourceKind, splits: Vec<Split>, max: usize, batches: usize) {
    let (all, _) = read_all(kind, splits.clone(), max);
    let mut first = SourceReader::new(kind, splits.clone());
    let (mut got, mut bad) = (Vec::new(), Vec::new());
    for _ in 0..batches {
        let batch = first.next_batch(max, &mut bad).unwrap().unwrap();
        got.extend(batch.records.into_iter().zip(batch.origins));
    }
    let positions = first.positions();
    let mut second = SourceReader::new(kind, splits);
    second.resume(&positions);
    while let Some(batch) = second.next_batch(max, &mut bad).unwrap() {
        got.extend(batch.records.into_iter().zip(batch.origins));
    }
    let key = |(r, o): &(Record, Origin)| (o.split, o.position, r.value.clone());
    let (mut got, mut all) = (got, all);
    got.sort_by_key(key);
    all.sort_by_key(key);
    assert_eq!(got.len(), all.len(), "after {batches} batches of {max}");
    assert!(got == all, "after {batches} batches of {max}");
}

#[test]
fn readers_resume_from_checkpointed_positions_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    for (name, rows) in [("a.csv", 7), ("b.csv", 3), ("c.csv", 1)] {
        let mut text = "timestamp,value\n".to_string();
        for i in 0..rows {
            text.push_str(&format!("2014-07-01 00:{i:02}:00,{i}\n"));
        }
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let csv = csv_source(dir.path());
    let splits = plan_splits("s", &csv, 1, 0).unwrap();
    for (max, batches) in [(2, 1), (2, 3), (3, 4), (5, 2)] {
        resumed_read(&csv, splits.clone(), max, batches);
    }

    let jsonl_dir = dir.path().join("jsonl");
    std::fs::create_dir_all(&jsonl_dir).unwrap();
    std::fs::write(
        jsonl_dir.join("x.jsonl"),
        "{\"a\":1}\n\n{\"a\":2}\nnot json\n{\"a\":3}\n{\"a\":4}",
    )
    .unwrap();
    std::fs::write(jsonl_dir.join("y.jsonl"), "{\"b\":1}\r\n{\"b\":2}\r\n").unwrap();
    let jsonl = SourceKind::File {
        path: jsonl_dir,
        glob: None,
        format: FileFormat::Jsonl,
        key: None,
        timestamp: None,
    };
    let splits = plan_splits("s", &jsonl, 1, 0).unwrap();
    for (max, batches) in [(1, 1), (1, 3), (2, 2), (3, 1)] {
        resumed_read(&jsonl, splits.clone(), max, batches);
    }

    let datagen: SourceKind =
        serde_json::from_str(r#"{"type":"datagen","count":50,"keys":3}"#).unwrap();
    let splits = plan_splits("g", &datagen, 2, 0).unwrap();
    resumed_read(&datagen, splits, 7, 3);

    let nexmark: SourceKind = serde_json::from_str(r#"{"type":"nexmark","events":300}"#).unwrap();
    let splits = plan_splits("n", &nexmark, 3, 0).unwrap();
    resumed_read(&nexmark, splits, 16, 5);
}
