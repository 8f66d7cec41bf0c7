//! The CUDA backend against the CPU path. Device selection is checked on every machine; the
//! parity tests need a GPU and are skipped with a visible `SKIPPED` line when there is none
//! (they run whenever one is present). On a GPU each test runs on every fixture model found in
//! `models/` (a missing one is named in a `SKIPPED` line; at least one must be there), so a
//! machine that only received SmolLM2 (scripts/gpu-check.sh) still checks everything else.

use engram_cuda::exact::CudaExact;
use engram_cuda::{ops_for, CudaOps, CudaOptions, DeviceChoice};
use engram_engine::model::RopeLayout;
use engram_engine::ops::AttnShape;
use engram_engine::sampler::argmax;
use engram_engine::{CpuOps, Model, Ops, Session, SessionOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The checkout: `$ENGRAM_CHECKOUT` when set (a test binary built on one machine and run in
/// another copy of the checkout, as scripts/gpu-check.sh does), else where it was built.
fn root() -> &'static Path {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| match std::env::var_os("ENGRAM_CHECKOUT") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .and_then(Path::parent)
            .expect("checkout root")
            .to_path_buf(),
    })
}

fn options() -> CudaOptions {
    CudaOptions {
        // Shared by the tests of one run (keyed by content, architecture and NVRTC version).
        ptx_cache: Some(std::env::temp_dir().join("engram-gpu-parity-ptx")),
        nvrtc_search_from: Some(root().to_path_buf()),
    }
}

/// The GPU's description, or `None` after printing why the test is skipped.
fn gpu_or_skip(test: &str) -> Option<()> {
    match engram_cuda::probe() {
        Ok(info) => {
            eprintln!("{test}: running on {info}");
            Some(())
        }
        Err(e) => {
            // Straight to stderr, past the test harness's capture, so the skip is visible.
            let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {e}");
            None
        }
    }
}

fn model_path(name: &str) -> PathBuf {
    let p = root().join("models").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh --with-qwen",
        p.display()
    );
    p
}

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const QWEN2: &str = "Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf";
const SMOLLM2_FIXTURE: &str = "tests/fixtures/ref-smollm2-135m-q4_1.json";
const QWEN2_FIXTURE: &str = "tests/fixtures/ref-qwen2.5-coder-0.5b-q4_k_m.json";

/// The fixture models present in `models/` with their reference fixtures; a missing one gets
/// a visible `SKIPPED` line, and none at all fails (a GPU run must compare something).
fn present_models(test: &str) -> Vec<(&'static str, &'static str)> {
    let mut found = Vec::new();
    for (name, fixture) in [(SMOLLM2, SMOLLM2_FIXTURE), (QWEN2, QWEN2_FIXTURE)] {
        if root().join("models").join(name).is_file() {
            found.push((name, fixture));
        } else {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test} on {name}: not in models/ (scripts/setup.sh --with-qwen fetches it)"
            );
        }
    }
    assert!(
        !found.is_empty(),
        "{test}: no fixture model in models/: run scripts/setup.sh"
    );
    found
}

/// The prompts (token ids) of a reference fixture, with the number of greedy tokens it holds.
fn fixture_prompts(fixture: &str) -> Vec<(Vec<u32>, usize)> {
    let text = std::fs::read_to_string(root().join(fixture)).expect("fixture");
    let json: serde_json::Value = serde_json::from_str(&text).expect("fixture JSON");
    json["chat"]
        .as_array()
        .expect("chat prompts")
        .iter()
        .map(|chat| {
            let prompt = chat["prompt_tokens"]
                .as_array()
                .expect("prompt_tokens")
                .iter()
                .map(|v| v.as_u64().expect("token id") as u32)
                .collect();
            (
                prompt,
                chat["greedy_tokens"].as_array().map_or(16, |v| v.len()),
            )
        })
        .collect()
}

/// `name` on the GPU (device-resident sessions unless `resident` is false) and on the CPU.
fn gpu_and_cpu(name: &str, resident: bool) -> (Arc<Model>, Arc<Model>) {
    let mut ops = CudaOps::new(&options()).expect("CUDA backend");
    ops.set_resident(resident);
    let gpu = Arc::new(Model::load_with(model_path(name), Arc::new(ops)).expect("gpu model"));
    let cpu =
        Arc::new(Model::load_with(model_path(name), Arc::new(CpuOps::new(0))).expect("cpu model"));
    (gpu, cpu)
}

