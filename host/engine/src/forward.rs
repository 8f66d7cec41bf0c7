//! The transformer forward pass, written once for llama and qwen2 ([`forward_on`]) over the
//! steps of [`Exec`]: on host memory through [`Ops`] ([`HostExec`], what [`forward`] runs), or
//! on a backend's own device ([`DeviceState`]).

use crate::model::{Model, RopeLayout, Weight};
use crate::ops::{AttnShape, Ops};

/// Keys and values of every processed position, per layer (f32, `n_head_kv × head_dim` per
/// position). Grows in steps as tokens are appended.
#[derive(Debug, Clone, Default)]
pub struct KvCache {
    /// Per-layer keys.
    pub k: Vec<Vec<f32>>,
    /// Per-layer values.
    pub v: Vec<Vec<f32>>,
    /// Number of valid positions.
    pub len: usize,
}

const KV_GROW: usize = 256;

impl KvCache {
    /// An empty cache for `n_layer` layers.
    pub fn new(n_layer: usize) -> KvCache {
        KvCache {
            k: vec![Vec::new(); n_layer],
            v: vec![Vec::new(); n_layer],
            len: 0,
        }
    }

    fn reserve(&mut self, positions: usize, kv_row: usize) {
        let need = positions * kv_row;
        for buf in self.k.iter_mut().chain(self.v.iter_mut()) {
            if buf.len() < need {
                let grown = positions.div_ceil(KV_GROW) * KV_GROW * kv_row;
                buf.resize(grown, 0.0);
            }
        }
    }

    /// Drops every position from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

/// Which positions need logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsFor {
    /// Only the last new position (generation).
    Last,
    /// Every new position (teacher forcing, scoring).
    All,
}

/// Reusable buffers of one forward pass, kept by a session so that decoding allocates nothing.
#[derive(Debug, Default)]
pub struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    /// Final (normalised) hidden states of the last pass, `n × n_embd`.
    pub hidden: Vec<f32>,
    /// Logits of the last pass, `n_out × vocab`.
    pub logits: Vec<f32>,
}

fn fit(v: &mut Vec<f32>, n: usize) {
    if v.len() != n {
        v.resize(n, 0.0);
    }
}

/// The activation buffers of one forward pass, by role (what [`Exec`] operates on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Buf {
    /// The residual stream, `n × n_embd`.
    X,
    /// The normalised residual, `n × n_embd`.
    H,
    /// Queries, `n × n_head · head_dim`.
    Q,
    /// New keys, `n × n_head_kv · head_dim`.
    K,
    /// New values, `n × n_head_kv · head_dim`.
    V,
    /// Attention output, `n × n_embd`.
    Att,
    /// A projection back to the residual, `n × n_embd`.
    Proj,
    /// Feed-forward gate (then SwiGLU's output), `n × n_ff`.
    Gate,
    /// Feed-forward up projection, `n × n_ff`.
    Up,
    /// Final normalised hidden states, `n × n_embd`.
    Hidden,
    /// Logits, `n_out × vocab`.
    Logits,
}

/// Where the forward pass runs: the storage of its activations and KV cache, and the steps
/// [`forward_on`] performs on them. The model definition is [`forward_on`], written once;
/// [`HostExec`] runs it on host memory through an [`Ops`], and a backend with its own memory
/// (a GPU) implements this trait on device buffers (see [`DeviceState`]), so the layer loop
/// only enqueues work there.
pub trait Exec {
    /// Number of valid cache positions (where the next token goes).
    fn kv_len(&self) -> usize;
    /// Prepares the buffers for `n` new tokens with `n_out` rows of logits, and cache room
    /// for `kv_len() + n` positions.
    fn begin(&mut self, model: &Model, n: usize, n_out: usize);
    /// `X[t]` = the embedding of `tokens[t]`.
    fn embed(&mut self, model: &Model, tokens: &[u32]);
    /// `out = rms_norm(x) * weight`, row by row.
    fn rms_norm(&mut self, x: Buf, weight: &[f32], eps: f32, out: Buf);
    /// `outs[i] = ws[i] · x` over rows `x_row .. x_row + n` of `x` (one weight: [`Ops::matmul`],
    /// several: [`Ops::matmul_many`]).
    fn matmul(&mut self, ws: &[&Weight], x: Buf, x_row: usize, n: usize, outs: &[Buf]);
    /// Adds `bias` to every row of `x`.
    fn add_bias(&mut self, x: Buf, bias: &[f32]);
    /// RoPE on every head of every row of `x`, rows at positions `pos0 ..`.
    fn rope(&mut self, x: Buf, pos0: usize, n_heads: usize, head_dim: usize, layout: RopeLayout, base: f32);
    /// Writes [`Buf::K`] and [`Buf::V`] into `layer`'s cache at positions `pos0 .. pos0 + n`.
    fn store_kv(&mut self, layer: usize, pos0: usize, n: usize);
    /// Attention of the queries `q` over `layer`'s cache, into `out`.
    fn attention(&mut self, layer: usize, q: Buf, shape: AttnShape, out: Buf);
    /// `gate = silu(gate) * up`.
    fn swiglu(&mut self, gate: Buf, up: Buf);
    /// `x += y`.
    fn add(&mut self, x: Buf, y: Buf);
    /// Marks positions `0 .. len` of the cache valid.
    fn set_kv_len(&mut self, len: usize);
}

