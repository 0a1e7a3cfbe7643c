//! The window operator: assigns records to tumbling, sliding or session
//! windows per key, keeps their accumulators and emits a result when a
//! window's trigger fires.
//!
//! Tumbling and sliding windows are kept as panes (see [`panes`]): a
//! record adds to one accumulator, and a window's result merges the panes
//! it covers. Session windows are kept whole, one accumulator per session.
//!
//! Semantics follow Flink's `WindowOperator` with its default triggers:
//! - an event-time window `[start, end)` fires when the watermark reaches
//!   `end - 1` (its max timestamp) and is dropped when the watermark
//!   reaches `end - 1 + allowed_lateness`;
//! - a record for a window that has fired but not been dropped updates it
//!   and fires it again at once (one updated result per late record);
//! - a record whose every window has been dropped is *late*: it goes to
//!   the late side output, or is counted as dropped;
//! - processing-time windows fire when the wall clock reaches `end - 1`,
//!   and at the end of a bounded input (Weir fires what is left, so a
//!   bounded job loses nothing).
//!
//! Sessions merge windows `[ts, ts + gap)` that overlap. *Differs from
//! Flink*, which also merges windows that merely touch: here two records
//! belong to one session when less than `gap` apart, the textbook
//! definition. A record is late for sessions when `ts + allowed_lateness
//! <= watermark`.

mod panes;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use rustc_hash::FxHashMap as HashMap;

use weir_types::Record;
use weir_types::jobgraph::{AggregateSpec, TimeDomain, WindowKind, WindowSpec};

use crate::aggregate::{
    Accumulator, AggregateCallError, AggregateFunction, Aggregates, CallFailure, Inputs,
    push_json_string,
};
use crate::{BuildError, OperatorOutput, StateRestoreError};
use panes::{PaneSnapshot, Panes};

type Key = Vec<u8>;

/// A window `[start, end)` in ms.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Window {
    /// Inclusive start (ms).
    pub start: i64,
    /// Exclusive end (ms).
    pub end: i64,
}

impl Window {
    /// The largest timestamp inside the window (`end - 1`, at least
    /// `i64::MIN`), when it fires.
    pub fn max_timestamp(self) -> i64 {
        self.end.saturating_sub(1)
    }
}

/// Assigns a timestamp to its windows (not for sessions).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Assigner {
    size: i64,
    slide: i64,
}

impl Assigner {
    /// Tumbling windows are sliding windows whose slide is their size.
    pub(crate) fn new(kind: WindowKind, size: i64, slide: Option<i64>) -> Self {
        let slide = match kind {
            WindowKind::Sliding => slide.unwrap_or(size),
            _ => size,
        };
        Self { size, slide }
    }

    /// The windows containing `ts`, latest start first (as Flink's
    /// `SlidingEventTimeWindows`, offset 0: starts are multiples of the slide).
    pub(crate) fn assign(self, ts: i64, out: &mut Vec<Window>) {
        out.clear();
        let last_start = ts - ts.rem_euclid(self.slide);
        let mut start = last_start;
        while start > ts - self.size {
            out.push(Window {
                start,
                end: start.saturating_add(self.size),
            });
            start -= self.slide;
        }
    }
}

/// Why a timer exists. Firing sorts before cleanup at the same time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
enum TimerKind {
    Fire,
    Cleanup,
}

/// A timer: `(time, kind, key, window)`, ordered by time.
type Timer = (i64, TimerKind, Key, Window);

/// The first bytes of a window state snapshot: `WWIN1`, then the
/// [`WindowSnapshot`] in postcard's encoding. Snapshots of earlier
/// versions are the same structure as JSON (they start with `{`) and are
/// still read.
const SNAPSHOT_MAGIC: &[u8] = b"WWIN1";

/// What a window operator's snapshot holds (accumulators of a
/// user-defined aggregate are its opaque bytes).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct WindowSnapshot {
    watermark: i64,
    /// Sessions: the open sessions per key.
    #[serde(default)]
    windows: Vec<(Key, Vec<(Window, Accumulator)>)>,
    /// Sessions: their fire and cleanup timers.
    #[serde(default)]
    timers: Vec<Timer>,
    /// Tumbling and sliding windows: the panes.
    #[serde(default)]
    panes: Vec<PaneSnapshot>,
    /// Tumbling and sliding windows: the windows waiting to fire.
    #[serde(default)]
    pending: Vec<Window>,
}

impl WindowSnapshot {
    /// Its windows (open sessions, timers, windows waiting to fire) whose
    /// end lies before their start, which no operator writes.
    fn windows_ending_before_start(&self) -> impl Iterator<Item = &Window> {
        let sessions = self
            .windows
            .iter()
            .flat_map(|(_, ws)| ws.iter().map(|(w, _)| w));
        let timers = self.timers.iter().map(|t| &t.3);
        sessions
            .chain(timers)
            .chain(&self.pending)
            .filter(|w| w.end < w.start)
    }
}

/// [`WindowSnapshot`] borrowed from the operator, to encode without
/// copying keys and accumulators: the same fields in the same order, so
/// the same bytes (serde writes a reference as what it refers to).
#[derive(serde::Serialize)]
struct WindowSnapshotRef<'a> {
    watermark: i64,
    windows: Vec<(&'a Key, Vec<(&'a Window, &'a Accumulator)>)>,
    timers: Vec<&'a Timer>,
    panes: Vec<panes::PaneSnapshotRef<'a>>,
    pending: Vec<Window>,
}

/// Reads a window state snapshot: `WWIN1` and postcard, or the JSON of
/// earlier versions.
fn decode_snapshot(bytes: &[u8]) -> Result<WindowSnapshot, String> {
    match bytes.strip_prefix(SNAPSHOT_MAGIC) {
        Some(body) => postcard::from_bytes(body).map_err(|e| e.to_string()),
        None => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
    }
}

