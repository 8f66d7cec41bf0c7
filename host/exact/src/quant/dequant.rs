//! Exact dequantization of weight rows (embedding lookups, and a reference for the kernels).
//!
//! Every element of every supported format is `mant·2^e·c (+ mant'·2^e'·o)` with `e, e' >= −24`,
//! so it is an exact integer in Q24 ([`DEQUANT_FRAC_BITS`]).

use super::{WeightFormat, QK};
use crate::fixed::{f16_parts_unchecked, round_shift_i64, ACT_FRAC_BITS};

/// Fractional bits of an exactly dequantized weight (`i64`, Q39.24).
pub const DEQUANT_FRAC_BITS: u32 = 24;

/// `scale · c` in Q24, exact.
#[inline]
fn scaled(scale_bits: u16, c: i64) -> i64 {
    let (m, e) = f16_parts_unchecked(scale_bits);
    (m as i64 * c) << (e + DEQUANT_FRAC_BITS as i32) as u32
}

#[inline]
fn f16_at(w: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([w[off], w[off + 1]])
}

/// Dequantizes one weight block into `out` (`format.block_len()` elements, Q24).
pub(super) fn block(format: WeightFormat, w: &[u8], out: &mut [i64]) {
    let nib = |qs: &[u8], j: usize| if j < QK / 2 { qs[j] & 15 } else { qs[j - QK / 2] >> 4 } as i64;
    match format {
        WeightFormat::Q4_0 => {
            for (j, o) in out.iter_mut().enumerate() {
                *o = scaled(f16_at(w, 0), nib(&w[2..18], j) - 8);
            }
        }
        WeightFormat::Q4_1 => {
            let m = scaled(f16_at(w, 2), 1);
            for (j, o) in out.iter_mut().enumerate() {
                *o = scaled(f16_at(w, 0), nib(&w[4..20], j)) + m;
            }
        }
        WeightFormat::Q5_0 => {
            let qh = u32::from_le_bytes([w[2], w[3], w[4], w[5]]);
            for (j, o) in out.iter_mut().enumerate() {
                let c = nib(&w[6..22], j) | (((qh >> j) & 1) << 4) as i64;
                *o = scaled(f16_at(w, 0), c - 16);
            }
        }
        WeightFormat::Q8_0 => {
            for (j, o) in out.iter_mut().enumerate() {
                *o = scaled(f16_at(w, 0), w[2 + j] as i8 as i64);
            }
        }
        WeightFormat::Q4_K => {
            for (s, chunk) in out.chunks_exact_mut(QK).enumerate() {
                let (sc, m) = super::scalar::q4k_scale_min(&w[4..16], s);
                let min = scaled(f16_at(w, 2), m);
                let qs = &w[16 + 32 * (s / 2)..16 + 32 * (s / 2) + 32];
                for (o, &b) in chunk.iter_mut().zip(qs) {
                    *o = scaled(f16_at(w, 0), sc * ((b >> (4 * (s % 2))) & 15) as i64) - min;
                }
            }
        }
        WeightFormat::Q6_K => {
            for (e, o) in out.iter_mut().enumerate() {
                let (h, g, l) = (e / 128, (e % 128) / 32, e % 32);
                let lo = (w[64 * h + 32 * (g % 2) + l] >> (4 * (g / 2))) & 15;
                let hi = (w[128 + 32 * h + l] >> (2 * g)) & 3;
                let c = (lo | hi << 4) as i64 - 32;
                let sc = w[192 + 8 * h + 2 * g + l / 16] as i8 as i64;
                *o = scaled(f16_at(w, 208), sc * c);
            }
        }
    }
}

/// Rounds a Q24 weight to a Q15.16 activation (ties away from zero, saturating).
#[inline]
pub(super) fn to_act(v: i64) -> i32 {
    round_shift_i64(v, DEQUANT_FRAC_BITS - ACT_FRAC_BITS).clamp(i32::MIN as i64, i32::MAX as i64)
        as i32
}