/// A session's forward-pass state on a backend's own device: the activation buffers and the
/// KV cache live there, [`forward_on`] enqueues the layer loop with no host round trip, and
/// the session reads back only the outputs. Made by [`Ops::device_session`].
pub trait DeviceState: Exec + Send + Sync {
    /// Copies the last pass's final hidden states (`n × n_embd`, into `hidden`) and logits
    /// (`n_out × vocab`, into `logits`) to the host, resizing both; the pass's one wait.
    fn read_outputs(&mut self, hidden: &mut Vec<f32>, logits: &mut Vec<f32>);
    /// Copies positions `0 .. n` of `layer`'s keys and values to the host (`n × n_head_kv ·
    /// head_dim` each), for snapshots.
    fn read_kv(&self, layer: usize, n: usize, k: &mut [f32], v: &mut [f32]);
    /// Writes host keys and values of positions `0 .. n` into `layer`'s cache (restoring a
    /// snapshot); the caller then sets the length with [`Exec::set_kv_len`].
    fn write_kv(&mut self, layer: usize, n: usize, k: &[f32], v: &[f32]);
}

/// [`Exec`] on host memory: a [`KvCache`] and a [`Scratch`], computed by an [`Ops`]. This is
/// what [`forward`] runs (every CPU and exact path).
pub struct HostExec<'a> {
    /// The operators.
    pub ops: &'a dyn Ops,
    /// The KV cache.
    pub cache: &'a mut KvCache,
    /// The activation buffers.
    pub s: &'a mut Scratch,
}

impl Scratch {
    fn buf(&mut self, b: Buf) -> &mut Vec<f32> {
        match b {
            Buf::X => &mut self.x,
            Buf::H => &mut self.h,
            Buf::Q => &mut self.q,
            Buf::K => &mut self.k,
            Buf::V => &mut self.v,
            Buf::Att => &mut self.att,
            Buf::Proj => &mut self.proj,
            Buf::Gate => &mut self.gate,
            Buf::Up => &mut self.up,
            Buf::Hidden => &mut self.hidden,
            Buf::Logits => &mut self.logits,
        }
    }

    /// Moves buffer `b` out (to write it while reading others); [`Scratch::put`] returns it.
    fn take(&mut self, b: Buf) -> Vec<f32> {
        std::mem::take(self.buf(b))
    }

    fn put(&mut self, b: Buf, v: Vec<f32>) {
        *self.buf(b) = v;
    }
}

impl Exec for HostExec<'_> {
    fn kv_len(&self) -> usize {
        self.cache.len
    }

    fn begin(&mut self, model: &Model, n: usize, n_out: usize) {
        let c = &model.config;
        let d = c.n_embd;
        let kv_row = c.n_head_kv * c.head_dim;
        self.cache.reserve(self.cache.len + n, kv_row);
        let s = &mut *self.s;
        fit(&mut s.x, n * d);
        fit(&mut s.h, n * d);
        fit(&mut s.q, n * d);
        fit(&mut s.k, n * kv_row);
        fit(&mut s.v, n * kv_row);
        fit(&mut s.att, n * d);
        fit(&mut s.proj, n * d);
        fit(&mut s.gate, n * c.n_ff);
        fit(&mut s.up, n * c.n_ff);
        fit(&mut s.hidden, n * d);
        fit(&mut s.logits, n_out * c.vocab);
    }

    fn embed(&mut self, model: &Model, tokens: &[u32]) {
        let d = model.config.n_embd;
        for (t, &tok) in tokens.iter().enumerate() {
            model
                .token_embd
                .dequantize_row(tok as usize, &mut self.s.x[t * d..(t + 1) * d]);
        }
    }

    fn rms_norm(&mut self, x: Buf, weight: &[f32], eps: f32, out: Buf) {
        debug_assert_ne!(x, out);
        let mut o = self.s.take(out);
        self.ops.rms_norm(self.s.buf(x), weight, eps, &mut o);
        self.s.put(out, o);
    }

    fn matmul(&mut self, ws: &[&Weight], x: Buf, x_row: usize, n: usize, outs: &[Buf]) {
        let k = ws[0].cols;
        let mut o: [Vec<f32>; 3] = Default::default();
        for (slot, &b) in o.iter_mut().zip(outs) {
            debug_assert_ne!(x, b);
            *slot = self.s.take(b);
        }
        let xs = &self.s.buf(x)[x_row * k..(x_row + n) * k];
        match (ws, &mut o) {
            ([w], [a, ..]) => self.ops.matmul(w, xs, n, a),
            ([_, _], [a, b, _]) => self
                .ops
                .matmul_many(ws, xs, n, &mut [a.as_mut_slice(), b.as_mut_slice()]),
            ([_, _, _], [a, b, c]) => {
                let outs = &mut [a.as_mut_slice(), b.as_mut_slice(), c.as_mut_slice()];
                self.ops.matmul_many(ws, xs, n, outs)
            }
            _ => panic!("Exec::matmul takes one to three weights"),
        }
        for (slot, &b) in o.iter_mut().zip(outs) {
            self.s.put(b, std::mem::take(slot));
        }
    }

    fn add_bias(&mut self, x: Buf, bias: &[f32]) {
        for row in self.s.buf(x).chunks_exact_mut(bias.len()) {
            row.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
        }
    }

    fn rope(&mut self, x: Buf, pos0: usize, n_heads: usize, head_dim: usize, layout: RopeLayout, base: f32) {
        self.ops.rope(self.s.buf(x), pos0, n_heads, head_dim, layout, base);
    }

    fn store_kv(&mut self, layer: usize, pos0: usize, n: usize) {
        let kv_row = self.s.k.len() / n;
        self.cache.k[layer][pos0 * kv_row..(pos0 + n) * kv_row].copy_from_slice(&self.s.k);
        self.cache.v[layer][pos0 * kv_row..(pos0 + n) * kv_row].copy_from_slice(&self.s.v);
    }

    fn attention(&mut self, layer: usize, q: Buf, shape: AttnShape, out: Buf) {
        debug_assert_ne!(q, out);
        let mut o = self.s.take(out);
        let (k, v) = (&self.cache.k[layer], &self.cache.v[layer]);
        self.ops.attention(self.s.buf(q), k, v, shape, &mut o);
        self.s.put(out, o);
    }

    fn swiglu(&mut self, gate: Buf, up: Buf) {
        debug_assert_ne!(gate, up);
        let mut g = self.s.take(gate);
        self.ops.swiglu(&mut g, self.s.buf(up));
        self.s.put(gate, g);
    }

    fn add(&mut self, x: Buf, y: Buf) {
        debug_assert_ne!(x, y);
        let mut a = self.s.take(x);
        a.iter_mut().zip(self.s.buf(y).iter()).for_each(|(x, p)| *x += p);
        self.s.put(x, a);
    }

    fn set_kv_len(&mut self, len: usize) {
        self.cache.len = len;
    }
}

