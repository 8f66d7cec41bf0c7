//! Register-tiled products for the 32-element block formats (Q4_0, Q4_1, Q5_0, Q8_0) and
//! the super-block formats Q4_K and Q6_K (matrix-matrix only) on x86_64: one call computes
//! `R` weight rows × `T` activation rows.
//!
//! Each weight block is unpacked to 32 bytes once and reused for all `T` activation blocks
//! (prefill: several tokens), and each activation block is loaded once for all `R` rows
//! (decode: `T = 1`, eight rows). Per block and (row, token) pair the work is one byte dot
//! product (`vpmaddubsw`+`vpmaddwd`, or one `vpdpbusd` with AVX-512 VNNI); the pairs' eight
//! partial sums are then reduced eight pairs at a time and the block scales applied to eight
//! pairs in one vector.
//!
//! Every result is bit-identical to [`scalar`](super::scalar)'s dot product of the same rows
//! (exact integer block sums, then the scalar code's f32 operations in its order), which the
//! tests in `kernels/mod.rs` check.

#![allow(unsafe_op_in_unsafe_fn)]

use crate::quant::*;
use std::arch::x86_64::*;

/// A weight block format: how to turn one block into 32 bytes plus its scale (and minimum).
trait WBlock {
    /// Bytes per block.
    const BYTES: usize;
    /// True when the unpacked bytes are signed (i8); false for unsigned nibbles (Q4_1).
    const SIGNED: bool;
    /// True when the block has a minimum (`Σ = d·Σ(q·y) + m·Σy`).
    const HAS_MIN: bool;
    /// The 32 quants.
    unsafe fn quants(p: *const u8) -> __m256i;
    /// What [`WBlock::quants_biased`] adds to each quant to make it unsigned (0: already is).
    const BIAS: i32;
    /// The 32 quants plus [`WBlock::BIAS`], as unsigned bytes (for `vpdpbusd`, which takes an
    /// unsigned operand: `Σ q·y = Σ (q + BIAS)·y − BIAS·Σ y`, exact in i32).
    unsafe fn quants_biased(p: *const u8) -> __m256i;
    /// The scale's f16 bits.
    #[inline(always)]
    unsafe fn d_bits(p: *const u8) -> u16 {
        rd_u16(p)
    }
    /// The minimum's f16 bits (formats with one).
    #[inline(always)]
    unsafe fn m_bits(p: *const u8) -> u16 {
        rd_u16(p.add(2))
    }
}

/// An activation block format.
trait ABlock {
    /// Bytes per block.
    const BYTES: usize;
    /// The 32 quants.
    unsafe fn quants(p: *const u8) -> __m256i;
    /// The scale.
    #[inline(always)]
    unsafe fn d(p: *const u8) -> f32 {
        rd_f32(p)
    }
    /// `d·Σq` (formats that store it).
    #[inline(always)]
    unsafe fn s(p: *const u8) -> f32 {
        rd_f32(p.add(4))
    }
}

#[inline(always)]
unsafe fn rd_u16(p: *const u8) -> u16 {
    std::ptr::read_unaligned(p as *const u16)
}

#[inline(always)]
unsafe fn rd_f32(p: *const u8) -> f32 {
    std::ptr::read_unaligned(p as *const f32)
}

/// 16 bytes of nibbles → 32 bytes: low nibbles in lanes 0..16, high nibbles in lanes 16..32.
#[inline(always)]
unsafe fn nibbles_32(p: *const u8) -> __m256i {
    let x = _mm_loadu_si128(p as *const __m128i);
    let hi = _mm_srli_epi16(x, 4);
    let v = _mm256_insertf128_si256(_mm256_castsi128_si256(x), hi, 1);
    _mm256_and_si256(v, _mm256_set1_epi8(0x0F))
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

struct Q4_0;
impl WBlock for Q4_0 {
    const BYTES: usize = 18;
    const SIGNED: bool = true;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        _mm256_sub_epi8(nibbles_32(p.add(2)), _mm256_set1_epi8(8))
    }
    const BIAS: i32 = 8;
    #[inline(always)]
    unsafe fn quants_biased(p: *const u8) -> __m256i {
        nibbles_32(p.add(2))
    }
}

