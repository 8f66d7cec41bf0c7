//! Portable scalar dot products: the reference the SIMD kernels must equal.
//!
//! Each function takes one weight row and one activation row (in the weight type's
//! [`ActType`](crate::quant::ActType)) as bytes and returns their dot product. Integer
//! sums inside a block are exact; blocks are combined in f32 in block order. The float dot
//! products use a fixed 16-lane order ([`lane_dot`]). Every SIMD kernel reproduces these
//! operations exactly, so every kernel table computes the same bits.

// Index loops mirror the GGML reference code block for block, which keeps them auditable.
#![allow(clippy::needless_range_loop)]

use crate::quant::*;

/// Q4_0 weights · Q8_0 activations.
pub fn dot_q4_0(w: &[u8], a: &[u8]) -> f32 {
    let w: &[BlockQ4_0] = cast_blocks(w).unwrap();
    let a: &[BlockQ8_0A] = cast_blocks(a).unwrap();
    let mut acc = 0f32;
    for (bw, ba) in w.iter().zip(a) {
        let mut s = 0i32;
        for j in 0..16 {
            s += ((bw.qs[j] & 0xF) as i32 - 8) * ba.qs[j] as i32;
            s += ((bw.qs[j] >> 4) as i32 - 8) * ba.qs[j + 16] as i32;
        }
        acc += f16_to_f32(bw.d) * ba.d * s as f32;
    }
    acc
}

/// Q4_1 weights · Q8_1 activations.
pub fn dot_q4_1(w: &[u8], a: &[u8]) -> f32 {
    let w: &[BlockQ4_1] = cast_blocks(w).unwrap();
    let a: &[BlockQ8_1A] = cast_blocks(a).unwrap();
    let mut acc = 0f32;
    let mut mins = 0f32;
    for (bw, ba) in w.iter().zip(a) {
        let mut s = 0i32;
        for j in 0..16 {
            s += (bw.qs[j] & 0xF) as i32 * ba.qs[j] as i32;
            s += (bw.qs[j] >> 4) as i32 * ba.qs[j + 16] as i32;
        }
        acc += f16_to_f32(bw.d) * ba.d * s as f32;
        mins += f16_to_f32(bw.m) * ba.s;
    }
    acc + mins
}

/// Q5_0 weights · Q8_0 activations.
pub fn dot_q5_0(w: &[u8], a: &[u8]) -> f32 {
    let w: &[BlockQ5_0] = cast_blocks(w).unwrap();
    let a: &[BlockQ8_0A] = cast_blocks(a).unwrap();
    let mut acc = 0f32;
    for (bw, ba) in w.iter().zip(a) {
        let qh = u32::from_le_bytes(bw.qh);
        let mut s = 0i32;
        for j in 0..16 {
            let h0 = (((qh >> j) << 4) & 0x10) as u8;
            let h1 = ((qh >> (j + 12)) & 0x10) as u8;
            s += (((bw.qs[j] & 0xF) | h0) as i32 - 16) * ba.qs[j] as i32;
            s += (((bw.qs[j] >> 4) | h1) as i32 - 16) * ba.qs[j + 16] as i32;
        }
        acc += f16_to_f32(bw.d) * ba.d * s as f32;
    }
    acc
}

/// Q8_0 weights · Q8_0 activations.
pub fn dot_q8_0(w: &[u8], a: &[u8]) -> f32 {
    let w: &[BlockQ8_0] = cast_blocks(w).unwrap();
    let a: &[BlockQ8_0A] = cast_blocks(a).unwrap();
    let mut acc = 0f32;
    for (bw, ba) in w.iter().zip(a) {
        let s: i32 = bw.qs.iter().zip(&ba.qs).map(|(&x, &y)| x as i32 * y as i32).sum();
        acc += f16_to_f32(bw.d) * ba.d * s as f32;
    }
    acc
}

