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
                                address: "127.0.0.1:1".into(),
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

/// A connected pair of endpoints of one CA: (client-side, server-side).
async fn connected_pair() -> (
    quinn::Connection,
    quinn::Connection,
    (tempfile::TempDir, quinn::Endpoint, quinn::Endpoint),
) {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(&dir);
    let server = server_endpoint(any_port(), &id, LIVENESS).unwrap();
    let addr = server.local_addr().unwrap();
    let client = client_endpoint(any_port(), &id, LIVENESS).unwrap();
    let (client_side, server_side) = tokio::join!(connect(&client, addr), async {
        server.accept().await.unwrap().await.unwrap()
    });
    (client_side.unwrap(), server_side, (dir, client, server))
}

fn header(channel: u32) -> DataChannelHeader {
    DataChannelHeader {
        epoch: 5,
        job: "j".into(),
        attempt: 1,
        consumer: "window".into(),
        subtask: 2,
        channel,
    }
}

fn batch(n: usize, value_bytes: usize) -> weir_types::StreamElement {
    let mut batch = weir_types::Batch::with_capacity(n);
    for i in 0..n {
        batch.push(
            weir_types::Record {
                key: Some(vec![i as u8]),
                value: weir_types::Bytes::from(vec![b'x'; value_bytes]),
                timestamp: Some(i as i64),
            },
            weir_types::Origin {
                split: 0,
                position: i as u64,
            },
        );
    }
    weir_types::StreamElement::Batch(batch)
}

#[tokio::test]
async fn data_streams_carry_every_element_in_order() {
    use weir_types::{StreamElement, WatermarkStatus};
    let (client, server, _dir) = connected_pair().await;
    let elements = vec![
        batch(3, 10),
        StreamElement::Watermark(1_000),
        StreamElement::WatermarkStatus(WatermarkStatus::Idle),
        StreamElement::Barrier(7),
        batch(1, 0),
        StreamElement::EndOfInput,
    ];
    let mut sender = DataSender::open(&client, &header(4)).await.unwrap();
    for e in &elements {
        sender.send(e).await.unwrap();
    }
    sender.finish().unwrap();
    let (got_header, mut receiver) = DataReceiver::accept(&server).await.unwrap();
    assert_eq!(got_header, header(4));
    let mut got = Vec::new();
    while let Some(e) = receiver.recv().await.unwrap() {
        got.push(e);
    }
    assert_eq!(got, elements);
}

/// Regression: a producer cancelled right after opening its stream reset
/// it before the header arrived, the TaskManager's accept loop took that
/// stream's error for the connection's and stopped accepting, and the next
/// attempt's streams on the same (pooled) connection were never read.
#[tokio::test]
async fn a_stream_reset_before_its_header_does_not_end_the_connection() {
    let (client, server, _dir) = connected_pair().await;
    let mut cancelled = client.open_uni().await.unwrap();
    cancelled.write_all(&[0x57]).await.unwrap();
    cancelled.reset(quinn::VarInt::from_u32(0)).unwrap();
    let mut next = DataSender::open(&client, &header(3)).await.unwrap();
    next.send(&batch(1, 1)).await.unwrap();
    next.finish().unwrap();

    let first = DataReceiver::accept_pending(&server).await.unwrap();
    assert!(first.read_header().await.is_err());
    let (got, mut receiver) = DataReceiver::accept_pending(&server)
        .await
        .unwrap()
        .read_header()
        .await
        .unwrap();
    assert_eq!(got, header(3));
    assert_eq!(receiver.recv().await.unwrap(), Some(batch(1, 1)));
    assert_eq!(receiver.recv().await.unwrap(), None);
}

#[tokio::test]
async fn a_consumer_that_stops_reading_one_channel_stops_that_sender_only() {
    let (client, server, _dir) = connected_pair().await;
    let mut blocked = DataSender::open(&client, &header(0)).await.unwrap();
    let mut flowing = DataSender::open(&client, &header(1)).await.unwrap();
    // Announce both streams, so the server can accept them.
    blocked.send(&batch(1, 1)).await.unwrap();
    flowing.send(&batch(1, 1)).await.unwrap();
    let (h0, mut r0) = DataReceiver::accept(&server).await.unwrap();
    let (h1, mut r1) = DataReceiver::accept(&server).await.unwrap();
    let (mut r_blocked, mut r_flowing) = if h0.channel == 0 {
        (r0, r1)
    } else {
        std::mem::swap(&mut r0, &mut r1);
        (r0, r1)
    };
    assert_eq!(h0.channel + h1.channel, 1);

    // 4 MiB into a 1 MiB window that nobody reads: the sender waits.
    let big = batch(64, 1 << 10); // ~64 KiB per frame
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&sent);
    let send_all = tokio::spawn(async move {
        for _ in 0..64 {
            blocked.send(&big).await.unwrap();
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        blocked.finish().unwrap();
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ahead = sent.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=20).contains(&ahead),
        "the sender ran {ahead} frames (~64 KiB each) ahead of a 1 MiB window"
    );
    // The other channel still flows, both ways of being read.
    for i in 0..100 {
        flowing
            .send(&weir_types::StreamElement::Watermark(i))
            .await
            .unwrap();
    }
    flowing.finish().unwrap();
    let mut flowed = 0;
    while let Some(e) = r_flowing.recv().await.unwrap() {
        if matches!(e, weir_types::StreamElement::Watermark(_)) {
            flowed += 1;
        }
    }
    assert_eq!(flowed, 100);
    // Reading resumes the blocked one, and all of it arrives.
    let mut frames = 0;
    while let Some(_e) = r_blocked.recv().await.unwrap() {
        frames += 1;
    }
    assert_eq!(frames, 65);
    send_all.await.unwrap();
}

#[tokio::test]
async fn a_malformed_data_stream_is_a_decode_error() {
    let (client, server, _dir) = connected_pair().await;
    let mut stream = client.open_uni().await.unwrap();
    let mut bytes = Vec::new();
    weir_protocol::encode_control_preamble(&mut bytes);
    weir_protocol::encode_control(&header(0), &mut bytes).unwrap();
    weir_protocol::encode_preamble(&mut bytes);
    bytes.extend_from_slice(&[9, 0, 0, 0, 0]); // frame kind 9
    stream.write_all(&bytes).await.unwrap();
    stream.finish().unwrap();
    let (_, mut receiver) = DataReceiver::accept(&server).await.unwrap();
    let err = receiver.recv().await.unwrap_err();
    assert!(matches!(err, RpcError::Data(_)), "{err}");
    assert!(err.to_string().contains("unknown frame kind 9"), "{err}");
}
