//! Tests of `KeyedState`: the write-back buffer, timers, snapshots and
//! the state-backend suite (memory and RocksDB).

use super::access::decode_list;
use super::*;

fn limited(limits: StateLimits) -> KeyedState {
    let mut s = KeyedState::new(
        Box::new(crate::MemoryBackend::new()),
        KeyGroupRange::all(128),
        128,
    )
    .with_limits(limits);
    s.set_current_key(b"k").unwrap();
    s
}

#[test]
fn a_value_over_the_limit_is_refused_and_the_state_unchanged() {
    let mut s = limited(StateLimits {
        max_value_bytes: 100,
        ..StateLimits::default()
    });
    s.value_set("v", &[1; 100]).unwrap();
    let err = s.value_set("v", &[2; 101]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "state limit `max_state_value_bytes` of 100 exceeded: 101"
    );
    assert_eq!(s.value_get("v").unwrap(), Some(vec![1; 100]));
    // A list is one entry: it cannot grow past the limit either.
    s.list_add("l", &[0; 60]).unwrap();
    assert!(s.list_add("l", &[0; 60]).is_err());
}

#[test]
fn pending_writes_of_one_call_are_bounded_in_bytes() {
    // Regression: 10M state puts in one call took the host to 2.4 GB.
    let mut s = limited(StateLimits {
        max_pending_bytes: 10_000,
        ..StateLimits::default()
    });
    let mut i = 0u32;
    let err = loop {
        match s.map_put("m", &i.to_be_bytes(), &[0; 100]) {
            Ok(()) => i += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(
        err,
        StateError::LimitExceeded {
            limit: "max_pending_state_bytes",
            max: 10_000,
            ..
        }
    ));
    // Each costs its key, 100 bytes of value and the entry overhead.
    assert!((35..50).contains(&i), "{i} writes fit");
    // Rewriting a pending entry does not count twice; a flush frees all.
    s.map_put("m", &0u32.to_be_bytes(), &[1; 100]).unwrap();
    s.flush().unwrap();
    s.map_put("m", &i.to_be_bytes(), &[0; 100]).unwrap();
}

#[test]
fn timers_are_bounded_per_subtask() {
    // Regression: a million timers took the host to ~1 GB.
    let mut s = limited(StateLimits {
        max_timers: 3,
        ..StateLimits::default()
    });
    for ts in 0..3 {
        s.register_timer(TimerDomain::EventTime, ts).unwrap();
    }
    // The same timer again is no new timer.
    s.register_timer(TimerDomain::EventTime, 2).unwrap();
    let err = s
        .register_timer(TimerDomain::ProcessingTime, 9)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "state limit `max_timers` of 3 exceeded: 4");
    assert_eq!(s.timer_count(TimerDomain::ProcessingTime), 0);
    s.delete_timer(TimerDomain::EventTime, 0).unwrap();
    s.register_timer(TimerDomain::ProcessingTime, 9).unwrap();
}

#[test]
fn timers_are_bounded_per_key_and_fired_or_deleted_ones_make_room() {
    let mut s = limited(StateLimits {
        max_timers_per_key: 2,
        ..StateLimits::default()
    });
    s.register_timer(TimerDomain::EventTime, 1).unwrap();
    s.register_timer(TimerDomain::ProcessingTime, 2).unwrap();
    let err = s
        .register_timer(TimerDomain::EventTime, 3)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "state limit `max_timers_per_key` of 2 exceeded: 3");
    // Another key has its own budget.
    s.set_current_key(b"other").unwrap();
    s.register_timer(TimerDomain::EventTime, 3).unwrap();
    // A fired timer and a deleted one make room for the first key.
    assert_eq!(
        s.pop_due_timer(TimerDomain::EventTime, 1).unwrap(),
        Some((1, b"k".to_vec()))
    );
    s.register_timer(TimerDomain::EventTime, 4).unwrap();
    s.delete_timer(TimerDomain::ProcessingTime, 2).unwrap();
    s.register_timer(TimerDomain::EventTime, 5).unwrap();
    assert!(s.register_timer(TimerDomain::EventTime, 6).is_err());
}
use crate::{MemoryBackend, RocksDbBackend, RocksDbShared};