#[test]
fn device_choice_parses() {
    assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
    assert_eq!("CUDA".parse::<DeviceChoice>(), Ok(DeviceChoice::Cuda));
    assert_eq!("auto".parse::<DeviceChoice>(), Ok(DeviceChoice::Auto));
    let err = "tpu".parse::<DeviceChoice>().unwrap_err();
    assert!(err.contains("cpu, cuda or auto"), "{err}");
}

#[test]
fn device_selection_never_panics() {
    let cpu = ops_for(DeviceChoice::Cpu, 1, &options()).expect("cpu always works");
    assert!(
        !cpu.on_gpu && cpu.description.starts_with("cpu"),
        "{}",
        cpu.description
    );
    let auto = ops_for(DeviceChoice::Auto, 1, &options()).expect("auto always works");
    match engram_cuda::probe() {
        Err(why) => {
            let msg = why.to_string();
            assert!(
                msg.starts_with("no GPU found") || msg.contains("CUDA"),
                "{msg}"
            );
            let err = ops_for(DeviceChoice::Cuda, 1, &options())
                .expect_err("cuda without a GPU must fail");
            eprintln!("--device cuda here: {err}");
            assert!(!auto.on_gpu, "auto without a GPU falls back to the CPU");
            assert!(auto.description.contains("auto:"), "{}", auto.description);
        }
        Ok(_) => {
            let gpu = ops_for(DeviceChoice::Cuda, 1, &options()).expect("cuda with a GPU");
            assert!(gpu.on_gpu && auto.on_gpu);
        }
    }
}

/// Max |a - b| relative to max |a|.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn noise(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 20_001) as f32 / 10_000.0 - 1.0
        })
        .collect()
}

#[test]
fn operators_match_the_cpu() {
    if gpu_or_skip("operators_match_the_cpu").is_none() {
        return;
    }
    let gpu = CudaOps::new(&options()).expect("CUDA backend");
    let cpu = CpuOps::new(0);
    for (name, _) in present_models("operators_match_the_cpu") {
        let model = Model::load(model_path(name)).expect("model");
        let l = &model.layers[0];
        for w in [
            &l.wq,
            &l.wk,
            &l.wv,
            &l.wo,
            &l.w_gate,
            &l.w_up,
            &l.w_down,
            &model.output,
        ] {
            for n in [1usize, 3, 11] {
                let x = noise(n * w.cols, 7 + n as u32);
                let (mut a, mut b) = (vec![0f32; n * w.rows], vec![0f32; n * w.rows]);
                cpu.matmul(w, &x, n, &mut a);
                gpu.matmul(w, &x, n, &mut b);
                let d = rel_diff(&a, &b);
                eprintln!("{name} matmul {w:?} n={n}: rel diff {d:.2e}");
                assert!(d < 1e-3, "{name} {w:?} n={n}: {d}");
            }
        }
        let c = &model.config;
        let x = noise(4 * c.n_embd, 3);
        let (mut a, mut b) = (vec![0f32; x.len()], vec![0f32; x.len()]);
        cpu.rms_norm(&x, &l.attn_norm, c.eps, &mut a);
        gpu.rms_norm(&x, &l.attn_norm, c.eps, &mut b);
        assert!(rel_diff(&a, &b) < 1e-5, "rms_norm");
        for layout in [RopeLayout::Adjacent, RopeLayout::Halves] {
            let mut a = noise(4 * c.n_embd, 5);
            let mut b = a.clone();
            cpu.rope(&mut a, 37, c.n_head, c.head_dim, layout, c.rope_base);
            gpu.rope(&mut b, 37, c.n_head, c.head_dim, layout, c.rope_base);
            assert!(
                rel_diff(&a, &b) < 1e-4,
                "rope {layout:?}: {}",
                rel_diff(&a, &b)
            );
        }
        let (mut a, up) = (noise(c.n_ff * 2, 9), noise(c.n_ff * 2, 10));
        let mut b = a.clone();
        cpu.swiglu(&mut a, &up);
        gpu.swiglu(&mut b, &up);
        assert!(rel_diff(&a, &b) < 1e-5, "swiglu");
        let shape = AttnShape {
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: c.head_dim,
            n_tokens: 3,
            pos0: 40,
        };
        let kv = noise(43 * c.n_head_kv * c.head_dim, 11);
        let vv = noise(43 * c.n_head_kv * c.head_dim, 12);
        let q = noise(3 * c.n_embd, 13);
        let (mut a, mut b) = (vec![0f32; q.len()], vec![0f32; q.len()]);
        cpu.attention(&q, &kv, &vv, shape, &mut a);
        gpu.attention(&q, &kv, &vv, shape, &mut b);
        assert!(rel_diff(&a, &b) < 1e-4, "attention: {}", rel_diff(&a, &b));
        let logits = noise(c.vocab, 17);
        assert_eq!(gpu.argmax(&logits), argmax(&logits), "argmax");
    }
}

