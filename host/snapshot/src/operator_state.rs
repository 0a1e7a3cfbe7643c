//! A UDF's operator state in a subtask snapshot (`WOS1`): the 4 bytes
//! `WOS1`, then the item list (each a byte string) in the postcard wire
//! format.

use crate::SnapshotError;

/// First bytes of a UDF's operator state in a subtask snapshot (then
/// postcard of the item list).
pub const OPERATOR_STATE_MAGIC: &[u8; 4] = b"WOS1";

/// The items of encoded operator state.
///
/// # Errors
/// [`SnapshotError::Damaged`] when the bytes are damaged.
pub fn decode_operator_state(bytes: &[u8]) -> Result<Vec<Vec<u8>>, SnapshotError> {
    let body = bytes
        .strip_prefix(OPERATOR_STATE_MAGIC.as_slice())
        .ok_or_else(|| {
            SnapshotError::Damaged("operator state is corrupt: no WOS1 header".into())
        })?;
    postcard::from_bytes(body)
        .map_err(|e| SnapshotError::Damaged(format!("operator state is corrupt: {e}")))
}

/// `items` as [`decode_operator_state`] reads them.
#[must_use]
pub fn encode_operator_state(items: &[Vec<u8>]) -> Vec<u8> {
    let size: usize = items.iter().map(|i| i.len() + 5).sum();
    let mut out = Vec::with_capacity(OPERATOR_STATE_MAGIC.len() + 5 + size);
    out.extend_from_slice(OPERATOR_STATE_MAGIC);
    // Writing to a Vec cannot fail.
    let _ = postcard::to_io(items, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_state_bytes_round_trip_and_damage_is_an_error() {
        let mut bytes = OPERATOR_STATE_MAGIC.to_vec();
        postcard::to_io(&vec![vec![1u8, 2], vec![]], &mut bytes).unwrap();
        assert_eq!(
            decode_operator_state(&bytes).unwrap(),
            vec![vec![1, 2], vec![]]
        );
        assert!(decode_operator_state(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode_operator_state(b"WKS1").is_err());
    }
}
