//! Building user functions (UDFs) into WebAssembly components, in every
//! language Weir has an SDK for, and creating new UDF projects.
//!
//! [`build_udf`] detects a project's language from the files in its
//! directory (`Cargo.toml`: Rust, built by cargo for `wasm32-wasip2`;
//! `app.py`: Python, built by componentize-py; `app.js` or `app.ts`:
//! JavaScript or TypeScript, bundled by rolldown and built by
//! componentize-js; `app.c`: C, compiled by clang with wasi-libc; all with
//! the SDK that this binary carries) and returns
//! the component's path. Every build is cached: cargo's own incremental
//! build for Rust, the content hash of the project, the SDK and the WIT
//! for the others.

use std::path::{Path, PathBuf};
use std::process::Command;

mod c;
mod js;
mod pop_list_fix;
mod python;
mod rust;
mod scaffold;
mod sdk;
mod sources;

pub use c::{build_c_udf, test_c_udf};
pub use js::{build_js_udf, test_js_udf};
pub use python::COMPONENTIZE_PY;
pub use python::build_python_udf;
pub use rust::build_rust_udf;
pub use scaffold::{Kind, Language, NewError, new_project};

/// Why a UDF could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The directory has no Cargo.toml.
    #[error(
        "{0} is not a Rust UDF crate (no Cargo.toml); give a crate directory or a .wasm component"
    )]
    NotACrate(PathBuf),
    /// cargo could not be started.
    #[error("cannot run cargo to build {dir}: {source}")]
    Cargo {
        /// The crate.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The wasm32-wasip2 target is missing.
    #[error("building {0} needs the wasm32-wasip2 target: run `rustup target add wasm32-wasip2`")]
    MissingTarget(PathBuf),
    /// The build failed (cargo printed the compiler errors above).
    #[error("building the UDF {dir} failed (the compiler's errors are above): {status}")]
    Failed {
        /// The project.
        dir: PathBuf,
        /// The compiler's exit status.
        status: String,
    },
    /// The project's unit tests failed (their report is above).
    #[error("the unit tests of {dir} failed (their report is above): {status}")]
    TestsFailed {
        /// The project.
        dir: PathBuf,
        /// The test runner's exit status.
        status: String,
    },
    /// The directory is no UDF project of a language Weir knows.
    #[error(
        "{0} is not a UDF project: expected Cargo.toml (Rust), app.py (Python), app.js/app.ts (JavaScript/TypeScript) or app.c (C); give a project directory or a .wasm component"
    )]
    NotAProject(PathBuf),
    /// A tool the build needs is missing.
    #[error("building {dir} needs {tool}, which was not found: {install}")]
    MissingTool {
        /// The project.
        dir: PathBuf,
        /// The missing tool.
        tool: &'static str,
        /// The command that installs it.
        install: &'static str,
    },
    /// Reading or writing a file of the build failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The project's module could not be loaded to find its function.
    #[error("{dir}: {message}")]
    Script {
        /// The project.
        dir: PathBuf,
        /// The interpreter's error.
        message: String,
    },
    /// The build produced no `.wasm` (for example no `crate-type = ["cdylib"]`).
    #[error(
        "building {0} produced no .wasm component; does its Cargo.toml say `[lib] crate-type = [\"cdylib\"]`?"
    )]
    NoArtifact(PathBuf),
}

/// `Ok` when a test runner of the project in `dir` exited with success,
/// else [`BuildError::TestsFailed`].
fn tests_passed(dir: &Path, status: std::process::ExitStatus) -> Result<(), BuildError> {
    if status.success() {
        Ok(())
    } else {
        Err(BuildError::TestsFailed {
            dir: dir.to_path_buf(),
            status: status.to_string(),
        })
    }
}

/// A name for a scratch file or directory of this build that no other
/// build, in this process (tests build on several threads) or another,
/// uses: `<pid>-<n>`.
fn unique_suffix() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}-{n}", std::process::id())
}

