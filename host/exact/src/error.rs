//! The crate's error type.
//!
//! The crate has no dependencies, so the `Display` and `Error` impls are written by hand;
//! every message says what was wrong and what the caller should do about it.

use std::fmt;

/// Everything that can go wrong when calling into an exact island.
///
/// Hot paths validate their inputs once (for example [`crate::QuantMatrix::new`] checks every
/// block scale when the weights are loaded) so that the per-token calls only check slice lengths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExactError {
    /// Two slices that must have related lengths do not.
    LengthMismatch {
        /// Which argument was wrong.
        what: &'static str,
        /// The length the function needed.
        expected: usize,
        /// The length it was given.
        actual: usize,
    },
    /// A dimension is not a multiple of the block size the format needs.
    NotBlockAligned {
        /// Which dimension.
        what: &'static str,
        /// Its value.
        len: usize,
        /// The block size it must be a multiple of.
        block: usize,
    },
    /// A dimension is zero or larger than the island supports.
    UnsupportedDimension {
        /// Which dimension.
        what: &'static str,
        /// Its value.
        len: usize,
        /// What the island accepts.
        supported: &'static str,
    },
    /// A floating-point input (a weight scale, an epsilon, a RoPE base) is NaN, infinite or
    /// does not fit the fixed-point format it must be converted to.
    UnrepresentableFloat {
        /// Which value.
        what: &'static str,
        /// Its raw IEEE-754 bits (f16 or f32, zero-extended).
        bits: u32,
    },
    /// A quantized weight block has a NaN or infinite f16 scale.
    NonFiniteScale {
        /// The row of the matrix.
        row: usize,
        /// The block within the row.
        block: usize,
    },
    /// A ring element has no inverse (one of its NTT coefficients is zero modulo a prime).
    NotInvertible,
}

impl fmt::Display for ExactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LengthMismatch { what, expected, actual } => write!(
                f,
                "{what} has length {actual} but {expected} was needed; pass slices of matching lengths"
            ),
            Self::NotBlockAligned { what, len, block } => write!(
                f,
                "{what} = {len} is not a multiple of the block size {block}; this format needs whole blocks"
            ),
            Self::UnsupportedDimension { what, len, supported } => write!(
                f,
                "{what} = {len} is not supported (supported: {supported})"
            ),
            Self::UnrepresentableFloat { what, bits } => write!(
                f,
                "{what} (float bits {bits:#010x}) is NaN, infinite or out of the fixed-point range; check the model metadata"
            ),
            Self::NonFiniteScale { row, block } => write!(
                f,
                "weight row {row}, block {block} has a NaN or infinite f16 scale; the model file is corrupt"
            ),
            Self::NotInvertible => write!(
                f,
                "the ring element is not invertible (an NTT coefficient is zero); derive another key"
            ),
        }
    }
}

impl std::error::Error for ExactError {}

/// Returns an error unless `actual == expected`.
pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    actual: usize,
) -> Result<(), ExactError> {
    if expected == actual {
        Ok(())
    } else {
        Err(ExactError::LengthMismatch {
            what,
            expected,
            actual,
        })
    }
}
