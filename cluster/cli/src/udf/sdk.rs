//! The guest SDKs and the WIT this binary carries, written out on demand
//! into the Weir cache so that a UDF project builds without a checkout of
//! the Weir repository.
//!
//! Each set of files goes to `<cache>/sdk/<name>-<hash>/` in the layout of
//! the repository (`wit/operator.wit`, `guest-sdk/python/weir/`,
//! `guest-sdk/rust/`, `abi/`), where `<hash>` is the SHA-256 of the files
//! (16 hex digits): a new binary with changed SDK sources gets a new
//! directory, and an unchanged one reuses it.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::BuildError;

/// One embedded file: its path in the repository and its text.
pub(super) struct Embedded {
    pub(super) path: &'static str,
    pub(super) text: &'static str,
}

macro_rules! embed {
    ($($path:literal),* $(,)?) => {
        &[$(Embedded { path: $path, text: include_str!(concat!("../../../../", $path)) }),*]
    };
}

/// The WIT package every SDK builds against.
const WIT: &[Embedded] = embed!("wit/operator.wit");

/// The Python SDK (package `weir`).
const PYTHON: &[Embedded] = embed!(
    "guest-sdk/python/weir/__init__.py",
    "guest-sdk/python/weir/_component.py",
    "guest-sdk/python/weir/_packed.py",
    "guest-sdk/python/weir/_runtime.py",
    "guest-sdk/python/weir/main.py",
    "guest-sdk/python/weir/state.py",
    "guest-sdk/python/weir/testing.py",
);

/// The JavaScript SDK (package `weir`).
const JS: &[Embedded] = embed!(
    "guest-sdk/js/package.json",
    "guest-sdk/js/src/index.js",
    "guest-sdk/js/src/index.d.ts",
    "guest-sdk/js/src/runtime.js",
    "guest-sdk/js/src/testing.js",
    "guest-sdk/js/src/testing.d.ts",
    "guest-sdk/js/src/component-operator.js",
    "guest-sdk/js/src/component-aggregate.js",
);

/// The C SDK (headers and sources; bindings are generated per build).
const C: &[Embedded] = embed!(
    "guest-sdk/c/include/weir.h",
    "guest-sdk/c/include/weir_aggregate.h",
    "guest-sdk/c/include/weir_json.h",
    "guest-sdk/c/include/weir_testing.h",
    "guest-sdk/c/src/weir_host.h",
    "guest-sdk/c/src/weir_json.c",
    "guest-sdk/c/src/weir_runtime.c",
    "guest-sdk/c/src/weir_packed.c",
    "guest-sdk/c/src/weir_operator.c",
    "guest-sdk/c/src/weir_aggregate.c",
    "guest-sdk/c/src/weir_testing.c",
);

/// The Rust SDKs (`weir-guest`, `weir-guest-aggregate`) and the packed
/// batch format they use (`weir-abi`).
const RUST: &[Embedded] = embed!(
    "guest-sdk/rust/Cargo.toml",
    "guest-sdk/rust/src/lib.rs",
    "guest-sdk/rust/src/adapters.rs",
    "guest-sdk/rust/src/data.rs",
    "guest-sdk/rust/src/state.rs",
    "guest-sdk/rust/src/state_cache/mod.rs",
    "guest-sdk/rust/src/state_cache/map.rs",
    "guest-sdk/rust/src/state_cache/typed.rs",
    "guest-sdk/rust/src/state_cache/value.rs",
    "guest-sdk/rust/src/words.rs",
    "guest-sdk/aggregate/Cargo.toml",
    "guest-sdk/aggregate/src/lib.rs",
    "abi/Cargo.toml",
    "abi/src/lib.rs",
);

/// The text of `file` as written outside the repository: `weir-abi` takes
/// its lints from the repository's workspace, which is not there.
fn standalone(file: &Embedded) -> String {
    if file.path == "abi/Cargo.toml" {
        file.text.replace("[lints]\nworkspace = true\n", "")
    } else {
        file.text.to_string()
    }
}

/// 16 hex digits of the SHA-256 of the files' paths and texts.
fn hash(sets: &[&[Embedded]]) -> String {
    let mut hasher = Sha256::new();
    for file in sets.iter().flat_map(|set| set.iter()) {
        hasher.update(file.path.as_bytes());
        hasher.update([0]);
        hasher.update(standalone(file).as_bytes());
        hasher.update([0]);
    }
    super::sources::short_hex(&hasher.finalize())
}

