//! The transformer forward pass, written once for llama and qwen2 on top of [`Ops`].

use crate::model::Model;
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

/// Runs `tokens` (at positions `cache.len ..`) through the model, appending their keys and
/// values to `cache`. Leaves the final hidden states in `scratch.hidden` and the requested
/// logits in `scratch.logits`. Token ids must already be validated against the vocabulary.
pub fn forward(model: &Model, ops: &dyn Ops, cache: &mut KvCache, tokens: &[u32], which: LogitsFor, s: &mut Scratch) {
    let c = &model.config;
    let n = tokens.len();
    let d = c.n_embd;
    let kv_row = c.n_head_kv * c.head_dim;
    let pos0 = cache.len;
    cache.reserve(pos0 + n, kv_row);

    fit(&mut s.x, n * d);
    fit(&mut s.h, n * d);
    fit(&mut s.q, n * d);
    fit(&mut s.k, n * kv_row);
    fit(&mut s.v, n * kv_row);
    fit(&mut s.att, n * d);
    fit(&mut s.proj, n * d);
    fit(&mut s.gate, n * c.n_ff);
    fit(&mut s.up, n * c.n_ff);

    for (t, &tok) in tokens.iter().enumerate() {
        model
            .token_embd
            .dequantize_row(tok as usize, &mut s.x[t * d..(t + 1) * d]);
    }

    for (li, l) in model.layers.iter().enumerate() {
        ops.rms_norm(&s.x, &l.attn_norm, c.eps, &mut s.h);
        ops.matmul_many(&[&l.wq, &l.wk, &l.wv], &s.h, n, &mut [&mut s.q, &mut s.k, &mut s.v]);
        for (buf, bias) in [(&mut s.q, &l.bq), (&mut s.k, &l.bk), (&mut s.v, &l.bv)] {
            if let Some(b) = bias {
                for row in buf.chunks_exact_mut(b.len()) {
                    row.iter_mut().zip(b).for_each(|(x, b)| *x += b);
                }
            }
        }
        ops.rope(&mut s.q, pos0, c.n_head, c.head_dim, c.rope_layout, c.rope_base);
        ops.rope(&mut s.k, pos0, c.n_head_kv, c.head_dim, c.rope_layout, c.rope_base);
        cache.k[li][pos0 * kv_row..(pos0 + n) * kv_row].copy_from_slice(&s.k);
        cache.v[li][pos0 * kv_row..(pos0 + n) * kv_row].copy_from_slice(&s.v);
        let shape = AttnShape {
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: c.head_dim,
            n_tokens: n,
            pos0,
        };
        ops.attention(&s.q, &cache.k[li], &cache.v[li], shape, &mut s.att);
        ops.matmul(&l.wo, &s.att, n, &mut s.proj);
        s.x.iter_mut().zip(&s.proj).for_each(|(x, p)| *x += p);

        ops.rms_norm(&s.x, &l.ffn_norm, c.eps, &mut s.h);
        ops.matmul_many(&[&l.w_gate, &l.w_up], &s.h, n, &mut [&mut s.gate, &mut s.up]);
        ops.swiglu(&mut s.gate, &s.up);
        ops.matmul(&l.w_down, &s.gate, n, &mut s.proj);
        s.x.iter_mut().zip(&s.proj).for_each(|(x, p)| *x += p);
    }
    cache.len = pos0 + n;

    fit(&mut s.hidden, n * d);
    ops.rms_norm(&s.x, &model.output_norm, c.eps, &mut s.hidden);
    let (first, n_out) = match which {
        LogitsFor::Last => (n - 1, 1),
        LogitsFor::All => (0, n),
    };
    fit(&mut s.logits, n_out * c.vocab);
    ops.matmul(&model.output, &s.hidden[first * d..], n_out, &mut s.logits);
}
