//! One function per fuzz target: each reads arbitrary bytes the way Weir
//! reads them from outside and must return (an error is fine), never panic,
//! hang or allocate without bound. The `src/bin/*` targets hand AFL's
//! inputs to them; `tests` replays the seed corpora.

use std::path::Path;

use weir_connectors::{SourceReader, plan_splits};
use weir_operators::{JoinOperator, OperatorOutput, WindowOperator};
use weir_protocol::{ControlDecoder, FrameDecoder};
use weir_types::Record;
use weir_types::jobgraph::{
    AggregateFn, AggregateSpec, DurationMs, JobGraph, JoinKind, JoinSpec, SignedDurationMs,
    SourceKind, TimeDomain, WindowKind, WindowSpec,
};

/// A job file (YAML), parsed and validated.
pub fn job_file(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = JobGraph::from_yaml(&text, Path::new("fuzz.yaml"));
}

/// A packed batch of records and a packed buffer of outputs (`weir-abi`),
/// read to the end or the first error.
pub fn packed_batch(data: &[u8]) {
    for record in weir_abi::records(data) {
        if record.is_err() {
            break;
        }
    }
    for output in weir_abi::outputs(data) {
        if output.is_err() {
            break;
        }
    }
}

/// A data stream (preamble and `StreamElement` frames), fed in two chunks.
pub fn data_frames(data: &[u8]) {
    // The data plane's limit (`weir_rpc::data::MAX_DATA_FRAME_BYTES`).
    let mut decoder = FrameDecoder::new(64 << 20);
    let half = data.len() / 2;
    for chunk in [&data[..half], &data[half..]] {
        decoder.push(chunk);
        while let Ok(Some(_)) = decoder.next() {}
    }
    let _ = decoder.finish();
}

/// A control stream (preamble and length-prefixed postcard messages) of
/// the control messages between TaskManagers and the JobManager.
pub fn control_frames(data: &[u8]) {
    let mut decoder = ControlDecoder::new(1 << 20);
    decoder.push(data);
    while let Ok(Some(_)) = decoder.next::<weir_protocol::messages::ControlMessage>() {}
}

/// A checkpoint's `_metadata`.
pub fn checkpoint_metadata(data: &[u8]) {
    let _ = serde_json::from_slice::<weir_checkpoint::CheckpointMetadata>(data);
}

/// `data` as a file of `format` (csv or jsonl) read by a file source, with
/// a key field and a timestamp field.
fn file_source(data: &[u8], format: &str) {
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let file = dir.path().join(format!("input.{format}"));
    if std::fs::write(&file, data).is_err() {
        return;
    }
    let yaml = format!(
        "type: file\npath: {}\nformat: {format}\nkey: {{ field: k }}\ntimestamp: {{ field: t, format: millis }}\n",
        file.display()
    );
    let Ok(kind) = source_kind(&yaml) else {
        return;
    };
    let Ok(splits) = plan_splits("fuzz", &kind, 1, 0) else {
        return;
    };
    let mut reader = SourceReader::new(&kind, splits);
    let mut bad = Vec::new();
    for _ in 0..10_000 {
        match reader.next_batch(64, &mut bad) {
            Ok(Some(_)) => bad.clear(),
            Ok(None) | Err(_) => break,
        }
    }
}

/// The source kind from a one-source job, through the job file parser.
fn source_kind(source: &str) -> Result<SourceKind, ()> {
    let indented: String = source
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("  - id: s\n    {l}\n")
            } else {
                format!("    {l}\n")
            }
        })
        .collect();
    let yaml = format!(
        "name: fuzz\nsources:\n{indented}sinks:\n  - {{ id: out, input: s, type: blackhole }}\n"
    );
    let job = JobGraph::from_yaml(&yaml, Path::new("fuzz.yaml")).map_err(|_| ())?;
    job.sources.into_iter().next().map(|s| s.kind).ok_or(())
}

/// A CSV file through the file source.
pub fn csv_records(data: &[u8]) {
    file_source(data, "csv");
}

/// A JSON-lines file through the file source.
pub fn jsonl_records(data: &[u8]) {
    file_source(data, "jsonl");
}

/// A fuzz target: bytes in, nothing out.
pub type Target = fn(&[u8]);

/// A subtask state file (`WSUB1`) as a restore reads it, and in it each
/// operator's incremental handle (`WKI2`/`WKI1`) or operator state
/// (`WOS1`).
pub fn state_files(data: &[u8]) {
    let Ok(snapshot) = weir_snapshot::SubtaskSnapshot::decode(data) else {
        return;
    };
    for op in &snapshot.ops {
        if weir_snapshot::IncrementalHandle::is_handle(&op.state) {
            let _ = weir_snapshot::IncrementalHandle::decode(&op.state);
        } else {
            let _ = weir_snapshot::decode_operator_state(&op.state);
        }
        let _ = snapshot.operator(&op.operator);
    }
}