/// The window operator of one subtask. Time comes in as arguments
/// (`now_ms`, watermarks), so tests drive it without clocks.
pub struct WindowOperator {
    spec: WindowSpec,
    aggregates: Aggregates,
    /// Tumbling and sliding windows (`None` for sessions).
    panes: Option<Panes>,
    gap: i64,
    lateness: i64,
    format: ResultFormat,
    /// Sessions: the open sessions per key (sorted, so they can merge).
    windows: HashMap<Key, BTreeMap<Window, Accumulator>>,
    /// Sessions: when to fire and when to drop each of them.
    timers: BTreeSet<Timer>,
    watermark: i64,
    scratch: Vec<Window>,
    /// A user-defined aggregate failed: the operator ignores everything after.
    failed: bool,
}

impl WindowOperator {
    /// A window operator for a validated job's `window` and `aggregate`,
    /// with the user-defined aggregate (the window's `udf`), if any.
    ///
    /// # Errors
    /// [`BuildError`] when `bounds_format` is not a valid strftime pattern.
    pub fn new(
        spec: &WindowSpec,
        aggregates: &[AggregateSpec],
        udf: Option<Box<dyn AggregateFunction>>,
    ) -> Result<Self, BuildError> {
        let size = spec.size.map_or(1, |d| d.as_i64().max(1));
        let panes = (spec.kind != WindowKind::Session).then(|| {
            Panes::new(Assigner::new(
                spec.kind,
                size,
                spec.slide.map(|d| d.as_i64().max(1)),
            ))
        });
        let bounds_format = spec
            .bounds_format
            .as_deref()
            .map(crate::parse_time_format)
            .transpose()?;
        Ok(Self {
            spec: spec.clone(),
            aggregates: Aggregates::new(aggregates, udf),
            panes,
            gap: spec.gap.map_or(1, |d| d.as_i64().max(1)),
            lateness: spec.allowed_lateness.as_i64(),
            format: ResultFormat {
                key_field: spec.key_field.clone(),
                bounds: bounds_format,
            },
            windows: HashMap::default(),
            timers: BTreeSet::new(),
            watermark: i64::MIN,
            scratch: Vec::new(),
            failed: false,
        })
    }

    /// The operator's state for a checkpoint: the watermark, and every
    /// pane with its accumulators and every window waiting to fire, or
    /// every open session and its timers; `WWIN1` and postcard's encoding
    /// (binary: several times faster to write and read than the JSON of
    /// earlier versions, and floats keep their bits).
    ///
    /// # Errors
    /// A message when the state cannot be encoded.
    pub fn snapshot(&self) -> Result<Vec<u8>, String> {
        let (panes, pending) = self
            .panes
            .as_ref()
            .map(Panes::to_snapshot)
            .unwrap_or_default();
        let snapshot = WindowSnapshotRef {
            watermark: self.watermark,
            windows: self
                .windows
                .iter()
                .map(|(k, ws)| (k, ws.iter().collect()))
                .collect(),
            timers: self.timers.iter().collect(),
            panes,
            pending,
        };
        let mut bytes = SNAPSHOT_MAGIC.to_vec();
        postcard::to_io(&snapshot, &mut bytes)
            .map_err(|e| format!("cannot encode window state: {e}"))?;
        Ok(bytes)
    }

