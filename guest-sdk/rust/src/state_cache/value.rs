//! Value state through the cache.

use serde::{Serialize, de::DeserializeOwned};

use super::typed::{Typed, Val};
use super::{Cache, Cached, Slot, WRITE_THROUGH_BYTES, host, two_kinds, with};
use crate::state::{decode, encode};

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
