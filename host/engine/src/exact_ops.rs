//! Exact-mode operators (`--exact`): the forward pass through the integer islands of
//! [`engram_exact`].
//!
//! [`ExactOps`] implements [`Ops`] like [`crate::CpuOps`], so [`crate::forward`] runs unchanged;
//! only the numbers inside each operator differ. Every operator converts its `f32` inputs to
//! Q15.16 fixed point, computes with integers only, and converts the result back:
//!
//! | operator | island |
//! |---|---|
//! | `matmul` | [`engram_exact::quantize_act`] (power-of-two int8 blocks) + [`QuantMatrix::matvec_rows`]: the exact dot product in `i128`, rows split over threads |
//! | `rms_norm` | [`engram_exact::rms_norm`] (integer sum of squares, integer square root) |
//! | `rope` | [`RopeTable`] (CORDIC cos/sin, cached per position) + [`engram_exact::rope_adjacent`] / [`engram_exact::rope_neox`] |
//! | `swiglu` | [`engram_exact::swiglu`] |
//! | `attention` | [`engram_exact::attend`] per (token, head): exact scores, integer softmax summing to `2^30`, exact weighted sum |
//!
//! # Why the result is a pure function of the inputs
//!
//! - The conversions are exact or correctly rounded, elementwise IEEE operations:
//!   `f32 → Q15.16` is `x·2^16` (exact) rounded to the nearest integer, ties to even, by the
//!   `(|y| + 2^23) − 2^23` identity (values of `2^23` raw units or more are already integers),
//!   saturating, NaN to 0; `Q15.16 → f32` is `raw as f32 · 2^−16` (round to nearest even,
//!   then an exact power-of-two scaling). Neither depends on the order or width the compiler
//!   evaluates them in.
//! - Every reduction is an integer sum, exact, so its order does not matter: the thread split of
//!   the rows, the split of attention jobs, and the scalar or AVX2 kernel
//!   ([`Kernel::Scalar`] / `ENGRAM_FORCE_SCALAR=1` / `ENGRAM_EXACT_SCALAR=1` force scalar) all
//!   give the same bits.
//! - What stays in `f32` in [`crate::forward`] is elementwise: the embedding lookup (one
//!   multiply-add per element), the bias and residual additions, and the KV cache storing the
//!   converted values. IEEE `f32` elementwise operations are deterministic.
//!
//! So an exact decode is a function of (model file, token history, sampler seed) only: the same
//! logits bits for 1..N threads, scalar or SIMD, and for a session restored from a snapshot (the
//! snapshot stores the same `f32` cache values a fresh prefill computes). [`LogitsDigest`]
//! condenses a run into one BLAKE2b value to compare across machines.
//!
//! Supported weights: the formats of [`WeightFormat`] (Q4_0, Q4_1, Q5_0, Q8_0, Q4_K, Q6_K);
//! [`ExactOps::prepare`] refuses a model with any other matrix type.

use crate::error::{EngineError, Result};
use crate::model::{Model, RopeLayout, Weight};
use crate::ops::{AttnShape, Ops};
use crate::pool::ThreadPool;
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use engram_exact::{
    attend, attention_scale_q30, quantize_act, rms_eps_from_f32_bits, rope_adjacent, rope_neox, Q8Block, QuantMatrix,
    RopeTable, WeightFormat,
};
use std::collections::HashMap;

/// The islands crate, re-exported for callers that pick a [`Kernel`] or use the NTT.
pub use engram_exact as islands;
pub use engram_exact::Kernel;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

/// The environment variable (shared with [`crate::CpuOps`]) that forces the scalar kernels.
pub const FORCE_SCALAR_ENV: &str = "ENGRAM_FORCE_SCALAR";

/// `f32 → Q15.16`: `x·2^16` rounded to nearest, ties to even, saturating; NaN becomes 0.
#[inline]
pub fn f32_to_act(x: f32) -> i32 {
    const BIG: f32 = 8_388_608.0; // 2^23: from here on every f32 is an integer
    let y = x * 65536.0;
    let a = y.abs();
    // |y| + 2^23 lies in [2^23, 2^24), where the f32 spacing is 1: the addition rounds |y| to
    // an integer (ties to even) and the subtraction is exact. From 2^23 on, |y| is an integer
    // already. Written branch-free (selects, copysign, a saturating `as` that maps NaN to 0)
    // so the compiler vectorizes it; the value is the same either way.
    let r = if a < BIG { (a + BIG) - BIG } else { a };
    r.copysign(y) as i32
}

