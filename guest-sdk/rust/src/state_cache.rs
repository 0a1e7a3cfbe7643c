//! A write-back cache of keyed state inside the guest, in front of the
//! host's `keyed-state` imports: Flink's heap state backend, with the host's
//! state backend behind it.
//!
//! Value state and map state of recently used keys live here as the bytes
//! the host would hold; an access that hits costs no import call. Changes
//! are written to the host when the cache passes its budget (then it is
//! emptied whole) and before every `snapshot-state` (then entries stay, now
//! clean), so a checkpoint — which the host takes after `snapshot-state` —
//! sees every write. A map is loaded whole on its first read miss when it is
//! small (at most 1/8 of the budget), after which reads of absent entries
//! are answered here too; a larger map is read entry by entry, and so are
//! all maps of that state name from then on, and every map once the cache
//! has been emptied for its budget (the state is larger than the cache:
//! loading maps whole would cost a prefix scan per key on the host). An entry put
//! and removed between two flushes whose key the host never held costs no
//! import at all (a reading buffered in map state until its timer fires).
//! List state is not cached: its calls go to the host.
//!
//! The host forgets its current key between calls; the guest's current key
//! (the record's, or the timer's) is told to the host lazily, before the
//! first import of a record that needs it (a miss, a flush, list state or a
//! timer).
//!
//! Sizes are estimates: the key, state name, map key and value bytes plus a
//! fixed overhead per entry ([`ENTRY_OVERHEAD`]) and per key
//! ([`KEY_OVERHEAD`]). A budget of 0 turns the cache off: every access is an
//! import call, as before the cache.

use std::any::Any;
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde::{Serialize, de::DeserializeOwned};

use crate::bindings::weir::operator::keyed_state as host;
use crate::state::{decode, encode};
use crate::words::{self, Bytes, WordHash};

/// The default budget, in estimated bytes.
pub const DEFAULT_CACHE_BYTES: usize = 8 << 20;
/// Estimated bytes per cached entry besides its map key and value.
pub const ENTRY_OVERHEAD: usize = 48;
/// Estimated bytes per cached key besides its bytes.
pub const KEY_OVERHEAD: usize = 64;
/// A value (with its map key) larger than this, in bytes, is written
/// straight to the host and not cached, so that the host's limits
/// (`max_state_value_bytes`, the pending-state budget) apply when it is
/// written, as without the cache.
pub const WRITE_THROUGH_BYTES: usize = 64 << 10;

/// A value given to the cache by a typed handle's `update` (or `take`):
/// kept decoded, encoded only when it is written to the host or read as
/// bytes.
trait TypedValue {
    fn encode(&self) -> Vec<u8>;
    fn size(&self) -> usize;
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// A decoded value and its estimated encoded size in bytes.
struct Typed<T> {
    value: T,
    size: usize,
}

impl<T: Serialize + 'static> Typed<T> {
    /// `value`, whose size is measured (its JSON length) on every
    /// [`MEASURE_EVERY`]th store of the cache and otherwise carried over
    /// from the value it replaces (`before` bytes; at least `T`'s own
    /// size): a value that grows is counted at most a few stores late,
    /// and most stores cost no encoding.
    fn boxed(value: T, before: usize, measure: bool) -> Val {
        let size = if measure {
            encoded_len(&value)
        } else {
            before.max(size_of::<T>())
        };
        Val::Typed(Box::new(Typed { value, size }))
    }
}

/// How often a decoded value's size is measured: every this many stores.
const MEASURE_EVERY: u32 = 8;

/// The length of `value`'s JSON encoding, without keeping it.
fn encoded_len<T: Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, value) {
        Ok(()) => count.0,
        Err(_) => 4,
    }
}

