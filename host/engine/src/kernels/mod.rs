//! Dot-product kernels, chosen once at run time.
//!
//! [`Kernels::detect`] picks the fastest implementation this CPU supports (AVX-512 VNNI, else
//! AVX2+FMA on x86_64; NEON on aarch64) unless `ENGRAM_FORCE_SCALAR=1` is set, in which case
//! — like [`Kernels::scalar`] — the portable reference in [`scalar`] is used everywhere.
//!
//! Besides the row dot products ([`DotFn`]) a table may carry register-tiled kernels
//! ([`TileFn`]) for the 32-element block formats and the Q4_K/Q6_K super-blocks: `R` weight rows × `T` activation rows per
//! call, so that a weight block is unpacked once for several tokens (prefill) and an
//! activation block is loaded once for several rows (decode).

#[cfg(target_arch = "x86_64")]
pub mod avx2;
#[cfg(target_arch = "aarch64")]
pub mod neon;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod tile_x86;

use crate::quant::GgmlType;

/// A row dot product: weight row bytes · activation row bytes (in the weight's `ActType`).
pub type DotFn = fn(&[u8], &[u8]) -> f32;

/// A tile product: `out[t * rows + r] = w_row(r) · a_row(t)` for `r < rows`, `t < toks`.
/// `w` holds `rows` consecutive weight rows of `wrb` bytes, `a` holds `toks` activation rows
/// of `arb` bytes (in the weight type's activation format). Panics when a shape exceeds the
/// kernel's tile or the slices are too short.
pub type TileFn = fn(w: &[u8], wrb: usize, rows: usize, a: &[u8], arb: usize, toks: usize, out: &mut [f32]);

/// A tile kernel with the largest tile it computes.
#[derive(Clone, Copy)]
pub struct Tile {
    /// The kernel.
    pub f: TileFn,
    /// Weight rows per call (at most).
    pub rows: usize,
    /// Activation rows (tokens) per call (at most).
    pub toks: usize,
}

/// Tile kernels for Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K (in that order), for one tile shape;
/// `None` where the set has none for a type.
#[derive(Clone, Copy)]
struct TileSet {
    fns: [Option<TileFn>; 6],
    rows: usize,
    toks: usize,
}

/// Which instruction set a kernel table uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable scalar code.
    Scalar,
    /// x86_64 AVX2 + FMA.
    Avx2,
    /// x86_64 AVX-512 (F, BW, VL, VNNI) on top of AVX2 + FMA.
    Avx512,
    /// aarch64 Advanced SIMD.
    Neon,
}

/// A table of dot-product kernels for one instruction set.
#[derive(Clone, Copy)]
pub struct Kernels {
    /// The instruction set.
    pub isa: Isa,
    q4_0: DotFn,
    q4_1: DotFn,
    q5_0: DotFn,
    q8_0: DotFn,
    q4k: DotFn,
    q6k: DotFn,
    f32w: DotFn,
    f16w: DotFn,
    /// Plain f32 slice dot product (attention scores).
    pub dot_f32: fn(&[f32], &[f32]) -> f32,
    /// Matrix-matrix tiles (several tokens), if this table has them.
    gemm: Option<TileSet>,
    /// Matrix-vector tiles (one token, several rows), if this table has them.
    gemv: Option<TileSet>,
}

impl std::fmt::Debug for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kernels({:?})", self.isa)
    }
}

impl Kernels {
    /// The portable scalar reference kernels.
    pub fn scalar() -> Kernels {
        Kernels {
            isa: Isa::Scalar,
            q4_0: scalar::dot_q4_0,
            q4_1: scalar::dot_q4_1,
            q5_0: scalar::dot_q5_0,
            q8_0: scalar::dot_q8_0,
            q4k: scalar::dot_q4k,
            q6k: scalar::dot_q6k,
            f32w: scalar::dot_f32,
            f16w: scalar::dot_f16,
            dot_f32: scalar::dot_f32_slices,
            gemm: None,
            gemv: None,
        }
    }

