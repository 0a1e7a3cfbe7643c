//! The JobManager's cluster endpoint: TaskManagers connect over QUIC with
//! mutual TLS, register their slots and send heartbeats; the connection
//! tasks here carry those messages to the [`TaskManagerRegistry`] and
//! close the connections of TaskManagers it declares lost.
//!
//! [`TaskManagerRegistry`]: crate::taskmanagers::TaskManagerRegistry

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use quinn::{Connection, Endpoint, Incoming};
use weir_rpc::{ControlChannel, ControlMessage, NodeIdentity, RpcError, TaskManagerId};

use crate::manager::JobManager;

/// Where messages to one TaskManager go (its channel's writer task).
type Outbox = tokio::sync::mpsc::UnboundedSender<ControlMessage>;

/// QUIC application error code of a connection the JobManager closes
/// because the TaskManager is lost or refused.
pub const CLOSE_LOST: u32 = 1;
/// QUIC application error code when the JobManager shuts down.
pub const CLOSE_SHUTDOWN: u32 = 2;

/// Opens the cluster endpoint on `jobmanager.rpc.address` and `.port`
/// with the certificates of `security.ssl.internal.dir`.
///
/// Must be called within a Tokio runtime.
///
/// # Errors
/// [`RpcError`] when the certificates are unusable or the port is taken.
pub fn bind(jm: &JobManager) -> Result<Option<Endpoint>, RpcError> {
    let config = jm.config();
    let Some(dir) = &config.certs_dir else {
        return Ok(None);
    };
    let identity = NodeIdentity::load(dir)?;
    let addr = SocketAddr::new(config.rpc_address, config.rpc_port);
    weir_rpc::server_endpoint(addr, &identity, liveness(jm)).map(Some)
}

/// QUIC keep-alive at the heartbeat interval, idle timeout at the
/// heartbeat timeout: a TaskManager whose packets stop is lost at the
/// same time by either path.
fn liveness(jm: &JobManager) -> weir_rpc::Liveness {
    weir_rpc::Liveness {
        keep_alive: Duration::from_millis(jm.config().heartbeat_interval_ms),
        idle_timeout: Duration::from_millis(jm.config().heartbeat_timeout_ms),
    }
}

/// Serves `endpoint` until `shutdown` resolves: accepts TaskManagers and
/// expires silent ones.
pub async fn serve(jm: JobManager, endpoint: Endpoint, shutdown: impl Future<Output = ()>) {
    let expiry = tokio::spawn(expire_loop(jm.clone()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    tokio::spawn(serve_connection(jm.clone(), incoming));
                }
                None => break,
            },
        }
    }
    expiry.abort();
    endpoint.close(CLOSE_SHUTDOWN.into(), b"the JobManager is stopping");
}

/// Declares TaskManagers lost when their heartbeat timeout passes.
async fn expire_loop(jm: JobManager) {
    let period = Duration::from_millis((jm.config().heartbeat_interval_ms / 2).max(10));
    let mut ticker = tokio::time::interval(period);
    loop {
        ticker.tick().await;
        let now = jm.clock_ms();
        let lost = jm.taskmanager_registry().expire(now);
        for (id, cause) in &lost {
            tracing::warn!("TaskManager {id} lost: {cause}");
            jm.remote_attempts().lost(id, &cause.to_string());
        }
        if !lost.is_empty() {
            jm.taskmanagers_changed();
        }
    }
}

/// One TaskManager's connection, from the handshake to its loss.
async fn serve_connection(jm: JobManager, incoming: Incoming) {
    let from = incoming.remote_address();
    let connection = match incoming.await {
        Ok(connection) => connection,
        Err(e) => {
            // A refused certificate ends here, with the TLS alert's text.
            tracing::warn!("refused a cluster connection from {from}: {e}");
            return;
        }
    };
    let (id, mut channel, outbox) = match register(&jm, &connection).await {
        Ok(registered) => registered,
        Err(e) => {
            tracing::warn!("TaskManager at {from} not registered: {e}");
            connection.close(CLOSE_LOST.into(), b"not registered");
            return;
        }
    };
    jm.taskmanagers_changed();
    let reason = serve_taskmanager(&jm, &connection, &id, &mut channel, outbox).await;
    let cause = jm.taskmanager_registry().disconnected(&id, &reason);
    if let Some(cause) = cause {
        tracing::warn!("TaskManager {id} lost: {cause}");
        jm.remote_attempts().lost(&id, &cause.to_string());
        jm.taskmanagers_changed();
    }
    connection.close(CLOSE_LOST.into(), reason.as_bytes());
}

