//! Byte strings compared and hashed a word at a time.
//!
//! Inside the guest, `[u8]` equality and ordering call wasi-libc's
//! `memcmp`, which compares one byte per loop iteration. Keys of keyed
//! state (a series path, a JSON map key) share long prefixes, so the state
//! cache compares them eight bytes at a time instead: big-endian words
//! order like the bytes they hold.

use std::cmp::Ordering;
use std::hash::{BuildHasherDefault, Hash, Hasher};

/// An owned byte string with word-at-a-time `Eq`, `Ord` and `Hash`; orders
/// like `[u8]` (lexicographically, a prefix first).
#[derive(Clone, Debug, Default)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl PartialEq for Bytes {
    fn eq(&self, other: &Self) -> bool {
        eq(&self.0, &other.0)
    }
}

impl Eq for Bytes {}

impl PartialOrd for Bytes {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Bytes {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp(&self.0, &other.0)
    }
}

impl Hash for Bytes {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(hash(&self.0));
    }
}

/// Hashes a [`Bytes`] by the word hash it already computed.
#[derive(Default)]
pub(crate) struct WordHasher(u64);

impl Hasher for WordHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = mix(self.0, hash(bytes));
    }
    fn write_u64(&mut self, word: u64) {
        self.0 = mix(self.0, word);
    }
}

/// Builds [`WordHasher`]s.
pub(crate) type WordHash = BuildHasherDefault<WordHasher>;

/// `a == b`.
pub(crate) fn eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let (aw, ar) = a.as_chunks::<8>();
    let (bw, br) = b.as_chunks::<8>();
    aw.iter()
        .zip(bw)
        .all(|(x, y)| u64::from_ne_bytes(*x) == u64::from_ne_bytes(*y))
        && ar.iter().zip(br).all(|(x, y)| x == y)
}

/// `a.cmp(b)` for byte slices.
pub(crate) fn cmp(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    let (aw, _) = a[..n].as_chunks::<8>();
    let (bw, _) = b[..n].as_chunks::<8>();
    for (x, y) in aw.iter().zip(bw) {
        let (x, y) = (u64::from_be_bytes(*x), u64::from_be_bytes(*y));
        if x != y {
            return x.cmp(&y);
        }
    }
    for i in aw.len() * 8..n {
        if a[i] != b[i] {
            return a[i].cmp(&b[i]);
        }
    }
    a.len().cmp(&b.len())
}

/// FxHash's step (rustc's hasher): rotate, xor, multiply.
fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

/// A hash of `bytes`, a word at a time, length included.
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    let (words, rest) = bytes.as_chunks::<8>();
    let mut h = mix(0, bytes.len() as u64);
    for w in words {
        h = mix(h, u64::from_le_bytes(*w));
    }
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    mix(h, u64::from_le_bytes(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_order_and_compare_like_bytes() {
        let samples: Vec<&[u8]> = vec![
            b"",
            b"a",
            b"ab",
            b"abcdefgh",
            b"abcdefgh\0",
            b"abcdefgi",
            b"abcdefghabcdefgh",
            b"abcdefghabcdefgg",
            b"\xff",
            b"1396310400000",
            b"1396310700000",
            b"-1",
        ];
        for a in &samples {
            for b in &samples {
                assert_eq!(cmp(a, b), a.cmp(b), "{a:?} {b:?}");
                assert_eq!(eq(a, b), a == b, "{a:?} {b:?}");
                if a == b {
                    assert_eq!(hash(a), hash(b));
                }
            }
        }
        assert_ne!(hash(b"a"), hash(b"a\0"));
    }
}