/// Top-1 minus top-2 of the logits.
fn margin(logits: &[f32]) -> f32 {
    let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in logits {
        if v > a {
            b = a;
            a = v;
        } else if v > b {
            b = v;
        }
    }
    a - b
}

/// Greedy tokens of `n` steps after `prompt`, with the margin of each step's logits.
fn greedy(model: &Arc<Model>, prompt: &[u32], n: usize) -> Vec<(u32, f32)> {
    let mut s = Session::new(model, SessionOptions::default());
    let mut logits = s.prefill(prompt).expect("prefill").to_vec();
    let mut out = Vec::new();
    for _ in 0..n {
        let t = argmax(&logits);
        out.push((t, margin(&logits)));
        logits = s.decode_step(t).expect("decode").to_vec();
    }
    out
}

/// Compares two greedy runs step by step up to the first near-tie of the reference `a`
/// (margin < 1.0, where float summation order may flip the choice); returns how many tokens
/// were compared.
fn equal_up_to_near_tie(what: &str, a: &[(u32, f32)], b: &[(u32, f32)]) -> usize {
    let mut compared = 0;
    for (i, ((ta, ma), (tb, _))) in a.iter().zip(b).enumerate() {
        assert_eq!(ta, tb, "{what}: token {i} differs (CPU margin {ma:.3})");
        compared += 1;
        if *ma < 1.0 {
            eprintln!("{what}: near-tie (margin {ma:.3}) at step {i}: compared up to here");
            break;
        }
    }
    compared
}

