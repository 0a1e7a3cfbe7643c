//! One function per fuzz target: each reads arbitrary bytes the way Weir
//! reads them from outside and must return (an error is fine), never panic,
//! hang or allocate without bound. The `src/bin/*` targets hand AFL's
//! inputs to them; `tests` replays the seed corpora.

use std::path::Path;

use weir_connectors::{SourceReader, plan_splits};
use weir_protocol::{ControlDecoder, FrameDecoder};
use weir_types::jobgraph::{JobGraph, SourceKind};

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
];
