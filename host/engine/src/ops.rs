//! The numeric seam of the forward pass.
//!
//! Every arithmetic operator the model definition uses — matrix products with their dot
//! accumulation, RMSNorm, softmax (inside attention), SiLU (inside SwiGLU) and RoPE — goes
//! through the [`Ops`] trait. [`CpuOps`] is the float implementation (SIMD kernels and a
//! thread pool); an exact integer implementation or a CUDA backend plugs in here without
//! touching [`crate::forward`].

use crate::kernels::Kernels;
use crate::model::{RopeLayout, Weight};
use crate::pool::ThreadPool;
use crate::quant::quantize_act_row;
use std::sync::Mutex;

/// Shape of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    /// Query heads.
    pub n_head: usize,
    /// Key/value heads.
    pub n_head_kv: usize,
    /// Head dimension.
    pub head_dim: usize,
    /// Number of new query positions.
    pub n_tokens: usize,
    /// Position of the first new token (cache entries `0..pos0 + n_tokens` are valid).
    pub pos0: usize,
}

/// The operators of the forward pass.
pub trait Ops: Send + Sync {
    /// `out[t][r] = Σ_c w[r][c] · x[t][c]` for `n` tokens (`x` is `n × w.cols`, `out` is
    /// `n × w.rows`).
    fn matmul(&self, w: &Weight, x: &[f32], n: usize, out: &mut [f32]);
    /// `out = x / sqrt(mean(x²) + eps) * weight`, row by row (rows of `weight.len()`).
    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]);
    /// Rotates each head of each row of `x` (rows of `n_heads * head_dim`) by its position
    /// `pos0 + row`.
    fn rope(&self, x: &mut [f32], pos0: usize, n_heads: usize, head_dim: usize, layout: RopeLayout, base: f32);
    /// `gate = silu(gate) * up`, elementwise.
    fn swiglu(&self, gate: &mut [f32], up: &[f32]);
    /// Causal scaled-dot-product attention of the new queries `q` (`n_tokens × n_head ×
    /// head_dim`) over the cached keys/values (`ctx × n_head_kv × head_dim`), into `out`
    /// (same shape as `q`).
    fn attention(&self, q: &[f32], k_cache: &[f32], v_cache: &[f32], shape: AttnShape, out: &mut [f32]);
    /// Number of threads used.
    fn n_threads(&self) -> usize;
}

/// Float CPU operators: quantized SIMD dot products and a persistent thread pool.
pub struct CpuOps {
    kernels: Kernels,
    pool: ThreadPool,
    act_buf: Mutex<Vec<u64>>,
}

impl std::fmt::Debug for CpuOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CpuOps({:?}, {:?})", self.kernels, self.pool)
    }
}

/// A pointer that may be shared across the pool's threads; each thread writes disjoint
/// elements.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper).
    fn ptr(&self) -> *mut f32 {
        self.0
    }
}

impl CpuOps {
    /// Float operators with `n_threads` threads (0 = all cores) and the best kernels for this
    /// CPU (`ENGRAM_FORCE_SCALAR=1` forces the scalar ones).
    pub fn new(n_threads: usize) -> CpuOps {
        Self::with_kernels(n_threads, Kernels::detect())
    }

    /// Float operators with an explicit kernel table.
    pub fn with_kernels(n_threads: usize, kernels: Kernels) -> CpuOps {
        CpuOps {
            kernels,
            pool: ThreadPool::new(n_threads),
            act_buf: Mutex::new(Vec::new()),
        }
    }

    /// The kernel table in use.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }
}

