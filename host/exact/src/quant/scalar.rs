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
        // The super-block formats go through `q4k_term` / `q6k_term`.
        WeightFormat::Q4_K | WeightFormat::Q6_K => 0,
    }
}

/// The 6-bit scale and min of `Q4_K` sub-block `s` (ggml's `get_scale_min_k4`).
#[inline(always)]
pub(super) fn q4k_scale_min(scales: &[u8], s: usize) -> (i64, i64) {
    if s < 4 {
        ((scales[s] & 63) as i64, (scales[s + 4] & 63) as i64)
    } else {
        let sc = (scales[s + 4] & 0x0f) | (scales[s - 4] >> 6) << 4;
        let m = (scales[s + 4] >> 4) | (scales[s] >> 6) << 4;
        (sc as i64, m as i64)
    }
}

/// `mant(scale) · inner · 2^(e(scale) + kmin − 16)` in Q87.40, exact; `|inner| < 2^53`.
#[inline(always)]
fn super_term(scale_bits: u16, inner: i64, kmin: u8) -> i128 {
    let (m, e) = f16_parts_unchecked(scale_bits);
    let sh = (e + kmin as i32 + SHIFT_BASE) as u32;
    (inner as i128 * m as i128) << sh
}

/// The exact contribution of one `Q4_K` super-block given `isums[s] = Σ n_l·q_l` per sub-block.
///
/// The eight sub-blocks share `d` and `dmin`, so their integer parts are first summed exactly in
/// `i64` relative to the smallest activation shift `kmin` of the eight (each part is below
/// `2^22 · 2^25`), leaving two `i128` terms per super-block.
#[inline(always)]
pub(super) fn q4k_term(w: &[u8], a: &[Q8Block], isums: &[i32; 8]) -> i128 {
    let kmin = a.iter().map(|b| b.shift).min().unwrap_or(0);
    let (mut scaled, mut mins) = (0i64, 0i64);
    for (s, (&isum, blk)) in isums.iter().zip(a).enumerate() {
        let (sc, m) = q4k_scale_min(&w[4..16], s);
        let rel = (blk.shift - kmin) as u32;
        scaled += (sc * isum as i64) << rel;
        mins += (m * blk.sum as i64) << rel;
    }
    super_term(f16_at(w, 0), scaled, kmin) - super_term(f16_at(w, 2), mins, kmin)
}

/// The exact contribution of one `Q6_K` super-block given `isums[t] = Σ (c_l − 32)·q_l` per
/// 16-element group `t` (group `t` lies in activation block `t / 2`); summed in `i64` relative
/// to the smallest activation shift as for `Q4_K` (each part is below `2^23 · 2^25`).
#[inline(always)]
pub(super) fn q6k_term(w: &[u8], a: &[Q8Block], isums: &[i32; 16]) -> i128 {
    let kmin = a.iter().map(|b| b.shift).min().unwrap_or(0);
    let mut inner = 0i64;
    for (t, &isum) in isums.iter().enumerate() {
        let sc = w[192 + t] as i8 as i64;
        inner += (sc * isum as i64) << (a[t / 2].shift - kmin) as u32;
    }
    super_term(f16_at(w, 208), inner, kmin)
}

fn q4k_isums(w: &[u8], a: &[Q8Block]) -> [i32; 8] {
    let qs = &w[16..144];
    let mut out = [0i32; 8];
    for (s, (o, blk)) in out.iter_mut().zip(a).enumerate() {
        let chunk = &qs[32 * (s / 2)..32 * (s / 2) + 32];
        let shift = 4 * (s % 2);
        *o = chunk
            .iter()
            .zip(&blk.qs)
            .map(|(&b, &q)| ((b >> shift) & 15) as i32 * q as i32)
            .sum();
    }
    out
}

fn q6k_isums(w: &[u8], a: &[Q8Block]) -> [i32; 16] {
    let (ql, qh) = (&w[0..128], &w[128..192]);
    let mut out = [0i32; 16];
    for (b, blk) in a.iter().enumerate() {
        let (h, g) = (b / 4, b % 4);
        for l in 0..QK {
            let lo = (ql[64 * h + 32 * (g % 2) + l] >> (4 * (g / 2))) & 15;
            let hi = (qh[32 * h + l] >> (2 * g)) & 3;
            let c = (lo | hi << 4) as i32 - 32;
            out[2 * b + l / 16] += c * blk.qs[l] as i32;
        }
    }
    out
}

/// `Σ n_j · q_j` over the 32 nibbles stored in `qs` (low nibbles first).
#[inline(always)]
fn nibble_sum(qs: &[u8], a: &Q8Block) -> i32 {
    let (lo, hi) = a.qs.split_at(QK / 2);
    let mut s = 0i32;
    for ((&b, &x), &y) in qs.iter().zip(lo).zip(hi) {
        s += (b & 0x0f) as i32 * x as i32 + (b >> 4) as i32 * y as i32;
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
            let (x_lo, x_hi) = a.qs.split_at(QK / 2);
            let mut s = 0i32;
            for (j, ((&b, &x), &y)) in w[6..22].iter().zip(x_lo).zip(x_hi).enumerate() {
                let lo = (b & 0x0f) as u32 | ((qh >> j) & 1) << 4;
                let hi = (b >> 4) as u32 | ((qh >> (j + 16)) & 1) << 4;
                s += lo as i32 * x as i32 + hi as i32 * y as i32;
            }
            s
        }
        WeightFormat::Q8_0 => w[2..34]
            .iter()
            .zip(&a.qs)
            .map(|(&b, &q)| b as i8 as i32 * q as i32)
            .sum(),
        // The super-block formats go through `q4k_isums` / `q6k_isums`.
        WeightFormat::Q4_K | WeightFormat::Q6_K => 0,
    }
}

/// The exact dot product of a run of weight blocks with as many activation blocks.
pub(super) fn dot(format: WeightFormat, w: &[u8], x: &[Q8Block]) -> i128 {
    let bb = format.block_bytes();
    match format {
        WeightFormat::Q4_K => w
            .chunks_exact(bb)
            .zip(x.chunks_exact(8))
            .map(|(b, a)| q4k_term(b, a, &q4k_isums(b, a)))
            .sum(),
        WeightFormat::Q6_K => w
            .chunks_exact(bb)
            .zip(x.chunks_exact(8))
            .map(|(b, a)| q6k_term(b, a, &q6k_isums(b, a)))
            .sum(),
        _ => w
            .chunks_exact(bb)
            .zip(x)
            .map(|(block, a)| block_term(format, block, block_isum(format, block, a), a))
            .sum(),
    }
}
