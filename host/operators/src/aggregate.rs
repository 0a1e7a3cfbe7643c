//! Window aggregates: the built-in ones (mergeable accumulators over a
//! record's numeric field) and a user-defined [`AggregateFunction`] (a Wasm
//! `aggregate` component), whose accumulators the host keeps as bytes.

use std::fmt::Write as _;

use serde_json::Value;
use weir_types::jobgraph::{AggregateFn, AggregateSpec};

/// A number as the aggregates keep it: `f64`, plus whether every input was
/// an integer (then `sum`, `min` and `max` print as integers). Snapshots
/// hold the value's bits, so NaN and infinities survive JSON.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "(u64, bool)", into = "(u64, bool)")]
pub(crate) struct Num {
    value: f64,
    all_int: bool,
}

impl From<(u64, bool)> for Num {
    fn from((bits, all_int): (u64, bool)) -> Self {
        Num {
            value: f64::from_bits(bits),
            all_int,
        }
    }
}

impl From<Num> for (u64, bool) {
    fn from(n: Num) -> Self {
        (n.value.to_bits(), n.all_int)
    }
}

/// One aggregate's running state. All of them merge (session windows).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Cell {
    Count(u64),
    Sum(Num),
    Min(Option<Num>),
    Max(Option<Num>),
    Avg {
        sum: f64,
        count: u64,
    },
    /// The winning value and its record's JSON (`max_by` / `min_by`).
    MaxBy(Option<(Num, Vec<u8>)>),
    MinBy(Option<(Num, Vec<u8>)>),
}

/// The running state of all aggregates of one window.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Accumulator {
    cells: Vec<Cell>,
    /// The user-defined aggregate's accumulator, opaque bytes.
    udf: Option<Vec<u8>>,
}

/// Why a call into a user-defined aggregate failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AggregateCallError {
    /// The function returned an error for its input (the guest's WIT
    /// `result`): the records are reported and the job goes on.
    #[error("{0}")]
    Rejected(String),
    /// The function cannot go on (a trap, a limit hit): the task fails.
    #[error("{0}")]
    Failed(CallFailure),
}

/// What ended a user-defined aggregate for good, keeping its kind up to
/// the task that reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CallFailure {
    /// The kind.
    pub kind: CallFailureKind,
    /// What happened.
    pub message: String,
}

/// The kinds of [`CallFailure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailureKind {
    /// The component trapped (a panic, `unreachable`).
    Trap,
    /// A call ran past its deadline.
    Timeout,
    /// The component hit its memory cap.
    MemoryLimit,
    /// The component returned an error where none may be returned, or a
    /// host call it made failed.
    UdfError,
}

impl CallFailure {
    /// A failure of `kind` saying `message`.
    pub fn new(kind: CallFailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

/// A user-defined window aggregate, Flink's `AggregateFunction` over
/// accumulators kept as opaque bytes (so window state holds them without
/// knowing their shape). Implemented by the Wasm `aggregate` world.
pub trait AggregateFunction: Send {
    /// A new, empty accumulator.
    ///
    /// # Errors
    /// [`AggregateCallError::Failed`] when the function cannot run.
    fn create_accumulator(&mut self) -> Result<Vec<u8>, AggregateCallError>;

    /// `accumulator` with `values` (record values, arrival order) added.
    ///
    /// # Errors
    /// [`AggregateCallError::Rejected`] when the function refuses the
    /// values (the accumulator passed in stays as it was), `Failed` when it
    /// cannot run.
    fn add(&mut self, accumulator: &[u8], values: &[&[u8]]) -> Result<Vec<u8>, AggregateCallError>;

    /// The two accumulators combined (`other` holds the later records).
    ///
    /// # Errors
    /// As [`AggregateFunction::add`].
    fn merge(&mut self, accumulator: &[u8], other: &[u8]) -> Result<Vec<u8>, AggregateCallError>;

    /// The window's result: JSON object text.
    ///
    /// # Errors
    /// As [`AggregateFunction::add`].
    fn get_result(&mut self, accumulator: &[u8]) -> Result<String, AggregateCallError>;
}

/// The aggregates of an operator: which field each reads and its result
/// name, and the user-defined aggregate, if any.
pub struct Aggregates {
    specs: Vec<AggregateSpec>,
    /// Distinct fields read, so each record's JSON is parsed once.
    needs_fields: bool,
    /// Some aggregate keeps whole records (`max_by`, `min_by`, a UDF).
    needs_record: bool,
    udf: Option<Box<dyn AggregateFunction>>,
}

impl std::fmt::Debug for Aggregates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregates")
            .field("specs", &self.specs)
            .field("udf", &self.udf.is_some())
            .finish()
    }
}