impl<T: Serialize + 'static> TypedValue for Typed<T> {
    fn encode(&self) -> Vec<u8> {
        encode(&self.value)
    }
    fn size(&self) -> usize {
        self.size
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// A cached value: the host's bytes, or a decoded value.
enum Val {
    Bytes(Vec<u8>),
    Typed(Box<dyn TypedValue>),
}

impl Val {
    fn size(&self) -> usize {
        match self {
            Val::Bytes(b) => b.len(),
            Val::Typed(t) => t.size(),
        }
    }

    fn bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Val::Bytes(b) => Cow::Borrowed(b),
            Val::Typed(t) => Cow::Owned(t.encode()),
        }
    }

    /// The value as a `T`: moved out when it is one, decoded otherwise.
    ///
    /// # Errors
    /// When its bytes do not decode as `T` (the value is handed back).
    fn into_typed<T: DeserializeOwned + 'static>(self, name: &str) -> Result<T, (Val, String)> {
        let bytes = match self {
            Val::Typed(t) if t.as_any().is::<Typed<T>>() => {
                match t.into_any().downcast::<Typed<T>>() {
                    Ok(t) => return Ok(t.value),
                    Err(_) => unreachable!("the type was checked"),
                }
            }
            // Another type under the same name: through its encoding.
            Val::Typed(t) => t.encode(),
            Val::Bytes(b) => b,
        };
        decode(name, &bytes).map_err(|e| (Val::Bytes(bytes), e))
    }
}

/// One value as the guest sees it now.
struct Cached {
    /// `None`: absent (cleared, removed, or never written).
    value: Option<Val>,
    /// Not yet written to the host.
    dirty: bool,
    /// The host holds a value for it (as of the last load or flush), so
    /// removing it must reach the host.
    on_host: bool,
}

impl Cached {
    /// What the host answered, clean.
    fn from_host(value: Option<Vec<u8>>) -> Self {
        Self {
            on_host: value.is_some(),
            value: value.map(Val::Bytes),
            dirty: false,
        }
    }

    /// Replaces the value by one the guest wrote.
    fn write(&mut self, value: Option<Val>) {
        self.dirty = value.is_some() || self.on_host;
        self.value = value;
    }

    fn cost(&self, map_key: usize) -> usize {
        ENTRY_OVERHEAD + map_key + self.value.as_ref().map_or(0, Val::size)
    }
}

struct MapSlot {
    /// Every entry of the map is in `entries`; a map key not there is absent.
    complete: bool,
    /// The map was cleared here: the next flush clears it on the host first.
    cleared: bool,
    /// The whole map was too large to load; misses read one entry each.
    too_large: bool,
    entries: BTreeMap<Bytes, Cached>,
}

enum Slot {
    Value(Cached),
    Map(MapSlot),
}

/// The cached states of one key, by state name.
#[derive(Default)]
struct KeyStates {
    states: Vec<(String, Slot)>,
    dirty: bool,
}

impl KeyStates {
    fn slot(&mut self, name: &str) -> Option<&mut Slot> {
        self.states
            .iter_mut()
            .find(|(n, _)| words::eq(n.as_bytes(), name.as_bytes()))
            .map(|(_, s)| s)
    }
}

struct Cache {
    budget: usize,
    bytes: usize,
    index: HashMap<Bytes, usize, WordHash>,
    keys: Vec<KeyStates>,
    /// The guest's current key and, once state touched it, its index.
    current: Option<(Bytes, Option<usize>)>,
    /// The host's current key is the guest's.
    host_synced: bool,
    /// Map states of which one key's map was too large to load whole: their
    /// misses read one entry each from then on, across evictions too.
    large_maps: Vec<String>,
    /// The cache was emptied for its budget: the state is larger than the
    /// cache, so maps are no longer loaded whole (each load would be a
    /// prefix scan on the host, soon thrown away); misses read one entry.
    overflowed: bool,
    /// Stores of decoded values, to measure every [`MEASURE_EVERY`]th.
    stores: u32,
}

impl Cache {
    /// Whether the next decoded value stored is measured.
    fn measure_next(&mut self) -> bool {
        self.stores = self.stores.wrapping_add(1);
        self.stores.is_multiple_of(MEASURE_EVERY)
    }

    fn new() -> Self {
        Self {
            budget: DEFAULT_CACHE_BYTES,
            bytes: 0,
            index: HashMap::default(),
            keys: Vec::new(),
            current: None,
            host_synced: false,
            large_maps: Vec::new(),
            overflowed: false,
            stores: 0,
        }
    }