#[test]
fn greedy_generation_matches_the_cpu_up_to_the_first_near_tie() {
    let test = "greedy_generation_matches_the_cpu_up_to_the_first_near_tie";
    if gpu_or_skip(test).is_none() {
        return;
    }
    for (name, fixture) in present_models(test) {
        let (gpu, cpu) = gpu_and_cpu(name, true);
        let mut compared = 0;
        for (prompt, n) in fixture_prompts(fixture) {
            let a = greedy(&cpu, &prompt, n);
            let b = greedy(&gpu, &prompt, n);
            compared += equal_up_to_near_tie(name, &a, &b);
        }
        eprintln!(
            "{name}: {compared} greedy tokens equal on CPU and GPU (device-resident sessions)"
        );
        assert!(compared > 0);
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Prefill and `n` greedy steps: every step's logits, and the decode steps' tokens/s.
fn logits_run(model: &Arc<Model>, prompt: &[u32], n: usize) -> (Vec<Vec<f32>>, f64) {
    let mut s = Session::new(model, SessionOptions::default());
    let mut all = vec![s.prefill(prompt).expect("prefill").to_vec()];
    let t = std::time::Instant::now();
    for _ in 0..n {
        let t = argmax(all.last().expect("logits"));
        all.push(s.decode_step(t).expect("decode").to_vec());
    }
    (all, n as f64 / t.elapsed().as_secs_f64())
}

#[test]
fn device_resident_sessions_equal_the_per_operator_path_bit_for_bit() {
    // Same kernels on the same data, only where the activations and the KV cache live
    // differs: the logits must be the same bits.
    let test = "device_resident_sessions_equal_the_per_operator_path_bit_for_bit";
    if gpu_or_skip(test).is_none() {
        return;
    }
    for (name, fixture) in present_models(test) {
        let (resident, _) = gpu_and_cpu(name, true);
        let (per_op, _) = gpu_and_cpu(name, false);
        let (prompt, _) = fixture_prompts(fixture).remove(0);
        let (a, speed_a) = logits_run(&resident, &prompt, 24);
        let (b, speed_b) = logits_run(&per_op, &prompt, 24);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert_eq!(bits(x), bits(y), "{name}: step {i} logits differ");
        }
        // Speeds of this test binary (the test profile), for the record, not a check.
        eprintln!(
            "{name}: resident = per-operator for prefill + 24 steps; decode {speed_a:.1} tok/s resident, {speed_b:.1} tok/s per-operator"
        );
    }
}

#[test]
fn snapshots_move_sessions_between_cpu_and_gpu() {
    let test = "snapshots_move_sessions_between_cpu_and_gpu";
    if gpu_or_skip(test).is_none() {
        return;
    }
    for (name, fixture) in present_models(test) {
        let (gpu, cpu) = gpu_and_cpu(name, true);
        let (prompt, _) = fixture_prompts(fixture).remove(0);
        // GPU → GPU: the restored session continues with the same bits as the original.
        let mut g = Session::new(&gpu, SessionOptions::default());
        let mut logits = g.prefill(&prompt).expect("prefill").to_vec();
        for _ in 0..4 {
            logits = g.decode_step(argmax(&logits)).expect("decode").to_vec();
        }
        let snap = g.snapshot();
        let mut g2 = Session::restore(&gpu, &snap).expect("restore on the GPU");
        assert_eq!(g2.snapshot(), snap, "{name}: GPU snapshot → GPU → snapshot");
        assert_eq!(
            bits(g2.logits().expect("logits restored")),
            bits(&logits),
            "{name}: restored logits"
        );
        let (mut la, mut lb) = (logits.clone(), logits.clone());
        for step in 0..6 {
            la = g.decode_step(argmax(&la)).expect("decode").to_vec();
            lb = g2.decode_step(argmax(&lb)).expect("decode").to_vec();
            assert_eq!(
                bits(&la),
                bits(&lb),
                "{name}: step {step} after a GPU restore"
            );
        }
        // GPU → CPU and CPU → GPU: the moved session continues like one that stayed, up to
        // the first near-tie.
        let mut c = Session::restore(&cpu, &snap).expect("restore on the CPU");
        let mut g3 = Session::restore(&gpu, &snap).expect("restore on the GPU");
        let steps = |s: &mut Session, n: usize| -> Vec<(u32, f32)> {
            let mut out = Vec::new();
            let mut l = s.logits().expect("logits").to_vec();
            for _ in 0..n {
                let t = argmax(&l);
                out.push((t, margin(&l)));
                l = s.decode_step(t).expect("decode").to_vec();
            }
            out
        };
        let on_cpu = steps(&mut c, 8);
        let on_gpu = steps(&mut g3, 8);
        let compared = equal_up_to_near_tie(&format!("{name} GPU→CPU"), &on_cpu, &on_gpu);
        let back = Session::restore(&gpu, &c.snapshot()).expect("CPU snapshot on the GPU");
        assert_eq!(back.tokens(), c.tokens(), "{name}: CPU → GPU tokens");
        let mut back = back;
        let mut c2 = Session::restore(&cpu, &c.snapshot()).expect("CPU snapshot on the CPU");
        let (x, y) = (steps(&mut c2, 6), steps(&mut back, 6));
        let compared2 = equal_up_to_near_tie(&format!("{name} CPU→GPU"), &x, &y);
        eprintln!(
            "{name}: snapshots round-trip on the GPU bit for bit; {compared} + {compared2} tokens equal after moving CPU↔GPU"
        );
    }
}

#[test]
fn exact_islands_equal_engram_exact_bit_for_bit() {
    if gpu_or_skip("exact_islands_equal_engram_exact_bit_for_bit").is_none() {
        return;
    }
    let gpu = CudaExact::new(&options()).expect("exact kernels");
    let ints = |n: usize, seed: u32, mag: i32| -> Vec<i32> {
        noise(n, seed)
            .iter()
            .map(|v| (v * mag as f32) as i32)
            .collect()
    };
    // SiLU / SwiGLU over a wide range, including the extremes.
    let mut x = ints(65_536, 1, 20 << 16);
    x.extend([i32::MIN, i32::MAX, 0, -1, 1]);
    let mut want = x.clone();
    engram_exact::silu_inplace(&mut want);
    let mut got = x.clone();
    gpu.silu(&mut got).expect("silu");
    assert_eq!(got, want, "silu");
    let up = ints(x.len(), 2, 8 << 16);
    let mut want = vec![0; x.len()];
    engram_exact::swiglu(&x, &up, &mut want).expect("swiglu");
    assert_eq!(gpu.swiglu(&x, &up).expect("swiglu"), want, "swiglu");
    // RMSNorm, rows of 576 and 896.
    let eps = engram_exact::rms_eps_from_f32_bits(1e-5f32.to_bits()).expect("eps");
    for d in [576usize, 896] {
        let x = ints(4 * d, 3, 6 << 16);
        let w = ints(d, 4, 2 << 16);
        let mut want = vec![0; x.len()];
        for (xr, or) in x.chunks(d).zip(want.chunks_mut(d)) {
            engram_exact::rms_norm(xr, &w, eps, or).expect("rms_norm");
        }
        assert_eq!(
            gpu.rms_norm(&x, &w, eps).expect("rms_norm"),
            want,
            "rms_norm d={d}"
        );
    }
    // Quantized activations.
    let x = ints(32 * 64, 5, 40 << 16);
    let mut blocks = vec![engram_exact::Q8Block::default(); 64];
    engram_exact::quantize_act(&x, &mut blocks).expect("quantize");
    let q = gpu.quantize_act(&x).expect("quantize");
    for (i, b) in blocks.iter().enumerate() {
        assert_eq!(&q.qs[32 * i..32 * i + 32], &b.qs[..], "block {i} quants");
        assert_eq!(
            (q.sums[i], q.shifts[i]),
            (b.sum, b.shift),
            "block {i} sum/shift"
        );
    }
    // RoPE, both layouts, from the same CORDIC table.
    let (n_heads, hd) = (9usize, 64usize);
    let table = engram_exact::RopeTable::from_f32_base(10000f32.to_bits(), hd).expect("table");
    let rows = 5;
    let (mut cos, mut sin) = (vec![0; rows * hd / 2], vec![0; rows * hd / 2]);
    for r in 0..rows {
        let s = r * hd / 2..(r + 1) * hd / 2;
        table
            .cos_sin(100 + r as u32, &mut cos[s.clone()], &mut sin[s])
            .expect("cos_sin");
    }
    for neox in [false, true] {
        let x = ints(rows * n_heads * hd, 6, 4 << 16);
        let mut want = x.clone();
        for (r, row) in want.chunks_mut(n_heads * hd).enumerate() {
            let (c, s) = (
                &cos[r * hd / 2..(r + 1) * hd / 2],
                &sin[r * hd / 2..(r + 1) * hd / 2],
            );
            for head in row.chunks_mut(hd) {
                if neox {
                    engram_exact::rope_neox(head, c, s).expect("rope");
                } else {
                    engram_exact::rope_adjacent(head, c, s).expect("rope");
                }
            }
        }
        let mut got = x.clone();
        gpu.rope(&mut got, &cos, &sin, n_heads, hd, neox)
            .expect("rope");
        assert_eq!(got, want, "rope neox={neox}");
    }
    // Attention: 3 new queries at positions 60.. over 63 cached positions, GQA 9/3.
    let (nh, nkv, pos0, nt) = (9usize, 3usize, 60usize, 3usize);
    let q = ints(nt * nh * hd, 7, 3 << 16);
    let k = ints((pos0 + nt) * nkv * hd, 8, 3 << 16);
    let v = ints((pos0 + nt) * nkv * hd, 9, 3 << 16);
    let scale = engram_exact::attention_scale_q30(hd);
    let mut want = vec![0; q.len()];
    for t in 0..nt {
        for h in 0..nh {
            let n_ctx = pos0 + t + 1;
            let kvh = h / (nh / nkv);
            let (mut sc, mut pr) = (vec![0; n_ctx], vec![0; n_ctx]);
            let o = &mut want[(t * nh + h) * hd..(t * nh + h + 1) * hd];
            engram_exact::attend(
                &q[(t * nh + h) * hd..(t * nh + h + 1) * hd],
                &k[kvh * hd..],
                &v[kvh * hd..],
                nkv * hd,
                scale,
                &mut sc,
                &mut pr,
                o,
            )
            .expect("attend");
        }
    }
    assert_eq!(
        gpu.attention(&q, &k, &v, nh, nkv, hd, pos0, scale)
            .expect("attention"),
        want,
        "attention"
    );
}

/// The logits digest of a greedy run of `n` tokens after each prompt, in exact mode.
fn exact_digests(model: &Arc<Model>, prompts: &[String], n: usize) -> Vec<String> {
    prompts
        .iter()
        .map(|p| {
            let ids = model.tokenizer().encode(p, false);
            let mut s = Session::new(model, SessionOptions::default());
            s.enable_digest();
            let opts = engram_engine::GenerateOptions {
                max_tokens: n,
                ..Default::default()
            };
            engram_engine::generate(&mut s, &ids, &opts, |_| true).expect("generate");
            s.digest().expect("digest enabled").hex()
        })
        .collect()
}

#[test]
fn exact_mode_digest_is_the_same_on_cpu_and_gpu() {
    if gpu_or_skip("exact_mode_digest_is_the_same_on_cpu_and_gpu").is_none() {
        return;
    }
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/prompts-exact.json")).expect("fixture");
    let prompts: Vec<String> = serde_json::from_str(&text).expect("prompts");
    let prompts = &prompts[..4.min(prompts.len())];
    let path = model_path(SMOLLM2);
    let cpu = Arc::new(engram_engine::ExactOps::load_model(&path, 0).expect("cpu exact model"));
    let ops = Arc::new(engram_cuda::CudaExactOps::new(0, &options()).expect("CUDA exact ops"));
    let gpu = Arc::new(engram_cuda::CudaExactOps::load_model(&path, ops).expect("gpu exact model"));
    let (a, b) = (
        exact_digests(&cpu, prompts, 16),
        exact_digests(&gpu, prompts, 16),
    );
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        eprintln!("prompt {i}: cpu {x} gpu {y}");
    }
    assert_eq!(a, b, "exact-mode logits digests differ between CPU and GPU");
}

