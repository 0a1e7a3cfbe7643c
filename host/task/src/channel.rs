//! One channel between a producer subtask and a consumer subtask (Flink's
//! input channel): a bounded FIFO of stream elements with **byte credits**.
//!
//! A channel holds at most `capacity` elements *and* at most its credit in
//! bytes of records ([`CHANNEL_CREDIT_BYTES`] by default): a sender waits
//! until the receiver has taken enough to make room, so the memory between
//! two subtasks is bounded by bytes whatever the records' sizes (one
//! element is always let through into an empty channel, so a record larger
//! than the credit still moves). Barrier alignment keeps working as "stop
//! reading that channel": an unread channel returns no credit, its sender
//! waits, and back-pressure reaches the producer.
//!
//! In-process channels are these alone. A channel whose ends are on two
//! TaskManagers is two of them joined by a QUIC stream: the producer's
//! side is read by the stream's sending thread, the consumer's side fed by
//! its receiving thread, and QUIC's per-stream flow control (bytes too)
//! carries the back-pressure between them.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvError, RecvTimeoutError, Sender, TryRecvError};
use weir_types::StreamElement;

/// What travels on a channel: the producer subtask's index (its channel
/// number at the consumer, once remote) and an element.
pub type ChannelMessage = (u32, StreamElement);
type Message = ChannelMessage;

/// The receiving side went away (it failed or the job was cancelled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the channel's consumer is gone")]
pub struct Disconnected;

/// Default credit of one channel: bytes of records in flight, 4 MiB.
pub const CHANNEL_CREDIT_BYTES: usize = 4 << 20;

/// Bytes an element counts for its channel's credit: a batch's keys and
/// values plus 32 bytes per record; other elements (watermarks, barriers)
/// count 0 and are never held back by credit.
pub(crate) fn element_bytes(element: &StreamElement) -> usize {
    match element {
        StreamElement::Batch(batch) => batch
            .records
            .iter()
            .map(|r| r.value.len() + r.key.as_ref().map_or(0, Vec::len) + 32)
            .sum(),
        _ => 0,
    }
}

#[derive(Debug)]
struct Credits {
    limit: usize,
    in_flight: Mutex<usize>,
    freed: Condvar,
    /// The receiver is gone: nobody will return credit.
    closed: AtomicBool,
}

impl Credits {
    fn lock(&self) -> std::sync::MutexGuard<'_, usize> {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `bytes` of credit, waiting while the channel is over its limit
    /// (an empty channel admits anything); answers whether it waited.
    /// `Err` when the receiver is gone.
    fn acquire(&self, bytes: usize) -> Result<bool, Disconnected> {
        if bytes == 0 {
            return Ok(false);
        }
        let mut waited = false;
        let mut in_flight = self.lock();
        while *in_flight > 0 && *in_flight + bytes > self.limit {
            waited = true;
            if self.closed.load(Ordering::Acquire) {
                return Err(Disconnected);
            }
            in_flight = self
                .freed
                .wait_timeout(in_flight, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *in_flight += bytes;
        Ok(waited)
    }

    fn release(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let mut in_flight = self.lock();
        *in_flight = in_flight.saturating_sub(bytes);
        drop(in_flight);
        self.freed.notify_all();
    }
}

/// The producer's end of a channel (cheap to clone).
#[derive(Debug, Clone)]
pub struct ChannelSender {
    tx: Sender<Message>,
    credits: Arc<Credits>,
}

/// The consumer's end of a channel.
#[derive(Debug)]
pub struct ChannelReceiver {
    rx: Receiver<Message>,
    credits: Arc<Credits>,
}

/// A channel of at most `capacity` elements and [`CHANNEL_CREDIT_BYTES`].
pub fn channel(capacity: usize) -> (ChannelSender, ChannelReceiver) {
    channel_with_credit(capacity, CHANNEL_CREDIT_BYTES)
}

/// A channel of at most `capacity` elements and `credit_bytes` of records.
pub fn channel_with_credit(
    capacity: usize,
    credit_bytes: usize,
) -> (ChannelSender, ChannelReceiver) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let credits = Arc::new(Credits {
        limit: credit_bytes.max(1),
        in_flight: Mutex::new(0),
        freed: Condvar::new(),
        closed: AtomicBool::new(false),
    });
    (
        ChannelSender {
            tx,
            credits: Arc::clone(&credits),
        },
        ChannelReceiver { rx, credits },
    )
}

impl ChannelSender {
    /// Whether the channel holds as many elements as it can.
    #[cfg(test)]
    pub(crate) fn queue_is_full(&self) -> bool {
        self.tx.is_full()
    }

    /// A sender whose receiver is already gone (every send fails).
    pub(crate) fn disconnected() -> Self {
        channel(1).0
    }