/// Writes `sets` under `<cache>/sdk/<name>-<hash>/` unless already there
/// and returns that directory.
fn materialize(name: &str, sets: &[&[Embedded]]) -> Result<PathBuf, BuildError> {
    let root = crate::cache_root().join("sdk");
    let dir = root.join(format!("{name}-{}", hash(sets)));
    if dir.join(".complete").is_file() {
        return Ok(dir);
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    // Written aside and renamed, so a concurrent build never sees half.
    let tmp = root.join(format!(".{name}-{}.tmp", super::unique_suffix()));
    let _ = std::fs::remove_dir_all(&tmp);
    for file in sets.iter().flat_map(|set| set.iter()) {
        let path = tmp.join(file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, standalone(file)).map_err(io(&path))?;
    }
    std::fs::write(tmp.join(".complete"), b"").map_err(io(&tmp))?;
    if let Err(e) = std::fs::rename(&tmp, &dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        // Another build wrote the same files first.
        if !dir.join(".complete").is_file() {
            return Err(BuildError::Io {
                path: dir,
                source: e,
            });
        }
    }
    Ok(dir)
}

/// The Python SDK: `<dir>/guest-sdk/python` holds package `weir`, and
/// `<dir>/wit` the WIT package.
///
/// # Errors
/// [`BuildError::Io`] when the cache cannot be written.
pub(super) fn python() -> Result<PathBuf, BuildError> {
    materialize("python", &[WIT, PYTHON])
}

/// The Rust SDKs: `<dir>/guest-sdk/rust` (`weir-guest`),
/// `<dir>/guest-sdk/aggregate` (`weir-guest-aggregate`).
///
/// # Errors
/// [`BuildError::Io`] when the cache cannot be written.
pub(super) fn rust() -> Result<PathBuf, BuildError> {
    materialize("rust", &[WIT, RUST])
}

/// The JavaScript SDK: `<dir>/guest-sdk/js` (package `weir`), `<dir>/wit`.
///
/// # Errors
/// [`BuildError::Io`] when the cache cannot be written.
pub(super) fn js() -> Result<PathBuf, BuildError> {
    materialize("js", &[WIT, JS])
}

/// The C SDK: `<dir>/guest-sdk/c/{include,src}`, `<dir>/wit`.
///
/// # Errors
/// [`BuildError::Io`] when the cache cannot be written.
pub(super) fn c() -> Result<PathBuf, BuildError> {
    materialize("c", &[WIT, C])
}

/// The hash that names the C SDK's directory (part of the key of a built
/// C component).
pub(super) fn c_hash() -> String {
    hash(&[WIT, C])
}

/// The hash that names the JavaScript SDK's directory.
pub(super) fn js_hash() -> String {
    hash(&[WIT, JS])
}

/// The hash that names the Python SDK's directory (part of the key of a
/// built Python component).
pub(super) fn python_hash() -> String {
    hash(&[WIT, PYTHON])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_abi_manifest_stands_alone() {
        let abi = RUST.iter().find(|f| f.path == "abi/Cargo.toml").unwrap();
        assert!(
            abi.text.contains("workspace = true"),
            "the repository's manifest changed"
        );
        assert!(
            !standalone(abi).contains("workspace"),
            "{}",
            standalone(abi)
        );
    }

    #[test]
    fn the_hash_follows_the_contents() {
        let a: &[Embedded] = &[Embedded {
            path: "x",
            text: "1",
        }];
        let b: &[Embedded] = &[Embedded {
            path: "x",
            text: "2",
        }];
        assert_ne!(hash(&[a]), hash(&[b]));
        assert_eq!(hash(&[a]), hash(&[a]));
        assert_eq!(hash(&[WIT, PYTHON]).len(), 16);
    }

    /// Every source file of the SDKs is embedded, in subdirectories too:
    /// `_packed.py` once was not, and every Python build failed to import
    /// it; then the Rust SDK's `state_cache` and `words`, and every Rust
    /// project that `weir udf new` made failed to build.
    #[test]
    fn every_sdk_source_file_is_embedded() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let sets = [
            (PYTHON, "guest-sdk/python/weir", ".py"),
            (JS, "guest-sdk/js/src", ".js"),
            (JS, "guest-sdk/js/src", ".ts"),
            (C, "guest-sdk/c/include", ".h"),
            (C, "guest-sdk/c/src", ".c"),
            (C, "guest-sdk/c/src", ".h"),
            (RUST, "guest-sdk/rust/src", ".rs"),
            (RUST, "guest-sdk/aggregate/src", ".rs"),
            (RUST, "abi/src", ".rs"),
        ];
        for (set, dir, ext) in sets {
            let mut dirs = vec![dir.to_string()];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(root.join(&dir)).unwrap() {
                    let entry = entry.unwrap();
                    let name = entry.file_name().into_string().unwrap();
                    let path = format!("{dir}/{name}");
                    if entry.file_type().unwrap().is_dir() {
                        dirs.push(path);
                    } else if name.ends_with(ext) {
                        assert!(
                            set.iter().any(|f| f.path == path),
                            "{path} is not embedded (cluster/cli/src/udf/sdk.rs)"
                        );
                    }
                }
            }
        }
    }
}
