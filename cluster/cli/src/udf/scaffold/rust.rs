//! The Rust templates of `weir udf new`: `Cargo.toml` and `src/lib.rs` per kind.

use std::path::Path;

use super::Kind;

pub(super) fn cargo_toml(name: &str, kind: Kind, sdk_root: &Path) -> String {
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

pub(super) fn rust_lib(kind: Kind) -> &'static str {
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