/// A reading buffered until its timer fires: a get that misses, a put,
/// then a remove, over several calls. The backend never sees it; an
/// entry the backend has is deleted there.
#[test]
fn an_entry_put_and_removed_between_flushes_never_reaches_the_backend() {
    let mut s = state(Box::new(MemoryBackend::new()));
    s.set_current_key(b"series").unwrap();
    assert_eq!(s.map_get("pending", b"t1").unwrap(), None);
    s.map_put("pending", b"t1", b"1.5").unwrap();
    s.end_call().unwrap();
    assert_eq!(s.map_get("pending", b"t1").unwrap(), Some(b"1.5".to_vec()));
    s.map_remove("pending", b"t1").unwrap();
    s.value_set("stats", b"n=1").unwrap();
    s.end_call().unwrap();
    assert_eq!(s.pending_writes(), 1, "only the value is to be written");
    s.flush().unwrap();
    assert_eq!(s.backend.scan_prefix(&[]).unwrap().len(), 1);
    // Read (clean), then deleted: the delete reaches the backend.
    assert_eq!(s.value_get("stats").unwrap(), Some(b"n=1".to_vec()));
    s.value_clear("stats").unwrap();
    s.end_call().unwrap();
    s.flush().unwrap();
    assert!(s.backend.scan_prefix(&[]).unwrap().is_empty());
}

#[test]
fn writes_are_kept_across_calls_until_the_budget_is_passed() {
    let mut s = state(Box::new(MemoryBackend::new())).with_write_back_bytes(1_000);
    s.set_current_key(b"k").unwrap();
    s.value_set("a", &[1; 100]).unwrap();
    s.end_call().unwrap();
    assert_eq!(s.pending_writes(), 1, "under the budget: kept");
    assert!(s.backend.scan_prefix(&[]).unwrap().is_empty());
    for i in 0..5u8 {
        s.map_put("m", &[i], &[i; 100]).unwrap();
    }
    s.end_call().unwrap();
    assert_eq!(s.pending_writes(), 0, "over the budget: applied");
    assert_eq!(s.backend.scan_prefix(&[]).unwrap().len(), 6);
    // A budget of 0 applies every call's writes at its end.
    let mut s = state(Box::new(MemoryBackend::new())).with_write_back_bytes(0);
    s.set_current_key(b"k").unwrap();
    s.value_set("a", b"1").unwrap();
    s.end_call().unwrap();
    assert_eq!(s.backend.scan_prefix(&[]).unwrap().len(), 1);
}

/// Regression (the hour-long soak): a drained write-back buffer and
/// timer-change map kept the capacity of their largest burst for the
/// life of the task, a step of anonymous memory that never went back.
#[test]
fn a_burst_of_writes_or_timers_does_not_keep_its_capacity() {
    let mut s = state(Box::new(MemoryBackend::new()));
    s.set_current_key(b"k").unwrap();
    for i in 0..20_000u32 {
        s.map_put("m", &i.to_be_bytes(), b"v").unwrap();
        s.register_timer(TimerDomain::EventTime, i64::from(i))
            .unwrap();
    }
    s.snapshot_bytes().unwrap();
    assert!(s.pending.capacity() >= 20_000);
    for i in 0..10u32 {
        s.map_put("m", &i.to_be_bytes(), b"w").unwrap();
        s.delete_timer(TimerDomain::EventTime, i64::from(i))
            .unwrap();
    }
    s.snapshot_bytes().unwrap();
    let kept = 2 * KEPT_CAPACITY;
    assert!(s.pending.capacity() <= kept, "{}", s.pending.capacity());
    assert!(
        s.timer_changes.capacity() <= kept,
        "{}",
        s.timer_changes.capacity()
    );
    assert_eq!(
        s.map_get("m", &0u32.to_be_bytes()).unwrap(),
        Some(b"w".to_vec())
    );
}

/// Found in review: a read the guest made in `open` (before the
/// restore) was cached as an absence, hid the restored entry, and made
/// a later delete of it a no-op.
#[test]
fn a_restore_replaces_what_was_read_or_written_before_it() {
    let mut old = state(Box::new(MemoryBackend::new()));
    old.set_current_key(b"k").unwrap();
    old.map_put("m", b"x", b"restored").unwrap();
    old.map_put("m", b"y", b"restored").unwrap();
    let bytes = old.snapshot_bytes().unwrap();

    let mut s = state(Box::new(MemoryBackend::new()));
    s.set_current_key(b"k").unwrap();
    assert_eq!(s.map_get("m", b"x").unwrap(), None);
    s.map_put("m", b"y", b"from open").unwrap();
    s.end_call().unwrap();
    s.restore([bytes.as_slice()]).unwrap();
    assert_eq!(s.map_get("m", b"x").unwrap(), Some(b"restored".to_vec()));
    assert_eq!(s.map_get("m", b"y").unwrap(), Some(b"restored".to_vec()));
    s.map_remove("m", b"x").unwrap();
    s.flush().unwrap();
    assert_eq!(s.map_get("m", b"x").unwrap(), None);
    assert_eq!(s.backend.scan_prefix(&[]).unwrap().len(), 1);
}

