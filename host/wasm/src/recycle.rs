//! Replacing an instance whose linear memory keeps growing with a fresh one.
//!
//! Some guest toolchains never give memory back: componentize-js's engine
//! (StarlingMonkey) does not collect garbage while an instance lives, since
//! it is built for instances that live for one request, so a JavaScript
//! UDF's heap grows with every record it is given until it hits its memory
//! limit (about 200k records under 64 MiB). A leaky function of any language
//! does the same. Before the limit is reached, the instance is replaced
//! between two calls, the way a restart from a checkpoint replaces it but
//! without a failure or a replay:
//!
//! 1. the old instance's operator state is taken (`snapshot-state`, with the
//!    id of the last checkpoint it took part in, 0 before the first);
//! 2. a fresh instance of the same component gets the subtask's keyed state
//!    and timers (host state, moved as they are, write-back buffer
//!    included), the watermark and the guest's clocks;
//! 3. it is opened with the same subtask and config and given the operator
//!    state back (`restore-state`).
//!
//! What a function keeps only in its own memory, outside keyed and operator
//! state, starts over, as after any restart. An instance is replaced when
//! its largest linear memory has reached 7/8 of the limit and has grown by
//! more than half of the room the fresh instance had after `open`, so a
//! function that needs most of its memory from the start is not replaced
//! over and over. Window aggregate instances (`aggregate.rs`) are replaced
//! by the same rule; they keep no state between calls, so a fresh one is
//! only opened.

use crate::WasmError;
use crate::component::Pre;
use crate::instance::{InstanceLimits, OperatorInstance, SubtaskInfo, instantiate_pre};

/// What replacing an instance takes: how to make and open a fresh one.
pub(crate) struct Recycler {
    pre: Pre,
    name: String,
    limits: InstanceLimits,
    /// The subtask and config `open` was given (`None` before it).
    opened: Option<(SubtaskInfo, String)>,
    /// Memory after `open` (bytes): the fresh instance's size.
    baseline: usize,
    /// The last checkpoint the instance's operator state was taken for.
    last_checkpoint: u64,
    /// How many instances this one replaces, over the subtask's life.
    generation: u64,
    /// A replacement failed without harm to this instance: it is not tried
    /// again (the instance goes on until its memory limit, as without).
    gave_up: bool,
}

impl Recycler {
    pub(crate) fn new(pre: Pre, name: String, limits: InstanceLimits, generation: u64) -> Self {
        Self {
            pre,
            name,
            limits,
            opened: None,
            baseline: 0,
            last_checkpoint: 0,
            generation,
            gave_up: false,
        }
    }

    /// `open` succeeded with `subtask` and `config`, leaving `memory` bytes.
    pub(crate) fn opened(&mut self, subtask: &SubtaskInfo, config: &str, memory: usize) {
        self.opened = Some((subtask.clone(), config.to_string()));
        self.baseline = memory;
    }

    /// Operator state was taken for checkpoint `checkpoint`.
    pub(crate) fn checkpointed(&mut self, checkpoint: u64) {
        self.last_checkpoint = checkpoint;
    }

    fn give_up(&mut self, error: &WasmError) {
        self.gave_up = true;
        tracing::warn!(
            target: "weir_wasm::recycle",
            instance = %self.name,
            "cannot replace a UDF instance whose memory keeps growing ({error}); it goes on until its memory limit"
        );
    }
}

/// Whether an instance using `used` bytes, which used `baseline` after
/// `open`, under a limit of `limit` bytes, is to be replaced.
pub(crate) fn due(used: usize, baseline: usize, limit: usize) -> bool {
    let baseline = baseline.min(limit);
    used >= limit - limit / 8 && used.saturating_sub(baseline) > (limit - baseline) / 2
}

impl OperatorInstance {
    /// How many times this subtask's instance was replaced because its
    /// memory kept growing.
    pub fn replacements(&self) -> u64 {
        self.recycler.generation
    }

