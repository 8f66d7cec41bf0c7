//! The dense layer `y = x·Wᵀ + b` on f32, the embedder's hot loop.
//!
//! Weights are packed once at load time into *panels* of [`NR`] output columns: panel `p`
//! holds, for every input index `k`, the 16 weights `W[p·16 .. p·16+16][k]` contiguously
//! (columns past the end are zero). A micro-kernel then computes a tile of up to [`MR`] rows ×
//! 16 columns with the accumulators in registers, streaming the panel linearly.
//!
//! Two micro-kernels compute the same tile: an AVX2/FMA one (x86_64, chosen at run time) and a
//! portable one written so the compiler can auto-vectorise it. Every output element is a
//! sum over `k` in increasing order, whatever the tile shape, row count, thread split or batch
//! the row belongs to; so a sentence embeds to the same bits alone or inside a batch, and with
//! any number of threads.

use rayon::prelude::*;

/// Output columns per panel (two AVX2 registers).
pub const NR: usize = 16;
/// Rows per micro-kernel tile (6 rows × 2 registers = 12 accumulators, leaving registers for
/// the two weight vectors and the broadcast input).
pub const MR: usize = 6;
/// Rows packed and processed per pass over the panels: at most 96 × 1536 floats (576 KiB),
/// which stays in a core's L2 cache while the weights stream past.
const ROW_BLOCK: usize = 16 * MR;
/// Below this many multiply-adds a layer runs on the calling thread only.
const PARALLEL_MIN_FLOPS: usize = 1 << 18;

/// Which micro-kernel the dense layers use (see [`Embedder::kernel`](crate::Embedder::kernel)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Portable Rust, auto-vectorised by the compiler.
    Portable,
    /// AVX2 + FMA intrinsics (x86_64 only, detected at run time).
    Avx2Fma,
}

impl Kernel {
    /// The fastest kernel this CPU supports.
    pub fn detect() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Kernel::Avx2Fma;
            }
        }
        Kernel::Portable
    }
}

/// A dense layer with packed weights.
#[derive(Clone)]
pub struct Linear {
    in_dim: usize,
    out_dim: usize,
    /// `out_dim.div_ceil(NR)` panels of `in_dim × NR` floats.
    panels: Vec<f32>,
    /// The bias, zero-padded to a whole number of panels.
    bias: Vec<f32>,
}

impl Linear {
    /// Packs a PyTorch-layout weight (`[out_dim, in_dim]`, row-major) and its bias.
    ///
    /// # Panics
    /// If the slice lengths do not match the dimensions (callers check shapes on load).
    pub fn new(weight: &[f32], bias: &[f32], out_dim: usize, in_dim: usize) -> Linear {
        assert_eq!(weight.len(), out_dim * in_dim, "weight shape");
        assert_eq!(bias.len(), out_dim, "bias shape");
        let n_panels = out_dim.div_ceil(NR);
        let mut panels = vec![0.0f32; n_panels * in_dim * NR];
        for (o, row) in weight.chunks_exact(in_dim).enumerate() {
            let (p, j) = (o / NR, o % NR);
            let panel = &mut panels[p * in_dim * NR..(p + 1) * in_dim * NR];
            for (k, &w) in row.iter().enumerate() {
                panel[k * NR + j] = w;
            }
        }
        let mut padded_bias = bias.to_vec();
        padded_bias.resize(n_panels * NR, 0.0);
        Linear {
            in_dim,
            out_dim,
            panels,
            bias: padded_bias,
        }
    }

    /// Stacks several layers with the same input into one wider layer (outputs concatenated).
    pub fn concat(parts: &[(&[f32], &[f32], usize)], in_dim: usize) -> Linear {
        let out_dim = parts.iter().map(|p| p.2).sum();
        let mut weight = Vec::with_capacity(out_dim * in_dim);
        let mut bias = Vec::with_capacity(out_dim);
        for (w, b, _) in parts {
            weight.extend_from_slice(w);
            bias.extend_from_slice(b);
        }
        Linear::new(&weight, &bias, out_dim, in_dim)
    }

    /// Output width.
    #[cfg(test)]
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// Computes `out[r] = x[r]·Wᵀ + b` for the `n = x.len() / in_dim` rows of `x`.
    /// With `parallel`, panels are split across the current rayon pool.
    pub fn forward(&self, x: &[f32], out: &mut [f32], kernel: Kernel, parallel: bool) {
        let n = x.len() / self.in_dim;
        assert_eq!(x.len(), n * self.in_dim, "input is not whole rows");
        assert_eq!(out.len(), n * self.out_dim, "output size");
        let n_panels = self.out_dim.div_ceil(NR);
        let dst = OutPtr(out.as_mut_ptr());
        let work = n * self.in_dim * self.out_dim;
        let threads = rayon::current_num_threads();
        if parallel && work >= PARALLEL_MIN_FLOPS && threads > 1 {
            // Two chunks of panels per thread balance uneven progress on a busy machine.
            let chunk = n_panels.div_ceil(threads * 2).max(1);
            (0..n_panels.div_ceil(chunk)).into_par_iter().for_each(|c| {
                let panels = c * chunk..((c + 1) * chunk).min(n_panels);
                // SAFETY: each chunk writes only its own panels' columns of `out`.
                unsafe { self.panels_rows(x, n, panels, dst, kernel) }
            });
        } else {
            // SAFETY: single-threaded; `out` has `n * out_dim` elements (checked above).
            unsafe { self.panels_rows(x, n, 0..n_panels, dst, kernel) }
        }
    }