/// A memory backend whose writes fail once `fail` is set.
struct FailingWrites {
    inner: MemoryBackend,
    fail: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StateBackend for FailingWrites {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        self.inner.get(key)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<(), StateError> {
        self.inner.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> Result<(), StateError> {
        self.inner.delete(key)
    }
    fn for_each_prefix(
        &self,
        prefix: &[u8],
        each: &mut crate::EntryVisitor<'_>,
    ) -> Result<(), StateError> {
        self.inner.for_each_prefix(prefix, each)
    }
    fn delete_prefix(&mut self, prefix: &[u8]) -> Result<(), StateError> {
        self.inner.delete_prefix(prefix)
    }
    fn write_batch(&mut self, entries: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<(), StateError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StateError::RocksDb {
                path: "test".into(),
                message: "no space left on device".into(),
            });
        }
        self.inner.write_batch(entries)
    }
    fn name(&self) -> &'static str {
        "failing"
    }
}

/// Found in review: a snapshot whose write failed (a declined
/// checkpoint, after which the task goes on) dropped the buffered
/// writes and timer changes, and later reads saw older values.
#[test]
fn writes_lost_to_a_failed_flush_fail_every_later_use() {
    let fail = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let backend = FailingWrites {
        inner: MemoryBackend::new(),
        fail: fail.clone(),
    };
    let mut s = state(Box::new(backend));
    s.set_current_key(b"k").unwrap();
    s.value_set("v", b"1").unwrap();
    s.register_timer(TimerDomain::EventTime, 5).unwrap();
    s.end_call().unwrap();
    fail.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        s.snapshot_bytes(),
        Err(StateError::RocksDb { .. })
    ));
    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let lost = |r: Result<_, StateError>| matches!(r, Err(StateError::WritesLost(_)));
    assert!(lost(s.value_get("v").map(|_| ())));
    assert!(lost(s.value_set("v", b"2")));
    assert!(lost(s.end_call()));
    assert!(lost(s.snapshot_bytes().map(|_| ())));
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8, u8),
    Remove(u8, u8),
    Get(u8, u8),
    Entries(u8),
    Clear(u8),
    EndCall,
    SnapshotAndRestore,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (0..3u8, 0..6u8, any::<u8>()).prop_map(|(k, m, v)| Op::Put(k, m, v)),
        2 => (0..3u8, 0..6u8).prop_map(|(k, m)| Op::Remove(k, m)),
        3 => (0..3u8, 0..6u8).prop_map(|(k, m)| Op::Get(k, m)),
        1 => (0..3u8).prop_map(Op::Entries),
        1 => (0..3u8).prop_map(Op::Clear),
        3 => Just(Op::EndCall),
        1 => Just(Op::SnapshotAndRestore),
    ]
}

/// Map state through the write-back buffer, against a `BTreeMap`
/// recomputed from the operations: with no budget, a budget that
/// evicts after almost every access, and the default.
fn write_back_agrees_with_a_plain_map(ops: &[Op], budget: u64) {
    let fresh = || state(Box::new(MemoryBackend::new())).with_write_back_bytes(budget);
    let mut s = fresh();
    let mut model: std::collections::BTreeMap<(u8, u8), u8> = Default::default();
    for op in ops {
        match *op {
            Op::Put(k, m, v) => {
                s.set_current_key(&[k]).unwrap();
                s.map_put("m", &[m], &[v]).unwrap();
                model.insert((k, m), v);
            }
            Op::Remove(k, m) => {
                s.set_current_key(&[k]).unwrap();
                s.map_remove("m", &[m]).unwrap();
                model.remove(&(k, m));
            }
            Op::Get(k, m) => {
                s.set_current_key(&[k]).unwrap();
                let want = model.get(&(k, m)).map(|v| vec![*v]);
                assert_eq!(s.map_get("m", &[m]).unwrap(), want, "{op:?}");
            }
            Op::Entries(k) => {
                s.set_current_key(&[k]).unwrap();
                let want: Vec<Entry> = model
                    .range((k, 0)..=(k, u8::MAX))
                    .map(|((_, m), v)| (vec![*m], vec![*v]))
                    .collect();
                assert_eq!(s.map_entries("m").unwrap(), want, "{op:?}");
            }
            Op::Clear(k) => {
                s.set_current_key(&[k]).unwrap();
                s.map_clear("m").unwrap();
                model.retain(|(key, _), _| *key != k);
            }
            Op::EndCall => s.end_call().unwrap(),
            Op::SnapshotAndRestore => {
                let bytes = s.snapshot_bytes().unwrap();
                s = fresh();
                s.restore([bytes.as_slice()]).unwrap();
            }
        }
    }
    s.flush().unwrap();
    let stored = s.backend.scan_prefix(&[]).unwrap().len();
    assert_eq!(stored, model.len(), "entries in the backend");
}

proptest::proptest! {
    #[test]
    fn the_write_back_buffer_agrees_with_a_plain_map(
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        for budget in [0, 300, DEFAULT_WRITE_BACK_BYTES] {
            write_back_agrees_with_a_plain_map(&ops, budget);
        }
    }
}

