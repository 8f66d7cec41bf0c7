//! Ablation of exact mode against the float path (diagnostic, `--ignored`): each operator of
//! the forward pass is taken from [`ExactOps`] or from [`CpuOps`] by a mask, and the greedy
//! agreement with the float path (free-running and teacher-forced) and the logits error are
//! printed per mask.

mod common;

use engram_engine::model::{RopeLayout, Weight};
use engram_engine::ops::{AttnShape, Ops};
use engram_engine::sampler::argmax;
use engram_engine::{ChatMessage, CpuOps, ExactOps, Model, Session, SessionOptions};
use std::sync::Arc;

const MATMUL: u8 = 1;
const NORM: u8 = 2;
const ROPE: u8 = 4;
const SWIGLU: u8 = 8;
const ATTN: u8 = 16;
const ALL: u8 = 31;

/// Operators from `exact` where the mask bit is set, from `float` otherwise.
struct Hybrid {
    mask: u8,
    /// When set, bit `b` of every float RMSNorm output's mantissa is flipped (`b = 0`: one ulp).
    perturb: Option<u32>,
    /// With `perturb`, how many elements: every element (`ABL_PERTURB_ONE` unset), the first
    /// element of each RMSNorm output (`1`), or a single element per generation: the first
    /// element of the last prompt token's first RMSNorm output (`2`, the first call of a
    /// prefill), the smallest difference a computation can have.
    perturb_one: u8,
    /// Rows of the previous RMSNorm call, to tell the first call of a prefill (`perturb_one = 2`).
    last_rows: std::sync::atomic::AtomicUsize,
    exact: ExactOps,
    float: CpuOps,
}

impl Hybrid {
    fn pick(&self, bit: u8) -> &dyn Ops {
        if self.mask & bit != 0 {
            &self.exact
        } else {
            &self.float
        }
    }
}

impl Ops for Hybrid {
    fn matmul(&self, w: &Weight, x: &[f32], n: usize, out: &mut [f32]) {
        self.pick(MATMUL).matmul(w, x, n, out)
    }
    fn matmul_many(&self, ws: &[&Weight], x: &[f32], n: usize, outs: &mut [&mut [f32]]) {
        self.pick(MATMUL).matmul_many(ws, x, n, outs)
    }
    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        self.pick(NORM).rms_norm(x, weight, eps, out);
        if let (Some(b), true) = (self.perturb, self.mask & NORM == 0) {
            let d = weight.len();
            let rows = out.len() / d;
            let prev = self.last_rows.swap(rows, std::sync::atomic::Ordering::Relaxed);
            let range = match self.perturb_one {
                0 => 0..out.len(),
                1 => 0..1,
                _ if rows > 1 && prev <= 1 => out.len() - d..out.len() - d + 1,
                _ => 0..0,
            };
            out[range]
                .iter_mut()
                .for_each(|v| *v = f32::from_bits(v.to_bits() ^ (1 << b)));
        }
    }
    fn rope(&self, x: &mut [f32], pos0: usize, n_heads: usize, head_dim: usize, layout: RopeLayout, base: f32) {
        self.pick(ROPE).rope(x, pos0, n_heads, head_dim, layout, base)
    }
    fn swiglu(&self, gate: &mut [f32], up: &[f32]) {
        self.pick(SWIGLU).swiglu(gate, up)
    }
    fn attention(&self, q: &[f32], k: &[f32], v: &[f32], s: AttnShape, out: &mut [f32]) {
        self.pick(ATTN).attention(q, k, v, s, out)
    }
    fn n_threads(&self) -> usize {
        self.float.n_threads()
    }
}

fn prompt(m: &Model, text: &str) -> Vec<u32> {
    let t = m.chat_template().unwrap();
    m.tokenizer()
        .encode(&t.render(&[ChatMessage::new("user", text)], true).unwrap(), true)
}

fn greedy(m: &Arc<Model>, p: &[u32], n: usize) -> Vec<u32> {
    let mut s = Session::new(m, SessionOptions::default());
    let mut logits = s.prefill(p).unwrap().to_vec();
    let mut out = Vec::new();
    while out.len() < n {
        let t = argmax(&logits);
        if m.tokenizer().is_end_of_generation(t) {
            break;
        }
        out.push(t);
        logits.copy_from_slice(s.decode_step(t).unwrap());
    }
    out
}

/// Teacher-forced on `forced`: (argmax hits, Σ squared logits error, Σ squared float logits,
/// Σ max |error|) against the float logits `want`.
fn forced(m: &Arc<Model>, p: &[u32], forced: &[u32], want: &[Vec<f32>]) -> (usize, f64, f64, f64) {
    let mut s = Session::new(m, SessionOptions::default());
    let mut logits = s.prefill(p).unwrap().to_vec();
    let (mut hits, mut e2, mut f2, mut emax) = (0, 0f64, 0f64, 0f64);
    for (i, &t) in forced.iter().enumerate() {
        hits += usize::from(argmax(&logits) == t);
        let mut mx = 0f64;
        for (a, b) in logits.iter().zip(&want[i]) {
            let d = (*a - *b) as f64;
            e2 += d * d;
            f2 += (*b as f64) * (*b as f64);
            mx = mx.max(d.abs());
        }
        emax += mx;
        logits.copy_from_slice(s.decode_step(t).unwrap());
    }
    (hits, e2, f2, emax)
}

fn float_logits(m: &Arc<Model>, p: &[u32], forced: &[u32]) -> Vec<Vec<f32>> {
    let mut s = Session::new(m, SessionOptions::default());
    let mut out = vec![s.prefill(p).unwrap().to_vec()];
    for &t in forced {
        out.push(s.decode_step(t).unwrap().to_vec());
    }
    out
}

