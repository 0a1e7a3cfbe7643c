//! Write Weir stream operators in Rust and compile them to WebAssembly
//! components for `wasm32-wasip2`.
//!
//! A user function is a plain trait impl with typed values (anything that is
//! `serde` serialisable, decoded from and encoded to JSON), typed state
//! handles and typed configuration, exported with one macro:
//!
//! ```ignore
//! use weir_guest::prelude::*;
//!
//! #[derive(Deserialize)]
//! struct Reading { value: f64 }
//!
//! struct Double;
//! impl MapFunction for Double {
//!     type Config = ();
//!     type In<'a> = Reading;
//!     type Out = f64;
//!     fn open(_config: (), _ctx: &OpenContext) -> Result<Self, String> { Ok(Double) }
//!     fn map(&mut self, r: Reading) -> Result<f64, String> { Ok(r.value * 2.0) }
//! }
//! weir_guest::export!(map Double);
//! ```
//!
//! An input type may borrow from the record (`type In<'a> = Bid<'a>` with
//! `&'a str` fields), and [`RawRef`] hands over the record's bytes without
//! parsing them: a function that needs one or two fields of a large record
//! can read them with a pull parser and stop there, and emit pieces of the
//! input with [`Collector::emit_bytes_with`].
//!
//! Four kinds of function are supported: [`MapFunction`] (one in, one out),
//! [`FilterFunction`] (keep or drop), [`FlatMapFunction`] (one in, any number
//! out) and [`KeyedProcessFunction`] (keyed, with [`ValueState`],
//! [`ListState`] and [`MapState`] held by the host). Build with
//! `cargo build --release --target wasm32-wasip2`; the result is a component
//! implementing the `weir:operator/packed-operator` world (the
//! `operator` world plus packed batches) (see `wit/` in the Weir
//! repository).
//!
//! A function's `Err(message)` for one record becomes a per-record error that
//! the host counts and logs with the record's origin; it does not stop the
//! job. A panic traps the component, which fails the task.

pub mod adapters;
mod data;
mod state;
pub mod state_cache;
mod words;

pub use data::{Decode, Encode, Raw, RawRef};
pub use state::{ListState, MapState, ValueState};

/// Bindings generated from the `weir:operator` WIT package. Not for direct use.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "weir:operator/packed-operator",
        pub_export_macro: true,
        export_macro_name: "__export_packed_operator_world",
        default_bindings_module: "weir_guest::bindings",
    });
}

pub use bindings::weir::operator::types::{StreamRecord, TimeDomain};

/// Event time and per-key timers (`weir:operator/timers`, since 0.2.0).
///
/// Timers belong to the current key: call these from
/// [`KeyedProcessFunction::process`] or [`KeyedProcessFunction::on_timer`].
/// Registering the same timestamp twice for a key leaves one timer. When a
/// timer fires, the host calls [`KeyedProcessFunction::on_timer`].
pub mod timers {
    use crate::TimeDomain;
    use crate::bindings::weir::operator::timers as wit;

    /// The operator's current watermark (ms since the epoch); `i64::MIN`
    /// before the first one. A record at or below it is late.
    pub fn current_watermark() -> i64 {
        wit::current_watermark()
    }

    /// The wall clock (ms since the epoch).
    pub fn current_processing_time() -> i64 {
        wit::current_processing_time()
    }

    /// Fires `on_timer` once the watermark reaches `timestamp` (ms).
    pub fn register_event_time_timer(timestamp: i64) {
        crate::state_cache::sync_host();
        wit::register_timer(TimeDomain::EventTime, timestamp);
    }

    /// Fires `on_timer` once the wall clock reaches `timestamp` (ms).
    pub fn register_processing_time_timer(timestamp: i64) {
        crate::state_cache::sync_host();
        wit::register_timer(TimeDomain::ProcessingTime, timestamp);
    }

