//! Building Python UDF projects into components (componentize-py).
//!
//! A project is a directory with `app.py`, which exports one function with
//! the SDK's decorators (`@weir.export`, `@weir.map`, ...). The build asks
//! the host's Python which world that function needs (`packed-operator` or
//! `aggregate`), then runs componentize-py on the SDK's entry module
//! `weir.main` (which imports `app`) with the SDK and the project on the
//! module path. Components are cached by the SHA-256 of the project's
//! `*.py` files and `pyproject.toml`, the SDK, the world and
//! componentize-py's version, under `<cache>/udf-python/`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::sources::content_key;
use super::{BuildError, dies_with_this_process, pop_list_fix, sdk};

/// The componentize-py release the SDK is tested with.
pub const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";

/// Builds the Python UDF project in `dir` and returns the component's path.
///
/// # Errors
/// [`BuildError::NotAProject`] without `app.py`,
/// [`BuildError::MissingTool`] without python3 or componentize-py,
/// [`BuildError::Script`] when `app` cannot be imported or exports no
/// function, [`BuildError::Failed`] when componentize-py fails (its
/// messages are on stderr).
pub fn build_python_udf(dir: &Path) -> Result<PathBuf, BuildError> {
    let dir = std::path::absolute(dir).map_err(|source| BuildError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !dir.join("app.py").is_file() {
        return Err(BuildError::NotAProject(dir));
    }
    let python = tool_version(&dir, "python3", &["--version"]).ok_or(BuildError::MissingTool {
        dir: dir.clone(),
        tool: "python3",
        install: "install Python 3.10 or newer (e.g. `apt-get install python3 python3-pip`)",
    })?;
    let componentize =
        tool_version(&dir, "componentize-py", &["--version"]).ok_or(BuildError::MissingTool {
            dir: dir.clone(),
            tool: "componentize-py",
            install: "run `pip install componentize-py==0.25.1`",
        })?;
    // The component is fixed for this release's runtime (pop_list_fix.rs).
    if componentize.split_whitespace().last() != Some(pop_list_fix::FOR_COMPONENTIZE_PY) {
        return Err(BuildError::Script {
            dir: dir.clone(),
            message: format!(
                "Python UDFs need componentize-py {} (found `{}`): run `pip install {COMPONENTIZE_PY}`",
                pop_list_fix::FOR_COMPONENTIZE_PY,
                componentize.trim()
            ),
        });
    }
    let sdk = sdk::python()?;
    let world = world_of(&dir, &sdk)?;
    let key = cache_key(
        &dir,
        &world,
        &format!("{componentize} {}", pop_list_fix::ID),
    )?;
    let cache = crate::cache_root().join("udf-python");
    let out = cache.join(format!("{key}.wasm"));
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(&cache).map_err(|source| BuildError::Io {
        path: cache.clone(),
        source,
    })?;
    eprintln!(
        "Building Python UDF {} ({world} world) with {} on {} — about 20 s; later builds of the same sources are cached",
        dir.display(),
        componentize.trim(),
        python.trim()
    );
    let tmp = cache.join(format!(".{key}.{}.wasm", super::unique_suffix()));
    let mut command = Command::new("componentize-py");
    dies_with_this_process(&mut command);
    let status = command
        .arg("-d")
        .arg(sdk.join("wit"))
        .args(["-w", &world, "componentize", "weir.main", "-p"])
        .arg(sdk.join("guest-sdk/python"))
        .arg("-p")
        .arg(&dir)
        .arg("-o")
        .arg(&tmp)
        .current_dir(&dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::null())
        .status()
        .map_err(|source| BuildError::Io {
            path: "componentize-py".into(),
            source,
        })?;
    if !status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(BuildError::Failed {
            dir,
            status: status.to_string(),
        });
    }
    // componentize-py never frees the bytes its Python hands to the host
    // (pop_list_fix.rs): fix the component before caching it.
    let built = std::fs::read(&tmp).map_err(|source| BuildError::Io {
        path: tmp.clone(),
        source,
    })?;
    let fixed = pop_list_fix::fix_component(&built).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        BuildError::Script {
            dir: dir.clone(),
            message: format!("the component componentize-py built cannot be fixed: {e}"),
        }
    })?;
    std::fs::write(&tmp, fixed).map_err(|source| BuildError::Io {
        path: tmp.clone(),
        source,
    })?;
    // Another build of the same sources may have finished first; either
    // component is the same.
    if let Err(source) = std::fs::rename(&tmp, &out) {
        let _ = std::fs::remove_file(&tmp);
        if !out.is_file() {
            return Err(BuildError::Io { path: out, source });
        }
    }
    Ok(out)
}

/// The first line `program args` prints, or `None` when it cannot run.
fn tool_version(dir: &Path, program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Some(text.lines().next().unwrap_or_default().to_string())
}

/// The WIT world the project's function needs, from importing `app` with
/// the host's Python (`weir.world()`).
fn world_of(dir: &Path, sdk: &Path) -> Result<String, BuildError> {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import app, weir; print(weir.world())",
        ])
        .arg(sdk.join("guest-sdk/python"))
        .arg(dir)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| BuildError::Io {
            path: "python3".into(),
            source,
        })?;
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut stdout);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut stderr);
    }
    let status = child.wait().map_err(|source| BuildError::Io {
        path: "python3".into(),
        source,
    })?;
    let world = stdout.trim();
    if status.success() && (world == "packed-operator" || world == "aggregate") {
        return Ok(world.to_string());
    }
    // Python's last line is the exception (`RuntimeError: weir: ...`).
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("importing app.py failed")
        .trim();
    let message = match last.split_once(": weir: ") {
        Some((_, rest)) => rest.to_string(),
        None => format!("importing app.py failed: {last}"),
    };
    Err(BuildError::Script {
        dir: dir.to_path_buf(),
        message,
    })
}

/// The cache key of a build: SHA-256 (16 hex digits) of the project's
/// sources (`*.py` outside hidden directories and `__pycache__`, and
/// `pyproject.toml`, by relative path), the SDK, the world and the
/// componentize-py version.
fn cache_key(dir: &Path, world: &str, componentize: &str) -> Result<String, BuildError> {
    let mut files = Vec::new();
    sources(dir, dir, &mut files)?;
    content_key(&[sdk::python_hash().as_str(), world, componentize], files)
}

fn sources(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), BuildError> {
    super::sources::matching(root, dir, out, &|name| {
        name.ends_with(".py") || name == "pyproject.toml"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_follows_the_sources_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.py"), "x = 1\n").unwrap();
        let first = cache_key(dir.path(), "operator", "componentize-py 0.25.1").unwrap();
        std::fs::create_dir(dir.path().join("__pycache__")).unwrap();
        std::fs::write(dir.path().join("__pycache__/app.pyc"), "junk").unwrap();
        std::fs::write(dir.path().join("out.jsonl"), "{}").unwrap();
        assert_eq!(
            cache_key(dir.path(), "operator", "componentize-py 0.25.1").unwrap(),
            first,
            "bytecode and data files are not sources"
        );
        assert_ne!(
            cache_key(dir.path(), "aggregate", "componentize-py 0.25.1").unwrap(),
            first
        );
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        std::fs::write(dir.path().join("lib/util.py"), "y = 2\n").unwrap();
        let with_module = cache_key(dir.path(), "operator", "componentize-py 0.25.1").unwrap();
        assert_ne!(with_module, first);
        std::fs::write(dir.path().join("app.py"), "x = 2\n").unwrap();
        assert_ne!(
            cache_key(dir.path(), "operator", "componentize-py 0.25.1").unwrap(),
            with_module
        );
    }
}