struct Q4_1;
impl WBlock for Q4_1 {
    const BYTES: usize = 20;
    const SIGNED: bool = false;
    const HAS_MIN: bool = true;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        nibbles_32(p.add(4))
    }
    const BIAS: i32 = 0;
    #[inline(always)]
    unsafe fn quants_biased(p: *const u8) -> __m256i {
        nibbles_32(p.add(4))
    }
}

struct Q5_0;
impl WBlock for Q5_0 {
    const BYTES: usize = 22;
    const SIGNED: bool = true;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        let lo = nibbles_32(p.add(6));
        let qh = std::ptr::read_unaligned(p.add(2) as *const u32);
        let hi = _mm256_andnot_si256(bytes_from_bits_32(qh), _mm256_set1_epi8(0xF0u8 as i8));
        _mm256_or_si256(lo, hi)
    }
    const BIAS: i32 = 16;
    #[inline(always)]
    unsafe fn quants_biased(p: *const u8) -> __m256i {
        let lo = nibbles_32(p.add(6));
        let qh = std::ptr::read_unaligned(p.add(2) as *const u32);
        _mm256_or_si256(lo, _mm256_and_si256(bytes_from_bits_32(qh), _mm256_set1_epi8(0x10)))
    }
}

struct Q8_0;
impl WBlock for Q8_0 {
    const BYTES: usize = 34;
    const SIGNED: bool = true;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        _mm256_loadu_si256(p.add(2) as *const __m256i)
    }
    const BIAS: i32 = 128;
    #[inline(always)]
    unsafe fn quants_biased(p: *const u8) -> __m256i {
        _mm256_xor_si256(Self::quants(p), _mm256_set1_epi8(0x80u8 as i8))
    }
}

struct A8_0;
impl ABlock for A8_0 {
    const BYTES: usize = std::mem::size_of::<BlockQ8_0A>();
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        _mm256_loadu_si256(p.add(4) as *const __m256i)
    }
}

struct A8_1;
impl ABlock for A8_1 {
    const BYTES: usize = std::mem::size_of::<BlockQ8_1A>();
    #[inline(always)]
    unsafe fn quants(p: *const u8) -> __m256i {
        _mm256_loadu_si256(p.add(8) as *const __m256i)
    }
}

/// Byte dot product of 32 weight bytes `x` and 32 activation bytes `y`, as 8 i32 lanes.
#[inline(always)]
unsafe fn dot32<const VNNI: bool>(signed: bool, x: __m256i, y: __m256i) -> __m256i {
    let (u, s) = if signed {
        (_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x))
    } else {
        (x, y)
    };
    if VNNI {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s)
    } else {
        // No saturation: |u| ≤ 128 and |s| ≤ 127, so each pair sum fits in i16.
        _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
    }
}

#[inline(always)]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s)
}

/// Lane `i` of the result is the sum of the 8 lanes of `p[i]` (exact integer sums).
#[inline(always)]
unsafe fn reduce8(p: &[__m256i; 8]) -> __m256i {
    let h01 = _mm256_hadd_epi32(p[0], p[1]);
    let h23 = _mm256_hadd_epi32(p[2], p[3]);
    let h45 = _mm256_hadd_epi32(p[4], p[5]);
    let h67 = _mm256_hadd_epi32(p[6], p[7]);
    let a = _mm256_hadd_epi32(h01, h23); // [Σ0..3 of lanes 0-3 | of lanes 4-7]
    let b = _mm256_hadd_epi32(h45, h67);
    let lo = _mm256_permute2x128_si256(a, b, 0x20);
    let hi = _mm256_permute2x128_si256(a, b, 0x31);
    _mm256_add_epi32(lo, hi)
}

