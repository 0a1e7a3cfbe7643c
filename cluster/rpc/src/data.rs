//! The data plane: one unidirectional QUIC stream per producer→consumer
//! channel between subtasks on different TaskManagers.
//!
//! A data stream starts with a header saying which channel it carries (the
//! control preamble and one [`DataChannelHeader`] message, framed as in
//! [`weir_protocol::control`]), followed by the data stream itself (the
//! `WEIRDATA` preamble and [`StreamElement`] frames, [`weir_protocol`]).
//! Watermarks, watermark status, barriers and end of input travel in-band,
//! in order with the records.
//!
//! **Credits are bytes.** A stream's flow-control window
//! ([`STREAM_WINDOW_BYTES`]) is the credit its consumer grants: a sender
//! that is that many bytes ahead of what the consumer read waits. So a
//! consumer that stops reading one channel (barrier alignment) stops that
//! channel's sender only, and a slow consumer back-pressures its producers
//! through QUIC, without a credit protocol of Weir's own.

use quinn::{Connection, RecvStream, SendStream};
use serde::{Deserialize, Serialize};
use weir_protocol::{
    ControlDecoder, FrameDecoder, encode, encode_control, encode_control_preamble, encode_preamble,
};
use weir_types::StreamElement;

use crate::error::RpcError;

/// Flow-control window of one data stream, bytes: how far a producer may
/// run ahead of its consumer on one channel.
pub const STREAM_WINDOW_BYTES: u32 = 1 << 20;
/// The largest frame a data stream may carry, bytes (a batch of many
/// large records fits).
pub const MAX_DATA_FRAME_BYTES: usize = 64 << 20;
/// The largest data stream header, bytes.
const MAX_HEADER_BYTES: usize = 4096;

/// Which channel a data stream carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataChannelHeader {
    /// The deploying JobManager's run (`AttemptId::epoch`).
    pub epoch: u64,
    /// The job's id.
    pub job: String,
    /// The attempt the producer belongs to (streams of older attempts are
    /// refused by the consumer).
    pub attempt: u32,
    /// The consuming chain's head vertex.
    pub consumer: String,
    /// The consuming subtask's index.
    pub subtask: u32,
    /// The input channel of the consumer (its index among the consumer's
    /// channels, as in its deployment descriptor).
    pub channel: u32,
}

/// The sending end of a data stream.
#[derive(Debug)]
pub struct DataSender {
    stream: SendStream,
    buf: Vec<u8>,
}

impl DataSender {
    /// Opens a data stream on `connection` for `header`'s channel and
    /// writes the header and the data preamble.
    ///
    /// # Errors
    /// [`RpcError::Connection`] or [`RpcError::Write`].
    pub async fn open(
        connection: &Connection,
        header: &DataChannelHeader,
    ) -> Result<Self, RpcError> {
        let mut stream = connection.open_uni().await?;
        let mut buf = Vec::new();
        encode_control_preamble(&mut buf);
        encode_control(header, &mut buf)?;
        encode_preamble(&mut buf);
        stream.write_all(&buf).await?;
        buf.clear();
        Ok(Self { stream, buf })
    }

    /// Sends one element; waits while the consumer's window is full.
    ///
    /// # Errors
    /// [`RpcError::Write`] or [`RpcError::Connection`] when the stream or
    /// connection is gone.
    pub async fn send(&mut self, element: &StreamElement) -> Result<(), RpcError> {
        self.encode(element);
        self.write_encoded().await
    }

    /// Encodes `element` as the next frame, to be written by
    /// [`write_encoded`](Self::write_encoded) (so a caller can tell the
    /// time encoding takes from the time spent waiting for the window).
    pub fn encode(&mut self, element: &StreamElement) {
        self.buf.clear();
        encode(element, &mut self.buf);
    }

    /// Writes the frame [`encode`](Self::encode) made; waits while the
    /// consumer's window is full.
    ///
    /// # Errors
    /// [`RpcError::Write`] or [`RpcError::Connection`] when the stream or
    /// connection is gone.
    pub async fn write_encoded(&mut self) -> Result<(), RpcError> {
        self.stream.write_all(&self.buf).await?;
        self.buf.clear();
        Ok(())
    }