/// What a record contributes: one value per aggregate (`None` for
/// `count`), and the record itself, borrowed, when `max_by`/`min_by` may
/// keep it (copied only when it wins).
#[derive(Debug, Clone, PartialEq)]
pub struct Inputs<'r> {
    values: Vec<Option<Num>>,
    record: Option<&'r [u8]>,
}

impl Aggregates {
    /// The built-in aggregates of a window, in result order, and the
    /// user-defined one (its fields come last).
    pub fn new(specs: &[AggregateSpec], udf: Option<Box<dyn AggregateFunction>>) -> Self {
        Self {
            specs: specs.to_vec(),
            needs_fields: specs.iter().any(|s| s.field.is_some()),
            needs_record: udf.is_some()
                || specs
                    .iter()
                    .any(|s| matches!(s.function, AggregateFn::MaxBy | AggregateFn::MinBy)),
            udf,
        }
    }

    /// An accumulator with no input yet.
    ///
    /// # Errors
    /// [`AggregateCallError::Failed`] when the user-defined aggregate fails.
    pub fn create(&mut self) -> Result<Accumulator, AggregateCallError> {
        let udf = match &mut self.udf {
            Some(f) => Some(
                f.create_accumulator()
                    .map_err(fatal("create-accumulator"))?,
            ),
            None => None,
        };
        Ok(Accumulator {
            cells: self.builtin_cells(),
            udf,
        })
    }

    fn builtin_cells(&self) -> Vec<Cell> {
        self.specs
            .iter()
            .map(|s| match s.function {
                AggregateFn::Count => Cell::Count(0),
                AggregateFn::Sum => Cell::Sum(Num {
                    value: 0.0,
                    all_int: true,
                }),
                AggregateFn::Min => Cell::Min(None),
                AggregateFn::Max => Cell::Max(None),
                AggregateFn::Avg => Cell::Avg { sum: 0.0, count: 0 },
                AggregateFn::MaxBy => Cell::MaxBy(None),
                AggregateFn::MinBy => Cell::MinBy(None),
            })
            .collect()
    }

