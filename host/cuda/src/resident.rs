//! [`CudaSession`]: one session's forward pass kept on the GPU.
//!
//! The engine's one model definition (`engram_engine::forward::forward_on`) runs its layer loop
//! on this state: every activation buffer and the KV cache are device memory, each step only
//! enqueues kernels (or a device-to-device copy) on the backend's one stream, and nothing waits
//! for the device until the session reads the pass's outputs ([`DeviceState::read_outputs`]:
//! the final hidden states and the logits, one synchronisation per pass). The input crosses
//! once too: the embedding rows of the new tokens are dequantized on the host and uploaded in
//! one copy. Per decoded token that is one small upload and one download — no per-layer or
//! per-operator round trip.
//!
//! Weights are uploaded once per backend (shared by every session, see `backend::Shared`);
//! a new session makes sure all of its model's matrices and norm vectors are resident before
//! its first pass. Snapshots read the cache back ([`DeviceState::read_kv`]) into the engine's
//! host format and a restore writes it ([`DeviceState::write_kv`]), so a session moves between
//! the CPU and the GPU in either direction.
//!
//! Kernels are enqueued one by one rather than replayed from a CUDA graph: the position and
//! context length are kernel arguments that change at every token, so a graph would need
//! per-token updates of its nodes (the next step for launch overhead; see BENCHMARKS.md).

use crate::backend::{
    enqueue_product, enqueue_quantize, fail, fit, go, grid1, product_kernel, ActScratch,
    AttentionLaunch, Shared, Uploads, MAX_SHARED,
};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};
use engram_engine::forward::{Buf, DeviceState, Exec};
use engram_engine::model::{Model, RopeLayout, Weight};
use engram_engine::ops::AttnShape;
use engram_engine::quant::ActType;
use std::collections::HashMap;
use std::sync::Arc;

/// Number of [`Buf`] roles.
const N_BUFS: usize = 11;

/// KV positions are allocated in steps of this many (as the host cache grows).
const KV_STEP: usize = 256;

/// Index of a buffer role in [`CudaSession::bufs`].
fn slot(b: Buf) -> usize {
    match b {
        Buf::X => 0,
        Buf::H => 1,
        Buf::Q => 2,
        Buf::K => 3,
        Buf::V => 4,
        Buf::Att => 5,
        Buf::Proj => 6,
        Buf::Gate => 7,
        Buf::Up => 8,
        Buf::Hidden => 9,
        Buf::Logits => 10,
    }
}

fn key<T>(v: &[T]) -> (usize, usize) {
    (v.as_ptr() as usize, v.len())
}

/// A session's activations and KV cache on the GPU (see the module docs).
pub struct CudaSession {
    sh: Arc<Shared>,
    /// This session's handles on the shared device weights, by host address and length.
    weights: Uploads<u8>,
    vectors: Uploads<f32>,
    /// Activation buffers by role ([`slot`]), grown to fit, never shrunk.
    bufs: [Option<CudaSlice<f32>>; N_BUFS],
    act: ActScratch,
    /// Per-layer keys and values, `cap` positions of `kv_row` floats each.
    k: Vec<CudaSlice<f32>>,
    v: Vec<CudaSlice<f32>>,
    cap: usize,
    len: usize,
    kv_row: usize,
    n_embd: usize,
    n_ff: usize,
    vocab: usize,
    /// Tokens and logits rows of the pass in progress.
    n: usize,
    n_out: usize,
    /// Host staging of the input embeddings.
    host_x: Vec<f32>,
}

impl std::fmt::Debug for CudaSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaSession({} positions of {} on {})",
            self.len, self.cap, self.sh.info
        )
    }
}

