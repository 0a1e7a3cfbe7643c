//! Joins of two keyed inputs, as Flink's DataStream window join and
//! interval join (inner joins, event time).
//!
//! Input 0 is the left side, input 1 the right. A joined record's value is
//! `{"left":<left value>,"right":<right value>}` (both values are JSON),
//! its key is the common key.
//!
//! - **Window join**: records of both sides are collected per key and
//!   window (tumbling or sliding); when the watermark reaches the window's
//!   max timestamp, every left record is paired with every right record
//!   (left in arrival order, then right in arrival order), timestamped
//!   with the window's max timestamp. A record arriving after all its
//!   windows fired is late and dropped.
//! - **Interval join**: a left record `l` joins every right record `r` of
//!   the same key with `l.ts + lower <= r.ts <= l.ts + upper`, as soon as
//!   both have arrived, timestamped `max(l.ts, r.ts)`. Records older than
//!   the watermark are late and dropped; buffered records are dropped once
//!   no future record can match them.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap as HashMap;

use weir_types::Record;
use weir_types::jobgraph::{JoinKind, JoinSpec};

use crate::window::{Assigner, Window};
use crate::{OperatorOutput, StateRestoreError};

type Key = Vec<u8>;

/// A join operator of one subtask.
pub struct JoinOperator {
    kind: Kind,
    watermark: i64,
}

enum Kind {
    Window {
        assigner: Assigner,
        /// Both sides per key and window, in arrival order.
        windows: HashMap<(Key, Window), [Vec<Record>; 2]>,
        timers: BTreeSet<(i64, Key, Window)>,
        scratch: Vec<Window>,
    },
    Interval {
        lower: i64,
        upper: i64,
        /// Per key and side: records by timestamp, in arrival order.
        buffers: HashMap<Key, [BTreeMap<i64, Vec<Record>>; 2]>,
        /// `(drop time, side, key, ts)`: when a buffered record can go.
        expiry: BTreeSet<(i64, usize, Key, i64)>,
    },
}

impl JoinOperator {
    /// A join for a validated job's `join`.
    pub fn new(spec: &JoinSpec) -> Self {
        let kind = match (spec.kind, &spec.window) {
            (JoinKind::Window, Some(w)) => Kind::Window {
                assigner: Assigner::new(
                    w.kind,
                    w.size.map_or(1, |d| d.as_i64().max(1)),
                    w.slide.map(|d| d.as_i64().max(1)),
                ),
                windows: HashMap::default(),
                timers: BTreeSet::new(),
                scratch: Vec::new(),
            },
            _ => Kind::Interval {
                lower: spec.lower.map_or(0, |d| d.0),
                upper: spec.upper.map_or(0, |d| d.0),
                buffers: HashMap::default(),
                expiry: BTreeSet::new(),
            },
        };
        Self {
            kind,
            watermark: i64::MIN,
        }
    }

    /// Records buffered on both sides (all keys and windows).
    pub fn buffered(&self) -> usize {
        match &self.kind {
            Kind::Window { windows, .. } => windows.values().map(|[l, r]| l.len() + r.len()).sum(),
            Kind::Interval { buffers, .. } => buffers
                .values()
                .flat_map(|sides| sides.iter())
                .flat_map(|m| m.values())
                .map(Vec::len)
                .sum(),
        }
    }

