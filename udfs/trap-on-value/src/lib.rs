//! Test UDF: passes JSON records through, but traps (panics) on a record
//! whose `value` equals the configured `trap_value`, and returns a
//! per-record error for one whose `value` equals `error_value`.

use weir_guest::prelude::*;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    trap_value: Option<f64>,
    error_value: Option<f64>,
    /// Allocate this many MiB on the trap record instead of panicking.
    allocate_mib: Option<usize>,
    /// Loop forever on the trap record instead of panicking.
    spin: bool,
    /// Trap only in the first this many attempts of the job (restarts
    /// count up), so a restarted job gets past the record; default: always.
    trap_attempts: Option<u32>,
    /// Write this many lines to stderr per record (`eprintln!`).
    eprint_lines: u32,
    /// Log this many warnings per record through the host's `logging`.
    log_lines: u32,
    /// Panic with this message (instead of the default one) on the trap
    /// record.
    panic_message: Option<String>,
    /// Sleep this long per record (`std::thread::sleep`).
    sleep_ms: Option<u64>,
    /// Add `wall_ms` (the guest's wall clock), `elapsed_ms` (its monotonic
    /// clock since `open`) and `random` (a hash under std's random keys)
    /// to each record.
    stamp: bool,
}

#[derive(Deserialize, Serialize)]
struct Row {
    value: f64,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

struct TrapOnValue(Config, std::time::Instant);

impl MapFunction for TrapOnValue {
    type Config = Config;
    type In<'a> = Row;
    type Out = Row;

    fn open(mut config: Config, ctx: &OpenContext) -> Result<Self, String> {
        if config.trap_attempts.is_some_and(|n| ctx.attempt >= n) {
            config.trap_value = None;
        }
        Ok(Self(config, std::time::Instant::now()))
    }

    fn map(&mut self, mut row: Row) -> Result<Row, String> {
        if let Some(ms) = self.0.sleep_ms {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        if self.0.stamp {
            use std::hash::BuildHasher;
            let wall = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let random =
                std::collections::hash_map::RandomState::new().hash_one(row.value.to_bits());
            row.rest.insert("wall_ms".into(), wall.into());
            row.rest.insert(
                "elapsed_ms".into(),
                (self.1.elapsed().as_millis() as u64).into(),
            );
            row.rest.insert("random".into(), random.to_string().into());
        }
        for i in 0..self.0.eprint_lines {
            eprintln!("trap-on-value: saw value {} ({i})", row.value);
        }
        for i in 0..self.0.log_lines {
            weir_guest::log_warn(&format!(
                "trap-on-value: value {}\nforged line {i}",
                row.value
            ));
        }
        if Some(row.value) == self.0.error_value {
            return Err(format!("refusing value {}", row.value));
        }
        if Some(row.value) == self.0.trap_value {
            if let Some(mib) = self.0.allocate_mib {
                let block = vec![1u8; mib << 20];
                std::hint::black_box(&block);
            } else if self.0.spin {
                let mut i: u64 = 0;
                loop {
                    i = std::hint::black_box(i.wrapping_add(1));
                }
            } else if let Some(message) = &self.0.panic_message {
                panic!("{message}");
            } else {
                panic!("trap-on-value: hit value {}", row.value);
            }
        }
        Ok(row)
    }
}

weir_guest::export!(map TrapOnValue);