/// `Q15.16 → f32`: the nearest `f32` (ties to even); exact for `|raw| < 2^24`.
#[inline]
pub fn act_to_f32(raw: i32) -> f32 {
    raw as f32 * (1.0 / 65536.0)
}

fn to_act(src: &[f32], dst: &mut [i32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32_to_act(s);
    }
}

fn to_f32(src: &[i32], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = act_to_f32(s);
    }
}

fn fit<T: Copy + Default>(v: &mut Vec<T>, n: usize) -> &mut [T] {
    if v.len() < n {
        v.resize(n, T::default());
    }
    &mut v[..n]
}

/// The exact format of an engine weight type, if it has one.
fn exact_format(w: &Weight) -> Option<WeightFormat> {
    WeightFormat::from_ggml_type(w.ty.id())
}

/// A weight matrix validated for the exact kernels once, at load time.
struct ExactWeight {
    /// The matrix over the mapped bytes of `_keep`.
    matrix: QuantMatrix<'static>,
    /// Keeps the memory map that `matrix` borrows alive (declared after it, so dropped after).
    _keep: Weight,
}

impl ExactWeight {
    fn new(w: &Weight) -> Result<ExactWeight> {
        let format = exact_format(w).ok_or_else(|| {
            EngineError::InvalidArgument(format!(
                "exact mode has no integer kernel for {:?} weights ({}x{}); supported: Q4_0, Q4_1, \
                 Q5_0, Q8_0, Q4_K, Q6_K — use a model quantized to one of them, or run without --exact",
                w.ty, w.rows, w.cols
            ))
        })?;
        let keep = w.clone();
        // SAFETY: the bytes live in the memory map owned by `keep`'s `Arc<GgufFile>`, which
        // never moves or unmaps while `keep` exists; `keep` is stored beside `matrix` and
        // dropped after it, so the 'static borrow never outlives the mapping.
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(keep.bytes().as_ptr(), keep.bytes().len()) };
        let matrix = QuantMatrix::new(format, bytes, w.rows, w.cols)
            .map_err(|e| EngineError::InvalidArgument(format!("exact mode: weight {:?}: {e}", w)))?
            .with_packed_scales();
        Ok(ExactWeight { matrix, _keep: keep })
    }
}

/// A pointer shared by the pool's threads; each writes disjoint elements.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    fn ptr(&self) -> *mut T {
        self.0
    }
}

/// cos/sin of every position seen so far, for one (base, head dim).
struct RopeCache {
    base_bits: u32,
    table: RopeTable,
    /// `positions × d/2` cosines, Q1.30.
    cos: Vec<i32>,
    /// `positions × d/2` sines, Q1.30.
    sin: Vec<i32>,
}

impl RopeCache {
    fn positions(&self) -> usize {
        self.cos.len() / (self.table.rot_dim() / 2)
    }

    fn extend_to(&mut self, positions: usize) {
        let half = self.table.rot_dim() / 2;
        let have = self.positions();
        if positions <= have {
            return;
        }
        self.cos.resize(positions * half, 0);
        self.sin.resize(positions * half, 0);
        for p in have..positions {
            let (c, s) = (
                &mut self.cos[p * half..(p + 1) * half],
                &mut self.sin[p * half..(p + 1) * half],
            );
            self.table
                .cos_sin(p as u32, c, s)
                .expect("cos/sin slices have d/2 elements");
        }
    }
}

/// Buffers of one matmul call.
#[derive(Default)]
struct MatBuf {
    act: Vec<i32>,
    q8: Vec<Q8Block>,
}

/// Buffers of one attention call: the cache converted to Q15.16.
#[derive(Default)]
struct AttnBuf {
    k: Vec<i32>,
    v: Vec<i32>,
}

/// Buffers of the elementwise operators.
#[derive(Default)]
struct ElemBuf {
    a: Vec<i32>,
    b: Vec<i32>,
    c: Vec<i32>,
}

/// Per-thread matvec output and attention scratch: (matvec output, query ++ scores, attention
/// weights, head output).
type Scratch = (Vec<i32>, Vec<i32>, Vec<u32>, Vec<i32>);

thread_local! {
    /// Per-thread matvec output and attention scratch (query, scores, weights, output).
    static SCRATCH: std::cell::RefCell<Scratch> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new(), Vec::new())) };
}

