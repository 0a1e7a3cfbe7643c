//! Adapters from the user-facing traits to the `operator` world's exports.
//! Used by [`crate::export!`]; not for direct use.
//!
//! Every adapter works on packed batches (`weir_abi`): it reads records
//! borrowed from the host's buffer and writes its outputs, values encoded in
//! place, into one output buffer. The typed `handler.process` and
//! `on-timer` exports pack and unpack around the same code.

use std::marker::PhantomData;

use crate::bindings::weir::operator::types::{
    Context, Output, RecordError, SideRecord, StreamRecord, TimeDomain,
};
use crate::{
    Collector, Decode, Encode, FilterFunction, FlatMapFunction, KeyedProcessFunction, MapFunction,
    OpenContext, state_cache,
};
use weir_abi::RecordRef;

/// The lifecycle every exported function goes through.
pub trait Adapter: Sized {
    /// Decodes the configuration and creates the function.
    ///
    /// # Errors
    /// Invalid configuration, or the function's own `open` error.
    fn open(ctx: Context) -> Result<Self, String>;
    /// Processes one packed batch, appending packed outputs to `out`.
    ///
    /// # Panics
    /// When the batch is malformed (the host never sends one): the
    /// component traps.
    fn process(&mut self, batch: &[u8], out: &mut Vec<u8>);
    /// Ends the input.
    ///
    /// # Errors
    /// The function's own `close` error.
    fn close(&mut self) -> Result<(), String> {
        Ok(())
    }
    /// A timer fired (only keyed process functions register timers);
    /// appends packed outputs to `out`.
    fn on_timer(&mut self, key: Vec<u8>, timestamp: i64, domain: TimeDomain, out: &mut Vec<u8>) {
        let _ = (key, timestamp, domain, out);
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

/// The records of a packed batch with their index; a malformed batch traps.
fn records(batch: &[u8]) -> impl Iterator<Item = (usize, RecordRef<'_>)> {
    weir_abi::records(batch).enumerate().map(|(i, record)| {
        at_input(i);
        match record {
            Ok(record) => (i, record),
            Err(e) => panic!("weir: the host sent a {e}"),
        }
    })
}

fn record_error(out: &mut Vec<u8>, index: usize, message: &str) {
    weir_abi::write_error(out, u32::try_from(index).unwrap_or(u32::MAX), message);
}

/// Appends an emitted record whose value `value` encodes in place.
pub(crate) fn emit_into(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    timestamp: Option<i64>,
    value: impl Encode,
) {
    weir_abi::begin_emit(out);
    record_into(out, key, timestamp, value);
}

/// Appends an emitted record whose value `write` appends in place; when
/// `write` fails, the output buffer is left as it was.
pub(crate) fn try_emit_into<E>(
    out: &mut Vec<u8>,
    key: Option<&[u8]>,
    timestamp: Option<i64>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
) -> Result<(), E> {
    let start = out.len();
    weir_abi::begin_emit(out);
    let slot = weir_abi::begin_record(out, key, timestamp);
    match write(out) {
        Ok(()) => {
            weir_abi::finish_value(out, slot);
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Appends a side-output record whose value `value` encodes in place.
pub(crate) fn side_into(
    out: &mut Vec<u8>,
    output: &str,
    key: Option<&[u8]>,
    timestamp: Option<i64>,
    value: impl Encode,
) {
    weir_abi::begin_side(out, output);
    record_into(out, key, timestamp, value);
}

/// Appends a record (after its output tag), encoding the value in place.
fn record_into(out: &mut Vec<u8>, key: Option<&[u8]>, timestamp: Option<i64>, value: impl Encode) {
    let slot = weir_abi::begin_record(out, key, timestamp);
    value.encode_into(out);
    weir_abi::finish_value(out, slot);
}

/// Packs a typed batch (for the typed `handler.process` export).
pub fn pack(batch: &[StreamRecord]) -> Vec<u8> {
    let size: usize = batch.iter().map(|r| r.value.len() + 32).sum();
    let mut packed = Vec::with_capacity(size);
    for r in batch {
        weir_abi::write_record(&mut packed, r.key.as_deref(), &r.value, r.timestamp);
    }
    packed
}

/// Unpacks outputs this SDK wrote (for the typed exports).
pub fn unpack(outputs: &[u8]) -> Vec<Output> {
    let record = |r: RecordRef<'_>| StreamRecord {
        key: r.key.map(<[u8]>::to_vec),
        value: r.value.to_vec(),
        timestamp: r.timestamp,
    };
    weir_abi::outputs(outputs)
        .map(|output| match output {
            Ok(weir_abi::OutputRef::Emit(r)) => Output::Emit(record(r)),
            Ok(weir_abi::OutputRef::Side { output, record: r }) => Output::Side(SideRecord {
                output: output.to_string(),
                record: record(r),
            }),
            Ok(weir_abi::OutputRef::Error { input, message }) => Output::Error(RecordError {
                input,
                message: message.to_string(),
            }),
            Err(e) => panic!("weir: the SDK wrote a {e}"),
        })
        .collect()
}

/// Runs a [`MapFunction`].
pub struct MapAdapter<F>(F);

impl<F: MapFunction> Adapter for MapAdapter<F> {
    fn open(ctx: Context) -> Result<Self, String> {
        Ok(Self(F::open(config(&ctx)?, &open_context(&ctx))?))
    }

    forward_operator_state!();

    fn process(&mut self, batch: &[u8], out: &mut Vec<u8>) {
        for (i, record) in records(batch) {
            match <F::In<'_> as Decode>::decode(record.value).and_then(|v| self.0.map(v)) {
                Ok(value) => emit_into(out, record.key, record.timestamp, value),
                Err(message) => record_error(out, i, &message),
            }
        }
    }
}

/// Runs a [`FilterFunction`].
pub struct FilterAdapter<F>(F);

impl<F: FilterFunction> Adapter for FilterAdapter<F> {
    fn open(ctx: Context) -> Result<Self, String> {
        Ok(Self(F::open(config(&ctx)?, &open_context(&ctx))?))
    }

    forward_operator_state!();

    fn process(&mut self, batch: &[u8], out: &mut Vec<u8>) {
        for (i, record) in records(batch) {
            match <F::In<'_> as Decode>::decode(record.value).and_then(|v| self.0.filter(&v)) {
                Ok(true) => {
                    weir_abi::begin_emit(out);
                    weir_abi::write_record(out, record.key, record.value, record.timestamp);
                }
                Ok(false) => {}
                Err(message) => record_error(out, i, &message),
            }
        }
    }
}

/// Runs a [`FlatMapFunction`].
pub struct FlatMapAdapter<F>(F);

impl<F: FlatMapFunction> Adapter for FlatMapAdapter<F> {
    fn open(ctx: Context) -> Result<Self, String> {
        Ok(Self(F::open(config(&ctx)?, &open_context(&ctx))?))
    }

    forward_operator_state!();

    fn process(&mut self, batch: &[u8], out: &mut Vec<u8>) {
        for (i, record) in records(batch) {
            let result = <F::In<'_> as Decode>::decode(record.value).and_then(|v| {
                let mut collector = Collector {
                    key: record.key,
                    timestamp: record.timestamp,
                    outputs: &mut *out,
                    _marker: PhantomData,
                };
                self.0.flat_map(v, &mut collector)
            });
            if let Err(message) = result {
                record_error(out, i, &message);
            }
        }
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

    fn process(&mut self, batch: &[u8], out: &mut Vec<u8>) {
        // The host forgets the current key between calls; within a batch we
        // only tell it when the key changes (records of one key often come
        // in runs).
        let mut current: Option<&[u8]> = None;
        for (i, record) in records(batch) {
            let Some(key) = record.key else {
                record_error(
                    out,
                    i,
                    "keyed_process needs a keyed stream (key_by) but the record has no key",
                );
                continue;
            };
            if current != Some(key) {
                state_cache::set_key(key);
                current = Some(key);
            }
            let result = <F::In<'_> as Decode>::decode(record.value).and_then(|v| {
                let mut collector = Collector {
                    key: Some(key),
                    timestamp: record.timestamp,
                    outputs: &mut *out,
                    _marker: PhantomData,
                };
                self.0.process(key, v, &mut collector)
            });
            if let Err(message) = result {
                record_error(out, i, &message);
            }
            state_cache::evict_if_full();
        }
    }

    fn close(&mut self) -> Result<(), String> {
        self.0.close()
    }

    fn on_timer(&mut self, key: Vec<u8>, timestamp: i64, domain: TimeDomain, out: &mut Vec<u8>) {
        CURRENT_INPUT.with(|c| c.set(None));
        state_cache::set_key(&key);
        let mut collector = Collector {
            key: Some(&key),
            timestamp: Some(timestamp),
            outputs: &mut *out,
            _marker: PhantomData,
        };
        if let Err(message) = self.0.on_timer(&key, timestamp, domain, &mut collector) {
            record_error(out, 0, &format!("on_timer at {timestamp}: {message}"));
        }
        state_cache::evict_if_full();
    }
}
