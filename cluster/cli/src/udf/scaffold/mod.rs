//! `weir udf new`: a ready-to-build UDF project with a README, a unit test,
//! a sample input and a job that runs it.

use std::path::{Path, PathBuf};

use super::sdk;

mod c;
mod js;
mod python;
mod rust;

use c::{c_app, c_test};
use js::{js_app, js_test};
use python::{python_app, python_test};
use rust::{cargo_toml, rust_lib};

/// A language Weir has a guest SDK for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust (`weir-guest`), built by cargo for `wasm32-wasip2`.
    Rust,
    /// Python (package `weir`), built by componentize-py.
    Python,
    /// JavaScript (package `weir`), bundled by rolldown, built by componentize-js.
    JavaScript,
    /// TypeScript, as JavaScript (rolldown strips the types).
    TypeScript,
    /// C (`weir.h`), built by clang with wasi-libc.
    C,
}

impl std::str::FromStr for Language {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rust" | "rs" => Ok(Self::Rust),
            "python" | "py" => Ok(Self::Python),
            "js" | "javascript" => Ok(Self::JavaScript),
            "ts" | "typescript" => Ok(Self::TypeScript),
            "c" => Ok(Self::C),
            _ => Err(format!(
                "unknown language `{s}`; use rust, python, js, ts or c"
            )),
        }
    }
}

/// What a new project's function does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One output per input.
    Map,
    /// Keep or drop each record.
    Filter,
    /// Any number of outputs per input.
    FlatMap,
    /// Keyed state and timers.
    KeyedProcess,
    /// A window aggregate.
    Aggregate,
}

impl std::str::FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "map" => Ok(Self::Map),
            "filter" => Ok(Self::Filter),
            "flat-map" | "flat_map" | "flatmap" => Ok(Self::FlatMap),
            "keyed-process" | "keyed_process" | "process" => Ok(Self::KeyedProcess),
            "aggregate" => Ok(Self::Aggregate),
            _ => Err(format!(
                "unknown kind `{s}`; use map, filter, flat-map, keyed-process or aggregate"
            )),
        }
    }
}

/// Why a project could not be created.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    /// The name cannot name a package.
    #[error("`{0}` cannot name a UDF: use letters, digits, `-` and `_`, starting with a letter")]
    BadName(String),
    /// The directory exists and is not empty.
    #[error("{0} already exists and is not empty")]
    Exists(PathBuf),
    /// Writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The SDK could not be written to the cache.
    #[error(transparent)]
    Sdk(#[from] super::BuildError),
}

/// Creates project `dir` (its last component names the function) for
/// `language` and `kind` and returns the files written, relative to `dir`.
///
/// # Errors
/// A [`NewError`]; nothing is overwritten.
pub fn new_project(dir: &Path, language: Language, kind: Kind) -> Result<Vec<PathBuf>, NewError> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(NewError::BadName(name));
    }
    if dir.exists() && std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_some()) {
        return Err(NewError::Exists(dir.to_path_buf()));
    }
    let mut files: Vec<(&str, String)> = vec![
        ("input.jsonl", INPUT.to_string()),
        ("job.yaml", job(&name, language, kind)),
        ("README.md", readme(&name, language, kind)),
        (
            ".gitignore",
            "out/\n__pycache__/\ntarget/\nnode_modules/\n".to_string(),
        ),
    ];
    match language {
        Language::Python => {
            files.push(("app.py", python_app(kind).to_string()));
            files.push(("test_app.py", python_test(kind).to_string()));
        }
        Language::JavaScript => {
            files.push(("app.js", js_app(kind, false)));
            files.push(("app.test.js", js_test(kind)));
        }
        Language::TypeScript => {
            files.push(("app.ts", js_app(kind, true)));
            files.push(("app.test.ts", js_test(kind)));
        }
        Language::C => {
            files.push(("app.c", c_app(kind).to_string()));
            files.push(("test_app.c", c_test(kind).to_string()));
        }
        Language::Rust => {
            let root = sdk::rust()?;
            files.push(("Cargo.toml", cargo_toml(&name, kind, &root)));
            files.push(("src/lib.rs", rust_lib(kind).to_string()));
        }
    }
    let mut written = Vec::new();
    for (relative, text) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| NewError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| NewError::Io {
            path: path.clone(),
            source,
        })?;
        written.push(PathBuf::from(relative));
    }
    Ok(written)
}