thread_local! {
    /// Per-thread attention buffers (scores over the context, one head's output).
    static ATTN_SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
    /// Per-thread RoPE cos/sin table.
    static ROPE_SCRATCH: std::cell::RefCell<Vec<(f32, f32)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Rows of weights processed together per token in prefill (keeps them in L1).
const ROW_TILE: usize = 16;

impl Ops for CpuOps {
    fn matmul(&self, w: &Weight, x: &[f32], n: usize, out: &mut [f32]) {
        let (k, m) = (w.cols, w.rows);
        assert_eq!(x.len(), n * k, "matmul input shape");
        assert_eq!(out.len(), n * m, "matmul output shape");
        let act = w.ty.act_type();
        let arb = act.row_bytes(k);
        let mut guard = self.act_buf.lock().unwrap_or_else(|e| e.into_inner());
        let words = (n * arb).div_ceil(8);
        if guard.len() < words {
            guard.resize(words, 0);
        }
        // SAFETY: u64 storage viewed as bytes; the length is within the allocation.
        let abuf: &mut [u8] = unsafe { std::slice::from_raw_parts_mut(guard.as_mut_ptr() as *mut u8, n * arb) };
        if n == 1 {
            quantize_act_row(act, x, abuf);
        } else {
            let ap = abuf.as_mut_ptr() as usize;
            self.pool.for_ranges(n, &|r| {
                for t in r {
                    // SAFETY: each token row is written by exactly one thread.
                    let row = unsafe { std::slice::from_raw_parts_mut((ap as *mut u8).add(t * arb), arb) };
                    quantize_act_row(act, &x[t * k..(t + 1) * k], row);
                }
            });
        }
        let abuf: &[u8] = abuf;
        let dot = self.kernels.dot_for(w.ty);
        let wb = w.bytes();
        let wrb = w.row_bytes();
        let o = SharedMut(out.as_mut_ptr());
        // Chunks of rows small enough to balance across threads, large enough to amortise.
        let chunk = if n == 1 {
            (m / (8 * self.pool.n_threads())).clamp(16, 256)
        } else {
            64
        };
        self.pool.for_chunks(m, chunk, &|rows| {
            let mut r0 = rows.start;
            while r0 < rows.end {
                let r1 = (r0 + ROW_TILE).min(rows.end);
                for t in 0..n {
                    let a = &abuf[t * arb..(t + 1) * arb];
                    for r in r0..r1 {
                        let v = dot(&wb[r * wrb..(r + 1) * wrb], a);
                        // SAFETY: (t, r) is written by exactly this thread; in bounds by the asserts.
                        unsafe { *o.ptr().add(t * m + r) = v };
                    }
                }
                r0 = r1;
            }
        });
    }

    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        let d = weight.len();
        for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let ss: f32 = xr.iter().map(|v| v * v).sum::<f32>() / d as f32;
            let scale = 1.0 / (ss + eps).sqrt();
            for ((o, v), g) in or.iter_mut().zip(xr).zip(weight) {
                *o = v * scale * g;
            }
        }
    }

    fn rope(&self, x: &mut [f32], pos0: usize, n_heads: usize, head_dim: usize, layout: RopeLayout, base: f32) {
        let half = head_dim / 2;
        let row = n_heads * head_dim;
        let theta_scale = base.powf(-2.0 / head_dim as f32);
        ROPE_SCRATCH.with(|cell| {
            let mut cs = cell.borrow_mut();
            cs.resize(half, (0.0, 0.0));
            for (t, xr) in x.chunks_exact_mut(row).enumerate() {
                let mut theta = (pos0 + t) as f32;
                for c in cs.iter_mut() {
                    *c = (theta.cos(), theta.sin());
                    theta *= theta_scale;
                }
                for h in xr.chunks_exact_mut(head_dim) {
                    for (i, &(c, s)) in cs.iter().enumerate() {
                        let (a, b) = match layout {
                            RopeLayout::Adjacent => (2 * i, 2 * i + 1),
                            RopeLayout::Halves => (i, i + half),
                        };
                        let (x0, x1) = (h[a], h[b]);
                        h[a] = x0 * c - x1 * s;
                        h[b] = x0 * s + x1 * c;
                    }
                }
            }
        });
    }

    fn swiglu(&self, gate: &mut [f32], up: &[f32]) {
        for (g, u) in gate.iter_mut().zip(up) {
            *g = *g / (1.0 + (-*g).exp()) * u;
        }
    }

    fn attention(&self, q: &[f32], k_cache: &[f32], v_cache: &[f32], s: AttnShape, out: &mut [f32]) {
        let hd = s.head_dim;
        let q_row = s.n_head * hd;
        let kv_row = s.n_head_kv * hd;
        let group = s.n_head / s.n_head_kv;
        let scale = 1.0 / (hd as f32).sqrt();
        let dot = self.kernels.dot_f32;
        let o = SharedMut(out.as_mut_ptr());
        let jobs = s.n_tokens * s.n_head;
        self.pool.for_chunks(jobs, 1, &|range| {
            ATTN_SCRATCH.with(|cell| {
                let mut guard = cell.borrow_mut();
                let (scores, acc) = &mut *guard;
                if scores.len() < s.pos0 + s.n_tokens {
                    scores.resize(s.pos0 + s.n_tokens, 0.0);
                }
                if acc.len() < hd {
                    acc.resize(hd, 0.0);
                }
                let acc = &mut acc[..hd];
                for job in range {
                    let (t, h) = (job / s.n_head, job % s.n_head);
                    let kvh = h / group;
                    let n_ctx = s.pos0 + t + 1;
                    let qh = &q[t * q_row + h * hd..t * q_row + (h + 1) * hd];
                    let mut max = f32::NEG_INFINITY;
                    for (j, sc) in scores[..n_ctx].iter_mut().enumerate() {
                        let kj = &k_cache[j * kv_row + kvh * hd..j * kv_row + (kvh + 1) * hd];
                        *sc = dot(qh, kj) * scale;
                        max = max.max(*sc);
                    }
                    let mut sum = 0f32;
                    for sc in scores[..n_ctx].iter_mut() {
                        *sc = (*sc - max).exp();
                        sum += *sc;
                    }
                    let inv = 1.0 / sum;
                    acc.iter_mut().for_each(|a| *a = 0.0);
                    for (j, &p) in scores[..n_ctx].iter().enumerate() {
                        let vj = &v_cache[j * kv_row + kvh * hd..j * kv_row + (kvh + 1) * hd];
                        let p = p * inv;
                        for (a, v) in acc.iter_mut().zip(vj) {
                            *a += p * v;
                        }
                    }
                    // SAFETY: each (t, h) slice of `out` is written by exactly one thread.
                    let dst = unsafe { std::slice::from_raw_parts_mut(o.ptr().add(t * q_row + h * hd), hd) };
                    dst.copy_from_slice(acc);
                }
            });
        });
    }

    fn n_threads(&self) -> usize {
        self.pool.n_threads()
    }
}
