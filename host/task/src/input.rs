//! The head of a subtask's chain: where its batches come from (a source
//! reader or the queues from its producers), and reading those queues
//! under barrier alignment.

use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;
use weir_checkpoint::BarrierAligner;
use weir_connectors::SourceReader;
use weir_types::Batch;

use crate::channel::{ChannelReceiver, ChannelSender};
use crate::exchange::Message;
use crate::transport::InputGate;
use crate::watermark::{InputWatermarks, SplitWatermarks};

/// The queues into one chain's subtasks, one per producer and consumer
/// subtask (as Flink's input channels), so that barrier alignment can stop
/// reading a producer and let its queue push back on it.
pub(crate) struct ChainInputs {
    /// `senders[producer][consumer]`.
    pub(crate) senders: Vec<Vec<ChannelSender>>,
    /// `receivers[consumer][producer]`.
    pub(crate) receivers: Vec<Vec<ChannelReceiver>>,
}

impl ChainInputs {
    /// Queues from `producers` producers into `consumers` subtasks, each
    /// holding `capacity` elements and the default byte credit.
    pub(crate) fn new(producers: usize, consumers: usize, capacity: usize) -> Self {
        let mut senders = vec![Vec::with_capacity(consumers); producers];
        let mut receivers: Vec<Vec<ChannelReceiver>> = (0..consumers)
            .map(|_| Vec::with_capacity(producers))
            .collect();
        for per_consumer in &mut receivers {
            for per_producer in &mut senders {
                let (tx, rx) = crate::channel::channel(capacity);
                per_producer.push(tx);
                per_consumer.push(rx);
            }
        }
        Self { senders, receivers }
    }
}

/// Where a subtask's batches come from.
pub(crate) enum Head {
    Source {
        reader: Box<SourceReader>,
        /// The splits assigned to this subtask.
        splits: Vec<u32>,
        /// Periodic watermarks, when the source declares them.
        watermarks: Option<SplitWatermarks>,
        /// Pacing to `records_per_second`, when set.
        pace: Option<Pace>,
    },
    Input {
        /// Channel `p` of the gate comes from producer `p`.
        gate: Box<dyn InputGate>,
        /// `input_of[p]`: which input edge producer `p` belongs to.
        input_of: Vec<usize>,
        watermarks: InputWatermarks,
        aligner: BarrierAligner,
    },
}

/// Keeps a source subtask at or under a rate (records per second).
pub(crate) struct Pace {
    pub(crate) per_second: u64,
    pub(crate) started: std::time::Instant,
    pub(crate) records: u64,
}

