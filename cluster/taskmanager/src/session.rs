//! A TaskManager's life: connect to the JobManager, register its slots,
//! send heartbeats, and reconnect by itself when the JobManager goes away
//! (a restarted JobManager gets its TaskManagers back without anyone
//! restarting them).

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use std::path::PathBuf;
use std::sync::Arc;

use quinn::Endpoint;
use weir_rpc::{
    ControlChannel, ControlMessage, Liveness, NodeIdentity, Registration, RpcError, TaskManagerId,
};

use crate::config::TaskManagerConfig;
use crate::executor::Executor;

/// Why a TaskManager stopped for good.
#[derive(Debug, thiserror::Error)]
pub enum TmError {
    /// The transport failed in a way retrying cannot mend: unusable
    /// certificates, a certificate the JobManager refuses (or a JobManager
    /// whose certificate this TaskManager refuses), a port it cannot bind.
    #[error("{0}")]
    Rpc(#[from] RpcError),
    /// The JobManager refused the registration.
    #[error("the JobManager refused this TaskManager: {0}")]
    Refused(String),
    /// The Wasm engine cannot be created.
    #[error("cannot start the Wasm engine: {0}")]
    Engine(String),
    /// The JobManager's address does not resolve.
    #[error("cannot resolve the JobManager's address {address}: {message}")]
    Resolve {
        /// `HOST:PORT`.
        address: String,
        /// The resolver's error.
        message: String,
    },
}

impl TmError {
    /// Whether trying again later may succeed (the JobManager is down or
    /// restarting, the network is away).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Rpc(e) => !e.is_authentication_failure() && !matches!(e, RpcError::Bind { .. }),
            Self::Refused(_) | Self::Engine(_) => false,
            Self::Resolve { .. } => true,
        }
    }
}

/// What a running TaskManager reports, for its log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Registered with the JobManager at `jobmanager` under `id`.
    Registered {
        /// The id the JobManager gave.
        id: TaskManagerId,
        /// The JobManager's address.
        jobmanager: SocketAddr,
    },
    /// The connection failed or ended; the next attempt follows after
    /// `retry_in`.
    Disconnected {
        /// Why.
        reason: String,
        /// The wait before reconnecting.
        retry_in: Duration,
    },
}

/// Reconnection delays: from 100 ms, doubling, at most 5 s; back to the
/// start after a successful registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    /// A backoff at its first delay.
    #[must_use]
    pub fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The delay before the next attempt (and doubles the one after).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    /// Back to the first delay.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs a TaskManager until `shutdown` resolves (then it closes its
/// connection, so the JobManager sees it leave at once). Components are
/// cached under `cache_dir`; tasks keep their working state (RocksDB)
/// under a directory of the system's temporary directory.
///
/// # Errors
/// [`TmError`] when the certificates are unusable, the TLS handshake is
/// refused either way, the registration is refused, or the local address
/// cannot be bound. A JobManager that is down or goes away is retried.
pub async fn run(
    config: TaskManagerConfig,
    cache_dir: PathBuf,
    mut report: impl FnMut(SessionEvent),
    shutdown: impl Future<Output = ()>,
) -> Result<(), TmError> {
    let identity = NodeIdentity::load(&config.certs_dir)?;
    let bind = SocketAddr::new(
        config
            .host
            .parse::<IpAddr>()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        0,
    );
    let liveness = Liveness {
        keep_alive: Duration::from_millis(config.heartbeat_interval_ms),
        idle_timeout: Duration::from_millis(config.heartbeat_timeout_ms),
    };
    let endpoint = weir_rpc::node_endpoint(bind, &identity, liveness)?;
    let work_dir = std::env::temp_dir().join(format!("weir-tm-{}", std::process::id()));
    remove_dead_work_dirs();
    let executor = Executor::new(endpoint.clone(), cache_dir, work_dir.clone())
        .map_err(|e| TmError::Engine(e.to_string()))?;
    let mut backoff = Backoff::new();
    tokio::pin!(shutdown);
    loop {
        let outcome = tokio::select! {
            () = &mut shutdown => break,
            outcome = session(&config, &endpoint, &executor, &mut report, &mut backoff) => outcome,
        };
        // Without its JobManager nothing here may go on.
        executor.cancel_all();
        if !outcome.is_transient() {
            endpoint.close(0u32.into(), b"TaskManager stopping");
            return Err(outcome);
        }
        let retry_in = backoff.next_delay();
        report(SessionEvent::Disconnected {
            reason: outcome.to_string(),
            retry_in,
        });
        tokio::select! {
            () = &mut shutdown => break,
            () = tokio::time::sleep(retry_in) => {}
        }
    }
    executor.cancel_all();
    endpoint.close(0u32.into(), b"TaskManager stopping");
    // Lets the close reach the JobManager before the process exits.
    let _ = tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle()).await;
    let _ = std::fs::remove_dir_all(&work_dir);
    Ok(())
}