    /// Computes the columns of `panels` for all `n` rows.
    ///
    /// Rows are taken [`ROW_BLOCK`] at a time and packed tile by tile into `k`-major order
    /// (`packed[t][kk][i] = x[t·MR + i][kk]`), so the micro-kernel reads its inputs as one
    /// sequential stream; the packed block stays in cache while every panel passes over it.
    ///
    /// # Safety
    /// `dst` must point to `n * out_dim` writable floats, and no other thread may write the
    /// columns of `panels` concurrently.
    unsafe fn panels_rows(
        &self,
        x: &[f32],
        n: usize,
        panels: std::ops::Range<usize>,
        dst: OutPtr,
        kernel: Kernel,
    ) {
        let k = self.in_dim;
        let mut packed = vec![0.0f32; ROW_BLOCK.min(n.next_multiple_of(MR)) * k];
        for block in (0..n).step_by(ROW_BLOCK) {
            let rows = ROW_BLOCK.min(n - block);
            pack_rows(&x[block * k..(block + rows) * k], k, &mut packed);
            for p in panels.clone() {
                let panel = &self.panels[p * k * NR..(p + 1) * k * NR];
                let bias: &[f32; NR] = self.bias[p * NR..(p + 1) * NR].try_into().unwrap();
                let col0 = p * NR;
                let width = NR.min(self.out_dim - col0);
                for t in 0..rows.div_ceil(MR) {
                    let mr = MR.min(rows - t * MR);
                    let a = &packed[t * MR * k..(t + 1) * MR * k];
                    let mut tile = [[0.0f32; NR]; MR];
                    match kernel {
                        #[cfg(target_arch = "x86_64")]
                        Kernel::Avx2Fma => avx2::tile(a, k, mr, panel, bias, &mut tile),
                        _ => portable_tile(a, k, mr, panel, bias, &mut tile),
                    }
                    let r = block + t * MR;
                    for (i, row) in tile.iter().take(mr).enumerate() {
                        let o = dst.0.add((r + i) * self.out_dim + col0);
                        if width == NR {
                            // A fixed-size copy the compiler turns into two vector stores.
                            o.cast::<[f32; NR]>().write_unaligned(*row);
                        } else {
                            std::ptr::copy_nonoverlapping(row.as_ptr(), o, width);
                        }
                    }
                }
            }
        }
    }
}

/// Packs `rows` (row-major, `k` wide) into tiles of [`MR`] rows in `k`-major order; rows of
/// the last tile past the end are zero.
fn pack_rows(rows: &[f32], k: usize, packed: &mut [f32]) {
    let n = rows.len() / k;
    for t in 0..n.div_ceil(MR) {
        let dst = &mut packed[t * MR * k..(t + 1) * MR * k];
        for i in 0..MR {
            let r = t * MR + i;
            if r < n {
                let src = &rows[r * k..(r + 1) * k];
                for (kk, &v) in src.iter().enumerate() {
                    dst[kk * MR + i] = v;
                }
            } else {
                for kk in 0..k {
                    dst[kk * MR + i] = 0.0;
                }
            }
        }
    }
}

/// A raw output pointer shared by the threads of one [`Linear::forward`]; each thread writes a
/// disjoint set of columns.
#[derive(Clone, Copy)]
struct OutPtr(*mut f32);
// SAFETY: see `Linear::panel_rows`: writes through it never overlap between threads.
unsafe impl Send for OutPtr {}
unsafe impl Sync for OutPtr {}