    fn sync_host(&mut self) {
        if self.host_synced {
            return;
        }
        if let Some((key, _)) = &self.current {
            host::set_current_key(&key.0);
            self.host_synced = true;
        }
    }

    /// The current key's cached states, made on first use; `None` when the
    /// cache is off or there is no current key.
    fn current_states(&mut self) -> Option<usize> {
        if self.budget == 0 {
            return None;
        }
        let (key, at) = self.current.as_mut()?;
        if let Some(i) = *at {
            return Some(i);
        }
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                let i = self.keys.len();
                self.keys.push(KeyStates::default());
                self.index.insert(key.clone(), i);
                self.bytes += KEY_OVERHEAD + key.0.len();
                i
            }
        };
        *at = Some(i);
        Some(i)
    }

    /// Writes every change to the host; entries stay, clean.
    fn flush(&mut self) {
        let mut told = false;
        for (key, &i) in &self.index {
            let states = &mut self.keys[i];
            if !states.dirty {
                continue;
            }
            host::set_current_key(&key.0);
            told = true;
            for (name, slot) in &mut states.states {
                flush_slot(name, slot, &mut self.bytes);
            }
            states.dirty = false;
        }
        if told {
            self.host_synced = false;
        }
    }

    /// Flushes and forgets everything once past the budget.
    fn evict_if_full(&mut self) {
        if self.bytes > self.budget {
            self.clear();
            self.overflowed = true;
        }
    }

    /// Writes every change to the host and forgets everything.
    fn clear(&mut self) {
        self.flush();
        self.index.clear();
        self.keys.clear();
        self.bytes = 0;
        if let Some((_, at)) = &mut self.current {
            *at = None;
        }
    }
}

fn flush_slot(name: &str, slot: &mut Slot, bytes: &mut usize) {
    match slot {
        Slot::Value(c) => {
            if c.dirty {
                match &c.value {
                    Some(v) => host::value_set(name, &v.bytes()),
                    None => host::value_clear(name),
                }
                c.dirty = false;
                c.on_host = c.value.is_some();
            }
        }
        Slot::Map(m) => {
            if m.cleared {
                host::map_clear(name);
                m.cleared = false;
            }
            m.entries.retain(|map_key, c| {
                if c.dirty {
                    match &c.value {
                        Some(v) => host::map_put(name, &map_key.0, &v.bytes()),
                        None if c.on_host => host::map_remove(name, &map_key.0),
                        None => {}
                    }
                    c.dirty = false;
                    c.on_host = c.value.is_some();
                }
                // In a complete map an absent entry is implied.
                let keep = c.value.is_some() || !m.complete;
                if !keep {
                    *bytes = bytes.saturating_sub(c.cost(map_key.0.len()));
                }
                keep
            });
        }
    }
}

std::thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::new());
}

fn with<R>(f: impl FnOnce(&mut Cache) -> R) -> R {
    CACHE.with(|c| f(&mut c.borrow_mut()))
}

/// Sets the guest's keyed-state cache budget in estimated bytes (default
/// [`DEFAULT_CACHE_BYTES`]); 0 turns the cache off. What is cached is
/// written to the host and dropped when it no longer fits. Call it from
/// `open`.
pub fn set_cache_bytes(bytes: usize) {
    with(|c| {
        c.budget = bytes;
        if bytes == 0 || c.bytes > bytes {
            c.clear();
        }
    });
}

/// The budget in estimated bytes.
pub fn cache_bytes() -> usize {
    with(|c| c.budget)
}

/// A host call began: the host has no current key. Used by
/// [`crate::export!`]; not for direct use.
#[doc(hidden)]
pub fn begin_call() {
    with(|c| {
        c.current = None;
        c.host_synced = false;
    });
}

/// Makes `key` the current key of the following state and timer calls.
pub(crate) fn set_key(key: &[u8]) {
    with(|c| {
        if let Some((k, _)) = &c.current
            && words::eq(&k.0, key)
        {
            return;
        }
        c.current = Some((Bytes(key.to_vec()), None));
        c.host_synced = false;
    });
}