/// Eight f16 values → f32: `R == 4`: `[h0..h3, h0..h3]`; `R == 8`: `[h0..h7]`.
#[inline(always)]
unsafe fn halves8<const R: usize>(h: &[u16; R]) -> __m256 {
    let mut v = _mm_setzero_si128();
    v = _mm_insert_epi16(v, h[0] as i32, 0);
    v = _mm_insert_epi16(v, h[1] as i32, 1);
    v = _mm_insert_epi16(v, h[2] as i32, 2);
    v = _mm_insert_epi16(v, h[3] as i32, 3);
    if R == 8 {
        v = _mm_insert_epi16(v, h[4 % R] as i32, 4);
        v = _mm_insert_epi16(v, h[5 % R] as i32, 5);
        v = _mm_insert_epi16(v, h[6 % R] as i32, 6);
        v = _mm_insert_epi16(v, h[7 % R] as i32, 7);
    } else {
        v = _mm_unpacklo_epi64(v, v);
    }
    _mm256_cvtph_ps(v)
}

/// The start of each of a tile's `N` rows, `stride` bytes apart from `base`; rows `≥ valid`
/// repeat the last valid one (their results are dropped), so partial tiles need no
/// separate code. Used for weight rows and activation rows alike.
#[inline(always)]
unsafe fn tile_rows<const N: usize>(base: *const u8, stride: usize, valid: usize) -> [*const u8; N] {
    std::array::from_fn(|i| base.add(i.min(valid - 1) * stride))
}

/// Prefetch bytes `from..to` past `next`, one cache line at a time: a tile spreads the
/// prefetches for the next tile's rows over its own block loop.
#[inline(always)]
unsafe fn prefetch_lines(next: *const u8, from: usize, to: usize) {
    let mut off = from;
    while off < to {
        _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add(off) as *const i8);
        off += 64;
    }
}

/// Write a tile's `G` accumulators (pair `i = t·R + r`) into `out`, `toks` rows of `rows`
/// values, dropping the pairs of padded rows and tokens.
#[inline(always)]
unsafe fn store_tile<const R: usize, const G: usize>(acc: &[__m256; G], rows: usize, toks: usize, out: &mut [f32]) {
    let mut res = [0f32; 64];
    for (g, v) in acc.iter().enumerate() {
        _mm256_storeu_ps(res.as_mut_ptr().add(8 * g), *v);
    }
    for t in 0..toks {
        for r in 0..rows {
            out[t * rows + r] = res[t * R + r];
        }
    }
}

/// Per-pair activation values of group `g`: `R == 4`: `[v(2g) ×4, v(2g+1) ×4]`; `R == 8`:
/// `[v(g) ×8]`.
#[inline(always)]
unsafe fn toks8<const R: usize, const T: usize>(v: &[f32; T], g: usize) -> __m256 {
    if R == 8 {
        _mm256_set1_ps(v[g])
    } else {
        _mm256_set_m128(_mm_set1_ps(v[2 * g + 1]), _mm_set1_ps(v[2 * g]))
    }
}

