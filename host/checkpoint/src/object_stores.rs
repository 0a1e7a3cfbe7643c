//! The object store a checkpoint directory names, and the configuration
//! keys that reach it.
//!
//! `state.checkpoints.dir` (and `state.savepoints.dir`) is a local
//! directory, `file:///...`, or a URL of a cloud object store:
//! - `s3://bucket/prefix` (also `s3a://`): Amazon S3 or an S3-compatible
//!   service;
//! - `az://container/prefix` (also `azure://`, `abfs[s]://...`): Azure Blob
//!   Storage;
//! - `gs://bucket/prefix`: Google Cloud Storage.
//!
//! Each store reads its usual environment variables first (`AWS_*`,
//! `AZURE_*`, `GOOGLE_*`; see `object_store`'s `AmazonS3Builder::from_env`
//! and its siblings). Configuration keys `s3.<option>`, `azure.<option>`
//! and `gs.<option>` then override them; `<option>` is one of
//! `object_store`'s option names for that store, with `-` or `.` allowed
//! for `_` (`s3.endpoint`, `s3.region`, `s3.allow-http`,
//! `azure.account-name`, `gs.service-account-key`). Flink's own S3 keys
//! `s3.access-key`, `s3.secret-key` and `s3.path.style.access` are accepted
//! too. Secrets given as `-D` options show in the process list; prefer the
//! environment.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::path::Path as StorePath;

use crate::ConfigError;

/// The prefixes of the object-store configuration keys.
const PREFIXES: [&str; 3] = ["s3.", "azure.", "gs."];

/// Is `key` an object-store option (`s3.*`, `azure.*`, `gs.*`)?
pub(crate) fn is_store_key(key: &str) -> bool {
    PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Validates the object-store option `key` = `value` and returns it in
/// canonical form: `(prefix.option, value)` with `option` as
/// `object_store` spells it (`s3.access-key` → `s3.access_key_id`).
///
/// # Errors
/// [`ConfigError::UnknownKey`] when `object_store` has no such option,
/// [`ConfigError::BadValue`] for a bad `s3.path.style.access`.
pub(crate) fn store_option(key: &str, value: &str) -> Result<(String, String), ConfigError> {
    let (prefix, option) = key.split_once('.').unwrap_or((key, ""));
    let (option, value) = match (prefix, option) {
        ("s3", "access-key") => ("access_key_id".to_string(), value.to_string()),
        ("s3", "secret-key") => ("secret_access_key".to_string(), value.to_string()),
        ("s3", "path.style.access") => {
            // Flink's switch is the opposite of object_store's.
            let path_style = match value.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ConfigError::BadValue {
                        key: key.into(),
                        value: value.into(),
                        reason: "expected true or false".into(),
                    });
                }
            };
            let virtual_hosted = (!path_style).to_string();
            ("virtual_hosted_style_request".to_string(), virtual_hosted)
        }
        _ => (option.replace(['-', '.'], "_"), value.trim().to_string()),
    };
    let known = match prefix {
        "s3" => AmazonS3ConfigKey::from_str(&option).is_ok(),
        "azure" => AzureConfigKey::from_str(&option).is_ok(),
        "gs" => GoogleConfigKey::from_str(&option).is_ok(),
        _ => false,
    };
    if !known {
        return Err(ConfigError::UnknownKey {
            key: key.into(),
            known: format!(
                "`{prefix}.` followed by an option of object_store's {} builder \
                 (for example s3.endpoint, s3.region, s3.access-key, s3.secret-key, \
                 s3.allow-http, azure.account-name, azure.access-key, gs.service-account-key)",
                match prefix {
                    "s3" => "AmazonS3",
                    "azure" => "MicrosoftAzure",
                    _ => "GoogleCloudStorage",
                }
            ),
        });
    }
    Ok((format!("{prefix}.{option}"), value))
}

/// The options of one store kind (`prefix` without the dot), with the
/// prefix removed.
fn options_for<'a>(
    options: &'a BTreeMap<String, String>,
    prefix: &'a str,
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    options.iter().filter_map(move |(key, value)| {
        let option = key.strip_prefix(prefix)?.strip_prefix('.')?;
        Some((option, value.as_str()))
    })
}

