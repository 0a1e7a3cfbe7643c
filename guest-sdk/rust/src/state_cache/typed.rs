//! Decoded values in the cache: what `update` and `take` keep, encoded
//! only when written to the host or read as bytes.

use std::any::Any;
use std::borrow::Cow;

use serde::{Serialize, de::DeserializeOwned};

use crate::state::{decode, encode};

/// A value given to the cache by a typed handle's `update` (or `take`):
/// kept decoded, encoded only when it is written to the host or read as
/// bytes.
pub(super) trait TypedValue {
    fn encode(&self) -> Vec<u8>;
    fn size(&self) -> usize;
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// A decoded value and its estimated encoded size in bytes.
pub(super) struct Typed<T> {
    value: T,
    size: usize,
}

impl<T: Serialize + 'static> Typed<T> {
    /// `value`, whose size is measured (its JSON length) on every
    /// [`MEASURE_EVERY`]th store of the cache and otherwise carried over
    /// from the value it replaces (`before` bytes; at least `T`'s own
    /// size): a value that grows is counted at most a few stores late,
    /// and most stores cost no encoding.
    pub(super) fn boxed(value: T, before: usize, measure: bool) -> Val {
        let size = if measure {
            encoded_len(&value)
        } else {
            before.max(size_of::<T>())
        };
        Val::Typed(Box::new(Typed { value, size }))
    }
}

/// How often a decoded value's size is measured: every this many stores.
pub(super) const MEASURE_EVERY: u32 = 8;

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
pub(super) enum Val {
    Bytes(Vec<u8>),
    Typed(Box<dyn TypedValue>),
}

impl Val {
    pub(super) fn size(&self) -> usize {
        match self {
            Val::Bytes(b) => b.len(),
            Val::Typed(t) => t.size(),
        }
    }

    pub(super) fn bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Val::Bytes(b) => Cow::Borrowed(b),
            Val::Typed(t) => Cow::Owned(t.encode()),
        }
    }

    /// The value as a `T`: moved out when it is one, decoded otherwise.
    ///
    /// # Errors
    /// When its bytes do not decode as `T` (the value is handed back).
    pub(super) fn into_typed<T: DeserializeOwned + 'static>(
        self,
        name: &str,
    ) -> Result<T, (Val, String)> {
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