/// The tile itself, for `R ∈ {4, 8}` rows × `T` tokens in `G = R·T/8` groups of 8 pairs
/// (pair `i = t·R + r`). Rows `≥ rows` and tokens `≥ toks` repeat the last valid one (their
/// results are dropped), so partial tiles need no separate code.
///
/// Bit-identical to the scalar reference: each block's byte products are summed exactly in
/// i32, then — like [`scalar`](super::scalar) — `acc += (d_w·d_a)·Σ` in f32 block after
/// block (and `mins += m_w·s_a`, added at the end), with the same roundings.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<W: WBlock, A: ABlock, const R: usize, const T: usize, const G: usize, const VNNI: bool>(
    w: *const u8,
    wrb: usize,
    rows: usize,
    a: *const u8,
    arb: usize,
    toks: usize,
    out: &mut [f32],
) {
    debug_assert!((R == 4 || R == 8) && R * T == 8 * G);
    let nb = wrb / W::BYTES;
    let mut acc = [_mm256_setzero_ps(); G];
    let mut mins = [_mm256_setzero_ps(); G];
    let wp: [*const u8; R] = tile_rows(w, wrb, rows);
    let ap: [*const u8; T] = tile_rows(a, arb, toks);
    // The rows of a full tile are contiguous (`R·wrb` bytes); the next tile's follow. Spread
    // prefetches for those over this tile's block loop, `R·BYTES` bytes per block, so the
    // many interleaved row streams do not wait on memory (a large matrix streams from DRAM).
    let next = w.wrapping_add(2 * R * wrb);
    let per_block = R * W::BYTES;
    for b in 0..nb {
        prefetch_lines(next, b * per_block, (b + 1) * per_block);
        let mut x = [_mm256_setzero_si256(); R];
        let mut dh = [0u16; R];
        let mut mh = [0u16; R];
        // With VNNI, biased unsigned quants and one `vpdpbusd` per pair (the bias is taken
        // off after the reduction); without, signed quants and the sign trick.
        let biased = VNNI && W::BIAS != 0;
        for r in 0..R {
            let p = wp[r].add(b * W::BYTES);
            x[r] = if biased { W::quants_biased(p) } else { W::quants(p) };
            dh[r] = W::d_bits(p);
            if W::HAS_MIN {
                mh[r] = W::m_bits(p);
            }
        }
        let mut y = [_mm256_setzero_si256(); T];
        let mut da = [0f32; T];
        let mut sa = [0f32; T];
        let mut ysum = [0i32; T];
        for t in 0..T {
            let p = ap[t].add(b * A::BYTES);
            y[t] = A::quants(p);
            da[t] = A::d(p);
            if W::HAS_MIN {
                sa[t] = A::s(p);
            }
            if biased {
                ysum[t] = W::BIAS * hsum_i32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(1), y[t]));
            }
        }
        let dw = halves8::<R>(&dh);
        let mw = if W::HAS_MIN {
            halves8::<R>(&mh)
        } else {
            _mm256_setzero_ps()
        };
        for g in 0..G {
            let mut p = [_mm256_setzero_si256(); 8];
            for (i, pi) in p.iter_mut().enumerate() {
                let pair = 8 * g + i;
                *pi = dot32::<VNNI>(W::SIGNED && !biased, x[pair % R], y[pair / R]);
            }
            let mut isum = reduce8(&p);
            if biased {
                let corr = if R == 8 {
                    _mm256_set1_epi32(ysum[g])
                } else {
                    _mm256_set_m128i(_mm_set1_epi32(ysum[2 * g + 1]), _mm_set1_epi32(ysum[2 * g]))
                };
                isum = _mm256_sub_epi32(isum, corr);
            }
            let sum = _mm256_cvtepi32_ps(isum);
            let d = _mm256_mul_ps(dw, toks8::<R, T>(&da, g));
            acc[g] = _mm256_add_ps(acc[g], _mm256_mul_ps(d, sum));
            if W::HAS_MIN {
                mins[g] = _mm256_add_ps(mins[g], _mm256_mul_ps(mw, toks8::<R, T>(&sa, g)));
            }
        }
    }
    if W::HAS_MIN {
        for g in 0..G {
            acc[g] = _mm256_add_ps(acc[g], mins[g]);
        }
    }
    store_tile::<R, G>(&acc, rows, toks, out);
}

