//! The device seam of sessions (`Ops::device_session`, `DeviceState`), checked without a GPU:
//! a stand-in "device" that keeps its activations and KV cache in its own buffers (computed by
//! the CPU operators) must give the CPU path's logits, hidden states and snapshot bytes bit for
//! bit, and snapshots must move a session between it and the plain CPU path in both directions.
//! A GPU backend plugs into the same seam (host/cuda), so this pins the session's half of it.

mod common;

use engram_engine::forward::{Buf, DeviceState, Exec, HostExec, KvCache, Scratch};
use engram_engine::model::{RopeLayout, Weight};
use engram_engine::ops::AttnShape;
use engram_engine::sampler::argmax;
use engram_engine::{CpuOps, Model, Ops, Session, SessionOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// A device state held in host memory of its own (not the session's).
struct StandIn {
    ops: Arc<CpuOps>,
    cache: KvCache,
    s: Scratch,
    reads: Arc<AtomicUsize>,
}

impl StandIn {
    fn host(&mut self) -> HostExec<'_> {
        HostExec {
            ops: &*self.ops,
            cache: &mut self.cache,
            s: &mut self.s,
        }
    }
}

impl Exec for StandIn {
    fn kv_len(&self) -> usize {
        self.cache.len
    }
    fn begin(&mut self, model: &Model, n: usize, n_out: usize) {
        self.host().begin(model, n, n_out)
    }
    fn embed(&mut self, model: &Model, tokens: &[u32]) {
        self.host().embed(model, tokens)
    }
    fn rms_norm(&mut self, x: Buf, weight: &[f32], eps: f32, out: Buf) {
        self.host().rms_norm(x, weight, eps, out)
    }
    fn matmul(&mut self, ws: &[&Weight], x: Buf, x_row: usize, n: usize, outs: &[Buf]) {
        self.host().matmul(ws, x, x_row, n, outs)
    }
    fn add_bias(&mut self, x: Buf, bias: &[f32]) {
        self.host().add_bias(x, bias)
    }
    fn rope(&mut self, x: Buf, pos0: usize, n_heads: usize, head_dim: usize, layout: RopeLayout, base: f32) {
        self.host().rope(x, pos0, n_heads, head_dim, layout, base)
    }
    fn store_kv(&mut self, layer: usize, pos0: usize, n: usize) {
        self.host().store_kv(layer, pos0, n)
    }
    fn attention(&mut self, layer: usize, q: Buf, shape: AttnShape, out: Buf) {
        self.host().attention(layer, q, shape, out)
    }
    fn swiglu(&mut self, gate: Buf, up: Buf) {
        self.host().swiglu(gate, up)
    }
    fn add(&mut self, x: Buf, y: Buf) {
        self.host().add(x, y)
    }
    fn set_kv_len(&mut self, len: usize) {
        self.host().set_kv_len(len)
    }
}

impl DeviceState for StandIn {
    fn read_outputs(&mut self, hidden: &mut Vec<f32>, logits: &mut Vec<f32>) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        hidden.clear();
        hidden.extend_from_slice(&self.s.hidden);
        logits.clear();
        logits.extend_from_slice(&self.s.logits);
    }
    fn read_kv(&self, layer: usize, n: usize, k: &mut [f32], v: &mut [f32]) {
        assert!(n <= self.cache.len, "reading past the cache");
        k.copy_from_slice(&self.cache.k[layer][..k.len()]);
        v.copy_from_slice(&self.cache.v[layer][..v.len()]);
    }
    fn write_kv(&mut self, layer: usize, _n: usize, k: &[f32], v: &[f32]) {
        self.cache.k[layer] = k.to_vec();
        self.cache.v[layer] = v.to_vec();
    }
}

/// The CPU operators, offering the stand-in device to every session.
struct StandInOps {
    cpu: Arc<CpuOps>,
    sessions: AtomicUsize,
    reads: Arc<AtomicUsize>,
}

impl Ops for StandInOps {
    fn matmul(&self, w: &Weight, x: &[f32], n: usize, out: &mut [f32]) {
        self.cpu.matmul(w, x, n, out)
    }
    fn matmul_many(&self, ws: &[&Weight], x: &[f32], n: usize, outs: &mut [&mut [f32]]) {
        self.cpu.matmul_many(ws, x, n, outs)
    }
    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        self.cpu.rms_norm(x, weight, eps, out)
    }
    fn rope(&self, x: &mut [f32], pos0: usize, n_heads: usize, head_dim: usize, layout: RopeLayout, base: f32) {
        self.cpu.rope(x, pos0, n_heads, head_dim, layout, base)
    }
    fn swiglu(&self, gate: &mut [f32], up: &[f32]) {
        self.cpu.swiglu(gate, up)
    }
    fn attention(&self, q: &[f32], k: &[f32], v: &[f32], shape: AttnShape, out: &mut [f32]) {
        self.cpu.attention(q, k, v, shape, out)
    }
    fn n_threads(&self) -> usize {
        self.cpu.n_threads()
    }
    fn device_session(&self, model: &Model, _n_ctx: usize) -> Option<Box<dyn DeviceState>> {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        Some(Box::new(StandIn {
            ops: self.cpu.clone(),
            cache: KvCache::new(model.config.n_layer),
            s: Scratch::default(),
            reads: self.reads.clone(),
        }))
    }
}

