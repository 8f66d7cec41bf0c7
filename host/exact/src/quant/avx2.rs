//! AVX2 kernels, bit-identical to the scalar kernels because both compute the same exact
//! integer: the per-block integer sums are exact in `i32` whatever the lane order, and every
//! scaled term `isum·mant·2^sh` (the integers `scalar::block_term` forms) is added without
//! rounding (the super-block formats share `scalar::q4k_term` / `q6k_term` outright).

#[cfg(target_arch = "x86_64")]
pub(super) use imp::{dot, matvec32};

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
        hsum128(_mm_add_epi32(
            _mm256_castsi256_si128(v),
            _mm256_extracti128_si256::<1>(v),
        ))
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
        let (mask4, mask2, m32) = (
            _mm256_set1_epi8(0x0f),
            _mm256_set1_epi8(3),
            _mm256_set1_epi8(32),
        );
        let mut out = [0i32; 16];
        for (b, blk) in a.iter().enumerate() {
            let (h, g) = (b / 4, b % 4);
            let ql = load32(&w[64 * h + 32 * (g % 2)..64 * h + 32 * (g % 2) + 32]);
            let lo = if g < 2 {
                ql
            } else {
                _mm256_srli_epi16::<4>(ql)
            };
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
            _mm256_setr_epi64x(
                0,
                0x0101_0101_0101_0101,
                0x0202_0202_0202_0202,
                0x0303_0303_0303_0303,
            ),
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

    /// Eight partial sums whose total is the block's `isum` (see `scalar::block_isum`).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn block_isum_lanes(format: WeightFormat, w: &[u8], a: &Q8Block) -> __m256i {
        let act = load_act(a);
        match format {
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
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn block_isum(format: WeightFormat, w: &[u8], a: &Q8Block) -> i32 {
        hsum(block_isum_lanes(format, w, a))
    }

    /// Lane `j` of the result is the total of `v[j]` (eight vectors reduced at once).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum8x8(v: &[__m256i; 8]) -> __m256i {
        let h01 = _mm256_hadd_epi32(v[0], v[1]);
        let h23 = _mm256_hadd_epi32(v[2], v[3]);
        let h45 = _mm256_hadd_epi32(v[4], v[5]);
        let h67 = _mm256_hadd_epi32(v[6], v[7]);
        let h0123 = _mm256_hadd_epi32(h01, h23);
        let h4567 = _mm256_hadd_epi32(h45, h67);
        let lo = _mm256_permute2x128_si256::<0x20>(h0123, h4567);
        let hi = _mm256_permute2x128_si256::<0x31>(h0123, h4567);
        _mm256_add_epi32(lo, hi)
    }

    /// Eight f16 bit patterns (zero-extended in `i32` lanes) decoded exactly as `(mant, e)`
    /// with `value = mant · 2^e`, as `crate::fixed::f16_parts` does.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn f16_parts8(h: __m256i) -> (__m256i, __m256i) {
        let e = _mm256_and_si256(_mm256_srli_epi32::<10>(h), _mm256_set1_epi32(31));
        let f = _mm256_and_si256(h, _mm256_set1_epi32(1023));
        let subnormal = _mm256_cmpeq_epi32(e, _mm256_setzero_si256());
        let m = _mm256_or_si256(f, _mm256_andnot_si256(subnormal, _mm256_set1_epi32(1024)));
        let neg = _mm256_cmpeq_epi32(
            _mm256_and_si256(h, _mm256_set1_epi32(0x8000)),
            _mm256_set1_epi32(0x8000),
        );
        let m = _mm256_sub_epi32(_mm256_xor_si256(m, neg), neg);
        let exp = _mm256_sub_epi32(
            _mm256_max_epi32(e, _mm256_set1_epi32(1)),
            _mm256_set1_epi32(25),
        );
        (m, exp)
    }

    /// Exact accumulation of `v[j] · 2^sh[j]` (`|v| < 2^31`, `0 <= sh <= 62`) into three
    /// buckets of `i64` lanes: `sh = 21·b + r` goes to bucket `b` as `v · 2^r` (below `2^51`).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn accumulate(acc: &mut [__m256i; 3], v: __m256i, sh: __m256i) {
        let b1 = _mm256_cmpgt_epi32(sh, _mm256_set1_epi32(20));
        let b2 = _mm256_cmpgt_epi32(sh, _mm256_set1_epi32(41));
        let k21 = _mm256_set1_epi32(21);
        let r = _mm256_sub_epi32(
            sh,
            _mm256_add_epi32(_mm256_and_si256(b1, k21), _mm256_and_si256(b2, k21)),
        );
        for half in 0..2 {
            let pick = |x: __m256i| {
                if half == 0 {
                    _mm256_castsi256_si128(x)
                } else {
                    _mm256_extracti128_si256::<1>(x)
                }
            };
            let t = _mm256_sllv_epi64(
                _mm256_cvtepi32_epi64(pick(v)),
                _mm256_cvtepu32_epi64(pick(r)),
            );
            let m1 = _mm256_cvtepi32_epi64(pick(b1));
            let m2 = _mm256_cvtepi32_epi64(pick(b2));
            acc[0] = _mm256_add_epi64(acc[0], _mm256_andnot_si256(m1, t));
            acc[1] = _mm256_add_epi64(acc[1], _mm256_and_si256(_mm256_andnot_si256(m2, m1), t));
            acc[2] = _mm256_add_epi64(acc[2], _mm256_and_si256(m2, t));
        }
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn lanes_i64(v: __m256i) -> [i64; 4] {
        let mut out = [0i64; 4];
        // SAFETY: `out` is 32 writable bytes; the store is unaligned.
        unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) };
        out
    }

    /// The value of the three buckets, exactly.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn finish(acc: &[__m256i; 3]) -> i128 {
        let mut total = 0i128;
        for (b, &v) in acc.iter().enumerate() {
            let s: i128 = lanes_i64(v).iter().map(|&x| x as i128).sum();
            total += s << (21 * b);
        }
        total
    }

    /// The first four bytes (the f16 `d`, then the next two bytes: `m` for `Q4_1`) of each of
    /// the eight blocks of `wb` (block size `bb`), little-endian, one per lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn gather_u32(wb: &[u8], bb: usize) -> __m256i {
        assert!(wb.len() >= 7 * bb + 4);
        let bb = bb as i32;
        let idx = _mm256_setr_epi32(0, bb, 2 * bb, 3 * bb, 4 * bb, 5 * bb, 6 * bb, 7 * bb);
        // SAFETY: every lane reads 4 bytes at `j·bb <= 7·bb`, inside `wb` (checked above).
        unsafe { _mm256_i32gather_epi32::<1>(wb.as_ptr().cast(), idx) }
    }

    /// `(Σq, shift)` of eight activation blocks as `i32` lanes, by one gather of the four
    /// initialised bytes `qs[31], sum (2 bytes), shift` at offset 31 of each `#[repr(C)]` block.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn act_sum_shift8(xb: &[Q8Block]) -> (__m256i, __m256i) {
        const SIZE: i32 = std::mem::size_of::<Q8Block>() as i32;
        const _: () = assert!(
            std::mem::offset_of!(Q8Block, sum) == 32 && std::mem::offset_of!(Q8Block, shift) == 34
        );
        assert!(xb.len() >= 8);
        let idx = _mm256_setr_epi32(
            31,
            SIZE + 31,
            2 * SIZE + 31,
            3 * SIZE + 31,
            4 * SIZE + 31,
            5 * SIZE + 31,
            6 * SIZE + 31,
            7 * SIZE + 31,
        );
        // SAFETY: each lane reads bytes 31..35 of block j < 8 of `xb`: `qs[31]`, `sum` and
        // `shift`, all initialised fields of the `#[repr(C)]` struct (no padding byte is read).
        let g = unsafe { _mm256_i32gather_epi32::<1>(xb.as_ptr().cast(), idx) };
        let sum = _mm256_srai_epi32::<16>(_mm256_slli_epi32::<8>(g));
        let shift = _mm256_srli_epi32::<24>(g);
        (sum, shift)
    }

    /// Eight blocks at a time: integer sums by SIMD, then the exact scaling by SIMD too.
    ///
    /// Every term is an integer below `2^31` times `2^sh` with `0 <= sh <= 54` (the same
    /// integers `scalar::block_term` forms), accumulated without rounding; each `i64` lane
    /// receives at most four terms below `2^51` per iteration, so chunks of 4096 blocks cannot
    /// overflow.
    #[inline]
    ///
    /// With `window = Some(base)` the caller guarantees that every shift lies in
    /// `base..=base + spread` with all terms summing below `2^63` per lane, and the terms are
    /// accumulated as `v · 2^(sh − base)` in plain `i64` lanes instead (shifts outside the window
    /// only occur for zero terms, which `sllv` turns into zero).
    #[target_feature(enable = "avx2")]
    fn dot32(
        format: WeightFormat,
        w: &[u8],
        x: &[Q8Block],
        window: Option<u32>,
        pre: &[(__m256i, __m256i)],
    ) -> i128 {
        const CHUNK: usize = 4096;
        let bb = format.block_bytes();
        let base = _mm256_set1_epi32(24);
        let mut total = 0i128;
        let full = x.len() / 8 * 8;
        if let Some(wbase) = window {
            let wb32 = _mm256_set1_epi32(wbase as i32);
            let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            let mut add = |v: __m256i, sh: __m256i| {
                let r = _mm256_sub_epi32(sh, wb32);
                let v0 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
                let v1 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(v));
                let r0 = _mm256_cvtepu32_epi64(_mm256_castsi256_si128(r));
                let r1 = _mm256_cvtepu32_epi64(_mm256_extracti128_si256::<1>(r));
                lo = _mm256_add_epi64(lo, _mm256_sllv_epi64(v0, r0));
                hi = _mm256_add_epi64(hi, _mm256_sllv_epi64(v1, r1));
            };
            for i in (0..full).step_by(8) {
                let wb = &w[i * bb..(i + 8) * bb];
                let xb = &x[i..i + 8];
                let mut lanes = [_mm256_setzero_si256(); 8];
                for (j, (l, a)) in lanes.iter_mut().zip(xb).enumerate() {
                    *l = block_isum_lanes(format, &wb[j * bb..(j + 1) * bb], a);
                }
                let isum = hsum8x8(&lanes);
                let (sum, kb) = match pre.get(i / 8) {
                    Some(&p) => p,
                    None => {
                        let (sum, k) = act_sum_shift8(xb);
                        (sum, _mm256_add_epi32(k, base))
                    }
                };
                let scales = gather_u32(wb, bb);
                let (m, e) = f16_parts8(_mm256_and_si256(scales, _mm256_set1_epi32(0xffff)));
                let ints = match format {
                    WeightFormat::Q4_0 => _mm256_sub_epi32(isum, _mm256_slli_epi32::<3>(sum)),
                    WeightFormat::Q5_0 => _mm256_sub_epi32(isum, _mm256_slli_epi32::<4>(sum)),
                    _ => isum,
                };
                add(_mm256_mullo_epi32(ints, m), _mm256_add_epi32(e, kb));
                if format == WeightFormat::Q4_1 {
                    let (mm, me) = f16_parts8(_mm256_srli_epi32::<16>(scales));
                    add(_mm256_mullo_epi32(sum, mm), _mm256_add_epi32(me, kb));
                }
            }
            let s: i128 = lanes_i64(lo)
                .iter()
                .chain(lanes_i64(hi).iter())
                .map(|&v| v as i128)
                .sum();
            total = s << wbase;
        }
        let bucketed_end = if window.is_some() { 0 } else { full };
        for chunk_start in (0..bucketed_end).step_by(CHUNK) {
            let mut acc = [_mm256_setzero_si256(); 3];
            let end = (chunk_start + CHUNK).min(bucketed_end);
            for i in (chunk_start..end).step_by(8) {
                let wb = &w[i * bb..(i + 8) * bb];
                let xb = &x[i..i + 8];
                let mut lanes = [_mm256_setzero_si256(); 8];
                for (j, (l, a)) in lanes.iter_mut().zip(xb).enumerate() {
                    *l = block_isum_lanes(format, &wb[j * bb..(j + 1) * bb], a);
                }
                let isum = hsum8x8(&lanes);
                let (sum, k) = act_sum_shift8(xb);
                let kb = _mm256_add_epi32(k, base);
                let scales = gather_u32(wb, bb);
                let (m, e) = f16_parts8(_mm256_and_si256(scales, _mm256_set1_epi32(0xffff)));
                let ints = match format {
                    WeightFormat::Q4_0 => _mm256_sub_epi32(isum, _mm256_slli_epi32::<3>(sum)),
                    WeightFormat::Q5_0 => _mm256_sub_epi32(isum, _mm256_slli_epi32::<4>(sum)),
                    _ => isum,
                };
                accumulate(
                    &mut acc,
                    _mm256_mullo_epi32(ints, m),
                    _mm256_add_epi32(e, kb),
                );
                if format == WeightFormat::Q4_1 {
                    let (mm, me) = f16_parts8(_mm256_srli_epi32::<16>(scales));
                    accumulate(
                        &mut acc,
                        _mm256_mullo_epi32(sum, mm),
                        _mm256_add_epi32(me, kb),
                    );
                }
            }
            total += finish(&acc);
        }
        for (block, a) in w[full * bb..].chunks_exact(bb).zip(&x[full..]) {
            total += block_term(format, block, block_isum(format, block, a), a);
        }
        total
    }

    /// Activation groups whose `(Σq, shift + 24)` vectors [`matvec32`] prepares once per call.
    const PRE_GROUPS: usize = 64;

    /// `out[i] = dot_to_act(row_dot(rows.start + i))` for a 32-element format, preparing the
    /// activation-side vectors once for all rows; `window(row)` is the row's 64-bit window.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(in super::super) unsafe fn matvec32<'a>(
        format: WeightFormat,
        rows: impl Iterator<Item = (&'a [u8], Option<u32>)>,
        x: &[Q8Block],
        out: &mut [i32],
    ) {
        let mut pre = [(_mm256_setzero_si256(), _mm256_setzero_si256()); PRE_GROUPS];
        let n = (x.len() / 8).min(PRE_GROUPS);
        for (g, p) in pre[..n].iter_mut().enumerate() {
            let (sum, k) = act_sum_shift8(&x[g * 8..g * 8 + 8]);
            *p = (sum, _mm256_add_epi32(k, _mm256_set1_epi32(24)));
        }
        for (o, (w, window)) in out.iter_mut().zip(rows) {
            *o = super::super::dot_to_act(dot32(format, w, x, window, &pre[..n]));
        }
    }

    /// The exact dot product of a run of weight blocks with as many activation blocks.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(in super::super) unsafe fn dot(
        format: WeightFormat,
        w: &[u8],
        x: &[Q8Block],
        window: Option<u32>,
    ) -> i128 {
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
            _ => acc = dot32(format, w, x, window, &[]),
        }
        acc
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use tiles::{
    tile8_avx2, tile8_nibbles_avx2, tile8_nibbles_vnni, tile8_vnni, vnni_available,
};