/// Q4_K weights × Q8_K activations, `R ∈ {4, 8}` rows × `T` tokens in `G = R·T/8` groups of
/// 8 pairs (pair `i = t·R + r`), like [`tile`]. Bit-identical to
/// [`scalar::dot_q4k`](super::scalar::dot_q4k): per super-block the scaled sub-block sums and
/// the minimums' sums are exact integers, then `acc += d·d_a·Σ − d_min·d_a·mins` in f32.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_q4k<const R: usize, const T: usize, const G: usize>(
    w: *const u8,
    wrb: usize,
    rows: usize,
    a: *const u8,
    arb: usize,
    toks: usize,
    out: &mut [f32],
) {
    const WB: usize = std::mem::size_of::<BlockQ4K>();
    const AB: usize = std::mem::size_of::<BlockQ8K>();
    debug_assert!((R == 4 || R == 8) && R * T == 8 * G);
    let nb = wrb / WB;
    let m4 = _mm256_set1_epi8(0x0F);
    let mut acc = [_mm256_setzero_ps(); G];
    let wp: [*const u8; R] = tile_rows(w, wrb, rows);
    let ap: [*const u8; T] = tile_rows(a, arb, toks);
    let next = w.wrapping_add(2 * R * wrb);
    for b in 0..nb {
        prefetch_lines(next, b * R * WB, (b + 1) * R * WB);
        let bw: [&BlockQ4K; R] = std::array::from_fn(|r| &*(wp[r].add(b * WB) as *const BlockQ4K));
        let ba: [&BlockQ8K; T] = std::array::from_fn(|t| &*(ap[t].add(b * AB) as *const BlockQ8K));
        // Sub-block scales and minimums of each row; 16-element sums paired per sub-block.
        let mut sc = [[0i16; 8]; R];
        let mut mn = [[0i32; 8]; R];
        for r in 0..R {
            for j in 0..8 {
                let (s, m) = q4k_scale_min(j, &bw[r].scales);
                sc[r][j] = s as i16;
                mn[r][j] = m as i32;
            }
        }
        let bs: [[i32; 8]; T] =
            std::array::from_fn(|t| std::array::from_fn(|k| ba[t].bsums[2 * k] as i32 + ba[t].bsums[2 * k + 1] as i32));
        let mut p = [_mm256_setzero_si256(); 16]; // R·T ≤ 16 pairs
        for j in 0..4 {
            let mut lo = [_mm256_setzero_si256(); R];
            let mut hi = [_mm256_setzero_si256(); R];
            for r in 0..R {
                let q = _mm256_loadu_si256(bw[r].qs.as_ptr().add(32 * j) as *const __m256i);
                lo[r] = _mm256_and_si256(q, m4);
                hi[r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
            }
            for (t, bt) in ba.iter().enumerate() {
                let y1 = _mm256_loadu_si256(bt.qs.as_ptr().add(64 * j) as *const __m256i);
                let y2 = _mm256_loadu_si256(bt.qs.as_ptr().add(64 * j + 32) as *const __m256i);
                for r in 0..R {
                    // No saturation: nibble ≤ 15, |y| ≤ 127, scales ≤ 63.
                    let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[r], y1), _mm256_set1_epi16(sc[r][2 * j]));
                    let p2 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[r], y2), _mm256_set1_epi16(sc[r][2 * j + 1]));
                    let i = t * R + r;
                    p[i] = _mm256_add_epi32(p[i], _mm256_add_epi32(p1, p2));
                }
            }
        }
        let dw = halves8::<R>(&std::array::from_fn(|r| bw[r].d));
        let dmw = halves8::<R>(&std::array::from_fn(|r| bw[r].dmin));
        let da: [f32; T] = std::array::from_fn(|t| ba[t].d);
        for g in 0..G {
            let pg: [__m256i; 8] = std::array::from_fn(|i| p[8 * g + i]);
            let sum = _mm256_cvtepi32_ps(reduce8(&pg));
            let mins: [i32; 8] = std::array::from_fn(|i| {
                let pair = 8 * g + i;
                let (t, r) = (pair / R, pair % R);
                (0..8).map(|k| mn[r][k] * bs[t][k]).sum()
            });
            let mins = _mm256_cvtepi32_ps(_mm256_loadu_si256(mins.as_ptr() as *const __m256i));
            let dav = toks8::<R, T>(&da, g);
            let t1 = _mm256_mul_ps(_mm256_mul_ps(dw, dav), sum);
            let t2 = _mm256_mul_ps(_mm256_mul_ps(dmw, dav), mins);
            acc[g] = _mm256_add_ps(acc[g], _mm256_sub_ps(t1, t2));
        }
    }
    store_tile::<R, G>(&acc, rows, toks, out);
}

/// `pshufb` controls that spread two of Q6_K's sixteen sub-block scales over a 32-byte chunk:
/// entry `k` repeats scale `2k` eight times, then scale `2k + 1` eight times (the chunk's two
/// 16-element sub-blocks; widened to i16 lanes, 0..8 then 8..16).
static Q6K_SCALE_SHUFFLE: [[u8; 16]; 8] = {
    let mut t = [[0u8; 16]; 8];
    let mut k = 0;
    while k < 8 {
        let mut i = 0;
        while i < 16 {
            t[k][i] = (2 * k + i / 8) as u8;
            i += 1;
        }
        k += 1;
    }
    t
};