/// Tells the host the current key before an import that needs it.
pub(crate) fn sync_host() {
    with(Cache::sync_host);
}

/// Writes every change to the host (before a snapshot). Used by
/// [`crate::export!`]; not for direct use.
#[doc(hidden)]
pub fn flush() {
    with(Cache::flush);
}

/// Writes and drops everything when the cache is past its budget.
pub(crate) fn evict_if_full() {
    with(Cache::evict_if_full);
}

/// Reads value state `name` of the current key and passes it to `f`.
pub(crate) fn value_get<R>(name: &str, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    with(|c| {
        let Some(i) = c.current_states() else {
            c.sync_host();
            return f(host::value_get(name).as_deref());
        };
        let cached = value_cached(c, i, name);
        f(cached.value.as_ref().map(Val::bytes).as_deref())
    })
}

/// Value state `name` of the key at `i`, read from the host when missing.
fn value_cached<'a>(c: &'a mut Cache, i: usize, name: &str) -> &'a mut Cached {
    if c.keys[i].slot(name).is_none() {
        c.sync_host();
        let cached = Cached::from_host(host::value_get(name));
        c.bytes += cached.cost(name.len());
        c.keys[i]
            .states
            .push((name.to_string(), Slot::Value(cached)));
    }
    match c.keys[i].slot(name) {
        Some(Slot::Value(cached)) => cached,
        _ => two_kinds(name),
    }
}

/// A name used as value and map state: the host refuses that too.
fn two_kinds(name: &str) -> ! {
    panic!("weir: state `{name}` is used both as value state and as map state")
}

/// Writes (`Some`) or clears (`None`) value state `name` of the current key.
pub(crate) fn value_write(name: &str, value: Option<Vec<u8>>) {
    let large = value
        .as_ref()
        .is_some_and(|v| v.len() > WRITE_THROUGH_BYTES);
    let value = value.map(Val::Bytes);
    with(|c| {
        let current = c.current_states();
        let Some(i) = current.filter(|_| !large) else {
            if let Some(i) = current {
                // Forget the cached value: the host's is newer.
                let states = &mut c.keys[i];
                if let Some(at) = states.states.iter().position(|(n, _)| n == name) {
                    match states.states.swap_remove(at).1 {
                        Slot::Value(cached) => {
                            c.bytes = c.bytes.saturating_sub(cached.cost(name.len()));
                        }
                        Slot::Map(_) => two_kinds(name),
                    }
                }
            }
            c.sync_host();
            match value {
                Some(v) => host::value_set(name, &v.bytes()),
                None => host::value_clear(name),
            }
            return;
        };
        let states = &mut c.keys[i];
        let (on_host, old) = match states.slot(name) {
            Some(Slot::Value(cached)) => (cached.on_host, cached.cost(name.len())),
            Some(Slot::Map(_)) => two_kinds(name),
            // Unknown: a clear must reach the host.
            None => (true, 0),
        };
        let cached = Cached {
            dirty: value.is_some() || on_host,
            on_host,
            value,
        };
        c.bytes = (c.bytes + cached.cost(name.len())).saturating_sub(old);
        states.dirty |= cached.dirty;
        match states.slot(name) {
            Some(slot) => *slot = Slot::Value(cached),
            None => states.states.push((name.to_string(), Slot::Value(cached))),
        }
        c.evict_if_full();
    });
}

/// The map slot `name` of the current key's states, made when missing.
fn map_slot<'a>(states: &'a mut KeyStates, name: &str) -> &'a mut MapSlot {
    let at = match states
        .states
        .iter()
        .position(|(n, _)| words::eq(n.as_bytes(), name.as_bytes()))
    {
        Some(at) => at,
        None => {
            states.states.push((
                name.to_string(),
                Slot::Map(MapSlot {
                    complete: false,
                    cleared: false,
                    too_large: false,
                    entries: BTreeMap::new(),
                }),
            ));
            states.states.len() - 1
        }
    };
    match &mut states.states[at].1 {
        Slot::Map(m) => m,
        Slot::Value(_) => two_kinds(name),
    }
}

