//! Exact mode (`ExactOps`): the logits stream is the same bits for 1, 2 and 4 threads, for the
//! scalar and the SIMD kernels, and for a session resumed from a snapshot; and the float path
//! is untouched by the exact machinery (the null floor).

mod common;

use engram_engine::forward::{forward, KvCache, LogitsFor, Scratch};
use engram_engine::sampler::argmax;
use engram_engine::{ChatMessage, CpuOps, ExactOps, LogitsDigest, Model, Session, SessionOptions};
use engram_exact::Kernel;
use std::sync::Arc;

/// Decoded tokens per run (the figure).
const STEPS: usize = 256;
/// Where the resumed run takes its snapshot.
const SPLIT: usize = 128;

fn exact_model(threads: usize, kernel: Kernel) -> Arc<Model> {
    let ops = Arc::new(ExactOps::with_kernel(threads, kernel));
    Arc::new(ExactOps::load_model_with(common::model_path(common::SMOLLM2), ops).unwrap())
}

fn prompt(m: &Model, text: &str) -> Vec<u32> {
    let t = m.chat_template().unwrap();
    let rendered = t.render(&[ChatMessage::new("user", text)], true).unwrap();
    m.tokenizer().encode(&rendered, true)
}

/// Greedy decode of `steps` tokens from the session's current logits; returns the tokens and
/// a digest of the logits of the steps from `tail_from` on (computed here, independently of
/// the session's own digest).
fn greedy(s: &mut Session, steps: usize, tail_from: usize) -> (Vec<u32>, String) {
    let mut tail = LogitsDigest::new();
    let mut logits = s.logits().unwrap().to_vec();
    let mut out = Vec::new();
    for i in 0..steps {
        let t = argmax(&logits);
        out.push(t);
        logits = s.decode_step(t).unwrap().to_vec();
        if i >= tail_from {
            tail.update(&logits);
        }
    }
    (out, tail.hex())
}

/// A full run: prefill, then `STEPS` greedy steps with the session's digest on.
fn run(m: &Arc<Model>, p: &[u32]) -> (Vec<u32>, String, String) {
    let mut s = Session::new(m, SessionOptions::default());
    s.prefill(p).unwrap();
    s.enable_digest();
    let (tokens, tail) = greedy(&mut s, STEPS, SPLIT);
    let d = s.digest().unwrap();
    assert_eq!(d.rows(), STEPS as u64);
    (tokens, d.hex(), tail)
}

#[test]
fn exact_digest_is_identical_across_threads_kernels_and_resume() {
    let base = exact_model(1, Kernel::Auto);
    let p = prompt(&base, "Tell me a long story about a lighthouse keeper and a storm.");
    let (tokens, digest, tail) = run(&base, &p);
    eprintln!("exact digest over {STEPS} decoded tokens: {digest}");
    assert_ne!(digest, tail);

    for (threads, kernel) in [(2, Kernel::Auto), (4, Kernel::Auto), (1, Kernel::Scalar)] {
        let m = exact_model(threads, kernel);
        let (t2, d2, _) = run(&m, &p);
        assert_eq!(t2, tokens, "tokens differ with {threads} threads, {kernel:?}");
        assert_eq!(d2, digest, "logits digest differs with {threads} threads, {kernel:?}");
    }

    // Resumed: decode SPLIT tokens, snapshot, restore into a model with another thread count,
    // decode the rest; its logits must equal the fresh run's tail bit for bit.
    let mut s = Session::new(&base, SessionOptions::default());
    s.prefill(&p).unwrap();
    let (head, _) = greedy(&mut s, SPLIT, usize::MAX);
    let snap = s.snapshot();
    let other = exact_model(2, Kernel::Auto);
    let mut r = Session::restore(&other, &snap).unwrap();
    r.enable_digest();
    let (rest, _) = greedy(&mut r, STEPS - SPLIT, usize::MAX);
    assert_eq!([head, rest].concat(), tokens);
    assert_eq!(
        r.digest().unwrap().hex(),
        tail,
        "resumed session's logits differ from the fresh run"
    );
}

#[test]
fn float_path_is_unchanged_by_the_exact_machinery() {
    let path = common::model_path(common::SMOLLM2);
    let m = Arc::new(Model::load_with(&path, Arc::new(CpuOps::new(1))).unwrap());
    let p = prompt(&m, "Name three colours.");
    const N: usize = 48;

    // Through the session, digest on.
    let mut s = Session::new(&m, SessionOptions::default());
    s.prefill(&p).unwrap();
    s.enable_digest();
    let (tokens, _) = greedy(&mut s, N, usize::MAX);
    let session_digest = s.digest().unwrap().hex();

    // Through the session, digest off: the same logits.
    let mut plain = Session::new(&m, SessionOptions::default());
    plain.prefill(&p).unwrap();
    let mut off = LogitsDigest::new();
    let mut logits = plain.logits().unwrap().to_vec();
    for &t in &tokens {
        assert_eq!(argmax(&logits), t);
        logits = plain.decode_step(t).unwrap().to_vec();
        off.update(&logits);
    }
    assert!(plain.digest().is_none());
    assert_eq!(
        off.hex(),
        session_digest,
        "enabling the digest changed the float logits"
    );

    // Straight through `forward` with the unchanged float operators, no session at all.
    let ops = CpuOps::new(1);
    let mut cache = KvCache::new(m.config.n_layer);
    let mut scratch = Scratch::default();
    let mut direct = LogitsDigest::new();
    forward(&m, &ops, &mut cache, &p, LogitsFor::Last, &mut scratch);
    for &t in &tokens {
        forward(&m, &ops, &mut cache, &[t], LogitsFor::Last, &mut scratch);
        direct.update(&scratch.logits);
    }
    assert_eq!(
        direct.hex(),
        session_digest,
        "the float session path differs from CpuOps + forward"
    );

    // And exact mode really is another computation (same top token, other bits).
    let e = exact_model(1, Kernel::Auto);
    let mut x = Session::new(&e, SessionOptions::default());
    let exact_logits = x.prefill(&p).unwrap().to_vec();
    let float_logits = Session::new(&m, SessionOptions::default())
        .prefill(&p)
        .unwrap()
        .to_vec();
    assert_eq!(
        argmax(&exact_logits),
        argmax(&float_logits),
        "exact and float disagree on the first token"
    );
    assert_ne!(exact_logits, float_logits);
}

