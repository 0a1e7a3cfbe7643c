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

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use crate::bindings::weir::operator::keyed_state as host;
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

mod map;
mod typed;
mod value;

pub(crate) use map::{map_clear, map_entries, map_get, map_take, map_update, map_write};
use typed::{MEASURE_EVERY, Val};
pub(crate) use value::{value_get, value_update, value_write};

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

/// A name used as value and map state: the host refuses that too.
fn two_kinds(name: &str) -> ! {
    panic!("weir: state `{name}` is used both as value state and as map state")
}
