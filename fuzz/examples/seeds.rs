//! Writes the binary seed corpora (`seeds/packed_batch`, `seeds/data_frames`,
//! `seeds/control_frames`, `seeds/state_files`, `seeds/keyed_state`,
//! `seeds/operator_snapshots`) with Weir's own encoders:
//! `cargo run --example seeds` in `fuzz/` (the text seeds are kept by hand).

use std::borrow::Cow;
use std::collections::BTreeMap;

use weir_checkpoint::Acknowledgement;
use weir_connectors::SplitPosition;
use weir_operators::{JoinOperator, OperatorOutput, WindowOperator};
use weir_protocol::messages::{AttemptId, ControlMessage, Registration, TaskManagerId};
use weir_protocol::task::{
    MetricsSnapshot, TaskControl, TaskFailureKind, VertexSnapshot, WireEvent, WireFailure,
};
use weir_snapshot::{
    HeadSnapshot, IncrementalHandle, InputWatermarksSnapshot, KeyedSnapshot, OperatorSnapshot,
    SharedFile, SplitWatermarksSnapshot, StateKind, StorageKey, SubtaskSnapshot, TIMER_TAG,
    encode_operator_state, encode_timer_timestamp,
};
use weir_types::jobgraph::WindowKind;
use weir_types::{Batch, Origin, Record, StreamElement, WatermarkStatus};

