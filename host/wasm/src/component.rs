//! The engine, the compiled-component cache and loading.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, ComponentExportIndex, HasSelf, Linker};
use wasmtime::{Config, Engine};

use crate::WasmError;
use crate::bindings::OperatorPre;
use crate::host::HostState;

/// How often the engine's epoch advances; call deadlines are multiples of it.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings of a [`WasmRuntime`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Directory for compiled components; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

impl RuntimeConfig {
    /// The default cache directory: `$WEIR_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/weir/components`, else `~/.cache/weir/components`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("WEIR_CACHE_DIR") {
            return Some(PathBuf::from(dir).join("components"));
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
        Some(base.join("weir").join("components"))
    }
}

/// Advances the engine epoch every [`EPOCH_TICK`] until dropped.
struct EpochTicker {
    stop: Arc<AtomicBool>,
}

impl EpochTicker {
    /// Starts the ticker thread: without it no call deadline would hold,
    /// so failing to start it is an error, not a silent loss.
    fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self { stop })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One wasmtime engine with its linker and component cache; shared by all
/// subtasks of a job (it is `Send + Sync`).
pub struct WasmRuntime {
    engine: Engine,
    linker: Linker<HostState>,
    cache_dir: Option<PathBuf>,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for WasmRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmRuntime")
            .field("cache_dir", &self.cache_dir)
            .finish_non_exhaustive()
    }
}

