//! The transport of Weir's cluster: QUIC (quinn) with mutual TLS (rustls),
//! between the JobManager and its TaskManagers.
//!
//! - [`tls`]: the cluster's certificates ([`init_dev_certs`] for
//!   `weir cert init`, [`NodeIdentity`] to load them) and the rustls
//!   configurations that make both ends of every connection authenticate
//!   against one CA.
//! - [`endpoint`]: QUIC endpoints built from an identity, and the
//!   [`ControlChannel`] that carries [`ControlMessage`]s on a connection.
//! - [`data`]: the data plane, one QUIC stream per producer→consumer
//!   channel, with byte credits from QUIC's flow control.
//! - [`messages`]: the control messages (registration, heartbeats), whose
//!   framing is [`weir_protocol::control`].
//!
//! Every process of a cluster listens or connects only with a certificate:
//! there is no plaintext mode.

pub mod data;
pub mod endpoint;
mod error;
pub mod messages;
pub mod tls;

pub use data::{DataChannelHeader, DataReceiver, DataSender, PendingData};
pub use endpoint::{
    ControlChannel, Liveness, MAX_CONTROL_MESSAGE_BYTES, check_heartbeat, client_endpoint, connect,
    node_endpoint, server_endpoint,
};
pub use error::RpcError;
pub use messages::{AttemptId, ControlMessage, Registration, TaskManagerId};
pub use tls::{NodeIdentity, init_dev_certs};

#[cfg(test)]
mod tests;