    /// Adds the windows and timers of earlier snapshots (of any
    /// parallelism) whose key `owns` accepts, so a restore at another
    /// parallelism takes its key groups only; the watermark becomes the
    /// smallest snapshotted one.
    ///
    /// # Errors
    /// [`StateRestoreError::Damaged`] naming what is damaged;
    /// [`StateRestoreError::Incompatible`] for the snapshot of a window
    /// operator of another kind (panes against sessions).
    pub fn restore<'s>(
        &mut self,
        snapshots: impl IntoIterator<Item = &'s [u8]>,
        owns: impl Fn(&[u8]) -> bool,
    ) -> Result<(), StateRestoreError> {
        let mut watermark = None::<i64>;
        for bytes in snapshots {
            let snapshot = decode_snapshot(bytes).map_err(|e| {
                StateRestoreError::Damaged(format!("window state snapshot is corrupt: {e}"))
            })?;
            if let Some(w) = snapshot.windows_ending_before_start().next() {
                return Err(StateRestoreError::Damaged(format!(
                    "window state snapshot is corrupt: window [{}, {}) ends before it starts",
                    w.start, w.end
                )));
            }
            watermark = Some(watermark.map_or(snapshot.watermark, |w| w.min(snapshot.watermark)));
            match &mut self.panes {
                Some(_) if !snapshot.windows.is_empty() => {
                    return Err(StateRestoreError::Incompatible(
                        "window state snapshot holds whole windows (sessions, or \
                                tumbling and sliding windows as Weir kept them before it \
                                sliced them into panes); this operator keeps panes"
                            .into(),
                    ));
                }
                Some(panes) => {
                    panes.restore(snapshot.panes, snapshot.pending, &owns);
                    continue;
                }
                None if !snapshot.panes.is_empty() => {
                    return Err(StateRestoreError::Incompatible(
                        "window state snapshot holds panes of tumbling or sliding \
                                windows; this operator has session windows"
                            .into(),
                    ));
                }
                None => {}
            }
            for (key, windows) in snapshot.windows {
                if owns(&key) {
                    self.windows.entry(key).or_default().extend(windows);
                }
            }
            self.timers
                .extend(snapshot.timers.into_iter().filter(|t| owns(&t.2)));
        }
        if let Some(w) = watermark {
            self.watermark = w;
        }
        Ok(())
    }

    /// Number of open windows, counted per key: those with data that have
    /// not been dropped (event time) or have not fired (processing time).
    pub fn open_windows(&self) -> usize {
        match &self.panes {
            Some(panes) => panes.open_windows(|w| match self.spec.time {
                TimeDomain::Event => !self.progress().is_late(w),
                TimeDomain::Processing => panes.is_scheduled(w),
            }),
            None => self.windows.values().map(BTreeMap::len).sum(),
        }
    }

    /// When (wall clock, ms) the next processing-time window fires, if
    /// windows use processing time.
    pub fn next_processing_timer(&self) -> Option<i64> {
        let due = match &self.panes {
            Some(panes) => panes.next_due().map(Window::max_timestamp),
            None => self.timers.first().map(|t| t.0),
        };
        match self.spec.time {
            TimeDomain::Processing => due.map(|t| t.saturating_add(1)),
            TimeDomain::Event => None,
        }
    }

    /// Adds a batch of records; `now_ms` is the wall clock (ms since the
    /// epoch) for processing-time windows. Results of late firings, late
    /// records and per-record errors go to `out`; a failed user-defined
    /// aggregate sets `out.failure`.
    pub fn process(&mut self, records: Vec<Record>, now_ms: i64, out: &mut OperatorOutput) {
        for (index, record) in records.into_iter().enumerate() {
            if self.failed {
                return;
            }
            let ts = match self.spec.time {
                TimeDomain::Processing => now_ms,
                TimeDomain::Event => match record.timestamp {
                    Some(ts) => ts,
                    None => {
                        out.errors.push((
                            index,
                            "record has no timestamp (set `timestamp` on the source)".into(),
                        ));
                        continue;
                    }
                },
            };
            let inputs = match self.aggregates.inputs(&record.value) {
                Ok(inputs) => inputs,
                Err(message) => {
                    out.errors.push((index, message));
                    continue;
                }
            };
            // Borrowed: most records fall into windows the key has already.
            let key = record.key.as_deref().unwrap_or_default();
            let accepted = match self.spec.kind {
                WindowKind::Session => self.add_to_session(key.to_vec(), ts, &inputs, out),
                _ => self.add_to_panes(key, ts, &inputs, out),
            };
            let accepted = match accepted {
                Ok(accepted) => accepted,
                Err(AggregateCallError::Rejected(message)) => {
                    out.errors.push((index, message));
                    continue;
                }
                Err(AggregateCallError::Failed(failure)) => {
                    self.fail(failure, out);
                    return;
                }
            };
            if !accepted {
                match &self.spec.late_output {
                    Some(name) => out.side.push((name.clone(), record)),
                    None => out.dropped_late += 1,
                }
            }
        }
    }

    fn fail(&mut self, failure: CallFailure, out: &mut OperatorOutput) {
        self.failed = true;
        out.failure.get_or_insert(failure);
    }

    /// Where event time stands for this operator's windows.
    fn progress(&self) -> Progress {
        Progress {
            event_time: self.spec.time == TimeDomain::Event,
            watermark: self.watermark,
            lateness: self.lateness,
        }
    }

    /// The open windows of `key`, created empty on first use (the key is
    /// copied only then). A function over the map, so the caller can still
    /// use the other fields.
    fn windows_of<'m>(
        windows: &'m mut HashMap<Key, BTreeMap<Window, Accumulator>>,
        key: &[u8],
    ) -> &'m mut BTreeMap<Window, Accumulator> {
        if !windows.contains_key(key) {
            windows.insert(key.to_vec(), BTreeMap::new());
        }
        windows.get_mut(key).expect("inserted above")
    }

    /// The timers window `w` of `key` needs: one to fire it, unless its
    /// time has passed (it then fires per record, as Flink's
    /// EventTimeTrigger does), and one to drop it when late records may
    /// still update it after it fired.
    fn timers_of(&self, key: &[u8], w: Window, fired: bool) -> [Option<Timer>; 2] {
        let fire = (!fired).then(|| (w.max_timestamp(), TimerKind::Fire, key.to_vec(), w));
        let cleanup = (self.lateness > 0 && self.spec.time == TimeDomain::Event).then(|| {
            let at = w.max_timestamp().saturating_add(self.lateness);
            (at, TimerKind::Cleanup, key.to_vec(), w)
        });
        [fire, cleanup]
    }

    fn register_timers(&mut self, key: &[u8], w: Window, fired: bool) {
        for timer in self.timers_of(key, w, fired).into_iter().flatten() {
            self.timers.insert(timer);
        }
    }

    /// Tumbling and sliding windows: adds the record to its pane, schedules
    /// the windows of a new pane, and fires at once the windows that have
    /// fired already (late records). Returns false when every window of
    /// the record was dropped already (the record is late).
    fn add_to_panes(
        &mut self,
        key: &[u8],
        ts: i64,
        inputs: &Inputs<'_>,
        out: &mut OperatorOutput,
    ) -> Result<bool, AggregateCallError> {
        let progress = self.progress();
        let Some(panes) = &mut self.panes else {
            return Ok(false);
        };
        let mut windows = std::mem::take(&mut self.scratch);
        panes.windows_of(ts, &mut windows);
        windows.retain(|w| !progress.is_late(*w));
        let result = if windows.is_empty() {
            Ok(false)
        } else {
            let pane = panes.pane_of(ts);
            panes
                .add(key, pane, &mut self.aggregates, inputs)
                .and_then(|is_new| {
                    for &w in &windows {
                        if !progress.has_fired(w) {
                            if is_new {
                                panes.schedule(w);
                            }
                        } else if let Some(acc) = panes.key_result(key, w, &mut self.aggregates)? {
                            self.format.emit(&mut self.aggregates, key, w, &acc, out)?;
                        }
                    }
                    Ok(true)
                })
        };
        self.scratch = windows;
        result
    }

    /// Session windows: the record's window `[ts, ts + gap)` absorbs every
    /// open session of the key it overlaps.
    fn add_to_session(
        &mut self,
        key: Key,
        ts: i64,
        inputs: &Inputs<'_>,
        out: &mut OperatorOutput,
    ) -> Result<bool, AggregateCallError> {
        if self.spec.time == TimeDomain::Event && ts.saturating_add(self.lateness) <= self.watermark
        {
            return Ok(false);
        }
        let mut merged = Window {
            start: ts,
            end: ts.saturating_add(self.gap),
        };
        // The record goes in first: one the aggregate rejects merges nothing.
        let mut acc = self.aggregates.create()?;
        self.aggregates.add(&mut acc, inputs)?;
        let per_key = Self::windows_of(&mut self.windows, &key);
        let overlapping: Vec<Window> = per_key
            .range(
                ..Window {
                    start: merged.end,
                    end: i64::MIN,
                },
            )
            .rev()
            .map(|(w, _)| *w)
            // Sessions of a key are disjoint, so their ends grow with their starts.
            .take_while(|w| w.end > merged.start)
            .collect();
        // Oldest session first, so a user-defined merge sees arrival order
        // as far as sessions have one.
        let mut combined: Option<Accumulator> = None;
        for w in overlapping.iter().rev() {
            if let Some(old) = per_key.remove(w) {
                match &mut combined {
                    None => combined = Some(old),
                    Some(c) => self.aggregates.merge(c, &old)?,
                }
            }
            merged.start = merged.start.min(w.start);
            merged.end = merged.end.max(w.end);
        }
        if let Some(mut c) = combined {
            self.aggregates.merge(&mut c, &acc)?;
            acc = c;
        }
        per_key.insert(merged, acc);
        for w in overlapping {
            for timer in self.timers_of(&key, w, false).into_iter().flatten() {
                self.timers.remove(&timer);
            }
        }
        let fired = self.progress().has_fired(merged);
        self.register_timers(&key, merged, fired);
        if fired {
            self.emit_result(&key, merged, out)?;
        }
        Ok(true)
    }

    /// The watermark advanced: fires and drops event-time windows.
    pub fn on_watermark(&mut self, watermark: i64, out: &mut OperatorOutput) {
        if watermark <= self.watermark || self.failed {
            return;
        }
        self.watermark = watermark;
        if self.spec.time == TimeDomain::Event {
            self.fire_timers_up_to(watermark, out);
        }
    }

    /// The wall clock advanced: fires processing-time windows up to `now_ms`.
    pub fn on_processing_time(&mut self, now_ms: i64, out: &mut OperatorOutput) {
        // A record processed at `end - 1` still belongs to the window, so
        // it fires once the clock is past its max timestamp.
        if self.spec.time == TimeDomain::Processing {
            self.fire_timers_up_to(now_ms.saturating_sub(1), out);
        }
    }

    /// End of a bounded input: processing-time windows fire now (event-time
    /// ones fired with the final maximum watermark).
    pub fn end_of_input(&mut self, out: &mut OperatorOutput) {
        if self.spec.time == TimeDomain::Processing {
            self.fire_timers_up_to(i64::MAX, out);
        }
    }

    fn fire_timers_up_to(&mut self, time: i64, out: &mut OperatorOutput) {
        if self.panes.is_some() {
            return self.fire_panes_up_to(time, out);
        }
        while let Some(first) = self.timers.first() {
            if self.failed {
                return;
            }
            if first.0 > time {
                break;
            }
            let Some((_, kind, key, w)) = self.timers.pop_first() else {
                break;
            };
            match kind {
                TimerKind::Fire => {
                    if self.windows.get(&key).is_some_and(|m| m.contains_key(&w))
                        && let Err(AggregateCallError::Failed(failure)) =
                            self.emit_result(&key, w, out)
                    {
                        self.fail(failure, out);
                        return;
                    }
                    if self.lateness == 0 || self.spec.time == TimeDomain::Processing {
                        self.drop_window(&key, w);
                    }
                }
                TimerKind::Cleanup => self.drop_window(&key, w),
            }
        }
    }

    /// Fires every scheduled window whose max timestamp is at most `time`
    /// (for all keys with data in it), then drops the panes whose windows
    /// are all past their allowed lateness (event time) or have fired
    /// (processing time).
    fn fire_panes_up_to(&mut self, time: i64, out: &mut OperatorOutput) {
        if self.failed {
            return;
        }
        let Some(panes) = &mut self.panes else {
            return;
        };
        while let Some(w) = panes.pop_due(time) {
            let fired = panes
                .window_results(w, &mut self.aggregates)
                .and_then(|results| {
                    for (key, acc) in results {
                        self.format.emit(&mut self.aggregates, key, w, &acc, out)?;
                    }
                    Ok(())
                });
            if let Err(AggregateCallError::Failed(failure)) = fired {
                return self.fail(failure, out);
            }
        }
        let lateness = match self.spec.time {
            TimeDomain::Event => self.lateness,
            TimeDomain::Processing => 0,
        };
        panes.drop_retired(|w| w.max_timestamp().saturating_add(lateness) <= time);
    }

    fn drop_window(&mut self, key: &[u8], w: Window) {
        if let Some(per_key) = self.windows.get_mut(key) {
            per_key.remove(&w);
            if per_key.is_empty() {
                self.windows.remove(key);
            }
        }
    }

    /// Emits the result of session `w` of `key`, if it is open.
    ///
    /// # Errors
    /// [`AggregateCallError::Failed`] when the user-defined aggregate fails.
    fn emit_result(
        &mut self,
        key: &[u8],
        w: Window,
        out: &mut OperatorOutput,
    ) -> Result<(), AggregateCallError> {
        match self.windows.get(key).and_then(|per_key| per_key.get(&w)) {
            Some(acc) => self.format.emit(&mut self.aggregates, key, w, acc, out),
            None => Ok(()),
        }
    }
}