impl Pace {
    /// `n` more records were read: sleeps until they are due.
    pub(crate) fn after(&mut self, n: usize) {
        self.records += n as u64;
        let due = Duration::from_secs_f64(self.records as f64 / self.per_second as f64);
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
}

/// What the input head of a subtask got next.
pub(crate) enum Step {
    /// Records from input edge `.0`, and a watermark to pass on after them.
    Records(usize, Batch, Option<i64>),
    /// Barriers aligned: take checkpoint `.0` (alignment took `.1` ms).
    Checkpoint(u64, u64),
    /// Nothing to do this time round.
    Nothing,
    /// Every input ended (after checkpoint `(id, alignment ms)`, when its
    /// alignment completed with that end).
    Ended(Option<(u64, u64)>),
    /// A producer went away without ending its input: the job is stopping
    /// (a failure elsewhere, or a stop with savepoint).
    Disconnected,
}

/// Ms since the first barrier of the alignment that just completed (0 when
/// it needed no waiting); the alignment is over.
pub(crate) fn alignment_ms(started: &mut Option<std::time::Instant>) -> u64 {
    started.take().map_or(0, |t| {
        u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
    })
}

/// The next element for a subtask's input head, from any producer that
/// has not ended its input. With `align`, producers blocked by the barrier
/// aligner are not read: what they send after their barrier waits in
/// their channels, which run out of credit and hold them back (as Flink's
/// aligned checkpoints do), so alignment needs no buffer of its own.
///
/// # Errors
/// `Timeout` when nothing came within 50 ms; `Disconnected` when a
/// producer went away without ending its input (it failed).
pub(crate) fn next_input(
    gate: &mut dyn InputGate,
    aligner: &BarrierAligner,
    align: bool,
) -> Result<Message, RecvTimeoutError> {
    let readable =
        |producer: usize| !(aligner.has_ended(producer) || (align && aligner.is_blocked(producer)));
    gate.next(&readable, Duration::from_millis(50))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::LocalInputGate;
    use weir_checkpoint::Alignment;
    use weir_types::{Origin, Record, StreamElement};

    pub(crate) fn batch(from: u32, value: &str) -> Message {
        let mut b = Batch::default();
        b.push(
            Record {
                key: None,
                value: value.as_bytes().to_vec().into(),
                timestamp: None,
            },
            Origin::DERIVED,
        );
        (from, StreamElement::Batch(b))
    }

    pub(crate) fn value_of(message: Message) -> (u32, String) {
        match message {
            (from, StreamElement::Batch(b)) => {
                let value = b
                    .records
                    .first()
                    .map(|r| r.value.clone())
                    .unwrap_or_default();
                (from, String::from_utf8_lossy(&value).into_owned())
            }
            (from, other) => (from, format!("{other:?}")),
        }
    }

    /// Regression for alignment buffering everything a blocked producer
    /// sent: its queue is left unread, fills, and holds the producer back.
    #[test]
    pub(crate) fn alignment_leaves_a_blocked_producer_in_its_full_queue() {
        let queues = ChainInputs::new(2, 1, 2);
        let ChainInputs {
            senders: txs,
            mut receivers,
        } = queues;
        let rxs = &mut LocalInputGate::new(receivers.remove(0));
        let mut aligner = BarrierAligner::new(2);
        assert_eq!(aligner.on_barrier(0, 1), Alignment::Waiting);
        for v in ["a1", "a2"] {
            txs[0][0].send(batch(0, v)).unwrap();
        }
        assert!(txs[0][0].queue_is_full());
        txs[1][0].send(batch(1, "b1")).unwrap();
        assert_eq!(
            value_of(next_input(rxs, &aligner, true).unwrap()),
            (1, "b1".into())
        );
        assert!(matches!(
            next_input(rxs, &aligner, true),
            Err(RecvTimeoutError::Timeout)
        ));
        // Aligned: producer 0 is read again, in order.
        assert_eq!(aligner.on_barrier(1, 1), Alignment::Aligned(1));
        assert_eq!(
            value_of(next_input(rxs, &aligner, true).unwrap()),
            (0, "a1".into())
        );
        assert_eq!(
            value_of(next_input(rxs, &aligner, true).unwrap()),
            (0, "a2".into())
        );
        // At least once: a blocked producer is read anyway.
        assert_eq!(aligner.on_barrier(0, 2), Alignment::Waiting);
        txs[0][0].send(batch(0, "a3")).unwrap();
        assert_eq!(
            value_of(next_input(rxs, &aligner, false).unwrap()),
            (0, "a3".into())
        );
    }

    #[test]
    pub(crate) fn an_ended_producer_is_not_read_and_a_vanished_one_is_reported() {
        let ChainInputs {
            senders,
            mut receivers,
        } = ChainInputs::new(2, 1, 2);
        let gate = &mut LocalInputGate::new(receivers.remove(0));
        let mut aligner = BarrierAligner::new(2);
        let mut senders = senders.into_iter();
        let (first, second) = (senders.next().unwrap(), senders.next().unwrap());
        first[0].send((0, StreamElement::EndOfInput)).unwrap();
        drop(first);
        let ended = next_input(gate, &aligner, true).unwrap();
        assert_eq!(ended.0, 0);
        aligner.on_end_of_input(0);
        second[0].send(batch(1, "b1")).unwrap();
        assert_eq!(
            value_of(next_input(gate, &aligner, true).unwrap()),
            (1, "b1".into())
        );
        drop(second);
        assert!(matches!(
            next_input(gate, &aligner, true),
            Err(RecvTimeoutError::Disconnected)
        ));
    }
}