impl CudaSession {
    /// A state for one session of `model`: uploads whatever of the model's weights is not on
    /// the device yet and allocates the first cache positions. `n_ctx` is the session's
    /// context length (attention keeps its scores in shared memory: a context too long for it
    /// is refused at the pass that reaches it, with a message).
    pub(crate) fn new(sh: Arc<Shared>, model: &Model, n_ctx: usize) -> CudaSession {
        let c = &model.config;
        let kv_row = c.n_head_kv * c.head_dim;
        if (c.head_dim + n_ctx) * 4 > MAX_SHARED {
            tracing::warn!(
                n_ctx,
                "the CUDA attention kernel holds at most {} positions; longer contexts fail",
                MAX_SHARED / 4 - c.head_dim
            );
        }
        let mut weights = HashMap::new();
        let mut vectors = HashMap::new();
        let mut matrices: Vec<&Weight> = vec![&model.output];
        let mut norms: Vec<&[f32]> = vec![&model.output_norm];
        for l in &model.layers {
            matrices.extend([&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]);
            norms.extend([&l.attn_norm[..], &l.ffn_norm[..]]);
            norms.extend([&l.bq, &l.bk, &l.bv].into_iter().flatten().map(|b| &b[..]));
        }
        for w in matrices {
            weights.insert(key(w.bytes()), sh.weight(w.bytes()));
        }
        for v in norms {
            vectors.insert(key(v), sh.vector(v));
        }
        let alloc = || {
            sh.stream
                .alloc_zeros::<f32>(KV_STEP * kv_row)
                .unwrap_or_else(|e| fail("allocating the KV cache", e))
        };
        let k = (0..c.n_layer).map(|_| alloc()).collect();
        let v = (0..c.n_layer).map(|_| alloc()).collect();
        CudaSession {
            weights,
            vectors,
            bufs: Default::default(),
            act: ActScratch::default(),
            k,
            v,
            cap: KV_STEP,
            len: 0,
            kv_row,
            n_embd: c.n_embd,
            n_ff: c.n_ff,
            vocab: c.vocab,
            n: 0,
            n_out: 0,
            host_x: Vec::new(),
            sh,
        }
    }

    fn buf(&self, b: Buf) -> &CudaSlice<f32> {
        self.bufs[slot(b)]
            .as_ref()
            .unwrap_or_else(|| fail("a pass", format!("{b:?} used before Exec::begin")))
    }

    /// Moves buffer `b` out (to write it while reading others); [`CudaSession::put`] returns it.
    fn take(&mut self, b: Buf) -> CudaSlice<f32> {
        self.bufs[slot(b)]
            .take()
            .unwrap_or_else(|| fail("a pass", format!("{b:?} used before Exec::begin")))
    }

    fn put(&mut self, b: Buf, s: CudaSlice<f32>) {
        self.bufs[slot(b)] = Some(s);
    }

    fn weight(&self, w: &Weight) -> Arc<CudaSlice<u8>> {
        match self.weights.get(&key(w.bytes())) {
            Some(d) => d.clone(),
            None => self.sh.weight(w.bytes()),
        }
    }

    fn vector(&self, v: &[f32]) -> Arc<CudaSlice<f32>> {
        match self.vectors.get(&key(v)) {
            Some(d) => d.clone(),
            None => self.sh.vector(v),
        }
    }

    /// Makes room for `positions` cache positions, keeping the valid ones.
    fn reserve(&mut self, positions: usize) {
        if positions <= self.cap {
            return;
        }
        let cap = positions.div_ceil(KV_STEP) * KV_STEP;
        let keep = self.len * self.kv_row;
        for layer in self.k.iter_mut().chain(self.v.iter_mut()) {
            let mut grown = self
                .sh
                .stream
                .alloc_zeros::<f32>(cap * self.kv_row)
                .unwrap_or_else(|e| fail("growing the KV cache", e));
            if keep > 0 {
                self.sh
                    .stream
                    .memcpy_dtod(&layer.slice(..keep), &mut grown.slice_mut(..keep))
                    .unwrap_or_else(|e| fail("copying the KV cache", e));
            }
            *layer = grown;
        }
        self.cap = cap;
    }

    fn sync(&self) {
        self.sh
            .stream
            .synchronize()
            .unwrap_or_else(|e| fail("synchronising", e));
    }
}

impl Exec for CudaSession {
    fn kv_len(&self) -> usize {
        self.len
    }

    fn begin(&mut self, _model: &Model, n: usize, n_out: usize) {
        self.n = n;
        self.n_out = n_out;
        let (d, kv, ff) = (self.n_embd, self.kv_row, self.n_ff);
        let sizes = [
            (Buf::X, n * d),
            (Buf::H, n * d),
            (Buf::Q, n * d),
            (Buf::K, n * kv),
            (Buf::V, n * kv),
            (Buf::Att, n * d),
            (Buf::Proj, n * d),
            (Buf::Gate, n * ff),
            (Buf::Up, n * ff),
            (Buf::Hidden, n * d),
            (Buf::Logits, n_out * self.vocab),
        ];
        for (b, len) in sizes {
            fit(&self.sh.stream, &mut self.bufs[slot(b)], len);
        }
        self.reserve(self.len + n);
    }

