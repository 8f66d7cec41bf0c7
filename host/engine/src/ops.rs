//! The numeric seam of the forward pass.
//!
//! Every arithmetic operator the model definition uses — matrix products with their dot
//! accumulation, RMSNorm, softmax (inside attention), SiLU (inside SwiGLU) and RoPE — goes
//! through the [`Ops`] trait. [`CpuOps`] is the float implementation (SIMD kernels and a
//! thread pool); an exact integer implementation or a CUDA backend plugs in here without
//! touching [`crate::forward`].

use crate::forward::DeviceState;
use crate::kernels::Kernels;
use crate::model::{Model, RopeLayout, Weight};
use crate::pool::ThreadPool;
use crate::quant::{quantize_act_row, ActType};
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
    /// Several products of the same input: `outs[i] = ws[i] · x` (all `ws` have the same
    /// `cols`). An implementation may share the input's preparation and one parallel job
    /// among them; the default computes them one after another with [`Ops::matmul`].
    fn matmul_many(&self, ws: &[&Weight], x: &[f32], n: usize, outs: &mut [&mut [f32]]) {
        assert_eq!(ws.len(), outs.len(), "one output per weight");
        for (w, out) in ws.iter().zip(outs.iter_mut()) {
            self.matmul(w, x, n, out);
        }
    }
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
    /// A fresh forward-pass state on this backend's own device for a session of `n_ctx`
    /// positions over `model` (its activations and KV cache kept there), or `None` — the
    /// default, every host backend — to run the session on host memory through these
    /// operators.
    fn device_session(&self, model: &Model, n_ctx: usize) -> Option<Box<dyn DeviceState>> {
        let _ = (model, n_ctx);
        None
    }
}