/// Where event time stands: the watermark and the allowed lateness
/// (processing-time windows are never late and fire only on the clock).
#[derive(Debug, Clone, Copy)]
struct Progress {
    event_time: bool,
    watermark: i64,
    lateness: i64,
}

impl Progress {
    /// Is a window past its allowed lateness (dropped, never updated again)?
    fn is_late(self, w: Window) -> bool {
        self.event_time && w.max_timestamp().saturating_add(self.lateness) <= self.watermark
    }

    /// Has a window's trigger time passed already?
    fn has_fired(self, w: Window) -> bool {
        self.event_time && w.max_timestamp() <= self.watermark
    }
}

/// How window results are written: the key's field name and the format
/// of the window bounds (ms when `None`).
struct ResultFormat {
    key_field: String,
    bounds: Option<Vec<chrono::format::Item<'static>>>,
}

impl ResultFormat {
    /// Emits the result record of window `w` of `key`: `{key,
    /// window_start, window_end, aggregates...}`, timestamped with the
    /// window's max timestamp. A result the user-defined aggregate rejects
    /// is reported as a problem instead.
    ///
    /// # Errors
    /// [`AggregateCallError::Failed`] when the user-defined aggregate fails.
    fn emit(
        &self,
        aggregates: &mut Aggregates,
        key: &[u8],
        w: Window,
        acc: &Accumulator,
        out: &mut OperatorOutput,
    ) -> Result<(), AggregateCallError> {
        let mut json = String::with_capacity(96);
        json.push('{');
        push_json_string(&mut json, &self.key_field);
        json.push(':');
        push_json_string(&mut json, &String::from_utf8_lossy(key));
        for (name, at) in [("window_start", w.start), ("window_end", w.end)] {
            json.push_str(",\"");
            json.push_str(name);
            json.push_str("\":");
            match &self.bounds {
                Some(items) => push_json_string(&mut json, &crate::format_time(at, items)),
                None => {
                    let _ = write!(json, "{at}");
                }
            }
        }
        match aggregates.write_results(acc, &mut json) {
            Ok(()) => {}
            Err(AggregateCallError::Rejected(message)) => {
                out.problems.push(format!(
                    "window [{}, {}) of key `{}`: {message}",
                    w.start,
                    w.end,
                    String::from_utf8_lossy(key)
                ));
                return Ok(());
            }
            Err(failed) => return Err(failed),
        }
        json.push('}');
        out.records.push(Record {
            key: Some(key.to_vec()),
            value: json.into_bytes().into(),
            timestamp: Some(w.max_timestamp()),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::CallFailureKind;
    use weir_types::jobgraph::{AggregateFn, DurationMs};

    fn spec(kind: WindowKind, size: i64, slide: Option<i64>, lateness: i64) -> WindowSpec {
        WindowSpec {
            kind,
            size: (kind != WindowKind::Session).then_some(DurationMs(size as u64)),
            slide: slide.map(|s| DurationMs(s as u64)),
            gap: (kind == WindowKind::Session).then_some(DurationMs(size as u64)),
            time: TimeDomain::Event,
            allowed_lateness: DurationMs(lateness as u64),
            late_output: Some("late".into()),
            key_field: "k".into(),
            bounds_format: None,
        }
    }

    fn count() -> Vec<AggregateSpec> {
        vec![AggregateSpec {
            function: AggregateFn::Count,
            field: None,
            name: None,
        }]
    }

    fn rec(key: &str, ts: i64) -> Record {
        Record {
            key: Some(key.as_bytes().to_vec()),
            value: weir_types::Bytes::from_static(b"{}"),
            timestamp: Some(ts),
        }
    }

    fn values(out: &OperatorOutput) -> Vec<String> {
        out.records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.value).into_owned())
            .collect()
    }

    #[test]
    fn sliding_assigns_size_over_slide_windows() {
        let mut ws = Vec::new();
        Assigner::new(WindowKind::Sliding, 10, Some(5)).assign(12, &mut ws);
        assert_eq!(
            ws,
            vec![Window { start: 10, end: 20 }, Window { start: 5, end: 15 }]
        );
        Assigner::new(WindowKind::Tumbling, 10, None).assign(-3, &mut ws);
        assert_eq!(ws, vec![Window { start: -10, end: 0 }]);
    }

    #[test]
    fn tumbling_fires_at_the_watermark_and_routes_late_records() {
        let mut op = WindowOperator::new(&spec(WindowKind::Tumbling, 10, None, 0), &count(), None)
            .expect("valid");
        let mut out = OperatorOutput::default();
        op.process(vec![rec("a", 1), rec("a", 9), rec("b", 12)], 0, &mut out);
        op.on_watermark(8, &mut out);
        assert!(out.records.is_empty());
        op.on_watermark(9, &mut out);
        assert_eq!(
            values(&out),
            vec![r#"{"k":"a","window_start":0,"window_end":10,"count":2}"#]
        );
        assert_eq!(out.records[0].timestamp, Some(9));
        op.process(vec![rec("a", 5)], 0, &mut out);
        assert_eq!(out.side.len(), 1);
        assert_eq!(op.open_windows(), 1);
    }

    #[test]
    fn sliding_windows_add_each_record_to_one_pane_and_merge_on_firing() {
        let mut op = WindowOperator::new(
            &spec(WindowKind::Sliding, 10, Some(5), 0),
            &count(),
            Some(Box::new(Concat)),
        )
        .expect("valid");
        let mut out = OperatorOutput::default();
        op.process(
            vec![value("a", 7, "x"), value("a", 3, "y"), value("b", 12, "z")],
            0,
            &mut out,
        );
        assert_eq!(
            op.open_windows(),
            3 + 2,
            "a: [-5,5) [0,10) [5,15); b: [5,15) [10,20)"
        );
        op.on_watermark(i64::MAX, &mut out);
        // Pane by pane, oldest first, so `y` (pane [0, 5)) comes before `x`;
        // by window end, then key.
        assert_eq!(
            values(&out),
            vec![
                r#"{"k":"a","window_start":-5,"window_end":5,"count":1,"seen":"y"}"#,
                r#"{"k":"a","window_start":0,"window_end":10,"count":2,"seen":"y|x"}"#,
                r#"{"k":"a","window_start":5,"window_end":15,"count":1,"seen":"x"}"#,
                r#"{"k":"b","window_start":5,"window_end":15,"count":1,"seen":"z"}"#,
                r#"{"k":"b","window_start":10,"window_end":20,"count":1,"seen":"z"}"#,
            ]
        );
        assert_eq!(op.open_windows(), 0);
    }

    #[test]
    fn allowed_lateness_refires_then_drops() {
        let mut op = WindowOperator::new(&spec(WindowKind::Tumbling, 10, None, 5), &count(), None)
            .expect("valid");
        let mut out = OperatorOutput::default();
        op.process(vec![rec("a", 1)], 0, &mut out);
        op.on_watermark(10, &mut out);
        op.process(vec![rec("a", 2)], 0, &mut out);
        assert_eq!(out.records.len(), 2, "{:?}", values(&out));
        assert!(values(&out)[1].contains("\"count\":2"));
        op.on_watermark(14, &mut out);
        assert_eq!(op.open_windows(), 0);
        op.process(vec![rec("a", 3)], 0, &mut out);
        assert_eq!((out.records.len(), out.side.len()), (2, 1));
    }

    #[test]
    fn sessions_merge_when_a_record_bridges_them() {
        let mut op = WindowOperator::new(&spec(WindowKind::Session, 5, None, 0), &count(), None)
            .expect("valid");
        let mut out = OperatorOutput::default();
        op.process(vec![rec("a", 0), rec("a", 10), rec("a", 5)], 0, &mut out);
        assert_eq!(op.open_windows(), 3, "windows that only touch stay apart");
        op.process(vec![rec("a", 4)], 0, &mut out);
        assert_eq!(op.open_windows(), 2);
        op.process(vec![rec("a", 9)], 0, &mut out);
        assert_eq!(op.open_windows(), 1);
        op.on_watermark(i64::MAX, &mut out);
        assert_eq!(
            values(&out),
            vec![r#"{"k":"a","window_start":0,"window_end":15,"count":5}"#]
        );
    }

    #[test]
    fn processing_time_fires_on_the_clock_and_at_the_end() {
        let mut s = spec(WindowKind::Tumbling, 100, None, 0);
        s.time = TimeDomain::Processing;
        let mut op = WindowOperator::new(&s, &count(), None).expect("valid");
        let mut out = OperatorOutput::default();
        op.process(vec![rec("a", 0), rec("a", 0)], 1_050, &mut out);
        op.process(vec![rec("a", 0)], 1_120, &mut out);
        assert_eq!(op.next_processing_timer(), Some(1_100));
        op.on_processing_time(1_099, &mut out);
        assert!(
            out.records.is_empty(),
            "a record at 1099 is still in [1000, 1100)"
        );
        op.on_processing_time(1_100, &mut out);
        assert_eq!(
            values(&out),
            vec![r#"{"k":"a","window_start":1000,"window_end":1100,"count":2}"#]
        );
        op.end_of_input(&mut out);
        assert_eq!(out.records.len(), 2);
    }

    #[test]
    fn bounds_can_be_formatted_and_bad_formats_are_rejected() {
        let mut s = spec(WindowKind::Tumbling, 3_600_000, None, 0);
        s.bounds_format = Some("%Y-%m-%d %H:%M:%S".into());
        let mut op = WindowOperator::new(&s, &count(), None).expect("valid");
        let mut out = OperatorOutput::default();
        op.process(vec![rec("a", 1_400_000_000_000)], 0, &mut out);
        op.on_watermark(i64::MAX, &mut out);
        assert_eq!(
            values(&out),
            vec![
                r#"{"k":"a","window_start":"2014-05-13 16:00:00","window_end":"2014-05-13 17:00:00","count":1}"#
            ]
        );
        s.bounds_format = Some("%Q".into());
        assert!(WindowOperator::new(&s, &count(), None).is_err());
    }

    /// A user-defined aggregate written in Rust, standing in for a Wasm
    /// one: the accumulator is the record values joined by `|`; a value
    /// containing `bad` is rejected, `trap` fails, and a window whose
    /// values include `nonobject` gets a result that is not an object.
    struct Concat;

    impl AggregateFunction for Concat {
        fn create_accumulator(&mut self) -> Result<Vec<u8>, AggregateCallError> {
            Ok(Vec::new())
        }

        fn add(&mut self, acc: &[u8], values: &[&[u8]]) -> Result<Vec<u8>, AggregateCallError> {
            let mut acc = acc.to_vec();
            for v in values {
                let text = String::from_utf8_lossy(v);
                if text.contains("trap") {
                    return Err(AggregateCallError::Failed(CallFailure::new(
                        CallFailureKind::Timeout,
                        "trapped",
                    )));
                }
                if text.contains("bad") {
                    return Err(AggregateCallError::Rejected(format!("bad value {text}")));
                }
                if !acc.is_empty() {
                    acc.push(b'|');
                }
                acc.extend_from_slice(v);
            }
            Ok(acc)
        }

        fn merge(&mut self, acc: &[u8], other: &[u8]) -> Result<Vec<u8>, AggregateCallError> {
            Ok([acc, b"|", other].concat())
        }

        fn get_result(&mut self, acc: &[u8]) -> Result<String, AggregateCallError> {
            let text = String::from_utf8_lossy(acc);
            if text.contains("nonobject") {
                return Ok("[1]".into());
            }
            Ok(format!("{{\"seen\":{}}}", serde_json::Value::from(text)))
        }
    }

    fn value(key: &str, ts: i64, v: &str) -> Record {
        Record {
            value: v.as_bytes().to_vec().into(),
            ..rec(key, ts)
        }
    }

    fn with_concat(kind: WindowKind, size: i64) -> WindowOperator {
        WindowOperator::new(&spec(kind, size, None, 0), &count(), Some(Box::new(Concat)))
            .expect("valid")
    }

    #[test]
    fn a_user_defined_aggregate_adds_its_fields_after_the_built_in_ones() {
        let mut op = with_concat(WindowKind::Tumbling, 10);
        let mut out = OperatorOutput::default();
        op.process(vec![value("a", 1, "x"), value("a", 2, "y")], 0, &mut out);
        op.on_watermark(i64::MAX, &mut out);
        assert_eq!(
            values(&out),
            vec![r#"{"k":"a","window_start":0,"window_end":10,"count":2,"seen":"x|y"}"#]
        );
    }

    #[test]
    fn sessions_merge_user_defined_accumulators_oldest_first() {
        let mut op = with_concat(WindowKind::Session, 5);
        let mut out = OperatorOutput::default();
        op.process(vec![value("a", 0, "p"), value("a", 8, "q")], 0, &mut out);
        op.process(vec![value("a", 4, "r")], 0, &mut out);
        op.on_watermark(i64::MAX, &mut out);
        assert_eq!(
            values(&out),
            vec![r#"{"k":"a","window_start":0,"window_end":13,"count":3,"seen":"p|q|r"}"#]
        );
    }

    #[test]
    fn a_rejected_record_changes_no_window_and_is_reported() {
        let mut op = with_concat(WindowKind::Tumbling, 10);
        let mut out = OperatorOutput::default();
        op.process(
            vec![
                value("a", 1, "x"),
                value("a", 2, "bad"),
                value("b", 3, "bad"),
            ],
            0,
            &mut out,
        );
        assert_eq!(
            out.errors,
            vec![
                (1, "bad value bad".to_string()),
                (2, "bad value bad".to_string())
            ]
        );
        assert_eq!(
            op.open_windows(),
            1,
            "no window for a key whose only record was rejected"
        );
        op.on_watermark(i64::MAX, &mut out);
        assert_eq!(
            values(&out),
            vec![r#"{"k":"a","window_start":0,"window_end":10,"count":1,"seen":"x"}"#]
        );
    }

    #[test]
    fn a_failed_user_defined_aggregate_fails_the_operator() {
        let mut op = with_concat(WindowKind::Tumbling, 10);
        let mut out = OperatorOutput::default();
        op.process(vec![value("a", 1, "trap"), value("a", 2, "x")], 0, &mut out);
        let failure = out.failure.clone().unwrap();
        assert_eq!(failure.message, "trapped");
        // The kind survives up to the task (a timeout stays a timeout).
        assert_eq!(failure.kind, CallFailureKind::Timeout);
        op.on_watermark(i64::MAX, &mut out);
        assert!(out.records.is_empty());
    }

    #[test]
    fn a_result_that_is_not_an_object_is_reported_not_emitted() {
        let mut op = with_concat(WindowKind::Tumbling, 10);
        let mut out = OperatorOutput::default();
        op.process(
            vec![value("a", 1, "nonobject"), value("b", 1, "ok")],
            0,
            &mut out,
        );
        op.on_watermark(i64::MAX, &mut out);
        assert_eq!(values(&out).len(), 1);
        assert_eq!(out.problems.len(), 1);
        assert!(
            out.problems[0]
                .starts_with("window [0, 10) of key `a`: get-result must return a JSON object"),
            "{:?}",
            out.problems
        );
    }

    /// Records of three keys over time, with sessions, lateness and a
    /// user-defined aggregate: cut anywhere, snapshot, restore into a new
    /// operator (or two, split by key), and the output equals the
    /// uninterrupted run's.
    #[test]
    fn a_restored_window_operator_continues_as_if_never_stopped() {
        let records: Vec<Record> = (0..60)
            .map(|i| {
                value(
                    ["a", "b", "c"][i % 3],
                    ((i * 7) % 50) as i64,
                    &format!("v{i}"),
                )
            })
            .collect();
        let run =
            |op: &mut WindowOperator, range: std::ops::Range<usize>, out: &mut OperatorOutput| {
                for i in range {
                    op.process(vec![records[i].clone()], 0, out);
                    if i % 10 == 9 {
                        op.on_watermark(records[i].timestamp.unwrap_or(0) - 5, out);
                    }
                }
            };
        for (kind, slide) in [
            (WindowKind::Tumbling, None),
            (WindowKind::Sliding, Some(4)),
            (WindowKind::Session, None),
        ] {
            let make = || {
                let mut s = spec(kind, 10, slide, 8);
                s.late_output = Some("late".into());
                WindowOperator::new(&s, &count(), Some(Box::new(Concat))).expect("valid")
            };
            let mut whole = make();
            let mut expected = OperatorOutput::default();
            run(&mut whole, 0..60, &mut expected);
            whole.on_watermark(i64::MAX, &mut expected);
            assert!(
                !expected.side.is_empty(),
                "{kind:?}: the input has late records"
            );
            for cut in [0, 17, 35, 59] {
                let mut first = make();
                let mut got = OperatorOutput::default();
                run(&mut first, 0..cut, &mut got);
                let snapshot = first.snapshot().unwrap();
                drop(first);
                // Two subtasks after the restore: keys `a` and the rest.
                let mut parts: Vec<WindowOperator> = (0..2).map(|_| make()).collect();
                parts[0]
                    .restore([snapshot.as_slice()], |k| k == b"a")
                    .unwrap();
                parts[1]
                    .restore([snapshot.as_slice()], |k| k != b"a")
                    .unwrap();
                let mut outs = [OperatorOutput::default(), OperatorOutput::default()];
                for (i, record) in records.iter().enumerate().skip(cut) {
                    let p = usize::from(record.key.as_deref() != Some(b"a".as_slice()));
                    parts[p].process(vec![record.clone()], 0, &mut outs[p]);
                    if i % 10 == 9 {
                        for (op, out) in parts.iter_mut().zip(&mut outs) {
                            op.on_watermark(record.timestamp.unwrap_or(0) - 5, out);
                        }
                    }
                }
                for (op, out) in parts.iter_mut().zip(&mut outs) {
                    op.on_watermark(i64::MAX, out);
                }
                let mut all = values(&got);
                all.extend(outs.iter().flat_map(values));
                let mut want = values(&expected);
                all.sort();
                want.sort();
                assert_eq!(all, want, "{kind:?} cut at {cut}");
                let late = got.side.len() + outs.iter().map(|o| o.side.len()).sum::<usize>();
                assert_eq!(late, expected.side.len(), "{kind:?} cut at {cut}");
            }
        }
        let restore = |kind: WindowKind, bytes: &[u8]| {
            WindowOperator::new(&spec(kind, 10, None, 0), &count(), None)
                .unwrap()
                .restore([bytes], |_| true)
        };
        assert!(
            restore(WindowKind::Tumbling, b"{")
                .unwrap_err()
                .message()
                .contains("corrupt")
        );
        // Whole windows (sessions, or an older Weir's tumbling windows)
        // are not panes, and the other way round.
        let mut sessions = with_concat(WindowKind::Session, 5);
        let mut tumbling = with_concat(WindowKind::Tumbling, 5);
        for op in [&mut sessions, &mut tumbling] {
            op.process(vec![value("a", 1, "x")], 0, &mut OperatorOutput::default());
        }
        let err = restore(WindowKind::Tumbling, &sessions.snapshot().unwrap()).unwrap_err();
        assert!(
            matches!(&err, StateRestoreError::Incompatible(m) if m.contains("holds whole windows")),
            "{err}"
        );
        let err = restore(WindowKind::Session, &tumbling.snapshot().unwrap()).unwrap_err();
        assert!(
            matches!(&err, StateRestoreError::Incompatible(m) if m.contains("holds panes")),
            "{err}"
        );
        let binary = tumbling.snapshot().unwrap();
        for cut in [SNAPSHOT_MAGIC.len(), binary.len() - 1] {
            let err = restore(WindowKind::Tumbling, &binary[..cut]).unwrap_err();
            assert!(
                matches!(&err, StateRestoreError::Damaged(m) if m.contains("corrupt")),
                "cut at {cut}: {err}"
            );
        }
    }

    /// Found by fuzzing: a snapshot whose window ends before it starts
    /// restored, and firing it panicked on a reversed range of panes.
    #[test]
    fn a_restored_window_that_ends_before_it_starts_is_damage_not_a_panic() {
        let reversed = Window { start: 20, end: 10 };
        for (kind, snapshot) in [
            (
                WindowKind::Tumbling,
                WindowSnapshot {
                    pending: vec![reversed],
                    ..WindowSnapshot::default()
                },
            ),
            (
                WindowKind::Session,
                WindowSnapshot {
                    timers: vec![(9, TimerKind::Fire, b"a".to_vec(), reversed)],
                    ..WindowSnapshot::default()
                },
            ),
        ] {
            let mut bytes = SNAPSHOT_MAGIC.to_vec();
            bytes.extend_from_slice(&postcard::to_allocvec(&snapshot).unwrap());
            let mut op = WindowOperator::new(&spec(kind, 10, None, 0), &count(), None).unwrap();
            let err = op.restore([bytes.as_slice()], |_| true).unwrap_err();
            assert!(
                matches!(&err, StateRestoreError::Damaged(m) if m.contains("[20, 10) ends before it starts")),
                "{kind:?}: {err}"
            );
        }
    }

    /// Checkpoints of versions that wrote window state as JSON restore to
    /// the same windows as the binary snapshots written now.
    #[test]
    fn json_window_snapshots_of_earlier_versions_restore() {
        for kind in [WindowKind::Tumbling, WindowKind::Session] {
            let mut op = with_concat(kind, 5);
            let mut out = OperatorOutput::default();
            for (i, key) in ["a", "b", "a", "c"].into_iter().enumerate() {
                op.process(
                    vec![value(key, i as i64 * 3, &format!("v{i}"))],
                    0,
                    &mut out,
                );
            }
            let binary = op.snapshot().unwrap();
            assert!(binary.starts_with(SNAPSHOT_MAGIC));
            let json = serde_json::to_vec(&decode_snapshot(&binary).unwrap()).unwrap();
            assert_eq!(json.first(), Some(&b'{'));
            let results = |bytes: &[u8]| {
                let mut op = with_concat(kind, 5);
                op.restore([bytes], |_| true).unwrap();
                let mut out = OperatorOutput::default();
                op.on_watermark(i64::MAX, &mut out);
                let mut v = values(&out);
                v.sort();
                v
            };
            let from_binary = results(&binary);
            assert!(!from_binary.is_empty(), "{kind:?}");
            assert_eq!(results(&json), from_binary, "{kind:?}");
        }
    }
}