    /// Deletes the current key's event-time timer at `timestamp`, if any.
    pub fn delete_event_time_timer(timestamp: i64) {
        crate::state_cache::sync_host();
        wit::delete_timer(TimeDomain::EventTime, timestamp);
    }

    /// Deletes the current key's processing-time timer at `timestamp`, if any.
    pub fn delete_processing_time_timer(timestamp: i64) {
        crate::state_cache::sync_host();
        wit::delete_timer(TimeDomain::ProcessingTime, timestamp);
    }
}

/// What `open` receives besides the typed configuration.
#[derive(Debug, Clone)]
pub struct OpenContext {
    /// The operator's id in the job file.
    pub operator_id: String,
    /// 0-based index of this subtask.
    pub subtask_index: u32,
    /// Number of parallel subtasks of this operator.
    pub parallelism: u32,
    /// Number of key groups (the job's max parallelism).
    pub max_parallelism: u32,
    /// 0 on the first run; incremented on every restart.
    pub attempt: u32,
}

/// One function applied to every record: exactly one output per input.
pub trait MapFunction: Sized {
    /// Typed operator configuration, decoded from the job file's `config`.
    type Config: serde::de::DeserializeOwned;
    /// Input value type; may borrow from the record's bytes (`'a`).
    type In<'a>: Decode<'a>;
    /// Output value type.
    type Out: Encode;
    /// Creates the function for one subtask.
    ///
    /// # Errors
    /// An `Err` fails the task with that message.
    fn open(config: Self::Config, ctx: &OpenContext) -> Result<Self, String>;
    /// This subtask's operator state (not scoped to a key) at checkpoint
    /// `checkpoint_id`, as a list of items (`weir:operator/checkpointed`,
    /// since WIT 0.3.0). When the job resumes at another parallelism the
    /// items of all subtasks are split evenly over the new ones, so make
    /// each item movable on its own. The default has no state.
    ///
    /// # Errors
    /// An `Err` declines the checkpoint; the job goes on.
    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>, String> {
        let _ = checkpoint_id;
        Ok(Vec::new())
    }
    /// Takes back the items of a restored checkpoint assigned to this
    /// subtask, after `open` and before the first record. The default
    /// ignores them.
    ///
    /// # Errors
    /// An `Err` fails the task.
    fn restore_state(&mut self, items: Vec<Vec<u8>>) -> Result<(), String> {
        let _ = items;
        Ok(())
    }
    /// Maps one value.
    ///
    /// # Errors
    /// An `Err` is reported as a per-record error; the record produces no output.
    fn map(&mut self, value: Self::In<'_>) -> Result<Self::Out, String>;
}

/// Keeps the records for which `filter` returns `true`, unchanged.
pub trait FilterFunction: Sized {
    /// Typed operator configuration, decoded from the job file's `config`.
    type Config: serde::de::DeserializeOwned;
    /// Input value type (the record itself passes through as bytes); may
    /// borrow from the record's bytes (`'a`).
    type In<'a>: Decode<'a>;
    /// Creates the function for one subtask.
    ///
    /// # Errors
    /// An `Err` fails the task with that message.
    fn open(config: Self::Config, ctx: &OpenContext) -> Result<Self, String>;
    /// This subtask's operator state (not scoped to a key) at checkpoint
    /// `checkpoint_id`, as a list of items (`weir:operator/checkpointed`,
    /// since WIT 0.3.0). When the job resumes at another parallelism the
    /// items of all subtasks are split evenly over the new ones, so make
    /// each item movable on its own. The default has no state.
    ///
    /// # Errors
    /// An `Err` declines the checkpoint; the job goes on.
    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>, String> {
        let _ = checkpoint_id;
        Ok(Vec::new())
    }
    /// Takes back the items of a restored checkpoint assigned to this
    /// subtask, after `open` and before the first record. The default
    /// ignores them.
    ///
    /// # Errors
    /// An `Err` fails the task.
    fn restore_state(&mut self, items: Vec<Vec<u8>>) -> Result<(), String> {
        let _ = items;
        Ok(())
    }
    /// Decides whether to keep one value.
    ///
    /// # Errors
    /// An `Err` is reported as a per-record error; the record is dropped.
    fn filter(&mut self, value: &Self::In<'_>) -> Result<bool, String>;
}

/// One function that emits any number of outputs per input.
pub trait FlatMapFunction: Sized {
    /// Typed operator configuration, decoded from the job file's `config`.
    type Config: serde::de::DeserializeOwned;
    /// Input value type; may borrow from the record's bytes (`'a`).
    type In<'a>: Decode<'a>;
    /// Output value type.
    type Out: Encode;
    /// Creates the function for one subtask.
    ///
    /// # Errors
    /// An `Err` fails the task with that message.
    fn open(config: Self::Config, ctx: &OpenContext) -> Result<Self, String>;
    /// This subtask's operator state (not scoped to a key) at checkpoint
    /// `checkpoint_id`, as a list of items (`weir:operator/checkpointed`,
    /// since WIT 0.3.0). When the job resumes at another parallelism the
    /// items of all subtasks are split evenly over the new ones, so make
    /// each item movable on its own. The default has no state.
    ///
    /// # Errors
    /// An `Err` declines the checkpoint; the job goes on.
    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>, String> {
        let _ = checkpoint_id;
        Ok(Vec::new())
    }
    /// Takes back the items of a restored checkpoint assigned to this
    /// subtask, after `open` and before the first record. The default
    /// ignores them.
    ///
    /// # Errors
    /// An `Err` fails the task.
    fn restore_state(&mut self, items: Vec<Vec<u8>>) -> Result<(), String> {
        let _ = items;
        Ok(())
    }
    /// Processes one value, emitting through `out`.
    ///
    /// # Errors
    /// An `Err` is reported as a per-record error; what was emitted before
    /// the error is kept.
    fn flat_map(
        &mut self,
        value: Self::In<'_>,
        out: &mut Collector<'_, Self::Out>,
    ) -> Result<(), String>;
}

/// A function over a keyed stream (after `key_by`) with keyed state.
///
/// State handles ([`ValueState`], [`ListState`], [`MapState`]) are scoped to
/// the key of the record being processed; the host holds the state.
pub trait KeyedProcessFunction: Sized {
    /// Typed operator configuration, decoded from the job file's `config`.
    type Config: serde::de::DeserializeOwned;
    /// Input value type; may borrow from the record's bytes (`'a`).
    type In<'a>: Decode<'a>;
    /// Output value type.
    type Out: Encode;
    /// Creates the function for one subtask.
    ///
    /// # Errors
    /// An `Err` fails the task with that message.
    fn open(config: Self::Config, ctx: &OpenContext) -> Result<Self, String>;
    /// This subtask's operator state (not scoped to a key) at checkpoint
    /// `checkpoint_id`, as a list of items (`weir:operator/checkpointed`,
    /// since WIT 0.3.0). When the job resumes at another parallelism the
    /// items of all subtasks are split evenly over the new ones, so make
    /// each item movable on its own. The default has no state.
    ///
    /// # Errors
    /// An `Err` declines the checkpoint; the job goes on.
    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>, String> {
        let _ = checkpoint_id;
        Ok(Vec::new())
    }
    /// Takes back the items of a restored checkpoint assigned to this
    /// subtask, after `open` and before the first record. The default
    /// ignores them.
    ///
    /// # Errors
    /// An `Err` fails the task.
    fn restore_state(&mut self, items: Vec<Vec<u8>>) -> Result<(), String> {
        let _ = items;
        Ok(())
    }
    /// Processes one value of key `key`, emitting through `out`.
    ///
    /// # Errors
    /// An `Err` is reported as a per-record error.
    fn process(
        &mut self,
        key: &[u8],
        value: Self::In<'_>,
        out: &mut Collector<'_, Self::Out>,
    ) -> Result<(), String>;
    /// Called at end of input.
    ///
    /// # Errors
    /// An `Err` fails the task with that message.
    fn close(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// A timer of `key` registered through [`timers`] fired at `timestamp`
    /// (ms). The key is the current key, so state calls see its state;
    /// `out` emits records stamped with `timestamp`. The default does nothing.
    ///
    /// # Errors
    /// An `Err` is reported by the host as a per-record problem.
    fn on_timer(
        &mut self,
        key: &[u8],
        timestamp: i64,
        domain: TimeDomain,
        out: &mut Collector<'_, Self::Out>,
    ) -> Result<(), String> {
        let _ = (key, timestamp, domain, out);
        Ok(())
    }
}

/// Collects the outputs of one input record.
pub struct Collector<'a, T> {
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) timestamp: Option<i64>,
    /// The packed output buffer of the call.
    pub(crate) outputs: &'a mut Vec<u8>,
    pub(crate) _marker: std::marker::PhantomData<T>,
}

impl<T: Encode> Collector<'_, T> {
    /// Emits `value` to the main output with the input's key and timestamp.
    pub fn emit(&mut self, value: T) {
        self.emit_with_timestamp(value, self.timestamp);
    }