/// Loads a small map whole, keeping what is cached (it is newer).
fn load_map(c: &mut Cache, i: usize, name: &str) {
    if c.overflowed || c.large_maps.iter().any(|n| n == name) {
        map_slot(&mut c.keys[i], name).too_large = true;
        return;
    }
    c.sync_host();
    let loaded = host::map_entries(name);
    let size: usize = loaded
        .iter()
        .map(|(k, v)| ENTRY_OVERHEAD + k.len() + v.len())
        .sum();
    let budget = c.budget;
    let map = map_slot(&mut c.keys[i], name);
    if size > budget / 8 {
        map.too_large = true;
        c.large_maps.push(name.to_string());
        return;
    }
    let mut added = 0;
    for (map_key, value) in loaded {
        if let std::collections::btree_map::Entry::Vacant(e) = map.entries.entry(Bytes(map_key)) {
            let cached = Cached::from_host(Some(value));
            added += cached.cost(e.key().0.len());
            e.insert(cached);
        }
    }
    map.complete = true;
    c.bytes += added;
}

/// Makes entry `map_key` of map state `name` of the key at `i` known here:
/// loads the map whole, or reads the entry.
fn map_known(c: &mut Cache, i: usize, name: &str, map_key: &Bytes) {
    let map = map_slot(&mut c.keys[i], name);
    if map.entries.contains_key(map_key) || map.complete {
        return;
    }
    if !map.too_large {
        load_map(c, i, name);
    }
    if !map_slot(&mut c.keys[i], name).complete {
        c.sync_host();
        let cached = Cached::from_host(host::map_get(name, &map_key.0));
        c.bytes += cached.cost(map_key.0.len());
        map_slot(&mut c.keys[i], name)
            .entries
            .insert(map_key.clone(), cached);
    }
}

/// Reads entry `map_key` of map state `name` and passes it to `f`.
pub(crate) fn map_get<R>(name: &str, map_key: Vec<u8>, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
    with(|c| {
        let Some(i) = c.current_states() else {
            c.sync_host();
            return f(host::map_get(name, &map_key).as_deref());
        };
        let map_key = Bytes(map_key);
        map_known(c, i, name, &map_key);
        let map = map_slot(&mut c.keys[i], name);
        let value = map.entries.get(&map_key).and_then(|e| e.value.as_ref());
        f(value.map(Val::bytes).as_deref())
    })
}

/// Writes (`Some`) or removes (`None`) entry `map_key` of map state `name`.
pub(crate) fn map_write(name: &str, map_key: Vec<u8>, value: Option<Vec<u8>>) {
    let large = map_key.len() + value.as_ref().map_or(0, Vec::len) > WRITE_THROUGH_BYTES;
    let value = value.map(Val::Bytes);
    with(|c| {
        let current = c.current_states();
        let Some(i) = current.filter(|_| !large) else {
            if let Some(i) = current {
                // Earlier changes of this map first, then forget the entry:
                // the host's is newer, and the map is no longer whole here.
                c.sync_host();
                let mut bytes = c.bytes;
                if let Some(slot) = c.keys[i].slot(name) {
                    flush_slot(name, slot, &mut bytes);
                }
                let map = map_slot(&mut c.keys[i], name);
                map.complete = false;
                if let Some(old) = map.entries.remove(&Bytes(map_key.clone())) {
                    bytes = bytes.saturating_sub(old.cost(map_key.len()));
                }
                c.bytes = bytes;
            }
            c.sync_host();
            match value {
                Some(v) => host::map_put(name, &map_key, &v.bytes()),
                None => host::map_remove(name, &map_key),
            }
            return;
        };
        map_store(c, i, name, Bytes(map_key), value);
        c.evict_if_full();
    });
}

