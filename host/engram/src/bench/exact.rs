//! `engram bench exact`: what exact mode (`--exact`, the integer islands) costs and whether it
//! keeps the model's quality, measured against the float path in the same run.
//!
//! - **perplexity** of the default model on a fixed text (`tests/fixtures/exact-ppl.txt`, the
//!   opening of the GNU GPL v3, ≥ 2,000 tokens) in exact and float mode; target: within 2%;
//! - **greedy agreement** on 20 fixed prompts (`tests/fixtures/prompts-exact.json`): the share of
//!   positions where the free-running exact generation has the float generation's token
//!   (target ≥ 90%), and, teacher-forced on the float tokens, how often exact's argmax equals
//!   float's (a measure that one early divergence cannot drag down);
//! - **decode and prefill speed**, exact vs float, same threads, alternated per repeat; target:
//!   exact decode ≥ 0.7× float;
//! - **the metric's floor**: the same two agreement figures for the float path against itself
//!   with the last mantissa bit of every RMSNorm output flipped (a one-ulp `f32` perturbation,
//!   [`Perturbed`]). The float path requantizes its activations to int8 before every matrix
//!   product, so any difference, however small, moves some codes across a rounding boundary and
//!   grows from layer to layer into the full quantization noise: this figure is what *any*
//!   computation that is not bit-identical to the float path can expect;
//! - **determinism**: the logits digest of an exact greedy run with 1 thread and with all
//!   threads (must be equal);
//! - **NTT** at `n = 512`: an exact negacyclic product by the dual-prime NTT vs schoolbook.

use anyhow::Context;
use engram_engine::exact_ops::islands::{ntt::negacyclic_schoolbook, NttPlan};
use engram_engine::model::{RopeLayout, Weight};
use engram_engine::ops::{AttnShape, Ops};
use engram_engine::sampler::argmax;
use engram_engine::{ChatMessage, CpuOps, ExactOps, Model, Session, SessionOptions};
use std::sync::Arc;
use std::time::Instant;

use super::report::{Better, Figure, Report, Summary};
use super::BenchContext;
use crate::model_files::DEFAULT_CHAT_MODEL;

/// The perplexity text.
const TEXT: &str = include_str!("../../../../tests/fixtures/exact-ppl.txt");
/// The greedy-agreement prompts.
const PROMPTS: &str = include_str!("../../../../tests/fixtures/prompts-exact.json");

/// The float operators with a one-ulp perturbation: the lowest mantissa bit of every RMSNorm
/// output is flipped (relative change `2^-23`–`2^-24`); everything else is [`CpuOps`].
struct Perturbed(CpuOps);

impl Ops for Perturbed {
    fn matmul(&self, w: &Weight, x: &[f32], n: usize, out: &mut [f32]) {
        self.0.matmul(w, x, n, out)
    }
    fn matmul_many(&self, ws: &[&Weight], x: &[f32], n: usize, outs: &mut [&mut [f32]]) {
        self.0.matmul_many(ws, x, n, outs)
    }
    fn rms_norm(&self, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
        self.0.rms_norm(x, weight, eps, out);
        out.iter_mut()
            .for_each(|v| *v = f32::from_bits(v.to_bits() ^ 1));
    }
    fn rope(
        &self,
        x: &mut [f32],
        pos0: usize,
        n_heads: usize,
        head_dim: usize,
        layout: RopeLayout,
        base: f32,
    ) {
        self.0.rope(x, pos0, n_heads, head_dim, layout, base)
    }
    fn swiglu(&self, gate: &mut [f32], up: &[f32]) {
        self.0.swiglu(gate, up)
    }
    fn attention(&self, q: &[f32], k: &[f32], v: &[f32], shape: AttnShape, out: &mut [f32]) {
        self.0.attention(q, k, v, shape, out)
    }
    fn n_threads(&self) -> usize {
        self.0.n_threads()
    }
}

/// Negative log-likelihood (nats) of `next` under `logits`, in f64.
fn nll(logits: &[f32], next: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    (sum.ln() + max) - logits[next as usize] as f64
}

/// Perplexity of `tokens` (the first is conditioning only), prefilling in chunks.
fn perplexity(model: &Arc<Model>, tokens: &[u32]) -> anyhow::Result<f64> {
    const CHUNK: usize = 256;
    let vocab = model.config.vocab;
    let mut s = Session::new(
        model,
        SessionOptions {
            n_ctx: tokens.len(),
        },
    );
    let mut total = 0f64;
    for (c, part) in tokens.chunks(CHUNK).enumerate() {
        let logits = s.prefill_all(part)?;
        for (i, row) in logits.chunks_exact(vocab).enumerate() {
            if let Some(&next) = tokens.get(c * CHUNK + i + 1) {
                total += nll(row, next);
            }
        }
    }
    Ok((total / (tokens.len() - 1) as f64).exp())
}

fn chat_prompt(model: &Model, text: &str) -> anyhow::Result<Vec<u32>> {
    let t = model
        .chat_template()
        .context("the default model has no chat template")?;
    Ok(model
        .tokenizer()
        .encode(&t.render(&[ChatMessage::new("user", text)], true)?, true))
}

