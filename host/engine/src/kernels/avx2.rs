//! AVX2 + FMA dot products (x86_64). Each is bit-identical to its [`scalar`](super::scalar)
//! reference: block sums are exact integers, and the f32 arithmetic is the reference's, in
//! its order (the f32/f16 ones use the reference's 16-lane order and no fused multiply-add).
//! The unit tests in `kernels/mod.rs` check this.
//!
//! The safe wrappers may only be called after `avx2` and `fma` were detected at run time;
//! [`Kernels::detect`](super::Kernels::detect) guarantees that.

#![allow(unsafe_op_in_unsafe_fn)]

use crate::quant::*;
use std::arch::x86_64::*;

/// f16 bits → f32 with the F16C instruction (the `half` crate would call out of line).
#[inline(always)]
unsafe fn fp16(x: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(x as i32)))
}

#[inline(always)]
unsafe fn hsum_f32(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps(v, 1);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let lo = _mm256_castsi256_si128(v);
    let hi = _mm256_extracti128_si256(v, 1);
    let s = _mm_add_epi32(lo, hi);
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// 16 bytes of nibbles → 32 bytes: low nibbles in lanes 0..16, high nibbles in lanes 16..32.
#[inline(always)]
unsafe fn nibbles_32(p: *const u8) -> __m256i {
    let x = _mm_loadu_si128(p as *const __m128i);
    let hi = _mm_srli_epi16(x, 4);
    let v = _mm256_insertf128_si256(_mm256_castsi128_si256(x), hi, 1);
    _mm256_and_si256(v, _mm256_set1_epi8(0x0F))
}

/// Sum of products of unsigned bytes `u` and signed bytes `s`, as 8 i32 lanes.
#[inline(always)]
unsafe fn mul_sum_us8(u: __m256i, s: __m256i) -> __m256i {
    let p = _mm256_maddubs_epi16(u, s);
    _mm256_madd_epi16(p, _mm256_set1_epi16(1))
}

/// Sum of products of signed bytes `x` and `y`, as 8 i32 lanes.
#[inline(always)]
unsafe fn mul_sum_i8(x: __m256i, y: __m256i) -> __m256i {
    let ax = _mm256_sign_epi8(x, x);
    let sy = _mm256_sign_epi8(y, x);
    mul_sum_us8(ax, sy)
}

/// 32 bits → 32 bytes, 0xFF where the bit is set.
#[inline(always)]
unsafe fn bytes_from_bits_32(x: u32) -> __m256i {
    let shuf = _mm256_set_epi64x(
        0x0303030303030303,
        0x0202020202020202,
        0x0101010101010101,
        0x0000000000000000,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x as i32), shuf);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0_impl(w: &[BlockQ4_0], a: &[BlockQ8_0A]) -> f32 {
    let mut acc = 0f32;
    for (bw, ba) in w.iter().zip(a) {
        let x = _mm256_sub_epi8(nibbles_32(bw.qs.as_ptr()), _mm256_set1_epi8(8));
        let y = _mm256_loadu_si256(ba.qs.as_ptr() as *const __m256i);
        acc += fp16(bw.d) * ba.d * hsum_i32(mul_sum_i8(x, y)) as f32;
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1_impl(w: &[BlockQ4_1], a: &[BlockQ8_1A]) -> f32 {
    let mut acc = 0f32;
    let mut mins = 0f32;
    for (bw, ba) in w.iter().zip(a) {
        let x = nibbles_32(bw.qs.as_ptr());
        let y = _mm256_loadu_si256(ba.qs.as_ptr() as *const __m256i);
        acc += fp16(bw.d) * ba.d * hsum_i32(mul_sum_us8(x, y)) as f32;
        mins += fp16(bw.m) * ba.s;
    }
    acc + mins
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q5_0_impl(w: &[BlockQ5_0], a: &[BlockQ8_0A]) -> f32 {
    let mut acc = 0f32;
    for (bw, ba) in w.iter().zip(a) {
        let lo = nibbles_32(bw.qs.as_ptr());
        let hi = _mm256_andnot_si256(
            bytes_from_bits_32(u32::from_le_bytes(bw.qh)),
            _mm256_set1_epi8(0xF0u8 as i8),
        );
        let x = _mm256_or_si256(lo, hi);
        let y = _mm256_loadu_si256(ba.qs.as_ptr() as *const __m256i);
        acc += fp16(bw.d) * ba.d * hsum_i32(mul_sum_i8(x, y)) as f32;
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0_impl(w: &[BlockQ8_0], a: &[BlockQ8_0A]) -> f32 {
    let mut acc = 0f32;
    for (bw, ba) in w.iter().zip(a) {
        let x = _mm256_loadu_si256(bw.qs.as_ptr() as *const __m256i);
        let y = _mm256_loadu_si256(ba.qs.as_ptr() as *const __m256i);
        acc += fp16(bw.d) * ba.d * hsum_i32(mul_sum_i8(x, y)) as f32;
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4k_impl(w: &[BlockQ4K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0f32;
    let m4 = _mm256_set1_epi8(0x0F);
    for (bw, ba) in w.iter().zip(a) {
        let mut sumi = _mm256_setzero_si256();
        let mut mins = 0i32;
        for j in 0..4 {
            let (s1, m1) = q4k_scale_min(2 * j, &bw.scales);
            let (s2, m2) = q4k_scale_min(2 * j + 1, &bw.scales);
            let q = _mm256_loadu_si256(bw.qs.as_ptr().add(32 * j) as *const __m256i);
            let lo = _mm256_and_si256(q, m4);
            let hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            let y1 = _mm256_loadu_si256(ba.qs.as_ptr().add(64 * j) as *const __m256i);
            let y2 = _mm256_loadu_si256(ba.qs.as_ptr().add(64 * j + 32) as *const __m256i);
            let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, y1), _mm256_set1_epi16(s1 as i16));
            let p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, y2), _mm256_set1_epi16(s2 as i16));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(p1, p2));
            let b1 = ba.bsums[4 * j] as i32 + ba.bsums[4 * j + 1] as i32;
            let b2 = ba.bsums[4 * j + 2] as i32 + ba.bsums[4 * j + 3] as i32;
            mins += m1 as i32 * b1 + m2 as i32 * b2;
        }
        acc += fp16(bw.d) * ba.d * hsum_i32(sumi) as f32 - fp16(bw.dmin) * ba.d * mins as f32;
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q6k_impl(w: &[BlockQ6K], a: &[BlockQ8K]) -> f32 {
    let mut acc = 0f32;
    let m4 = _mm256_set1_epi8(0x0F);
    let m3 = _mm256_set1_epi8(0x03);
    let m32 = _mm256_set1_epi8(32);
    for (bw, ba) in w.iter().zip(a) {
        let mut sumi = _mm256_setzero_si256();
        for h in 0..2 {
            let ql0 = _mm256_loadu_si256(bw.ql.as_ptr().add(64 * h) as *const __m256i);
            let ql1 = _mm256_loadu_si256(bw.ql.as_ptr().add(64 * h + 32) as *const __m256i);
            let qh = _mm256_loadu_si256(bw.qh.as_ptr().add(32 * h) as *const __m256i);
            let q1 = _mm256_or_si256(
                _mm256_and_si256(ql0, m4),
                _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4),
            );
            let q2 = _mm256_or_si256(
                _mm256_and_si256(ql1, m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4),
            );
            let q3 = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4),
            );
            let q4 = _mm256_or_si256(
                _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4),
            );
            let sc = &bw.scales[8 * h..8 * h + 8];
            for (k, q) in [q1, q2, q3, q4].into_iter().enumerate() {
                let y = _mm256_loadu_si256(ba.qs.as_ptr().add(128 * h + 32 * k) as *const __m256i);
                let p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y), _mm256_maddubs_epi16(m32, y));
                let scv = _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1] as i16), _mm_set1_epi16(sc[2 * k] as i16));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scv));
            }
        }
        acc += fp16(bw.d) * ba.d * hsum_i32(sumi) as f32;
    }
    acc
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32_impl(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        let p0 = _mm256_mul_ps(_mm256_loadu_ps(a.as_ptr().add(i)), _mm256_loadu_ps(b.as_ptr().add(i)));
        let p1 = _mm256_mul_ps(
            _mm256_loadu_ps(a.as_ptr().add(i + 8)),
            _mm256_loadu_ps(b.as_ptr().add(i + 8)),
        );
        acc0 = _mm256_add_ps(acc0, p0);
        acc1 = _mm256_add_ps(acc1, p1);
        i += 16;
    }
    let mut s = hsum_f32(_mm256_add_ps(acc0, acc1));
    while i < n {
        s += a[i] * b[i];
        i += 1;
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_impl(w: &[u16], a: &[f32]) -> f32 {
    let n = w.len().min(a.len());
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 16 <= n {
        let h0 = _mm_loadu_si128(w.as_ptr().add(i) as *const __m128i);
        let h1 = _mm_loadu_si128(w.as_ptr().add(i + 8) as *const __m128i);
        let p0 = _mm256_mul_ps(_mm256_cvtph_ps(h0), _mm256_loadu_ps(a.as_ptr().add(i)));
        let p1 = _mm256_mul_ps(_mm256_cvtph_ps(h1), _mm256_loadu_ps(a.as_ptr().add(i + 8)));
        acc0 = _mm256_add_ps(acc0, p0);
        acc1 = _mm256_add_ps(acc1, p1);
        i += 16;
    }
    let mut s = hsum_f32(_mm256_add_ps(acc0, acc1));
    while i < n {
        s += fp16(w[i]) * a[i];
        i += 1;
    }
    s
}

macro_rules! wrap {
    ($name:ident, $impl:ident, $w:ty, $a:ty) => {
        /// Safe entry point; requires AVX2+FMA (checked by `Kernels::detect`).
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
wrap!(dot_q5_0, q5_0_impl, BlockQ5_0, BlockQ8_0A);
wrap!(dot_q8_0, q8_0_impl, BlockQ8_0, BlockQ8_0A);
wrap!(dot_q4k, q4k_impl, BlockQ4K, BlockQ8K);
wrap!(dot_q6k, q6k_impl, BlockQ6K, BlockQ8K);
wrap!(dot_f32, f32_impl, f32, f32);
wrap!(dot_f16, f16_impl, u16, f32);

/// Plain f32 dot product; requires AVX2+FMA.
pub fn dot_f32_slices(a: &[f32], b: &[f32]) -> f32 {
    // SAFETY: only installed after runtime feature detection.
    unsafe { f32_impl(a, b) }
}
