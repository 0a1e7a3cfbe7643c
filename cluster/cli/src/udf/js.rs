//! Building JavaScript and TypeScript UDF projects into components
//! (rolldown, then componentize-js).
//!
//! A project is a directory with `app.js` or `app.ts`, which exports one
//! function with the SDK's `exportFunction`. The build bundles it with the
//! SDK that this binary carries (rolldown; TypeScript's types are stripped
//! on the way), runs the bundle once under node to learn which world the
//! function needs, bundles the world's exports after it, and makes the
//! component with componentize-js. Components are cached by the SHA-256 of
//! the project's sources, the SDK, the world and componentize-js's version,
//! under `<cache>/udf-js/`.
//!
//! The tools are found in `<cache>/js/node_modules/.bin` (where
//! `scripts/bootstrap.sh` installs them), or on PATH.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::sources::content_key;
use super::{BuildError, dies_with_this_process, sdk};

/// The npm command that installs the JavaScript toolchain where `weir`
/// looks for it.
pub const INSTALL: &str = "run `npm install --prefix ~/.cache/weir/js @bytecodealliance/componentize-js@0.23.0 rolldown@1.3.4`";

/// The project's entry module: `app.ts` or `app.js`.
pub(super) fn entry(dir: &Path) -> Option<PathBuf> {
    ["app.ts", "app.js", "app.mjs"]
        .iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
}

