//! The transport end to end on loopback: mutual TLS both ways, control
//! messages, refused peers and malformed streams.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;

use crate::tls::CLUSTER_SERVER_NAME;
use crate::*;

const LIVENESS: Liveness = Liveness {
    keep_alive: Duration::from_millis(200),
    idle_timeout: Duration::from_secs(5),
};

fn identity(dir: &tempfile::TempDir) -> NodeIdentity {
    init_dev_certs(dir.path(), &[]).unwrap();
    NodeIdentity::load(dir.path()).unwrap()
}

fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A server that answers each connection's first message with `Registered`
/// and then echoes heartbeats back, reporting what each connection ended
/// with.
fn spawn_server(
    endpoint: quinn::Endpoint,
) -> tokio::sync::mpsc::UnboundedReceiver<Result<Vec<ControlMessage>, String>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let result = async {
                    let connection = incoming.await.map_err(|e| e.to_string())?;
                    let mut channel = ControlChannel::accept(&connection)
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut seen = Vec::new();
                    while let Some(message) = channel.recv().await.map_err(|e| e.to_string())? {
                        let reply = match &message {
                            ControlMessage::Register(_) => ControlMessage::Registered {
                                taskmanager: TaskManagerId("tm-1".into()),
                                heartbeat_interval_ms: 10,
                                heartbeat_timeout_ms: 50,
                            },
                            other => other.clone(),
                        };
                        seen.push(message);
                        channel.send(&reply).await.map_err(|e| e.to_string())?;
                    }
                    Ok(seen)
                }
                .await;
                let _ = tx.send(result);
            });
        }
    });
    rx
}

fn registration() -> ControlMessage {
    ControlMessage::Register(Registration {
        host: "127.0.0.2".into(),
        slots: 2,
        weir_version: "0.1.0".into(),
    })
}

#[tokio::test]
async fn nodes_of_one_ca_exchange_control_messages() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(&dir);
    let server = server_endpoint(any_port(), &id, LIVENESS).unwrap();
    let addr = server.local_addr().unwrap();
    let mut results = spawn_server(server);

    let client = client_endpoint(any_port(), &id, LIVENESS).unwrap();
    let connection = connect(&client, addr).await.unwrap();
    let mut channel = ControlChannel::open(&connection).await.unwrap();
    channel.send(&registration()).await.unwrap();
    assert!(matches!(
        channel.recv().await.unwrap(),
        Some(ControlMessage::Registered { taskmanager, .. }) if taskmanager.0 == "tm-1"
    ));
    channel.send(&ControlMessage::Heartbeat).await.unwrap();
    assert_eq!(
        channel.recv().await.unwrap(),
        Some(ControlMessage::Heartbeat)
    );
    channel.finish();
    assert_eq!(
        results.recv().await.unwrap().unwrap(),
        vec![registration(), ControlMessage::Heartbeat]
    );
}

/// Connects with `config` and tries one round trip; the error, if any.
async fn try_round_trip(config: rustls::ClientConfig, addr: SocketAddr) -> Result<(), RpcError> {
    let mut client = quinn::Endpoint::client(any_port()).unwrap();
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(
        QuicClientConfig::try_from(config).unwrap(),
    )));
    let connection = client.connect(addr, CLUSTER_SERVER_NAME).unwrap().await?;
    let mut channel = ControlChannel::open(&connection).await?;
    channel.send(&registration()).await?;
    match tokio::time::timeout(Duration::from_secs(5), channel.recv()).await {
        Ok(Ok(Some(_))) => Ok(()),
        Ok(Ok(None)) => Err(RpcError::Unexpected("stream ended".into())),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(RpcError::Timeout(5000)),
    }
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(&dir);
    let server = server_endpoint(any_port(), &id, LIVENESS).unwrap();
    let addr = server.local_addr().unwrap();
    let mut results = spawn_server(server);

    let mut anonymous = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_root_certificates(Arc::clone(&id.roots))
    .with_no_client_auth();
    anonymous.alpn_protocols = vec![tls::ALPN.to_vec()];
    let err = try_round_trip(anonymous, addr).await.unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(err.is_authentication_failure(), "{err:?}");
    let server_side = results.recv().await.unwrap().unwrap_err();
    assert!(server_side.contains("certificate"), "{server_side}");
}

#[tokio::test]
async fn a_node_of_another_ca_cannot_join() {
    let (ours, theirs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server_id = identity(&ours);
    let stranger = identity(&theirs);
    let server = server_endpoint(any_port(), &server_id, LIVENESS).unwrap();
    let addr = server.local_addr().unwrap();
    let _results = spawn_server(server);

    // The stranger does not trust our server...
    let err = try_round_trip(stranger.client_config().unwrap(), addr)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("UnknownIssuer") || err.to_string().contains("certificate"),
        "{err}"
    );
    assert!(err.is_authentication_failure(), "{err:?}");
    // ...and a client that trusts our CA but presents the stranger's
    // certificate is refused by the server.
    let mixed = NodeIdentity {
        roots: Arc::clone(&server_id.roots),
        ..stranger
    };
    let err = try_round_trip(mixed.client_config().unwrap(), addr)
        .await
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    assert!(err.is_authentication_failure(), "{err:?}");
}

#[tokio::test]
async fn garbage_on_the_control_stream_fails_that_connection_only() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(&dir);
    let server = server_endpoint(any_port(), &id, LIVENESS).unwrap();
    let addr = server.local_addr().unwrap();
    let mut results = spawn_server(server);
    let client = client_endpoint(any_port(), &id, LIVENESS).unwrap();

    // Raw bytes that are not a control stream.
    let connection = connect(&client, addr).await.unwrap();
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    send.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    send.finish().unwrap();
    let err = results.recv().await.unwrap().unwrap_err();
    assert!(err.contains("not a Weir control stream"), "{err}");

    // A well-formed preamble with a truncated message.
    let connection = connect(&client, addr).await.unwrap();
    let (mut send, _recv) = connection.open_bi().await.unwrap();
    let mut bytes = Vec::new();
    weir_protocol::encode_control_preamble(&mut bytes);
    bytes.extend_from_slice(&[9, 0, 0, 0, 0]);
    send.write_all(&bytes).await.unwrap();
    send.finish().unwrap();
    let err = results.recv().await.unwrap().unwrap_err();
    assert!(err.contains("ended inside the message"), "{err}");

    // The server still serves a good peer.
    let connection = connect(&client, addr).await.unwrap();
    let mut channel = ControlChannel::open(&connection).await.unwrap();
    channel.send(&registration()).await.unwrap();
    assert!(matches!(
        channel.recv().await.unwrap(),
        Some(ControlMessage::Registered { .. })
    ));
}
