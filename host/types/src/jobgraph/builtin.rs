//! Specs of the built-in operators (windows, joins) and of vertex inputs.
//!
//! ```yaml
//! operators:
//!   - id: hourly
//!     input: readings
//!     partition: key_by
//!     window: { type: tumbling, size: 1h, allowed_lateness: 5m, late_output: late }
//!     aggregate:
//!       - { fn: count }
//!       - { fn: max, field: value, as: peak }
//!   - id: q8
//!     input:                          # two inputs: a join
//!       - { from: persons, key: id }
//!       - { from: auctions, key: seller }
//!     partition: key_by
//!     join: { type: window, window: { type: tumbling, size: 10s } }
//! sinks:
//!   - id: late
//!     input: { from: hourly, output: late }   # a side output
//!     type: file
//!     path: out/late
//! ```

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A duration in milliseconds, written in a job file as a number of ms or
/// as text in `humantime`'s format (`500ms`, `10s`, `1h`, `1day`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
pub struct DurationMs(pub u64);

impl DurationMs {
    /// The duration in ms as a signed event-time offset.
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

impl<'de> Deserialize<'de> for DurationMs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Ms(u64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Ms(ms) => Ok(DurationMs(ms)),
            Repr::Text(text) => parse_duration_ms(&text)
                .map(DurationMs)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `500ms`, `10s`, `1h`, `1 day` or a bare number of ms.
///
/// # Errors
/// A message naming the text when it is not a duration.
pub fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    humantime::parse_duration(text)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .map_err(|e| format!("`{text}` is not a duration (like 500ms, 10s, 1h): {e}"))
}

/// A signed duration in ms (`-5s` is allowed), for interval-join bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
pub struct SignedDurationMs(pub i64);

impl<'de> Deserialize<'de> for SignedDurationMs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Ms(i64),
            Text(String),
        }
        match Repr::deserialize(d)? {
            Repr::Ms(ms) => Ok(SignedDurationMs(ms)),
            Repr::Text(text) => {
                let (sign, rest) = match text.trim().strip_prefix('-') {
                    Some(rest) => (-1, rest),
                    None => (1, text.trim()),
                };
                let ms = parse_duration_ms(rest).map_err(serde::de::Error::custom)?;
                Ok(SignedDurationMs(
                    sign * i64::try_from(ms).unwrap_or(i64::MAX),
                ))
            }
        }
    }
}

/// One input edge of a vertex: `from` names the upstream vertex.
///
/// Written as the bare id (`input: readings`) or as a map:
/// `{ from: hourly, output: late }` reads the side output `late` of
/// `hourly`; `{ from: bids, key: auction }` re-keys the records by the
/// top-level field `auction` of their JSON value before a `key_by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InputSpec {
    /// Id of the upstream vertex.
    pub from: String,
    /// Name of the upstream operator's side output (default: its main output).
    pub output: Option<String>,
    /// Field whose value becomes the record key (default: keep the key).
    pub key: Option<String>,
}

impl InputSpec {
    /// The main output of `from`, keys unchanged.
    pub fn main(from: &str) -> Self {
        Self {
            from: from.to_string(),
            output: None,
            key: None,
        }
    }
}

impl fmt::Display for InputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.output {
            Some(output) => write!(f, "{}.{output}", self.from),
            None => write!(f, "{}", self.from),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum InputRepr {
    Id(String),
    Map(InputMap),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputMap {
    from: String,
    output: Option<String>,
    key: Option<String>,
}

impl From<InputRepr> for InputSpec {
    fn from(repr: InputRepr) -> Self {
        match repr {
            InputRepr::Id(from) => InputSpec::main(&from),
            InputRepr::Map(m) => InputSpec {
                from: m.from,
                output: m.output,
                key: m.key,
            },
        }
    }
}

impl<'de> Deserialize<'de> for InputSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        InputRepr::deserialize(d).map(Into::into)
    }
}

/// Deserializes one input or a list of them.
pub(crate) fn one_or_many_inputs<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<InputSpec>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        One(InputSpec),
        Many(Vec<InputSpec>),
    }
    Ok(match Repr::deserialize(d)? {
        Repr::One(one) => vec![one],
        Repr::Many(many) => many,
    })
}

/// Which clock a window or timer follows.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum TimeDomain {
    /// Record timestamps, driven by watermarks.
    #[default]
    Event,
    /// The wall clock of the machine running the subtask.
    Processing,
}

/// The window shapes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Fixed, non-overlapping windows of `size`, aligned to the epoch.
    Tumbling,
    /// Windows of `size` starting every `slide` (a record is in `size / slide` windows).
    Sliding,
    /// Per-key activity periods separated by at least `gap` of silence.
    Session,
}