/// The same suite runs against every backend.
fn timers_fire_in_order_deduplicated_and_deletable(backend: Box<dyn StateBackend>) {
    let mut state = KeyedState::new(backend, KeyGroupRange::all(128), 128);
    let ev = TimerDomain::EventTime;
    for (key, ts) in [
        ("b", 20),
        ("a", 20),
        ("a", 10),
        ("a", 20),
        ("c", 5),
        ("c", 30),
    ] {
        state.set_current_key(key.as_bytes()).unwrap();
        state.register_timer(ev, ts).unwrap();
    }
    state
        .register_timer(TimerDomain::ProcessingTime, 1)
        .unwrap();
    state.set_current_key(b"c").unwrap();
    state.delete_timer(ev, 30).unwrap();
    state.flush().unwrap();
    assert_eq!(state.timer_count(ev), 4, "(a, 20) is registered once");
    let mut fired = Vec::new();
    while let Some((ts, key)) = state.pop_due_timer(ev, 20).unwrap() {
        fired.push((ts, String::from_utf8(key).unwrap()));
    }
    assert_eq!(
        fired,
        vec![
            (5, "c".into()),
            (10, "a".into()),
            (20, "a".into()),
            (20, "b".into())
        ]
    );
    assert_eq!(
        state.next_timer(TimerDomain::ProcessingTime),
        Some((1, &b"c"[..]))
    );
    state.flush().unwrap();
    // Timers reach the backend only when a snapshot is taken, and only
    // those still registered then: here the processing-time one.
    assert!(state.backend.scan_prefix(&[]).unwrap().is_empty());
    state.persist_timers().unwrap();
    assert_eq!(state.backend.scan_prefix(&[]).unwrap().len(), 1);
}

/// Timers changed again and again between snapshots: what the backend
/// holds at each snapshot is exactly the registered timers.
fn timers_in_snapshots_are_the_registered_ones(backend: Box<dyn StateBackend>) {
    let ev = TimerDomain::EventTime;
    let mut s = KeyedState::new(backend, KeyGroupRange::all(128), 128);
    let restored = |s: &mut KeyedState| {
        let bytes = s.snapshot_bytes().unwrap();
        let mut fresh =
            KeyedState::new(Box::new(MemoryBackend::new()), KeyGroupRange::all(128), 128);
        fresh.restore([bytes.as_slice()]).unwrap();
        let mut fired = Vec::new();
        while let Some((ts, key)) = fresh.pop_due_timer(ev, i64::MAX).unwrap() {
            fired.push((ts, String::from_utf8(key).unwrap()));
        }
        fired
    };
    s.set_current_key(b"a").unwrap();
    s.register_timer(ev, 1).unwrap();
    s.register_timer(ev, 2).unwrap();
    assert_eq!(restored(&mut s), [(1, "a".into()), (2, "a".into())]);
    // Persisted, deleted, registered again; persisted and deleted;
    // registered and deleted before any snapshot saw it.
    s.delete_timer(ev, 1).unwrap();
    s.register_timer(ev, 1).unwrap();
    s.delete_timer(ev, 2).unwrap();
    s.set_current_key(b"b").unwrap();
    s.register_timer(ev, 3).unwrap();
    s.delete_timer(ev, 3).unwrap();
    s.register_timer(ev, 4).unwrap();
    assert_eq!(restored(&mut s), [(1, "a".into()), (4, "b".into())]);
    assert_eq!(s.pop_due_timer(ev, 1).unwrap(), Some((1, b"a".to_vec())));
    assert_eq!(restored(&mut s), [(4, "b".into())]);
    assert_eq!(s.pop_due_timer(ev, 9).unwrap(), Some((4, b"b".to_vec())));
    assert_eq!(restored(&mut s), []);
    assert!(s.backend.scan_prefix(&[]).unwrap().is_empty());
}

fn suite(make: &dyn Fn() -> Box<dyn StateBackend>) {
    timers_fire_in_order_deduplicated_and_deletable(make());
    timers_in_snapshots_are_the_registered_ones(make());
    value_state_is_scoped_to_the_key(make());
    list_state_keeps_order(make());
    map_state_is_ordered_and_isolated(make());
    errors_are_typed(make());
    key_groups_are_contiguous(make());
    buffered_writes_read_back_and_survive_flush(make());
}

