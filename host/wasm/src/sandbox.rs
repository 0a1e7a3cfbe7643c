//! WASI clocks and randomness as a guest sees them: deterministic
//! stand-ins unless the operator's job entry grants the real ones
//! (`grants: [wall-clock, random]`), and sleeps that cannot outlast the
//! call deadline.
//!
//! Without the `wall-clock` grant a guest's clocks are virtual: the
//! monotonic clock starts at 0 and only moves when the guest sleeps (a
//! sleep of any length returns at once and advances it by that length),
//! and the wall clock reads [`VIRTUAL_EPOCH_S`] (2000-01-01T00:00:00Z)
//! plus the monotonic clock. With the grant the clocks are the host's, and
//! a single sleep longer than the call deadline is refused with a trap
//! (a shorter one runs; the epoch deadline then interrupts the guest when
//! it runs on), so a blocking call can never hold a task past its
//! deadline by more than one deadline.
//!
//! Without the `random` grant `wasi:random` is a ChaCha-based `StdRng`
//! seeded from the instance's name (`operator[subtask]`): the same bytes
//! on every run. With it, the host's randomness.
//!
//! The monotonic clock's `subscribe-duration` / `subscribe-instant` are
//! Weir's (shadowing wasmtime-wasi's), the rest of WASI is wasmtime-wasi's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use wasmtime::component::Resource;
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};

use weir_types::jobgraph::Grant;

use crate::host::HostState;

/// What the virtual wall clock reads when a guest starts, in seconds
/// since the Unix epoch (2000-01-01T00:00:00Z).
pub const VIRTUAL_EPOCH_S: u64 = 946_684_800;

/// The capabilities of one instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grants {
    /// [`Grant::WallClock`].
    pub wall_clock: bool,
    /// [`Grant::Random`].
    pub random: bool,
}

impl Grants {
    /// The grants a job entry lists.
    pub fn of(list: &[Grant]) -> Self {
        Self {
            wall_clock: list.contains(&Grant::WallClock),
            random: list.contains(&Grant::Random),
        }
    }
}

/// One instance's clocks (cheap to clone; clones share the virtual time).
#[derive(Debug, Clone)]
pub(crate) struct GuestClock {
    /// `None`: the host's clocks (granted).
    virtual_ns: Option<Arc<AtomicU64>>,
    start: Instant,
}

impl GuestClock {
    pub(crate) fn new(grants: Grants) -> Self {
        Self {
            virtual_ns: (!grants.wall_clock).then(|| Arc::new(AtomicU64::new(0))),
            start: Instant::now(),
        }
    }

    /// Whether the clocks are the host's.
    fn is_real(&self) -> bool {
        self.virtual_ns.is_none()
    }

    fn monotonic_ns(&self) -> u64 {
        match &self.virtual_ns {
            Some(ns) => ns.load(Ordering::Relaxed),
            None => u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX),
        }
    }

    /// Moves virtual time on by `ns` (a guest's sleep).
    fn advance(&self, ns: u64) {
        if let Some(v) = &self.virtual_ns {
            let _ = v.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(ns))
            });
        }
    }
}

impl HostMonotonicClock for GuestClock {
    fn resolution(&self) -> u64 {
        1
    }

    fn now(&self) -> u64 {
        self.monotonic_ns()
    }
}

/// The wall clock of one instance.
#[derive(Debug, Clone)]
pub(crate) struct GuestWallClock(pub(crate) GuestClock);

impl HostWallClock for GuestWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        if self.0.is_real() {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
        } else {
            Duration::from_secs(VIRTUAL_EPOCH_S) + Duration::from_nanos(self.0.monotonic_ns())
        }
    }
}

/// The deterministic stand-in for `wasi:random` of the instance `name`.
pub(crate) fn seeded_random(name: &str) -> rand::rngs::StdRng {
    use sha2::{Digest, Sha256};
    let seed: [u8; 32] = Sha256::digest(name.as_bytes()).into();
    rand::rngs::StdRng::from_seed(seed)
}

/// A pollable that is ready at once (a virtual sleep).
struct Ready;

#[async_trait::async_trait]
impl Pollable for Ready {
    async fn ready(&mut self) {}
}

/// A real sleep until `deadline` (granted clocks).
struct Sleep(tokio::time::Instant);

#[async_trait::async_trait]
impl Pollable for Sleep {
    async fn ready(&mut self) {
        tokio::time::sleep_until(self.0).await;
    }
}

impl HostState {
    fn subscribe_ns(&mut self, ns: u64) -> wasmtime::Result<Resource<DynPollable>> {
        if !self.clock.is_real() {
            self.clock.advance(ns);
            let ready = self.table.push(Ready)?;
            return subscribe(&mut self.table, ready);
        }
        let wanted = Duration::from_nanos(ns);
        if wanted > self.call_timeout {
            self.host_error = Some(format!(
                "a blocking sleep of {} ms is longer than the call deadline (call_timeout_ms {})",
                wanted.as_millis(),
                self.call_timeout.as_millis()
            ));
            wasmtime::bail!("sleep longer than the call deadline");
        }
        let deadline = tokio::time::Instant::now() + wanted;
        let sleep = self.table.push(Sleep(deadline))?;
        subscribe(&mut self.table, sleep)
    }
}

impl monotonic_clock::Host for HostState {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(self.clock.monotonic_ns())
    }

    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1)
    }

    fn subscribe_instant(&mut self, when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        let now = self.clock.monotonic_ns();
        self.subscribe_ns(when.saturating_sub(now))
    }

    fn subscribe_duration(&mut self, duration: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.subscribe_ns(duration)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clocks_move_only_when_the_guest_sleeps() {
        let clock = GuestClock::new(Grants::default());
        let wall = GuestWallClock(clock.clone());
        assert_eq!(clock.now(), 0);
        assert_eq!(wall.now(), Duration::from_secs(VIRTUAL_EPOCH_S));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), 0);
        clock.advance(300_000_000_000);
        assert_eq!(clock.now(), 300_000_000_000);
        assert_eq!(wall.now(), Duration::from_secs(VIRTUAL_EPOCH_S + 300));
    }

    #[test]
    fn granted_clocks_are_the_hosts() {
        let clock = GuestClock::new(Grants {
            wall_clock: true,
            random: false,
        });
        let wall = GuestWallClock(clock.clone());
        let host = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        assert!(wall.now().abs_diff(host) < Duration::from_secs(5));
        let before = clock.now();
        std::thread::sleep(Duration::from_millis(5));
        assert!(clock.now() >= before + 5_000_000);
    }

    #[test]
    fn seeded_randomness_is_the_same_per_instance_and_differs_between_instances() {
        use rand::Rng;
        let a: u64 = seeded_random("op[0]").next_u64();
        assert_eq!(a, seeded_random("op[0]").next_u64());
        assert_ne!(a, seeded_random("op[1]").next_u64());
    }

    #[test]
    fn grants_are_read_from_the_job_entry_names() {
        let list: Vec<Grant> = serde_json::from_str(r#"["wall-clock", "random"]"#).unwrap();
        assert_eq!(
            Grants::of(&list),
            Grants {
                wall_clock: true,
                random: true
            }
        );
        assert!(serde_json::from_str::<Vec<Grant>>(r#"["network"]"#).is_err());
    }
}