fn write(dir: &str, name: &str, bytes: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let mut batch = Vec::new();
    weir_abi::write_record(&mut batch, Some(b"k1"), br#"{"v":1}"#, Some(1_000));
    weir_abi::write_record(&mut batch, None, b"2", None);
    write("packed_batch", "records", &batch);
    let mut outputs = Vec::new();
    weir_abi::begin_emit(&mut outputs);
    weir_abi::write_record(&mut outputs, Some(b"k"), b"{}", Some(5));
    weir_abi::begin_side(&mut outputs, "late");
    weir_abi::write_record(&mut outputs, None, b"[1]", None);
    weir_abi::write_error(&mut outputs, 0, "bad");
    write("packed_batch", "outputs", &outputs);

    let mut frames = Vec::new();
    weir_protocol::encode_preamble(&mut frames);
    let mut b = Batch::default();
    b.push(
        Record {
            key: Some(b"a".to_vec()),
            value: br#"{"x":1}"#.to_vec().into(),
            timestamp: Some(7),
        },
        Origin::DERIVED,
    );
    for element in [
        StreamElement::Batch(b),
        StreamElement::Watermark(42),
        StreamElement::WatermarkStatus(WatermarkStatus::Idle),
        StreamElement::Barrier(3),
        StreamElement::EndOfInput,
    ] {
        weir_protocol::encode(&element, &mut frames);
    }
    write("data_frames", "elements", &frames);

    let mut control = Vec::new();
    weir_protocol::encode_control_preamble(&mut control);
    let attempt = || AttemptId {
        epoch: 1_700_000_000_000,
        job: "nab".into(),
        attempt: 2,
    };
    let mut vertices = BTreeMap::new();
    vertices.insert(
        "zscore".to_string(),
        VertexSnapshot {
            parallelism: 2,
            records_in: 10,
            records_out: 3,
            back_pressured_ns: 5,
            watermarks: vec![i64::MIN, 7],
        },
    );
    for message in [
        ControlMessage::Register(Registration {
            host: "127.0.0.2".into(),
            slots: 2,
            weir_version: "0.1.0".into(),
        }),
        ControlMessage::Registered {
            taskmanager: TaskManagerId("tm-1-127.0.0.2".into()),
            address: "127.0.0.2:6124".into(),
            heartbeat_interval_ms: 1_000,
            heartbeat_timeout_ms: 5_000,
        },
        ControlMessage::Deploy {
            attempt: attempt(),
            share_json: "{}".into(),
            tasks: vec![("zscore".into(), 0), ("zscore".into(), 1)],
            artifacts: BTreeMap::from([("zscore".to_string(), "ab".repeat(32))]),
        },
        ControlMessage::Control {
            attempt: attempt(),
            task: ("src".into(), 0),
            control: TaskControl::TriggerCheckpoint(4),
        },
        ControlMessage::Event {
            attempt: attempt(),
            event: WireEvent::Acknowledge {
                task: ("zscore".into(), 1),
                checkpoint: 4,
                ack: Acknowledgement {
                    state: Some("zscore-1".into()),
                    shared: vec!["shared/000009.sst".into()],
                    size_bytes: 4_096,
                    full_size_bytes: 8_192,
                    alignment_ms: 3,
                    state_crc32: Some(0x1234_5678),
                },
            },
        },
        ControlMessage::Event {
            attempt: attempt(),
            event: WireEvent::Failed {
                task: ("zscore".into(), 0),
                failure: WireFailure::Task {
                    vertex: "zscore".into(),
                    index: 0,
                    parallelism: 2,
                    origin: Some("a.csv:7".into()),
                    kind: TaskFailureKind::Trap,
                    message: "unreachable".into(),
                },
            },
        },
        ControlMessage::Artifact {
            id: "abc".into(),
            bytes: Ok(vec![0, 97, 115, 109]),
        },
        ControlMessage::Metrics {
            attempt: attempt(),
            snapshot: MetricsSnapshot {
                records_read: 10,
                problems: vec!["bad row".into()],
                vertices,
                ..MetricsSnapshot::default()
            },
        },
        ControlMessage::Heartbeat,
    ] {
        weir_protocol::encode_control(&message, &mut control).unwrap();
    }
    write("control_frames", "messages", &control);

    let handle = IncrementalHandle {
        shared: vec![SharedFile {
            local: "000012.sst".into(),
            stored: "shared/zscore-0-000012.sst".into(),
            size_bytes: 4_096,
            crc32: Some(0x1234_5678),
        }],
        private: vec![("CURRENT".into(), b"MANIFEST-000005\n".to_vec())],
    };
    let handle = handle.encode().unwrap();
    let items = encode_operator_state(&[b"a".to_vec(), Vec::new()]);
    for (name, head) in [
        (
            "source",
            HeadSnapshot::Source {
                positions: vec![SplitPosition {
                    split: 1,
                    offset: 4_096,
                    line: 77,
                    finished: false,
                }],
                watermarks: Some(SplitWatermarksSnapshot {
                    max_timestamps: vec![(1, 99)],
                    emitted: Some(98),
                }),
            },
        ),
        (
            "input",
            HeadSnapshot::Input {
                watermarks: InputWatermarksSnapshot {
                    inputs: vec![Some(5), None],
                    emitted: Some(5),
                },
            },
        ),
    ] {
        let snapshot = SubtaskSnapshot {
            head,
            ops: vec![
                OperatorSnapshot {
                    operator: "zscore".into(),
                    state: Cow::Borrowed(&handle),
                },
                OperatorSnapshot {
                    operator: "zscore/operator-state".into(),
                    state: Cow::Borrowed(&items),
                },
            ],
        };
        write("state_files", name, &snapshot.encode().unwrap());
    }

    keyed_state_seeds();
    operator_snapshot_seeds();
}

/// A storage key of `weir-state`'s layout.
fn storage_key(group: u16, key: &[u8], rest: &[u8]) -> Vec<u8> {
    StorageKey { group, key, rest }.encode()
}

/// A state entry's part after the key: kind tag, name, map key.
fn state_rest(kind: StateKind, name: &str, map_key: &[u8]) -> Vec<u8> {
    let mut rest = vec![kind.tag()];
    rest.extend_from_slice(&(name.len() as u16).to_be_bytes());
    rest.extend_from_slice(name.as_bytes());
    rest.extend_from_slice(map_key);
    rest
}

fn keyed_state_seeds() {
    let mut timer = vec![TIMER_TAG, 0];
    timer.extend_from_slice(&encode_timer_timestamp(1_000));
    let mut entries = vec![
        (
            storage_key(3, b"machine-1", &state_rest(StateKind::Value, "stats", b"")),
            br#"{"n":3,"mean":1.5}"#.to_vec(),
        ),
        (
            storage_key(
                3,
                b"machine-1",
                &state_rest(StateKind::Map, "buffer", b"\0\0\x01"),
            ),
            b"42.0".to_vec(),
        ),
        (
            storage_key(3, b"machine-1", &state_rest(StateKind::List, "seen", b"")),
            b"\0\0\0\x01a".to_vec(),
        ),
        (storage_key(3, b"machine-1", &timer), Vec::new()),
    ];
    entries.sort();
    let snapshot = KeyedSnapshot { entries };
    write("keyed_state", "entries", &snapshot.to_bytes().unwrap());
}

fn operator_snapshot_seeds() {
    let record = |key: &str, ts: i64| Record {
        key: Some(key.as_bytes().to_vec()),
        value: format!(r#"{{"k":"{key}","v":{ts}}}"#).into_bytes().into(),
        timestamp: Some(ts),
    };
    let records = || vec![record("a", 1), record("b", 3), record("a", 12)];
    let mut out = OperatorOutput::default();
    for (n, kind) in [
        WindowKind::Tumbling,
        WindowKind::Sliding,
        WindowKind::Session,
    ]
    .into_iter()
    .enumerate()
    {
        let mut op =
            WindowOperator::new(&weir_fuzz::window_spec(kind), &weir_fuzz::count(), None).unwrap();
        op.process(records(), 0, &mut out);
        op.on_watermark(4, &mut out);
        let mut bytes = vec![n as u8, 0];
        bytes.extend_from_slice(&op.snapshot().unwrap());
        write("operator_snapshots", &format!("window-{kind:?}"), &bytes);
    }
    for (n, window) in [(3u8, true), (4, false)] {
        let mut op = JoinOperator::new(&weir_fuzz::join_spec(window));
        op.process(0, records(), &mut out);
        op.process(1, vec![record("a", 2), record("b", 13)], &mut out);
        op.on_watermark(4, &mut out);
        let mut bytes = vec![n, 1];
        bytes.extend_from_slice(&op.snapshot().unwrap());
        write("operator_snapshots", &format!("join-{n}"), &bytes);
    }
}
