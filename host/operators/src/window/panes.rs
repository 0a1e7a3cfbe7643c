//! Tumbling and sliding windows kept as *panes* (Flink calls them slices):
//! the time axis is cut into pieces `gcd(size, slide)` long, a record adds
//! to the one pane its timestamp falls in, and a window's result merges the
//! accumulators of the panes it covers when it fires.
//!
//! A sliding window of size `s` and slide `d` holds each record in `s / d`
//! windows; kept whole, every record would be added `s / d` times and every
//! key would need a timer per window. With panes a record is added once,
//! the windows waiting to fire are one set for all keys, and a pane is
//! dropped once the last window covering it is dropped. The technique is
//! Li et al., "No pane, no gain" (SIGMOD Record 34(1), 2005), as Flink's
//! window aggregation ("slicing") uses it.
//!
//! Every window containing a timestamp `ts` contains its whole pane (window
//! bounds are multiples of the pane length), so the windows of a record are
//! the windows of its pane.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap as HashMap;

use super::{Assigner, Key, Window};
use crate::aggregate::{Accumulator, AggregateCallError, Aggregates, Inputs};

/// The panes of one window operator subtask, for all its keys.
#[derive(Debug)]
pub(super) struct Panes {
    assigner: Assigner,
    /// Pane length (ms): the greatest common divisor of size and slide.
    len: i64,
    /// Accumulators per pane start (ms), per key. A pane exists only while
    /// some key has a record in it.
    panes: BTreeMap<i64, HashMap<Key, Accumulator>>,
    /// Windows that cover a pane with data and have not fired yet, in the
    /// order they fire (fixed-size windows end in the order they start).
    pending: BTreeSet<Window>,
}

impl Panes {
    /// Panes for windows of `size` ms starting every `slide` ms (both at
    /// least 1; tumbling windows have `slide == size`).
    pub(super) fn new(assigner: Assigner) -> Self {
        Self {
            assigner,
            len: gcd(assigner.size, assigner.slide),
            panes: BTreeMap::new(),
            pending: BTreeSet::new(),
        }
    }

    /// The start (ms) of the pane holding `ts`.
    pub(super) fn pane_of(&self, ts: i64) -> i64 {
        ts - ts.rem_euclid(self.len)
    }

    /// The windows containing `ts` (and so its whole pane), latest first.
    pub(super) fn windows_of(&self, ts: i64, out: &mut Vec<Window>) {
        self.assigner.assign(ts, out);
    }

    /// The last window covering the pane starting at `start`, if any does
    /// (a sliding window whose slide exceeds its size leaves gaps).
    fn last_window(&self, start: i64) -> Option<Window> {
        let window_start = start - start.rem_euclid(self.assigner.slide);
        let end = window_start.saturating_add(self.assigner.size);
        (end > start).then_some(Window {
            start: window_start,
            end,
        })
    }

    /// Adds a record's inputs to `key`'s accumulator in the pane starting
    /// at `pane`. Returns whether the pane is new (its windows then need to
    /// be scheduled with [`Panes::schedule`]).
    ///
    /// # Errors
    /// [`AggregateCallError`] from the user-defined aggregate; nothing
    /// changes then.
    pub(super) fn add(
        &mut self,
        key: &[u8],
        pane: i64,
        aggregates: &mut Aggregates,
        inputs: &Inputs<'_>,
    ) -> Result<bool, AggregateCallError> {
        let is_new = !self.panes.contains_key(&pane);
        let per_key = self.panes.entry(pane).or_default();
        let added = match per_key.get_mut(key) {
            Some(acc) => aggregates.add(acc, inputs),
            None => aggregates.create().and_then(|mut acc| {
                aggregates.add(&mut acc, inputs)?;
                per_key.insert(key.to_vec(), acc);
                Ok(())
            }),
        };
        if added.is_err() && is_new {
            self.panes.remove(&pane);
        }
        added.map(|()| is_new)
    }

    /// Schedules a window to fire (it covers a pane that has data now).
    pub(super) fn schedule(&mut self, w: Window) {
        self.pending.insert(w);
    }

    /// Is window `w` scheduled to fire?
    pub(super) fn is_scheduled(&self, w: Window) -> bool {
        self.pending.contains(&w)
    }

    /// The earliest scheduled window.
    pub(super) fn next_due(&self) -> Option<Window> {
        self.pending.first().copied()
    }

    /// Takes the earliest scheduled window if it is due at `time` (its max
    /// timestamp has been reached).
    pub(super) fn pop_due(&mut self, time: i64) -> Option<Window> {
        let due = self.pending.first()?.max_timestamp() <= time;
        if due { self.pending.pop_first() } else { None }
    }

    /// Drops the panes all of whose windows are retired; `retired` says
    /// whether a window is (it must be monotonic in the window's start).
    pub(super) fn drop_retired(&mut self, retired: impl Fn(Window) -> bool) {
        while let Some(&start) = self.panes.keys().next() {
            if self.last_window(start).is_some_and(|w| !retired(w)) {
                break;
            }
            self.panes.remove(&start);
        }
    }

