//! The source files of a UDF project and the content hash that keys its
//! cached component.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::BuildError;

/// The files under `dir` whose names `wanted` accepts, outside hidden
/// directories, `__pycache__` and `node_modules`, as (path relative to
/// `root`, path).
pub(super) fn matching(
    root: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<(), BuildError> {
    let entries = std::fs::read_dir(dir).map_err(|source| BuildError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| BuildError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "__pycache__" || name == "node_modules" {
            continue;
        }
        let kind = entry.file_type().map_err(|source| BuildError::Io {
            path: path.clone(),
            source,
        })?;
        if kind.is_dir() {
            matching(root, &path, out, wanted)?;
        } else if wanted(&name) {
            let relative = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            out.push((relative, path));
        }
    }
    Ok(())
}

/// SHA-256 (16 hex digits) of `parts` (the SDK's hash, the world, the
/// tool's version ...) and of `files` (relative path and contents, sorted
/// by path): the key of a cached component.
///
/// # Errors
/// [`BuildError::Io`] when a file cannot be read.
pub(super) fn content_key(
    parts: &[&str],
    mut files: Vec<(String, PathBuf)>,
) -> Result<String, BuildError> {
    files.sort();
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    for (relative, path) in files {
        let bytes = std::fs::read(&path).map_err(|source| BuildError::Io { path, source })?;
        hasher.update(relative.as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(&bytes);
    }
    Ok(short_hex(&hasher.finalize()))
}

/// The first 8 bytes of `digest` as 16 hex digits: how build caches name
/// what they key on.
pub(super) fn short_hex(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