/// The language of the UDF project in `dir`, from its files: `Cargo.toml`
/// (Rust), `app.py` (Python), `app.ts` (TypeScript), `app.js`
/// (JavaScript) or `app.c` (C).
///
/// # Errors
/// [`BuildError::NotAProject`] when neither is there.
pub fn detect_language(dir: &Path) -> Result<Language, BuildError> {
    if dir.join("Cargo.toml").is_file() {
        Ok(Language::Rust)
    } else if dir.join("app.py").is_file() {
        Ok(Language::Python)
    } else if dir.join("app.ts").is_file() {
        Ok(Language::TypeScript)
    } else if js::entry(dir).is_some() {
        Ok(Language::JavaScript)
    } else if dir.join("app.c").is_file() {
        Ok(Language::C)
    } else {
        Err(BuildError::NotAProject(dir.to_path_buf()))
    }
}

/// Runs the unit tests of the UDF project in `dir` on the host (no Wasm):
/// pytest with the Python SDK on the module path, `node --test` on the
/// bundled tests, the C tests with the SDK's in-memory host, or `cargo test`.
/// Their output goes to the terminal.
///
/// # Errors
/// [`BuildError::MissingTool`] when pytest or cargo is missing,
/// [`BuildError::TestsFailed`] when tests fail.
pub fn test_udf(dir: &Path) -> Result<(), BuildError> {
    let language = detect_language(dir)?;
    match language {
        Language::JavaScript | Language::TypeScript => return test_js_udf(dir),
        Language::C => return test_c_udf(dir),
        Language::Rust | Language::Python => {}
    }
    let mut command = match language {
        Language::JavaScript | Language::TypeScript | Language::C => {
            unreachable!("handled above")
        }
        Language::Python => {
            let sdk = sdk::python()?;
            let mut path = std::ffi::OsString::from(sdk.join("guest-sdk/python"));
            path.push(":");
            path.push(std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()));
            let mut command = Command::new("python3");
            command
                .args(["-m", "pytest", "-q"])
                .env("PYTHONPATH", path)
                .env("PYTHONDONTWRITEBYTECODE", "1");
            command
        }
        Language::Rust => {
            let mut command =
                Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
            // `--lib`: the unit tests only; linking the cdylib natively
            // fails (its export names hold `:` and `@`, which the
            // linker's version script cannot take).
            command
                .args(["test", "--lib"])
                .env(
                    "CARGO_TARGET_DIR",
                    crate::cache_root().join("udf-native-target"),
                )
                .env_remove("RUSTFLAGS");
            command
        }
    };
    dies_with_this_process(&mut command);
    let status = command
        .current_dir(dir)
        .status()
        .map_err(|source| BuildError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    if status.success() {
        return Ok(());
    }
    if language == Language::Python && status.code() == Some(1) {
        // pytest exits 1 on failed tests, python 1 on a missing module too.
        let has_pytest = Command::new("python3")
            .args(["-c", "import pytest"])
            .status()
            .is_ok_and(|s| s.success());
        if !has_pytest {
            return Err(BuildError::MissingTool {
                dir: dir.to_path_buf(),
                tool: "pytest",
                install: "run `pip install pytest`",
            });
        }
    }
    Err(BuildError::TestsFailed {
        dir: dir.to_path_buf(),
        status: status.to_string(),
    })
}

/// Builds the UDF project in `dir`, whatever its language, and returns the
/// path of the component.
///
/// # Errors
/// A [`BuildError`]; compiler messages go to stderr.
pub fn build_udf(dir: &Path) -> Result<PathBuf, BuildError> {
    match detect_language(dir)? {
        Language::Rust => build_rust_udf(dir),
        Language::Python => build_python_udf(dir),
        Language::JavaScript | Language::TypeScript => build_js_udf(dir),
        Language::C => build_c_udf(dir),
    }
}

/// Makes the child started by `command` get SIGKILL when the thread that
/// starts it (this process, for a build) dies, even by SIGKILL: a killed
/// `weir` must not leave a `cargo` behind holding the build lock
/// (Linux's `PR_SET_PDEATHSIG`; elsewhere nothing).
#[allow(unsafe_code)]
fn dies_with_this_process(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        let parent = std::process::id();
        // SAFETY: the closure runs between fork and exec and calls only
        // async-signal-safe functions (prctl, getppid, _exit).
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // The parent died before the prctl: no signal would come.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}