    /// Replaces the instance by a fresh one when its memory is due
    /// ([`due`]); called between calls.
    ///
    /// # Errors
    /// Only a trap of the old instance's `snapshot-state` (which poisons
    /// it, as any trap). When the guest's `snapshot-state` returns an error,
    /// or the fresh instance cannot be made, opened or given its state, the
    /// old one keeps its keyed state and goes on, and no replacement is
    /// tried again.
    pub(crate) fn recycle_if_bloated(&mut self) -> Result<(), WasmError> {
        let used = self.store.data().memory_bytes;
        if self.poisoned
            || self.recycler.gave_up
            || !due(
                used,
                self.recycler.baseline,
                self.recycler.limits.memory_bytes,
            )
        {
            return Ok(());
        }
        // Not before `open`: there is nothing to open a fresh one with.
        let Some((subtask, config)) = self.recycler.opened.clone() else {
            return Ok(());
        };
        self.recycle(used, &subtask, &config)
    }

    fn recycle(
        &mut self,
        used: usize,
        subtask: &SubtaskInfo,
        config: &str,
    ) -> Result<(), WasmError> {
        let items = match self.snapshot_state(self.recycler.last_checkpoint) {
            Ok(items) => items,
            Err(e @ WasmError::Guest { .. }) => {
                self.recycler.give_up(&e);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let r = &self.recycler;
        let clock = self.store.data().clock.clone();
        let made = instantiate_pre(
            &r.pre,
            r.name.clone(),
            None,
            r.limits,
            Some(clock),
            r.generation + 1,
        );
        let mut fresh = match made {
            Ok(fresh) => fresh,
            Err(e) => {
                self.recycler.give_up(&e);
                return Ok(());
            }
        };
        // The keyed state (timers and write-back buffer included) moves
        // only into an instance that exists, and back if it fails to open.
        let data = self.store.data_mut();
        let (state, watermark) = (data.state.take(), data.watermark);
        let fresh_data = fresh.store.data_mut();
        fresh_data.state = state;
        fresh_data.watermark = watermark;
        if let Err(e) = fresh
            .open(subtask, config)
            .and_then(|()| fresh.restore_state(items))
        {
            self.store.data_mut().state = fresh.store.data_mut().state.take();
            self.recycler.give_up(&e);
            return Ok(());
        }
        fresh.recycler.baseline = fresh.store.data().memory_bytes;
        fresh.recycler.last_checkpoint = self.recycler.last_checkpoint;
        fresh.packed_batch = std::mem::take(&mut self.packed_batch);
        tracing::info!(
            target: "weir_wasm::recycle",
            instance = %self.recycler.name,
            memory_mib = used >> 20,
            limit_mib = self.recycler.limits.memory_bytes >> 20,
            fresh_mib = fresh.recycler.baseline >> 20,
            generation = fresh.recycler.generation,
            "replaced a UDF instance whose memory kept growing"
        );
        *self = fresh;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::due;

    const MIB: usize = 1 << 20;

    #[test]
    fn an_instance_is_replaced_near_its_limit_only() {
        // A 64 MiB limit, 10 MiB after open.
        assert!(!due(40 * MIB, 10 * MIB, 64 * MIB));
        assert!(!due(55 * MIB, 10 * MIB, 64 * MIB));
        assert!(due(56 * MIB, 10 * MIB, 64 * MIB));
        assert!(due(64 * MIB, 10 * MIB, 64 * MIB));
    }

    #[test]
    fn a_function_that_needs_most_of_its_memory_from_the_start_is_not_replaced_at_once() {
        // 60 of 64 MiB after open: only once it grew by half the 4 MiB left.
        assert!(!due(61 * MIB, 60 * MIB, 64 * MIB));
        assert!(due(62 * MIB + 1, 60 * MIB, 64 * MIB));
        // Open already at the limit: never due (nothing left to grow into).
        assert!(!due(64 * MIB, 64 * MIB, 64 * MIB));
    }
}