// ---- every weight type: SmolLM2's shapes and tokenizer with synthetic layer matrices ----
//
// Only SmolLM2 (Q4_1 layers, a Q8_0 embedding) travels to a lent GPU, so the other product
// kernels would go unchecked there. This rebuilds SmolLM2's GGUF with its layer matrices
// replaced by seeded random blocks of every type the engine reads (Q4_0, Q5_0, Q8_0, Q4_1, F16
// and F32 where rows are 576 long; Q4_K and Q6_K for the 1536-long rows of ffn_down), keeping
// its metadata, tokenizer, norms and embedding. The model talks nonsense, but CPU and GPU
// must still agree on it.

use engram_engine::gguf::GgufFile;
use engram_engine::quant::GgmlType;

/// Skips one metadata value of GGUF type `ty` at `pos`.
fn skip_value(b: &[u8], pos: &mut usize, ty: u32) {
    let u32_at = |p: usize| u32::from_le_bytes(b[p..p + 4].try_into().unwrap());
    let u64_at = |p: usize| u64::from_le_bytes(b[p..p + 8].try_into().unwrap()) as usize;
    match ty {
        0 | 1 | 7 => *pos += 1,
        2 | 3 => *pos += 2,
        4..=6 => *pos += 4,
        10..=12 => *pos += 8,
        8 => *pos += 8 + u64_at(*pos),
        9 => {
            let inner = u32_at(*pos);
            let n = u64_at(*pos + 4);
            *pos += 12;
            for _ in 0..n {
                skip_value(b, pos, inner);
            }
        }
        t => panic!("unknown GGUF value type {t}"),
    }
}

