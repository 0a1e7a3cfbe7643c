//! Window aggregate components: the `weir:operator/aggregate` world.

use std::path::Path;
use std::time::Duration;

use wasmtime::Store;

use crate::bindings_aggregate::AggregatePre;
use crate::component::EPOCH_TICK;
use crate::host::HostState;
use crate::instance::{classify, new_store, wit_context};
use crate::{InstanceLimits, SubtaskInfo, TrapKind, WasmError, WasmRuntime};

/// A loaded component that implements the `aggregate` world.
pub struct AggregateComponent {
    pre: AggregatePre<HostState>,
    path: String,
}

/// One instance of an aggregate component, for one window subtask. Not
/// reusable after a trap.
pub struct AggregateInstance {
    store: Store<HostState>,
    bindings: crate::bindings_aggregate::Aggregate,
    deadline_ticks: u64,
    poisoned: bool,
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
        let (component, shown, _sha256) = self.compile_file(path)?;
        let mismatch = |e: wasmtime::Error| WasmError::WorldMismatch {
            path: shown.clone(),
            reason: format!(
                "not a weir:operator/aggregate@0.2.0 component: {}",
                crate::component::describe_link_error(&e)
            ),
        };
        let pre = self
            .linker()
            .instantiate_pre(&component)
            .map_err(mismatch)?;
        let pre = AggregatePre::new(pre).map_err(mismatch)?;
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
        let name = format!("{}#{}", subtask.operator_id, subtask.index);
        let (mut store, deadline_ticks) = new_store(self.pre.engine(), name, None, limits);
        let bindings = match self.pre.instantiate(&mut store) {
            Ok(b) => b,
            Err(e) => return Err(classify(&mut store, &e, limits.call_timeout)),
        };
        let mut instance = AggregateInstance {
            store,
            bindings,
            deadline_ticks,
            poisoned: false,
        };
        let ctx = wit_context(subtask, config_json);
        match instance.call(|b, s| b.weir_operator_aggregator().call_open(s, &ctx))? {
            Ok(()) => Ok(instance),
            Err(message) => Err(WasmError::Guest {
                phase: "open",
                message,
            }),
        }
    }
}

impl AggregateInstance {
    /// Runs one guest call under the deadline; a trap poisons the instance.
    fn call<T>(
        &mut self,
        f: impl FnOnce(
            &crate::bindings_aggregate::Aggregate,
            &mut Store<HostState>,
        ) -> wasmtime::Result<T>,
    ) -> Result<T, WasmError> {
        if self.poisoned {
            return Err(WasmError::Trap {
                kind: TrapKind::Trap,
                message: "instance is unusable after an earlier trap".into(),
            });
        }
        self.store.set_epoch_deadline(self.deadline_ticks);
        f(&self.bindings, &mut self.store).map_err(|e| {
            self.poisoned = true;
            let timeout: Duration = EPOCH_TICK * self.deadline_ticks as u32;
            classify(&mut self.store, &e, timeout)
        })
    }

    /// A new, empty accumulator (`create-accumulator`).
    ///
    /// # Errors
    /// [`WasmError::Trap`] when the guest traps or hits a limit.
    pub fn create_accumulator(&mut self) -> Result<Vec<u8>, WasmError> {
        self.call(|b, s| b.weir_operator_aggregator().call_create_accumulator(s))
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
        self.call(|b, s| {
            b.weir_operator_aggregator()
                .call_add(s, accumulator, &values)
        })
    }

    /// Combines two accumulators (`merge`).
    ///
    /// # Errors
    /// As [`AggregateInstance::add`].
    pub fn merge(&mut self, accumulator: &[u8], other: &[u8]) -> AggregateResult<Vec<u8>> {
        self.call(|b, s| {
            b.weir_operator_aggregator()
                .call_merge(s, accumulator, other)
        })
    }

    /// The window result as JSON object text (`get-result`).
    ///
    /// # Errors
    /// As [`AggregateInstance::add`].
    pub fn get_result(&mut self, accumulator: &[u8]) -> AggregateResult<String> {
        self.call(|b, s| b.weir_operator_aggregator().call_get_result(s, accumulator))
    }
}
