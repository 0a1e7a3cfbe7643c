//! Adapters from the user-facing traits to the `operator` world's exports.
//! Used by [`crate::export!`]; not for direct use.

use std::marker::PhantomData;

use crate::bindings::weir::operator::keyed_state;
use crate::bindings::weir::operator::types::{
    Context, Output, RecordError, StreamRecord, TimeDomain,
};
use crate::{
    Collector, Decode, Encode, FilterFunction, FlatMapFunction, KeyedProcessFunction, MapFunction,
    OpenContext,
};

/// The lifecycle every exported function goes through.
pub trait Adapter: Sized {
    /// Decodes the configuration and creates the function.
    ///
    /// # Errors
    /// Invalid configuration, or the function's own `open` error.
    fn open(ctx: Context) -> Result<Self, String>;
    /// Processes one batch.
    fn process(&mut self, batch: Vec<StreamRecord>) -> Vec<Output>;
    /// Ends the input.
    ///
    /// # Errors
    /// The function's own `close` error.
    fn close(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// A timer fired (only keyed process functions register timers).
    fn on_timer(&mut self, key: Vec<u8>, timestamp: i64, domain: TimeDomain) -> Vec<Output> {
        let _ = (key, timestamp, domain);
        Vec::new()
    }
    /// The function's operator state at a checkpoint.
    ///
    /// # Errors
    /// The function's own error (the checkpoint is declined).
    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>, String>;
    /// Gives operator state back to the function.
    ///
    /// # Errors
    /// The function's own error (the task fails).
    fn restore_state(&mut self, items: Vec<Vec<u8>>) -> Result<(), String>;
}

/// The operator-state part of [`Adapter`]: every adapter hands the calls
/// to the function it wraps.
macro_rules! forward_operator_state {
    () => {
        fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Vec<u8>>, String> {
            self.0.snapshot_state(checkpoint_id)
        }
        fn restore_state(&mut self, items: Vec<Vec<u8>>) -> Result<(), String> {
            self.0.restore_state(items)
        }
    };
}

std::thread_local! {
    static CURRENT_INPUT: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Records which input record of the batch is being processed, so that a
/// panic can name it: the hook prints `[weir] input-record=N` to stderr,
/// which the host reads back to report the record's origin (file and line).
fn at_input(index: usize) {
    CURRENT_INPUT.with(|c| c.set(Some(index)));
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(index) = CURRENT_INPUT.with(|c| c.get()) {
                eprintln!("[weir] input-record={index}");
            }
            default(info);
        }));
    });
}

fn open_context(ctx: &Context) -> OpenContext {
    install_panic_hook();
    OpenContext {
        operator_id: ctx.subtask.operator_id.clone(),
        subtask_index: ctx.subtask.index,
        parallelism: ctx.subtask.parallelism,
        max_parallelism: ctx.subtask.max_parallelism,
        attempt: ctx.subtask.attempt,
    }
}

fn config<C: serde::de::DeserializeOwned>(ctx: &Context) -> Result<C, String> {
    let text = ctx.config.trim();
    let text = if text.is_empty() { "{}" } else { text };
    serde_json::from_str(text).or_else(|e| {
        // A function whose config is `()` or an `Option` accepts "no config".
        let fallback = if text == "{}" {
            serde_json::from_str("null").ok()
        } else {
            None
        };
        fallback.ok_or_else(|| format!("invalid operator config: {e}"))
    })
}

fn record_error(index: usize, message: String) -> Output {
    Output::Error(RecordError {
        input: index as u32,
        message,
    })
}

/// Runs a [`MapFunction`].
pub struct MapAdapter<F>(F);

impl<F: MapFunction> Adapter for MapAdapter<F> {
    fn open(ctx: Context) -> Result<Self, String> {
        Ok(Self(F::open(config(&ctx)?, &open_context(&ctx))?))
    }

    forward_operator_state!();

    fn process(&mut self, batch: Vec<StreamRecord>) -> Vec<Output> {
        let mut outputs = Vec::with_capacity(batch.len());
        for (i, record) in batch.into_iter().enumerate() {
            at_input(i);
            let result = F::In::decode(record.value).and_then(|v| self.0.map(v));
            outputs.push(match result {
                Ok(out) => Output::Emit(StreamRecord {
                    key: record.key,
                    value: out.encode(),
                    timestamp: record.timestamp,
                }),
                Err(message) => record_error(i, message),
            });
        }
        outputs
    }
}

