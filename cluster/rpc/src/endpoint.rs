//! QUIC endpoints with mutual TLS, and the control stream over a
//! connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, RecvStream, SendStream};
use weir_protocol::{ControlDecoder, encode_control, encode_control_preamble};

use crate::error::RpcError;
use crate::messages::ControlMessage;
use crate::tls::{CLUSTER_SERVER_NAME, NodeIdentity};

/// The largest control message accepted, bytes: an artifact of up to
/// 128 MiB (`rest.upload.max-bytes`' default) with room to spare. Peers are
/// authenticated cluster members; the limit guards against bugs more than
/// against them.
pub const MAX_CONTROL_MESSAGE_BYTES: usize = 160 << 20;

/// QUIC liveness settings of a cluster connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    /// How often an idle connection sends a keep-alive packet.
    pub keep_alive: Duration,
    /// How long without any packet from the peer before the connection is
    /// considered dead and closed.
    pub idle_timeout: Duration,
}

/// Checks heartbeat settings (`heartbeat.interval`, `heartbeat.timeout`,
/// ms): the interval above 0 and the timeout longer than it.
///
/// # Errors
/// A message for the `heartbeat.timeout` key.
pub fn check_heartbeat(interval_ms: u64, timeout_ms: u64) -> Result<(), String> {
    if interval_ms == 0 || timeout_ms <= interval_ms {
        return Err(format!(
            "{timeout_ms} ms must be longer than heartbeat.interval ({interval_ms} ms), which must be above 0"
        ));
    }
    Ok(())
}

impl Liveness {
    fn transport(self) -> Result<Arc<quinn::TransportConfig>, RpcError> {
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(self.keep_alive));
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .map_err(|e| RpcError::Tls(format!("idle timeout {:?}: {e}", self.idle_timeout)))?;
        transport.max_idle_timeout(Some(idle));
        // Byte credits of the data plane (see `data`): per stream, and for
        // all streams of a connection together.
        transport.stream_receive_window(crate::data::STREAM_WINDOW_BYTES.into());
        transport.receive_window((crate::data::STREAM_WINDOW_BYTES * 64).into());
        transport.max_concurrent_uni_streams(4096u32.into());
        Ok(Arc::new(transport))
    }
}