struct Pair {
    cpu: Arc<Model>,
    dev: Arc<Model>,
    ops: Arc<StandInOps>,
}

fn pair() -> &'static Pair {
    static P: OnceLock<Pair> = OnceLock::new();
    P.get_or_init(|| {
        let path = common::model_path(common::SMOLLM2);
        let cpu_ops = Arc::new(CpuOps::new(2));
        let ops = Arc::new(StandInOps {
            cpu: cpu_ops.clone(),
            sessions: AtomicUsize::new(0),
            reads: Arc::new(AtomicUsize::new(0)),
        });
        Pair {
            cpu: Arc::new(Model::load_with(&path, cpu_ops).unwrap()),
            dev: Arc::new(Model::load_with(&path, ops.clone()).unwrap()),
            ops,
        }
    })
}

fn prompt(m: &Model) -> Vec<u32> {
    let t = m.chat_template().unwrap();
    let text = t
        .render(&[engram_engine::ChatMessage::new("user", "Name three colours.")], true)
        .unwrap();
    m.tokenizer().encode(&text, true)
}

/// Greedy steps from the session's last logits: the tokens and every step's logits.
fn greedy(s: &mut Session, n: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    let (mut toks, mut all) = (Vec::new(), Vec::new());
    let mut logits = s.logits().unwrap().to_vec();
    for _ in 0..n {
        let t = argmax(&logits);
        toks.push(t);
        logits = s.decode_step(t).unwrap().to_vec();
        all.push(logits.clone());
    }
    (toks, all)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn a_device_session_computes_the_cpu_paths_bits() {
    let p = pair();
    let prompt = prompt(&p.cpu);
    let before = p.ops.sessions.load(Ordering::Relaxed);
    let reads = p.ops.reads.load(Ordering::Relaxed);
    let mut a = Session::new(&p.cpu, SessionOptions::default());
    let mut b = Session::new(&p.dev, SessionOptions::default());
    assert!(
        p.ops.sessions.load(Ordering::Relaxed) > before,
        "the session asked for a device state"
    );
    let la = a.prefill_all(&prompt).unwrap().to_vec();
    let lb = b.prefill_all(&prompt).unwrap().to_vec();
    assert!(
        p.ops.reads.load(Ordering::Relaxed) > reads,
        "the outputs came from the device state"
    );
    assert_eq!(bits(&la), bits(&lb), "prefill logits");
    assert_eq!(bits(a.hidden()), bits(b.hidden()), "hidden states");
    let (ta, ga) = greedy(&mut a, 12);
    let (tb, gb) = greedy(&mut b, 12);
    assert_eq!(ta, tb);
    for (i, (x, y)) in ga.iter().zip(&gb).enumerate() {
        assert_eq!(bits(x), bits(y), "decode step {i} logits");
    }
    assert_eq!(a.snapshot(), b.snapshot(), "snapshot bytes");
}

#[test]
fn snapshots_move_a_session_between_host_and_device() {
    let p = pair();
    let prompt = prompt(&p.cpu);
    // Reference: one uninterrupted CPU session.
    let mut reference = Session::new(&p.cpu, SessionOptions::default());
    reference.prefill(&prompt).unwrap();
    let (_, want) = greedy(&mut reference, 10);

    // Device → CPU after the prompt and 4 steps, then CPU → device after 3 more.
    let mut d = Session::new(&p.dev, SessionOptions::default());
    d.prefill(&prompt).unwrap();
    let (_, mut got) = greedy(&mut d, 4);
    let mut c = Session::restore(&p.cpu, &d.snapshot()).unwrap();
    got.extend(greedy(&mut c, 3).1);
    let mut d2 = Session::restore(&p.dev, &c.snapshot()).unwrap();
    got.extend(greedy(&mut d2, 3).1);
    assert_eq!(got.len(), want.len());
    for (i, (x, y)) in want.iter().zip(&got).enumerate() {
        assert_eq!(bits(x), bits(y), "step {i} after the moves");
    }
}

#[test]
fn truncate_and_sync_reuse_the_device_cache() {
    let p = pair();
    let prompt = prompt(&p.cpu);
    let mut d = Session::new(&p.dev, SessionOptions::default());
    d.prefill(&prompt).unwrap();
    greedy(&mut d, 5);
    let history = d.tokens().to_vec();
    // Cut back into the prompt and sync to the full history: only the tail is prefilled.
    d.truncate(prompt.len() - 3);
    let (reused, logits) = d.sync(&history).unwrap();
    assert_eq!(reused, prompt.len() - 3);
    let logits = logits.to_vec();
    // Bit for bit against a CPU session that took the same steps.
    let mut c = Session::new(&p.cpu, SessionOptions::default());
    c.prefill(&prompt).unwrap();
    greedy(&mut c, 5);
    assert_eq!(c.tokens(), &history[..]);
    c.truncate(prompt.len() - 3);
    let (_, l2) = c.sync(&history).unwrap();
    assert_eq!(bits(&logits), bits(l2), "same steps, same bits");
}
