//! `weir nexmark`: write a Nexmark event stream to JSON-lines files, for
//! replay by a `type: nexmark` source with `replay:` (or any JSON-lines
//! file source with `timestamp: {field: dateTime, format: millis}`), or
//! one kind of event to CSV files (RFC 4180, a header line), the same
//! events for engines that read CSV.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use weir_connectors::{SourceReader, plan_splits};
use weir_types::jobgraph::{NexmarkKind, SourceKind};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Number of events (all kinds counted).
    pub events: u64,
    /// Generator seed.
    pub seed: u64,
    /// Event-time rate, events per second.
    pub rate: u64,
    /// Event time of the first event, ms since the epoch.
    pub base_time: i64,
    /// Kinds to write.
    pub kinds: Vec<NexmarkKind>,
    /// Number of files; file `i` holds the events `i, i + files, …`, as
    /// the generator's splits at that parallelism.
    pub files: u32,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// File format.
    pub format: FileFormat,
}

/// The format of the files `weir nexmark` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FileFormat {
    /// One JSON object per line (`part-<i>.jsonl`), as the generator makes
    /// them, with their `type` field.
    #[default]
    JsonLines,
    /// RFC 4180 CSV (`part-<i>.csv`) of one kind: a header line with the
    /// event's field names in the generator's order, without `type`.
    Csv,
}

/// Errors of `weir nexmark`.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    /// A setting is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The output could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The generator failed.
    #[error(transparent)]
    Connector(#[from] weir_connectors::ConnectorError),
}

/// Writes the stream under `dir` as `part-<i>.jsonl` (or `part-<i>.csv`)
/// files (the directory is created; existing parts are replaced) and
/// returns the number of records written.
///
/// # Errors
/// `files` or `rate` of 0, no kinds, CSV of more than one kind, or an I/O
/// error.
pub fn generate(dir: &Path, options: &GenerateOptions) -> Result<u64, GenerateError> {
    if options.files == 0 || options.rate == 0 || options.kinds.is_empty() {
        return Err(GenerateError::Invalid(
            "--files and --rate must be at least 1, and --kinds must name a kind".into(),
        ));
    }
    if options.format == FileFormat::Csv && options.kinds.len() != 1 {
        return Err(GenerateError::Invalid(
            "CSV holds one kind of event: give --kinds person, auction or bid".into(),
        ));
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GenerateError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let kind = SourceKind::Nexmark {
        events: Some(options.events),
        replay: None,
        seed: options.seed,
        rate: options.rate,
        base_time: options.base_time,
        kinds: options.kinds.clone(),
    };
    let bar = progress_bar(options);
    let mut written = 0;
    for split in plan_splits("nexmark", &kind, options.files, 0)? {
        let extension = match options.format {
            FileFormat::JsonLines => "jsonl",
            FileFormat::Csv => "csv",
        };
        let path = dir.join(format!("part-{}.{extension}", split.index));
        let file = File::create(&path).map_err(write_err(&path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut reader = SourceReader::new(&kind, vec![split]);
        let mut bad = Vec::new();
        let mut header: Option<Vec<String>> = None;
        let mut line = Vec::new();
        while let Some(batch) = reader.next_batch(4096, &mut bad)? {
            for record in &batch.records {
                line.clear();
                match options.format {
                    FileFormat::JsonLines => line.extend_from_slice(&record.value),
                    FileFormat::Csv => {
                        csv_row(&record.value, &mut header, &mut line)?;
                    }
                }
                line.push(b'\n');
                out.write_all(&line).map_err(write_err(&path))?;
            }
            written += batch.len() as u64;
            bar.inc(batch.len() as u64);
        }
        out.flush().map_err(write_err(&path))?;
    }
    bar.finish_and_clear();
    Ok(written)
}

/// Appends `event` (a JSON object) to `line` as a CSV row of its fields
/// but `type`, in their order; the first event's field names become the
/// header (written before its row), and every later event must have the
/// same names.
fn csv_row(
    event: &[u8],
    header: &mut Option<Vec<String>>,
    line: &mut Vec<u8>,
) -> Result<(), GenerateError> {
    let OrderedFields(fields) = serde_json::from_slice(event).map_err(|e| {
        GenerateError::Invalid(format!(
            "the generator made an event that is not an object: {e}"
        ))
    })?;
    let fields: Vec<_> = fields
        .into_iter()
        .filter(|(name, _)| name != "type")
        .collect();
    let names = fields.iter().map(|(name, _)| name.as_str());
    match header {
        None => {
            let names: Vec<String> = names.map(str::to_string).collect();
            for (i, name) in names.iter().enumerate() {
                if i > 0 {
                    line.push(b',');
                }
                csv_field(name, line);
            }
            line.push(b'\n');
            *header = Some(names);
        }
        Some(expected) if !names.clone().eq(expected.iter().map(String::as_str)) => {
            return Err(GenerateError::Invalid(format!(
                "an event's fields ({}) differ from the CSV header ({})",
                names.collect::<Vec<_>>().join(","),
                expected.join(",")
            )));
        }
        Some(_) => {}
    }
    for (i, (_, value)) in fields.iter().enumerate() {
        if i > 0 {
            line.push(b',');
        }
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::String(text) => csv_field(text, line),
            other => line.extend_from_slice(other.to_string().as_bytes()),
        }
    }
    Ok(())
}

/// Appends one CSV field, quoted (quotes doubled) when it holds a comma, a
/// quote or a line break (RFC 4180, section 2).
fn csv_field(text: &str, line: &mut Vec<u8>) {
    if text.contains([',', '"', '\n', '\r']) {
        line.push(b'"');
        line.extend_from_slice(text.replace('"', "\"\"").as_bytes());
        line.push(b'"');
    } else {
        line.extend_from_slice(text.as_bytes());
    }
}

/// A JSON object's fields in the order they appear.
struct OrderedFields(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for OrderedFields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = OrderedFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedFields, A::Error> {
                let mut fields = Vec::new();
                while let Some(field) = map.next_entry()? {
                    fields.push(field);
                }
                Ok(OrderedFields(fields))
            }
        }
        deserializer.deserialize_map(Fields)
    }
}