thread_local! {
    /// Per-thread buffers of the elementwise operators split over the pool.
    static ELEM_SCRATCH: std::cell::RefCell<(Vec<i32>, Vec<i32>, Vec<i32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Rows of weights processed together per token in prefill (keeps them in L1).
const ROW_TILE: usize = 16;

/// The exact operators: integer islands, a thread pool, and the weights validated once.
pub struct ExactOps {
    kernel: Kernel,
    pool: ThreadPool,
    /// Prepared weights, keyed by the address of their first byte in the memory map.
    weights: RwLock<HashMap<usize, Arc<ExactWeight>>>,
    rope: Mutex<Option<RopeCache>>,
    mat: Mutex<MatBuf>,
    attn: Mutex<AttnBuf>,
    elem: Mutex<ElemBuf>,
}

impl std::fmt::Debug for ExactOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExactOps({}, {:?})", self.kernel.name(), self.pool)
    }
}

impl ExactOps {
    /// Exact operators with `n_threads` threads (0 = all cores) and the AVX2 kernels where the
    /// CPU has them, unless `ENGRAM_FORCE_SCALAR` (or `ENGRAM_EXACT_SCALAR`) is set to anything
    /// but `0` or empty.
    pub fn new(n_threads: usize) -> ExactOps {
        let forced = std::env::var_os(FORCE_SCALAR_ENV).is_some_and(|v| !v.is_empty() && v != "0");
        Self::with_kernel(n_threads, if forced { Kernel::Scalar } else { Kernel::Auto })
    }

    /// Exact operators with an explicit kernel choice ([`Kernel::Scalar`] forces the portable
    /// scalar path; the bits are the same either way).
    pub fn with_kernel(n_threads: usize, kernel: Kernel) -> ExactOps {
        ExactOps {
            kernel,
            pool: ThreadPool::new(n_threads),
            weights: RwLock::new(HashMap::new()),
            rope: Mutex::new(None),
            mat: Mutex::new(MatBuf::default()),
            attn: Mutex::new(AttnBuf::default()),
            elem: Mutex::new(ElemBuf::default()),
        }
    }

    /// The name of the dot-product kernel that runs (`"avx2"` or `"scalar"`).
    pub fn kernel_name(&self) -> &'static str {
        self.kernel.name()
    }

    /// Validates and registers every matrix of `model` (checks each block scale once), so a
    /// model with a weight type the exact kernels do not cover is refused here rather than
    /// mid-decode.
    pub fn prepare(&self, model: &Model) -> Result<()> {
        let mut all = vec![&model.output];
        for l in &model.layers {
            all.extend([&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]);
        }
        let mut map = self.weights.write().unwrap_or_else(|e| e.into_inner());
        for w in all {
            if let std::collections::hash_map::Entry::Vacant(slot) = map.entry(w.bytes().as_ptr() as usize) {
                slot.insert(Arc::new(ExactWeight::new(w)?));
            }
        }
        Ok(())
    }

    /// Loads `path` computing with exact operators on `n_threads` threads (0 = all cores),
    /// with every weight prepared.
    pub fn load_model(path: impl AsRef<Path>, n_threads: usize) -> Result<Model> {
        Self::load_model_with(path, Arc::new(ExactOps::new(n_threads)))
    }

    /// Loads `path` computing with the given exact operators, preparing every weight.
    pub fn load_model_with(path: impl AsRef<Path>, ops: Arc<ExactOps>) -> Result<Model> {
        let model = Model::load_with(path, ops.clone())?;
        ops.prepare(&model)?;
        Ok(model)
    }

    fn weight(&self, w: &Weight) -> Arc<ExactWeight> {
        let key = w.bytes().as_ptr() as usize;
        if let Some(e) = self.weights.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return e.clone();
        }
        let e = Arc::new(ExactWeight::new(w).unwrap_or_else(|e| panic!("{e}")));
        self.weights
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert(e)
            .clone()
    }
}

