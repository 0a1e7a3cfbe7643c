//! The JavaScript and TypeScript templates of `weir udf new`: `app.js` /
//! `app.ts` and their test per kind.

use super::Kind;

/// The JavaScript (or, with types, TypeScript) function of `kind`.
pub(super) fn js_app(kind: Kind, typed: bool) -> String {
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
pub(super) fn js_test(kind: Kind) -> String {
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