/// Eight-row tiles over pre-decoded scales (see `super::packed`): the rows' integer block sums
/// are reduced into one vector (lane `r` = row `r`), so the exact scaling runs once per block
/// for eight rows, in `i64` lanes with one window base per row.
#[cfg(target_arch = "x86_64")]
mod tiles {
    use std::arch::x86_64::*;

    use super::super::{Q8Block, WeightFormat};

    /// Whether the CPU has the AVX-512 VNNI byte dot product on 256-bit vectors.
    pub(in super::super) fn vnni_available() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    }

    /// `Σ u_j · s_j` in eight `i32` lanes for unsigned `u <= 128`, signed `|s| <= 127`: the
    /// same integers with either instruction sequence.
    #[inline(always)]
    unsafe fn dotb<const VNNI: bool>(u: __m256i, s: __m256i) -> __m256i {
        if VNNI {
            _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
        } else {
            _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
        }
    }

    #[inline(always)]
    unsafe fn nib(p: *const u8) -> __m256i {
        let q = _mm_loadu_si128(p.cast());
        _mm256_and_si256(
            _mm256_set_m128i(_mm_srli_epi16::<4>(q), q),
            _mm256_set1_epi8(0x0f),
        )
    }

    #[inline(always)]
    unsafe fn hi_bits(bits: u32) -> __m256i {
        let spread = _mm256_shuffle_epi8(
            _mm256_set1_epi32(bits as i32),
            _mm256_setr_epi64x(
                0,
                0x0101_0101_0101_0101,
                0x0202_0202_0202_0202,
                0x0303_0303_0303_0303,
            ),
        );
        let probe = _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
        _mm256_and_si256(
            _mm256_cmpeq_epi8(probe, _mm256_set1_epi64x(-1)),
            _mm256_set1_epi8(0x10),
        )
    }

    #[inline(always)]
    unsafe fn reduce8(p: &[__m256i; 8]) -> __m256i {
        let h01 = _mm256_hadd_epi32(p[0], p[1]);
        let h23 = _mm256_hadd_epi32(p[2], p[3]);
        let h45 = _mm256_hadd_epi32(p[4], p[5]);
        let h67 = _mm256_hadd_epi32(p[6], p[7]);
        let a = _mm256_hadd_epi32(h01, h23);
        let b = _mm256_hadd_epi32(h45, h67);
        _mm256_add_epi32(
            _mm256_permute2x128_si256::<0x20>(a, b),
            _mm256_permute2x128_si256::<0x31>(a, b),
        )
    }

    /// `acc += v · 2^sh` per lane (`v` eight `i32`, `sh` eight shifts in `0..=62`), as two
    /// vectors of four `i64` lanes.
    #[inline(always)]
    unsafe fn add_shifted(acc: &mut [__m256i; 2], v: __m256i, sh: __m256i) {
        let v0 = _mm256_cvtepi32_epi64(_mm256_castsi256_si128(v));
        let v1 = _mm256_cvtepi32_epi64(_mm256_extracti128_si256::<1>(v));
        let s0 = _mm256_cvtepu32_epi64(_mm256_castsi256_si128(sh));
        let s1 = _mm256_cvtepu32_epi64(_mm256_extracti128_si256::<1>(sh));
        acc[0] = _mm256_add_epi64(acc[0], _mm256_sllv_epi64(v0, s0));
        acc[1] = _mm256_add_epi64(acc[1], _mm256_sllv_epi64(v1, s1));
    }

    /// Eight `i16` as eight `i32` lanes.
    #[inline(always)]
    unsafe fn load_i16x8(p: *const i16) -> __m256i {
        _mm256_cvtepi16_epi32(_mm_loadu_si128(p.cast()))
    }

    /// The tile body: rows `w[r]` (`r < 8`, each `x.len()` blocks), scales `sc` laid out per
    /// block as `[d_mant ×8, d_sh ×8, m_mant ×8, m_sh ×8]` (`i16`, the `m` part for `Q4_1`
    /// only), activation shifts relative to `kmin`. Returns the eight `i64` window sums.
    #[inline(always)]
    unsafe fn body<const VNNI: bool>(
        format: WeightFormat,
        w: &[&[u8]; 8],
        sc: &[i16],
        x: &[Q8Block],
        kmin: u8,
    ) -> [i64; 8] {
        let bb = format.block_bytes();
        let per = if format == WeightFormat::Q4_1 { 32 } else { 16 };
        assert!(sc.len() >= x.len() * per && w.iter().all(|r| r.len() >= x.len() * bb));
        let mut acc = [_mm256_setzero_si256(); 2];
        // The tile's rows are contiguous and the next tile's follow: prefetch those, 8 blocks'
        // worth per block, so the eight row streams do not wait on memory (only a hint: an
        // address past the matrix is never dereferenced).
        let next = w[0].as_ptr().wrapping_add(8 * x.len() * bb);
        for (b, a) in x.iter().enumerate() {
            let mut off = b * 8 * bb;
            while off < (b + 1) * 8 * bb {
                _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(off) as *const i8);
                off += 64;
            }
            let act = _mm256_loadu_si256(a.qs.as_ptr().cast());
            let mut lanes = [_mm256_setzero_si256(); 8];
            for (l, row) in lanes.iter_mut().zip(w.iter()) {
                let p = row.as_ptr().add(b * bb);
                *l = match format {
                    WeightFormat::Q4_0 => dotb::<VNNI>(nib(p.add(2)), act),
                    WeightFormat::Q4_1 => dotb::<VNNI>(nib(p.add(4)), act),
                    WeightFormat::Q5_0 => {
                        let qh = u32::from_le_bytes([*p.add(2), *p.add(3), *p.add(4), *p.add(5)]);
                        dotb::<VNNI>(_mm256_or_si256(nib(p.add(6)), hi_bits(qh)), act)
                    }
                    _ => {
                        let q = _mm256_loadu_si256(p.add(2).cast());
                        dotb::<VNNI>(_mm256_sign_epi8(q, q), _mm256_sign_epi8(act, q))
                    }
                };
            }
            scale_block(
                format,
                &mut acc,
                reduce8(&lanes),
                a,
                sc.as_ptr().add(b * per),
                kmin,
            );
        }
        lanes_of(&acc)
    }

    /// Adds one block's eight row sums `isum` (lane `r` = row `r`), scaled exactly by the
    /// rows' decoded scales at `s` (see `Packed::sc`) and the block's activation shift, into
    /// the eight `i64` lanes of `acc`.
    #[inline(always)]
    unsafe fn scale_block(
        format: WeightFormat,
        acc: &mut [__m256i; 2],
        isum: __m256i,
        a: &Q8Block,
        s: *const i16,
        kmin: u8,
    ) {
        let sum = _mm256_set1_epi32(a.sum as i32);
        let ints = match format {
            WeightFormat::Q4_0 => _mm256_sub_epi32(isum, _mm256_slli_epi32::<3>(sum)),
            WeightFormat::Q5_0 => _mm256_sub_epi32(isum, _mm256_slli_epi32::<4>(sum)),
            _ => isum,
        };
        let k = _mm256_set1_epi32((a.shift - kmin) as i32);
        add_shifted(
            acc,
            _mm256_mullo_epi32(ints, load_i16x8(s)),
            _mm256_add_epi32(load_i16x8(s.add(8)), k),
        );
        if format == WeightFormat::Q4_1 {
            add_shifted(
                acc,
                _mm256_mullo_epi32(sum, load_i16x8(s.add(16))),
                _mm256_add_epi32(load_i16x8(s.add(24)), k),
            );
        }
    }

    /// The eight `i64` lanes of `acc`.
    #[inline(always)]
    unsafe fn lanes_of(acc: &[__m256i; 2]) -> [i64; 8] {
        let mut out = [0i64; 8];
        _mm256_storeu_si256(out.as_mut_ptr().cast(), acc[0]);
        _mm256_storeu_si256(out.as_mut_ptr().add(4).cast(), acc[1]);
        out
    }

    /// `acc + Σ u_j · s_j` per `i32` lane, for unsigned `u <= 15` and signed `s` (the
    /// `maddubs` pairs stay far inside `i16`): the same integers with either instruction.
    #[inline(always)]
    unsafe fn dotb_acc<const VNNI: bool>(acc: __m256i, u: __m256i, s: __m256i) -> __m256i {
        if VNNI {
            _mm256_dpbusd_epi32(acc, u, s)
        } else {
            _mm256_add_epi32(
                acc,
                _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)),
            )
        }
    }

    /// The tile body over interleaved nibbles (`Q4_0`/`Q4_1`, layout of `Packed::qs`): per
    /// block, four 32-byte loads each give four nibble bytes of every row; their low nibbles
    /// (elements `4g..4g+4`) meet the four broadcast activation bytes `4g..4g+4`, their high
    /// nibbles (elements `16+4g..`) the bytes `16+4g..`, and lane `r` ends as row `r`'s block
    /// sum. The scaling is [`scale_block`], as in [`body`].
    #[inline(always)]
    unsafe fn body_nibbles<const VNNI: bool>(
        format: WeightFormat,
        qs: &[u8],
        sc: &[i16],
        x: &[Q8Block],
        kmin: u8,
    ) -> [i64; 8] {
        let per = if format == WeightFormat::Q4_1 { 32 } else { 16 };
        assert!(sc.len() >= x.len() * per && qs.len() >= x.len() * 128);
        let mask = _mm256_set1_epi8(0x0f);
        let mut acc = [_mm256_setzero_si256(); 2];
        // The next tile's nibbles follow this tile's: prefetch them a block at a time (a hint
        // only; an address past the buffer is never dereferenced).
        let next = qs.as_ptr().wrapping_add(x.len() * 128);
        for (b, a) in x.iter().enumerate() {
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(b * 128) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(b * 128 + 64) as *const i8);
            let p = qs.as_ptr().add(b * 128);
            let act = a.qs.as_ptr();
            let mut isum = _mm256_setzero_si256();
            for g in 0..4 {
                let v = _mm256_loadu_si256(p.add(32 * g).cast());
                let lo = _mm256_and_si256(v, mask);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask);
                let a_lo = _mm256_set1_epi32(act.add(4 * g).cast::<i32>().read_unaligned());
                let a_hi = _mm256_set1_epi32(act.add(16 + 4 * g).cast::<i32>().read_unaligned());
                isum = dotb_acc::<VNNI>(isum, lo, a_lo);
                isum = dotb_acc::<VNNI>(isum, hi, a_hi);
            }
            scale_block(format, &mut acc, isum, a, sc.as_ptr().add(b * per), kmin);
        }
        lanes_of(&acc)
    }

    /// One interleaved-nibble tile with AVX2 (`maddubs` + `madd`).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(in super::super) unsafe fn tile8_nibbles_avx2(
        format: WeightFormat,
        qs: &[u8],
        sc: &[i16],
        x: &[Q8Block],
        kmin: u8,
    ) -> [i64; 8] {
        body_nibbles::<false>(format, qs, sc, x, kmin)
    }

    /// One interleaved-nibble tile with AVX-512 VNNI (`vpdpbusd` on 256-bit vectors); the
    /// same integers.
    ///
    /// # Safety
    /// The CPU must support AVX2, AVX-512F/VL and AVX-512 VNNI.
    #[target_feature(enable = "avx2,avx512f,avx512vl,avx512vnni")]
    pub(in super::super) unsafe fn tile8_nibbles_vnni(
        format: WeightFormat,
        qs: &[u8],
        sc: &[i16],
        x: &[Q8Block],
        kmin: u8,
    ) -> [i64; 8] {
        body_nibbles::<true>(format, qs, sc, x, kmin)
    }

    /// One tile with AVX2 (`maddubs` + `madd`).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(in super::super) unsafe fn tile8_avx2(
        format: WeightFormat,
        w: &[&[u8]; 8],
        sc: &[i16],
        x: &[Q8Block],
        kmin: u8,
    ) -> [i64; 8] {
        body::<false>(format, w, sc, x, kmin)
    }

    /// One tile with AVX-512 VNNI (`vpdpbusd` on 256-bit vectors); the same integers.
    ///
    /// # Safety
    /// The CPU must support AVX2, AVX-512F/VL and AVX-512 VNNI.
    #[target_feature(enable = "avx2,avx512f,avx512vl,avx512vnni")]
    pub(in super::super) unsafe fn tile8_vnni(
        format: WeightFormat,
        w: &[&[u8]; 8],
        sc: &[i16],
        x: &[Q8Block],
        kmin: u8,
    ) -> [i64; 8] {
        body::<true>(format, w, sc, x, kmin)
    }
}
