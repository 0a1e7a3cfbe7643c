//! Host side of the `weir:operator` imports.

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use weir_state::KeyedState;

use weir_state::TimerDomain;

use crate::bindings::weir::operator::types::TimeDomain;
use crate::bindings::weir::operator::{keyed_state, logging, timers};
use crate::bindings_v0_1::weir::operator as v0_1;
use crate::bindings_v0_2::weir::operator as v0_2;
use crate::bindings_v0_3::weir::operator as v0_3;

/// Per-instance data in the wasmtime `Store`.
pub(crate) struct HostState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    /// The guest's stderr (its tail goes into trap messages).
    pub(crate) stderr: crate::guest_output::GuestStderr,
    /// Guest log lines (stderr and `logging.log`), rate-limited.
    pub(crate) log: std::sync::Arc<std::sync::Mutex<crate::guest_output::GuestLog>>,
    pub(crate) state: Option<KeyedState>,
    pub(crate) memory_limit_bytes: usize,
    pub(crate) memory_limit_hit: bool,
    /// The size of the instance's largest linear memory (bytes): linear
    /// memories only grow.
    pub(crate) memory_bytes: usize,
    /// A host-side failure (state backend) that trapped the guest.
    pub(crate) host_error: Option<String>,
    /// The operator's current watermark (ms), as guests read it.
    pub(crate) watermark: i64,
    /// The guest's clocks (virtual unless granted).
    pub(crate) clock: crate::sandbox::GuestClock,
    /// The per-call deadline (a granted sleep may not be longer).
    pub(crate) call_timeout: std::time::Duration,
    /// What one call may return.
    pub(crate) output_limits: crate::output_limits::OutputLimits,
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wasmtime::ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit_bytes {
            self.memory_limit_hit = true;
            wasmtime::bail!(
                "memory limit of {} MiB exceeded (wanted {} bytes)",
                self.memory_limit_bytes >> 20,
                desired
            );
        }
        // A growth past the module's own maximum fails after this call.
        if maximum.is_none_or(|max| desired <= max) {
            self.memory_bytes = self.memory_bytes.max(desired);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

impl HostState {
    /// Runs a state operation, turning its failure into a trap.
    fn with_state<T>(
        &mut self,
        op: impl FnOnce(&mut KeyedState) -> Result<T, weir_state::StateError>,
    ) -> wasmtime::Result<T> {
        let Some(state) = self.state.as_mut() else {
            let message = "keyed state is not available: the operator's input is not keyed (use `partition: key_by`)";
            self.host_error = Some(message.to_string());
            wasmtime::bail!("{message}");
        };
        op(state).map_err(|e| {
            self.host_error = Some(e.to_string());
            wasmtime::Error::msg(e.to_string())
        })
    }
}

impl keyed_state::Host for HostState {
    fn set_current_key(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
        self.with_state(|s| s.set_current_key(&key))
    }

    fn value_get(&mut self, name: String) -> wasmtime::Result<Option<Vec<u8>>> {
        self.with_state(|s| s.value_get(&name))
    }

    fn value_set(&mut self, name: String, value: Vec<u8>) -> wasmtime::Result<()> {
        self.with_state(|s| s.value_set(&name, &value))
    }

    fn value_clear(&mut self, name: String) -> wasmtime::Result<()> {
        self.with_state(|s| s.value_clear(&name))
    }

    fn list_get(&mut self, name: String) -> wasmtime::Result<Vec<Vec<u8>>> {
        self.with_state(|s| s.list_get(&name))
    }

    fn list_add(&mut self, name: String, value: Vec<u8>) -> wasmtime::Result<()> {
        self.with_state(|s| s.list_add(&name, &value))
    }

    fn list_clear(&mut self, name: String) -> wasmtime::Result<()> {
        self.with_state(|s| s.list_clear(&name))
    }

    fn map_get(&mut self, name: String, map_key: Vec<u8>) -> wasmtime::Result<Option<Vec<u8>>> {
        self.with_state(|s| s.map_get(&name, &map_key))
    }

    fn map_put(&mut self, name: String, map_key: Vec<u8>, value: Vec<u8>) -> wasmtime::Result<()> {
        self.with_state(|s| s.map_put(&name, &map_key, &value))
    }

    fn map_remove(&mut self, name: String, map_key: Vec<u8>) -> wasmtime::Result<()> {
        self.with_state(|s| s.map_remove(&name, &map_key))
    }

    fn map_entries(&mut self, name: String) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.with_state(|s| s.map_entries(&name))
    }

    fn map_clear(&mut self, name: String) -> wasmtime::Result<()> {
        self.with_state(|s| s.map_clear(&name))
    }
}

impl logging::Host for HostState {
    fn log(&mut self, level: logging::Level, message: String) -> wasmtime::Result<()> {
        use crate::guest_output::Level;
        let level = match level {
            logging::Level::Trace => Level::Trace,
            logging::Level::Debug => Level::Debug,
            logging::Level::Info => Level::Info,
            logging::Level::Warn => Level::Warn,
            logging::Level::Error => Level::Error,
        };
        // A message of any size is logged at most cut to a line's length.
        let cut = message
            .char_indices()
            .nth(crate::guest_output::MAX_LINE_BYTES)
            .map_or(message.as_str(), |(at, _)| &message[..at]);
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .line(level, "log", cut);
        Ok(())
    }
}

impl crate::bindings::weir::operator::types::Host for HostState {}