/// f32 → IEEE half bits, for normal values of modest size (what the synthetic F16 rows hold).
fn f16_bits(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    if exp <= 0 {
        return sign;
    }
    sign | ((exp as u16) << 10) | ((b >> 13) & 0x3ff) as u16
}

/// Seeded random bytes of `n_rows` rows of `cols` elements in type `ty`, with every scale set
/// so that a row's dot product with a normalised input is of order one.
fn synthetic_rows(ty: GgmlType, n_rows: usize, cols: usize, seed: u32) -> Vec<u8> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        s
    };
    let bytes = ty.row_bytes(cols) * n_rows;
    let mut out: Vec<u8> = (0..bytes).map(|_| next() as u8).collect();
    let small = |r: u32, scale: f32| ((r % 2001) as f32 / 1000.0 - 1.0) * scale;
    let put16 =
        |o: &mut [u8], at: usize, v: f32| o[at..at + 2].copy_from_slice(&f16_bits(v).to_le_bytes());
    match ty {
        GgmlType::F32 => {
            for c in out.chunks_exact_mut(4) {
                c.copy_from_slice(&small(next(), 0.06).to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for c in out.chunks_exact_mut(2) {
                c.copy_from_slice(&f16_bits(small(next(), 0.06).max(-0.06)).to_le_bytes());
            }
        }
        _ => {
            let bb = ty.block_bytes();
            for blk in out.chunks_exact_mut(bb) {
                match ty {
                    GgmlType::Q4_0 | GgmlType::Q5_0 => put16(blk, 0, 0.008),
                    GgmlType::Q8_0 => put16(blk, 0, 0.0008),
                    GgmlType::Q4_1 => {
                        put16(blk, 0, 0.008);
                        put16(blk, 2, -0.06);
                    }
                    GgmlType::Q4K => {
                        put16(blk, 0, 0.0006);
                        put16(blk, 2, 0.0006);
                    }
                    GgmlType::Q6K => put16(blk, 208, 0.00004),
                    _ => unreachable!("block types only"),
                }
            }
        }
    }
    out
}

/// SmolLM2's GGUF with its layer matrices in every weight type (see above), as a model file
/// image.
fn every_type_gguf() -> GgufFile {
    let path = model_path(SMOLLM2);
    let raw = std::fs::read(&path).expect("read SmolLM2");
    let orig = GgufFile::open(&path).expect("parse SmolLM2");
    // The metadata section, copied byte for byte: it ends where the tensor directory starts.
    let n_kv = u64::from_le_bytes(raw[16..24].try_into().unwrap());
    let mut pos = 24;
    for _ in 0..n_kv {
        let klen = u64::from_le_bytes(raw[pos..pos + 8].try_into().unwrap()) as usize;
        pos += 8 + klen;
        let ty = u32::from_le_bytes(raw[pos..pos + 4].try_into().unwrap());
        pos += 4;
        skip_value(&raw, &mut pos, ty);
    }
    let align = orig
        .metadata
        .get("general.alignment")
        .and_then(|v| v.as_u64())
        .unwrap_or(32) as usize;
    let narrow = [
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::F16,
        GgmlType::Q4_1,
        GgmlType::F32,
    ];
    let mut dir = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    for (i, t) in orig.tensors.iter().enumerate() {
        let is_matrix = t.name.starts_with("blk.") && t.dims.len() == 2;
        let (ty, bytes) = if is_matrix {
            let (cols, rows) = (t.dims[0] as usize, t.dims[1] as usize);
            let ty = if cols % 256 == 0 {
                [GgmlType::Q4K, GgmlType::Q6K][i % 2]
            } else {
                narrow[i % narrow.len()]
            };
            (ty, synthetic_rows(ty, rows, cols, i as u32 + 1))
        } else {
            (t.ggml_type, orig.tensor_data(t).to_vec())
        };
        data.resize(data.len().div_ceil(align) * align, 0);
        dir.extend_from_slice(&(t.name.len() as u64).to_le_bytes());
        dir.extend_from_slice(t.name.as_bytes());
        dir.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            dir.extend_from_slice(&d.to_le_bytes());
        }
        dir.extend_from_slice(&ty.id().to_le_bytes());
        dir.extend_from_slice(&(data.len() as u64).to_le_bytes());
        data.extend_from_slice(&bytes);
    }
    let mut out = raw[..pos].to_vec();
    out.extend_from_slice(&dir);
    out.resize(out.len().div_ceil(align) * align, 0);
    out.extend_from_slice(&data);
    GgufFile::from_bytes(out, "smollm2-every-type.gguf").expect("synthetic GGUF parses")
}

