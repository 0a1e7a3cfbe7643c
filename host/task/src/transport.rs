//! The transport seam between subtasks: what a producer writes to
//! ([`OutputChannel`], timely's `Push`, Flink's result subpartition) and
//! what a consumer reads from ([`InputGate`], Flink's input gate; timely's
//! `Pull`).
//!
//! The exchange ([`crate::exchange`]) and the input head of a subtask see
//! only these traits, not how elements travel:
//! - **in-process**: a [`ChannelSender`] is an output channel; a
//!   [`LocalInputGate`] reads its subtask's [`ChannelReceiver`]s, one per
//!   producer, under barrier alignment;
//! - **across TaskManagers**: the TaskManager's [`crate::executor::RemoteLink`]
//!   gives the producer an output channel that writes the element's frames
//!   to a QUIC stream itself (credit: the stream's flow-control window, in
//!   bytes); at the consumer, the stream's receiving thread feeds the
//!   channel's [`ChannelSender`], so the gate reads local and remote
//!   channels alike (as Flink's remote input channels are fed by its
//!   network threads).
//!
//! Either way credits count bytes of records, not batches, and barrier
//! alignment is "stop reading that channel": a channel left unread returns
//! no credit (or no QUIC window), and its producer waits.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;

use crate::channel::{ChannelMessage, ChannelReceiver, ChannelSender, Disconnected};

/// The producer's end of one channel to one consumer subtask.
pub trait OutputChannel: Send + std::fmt::Debug {
    /// Sends `message` (the producer's channel number at the consumer and
    /// an element), in order after everything sent before, waiting while
    /// the channel has no credit left; the time spent waiting for credit
    /// (back-pressure) is added to `blocked_ns` (ns) when given.
    ///
    /// # Errors
    /// [`Disconnected`] when the consumer is gone (it failed, its
    /// TaskManager was lost, or the attempt was cancelled).
    fn send(
        &mut self,
        message: ChannelMessage,
        blocked_ns: Option<&AtomicU64>,
    ) -> Result<(), Disconnected>;
}

impl OutputChannel for ChannelSender {
    fn send(
        &mut self,
        message: ChannelMessage,
        blocked_ns: Option<&AtomicU64>,
    ) -> Result<(), Disconnected> {
        self.send_measured(message, blocked_ns)
    }
}

/// The consumer's side of all input channels of one subtask.
pub trait InputGate: Send {
    /// How many input channels the gate has (channel numbers are
    /// `0..channels()`).
    fn channels(&self) -> usize;

    /// The next element of any channel `c` for which `readable(c)` holds,
    /// waiting up to `timeout`. Channels not readable are left unread: what
    /// their producers send stays in the channel and holds them back.
    ///
    /// # Errors
    /// `Timeout` when nothing came in time (or no channel is readable);
    /// `Disconnected` when a readable channel's producer went away without
    /// ending its input (it failed).
    fn next(
        &mut self,
        readable: &dyn Fn(usize) -> bool,
        timeout: Duration,
    ) -> Result<ChannelMessage, RecvTimeoutError>;
}

/// An input gate over credit-bounded in-process channels, one per producer
/// (a remote producer's channel is fed by its QUIC stream's receiver).
#[derive(Debug, Default)]
pub struct LocalInputGate {
    channels: Vec<ChannelReceiver>,
}

impl LocalInputGate {
    /// A gate reading `channels` (`channels[c]` is input channel `c`).
    #[must_use]
    pub fn new(channels: Vec<ChannelReceiver>) -> Self {
        Self { channels }
    }
}

impl InputGate for LocalInputGate {
    fn channels(&self) -> usize {
        self.channels.len()
    }

    fn next(
        &mut self,
        readable: &dyn Fn(usize) -> bool,
        timeout: Duration,
    ) -> Result<ChannelMessage, RecvTimeoutError> {
        let deadline = Instant::now() + timeout;
        let mut select = crossbeam_channel::Select::new();
        let mut selected = Vec::with_capacity(self.channels.len());
        for (c, rx) in self.channels.iter().enumerate() {
            if readable(c) {
                select.recv(rx.queue());
                selected.push(c);
            }
        }
        if selected.is_empty() {
            // Nothing to read now (every channel ended or is blocked): the
            // caller comes back after its other work.
            std::thread::sleep(timeout.min(Duration::from_millis(1)));
            return Err(RecvTimeoutError::Timeout);
        }
        let ready = select
            .select_deadline(deadline)
            .map_err(|_| RecvTimeoutError::Timeout)?;
        let c = selected[ready.index()];
        let message = ready
            .recv(self.channels[c].queue())
            .map_err(|_| RecvTimeoutError::Disconnected)?;
        self.channels[c].took(&message);
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::channel_with_credit;
    use weir_types::{Batch, Origin, Record, StreamElement};

    fn batch(from: u32, bytes: usize) -> ChannelMessage {
        let mut b = Batch::default();
        b.push(
            Record {
                key: None,
                value: vec![b'x'; bytes].into(),
                timestamp: None,
            },
            Origin::DERIVED,
        );
        (from, StreamElement::Batch(b))
    }

    #[test]
    fn a_gate_reads_only_readable_channels_and_their_credit_comes_back() {
        let (mut a, ra) = channel_with_credit(8, 1000);
        let (mut b, rb) = channel_with_credit(8, 1000);
        let mut gate = LocalInputGate::new(vec![ra, rb]);
        assert_eq!(gate.channels(), 2);
        OutputChannel::send(&mut a, batch(0, 900), None).unwrap();
        OutputChannel::send(&mut b, batch(1, 10), None).unwrap();
        let only_b = |c: usize| c == 1;
        assert_eq!(gate.next(&only_b, Duration::from_millis(10)).unwrap().0, 1);
        assert!(matches!(
            gate.next(&only_b, Duration::from_millis(10)),
            Err(RecvTimeoutError::Timeout)
        ));
        // Channel 0 unread: its producer has no credit for more.
        let waiting = std::thread::spawn(move || {
            let counter = AtomicU64::new(0);
            OutputChannel::send(&mut a, batch(0, 900), Some(&counter)).unwrap();
            counter.into_inner()
        });
        std::thread::sleep(Duration::from_millis(80));
        assert!(!waiting.is_finished());
        assert_eq!(gate.next(&|_| true, Duration::from_secs(1)).unwrap().0, 0);
        let blocked_ns = waiting.join().unwrap();
        assert!(blocked_ns >= 50_000_000, "waited {blocked_ns} ns");
    }

    #[test]
    fn a_gate_reports_a_producer_that_went_away() {
        let (a, ra) = channel_with_credit(8, 1000);
        let mut gate = LocalInputGate::new(vec![ra]);
        drop(a);
        assert!(matches!(
            gate.next(&|_| true, Duration::from_millis(10)),
            Err(RecvTimeoutError::Disconnected)
        ));
        let mut empty = LocalInputGate::default();
        assert!(matches!(
            empty.next(&|_| true, Duration::from_millis(10)),
            Err(RecvTimeoutError::Timeout)
        ));
    }
}
