//! Partitioning of a vertex's output over the next vertex's subtasks.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub(crate) use crate::channel::Disconnected;
use crate::transport::OutputChannel;
use weir_types::keygroup::{key_group_of, subtask_for_key_group};
use weir_types::{Batch, StreamElement, WatermarkStatus};

use weir_types::jobgraph::Partitioning;

/// A record that cannot be routed (key_by without a key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unkeyed {
    pub(crate) origin: weir_types::Origin,
    /// Why it has no key.
    pub(crate) reason: String,
}

/// What travels on a channel: the producer subtask's index and an element.
/// (One channel per consumer subtask is shared by all producers; the index
/// lets the consumer take the minimum watermark over its inputs.)
pub(crate) type Message = crate::channel::ChannelMessage;

/// The output of one producer subtask towards all subtasks of one consumer vertex.
pub(crate) struct Exchange {
    partitioning: Partitioning,
    senders: Vec<Box<dyn OutputChannel>>,
    /// This producer's subtask index.
    from: u32,
    /// Per-target buffers for `key_by`.
    buffers: Vec<Batch>,
    /// The producer's subtask index (`forward`) or the next target (`rebalance`).
    next: usize,
    max_parallelism: u16,
    /// Re-key records by this JSON field before `key_by`.
    rekey: Option<String>,
    /// Nanoseconds spent waiting on full queues (back-pressure), when measured.
    blocked_ns: Option<Arc<AtomicU64>>,
}

/// Sends `message` on `sender`; a send that has to wait for credit (the
/// consumer is back-pressuring) adds its wait to `blocked_ns`.
fn deliver(
    sender: &mut dyn OutputChannel,
    message: Message,
    blocked_ns: Option<&AtomicU64>,
) -> Result<(), Disconnected> {
    sender.send(message, blocked_ns)
}

impl Exchange {
    pub(crate) fn new(
        partitioning: Partitioning,
        senders: Vec<Box<dyn OutputChannel>>,
        producer_index: usize,
        max_parallelism: u16,
    ) -> Self {
        let buffers = (0..senders.len()).map(|_| Batch::default()).collect();
        // Rebalance starts at a different target per producer so small
        // inputs still spread.
        let next = producer_index % senders.len().max(1);
        Self {
            partitioning,
            senders,
            from: producer_index as u32,
            buffers,
            next,
            max_parallelism,
            rekey: None,
            blocked_ns: None,
        }
    }

    /// Adds the time this exchange waits on full queues to `counter` (ns).
    pub(crate) fn measure_back_pressure(mut self, counter: Arc<AtomicU64>) -> Self {
        self.blocked_ns = Some(counter);
        self
    }

    /// Makes `key_by` take each record's key from a top-level JSON field.
    pub(crate) fn rekey_by(mut self, field: Option<&str>) -> Self {
        self.rekey = field.map(str::to_string);
        self
    }

    /// Sends a batch; returns the records that could not be routed.
    pub(crate) fn send(&mut self, batch: Batch) -> Result<Vec<Unkeyed>, Disconnected> {
        match self.partitioning {
            Partitioning::Forward => {
                deliver(
                    self.senders[self.next].as_mut(),
                    (self.from, StreamElement::Batch(batch)),
                    self.blocked_ns.as_deref(),
                )?;
                Ok(Vec::new())
            }
            Partitioning::Rebalance => {
                let target = self.next;
                self.next = (self.next + 1) % self.senders.len();
                deliver(
                    self.senders[target].as_mut(),
                    (self.from, StreamElement::Batch(batch)),
                    self.blocked_ns.as_deref(),
                )?;
                Ok(Vec::new())
            }
            Partitioning::KeyBy => self.send_keyed(batch),
        }
    }