fn every_type_model(ops: Arc<dyn Ops>) -> Arc<Model> {
    static FILE: std::sync::OnceLock<Arc<GgufFile>> = std::sync::OnceLock::new();
    let file = FILE.get_or_init(|| Arc::new(every_type_gguf())).clone();
    Arc::new(Model::from_gguf(file, ops).expect("synthetic model loads"))
}

#[test]
fn the_every_type_model_is_well_formed() {
    // Runs everywhere (CPU only): the GPU test below depends on this model being what it
    // claims — every weight type present, finite logits.
    if !root().join("models").join(SMOLLM2).is_file() {
        panic!("models/{SMOLLM2} is missing: run scripts/setup.sh");
    }
    let m = every_type_model(Arc::new(CpuOps::new(0)));
    let mut types: Vec<GgmlType> = m
        .layers
        .iter()
        .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down])
        .map(|w| w.ty)
        .collect();
    types.sort_by_key(|t| t.id());
    types.dedup();
    assert_eq!(types.len(), 8, "every weight type is used: {types:?}");
    let mut s = Session::new(&m, SessionOptions::default());
    let logits = s.prefill(&[1, 2, 3, 4, 5]).expect("prefill").to_vec();
    assert!(logits.iter().all(|v| v.is_finite()), "finite logits");
    let spread = margin(&logits);
    eprintln!("every-type model: top-1 margin {spread:.3} after 5 tokens");
}

