//! Window aggregate components: the `weir:operator/aggregate` world.

use std::path::Path;
use std::time::Duration;

use wasmtime::Store;

use crate::bindings_aggregate::AggregatePre;
use crate::bindings_aggregate_v0_2::AggregatePre as AggregatePreV0_2;
use crate::bindings_aggregate_v0_3::AggregatePre as AggregatePreV0_3;
use crate::component::EPOCH_TICK;
use crate::host::HostState;
use crate::instance::{classify, new_store, wit_context};
use crate::{InstanceLimits, SubtaskInfo, TrapKind, WasmError, WasmRuntime};

/// A loaded component that implements the `aggregate` world.
pub struct AggregateComponent {
    pre: Pre,
    path: String,
}

/// A prepared aggregate component, by `weir:operator` version.
#[derive(Clone)]
enum Pre {
    Current(AggregatePre<HostState>),
    V0_3(AggregatePreV0_3<HostState>),
    V0_2(AggregatePreV0_2<HostState>),
}

/// The instantiated exports, by `weir:operator` version.
enum Bindings {
    Current(crate::bindings_aggregate::Aggregate),
    V0_3(crate::bindings_aggregate_v0_3::Aggregate),
    V0_2(crate::bindings_aggregate_v0_2::Aggregate),
}

/// Calls the same `aggregator` function whatever the component's version
/// (the versions' signatures are the same but for the context type).
macro_rules! aggregator_call {
    ($instance:expr, |$aggregator:ident, $store:ident| $body:expr) => {
        $instance.call(|bindings, $store| match bindings {
            Bindings::Current(b) => {
                let $aggregator = b.weir_operator_aggregator();
                $body
            }
            Bindings::V0_3(b) => {
                let $aggregator = b.weir_operator_aggregator();
                $body
            }
            Bindings::V0_2(b) => {
                let $aggregator = b.weir_operator_aggregator();
                $body
            }
        })
    };
}

/// One instance of an aggregate component, for one window subtask. Not
/// reusable after a trap.
pub struct AggregateInstance {
    store: Store<HostState>,
    bindings: Bindings,
    deadline_ticks: u64,
    poisoned: bool,
    /// What replacing the instance takes (an aggregate keeps no state
    /// between calls: its accumulators are the host's).
    fresh: Fresh,
}

/// How to make a fresh instance of the same aggregate, and when
/// ([`crate::recycle::due`]).
struct Fresh {
    pre: Pre,
    subtask: SubtaskInfo,
    config_json: String,
    limits: InstanceLimits,
    /// Memory after `open` (bytes); `None` while opening.
    baseline: Option<usize>,
    replacements: u64,
    /// A fresh instance could not be opened: not tried again.
    gave_up: bool,
}

/// What a call into an aggregate component returned: the guest's own
/// answer (`Ok` or its `err` message), or a [`WasmError`] when it trapped or
/// hit a limit (the instance is then unusable).
pub type AggregateResult<T> = Result<Result<T, String>, WasmError>;

impl WasmRuntime {
    /// Loads the component at `path` as a window aggregate: compiles it
    /// (or takes it from the cache) and checks that it implements the
    /// `aggregate` world.
    ///
    /// # Errors
    /// [`WasmError::Read`], [`WasmError::NotAComponent`],
    /// [`WasmError::Compile`], or [`WasmError::WorldMismatch`] naming what
    /// the component lacks (an `operator` component is not an aggregate).
    pub fn load_aggregate(&self, path: &Path) -> Result<AggregateComponent, WasmError> {
        let bytes = crate::component::read_artifact(path)?;
        self.load_aggregate_bytes(&path.display().to_string(), &bytes)
    }