    /// Adds records of side `input` (0 left, 1 right).
    pub fn process(&mut self, input: usize, records: Vec<Record>, out: &mut OperatorOutput) {
        let side = input.min(1);
        for (index, record) in records.into_iter().enumerate() {
            let Some(ts) = record.timestamp else {
                out.errors.push((
                    index,
                    "record has no timestamp (set `timestamp` on the source)".into(),
                ));
                continue;
            };
            // Kept until its window or interval ends: a copy of its own,
            // not a slice that would keep the whole input batch alive.
            let record = record.detached();
            let key = record.key.clone().unwrap_or_default();
            let accepted = match &mut self.kind {
                Kind::Window {
                    assigner,
                    windows,
                    timers,
                    scratch,
                } => {
                    assigner.assign(ts, scratch);
                    let mut accepted = false;
                    for &w in scratch.iter() {
                        if w.max_timestamp() <= self.watermark {
                            continue;
                        }
                        accepted = true;
                        let sides = windows.entry((key.clone(), w)).or_insert_with(|| {
                            timers.insert((w.max_timestamp(), key.clone(), w));
                            [Vec::new(), Vec::new()]
                        });
                        sides[side].push(record.clone());
                    }
                    accepted
                }
                Kind::Interval {
                    lower,
                    upper,
                    buffers,
                    expiry,
                } => {
                    if ts < self.watermark {
                        false
                    } else {
                        let sides = buffers.entry(key.clone()).or_default();
                        // The range of the other side this record matches.
                        let (from, to) = if side == 0 {
                            (ts.saturating_add(*lower), ts.saturating_add(*upper))
                        } else {
                            (ts.saturating_sub(*upper), ts.saturating_sub(*lower))
                        };
                        for (&other_ts, others) in sides[1 - side].range(from..=to) {
                            for other in others {
                                let (l, r) = if side == 0 {
                                    (&record, other)
                                } else {
                                    (other, &record)
                                };
                                out.records.push(joined(&key, l, r, ts.max(other_ts)));
                            }
                        }
                        sides[side].entry(ts).or_default().push(record);
                        expiry.insert((drop_at(side, ts, *lower, *upper), side, key, ts));
                        true
                    }
                }
            };
            if !accepted {
                out.dropped_late += 1;
            }
        }
    }

    /// The watermark advanced: fires windows and drops expired records.
    pub fn on_watermark(&mut self, watermark: i64, out: &mut OperatorOutput) {
        if watermark <= self.watermark {
            return;
        }
        self.watermark = watermark;
        match &mut self.kind {
            Kind::Window {
                windows, timers, ..
            } => {
                while timers.first().is_some_and(|t| t.0 <= watermark) {
                    let Some((_, key, w)) = timers.pop_first() else {
                        break;
                    };
                    if let Some([left, right]) = windows.remove(&(key.clone(), w)) {
                        for l in &left {
                            for r in &right {
                                out.records.push(joined(&key, l, r, w.max_timestamp()));
                            }
                        }
                    }
                }
            }
            Kind::Interval {
                buffers, expiry, ..
            } => {
                while expiry.first().is_some_and(|e| e.0 < watermark) {
                    let Some((_, side, key, ts)) = expiry.pop_first() else {
                        break;
                    };
                    if let Some(sides) = buffers.get_mut(&key) {
                        sides[side].remove(&ts);
                        if sides[0].is_empty() && sides[1].is_empty() {
                            buffers.remove(&key);
                        }
                    }
                }
            }
        }
    }
}

/// When an interval join can drop a record of `side` at `ts`: no future
/// record (ts > watermark) of the other side can match it once the
/// watermark passes this bound.
fn drop_at(side: usize, ts: i64, lower: i64, upper: i64) -> i64 {
    if side == 0 {
        ts.saturating_add(upper)
    } else {
        ts.saturating_sub(lower)
    }
}

/// First bytes of a join snapshot.
const SNAPSHOT_MAGIC: &[u8; 4] = b"WJN1";

