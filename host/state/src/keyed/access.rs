//! Value, list and map state of the current key: the typed operations
//! over `KeyedState`'s storage keys and write-back buffer.

use super::*;

impl KeyedState {
    /// Value state `name` of the current key.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn value_get(&mut self, name: &str) -> Result<Option<Vec<u8>>, StateError> {
        let key = self.storage_key(name, StateKind::Value, &[])?;
        self.read(&key)
    }

    /// Sets value state `name` of the current key.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn value_set(&mut self, name: &str, value: &[u8]) -> Result<(), StateError> {
        let key = self.storage_key(name, StateKind::Value, &[])?;
        self.write(key, Some(value))?;
        Ok(())
    }

    /// Clears value state `name` of the current key.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn value_clear(&mut self, name: &str) -> Result<(), StateError> {
        let key = self.storage_key(name, StateKind::Value, &[])?;
        self.write(key, None)?;
        Ok(())
    }

    /// The elements of list state `name`, in insertion order.
    ///
    /// A list is stored as one entry: a sequence of `u32` big-endian length
    /// prefixed elements.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure, corrupt list.
    pub fn list_get(&mut self, name: &str) -> Result<Vec<Vec<u8>>, StateError> {
        let key = self.storage_key(name, StateKind::List, &[])?;
        match self.read(&key)? {
            Some(bytes) => {
                decode_list(&bytes).ok_or_else(|| StateError::CorruptList(name.to_string()))
            }
            None => Ok(Vec::new()),
        }
    }

    /// Appends `value` to list state `name`.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn list_add(&mut self, name: &str, value: &[u8]) -> Result<(), StateError> {
        let key = self.storage_key(name, StateKind::List, &[])?;
        let mut bytes = self.read(&key)?.unwrap_or_default();
        bytes.extend_from_slice(&(value.len() as u32).to_be_bytes());
        bytes.extend_from_slice(value);
        self.write(key, Some(&bytes))?;
        Ok(())
    }

    /// Clears list state `name`.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn list_clear(&mut self, name: &str) -> Result<(), StateError> {
        let key = self.storage_key(name, StateKind::List, &[])?;
        self.write(key, None)?;
        Ok(())
    }

    /// Entry `map_key` of map state `name`.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn map_get(&mut self, name: &str, map_key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let key = self.storage_key(name, StateKind::Map, map_key)?;
        self.read(&key)
    }

    /// Sets entry `map_key` of map state `name`.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn map_put(&mut self, name: &str, map_key: &[u8], value: &[u8]) -> Result<(), StateError> {
        let key = self.storage_key(name, StateKind::Map, map_key)?;
        self.write(key, Some(value))?;
        Ok(())
    }

    /// Removes entry `map_key` of map state `name`.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn map_remove(&mut self, name: &str, map_key: &[u8]) -> Result<(), StateError> {
        let key = self.storage_key(name, StateKind::Map, map_key)?;
        self.write(key, None)?;
        Ok(())
    }

    /// Every entry of map state `name`, ordered by map key bytes.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn map_entries(&mut self, name: &str) -> Result<Vec<Entry>, StateError> {
        let prefix = self.storage_key(name, StateKind::Map, &[])?;
        self.flush()?;
        let entries = self.backend.scan_prefix(&prefix)?;
        Ok(entries
            .into_iter()
            .map(|(k, v)| (k[prefix.len()..].to_vec(), v))
            .collect())
    }

    /// Removes every entry of map state `name`.
    ///
    /// # Errors
    /// No current key, kind mismatch, storage failure.
    pub fn map_clear(&mut self, name: &str) -> Result<(), StateError> {
        let prefix = self.storage_key(name, StateKind::Map, &[])?;
        self.flush()?;
        self.backend.delete_prefix(&prefix)
    }
}

pub(super) fn decode_list(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut items = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_first_chunk::<4>()?;
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return None;
        }
        items.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    Some(items)
}