/// The state layer's domain of a WIT time domain.
pub(crate) fn timer_domain(domain: TimeDomain) -> TimerDomain {
    match domain {
        TimeDomain::EventTime => TimerDomain::EventTime,
        TimeDomain::ProcessingTime => TimerDomain::ProcessingTime,
    }
}

impl timers::Host for HostState {
    fn current_watermark(&mut self) -> wasmtime::Result<i64> {
        Ok(self.watermark)
    }

    fn current_processing_time(&mut self) -> wasmtime::Result<i64> {
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }

    fn register_timer(&mut self, domain: TimeDomain, timestamp: i64) -> wasmtime::Result<()> {
        self.with_state(|s| s.register_timer(timer_domain(domain), timestamp))
    }

    fn delete_timer(&mut self, domain: TimeDomain, timestamp: i64) -> wasmtime::Result<()> {
        self.with_state(|s| s.delete_timer(timer_domain(domain), timestamp))
    }
}

/// The same host functions under an older `weir:operator` package.
macro_rules! older_imports {
    ($v:ident) => {
        impl $v::types::Host for HostState {}

        impl $v::keyed_state::Host for HostState {
            fn set_current_key(&mut self, key: Vec<u8>) -> wasmtime::Result<()> {
                keyed_state::Host::set_current_key(self, key)
            }
            fn value_get(&mut self, name: String) -> wasmtime::Result<Option<Vec<u8>>> {
                keyed_state::Host::value_get(self, name)
            }
            fn value_set(&mut self, name: String, value: Vec<u8>) -> wasmtime::Result<()> {
                keyed_state::Host::value_set(self, name, value)
            }
            fn value_clear(&mut self, name: String) -> wasmtime::Result<()> {
                keyed_state::Host::value_clear(self, name)
            }
            fn list_get(&mut self, name: String) -> wasmtime::Result<Vec<Vec<u8>>> {
                keyed_state::Host::list_get(self, name)
            }
            fn list_add(&mut self, name: String, value: Vec<u8>) -> wasmtime::Result<()> {
                keyed_state::Host::list_add(self, name, value)
            }
            fn list_clear(&mut self, name: String) -> wasmtime::Result<()> {
                keyed_state::Host::list_clear(self, name)
            }
            fn map_get(
                &mut self,
                name: String,
                map_key: Vec<u8>,
            ) -> wasmtime::Result<Option<Vec<u8>>> {
                keyed_state::Host::map_get(self, name, map_key)
            }
            fn map_put(
                &mut self,
                name: String,
                map_key: Vec<u8>,
                value: Vec<u8>,
            ) -> wasmtime::Result<()> {
                keyed_state::Host::map_put(self, name, map_key, value)
            }
            fn map_remove(&mut self, name: String, map_key: Vec<u8>) -> wasmtime::Result<()> {
                keyed_state::Host::map_remove(self, name, map_key)
            }
            fn map_entries(&mut self, name: String) -> wasmtime::Result<Vec<(Vec<u8>, Vec<u8>)>> {
                keyed_state::Host::map_entries(self, name)
            }
            fn map_clear(&mut self, name: String) -> wasmtime::Result<()> {
                keyed_state::Host::map_clear(self, name)
            }
        }

        impl $v::logging::Host for HostState {
            fn log(&mut self, level: $v::logging::Level, message: String) -> wasmtime::Result<()> {
                use $v::logging::Level as Old;
                let level = match level {
                    Old::Trace => logging::Level::Trace,
                    Old::Debug => logging::Level::Debug,
                    Old::Info => logging::Level::Info,
                    Old::Warn => logging::Level::Warn,
                    Old::Error => logging::Level::Error,
                };
                logging::Host::log(self, level, message)
            }
        }
    };
}

older_imports!(v0_1);
older_imports!(v0_2);
older_imports!(v0_3);

/// The timers of an older `weir:operator` package (0.2.0 on).
macro_rules! older_timers {
    ($v:ident) => {
        impl $v::timers::Host for HostState {
            fn current_watermark(&mut self) -> wasmtime::Result<i64> {
                timers::Host::current_watermark(self)
            }

            fn current_processing_time(&mut self) -> wasmtime::Result<i64> {
                timers::Host::current_processing_time(self)
            }

            fn register_timer(
                &mut self,
                domain: $v::types::TimeDomain,
                timestamp: i64,
            ) -> wasmtime::Result<()> {
                timers::Host::register_timer(self, domain.into(), timestamp)
            }

            fn delete_timer(
                &mut self,
                domain: $v::types::TimeDomain,
                timestamp: i64,
            ) -> wasmtime::Result<()> {
                timers::Host::delete_timer(self, domain.into(), timestamp)
            }
        }

        /// The same enum under the older package, both ways (the host
        /// fires timers with the current type).
        impl From<$v::types::TimeDomain> for TimeDomain {
            fn from(domain: $v::types::TimeDomain) -> Self {
                match domain {
                    $v::types::TimeDomain::EventTime => TimeDomain::EventTime,
                    $v::types::TimeDomain::ProcessingTime => TimeDomain::ProcessingTime,
                }
            }
        }

        impl From<TimeDomain> for $v::types::TimeDomain {
            fn from(domain: TimeDomain) -> Self {
                match domain {
                    TimeDomain::EventTime => $v::types::TimeDomain::EventTime,
                    TimeDomain::ProcessingTime => $v::types::TimeDomain::ProcessingTime,
                }
            }
        }
    };
}

older_timers!(v0_2);
older_timers!(v0_3);
