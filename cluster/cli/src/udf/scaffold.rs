//! `weir udf new`: a ready-to-build UDF project with a README, a unit test,
//! a sample input and a job that runs it.

use std::path::{Path, PathBuf};

use super::sdk;

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
}

impl std::str::FromStr for Language {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "rust" | "rs" => Ok(Self::Rust),
            "python" | "py" => Ok(Self::Python),
            "js" | "javascript" => Ok(Self::JavaScript),
            "ts" | "typescript" => Ok(Self::TypeScript),
            "c" => Err("there is no C SDK yet; use rust, python, js or ts".to_string()),
            _ => Err(format!(
                "unknown language `{s}`; use rust, python, js or ts"
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
        Language::Rust | Language::Python => "",
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

fn python_app(kind: Kind) -> &'static str {
    match kind {
        Kind::Map => PY_MAP,
        Kind::Filter => PY_FILTER,
        Kind::FlatMap => PY_FLAT_MAP,
        Kind::KeyedProcess => PY_KEYED,
        Kind::Aggregate => PY_AGGREGATE,
    }
}

fn python_test(kind: Kind) -> &'static str {
    match kind {
        Kind::Map => PY_MAP_TEST,
        Kind::Filter => PY_FILTER_TEST,
        Kind::FlatMap => PY_FLAT_MAP_TEST,
        Kind::KeyedProcess => PY_KEYED_TEST,
        Kind::Aggregate => PY_AGGREGATE_TEST,
    }
}

const PY_MAP: &str = r#""""Adds `scaled = value * factor` to every reading."""

import weir


@weir.export
class Scale(weir.MapFunction):
    def open(self, ctx: weir.OpenContext) -> None:
        self.factor = float(ctx.config.get("factor", 2.0))

    def map(self, value: dict) -> dict:
        value["scaled"] = value["value"] * self.factor
        return value
"#;

const PY_MAP_TEST: &str = r#"from weir.testing import Harness

from app import Scale


def test_scales_the_value():
    out = Harness(Scale, config={"factor": 3}).process([{"value": 2.0}])
    assert [o.value for o in out] == [{"value": 2.0, "scaled": 6.0}]


def test_a_reading_without_value_is_a_per_record_error():
    out = Harness(Scale).process([{"other": 1}])
    assert out[0].kind == "error" and "KeyError" in out[0].message
"#;

const PY_FILTER: &str = r#""""Keeps the readings whose value is at least `min`."""

import weir


@weir.export
class AtLeast(weir.FilterFunction):
    def open(self, ctx: weir.OpenContext) -> None:
        self.min = float(ctx.config.get("min", 0.0))