/// Q6_K weights × Q8_K activations, `R ∈ {4, 8}` rows × `T` tokens in `G = R·T/8` groups of
/// 8 pairs (pair `i = t·R + r`), like [`tile`]. Each row's super-block is unpacked once into
/// eight 32-byte chunks of unsigned 6-bit quants `q ∈ 0..64` and reused for every token; per
/// pair and chunk that is one `vpmaddubsw` (no saturation: `2·63·127 < 2¹⁵`) and one
/// `vpmaddwd` with the chunk's two sub-block scales (`vpdpwssd`, multiply and add in one,
/// with `DPW`). The offset of 32 comes off once per super-block through the activation's
/// 16-element sums: `Σ sc·(q − 32)·y = Σ sc·q·y − 32·Σ_k sc_k·bsum_k`, exact in i32.
///
/// Bit-identical to [`scalar::dot_q6k`](super::scalar::dot_q6k): per super-block the scaled
/// integer sum is exact, then `acc += d·d_a·Σ` in f32, super-block after super-block.
///
/// Matrix-matrix only: as an `8 × 1` matrix-vector tile it was slower than the row dot
/// product once the weights stream from DRAM (decode), so one-token products keep that.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_q6k<const R: usize, const T: usize, const G: usize, const DPW: bool>(
    w: *const u8,
    wrb: usize,
    rows: usize,
    a: *const u8,
    arb: usize,
    toks: usize,
    out: &mut [f32],
) {
    const WB: usize = std::mem::size_of::<BlockQ6K>();
    const AB: usize = std::mem::size_of::<BlockQ8K>();
    debug_assert!((R == 4 || R == 8) && R * T == 8 * G);
    let nb = wrb / WB;
    let m4 = _mm256_set1_epi8(0x0F);
    let m3 = _mm256_set1_epi8(0x03);
    let mut acc = [_mm256_setzero_ps(); G];
    let wp: [*const u8; R] = tile_rows(w, wrb, rows);
    let ap: [*const u8; T] = tile_rows(a, arb, toks);
    let next = w.wrapping_add(2 * R * wrb);
    for b in 0..nb {
        prefetch_lines(next, b * R * WB, (b + 1) * R * WB);
        let bw: [&BlockQ6K; R] = std::array::from_fn(|r| &*(wp[r].add(b * WB) as *const BlockQ6K));
        let ba: [&BlockQ8K; T] = std::array::from_fn(|t| &*(ap[t].add(b * AB) as *const BlockQ8K));
        let mut p = [_mm256_setzero_si256(); 16]; // R·T ≤ 16 pairs
                                                  // The offset: p -= Σ_k (32·sc_k)·bsum_k (|32·sc| ≤ 4096, |bsum| ≤ 2032: no overflow).
        for (r, br) in bw.iter().enumerate() {
            let sc = _mm_loadu_si128(br.scales.as_ptr() as *const __m128i);
            let sc32 = _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc), 5);
            for (t, bt) in ba.iter().enumerate() {
                let bs = _mm256_loadu_si256(bt.bsums.as_ptr() as *const __m256i);
                let i = t * R + r;
                p[i] = _mm256_sub_epi32(p[i], _mm256_madd_epi16(sc32, bs));
            }
        }
        for h in 0..2 {
            for (r, br) in bw.iter().enumerate() {
                let ql0 = _mm256_loadu_si256(br.ql.as_ptr().add(64 * h) as *const __m256i);
                let ql1 = _mm256_loadu_si256(br.ql.as_ptr().add(64 * h + 32) as *const __m256i);
                let qh = _mm256_loadu_si256(br.qh.as_ptr().add(32 * h) as *const __m256i);
                let sc = _mm_loadu_si128(br.scales.as_ptr() as *const __m128i);
                // Chunk c of this half: elements 128h + 32c.., low nibbles of ql0/ql1 then
                // high nibbles, with bits 2c, 2c+1 of qh on top.
                let q = [
                    _mm256_or_si256(
                        _mm256_and_si256(ql0, m4),
                        _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(ql1, m4),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                        _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4),
                    ),
                ];
                for (c, qc) in q.into_iter().enumerate() {
                    let k = 4 * h + c;
                    let shuf = _mm_loadu_si128(Q6K_SCALE_SHUFFLE[k].as_ptr() as *const __m128i);
                    let scv = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc, shuf));
                    for (t, bt) in ba.iter().enumerate() {
                        let y = _mm256_loadu_si256(bt.qs.as_ptr().add(32 * k) as *const __m256i);
                        let i = t * R + r;
                        let qy = _mm256_maddubs_epi16(qc, y);
                        p[i] = if DPW {
                            _mm256_dpwssd_epi32(p[i], qy, scv)
                        } else {
                            _mm256_add_epi32(p[i], _mm256_madd_epi16(qy, scv))
                        };
                    }
                }
            }
        }
        let dw = halves8::<R>(&std::array::from_fn(|r| bw[r].d));
        let da: [f32; T] = std::array::from_fn(|t| ba[t].d);
        for g in 0..G {
            let pg: [__m256i; 8] = std::array::from_fn(|i| p[8 * g + i]);
            let sum = _mm256_cvtepi32_ps(reduce8(&pg));
            let d = _mm256_mul_ps(dw, toks8::<R, T>(&da, g));
            acc[g] = _mm256_add_ps(acc[g], _mm256_mul_ps(d, sum));
        }
    }
    store_tile::<R, G>(&acc, rows, toks, out);
}