fn buffered_writes_read_back_and_survive_flush(backend: Box<dyn StateBackend>) {
    let mut s = state(backend);
    s.set_current_key(b"k").unwrap();
    s.value_set("v", b"1").unwrap();
    s.flush().unwrap();
    // Update, clear and re-set across flushes; reads always see the latest.
    s.value_set("v", b"22").unwrap();
    assert_eq!(s.value_get("v").unwrap(), Some(b"22".to_vec()));
    s.value_clear("v").unwrap();
    assert_eq!(s.value_get("v").unwrap(), None);
    s.flush().unwrap();
    assert_eq!(
        s.value_get("v").unwrap(),
        None,
        "the delete reached the backend"
    );
    s.value_set("v", b"3").unwrap();
    s.list_add("l", b"a").unwrap();
    s.list_add("l", b"b").unwrap();
    s.map_put("m", b"x", b"1").unwrap();
    // A scan sees buffered map writes (it flushes first).
    assert_eq!(
        s.map_entries("m").unwrap(),
        vec![(b"x".to_vec(), b"1".to_vec())]
    );
    s.flush().unwrap();
    assert_eq!(s.pending_writes(), 0);
    assert_eq!(s.value_get("v").unwrap(), Some(b"3".to_vec()));
    assert_eq!(s.list_get("l").unwrap(), vec![b"a".to_vec(), b"b".to_vec()]);
}

fn state(backend: Box<dyn StateBackend>) -> KeyedState {
    KeyedState::new(backend, KeyGroupRange::all(128), 128)
}

fn value_state_is_scoped_to_the_key(backend: Box<dyn StateBackend>) {
    let mut s = state(backend);
    s.set_current_key(b"a").unwrap();
    assert_eq!(s.value_get("count").unwrap(), None);
    s.value_set("count", b"1").unwrap();
    s.value_set("other", b"x").unwrap();
    s.set_current_key(b"b").unwrap();
    assert_eq!(s.value_get("count").unwrap(), None);
    s.value_set("count", b"2").unwrap();
    s.set_current_key(b"a").unwrap();
    assert_eq!(s.value_get("count").unwrap(), Some(b"1".to_vec()));
    s.value_set("count", b"3").unwrap();
    assert_eq!(s.value_get("count").unwrap(), Some(b"3".to_vec()));
    s.value_clear("count").unwrap();
    assert_eq!(s.value_get("count").unwrap(), None);
    assert_eq!(s.value_get("other").unwrap(), Some(b"x".to_vec()));
    s.set_current_key(b"b").unwrap();
    assert_eq!(s.value_get("count").unwrap(), Some(b"2".to_vec()));
}

fn list_state_keeps_order(backend: Box<dyn StateBackend>) {
    let mut s = state(backend);
    s.set_current_key(b"k").unwrap();
    assert!(s.list_get("l").unwrap().is_empty());
    for item in [&b"one"[..], b"", b"three"] {
        s.list_add("l", item).unwrap();
    }
    assert_eq!(
        s.list_get("l").unwrap(),
        vec![b"one".to_vec(), vec![], b"three".to_vec()]
    );
    s.set_current_key(b"k2").unwrap();
    assert!(s.list_get("l").unwrap().is_empty());
    s.set_current_key(b"k").unwrap();
    s.list_clear("l").unwrap();
    assert!(s.list_get("l").unwrap().is_empty());
}

fn map_state_is_ordered_and_isolated(backend: Box<dyn StateBackend>) {
    let mut s = state(backend);
    s.set_current_key(b"k").unwrap();
    s.map_put("m", b"b", b"2").unwrap();
    s.map_put("m", b"a", b"1").unwrap();
    s.map_put("m", &[0xff], b"3").unwrap();
    s.map_put("m2", b"a", b"other map").unwrap();
    // A key that extends "k" must not leak into "k"'s maps.
    s.set_current_key(b"kk").unwrap();
    s.map_put("m", b"a", b"other key").unwrap();
    s.set_current_key(b"k").unwrap();
    assert_eq!(s.map_get("m", b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(
        s.map_entries("m").unwrap(),
        vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"b".to_vec(), b"2".to_vec()),
            (vec![0xff], b"3".to_vec())
        ]
    );
    s.map_remove("m", b"b").unwrap();
    assert_eq!(s.map_get("m", b"b").unwrap(), None);
    s.map_clear("m").unwrap();
    assert!(s.map_entries("m").unwrap().is_empty());
    assert_eq!(s.map_get("m2", b"a").unwrap(), Some(b"other map".to_vec()));
    s.set_current_key(b"kk").unwrap();
    assert_eq!(
        s.map_entries("m").unwrap(),
        vec![(b"a".to_vec(), b"other key".to_vec())]
    );
}

fn errors_are_typed(backend: Box<dyn StateBackend>) {
    let mut s = KeyedState::new(backend, KeyGroupRange { start: 0, end: 63 }, 128);
    assert!(matches!(s.value_get("x"), Err(StateError::NoCurrentKey(_))));
    let outside = (0..1000)
        .map(|i| format!("key{i}"))
        .find(|k| key_group_of(k.as_bytes(), 128) > 63)
        .expect("some key falls outside");
    assert!(matches!(
        s.set_current_key(outside.as_bytes()),
        Err(StateError::KeyGroupOutOfRange { .. })
    ));
    let inside = (0..1000)
        .map(|i| format!("key{i}"))
        .find(|k| key_group_of(k.as_bytes(), 128) <= 63)
        .expect("inside");
    s.set_current_key(inside.as_bytes()).unwrap();
    s.value_set("x", b"1").unwrap();
    assert!(matches!(
        s.list_add("x", b"1"),
        Err(StateError::KindMismatch { .. })
    ));
}