/// Stores `value` (`None`: removed) as entry `map_key` of map state `name`
/// of the key at `i`.
fn map_store(c: &mut Cache, i: usize, name: &str, map_key: Bytes, value: Option<Val>) {
    let states = &mut c.keys[i];
    let map = map_slot(states, name);
    let (on_host, old) = match map.entries.get(&map_key) {
        Some(cached) => (cached.on_host, cached.cost(map_key.0.len())),
        None => (!map.complete, 0),
    };
    let mut cached = Cached {
        on_host,
        value: None,
        dirty: false,
    };
    cached.write(value);
    let dirty = cached.dirty;
    let mut bytes = c.bytes.saturating_sub(old);
    if cached.value.is_none() && !cached.dirty && map.complete {
        // Never on the host, now removed: a complete map implies it.
        map.entries.remove(&map_key);
    } else {
        bytes += cached.cost(map_key.0.len());
        map.entries.insert(map_key, cached);
    }
    c.bytes = bytes;
    states.dirty |= dirty;
}

/// Takes entry `map_key` of map state `name` out as a `T` (decoded, or
/// moved when an `update` stored it): `None` when absent. The entry stays
/// where it is unless `remove`.
///
/// # Errors
/// When its bytes do not decode as `T`; the entry is left as it was.
fn map_take_typed<T: DeserializeOwned + 'static>(
    c: &mut Cache,
    i: usize,
    name: &str,
    map_key: &Bytes,
) -> Result<(Option<T>, usize), String> {
    map_known(c, i, name, map_key);
    let map = map_slot(&mut c.keys[i], name);
    let Some(cached) = map.entries.get_mut(map_key) else {
        return Ok((None, 0));
    };
    let Some(value) = cached.value.take() else {
        return Ok((None, 0));
    };
    let before = value.size();
    match value.into_typed::<T>(name) {
        Ok(t) => {
            // The entry is empty until it is stored again.
            c.bytes = c.bytes.saturating_sub(before);
            Ok((Some(t), before))
        }
        Err((value, e)) => {
            c.bytes = (c.bytes + value.size()).saturating_sub(before);
            cached.value = Some(value);
            Err(e)
        }
    }
}

/// Runs `f` on entry `map_key` of map state `name` of the current key,
/// decoded (`None` when absent), and keeps what `f` leaves, decoded: no
/// encoding until the cache writes it to the host. `f` must not use this
/// map state itself.
///
/// # Errors
/// When the stored bytes do not decode as `V`; `f` does not run.
pub(crate) fn map_update<V, R>(
    name: &str,
    map_key: Vec<u8>,
    f: impl FnOnce(&mut Option<V>) -> R,
) -> Result<R, String>
where
    V: Serialize + DeserializeOwned + 'static,
{
    let taken = with(|c| match c.current_states() {
        None => {
            c.sync_host();
            let value = host::map_get(name, &map_key);
            value
                .map(|b| decode(name, &b))
                .transpose()
                .map(|v| (v, None))
        }
        Some(i) => {
            let map_key = Bytes(map_key.clone());
            map_take_typed::<V>(c, i, name, &map_key).map(|(v, size)| (v, Some((map_key, size))))
        }
    });
    let (mut value, cached_at) = taken?;
    let r = f(&mut value);
    with(
        |c| match cached_at.and_then(|k| c.current_states().map(|i| (i, k))) {
            Some((i, (map_key, before))) => {
                let measure = c.measure_next();
                let value = value.map(|v| Typed::boxed(v, before, measure));
                map_store(c, i, name, map_key, value);
                c.evict_if_full();
            }
            None => {
                c.sync_host();
                match &value {
                    Some(v) => host::map_put(name, &map_key, &encode(v)),
                    None => host::map_remove(name, &map_key),
                }
            }
        },
    );
    Ok(r)
}

/// Removes entry `map_key` of map state `name` of the current key and
/// returns its value, decoded (or moved, when `update` stored it).
///
/// # Errors
/// When the stored bytes do not decode as `V`; the entry stays.
pub(crate) fn map_take<V: DeserializeOwned + 'static>(
    name: &str,
    map_key: Vec<u8>,
) -> Result<Option<V>, String> {
    with(|c| {
        let Some(i) = c.current_states() else {
            c.sync_host();
            let value = host::map_get(name, &map_key)
                .map(|b| decode(name, &b))
                .transpose()?;
            host::map_remove(name, &map_key);
            return Ok(value);
        };
        let map_key = Bytes(map_key);
        let (value, _) = map_take_typed::<V>(c, i, name, &map_key)?;
        map_store(c, i, name, map_key, None);
        Ok(value)
    })
}

