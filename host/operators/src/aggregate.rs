//! Built-in aggregates: mergeable accumulators over a record's numeric field.

use serde_json::Value;
use weir_types::jobgraph::{AggregateFn, AggregateSpec};

/// A number as the aggregates keep it: `f64`, plus whether every input was
/// an integer (then `sum`, `min` and `max` print as integers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Num {
    value: f64,
    all_int: bool,
}

/// One aggregate's running state. All of them merge (session windows).
#[derive(Debug, Clone, PartialEq)]
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
#[derive(Debug, Clone, PartialEq)]
pub struct Accumulator {
    cells: Vec<Cell>,
}

/// The aggregates of an operator: which field each reads and its result name.
#[derive(Debug, Clone)]
pub struct Aggregates {
    specs: Vec<AggregateSpec>,
    /// Distinct fields read, so each record's JSON is parsed once.
    needs_fields: bool,
    /// Some aggregate keeps whole records (`max_by`, `min_by`).
    needs_record: bool,
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
    /// The aggregates of a window, in result order.
    pub fn new(specs: &[AggregateSpec]) -> Self {
        Self {
            specs: specs.to_vec(),
            needs_fields: specs.iter().any(|s| s.field.is_some()),
            needs_record: specs
                .iter()
                .any(|s| matches!(s.function, AggregateFn::MaxBy | AggregateFn::MinBy)),
        }
    }

    /// An accumulator with no input yet.
    pub fn create(&self) -> Accumulator {
        let cells = self
            .specs
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
            .collect();
        Accumulator { cells }
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
                record: None,
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

    /// Adds one record's inputs (from [`Aggregates::inputs`]).
    pub fn add(&self, acc: &mut Accumulator, inputs: &Inputs<'_>) {
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
    pub fn merge(&self, acc: &mut Accumulator, other: &Accumulator) {
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

    /// Appends `,"name":result` for every aggregate to a JSON object being written.
    pub fn write_results(&self, acc: &Accumulator, json: &mut String) {
        for (spec, cell) in self.specs.iter().zip(&acc.cells) {
            json.push(',');
            push_json_string(json, spec.output_name());
            json.push(':');
            match cell {
                Cell::Count(n) => json.push_str(&n.to_string()),
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

/// Appends `s` as a JSON string literal.
pub(crate) fn push_json_string(json: &mut String, s: &str) {
    json.push_str(&Value::String(s.to_string()).to_string());
}

fn push_num(json: &mut String, n: Option<Num>) {
    match n {
        Some(n) if n.all_int && n.value.fract() == 0.0 && n.value.abs() < 9.0e15 => {
            json.push_str(&(n.value as i64).to_string());
        }
        Some(n) if n.value.is_finite() => json.push_str(&Value::from(n.value).to_string()),
        _ => json.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(function: AggregateFn, field: Option<&str>) -> AggregateSpec {
        AggregateSpec {
            function,
            field: field.map(str::to_string),
            name: None,
        }
    }

    fn all() -> Aggregates {
        Aggregates::new(&[
            spec(AggregateFn::Count, None),
            spec(AggregateFn::Sum, Some("v")),
            spec(AggregateFn::Min, Some("v")),
            spec(AggregateFn::Max, Some("v")),
            spec(AggregateFn::Avg, Some("v")),
        ])
    }

    fn result(aggs: &Aggregates, acc: &Accumulator) -> String {
        let mut s = String::from("{\"k\":1");
        aggs.write_results(acc, &mut s);
        s.push('}');
        s
    }

    #[test]
    fn max_by_and_min_by_keep_the_first_record_with_the_extreme_value() {
        let aggs = Aggregates::new(&[
            spec(AggregateFn::MaxBy, Some("p")),
            spec(AggregateFn::MinBy, Some("p")),
        ]);
        let records = [
            r#"{"p":5,"id":"a"}"#,
            r#"{"p":9,"id":"b"}"#,
            r#"{"p":2,"id":"c"}"#,
            r#"{"p":9,"id":"d"}"#,
            r#"{"p":2,"id":"e"}"#,
        ];
        let mut acc = aggs.create();
        for r in records {
            aggs.add(&mut acc, &aggs.inputs(r.as_bytes()).unwrap());
        }
        let expected = r#"{"k":1,"max_by":{"p":9,"id":"b"},"min_by":{"p":2,"id":"c"}}"#;
        assert_eq!(result(&aggs, &acc), expected);
        // Merging in arrival order keeps the same winners.
        let (mut first, mut second) = (aggs.create(), aggs.create());
        for (i, r) in records.iter().enumerate() {
            let half = if i < 2 { &mut first } else { &mut second };
            aggs.add(half, &aggs.inputs(r.as_bytes()).unwrap());
        }
        aggs.merge(&mut first, &second);
        assert_eq!(result(&aggs, &first), expected);
        assert_eq!(
            result(&aggs, &aggs.create()),
            r#"{"k":1,"max_by":null,"min_by":null}"#
        );
    }

    #[test]
    fn integers_stay_integers_and_floats_do_not() {
        let aggs = all();
        let mut acc = aggs.create();
        for v in ["3", "1", "8"] {
            let record = format!("{{\"v\":{v}}}");
            let inputs = aggs.inputs(record.as_bytes()).unwrap();
            aggs.add(&mut acc, &inputs);
        }
        assert_eq!(
            result(&aggs, &acc),
            r#"{"k":1,"count":3,"sum":12,"min":1,"max":8,"avg":4.0}"#
        );
        let inputs = aggs.inputs(br#"{"v":0.5}"#).unwrap();
        aggs.add(&mut acc, &inputs);
        assert_eq!(
            result(&aggs, &acc),
            r#"{"k":1,"count":4,"sum":12.5,"min":0.5,"max":8,"avg":3.125}"#
        );
    }

    #[test]
    fn merge_equals_adding_everything_to_one() {
        let aggs = all();
        let (mut a, mut b, mut both) = (aggs.create(), aggs.create(), aggs.create());
        for (i, v) in [2.5, -1.0, 7.0, 4.0].iter().enumerate() {
            let record = format!("{{\"v\":{v}}}");
            let inputs = aggs.inputs(record.as_bytes()).unwrap();
            aggs.add(if i % 2 == 0 { &mut a } else { &mut b }, &inputs);
            aggs.add(&mut both, &inputs);
        }
        aggs.merge(&mut a, &b);
        assert_eq!(result(&aggs, &a), result(&aggs, &both));
    }

    #[test]
    fn empty_and_bad_inputs() {
        let aggs = all();
        assert_eq!(
            result(&aggs, &aggs.create()),
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