fn key_groups_are_contiguous(backend: Box<dyn StateBackend>) {
    let mut s = state(backend);
    for i in 0..200 {
        let key = format!("key{i}");
        s.set_current_key(key.as_bytes()).unwrap();
        s.value_set("v", key.as_bytes()).unwrap();
    }
    assert_eq!(s.pending_writes(), 200);
    assert!(
        s.backend.scan_prefix(&[]).unwrap().is_empty(),
        "nothing written before flush"
    );
    s.flush().unwrap();
    assert_eq!(s.pending_writes(), 0);
    let entries = s.backend.scan_prefix(&[]).unwrap();
    assert_eq!(entries.len(), 200);
    let groups: Vec<u16> = entries
        .iter()
        .map(|(k, _)| u16::from_be_bytes([k[0], k[1]]))
        .collect();
    assert!(
        groups.windows(2).all(|w| w[0] <= w[1]),
        "entries sorted by key group"
    );
    for ((_, v), g) in entries.iter().zip(&groups) {
        assert_eq!(key_group_of(v, 128), *g);
    }
}

#[test]
fn memory_backend_passes_the_suite() {
    suite(&|| Box::new(MemoryBackend::new()));
}

#[test]
fn rocksdb_backend_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let counter = std::cell::Cell::new(0);
    suite(&|| {
        counter.set(counter.get() + 1);
        Box::new(
            RocksDbBackend::open(
                &dir.path().join(counter.get().to_string()),
                &RocksDbShared::default(),
            )
            .unwrap(),
        )
    });
}

#[test]
fn rocksdb_state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = state(Box::new(
            RocksDbBackend::open(dir.path(), &RocksDbShared::default()).unwrap(),
        ));
        s.set_current_key(b"k").unwrap();
        s.value_set("v", b"kept").unwrap();
        s.flush().unwrap();
    }
    let mut s = state(Box::new(
        RocksDbBackend::open(dir.path(), &RocksDbShared::default()).unwrap(),
    ));
    s.set_current_key(b"k").unwrap();
    // The WAL is off, but a clean close flushes the memtable.
    assert_eq!(s.value_get("v").unwrap(), Some(b"kept".to_vec()));
}

#[test]
fn corrupt_list_is_reported() {
    assert_eq!(decode_list(&[0, 0, 0, 5, b'a']), None);
    assert_eq!(decode_list(&[0, 0, 0, 1, b'a']), Some(vec![b"a".to_vec()]));
}

/// State of 40 keys (value, list, map, timers) snapshotted at
/// parallelism 1, encoded, decoded and restored at parallelism 3 (and
/// from there back to 1): every key's state and every timer is found
/// in exactly the subtask that owns its key group.
fn snapshots_restore_at_another_parallelism(make: &dyn Fn() -> Box<dyn StateBackend>) {
    const MAX: u16 = 16;
    let keys: Vec<Vec<u8>> = (0..40).map(|i| format!("key-{i}").into_bytes()).collect();
    let mut one = KeyedState::new(make(), KeyGroupRange::all(MAX), MAX);
    for (i, key) in keys.iter().enumerate() {
        one.set_current_key(key).unwrap();
        one.value_set("v", &[i as u8]).unwrap();
        one.list_add("l", b"a").unwrap();
        one.list_add("l", &[i as u8]).unwrap();
        one.map_put("m", b"k", key).unwrap();
        one.register_timer(TimerDomain::EventTime, 1000 - i as i64)
            .unwrap();
    }
    // Streamed while scanning; the same bytes as the decoded form's.
    let bytes = one.snapshot_bytes().unwrap();
    let snapshot = crate::KeyedSnapshot::from_bytes(&bytes).unwrap();
    assert_eq!(snapshot.to_bytes().unwrap(), bytes);

    let mut three: Vec<KeyedState> = (0..3)
        .map(|i| {
            let mut s = KeyedState::new(make(), KeyGroupRange::for_subtask(i, 3, MAX), MAX);
            s.restore([bytes.as_slice()]).unwrap();
            s
        })
        .collect();
    let mut timers = 0;
    for (i, key) in keys.iter().enumerate() {
        let group = key_group_of(key, MAX);
        for state in &mut three {
            let owns = state.key_group_range().contains(group);
            if !owns {
                continue;
            }
            state.set_current_key(key).unwrap();
            assert_eq!(state.value_get("v").unwrap(), Some(vec![i as u8]));
            assert_eq!(
                state.list_get("l").unwrap(),
                vec![b"a".to_vec(), vec![i as u8]]
            );
            assert_eq!(state.map_get("m", b"k").unwrap(), Some(key.clone()));
            assert!(
                matches!(
                    state.map_get("v", b"k"),
                    Err(StateError::KindMismatch { .. })
                ),
                "kinds come back with the state"
            );
        }
    }
    for state in &mut three {
        let mut last = i64::MIN;
        while let Some((ts, key)) = state
            .pop_due_timer(TimerDomain::EventTime, i64::MAX)
            .unwrap()
        {
            assert!(ts >= last, "timers fire in time order");
            assert!(state.key_group_range().contains(key_group_of(&key, MAX)));
            last = ts;
            timers += 1;
        }
    }
    assert_eq!(timers, keys.len());

    // Back to one subtask from the three (timers were fired above, so
    // only state remains).
    let parts: Vec<Vec<u8>> = three
        .iter_mut()
        .map(|s| s.snapshot_bytes().unwrap())
        .collect();
    let mut back = KeyedState::new(make(), KeyGroupRange::all(MAX), MAX);
    back.restore(parts.iter().map(Vec::as_slice)).unwrap();
    let again = back.snapshot().unwrap();
    let mut original = one.snapshot().unwrap();
    original
        .entries
        .retain(|(k, _)| !matches!(StorageKey::parse(k), Ok(p) if p.is_timer()));
    assert_eq!(again, original);
}