    /// Loads a window aggregate component from its bytes (an uploaded
    /// artifact), as [`WasmRuntime::load_aggregate`] does from a file;
    /// `name` stands for it in errors.
    ///
    /// # Errors
    /// [`WasmError::NotAComponent`], [`WasmError::Compile`] or
    /// [`WasmError::WorldMismatch`].
    pub fn load_aggregate_bytes(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<AggregateComponent, WasmError> {
        let (component, shown, _sha256) = self.compile_bytes(name, bytes)?;
        let mismatch = |e: wasmtime::Error| WasmError::WorldMismatch {
            path: shown.clone(),
            reason: format!(
                "not a weir:operator/aggregate@0.4.0 (or 0.3.0 or 0.2.0) component: {}",
                crate::component::describe_link_error(&e)
            ),
        };
        let pre = self
            .linker()
            .instantiate_pre(&component)
            .map_err(mismatch)?;
        let pre = match AggregatePre::new(pre.clone()) {
            Ok(current) => Pre::Current(current),
            Err(e) => match AggregatePreV0_3::new(pre.clone()) {
                Ok(old) => Pre::V0_3(old),
                Err(_) => Pre::V0_2(AggregatePreV0_2::new(pre).map_err(|_| mismatch(e))?),
            },
        };
        Ok(AggregateComponent { pre, path: shown })
    }
}

impl AggregateComponent {
    /// Where it was loaded from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Instantiates the component in a fresh sandbox and calls its `open`.
    ///
    /// # Errors
    /// A trap or limit hit during instantiation or `open`;
    /// [`WasmError::Guest`] when `open` returns an error.
    pub fn instantiate(
        &self,
        subtask: &SubtaskInfo,
        config_json: &str,
        limits: InstanceLimits,
    ) -> Result<AggregateInstance, WasmError> {
        let fresh = Fresh {
            pre: self.pre.clone(),
            subtask: subtask.clone(),
            config_json: config_json.to_string(),
            limits,
            baseline: None,
            replacements: 0,
            gave_up: false,
        };
        open_aggregate(fresh, None)
    }
}

/// A fresh instance of `fresh.pre`, opened; with `clock`, the guest's
/// clocks go on from an earlier instance's.
fn open_aggregate(
    fresh: Fresh,
    clock: Option<crate::sandbox::GuestClock>,
) -> Result<AggregateInstance, WasmError> {
    let subtask = &fresh.subtask;
    let limits = fresh.limits;
    let name = format!("{}#{}", subtask.operator_id, subtask.index);
    let engine = match &fresh.pre {
        Pre::Current(pre) => pre.engine(),
        Pre::V0_3(pre) => pre.engine(),
        Pre::V0_2(pre) => pre.engine(),
    };
    let (mut store, deadline_ticks) =
        new_store(engine, name, None, limits, clock, fresh.replacements);
    let bindings = match &fresh.pre {
        Pre::Current(pre) => pre.instantiate(&mut store).map(Bindings::Current),
        Pre::V0_3(pre) => pre.instantiate(&mut store).map(Bindings::V0_3),
        Pre::V0_2(pre) => pre.instantiate(&mut store).map(Bindings::V0_2),
    };
    let bindings = match bindings {
        Ok(b) => b,
        Err(e) => return Err(classify(&mut store, &e, limits.call_timeout)),
    };
    let ctx = wit_context(subtask, &fresh.config_json);
    let mut instance = AggregateInstance {
        store,
        bindings,
        deadline_ticks,
        poisoned: false,
        fresh,
    };
    let opened = instance.call(|b, s| match b {
        Bindings::Current(b) => b.weir_operator_aggregator().call_open(s, &ctx),
        Bindings::V0_3(b) => b
            .weir_operator_aggregator()
            .call_open(s, &crate::instance::v0_3::context(&ctx)),
        Bindings::V0_2(b) => b
            .weir_operator_aggregator()
            .call_open(s, &crate::instance::v0_2::context(&ctx)),
    })?;
    match opened {
        Ok(()) => {
            instance.fresh.baseline = Some(instance.store.data().memory_bytes);
            Ok(instance)
        }
        Err(message) => Err(WasmError::Guest {
            phase: "open",
            message,
        }),
    }
}

impl AggregateInstance {
    /// Runs one guest call under the deadline; a trap poisons the instance.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&Bindings, &mut Store<HostState>) -> wasmtime::Result<T>,
    ) -> Result<T, WasmError> {
        if self.poisoned {
            return Err(WasmError::Trap {
                kind: TrapKind::Trap,
                message: "instance is unusable after an earlier trap".into(),
            });
        }
        self.replace_if_bloated()?;
        self.store.set_epoch_deadline(self.deadline_ticks);
        f(&self.bindings, &mut self.store).map_err(|e| {
            self.poisoned = true;
            let timeout: Duration = EPOCH_TICK * self.deadline_ticks as u32;
            classify(&mut self.store, &e, timeout)
        })
    }