/// A full keyed-state snapshot (`WKS1`) as a restore reads it: every
/// entry, and in each its storage key split into key group, key and what
/// the entry holds (a timer, or the kind and name of its state).
pub fn keyed_state(data: &[u8]) {
    let Ok(entries) = weir_snapshot::snapshot_entries(data) else {
        return;
    };
    for entry in entries {
        let Ok((key, _value)) = entry else {
            return;
        };
        if let Ok(parsed) = weir_snapshot::StorageKey::parse(key) {
            let _ = parsed.is_timer();
            let _ = parsed.entry();
        }
    }
}

/// A window's or a join's state snapshot (`WWIN1` or earlier JSON,
/// `WJN1`) restored into the operator the first byte picks (a tumbling,
/// sliding or session window counting per key, a window or an interval
/// join), keeping the keys the second byte's parity picks, as a restore at
/// another parallelism does; then the restored operator takes a record,
/// snapshots again, and fires everything at the end of its input.
pub fn operator_snapshots(data: &[u8]) {
    let [which, owns, bytes @ ..] = data else {
        return;
    };
    let owns = |key: &[u8]| owns & 1 == 0 || key.first().is_some_and(|b| b & 1 == 1);
    let record = Record {
        key: Some(b"k".to_vec()),
        value: weir_types::Bytes::from_static(br#"{"k":"k","v":1}"#),
        timestamp: Some(5),
    };
    let mut out = OperatorOutput::default();
    match which % 5 {
        kind @ 0..=2 => {
            let kind = [
                WindowKind::Tumbling,
                WindowKind::Sliding,
                WindowKind::Session,
            ][usize::from(kind)];
            let Ok(mut op) = WindowOperator::new(&window_spec(kind), &count(), None) else {
                return;
            };
            if op.restore([bytes], owns).is_err() {
                return;
            }
            op.process(vec![record], 0, &mut out);
            let _ = op.snapshot();
            op.on_watermark(i64::MAX, &mut out);
            op.end_of_input(&mut out);
        }
        kind => {
            let mut op = JoinOperator::new(&join_spec(kind == 3));
            if op.restore([bytes], owns).is_err() {
                return;
            }
            op.process(0, vec![record.clone()], &mut out);
            op.process(1, vec![record], &mut out);
            let _ = op.snapshot();
            op.on_watermark(i64::MAX, &mut out);
        }
    }
}

/// The window of the `operator_snapshots` target: 10 ms, sliding by 5,
/// sessions with a 10 ms gap; event time, 2 ms of allowed lateness.
pub fn window_spec(kind: WindowKind) -> WindowSpec {
    WindowSpec {
        kind,
        size: (kind != WindowKind::Session).then_some(DurationMs(10)),
        slide: (kind == WindowKind::Sliding).then_some(DurationMs(5)),
        gap: (kind == WindowKind::Session).then_some(DurationMs(10)),
        time: TimeDomain::Event,
        allowed_lateness: DurationMs(2),
        late_output: Some("late".into()),
        key_field: "k".into(),
        bounds_format: None,
    }
}

/// The aggregate of the `operator_snapshots` target: a count.
pub fn count() -> Vec<AggregateSpec> {
    vec![AggregateSpec {
        function: AggregateFn::Count,
        field: None,
        name: None,
    }]
}

/// The join of the `operator_snapshots` target: a 10 ms tumbling window
/// join, or an interval join from 2 ms before to 3 ms after.
pub fn join_spec(window: bool) -> JoinSpec {
    match window {
        true => JoinSpec {
            kind: JoinKind::Window,
            window: Some(WindowSpec {
                late_output: None,
                ..window_spec(WindowKind::Tumbling)
            }),
            lower: None,
            upper: None,
        },
        false => JoinSpec {
            kind: JoinKind::Interval,
            window: None,
            lower: Some(SignedDurationMs(-2)),
            upper: Some(SignedDurationMs(3)),
        },
    }
}

/// Every target by name.
pub const TARGETS: &[(&str, Target)] = &[
    ("job_file", job_file),
    ("packed_batch", packed_batch),
    ("data_frames", data_frames),
    ("control_frames", control_frames),
    ("checkpoint_metadata", checkpoint_metadata),
    ("csv_records", csv_records),
    ("jsonl_records", jsonl_records),
    ("state_files", state_files),
    ("keyed_state", keyed_state),
    ("operator_snapshots", operator_snapshots),
];