/// Greedy generation of up to `n` tokens (stops at end of generation).
fn greedy(model: &Arc<Model>, prompt: &[u32], n: usize) -> anyhow::Result<Vec<u32>> {
    let mut s = Session::new(model, SessionOptions::default());
    let mut logits = s.prefill(prompt)?.to_vec();
    let mut out = Vec::new();
    while out.len() < n {
        let t = argmax(&logits);
        if model.tokenizer().is_end_of_generation(t) {
            break;
        }
        out.push(t);
        logits.copy_from_slice(s.decode_step(t)?);
    }
    Ok(out)
}

/// How often `model`'s argmax equals `forced[i]` when fed `prompt ++ forced[..i]`.
fn teacher_forced(model: &Arc<Model>, prompt: &[u32], forced: &[u32]) -> anyhow::Result<usize> {
    let mut s = Session::new(model, SessionOptions::default());
    let mut logits = s.prefill(prompt)?.to_vec();
    let mut hits = 0;
    for &t in forced {
        hits += usize::from(argmax(&logits) == t);
        logits.copy_from_slice(s.decode_step(t)?);
    }
    Ok(hits)
}

/// Prefill and decode tokens/s of one run.
fn speed(model: &Arc<Model>, prompt: &[u32], n_decode: usize) -> anyhow::Result<(f64, f64)> {
    let mut s = Session::new(model, SessionOptions::default());
    let t = Instant::now();
    let mut logits = s.prefill(prompt)?.to_vec();
    let prefill = prompt.len() as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for _ in 0..n_decode {
        // Greedy, but never stopping early: the token count is fixed.
        let next = argmax(&logits);
        logits.copy_from_slice(s.decode_step(next)?);
    }
    Ok((prefill, n_decode as f64 / t.elapsed().as_secs_f64()))
}

/// The logits digest of a greedy exact run.
fn digest(model: &Arc<Model>, prompt: &[u32], n: usize) -> anyhow::Result<String> {
    let mut s = Session::new(model, SessionOptions::default());
    let mut logits = s.prefill(prompt)?.to_vec();
    s.enable_digest();
    for _ in 0..n {
        let next = argmax(&logits);
        logits.copy_from_slice(s.decode_step(next)?);
    }
    Ok(s.digest().context("digest enabled above")?.hex())
}

/// Median seconds of `f` over `reps` runs.
fn time_it(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut v: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn ntt_figure(quick: bool) -> anyhow::Result<Figure> {
    const N: usize = 512;
    let plan = NttPlan::new(N)?;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % (1 << 25)) as i64 - (1 << 24)
    };
    let a: Vec<i64> = (0..N).map(|_| next()).collect();
    let b: Vec<i64> = (0..N).map(|_| next()).collect();
    let (mut x, mut y) = (vec![0i64; N], vec![0i64; N]);
    plan.multiply_exact(&a, &b, &mut x)?;
    negacyclic_schoolbook(&a, &b, &mut y)?;
    anyhow::ensure!(x == y, "NTT product differs from schoolbook at n = 512");
    let reps = if quick { 21 } else { 201 };
    let inner = 10;
    let ntt = time_it(reps, || {
        for _ in 0..inner {
            plan.multiply_exact(&a, &b, &mut x).expect("lengths match");
        }
    }) / inner as f64;
    let school = time_it(reps, || {
        for _ in 0..inner {
            negacyclic_schoolbook(&a, &b, &mut y).expect("lengths match");
        }
    }) / inner as f64;
    let s = |v: f64| Summary::of(&[v * 1e6]).context("timing");
    Ok(Figure::against(
        "NTT-CRT negacyclic product, n = 512 (|coeff| < 2^24)",
        "µs",
        Better::Lower,
        s(ntt)?,
        "schoolbook",
        s(school)?,
    ))
}