/// Portable tile: `tile[i][j] = bias[j] + Σ_k a[k][i] · panel[k][j]` for `i < mr`, where `a`
/// is one packed tile (`k × MR`, see [`pack_rows`]).
fn portable_tile(
    a: &[f32],
    k: usize,
    mr: usize,
    panel: &[f32],
    bias: &[f32; NR],
    tile: &mut [[f32; NR]; MR],
) {
    for (i, t) in tile.iter_mut().take(mr).enumerate() {
        let mut acc = *bias;
        for (xs, w) in a.chunks_exact(MR).zip(panel.chunks_exact(NR)).take(k) {
            let xv = xs[i];
            for j in 0..NR {
                acc[j] += xv * w[j];
            }
        }
        *t = acc;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// AVX2/FMA tile; same contract as `portable_tile`.
    pub(super) fn tile(
        a: &[f32],
        k: usize,
        mr: usize,
        panel: &[f32],
        bias: &[f32; NR],
        tile: &mut [[f32; NR]; MR],
    ) {
        assert!(a.len() >= MR * k && panel.len() >= k * NR && mr <= MR);
        // SAFETY: `Kernel::Avx2Fma` is only chosen after run-time detection of AVX2 and FMA;
        // the asserts above bound every pointer offset used below.
        unsafe {
            match mr {
                6 => tile_n::<6>(a, k, panel, bias, tile),
                5 => tile_n::<5>(a, k, panel, bias, tile),
                4 => tile_n::<4>(a, k, panel, bias, tile),
                3 => tile_n::<3>(a, k, panel, bias, tile),
                2 => tile_n::<2>(a, k, panel, bias, tile),
                _ => tile_n::<1>(a, k, panel, bias, tile),
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn tile_n<const R: usize>(
        a: &[f32],
        k: usize,
        panel: &[f32],
        bias: &[f32; NR],
        tile: &mut [[f32; NR]; MR],
    ) {
        let b0 = _mm256_loadu_ps(bias.as_ptr());
        let b1 = _mm256_loadu_ps(bias.as_ptr().add(8));
        let mut acc0 = [b0; R];
        let mut acc1 = [b1; R];
        let mut xp = a.as_ptr();
        let mut wp = panel.as_ptr();
        for _ in 0..k {
            let w0 = _mm256_loadu_ps(wp);
            let w1 = _mm256_loadu_ps(wp.add(8));
            for i in 0..R {
                let xv = _mm256_broadcast_ss(&*xp.add(i));
                acc0[i] = _mm256_fmadd_ps(xv, w0, acc0[i]);
                acc1[i] = _mm256_fmadd_ps(xv, w1, acc1[i]);
            }
            xp = xp.add(MR);
            wp = wp.add(NR);
        }
        for i in 0..R {
            _mm256_storeu_ps(tile[i].as_mut_ptr(), acc0[i]);
            _mm256_storeu_ps(tile[i].as_mut_ptr().add(8), acc1[i]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random stream in [-1, 1).
    fn noise(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    /// The plain definition, accumulated in f64: the scalar reference.
    fn reference(x: &[f32], w: &[f32], b: &[f32], n: usize, m: usize, k: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; n * m];
        for r in 0..n {
            for o in 0..m {
                let mut s = b[o] as f64;
                for i in 0..k {
                    s += x[r * k + i] as f64 * w[o * k + i] as f64;
                }
                y[r * m + o] = s as f32;
            }
        }
        y
    }

    fn kernels() -> Vec<Kernel> {
        let mut v = vec![Kernel::Portable];
        if Kernel::detect() != Kernel::Portable {
            v.push(Kernel::detect());
        }
        v
    }

    #[test]
    fn matches_the_scalar_reference_for_odd_shapes() {
        for &(n, m, k) in &[
            (1, 1, 1),
            (3, 17, 5),
            (7, 40, 33),
            (33, 16, 64),
            (5, 100, 384),
            (200, 35, 9),
        ] {
            let x = noise(1, n * k);
            let w = noise(2, m * k);
            let b = noise(3, m);
            let want = reference(&x, &w, &b, n, m, k);
            let lin = Linear::new(&w, &b, m, k);
            for kernel in kernels() {
                for parallel in [false, true] {
                    let mut got = vec![f32::NAN; n * m];
                    lin.forward(&x, &mut got, kernel, parallel);
                    for (g, e) in got.iter().zip(&want) {
                        assert!(
                            (g - e).abs() <= 1e-5 * (1.0 + e.abs()),
                            "{kernel:?} n={n} m={m} k={k}: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_row_gives_the_same_bits_alone_in_a_batch_and_on_many_threads() {
        let (n, m, k) = (103, 48, 96);
        let x = noise(4, n * k);
        let w = noise(5, m * k);
        let b = noise(6, m);
        let lin = Linear::new(&w, &b, m, k);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for kernel in kernels() {
            let mut batch = vec![0.0; n * m];
            lin.forward(&x, &mut batch, kernel, false);
            let mut threaded = vec![0.0; n * m];
            pool.install(|| lin.forward(&x, &mut threaded, kernel, true));
            assert_eq!(batch, threaded);
            for r in 0..n {
                let mut one = vec![0.0; m];
                lin.forward(&x[r * k..(r + 1) * k], &mut one, kernel, false);
                assert_eq!(one, batch[r * m..(r + 1) * m], "row {r} {kernel:?}");
            }
        }
    }

    #[test]
    fn concat_stacks_outputs() {
        let (m1, m2, k) = (3, 5, 4);
        let (w1, b1, w2, b2) = (
            noise(7, m1 * k),
            noise(8, m1),
            noise(9, m2 * k),
            noise(10, m2),
        );
        let x = noise(11, k);
        let both = Linear::concat(&[(&w1, &b1, m1), (&w2, &b2, m2)], k);
        assert_eq!(both.out_dim(), m1 + m2);
        let mut y = vec![0.0; m1 + m2];
        both.forward(&x, &mut y, Kernel::Portable, false);
        let mut want = reference(&x, &w1, &b1, 1, m1, k);
        want.extend(reference(&x, &w2, &b2, 1, m2, k));
        for (g, e) in y.iter().zip(&want) {
            assert!((g - e).abs() < 1e-5);
        }
    }
}