/// Reads the registration (within the heartbeat timeout) and answers it;
/// from then on the channel's writes go through the returned outbox, which
/// is known to the remote attempts before the TaskManager's slots can be
/// allocated.
async fn register(
    jm: &JobManager,
    connection: &Connection,
) -> Result<(TaskManagerId, ControlChannel, Outbox), RpcError> {
    let timeout_ms = jm.config().heartbeat_timeout_ms;
    let limit = Duration::from_millis(timeout_ms);
    let mut channel = tokio::time::timeout(limit, ControlChannel::accept(connection))
        .await
        .map_err(|_| RpcError::Timeout(timeout_ms))??;
    let first = tokio::time::timeout(limit, channel.recv())
        .await
        .map_err(|_| RpcError::Timeout(timeout_ms))??;
    let registration = match first {
        Some(ControlMessage::Register(registration)) => registration,
        other => {
            let what = other.map_or("the end of the stream", |m| m.name());
            let reason = format!("expected Register as the first message, got {what}");
            refuse(&mut channel, connection, &reason).await;
            return Err(RpcError::Unexpected(reason));
        }
    };
    let slots = registration.slots;
    let address = connection.remote_address().to_string();
    // The outbox is known before the registry lock is let go, so no
    // attempt can be given this TaskManager's slots without a way to it.
    let registered = {
        let mut registry = jm.taskmanager_registry();
        registry
            .register(registration, address.clone(), jm.clock_ms())
            .map(|id| {
                let outbox = channel.spawn_writer();
                jm.remote_attempts().connected(&id, outbox.clone());
                (id, outbox)
            })
    };
    match registered {
        Ok((id, outbox)) => {
            // A closed outbox means the writer failed: the reader sees why.
            let _ = outbox.send(ControlMessage::Registered {
                taskmanager: id.clone(),
                address: address.clone(),
                heartbeat_interval_ms: jm.config().heartbeat_interval_ms,
                heartbeat_timeout_ms: timeout_ms,
            });
            tracing::info!("TaskManager {id} registered from {address} with {slots} slots");
            Ok((id, channel, outbox))
        }
        Err(refused) => {
            let reason = refused.to_string();
            refuse(&mut channel, connection, &reason).await;
            Err(RpcError::Unexpected(reason))
        }
    }
}

/// Sends `Refused` and gives the peer a moment to read it before the
/// connection closes.
async fn refuse(channel: &mut ControlChannel, connection: &Connection, reason: &str) {
    let sent = channel
        .send(&ControlMessage::Refused {
            reason: reason.to_string(),
        })
        .await;
    if sent.is_ok() {
        channel.finish();
        let _ = tokio::time::timeout(Duration::from_secs(1), connection.closed()).await;
    }
}

/// Carries messages both ways (heartbeats and task events in, deployments,
/// task control and artifacts out) until the connection ends or the
/// registry lost the TaskManager; returns why it ended.
async fn serve_taskmanager(
    jm: &JobManager,
    connection: &Connection,
    id: &TaskManagerId,
    channel: &mut ControlChannel,
    outbox: Outbox,
) -> String {
    let mut check = tokio::time::interval(Duration::from_millis(
        (jm.config().heartbeat_interval_ms / 2).max(10),
    ));
    loop {
        tokio::select! {
            message = channel.recv() => match message {
                Ok(Some(ControlMessage::Heartbeat)) => {
                    if !jm.taskmanager_registry().heartbeat(id, jm.clock_ms()) {
                        return "it was declared lost before this heartbeat came".into();
                    }
                }
                Ok(Some(ControlMessage::Event { attempt, event })) => {
                    jm.remote_attempts().event(id, &attempt, event);
                }
                Ok(Some(ControlMessage::Metrics { attempt, snapshot })) => {
                    jm.remote_attempts().metrics(id, &attempt, snapshot);
                }
                Ok(Some(ControlMessage::FetchArtifact { id: artifact })) => {
                    let (jm, outbox) = (jm.clone(), outbox.clone());
                    tokio::task::spawn_blocking(move || {
                        let bytes = jm.artifact_bytes(&artifact).map_err(|e| e.to_string());
                        let _ = outbox.send(ControlMessage::Artifact { id: artifact, bytes });
                    });
                }
                Ok(Some(other)) => {
                    return format!("it sent an unexpected {} message", other.name());
                }
                Ok(None) => return "the TaskManager closed its control stream".into(),
                Err(e) => return e.to_string(),
            },
            _ = check.tick() => {
                if !jm.taskmanager_registry().contains(id) {
                    return "lost by heartbeat timeout".into();
                }
            }
            reason = connection.closed() => return reason.to_string(),
        }
    }
}