/// Removes the working directories (`weir-tm-<pid>` in the temporary
/// directory) of TaskManagers that are no longer running (killed ones
/// leave theirs behind). A process is taken as running while
/// `/proc/<pid>` exists; where there is no `/proc`, nothing is removed.
fn remove_dead_work_dirs() {
    weir_task::leftovers::remove_dead_process_dirs(|name| {
        name.strip_prefix("weir-tm-")?.parse().ok()
    });
}

/// One connection: register, then heartbeats until it fails. Returns only
/// with the error that ended it.
async fn session(
    config: &TaskManagerConfig,
    endpoint: &Endpoint,
    executor: &Arc<Executor>,
    report: &mut impl FnMut(SessionEvent),
    backoff: &mut Backoff,
) -> TmError {
    let address = config.jobmanager();
    let resolved = tokio::net::lookup_host(address.as_str())
        .await
        .map(|mut addrs| addrs.next());
    let jobmanager = match resolved {
        Ok(Some(addr)) => addr,
        Ok(None) => {
            return TmError::Resolve {
                address,
                message: "no address".into(),
            };
        }
        Err(e) => {
            return TmError::Resolve {
                address,
                message: e.to_string(),
            };
        }
    };
    match registered_session(config, endpoint, executor, jobmanager, report, backoff).await {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

async fn registered_session(
    config: &TaskManagerConfig,
    endpoint: &Endpoint,
    executor: &Arc<Executor>,
    jobmanager: SocketAddr,
    report: &mut impl FnMut(SessionEvent),
    backoff: &mut Backoff,
) -> Result<std::convert::Infallible, TmError> {
    let connection = weir_rpc::connect(endpoint, jobmanager).await?;
    let mut channel = ControlChannel::open(&connection).await?;
    channel
        .send(&ControlMessage::Register(Registration {
            host: config.host.clone(),
            slots: config.slots,
            weir_version: env!("CARGO_PKG_VERSION").to_string(),
        }))
        .await?;
    let answer = tokio::time::timeout(
        Duration::from_millis(config.heartbeat_timeout_ms),
        channel.recv(),
    )
    .await
    .map_err(|_| RpcError::Timeout(config.heartbeat_timeout_ms))??;
    let (id, me, interval_ms) = match answer {
        Some(ControlMessage::Registered {
            taskmanager,
            address,
            heartbeat_interval_ms,
            ..
        }) => (taskmanager, address, heartbeat_interval_ms),
        Some(ControlMessage::Refused { reason }) => return Err(TmError::Refused(reason)),
        Some(other) => {
            return Err(RpcError::Unexpected(format!(
                "{} instead of an answer to the registration",
                other.name()
            ))
            .into());
        }
        None => {
            return Err(RpcError::Unexpected(
                "the JobManager closed the stream without answering the registration".into(),
            )
            .into());
        }
    };
    backoff.reset();
    report(SessionEvent::Registered { id, jobmanager });
    let mut ticker = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
    // Heartbeats, events, metrics and artifact requests go out through a
    // writer task, so reading never waits on writing.
    let outbox = channel.spawn_writer();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if outbox.send(ControlMessage::Heartbeat).is_err() {
                    return Err(RpcError::Unexpected("the control stream's writer stopped".into()).into());
                }
            }
            message = channel.recv() => match message? {
                None => {
                    return Err(RpcError::Unexpected(
                        "the JobManager closed the control stream".into(),
                    )
                    .into());
                }
                Some(message) => executor.handle(message, &me, &outbox),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1600, 3200, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn only_refusals_and_certificates_are_final() {
        assert!(!TmError::Refused("version".into()).is_transient());
        assert!(
            TmError::Resolve {
                address: "x:1".into(),
                message: "no".into()
            }
            .is_transient()
        );
        assert!(TmError::Rpc(RpcError::Timeout(5)).is_transient());
        assert!(
            !TmError::Rpc(RpcError::Certificates {
                path: "ca.pem".into(),
                message: "missing".into()
            })
            .is_transient()
        );
    }
}