    fn embed(&mut self, model: &Model, tokens: &[u32]) {
        let d = self.n_embd;
        self.host_x.resize(tokens.len() * d, 0.0);
        for (t, &tok) in tokens.iter().enumerate() {
            model
                .token_embd
                .dequantize_row(tok as usize, &mut self.host_x[t * d..(t + 1) * d]);
        }
        let mut x = self.take(Buf::X);
        self.sh
            .stream
            .memcpy_htod(&self.host_x[..], &mut x.slice_mut(..tokens.len() * d))
            .unwrap_or_else(|e| fail("uploading the input embeddings", e));
        self.put(Buf::X, x);
    }

    fn rms_norm(&mut self, x: Buf, weight: &[f32], eps: f32, out: Buf) {
        let wd = self.vector(weight);
        let mut o = self.take(out);
        let d = weight.len() as i32;
        let cfg = LaunchConfig {
            grid_dim: (self.n as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut b = self.sh.builder("rms_norm_f32");
        b.arg(self.buf(x)).arg(&*wd).arg(&eps).arg(&d).arg(&mut o);
        go("rms_norm_f32", &mut b, cfg);
        drop(b);
        self.put(out, o);
    }

    fn matmul(&mut self, ws: &[&Weight], x: Buf, x_row: usize, n: usize, outs: &[Buf]) {
        assert_eq!(ws.len(), outs.len(), "one output per weight");
        let k = ws[0].cols;
        let mut os: Vec<CudaSlice<f32>> = outs.iter().map(|&b| self.take(b)).collect();
        let mut act = std::mem::take(&mut self.act);
        {
            let xv = self.buf(x).slice(x_row * k..(x_row + n) * k);
            let mut quantized: Option<i32> = None;
            for (w, o) in ws.iter().zip(os.iter_mut()) {
                assert_eq!(w.cols, k, "fused products share their input");
                let wd = self.weight(w);
                if w.ty.act_type() != ActType::F32 {
                    let (_, mode, bsz) = product_kernel(w.ty);
                    if quantized != Some(mode) {
                        enqueue_quantize(&self.sh, &xv, n, k, (mode, bsz), &mut act);
                        quantized = Some(mode);
                    }
                }
                let mut ov = o.slice_mut(..n * w.rows);
                enqueue_product(&self.sh, &wd, w.ty, (w.rows, k), &xv, &act, n, &mut ov);
            }
        }
        self.act = act;
        for (&b, o) in outs.iter().zip(os) {
            self.put(b, o);
        }
    }

    fn add_bias(&mut self, x: Buf, bias: &[f32]) {
        let bd = self.vector(bias);
        let mut xs = self.take(x);
        let (len, n) = (bias.len() as i32, (self.n * bias.len()) as i32);
        let mut b = self.sh.builder("add_bias_f32");
        b.arg(&mut xs).arg(&*bd).arg(&len).arg(&n);
        go("add_bias_f32", &mut b, grid1(n as usize, 256));
        drop(b);
        self.put(x, xs);
    }

    fn rope(
        &mut self,
        x: Buf,
        pos0: usize,
        n_heads: usize,
        head_dim: usize,
        layout: RopeLayout,
        base: f32,
    ) {
        // The same f32 computation as CpuOps::rope.
        let theta_scale = base.powf(-2.0 / head_dim as f32);
        let (p0, nh, hd) = (pos0 as i32, n_heads as i32, head_dim as i32);
        let lay: i32 = match layout {
            RopeLayout::Adjacent => 0,
            RopeLayout::Halves => 1,
        };
        let cfg = LaunchConfig {
            grid_dim: (self.n as u32, n_heads as u32, 1),
            block_dim: ((head_dim / 2) as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut xs = self.take(x);
        let mut b = self.sh.builder("rope_f32");
        b.arg(&mut xs)
            .arg(&p0)
            .arg(&nh)
            .arg(&hd)
            .arg(&lay)
            .arg(&theta_scale);
        go("rope_f32", &mut b, cfg);
        drop(b);
        self.put(x, xs);
    }

    fn store_kv(&mut self, layer: usize, pos0: usize, n: usize) {
        let row = self.kv_row;
        let (ks, vs) = (
            self.bufs[slot(Buf::K)].as_ref(),
            self.bufs[slot(Buf::V)].as_ref(),
        );
        let (Some(ks), Some(vs)) = (ks, vs) else {
            fail("storing keys and values", "K/V used before Exec::begin")
        };
        for (src, dst) in [(ks, &mut self.k[layer]), (vs, &mut self.v[layer])] {
            self.sh
                .stream
                .memcpy_dtod(
                    &src.slice(..n * row),
                    &mut dst.slice_mut(pos0 * row..(pos0 + n) * row),
                )
                .unwrap_or_else(|e| fail("storing keys and values", e));
        }
    }

    fn attention(&mut self, layer: usize, q: Buf, s: AttnShape, out: Buf) {
        let a = AttentionLaunch::new(&s);
        let mut o = self.take(out);
        let mut b = self.sh.builder("attention_f32");
        b.arg(self.buf(q))
            .arg(&self.k[layer])
            .arg(&self.v[layer])
            .arg(&a.n_head)
            .arg(&a.n_head_kv)
            .arg(&a.head_dim)
            .arg(&a.pos0)
            .arg(&a.scale)
            .arg(&mut o);
        go("attention_f32", &mut b, a.cfg);
        drop(b);
        self.put(out, o);
    }

    fn swiglu(&mut self, gate: Buf, up: Buf) {
        let n = (self.n * self.n_ff) as i32;
        let mut g = self.take(gate);
        let mut b = self.sh.builder("swiglu_f32");
        b.arg(&mut g).arg(self.buf(up)).arg(&n);
        go("swiglu_f32", &mut b, grid1(n as usize, 256));
        drop(b);
        self.put(gate, g);
    }

    fn add(&mut self, x: Buf, y: Buf) {
        let n = (self.n * self.n_embd) as i32;
        let mut a = self.take(x);
        let mut b = self.sh.builder("add_f32");
        b.arg(&mut a).arg(self.buf(y)).arg(&n);
        go("add_f32", &mut b, grid1(n as usize, 256));
        drop(b);
        self.put(x, a);
    }

    fn set_kv_len(&mut self, len: usize) {
        self.len = len;
    }
}

impl DeviceState for CudaSession {
    fn read_outputs(&mut self, hidden: &mut Vec<f32>, logits: &mut Vec<f32>) {
        let (nh, nl) = (self.n * self.n_embd, self.n_out * self.vocab);
        hidden.resize(nh, 0.0);
        logits.resize(nl, 0.0);
        for (b, host, len) in [(Buf::Hidden, hidden, nh), (Buf::Logits, logits, nl)] {
            self.sh
                .stream
                .memcpy_dtoh(&self.buf(b).slice(..len), &mut host[..])
                .unwrap_or_else(|e| fail("reading the outputs", e));
        }
        self.sync();
    }

    fn read_kv(&self, layer: usize, n: usize, k: &mut [f32], v: &mut [f32]) {
        assert!(n <= self.len, "reading {n} positions of {}", self.len);
        let len = n * self.kv_row;
        if len == 0 {
            return;
        }
        for (src, dst) in [(&self.k[layer], k), (&self.v[layer], v)] {
            self.sh
                .stream
                .memcpy_dtoh(&src.slice(..len), &mut dst[..len])
                .unwrap_or_else(|e| fail("reading the KV cache", e));
        }
        self.sync();
    }

    fn write_kv(&mut self, layer: usize, n: usize, k: &[f32], v: &[f32]) {
        self.reserve(n);
        let len = n * self.kv_row;
        if len == 0 {
            return;
        }
        for (src, dst) in [(k, &mut self.k[layer]), (v, &mut self.v[layer])] {
            self.sh
                .stream
                .memcpy_htod(&src[..len], &mut dst.slice_mut(..len))
                .unwrap_or_else(|e| fail("writing the KV cache", e));
        }
    }
}