/// A join's state in a checkpoint: the watermark and every buffered
/// record (timers and expiry entries follow from them).
#[derive(serde::Serialize, serde::Deserialize)]
struct JoinSnapshot {
    watermark: i64,
    /// Window join: `(key, window, [left, right])`, each side in arrival order.
    windows: Vec<(Key, Window, [Vec<SnapshotRecord>; 2])>,
    /// Interval join: `(key, side, timestamp, records in arrival order)`.
    buffers: Vec<(Key, usize, i64, Vec<SnapshotRecord>)>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SnapshotRecord {
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    timestamp: Option<i64>,
}

impl From<&Record> for SnapshotRecord {
    fn from(r: &Record) -> Self {
        Self {
            key: r.key.clone(),
            value: r.value.to_vec(),
            timestamp: r.timestamp,
        }
    }
}

impl From<SnapshotRecord> for Record {
    fn from(r: SnapshotRecord) -> Self {
        Self {
            key: r.key,
            value: r.value.into(),
            timestamp: r.timestamp,
        }
    }
}

impl JoinOperator {
    /// The join's state for a checkpoint: the watermark and every buffered
    /// record of both sides, as `WJN1` followed by postcard bytes.
    ///
    /// # Errors
    /// A message when the state cannot be encoded.
    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        let side = |records: &[Record]| records.iter().map(SnapshotRecord::from).collect();
        let mut snapshot = JoinSnapshot {
            watermark: self.watermark,
            windows: Vec::new(),
            buffers: Vec::new(),
        };
        match &self.kind {
            Kind::Window { windows, .. } => {
                for ((key, window), [left, right]) in windows {
                    snapshot
                        .windows
                        .push((key.clone(), *window, [side(left), side(right)]));
                }
            }
            Kind::Interval { buffers, .. } => {
                for (key, sides) in buffers {
                    for (index, by_ts) in sides.iter().enumerate() {
                        for (ts, records) in by_ts {
                            snapshot
                                .buffers
                                .push((key.clone(), index, *ts, side(records)));
                        }
                    }
                }
            }
        }
        let mut out = SNAPSHOT_MAGIC.to_vec();
        postcard::to_io(&snapshot, &mut out)
            .map_err(|e| format!("cannot encode join state: {e}"))?;
        Ok(out)
    }

    /// Adds the buffered records of earlier snapshots (of any parallelism)
    /// whose key `owns` accepts, so a restore at another parallelism takes
    /// its key groups only; the watermark becomes the smallest
    /// snapshotted one.
    ///
    /// # Errors
    /// [`StateRestoreError::Damaged`] when a snapshot does not decode.
    pub fn restore<'s>(
        &mut self,
        snapshots: impl IntoIterator<Item = &'s [u8]>,
        owns: impl Fn(&[u8]) -> bool,
    ) -> Result<(), StateRestoreError> {
        let mut watermark = None::<i64>;
        for bytes in snapshots {
            let body = bytes
                .strip_prefix(SNAPSHOT_MAGIC.as_slice())
                .ok_or_else(|| {
                    StateRestoreError::Damaged(
                        "join state snapshot is corrupt: no WJN1 header".into(),
                    )
                })?;
            let snapshot: JoinSnapshot = postcard::from_bytes(body).map_err(|e| {
                StateRestoreError::Damaged(format!("join state snapshot is corrupt: {e}"))
            })?;
            if let Some((_, w, _)) = snapshot.windows.iter().find(|(_, w, _)| w.end < w.start) {
                return Err(StateRestoreError::Damaged(format!(
                    "join state snapshot is corrupt: window [{}, {}) ends before it starts",
                    w.start, w.end
                )));
            }
            watermark = Some(watermark.map_or(snapshot.watermark, |w| w.min(snapshot.watermark)));
            self.restore_snapshot(snapshot, &owns);
        }
        if let Some(w) = watermark {
            self.watermark = w;
        }
        Ok(())
    }

    fn restore_snapshot(&mut self, snapshot: JoinSnapshot, owns: &impl Fn(&[u8]) -> bool) {
        let records = |side: Vec<SnapshotRecord>| side.into_iter().map(Record::from);
        match &mut self.kind {
            Kind::Window {
                windows, timers, ..
            } => {
                for (key, window, [left, right]) in snapshot.windows {
                    if !owns(&key) {
                        continue;
                    }
                    timers.insert((window.max_timestamp(), key.clone(), window));
                    let sides = windows.entry((key, window)).or_default();
                    sides[0].extend(records(left));
                    sides[1].extend(records(right));
                }
            }
            Kind::Interval {
                lower,
                upper,
                buffers,
                expiry,
            } => {
                for (key, side, ts, list) in snapshot.buffers {
                    if !owns(&key) {
                        continue;
                    }
                    let side = side.min(1);
                    expiry.insert((drop_at(side, ts, *lower, *upper), side, key.clone(), ts));
                    let sides = buffers.entry(key).or_default();
                    sides[side].entry(ts).or_default().extend(records(list));
                }
            }
        }
    }
}