/// Six sensor readings, one minute apart, for every kind's job.
const INPUT: &str = r#"{"sensor":"a","time":"2026-01-01 00:00:00","value":1.5,"tags":["x"]}
{"sensor":"b","time":"2026-01-01 00:01:00","value":-2.0,"tags":[]}
{"sensor":"a","time":"2026-01-01 00:02:00","value":3.5,"tags":["x","y"]}
{"sensor":"b","time":"2026-01-01 00:03:00","value":4.0,"tags":["z"]}
{"sensor":"a","time":"2026-01-01 00:04:00","value":0.5,"tags":[]}
{"sensor":"a","time":"2026-01-01 00:05:00","value":10.0,"tags":["y"]}
"#;

fn job(name: &str, language: Language, kind: Kind) -> String {
    let (partition, extra, config) = match kind {
        Kind::Map => ("", "", "{ factor: 2.0 }"),
        Kind::Filter => ("", "", "{ min: 1.0 }"),
        Kind::FlatMap => ("", "", "{}"),
        Kind::KeyedProcess => ("    partition: key_by\n", "", "{}"),
        Kind::Aggregate => (
            "    partition: key_by\n",
            "    window: { type: tumbling, size: 5min, key_field: sensor }\n    aggregate: [{ fn: count }]\n",
            "{}",
        ),
    };
    // A JavaScript engine needs more than the default 64 MiB of memory.
    let memory = match language {
        Language::JavaScript | Language::TypeScript => "    memory_mib: 256\n",
        Language::Rust | Language::Python | Language::C => "",
    };
    format!(
        "# Runs the UDF in this directory over input.jsonl; run it from here:\n\
         #   weir run job.yaml\n\
         # and read the output in out/part-0.jsonl.\n\
         name: {name}\n\
         sources:\n  - id: readings\n    type: file\n    path: input.jsonl\n    format: jsonl\n\
         \x20   key: {{ field: sensor }}\n\
         \x20   timestamp: {{ field: time, format: \"%Y-%m-%d %H:%M:%S\" }}\n\
         operators:\n  - id: {name}\n    input: readings\n{partition}{extra}    udf: .\n{memory}    config: {config}\n\
         sinks:\n  - id: out\n    input: {name}\n    type: file\n    path: out\n"
    )
}

fn readme(name: &str, language: Language, kind: Kind) -> String {
    let (source, test) = match language {
        Language::Python => (
            "`app.py` (the function, exported with a `weir` decorator)",
            "python3 -m pytest          # unit tests on the host, no Wasm (`weir udf test .` sets the path)",
        ),
        Language::Rust => (
            "`src/lib.rs` (the function, exported with `weir_guest::export!`)",
            "cargo test                 # unit tests, natively",
        ),
        Language::JavaScript => (
            "`app.js` (the function, exported with `exportFunction`)",
            "weir udf test              # app.test.js under node --test, with the SDK bundled in",
        ),
        Language::TypeScript => (
            "`app.ts` (the function, exported with `exportFunction`)",
            "weir udf test              # app.test.ts, bundled with the SDK, under node --test",
        ),
        Language::C => (
            "`app.c` (the function: `weir_process` and the hooks of `weir.h`)",
            "weir udf test              # test_app.c, built natively with cc and the SDK's in-memory host",
        ),
    };
    format!(
        "# {name}\n\n\
         A Weir user function ({kind:?}) in {language:?}: {source}.\n\n\
         ```sh\n\
         weir udf test .            # {test_short}\n\
         weir udf build .           # the WebAssembly component (cached by content)\n\
         weir run job.yaml          # runs it over input.jsonl into out/\n\
         ```\n\n\
         `{test}`\n\n\
         A job names this directory in an operator's `udf:`; `weir run` builds it\n\
         on demand. `config:` in the job reaches the function's `open`.\n",
        test_short = "the unit tests",
    )
}
