//! Keyed state of a chosen size, for benchmarks of large state: for each
//! record, stores under its key a blob of `value_bytes` pseudo-random hex
//! characters derived from the record (so RocksDB's LZ4 cannot shrink it),
//! replacing the key's earlier blob. Emits nothing.
//!
//! Config: `{"value_bytes": 1000}` (the default).

use weir_guest::prelude::*;

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// Characters stored per key.
    value_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self { value_bytes: 1000 }
    }
}

struct KeyedBlob {
    value_bytes: usize,
    blob: ValueState<String>,
}

/// FNV-1a (Fowler, Noll, Vo) of the record: the blob's seed.
fn seed(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// `len` hex characters from xorshift64 (Marsaglia 2003) seeded by `seed`.
fn hex_blob(mut state: u64, len: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    state |= 1;
    let mut out = String::with_capacity(len);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        for shift in (0..64).step_by(4).take(len - out.len()) {
            out.push(char::from(HEX[((state >> shift) & 15) as usize]));
        }
    }
    out
}

impl KeyedProcessFunction for KeyedBlob {
    type Config = Config;
    type In<'a> = Raw;
    type Out = Raw;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Self {
            value_bytes: config.value_bytes,
            blob: ValueState::new("blob"),
        })
    }

    fn process(
        &mut self,
        _key: &[u8],
        record: Raw,
        _out: &mut Collector<'_, Raw>,
    ) -> Result<(), String> {
        self.blob.set(&hex_blob(seed(&record.0), self.value_bytes));
        Ok(())
    }
}

weir_guest::export!(keyed_process KeyedBlob);
