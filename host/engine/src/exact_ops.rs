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

/// [`f32_to_act`] over a slice (scalar reference).
fn to_act_scalar(src: &[f32], dst: &mut [i32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = f32_to_act(s);
    }
}

/// [`act_to_f32`] over a slice (scalar reference).
fn to_f32_scalar(src: &[i32], dst: &mut [f32]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = act_to_f32(s);
    }
}

/// Whether the AVX2 conversions run (same CPU check and scalar switches as the dot kernels).
fn simd_conversions(kernel: Kernel) -> bool {
    kernel.uses_avx2()
}

/// `f32 → Q15.16` over a slice: [`f32_to_act`] per element, with AVX2 when `kernel` uses it
/// (the same bits: see [`avx2::to_act`]).
pub fn f32s_to_act(kernel: Kernel, src: &[f32], dst: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    if simd_conversions(kernel) {
        // SAFETY: `uses_avx2` checked at run time that the CPU supports AVX2.
        return unsafe { avx2::to_act(src, dst) };
    }
    let _ = kernel;
    to_act_scalar(src, dst)
}

/// `Q15.16 → f32` over a slice: [`act_to_f32`] per element, with AVX2 when `kernel` uses it.
pub fn acts_to_f32(kernel: Kernel, src: &[i32], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if simd_conversions(kernel) {
        // SAFETY: `uses_avx2` checked at run time that the CPU supports AVX2.
        return unsafe { avx2::to_f32(src, dst) };
    }
    let _ = kernel;
    to_f32_scalar(src, dst)
}

/// AVX2 versions of the conversions, bit-identical to the scalar ones.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// [`super::f32_to_act`] eight at a time: `x·2^16` (exact) converted by `cvtps2dq`, which
    /// rounds to nearest, ties to even, under the default rounding mode Rust programs run in —
    /// the scalar function's rounding. Where it differs from the scalar saturating cast (it
    /// returns `i32::MIN` for NaN and for values at or above `2^31`) the lanes are fixed: NaN to
    /// 0, `>= 2^31` to `i32::MAX`; values at or below `−2^31` give `i32::MIN` in both.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn to_act(src: &[f32], dst: &mut [i32]) {
        let n = src.len().min(dst.len());
        let full = n / 8 * 8;
        let scale = _mm256_set1_ps(65536.0);
        let top = _mm256_set1_ps(2_147_483_648.0);
        let max = _mm256_set1_epi32(i32::MAX);
        for i in (0..full).step_by(8) {
            // SAFETY: i + 8 <= n, both slices hold n elements; unaligned loads and stores.
            unsafe {
                let y = _mm256_mul_ps(_mm256_loadu_ps(src.as_ptr().add(i)), scale);
                let r = _mm256_cvtps_epi32(y);
                let big = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(y, top));
                let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(y, y));
                let r = _mm256_andnot_si256(nan, _mm256_blendv_epi8(r, max, big));
                _mm256_storeu_si256(dst.as_mut_ptr().add(i).cast(), r);
            }
        }
        super::to_act_scalar(&src[full..n], &mut dst[full..n]);
    }

    /// [`super::act_to_f32`] eight at a time (`cvtdq2ps` rounds to nearest even, then an exact
    /// power-of-two scaling).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn to_f32(src: &[i32], dst: &mut [f32]) {
        let n = src.len().min(dst.len());
        let full = n / 8 * 8;
        let scale = _mm256_set1_ps(1.0 / 65536.0);
        for i in (0..full).step_by(8) {
            // SAFETY: i + 8 <= n, both slices hold n elements; unaligned loads and stores.
            unsafe {
                let v = _mm256_cvtepi32_ps(_mm256_loadu_si256(src.as_ptr().add(i).cast()));
                _mm256_storeu_ps(dst.as_mut_ptr().add(i), _mm256_mul_ps(v, scale));
            }
        }
        super::to_f32_scalar(&src[full..n], &mut dst[full..n]);
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

/// Cache elements (positions × K/V row) below which attention converts the cache to Q15.16
/// on the calling thread rather than in a pool job.
const PARALLEL_CONVERT: usize = 1 << 18;

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

    /// The name of the dot-product kernel that runs (`"avx2"`, `"avx2+vnni"` or `"scalar"`).
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

/// Most weights one [`ExactOps::matmuls`] job takes.
const MAX_FUSED: usize = 4;

