//! Building Rust UDF crates into WebAssembly components (cargo).

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{BuildError, dies_with_this_process};

/// Builds the Rust UDF crate in `dir` for `wasm32-wasip2` (release profile)
/// and returns the path of the component. cargo's incremental build makes a
/// rebuild of an unchanged crate a no-op, so this doubles as the cache.
///
/// The build uses its own target directory under the Weir cache
/// (`udf-target`), never the caller's, so it can run while another cargo
/// holds the host build's lock.
///
/// cargo runs in `dir`, as it would for `cargo build` typed there: the
/// crate's own `.cargo/config.toml` (or one in a parent directory, such as
/// `udfs/.cargo/config.toml` in this repository) applies, with its
/// `rustflags` for `wasm32-wasip2`. `RUSTFLAGS` from the environment does
/// not: it is meant for the host build.
///
/// # Errors
/// A [`BuildError`] saying what went wrong; compiler messages go to stderr.
pub fn build_rust_udf(dir: &Path) -> Result<PathBuf, BuildError> {
    // Absolute, because cargo runs in `dir`, not in our working directory.
    let absolute = |path: PathBuf| {
        std::path::absolute(&path).map_err(|source| BuildError::Cargo {
            dir: dir.to_path_buf(),
            source,
        })
    };
    let crate_dir = absolute(dir.to_path_buf())?;
    let manifest = crate_dir.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::NotACrate(dir.to_path_buf()));
    }
    let target_dir = absolute(crate::cache_root().join("udf-target"))?;
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    dies_with_this_process(&mut command);
    let mut child = command
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(&crate_dir)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BuildError::Cargo {
            dir: dir.to_path_buf(),
            source,
        })?;
    // Forward cargo's human output, watching for the missing-target error.
    let stderr = child.stderr.take();
    let forward = std::thread::spawn(move || {
        let mut missing_target = false;
        if let Some(stderr) = stderr {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                missing_target |= line.contains("target may not be installed")
                    || line.contains("can't find crate for `core`");
                eprintln!("{line}");
            }
        }
        missing_target
    });
    let mut artifact = None;
    if let Some(stdout) = child.stdout.take() {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(wasm) = wasm_artifact(&line) {
                artifact = Some(wasm);
            }
        }
    }
    let status = child.wait().map_err(|source| BuildError::Cargo {
        dir: dir.to_path_buf(),
        source,
    })?;
    let missing_target = forward.join().unwrap_or(false);
    if !status.success() {
        if missing_target {
            return Err(BuildError::MissingTarget(dir.to_path_buf()));
        }
        return Err(BuildError::Failed {
            dir: dir.to_path_buf(),
            status: status.to_string(),
        });
    }
    artifact.ok_or_else(|| BuildError::NoArtifact(dir.to_path_buf()))
}

/// The `.wasm` file of a `compiler-artifact` message of `cargo --message-format=json`.
fn wasm_artifact(line: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    message
        .get("filenames")?
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_wasm_in_cargo_messages() {
        let line = r#"{"reason":"compiler-artifact","filenames":["/t/wasm32-wasip2/release/x.wasm","/t/x.rlib"]}"#;
        assert_eq!(
            wasm_artifact(line),
            Some(PathBuf::from("/t/wasm32-wasip2/release/x.wasm"))
        );
        assert_eq!(
            wasm_artifact(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(wasm_artifact("not json"), None);
    }

    #[test]
    fn a_directory_without_cargo_toml_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = build_rust_udf(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a Rust UDF crate"), "{err}");
    }

    /// Regression: cargo ran in the caller's directory, so a UDF crate's
    /// own `.cargo/config.toml` (and `udfs/.cargo/config.toml`, which sets
    /// the inlining threshold) was ignored by `weir run`.
    #[test]
    fn the_crates_own_cargo_config_applies() {
        let dir = tempfile::tempdir().unwrap();
        let udf = dir.path().join("configured-udf");
        std::fs::create_dir_all(udf.join(".cargo")).unwrap();
        std::fs::create_dir_all(udf.join("src")).unwrap();
        std::fs::write(
            udf.join("Cargo.toml"),
            "[package]\nname = \"configured-udf\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
             [lib]\ncrate-type = [\"cdylib\"]\n\n[workspace]\n",
        )
        .unwrap();
        std::fs::write(
            udf.join(".cargo/config.toml"),
            "[target.wasm32-wasip2]\nrustflags = [\"--cfg\", \"weir_config_applied\"]\n",
        )
        .unwrap();
        std::fs::write(
            udf.join("src/lib.rs"),
            "#[cfg(not(weir_config_applied))]\n\
             compile_error!(\"the crate's .cargo/config.toml was not applied\");\n\
             #[unsafe(no_mangle)]\npub extern \"C\" fn answer() -> i32 { 42 }\n",
        )
        .unwrap();
        let wasm = build_rust_udf(&udf).expect("builds with its config applied");
        assert!(wasm.is_absolute(), "{}", wasm.display());
        assert!(wasm.ends_with("configured_udf.wasm"), "{}", wasm.display());
        assert!(std::fs::metadata(&wasm).unwrap().len() > 0);
    }
}