    /// Sends `message`, waiting for credit and room.
    ///
    /// # Errors
    /// [`Disconnected`] when the receiver is gone.
    pub fn send(&self, message: Message) -> Result<(), Disconnected> {
        self.send_measured(message, None)
    }

    /// [`ChannelSender::send`], adding the time it had to wait for credit
    /// or room (the consumer back-pressuring) to `blocked_ns`.
    pub(crate) fn send_measured(
        &self,
        message: Message,
        blocked_ns: Option<&AtomicU64>,
    ) -> Result<(), Disconnected> {
        let started = Instant::now();
        let mut waited = self.credits.acquire(element_bytes(&message.1))?;
        match self.tx.try_send(message) {
            Ok(()) => {}
            Err(crossbeam_channel::TrySendError::Disconnected(_)) => return Err(Disconnected),
            Err(crossbeam_channel::TrySendError::Full(message)) => {
                waited = true;
                self.tx.send(message).map_err(|_| Disconnected)?;
            }
        }
        if waited && let Some(counter) = blocked_ns {
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            counter.fetch_add(ns, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl ChannelReceiver {
    /// The underlying queue, to wait on several channels at once
    /// (`crossbeam_channel::Select`); a message taken from it directly
    /// must be handed to [`ChannelReceiver::took`].
    pub(crate) fn queue(&self) -> &Receiver<Message> {
        &self.rx
    }

    /// Returns the credit of a message taken through [`Self::queue`].
    pub(crate) fn took(&self, message: &Message) {
        self.credits.release(element_bytes(&message.1));
    }

    fn taken(&self, message: Message) -> Message {
        self.took(&message);
        message
    }

    /// The next element, waiting for it.
    ///
    /// # Errors
    /// When every sender is gone and the channel is empty.
    pub fn recv(&self) -> Result<Message, RecvError> {
        self.rx.recv().map(|m| self.taken(m))
    }

    /// The next element, waiting up to `timeout`.
    ///
    /// # Errors
    /// On timeout, or when every sender is gone and the channel is empty.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Message, RecvTimeoutError> {
        self.rx.recv_timeout(timeout).map(|m| self.taken(m))
    }

    /// The next element if one is there.
    ///
    /// # Errors
    /// When the channel is empty, or every sender is gone.
    pub fn try_recv(&self) -> Result<Message, TryRecvError> {
        self.rx.try_recv().map(|m| self.taken(m))
    }
}

impl Drop for ChannelReceiver {
    fn drop(&mut self) {
        self.credits.closed.store(true, Ordering::Release);
        self.credits.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_types::{Batch, Origin, Record};

    fn batch(bytes: usize) -> Message {
        let mut b = Batch::default();
        b.push(
            Record {
                key: None,
                value: vec![b'x'; bytes].into(),
                timestamp: None,
            },
            Origin::DERIVED,
        );
        (0, StreamElement::Batch(b))
    }

    #[test]
    fn credit_bounds_the_bytes_in_flight_not_the_number_of_batches() {
        // Room for 100 batches, but only 1000 bytes of records.
        let (tx, rx) = channel_with_credit(100, 1000);
        tx.send(batch(568)).unwrap(); // 600 bytes with the record overhead
        let sender = std::thread::spawn(move || {
            tx.send(batch(568)).unwrap(); // waits: 1200 > 1000
            tx
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(!sender.is_finished(), "the second batch waits for credit");
        assert_eq!(rx.queue().len(), 1);
        rx.recv().unwrap();
        let tx = sender.join().unwrap();
        assert_eq!(rx.recv().unwrap().0, 0);
        // Watermarks and barriers need no credit.
        tx.send(batch(968)).unwrap();
        tx.send((0, StreamElement::Barrier(1))).unwrap();
        assert_eq!(rx.queue().len(), 2);
    }

    #[test]
    fn a_record_larger_than_the_credit_moves_through_an_empty_channel() {
        let (tx, rx) = channel_with_credit(4, 1000);
        tx.send(batch(50_000)).unwrap();
        assert_eq!(element_bytes(&rx.recv().unwrap().1), 50_032);
        tx.send(batch(50_000)).unwrap();
    }

    #[test]
    fn a_sender_waiting_for_credit_fails_when_the_receiver_goes() {
        let (tx, rx) = channel_with_credit(4, 1000);
        tx.send(batch(900)).unwrap();
        let sender = std::thread::spawn(move || tx.send(batch(900)));
        std::thread::sleep(Duration::from_millis(60));
        drop(rx);
        assert_eq!(sender.join().unwrap(), Err(Disconnected));
    }

    #[test]
    fn credit_taken_through_the_queue_is_returned_by_took() {
        let (tx, rx) = channel_with_credit(4, 1000);
        tx.send(batch(900)).unwrap();
        let message = rx.queue().recv().unwrap();
        rx.took(&message);
        // Credit is back: this does not wait.
        tx.send(batch(900)).unwrap();
    }
}
