//! Building C UDF projects into components: bindings from the WIT
//! (wit-bindgen's C generator, as a library), clang for `wasm32-wasi` with
//! wasi-libc, and the component made from the core module with the WASI
//! preview 1 reactor adapter (wit-component, as `wasm-tools component new
//! --adapt` does).
//!
//! A project is a directory with `app.c` (and any other `*.c` and `*.h`
//! files; `test_*.c` are its unit tests). A project whose sources include
//! `weir_aggregate.h` builds world `aggregate`, any other world
//! `packed-operator` (world `operator` plus packed batches, which the host
//! then uses).
//! The SDK's sources come from this binary. Components are cached by the
//! SHA-256 of the project's sources, the SDK, the world and clang's version,
//! under `<cache>/udf-c/`.
//!
//! clang is `$WEIR_CLANG`, else the first of `clang-19`, `clang-20`,
//! `clang-18`, `clang` on PATH that has wasi-libc (`--target=wasm32-wasi`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::sources::content_key;
use super::{BuildError, dies_with_this_process, sdk};

/// What installs the C toolchain on Debian and Ubuntu.
pub const INSTALL: &str = "run `apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32` (Debian 12 or newer)";

/// The WASI preview 1 reactor adapter of the wasmtime release Weir embeds:
/// turns wasi-libc's `wasi_snapshot_preview1` imports into WASI 0.2.
const ADAPTER: &[u8] =
    wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;

/// clang's flags for a component's core module.
const CFLAGS: &[&str] = &[
    "--target=wasm32-wasi",
    "-mexec-model=reactor",
    "-O2",
    "-std=c11",
    "-Wall",
];

/// What else makes a component besides the sources, the SDK and clang: the
/// flags, the bindings generator and the adapter (part of the cache key, so
/// a `weir` with other ones builds anew).
fn toolchain_id() -> String {
    use sha2::{Digest, Sha256};
    let adapter = super::sources::short_hex(&Sha256::digest(ADAPTER));
    format!(
        "{} wit-bindgen-c 0.60.0 adapter {adapter}",
        CFLAGS.join(" ")
    )
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The project's C sources (`*.c` and `*.h`), as (relative path, path).
fn sources(dir: &Path) -> Result<Vec<(String, PathBuf)>, BuildError> {
    let mut files = Vec::new();
    super::sources::matching(dir, dir, &mut files, &|name| {
        name.ends_with(".c") || name.ends_with(".h")
    })?;
    files.sort();
    Ok(files)
}

/// Whether `name` is one of the project's unit tests (`test_*.c`).
fn is_test(relative: &str) -> bool {
    Path::new(relative)
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("test_"))
}

/// `aggregate` when a source includes `weir_aggregate.h`, else
/// `packed-operator` (world `operator` with packed batches).
fn world_of(files: &[(String, PathBuf)]) -> Result<&'static str, BuildError> {
    for (relative, path) in files {
        if is_test(relative) {
            continue;
        }
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        if text.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("#include") && l.contains("weir_aggregate.h")
        }) {
            return Ok("aggregate");
        }
    }
    Ok("packed-operator")
}

