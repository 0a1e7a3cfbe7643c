//! Planning a source's splits: one per file (or file part) or generator
//! range, each read by exactly one subtask.

use super::*;

/// One unit of a source's input, read by exactly one subtask.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Split {
    /// Index in the job's split table (what [`Origin::split`] refers to).
    pub index: u32,
    /// Display name (the file path, or `datagen[start..end]`).
    pub name: String,
    /// What to read.
    pub kind: SplitKind,
}

/// What a split reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SplitKind {
    /// One file; `key` is set when the key comes from the path.
    File {
        /// The file.
        path: PathBuf,
        /// The key of every record, for `key: { from: path }`.
        key: Option<Vec<u8>>,
    },
    /// Generated records `start..end`.
    Generated {
        /// First sequence number.
        start: u64,
        /// One past the last.
        end: u64,
    },
    /// Nexmark events `start, start + stride, …` below `end`: strided, so
    /// that every split's event time advances at the same pace.
    Nexmark {
        /// First event number.
        start: u64,
        /// Distance between consecutive event numbers (the split count).
        stride: u64,
        /// One past the last event number of the stream.
        end: u64,
    },
}

/// Lists the splits of a source: its files in path order (one split each),
/// or for a generator one range per subtask. Split indices start at `first_index`.
///
/// # Errors
/// Unreadable directory, bad glob, or no matching file.
pub fn plan_splits(
    source_id: &str,
    kind: &SourceKind,
    parallelism: u32,
    first_index: u32,
) -> Result<Vec<Split>, ConnectorError> {
    match kind {
        SourceKind::File {
            path,
            glob,
            key,
            timestamp,
            ..
        } => {
            if let Some(spec) = timestamp {
                TimeFormat::from_spec(spec).map_err(|message| ConnectorError::BadConfig {
                    source_id: source_id.into(),
                    message,
                })?;
            }
            let files = list_files(source_id, path, glob.as_deref())?;
            let from_path = matches!(key, Some(KeySpec::FromPath { .. }));
            Ok(files
                .into_iter()
                .enumerate()
                .map(|(i, file)| {
                    let key = from_path.then(|| path_key(path, &file));
                    Split {
                        index: first_index + i as u32,
                        name: file.display().to_string(),
                        kind: SplitKind::File { path: file, key },
                    }
                })
                .collect())
        }
        SourceKind::Nexmark {
            replay: Some(path), ..
        } => {
            let files = list_files(source_id, path, Some("**/*.jsonl"))?;
            Ok(files
                .into_iter()
                .enumerate()
                .map(|(i, file)| Split {
                    index: first_index + i as u32,
                    name: file.display().to_string(),
                    kind: SplitKind::File {
                        path: file,
                        key: None,
                    },
                })
                .collect())
        }
        SourceKind::Nexmark { events, .. } => {
            let end = events.unwrap_or(0);
            let stride = u64::from(parallelism.max(1));
            Ok((0..stride)
                .map(|i| Split {
                    index: first_index + i as u32,
                    name: format!("{source_id}[{i}/{stride}]"),
                    kind: SplitKind::Nexmark {
                        start: i,
                        stride,
                        end,
                    },
                })
                .collect())
        }
        SourceKind::Datagen { count, .. } => Ok((0..u64::from(parallelism))
            .map(|i| {
                let start = count * i / u64::from(parallelism);
                let end = count * (i + 1) / u64::from(parallelism);
                Split {
                    index: first_index + i as u32,
                    name: format!("{source_id}[{start}..{end}]"),
                    kind: SplitKind::Generated { start, end },
                }
            })
            .collect()),
    }
}

pub(super) fn list_files(
    source_id: &str,
    path: &Path,
    glob: Option<&str>,
) -> Result<Vec<PathBuf>, ConnectorError> {
    let meta = std::fs::metadata(path).map_err(|source| ConnectorError::Read {
        path: path.into(),
        source,
    })?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let pattern = glob.unwrap_or("**/*");
    let full = path.join(pattern);
    let full_text = full.to_string_lossy().to_string();
    let entries = glob::glob(&full_text).map_err(|e| ConnectorError::BadGlob {
        pattern: full_text.clone(),
        message: e.to_string(),
    })?;
    let mut files = Vec::new();
    for entry in entries {
        let file = entry.map_err(|e| ConnectorError::Read {
            path: e.path().into(),
            source: e.into(),
        })?;
        if file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(ConnectorError::NoFiles {
            source_id: source_id.into(),
            pattern: full_text,
        });
    }
    Ok(files)
}

/// `base/realKnownCause/nyc_taxi.csv` → `realKnownCause/nyc_taxi`.
pub(super) fn path_key(base: &Path, file: &Path) -> Vec<u8> {
    let relative = file.strip_prefix(base).unwrap_or(file);
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.last_mut()
        && let Some(dot) = last.rfind('.').filter(|d| *d > 0)
    {
        last.truncate(dot);
    }
    parts.join("/").into_bytes()
}