/// Run the suite.
pub fn suite(ctx: &BenchContext<'_>) -> anyhow::Result<Report> {
    let path = ctx.places.models.join(DEFAULT_CHAT_MODEL);
    let (ppl_tokens, n_prompts, gen_tokens, n_decode, repeats) = if ctx.quick {
        (512, 5, 16, 16, 1)
    } else {
        (usize::MAX, 20, 32, 64, 5)
    };
    let float = Arc::new(Model::load_with(&path, Arc::new(CpuOps::new(ctx.threads)))?);
    let exact_ops = Arc::new(ExactOps::new(ctx.threads));
    let kernel = exact_ops.kernel_name();
    let exact = Arc::new(ExactOps::load_model_with(&path, exact_ops)?);
    let mut report = Report::new("exact", ctx.quick, ctx.machine);
    let s = |v: &[f64]| Summary::of(v).context("no samples");

    // Speed first, on a quiet process: alternate the two paths per repeat.
    let prompt = chat_prompt(&float, "Tell me about the history of the printing press.")?;
    speed(&float, &prompt, 4)?; // warm the page cache and the pools
    speed(&exact, &prompt, 4)?;
    let (mut fp, mut fd, mut ep, mut ed) = (vec![], vec![], vec![], vec![]);
    for _ in 0..repeats {
        let (p, d) = speed(&float, &prompt, n_decode)?;
        fp.push(p);
        fd.push(d);
        let (p, d) = speed(&exact, &prompt, n_decode)?;
        ep.push(p);
        ed.push(d);
    }
    report.figures.push(
        Figure::against(
            &format!("exact decode ({n_decode} tokens)"),
            "tok/s",
            Better::Higher,
            s(&ed)?,
            "float path",
            s(&fd)?,
        )
        .with_target("≥ 0.7× float"),
    );
    report.figures.push(Figure::against(
        &format!("exact prefill ({} tokens)", prompt.len()),
        "tok/s",
        Better::Higher,
        s(&ep)?,
        "float path",
        s(&fp)?,
    ));

    // Perplexity.
    let mut text = Vec::new();
    if float.tokenizer().add_bos() {
        text.extend(float.tokenizer().bos());
    }
    text.extend(float.tokenizer().encode(TEXT, false));
    text.truncate(ppl_tokens);
    let pf = perplexity(&float, &text)?;
    let pe = perplexity(&exact, &text)?;
    report.figures.push(
        Figure::against(
            &format!("perplexity, {} tokens of exact-ppl.txt", text.len()),
            "ppl",
            Better::Lower,
            s(&[pe])?,
            "float path",
            s(&[pf])?,
        )
        .with_target("within 2% of float (ratio ≥ 0.98)"),
    );

    // Greedy agreement.
    let prompts: Vec<String> = serde_json::from_str(PROMPTS).context("prompts-exact.json")?;
    let perturbed = Arc::new(Model::load_with(
        &path,
        Arc::new(Perturbed(CpuOps::new(ctx.threads))),
    )?);
    let (mut same, mut total, mut forced_hits, mut forced_total) = (0usize, 0usize, 0usize, 0usize);
    let (mut p_same, mut p_total, mut p_hits) = (0usize, 0usize, 0usize);
    for text in prompts.iter().take(n_prompts) {
        let p = chat_prompt(&float, text)?;
        let f = greedy(&float, &p, gen_tokens)?;
        let e = greedy(&exact, &p, gen_tokens)?;
        same += f.iter().zip(&e).filter(|(a, b)| a == b).count();
        total += f.len().max(e.len());
        forced_hits += teacher_forced(&exact, &p, &f)?;
        forced_total += f.len();
        let q = greedy(&perturbed, &p, gen_tokens)?;
        p_same += f.iter().zip(&q).filter(|(a, b)| a == b).count();
        p_total += f.len().max(q.len());
        p_hits += teacher_forced(&perturbed, &p, &f)?;
    }
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    report.figures.push(
        Figure::alone(
            &format!("greedy agreement, {n_prompts} prompts × ≤ {gen_tokens} tokens (free-running, per position)"),
            "%",
            Better::Higher,
            s(&[pct(same, total)])?,
        )
        .with_target("≥ 90%"),
    );
    report.figures.push(Figure::alone(
        "greedy agreement, teacher-forced on the float tokens",
        "%",
        Better::Higher,
        s(&[pct(forced_hits, forced_total)])?,
    ));
    report.figures.push(Figure::alone(
        "floor: float vs float with a 1-ulp RMSNorm perturbation, free-running",
        "%",
        Better::Higher,
        s(&[pct(p_same, p_total)])?,
    ));
    report.figures.push(Figure::alone(
        "floor: same, teacher-forced",
        "%",
        Better::Higher,
        s(&[pct(p_hits, forced_total)])?,
    ));

    // Determinism across thread counts.
    let one = Arc::new(ExactOps::load_model(&path, 1)?);
    let d1 = digest(&one, &prompt, n_decode)?;
    let dn = digest(&exact, &prompt, n_decode)?;
    report.figures.push(Figure::alone(
        &format!(
            "logits digest equal, 1 vs {} threads ({n_decode} tokens)",
            ctx.threads
        ),
        "bool",
        Better::Higher,
        s(&[f64::from(u8::from(d1 == dn))])?,
    ));
    report.notes.push(format!("exact logits digest (BLAKE2b-256, {n_decode} greedy tokens): 1 thread {d1}, {} threads {dn}", ctx.threads));

    report.figures.push(ntt_figure(ctx.quick)?);
    report.notes.push(format!(
        "model {DEFAULT_CHAT_MODEL}; {} threads; exact dot-product kernel {kernel}; float kernels {:?}",
        ctx.threads,
        engram_engine::kernels::Kernels::detect().isa
    ));
    report.notes.push(format!(
        "perplexity: float {pf:.4}, exact {pe:.4} ({:+.2}%); greedy: {same}/{total} positions equal, teacher-forced {forced_hits}/{forced_total}; float with a 1-ulp perturbation: {p_same}/{p_total}, teacher-forced {p_hits}/{forced_total}",
        100.0 * (pe / pf - 1.0)
    ));
    Ok(report)
}