/// `{"left":…,"right":…}` for a pair.
fn joined(key: &Key, left: &Record, right: &Record, ts: i64) -> Record {
    let mut value = Vec::with_capacity(left.value.len() + right.value.len() + 20);
    value.extend_from_slice(b"{\"left\":");
    value.extend_from_slice(&left.value);
    value.extend_from_slice(b",\"right\":");
    value.extend_from_slice(&right.value);
    value.push(b'}');
    Record {
        key: Some(key.clone()),
        value: value.into(),
        timestamp: Some(ts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_types::jobgraph::{DurationMs, SignedDurationMs, TimeDomain, WindowKind, WindowSpec};

    fn rec(key: &str, ts: i64, v: &str) -> Record {
        Record {
            key: Some(key.as_bytes().to_vec()),
            value: v.as_bytes().to_vec().into(),
            timestamp: Some(ts),
        }
    }

    fn values(out: &OperatorOutput) -> Vec<(String, Option<i64>)> {
        out.records
            .iter()
            .map(|r| (String::from_utf8_lossy(&r.value).into_owned(), r.timestamp))
            .collect()
    }

    fn window_join() -> JoinOperator {
        JoinOperator::new(&JoinSpec {
            kind: JoinKind::Window,
            window: Some(WindowSpec {
                kind: WindowKind::Tumbling,
                size: Some(DurationMs(10)),
                slide: None,
                gap: None,
                time: TimeDomain::Event,
                allowed_lateness: DurationMs(0),
                late_output: None,
                key_field: "key".into(),
                bounds_format: None,
            }),
            lower: None,
            upper: None,
        })
    }

    #[test]
    fn window_join_pairs_both_sides_of_a_key_and_window_when_it_fires() {
        let mut j = window_join();
        let mut out = OperatorOutput::default();
        j.process(
            0,
            vec![rec("a", 1, "1"), rec("b", 2, "2"), rec("a", 11, "3")],
            &mut out,
        );
        j.process(
            1,
            vec![rec("a", 5, "4"), rec("a", 9, "5"), rec("b", 12, "6")],
            &mut out,
        );
        j.on_watermark(9, &mut out);
        assert_eq!(
            values(&out),
            vec![
                (r#"{"left":1,"right":4}"#.into(), Some(9)),
                (r#"{"left":1,"right":5}"#.into(), Some(9)),
            ]
        );
        j.process(1, vec![rec("a", 3, "7")], &mut out);
        assert_eq!(out.dropped_late, 1);
        j.on_watermark(i64::MAX, &mut out);
        assert_eq!(
            out.records.len(),
            2,
            "b and a@11 have no partner in their windows"
        );
        assert_eq!(j.buffered(), 0);
    }

    fn interval_join() -> JoinOperator {
        JoinOperator::new(&JoinSpec {
            kind: JoinKind::Interval,
            window: None,
            lower: Some(SignedDurationMs(-2)),
            upper: Some(SignedDurationMs(3)),
        })
    }

    /// Feeds `steps` to a join in one go, and to a join that is snapshotted
    /// after `cut` steps and restored split over two subtasks (keys `a`
    /// and the rest): together they emit the same records.
    fn assert_snapshot_restore_continues(make: fn() -> JoinOperator, cut: usize) {
        type Step = (usize, Vec<Record>, i64);
        let steps: Vec<Step> = vec![
            (0, vec![rec("a", 1, "1"), rec("b", 2, "2")], 0),
            (1, vec![rec("a", 3, "3"), rec("b", 4, "4")], 2),
            (0, vec![rec("a", 4, "5"), rec("b", 12, "6")], 3),
            (1, vec![rec("a", 6, "7"), rec("b", 13, "8")], 9),
            (0, vec![rec("a", 14, "9")], 12),
            (1, vec![rec("a", 15, "10"), rec("b", 14, "11")], i64::MAX),
        ];
        let run = |j: &mut JoinOperator, steps: &[Step], out: &mut OperatorOutput| {
            for (input, records, watermark) in steps {
                j.process(*input, records.clone(), out);
                j.on_watermark(*watermark, out);
            }
        };
        let mut whole = make();
        let mut expected = OperatorOutput::default();
        run(&mut whole, &steps, &mut expected);
        assert!(expected.records.len() >= 3, "{:?}", values(&expected));

        let mut first = make();
        let mut got = OperatorOutput::default();
        run(&mut first, &steps[..cut], &mut got);
        let bytes = first.snapshot().unwrap();
        let mut parts = OperatorOutput::default();
        for owns_a in [true, false] {
            let mut part = make();
            part.restore([bytes.as_slice()], |k| (k == b"a") == owns_a)
                .unwrap();
            let mine: Vec<Step> = steps[cut..]
                .iter()
                .map(|(i, records, w)| {
                    let records = records
                        .iter()
                        .filter(|r| (r.key.as_deref() == Some(b"a")) == owns_a)
                        .cloned()
                        .collect();
                    (*i, records, *w)
                })
                .collect();
            run(&mut part, &mine, &mut parts);
        }
        let mut want = values(&expected);
        let mut have = values(&got);
        have.extend(values(&parts));
        want.sort();
        have.sort();
        assert_eq!(have, want);
    }

    #[test]
    fn window_join_state_survives_snapshot_and_restore_at_another_parallelism() {
        for cut in 1..5 {
            assert_snapshot_restore_continues(window_join, cut);
        }
    }

    #[test]
    fn interval_join_state_survives_snapshot_and_restore_at_another_parallelism() {
        for cut in 1..5 {
            assert_snapshot_restore_continues(interval_join, cut);
        }
    }

    #[test]
    fn a_join_window_that_ends_before_it_starts_is_damage() {
        let snapshot = JoinSnapshot {
            watermark: 0,
            windows: vec![(
                b"a".to_vec(),
                Window { start: 20, end: 10 },
                [Vec::new(), Vec::new()],
            )],
            buffers: Vec::new(),
        };
        let mut bytes = SNAPSHOT_MAGIC.to_vec();
        bytes.extend_from_slice(&postcard::to_allocvec(&snapshot).unwrap());
        let err = window_join()
            .restore([bytes.as_slice()], |_| true)
            .unwrap_err();
        assert!(
            matches!(&err, StateRestoreError::Damaged(m) if m.contains("ends before it starts")),
            "{err}"
        );
    }

    #[test]
    fn damaged_join_snapshots_are_errors() {
        let mut j = interval_join();
        j.process(0, vec![rec("a", 1, "1")], &mut OperatorOutput::default());
        let bytes = j.snapshot().unwrap();
        for cut in 0..bytes.len() {
            assert!(
                matches!(
                    interval_join().restore([&bytes[..cut]], |_| true),
                    Err(StateRestoreError::Damaged(_))
                ),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn interval_join_matches_within_bounds_and_expires_buffers() {
        let mut j = JoinOperator::new(&JoinSpec {
            kind: JoinKind::Interval,
            window: None,
            lower: Some(SignedDurationMs(-2)),
            upper: Some(SignedDurationMs(3)),
        });
        let mut out = OperatorOutput::default();
        j.process(0, vec![rec("a", 10, "1")], &mut out);
        j.process(
            1,
            vec![
                rec("a", 7, "2"),
                rec("a", 8, "3"),
                rec("a", 13, "4"),
                rec("a", 14, "5"),
            ],
            &mut out,
        );
        assert_eq!(
            values(&out),
            vec![
                (r#"{"left":1,"right":3}"#.into(), Some(10)),
                (r#"{"left":1,"right":4}"#.into(), Some(13)),
            ]
        );
        j.process(0, vec![rec("a", 12, "6")], &mut out);
        assert_eq!(out.records.len(), 4, "12 matches right 13 and 14 (10..=15)");
        j.on_watermark(20, &mut out);
        assert_eq!(j.buffered(), 0);
        j.process(0, vec![rec("a", 19, "7")], &mut out);
        assert_eq!(out.dropped_late, 1);
    }
}