    /// Ends the stream after everything sent (the consumer's
    /// [`DataReceiver::recv`] then returns `None`).
    ///
    /// # Errors
    /// [`RpcError::Unexpected`] when the stream was already ended.
    pub fn finish(&mut self) -> Result<(), RpcError> {
        self.stream
            .finish()
            .map_err(|e| RpcError::Unexpected(e.to_string()))
    }
}

impl DataSender {
    /// Abandons the stream (the producer failed or was cancelled): the
    /// consumer's [`DataReceiver::recv`] fails instead of seeing a clean
    /// end, as a local consumer sees its producer disconnect.
    pub fn reset(&mut self) {
        // Already finished or reset: nothing left to abandon.
        let _ = self.stream.reset(quinn::VarInt::from_u32(0));
    }

    /// Waits until the consumer has read everything sent and the stream's
    /// end (or stopped reading it); call it after [`finish`](Self::finish)
    /// before dropping the connection, which would discard what is in
    /// flight.
    pub async fn delivered(&mut self) {
        // Either way the stream is done with; the error says only how.
        let _ = self.stream.stopped().await;
    }
}

/// A data stream the peer opened whose header is not read yet
/// ([`DataReceiver::accept_pending`]).
#[derive(Debug)]
pub struct PendingData(RecvStream);

impl PendingData {
    /// Reads the stream's header.
    ///
    /// # Errors
    /// [`RpcError::Protocol`] for a malformed header, [`RpcError::Unexpected`]
    /// for a stream that ends before its header, [`RpcError::Read`] when the
    /// producer reset the stream before its header arrived (it was cancelled),
    /// [`RpcError::Connection`] when the connection ends.
    pub async fn read_header(self) -> Result<(DataChannelHeader, DataReceiver), RpcError> {
        let mut stream = self.0;
        let mut header_decoder = ControlDecoder::new(MAX_HEADER_BYTES);
        let mut chunk = [0u8; 1024];
        let header = loop {
            if let Some(header) = header_decoder.next::<DataChannelHeader>()? {
                break header;
            }
            match stream.read(&mut chunk).await? {
                Some(n) => header_decoder.push(&chunk[..n]),
                None => {
                    return Err(RpcError::Unexpected(
                        "a data stream ended before its header".into(),
                    ));
                }
            }
        };
        let mut decoder = FrameDecoder::new(MAX_DATA_FRAME_BYTES);
        decoder.push(&header_decoder.into_remaining());
        Ok((header, DataReceiver { stream, decoder }))
    }
}

/// The receiving end of a data stream.
#[derive(Debug)]
pub struct DataReceiver {
    stream: RecvStream,
    decoder: FrameDecoder,
}

impl DataReceiver {
    /// Accepts the next data stream the peer opens on `connection` and
    /// reads its header. A server that serves many streams of one
    /// connection uses [`accept_pending`](Self::accept_pending) instead,
    /// so that one stream's failure does not end the others.
    ///
    /// # Errors
    /// [`RpcError::Connection`] when the connection ends, and the errors of
    /// [`PendingData::read_header`].
    pub async fn accept(connection: &Connection) -> Result<(DataChannelHeader, Self), RpcError> {
        Self::accept_pending(connection).await?.read_header().await
    }

    /// Accepts the next data stream the peer opens on `connection`, without
    /// reading its header: an error here is the connection's, never one
    /// stream's.
    ///
    /// # Errors
    /// [`RpcError::Connection`] when the connection ends.
    pub async fn accept_pending(connection: &Connection) -> Result<PendingData, RpcError> {
        Ok(PendingData(connection.accept_uni().await?))
    }

    /// The next element, or `None` when the producer ended the stream
    /// cleanly. Cancel-safe.
    ///
    /// # Errors
    /// [`RpcError::Data`] for malformed frames or a stream that ends
    /// inside one; [`RpcError::Read`] or [`RpcError::Connection`] when the
    /// peer is gone.
    pub async fn recv(&mut self) -> Result<Option<StreamElement>, RpcError> {
        loop {
            if let Some(element) = self.decoder.next().map_err(RpcError::Data)? {
                return Ok(Some(element));
            }
            match self.stream.read_chunk(64 << 10, true).await? {
                Some(chunk) => self.decoder.push(&chunk.bytes),
                None => {
                    self.decoder.finish().map_err(RpcError::Data)?;
                    return Ok(None);
                }
            }
        }
    }
}