    /// How many times this instance was replaced because its memory kept
    /// growing ([`crate::recycle`]).
    pub fn replacements(&self) -> u64 {
        self.fresh.replacements
    }

    /// Replaces the instance by a fresh, opened one when its memory is due
    /// ([`crate::recycle::due`]). An aggregate has no state of its own
    /// between calls, so nothing else moves. When the fresh one cannot be
    /// opened, the old one goes on and no replacement is tried again.
    fn replace_if_bloated(&mut self) -> Result<(), WasmError> {
        let Some(baseline) = self.fresh.baseline.filter(|_| !self.fresh.gave_up) else {
            return Ok(());
        };
        let used = self.store.data().memory_bytes;
        if !crate::recycle::due(used, baseline, self.fresh.limits.memory_bytes) {
            return Ok(());
        }
        let fresh = Fresh {
            pre: self.fresh.pre.clone(),
            subtask: self.fresh.subtask.clone(),
            config_json: self.fresh.config_json.clone(),
            limits: self.fresh.limits,
            baseline: None,
            replacements: self.fresh.replacements + 1,
            gave_up: false,
        };
        match open_aggregate(fresh, Some(self.store.data().clock.clone())) {
            Ok(instance) => {
                tracing::info!(
                    target: "weir_wasm::recycle",
                    instance = %format!("{}#{}", self.fresh.subtask.operator_id, self.fresh.subtask.index),
                    memory_mib = used >> 20,
                    generation = instance.fresh.replacements,
                    "replaced a window aggregate instance whose memory kept growing"
                );
                *self = instance;
                Ok(())
            }
            Err(e) => {
                // The old instance is still good: it goes on, to its limit.
                self.fresh.gave_up = true;
                tracing::warn!(
                    target: "weir_wasm::recycle",
                    "cannot replace a window aggregate instance whose memory keeps growing ({e}); it goes on until its memory limit"
                );
                Ok(())
            }
        }
    }

    /// A new, empty accumulator (`create-accumulator`).
    ///
    /// # Errors
    /// [`WasmError::Trap`] when the guest traps or hits a limit.
    pub fn create_accumulator(&mut self) -> Result<Vec<u8>, WasmError> {
        aggregator_call!(self, |a, s| a.call_create_accumulator(s))
    }

    /// Adds record values to an accumulator (`add`).
    ///
    /// # Errors
    /// [`WasmError::Trap`] when the guest traps or hits a limit; the
    /// guest's rejection is the inner `Err`.
    pub fn add(&mut self, accumulator: &[u8], values: &[&[u8]]) -> AggregateResult<Vec<u8>> {
        // The bindings take owned lists; one copy either way crosses into
        // guest memory.
        let values: Vec<Vec<u8>> = values.iter().map(|v| v.to_vec()).collect();
        aggregator_call!(self, |a, s| a.call_add(s, accumulator, &values))
    }

    /// Combines two accumulators (`merge`).
    ///
    /// # Errors
    /// As [`AggregateInstance::add`].
    pub fn merge(&mut self, accumulator: &[u8], other: &[u8]) -> AggregateResult<Vec<u8>> {
        aggregator_call!(self, |a, s| a.call_merge(s, accumulator, other))
    }

    /// The window result as JSON object text (`get-result`).
    ///
    /// # Errors
    /// As [`AggregateInstance::add`].
    pub fn get_result(&mut self, accumulator: &[u8]) -> AggregateResult<String> {
        aggregator_call!(self, |a, s| a.call_get_result(s, accumulator))
    }
}