    /// Event time (ms) of the record being processed, or the timestamp of
    /// the timer being fired.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// Emits `value` to the main output with another event time (ms since epoch).
    pub fn emit_with_timestamp(&mut self, value: T, timestamp: Option<i64>) {
        adapters::emit_into(self.outputs, self.key, timestamp, value);
    }

    /// Emits `value` to the side output named `output` (routed by the job file).
    pub fn emit_side<S: Encode>(&mut self, output: &str, value: S) {
        adapters::side_into(self.outputs, output, self.key, self.timestamp, value);
    }

    /// Emits a value that `write` appends to `buf`, the packed output
    /// buffer, with the input's key and timestamp. For functions that build
    /// their output from pieces of a borrowed input ([`RawRef`]): the pieces
    /// are copied once, with no value in between. Weir does not check the
    /// bytes; write what the next operator reads (JSON for the built-in
    /// operators).
    ///
    /// # Errors
    /// `write`'s own error; nothing is emitted then (what it wrote is
    /// taken back).
    pub fn emit_bytes_with<E>(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        adapters::try_emit_into(self.outputs, self.key, self.timestamp, write)
    }
}

/// Writes a line to the host's log at `info` level.
pub fn log_info(message: &str) {
    bindings::weir::operator::logging::log(bindings::weir::operator::logging::Level::Info, message);
}