fn progress_bar(options: &GenerateOptions) -> indicatif::ProgressBar {
    if !options.progress {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {human_pos} records ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_hold_every_event_once_whatever_their_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = GenerateOptions {
            events: 500,
            seed: 3,
            rate: 1000,
            base_time: 0,
            kinds: NexmarkKind::all(),
            files: 1,
            progress: false,
            format: FileFormat::JsonLines,
        };
        let one = dir.path().join("one");
        let three = dir.path().join("three");
        assert_eq!(generate(&one, &options).expect("one file"), 500);
        let options = GenerateOptions {
            files: 3,
            ..options
        };
        assert_eq!(generate(&three, &options).expect("three files"), 500);
        let lines = |dir: &Path| {
            let mut all: Vec<String> = std::fs::read_dir(dir)
                .expect("dir")
                .flat_map(|e| {
                    let text = std::fs::read_to_string(e.expect("entry").path()).expect("read");
                    text.lines().map(str::to_string).collect::<Vec<_>>()
                })
                .collect();
            all.sort();
            all
        };
        assert_eq!(lines(&one), lines(&three));
        assert_eq!(std::fs::read_dir(&three).expect("dir").count(), 3);
    }

    #[test]
    fn csv_files_hold_the_same_bids_as_json_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = GenerateOptions {
            events: 2000,
            seed: 5,
            rate: 1000,
            base_time: 0,
            kinds: vec![NexmarkKind::Bid],
            files: 2,
            progress: false,
            format: FileFormat::JsonLines,
        };
        let json = dir.path().join("json");
        let csv = dir.path().join("csv");
        let n = generate(&json, &options).expect("json");
        let csv_options = GenerateOptions {
            format: FileFormat::Csv,
            ..options
        };
        assert_eq!(generate(&csv, &csv_options).expect("csv"), n);
        for part in 0..2 {
            let json =
                std::fs::read_to_string(json.join(format!("part-{part}.jsonl"))).expect("json");
            let csv = std::fs::read_to_string(csv.join(format!("part-{part}.csv"))).expect("csv");
            let mut rows = csv.lines();
            assert_eq!(rows.next(), Some("auction,bidder,price,dateTime,extra"));
            let mut count = 0;
            for (object, row) in json.lines().zip(rows) {
                let v: serde_json::Value = serde_json::from_str(object).expect("object");
                let expected = format!(
                    "{},{},{},{},{}",
                    v["auction"],
                    v["bidder"],
                    v["price"],
                    v["dateTime"],
                    v["extra"].as_str().expect("extra")
                );
                assert_eq!(row, expected);
                count += 1;
            }
            assert_eq!(count, json.lines().count());
            assert_eq!(csv.lines().count(), count + 1);
        }
    }

    #[test]
    fn csv_needs_exactly_one_kind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = GenerateOptions {
            events: 10,
            seed: 1,
            rate: 1000,
            base_time: 0,
            kinds: NexmarkKind::all(),
            files: 1,
            progress: false,
            format: FileFormat::Csv,
        };
        let err = generate(dir.path(), &options).expect_err("two kinds in one CSV");
        assert!(err.to_string().contains("one kind"), "{err}");
    }

    #[test]
    fn csv_fields_are_quoted_when_they_must_be() {
        let mut line = Vec::new();
        csv_field("plain", &mut line);
        line.push(b',');
        csv_field("a,b", &mut line);
        line.push(b',');
        csv_field("say \"hi\"", &mut line);
        assert_eq!(
            String::from_utf8(line).expect("utf8"),
            "plain,\"a,b\",\"say \"\"hi\"\"\""
        );
    }
}