    def filter(self, value: dict) -> bool:
        return value["value"] >= self.min
"#;

const PY_FILTER_TEST: &str = r#"from weir.testing import Harness

from app import AtLeast


def test_keeps_values_at_or_above_min():
    out = Harness(AtLeast, config={"min": 1.0}).process([{"value": 0.5}, {"value": 1.0}])
    assert [o.value for o in out] == [{"value": 1.0}]
"#;

const PY_FLAT_MAP: &str = r#""""One output per tag of a reading: `{"sensor", "tag"}`."""

import weir


@weir.export
class Tags(weir.FlatMapFunction):
    def flat_map(self, value: dict):
        for tag in value.get("tags", []):
            yield {"sensor": value["sensor"], "tag": tag}
"#;

const PY_FLAT_MAP_TEST: &str = r#"from weir.testing import Harness

from app import Tags


def test_one_output_per_tag():
    out = Harness(Tags).process([{"sensor": "a", "tags": ["x", "y"]}, {"sensor": "b", "tags": []}])
    assert [o.value for o in out] == [{"sensor": "a", "tag": "x"}, {"sensor": "a", "tag": "y"}]
"#;

const PY_KEYED: &str = r#""""Per sensor: the running count and mean of its readings (value state),
and a summary one minute of event time after each reading (a timer)."""

import weir


@weir.export
class RunningMean(weir.KeyedProcessFunction):
    def open(self, ctx: weir.OpenContext) -> None:
        self.stats = weir.ValueState("stats")

    def process_element(self, value: dict, ctx: weir.Context):
        n, total = self.stats.value([0, 0.0])
        n, total = n + 1, total + value["value"]
        self.stats.update([n, total])
        if ctx.timestamp is not None:
            ctx.register_event_time_timer(ctx.timestamp + 60_000)
        yield {"sensor": ctx.key_str, "count": n, "mean": total / n}

    def on_timer(self, timestamp: int, ctx: weir.TimerContext):
        n, total = self.stats.value([0, 0.0])
        yield weir.Side("summary", {"sensor": ctx.key_str, "at": timestamp, "count": n})
"#;

const PY_KEYED_TEST: &str = r#"from weir.testing import Harness

from app import RunningMean


def test_counts_and_averages_per_key():
    h = Harness(RunningMean)
    h.process([{"value": 1.0}, {"value": 3.0}], key=b"a", timestamp=0)
    out = h.process([{"value": 5.0}], key=b"b", timestamp=0)
    assert out[0].value == {"sensor": "b", "count": 1, "mean": 5.0}
    assert h.value_state(b"a", "stats") == [2, 4.0]


def test_a_summary_fires_a_minute_later():
    h = Harness(RunningMean)
    h.process([{"value": 1.0}], key=b"a", timestamp=1_000)
    assert h.advance_watermark(60_999) == []
    out = h.advance_watermark(61_000)
    assert [(o.output, o.value) for o in out] == [("summary", {"sensor": "a", "at": 61_000, "count": 1})]
"#;

const PY_AGGREGATE: &str = r#""""The mean of `value` per window, as `mean` (null for an empty window)."""

import weir


@weir.export
class Mean(weir.AggregateFunction):
    def create_accumulator(self):
        return [0, 0.0]

    def add(self, value: dict, acc):
        return [acc[0] + 1, acc[1] + value["value"]]

    def merge(self, a, b):
        return [a[0] + b[0], a[1] + b[1]]

    def get_result(self, acc) -> dict:
        return {"mean": acc[1] / acc[0] if acc[0] else None}
"#;

const PY_AGGREGATE_TEST: &str = r#"from weir.testing import AggregateHarness

from app import Mean


def test_mean_of_merged_parts():
    assert AggregateHarness(Mean).aggregate([{"value": 1.0}], [{"value": 2.0}, {"value": 6.0}]) == {"mean": 3.0}
"#;

fn cargo_toml(name: &str, kind: Kind, sdk_root: &Path) -> String {
    let sdk = if kind == Kind::Aggregate {
        format!(
            "weir-guest-aggregate = {{ path = {:?} }}",
            sdk_root.join("guest-sdk/aggregate")
        )
    } else {
        format!(
            "weir-guest = {{ path = {:?} }}",
            sdk_root.join("guest-sdk/rust")
        )
    };
    format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
         [lib]\ncrate-type = [\"cdylib\", \"rlib\"]\n\n\
         [dependencies]\n{sdk}\nserde = {{ version = \"1\", features = [\"derive\"] }}\nserde_json = \"1\"\n\n\
         [profile.release]\nopt-level = 3\nlto = true\ncodegen-units = 1\nstrip = true\n\n\
         # A project of its own, not a member of an enclosing workspace.\n[workspace]\n"
    )
}

fn rust_lib(kind: Kind) -> &'static str {
    match kind {
        Kind::Map => RS_MAP,
        Kind::Filter => RS_FILTER,
        Kind::FlatMap => RS_FLAT_MAP,
        Kind::KeyedProcess => RS_KEYED,
        Kind::Aggregate => RS_AGGREGATE,
    }
}

const RS_MAP: &str = r#"//! Adds `scaled = value * factor` to every reading.

use weir_guest::prelude::*;

#[derive(Deserialize)]
#[serde(default)]
pub struct Config {
    factor: f64,
}

impl Default for Config {
    fn default() -> Self {
        Self { factor: 2.0 }
    }
}

pub struct Scale(f64);