/// Entry points of the super-block tiles ([`tile_q4k`], [`tile_q6k`]): `$name: $wb =>
/// $kernel` with the kernel's extra const parameters, if any, after a comma.
macro_rules! tile_fns_k {
    ($feat:literal, $r:expr, $t:expr, $name:ident: $wb:ty => $kernel:ident $(, $extra:expr)?) => {
        /// Super-block tile kernel (see the `tile_*` function it calls); the CPU features it
        /// needs were detected by [`Kernels`](super::Kernels) before it was installed.
        pub fn $name(w: &[u8], wrb: usize, rows: usize, a: &[u8], arb: usize, toks: usize, out: &mut [f32]) {
            let (wb, ab) = (std::mem::size_of::<$wb>(), std::mem::size_of::<BlockQ8K>());
            assert!(
                (1..=$r).contains(&rows) && (1..=$t).contains(&toks),
                "tile of {rows}×{toks} exceeds {}×{}",
                $r,
                $t
            );
            assert!(wrb.is_multiple_of(wb) && w.len() >= rows * wrb, "weight rows");
            assert!(arb == wrb / wb * ab && a.len() >= toks * arb, "activation rows");
            assert!(out.len() >= rows * toks, "tile output");
            // Block fields are read through references: the rows must be aligned for them.
            assert!(
                (w.as_ptr() as usize).is_multiple_of(2) && wrb.is_multiple_of(2),
                "weight alignment"
            );
            assert!(
                (a.as_ptr() as usize).is_multiple_of(4) && arb.is_multiple_of(4),
                "activation alignment"
            );
            #[target_feature(enable = $feat)]
            unsafe fn imp(
                w: *const u8,
                wrb: usize,
                rows: usize,
                a: *const u8,
                arb: usize,
                toks: usize,
                out: &mut [f32],
            ) {
                $kernel::<{ $r }, { $t }, { $r * $t / 8 } $(, { $extra })?>(w, wrb, rows, a, arb, toks, out)
            }
            // SAFETY: shapes and alignment checked above; installed only after feature detection.
            unsafe { imp(w.as_ptr(), wrb, rows, a.as_ptr(), arb, toks, out) }
        }
    };
}

/// Checks a tile call's slices against the shapes (the kernels read through raw pointers).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn check<W: WBlock, A: ABlock>(
    w: &[u8],
    wrb: usize,
    rows: usize,
    a: &[u8],
    arb: usize,
    toks: usize,
    out: &[f32],
    r: usize,
    t: usize,
) {
    assert!(
        (1..=r).contains(&rows) && (1..=t).contains(&toks),
        "tile of {rows}×{toks} exceeds {r}×{t}"
    );
    assert!(wrb.is_multiple_of(W::BYTES) && w.len() >= rows * wrb, "weight rows");
    assert!(
        arb == wrb / W::BYTES * A::BYTES && a.len() >= toks * arb,
        "activation rows"
    );
    assert!(out.len() >= rows * toks, "tile output");
}

