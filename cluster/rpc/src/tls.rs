//! Certificates and the mutual-TLS configurations built from them.
//!
//! A cluster trusts one certificate authority (CA). Every process (the
//! JobManager and each TaskManager) presents a node certificate signed by
//! it and accepts only peers whose certificate chains to it: both ends of a
//! QUIC connection authenticate. As in Flink's internal SSL, peers are
//! identified by their CA, not by host name: every node certificate names
//! [`CLUSTER_SERVER_NAME`], and that is the name a client verifies, so a
//! TaskManager reaches the JobManager by any address.
//!
//! A certificate directory (`--certs DIR`, key `security.ssl.internal.dir`)
//! holds PEM files: [`CA_CERT`] (the CA's certificate), [`NODE_CERT`] (this
//! node's certificate, optionally followed by intermediates) and
//! [`NODE_KEY`] (its PKCS#8 private key). [`init_dev_certs`] writes such a
//! directory for development, with the CA's key beside it ([`CA_KEY`]);
//! production certificates come from the organisation's CA in the same
//! three files.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::RpcError;

/// The CA certificate's file name in a certificate directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA private key's file name (written by [`init_dev_certs`]; not read
/// by the processes).
pub const CA_KEY: &str = "ca-key.pem";
/// The node certificate's file name.
pub const NODE_CERT: &str = "node.pem";
/// The node private key's file name.
pub const NODE_KEY: &str = "node-key.pem";
/// The name every node certificate carries and every client verifies.
pub const CLUSTER_SERVER_NAME: &str = "weir-cluster";
/// The ALPN protocol of Weir's cluster connections.
pub const ALPN: &[u8] = b"weir/1";

/// What [`init_dev_certs`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCerts {
    /// The directory.
    pub dir: PathBuf,
    /// The files written, in order: CA certificate and key, node
    /// certificate and key.
    pub files: Vec<PathBuf>,
}

/// Writes a new development CA and one node certificate signed by it into
/// `dir` (created if missing). The node certificate names
/// [`CLUSTER_SERVER_NAME`], `localhost` and each of `hosts` (DNS names or
/// IP addresses); it is valid for both server and client authentication,
/// so every process of a cluster can use the same directory.
///
/// # Errors
/// [`RpcError::Certificates`] when `dir` already holds any of the files
/// (nothing is overwritten), a host is not a valid name, or a file cannot
/// be written.
pub fn init_dev_certs(dir: &Path, hosts: &[String]) -> Result<DevCerts, RpcError> {
    let cert_error = |path: &Path, message: String| RpcError::Certificates {
        path: path.to_path_buf(),
        message,
    };
    let files: Vec<PathBuf> = [CA_CERT, CA_KEY, NODE_CERT, NODE_KEY]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    if let Some(existing) = files.iter().find(|f| f.exists()) {
        return Err(cert_error(
            existing,
            "already exists; refusing to overwrite a cluster's certificates (choose another directory)"
                .into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| cert_error(dir, e.to_string()))?;
    let rc = |e: rcgen::Error| cert_error(dir, e.to_string());

    let ca_key = KeyPair::generate().map_err(rc)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(rc)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Weir development cluster CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(rc)?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let mut names = vec![CLUSTER_SERVER_NAME.to_string(), "localhost".to_string()];
    names.extend(hosts.iter().cloned());
    let node_key = KeyPair::generate().map_err(rc)?;
    let mut node_params = CertificateParams::new(names).map_err(rc)?;
    node_params
        .distinguished_name
        .push(DnType::CommonName, "Weir node");
    node_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    node_params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let node_cert = node_params.signed_by(&node_key, &issuer).map_err(rc)?;

    let contents = [
        ca_cert.pem(),
        ca_key.serialize_pem(),
        node_cert.pem(),
        node_key.serialize_pem(),
    ];
    for (path, text) in files.iter().zip(contents) {
        write_private(path, &text).map_err(|e| cert_error(path, e.to_string()))?;
    }
    Ok(DevCerts {
        dir: dir.to_path_buf(),
        files,
    })
}

/// Writes `text` to a new file readable by its owner only (on Unix).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?.write_all(text.as_bytes())
}

/// A node's credentials: the CA it trusts and the certificate chain and key
/// it presents.
#[derive(Debug)]
pub struct NodeIdentity {
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
}

impl Clone for NodeIdentity {
    fn clone(&self) -> Self {
        Self {
            roots: Arc::clone(&self.roots),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl NodeIdentity {
    /// Reads [`CA_CERT`], [`NODE_CERT`] and [`NODE_KEY`] from `dir`.
    ///
    /// # Errors
    /// [`RpcError::Certificates`] naming the file that is missing, not PEM,
    /// or holds no certificate or key.
    pub fn load(dir: &Path) -> Result<Self, RpcError> {
        let read_certs = |name: &str| -> Result<Vec<CertificateDer<'static>>, RpcError> {
            let path = dir.join(name);
            let bad = |message: String| RpcError::Certificates {
                path: path.clone(),
                message,
            };
            if !path.is_file() {
                return Err(bad(
                    "is missing (create a development set with `weir cert init DIR`)".into(),
                ));
            }
            let certs = CertificateDer::pem_file_iter(&path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("holds no PEM certificate".into()));
            }
            Ok(certs)
        };
        let ca = read_certs(CA_CERT)?;
        let chain = read_certs(NODE_CERT)?;
        let key_path = dir.join(NODE_KEY);
        let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| RpcError::Certificates {
            path: key_path.clone(),
            message: if key_path.is_file() {
                format!("holds no usable private key: {e}")
            } else {
                "is missing".into()
            },
        })?;
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots.add(cert).map_err(|e| RpcError::Certificates {
                path: dir.join(CA_CERT),
                message: e.to_string(),
            })?;
        }
        Ok(Self {
            roots: Arc::new(roots),
            chain,
            key,
        })
    }

    /// The TLS configuration of a server that requires a client certificate
    /// signed by the CA.
    ///
    /// # Errors
    /// [`RpcError::Tls`] when rustls refuses the certificate or key.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, RpcError> {
        let provider = provider();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::clone(&self.roots),
            Arc::clone(&provider),
        )
        .build()
        .map_err(|e| RpcError::Tls(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| RpcError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| RpcError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }

    /// The TLS configuration of a client that presents this node's
    /// certificate and accepts only servers signed by the CA.
    ///
    /// # Errors
    /// [`RpcError::Tls`] when rustls refuses the certificate or key.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, RpcError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| RpcError::Tls(e.to_string()))?
            .with_root_certificates(Arc::clone(&self.roots))
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())
            .map_err(|e| RpcError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![ALPN.to_vec()];
        Ok(config)
    }
}

/// rustls' ring provider (no C toolchain beyond what ring builds).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_certs_load_and_are_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let certs = init_dev_certs(dir.path(), &["127.0.0.2".into(), "tm-1".into()]).unwrap();
        assert_eq!(certs.files.len(), 4);
        let identity = NodeIdentity::load(dir.path()).unwrap();
        assert_eq!(identity.chain.len(), 1);
        identity.server_config().unwrap();
        identity.client_config().unwrap();
        let err = init_dev_certs(dir.path(), &[]).unwrap_err();
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    }

    #[test]
    fn missing_and_damaged_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = NodeIdentity::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
        assert!(err.to_string().contains("weir cert init"), "{err}");
        init_dev_certs(dir.path(), &[]).unwrap();
        std::fs::write(dir.path().join(NODE_KEY), "not a key").unwrap();
        let err = NodeIdentity::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("node-key.pem"), "{err}");
        assert!(err.to_string().contains("no usable private key"), "{err}");
    }
}