impl MapFunction for Scale {
    type Config = Config;
    type In<'a> = serde_json::Map<String, serde_json::Value>;
    type Out = serde_json::Map<String, serde_json::Value>;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Scale(config.factor))
    }

    fn map(&mut self, mut value: Self::In<'_>) -> Result<Self::Out, String> {
        let x = value.get("value").and_then(|v| v.as_f64()).ok_or("no numeric `value`")?;
        value.insert("scaled".into(), (x * self.0).into());
        Ok(value)
    }
}

weir_guest::export!(map Scale);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_the_value() {
        let mut f = Scale(3.0);
        let value = serde_json::json!({"value": 2.0}).as_object().unwrap().clone();
        assert_eq!(f.map(value).unwrap()["scaled"], 6.0);
    }
}
"#;

const RS_FILTER: &str = r#"//! Keeps the readings whose value is at least `min`.

use weir_guest::prelude::*;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Config {
    min: f64,
}

#[derive(Deserialize)]
pub struct Reading {
    value: f64,
}

pub struct AtLeast(f64);

impl FilterFunction for AtLeast {
    type Config = Config;
    type In<'a> = Reading;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        Ok(AtLeast(config.min))
    }

    fn filter(&mut self, r: &Reading) -> Result<bool, String> {
        Ok(r.value >= self.0)
    }
}

weir_guest::export!(filter AtLeast);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_values_at_or_above_min() {
        let mut f = AtLeast(1.0);
        assert!(!f.filter(&Reading { value: 0.5 }).unwrap());
        assert!(f.filter(&Reading { value: 1.0 }).unwrap());
    }
}
"#;

const RS_FLAT_MAP: &str = r#"//! One output per tag of a reading: `{"sensor", "tag"}`.

use weir_guest::prelude::*;

#[derive(Deserialize)]
pub struct Reading {
    sensor: String,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Serialize)]
pub struct Tag {
    sensor: String,
    tag: String,
}

pub struct Tags;

impl FlatMapFunction for Tags {
    type Config = ();
    type In<'a> = Reading;
    type Out = Tag;

    fn open(_config: (), _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Tags)
    }

    fn flat_map(&mut self, r: Reading, out: &mut Collector<'_, Tag>) -> Result<(), String> {
        for tag in r.tags {
            out.emit(Tag { sensor: r.sensor.clone(), tag });
        }
        Ok(())
    }
}

weir_guest::export!(flat_map Tags);
"#;

const RS_KEYED: &str = r#"//! Per sensor: the running count and mean of its readings (value state),
//! and a summary one minute of event time after each reading (a timer).

use weir_guest::prelude::*;

#[derive(Deserialize)]
pub struct Reading {
    value: f64,
}

#[derive(Serialize)]
pub struct Mean {
    sensor: String,
    count: u64,
    mean: f64,
}

pub struct RunningMean {
    stats: ValueState<(u64, f64)>,
}

impl KeyedProcessFunction for RunningMean {
    type Config = ();
    type In<'a> = Reading;
    type Out = serde_json::Value;

    fn open(_config: (), _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Self { stats: ValueState::new("stats") })
    }

    fn process(&mut self, key: &[u8], r: Reading, out: &mut Collector<'_, Self::Out>) -> Result<(), String> {
        let (n, total) = self.stats.get()?.unwrap_or_default();
        let (n, total) = (n + 1, total + r.value);
        self.stats.set(&(n, total));
        if let Some(ts) = out.timestamp() {
            timers::register_event_time_timer(ts + 60_000);
        }
        let sensor = String::from_utf8_lossy(key).into_owned();
        out.emit(serde_json::json!(Mean { sensor, count: n, mean: total / n as f64 }));
        Ok(())
    }

    fn on_timer(&mut self, key: &[u8], timestamp: i64, _domain: TimeDomain, out: &mut Collector<'_, Self::Out>) -> Result<(), String> {
        let (n, _) = self.stats.get()?.unwrap_or_default();
        let sensor = String::from_utf8_lossy(key);
        out.emit_side("summary", serde_json::json!({"sensor": sensor, "at": timestamp, "count": n}));
        Ok(())
    }
}

weir_guest::export!(keyed_process RunningMean);
"#;