#[test]
#[ignore = "diagnostic: cargo test --release -p engram-engine --test exact_ablation -- --ignored --nocapture"]
fn ablation() {
    let path = common::model_path(std::env::var("ABL_MODEL").as_deref().unwrap_or(common::SMOLLM2));
    let prompts: Vec<String> = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("tests/fixtures/prompts-exact.json")).unwrap(),
    )
    .unwrap();
    let n_prompts: usize = std::env::var("ABL_PROMPTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let gen: usize = std::env::var("ABL_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let float = Arc::new(Model::load_with(&path, Arc::new(CpuOps::new(2))).unwrap());
    let cases: Vec<(String, Vec<u32>, Vec<Vec<f32>>)> = prompts
        .iter()
        .take(n_prompts)
        .map(|t| {
            let p = prompt(&float, t);
            let g = greedy(&float, &p, gen);
            let l = float_logits(&float, &p, &g);
            (t.clone(), p, l.into_iter().zip(0..).map(|(l, _)| l).collect::<Vec<_>>())
        })
        .collect();
    let float_gens: Vec<Vec<u32>> = cases.iter().map(|(_, p, _)| greedy(&float, p, gen)).collect();
    let masks: Vec<u8> = match std::env::var("ABL_MASKS") {
        Ok(v) => v.split(',').map(|m| m.parse().unwrap()).collect(),
        Err(_) => vec![0, ALL, MATMUL, ALL & !MATMUL, NORM, ROPE, SWIGLU, ATTN],
    };
    let perturb: Option<u32> = std::env::var("ABL_PERTURB").ok().and_then(|v| v.parse().ok());
    let perturb_one: u8 = std::env::var("ABL_PERTURB_ONE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for mask in masks {
        let ops = Hybrid {
            mask,
            perturb,
            perturb_one,
            last_rows: Default::default(),
            exact: ExactOps::new(2),
            float: CpuOps::new(2),
        };
        let m = Arc::new(Model::load_with(&path, Arc::new(ops)).unwrap());
        let (mut same, mut total, mut hits, mut ftotal, mut e2, mut f2, mut emax) = (0, 0, 0, 0, 0f64, 0f64, 0f64);
        let mut per = Vec::new();
        for ((_, p, want), f) in cases.iter().zip(&float_gens) {
            let e = greedy(&m, p, gen);
            let s = f.iter().zip(&e).take_while(|(a, b)| a == b).count();
            per.push(s);
            same += f.iter().zip(&e).filter(|(a, b)| a == b).count();
            total += f.len().max(e.len());
            let (h, a, b, c) = forced(&m, p, f, want);
            hits += h;
            ftotal += f.len();
            e2 += a;
            f2 += b;
            emax += c;
        }
        eprintln!(
            "perturb {perturb:?} one {perturb_one} mask {mask:2} (matmul {} norm {} rope {} swiglu {} attn {}): free {same}/{total} = {:.1}%, forced {hits}/{ftotal} = {:.1}%, logits rel rms err {:.2e}, mean max|err| {:.4}; first divergence per prompt {per:?}",
            mask & MATMUL != 0,
            mask & NORM != 0,
            mask & ROPE != 0,
            mask & SWIGLU != 0,
            mask & ATTN != 0,
            100.0 * same as f64 / total as f64,
            100.0 * hits as f64 / ftotal as f64,
            (e2 / f2).sqrt(),
            emax / ftotal as f64,
        );
        if mask == 0 && perturb.is_none() {
            // The harness itself: all-float operators must reproduce the float model exactly.
            assert_eq!((same, hits), (total, ftotal), "mask 0 must be the float path itself");
        }
    }
}

/// On-CPU nanoseconds of the calling thread so far (`/proc/thread-self/schedstat`), which,
/// unlike wall time, does not count the time other processes hold the core.
fn thread_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    s.split_whitespace().next().unwrap().parse().unwrap()
}

/// Decode cost per token on one thread (the pool runs inline), exact vs float, alternated,
/// best of `ABL_REPS` (default 5): on-CPU time, so a loaded machine skews it less than
/// wall-clock tokens/s.
#[test]
#[ignore = "diagnostic: cargo test --release -p engram-engine --test exact_ablation decode_cpu -- --ignored --nocapture"]
fn decode_cpu_time() {
    let path = common::model_path(common::SMOLLM2);
    let float = Arc::new(Model::load_with(&path, Arc::new(CpuOps::new(1))).unwrap());
    let exact = Arc::new(ExactOps::load_model(&path, 1).unwrap());
    let p = prompt(&float, "Tell me about the history of the printing press.");
    let steps: usize = std::env::var("ABL_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let reps: usize = std::env::var("ABL_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let run = |m: &Arc<Model>| {
        let mut s = Session::new(m, SessionOptions::default());
        let mut logits = s.prefill(&p).unwrap().to_vec();
        let t0 = thread_cpu_ns();
        for _ in 0..steps {
            let t = argmax(&logits);
            logits.copy_from_slice(s.decode_step(t).unwrap());
        }
        (thread_cpu_ns() - t0) as f64 / steps as f64 / 1e3
    };
    let (mut f, mut e) = (f64::MAX, f64::MAX);
    for _ in 0..reps {
        f = f.min(run(&float));
        e = e.min(run(&exact));
    }
    eprintln!(
        "decode µs/token on one thread (best of {reps}, {steps} tokens): float {f:.0}, exact {e:.0}; exact/float speed {:.3}×",
        f / e
    );
    assert!(
        f / e >= 0.7,
        "exact decode is {:.3}× float on one thread (target ≥ 0.7×; check the machine's load)",
        f / e
    );
}