    /// AVX2+FMA kernels, if this CPU has them.
    pub fn avx2() -> Option<Kernels> {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c") {
                return Some(Kernels {
                    isa: Isa::Avx2,
                    q4_0: avx2::dot_q4_0,
                    q4_1: avx2::dot_q4_1,
                    q5_0: avx2::dot_q5_0,
                    q8_0: avx2::dot_q8_0,
                    q4k: avx2::dot_q4k,
                    q6k: avx2::dot_q6k,
                    f32w: avx2::dot_f32,
                    f16w: avx2::dot_f16,
                    dot_f32: avx2::dot_f32_slices,
                    gemm: Some(TileSet {
                        fns: [
                            Some(tile_x86::avx2::gemm_q4_0),
                            Some(tile_x86::avx2::gemm_q4_1),
                            Some(tile_x86::avx2::gemm_q5_0),
                            Some(tile_x86::avx2::gemm_q8_0),
                            Some(tile_x86::avx2::gemm_q4k),
                            Some(tile_x86::avx2::gemm_q6k),
                        ],
                        rows: tile_x86::AVX2_GEMM.0,
                        toks: tile_x86::AVX2_GEMM.1,
                    }),
                    gemv: Some(TileSet {
                        fns: [
                            Some(tile_x86::avx2::gemv_q4_0),
                            Some(tile_x86::avx2::gemv_q4_1),
                            Some(tile_x86::avx2::gemv_q5_0),
                            Some(tile_x86::avx2::gemv_q8_0),
                            Some(tile_x86::avx2::gemv_q4k),
                            None, // Q6_K: the row dot product streams better (see tile_x86::tile_q6k)
                        ],
                        rows: tile_x86::GEMV_ROWS,
                        toks: 1,
                    }),
                });
            }
        }
        None
    }

    /// AVX-512 kernels (F, BW, VL and VNNI on top of AVX2+FMA), if this CPU has them: the
    /// AVX2 row dot products plus VNNI tiles with a larger register tile.
    pub fn avx512() -> Option<Kernels> {
        #[cfg(target_arch = "x86_64")]
        {
            let base = Kernels::avx2()?;
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512vnni")
            {
                return Some(Kernels {
                    isa: Isa::Avx512,
                    gemm: Some(TileSet {
                        fns: [
                            Some(tile_x86::avx512::gemm_q4_0),
                            Some(tile_x86::avx512::gemm_q4_1),
                            Some(tile_x86::avx512::gemm_q5_0),
                            Some(tile_x86::avx512::gemm_q8_0),
                            Some(tile_x86::avx512::gemm_q4k),
                            Some(tile_x86::avx512::gemm_q6k),
                        ],
                        rows: tile_x86::AVX512_GEMM.0,
                        toks: tile_x86::AVX512_GEMM.1,
                    }),
                    gemv: Some(TileSet {
                        fns: [
                            Some(tile_x86::avx512::gemv_q4_0),
                            Some(tile_x86::avx512::gemv_q4_1),
                            Some(tile_x86::avx512::gemv_q5_0),
                            Some(tile_x86::avx512::gemv_q8_0),
                            Some(tile_x86::avx512::gemv_q4k),
                            None, // Q6_K: the row dot product streams better (see tile_x86::tile_q6k)
                        ],
                        rows: tile_x86::GEMV_ROWS,
                        toks: 1,
                    }),
                    ..base
                });
            }
        }
        None
    }

    /// NEON kernels (aarch64; Advanced SIMD is part of the base architecture). Formats without
    /// a NEON dot product use the scalar reference.
    pub fn neon() -> Option<Kernels> {
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                return Some(Kernels {
                    isa: Isa::Neon,
                    q4_0: neon::dot_q4_0,
                    q4_1: neon::dot_q4_1,
                    q8_0: neon::dot_q8_0,
                    f32w: neon::dot_f32,
                    dot_f32: neon::dot_f32_slices,
                    ..Kernels::scalar()
                });
            }
        }
        None
    }

    /// The best kernels for this CPU, or the scalar ones when `ENGRAM_FORCE_SCALAR=1`.
    pub fn detect() -> Kernels {
        if force_scalar() {
            return Kernels::scalar();
        }
        Kernels::avx512()
            .or_else(Kernels::avx2)
            .or_else(Kernels::neon)
            .unwrap_or_else(Kernels::scalar)
    }

    /// Every kernel table this CPU can run, the scalar reference first (for tests and
    /// benchmarks that compare them).
    pub fn available() -> Vec<Kernels> {
        [
            Some(Kernels::scalar()),
            Kernels::avx2(),
            Kernels::avx512(),
            Kernels::neon(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// The tile kernel for weights of type `ty` multiplied with `n_tokens` activation rows:
    /// matrix-vector tiles for one token, matrix-matrix tiles for more. `None` when this
    /// table has none for the type (the caller uses [`Kernels::dot_for`] pair by pair).
    pub fn tile_for(&self, ty: GgmlType, n_tokens: usize) -> Option<Tile> {
        let set = if n_tokens == 1 { self.gemv? } else { self.gemm? };
        let i = match ty {
            GgmlType::Q4_0 => 0,
            GgmlType::Q4_1 => 1,
            GgmlType::Q5_0 => 2,
            GgmlType::Q8_0 => 3,
            GgmlType::Q4K => 4,
            GgmlType::Q6K => 5,
            _ => return None,
        };
        Some(Tile {
            f: set.fns[i]?,
            rows: set.rows,
            toks: set.toks,
        })
    }

    /// The row dot product for weights of type `ty`.
    pub fn dot_for(&self, ty: GgmlType) -> DotFn {
        match ty {
            GgmlType::Q4_0 => self.q4_0,
            GgmlType::Q4_1 => self.q4_1,
            GgmlType::Q5_0 => self.q5_0,
            GgmlType::Q8_0 => self.q8_0,
            GgmlType::Q4K => self.q4k,
            GgmlType::Q6K => self.q6k,
            GgmlType::F32 => self.f32w,
            GgmlType::F16 => self.f16w,
        }
    }
}

/// True when `ENGRAM_FORCE_SCALAR` is set to something other than empty or `0`.
pub fn force_scalar() -> bool {
    std::env::var("ENGRAM_FORCE_SCALAR")
        .map(|v| !v.is_empty() && v != "0")
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::*;

    /// A deterministic pseudo-random byte stream (xorshift).
    fn bytes(seed: u64, n: usize) -> Vec<u8> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    /// Random weight bytes with sane f16 scales (random bits would give NaN/inf).
    fn weights(ty: GgmlType, n: usize, seed: u64) -> Vec<u8> {
        let mut b = bytes(seed, ty.row_bytes(n));
        let bb = ty.block_bytes();
        let scale = half::f16::from_f32(0.01).to_bits().to_le_bytes();
        let minv = half::f16::from_f32(-0.02).to_bits().to_le_bytes();
        for blk in b.chunks_exact_mut(bb) {
            match ty {
                GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => blk[0..2].copy_from_slice(&scale),
                GgmlType::Q4_1 | GgmlType::Q4K => {
                    blk[0..2].copy_from_slice(&scale);
                    blk[2..4].copy_from_slice(&minv);
                }
                GgmlType::Q6K => blk[208..210].copy_from_slice(&scale),
                GgmlType::F16 => blk.copy_from_slice(&scale),
                GgmlType::F32 => blk.copy_from_slice(&0.5f32.to_le_bytes()),
            }
        }
        b
    }

    fn acts(n: usize, seed: u64) -> Vec<f32> {
        bytes(seed, n).iter().map(|&b| (b as f32 - 128.0) / 37.0).collect()
    }

    fn aligned_act(ty: ActType, x: &[f32]) -> Vec<u8> {
        // u64 storage guarantees alignment for the f32/i16 fields.
        let mut store = vec![0u64; ty.row_bytes(x.len()).div_ceil(8)];
        let buf = unsafe { std::slice::from_raw_parts_mut(store.as_mut_ptr() as *mut u8, ty.row_bytes(x.len())) };
        quantize_act_row(ty, x, buf);
        buf.to_vec()
    }

    const ALL: [GgmlType; 8] = [
        GgmlType::F32,
        GgmlType::F16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4K,
        GgmlType::Q6K,
    ];

    /// Bytes copied into u64-aligned storage, so block casts succeed.
    fn aligned(b: &[u8]) -> Vec<u64> {
        let mut ws = vec![0u64; b.len().div_ceil(8)];
        // SAFETY: the u64 storage holds at least `b.len()` bytes.
        unsafe { std::slice::from_raw_parts_mut(ws.as_mut_ptr() as *mut u8, b.len()) }.copy_from_slice(b);
        ws
    }

    fn view(ws: &[u64], len: usize) -> &[u8] {
        assert!(len <= ws.len() * 8);
        // SAFETY: within the allocation.
        unsafe { std::slice::from_raw_parts(ws.as_ptr() as *const u8, len) }
    }

    /// The SIMD tables this CPU runs (no test can compare anything where there are none).
    fn simd_tables() -> Vec<Kernels> {
        let t: Vec<Kernels> = Kernels::available()
            .into_iter()
            .filter(|k| k.isa != Isa::Scalar)
            .collect();
        if t.is_empty() {
            eprintln!("no SIMD kernels on this CPU: only the scalar kernels exist here");
        }
        t
    }

    #[test]
    fn simd_kernels_are_bit_identical_to_scalar_reference() {
        let sc = Kernels::scalar();
        for simd in simd_tables() {
            for ty in ALL {
                for (seed, n) in [(1u64, 256usize), (7, 512), (99, 4864)] {
                    let w = weights(ty, n, seed);
                    let x = acts(n, seed + 3);
                    let a = aligned_act(ty.act_type(), &x);
                    let ws = aligned(&w);
                    let as_ = aligned(&a);
                    let (wb, ab) = (view(&ws, w.len()), view(&as_, a.len()));
                    let r = (sc.dot_for(ty))(wb, ab);
                    let s = (simd.dot_for(ty))(wb, ab);
                    assert_eq!(
                        r.to_bits(),
                        s.to_bits(),
                        "{:?} {ty:?} n={n}: scalar {r} vs simd {s}",
                        simd.isa
                    );
                }
            }
        }
    }

    #[test]
    fn tiles_are_bit_identical_to_scalar_reference() {
        // Every tile kernel, full and partial tiles, against the scalar dot product of each
        // (row, token) pair.
        let sc = Kernels::scalar();
        let mut checked = 0;
        for simd in simd_tables() {
            if matches!(simd.isa, Isa::Avx2 | Isa::Avx512) {
                // The x86 tables tile every quantized type in prefill (Q6_K: only there).
                for ty in [
                    GgmlType::Q4_0,
                    GgmlType::Q4_1,
                    GgmlType::Q5_0,
                    GgmlType::Q8_0,
                    GgmlType::Q4K,
                    GgmlType::Q6K,
                ] {
                    assert!(
                        simd.tile_for(ty, 2).is_some(),
                        "{:?} has no {ty:?} prefill tile",
                        simd.isa
                    );
                }
            }
            for ty in ALL {
                for n_tok in [1usize, 2, 3, 4, 5] {
                    let Some(tile) = simd.tile_for(ty, n_tok) else { continue };
                    let sizes = if ty.block_size() == QK_K {
                        [(3u64, 256usize), (8, 512), (21, 1536)]
                    } else {
                        [(3u64, 64usize), (8, 576), (21, 1536)]
                    };
                    for (seed, n) in sizes {
                        let n_rows = 9;
                        let wrb = ty.row_bytes(n);
                        let w = weights(ty, n * n_rows, seed);
                        let act = ty.act_type();
                        let arb = act.row_bytes(n);
                        let mut a = Vec::new();
                        for t in 0..n_tok {
                            a.extend(aligned_act(act, &acts(n, seed + 10 + t as u64)));
                        }
                        let ws = aligned(&w);
                        let as_ = aligned(&a);
                        let (wb, ab) = (view(&ws, w.len()), view(&as_, a.len()));
                        for rows in 1..=tile.rows {
                            for toks in 1..=tile.toks.min(n_tok) {
                                let mut out = vec![f32::NAN; rows * toks];
                                let r0 = n_rows - rows; // a tile that ends at the last row
                                (tile.f)(&wb[r0 * wrb..], wrb, rows, ab, arb, toks, &mut out);
                                for t in 0..toks {
                                    for r in 0..rows {
                                        let want = (sc.dot_for(ty))(
                                            &wb[(r0 + r) * wrb..(r0 + r + 1) * wrb],
                                            &ab[t * arb..(t + 1) * arb],
                                        );
                                        let got = out[t * rows + r];
                                        assert!(
                                            want.to_bits() == got.to_bits(),
                                            "{:?} {ty:?} n={n} tile {rows}x{toks} ({r},{t}): scalar {want} vs tile {got}",
                                            simd.isa
                                        );
                                        checked += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        eprintln!("{checked} tile results checked");
    }

    #[test]
    #[should_panic(expected = "exceeds")]
    fn tile_refuses_a_shape_beyond_its_tile() {
        let Some(k) = simd_tables().into_iter().next() else {
            panic!("exceeds (no SIMD here)")
        };
        let tile = k.tile_for(GgmlType::Q8_0, 2).expect("SIMD tables have Q8_0 tiles");
        let w = vec![0u8; 34 * (tile.rows + 1)];
        let a = vec![0u64; 8];
        (tile.f)(&w, 34, tile.rows + 1, view(&a, 36), 36, 1, &mut [0.0; 64]);
    }

    #[test]
    fn quantized_dot_approximates_float_dot() {
        // The scalar kernels against dequantize-then-f32: checks the block layouts themselves.
        let sc = Kernels::scalar();
        for ty in ALL {
            let n = 512;
            let w = weights(ty, n, 5);
            let mut ws = vec![0u64; w.len().div_ceil(8)];
            let wb = unsafe { std::slice::from_raw_parts_mut(ws.as_mut_ptr() as *mut u8, w.len()) };
            wb.copy_from_slice(&w);
            let mut deq = vec![0f32; n];
            dequantize_row(ty, wb, &mut deq);
            let x = acts(n, 11);
            let exact: f32 = deq.iter().zip(&x).map(|(a, b)| a * b).sum();
            let a = aligned_act(ty.act_type(), &x);
            let mut as_ = vec![0u64; a.len().div_ceil(8)];
            let ab = unsafe { std::slice::from_raw_parts_mut(as_.as_mut_ptr() as *mut u8, a.len()) };
            ab.copy_from_slice(&a);
            let q = (sc.dot_for(ty))(wb, ab);
            let mag: f32 = deq.iter().zip(&x).map(|(a, b)| (a * b).abs()).sum();
            assert!(
                (q - exact).abs() <= 0.02 * mag + 1e-3,
                "{ty:?}: quantized {q} vs float {exact} (mag {mag})"
            );
        }
    }

    #[test]
    fn f32_slice_dot_is_bit_identical_across_tables() {
        let sc = Kernels::scalar();
        for n in [0usize, 5, 16, 64, 77] {
            let a = acts(n, 1);
            let b = acts(n, 2);
            let r = (sc.dot_f32)(&a, &b);
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((r - plain).abs() <= 1e-4 * (1.0 + plain.abs()), "n={n}: {r} vs {plain}");
            for simd in simd_tables() {
                let s = (simd.dot_f32)(&a, &b);
                assert_eq!(r.to_bits(), s.to_bits(), "{:?} n={n}: {r} vs {s}", simd.isa);
            }
        }
    }
}
