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

    use super::super::scalar::{block_term, q4k_term, q6k_term};
    use super::super::{Q8Block, WeightFormat};

    /// Horizontal sum of four `i32` lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum128(s: __m128i) -> i32 {
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// Horizontal sum of eight `i32` lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum(v: __m256i) -> i32 {
        hsum128(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v)))
    }

    /// 32 bytes from a slice of exactly 32 bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn load32(b: &[u8]) -> __m256i {
        let b: &[u8; 32] = b.try_into().expect("32 bytes");
        // SAFETY: `b` is exactly 32 readable bytes; the load is unaligned.
        unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn q4k_isums(w: &[u8], a: &[Q8Block]) -> [i32; 8] {
        let mask = _mm256_set1_epi8(0x0f);
        let mut out = [0i32; 8];
        for (j, pair) in a.chunks_exact(2).enumerate() {
            let q = load32(&w[16 + 32 * j..16 + 32 * j + 32]);
            let lo = _mm256_and_si256(q, mask);
            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), mask);
            out[2 * j] = hsum(dot_u8_i8(lo, load_act(&pair[0])));
            out[2 * j + 1] = hsum(dot_u8_i8(hi, load_act(&pair[1])));
        }
        out
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn q6k_isums(w: &[u8], a: &[Q8Block]) -> [i32; 16] {
        let (mask4, mask2, m32) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(3), _mm256_set1_epi8(32));
        let mut out = [0i32; 16];
        for (b, blk) in a.iter().enumerate() {
            let (h, g) = (b / 4, b % 4);
            let ql = load32(&w[64 * h + 32 * (g % 2)..64 * h + 32 * (g % 2) + 32]);
            let lo = if g < 2 { ql } else { _mm256_srli_epi16::<4>(ql) };
            let qh = load32(&w[128 + 32 * h..128 + 32 * h + 32]);
            let hi = match g {
                0 => qh,
                1 => _mm256_srli_epi16::<2>(qh),
                2 => _mm256_srli_epi16::<4>(qh),
                _ => _mm256_srli_epi16::<6>(qh),
            };
            let c = _mm256_or_si256(
                _mm256_and_si256(lo, mask4),
                _mm256_slli_epi16::<4>(_mm256_and_si256(hi, mask2)),
            );
            let act = load_act(blk);
            // Σ c·q − 32·Σ q per lane; lanes 0..4 cover elements 0..16, lanes 4..8 the rest.
            let v = _mm256_sub_epi32(dot_u8_i8(c, act), dot_u8_i8(m32, act));
            out[2 * b] = hsum128(_mm256_castsi256_si128(v));
            out[2 * b + 1] = hsum128(_mm256_extracti128_si256::<1>(v));
        }
        out
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
                let q = load32(&w[2..34]);
                // |q| as unsigned bytes (−128 becomes 128) times act carrying q's sign.
                dot_u8_i8(_mm256_sign_epi8(q, q), _mm256_sign_epi8(act, q))
            }
            // The super-block formats go through `q4k_isums` / `q6k_isums`.
            WeightFormat::Q4_K | WeightFormat::Q6_K => _mm256_setzero_si256(),
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
        match format {
            WeightFormat::Q4_K => {
                for (block, a) in w.chunks_exact(bb).zip(x.chunks_exact(8)) {
                    acc += q4k_term(block, a, &q4k_isums(block, a));
                }
            }
            WeightFormat::Q6_K => {
                for (block, a) in w.chunks_exact(bb).zip(x.chunks_exact(8)) {
                    acc += q6k_term(block, a, &q6k_isums(block, a));
                }
            }
            _ => {
                for (block, a) in w.chunks_exact(bb).zip(x) {
                    acc += block_term(format, block, block_isum(format, block, a), a);
                }
            }
        }
        acc
    }
}
