//! Key groups: the unit in which keyed state is partitioned and
//! redistributed.
//!
//! A key's group is `murmur3_32(key bytes, seed 0) % max_parallelism`, and
//! subtask `i` of `p` owns the contiguous range of groups computed as in
//! Apache Flink's `KeyGroupRangeAssignment`, so that rescaling from `p` to
//! `p'` moves whole groups between subtasks.

/// Index of a key group, `0..max_parallelism`.
pub type KeyGroup = u16;

/// The default number of key groups (Flink's default for small jobs).
pub const DEFAULT_MAX_PARALLELISM: u16 = 128;

/// Upper bound on `max_parallelism` (Flink's limit, 2^15).
pub const MAX_MAX_PARALLELISM: u16 = 32768;

/// MurmurHash3, x86 32-bit variant (Austin Appleby, public domain reference
/// `MurmurHash3_x86_32`).
pub fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h = seed;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    let mut k: u32 = 0;
    for (i, byte) in tail.iter().enumerate() {
        k |= u32::from(*byte) << (8 * i);
    }
    if !tail.is_empty() {
        h ^= k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// The key group of `key` among `max_parallelism` groups.
///
/// # Panics
/// When `max_parallelism` is 0.
pub fn key_group_of(key: &[u8], max_parallelism: u16) -> KeyGroup {
    (murmur3_32(key, 0) % u32::from(max_parallelism)) as KeyGroup
}

/// The subtask (of `parallelism`) that owns `group`.
pub fn subtask_for_key_group(group: KeyGroup, max_parallelism: u16, parallelism: u32) -> u32 {
    u32::from(group) * parallelism / u32::from(max_parallelism)
}

/// A contiguous, inclusive range of key groups owned by one subtask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct KeyGroupRange {
    /// First group in the range.
    pub start: KeyGroup,
    /// Last group in the range (inclusive).
    pub end: KeyGroup,
}

impl KeyGroupRange {
    /// Every group, `0..=max_parallelism-1`.
    pub fn all(max_parallelism: u16) -> Self {
        Self {
            start: 0,
            end: max_parallelism - 1,
        }
    }

    /// The range owned by subtask `index` of `parallelism`.
    ///
    /// # Panics
    /// When `parallelism` is 0, exceeds `max_parallelism`, or `index >= parallelism`.
    pub fn for_subtask(index: u32, parallelism: u32, max_parallelism: u16) -> Self {
        assert!(
            parallelism > 0 && parallelism <= u32::from(max_parallelism) && index < parallelism
        );
        let max = u32::from(max_parallelism);
        let start = (index * max).div_ceil(parallelism);
        let end = ((index + 1) * max - 1) / parallelism;
        Self {
            start: start as KeyGroup,
            end: end as KeyGroup,
        }
    }

    /// True when `group` is in the range.
    pub fn contains(&self, group: KeyGroup) -> bool {
        self.start <= group && group <= self.end
    }

    /// Number of groups in the range.
    pub fn len(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Always false: a range holds at least one group.
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur3_matches_reference_vectors() {
        // Vectors from the reference implementation's test suite.
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"hello", 0), 0x248b_fa47);
        assert_eq!(murmur3_32(b"hello, world", 0), 0x149b_bb7f);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0),
            0x2e4f_f723
        );
    }

    #[test]
    fn ranges_partition_all_groups_without_gaps() {
        for max in [1u16, 7, 128, 1000] {
            for p in 1..=u32::from(max).min(17) {
                let mut next = 0u32;
                for i in 0..p {
                    let r = KeyGroupRange::for_subtask(i, p, max);
                    assert_eq!(u32::from(r.start), next, "max {max} p {p} i {i}");
                    next = u32::from(r.end) + 1;
                    for g in r.start..=r.end {
                        assert_eq!(
                            subtask_for_key_group(g, max, p),
                            i,
                            "group {g} max {max} p {p}"
                        );
                    }
                }
                assert_eq!(next, u32::from(max));
            }
        }
    }

    #[test]
    fn key_groups_are_stable_and_in_range() {
        let g = key_group_of(b"realKnownCause/nyc_taxi", 128);
        assert_eq!(g, key_group_of(b"realKnownCause/nyc_taxi", 128));
        assert!(g < 128);
        // Distinct keys spread over the groups.
        let groups: std::collections::HashSet<_> = (0..1000)
            .map(|i| key_group_of(format!("k{i}").as_bytes(), 128))
            .collect();
        assert!(groups.len() > 120, "only {} groups used", groups.len());
    }
}
