//! The constants of the format (see the crate overview for the layout).

use std::fmt;

use weir_types::StreamElement;

/// The first 8 bytes of every data stream: ASCII `WEIRDATA`.
pub const MAGIC: [u8; 8] = *b"WEIRDATA";

/// The format version this crate writes and the only one it reads.
pub const VERSION: u16 = 1;

/// Bytes in the preamble: the [`MAGIC`] and the `u16` [`VERSION`].
pub const PREAMBLE_LEN: usize = MAGIC.len() + 2;

/// Bytes in a frame header: the `u8` kind and the `u32` body length.
pub const FRAME_HEADER_LEN: usize = 1 + 4;

/// Bit of a record's flags byte: a `u32`-length-prefixed key follows.
pub const FLAG_HAS_KEY: u8 = 0x01;

/// Bit of a record's flags byte: an `i64` timestamp follows.
pub const FLAG_HAS_TIMESTAMP: u8 = 0x02;

/// The smallest encoded record, in bytes: flags (1), value length (4),
/// origin split (4) and origin position (8), with no key, no timestamp and
/// an empty value.
pub const MIN_RECORD_LEN: usize = 1 + 4 + 4 + 8;

/// The body byte of a watermark status frame for `WatermarkStatus::Active`.
pub const STATUS_ACTIVE: u8 = 0;

/// The body byte of a watermark status frame for `WatermarkStatus::Idle`.
pub const STATUS_IDLE: u8 = 1;

/// Bytes in a record count (`u32`) at the start of a batch body.
pub(crate) const COUNT_LEN: usize = 4;

/// The kind byte of a frame: which [`StreamElement`] its body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// `1`: a batch of records with their origins.
    Batch = 1,
    /// `2`: a watermark, 8 bytes (`i64` ms since the Unix epoch).
    Watermark = 2,
    /// `3`: a watermark status, 1 byte ([`STATUS_ACTIVE`] or [`STATUS_IDLE`]).
    WatermarkStatus = 3,
    /// `4`: a checkpoint barrier, 8 bytes (`u64` checkpoint id).
    Barrier = 4,
    /// `5`: end of input, no body.
    EndOfInput = 5,
}

impl FrameKind {
    /// The kind byte written in the frame header.
    #[must_use]
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The kind of a frame header's kind byte; `None` for a byte that names
    /// no kind (0 and 6–255 in version 1).
    #[must_use]
    pub const fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => Self::Batch,
            2 => Self::Watermark,
            3 => Self::WatermarkStatus,
            4 => Self::Barrier,
            5 => Self::EndOfInput,
            _ => return None,
        })
    }

    /// The kind of frame that carries `element`.
    #[must_use]
    pub const fn of(element: &StreamElement) -> Self {
        match element {
            StreamElement::Batch(_) => Self::Batch,
            StreamElement::Watermark(_) => Self::Watermark,
            StreamElement::WatermarkStatus(_) => Self::WatermarkStatus,
            StreamElement::Barrier(_) => Self::Barrier,
            StreamElement::EndOfInput => Self::EndOfInput,
        }
    }

    /// The body length in bytes every frame of this kind has, or `None` for
    /// a batch, whose length depends on its records.
    #[must_use]
    pub const fn fixed_body_len(self) -> Option<usize> {
        match self {
            Self::Batch => None,
            Self::Watermark | Self::Barrier => Some(8),
            Self::WatermarkStatus => Some(1),
            Self::EndOfInput => Some(0),
        }
    }
}

/// Lower-case words, as in error messages: `batch`, `watermark`,
/// `watermark status`, `barrier`, `end of input`.
impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Batch => "batch",
            Self::Watermark => "watermark",
            Self::WatermarkStatus => "watermark status",
            Self::Barrier => "barrier",
            Self::EndOfInput => "end of input",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_byte_maps_back_to_its_kind() {
        for kind in [
            FrameKind::Batch,
            FrameKind::Watermark,
            FrameKind::WatermarkStatus,
            FrameKind::Barrier,
            FrameKind::EndOfInput,
        ] {
            assert_eq!(FrameKind::from_code(kind.code()), Some(kind));
        }
        assert_eq!(FrameKind::from_code(0), None);
        assert_eq!(FrameKind::from_code(6), None);
        assert_eq!(FrameKind::from_code(255), None);
    }

    #[test]
    fn the_preamble_and_header_sizes_match_the_documented_layout() {
        assert_eq!(PREAMBLE_LEN, 10);
        assert_eq!(FRAME_HEADER_LEN, 5);
        assert_eq!(MIN_RECORD_LEN, 17);
        assert_eq!(&MAGIC, b"WEIRDATA");
    }
}