#[test]
fn every_weight_type_matches_the_cpu_on_the_gpu() {
    let test = "every_weight_type_matches_the_cpu_on_the_gpu";
    if gpu_or_skip(test).is_none() {
        return;
    }
    let cpu = every_type_model(Arc::new(CpuOps::new(0)));
    let gpu_ops = Arc::new(CudaOps::new(&options()).expect("CUDA backend"));
    let gpu = every_type_model(gpu_ops.clone());
    // Each product kernel alone, 1 and 5 tokens.
    let cpu_ops = CpuOps::new(0);
    for l in gpu.layers.iter().take(4) {
        for w in [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down] {
            for n in [1usize, 5] {
                let x = noise(n * w.cols, 3 + n as u32);
                let (mut a, mut b) = (vec![0f32; n * w.rows], vec![0f32; n * w.rows]);
                cpu_ops.matmul(w, &x, n, &mut a);
                gpu_ops.matmul(w, &x, n, &mut b);
                let d = rel_diff(&a, &b);
                eprintln!("every-type matmul {w:?} n={n}: rel diff {d:.2e}");
                assert!(d < 1e-3, "{w:?} n={n}: {d}");
            }
        }
    }
    // The whole model: greedy tokens up to the first near-tie, logits close at every step.
    let prompt: Vec<u32> = (1..24).collect();
    let a = greedy(&cpu, &prompt, 16);
    let b = greedy(&gpu, &prompt, 16);
    let compared = equal_up_to_near_tie("every-type model", &a, &b);
    let (la, _) = logits_run(&cpu, &prompt, 0);
    let (lb, _) = logits_run(&gpu, &prompt, 0);
    let d = rel_diff(&la[0], &lb[0]);
    eprintln!("every-type model: {compared} greedy tokens equal, prefill logits rel diff {d:.2e}");
    assert!(d < 1e-2, "prefill logits rel diff {d}");
    // Device-resident sessions = the per-operator path, bit for bit, with every product kernel.
    let mut per_op_ops = CudaOps::new(&options()).expect("CUDA backend");
    per_op_ops.set_resident(false);
    let per_op = every_type_model(Arc::new(per_op_ops));
    let (x, _) = logits_run(&gpu, &prompt, 8);
    let (y, _) = logits_run(&per_op, &prompt, 8);
    for (i, (x, y)) in x.iter().zip(&y).enumerate() {
        assert_eq!(
            bits(x),
            bits(y),
            "every-type model: step {i}, resident vs per-operator"
        );
    }
}