/// Writes a line to the host's log at `warn` level.
pub fn log_warn(message: &str) {
    bindings::weir::operator::logging::log(bindings::weir::operator::logging::Level::Warn, message);
}

/// The usual imports for writing a function.
pub mod prelude {
    pub use crate::{
        Collector, Decode, Encode, FilterFunction, FlatMapFunction, KeyedProcessFunction,
        ListState, MapFunction, MapState, OpenContext, Raw, RawRef, TimeDomain, ValueState, timers,
    };
    pub use serde::{Deserialize, Serialize};
}

/// Exports a function as the component's `weir:operator/operator` world.
///
/// `export!(map T)`, `export!(filter T)`, `export!(flat_map T)` or
/// `export!(keyed_process T)`, where `T` implements the matching trait. Use
/// it once per crate.
#[macro_export]
macro_rules! export {
    (map $t:ty) => {
        $crate::__export_adapter!($crate::adapters::MapAdapter<$t>);
    };
    (filter $t:ty) => {
        $crate::__export_adapter!($crate::adapters::FilterAdapter<$t>);
    };
    (flat_map $t:ty) => {
        $crate::__export_adapter!($crate::adapters::FlatMapAdapter<$t>);
    };
    (keyed_process $t:ty) => {
        $crate::__export_adapter!($crate::adapters::KeyedProcessAdapter<$t>);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_adapter {
    ($adapter:ty) => {
        struct __WeirComponent;
        ::std::thread_local! {
            static __WEIR_INSTANCE: ::std::cell::RefCell<Option<$adapter>> = const { ::std::cell::RefCell::new(None) };
        }
        impl $crate::bindings::exports::weir::operator::handler::Guest for __WeirComponent {
            fn open(ctx: $crate::bindings::weir::operator::types::Context) -> Result<(), String> {
                $crate::state_cache::begin_call();
                let adapter = <$adapter as $crate::adapters::Adapter>::open(ctx)?;
                __WEIR_INSTANCE.with(|cell| *cell.borrow_mut() = Some(adapter));
                Ok(())
            }
            fn process(
                batch: Vec<$crate::StreamRecord>,
            ) -> Vec<$crate::bindings::weir::operator::types::Output> {
                let packed = $crate::adapters::pack(&batch);
                drop(batch);
                let outputs = <__WeirComponent as $crate::bindings::exports::weir::operator::packed_handler::Guest>::process_packed(packed);
                $crate::adapters::unpack(&outputs)
            }
            fn on_timer(
                key: Vec<u8>,
                timestamp: i64,
                domain: $crate::TimeDomain,
            ) -> Vec<$crate::bindings::weir::operator::types::Output> {
                $crate::state_cache::begin_call();
                let mut outputs = Vec::new();
                __WEIR_INSTANCE.with(|cell| match cell.borrow_mut().as_mut() {
                    Some(adapter) => {
                        $crate::adapters::Adapter::on_timer(adapter, key, timestamp, domain, &mut outputs)
                    }
                    None => panic!("weir: on-timer called before open"),
                });
                $crate::adapters::unpack(&outputs)
            }
            fn close() -> Result<(), String> {
                $crate::state_cache::begin_call();
                __WEIR_INSTANCE.with(|cell| match cell.borrow_mut().as_mut() {
                    Some(adapter) => $crate::adapters::Adapter::close(adapter),
                    None => Ok(()),
                })
            }
        }
        impl $crate::bindings::exports::weir::operator::packed_handler::Guest for __WeirComponent {
            fn process_packed(batch: Vec<u8>) -> Vec<u8> {
                // Outputs are usually about as large as the inputs.
                let mut outputs = Vec::with_capacity(batch.len() + 64);
                $crate::state_cache::begin_call();
                __WEIR_INSTANCE.with(|cell| match cell.borrow_mut().as_mut() {
                    Some(adapter) => $crate::adapters::Adapter::process(adapter, &batch, &mut outputs),
                    None => panic!("weir: process called before open"),
                });
                outputs
            }
        }
        impl $crate::bindings::exports::weir::operator::checkpointed::Guest for __WeirComponent {
            fn snapshot_state(checkpoint_id: u64) -> Result<Vec<Vec<u8>>, String> {
                // The host snapshots keyed state after this call: every
                // cached change must be on the host by then.
                $crate::state_cache::begin_call();
                $crate::state_cache::flush();
                __WEIR_INSTANCE.with(|cell| match cell.borrow_mut().as_mut() {
                    Some(adapter) => {
                        $crate::adapters::Adapter::snapshot_state(adapter, checkpoint_id)
                    }
                    None => Ok(Vec::new()),
                })
            }
            fn restore_state(items: Vec<Vec<u8>>) -> Result<(), String> {
                $crate::state_cache::begin_call();
                __WEIR_INSTANCE.with(|cell| match cell.borrow_mut().as_mut() {
                    Some(adapter) => $crate::adapters::Adapter::restore_state(adapter, items),
                    None => Err("weir: restore-state called before open".into()),
                })
            }
        }
        $crate::bindings::__export_packed_operator_world!(__WeirComponent with_types_in $crate::bindings);
    };
}

/// Encodes `value` as JSON bytes.
///
/// # Errors
/// When `value`'s `Serialize` impl fails (for example a map with non-string keys).
pub fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(value).map_err(|e| format!("cannot encode output as JSON: {e}"))
}