/// A QUIC server endpoint on `addr` that accepts only clients whose
/// certificate is signed by `identity`'s CA.
///
/// Must be called within a Tokio runtime.
///
/// # Errors
/// [`RpcError::Tls`] for an unusable identity, [`RpcError::Bind`] when the
/// address cannot be bound.
pub fn server_endpoint(
    addr: SocketAddr,
    identity: &NodeIdentity,
    liveness: Liveness,
) -> Result<Endpoint, RpcError> {
    let crypto = QuicServerConfig::try_from(identity.server_config()?)
        .map_err(|e| RpcError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(liveness.transport()?);
    Endpoint::server(config, addr).map_err(|source| RpcError::Bind { addr, source })
}

/// A QUIC client endpoint bound to `bind` (port 0 for any) that presents
/// `identity`'s certificate and accepts only servers signed by its CA.
///
/// Must be called within a Tokio runtime.
///
/// # Errors
/// As [`server_endpoint`].
pub fn client_endpoint(
    bind: SocketAddr,
    identity: &NodeIdentity,
    liveness: Liveness,
) -> Result<Endpoint, RpcError> {
    let crypto = QuicClientConfig::try_from(identity.client_config()?)
        .map_err(|e| RpcError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(liveness.transport()?);
    let mut endpoint =
        Endpoint::client(bind).map_err(|source| RpcError::Bind { addr: bind, source })?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// A TaskManager's endpoint on `bind`: it connects to the JobManager and
/// to other TaskManagers (presenting `identity`'s certificate) and accepts
/// their data streams (requiring theirs).
///
/// Must be called within a Tokio runtime.
///
/// # Errors
/// As [`server_endpoint`].
pub fn node_endpoint(
    bind: SocketAddr,
    identity: &NodeIdentity,
    liveness: Liveness,
) -> Result<Endpoint, RpcError> {
    let mut endpoint = server_endpoint(bind, identity, liveness)?;
    let crypto = QuicClientConfig::try_from(identity.client_config()?)
        .map_err(|e| RpcError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(liveness.transport()?);
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

/// Connects `endpoint` to the cluster process at `addr` (handshake and
/// certificate checks included).
///
/// # Errors
/// [`RpcError::Connect`] or [`RpcError::Connection`] (a refused
/// certificate shows as a TLS alert here).
pub async fn connect(endpoint: &Endpoint, addr: SocketAddr) -> Result<Connection, RpcError> {
    let connecting =
        endpoint
            .connect(addr, CLUSTER_SERVER_NAME)
            .map_err(|e| RpcError::Connect {
                addr,
                message: e.to_string(),
            })?;
    Ok(connecting.await?)
}

/// The control stream of a connection: [`ControlMessage`]s both ways.
///
/// [`recv`](Self::recv) is cancel-safe (a message is never half taken), so
/// it can sit in a `select!` beside timers.
#[derive(Debug)]
pub struct ControlChannel {
    /// `None` once [`ControlChannel::spawn_writer`] took it.
    send: Option<SendStream>,
    recv: RecvStream,
    decoder: ControlDecoder,
    out: Vec<u8>,
}

impl ControlChannel {
    /// Opens the control stream (the TaskManager's side).
    ///
    /// # Errors
    /// [`RpcError::Connection`] or [`RpcError::Write`].
    pub async fn open(connection: &Connection) -> Result<Self, RpcError> {
        let (send, recv) = connection.open_bi().await?;
        Self::start(send, recv).await
    }

    /// Accepts the control stream the peer opened (the JobManager's side).
    ///
    /// # Errors
    /// [`RpcError::Connection`] or [`RpcError::Write`].
    pub async fn accept(connection: &Connection) -> Result<Self, RpcError> {
        let (send, recv) = connection.accept_bi().await?;
        Self::start(send, recv).await
    }

    async fn start(mut send: SendStream, recv: RecvStream) -> Result<Self, RpcError> {
        let mut preamble = Vec::new();
        encode_control_preamble(&mut preamble);
        send.write_all(&preamble).await?;
        Ok(Self {
            send: Some(send),
            recv,
            decoder: ControlDecoder::new(MAX_CONTROL_MESSAGE_BYTES),
            out: Vec::new(),
        })
    }

    /// Sends one message.
    ///
    /// # Errors
    /// [`RpcError::Write`], or [`RpcError::Protocol`] when it cannot be
    /// encoded.
    pub async fn send(&mut self, message: &ControlMessage) -> Result<(), RpcError> {
        let Some(stream) = self.send.as_mut() else {
            return Err(RpcError::Unexpected(
                "the channel's sending side belongs to its writer task".into(),
            ));
        };
        self.out.clear();
        encode_control(message, &mut self.out)?;
        stream.write_all(&self.out).await?;
        Ok(())
    }

    /// Hands the sending side to a task of its own that writes whatever
    /// arrives on the returned outbox, in order, so the reader of this
    /// channel never waits on its own writes (a large message going out
    /// while the peer's messages fill the window would otherwise stall
    /// both sides). The task ends the stream when every sender of the
    /// outbox is dropped, and stops at the first failed write (the
    /// connection is failing; the reader sees why). [`send`](Self::send)
    /// fails afterwards. Must be called within a Tokio runtime.
    pub fn spawn_writer(&mut self) -> tokio::sync::mpsc::UnboundedSender<ControlMessage> {
        let (outbox, mut queue) = tokio::sync::mpsc::unbounded_channel::<ControlMessage>();
        if let Some(mut stream) = self.send.take() {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(message) = queue.recv().await {
                    buf.clear();
                    if let Err(e) = encode_control(&message, &mut buf) {
                        tracing::warn!("dropping a {} message: {e}", message.name());
                        continue;
                    }
                    if stream.write_all(&buf).await.is_err() {
                        return;
                    }
                }
                let _ = stream.finish();
            });
        }
        outbox
    }

    /// The next message, or `None` when the peer ended the stream cleanly.
    ///
    /// # Errors
    /// [`RpcError::Read`] when the connection fails, [`RpcError::Protocol`]
    /// for malformed bytes or a stream that ends inside a message.
    pub async fn recv(&mut self) -> Result<Option<ControlMessage>, RpcError> {
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(message) = self.decoder.next()? {
                return Ok(Some(message));
            }
            match self.recv.read(&mut chunk).await? {
                Some(n) => self.decoder.push(&chunk[..n]),
                None => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
            }
        }
    }

    /// Ends the sending side (the peer's [`recv`](Self::recv) then
    /// returns `None`).
    pub fn finish(&mut self) {
        // Already finished or reset, or owned by the writer task.
        if let Some(stream) = self.send.as_mut() {
            let _ = stream.finish();
        }
    }
}