/// Runs a [`FilterFunction`].
pub struct FilterAdapter<F>(F);

impl<F: FilterFunction> Adapter for FilterAdapter<F> {
    fn open(ctx: Context) -> Result<Self, String> {
        Ok(Self(F::open(config(&ctx)?, &open_context(&ctx))?))
    }

    forward_operator_state!();

    fn process(&mut self, batch: Vec<StreamRecord>) -> Vec<Output> {
        let mut outputs = Vec::with_capacity(batch.len());
        for (i, record) in batch.into_iter().enumerate() {
            at_input(i);
            let keep = F::In::decode(record.value.clone()).and_then(|v| self.0.filter(&v));
            match keep {
                Ok(true) => outputs.push(Output::Emit(record)),
                Ok(false) => {}
                Err(message) => outputs.push(record_error(i, message)),
            }
        }
        outputs
    }
}

/// Runs a [`FlatMapFunction`].
pub struct FlatMapAdapter<F>(F);

impl<F: FlatMapFunction> Adapter for FlatMapAdapter<F> {
    fn open(ctx: Context) -> Result<Self, String> {
        Ok(Self(F::open(config(&ctx)?, &open_context(&ctx))?))
    }

    forward_operator_state!();

    fn process(&mut self, batch: Vec<StreamRecord>) -> Vec<Output> {
        let mut outputs = Vec::with_capacity(batch.len());
        for (i, record) in batch.into_iter().enumerate() {
            at_input(i);
            let key = record.key;
            let result = F::In::decode(record.value).and_then(|v| {
                let mut out = Collector {
                    key: &key,
                    timestamp: record.timestamp,
                    outputs: &mut outputs,
                    _marker: PhantomData,
                };
                self.0.flat_map(v, &mut out)
            });
            if let Err(message) = result {
                outputs.push(record_error(i, message));
            }
        }
        outputs
    }
}

/// Runs a [`KeyedProcessFunction`], making each record's key the current
/// key of the host's keyed state before the function sees the record.
pub struct KeyedProcessAdapter<F>(F);

impl<F: KeyedProcessFunction> Adapter for KeyedProcessAdapter<F> {
    fn open(ctx: Context) -> Result<Self, String> {
        Ok(Self(F::open(config(&ctx)?, &open_context(&ctx))?))
    }

    forward_operator_state!();

    fn process(&mut self, batch: Vec<StreamRecord>) -> Vec<Output> {
        let mut outputs = Vec::with_capacity(batch.len());
        // The host forgets the current key between calls; within a batch we
        // only tell it when the key changes (records of one key often come
        // in runs).
        let mut current: Option<Vec<u8>> = None;
        for (i, record) in batch.into_iter().enumerate() {
            at_input(i);
            let Some(key_bytes) = record.key.as_deref() else {
                outputs.push(record_error(
                    i,
                    "keyed_process needs a keyed stream (key_by) but the record has no key".into(),
                ));
                continue;
            };
            if current.as_deref() != Some(key_bytes) {
                keyed_state::set_current_key(key_bytes);
                current = Some(key_bytes.to_vec());
            }
            let result = F::In::decode(record.value).and_then(|v| {
                let mut out = Collector {
                    key: &record.key,
                    timestamp: record.timestamp,
                    outputs: &mut outputs,
                    _marker: PhantomData,
                };
                self.0.process(key_bytes, v, &mut out)
            });
            if let Err(message) = result {
                outputs.push(record_error(i, message));
            }
        }
        outputs
    }

    fn close(&mut self) -> Result<(), String> {
        self.0.close()
    }

    fn on_timer(&mut self, key: Vec<u8>, timestamp: i64, domain: TimeDomain) -> Vec<Output> {
        CURRENT_INPUT.with(|c| c.set(None));
        keyed_state::set_current_key(&key);
        let mut outputs = Vec::new();
        let key = Some(key);
        let mut out = Collector {
            key: &key,
            timestamp: Some(timestamp),
            outputs: &mut outputs,
            _marker: PhantomData,
        };
        let bytes = key.as_deref().unwrap_or_default();
        if let Err(message) = self.0.on_timer(bytes, timestamp, domain, &mut out) {
            outputs.push(record_error(
                0,
                format!("on_timer at {timestamp}: {message}"),
            ));
        }
        outputs
    }
}
