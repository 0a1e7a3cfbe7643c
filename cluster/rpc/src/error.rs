//! Errors of the cluster transport.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a cluster connection could not be set up or went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// A certificate file is missing or unusable.
    #[error("certificates: {}: {message}", .path.display())]
    Certificates {
        /// The file (or directory).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The UDP socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A connection could not be started.
    #[error("cannot connect to {addr}: {message}")]
    Connect {
        /// The peer.
        addr: SocketAddr,
        /// quinn's reason.
        message: String,
    },
    /// The connection failed or was closed (a TLS handshake refused by
    /// either side included).
    #[error("connection: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// Reading a stream failed.
    #[error("reading from the peer: {0}")]
    Read(quinn::ReadError),
    /// Writing a stream failed.
    #[error("writing to the peer: {0}")]
    Write(quinn::WriteError),
    /// The peer sent bytes that are not a control stream of this version.
    #[error("the peer broke the control protocol: {0}")]
    Protocol(#[from] weir_protocol::ControlError),
    /// The peer sent bytes that are not a data stream of this version.
    #[error("the peer sent a malformed data stream: {0}")]
    Data(#[from] weir_protocol::DecodeError),
    /// The peer sent a well-formed message that does not fit where it came.
    #[error("the peer sent an unexpected message: {0}")]
    Unexpected(String),
    /// The peer did not answer in time.
    #[error("the peer did not answer within {0} ms")]
    Timeout(u64),
}

impl RpcError {
    /// Whether the TLS handshake failed: a certificate refused by either
    /// side (another CA, none presented, expired). Retrying cannot help.
    #[must_use]
    pub fn is_authentication_failure(&self) -> bool {
        // QUIC carries TLS alerts as the "crypto error" codes
        // 0x0100-0x01ff (RFC 9001, section 4.8).
        let crypto = |code: u64| (0x100..0x200).contains(&code);
        match self {
            Self::Connection(quinn::ConnectionError::TransportError(e)) => crypto(e.code.into()),
            Self::Connection(quinn::ConnectionError::ConnectionClosed(c)) => {
                crypto(c.error_code.into())
            }
            Self::Certificates { .. } | Self::Tls(_) => true,
            _ => false,
        }
    }
}

impl From<quinn::ReadError> for RpcError {
    /// A lost connection reports the connection's own error (a refused
    /// certificate, a timeout), not just "connection lost".
    fn from(e: quinn::ReadError) -> Self {
        match e {
            quinn::ReadError::ConnectionLost(e) => Self::Connection(e),
            other => Self::Read(other),
        }
    }
}

impl From<quinn::WriteError> for RpcError {
    /// As for reads.
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::ConnectionLost(e) => Self::Connection(e),
            other => Self::Write(other),
        }
    }
}