#[test]
fn memory_snapshots_restore_at_another_parallelism() {
    snapshots_restore_at_another_parallelism(&|| Box::new(MemoryBackend::new()));
}

#[test]
fn rocksdb_snapshots_restore_at_another_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::cell::Cell::new(0);
    snapshots_restore_at_another_parallelism(&|| {
        n.set(n.get() + 1);
        Box::new(
            RocksDbBackend::open(
                &dir.path().join(n.get().to_string()),
                &RocksDbShared::default(),
            )
            .unwrap(),
        )
    });
}

#[test]
fn native_checkpoints_keep_old_sst_files_and_restore_at_another_parallelism() {
    const MAX: u16 = 16;
    let dir = tempfile::tempdir().unwrap();
    let backend = RocksDbBackend::open(&dir.path().join("db"), &RocksDbShared::default()).unwrap();
    let mut state = KeyedState::new(Box::new(backend), KeyGroupRange::all(MAX), MAX);
    let write = |state: &mut KeyedState, keys: std::ops::Range<u32>| {
        for i in keys {
            state.set_current_key(format!("k{i}").as_bytes()).unwrap();
            state.value_set("v", &i.to_be_bytes()).unwrap();
            state
                .register_timer(TimerDomain::EventTime, i64::from(i))
                .unwrap();
        }
    };
    write(&mut state, 0..500);
    let first = state
        .native_checkpoint(&dir.path().join("chk-1"))
        .unwrap()
        .expect("rocksdb has a native format");
    write(&mut state, 500..1000);
    let second = state
        .native_checkpoint(&dir.path().join("chk-2"))
        .unwrap()
        .unwrap();
    let ssts = |c: &crate::NativeCheckpoint| -> Vec<crate::NativeFile> {
        c.files
            .iter()
            .filter(|f| f.is_immutable())
            .cloned()
            .collect()
    };
    assert_eq!(ssts(&first).len(), 1);
    // The first checkpoint's SST file is still live; one more was added.
    assert_eq!(ssts(&second).len(), 2);
    assert!(ssts(&second).contains(&ssts(&first)[0]));

    let full = state.snapshot().unwrap();
    let mut parts: Vec<crate::KeyedSnapshot> = (0..3)
        .map(|i| {
            let range = KeyGroupRange::for_subtask(i, 3, MAX);
            let mut part = KeyedState::new(Box::new(MemoryBackend::new()), range, MAX);
            part.restore_native(&second.dir).unwrap();
            assert_eq!(
                part.timer_count(TimerDomain::EventTime),
                full.entries
                    .iter()
                    .filter(|(k, _)| {
                        let p = StorageKey::parse(k).unwrap();
                        range.contains(p.group) && p.is_timer()
                    })
                    .count()
            );
            part.snapshot().unwrap()
        })
        .collect();
    let mut entries: Vec<_> = parts.iter_mut().flat_map(|p| p.entries.drain(..)).collect();
    entries.sort();
    assert_eq!(entries, full.entries);
    assert_eq!(full.entries.len(), 2000, "a value and a timer per key");
}