/// Float CPU operators: quantized SIMD dot products and a persistent thread pool.
pub struct CpuOps {
    kernels: Kernels,
    pool: ThreadPool,
    /// Quantized activations, one buffer per [`ActType`] (u64 storage keeps blocks aligned).
    act_buf: Mutex<[Vec<u64>; 4]>,
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
            act_buf: Mutex::new(Default::default()),
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

/// One piece of a (multi-)matmul job: rows `r0..r1` of weight `wi`.
#[derive(Clone, Copy)]
struct Piece {
    wi: u8,
    r0: u32,
    r1: u32,
}

fn act_slot(a: ActType) -> usize {
    match a {
        ActType::F32 => 0,
        ActType::Q8_0 => 1,
        ActType::Q8_1 => 2,
        ActType::Q8K => 3,
    }
}

/// Most weights one [`CpuOps::matmul_many`] job takes.
const MAX_FUSED: usize = 4;

impl CpuOps {
    /// `outs[i] = ws[i] · x` in one parallel job: the input is quantized once per activation
    /// format, and the rows of every weight are handed out as pieces of one job.
    fn matmuls(&self, ws: &[&Weight], x: &[f32], n: usize, outs: &mut [&mut [f32]]) {
        assert_eq!(ws.len(), outs.len(), "one output per weight");
        if ws.len() > MAX_FUSED {
            let (wa, wb) = ws.split_at(MAX_FUSED);
            let (oa, ob) = outs.split_at_mut(MAX_FUSED);
            self.matmuls(wa, x, n, oa);
            self.matmuls(wb, x, n, ob);
            return;
        }
        let Some(first) = ws.first() else { return };
        let k = first.cols;
        assert_eq!(x.len(), n * k, "matmul input shape");
        for (w, o) in ws.iter().zip(outs.iter()) {
            assert_eq!(w.cols, k, "fused matmuls share their input");
            assert_eq!(o.len(), n * w.rows, "matmul output shape");
        }
        let mut guard = self.act_buf.lock().unwrap_or_else(|e| e.into_inner());
        // Quantize the input once for each activation format the weights need.
        let mut acts: [Option<(usize, usize)>; 4] = [None; 4]; // (pointer, row bytes)
        for w in ws {
            let act = w.ty.act_type();
            let slot = act_slot(act);
            if acts[slot].is_some() {
                continue;
            }
            let arb = act.row_bytes(k);
            let buf = &mut guard[slot];
            let words = (n * arb).div_ceil(8);
            if buf.len() < words {
                buf.resize(words, 0);
            }
            let ap = buf.as_mut_ptr() as usize;
            // SAFETY: u64 storage viewed as bytes; each token's row is within the allocation
            // and written by exactly one thread.
            let quant = |r: std::ops::Range<usize>| {
                for t in r {
                    let row = unsafe { std::slice::from_raw_parts_mut((ap as *mut u8).add(t * arb), arb) };
                    quantize_act_row(act, &x[t * k..(t + 1) * k], row);
                }
            };
            if n == 1 {
                quant(0..1);
            } else {
                self.pool.for_ranges(n, &quant);
            }
            acts[slot] = Some((ap, arb));
        }
        // Cut every weight's rows into pieces small enough to balance across the threads
        // and large enough to amortise, whole tiles where a tile kernel exists.
        let nt = self.pool.n_threads();
        let mut pieces = [Piece { wi: 0, r0: 0, r1: 0 }; 1024];
        let mut n_pieces = 0;
        let mut outp = [SharedMut(std::ptr::null_mut()); MAX_FUSED];
        for (wi, (w, o)) in ws.iter().zip(outs.iter_mut()).enumerate() {
            outp[wi] = SharedMut(o.as_mut_ptr());
            let m = w.rows;
            let tile_rows = self.kernels.tile_for(w.ty, n).map_or(1, |t| t.rows);
            let chunk = if n == 1 { (m / (8 * nt)).clamp(16, 256) } else { 64 };
            let chunk = chunk.div_ceil(tile_rows) * tile_rows;
            let chunk = chunk.max(m.div_ceil(pieces.len() / MAX_FUSED));
            let mut r0 = 0;
            while r0 < m {
                let r1 = (r0 + chunk).min(m);
                pieces[n_pieces] = Piece {
                    wi: wi as u8,
                    r0: r0 as u32,
                    r1: r1 as u32,
                };
                n_pieces += 1;
                r0 = r1;
            }
        }
        let pieces = &pieces[..n_pieces];
        let kernels = &self.kernels;
        self.pool.for_chunks(n_pieces, 1, &|range| {
            for p in &pieces[range] {
                let w = ws[p.wi as usize];
                let (ap, arb) = acts[act_slot(w.ty.act_type())].expect("quantized above");
                // SAFETY: written above, alive while `guard` is held; read-only here.
                let abuf: &[u8] = unsafe { std::slice::from_raw_parts(ap as *const u8, n * arb) };
                let out = outp[p.wi as usize];
                run_piece(kernels, w, abuf, arb, n, p.r0 as usize..p.r1 as usize, out);
            }
        });
        drop(guard);
    }
}

/// Rows of weights processed together per token in the pair-by-pair fallback (keeps them
/// in L1).
const ROW_TILE: usize = 16;

/// Computes rows `rows` of `w · x` for all `n` tokens into `out` (`n × w.rows`).
fn run_piece(k: &Kernels, w: &Weight, abuf: &[u8], arb: usize, n: usize, rows: std::ops::Range<usize>, out: SharedMut) {
    let m = w.rows;
    let wb = w.bytes();
    let wrb = w.row_bytes();
    if let Some(tile) = k.tile_for(w.ty, n) {
        let mut buf = [0f32; 64];
        debug_assert!(tile.rows * tile.toks <= buf.len());
        let mut t0 = 0;
        while t0 < n {
            let tt = (n - t0).min(tile.toks);
            let mut r0 = rows.start;
            while r0 < rows.end {
                let rr = (rows.end - r0).min(tile.rows);
                (tile.f)(
                    &wb[r0 * wrb..(r0 + rr) * wrb],
                    wrb,
                    rr,
                    &abuf[t0 * arb..(t0 + tt) * arb],
                    arb,
                    tt,
                    &mut buf,
                );
                for t in 0..tt {
                    for r in 0..rr {
                        // SAFETY: (t0 + t, r0 + r) lies in this piece, written by this thread only.
                        unsafe { *out.ptr().add((t0 + t) * m + r0 + r) = buf[t * rr + r] };
                    }
                }
                r0 += rr;
            }
            t0 += tt;
        }
        return;
    }
    let dot = k.dot_for(w.ty);
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + ROW_TILE).min(rows.end);
        for t in 0..n {
            let a = &abuf[t * arb..(t + 1) * arb];
            for r in r0..r1 {
                let v = dot(&wb[r * wrb..(r + 1) * wrb], a);
                // SAFETY: (t, r) is written by exactly this thread; in bounds by the asserts.
                unsafe { *out.ptr().add(t * m + r) = v };
            }
        }
        r0 = r1;
    }
}

impl Ops for CpuOps {
    fn matmul(&self, w: &Weight, x: &[f32], n: usize, out: &mut [f32]) {
        self.matmuls(&[w], x, n, &mut [out]);
    }

    fn matmul_many(&self, ws: &[&Weight], x: &[f32], n: usize, outs: &mut [&mut [f32]]) {
        self.matmuls(ws, x, n, outs);
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
        assert_eq!(gate.len(), up.len(), "swiglu shapes");
        let f = |g: &mut [f32], u: &[f32]| {
            for (g, u) in g.iter_mut().zip(u) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
        };
        // One token's worth is too little to share; a prefill batch is split over the pool.
        const CHUNK: usize = 8192;
        if gate.len() <= CHUNK {
            return f(gate, up);
        }
        let gp = SharedMut(gate.as_mut_ptr());
        let n = gate.len();
        self.pool.for_chunks(n, CHUNK, &|r| {
            // SAFETY: the chunks are disjoint ranges of `gate`.
            let g = unsafe { std::slice::from_raw_parts_mut(gp.ptr().add(r.start), r.len()) };
            f(g, &up[r]);
        });
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