impl ExactOps {
    /// `outs[i] = ws[i] · x` in one parallel job: the input is converted and quantized once,
    /// and the rows of every weight are handed out as pieces of one job (whole eight-row tiles
    /// for one token). Each output element is computed by one kernel call whatever the split,
    /// so the bits do not depend on it.
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
        let mut mats: [Option<Arc<ExactWeight>>; MAX_FUSED] = Default::default();
        let mut outp = [SharedMut(std::ptr::null_mut::<f32>()); MAX_FUSED];
        for (i, (w, o)) in ws.iter().zip(outs.iter_mut()).enumerate() {
            assert_eq!(w.cols, k, "fused matmuls share their input");
            assert_eq!(o.len(), n * w.rows, "matmul output shape");
            mats[i] = Some(self.weight(w));
            outp[i] = SharedMut(o.as_mut_ptr());
        }
        let nb = k / engram_exact::quant::QK;
        let mut guard = self.mat.lock().unwrap_or_else(|e| e.into_inner());
        let MatBuf { act, q8 } = &mut *guard;
        let act = fit(act, k);
        let q8 = fit(q8, n * nb);
        for (t, xq) in q8.chunks_exact_mut(nb).enumerate() {
            f32s_to_act(self.kernel, &x[t * k..(t + 1) * k], act);
            quantize_act(act, xq).expect("activation row is block aligned");
        }
        let q8: &[Q8Block] = q8;
        let kernel = self.kernel;
        // Pieces (weight, rows): multiples of 8 rows for one token (the exact kernels work in
        // eight-row tiles), 64 rows for several.
        let nt = self.pool.n_threads();
        let mut pieces = [(0u8, 0u32, 0u32); 1024];
        let mut n_pieces = 0;
        for (wi, w) in ws.iter().enumerate() {
            let m = w.rows;
            let chunk = if n == 1 {
                (m / (8 * nt)).clamp(16, 256).next_multiple_of(8)
            } else {
                64
            };
            let chunk = chunk.max(m.div_ceil(pieces.len() / MAX_FUSED).next_multiple_of(8));
            let mut r0 = 0;
            while r0 < m {
                let r1 = (r0 + chunk).min(m);
                pieces[n_pieces] = (wi as u8, r0 as u32, r1 as u32);
                n_pieces += 1;
                r0 = r1;
            }
        }
        let pieces = &pieces[..n_pieces];
        let mats = &mats;
        self.pool.for_chunks(n_pieces, 1, &|range| {
            SCRATCH.with(|cell| {
                let mut s = cell.borrow_mut();
                for &(wi, r0, r1) in &pieces[range] {
                    let mat = &mats[wi as usize].as_ref().expect("set above").matrix;
                    let (rows, m) = (r0 as usize..r1 as usize, mat.rows());
                    let o = outp[wi as usize];
                    let tile = if n == 1 { rows.len() } else { ROW_TILE };
                    let tmp = fit(&mut s.0, tile);
                    let mut a = rows.start;
                    while a < rows.end {
                        let b = (a + tile).min(rows.end);
                        let tmp = &mut tmp[..b - a];
                        for t in 0..n {
                            mat.matvec_rows(a..b, &q8[t * nb..(t + 1) * nb], tmp, kernel)
                                .expect("matvec shapes checked above");
                            // SAFETY: rows a..b of token t of this output are written by
                            // exactly this piece; in bounds by the asserts above.
                            let dst = unsafe { std::slice::from_raw_parts_mut(o.ptr().add(t * m + a), b - a) };
                            acts_to_f32(kernel, tmp, dst);
                        }
                        a = b;
                    }
                }
            });
        });
        drop(guard);
    }
}

impl Ops for ExactOps {
    fn matmul(&self, w: &Weight, x: &[f32], n: usize, out: &mut [f32]) {
        self.matmuls(&[w], x, n, &mut [out]);
    }

    fn matmul_many(&self, ws: &[&Weight], x: &[f32], n: usize, outs: &mut [&mut [f32]]) {
        self.matmuls(ws, x, n, outs);
    }

    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        let d = weight.len();
        let eps_q32 =
            rms_eps_from_f32_bits(eps.to_bits()).expect("the RMSNorm epsilon is a finite non-negative number");
        let mut guard = self.elem.lock().unwrap_or_else(|e| e.into_inner());
        let ElemBuf { a, b, c } = &mut *guard;
        let (wq, xi, oi) = (fit(a, d), fit(b, d), fit(c, d));
        f32s_to_act(self.kernel, weight, wq);
        for (xr, or) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            f32s_to_act(self.kernel, xr, xi);
            engram_exact::rms_norm(xi, wq, eps_q32, oi).expect("RMSNorm row lengths match");
            acts_to_f32(self.kernel, oi, or);
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
                f32s_to_act(self.kernel, head, h);
                match layout {
                    RopeLayout::Adjacent => rope_adjacent(h, cos, sin),
                    RopeLayout::Halves => rope_neox(h, cos, sin),
                }
                .expect("RoPE head holds d elements");
                acts_to_f32(self.kernel, h, head);
            }
        }
    }

    fn swiglu(&self, gate: &mut [f32], up: &[f32]) {
        assert_eq!(gate.len(), up.len(), "SwiGLU gate and up lengths");
        // Elementwise, so any split over the threads gives the same bits.
        let gp = SharedMut(gate.as_mut_ptr());
        let chunk = gate.len().div_ceil(self.pool.n_threads()).next_multiple_of(64).max(512);
        self.pool.for_chunks(gate.len(), chunk, &|r| {
            ELEM_SCRATCH.with(|cell| {
                let mut guard = cell.borrow_mut();
                let (a, b, c) = &mut *guard;
                let n = r.len();
                let (g, u, o) = (fit(a, n), fit(b, n), fit(c, n));
                // SAFETY: each thread reads and writes only its own range of `gate`.
                let gate = unsafe { std::slice::from_raw_parts_mut(gp.ptr().add(r.start), n) };
                f32s_to_act(self.kernel, gate, g);
                f32s_to_act(self.kernel, &up[r], u);
                engram_exact::swiglu(g, u, o).expect("gate and up have the same length");
                acts_to_f32(self.kernel, o, gate);
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
        if ctx * kv_row < PARALLEL_CONVERT {
            // Small caches: one pass here is cheaper than a pool job.
            f32s_to_act(self.kernel, &k_cache[..ctx * kv_row], kc);
            f32s_to_act(self.kernel, &v_cache[..ctx * kv_row], vc);
        } else {
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
                f32s_to_act(self.kernel, &k_cache[a..b], kd);
                f32s_to_act(self.kernel, &v_cache[a..b], vd);
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
                    f32s_to_act(self.kernel, &q[t * q_row + h * hd..t * q_row + (h + 1) * hd], qh);
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
                    acts_to_f32(self.kernel, acc, dst);
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
