//! aarch64 Advanced SIMD (NEON) dot products. Each is bit-identical to its
//! [`scalar`](super::scalar) reference (exact integer block sums, then the reference's f32
//! operations in its order); the unit tests in `kernels/mod.rs` check this on aarch64.
//!
//! Only base NEON is used (`vmull_s8` + pairwise widening adds, no `dotprod` extension), so
//! every aarch64 CPU runs these. Formats without a function here use the scalar reference.

#![allow(unsafe_op_in_unsafe_fn)]

use crate::quant::*;
use std::arch::aarch64::*;

/// Sum of the 16 products of signed bytes `x` and `y`, as 4 i32 lanes.
#[inline(always)]
unsafe fn dot16(x: int8x16_t, y: int8x16_t) -> int32x4_t {
    let lo = vmull_s8(vget_low_s8(x), vget_low_s8(y));
    let hi = vmull_high_s8(x, y);
    vaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi))
}

/// 16 bytes of nibbles → (low nibbles, high nibbles) as bytes 0..15.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> (int8x16_t, int8x16_t) {
    let v = vld1q_u8(p);
    (
        vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))),
        vreinterpretq_s8_u8(vshrq_n_u8(v, 4)),
    )
}

#[target_feature(enable = "neon")]
unsafe fn q4_0_impl(w: &[BlockQ4_0], a: &[BlockQ8_0A]) -> f32 {
    let mut acc = 0f32;
    let eight = vdupq_n_s8(8);
    for (bw, ba) in w.iter().zip(a) {
        let (lo, hi) = nibbles(bw.qs.as_ptr());
        let y0 = vld1q_s8(ba.qs.as_ptr());
        let y1 = vld1q_s8(ba.qs.as_ptr().add(16));
        let s = vaddq_s32(dot16(vsubq_s8(lo, eight), y0), dot16(vsubq_s8(hi, eight), y1));
        acc += f16_to_f32(bw.d) * ba.d * vaddvq_s32(s) as f32;
    }
    acc
}

#[target_feature(enable = "neon")]
unsafe fn q4_1_impl(w: &[BlockQ4_1], a: &[BlockQ8_1A]) -> f32 {
    let mut acc = 0f32;
    let mut mins = 0f32;
    for (bw, ba) in w.iter().zip(a) {
        let (lo, hi) = nibbles(bw.qs.as_ptr());
        let y0 = vld1q_s8(ba.qs.as_ptr());
        let y1 = vld1q_s8(ba.qs.as_ptr().add(16));
        let s = vaddq_s32(dot16(lo, y0), dot16(hi, y1));
        acc += f16_to_f32(bw.d) * ba.d * vaddvq_s32(s) as f32;
        mins += f16_to_f32(bw.m) * ba.s;
    }
    acc + mins
}

#[target_feature(enable = "neon")]
unsafe fn q8_0_impl(w: &[BlockQ8_0], a: &[BlockQ8_0A]) -> f32 {
    let mut acc = 0f32;
    for (bw, ba) in w.iter().zip(a) {
        let x0 = vld1q_s8(bw.qs.as_ptr());
        let x1 = vld1q_s8(bw.qs.as_ptr().add(16));
        let y0 = vld1q_s8(ba.qs.as_ptr());
        let y1 = vld1q_s8(ba.qs.as_ptr().add(16));
        let s = vaddq_s32(dot16(x0, y0), dot16(x1, y1));
        acc += f16_to_f32(bw.d) * ba.d * vaddvq_s32(s) as f32;
    }
    acc
}

#[target_feature(enable = "neon")]
unsafe fn f32_impl(a: &[f32], b: &[f32]) -> f32 {
    // The 16 running sums of `scalar::lane_dot`, four per register, combined in its order.
    let n = a.len().min(b.len());
    let mut acc = [vdupq_n_f32(0.0); 4];
    let mut i = 0;
    while i + 16 <= n {
        for (k, ak) in acc.iter_mut().enumerate() {
            let p = vmulq_f32(
                vld1q_f32(a.as_ptr().add(i + 4 * k)),
                vld1q_f32(b.as_ptr().add(i + 4 * k)),
            );
            *ak = vaddq_f32(*ak, p);
        }
        i += 16;
    }
    let v_lo = vaddq_f32(acc[0], acc[2]); // v[0..4]
    let v_hi = vaddq_f32(acc[1], acc[3]); // v[4..8]
    let u = vaddq_f32(v_lo, v_hi);
    let mut s = (vgetq_lane_f32(u, 0) + vgetq_lane_f32(u, 2)) + (vgetq_lane_f32(u, 1) + vgetq_lane_f32(u, 3));
    while i < n {
        s += a[i] * b[i];
        i += 1;
    }
    s
}

macro_rules! wrap {
    ($name:ident, $impl:ident, $w:ty, $a:ty) => {
        /// Safe entry point; requires NEON (checked by `Kernels::neon`).
        pub fn $name(w: &[u8], a: &[u8]) -> f32 {
            let w: &[$w] = cast_blocks(w).unwrap();
            let a: &[$a] = cast_blocks(a).unwrap();
            // SAFETY: only installed in a kernel table after runtime feature detection.
            unsafe { $impl(w, a) }
        }
    };
}
wrap!(dot_q4_0, q4_0_impl, BlockQ4_0, BlockQ8_0A);
wrap!(dot_q4_1, q4_1_impl, BlockQ4_1, BlockQ8_1A);
wrap!(dot_q8_0, q8_0_impl, BlockQ8_0, BlockQ8_0A);
wrap!(dot_f32, f32_impl, f32, f32);

/// Plain f32 dot product; requires NEON.
pub fn dot_f32_slices(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: only installed after runtime feature detection.
    unsafe { f32_impl(a, b) }
}
