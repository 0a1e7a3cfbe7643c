//! Typed handles on keyed state held by the host, through the guest's
//! write-back cache ([`crate::state_cache`]).

use std::marker::PhantomData;

use serde::{Serialize, de::DeserializeOwned};

use crate::bindings::weir::operator::keyed_state as host;
use crate::state_cache as cache;

pub(crate) fn decode<T: DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes)
        .map_err(|e| format!("state `{name}` holds data of another type: {e}"))
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec())
}

/// One value per key, stored by the host as JSON.
pub struct ValueState<T> {
    name: String,
    _marker: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> ValueState<T> {
    /// A handle on value state `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            _marker: PhantomData,
        }
    }

    /// The current key's value, if any.
    ///
    /// # Errors
    /// When the stored bytes do not decode as `T`.
    pub fn get(&self) -> Result<Option<T>, String> {
        cache::value_get(&self.name, |b| b.map(|b| decode(&self.name, b)).transpose())
    }

    /// Stores `value` for the current key.
    pub fn set(&self, value: &T) {
        cache::value_write(&self.name, Some(encode(value)));
    }

    /// Removes the current key's value.
    pub fn clear(&self) {
        cache::value_write(&self.name, None);
    }
}

impl<T: Serialize + DeserializeOwned + 'static> ValueState<T> {
    /// Runs `f` on the current key's value (`None` when there is none) and
    /// stores what `f` leaves (`None` clears it); returns what `f` returns.
    ///
    /// The cheapest way to change a value: the guest's state cache keeps it
    /// decoded, so a run of updates of one key decodes and encodes it once,
    /// not once per call as `get` and `set` do. `f` must not use this same
    /// state. Use types whose JSON round trip gives the same value (no NaN
    /// or infinite floats, no `#[serde(skip)]` fields): the cached value is
    /// used as it is until it is written to the host and read back.
    ///
    /// # Errors
    /// When the stored bytes do not decode as `T`; then `f` does not run.
    pub fn update<R>(&self, f: impl FnOnce(&mut Option<T>) -> R) -> Result<R, String> {
        cache::value_update(&self.name, f)
    }
}

/// A list of values per key.
pub struct ListState<T> {
    name: String,
    _marker: PhantomData<T>,
}

impl<T: Serialize + DeserializeOwned> ListState<T> {
    /// A handle on list state `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            _marker: PhantomData,
        }
    }

    /// All elements for the current key, in insertion order.
    ///
    /// # Errors
    /// When a stored element does not decode as `T`.
    pub fn get(&self) -> Result<Vec<T>, String> {
        cache::sync_host();
        host::list_get(&self.name)
            .iter()
            .map(|b| decode(&self.name, b))
            .collect()
    }

    /// Appends `value` for the current key.
    pub fn add(&self, value: &T) {
        cache::sync_host();
        host::list_add(&self.name, &encode(value));
    }

    /// Removes every element for the current key.
    pub fn clear(&self) {
        cache::sync_host();
        host::list_clear(&self.name);
    }
}

/// A map per key, ordered by the JSON encoding of its keys.
pub struct MapState<K, V> {
    name: String,
    _marker: PhantomData<(K, V)>,
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> MapState<K, V> {
    /// A handle on map state `name`.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            _marker: PhantomData,
        }
    }

    /// The value under `key` for the current key.
    ///
    /// # Errors
    /// When the stored bytes do not decode as `V`.
    pub fn get(&self, key: &K) -> Result<Option<V>, String> {
        cache::map_get(&self.name, encode(key), |b| {
            b.map(|b| decode(&self.name, b)).transpose()
        })
    }

    /// Stores `value` under `key`.
    pub fn put(&self, key: &K, value: &V) {
        cache::map_write(&self.name, encode(key), Some(encode(value)));
    }

    /// Removes `key`.
    pub fn remove(&self, key: &K) {
        cache::map_write(&self.name, encode(key), None);
    }

    /// Every entry for the current key.
    ///
    /// # Errors
    /// When a stored entry does not decode as `(K, V)`.
    pub fn entries(&self) -> Result<Vec<(K, V)>, String> {
        let mut entries = Vec::new();
        let mut failed = None;
        cache::map_entries(&self.name, |k, v| {
            if failed.is_none() {
                match (decode(&self.name, k), decode(&self.name, v)) {
                    (Ok(k), Ok(v)) => entries.push((k, v)),
                    (Err(e), _) | (_, Err(e)) => failed = Some(e),
                }
            }
        });
        failed.map_or(Ok(entries), Err)
    }

    /// Removes every entry for the current key.
    pub fn clear(&self) {
        cache::map_clear(&self.name);
    }
}

impl<K, V> MapState<K, V>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned + 'static,
{
    /// Runs `f` on the value under `key` (`None` when absent) and stores
    /// what `f` leaves (`None` removes it); returns what `f` returns.
    ///
    /// As [`ValueState::update`], the value stays decoded in the guest's
    /// state cache until it is written to the host. `f` must not use this
    /// same map state.
    ///
    /// # Errors
    /// When the stored bytes do not decode as `V`; then `f` does not run.
    pub fn update<R>(&self, key: &K, f: impl FnOnce(&mut Option<V>) -> R) -> Result<R, String> {
        cache::map_update(&self.name, encode(key), f)
    }

    /// Removes `key` and returns its value, if it had one (`get` and
    /// `remove` in one, without a copy of the value).
    ///
    /// # Errors
    /// When the stored bytes do not decode as `V`; then the entry stays.
    pub fn take(&self, key: &K) -> Result<Option<V>, String> {
        cache::map_take(&self.name, encode(key))
    }
}