/// Runs `tokens` (at positions `cache.len ..`) through the model, appending their keys and
/// values to `cache`. Leaves the final hidden states in `scratch.hidden` and the requested
/// logits in `scratch.logits`. Token ids must already be validated against the vocabulary.
pub fn forward(model: &Model, ops: &dyn Ops, cache: &mut KvCache, tokens: &[u32], which: LogitsFor, s: &mut Scratch) {
    forward_on(model, &mut HostExec { ops, cache, s }, tokens, which);
}

/// The model definition: runs `tokens` (at positions `e.kv_len() ..`) through every layer on
/// `e`, appending their keys and values to its cache and leaving the final hidden states in
/// [`Buf::Hidden`] and the requested logits in [`Buf::Logits`].
pub fn forward_on<E: Exec + ?Sized>(model: &Model, e: &mut E, tokens: &[u32], which: LogitsFor) {
    let c = &model.config;
    let n = tokens.len();
    let pos0 = e.kv_len();
    let (first, n_out) = match which {
        LogitsFor::Last => (n - 1, 1),
        LogitsFor::All => (0, n),
    };
    e.begin(model, n, n_out);
    e.embed(model, tokens);

    for (li, l) in model.layers.iter().enumerate() {
        e.rms_norm(Buf::X, &l.attn_norm, c.eps, Buf::H);
        e.matmul(&[&l.wq, &l.wk, &l.wv], Buf::H, 0, n, &[Buf::Q, Buf::K, Buf::V]);
        for (buf, bias) in [(Buf::Q, &l.bq), (Buf::K, &l.bk), (Buf::V, &l.bv)] {
            if let Some(b) = bias {
                e.add_bias(buf, b);
            }
        }
        e.rope(Buf::Q, pos0, c.n_head, c.head_dim, c.rope_layout, c.rope_base);
        e.rope(Buf::K, pos0, c.n_head_kv, c.head_dim, c.rope_layout, c.rope_base);
        e.store_kv(li, pos0, n);
        let shape = AttnShape {
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: c.head_dim,
            n_tokens: n,
            pos0,
        };
        e.attention(li, Buf::Q, shape, Buf::Att);
        e.matmul(&[&l.wo], Buf::Att, 0, n, &[Buf::Proj]);
        e.add(Buf::X, Buf::Proj);

        e.rms_norm(Buf::X, &l.ffn_norm, c.eps, Buf::H);
        e.matmul(&[&l.w_gate, &l.w_up], Buf::H, 0, n, &[Buf::Gate, Buf::Up]);
        e.swiglu(Buf::Gate, Buf::Up);
        e.matmul(&[&l.w_down], Buf::Gate, 0, n, &[Buf::Proj]);
        e.add(Buf::X, Buf::Proj);
    }
    e.set_kv_len(pos0 + n);

    e.rms_norm(Buf::X, &model.output_norm, c.eps, Buf::Hidden);
    e.matmul(&[&model.output], Buf::Hidden, first, n_out, &[Buf::Logits]);
}