impl Ops for ExactOps {
    fn matmul(&self, w: &Weight, x: &[f32], n: usize, out: &mut [f32]) {
        let (k, m) = (w.cols, w.rows);
        assert_eq!(x.len(), n * k, "matmul input shape");
        assert_eq!(out.len(), n * m, "matmul output shape");
        let ew = self.weight(w);
        let mat = &ew.matrix;
        let nb = k / engram_exact::quant::QK;
        let mut guard = self.mat.lock().unwrap_or_else(|e| e.into_inner());
        let MatBuf { act, q8 } = &mut *guard;
        let act = fit(act, k);
        let q8 = fit(q8, n * nb);
        for (t, xq) in q8.chunks_exact_mut(nb).enumerate() {
            to_act(&x[t * k..(t + 1) * k], act);
            quantize_act(act, xq).expect("activation row is block aligned");
        }
        let q8: &[Q8Block] = q8;
        let kernel = self.kernel;
        let o = SharedMut(out.as_mut_ptr());
        let chunk = if n == 1 {
            // Multiples of 8 rows: the exact kernels work in eight-row tiles.
            (m / (8 * self.pool.n_threads())).clamp(16, 256).next_multiple_of(8)
        } else {
            64
        };
        self.pool.for_chunks(m, chunk, &|rows| {
            SCRATCH.with(|cell| {
                let mut s = cell.borrow_mut();
                let tile = if n == 1 { rows.len() } else { ROW_TILE };
                let tmp = fit(&mut s.0, tile);
                let mut r0 = rows.start;
                while r0 < rows.end {
                    let r1 = (r0 + tile).min(rows.end);
                    let tmp = &mut tmp[..r1 - r0];
                    for t in 0..n {
                        mat.matvec_rows(r0..r1, &q8[t * nb..(t + 1) * nb], tmp, kernel)
                            .expect("matvec shapes checked above");
                        // SAFETY: rows r0..r1 of token t are written by exactly this thread;
                        // in bounds by the asserts above.
                        let dst = unsafe { std::slice::from_raw_parts_mut(o.ptr().add(t * m + r0), r1 - r0) };
                        to_f32(tmp, dst);
                    }
                    r0 = r1;
                }
            });
        });
    }

    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        let d = weight.len();
        let eps_q32 =
            rms_eps_from_f32_bits(eps.to_bits()).expect("the RMSNorm epsilon is a finite non-negative number");
        let mut guard = self.elem.lock().unwrap_or_else(|e| e.into_inner());
        let ElemBuf { a, b, c } = &mut *guard;
        let (wq, xi, oi) = (fit(a, d), fit(b, d), fit(c, d));
        to_act(weight, wq);
        for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            to_act(xr, xi);
            engram_exact::rms_norm(xi, wq, eps_q32, oi).expect("RMSNorm row lengths match");
            to_f32(oi, or);
        }
    }

    fn rope(&self, x: &mut [f32], pos0: usize, n_heads: usize, head_dim: usize, layout: RopeLayout, base: f32) {
        let row = n_heads * head_dim;
        let n = x.len() / row;
        let half = head_dim / 2;
        let mut cache = self.rope.lock().unwrap_or_else(|e| e.into_inner());
        let stale = cache
            .as_ref()
            .is_none_or(|c| c.base_bits != base.to_bits() || c.table.rot_dim() != head_dim);
        if stale {
            let table = RopeTable::from_f32_base(base.to_bits(), head_dim)
                .unwrap_or_else(|e| panic!("exact mode needs an integer RoPE base: {e}"));
            *cache = Some(RopeCache {
                base_bits: base.to_bits(),
                table,
                cos: Vec::new(),
                sin: Vec::new(),
            });
        }
        let rc = cache.as_mut().expect("set above");
        rc.extend_to(pos0 + n);
        let mut guard = self.elem.lock().unwrap_or_else(|e| e.into_inner());
        let h = fit(&mut guard.a, head_dim);
        for (t, xr) in x.chunks_exact_mut(row).enumerate() {
            let p = pos0 + t;
            let (cos, sin) = (&rc.cos[p * half..(p + 1) * half], &rc.sin[p * half..(p + 1) * half]);
            for head in xr.chunks_exact_mut(head_dim) {
                to_act(head, h);
                match layout {
                    RopeLayout::Adjacent => rope_adjacent(h, cos, sin),
                    RopeLayout::Halves => rope_neox(h, cos, sin),
                }
                .expect("RoPE head holds d elements");
                to_f32(h, head);
            }
        }
    }

    fn swiglu(&self, gate: &mut [f32], up: &[f32]) {
        assert_eq!(gate.len(), up.len(), "SwiGLU gate and up lengths");
        // Elementwise, so any split over the threads gives the same bits.
        let gp = SharedMut(gate.as_mut_ptr());
        self.pool.for_chunks(gate.len(), 512, &|r| {
            ELEM_SCRATCH.with(|cell| {
                let mut guard = cell.borrow_mut();
                let (a, b, c) = &mut *guard;
                let n = r.len();
                let (g, u, o) = (fit(a, n), fit(b, n), fit(c, n));
                // SAFETY: each thread reads and writes only its own range of `gate`.
                let gate = unsafe { std::slice::from_raw_parts_mut(gp.ptr().add(r.start), n) };
                to_act(gate, g);
                to_act(&up[r], u);
                engram_exact::swiglu(g, u, o).expect("gate and up have the same length");
                to_f32(o, gate);
            });
        });
    }

    fn attention(&self, q: &[f32], k_cache: &[f32], v_cache: &[f32], s: AttnShape, out: &mut [f32]) {
        let hd = s.head_dim;
        let q_row = s.n_head * hd;
        let kv_row = s.n_head_kv * hd;
        let group = s.n_head / s.n_head_kv;
        let ctx = s.pos0 + s.n_tokens;
        let scale = attention_scale_q30(hd);
        let mut guard = self.attn.lock().unwrap_or_else(|e| e.into_inner());
        let AttnBuf { k, v } = &mut *guard;
        let (kc, vc) = (fit(k, ctx * kv_row), fit(v, ctx * kv_row));
        {
            let (kp, vp) = (SharedMut(kc.as_mut_ptr()), SharedMut(vc.as_mut_ptr()));
            self.pool.for_ranges(ctx, &|r| {
                let (a, b) = (r.start * kv_row, r.end * kv_row);
                // SAFETY: each thread converts a disjoint range of positions.
                let (kd, vd) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(kp.ptr().add(a), b - a),
                        std::slice::from_raw_parts_mut(vp.ptr().add(a), b - a),
                    )
                };
                to_act(&k_cache[a..b], kd);
                to_act(&v_cache[a..b], vd);
            });
        }
        let (kc, vc): (&[i32], &[i32]) = (kc, vc);
        let o = SharedMut(out.as_mut_ptr());
        self.pool.for_chunks(s.n_tokens * s.n_head, 1, &|range| {
            SCRATCH.with(|cell| {
                let mut guard = cell.borrow_mut();
                let (_, qh, probs, acc) = &mut *guard;
                let (qh, acc) = (fit(qh, hd + ctx), fit(acc, hd));
                let (qh, scores) = qh.split_at_mut(hd);
                let probs = fit(probs, ctx);
                for job in range {
                    let (t, h) = (job / s.n_head, job % s.n_head);
                    let kvh = h / group;
                    let n_ctx = s.pos0 + t + 1;
                    to_act(&q[t * q_row + h * hd..t * q_row + (h + 1) * hd], qh);
                    attend(
                        qh,
                        &kc[kvh * hd..],
                        &vc[kvh * hd..],
                        kv_row,
                        scale,
                        &mut scores[..n_ctx],
                        &mut probs[..n_ctx],
                        acc,
                    )
                    .expect("attention shapes are consistent");
                    // SAFETY: each (t, h) slice of `out` is written by exactly one thread.
                    let dst = unsafe { std::slice::from_raw_parts_mut(o.ptr().add(t * q_row + h * hd), hd) };
                    to_f32(acc, dst);
                }
            });
        });
    }

    fn n_threads(&self) -> usize {
        self.pool.n_threads()
    }
}

/// A BLAKE2b-256 digest of a logits stream: every logits row a session produces, in order, as
/// little-endian `f32` bytes. Two runs with equal digests produced bit-identical logits.
#[derive(Clone, Default)]
pub struct LogitsDigest {
    hasher: Blake2b<U32>,
    rows: u64,
}

impl std::fmt::Debug for LogitsDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LogitsDigest({} rows)", self.rows)
    }
}

impl LogitsDigest {
    /// An empty digest.
    pub fn new() -> LogitsDigest {
        LogitsDigest::default()
    }

    /// Adds one or more logits rows.
    pub fn update(&mut self, logits: &[f32]) {
        let mut buf = [0u8; 4096];
        for chunk in logits.chunks(buf.len() / 4) {
            for (b, x) in buf.chunks_exact_mut(4).zip(chunk) {
                b.copy_from_slice(&x.to_le_bytes());
            }
            self.hasher.update(&buf[..chunk.len() * 4]);
        }
        self.rows += 1;
    }

    /// Number of [`LogitsDigest::update`] calls so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The digest so far as 64 lowercase hex digits (the digest itself keeps going).
    pub fn hex(&self) -> String {
        self.hasher
            .clone()
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}