    /// Reads the fields the aggregates need from a JSON record value.
    ///
    /// # Errors
    /// A message naming the field when it is missing or not a number, or
    /// when the value is not a JSON object.
    pub fn inputs<'r>(&self, value: &'r [u8]) -> Result<Inputs<'r>, String> {
        if !self.needs_fields {
            return Ok(Inputs {
                values: vec![None; self.specs.len()],
                record: self.needs_record.then_some(value),
            });
        }
        let fields: Vec<&str> = self
            .specs
            .iter()
            .map(|s| s.field.as_deref().unwrap_or_default())
            .collect();
        let found = weir_types::json_fields(value, &fields)?;
        let values = self
            .specs
            .iter()
            .zip(found)
            .map(|(spec, found)| match &spec.field {
                None => Ok(None),
                Some(field) => match found {
                    Some(Value::Number(n)) => Ok(Some(Num {
                        value: n.as_f64().unwrap_or(f64::NAN),
                        all_int: n.is_i64() || n.is_u64(),
                    })),
                    Some(other) => Err(format!("field `{field}` is not a number: {other}")),
                    None => Err(format!("field `{field}` is missing")),
                },
            })
            .collect::<Result<_, _>>()?;
        Ok(Inputs {
            values,
            record: self.needs_record.then_some(value),
        })
    }

    /// Adds one record's inputs (from [`Aggregates::inputs`]). The
    /// user-defined aggregate goes first, so a record it rejects changes
    /// nothing.
    ///
    /// # Errors
    /// [`AggregateCallError`] from the user-defined aggregate.
    pub fn add(
        &mut self,
        acc: &mut Accumulator,
        inputs: &Inputs<'_>,
    ) -> Result<(), AggregateCallError> {
        if let (Some(f), Some(state)) = (&mut self.udf, &mut acc.udf) {
            *state = f.add(state, &[inputs.record.unwrap_or_default()])?;
        }
        self.add_builtin(acc, inputs);
        Ok(())
    }

    fn add_builtin(&self, acc: &mut Accumulator, inputs: &Inputs<'_>) {
        for (cell, input) in acc.cells.iter_mut().zip(&inputs.values) {
            let x = *input;
            let record = || inputs.record.unwrap_or_default().to_vec();
            match (cell, x) {
                (Cell::Count(n), _) => *n += 1,
                (Cell::Sum(s), Some(x)) => {
                    s.value += x.value;
                    s.all_int &= x.all_int;
                }
                (Cell::Min(m), Some(x)) if m.is_none_or(|m| x.value < m.value) => {
                    *m = Some(x);
                }
                (Cell::Max(m), Some(x)) if m.is_none_or(|m| x.value > m.value) => {
                    *m = Some(x);
                }
                (Cell::Avg { sum, count }, Some(x)) => {
                    *sum += x.value;
                    *count += 1;
                }
                (Cell::MaxBy(m), Some(x)) if m.as_ref().is_none_or(|m| x.value > m.0.value) => {
                    *m = Some((x, record()));
                }
                (Cell::MinBy(m), Some(x)) if m.as_ref().is_none_or(|m| x.value < m.0.value) => {
                    *m = Some((x, record()));
                }
                _ => {}
            }
        }
    }

    /// Folds `other` into `acc` (both from this `Aggregates`).
    ///
    /// # Errors
    /// [`AggregateCallError::Failed`] when the user-defined aggregate fails
    /// or refuses to merge (accumulators it made itself).
    pub fn merge(
        &mut self,
        acc: &mut Accumulator,
        other: &Accumulator,
    ) -> Result<(), AggregateCallError> {
        if let (Some(f), Some(state), Some(other)) = (&mut self.udf, &mut acc.udf, &other.udf) {
            *state = f.merge(state, other).map_err(fatal("merge"))?;
        }
        self.merge_builtin(acc, other);
        Ok(())
    }

    fn merge_builtin(&self, acc: &mut Accumulator, other: &Accumulator) {
        for (cell, o) in acc.cells.iter_mut().zip(&other.cells) {
            match (cell, o) {
                (Cell::Count(n), Cell::Count(m)) => *n += m,
                (Cell::Sum(s), Cell::Sum(t)) => {
                    s.value += t.value;
                    s.all_int &= t.all_int;
                }
                (Cell::Min(m), Cell::Min(Some(x))) if m.is_none_or(|m| x.value < m.value) => {
                    *m = Some(*x);
                }
                (Cell::Max(m), Cell::Max(Some(x))) if m.is_none_or(|m| x.value > m.value) => {
                    *m = Some(*x);
                }
                (Cell::Avg { sum, count }, Cell::Avg { sum: s, count: c }) => {
                    *sum += s;
                    *count += c;
                }
                (Cell::MaxBy(m), Cell::MaxBy(Some(x)))
                    if m.as_ref().is_none_or(|m| x.0.value > m.0.value) =>
                {
                    *m = Some(x.clone());
                }
                (Cell::MinBy(m), Cell::MinBy(Some(x)))
                    if m.as_ref().is_none_or(|m| x.0.value < m.0.value) =>
                {
                    *m = Some(x.clone());
                }
                _ => {}
            }
        }
    }

    /// Appends `,"name":result` for every aggregate to a JSON object being
    /// written, then the fields of the user-defined aggregate's result.
    ///
    /// # Errors
    /// [`AggregateCallError::Rejected`] when the user-defined aggregate
    /// returns an error or something that is not a JSON object (nothing is
    /// appended then), `Failed` when it cannot run.
    pub fn write_results(
        &mut self,
        acc: &Accumulator,
        json: &mut String,
    ) -> Result<(), AggregateCallError> {
        let udf_result = match (&mut self.udf, &acc.udf) {
            (Some(f), Some(state)) => Some(f.get_result(state)?),
            _ => None,
        };
        let udf_fields = udf_result.as_deref().map(object_fields).transpose()?;
        self.write_builtin(acc, json);
        if let Some(fields) = udf_fields.filter(|f| !f.is_empty()) {
            json.push(',');
            json.push_str(fields);
        }
        Ok(())
    }

    fn write_builtin(&self, acc: &Accumulator, json: &mut String) {
        for (spec, cell) in self.specs.iter().zip(&acc.cells) {
            json.push(',');
            push_json_string(json, spec.output_name());
            json.push(':');
            match cell {
                Cell::Count(n) => {
                    let _ = write!(json, "{n}");
                }
                Cell::Sum(s) => push_num(json, Some(*s)),
                Cell::Min(m) | Cell::Max(m) => push_num(json, *m),
                Cell::Avg { sum, count } => {
                    let mean = (*count > 0).then(|| Num {
                        value: sum / *count as f64,
                        all_int: false,
                    });
                    push_num(json, mean);
                }
                // The record was parsed as JSON when it was added.
                Cell::MaxBy(Some((_, record))) | Cell::MinBy(Some((_, record))) => {
                    json.push_str(&String::from_utf8_lossy(record));
                }
                Cell::MaxBy(None) | Cell::MinBy(None) => json.push_str("null"),
            }
        }
    }
}