const RS_AGGREGATE: &str = r#"//! The mean of `value` per window, as `mean` (null for an empty window).

use weir_guest_aggregate::prelude::*;

#[derive(Deserialize)]
pub struct Reading {
    value: f64,
}

pub struct Mean;

impl AggregateFunction for Mean {
    type Config = ();
    type In = Reading;
    type Acc = (u64, f64);
    type Out = serde_json::Value;

    fn open(_config: (), _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Mean)
    }

    fn create_accumulator(&self) -> Self::Acc {
        (0, 0.0)
    }

    fn add(&self, acc: &mut Self::Acc, r: Reading) -> Result<(), String> {
        acc.0 += 1;
        acc.1 += r.value;
        Ok(())
    }

    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        acc.0 += other.0;
        acc.1 += other.1;
    }

    fn get_result(&self, acc: Self::Acc) -> Result<Self::Out, String> {
        let mean = (acc.0 > 0).then(|| acc.1 / acc.0 as f64);
        Ok(serde_json::json!({ "mean": mean }))
    }
}

weir_guest_aggregate::export!(Mean);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_of_merged_parts() {
        let f = Mean;
        let mut a = f.create_accumulator();
        f.add(&mut a, Reading { value: 1.0 }).unwrap();
        let mut b = f.create_accumulator();
        f.add(&mut b, Reading { value: 2.0 }).unwrap();
        f.add(&mut b, Reading { value: 6.0 }).unwrap();
        f.merge(&mut a, b);
        assert_eq!(f.get_result(a).unwrap()["mean"], 3.0);
    }
}
"#;

/// The JavaScript (or, with types, TypeScript) function of `kind`.
fn js_app(kind: Kind, typed: bool) -> String {
    let t = |ts: &str| if typed { ts.to_string() } else { String::new() };
    match kind {
        Kind::Map => format!(
            r#"// Adds `scaled = value * factor` to every reading.
import {{ MapFunction, exportFunction{imports} }} from "weir";

class Scale extends MapFunction {{
{field}  open(ctx{ctx}) {{
    this.factor = ctx.config.factor ?? 2;
  }}

  map(value{value}) {{
    return {{ ...value, scaled: value.value * this.factor }};
  }}
}}

exportFunction(Scale);
"#,
            imports = t(", type OpenContext"),
            field = t("  factor = 2;\n\n"),
            ctx = t(": OpenContext<{ factor?: number }>"),
            value = t(": { value: number }"),
        ),
        Kind::Filter => format!(
            r#"// Keeps the readings whose value is at least `min`.
import {{ FilterFunction, exportFunction{imports} }} from "weir";

class AtLeast extends FilterFunction {{
{field}  open(ctx{ctx}) {{
    this.min = ctx.config.min ?? 0;
  }}

  filter(value{value}) {{
    return value.value >= this.min;
  }}
}}

exportFunction(AtLeast);
"#,
            imports = t(", type OpenContext"),
            field = t("  min = 0;\n\n"),
            ctx = t(": OpenContext<{ min?: number }>"),
            value = t(": { value: number }"),
        ),
        Kind::FlatMap => format!(
            r#"// One output per tag of a reading: `{{ sensor, tag }}`.
import {{ FlatMapFunction, exportFunction }} from "weir";

class Tags extends FlatMapFunction {{
  *flatMap(value{value}) {{
    for (const tag of value.tags ?? []) yield {{ sensor: value.sensor, tag }};
  }}
}}

exportFunction(Tags);
"#,
            value = t(": { sensor: string; tags?: string[] }"),
        ),
        Kind::KeyedProcess => format!(
            r#"// Per sensor: the running count and mean of its readings (value state),
// and a summary one minute of event time after each reading (a timer).
import {{ KeyedProcessFunction, Side, ValueState, exportFunction{imports} }} from "weir";

class RunningMean extends KeyedProcessFunction {{
{field}  open() {{
    this.stats = new ValueState("stats");
  }}

  *processElement(value{value}, ctx{ctx}) {{
    const [n, total] = this.stats.value([0, 0]);
    this.stats.update([n + 1, total + value.value]);
    if (ctx.timestamp !== undefined) ctx.registerEventTimeTimer(ctx.timestamp + 60_000);
    yield {{ sensor: ctx.keyString, count: n + 1, mean: (total + value.value) / (n + 1) }};
  }}

  *onTimer(timestamp{ts}, ctx{tctx}) {{
    const [n] = this.stats.value([0, 0]);
    yield new Side("summary", {{ sensor: ctx.keyString, at: timestamp, count: n }});
  }}
}}

exportFunction(RunningMean);
"#,
            imports = t(", type Context, type TimerContext"),
            field = t("  stats!: ValueState<[number, number]>;\n\n"),
            value = t(": { value: number }"),
            ctx = t(": Context"),
            ts = t(": number"),
            tctx = t(": TimerContext"),
        ),
        Kind::Aggregate => format!(
            r#"// The mean of `value` per window, as `mean` (null for an empty window).
import {{ AggregateFunction, exportFunction }} from "weir";

class Mean extends AggregateFunction{generic} {{
  createAccumulator(){acc} {{
    return [0, 0];
  }}

  add(value{value}, acc{acc}){acc} {{
    return [acc[0] + 1, acc[1] + value.value];
  }}

  merge(a{acc}, b{acc}){acc} {{
    return [a[0] + b[0], a[1] + b[1]];
  }}

  getResult(acc{acc}) {{
    return {{ mean: acc[0] ? acc[1] / acc[0] : null }};
  }}
}}

exportFunction(Mean);
"#,
            generic = t("<{ value: number }, [number, number]>"),
            acc = t(": [number, number]"),
            value = t(": { value: number }"),
        ),
    }
}

