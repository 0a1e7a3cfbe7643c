//! Write Weir window aggregate functions in Rust and compile them to
//! WebAssembly components of the `weir:operator/aggregate` world (Flink's
//! `AggregateFunction`).
//!
//! A window operator in a job file names the component in `udf:` next to
//! `window:`; the host keeps one accumulator per key and window and calls
//! the function as records arrive, sessions merge and windows fire:
//!
//! ```ignore
//! use weir_guest_aggregate::prelude::*;
//!
//! #[derive(Deserialize)]
//! struct Reading { value: f64 }
//!
//! struct Range;
//! impl AggregateFunction for Range {
//!     type Config = ();
//!     type In = Reading;
//!     type Acc = Option<(f64, f64)>;
//!     type Out = serde_json::Value;
//!     fn open(_: (), _: &OpenContext) -> Result<Self, String> { Ok(Range) }
//!     fn create_accumulator(&self) -> Self::Acc { None }
//!     fn add(&self, acc: &mut Self::Acc, r: Reading) -> Result<(), String> {
//!         let (lo, hi) = acc.get_or_insert((r.value, r.value));
//!         *lo = lo.min(r.value);
//!         *hi = hi.max(r.value);
//!         Ok(())
//!     }
//!     fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) { /* ... */ }
//!     fn get_result(&self, acc: Self::Acc) -> Result<Self::Out, String> {
//!         Ok(serde_json::json!({ "range": acc.map(|(lo, hi)| hi - lo) }))
//!     }
//! }
//! weir_guest_aggregate::export!(Range);
//! ```
//!
//! Inputs are record values decoded from JSON; accumulators cross the
//! boundary as JSON bytes (the host stores them without looking inside);
//! the result must serialise to a JSON object, whose fields are appended to
//! the window's result record. An `Err` from `add` rejects that record (the
//! host reports it and keeps the window as it was); a panic traps the
//! component, which fails the task.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Bindings generated from the `weir:operator` WIT package, `aggregate`
/// world. Not for direct use.
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "weir:operator/aggregate",
        pub_export_macro: true,
        export_macro_name: "__export_aggregate_world",
        default_bindings_module: "weir_guest_aggregate::bindings",
    });
}

/// Logging into the host's log, tagged with the operator and subtask.
pub use bindings::weir::operator::logging::{Level, log};

/// What `open` receives besides the typed configuration.
#[derive(Debug, Clone)]
pub struct OpenContext {
    /// The operator's id in the job file.
    pub operator_id: String,
    /// 0-based index of this subtask.
    pub subtask_index: u32,
    /// Number of parallel subtasks of this operator.
    pub parallelism: u32,
}

/// A window aggregate: Flink's `AggregateFunction<IN, ACC, OUT>`.
pub trait AggregateFunction: Sized {
    /// Typed configuration, decoded from the job file's `config`.
    type Config: DeserializeOwned;
    /// Input value type, decoded from each record's JSON.
    type In: DeserializeOwned;
    /// Accumulator, kept by the host as JSON bytes between calls.
    type Acc: Serialize + DeserializeOwned;
    /// Result; must serialise to a JSON object.
    type Out: Serialize;

    /// Creates the function once per subtask.
    ///
    /// # Errors
    /// A message that fails the task (for example a bad configuration).
    fn open(config: Self::Config, ctx: &OpenContext) -> Result<Self, String>;

    /// A new, empty accumulator.
    fn create_accumulator(&self) -> Self::Acc;

    /// Adds one input to the accumulator.
    ///
    /// # Errors
    /// A message rejecting the input; the host reports it with the record's
    /// origin and the window stays as it was.
    fn add(&self, acc: &mut Self::Acc, value: Self::In) -> Result<(), String>;

    /// Folds `other` (holding later records) into `acc`.
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc);

    /// The window's result.
    ///
    /// # Errors
    /// A message; the host reports the window and emits no result for it.
    fn get_result(&self, acc: Self::Acc) -> Result<Self::Out, String>;
}

/// Glue between the WIT exports and an [`AggregateFunction`]. Not for direct use.
#[doc(hidden)]
pub mod glue {
    use super::*;

    fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("invalid {what}: {e}"))
    }

    fn encode<T: Serialize>(value: &T) -> Vec<u8> {
        // Plain data serialises; a type whose Serialize impl fails (a map
        // with non-string keys) becomes `null`, which `decode` then rejects.
        serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec())
    }

    /// `open`: decodes the configuration and creates the function.
    pub fn open<F: AggregateFunction>(
        ctx: crate::bindings::weir::operator::types::Context,
    ) -> Result<F, String> {
        let config: F::Config = decode(ctx.config.as_bytes(), "config")?;
        let open = OpenContext {
            operator_id: ctx.subtask.operator_id,
            subtask_index: ctx.subtask.index,
            parallelism: ctx.subtask.parallelism,
        };
        F::open(config, &open)
    }

    /// `create-accumulator`.
    pub fn create<F: AggregateFunction>(f: &F) -> Vec<u8> {
        encode(&f.create_accumulator())
    }

    /// `add`: all values or none.
    pub fn add<F: AggregateFunction>(
        f: &F,
        acc: Vec<u8>,
        values: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>, String> {
        let mut acc: F::Acc = decode(&acc, "accumulator")?;
        for value in values {
            f.add(&mut acc, decode(&value, "input")?)?;
        }
        Ok(encode(&acc))
    }

    /// `merge`.
    pub fn merge<F: AggregateFunction>(
        f: &F,
        acc: Vec<u8>,
        other: Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let mut acc: F::Acc = decode(&acc, "accumulator")?;
        f.merge(&mut acc, decode(&other, "accumulator")?);
        Ok(encode(&acc))
    }

    /// `get-result`: the result as JSON text.
    pub fn result<F: AggregateFunction>(f: &F, acc: Vec<u8>) -> Result<String, String> {
        let out = f.get_result(decode(&acc, "accumulator")?)?;
        serde_json::to_string(&out).map_err(|e| format!("cannot encode the result: {e}"))
    }
}

/// Exports `T: AggregateFunction` as the component's
/// `weir:operator/aggregate` world. Use it once per crate.
#[macro_export]
macro_rules! export {
    ($t:ty) => {
        struct __WeirAggregate;
        ::std::thread_local! {
            static __WEIR_FUNCTION: ::std::cell::RefCell<Option<$t>> = const { ::std::cell::RefCell::new(None) };
        }
        fn __weir_with<R>(f: impl FnOnce(&$t) -> R) -> R {
            __WEIR_FUNCTION.with(|cell| match cell.borrow().as_ref() {
                Some(function) => f(function),
                None => panic!("weir: aggregate called before open"),
            })
        }
        impl $crate::bindings::exports::weir::operator::aggregator::Guest for __WeirAggregate {
            fn open(ctx: $crate::bindings::weir::operator::types::Context) -> Result<(), String> {
                let function = $crate::glue::open::<$t>(ctx)?;
                __WEIR_FUNCTION.with(|cell| *cell.borrow_mut() = Some(function));
                Ok(())
            }
            fn create_accumulator() -> Vec<u8> {
                __weir_with(|f| $crate::glue::create(f))
            }
            fn add(accumulator: Vec<u8>, values: Vec<Vec<u8>>) -> Result<Vec<u8>, String> {
                __weir_with(|f| $crate::glue::add(f, accumulator, values))
            }
            fn merge(accumulator: Vec<u8>, other: Vec<u8>) -> Result<Vec<u8>, String> {
                __weir_with(|f| $crate::glue::merge(f, accumulator, other))
            }
            fn get_result(accumulator: Vec<u8>) -> Result<String, String> {
                __weir_with(|f| $crate::glue::result(f, accumulator))
            }
        }
        $crate::bindings::__export_aggregate_world!(__WeirAggregate with_types_in $crate::bindings);
    };
}

/// Everything a function needs, for `use weir_guest_aggregate::prelude::*`.
pub mod prelude {
    pub use crate::{AggregateFunction, OpenContext};
    pub use serde::{Deserialize, Serialize};
}