    fn send_keyed(&mut self, batch: Batch) -> Result<Vec<Unkeyed>, Disconnected> {
        let parallelism = self.senders.len() as u32;
        let mut unkeyed = Vec::new();
        for (mut record, origin) in batch.records.into_iter().zip(batch.origins) {
            if let Some(field) = &self.rekey {
                match weir_types::key_from_json_field(&record.value, field) {
                    Ok(key) => record.key = Some(key),
                    Err(reason) => {
                        unkeyed.push(Unkeyed { origin, reason });
                        continue;
                    }
                }
            }
            let Some(key) = record.key.as_deref() else {
                unkeyed.push(Unkeyed {
                    origin,
                    reason: "the record has no key".into(),
                });
                continue;
            };
            let group = key_group_of(key, self.max_parallelism);
            let target = subtask_for_key_group(group, self.max_parallelism, parallelism) as usize;
            self.buffers[target].push(record, origin);
        }
        // Flush after every input batch: bounded latency, and a key's
        // records keep their order (one FIFO channel per producer/consumer pair).
        for (target, buffer) in self.buffers.iter_mut().enumerate() {
            if !buffer.is_empty() {
                let full = std::mem::take(buffer);
                deliver(
                    self.senders[target].as_mut(),
                    (self.from, StreamElement::Batch(full)),
                    self.blocked_ns.as_deref(),
                )?;
            }
        }
        Ok(unkeyed)
    }

    /// Tells every target that this producer's input has ended.
    pub(crate) fn finish(&mut self) -> Result<(), Disconnected> {
        self.broadcast(StreamElement::EndOfInput)
    }

    /// Sends a watermark to every target, whatever the partitioning.
    pub(crate) fn watermark(&mut self, watermark: i64) -> Result<(), Disconnected> {
        self.broadcast(StreamElement::Watermark(watermark))
    }

    /// Sends checkpoint barrier `id` to every target.
    pub(crate) fn barrier(&mut self, id: u64) -> Result<(), Disconnected> {
        self.broadcast(StreamElement::Barrier(id))
    }

    /// Tells every target that this producer became idle or active.
    pub(crate) fn watermark_status(&mut self, status: WatermarkStatus) -> Result<(), Disconnected> {
        self.broadcast(StreamElement::WatermarkStatus(status))
    }