/// A window: shape, clock, lateness and how results are written.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// The shape.
    #[serde(rename = "type")]
    pub kind: WindowKind,
    /// Window length (tumbling, sliding).
    pub size: Option<DurationMs>,
    /// Distance between window starts (sliding).
    pub slide: Option<DurationMs>,
    /// Inactivity that closes a session (session).
    pub gap: Option<DurationMs>,
    /// Event time (default) or processing time.
    #[serde(default)]
    pub time: TimeDomain,
    /// How long after a window's end (in event time) late records still
    /// update it; each such record emits an updated result (default 0).
    #[serde(default)]
    pub allowed_lateness: DurationMs,
    /// Side output that receives records too late for every window
    /// (default: dropped and counted as a problem).
    pub late_output: Option<String>,
    /// Name of the result field holding the key (default `key`).
    #[serde(default = "default_key_field")]
    pub key_field: String,
    /// `window_start` / `window_end` as ms since the epoch (default) or,
    /// when set, formatted with this chrono `strftime` pattern in UTC.
    pub bounds_format: Option<String>,
}

fn default_key_field() -> String {
    "key".to_string()
}

/// The built-in aggregate functions.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AggregateFn {
    /// Number of records.
    Count,
    /// Sum of a numeric field.
    Sum,
    /// Smallest value of a numeric field.
    Min,
    /// Largest value of a numeric field.
    Max,
    /// Arithmetic mean of a numeric field.
    Avg,
    /// The whole record (as a JSON value) with the largest value of a
    /// numeric field; of equal values the first to arrive (Flink's `maxBy`).
    MaxBy,
    /// The whole record with the smallest value of a numeric field; of
    /// equal values the first to arrive (Flink's `minBy`).
    MinBy,
}

impl AggregateFn {
    /// The name used in job files.
    pub fn name(self) -> &'static str {
        match self {
            AggregateFn::Count => "count",
            AggregateFn::Sum => "sum",
            AggregateFn::Min => "min",
            AggregateFn::Max => "max",
            AggregateFn::Avg => "avg",
            AggregateFn::MaxBy => "max_by",
            AggregateFn::MinBy => "min_by",
        }
    }
}

/// One aggregate of a window result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    /// The function.
    #[serde(rename = "fn")]
    pub function: AggregateFn,
    /// The numeric top-level field it reads (all but `count`).
    pub field: Option<String>,
    /// Name of the result field (default: the function's name).
    #[serde(rename = "as")]
    pub name: Option<String>,
}

impl AggregateSpec {
    /// The result field name.
    pub fn output_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.function.name())
    }
}

/// The join kinds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum JoinKind {
    /// Records of both inputs with the same key in the same window.
    Window,
    /// A left record joins right records with the same key whose
    /// timestamp is within `[left.ts + lower, left.ts + upper]`.
    Interval,
}

/// A join of an operator's two inputs (the first is the left side).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct JoinSpec {
    /// Window or interval join.
    #[serde(rename = "type")]
    pub kind: JoinKind,
    /// The window (window join; event time, tumbling or sliding).
    pub window: Option<WindowSpec>,
    /// Lower bound of the interval relative to the left timestamp (interval join).
    pub lower: Option<SignedDurationMs>,
    /// Upper bound of the interval relative to the left timestamp (interval join).
    pub upper: Option<SignedDurationMs>,
}

/// Checks a window's shape fields; returns `(field, message)`.
pub(crate) fn check_window(w: &WindowSpec) -> Result<(), (String, String)> {
    let positive = |name: &str, v: Option<DurationMs>| match v {
        Some(DurationMs(0)) => Err((name.to_string(), "must be more than 0 ms".to_string())),
        Some(_) => Ok(()),
        None => Err((
            name.to_string(),
            format!("a {:?} window needs `{name}`", w.kind).to_lowercase(),
        )),
    };
    let absent = |name: &str, present: bool| {
        if present {
            Err((
                name.to_string(),
                format!("does not apply to a {:?} window", w.kind).to_lowercase(),
            ))
        } else {
            Ok(())
        }
    };
    match w.kind {
        WindowKind::Tumbling => {
            positive("size", w.size)?;
            absent("slide", w.slide.is_some())?;
            absent("gap", w.gap.is_some())
        }
        WindowKind::Sliding => {
            positive("size", w.size)?;
            positive("slide", w.slide)?;
            absent("gap", w.gap.is_some())
        }
        WindowKind::Session => {
            positive("gap", w.gap)?;
            absent("size", w.size.is_some())?;
            absent("slide", w.slide.is_some())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_numbers_and_text() {
        assert_eq!(parse_duration_ms("1500"), Ok(1500));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("1day"), Ok(86_400_000));
        assert!(parse_duration_ms("soon").unwrap_err().contains("`soon`"));
        let d: SignedDurationMs = serde_json::from_str("\"-5s\"").unwrap();
        assert_eq!(d, SignedDurationMs(-5000));
    }

    #[test]
    fn inputs_read_ids_maps_and_lists() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "one_or_many_inputs")]
            input: Vec<InputSpec>,
        }
        let one: T = serde_json::from_str(r#"{"input":"a"}"#).unwrap();
        assert_eq!(one.input, vec![InputSpec::main("a")]);
        let many: T =
            serde_json::from_str(r#"{"input":["a",{"from":"b","output":"late","key":"k"}]}"#)
                .unwrap();
        assert_eq!(many.input[1].output.as_deref(), Some("late"));
        assert_eq!(many.input[1].key.as_deref(), Some("k"));
        assert_eq!(many.input[1].to_string(), "b.late");
    }
}
