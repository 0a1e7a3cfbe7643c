//! The values of one batch written one after another into one buffer:
//! each record's value is a slice of it, so a source allocates once per
//! batch rather than once per record (the Nexmark generator's layout,
//! used by the file sources too).

use weir_types::{Batch, Bytes, Origin, Record};

/// One record of a [`SharedValues`]: where its value ends in the buffer,
/// its key, event time and origin.
struct Entry {
    end: usize,
    key: Option<Vec<u8>>,
    timestamp: Option<i64>,
    origin: Origin,
}

/// A batch's values in one buffer, with the key, time and origin of each.
pub(crate) struct SharedValues {
    /// The values, back to back.
    pub(crate) buffer: Vec<u8>,
    /// The records, in order.
    records: Vec<Entry>,
    /// Records the batch may still take (for sizing the buffer).
    expected: usize,
    /// The caller sized the buffer (`with_bytes`).
    sized: bool,
}

impl SharedValues {
    /// Room for `expected` records; the buffer is sized from the first.
    pub(crate) fn new(expected: usize) -> Self {
        Self {
            buffer: Vec::new(),
            records: Vec::with_capacity(expected),
            expected,
            sized: false,
        }
    }

    /// Room for `expected` records whose values take about `bytes`.
    pub(crate) fn with_bytes(expected: usize, bytes: usize) -> Self {
        Self {
            buffer: Vec::with_capacity(bytes),
            sized: true,
            ..Self::new(expected)
        }
    }

    /// Records so far.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// The value written to `buffer` since the last call becomes a record.
    pub(crate) fn end_record(
        &mut self,
        key: Option<Vec<u8>>,
        timestamp: Option<i64>,
        origin: Origin,
    ) {
        if self.records.is_empty() && !self.sized {
            // The first value's size times the records to come, and a bit.
            let first = self.buffer.len();
            self.buffer
                .reserve((first + first / 8 + 16) * self.expected.saturating_sub(1));
        }
        self.records.push(Entry {
            end: self.buffer.len(),
            key,
            timestamp,
            origin,
        });
    }

    /// Appends the records to `batch`, their values slices of one buffer.
    pub(crate) fn into_batch(self, batch: &mut Batch) {
        let buffer = Bytes::from(self.buffer);
        let mut start = 0;
        for entry in self.records {
            batch.push(
                Record {
                    key: entry.key,
                    value: buffer.slice(start..entry.end),
                    timestamp: entry.timestamp,
                },
                entry.origin,
            );
            start = entry.end;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_slices_of_one_buffer_in_order() {
        let mut values = SharedValues::new(3);
        values.buffer.extend_from_slice(b"{\"a\":1}");
        values.end_record(
            Some(b"k".to_vec()),
            Some(5),
            Origin {
                split: 0,
                position: 1,
            },
        );
        values.buffer.extend_from_slice(b"{\"b\":2}");
        values.end_record(
            None,
            None,
            Origin {
                split: 0,
                position: 3,
            },
        );
        assert_eq!(values.len(), 2);
        let mut batch = Batch::with_capacity(2);
        values.into_batch(&mut batch);
        assert_eq!(batch.records.len(), 2);
        assert_eq!(&batch.records[0].value[..], b"{\"a\":1}");
        assert_eq!(batch.records[0].key.as_deref(), Some(&b"k"[..]));
        assert_eq!(batch.records[0].timestamp, Some(5));
        assert_eq!(&batch.records[1].value[..], b"{\"b\":2}");
        assert_eq!(batch.origins[1].position, 3);
    }
}