macro_rules! tile_fns {
    ($feat:literal, $vnni:expr, $r:expr, $t:expr, $( $name:ident: $w:ty, $a:ty; )*) => {
        $(
            /// Tile kernel (see the module docs); the CPU features it needs were detected by
            /// [`Kernels`](super::Kernels) before it was installed.
            pub fn $name(w: &[u8], wrb: usize, rows: usize, a: &[u8], arb: usize, toks: usize, out: &mut [f32]) {
                check::<$w, $a>(w, wrb, rows, a, arb, toks, out, $r, $t);
                #[target_feature(enable = $feat)]
                unsafe fn imp(w: *const u8, wrb: usize, rows: usize, a: *const u8, arb: usize, toks: usize, out: &mut [f32]) {
                    tile::<$w, $a, { $r }, { $t }, { $r * $t / 8 }, { $vnni }>(w, wrb, rows, a, arb, toks, out)
                }
                // SAFETY: shapes checked above; installed only after feature detection.
                unsafe { imp(w.as_ptr(), wrb, rows, a.as_ptr(), arb, toks, out) }
            }
        )*
    };
}

/// Rows × tokens of the AVX2 tiles (16 vector registers).
pub const AVX2_GEMM: (usize, usize) = (4, 2);
/// Rows × tokens of the AVX-512 tiles (32 vector registers).
pub const AVX512_GEMM: (usize, usize) = (4, 4);
/// Rows of the matrix-vector tiles (one token).
pub const GEMV_ROWS: usize = 8;

/// AVX2 + FMA tiles.
pub mod avx2 {
    use super::*;
    tile_fns!("avx2,fma,f16c", false, AVX2_GEMM.0, AVX2_GEMM.1,
        gemm_q4_0: Q4_0, A8_0;
        gemm_q4_1: Q4_1, A8_1;
        gemm_q5_0: Q5_0, A8_0;
        gemm_q8_0: Q8_0, A8_0;
    );
    tile_fns!("avx2,fma,f16c", false, GEMV_ROWS, 1,
        gemv_q4_0: Q4_0, A8_0;
        gemv_q4_1: Q4_1, A8_1;
        gemv_q5_0: Q5_0, A8_0;
        gemv_q8_0: Q8_0, A8_0;
    );
    tile_fns_k!("avx2,fma,f16c", AVX2_GEMM.0, AVX2_GEMM.1, gemm_q4k: BlockQ4K => tile_q4k);
    tile_fns_k!("avx2,fma,f16c", GEMV_ROWS, 1, gemv_q4k: BlockQ4K => tile_q4k);
    tile_fns_k!("avx2,fma,f16c", AVX2_GEMM.0, AVX2_GEMM.1, gemm_q6k: BlockQ6K => tile_q6k, false);
}

/// AVX-512 tiles: 256-bit vectors with VNNI byte dot products (`vpdpbusd`, AVX-512 VL+VNNI)
/// and the 32 registers of AVX-512 for a larger tile. (Zen 4 splits 512-bit operations in
/// two halves, so wider vectors would not add throughput here; the single-instruction dot
/// product and the larger register file do.)
pub mod avx512 {
    use super::*;
    tile_fns!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", true, AVX512_GEMM.0, AVX512_GEMM.1,
        gemm_q4_0: Q4_0, A8_0;
        gemm_q4_1: Q4_1, A8_1;
        gemm_q5_0: Q5_0, A8_0;
        gemm_q8_0: Q8_0, A8_0;
    );
    tile_fns!("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni", true, GEMV_ROWS, 1,
        gemv_q4_0: Q4_0, A8_0;
        gemv_q4_1: Q4_1, A8_1;
        gemv_q5_0: Q5_0, A8_0;
        gemv_q8_0: Q8_0, A8_0;
    );
    tile_fns_k!(
        "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
        AVX512_GEMM.0,
        AVX512_GEMM.1,
        gemm_q4k: BlockQ4K => tile_q4k
    );
    tile_fns_k!(
        "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
        GEMV_ROWS,
        1,
        gemv_q4k: BlockQ4K => tile_q4k
    );
    tile_fns_k!(
        "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni",
        AVX512_GEMM.0,
        AVX512_GEMM.1,
        gemm_q6k: BlockQ6K => tile_q6k, true
    );
}