/// A clang that compiles for `wasm32-wasi` (wasi-libc found), and its
/// version line.
fn clang() -> Option<(PathBuf, String)> {
    let candidates: Vec<PathBuf> = match std::env::var_os("WEIR_CLANG") {
        Some(c) => vec![c.into()],
        None => ["clang-19", "clang-20", "clang-18", "clang"]
            .iter()
            .map(PathBuf::from)
            .collect(),
    };
    candidates.into_iter().find_map(|clang| {
        // Preprocessing a libc header tells whether wasi-libc is there.
        let mut child = Command::new(&clang)
            .args([
                "--target=wasm32-wasi",
                "-E",
                "-x",
                "c",
                "-",
                "-o",
                "/dev/null",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take()?;
            stdin.write_all(b"#include <stdlib.h>\n").ok()?;
        }
        if !child.wait().ok()?.success() {
            return None;
        }
        let version = Command::new(&clang).arg("--version").output().ok()?;
        let version = String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        Some((clang, version))
    })
}

/// Writes the C bindings of `world` (wit-bindgen's C generator:
/// `<world>.h`, `<world>.c`, `<world>_component_type.o`) into `out`.
fn bindings(wit: &Path, world: &str, out: &Path) -> Result<(), BuildError> {
    let script = |message: String| BuildError::Script {
        dir: wit.to_path_buf(),
        message,
    };
    let mut resolve = wit_parser::Resolve::default();
    let (package, _) = resolve
        .push_path(wit)
        .map_err(|e| script(format!("reading the WIT: {e:#}")))?;
    let world_id = resolve
        .select_world(&[package], Some(world))
        .map_err(|e| script(format!("{e:#}")))?;
    let mut files = wit_bindgen_core::Files::default();
    wit_bindgen_c::Opts::default()
        .build()
        .generate(&mut resolve, world_id, &mut files)
        .map_err(|e| script(format!("generating the C bindings: {e:#}")))?;
    std::fs::create_dir_all(out).map_err(io(out))?;
    for (name, bytes) in files.iter() {
        let path = out.join(name);
        std::fs::write(&path, bytes).map_err(io(&path))?;
    }
    Ok(())
}

/// The SDK's C sources a component of `world` links.
fn sdk_sources(sdk: &Path, world: &str) -> Vec<PathBuf> {
    let src = sdk.join("guest-sdk/c/src");
    let names: &[&str] = if world == "aggregate" {
        &["weir_json.c", "weir_aggregate.c"]
    } else {
        &[
            "weir_json.c",
            "weir_runtime.c",
            "weir_packed.c",
            "weir_operator.c",
        ]
    };
    names.iter().map(|n| src.join(n)).collect()
}

/// Builds the C UDF project in `dir` and returns the component's path.
///
/// # Errors
/// [`BuildError::NotAProject`] without `app.c`, [`BuildError::MissingTool`]
/// without a clang that has wasi-libc, [`BuildError::Failed`] when the
/// compiler fails (its messages are on stderr), [`BuildError::Script`]
/// when the core module cannot be made a component.
pub fn build_c_udf(dir: &Path) -> Result<PathBuf, BuildError> {
    let dir = std::path::absolute(dir).map_err(io(dir))?;
    if !dir.join("app.c").is_file() {
        return Err(BuildError::NotAProject(dir));
    }
    let (clang, version) = clang().ok_or(BuildError::MissingTool {
        dir: dir.clone(),
        tool: "clang with wasi-libc (--target=wasm32-wasi)",
        install: INSTALL,
    })?;
    let files = sources(&dir)?;
    let world = world_of(&files)?;
    let product: Vec<(String, PathBuf)> = files
        .iter()
        .filter(|(relative, _)| !is_test(relative))
        .cloned()
        .collect();
    let sdk_root = sdk::c()?;
    let key = content_key(
        &[sdk::c_hash().as_str(), world, &version, &toolchain_id()],
        product.clone(),
    )?;
    let cache = crate::cache_root().join("udf-c");
    let out = cache.join(format!("{key}.wasm"));
    if out.is_file() {
        return Ok(out);
    }
    let work = cache.join(format!(".work-{key}-{}", super::unique_suffix()));
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let result = (|| {
        let generated = work.join("gen");
        bindings(&sdk_root.join("wit"), world, &generated)?;
        let core = work.join("core.wasm");
        let mut command = Command::new(&clang);
        dies_with_this_process(&mut command);
        command
            .args(CFLAGS)
            .arg("-I")
            .arg(sdk_root.join("guest-sdk/c/include"))
            .arg("-I")
            .arg(&generated)
            .arg("-I")
            .arg(&dir)
            .args(
                product
                    .iter()
                    .filter(|(r, _)| r.ends_with(".c"))
                    .map(|(_, p)| p),
            )
            .args(sdk_sources(&sdk_root, world))
            .arg(generated.join(format!("{}.c", world.replace('-', "_"))))
            .arg(generated.join(format!("{}_component_type.o", world.replace('-', "_"))))
            .arg("-lm")
            .arg("-o")
            .arg(&core)
            .current_dir(&dir)
            .stdin(Stdio::null());
        let status = command.status().map_err(io(&clang))?;
        if !status.success() {
            return Err(BuildError::Failed {
                dir: dir.clone(),
                status: status.to_string(),
            });
        }
        let module = std::fs::read(&core).map_err(io(&core))?;
        let component = wit_component::ComponentEncoder::default()
            .validate(true)
            .module(&module)
            .and_then(|e| e.adapter("wasi_snapshot_preview1", ADAPTER))
            .and_then(|mut e| e.encode())
            .map_err(|e| BuildError::Script {
                dir: dir.clone(),
                message: format!("making a component of the core module: {e:#}"),
            })?;
        std::fs::create_dir_all(&cache).map_err(io(&cache))?;
        let tmp = work.join("component.wasm");
        std::fs::write(&tmp, component).map_err(io(&tmp))?;
        // Another build of the same sources may have finished first; either
        // component is the same.
        match std::fs::rename(&tmp, &out) {
            Err(source) if !out.is_file() => Err(BuildError::Io {
                path: out.clone(),
                source,
            }),
            _ => Ok(out.clone()),
        }
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// Runs the project's unit tests (`test_*.c`) natively: the host's C
/// compiler (`$CC`, else `cc`) builds them with the project's sources and
/// the SDK's in-memory host (`weir_testing.h`), and runs them.
///
/// # Errors
/// [`BuildError::MissingTool`] without a C compiler, [`BuildError::Failed`]
/// when they do not compile, [`BuildError::TestsFailed`] when a test fails.
pub fn test_c_udf(dir: &Path) -> Result<(), BuildError> {
    let dir = std::path::absolute(dir).map_err(io(dir))?;
    if !dir.join("app.c").is_file() {
        return Err(BuildError::NotAProject(dir));
    }
    let cc = std::env::var_os("CC").unwrap_or_else(|| "cc".into());
    let files = sources(&dir)?;
    let world = world_of(&files)?;
    let sdk_root = sdk::c()?;
    let work = crate::cache_root()
        .join("udf-c")
        .join(format!(".test-{}", super::unique_suffix()));
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    let result = (|| {
        let binary = work.join("tests");
        let src = sdk_root.join("guest-sdk/c/src");
        let mut sdk_files = vec![src.join("weir_json.c"), src.join("weir_testing.c")];
        if world != "aggregate" {
            sdk_files.push(src.join("weir_runtime.c"));
        }
        let mut command = Command::new(&cc);
        dies_with_this_process(&mut command);
        command
            .args(["-std=c11", "-O1", "-g", "-Wall"])
            .arg("-I")
            .arg(sdk_root.join("guest-sdk/c/include"))
            .arg("-I")
            .arg(&dir)
            .args(
                files
                    .iter()
                    .filter(|(r, _)| r.ends_with(".c"))
                    .map(|(_, p)| p),
            )
            .args(&sdk_files)
            .arg("-lm")
            .arg("-o")
            .arg(&binary)
            .current_dir(&dir)
            .stdin(Stdio::null());
        let status = match command.status() {
            Ok(status) => status,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BuildError::MissingTool {
                    dir: dir.clone(),
                    tool: "a C compiler (cc)",
                    install: "run `apt-get install gcc` (or set CC)",
                });
            }
            Err(e) => return Err(io(Path::new(&cc))(e)),
        };
        if !status.success() {
            return Err(BuildError::Failed {
                dir: dir.clone(),
                status: status.to_string(),
            });
        }
        let mut run = Command::new(&binary);
        dies_with_this_process(&mut run);
        let status = run.current_dir(&dir).status().map_err(io(&binary))?;
        super::tests_passed(&dir, status)
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_world_follows_the_aggregate_header() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.c"), "#include \"weir.h\"\n").unwrap();
        std::fs::write(
            dir.path().join("test_app.c"),
            "#include \"weir_aggregate.h\"\n",
        )
        .unwrap();
        assert_eq!(
            world_of(&sources(dir.path()).unwrap()).unwrap(),
            "packed-operator"
        );
        std::fs::write(dir.path().join("agg.c"), "  #include <weir_aggregate.h>\n").unwrap();
        assert_eq!(
            world_of(&sources(dir.path()).unwrap()).unwrap(),
            "aggregate"
        );
    }

    #[test]
    fn the_wit_has_c_bindings_for_both_worlds() {
        let dir = tempfile::tempdir().unwrap();
        let wit = dir.path().join("wit");
        std::fs::create_dir_all(&wit).unwrap();
        std::fs::write(
            wit.join("operator.wit"),
            include_str!("../../../../wit/operator.wit"),
        )
        .unwrap();
        for world in ["packed-operator", "aggregate"] {
            let out = dir.path().join(world);
            bindings(&wit, world, &out).unwrap();
            let file = world.replace('-', "_");
            let header = std::fs::read_to_string(out.join(format!("{file}.h"))).unwrap();
            assert!(header.contains("exports_weir_operator_"), "{world}");
            assert!(out.join(format!("{file}_component_type.o")).is_file());
        }
    }
}