/// Names the call in a fatal error; a rejection where none is expected
/// (`create-accumulator`, `merge`) is fatal too.
fn fatal(call: &'static str) -> impl Fn(AggregateCallError) -> AggregateCallError {
    move |e| match e {
        AggregateCallError::Rejected(m) => AggregateCallError::Failed(CallFailure::new(
            CallFailureKind::UdfError,
            format!("in {call}: {m}"),
        )),
        AggregateCallError::Failed(f) => AggregateCallError::Failed(CallFailure::new(
            f.kind,
            format!("in {call}: {}", f.message),
        )),
    }
}

/// The inside of a JSON object's text (`{...}` without the braces), checked.
fn object_fields(text: &str) -> Result<&str, AggregateCallError> {
    let reject = |why: String| {
        AggregateCallError::Rejected(format!("get-result must return a JSON object: {why}"))
    };
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Err(e) => Err(reject(e.to_string())),
        Ok(_) => {
            let trimmed = text.trim();
            match trimmed.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(inner) => Ok(inner.trim()),
                None => Err(reject(format!("got `{}`", truncate(trimmed, 60)))),
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

/// Appends `s` as a JSON string literal (escaped as serde_json escapes:
/// quotes, backslashes and control characters).
pub(crate) fn push_json_string(json: &mut String, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        json.push('"');
        json.push_str(s);
        json.push('"');
    } else {
        let _ = write!(json, "{}", Value::from(s));
    }
}

fn push_num(json: &mut String, n: Option<Num>) {
    // Writing into a String cannot fail.
    match n {
        Some(n) if n.all_int && n.value.fract() == 0.0 && n.value.abs() < 9.0e15 => {
            let _ = write!(json, "{}", n.value as i64);
        }
        Some(n) if n.value.is_finite() => {
            let _ = write!(json, "{}", Value::from(n.value));
        }
        _ => json.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        for s in [
            "",
            "plain",
            "q\"uote",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "é ∑ 🦀",
            "\u{7f}",
        ] {
            let mut json = String::from("x");
            push_json_string(&mut json, s);
            assert_eq!(json, format!("x{}", Value::from(s)), "{s:?}");
        }
    }

    fn spec(function: AggregateFn, field: Option<&str>) -> AggregateSpec {
        AggregateSpec {
            function,
            field: field.map(str::to_string),
            name: None,
        }
    }

    fn all() -> Aggregates {
        Aggregates::new(
            &[
                spec(AggregateFn::Count, None),
                spec(AggregateFn::Sum, Some("v")),
                spec(AggregateFn::Min, Some("v")),
                spec(AggregateFn::Max, Some("v")),
                spec(AggregateFn::Avg, Some("v")),
            ],
            None,
        )
    }

    fn result(aggs: &mut Aggregates, acc: &Accumulator) -> String {
        let mut s = String::from("{\"k\":1");
        aggs.write_results(acc, &mut s).unwrap();
        s.push('}');
        s
    }

    #[test]
    fn max_by_and_min_by_keep_the_first_record_with_the_extreme_value() {
        let mut aggs = Aggregates::new(
            &[
                spec(AggregateFn::MaxBy, Some("p")),
                spec(AggregateFn::MinBy, Some("p")),
            ],
            None,
        );
        let records = [
            r#"{"p":5,"id":"a"}"#,
            r#"{"p":9,"id":"b"}"#,
            r#"{"p":2,"id":"c"}"#,
            r#"{"p":9,"id":"d"}"#,
            r#"{"p":2,"id":"e"}"#,
        ];
        let mut acc = aggs.create().unwrap();
        for r in records {
            let inputs = aggs.inputs(r.as_bytes()).unwrap();
            aggs.add(&mut acc, &inputs).unwrap();
        }
        let expected = r#"{"k":1,"max_by":{"p":9,"id":"b"},"min_by":{"p":2,"id":"c"}}"#;
        assert_eq!(result(&mut aggs, &acc), expected);
        // Merging in arrival order keeps the same winners.
        let (mut first, mut second) = (aggs.create().unwrap(), aggs.create().unwrap());
        for (i, r) in records.iter().enumerate() {
            let half = if i < 2 { &mut first } else { &mut second };
            let inputs = aggs.inputs(r.as_bytes()).unwrap();
            aggs.add(half, &inputs).unwrap();
        }
        aggs.merge(&mut first, &second).unwrap();
        assert_eq!(result(&mut aggs, &first), expected);
        let empty = aggs.create().unwrap();
        assert_eq!(
            result(&mut aggs, &empty),
            r#"{"k":1,"max_by":null,"min_by":null}"#
        );
    }

    #[test]
    fn integers_stay_integers_and_floats_do_not() {
        let mut aggs = all();
        let mut acc = aggs.create().unwrap();
        for v in ["3", "1", "8"] {
            let record = format!("{{\"v\":{v}}}");
            let inputs = aggs.inputs(record.as_bytes()).unwrap();
            aggs.add(&mut acc, &inputs).unwrap();
        }
        assert_eq!(
            result(&mut aggs, &acc),
            r#"{"k":1,"count":3,"sum":12,"min":1,"max":8,"avg":4.0}"#
        );
        let inputs = aggs.inputs(br#"{"v":0.5}"#).unwrap();
        aggs.add(&mut acc, &inputs).unwrap();
        assert_eq!(
            result(&mut aggs, &acc),
            r#"{"k":1,"count":4,"sum":12.5,"min":0.5,"max":8,"avg":3.125}"#
        );
    }

    #[test]
    fn merge_equals_adding_everything_to_one() {
        let mut aggs = all();
        let (mut a, mut b, mut both) = (
            aggs.create().unwrap(),
            aggs.create().unwrap(),
            aggs.create().unwrap(),
        );
        for (i, v) in [2.5, -1.0, 7.0, 4.0].iter().enumerate() {
            let record = format!("{{\"v\":{v}}}");
            let inputs = aggs.inputs(record.as_bytes()).unwrap();
            aggs.add(if i % 2 == 0 { &mut a } else { &mut b }, &inputs)
                .unwrap();
            aggs.add(&mut both, &inputs).unwrap();
        }
        aggs.merge(&mut a, &b).unwrap();
        assert_eq!(result(&mut aggs, &a), result(&mut aggs, &both));
    }

    #[test]
    fn empty_and_bad_inputs() {
        let mut aggs = all();
        let empty = aggs.create().unwrap();
        assert_eq!(
            result(&mut aggs, &empty),
            r#"{"k":1,"count":0,"sum":0,"min":null,"max":null,"avg":null}"#
        );
        assert_eq!(
            aggs.inputs(br#"{"w":1}"#).unwrap_err(),
            "field `v` is missing"
        );
        assert!(
            aggs.inputs(br#"{"v":"x"}"#)
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            aggs.inputs(b"nope")
                .unwrap_err()
                .contains("not a JSON object")
        );
    }
}