/// The unit test of the JavaScript / TypeScript template of `kind` (the
/// same text serves both: `import "./app"` resolves either).
fn js_test(kind: Kind) -> String {
    let body = match kind {
        Kind::Map => {
            r#"test("scales the value", () => {
  const out = new Harness(exported(), { config: { factor: 3 } }).process([{ value: 2 }]);
  assert.deepEqual(out.map((o) => o.value), [{ value: 2, scaled: 6 }]);
});"#
        }
        Kind::Filter => {
            r#"test("keeps values at or above min", () => {
  const out = new Harness(exported(), { config: { min: 1 } }).process([{ value: 0.5 }, { value: 1 }]);
  assert.deepEqual(out.map((o) => o.value), [{ value: 1 }]);
});"#
        }
        Kind::FlatMap => {
            r#"test("one output per tag", () => {
  const out = new Harness(exported()).process([{ sensor: "a", tags: ["x", "y"] }, { sensor: "b", tags: [] }]);
  assert.deepEqual(out.map((o) => o.value), [{ sensor: "a", tag: "x" }, { sensor: "a", tag: "y" }]);
});"#
        }
        Kind::KeyedProcess => {
            r#"test("counts and averages per key; a summary fires a minute later", () => {
  const h = new Harness(exported());
  h.process([{ value: 1 }, { value: 3 }], { key: "a", timestamp: 1000 });
  const out = h.process([{ value: 5 }], { key: "b", timestamp: 0 });
  assert.deepEqual(out[0].value, { sensor: "b", count: 1, mean: 5 });
  assert.deepEqual(h.valueState("a", "stats"), [2, 4]);
  const fired = h.advanceWatermark(61_000);
  assert.deepEqual(fired.map((o) => [o.output, o.value]), [
    ["summary", { sensor: "b", at: 60_000, count: 1 }],
    ["summary", { sensor: "a", at: 61_000, count: 2 }],
  ]);
});"#
        }
        Kind::Aggregate => {
            r#"test("mean of merged parts", () => {
  assert.deepEqual(new AggregateHarness(exported()).aggregate([{ value: 1 }], [{ value: 2 }, { value: 6 }]), { mean: 3 });
});"#
        }
    };
    format!(
        r#"import {{ test }} from "node:test";
import assert from "node:assert/strict";
import {{ AggregateHarness, Harness, exported }} from "weir/testing";
import "./app";

{body}
"#
    )
}
