//! Map state through the cache: whole small maps, entry by entry otherwise.

use std::collections::BTreeMap;

use serde::{Serialize, de::DeserializeOwned};

use super::typed::{Typed, Val};
use super::{
    Cache, Cached, ENTRY_OVERHEAD, KeyStates, MapSlot, Slot, WRITE_THROUGH_BYTES, flush_slot, host,
    two_kinds, with,
};
use crate::state::{decode, encode};
use crate::words::{self, Bytes};

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