    /// The result of window `w` for every key with data in it, sorted by
    /// key: each key's accumulators merged in pane order (oldest first),
    /// borrowed when the window has one pane of that key.
    ///
    /// # Errors
    /// [`AggregateCallError::Failed`] when a user-defined merge fails.
    pub(super) fn window_results(
        &self,
        w: Window,
        aggregates: &mut Aggregates,
    ) -> Result<Vec<KeyResult<'_>>, AggregateCallError> {
        let mut merged: HashMap<&[u8], Cow<'_, Accumulator>> = HashMap::default();
        for per_key in self.panes.range(w.start..w.end).map(|(_, p)| p) {
            for (key, acc) in per_key {
                match merged.entry(key.as_slice()) {
                    std::collections::hash_map::Entry::Occupied(mut e) => {
                        aggregates.merge(e.get_mut().to_mut(), acc)?;
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(Cow::Borrowed(acc));
                    }
                }
            }
        }
        let mut results: Vec<_> = merged.into_iter().collect();
        results.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Ok(results)
    }

    /// The result of window `w` for one key, if it has data in it.
    ///
    /// # Errors
    /// [`AggregateCallError::Failed`] when a user-defined merge fails.
    pub(super) fn key_result(
        &self,
        key: &[u8],
        w: Window,
        aggregates: &mut Aggregates,
    ) -> Result<Option<Cow<'_, Accumulator>>, AggregateCallError> {
        let mut result: Option<Cow<'_, Accumulator>> = None;
        for acc in self
            .panes
            .range(w.start..w.end)
            .filter_map(|(_, p)| p.get(key))
        {
            match &mut result {
                Some(r) => aggregates.merge(r.to_mut(), acc)?,
                None => result = Some(Cow::Borrowed(acc)),
            }
        }
        Ok(result)
    }

    /// Every `(key, window)` with data whose window `open` accepts.
    pub(super) fn open_windows(&self, open: impl Fn(Window) -> bool) -> usize {
        let mut windows = Vec::new();
        let mut seen = BTreeSet::new();
        for (&start, per_key) in &self.panes {
            self.windows_of(start, &mut windows);
            for w in windows.iter().filter(|w| open(**w)) {
                seen.extend(per_key.keys().map(|k| (k.as_slice(), *w)));
            }
        }
        seen.len()
    }

    /// The panes (each key's accumulator, borrowed, in key order) and the
    /// scheduled windows, for a snapshot.
    pub(super) fn to_snapshot(&self) -> (Vec<PaneSnapshotRef<'_>>, Vec<Window>) {
        let panes = self
            .panes
            .iter()
            .map(|(start, per_key)| {
                let mut entries: Vec<(&Key, &Accumulator)> = per_key.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                (*start, entries)
            })
            .collect();
        (panes, self.pending.iter().copied().collect())
    }

    /// Adds a snapshot's panes of the keys `owns` accepts and its scheduled
    /// windows (a window none of this subtask's keys has data in fires with
    /// no result).
    pub(super) fn restore(
        &mut self,
        panes: Vec<PaneSnapshot>,
        pending: Vec<Window>,
        owns: impl Fn(&[u8]) -> bool,
    ) {
        for (start, entries) in panes {
            let owned: Vec<_> = entries.into_iter().filter(|(k, _)| owns(k)).collect();
            if !owned.is_empty() {
                self.panes.entry(start).or_default().extend(owned);
            }
        }
        self.pending.extend(pending);
    }
}

/// A key and its accumulator for a window (borrowed from the key's only
/// pane, or merged).
pub(super) type KeyResult<'p> = (&'p [u8], Cow<'p, Accumulator>);

/// One pane in a snapshot: its start (ms) and each key's accumulator.
pub(super) type PaneSnapshot = (i64, Vec<(Key, Accumulator)>);

/// [`PaneSnapshot`] borrowed from the panes, to encode (serde writes a
/// reference as what it refers to, so the bytes are the same).
pub(super) type PaneSnapshotRef<'a> = (i64, Vec<(&'a Key, &'a Accumulator)>);

/// Greatest common divisor of two positive numbers (Euclid).
fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_types::jobgraph::WindowKind;

    #[test]
    fn panes_are_as_long_as_the_gcd_of_size_and_slide() {
        let panes = Panes::new(Assigner::new(WindowKind::Sliding, 100, Some(30)));
        assert_eq!(panes.len, 10);
        assert_eq!(panes.pane_of(129), 120);
        assert_eq!(panes.pane_of(-1), -10);
        assert_eq!(
            panes.last_window(120),
            Some(Window {
                start: 120,
                end: 220
            })
        );
        let gaps = Panes::new(Assigner::new(WindowKind::Sliding, 20, Some(50)));
        assert_eq!(gaps.len, 10);
        assert_eq!(gaps.last_window(30), None, "[30, 40) is in no window");
        assert_eq!(gaps.last_window(10), Some(Window { start: 0, end: 20 }));
    }

    #[test]
    fn a_pane_is_dropped_only_when_its_last_window_is_retired() {
        let mut panes = Panes::new(Assigner::new(WindowKind::Sliding, 10, Some(5)));
        let mut aggregates = Aggregates::new(&[], None);
        let inputs = aggregates.inputs(b"{}").expect("an object");
        for (key, ts) in [(b"a", 3), (b"b", 7), (b"a", 12)] {
            let pane = panes.pane_of(ts);
            panes
                .add(key, pane, &mut aggregates, &inputs)
                .expect("adds");
        }
        // Pane [5, 10) is in windows [0, 10) and [5, 15).
        let retired = |upto: i64| move |w: Window| w.max_timestamp() <= upto;
        panes.drop_retired(retired(9));
        assert_eq!(panes.panes.keys().copied().collect::<Vec<_>>(), [5, 10]);
        panes.drop_retired(retired(14));
        assert_eq!(panes.panes.keys().copied().collect::<Vec<_>>(), [10]);
        let results = panes
            .window_results(Window { start: 5, end: 15 }, &mut aggregates)
            .expect("no udf");
        let keys: Vec<&[u8]> = results.iter().map(|r| r.0).collect();
        assert_eq!(keys, [b"a".as_slice()]);
    }
}