    fn broadcast(&mut self, element: StreamElement) -> Result<(), Disconnected> {
        for sender in &mut self.senders {
            deliver(
                sender.as_mut(),
                (self.from, element.clone()),
                self.blocked_ns.as_deref(),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_types::{KeyGroupRange, Origin, Record};

    fn boxed(senders: Vec<crate::channel::ChannelSender>) -> Vec<Box<dyn OutputChannel>> {
        senders
            .into_iter()
            .map(|s| Box::new(s) as Box<dyn OutputChannel>)
            .collect()
    }

    fn batch_of(keys: &[&str]) -> Batch {
        let mut b = Batch::default();
        for (i, k) in keys.iter().enumerate() {
            b.push(
                Record {
                    key: Some(k.as_bytes().to_vec()),
                    value: k.as_bytes().to_vec().into(),
                    timestamp: None,
                },
                Origin {
                    split: 0,
                    position: i as u64,
                },
            );
        }
        b
    }

    fn drain(rx: &crate::channel::ChannelReceiver) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok((_, StreamElement::Batch(b))) = rx.try_recv() {
            out.extend(
                b.records
                    .into_iter()
                    .map(|r| String::from_utf8(r.value.to_vec()).unwrap()),
            );
        }
        out
    }

    #[test]
    fn key_by_routes_every_key_to_the_subtask_owning_its_group() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| crate::channel::channel(1024)).unzip();
        let mut ex = Exchange::new(Partitioning::KeyBy, boxed(txs), 0, 128);
        let keys: Vec<String> = (0..300).map(|i| format!("k{}", i % 50)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        assert!(ex.send(batch_of(&refs)).unwrap().is_empty());
        let mut total = 0;
        for (i, rx) in rxs.iter().enumerate() {
            let got = drain(rx);
            let range = KeyGroupRange::for_subtask(i as u32, 3, 128);
            for k in &got {
                assert!(
                    range.contains(key_group_of(k.as_bytes(), 128)),
                    "{k} sent to subtask {i}"
                );
            }
            // Order of each key's records is preserved.
            let expected: Vec<&String> = keys.iter().filter(|k| got.contains(k)).collect();
            assert_eq!(got.iter().collect::<Vec<_>>(), expected);
            total += got.len();
        }
        assert_eq!(total, 300);
    }

    #[test]
    fn key_by_reports_records_without_key() {
        let (tx, _rx) = crate::channel::channel(1024);
        let mut ex = Exchange::new(Partitioning::KeyBy, boxed(vec![tx]), 0, 128);
        let mut b = batch_of(&["a"]);
        b.push(
            Record::default(),
            Origin {
                split: 3,
                position: 9,
            },
        );
        assert_eq!(
            ex.send(b).unwrap(),
            vec![Unkeyed {
                origin: Origin {
                    split: 3,
                    position: 9
                },
                reason: "the record has no key".into(),
            }]
        );
    }

    #[test]
    fn key_by_can_rekey_by_a_json_field() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| crate::channel::channel(1024)).unzip();
        let mut ex = Exchange::new(Partitioning::KeyBy, boxed(txs), 0, 128).rekey_by(Some("id"));
        let mut b = Batch::default();
        for v in [r#"{"id":1}"#, r#"{"id":"x"}"#, r#"{"no":1}"#] {
            b.push(
                Record {
                    key: Some(b"old".to_vec()),
                    value: v.as_bytes().to_vec().into(),
                    timestamp: None,
                },
                Origin::default(),
            );
        }
        let unkeyed = ex.send(b).unwrap();
        assert_eq!(unkeyed.len(), 1);
        assert!(unkeyed[0].reason.contains("no key field `id`"));
        let mut keys = Vec::new();
        for rx in &rxs {
            while let Ok((_, StreamElement::Batch(b))) = rx.try_recv() {
                keys.extend(b.records.into_iter().filter_map(|r| r.key));
            }
        }
        keys.sort();
        assert_eq!(keys, vec![b"1".to_vec(), b"x".to_vec()]);
    }

    #[test]
    fn rebalance_rotates_and_forward_keeps_the_index() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..2).map(|_| crate::channel::channel(1024)).unzip();
        let mut ex = Exchange::new(Partitioning::Rebalance, boxed(txs.clone()), 1, 128);
        for k in ["a", "b", "c"] {
            ex.send(batch_of(&[k])).unwrap();
        }
        assert_eq!(drain(&rxs[1]), vec!["a", "c"]);
        assert_eq!(drain(&rxs[0]), vec!["b"]);
        let mut fwd = Exchange::new(Partitioning::Forward, boxed(txs), 1, 128);
        fwd.send(batch_of(&["x"])).unwrap();
        fwd.finish().unwrap();
        assert_eq!(drain(&rxs[1]), vec!["x"]);
        assert_eq!(rxs[0].try_recv().ok(), Some((1, StreamElement::EndOfInput)));
    }

    #[test]
    fn watermarks_go_to_every_target_tagged_with_the_producer() {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..3).map(|_| crate::channel::channel(1024)).unzip();
        let mut ex = Exchange::new(Partitioning::KeyBy, boxed(txs), 2, 128);
        ex.watermark(42).unwrap();
        for rx in &rxs {
            assert_eq!(rx.try_recv().ok(), Some((2, StreamElement::Watermark(42))));
        }
    }

    #[test]
    fn a_gone_receiver_is_reported() {
        let (tx, rx) = crate::channel::channel(1);
        drop(rx);
        let mut ex = Exchange::new(Partitioning::Forward, boxed(vec![tx]), 0, 128);
        assert_eq!(ex.send(batch_of(&["a"])), Err(Disconnected));
    }
}
