//! The content-addressed store of uploaded UDF components.
//!
//! An artifact is a `.wasm` component stored as `<dir>/<sha256>.wasm` with
//! its description beside it (`<sha256>.json`: world, size, upload time).
//! Its id is the SHA-256 of its bytes (64 lowercase hex digits), so the
//! same upload twice is one artifact, and a job names it as
//! `udf: artifact:<id>`. Files are written to a temporary name and renamed,
//! so a crash never leaves a half-written artifact under its id.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use weir_wasm::{WasmError, WasmRuntime};

/// The prefix of a job's `udf:` that names an uploaded artifact.
pub const ARTIFACT_PREFIX: &str = "artifact:";

/// What the store knows of an artifact (`GET /v1/artifacts/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ArtifactInfo {
    /// SHA-256 of the component's bytes, hex.
    pub id: String,
    /// The world it implements: `operator` or `aggregate`.
    pub world: String,
    /// Size in bytes.
    pub size: u64,
    /// Upload time, ms since the epoch.
    pub uploaded_ms: i64,
}

/// Why an artifact was refused or not found.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The bytes are not a Weir component.
    #[error("{0}")]
    Invalid(String),
    /// No artifact has this id.
    #[error("no artifact {0} (upload it with `weir udf upload` or POST /v1/artifacts)")]
    NotFound(String),
    /// The id is not 64 hex digits.
    #[error("`{0}` is not an artifact id (64 lowercase hex digits, the SHA-256 of the component)")]
    BadId(String),
    /// Reading or writing the store failed.
    #[error("artifact store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The artifact store in a directory.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    dir: PathBuf,
}

/// Checks that `id` looks like an artifact id.
///
/// # Errors
/// [`ArtifactError::BadId`].
pub fn check_id(id: &str) -> Result<(), ArtifactError> {
    if id.len() == 64
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(ArtifactError::BadId(id.to_string()))
    }
}

impl ArtifactStore {
    /// The store in `dir` (created when missing).
    ///
    /// # Errors
    /// [`ArtifactError::Io`] when the directory cannot be created.
    pub fn open(dir: &Path) -> Result<Self, ArtifactError> {
        std::fs::create_dir_all(dir).map_err(|source| ArtifactError::Io {
            path: dir.into(),
            source,
        })?;
        Ok(Self { dir: dir.into() })
    }

    /// Where artifact `id`'s component lies (whether or not it exists).
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.wasm"))
    }

    fn info_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// Checks `bytes` against the Weir worlds (compiling them, which fills
    /// the runtime's compiled-code cache under the same hash) and stores
    /// them; uploading the same bytes again returns the same artifact.
    ///
    /// # Errors
    /// [`ArtifactError::Invalid`] with the reason (not a component, does not
    /// implement the `operator` or `aggregate` world), or
    /// [`ArtifactError::Io`].
    pub fn put(
        &self,
        runtime: &WasmRuntime,
        bytes: &[u8],
        now_ms: i64,
    ) -> Result<ArtifactInfo, ArtifactError> {
        let id = hex::encode(Sha256::digest(bytes));
        if let Ok(info) = self.get(&id) {
            return Ok(info);
        }
        let world = check_world(runtime, bytes)?;
        let info = ArtifactInfo {
            id: id.clone(),
            world: world.to_string(),
            size: bytes.len() as u64,
            uploaded_ms: now_ms,
        };
        let json = serde_json::to_vec_pretty(&info).map_err(|e| ArtifactError::Io {
            path: self.info_path(&id),
            source: std::io::Error::other(e),
        })?;
        // The component first: an id is listed once its description exists.
        self.write(&self.path(&id), bytes)?;
        self.write(&self.info_path(&id), &json)?;
        Ok(info)
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
        let io = |source| ArtifactError::Io {
            path: path.into(),
            source,
        };
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// The artifact `id`.
    ///
    /// # Errors
    /// [`ArtifactError::BadId`], [`ArtifactError::NotFound`].
    pub fn get(&self, id: &str) -> Result<ArtifactInfo, ArtifactError> {
        check_id(id)?;
        let text = std::fs::read(self.info_path(id))
            .map_err(|_| ArtifactError::NotFound(id.to_string()))?;
        serde_json::from_slice(&text).map_err(|e| ArtifactError::Io {
            path: self.info_path(id),
            source: std::io::Error::other(e),
        })
    }

    /// Every artifact, by id.
    ///
    /// # Errors
    /// [`ArtifactError::Io`] when the directory cannot be read.
    pub fn list(&self) -> Result<Vec<ArtifactInfo>, ArtifactError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|source| ArtifactError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let mut all: Vec<ArtifactInfo> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".json")?;
                self.get(id).ok()
            })
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    /// Deletes artifact `id`.
    ///
    /// # Errors
    /// [`ArtifactError::BadId`], [`ArtifactError::NotFound`] or
    /// [`ArtifactError::Io`].
    pub fn delete(&self, id: &str) -> Result<(), ArtifactError> {
        self.get(id)?;
        let info = self.info_path(id);
        std::fs::remove_file(&info).map_err(|source| ArtifactError::Io { path: info, source })?;
        let _ = std::fs::remove_file(self.path(id));
        Ok(())
    }
}

/// The world `bytes` implements: `operator`, else `aggregate`.
fn check_world(runtime: &WasmRuntime, bytes: &[u8]) -> Result<&'static str, ArtifactError> {
    match runtime.load_bytes("the upload", bytes) {
        Ok(_) => Ok("operator"),
        Err(operator @ WasmError::WorldMismatch { .. }) => {
            match runtime.load_aggregate_bytes("the upload", bytes) {
                Ok(_) => Ok("aggregate"),
                Err(_) => Err(ArtifactError::Invalid(format!(
                    "{operator}; nor is it a weir:operator/aggregate component"
                ))),
            }
        }
        Err(e) => Err(ArtifactError::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sha256_hex() {
        assert!(check_id(&"a".repeat(64)).is_ok());
        assert!(matches!(check_id("abc"), Err(ArtifactError::BadId(_))));
        assert!(matches!(
            check_id(&"A".repeat(64)),
            Err(ArtifactError::BadId(_))
        ));
        assert!(check_id(&"../".repeat(21)).is_err());
    }

    #[test]
    fn bytes_that_are_not_a_component_are_refused_and_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::open(dir.path()).unwrap();
        let runtime = WasmRuntime::new(weir_wasm::RuntimeConfig { cache_dir: None }).unwrap();
        let err = store.put(&runtime, b"not wasm at all", 0).unwrap_err();
        assert!(matches!(err, ArtifactError::Invalid(_)), "{err}");
        assert!(
            err.to_string().contains("not a WebAssembly component"),
            "{err}"
        );
        assert!(store.list().unwrap().is_empty());
        let missing = "0".repeat(64);
        assert!(matches!(
            store.get(&missing),
            Err(ArtifactError::NotFound(_))
        ));
        assert!(matches!(
            store.delete(&missing),
            Err(ArtifactError::NotFound(_))
        ));
    }
}