impl WasmRuntime {
    /// Creates the engine (component model, epoch interruption, 1 MiB wasm
    /// stack) and links WASI p2 and the `weir:operator` imports.
    ///
    /// # Errors
    /// [`WasmError::Engine`] when wasmtime rejects the configuration.
    pub fn new(config: RuntimeConfig) -> Result<Self, WasmError> {
        let mut wasm_config = Config::new();
        wasm_config.wasm_component_model(true);
        wasm_config.epoch_interruption(true);
        wasm_config.max_wasm_stack(1 << 20);
        // `WEIR_WASM_PERFMAP=1` names guest functions for `perf` (wasmtime
        // writes /tmp/perf-PID.map).
        if std::env::var_os("WEIR_WASM_PERFMAP").is_some() {
            wasm_config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if std::env::var_os("WEIR_WASM_JITDUMP").is_some() {
            wasm_config.profiler(wasmtime::ProfilingStrategy::JitDump);
        }
        let engine = Engine::new(&wasm_config).map_err(|e| WasmError::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| WasmError::Engine(e.to_string()))?;
        // Sleeps are Weir's: virtual, or bounded by the call deadline.
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::clocks::monotonic_clock::add_to_linker::<
            HostState,
            HasSelf<HostState>,
        >(&mut linker, |s| s)
        .map_err(|e| WasmError::Engine(e.to_string()))?;
        linker.allow_shadowing(false);
        crate::bindings::Operator::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| WasmError::Engine(e.to_string()))?;
        crate::bindings_v0_3::Operator::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| WasmError::Engine(e.to_string()))?;
        crate::bindings_v0_2::Operator::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| WasmError::Engine(e.to_string()))?;
        crate::bindings_v0_1::Operator::add_to_linker::<HostState, HasSelf<HostState>>(
            &mut linker,
            |s| s,
        )
        .map_err(|e| WasmError::Engine(e.to_string()))?;
        let ticker = EpochTicker::start(engine.clone()).map_err(|e| {
            WasmError::Engine(format!(
                "cannot start the epoch ticker thread that enforces call deadlines: {e}"
            ))
        })?;
        Ok(Self {
            engine,
            linker,
            cache_dir: config.cache_dir,
            _ticker: ticker,
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads the component at `path`: compiles it (or takes it from the
    /// cache), checks that it implements the `operator` world, and prepares
    /// an `InstancePre`.
    ///
    /// # Errors
    /// [`WasmError::Read`], [`WasmError::NotAComponent`],
    /// [`WasmError::Compile`] or [`WasmError::WorldMismatch`].
    pub fn load(&self, path: &Path) -> Result<OperatorComponent, WasmError> {
        let bytes = read_artifact(path)?;
        self.load_bytes(&path.display().to_string(), &bytes)
    }

    /// Loads a component from its bytes (an uploaded artifact), as
    /// [`WasmRuntime::load`] does from a file; `name` stands for it in
    /// errors. Compiled code is cached by the bytes' SHA-256.
    ///
    /// # Errors
    /// [`WasmError::NotAComponent`], [`WasmError::Compile`] or
    /// [`WasmError::WorldMismatch`].
    pub fn load_bytes(&self, name: &str, bytes: &[u8]) -> Result<OperatorComponent, WasmError> {
        let (component, shown, sha256) = self.compile_bytes(name, bytes)?;
        let pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| WasmError::WorldMismatch {
                    path: shown.clone(),
                    reason: describe_link_error(&e),
                })?;
        // The newest version first; an older component lacks its exports.
        let pre = match OperatorPre::new(pre.clone()) {
            Ok(current) => Pre::Current(current, packed_export(&component)),
            Err(e) => {
                if let Ok(old) = crate::bindings_v0_3::OperatorPre::new(pre.clone()) {
                    Pre::V0_3(old)
                } else if let Ok(old) = crate::bindings_v0_2::OperatorPre::new(pre.clone()) {
                    Pre::V0_2(old)
                } else if let Ok(old) = crate::bindings_v0_1::OperatorPre::new(pre) {
                    Pre::V0_1(old)
                } else {
                    return Err(WasmError::WorldMismatch {
                        path: shown.clone(),
                        reason: describe_link_error(&e),
                    });
                }
            }
        };
        Ok(OperatorComponent {
            pre,
            path: shown,
            sha256,
        })
    }

    /// Checks and compiles (or takes from the cache) a component's bytes;
    /// returns it with `name` (as shown in errors) and the bytes' SHA-256
    /// (hex).
    pub(crate) fn compile_bytes(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<(Component, String, String), WasmError> {
        let shown = name.to_string();
        check_component_header(bytes).map_err(|reason| WasmError::NotAComponent {
            path: shown.clone(),
            reason,
        })?;
        let digest = hex::encode(Sha256::digest(bytes));
        let component = self.compile_cached(bytes, &digest, &shown)?;
        Ok((component, shown, digest))
    }

    /// The linker holding WASI and every `weir:operator` import.
    pub(crate) fn linker(&self) -> &Linker<HostState> {
        &self.linker
    }

    fn compile_cached(
        &self,
        bytes: &[u8],
        digest: &str,
        shown: &str,
    ) -> Result<Component, WasmError> {
        let Some(dir) = &self.cache_dir else {
            return Component::new(&self.engine, bytes).map_err(|e| WasmError::Compile {
                path: shown.to_string(),
                reason: format!("{e:#}"),
            });
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        let file = dir.join(format!("{digest}-{:016x}.cwasm", hasher.finish()));
        // Read into memory rather than mmap (`deserialize_file`): a cache
        // file truncated under a live mapping would kill the process with
        // SIGBUS.
        if let Ok(cached) = std::fs::read(&file) {
            // SAFETY: the bytes are a file this runtime wrote with
            // `precompile_component` for an engine with the same
            // compatibility hash (part of the name), in the user's own cache
            // directory. A damaged entry fails to deserialise (wasmtime
            // checks the header and engine settings) and is recompiled below.
            #[allow(unsafe_code)]
            match unsafe { Component::deserialize(&self.engine, &cached) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!(
                    "ignoring damaged component cache entry {}: {e}",
                    file.display()
                ),
            }
        }
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(|e| WasmError::Compile {
                path: shown.to_string(),
                reason: format!("{e:#}"),
            })?;
        if let Err(e) = write_atomically(dir, &file, &compiled) {
            tracing::warn!("cannot write component cache entry {}: {e}", file.display());
        }
        // SAFETY: `compiled` was produced just now by this engine.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(&self.engine, &compiled) };
        component.map_err(|e| WasmError::Compile {
            path: shown.to_string(),
            reason: format!("{e:#}"),
        })
    }
}

/// Reads a component file.
pub(crate) fn read_artifact(path: &Path) -> Result<Vec<u8>, WasmError> {
    std::fs::read(path).map_err(|source| WasmError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn write_atomically(dir: &Path, file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".tmp-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, file)
}

/// Checks the 8-byte preamble: `\0asm` then the component-model version.
fn check_component_header(bytes: &[u8]) -> Result<(), String> {
    match bytes.get(..8) {
        Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => Err(
            "it is a core WebAssembly module; build a component (cargo build --target wasm32-wasip2, \
             componentize-py, componentize-js, or wasm-tools component new)"
                .into(),
        ),
        Some([0, b'a', b's', b'm', _, _, 1, 0]) => Ok(()),
        Some([0, b'a', b's', b'm', ..]) => Err("unknown WebAssembly version".into()),
        _ => Err("the file does not start with the WebAssembly magic bytes".into()),
    }
}

/// The interface a `packed-operator` component exports besides `handler`.
const PACKED_HANDLER: &str = "weir:operator/packed-handler@0.4.0";

/// The export index of `packed-handler.process-packed`, when the component
/// has it (a 0.4.0 component of world `packed-operator`, such as every
/// component of the Rust guest SDK). Its type is checked on instantiation.
fn packed_export(component: &Component) -> Option<ComponentExportIndex> {
    let interface = component.get_export_index(None, PACKED_HANDLER)?;
    component.get_export_index(Some(&interface), "process-packed")
}

/// A prepared component of one of the supported `weir:operator` versions.
#[derive(Clone)]
pub(crate) enum Pre {
    /// `weir:operator@0.4.0`, with the export of `packed-handler` when the
    /// component has it (world `packed-operator`).
    Current(OperatorPre<HostState>, Option<ComponentExportIndex>),
    /// `weir:operator@0.3.0` (no packed batches).
    V0_3(crate::bindings_v0_3::OperatorPre<HostState>),
    /// `weir:operator@0.2.0` (no operator state).
    V0_2(crate::bindings_v0_2::OperatorPre<HostState>),
    /// `weir:operator@0.1.0` (no timers).
    V0_1(crate::bindings_v0_1::OperatorPre<HostState>),
}

impl Pre {
    pub(crate) fn engine(&self) -> &Engine {
        match self {
            Pre::Current(p, _) => p.engine(),
            Pre::V0_3(p) => p.engine(),
            Pre::V0_2(p) => p.engine(),
            Pre::V0_1(p) => p.engine(),
        }
    }
}

impl OperatorComponent {
    /// True when the host hands the component its batches packed
    /// (`packed-handler.process-packed`, world `packed-operator` of 0.4.0,
    /// as every component of the Rust guest SDK); false when it calls the
    /// typed `handler.process`.
    pub fn takes_packed_batches(&self) -> bool {
        matches!(self.pre, Pre::Current(_, Some(_)))
    }

    /// The `weir:operator` version the component was built against.
    pub fn wit_version(&self) -> &'static str {
        match self.pre {
            Pre::Current(..) => "0.4.0",
            Pre::V0_3(_) => "0.3.0",
            Pre::V0_2(_) => "0.2.0",
            Pre::V0_1(_) => "0.1.0",
        }
    }
}

/// wasmtime's link errors say what is missing; keep the whole chain on one line.
pub(crate) fn describe_link_error(e: &wasmtime::Error) -> String {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    chain.join(": ")
}

/// A loaded component that implements the `operator` world.
pub struct OperatorComponent {
    pub(crate) pre: Pre,
    path: String,
    sha256: String,
}

impl OperatorComponent {
    /// Where it was loaded from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// SHA-256 of the artifact, hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_check_tells_modules_from_components() {
        assert!(
            check_component_header(b"\0asm\x01\0\0\0")
                .unwrap_err()
                .contains("core WebAssembly module")
        );
        assert!(check_component_header(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(
            check_component_header(b"hello world")
                .unwrap_err()
                .contains("magic")
        );
        assert!(check_component_header(b"").is_err());
    }
}
