//! Object-store emulators on loopback, for checkpoint storage tests:
//! moto's S3 server (PyPI `moto[server]`), Azurite's Blob service (npm
//! `azurite`) and, for Google Cloud Storage, a fake of its XML API
//! (`fake_gcs.py` beside this file, Python's standard library only). Each
//! runs as a child process on a free port of 127.0.0.1 and is killed when
//! dropped. `.ci/run` installs moto and Azurite; their bucket or container
//! is made with Python's `boto3` / `azure-storage-blob`.
//!
//! GCS has no emulator here: the ones in the registries this project
//! installs from (PyPI's `gcp-storage-emulator`) serve GCS's JSON API and
//! only single-object upload and download of its XML API, while
//! `object_store` speaks the XML API (listing with `list-type=2`,
//! multipart uploads); and moto, whose S3 API the XML API resembles, fails
//! (HTTP 500) on the `Authorization: Bearer ` header that the GCS client of
//! `object_store` 0.12.5 sends. So `fake_gcs.py` implements the operations
//! `object_store` uses, from Google's XML API reference, keeping objects in
//! memory. It proves Weir's `gs://` configuration and use of the store; it
//! cannot prove that GCS itself behaves like it.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Azurite's fixed development account and its published key.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A running emulator and the Weir settings that point checkpoint storage
/// at it.
#[derive(Debug)]
pub struct Emulator {
    child: Child,
    /// Keeps the emulator's data until it stops (the GCS fake keeps its
    /// objects in memory and has none).
    _data: Option<tempfile::TempDir>,
    /// `-D` settings: the store's options (endpoint, credentials).
    options: Vec<String>,
    /// The URL of the bucket or container, without a trailing `/`.
    base: String,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts connections on `port` (at most 30 s).
fn wait_for_port(port: u16, child: &mut Child, what: &str) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} did not listen on 127.0.0.1:{port} within 30 s")
}

/// Runs a Python snippet (bucket and container creation).
fn python(script: &str) -> Result<()> {
    let output = Command::new("python3")
        .args(["-c", script])
        .output()
        .context("cannot run python3")?;
    if !output.status.success() {
        bail!(
            "python3 failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// The `azurite-blob` executable: `$WEIR_AZURITE_BLOB`, else on `PATH`.
fn azurite_blob() -> PathBuf {
    std::env::var_os("WEIR_AZURITE_BLOB").map_or_else(|| "azurite-blob".into(), PathBuf::from)
}

impl Emulator {
    /// moto's S3 server with bucket `bucket`.
    ///
    /// # Errors
    /// When `moto_server` is missing (`pip install 'moto[server]'`) or
    /// does not start.
    pub fn s3(bucket: &str) -> Result<Self> {
        let (child, data, port) = Self::start_moto()?;
        let endpoint = format!("http://127.0.0.1:{port}");
        python(&format!(
            "import boto3\n\
             boto3.client('s3', endpoint_url='{endpoint}', region_name='us-east-1',\n\
                 aws_access_key_id='weir', aws_secret_access_key='weir')\
                 .create_bucket(Bucket='{bucket}')"
        ))?;
        Ok(Self {
            child,
            _data: Some(data),
            options: vec![
                format!("s3.endpoint={endpoint}"),
                "s3.allow-http=true".into(),
                "s3.region=us-east-1".into(),
                "s3.access-key=weir".into(),
                "s3.secret-key=weir".into(),
            ],
            base: format!("s3://{bucket}"),
        })
    }

    fn start_moto() -> Result<(Child, tempfile::TempDir, u16)> {
        let data = tempfile::tempdir()?;
        let port = free_port()?;
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start moto_server (pip install 'moto[server]')")?;
        wait_for_port(port, &mut child, "moto_server")?;
        Ok((child, data, port))
    }

    /// Azurite's Blob service with container `container`.
    ///
    /// # Errors
    /// When `azurite-blob` is missing (`npm install azurite`, then put
    /// `node_modules/.bin` on `PATH` or set `WEIR_AZURITE_BLOB`) or does
    /// not start.
    pub fn azure(container: &str) -> Result<Self> {
        let data = tempfile::tempdir()?;
        let port = free_port()?;
        let mut child = Command::new(azurite_blob())
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(data.path())
            .args([
                "--silent",
                "--skipApiVersionCheck",
                "--disableProductStyleUrl",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "cannot start {} (npm install azurite; see WEIR_AZURITE_BLOB)",
                    azurite_blob().display()
                )
            })?;
        wait_for_port(port, &mut child, "azurite-blob")?;
        let endpoint = format!("http://127.0.0.1:{port}/{AZURITE_ACCOUNT}");
        python(&format!(
            "from azure.storage.blob import BlobServiceClient\n\
             BlobServiceClient.from_connection_string(\n\
                 'DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};'\n\
                 'AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};')\
                 .create_container('{container}')"
        ))?;
        Ok(Self {
            child,
            _data: Some(data),
            options: vec![
                format!("azure.endpoint={endpoint}"),
                "azure.allow-http=true".into(),
                format!("azure.account-name={AZURITE_ACCOUNT}"),
                format!("azure.access-key={AZURITE_KEY}"),
            ],
            base: format!("az://{container}"),
        })
    }

    /// The fake GCS XML API (`fake_gcs.py`) with bucket `bucket`, listing
    /// at most `page_size` keys per page.
    ///
    /// Weir reaches it as a user reaches a GCS emulator: through a service
    /// account key (`gs.service-account-key`) whose `gcs_base_url` is the
    /// fake's address and whose `disable_oauth` is true.
    ///
    /// # Errors
    /// When `python3` is missing or the fake does not start.
    pub fn gcs(bucket: &str, page_size: usize) -> Result<Self> {
        let port = free_port()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fake_gcs.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--port", &port.to_string(), "--bucket", bucket])
            .args(["--page-size", &page_size.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start python3 {}", script.display()))?;
        wait_for_port(port, &mut child, "fake_gcs.py")?;
        let key = serde_json::json!({
            "gcs_base_url": format!("http://127.0.0.1:{port}"),
            "disable_oauth": true,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        });
        Ok(Self {
            child,
            _data: None,
            options: vec![format!("gs.service-account-key={key}")],
            base: format!("gs://{bucket}"),
        })
    }

    /// `-D` settings that put checkpoints under `<base>/checkpoints` and
    /// savepoints under `<base>/savepoints`, with the store's options.
    pub fn settings(&self) -> Vec<String> {
        let mut settings = vec![
            format!("state.checkpoints.dir={}", self.checkpoint_dir()),
            format!("state.savepoints.dir={}/savepoints", self.base),
        ];
        settings.extend(self.options.iter().cloned());
        settings
    }

    /// Where checkpoints go: `<bucket or container URL>/checkpoints`.
    pub fn checkpoint_dir(&self) -> String {
        format!("{}/checkpoints", self.base)
    }
}
