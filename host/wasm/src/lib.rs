//! The Wasm boundary on the host side.
//!
//! [`WasmRuntime`] owns one wasmtime [`Engine`](wasmtime::Engine) (component
//! model, epoch interruption) and a cache of compiled components on disk,
//! keyed by the SHA-256 of the artifact and the engine's compatibility hash,
//! so a component is compiled once and then only deserialised (~0.3 ms).
//! [`OperatorComponent`] is a loaded, validated component with an
//! `InstancePre` ready; [`OperatorInstance`] is one sandboxed instance per
//! subtask with a memory cap, a per-call deadline and the host side of the
//! `weir:operator` imports (keyed state over [`weir_state::KeyedState`],
//! logging through `tracing`).
//!
//! [`AggregateComponent`] / [`AggregateInstance`] are the same for window
//! aggregate components (the `aggregate` world: create-accumulator, add,
//! merge, get-result over accumulators the host keeps as bytes).
//!
//! The host only ever calls `process` with whole batches: a component call
//! costs ~150–250 ns, which per record would dominate everything else.
//!
//! Guests built with Rust std, componentize-py or componentize-js import
//! WASI even when unused, so WASI p2 is linked with a locked-down context:
//! no preopened directories, no network, no stdin, stdout discarded and
//! stderr kept within bounds ([`guest_output`]: its tail ends up in trap
//! errors, its lines in the host log, rate-limited and sanitized).

mod component;
pub mod guest_output;
mod host;
pub mod output_limits;
pub mod sandbox;

/// Host bindings generated from `wit/operator.wit` (the current version, 0.4.0).
mod bindings {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "weir:operator/operator",
        imports: { default: trappable },
    });
}

/// Host bindings of the frozen `weir:operator@0.1.0` (`wit/v0.1.0`), so
/// components built against it keep running (no timers, no watermark).
mod bindings_v0_1 {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../../wit/v0.1.0",
        world: "weir:operator/operator",
        imports: { default: trappable },
    });
}
/// Host bindings of the frozen `weir:operator@0.2.0` (`wit/v0.2.0`), so
/// components built against it keep running (no operator state).
mod bindings_v0_2 {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../../wit/v0.2.0",
        world: "weir:operator/operator",
        imports: { default: trappable },
    });
}
/// Host bindings of the frozen `weir:operator@0.3.0` (`wit/v0.3.0`), so
/// components built against it keep running (no packed batches).
mod bindings_v0_3 {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../../wit/v0.3.0",
        world: "weir:operator/operator",
        imports: { default: trappable },
    });
}
/// Host bindings of the `aggregate` world of `weir:operator@0.3.0`,
/// sharing the types and logging of the 0.3.0 `operator` bindings.
mod bindings_aggregate_v0_3 {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../../wit/v0.3.0",
        world: "weir:operator/aggregate",
        imports: { default: trappable },
        with: {
            "weir:operator/types": crate::bindings_v0_3::weir::operator::types,
            "weir:operator/logging": crate::bindings_v0_3::weir::operator::logging,
        },
    });
}
/// Host bindings of the `aggregate` world of `weir:operator@0.2.0`,
/// sharing the types and logging of the 0.2.0 `operator` bindings.
mod bindings_aggregate_v0_2 {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../../wit/v0.2.0",
        world: "weir:operator/aggregate",
        imports: { default: trappable },
        with: {
            "weir:operator/types": crate::bindings_v0_2::weir::operator::types,
            "weir:operator/logging": crate::bindings_v0_2::weir::operator::logging,
        },
    });
}
/// Host bindings of the `aggregate` world (window aggregate components),
/// sharing the types and logging of the `operator` world's bindings.
mod bindings_aggregate {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "weir:operator/aggregate",
        imports: { default: trappable },
        with: {
            "weir:operator/types": crate::bindings::weir::operator::types,
            "weir:operator/logging": crate::bindings::weir::operator::logging,
        },
    });
}
mod aggregate;
mod instance;
mod recycle;

pub use aggregate::{AggregateComponent, AggregateInstance, AggregateResult};
pub use component::{OperatorComponent, RuntimeConfig, WasmRuntime};
pub use instance::{
    InstanceLimits, OperatorInstance, Output, ProcessFailure, SortedOutputs, SubtaskInfo, TrapKind,
};
pub use output_limits::{DEFAULT_MAX_OUTPUTS_PER_CALL, OutputLimits};

/// Errors of the Wasm layer.
#[derive(Debug, thiserror::Error)]
pub enum WasmError {
    /// The artifact could not be read.
    #[error("cannot read Wasm component {path}: {source}")]
    Read {
        /// The artifact.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a WebAssembly component.
    #[error("{path} is not a WebAssembly component: {reason}")]
    NotAComponent {
        /// The artifact.
        path: String,
        /// Why.
        reason: String,
    },
    /// The component does not implement the `weir:operator/operator` world.
    #[error(
        "{path} does not implement the weir:operator/operator world (version 0.4.0, 0.3.0, 0.2.0 or 0.1.0): {reason}"
    )]
    WorldMismatch {
        /// The artifact.
        path: String,
        /// What is missing or mismatched.
        reason: String,
    },
    /// Compilation failed.
    #[error("cannot compile {path}: {reason}")]
    Compile {
        /// The artifact.
        path: String,
        /// The compiler's message.
        reason: String,
    },
    /// The engine could not be created.
    #[error("cannot create the Wasm engine: {0}")]
    Engine(String),
    /// The guest trapped or hit a limit.
    #[error("{kind}: {message}")]
    Trap {
        /// What happened.
        kind: TrapKind,
        /// Details (the guest's panic message, when it printed one).
        message: String,
    },
    /// The guest's `open` or `close` returned an error.
    #[error("the UDF's {phase} failed: {message}")]
    Guest {
        /// `open` or `close`.
        phase: &'static str,
        /// The guest's message.
        message: String,
    },
}