#[test]
fn an_adopted_native_checkpoint_is_the_state_with_its_timers() {
    const MAX: u16 = 16;
    let dir = tempfile::tempdir().unwrap();
    let range = KeyGroupRange::for_subtask(1, 2, MAX);
    let open = |name: &str| {
        let backend =
            RocksDbBackend::open(&dir.path().join(name), &RocksDbShared::default()).unwrap();
        KeyedState::new(Box::new(backend), range, MAX)
    };
    let mut state = open("db");
    let mut keys = 0;
    for i in 0..400u32 {
        let key = format!("k{i}");
        if !range.contains(key_group_of(key.as_bytes(), MAX)) {
            continue;
        }
        keys += 1;
        state.set_current_key(key.as_bytes()).unwrap();
        state.value_set("v", &i.to_be_bytes()).unwrap();
        state.list_add("l", b"x").unwrap();
        state
            .register_timer(TimerDomain::EventTime, i64::from(i))
            .unwrap();
    }
    let checkpoint = state
        .native_checkpoint(&dir.path().join("chk-1"))
        .unwrap()
        .unwrap();
    let want = state.snapshot().unwrap();

    // A fresh subtask with the same key groups works in the checkpoint.
    let mut adopted = open("fresh");
    adopted.adopt_native(&checkpoint.dir).unwrap();
    assert!(
        !dir.path().join("fresh").exists(),
        "the empty store is gone"
    );
    assert_eq!(adopted.snapshot().unwrap().entries, want.entries);
    assert_eq!(adopted.timer_count(TimerDomain::EventTime), keys);
    // It keeps working: timers fire in order and take their entry
    // with them, writes land.
    let mut fired = Vec::new();
    while let Some((ts, _)) = adopted.pop_due_timer(TimerDomain::EventTime, 50).unwrap() {
        fired.push(ts);
    }
    assert!(
        !fired.is_empty() && fired.windows(2).all(|w| w[0] < w[1]),
        "{fired:?}"
    );
    let key = want.entries.iter().find_map(|(k, _)| {
        let parsed = StorageKey::parse(k).unwrap();
        (parsed.rest.first() == Some(&b'v')).then(|| parsed.key.to_vec())
    });
    adopted.set_current_key(&key.unwrap()).unwrap();
    adopted.value_set("v", b"new").unwrap();
    adopted.flush().unwrap();
    assert_eq!(
        adopted.value_get("v").unwrap().as_deref(),
        Some(&b"new"[..])
    );
    assert_eq!(
        adopted.snapshot().unwrap().entries.len(),
        want.entries.len() - fired.len()
    );

    // A subtask with other key groups must not take it over.
    let backend =
        RocksDbBackend::open(&dir.path().join("other"), &RocksDbShared::default()).unwrap();
    let other = KeyGroupRange::for_subtask(0, 2, MAX);
    let mut wrong = KeyedState::new(Box::new(backend), other, MAX);
    let e = wrong.adopt_native(&checkpoint.dir).unwrap_err().to_string();
    assert!(e.contains("outside"), "{e}");
}

#[test]
fn a_damaged_native_checkpoint_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("CURRENT"), b"MANIFEST-000404\n").unwrap();
    let mut state = KeyedState::new(Box::new(MemoryBackend::new()), KeyGroupRange::all(16), 16);
    let e = state.restore_native(dir.path()).unwrap_err().to_string();
    assert!(e.contains(&dir.path().display().to_string()), "{e}");
}

#[test]
fn damaged_snapshot_bytes_are_errors_not_panics() {
    let snapshot = crate::KeyedSnapshot {
        entries: vec![(b"\0\x01\0\0\0\x01kv\0\x01n".to_vec(), b"x".to_vec())],
    };
    let bytes = snapshot.to_bytes().unwrap();
    assert_eq!(crate::KeyedSnapshot::from_bytes(&bytes).unwrap(), snapshot);
    let mut state = KeyedState::new(Box::new(MemoryBackend::new()), KeyGroupRange::all(4), 4);
    for cut in 0..bytes.len() {
        assert!(
            crate::KeyedSnapshot::from_bytes(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
        assert!(
            matches!(
                state.restore([&bytes[..cut]]),
                Err(StateError::CorruptSnapshot(_))
            ),
            "restore cut at {cut}"
        );
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    let e = crate::KeyedSnapshot::from_bytes(&trailing).unwrap_err();
    assert!(e.to_string().contains("trailing bytes"), "{e}");
    let mut huge = bytes.clone();
    huge[4..12].copy_from_slice(&u64::MAX.to_be_bytes());
    assert!(crate::KeyedSnapshot::from_bytes(&huge).is_err());
    let bad = crate::KeyedSnapshot {
        entries: vec![(vec![0, 1, 0, 0, 0, 9], vec![])],
    };
    assert!(matches!(
        state.restore([bad.to_bytes().unwrap().as_slice()]),
        Err(StateError::CorruptSnapshot(_))
    ));
}