/// Builds the cloud store `dir` names and returns it with the path of the
/// directory inside it.
///
/// # Errors
/// A message when the URL is not one of a supported store, or the store's
/// builder rejects its settings (no bucket, a bad endpoint, ...).
pub(crate) fn cloud_store(
    dir: &str,
    options: &BTreeMap<String, String>,
) -> Result<(Arc<dyn ObjectStore>, StorePath), String> {
    let url = url::Url::parse(dir).map_err(|e| format!("not a directory or URL: {e}"))?;
    // The path is the URL's whole path for every scheme here. (object_store
    // 0.12's `ObjectStoreScheme::parse` drops the first segment of an
    // `az://` path, while its Azure builder takes the host as the
    // container, so `az://container/a/b` would lose `a`.)
    let path = StorePath::from_url_path(url.path()).map_err(|e| e.to_string())?;
    // Builds a store: environment first, then the `prefix.*` options.
    macro_rules! build {
        ($builder:ty, $key:ty, $prefix:literal) => {{
            let mut builder = <$builder>::from_env().with_url(url.as_str());
            for (option, value) in options_for(options, $prefix) {
                let key = <$key>::from_str(option).map_err(|e| e.to_string())?;
                builder = builder.with_config(key, value);
            }
            Arc::new(builder.build().map_err(|e| e.to_string())?)
        }};
    }
    let store: Arc<dyn ObjectStore> = match url.scheme() {
        "s3" | "s3a" => build!(AmazonS3Builder, AmazonS3ConfigKey, "s3"),
        "az" | "azure" | "abfs" | "abfss" | "adl" => {
            build!(MicrosoftAzureBuilder, AzureConfigKey, "azure")
        }
        "gs" => build!(GoogleCloudStorageBuilder, GoogleConfigKey, "gs"),
        other => {
            return Err(format!(
                "`{other}://` URLs cannot hold checkpoints; use a local directory, \
                 file://, s3://, az:// or gs://"
            ));
        }
    };
    Ok((store, path))
}

/// The tokio runtime the cloud stores' HTTP clients run on, made on first
/// use and shared by every [`crate::CheckpointStorage`] of the process
/// (task threads block on it; they are not tokio threads themselves).
///
/// # Errors
/// When the runtime's threads cannot be started.
pub(crate) fn io_runtime() -> std::io::Result<&'static tokio::runtime::Runtime> {
    static IO: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(runtime) = IO.get() {
        return Ok(runtime);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("weir-checkpoint-io")
        .enable_all()
        .build()?;
    // Two threads may race here; the loser's runtime is dropped unused.
    Ok(IO.get_or_init(|| runtime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flink_and_object_store_option_names_are_accepted() {
        for (key, value, canonical_key, canonical_value) in [
            ("s3.access-key", "AK", "s3.access_key_id", "AK"),
            ("s3.secret-key", "SK", "s3.secret_access_key", "SK"),
            (
                "s3.path.style.access",
                "true",
                "s3.virtual_hosted_style_request",
                "false",
            ),
            ("s3.allow-http", "true", "s3.allow_http", "true"),
            ("azure.account-name", "acct", "azure.account_name", "acct"),
            (
                "gs.service-account-key",
                "{}",
                "gs.service_account_key",
                "{}",
            ),
        ] {
            assert_eq!(
                store_option(key, value).unwrap(),
                (canonical_key.to_string(), canonical_value.to_string())
            );
        }
    }

    #[test]
    fn unknown_store_options_are_refused_by_name() {
        let e = store_option("s3.acess-key", "AK").unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown configuration key `s3.acess-key`"),
            "{e}"
        );
        assert!(e.to_string().contains("AmazonS3"), "{e}");
        let e = store_option("s3.path.style.access", "maybe").unwrap_err();
        assert!(e.to_string().contains("expected true or false"), "{e}");
    }

    #[test]
    fn each_url_scheme_builds_its_store_and_az_urls_keep_their_whole_prefix() {
        let mut options = BTreeMap::new();
        for (key, value) in [
            ("s3.region", "eu-west-1"),
            ("s3.access-key", "AK"),
            ("s3.secret-key", "SK"),
            ("azure.account-name", "acct"),
            ("azure.access-key", "a2V5"),
            (
                "gs.service-account-key",
                r#"{"private_key":"","private_key_id":"","client_email":"x","disable_oauth":true}"#,
            ),
        ] {
            let (k, v) = store_option(key, value).unwrap();
            options.insert(k, v);
        }
        let (s3, path) = cloud_store("s3://bucket/checkpoints", &options).unwrap();
        assert!(s3.to_string().contains("bucket"), "{s3}");
        assert_eq!(path.as_ref(), "checkpoints");
        let (az, path) = cloud_store("az://container/a/b", &options).unwrap();
        assert!(az.to_string().contains("container"), "{az}");
        assert_eq!(path.as_ref(), "a/b");
        let (gs, _) = cloud_store("gs://bucket/ck", &options).unwrap();
        assert!(gs.to_string().contains("bucket"), "{gs}");
        let e = cloud_store("ftp://host/ck", &options).unwrap_err();
        assert!(e.contains("`ftp://` URLs cannot hold checkpoints"), "{e}");
        let e = cloud_store("az://container/x", &BTreeMap::new()).unwrap_err();
        assert!(e.to_lowercase().contains("account"), "{e}");
    }
}
