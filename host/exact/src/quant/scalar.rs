//! The portable scalar reference kernels, and the exact block scaling shared with AVX2.

use super::{Q8Block, WeightFormat, QK};
use crate::fixed::{f16_parts_unchecked, ACT_FRAC_BITS, DOT_FRAC_BITS};

const SHIFT_BASE: i32 = (DOT_FRAC_BITS - ACT_FRAC_BITS) as i32;

#[inline(always)]
fn f16_at(w: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([w[off], w[off + 1]])
}

/// `v · scale · 2^(shift − 16)` as an exact Q87.40 integer (`scale` validated finite).
#[inline(always)]
fn term(scale_bits: u16, v: i64, act_shift: u8) -> i128 {
    let (m, e) = f16_parts_unchecked(scale_bits);
    // e >= -24 and act_shift >= 0, so the shift is never negative: the term is exact.
    let sh = (e + act_shift as i32 + SHIFT_BASE) as u32;
    ((v * m as i64) as i128) << sh
}

/// The exact contribution of one weight block `w` given `isum = Σ code_j · q_j`, where `code_j`
/// is the block's raw stored code (unsigned nibble / 5-bit value, or the signed byte of Q8_0).
#[inline(always)]
pub(super) fn block_term(format: WeightFormat, w: &[u8], isum: i32, a: &Q8Block) -> i128 {
    let isum = isum as i64;
    let sum = a.sum as i64;
    match format {
        WeightFormat::Q4_0 => term(f16_at(w, 0), isum - 8 * sum, a.shift),
        WeightFormat::Q4_1 => term(f16_at(w, 0), isum, a.shift) + term(f16_at(w, 2), sum, a.shift),
        WeightFormat::Q5_0 => term(f16_at(w, 0), isum - 16 * sum, a.shift),
        WeightFormat::Q8_0 => term(f16_at(w, 0), isum, a.shift),
    }
}

/// `Σ n_j · q_j` over the 32 nibbles stored in `qs` (low nibbles first).
#[inline(always)]
fn nibble_sum(qs: &[u8], a: &Q8Block) -> i32 {
    let mut s = 0i32;
    for j in 0..QK / 2 {
        s += (qs[j] & 0x0f) as i32 * a.qs[j] as i32;
        s += (qs[j] >> 4) as i32 * a.qs[j + QK / 2] as i32;
    }
    s
}

/// The raw integer sum of one block (see [`block_term`]).
#[inline(always)]
pub(super) fn block_isum(format: WeightFormat, w: &[u8], a: &Q8Block) -> i32 {
    match format {
        WeightFormat::Q4_0 => nibble_sum(&w[2..18], a),
        WeightFormat::Q4_1 => nibble_sum(&w[4..20], a),
        WeightFormat::Q5_0 => {
            let qh = u32::from_le_bytes([w[2], w[3], w[4], w[5]]);
            let qs = &w[6..22];
            let mut s = 0i32;
            for j in 0..QK / 2 {
                let lo = (qs[j] & 0x0f) as u32 | ((qh >> j) & 1) << 4;
                let hi = (qs[j] >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
                s += lo as i32 * a.qs[j] as i32 + hi as i32 * a.qs[j + QK / 2] as i32;
            }
            s
        }
        WeightFormat::Q8_0 => w[2..34].iter().zip(&a.qs).map(|(&b, &q)| b as i8 as i32 * q as i32).sum(),
    }
}

/// The exact dot product of a run of weight blocks with as many activation blocks.
pub(super) fn dot(format: WeightFormat, w: &[u8], x: &[Q8Block]) -> i128 {
    let bb = format.block_bytes();
    w.chunks_exact(bb)
        .zip(x)
        .map(|(block, a)| block_term(format, block, block_isum(format, block, a), a))
        .sum()
}