/// A JavaScript tool: from `<cache>/js/node_modules/.bin`, else PATH.
fn tool(name: &str) -> Option<PathBuf> {
    let local = crate::cache_root().join("js/node_modules/.bin").join(name);
    if local.is_file() {
        return Some(local);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Bundles `entry_text` (an ES module importing the project) into `out`
/// with the SDK as `weir`.
fn bundle(
    rolldown: &Path,
    work: &Path,
    sdk_js: &Path,
    name: &str,
    entry_text: &str,
) -> Result<PathBuf, BuildError> {
    let entry = work.join(format!("{name}-entry.mjs"));
    let out = work.join(format!("{name}.mjs"));
    std::fs::write(&entry, entry_text).map_err(io(&entry))?;
    let config = work.join(format!("{name}.config.mjs"));
    let text = format!(
        "export default {{\n  input: {entry:?},\n  platform: \"neutral\",\n  external: [/^weir:operator\\//, /^node:/],\n  \
         resolve: {{ alias: {{ \"weir/testing\": {testing:?}, weir: {index:?} }} }},\n  \
         output: {{ file: {out:?}, format: \"esm\" }},\n}};\n",
        entry = entry.display().to_string(),
        testing = sdk_js.join("src/testing.js").display().to_string(),
        index = sdk_js.join("src/index.js").display().to_string(),
        out = out.display().to_string(),
    );
    std::fs::write(&config, text).map_err(io(&config))?;
    let output = Command::new(rolldown)
        .arg("-c")
        .arg(&config)
        .current_dir(work)
        .stdin(Stdio::null())
        .output()
        .map_err(io(rolldown))?;
    if !output.status.success() {
        eprint!("{}", String::from_utf8_lossy(&output.stdout));
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        return Err(BuildError::Failed {
            dir: work.to_path_buf(),
            status: output.status.to_string(),
        });
    }
    Ok(out)
}

/// A scratch directory for one build.
fn work_dir(key: &str) -> Result<PathBuf, BuildError> {
    let work = crate::cache_root()
        .join("udf-js")
        .join(format!(".work-{key}-{}", super::unique_suffix()));
    std::fs::create_dir_all(&work).map_err(io(&work))?;
    Ok(work)
}

/// Builds the JavaScript or TypeScript UDF project in `dir` and returns the
/// component's path.
///
/// # Errors
/// [`BuildError::NotAProject`] without `app.js`/`app.ts`,
/// [`BuildError::MissingTool`] without node, rolldown or componentize-js,
/// [`BuildError::Script`] when the module
/// exports no function, [`BuildError::Failed`] when a tool fails.
pub fn build_js_udf(dir: &Path) -> Result<PathBuf, BuildError> {
    let dir = std::path::absolute(dir).map_err(io(dir))?;
    let app = entry(&dir).ok_or_else(|| BuildError::NotAProject(dir.clone()))?;
    let missing = |tool: &'static str, install: &'static str| BuildError::MissingTool {
        dir: dir.clone(),
        tool,
        install,
    };
    let node = tool("node").ok_or(missing(
        "node",
        "install Node.js 20 or newer (e.g. `apt-get install nodejs npm`)",
    ))?;
    let rolldown = tool("rolldown").ok_or(missing("rolldown", INSTALL))?;
    let componentize = tool("componentize-js").ok_or(missing("componentize-js", INSTALL))?;
    let version = Command::new(&componentize)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let sdk_root = sdk::js()?;
    let sdk_js = sdk_root.join("guest-sdk/js");
    let sources_key = cache_key(&dir, &version)?;
    let work = work_dir(&sources_key)?;
    let result = (|| {
        // Which world: run the project's module with the SDK under node.
        let detect = bundle(
            &rolldown,
            &work,
            &sdk_js,
            "detect",
            &format!(
                "import {:?};\nimport {{ registeredFunction }} from {:?};\n\
                 console.log(registeredFunction()[0] === \"aggregate\" ? \"aggregate\" : \"operator\");\n",
                app.display().to_string(),
                sdk_js.join("src/runtime.js").display().to_string()
            ),
        )?;
        let output = Command::new(&node)
            .arg(&detect)
            .stdin(Stdio::null())
            .output()
            .map_err(io(&node))?;
        let world = String::from_utf8_lossy(&output.stdout).trim().to_string();
        if !output.status.success() || !(world == "operator" || world == "aggregate") {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let line = stderr
                .lines()
                .find(|l| l.contains("Error"))
                .unwrap_or("running the module failed")
                .trim();
            let message = match line.split_once("weir: ") {
                Some((_, rest)) => rest.to_string(),
                None => format!("loading {} failed: {line}", app.display()),
            };
            return Err(BuildError::Script {
                dir: dir.clone(),
                message,
            });
        }
        let key = format!("{sources_key}-{world}");
        let out = crate::cache_root()
            .join("udf-js")
            .join(format!("{key}.wasm"));
        if out.is_file() {
            return Ok(out);
        }
        let exports = if world == "aggregate" {
            format!(
                "export {{ aggregator }} from {:?};\n",
                sdk_js
                    .join("src/component-aggregate.js")
                    .display()
                    .to_string()
            )
        } else {
            format!(
                "export {{ handler, checkpointed }} from {:?};\n",
                sdk_js
                    .join("src/component-operator.js")
                    .display()
                    .to_string()
            )
        };
        let bundled = bundle(
            &rolldown,
            &work,
            &sdk_js,
            "component",
            &format!("import {:?};\n{exports}", app.display().to_string()),
        )?;
        eprintln!(
            "Building JavaScript UDF {} ({world} world) with componentize-js {version} — about 25 s; later builds of the same sources are cached",
            dir.display()
        );
        let tmp = work.join("component.wasm");
        let mut command = Command::new(&componentize);
        dies_with_this_process(&mut command);
        let status = command
            .arg(&bundled)
            .arg("--wit")
            .arg(sdk_root.join("wit/operator.wit"))
            .args(["--world-name", &world])
            // Weir links no HTTP: a component importing wasi:http is refused.
            .args(["--disable", "http", "fetch-event", "-o"])
            .arg(&tmp)
            .current_dir(&work)
            .stdout(Stdio::null())
            .status()
            .map_err(io(&componentize))?;
        if !status.success() {
            return Err(BuildError::Failed {
                dir: dir.clone(),
                status: status.to_string(),
            });
        }
        // Another build of the same sources may have finished first; either
        // component is the same.
        match std::fs::rename(&tmp, &out) {
            Err(source) if !out.is_file() => Err(BuildError::Io { path: out, source }),
            _ => Ok(out),
        }
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// Runs the project's tests (`*.test.js`, `*.test.ts`) under `node --test`,
/// each bundled with the SDK first (so `import ... from "weir"` and
/// `"weir/testing"` resolve, and TypeScript runs).
///
/// # Errors
/// As [`build_js_udf`]; [`BuildError::TestsFailed`] when a test fails.
pub fn test_js_udf(dir: &Path) -> Result<(), BuildError> {
    let dir = std::path::absolute(dir).map_err(io(dir))?;
    let node = tool("node").ok_or(BuildError::MissingTool {
        dir: dir.clone(),
        tool: "node",
        install: "install Node.js 20 or newer (e.g. `apt-get install nodejs npm`)",
    })?;
    let rolldown = tool("rolldown").ok_or(BuildError::MissingTool {
        dir: dir.clone(),
        tool: "rolldown",
        install: INSTALL,
    })?;
    let sdk_js = sdk::js()?.join("guest-sdk/js");
    let mut tests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(io(&dir))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.ends_with(".test.js") || name.ends_with(".test.ts") || name.ends_with(".test.mjs")
        })
        .collect();
    tests.sort();
    let work = work_dir("test")?;
    let result = (|| {
        let mut bundles = Vec::new();
        for (i, test) in tests.iter().enumerate() {
            bundles.push(bundle(
                &rolldown,
                &work,
                &sdk_js,
                &format!("test-{i}"),
                &format!("import {:?};\n", test.display().to_string()),
            )?);
        }
        let mut command = Command::new(&node);
        dies_with_this_process(&mut command);
        let status = command
            .arg("--test")
            .args(&bundles)
            .current_dir(&dir)
            .status()
            .map_err(io(&node))?;
        super::tests_passed(&dir, status)
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

/// SHA-256 (16 hex digits) of the project's sources (`*.js`, `*.mjs`,
/// `*.ts` and `package.json` outside hidden directories and
/// `node_modules`), the SDK and the componentize-js version.
fn cache_key(dir: &Path, componentize: &str) -> Result<String, BuildError> {
    let mut files = Vec::new();
    super::sources::matching(dir, dir, &mut files, &|name| {
        (name.ends_with(".js")
            || name.ends_with(".mjs")
            || name.ends_with(".ts")
            || name == "package.json")
            && !name.contains(".test.")
    })?;
    content_key(&[sdk::js_hash().as_str(), componentize], files)
}