/// Q4_K weights · Q8_K activations.
pub fn dot_q4k(w: &[u8], a: &[u8]) -> f32 {
    let w: &[BlockQ4K] = cast_blocks(w).unwrap();
    let a: &[BlockQ8K] = cast_blocks(a).unwrap();
    let mut acc = 0f32;
    for (bw, ba) in w.iter().zip(a) {
        let mut sum = 0i32;
        let mut mins = 0i32;
        for j in 0..4 {
            let (s1, m1) = q4k_scale_min(2 * j, &bw.scales);
            let (s2, m2) = q4k_scale_min(2 * j + 1, &bw.scales);
            let q = &bw.qs[32 * j..32 * j + 32];
            let (mut p1, mut p2) = (0i32, 0i32);
            for l in 0..32 {
                p1 += (q[l] & 0xF) as i32 * ba.qs[64 * j + l] as i32;
                p2 += (q[l] >> 4) as i32 * ba.qs[64 * j + 32 + l] as i32;
            }
            sum += p1 * s1 as i32 + p2 * s2 as i32;
            let b1 = ba.bsums[4 * j] as i32 + ba.bsums[4 * j + 1] as i32;
            let b2 = ba.bsums[4 * j + 2] as i32 + ba.bsums[4 * j + 3] as i32;
            mins += m1 as i32 * b1 + m2 as i32 * b2;
        }
        acc += f16_to_f32(bw.d) * ba.d * sum as f32 - f16_to_f32(bw.dmin) * ba.d * mins as f32;
    }
    acc
}

/// Q6_K weights · Q8_K activations.
pub fn dot_q6k(w: &[u8], a: &[u8]) -> f32 {
    let w: &[BlockQ6K] = cast_blocks(w).unwrap();
    let a: &[BlockQ8K] = cast_blocks(a).unwrap();
    let mut acc = 0f32;
    for (bw, ba) in w.iter().zip(a) {
        let mut sum = 0i32;
        for h in 0..2 {
            let ql = &bw.ql[64 * h..];
            let qh = &bw.qh[32 * h..];
            let sc = &bw.scales[8 * h..];
            let q8 = &ba.qs[128 * h..];
            let mut p = [0i32; 8];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                p[is] += q1 * q8[l] as i32;
                p[is + 2] += q2 * q8[l + 32] as i32;
                p[is + 4] += q3 * q8[l + 64] as i32;
                p[is + 6] += q4 * q8[l + 96] as i32;
            }
            for k in 0..8 {
                sum += p[k] * sc[k] as i32;
            }
        }
        acc += f16_to_f32(bw.d) * ba.d * sum as f32;
    }
    acc
}

/// F32 weights · f32 activations (in [`lane_dot`]'s order).
pub fn dot_f32(w: &[u8], a: &[u8]) -> f32 {
    let w: &[f32] = cast_blocks(w).unwrap();
    let a: &[f32] = cast_blocks(a).unwrap();
    lane_dot(w.len().min(a.len()), |i| w[i] * a[i])
}

/// F16 weights · f32 activations (in [`lane_dot`]'s order).
pub fn dot_f16(w: &[u8], a: &[u8]) -> f32 {
    let w: &[u16] = cast_blocks(w).unwrap();
    let a: &[f32] = cast_blocks(a).unwrap();
    lane_dot(w.len().min(a.len()), |i| f16_to_f32(w[i]) * a[i])
}

/// Plain f32 dot product (attention scores), in [`lane_dot`]'s order.
pub fn dot_f32_slices(a: &[f32], b: &[f32]) -> f32 {
    lane_dot(a.len().min(b.len()), |i| a[i] * b[i])
}

/// Σ `prod(i)` for `i < n` in the order every float dot product of this crate uses, so that
/// the SIMD versions give the same bits: 16 running sums (element `i` of each whole group of
/// 16 goes to sum `i % 16`), combined as `v[j] = s[j] + s[j + 8]`, `u[k] = v[k] + v[k + 4]`,
/// `(u[0] + u[2]) + (u[1] + u[3])`, then the remaining elements added one by one. No fused
/// multiply-adds.
#[inline(always)]
pub fn lane_dot(n: usize, prod: impl Fn(usize) -> f32) -> f32 {
    let mut s = [0f32; 16];
    let mut i = 0;
    while i + 16 <= n {
        for (j, sj) in s.iter_mut().enumerate() {
            *sj += prod(i + j);
        }
        i += 16;
    }
    let v: [f32; 8] = std::array::from_fn(|j| s[j] + s[j + 8]);
    let u: [f32; 4] = std::array::from_fn(|k| v[k] + v[k + 4]);
    let mut r = (u[0] + u[2]) + (u[1] + u[3]);
    while i < n {
        r += prod(i);
        i += 1;
    }
    r
}
