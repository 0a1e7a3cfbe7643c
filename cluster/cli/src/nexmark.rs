//! `weir nexmark`: write a Nexmark event stream to JSON-lines files, for
//! replay by a `type: nexmark` source with `replay:` (or any JSON-lines
//! file source with `timestamp: {field: dateTime, format: millis}`).

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

/// Writes the stream under `dir` as `part-<i>.jsonl` files (the directory
/// is created; existing parts are replaced) and returns the number of
/// records written.
///
/// # Errors
/// `files` or `rate` of 0, no kinds, or an I/O error.
pub fn generate(dir: &Path, options: &GenerateOptions) -> Result<u64, GenerateError> {
    if options.files == 0 || options.rate == 0 || options.kinds.is_empty() {
        return Err(GenerateError::Invalid(
            "--files and --rate must be at least 1, and --kinds must name a kind".into(),
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
        let path = dir.join(format!("part-{}.jsonl", split.index));
        let file = File::create(&path).map_err(write_err(&path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let mut reader = SourceReader::new(&kind, vec![split]);
        let mut bad = Vec::new();
        while let Some(batch) = reader.next_batch(4096, &mut bad)? {
            for record in &batch.records {
                out.write_all(&record.value).map_err(write_err(&path))?;
                out.write_all(b"\n").map_err(write_err(&path))?;
            }
            written += batch.len() as u64;
            bar.inc(batch.len() as u64);
        }
        out.flush().map_err(write_err(&path))?;
    }
    bar.finish_and_clear();
    Ok(written)
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
}