/// Runs `f` on value state `name` of the current key, decoded (`None` when
/// absent), and keeps what `f` leaves, decoded. `f` must not use this
/// value state itself.
///
/// # Errors
/// When the stored bytes do not decode as `T`; `f` does not run.
pub(crate) fn value_update<T, R>(
    name: &str,
    f: impl FnOnce(&mut Option<T>) -> R,
) -> Result<R, String>
where
    T: Serialize + DeserializeOwned + 'static,
{
    let taken = with(|c| {
        let Some(i) = c.current_states() else {
            c.sync_host();
            let value = host::value_get(name);
            return value
                .map(|b| decode(name, &b))
                .transpose()
                .map(|v| (v, None));
        };
        let cached = value_cached(c, i, name);
        let Some(value) = cached.value.take() else {
            return Ok((None, Some(0)));
        };
        let before = value.size();
        match value.into_typed::<T>(name) {
            Ok(t) => {
                c.bytes = c.bytes.saturating_sub(before);
                Ok((Some(t), Some(before)))
            }
            Err((value, e)) => {
                let after = value.size();
                cached.value = Some(value);
                c.bytes = (c.bytes + after).saturating_sub(before);
                Err(e)
            }
        }
    });
    let (mut value, cached) = taken?;
    let r = f(&mut value);
    with(
        |c| match cached.and_then(|before| c.current_states().map(|i| (i, before))) {
            Some((i, before)) => {
                let measure = c.measure_next();
                let cached = value_cached(c, i, name);
                let old = cached.value.as_ref().map_or(0, Val::size);
                cached.write(value.map(|v| Typed::boxed(v, before, measure)));
                let (new, dirty) = (cached.value.as_ref().map_or(0, Val::size), cached.dirty);
                c.bytes = (c.bytes + new).saturating_sub(old);
                c.keys[i].dirty |= dirty;
                c.evict_if_full();
            }
            None => {
                c.sync_host();
                match &value {
                    Some(v) => host::value_set(name, &encode(v)),
                    None => host::value_clear(name),
                }
            }
        },
    );
    Ok(r)
}

/// Passes every entry of map state `name` of the current key to `f`, in
/// map key byte order.
pub(crate) fn map_entries(name: &str, mut f: impl FnMut(&[u8], &[u8])) {
    with(|c| {
        let Some(i) = c.current_states() else {
            c.sync_host();
            for (k, v) in &host::map_entries(name) {
                f(k, v);
            }
            return;
        };
        let map = map_slot(&mut c.keys[i], name);
        if !map.complete && !map.too_large {
            load_map(c, i, name);
        }
        let map = map_slot(&mut c.keys[i], name);
        if map.complete {
            for (k, cached) in &map.entries {
                if let Some(v) = &cached.value {
                    f(&k.0, &v.bytes());
                }
            }
            return;
        }
        // Too large to cache whole: the host's entries, after this map's
        // changes are written.
        c.sync_host();
        let slot = c.keys[i].slot(name).expect("map state was just made");
        flush_slot(name, slot, &mut c.bytes);
        for (k, v) in &host::map_entries(name) {
            f(k, v);
        }
    });
}

/// Removes every entry of map state `name` of the current key.
pub(crate) fn map_clear(name: &str) {
    with(|c| {
        let Some(i) = c.current_states() else {
            c.sync_host();
            host::map_clear(name);
            return;
        };
        let states = &mut c.keys[i];
        let map = map_slot(states, name);
        let freed: usize = map
            .entries
            .iter()
            .map(|(k, cached)| cached.cost(k.0.len()))
            .sum();
        map.entries.clear();
        map.complete = true;
        map.cleared = true;
        map.too_large = false;
        states.dirty = true;
        c.bytes = c.bytes.saturating_sub(freed);
    });
}
