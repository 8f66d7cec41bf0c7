//! AVX2 kernels for the per-block integer sums; bit-identical to the scalar kernels because
//! they compute the same exact integers and share [`super::scalar::block_term`].

#[cfg(target_arch = "x86_64")]
pub(super) use imp::dot;

/// Whether the CPU running this process supports AVX2.
pub(super) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    use super::super::scalar::block_term;
    use super::super::{Q8Block, WeightFormat};

    /// Horizontal sum of eight `i32` lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// `Σ u_j · s_j` as eight `i32` partial sums, for unsigned bytes `u <= 128` and signed bytes
    /// `s` with `|s| <= 127` (so the pairwise `i16` sums cannot saturate: `2·128·127 < 2^15`).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }

    /// The 32 nibbles of 16 bytes as bytes: low nibbles (elements 0..15) then high nibbles.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn nibbles(qs: &[u8]) -> __m256i {
        let qs: &[u8; 16] = qs.try_into().expect("16 bytes of nibbles");
        // SAFETY: `qs` is exactly 16 readable bytes; the load is unaligned.
        let q = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
        let both = _mm256_set_m128i(_mm_srli_epi16::<4>(q), q);
        _mm256_and_si256(both, _mm256_set1_epi8(0x0f))
    }

    /// Bit `j` of `bits` as byte `j` (`0xff` if set, `0` if not), for `j` in 0..32.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn bits_to_bytes(bits: u32) -> __m256i {
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(bits as i32),
            _mm256_setr_epi64x(0, 0x0101_0101_0101_0101, 0x0202_0202_0202_0202, 0x0303_0303_0303_0303),
        );
        let probe = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
        _mm256_cmpeq_epi8(probe, _mm256_set1_epi64x(-1))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn load_act(a: &Q8Block) -> __m256i {
        // SAFETY: `a.qs` is 32 readable bytes; the load is unaligned.
        unsafe { _mm256_loadu_si256(a.qs.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn block_isum(format: WeightFormat, w: &[u8], a: &Q8Block) -> i32 {
        let act = load_act(a);
        let v = match format {
            WeightFormat::Q4_0 => dot_u8_i8(nibbles(&w[2..18]), act),
            WeightFormat::Q4_1 => dot_u8_i8(nibbles(&w[4..20]), act),
            WeightFormat::Q5_0 => {
                let qh = u32::from_le_bytes([w[2], w[3], w[4], w[5]]);
                let high = _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10));
                dot_u8_i8(_mm256_or_si256(nibbles(&w[6..22]), high), act)
            }
            WeightFormat::Q8_0 => {
                let qs: &[u8; 32] = w[2..34].try_into().expect("32 bytes of Q8_0 values");
                // SAFETY: `qs` is exactly 32 readable bytes; the load is unaligned.
                let q = unsafe { _mm256_loadu_si256(qs.as_ptr().cast()) };
                // |q| as unsigned bytes (−128 becomes 128) times act carrying q's sign.
                dot_u8_i8(_mm256_sign_epi8(q, q), _mm256_sign_epi8(act, q))
            }
        };
        hsum(v)
    }

    /// The exact dot product of a run of weight blocks with as many activation blocks.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(in super::super) unsafe fn dot(format: WeightFormat, w: &[u8], x: &[Q8Block]) -> i128 {
        let bb = format.block_bytes();
        let mut acc = 0i128;
        for (block, a) in w.chunks_exact(bb).zip(x) {
            acc += block_term(format, block, block_isum(format, block, a), a);
        }
        acc
    }
}