#[test]
fn exact_qwen2_agrees_with_float_on_the_first_tokens() {
    // qwen2: biases, NeoX RoPE, Q4_K/Q6_K (and Q8_0/Q5_0) weights.
    let path = common::model_path(common::QWEN2);
    let f = Arc::new(Model::load_with(&path, Arc::new(CpuOps::new(0))).unwrap());
    let e = Arc::new(ExactOps::load_model(&path, 0).unwrap());
    let p = prompt(&f, "Write a Python function that returns the square of a number.");
    let mut fs = Session::new(&f, SessionOptions::default());
    let mut es = Session::new(&e, SessionOptions::default());
    fs.prefill(&p).unwrap();
    es.prefill(&p).unwrap();
    let (ft, _) = greedy(&mut fs, 8, usize::MAX);
    let (et, _) = greedy(&mut es, 8, usize::MAX);
    let agree = ft.iter().zip(&et).take_while(|(a, b)| a == b).count();
    eprintln!("qwen2 exact vs float: first {agree} of 8 greedy tokens agree");
    assert!(
        agree >= 4,
        "exact qwen2 diverged after {agree} tokens: {et:?} vs {ft:?}"
    );
}

#[test]
fn fixed_point_conversions_round_to_nearest_even_and_saturate() {
    use engram_engine::exact_ops::{act_to_f32, f32_to_act};
    let ulp = 1.0 / 65536.0;
    assert_eq!(f32_to_act(1.0), 65536);
    assert_eq!(f32_to_act(-1.5), -98304);
    assert_eq!(f32_to_act(0.5 * ulp), 0); // tie to even
    assert_eq!(f32_to_act(1.5 * ulp), 2);
    assert_eq!(f32_to_act(-2.5 * ulp), -2);
    assert_eq!(f32_to_act(-0.0), 0);
    assert_eq!(f32_to_act(200.25), 200 * 65536 + 16384);
    assert_eq!(f32_to_act(1e9), i32::MAX);
    assert_eq!(f32_to_act(-1e9), i32::MIN);
    assert_eq!(f32_to_act(f32::NAN), 0);
    for raw in [0, 1, -1, 12345, -(1 << 23) + 7, (1 << 24) - 1, -(1 << 24)] {
        assert_eq!(f32_to_act(act_to_f32(raw)), raw, "round trip of {raw}");
    }
    // Every f32 the exact path can produce maps back to the same raw value.
    let mut x = 0x1234_5678u32;
    for _ in 0..100_000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let raw = (x as i32) >> 7; // |raw| < 2^24
        assert_eq!(f32_to_act(act_to_f32(raw)), raw);
        assert_eq!(act_to_f32(raw).to_bits(), engram_exact::fixed::act_to_f32_bits(raw));
    }
}

#[test]
fn simd_conversions_equal_the_scalar_ones() {
    use engram_engine::exact_ops::{act_to_f32, acts_to_f32, f32_to_act, f32s_to_act};
    // Edges (saturation at ±2^15, ties, NaN, infinities, subnormals, signed zeros), then random
    // bit patterns; lengths that leave a scalar tail.
    let mut xs: Vec<f32> = vec![
        0.0,
        -0.0,
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        32768.0,
        -32768.0,
        32767.999,
        -32768.004,
        0.5 / 65536.0,
        1.5 / 65536.0,
        -2.5 / 65536.0,
        f32::MIN_POSITIVE,
        1e-40,
        f32::MAX,
        f32::MIN,
    ];
    let mut s = 0x9E37_79B9u32;
    for _ in 0..100_003 {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        xs.push(f32::from_bits(s));
        xs.push(f32::from_bits(s & 0x87ff_ffff)); // magnitudes below 2^16
    }
    let (mut simd, mut scalar) = (vec![0i32; xs.len()], vec![0i32; xs.len()]);
    f32s_to_act(Kernel::Auto, &xs, &mut simd);
    f32s_to_act(Kernel::Scalar, &xs, &mut scalar);
    for ((x, a), b) in xs.iter().zip(&simd).zip(&scalar) {
        assert_eq!(*a, f32_to_act(*x), "SIMD f32 → Q15.16 of {x:e} ({:#x})", x.to_bits());
        assert_eq!(a, b);
    }
    let raws: Vec<i32> = xs.iter().map(|x| x.to_bits() as i32).collect();
    let (mut fa, mut fb) = (vec![0f32; raws.len()], vec![0f32; raws.len()]);
    acts_to_f32(Kernel::Auto, &raws, &mut fa);
    acts_to_f32(Kernel::Scalar, &raws, &mut fb);
    for ((r, a), b) in raws.iter().zip(&fa).zip(&fb) {
        assert_eq!(a.to_bits(), act_to_f32(*r).to_bits(), "SIMD Q15.16 → f32 of {r}");
        assert_eq!(a.to_bits(), b.to_bits());
    }
}
